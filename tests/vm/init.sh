#!/bin/sh
# dm-stash test VM, stage 1: /init of the busybox initramfs built by run-vm.sh.
#
# Loads the virtio/9p/overlay modules (list in /modules.list, load order
# matters), mounts the host root read-only over virtio-9p, puts a tmpfs
# overlay on top so the guest can write anywhere, and switch_roots into it to
# run stage 2 (tests/vm/guest-init.sh, read from the host's repo).
#
# Parameters arrive from the kernel command line as environment variables:
#   stash_repo   repo directory on the host (and in the guest)
#   stash_nonce  tag for the exit-status marker line run-vm.sh looks for
#   stash_9p_cache  the 9p cache mode of the host root (default loose)
export PATH=/bin
# run-vm.sh boots again a kernel that died before this line.
echo "STASH-VM-BOOTED:${stash_nonce}"

fail() {
	echo "stash-vm: stage 1: $*"
	echo "STASH-VM-EXIT:${stash_nonce}:125"
	poweroff -f
	sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r m; do
	insmod "/lib/modules/$m.ko" || fail "insmod $m failed"
done </modules.list

mkdir -p /lower /rw /newroot
# cache=loose (stash_9p_cache=, default loose): the guest keeps the host's
# files, their names and attributes once read, instead of asking the host
# for each lookup and read (100 starts of dd: 12 s instead of 18 to 21).
# The host root does not change while a VM runs (see run-vm.sh).
mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,ro,cache=${stash_9p_cache:-loose}" \
	hostroot /lower ||
	fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 stash-rw /rw || fail "cannot mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work \
	stash-root /newroot || fail "cannot mount the overlay root"

stage2="$stash_repo/tests/vm/guest-init.sh"
[ -f "/newroot$stage2" ] || fail "$stage2 not found"

for d in dev proc sys; do
	mount --move "/$d" "/newroot/$d" || fail "cannot move /$d"
done
exec switch_root /newroot /bin/bash "$stage2"
