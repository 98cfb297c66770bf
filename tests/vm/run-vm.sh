#!/bin/bash
# Boot Debian's stock 6.1 kernel under QEMU (TCG) and run a command in it.
#
# usage: tests/vm/run-vm.sh [--timeout SECS] [--mem MB] [--disk PATH]... -- CMD...
#
# The guest sees the host's root file system read-only over virtio-9p with a
# tmpfs overlay on top (it can write anywhere; writes vanish at power-off),
# runs CMD as root in the repo directory and powers off.  build/vm/out is
# shared read-write at the same path and exported as STASH_OUT: whatever the
# guest writes there stays on the host.  Host variables named STASH_* are
# passed into the guest.  STASH_VM_DIR moves build/vm (initramfs, logs, out)
# elsewhere, e.g. to keep two runs from one checkout apart.
#
# Exit status: CMD's exit status.  A kernel panic (oops, WARN with
# panic_on_warn, hung task, soft lockup), a VM that dies without reporting a
# status, or a timeout make the run fail and print the tail of the serial log.
# The full log is build/vm/serial.log, with a timestamped copy in
# build/vm/logs/.
#
# Only one VM runs at a time on the machine: the launcher holds an exclusive
# flock on /tmp/dm-stash-vm.lock for the whole run and waits for it if busy.
#
# The kernel: Debian's newest /boot/vmlinuz-6.1.*-amd64, or the installed
# kernel STASH_VM_KVER names (e.g. 6.1.0-56-rt-amd64), or a kernel image of
# one's own: STASH_VM_KERNEL=PATH (bzImage) with STASH_VM_MODDIR=DIR, its
# module tree (DIR/modules.builtin ...; the guest sees it as
# /lib/modules/KVER) and STASH_VM_KVER=KVER (make check-debug does that).
# Modules the kernel has built in are left out of the initramfs.
# STASH_VM_APPEND adds to the kernel command line.  The host root is
# mounted with 9p's cache=loose (STASH_VM_9P_CACHE=none turns that off):
# the guest keeps what it has read, so do not change the host's files
# while a VM runs (install packages, rebuild the tree it tests).
#
# The CPU: two vCPUs on multi-threaded TCG by default, QEMU's "max" model
# with 4-level page tables (la57=off: the emulated page walks are shorter;
# program starts measured about a quarter faster).  STASH_VM_ACCEL,
# STASH_VM_CPU and STASH_VM_SMP replace QEMU's -accel, -cpu and -smp
# arguments, and STASH_VM_ICOUNT (e.g. shift=3) adds -icount, so the
# guest's clock counts instructions instead of host time (bench/run.sh
# does that: see docs/bench/README.md).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VMDIR=${STASH_VM_DIR:-$REPO/build/vm}
OUT=$VMDIR/out
LOCK=${STASH_VM_LOCK:-/tmp/dm-stash-vm.lock}

# Modules the stock kernel needs to mount a 9p root under an overlay, in load
# order.
INITRAMFS_MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
		   virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay)

timeout_s=1800
mem=2048
disks=()

usage() {
	sed -n '2,4s/^# \{0,1\}//p' "$0"
	exit "${1:-2}"
}

die() {
	echo "run-vm: $*" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--timeout) timeout_s=${2:?}; shift 2 ;;
	--mem) mem=${2:?}; shift 2 ;;
	--disk) disks+=("$(realpath -e "${2:?}")") || die "no such disk image: $2"; shift 2 ;;
	-h|--help) usage 0 ;;
	--) shift; break ;;
	*) echo "run-vm: unknown option $1" >&2; usage ;;
	esac
