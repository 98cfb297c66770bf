#!/bin/bash
# desc: a cache of more than 256 metadata pages (commits split): a power cut between the commits of a clean suspend or of a resume loads neither stale clean mappings nor page copies of a torn commit; a newer clean entry overrides an older dirty one; a clean resume writes no page, and clean entries dropped after a crash are gone from disk once resumed
#
#   null_blk (640 MiB, write cache) -> log-writes lw (log on ram0) -> cache
#   ram1 (64 MiB) -> linear "origin"                                 -> origin
#
# The cache has 321 metadata pages; a commit writes at most 256, so a
# suspend or resume that must write them all takes two commits.  The
# metadata is forged with tests/tools/stash-md (the module's encoder) so
# that the pages past 256 hold what a crash between the two commits
# exposes; the cache's history is replayed from its dm-log-writes log up
# to the first superblock write (FUA) after a mark, onto a fresh null_blk.
# Cases and the break each catches (each seen failing on purpose):
#  A. a clean suspend that writes every page: after its first commit, the
#     superblock must not say "clean" (else the stale clean mappings of
#     the pages past 256 are loaded: reads return the slots' old data);
#  B. a resume after a torn commit: a page copy stamped with the sequence
#     the resume commit takes again must not become current (else its
#     dirty entry is loaded: dirty=1);
#  C. (small, any size) after an unclean shutdown an older dirty entry of
#     a block beats a newer clean one in another page: the older page was
#     not written since the block left it, so no flush or FUA write
#     completed since, and the origin may not hold the data durably (else
#     the block is read from the origin: older than a flushed write);
#  D. a clean resume writes no page (every page keeps its copy and
#     sequence), whatever the cache's size;
#  E. the clean entries a load drops after a crash are gone from disk once
#     it resumed (else they come back at the next clean shutdown).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
. "$(dirname "$0")/../lib-fault.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup

cmib=640
brd_setup 2 65536
nullb_setup stmc $cmib
cdev=$NULLB_DEV
linear_create origin /dev/ram1 0 131072
origin=$LINEAR_DEV
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/old" 1
rand_file "$tmp/new" 1
rand_file "$tmp/orig" 1
zero_dev /dev/ram0 1
dm_create lw "0 $((cmib * 2048)) log-writes $cdev /dev/ram0" || die "cannot create log-writes"
lw=$(dm_path lw)

# expect WHAT CMD...: a case's check; a failure is counted and the test
# goes on, so that one run shows every case that fails.
failed=0
expect() {
	local what=$1

	shift
	if "$@"; then
		log "ok: $what"
	else
		log "FAIL: $what"
		failed=$((failed + 1))
	fi
}

# The blocks of the test: page p maps origin block 100 + p in its slot 0.
# fill DEV FILE: FILE in each of those blocks, in one write.
# One cat for all the copies (a cat a page took 45 s of the test).
fill() {
	local p files=()

	for ((p = 0; p < pages; p++)); do
		files+=("$2")
	done
	cat "${files[@]}" >"$tmp/fill"
	put "$1" "$tmp/fill" 100
}
# entry_to VAR VALID DIRTY OBLOCK: the raw entry word into VAR (no fork,
# for loops); entry VALID DIRTY OBLOCK prints it.
entry_to() {
	printf -v "$1" '0x%x' $(((1 << 63) | ($3 << 62) | $4))
}
entry() {
	local v

	entry_to v "$@"
	echo "$v"
}

opts=(writearound commit_ms 60000)
pstash_create mc "$origin" "$lw" "${opts[@]}"
stash_remove "$STASH_DEV"
md_dump "$lw" "$tmp/d0"
pages=$(jq .superblock.md_pages "$tmp/d0")
last=$((pages - 1))
assert_ok "more pages than one commit writes" test "$pages" -gt 256
S=$(jq .superblock.seq "$tmp/d0")
data_start=$(jq .superblock.data_start "$tmp/d0")
# Slots a page maps: 510, or 340 with checksums (format version 2).
epp=$([ "$(jq .format_version "$tmp/d0")" = 2 ] && echo 340 || echo 510)
log "formatted: $pages pages of $epp slots, superblock sequence $S, data from sector $data_start"

