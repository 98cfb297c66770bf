#!/bin/bash
# desc: the module unloads and loads again cleanly, twice
. "$(dirname "$0")/../lib.sh"
require_root

stash_load_module
for round in 1 2; do
	assert_eq 0 "$(cat /sys/module/dm_stash/refcnt)" "refcount before rmmod (round $round)"
	assert_ok "rmmod (round $round)" rmmod dm_stash
	assert_fails "module still present after rmmod (round $round)" stash_module_loaded
	assert_fails "stash still registered after rmmod (round $round)" \
		bash -c 'dmsetup targets | grep -q "^stash "'
	assert_ok "insmod (round $round)" insmod "$STASH_KO"
	assert_ok "module missing after insmod (round $round)" stash_module_loaded
done
