#!/bin/bash
# desc: checksums without false positives: fio crc32c verify in every mode with 4 KiB and 64 KiB blocks (512-byte..256 KiB I/O: partial-block reads and writes, read hits racing writes, eviction and writeback under pressure), and writes whose buffer the writer changes while they are in flight: checksum_errors stays 0 and the data verifies
#
# Breaks this catches (each tried once): taking the checksum of the user's
# pages instead of a private copy (stash_csum_write() reading the bio at
# completion) fails the scribble part; a read-hit mismatch failing at once
# instead of being read again with the block busy (no recheck) fails the
# racing-reads part with false errors.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
stash_load_module

ORIGIN_MIB=64
CACHE_MIB=16
cache_setup "$ORIGIN_MIB" "$CACHE_MIB"
jobs=4
per=$((ORIGIN_MIB / jobs))M
common=(--direct=1 --ioengine=libaio --iodepth=8 --numjobs="$jobs" --size="$per"
	--offset_increment="$per" --randrepeat=0 --verify_state_save=0
	--group_reporting)

# no_false_positive VOL WHAT: no checksum mismatch and no error so far.
no_false_positive() {
	local st k

	st=$(status_line "$1")
	log "$2: $st"
	for k in checksum_errors checksum_bad cache_errors origin_errors writeback_errors; do
		assert_eq 0 "$(field_of "$st" $k)" "$2: $k"
	done
}

# 64 KiB blocks in write-back only, unless STASH_LONG=1 (CI's time).
for block in 8 128; do
	for mode in writearound writethrough writeback; do
		[ "$block" = 8 ] || [ "$mode" = writeback ] || [ "${STASH_LONG:-0}" = 1 ] ||
			continue
		what="$mode, block_size $block"
		log "=== $what"
		stash_create csf "$ORIGIN" "$CACHE" "$mode" volatile checksum \
			block_size $block sequential_cutoff 0 high_watermark 30 low_watermark 10
		vol=$STASH_DEV
		args=(--filename="$vol" "${common[@]}")
		assert_ok "$what: fio 512..256k randwrite verify" run_fio mixed "${args[@]}" \
			--rw=randwrite --bsrange=512-256k --blockalign=512 \
			--verify=crc32c --verify_fatal=1 --do_verify=1
		# Reads and writes of the same blocks at once: read hits race
		# writes (a hit that sees half a write is read again, busy).
		assert_ok "$what: fio randrw verify with backlog" run_fio rw "${args[@]}" \
			--rw=randrw --bsrange=4k-64k --verify=crc32c --verify_fatal=1 \
			--verify_backlog=64 --do_verify=1
		st=$(status_line "$vol")
		assert_ne 0 "$(field_of "$st" read_hits)" "$what: read hits"
		no_false_positive "$vol" "$what"
		drain "$vol"
		stash_remove "$vol"
	done
done

# Scribbled writes: a thread keeps changing the buffer of O_DIRECT writes in
# flight, so what reaches the devices is any mix of its versions.  The
# cache must checksum what it stored, not the buffer: every block must then
# read back without a mismatch, and read the same twice (the cache's and the
# origin's copy agree after the drain).
scribble() {
	python3 - "$@" <<-'PY'
	import ctypes, mmap, os, sys, threading
	dev, nblocks = sys.argv[1], int(sys.argv[2])
	fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
	buf = mmap.mmap(-1, 16384)
	addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
	stop = False
	def scribbler():
	    # memset() runs without the GIL: the buffer changes all the time,
	    # on the other CPU, while the writes copy it.
	    i = 0
	    while not stop:
	        ctypes.memset(addr, i & 0xff, 16384)
	        i += 1
	t = threading.Thread(target=scribbler)
	t.start()
	for r in range(4):
	    for b in range(0, nblocks, 4):
	        os.pwritev(fd, [buf], b * 4096)
	stop = True
	t.join()
	PY
}
for mode in writethrough writeback; do
	stash_create csf "$ORIGIN" "$CACHE" "$mode" volatile checksum \
		sequential_cutoff 0 high_watermark 100 idle_ms 0
	vol=$STASH_DEV
	assert_ok "$mode: scribbled writes" scribble "$vol" 1024
	a=$(get "$vol" 0 1024 | sha256sum)
	b=$(get "$vol" 0 1024 | sha256sum)
	assert_eq "$a" "$b" "$mode: scribbled blocks read the same twice"
	no_false_positive "$vol" "$mode: scribbled writes"
	drain "$vol"
	stash_remove "$vol"
	# Write-through sends the user's buffer to the origin itself, so with
	# a scribbled buffer the two copies may differ (as RAID 1 mirrors do);
	# write-back copies the cache's block.
	[ "$mode" = writethrough ] ||
		assert_eq "$a" "$(get "$ORIGIN" 0 1024 | sha256sum)" "$mode: the origin got what the volume showed"
done
