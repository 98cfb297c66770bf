#!/bin/bash
# desc: volatile write-back, writeback held off: a FUA write reaches the origin before it completes; fsync and O_DSYNC (PREFLUSH) drain every acknowledged write
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd python3
stash_load_module

cache_setup 32 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
stash_create ff "$ORIGIN" "$CACHE" writeback volatile high_watermark 100 idle_ms 0 sequential_cutoff 0
vol=$STASH_DEV
q=/sys/dev/block/$(dev_number "$vol")/queue
log "stash device: write_cache=$(cat $q/write_cache) fua=$(cat $q/fua)"
assert_eq 1 "$(cat $q/fua)" "the stash device takes FUA"

# Plain direct writes stay in the cache.
rand_file "$tmp/a" 64
put "$vol" "$tmp/a" 0
assert_eq 64 "$(sf "$vol" dirty)" "dirty after plain writes"
assert_fails "origin has plain writes" same "$ORIGIN" 0 "$tmp/a"

# REQ_FUA writes (no flush) go through to the origin, and drain nothing
# else.
rand_file "$tmp/b" 64
put_fua "$vol" "$tmp/b" 1000
assert_ok "origin has the FUA writes at once" same "$ORIGIN" 1000 "$tmp/b"
assert_ok "volume has the FUA writes" same "$vol" 1000 "$tmp/b"
assert_eq 64 "$(sf "$vol" dirty)" "dirty after the FUA writes (the plain writes stay)"
assert_fails "origin has the plain writes after the FUA writes" same "$ORIGIN" 0 "$tmp/a"

# A FUA write over dirty blocks reaches the origin at once too.
rand_file "$tmp/a2" 8
put_fua "$vol" "$tmp/a2" 8
assert_ok "origin has the FUA write over dirty blocks" same "$ORIGIN" 8 "$tmp/a2"
dd if="$tmp/a2" of="$tmp/a" bs=4k seek=8 conv=notrunc status=none
assert_ok "volume has the FUA write over dirty blocks" same "$vol" 0 "$tmp/a"

# fsync (dd conv=fsync: a PREFLUSH after the writes) puts everything
# acknowledged before it on the origin before it returns.
rand_file "$tmp/c" 128
dd if="$tmp/c" of="$vol" bs=4k seek=2000 oflag=direct conv=notrunc,fsync status=none ||
	die "write + fsync failed"
assert_ok "origin has the fsync'd writes" same "$ORIGIN" 2000 "$tmp/c"
assert_ok "origin has the earlier plain writes after fsync" same "$ORIGIN" 0 "$tmp/a"
assert_eq 0 "$(sf "$vol" dirty)" "dirty after fsync"

# A synchronous O_DSYNC write is a FUA write plus a PREFLUSH: the same.
rand_file "$tmp/e" 32
put "$vol" "$tmp/e" 4000
assert_eq 32 "$(sf "$vol" dirty)" "dirty after plain writes"
rand_file "$tmp/f" 16
dd if="$tmp/f" of="$vol" bs=4k seek=5000 oflag=direct,dsync conv=notrunc status=none ||
	die "O_DSYNC write failed"
assert_ok "origin has the O_DSYNC writes" same "$ORIGIN" 5000 "$tmp/f"
assert_ok "origin has the plain writes before the O_DSYNC writes" same "$ORIGIN" 4000 "$tmp/e"
assert_eq 0 "$(sf "$vol" dirty)" "dirty after O_DSYNC writes"
stash_remove "$vol"
