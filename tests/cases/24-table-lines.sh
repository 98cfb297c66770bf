#!/bin/bash
# desc: bad table lines (options, tunables, sizes) are refused with a stash error; valid ones round-trip through dmsetup table
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
stash_load_module

cache_setup 16 16
o=$ORIGIN c=$CACHE
len=$(dev_sectors "$o")
# A cache of 15 blocks (of 4 KiB) and one of 16.
lin_create small15 /dev/ram1 120
small15=$LIN_DEV
lin_create small16 /dev/ram1 128
small16=$LIN_DEV
before=$(dm_names)
failures=0

# fail_soft MESSAGE: record a failure and go on with the other lines.
fail_soft() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# bad WHY ERROR TABLE: creating TABLE must fail with a "stash: ERROR" line
# (an extended regex) in the kernel log, and leave no device behind.
bad() {
	local why=$1 err=$2 table=$3 out

	kmsg_mark
	if dm_create bad "$table" 2>/dev/null; then
		fail_soft "$why: '$table' was accepted"
		dm_remove "${STASH_DM_PREFIX}bad"
		return
	fi
	out=$(kmsg_since | grep -E 'device-mapper: table: .*stash: ')
	log "$why: refused: ${out:-(no kernel message)}"
	[ -n "$out" ] || fail_soft "$why: no 'stash:' error in the kernel log for '$table'"
	grep -qE "stash: .*$err" <<<"$out" ||
		fail_soft "$why: refused for another reason than '$err': $out"
	[ "$(dm_names)" = "$before" ] || fail_soft "$why: devices left after '$table': $(dm_names | tr '\n' ' ')"
}

s="0 $len stash $o $c"
bad "bad mode" "Unknown mode" "$s writeback2"
bad "block_size not a power of two" "block_size must be a power of two" "$s writeback 2 block_size 24"
bad "block_size too small" "block_size must be a power of two" "$s writeback 2 block_size 4"
bad "block_size too large" "block_size must be a power of two" "$s writeback 2 block_size 4096"
bad "block_size zero" "block_size must be a power of two" "$s writeback 2 block_size 0"
bad "block_size not a number" "block_size must be a power of two" "$s writeback 2 block_size 8k"
bad "unknown option" "Unknown optional argument" "$s writeback 1 turbo"
bad "unknown option with a value" "Unknown optional argument" "$s writeback 2 colour blue"
bad "option missing its value (last)" "needs a value" "$s writeback 1 idle_ms"
bad "block_size missing its value" "needs a value" "$s writeback 1 block_size"
bad "option count short of a value" "needs a value" "$s writeback 2 volatile idle_ms 100"
bad "volatile given twice" "given twice" "$s writeback 2 volatile volatile"
bad "block_size given twice" "given twice" "$s writeback 4 block_size 8 block_size 16"
bad "tunable given twice" "given twice" "$s writeback 4 idle_ms 10 idle_ms 20"
bad "tunable given twice (other case)" "given twice" "$s writeback 4 idle_ms 10 IDLE_MS 20"
bad "high_watermark 0" "high_watermark must be a number in 1..100" "$s writeback 2 high_watermark 0"
bad "high_watermark 101" "high_watermark must be a number in 1..100" "$s writeback 2 high_watermark 101"
bad "low_watermark 100" "low_watermark must be a number in 0..99" "$s writeback 2 low_watermark 100"
bad "writeback_inflight 0" "writeback_inflight must be a number in 1..8" "$s writeback 2 writeback_inflight 0"
bad "writeback_inflight 9" "writeback_inflight must be a number in 1..8" "$s writeback 2 writeback_inflight 9"
bad "idle_ms above an hour" "idle_ms must be a number" "$s writeback 2 idle_ms 3600001"
bad "sequential_cutoff above 4 GiB" "sequential_cutoff must be a number" "$s writeback 2 sequential_cutoff 4194305"
bad "commit_ms 0" "commit_ms must be a number in 1..60000" "$s writeback 2 commit_ms 0"
bad "commit_ms above a minute" "commit_ms must be a number in 1..60000" "$s writeback 2 commit_ms 60001"
bad "writeback_latency below 100%" "writeback_latency must be 0 \\(off\\) or a percent in 100..10000" "$s writeback 2 writeback_latency 50"
bad "writeback_latency above 10000%" "writeback_latency must be a number in 0..10000" "$s writeback 2 writeback_latency 10001"
bad "writeback_rate_cap above 1 TiB/s" "writeback_rate_cap must be a number in 0..1073741824" "$s writeback 2 writeback_rate_cap 1073741825"
bad "format given twice" "given twice" "$s writeback 2 format format"
bad "negative tunable" "idle_ms must be a number" "$s writeback 2 idle_ms -1"
bad "tunable not a number" "idle_ms must be a number" "$s writeback 2 idle_ms 1s"
bad "low_watermark equal to high_watermark" "must be below high_watermark" \
	"$s writeback 4 high_watermark 40 low_watermark 40"
bad "low_watermark above high_watermark" "must be below high_watermark" \
	"$s writeback 4 high_watermark 30 low_watermark 31"
bad "low_watermark above the default high_watermark" "must be below high_watermark" \
	"$s writeback 2 low_watermark 60"
bad "too many arguments" "Too many arguments" "$s writeback 1 volatile extra"
bad "too many arguments after an empty option group" "Too many arguments" "$s writeback 0 extra"
bad "checksum given twice" "given twice" "$s writeback 3 volatile checksum checksum"
# The most a line can hold: 6 flags and option words, 9 tunables with values.
bad "option count above the maximum (24)" "Invalid number of optional arguments" \
	"$s writeback 25$(printf ' volatile%.0s' $(seq 25))"
