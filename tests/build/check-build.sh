#!/bin/bash
# Build checks that need no VM (make check-build):
#  1. "dkms add" and "dkms build" of a copy of the tree against the
#     generic 6.1 and 6.12 headers, in a private DKMS tree under build/
#     (nothing under /var/lib/dkms or /usr/src is touched);
#  2. the module, W=1, against Debian's generic, cloud and rt headers of
#     6.1 and of 6.12: any compiler warning fails.  The 6.12 trees are the
#     installed ones (make deps) or, where a flavour is not installed, the
#     ones tests/build/get-612-headers.sh unpacks into build/k612 (no
#     install; it needs current apt lists).
set -euo pipefail

cd "$(dirname "$0")/../.."
top=$PWD
out=$top/build/check-build
fail=

rm -rf "$out"
mkdir -p "$out"

# The dkms.conf version must be the module's.
ver=$(awk '/#define STASH_VERSION_(MAJOR|MINOR|PATCH)/ { v = v (v ? "." : "") $3 }
	   END { print v }' kmod/uapi/linux/dm-stash.h)
conf_ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
if [ "$ver" != "$conf_ver" ]; then
	echo "check-build: dkms.conf PACKAGE_VERSION $conf_ver, module version $ver" >&2
	fail+=" dkms-version"
fi

# Header trees of Debian's flavours of a kernel series (6.1: 6.1.N-A-FLAVOUR;
# 6.12: 6.12.N+debX-FLAVOUR), newest of each.
flavour_dir() {
	local re

	case $1 in
	6.1) re='6\.1\.[0-9]+-[0-9]+' ;;
	6.12) re='6\.12\.[0-9]+\+deb[0-9]+' ;;
	esac
	printf "%s\n" /usr/src/linux-headers-"$1".* |
		grep -E "^/usr/src/linux-headers-$re-$2\$" | sort -V | tail -n1 || true
}

# The 6.12 trees not installed are fetched once, for all three flavours.
k612=
k612_pahole=
for fl in amd64 cloud-amd64 rt-amd64; do
	[ -n "$(flavour_dir 6.12 "$fl")" ] && continue
	echo "== 6.12 headers: tests/build/get-612-headers.sh $top/build/k612"
	if k612=$(tests/build/get-612-headers.sh "$top/build/k612"); then
		k612_pahole=$(sed -n 4p <<<"$k612")
	else
		echo "check-build: no 6.12 headers (make deps, or apt-get update" \
		     "for tests/build/get-612-headers.sh)" >&2
		k612=
	fi
	break
done

# 1. DKMS, with a version of its own so it cannot clash with an installed
# one, for the generic kernel of each series.  An unpacked 6.12 tree is
# given as --kernelsourcedir, with its pahole first on PATH.
dkms_build() {
	local series=$1 kdir kver dver src dk path=$PATH

	kdir=$(flavour_dir "$series" amd64)
	if [ -z "$kdir" ] && [ "$series" = 6.12 ] && [ -n "$k612" ]; then
		kdir=$(sed -n 1p <<<"$k612")
		path=$(dirname "$k612_pahole"):$PATH
	fi
	if [ -z "$kdir" ]; then
		echo "check-build: no $series linux-headers-*-amd64 (make deps)" >&2
		fail+=" dkms-$series"
		return
	fi
	kver=${kdir##*/linux-headers-}
	dver="$ver.check$$"
	src=$out/dkms-src/dm-stash-$dver
	rm -rf "$out/dkms-src" "$out/dkms-tree" "$out/dkms-install"
	mkdir -p "$src" "$out/dkms-tree" "$out/dkms-install"
	cp -a Kbuild Makefile dkms.conf kmod "$src/"
	rm -f "$src"/kmod/*.o "$src"/kmod/*.ko "$src"/kmod/*.mod* "$src"/kmod/.*.cmd
	sed -i "s/^PACKAGE_VERSION=.*/PACKAGE_VERSION=\"$dver\"/" "$src/dkms.conf"
	dk=(--sourcetree "$out/dkms-src" --dkmstree "$out/dkms-tree"
	    --installtree "$out/dkms-install")
	echo "== dkms build dm-stash/$dver for $kver"
	if dkms add -m dm-stash -v "$dver" "${dk[@]}" >"$out/dkms.log" 2>&1 &&
	   PATH=$path dkms build -m dm-stash -v "$dver" -k "$kver" \
		--kernelsourcedir "$kdir" "${dk[@]}" >>"$out/dkms.log" 2>&1 &&
	   ls "$out/dkms-tree/dm-stash/$dver/$kver/x86_64/module/"dm-stash.ko* >/dev/null 2>&1; then
		echo "dkms: built $(cd "$out/dkms-tree/dm-stash/$dver/$kver/x86_64/module" &&
			ls dm-stash.ko*) for $kver"
	else
		cat "$out/dkms.log" >&2
		find "$out/dkms-tree" -name make.log -exec cat {} + >&2 || true
		fail+=" dkms-$series"
	fi
	dkms remove -m dm-stash -v "$dver" --all "${dk[@]}" >>"$out/dkms.log" 2>&1 || true
	rm -rf "$out/dkms-src" "$out/dkms-tree" "$out/dkms-install"
}

if ! command -v dkms >/dev/null; then
	echo "check-build: dkms is not installed (make deps)" >&2
	fail+=" dkms"
else
	dkms_build 6.1
	dkms_build 6.12
fi

# 2. W=1 against each flavour, in a copy so the work tree's objects stay.
for series in 6.1 6.12; do
	n=0
	for fl in amd64 cloud-amd64 rt-amd64; do
		n=$((n + 1))
		kdir=$(flavour_dir "$series" "$fl")
		make_args=()
		if [ -z "$kdir" ] && [ "$series" = 6.12 ] && [ -n "$k612" ]; then
			# get-612-headers.sh prints generic, cloud, rt.
			kdir=$(sed -n "${n}p" <<<"$k612")
			make_args=(PAHOLE="$k612_pahole")
		fi
		if [ -z "$kdir" ]; then
			echo "check-build: no linux-headers-$series.*-$fl (make deps)" >&2
			fail+=" $series-$fl"
			continue
		fi
		b=$out/$series-$fl
		echo "== W=1 build: make -C $kdir M=$b W=1${make_args:+ ${make_args[*]}} modules"
		mkdir -p "$b"
		cp -a Kbuild kmod "$b/"
		rm -f "$b"/kmod/*.o "$b"/kmod/*.ko "$b"/kmod/*.mod* "$b"/kmod/.*.cmd
		if ! make -C "$kdir" M="$b" W=1 "${make_args[@]}" modules >"$b/build.log" 2>&1; then
			cat "$b/build.log" >&2
			fail+=" $series-$fl"
		elif grep -E ': (warning|error):' "$b/build.log" >&2; then
			fail+=" $series-$fl(warnings)"
		else
			echo "ok: $(modinfo -F vermagic "$b/kmod/dm-stash.ko")"
		fi
		rm -rf "$b"
	done
done

if [ -n "$fail" ]; then
	echo "check-build: FAILED:$fail" >&2
	exit 1
fi
echo "check-build: ok"
