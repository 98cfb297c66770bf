#!/bin/bash
# desc: 8 fio jobs of mixed sizes with verify while suspend/resume, identical table reloads and mode switches loop: no verify error, no hang, volume equals origin after a drain
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
stash_load_module

secs=30
[ "${STASH_LONG:-0}" = 1 ] && secs=300
cache_setup 64 12
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
# commit_ms 20: the live table commits its metadata between a reload's
# table load and its resume (the new table must not trust the superblock
# its constructor read).
stash_create conc "$ORIGIN" "$CACHE" writeback sequential_cutoff 0 low_watermark 5 commit_ms 20
vol=$STASH_DEV
table=$(dmsetup table "$vol")

# fio in a loop until told to stop: 8 jobs on disjoint 5 MiB ranges, block
# sizes from 512 B to 1 MiB, each verifying as it goes and at the end.
(
	run=0
	while [ ! -e "$tmp/stop" ]; do
		run=$((run + 1))
		if ! fio --direct=1 --ioengine=libaio --iodepth=4 --rw=randwrite \
			--verify=crc32c --verify_fatal=1 --verify_backlog=32 --do_verify=1 \
			--randrepeat=0 --verify_state_save=0 --filename="$vol" --size=5M \
			--name=j4k --offset=0 --bs=4k \
			--name=j8k --offset=5M --bs=8k \
			--name=j16k --offset=10M --bs=16k \
			--name=j64k --offset=15M --bs=64k \
			--name=j1m --offset=20M --bs=1M \
			--name=jmix --offset=25M --bsrange=4k-128k \
			--name=j512 --offset=30M --bsrange=512-8k --blockalign=512 \
			--name=jrw --offset=35M --bs=4k --rw=randrw \
			>"$tmp/fio.out" 2>&1 ||
			grep -qE 'err= *[1-9]|verify: bad|bad magic' "$tmp/fio.out"; then
			cp "$tmp/fio.out" "$tmp/fail"
			break
		fi
		echo "$run" >"$tmp/runs"
	done
) &
fio_loop=$!
on_exit "touch $tmp/stop; wait $fio_loop"

# Mode switches, every half second, beside the suspend/reload loop below.
(
	n=0
	while [ ! -e "$tmp/stop" ]; do
		for m in writethrough writearound writeback; do
			dmsetup message "$vol" 0 mode "$m" 2>>"$tmp/mode.err" && n=$((n + 1))
			sleep 0.5
		done
		echo "$n" >"$tmp/modes"
	done
) &
mode_loop=$!
on_exit "touch $tmp/stop; wait $mode_loop"

# A failure below can leave the volume suspended with fio's I/O queued on
# it: replace its table with an error target, so that fio ends and the
# waits above return.
on_exit "dmsetup info $vol 2>/dev/null | grep -q SUSPENDED && dmsetup remove --force $vol"

# Suspend/resume and identical reloads, one after the other, for $secs
# seconds and until 3 cycles and a fio run are done: a slow kernel (the
# debug one: 10 to 15 s a cycle under load) gets up to ten times longer.
t0=$SECONDS
susp=0 reloads=0
more() {
	local ran=$((SECONDS - t0))

	[ ! -e "$tmp/fail" ] && [ "$ran" -lt $((10 * secs)) ] &&
		{ [ "$ran" -lt "$secs" ] || [ "$susp" -lt 3 ] || [ ! -s "$tmp/runs" ]; }
}
while more; do
	assert_ok "suspend" timeout 120 dmsetup suspend "$vol"
	sleep 0.2
	assert_ok "resume" timeout 120 dmsetup resume "$vol"
	susp=$((susp + 1))
	assert_ok "load the same table" timeout 120 dmsetup load "$vol" --table "$table"
	sleep 0.3
	assert_ok "resume with the reloaded table" timeout 120 dmsetup resume "$vol"
	reloads=$((reloads + 1))
	sleep 0.5
done
touch "$tmp/stop"
wait $fio_loop
wait $mode_loop
[ ! -e "$tmp/fail" ] || { cat "$tmp/fail"; die "fio failed"; }
runs=$(cat "$tmp/runs" 2>/dev/null || echo 0)
modes=$(cat "$tmp/modes" 2>/dev/null || echo 0)
log "$((SECONDS - t0)) s: $runs fio runs, $susp suspend/resume, $reloads reloads, $modes mode switches"
log "refused mode switches: $(sort "$tmp/mode.err" 2>/dev/null | uniq -c | head -n 5)"
log "$(status_line "$vol")"
[ "$runs" -ge 1 ] || die "no fio run completed in $((SECONDS - t0)) s"
[ "$susp" -ge 3 ] || die "only $susp suspend/resume cycles in $((SECONDS - t0)) s"
[ "$modes" -ge 3 ] || die "only $modes mode switches in $((SECONDS - t0)) s"
assert_eq "$table" "$(dmsetup table "$vol")" "table after the reloads"
# Every fio run verified its ranges at its end; the volume as the last run
# left it must reach the origin with the drain and stay there after removal.
sum=$(dd if="$vol" bs=1M count=40 iflag=direct status=none | sha256sum)
dmsetup message "$vol" 0 mode writeback
drain "$vol" 300
assert_ok "volume equals origin after the drain" same_devs "$vol" "$ORIGIN"
stash_remove "$vol"
assert_eq "$sum" "$(dd if="$ORIGIN" bs=1M count=40 iflag=direct status=none | sha256sum)" \
	"origin after removing the volume"