done
[ $# -gt 0 ] || usage
[[ $timeout_s =~ ^[0-9]+$ && $mem =~ ^[0-9]+$ ]] || die "--timeout and --mem take numbers"

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (make deps)"
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
	die "/bin/busybox must be busybox-static (make deps)"

# The newest Debian 6.1 kernel, unless STASH_VM_KVER names one.
if [ -n "${STASH_VM_KVER:-}" ]; then
	kver=$STASH_VM_KVER
else
	kernel=$(ls /boot/vmlinuz-6.1.*-amd64 2>/dev/null | grep -v -e '-rt-amd64$' -e '-cloud-amd64$' | sort -V | tail -n1)
	[ -n "$kernel" ] || die "no /boot/vmlinuz-6.1.*-amd64 (make deps)"
	kver=${kernel#/boot/vmlinuz-}
fi
if [ -n "${STASH_VM_KERNEL:-}" ]; then
	[ -n "${STASH_VM_KVER:-}" ] && [ -n "${STASH_VM_MODDIR:-}" ] ||
		die "STASH_VM_KERNEL needs STASH_VM_KVER and STASH_VM_MODDIR"
	kernel=$(realpath -e "$STASH_VM_KERNEL") || die "no kernel image $STASH_VM_KERNEL"
	moddir=$(realpath -e "$STASH_VM_MODDIR") || die "no module tree $STASH_VM_MODDIR"
else
	kernel=/boot/vmlinuz-$kver
	moddir=/lib/modules/$kver
fi
[ -r "$kernel" ] || die "$kernel not readable"
[ -d "$moddir" ] || die "$moddir missing"
mkdir -p "$VMDIR"
VMDIR=$(cd "$VMDIR" && pwd)
OUT=$VMDIR/out
case "$REPO$VMDIR" in
*[[:space:]]*) die "the repo path must not contain white space: $REPO" ;;
esac

# Wait for our turn: one VM at a time on this machine.  QEMU inherits the
# descriptor, so the lock stays held for as long as the VM runs.
exec 9>>"$LOCK"
if ! flock -n 9; then
	echo "run-vm: another VM holds $LOCK, waiting for it..."
	flock 9
fi

mkdir -p "$VMDIR/logs"

# ---------------------------------------------------------------------------
# Initramfs: static busybox, the modules above, tests/vm/init.sh as /init.
# Rebuilt only when one of its inputs changes.
# ---------------------------------------------------------------------------
find_module() {
	local name=$1 alt=${1//_/-} f

	for f in "$name.ko" "$name.ko.xz" "$name.ko.zst" "$name.ko.gz" \
		 "$alt.ko" "$alt.ko.xz" "$alt.ko.zst" "$alt.ko.gz"; do
		f=$(find "$moddir/kernel" -name "$f" -print -quit)
		[ -n "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

# builtin NAME: is module NAME built into the kernel?
builtin() {
	[ -f "$moddir/modules.builtin" ] &&
		sed 's|.*/||; s|\.ko$||; s|-|_|g' "$moddir/modules.builtin" | grep -qx "${1//-/_}"
}

initramfs_modules=()
module_files=()
for m in "${INITRAMFS_MODULES[@]}"; do
	builtin "$m" && continue
	if ! f=$(find_module "$m"); then
		# A kernel of one's own has what it needs built in, and may
		# lack the rest (fscache, say): the boot shows if not.
		[ -z "${STASH_VM_KERNEL:-}" ] || continue
		die "module $m not found under $moddir"
	fi
	initramfs_modules+=("$m")
	module_files+=("$f")
done

initramfs=$VMDIR/initramfs-$kver.cpio
stamp=$VMDIR/initramfs-$kver.stamp
inputs=$({
	stat -L -c '%n %s %Y' /bin/busybox "$kernel" "${module_files[@]}"
	sha256sum "$REPO/tests/vm/init.sh" "${BASH_SOURCE[0]}"
} | sha256sum | cut -d' ' -f1)

if [ ! -f "$initramfs" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$inputs" ]; then
	echo "run-vm: building $initramfs"
	stage=$(mktemp -d "$VMDIR/initramfs.XXXXXX")
	trap 'rm -rf "$stage"' EXIT
	mkdir -p "$stage"/{bin,dev,proc,sys,lib/modules,newroot}
	cp /bin/busybox "$stage/bin/busybox"
	for a in sh mount insmod mkdir poweroff sleep switch_root cat; do
		ln -s busybox "$stage/bin/$a"
	done
	: >"$stage/modules.list"
	for i in "${!initramfs_modules[@]}"; do
		m=${initramfs_modules[$i]} f=${module_files[$i]}
		case $f in
		*.ko.xz)  xz -dc "$f" ;;
		*.ko.zst) zstd -qdc "$f" ;;
		*.ko.gz)  gzip -dc "$f" ;;
		*)        cat "$f" ;;
		esac >"$stage/lib/modules/$m.ko"
		echo "$m" >>"$stage/modules.list"
	done
	install -m 0755 "$REPO/tests/vm/init.sh" "$stage/init"
	# The kernel opens /dev/console for /init before devtmpfs is mounted.
	mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0) >"$initramfs.tmp"
	mv "$initramfs.tmp" "$initramfs"
	echo "$inputs" >"$stamp"
	rm -rf "$stage"
	trap - EXIT
