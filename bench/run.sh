#!/bin/bash
# dm-stash benchmark: boot the test VM once, run every system and workload
# in it (bench/guest.sh), then turn the results into ratio tables and charts
# on the host (bench/report.py).
#
# usage: bench/run.sh [quick|long]          (make bench / make bench-long)
#
# Environment (all optional):
#   BENCH_SYSTEMS="linear-fast stash-wt"  only these systems (see bench/guest.py)
#   BENCH_WORKLOADS="randread-4k-qd16"    only these workloads
#   BENCH_RUNTIME, BENCH_REPS, BENCH_RAMP, BENCH_CACHE_MB, BENCH_DELAY_MS,
#   BENCH_HOT_MB, BENCH_ZIPF_WARM (seconds per warm-up window),
#   BENCH_ZIPF_WARM_MAX (most zipf warm-up), BENCH_MEM_CACHE_GB,
#   BENCH_BUSY_RUNTIME (measured seconds of the zipf and ext4 workloads
#   and of a cache's writes),
#   BENCH_SETTLE_MAX (most seconds to wait for quiet devices)
#                                         override the mode's settings
#   BENCH_STASH_OPTS="volatile"           extra dm-stash table options
#   BENCH_MEMORY=0                        skip the RAM-per-cache-block figure
#   BENCH_REPORT_DIR=DIR                  where the report goes (default:
#                                         docs/bench for a full run, else
#                                         build/bench/last/report)
#   BENCH_TIMEOUT=SECS                    VM timeout
#   BENCH_CLOCK=virtual|real              virtual (default): one vCPU whose
#                                         clock counts its instructions
#                                         (QEMU -icount shift=BENCH_ICOUNT_SHIFT,
#                                         3 = 8 ns each), so the host's
#                                         speed swings do not reach the
#                                         figures; real: two vCPUs on the
#                                         host's clock (multi-threaded TCG)
#   BENCH_BUILD=0                         do not run `make module` first
#   BENCH_MODULE_REV=HEAD                 benchmark the module of that commit
#                                         (built apart; the work tree's
#                                         kmod/ is not used)
#
# Results: build/bench/runs/<date>/ (results.json, raw fio output, guest
# log), build/bench/last -> that run; the report (results.md, results.json,
# PNG charts) in the report directory.  Exit status is non-zero when the VM
# run failed or a system failed its "really caches" check.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

mode=${1:-quick}
case $mode in
quick) timeout_s=${BENCH_TIMEOUT:-7200} ;;
long)  timeout_s=${BENCH_TIMEOUT:-14400} ;;
*) echo "usage: bench/run.sh [quick|long]" >&2; exit 2 ;;
esac

# ---------------------------------------------------------------------------
# Packages (idempotent: installs only what is missing).  The guest runs on
# the host's root file system, so these serve the VM too.
# ---------------------------------------------------------------------------
pkgs=(fio jq gnuplot-nox bcache-tools e2fsprogs dmsetup util-linux python3
      qemu-system-x86 busybox-static)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "${missing[@]}" ||
		{ apt-get update -q && apt-get install -y -q "${missing[@]}"; }
fi

# The module, built against the kernel the VM boots (as `make vm-build`),
# from the work tree, or from the commit BENCH_MODULE_REV names (exported
# into build/bench/module-<sha>/ and built there; the work tree is left
# alone).
kver=${STASH_VM_KVER:-$(ls /boot/vmlinuz-6.1.*-amd64 2>/dev/null | sed 's|^/boot/vmlinuz-||' | grep -v -e '-rt-amd64$' -e '-cloud-amd64$' | sort -V | tail -n1)}
# BENCH_KDIR and BENCH_PAHOLE: the headers of a kernel that is not installed
# (make bench KERNEL=6.12 sets them; see tests/vm/get-kernel.sh).
kdir=${BENCH_KDIR:-$(realpath -e "/lib/modules/$kver/build" 2>/dev/null || true)}
pahole=()
[ -z "${BENCH_PAHOLE:-}" ] || pahole=(PAHOLE="$BENCH_PAHOLE")
module=kmod/dm-stash.ko
unset STASH_BENCH_MODULE_REV
if [ -n "${BENCH_MODULE_REV:-}" ]; then
	rev=$(git rev-parse --verify "${BENCH_MODULE_REV}^{commit}") ||
		{ echo "bench: no such commit: $BENCH_MODULE_REV" >&2; exit 2; }
	src=build/bench/module-$rev
	if [ ! -f "$src/kmod/dm-stash.ko" ]; then
		rm -rf "$src"
		mkdir -p "$src"
		git archive "$rev" Kbuild kmod | tar -x -C "$src"
		make -s -C "${kdir:?no kernel build tree for $kver}" M="$REPO/$src" "${pahole[@]}" modules >/dev/null ||
			{ echo "bench: building the module of $rev failed" >&2; exit 1; }
	fi
	module=$src/kmod/dm-stash.ko
	export STASH_BENCH_MODULE_REV=$rev
elif [ "${BENCH_BUILD:-1}" != 0 ]; then
	make -s module ${kdir:+KDIR=$kdir} "${pahole[@]}" >/dev/null ||
		{ echo "bench: make module failed (BENCH_BUILD=0 uses the existing kmod/dm-stash.ko)" >&2; exit 1; }
