"""Draining dirty blocks (dm-stash write-back; results.json "drain")."""
import os
import time

from ..devices import FAST, SLOW, nullb_max_sectors
from ..systems import Stash
from ..util import (RAW, delta, dev_bytes, disk_stat, dm_create, dm_status,
                    dm_status_ioctl, fio, fio_dev_args, log, median, sh,
                    try_sh)


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


def stash_kv(name):
    kv = {}
    for tok in dm_status(name).split()[3:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            kv[k] = v
    return kv


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
