#!/bin/bash
# desc: rmmod fails with "in use" while a stash device exists, works after
. "$(dirname "$0")/../lib.sh"
require_root
stash_load_module

brd_setup 2 16384
stash_create busy /dev/ram1 /dev/ram0 writethrough

out=$(rmmod dm_stash 2>&1) && die "rmmod succeeded with a stash device present"
log "rmmod: $out"
assert_match 'in use' "$out" "rmmod error"
assert_ok "module vanished after the refused rmmod" stash_module_loaded
# The device still works.
assert_ok "read after the refused rmmod" \
	dd if="$STASH_DEV" of=/dev/null bs=4k count=16 iflag=direct status=none

stash_remove "$STASH_DEV"
assert_ok "rmmod after removing the device" rmmod dm_stash
assert_fails "module present after rmmod" stash_module_loaded
assert_ok "insmod again" insmod "$STASH_KO"
