#!/bin/bash
# desc: stashctl mode/flush/invalidate/set: effects seen by dmsetup status, refused values and callers change nothing
. "$(dirname "$0")/../lib.sh"
require_root
require_cmd setpriv jq
stashctl_setup
stash_load_module

# The status line without what moves by itself: the counters reads move,
# the writeback rate and the periodic metadata commits.
status_conf() {
	dmsetup status "$name" | tr ' ' '\n' |
		grep -vE '^(read|write)_(hits|misses)=|^(promotions|evictions|bypassed)=|^(writeback_rate|commits)='
}
unpriv() {
	setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin -- "$@"
}

brd_setup 2 65536
origin=/dev/ram1 cache=/dev/ram0
name=${STASH_DM_PREFIX}c62
"$stashctl" create "$name" --origin $origin --cache $cache --mode writethrough \
	--set idle_ms=0 >/dev/null || die "create"
dev=/dev/mapper/$name

log "set"
expect_exit 0 "set idle_ms" "$stashctl" set "$name" idle_ms 0
expect_exit 0 "set sequential_cutoff" "$stashctl" set "$name" sequential_cutoff 1024
assert_eq 1024 "$(stash_status_field "$name" sequential_cutoff)" "sequential_cutoff"
before=$(status_conf)
expect_exit 2 "high_watermark 101" "$stashctl" set "$name" high_watermark 101
out_has "allowed 1\.\.100 %" "high_watermark 101"
expect_exit 2 "writeback_inflight 0" "$stashctl" set "$name" writeback_inflight 0
out_has "allowed 1\.\.8" "writeback_inflight 0"
expect_exit 2 "idle_ms 2^32" "$stashctl" set "$name" idle_ms 4294967296
expect_exit 2 "low_watermark 50" "$stashctl" set "$name" low_watermark 50
out_has "must stay below high_watermark" "low_watermark 50"
expect_exit 2 "unknown tunable" "$stashctl" set "$name" nope 1
out_has "no tunable 'nope'" "unknown tunable"
out_has "tunables: sequential_cutoff high_watermark" "unknown tunable"
expect_exit 2 "value abc" "$stashctl" set "$name" idle_ms abc
expect_exit 2 "value -1" "$stashctl" set "$name" idle_ms -1
expect_exit 3 "set on a missing cache" "$stashctl" set "${STASH_DM_PREFIX}nothing" idle_ms 5
expect_exit 2 "get unknown tunable" "$stashctl" get "$name" nope
assert_eq "$before" "$(status_conf)" "status after refused sets"
# No sequential bypass: the writes below must all land in the cache.
expect_exit 0 "set sequential_cutoff 0" "$stashctl" set "$name" sequential_cutoff 0

log "mode"
expect_exit 2 "mode fast" "$stashctl" mode "$name" fast
expect_exit 3 "mode on a missing cache" "$stashctl" mode "${STASH_DM_PREFIX}nothing" writeback
assert_eq writethrough "$(stash_status_field "$name" mode)" "mode after refused switches"
expect_exit 0 "mode writeback" "$stashctl" mode "$name" writeback
out_has "writethrough -> writeback" "mode writeback"
assert_eq writeback "$(stash_status_field "$name" mode)" "mode"

log "flush (not a terminal: one line a second)"
dd if=/dev/urandom of=$dev bs=64k count=128 oflag=direct status=none || die "write"
dirty=$(stash_status_field "$name" dirty)
[ "$dirty" -gt 0 ] || die "no dirty blocks in writeback mode"
drains0=$("$stashctl" status "$name" --json | jq .drains_completed)
expect_exit 0 "flush" "$stashctl" flush "$name"
out_has "^$name: flushed, no dirty blocks" "flush"
assert_eq 0 "$(stash_status_field "$name" dirty)" "dirty after flush"
# The pass ends just after its last block is clean: give it a moment.
for ((i = 0; i < 50; i++)); do
	drains=$("$stashctl" status "$name" --json | jq .drains_completed)
	[ "$drains" -gt "$drains0" ] && break
	sleep 0.1
