#!/bin/bash
# Fetch Debian's PREEMPT_RT kernel for the test VM, without installing it:
# the headers (linux-headers-rt-amd64) are installed with apt-get if missing
# (the module is built against them), the image package is downloaded and
# unpacked into OUTDIR (default build/rt), with its module tree depmod'ed.
# (An installed -rt image would sit in /boot beside the generic kernel, where
# anything that picks "the newest 6.1 kernel" could boot it by mistake.)
#
# usage: tests/vm/get-rt-kernel.sh [OUTDIR]
#
# Prints three lines: KVER, the kernel image, the module tree; the header
# tree is /usr/src/linux-headers-KVER.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$REPO/build/rt}

hdr() {
	ls -d /usr/src/linux-headers-6.1.*-rt-amd64 2>/dev/null | sort -V | tail -n1
}

if [ -z "$(hdr)" ]; then
	[ "$(id -u)" = 0 ] || { echo "get-rt-kernel: need root to install linux-headers-rt-amd64" >&2; exit 1; }
	echo "get-rt-kernel: installing linux-headers-rt-amd64" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		linux-headers-rt-amd64 >&2
fi
h=$(hdr)
[ -n "$h" ] || { echo "get-rt-kernel: no rt headers after install" >&2; exit 1; }
kver=${h#/usr/src/linux-headers-}
pkg=linux-image-$kver
ver=$(dpkg-query -W -f='${Version}' "linux-headers-$kver")
root=$out/root
image=$root/boot/vmlinuz-$kver
mods=$root/lib/modules/$kver

if [ ! -f "$out/$pkg.stamp" ] || [ "$(cat "$out/$pkg.stamp")" != "$ver" ] ||
   [ ! -f "$image" ] || [ ! -f "$mods/modules.dep" ]; then
	mkdir -p "$out/debs"
	rm -rf "$root" "$out/debs/${pkg}_"*.deb
	echo "get-rt-kernel: downloading $pkg $ver" >&2
	(cd "$out/debs" && apt-get download -o APT::Sandbox::User=root "$pkg=$ver" >&2)
	dpkg-deb -x "$out/debs/${pkg}_"*.deb "$root"
	depmod -b "$root" "$kver"
	echo "$ver" >"$out/$pkg.stamp"
fi
echo "$kver"
echo "$image"
echo "$mods"
