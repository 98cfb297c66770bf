#!/bin/bash
# desc: origin errors (dm-error swap) in each mode: the user sees them, cached blocks still read; write-back keeps the blocks dirty and retries with a growing back-off until the origin is back
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
require_root
require_cmd fio
stash_load_module

cache_setup 32 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/a" 16

for mode in writearound writethrough writeback; do
	log "=== $mode"
	fault origin linear
	stash_create "o$mode" "$ORIGIN" "$CACHE" $mode volatile sequential_cutoff 0 \
		idle_ms 0 high_watermark 100
	vol=$STASH_DEV
	assert_ok "$mode: fio before the fault" fio_verify "$vol" 2M 2
	read_twice "$vol" 0 1024
	[ $mode = writeback ] && drain "$vol" 60
	st0=$(status_line "$vol")

	fault origin error
	# A cached block reads from the cache; an uncached one fails.
	assert_ok "$mode: a cached block reads with the origin failing" try_read "$vol" 10 1
	assert_fails "$mode: an uncached block fails to read" try_read "$vol" 6000 1
	assert_ok "$mode: the read error counted" \
		test "$(delta "$st0" "$(status_line "$vol")" origin_errors)" -ge 1
	if [ $mode != writeback ]; then
		assert_fails "$mode: a write fails with the origin" try_put "$vol" "$tmp/a" 100
		st1=$(status_line "$vol")
		assert_ok "$mode: origin errors counted" test "$(delta "$st0" "$st1" origin_errors)" -gt 0
		assert_eq 0 "$(field_of "$st1" dirty)" "$mode: dirty"
		fault origin linear
		assert_ok "$mode: the data before the fault is intact" fio_check "$vol" 4M
		stash_remove "$vol"
		continue
	fi

	# Write-back: the write is acknowledged from the cache; writeback fails,
	# the blocks stay dirty and are retried with a growing back-off.
	assert_ok "write-back write with the origin failing" try_put "$vol" "$tmp/a" 100
	assert_eq 16 "$(sf "$vol" dirty)" "dirty after the write"
	assert_fails "a flush cannot succeed while the blocks cannot be written back" fsync_dev "$vol"
	dmsetup message "$vol" 0 flush
	seen=
	for ((i = 0; i < 80; i++)); do
		r=$(sf "$vol" writeback_retry_ms)
		[[ " $seen " == *" $r "* ]] || seen+=" $r"
		[ "$r" -ge 800 ] && break
		sleep 0.1
	done
	st1=$(status_line "$vol")
	log "back-off values seen:$seen; $st1"
	assert_ok "the back-off grew to 800 ms or more (seen:$seen)" test "$r" -ge 800
	# Doubling: every value seen is 100 ms times a power of two, rising (a
	# slow VM may look too late to see 100 and 200).
	prev=0
	for r in $seen; do
		case $r in
		0) continue ;;	# before the first failed pass
		100 | 200 | 400 | 800 | 1600 | 3200 | 6400 | 10000) ;;
		*) die "back-off $r ms is not 100 ms times a power of two (seen:$seen)" ;;
		esac
		assert_ok "the back-off only grows (seen:$seen)" test "$r" -gt "$prev"
		prev=$r
	done
	assert_ok "the back-off doubled at least once (seen:$seen)" \
		test "$(tr ' ' '\n' <<<"$seen" | grep -c '^[1-9]')" -ge 2
	assert_ok "writeback errors counted" test "$(delta "$st0" "$st1" writeback_errors)" -ge 32
	assert_eq 16 "$(field_of "$st1" dirty)" "dirty while writeback fails"
	assert_ok "the dirty blocks read as written" same "$vol" 100 "$tmp/a"

	fault origin linear
	# The next retry (at most 10 s away) writes them back.
	wait_clean "$vol" 30
	assert_eq 0 "$(sf "$vol" writeback_retry_ms)" "back-off after a good pass"
	assert_ok "the origin has the blocks" same "$ORIGIN" 100 "$tmp/a"
	assert_ok "a flush works again" fsync_dev "$vol"
	assert_ok "the data before the fault is intact" fio_check "$vol" 400K
	stash_remove "$vol"
done
