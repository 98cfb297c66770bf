#!/bin/bash
# desc: every validation path of every control ioctl gives its errno and changes nothing (raw ioctls); a table that is not live refuses changes with EBUSY
. "$(dirname "$0")/../lib.sh"
require_root
require_cmd setpriv jq
prog=$STASH_REPO/userspace-tools/tests/stash-ioctl-test
[ -x "$prog" ] || die "$prog not built (make tools)"
stash_load_module

brd_setup 4 65536
name=${STASH_DM_PREFIX}c63
stash_create c63 /dev/ram1 /dev/ram0 writethrough idle_ms 2000
# Something cached and counted, so that "nothing changed" means something.
for i in 1 2 3; do
	dd if="$STASH_DEV" of=/dev/null bs=4k count=256 iflag=direct status=none
done
sleep 1	# let the last promotions finish: the test needs an idle cache

log "privileged: every path"
"$prog" "$name" >/tmp/ioctl.$$ 2>&1
rc=$?
grep -v '^ok ' /tmp/ioctl.$$
log "$(grep -c '^ok ' /tmp/ioctl.$$) checks passed"
[ $rc = 0 ] || die "stash-ioctl-test failed (exit $rc)"
n=$(grep -c '^ok ' /tmp/ioctl.$$)
[ "$n" -ge 500 ] || die "only $n checks ran"

# The status line without what moves by itself (the writeback rate, the
# periodic metadata commits).
status_conf() {
	dmsetup status "$name" | tr ' ' '\n' | grep -vE '^(writeback_rate|commits)='
}

log "without CAP_SYS_ADMIN: EPERM, nothing changes"
before=$(status_conf)
mm=$(dmsetup info -c --noheadings -o major,minor --separator : "$name")
setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin -- \
	"$prog" --unpriv "$name" "$mm" >/tmp/ioctl.$$ 2>&1
rc=$?
cat /tmp/ioctl.$$
[ $rc = 0 ] || die "unprivileged checks failed (exit $rc)"
assert_eq "$before" "$(status_conf)" "status after unprivileged ioctls"

# not_live NAME WHAT: the raw checks on a table that is not live, and
# stashctl's message for a change refused with EBUSY.
not_live() {
	local n=$1 what=$2 out rc

	"$prog" --not-live "$n" >/tmp/ioctl.$$ 2>&1
	rc=$?
	grep -v '^ok ' /tmp/ioctl.$$
	log "$what: $(grep -c '^ok ' /tmp/ioctl.$$) checks passed"
	[ $rc = 0 ] || die "$what: stash-ioctl-test --not-live failed (exit $rc)"
	[ "$(grep -c '^ok ' /tmp/ioctl.$$)" -ge 20 ] || die "$what: too few checks ran"
	out=$("$stashctl" set "$n" idle_ms 1234 2>&1)
	rc=$?
	echo "$out"
	assert_eq 1 "$rc" "$what: stashctl set exit status"
	assert_match "suspended or its table is not resumed" "$out" "$what: stashctl message"
	out=$("$stashctl" status "$n" --json) || die "$what: stashctl status failed"
	assert_eq false "$(jq -r .live <<<"$out")" "$what: status live"
	[ "$(jq -r .tunables.idle_ms <<<"$out")" != 1234 ] || die "$what: the tunable changed"
}
stashctl=${STASH_STASHCTL:-$STASH_REPO/userspace-tools/stashctl}

log "suspended: reading works, changes fail with EBUSY"
dmsetup suspend "$name" || die "suspend"
not_live "$name" "suspended"
dmsetup resume "$name" || die "resume"
assert_ok "flush after resume" "$stashctl" flush "$name" --no-wait

log "loaded, never resumed: the same"
nl=${STASH_DM_PREFIX}c63n
dmsetup create "$nl" --notable || die "create --notable"
dmsetup load "$nl" --table "$(stash_table /dev/ram3 /dev/ram2 writeback)" || die "load"
not_live "$nl" "not resumed"
dmsetup remove "$nl" || die "remove $nl"
rm -f /tmp/ioctl.$$

stash_remove "$name"
exit 0
