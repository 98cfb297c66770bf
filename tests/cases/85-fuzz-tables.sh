#!/bin/bash
# desc: 1,000 random and mutated table lines (fixed seed): each refused cleanly (no table left) or accepted correctly (resumes, reloads identically, reads back, removes), no splat
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd python3
stash_load_module

# count, seed, /dev/ram0 and /dev/ram1; every line goes to the kernel log
# before it is tried, with no rate limit.
fuzz_setup
# A persistent cache whose map fits one metadata page (32 blocks of 1 MiB)
# reloads: the load reads both copies of a page into a buffer that must
# hold two (it once held one, and the load wrote past it).
stash_create onepage /dev/ram0 /dev/ram1 writeback block_size 2048
dd if=/dev/urandom of=/dev/shm/85-data bs=1M count=2 status=none
on_exit "rm -f /dev/shm/85-data"
dd if=/dev/shm/85-data of="$STASH_DEV" bs=1M oflag=direct status=none
stash_remove "$STASH_DEV"
stash_create onepage /dev/ram0 /dev/ram1 writeback block_size 2048
assert_ok "data after reloading a one-page persistent cache" \
	cmp -s <(dd if="$STASH_DEV" bs=1M count=2 iflag=direct status=none) /dev/shm/85-data
stash_remove "$STASH_DEV"
wipe_sb /dev/ram1

log "tables: $count, seed $seed (STASH_FUZZ_SEED=N for another)"
assert_ok "fuzzing tables" python3 "$STASH_REPO/tests/tools/dm-fuzz.py" tables \
	--origin /dev/ram0 --cache /dev/ram1 --count "$count" --seed "$seed"
