#!/bin/bash
# The map is an object of its own (make lint): outside kmod/stash-map.c and
# kmod/stash-map.h, the module's code (comments aside) uses the functions of
# stash-map.h only, never the fields of struct stash_map or struct
# stash_entry, stash_map_entry(), stash_entry_oblock() or the SE_* flags.
# The unit tests and the simulator may look inside: they are not checked.
set -euo pipefail

cd "$(dirname "$0")/../.."
. tests/build/private-fields.sh

check_private check-map-private "the map" kmod/stash-map.h \
	'(->|\.)map(\.|->)[a-z_]+|\bstash_map_entry\(|\bstash_entry_oblock\(|\bstruct stash_entry\b|\bSE_[A-Z]+\b' \
	kmod/stash-map.c kmod/stash-map.h