log "forge: every page maps one clean block (slot ${epp}p -> block 100+p), shut down cleanly"
# Copy 0 of each page gets it; copy 1 is zeroed (the kernel takes copy 0).
# One stash-md process for all of it, not three a page.
fill "$origin" "$tmp/orig"
for ((p = 0; p < pages; p++)); do
	entry_to e 1 0 $((100 + p))
	echo "write-page $p 0 $S 0=$e"
	echo "zero-page $p 1"
	echo "write-slot $((p * epp)) $tmp/old"
done | stash_md batch "$lw" || die "cannot forge the pages"

pstash_create mc "$origin" "$lw" "${opts[@]}"
assert_ok "a forged mapping is a hit" same "$STASH_DEV" 400 "$tmp/old"
dmsetup message "$STASH_DEV" 0 invalidate || die "invalidate failed"
fill "$STASH_DEV" "$tmp/new"
assert_ok "write-around writes reach the origin" same "$origin" 400 "$tmp/new"
dmsetup message "$lw" 0 mark suspend || die "mark failed"
stash_remove "$STASH_DEV"
supers=$(replay_log --log /dev/ram0 --list | awk '$2 ~ /MARK/ && $NF == "suspend" { seen = 1; next }
	seen && $2 ~ /FUA/ && $4 > 0 { n++ } END { print n + 0 }')
assert_ok "the suspend took more than one commit ($supers superblock writes)" test "$supers" -ge 2

# replay_at MARK: the cache as a power cut right after the first
# superblock write after MARK leaves it, on a fresh null_blk; sets RCACHE.
replay_at() {
	local at n

	local mk

	replay_log --log /dev/ram0 --list >"$tmp/entries" || die "cannot list the log"
	mk=$(awk -v m="$1" '$2 ~ /MARK/ && $NF == m { print $1; exit }' "$tmp/entries")
	# dm splits a PREFLUSH write: an empty flush first (logged with the
	# pages it covers), then the data, FUA: the superblock is the latter.
	at=$(awk -v k="$mk" '$1 > k && $2 ~ /FUA/ && $4 > 0 { print $1; exit }' "$tmp/entries")
	[ -n "$mk" ] && [ -n "$at" ] || die "no superblock write after mark $1"
	log "mark $1 at entry $mk; the first superblock write after it at $at:" \
		"$(awk -v k="$mk" -v a="$at" '$1 > k && $1 <= a' "$tmp/entries" |
			awk '{ n[$2]++ } END { for (f in n) printf "%s %s ", n[f], f }')"
	n=${2:-r$RANDOM}
	nullb_setup "$n" $cmib
	RCACHE=$NULLB_DEV
	replay_log --log /dev/ram0 --replay "$RCACHE" --limit "$at" || die "replay failed"
	log "replayed the cache log to entry $at: superblock" \
		"$(stashctl dump --json "$RCACHE" | jq -c '.superblock | {seq, clean_shutdown}')"
}

log "A: a power cut between the two commits of the clean suspend"
replay_at suspend stmr1
md_dump "$RCACHE" "$tmp/a"
expect "A: the first commit is not a clean shutdown" \
	test "$(jq .superblock.clean_shutdown "$tmp/a")" = false
pstash_create mc "$origin" "$RCACHE" "${opts[@]}"
for p in 0 255 256 $last; do
	expect "A: block $((100 + p)) reads the newest write" same "$STASH_DEV" $((100 + p)) "$tmp/new"
done
stash_remove "$STASH_DEV"

