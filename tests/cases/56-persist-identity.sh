#!/bin/bash
# desc: a cache device that holds a dm-stash cache is refused by a volatile table and by a table naming another origin (or one of another size), unchanged; while it is live, its cache device and origin are refused to any other dm-stash device; 'format' gives the data up knowingly; a renamed origin is accepted
#
# Breaks it catches: a volatile table that ignores the superblock (it
# starts empty, reads return the origin's stale data, its writes overwrite
# the metadata); a persistent table that compares only sizes (the dirty
# blocks are written back onto the wrong device).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup

# ram0, ram1: two origins; ram2: the cache.
brd_setup 3 32768
linear_create origa /dev/ram0 0 32768
origa=$LINEAR_DEV
linear_create origb /dev/ram1 0 32768
origb=$LINEAR_DEV
cache=/dev/ram2
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/a" 16
opts=(writeback high_watermark 100 idle_ms 0)

pstash_create ident "$origa" "$cache" "${opts[@]}"
put "$STASH_DEV" "$tmp/a" 100
assert_eq 16 "$(st "$STASH_DEV" dirty)" "dirty blocks"
stash_remove "$STASH_DEV"
md_dump "$cache" "$tmp/before"
assert_eq 16 "$(jq .dirty_blocks "$tmp/before")" "dump: dirty blocks after the remove"

# refused WHAT REGEX TABLE...: the table is refused with a kernel message
# matching REGEX, and the cache device's metadata is unchanged.
refused() {
	local what=$1 re=$2

	shift 2
	kmsg_mark
	assert_fails "$what: the table is refused" dm_create ident "$(stash_table "$@")"
	assert_match "$re" "$(kmsg_since)" "$what: the kernel says why"
	md_dump "$cache" "$tmp/after"
	assert_eq "$(jq -S 'del(.superblock.name)' "$tmp/before")" \
		"$(jq -S 'del(.superblock.name)' "$tmp/after")" "$what: the metadata is unchanged"
}

refused "volatile over the cache" "holds a dm-stash cache" \
	"$origa" "$cache" writeback volatile
refused "another origin of the same size" "belongs to origin .*stasht-origa" \
	"$origb" "$cache" "${opts[@]}"

log "the same origin, larger now (the table still maps 16 MiB)"
dm_remove_name origa
linear_create origa /dev/ram0 0 65536 2>/dev/null || {
	# ram0 has 16 MiB: stack two slices instead.
	dm_create origa "0 32768 linear /dev/ram0 0
32768 32768 linear /dev/ram1 0" || die "cannot make a larger origa"
}
kmsg_mark
assert_fails "an origin device of another size: refused" \
	dm_create ident "0 32768 stash $origa $cache writeback 4 high_watermark 100 idle_ms 0"
assert_match "made for an origin of 32768 sectors" "$(kmsg_since)" "the size message"
dm_remove_name origa
linear_create origa /dev/ram0 0 32768

log "its own origin: accepted, the dirty blocks are there"
pstash_create ident "$origa" "$cache" "${opts[@]}"
assert_eq 16 "$(st "$STASH_DEV" dirty)" "dirty blocks after the reload"
assert_ok "the data reads back" same "$STASH_DEV" 100 "$tmp/a"

# While it is live, no other dm-stash device may take its cache device or
# its origin.  Break it catches: no claim on the devices (the same table
# under another name loads the same cache a second time, and a volatile
# cache over its origin is accepted: two caches whose writes make each
# other's blocks stale).
log "live: its cache device and its origin are refused to another device"
kmsg_mark
assert_fails "a second device on its cache device and origin" \
	dm_create other "$(stash_table "$origa" "$cache" "${opts[@]}")"
assert_match "the cache device .* is in use by dm-stash device .*ident" "$(kmsg_since)" \
	"the kernel names the device that holds the cache device"
kmsg_mark
assert_fails "a volatile cache over its origin" \
	dm_create other "$(stash_table "$origa" "$origb" writeback volatile format)"
assert_match "the origin device .* is in use by dm-stash device .*ident" "$(kmsg_since)" \
	"the kernel names the device that holds the origin"
assert_eq "" "$(dm_names | grep -x "${STASH_DM_PREFIX}other")" "no device left by the refusals"
log "a reload of the live device itself takes them"
# (The table as made, not as dmsetup shows it: that names the origin
# 253:N, which the next commit would record as its path.)
assert_ok "reload with the same devices" dmsetup reload "$(basename "$STASH_DEV")" \
	--table "$(stash_table "$origa" "$cache" "${opts[@]}")"
assert_ok "resume the reloaded table" dmsetup resume "$(basename "$STASH_DEV")"
assert_eq 16 "$(st "$STASH_DEV" dirty)" "dirty blocks after the refusals and the reload"
assert_ok "the data reads back after them" same "$STASH_DEV" 100 "$tmp/a"
stash_remove "$STASH_DEV"

log "the origin renamed (its recorded path names no device now): accepted"
dm_remove_name origa
linear_create origr /dev/ram0 0 32768
kmsg_mark
pstash_create ident "$LINEAR_DEV" "$cache" "${opts[@]}"
assert_match "names no device now" "$(kmsg_since)" "a warning about the renamed origin"
assert_eq 16 "$(st "$STASH_DEV" dirty)" "dirty blocks after the rename"
assert_ok "the data reads back" same "$STASH_DEV" 100 "$tmp/a"
stash_remove "$STASH_DEV"
md_dump "$cache" "$tmp/before"
assert_match "stasht-origr" "$(dd if="$cache" bs=4k count=2 status=none | strings)" \
	"the new path is recorded"

log "'format' gives the data up knowingly"
pstash_create ident "$origb" "$cache" "${opts[@]}" format
assert_eq 0 "$(st "$STASH_DEV" dirty)" "dirty blocks after format for another origin"
stash_remove "$STASH_DEV"
pstash_create ident "$origb" "$cache" writeback volatile format
assert_eq 0 "$(st "$STASH_DEV" dirty)" "a volatile cache after format"
stash_remove "$STASH_DEV"
md_check "$cache" 8 "no dm-stash superblock"
dm_remove_name origr
dm_remove_name origb
