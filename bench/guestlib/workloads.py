"""The fio workloads (WORKLOADS) and one measured run of one of them on
one system: the zipf warm-up, the file system job, the summary."""
import os
import time

from .devices import FS_MNT, QUIET_S, SLOW, origin_reads_per_read, settle
from .util import (delta, dev_bytes, disk_stat, fio, fio_dev_args, fmt_ratio,
                   hit_ratio, log, sh)


# name, fio rw, block size, queue depth, region (hot set | whole device),
# direction whose latency is the headline, extra fio options.
#
# The zipf hot set's place is fixed (":0.5", the middle of the device): fio
# otherwise derives it from the seed, and the warm-up (random seeds) would
# warm other blocks than the measured run (fio's default seed) reads.
ZIPF = "--random_distribution=zipf:1.2:0.5"
# The zipf warm-up ends when the origin reads per client read of a window
# are less than ZIPF_SETTLED below those ZIPF_SETTLE_SPAN windows before.
# A span of one window stopped dm-stash long before its steady state: its
# misses fall by 2-4% per 10 s window for minutes (0.037 at 50 s, 0.028 at
# 200 s) as the clock keeps the blocks that are really hot, while an
# LRU-like cache is flat after a minute.
ZIPF_SETTLED = 0.03
ZIPF_SETTLE_SPAN = 3
WORKLOADS = [
    dict(name="randread-4k-qd1", rw="randread", bs="4k", qd=1, region="hot",
         lat="read", desc="4 KiB random read hits, qd 1 (hot set, warmed)"),
    dict(name="randread-4k-qd16", rw="randread", bs="4k", qd=16, region="hot",
         lat="read", desc="4 KiB random read hits, qd 16 (hot set, warmed)"),
    dict(name="randwrite-4k-qd16", rw="randwrite", bs="4k", qd=16,
         region="hot", lat="write",
         desc="4 KiB random writes that fit the cache, qd 16"),
    dict(name="randwrite-4k-fdatasync-qd1", rw="randwrite", bs="4k", qd=1,
         region="hot", lat="sync", extra=["--fdatasync=1"],
         desc="4 KiB random writes, fdatasync after each, qd 1"),
    dict(name="randwrite-4k-qd1", rw="randwrite", bs="4k", qd=1,
         region="hot", lat="write",
         desc="4 KiB random writes, qd 1 (the no-sync reference)"),
    dict(name="randwrite-4k-fdatasync32-qd1", rw="randwrite", bs="4k", qd=1,
         region="hot", lat="sync", extra=["--fdatasync=32"],
         desc="4 KiB random writes, fdatasync every 32, qd 1"),
    dict(name="zipf1.2-read-qd16", rw="randread", bs="4k", qd=16,
         region="all", lat="read", warm="zipf",
         extra=[ZIPF],
         desc="4 KiB zipf 1.2 random reads, qd 16, whole origin (4x cache)"),
    dict(name="zipf1.2-90r10w-qd16", rw="randrw", bs="4k", qd=16,
         region="all", lat="read", warm="zipf",
         extra=["--rwmixread=90", ZIPF],
         desc="4 KiB zipf 1.2 mix, 90% reads, qd 16, whole origin (4x cache)"),
    dict(name="seqread-1m-qd4", rw="read", bs="1m", qd=4, region="all",
         lat="read", desc="1 MiB sequential reads, qd 4, whole origin"),
    dict(name="seqwrite-1m-qd4", rw="write", bs="1m", qd=4, region="all",
         lat="write", desc="1 MiB sequential writes, qd 4, whole origin"),
    dict(name="ext4-randwrite-fsync", kind="fs", lat="sync",
         desc="ext4 (fresh mkfs): buffered 4 KiB random writes to a few "
              "files, fsync every 16 writes"),
]


