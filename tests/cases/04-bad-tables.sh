#!/bin/bash
# desc: invalid table lines are refused with a stash error and leave no device
. "$(dirname "$0")/../lib.sh"
require_root
stash_load_module

brd_setup 2 16384
origin=/dev/ram1 cache=/dev/ram0
len=$(dev_sectors "$origin")
before=$(dm_names)

# bad_table WHY ARGS: "dmsetup create" of a stash table with ARGS must fail,
# the kernel must say why with a stash error, and no device may remain.
bad_table() {
	local why=$1 args=$2 out

	log "$why: stash $args"
	kmsg_mark
	if dm_create bad "0 $len stash $args"; then
		die "$why: table '$args' was accepted"
	fi
	out=$(kmsg_since)
	echo "$out"
	assert_match 'device-mapper: table: [^ ]+: stash: .+' "$out" \
		"$why: no stash error in the kernel log"
	assert_eq "$before" "$(dm_names)" "$why: devices after the failed create"
}

bad_table "no arguments" ""
bad_table "one argument" "$origin"
bad_table "two arguments" "$origin $cache"
bad_table "unknown mode" "$origin $cache writesideways"
bad_table "mode with trailing junk" "$origin $cache writethroughx"
bad_table "nonexistent origin path" "/dev/stash-no-such-device $cache writethrough"
bad_table "nonexistent cache path" "$origin /dev/stash-no-such-device writethrough"
bad_table "nonexistent device number" "$origin $(unused_block_major):7 writearound"
bad_table "same device as origin and cache" "$origin $origin writethrough"
bad_table "same device by path and number" "$origin $(dev_number "$origin") writearound"
bad_table "optional argument count without arguments" "$origin $cache writethrough 2"
bad_table "optional argument count not a number" "$origin $cache writethrough x"
