#!/bin/bash
# dm-stash test VM, stage 2: runs as PID 1 in the guest after switch_root,
# with the host's root (read-only 9p + tmpfs overlay) as /.
#
# Mounts the usual pseudo filesystems and the read-write results share,
# runs the command run-vm.sh wrote to $stash_cmd, prints its exit
# status as a marker line for the host, and powers off.
# Environment (from the kernel command line): stash_repo, stash_out,
# stash_cmd, stash_nonce, stash_moddir (optional).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8
export DM_DISABLE_UDEV=1

finish() {
	local rc=$1

	sync
	echo "STASH-VM-EXIT:${stash_nonce}:${rc}"
	/bin/busybox poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 60
}

mount -t tmpfs -o mode=0755 run /run
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
# /tmp stays the overlay's: writable and tmpfs-backed like everything else,
# with the host's /tmp visible underneath (worktrees, modules built there).
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t configfs configfs /sys/kernel/config 2>/dev/null
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
hostname stash-vm

mkdir -p "$stash_out"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 stashout "$stash_out"; then
	echo "stash-vm: cannot mount the results share at $stash_out"
	finish 125
fi
export STASH_OUT="$stash_out" STASH_IN_VM=1

# A kernel that is not installed (make check-debug, make check KERNEL=...) brings its
# module tree.  (/lib/modules/KVER may exist anyway: a headers package
# makes it, with only the build link in it.)
if [ -n "${stash_moddir:-}" ]; then
	mkdir -p "/lib/modules/$(uname -r)" &&
		mount --bind "$stash_moddir" "/lib/modules/$(uname -r)" ||
		echo "stash-vm: cannot mount the module tree $stash_moddir"
fi

# Extra disks (--disk) are virtio-blk.
modprobe virtio_blk 2>/dev/null

read -r up _ </proc/uptime
echo "stash-vm: guest ready after ${up}s of uptime, running the command"
cd "$stash_repo" || finish 125
/bin/bash "$stash_cmd" </dev/null
rc=$?
echo "$rc" >"$STASH_OUT/exit-status"
finish "$rc"
