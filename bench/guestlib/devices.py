"""The devices every system is built on, torn down and rebuilt from zero
for every system (see bench/guest.py's docstring), and waiting for them to
be quiet."""
import glob
import os
import time

from .util import (delta, dev_bytes, disk_stat, dm_create, log, read, sh,
                   sysfs_of, try_sh, write)


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


# Before each workload the devices must be quiet: no I/O reaches the cache
# or the origin for QUIET_S seconds (longer than the idle time after which
# dm-stash (2 s) and dm-cache (1 s) start their background writeback), at
# most settle_max seconds.  Without it a workload pays for the writeback of
# what the one before it dirtied, by an amount that depends on timing:
# dm-cache WB's zipf reads measured 0.59x and 0.77x dm-linear in two runs.
QUIET_S = 3


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
# bcache plumbing (here, not beside the Bcache system: Devices.teardown()
# needs it too)
# ---------------------------------------------------------------------------
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
