#!/bin/bash
# desc: checksums ('checksum'): bits flipped on the cache device under a live volume are caught: a clean block is read from the origin and dropped, a dirty block's read fails with EIO and writeback skips it (the origin keeps its older copy, a flush fails) until a whole-block write replaces it; partial reads and writes and 64 KiB blocks; a persistent cache catches damage done while it is down, and a power cut after a write in place brings no false mismatch
#
# Breaks this catches (each tried once): no check at read-hit completion
# (stash_end_io: recheck never set) fails the clean and dirty read checks;
# no check before writeback (run_check() not called) fails "origin kept
# its copy" and the checksum_bad count of part C; a write in place that
# does not wait for its slot to be recorded open fails part F.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
require_root
require_cmd jq
stash_load_module
stashctl=${STASH_STASHCTL:-$STASH_REPO/userspace-tools/stashctl}

cache_setup 64 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

# flip SLOT BYTE [BLOCK_BYTES [DATA_START]]: invert one byte of cache slot
# SLOT on the cache device, behind the volume's back (a volatile cache's
# data starts at sector 0; a fresh cache hands out slots 0, 1, 2... in
# order; DATA_START: a persistent cache's first data sector).
flip() {
	python3 - "$CACHE" "$1" "$2" "${3:-4096}" "${4:-0}" <<-'PY' || die "cannot flip slot $1"
	import mmap, os, sys
	dev, slot, off, bb, ds = sys.argv[1], *map(int, sys.argv[2:6])
	fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
	buf = mmap.mmap(-1, 4096)
	pos = ds * 512 + slot * bb + off // 4096 * 4096
	os.preadv(fd, [buf], pos)
	buf[off % 4096] ^= 0xff
	os.pwritev(fd, [buf], pos)
	os.close(fd)
	PY
}

# read_part DEV BYTE LEN: LEN bytes at BYTE, direct, to stdout.
read_part() {
	python3 - "$@" <<-'PY'
	import mmap, os, sys
	dev, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
	fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
	buf = mmap.mmap(-1, max(n, 4096))
	got = os.preadv(fd, [memoryview(buf)[:n]], off)
	sys.stdout.buffer.write(buf[:got])
	PY
}

# write_part DEV BYTE FILE: FILE at BYTE, direct; fails if the write does.
write_part() {
	python3 - "$@" <<-'PY' 2>/dev/null
	import mmap, os, sys
	dev, off, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
	data = open(path, "rb").read()
	fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
	buf = mmap.mmap(-1, max(len(data), 4096))
	buf[:len(data)] = data
	os.pwritev(fd, [memoryview(buf)[:len(data)]], off)
	PY
}

rand_file "$tmp/old" 64
rand_file "$tmp/a" 8
rand_file "$tmp/b" 8
rand_file "$tmp/c" 1
head -c 512 /dev/urandom >"$tmp/sector"
put "$ORIGIN" "$tmp/old" 0

# --- A: clean blocks (write-through): caught, served from the origin, dropped.
stash_create cs "$ORIGIN" "$CACHE" writethrough volatile checksum sequential_cutoff 0
vol=$STASH_DEV
assert_eq on "$(sf "$vol" checksum)" "checksum= in the status"
put "$vol" "$tmp/a" 0			# write-through misses: slots 0..7
assert_eq 8 "$(used_blocks "$vol")" "blocks cached by the writes"
assert_ok "cached blocks read back" same "$vol" 0 "$tmp/a"
assert_eq 0 "$(sf "$vol" checksum_errors)" "no mismatch before the flip"
st0=$(status_line "$vol")
flip 3 100
dd if="$tmp/a" of="$tmp/a3" bs=4k skip=3 count=1 status=none
assert_ok "a flipped clean block reads right (from the origin)" same "$vol" 3 "$tmp/a3"
st1=$(status_line "$vol")
log "after a read of the flipped block: $st1"
assert_eq 1 "$(delta "$st0" "$st1" checksum_errors)" "mismatch counted"
assert_eq 1 "$(delta "$st0" "$st1" invalidations)" "the clean block dropped"
assert_eq 1 "$(delta "$st0" "$st1" cache_errors)" "counted as a cache read error"
assert_eq 7 "$(field_of "$st1" cache_blocks | cut -d/ -f1)" "blocks cached after the drop"
assert_eq 0 "$(field_of "$st1" checksum_bad)" "no bad dirty block"
# A read of part of a block is checked through the whole block.
flip 5 4000
cmp -s <(read_part "$vol" $((5 * 4096 + 512)) 512) \
	<(dd if="$tmp/a" bs=512 skip=$((5 * 8 + 1)) count=1 status=none) ||
	die "a 512-byte read of a flipped block returned wrong data"
