#!/bin/bash
# Build the dm-stash debug kernel (KASAN, lockdep, kmemleak, fault injection)
# from Debian's linux-source-6.1, once: x86_64_defconfig + kvm_guest.config +
# tests/vm/debug-kernel.config, in OUTDIR (default build/debug-kernel).  A
# rebuild happens only when the fragment, this script or the kernel source
# version change.
#
# usage: tests/vm/build-debug-kernel.sh [OUTDIR]
#
# Leaves OUTDIR/arch/x86/boot/bzImage, the module tree OUTDIR/modroot/lib/
# modules/KVER (the few drivers the tests load with parameters are modules;
# everything else is built in) and OUTDIR/kernelrelease.  OUTDIR is also the
# KDIR to build out-of-tree modules against.  Runs the compiler at nice 19.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=${LINUX_SRC:-/usr/src/linux-source-6.1}
FRAG=$REPO/tests/vm/debug-kernel.config
out=${1:-$REPO/build/debug-kernel}

[ -f "$SRC/Makefile" ] || { echo "build-debug-kernel: no kernel source at $SRC (make deps)" >&2; exit 2; }
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

echo "build-debug-kernel: compiling (make -j$(nproc), nice 19)"
kmake -j"$(nproc)" bzImage modules
rm -rf "$out/modroot"
kmake INSTALL_MOD_PATH="$out/modroot" modules_install >/dev/null
kmake -s kernelrelease >"$out/kernelrelease"
echo "$stamp" >"$out/stamp"
echo "build-debug-kernel: built $(cat "$out/kernelrelease") in $(( $(date +%s) - start ))s"