bad "option count above the arguments" "Invalid number of optional arguments" "$s writeback 3 volatile"
bad "volatile cache device too small (15 blocks)" "Cache device too small" \
	"0 $len stash $o $small15 writethrough 1 volatile"
wipe_sb "$c"	# small16 and the cache start at the same sector of ram1
bad "persistent cache device too small (16 blocks with the metadata)" "Cache device too small" \
	"0 $len stash $o $small16 writethrough"
bad "cache too small for block_size 16 (8 blocks of 8 KiB)" "Cache device too small" \
	"0 $len stash $o $small16 writethrough 3 volatile block_size 16"
bad "origin smaller than the target" "Origin device is smaller than the target" \
	"0 $((len + 8)) stash $o $c writethrough 1 volatile"

# The smallest cache is accepted.
if dm_create ok16 "0 $len stash $o $small16 writethrough 1 volatile"; then
	assert_eq 16 "$(total_blocks "$(dm_path ok16)")" "blocks of a 16-block cache"
	dm_remove "${STASH_DM_PREFIX}ok16"
else
	fail_soft "a cache of exactly 16 blocks was refused"
fi
before=$(dm_names)

# good OPTS...: the table with these options is accepted, and dmsetup table
# prints it back exactly, with the devices as major:minor.  (Each starts
# from a blank cache device: a persistent table formats it.)
good() {
	local line="0 $len stash $o $c $*" want got

	wipe_sb "$c"

	want="0 $len stash $(dev_number "$o") $(dev_number "$c") $*"
	if ! dm_create rt "$line"; then
		fail_soft "'$line' was refused: $(dmesg | grep 'stash: ' | tail -n1)"
		return
	fi
	got=$(dmsetup table "${STASH_DM_PREFIX}rt")
	log "table: $got"
	[ "$got" = "$want" ] || fail_soft "dmsetup table: expected '$want', got '$got'"
	dm_remove "${STASH_DM_PREFIX}rt"
}

good writearound
good writethrough
good writeback
good writeback 0
good writethrough 1 volatile
good writeback 2 block_size 16
good writeback 3 no_discard_passdown sequential_cutoff 0
good writeback 7 idle_ms 500 volatile high_watermark 90 low_watermark 5
good writeback 7 high_watermark 90 low_watermark 5 volatile idle_ms 500
good writearound 7 writeback_inflight 1 block_size 2048 volatile sequential_cutoff 4194304
good writeback 19 block_size 8 volatile no_discard_passdown format sequential_cutoff 1 high_watermark 100 low_watermark 99 idle_ms 3600000 writeback_inflight 8 commit_ms 60000 error_threshold 0
good writeback 20 block_size 8 volatile checksum no_discard_passdown format sequential_cutoff 1 high_watermark 100 low_watermark 99 idle_ms 3600000 writeback_inflight 8 commit_ms 60000 error_threshold 0
good writeback 24 block_size 8 volatile checksum no_discard_passdown format sequential_cutoff 1 high_watermark 100 low_watermark 99 idle_ms 3600000 writeback_inflight 8 commit_ms 60000 error_threshold 0 writeback_latency 10000 writeback_rate_cap 1073741824
good writeback 4 writeback_latency 0 writeback_rate_cap 0
good writethrough 2 writeback_latency 100
good writethrough 2 checksum volatile
good writeback 1 checksum
good writearound 3 checksum block_size 16
good writeback 15 commit_ms 1 writeback_inflight 8 idle_ms 0 low_watermark 0 high_watermark 1 sequential_cutoff 0 no_discard_passdown block_size 8
good writethrough 3 format block_size 16
# A valid pair of watermarks must not depend on the order of the options
# (each is checked against the other's default while parsing).
good writeback 4 low_watermark 60 high_watermark 80
good writeback 4 high_watermark 80 low_watermark 60
good writeback 4 high_watermark 5 low_watermark 2
good writeback 4 low_watermark 2 high_watermark 5

# A cache device that is neither blank nor dm-stash is formatted only when
# the table says so.
dd if=/dev/urandom of="$c" bs=4k count=2 oflag=direct conv=notrunc status=none
bad "cache device not blank, not dm-stash" "not blank" "$s writethrough"
if dm_create rt "$s writethrough 1 format"; then
	assert_eq persistent "$(sf "$(dm_path rt)" metadata)" "metadata= after format"
	dm_remove "${STASH_DM_PREFIX}rt"
else
	fail_soft "'format' did not format a non-blank cache device"
fi

# A cache keeps checksums (format version 2) or not: a table must agree.
wipe_sb "$c"
dm_create rt "$s writeback" || die "cannot create rt"
dm_remove "${STASH_DM_PREFIX}rt"
bad "checksum on a cache formatted without" "Cache has no checksums" "$s writeback 1 checksum"
wipe_sb "$c"
dm_create rt "$s writeback 1 checksum" || die "cannot create rt with checksum"
dm_remove "${STASH_DM_PREFIX}rt"
bad "no checksum on a cache formatted with" "Cache keeps checksums" "$s writeback"

# The mode in the table follows a mode switch.
wipe_sb "$c"
dm_create rt "0 $len stash $o $c writearound 2 idle_ms 100" || die "cannot create rt"
dmsetup message "${STASH_DM_PREFIX}rt" 0 mode writethrough || die "mode message failed"
assert_eq "0 $len stash $(dev_number "$o") $(dev_number "$c") writethrough 2 idle_ms 100" \
	"$(dmsetup table "${STASH_DM_PREFIX}rt")" "table after a mode switch"
dm_remove "${STASH_DM_PREFIX}rt"

assert_eq "$before" "$(dm_names)" "devices at the end"
assert_eq 0 "$failures" "failed checks (see FAIL lines above)"