st2=$(status_line "$vol")
assert_eq 1 "$(delta "$st1" "$st2" checksum_errors)" "mismatch under a partial read"
assert_ok "the other blocks still read right" same "$vol" 0 "$tmp/a"
assert_eq 2 "$(sf "$vol" checksum_errors)" "no false positive on the good blocks"
# A partial write-through write to a flipped clean block drops it too.
flip 6 10
write_part "$vol" $((6 * 4096)) "$tmp/sector" || die "a partial write to a flipped clean block failed"
cp "$tmp/a" "$tmp/a6"
dd if="$tmp/sector" of="$tmp/a6" bs=512 seek=48 conv=notrunc status=none
assert_ok "the partial write landed (origin copy)" same "$vol" 0 "$tmp/a6"
assert_eq 3 "$(sf "$vol" checksum_errors)" "mismatch under a partial write"
stash_remove "$vol"

# --- B: dirty blocks (write-back): EIO, stays dirty, never written back.
put "$ORIGIN" "$tmp/old" 0
stash_create cs "$ORIGIN" "$CACHE" writeback volatile checksum sequential_cutoff 0 \
	idle_ms 0 high_watermark 100 error_threshold 0
vol=$STASH_DEV
put "$vol" "$tmp/b" 0			# write-back misses: slots 0..7, dirty
assert_eq 8 "$(sf "$vol" dirty)" "dirty blocks"
flip 2 7
kmsg_mark
assert_fails "a read of a flipped dirty block fails" try_read "$vol" 2 1
assert_eq 1 "$(sf "$vol" checksum_errors)" "mismatch counted"
assert_eq 1 "$(sf "$vol" checksum_bad)" "the dirty block marked bad"
assert_eq 8 "$(sf "$vol" dirty)" "still dirty"
dd if="$tmp/b" of="$tmp/b4" bs=4k skip=4 count=4 status=none
assert_ok "the other dirty blocks read right" same "$vol" 4 "$tmp/b4"
assert_fails "a partial write to a bad dirty block fails" write_part "$vol" $((2 * 4096 + 1024)) "$tmp/sector"
assert_fails "a flush fails while a dirty block cannot be written back" fsync_dev "$vol"
wait_field "$vol" dirty 1 30 || die "good dirty blocks not written back: $(status_line "$vol")"
assert_ok "the bad block's origin copy is the old one" \
	cmp -s <(get "$ORIGIN" 2 1) <(dd if="$tmp/old" bs=4k skip=2 count=1 status=none)
assert_ok "the good blocks reached the origin" \
	cmp -s <(get "$ORIGIN" 3 5) <(dd if="$tmp/b" bs=4k skip=3 count=5 status=none)
assert_ok "writeback errors counted" test "$(sf "$vol" writeback_errors)" -ge 1
assert_match "checksum mismatch on dirty block 2 " "$(kmsg_since)" "the kernel log names the block"
json=$("$stashctl" status "${STASH_DM_PREFIX}cs" --json) || die "stashctl status"
assert_match '"checksum_bad": 1' "$json" "stashctl status reports the bad block"
# A whole-block write replaces it: good again, written back.
put "$vol" "$tmp/c" 2
assert_eq 0 "$(sf "$vol" checksum_bad)" "a whole-block write clears the bad mark"
assert_ok "the new block reads back" same "$vol" 2 "$tmp/c"
assert_ok "a flush succeeds again" fsync_dev "$vol"
assert_ok "the new block reached the origin" same "$ORIGIN" 2 "$tmp/c"
stash_remove "$vol"

