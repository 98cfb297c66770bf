#!/bin/bash
# fstests (xfstests) on stash volumes, inside the test VM (make check-fstests).
#
# usage: tests/fstests/run-guest.sh [--dry-run]
#
# As root, in the VM; --dry-run prints the runs' table lines, messages and
# fstests configuration instead, anywhere.
#
# For each filesystem (ext4, xfs) and each configuration:
#   linear          dm-linear over the origin: the baseline (a test that
#                   fails there is the environment's, not the cache's)
#   wb  wb-vol  wt  wa
#                   stash in write-back (persistent, then volatile),
#                   write-through and write-around, each also as
#   wb-cut0 ...     the same with "set sequential_cutoff 0" sent as a
#                   message: with the default cutoff the long streams of
#                   mkfs, journals and fsx mostly bypass the cache
# it makes TEST_DEV and SCRATCH_DEV (dm devices stasht-test and
# stasht-scratch) over memory-backed null_blk origins, with caches smaller
# than the data, and a LOGWRITES_DEV for the dm-log-writes tests (the
# dm-flakey ones stack on SCRATCH_DEV); makes the filesystem on TEST_DEV;
# runs the curated test list with fstests' ./check from build/fstests/src
# (built on the host by tests/fstests/build.sh; the guest sees it at the
# same path) within the run's time budget; then, for each volume: fsck
# (read-only) through the cache, the flush message and a wait for
# dirty=0, a byte comparison of a stash volume with its origin, removal,
# and fsck of the origin alone.
#
# Results in $STASH_OUT/fstests (the host turns them into docs/fstests.md
# with tests/fstests/report.py):
#   results.tsv  fs, config, test, result (pass, fail, notrun, timeout: the
#                budget ran out while it ran, budget: not reached), seconds,
#                note (why it failed or did not run)
#   runs.tsv     one row per fs, config and volume (test, scratch): the
#                cache's counters over the run (hits, misses, promotions,
#                evictions, blocks written back, ...), the fsck of the
#                volume and of the origin, and the comparison
#   runs/FS-CONFIG/  local.config, ./check's output, fstests' result
#                directory, the status lines, fsck output, the kernel log
#
# Exit status: 0 when every volume's origin checked out (fsck, comparison)
# and every test that failed on a stash volume failed on dm-linear with the
# same filesystem too (the environment's); 1 otherwise.
#
# Environment (host variables named STASH_* reach the guest):
#   STASH_FSTESTS_TESTS    tests to run (default: tests/fstests/default.list,
#                          with STASH_LONG=1 also long.list)
#   STASH_FSTESTS_FS       filesystems (default "ext4 xfs")
#   STASH_FSTESTS_CONFIGS  configurations (default all nine, above)
#   STASH_FSTESTS_TIME     seconds for the whole matrix (default 1200,
#                          STASH_LONG=1: 14400); each run gets an equal
#                          share of what is left when it starts, setup and
#                          checks included, and ./check is stopped when the
#                          run's share is spent
#   STASH_FSTESTS_DEV_MIB, STASH_FSTESTS_CACHE_MIB, STASH_FSTESTS_LOG_MIB
#                          origin (TEST_DEV gets half), cache and log sizes
#   STASH_FSTESTS_CMP=0    skip the byte comparison of volume and origin
#   STASH_FSTESTS_DIR      the built fstests tree (default build/fstests/src)
#   STASH_FSTESTS_NATIVE=1 run outside the VM anyway (it adds users and
#                          removes every dm device not named stasht-*)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib.sh
. "$HERE/../lib.sh"
# shellcheck source=tests/lib-cache.sh
. "$HERE/../lib-cache.sh"
# shellcheck source=tests/lib-fs.sh
. "$HERE/../lib-fs.sh"
# shellcheck source=tests/lib-fault.sh
. "$HERE/../lib-fault.sh"
# The runner is not a test: each run sets up its own cleanup (run_one).
trap - EXIT

