#!/bin/bash
# desc: remote origin: NBD over loopback (nbd-server in the guest), write-back and write-through with fio verify; the origin stalls, then drops and reconnects: no acknowledged write is lost
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-cache.sh"
require_root
require_cmd fio
require_cmd nbd-server
require_cmd nbd-client
stash_load_module

# What the user sees, asserted below for each mode:
# - origin stalled (nbd-server stopped, connection kept): writeback writes
#   complete on the cache; writethrough writes wait until the origin
#   answers, then complete.  No error either way.
# - origin gone (nbd-server killed: the connection drops and the NBD device
#   fails I/O until it is reconnected): writeback writes still complete on
#   the cache, writebacks fail and the blocks stay dirty; writethrough
#   writes fail with an I/O error (nothing acknowledged).
# - origin back (a new nbd-server and connection, switched in under the
#   open volume by the dm-linear map the volume uses as its origin, as
#   multipath would): a flush writes back what is dirty; every acknowledged
#   write verifies through the volume and, after the flush, on the origin.

port=10809
tmp=$(mktemp -d)
conf=$tmp/nbd.conf
vol=${STASH_DM_PREFIX}n71
wire=${STASH_DM_PREFIX}n71-wire
origin=/dev/mapper/$wire
server_pid=

server_start() {
	nbd-server -C "$conf" -p "$tmp/nbd.pid" || die "nbd-server did not start"
	for _ in $(seq 50); do
		[ -s "$tmp/nbd.pid" ] && break
		sleep 0.1
	done
	server_pid=$(cat "$tmp/nbd.pid")
	[ -n "$server_pid" ] || die "no nbd-server pid"
}
# server_signal SIG: nbd-server and the children it forked for the
# connections (they do the I/O).
server_signal() {
	pkill "-$1" -P "$server_pid" 2>/dev/null
	kill "-$1" "$server_pid" 2>/dev/null
}
server_kill() {
	[ -n "$server_pid" ] || return 0
	server_signal CONT
	server_signal KILL
	server_pid=
	rm -f "$tmp/nbd.pid"
}
# client_connect N: /dev/nbdN connected to the server (netlink; the client
# exits once the kernel holds the connection).
client_connect() {
	nbd-client 127.0.0.1 $port "/dev/nbd$1" -N origin -b 4096 >"$tmp/client.log" 2>&1 ||
		{ cat "$tmp/client.log"; die "nbd-client cannot connect /dev/nbd$1"; }
	for _ in $(seq 20); do
		[ "$(blockdev --getsz "/dev/nbd$1" 2>/dev/null)" = "$(dev_sectors /dev/ram1)" ] &&
			return 0
		sleep 0.5
	done
	die "/dev/nbd$1 did not get its size"
}
# wire_to N: the origin the volume sees, a dm-linear over /dev/nbdN, like
# a multipath map: when the connection is gone for good, a new one is made
# on another NBD device and the map is switched to it under the open
# volume (an NBD device cannot be reconnected while it is open).
wire_to() {
	local table

	table="0 $(dev_sectors /dev/ram1) linear /dev/nbd$1 0"

	if dm_exists "$wire"; then
		dmsetup load "$wire" --table "$table" && dmsetup suspend "$wire" &&
			dmsetup resume "$wire" || die "cannot switch the origin to /dev/nbd$1"
	else
		dmsetup create "$wire" --table "$table" || die "cannot create the origin map"
	fi
}
cleanup() {
	dmsetup remove "$vol" 2>/dev/null
	dmsetup remove "$wire" 2>/dev/null
	nbd-client -d /dev/nbd0 >/dev/null 2>&1
	nbd-client -d /dev/nbd1 >/dev/null 2>&1
	server_kill
	rmmod nbd 2>/dev/null
	rm -rf "$tmp"
}
on_exit cleanup

ip link set lo up 2>/dev/null || ifconfig lo up 2>/dev/null || die "cannot bring up lo"
modprobe nbd nbds_max=2 || skip "no nbd module"
brd_setup 2 65536
cat >"$conf" <<EOF
[generic]
user = root
group = root
listenaddr = 127.0.0.1
port = $port
[origin]
exportname = /dev/ram1
EOF

