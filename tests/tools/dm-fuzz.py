#!/usr/bin/python3
"""Random and mutated dm-stash table lines and messages (tests 85, 86).

usage: dm-fuzz.py tables   --origin DEV --cache DEV [--count N] [--seed S]
       dm-fuzz.py messages --origin DEV --cache DEV [--count N] [--seed S]
       dm-fuzz.py failnth  --origin DEV --cache DEV [--volatile]

Talks to device-mapper with its ioctls directly (no dmsetup process per
line, so that a thousand lines take seconds, not minutes) and names every
device it makes with the tests' "stasht-" prefix.

tables: each line is loaded into an empty device.  A refused line must leave
no table behind; an accepted one must resume, report a table that loads
again (an identical reload), read back what was written to it, and remove.

messages: one write-back volume takes each message.  An accepted "mode" or
"set" must show in the status, a refused one must change nothing there;
every few messages a block is rewritten and at the end every block written
is read back through the volume and, after a flush and removal, from the
origin.

failnth: with failslab set up (cache-filter on the caches to fail), every
allocation of the create/load/resume path and of a reload, suspend/resume
and messages is made to fail in turn (/proc/thread-self/fail-nth).

Each line goes to the kernel log ("dm-fuzz: N ...") before it is tried, so
that a splat follows the line that caused it; the seed and the failing line
are printed on failure.  Exit status 0 when every line behaved.

The tunables (names, ranges, defaults) come from "stashctl tunables --json"
($STASH_STASHCTL, the repository's userspace-tools/stashctl, or the one on
PATH) or else from kmod/uapi/linux/dm-stash-tunables.h itself.
"""
import argparse
import collections
import fcntl
import json
import mmap
import os
import random
import re
import struct
import subprocess
import sys
import time

PREFIX = "stasht-"
DM_DEV_CREATE, DM_DEV_REMOVE, DM_DEV_SUSPEND, DM_DEV_STATUS = 3, 4, 6, 7
DM_TABLE_LOAD, DM_TABLE_CLEAR, DM_TABLE_STATUS, DM_TARGET_MSG = 9, 10, 12, 14
DM_SUSPEND_FLAG = 1 << 1
DM_STATUS_TABLE_FLAG = 1 << 4
DM_INACTIVE_PRESENT_FLAG = 1 << 6
DM_BUFFER_FULL_FLAG = 1 << 8
HDR = struct.Struct("=3IIIIiIIIQ128s129s7s")    # struct dm_ioctl, 312 bytes
SPEC = struct.Struct("=QQiI16s")                # struct dm_target_spec
MODES = ("writearound", "writethrough", "writeback")
BLOCK = 4096
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TUNABLES_H = os.path.join(REPO, "kmod", "uapi", "linux", "dm-stash-tunables.h")

Tunable = collections.namedtuple("Tunable", "name min max default")


def tunables_from_stashctl():
    """The tunables "stashctl tunables --json" lists, or None."""
    for prog in (os.environ.get("STASH_STASHCTL"),
                 os.path.join(REPO, "userspace-tools", "stashctl"), "stashctl"):
        if not prog:
            continue
        try:
            out = subprocess.run([prog, "tunables", "--json"], capture_output=True,
                                 text=True, timeout=30)
            if out.returncode == 0:
                return [Tunable(t["name"], int(t["min"]), int(t["max"]),
                                int(t["default"])) for t in json.loads(out.stdout)]
        except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
            pass
    return None


def tunables_from_header(path=TUNABLES_H):
    """The rows of dm-stash-tunables.h: STASH_TUNABLE(name, field, min, max,
    def, unit, ioc, doc), numbers as plain integer literals."""
    with open(path) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    row = re.compile(r'STASH_TUNABLE\(\s*(\w+)\s*,\s*\w+\s*,\s*(\w+)\s*,\s*(\w+)\s*,'
                     r'\s*(\w+)\s*,\s*"[^"]*"\s*,\s*\w+\s*,\s*"(?:[^"\\]|\\.)*"\s*\)')
    rows = [Tunable(m[1], int(m[2], 0), int(m[3], 0), int(m[4], 0))
            for m in row.finditer(text)]
    if not rows or len(rows) != text.count("STASH_TUNABLE("):
        raise SystemExit(f"dm-fuzz: cannot read the tunables in {path}")
    return rows


