#!/usr/bin/env python3
"""Turn a make check-fstests run into a results page (docs/fstests.md).

usage: tests/fstests/report.py RESULTS_DIR [-o FILE] [--docs FILE]
       tests/fstests/report.py --pending -o FILE

RESULTS_DIR is what tests/fstests/run-guest.sh wrote to $STASH_OUT/fstests
(info.tsv, results.tsv, runs.tsv); make check-fstests keeps a copy in
build/fstests/results/<date>.  The page goes to FILE (default: stdout);
--docs FILE also writes it there, but only when the run covered the whole
matrix (every configuration on ext4 and xfs, at least the default test
list), so that a partial run does not replace the committed page.
--pending writes the page with no results: the configurations, the tests
and a note that the results wait for a VM run.

Exit status 0, or 2 on bad input.
"""

import argparse
import csv
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = ["linear", "wb", "wb-vol", "wt", "wa",
           "wb-cut0", "wb-vol-cut0", "wt-cut0", "wa-cut0"]
FILESYSTEMS = ["ext4", "xfs"]
COUNTERS = ["read_hits", "read_misses", "write_hits", "write_misses",
            "promotions", "evictions", "invalidations", "bypassed",
            "written_back"]

CONFIG_DOC = {
    "linear": ("`0 N linear ORIGIN 0`",
               "the baseline: a test that fails here is the environment's"),
    "wb": ("`0 N stash ORIGIN CACHE writeback`",
           "write-back, persistent metadata on the cache device"),
    "wb-vol": ("`0 N stash ORIGIN CACHE writeback 1 volatile`",
               "write-back, no metadata: a flush drains to the origin"),
    "wt": ("`0 N stash ORIGIN CACHE writethrough`", "write-through"),
    "wa": ("`0 N stash ORIGIN CACHE writearound`", "write-around"),
}
for _c in ("wb", "wb-vol", "wt", "wa"):
    CONFIG_DOC[_c + "-cut0"] = (
        CONFIG_DOC[_c][0] + ", then `dmsetup message VOL 0 set sequential_cutoff 0`",
        "the same with no sequential cutoff: mkfs, journal and long fsx "
        "streams go through the cache too")

LEGEND = ("`pass`: passed (seconds); `fail`: failed on dm-linear (the "
          "environment's); **`FAIL`**: failed on the stash volume but not on "
          "dm-linear; `fail*`: failed on dm-linear too; `n/r`: not run (fstests said why, below); "
          "`t/o`: the run's time budget ran out while it ran; `-`: not "
          "reached within the budget; `err`: ./check did not run it.")


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def read_info(path):
    info = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            info[k] = v
    return info


def read_list(name):
    """[(test, reason)] of tests/fstests/NAME.list."""
    out = []
    with open(os.path.join(HERE, name + ".list")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            test, _, why = line.rstrip("\n").partition("\t")
            out.append((test.strip(), why.strip()))
    return out


def md_table(header, rows, align=None):
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines)


def intro(out):
    out.append("# fstests on dm-stash")
    out.append("")
    out.append(
        "`make check-fstests` builds fstests (xfstests) once into "
        "`build/fstests` (`tests/fstests/build.sh`) and runs a curated list "
        "of its generic tests in the test VM (`tests/fstests/run-guest.sh`), "
        "on ext4 and on xfs, with `TEST_DEV` and `SCRATCH_DEV` on stash "
        "volumes in each configuration below and on dm-linear as the "
        "baseline. `LOGWRITES_DEV` is set, so the dm-log-writes tests run; "
        "the dm-flakey tests put their flakey device over `SCRATCH_DEV`. "
        "This page is written by `tests/fstests/report.py` from the run's "
        "`results.tsv` and `runs.tsv`.")
    out.append("")
    out.append(
        "Devices: memory-backed null_blk disks with 512-byte sectors (so that "
        "O_DIRECT I/O smaller than a 4 KiB cache block reaches the volume) "
        "that take discards. By default the `TEST_DEV` origin is 512 MiB, "
        "the `SCRATCH_DEV` origin 1 GiB (generic/482 puts a 600 MiB thin "
        "pool on it), each cache 32 MiB: far less than the tests write, so "
        "blocks are evicted and written back all along.")
    out.append("")
    out.append(
        "After each run, for each volume: `e2fsck -fn` / `xfs_repair -n` "
        "through the cache, the `flush` message and a wait for `dirty=0`, a "
        "byte-for-byte comparison of the volume with its origin (stash "
        "volumes; `n/a` on dm-linear), "
        "`dmsetup remove`, and the same check of the origin alone. "
        "`TEST_DEV`'s origin must check clean; `SCRATCH_DEV`'s must check "
        "as the volume did (it holds whatever the last test left: a thin "
        "pool, a filesystem a power-cut test left for its own check).")
    out.append("")
    out.append(
        "Time: the default matrix (2 filesystems x 9 configurations) has 20 "
        "minutes of VM time (`STASH_FSTESTS_TIME`); each run gets an equal "
        "share of what is left when it starts, and ./check is stopped when "
        "it is spent, so the tests are listed cheapest first. `STASH_LONG=1` "
        "adds `tests/fstests/long.list` and 4 hours. Other knobs: "
        "`FSTESTS=\"generic/013 ...\"`, `FSTESTS_CONFIGS=\"linear wb\"`, "
        "`FSTESTS_FS=xfs` (see the Makefile and the top of run-guest.sh).")
    out.append("")


