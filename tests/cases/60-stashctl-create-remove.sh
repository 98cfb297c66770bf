#!/bin/bash
# desc: stashctl create/remove/list: tables, /dev/mapper nodes, flush on remove, errors change nothing
. "$(dirname "$0")/../lib.sh"
require_root
stashctl_setup
stash_load_module
on_exit 'rm -f /tmp/pattern.$$'

brd_setup 3 65536
origin=/dev/ram1 cache=/dev/ram0
name=${STASH_DM_PREFIX}c60
sectors=$(dev_sectors $origin)

log "usage errors and refused tables create nothing"
expect_exit 2 "no --mode" "$stashctl" create "$name" --origin $origin --cache $cache
out_has "--mode are needed" "no --mode"
expect_exit 2 "bad mode" "$stashctl" create "$name" --origin $origin --cache $cache --mode fast
out_has "unknown mode 'fast'" "bad mode"
expect_exit 2 "block size 3K" "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writethrough --block-size 3K
out_has "power of two" "block size 3K"
expect_exit 2 "block size 2M" "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writethrough --block-size 2M
expect_exit 2 "block size 12x" "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writethrough --block-size 12x
expect_exit 2 "unknown tunable" "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writethrough --set nope=1
expect_exit 2 "tunable twice" "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writethrough --set idle_ms=1 --set idle_ms=2
expect_exit 2 "same device twice" "$stashctl" create "$name" --origin $cache --cache $cache \
	--mode writethrough
expect_exit 3 "missing origin" "$stashctl" create "$name" --origin /dev/no-such-disk \
	--cache $cache --mode writethrough
expect_exit 2 "not a block device" "$stashctl" create "$name" --origin /dev/null \
	--cache $cache --mode writethrough
expect_exit 2 "extra argument" "$stashctl" create "$name" other --origin $origin \
	--cache $cache --mode writethrough
# The kernel checks the range: the table is refused and nothing is left.
expect_exit 1 "high_watermark 200" "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writeback --set high_watermark=200
out_has "refused the table" "high_watermark 200"
out_has "nothing was created" "high_watermark 200"
dm_exists "$name" && die "a refused create left $name behind"
assert_eq "" "$(dm_names | grep "^$name")" "dm devices after refused creates"

log "create with options"
expect_exit 0 "create" "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writeback --block-size 16K --volatile --format --set idle_ms=0 --set sequential_cutoff=0
out_has "created /dev/mapper/$name" "create"
[ -b "/dev/mapper/$name" ] || die "/dev/mapper/$name is not a block device"
table=$(dmsetup table "$name")
log "table: $table"
assert_match "^0 $sectors stash 1:1 1:0 writeback 8 " "$table" "table line"
for want in "idle_ms 0" "sequential_cutoff 0" "block_size 32" "volatile" "format"; do
	assert_match "$want" "$table" "table option"
done
assert_eq 32 "$(stash_status_field "$name" block_size)" "block size in sectors"
expect_exit 1 "create over an existing name" "$stashctl" create "$name" --origin /dev/ram2 \
	--cache $cache --mode writethrough
out_has "exists already" "existing name"
assert_eq "$table" "$(dmsetup table "$name")" "table after the refused create"

log "list"
expect_exit 0 "list" "$stashctl" list
out_has "^NAME +DEV +MODE" "list header"
out_has "^$name +[0-9]+:[0-9]+ +writeback +idle" "list line"

log "remove flushes dirty blocks first"
dd if=/dev/urandom of=/tmp/pattern.$$ bs=1M count=4 status=none
dd if=/tmp/pattern.$$ of="/dev/mapper/$name" bs=1M oflag=direct status=none ||
	die "write to $name failed"
dirty=$(stash_status_field "$name" dirty)
log "dirty blocks: $dirty"
[ "$dirty" -gt 0 ] || die "no dirty blocks after writing in writeback mode"
cmp -s -n 4194304 /tmp/pattern.$$ $origin && die "the origin has the data already"

exec 3<"/dev/mapper/$name"
expect_exit 1 "remove while open" "$stashctl" remove "$name"
out_has "is busy" "remove while open"
exec 3<&-
dm_exists "$name" || die "remove of a busy device removed it"
assert_eq "$dirty" "$(stash_status_field "$name" dirty)" "dirty blocks after the refused remove"

expect_exit 0 "remove" "$stashctl" remove "$name"
out_has "flushed" "remove"
out_has "removed $name" "remove"
dm_exists "$name" && die "$name still exists after remove"
[ -e "/dev/mapper/$name" ] && die "/dev/mapper/$name left behind"
cmp -n 4194304 /tmp/pattern.$$ $origin || die "the origin lacks the data after remove"

