#!/bin/bash
# Build the dm-stash debug kernel (KASAN, lockdep, kmemleak, fault injection)
# from Debian's linux-source-6.1 or linux-source-6.12, once:
# x86_64_defconfig + kvm_guest.config + tests/vm/debug-kernel.config, in
# OUTDIR (default build/debug-kernel, build/debug-kernel-6.12 for 6.12).  A
# rebuild happens only when the fragment, this script or the kernel source
# version change.
#
# usage: tests/vm/build-debug-kernel.sh [SERIES [OUTDIR]]   (SERIES: 6.1, 6.12)
#
# The source: LINUX_SRC if set (an unpacked tree), else the series' source
# tarball unpacked once into build/src: 6.1's from /usr/src (make deps
# installs linux-source-6.1), 6.12's downloaded with "apt-get download
# linux-source-6.12" (not installed).
#
# Leaves OUTDIR/arch/x86/boot/bzImage, the module tree OUTDIR/modroot/lib/
# modules/KVER (the few drivers the tests load with parameters are modules;
# everything else is built in) and OUTDIR/kernelrelease.  OUTDIR is also the
# KDIR to build out-of-tree modules against.  Runs the compiler at nice 19.
# BUILD_DEBUG_CONFIG_ONLY=1 stops after the configuration and its check.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
series=${1:-6.1}
FRAG=$REPO/tests/vm/debug-kernel.config
case $series in
6.1) out=${2:-$REPO/build/debug-kernel} ;;
6.12) out=${2:-$REPO/build/debug-kernel-6.12} ;;
*) echo "build-debug-kernel: unknown series $series (6.1, 6.12)" >&2; exit 2 ;;
esac

# unpack_source: the series' source tree under build/src, from its tarball.
unpack_source() {
	local dir=$REPO/build/src tar=/usr/src/linux-source-$series.tar.xz sandbox=()

	if [ -f "$dir/linux-source-$series/Makefile" ] && [ -f "$dir/linux-source-$series.stamp" ]; then
		echo "$dir/linux-source-$series"
		return
	fi
	mkdir -p "$dir"
	if [ "$series" = 6.12 ]; then
		[ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
		rm -rf "$dir/deb"
		mkdir -p "$dir/deb"
		echo "build-debug-kernel: downloading linux-source-6.12" >&2
		(cd "$dir/deb" && apt-get download "${sandbox[@]}" linux-source-6.12 >&2) || {
			echo "build-debug-kernel: apt-get download linux-source-6.12 failed (apt-get update?)" >&2
			exit 2
		}
		dpkg-deb -x "$dir"/deb/linux-source-6.12_*.deb "$dir/deb/root"
		tar=$(ls "$dir"/deb/root/usr/src/linux-source-6.12.tar.*)
	fi
	[ -f "$tar" ] || { echo "build-debug-kernel: no $tar (make deps)" >&2; exit 2; }
	echo "build-debug-kernel: unpacking $tar" >&2
	rm -rf "$dir/linux-source-$series"
	tar -xaf "$tar" -C "$dir"
	rm -rf "$dir/deb"
	date >"$dir/linux-source-$series.stamp"
	echo "$dir/linux-source-$series"
}

SRC=${LINUX_SRC:-$(unpack_source)}
[ -f "$SRC/Makefile" ] || { echo "build-debug-kernel: no kernel source at $SRC" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

stamp=$({
	sha256sum "$FRAG" "${BASH_SOURCE[0]}"
	head -n 5 "$SRC/Makefile"
	gcc --version | head -n1
} | sha256sum | cut -d' ' -f1)

if [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ] &&
   [ -f "$out/arch/x86/boot/bzImage" ] && [ -f "$out/kernelrelease" ]; then
	echo "build-debug-kernel: up to date: $out ($(cat "$out/kernelrelease"))"
	exit 0
fi

rm -f "$out/stamp"
start=$(date +%s)
kmake() { nice -n 19 make -s -C "$SRC" O="$out" "$@"; }

echo "build-debug-kernel: configuring in $out"
kmake x86_64_defconfig
(cd "$out" && KCONFIG_CONFIG=$out/.config "$SRC/scripts/kconfig/merge_config.sh" \
	-m -O "$out" "$out/.config" "$SRC/kernel/configs/kvm_guest.config" "$FRAG" >/dev/null)
kmake olddefconfig

# Every =y/=m of the fragment must have survived olddefconfig (a missing
# dependency drops a symbol silently).
bad=
while IFS= read -r line; do
	case $line in
	CONFIG_*=[ym]) grep -qx "$line" "$out/.config" || bad+=" $line" ;;
	esac
done <"$FRAG"
if [ -n "$bad" ]; then
	echo "build-debug-kernel: not set in the final .config:$bad" >&2
	exit 1
fi

if [ "${BUILD_DEBUG_CONFIG_ONLY:-0}" = 1 ]; then
	echo "build-debug-kernel: configured $(kmake -s kernelrelease) in $out"
	exit 0
fi

echo "build-debug-kernel: compiling (make -j$(nproc), nice 19)"
kmake -j"$(nproc)" bzImage modules
rm -rf "$out/modroot"
kmake INSTALL_MOD_PATH="$out/modroot" modules_install >/dev/null
kmake -s kernelrelease >"$out/kernelrelease"
echo "$stamp" >"$out/stamp"
echo "build-debug-kernel: built $(cat "$out/kernelrelease") in $(( $(date +%s) - start ))s"