# ---------------------------------------------------------------------------
# One workload on one system
# ---------------------------------------------------------------------------
def run_fs_workload(sysm, wl, rep, cfg):
    dev, mnt = sysm.dev, getattr(sysm, "fs_mnt", FS_MNT)
    t = time.time()
    sh("mkfs.ext4 -F -q -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 %s"
       % dev, timeout=300)
    mkfs_s = time.time() - t
    os.makedirs(mnt, exist_ok=True)
    sh("mount -t ext4 -o noatime %s %s" % (dev, mnt))
    try:
        files = ["--directory=" + mnt, "--nrfiles=%d" % cfg["fs_files"],
                 "--filesize=%dm" % cfg["fs_file_mb"],
                 "--size=%dm" % (cfg["fs_files"] * cfg["fs_file_mb"]),
                 "--ioengine=psync", "--direct=0"]
        # Lay the files out first (not measured) and sync them.
        fio(wl["name"], files + ["--rw=write", "--bs=1m", "--end_fsync=1"],
            os.path.join(sysm.rawdir, "%s-layout.json" % wl["name"]), 900)
        runtime = measured_runtime(wl, cfg, sysm)
        job = files + ["--rw=randwrite", "--bs=4k", "--fsync=16",
                       "--file_service_type=random", "--time_based"]
        settled = settle(cfg) if sysm.caching else None
        probe = fs_probe(sysm, wl, job, cfg) if sysm.caching else None
        # Longer if the probes never settled, or if their last windows
        # are too far apart.
        spread = None
        if probe:
            spread = window_spread(probe, "iops")
            if probe["settled"] and spread <= UNSTEADY_SPREAD:
                spread = None
        runtime, longer = lengthen_if_unsteady(
            wl, runtime, spread, "probe windows" if probe and
            probe["settled"] else "probe windows (not settled)")
        before_c, before_o = sysm.counters(), disk_stat(SLOW)
        r = fio(wl["name"], job + ["--runtime=%d" % runtime,
                                   "--ramp_time=%d" % cfg["ramp"]],
                os.path.join(sysm.rawdir, "%s-%d.json" % (wl["name"], rep)),
                runtime + cfg["ramp"] + 300)
        r["settle"] = settled
        if probe:
            r["warmup"] = probe
        if longer:
            r["unsteady"] = longer
        r["counters"] = delta(sysm.counters(), before_c)
        r["origin_io"] = delta(disk_stat(SLOW), before_o)
    finally:
        sh("umount %s" % mnt, check=False)
    r["mkfs_s"] = mkfs_s
    return r


# Unmeasured windows of the file system job before its measured run on a
# cache, until one's IOPS is within FS_PROBE_SETTLED of the window before
# (at least two, at most FS_PROBE_MAX).  dm-cache WB's ext4 figure was 603
# and 870 IOPS in two runs: right after the files are laid out smq had
# promoted nothing in one run's 10 s window and 175 blocks in the other's.
# Two fixed probe windows were not enough: they rose 410 > 453 and
# 406 > 465 IOPS (within 15%), and the measured windows gave 499 and 779.
# A cache whose probes do not settle is measured UNSTEADY_FACTOR times
# longer.
FS_PROBE_SETTLED = 0.05
FS_PROBE_MAX = 6


def fs_probe(sysm, wl, job, cfg):
    """Probe windows of busy_runtime seconds of the file system job @job
    on @sysm, in the shape zipf_warm_up() returns (with IOPS, not read
    IOPS, per window)."""
    windows, settled = [], False
    for i in range(FS_PROBE_MAX):
        w = fio(wl["name"] + "-probe", job + [
            "--runtime=%d" % cfg["busy_runtime"]],
            os.path.join(sysm.rawdir, "%s-probe-%d.json" % (wl["name"], i)),
            cfg["busy_runtime"] + 300)
        iops = sum(w.get(d, {}).get("iops", 0) for d in ("read", "write"))
        windows.append(dict(seconds=cfg["busy_runtime"], iops=iops))
        log("  %s probe window %d: %.0f IOPS" % (wl["name"], i + 1, iops))
        prev = windows[-2]["iops"] if i else None
        if prev and abs(iops / prev - 1) <= FS_PROBE_SETTLED:
            settled = True
            break
    return dict(seconds=len(windows) * cfg["busy_runtime"], settled=settled,
                settled_below=FS_PROBE_SETTLED, max_windows=FS_PROBE_MAX,
                windows=windows)


