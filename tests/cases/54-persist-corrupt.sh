#!/bin/bash
# desc: corrupt, truncated or foreign metadata is refused with a clear stash error or recovered from the good copy, and stashctl check says which; never an oops
#
# Each case makes a persistent cache (ram0) for the origin (ram1), writes
# 150 O_SYNC blocks with crashio and removes it, then damages the cache
# device (offsets from kmod/stash-format.h: superblock copy k at sector 8k,
# page p copy k at 16 + (2p + k) * 8; stashctl dump tells which copy is
# newest, stash-md forges fields with a valid checksum), runs stashctl check
# on it (its exit status and message must say what the kernel will do:
# 6 damaged but loaded from the other copy, 7 refused, 8 not dm-stash) and
# creates the stash again:
#   - recovered: the create succeeds and the data checks (all writes when
#     the newest metadata survived, else every block holds a value once
#     written to it);
#   - refused: the create fails, the kernel log has the expected stash
#     message, no dm device is left.
# The kernel log must stay free of splats (tests/run checks it).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup

rand_seed
brd_setup 3 16384
cache=/dev/ram0 origin=/dev/ram1 spare=/dev/ram2
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
before=$(dm_names)
opts=(writeback high_watermark 100 idle_ms 0)
# The start of the kernel's messages about the device under test: device
# mapper names a device by its major:minor (dm_device_name()), which a
# table that is refused never shows anywhere else.
km="stash: [0-9]+:[0-9]+: "

# fresh: a cache with 150 durable writes, removed cleanly.
fresh() {
	zero_dev "$cache"
	zero_dev "$origin" 4
	pstash_create cor "$origin" "$cache" "${opts[@]}"
	crashio write -S -d "$STASH_DEV" -n 512 -s "$SEED" -l "$tmp/log" -c 150 >/dev/null ||
		die "writer failed"
	stash_remove "$STASH_DEV"
	md_dump "$cache" "$tmp/md"
	md_check "$cache" 0 "clean: "
}

# newest_page P: the copy of page P recovery would take now.
newest_page() {
	jq ".pages[$1].copy" "$tmp/md"
}

# flip_bit DEV SECTOR_START NSECTORS: flip one random bit in that range
# (direct I/O: the device's page cache does not see what dm wrote).
flip_bit() {
	local dev=$1 start=$2 n=$3 off sec byte

	off=$(((RANDOM * 32768 + RANDOM) % (n * 512)))
	sec=$((start + off / 512))
	dd if="$dev" of="$tmp/sector" bs=512 skip=$sec count=1 iflag=direct status=none
	byte=$(od -An -tu1 -j $((off % 512)) -N1 "$tmp/sector" | tr -d ' ')
	byte=$((byte ^ (1 << (RANDOM % 8))))
	printf "\\$(printf %03o $byte)" |
		dd of="$tmp/sector" bs=1 seek=$((off % 512)) count=1 conv=notrunc status=none
	dd if="$tmp/sector" of="$dev" bs=512 seek=$sec count=1 oflag=direct conv=notrunc status=none
	log "flipped a bit in byte $((start * 512 + off)) of $dev"
}

zero_range() {
	dd if=/dev/zero of="$1" bs=512 seek="$2" count="$3" conv=notrunc oflag=direct status=none
}

# recovered WHAT [--kmsg REGEX] CHECK_ARGS...: the stash must come up (the
# kernel log matching REGEX) and check.
recovered() {
	local what=$1 re=

	shift
	if [ "$1" = --kmsg ]; then
		re=$2
		shift 2
	fi
	kmsg_mark
	dm_create cor "$(stash_table "$origin" "$cache" "${opts[@]}")" ||
		die "$what: refused: $(kmsg_since | grep stash)"
	STASH_DEV=$(dm_path cor)
	kmsg_since | grep stash
	[ -z "$re" ] || assert_match "$re" "$(kmsg_since)" "$what: kernel message"
	assert_status_sane "$STASH_DEV"
	assert_ok "$what: data" crashio check -d "$STASH_DEV" -l "$tmp/log" "$@"
	stash_remove "$STASH_DEV"
	log "$what: recovered"
}