# --- C: a flip nobody reads is caught before writeback.
put "$ORIGIN" "$tmp/old" 0
stash_create cs "$ORIGIN" "$CACHE" writeback volatile checksum sequential_cutoff 0 \
	idle_ms 0 high_watermark 100 error_threshold 0
vol=$STASH_DEV
put "$vol" "$tmp/b" 0
flip 5 2222
dmsetup message "$vol" 0 flush
wait_field "$vol" dirty 1 30 || die "good dirty blocks not written back: $(status_line "$vol")"
assert_eq 1 "$(sf "$vol" checksum_bad)" "writeback marked the block bad"
assert_ok "the origin kept its copy of the bad block" \
	cmp -s <(get "$ORIGIN" 5 1) <(dd if="$tmp/old" bs=4k skip=5 count=1 status=none)
discard "$vol" $((5 * 4096)) 4096
assert_eq 0 "$(sf "$vol" dirty)" "a discard drops the bad dirty block"
assert_eq 0 "$(sf "$vol" checksum_bad)" "and its bad mark"
stash_remove "$vol"

# --- D: 64 KiB blocks: 4 KiB reads and writes are parts of a block.
put "$ORIGIN" "$tmp/old" 0
stash_create cs "$ORIGIN" "$CACHE" writeback volatile checksum block_size 128 \
	sequential_cutoff 0 idle_ms 0 high_watermark 100 error_threshold 0
vol=$STASH_DEV
dd if="$tmp/old" bs=64k count=1 status=none >"$tmp/big"
dd if="$tmp/b" of="$tmp/b2" bs=4k count=2 status=none
cp "$tmp/big" "$tmp/big2"
dd if="$tmp/b2" of="$tmp/big2" bs=8k seek=1 conv=notrunc status=none
# One whole 64 KiB block (slot 0, dirty), then 8 KiB merged into it.
dd if="$tmp/big" of="$vol" bs=64k oflag=direct conv=notrunc status=none || die "64 KiB write"
dd if="$tmp/b2" of="$vol" bs=8k seek=1 oflag=direct conv=notrunc status=none || die "8 KiB write"
assert_eq 1 "$(sf "$vol" dirty)" "one dirty 64 KiB block"
assert_ok "64 KiB block after a merged 8 KiB write" same "$vol" 0 "$tmp/big2"
assert_eq 0 "$(sf "$vol" checksum_errors)" "no false positive on merged writes"
flip 0 $((9 * 4096 + 5)) 65536
assert_fails "a 4 KiB read of a flipped 64 KiB dirty block fails" try_read "$vol" 1 1
assert_eq 1 "$(sf "$vol" checksum_bad)" "the 64 KiB block marked bad"
dd if="$tmp/big" of="$vol" bs=64k oflag=direct conv=notrunc status=none || die "64 KiB write"
assert_ok "a whole-block write makes it good" same "$vol" 0 "$tmp/big"
drain "$vol"
assert_ok "written back" same "$ORIGIN" 0 "$tmp/big"
stash_remove "$vol"

# --- E: a persistent cache keeps the checksums in its metadata (format
# version 2): damage done while the volume is down is caught after it is
# loaded again, on a dirty block (EIO) and on a clean one (the origin).
put "$ORIGIN" "$tmp/old" 0
wipe_sb "$CACHE"
stash_create cs "$ORIGIN" "$CACHE" writeback checksum sequential_cutoff 0 \
	idle_ms 0 high_watermark 100 error_threshold 0
vol=$STASH_DEV
put "$vol" "$tmp/b" 0			# 8 dirty blocks
put "$vol" "$tmp/c" 8			# and a ninth, written back below
dmsetup message "$vol" 0 flush
wait_field "$vol" dirty 0 30 || die "not written back: $(status_line "$vol")"
put "$vol" "$tmp/b" 0			# dirty again, rewritten in place
assert_eq 8 "$(sf "$vol" dirty)" "dirty blocks before the reload"
stash_remove "$vol"
dump=$("$stashctl" dump "$CACHE" --json) || die "stashctl dump"
assert_eq 2 "$(jq .format_version <<<"$dump")" "format version of a checksum cache"
ds=$(jq .superblock.data_start <<<"$dump")
slot_of() { jq -r --argjson b "$1" '.mappings[] | select(.oblock == $b) | .cblock' <<<"$dump"; }
s3=$(slot_of 3) s8=$(slot_of 8)
[ -n "$s3" ] && [ -n "$s8" ] || die "blocks 3 and 8 not in the metadata: $dump"
assert_ne null "$(jq --argjson c "$s3" '.mappings[] | select(.cblock == $c) | .checksum' <<<"$dump")" \
	"a clean shutdown records the checksum of a dirty block"