def zipf_warm_up(sysm, wl, args, cfg):
    """Unmeasured windows of the same mix, each with a random seed, until
    the cache has settled: a window of zipf_warm seconds whose origin reads
    per client read fell by less than ZIPF_SETTLED from the window
    ZIPF_SETTLE_SPAN windows before, at most zipf_warm_max seconds.  The
    measure is taken on the origin side because that is what limits a zipf run over a
    slow origin, and because every system has it (bcache's own counters
    fold in late).  Each system thus runs at its own steady state: a fixed,
    short warm-up would measure mostly first-touch misses, which no
    replacement policy can avoid and which make every cache look alike."""
    windows = []
    t, settled = 0, False
    while True:
        i = len(windows)
        before_o = disk_stat(SLOW)
        before = sysm.counters()
        w = fio(wl["name"] + "-warm", args + [
            "--time_based", "--runtime=%d" % cfg["zipf_warm"],
            # A random sequence per window: fio 3.33's zipf generator
            # replays one sequence for every --randseed value, so windows
            # with "other" seeds would repeat the first one.
            "--randrepeat=0"],
            os.path.join(sysm.rawdir, "%s-warm-%d.json" % (wl["name"], i)),
            cfg["zipf_warm"] + 300)
        t += cfg["zipf_warm"]
        per_read = origin_reads_per_read(before_o, w)
        windows.append(dict(seconds=cfg["zipf_warm"],
                            read_iops=w.get("read", {}).get("iops"),
                            origin_reads_per_read=per_read,
                            read_hit_ratio=None if sysm.delayed_counters
                            else hit_ratio(delta(sysm.counters(), before),
                                           "read")))
        log("  %s warm-up window %d: %.0f read IOPS, %s origin reads "
            "per read" % (wl["name"], i + 1, windows[-1]["read_iops"] or 0,
                          fmt_ratio(per_read)))
        if per_read is None or t >= cfg["zipf_warm_max"]:
            break
        prev = windows[-1 - ZIPF_SETTLE_SPAN]["origin_reads_per_read"] \
            if i >= ZIPF_SETTLE_SPAN else None
        if prev is not None and per_read >= prev * (1 - ZIPF_SETTLED):
            settled = True
            break
    return dict(seconds=t, settled=settled,
                settled_below=ZIPF_SETTLED, settle_span=ZIPF_SETTLE_SPAN,
                windows=windows)


# A cache whose throughput swings from one warm-up window to the next
# (read IOPS of the last UNSTEADY_SPAN windows more than UNSTEADY_SPREAD
# apart) is measured UNSTEADY_FACTOR times longer.  dm-cache's smq moved
# between about 4,300 and 8,900 read IOPS from one 10 s zipf window to the
# next, in phases of about 20 s: a single 10 s window measured its 90/10
# mix at 5,523 read IOPS in one run and 8,005 in the other.
UNSTEADY_SPAN = 4
UNSTEADY_SPREAD = 0.15
UNSTEADY_FACTOR = 6


def window_spread(warmup, key="read_iops"):
    """max/min - 1 of the @key IOPS of the last UNSTEADY_SPAN warm-up
    windows (0 with fewer than two)."""
    iops = [w[key] for w in warmup["windows"][-UNSTEADY_SPAN:] if w.get(key)]
    if len(iops) < 2 or min(iops) <= 0:
        return 0.0
    return max(iops) / min(iops) - 1


def unsteady(warmup, key="read_iops"):
    """window_spread(), if that is more than UNSTEADY_SPREAD, else None."""
    spread = window_spread(warmup, key)
    return spread if spread > UNSTEADY_SPREAD else None


def lengthen_if_unsteady(wl, runtime, spread, what):
    """(runtime, record): @runtime UNSTEADY_FACTOR times longer if @spread
    (of the windows @what names) is not None, with the record of that for
    results.json; else (@runtime, None)."""
    if spread is None:
        return runtime, None
    runtime *= UNSTEADY_FACTOR
    log("  %s: %s %.0f%% apart: measuring %d s" % (
        wl["name"], what, 100 * spread, runtime))
    return runtime, dict(spread=spread, runtime=runtime)


def measured_runtime(wl, cfg, sysm):
    """busy_runtime for the runs beside a cache's own background work: the
    zipf and file system workloads, and a cache's writes (its writeback,
    journal and allocation run beside them).  bcache-wb's 4 KiB writes at
    qd 1 take 12 us at the median and 120 us at p99, yet average 350 us:
    a few long stalls set the figure, and 3 s windows held so few of them
    that two runs measured 2,572 and 3,104 IOPS.  A cache's 1 MiB
    sequential reads likewise: 3 s held fewer than 200 of bcache-wt's, and
    a few that stalled for 300 ms moved its figure by 18.6% between two
    runs."""
    rw = wl.get("rw", "")
    if wl.get("warm") == "zipf" or wl.get("kind") == "fs" or \
            (cfg.get("busy_writes") and sysm.caching and "write" in rw) or \
            (cfg.get("busy_seq_reads") and sysm.caching and rw == "read"):
        return max(cfg["runtime"], cfg["busy_runtime"])
    return cfg["runtime"]