# refused WHAT REGEX [TABLE]: the create must fail with REGEX in the kernel
# log, leaving nothing behind.
refused() {
	local what=$1 re=$2 table=${3:-$(stash_table "$origin" "$cache" "${opts[@]}")} out

	kmsg_mark
	if dm_create cor "$table" 2>"$tmp/err"; then
		die "$what: the damaged cache was accepted: $(dmsetup status "$(dm_path cor)")"
	fi
	out=$(kmsg_since)
	echo "$out" | grep -E 'stash|device-mapper'
	assert_match "$re" "$out" "$what: kernel message"
	assert_match 'stash: ' "$out" "$what: a stash message"
	assert_eq "$before" "$(dm_names)" "$what: dm devices after the refused create"
	log "$what: refused"
}

sb_copy=$((RANDOM % 2))
log "=== one superblock copy with a flipped bit (copy $sb_copy): the other is used"
fresh
flip_bit "$cache" $((sb_copy * 8)) 8
md_check "$cache" 6 "damaged: superblock copy $sb_copy: .*the kernel uses copy $((1 - sb_copy))"
recovered "superblock copy $sb_copy flipped" \
	--kmsg "${km}cache device: superblock copy $sb_copy is damaged \(.*\): using copy $((1 - sb_copy))"

log "=== the other superblock copy with a flipped bit"
fresh
flip_bit "$cache" $(((1 - sb_copy) * 8)) 8
md_check "$cache" 6 "damaged: superblock copy $((1 - sb_copy)): "
recovered "superblock copy $((1 - sb_copy)) flipped" \
	--kmsg "${km}cache device: superblock copy $((1 - sb_copy)) is damaged"

log "=== both superblock copies with a flipped bit outside the magic: refused as damaged"
fresh
flip_bit "$cache" 1 7
flip_bit "$cache" 9 7
md_check "$cache" 7 "corrupt: superblock copy 1: superblock checksum mismatch \(a damaged dm-stash superblock\)"
refused "both superblocks flipped" \
	"${km}cache device: superblock copy 0: superblock checksum mismatch"
out=$(kmsg_since)
assert_match "Damaged dm-stash superblock \(both copies\)" "$out" "damaged superblocks: table error"
assert_match "stashctl check" "$out" "damaged superblocks: what to do"
if grep -q "not blank, not dm-stash" <<<"$out"; then
	die "damaged superblocks: refused as a foreign device"
fi

log "=== both superblock copies forged with a valid checksum: refused"
for f in "version 3" "flags 6" "nr_cblocks 17" "data_start 24" "block_sectors 12" \
	 "md_start 8" "reserved 1" "mode 7" "magic 0x12345678"; do
	fresh
	stash_md forge-sb "$cache" 0 $f
	stash_md forge-sb "$cache" 1 $f
	case $f in
	version*)
		md_check "$cache" 7 "superblock copy 0: on-disk format version 3"
		refused "superblocks with $f" "${km}cache device: superblock copy 0: format version 3, not 1 or 2"
		assert_match "dm-stash cache of another format version" "$(kmsg_since)" "$f: table error"
		;;
	magic*)
		md_check "$cache" 8 "no dm-stash superblock"
		refused "superblocks with $f" "${km}cache device: no dm-stash superblock.*|not blank, not dm-stash"
		;;
	*)
		md_check "$cache" 7 "corrupt: superblock copy 0: superblock (has unknown flags or fields|geometry is inconsistent)"
		refused "superblocks with $f" "${km}cache device: superblock copy 0: superblock "
		assert_match "Damaged dm-stash superblock" "$(kmsg_since)" "$f: table error"
		;;
	esac
done

log "=== the older copy of metadata page 0 zeroed: recovered in full"
fresh
old=$((1 - $(newest_page 0)))
zero_range "$cache" $((16 + old * 8)) 8
md_check "$cache" 6 "damaged: metadata page 0 copy $old is all zero"
recovered "page 0 copy $old (older) zeroed"

log "=== the newest copy of metadata page 0 zeroed: the older copy is used"
fresh
new=$(newest_page 0)
zero_range "$cache" $((16 + new * 8)) 8
md_check "$cache" 6 "damaged: metadata page 0 copy $new is all zero.*uses copy $((1 - new))"
stashctl dump --json "$cache" | jq -c '.pages[0]'
recovered "page 0 copy $new (newest) zeroed" -w 0

# The newest copy of a page, damaged with its index and sequence intact, is
# the page's newest committed version: the older copy may map slots reused
# since, so the cache is refused (docs/format.md, Recovery, step 2).
log "=== the newest copy of page 0 with a flipped bit past its header: refused"
fresh
new=$(newest_page 0)
seq=$(jq ".pages[0].seq" "$tmp/md")
flip_bit "$cache" $((16 + new * 8 + 1)) 7
md_check "$cache" 7 "corrupt: metadata page 0: its newest copy \(copy $new, sequence $seq, .*\) is damaged: metadata page checksum mismatch"
refused "page 0 copy $new (newest) flipped" "${km}metadata page 0: its newest copy \(sequence $seq\) is damaged"

