#!/usr/bin/env python3
"""Compare two benchmark runs: do their ratios agree?

usage: bench/compare.py A/results.json B/results.json [--tolerance 0.15]
                        [--markdown]

For every system and workload in both runs it compares the IOPS ratio
against dm-linear-fast (the adjacent reference where the run has one)
and against raw-slow, and the p99 latency ratio
against dm-linear-fast; the difference is |a - b| / mean(a, b).  It prints
the pairs sorted by difference, the share that agree within the tolerance,
and the same per workload (which workloads are the noisy ones).  A p99
row also gives each run's p99/p50: at TWO_POPULATIONS or more the 99th
percentile falls in a second, slower population (cache hits and origin
I/O, say), where it jumps between the two from run to run.  Exit status 0
when every ratio agrees within the tolerance, else 1.
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
    if os.path.exists(h):
        return load(h)
    print("compare: %s has no host facts and no host.json beside it: its "
          "ratios are taken against the adjacent reference, as on the "
          "host's clock" % path, file=sys.stderr)
    return {}


# p99/p50 from which a latency distribution counts as two populations.
TWO_POPULATIONS = 10


def tail_spread(res, system, workload):
    """p99/p50 of @system's @workload in @res, or None."""
    w = res["systems"].get(system, {}).get("workloads", {}).get(workload)
    s = (w or {}).get("summary", {})
    if not s.get("p50_us") or not s.get("p99_us"):
        return None
    return s["p99_us"] / s["p50_us"]


def fmt_spread(x):
    return "-" if x is None else "%.0f" % x if x >= 10 else "%.1f" % x


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
    print("| system | workload | ratio | run A | run B | difference "
          "| p99/p50 A / B |")
    print("|---|---|---|---:|---:|---:|---:|")
    apart = two_pop = 0
    for d, (s, wl, what), x, y in rows:
        spread = ""
        if what.startswith("p99"):
            sa, sb = tail_spread(A, s, wl), tail_spread(B, s, wl)
            spread = "%s / %s" % (fmt_spread(sa), fmt_spread(sb))
            if d > tol:
                apart += 1
                two_pop += any(v is not None and v >= TWO_POPULATIONS
                               for v in (sa, sb))
        print("| %s | %s | %s | %.3f | %.3f | %s%.1f%% | %s |" % (
            s, wl, what, x, y, "**" if d > tol else "", 100 * d, spread))
    by_kind = {}
    for d, (s, wl, what), x, y in rows:
        by_kind.setdefault((what, wl), []).append(d)
    print("\nPer workload (share within %.0f%%, worst difference):\n" % (100 * tol))
    print("| ratio | workload | within | worst |")
    print("|---|---|---:|---:|")
    for (what, wl), ds in sorted(by_kind.items()):
        print("| %s | %s | %d/%d | %.1f%% |" % (
            what, wl, sum(d <= tol for d in ds), len(ds), 100 * max(ds)))
    if apart:
        print("\n%d of the %d p99 ratios apart have p99/p50 >= %d in a run "
              "(two populations)" % (two_pop, apart, TWO_POPULATIONS))
    ok = sum(d <= tol for d, *_ in rows)
    print("\n%d of %d ratios agree within %.0f%%" % (ok, len(rows), 100 * tol))
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