def run_workload(sysm, wl, rep, cfg):
    """One measured run of @wl on @sysm, once the devices are quiet
    (settle()).  A system with an adjacent reference (sysm.reference) has
    the same run made on it first, before any zipf warm-up, so that the
    measured run follows its warm-up directly and starts from the state
    the warm-up reached."""
    ref = getattr(sysm, "reference", None)
    if wl.get("kind") == "fs":
        refr = run_fs_workload(ref, wl, rep, cfg) if ref else None
        r = run_fs_workload(sysm, wl, rep, cfg)
        if refr:
            r["reference"] = refr
        return r
    size = cfg["hot_mb"] << 20 if wl["region"] == "hot" else \
        (dev_bytes(sysm.dev) >> 20) << 20
    args = fio_dev_args(sysm.dev, wl["rw"], wl["bs"], wl["qd"], size) + \
        wl.get("extra", [])
    res = {}
    if ref:
        res["reference"] = run_workload(ref, wl, rep, cfg)
    # Only a cache does background work; the reference and the raw
    # devices have none to wait for.
    res["settle"] = settle(cfg) if sysm.caching else None
    if res["settle"] and (not res["settle"]["quiet"] or
                          res["settle"]["seconds"] > QUIET_S + 1):
        log("  %s: waited %.0f s for the devices to be quiet%s" % (
            wl["name"], res["settle"]["seconds"],
            "" if res["settle"]["quiet"] else " (they were not)"))
    if wl.get("warm") == "zipf" and rep == 0 and cfg["zipf_warm"] > 0 and \
            sysm.caching:
        res["warmup"] = zipf_warm_up(sysm, wl, args, cfg)
    runtime = measured_runtime(wl, cfg, sysm)
    spread = unsteady(res["warmup"]) if "warmup" in res else None
    runtime, longer = lengthen_if_unsteady(wl, runtime, spread,
                                           "warm-up windows")
    if longer:
        res["unsteady"] = longer
    # A zipf run with fio's default seed replays the sequence of the last
    # measured zipf run (the read workload's, for the mix), whose blocks
    # that run has just promoted: the mix measured 0.997 hits against
    # 0.96 in its warm-up.  Each measured zipf run gets a fresh random
    # sequence, as each warm-up window does.
    fresh = ["--randrepeat=0"] if wl.get("warm") == "zipf" else []
    before_c, before_o = sysm.counters(), disk_stat(SLOW)
    r = fio(wl["name"], args + fresh + [
                "--time_based", "--runtime=%d" % runtime,
                "--ramp_time=%d" % cfg["ramp"]],
            os.path.join(sysm.rawdir, "%s-%d.json" % (wl["name"], rep)),
            runtime + cfg["ramp"] + 300)
    r.update(res)
    r["counters"] = delta(sysm.counters(), before_c)
    r["origin_io"] = delta(disk_stat(SLOW), before_o)
    return r


def summarize(wl, r, sysm=None):
    """Headline numbers of one fio result."""
    iops = sum(r.get(d, {}).get("iops", 0) for d in ("read", "write"))
    mib = sum(r.get(d, {}).get("mib_s", 0) for d in ("read", "write"))
    lat = r.get(wl["lat"]) or r.get("write") or r.get("read") or {}
    s = dict(iops=iops, mib_s=mib, p50_us=lat.get("p50_us"),
             p99_us=lat.get("p99_us"), lat_of=wl["lat"],
             read_iops=r.get("read", {}).get("iops", 0),
             write_iops=r.get("write", {}).get("iops", 0))
    d = r.get("counters")
    s["read_hit_ratio"] = hit_ratio(d, "read")
    s["write_hit_ratio"] = hit_ratio(d, "write")
    o = r.get("origin_io")
    rios = r.get("read", {}).get("ios", 0)
    if o is not None and rios:
        s["origin_reads_per_read"] = o["read_ios"] / rios
    ref = r.get("reference")
    if ref:
        rs = summarize(wl, ref)
        s["ref_iops"], s["ref_p99_us"] = rs["iops"], rs["p99_us"]
        s["iops_vs_ref"] = iops / rs["iops"] if rs["iops"] else None
        s["p99_vs_ref"] = s["p99_us"] / rs["p99_us"] \
            if s["p99_us"] and rs["p99_us"] else None
    if sysm is not None and sysm.hit_ratio_from_origin:
        s["write_hit_ratio"] = None
        s["read_hit_ratio"] = None
        if "origin_reads_per_read" in s:
            s["read_hit_ratio"] = max(0.0, 1 - s["origin_reads_per_read"])
        s["hit_ratio_source"] = "origin reads"
    return s
