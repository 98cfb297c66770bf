#!/bin/bash
# desc: make install (staged, then copied into /), modprobe, installed stashctl: remove --no-flush, assemble --all brings the write-back volume back with its dirty data (fio verify); missing or resized origin leaves the cache untouched; online swap to dm-linear
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../persist-lib.sh"
require_root
require_cmd fio
require_cmd depmod

kver=$(uname -r)
stage=$STASH_REPO/build/t70-stage
tmp=$(mktemp -d)
sbin=/usr/sbin
stashctl=$sbin/stashctl
vol=${STASH_DM_PREFIX}v70
oname=o70
cleanup() {
	dmsetup remove "$vol" 2>/dev/null
	# The installed module goes; the runner loads the tree's for the next test.
	rmmod dm_stash 2>/dev/null
	rm -rf "$tmp" "$stage"
}
on_exit cleanup

log "make install into a staging tree"
modprobe dm_mod && modprobe libcrc32c || die "cannot load dm_mod, libcrc32c"
if stash_module_loaded; then
	rmmod dm_stash || die "cannot unload the tree's dm_stash to install it"
fi
rm -rf "$stage"
# -o all: the artefacts are built already (make check builds them).
make -s -C "$STASH_REPO" -o all install DESTDIR="$stage" PREFIX=/usr KVER="$kver" ||
	die "make install DESTDIR=$stage failed"
want="lib/modules/$kver/updates/dm-stash.ko
lib/udev/rules.d/69-dm-stash.rules
usr/sbin/stashctl
usr/share/bash-completion/completions/stashctl
usr/share/man/man8/stashctl.8"
assert_eq "$want" "$(cd "$stage" && find . -type f | sed 's|^\./||' | sort)" "files installed"
cmp "$stage/lib/modules/$kver/updates/dm-stash.ko" "$STASH_KO" || die "installed module differs"
grep -q "IMPORT{program}=\"/usr/sbin/stashctl probe --export \$devnode\"" \
	"$stage/lib/udev/rules.d/69-dm-stash.rules" || die "udev rule lacks the probe line"
make -s -C "$STASH_REPO" -o all uninstall DESTDIR="$stage" PREFIX=/usr KVER="$kver" ||
	die "make uninstall DESTDIR=$stage failed"
assert_eq "" "$(find "$stage" -type f)" "files left by uninstall"

log "install into / (the guest's overlay), depmod, modprobe"
make -s -C "$STASH_REPO" -o all install DESTDIR="$stage" PREFIX=/usr KVER="$kver" ||
	die "make install failed"
tar -C "$stage" -cf - . | tar -C / --keep-directory-symlink -xf - || die "cannot copy into /"
depmod -a "$kver" || die "depmod failed"
assert_eq "/lib/modules/$kver/updates/dm-stash.ko" "$(modinfo -n dm-stash)" "modinfo -n dm-stash"
modprobe dm-stash || die "modprobe dm-stash failed"
stash_module_loaded || die "dm_stash not loaded after modprobe"
"$stashctl" version || die "installed stashctl does not run"

brd_setup 2 131072
cache=/dev/ram0
linear_origin() {
	dm_create "$oname" "0 $1 linear /dev/ram1 0" || die "cannot create the origin"
}
osize=$(dev_sectors /dev/ram1)
linear_origin "$osize"
onode=$(dm_path "$oname")
odev=/dev/$(basename "$(readlink -f "/sys/dev/block/$(dev_number "$onode")")")
[ -b "$odev" ] || die "no $odev"

log "create with the installed stashctl, origin given as $odev"
"$stashctl" create "$vol" --origin "$odev" --cache $cache --mode writeback \
	--set high_watermark=100 --set idle_ms=0 --set commit_ms=200 | tee "$tmp/out" ||
	die "stashctl create failed"
grep -q "over $onode" "$tmp/out" || die "create did not record the origin as $onode"
table=$(dmsetup table "$vol")
log "table: $table"

# fio: 16 MiB of random 4 KiB writes, verify state saved for later.
fio_args=(--name=t70 --filename="/dev/mapper/$vol" --rw=randwrite --bs=4k
	  --direct=1 --ioengine=libaio --iodepth=8 --size=8M --randseed=7070
	  --verify=crc32c --verify_fatal=1)
(cd "$tmp" && fio "${fio_args[@]}" --do_verify=0 --verify_state_save=1 \
	--output="$tmp/fio-write.log") || { cat "$tmp/fio-write.log"; die "fio write failed"; }
dirty=$(stash_status_field "$vol" dirty)
log "dirty blocks: $dirty"
[ "$dirty" = 2048 ] || die "$dirty dirty blocks after 8 MiB of new 4 KiB writes, want 2048"

log "remove --no-flush: the dirty blocks stay on the cache"
"$stashctl" remove "$vol" --no-flush || die "stashctl remove --no-flush failed"
# The origin alone does not hold the data (so assemble must bring the cache).
fio_args_origin=("${fio_args[@]/--filename=*/--filename=$onode}")
(cd "$tmp" && fio "${fio_args_origin[@]}" --verify_only --verify_state_load=1 \
	--output="$tmp/fio-origin.log") && die "the origin alone verifies: the test proves nothing"

