#!/bin/bash
# desc: create/write/verify/remove cycles in every mode, persistent and volatile: no memory growth; rmmod while busy is EBUSY; after rmmod the module's slab cache is gone
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
stash_load_module

cycles=30
[ "${STASH_LONG:-0}" = 1 ] && cycles=100
SLAB=stash_job		# the module's own kmem_cache (kmod/stash-io.c)
# A 256 MiB cache: 64 Ki blocks, so that a leaked per-device map (a few
# bytes per block) would grow memory by a MiB or more per cycle.
cache_setup 32 256
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
rand_file "$tmp/data" 64

# mem KEY: a /proc/meminfo value in KiB.
mem() {
	awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo
}

settle() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	sleep 1
}

# cycle N: one device: create, write 64 blocks, read them back, drain a
# write-back one, remove, and wipe the cache so that the next one formats.
# The cycles repeat every 6 (3 modes, persistent or volatile, 6 places in
# the origin), so that after 6 warm-up cycles brd has every page they touch.
cycle() {
	local n=$1 modes=(writearound writethrough writeback) mode opts=() at=$(($1 % 6 * 64))

	mode=${modes[$((n % 3))]}
	[ $((n / 3 % 2)) = 1 ] && opts=(volatile)
	stash_create cyc "$ORIGIN" "$CACHE" "$mode" sequential_cutoff 0 "${opts[@]}"
	put "$STASH_DEV" "$tmp/data" $at
	same "$STASH_DEV" $at "$tmp/data" || die "cycle $n ($mode ${opts[*]}): data reads back wrong"
	if [ "$mode" = writeback ]; then
		[ "$(sf "$STASH_DEV" dirty)" -gt 0 ] || die "cycle $n: write-back left nothing dirty"
		drain "$STASH_DEV"
	fi
	stash_remove "$STASH_DEV"
	same "$ORIGIN" $at "$tmp/data" || die "cycle $n ($mode ${opts[*]}): origin wrong after remove"
	wipe_sb "$CACHE"
}

[ -e "/sys/kernel/slab/$SLAB" ] || die "no /sys/kernel/slab/$SLAB with the module loaded"
# Warm up (first-use allocations, brd pages of the blocks the cycles write).
for n in 0 1 2 3 4 5 6 7 8 9 10 11; do cycle $n; done
settle
free0=$(mem MemFree) slab0=$(mem SUnreclaim)
t0=$(date +%s)
for ((n = 0; n < cycles; n++)); do cycle $n; done
settle
free1=$(mem MemFree) slab1=$(mem SUnreclaim)
log "$cycles cycles in $(($(date +%s) - t0)) s: MemFree $free0 -> $free1 KiB, SUnreclaim $slab0 -> $slab1 KiB"
# Allowed growth: 16 MiB for the whole run (page tables, per-cpu caches
# and page lists, which MemFree does not count, dm's own lazily grown
# structures).  Alone this run loses about 4 MiB; after the rest of the
# suite it lost 11 MiB once.  A cache's own large allocations (8 MiB of
# writeback buffers each) would exceed it in two cycles; slab leaks are
# checked below.  With KASAN, freed memory sits in a quarantine of up to
# 1/32 of RAM before it is free again.
bound=16384
if grep -qw kasan_report /proc/kallsyms 2>/dev/null; then
	bound=$(($(mem MemTotal) / 32 + 8192))
	log "KASAN kernel: bound raised to $bound KiB for its quarantine"
fi
[ $((free0 - free1)) -le $bound ] ||
	die "MemFree fell by $((free0 - free1)) KiB over $cycles cycles (bound $bound KiB)"
[ $((slab1 - slab0)) -le $bound ] ||
	die "unreclaimable slab grew by $((slab1 - slab0)) KiB over $cycles cycles (bound $bound KiB)"
if [ -d "/sys/kernel/slab/$SLAB" ] && [ ! -L "/sys/kernel/slab/$SLAB" ]; then
	# An unmerged cache (slab_nomerge, as make check-debug boots): its
	# objects are the module's alone, and none may be in use now.  The
	# count includes free objects held in per-CPU slabs: shrinking first
	# gives those back.
	echo 1 >"/sys/kernel/slab/$SLAB/shrink" || die "cannot shrink $SLAB"
	objs=$(cut -d' ' -f1 "/sys/kernel/slab/$SLAB/objects")
	log "$SLAB objects in use with no device: $objs"
	assert_eq 0 "$objs" "$SLAB objects in use with no device left"
fi

# rmmod while a device is busy under fio: refused, and the I/O goes on.
stash_create busy "$ORIGIN" "$CACHE" writeback sequential_cutoff 0
fio_verify "$STASH_DEV" 4M 2 --runtime=20 --time_based=0 >"$tmp/fio.out" 2>&1 &
fio_pid=$!
sleep 2
out=$(rmmod dm_stash 2>&1) && die "rmmod succeeded while a stash device was busy"
log "rmmod while busy: $out"
assert_match 'in use|busy' "$out" "rmmod error"
assert_ok "module gone after the refused rmmod" stash_module_loaded
wait $fio_pid || { tail -n 20 "$tmp/fio.out"; die "fio failed around the refused rmmod"; }
drain "$STASH_DEV"
stash_remove "$STASH_DEV"

# rmmod with no device: the slab cache goes with the module.
kmsg_mark
assert_ok "rmmod with no device left" rmmod dm_stash
assert_fails "module present after rmmod" stash_module_loaded
[ ! -e "/sys/kernel/slab/$SLAB" ] || die "/sys/kernel/slab/$SLAB still there after rmmod"
! grep -q "^$SLAB " /proc/slabinfo || die "$SLAB still in /proc/slabinfo after rmmod"
k=$(kmsg_since)
! grep -qi 'still has objects' <<<"$k" || die "slab cache destroyed with objects: $k"
stash_load_module
