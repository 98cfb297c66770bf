#!/bin/bash
# desc: volatile write-back: a FUA write issued while a plain write to the same block is in flight never loses the plain write
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd python3
stash_load_module

# On a volatile cache a REQ_FUA write in write-back takes the write-through
# path.  Here one io_submit() issues, for each block, a plain 4 KiB write
# (a write-back miss: it takes a slot, marks it dirty and goes to the
# cache) and then a 512-byte RWF_DSYNC write (REQ_FUA, no flush) to the
# first sector of the same block.  The cache device sits behind dm-delay,
# so the plain write is still in flight when the FUA write arrives.  Both
# are acknowledged, so the block must read either as the plain write alone
# (FUA first) or as the plain write with the FUA sector on top (plain
# first), now and after writeback.
cache_setup 32 16
delay_create cdelay "$CACHE" 20
stash_create race "$ORIGIN" "$DELAY_DEV" writeback volatile high_watermark 100 idle_ms 0 sequential_cutoff 0
vol=$STASH_DEV
TRIALS=${TRIALS:-64}

raced=0
python3 - "$vol" "$TRIALS" <<'PY' || raced=1
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_io_setup, SYS_io_getevents, SYS_io_submit = 206, 208, 209
IOCB_CMD_PWRITE, RWF_DSYNC = 1, 2

class Iocb(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("key", ctypes.c_uint32),
                ("rw_flags", ctypes.c_int32), ("opcode", ctypes.c_uint16),
                ("reqprio", ctypes.c_int16), ("fildes", ctypes.c_uint32),
                ("buf", ctypes.c_uint64), ("nbytes", ctypes.c_uint64),
                ("offset", ctypes.c_int64), ("reserved2", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("resfd", ctypes.c_uint32)]

class Event(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64),
                ("res", ctypes.c_int64), ("res2", ctypes.c_int64)]

def check(r):
    if r < 0:
        e = ctypes.get_errno()
        sys.exit(f"syscall failed: {os.strerror(e)}")
    return r

dev, trials = sys.argv[1], int(sys.argv[2])
fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
ctx = ctypes.c_ulong(0)
check(libc.syscall(SYS_io_setup, 8, ctypes.byref(ctx)))
full = mmap.mmap(-1, 4096)
sect = mmap.mmap(-1, 4096)
sect.write(b"\xfe" * 4096)
cb = (Iocb * 2)()
ptrs = (ctypes.POINTER(Iocb) * 2)(ctypes.pointer(cb[0]), ctypes.pointer(cb[1]))
events = (Event * 2)()
addr = lambda m: ctypes.addressof(ctypes.c_char.from_buffer(m))
for b in range(trials):
    full.seek(0); full.write(bytes([b % 251 + 1]) * 4096)
    cb[0] = Iocb(data=0, opcode=IOCB_CMD_PWRITE, fildes=fd, buf=addr(full), nbytes=4096, offset=b * 4096)
    cb[1] = Iocb(data=1, opcode=IOCB_CMD_PWRITE, fildes=fd, rw_flags=RWF_DSYNC, buf=addr(sect), nbytes=512, offset=b * 4096)
    if check(libc.syscall(SYS_io_submit, ctx, 2, ptrs)) != 2:
        sys.exit("short submit")
    if check(libc.syscall(SYS_io_getevents, ctx, 2, 2, events, None)) != 2:
        sys.exit("short getevents")
    for ev in events:
        if ev.res != (4096 if ev.data == 0 else 512):
            sys.exit(f"block {b}: write {ev.data} returned {ev.res}")
bad = 0
buf = mmap.mmap(-1, 4096)
for b in range(trials):
    os.preadv(fd, [buf], b * 4096)
    a = bytes([b % 251 + 1])
    if not (buf[:] == a * 4096 or (buf[:512] == b"\xfe" * 512 and buf[512:] == a * 3584)):
        bad += 1
        if bad <= 5:
            print(f"block {b}: bytes 0..3 {buf[:4].hex()}, 512..515 {buf[512:516].hex()} (plain {a.hex()}, fua fe)", file=sys.stderr)
print(f"{trials} pairs, {bad} blocks hold neither order", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
st=$(status_line "$vol")
log "after the race: $st"
sum0=$(get "$vol" 0 "$TRIALS" | sha256sum)
# Drain before failing, so that the removal at exit has nothing to write.
drain "$vol"
log "after writeback: $(status_line "$vol")"
[ $raced = 0 ] || die "blocks lost the plain write (see above)"
used=$(field_of "$st" cache_blocks)
dirty=$(field_of "$st" dirty)
assert_ok "dirty ($dirty) <= cache blocks in use (${used%/*})" test "$dirty" -le "${used%/*}"

# After writeback the blocks read the same.
assert_eq "$sum0" "$(get "$vol" 0 "$TRIALS" | sha256sum)" "volume content after writeback"
assert_eq "$sum0" "$(get "$ORIGIN" 0 "$TRIALS" | sha256sum)" "origin content after writeback"
stash_remove "$vol"
