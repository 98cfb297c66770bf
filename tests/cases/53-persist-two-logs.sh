#!/bin/bash
# desc: power cuts with the cache and the origin each behind its own volatile write cache and log (two dm-log-writes): fdatasync'd writes survive, values stable, every mode, commits that split
#
#   null_blk s53org (write cache) -> log-writes lwo (log: s53olog) -> origin \
#   null_blk s53cch (write cache) -> log-writes lwc (log: s53clog) -> cache  -> stash
#
# Test 52 logs the cache and the origin through ONE dm-log-writes device:
# one history, one write cache, so a flush of the cache also makes the
# origin's writes durable.  Real disks each have their own: a completed
# write is durable only after that disk's next completed FLUSH (or if it
# was FUA).  Here each is a memory-backed null_blk with its own volatile
# write cache (queue/write_cache "write back"), under its own log-writes
# device.  dm-log-writes logs a write only once a flush of ITS device
# covers it (or at once if FUA), so replaying a log up to entry N gives
# that disk as a power cut there leaves it, every unflushed write lost.
#
# Instants.  crashio writes the volume (4 KiB O_DIRECT writes at random
# over a range, fdatasync every 8 writes, every 5th other write O_DSYNC)
# and marks both logs at once after every write ("w<q>"), O_DSYNC write
# ("d<k>") and fdatasync ("f<k>"); the writer issues nothing while it
# marks (background writeback and commits do run).  It marks the CACHE's
# log first, then the ORIGIN's.  A commit records a block clean only
# after an origin flush has completed (and a write-through or write-around
# write completes only once the origin has it), so whatever the cache
# state at its mark relies on the origin for was flushed before the
# cache's mark, hence before the origin's: a cut whose origin side is a
# little later than its cache side is a state a real power cut can
# produce.  The reverse order is not (the cache could record a block
# clean whose origin flush lands between the two marks).  A mark name in
# both logs is an instant; its crash state is each log replayed, onto its
# own zeroed device, up to that mark's entry in that log.
#
# States of an instant: "exact" (each log up to its mark); "subset": each
# log also keeps a random half of the writes logged after its mark up to
# its next FLUSH entry (completed around the instant, not yet flushed: a
# write cache may have kept any of them); "tear": the cache's log also
# tears one write of that range inside the metadata area (a superblock or
# page copy partly written, at 512-byte granularity: recovery must fall
# back to the other copy), the origin's keeps a random subset.  User data
# is not torn (crashio would call that corruption, rightly for durable
# data, but an in-flight write may tear on a real disk).
#
# Check of a state (crashio verify, one process per state: dmsetup and a
# process per step cost seconds under emulation): the volume recovers on
# the replayed devices, every write an fdatasync or O_DSYNC write whose
# mark precedes the instant covers reads back (or a later write of its
# block), every block holds a value once written to it or zero; the
# values are the same after a full flush (drain) and on the origin alone
# after removing the volume.  A volatile cache keeps nothing: its device
# is not replayed (a flush drains dirty blocks to the origin first), only
# the origin's log matters.
#
# Each recording ends with marks "s0", the volume's removal (its suspend
# commits) and "s1".  The cache log's FLUSH and FUA entries between them
# are crash points too ("suspend points"), each paired with the origin's
# log replayed to its s1 mark.  Why s1: a suspend's commit flushes the
# origin (for the blocks it records clean) while it runs, after s0, so
# the origin at s0 is not a valid partner.  The origin at s1 has every
# origin flush any of the suspend's commits relied on; what else it holds
# over the origin at the crash point are writes that had completed
# before that point (a crash may keep any of them) and data the cache
# wrote back (the cache's own data).  The log's END only adds the writes
# no flush ever covered (dm-log-writes logs them when it is removed,
# after s1): a partner that keeps all of them, the mildest choice; s1
# loses them, and the subset states keep a random half.
#
# Variants (each a sub-run with its own logs): writeback persistent
# (watermarks 1/0: writeback runs all the time) and volatile,
# writethrough and writearound, persistent and volatile; before every 3rd
# fdatasync the writer drains the volume ("flush" message, then waits for
# dirty=0): a block written, written back, then fdatasync'd, whose origin
# copy must be flushed before a commit records it clean.  "scale": a
# persistent writeback cache of 640 MiB (163198 slots, 320 metadata
# pages: more than one commit's 256), commit_ms 60000.  Slots are taken
# from the front of the cache, so using slots in every page would take
# 510 MiB of writes; instead, after formatting, stash-md seed-clean
# records 8 clean mappings in every page (origin blocks 0..2559 of the
# range, never written: cache slot and origin both read zeros, so the
# mappings are true).  After the first writes, "invalidate" (between
# marks i0 and i1) frees them all, every page changes, and the freed
# slots go to the head of the free list, the highest first; 2000 more
# writes (no fdatasync) take them, from the last pages down; the
# removal's suspend then commits all 320 pages in two commits.  Half of
# its instants are sampled before the invalidate, half after.
#
# Replay.  The states go in log order; one replay device per log (the
# "base") holds the log up to the current state's entry and only moves
# forward (replay-log --from: each entry is written once per variant, not
# once per state; --index: no header is read twice), and a state is a
# non-persistent dm-snapshot of each base: its subset or tear writes and
# the recovery's own writes go to the snapshot, which is dropped after
# the check.  At the end of each variant the bases must equal a full
# replay of their logs (same_as_full: catches a base that skipped or
# repeated entries; the scale variant's cache only in long mode).  The
# states are checked by STASH_53_JOBS checkers at once (default: one per
# CPU, at most 2), each with its own bases, snapshots and volume, on its
# own consecutive part of the list.
#
# STASH_LONG=1: 1200 writes per variant ("scale": 240, then 4000 after
# the invalidate), every mark checked exact, and 1000 subset or tear
# states at marks spread evenly; default: 240 writes (then 2000) and 30
# marks per variant, each exact, subset or tear at random, plus the
# suspend points.  The writer ends with 3 writes no fdatasync covers (the
# volume is removed with them).  STASH_53_VARIANTS (a list),
# STASH_53_INSTANTS (marks sampled; 0: all), STASH_53_BETWEEN (subset or
# tear states besides every mark when STASH_53_INSTANTS is 0),
# STASH_53_WRITES and STASH_53_SCALE_WRITES override; STASH_SEED repeats
# a run; STASH_53_SAVE=1 keeps the logs' listings in $STASH_OUT/53.  A
# failing state does not stop the run: every state is checked and the
# failures are listed at the end.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../persist-lib.sh"
. "$(dirname "$0")/../lib-fault.sh"
persist_setup
rand_seed

