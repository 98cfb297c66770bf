#!/bin/bash
# desc: power cut (dm-flakey drop_writes under cache and origin at once) mid-write: every O_SYNC write survives recovery, values stable through flush and removal
#
# One brd, one dm-flakey over it, the cache and the origin as two dm-linear
# slices of the flakey device, a persistent write-back stash on top:
#
#   ram0 -> flakey -> linear (cache, 4 MiB)  \
#                  -> linear (origin, 16 MiB) -> stash writeback
#
# Two crashio writers (O_DIRECT|O_SYNC, disjoint halves of the origin) log
# each completed write.  At a random moment flakey switches to drop_writes:
# from then on nothing reaches the disk, for the cache and the origin at the
# same instant.  The writers go on a little, are killed, everything is torn
# down, and the stash is created again on linears straight on ram0
# (recovery).  Checked (crashio check):
#   - every write logged before the cut reads back (or a later write of the
#     same block), every block holds a value once written to it or zero
#     (invariants 2 and 3);
#   - the values stay the same after a full flush, and on the origin alone
#     after the cache is removed (invariant 3).
# The cache is small (about 1000 blocks for 4096 written), so writeback,
# eviction and slot reuse run during the writes.
#
# Iterations: 3, or STASH_CRASH_ITERATIONS, or 50 with STASH_LONG=1.
# Every second iteration delays writes to the cache by STASH_CACHE_DELAY_MS
# (default 20; 0: never) with a dm-delay above the cache slice: commits are
# slow and the cut lands inside them (this is what catches a write
# acknowledged before its commit is written); the other iterations run at
# full speed, so that writeback, eviction and slot reuse run before the cut.
# STASH_SEED repeats a run.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup

delay_every=${STASH_CACHE_DELAY_MS:-20}
iterations=${STASH_CRASH_ITERATIONS:-$([ "${STASH_LONG:-0}" = 1 ] && echo 50 || echo 3)}
rand_seed
brd_setup 1 32768
backing=/dev/ram0
cache_sectors=8192		# 4 MiB
origin_sectors=32768		# 16 MiB
half=2048			# blocks per writer
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
pids=()
on_exit 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done'

flakey_table() {
	local size=$((cache_sectors + origin_sectors))

	if [ "$1" = up ]; then
		echo "0 $size flakey $backing 0 1000 0"
	else
		echo "0 $size flakey $backing 0 0 1000 1 drop_writes"
	fi
}

# stack BASE [DELAY_MS]: cache and origin linears on BASE; sets CACHE and
# ORIGIN.  With DELAY_MS, writes to the cache go through a dm-delay of that
# many milliseconds first: commits are slow, and the cut finds them in
# flight (their writes still queued above the flakey device are lost).
stack() {
	linear_create pc-cache "$1" 0 $cache_sectors
	CACHE=$LINEAR_DEV
	if [ "${2:-0}" -gt 0 ]; then
		dm_create pc-cdelay "0 $cache_sectors delay $CACHE 0 0 $CACHE 0 $2" ||
			die "cannot create dm-delay"
		CACHE=$(dm_path pc-cdelay)
	fi
	linear_create pc-origin "$1" $cache_sectors $origin_sectors
	ORIGIN=$LINEAR_DEV
}

unstack() {
	dm_remove_name pc-origin
	dm_exists "${STASH_DM_PREFIX}pc-cdelay" && dm_remove_name pc-cdelay
	dm_remove_name pc-cache
}

stash_up() {
	pstash_create pc "$ORIGIN" "$CACHE" writeback
}

iteration() {
	local it=$1 seed cut_ms w0 w1 p delay_ms

	seed=$((SEED * 1000 + it))
	delay_ms=$((it % 2 ? 0 : delay_every))

	log "=== iteration $it (writer seeds ${seed}0, ${seed}1, cache write delay ${delay_ms} ms)"
	zero_dev "$backing" $(((cache_sectors + origin_sectors) / 2048))
	dm_create pc-flakey "$(flakey_table up)" || die "cannot create flakey"
	stack "$(dm_path pc-flakey)" "$delay_ms"
	stash_up

	pids=()
	for w in 0 1; do
		# The binary itself in the background (not the shell function):
		# $! must be the writer, which is killed below.
		"$PERSIST_TOOLS/crashio" write -S -d "$STASH_DEV" -n $half \
			-o $((w * half)) -s "$seed$w" -l "$tmp/log$w" &
		pids+=($!)
	done
	cut_ms=$((1000 + RANDOM % 3001))
	sleep "$(awk -v m=$cut_ms 'BEGIN { printf "%.3f", m / 1000 }')"
	# Writes logged before the cut are durable: crashio counts them and
	# switches flakey to drop_writes right after.
	crashio cut "$STASH_DM_PREFIX"pc-flakey "$(flakey_table down)" \
		"$tmp/log0" "$tmp/log1" >"$tmp/cut" || die "cannot cut the power"
	{ read -r w0; read -r w1; } <"$tmp/cut"
	log "power cut after ${cut_ms} ms: $w0 + $w1 writes logged; $(dmsetup status "$STASH_DEV" | cut -d' ' -f4-9)"
	sleep 0.5
	for p in "${pids[@]}"; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	pids=()
	[ "$w0" -gt 0 ] && [ "$w1" -gt 0 ] || die "the writers made no progress before the cut"

	# Tear down the "dead" machine; its last commits went nowhere.
	if ! dmsetup remove "$STASH_DEV"; then
		dmsetup remove --force "$STASH_DEV" || die "cannot remove the stash"
	fi
	unstack
	dm_remove_name pc-flakey

	log "recovery on the disk as the cut left it"
	stack "$backing"
	kmsg_mark
	stash_up
	kmsg_since | grep -E 'stash' || true
	assert_status_sane "$STASH_DEV"
	log "after recovery: $(dmsetup status "$STASH_DEV" | cut -d' ' -f4-9)"
	assert_ok "writer 0 after recovery" crashio check -d "$STASH_DEV" -l "$tmp/log0" -w "$w0" -D "$tmp/dump0"
	assert_ok "writer 1 after recovery" crashio check -d "$STASH_DEV" -l "$tmp/log1" -w "$w1" -D "$tmp/dump1"

	wait_clean "$STASH_DEV"
	assert_ok "writer 0 after flush" crashio check -d "$STASH_DEV" -l "$tmp/log0" -w "$w0" -C "$tmp/dump0"
	assert_ok "writer 1 after flush" crashio check -d "$STASH_DEV" -l "$tmp/log1" -w "$w1" -C "$tmp/dump1"
	stash_remove "$STASH_DEV"
	assert_ok "writer 0 on the origin alone" crashio check -d "$ORIGIN" -l "$tmp/log0" -w "$w0" -C "$tmp/dump0"
	assert_ok "writer 1 on the origin alone" crashio check -d "$ORIGIN" -l "$tmp/log1" -w "$w1" -C "$tmp/dump1"
	unstack
}

for ((i = 1; i <= iterations; i++)); do
	iteration "$i"
done
log "ok: $iterations power cuts"
