#!/bin/bash
# desc: write-back over a 10 ms origin with a working set 4x the cache: fio verify passes, dirty stays within the cache
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
stash_load_module

# Cache 8 MiB (2048 blocks), origin 32 MiB behind dm-delay 10 ms.
cache_setup 32 8
delay_create slow "$ORIGIN" 10
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
stash_create press "$DELAY_DEV" "$CACHE" writeback volatile
vol=$STASH_DEV
nr=$(total_blocks "$vol")

# Sample dirty= and writeback= while fio runs.
(
	while [ ! -e "$tmp/stop" ]; do
		dmsetup status "$vol" | tr ' ' '\n' | sed -n 's/^dirty=//p; s/^writeback=//p' |
			paste -sd' '
		sleep 0.2
	done
) >"$tmp/samples" &
sampler=$!
on_exit "touch $tmp/stop; wait $sampler"

assert_ok "fio randwrite verify, 2 jobs over the whole volume" run_fio press \
	--filename="$vol" --direct=1 --ioengine=libaio --iodepth=8 \
	--numjobs=2 --size=16M --offset_increment=16M --rw=randwrite --bs=4k \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 \
	--verify_state_save=0 --group_reporting
touch "$tmp/stop"
wait $sampler
st=$(status_line "$vol")
log "after fio: $st"
max_dirty=$(awk '{ if ($1 > m) m = $1 } END { print m + 0 }' "$tmp/samples")
max_wb=$(awk '{ if ($2 > m) m = $2 } END { print m + 0 }' "$tmp/samples")
log "$(wc -l <"$tmp/samples") samples: dirty up to $max_dirty, writeback up to $max_wb, of $nr blocks"
assert_ok "status sampled while fio ran" test "$(wc -l <"$tmp/samples")" -ge 5
assert_ok "dirty ($max_dirty) never above the cache size ($nr)" test "$max_dirty" -le "$nr"
assert_ok "writeback ($max_wb) never above the dirty maximum" test "$max_wb" -le "$max_dirty"
assert_ok "the cache filled past the high watermark ($max_dirty > $nr / 2)" \
	test $((max_dirty * 2)) -gt "$nr"
# Blocks beyond the cache reach the origin by writeback, or around a cache
# full of dirty blocks (bypassed).
wb=$(field_of "$st" written_back)
around=$(field_of "$st" bypassed)
assert_ok "written_back ($wb) + bypassed ($around) cover the volume beyond the cache" \
	test $((wb + around)) -ge $((4 * nr - nr))
assert_ne 0 "$(field_of "$st" evictions)" "evictions"
for k in cache_errors origin_errors writeback_errors; do
	assert_eq 0 "$(field_of "$st" $k)" "$k"
done

# Once drained, the origin holds the verified data.
drain "$vol"
stash_remove "$vol"
assert_ok "origin holds the verified data" fio_check "$DELAY_DEV" 32M --iodepth=32
