#!/bin/bash
# desc: discard invalidates cached blocks; in write-back a discarded dirty block is never written back
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd python3
stash_load_module

cache_setup 32 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/old" 512
put "$ORIGIN" "$tmp/old" 0

# discard_blocks DEV BLOCK COUNT [SKIP_SECTORS]: discard COUNT blocks from
# BLOCK, less SKIP_SECTORS at the start.
discard_blocks() {
	discard "$1" $(($2 * 4096 + ${4:-0} * 512)) $(($3 * 4096 - ${4:-0} * 512))
}

# --- Write-through: cached clean blocks ---------------------------------
stash_create dwt "$ORIGIN" "$CACHE" writethrough sequential_cutoff 0
vol=$STASH_DEV
read_twice "$vol" 0 256
assert_eq 256 "$(used_blocks "$vol")" "cached blocks after warming"
st0=$(status_line "$vol")
discard_blocks "$vol" 64 128
st1=$(status_line "$vol")
log "after discarding blocks 64..191: $st1"
assert_eq 128 "$(delta "$st0" "$st1" invalidations)" "invalidations by the discard"
assert_eq 128 "$(used_blocks "$vol")" "cached blocks after the discard"
# A discard that covers a clean block only in part may drop it or keep it.
discard_blocks "$vol" 10 1 3
assert_match '^12[78]$' "$(used_blocks "$vol")" "cached blocks after discarding part of block 10"
# The blocks left are still hits; the discarded ones are misses.
st0=$(status_line "$vol")
get "$vol" 0 10 >/dev/null
get "$vol" 64 128 >/dev/null
st1=$(status_line "$vol")
assert_eq 10 "$(delta "$st0" "$st1" read_hits)" "hits on blocks the discard did not touch"
assert_eq 128 "$(delta "$st0" "$st1" read_misses)" "misses on discarded blocks"
stash_remove "$vol"

# --- Write-back: dirty blocks --------------------------------------------
put "$ORIGIN" "$tmp/old" 0
stash_create dwb "$ORIGIN" "$CACHE" writeback high_watermark 100 idle_ms 0 sequential_cutoff 0
vol=$STASH_DEV
rand_file "$tmp/new" 256
put "$vol" "$tmp/new" 0
assert_eq 256 "$(sf "$vol" dirty)" "dirty after writing 256 blocks"
st0=$(status_line "$vol")
discard_blocks "$vol" 100 100
# A partial discard of a dirty block keeps it (its other sectors are only
# in the cache).
discard_blocks "$vol" 20 1 1
st1=$(status_line "$vol")
log "after discarding 100 dirty blocks and part of one: $st1"
assert_eq 156 "$(field_of "$st1" dirty)" "dirty after the discards"
assert_eq 156 "$(used_blocks "$vol")" "cached blocks after the discards"
assert_eq 100 "$(delta "$st0" "$st1" invalidations)" "invalidations by the discards"
assert_eq 0 "$(delta "$st0" "$st1" written_back)" "written back by the discards"

ws0=$(dev_stat "$ORIGIN" write_sectors)
assert_ok "flush" dmsetup message "$vol" 0 flush
wait_clean "$vol" 30
ws1=$(dev_stat "$ORIGIN" write_sectors)
log "origin write sectors during the flush: $((ws1 - ws0))"
assert_eq $((156 * 8)) $((ws1 - ws0)) "sectors written back (the 156 blocks left dirty)"
assert_eq 156 "$(sf "$vol" written_back)" "written_back after the flush"
# The discarded blocks' new data never reached the origin: the discard went
# down to it (passdown is the default), so it has there the old data if
# brd ignores discards (6.1), zeros if it frees the pages (6.12: "brd:
# implement discard support"); the new data everywhere else.
if [ "$(cat /sys/block/ram0/queue/discard_max_bytes)" -gt 0 ]; then
	assert_ok "origin reads zeros under the discard (brd discards)" \
		cmp -s <(get "$ORIGIN" 100 100) <(head -c $((100 * 4096)) /dev/zero)
else
	assert_ok "origin keeps the old data under the discard" \
		cmp -s <(get "$ORIGIN" 100 100) <(dd if="$tmp/old" bs=4k skip=100 count=100 status=none)
fi
assert_ok "origin has blocks 0..99 written back" \
	cmp -s <(get "$ORIGIN" 0 100) <(dd if="$tmp/new" bs=4k count=100 status=none)
assert_ok "origin has blocks 200..255 written back" \
	cmp -s <(get "$ORIGIN" 200 56) <(dd if="$tmp/new" bs=4k skip=200 count=56 status=none)
stash_remove "$vol"
