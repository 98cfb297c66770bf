#!/bin/bash
# Where does a large cache's load go?  The scale bench (bench/scale/) times
# format, clean resume (empty and full) and the resume after a power cut
# against a plain read of the metadata region; this profiles each of them
# with perf's cpu-clock sampling, on the bench's virtual clock, where time
# is instructions.  A diagnostic, not part of `make bench`:
#
#	make vm-build tests-tools
#	STASH_VM_KVER=6.1.0-57-amd64 STASH_VM_ACCEL=tcg STASH_VM_SMP=1 \
#	STASH_VM_ICOUNT=shift=3 tests/vm/run-vm.sh --mem 4096 -- \
#		bench/profile-load.sh
#
# STASH_PROFILE_CACHE_MIB (default 16384: 4M slots of 4 KiB) sizes the
# cache; the origin is 16 TiB (memory-backed null_blk: only what is
# written takes memory).
set -uo pipefail
cd "$(dirname "$0")/.."

. tests/lib.sh
. tests/lib-fault.sh

CMIB=${STASH_PROFILE_CACHE_MIB:-16384}
STASH_MD=tests/tools/bin/stash-md
require_root
stash_load_module
[ -x "$STASH_MD" ] || die "$STASH_MD missing (make tests-tools)"

# profile NAME CMD...: time CMD under perf, then its top symbols.
profile() {
	local name=$1 t0 t1

	shift
	t0=$(date +%s.%N)
	perf record -q -a -g -e cpu-clock -o "/tmp/$name.data" -- "$@" ||
		die "$name: $* failed"
	t1=$(date +%s.%N)
	echo "=== $name: $(echo "$t1 - $t0" | bc) s"
	perf report -q -i "/tmp/$name.data" --no-children --sort sym --stdio \
		-g none --percent-limit 1 2>/dev/null | head -25
	echo "--- $name: with callees"
	perf report -q -i "/tmp/$name.data" --children --sort sym --stdio \
		-g none --percent-limit 3 2>/dev/null | head -30
}
timed() {
	local name=$1 t0 t1

	shift
	t0=$(date +%s.%N)
	"$@" || die "$name: $* failed"
	t1=$(date +%s.%N)
	echo "=== $name: $(echo "$t1 - $t0" | bc) s"
}

nullb_setup plc "$CMIB" 0 0 4096
cdev=$NULLB_DEV
nullb_setup plo $((16 * 1024 * 1024)) 0 0 4096
odev=$NULLB_DEV
name=pl
t="0 $(dev_sectors "$odev") stash $odev $cdev writeback 2 block_size 8"

profile format dmsetup create "$name" --table "$t"
dmsetup status "$name"
timed remove_empty dmsetup remove "$name"
mds=$(userspace-tools/stashctl dump --json --summary "$cdev" | jq -r .superblock.md_start)
mde=$(userspace-tools/stashctl dump --json --summary "$cdev" | jq -r .superblock.data_start)
sync
echo 3 >/proc/sys/vm/drop_caches
timed md_read dd if="$cdev" of=/dev/null bs=1M iflag=direct,skip_bytes,count_bytes \
	skip=$((mds * 512)) count=$(((mde - mds) * 512)) status=none
profile resume_empty dmsetup create "$name" --table "$t"
timed remove_empty dmsetup remove "$name"
"$STASH_MD" seed-clean "$cdev" 100000 1048576 | tail -n1
profile resume_full dmsetup create "$name" --table "$t"
dmsetup status "$name"
timed remove_full dmsetup remove "$name"
for j in 0 1; do
	"$STASH_MD" forge-sb "$cdev" $j flags 0 >/dev/null ||
		die "cannot forge an unclean shutdown"
done
profile resume_crash dmsetup create "$name" --table "$t"
dmsetup status "$name"
timed remove_crash dmsetup remove "$name"
echo "profile-load: done"
