#!/bin/bash
# desc: a failed metadata commit (persistent cache, dm-flakey error_writes on the cache device): the flush fails, metadata=failed, write-back writes are refused, reads and write-through writes go on, resume is refused
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
require_root
require_cmd python3
stash_load_module
fault_modules
stashctl=${STASH_STASHCTL:-$STASH_REPO/userspace-tools/stashctl}

cache_setup 32 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/a" 16
rand_file "$tmp/b" 16
rand_file "$tmp/c" 16

fsync_dev() {
	python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_WRONLY))' "$1" 2>/dev/null
}

wipe_sb "$CACHE"
# commit_ms 60000: only the flush below commits.
stash_create meta "$ORIGIN" "$CACHE" writeback sequential_cutoff 0 \
	error_threshold 0 idle_ms 0 high_watermark 100 commit_ms 60000
vol=$STASH_DEV
name=${vol##*/}
put "$vol" "$tmp/a" 100
assert_ok "a flush commits" fsync_dev "$vol"
assert_eq persistent "$(sf "$vol" metadata)" "metadata before the fault"

fault cache error_writes
put "$vol" "$tmp/b" 200	# the cache write fails: it goes to the origin
assert_fails "a flush whose commit fails" fsync_dev "$vol"
assert_eq failed "$(sf "$vol" metadata)" "metadata after the failed commit"
assert_eq ok "$(sf "$vol" cache_state)" "cache_state (error_threshold 0, device present)"
json=$("$stashctl" status "$name" --json) || die "stashctl status"
assert_match '"metadata": "failed"' "$json" "stashctl status"
fault cache linear

# Write-back writes would need a commit: refused, and nothing changes.
assert_fails "a write-back write after the failed commit" try_put "$vol" "$tmp/c" 300
assert_ok "dirty data still reads" same "$vol" 100 "$tmp/a"
assert_ok "the write that went to the origin reads" same "$vol" 200 "$tmp/b"
# Write-through writes need no commit.
dmsetup message "$vol" 0 mode writethrough || die "mode writethrough"
assert_ok "a write-through write" try_put "$vol" "$tmp/c" 300
assert_ok "it reads back" same "$vol" 300 "$tmp/c"

# The table refuses to resume.
kmsg_mark
assert_ok "suspend" dmsetup suspend "$vol"
assert_fails "resume after a failed commit" dmsetup resume "$vol"
kmsg_since | grep -q "refusing to resume" || die "no message about the refused resume"
assert_ok "remove" dmsetup remove "$vol"