if [ "${STASH_LONG:-0}" = 1 ]; then
	instants=${STASH_53_INSTANTS:-0}
	between=${STASH_53_BETWEEN:-1000}
	writes=${STASH_53_WRITES:-1200}
	scale_writes=${STASH_53_SCALE_WRITES:-4000}	# after the invalidate (before: 240)
else
	instants=${STASH_53_INSTANTS:-30}
	between=${STASH_53_BETWEEN:-0}
	writes=${STASH_53_WRITES:-240}
	scale_writes=${STASH_53_SCALE_WRITES:-2000}
fi
variants=${STASH_53_VARIANTS:-wb-persist wb-volatile wt-persist wt-volatile wa-persist wa-volatile scale}
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

# The devices: recorded ones with a write cache, logs and replay targets
# without; all discard (to zero them and free their memory).
nullb_setup s53org 32 4 1; org=$NULLB_DEV
nullb_setup s53cch 4 4 1; cch=$NULLB_DEV
nullb_setup s53big 640 16 1; big=$NULLB_DEV
nullb_setup s53olog 1024 0 1; olog=$NULLB_DEV
nullb_setup s53clog 1024 0 1; clog=$NULLB_DEV
# Per checker (jobs, see below): the bases, the snapshots' exception
# stores (ccow also the scratch device of same_as_full).
jobs=${STASH_53_JOBS:-$(($(nproc) < 2 ? $(nproc) : 2))}
for ((w = 0; w < jobs; w++)); do
	nullb_setup s53rorg$w 32 0 1; RORG[w]=$NULLB_DEV
	nullb_setup s53rcch$w 4 0 1; RCCH[w]=$NULLB_DEV
	nullb_setup s53rbig$w 640 0 1; RBIG[w]=$NULLB_DEV
	nullb_setup s53ocow$w 36 0 1; OCOW[w]=$NULLB_DEV
	nullb_setup s53ccow$w 644 0 1; CCOW[w]=$NULLB_DEV
