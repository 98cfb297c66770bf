#!/bin/bash
# Where does a drain's CPU time go?  The bench's drain figure (drain MiB/s
# against the origin's own 1 MiB qd 4 sequential writes) is bound by the
# one emulated CPU, not by the origin's latency: this profiles both sides
# of that ratio with perf's cpu-clock sampling.  A diagnostic, not part of
# `make bench`; run it in the VM on the bench's virtual clock:
#
#	make vm-build
#	STASH_VM_KVER=6.1.0-57-amd64 STASH_VM_ACCEL=tcg STASH_VM_SMP=1 \
#	STASH_VM_ICOUNT=shift=3 tests/vm/run-vm.sh --mem 3584 -- \
#		bench/profile-drain.sh
#
# Devices as in the bench (bench/guestlib/devices.py, Devices.create): the
# origin a memory-backed null_blk of 1 GiB with an 8 ms completion delay
# and a 64 MiB volatile write cache, under a dm-linear; the cache a 256 MiB
# brd.
# Phase 1 writes 128 MiB sequentially to the origin (1 MiB, qd 4); phase 2,
# on fresh devices, writes the same to a persistent write-back cache with
# writeback held off and drains it with the "flush" message.  Each phase
# prints its rate and the top kernel symbols (self time, whole system).
set -e
cd "$(dirname "$0")/.."
MB=128
CFG=/sys/kernel/config/nullb/pd-null

modprobe dm_mod
modprobe libcrc32c
insmod kmod/dm-stash.ko
modprobe configfs
mountpoint -q /sys/kernel/config ||
	mount -t configfs configfs /sys/kernel/config

devices_up() {
	modprobe brd rd_nr=1 rd_size=$((256 * 1024))
	modprobe null_blk nr_devices=0
	mkdir $CFG
	for kv in size=1024 memory_backed=1 cache_size=64 blocksize=512 \
		discard=1 max_sectors=2048 irqmode=2 completion_nsec=8000000 \
		hw_queue_depth=1024; do
		echo "${kv#*=}" >"$CFG/${kv%%=*}"
	done
	echo 1 >$CFG/power
	udevadm settle 2>/dev/null || sleep 1
	dmsetup create pd-slow --table "0 $((1024 * 2048)) linear /dev/pd-null 0"
}

devices_down() {
	dmsetup remove pd-slow
	echo 0 >$CFG/power
	rmdir $CFG
	rmmod null_blk brd
}

profile() {	# name, shell command (may call the exported functions)
	perf record -q -a -g -e cpu-clock -o /tmp/$1.data -- bash -c "$2"
	echo "--- $1: top symbols, self (all CPUs)"
	perf report -q -i /tmp/$1.data --no-children --sort sym --stdio \
		-g none --percent-limit 1.5 2>/dev/null | head -20
	echo "--- $1: top symbols with their callees (all CPUs)"
	perf report -q -i /tmp/$1.data --children --sort sym --stdio \
		-g none --percent-limit 4 2>/dev/null | head -45
}

seqwrite() {	# device
	fio --name=seq --filename="$1" --direct=1 --rw=write --bs=1m \
		--iodepth=4 --ioengine=libaio --size=${MB}m |
		grep -E "WRITE:|clat \("
}

drain() {	# stashctl polls with an ioctl, a process per poll would not do
	local t0 t1
	t0=$(date +%s.%N)
	userspace-tools/stashctl flush pd-wb >/dev/null
	t1=$(date +%s.%N)
	echo "drain: $MB MiB in $(echo "$t1 - $t0" | bc) s (polled every 0.2 s)"
}

export -f seqwrite drain
export MB

devices_up
profile origin-seqwrite "seqwrite /dev/mapper/pd-slow"
devices_down

devices_up
dmsetup create pd-wb --table "0 $((1024 * 2048)) stash /dev/mapper/pd-slow \
/dev/ram0 writeback 8 sequential_cutoff 0 high_watermark 100 low_watermark 10 idle_ms 0"
seqwrite /dev/mapper/pd-wb
echo "before: $(dmsetup status pd-wb)"
profile drain drain
echo "after: $(dmsetup status pd-wb)"
dmsetup remove pd-wb
devices_down
