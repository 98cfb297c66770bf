#!/bin/bash
# desc: ext4 on a volatile write-back volume: a copy of the live origin (a power cut) is consistent and holds every fsync'd file
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd mkfs.ext4 e2fsck sha256sum losetup
stash_load_module

NFILES=${NFILES:-150}
cache_setup 64 16
work=$(mktemp -d)
on_exit "rm -rf $work"
mkdir "$work/mnt" "$work/img" "$work/copy"
# The origin's copy goes to a tmpfs of its own (what a power cut leaves).
mount -t tmpfs -o size=80m tmpfs "$work/img" || die "cannot mount a tmpfs"
on_exit "umount $work/img"

# high_watermark 100 idle_ms 0: nothing but flushes (and FUA writes)
# moves data to the origin, so what the origin holds is exactly what the
# flush semantics promise.
stash_create pc "$ORIGIN" "$CACHE" writeback volatile high_watermark 100 idle_ms 0
vol=$STASH_DEV
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$vol" ||
	die "mkfs.ext4 failed"
mount -t ext4 "$vol" "$work/mnt" || die "mount failed"
on_exit "mountpoint -q $work/mnt && umount $work/mnt"

# The workload: files of random content and size, each fsync'd; name and
# sha256 of each go to a list on tmpfs once fsync has returned.  Some
# files are rewritten, some appended to, and a directory is fsync'd too.
: >"$work/list"
mkdir "$work/mnt/d"
for ((i = 0; i < NFILES; i++)); do
	f=d/f$((i % 120))
	kib=$((1 + RANDOM % 96))
	if ((i % 7 == 3)) && [ -e "$work/mnt/$f" ]; then
		head -c $((kib * 1024)) /dev/urandom >>"$work/mnt/$f"
	else
		head -c $((kib * 1024 + RANDOM % 1000)) /dev/urandom >"$work/mnt/$f"
	fi
	sync "$work/mnt/$f" || die "fsync of $f failed"
	((i % 20 == 0)) && { sync "$work/mnt/d" || die "fsync of the directory failed"; }
	echo "$(sha256sum <"$work/mnt/$f" | cut -d' ' -f1) $f" >>"$work/list"
	# Unsynced noise that may or may not survive.
	((i % 10 == 0)) && head -c 20000 /dev/urandom >"$work/mnt/noise$i"
done
sync "$work/mnt/d"
log "workload done: $(status_line "$vol")"
assert_ne 0 "$(sf "$vol" written_back)" "written_back (flushes drained)"

# The power cut: the origin as it is now, live, no flush, no suspend.
dd if="$ORIGIN" of="$work/img/origin" bs=1M iflag=direct status=none || die "copy of the origin failed"
log "at the copy: $(status_line "$vol")"

# Recover it like a mount would (journal replay), then check it.
e2fsck -E journal_only -y "$work/img/origin"
rc=$?
[ $rc -le 1 ] || die "journal replay on the copy failed ($rc)"
e2fsck -fn "$work/img/origin" || die "e2fsck -fn of the power-cut copy found errors ($?)"
modprobe loop || die "cannot load loop"
loopdev=$(losetup -f --show -r "$work/img/origin") || die "losetup of the copy failed"
on_exit "losetup -d $loopdev"
mount -t ext4 -o ro "$loopdev" "$work/copy" || die "cannot mount the copy"
on_exit "mountpoint -q $work/copy && umount $work/copy"

# The newest fsync'd content of every file must be there (a later line for
# the same name wins).
declare -A want
while read -r sum f; do
	want[$f]=$sum
done <"$work/list"
bad=0
for f in "${!want[@]}"; do
	got=$(sha256sum <"$work/copy/$f" 2>/dev/null | cut -d' ' -f1)
	if [ "$got" != "${want[$f]}" ]; then
		echo "FAIL: $f: expected ${want[$f]}, got ${got:-missing}" >&2
		bad=$((bad + 1))
	fi
done
log "${#want[@]} fsync'd files checked, $bad bad"
assert_eq 0 "$bad" "fsync'd files missing or wrong on the power-cut copy"
umount "$work/copy"

umount "$work/mnt" || die "umount failed"
drain "$vol"
stash_remove "$vol"