done
# Before the null_blks go (on_exit runs last registered first).
on_exit dm_cleanup_all
log "write caches (queue/write_cache): $(for d in "$org" "$cch" "$big"; do
	printf '%s: %s; ' "${d#/dev/}" "$(cat "/sys/block/${d#/dev/}/queue/write_cache")"; done)"
failures=$tmp/failures
: >"$failures"

# variant NAME: set the variant's parameters.
variant() {
	mode='' opts=() volatile=0 scale=0 cache=$cch range=1536 nwrites=$writes
	case $1 in
	wb-persist) mode=writeback opts=(high_watermark 1 low_watermark 0) ;;
	# 'format': a volatile table refuses a device that holds a dm-stash
	# cache (the persistent variant before it, or its replay).
	wb-volatile) mode=writeback opts=(volatile format high_watermark 1 low_watermark 0) volatile=1 ;;
	wt-persist) mode=writethrough ;;
	wt-volatile) mode=writethrough opts=(volatile format) volatile=1 ;;
	wa-persist) mode=writearound ;;
	wa-volatile) mode=writearound opts=(volatile format) volatile=1 ;;
	# Its first writes hit seeded blocks all over the cache: every commit
	# writes up to 256 pages (8 KiB of log each), so they stay few.
	scale) mode=writeback opts=(commit_ms 60000) scale=1 cache=$big range=4096
		nwrites=$((writes < 240 ? writes : 240)) ;;
	*) die "unknown variant $1" ;;
	esac
	# The replay tables are written here: they need 'checksum' as well.
	if [ "${STASH_CHECKSUM:-0}" = 1 ]; then
		opts+=(checksum)
	fi
}

# record NAME: the variant's run, logged; leaves $tmp/NAME.{log,clist,olist}.
record() {
	local v=$1 wlog=$tmp/$1.log seeded

	log "=== $v: record ($mode${opts[*]:+, ${opts[*]}}, $nwrites + 3 writes over $range blocks)"
	blkdiscard "$org" || die "cannot discard $org"
	blkdiscard "$cache" || die "cannot discard $cache"
	kmsg_mark
	dm_create lwo "0 $(dev_sectors "$org") log-writes $org $olog" ||
		die "cannot create the origin's log-writes device"
	dm_create lwc "0 $(dev_sectors "$cache") log-writes $cache $clog" ||
		die "cannot create the cache's log-writes device"
	if [ $scale = 1 ]; then
		# Format, then clean mappings in every page (see the top).
		pstash_create v53 "$(dm_path lwo)" "$(dm_path lwc)" $mode "${opts[@]}"
		stash_remove "$STASH_DEV"
		seeded=$(stash_md seed-clean "$(dm_path lwc)" 8 0) || die "seed-clean failed"
		log "seeded $seeded clean mappings, 8 in each metadata page"
	fi
	pstash_create v53 "$(dm_path lwo)" "$(dm_path lwc)" $mode "${opts[@]}"
	assert_ok "$v: logged writer" crashio write -d "$STASH_DEV" -n $range -s "$SEED" \
		-l "$wlog" -c $((nwrites + 3)) -f 8 -y 5 -W -m "${STASH_DM_PREFIX}lwc" \
		-m "${STASH_DM_PREFIX}lwo" -b "${STASH_DM_PREFIX}v53" -B 3
	if [ $scale = 1 ]; then
		log "after the first writes: $(dmsetup status "$STASH_DEV" | cut -d' ' -f4-9)"
		lw_mark i0 lwc lwo
		dmsetup message "$STASH_DEV" 0 invalidate || die "invalidate failed"
		lw_mark i1 lwc lwo
		assert_ok "$v: logged writer after invalidate" crashio write -A -d "$STASH_DEV" \
			-l "$wlog" -c "$scale_writes" -f 1000000000 -W \
			-m "${STASH_DM_PREFIX}lwc" -m "${STASH_DM_PREFIX}lwo"
	fi
	log "before removal: $(dmsetup status "$STASH_DEV" | cut -d' ' -f4-)"
	lw_mark s0 lwc lwo
	stash_remove "$STASH_DEV"
	lw_mark s1 lwc lwo
	dm_remove_name lwc
	dm_remove_name lwo
	lw_check_space
	replay_log --log "$clog" --list >"$tmp/$v.clist" || die "cannot read the cache log"
	replay_log --log "$olog" --list >"$tmp/$v.olist" || die "cannot read the origin log"
	log "cache log: $(wc -l <"$tmp/$v.clist") entries, $(grep -c FLUSH "$tmp/$v.clist") flush," \
		"$(grep -c FUA "$tmp/$v.clist") FUA; origin log: $(wc -l <"$tmp/$v.olist") entries," \
		"$(grep -c FLUSH "$tmp/$v.olist") flush, $(grep -c FUA "$tmp/$v.olist") FUA"
	grep -qE ' MARK .* f[0-9]+$' "$tmp/$v.olist" || die "$v: no fdatasync mark in the origin log"
	if [ $volatile = 0 ]; then
		md_dump "$cache" "$tmp/$v.md.json"
		data_start=$(jq -r .superblock.data_start "$tmp/$v.md.json")
		log "last commit $(jq -r .superblock.seq "$tmp/$v.md.json"), metadata area" \
			"0..$data_start, $(jq -r .superblock.md_pages "$tmp/$v.md.json") pages"
	fi
}

