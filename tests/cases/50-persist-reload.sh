#!/bin/bash
# desc: persistent write-back: dirty blocks survive remove and reload (same mappings and dirty set in stashctl dump), read as hits, reach the origin only on flush
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup
require_cmd fio

# ram0: cache, ram1: origin (64 MiB each).
brd_setup 2 65536
cache=/dev/ram0 origin=/dev/ram1
opts=(writeback high_watermark 100 idle_ms 0)
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_seed
nios=400

# fio_job ARGS: the same random 4 KiB blocks every time (seeded, each block
# at most once), with crc32c verify headers.
fio_job() {
	fio --name=persist --rw=randwrite --bs=4k --size=64M --number_ios=$nios \
		--randseed="$SEED" --direct=1 --ioengine=psync --verify=crc32c \
		--verify_fatal=1 --verify_state_save=0 "$@"
}

# The origin starts with "old" data everywhere.
dd if=/dev/urandom of="$tmp/old" bs=1M count=64 status=none
dd if="$tmp/old" of="$origin" bs=1M oflag=direct status=none
# origin_is_old: the origin (read directly) still holds only the old data.
origin_is_old() {
	cmp -s <(dd if="$origin" bs=1M iflag=direct status=none) "$tmp/old"
}

log "write $nios random blocks through a new persistent write-back cache"
pstash_create reload "$origin" "$cache" "${opts[@]}"
assert_eq persistent "$(st "$STASH_DEV" metadata)" "metadata state"
assert_ok "fio write" fio_job --filename="$STASH_DEV" --do_verify=0 \
	--write_iolog="$tmp/iolog"
# The origin blocks fio wrote, sorted ("[time] file write offset length":
# version 3 of the log has the time first).
awk '{ for (i = 1; i < NF; i++) if ($i == "write") { print $(i + 1) / 4096; break } }' \
	"$tmp/iolog" | sort -n >"$tmp/written"
assert_eq "$nios" "$(wc -l <"$tmp/written")" "writes in fio's I/O log"
dirty=$(st "$STASH_DEV" dirty)
used=$(used_blocks "$STASH_DEV")
log "before remove: dirty=$dirty used=$used commits=$(st "$STASH_DEV" commits)"
assert_eq "$nios" "$dirty" "dirty blocks after $nios single-block writes"
assert_eq "$nios" "$used" "used cache blocks after $nios writes"
assert_ok "the origin has none of the new data before the remove" origin_is_old

stash_remove "$STASH_DEV"
assert_ok "removing a persistent cache writes nothing back" origin_is_old

log "stashctl dump and check of the removed cache"
md_check "$cache" 0 "clean: $nios valid blocks, $nios dirty"
md_dump "$cache" "$tmp/dump1"
assert_eq true "$(jq .superblock.clean_shutdown "$tmp/dump1")" "dump: clean shutdown"
assert_eq "$used" "$(jq .valid_blocks "$tmp/dump1")" "dump: valid blocks"
assert_eq "$dirty" "$(jq .dirty_blocks "$tmp/dump1")" "dump: dirty blocks"
assert_eq "$(cat "$tmp/written")" \
	"$(jq -r '.mappings[] | select(.dirty) | .oblock' "$tmp/dump1" | sort -n)" \
	"dump: the dirty origin blocks are those fio wrote"

log "create again: the metadata is loaded"
kmsg_mark
pstash_create reload "$origin" "$cache" "${opts[@]}"
kmsg_since | grep 'stash' || true
assert_match "loaded $nios blocks \\($nios dirty\\) after a clean shutdown" \
	"$(kmsg_since)" "kernel message after the reload"
assert_eq "$dirty" "$(st "$STASH_DEV" dirty)" "dirty blocks after the reload"
assert_eq "$used" "$(used_blocks "$STASH_DEV")" "used cache blocks after the reload"
assert_status_sane "$STASH_DEV"
hits0=$(st "$STASH_DEV" read_hits) misses0=$(st "$STASH_DEV" read_misses)
assert_ok "fio verify through the reloaded cache" \
	fio_job --filename="$STASH_DEV" --verify_only
hits=$(st "$STASH_DEV" read_hits) misses=$(st "$STASH_DEV" read_misses)
log "reads: hits $hits0 -> $hits, misses $misses0 -> $misses"
assert_eq "$misses0" "$misses" "read misses while reading the reloaded blocks"
[ $((hits - hits0)) -ge "$nios" ] ||
	die "only $((hits - hits0)) read hits for $nios reloaded blocks"
assert_ok "the origin is still old after reading" origin_is_old

log "remove again: the same mappings and dirty set on the cache device"
stash_remove "$STASH_DEV"
md_dump "$cache" "$tmp/dump2"
assert_eq "$(md_mappings "$tmp/dump1")" "$(md_mappings "$tmp/dump2")" \
	"mappings and dirty flags before and after the reload"
[ "$(jq .superblock.seq "$tmp/dump2")" -gt "$(jq .superblock.seq "$tmp/dump1")" ] ||
	die "the reload committed nothing (sequence $(jq .superblock.seq "$tmp/dump2"))"
pstash_create reload "$origin" "$cache" "${opts[@]}"

log "flush: the origin gets the data"
wait_clean "$STASH_DEV"
assert_eq "$used" "$(used_blocks "$STASH_DEV")" "used cache blocks after the flush"
assert_ok "fio verify on the origin after the flush" \
	fio_job --filename="$origin" --verify_only
assert_ok "fio verify through the cache after the flush" \
	fio_job --filename="$STASH_DEV" --verify_only
stash_remove "$STASH_DEV"

md_dump "$cache" "$tmp/dump3"
assert_eq 0 "$(jq .dirty_blocks "$tmp/dump3")" "dump after the flush: dirty blocks"
assert_eq "$(md_mappings "$tmp/dump1" | sed 's/ true$/ false/')" \
	"$(md_mappings "$tmp/dump3")" "dump after the flush: the same mappings, clean"

log "create again after the flush: nothing dirty, mappings kept"
pstash_create reload "$origin" "$cache" "${opts[@]}"
assert_eq 0 "$(st "$STASH_DEV" dirty)" "dirty blocks after flush and reload"
assert_eq "$used" "$(used_blocks "$STASH_DEV")" "used cache blocks after flush and reload"
assert_ok "fio verify through the cache after flush and reload" \
	fio_job --filename="$STASH_DEV" --verify_only
stash_remove "$STASH_DEV"
assert_ok "fio verify on the origin alone at the end" \
	fio_job --filename="$origin" --verify_only
log "ok"
