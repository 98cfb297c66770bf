#!/bin/bash
# desc: write-back over a slow origin (dm-delay 20 ms): while a drain works through 4096 scattered dirty blocks (seconds of writeback), a write to the block it will reach last completes at once, and ends up on the origin after the next drain
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd python3
stash_load_module

NBLOCKS=4096
DELAY_MS=20
cache_setup 64 32
delay_create slow "$ORIGIN" $DELAY_MS
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

stash_create wdrain "$DELAY_DEV" "$CACHE" writeback volatile sequential_cutoff 0 \
	high_watermark 100 idle_ms 0
vol=$STASH_DEV

# Every other block: no two dirty blocks are neighbours on the origin, so
# writeback copies them one at a time (8 in flight, 20 ms each): the drain
# takes NBLOCKS / 8 * 20 ms, about 10 s.
python3 - "$vol" $NBLOCKS <<'PY' || die "cannot write the dirty blocks"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
for i in range(int(sys.argv[2])):
    buf[:8] = i.to_bytes(8, "little")
    os.pwrite(fd, buf, 2 * i * 4096)
os.close(fd)
PY
assert_eq $NBLOCKS "$(sf "$vol" dirty)" "dirty blocks"
last=$((2 * (NBLOCKS - 1)))
rand_file "$tmp/new" 1

t0=$(date +%s%N)
dmsetup message "$vol" 0 flush || die "flush message"
sleep 0.5
# The drain has picked every dirty block by now, in origin order: the last
# one is copied last.  A write to it must not wait for that.
ta=$(date +%s%N)
put "$vol" "$tmp/new" $last
tb=$(date +%s%N)
wrote_ms=$(((tb - ta) / 1000000))
st=$(status_line "$vol")
log "the write took $wrote_ms ms, $(((tb - t0) / 1000000)) ms into the drain; $st"
assert_ok "the drain was still running when the write completed" \
	test "$(field_of "$st" dirty)" -gt $((NBLOCKS / 4))
assert_ok "a write during the drain completes in under 2 s (took $wrote_ms ms)" \
	test $wrote_ms -lt 2000

wait_field "$vol" state idle 120 || die "the drain did not end: $(status_line "$vol")"
# The write may have come before or after writeback read the block: if
# after, the block was kept dirty; either way, one more drain puts it on
# the origin.
assert_ok "at most the rewritten block left dirty" test "$(sf "$vol" dirty)" -le 1
drain "$vol" 60
assert_ok "the volume has the new data" same "$vol" $last "$tmp/new"
assert_ok "the origin has the new data" same "$ORIGIN" $last "$tmp/new"
python3 - "$ORIGIN" $NBLOCKS <<'PY' || die "the origin lacks a written-back block"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for i in range(int(sys.argv[2]) - 1):
    if int.from_bytes(os.pread(fd, 8, 2 * i * 4096), "little") != i:
        sys.exit(f"block {2 * i}: wrong data on the origin")
PY
stash_remove "$vol"
