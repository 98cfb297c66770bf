#!/usr/bin/python3
"""Guest side of the dm-stash benchmark (run by bench/guest.sh in the VM).

For every system under test it builds the same fresh devices, sets the
system up, warms it, checks that it really caches, runs the fio workloads
and records everything in $STASH_OUT/bench/results.json.  The host
(bench/report.py) turns that into ratios, tables and charts.

Devices (identical for every system, recreated between systems):
  fast    /dev/ram0, brd, CACHE_MB
  slow    dm-linear (bench-slow) over a memory-backed null_blk device of
          4 x CACHE_MB that has a volatile write cache, so PREFLUSH/FUA are
          real down to it (brd cannot have one on this kernel: its
          queue/write_cache refuses "write back").  null_blk completes
          every command (read, write, flush) DELAY_MS after it arrives, on
          its own high-resolution timer (irqmode=2), with no limit on how
          many wait at once: a latency, no bandwidth or concurrency limit.
  meta    /dev/ram1, brd, CACHE_MB (dm-cache metadata)

Settings (environment, normally set by bench/run.sh):
  STASH_BENCH_MODE       quick | long
  STASH_BENCH_SYSTEMS    space-separated subset of SYSTEMS (default: all)
  STASH_BENCH_WORKLOADS  space-separated subset of workload names
  STASH_BENCH_RUNTIME, STASH_BENCH_REPS, STASH_BENCH_RAMP,
  STASH_BENCH_CACHE_MB, STASH_BENCH_DELAY_MS, STASH_BENCH_HOT_MB
                         override the mode's value
  STASH_BENCH_STASH_OPTS extra dm-stash table options (default none)
  STASH_BENCH_MEMORY     1 (default) / 0: measure kernel RAM per cache block
  STASH_BENCH_COMMAND    the command line that started the run (recorded)

Code: this file holds the modes, config() and main(); the rest is in
bench/guestlib/ (util, devices, workloads, systems, phases/drain and
phases/memory: see its __init__.py).
"""
import json
import os
import re
import sys
import time

from guestlib.devices import QUIET_S, Devices
from guestlib.phases.drain import drain_phase
from guestlib.phases.memory import memory_phase
from guestlib.systems import EXTRA_SYSTEMS, SYSTEMS, run_system
from guestlib.util import (OUT, RAW, REPO, T0, kernel_warnings_mark,
                           kernel_warnings_since, log, meminfo, read, sh,
                           try_sh, write)
from guestlib.workloads import WORKLOADS


MODES = {
    # runtime/ramp in seconds per measured fio run (busy_runtime for the
    # zipf and file system workloads, with busy_writes a cache's writes,
    # and with busy_seq_reads a cache's sequential reads: they run beside a
    # cache's own background work - promotions, writeback, index updates -
    # and need a longer window to average it); reps per workload;
    # zipf_warm: seconds per unmeasured zipf warm-up window, zipf_warm_max
    # the most warm-up a system gets (see zipf_warm_up()).
    "quick": dict(runtime=3, ramp=1, reps=1, cache_mb=256, delay_ms=8,
                  hot_mb=64, zipf_warm=10, zipf_warm_max=150,
                  fs_files=4, fs_file_mb=8,
                  max_warm_passes=6, mem_cache_gb=64,
                  busy_runtime=10, busy_writes=True, busy_seq_reads=True,
                  settle_max=60),
    "long": dict(runtime=20, ramp=3, reps=3, cache_mb=256, delay_ms=8,
                 hot_mb=64, zipf_warm=20, zipf_warm_max=600,
                 fs_files=8, fs_file_mb=16,
                 max_warm_passes=10, mem_cache_gb=64,
                 busy_runtime=20, busy_writes=True, busy_seq_reads=True,
                 settle_max=180),
}


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------
def config():
    mode = os.environ.get("STASH_BENCH_MODE", "quick")
    if mode not in MODES:
        sys.exit("bench: unknown STASH_BENCH_MODE %r" % mode)
    c = dict(MODES[mode], mode=mode)
    for k in ("runtime", "reps", "ramp", "cache_mb", "delay_ms", "hot_mb",
              "zipf_warm", "zipf_warm_max", "mem_cache_gb", "busy_runtime",
              "settle_max"):
        v = os.environ.get("STASH_BENCH_" + k.upper())
        if v:
            c[k] = int(v)
    c["origin_mb"] = 4 * c["cache_mb"]
    c["quiet_s"] = QUIET_S
    sel = os.environ.get("STASH_BENCH_SYSTEMS", "").split()
    bad = [s for s in sel if s not in SYSTEMS + EXTRA_SYSTEMS]
    if bad:
        sys.exit("bench: unknown system(s) %s; known: %s" % (
            bad, " ".join(SYSTEMS + EXTRA_SYSTEMS)))
    c["systems"] = sel or SYSTEMS
    names = [w["name"] for w in WORKLOADS]
    wsel = os.environ.get("STASH_BENCH_WORKLOADS", "").split()
    bad = [w for w in wsel if w not in names]
    if bad:
        sys.exit("bench: unknown workload(s) %s; known: %s" % (bad, " ".join(names)))
    c["workloads"] = wsel or names
    c["stash_opts"] = os.environ.get("STASH_BENCH_STASH_OPTS", "").split()
    c["memory"] = os.environ.get("STASH_BENCH_MEMORY", "1") != "0"
    c["drain"] = os.environ.get("STASH_BENCH_DRAIN", "1") != "0"
    return c


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
MODULE = os.environ.get("STASH_BENCH_MODULE") or os.path.join(REPO, "kmod/dm-stash.ko")


