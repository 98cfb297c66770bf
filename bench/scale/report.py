#!/usr/bin/env python3
"""Turn a make bench-scale run (results.tsv) into docs/bench/scale.md.

usage: bench/scale/report.py RESULTS_TSV [-o FILE] [--command CMD]

The figures are the guest's seconds on the bench's virtual clock (one vCPU
whose clock counts instructions): stable from run to run, comparable with
each other, not real seconds.  Targets (issue: scale):
  - kernel RAM per cache block <= 16 B at every size;
  - clean and unclean resume <= 1.5x a sequential read of the metadata
    region (the first create, which writes the region, is reported beside);
  - an fsync's latency with few dirty pages: the largest cache within 10%
    of the smallest;
  - suspend and remove of a clean cache: the largest cache within 10% of
    the smallest (or both under 0.1 s);
  - an idle clean volume runs no work item.
"""
import argparse
import collections
import sys


def load(path):
    rows = collections.OrderedDict()
    with open(path) as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            cfg, key, value, unit = parts
            rows.setdefault(cfg, {})[key] = (value, unit)
    return rows


def num(rows, cfg, key):
    try:
        return float(rows[cfg][key][0])
    except (KeyError, ValueError):
        return None


def fmt(v, digits=2):
    if v is None:
        return "-"
    if abs(v - round(v)) < 1e-9 and abs(v) >= 10:
        return f"{int(round(v)):,}"
    return f"{v:.{digits}f}"


def verdict(ok):
    if ok is None:
        return "-"
    return "PASS" if ok else "MISS"


def same_within(a, b, rel, floor=0.0):
    if a is None or b is None:
        return None
    if max(a, b) <= floor:
        return True
    return abs(b - a) <= rel * max(a, 1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("-o", "--output")
    ap.add_argument("--command", default="make bench-scale")
    a = ap.parse_args()
    rows = load(a.results)
    cfgs = [c for c in rows if c not in ("all", "volumes")]
    out = []
    w = out.append
    kernel = rows.get("all", {}).get("kernel", ("?", ""))[0]
    module = rows.get("all", {}).get("module", ("?", ""))[0]
    w("# Scale: large caches and many volumes\n")
    w(f"Produced by `{a.command}` (bench/scale/: guest.sh in the test VM, "
      "this page by report.py). Kernel "
      f"{kernel}, module {module}. Times are the guest's seconds on the "
      "bench's virtual clock (one vCPU whose clock counts instructions, as "
      "in [README.md](README.md)): compare them with each other, not with "
      "real devices. Devices are memory-backed null_blk disks, which "
      "allocate only what is written (the metadata region and the blocks "
      "the fio jobs touch).\n")
    w("## Large caches\n")
    w("| figure | " + " | ".join(f"`{c}`" for c in cfgs) + " |")
    w("|---|" + "---:|" * len(cfgs))
    lines = [
        ("cache blocks", "cache_blocks", 0),
        ("metadata pages", "md_pages", 0),
        ("metadata region, MiB", "md_bytes", "mib"),
        ("kernel RAM per cache block, B", "ram_per_block", 0),
        ("first create (format), s", "format", 2),
        ("sequential read of the metadata region, s", "md_read", 2),
        ("clean resume, nothing cached, s", "resume_empty", 2),
        ("clean resume, every slot mapped, s", "resume_full", 2),
        ("unclean resume, every slot mapped, s", "resume_crash", 2),
        ("suspend of a clean cache, nothing cached, s", "suspend_empty", 3),
        ("suspend of a clean cache, every slot mapped, s", "suspend_full", 3),
        ("resume after that suspend, s", "resume_after_suspend", 3),
        ("remove of a clean cache, nothing cached, s", "remove_empty", 3),
        ("remove of a clean cache, every slot mapped, s", "remove_full", 3),
        ("fsync after a 4 KiB write: mean, us", "fsync_mean_us", 0),
        ("fsync after a 4 KiB write: p99, us", "fsync_p99_us", 0),
        ("commits per second under that load", "commits_per_s", 0),
        ("volatile: fsync after a 4 KiB write: mean, us",
         "fsync_volatile_mean_us", 0),
        ("volatile: fsync after a 4 KiB write: p99, us",
         "fsync_volatile_p99_us", 0),
    ]
    for label, key, d in lines:
        vals = []
        for c in cfgs:
            v = num(rows, c, key)
            if d == "mib" and v is not None:
                vals.append(fmt(v / 1048576, 1))
            else:
                vals.append(fmt(v, d if isinstance(d, int) else 2))
        w(f"| {label} | " + " | ".join(vals) + " |")
    w("")
    w("### Targets\n")
    w("| target | config | measured | verdict |")
    w("|---|---|---|---|")
    for c in cfgs:
        v = num(rows, c, "ram_per_block")
        w(f"| kernel RAM per cache block <= 16 B | `{c}` | {fmt(v, 0)} B "
          f"| {verdict(None if v is None else v <= 16)} |")
    for c in cfgs:
        base = num(rows, c, "md_read")
        for key, what in (("resume_full", "clean resume"),
                          ("resume_crash", "unclean resume"),
                          ("format", "first create")):
            v = num(rows, c, key)
            r = v / base if v is not None and base else None
            ok = None if r is None else r <= 1.5
            w(f"| {what} <= 1.5x metadata read | `{c}` | {fmt(r)}x "
              f"| {verdict(ok)} |")
    if len(cfgs) >= 2:
        small, large = cfgs[0], cfgs[1]
        for key, what, floor in (
                ("fsync_mean_us", "fsync latency (mean)", 0.0),
                ("fsync_volatile_mean_us", "volatile fsync latency (mean)",
                 0.0),
                ("suspend_full", "suspend of a clean cache", 0.1),
                ("remove_full", "remove of a clean cache", 0.1)):
            a_, b_ = num(rows, small, key), num(rows, large, key)
            ok = same_within(a_, b_, 0.10, floor)
            w(f"| {what}: `{large}` within 10% of `{small}` | both "
              f"| {fmt(a_, 3)} / {fmt(b_, 3)} | {verdict(ok)} |")
    vol = rows.get("volumes")
    if vol:
        w("\n## Many volumes\n")
        n = num(rows, "volumes", "volumes")
        w(f"{fmt(n, 0)} write-back volumes at once, each with its own "
          "64 MiB cache and 512 MiB origin (null_blk).\n")
        w("| figure | value |")
        w("|---|---:|")
        for label, key in (
                ("cache blocks per volume", "blocks_per_volume"),
                ("kernel RAM per volume, KiB (MemAvailable)", "kib_per_volume"),
                ("of which fixed (beyond ram_per_block x blocks), KiB",
                 "fixed_kib_per_volume"),
                ("kernel threads per volume", "threads_per_volume"),
                ("volumes under fio verify at once, all verified", "fio_verified"),
                ("module work items while idle and clean",
                 "idle_work_items"),
                ("idle wake-ups per volume per minute",
                 "idle_wakeups_per_volume_min")):
            v = vol.get(key)
            w(f"| {label} | {v[0] + (' ' + v[1] if v and v[1] and key == 'idle_work_items' else '') if v else '-'} |")
        idle = num(rows, "volumes", "idle_work_items")
        w(f"\nTarget: an idle clean volume wakes up nothing: "
          f"{verdict(None if idle is None else idle == 0)}.")
    text = "\n".join(out) + "\n"
    if a.output:
        with open(a.output, "w") as f:
            f.write(text)
        print(f"report: wrote {a.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
