#!/bin/bash
# desc: writeback's CPU priority: a pass nobody waits for runs at nice 19 (the CPU scheduler gives it what the foreground leaves), a drain a flush waits for and a pass with the throttle off run at the worker's own nice, and the worker gets its nice back when the pass ends; every dirty block reaches the origin each time
#
# The task running a volume's writeback is the one whose kernel stack holds
# wb_work_fn (/proc/PID/stack); its nice is sampled while a pass runs over
# an origin that takes 50 ms per write (dm-delay), which keeps the pass
# going for seconds.  Breaks it catches (each made once and seen to fail
# here): no priority change (round 1 saw nice 0) and a nice never given
# back (the next pass starts from it: round 2 saw 19).  Also checked: a
# flush of a volatile cache waiting for the drain (urgent: nice 0), and no
# kernel worker left at nice 19 after the passes.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
require_cmd ps
stash_load_module

[ -r "/proc/$$/stack" ] || skip "no /proc/PID/stack (CONFIG_STACKTRACE)"
brd_setup 2 65536
delay_create slow /dev/ram0 50
origin=$DELAY_DEV
cache=/dev/ram1
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

# The nice of the task that runs writeback's work now, if one does (one
# grep over every task's stack: a process per task took seconds).
wb_nice() {
	local f

	f=$(grep -l wb_work_fn /proc/[0-9]*/stack 2>/dev/null | head -n1)
	[ -z "$f" ] || ps -o ni= -p "$(basename "$(dirname "$f")")" | tr -d ' '
}

# Kernel workers at nice 19 (none of the kernel's own pools has it).
kworkers_at_19() {
	ps -eo ni=,comm= | awk '$1 == 19 && $2 ~ /^kworker/' | wc -l
}

# sample VOL SECS: the distinct nice values of VOL's writeback task seen
# in SECS seconds or until VOL is clean, into $tmp/seen.
sample() {
	local vol=$1 secs=$2 n end=$((SECONDS + $2))

	: >"$tmp/seen"
	while [ $SECONDS -lt $end ] && [ "$(sf "$vol" dirty)" != 0 ]; do
		n=$(wb_nice)
		[ -z "$n" ] || echo "$n" >>"$tmp/seen"
		sleep 0.1
	done
	sort -un "$tmp/seen" | paste -sd' '
}

# dirty VOL SEED: 2048 scattered dirty blocks (8 MiB of 4 KiB writes at
# random over the first 64 MiB, each block once), with fio's verify
# headers; each round its own SEED (other blocks, other data).
# check WHAT SEED: the origin's RAM disk (behind the delay) holds them.
fio_args=(--bs=4k --direct=1 --size=64m --io_size=8m --verify=crc32c
	--verify_state_save=0 --verify_fatal=1 --output=/dev/null)
dirty() {
	fio --name=dirty --filename="$1" --rw=randwrite --ioengine=psync \
		--do_verify=0 --randseed="$2" "${fio_args[@]}" || die "fio failed"
}
check() {
	assert_ok "$1" fio --name=check --filename=/dev/ram0 --rw=randwrite \
		--ioengine=libaio --iodepth=16 --verify_only --randseed="$2" \
		"${fio_args[@]}"
}

base19=$(kworkers_at_19)

# 1. The flush message: a pass nobody waits for.
stash_create prio "$origin" "$cache" writeback high_watermark 100 idle_ms 0 \
	sequential_cutoff 0
vol=$STASH_DEV
dirty "$vol" 11
d=$(sf "$vol" dirty)
dmsetup message "$vol" 0 flush || die "flush failed"
seen=$(sample "$vol" 20)
log "flush message: $d dirty blocks; writeback's nice seen: ${seen:-none}"
assert_match '(^| )19( |$)' "$seen" "writeback at nice 19 during a pass nobody waits for"
assert_ok "no sample at nice 0 once the pass ran at 19 ($seen)" test "${seen%% *}" = 19
wait_clean "$vol" 120
check "the origin holds every block written back by the pass" 11
stash_remove "$vol"
wipe_sb "$cache"

# 2. The throttle off: the same pass at the worker's own nice.
stash_create prio "$origin" "$cache" writeback high_watermark 100 idle_ms 0 \
	sequential_cutoff 0 writeback_latency 0
vol=$STASH_DEV
dirty "$vol" 22
dmsetup message "$vol" 0 flush || die "flush failed"
seen=$(sample "$vol" 20)
log "writeback_latency 0: writeback's nice seen: ${seen:-none}"
assert_match '^0$' "$seen" "writeback at nice 0 with the throttle off"
wait_clean "$vol" 120
check "the origin holds every block (throttle off)" 22
stash_remove "$vol"
wipe_sb "$cache"

# 3. A flush of a volatile cache waits for the drain: urgent.
stash_create prio "$origin" "$cache" writeback high_watermark 100 idle_ms 0 \
	sequential_cutoff 0 volatile
vol=$STASH_DEV
dirty "$vol" 33
fsync_dev "$vol" &
fpid=$!
seen=$(sample "$vol" 20)
wait $fpid || die "the flush failed"
log "a flush waiting (volatile): writeback's nice seen: ${seen:-none}"
assert_match '^0$' "$seen" "writeback at nice 0 while a flush waits for it"
assert_eq 0 "$(sf "$vol" dirty)" "dirty blocks after the flush returned"
check "the origin holds every block the flush waited for" 33
stash_remove "$vol"

sleep 1
assert_eq "$base19" "$(kworkers_at_19)" "kernel workers at nice 19 after the passes (before: $base19)"
