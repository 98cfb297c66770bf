#!/bin/bash
# desc: write-through: after random writes (no flush) the origin alone equals the volume, and nothing is ever dirty
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
stash_load_module

cache_setup 64 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

dd if=/dev/urandom of="$ORIGIN" bs=1M count=64 oflag=direct status=none
stash_create wt "$ORIGIN" "$CACHE" writethrough sequential_cutoff 0
vol=$STASH_DEV

# Cache the first 8 MiB, so that the writes below are part hits, part misses.
read_twice "$vol" 0 2048
log "warm: $(status_line "$vol")"
assert_eq 2048 "$(used_blocks "$vol")" "cache blocks used after warming"

# Sample dirty= while the writes run.
(
	while :; do
		stash_status_field "$vol" dirty
		sleep 0.05
	done
) >"$tmp/dirty" 2>/dev/null &
sampler=$!
on_exit "kill $sampler 2>/dev/null"

# Random writes over the first 16 MiB: whole blocks and 512-byte pieces at
# unaligned offsets, no fsync, no flush.
st0=$(status_line "$vol")
assert_ok "fio random writes" run_fio wt --filename="$vol" --direct=1 \
	--ioengine=libaio --iodepth=8 --numjobs=2 --size=8M --offset_increment=8M \
	--rw=randwrite --bsrange=512-16k --blockalign=512 --norandommap \
	--io_size=6M --randrepeat=0 --group_reporting
st1=$(status_line "$vol")
kill "$sampler"
wait "$sampler" 2>/dev/null
log "after writes: $st1"
log "dirty samples: $(wc -l <"$tmp/dirty"), values: $(sort -u "$tmp/dirty" | tr '\n' ' ')"
assert_ok "dirty sampled during the writes" test "$(wc -l <"$tmp/dirty")" -gt 2
assert_eq 0 "$(sort -u "$tmp/dirty" | tr -d '\n')" "dirty= while writing"
assert_ne 0 "$(delta "$st0" "$st1" write_hits)" "write hits (cached blocks were written)"
assert_ne 0 "$(delta "$st0" "$st1" write_misses)" "write misses"
assert_eq 0 "$(field_of "$st1" cache_errors)" "cache errors"

# The origin, read directly while the volume is still live and unflushed,
# equals the volume (whose reads of the first 8 MiB hit the cache).
assert_ok "origin equals the volume" same_devs "$ORIGIN" "$vol"
st2=$(status_line "$vol")
assert_ok "the comparison read cached blocks ($(delta "$st1" "$st2" read_hits) hits)" \
	test "$(delta "$st1" "$st2" read_hits)" -gt 1000
assert_eq 0 "$(sf "$vol" dirty)" "dirty after the writes"

stash_remove "$vol"