log "remove --no-flush says what is dirty; suspend drains the volatile cache"
dd if=/dev/zero of=$origin bs=1M count=4 oflag=direct status=none
expect_exit 0 "create" "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writeback --volatile --format --set idle_ms=0
dd if=/tmp/pattern.$$ of="/dev/mapper/$name" bs=1M oflag=direct status=none
dirty=$(stash_status_field "$name" dirty)
[ "$dirty" -gt 0 ] || die "no dirty blocks"
expect_exit 0 "remove --no-flush" "$stashctl" remove --no-flush "$name"
out_has "$dirty dirty blocks" "remove --no-flush"
out_has "when it suspends" "remove --no-flush"
out_has "is volatile" "remove --no-flush"
dm_exists "$name" && die "$name still exists"
cmp -n 4194304 /tmp/pattern.$$ $origin || die "the origin lacks the data after remove --no-flush"

log "a persistent cache keeps its dirty blocks across remove --no-flush"
dd if=/dev/zero of=$origin bs=1M count=4 oflag=direct status=none
expect_exit 1 "create over a used cache device" "$stashctl" create "$name" --origin $origin \
	--cache $cache --mode writeback
out_has "--format lets dm-stash overwrite it" "create over a used cache device"
dm_exists "$name" && die "a refused create left $name behind"
expect_exit 0 "create --format" "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writeback --format --set idle_ms=0
assert_eq persistent "$(stash_status_field "$name" metadata)" "metadata"
dd if=/tmp/pattern.$$ of="/dev/mapper/$name" bs=1M oflag=direct status=none
dirty=$(stash_status_field "$name" dirty)
[ "$dirty" -gt 0 ] || die "no dirty blocks"
expect_exit 0 "remove --no-flush" "$stashctl" remove --no-flush "$name"
out_has "$dirty dirty blocks" "remove --no-flush, persistent"
out_has "stay on the cache device" "remove --no-flush, persistent"
cmp -s -n 4194304 /tmp/pattern.$$ $origin && die "the origin has the data already"
# idle_ms=0: a slow (debug) kernel may take longer than the default idle
# time to get here, and the idle drain would clean the blocks first.
expect_exit 0 "create again" "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writeback --set idle_ms=0
assert_eq "$dirty" "$(stash_status_field "$name" dirty)" "dirty blocks after creating again"
cmp -n 4194304 /tmp/pattern.$$ "/dev/mapper/$name" || die "the cache lost the data"
expect_exit 0 "remove" "$stashctl" remove "$name"
cmp -n 4194304 /tmp/pattern.$$ $origin || die "the origin lacks the data after remove"

log "remove: not found, not a stash device"
expect_exit 3 "remove a missing device" "$stashctl" remove "${STASH_DM_PREFIX}nothing"
dm_create lin "0 $(dev_sectors /dev/ram2) linear /dev/ram2 0" || die "dmsetup create linear"
expect_exit 3 "remove a linear device" "$stashctl" remove "${STASH_DM_PREFIX}lin"
out_has "not a dm-stash device" "remove a linear device"
dm_exists "${STASH_DM_PREFIX}lin" || die "the linear device was removed"
dm_remove "${STASH_DM_PREFIX}lin"

log "nodes without DM_DISABLE_UDEV (no udev runs here either)"
env -u DM_DISABLE_UDEV "$stashctl" create "$name" --origin $origin --cache $cache \
	--mode writearound --volatile --format || die "create without DM_DISABLE_UDEV"
[ -b "/dev/mapper/$name" ] || die "/dev/mapper/$name missing"
env -u DM_DISABLE_UDEV "$stashctl" remove "$name" || die "remove without DM_DISABLE_UDEV"
[ -e "/dev/mapper/$name" ] && die "/dev/mapper/$name left behind"

log "the control node is made from sysfs when missing"
"$stashctl" create "$name" --origin $origin --cache $cache --mode writethrough \
	--volatile --format >/dev/null || die "create"
rm -f /dev/stash-control
expect_exit 0 "list without /dev/stash-control" "$stashctl" list
out_has "^$name " "list without /dev/stash-control"
[ -c /dev/stash-control ] || die "/dev/stash-control was not made"
"$stashctl" remove "$name" >/dev/null || die "remove"

log "module not loaded"
rmmod dm_stash || die "rmmod"
expect_exit 5 "list without the module" "$stashctl" list
out_has "not loaded" "list without the module"
expect_exit 5 "status without the module" "$stashctl" status "$name"
expect_exit 5 "create without the module" "$stashctl" create "$name" --origin $origin \
	--cache $cache --mode writethrough
dm_exists "$name" && die "create without the module made a device"
expect_exit 0 "version without the module" "$stashctl" version
out_has "^module: not loaded" "version without the module"
insmod "$STASH_KO" || die "insmod"
expect_exit 0 "version" "$stashctl" version
out_has "^interface: 1 " "version"
exit 0
