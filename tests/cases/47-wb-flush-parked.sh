#!/bin/bash
# desc: every flush completes: one that arrives while a drain pass cleans the last dirty blocks (volatile write-back over a slow origin) is not left waiting for a later write
#
# A volatile cache's flush waits for a drain pass while blocks are dirty.
# One that arrives during a pass waits for the next; if that pass cleans
# every block, no further pass starts (nothing is dirty), and the flush
# must be completed then, not when some later write dirties a block.
# Break it catches: releasing the parked flushes only when a pass starts
# (the fsync below then hangs until the timeout).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd python3
stash_load_module

cache_setup 64 16
delay_create slow "$ORIGIN" 20
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
stash_create fp "$DELAY_DEV" "$CACHE" writeback volatile high_watermark 100 idle_ms 0 sequential_cutoff 0
vol=$STASH_DEV

for round in 1 2 3; do
	# Every other block: no two merge into one writeback run, so the
	# pass takes seconds over the 20 ms origin.
	python3 - "$vol" <<'PY' || die "the writes failed"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
for i in range(1024):
    buf[0:4096] = os.urandom(4096)
    os.pwrite(fd, buf, i * 2 * 4096)
os.close(fd)
PY
	assert_eq 1024 "$(sf "$vol" dirty)" "round $round: dirty after the writes"
	dmsetup message "$vol" 0 flush || die "flush message failed"
	sleep 0.3
	# The fsync's origin half parks behind the pass the message started.
	timeout 60 python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_WRONLY))' "$vol" &
	pid=$!
	for ((i = 0; i < 600; i++)); do
		[ "$(sf "$vol" dirty)" = 0 ] && break
		sleep 0.1
	done
	assert_eq 0 "$(sf "$vol" dirty)" "round $round: dirty after the drain"
	start=$(date +%s)
	wait $pid
	rc=$?
	assert_eq 0 "$rc" "round $round: the fsync completed (124: still waiting after 60 s)"
	log "round $round: the fsync returned $(($(date +%s) - start)) s after dirty=0"
	assert_ok "round $round: the origin has the writes" \
		cmp -s <(get "$vol" 0 2048) <(get "$ORIGIN" 0 2048)
done
stash_remove "$vol"
