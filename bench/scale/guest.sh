#!/bin/bash
# dm-stash scale bench, guest side (bench/scale/run.sh boots the VM).
#
# Large caches: for each configuration (cache size, block size, origin
# size) on memory-backed null_blk devices (they allocate only what is
# written: the metadata region and the few blocks the fio jobs touch):
#   format       dmsetup create on a blank cache device (formats it)
#   md_read      dd of the metadata region (O_DIRECT, 1 MiB reads): the
#                plain sequential read the load times are compared with
#   resume_empty dmsetup create after a clean shutdown, nothing cached
#   remove_empty dmsetup remove of that clean cache
#   resume_full  dmsetup create after a clean shutdown with every slot
#                mapped (the metadata seeded by tests/tools/stash-md)
#   suspend_full dmsetup suspend of that clean, full cache (and resume)
#   remove_full  dmsetup remove of it
#   resume_crash dmsetup create of the full cache after an unclean
#                shutdown (both superblock copies forged to say so):
#                recovery drops every clean mapping
#   fsync        fio: 4 KiB random writes over 64 MiB, each followed by an
#                fsync (write-back: each fsync is a commit of few pages),
#                mean and p99 fsync latency, commits per second
#   fsync_volatile  the same on a volatile cache (each fsync: a writeback
#                pass over the few dirty blocks)
#   ram          kernel RAM per cache block (status ram_per_block)
# Many volumes: SCALE_VOLUMES volumes, each its own cache and origin:
#   the kernel RAM each costs beyond its blocks (MemAvailable before and
#   after, less ram_per_block x blocks), its kernel threads, fio on all of
#   them at once (verified), then the work items the module runs in
#   SCALE_IDLE_S seconds of idleness once every volume is clean.
#
# Output: $STASH_OUT/scale/results.tsv (config, key, value, unit) and
# $STASH_OUT/scale/guest.log.  Times come from the guest's clock: with
# bench/run.sh's virtual clock (instruction counting) they are stable
# ratios, not real seconds.
set -uo pipefail

. "$(dirname "$0")/../../tests/lib.sh"
. "$(dirname "$0")/../../tests/lib-fault.sh"

OUT=${STASH_OUT:-/tmp}/scale
mkdir -p "$OUT"
TSV=$OUT/results.tsv
STASHCTL=${STASH_STASHCTL:-$STASH_REPO/userspace-tools/stashctl}
STASH_MD=$STASH_REPO/tests/tools/bin/stash-md
# name:cache_MiB:block_KiB:origin_MiB
CONFIGS=${STASH_SCALE_CONFIGS:-"256m-4k:256:4:4194304 256g-4k:262144:4:4194304 256g-64k:262144:64:16777216"}
VOLUMES=${STASH_SCALE_VOLUMES:-16}
IDLE_S=${STASH_SCALE_IDLE_S:-20}
FSYNC_S=${STASH_SCALE_FSYNC_S:-10}

row() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$TSV"; log "$1 $2 = $3 $4"; }
now() { date +%s.%N; }
# timed CONFIG KEY CMD...: run CMD, record its seconds.
timed() {
	local cfg=$1 key=$2 t0 t1

	shift 2
	t0=$(now)
	"$@" || die "$cfg $key: $* failed"
	t1=$(now)
	row "$cfg" "$key" "$(echo "$t1 - $t0" | bc -l | sed 's/^\./0./')" s
}
dump_field() { "$STASHCTL" dump --json --summary "$1" | jq -r ".superblock.$2"; }
# status_field NAME FIELD, dmsetup on NAME: the helpers' names (prefixed).
status_field() { stash_status_field "$STASH_DM_PREFIX$1" "$2"; }
dms() { dmsetup "$1" "$STASH_DM_PREFIX$2" "${@:3}"; }

require_root
stash_load_module
require_cmd jq
require_cmd fio
require_cmd bc
[ -x "$STASH_MD" ] || die "$STASH_MD missing (make tests-tools)"
[ -x "$STASHCTL" ] || die "$STASHCTL missing (make tools)"
printf 'config\tkey\tvalue\tunit\n' >"$TSV"
row all kernel "$(uname -r)" ""
row all module "$(cat /sys/module/dm_stash/version 2>/dev/null || echo '?')" ""

