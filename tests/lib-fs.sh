# shellcheck shell=bash
# Helpers of the filesystem tests (tests/cases/8x-fs-*).  Source after
# tests/lib.sh and tests/lib-cache.sh.
#
# STASH_LONG=1 makes the tests run longer and on more data.

STASH_LONG=${STASH_LONG:-0}
ALL_MODES="writearound writethrough writeback"

# fs_require FS: skip unless the tools for FS are installed.
fs_require() {
	case $1 in
	ext4) require_cmd mkfs.ext4 e2fsck ;;
	xfs) require_cmd mkfs.xfs xfs_repair ;;
	*) die "fs_require: unknown filesystem $1" ;;
	esac
}

# fs_mkfs FS DEV: a fresh FS on DEV (no discard: nothing to gain on RAM).
fs_mkfs() {
	case $1 in
	ext4) mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "$2" ;;
	xfs) mkfs.xfs -q -f -K "$2" ;;
	esac || die "mkfs.$1 on $2 failed"
}

# fs_fsck FS DEV: a read-only check of the unmounted FS on DEV; dies with
# the checker's output when it finds anything.
fs_fsck() {
	local out rc

	case $1 in
	ext4) out=$(e2fsck -fn "$2" 2>&1) ;;
	xfs) out=$(xfs_repair -n "$2" 2>&1) ;;
	esac
	rc=$?
	[ $rc = 0 ] || { echo "$out" | tail -n 40; die "fsck.$1 -n $2: exit $rc"; }
	log "fsck.$1 $2: clean"
}

# fs_mount DEV DIR [OPTS]
fs_mount() {
	mount ${3:+-o "$3"} "$1" "$2" || die "cannot mount $1 on $2"
}

# fs_umount DIR
fs_umount() {
	local _

	for _ in 1 2 3 4 5; do
		umount "$1" 2>/dev/null && return 0
		sleep 1
	done
	umount "$1" || die "cannot unmount $1"
}

# fs_drop_caches: forget clean page cache, dentries and inodes, so that the
# next reads come from the device.
fs_drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# fs_fio DIR SIZE PHASE [FIO_ARG...]: a filesystem workload in DIR: 4 jobs,
# each writing SIZE over many files of 4 KiB..256 KiB in random order with
# an fsync every 8 writes, crc32c verify headers.  PHASE "write" writes and
# verifies; "verify" only re-reads and checks what an earlier "write" of the
# same SIZE left (the file sizes and offsets are seeded, so they repeat).
fs_fio() {
	local dir=$1 size=$2 phase=$3 extra

	shift 3
	case $phase in
	write) extra=(--do_verify=1) ;;
	verify) extra=(--verify_only) ;;
	*) die "fs_fio: phase write or verify" ;;
	esac
	run_fio fs --directory="$dir" --numjobs=4 --size="$size" --nrfiles=48 \
		--filesize=4k-256k --file_service_type=random --bs=4k \
		--rw=randwrite --fsync=8 --ioengine=psync --randseed=8080 \
		--verify=crc32c --verify_fatal=1 --verify_state_save=0 \
		--group_reporting "${extra[@]}" "$@"
}

# fs_churn DIR STOPFILE: metadata churn until STOPFILE exists: make, fill,
# rename, hard-link, fsync and remove small files and directories.  Prints
# the number of rounds at the end; fails on the first failing operation.
fs_churn() {
	local dir=$1 stop=$2 n=0 d

	mkdir -p "$dir" || return 1
	while [ ! -e "$stop" ]; do
		n=$((n + 1))
		d=$dir/d$((n % 8))
		mkdir -p "$d/sub" &&
		head -c $(((n * 1237) % 20000 + 1)) /dev/urandom >"$d/f$n" &&
		ln "$d/f$n" "$d/sub/l$n" &&
		mv "$d/f$n" "$d/g$n" &&
		sync -f "$d/g$n" &&
		cmp -s "$d/g$n" "$d/sub/l$n" || { echo "churn: round $n failed"; return 1; }
		[ $((n % 5)) != 0 ] || rm -rf "$dir/d$(((n + 3) % 8))" || return 1
	done
	echo "churn: $n rounds"
}

# tree_sums DIR: "sha256  path" of every regular file under DIR, sorted.
tree_sums() {
	(cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# fs_stress FS ORIGIN_MIB CACHE_MIB: the body of the filesystem stress tests.
# In each mode: a fresh FS on a stash volume, the fio workload with metadata
# churn beside it, unmount, fsck of the volume, mount again and verify every
# file (through the cache, page cache dropped); then drain, remove the cache
# and fsck and verify again on the origin alone.
fs_stress() {
	local fs=$1 omib=$2 cmib=$3 size=6M rounds=1 mode r mnt tmp churn out

	fs_require "$fs"
	require_cmd fio
	if [ "$STASH_LONG" = 1 ]; then
		size=48M
		rounds=4
	fi
	cache_setup "$omib" "$cmib"
	tmp=$(mktemp -d)
	mnt=$tmp/mnt
	mkdir -p "$mnt"
	on_exit "umount $mnt 2>/dev/null; rm -rf $tmp"
	for mode in $ALL_MODES; do
		log "== $fs, $mode"
		# Each mode starts from a fresh cache: clear the superblock.
		wipe_sb "$CACHE"
		stash_create "fs-$mode" "$ORIGIN" "$CACHE" "$mode" sequential_cutoff 0
		fs_mkfs "$fs" "$STASH_DEV"
		fs_mount "$STASH_DEV" "$mnt"
		for ((r = 1; r <= rounds; r++)); do
			rm -f "$tmp/stop"
			fs_churn "$mnt/churn" "$tmp/stop" >"$tmp/churn.out" 2>&1 &
			churn=$!
			fs_fio "$mnt" "$size" write || { touch "$tmp/stop"; wait $churn; die "$fs/$mode: fio round $r failed"; }
			touch "$tmp/stop"
			wait $churn || { cat "$tmp/churn.out"; die "$fs/$mode: metadata churn failed"; }
			log "round $r: $(cat "$tmp/churn.out"); $(status_line "$STASH_DEV")"
		done
		# Something must have gone through the cache.
		out=$(status_line "$STASH_DEV")
		[ "$(field_of "$out" write_hits)" -gt 0 ] || [ "$(field_of "$out" read_hits)" -gt 0 ] ||
			[ "$(field_of "$out" promotions)" -gt 0 ] || [ "$mode" = writearound ] ||
			die "$fs/$mode: the cache saw nothing: $out"
		fs_umount "$mnt"
		fs_fsck "$fs" "$STASH_DEV"
		fs_drop_caches
		fs_mount "$STASH_DEV" "$mnt"
		fs_fio "$mnt" "$size" verify || die "$fs/$mode: data wrong after remount"
		fs_umount "$mnt"
		[ "$mode" != writeback ] || drain "$STASH_DEV"
		stash_remove "$STASH_DEV"
		fs_fsck "$fs" "$ORIGIN"
		fs_mount "$ORIGIN" "$mnt"
		fs_fio "$mnt" "$size" verify || die "$fs/$mode: origin data wrong after removing the cache"
		fs_umount "$mnt"
	done
}
