#!/bin/bash
# desc: crash at every flush/FUA/mark point (dm-log-writes replay): fdatasync'd writes survive recovery, values stable through flush and removal
#
#   ram0 -> log-writes (log on ram1) -> linear (cache, 4 MiB)  \
#                                    -> linear (origin, 16 MiB) -> stash
#
# dm-log-writes records every write to the cache and the origin in one total
# order, a write only once a flush covers it (or at once for FUA): replaying
# the log up to a FLUSH, FUA or MARK entry gives the disk as a power cut
# right after that entry would leave it, with every write not yet flushed
# lost.  crashio writes 8 MiB of the origin at random with plain O_DIRECT,
# fdatasync()s every 8 writes and then puts a mark "f<k>" into the log.
# For each point (a sample, or all with STASH_LONG=1) the log is replayed
# onto a zeroed ram2, the linears are made on it, the stash recovers, and
# crashio check verifies: every write covered by an fdatasync whose mark
# precedes the point reads back (or a later write of that block), every
# block holds a value once written to it or zero; the values stay the same
# after a full flush and on the origin alone after removing the cache.
#
# STASH_LW_POINTS: how many points to sample (default 20, plus the last);
# STASH_LONG=1: all of them.  STASH_SEED repeats a run.
# While recording, writes to the cache are delayed by STASH_CACHE_DELAY_MS
# (default 20, 0: none) with a dm-delay above log-writes: commits complete
# late, so that an fdatasync acknowledged before its commit is written
# shows up as a mark logged before the commit.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup

rand_seed
brd_setup 3 32768
backing=/dev/ram0 logdev=/dev/ram1 replay=/dev/ram2
cache_sectors=8192		# 4 MiB
origin_sectors=32768		# 16 MiB
blocks=2048			# the writer's range: 8 MiB of the origin
writes=${STASH_LW_WRITES:-800}
every=8
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
lw=${STASH_DM_PREFIX}lw

# stack BASE [DELAY_MS]: cache and origin linears on BASE; sets CACHE and
# ORIGIN.  With DELAY_MS, writes to the cache go through a dm-delay of that
# many milliseconds (above log-writes: commits complete late, so marks can
# fall inside them).
stack() {
	linear_create lw-cache "$1" 0 $cache_sectors
	CACHE=$LINEAR_DEV
	if [ "${2:-0}" -gt 0 ]; then
		dm_create lw-cdelay "0 $cache_sectors delay $CACHE 0 0 $CACHE 0 $2" ||
			die "cannot create dm-delay"
		CACHE=$(dm_path lw-cdelay)
	fi
	linear_create lw-origin "$1" $cache_sectors $origin_sectors
	ORIGIN=$LINEAR_DEV
}

unstack() {
	dm_remove_name lw-origin
	dm_exists "${STASH_DM_PREFIX}lw-cdelay" && dm_remove_name lw-cdelay
	dm_remove_name lw-cache
}

log "record: $writes writes, fdatasync every $every"
zero_dev "$logdev" 1
dm_create lw "0 $((cache_sectors + origin_sectors)) log-writes $backing $logdev" ||
	die "cannot create log-writes"
stack "$(dm_path lw)" "${STASH_CACHE_DELAY_MS:-20}"
kmsg_mark
pstash_create lwc "$ORIGIN" "$CACHE" writeback
assert_ok "logged writer" crashio write -d "$STASH_DEV" -n $blocks -s "$SEED" \
	-l "$tmp/log" -c "$writes" -f $every -m "$lw"
log "after the writes: $(dmsetup status "$STASH_DEV" | cut -d' ' -f4-)"
stash_remove "$STASH_DEV"
unstack
dm_remove_name lw
if kmsg_since | grep -q 'log-writes.*Ran out of space'; then
	die "the log device is too small"
fi

replay_log --log "$logdev" --list >"$tmp/entries" || die "cannot read the log"
replay_log --log "$logdev" --points >"$tmp/points" || die "cannot list the points"
nentries=$(wc -l <"$tmp/entries")
npoints=$(wc -l <"$tmp/points")
log "log: $nentries entries, $(grep -c ' FLUSH' "$tmp/entries") flush, $(grep -c 'FUA' "$tmp/entries") FUA, $(grep -c ' MARK ' "$tmp/entries") mark entries; $npoints points"
grep -q ' MARK .* f1$' "$tmp/entries" || die "no fdatasync mark in the log"

# The points to check: all with STASH_LONG=1, else a sample spread over
# the log (random offset) plus the last.
if [ "${STASH_LONG:-0}" = 1 ]; then
	cp "$tmp/points" "$tmp/chosen"
else
	n=${STASH_LW_POINTS:-20}
	awk -v n="$n" -v off=$((RANDOM % 1000)) '
		{ p[NR] = $1 }
		END {
			if (NR <= n) { for (i = 1; i <= NR; i++) print p[i]; exit }
			for (i = 0; i < n; i++) print p[1 + int((i + off / 1000) * NR / n)]
			print p[NR]
		}' "$tmp/points" | sort -n -u >"$tmp/chosen"
fi

# fsyncs_before N: the number of fdatasync marks at entries 0..N.
fsyncs_before() {
	awk -v n="$1" '$1 <= n && $2 == "MARK" && $5 ~ /^f[0-9]+$/ { k = substr($5, 2) + 0 }
		END { print k + 0 }' "$tmp/entries"
}

checked=0
while read -r point; do
	k=$(fsyncs_before "$point")
	log "--- point $point ($(awk -v n="$point" '$1 == n { print $2 }' "$tmp/entries")), $k fdatasyncs done"
	replay_log --log "$logdev" --replay "$replay" --limit "$point" --zero ||
		die "replay to entry $point failed"
	stack "$replay"
	pstash_create lwc "$ORIGIN" "$CACHE" writeback
	assert_status_sane "$STASH_DEV"
	log "recovered: $(dmsetup status "$STASH_DEV" | cut -d' ' -f4-9)"
	assert_ok "point $point: after recovery" \
		crashio check -d "$STASH_DEV" -l "$tmp/log" -F "$k" -D "$tmp/dump"
	wait_clean "$STASH_DEV"
	assert_ok "point $point: after a full flush" \
		crashio check -d "$STASH_DEV" -l "$tmp/log" -F "$k" -C "$tmp/dump"
	stash_remove "$STASH_DEV"
	assert_ok "point $point: on the origin alone" \
		crashio check -d "$ORIGIN" -l "$tmp/log" -F "$k" -C "$tmp/dump"
	unstack
	checked=$((checked + 1))
done <"$tmp/chosen"
log "ok: $checked of $npoints crash points checked"
