#!/bin/bash
# desc: a cache of more than 256 metadata pages under writes that change more pages than one commit takes: an fsync still completes while the writes go on
#
#   null_blk (64 MiB, write cache)  -> origin
#   null_blk (640 MiB, write cache) -> dm-delay (flushes 500 ms) -> cache
#                                      (320 metadata pages)
#
# A commit writes at most 256 metadata pages; more changed pages take
# several commits.  A flush (fsync) must wait for the pages changed before
# it came, not for a commit that leaves no page changed: under writes that
# change more than 256 pages while a commit runs, there is never one.
# stash-md seed-clean maps 16 blocks in every page (origin blocks
# 0..16 * 320 - 1, clean); fio then writes those blocks at random while
# writeback (watermarks 1/0) keeps cleaning them.  The cache's flushes
# take 500 ms, so a commit lasts at least that long and fio changes most
# of the 320 pages meanwhile (on a fast SSD with a cache of some TiB,
# microseconds do the same).  One block written and fdatasync'd
# elsewhere must return while fio still runs.
# The break it catches: waiters completed only by a commit that leaves no
# changed page (the module before the sweep): the fdatasync waits until
# fio stops (here: 240 s).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-fault.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup
require_cmd fio

nullb_setup s59org 64 4 1; org=$NULLB_DEV
nullb_setup s59cch 640 16 1
on_exit dm_cleanup_all
delay_create s59cch "$NULLB_DEV" 0 500; cch=$DELAY_DEV
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

pstash_create v59 "$org" "$cch" writeback high_watermark 1 low_watermark 0
stash_remove "$STASH_DEV"
seeded=$(stash_md seed-clean "$cch" 16 0) || die "seed-clean failed"
pages=$(stashctl dump --json "$cch" | jq -r .superblock.md_pages)
[ "$pages" -gt 256 ] || die "the cache has $pages metadata pages, not more than 256"
log "seeded $seeded clean mappings over $pages metadata pages"
pstash_create v59 "$org" "$cch" writeback high_watermark 1 low_watermark 0
assert_eq "$seeded" "$(used_blocks "$STASH_DEV")" "blocks cached after the load"

fio --name=load --filename="$STASH_DEV" --rw=randwrite --bs=4k --direct=1 \
	--ioengine=libaio --iodepth=16 --size=$((seeded * 4))k --time_based --runtime=240 \
	--output="$tmp/fio.out" >/dev/null 2>&1 &
fio_pid=$!
on_exit "kill $fio_pid 2>/dev/null; wait $fio_pid 2>/dev/null; true"
sleep 10
kill -0 $fio_pid 2>/dev/null || die "fio stopped early: $(cat "$tmp/fio.out")"
c0=$(stash_status_field "$STASH_DEV" commits)
sleep 5
c1=$(stash_status_field "$STASH_DEV" commits)
log "under load: $((c1 - c0)) commits in 5 s; $(dmsetup status "$STASH_DEV" | cut -d' ' -f4-9)"

# One block past the load's range, written and fdatasync'd.
t0=$SECONDS
dd if=/dev/urandom of="$STASH_DEV" bs=4k count=1 seek=$((seeded + 100)) oflag=direct \
	conv=fdatasync status=none &
dd_pid=$!
while kill -0 $dd_pid 2>/dev/null && kill -0 $fio_pid 2>/dev/null; do
	sleep 1
done
if kill -0 $dd_pid 2>/dev/null; then
	wait $dd_pid
	die "the fdatasync returned only after the writes stopped ($((SECONDS - t0)) s)"
fi
wait $dd_pid || die "the write or its fdatasync failed"
log "the fdatasync returned after $((SECONDS - t0)) s, the writes still going"
c2=$(stash_status_field "$STASH_DEV" commits)
log "commits meanwhile: $((c2 - c1))"
kill $fio_pid
wait $fio_pid 2>/dev/null
log "ok"
