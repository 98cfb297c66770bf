#!/bin/bash
# desc: read hits drop their slot pin without the lock: reads racing evictions and invalidations (discards) never return another block's data; more than 255 reads in flight on one block all finish
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
stash_load_module

# Every block of the origin holds fio's verify header (its own offset and
# a checksum), written before any cache exists: a read that returns the
# data of a reused slot's new block fails the check.
cache_setup 16 4
# read_delay NAME DEV MS [SECTORS]: dm-delay over DEV (or its first
# SECTORS) delaying reads only; sets SLOW_READS to its node.  A cache whose
# reads take a while keeps hits in flight (pinned) while the other CPU
# evicts and invalidates.
read_delay() {
	local len=${4:-$(dev_sectors "$2")}

	dm_create "$1" "0 $len delay $2 0 $3 $2 0 0" ||
		die "cannot create dm-delay over $2"
	SLOW_READS=$(dm_path "$1")
}
modprobe dm_delay || die "cannot load dm_delay"
run_fio fill --filename="$ORIGIN" --rw=write --bs=4k --direct=1 --size=16M \
	--verify=crc32c --do_verify=0 --verify_state_save=0 ||
	die "cannot fill the origin"
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

# verify_reads NAME SECONDS FIO_ARG...: random 4 KiB reads of the whole
# volume, each checked against its header, for SECONDS.  fio verifies a
# read-only job in one pass of --size, whatever the loop options: the
# passes repeat here.  Fails on a bad block or a pass that hangs.
verify_reads() {
	local name=$1 secs=$2 end

	shift 2
	end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		timeout 120 fio --name="$name" --filename="$vol" \
			--rw=randread --bs=4k --direct=1 --ioengine=libaio \
			--size=16M --verify=crc32c --verify_fatal=1 \
			--verify_state_save=0 --norandommap --randrepeat=0 \
			"$@" >"$tmp/$name.out" 2>&1 || return 1
	done
}

# discard_blocks SECONDS: BLKDISCARD of one random block of $vol at a time,
# a few hundred a second, so that the reads keep most of the CPU.
discard_blocks() {
	python3 - "$vol" "$1" <<'PY'
import fcntl, os, random, struct, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
end = time.time() + int(sys.argv[2])
rng = random.Random(28)
while time.time() < end:
    fcntl.ioctl(fd, 0x1277, struct.pack("QQ", rng.randrange(4096) * 4096, 4096))
    time.sleep(0.002)
PY
}

# race SECONDS DISCARDS: zipf reads keep a hot set cached (hits, pinned
# while in flight) while uniform reads miss, promote and evict; with
# DISCARDS=1 a third process discards random blocks, invalidating cached
# ones, some of them while they are read.
race() {
	local pids=() rc=0 pid

	verify_reads hot "$1" --iodepth=32 --random_distribution=zipf:1.1 &
	pids+=($!)
	verify_reads wide "$1" --iodepth=8 &
	pids+=($!)
	if [ "$2" = 1 ]; then
		discard_blocks "$1" &
		pids+=($!)
	fi
	for pid in "${pids[@]}"; do
		wait "$pid" || rc=1
	done
	if [ $rc != 0 ]; then
		grep -E 'verify|err=|bad' "$tmp/hot.out" "$tmp/wide.out" | head -n 20
		die "a reader or the discards failed: wrong data or a hang"
	fi
}

