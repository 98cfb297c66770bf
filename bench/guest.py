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
"""
import fcntl
import glob
import json
import os
import re
import shlex
import struct
import subprocess
import sys
import time

OUT = os.path.join(os.environ["STASH_OUT"], "bench")
RAW = os.path.join(OUT, "raw")
REPO = os.getcwd()

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

# Before each workload the devices must be quiet: no I/O reaches the cache
# or the origin for QUIET_S seconds (longer than the idle time after which
# dm-stash (2 s) and dm-cache (1 s) start their background writeback), at
# most settle_max seconds.  Without it a workload pays for the writeback of
# what the one before it dirtied, by an amount that depends on timing:
# dm-cache WB's zipf reads measured 0.59x and 0.77x dm-linear in two runs.
QUIET_S = 3

# Rounds of the sequential drain figure (origin bandwidth, then a drain).
DRAIN_ROUNDS = 3
# The origin's bandwidth (MB/s, null_blk mbps) in the throttle's part of the
# drain phase.
THROTTLE_MBPS = 50
# The origin's bandwidth in the drain's disk model: below what the one
# emulated vCPU copies (1 MiB writes to the latency-only origin run at
# about 28 MiB/s, a drain's reads and writes at about 20), so that the
# disk, not the CPU, is what the drain is measured against.
DRAIN_DISK_MBPS = 10
# The drain's random part also runs with this writeback_latency (percent):
# what a tight foreground target costs the drain and buys the read hits.
RANDOM_TIGHT_LATENCY = 110


def nullb_max_sectors(mbps):
    """The largest request (in sectors, a power of two) that a null_blk
    limited to @mbps lets through four times per tick.  Its throttle
    refills a budget of mbps MiB / 50 every 20 ms and requeues a request
    that does not fit the rest of it: a request larger than the whole
    budget (a 1 MiB write at mbps 50) would be requeued forever."""
    budget = (1 << 20) // 50 * mbps
    size = 4096
    while size * 2 * 4 <= budget and size < (1 << 20):
        size *= 2
    return size // 512

SYSTEMS = ["raw-fast", "raw-slow", "linear-fast",
           "stash-wa", "stash-wt", "stash-wb",
           "dmcache-wt", "dmcache-wb", "writecache",
           "bcache-wa", "bcache-wt", "bcache-wb"]
# Only when STASH_BENCH_SYSTEMS names them: dm-stash with checksums (the
# 'checksum' option's cost, against stash-wa/wt/wb).
EXTRA_SYSTEMS = ["stash-wa-csum", "stash-wt-csum", "stash-wb-csum"]

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

FAST = "/dev/ram0"
META = "/dev/ram1"
# The adjacent reference: dm-linear over a third brd of the fast device's
# size, measured right before each system's run of each workload (see
# run_workload()).
REF = "/dev/ram2"
REF_NAME = "bench-ref"
REF_DEV = "/dev/mapper/" + REF_NAME
REF_FS_MNT = "/mnt/bench-ref-fs"
SLOW_NAME = "bench-slow"
SLOW = "/dev/mapper/" + SLOW_NAME
NULLB_NAME = "nullb-slow"
NULLB_CFG = "/sys/kernel/config/nullb/" + NULLB_NAME
FS_MNT = "/mnt/bench-fs"


class NotAvailable(Exception):
    """The system cannot be built on this kernel/module (not a failure)."""


class CheckFailed(Exception):
    """The system does not really cache: its numbers must not be used."""


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------
T0 = time.time()


def log(msg):
    print("bench[%6.1fs] %s" % (time.time() - T0, msg), flush=True)


def sh(cmd, check=True, timeout=600, input=None):
    """Run a shell command; return stdout (stripped)."""
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True,
                       timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s%s" % (
            p.returncode, cmd, p.stdout[-2000:], p.stderr[-2000:]))
    return p.stdout.strip()


def try_sh(cmd, timeout=600):
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).strip()


def write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def read(path):
    with open(path) as f:
        return f.read().strip()


def dev_bytes(dev):
    return int(sh("blockdev --getsize64 %s" % dev))


def sysfs_of(dev):
    """/sys/dev/block/MAJ:MIN of a block device node."""
    st = os.stat(dev)
    return "/sys/dev/block/%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))


def disk_stat(dev):
    """(read ios, read sectors, write ios, write sectors, flushes)."""
    f = read(sysfs_of(dev) + "/stat").split()
    flushes = int(f[15]) if len(f) > 15 else 0
    return dict(read_ios=int(f[0]), read_sectors=int(f[2]),
                write_ios=int(f[4]), write_sectors=int(f[6]),
                flush_ios=flushes)


def origin_reads_per_read(before_o, fio_result):
    """Reads the slow device served since @before_o (disk_stat(SLOW)) per
    client read of @fio_result, or None if it made no reads."""
    rios = fio_result.get("read", {}).get("ios", 0)
    if not rios:
        return None
    return delta(disk_stat(SLOW), before_o)["read_ios"] / rios


def settle(cfg):
    """Wait until the fast and the slow device have been quiet for QUIET_S
    seconds (at most cfg["settle_max"]); return what it took.  Idle time
    on the virtual clock passes at the host's pace: this costs wall time."""
    def io():
        return [disk_stat(d) for d in (FAST, SLOW)]
    t0 = time.time()
    last, quiet_since = io(), t0
    while True:
        time.sleep(0.5)
        now, cur = time.time(), io()
        if cur != last:
            last, quiet_since = cur, now
        elif now - quiet_since >= QUIET_S:
            return dict(seconds=round(now - t0, 1), quiet=True)
        if now - t0 >= cfg["settle_max"]:
            return dict(seconds=round(now - t0, 1), quiet=False)


# Counters that are levels, not events: reported as their value at the end.
GAUGES = ("cache_blocks_used", "cache_blocks_total", "ram_per_block", "dirty",
          "dirty_blocks", "blocks", "free_blocks", "under_writeback", "error")


def delta(after, before):
    if after is None or before is None:
        return None
    return {k: after[k] if k in GAUGES else after[k] - before.get(k, 0)
            for k in after if isinstance(after[k], (int, float))}


def dm_create(name, table):
    rc, out = try_sh("dmsetup create %s --table %s" % (name, shlex.quote(table)))
    if rc != 0:
        return out
    return None


def dm_status(name):
    return sh("dmsetup status %s" % name)


def kernel_log_tail(pattern, n=5):
    rc, out = try_sh("dmesg")
    lines = [l for l in out.splitlines() if re.search(pattern, l)]
    return lines[-n:]


def kernel_warnings_mark():
    """A marker in the kernel log (see kernel_warnings_since())."""
    tag = "bench-mark-%d-%d" % (os.getpid(), time.time_ns())
    write("/dev/kmsg", tag)
    return tag


WARN_RE = re.compile(r"WARNING:|BUG[: ]|Oops|general protection|"
                     r"INFO: task .* blocked|soft lockup|Call Trace|\[dm_stash\]|"
                     r" stash_\w+\+0x")