def load_modules():
    sh("modprobe -a dm-mod dm-bufio dm-zero")
    # insmod does not resolve dependencies (libcrc32c, ...): load them.
    deps = sh("modinfo -F depends %s" % MODULE, check=False).replace(",", " ")
    if deps.strip():
        sh("modprobe -a %s" % deps)
    if not os.path.isdir("/sys/module/dm_stash"):
        rc, out = try_sh("insmod %s" % MODULE)
        if rc != 0:
            sys.exit("bench: insmod %s failed: %s" % (MODULE, out))


def module_info():
    """Which dm-stash was measured: a commit given to run.sh, or the work
    tree's kmod/ (HEAD, and whether kmod/ had uncommitted changes)."""
    m = dict(path=MODULE)
    p = "/sys/module/dm_stash/srcversion"
    m["srcversion"] = read(p) if os.path.exists(p) else None
    rev = os.environ.get("STASH_BENCH_MODULE_REV")
    if rev:
        m.update(head=rev, kmod_dirty=False, source="commit %s" % rev)
        return m
    rc, head = try_sh("git -C %s rev-parse HEAD" % REPO)
    rc2, dirty = try_sh("git -C %s status --porcelain -- kmod Kbuild" % REPO)
    m.update(head=head if rc == 0 else None,
             kmod_dirty=bool(dirty) if rc2 == 0 else None,
             source="work tree")
    return m


def save(results):
    tmp = os.path.join(OUT, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
    os.replace(tmp, os.path.join(OUT, "results.json"))


def main():
    cfg = config()
    os.makedirs(RAW, exist_ok=True)
    load_modules()
    devs = Devices(cfg)
    cpu = re.search(r"model name\s*:\s*(.*)", read("/proc/cpuinfo"))
    results = dict(
        meta=dict(mode=cfg["mode"], config={k: v for k, v in cfg.items()},
                  command=os.environ.get("STASH_BENCH_COMMAND", ""),
                  started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  guest_kernel=os.uname().release,
                  guest_cpu=cpu.group(1) if cpu else None,
                  guest_nproc=os.cpu_count(),
                  guest_mem_mib=meminfo()["MemTotal"] >> 20,
                  fio=sh("fio --version"),
                  module=module_info()),
        workloads=[dict(w) for w in WORKLOADS if w["name"] in cfg["workloads"]],
        systems={})
    save(results)
    # The VM boots with panic_on_warn for the tests.  Here a peer's kernel
    # warning (bcache's, say) must not take the other systems' figures
    # with it: each system's warnings are recorded, and one that names
    # dm_stash fails the run.
    write("/proc/sys/kernel/panic_on_warn", 0)
    stash_warned = []
    for name in cfg["systems"]:
        mark = kernel_warnings_mark()
        results["systems"][name] = run_system(name, cfg, devs)
        warns = kernel_warnings_since(mark)
        if warns:
            results["systems"][name]["kernel_warnings"] = warns
            log("  kernel warnings during %s:\n    %s" % (
                name, "\n    ".join(warns[:20])))
            if any("dm_stash" in w or "stash_" in w for w in warns):
                stash_warned.append(name)
        if "devices" not in results and devs.described:
            results["devices"] = devs.described
        save(results)
    if cfg["drain"] and ("stash-wb" in cfg["systems"] or
                         os.environ.get("STASH_BENCH_DRAIN") == "force"):
        log("=== dm-stash drain")
        try:
            results["drain"] = drain_phase(cfg, devs)
        except Exception as e:
            results["drain"] = dict(error=str(e))
            log("  drain phase ERROR: %s" % e)
        save(results)
    if cfg["memory"]:
        log("=== kernel memory per cache block")
        try:
            results["memory"] = memory_phase(cfg, devs)
        except Exception as e:
            results["memory"] = dict(error=str(e))
            log("  memory phase ERROR: %s" % e)
    results["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                time.gmtime())
    results["meta"]["wall_s"] = time.time() - T0
    save(results)
    bad = [n for n, r in results["systems"].items()
           if r["status"] in ("failed", "error")] + \
        ["dm-stash kernel warning during %s" % n for n in stash_warned]
    log("done in %.0f s%s" % (time.time() - T0,
                              "; FAILED: " + " ".join(bad) if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