# fsync_job CONFIG VOL KEY: 4 KiB random writes over 64 MiB, each
# followed by an fsync, for FSYNC_S seconds: KEY_mean_us, KEY_p99_us.
fsync_job() {
	local cfg=$1 vol=$2 key=$3 j=$OUT/$3-$1.json

	fio --name=fsync --filename="$vol" --rw=randwrite --bs=4k --size=64m \
		--direct=1 --ioengine=psync --fsync=1 --runtime="$FSYNC_S" \
		--time_based --output-format=json --output="$j" >/dev/null ||
		die "$cfg: fio $key failed"
	row "$cfg" "${key}_mean_us" "$(jq '.jobs[0].sync.lat_ns.mean / 1000 | floor' "$j")" us
	row "$cfg" "${key}_p99_us" "$(jq '.jobs[0].sync.lat_ns.percentile["99.000000"] / 1000 | floor' "$j")" us
}

large_cache() {
	local cfg=$1 cmib=$2 bkib=$3 omib=$4 cdev odev t vol mds md_sectors
	local name=sc-$cfg bs=$((bkib * 2)) c0 c1 j

	log "== $cfg: cache $cmib MiB, blocks $bkib KiB, origin $omib MiB"
	nullb_setup "scc$cfg" "$cmib" 0 0 4096
	cdev=$NULLB_DEV
	nullb_setup "sco$cfg" "$omib" 0 0 4096
	odev=$NULLB_DEV
	t="0 $(dev_sectors "$odev") stash $odev $cdev writeback 2 block_size $bs"
	timed "$cfg" format dm_create "$name" "$t"
	vol=$(dm_path "$name")
	row "$cfg" cache_blocks "$(status_field "$name" cache_blocks | cut -d/ -f2)" ""
	row "$cfg" ram_per_block "$(status_field "$name" ram_per_block)" B
	timed "$cfg" remove_empty dm_remove "$STASH_DM_PREFIX$name"
	mds=$(dump_field "$cdev" md_start)
	md_sectors=$(($(dump_field "$cdev" data_start) - mds))
	row "$cfg" md_pages "$(dump_field "$cdev" md_pages)" ""
	row "$cfg" md_bytes $((md_sectors * 512)) B
	sync
	echo 3 >/proc/sys/vm/drop_caches
	timed "$cfg" md_read dd if="$cdev" of=/dev/null bs=1M iflag=direct,skip_bytes,count_bytes \
		skip=$((mds * 512)) count=$((md_sectors * 512)) status=none
	timed "$cfg" resume_empty dm_create "$name" "$t"

	# Commits with few pages changed: fsync after each 4 KiB write.
	c0=$(status_field "$name" commits)
	fsync_job "$cfg" "$vol" fsync
	c1=$(status_field "$name" commits)
	row "$cfg" commits_per_s "$(echo "($c1 - $c0) / $FSYNC_S" | bc)" /s
	dms message "$name" 0 flush >/dev/null || die "$cfg: flush failed"
	timed "$cfg" suspend_empty dms suspend "$name"
	dms resume "$name" || die "$cfg: resume failed"
	dm_remove "$STASH_DM_PREFIX$name"

	# Every slot mapped (clean), as after a clean shutdown of a full cache.
	# (origin blocks from 2^20 on: the fsync job's blocks are still mapped)
	row "$cfg" seeded "$("$STASH_MD" seed-clean "$cdev" 100000 1048576 | tail -n1)" blocks
	timed "$cfg" resume_full dm_create "$name" "$t"
	row "$cfg" cached_full "$(status_field "$name" cache_blocks | cut -d/ -f1)" blocks
	timed "$cfg" suspend_full dms suspend "$name"
	timed "$cfg" resume_after_suspend dms resume "$name"
	timed "$cfg" remove_full dm_remove "$STASH_DM_PREFIX$name"

	# The same after an unclean shutdown: recovery drops the clean slots.
	for j in 0 1; do
		"$STASH_MD" forge-sb "$cdev" $j flags 0 >/dev/null ||
			die "$cfg: cannot forge an unclean shutdown"
	done
	timed "$cfg" resume_crash dm_create "$name" "$t"
	row "$cfg" cached_after_crash "$(status_field "$name" cache_blocks | cut -d/ -f1)" blocks
	timed "$cfg" remove_after_crash dm_remove "$STASH_DM_PREFIX$name"

	# Volatile: each fsync is a writeback pass over the few dirty blocks.
	dm_create "$name" "0 $(dev_sectors "$odev") stash $odev $cdev writeback 4 block_size $bs volatile format" ||
		die "$cfg: cannot create the volatile cache"
	fsync_job "$cfg" "$vol" fsync_volatile
	dm_remove "$STASH_DM_PREFIX$name"

	echo 0 >"/sys/kernel/config/nullb/scc$cfg/power"
	echo 0 >"/sys/kernel/config/nullb/sco$cfg/power"
	rmdir "/sys/kernel/config/nullb/scc$cfg" "/sys/kernel/config/nullb/sco$cfg"
}

