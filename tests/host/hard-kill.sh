#!/bin/bash
# Crash test with a real machine stop: QEMU is killed (SIGKILL) in the middle
# of O_SYNC writes to a persistent write-back stash, then a second boot
# recovers and checks every write that was acknowledged.  Runs on the HOST
# ("make check-crash"): it boots the test VM twice per iteration.
#
# usage: tests/host/hard-kill.sh [ITERATIONS]   (default 2, or
#        $STASH_HK_ITERATIONS; STASH_SEED repeats a run)
#
# Each iteration: two raw images (64 MiB cache, 256 MiB origin, sparse) in
# a temporary directory become /dev/vda and /dev/vdb.  Boot 1 runs
# tests/host/hard-kill-guest.sh write: crashio -S logs each completed write
# to build/vm-crash/out/crash.log (a 9p share, fdatasync'd per record, so the log
# is on the host when QEMU dies).  Once the guest says the writes are
# durable, the host waits a random 3..8 s and kills the QEMU process that
# its own run-vm.sh started.  The log is copied away (the next boot empties
# out/), and boot 2 runs hard-kill-guest.sh check.
# The disks use QEMU's cache=writeback: the guest sees a volatile write
# cache and every flush it sends becomes an fdatasync on the host, so a
# QEMU kill loses nothing the guest was told is durable.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# A VM directory of its own: another run from this checkout would empty
# its out/ between the two boots.
export STASH_VM_DIR=${STASH_VM_DIR:-$REPO/build/vm-crash}
OUT=$STASH_VM_DIR/out
RUNVM=$REPO/tests/vm/run-vm.sh
iterations=${1:-${STASH_HK_ITERATIONS:-2}}
seed=${STASH_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
RANDOM=$seed
echo "hard-kill: $iterations iteration(s), seed $seed (repeat with STASH_SEED=$seed)"

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/stash-hard-kill.XXXXXX")
vm_pid=
cleanup() {
	[ -n "$vm_pid" ] && kill_vm "$vm_pid"
	rm -rf "$tmp"
}
trap cleanup EXIT

# descendants PID: every process under PID.
descendants() {
	local c

	for c in $(pgrep -P "$1" || true); do
		echo "$c"
		descendants "$c"
	done
}

# kill_vm PID: SIGKILL the QEMU that the run-vm.sh with PID started.
kill_vm() {
	local p

	for p in $(descendants "$1"); do
		if [ "$(cat /proc/"$p"/comm 2>/dev/null)" = qemu-system-x86 ]; then
			kill -9 "$p" && echo "hard-kill: killed qemu (pid $p)"
		fi
	done
}

fail=0
for ((it = 1; it <= iterations; it++)); do
	wseed=$((seed * 100 + it))
	echo "=== hard-kill iteration $it (writer seed $wseed)"
	rm -f "$tmp"/*.img "$tmp/crash.log" "$tmp/stamp"
	truncate -s 64M "$tmp/cache.img"
	truncate -s 256M "$tmp/origin.img"
	disks=(--disk "$tmp/cache.img" --disk "$tmp/origin.img")
	touch "$tmp/stamp"	# a ready file older than this is stale

	# Boot 1: write until killed.  run-vm.sh empties $OUT when it starts.
	"$RUNVM" --timeout 900 "${disks[@]}" -- tests/host/hard-kill-guest.sh write "$wseed" \
		>"$tmp/boot1.log" 2>&1 &
	vm_pid=$!
	while [ ! -e "$OUT/ready" ] || [ "$OUT/ready" -ot "$tmp/stamp" ]; do
		if ! kill -0 "$vm_pid" 2>/dev/null; then
			echo "hard-kill: boot 1 ended before the writer was ready:"
			tail -n 40 "$tmp/boot1.log"
			exit 1
		fi
		sleep 0.5
	done
	delay_ms=$((3000 + RANDOM % 5001))
	sleep "$(awk -v m=$delay_ms 'BEGIN { printf "%.3f", m / 1000 }')"
	kill_vm "$vm_pid"
	wait "$vm_pid" || true
	vm_pid=
	cp "$OUT/crash.log" "$tmp/crash.log"
	n=$(($(stat -c %s "$tmp/crash.log") / 32 - 1))
	echo "hard-kill: killed ${delay_ms} ms after the first durable write; $n writes logged"
	grep -a -E 'stash|created' "$tmp/boot1.log" | tr -d '\r' | tail -n 5 || true

	# Boot 2: recover and check.
	if "$RUNVM" --timeout 900 "${disks[@]}" -- \
		tests/host/hard-kill-guest.sh check "$tmp/crash.log" >"$tmp/boot2.log" 2>&1; then
		grep -a -E '^# |check ok|stash:' "$tmp/boot2.log" | tr -d '\r' | tail -n 20
		echo "hard-kill: iteration $it passed"
	else
		echo "hard-kill: iteration $it FAILED; boot 2 log:"
		tr -d '\r' <"$tmp/boot2.log" | tail -n 80
		fail=1
		break
	fi
done
[ $fail = 0 ] && echo "hard-kill: $iterations iteration(s) passed"
exit $fail
