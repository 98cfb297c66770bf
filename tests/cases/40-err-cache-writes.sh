#!/bin/bash
# desc: cache-device write errors (dm-flakey error_writes) in each mode: fio verifies with no user error, writes go to the origin, a write to a dirty block fails and keeps the old data
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
require_root
require_cmd fio
stash_load_module
fault_modules

cache_setup 32 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/a" 4
rand_file "$tmp/b" 4

for mode in writearound writethrough writeback; do
	log "=== $mode"
	fault cache linear
	# error_threshold 0: the cache never fails; each error is handled alone.
	stash_create "e$mode" "$ORIGIN" "$CACHE" $mode volatile sequential_cutoff 0 \
		error_threshold 0 idle_ms 0 high_watermark 100
	vol=$STASH_DEV

	assert_ok "$mode: fio before the fault" fio_verify "$vol" 2M 2
	read_twice "$vol" 0 1024
	[ $mode = writeback ] && drain "$vol" 60
	assert_ne 0 "$(used_blocks "$vol")" "$mode: blocks cached before the fault"
	st0=$(status_line "$vol")

	fault cache error_writes
	# Whole rewrite of the range, verified: cached blocks are hit (and, in
	# write-back, rewritten in the cache, which fails), new blocks filled.
	assert_ok "$mode: fio while every cache write fails" fio_verify "$vol" 2M 2
	# Reads of uncached blocks try to promote them (fills fail).
	read_twice "$vol" 2048 512
	st1=$(status_line "$vol")
	log "after: $st1"
	assert_ok "$mode: cache errors counted ($(delta "$st0" "$st1" cache_errors))" \
		test "$(delta "$st0" "$st1" cache_errors)" -gt 0
	assert_eq 0 "$(field_of "$st1" dirty)" "$mode: dirty (failed cache writes went to the origin)"
	assert_eq 0 "$(delta "$st0" "$st1" origin_errors)" "$mode: origin errors"
	assert_eq ok "$(field_of "$st1" cache_state)" "$mode: cache_state with error_threshold 0"
	# The origin alone has every acknowledged write.
	assert_ok "$mode: the origin holds fio's data" fio_check "$ORIGIN" 4M
	fault cache linear
	assert_ok "$mode: the volume holds fio's data" fio_check "$vol" 4M

	if [ $mode = writeback ]; then
		# A write to a dirty block: the block exists only in the cache,
		# so a failed cache write fails the user's write and the block
		# keeps its last acknowledged data.
		put "$vol" "$tmp/a" 3000
		assert_eq 4 "$(sf "$vol" dirty)" "dirty after writing 4 blocks"
		fault cache error_writes
		assert_fails "a write over dirty blocks while cache writes fail" \
			try_put "$vol" "$tmp/b" 3000
		assert_eq 4 "$(sf "$vol" dirty)" "dirty after the failed write"
		assert_ok "the dirty blocks still read as the last good write" same "$vol" 3000 "$tmp/a"
		fault cache linear
		drain "$vol" 60
		assert_ok "written back: the origin has the last good write" same "$ORIGIN" 3000 "$tmp/a"
	fi
	stash_remove "$vol"
done