# fio_phase NAME OFFSET_MIB ARGS...: 4 MiB of random 4 KiB writes at
# OFFSET, verify state kept under NAME for verify_phase.
fio_phase() {
	local name=$1 off=$2

	shift 2
	(cd "$tmp" && fio --name="$name" --filename="/dev/mapper/$vol" --rw=randwrite \
		--bs=4k --direct=1 --ioengine=libaio --iodepth=8 --offset="${off}M" \
		--size=4M --randseed="$off" --verify=crc32c --verify_fatal=1 \
		--do_verify=1 --verify_state_save=1 "$@" --output="$tmp/$name.log") ||
		{ cat "$tmp/$name.log"; die "fio $name failed"; }
	grep -qE "err= *0" "$tmp/$name.log" || die "fio $name reported errors"
}
# verify_phase NAME OFFSET_MIB DEV
verify_phase() {
	(cd "$tmp" && fio --name="$1" --filename="$3" --rw=randwrite --bs=4k \
		--direct=1 --ioengine=libaio --iodepth=8 --offset="${2}M" --size=4M \
		--randseed="$2" --verify=crc32c --verify_fatal=1 --verify_only \
		--verify_state_load=1 --output="$tmp/$1-check.log") ||
		{ cat "$tmp/$1-check.log"; die "verify of $1 on $3 failed"; }
}

for mode in writeback writethrough; do
	log "== $mode over /dev/nbd0"
	server_start
	client_connect 0
	wire_to 0
	zero_sb() { dd if=/dev/zero of=/dev/ram0 bs=4096 count=2 oflag=direct status=none; }
	zero_sb
	stash_create n71 "$origin" /dev/ram0 $mode idle_ms 500 sequential_cutoff 0

	log "origin up: fio write + verify"
	fio_phase "$mode-up" 0

	log "origin stalled (nbd-server stopped)"
	rand_file "$tmp/stall" 64
	server_signal STOP
	put_bg() { dd if="$1" of="/dev/mapper/$vol" bs=4k seek="$2" oflag=direct conv=notrunc status=none; }
	put_bg "$tmp/stall" 2048 &
	writer=$!
	sleep 3
	if [ $mode = writeback ]; then
		kill -0 $writer 2>/dev/null && die "writeback: a write waited for the stalled origin"
	else
		kill -0 $writer 2>/dev/null || die "writethrough: a write completed without the origin"
	fi
	server_signal CONT
	wait $writer || die "$mode: the write during the stall failed"
	same "/dev/mapper/$vol" 2048 "$tmp/stall" || die "$mode: data written during the stall"

	# Settle first: written back, and the commit that records it (whose
	# origin flush would otherwise meet the dead origin) done.
	dmsetup message "$vol" 0 flush || die "flush message failed"
	wait_clean "$vol" 60
	commits=$(stash_status_field "$vol" commits)
	for _ in $(seq 50); do
		[ "$(stash_status_field "$vol" commits)" -gt "$commits" ] && break
		sleep 0.1
	done

	log "origin gone (nbd-server killed)"
	server_kill
	rand_file "$tmp/gone" 64
	if [ $mode = writeback ]; then
		put "/dev/mapper/$vol" "$tmp/gone" 3072
		errs0=$(stash_status_field "$vol" writeback_errors)
		dmsetup message "$vol" 0 flush
		for _ in $(seq 100); do
			[ "$(stash_status_field "$vol" writeback_errors)" -gt "$errs0" ] && break
			sleep 0.1
		done
		[ "$(stash_status_field "$vol" writeback_errors)" -gt "$errs0" ] ||
			die "writeback to a dead origin did not fail"
		[ "$(stash_status_field "$vol" dirty)" -gt 0 ] || die "dirty blocks lost with the origin gone"
		same "/dev/mapper/$vol" 3072 "$tmp/gone" || die "data written with the origin gone"
	else
		put_bg "$tmp/gone" 3072 && die "writethrough: a write succeeded with the origin gone"
		log "the write failed, as it must"
	fi

	log "origin back: a new nbd-server, a new connection, the origin map switched to it"
	server_start
	client_connect 1
	wire_to 1
	nbd-client -d /dev/nbd0 >/dev/null 2>&1
	fio_phase "$mode-back" 16
	dmsetup message "$vol" 0 flush || die "flush message failed"
	wait_clean "$vol" 60
	assert_eq 0 "$(stash_status_field "$vol" dirty)" "dirty blocks after the flush"
	verify_phase "$mode-up" 0 "/dev/mapper/$vol"
	same "/dev/mapper/$vol" 2048 "$tmp/stall" || die "$mode: stall data after reconnect"
	[ $mode = writeback ] && { same "/dev/mapper/$vol" 3072 "$tmp/gone" || die "outage data after reconnect"; }

	log "remove, then everything acknowledged is on the origin itself"
	stash_remove "$vol"
	verify_phase "$mode-up" 0 "$origin"
	verify_phase "$mode-back" 16 "$origin"
	same "$origin" 2048 "$tmp/stall" || die "$mode: stall data not on the origin"
	[ $mode = writeback ] && { same "$origin" 3072 "$tmp/gone" || die "outage data not on the origin"; }
	dmsetup remove "$wire" || die "cannot remove the origin map"
	nbd-client -d /dev/nbd1 >/dev/null 2>&1
	server_kill
	dd if=/dev/zero of=/dev/ram1 bs=1M count=24 oflag=direct status=none
done
exit 0
