#!/bin/bash
# Writeback is an object of its own (make lint): outside
# kmod/stash-writeback.c, kmod/stash-throttle.c and kmod/stash-writeback.h,
# the module's code (comments aside) uses the functions of
# stash-writeback.h only, never the fields of struct stash_wb (sc->wb), a
# pointer to one, nor writeback's run and throttle types.
set -euo pipefail

cd "$(dirname "$0")/../.."
. tests/build/private-fields.sh

check_private check-wb-private writeback kmod/stash-writeback.h \
	'\bwb(\.|->)[a-z_]+|\bstruct stash_wb[[:space:]]*\*|\bstruct (stash_wb_run|stash_throttle|stash_lat)\b' \
	kmod/stash-writeback.c kmod/stash-throttle.c kmod/stash-writeback.h