mem_avail_kib() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }
stash_threads() { pgrep -c 'stash|kcopyd' || true; }

many_volumes() {
	local n=$VOLUMES i name m0 m1 th0 th1 blocks=0 rpb=0 vols=() tr events
	local cfg=volumes

	log "== $n volumes"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	for ((i = 0; i < n; i++)); do
		nullb_setup "svc$i" 64 0 0 4096
		eval "cdev_$i=$NULLB_DEV"
		nullb_setup "svo$i" 512 0 0 4096
		eval "odev_$i=$NULLB_DEV"
	done
	# Let the allocations above settle before the baseline.
	sleep 1
	m0=$(mem_avail_kib)
	th0=$(stash_threads)
	for ((i = 0; i < n; i++)); do
		local cd od
		eval "cd=\$cdev_$i od=\$odev_$i"
		name=sv-$i
		dm_create "$name" "0 $(dev_sectors "$od") stash $od $cd writeback" ||
			die "cannot create $name"
		vols+=("$(dm_path "$name")")
	done
	sleep 1
	m1=$(mem_avail_kib)
	th1=$(stash_threads)
	blocks=$(status_field sv-0 cache_blocks | cut -d/ -f2)
	rpb=$(status_field sv-0 ram_per_block)
	row "$cfg" volumes "$n" ""
	row "$cfg" blocks_per_volume "$blocks" ""
	row "$cfg" kib_per_volume "$(((m0 - m1) / n))" KiB
	row "$cfg" fixed_kib_per_volume "$((((m0 - m1) * 1024 / n - blocks * rpb) / 1024))" KiB
	row "$cfg" threads_per_volume "$(echo "scale=1; ($th1 - $th0) / $n" | bc -l)" ""

	# fio on every volume at once, each checked (verify=crc32c).
	local args=()
	for ((i = 0; i < n; i++)); do
		args+=(--name="v$i" --filename="${vols[$i]}")
	done
	fio --rw=randwrite --bs=4k --size=128m --direct=1 --ioengine=libaio \
		--iodepth=4 --verify=crc32c --verify_fatal=1 --do_verify=1 \
		--randrepeat=0 --output-format=json --output="$OUT/volumes.json" \
		"${args[@]}" >/dev/null || die "fio on $n volumes failed"
	row "$cfg" fio_verified "$n" volumes
	row "$cfg" fio_total_iops "$(jq '[.jobs[].write.iops] | add | floor' "$OUT/volumes.json")" IOPS
	for ((i = 0; i < n; i++)); do
		dms message "sv-$i" 0 flush >/dev/null || die "flush sv-$i failed"
	done

	# Idle and clean: count the module's work items for IDLE_S seconds.
	sleep 3
	tr=/sys/kernel/tracing
	mountpoint -q $tr || mount -t tracefs nodev $tr 2>/dev/null
	if [ -d $tr/events/workqueue/workqueue_execute_start ]; then
		echo 0 >$tr/tracing_on
		echo >$tr/trace
		echo 1 >$tr/events/workqueue/workqueue_execute_start/enable
		echo 1 >$tr/tracing_on
		sleep "$IDLE_S"
		echo 0 >$tr/tracing_on
		echo 0 >$tr/events/workqueue/workqueue_execute_start/enable
		events=$(grep -c 'dm_stash\]' $tr/trace || true)
		grep 'dm_stash\]' $tr/trace | sed 's/.*function=//' | sort | uniq -c >"$OUT/idle-work.txt"
		row "$cfg" idle_work_items "$events" "in ${IDLE_S}s"
		row "$cfg" idle_wakeups_per_volume_min \
			"$(echo "scale=1; $events * 60 / $IDLE_S / $n" | bc -l)" /min
	else
		log "no workqueue tracepoint: idle wake-ups not measured"
	fi
	for ((i = 0; i < n; i++)); do
		dm_remove "${STASH_DM_PREFIX}sv-$i"
	done
}

for c in $CONFIGS; do
	IFS=: read -r cname cmib bkib omib <<<"$c"
	large_cache "$cname" "$cmib" "$bkib" "$omib"
done
[ "$VOLUMES" -gt 0 ] && many_volumes
log "results in $TSV"
