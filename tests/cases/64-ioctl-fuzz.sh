#!/bin/bash
# desc: >=100000 random and mutated control ioctls against live caches under fio verify; data still verifies
. "$(dirname "$0")/../lib.sh"
require_root
require_cmd fio
fuzz=$STASH_REPO/userspace-tools/tests/stash-ioctl-fuzz
[ -x "$fuzz" ] || die "$fuzz not built (make tools)"
stash_load_module

# As many calls as fit in SECONDS_MAX, at least MIN_CALLS.
MIN_CALLS=${STASH_FUZZ_MIN_CALLS:-100000}
SECONDS_MAX=${STASH_FUZZ_SECONDS:-25}

# Refused tunable values make the module log a warning each: keep them off
# the (slow, emulated) serial console.  The kernel log still has them.
printk=$(cut -f1 /proc/sys/kernel/printk)
on_exit "dmesg -n $printk"
dmesg -n 1

brd_setup 4 65536
a=${STASH_DM_PREFIX}fz-a b=${STASH_DM_PREFIX}fz-b
stash_create fz-a /dev/ram1 /dev/ram0 writeback idle_ms 500
dev_a=$STASH_DEV
stash_create fz-b /dev/ram3 /dev/ram2 writethrough idle_ms 1000
dev_b=$STASH_DEV

# fio verify loops on both caches until told to stop; each writes its own
# status file with the number of passes, or FAIL.
stop=/tmp/fuzz-stop.$$
on_exit "touch $stop; wait"
fio_loop() {
	local dev=$1 out=$2 n=0

	while [ ! -e $stop ]; do
		if ! fio_verify "$dev" 4M 2 >"$out.log" 2>&1; then
			echo FAIL >"$out"
			return 1
		fi
		n=$((n + 1))
		echo "$n" >"$out"
	done
}
fio_loop "$dev_a" /tmp/fio-a.$$ &
pid_a=$!
fio_loop "$dev_b" /tmp/fio-b.$$ &
pid_b=$!

log "fuzzing for ${SECONDS_MAX}s, at least $MIN_CALLS calls"
start=$(date +%s)
"$fuzz" --calls 100000000 --seconds "$SECONDS_MAX" --jobs 2 "$a" "$b" >/tmp/fuzz.$$ 2>&1
rc=$?
cat /tmp/fuzz.$$
log "fuzzer took $(($(date +%s) - start))s"
touch $stop
wait $pid_a
rc_a=$?
wait $pid_b
rc_b=$?
[ $rc = 0 ] || die "the fuzzer found unexpected results (exit $rc)"
calls=$(awk '/^job [0-9]+:/ { n += $3 } END { print n + 0 }' /tmp/fuzz.$$)
log "$calls calls"
[ "$calls" -ge "$MIN_CALLS" ] || die "only $calls calls made in ${SECONDS_MAX}s"
for x in a b; do
	log "fio on $x: $(cat /tmp/fio-$x.$$) passes"
	if [ "$(cat /tmp/fio-$x.$$)" = FAIL ]; then
		tail -n 30 /tmp/fio-$x.$$.log
		die "fio verify failed on cache $x during fuzzing"
	fi
done
[ $rc_a = 0 ] && [ $rc_b = 0 ] || die "a fio loop failed"
dmsetup status "$a"
dmsetup status "$b"

log "the data still verifies through the caches, and on the origins"
assert_ok "read-back through $a" fio_check "$dev_a" 8M
assert_ok "read-back through $b" fio_check "$dev_b" 8M
# Persistent caches keep dirty blocks across removal: stashctl flushes first.
# Not at whatever rate cap the fuzzer left (at 14 KiB/s the 8 MiB took ten
# minutes): the flush is throttled like any pass.
stashctl=${STASH_STASHCTL:-$STASH_REPO/userspace-tools/stashctl}
for x in "$a" "$b"; do
	dmsetup message "$x" 0 set writeback_rate_cap 0 ||
		die "cannot lift the rate cap of $x"
done
"$stashctl" remove "$a" || die "stashctl remove $a"
"$stashctl" remove "$b" || die "stashctl remove $b"
assert_ok "origin of $a" fio_check /dev/ram1 8M
assert_ok "origin of $b" fio_check /dev/ram3 8M
rm -f /tmp/fuzz.$$ /tmp/fio-[ab].$$ /tmp/fio-[ab].$$.log $stop
exit 0
