#!/bin/bash
# desc: fio crc32c verify passes through a stash device in every mode
. "$(dirname "$0")/../lib.sh"
require_root
require_cmd fio
stash_load_module

# ram0: cache (32 MiB), ram1: origin (64 MiB; brd makes them the same size,
# so give both 64 MiB).
brd_setup 2 65536
origin=/dev/ram1 cache=/dev/ram0

for mode in $STASH_MODES; do
	log "mode $mode"
	stash_create "fio-$mode" "$origin" "$cache" "$mode"
	dmsetup status "$STASH_DEV"
	assert_ok "fio verify through the $mode device" fio_verify "$STASH_DEV" 4M 2
	# The data must read back the same through a fresh device ...
	stash_remove "$STASH_DEV"
	stash_create "fio-$mode" "$origin" "$cache" "$mode"
	assert_ok "read-back through a new $mode device" fio_check "$STASH_DEV" 8M
	stash_remove "$STASH_DEV"
	# ... and the origin holds it once the device is gone.
	assert_ok "origin holds the data after removing the $mode device" \
		fio_check "$origin" 8M
	dd if=/dev/zero of="$origin" bs=1M count=8 oflag=direct status=none
done
