#!/bin/bash
# desc: reads, write-around writes and write-back stream writes over a partly cached range: each run of blocks that needs no cache I/O reaches the origin in one piece, hits go to the cache, cached copies are invalidated, the data is right at any alignment
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
stash_load_module

cache_setup 64 16
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"

rand_file "$tmp/data" 1024
put "$ORIGIN" "$tmp/data" 0
stash_create runs "$ORIGIN" "$CACHE" writearound volatile sequential_cutoff 0
vol=$STASH_DEV

# One-block reads promote while slots are free: cache blocks 10, 11, 100.
for b in 10 11 100; do
	get "$vol" "$b" 1 >/dev/null || die "read of block $b failed"
done
assert_eq 3 "$(used_blocks "$vol")" "cache blocks used after three one-block reads"

# read_1m DEV BLOCK FILE: one 1 MiB O_DIRECT read (a single read call).
read_1m() {
	dd if="$1" bs=1M skip=$(($2 / 256)) count=1 iflag=direct status=none >"$3" ||
		die "1 MiB read at block $2 failed"
}

# 1. Blocks 0..255: three hits, runs 0..9, 12..99 and 101..255 from the
# origin.  One bio per block would make 253 origin reads; a run is one
# (more only where the block layer splits the user's 1 MiB before us).
dmsetup message "$vol" 0 reset_counters || die "reset_counters failed"
o0=$(dev_stat "$ORIGIN" read_ios) c0=$(dev_stat "$CACHE" read_ios)
read_1m "$vol" 0 "$tmp/r1"
o1=$(dev_stat "$ORIGIN" read_ios) c1=$(dev_stat "$CACHE" read_ios)
st=$(status_line "$vol")
log "first 1 MiB read: origin reads $((o1 - o0)), cache reads $((c1 - c0)): $st"
assert_ok "the first 1 MiB read returns the data" \
	cmp -s "$tmp/r1" <(head -c 1048576 "$tmp/data")
assert_eq 3 "$(field_of "$st" read_hits)" "read hits of the first 1 MiB read"
assert_eq 253 "$(field_of "$st" read_misses)" "read misses of the first 1 MiB read"
assert_eq 0 "$(field_of "$st" promotions)" "promotions by a first miss inside a long read"
assert_eq 3 "$((c1 - c0))" "cache device reads (one per hit)"
assert_ok "origin reads ($((o1 - o0))) for 3 uncached runs: at most 24, not one per block" \
	test "$((o1 - o0))" -ge 3 -a "$((o1 - o0))" -le 24

# 2. The same range again: the filter has seen its blocks, so each is
# promoted (the one-block path, reusing the read's pages).
dmsetup message "$vol" 0 reset_counters || die "reset_counters failed"
read_1m "$vol" 0 "$tmp/r2"
st=$(status_line "$vol")
log "second 1 MiB read: $st"
assert_ok "the second 1 MiB read returns the data" cmp -s "$tmp/r2" "$tmp/r1"
assert_eq 253 "$(field_of "$st" promotions)" "promotions by a second read of the range"
assert_eq 256 "$(used_blocks "$vol")" "cache blocks used after the second read"

# 3. Now all hits: nothing reaches the origin.
dmsetup message "$vol" 0 reset_counters || die "reset_counters failed"
o0=$(dev_stat "$ORIGIN" read_ios)
read_1m "$vol" 0 "$tmp/r3"
o1=$(dev_stat "$ORIGIN" read_ios)
st=$(status_line "$vol")
assert_ok "the third 1 MiB read returns the data" cmp -s "$tmp/r3" "$tmp/r1"
assert_eq 256 "$(field_of "$st" read_hits)" "read hits of the third 1 MiB read"
assert_eq 0 "$((o1 - o0))" "origin reads of a fully cached 1 MiB read"

# 4. Unaligned reads over blocks 300..700 with scattered cached blocks:
# 512-byte offsets and lengths, runs cut inside a first and a last block.
for b in 301 302 350 351 352 499 500 640; do
	get "$vol" "$b" 1 >/dev/null || die "read of block $b failed"
done
python3 - "$vol" "$tmp/data" <<'PY' || die "unaligned reads differ from the data"
import mmap, os, sys
dev, ref = sys.argv[1], open(sys.argv[2], "rb").read()
fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 2 << 20)
cases = [(300 * 4096 + 512, 100 * 4096 + 1024),   # ends inside a block
         (301 * 4096 + 3584, 60 * 4096 + 512),    # starts in a cached block
         (349 * 4096 + 1024, 4 * 4096),           # runs around 350..352
         (400 * 4096 + 512, 300 * 4096 - 1024),   # long, two cached blocks
         (640 * 4096 + 2048, 2048 + 4096)]        # ends at a block's end
for _ in range(2):                                # misses, then promotions
    for off, n in cases:
        if os.preadv(fd, [memoryview(buf)[:n]], off) != n:
            sys.exit("short read at %d" % off)
        if buf[:n] != ref[off:off + n]:
            sys.exit("data differs at offset %d length %d" % (off, n))