TUNS = {t.name: t for t in tunables_from_stashctl() or tunables_from_header()}
TUNABLES = tuple(TUNS)


class DmError(Exception):
    pass


class Dm:
    def __init__(self):
        self.fd = os.open("/dev/mapper/control", os.O_RDWR)

    def ioctl(self, cmd, name, flags=0, payload=b"", target_count=0, size=16384):
        data_start = HDR.size
        size = max(size, data_start + len(payload) + 8)
        hdr = HDR.pack(4, 0, 0, size, data_start, target_count, 0, flags, 0, 0, 0,
                       name.encode(), b"", b"")
        buf = bytearray(hdr + payload + bytes(size - data_start - len(payload)))
        try:
            fcntl.ioctl(self.fd, 0xC138FD00 | cmd, buf, True)
        except OSError as e:
            raise DmError(e.strerror or str(e)) from None
        fields = HDR.unpack_from(buf)
        return fields[7], buf   # flags, whole buffer

    def create(self, name):
        self.ioctl(DM_DEV_CREATE, name)

    def remove(self, name):
        for _ in range(50):
            try:
                self.ioctl(DM_DEV_REMOVE, name)
                return
            except DmError as e:
                if "busy" not in str(e).lower():
                    raise
                time.sleep(0.1)
        self.ioctl(DM_DEV_REMOVE, name)

    def load(self, name, start, length, target, params):
        p = params.encode() + b"\0"
        p += bytes(-(SPEC.size + len(p)) % 8)
        spec = SPEC.pack(start, length, 0, 0, target.encode()[:15])
        self.ioctl(DM_TABLE_LOAD, name, payload=spec + p, target_count=1)

    def resume(self, name):
        self.ioctl(DM_DEV_SUSPEND, name)

    def suspend(self, name):
        self.ioctl(DM_DEV_SUSPEND, name, flags=DM_SUSPEND_FLAG)

    def clear(self, name):
        self.ioctl(DM_TABLE_CLEAR, name)

    def inactive_present(self, name):
        flags, _ = self.ioctl(DM_DEV_STATUS, name)
        return bool(flags & DM_INACTIVE_PRESENT_FLAG)

    def table(self, name, table=True):
        """[(start, length, type, params)] of the live table."""
        flags, buf = self.ioctl(DM_TABLE_STATUS, name,
                                flags=DM_STATUS_TABLE_FLAG if table else 0)
        if flags & DM_BUFFER_FULL_FLAG:
            raise DmError("status buffer full")
        count = HDR.unpack_from(buf)[5]
        off, out = HDR.size, []
        for _ in range(count):
            start, length, _, nxt, ttype = SPEC.unpack_from(buf, off)
            pstart = off + SPEC.size
            params = bytes(buf[pstart:buf.index(b"\0", pstart)]).decode()
            out.append((start, length, ttype.rstrip(b"\0").decode(), params))
            off = HDR.size + nxt
        return out

    def message(self, name, msg):
        p = struct.pack("=Q", 0) + msg.encode() + b"\0"
        self.ioctl(DM_TARGET_MSG, name, payload=p)


SPLAT = re.compile(r"BUG:|WARNING:|Oops|circular locking|recursive locking|"
                   r"KASAN|UBSAN|general protection|Call Trace|inconsistent lock state")
# The kernel's reports of a failed allocation (warn_alloc, a failed
# kmem_cache_create) dump the stack: no bug when failnth made it fail.
ALLOC_FAILURE = re.compile(r"page allocation failure:|vmalloc error:|"
                           r"kmem_cache_create[a-z_]*\(.*\) failed with error")


