#!/bin/bash
# desc: write-through: many concurrent whole-block writes to a few hot blocks leave every block whole (one writer's data) and the origin equal to the cache
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
stash_load_module

# A slow origin, so that writes to one block overlap: the ones that arrive
# while one runs are parked and carried by the newest of them.
cache_setup 16 8
delay_create slow "$ORIGIN" 5
stash_create wt "$DELAY_DEV" "$CACHE" writethrough volatile sequential_cutoff 0
vol=$STASH_DEV
read_twice "$vol" 0 16
assert_eq 16 "$(used_blocks "$vol")" "hot blocks cached"

# Four writers, each with its own byte, 4 KiB writes at random into the 16
# hot blocks, 8 in flight each.
st0=$(status_line "$vol")
pids=()
for p in 0xa1 0xb2 0xc3 0xd4; do
	fio --name="w$p" --filename="$vol" --direct=1 --ioengine=libaio \
		--iodepth=8 --rw=randwrite --bs=4k --size=64k --norandommap \
		--randrepeat=0 --time_based --runtime=6 --buffer_pattern="$p" \
		--output=/dev/null &
	pids+=($!)
done
for pid in "${pids[@]}"; do
	wait "$pid" || die "a writer failed"
done
st1=$(status_line "$vol")
log "after the writers: $st1"
hits=$(delta "$st0" "$st1" write_hits)
carried=$(delta "$st0" "$st1" writes_carried)
assert_ok "write hits ($hits) >= 400" test "$hits" -ge 400
# 32 writes in flight on 16 blocks: writes wait, and newer ones carry them.
assert_ok "writes carried ($carried) > 0" test "$carried" -gt 0
assert_eq 0 "$(delta "$st0" "$st1" invalidations)" "invalidations (no errors, no races lost)"
assert_eq 16 "$(used_blocks "$vol")" "hot blocks still cached"
assert_eq 0 "$(field_of "$st1" dirty)" "dirty blocks"

# Every block holds one writer's byte throughout, the same through the
# cache (the volume's reads are hits) and on the origin.
for b in $(seq 0 15); do
	v=$(dd if="$vol" bs=4k skip="$b" count=1 iflag=direct status=none | od -An -tx1 -v | tr -s ' \n' '\n' | sort -u | grep -v '^$')
	o=$(dd if="$ORIGIN" bs=4k skip="$b" count=1 iflag=direct status=none | od -An -tx1 -v | tr -s ' \n' '\n' | sort -u | grep -v '^$')
	assert_match '^(a1|b2|c3|d4)$' "$v" "block $b through the volume holds one writer's byte"
	assert_eq "$v" "$o" "block $b: origin agrees with the cache"
done
st2=$(status_line "$vol")
assert_eq 16 "$(delta "$st1" "$st2" read_hits)" "the check read the cached copies"
stash_remove "$vol"