def configs_section(out):
    out.append("## Configurations")
    out.append("")
    out.append(md_table(["config", "table", "what it shows"],
                        [(f"`{c}`",) + CONFIG_DOC[c] for c in CONFIGS]))
    out.append("")


def tests_section(out):
    out.append("## Tests")
    out.append("")
    out.append("The default list (`tests/fstests/default.list`), in the order they run:")
    out.append("")
    out.append(md_table(["test", "why"], read_list("default")))
    out.append("")
    out.append("`STASH_LONG=1` adds `tests/fstests/long.list`: "
               + ", ".join(t for t, _ in read_list("long")) + ".")
    out.append("")


def cell(result, seconds, baseline, base):
    """A per-test cell: RESULT on a baseline run, or on a stash run whose
    baseline result was BASE."""
    if result == "pass":
        return f"pass {seconds}s" if seconds else "pass"
    if result in ("fail", "error"):
        if baseline:
            return result
        if base in ("fail", "error"):
            return "fail*"
        return "**FAIL**" if result == "fail" else "**err**"
    return {"notrun": "n/r", "timeout": "t/o", "budget": "-"}.get(result, result)


def pct(a, b):
    return f"{100 * a / b:.0f}%" if b else ""


def results_section(out, d):
    info = read_info(os.path.join(d, "info.tsv"))
    results = read_tsv(os.path.join(d, "results.tsv"))
    runs = read_tsv(os.path.join(d, "runs.tsv"))
    tests = info.get("tests", "").split()
    configs = [c for c in CONFIGS if c in info.get("configs", "").split()]
    filesystems = [f for f in FILESYSTEMS if f in info.get("filesystems", "").split()]

    res = {(r["fs"], r["config"], r["test"]): r for r in results}
    out.append("## Results")
    out.append("")
    out.append(
        f"Run of {info.get('date', '?')}: kernel {info.get('kernel', '?')}, "
        f"repo {info.get('repo', '?')}, module {info.get('module', '?')}, "
        f"fstests snapshot {info.get('fstests', '?')}; TEST_DEV "
        f"{info.get('test_mib', '?')} MiB, SCRATCH_DEV {info.get('scratch_mib', '?')} "
        f"MiB, caches {info.get('cache_mib', '?')} MiB, log "
        f"{info.get('log_mib', '?')} MiB; {info.get('time_s', '?')} s for "
        f"the matrix{' (STASH_LONG=1)' if info.get('long') == '1' else ''}.")
    out.append("")

    # Summary per fs and config.
    rows = []
    for fs in filesystems:
        for c in configs:
            counts = {}
            ours = env = 0
            for t in tests:
                r = res.get((fs, c, t))
                k = r["result"] if r else "missing"
                counts[k] = counts.get(k, 0) + 1
                if c != "linear" and k in ("fail", "error"):
                    b = res.get((fs, "linear", t))
                    if b and b["result"] in ("fail", "error"):
                        env += 1
                    else:
                        ours += 1
            checks = [f"{r['device']} {r['verdict']}" for r in runs
                      if r["fs"] == fs and r["config"] == c]
            elapsed = max((int(r["elapsed_s"]) for r in runs
                           if r["fs"] == fs and r["config"] == c and r["elapsed_s"]),
                          default="")
            fails = counts.get("fail", 0) + counts.get("error", 0)
            rows.append((fs, f"`{c}`", counts.get("pass", 0),
                         f"**{ours}**" if ours else (fails if c == "linear" else 0),
                         env if c != "linear" else "", counts.get("notrun", 0),
                         counts.get("timeout", 0), counts.get("budget", 0),
                         elapsed, ", ".join(checks) or "missing"))
    out.append("### Summary")
    out.append("")
    out.append(md_table(["fs", "config", "pass", "fail", "fail*", "not run",
                         "t/o", "not reached", "run s", "origin checks"], rows,
                        ["---", "---"] + ["---:"] * 7 + ["---"]))
    out.append("")
    out.append("`fail`: failures on the volume that dm-linear does not have "
               "(on dm-linear: its failures); `fail*`: failures dm-linear has "
               "too. The origin checks are per volume (see below).")
    out.append("")

    # Per test, per config, per fs.
    for fs in filesystems:
        out.append(f"### {fs}: per test")
        out.append("")
        rows = []
        for t in tests:
            base = res.get((fs, "linear", t))
            row = [t]
            for c in configs:
                r = res.get((fs, c, t))
                row.append(cell(r["result"], r["seconds"], c == "linear",
                                base["result"] if base else "") if r else "")
            rows.append(row)
        out.append(md_table(["test"] + [f"`{c}`" for c in configs], rows))
        out.append("")
    out.append(LEGEND)
    out.append("")

    # Cache traffic, stash volumes only.
    out.append("### Cache traffic")
    out.append("")
    out.append("Counters of each stash volume's `dmsetup status` over the whole "
               "run (mkfs, ./check and the final drain): hits and misses count "
               "I/Os once per cache block they touch, the rest count blocks. "
               "`dirty at end`: dirty blocks when ./check ended, before the "
               "drain; `cache blocks`: used/total after it.")
    out.append("")
    rows = []
    for r in runs:
        if r["config"] not in configs or r["config"] == "linear" or not r.get("read_hits"):
            continue
        v = {k: int(r[k] or 0) for k in COUNTERS}
        rows.append([r["fs"], f"`{r['config']}`", r["device"], v["read_hits"],
                     v["read_misses"], pct(v["read_hits"], v["read_hits"] + v["read_misses"]),
                     v["write_hits"], v["write_misses"], v["promotions"],
                     v["evictions"], v["invalidations"], v["bypassed"],
                     v["written_back"], r["dirty_at_end"], r["cache_blocks"], r["errors"]])
    out.append(md_table(
        ["fs", "config", "volume", "read hits", "read misses", "read hit %",
         "write hits", "write misses", "promoted", "evicted", "invalidated",
         "bypassed", "written back", "dirty at end", "cache blocks", "errors"],
        rows, ["---"] * 3 + ["---:"] * 13))
    out.append("")

    # Origin checks, every run.
    out.append("### Origin checks")
    out.append("")
    out.append("Per volume, after ./check: the fsck through the cache, then "
               "(drained) the byte comparison with the origin, then, removed, "
               "the fsck of the origin alone. `nofs(...)`: the scratch device "
               "held no filesystem of that type at the end (the last test "
               "left a thin pool, say).")
    out.append("")
    rows = [[r["fs"], f"`{r['config']}`", r["device"], r["fsck_volume"],
             r["content"], r["fsck_origin"],
             r["verdict"] if r["verdict"] == "ok" else f"**{r['verdict']}**"]
            for r in runs if r["config"] in configs]
    out.append(md_table(["fs", "config", "volume", "fsck volume", "content",
                         "fsck origin", "verdict"], rows))
    out.append("")

    # Why tests failed or did not run.
    fails = [r for r in results if r["result"] in ("fail", "error", "timeout")]
    if fails:
        out.append("### Failures and timeouts")
        out.append("")
        for r in fails:
            out.append(f"- {r['fs']} `{r['config']}` {r['test']} ({r['result']}): {r['note']}")
        out.append("")
    notrun = {}
    for r in results:
        if r["result"] == "notrun":
            notrun.setdefault((r["test"], r["note"]), []).append(f"{r['fs']} {r['config']}")
    if notrun:
        out.append("### Not run")
        out.append("")
        for (t, why), where in sorted(notrun.items()):
            n = len(where)
            scope = "everywhere" if n == len(configs) * len(filesystems) else ", ".join(where)
            out.append(f"- {t}: {why} ({scope})")
        out.append("")
    return info


