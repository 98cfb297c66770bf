#!/bin/bash
# desc: 1,000 random and mutated messages to a write-back volume (fixed seed): accepted ones show in the status, refused ones change nothing, data intact through the volume and on the origin, no splat
. "$(dirname "$0")/../lib.sh"
require_root
require_cmd python3
stash_load_module

# count, seed, /dev/ram0 and /dev/ram1; every line goes to the kernel log
# before it is tried, with no rate limit.
fuzz_setup
log "messages: $count, seed $seed (STASH_FUZZ_SEED=N for another)"
assert_ok "fuzzing messages" python3 "$STASH_REPO/tests/tools/dm-fuzz.py" messages \
	--origin /dev/ram0 --cache /dev/ram1 --count "$count" --seed "$seed"
