#!/bin/bash
# How long does slot allocation (stash_map_alloc) take while 1 MiB
# sequential writes run over a write-back cache full of clean and dirty
# blocks?  A diagnostic, not part of `make bench`; run it in the VM:
#
#	make vm-build
#	STASH_VM_KVER=6.1.0-57-amd64 tests/vm/run-vm.sh -- bench/trace-alloc.sh
#
# Devices: origin 512 MiB (dm-delay 8 ms over brd), cache 128 MiB (brd,
# volatile), sequential_cutoff 0.  The 100 MiB read twice first leaves
# 25,600 clean cached blocks; then fio writes 1 MiB sequentially at qd 4
# for 10 s while the function_graph tracer times every stash_map_alloc()
# call.  Prints fio's latencies, the status, and the calls' count, total
# time and percentiles (the tracer adds its own cost to each call).
set -e
cd "$(dirname "$0")/.."
modprobe dm_mod
modprobe libcrc32c
modprobe dm_delay
insmod kmod/dm-stash.ko
modprobe brd rd_nr=2 rd_size=$((512 * 1024))
dmsetup create ta-slow --table "0 $((512 * 2048)) delay /dev/ram0 0 8"
dmsetup create ta-cache --table "0 $((128 * 2048)) linear /dev/ram1 0"
dmsetup create ta-wb --table "0 $((512 * 2048)) stash /dev/mapper/ta-slow \
/dev/mapper/ta-cache writeback 3 volatile sequential_cutoff 0"
dev=/dev/mapper/ta-wb

for pass in 1 2; do
	fio --name=warm$pass --filename=$dev --direct=1 --rw=randread --bs=4k \
		--iodepth=16 --ioengine=libaio --size=100m --io_size=400m \
		--randrepeat=1 >/dev/null
done
echo "before: $(dmsetup status ta-wb)"

T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T
echo 0 >$T/tracing_on
echo function_graph >$T/current_tracer
echo stash_map_alloc >$T/set_graph_function
echo stash_map_alloc >$T/set_ftrace_filter
echo 16384 >$T/buffer_size_kb
echo >$T/trace
echo 1 >$T/tracing_on
fio --name=seq --filename=$dev --direct=1 --rw=write --bs=1m --iodepth=4 \
	--ioengine=libaio --runtime=10 --time_based |
	grep -E "IOPS|clat \(|th=\["
echo 0 >$T/tracing_on
echo "after: $(dmsetup status ta-wb)"

grep -o '[0-9.]* us' $T/trace | awk '{ print $1 }' | sort -n | awk '
	{ d[NR] = $1; sum += $1 }
	END {
		printf "stash_map_alloc: %d calls, %.2f s in all; p50 %s us, p99 %s us, max %s us\n",
			NR, sum / 1e6, d[int(NR * 0.5)], d[int(NR * 0.99)], d[NR]
	}'
echo nop >$T/current_tracer
dmsetup remove ta-wb
dmsetup remove ta-cache ta-slow