class Kmsg:
    """Reads the kernel log from now on, to catch a splat near its cause."""

    def __init__(self):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)
        self.in_alloc_report = False

    def splat(self, alloc_failures_expected=False):
        """The first splat logged since the last call, or None.  With
        alloc_failures_expected, the call trace of an allocation-failure
        report is none."""
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                return None
            except BrokenPipeError:     # overwritten while we were away
                continue
            text = rec.decode(errors="replace").split(";", 1)[-1]
            if alloc_failures_expected:
                if ALLOC_FAILURE.search(text):
                    self.in_alloc_report = True
                elif self.in_alloc_report and "</TASK>" in text:
                    self.in_alloc_report = False
                if self.in_alloc_report and "Call Trace" in text:
                    continue
            if SPLAT.search(text):
                return text.strip()


def kmsg(text):
    try:
        with open("/dev/kmsg", "w") as f:
            f.write("<6>" + text[:900] + "\n")
    except OSError:
        pass


def dm_node(name):
    for d in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{d}/dm/name") as f:
                if f.read().strip() == name:
                    return "/dev/" + d
        except OSError:
            continue
    raise DmError(f"no /sys/block entry for {name}")


def sectors(dev):
    fd = os.open(dev, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END) // 512
    finally:
        os.close(fd)


def majmin(dev):
    st = os.stat(dev)
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


class Blocks:
    """O_DIRECT 4 KiB block I/O on a device."""

    def __init__(self, dev, write=True):
        self.fd = os.open(dev, (os.O_RDWR if write else os.O_RDONLY) | os.O_DIRECT)
        self.buf = mmap.mmap(-1, BLOCK)

    def close(self):
        os.close(self.fd)

    def put(self, blk, data):
        self.buf.seek(0)
        self.buf.write(data)
        if os.pwritev(self.fd, [self.buf], blk * BLOCK) != BLOCK:
            raise DmError(f"short write at block {blk}")

    def get(self, blk):
        if os.preadv(self.fd, [self.buf], blk * BLOCK) != BLOCK:
            raise DmError(f"short read at block {blk}")
        return bytes(self.buf)


def wipe(devs):
    """Zero both superblock copies (first 8 KiB) of each device."""
    for d in devs:
        b = Blocks(d)
        for blk in (0, 1):
            b.put(blk, bytes(BLOCK))
        b.close()


# ---------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------
def weird_number(r):
    return r.choice(["0", "1", "-1", "7", "8", "9", "16", "100", "101", "2048",
                     "4096", "65536", "4294967295", "4294967296",
                     "18446744073709551615", "18446744073709551616",
                     "99999999999999999999999", "0x10", "010", "+8", "8k",
                     " 8", "1e3", "", "-0", str(r.randrange(-10, 5000)),
                     str(r.getrandbits(64)), str(r.getrandbits(33))])


def weird_token(r, ctx):
    kind = r.randrange(10)
    if kind == 0:
        return weird_number(r)
    if kind == 1:
        return r.choice(MODES + ("WriteBack", "writeback\\", "write back", "wb",
                                 "writebackx", "writ"))
    if kind == 2:
        return r.choice(TUNABLES + ("block_size", "volatile", "format",
                                    "no_discard_passdown", "checksum", "blocksize", "idle"))
    if kind == 3:
        return r.choice(ctx["devs"])
    if kind == 4:
        return "".join(r.choice("abcxyz019_-:/\\'\"#%") for _ in range(r.randrange(1, 12)))
    if kind == 5:
        return "x" * r.choice([64, 255, 256, 1024, 3000])
    if kind == 6:
        return "\\" + r.choice(["", "\\", " ", "n", "x"])
    if kind == 7:
        return r.choice(["\t", "  ", "%s%n", "${x}", "\u00e9", "--", "-"])
    return weird_number(r)


