#!/bin/bash
# Guest half of tests/host/hard-kill.sh (runs inside the test VM).
#
# usage: hard-kill-guest.sh write SEED | check LOG
#
# The cache is /dev/vda, the origin /dev/vdb (the two --disk images).
# write: create the persistent write-back stash (the blank cache is
#   formatted) and run crashio -S with its log on the shared output dir
#   ($STASH_OUT/crash.log, fdatasync'd after every record); tell the host
#   with $STASH_OUT/ready once writes are durable, then write until the host
#   kills the VM.
# check: create the stash again (recovery after the kill) and check every
#   logged write, then that the values stay through a full flush and on the
#   origin alone once the cache is removed.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../persist-lib.sh"
persist_setup
cache=/dev/vda origin=/dev/vdb
[ -b $cache ] && [ -b $origin ] || die "no $cache / $origin (run with two --disk images)"
blocks=8192	# the writer's range: 32 MiB of the origin, the cache holds ~16000 blocks

case ${1:-} in
write)
	pstash_create hk "$origin" "$cache" writeback low_watermark 1 high_watermark 5
	log "created: $(dmsetup status "$STASH_DEV")"
	crashio write -S -L -d "$STASH_DEV" -n $blocks -s "$2" -l "$STASH_OUT/crash.log" \
		-r "$STASH_OUT/ready"
	die "the writer stopped before the VM was killed"
	;;
check)
	kmsg_mark
	pstash_create hk "$origin" "$cache" writeback low_watermark 1 high_watermark 5
	kmsg_since | grep stash
	assert_status_sane "$STASH_DEV"
	log "recovered: $(dmsetup status "$STASH_DEV")"
	tmp=$(mktemp -d)
	assert_ok "after recovery" crashio check -d "$STASH_DEV" -l "$2" -D "$tmp/dump"
	wait_clean "$STASH_DEV" 300
	assert_ok "after a full flush" crashio check -d "$STASH_DEV" -l "$2" -C "$tmp/dump"
	stash_remove "$STASH_DEV"
	assert_ok "on the origin alone" crashio check -d "$origin" -l "$2" -C "$tmp/dump"
	log "ok"
	;;
*)
	die "usage: hard-kill-guest.sh write SEED | check LOG"
	;;
esac