fi

# ---------------------------------------------------------------------------
# The command, the results share and the kernel command line.
# ---------------------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT"

nonce=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
{
	echo "# generated by tests/vm/run-vm.sh"
	while IFS= read -r v; do
		[ "$v" = STASH_OUT ] || printf 'export %s=%q\n' "$v" "${!v}"
	done < <(compgen -e | grep '^STASH_' || true)
	printf 'cd %q || exit 125\n' "$REPO"
	printf '%q ' "$@"
	echo
} >"$VMDIR/guest-cmd.sh"

# watchdog_thresh=30: a soft lockup is a CPU that did not schedule for 60 s
# (the default, 20 s, is 10 s here).  The guest's clock is the host's: a
# host that stops the emulator for a while (an overloaded or paused host
# machine) looks to the guest like a CPU that did not schedule, and once
# blamed a 26 s "soft lockup" on a kernel work item (SRCU's) that had just
# begun.  An emulated CPU is 10-50x slower than a real one, so 60 s here is
# still far stricter than the default on hardware; the host watch below
# says when the host itself stalled.
cmdline="console=ttyS0 loglevel=5 panic_on_warn=1 oops=panic hung_task_panic=1"
cmdline+=" watchdog_thresh=30 softlockup_panic=1 panic=-1 mitigations=off tsc=reliable no_timer_check edd=off"
cmdline+=" rdinit=/init stash_repo=$REPO stash_out=$OUT stash_nonce=$nonce"
cmdline+=" stash_9p_cache=${STASH_VM_9P_CACHE:-loose}"
cmdline+=" stash_cmd=$VMDIR/guest-cmd.sh"
[ "$moddir" = "/lib/modules/$kver" ] || cmdline+=" stash_moddir=$moddir"
cmdline+="${STASH_VM_APPEND:+ $STASH_VM_APPEND}"

qemu=(qemu-system-x86_64
	-accel "${STASH_VM_ACCEL:-tcg,thread=multi}" -cpu "${STASH_VM_CPU:-max,la57=off}"
	-smp "${STASH_VM_SMP:-2}" -m "$mem"
	-nographic -no-reboot -nodefaults -serial stdio -nic none
	-fw_cfg name=etc/sercon-port,string=0
	-kernel "$kernel" -initrd "$initramfs" -append "$cmdline"
	-fsdev local,id=r,path=/,security_model=none,readonly=on,multidevs=remap
	-device virtio-9p-pci,fsdev=r,mount_tag=hostroot
	-fsdev "local,id=o,path=$OUT,security_model=none,multidevs=remap"
	-device virtio-9p-pci,fsdev=o,mount_tag=stashout)
[ -z "${STASH_VM_ICOUNT:-}" ] || qemu+=(-icount "$STASH_VM_ICOUNT")
for d in "${disks[@]}"; do
	qemu+=(-drive "file=$d,format=raw,if=virtio,cache=writeback,discard=unmap")
done