# The values a table line gives each tunable: "min", "max", "default" and
# "min+1"/"min-1" are taken from the tunable's row; numbers are deliberate
# picks in the middle of the range, or refused ones: commit_ms below its
# minimum (0, which other tunables take as "off"), writeback_latency 50
# (0 is off, else it starts at 100, STASH_WB_LATENCY_MIN_ON).  The
# watermarks stay in bands that never cross: high_watermark from its
# default, low_watermark below it.  A tunable not listed gets its minimum,
# default and maximum; one with at most 16 values, any of them.
TABLE_PICKS = {
    "sequential_cutoff": ("min", 64, "default", 1 << 20),
    "high_watermark": ("default", 90, "max"),
    "low_watermark": ("min", "default", 40),
    "idle_ms": ("min", 100, "default"),
    "commit_ms": ("min-1", 10, "default", "max"),
    "writeback_latency": ("min", 50, 100, "default", "max"),
    "writeback_rate_cap": ("min", "min+1", 1024, "max"),
}


def table_values(t):
    """The values table lines give tunable @t."""
    if t.name not in TABLE_PICKS and t.max - t.min < 16:
        return list(range(t.min, t.max + 1))
    sym = {"min": t.min, "max": t.max, "default": t.default,
           "min+1": t.min + 1, "min-1": t.min - 1}
    return [sym.get(v, v) for v in TABLE_PICKS.get(t.name, ("min", "default", "max"))]


def base_opts(r):
    opts = []
    pool = [("block_size", lambda: r.choice(["8", "16", "32", "64", "128", "256", "2048"])),
            ("volatile", None), ("format", None), ("no_discard_passdown", None),
            ("checksum", None)]
    pool += [(t.name, lambda t=t: str(r.choice(table_values(t)))) for t in TUNS.values()]
    for key, val in r.sample(pool, r.randrange(0, len(pool) + 1)):
        opts.append(key)
        if val:
            opts.append(val())
    return opts


def valid_table(r, ctx):
    opts = base_opts(r)
    args = [ctx["origin"], ctx["cache"], r.choice(MODES)]
    if opts or r.random() < 0.3:
        args += [str(len(opts))] + opts
    return 0, ctx["len"], args


def mutate(r, args):
    args = list(args)
    for _ in range(r.randrange(1, 4)):
        op = r.randrange(8)
        i = r.randrange(len(args)) if args else 0
        if op == 0 and args:
            args[i] = weird_token(r, CTX)
        elif op == 1 and args:
            del args[i]
        elif op == 2:
            args.insert(i, weird_token(r, CTX))
        elif op == 3 and args:
            args.insert(i, args[i])
        elif op == 4 and len(args) > 1:
            j = r.randrange(len(args))
            args[i], args[j] = args[j], args[i]
        elif op == 5 and len(args) > 3:
            args[3] = weird_number(r)
        elif op == 6:
            args += r.choice([["block_size", weird_number(r)],
                              ["high_watermark", weird_number(r), "low_watermark", weird_number(r)],
                              [weird_token(r, CTX)]])
        else:
            args = args[:r.randrange(len(args) + 1)]
    return args


def gen_table(r):
    start, length, args = valid_table(r, CTX)
    kind = r.random()
    if kind < 0.12:
        pass                                    # valid as it is
    elif kind < 0.2:
        args = [weird_token(r, CTX) for _ in range(r.randrange(0, 14))]
    else:
        args = mutate(r, args)
    if r.random() < 0.08:
        length = r.choice([1, 7, 8, 9, CTX["len"] - 1, CTX["len"] + 8, CTX["len"] * 2, 1 << 40])
    if r.random() < 0.04:
        start = r.choice([0, 8])    # a single target must start at 0
    return start, length, " ".join(args)


# Valid messages: every tunable set to its default, and picks of values a
# write-back volume under test takes without trouble (inside their ranges).
MSG_PICKS = [("sequential_cutoff", 0), ("high_watermark", 90), ("low_watermark", 5),
             ("idle_ms", 0), ("idle_ms", 500), ("writeback_inflight", 4),
             ("commit_ms", 100)]
VALID_MSGS = [["mode", "writearound"], ["mode", "writethrough"], ["mode", "writeback"],
              ["flush"], ["invalidate"], ["reset_counters"]]
VALID_MSGS += [["set", t.name, str(t.default)] for t in TUNS.values()]
VALID_MSGS += [["set", k, str(v)] for k, v in MSG_PICKS
               if k in TUNS and TUNS[k].min <= v <= TUNS[k].max]


