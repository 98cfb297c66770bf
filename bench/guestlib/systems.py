"""The systems under test (dm-stash, dm-cache, dm-writecache, bcache and
the raw devices) and run_system(): one system through every workload."""
import os
import re
import time

from .devices import (FAST, META, REF_DEV, REF_FS_MNT, SLOW, SLOW_NAME,
                      bcache_stop_all, origin_reads_per_read)
from .util import (RAW, delta, dev_bytes, disk_stat, dm_create, dm_status,
                   fio, fio_dev_args, fmt_ratio, hit_ratio, kernel_log_tail,
                   log, median, read, sh, sysfs_of, try_sh, write)
from .workloads import WORKLOADS, run_workload, summarize


SYSTEMS = ["raw-fast", "raw-slow", "linear-fast",
           "stash-wa", "stash-wt", "stash-wb",
           "dmcache-wt", "dmcache-wb", "writecache",
           "bcache-wa", "bcache-wt", "bcache-wb"]
# Only when STASH_BENCH_SYSTEMS names them: dm-stash with checksums (the
# 'checksum' option's cost, against stash-wa/wt/wb).
EXTRA_SYSTEMS = ["stash-wa-csum", "stash-wt-csum", "stash-wb-csum"]


class NotAvailable(Exception):
    """The system cannot be built on this kernel/module (not a failure)."""


class CheckFailed(Exception):
    """The system does not really cache: its numbers must not be used."""


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


# The warm-up of the hot set ends with a pass that reads at most this many
# origin reads per client read (see Bcache.warm()).
BCACHE_WARM_ORIGIN_READS = 0.001


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