# sample N: N lines of stdin spread evenly (random offset), the last among
# them; all if N is 0 or there are no more.
sample() {
	awk -v n="$1" -v off=$((RANDOM % 1000)) '
		{ l[NR] = $0 }
		END {
			if (!n || NR <= n) { for (i = 1; i <= NR; i++) print l[i]; exit }
			if (n == 1) { print l[NR]; exit }
			for (i = 0; i < n - 1; i++) print l[1 + int((i + off / 1000) * (NR - 1) / (n - 1))]
			print l[NR]
		}' | uniq
}

# states NAME: the states to check, one a line: "LABEL CACHE_ENTRY
# ORIGIN_ENTRY SYNCS KIND" (CACHE_ENTRY "-" for a volatile cache).
states() {
	local v=$1 oend total

	# Instants: marks of both logs (of the origin's only for a volatile
	# cache), in order, with the number of sync points before them.
	awk -v vol=$volatile '
		NR == FNR { if ($2 == "MARK") c[$5] = $1; next }
		$2 == "MARK" && $5 ~ /^[wfdis][0-9]+$/ {
			if ($5 ~ /^[fd][0-9]+$/) k = substr($5, 2) + 0
			if (vol) print $5, "-", $1, k + 0
			else if ($5 in c) print $5, c[$5], $1, k + 0
		}' "$tmp/$v.clist" "$tmp/$v.olist" >"$tmp/$v.instants"
	# A sample spread over the run (random offset), with the last; for
	# "scale", half of it before the invalidate (where the fdatasyncs
	# are) and half after.
	if grep -q '^i0 ' "$tmp/$v.instants"; then
		sed '/^i0 /q' "$tmp/$v.instants" >"$tmp/$v.part1"
		sed '1,/^i0 /d' "$tmp/$v.instants" >"$tmp/$v.part2"
		{
			sample $((instants / 2)) <"$tmp/$v.part1"
			sample $((instants - instants / 2)) <"$tmp/$v.part2"
		} >"$tmp/$v.chosen"
	else
		sample "$instants" <"$tmp/$v.instants" >"$tmp/$v.chosen"
	fi
	if [ "$instants" = 0 ]; then
		# Every mark exact; $between subset or tear states at marks
		# spread evenly (a mark twice if there are more than marks).
		sed 's/$/ exact/' "$tmp/$v.chosen"
		awk -v n="$between" -v off=$((RANDOM % 1000)) '
			{ l[NR] = $0 }
			END { for (i = 0; i < n && NR; i++) print l[1 + int((i + off / 1000) * NR / n)] }' \
			"$tmp/$v.instants" |
		while read -r name ce oe k; do
			if [ $((RANDOM % 10)) -lt 6 ] || [ $volatile = 1 ]; then kind=subset
			else kind=tear
			fi
			echo "$name $ce $oe $k $kind"
		done
	else
		while read -r name ce oe k; do
			r=$((RANDOM % 10))
			if [ $r -lt 5 ]; then kind=exact
			elif [ $r -lt 8 ] || [ $volatile = 1 ]; then kind=subset
			else kind=tear
			fi
			echo "$name $ce $oe $k $kind"
		done <"$tmp/$v.chosen"
	fi
	[ $volatile = 1 ] && return 0
	# Suspend points: the cache's FLUSH/FUA entries between s0 and s1,
	# with the origin at its s1 mark (see the top).
	oend=$(awk '$1 == "s1" { print $3 }' "$tmp/$v.instants")
	total=$(awk '$1 == "s1" { print $4 }' "$tmp/$v.instants")
	[ -n "$oend" ] || die "$v: no s1 mark in the logs"
	awk '$2 == "MARK" && $5 == "s0" { on = 1; next }
		$2 == "MARK" && $5 == "s1" { on = 0 }
		on && $2 ~ /FLUSH|FUA/ { print $1 }' "$tmp/$v.clist" |
	while read -r ce; do
		echo "susp@$ce $ce $oend $total exact"
		if [ $scale = 1 ]; then
			echo "susp@$ce $ce $oend $total subset"
			echo "susp@$ce $ce $oend $total tear"
		elif [ $((RANDOM % 2)) = 0 ]; then
			echo "susp@$ce $ce $oend $total subset"
		else
			echo "susp@$ce $ce $oend $total tear"
		fi
	done
}

