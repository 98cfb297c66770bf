#!/bin/bash
# desc: write-around: writes never reach the cache device, invalidate cached blocks, and the next read is a miss with the new data
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
stash_load_module

cache_setup 32 8
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

# Old data on the origin; the stash volume caches a 256-block range of it.
rand_file "$tmp/old" 256
put "$ORIGIN" "$tmp/old" 100
# Volatile: a persistent cache would (rightly) commit the invalidations to
# its metadata on the cache device; here no write may reach it at all.
stash_create wa "$ORIGIN" "$CACHE" writearound volatile sequential_cutoff 0
vol=$STASH_DEV
read_twice "$vol" 100 256
st=$(status_line "$vol")
log "warm: $st"
assert_eq 256 "$(field_of "$st" promotions)" "promotions after reading the range twice"
assert_eq 256 "$(used_blocks "$vol")" "cache blocks used after warming"

# Write every cached block: whole blocks, 512 bytes in the middle of block
# 150, and 6 KiB at an unaligned offset across blocks 200..202.
rand_file "$tmp/new" 256
head -c 512 /dev/urandom >"$tmp/small"
head -c 6144 /dev/urandom >"$tmp/span"
cw0=$(dev_writes "$CACHE")
ow0=$(dev_writes "$ORIGIN")
st0=$(status_line "$vol")
# new data on every block but 150 and 200..202
for r in "0 50" "51 49" "103 153"; do
	set -- $r
	dd if="$tmp/new" of="$vol" bs=4k skip="$1" seek=$((100 + $1)) count="$2" \
		oflag=direct conv=notrunc status=none || die "write of blocks $r failed"
done
dd if="$tmp/small" of="$vol" bs=512 seek=$((150 * 8 + 3)) oflag=direct conv=notrunc status=none ||
	die "small write failed"
dd if="$tmp/span" of="$vol" bs=512 seek=$((200 * 8 + 5)) oflag=direct conv=notrunc status=none ||
	die "spanning write failed"
st1=$(status_line "$vol")
log "after writes: $st1"
assert_eq "$cw0" "$(dev_writes "$CACHE")" "write I/Os on the cache device during the write phase"
assert_ne "$ow0" "$(dev_writes "$ORIGIN")" "write I/Os on the origin during the write phase"
assert_eq 256 "$(delta "$st0" "$st1" invalidations)" "invalidations by the writes"
assert_eq 0 "$(used_blocks "$vol")" "cache blocks used after writing every cached block"
assert_eq 0 "$(field_of "$st1" dirty)" "dirty blocks in write-around"

# Expected content: the old data under the partial writes, new elsewhere.
cp "$tmp/old" "$tmp/want"
for r in "0 50" "51 49" "103 153"; do
	set -- $r
	dd if="$tmp/new" of="$tmp/want" bs=4k skip="$1" seek="$1" count="$2" conv=notrunc status=none
done
dd if="$tmp/small" of="$tmp/want" bs=512 seek=$(((150 - 100) * 8 + 3)) conv=notrunc status=none
dd if="$tmp/span" of="$tmp/want" bs=512 seek=$(((200 - 100) * 8 + 5)) conv=notrunc status=none

# The origin has it all, and a read through the volume is a miss on every
# block and returns the new data.
assert_ok "origin holds the new data" same "$ORIGIN" 100 "$tmp/want"
assert_ok "volume returns the new data" same "$vol" 100 "$tmp/want"
st2=$(status_line "$vol")
log "after reading back: $st2"
assert_eq 0 "$(delta "$st1" "$st2" read_hits)" "read hits on the rewritten blocks"
assert_eq 256 "$(delta "$st1" "$st2" read_misses)" "read misses on the rewritten blocks"

# Those misses promoted the blocks again (they were seen before): now they
# are hits, with the new data, and still nothing is dirty.
assert_eq 256 "$(used_blocks "$vol")" "cache blocks used after the read-back promoted"
assert_ok "volume returns the new data from the cache" same "$vol" 100 "$tmp/want"
st3=$(status_line "$vol")
assert_eq 256 "$(delta "$st2" "$st3" read_hits)" "read hits after the promotion"

# A write to an uncached block is a write miss and leaves the cache alone.
cw0=$(dev_writes "$CACHE")
st0=$(status_line "$vol")
rand_file "$tmp/far" 16
put "$vol" "$tmp/far" 1000
st1=$(status_line "$vol")
assert_eq "$cw0" "$(dev_writes "$CACHE")" "cache write I/Os for uncached writes"
assert_eq 16 "$(delta "$st0" "$st1" write_misses)" "write misses for uncached writes"
assert_eq 0 "$(delta "$st0" "$st1" invalidations)" "invalidations for uncached writes"
assert_ok "origin holds the uncached writes" same "$ORIGIN" 1000 "$tmp/far"

stash_remove "$vol"
