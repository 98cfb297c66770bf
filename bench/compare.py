#!/usr/bin/env python3
"""Compare two benchmark runs: do their ratios agree?

usage: bench/compare.py A/results.json B/results.json [--tolerance 0.15]
                        [--markdown]

For every system and workload in both runs it compares the IOPS ratio
against dm-linear-fast (the adjacent reference where the run has one)
and against raw-slow, and the p99 latency ratio
against dm-linear-fast; the difference is |a - b| / mean(a, b).  It prints
the pairs sorted by difference, the share that agree within the tolerance,
and the same per workload (which workloads are the noisy ones).  Exit
status 0 when every ratio agrees within the tolerance, else 1.
"""
import argparse
import json
import os
import sys

from report import BASE_FAST, BASE_SLOW, Report


def load(path):
    with open(path) as f:
        return json.load(f)


def host_of(path, res):
    """The host facts of a run (its clock decides the reference): in a
    report's results.json, or in host.json beside a raw one."""
    if res.get("host"):
        return res["host"]
    h = os.path.join(os.path.dirname(path), "host.json")
    return load(h) if os.path.exists(h) else {}


def ratios(res, host):
    """The ratios report.py shows (Report.ratios(): against the adjacent
    dm-linear reference where the run has one and ran on the host's
    clock), of the systems that ran to the end, keyed (system, workload,
    what); a system's ratio to itself is left out."""
    ok = {n: r for n, r in res["systems"].items() if r["status"] == "ok"}
    R = Report(dict(res, systems=ok), host).ratios()
    out = {}
    for s in R:
        for wl, r in R[s].items():
            for what, key, base in (("IOPS/linear-fast", "vs_linear_fast", BASE_FAST),
                                    ("IOPS/raw-slow", "vs_raw_slow", BASE_SLOW),
                                    ("p99/linear-fast", "p99_vs_linear_fast", BASE_FAST)):
                if s != base and r[key]:
                    out[(s, wl, what)] = r[key]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tolerance", type=float, default=0.15)
    a = ap.parse_args()
    A, B = load(a.a), load(a.b)
    ra, rb = ratios(A, host_of(a.a, A)), ratios(B, host_of(a.b, B))
    keys = sorted(set(ra) & set(rb))
    if not keys:
        print("compare: no ratio in common")
        return 1
    rows = []
    for k in keys:
        x, y = ra[k], rb[k]
        d = abs(x - y) / ((x + y) / 2) if x + y else 0
        rows.append((d, k, x, y))
    rows.sort(reverse=True)
    tol = a.tolerance
    print("| system | workload | ratio | run A | run B | difference |")
    print("|---|---|---|---:|---:|---:|")
    for d, (s, wl, what), x, y in rows:
        print("| %s | %s | %s | %.3f | %.3f | %s%.1f%% |" % (
            s, wl, what, x, y, "**" if d > tol else "", 100 * d))
    by_kind = {}
    for d, (s, wl, what), x, y in rows:
        by_kind.setdefault((what, wl), []).append(d)
    print("\nPer workload (share within %.0f%%, worst difference):\n" % (100 * tol))
    print("| ratio | workload | within | worst |")
    print("|---|---|---:|---:|")
    for (what, wl), ds in sorted(by_kind.items()):
        print("| %s | %s | %d/%d | %.1f%% |" % (
            what, wl, sum(d <= tol for d in ds), len(ds), 100 * max(ds)))
    ok = sum(d <= tol for d, *_ in rows)
    print("\n%d of %d ratios agree within %.0f%%" % (ok, len(rows), 100 * tol))
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
