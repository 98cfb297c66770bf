#!/bin/bash
# desc: volatile write-back: suspend, table reload and remove write every dirty block back before they return
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
stash_load_module

cache_setup 32 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
dd if=/dev/urandom of="$ORIGIN" bs=1M count=32 oflag=direct status=none
opts="volatile high_watermark 100 idle_ms 0 sequential_cutoff 0"
stash_create sr "$ORIGIN" "$CACHE" writeback $opts
vol=$STASH_DEV
dev=${STASH_DM_PREFIX}sr
table=$(dmsetup table "$dev")

# dirty_write FILE BLOCK COUNT: COUNT new random blocks at BLOCK, held dirty.
dirty_write() {
	rand_file "$1" "$3"
	put "$vol" "$1" "$2"
	assert_fails "origin has $1 before it is written back" same "$ORIGIN" "$2" "$1"
}

# --- suspend: the data is on the origin once suspend returns -------------
dirty_write "$tmp/a" 100 512
assert_eq 512 "$(sf "$vol" dirty)" "dirty before suspend"
kmsg_mark
assert_ok "suspend" dmsetup suspend "$dev"
assert_ok "origin has the data while suspended" same "$ORIGIN" 100 "$tmp/a"
assert_eq 0 "$(sf "$vol" dirty)" "dirty while suspended"
assert_ok "resume" dmsetup resume "$dev"
assert_ok "volume has the data after resume" same "$vol" 100 "$tmp/a"

# --- table reload (a new target instance) ---------------------------------
dirty_write "$tmp/b" 1000 300
assert_ok "reload" dmsetup reload "$dev" --table "$table"
assert_ok "resume with the new table" dmsetup resume "$dev"
assert_ok "origin has the data after the reload" same "$ORIGIN" 1000 "$tmp/b"
assert_eq 0 "$(sf "$vol" dirty)" "dirty in the new table"
assert_ok "volume has the data after the reload" same "$vol" 1000 "$tmp/b"

# --- remove ---------------------------------------------------------------
dirty_write "$tmp/c" 3000 700
# Part of a block too (a partial write hit on a dirty block).
head -c 1024 /dev/urandom >"$tmp/part"
dd if="$tmp/part" of="$vol" bs=512 seek=$((3000 * 8 + 2)) oflag=direct conv=notrunc status=none ||
	die "partial write failed"
dd if="$tmp/part" of="$tmp/c" bs=512 seek=2 conv=notrunc status=none
assert_eq 700 "$(sf "$vol" dirty)" "dirty before remove"
want=$(dd if="$vol" bs=1M iflag=direct status=none | sha256sum)
stash_remove "$vol"
assert_ok "origin has the data after remove" same "$ORIGIN" 3000 "$tmp/c"
assert_ok "origin has the earlier data after remove" same "$ORIGIN" 100 "$tmp/a"
assert_eq "$want" "$(dd if="$ORIGIN" bs=1M iflag=direct status=none | sha256sum)" \
	"origin after remove equals the volume before"
out=$(kmsg_since | grep -E 'stash: .*(lost|could not)' || true)
assert_eq "" "$out" "kernel messages about lost dirty blocks"
