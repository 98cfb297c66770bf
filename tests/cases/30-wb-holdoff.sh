#!/bin/bash
# desc: write-back with high_watermark 100 idle_ms 0 holds every write in the cache; flush writes each dirty block back once, merged
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
stash_load_module

# Cache 8 MiB (2048 blocks); the writes below dirty 1124 of them (55%),
# above the default high watermark (50%): only high_watermark 100 holds
# them back.
cache_setup 64 8
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
dd if=/dev/urandom of="$ORIGIN" bs=1M count=64 oflag=direct status=none
dd if="$ORIGIN" of="$tmp/origin-before" bs=1M iflag=direct status=none

stash_create hold "$ORIGIN" "$CACHE" writeback high_watermark 100 idle_ms 0 sequential_cutoff 0
vol=$STASH_DEV
ow0=$(dev_writes "$ORIGIN")
ws0=$(dev_stat "$ORIGIN" write_sectors)

# 1024 contiguous blocks at block 4096, written 64 KiB at a time, and 100
# scattered single blocks (every third block from 10000).
rand_file "$tmp/run" 1024
dd if="$tmp/run" of="$vol" bs=64k seek=$((4096 / 16)) oflag=direct conv=notrunc status=none ||
	die "contiguous write failed"
rand_file "$tmp/scatter" 100
for ((i = 0; i < 100; i++)); do
	dd if="$tmp/scatter" of="$vol" bs=4k skip=$i seek=$((10000 + 3 * i)) count=1 \
		oflag=direct conv=notrunc status=none || die "scattered write $i failed"
done
log "after writes: $(status_line "$vol")"
assert_eq 1124 "$(sf "$vol" dirty)" "dirty blocks after the writes"

# Nothing reaches the origin, not even after a while (the waker runs every
# second).
sleep 3
assert_eq "$ow0" "$(dev_writes "$ORIGIN")" "origin write I/Os while holding off"
assert_eq 1124 "$(sf "$vol" dirty)" "dirty blocks after 3 s"
assert_eq idle "$(sf "$vol" state)" "state while holding off"

# The volume returns the new data, the origin still the old.
assert_ok "volume has the contiguous data" same "$vol" 4096 "$tmp/run"
assert_fails "origin has the contiguous data before flush" same "$ORIGIN" 4096 "$tmp/run"
for i in 0 37 99; do
	assert_ok "volume has scattered block $i" \
		cmp -s <(get "$vol" $((10000 + 3 * i)) 1) <(dd if="$tmp/scatter" bs=4k skip=$i count=1 status=none)
	assert_ok "origin has the old scattered block $i" \
		cmp -s <(get "$ORIGIN" $((10000 + 3 * i)) 1) \
		<(dd if="$tmp/origin-before" bs=4k skip=$((10000 + 3 * i)) count=1 status=none)
done
assert_eq "$ow0" "$(dev_writes "$ORIGIN")" "origin write I/Os after reading"

# flush: everything goes back, once.
assert_ok "flush" dmsetup message "$vol" 0 flush
wait_clean "$vol" 60
ow1=$(dev_writes "$ORIGIN")
ws1=$(dev_stat "$ORIGIN" write_sectors)
log "after flush: $(status_line "$vol")"
log "origin: $((ow1 - ow0)) write I/Os, $((ws1 - ws0)) sectors"
assert_eq $((1124 * 8)) $((ws1 - ws0)) "origin write sectors (each dirty block exactly once)"
assert_eq 1124 "$(sf "$vol" written_back)" "written_back"
# Merged: the contiguous blocks go in runs of up to 1 MiB (4 runs), the
# scattered ones one by one.
assert_ok "origin write I/Os ($((ow1 - ow0))) <= 4 + 100" test $((ow1 - ow0)) -le 104
assert_ok "origin equals the volume" same_devs "$ORIGIN" "$vol"
assert_ok "origin has the contiguous data" same "$ORIGIN" 4096 "$tmp/run"
stash_remove "$vol"
