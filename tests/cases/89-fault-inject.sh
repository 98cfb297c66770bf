#!/bin/bash
# desc: fault injection (debug kernel): every allocation of create/reload/messages failed in turn, failslab on the module's slab cache and fail_make_request on the cache device under fio verify: clean errors or recovery, never wrong data, no splat
# kernel-log: allocation failures expected
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio python3
stash_load_module

DBG=/sys/kernel/debug
SLAB=stash_job
[ -d $DBG/failslab ] && [ -d $DBG/fail_make_request ] ||
	skip "the kernel has no failslab/fail_make_request (make check-debug boots one that has)"
# Which slab caches failslab may fail is fixed at boot (6.1's
# /sys/kernel/slab/*/failslab is read-only): "slub_debug=A,stash_job,kmalloc-*"
# on the command line, as make check-debug boots.
[ "$(cat "/sys/kernel/slab/$SLAB/failslab" 2>/dev/null)" = 1 ] ||
	skip "$SLAB is not marked for failslab (boot with slub_debug=A,$SLAB,kmalloc-*, as make check-debug does)"
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

# fault_set DIR KEY=VALUE...: set fault-injection attributes.
fault_set() {
	local dir=$1 kv

	shift
	for kv in "$@"; do
		echo "${kv#*=}" >"$DBG/$dir/${kv%%=*}" || die "cannot set $dir/${kv%%=*}"
	done
}

# Quiet (no stack dumps: they would read as splats), off by default.
fault_off() {
	fault_set failslab probability=0 times=-1 interval=1 verbose=0 task-filter=N cache-filter=N ignore-gfp-wait=Y
	fault_set fail_make_request probability=0 times=-1 interval=1 verbose=0
	[ ! -d $DBG/fail_page_alloc ] ||
		fault_set fail_page_alloc probability=0 verbose=0 min-order=11 ignore-gfp-wait=Y
}
fault_off
on_exit fault_off

cache_setup 64 16

