#!/usr/bin/env python3
"""Direct I/O at any 512-byte alignment, checked against a reference image.

    unaligned-io.py DEV REF [-w OFF:LEN]... [-r OFF:LEN]... [--rounds N]

Each -w writes LEN random bytes to DEV at byte offset OFF (O_DIRECT, one
pwritev each, in the order given) and puts them into REF, a file holding
what DEV must hold from offset 0 on; REF is saved afterwards.  Then, N
times (default 1), every -r range and every -w range is read back (reads of
at most 4 MiB) and compared with REF.  Exits non-zero at the first
difference or short transfer, naming the range.
"""
import argparse
import mmap
import os
import sys

BUF = 4 << 20


def span(text):
    off, _, length = text.partition(":")
    return int(off), int(length)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dev")
    ap.add_argument("ref")
    ap.add_argument("-w", dest="writes", type=span, action="append", default=[])
    ap.add_argument("-r", dest="reads", type=span, action="append", default=[])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()

    with open(args.ref, "rb") as f:
        ref = bytearray(f.read())
    fd = os.open(args.dev, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, BUF)

    for off, n in args.writes:
        if n > BUF or off + n > len(ref):
            sys.exit("write %d:%d is outside the buffer or the image" % (off, n))
        data = os.urandom(n)
        buf[:n] = data
        if os.pwritev(fd, [memoryview(buf)[:n]], off) != n:
            sys.exit("short write at %d" % off)
        ref[off:off + n] = data
    if args.writes:
        with open(args.ref, "wb") as f:
            f.write(ref)

    for _ in range(args.rounds):
        for off, n in args.reads + args.writes:
            done = 0
            while done < n:
                k = min(n - done, BUF)
                if os.preadv(fd, [memoryview(buf)[:k]], off + done) != k:
                    sys.exit("short read at %d" % (off + done))
                if buf[:k] != ref[off + done:off + done + k]:
                    sys.exit("data differs in %d:%d (at %d..%d)"
                             % (off, n, off + done, off + done + k))
                done += k
    os.close(fd)


if __name__ == "__main__":
    main()