# race_until SECONDS DISCARDS FIELD MIN...: race SECONDS at a time, up to
# eight times, until every FIELD of the status grew by its MIN (a debug
# kernel runs several times slower: part 2 took six rounds of 10 s
# there).  Sets st0 and st1.
race_until() {
	local secs=$1 discards=$2 round field min short i

	shift 2
	st0=$(status_line "$vol")
	for round in 1 2 3 4 5 6 7 8; do
		race "$secs" "$discards"
		st1=$(status_line "$vol")
		short=
		for ((i = 1; i < $#; i += 2)); do
			field=${!i} min=${*:i+1:1}
			[ "$(delta "$st0" "$st1" "$field")" -ge "$min" ] || short+=" $field"
		done
		log "after race round $round: $st1"
		[ -z "$short" ] && return 0
		log "not enough$short yet"
	done
	return 0
}

# 1. Invalidations: a 4 MiB cache (a quarter of the origin), its reads
# taking 1 ms.  An invalidated entry with reads in flight must stay
# allocated until its last reader is done: freed early, the next
# promotion takes it from the free list and the read returns that block.
read_delay cache-1ms "$CACHE" 1
stash_create races "$ORIGIN" "$SLOW_READS" writearound sequential_cutoff 0 \
	no_discard_passdown
vol=$STASH_DEV
race_until 15 1 read_hits 10000 invalidations 300
hits=$(delta "$st0" "$st1" read_hits)
inval=$(delta "$st0" "$st1" invalidations)
assert_ok "read hits ($hits) >= 10000" test "$hits" -ge 10000
# About 5,000 discards, a quarter of them on cached blocks, some of those
# blocks gone again by the time the discard runs.
assert_ok "invalidations ($inval) >= 300" test "$inval" -ge 300
stash_remove "$vol"
dm_remove "$SLOW_READS" || die "cannot remove $SLOW_READS"

# 2. Evictions: a 16-block cache whose reads take 20 ms.  A hit marks its
# entry referenced, so the clock passes it over once and takes it on its
# next sweep: with 16 slots and thousands of promotions, entries with
# reads in flight come up for eviction all the time.
# 'format': the cache device holds the persistent cache of part 1, which
# a volatile table refuses to overwrite otherwise.
read_delay cache-tiny "$CACHE" 20 128
stash_create tiny "$ORIGIN" "$SLOW_READS" writearound volatile \
	sequential_cutoff 0 format
vol=$STASH_DEV
assert_eq 16 "$(total_blocks "$vol")" "cache blocks"
race_until 10 0 read_hits 1000 evictions 1000
hits=$(delta "$st0" "$st1" read_hits)
evictions=$(delta "$st0" "$st1" evictions)
assert_ok "read hits ($hits) >= 1000" test "$hits" -ge 1000
assert_ok "evictions ($evictions) >= 1000" test "$evictions" -ge 1000
stash_remove "$vol"
dm_remove "$SLOW_READS" || die "cannot remove $SLOW_READS"

# More reads in flight on one cached block than a slot can count
# (STASH_MAX_PINS, 255): the others wait, and each finishes when a pin
# drops.  A lost wake-up hangs fio (the timeout catches it).  The cache's
# reads take 100 ms, so that hundreds are in flight at once.
read_delay cache-100ms "$CACHE" 100
stash_create pins "$ORIGIN" "$SLOW_READS" writethrough volatile sequential_cutoff 0
vol=$STASH_DEV
read_twice "$vol" 0 1
assert_eq 1 "$(used_blocks "$vol")" "the block is cached"
st0=$(status_line "$vol")
timeout 120 fio --name=pinned --filename="$vol" --rw=randread --bs=4k \
	--direct=1 --ioengine=libaio --size=4k --iodepth=512 \
	--iodepth_batch_submit=512 --time_based --runtime=5 \
	>"$tmp/pinned.out" 2>&1 ||
	{ tail -n 20 "$tmp/pinned.out"; die "512 reads of one block: fio failed or hung"; }
st1=$(status_line "$vol")
hits=$(delta "$st0" "$st1" read_hits)
log "512 in flight on one block: $hits read hits, $(delta "$st0" "$st1" read_misses) misses"
# 255 at a time, 100 ms each, for 5 s: about 12,000.
assert_ok "read hits ($hits) >= 2000" test "$hits" -ge 2000
stash_remove "$vol"
dm_remove "$SLOW_READS" || die "cannot remove $SLOW_READS"
