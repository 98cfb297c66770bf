#!/bin/bash
# desc: error_threshold reached (dm-flakey, dm-error on the cache) in each mode: cache_state=failed, I/O passes to the origin with fio verifying, readable dirty blocks are written back, unreadable ones fail reads until they can be
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
require_root
require_cmd fio python3
stash_load_module
fault_modules
stashctl=${STASH_STASHCTL:-$STASH_REPO/userspace-tools/stashctl}

cache_setup 32 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/a" 16

# cache_io: requests that reached the cache device so far.
cache_io() {
	io_count "$CACHE"
}

for mode in writearound writethrough writeback; do
	log "=== $mode: error_writes on the cache device, error_threshold 8"
	fault cache linear
	stash_create "f$mode" "$ORIGIN" "$CACHE" $mode volatile sequential_cutoff 0 \
		error_threshold 8 idle_ms 0 high_watermark 100
	vol=$STASH_DEV
	assert_ok "$mode: fio before the fault" fio_verify "$vol" 1M 2
	read_twice "$vol" 0 512
	if [ $mode = writeback ]; then
		# Clean the blocks fio rewrites (a failed cache write to a dirty
		# block fails the write until the cache fails: see 40); keep
		# other dirty blocks, readable through error_writes.
		drain "$vol" 60
		put "$vol" "$tmp/a" 3000
	fi
	kmsg_mark

	fault cache error_writes
	assert_ok "$mode: fio while the cache fails" fio_verify "$vol" 1M 2
	read_twice "$vol" 1024 512
	wait_field "$vol" cache_state failed 10 ||
		die "$mode: cache not failed: $(status_line "$vol")"
	kmsg_since | grep -q "failed (error_threshold reached)" ||
		die "$mode: no failure message in the kernel log"
	json=$("$stashctl" status "${vol##*/}" --json) || die "stashctl status"
	assert_match '"cache_state": "failed"' "$json" "$mode: stashctl status"
	if [ $mode = writeback ]; then
		# The dirty blocks are still readable: written back at once.
		wait_field "$vol" dirty 0 20 || die "dirty blocks not written back: $(status_line "$vol")"
		assert_ok "the dirty blocks reached the origin" same "$ORIGIN" 3000 "$tmp/a"
	fi

	# From now on nothing touches the cache device.
	c0=$(cache_io)
	assert_ok "$mode: fio on the failed cache" fio_verify "$vol" 1M 2
	read_twice "$vol" 0 1024
	assert_eq "$c0" "$(cache_io)" "$mode: cache device I/Os after the failure"
	assert_ok "$mode: a flush on the failed cache" fsync_dev "$vol"
	fault cache linear
	assert_eq failed "$(sf "$vol" cache_state)" "$mode: cache_state is sticky"
	stash_remove "$vol"
	assert_ok "$mode: the origin alone holds fio's data" fio_check "$ORIGIN" 2M
done

log "=== writeback: dm-error on the cache device with dirty blocks"
fault cache linear
stash_create fdirty "$ORIGIN" "$CACHE" writeback volatile sequential_cutoff 0 \
	error_threshold 4 idle_ms 0 high_watermark 100
vol=$STASH_DEV
assert_ok "fio before the fault" fio_verify "$vol" 1M 2
drain "$vol" 60
put "$vol" "$tmp/a" 3000
fault cache error
# Reads of uncached or clean blocks work (origin); the dirty ones fail.
assert_ok "fio while the cache is dead" fio_verify "$vol" 1M 2
assert_fails "a dirty block is unreadable" try_read "$vol" 3005 1
wait_field "$vol" cache_state failed 10 || die "cache not failed: $(status_line "$vol")"
assert_eq 16 "$(sf "$vol" dirty)" "dirty blocks kept"
assert_fails "a flush fails while dirty blocks cannot be written back" fsync_dev "$vol"
assert_fails "never the origin's stale copy" try_read "$vol" 3000 16
# A whole-block write replaces a dirty block (it goes to the origin); a
# partial one cannot (the rest of the block is only in the cache).
head -c 4096 /dev/urandom >"$tmp/one"
assert_ok "a whole-block write over a dirty block" try_put "$vol" "$tmp/one" 3015
assert_eq 15 "$(sf "$vol" dirty)" "dirty after the whole-block write"
assert_ok "the new block reads back" same "$vol" 3015 "$tmp/one"
assert_fails "a partial write to a dirty block" \
	dd if="$tmp/one" of="$vol" bs=512 count=1 seek=$((3014 * 8)) oflag=direct conv=notrunc status=none
fault cache linear
# The retry reads them now.
wait_clean "$vol" 30
head -c $((15 * 4096)) "$tmp/a" >"$tmp/a15"
assert_ok "written back" same "$ORIGIN" 3000 "$tmp/a15"
assert_ok "they read as written" same "$vol" 3000 "$tmp/a15"
assert_ok "the replaced block too" same "$vol" 3015 "$tmp/one"
assert_ok "a flush works once they are written back" fsync_dev "$vol"
stash_remove "$vol"
assert_ok "the origin alone holds fio's data" fio_check "$ORIGIN" 2M
