#!/bin/bash
# desc: all six mode switches under a running fio verify load: no verify error, drains complete, origin equals volume
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
stash_load_module

# Cache 8 MiB, fio over 32 MiB of a 64 MiB origin: eviction and watermark
# writeback happen along the way.
cache_setup 64 8
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
stash_create sw "$ORIGIN" "$CACHE" writearound low_watermark 5
vol=$STASH_DEV

# fio in a loop until told to stop: job a writes 4 KiB blocks, job b
# 512 B..64 KiB at 512-byte offsets; each verifies as it goes (backlog)
# and at the end.  A failed run leaves its output in $tmp/fail.
(
	run=0
	while [ ! -e "$tmp/stop" ]; do
		run=$((run + 1))
		if ! fio --direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite \
			--verify=crc32c --verify_fatal=1 --verify_backlog=64 --do_verify=1 \
			--randrepeat=0 --verify_state_save=0 --filename="$vol" \
			--name=a --offset=0 --size=16M --bs=4k \
			--name=b --offset=16M --size=16M --bsrange=512-64k --blockalign=512 \
			>"$tmp/fio.out" 2>&1 ||
			grep -qE 'err= *[1-9]|verify: bad|bad magic' "$tmp/fio.out"; then
			cp "$tmp/fio.out" "$tmp/fail"
			break
		fi
		echo "$run" >"$tmp/runs"
	done
) &
loop=$!
on_exit "touch $tmp/stop; wait $loop"

# switch MODE: switch to MODE; coming out of write-back, wait for the drain.
switch() {
	local from to=$1 t0 t

	from=$(sf "$vol" mode)
	[ ! -e "$tmp/fail" ] || { cat "$tmp/fail"; die "fio failed before $from -> $to"; }
	t0=$(date +%s%N)
	assert_ok "mode $from -> $to" dmsetup message "$vol" 0 mode "$to"
	log "$from -> $to: $(status_line "$vol")"
	assert_eq "$to" "$(sf "$vol" mode)" "mode after the switch"
	if [ "$from" = writeback ]; then
		wait_clean "$vol" 120
		t=$(date +%s%N)
		log "$from -> $to: drained in $(((t - t0) / 1000000)) ms: $(status_line "$vol")"
	fi
	sleep 3
}

sleep 3
switch writethrough
switch writeback
switch writearound
switch writeback
switch writethrough
switch writearound
touch "$tmp/stop"
wait $loop
if [ -e "$tmp/fail" ]; then
	cat "$tmp/fail"
	die "fio verify failed"
fi
log "fio runs completed: $(cat "$tmp/runs" 2>/dev/null)"
assert_ok "fio ran during the switches" test -s "$tmp/runs"

st=$(status_line "$vol")
log "end: $st"
assert_ne 0 "$(field_of "$st" written_back)" "written_back"
for k in cache_errors origin_errors writeback_errors; do
	assert_eq 0 "$(field_of "$st" $k)" "$k"
done
wait_clean "$vol" 30
assert_ok "origin equals the volume" same_devs "$ORIGIN" "$vol"
stash_remove "$vol"
