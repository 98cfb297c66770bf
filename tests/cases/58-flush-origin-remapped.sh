#!/bin/bash
# desc: an fsync, and a clean removal, flush the origin's disk when the origin's driver remaps the target's own bio (md linear), in write-through and write-around
#
#   null_blk (cache_size, own write cache) -> md linear (mdadm --build) -> stash origin
#   null_blk (cache_size)                                               -> stash cache
#
# The target counts the writes that reached the origin, and a flush skips
# the origin when none did since its last flush.  Some drivers below a
# target point the target's bio at a device of their own instead of
# cloning it: NVMe multipath (the path), md linear on 6.1 (the member),
# md raid0 on 6.1 without iostats.  Completion must not tell from the
# bio's device where it went.  The oracle is the member null_blk's flush
# count (dev_stat flush_ios): each fsync after a write, and the
# clean shutdown's commit after a write, must reach it.
# Break it catches (seen failing on purpose): counting an origin write by
# bio->bi_bdev == the origin's bdev, as before the fix: on 6.1 every write
# then counts nothing, the fsync after a write-through write never flushes
# the member ("the fsync flushed the origin's disk" fails).
# 6.12 builds no md linear (CONFIG_MD_LINEAR): the test skips there (and
# 6.12's md clones every bio it remaps).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup
require_cmd mdadm
modprobe linear 2>/dev/null || skip "no md linear personality (6.12 does not build it)"

md=/dev/md117
nullb_setup stasho 64
odev=$NULLB_DEV
nullb_setup stashc 64
cdev=$NULLB_DEV
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/a" 1
mdadm --build "$md" --level=linear --force --raid-devices=1 "$odev" >"$tmp/mdadm.out" 2>&1 ||
	skip "mdadm --build linear failed: $(cat "$tmp/mdadm.out")"
on_exit "mdadm --stop $md >/dev/null 2>&1; true"
[ -b "$md" ] || die "no $md after mdadm --build"

# flushes: the member null_blk's completed flushes.
flushes() {
	dev_stat "$odev" flush_ios
}

blk=0
for mode in writethrough writearound; do
	pstash_create "f$mode" "$md" "$cdev" "$mode" format commit_ms 60000
	vol=$STASH_DEV
	# A table's first flush always goes down: take it.
	assert_ok "$mode: a first fsync" fsync_dev "$vol"

	f0=$(flushes)
	put "$vol" "$tmp/a" $blk
	f1=$(flushes)
	assert_ok "$mode: fsync" fsync_dev "$vol"
	f2=$(flushes)
	log "$mode: member flushes: $f0 before the write, $f1 after, $f2 after the fsync"
	[ "$f2" -gt "$f1" ] || die "$mode: the fsync flushed the origin's disk ($f1 -> $f2 flushes)"
	cmp -s <(get "$odev" $blk 1) "$tmp/a" || die "$mode: block $blk is not on the member"

	# A write, then the removal: its clean commit flushes the origin first.
	blk=$((blk + 1))
	put "$vol" "$tmp/a" $blk
	f3=$(flushes)
	stash_remove "$vol"
	f4=$(flushes)
	log "$mode: member flushes: $f3 before the removal, $f4 after"
	[ "$f4" -gt "$f3" ] || die "$mode: the clean removal flushed the origin's disk ($f3 -> $f4 flushes)"
	blk=$((blk + 1))
done
log "ok"
