#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Where a test spends its time, from its STASH_XTRACE=1 trace.

usage: xtrace-profile.py NAME.xtrace [TOP]

Each trace line starts "+ EPOCHREALTIME FILE:LINE: command".  The time
until the next line is charged to the line (a rough measure: background
jobs interleave), and the lines are listed by their total, most first,
with how many times they ran.
"""
import collections
import re
import sys

LINE = re.compile(r'^\++ (\d+\.\d+) (\S+?:\d+): ?(.*)$')


def main():
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    total = collections.Counter()
    count = collections.Counter()
    text = {}
    prev = None
    first = last = None
    with open(sys.argv[1], errors='replace') as f:
        for raw in f:
            m = LINE.match(raw)
            if not m:
                continue
            t, where = float(m.group(1)), m.group(2)
            first = t if first is None else first
            last = t
            if prev:
                total[prev[1]] += t - prev[0]
            count[where] += 1
            text.setdefault(where, m.group(3)[:70])
            prev = (t, where)
    if first is None:
        sys.exit('no trace lines')
    print(f'{last - first:.1f} s traced')
    for where, secs in total.most_common(top):
        print(f'{secs:8.1f} s {count[where]:6d}x  {where:28s} {text[where]}')


if __name__ == '__main__':
    main()
