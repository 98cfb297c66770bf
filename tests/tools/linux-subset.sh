#!/bin/bash
# linux-subset.sh OUT.tar: the part of Debian's kernel source that test 82
# unpacks in its short run, as a tar.  Made on the host by "make
# tests-tools": reading it out of the 130 MB linux-source tar.xz means
# decompressing all of it, minutes under emulation and seconds here.
# Prints nothing and makes nothing when the tarball is not installed.
set -euo pipefail

out=$1
src_tar=/usr/src/linux-source-6.1.tar.xz
subset="fs/ext4 fs/xfs drivers/md"

[ -f "$src_tar" ] || exit 0
[ "$out" -nt "$src_tar" ] && [ "$out" -nt "$0" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2046,SC2086
xz -dc "$src_tar" | tar -C "$tmp" -x $(printf 'linux-source-6.1/%s ' $subset)
mkdir -p "$(dirname "$out")"
# shellcheck disable=SC2086
tar -C "$tmp/linux-source-6.1" -cf "$out.tmp" $subset
mv "$out.tmp" "$out"