def kernel_warnings_since(tag):
    """Warning, BUG and stack-trace lines logged after @tag."""
    lines = sh("dmesg", check=False).splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if tag in lines[i]:
            lines = lines[i + 1:]
            break
    return [l for l in lines if WARN_RE.search(l)]


def meminfo():
    m = {}
    for line in read("/proc/meminfo").splitlines():
        k, v = line.split(":", 1)
        m[k] = int(v.split()[0]) * 1024
    return m


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
# Devices: torn down and rebuilt from zero for every system
# ---------------------------------------------------------------------------
class Devices:
    def __init__(self, cfg):
        self.cfg = cfg
        self.described = None

    def teardown(self):
        for mnt in (FS_MNT, REF_FS_MNT):
            if os.path.ismount(mnt):
                try_sh("umount %s" % mnt)
        bcache_stop_all()
        # Every bench-* dm device, the slow device last.  A device that a
        # hung workload still holds gets the error target (--force) so that
        # its holders fail and let go, and the next system can run.
        def bench_devices():
            names = [l.split()[0] for l in
                     sh("dmsetup ls", check=False).splitlines()
                     if l.startswith("bench-")]
            return sorted(names, key=lambda n: (n.startswith("bench-slow"), n))
        for attempt in range(6):
            names = bench_devices()
            if not names:
                break
            for n in names:
                try_sh("dmsetup remove %s%s" % (
                    "--retry " if attempt < 3 else "--force ", n))
            if attempt >= 3:
                time.sleep(2)
        if bench_devices():
            raise RuntimeError("cannot remove dm devices: %s" % sh("dmsetup ls"))
        for _ in range(20):
            if not os.path.isdir("/sys/module/brd"):
                break
            rc, _out = try_sh("rmmod brd")
            if rc == 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("brd is busy, cannot wipe the devices")
        if os.path.isdir(NULLB_CFG):
            try:
                write(NULLB_CFG + "/power", 0)
            except OSError:
                pass
            os.rmdir(NULLB_CFG)
        if os.path.isdir("/sys/module/null_blk"):
            try_sh("rmmod null_blk")
        sh("sync; echo 3 >/proc/sys/vm/drop_caches")

    def create(self, prefill_fast=False, reference=False, mbps=0):
        """Fresh, zeroed devices.  The fast device is filled with data only
        when it is itself the device under test (raw-fast, linear-fast), so
        that its reads copy data as a cache's hits do; a cache gets it
        blank.  The origin is left unwritten (it reads as zeroes): its cost
        is the delay, not the copy.  With @reference, the adjacent
        reference (dm-linear over REF, filled like linear-fast's device) is
        built too."""
        c = self.cfg
        self.teardown()
        sh("modprobe brd rd_nr=3 rd_size=%d" % (c["cache_mb"] * 1024))
        # null_blk, memory backed, with a volatile write cache (so it takes
        # PREFLUSH/FUA), completing each command delay_ms after it came in
        # on a per-command hrtimer.  (dm-delay, used before, rounds its
        # delay to jiffies: the same I/O took 8 or 12 ms depending on where
        # it fell between two ticks, and p99 latencies jumped between runs.)
        sh("modprobe null_blk nr_devices=0")
        if not os.path.isdir(os.path.dirname(NULLB_CFG)):
            # configfs is a module here: guest-init could not mount it.
            sh("modprobe configfs; mountpoint -q /sys/kernel/config || "
               "mount -t configfs configfs /sys/kernel/config")
        os.mkdir(NULLB_CFG)
        for k, v in (("size", c["origin_mb"]), ("memory_backed", 1),
                     ("cache_size", 64), ("blocksize", 512),
                     ("discard", 1),
                     ("max_sectors",
                      nullb_max_sectors(mbps) if mbps else 2048),
                     ("irqmode", 2),
                     ("completion_nsec", c["delay_ms"] * 1000000),
                     ("hw_queue_depth", 1024 if not mbps else 4)):
            write(NULLB_CFG + "/" + k, v)
        if mbps:
            # A disk with a bandwidth (the throttle's part of the drain
            # phase): writes and reads share it, as on a real disk.
            write(NULLB_CFG + "/mbps", mbps)
        write(NULLB_CFG + "/power", 1)
        # null_blk names a configfs-made disk after its directory.
        self.nullb = "/dev/" + NULLB_NAME
        for _ in range(50):
            if os.path.exists(self.nullb):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("%s did not appear" % self.nullb)
        fill = ([FAST] if prefill_fast else []) + ([REF] if reference else [])
        for dev in fill:
            sh("fio --name=fill --filename=%s --rw=write --bs=1m --direct=1 "
               "--ioengine=libaio --iodepth=8 --output=/dev/null" % dev)
        if reference:
            err = dm_create(REF_NAME, "0 %d linear %s 0" % (
                dev_bytes(REF) // 512, REF))
            if err:
                raise RuntimeError("cannot create the reference: " + err)
        # A dm device on top, as for every stacked system, and a stable
        # name for it.
        err = dm_create(SLOW_NAME, "0 %d linear %s 0" % (
            dev_bytes(self.nullb) // 512, self.nullb))
        if err:
            raise RuntimeError("cannot create the slow device: " + err)
        if not self.described:
            self.described = self.describe()

    def describe(self):
        c = self.cfg
        return dict(
            fast=dict(dev=FAST, kind="brd", mib=c["cache_mb"],
                      write_cache=read("/sys/block/ram0/queue/write_cache")),
            slow=dict(dev=SLOW, kind="dm-linear over memory-backed null_blk "
                      "(irqmode=2: per-command hrtimer completion)",
                      mib=c["origin_mb"], delay_ms_configured=c["delay_ms"],
                      completion_nsec=int(read(NULLB_CFG + "/completion_nsec")),
                      irqmode=int(read(NULLB_CFG + "/irqmode")),
                      delay_applies_to="reads, writes and flushes",
                      table=sh("dmsetup table %s" % SLOW_NAME),
                      backing_write_cache=read(sysfs_of(self.nullb) +
                                               "/queue/write_cache"),
                      write_cache=read(sysfs_of(SLOW) + "/queue/write_cache")),
            metadata=dict(dev=META, kind="brd", mib=c["cache_mb"],
                          used_by="dm-cache"))


# ---------------------------------------------------------------------------
# bcache plumbing
# ---------------------------------------------------------------------------
# The warm-up of the hot set ends with a pass that reads at most this many
# origin reads per client read (see Bcache.warm()).
BCACHE_WARM_ORIGIN_READS = 0.001


def bcache_stop_all():
    if not os.path.isdir("/sys/fs/bcache"):
        return
    # Stopping a bcache device while its writeback still has bios in
    # flight leaks one from its bioset (6.1: "Objects remaining in
    # bio-224 on __kmem_cache_shutdown()" from cached_dev_free, a kernel
    # WARN): write everything back first, as an administrator would.
    for bdir in glob.glob("/sys/block/bcache*/bcache"):
        try:
            write(bdir + "/writeback_percent", 0)
            write(bdir + "/writeback_delay", 0)
        except OSError:
            pass
        end = time.time() + 120
        while time.time() < end:
            try:
                if float(read(bdir + "/dirty_data").rstrip("kMGTPEZY")) == 0:
                    break
            except (OSError, ValueError):
                break
            time.sleep(0.5)
        else:
            log("  bcache: %s still dirty after 120 s: %s" % (
                bdir, read(bdir + "/dirty_data")))
    for stop in glob.glob("/sys/block/bcache*/bcache/stop"):
        try:
            write(stop, 1)
        except OSError:
            pass
    for cset in glob.glob("/sys/fs/bcache/*-*-*-*-*"):
        try:
            write(cset + "/stop", 1)
        except OSError:
            pass
    for _ in range(100):
        if not glob.glob("/sys/block/bcache*") and \
           not glob.glob("/sys/fs/bcache/*-*-*-*-*"):
            return
        time.sleep(0.2)
    raise RuntimeError("bcache devices do not go away")


# ---------------------------------------------------------------------------
# fio
# ---------------------------------------------------------------------------
def parse_fio(path):
    txt = open(path).read()
    j = json.loads(txt[txt.index("{"):])
    job = j["jobs"][0]
    res = {}
    for d in ("read", "write"):
        x = job[d]
        if not x.get("total_ios"):
            continue
        pct = x["clat_ns"].get("percentile", {})
        res[d] = dict(iops=x["iops"], mib_s=x["bw_bytes"] / 2**20,
                      ios=x["total_ios"],
                      mean_us=x["clat_ns"]["mean"] / 1000,
                      p50_us=pct.get("50.000000", 0) / 1000,
                      p99_us=pct.get("99.000000", 0) / 1000)
    # fsync/fdatasync latencies (fio leaves sync.total_ios at 0; lat_ns.N
    # counts them).
    s = job.get("sync") or {}
    lat = s.get("lat_ns") or {}
    if lat.get("N"):
        pct = lat.get("percentile", {})
        res["sync"] = dict(ios=lat["N"], mean_us=lat.get("mean", 0) / 1000,
                           p50_us=pct.get("50.000000", 0) / 1000,
                           p99_us=pct.get("99.000000", 0) / 1000)
    res["runtime_ms"] = max(job["read"].get("runtime", 0),
                            job["write"].get("runtime", 0))
    return res


def fio(name, args, out_json, timeout):
    cmd = ["fio", "--name=" + name, "--output-format=json",
           "--output=" + out_json] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("fio failed: %s\n%s%s" % (
            " ".join(cmd), p.stdout[-2000:], p.stderr[-2000:]))
    return parse_fio(out_json)


def fio_dev_args(dev, rw, bs, qd, size, offset=0):
    return ["--filename=" + dev, "--direct=1", "--ioengine=libaio",
            "--rw=" + rw, "--bs=" + bs, "--iodepth=%d" % qd,
            "--size=%d" % size, "--offset=%d" % offset]


# ---------------------------------------------------------------------------
# Systems
# ---------------------------------------------------------------------------
class System:
    caching = True
    # bcache's counters fold in late and wrap: its hit ratios are taken from
    # the origin side instead (1 - origin reads per client read).
    hit_ratio_from_origin = False
    hit_counters = True       # counters() gives read/write hits and misses
    delayed_counters = False  # counters only fold in every ~14 s (bcache)

    def __init__(self, name, cfg, devs):
        self.name, self.cfg, self.devs = name, cfg, devs
        self.info = {}

    def setup(self):
        raise NotImplementedError

    def counters(self):
        return None

    def status(self):
        return None

    def warm(self, hot):
        """Default warm-up: random-read passes over the hot set at qd 32
        until a pass hits >= 95% (by the system's own counters), at least
        two passes and at most max_warm_passes."""
        passes = []
        for i in range(self.cfg["max_warm_passes"]):
            before = self.counters()
            r = fio("warm", fio_dev_args(self.dev, "randread", "4k", 32, hot) +
                    ["--randseed=%d" % (1000 + i)],
                    os.path.join(self.rawdir, "warm-%d.json" % i), 900)
            d = delta(self.counters(), before)
            ratio = hit_ratio(d, "read")
            passes.append(dict(pass_=i + 1, read_iops=r["read"]["iops"],
                               read_hit_ratio=ratio))
            log("  warm pass %d: %.0f IOPS, read hit ratio %s" % (
                i + 1, r["read"]["iops"], fmt_ratio(ratio)))
            if i >= 1 and ratio is not None and ratio >= 0.95:
                break
        return dict(method="random-read passes over the hot set, qd 32",
                    passes=passes)

    def teardown(self):
        pass


def hit_ratio(d, direction):
    if not d:
        return None
    h, m = d.get(direction + "_hits"), d.get(direction + "_misses")
    if h is None or m is None or h + m == 0:
        return None
    return h / (h + m)


def fmt_ratio(r):
    return "n/a" if r is None else "%.3f" % r


class RawFast(System):
    caching = False
    hit_counters = False

    def setup(self):
        self.dev = FAST
        self.info["table"] = "raw brd device"
        return True

    def warm(self, hot):
        return dict(method="none (no cache)")


class RawSlow(RawFast):
    def setup(self):
        self.dev = SLOW
        self.info["table"] = sh("dmsetup table %s" % SLOW_NAME)
        return True


class LinearFast(RawFast):
    def setup(self):
        table = "0 %d linear %s 0" % (dev_bytes(FAST) // 512, FAST)
        err = dm_create("bench-linear", table)
        if err:
            raise RuntimeError(err)
        self.dev = "/dev/mapper/bench-linear"
        self.info["table"] = table
        return True


class Reference(LinearFast):
    """The adjacent reference: dm-linear over REF, the same device and
    table as linear-fast's, built next to every other system."""

    def __init__(self, cfg, rawdir):
        super().__init__("reference", cfg, None)
        self.dev, self.rawdir, self.fs_mnt = REF_DEV, rawdir, REF_FS_MNT
        os.makedirs(rawdir, exist_ok=True)


class Stash(System):
    MODES = {"stash-wa": "writearound", "stash-wt": "writethrough",
             "stash-wb": "writeback"}
    # The checksum option's cost: the same cache with it.  Not in the
    # default set.
    for _m in ("wa", "wt", "wb"):
        MODES["stash-%s-csum" % _m] = MODES["stash-" + _m]
    OPTS = {n: ["checksum"] for n in MODES if n.endswith("-csum")}

    def setup(self):
        mode = self.MODES[self.name]
        opts = (["sequential_cutoff", "0"] + self.OPTS.get(self.name, []) +
                self.cfg["stash_opts"])
        table = "0 %d stash %s %s %s %d %s" % (
            dev_bytes(SLOW) // 512, SLOW, FAST, mode, len(opts), " ".join(opts))
        err = dm_create("bench-stash", table)
        if err:
            why = kernel_log_tail("stash")
            if mode == "writeback":
                raise NotAvailable("dmsetup create with mode writeback failed: "
                                   "%s %s" % (err, " | ".join(why)))
            raise RuntimeError("cannot create the stash device: %s %s" % (
                err, " | ".join(why)))
        self.dev = "/dev/mapper/bench-stash"
        self.info["table"] = table
        return True

    def status(self):
        return dm_status("bench-stash")

    def counters(self):
        kv = {}
        for tok in self.status().split()[3:]:
            if "=" in tok:
                k, v = tok.split("=", 1)
                kv[k] = v
        c = {}
        for k in ("read_hits", "read_misses", "write_hits", "write_misses",
                  "promotions", "evictions", "invalidations", "bypassed",
                  "cache_errors", "origin_errors", "dirty", "dirty_blocks",
                  "writebacks", "written_back", "writeback_errors",
                  "commits"):
            if k in kv and kv[k].isdigit():
                c[k] = int(kv[k])
        if "cache_blocks" in kv:
            used, total = kv["cache_blocks"].split("/")
            c["cache_blocks_used"], c["cache_blocks_total"] = int(used), int(total)
        if "ram_per_block" in kv:
            c["ram_per_block"] = int(kv["ram_per_block"])
        return c


class DmCache(System):
    def setup(self):
        mode = {"dmcache-wt": "writethrough", "dmcache-wb": "writeback"}[self.name]
        sh("modprobe -a dm-cache dm-cache-smq")
        table = "0 %d cache %s %s %s 64 1 %s smq 0" % (
            dev_bytes(SLOW) // 512, META, FAST, SLOW, mode)
        err = dm_create("bench-cache", table)
        if err:
            raise RuntimeError("cannot create dm-cache: %s %s" % (
                err, " | ".join(kernel_log_tail("cache"))))
        self.dev = "/dev/mapper/bench-cache"
        self.info["table"] = table
        self.info["note"] = ("block size 64 sectors (32 KiB, dm-cache's "
                             "minimum); smq policy, default tunables")
        return True

    def status(self):
        return dm_status("bench-cache")

    def counters(self):
        f = self.status().split()
        # 0 len cache <md bs> <md used/total> <cbs> <used/total> rh rm wh wm
        # demotions promotions dirty ...
        used, total = f[6].split("/")
        return dict(read_hits=int(f[7]), read_misses=int(f[8]),
                    write_hits=int(f[9]), write_misses=int(f[10]),
                    demotions=int(f[11]), promotions=int(f[12]),
                    dirty=int(f[13]), cache_blocks_used=int(used),
                    cache_blocks_total=int(total))


class WriteCache(System):
    def setup(self):
        sh("modprobe dm-writecache")
        table = "0 %d writecache s %s %s 4096 0" % (
            dev_bytes(SLOW) // 512, SLOW, FAST)
        err = dm_create("bench-writecache", table)
        if err:
            raise RuntimeError("cannot create dm-writecache: %s %s" % (
                err, " | ".join(kernel_log_tail("writecache"))))
        self.dev = "/dev/mapper/bench-writecache"
        self.info["table"] = table
        self.info["note"] = ("ssd mode, 4 KiB blocks, default watermarks; "
                             "dm-writecache caches writes only, so the read-hit "
                             "warm-up writes the hot set")
        return True

    def status(self):
        return dm_status("bench-writecache")

    def counters(self):
        f = [int(x) for x in self.status().split()[3:17]]
        (err, blocks, free, wb, reads, read_hits, writes, wh_unc, wh_com,
         w_around, w_alloc, blocked, flushes, discards) = f
        return dict(read_hits=read_hits, read_misses=reads - read_hits,
                    write_hits=wh_unc + wh_com,
                    write_misses=writes - wh_unc - wh_com,
                    writes_around=w_around, error=err, blocks=blocks,
                    free_blocks=free, under_writeback=wb, flushes=flushes)

    def warm(self, hot):
        fio("warm", fio_dev_args(self.dev, "write", "64k", 8, hot),
            os.path.join(self.rawdir, "warm-write.json"), 900)
        w = super().warm(hot)
        w["method"] = ("sequential write of the hot set (64 KiB, qd 8), then "
                       "random-read passes over it, qd 32")
        return w


class Bcache(System):
    delayed_counters = True
    hit_ratio_from_origin = True

    def setup(self):
        mode = {"bcache-wa": "writearound", "bcache-wt": "writethrough",
                "bcache-wb": "writeback"}[self.name]
        sh("modprobe bcache")
        sh("make-bcache --block 4k --bucket 128k --wipe-bcache -C %s -B %s"
           % (FAST, SLOW))
        self.cset = re.search(r"cset\.uuid\s+(\S+)",
                              sh("bcache-super-show %s" % FAST)).group(1)
        for dev in (FAST, SLOW):
            rc, out = try_sh("echo %s >/sys/fs/bcache/register" % dev)
            if rc != 0 and "already registered" not in out:
                raise RuntimeError("bcache register %s: %s" % (dev, out))
        bdir = sysfs_of(SLOW) + "/bcache"
        for _ in range(100):
            if os.path.exists(bdir + "/dev"):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the bcache device did not appear")
        name = os.path.basename(os.path.realpath(bdir + "/dev"))
        self.dev = "/dev/" + name
        self.sysdir = "/sys/block/%s/bcache" % name
        if read(self.sysdir + "/state") == "no cache":
            try:
                write(self.sysdir + "/attach", self.cset)
            except OSError as e:
                raise RuntimeError("bcache attach failed: %s" % e)
        write(self.sysdir + "/cache_mode", mode)
        write(self.sysdir + "/sequential_cutoff", 0)
        cs = "/sys/fs/bcache/" + self.cset
        write(cs + "/congested_read_threshold_us", 0)
        write(cs + "/congested_write_threshold_us", 0)
        state = read(self.sysdir + "/state")
        if state == "no cache":
            raise CheckFailed("bcache state is 'no cache' after attach")
        for _ in range(50):
            if os.path.exists(self.dev):
                break
            time.sleep(0.1)
        self.info["table"] = ("make-bcache --block 4k --bucket 128k -C %s -B %s;"
                              " cache_mode=%s sequential_cutoff=0"
                              " congested_read/write_threshold_us=0" %
                              (FAST, SLOW, mode))
        self.info["state"] = state
        self.info["cache_mode"] = read(self.sysdir + "/cache_mode")
        self.info["note"] = (
            "bcache folds its hit counters into stats_total only every "
            "300/22 s, shifted left 16 bits in a 32-bit value (so they wrap "
            "past 65535 events per interval): they prove hits happen (the "
            "check), but the hit ratios shown are 1 - origin reads per read")
        return True

    def status(self):
        s = {}
        for k in ("state", "dirty_data", "cache_mode"):
            s[k] = read(self.sysdir + "/" + k)
        for k in ("cache_hits", "cache_misses", "cache_bypass_hits",
                  "cache_bypass_misses"):
            s[k] = read(self.sysdir + "/stats_total/" + k)
        return " ".join("%s=%s" % kv for kv in s.items())

    def counters(self):
        st = self.sysdir + "/stats_total/"
        return dict(read_hits=int(read(st + "cache_hits")),
                    read_misses=int(read(st + "cache_misses")),
                    bypass_hits=int(read(st + "cache_bypass_hits")),
                    bypass_misses=int(read(st + "cache_bypass_misses")))

    def wait_fold(self, timeout=30):
        """Wait until bcache folds its collected counters into stats_total
        (its accounting timer fires every 300/22 s); return the counters."""
        c0 = self.counters()
        end = time.time() + timeout
        while time.time() < end:
            time.sleep(0.5)
            c = self.counters()
            if c != c0:
                return c
        return c0

    def warm(self, hot):
        """Random-read passes over the hot set at qd 32 until a pass reads
        (almost) nothing from the origin, at least two and at most
        max_warm_passes.  bcache's own counters fold in late, so the
        origin's read count is the measure.  Two fixed passes were not
        always enough: in one run 1.6% of the read-hit workload's reads
        still went to the origin."""
        passes = []
        for i in range(self.cfg["max_warm_passes"]):
            before_o = disk_stat(SLOW)
            r = fio("warm", fio_dev_args(self.dev, "randread", "4k", 32, hot) +
                    ["--randseed=%d" % (1000 + i)],
                    os.path.join(self.rawdir, "warm-%d.json" % i), 900)
            per_read = origin_reads_per_read(before_o, r)
            passes.append(dict(pass_=i + 1, read_iops=r["read"]["iops"],
                               origin_reads_per_read=per_read))
            log("  warm pass %d: %.0f IOPS, %s origin reads per read" % (
                i + 1, r["read"]["iops"], fmt_ratio(per_read)))
            if i >= 1 and per_read is not None and \
                    per_read <= BCACHE_WARM_ORIGIN_READS:
                break
        # Let the warm-up's hits fold in, so that the check below sees only
        # the read-hit workloads' own.
        self.wait_fold()
        return dict(method="random-read passes over the hot set, qd 32, "
                           "until a pass reads at most %g origin reads per "
                           "read (bcache caches every read miss with "
                           "sequential_cutoff 0)" % BCACHE_WARM_ORIGIN_READS,
                    passes=passes)

    def teardown(self):
        bcache_stop_all()


CLASSES = {"raw-fast": RawFast, "raw-slow": RawSlow, "linear-fast": LinearFast,
           "stash-wa": Stash, "stash-wt": Stash, "stash-wb": Stash,
           "stash-wa-csum": Stash, "stash-wt-csum": Stash,
           "stash-wb-csum": Stash,
           "dmcache-wt": DmCache, "dmcache-wb": DmCache,
           "writecache": WriteCache,
           "bcache-wa": Bcache, "bcache-wt": Bcache, "bcache-wb": Bcache}


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


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


# ---------------------------------------------------------------------------
# One system
# ---------------------------------------------------------------------------
def run_system(name, cfg, devs):
    rec = dict(name=name, status="ok", workloads={})
    t0 = time.time()
    cls = CLASSES[name]
    sysm = cls(name, cfg, devs)
    sysm.rawdir = os.path.join(RAW, name)
    os.makedirs(sysm.rawdir, exist_ok=True)
    log("=== %s" % name)
    try:
        # linear-fast is the reference itself: it gets none.
        reference = name != "linear-fast"
        devs.create(prefill_fast=name in ("raw-fast", "linear-fast"),
                    reference=reference)
        if reference:
            sysm.reference = Reference(cfg, os.path.join(sysm.rawdir, "ref"))
        sysm.setup()
        rec.update(sysm.info)
        rec["device"] = sysm.dev
        rec["size_bytes"] = dev_bytes(sysm.dev)
        rec["caching"] = sysm.caching
        rec["status_after_setup"] = sysm.status()
        log("  device %s: %s" % (sysm.dev, rec.get("table")))
        rec["warmup"] = sysm.warm(cfg["hot_mb"] << 20)
        read_hit_window = None
        for wl in WORKLOADS:
            if wl["name"] not in cfg["workloads"]:
                continue
            reps = []
            for rep in range(cfg["reps"]):
                if wl["name"].startswith("randread-4k-qd") and \
                        read_hit_window is None:
                    read_hit_window = sysm.counters()
                r = run_workload(sysm, wl, rep, cfg)
                s = summarize(wl, r, sysm)
                reps.append(dict(summary=s, detail=r))
                log("  %-28s %10.0f IOPS %8.1f MiB/s p99 %9.0f us  "
                    "hits r=%s w=%s  x ref %s" % (
                        wl["name"], s["iops"], s["mib_s"], s["p99_us"] or 0,
                        fmt_ratio(s["read_hit_ratio"]),
                        fmt_ratio(s["write_hit_ratio"]),
                        fmt_ratio(s.get("iops_vs_ref"))))
            rec["workloads"][wl["name"]] = dict(
                reps=reps, summary={
                    k: median([x["summary"].get(k) for x in reps])
                    for k in ("iops", "mib_s", "p50_us", "p99_us",
                              "read_iops", "write_iops", "read_hit_ratio",
                              "write_hit_ratio", "origin_reads_per_read",
                              "ref_iops", "ref_p99_us", "iops_vs_ref",
                              "p99_vs_ref")})
            rec["workloads"][wl["name"]]["summary"]["lat_of"] = wl["lat"]
            if wl["name"] == "randread-4k-qd16" and sysm.caching:
                check_caches(sysm, rec, read_hit_window)
        rec["status_final"] = sysm.status()
    except NotAvailable as e:
        rec["status"] = "not_available"
        rec["reason"] = str(e)
        log("  not available: %s" % e)
    except CheckFailed as e:
        rec["status"] = "failed"
        rec["reason"] = str(e)
        log("  FAILED: %s" % e)
    except Exception as e:  # keep going with the other systems
        rec["status"] = "error"
        rec["reason"] = "%s: %s" % (type(e).__name__, e)
        rec["kernel_log"] = kernel_log_tail(".", 20)
        log("  ERROR: %s" % rec["reason"])
    finally:
        try:
            sysm.teardown()
            devs.teardown()
        except Exception as e:
            rec.setdefault("teardown_error", str(e))
            log("  teardown error: %s" % e)
    rec["wall_s"] = time.time() - t0
    return rec


def check_caches(sysm, rec, before):
    """The read-hit workloads must move the system's own hit counters."""
    if sysm.delayed_counters:
        after = sysm.wait_fold()
    else:
        after = sysm.counters()
    d = delta(after, before)
    ratio = hit_ratio(d, "read")
    chk = dict(read_hits=d.get("read_hits") if d else None,
               read_misses=d.get("read_misses") if d else None,
               read_hit_ratio=ratio,
               over="randread-4k-qd1 + randread-4k-qd16")
    rec["cache_check"] = chk
    if sysm.hit_ratio_from_origin:
        chk["counter_hit_ratio_unreliable"] = ratio
        rs = [rec["workloads"][w]["summary"]["read_hit_ratio"]
              for w in ("randread-4k-qd1", "randread-4k-qd16")
              if w in rec["workloads"]]
        rs = [x for x in rs if x is not None]
        ratio = chk["read_hit_ratio"] = min(rs) if rs else None
        chk["read_hit_ratio_source"] = "origin reads"
    if not d or not d.get("read_hits"):
        chk["result"] = "FAIL"
        raise CheckFailed("its own read-hit counter did not move during the "
                          "read-hit workloads (%s)" % chk)
    chk["result"] = "ok" if ratio is None or ratio >= 0.9 else \
        "low hit ratio (< 0.9)"
    log("  cache check: %d read hits, hit ratio %s: %s" % (
        chk["read_hits"], fmt_ratio(ratio), chk["result"]))


# ---------------------------------------------------------------------------
# Kernel memory per cache block
# ---------------------------------------------------------------------------
def memory_phase(cfg, devs):
    """Create caches over a large cache device that is never written
    (dm-zero) and measure what the kernel allocates: Slab + VmallocUsed
    deltas across creation, divided by the number of cache blocks."""
    res = dict(method=(
        "cache device: dm-zero of CACHE_GB GiB (never written; nothing is "
        "stored), origin: dm-zero of 4x that, dm-cache metadata on brd; "
        "delta of /proc/meminfo Slab + VmallocUsed (after sync and "
        "drop_caches) across the dmsetup create, divided by the cache "
        "blocks.  dm-bufio buffers of the metadata device come from the page "
        "allocator and are not counted (they are a bounded, shrinkable "
        "cache), nor are the metadata pages stored on brd."), runs=[])
    gb = cfg["mem_cache_gb"]
    devs.teardown()
    sh("modprobe brd rd_nr=2 rd_size=%d" % (1024 * 1024))  # 1 GiB metadata room
    sh("modprobe -a dm-zero dm-cache dm-cache-smq")
    csec = gb << 21
    osec = csec * 4
    for n, s in (("bench-zcache", csec), ("bench-zorigin", osec)):
        err = dm_create(n, "0 %d zero" % s)
        if err:
            raise RuntimeError(err)
    zc, zo = "/dev/mapper/bench-zcache", "/dev/mapper/bench-zorigin"
    cases = [
        # volatile: dm-zero cannot hold a superblock.  A persistent cache
        # adds one bit per block (the committed-dirty bitmap) and a
        # bounded commit buffer.
        ("dm-stash", 8, "0 %d stash %s %s writethrough 3 volatile "
         "sequential_cutoff 0" % (osec, zo, zc)),
        ("dm-stash", 64, "0 %d stash %s %s writethrough 5 volatile "
         "block_size 64 sequential_cutoff 0" % (osec, zo, zc)),
        ("dm-cache", 64, "0 %d cache %s %s %s 64 1 writethrough smq 0"
         % (osec, META, zc, zo)),
    ]
    res["cache_gib"] = gb
    for target, bs, table in cases:
        run = dict(target=target, block_sectors=bs, table=table,
                   cache_blocks=(csec // bs))
        try:
            sh("dd if=/dev/zero of=%s bs=1M count=8 oflag=direct status=none" % META)
            sh("sync; echo 3 >/proc/sys/vm/drop_caches")
            time.sleep(1)
            m0 = meminfo()
            t = time.time()
            err = dm_create("bench-mem", table)
            if err:
                raise RuntimeError(err)
            run["create_s"] = time.time() - t
            sh("sync; echo 3 >/proc/sys/vm/drop_caches")
            time.sleep(1)
            m1 = meminfo()
            st = dm_status("bench-mem")
            run["status"] = st
            m = re.search(r"ram_per_block=(\d+)", st)
            if m:
                run["self_reported_ram_per_block"] = int(m.group(1))
            sh("dmsetup remove --retry bench-mem")
            sh("sync; echo 3 >/proc/sys/vm/drop_caches")
            time.sleep(1)
            m2 = meminfo()
            d = {k: m1[k] - m0[k] for k in ("Slab", "SUnreclaim",
                                             "SReclaimable", "VmallocUsed",
                                             "Percpu", "MemFree")}
            run["delta_bytes"] = d
            run["released_bytes"] = {k: m1[k] - m2[k] for k in
                                     ("Slab", "VmallocUsed")}
            total = d["Slab"] + d["VmallocUsed"] + d.get("Percpu", 0)
            run["kernel_bytes"] = total
            run["bytes_per_block"] = total / run["cache_blocks"]
            run["bytes_per_gib_cache"] = total / gb
            log("  memory %s bs=%d: %d blocks, %.1f B/block measured%s" % (
                target, bs, run["cache_blocks"], run["bytes_per_block"],
                ", %d self-reported" % run["self_reported_ram_per_block"]
                if "self_reported_ram_per_block" in run else ""))
        except Exception as e:
            run["error"] = str(e)
            log("  memory %s: ERROR %s" % (target, e))
            try_sh("dmsetup remove --retry bench-mem")
        res["runs"].append(run)
    devs.teardown()
    return res


# ---------------------------------------------------------------------------
# Draining dirty blocks (dm-stash write-back)
# ---------------------------------------------------------------------------
def stash_kv(name):
    kv = {}
    for tok in dm_status(name).split()[3:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            kv[k] = v
    return kv


# DM_TABLE_STATUS on /dev/mapper/control (linux/dm-ioctl.h): struct
# dm_ioctl is 312 bytes, its name field at offset 48; the reply's first
# struct dm_target_spec (40 bytes) and its status string start at
# data_start.
DM_IOCTL_SIZE = 312
DM_TABLE_STATUS = (3 << 30) | (DM_IOCTL_SIZE << 16) | (0xfd << 8) | 12
DM_BUFFER_FULL_FLAG = 1 << 8


def dm_status_ioctl(fd, name, size=16384):
    """The device's status line, as `dmsetup status` prints it after the
    sector range and target name: one ioctl, no process."""
    buf = bytearray(size)
    struct.pack_into("=3IIIIiII", buf, 0, 4, 0, 0, size, DM_IOCTL_SIZE,
                     0, 0, 0, 0)
    struct.pack_into("128s", buf, 48, name.encode())
    fcntl.ioctl(fd, DM_TABLE_STATUS, buf, True)
    data_start, target_count = struct.unpack_from("=II", buf, 16)
    flags, = struct.unpack_from("=I", buf, 28)
    if flags & DM_BUFFER_FULL_FLAG:
        return dm_status_ioctl(fd, name, size * 4)
    if target_count != 1:
        raise RuntimeError("%s: %d targets" % (name, target_count))
    params = buf[data_start + 40:].split(b"\0", 1)[0]
    return params.decode()


def wait_dirty_zero(name, timeout=300):
    """Poll until the cache is clean; returns the seconds it took.  The
    poll is an ioctl every 10 ms: a `dmsetup status` process every 20 ms
    took about a third of the one vCPU from the drain it timed (a 128 MiB
    drain measured 9.3 s that way and 6.4 s under `stashctl flush`)."""
    t = time.time()
    fd = os.open("/dev/mapper/control", os.O_RDWR)
    try:
        while time.time() - t < timeout:
            # A substring test, not stash_kv()'s parse: on the one vCPU
            # parsing the whole line every 10 ms made a drain 6.92 s, not
            # 6.41 s.
            if " dirty=0 " in " %s " % dm_status_ioctl(fd, name):
                return time.time() - t
            time.sleep(0.01)
    finally:
        os.close(fd)
    raise RuntimeError("%s still dirty after %d s" % (name, timeout))


def drain_phase(cfg, devs):
    """Issue 4's figures: how fast an explicit flush drains dirty blocks
    that are contiguous on the origin (against the origin's own sequential
    write bandwidth, measured side by side), how random dirty blocks drain,
    and what foreground read hits keep while a flush runs."""
    res = dict(method=(
        "fresh devices for each part.  Sequential: 1 MiB sequential writes "
        "(qd 4) once over SEQ_MB straight to the slow device give its "
        "bandwidth (and, on fresh devices, the same ending with an fsync, "
        "which empties the origin's write cache as the drain's commits "
        "do: for reference, the targets use the first); then, on fresh "
        "devices again, a "
        "stash write-back cache with writeback held off (high_watermark "
        "100, idle_ms 0) takes SEQ_MB of sequential writes, the 'flush' "
        "message starts a drain and the status is read (DM_TABLE_STATUS, "
        "every 10 ms, no process) until dirty=0; "
        "three such rounds, each on fresh devices, give the medians of "
        "both rates and the ratio of the medians.  All of it twice: on the "
        "latency-only origin of the workloads (the emulated vCPU's copies "
        "bound both rates there: the drain reads the cache and writes the "
        "origin, the reference only writes) and on an origin that is a "
        "disk of %d MB/s (null_blk mbps; requests of at most %d KiB, which "
        "its throttle lets through).  Random: the hot set is "
        "warmed to read hits and its 4 KiB qd 16 "
        "random-read IOPS measured idle; then RAND_MB of 4 KiB writes at "
        "random blocks of the rest of the origin are made dirty, the flush "
        "starts and the same read job runs while it drains; three times, "
        "on fresh devices: writeback_latency at its default (the "
        "target's figure), 0 (no throttle) and %d.") % (
            DRAIN_DISK_MBPS, nullb_max_sectors(DRAIN_DISK_MBPS) // 2,
            RANDOM_TIGHT_LATENCY))
    name = "bench-stash"
    mb = 1 << 20
    seq_mb = cfg["cache_mb"] // 2
    rand_mb = cfg["cache_mb"] // 4
    hot = cfg["hot_mb"] * mb
    rawdir = os.path.join(RAW, "drain")
    os.makedirs(rawdir, exist_ok=True)

    def create(mbps=0):
        devs.create(mbps=mbps)
        opts = ["sequential_cutoff", "0", "high_watermark", "100",
                "low_watermark", "10", "idle_ms", "0"] + cfg["stash_opts"]
        table = "0 %d stash %s %s writeback %d %s" % (
            dev_bytes(SLOW) // 512, SLOW, FAST, len(opts), " ".join(opts))
        err = dm_create(name, table)
        if err:
            raise RuntimeError("cannot create the stash device: " + err)
        return table, "/dev/mapper/" + name

    def sequential(mbps):
        """The origin's own bandwidth, then the drain, in rounds on fresh
        devices; the medians are the figures (one round lasts about a
        second, so a single one is noisy)."""
        model = "disk %d MB/s" % mbps if mbps else "latency only"
        tag = "-disk" if mbps else ""
        rounds = []
        for rnd in range(DRAIN_ROUNDS):
            # Once over the region, like the drain: null_blk's first write
            # to a page costs more than a rewrite.  Then the same ending
            # with an fsync: the origin's volatile write cache (64 MiB)
            # then holds none of it, as after a drain, whose metadata
            # commits flush the origin each commit_ms.  Without it, half
            # of the writes stay in that cache.
            ref_mib_s = []
            for job, extra in (("origin-seqwrite", []),
                               ("origin-seqwrite-fsync", ["--end_fsync=1"])):
                devs.create(mbps=mbps)
                r = fio(job, fio_dev_args(SLOW, "write", "1m", 4,
                                          seq_mb * mb) + extra,
                        os.path.join(rawdir, "%s%s-%d.json" % (job, tag, rnd)),
                        600)
                ref_mib_s.append(r["write"]["mib_s"])
            origin_mib_s, durable_mib_s = ref_mib_s
            table, dev = create(mbps)
            res["table"] = table
            fio("dirty-seq", fio_dev_args(dev, "write", "1m", 4, seq_mb * mb),
                os.path.join(rawdir, "dirty-seq%s-%d.json" % (tag, rnd)), 600)
            kv = stash_kv(name)
            blocks = int(kv["dirty"])
            before = disk_stat(SLOW)
            sh("dmsetup message %s 0 flush" % name)
            secs = wait_dirty_zero(name, 900)
            o = delta(disk_stat(SLOW), before)
            drain_mib_s = blocks * 4096 / mb / secs
            rounds.append(dict(
                dirty_blocks=blocks, drain_s=secs, drain_mib_s=drain_mib_s,
                origin_seqwrite_mib_s=origin_mib_s,
                origin_seqwrite_fsync_mib_s=durable_mib_s,
                ratio=drain_mib_s / origin_mib_s,
                ratio_fsync=drain_mib_s / durable_mib_s,
                origin_write_ios=o["write_ios"],
                origin_write_kib_per_io=o["write_sectors"] / 2 /
                max(1, o["write_ios"])))
            log("  drain sequential (%s), round %d: %d blocks in %.2f s = "
                "%.1f MiB/s, origin 1 MiB seq writes %.1f MiB/s: %.2fx (with "
                "a final fsync %.1f MiB/s: %.2fx); %d origin writes" % (
                    model, rnd + 1, blocks, secs, drain_mib_s, origin_mib_s,
                    drain_mib_s / origin_mib_s, durable_mib_s,
                    drain_mib_s / durable_mib_s, o["write_ios"]))
            sh("dmsetup remove --retry %s" % name)
        seq = {k: median([x[k] for x in rounds]) for k in rounds[0]}
        # The ratio of the medians: each median is steadier than any
        # one round's ratio.
        seq["ratio"] = seq["drain_mib_s"] / seq["origin_seqwrite_mib_s"]
        seq["ratio_fsync"] = (seq["drain_mib_s"] /
                              seq["origin_seqwrite_fsync_mib_s"])
        seq["rounds"] = rounds
        seq["origin_mbps"] = mbps
        log("  drain sequential (%s), median of %d rounds: %.1f MiB/s "
            "against %.1f MiB/s: %.2fx (with a final fsync %.1f MiB/s: "
            "%.2fx)" % (model, len(rounds), seq["drain_mib_s"],
                        seq["origin_seqwrite_mib_s"], seq["ratio"],
                        seq["origin_seqwrite_fsync_mib_s"],
                        seq["ratio_fsync"]))
        return seq

    try:
        # The latency-only origin (as every workload's), where the one
        # vCPU's copies bound both rates, then a disk with a bandwidth
        # below them: the drain against the disk.
        res["sequential"] = sequential(0)
        res["sequential_disk"] = sequential(DRAIN_DISK_MBPS)

        # Random dirty blocks, with read hits running during the drain:
        # with the writeback throttle at its default (the target's
        # figure), off, and at a tight target, each on fresh devices.
        res["random_by_latency"] = {}
        for label, lat in (("default", None), ("off", 0),
                           ("tight", RANDOM_TIGHT_LATENCY)):
            try_sh("dmsetup remove --retry %s" % name)
            table, dev = create()
            if lat is not None:
                sh("dmsetup message %s 0 set writeback_latency %d" % (
                    name, lat))
            sysm = Stash("stash-wb", cfg, devs)
            sysm.dev, sysm.rawdir = dev, rawdir
            sysm.warm(hot)
            rd = fio_dev_args(dev, "randread", "4k", 16, hot) + [
                "--time_based", "--runtime=%d" % cfg["runtime"]]
            idle = fio("read-idle-" + label, rd,
                       os.path.join(rawdir, "read-idle-%s.json" % label), 300)
            fio("dirty-rand-" + label,
                fio_dev_args(dev, "randwrite", "4k", 16,
                             dev_bytes(dev) - hot, hot) +
                ["--io_size=%d" % (rand_mb * mb)],
                os.path.join(rawdir, "dirty-rand-%s.json" % label), 600)
            kv = stash_kv(name)
            blocks = int(kv["dirty"])
            thr0 = int(kv.get("writeback_throttled", 0))
            before = disk_stat(SLOW)
            t = time.time()
            sh("dmsetup message %s 0 flush" % name)
            during = fio("read-during-flush-" + label, rd,
                         os.path.join(rawdir,
                                      "read-during-flush-%s.json" % label),
                         300)
            kv = stash_kv(name)
            left = int(kv["dirty"])
            thr1 = int(kv.get("writeback_throttled", 0))
            secs = time.time() - t + wait_dirty_zero(name, 900)
            o = delta(disk_stat(SLOW), before)
            x = dict(
                writeback_latency=int(stash_kv(name).get(
                    "writeback_latency", -1)),
                dirty_blocks=blocks, drain_s=secs,
                blocks_per_s=blocks / secs,
                origin_write_ios=o["write_ios"],
                blocks_per_origin_write=blocks / max(1, o["write_ios"]),
                dirty_left_when_reads_ended=left,
                throttled_looks=thr1 - thr0,
                read_iops_idle=idle["read"]["iops"],
                read_iops_during_flush=during["read"]["iops"],
                read_p99_us_idle=idle["read"]["p99_us"],
                read_p99_us_during_flush=during["read"]["p99_us"],
                ratio=during["read"]["iops"] / idle["read"]["iops"],
                p99_ratio=during["read"]["p99_us"] /
                max(1, idle["read"]["p99_us"]))
            res["random_by_latency"][label] = x
            if label == "default":
                res["random"] = x
            log("  drain random, writeback_latency %s (%s): %d blocks in "
                "%.1f s (%.0f blocks/s, %d origin writes); read hits %.0f "
                "IOPS idle, %.0f during the flush: %.2fx, p99 %.0f -> %.0f "
                "us (%.2fx); %d looks throttled%s" % (
                    x["writeback_latency"], label, blocks, secs,
                    blocks / secs, o["write_ios"], idle["read"]["iops"],
                    during["read"]["iops"], x["ratio"],
                    x["read_p99_us_idle"], x["read_p99_us_during_flush"],
                    x["p99_ratio"], thr1 - thr0,
                    "" if left else
                    " (WARNING: drain ended before the reads)"))

        # Foreground reads that need the origin (4 KiB at qd 1 over the
        # whole device: mostly uncached blocks) beside a drain, with the
        # writeback throttle (its default target, set explicitly) and
        # without it, on an origin of THROTTLE_MBPS: writeback's writes
        # and the reads share its bandwidth, as on a real disk.
        res["throttle"] = {}
        for label, lat in (("on", 200), ("off", 0)):
            try_sh("dmsetup remove --retry %s" % name)
            table, dev = create(mbps=THROTTLE_MBPS)
            sh("dmsetup message %s 0 set writeback_latency %d" % (name, lat))
            fio("dirty-thr-" + label,
                fio_dev_args(dev, "randwrite", "4k", 16, dev_bytes(dev) - hot,
                             hot) + ["--io_size=%d" % (rand_mb * mb)],
                os.path.join(rawdir, "dirty-thr-%s.json" % label), 600)
            cold = fio_dev_args(dev, "randread", "4k", 1, dev_bytes(dev)) + [
                "--time_based", "--runtime=%d" % cfg["runtime"]]
            idle = fio("cold-idle-" + label, cold,
                       os.path.join(rawdir, "cold-idle-%s.json" % label), 300)
            kv = stash_kv(name)
            blocks = int(kv["dirty"])
            thr0 = int(kv.get("writeback_throttled", 0))
            t = time.time()
            sh("dmsetup message %s 0 flush" % name)
            during = fio("cold-during-" + label, cold,
                         os.path.join(rawdir, "cold-during-%s.json" % label),
                         300)
            kv = stash_kv(name)
            left = int(kv["dirty"])
            thr1 = int(kv.get("writeback_throttled", 0))
            secs = time.time() - t + wait_dirty_zero(name, 900)
            res["throttle"][label] = dict(
                writeback_latency=lat, origin_mbps=THROTTLE_MBPS,
                dirty_blocks=blocks, drain_s=secs,
                dirty_left_when_reads_ended=left, throttled_looks=thr1 - thr0,
                read_iops_idle=idle["read"]["iops"],
                read_iops_during=during["read"]["iops"],
                read_p99_us_idle=idle["read"]["p99_us"],
                read_p99_us_during=during["read"]["p99_us"],
                ratio=during["read"]["iops"] / idle["read"]["iops"],
                p99_ratio=during["read"]["p99_us"] / max(1, idle["read"]["p99_us"]))
            log("  throttle %s: %d dirty blocks drained in %.1f s; origin reads "
                "%.0f IOPS idle, %.0f during the drain (%.2fx), p99 %.0f us -> "
                "%.0f us (%.2fx); %d looks throttled%s" % (
                    label, blocks, secs, idle["read"]["iops"],
                    during["read"]["iops"],
                    during["read"]["iops"] / idle["read"]["iops"],
                    idle["read"]["p99_us"], during["read"]["p99_us"],
                    during["read"]["p99_us"] / max(1, idle["read"]["p99_us"]),
                    thr1 - thr0,
                    "" if left else " (WARNING: drain ended before the reads)"))
    finally:
        try_sh("dmsetup remove --retry %s" % name)
        devs.teardown()
    return res


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