done
[ "$drains" -gt "$drains0" ] || die "drains_completed $drains0 -> $drains after a flush"
expect_exit 0 "flush when clean" "$stashctl" flush "$name"
out_has "no dirty blocks" "flush when clean"
dd if=/dev/urandom of=$dev bs=64k count=128 oflag=direct status=none || die "write"
expect_exit 0 "flush --no-wait" "$stashctl" flush "$name" --no-wait
out_has "flush started, [0-9]+ dirty blocks" "flush --no-wait"
for ((i = 0; i < 300; i++)); do
	[ "$(stash_status_field "$name" dirty)" = 0 ] && break
	sleep 0.1
done
assert_eq 0 "$(stash_status_field "$name" dirty)" "dirty after flush --no-wait"

log "flush on a terminal draws a bar"
dd if=/dev/urandom of=$dev bs=64k count=128 oflag=direct status=none || die "write"
[ "$(stash_status_field "$name" dirty)" -gt 0 ] || die "no dirty blocks to flush"
if command -v script >/dev/null; then
	script -qec "$stashctl flush $name" /dev/null >/tmp/tty.$$ || die "flush on a tty"
	grep -q $'\r\[#*-*\] *[0-9]*%' /tmp/tty.$$ || die "no progress bar: $(cat -v /tmp/tty.$$)"
	rm -f /tmp/tty.$$
else
	"$stashctl" flush "$name" >/dev/null || die "flush"
fi

log "mode out of writeback drains"
dd if=/dev/urandom of=$dev bs=64k count=128 oflag=direct status=none || die "write"
expect_exit 0 "mode writearound" "$stashctl" mode "$name" writearound
out_has "writeback -> writearound" "mode writearound"
for ((i = 0; i < 300; i++)); do
	[ "$(stash_status_field "$name" dirty)" = 0 ] && break
	sleep 0.1
done
assert_eq 0 "$(stash_status_field "$name" dirty)" "dirty after leaving writeback"
assert_eq idle "$(stash_status_field "$name" state)" "state after draining"

log "invalidate"
"$stashctl" mode "$name" writethrough >/dev/null || die "mode"
dd if=$dev of=/dev/null bs=4k count=256 iflag=direct status=none
dd if=$dev of=/dev/null bs=4k count=256 iflag=direct status=none
used=$(stash_status_field "$name" cache_blocks)
log "cache_blocks before: $used"
[ "${used%/*}" -gt 0 ] || die "nothing cached after reads"
expect_exit 0 "invalidate" "$stashctl" invalidate "$name"
out_has "${used%/*} blocks cached before, 0 now" "invalidate"
assert_eq "0/${used#*/}" "$(stash_status_field "$name" cache_blocks)" "cache_blocks after invalidate"

log "without CAP_SYS_ADMIN nothing changes"
before=$(status_conf)
expect_exit 4 "status unprivileged" unpriv "$stashctl" status "$name"
out_has "permission denied" "status unprivileged"
out_has "needs root" "status unprivileged"
expect_exit 4 "mode unprivileged" unpriv "$stashctl" mode "$name" writeback
expect_exit 4 "set unprivileged" unpriv "$stashctl" set "$name" idle_ms 7
expect_exit 4 "flush unprivileged" unpriv "$stashctl" flush "$name"
expect_exit 4 "invalidate unprivileged" unpriv "$stashctl" invalidate "$name"
expect_exit 4 "stats --reset unprivileged" unpriv "$stashctl" stats "$name" --reset
expect_exit 4 "list unprivileged" unpriv "$stashctl" list
expect_exit 0 "version unprivileged" unpriv "$stashctl" version
out_has "^module: [0-9]" "version unprivileged"
assert_eq "$before" "$(status_conf)" "status after unprivileged calls"

log "help for every command"
for c in create remove list status mode flush invalidate set get stats dump check version help; do
	out=$("$stashctl" $c --help) || die "$c --help failed"
	assert_match "^usage: stashctl $c" "$out" "$c --help"
	out=$("$stashctl" help $c) || die "help $c failed"
	assert_match "^usage: stashctl $c" "$out" "help $c"
done
expect_exit 2 "unknown option" "$stashctl" flush "$name" --frobnicate
out_has "unknown option '--frobnicate'" "unknown option"

"$stashctl" remove "$name" >/dev/null || die "remove"
exit 0
