#!/bin/bash
# desc: the cache device (scsi_debug, persistent metadata) is hot-unplugged under a mounted ext4 in write-through and write-back: the cache fails, the filesystem carries on on the origin, fsck clean, every file intact
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
require_root
require_cmd mkfs.ext4 e2fsck sha256sum
stash_load_module

brd_setup 1 $((96 * 1024))
lin_create origin /dev/ram0
ORIGIN=$LIN_DEV
tmp=$(mktemp -d)
mnt=$tmp/mnt
mkdir -p "$mnt"
on_exit "umount $mnt 2>/dev/null; rm -rf $tmp"

# files FIRST LAST: write files fFIRST..fLAST of 128 KiB each.
files() {
	local i

	for ((i = $1; i <= $2; i++)); do
		head -c $((128 * 1024)) /dev/urandom >"$mnt/f$i" || return 1
	done
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

for mode in writethrough writeback; do
	log "=== $mode"
	sdebug_setup 32
	stash_create "g$mode" "$ORIGIN" "$SDEBUG_DEV" $mode sequential_cutoff 0 \
		error_threshold 0 idle_ms 0
	vol=$STASH_DEV
	assert_eq persistent "$(sf "$vol" metadata)" "metadata on the scsi_debug disk"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$vol" >/dev/null ||
		die "mkfs.ext4"
	mount -o noatime "$vol" "$mnt" || die "mount"
	assert_ok "$mode: write files" files 1 20
	drop_caches
	cat "$mnt"/f* >/dev/null
	cat "$mnt"/f* >/dev/null
	drop_caches
	assert_ne 0 "$(used_blocks "$vol")" "$mode: blocks cached"
	# Write-back: clean the cache first; a block dirty when the device
	# goes is lost by definition (its reads fail, see 43).
	[ $mode = writeback ] && drain "$vol" 60
	(cd "$mnt" && sha256sum f*) >"$tmp/sums"
	kmsg_mark

	sdebug_delete
	assert_ok "$mode: write files after the cache device went" files 21 30
	drop_caches
	(cd "$mnt" && sha256sum f21 f22 f23 f24 f25 f26 f27 f28 f29 f30) >>"$tmp/sums"
	drop_caches
	assert_ok "$mode: every file reads back" bash -c "cd $mnt && sha256sum --quiet -c $tmp/sums"
	wait_field "$vol" cache_state failed 10 || die "$mode: not failed: $(status_line "$vol")"
	kmsg_since | grep -q "failed (the device is gone)" || die "$mode: no failure message"
	log "status: $(status_line "$vol")"
	assert_eq 0 "$(sf "$vol" dirty)" "$mode: dirty"
	assert_eq 0 "$(sf "$vol" origin_errors)" "$mode: origin errors"
	kmsg_since | grep -E "EXT4-fs (error|warning)|Buffer I/O error on dev dm" &&
		die "$mode: the filesystem saw errors"
	# A failed cache suspends and resumes (it no longer needs its metadata).
	assert_ok "$mode: suspend" dmsetup suspend "$vol"
	assert_ok "$mode: resume" dmsetup resume "$vol"
	assert_ok "$mode: more files after resume" files 31 32
	umount "$mnt" || die "umount"
	assert_ok "$mode: fsck of the volume" e2fsck -fn "$vol"
	stash_remove "$vol"
	sdebug_unload

	# The origin alone is the whole filesystem.
	assert_ok "$mode: fsck of the origin alone" e2fsck -fn "$ORIGIN"
	mount -o ro "$ORIGIN" "$mnt" || die "mount the origin"
	assert_ok "$mode: every file on the origin alone" bash -c "cd $mnt && sha256sum --quiet -c $tmp/sums"
	umount "$mnt"
done
