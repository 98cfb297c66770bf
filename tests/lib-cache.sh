# shellcheck shell=bash
# Helpers for the cache-engine and write-back tests.  Source after lib.sh:
#
#	. "$(dirname "$0")/../lib.sh"
#	. "$(dirname "$0")/../lib-cache.sh"
#
# Conventions: block numbers are 4 KiB blocks (the default stash block
# size); every read of a device that dm writes to bypasses the page cache
# (iflag=direct), since a buffered read can return stale pages.

# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------
# lin_create NAME DEV [SECTORS]: dm-linear over the first SECTORS (default:
# all) of DEV; sets LIN_DEV.  brd does no I/O accounting, a dm device does:
# wrap a RAM disk in one to count the I/Os that reach it (dev_stat).
lin_create() {
	local name=$1 dev=$2 len=${3:-$(dev_sectors "$2")}

	dm_create "$name" "0 $len linear $dev 0" ||
		die "cannot create dm-linear $name over $dev"
	LIN_DEV=$(dm_path "$name")
}

# cache_setup ORIGIN_MIB CACHE_MIB: two RAM disks (ram0 for the origin, ram1
# for the cache), each behind a dm-linear of the size asked for, so that
# their I/O can be counted.  Sets ORIGIN and CACHE to the wrappers.
cache_setup() {
	local o=$1 c=$2 max

	max=$((o > c ? o : c))
	brd_setup 2 $((max * 1024))
	lin_create origin /dev/ram0 $((o * 2048))
	ORIGIN=$LIN_DEV
	lin_create cache /dev/ram1 $((c * 2048))
	CACHE=$LIN_DEV
}

# blocks DEV: size in 4 KiB blocks.
blocks() {
	echo $(($(dev_sectors "$1") / 8))
}

# ---------------------------------------------------------------------------
# Status
# ---------------------------------------------------------------------------
# sf DEV KEY: one status field (stash_status_field, dying if it is absent).
sf() {
	stash_status_field "$1" "$2" || die "no $2= in the status of $1"
}

# used_blocks DEV: the <used> of cache_blocks=<used>/<total>.
used_blocks() {
	local v

	v=$(sf "$1" cache_blocks)
	echo "${v%/*}"
}

# total_blocks DEV: the <total> of cache_blocks=<used>/<total>.
total_blocks() {
	local v

	v=$(sf "$1" cache_blocks)
	echo "${v#*/}"
}

# status_line DEV: the whole INFO status.
status_line() {
	dmsetup status "$1"
}

# field_of STATUS KEY: a field from a status line saved earlier.
field_of() {
	tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}

# delta OLD_STATUS NEW_STATUS KEY: how much KEY grew between two status lines.
delta() {
	echo $(($(field_of "$2" "$3") - $(field_of "$1" "$3")))
}

# wait_field DEV KEY VALUE SECONDS: poll until KEY=VALUE; fails on timeout.
wait_field() {
	local dev=$1 key=$2 want=$3 secs=$4 end

	end=$(($(date +%s%N) + secs * 1000000000))
	while [ "$(stash_status_field "$dev" "$key")" != "$want" ]; do
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# wait_clean DEV SECONDS: wait for dirty=0 and state=idle; dies on timeout.
wait_clean() {
	local dev=$1 secs=$2

	wait_field "$dev" dirty 0 "$secs" && wait_field "$dev" state idle "$secs" ||
		die "$dev not clean after ${secs}s: $(status_line "$dev")"
}

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
# rand_file PATH BLOCKS: PATH with BLOCKS random 4 KiB blocks.
rand_file() {
	head -c $(($2 * 4096)) /dev/urandom >"$1" || die "cannot write $1"
}

# put DEV FILE BLOCK: write FILE to DEV at BLOCK, direct, no flush.
put() {
	dd if="$2" of="$1" bs=4k seek="$3" oflag=direct conv=notrunc status=none ||
		die "write of $2 to $1 at block $3 failed"
}

# fsync_dev DEV: a flush of DEV (fsync on the block device); fails if it does.
fsync_dev() {
	python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_WRONLY))' "$1" 2>/dev/null
}

# get DEV BLOCK COUNT: COUNT blocks of DEV from BLOCK, direct, to stdout.
get() {
	dd if="$1" bs=4k skip="$2" count="$3" iflag=direct status=none
}

# same DEV BLOCK FILE: does DEV hold FILE at BLOCK?
same() {
	cmp -s <(get "$1" "$2" $(($(stat -c %s "$3") / 4096))) "$3"
}

# same_devs A B: equal contents (direct reads of A's size).
same_devs() {
	cmp -s <(dd if="$1" bs=1M iflag=direct status=none) \
		<(dd if="$2" bs=1M iflag=direct status=none count=$(($(dev_sectors "$1") / 2048)))
}

