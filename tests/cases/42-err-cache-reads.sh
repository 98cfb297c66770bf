#!/bin/bash
# desc: cache-device read errors (scsi_debug medium errors): a clean block is read from the origin and invalidated; a dirty block's read fails and it stays dirty until it can be written back
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
require_root
stash_load_module

brd_setup 1 $((32 * 1024))
lin_create origin /dev/ram0
ORIGIN=$LIN_DEV
sdebug_setup 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/old" 64
rand_file "$tmp/a" 64
rand_file "$tmp/b" 16
put "$ORIGIN" "$tmp/old" 0

stash_create rerr "$ORIGIN" "$SDEBUG_DEV" writethrough volatile sequential_cutoff 0 \
	error_threshold 0 idle_ms 0 high_watermark 100
vol=$STASH_DEV

# --- A clean block: the user gets the origin's data, the block is dropped.
put "$vol" "$tmp/a" 0
read_twice "$vol" 0 64
assert_eq 64 "$(used_blocks "$vol")" "blocks cached"
st0=$(status_line "$vol")
sdebug_medium_errors on
assert_ok "clean blocks read right despite cache read errors" same "$vol" 0 "$tmp/a"
st1=$(status_line "$vol")
log "after: $st1"
assert_ok "cache errors counted ($(delta "$st0" "$st1" cache_errors))" \
	test "$(delta "$st0" "$st1" cache_errors)" -ge 1
assert_eq "$(delta "$st0" "$st1" cache_errors)" "$(delta "$st0" "$st1" invalidations)" \
	"every failed clean block invalidated"
assert_eq 0 "$(delta "$st0" "$st1" origin_errors)" "origin errors"
assert_eq ok "$(field_of "$st1" cache_state)" "cache_state with error_threshold 0"
sdebug_medium_errors off

# --- A dirty block: only the cache has it, so a failed read fails the user's
# read (never the origin's older copy), and the block stays dirty.
dmsetup message "$vol" 0 mode writeback
put "$vol" "$tmp/b" 40
assert_eq 16 "$(sf "$vol" dirty)" "dirty after the write-back write"
st0=$(status_line "$vol")
sdebug_medium_errors on
assert_fails "a read of dirty blocks fails with the cache" try_read "$vol" 40 16
assert_fails "a read of one dirty block fails with the cache" try_read "$vol" 47 1
dmsetup message "$vol" 0 flush
# Two failed passes at least: the back-off doubled from 100 ms (it may have
# grown further before a slow kernel's status shows it).
for ((i = 0; i < 200; i++)); do
	[ "$(sf "$vol" writeback_retry_ms)" -ge 200 ] && break
	sleep 0.1
done
[ "$(sf "$vol" writeback_retry_ms)" -ge 200 ] || die "writeback not retried: $(status_line "$vol")"
st1=$(status_line "$vol")
log "after: $st1"
assert_eq 16 "$(field_of "$st1" dirty)" "dirty after failed reads and writebacks"
assert_ok "cache errors counted" test "$(delta "$st0" "$st1" cache_errors)" -ge 2
assert_ok "writeback errors counted" test "$(delta "$st0" "$st1" writeback_errors)" -ge 16
assert_ok "the origin still has the old data (nothing written back)" \
	cmp -s <(get "$ORIGIN" 40 16) <(dd if="$tmp/a" bs=4k skip=40 count=16 status=none)

sdebug_medium_errors off
assert_ok "the dirty blocks read as written once the cache reads again" same "$vol" 40 "$tmp/b"
wait_clean "$vol" 30
assert_ok "written back" same "$ORIGIN" 40 "$tmp/b"
stash_remove "$vol"
