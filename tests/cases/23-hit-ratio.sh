#!/bin/bash
# desc: zipf reads reach a >= 80% hit ratio, a sequential scan twice the cache does not spoil it, and long streams bypass the cache
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio python3
stash_load_module

# Origin 4x the cache: 64 MiB over 16 MiB (4096 blocks).
cache_setup 64 16
stash_create hr "$ORIGIN" "$CACHE" writethrough sequential_cutoff 0
vol=$STASH_DEV
nr=$(total_blocks "$vol")

# zipf IOS: IOS random 4 KiB reads, zipf 1.2 over the whole volume.  The
# seed is fixed, so every run reads the same sequence over the same hot set.
zipf() {
	run_fio zipf --filename="$vol" --direct=1 --ioengine=libaio --iodepth=4 \
		--rw=randread --bs=4k --random_distribution=zipf:1.2 --norandommap \
		--randseed=4242 --number_ios="$1" >/dev/null
}

# ratio OLD NEW: read hit ratio between two status lines, in percent.
ratio() {
	awk -v h="$(delta "$1" "$2" read_hits)" -v m="$(delta "$1" "$2" read_misses)" \
		'BEGIN { printf "%.1f", h + m ? 100 * h / (h + m) : 0 }'
}

# ge A B: A >= B for decimals.
ge() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'
}

assert_ok "zipf warm-up" zipf 30000
st0=$(status_line "$vol")
log "after warm-up: $st0"
assert_ok "zipf measurement 1" zipf 12000
st1=$(status_line "$vol")
r1=$(ratio "$st0" "$st1")
log "hit ratio 1: $r1% ($st1)"
assert_ok "hit ratio after warm-up ($r1%) >= 80%" ge "$r1" 80

# A sequential scan of twice the cache size, with the sequential cutoff
# off: only the promotion filter keeps it out of the cache.
dd if="$vol" of=/dev/null bs=256k skip=64 count=128 iflag=direct status=none ||
	die "scan failed"
st2=$(status_line "$vol")
log "after the scan: $st2 (promoted $(delta "$st1" "$st2" promotions) of $((2 * nr)) scanned blocks)"
assert_ok "zipf measurement 2" zipf 12000
st3=$(status_line "$vol")
r2=$(ratio "$st2" "$st3")
log "hit ratio 2: $r2% ($st3)"
assert_ok "hit ratio after the scan ($r2%) within 5 points of before ($r1%)" \
	ge "$r2" "$(awk -v r="$r1" 'BEGIN { print r - 5 }')"

# Sequential cutoff 1 MiB: 16 MiB read as 256 KiB chunks, each chunk twice
# in a row (two streams; the second read of a block would promote it).
# Each stream's first MiB is cached normally; the rest bypasses.
assert_ok "set sequential_cutoff 1024" dmsetup message "$vol" 0 set sequential_cutoff 1024
dmsetup message "$vol" 0 invalidate || die "invalidate failed"
dmsetup message "$vol" 0 reset_counters || die "reset_counters failed"
reread "$vol" 0 4096 64
st4=$(status_line "$vol")
log "16 MiB read twice with cutoff 1 MiB: $st4"
bypassed=$(field_of "$st4" bypassed)
promoted=$(field_of "$st4" promotions)
# 2 streams x (4096 - 256) blocks past the cutoff.
assert_ok "bypassed ($bypassed) >= 7600 of the 7680 block reads past the cutoff" \
	test "$bypassed" -ge 7600
assert_ok "promotions ($promoted) <= 256 + 64 with the cutoff" test "$promoted" -le 320

# The same with the cutoff off promotes the whole range (the control that
# shows the above is the cutoff at work).
assert_ok "set sequential_cutoff 0" dmsetup message "$vol" 0 set sequential_cutoff 0
dmsetup message "$vol" 0 reset_counters || die "reset_counters failed"
reread "$vol" 4096 4096 64
st5=$(status_line "$vol")
log "16 MiB read twice without cutoff: $st5"
assert_eq 0 "$(field_of "$st5" bypassed)" "bypassed without cutoff"
assert_ok "promotions ($(field_of "$st5" promotions)) >= 3900 without the cutoff" \
	test "$(field_of "$st5" promotions)" -ge 3900

stash_remove "$vol"