FSTESTS=${STASH_FSTESTS_DIR:-$STASH_REPO/build/fstests/src}
OUT=${STASH_OUT:-$STASH_REPO/build}/fstests
ALL_CONFIGS="linear wb wb-vol wt wa wb-cut0 wb-vol-cut0 wt-cut0 wa-cut0"
CONFIGS=${STASH_FSTESTS_CONFIGS:-$ALL_CONFIGS}
FILESYSTEMS=${STASH_FSTESTS_FS:-ext4 xfs}
CMP=${STASH_FSTESTS_CMP:-1}
# SCRATCH_DEV gets DEV_MIB: generic/482 puts a thin pool of 600 MiB (the
# smallest xfs fstests makes) on it.  TEST_DEV gets half.  The caches are
# much smaller than what the tests write, so blocks are evicted and
# written back all along.  The log device takes every write of a
# log-writes test (mkfs included); null_blk uses memory only for what is
# written, and frees it when the run removes the device.
DEV_MIB=${STASH_FSTESTS_DEV_MIB:-1024}
CACHE_MIB=${STASH_FSTESTS_CACHE_MIB:-32}
LOG_MIB=${STASH_FSTESTS_LOG_MIB:-2048}
if [ "$STASH_LONG" = 1 ]; then
	TOTAL_TIME=${STASH_FSTESTS_TIME:-14400}
else
	TOTAL_TIME=${STASH_FSTESTS_TIME:-1200}
fi
# A run never gets less than this for ./check, whatever is left.
MIN_BUDGET=30
MNT=/mnt/fstests
# Status keys recorded per volume (see docs/table.md).
COUNTERS="read_hits read_misses write_hits write_misses promotions evictions invalidations bypassed written_back"
# (Not "Call Trace": xfs prints one with each corruption or I/O error
# report, which the dm-error tests cause on purpose; a WARN, a hung task
# or an oops panics the test VM anyway.)
SPLATS='BUG:|WARNING:|Oops|general protection|KASAN|UBSAN'

# list_tests FILE: the first word of each line that is not a comment.
list_tests() {
	awk '!/^#/ && NF { print $1 }' "$1"
}

if [ -n "${STASH_FSTESTS_TESTS:-}" ]; then
	read -ra TESTS <<<"$STASH_FSTESTS_TESTS"
else
	mapfile -t TESTS < <(list_tests "$HERE/default.list")
	[ "$STASH_LONG" = 1 ] && mapfile -t -O ${#TESTS[@]} TESTS < <(list_tests "$HERE/long.list")
fi

# ---------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------
# cfg_parse CONFIG: sets CFG_MODE (linear, writeback, writethrough,
# writearound), CFG_OPTS (table options) and CFG_CUT0 (1: send
# "set sequential_cutoff 0").  Fails on an unknown name.
cfg_parse() {
	local base=${1%-cut0}

	CFG_CUT0=0
	[ "$base" = "$1" ] || CFG_CUT0=1
	CFG_OPTS=()
	case $base in
	linear) CFG_MODE=linear; [ $CFG_CUT0 = 0 ] || return 1 ;;
	wb) CFG_MODE=writeback ;;
	wb-vol) CFG_MODE=writeback; CFG_OPTS=(volatile) ;;
	wt) CFG_MODE=writethrough ;;
	wa) CFG_MODE=writearound ;;
	*) return 1 ;;
	esac
}

# vol_table SECTORS ORIGIN CACHE: the table line of a volume of SECTORS
# over ORIGIN in the configuration cfg_parse set (stash_table's form).
vol_table() {
	if [ "$CFG_MODE" = linear ]; then
		echo "0 $1 linear $2 0"
	else
		echo "0 $1 stash $2 $3 $CFG_MODE${CFG_OPTS[*]:+ ${#CFG_OPTS[@]} ${CFG_OPTS[*]}}"
	fi
}

# vol_mib ROLE: the origin size of the test or scratch volume, MiB.
vol_mib() {
	if [ "$1" = test ]; then echo $((DEV_MIB / 2)); else echo "$DEV_MIB"; fi
}

# tsv_row FIELD...: FIELDs joined by tabs, on one line.
tsv_row() {
	local IFS=$'\t'

	echo "$*"
}

# empty_fields N: N empty tab-separated fields (N - 1 tabs).
empty_fields() {
	local i

	for ((i = 1; i < $1; i++)); do printf '\t'; done
}