# ---------------------------------------------------------------------------
log "== 1. every allocation of create/load/resume, reload, suspend/resume and messages failed in turn"
# The slab caches a table load and the messages allocate from: kmalloc and
# the module's own.  Only those count, only in the fuzzer's thread (fail-nth).
n=$(grep -l '^1$' /sys/kernel/slab/*/failslab | wc -l)
log "failslab may fail $n slab caches"
fault_set failslab cache-filter=Y ignore-gfp-wait=N
for v in "" --volatile; do
	assert_ok "fail-nth ${v:-persistent}" python3 "$STASH_REPO/tests/tools/dm-fuzz.py" failnth \
		--origin "$ORIGIN" --cache "$CACHE" $v
done
fault_off

# ---------------------------------------------------------------------------
# run_fio_allowing_eio NAME ARG...: fio with verify; an I/O error (EIO) is a
# clean failure, a verify error (wrong data) is not.  Sets FIO_EIO=1 when
# fio stopped on an I/O error.
run_fio_allowing_eio() {
	local name=$1 out=$tmp/$1.out

	shift
	FIO_EIO=0
	fio --name="$name" "$@" >"$out" 2>&1 && ! grep -qE 'err= *[1-9]' "$out" && return 0
	if grep -qE 'verify: bad|bad magic|crc32c: verify failed|verify failed' "$out"; then
		tail -n 30 "$out"
		die "$name: fio read wrong data under fault injection"
	fi
	grep -qE 'Input/output error|err= *5\b|error=Input/output' "$out" ||
		{ tail -n 30 "$out"; die "$name: fio failed, and not with EIO"; }
	FIO_EIO=1
}

fio_args=(--filename=VOL --direct=1 --ioengine=libaio --iodepth=8 --size=24M
	  --bsrange=4k-64k --rw=randrw --verify=crc32c --verify_fatal=1
	  --verify_backlog=64 --do_verify=1 --randrepeat=0 --verify_state_save=0)

# ---------------------------------------------------------------------------
log "== 2. failslab on $SLAB (partial-block promotions) under partial reads"
# The data goes to the origin before the volume exists, so that every
# first read of a block is a miss (a write-through write would cache it).
dd if=/dev/urandom of="$tmp/orig" bs=1M count=16 status=none
dd if="$tmp/orig" of="$ORIGIN" bs=1M oflag=direct status=none
wipe_sb "$CACHE"		# the volatile run above left cached data, no superblock
stash_create fslab "$ORIGIN" "$CACHE" writethrough sequential_cutoff 0
vol=$STASH_DEV
# The kmalloc caches are marked too (for part 1), so the failures are also
# limited by task: only the reader below, which marks itself
# (/proc/self/make-it-fail) once its files are open and its buffers made.
# A partial-block read miss allocates its copy job in the reader's
# context, in the target's map function.
fault_set failslab cache-filter=Y task-filter=Y ignore-gfp-wait=N probability=30 times=100000
python3 - "$vol" "$tmp/orig" <<'PY' || die "partial reads under failslab returned wrong data or errors"
import mmap, os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
ref = open(sys.argv[2], "rb").read()
r = random.Random(89)
buf = mmap.mmap(-1, 4096)
mark = os.open("/proc/self/make-it-fail", os.O_WRONLY)
os.write(mark, b"1")
for i in range(3000):
    off = r.randrange(4096) * 512     # the first 2 MiB: blocks read again soon
    n = min(r.choice([512, 1024, 2048]), len(ref) - off)
    if os.preadv(fd, [memoryview(buf)[:n]], off) != n or buf[:n] != ref[off:off + n]:
        os.write(mark, b"0")
        sys.exit(f"read {i} at {off}+{n}: wrong data")
os.write(mark, b"0")
PY
left=$(cat $DBG/failslab/times)
fault_off
log "failslab: $((100000 - left)) allocations failed; $(status_line "$vol")"
[ $((100000 - left)) -gt 0 ] || die "failslab never hit $SLAB: no partial-block fill happened?"
assert_ok "data after failslab" same "$vol" 0 "$tmp/orig"
stash_remove "$vol"

# ---------------------------------------------------------------------------
log "== 3. fail_make_request on the cache device under fio verify, each mode"
cache_blk=$(basename "$(readlink -f "/sys/dev/block/$(dev_number "$CACHE")")")
for mode in writearound writethrough writeback; do
	for kind in volatile persistent; do
		wipe_sb "$CACHE"
		opts=(sequential_cutoff 0)
		[ $kind = volatile ] && opts+=(volatile)
		stash_create "fmr-$mode" "$ORIGIN" "$CACHE" "$mode" "${opts[@]}"
		vol=$STASH_DEV
		# Warm the cache first, without faults.
		run_fio_allowing_eio warm "${fio_args[@]/VOL/$vol}" --rw=randwrite
		[ $FIO_EIO = 0 ] || die "$mode/$kind: I/O error with no fault injected"
		fault_set fail_make_request probability=10 times=100000
		echo 1 >"/sys/block/$cache_blk/make-it-fail"
		run_fio_allowing_eio "faulty-$mode-$kind" "${fio_args[@]/VOL/$vol}"
		echo 0 >"/sys/block/$cache_blk/make-it-fail"
		left=$(cat $DBG/fail_make_request/times)
		fault_off
		st=$(status_line "$vol")
		log "$mode/$kind: $((100000 - left)) cache I/Os failed, user saw EIO: $FIO_EIO; $st"
		[ $((100000 - left)) -gt 0 ] || die "$mode/$kind: no cache I/O failed"
		[ "$(field_of "$st" cache_errors)" -gt 0 ] ||
			[ "$(field_of "$st" metadata)" = failed ] ||
			die "$mode/$kind: cache I/Os failed but the status counts no cache error: $st"
		# Recovery: with the faults gone the volume must work again (a
		# failed persistent cache may refuse, cleanly, until re-created).
		if [ "$(field_of "$st" metadata)" != failed ]; then
			run_fio_allowing_eio "after-$mode-$kind" "${fio_args[@]/VOL/$vol}"
			[ $FIO_EIO = 0 ] || die "$mode/$kind: I/O errors after the faults stopped"
		fi
		[ "$mode" != writeback ] || dmsetup message "$vol" 0 flush 2>/dev/null
		timeout 300 dmsetup remove --retry "$vol" || die "$mode/$kind: cannot remove after the faults"
	done
done
