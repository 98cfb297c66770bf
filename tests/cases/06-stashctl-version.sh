#!/bin/bash
# desc: stashctl version reports the tool's and the loaded module's versions
. "$(dirname "$0")/../lib.sh"
require_root
stashctl=$STASH_REPO/userspace-tools/stashctl
[ -x "$stashctl" ] || die "$stashctl not built (make tools)"

hdr=$STASH_REPO/kmod/uapi/linux/dm-stash.h
v() { awk -v k="STASH_VERSION_$1" '$1 == "#define" && $2 == k { print $3 }' "$hdr"; }
want="$(v MAJOR).$(v MINOR).$(v PATCH)"

stash_load_module
out=$("$stashctl" version) || die "stashctl version failed"
echo "$out"
assert_eq "stashctl: $want" "$(sed -n 1p <<<"$out")" "tool version line"
assert_match '^module: ' "$(sed -n 2p <<<"$out")" "module version line"
assert_ne "module: not loaded" "$(sed -n 2p <<<"$out")" "module line with the module loaded"
if [ -r /sys/module/dm_stash/version ]; then
	assert_eq "module: $(cat /sys/module/dm_stash/version)" "$(sed -n 2p <<<"$out")" \
		"module version line"
fi

rmmod dm_stash || die "rmmod failed"
assert_eq "module: not loaded" "$("$stashctl" version | sed -n 2p)" \
	"module line without the module"
insmod "$STASH_KO" || die "insmod failed"

assert_match '^usage: stashctl' "$("$stashctl" --help)" "stashctl --help"
assert_fails "stashctl with an unknown command" "$stashctl" no-such-command