# ---------------------------------------------------------------------------
# fstests' environment in the guest
# ---------------------------------------------------------------------------
# The guest has no udevd: dmsetup makes and removes the /dev/mapper nodes
# itself (DM_DISABLE_UDEV=1), but fstests waits for udev after each
# dmsetup create/remove with "udevadm wait", which waits for a udev
# database entry that never comes.  A udevadm ahead of the real one on
# PATH answers "wait" by polling for the node and "settle" at once.
make_udevadm_shim() {
	local bin=$1

	mkdir -p "$bin"
	cat >"$bin/udevadm" <<'EOF'
#!/bin/bash
# udevadm for a guest without udevd (tests/fstests/run-guest.sh).
case ${1:-} in
settle) exit 0 ;;
wait)
	shift
	removed=0 paths=()
	for a in "$@"; do
		case $a in
		--removed) removed=1 ;;
		-*) ;;
		*) paths+=("$a") ;;
		esac
	done
	for ((i = 0; i < 300; i++)); do
		left=0
		for p in "${paths[@]}"; do
			if [ $removed = 1 ]; then [ -e "$p" ] && left=1; else [ -e "$p" ] || left=1; fi
		done
		[ $left = 0 ] && exit 0
		sleep 0.1
	done
	exit 1 ;;
*) exec /usr/bin/udevadm "$@" ;;
esac
EOF
	chmod +x "$bin/udevadm"
}

# add_users: the users and group some fstests tests run as (README step 6);
# the guest's root is a throw-away overlay, so they vanish with it.
add_users() {
	local u

	for u in fsgqa fsgqa2; do
		id -u "$u" >/dev/null 2>&1 || useradd -m "$u" >/dev/null 2>&1 ||
			log "cannot add user $u"
	done
	getent group fsgqa >/dev/null || groupadd fsgqa
	# A name that starts with digits: Debian's useradd needs --badname.
	id -u 123456-fsgqa >/dev/null 2>&1 || useradd --badname 123456-fsgqa >/dev/null 2>&1 ||
		useradd 123456-fsgqa >/dev/null 2>&1 || log "cannot add user 123456-fsgqa (a few tests will not run)"
}

# write_config FILE FS TEST_DEV SCRATCH_DEV LOG_DEV RESULTS: fstests'
# local.config for one run (./check reads it through HOST_OPTIONS).
write_config() {
	cat >"$1" <<EOF
# fstests configuration of one make check-fstests run (tests/fstests/run-guest.sh)
export FSTYP=$2
export TEST_DEV=$3
export TEST_DIR=$MNT/test
export SCRATCH_DEV=$4
export SCRATCH_MNT=$MNT/scratch
export LOGWRITES_DEV=$5
export RESULT_BASE=$6
export DIFF_LENGTH=20
EOF
}

# ---------------------------------------------------------------------------
# After ./check
# ---------------------------------------------------------------------------
# release_devices: what a test left behind when ./check was stopped: its
# processes, its mounts, and fstests' dm devices (flakey-test.N,
# logwrites-test, thin-*, error-test.N) over our volumes.  In the VM every
# dm device that is not one of the helpers' (stasht-*) is fstests'.
release_devices() {
	local m pass name open left

	for m in "$MNT/scratch" "$MNT/test"; do
		mountpoint -q "$m" || continue
		fuser -km "$m" >/dev/null 2>&1
		sleep 1
		umount "$m" 2>/dev/null || { sleep 2; umount "$m"; } ||
			log "cannot unmount $m"
	done
	for pass in 1 2 3 4 5 6; do
		left=0
		while read -r name open; do
			[[ -n $name && $name != "$STASH_DM_PREFIX"* ]] || continue
			left=1
			[ "$open" = 0 ] && dmsetup remove "$name" >/dev/null 2>&1
		done < <(dmsetup info -c --noheadings --separator ' ' -o name,open 2>/dev/null |
			grep -v '^No devices found')
		[ $left = 0 ] && return 0
		sleep 1
	done
	log "fstests' dm devices left: $(dm_names | grep -v "^$STASH_DM_PREFIX" | tr '\n' ' ')"
}