# base LOG DEV CUR ENTRY: bring DEV, which holds LOG's entries 0..CUR
# (-1: unknown), to entries 0..ENTRY: replay only the entries after CUR
# when ENTRY is not before it (states go in log order: each entry is
# written once per variant), else all of them onto the discarded device.
# $tmp/$v.LOGNAME.idx: where each entry starts (replay-log --index).
base() {
	local log=$1 dev=$2 cur=$3 entry=$4

	if [ "$cur" -ge 0 ] && [ "$entry" -ge "$cur" ]; then
		[ "$entry" = "$cur" ] && return 0
		replay_log --log "$log" --replay "$dev" --limit "$entry" --from $((cur + 1)) \
			--index "$tmp/$v.${log##*/}.idx"
	else
		replay_log --log "$log" --replay "$dev" --limit "$entry" --discard
	fi 2>>"$tmp/replay$w.out" || die "replay of $log to $entry failed: $(cat "$tmp/replay$w.out")"
	echo >>"$tmp/replay$w.out"
}

# snap_table BASE COW: the table of a throw-away view of BASE (a
# non-persistent dm-snapshot, its changes in COW): the state's extra
# writes and the recovery's own writes go there, BASE stays as the log
# left it.
snap_table() {
	echo "0 $(dev_sectors "$1") snapshot $1 $2 N 8"
}

