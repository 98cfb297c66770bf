#!/bin/bash
# desc: an fsync after writeback: written-back data is durable on an origin with its own write cache (two dm-log-writes histories, replayed at the fsync's mark)
#
#   null_blk (cache_size) -> log-writes lwc (log on ram0) -> stash cache
#   null_blk (cache_size) -> log-writes lwo (log on ram1) -> stash origin
#
# Each device has its own volatile write cache and its own log, so the
# state of each after a power cut is its log replayed up to its own last
# FLUSH (dm-log-writes logs a write only once a flush covers it, or at once
# for FUA).  Marks go to the cache's log first, then to the origin's: a
# commit may record a block clean only after the origin flush it needs
# completed, so a cut whose origin side is the later one is a state a real
# crash can leave.  commit_ms is long, so no periodic commit runs between
# a write, its writeback and the fsync.  Cases:
#  A. a block written, drained by the 'flush' message before any commit
#     recorded it dirty, then fsync: its only durable copy must survive
#     (the slot stays recorded dirty, or the origin is flushed first);
#  B. a block written and fsync'd (recorded dirty), drained, then dropped
#     by the 'invalidate' message, then fsync: the commit that records the
#     slot empty must flush the origin first;
#  C. a block written and fsync'd (recorded dirty), drained (not yet
#     recorded clean), then, in write-around, a FUA write of new data: no
#     commit follows it, so the slot the metadata records dirty must hold
#     the new data too;
#  D. a block written and fsync'd (recorded dirty), drained, dropped by
#     'invalidate', then a FUA write of new data in write-around: it must
#     wait for the commit that records the slot empty;
#  E. the same with a write-through FUA write, which caches the block in
#     a new slot as it writes the origin.
# Breaks it catches (each seen failing on purpose): a commit with waiters
# recording a written-back block clean with no origin flush, as before
# the fix (A reads zeros after the replay); one recording a written-back
# slot empty with no origin flush (B); a write-around write that
# invalidates such a slot (C reads the old data: recovery wrote it back);
# a FUA write to the origin completing while a dropped slot is still
# recorded dirty (D, and E for write-through, read the old data).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup

mib=64
sectors=$((mib * 2048))
brd_setup 4 $((mib * 1024))
nullb_setup stashc $mib
cdev=$NULLB_DEV
nullb_setup stasho $mib
odev=$NULLB_DEV
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/a" 1
rand_file "$tmp/b" 1
rand_file "$tmp/c" 1
rand_file "$tmp/d" 1
rand_file "$tmp/e" 1
rand_file "$tmp/f" 1
rand_file "$tmp/g" 1
rand_file "$tmp/h" 1
zero_dev /dev/ram0 1
zero_dev /dev/ram1 1

dm_create lwc "0 $sectors log-writes $cdev /dev/ram0" || die "cannot create log-writes"
dm_create lwo "0 $sectors log-writes $odev /dev/ram1" || die "cannot create log-writes"
lwc=$(dm_path lwc) lwo=$(dm_path lwo)

# mark NAME: the same instant in both logs, the cache's first.
mark() {
	dmsetup message "$lwc" 0 mark "$1" && dmsetup message "$lwo" 0 mark "$1" ||
		die "cannot mark $1"
}

pstash_create fsw "$lwo" "$lwc" writeback commit_ms 60000 idle_ms 0
vol=$STASH_DEV

# The first flush of a table always reaches the origin: take it now.
assert_ok "a first fsync" fsync_dev "$vol"

log "A: write, drain, fsync"
put "$vol" "$tmp/a" 5
wait_clean "$vol"
assert_ok "fsync after the drain" fsync_dev "$vol"
mark A

log "B: write, fsync, drain, invalidate, fsync"
put "$vol" "$tmp/b" 9
assert_ok "fsync of the write" fsync_dev "$vol"
wait_clean "$vol"
dmsetup message "$vol" 0 invalidate || die "invalidate failed"
assert_ok "fsync after the invalidation" fsync_dev "$vol"
mark B

