#!/bin/bash
# desc: 1,000 random and mutated messages to a write-back volume (fixed seed): accepted ones show in the status, refused ones change nothing, data intact through the volume and on the origin, no splat
. "$(dirname "$0")/../lib.sh"
require_root
require_cmd python3
stash_load_module

count=1000
[ "${STASH_LONG:-0}" = 1 ] && count=10000
seed=${STASH_FUZZ_SEED:-8585}
brd_setup 2 32768
# Every line goes to the kernel log before it is tried: no rate limit.
old=$(cat /proc/sys/kernel/printk_devkmsg)
echo on >/proc/sys/kernel/printk_devkmsg
on_exit "echo $old >/proc/sys/kernel/printk_devkmsg"
log "messages: $count, seed $seed (STASH_FUZZ_SEED=N for another)"
assert_ok "fuzzing messages" python3 "$STASH_REPO/tests/tools/dm-fuzz.py" messages \
	--origin /dev/ram0 --cache /dev/ram1 --count "$count" --seed "$seed"
