#!/bin/bash
# desc: a table refused for want of memory (a 1 TiB cache of 4 KiB blocks: its mapping table does not fit) changes nothing on the cache device, also with 'format'
#
#   null_blk (64 MiB)  -> origin
#   null_blk (1 TiB, memory-backed: only what is written takes RAM) -> cache
#
# 268M slots need a mapping table of 3 GiB, which the kernel refuses
# (over INT_MAX bytes for kvmalloc, and more than the VM has).  The
# constructor must allocate everything before it writes to the cache
# device: a refused table leaves it as it was, even when the table says
# 'format' (the user gave the old data up for a cache that never came).
# 1. volatile with 'format' over a device that holds a dm-stash
#    superblock (both copies from a small cache): still there, byte for
#    byte.  The break it catches: the superblocks erased before the
#    mapping table is allocated (the module before the constructor wrote
#    last): the first 8 KiB read zeros.
# 2. persistent with 'format' over foreign data: not formatted.  On that
#    module this case formats 4 GiB of metadata into the VM's RAM before
#    it fails, so the test stops after case 1 when case 1 fails.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-fault.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup

nullb_setup s49org 64 4 1; org=$NULLB_DEV
nullb_setup s49small 16 4 1; small=$NULLB_DEV
nullb_setup s49big $((1024 * 1024)) 4 1; big=$NULLB_DEV
on_exit dm_cleanup_all
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

# refused WHAT REGEX TABLE...: the table is refused, the kernel log says
# why (REGEX), and the first MiB of the big device is unchanged.
refused() {
	local what=$1 re=$2

	shift 2
	dd if="$big" of="$tmp/before" bs=1M count=1 iflag=direct status=none
	kmsg_mark
	assert_fails "$what: the table is refused" dm_create big "$(stash_table "$@")"
	assert_match "$re" "$(kmsg_since | grep 'stash: ')" "$what: the kernel says why"
	dd if="$big" of="$tmp/after" bs=1M count=1 iflag=direct status=none
	cmp -s "$tmp/before" "$tmp/after" ||
		die "$what: the cache device changed: $(cmp "$tmp/before" "$tmp/after" | head -1)"
	log "$what: refused ($(kmsg_since | grep -o 'stash: .*' | head -1)), the device unchanged"
}

log "1. a dm-stash superblock (from a small cache) on the big device"
pstash_create small "$org" "$small" writeback
stash_remove "$STASH_DEV"
dd if="$small" of="$big" bs=4k count=2 iflag=direct oflag=direct status=none
refused "volatile over a dm-stash superblock" "holds a dm-stash cache" \
	"$org" "$big" writeback volatile
refused "volatile, format, over a dm-stash superblock" "Cannot allocate" \
	"$org" "$big" writeback volatile format

log "2. foreign data on the big device"
dd if=/dev/urandom of="$big" bs=1M count=1 oflag=direct status=none
refused "persistent over foreign data" "not blank, not dm-stash" \
	"$org" "$big" writeback
refused "persistent, format, over foreign data" "Cannot allocate" \
	"$org" "$big" writeback format
log "ok"
