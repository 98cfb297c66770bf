#!/bin/bash
# desc: write-back drains within idle_ms + 3 s of the last write, not before idle_ms, and a clean idle cache does no I/O and runs no work item (volatile and persistent); a persistent cache's parked commit timer wakes for the next write, and closes checksummed slots before it parks
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
stash_load_module
require_cmd jq

IDLE_MS=3000
BOUND_MS=$((IDLE_MS + 3000))	# the promise this test checks
cache_setup 32 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# The module's work items, counted with the workqueue tracepoint: an idle
# clean cache must run none (the commit timer parks; the break "the timer
# re-arms itself every commit_ms, as it did" runs it 5 times in 5 s here).
TR=/sys/kernel/tracing
mountpoint -q $TR || mount -t tracefs nodev $TR || die "no tracefs"
WQ_EVENT=$TR/events/workqueue/workqueue_execute_start/enable
[ -f $WQ_EVENT ] || die "no workqueue_execute_start tracepoint"
on_exit "echo 0 >$WQ_EVENT; echo >$TR/trace"
work_trace_start() {
	echo 0 >$WQ_EVENT
	echo >$TR/trace
	echo 1 >$WQ_EVENT
}
# work_trace_stop [REGEX]: prints how many of the module's work items ran
# (those whose function matches REGEX), and logs which.
work_trace_stop() {
	echo 0 >$WQ_EVENT
	grep 'dm_stash\]' $TR/trace | sed 's/.*function //' | sort | uniq -c |
		sed 's/^/# ran: /' >&2
	grep 'dm_stash\]' $TR/trace | grep -c -E "function ${1:-}" || true
}

# idle_test KIND [OPTS...]: the whole check on a KIND (volatile or
# persistent) cache.
idle_test() {
	local kind=$1 ow0 ow t0 t dirty o0 o1 c0 c1

	shift
	log "=== $kind cache"
	stash_create idle "$ORIGIN" "$CACHE" writeback "$@" idle_ms $IDLE_MS sequential_cutoff 0
	vol=$STASH_DEV
	assert_eq "$kind" "$(sf "$vol" metadata)" "metadata="

	# 300 dirty blocks (7% of the cache: below the high watermark).
	rand_file "$tmp/a" 300
	ow0=$(dev_writes "$ORIGIN")
	put "$vol" "$tmp/a" 500
	t0=$(now_ms)
	dirty=$(sf "$vol" dirty)
	t=$(now_ms)
	log "dirty right after the writes: $dirty"
	if [ $((t - t0)) -lt $((IDLE_MS - 300)) ]; then
		assert_eq 300 "$dirty" "dirty after the writes"
	else
		log "note: the VM was too slow to look before idle_ms ($((t - t0)) ms)"
	fi

	# Not idle long enough yet: still dirty, the origin untouched.
	# (t is taken after both readings: a slow VM may take a while for them.)
	sleep 0.3
	dirty=$(sf "$vol" dirty)
	ow=$(dev_writes "$ORIGIN")
	t=$(now_ms)
	if [ $((t - t0)) -lt $((IDLE_MS - 300)) ]; then
		assert_eq 300 "$dirty" "dirty $((t - t0)) ms after the writes (idle_ms $IDLE_MS)"
		assert_eq "$ow0" "$ow" "origin writes $((t - t0)) ms after the writes"
	else
		log "note: the VM was too slow to look before idle_ms ($((t - t0)) ms)"
	fi

	# Clean within the bound.
	while [ "$(sf "$vol" dirty)" != 0 ]; do
		t=$(now_ms)
		[ $((t - t0)) -le $BOUND_MS ] ||
			die "still dirty $((t - t0)) ms after the last write (bound ${BOUND_MS} ms): $(status_line "$vol")"
		sleep 0.05
	done
	t=$(now_ms)
	log "clean $((t - t0)) ms after the last write (bound $BOUND_MS ms)"
	wait_clean "$vol" 10
	assert_eq 300 "$(sf "$vol" written_back)" "written_back"
	assert_ok "origin holds the data" same "$ORIGIN" 500 "$tmp/a"

	# A clean, idle cache does no I/O at all (after the metadata commit
	# of the cleaned blocks, due within commit_ms = 1 s).
	# Then the commit timer parks: two periods without I/O, one more to
	# find nothing to do.
	sleep 4
	o0=$(io_count "$ORIGIN") c0=$(io_count "$CACHE")
	work_trace_start
	sleep 5
	o1=$(io_count "$ORIGIN") c1=$(io_count "$CACHE")
	assert_eq 0 "$(work_trace_stop)" "work items of the module during 5 s of idleness"
	assert_eq "$o0" "$o1" "origin I/Os during 5 s of idleness"
	assert_eq "$c0" "$c1" "cache I/Os during 5 s of idleness"
	[ "$kind" = persistent ] && timer_wakes "$vol"
	stash_remove "$vol"
}

