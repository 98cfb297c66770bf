#!/bin/bash
# desc: dmsetup targets lists stash with the uapi header's version
. "$(dirname "$0")/../lib.sh"
require_root
stash_load_module

hdr=$STASH_REPO/kmod/uapi/linux/dm-stash.h
v() { awk -v k="STASH_VERSION_$1" '$1 == "#define" && $2 == k { print $3 }' "$hdr"; }
want="v$(v MAJOR).$(v MINOR).$(v PATCH)"

line=$(dmsetup targets | awk '$1 == "stash"')
log "dmsetup targets: $line"
assert_ne "" "$line" "stash missing from dmsetup targets"
assert_eq "$want" "$(awk '{ print $2 }' <<<"$line")" "target version"
