#!/bin/bash
# desc: bad messages fail and change nothing; set, mode, reset_counters, invalidate and flush take effect
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
stash_load_module

cache_setup 16 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
stash_create msg "$ORIGIN" "$CACHE" writeback high_watermark 100 idle_ms 0 sequential_cutoff 0
vol=$STASH_DEV
dev=${STASH_DM_PREFIX}msg

# Some state first: 64 dirty blocks, 64 cached clean blocks, counters > 0.
rand_file "$tmp/a" 64
put "$vol" "$tmp/a" 0
read_twice "$vol" 1000 64
table0=$(dmsetup table "$dev")
st0=$(status_stable "$vol")
log "before: $st0"
assert_eq 64 "$(field_of "$st0" dirty)" "dirty blocks before the messages"
assert_eq 128 "$(used_blocks "$vol")" "cache blocks used before the messages"
# Every status key once: a reader takes the first (a second writeback_rate=,
# the rate cap, once hid behind the measured rate).
assert_eq "" "$(status_line "$vol" | tr ' ' '\n' | grep = | cut -d= -f1 |
	sort | uniq -d | paste -sd' ')" "status keys that appear twice"
failures=0

# bad MSG...: the message must fail and leave status and table as they were.
bad() {
	if dmsetup message "$dev" 0 "$@" 2>/dev/null; then
		echo "FAIL: message '$*' succeeded" >&2
		failures=$((failures + 1))
	fi
	if [ "$(status_stable "$vol")" != "$st0" ] || [ "$(dmsetup table "$dev")" != "$table0" ]; then
		echo "FAIL: message '$*' changed the device: $(status_stable "$vol")" >&2
		failures=$((failures + 1))
	fi
}

bad frobnicate
bad reset_counters now
bad flush all
bad invalidate 12
bad mode
bad mode writeback writethrough
bad mode writesideways
bad mode ""
bad set
bad set idle_ms
bad set idle_ms 10 20
bad set no_such_tunable 1
bad set block_size 16
bad set volatile 1
bad set high_watermark 0
bad set high_watermark 101
bad set high_watermark 10
bad set low_watermark 100
bad set high_watermark 9
bad set writeback_inflight 0
bad set writeback_inflight 9
bad set idle_ms 3600001
bad set idle_ms -5
bad set idle_ms 12ms
bad set sequential_cutoff 4194305
bad set idle_ms ""
bad set commit_ms 0
bad set commit_ms 60001
bad set error_threshold 1000000001
bad set error_threshold -1
bad set writeback_latency 99
bad set writeback_latency 1
bad set writeback_latency 10001
bad set writeback_rate_cap 1073741825
bad set writeback_rate_cap -1
bad set metadata volatile
assert_eq 0 "$failures" "bad messages that succeeded or changed something"

# Good messages.  set: every tunable, at both ends of its range.
setok() {
	assert_ok "set $1 $2" dmsetup message "$dev" 0 set "$1" "$2"
	assert_eq "$2" "$(sf "$vol" "$1")" "$1 after 'set $1 $2'"
}
setok sequential_cutoff 4194304
setok sequential_cutoff 0
setok writeback_inflight 1
setok writeback_inflight 8
setok idle_ms 3600000
setok idle_ms 0
setok low_watermark 99
setok low_watermark 0
setok high_watermark 2
setok high_watermark 100
setok low_watermark 20
setok commit_ms 1
setok commit_ms 60000
setok commit_ms 1000
setok error_threshold 1000000000
setok error_threshold 0
setok error_threshold 64
setok writeback_latency 0
setok writeback_latency 100
setok writeback_latency 10000
setok writeback_latency 200
setok writeback_rate_cap 1073741824
setok writeback_rate_cap 0
assert_eq 0 "$(delta "$st0" "$(status_line "$vol")" written_back)" "writeback caused by the set messages"
assert_eq "$table0" "$(dmsetup table "$dev")" "the table after set (it keeps the constructor's options)"

# reset_counters zeroes every counter, and only the counters.
assert_ok "reset_counters" dmsetup message "$dev" 0 reset_counters
st1=$(status_line "$vol")
log "after reset_counters: $st1"
for k in read_hits read_misses write_hits write_misses promotions evictions \
	invalidations bypassed written_back cache_errors origin_errors writeback_errors; do
	assert_eq 0 "$(field_of "$st1" $k)" "$k after reset_counters"
done
assert_eq 64 "$(field_of "$st1" dirty)" "dirty after reset_counters"
assert_eq 128 "$(used_blocks "$vol")" "cache blocks used after reset_counters"

# invalidate: the clean blocks go, the dirty ones stay.
assert_ok "invalidate" dmsetup message "$dev" 0 invalidate
st2=$(status_line "$vol")
assert_eq 64 "$(used_blocks "$vol")" "cache blocks used after invalidate"
assert_eq 64 "$(delta "$st1" "$st2" invalidations)" "invalidations by invalidate"
assert_eq 64 "$(field_of "$st2" dirty)" "dirty after invalidate"
assert_ok "dirty data readable after invalidate" same "$vol" 0 "$tmp/a"

# A watermark set below the dirty level starts writeback: 64 of 4096 blocks
# is 1.6% > 1%, and a watermark pass goes down to low_watermark 0.
assert_ok "origin has the old data while dirty" bash -c "! cmp -s <(dd if=$ORIGIN bs=4k count=64 iflag=direct status=none) $tmp/a"
setok low_watermark 0
setok high_watermark 1
wait_clean "$vol" 20
assert_eq 64 "$(sf "$vol" written_back)" "written_back after high_watermark 1"
assert_ok "origin holds the data after the watermark pass" same "$ORIGIN" 0 "$tmp/a"

# flush: every dirty block goes to the origin.
setok high_watermark 100
rand_file "$tmp/b" 64
put "$vol" "$tmp/b" 2000
sleep 1
assert_eq 64 "$(sf "$vol" dirty)" "dirty before flush"
assert_ok "flush" dmsetup message "$dev" 0 flush
wait_clean "$vol" 20
assert_eq 128 "$(sf "$vol" written_back)" "written_back after flush"
assert_ok "origin holds the data after flush" same "$ORIGIN" 2000 "$tmp/b"

# mode: each mode, and verbs are case-insensitive.
for m in writethrough writearound writeback; do
	assert_ok "mode $m" dmsetup message "$dev" 0 mode "$m"
	assert_eq "$m" "$(sf "$vol" mode)" "mode after 'mode $m'"
done
assert_ok "MODE in capitals" dmsetup message "$dev" 0 MODE writethrough
assert_eq writethrough "$(sf "$vol" mode)" "mode after 'MODE writethrough'"
assert_ok "SET in capitals" dmsetup message "$dev" 0 SET Idle_Ms 250
assert_eq 250 "$(sf "$vol" idle_ms)" "idle_ms after 'SET Idle_Ms 250'"

stash_remove "$vol"