# xunit_results FILE: "test<TAB>status<TAB>seconds<TAB>message" for each
# test in fstests' xunit-quiet report (pass, notrun or fail).  ./check
# rewrites the report before each test, so a report of a stopped ./check
# holds every test that finished.
xunit_results() {
	[ -f "$1" ] || return 0
	awk '
	# attr(S, K): the value of attribute K (" K=" exactly: not classname=)
	function attr(s, k,   m) {
		if (!match(s, "[ \t]" k "=\"[^\"]*\"")) return ""
		m = substr(s, RSTART + length(k) + 3, RLENGTH - length(k) - 4)
		gsub(/&quot;/, "\"", m); gsub(/&apos;/, "'\''", m)
		gsub(/&lt;/, "<", m); gsub(/&gt;/, ">", m); gsub(/&amp;/, "\\&", m)
		gsub(/[\t\r\n]+/, " ", m)
		return m
	}
	function out() { if (name != "") printf "%s\t%s\t%s\t%s\n", name, st, t, msg; name = "" }
	/<testcase / { out(); name = attr($0, "name"); t = attr($0, "time"); st = "pass"; msg = "" }
	/<skipped/ && name != "" { st = "notrun"; msg = attr($0, "message") }
	/<failure/ && name != "" { st = "fail"; msg = attr($0, "message") }
	/<\/testcase>/ { out() }
	END { out() }' "$1"
}

# started_tests CHECKLOG: the tests ./check began, in order (it prints
# each name at the start of a line before running it).
started_tests() {
	grep -oE '^(generic|ext4|xfs|shared)/[0-9]+' "$1" 2>/dev/null
}

# test_rows FS CONFIG DIR RC BUDGET: results.tsv's rows of one
# run, from ./check's report and output in DIR and its exit status RC:
# each test's result in the report, else "timeout" for the one running
# when ./check was stopped (RC 124), "budget" for those it did not reach,
# "error" when ./check ended without running them.
test_rows() {
	local fs=$1 cfg=$2 dir=$3 rc=$4 budget=$5 t test status s msg last=
	local -a started
	local -A reported=()

	mapfile -t started < <(started_tests "$dir/check.log")
	[ ${#started[@]} = 0 ] || last=${started[${#started[@]} - 1]}
	while IFS=$'\t' read -r test status s msg; do
		reported[$test]=$(tsv_row "$status" "$s" "$msg")
	done < <(xunit_results "$dir/results/result.xml")
	for t in "${TESTS[@]}"; do
		if [ -n "${reported[$t]:-}" ]; then
			tsv_row "$fs" "$cfg" "$t" "${reported[$t]}"
		elif [ "$rc" = 124 ] && [ "$t" = "$last" ]; then
			tsv_row "$fs" "$cfg" "$t" timeout "" "still running when the run's ${budget}s were spent"
		elif [ "$rc" = 124 ]; then
			tsv_row "$fs" "$cfg" "$t" budget "" "not reached in the run's ${budget}s"
		else
			tsv_row "$fs" "$cfg" "$t" error "" \
				"./check exit $rc: $(grep -vE '^\s*$' "$dir/check.log" | tail -n1 | tr '\t' ' ' | cut -c1-160)"
		fi
	done
}

# fsck_result FS DEV OUTFILE: "clean", "errors(N)" (the checker's exit
# status) or "nofs(TYPE)" when DEV does not hold FS (what a test left on
# the scratch device: a thin pool, nothing); the output goes to OUTFILE.
fsck_result() {
	local fs=$1 dev=$2 type rc

	type=$(blkid -p -o value -s TYPE "$dev" 2>/dev/null)
	if [ "$type" != "$fs" ]; then
		echo "blkid: '$type'" >"$3"
		echo "nofs(${type:-none})"
		return
	fi
	case $fs in
	ext4) e2fsck -fn "$dev" >"$3" 2>&1 ;;
	xfs) xfs_repair -n "$dev" >"$3" 2>&1 ;;
	esac
	rc=$?
	if [ $rc = 0 ]; then echo clean; else echo "errors($rc)"; fi
}

# same_content A B: do A and B hold the same bytes (direct reads of B's
# size)?
same_content() {
	cmp -s <(dd if="$1" bs=4M iflag=direct status=none) \
		<(dd if="$2" bs=4M iflag=direct status=none)
}

