#!/bin/bash
# desc: a failed metadata commit (persistent cache, dm-flakey error_writes on the cache device): the flush fails, metadata=failed, write-back writes are refused, reads and write-through writes go on, resume is refused, the cache device is marked 'needs check' and loads again only after stashctl check clears it; an origin flush failing inside a commit is retried, not a metadata failure
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

wipe_sb "$CACHE"
# commit_ms 60000: only the flush below commits.
stash_create meta "$ORIGIN" "$CACHE" writeback sequential_cutoff 0 \
	error_threshold 0 idle_ms 0 high_watermark 100 commit_ms 60000
vol=$STASH_DEV
name=${vol##*/}
put "$vol" "$tmp/a" 100
assert_ok "a flush commits" fsync_dev "$vol"
assert_eq persistent "$(sf "$vol" metadata)" "metadata before the fault"

# Writes fail past the superblocks only: the commit's pages fail, and the
# "needs check" mark on the superblock copy gets through.
len=$(dev_sectors "$(dm_path cache)")
dmsetup suspend "$(dm_path cache)" || die "suspend cache"
printf '0 16 linear /dev/ram1 0\n16 %s flakey /dev/ram1 16 0 1 1 error_writes\n' \
	$((len - 16)) | dmsetup load "$(dm_path cache)" || die "load the faulty cache table"
dmsetup resume "$(dm_path cache)" || die "resume cache"
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

log "== the 'needs check' mark"
out=$("$stashctl" check "$CACHE"); rc=$?
log "$out"
assert_eq 7 "$rc" "stashctl check exit status (the kernel refuses the cache)"
assert_match "needs check" "$out" "stashctl check names the mark"
json=$("$stashctl" dump --json --summary "$CACHE")
assert_match '"needs_check": true' "$json" "stashctl dump"
kmsg_mark
assert_fails "a table over the marked cache device" \
	dm_create meta2 "$(stash_table "$ORIGIN" "$CACHE" writeback)"
kmsg_since | grep -q "needs check" || die "no message about the mark"
"$stashctl" assemble --dry-run "$CACHE"; rc=$?
assert_eq 7 "$rc" "stashctl assemble leaves a marked cache alone"
assert_ok "stashctl check --clear-needs-check" "$stashctl" check --clear-needs-check "$CACHE"
assert_ok "stashctl check after clearing" "$stashctl" check --quiet "$CACHE"
stash_create meta2 "$ORIGIN" "$CACHE" writeback sequential_cutoff 0 idle_ms 0 high_watermark 100
vol=$STASH_DEV
assert_eq 16 "$(sf "$vol" dirty)" "dirty blocks of the last good commit"
assert_ok "the dirty data" same "$vol" 100 "$tmp/a"
assert_ok "the write that went to the origin" same "$vol" 200 "$tmp/b"
assert_ok "the write-through write" same "$vol" 300 "$tmp/c"
stash_remove "$vol"

log "== an origin flush failing inside a commit"
# brd has no volatile write cache, so the block layer drops flushes before
# they reach a dm-flakey above it: this origin is a null_blk device with one
# (nullb_setup), under a dm wrapper whose table is swapped.
nullb_setup stashorg 32
nbdev=$NULLB_DEV
olen=$(dev_sectors "$nbdev")
norigin=$(dm_path nborigin)
dm_create nborigin "0 $olen linear $nbdev 0" || die "cannot create the origin wrapper"
on_exit "dmsetup remove $norigin 2>/dev/null; true"
nb_fault() {
	swap_table nborigin "0 $olen $1"
}
wipe_sb "$CACHE"
stash_create oflush "$norigin" "$CACHE" writeback sequential_cutoff 0 \
	idle_ms 0 high_watermark 100 commit_ms 60000
vol=$STASH_DEV
put "$vol" "$tmp/a" 100
assert_ok "a flush commits the dirty blocks" fsync_dev "$vol"
# Written back, but not yet recorded clean: that takes an origin flush.
drain "$vol" 60
nb_fault "flakey $nbdev 0 0 1 1 error_writes"
st0=$(status_line "$vol")
kmsg_mark
assert_ok "suspend (its clean commit flushes the origin, which fails)" dmsetup suspend "$vol"
kmsg_since | grep -q "origin flush failed" || die "no message about the failed origin flush"
assert_eq persistent "$(sf "$vol" metadata)" "metadata after the origin flush failed"
assert_ok "origin errors counted" test "$(delta "$st0" "$(status_line "$vol")" origin_errors)" -ge 1
json=$("$stashctl" dump --json --summary "$CACHE")
assert_match '"clean_shutdown": false' "$json" "no clean shutdown recorded"
assert_match '"dirty_blocks": 16' "$json" "the written-back blocks stay recorded dirty"
assert_ok "resume" dmsetup resume "$vol"
assert_ok "a flush (it does not need the origin)" fsync_dev "$vol"
nb_fault "linear $nbdev 0"
assert_ok "suspend with the origin back" dmsetup suspend "$vol"
json=$("$stashctl" dump --json --summary "$CACHE")
assert_match '"clean_shutdown": true' "$json" "a clean shutdown recorded"
assert_match '"dirty_blocks": 0' "$json" "the blocks recorded clean"
assert_match '"valid_blocks": 16' "$json" "and still cached"
assert_ok "resume" dmsetup resume "$vol"
assert_ok "the data" same "$vol" 100 "$tmp/a"
assert_ok "the origin holds it" same "$norigin" 100 "$tmp/a"
stash_remove "$vol"
dmsetup remove "$norigin" || die "cannot remove the origin wrapper"
