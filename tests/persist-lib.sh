# shellcheck shell=bash
# Helpers of the persistence tests (tests/cases/5x-persist-*): source after
# tests/lib.sh.
#
# The tools they use live in tests/tools/bin ("make tests-tools", part of
# "make check"): crashio (logged writer and checker), replay-log
# (dm-log-writes replay) and stash-md (forges metadata fields); and
# stashctl's offline dump and check read the metadata
# ($STASH_STASHCTL picks another build, e.g. stashctl-asan).

PERSIST_TOOLS=${PERSIST_TOOLS:-$STASH_REPO/tests/tools/bin}
STASHCTL=${STASH_STASHCTL:-$STASH_REPO/userspace-tools/stashctl}

# persist_setup: root, the module, the tools, and the dm targets the tests
# stack under the cache.
persist_setup() {
	local t

	require_root
	stash_load_module
	for t in crashio replay-log stash-md; do
		[ -x "$PERSIST_TOOLS/$t" ] ||
			die "$PERSIST_TOOLS/$t is missing (make tests-tools)"
	done
	[ -x "$STASHCTL" ] || die "$STASHCTL is missing (make tools)"
	require_cmd jq
	modprobe dm_flakey && modprobe dm_log_writes ||
		die "cannot load dm_flakey / dm_log_writes"
}

crashio() { "$PERSIST_TOOLS/crashio" "$@"; }
replay_log() { "$PERSIST_TOOLS/replay-log" "$@"; }
stash_md() { "$PERSIST_TOOLS/stash-md" "$@"; }
stashctl() { "$STASHCTL" "$@"; }

# md_dump CACHE FILE: stashctl dump --json of the cache device into FILE.
md_dump() {
	stashctl dump --json "$1" >"$2" || die "stashctl dump $1 failed ($?)"
}

# md_mappings FILE: the mappings of a dump, one "cblock oblock dirty" a line.
md_mappings() {
	jq -r '.mappings[] | "\(.cblock) \(.oblock) \(.dirty)"' "$1"
}

# md_check CACHE CODE [REGEX]: stashctl check must exit with CODE and, with
# REGEX, print a line that matches it.
md_check() {
	local out rc

	out=$(stashctl check "$1" 2>&1)
	rc=$?
	sed 's/^/    | /' <<<"$out"
	assert_eq "$2" "$rc" "stashctl check $1: exit status"
	[ -z "$3" ] || assert_match "$3" "$out" "stashctl check $1: message"
}

# st DEV KEY: a field of the stash status line.
st() {
	stash_status_field "$1" "$2"
}

# used_blocks DEV: the used part of cache_blocks=<used>/<total>.
used_blocks() {
	st "$1" cache_blocks | cut -d/ -f1
}

# wait_clean DEV [SECS]: send "flush" and wait until no block is dirty and
# no writeback pass runs.
wait_clean() {
	local dev=$1 secs=${2:-120} i

	dmsetup message "$dev" 0 flush || die "flush message to $dev failed"
	for ((i = 0; i < secs * 10; i++)); do
		if [ "$(st "$dev" dirty)" = 0 ] && [ "$(st "$dev" state)" = idle ]; then
			return 0
		fi
		sleep 0.1
	done
	die "$dev still has $(st "$dev" dirty) dirty blocks after ${secs}s of flush"
}

# linear_create NAME DEV START LEN: a dm-linear slice; sets LINEAR_DEV.
linear_create() {
	dm_create "$1" "0 $4 linear $2 $3" || die "cannot create linear $1 on $2"
	LINEAR_DEV=$(dm_path "$1")
}

# dm_remove_name NAME: remove the helpers' device NAME (prefix added).
dm_remove_name() {
	dmsetup remove --retry "$STASH_DM_PREFIX$1" ||
		die "cannot remove $STASH_DM_PREFIX$1"
}

# zero_dev DEV [MIB]: zero the first MIB MiB of DEV (all of it by default).
zero_dev() {
	local mib=${2:-$(($(dev_sectors "$1") / 2048))}

	dd if=/dev/zero of="$1" bs=1M count="$mib" oflag=direct status=none ||
		die "cannot zero $1"
}

# assert_status_sane DEV: a persistent cache whose metadata is fine.
assert_status_sane() {
	assert_eq persistent "$(st "$1" metadata)" "metadata state of $1"
	assert_eq 0 "$(st "$1" cache_errors)" "cache errors on $1"
}

# rand_seed: set SEED for this run, from STASH_SEED if given (to repeat a
# failing run), and print it; seeds $RANDOM with it too.
rand_seed() {
	SEED=${STASH_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
	RANDOM=$SEED
	log "seed $SEED (repeat with STASH_SEED=$SEED)"
}

# pstash_create NAME ORIGIN CACHE MODE [OPT...]: stash_create that shows
# the kernel's reason when the table is refused; sets STASH_DEV.
pstash_create() {
	local name=$1

	shift
	kmsg_mark
	dm_create "$name" "$(stash_table "$@")" ||
		die "cannot create stash device $name: $(kmsg_since | grep -E 'stash|device-mapper')"
	STASH_DEV=$(dm_path "$name")
}

# lw_mark TEXT NAME...: the dm-log-writes mark TEXT into each of the
# helpers' log-writes devices NAME, in the order given.
lw_mark() {
	local text=$1 name

	shift
	for name in "$@"; do
		dmsetup message "$STASH_DM_PREFIX$name" 0 mark "$text" ||
			die "cannot mark $name with $text"
	done
}

# lw_check_space: die if a log-writes device ran out of log space since the
# last kmsg_mark (the log would then end early, silently).
lw_check_space() {
	if kmsg_since | grep -q 'log-writes.*Ran out of space'; then
		die "a dm-log-writes log device is too small"
	fi
}
