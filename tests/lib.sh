# shellcheck shell=bash
# Shared helpers for dm-stash tests (tests/cases/*) and the demo.
#
# Source it from a test:
#	. "$(dirname "$0")/../lib.sh"
#
# It installs an EXIT trap that runs the cleanups registered with on_exit
# (last registered first), then removes every dm device whose name starts
# with $STASH_DM_PREFIX (all helpers name their devices so) and unloads brd
# if brd_setup loaded it.  A test that needs its own cleanup registers it
# with on_exit instead of replacing the trap.
#
# Test exit codes: 0 pass, 1 fail (die, assert_*), 77 skip (skip).

STASH_REPO=${STASH_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
STASH_KO=${STASH_KO:-$STASH_REPO/kmod/dm-stash.ko}
# Modes every data-path test runs in; writeback joins once the engine has it.
STASH_MODES=${STASH_MODES:-writearound writethrough}
# Name prefix of every dm device the helpers create: cleanup only ever
# touches devices with this prefix, never other devices on the machine.
STASH_DM_PREFIX=${STASH_DM_PREFIX:-stasht-}
export DM_DISABLE_UDEV=1
export STASH_REPO STASH_KO

# STASH_XTRACE=1: every command a test runs, with the time and the line,
# into $STASH_LOGDIR/NAME.xtrace (beside its log; tests/run sets both), for
# finding where a slow test spends its time (tests/tools/xtrace-profile.py).
if [ "${STASH_XTRACE:-0}" = 1 ] && [ -n "${STASH_LOGDIR:-}" ] && [ -n "${STASH_TEST_NAME:-}" ]; then
	exec {_stash_xtrace_fd}>>"$STASH_LOGDIR/$STASH_TEST_NAME.xtrace"
	BASH_XTRACEFD=$_stash_xtrace_fd
	PS4='+ $EPOCHREALTIME ${BASH_SOURCE[0]##*/}:$LINENO: '
	set -x
fi

# ---------------------------------------------------------------------------
# Reporting and assertions
# ---------------------------------------------------------------------------
log() { echo "# $*"; }

die() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

# assert_eq EXPECTED ACTUAL MESSAGE
assert_eq() {
	[ "$1" = "$2" ] || die "$3: expected '$1', got '$2'"
}

# assert_ne UNEXPECTED ACTUAL MESSAGE
assert_ne() {
	[ "$1" != "$2" ] || die "$3: got '$2', which it must not be"
}

# assert_match REGEX STRING MESSAGE  (extended regex, grep -E)
assert_match() {
	grep -qE -- "$1" <<<"$2" || die "$3: '$2' does not match /$1/"
}

# assert_ok MESSAGE CMD...: CMD must succeed.
assert_ok() {
	local msg=$1

	shift
	"$@" || die "$msg: '$*' failed with status $?"
}

# assert_fails MESSAGE CMD...: CMD must fail.
assert_fails() {
	local msg=$1

	shift
	if "$@"; then
		die "$msg: '$*' succeeded but should have failed"
	fi
}

require_root() {
	[ "$(id -u)" = 0 ] || skip "needs root"
}

require_cmd() {
	local c

	for c in "$@"; do
		command -v "$c" >/dev/null || skip "needs $c"
	done
}

# ---------------------------------------------------------------------------
# Cleanup
# ---------------------------------------------------------------------------
_STASH_CLEANUPS=()
_STASH_BRD_LOADED=0

# on_exit CMD: run the shell command CMD when the test exits (LIFO).
on_exit() {
	_STASH_CLEANUPS+=("$1")
}

_stash_exit() {
	local rc=$? i

	set +e
	for ((i = ${#_STASH_CLEANUPS[@]} - 1; i >= 0; i--)); do
		eval "${_STASH_CLEANUPS[$i]}"
	done
	dm_cleanup_all
	[ "$_STASH_BRD_LOADED" = 1 ] && brd_teardown
	exit "$rc"
}
trap _stash_exit EXIT

# ---------------------------------------------------------------------------
# Kernel log
# ---------------------------------------------------------------------------
# kmsg_mark: put a unique marker line into the kernel log; kmsg_since prints
# everything logged after the last marker.
kmsg_mark() {
	_STASH_KMSG_MARK="stash-test-mark $$ $RANDOM$RANDOM"
	echo "<6>$_STASH_KMSG_MARK" >/dev/kmsg
}

kmsg_since() {
	dmesg | awk -v m="$_STASH_KMSG_MARK" 'found { print } index($0, m) { found = 1 }'
}

# kmsg_unlimited: no rate limit on lines written to /dev/kmsg until the
# test exits (printk_devkmsg on; on_exit puts the old value back).
kmsg_unlimited() {
	local old

	old=$(cat /proc/sys/kernel/printk_devkmsg)
	echo on >/proc/sys/kernel/printk_devkmsg
	on_exit "echo $old >/proc/sys/kernel/printk_devkmsg"
}

# ---------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------
stash_module_loaded() {
	[ -d /sys/module/dm_stash ]
}

# stash_load_module: load $STASH_KO (and dm-mod) unless dm_stash is loaded.
stash_load_module() {
	local kver vermagic

	stash_module_loaded && return 0
	[ -f "$STASH_KO" ] || die "$STASH_KO not found (run make)"
	kver=$(uname -r)
	vermagic=$(modinfo -F vermagic "$STASH_KO" 2>/dev/null | cut -d' ' -f1)
	[ "$vermagic" = "$kver" ] ||
		die "$STASH_KO is built for '$vermagic' but this kernel is '$kver'"
	modprobe dm_mod || die "cannot load dm_mod"
	# dm-stash depends on libcrc32c (metadata checksums); insmod does not
	# load dependencies.
	modprobe libcrc32c || die "cannot load libcrc32c"
	insmod "$STASH_KO" || die "insmod $STASH_KO failed"
}

# ---------------------------------------------------------------------------
# Device-mapper
# ---------------------------------------------------------------------------
dm_exists() {
	dmsetup info "$1" >/dev/null 2>&1
}

# dm_path NAME: the device node of the helpers' dm device NAME.
dm_path() {
	echo "/dev/mapper/$STASH_DM_PREFIX$1"
}

# dm_create NAME TABLE: create the dm device $STASH_DM_PREFIX$NAME.
dm_create() {
	dmsetup create "$STASH_DM_PREFIX$1" --table "$2"
}

dm_remove() {
	dmsetup remove --retry "$1"
}

# dm_names: names of all dm devices on the machine (one per line, sorted).
dm_names() {
	dmsetup info -c --noheadings -o name 2>/dev/null | grep -v '^No devices found' | sort
}

# dm_cleanup_all: remove every dm device named with $STASH_DM_PREFIX, upper
# devices first, and leave other dm devices on the machine alone.
dm_cleanup_all() {
	local pass name open left

	for pass in 1 2 3 4 5 6 7 8; do
		left=0
		while read -r name open; do
			[[ $name == "$STASH_DM_PREFIX"* ]] || continue
			left=1
			[ "$open" = 0 ] && dmsetup remove "$name"
		done < <(dmsetup info -c --noheadings --separator ' ' -o name,open 2>/dev/null)
		[ $left = 0 ] && return 0
		[ $pass -gt 4 ] && sleep 1
	done
	echo "warning: could not remove all $STASH_DM_PREFIX* dm devices" >&2
	return 1
}

# unused_block_major: a block major number no driver has registered.
unused_block_major() {
	local used m

	used=$(awk '/^Block devices:/ { b = 1; next } b && NF == 2 { print $1 }' /proc/devices)
	for ((m = 200; m < 255; m++)); do
		grep -qx "$m" <<<"$used" || { echo "$m"; return 0; }
	done
	die "no unused block major"
}

# dev_number DEV: "major:minor" of a block device node.
dev_number() {
	echo "$((0x$(stat -L -c %t "$1"))):$((0x$(stat -L -c %T "$1")))"
}

# dev_sectors DEV: size in 512-byte sectors.
dev_sectors() {
	blockdev --getsz "$1"
}

# ---------------------------------------------------------------------------
# RAM disks and slow disks
# ---------------------------------------------------------------------------
# brd_setup COUNT SIZE_KIB: load brd with COUNT devices of SIZE_KIB each
# (/dev/ram0 ...).  brd must not already be loaded (or must be unused).
#
# brd advertises no volatile write cache, so the block layer strips
# PREFLUSH/FUA above it.  Older kernels let "write back" in
# queue/write_cache turn that on; kernels with the QUEUE_FLAG_HW_WC check
# (Debian's 6.1.1xx among them) refuse it with EINVAL for devices without a
# hardware cache.  brd_setup tries and sets BRD_WRITE_CACHE to 1 when it
# worked, 0 when the kernel refused; tests that need PREFLUSH/FUA to reach a
# RAM device check it (or use a device with a real cache, e.g. --disk).
brd_setup() {
	local n=$1 kib=$2 i

	if [ -d /sys/module/brd ]; then
		rmmod brd 2>/dev/null || die "brd is loaded and busy"
	fi
	modprobe brd rd_nr="$n" rd_size="$kib" || die "cannot load brd"
	_STASH_BRD_LOADED=1
	BRD_WRITE_CACHE=1
	for ((i = 0; i < n; i++)); do
		[ -b /dev/ram$i ] || die "/dev/ram$i did not appear"
		echo "write back" 2>/dev/null >/sys/block/ram$i/queue/write_cache ||
			BRD_WRITE_CACHE=0
	done
	[ $BRD_WRITE_CACHE = 1 ] ||
		log "note: this kernel refuses a write-back cache on brd; PREFLUSH/FUA will not reach it"
}

brd_teardown() {
	local i

	for i in 1 2 3 4 5; do
		rmmod brd 2>/dev/null && break
		sleep 1
	done
	_STASH_BRD_LOADED=0
}

# delay_create NAME DEV MS [FLUSH_MS]: dm-delay over DEV, reads and writes
# delayed MS milliseconds, flushes MS or FLUSH_MS; sets DELAY_DEV to its
# device node.
delay_create() {
	local name=$1 dev=$2 ms=$3 flush_ms=${4:-} args

	modprobe dm_delay || die "cannot load dm_delay"
	args="$dev 0 $ms"
	[ -z "$flush_ms" ] || args="$args $dev 0 $ms $dev 0 $flush_ms"
	dm_create "$name" "0 $(dev_sectors "$dev") delay $args" ||
		die "cannot create dm-delay over $dev"
	DELAY_DEV=$(dm_path "$name")
}

# ---------------------------------------------------------------------------
# stash devices
# ---------------------------------------------------------------------------
# stash_table ORIGIN CACHE MODE [OPT...]: the table line for the whole origin.
stash_table() {
	local origin=$1 cache=$2 mode=$3

	shift 3
	# STASH_CHECKSUM=1: every table keeps checksums (the crash tests with
	# them: make check TEST=... STASH_CHECKSUM=1).
	if [ "${STASH_CHECKSUM:-0}" = 1 ] && [[ " $* " != *" checksum "* ]]; then
		set -- "$@" checksum
	fi
	echo "0 $(dev_sectors "$origin") stash $origin $cache $mode${*:+ $# $*}"
}

# stash_create NAME ORIGIN CACHE MODE [OPT...]: create a stash device over
# the whole origin; sets STASH_DEV to its device node.
stash_create() {
	local name=$1

	shift
	dm_create "$name" "$(stash_table "$@")" || die "cannot create stash device $name"
	STASH_DEV=$(dm_path "$name")
}

# stash_remove DEV|NAME
stash_remove() {
	dm_remove "$1" || die "cannot remove $1"
}

# stash_status_field DEV KEY: VALUE of the KEY=VALUE token in the status line
# ("<start> <len> stash key=value ..."); fails when KEY is absent.
stash_status_field() {
	dmsetup status "$1" | awk -v k="$2" '
		{ for (i = 4; i <= NF; i++) {
			n = index($i, "=")
			if (n && substr($i, 1, n - 1) == k) { print substr($i, n + 1); found = 1; exit }
		} }
		END { exit !found }'
}

# ---------------------------------------------------------------------------
# stashctl
# ---------------------------------------------------------------------------
# stashctl_setup: set stashctl to the stashctl under test and die if it is
# not built (STASH_STASHCTL=.../stashctl-asan runs the tests with the
# sanitizer build); the output file of expect_exit is removed on exit.
stashctl_setup() {
	stashctl=${STASH_STASHCTL:-$STASH_REPO/userspace-tools/stashctl}
	[ -x "$stashctl" ] || die "$stashctl not built (make tools)"
	on_exit 'rm -f /tmp/out.$$'
}

# expect_exit CODE MESSAGE CMD...: CMD must exit with CODE; its output is
# logged and kept in /tmp/out.$$ (for out_has).
expect_exit() {
	local want=$1 msg=$2 rc

	shift 2
	"$@" >/tmp/out.$$ 2>&1
	rc=$?
	sed 's/^/    | /' /tmp/out.$$
	[ "$rc" = "$want" ] || die "$msg: '$*' exited $rc, want $want"
}

# out_has REGEX MESSAGE: the output of the last expect_exit matches REGEX
# (extended regex, grep -E).
out_has() {
	grep -qE -- "$1" /tmp/out.$$ || die "$2: output lacks /$1/"
}

# ---------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------
# dev_stat DEV FIELD: a counter from /sys/block/X/stat, FIELD one of
# read_ios read_merges read_sectors read_ticks write_ios write_merges
# write_sectors write_ticks in_flight io_ticks time_in_queue discard_ios ...
dev_stat() {
	local dev=$1 field=$2 idx

	case $field in
	read_ios) idx=1 ;; read_merges) idx=2 ;; read_sectors) idx=3 ;;
	read_ticks) idx=4 ;; write_ios) idx=5 ;; write_merges) idx=6 ;;
	write_sectors) idx=7 ;; write_ticks) idx=8 ;; in_flight) idx=9 ;;
	io_ticks) idx=10 ;; time_in_queue) idx=11 ;; discard_ios) idx=12 ;;
	discard_merges) idx=13 ;; discard_sectors) idx=14 ;;
	discard_ticks) idx=15 ;; flush_ios) idx=16 ;; flush_ticks) idx=17 ;;
	*) die "dev_stat: unknown field $field" ;;
	esac
	# By device number: /dev/mapper nodes made without udev are not links.
	awk -v i="$idx" '{ print $i }' "/sys/dev/block/$(dev_number "$dev")/stat"
}

