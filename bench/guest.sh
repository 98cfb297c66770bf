#!/bin/bash
# Guest side of the dm-stash benchmark: bench/run.sh boots the test VM with
# this script as its command.  It runs in the repo directory as root, with
# the results share in $STASH_OUT; everything lands in $STASH_OUT/bench.
#
# The work is done by bench/guest.py and its modules in bench/guestlib/
# (device plumbing, fio, counters, JSON); this wrapper only pins the
# environment.  Settings arrive as STASH_BENCH_* variables (run-vm.sh
# passes STASH_* through): see bench/guest.py.
set -uo pipefail
export DM_DISABLE_UDEV=1
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 125
[ -n "${STASH_OUT:-}" ] || { echo "bench/guest.sh: STASH_OUT is not set (run it through bench/run.sh)" >&2; exit 125; }
exec /usr/bin/python3 -u bench/guest.py "$@"