# timer_wakes VOL: a write to an idle persistent cache is committed by the
# timer (no flush, no writeback: idle_ms 0), so the parked timer woke up.
# Break "I/O does not wake a parked timer": commits stays.
timer_wakes() {
	local vol=$1 n0 i

	dmsetup message "$vol" 0 set idle_ms 0 || die "set idle_ms failed"
	rand_file "$tmp/w" 1
	n0=$(sf "$vol" commits)
	work_trace_start
	put "$vol" "$tmp/w" 3000
	for ((i = 0; i < 100; i++)); do
		[ "$(sf "$vol" commits)" -gt "$n0" ] && break
		sleep 0.1
	done
	sleep 0.5
	# The positive control of the counts above: the trace names them.
	assert_ne 0 "$(work_trace_stop 'commit_')" "commit work items seen by the trace after the write"
	assert_ne "$n0" "$(sf "$vol" commits)" "commits 10 s after a write to an idle cache (no flush)"
	log "a write to the idle cache was committed after $((i * 100)) ms"
}

idle_test volatile volatile
wipe_sb "$CACHE"
idle_test persistent

# Checksums: a slot written in place stays open while writes go on; idle,
# the timer closes it (records its checksum) before it parks.  Break
# "the timer parks with slots open": the slot stays open on disk.
log "=== persistent cache with checksums: an open slot is closed, then the timer parks"
wipe_sb "$CACHE"
stash_create idle "$ORIGIN" "$CACHE" writeback checksum idle_ms 0 sequential_cutoff 0
vol=$STASH_DEV
rand_file "$tmp/c1" 1
rand_file "$tmp/c2" 1
put "$vol" "$tmp/c1" 700
fsync_dev "$vol" || die "fsync failed"
put "$vol" "$tmp/c2" 700
fsync_dev "$vol" || die "fsync failed"
# Idle: closed within a few periods (recorded on disk), then parked.
STASHCTL=${STASH_STASHCTL:-$STASH_REPO/userspace-tools/stashctl}
recorded_crc() {
	"$STASHCTL" dump --json "$CACHE" >"$tmp/dump" || die "stashctl dump failed"
	jq '[.mappings[] | select(.oblock == 700)][0].checksum' "$tmp/dump"
}
assert_eq null "$(recorded_crc)" "block 700's checksum on disk right after a write in place (open slot)"
for ((i = 0; i < 150; i++)); do
	[ "$(recorded_crc)" != null ] && break
	sleep 0.1
done
assert_ne null "$(recorded_crc)" "block 700's checksum on disk 15 s after the last write (open slot closed)"
log "the open slot was closed after about $((i * 100)) ms"
# The block stays dirty (idle_ms 0): the writeback waker still runs; the
# commit timer must not.
sleep 3
work_trace_start
sleep 5
assert_eq 0 "$(work_trace_stop 'commit_')" "commit work items during 5 s of idleness (checksums)"
assert_ok "block 700 reads its last write" same "$vol" 700 "$tmp/c2"
stash_remove "$vol"