# check_state NAME LABEL CACHE_ENTRY ORIGIN_ENTRY SYNCS KIND (the loop of
# the test: forks only what it must).  The bases $rorg and $rcache follow
# the states (cur_o, cur_c: the entries they hold); a state is a snapshot
# of each, with a subset or tear state's extra writes on top.
check_state() {
	local v=$1 label=$2 ce=$3 oe=$4 k=$5 kind=$6 copt=() oopt=() out rc persist=() line
	local snaps=("${STASH_DM_PREFIX}v53so$w" "$osnap_table") name creates=()

	case $kind in
	subset) copt=(--subset $RANDOM); oopt=(--subset $RANDOM) ;;
	tear) copt=(--tear $RANDOM --tear-range "0:$data_start"); oopt=(--subset $RANDOM) ;;
	esac
	out=$tmp/state$w.out
	: >"$tmp/replay$w.out"
	t_a=$EPOCHREALTIME
	base "$olog" "$rorg" "$cur_o" "$oe"
	cur_o=$oe
	if [ $volatile = 0 ]; then
		persist=(-p)
		base "$clog" "$rcache" "$cur_c" "$ce"
		cur_c=$ce
		snaps+=("${STASH_DM_PREFIX}v53sc$w" "$csnap_table")
	fi
	# The snapshots: for an exact state verify creates them (a process
	# less), else they are made first and the extra writes go on them.
	if [ $kind = exact ]; then
		creates=(-c "${snaps[0]} ${snaps[1]}" ${snaps[2]:+-c "${snaps[2]} ${snaps[3]}"})
	else
		crashio dm "${snaps[@]}" || die "cannot create the snapshots"
		[ $volatile = 1 ] || replay_log --log "$clog" --replay "/dev/mapper/${snaps[2]}" \
			--limit "$ce" --from $((ce + 1)) --index "$tmp/$v.${clog##*/}.idx" \
			"${copt[@]}" 2>>"$tmp/replay$w.out" ||
			die "replay after the cache log's $ce failed: $(cat "$tmp/replay$w.out")"
		replay_log --log "$olog" --replay "/dev/mapper/${snaps[0]}" --limit "$oe" \
			--from $((oe + 1)) --index "$tmp/$v.${olog##*/}.idx" "${oopt[@]}" \
			2>>"$tmp/replay$w.out" ||
			die "replay after the origin log's $oe failed: $(cat "$tmp/replay$w.out")"
	fi
	t_b=$EPOCHREALTIME
	# -r: the snapshots go too, the cache's first (it is the volume's).
	crashio verify -N "${STASH_DM_PREFIX}v53r$w" -t "$rtable" -O "/dev/mapper/${snaps[0]}" \
		-l "$tmp/$v.log" -F "$k" -R 32 "${persist[@]}" "${creates[@]}" \
		${snaps[2]:+-r "${snaps[2]}"} -r "${snaps[0]}" >"$out" 2>&1
	rc=$?
	t_c=$EPOCHREALTIME
	us_replay=$((us_replay + ${t_b/./} - ${t_a/./}))
	us_verify=$((us_verify + ${t_c/./} - ${t_b/./}))
	if [ $rc != 0 ] && [ $rc != 1 ]; then
		dmesg | tail -n 15 | sed 's/^/    kernel: /' >>"$out"
		for name in "${STASH_DM_PREFIX}v53r$w" "${snaps[2]}" "${snaps[0]}"; do
			[ -n "$name" ] && dm_exists "$name" && dmsetup remove --retry "$name"
		done
	fi
	if [ $rc = 0 ]; then
		read -r line <"$out"
		[[ $line =~ (cache_blocks=[^ ]+ dirty=[^ ]+) ]]
		echo "  ok   $label ($kind, $k syncs): recovered ${BASH_REMATCH[1]}"
		return 0
	fi
	echo "  FAIL $label ($kind, $k syncs; cache entry $ce, origin entry $oe):"
	sed 's/^/    | /' "$tmp/replay$w.out" "$out"
	echo "$v $label ($kind, $k syncs): $(grep -m1 -E 'BAD|CHANGED|cannot' "$out" |
		sed 's/^ *//'); bad blocks after recovery/flush/removal:" \
		"$(awk '/^  [0-9]+ bad,/ { printf "%s%d", n++ ? "/" : "", $1 }' "$out")" >>"$failures"
}

# same_as_full LOG DEV ENTRY: DEV (replayed a piece at a time) must equal
# LOG replayed at once to ENTRY (onto $ccow): a check of --from.
same_as_full() {
	local log=$1 dev=$2 entry=$3 n

	n=$(dev_sectors "$dev")
	replay_log --log "$log" --replay "$ccow" --limit "$entry" --discard 2>/dev/null ||
		die "full replay of $log to $entry failed"
	cmp -n $((n * 512)) "$dev" "$ccow" >/dev/null ||
		die "$dev, replayed in steps to entry $entry of $log, differs from a full replay"
}

