#!/usr/bin/python3
"""Complete one bench run's results.json with another run's.

    bench/merge.py [--no-systems] BASE.json SUPPLEMENT.json OUT.json

Every system the supplement measured replaces (or adds) that system in
BASE (with --no-systems, none does); the supplement's drain and memory
figures, if it has them, replace BASE's.  Systems are measured on devices rebuilt from zero and, on the
virtual clock, cost the same guest time in any run, so a system measured
in another boot of the same bench code and model stands beside the
others.  OUT's meta.supplements says which figures came from where (the
report prints it); both runs must have the same mode, model and clock.
"""
import json
import sys

SAME = ("mode",)
SAME_CONFIG = ("cache_mb", "delay_ms", "hot_mb", "runtime", "ramp", "reps",
               "zipf_warm", "zipf_warm_max", "busy_runtime", "busy_writes",
               "busy_seq_reads", "origin_mb")


def main():
    args = sys.argv[1:]
    no_systems = args[:1] == ["--no-systems"]
    if no_systems:
        args = args[1:]
    if len(args) != 3:
        sys.exit("usage: bench/merge.py [--no-systems] BASE.json "
                 "SUPPLEMENT.json OUT.json")
    base = json.load(open(args[0]))
    sup = json.load(open(args[1]))
    if no_systems:
        sup["systems"] = {}
    bm, sm = base["meta"], sup["meta"]
    for k in SAME:
        if bm.get(k) != sm.get(k):
            sys.exit("merge: %s differs: %r / %r" % (k, bm.get(k), sm.get(k)))
    for k in SAME_CONFIG:
        if bm["config"].get(k) != sm["config"].get(k):
            sys.exit("merge: config %s differs: %r / %r" % (
                k, bm["config"].get(k), sm["config"].get(k)))
    if base.get("devices", {}).get("slow", {}).get("kind") != \
            sup.get("devices", {}).get("slow", {}).get("kind"):
        sys.exit("merge: the slow device models differ")
    taken = dict(command=sm.get("command"), started=sm.get("started"),
                 finished=sm.get("finished"),
                 module=sm.get("module", {}).get("head"),
                 systems=[n for n in sup["systems"]])
    for n, rec in sup["systems"].items():
        base["systems"][n] = rec
    for part in ("drain", "memory"):
        if sup.get(part) is not None:
            base[part] = sup[part]
            taken[part] = True
    bm.setdefault("supplements", []).append(taken)
    with open(args[2], "w") as f:
        json.dump(base, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