def set_defaults(dm, name):
    """Every tunable back to its default (the watermarks in an order that
    keeps low below high whatever they are now)."""
    low = TUNS.get("low_watermark")
    if low:
        dm.message(name, f"set low_watermark {low.min}")
    for t in TUNS.values():
        if t is not low:
            dm.message(name, f"set {t.name} {t.default}")
    if low:
        dm.message(name, f"set low_watermark {low.default}")


def gen_message(r):
    msg = list(r.choice(VALID_MSGS))
    kind = r.random()
    if kind < 0.2:
        return msg
    if kind < 0.35:
        return ["set", r.choice(TUNABLES), weird_number(r)]
    if kind < 0.45:
        return [weird_token(r, CTX) for _ in range(r.randrange(1, 6))]
    return mutate(r, msg) or ["x"]


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------
class Failure(Exception):
    pass


def check_io(dev, length, r):
    """Write a few blocks of the device, read them back."""
    nblocks = min(length * 512 // BLOCK, 64)
    if nblocks == 0:
        return
    b = Blocks(dev)
    try:
        blks = r.sample(range(nblocks), min(nblocks, 4))
        data = {blk: r.randbytes(BLOCK) for blk in blks}
        for blk in blks:
            b.put(blk, data[blk])
        for blk in blks:
            if b.get(blk) != data[blk]:
                raise Failure(f"block {blk} reads back wrong")
    finally:
        b.close()


def run_tables(dm, args, r):
    name = PREFIX + "fuzz"
    accepted = refused = 0
    for n in range(args.count):
        start, length, params = gen_table(r)
        line = f"{start} {length} stash {params}"
        kmsg(f"dm-fuzz: {n} table {line!r}")
        if n % 10 == 0 and (sp := KLOG.splat()):
            raise Failure(f"kernel splat before line {n} (after one of the 10 before it): {sp}")
        dm.create(name)
        try:
            try:
                dm.load(name, start, length, "stash", params)
            except DmError as e:
                refused += 1
                if dm.inactive_present(name):
                    raise Failure(f"refused ({e}) but an inactive table is present")
                if dm.table(name):
                    raise Failure("refused but the device has a live table")
                continue
            try:
                dm.resume(name)
            except DmError as e:
                # Refused at resume (preresume): clean too, if nothing is live.
                refused += 1
                if dm.table(name):
                    raise Failure(f"resume failed ({e}) but a table is live")
                continue
            accepted += 1
            tbl = dm.table(name)
            if len(tbl) != 1 or tbl[0][2] != "stash" or tbl[0][1] != length:
                raise Failure(f"accepted, but the table reads back as {tbl}")
            dm.table(name, table=False)     # the status must work too
            # What the table reports must load again: an identical reload.
            dm.load(name, tbl[0][0], tbl[0][1], "stash", tbl[0][3])
            dm.suspend(name)
            dm.resume(name)
            check_io(dm_node(name), length, r)
        except (Failure, DmError) as e:
            raise Failure(f"line {n}: {line!r}: {e}") from None
        finally:
            try:
                dm.remove(name)
            except DmError as e:
                raise Failure(f"line {n}: {line!r}: cannot remove: {e}") from None
            wipe([args.origin, args.cache])
    print(f"tables: {args.count} lines, {accepted} accepted, {refused} refused")
    if accepted < args.count // 20 or refused < args.count // 2:
        raise Failure("implausible mix of accepted and refused lines")


def status_of(dm, name):
    params = dm.table(name, table=False)[0][3]
    return dict(t.split("=", 1) for t in params.split() if "=" in t)


def canon_int(s):
    try:
        return int(s, 10)
    except ValueError:
        return None


def run_messages(dm, args, r):
    name = PREFIX + "fuzzmsg"
    length = CTX["len"]
    nblocks = min(length * 512 // BLOCK, 2048)
    shadow = {}
    dm.create(name)
    try:
        dm.load(name, 0, length, "stash", f"{args.origin} {args.cache} writeback 2 sequential_cutoff 0")
        dm.resume(name)
        dev = dm_node(name)
        b = Blocks(dev)
        for blk in range(0, nblocks, 7):
            shadow[blk] = r.randbytes(BLOCK)
            b.put(blk, shadow[blk])
        accepted = refused = 0
        for n in range(args.count):
            words = gen_message(r)
            msg = " ".join(words)
            kmsg(f"dm-fuzz: {n} message {msg!r}")
            if n % 10 == 0 and (sp := KLOG.splat()):
                raise Failure(f"kernel splat before message {n} (after one of the 10 before it): {sp}")
            before = status_of(dm, name)
            try:
                dm.message(name, msg)
                ok = True
            except DmError:
                ok = False
            after = status_of(dm, name)
            keys = ("mode",) + TUNABLES
            if ok:
                accepted += 1
                if words[0] == "mode" and len(words) == 2 and after.get("mode") != words[1]:
                    raise Failure(f"message {n} {msg!r} accepted but mode={after.get('mode')}")
                if words[0] == "set" and len(words) == 3 and words[1] in TUNABLES and \
                        canon_int(after.get(words[1], "")) != canon_int(words[2]):
                    raise Failure(f"message {n} {msg!r} accepted but {words[1]}={after.get(words[1])}")
            else:
                refused += 1
                changed = [k for k in keys if before.get(k) != after.get(k)]
                if changed:
                    raise Failure(f"message {n} {msg!r} refused but changed {changed}: {before} -> {after}")
            if n % 10 == 0:
                blk = r.randrange(nblocks)
                shadow[blk] = r.randbytes(BLOCK)
                b.put(blk, shadow[blk])
            if n % 100 == 0:
                for blk in r.sample(sorted(shadow), min(len(shadow), 16)):
                    if b.get(blk) != shadow[blk]:
                        raise Failure(f"after message {n}: block {blk} reads back wrong")
        print(f"messages: {args.count} messages, {accepted} accepted, {refused} refused")
        if accepted < args.count // 20 or refused < args.count // 4:
            raise Failure("implausible mix of accepted and refused messages")
        for blk, data in shadow.items():
            if b.get(blk) != data:
                raise Failure(f"end: block {blk} reads back wrong through the volume")
        b.close()
        set_defaults(dm, name)      # no rate cap or idle writeback left set
        dm.message(name, "flush")
        end = time.time() + 300
        while status_of(dm, name).get("dirty") != "0":
            if time.time() > end:
                raise Failure(f"not clean after a flush: {status_of(dm, name)}")
            time.sleep(0.2)
    finally:
        dm.remove(name)
    o = Blocks(args.origin, write=False)
    for blk, data in shadow.items():
        if o.get(blk) != data:
            raise Failure(f"end: block {blk} wrong on the origin after flush and removal")
    o.close()


class FailNth:
    """Make the Nth fault-injection point this thread reaches fail
    (/proc/thread-self/fail-nth; the failslab, fail_page_alloc ... filters
    decide which calls count)."""

    def __init__(self):
        self.fd = os.open("/proc/thread-self/fail-nth", os.O_RDWR)

    def arm(self, n):
        os.pwrite(self.fd, str(n).encode(), 0)

    def disarm(self):
        """0 when the Nth call came (and failed), else how many were left."""
        left = int(os.pread(self.fd, 32, 0).decode().strip() or 0)
        os.pwrite(self.fd, b"0", 0)
        return left


def run_failnth(dm, args, r):
    """Every allocation of a create + table load + resume, then of an
    identical reload, a suspend/resume and a few messages, made to fail one
    at a time: each must fail cleanly or succeed, and the device must work
    and remove afterwards."""
    name = PREFIX + "failnth"
    nth = FailNth()
    opts = (["volatile"] if args.volatile else []) + ["sequential_cutoff", "0"]
    params = f"{args.origin} {args.cache} writeback {len(opts)} {' '.join(opts)}"
    length = CTX["len"]
    injected = 0

    def attempt(what, fn):
        nonlocal injected
        for n in range(1, 100000):
            kmsg(f"dm-fuzz: failnth {what} n={n}")
            nth.arm(n)
            err = None
            try:
                fn()
            except DmError as e:
                err = e
            left = nth.disarm()
            if left:            # fewer than n calls: nothing failed
                if err:
                    raise Failure(f"{what}: failed with nothing injected: {err}")
                return n - 1
            injected += 1
            yield n, err
            sp = KLOG.splat(alloc_failures_expected=True)
            if sp:
                raise Failure(f"{what}: kernel splat with allocation {n} failed: {sp}")
        raise Failure(f"{what}: no end")

    def create_load_resume():
        dm.create(name)
        dm.load(name, 0, length, "stash", params)
        dm.resume(name)

    def cleanup_create():
        try:
            dm.remove(name)
        except DmError:
            pass
        wipe([args.cache])

    # 1. Create, load, resume.
    gen = attempt("create", create_load_resume)
    for n, err in gen:
        try:
            live = dm.table(name)
        except DmError:
            live = None         # the device was not created
        if err is None:
            if not live:
                raise Failure(f"create: n={n}: success but no live table")
            check_io(dm_node(name), length, r)
        elif live:
            # Only a failed resume leaves a live table: dm swaps the new
            # table in before the target's preresume, and the device stays
            # suspended.  A second resume, with nothing injected, must then
            # bring the volume up.
            try:
                dm.resume(name)
            except DmError as e:
                raise Failure(f"create: n={n}: failed ({err}) with the table "
                              f"live, and a second resume fails too: {e}") from None
            check_io(dm_node(name), length, r)
        cleanup_create()
    cleanup_create()        # the last, uninjected, create succeeded
    total_create = injected
    # 2. On a live device: identical reload, suspend/resume, messages.
    create_load_resume()
    dev = dm_node(name)
    check_io(dev, length, r)

    def reload():
        dm.load(name, 0, length, "stash", params)

    def suspend_resume():
        dm.suspend(name)
        dm.resume(name)

    ops = [("reload", reload), ("suspend-resume", suspend_resume)]
    for m in ("mode writethrough", "mode writeback", "set idle_ms 100",
              "set commit_ms 50", "flush", "invalidate", "reset_counters"):
        ops.append((f"message {m}", lambda m=m: dm.message(name, m)))
    for what, fn in ops:
        for n, err in attempt(what, fn):
            # Whatever happened, the device must be usable again.
            try:
                if dm.inactive_present(name):
                    dm.clear(name)
                dm.resume(name)     # also undoes a suspend left half done
            except DmError as e:
                raise Failure(f"{what}: n={n} ({err}): cannot resume afterwards: {e}") from None
            check_io(dev, length, r)
    dm.remove(name)
    print(f"failnth: {injected} allocation failures injected "
          f"({total_create} in create/load/resume)")
    if total_create < 3:
        raise Failure("fewer than 3 allocations failed in create: is failslab set up?")


CTX = {}
KLOG = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("tables", "messages", "failnth"))
    ap.add_argument("--volatile", action="store_true")
    ap.add_argument("--origin", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=8585)
    args = ap.parse_args()
    r = random.Random(args.seed)
    CTX.update(origin=args.origin, cache=args.cache, len=sectors(args.origin),
               devs=[args.origin, args.cache, majmin(args.origin), majmin(args.cache),
                     "/dev/null", "/dev/stasht-none", "0:0", "259:99999", "/dev/ram"])
    dm = Dm()
    global KLOG
    KLOG = Kmsg()
    t0 = time.time()
    try:
        if args.what == "tables":
            run_tables(dm, args, r)
        elif args.what == "messages":
            run_messages(dm, args, r)
        else:
            run_failnth(dm, args, r)
        sp = KLOG.splat()
        if sp:
            raise Failure(f"kernel splat near the end: {sp}")
    except (Failure, DmError) as e:
        print(f"FAIL (seed {args.seed}): {e}", file=sys.stderr)
        return 1
    print(f"{args.what}: seed {args.seed}, {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
