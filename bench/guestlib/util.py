"""Small helpers of the benchmark's guest side: where the results go, the
log, shell commands, sysfs, dm, the kernel log, fio and its results."""
import fcntl
import json
import os
import re
import shlex
import struct
import subprocess
import time

OUT = os.path.join(os.environ["STASH_OUT"], "bench")
RAW = os.path.join(OUT, "raw")
REPO = os.getcwd()


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
# Results
# ---------------------------------------------------------------------------
def hit_ratio(d, direction):
    if not d:
        return None
    h, m = d.get(direction + "_hits"), d.get(direction + "_misses")
    if h is None or m is None or h + m == 0:
        return None
    return h / (h + m)


def fmt_ratio(r):
    return "n/a" if r is None else "%.3f" % r


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


# ---------------------------------------------------------------------------
# The status of a dm device without a process
# ---------------------------------------------------------------------------
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