log "=== the newest copy of page 0 with an out-of-range entry (valid checksum): refused"
fresh
new=$(newest_page 0)
seq=$(jq ".pages[0].seq" "$tmp/md")
stash_md forge-page "$cache" 0 "$new" entry3 $(((1 << 63) | (1 << 40)))
md_check "$cache" 7 "corrupt: metadata page 0: its newest copy \(copy $new, sequence $seq, .*\) is damaged: metadata entry out of range"
refused "page 0 copy $new (newest) out of range" "${km}metadata page 0: its newest copy \(sequence $seq\) is damaged"

log "=== both copies of page 0 zeroed: refused"
fresh
zero_range "$cache" 16 16
md_check "$cache" 7 "corrupt: metadata page 0: no valid copy \(copy 0: all zero; copy 1: all zero\)"
refused "page 0 both copies zeroed" "${km}metadata page 0: no valid copy"

log "=== both copies of page 0 with a bad index: refused"
fresh
stash_md forge-page "$cache" 0 0 index 5
stash_md forge-page "$cache" 0 1 index 5
md_check "$cache" 7 "corrupt: metadata page 0: no valid copy \(copy 0: metadata page in the wrong place"
refused "page 0 misplaced" "${km}metadata page 0: no valid copy \(metadata page in the wrong place\)"

log "=== the newest page 0 maps one origin block twice: refused"
fresh
new=$(newest_page 0)
e=$(dd if="$cache" bs=512 skip=$((16 + new * 8)) count=1 iflag=direct status=none |
	od -An -tu8 -j 16 -N8 | tr -d ' ')
[ "$e" != 0 ] || die "slot 0 of page 0 is empty"
stash_md forge-page "$cache" 0 "$new" entry509 "$e"
md_check "$cache" 7 "corrupt: origin block [0-9]+ is mapped by slots 0 and 509 in one commit"
refused "one origin block in two slots" "${km}metadata maps origin block [0-9]+ twice"

log "=== a cache device smaller than formatted (truncated): refused"
fresh
linear_create cor-small "$cache" 0 $(($(dev_sectors "$cache") / 2))
md_check "$LINEAR_DEV" 7 "corrupt: the device has [0-9]+ sectors, the cache was formatted for"
before=$(dm_names)
refused "truncated cache" 'Cache device size differs from when it was formatted' \
	"$(stash_table "$origin" "$LINEAR_DEV" "${opts[@]}")"
dm_remove_name cor-small
zero_dev "$spare"
linear_create cor-small "$spare" 0 128
before=$(dm_names)
refused "blank 64 KiB cache" 'stash: .*Cache device too small' \
	"$(stash_table "$origin" "$LINEAR_DEV" "${opts[@]}")"
dm_remove_name cor-small
before=$(dm_names)

log "=== another block size than formatted: refused"
fresh
refused "block_size 16 on a cache of 8" 'Cache was formatted with a different block_size' \
	"$(stash_table "$origin" "$cache" "${opts[@]}" block_size 16)"

log "=== the superblock of a cache made for another origin size: refused"
fresh
linear_create cor-orig2 "$origin" 0 $(($(dev_sectors "$origin") / 2))
zero_dev "$spare"
pstash_create cor2 "$LINEAR_DEV" "$spare" "${opts[@]}"
stash_remove "$STASH_DEV"
dm_remove_name cor-orig2
dd if="$spare" of="$cache" bs=512 count=16 conv=notrunc oflag=direct status=none
refused "foreign superblock" 'Cache belongs to an origin of a different size'

log "=== a foreign non-blank device: refused without format, formatted with it"
dd if=/dev/urandom of="$spare" bs=1M count=1 oflag=direct status=none
md_check "$spare" 8 "not a dm-stash cache device"
refused "random data, no format" \
	"stash: .*Cache device (holds no dm-stash superblock and is not blank|not blank, not dm-stash).*'format'" \
	"$(stash_table "$origin" "$spare" "${opts[@]}")"
kmsg_mark
pstash_create cor "$origin" "$spare" "${opts[@]}" format
assert_match "${km}formatted a cache of [0-9]+ blocks" "$(kmsg_since)" "format message"
stash_remove "$STASH_DEV"
pstash_create cor "$origin" "$spare" "${opts[@]}"
stash_remove "$STASH_DEV"
log "ok"