# dev_writes DEV: completed write requests on DEV.
dev_writes() {
	dev_stat "$1" write_ios
}

# fio_verify DEV [SIZE_PER_JOB [JOBS [FIO_ARG...]]]: random 4k writes with
# crc32c verification, direct I/O, JOBS jobs on disjoint ranges.
fio_verify() {
	local dev=$1 size=${2:-4M} jobs=${3:-2}

	shift $(($# < 3 ? $# : 3))
	fio --name=verify --filename="$dev" --rw=randwrite --bs=4k --direct=1 \
		--ioengine=libaio --iodepth=8 --size="$size" --numjobs="$jobs" \
		--offset_increment="$size" --verify=crc32c --verify_fatal=1 \
		--verify_backlog=256 --do_verify=1 --randrepeat=0 \
		--verify_state_save=0 --group_reporting "$@"
}

# fio_check DEV SIZE: read DEV's first SIZE sequentially and check every block
# against the verify headers fio_verify wrote (fio_verify writes each block
# of its ranges exactly once, so SIZE = SIZE_PER_JOB * JOBS is fully covered).
fio_check() {
	fio --name=check --filename="$1" --rw=read --bs=4k --direct=1 \
		--ioengine=libaio --iodepth=8 --size="$2" --verify=crc32c \
		--verify_only --verify_fatal=1 --verify_state_save=0 "${@:3}"
}

# ---------------------------------------------------------------------------
# Fuzz tests (tests/tools/dm-fuzz.py)
# ---------------------------------------------------------------------------
# fuzz_setup: sets count (1,000 inputs; 10,000 with STASH_LONG=1) and seed
# ($STASH_FUZZ_SEED, default 8585), makes two 32 MiB RAM disks (/dev/ram0,
# /dev/ram1) and lifts the kernel log's rate limit: every input goes to
# the kernel log before it is tried.
# shellcheck disable=SC2034 # count, seed: for the test that calls it
fuzz_setup() {
	count=1000
	[ "${STASH_LONG:-0}" = 1 ] && count=10000
	seed=${STASH_FUZZ_SEED:-8585}
	brd_setup 2 32768
	kmsg_unlimited
}
