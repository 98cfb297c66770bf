#!/bin/bash
# dm-stash demo (make demo runs it in the test VM; as root on a machine that
# can load modules it also runs directly).
#
# A 256 MiB RAM "fast" device caches a 1 GiB "slow" device (RAM behind
# dm-delay), in writethrough mode.  An ext4 file system on the stash volume
# gets ~20 s of fio: random reads of a hot set (a cold pass, then a warm
# one), then a write+verify job.  Prints the volume's status and a short
# report, and tears everything down.  Results go to $STASH_OUT/demo (or
# build/demo).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_root
require_cmd fio jq mkfs.ext4

MODE=${STASH_DEMO_MODE:-writethrough}
DELAY_MS=${STASH_DEMO_DELAY_MS:-4}
HOT_MB=${STASH_DEMO_HOT_MB:-64}
OUTDIR=${STASH_OUT:-$STASH_REPO/build}/demo
mkdir -p "$OUTDIR"
rm -f "$OUTDIR"/*.json "$OUTDIR"/report.txt

stash_load_module

# ram0: 1 GiB of slow origin (behind dm-delay); ram1: the fast device, cut
# to 256 MiB with dm-linear (brd gives every device the same size).
brd_setup 2 $((1024 * 1024))
dm_create fast "0 $((256 * 2048)) linear /dev/ram1 0" || die "cannot create the fast device"
fast=$(dm_path fast)
delay_create slow /dev/ram0 "$DELAY_MS"
slow=$DELAY_DEV
stash_create demo "$slow" "$fast" "$MODE"
vol=$STASH_DEV

echo "== devices"
echo "fast:   $fast (256 MiB RAM)"
echo "slow:   $slow (1 GiB RAM + ${DELAY_MS} ms dm-delay)"
echo "volume: $vol ($MODE): $(dmsetup table "$vol")"

mnt=$(mktemp -d /tmp/stash-demo.XXXXXX)
on_exit "umount '$mnt' 2>/dev/null; rmdir '$mnt'"
mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 "$vol"
mount -o noinit_itable "$vol" "$mnt"
echo "ext4 mounted on $mnt"

# run_fio NAME FIO_ARGS...: one fio job on the hot file, JSON in $OUTDIR.
run_fio() {
	local name=$1

	shift
	fio --name="$name" --directory="$mnt" --filename=hot --size="${HOT_MB}M" \
		--bs=4k --direct=1 --ioengine=libaio --iodepth=8 --eta=never \
		--output-format=json --output="$OUTDIR/$name.json" "$@"
}

# summarize NAME RW ORIGIN_READS: one report line from a fio JSON file.
summarize() {
	jq -r --arg rw "$2" --arg o "$3" --arg n "$1" '.jobs[0][$rw] |
		"\($n | . + "          " | .[0:10]) \(.iops | floor) IOPS  " +
		"lat mean \(.clat_ns.mean / 1000 | floor) us  " +
		"p99 \(.clat_ns.percentile["99.000000"] / 1000 | floor) us  " +
		"origin reads \($o)"' "$OUTDIR/$1.json"
}

echo "== laying out the ${HOT_MB} MiB hot file"
run_fio layout --rw=write --bs=1M
sync

report=()
for pass in cold warm; do
	echo "== random reads of the hot set ($pass)"
	before=$(dev_stat "$slow" read_ios)
	run_fio "read-$pass" --rw=randread --random_distribution=zipf:1.1 \
		--time_based --runtime=$([ $pass = cold ] && echo 5 || echo 8) \
		--randrepeat=1
	report+=("$(summarize "read-$pass" read $(($(dev_stat "$slow" read_ios) - before)))")
done

echo "== random writes with crc32c verify"
before=$(dev_stat "$slow" read_ios)
run_fio verify --rw=randwrite --size=16M --verify=crc32c --verify_fatal=1 \
	--do_verify=1 --verify_state_save=0
report+=("$(summarize verify write $(($(dev_stat "$slow" read_ios) - before)))")
errs=$(jq '.jobs[0].error' "$OUTDIR/verify.json")
[ "$errs" = 0 ] || die "fio verify reported error $errs"

umount "$mnt"
status=$(dmsetup status "$vol")
{
	echo "== dmsetup status $vol"
	echo "$status"
	echo
	echo "== report ($MODE, slow device +${DELAY_MS} ms)"
	printf '%s\n' "${report[@]}"
	fields=$(awk '{ for (i = 4; i <= NF; i++) if (index($i, "=")) print "  " $i }' <<<"$status")
	if [ -n "$fields" ]; then
		echo "status fields:"
		echo "$fields"
	else
		echo "status fields: (none: '$(cut -d' ' -f4- <<<"$status")')"
	fi
	echo "verify: ok"
} | tee "$OUTDIR/report.txt"

stash_remove "$vol"
echo "demo: done (results in $OUTDIR)"