# fua_after_writeback CASE BLOCK OLD NEW MODE [invalidate]: in write-back,
# BLOCK gets OLD, fsync'd (recorded dirty), then drained (written back, not
# yet recorded clean; the origin flushed); with "invalidate" the cache is
# dropped; then, in MODE, a FUA write of NEW; then mark CASE.
fua_after_writeback() {
	local name=$1 b=$2 old=$3 new=$4 mode=$5 inval=${6:-}

	log "$name: write, fsync, drain, ${inval:+invalidate, }$mode FUA write"
	dmsetup message "$vol" 0 mode writeback || die "mode writeback failed"
	put "$vol" "$old" "$b"
	assert_ok "$name: fsync of the write" fsync_dev "$vol"
	wait_clean "$vol"
	# The origin flushed by hand (no commit records the slot clean): its
	# log then holds the writeback write before the FUA write.  Left
	# unflushed, dm-log-writes would log it at the next flush, after the
	# FUA write to the same sector, and a replay would end with the older
	# data, which no disk does.
	assert_ok "$name: a flush of the origin alone" fsync_dev "$lwo"
	if [ -n "$inval" ]; then
		dmsetup message "$vol" 0 invalidate || die "invalidate failed"
		assert_eq 0 "$(used_blocks "$vol")" "$name: nothing cached after the invalidation"
	fi
	dmsetup message "$vol" 0 mode "$mode" || die "mode $mode failed"
	put_fua "$vol" "$new" "$b"
	mark "$name"
}

fua_after_writeback C 13 "$tmp/c" "$tmp/d" writearound
fua_after_writeback D 17 "$tmp/e" "$tmp/f" writearound invalidate
fua_after_writeback E 21 "$tmp/g" "$tmp/h" writethrough invalidate
assert_eq 1 "$(used_blocks "$vol")" "E: the write-through write cached its block"

log "at the end: $(dmsetup status "$vol" | cut -d' ' -f4-)"
stash_remove "$vol"
dm_remove_name lwc
dm_remove_name lwo

# entry_of LOG NAME: the entry number of mark NAME in LOG.
entry_of() {
	replay_log --log "$1" --list | awk -v m="$2" '$2 ~ /MARK/ && $NF == m { print $1; exit }'
}

# at NAME: both devices as a power cut at mark NAME leaves them, and the
# stash volume recovered on them (the same dm names, so the same paths).
at() {
	local ec eo

	ec=$(entry_of /dev/ram0 "$1") eo=$(entry_of /dev/ram1 "$1")
	[ -n "$ec" ] && [ -n "$eo" ] || die "mark $1 missing from a log"
	replay_log --log /dev/ram0 --replay /dev/ram2 --limit "$ec" --zero ||
		die "replay of the cache log failed"
	replay_log --log /dev/ram1 --replay /dev/ram3 --limit "$eo" --zero ||
		die "replay of the origin log failed"
	linear_create lwc /dev/ram2 0 $sectors
	linear_create lwo /dev/ram3 0 $sectors
	pstash_create fsw "$lwo" "$lwc" writeback commit_ms 60000 idle_ms 0
	log "recovered at $1: $(dmsetup status "$STASH_DEV" | cut -d' ' -f4-9)"
}

unstack() {
	stash_remove "$STASH_DEV"
	dm_remove_name lwc
	dm_remove_name lwo
}

# expect_same WHAT DEV BLOCK FILE: a check of C and D; a failure is
# counted and the test goes on, so that one run shows each case's.
lost=0
expect_same() {
	if same "$2" "$3" "$4"; then
		log "ok: $1"
	else
		log "FAIL: $1"
		lost=$((lost + 1))
	fi
}

at A
same "$STASH_DEV" 5 "$tmp/a" || die "A: the fsync'd block 5 is lost after the power cut"
unstack

at B
same "$STASH_DEV" 5 "$tmp/a" || die "B: block 5 is lost after the power cut"
same "$STASH_DEV" 9 "$tmp/b" || die "B: the fsync'd block 9 is lost after the power cut"
wait_clean "$STASH_DEV"
stash_remove "$STASH_DEV"
same "$lwo" 9 "$tmp/b" || die "B: block 9 is not on the origin after a drain and removal"
dm_remove_name lwc
dm_remove_name lwo

at C
expect_same "C: the FUA write to block 13 survives the power cut" "$STASH_DEV" 13 "$tmp/d"
wait_clean "$STASH_DEV"
stash_remove "$STASH_DEV"
expect_same "C: block 13 is the FUA data on the origin after a drain" "$lwo" 13 "$tmp/d"
dm_remove_name lwc
dm_remove_name lwo

at D
expect_same "D: the FUA write to block 17 survives the power cut" "$STASH_DEV" 17 "$tmp/f"
wait_clean "$STASH_DEV"
stash_remove "$STASH_DEV"
expect_same "D: block 17 is the FUA data on the origin after a drain" "$lwo" 17 "$tmp/f"
dm_remove_name lwc
dm_remove_name lwo

at E
expect_same "E: the FUA write to block 21 survives the power cut" "$STASH_DEV" 21 "$tmp/h"
wait_clean "$STASH_DEV"
stash_remove "$STASH_DEV"
expect_same "E: block 21 is the FUA data on the origin after a drain" "$lwo" 21 "$tmp/h"
dm_remove_name lwc
dm_remove_name lwo

[ $lost = 0 ] || die "$lost checks of C, D and E failed"
log "ok: A to E survive the power cut"