log "B: a torn commit's page copy, then a resume that takes its sequence again"
md_dump "$lw" "$tmp/b0"
S=$(jq .superblock.seq "$tmp/b0")
copy=$(jq .superblock.copy "$tmp/b0")
use=$(jq ".pages[$last].copy" "$tmp/b0")
stash_md forge-sb "$lw" "$copy" flags 0 || die "forge-sb"
stash_md write-page "$lw" $last $((1 - use)) $((S + 1)) "0=$(entry 1 1 7)" || die "write-page"
dmsetup message "$lw" 0 mark resume || die "mark failed"
# Write-back, held off: a dirty block loaded stays dirty to be counted.
bopts=(writeback high_watermark 100 idle_ms 0 commit_ms 60000)
pstash_create mc "$origin" "$lw" "${bopts[@]}"
expect "B: the torn copy is not loaded" test "$(st "$STASH_DEV" dirty)" = 0
stash_remove "$STASH_DEV"
replay_at resume stmr2
expect "B: after a power cut inside the resume, no torn copy is left on disk" \
	test "$(jq .dirty_blocks <(stashctl dump --json "$RCACHE"))" = 0
pstash_create mc "$origin" "$RCACHE" "${bopts[@]}"
expect "B: after a power cut inside the resume, the torn copy is not loaded" \
	test "$(st "$STASH_DEV" dirty)" = 0
stash_remove "$STASH_DEV"

log "C: an older dirty entry of a block beats a newer clean one"
md_dump "$lw" "$tmp/c0"
S=$(jq .superblock.seq "$tmp/c0")
copy=$(jq .superblock.copy "$tmp/c0")
stash_md forge-sb "$lw" "$copy" flags 0 || die "forge-sb"
# Block 100 + 10: dirty in page 10 (older), clean in page 20 (newer).
for p in 10 20; do
	stash_md write-page "$lw" $p 1 $((S - 2)) || die "write-page"
done
stash_md write-page "$lw" 10 0 $((S - 1)) "0=$(entry 1 1 110)" || die "write-page"
stash_md write-page "$lw" 20 0 "$S" "3=$(entry 1 0 110)" || die "write-page"
pstash_create mc "$origin" "$lw" "${bopts[@]}"
expect "C: the older dirty entry is loaded" test "$(st "$STASH_DEV" dirty)" = 1
expect "C: block 110 reads the dirty copy" same "$STASH_DEV" 110 "$tmp/old"
stash_remove "$STASH_DEV"

log "D: a clean resume writes no metadata page, only the superblock"
# Break caught: a resume that writes every page (as it did) changes every
# page's copy or sequence.
pstash_create mc "$origin" "$lw" "${bopts[@]}"
stash_remove "$STASH_DEV"
md_dump "$lw" "$tmp/d1"
pstash_create mc "$origin" "$lw" "${bopts[@]}"
stash_remove "$STASH_DEV"
md_dump "$lw" "$tmp/d2"
expect "D: every page keeps its copy and sequence across a clean reload" \
	cmp -s <(jq -c '[.pages[] | [.copy, .seq]]' "$tmp/d1") \
	<(jq -c '[.pages[] | [.copy, .seq]]' "$tmp/d2")
expect "D: the superblock moved on" \
	test "$(jq .superblock.seq "$tmp/d2")" -gt "$(jq .superblock.seq "$tmp/d1")"

log "E: clean entries dropped after a crash are gone from disk after the resume"
# Break caught: a load that drops them without writing their pages (they
# come back, as current, at the next clean shutdown).
seeded=$(stash_md seed-clean "$lw" 3 2000) || die "seed-clean failed"
md_dump "$lw" "$tmp/e0"
copy=$(jq .superblock.copy "$tmp/e0")
stash_md forge-sb "$lw" "$copy" flags 0 || die "forge-sb"
pstash_create mc "$origin" "$lw" "${bopts[@]}"
stash_remove "$STASH_DEV"
md_dump "$lw" "$tmp/e1"
log "E: seeded $seeded clean entries; after the reload: $(jq -c '{valid_blocks, dirty_blocks, clean: .superblock.clean_shutdown}' "$tmp/e1")"
expect "E: no clean entry left on disk" \
	test "$(jq .valid_blocks "$tmp/e1")" = "$(jq .dirty_blocks "$tmp/e1")"
expect "E: a clean shutdown" test "$(jq .superblock.clean_shutdown "$tmp/e1")" = true

dm_remove_name lw
dm_remove_name origin
[ $failed = 0 ] || die "$failed checks failed"
