#!/bin/bash
# desc: write-back with high_watermark 100 idle_ms 0: writes beyond a cache full of dirty blocks go around to the origin and complete
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
stash_load_module

# Cache 4 MiB (1024 blocks); 2048 blocks are written.  Once every slot is
# dirty a write miss finds no slot: it goes around to the origin (counted
# in bypassed) instead of waiting, and writeback starts although a
# watermark of 100% is never exceeded.
cache_setup 32 4
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
stash_create full "$ORIGIN" "$CACHE" writeback volatile high_watermark 100 idle_ms 0 sequential_cutoff 0
vol=$STASH_DEV
nr=$(total_blocks "$vol")
rand_file "$tmp/a" $((2 * nr))

put "$vol" "$tmp/a" 0 &
writer=$!
secs=0
while kill -0 $writer 2>/dev/null && [ $secs -lt 30 ]; do
	sleep 1
	secs=$((secs + 1))
done
if kill -0 $writer 2>/dev/null; then
	st=$(status_line "$vol")
	# Unblock the writer (a flush drains), so that the run can go on.
	dmsetup message "$vol" 0 flush
	wait $writer
	drain "$vol"
	die "writes stalled for 30 s with every cache block dirty: $st"
fi
wait $writer || die "the writes failed"
st=$(status_line "$vol")
log "after the writes: $st"
assert_ok "writes that found no slot went around ($(field_of "$st" bypassed))" \
	test "$(field_of "$st" bypassed)" -gt 0
assert_ok "volume has the data" same "$vol" 0 "$tmp/a"
drain "$vol"
assert_ok "origin has the data after flush" same "$ORIGIN" 0 "$tmp/a"
stash_remove "$vol"