PY
assert_ok "unaligned spanning reads return the data (twice)" true
st=$(status_line "$vol")
log "after the unaligned reads: $st"
assert_eq 0 "$(field_of "$st" cache_errors)" "cache errors"
assert_eq 0 "$(field_of "$st" origin_errors)" "origin errors"

# 5. Write-around writes over cached blocks: 1 MiB over blocks 0..255 (all
# cached now), then unaligned writes over 300..700 (partly cached).  No
# write reaches the cache device (volatile: no metadata either), every
# cached copy is invalidated, the origin takes a run in one piece.
rand_file "$tmp/new" 256
dmsetup message "$vol" 0 reset_counters || die "reset_counters failed"
ow0=$(dev_writes "$ORIGIN") cw0=$(dev_writes "$CACHE")
dd if="$tmp/new" of="$vol" bs=1M count=1 oflag=direct conv=notrunc status=none ||
	die "1 MiB write failed"
ow1=$(dev_writes "$ORIGIN") cw1=$(dev_writes "$CACHE")
st=$(status_line "$vol")
log "1 MiB write-around write: origin writes $((ow1 - ow0)), cache writes $((cw1 - cw0)): $st"
assert_eq 0 "$((cw1 - cw0))" "cache device writes of a write-around write"
assert_eq 256 "$(field_of "$st" invalidations)" "invalidations by a 1 MiB write over cached blocks"
assert_eq 256 "$(field_of "$st" write_hits)" "write hits of the 1 MiB write"
assert_ok "origin writes ($((ow1 - ow0))) for one run: at most 24, not one per block" \
	test "$((ow1 - ow0))" -ge 1 -a "$((ow1 - ow0))" -le 24
read_1m "$vol" 0 "$tmp/w1"
assert_ok "a read after the 1 MiB write returns the new data" cmp -s "$tmp/w1" "$tmp/new"
assert_ok "the origin holds the new data" same "$ORIGIN" 0 "$tmp/new"
assert_eq 256 "$(sf "$vol" read_misses)" "the read after the write misses every block"

cp "$tmp/data" "$tmp/ref5"
assert_ok "unaligned write-around writes over cached blocks read back right (twice)" \
	python3 "$STASH_REPO/tests/tools/unaligned-io.py" "$vol" "$tmp/ref5" --rounds 2 \
	-w $((300 * 4096 + 512)):$((100 * 4096 + 1024)) \
	-w $((349 * 4096 + 1024)):$((4 * 4096)) \
	-w $((498 * 4096 + 3584)):$((150 * 4096 + 512)) \
	-r $((300 * 4096)):$((400 * 4096))
st=$(status_line "$vol")
assert_eq 0 "$(field_of "$st" origin_errors)" "origin errors after the writes"
stash_remove "$vol"

# 6. Write-back, sequential_cutoff 64 KiB: two 1 MiB writes in one stream
# over uncached blocks 1024..1535.  The first 16 blocks (64 KiB) are cached
# and dirty; past the cutoff the stream goes around, and each run of
# uncached blocks reaches the origin in one piece: 496 blocks in at most 48
# origin writes, not one per block.  The second write is sequential from
# its first block, so the stream must have advanced by the first one's run.
stash_create runs-wb "$ORIGIN" "$CACHE" writeback volatile \
	sequential_cutoff 64 idle_ms 0 high_watermark 100
vol=$STASH_DEV
rand_file "$tmp/wb" 512
ow0=$(dev_writes "$ORIGIN") cw0=$(dev_writes "$CACHE")
dd if="$tmp/wb" of="$vol" bs=1M seek=4 count=2 oflag=direct conv=notrunc status=none ||
	die "2 MiB write-back stream write failed"
ow1=$(dev_writes "$ORIGIN") cw1=$(dev_writes "$CACHE")
st=$(status_line "$vol")
log "write-back stream: origin writes $((ow1 - ow0)), cache writes $((cw1 - cw0)): $st"
assert_eq 16 "$(field_of "$st" dirty)" "dirty blocks: the stream's first 64 KiB"
assert_eq 16 "$((cw1 - cw0))" "cache device writes (one per dirty block)"
assert_eq 512 "$(field_of "$st" write_misses)" "write misses of the stream"
assert_eq 496 "$(field_of "$st" bypassed)" "blocks past the cutoff bypassed"
assert_ok "origin writes ($((ow1 - ow0))) for 496 blocks: at most 48, not one per block" \
	test "$((ow1 - ow0))" -ge 2 -a "$((ow1 - ow0))" -le 48
assert_ok "the volume holds the stream" same "$vol" 1024 "$tmp/wb"
assert_ok "the origin holds the part past the cutoff" \
	cmp -s <(get "$ORIGIN" 1040 496) <(tail -c $((496 * 4096)) "$tmp/wb")
drain "$vol"
assert_ok "the origin holds the whole stream after the drain" same "$ORIGIN" 1024 "$tmp/wb"
stash_remove "$vol"
