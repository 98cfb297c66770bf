#!/bin/bash
# Build fstests (xfstests) once into build/fstests for make check-fstests.
#
# usage: tests/fstests/build.sh            (FSTESTS_TARBALL=... for another tree)
#
# Unpacks FSTESTS_TARBALL (a source snapshot of xfstests-dev, GPL-2.0; it is
# never copied into the repo) into build/fstests/src and runs fstests' own
# top-level "make" there: that runs autoconf and configure, then builds
# ltp/fsstress, ltp/fsx, src/* (aio-dio-regress, log-writes/replay-log,
# fsync-tester, ...) and the tests/*/group.list files ./check reads.  The
# test VM runs ./check straight from that directory (the guest sees the
# host's root at the same paths), so nothing is installed.
#
# Idempotent: build/fstests/unpacked and build/fstests/built hold the
# tarball's sha256 once each step is done, and a step is redone only when
# the tarball changes (a new tarball starts again from a clean tree) or
# when the step did not finish.  The compile runs at nice 19 with
# FSTESTS_JOBS jobs (default 1), so a VM running beside it keeps its CPU.
# The build log is build/fstests/build.log.
#
# Prints the fstests directory on its last line.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$REPO/build/fstests
SRC=$OUT/src
# The snapshot the curated test list was checked against (xfstests-dev
# commit 63a29724); another one builds too, with a note.
TARBALL=${FSTESTS_TARBALL:-/work/shared/fstests-63a29724.tar.xz}
KNOWN_SHA256=1301b892c4d1b4de05511e22a8d6ec77bbd360593aa28d88f1a4fe4d5acd3ee2
JOBS=${FSTESTS_JOBS:-1}
# What ./check and the curated tests need from the build.
PRODUCTS=(ltp/fsstress ltp/fsx src/feature src/fsync-tester src/min_dio_alignment
	  src/log-writes/replay-log src/aio-dio-regress/aiodio_sparse2
	  src/aio-dio-regress/aio-dio-extend-stat tests/generic/group.list)

die() {
	echo "fstests-build: $*" >&2
	exit 1
}

[ -f "$TARBALL" ] ||
	die "no fstests source tarball at $TARBALL (give FSTESTS_TARBALL=path/to/fstests.tar.xz)"
for c in make gcc autoconf aclocal libtoolize xz; do
	command -v "$c" >/dev/null || die "needs $c (make deps DEPS=\"\$(FSTESTS_DEPS)\")"
done

sha=$(sha256sum "$TARBALL" | cut -d' ' -f1)
[ "$sha" = "$KNOWN_SHA256" ] ||
	echo "fstests-build: note: $TARBALL is not the snapshot the test list was checked against"
mkdir -p "$OUT"

# Unpack (again) when the tarball changed.  The tarball has no top-level
# directory: its files go straight into src/.
if [ "$(cat "$OUT/unpacked" 2>/dev/null)" != "$sha" ]; then
	echo "fstests-build: unpacking $TARBALL into $SRC"
	rm -rf "$SRC" "$OUT/unpacked" "$OUT/built"
	mkdir -p "$SRC"
	nice -n 19 tar -xJf "$TARBALL" -C "$SRC" --no-same-owner
	# A tarball with one top-level directory: use what is inside it.
	if [ ! -f "$SRC/check" ] && [ "$(find "$SRC" -mindepth 1 -maxdepth 1 | wc -l)" = 1 ]; then
		top=$(find "$SRC" -mindepth 1 -maxdepth 1)
		[ -f "$top/check" ] || die "$TARBALL holds no fstests tree"
		mv "$top" "$OUT/src.tmp" && rmdir "$SRC" && mv "$OUT/src.tmp" "$SRC"
	fi
	[ -f "$SRC/check" ] || die "$TARBALL holds no fstests tree (no ./check)"
	echo "$sha" >"$OUT/unpacked"
fi

if [ "$(cat "$OUT/built" 2>/dev/null)" != "$sha" ]; then
	echo "fstests-build: building in $SRC (make -j$JOBS at nice 19; log: $OUT/build.log)"
	start=$(date +%s)
	if ! (cd "$SRC" && nice -n 19 make -j"$JOBS") >"$OUT/build.log" 2>&1; then
		tail -n 40 "$OUT/build.log" >&2
		die "make failed (full log: $OUT/build.log)"
	fi
	echo "fstests-build: built in $(($(date +%s) - start))s"
fi
for p in "${PRODUCTS[@]}"; do
	[ -e "$SRC/$p" ] || die "the build did not make $p (log: $OUT/build.log)"
done
echo "$sha" >"$OUT/built"
echo "fstests-build: fstests ready in $SRC"
echo "$SRC"