# counters_row START END: the counters' growth between two status lines,
# tab-separated, in COUNTERS order.
counters_row() {
	local k row=()

	for k in $COUNTERS; do
		row+=("$(delta "$1" "$2" "$k")")
	done
	(IFS=$'\t'; echo "${row[*]}")
}

# run_nullb NAME MIB: a null_blk device for a run (NULLB_DEV): 512-byte
# sectors, so that O_DIRECT I/O smaller than a cache block reaches the
# volume, and discards, which free its memory (mkfs, fstrim).  nullb_setup
# removes it at exit; cleanups run last registered first, so the one
# registered here runs before that: it unmounts what a stopped test left
# and removes the dm devices over it.
run_nullb() {
	nullb_setup "$1" "$2" 0 1 512
	on_exit "release_devices; dm_cleanup_all"
}

# kmsg_run_mark TEXT: put a marker line into the kernel log, print it.
# (Not kmsg_mark: the helpers may set that one during the run.)
kmsg_run_mark() {
	local m="fstests-run: $1 ($$.$RANDOM)"

	echo "<6>$m" >/dev/kmsg
	echo "$m"
}

# ---------------------------------------------------------------------------
# One run: FS on CONFIG
# ---------------------------------------------------------------------------
# run_one INDEX FS CONFIG BUDGET: runs in a subshell of its own (die ends
# the run, not the matrix); appends to results.tsv and runs.tsv.
run_one() {
	local idx=$1 fs=$2 cfg=$3 budget=$4
	local dir=$OUT/runs/$fs-$cfg role origin dev rc=0 start
	local -A ORIG CACHEDEV VOL
	local st_end st_drained fv fo same verdict note line
	local run_mark

	_STASH_CLEANUPS=()
	trap _stash_exit EXIT
	mkdir -p "$dir" "$MNT/test" "$MNT/scratch"
	cfg_parse "$cfg" || die "unknown configuration $cfg"
	run_mark=$(kmsg_run_mark "$fs $cfg")
	start=$(date +%s)

	# Names carry the run's index: a device an earlier run could not
	# remove does not stand in the way.
	for role in test scratch; do
		run_nullb "fst${idx}${role:0:1}o" "$(vol_mib $role)"
		ORIG[$role]=$NULLB_DEV
		CACHEDEV[$role]=
		if [ "$CFG_MODE" != linear ]; then
			run_nullb "fst${idx}${role:0:1}c" "$CACHE_MIB"
			CACHEDEV[$role]=$NULLB_DEV
		fi
		dm_create "$role" "$(vol_table "$(dev_sectors "${ORIG[$role]}")" "${ORIG[$role]}" "${CACHEDEV[$role]}")" ||
			die "cannot create the $role volume: $(dmesg | tail -n 5 | grep -E 'stash|device-mapper')"
		if [ "$CFG_CUT0" = 1 ]; then
			dmsetup message "$STASH_DM_PREFIX$role" 0 set sequential_cutoff 0 ||
				die "message 'set sequential_cutoff 0' refused"
			assert_eq 0 "$(sf "$(dm_path "$role")" sequential_cutoff)" "$role: sequential_cutoff"
		fi
		VOL[$role]=$(dm_path "$role")
	done
	run_nullb "fst${idx}lw" "$LOG_MIB"
	local logdev=$NULLB_DEV

	for role in test scratch; do
		[ "$CFG_MODE" = linear ] || status_line "${VOL[$role]}" >"$dir/status-$role-start.txt"
	done
	log "$fs $cfg: test ${VOL[test]} (${ORIG[test]}${CACHEDEV[test]:+ + ${CACHEDEV[test]}}), scratch ${VOL[scratch]} (${ORIG[scratch]}${CACHEDEV[scratch]:+ + ${CACHEDEV[scratch]}}), log $logdev"

	fs_mkfs "$fs" "${VOL[test]}"
	write_config "$dir/local.config" "$fs" "${VOL[test]}" "${VOL[scratch]}" "$logdev" "$dir/results"

	# ./check within what is left of the run's budget, in the list's
	# order (cheapest first; without --exact-order ./check sorts them by
	# number).  timeout(1) puts ./check in a process group of its own and
	# signals all of it, the test's fsstress and fsx included.
	budget=$((budget - ($(date +%s) - start)))
	[ $budget -ge $MIN_BUDGET ] || budget=$MIN_BUDGET
	log "$fs $cfg: ./check ${TESTS[*]} (at most ${budget}s)"
	(cd "$FSTESTS" && PATH=$SHIM_BIN:$PATH HOST_OPTIONS=$dir/local.config \
		timeout -k 30 "$budget" ./check -R xunit-quiet --exact-order "${TESTS[@]}") \
		>"$dir/check.log" 2>&1 </dev/null
	rc=$?
	release_devices
	log "$fs $cfg: ./check exit $rc$([ $rc = 124 ] && echo ' (budget spent)')"

	test_rows "$fs" "$cfg" "$dir" "$rc" "$budget" >>"$OUT/results.tsv"

	# Each volume: fsck through the cache, drain, compare with the origin,
	# remove, fsck the origin alone.
	for role in test scratch; do
		dev=${VOL[$role]}
		origin=${ORIG[$role]}
		note=
		[ "$CFG_MODE" = linear ] || st_end=$(status_line "$dev")
		fv=$(fsck_result "$fs" "$dev" "$dir/fsck-$role-volume.txt")
		if [ "$CFG_MODE" != linear ]; then
			echo "$st_end" >"$dir/status-$role-end.txt"
			dmsetup message "$dev" 0 flush || note+="flush message refused; "
			wait_field "$dev" dirty 0 300 && wait_field "$dev" state idle 60 ||
				note+="not clean after the flush: $(status_line "$dev"); "
			st_drained=$(status_line "$dev")
			echo "$st_drained" >"$dir/status-$role-drained.txt"
		fi
		same=skipped
		if [ "$CFG_MODE" = linear ]; then
			same=n/a
		elif [ "$CMP" = 1 ]; then
			if same_content "$dev" "$origin"; then same=same; else same=DIFFERENT; fi
		fi
		dm_remove "$dev" || note+="cannot remove the volume; "
		fo=$(fsck_result "$fs" "$origin" "$dir/fsck-$role-origin.txt")

		# TEST_DEV holds one filesystem all along, unmounted cleanly by
		# ./check: its origin must be clean.  The scratch device holds
		# whatever the last test left: its origin must check as the
		# volume did.
		verdict=ok
		if [ $role = test ] && [ "$fo" != clean ]; then
			verdict=FAIL
		elif [ "$fo" != "$fv" ]; then
			verdict=FAIL
		fi
		[ "$same" != DIFFERENT ] || verdict=FAIL
		[ -z "$note" ] || verdict=FAIL
		if [ "$CFG_MODE" = linear ]; then
			line=$(empty_fields $(($(wc -w <<<"$COUNTERS") + 3)))
		else
			line="$(counters_row "$(cat "$dir/status-$role-start.txt")" "$st_drained")"
			line+=$'\t'"$(field_of "$st_end" dirty)"$'\t'"$(field_of "$st_drained" cache_blocks)"
			line+=$'\t'"$(($(field_of "$st_drained" cache_errors) + $(field_of "$st_drained" origin_errors) + $(field_of "$st_drained" writeback_errors)))"
		fi
		tsv_row "$fs" "$cfg" "$role" "$verdict" "$rc" "$budget" "$(($(date +%s) - start))" \
			"$line" "$fv" "$fo" "$same${note:+; $note}" >>"$OUT/runs.tsv"
		log "$fs $cfg $role: $verdict; volume fsck $fv, origin fsck $fo, content $same${note:+; $note}"
	done

	dmesg | awk -v m="$run_mark" 'found { print } index($0, m) { found = 1 }' >"$dir/dmesg.txt"
	if grep -qE "$SPLATS" "$dir/dmesg.txt"; then
		die "the kernel logged a splat (see $dir/dmesg.txt)"
	fi
	touch "$dir/done"
}

# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------
# summary: one line per run, then the verdict.  A test that fails on a
# stash volume counts against the cache unless it failed on dm-linear with
# the same filesystem too (or dm-linear was not run, so nobody knows).
summary() {
	awk -F'\t' -v OFS='\t' '
	NR == FNR && FNR > 1 {
		key = $1 SUBSEP $2
		n[key, $4]++
		if ($2 == "linear") base[$1, $3] = $4
		r[++nr] = $0
		if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
	}
	NR != FNR && FNR > 1 && $4 != "ok" { bad_run[$1 SUBSEP $2] = bad_run[$1 SUBSEP $2] " " $3 }
	END {
		for (i = 1; i <= nr; i++) {
			split(r[i], f, "\t")
			if (f[2] != "linear" && f[4] == "fail") {
				b = base[f[1], f[3]]
				if (b != "fail" && b != "error") { ours[f[1] SUBSEP f[2]]++; regress++ }
			}
		}
		for (i = 1; i <= nk; i++) {
			k = order[i]; split(k, p, SUBSEP)
			printf "%-5s %-12s %2d pass %2d fail (%d not on dm-linear) %2d notrun %2d timeout %2d budget%s\n",
				p[1], p[2], n[k, "pass"], n[k, "fail"] + n[k, "error"], ours[k] + 0,
				n[k, "notrun"], n[k, "timeout"], n[k, "budget"],
				(k in bad_run) ? "  ORIGIN CHECK FAILED:" bad_run[k] : ""
			if (k in bad_run) bad++
		}
		printf "fstests: %d failure(s) that dm-linear does not have, %d run(s) whose origin check failed\n",
			regress, bad
		exit (regress > 0 || bad > 0)
	}' "$OUT/results.tsv" "$OUT/runs.tsv"
}