# ---------------------------------------------------------------------------
# Run it.  The serial console streams to stdout and into the log.
# ---------------------------------------------------------------------------
log=$VMDIR/serial.log
# One boot: the serial console streams to stdout and into the log.
boot() {
	echo "run-vm: booting $kver (timeout ${timeout_s}s, ${mem} MiB, ${#disks[@]} extra disk(s))"
	start=$(date +%s)
	# The host watch: a tick a second; a gap of 5 s or more means the host
	# stopped everything, the emulator too (the guest then sees its CPUs
	# stuck).
	: >"$stalls"
	(
		last=$(date +%s)
		while sleep 1 && kill -0 $$ 2>/dev/null; do
			now=$(date +%s)
			[ $((now - last)) -lt 5 ] ||
				echo "run-vm: the host stalled $((now - last))s at $(date -d "@$last" +%T) ($((last - start))s into the run)" >>"$stalls"
			last=$now
		done
	) &
	watch_pid=$!
	set +e
	# (SeaBIOS is told to keep off the serial console; QEMU warns about the
	# name of that fw_cfg item, which is the one SeaBIOS reads.)
	timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null \
		2> >(grep -v 'fw_cfg item names should be prefixed' >&2) | tee "$log"
	qemu_rc=${PIPESTATUS[0]}
	set -e
	kill "$watch_pid" 2>/dev/null || true
	wait "$watch_pid" 2>/dev/null || true
	elapsed=$(($(date +%s) - start))
	copy=$VMDIR/logs/serial-$(date +%Y%m%d-%H%M%S).log
	cp "$log" "$copy"
	# Keep the 20 newest copies.
	ls -1t "$VMDIR"/logs/serial-*.log | tail -n +21 | xargs -r rm -f
}

# The first three kernel errors of the last boot's log.
first_errors() {
	grep -aE -m 3 'WARNING:|BUG:|Oops|general protection|INFO: task .* blocked|soft lockup|Kernel panic - not syncing' "$log" |
		tr -d '\r' || true
}

# A kernel that dies before /init runs (init.sh's first line prints
# STASH-VM-BOOTED) ran nothing of ours: no test, no dm-stash (the module
# is loaded by the tests, later).  That is the emulator's fault or the
# stock kernel's, and the boot is tried again, up to STASH_VM_BOOT_TRIES
# times (3) in all; each failed boot's log is kept and its first kernel
# errors printed.  (Seen once in CI: a 6.12 kernel's "Oops: int3" in an
# interrupt 1.8 s into the boot, during the kernel's own code patching;
# not seen in 40 boots here.)
stalls=$VMDIR/host-stalls
tries=${STASH_VM_BOOT_TRIES:-3}
for try in $(seq 1 "$tries"); do
	boot
	grep -aq "STASH-VM-BOOTED:$nonce" "$log" && break
	[ "$qemu_rc" -ne 124 ] && [ "$qemu_rc" -ne 137 ] || break
	[ "$try" -lt "$tries" ] || break
	echo
	echo "run-vm: the kernel stopped before /init ran (qemu exit $qemu_rc, ${elapsed}s; boot $try of $tries): booting again"
	first_errors | sed 's/^/run-vm:   /'
	echo "run-vm: that boot's log: $copy"
done

rc=$(grep -ao "STASH-VM-EXIT:$nonce:[0-9]*" "$log" | tail -n1 | cut -d: -f3 || true)
why=
if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
	why="timed out after ${timeout_s}s"
	rc=124
elif grep -aq -e 'Kernel panic - not syncing' -e 'end Kernel panic' "$log"; then
	why="kernel panic"
	rc=${rc:-1}
	[ "$rc" -ne 0 ] || rc=1
elif [ -z "$rc" ]; then
	why="the VM stopped without reporting an exit status (qemu exit $qemu_rc)"
	rc=1
elif [ "$qemu_rc" -ne 0 ]; then
	why="qemu exited with $qemu_rc"
	[ "$rc" -ne 0 ] || rc=1
fi

if [ -n "$why" ]; then
	echo
	echo "run-vm: FAILED: $why; last 60 lines of the serial log:"
	echo "------------------------------------------------------------------------"
	tail -n 60 "$log" | tr -d '\r'
	echo "------------------------------------------------------------------------"
	first=$(first_errors)
	[ -z "$first" ] || printf 'run-vm: first kernel errors:\n%s\n' "$first"
	last_test=$(grep -ao 'stash-run: begin [^ ]*' "$log" | tail -n1 | cut -d' ' -f3 || true)
	[ -z "$last_test" ] || echo "run-vm: the last test begun: $last_test"
	echo "run-vm: full log: $log (copy: $copy)"
fi
cat "$stalls"
echo "run-vm: guest exit status $rc after ${elapsed}s"
exit "$rc"
