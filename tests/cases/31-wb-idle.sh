#!/bin/bash
# desc: write-back drains within idle_ms + 3 s of the last write, not before idle_ms, and a clean idle cache does no I/O (volatile and persistent)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
stash_load_module

IDLE_MS=3000
BOUND_MS=$((IDLE_MS + 3000))	# the promise this test checks
cache_setup 32 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
now_ms() {
	echo $(($(date +%s%N) / 1000000))
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
	sleep 2
	o0=$(io_count "$ORIGIN") c0=$(io_count "$CACHE")
	sleep 5
	o1=$(io_count "$ORIGIN") c1=$(io_count "$CACHE")
	assert_eq "$o0" "$o1" "origin I/Os during 5 s of idleness"
	assert_eq "$c0" "$c1" "cache I/Os during 5 s of idleness"
	stash_remove "$vol"
}

idle_test volatile volatile
wipe_sb "$CACHE"
idle_test persistent