flip "$s3" 99 4096 "$ds"
flip "$s8" 99 4096 "$ds"
stash_create cs "$ORIGIN" "$CACHE" writeback checksum sequential_cutoff 0 \
	idle_ms 0 high_watermark 100 error_threshold 0
vol=$STASH_DEV
assert_eq 8 "$(sf "$vol" dirty)" "dirty blocks after the reload"
assert_fails "a dirty block damaged while down fails its read" try_read "$vol" 3 1
assert_eq 1 "$(sf "$vol" checksum_bad)" "the damaged dirty block marked bad"
assert_ok "a clean block damaged while down reads right" same "$vol" 8 "$tmp/c"
assert_eq 2 "$(sf "$vol" checksum_errors)" "both mismatches counted"
dd if="$tmp/b" of="$tmp/b3" bs=4k skip=3 count=1 status=none
put "$vol" "$tmp/b3" 3
assert_ok "the other dirty blocks read right" same "$vol" 0 "$tmp/b"
drain "$vol"
assert_ok "written back" same "$ORIGIN" 0 "$tmp/b"
assert_eq 2 "$(sf "$vol" checksum_errors)" "no other mismatch"
stash_remove "$vol"

# --- F: a power cut right after a write in place to a dirty block whose
# checksum is committed.  The write must first wait for a commit that
# records the block open (no checksum): otherwise the device holds the new
# data under the old checksum, and after the cut the block fails its read.
# brd under dm-flakey: every write completed before the cut is durable,
# none after it is.  (Catches: stash_csum_open_locked() never asking the
# write to wait.)
size=$(dev_sectors /dev/ram1)
dm_create csflakey "0 $size flakey /dev/ram1 0 1000 0" || die "cannot create flakey"
fl=$(dm_path csflakey)
wipe_sb "$fl"
put "$ORIGIN" "$tmp/old" 0
stash_create cs "$ORIGIN" "$fl" writeback checksum sequential_cutoff 0 \
	idle_ms 0 high_watermark 100 commit_ms 60000
vol=$STASH_DEV
put "$vol" "$tmp/b" 0
# Commits until block 5 is recorded dirty and closed (a whole commit
# without writes to it).
for _ in 1 2 3; do
	fsync_dev "$vol" || die "fsync failed"
done
dump=$("$stashctl" dump "$fl" --json) || die "stashctl dump"
assert_ne null "$(jq '.mappings[] | select(.oblock == 5) | .checksum' <<<"$dump")" \
	"block 5 recorded with its checksum before the write"
put "$vol" "$tmp/c" 5			# in place, acknowledged, no flush
fln=${STASH_DM_PREFIX}csflakey
{ dmsetup suspend --noflush "$fln" &&
	dmsetup load "$fln" --table "0 $size flakey /dev/ram1 0 0 1000 1 drop_writes" &&
	dmsetup resume "$fln"; } || die "cannot cut the power"
stash_remove "$vol"			# its suspend commit is lost
dm_remove "$fl"
stash_create cs "$ORIGIN" /dev/ram1 writeback checksum sequential_cutoff 0 \
	idle_ms 0 high_watermark 100
vol=$STASH_DEV
assert_ok "the block written before the cut reads (new data: brd kept it)" same "$vol" 5 "$tmp/c"
assert_eq 0 "$(sf "$vol" checksum_errors)" "no mismatch after the power cut"
dd if="$tmp/b" of="$tmp/b0" bs=4k count=5 status=none
assert_ok "the other dirty blocks survive the cut" same "$vol" 0 "$tmp/b0"
drain "$vol"
stash_remove "$vol"