# check_part NAME W FIRST LAST: checker W checks states FIRST..LAST of
# $tmp/NAME.states, in order, on its own devices (W in the dm names):
# each checker replays its bases from its first state on.  Leaves
# "FAILED US_REPLAY US_VERIFY" in $tmp/partW.sum and its failures in
# $tmp/failures.W.
check_part() {
	local v=$1 first=$3 last=$4 rc
	local rorg=${RORG[$2]} ocow=${OCOW[$2]} ccow=${CCOW[$2]} rcache

	w=$2
	failures=$tmp/failures.$w
	: >"$failures"
	RANDOM=$((SEED + w))
	if [ $scale = 1 ]; then rcache=${RBIG[w]}; else rcache=${RCCH[w]}; fi
	if [ $volatile = 1 ]; then rc=$rcache; else rc=/dev/mapper/${STASH_DM_PREFIX}v53sc$w; fi
	rtable="0 $(dev_sectors "$rorg") stash /dev/mapper/${STASH_DM_PREFIX}v53so$w $rc $mode${opts[*]:+ ${#opts[@]} ${opts[*]}}"
	osnap_table=$(snap_table "$rorg" "$ocow")
	csnap_table=$(snap_table "$rcache" "$ccow")
	cur_o=-1 cur_c=-1 us_replay=0 us_verify=0
	while read -r label ce oe k kind; do
		check_state "$v" "$label" "$ce" "$oe" "$k" "$kind"
	done < <(sed -n "${first},${last}p" "$tmp/$v.states")
	if [ "$cur_o" -ge 0 ]; then
		same_as_full "$olog" "$rorg" "$cur_o"
		# (Not the 640 MiB one by default: a full replay and compare of
		# it cost 20 s; the same code replays all the others.)
		[ $volatile = 1 ] || { [ $scale = 1 ] && [ "${STASH_LONG:-0}" = 0 ]; } ||
			same_as_full "$clog" "$rcache" "$cur_c"
	fi
	echo "$(wc -l <"$failures") $us_replay $us_verify" >"$tmp/part$w.sum"
}

summary=()
for v in $variants; do
	t0=$SECONDS
	variant "$v"
	record "$v"
	# The states in log order (the origin's, then the cache's), so that
	# the bases move only forward.
	states "$v" | sort -s -k3,3n -k2,2n >"$tmp/$v.states"
	n=$(wc -l <"$tmp/$v.states")
	log "$v: checking $n states ($(wc -l <"$tmp/$v.chosen") of" \
		"$(wc -l <"$tmp/$v.instants") instants, the rest suspend points), $jobs at a time"
	pids=()
	for ((w = 0; w < jobs; w++)); do
		check_part "$v" $w $((w * n / jobs + 1)) $(((w + 1) * n / jobs)) \
			>"$tmp/part$w.out" 2>&1 &
		pids[w]=$!
	done
	nfail=0 us_replay=0 us_verify=0
	for ((w = 0; w < jobs; w++)); do
		wait "${pids[w]}"
		rc=$?
		cat "$tmp/part$w.out"
		[ $rc = 0 ] || die "$v: checker $w stopped (status $rc; its output above)"
		read -r a b c <"$tmp/part$w.sum"
		nfail=$((nfail + a)) us_replay=$((us_replay + b)) us_verify=$((us_verify + c))
		cat "$tmp/failures.$w" >>"$failures"
	done
	# STASH_53_SAVE=1: keep the lists and the writer's log for a look.
	if [ "${STASH_53_SAVE:-0}" = 1 ] && [ -n "${STASH_OUT:-}" ]; then
		mkdir -p "$STASH_OUT/53" && cp "$tmp/$v".* "$STASH_OUT/53/"
	fi
	line=$(awk -v v="$v" -v f="$nfail" -v total="$(tail -n1 "$tmp/$v.instants" | cut -d' ' -f4)" '
		{ n++; kind[$5]++; if ($1 ~ /^susp@/) s++; else { i++; syncs[$4] = 1 } }
		END {
			for (x in syncs) ns++
			printf "%s: %d states (%d instants, %d suspend points; exact %d, subset %d, tear %d), after %d of the %d sync counts (fdatasync or O_DSYNC: 0..%d), %d failed",
				v, n, i, s, kind["exact"], kind["subset"], kind["tear"], ns, total + 1, total, f
		}' "$tmp/$v.states")
	line="$line [$((SECONDS - t0)) s; replays and snapshots $((us_replay / 1000000)) s, verify $((us_verify / 1000000)) s]"
	log "$line"
	summary+=("$line")
done

log "=== summary (seed $SEED)"
for line in "${summary[@]}"; do
	log "$line"
done
if [ -s "$failures" ]; then
	log "failed states:"
	sed 's/^/#   /' "$failures"
	die "$(wc -l <"$failures") crash states lost fdatasync'd data or changed values"
fi
log "ok"
