#!/bin/bash
# desc: a persistent write-back cache on a device with a volatile write cache (null_blk) whose flushes fail: a flush with nothing new to record (a commit that is only a cache-device flush) fails, metadata=failed, the 'needs check' mark cannot be written either and the kernel says so; the device still holds the last good commit, which loads again with every dirty block
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
require_root
require_cmd python3
stash_load_module
fault_modules
stashctl=${STASH_STASHCTL:-$STASH_REPO/userspace-tools/stashctl}

tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/a" 16

brd_setup 1 $((32 * 1024))
lin_create origin /dev/ram0
ORIGIN=$LIN_DEV

# The cache device needs a volatile write cache for its flushes to reach
# a target at all: a null_blk under a dm wrapper whose table the test swaps.
nullb_setup stashflush 16
nbdev=$NULLB_DEV
clen=$(dev_sectors "$nbdev")
dm_create ncache "0 $clen linear $nbdev 0" || die "cannot create the cache wrapper"
CACHE=$(dm_path ncache)
on_exit "dmsetup remove $CACHE 2>/dev/null; true"
assert_eq "write back" "$(cat "/sys/dev/block/$(dev_number "$CACHE")/queue/write_cache")" \
	"the cache wrapper's write cache"

wipe_sb "$CACHE"
# commit_ms 60000: only flushes commit.
stash_create fl "$ORIGIN" "$CACHE" writeback sequential_cutoff 0 \
	error_threshold 0 idle_ms 0 high_watermark 100 commit_ms 60000
vol=$STASH_DEV
name=${vol##*/}
put "$vol" "$tmp/a" 100
assert_ok "a flush commits the dirty blocks" fsync_dev "$vol"
assert_eq 16 "$(sf "$vol" dirty)" "dirty blocks"
c0=$(sf "$vol" commits)
assert_ok "a flush with nothing new to record" fsync_dev "$vol"
assert_eq "$c0" "$(sf "$vol" commits)" \
	"commits (nothing new: the commit is only a cache-device flush)"

# Writes and flushes to the cache device fail from now on, its
# superblocks included: the flush-only commit fails, and so does the
# 'needs check' mark, which is a flushed write too.
swap_table ncache "0 $clen flakey $nbdev 0 0 1 1 error_writes"
st0=$(status_line "$vol")
kmsg_mark
assert_fails "a flush whose cache-device flush fails" fsync_dev "$vol"
k=$(kmsg_since)
grep -q "commit: cache device flush failed" <<<"$k" ||
	die "no message about the failed cache-device flush: $k"
grep -q "cannot mark the cache device 'needs check' either" <<<"$k" ||
	die "no message about the mark that could not be written: $k"
assert_eq failed "$(sf "$vol" metadata)" "metadata after the failed flush"
assert_eq 1 "$(delta "$st0" "$(status_line "$vol")" cache_errors)" "cache errors counted"
json=$("$stashctl" status "$name" --json) || die "stashctl status"
assert_match '"metadata": "failed"' "$json" "stashctl status"
assert_ok "the dirty data still reads" same "$vol" 100 "$tmp/a"
assert_fails "a write-back write (it would need a commit)" try_put "$vol" "$tmp/a" 300
assert_fails "another flush" fsync_dev "$vol"

swap_table ncache "0 $clen linear $nbdev 0"
assert_ok "remove" dmsetup remove "$vol"

# The device holds the last good commit, unmarked: nothing changed since
# it, so it loads as after a crash, with every dirty block.
out=$("$stashctl" check "$CACHE"); rc=$?
log "$out"
assert_eq 0 "$rc" "stashctl check (the last good commit, no mark)"
json=$("$stashctl" dump --json --summary "$CACHE")
assert_match '"needs_check": false' "$json" "stashctl dump: no mark"
assert_match '"clean_shutdown": false' "$json" "stashctl dump: not shut down cleanly"
assert_match '"dirty_blocks": 16' "$json" "stashctl dump: the dirty blocks"
stash_create fl2 "$ORIGIN" "$CACHE" writeback sequential_cutoff 0 \
	idle_ms 0 high_watermark 100
vol=$STASH_DEV
assert_eq persistent "$(sf "$vol" metadata)" "metadata after the reload"
assert_eq 16 "$(sf "$vol" dirty)" "dirty blocks after the reload"
assert_ok "the dirty data" same "$vol" 100 "$tmp/a"
drain "$vol" 60
assert_ok "written back to the origin" same "$ORIGIN" 100 "$tmp/a"
stash_remove "$vol"