# print_plan: the runs, their table lines, messages and fstests
# configuration, without doing anything (--dry-run: anywhere, no root).
print_plan() {
	local r fs cfg role idx=0 o c

	echo "plan: ${#TESTS[@]} tests: ${TESTS[*]}"
	echo "plan: ${#runs[@]} runs in ${TOTAL_TIME}s, about $((TOTAL_TIME / ${#runs[@]}))s each (setup and checks included)"
	for r in "${runs[@]}"; do
		read -r fs cfg <<<"$r"
		cfg_parse "$cfg"
		echo "== $fs $cfg"
		for role in test scratch; do
			o=/dev/fst$idx${role:0:1}o c=
			[ "$CFG_MODE" = linear ] || c=/dev/fst$idx${role:0:1}c
			echo "  $STASH_DM_PREFIX$role: $(vol_table $(($(vol_mib $role) * 2048)) "$o" "$c")${c:+  (cache $c: $CACHE_MIB MiB)}"
			[ "$CFG_CUT0" = 0 ] || echo "  $STASH_DM_PREFIX$role: dmsetup message $STASH_DM_PREFIX$role 0 set sequential_cutoff 0"
		done
		write_config /dev/stdout "$fs" "$(dm_path test)" "$(dm_path scratch)" "/dev/fst${idx}lw" \
			"$OUT/runs/$fs-$cfg/results" | sed -n 's/^export /  local.config: /p'
		idx=$((idx + 1))
	done
}

# ---------------------------------------------------------------------------
dry_run=0
case ${1:-} in
-n|--dry-run) dry_run=1 ;;
'') ;;
*) echo "usage: tests/fstests/run-guest.sh [--dry-run]" >&2; exit 2 ;;
esac
for c in $CONFIGS; do
	cfg_parse "$c" || { echo "run-guest: unknown configuration '$c' (known: $ALL_CONFIGS)" >&2; exit 2; }
done
for fs in $FILESYSTEMS; do
	case $fs in ext4|xfs) ;; *) echo "run-guest: unknown filesystem '$fs'" >&2; exit 2 ;; esac
done
if [ ! -x "$FSTESTS/check" ] || [ ! -x "$FSTESTS/ltp/fsx" ]; then
	echo "run-guest: no built fstests in $FSTESTS (tests/fstests/build.sh)" >&2
	exit 2