fi
[ -f "$module" ] || { echo "bench: $module is missing (make module)" >&2; exit 1; }
export STASH_BENCH_MODULE=$REPO/$module

# ---------------------------------------------------------------------------
# Settings for the guest (run-vm.sh passes STASH_* variables through).
# ---------------------------------------------------------------------------
export STASH_BENCH_MODE=$mode
export STASH_BENCH_COMMAND=${BENCH_COMMAND:-bench/run.sh $*}
[ -z "${BENCH_MODULE_REV:-}" ] ||
	STASH_BENCH_COMMAND="BENCH_MODULE_REV=$BENCH_MODULE_REV $STASH_BENCH_COMMAND"
partial=0
for v in SYSTEMS WORKLOADS RUNTIME REPS RAMP CACHE_MB DELAY_MS HOT_MB \
	 ZIPF_WARM ZIPF_WARM_MAX MEM_CACHE_GB STASH_OPTS MEMORY BUSY_RUNTIME \
	 SETTLE_MAX; do
	src=BENCH_$v
	if [ -n "${!src:-}" ]; then
		export "STASH_BENCH_$v=${!src}"
		partial=1
	else
		unset "STASH_BENCH_$v"
	fi
done

# The clock the guest measures with.  On the host's clock the emulated
# CPU's speed swings by +-25% from one second to the next (a busy loop on an
# idle host shows it), and two dm-linear devices measured alternately in 3 s
# runs differ by 19% (standard deviation of their ratio).  With -icount the
# guest's clock advances by a fixed 2^shift ns per instruction executed (and
# follows the host's clock to the next timer when idle): the same I/O path costs the same
# guest time on every run, and the same two devices agree to 0.1%.  Figures
# then measure instructions per I/O plus device latency, on one CPU.
clock=${BENCH_CLOCK:-virtual}
case $clock in
virtual)
	shift_ns=${BENCH_ICOUNT_SHIFT:-3}
	export STASH_VM_ACCEL=tcg STASH_VM_SMP=1
	export STASH_VM_ICOUNT="shift=$shift_ns"
	clock_desc="virtual: 1 vCPU, QEMU -icount shift=$shift_ns ($((1 << shift_ns)) ns per guest instruction)"
	;;
real)
	unset STASH_VM_ACCEL STASH_VM_SMP STASH_VM_ICOUNT
	clock_desc="real: 2 vCPUs, multi-threaded TCG, the host's clock"
	;;
*) echo "bench: BENCH_CLOCK is virtual or real, not '$clock'" >&2; exit 2 ;;
esac
export STASH_BENCH_CLOCK=$clock_desc

stamp=$(date -u +%Y%m%d-%H%M%S)
rundir=build/bench/runs/$stamp
mkdir -p "$rundir"
{
	echo "{"
	echo "  \"command\": $(printf '%s' "$STASH_BENCH_COMMAND" | jq -Rs .),"
	echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
	echo "  \"host_cpu\": $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' | jq -Rs 'rtrimstr("\n")'),"
	echo "  \"host_nproc\": $(nproc),"
	echo "  \"host_kernel\": \"$(uname -r)\","
	echo "  \"clock\": $(printf '%s' "$clock_desc" | jq -Rs .),"
	echo "  \"qemu\": $(qemu-system-x86_64 --version | head -n1 | jq -Rs 'rtrimstr("\n")'),"
	echo "  \"host_load_before\": \"$(cut -d' ' -f1-3 /proc/loadavg)\""
	echo "}"
} >"$rundir/host.json"

echo "bench: $mode run, VM timeout ${timeout_s}s, results in $rundir"
# A VM directory of our own (initramfs, serial log, results share), so
# that nobody else's VM run wipes our results before they are copied.
export STASH_VM_DIR=$REPO/build/bench/vm
set +e
tests/vm/run-vm.sh --timeout "$timeout_s" --mem 3584 -- bash bench/guest.sh
vm_rc=$?
cp -r "$STASH_VM_DIR/out/bench/." "$rundir/" 2>/dev/null
cp "$STASH_VM_DIR/serial.log" "$rundir/serial.log" 2>/dev/null
tmp=$(mktemp)
jq --arg l "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {host_load_after: $l}' \
	"$rundir/host.json" >"$tmp" && mv "$tmp" "$rundir/host.json"
set -e
ln -sfn "runs/$stamp" build/bench/last

if [ ! -f "$rundir/results.json" ]; then
	echo "bench: the VM produced no results.json (exit $vm_rc)" >&2
	exit 1
fi

if [ -n "${BENCH_REPORT_DIR:-}" ]; then
	report_dir=$BENCH_REPORT_DIR
elif [ $partial = 0 ]; then
	report_dir=docs/bench
else
	report_dir=$rundir/report
fi
rep_rc=0
python3 bench/report.py --results "$rundir/results.json" --host "$rundir/host.json" \
	--out "$report_dir" || rep_rc=$?
echo
echo "bench: report in $report_dir/results.md (raw results: $rundir)"
[ $vm_rc -eq 0 ] || echo "bench: the VM run exited with $vm_rc" >&2
[ $vm_rc -eq 0 ] && [ $rep_rc -eq 0 ]
