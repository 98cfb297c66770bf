#!/bin/bash
# desc: write-back with high_watermark 100 idle_ms 0: writes beyond a cache full of dirty blocks go around to the origin and complete; a multi-block write reaches the origin in one piece per run of uncached blocks, and the data is right at any alignment
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

# Part 2.  Once every slot is dirty, a write of many uncached blocks goes
# around as one origin write per run of them, not one per block.  The
# origin is two regions: A (blocks 0..1023, the ones made dirty) on ram0
# behind a dm-delay whose 5 s write delay keeps writeback from cleaning a
# slot meanwhile, and B (blocks 1024..8191) on ram2 behind a dm-linear that
# counts the writes reaching it.  Writeback writes only to A.
dm_cleanup_all || die "cannot remove the devices of part 1"
brd_teardown
brd_setup 3 $((32 * 1024))
lin_create cache2 /dev/ram1 $((4 * 2048))
cache=$LIN_DEV
lin_create region-b /dev/ram2 $((28 * 2048))
region_b=$LIN_DEV
modprobe dm_delay || die "cannot load dm_delay"
# origin_table WRITE_DELAY_MS: region A delayed, region B straight.
origin_table() {
	printf '0 8192 delay /dev/ram0 0 0 /dev/ram0 0 %s\n8192 57344 linear %s 0\n' \
		"$1" "$region_b"
}
origin_table 5000 | dmsetup create "${STASH_DM_PREFIX}origin2" ||
	die "cannot create the two-region origin"
origin=$(dm_path origin2)
stash_create full2 "$origin" "$cache" writeback volatile high_watermark 100 \
	idle_ms 0 sequential_cutoff 0
vol=$STASH_DEV
nr=$(total_blocks "$vol")
assert_eq 1024 "$nr" "cache blocks of the 4 MiB cache"
# ref: what the volume must hold (the origin starts zeroed).
head -c $((32 << 20)) /dev/zero >"$tmp/ref"

rand_file "$tmp/dirty" "$nr"
put "$vol" "$tmp/dirty" 0
dd if="$tmp/dirty" of="$tmp/ref" bs=4k conv=notrunc status=none
assert_eq "$nr" "$(sf "$vol" dirty)" "dirty blocks after filling the cache"

# A 1 MiB write of uncached blocks 2048..2303.  Its first block finds no
# slot (the clock sweep that learns so makes the cache known to be full):
# it goes around on its own, the other 255 blocks as one run.
rand_file "$tmp/big" 256
dmsetup message "$vol" 0 reset_counters || die "reset_counters failed"
bw0=$(dev_writes "$region_b") cw0=$(dev_writes "$cache")
dd if="$tmp/big" of="$vol" bs=1M seek=8 count=1 oflag=direct conv=notrunc status=none ||
	die "1 MiB write over a full cache failed"
bw1=$(dev_writes "$region_b") cw1=$(dev_writes "$cache")
dd if="$tmp/big" of="$tmp/ref" bs=1M seek=8 conv=notrunc status=none
st=$(status_line "$vol")
log "1 MiB write over a full cache: region B writes $((bw1 - bw0)), cache writes $((cw1 - cw0)): $st"
assert_eq 256 "$(field_of "$st" bypassed)" "blocks of the 1 MiB write that went around"
assert_eq 256 "$(field_of "$st" write_misses)" "write misses of the 1 MiB write"
assert_eq 0 "$((cw1 - cw0))" "cache device writes of the 1 MiB write"
assert_ok "origin writes ($((bw1 - bw0))) for 256 blocks: at most 24, not one per block" \
	test "$((bw1 - bw0))" -ge 1 -a "$((bw1 - bw0))" -le 24
assert_ok "region B holds the 1 MiB write" \
	cmp -s <(get "$region_b" 1024 256) "$tmp/big"

# Unaligned writes, still over the full cache: runs that start or end
# inside a block, and one that starts over dirty blocks of region A (they
# are updated in the cache) and goes on over uncached ones.
assert_ok "unaligned writes over a full cache read back right, and the whole volume" \
	python3 "$STASH_REPO/tests/tools/unaligned-io.py" "$vol" "$tmp/ref" \
	-w $((3000 * 4096 + 512)):$((100 * 4096 + 1024)) \
	-w $((1020 * 4096 + 1536)):$((12 * 4096)) \
	-w $((2303 * 4096)):$((2 * 4096 + 512)) \
	-r 0:$((8192 * 4096))
st=$(status_line "$vol")
assert_eq 0 "$(field_of "$st" origin_errors)" "origin errors"
assert_eq 0 "$(field_of "$st" cache_errors)" "cache errors"

# Lift the write delay (suspending dm-delay sends its delayed writes on),
# drain, and check the origin block by block.
origin_table 0 | dmsetup load "${STASH_DM_PREFIX}origin2" || die "cannot load the origin table"
dmsetup suspend "${STASH_DM_PREFIX}origin2" && dmsetup resume "${STASH_DM_PREFIX}origin2" ||
	die "cannot swap the origin table"
drain "$vol"
assert_ok "the origin holds every write after the drain" \
	cmp -s <(dd if="$origin" bs=1M iflag=direct status=none) "$tmp/ref"
stash_remove "$vol"