# read_twice DEV BLOCK COUNT: read a range twice, 64 blocks at a time, each
# chunk twice in a row, so that the promotion filter (second miss within a
# short window) promotes all of it.  Pass sequential_cutoff 0 in the table.
read_twice() {
	reread "$1" "$2" "$3" 64
}

# io_count DEV: read + write + flush requests completed on a dm device.
io_count() {
	echo $(($(dev_stat "$1" read_ios) + $(dev_stat "$1" write_ios) + \
		$(dev_stat "$1" flush_ios)))
}

# run_fio NAME ARG...: run fio with its output in the test log; fails if fio
# fails or reports an error.
run_fio() {
	local name=$1 out

	shift
	log "fio $name: $*"
	out=$(fio --name="$name" --output-format=normal "$@" 2>&1)
	local rc=$?
	echo "$out" | grep -E -e 'err=|verify|IOPS|bad|error|fail' | head -n 20
	[ $rc = 0 ] || { echo "$out" | tail -n 40; return 1; }
	if grep -qE 'err= *[1-9]|verify: bad|bad magic|crc32c: verify failed' <<<"$out"; then
		echo "$out" | tail -n 40
		return 1
	fi
	return 0
}

# reread DEV BLOCK COUNT CHUNK: read COUNT blocks from BLOCK in chunks of
# CHUNK blocks, each chunk twice in a row (direct I/O).  That makes two
# interleaved sequential streams, and the second read of every block comes
# soon after the first (the promotion filter's second miss).
reread() {
	python3 - "$@" <<'PY' || die "reread $* failed"
import mmap, os, sys
dev, first, count, chunk = sys.argv[1], *map(int, sys.argv[2:5])
fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, chunk * 4096)
for b in range(first, first + count, chunk):
    n = min(chunk, first + count - b) * 4096
    for _ in range(2):
        if os.preadv(fd, [memoryview(buf)[:n]], b * 4096) != n:
            sys.exit("short read")
PY
}

# discard DEV OFFSET_BYTES LENGTH_BYTES: BLKDISCARD, straight from the ioctl
# (blkdiscard(8) first probes the device for signatures with reads, which
# a cache counts and may promote).
discard() {
	python3 - "$@" <<'PY' || die "discard $* failed"
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
fcntl.ioctl(fd, 0x1277, struct.pack("QQ", int(sys.argv[2]), int(sys.argv[3])))  # BLKDISCARD
PY
}

# drain DEV: write every dirty block back (the flush message) and wait, so
# that removing DEV does not depend on the drain at suspend.
drain() {
	dmsetup message "$1" 0 flush || die "flush message to $1 failed"
	wait_clean "$1" "${2:-120}"
}

# wipe_sb DEV: zero both dm-stash superblock copies (the first 8 KiB), so
# that the next persistent table formats DEV afresh.
wipe_sb() {
	dd if=/dev/zero of="$1" bs=4k count=2 oflag=direct conv=notrunc status=none ||
		die "cannot wipe $1"
}

# status_stable DEV: the status without the fields that move on their own
# (metadata commits, the writeback rate).
status_stable() {
	status_line "$1" | tr ' ' '\n' | grep -vE '^(commits|writeback_rate)=' | paste -sd' '
}

# put_fua DEV FILE BLOCK: write FILE to DEV at BLOCK as REQ_FUA writes and
# nothing else: asynchronous (kernel AIO) direct writes with RWF_DSYNC, one
# 4 KiB block at a time.  (A synchronous O_DSYNC write, as dd oflag=dsync
# does, also sends a PREFLUSH after each write.)
put_fua() {
	python3 - "$@" <<'PY' || die "FUA write of $2 to $1 at block $3 failed"
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_io_setup, SYS_io_getevents, SYS_io_submit = 206, 208, 209
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
dev, path, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
ctx = ctypes.c_ulong(0)
if libc.syscall(SYS_io_setup, 1, ctypes.byref(ctx)) < 0:
    sys.exit("io_setup failed")
buf = mmap.mmap(-1, 4096)
cb = Iocb()
ptr = (ctypes.POINTER(Iocb) * 1)(ctypes.pointer(cb))
ev = Event()
for i in range(len(data) // 4096):
    buf.seek(0); buf.write(data[i * 4096:(i + 1) * 4096])
    cb.__init__(opcode=1, fildes=fd, rw_flags=2,  # IOCB_CMD_PWRITE, RWF_DSYNC
                buf=ctypes.addressof(ctypes.c_char.from_buffer(buf)),
                nbytes=4096, offset=(first + i) * 4096)
    if libc.syscall(SYS_io_submit, ctx, 1, ptr) != 1 or \
       libc.syscall(SYS_io_getevents, ctx, 1, 1, ctypes.byref(ev), None) != 1 or \
       ev.res != 4096:
        sys.exit(f"block {first + i}: write failed ({ev.res})")
PY
}
