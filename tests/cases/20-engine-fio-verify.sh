#!/bin/bash
# desc: fio crc32c verify over a volume 4x the cache in every mode (4k and 512..1m unaligned), with eviction and writeback
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
stash_load_module

# Origin 128 MiB, cache 32 MiB: the working set is 4x the cache, so blocks
# are evicted and, in write-back, written back under pressure.  The table
# has no options: a persistent cache (metadata on the cache device).
ORIGIN_MIB=${ORIGIN_MIB:-128}
CACHE_MIB=${CACHE_MIB:-32}
cache_setup "$ORIGIN_MIB" "$CACHE_MIB"
jobs=4
per=$((ORIGIN_MIB / jobs))M

common=(--direct=1 --ioengine=libaio --iodepth=8
	--numjobs=$jobs --size=$per --offset_increment=$per
	--randrepeat=0 --verify_state_save=0 --group_reporting)

for mode in writearound writethrough writeback; do
	log "=== $mode"
	stash_create "eng-$mode" "$ORIGIN" "$CACHE" "$mode"
	vol=$STASH_DEV
	args=(--filename="$vol" "${common[@]}")
	nr_cblocks=$(total_blocks "$vol")

	# 1. Random 4 KiB writes over the whole volume, then read back and
	# verify every block.
	assert_ok "$mode: fio 4k randwrite verify" run_fio rand4k "${args[@]}" \
		--rw=randwrite --bs=4k --verify=crc32c --verify_fatal=1 --do_verify=1
	st1=$(status_line "$vol")
	log "after 4k verify: $st1"

	# 2. Read 3/4 of every job's range with each block read twice in a
	# row (the second miss promotes): three times the cache size is
	# promoted, so the cache fills and evicts.
	assert_ok "$mode: fio promoting reads" run_fio promote "${args[@]}" \
		--rw=randread:2 --rw_sequencer=identical --bs=4k \
		--io_size=$((ORIGIN_MIB / jobs * 3 / 4))M
	st2=$(status_line "$vol")
	log "after promoting reads: $st2"
	p=$(delta "$st1" "$st2" promotions)
	assert_ok "$mode: promotions ($p) cover more than the cache ($nr_cblocks)" \
		test "$p" -gt "$nr_cblocks"
	assert_ne 0 "$(field_of "$st2" evictions)" "$mode: evictions"

	# 3. Every block, read from wherever it is now, still verifies.
	assert_ok "$mode: verify the 4k data after eviction" \
		fio_check "$vol" "${ORIGIN_MIB}M"

	# 4. Mixed sizes, 512-byte aligned offsets: partial blocks, block
	# straddling, large I/Os split at block boundaries.
	assert_ok "$mode: fio 512..1m randwrite verify" run_fio mixed "${args[@]}" \
		--rw=randwrite --bsrange=512-1m --blockalign=512 \
		--verify=crc32c --verify_fatal=1 --do_verify=1
	st3=$(status_line "$vol")
	log "after mixed verify: $st3"
	case $mode in
	writearound)
		assert_ne 0 "$(delta "$st2" "$st3" invalidations)" \
			"$mode: writes to cached blocks invalidated them" ;;
	writethrough)
		assert_ne 0 "$(delta "$st2" "$st3" write_hits)" \
			"$mode: writes hit cached blocks" ;;
	writeback)
		assert_ne 0 "$(field_of "$st3" written_back)" "$mode: written_back"
		assert_ne 0 "$(field_of "$st3" evictions)" "$mode: evictions" ;;
	esac
	for k in cache_errors origin_errors writeback_errors; do
		assert_eq 0 "$(field_of "$st3" $k)" "$mode: $k"
	done

	# 5. What the volume shows is what the origin holds once the cache is
	# drained and gone.  (The drain at removal has a test of its own.)
	want=$(dd if="$vol" bs=1M iflag=direct status=none | sha256sum)
	drain "$vol"
	stash_remove "$vol"
	assert_eq "$want" "$(dd if="$ORIGIN" bs=1M iflag=direct status=none | sha256sum)" \
		"$mode: origin after removing the volume"
	# Next mode: a zeroed origin and a blank cache device.
	dd if=/dev/zero of="$ORIGIN" bs=1M count="$ORIGIN_MIB" oflag=direct status=none
	wipe_sb "$CACHE"
done
