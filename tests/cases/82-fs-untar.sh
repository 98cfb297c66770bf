#!/bin/bash
# desc: untar a Linux source tree onto ext4 on a stash volume in each mode: every file's checksum right after a flush and on the origin alone after removing the cache
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fs.sh"
require_root
require_cmd python3 sha256sum tar
stash_load_module

SRC_DIR=/usr/src/linux-source-6.1
SRC_TAR=/usr/src/linux-source-6.1.tar.xz
# The short run unpacks three directories of the tree (about 11 MB, 500
# files: tests/tools/linux-subset.sh), the long run more or all of it.

tmp=$(mktemp -d)
mnt=$tmp/mnt
mkdir -p "$mnt"
on_exit "umount $mnt 2>/dev/null; rm -rf $tmp"

fss="ext4"
omib=96 cmib=16
mem_mib=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
if [ "$STASH_LONG" = 1 ] && [ -f "$SRC_TAR" ] && [ "$mem_mib" -ge 4800 ]; then
	# The whole tarball (1.4 GB unpacked) on RAM disks: boot the VM with
	# VM_ARGS="--mem 6144".
	tarball=$SRC_TAR
	omib=2048 cmib=384
	fss="ext4 xfs"
else
	[ "$STASH_LONG" = 1 ] &&
		log "long mode: only $mem_mib MiB of RAM for the whole tree (needs --mem 6144): a bigger subset"
	extra=
	[ "$STASH_LONG" = 1 ] && { extra="kernel mm lib include/linux"; omib=400 cmib=64; fss="ext4 xfs"; }
	# The short run's tar is made on the host by "make tests-tools".
	tarball=$STASH_REPO/tests/tools/bin/linux-subset.tar
	if [ -n "$extra" ] || [ ! -f "$tarball" ]; then
		tarball=$tmp/src.tar
		# shellcheck disable=SC2086
		"$STASH_REPO/tests/tools/linux-subset.sh" "$tarball" $extra ||
			die "cannot make the source subset"
	fi
	[ -f "$tarball" ] || skip "no $SRC_DIR nor $SRC_TAR (make deps)"
fi

# The checksums to expect, from the tar stream itself, in tree_sums' format.
python3 - "$tarball" >"$tmp/ref.sums" <<'PY' || die "cannot checksum $tarball"
import hashlib, sys, tarfile
sums = {}
with tarfile.open(sys.argv[1], "r:*") as t:
    for m in t:
        name = m.name if m.name.startswith("./") else "./" + m.name
        if m.isfile():
            h = hashlib.sha256()
            f = t.extractfile(m)
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
            sums[name] = h.hexdigest()
        elif m.islnk():
            link = m.linkname
            sums[name] = sums[link if link.startswith("./") else "./" + link]
for name in sorted(sums, key=lambda s: s.encode()):
    print(f"{sums[name]}  {name}")
PY
nfiles=$(wc -l <"$tmp/ref.sums")
log "$tarball: $nfiles files"
[ "$nfiles" -gt 100 ] || die "only $nfiles files in $tarball"

# check_tree WHERE: every file under $mnt has the checksum of the tar.
check_tree() {
	tree_sums "$mnt" >"$tmp/got.sums"
	if ! cmp -s "$tmp/ref.sums" "$tmp/got.sums"; then
		diff "$tmp/ref.sums" "$tmp/got.sums" | head -n 20
		die "$1: $(diff "$tmp/ref.sums" "$tmp/got.sums" | grep -c '^[<>]') checksum lines differ"
	fi
	log "$1: all $nfiles files match"
}

cache_setup "$omib" "$cmib"
for fs in $fss; do
	fs_require "$fs"
	for mode in $ALL_MODES; do
		log "== $fs, $mode"
		wipe_sb "$CACHE"
		stash_create "untar-$mode" "$ORIGIN" "$CACHE" "$mode" sequential_cutoff 0
		vol=$STASH_DEV
		fs_mkfs "$fs" "$vol"
		fs_mount "$vol" "$mnt"
		tar -C "$mnt" -xf "$tarball" || die "$fs/$mode: untar failed"
		sync -f "$mnt"
		[ "$mode" != writeback ] || drain "$vol" 300
		log "after the flush: $(status_line "$vol")"
		fs_umount "$mnt"
		fs_drop_caches
		fs_mount "$vol" "$mnt" ro
		check_tree "$fs/$mode on the volume after the flush"
		# Again, with what the first pass promoted read from the cache.
		fs_umount "$mnt"
		fs_drop_caches
		fs_mount "$vol" "$mnt" ro
		check_tree "$fs/$mode on the volume, second read"
		log "$(status_line "$vol")"
		fs_umount "$mnt"
		stash_remove "$vol"
		# The origin alone (through its dm-linear), read-only.
		fs_drop_caches
		fs_mount "$ORIGIN" "$mnt" ro
		check_tree "$fs/$mode on the origin without the cache"
		fs_umount "$mnt"
	done
done
