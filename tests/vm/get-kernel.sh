#!/bin/bash
# The kernel a test VM boots, and the header tree the module is built
# against for it, for one of the kernels dm-stash supports:
#
#   6.1      Debian's generic 6.1 image, installed by make deps (/boot)
#   6.1-rt   Debian's PREEMPT_RT 6.1 (linux-image-*-rt-amd64)
#   6.12     Debian 12's 6.12 LTS (linux-image-6.12.N+debX-amd64)
#   6.12-rt  its PREEMPT_RT flavour
#
# Only 6.1 is installed.  The others are downloaded with "apt-get download"
# and unpacked into OUTDIR/KERNEL (default build/kernels/KERNEL), their
# module trees depmod'ed: an installed image would sit in /boot beside the
# generic 6.1 one, where anything that picks "the newest kernel" could boot
# it by mistake, and Debian's 6.12 headers packages pull their images in.
# The 6.1-rt headers are installed (make deps does); the 6.12 ones come
# unpacked from tests/build/get-612-headers.sh, whose image version is the
# one downloaded here, so that vermagic matches.
#
# usage: tests/vm/get-kernel.sh KERNEL [OUTDIR]
#
# Prints five lines: KVER, the kernel image, its module tree, the header
# tree (KDIR) and the pahole to build with (PAHOLE=..., empty for the one
# on PATH).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
which=${1:-}
out=${2:-$REPO/build/kernels}
case $out in /*) ;; *) out=$PWD/$out ;; esac

die() { echo "get-kernel: $*" >&2; exit 1; }

# unpack PKG VERSION DIR: the image package, unpacked and depmod'ed once.
unpack() {
	local pkg=$1 ver=$2 dir=$3 kver=${1#linux-image-}

	if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$pkg $ver" ] &&
	   [ -f "$dir/root/boot/vmlinuz-$kver" ] &&
	   [ -f "$dir/root/lib/modules/$kver/modules.dep" ]; then
		return 0
	fi
	rm -rf "$dir"
	mkdir -p "$dir/debs"
	echo "get-kernel: downloading $pkg $ver" >&2
	sandbox=()
	[ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
	(cd "$dir/debs" && apt-get download "${sandbox[@]}" "$pkg=$ver" >&2) ||
		die "apt-get download $pkg=$ver failed (apt-get update?)"
	dpkg-deb -x "$dir/debs/${pkg}_"*.deb "$dir/root"
	rm -rf "$dir/debs"
	depmod -b "$dir/root" "$kver"
	echo "$pkg $ver" >"$dir/stamp"
}

case $which in
6.1)
	kernel=$(ls /boot/vmlinuz-6.1.*-amd64 2>/dev/null |
		grep -Ev -- '-(rt|cloud)-amd64$' | sort -V | tail -n1)
	[ -n "$kernel" ] || die "no /boot/vmlinuz-6.1.*-amd64 (make deps)"
	kver=${kernel#/boot/vmlinuz-}
	[ -d "/lib/modules/$kver/build" ] || die "no headers for $kver (make deps)"
	printf '%s\n' "$kver" "$kernel" "/lib/modules/$kver" "/lib/modules/$kver/build" ""
	;;
6.1-rt)
	h=$(ls -d /usr/src/linux-headers-6.1.*-rt-amd64 2>/dev/null | sort -V | tail -n1)
	[ -n "$h" ] || die "no linux-headers-*-rt-amd64 (make deps)"
	kver=${h#/usr/src/linux-headers-}
	ver=$(dpkg-query -W -f='${Version}' "linux-headers-$kver")
	unpack "linux-image-$kver" "$ver" "$out/$which"
	printf '%s\n' "$kver" "$out/$which/root/boot/vmlinuz-$kver" \
		"$out/$which/root/lib/modules/$kver" "$h" ""
	;;
6.12|6.12-rt)
	hdrs=$("$REPO/tests/build/get-612-headers.sh") ||
		die "no 6.12 headers (tests/build/get-612-headers.sh)"
	if [ "$which" = 6.12 ]; then h=$(sed -n 1p <<<"$hdrs"); else h=$(sed -n 3p <<<"$hdrs"); fi
	pahole=$(sed -n 4p <<<"$hdrs")
	[ "$pahole" != "$(command -v pahole || true)" ] || pahole=
	kver=${h##*/linux-headers-}
	# The image of the headers' version, as the headers' package has it.
	stamp=$(cat "$REPO/build/k612/stamp")
	ver=$(cut -d' ' -f2 <<<"$stamp")
	unpack "linux-image-$kver" "$ver" "$out/$which"
	printf '%s\n' "$kver" "$out/$which/root/boot/vmlinuz-$kver" \
		"$out/$which/root/lib/modules/$kver" "$h" "$pahole"
	;;
*)
	die "usage: get-kernel.sh 6.1|6.1-rt|6.12|6.12-rt [OUTDIR]"
	;;
esac
