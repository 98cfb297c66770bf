#!/bin/bash
# desc: every validation path of every control ioctl gives its errno and changes nothing (raw ioctls)
. "$(dirname "$0")/../lib.sh"
require_root
require_cmd setpriv
prog=$STASH_REPO/userspace-tools/tests/stash-ioctl-test
[ -x "$prog" ] || die "$prog not built (make tools)"
stash_load_module

brd_setup 2 65536
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
rm -f /tmp/ioctl.$$

stash_remove "$name"
exit 0
