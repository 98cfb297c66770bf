#!/bin/bash
# desc: a volatile write-back cache whose suspend cannot write its dirty blocks back (origin failing) strands them: nothing else may take the cache device, the module stays loaded, and the next volatile table with that origin takes them over (reload or remove+create) and writes them back once the origin works
#
# Break it catches: dropping the dirty blocks at the failed suspend (the
# reload then reads the origin's stale data: the reads below fail).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
require_root
stash_load_module
fault_modules

cache_setup 32 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
opts=(writeback volatile idle_ms 0 high_watermark 100 sequential_cutoff 0)
rand_file "$tmp/old" 64
put "$ORIGIN" "$tmp/old" 100

stash_create vs "$ORIGIN" "$CACHE" "${opts[@]}"
vol=$STASH_DEV
rand_file "$tmp/a" 64
put "$vol" "$tmp/a" 100
assert_eq 64 "$(sf "$vol" dirty)" "dirty after the writes"

fault origin error_writes
log "reload with the origin failing: the suspend strands the blocks, the new table takes them"
kmsg_mark
dmsetup suspend "$vol" || die "suspend failed"
assert_match "stranded on cache device" "$(kmsg_since)" "the failed suspend says so"
dmsetup load "$vol" --table "$(stash_table "$ORIGIN" "$CACHE" "${opts[@]}")" || die "load failed"
dmsetup resume "$vol" || die "resume failed"
assert_match "took over 64 stranded" "$(kmsg_since)" "the new table takes them over"
assert_eq 64 "$(sf "$vol" dirty)" "dirty after the reload"
assert_ok "the reload reads the new data" same "$vol" 100 "$tmp/a"

log "remove with the origin failing: the blocks outlive the table"
kmsg_mark
dmsetup remove "$vol" || die "remove failed"
assert_fails "the module stays while blocks are stranded" rmmod dm_stash
kmsg_mark
assert_fails "a persistent table on the cache device is refused" \
	dm_create vs "$(stash_table "$ORIGIN" "$CACHE" writeback)"
assert_match "holds 64 stranded dirty blocks" \
	"$(kmsg_since)" "the refusal says why"
lin_create other /dev/ram0 $((32 * 2048))
assert_fails "a volatile table with another origin is refused" \
	dm_create vs "$(stash_table "$LIN_DEV" "$CACHE" "${opts[@]}")"
dm_remove "$LIN_DEV"

log "the origin works again: a new volatile table takes the blocks over and drains them"
fault origin linear
stash_create vs "$ORIGIN" "$CACHE" "${opts[@]}"
vol=$STASH_DEV
assert_eq 64 "$(sf "$vol" dirty)" "dirty blocks taken over"
assert_ok "the new table reads the new data" same "$vol" 100 "$tmp/a"
assert_ok "a flush writes them back" fsync_dev "$vol"
assert_eq 0 "$(sf "$vol" dirty)" "dirty after the flush"
stash_remove "$vol"
assert_ok "the origin has the data" same "$ORIGIN" 100 "$tmp/a"

log "'format' drops stranded blocks knowingly"
stash_create vs "$ORIGIN" "$CACHE" "${opts[@]}"
vol=$STASH_DEV
put "$vol" "$tmp/old" 200
fault origin error_writes
dmsetup remove "$vol" || die "remove failed"
fault origin linear
kmsg_mark
stash_create vs "$ORIGIN" "$CACHE" writeback format
assert_match "stranded blocks of origin .* dropped" "$(kmsg_since)" "format says what it drops"
stash_remove "$STASH_DEV"
