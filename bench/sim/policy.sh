#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# policy.sh [--doc] PROG [stash-sim options]: the policy table of
# docs/bench/policy.md, in markdown, on stdout ("make -C bench/sim policy";
# with --doc, the whole page: "make -C bench/sim policy-doc").
# Every trace at every cache size of POLICY_SIZES (blocks of 4 KiB), each
# row one stash-sim --table run: the module's policy, Belady's OPT, LRU
# and ARC on the same trace.  Fails if a run fails, or if a policy beat
# OPT (stash-sim's self-check).
set -eo pipefail

doc=
if [ "$1" = --doc ]; then
	doc=1
	shift
fi
prog=$1
shift
sizes=${POLICY_SIZES:-4096 16384 65536}
ops=${POLICY_OPS:-2000000}

# One row per size; @: the trace's options.  Warm-up: 64 reads per cache
# block, at least 1M, the same for every policy.
rows() {
	local label=$1 c w
	shift
	for c in $sizes; do
		w=$((c * 64 > 1000000 ? c * 64 : 1000000))
		"$prog" --cache-blocks "$c" --warmup "$w" --ops "$ops" "$@" \
			--table "$label" || return 1
	done
}

# A loop of @num/@den times the cache.
loop_rows() {
	local label=$1 trace=$2 num=$3 den=$4 c w
	shift 4
	for c in $sizes; do
		w=$((c * 64 > 1000000 ? c * 64 : 1000000))
		"$prog" --cache-blocks "$c" --warmup "$w" --ops "$ops" \
			--trace "$trace" --loop-blocks $((c * num / den)) "$@" \
			--table "$label" || return 1
	done
}

table() {
	"$prog" --table-header
	rows "zipf 0.9" --trace zipf --zipf-theta 0.9 "$@"
	rows "zipf 1.2" --trace zipf --zipf-theta 1.2 "$@"
	rows "zipf 1.2 + scans" --trace zipf-scans --zipf-theta 1.2 "$@"
	rows "shifting hot set" --trace shift --zipf-theta 1.2 "$@"
	loop_rows "seq loop 1.5x" loop-seq 3 2 "$@"
	loop_rows "seq loop 3x" loop-seq 3 1 "$@"
	loop_rows "random loop 1.5x" loop-rand 3 2 "$@"
	loop_rows "random loop 3x" loop-rand 3 1 "$@"
}

intro() {
	cat <<'EOT'
# Promotion policy: dm-stash against OPT, LRU and ARC

Hit ratios of dm-stash's read-path policy beside Belady's OPT, LRU and ARC,
from the policy simulator (bench/sim/stash-sim.c).  The simulator runs the
module's own policy code, compiled in userspace: the promotion decision
(stash_policy_decide() in kmod/stash-policy.c, which the module's
promote_decide_locked() calls too), the promotion filter, the sequential
detector (cutoff 4 MiB, the target's default) and the clock
(kmod/stash-map.c).  Reads only, of one 4 KiB block each; fills complete
at once.

Each row is one trace, generated once and replayed through every policy.
Hit ratios are those of the measured phase: 2M reads after a warm-up of
64 reads per cache block (at least 1M), the same for every policy.

Traces (origin 4x the cache unless said):
- **zipf 0.9**, **zipf 1.2**: Zipf(theta) reads generated as fio's
  `random_distribution=zipf:theta`, hot blocks scattered over the origin
  as fio does.
- **zipf 1.2 + scans**: the same, with a sequential scan of 2x the cache
  from a random offset after every 8x the cache zipf reads (a sixth of
  the reads are scans).
- **shifting hot set**: zipf 1.2 whose every block moves by a new random
  offset (mod the origin) every 16x the cache reads: the new hot set is
  mostly blocks that were cold.
- **seq loop 1.5x / 3x**: a loop over 1.5x (3x) the cache's blocks, in
  order (origin: the loop).  The sequential cutoff sees it.
- **random loop 1.5x / 3x**: the same blocks in a fixed random order, so
  the cutoff does not decide it.

Columns:
- **stash**: dm-stash's policy.  **LRU**: promote every miss, evict the
  least recently used.  **ARC**: Megiddo and Modha's (FAST 2003), T1/T2
  with ghost lists B1/B2 and the adaptive p.  LRU and ARC promote
  sequential reads too.
- **OPT**: Belady's offline optimum with bypass: on a miss with the cache
  full, of the cached blocks and the incoming one, the one read again
  farthest in the future stays out.  It knows the future: no real cache
  reaches it.  It is optimal over the whole trace, which the simulator
  checks (no policy may have more hits over warm-up and measured phase
  together, or the run fails); over the measured phase alone a policy can
  come out a hair above it (random loop 3x).
- **static**: the best static cache of the measured phase in hindsight
  (the cache-size most read blocks, their first reads counted as hits, so
  it can exceed OPT).  On the zipf traces, whose reads are independent,
  it is about what the most probable blocks give: no online policy can
  expect more.
- **stash/OPT**, **stash - LRU**, and the targets: **>= 0.95x OPT** on the
  zipf traces, **>= LRU** on every trace.

Why the misses are misses, and what was tried: [policy-notes.md](policy-notes.md).

EOT
}

out=$(table "$@")
if [ -n "$doc" ]; then
	intro
	echo "\`make -C bench/sim policy-doc\` at commit" \
		"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
		"$(date -u +%Y-%m-%d):"
	echo
fi
echo "$out"
echo
echo "$out" | awk -F'|' '
	/^\| [^-t]/ {
		if ($11 ~ /PASS/) opt_pass++; else if ($11 ~ /MISS/) opt_miss++
		if ($12 ~ /PASS/) lru_pass++; else if ($12 ~ /MISS/) lru_miss++
	}
	END {
		printf("Targets: >= 0.95x OPT on zipf: %d pass, %d miss; ", opt_pass, opt_miss)
		printf(">= LRU on every trace: %d pass, %d miss.\n", lru_pass, lru_miss)
	}'
