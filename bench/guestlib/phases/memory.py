"""Kernel memory per cache block (results.json "memory")."""
import re
import time

from ..devices import META
from ..util import dm_create, dm_status, log, meminfo, sh, try_sh


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