log "probe"
"$stashctl" probe $cache | tee "$tmp/out" || die "probe: not a cache device"
grep -q "volume $vol, origin $onode ($osize sectors), writeback" "$tmp/out" ||
	die "probe output: $(cat "$tmp/out")"
assert_eq "STASH_CACHE=1" "$("$stashctl" probe --export $cache | head -n1)" "probe --export"
assert_fails "probe of the origin" "$stashctl" probe "$onode"

md() { dd if=$cache bs=1M count=2 iflag=direct status=none | md5sum; }
before=$(md)

log "assemble --all without the origin: cache untouched, exit 3"
dm_remove_name "$oname"
"$stashctl" assemble --all >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
assert_eq 3 "$rc" "assemble --all exit status, origin missing"
grep -q "origin $onode not found: cache left untouched" "$tmp/out" || die "no missing-origin message"
dm_exists "$vol" && die "assemble created $vol without its origin"
assert_eq "$before" "$(md)" "cache metadata after the failed assemble"

log "origin of another size: cache untouched, exit 1"
linear_origin $((osize - 2048))
"$stashctl" assemble $cache >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
assert_eq 1 "$rc" "assemble exit status, origin resized"
grep -q "origin $onode is $((osize - 2048)) sectors, it was $osize" "$tmp/out" ||
	die "no size-mismatch message"
dm_exists "$vol" && die "assemble created $vol over a resized origin"
assert_eq "$before" "$(md)" "cache metadata after the refused assemble"
dm_remove_name "$oname"

log "assemble --only-listed: an unlisted cache is left alone"
linear_origin "$osize"
uuid=$("$stashctl" probe --export $cache | sed -n 's/^STASH_CACHE_UUID=//p')
assert_match '^[0-9a-f]{32}$' "$uuid" "cache uuid"
echo "# no caches yet" >"$tmp/allow"
assert_fails "assemble of an unlisted cache" "$stashctl" assemble --only-listed="$tmp/allow" $cache
dm_exists "$vol" && die "assemble --only-listed created an unlisted volume"
assert_eq "$before" "$(md)" "cache metadata after the refused assemble"
grep -q 'RUN+="/usr/sbin/stashctl assemble --only-listed $devnode"' \
	/lib/udev/rules.d/69-dm-stash.rules || die "the udev rule does not use --only-listed"

log "assemble --all with the origin back"
"$stashctl" assemble --all | tee "$tmp/out" || die "assemble --all failed"
grep -q "assembled /dev/mapper/$vol: writeback over $onode, cache $cache" "$tmp/out" ||
	die "assemble did not report $vol"
# The origin's device number may differ (the origin was recreated).
no_origin() { awk '{ $4 = ""; print }'; }
assert_eq "$(no_origin <<<"$table")" "$(dmsetup table "$vol" | no_origin)" \
	"table of the assembled volume"
assert_eq "$dirty" "$(stash_status_field "$vol" dirty)" "dirty blocks after assemble"
assert_eq persistent "$(stash_status_field "$vol" metadata)" "metadata state"
"$stashctl" assemble --all | tee "$tmp/out" || die "second assemble --all failed"
assert_eq "$cache: in use by dm-stash volume $vol already, skipped" "$(cat "$tmp/out")" \
	"second assemble --all"

log "fio --verify_only through the assembled volume"
(cd "$tmp" && fio "${fio_args[@]}" --verify_only --verify_state_load=1 \
	--output="$tmp/fio-verify.log") || { cat "$tmp/fio-verify.log"; die "verify after assemble failed"; }
grep -E "err= *0" "$tmp/fio-verify.log" >/dev/null || die "fio reported errors"

log "move the volume off dm-stash online (docs/deploy.md): writethrough, flush, swap to dm-linear"
"$stashctl" mode "$vol" writethrough || die "mode writethrough failed"
"$stashctl" flush "$vol" || die "flush failed"
assert_eq 0 "$(stash_status_field "$vol" dirty)" "dirty blocks after the flush"
exec 7<"/dev/mapper/$vol"	# the volume stays open across the swap
dmsetup load "$vol" --table "0 $osize linear $onode 0" || die "load linear failed"
dmsetup suspend "$vol" && dmsetup resume "$vol" || die "suspend/resume failed"
exec 7<&-
assert_match "^0 $osize linear " "$(dmsetup table "$vol")" "table after the swap"
(cd "$tmp" && fio "${fio_args[@]}" --verify_only --verify_state_load=1 \
	--output="$tmp/fio-linear.log") || { cat "$tmp/fio-linear.log"; die "verify through dm-linear failed"; }
dmsetup remove "$vol" || die "cannot remove $vol"
"$stashctl" probe $cache >/dev/null || die "the cache lost its superblock"
dd if=/dev/zero of=$cache bs=4096 count=2 oflag=direct status=none
assert_fails "probe of the retired cache" "$stashctl" probe $cache

log "make uninstall from /"
make -s -C "$STASH_REPO" -o all uninstall PREFIX=/usr KVER="$kver" || die "make uninstall failed"
for f in $want; do
	[ -e "/$f" ] && die "/$f left by make uninstall"
done
modinfo -n dm-stash >/dev/null 2>&1 && die "depmod still knows dm-stash after uninstall"
dm_remove_name "$oname"
exit 0
