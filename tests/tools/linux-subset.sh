#!/bin/bash
# linux-subset.sh OUT.tar [EXTRA_DIR...]: the part of Debian's kernel source
# that test 82 unpacks (fs/ext4 fs/xfs drivers/md, plus EXTRA_DIRs in its
# long run), as a tar, from the unpacked tree or else from the tar.xz.
# "make tests-tools" makes the short run's on the host: reading it out of
# the 130 MB tar.xz means decompressing all of it, minutes under emulation
# and seconds here.  Makes nothing when the source is not installed.
set -euo pipefail

out=$1
shift
src_dir=/usr/src/linux-source-6.1
src_tar=/usr/src/linux-source-6.1.tar.xz
subset="fs/ext4 fs/xfs drivers/md $*"

if [ -d "$src_dir/fs/ext4" ]; then
	from=$src_dir
elif [ -f "$src_tar" ]; then
	[ "$out" -nt "$src_tar" ] && [ "$out" -nt "$0" ] && [ $# = 0 ] && exit 0
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# shellcheck disable=SC2046,SC2086
	xz -dc "$src_tar" | tar -C "$tmp" -x $(printf 'linux-source-6.1/%s ' $subset)
	from=$tmp/linux-source-6.1
else
	exit 0
fi
mkdir -p "$(dirname "$out")"
# shellcheck disable=SC2086
tar -C "$from" -cf "$out.tmp" $subset
mv "$out.tmp" "$out"
