#!/bin/bash
# Lock contention of the module under many CPUs (bench/contention/run.sh
# boots a VM with STASH_CONTENTION_CPUS vCPUs and runs this).  The absolute
# IOPS of an emulated many-vCPU VM on a few host cores mean nothing; the
# contention counts do.
#
# For each module (STASH_CONTENTION_MODULES="label:/path/to/dm-stash.ko ..."),
# on a volatile write-back cache on brd over a null_blk origin, the hot set
# cached first:
#   read-hits   fio, CONTENTION_JOBS jobs of 4 KiB random reads of the hot set
#   write-hits  the same with writes (the blocks are dirty already: write-back
#               write hits)
# Each counts the spinlock contentions (the lock:contention_begin
# tracepoint, a hist trigger keyed by stack) whose stack passes through
# the module, and the I/Os fio did: contentions per million I/Os, and of
# them those on the stacks of the read and write paths.
#
# Output: $STASH_OUT/contention/results.tsv (module, workload, ios,
# contentions, per_million) and the stacks in $STASH_OUT/contention/.
set -uo pipefail

. "$(dirname "$0")/../../tests/lib.sh"
. "$(dirname "$0")/../../tests/lib-fault.sh"

OUT=${STASH_OUT:-/tmp}/contention
mkdir -p "$OUT"
TSV=$OUT/results.tsv
JOBS=${STASH_CONTENTION_JOBS:-8}
RUNTIME=${STASH_CONTENTION_RUNTIME:-20}
HOT_MB=${STASH_CONTENTION_HOT_MB:-64}
MODULES=${STASH_CONTENTION_MODULES:-"tree:$STASH_REPO/kmod/dm-stash.ko"}
TR=/sys/kernel/tracing
EV=$TR/events/lock/contention_begin

require_root
require_cmd fio
require_cmd jq
mountpoint -q $TR || mount -t tracefs nodev $TR || die "no tracefs"
[ -d $EV ] || skip "no lock:contention_begin tracepoint"
printf 'module\tworkload\tios\tcontentions\tper_million\n' >"$TSV"
log "$(nproc) CPUs, $JOBS jobs, ${RUNTIME}s each"

# count LABEL WORKLOAD RW: fio on the hot set with the hist trigger on.
count() {
	local label=$1 wl=$2 rw=$3 ios n

	echo 'hist:keys=stacktrace:vals=hitcount:size=8192' >$EV/trigger ||
		die "cannot set the hist trigger"
	fio --name="$wl" --filename="$VOL" --rw="$rw" --bs=4k --direct=1 \
		--ioengine=libaio --iodepth=8 --numjobs="$JOBS" --size="${HOT_MB}m" \
		--time_based --runtime="$RUNTIME" --group_reporting \
		--output-format=json --output="$OUT/$label-$wl.json" >/dev/null ||
		die "fio $wl failed"
	cp $EV/hist "$OUT/$label-$wl.hist"
	echo '!hist:keys=stacktrace:vals=hitcount:size=8192' >$EV/trigger
	ios=$(jq '[.jobs[0].read.total_ios, .jobs[0].write.total_ios] | add' \
		"$OUT/$label-$wl.json")
	# Each hist entry: the stack lines, then "{ ... } hitcount: N".
	n=$(awk '/stacktrace:/ { s = "" } { s = s $0 "\n" }
		/hitcount:/ { if (s ~ /stash_|dm_stash/) { sub(/.*hitcount: */, ""); t += $1 } }
		END { print t + 0 }' "$OUT/$label-$wl.hist")
	printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$wl" "$ios" "$n" \
		"$(echo "scale=1; $n * 1000000 / $ios" | bc)" >>"$TSV"
	log "$label $wl: $ios I/Os, $n contentions in the module's stacks"
}

brd_setup 1 $((HOT_MB * 4 * 1024))
nullb_setup stcon 1024 0 0 4096
for m in $MODULES; do
	label=${m%%:*}
	STASH_KO=${m#*:}
	rmmod dm_stash 2>/dev/null
	insmod "$STASH_KO" || die "insmod $STASH_KO failed"
	stash_create con "$NULLB_DEV" /dev/ram0 writeback volatile sequential_cutoff 0 \
		high_watermark 100 idle_ms 0
	VOL=$STASH_DEV
	# Cached and dirty: every read and write of the hot set is a hit.
	dd if=/dev/urandom of="$VOL" bs=1M count="$HOT_MB" oflag=direct status=none ||
		die "cannot fill the hot set"
	count "$label" read-hits randread
	count "$label" write-hits randwrite
	log "$label: $(dmsetup status "$VOL" | tr ' ' '\n' | grep -E '^(read|write)_(hits|misses)=' | paste -sd' ')"
	stash_remove "$VOL"
done
log "results in $TSV"
cat "$TSV"