def full_run(info):
    default = [t for t, _ in read_list("default")]
    return (set(info.get("configs", "").split()) >= set(CONFIGS)
            and set(info.get("filesystems", "").split()) >= set(FILESYSTEMS)
            and set(info.get("tests", "").split()) >= set(default))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="?")
    ap.add_argument("-o", "--output")
    ap.add_argument("--docs")
    ap.add_argument("--pending", action="store_true")
    a = ap.parse_args()
    if not a.pending and not a.results:
        ap.error("give RESULTS_DIR or --pending")

    out = []
    intro(out)
    configs_section(out)
    tests_section(out)
    info = None
    if a.pending:
        out.append("## Results")
        out.append("")
        out.append("**Pending a VM run.** Nothing has been measured yet: run "
                   "`make check-fstests` (as root, on an otherwise idle "
                   "machine) and commit the page it writes here. The page "
                   "will then show, per filesystem and configuration, a "
                   "summary, each test's result, and each volume's cache "
                   "traffic (read and write hits and misses, promotions, "
                   "evictions, invalidations, bypassed I/Os, blocks written "
                   "back, dirty blocks at the end) with the fsck of the "
                   "volume and of its origin and their comparison.")
        out.append("")
        out.append(LEGEND)
        out.append("")
    else:
        for f in ("info.tsv", "results.tsv", "runs.tsv"):
            if not os.path.isfile(os.path.join(a.results, f)):
                print(f"report: no {f} in {a.results}", file=sys.stderr)
                return 2
        info = results_section(out, a.results)
    text = "\n".join(out).rstrip() + "\n"

    if a.output:
        with open(a.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if a.docs and info is not None:
        if full_run(info):
            with open(a.docs, "w") as f:
                f.write(text)
            print(f"report: wrote {a.docs}", file=sys.stderr)
        else:
            print(f"report: a partial run: {a.docs} left as it is", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
