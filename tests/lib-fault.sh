# shellcheck shell=bash
# Helpers for the fault-injection tests (4x).  Source after lib.sh and
# lib-cache.sh.  The devices under a stash device are the dm-linear
# wrappers of cache_setup ("origin", "cache"): a test swaps their tables
# for dm-flakey or dm-error and back, while the stash device stays live.

# swap_table NAME TABLE: give the helpers' dm device NAME a new table
# (suspend, load, resume).
swap_table() {
	local dev=$STASH_DM_PREFIX$1

	dmsetup suspend "$dev" || die "cannot suspend $dev"
	if ! dmsetup load "$dev" --table "$2"; then
		dmsetup resume "$dev"
		die "cannot load '$2' into $dev"
	fi
	dmsetup resume "$dev" || die "cannot resume $dev"
}

# fault NAME KIND: NAME (origin or cache, over /dev/ram0 or /dev/ram1 as
# cache_setup made them) becomes: linear (healthy again), error_writes
# (dm-flakey: writes and flushes fail, reads work) or error (dm-error:
# everything fails).
fault() {
	local name=$1 kind=$2 ram len

	case $name in
	origin) ram=/dev/ram0 ;;
	cache) ram=/dev/ram1 ;;
	*) die "fault: unknown device $name" ;;
	esac
	len=$(dev_sectors "$(dm_path "$name")")
	case $kind in
	linear) swap_table "$name" "0 $len linear $ram 0" ;;
	error_writes) swap_table "$name" "0 $len flakey $ram 0 0 1 1 error_writes" ;;
	error) swap_table "$name" "0 $len error" ;;
	*) die "fault: unknown kind $kind" ;;
	esac
	log "$name is now $kind"
}

fault_modules() {
	modprobe dm_flakey || skip "no dm_flakey"
}

# try_read DEV BLOCK COUNT: read, direct; succeeds if the read did.
try_read() {
	dd if="$1" of=/dev/null bs=4k skip="$2" count="$3" iflag=direct status=none 2>/dev/null
}

# try_put DEV FILE BLOCK: write, direct; succeeds if the write did.
try_put() {
	dd if="$2" of="$1" bs=4k seek="$3" oflag=direct conv=notrunc status=none 2>/dev/null
}

# ---------------------------------------------------------------------------
# scsi_debug: a SCSI disk in RAM, with medium errors on demand
# ---------------------------------------------------------------------------
# sdebug_setup MIB: one scsi_debug disk of MIB MiB (512-byte sectors), with
# medium errors (off until sdebug_medium_errors on) over the whole disk.
# Sets SDEBUG_DEV (/dev/sdX) and SDEBUG_SYS (its /sys/block/sdX).
sdebug_setup() {
	local mib=$1 d i s

	[ -d /sys/module/scsi_debug ] && { rmmod scsi_debug || die "scsi_debug is busy"; }
	# No udev in the test VM: load the disk driver before the disk appears.
	modprobe sd_mod || skip "no sd_mod"
	modprobe scsi_debug dev_size_mb="$mib" sector_size=512 opts=0 delay=0 \
		medium_error_start=0 medium_error_count=$((mib * 2048)) ||
		skip "no scsi_debug"
	[ -n "${_SDEBUG_CLEANUP:-}" ] || on_exit "sdebug_teardown"
	_SDEBUG_CLEANUP=1
	for ((i = 0; i < 100; i++)); do
		d=
		for s in /sys/block/sd*; do
			[ -e "$s/device/model" ] || continue
			grep -q scsi_debug "$s/device/model" && { d=$s; break; }
		done
		[ -n "$d" ] && [ -b "/dev/${d##*/}" ] && break
		sleep 0.1
	done
	[ -n "$d" ] && [ -b "/dev/${d##*/}" ] || die "the scsi_debug disk did not appear"
	SDEBUG_DEV=/dev/${d##*/}
	SDEBUG_SYS=/sys/block/${d##*/}
	log "scsi_debug disk $SDEBUG_DEV, $mib MiB"
}

# sdebug_medium_errors on|off: every read of the disk fails with a medium
# error (writes still work), or none does.
sdebug_medium_errors() {
	local opts=0

	[ "$1" = on ] && opts=2
	echo $opts >/sys/bus/pseudo/drivers/scsi_debug/opts ||
		die "cannot set scsi_debug opts"
}

# sdebug_delete: hot-unplug the disk (as a pulled drive).
sdebug_delete() {
	echo 1 >"$SDEBUG_SYS/device/delete" || die "cannot delete $SDEBUG_DEV"
	log "deleted $SDEBUG_DEV"
}

# sdebug_unload: unload scsi_debug (its disk must be unused).
sdebug_unload() {
	local i

	[ -d /sys/module/scsi_debug ] || return 0
	for ((i = 0; i < 20; i++)); do
		rmmod scsi_debug 2>/dev/null && return 0
		sleep 0.5
	done
	echo "warning: cannot unload scsi_debug" >&2
}

# sdebug_teardown: at exit, remove the dm devices, then unload scsi_debug.
sdebug_teardown() {
	[ -d /sys/module/scsi_debug ] || return 0
	dm_cleanup_all
	sdebug_unload
}

# ---------------------------------------------------------------------------
# null_blk: a RAM disk with a volatile write cache
# ---------------------------------------------------------------------------
# brd has no volatile write cache, so the block layer completes flushes to
# it (and to a dm device over it) before any target sees them.
# nullb_setup NAME MIB [CACHE_MIB [DISCARD [BLOCKSIZE]]]: a memory-backed
# null_blk of MIB MiB (BLOCKSIZE-byte logical blocks, default 4096; memory
# is taken only for what is written) with a volatile write cache of
# CACHE_MIB MiB (default 4; 0: none, the device then has no write cache),
# made through configfs item NAME and removed on exit; DISCARD=1 makes it
# take discards (which free its memory: it reads zeros there).  Sets
# NULLB_DEV.  6.1 names the disk after the item, older kernels nullbN.
# Several may exist at once.
nullb_setup() {
	local name=$1 mib=$2 cache=${3:-4} discard=${4:-0} bs=${5:-4096}
	local nb=/sys/kernel/config/nullb/$1 dev='' before i

	modprobe null_blk nr_devices=0 || skip "no null_blk"
	modprobe configfs 2>/dev/null
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config ||
		skip "no configfs for null_blk"
	before=$(ls -d /sys/block/nullb* 2>/dev/null)
	mkdir "$nb" || die "cannot create a null_blk device (configfs)"
	on_exit "rmdir $nb 2>/dev/null; true"
	echo 1 >"$nb/memory_backed" && echo "$bs" >"$nb/blocksize" &&
		echo "$mib" >"$nb/size" && echo "$cache" >"$nb/cache_size" &&
		echo "$discard" >"$nb/discard" &&
		echo 1 >"$nb/power" || die "cannot set up null_blk $name"
	for ((i = 0; i < 50; i++)); do
		if [ -e "/sys/block/$name" ]; then
			dev=/sys/block/$name
		else
			dev=$(ls -d /sys/block/nullb* 2>/dev/null | grep -vxF "$before" | head -n1)
		fi
		[ -n "$dev" ] && [ -b "/dev/${dev##*/}" ] && break
		sleep 0.1
	done
	NULLB_DEV=/dev/${dev##*/}
	[ -b "$NULLB_DEV" ] || die "no null_blk device appeared ($(ls /sys/block))"
	[ "$cache" = 0 ] ||
		assert_eq "write back" "$(cat "/sys/block/${NULLB_DEV#/dev/}/queue/write_cache")" \
			"null_blk $name's write cache"
}