fi
[ ${#TESTS[@]} -gt 0 ] || { echo "run-guest: no tests" >&2; exit 2; }
for t in "${TESTS[@]}"; do
	[ -f "$FSTESTS/tests/$t" ] || { echo "run-guest: no test $t in $FSTESTS" >&2; exit 2; }
done
runs=()
for fs in $FILESYSTEMS; do
	for cfg in $CONFIGS; do
		runs+=("$fs $cfg")
	done
done
if [ $dry_run = 1 ]; then
	print_plan
	exit 0
fi
if [ "${STASH_IN_VM:-0}" != 1 ] && [ "${STASH_FSTESTS_NATIVE:-0}" != 1 ]; then
	echo "run-guest: runs in the test VM (make check-fstests); STASH_FSTESTS_NATIVE=1 to run here" >&2
	exit 2
fi
[ "$(id -u)" = 0 ] || { echo "run-guest: must run as root" >&2; exit 2; }

(stash_load_module) || exit 2
for m in dm_flakey dm_log_writes dm_thin_pool ext4 xfs; do
	modprobe "$m" || log "cannot load $m (the tests that need it will not run)"
done
rm -rf "$OUT"
mkdir -p "$OUT/runs" "$MNT" || exit 2
SHIM_BIN=$(mktemp -d /tmp/fstests-bin.XXXXXX)
make_udevadm_shim "$SHIM_BIN"
add_users
{
	tsv_row kernel "$(uname -r)"
	tsv_row module "$(modinfo -F version "$STASH_KO" 2>/dev/null) $(sha256sum "$STASH_KO" | cut -c1-12)"
	tsv_row repo "$(git -C "$STASH_REPO" describe --always --dirty 2>/dev/null)"
	tsv_row fstests "$(cut -c1-12 "$FSTESTS/../unpacked" 2>/dev/null)"
	tsv_row tests "${TESTS[*]}"
	tsv_row configs "$CONFIGS"
	tsv_row filesystems "$FILESYSTEMS"
	tsv_row test_mib "$(vol_mib test)"
	tsv_row scratch_mib "$(vol_mib scratch)"
	tsv_row cache_mib "$CACHE_MIB"
	tsv_row log_mib "$LOG_MIB"
	tsv_row time_s "$TOTAL_TIME"
	tsv_row long "$STASH_LONG"
	tsv_row date "$(date -u '+%Y-%m-%d %H:%MZ')"
} >"$OUT/info.tsv"
tsv_row fs config test result seconds note >"$OUT/results.tsv"
# shellcheck disable=SC2086 # COUNTERS: one column each
tsv_row fs config device verdict check_rc budget_s elapsed_s $COUNTERS \
	dirty_at_end cache_blocks errors fsck_volume fsck_origin content >"$OUT/runs.tsv"

echo "run-guest: fstests $FSTESTS; ${#TESTS[@]} tests on $FILESYSTEMS x $CONFIGS; ${TOTAL_TIME}s; results in $OUT"
matrix_start=$(date +%s)
idx=0
for r in "${runs[@]}"; do
	read -r fs cfg <<<"$r"
	left=$((TOTAL_TIME - ($(date +%s) - matrix_start)))
	budget=$((left / (${#runs[@]} - idx)))
	[ $budget -ge $MIN_BUDGET ] || budget=$MIN_BUDGET
	echo "=== $fs $cfg (run $((idx + 1))/${#runs[@]}, ${budget}s)"
	(run_one "$idx" "$fs" "$cfg" "$budget") 2>&1 | sed 's/^/    /'
	if [ ! -e "$OUT/runs/$fs-$cfg/done" ]; then
		# The run died (a device it could not make, a splat): its
		# rows say so, and so does the verdict.
		echo "    run-guest: the run failed"
		grep -q "^$fs	$cfg	" "$OUT/runs.tsv" ||
			tsv_row "$fs" "$cfg" all FAIL "" "$budget" "" "$(empty_fields $(($(wc -w <<<"$COUNTERS") + 5)))" \
				"run failed (see runs/$fs-$cfg)" >>"$OUT/runs.tsv"
		sed -i "/^$fs	$cfg	[a-z]*	ok	/s/	ok	/	FAIL	/" "$OUT/runs.tsv"
		if ! grep -q "^$fs	$cfg	" "$OUT/results.tsv"; then
			for t in "${TESTS[@]}"; do
				tsv_row "$fs" "$cfg" "$t" error "" "the run failed before ./check" >>"$OUT/results.tsv"
			done
		fi
	fi
	idx=$((idx + 1))
done
echo "run-guest: matrix done in $(($(date +%s) - matrix_start))s"
rm -rf "$SHIM_BIN"
rmmod dm_stash 2>/dev/null
summary
