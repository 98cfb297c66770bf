#!/bin/bash
# Fetch Debian 12's 6.12 kernel headers (bookworm-security's
# linux-headers-6.12-{amd64,cloud-amd64,rt-amd64}) for the W=1 builds of
# make check-build, without installing them: the three flavour packages,
# their -common and -common-rt trees and linux-kbuild are downloaded with
# "apt-get download" and unpacked with "dpkg-deb -x" into OUTDIR/root
# (default build/k612/root).  Nothing outside OUTDIR is touched: neither
# root nor an install is needed (installing linux-headers-6.12-* pulls its
# linux-image-6.12-* in, a kernel in /boot beside the 6.1 one the test VM
# boots), so make check-build works where make deps has not installed them.
#
# A flavour's tree includes /usr/src/linux-headers-KVER-common/Makefile by
# its absolute path; the unpacked copy is pointed at OUTDIR/root instead,
# and so are the lib/modules/KVER/{build,source} links.  The trees' own
# scripts and tools links are relative and stay as they are.
#
# Debian's 6.12 headers carry a vmlinux, and kbuild then runs pahole to
# give the module its BTF; without pahole on PATH, the pahole package is
# unpacked too.
#
# usage: tests/build/get-612-headers.sh [OUTDIR]
#
# Prints four lines: the generic, cloud and rt header trees (each a KDIR),
# then the pahole to build with (PAHOLE=...).  Needs current apt lists
# ("apt-get update"), not root.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$REPO/build/k612}
case $out in /*) ;; *) out=$PWD/$out ;; esac
root=$out/root
flavours=(amd64 cloud-amd64 rt-amd64)

die() { echo "get-612-headers: $*" >&2; exit 1; }

# The versioned package behind a metapackage: linux-headers-6.12-amd64
# depends on linux-headers-6.12.N+debX-amd64.
versioned() {
	apt-cache depends "$1" 2>/dev/null |
		sed -n "s/^  Depends: \\($2\\)\$/\\1/p" | head -n1
}

pkg=$(versioned linux-headers-6.12-amd64 'linux-headers-6\.12\.[^ ]*-amd64')
[ -n "$pkg" ] || die "apt knows no linux-headers-6.12-amd64 (apt-get update?)"
kver=${pkg#linux-headers-}
kver=${kver%-amd64}
ver=$(apt-cache show --no-all-versions "$pkg" | sed -n 's/^Version: //p' | head -n1)
[ -n "$ver" ] || die "no version of $pkg"

pkgs=()
for fl in "${flavours[@]}"; do
	pkgs+=("linux-headers-$kver-$fl")
done
# -common, -common-rt and linux-kbuild, as the flavours name them.
mapfile -t extra < <(for p in "${pkgs[@]}"; do
	apt-cache depends "$p" 2>/dev/null |
		sed -n 's/^  Depends: \(linux-\(headers-[^ ]*-common[^ ]*\|kbuild-[^ ]*\)\)$/\1/p'
done | sort -u)
[ ${#extra[@]} -ge 3 ] || die "cannot tell the -common and kbuild packages of $pkg"
pkgs+=("${extra[@]}")

pahole=$(command -v pahole || true)
[ -n "$pahole" ] || pkgs+=(pahole)

stamp="$kver $ver ${pkgs[*]}"
kdirs=()
for fl in "${flavours[@]}"; do
	kdirs+=("$root/usr/src/linux-headers-$kver-$fl")
done

ready() {
	[ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] || return 1
	for k in "${kdirs[@]}"; do
		[ -f "$k/Makefile" ] && [ -f "$k/.config" ] || return 1
	done
}

if ! ready; then
	rm -rf "$root" "$out/debs" "$out/stamp"
	mkdir -p "$out/debs" "$root"
	echo "get-612-headers: downloading ${pkgs[*]}" >&2
	sandbox=()
	[ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
	(cd "$out/debs" && apt-get download "${sandbox[@]}" "${pkgs[@]}" >&2) ||
		die "apt-get download failed (apt-get update?)"
	for d in "$out"/debs/*.deb; do
		dpkg-deb -x "$d" "$root"
	done
	# Absolute paths into / become paths into $root.
	for k in "${kdirs[@]}"; do
		sed -i "s|^include /usr/src/|include $root/usr/src/|" "$k/Makefile"
	done
	for l in "$root"/lib/modules/*/build "$root"/lib/modules/*/source; do
		t=$(readlink "$l")
		case $t in /*) ln -sfn "$root$t" "$l" ;; esac
	done
	echo "$stamp" >"$out/stamp"
fi

for k in "${kdirs[@]}"; do
	grep -q "^include $root/" "$k/Makefile" || die "$k/Makefile does not include from $root"
done
if [ -z "$pahole" ]; then
	pahole=$root/usr/bin/pahole
	"$pahole" --version >/dev/null 2>&1 ||
		die "the unpacked $pahole does not run (its libraries: apt-get install pahole)"
fi
printf '%s\n' "${kdirs[@]}" "$pahole"
