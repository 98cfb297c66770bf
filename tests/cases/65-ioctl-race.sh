#!/bin/bash
# desc: control ioctls racing dmsetup remove, table reloads and rmmod in a loop: no use-after-free, no oops
. "$(dirname "$0")/../lib.sh"
require_root
fuzz=$STASH_REPO/userspace-tools/tests/stash-ioctl-fuzz
[ -x "$fuzz" ] || die "$fuzz not built (make tools)"
stash_load_module

# 100 iterations (about 75 s under emulation), 300 in the long mode.
ITER=${STASH_RACE_ITER:-$([ "${STASH_LONG:-0}" = 1 ] && echo 300 || echo 100)}
# A private copy of the module: the loop reloads it many times, and the
# build tree may be rebuilt meanwhile.
ko=/tmp/dm-stash-race.$$.ko
cp "$STASH_KO" $ko || die "cannot copy $STASH_KO"
on_exit "rm -f $ko"
brd_setup 2 16384
name=${STASH_DM_PREFIX}race
table=$(stash_table /dev/ram1 /dev/ram0 writethrough idle_ms 100)

# Two hammers: valid ioctls on $name, reopening the control device every
# few calls (so that rmmod gets its chances).
"$fuzz" --hammer --seconds 3600 "$name" >/tmp/hammer1.$$ 2>&1 &
h1=$!
"$fuzz" --hammer --seconds 3600 "$name" >/tmp/hammer2.$$ 2>&1 &
h2=$!
on_exit "kill $h1 $h2 2>/dev/null; wait"

unloads=0 busy=0 reloads=0
start=$(date +%s)
for ((i = 1; i <= ITER; i++)); do
	if ! stash_module_loaded; then
		insmod $ko || die "insmod failed in iteration $i"
	fi
	dmsetup create "$name" --table "$table" || die "create failed in iteration $i"
	# Now and then a reload: a second, inactive table, then a swap.
	if ((i % 5 == 0)); then
		dmsetup load "$name" --table "${table/writethrough/writeback}" ||
			die "load failed in iteration $i"
		((i % 10 == 0)) && { dmsetup resume "$name" || die "resume failed"; }
		reloads=$((reloads + 1))
	fi
	dmsetup remove --retry "$name" >/dev/null || die "remove failed in iteration $i"
	# Every other iteration, unload the module while the hammers run.
	if ((i % 2 == 0)); then
		for ((t = 0; t < 200; t++)); do
			rmmod dm_stash 2>/dev/null && { unloads=$((unloads + 1)); break; }
			busy=$((busy + 1))
			sleep 0.01
		done
	fi
done
log "$ITER iterations in $(($(date +%s) - start))s: $reloads reloads, $unloads unloads" \
	"($busy refused while the control device was open)"
stash_module_loaded || insmod $ko || die "insmod"

kill -TERM $h1 $h2
wait $h1
rc1=$?
wait $h2
rc2=$?
cat /tmp/hammer1.$$ /tmp/hammer2.$$
rm -f /tmp/hammer1.$$ /tmp/hammer2.$$
[ $rc1 = 0 ] && [ $rc2 = 0 ] || die "a hammer saw unexpected results"
[ "$unloads" -ge $((ITER / 4)) ] || die "only $unloads unloads in $ITER iterations"
exit 0
