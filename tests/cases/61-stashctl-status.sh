#!/bin/bash
# desc: stashctl status/list/stats/get --json agree with dmsetup status and table; --watch; live table preferred
. "$(dirname "$0")/../lib.sh"
require_root
require_cmd python3
stashctl_setup
stash_load_module

brd_setup 2 65536
origin=/dev/ram1 cache=/dev/ram0
name=${STASH_DM_PREFIX}c61

"$stashctl" create "$name" --origin $origin --cache $cache --mode writethrough \
	--set high_watermark=60 --set commit_ms=60000 || die "create"
# (No periodic commit: "commits" must not move between the samples compared.)
dev=/dev/mapper/$name
# Hits, misses, promotions: read a range three times (the promotion
# filter admits a block on its second miss), write a little.
for i in 1 2 3; do
	dd if=$dev of=/dev/null bs=4k count=512 iflag=direct status=none
done
dd if=/dev/urandom of=$dev bs=4k count=64 oflag=direct status=none

# check_json JSON: compare a status object with dmsetup status/table/info.
check_json() {
	python3 - "$name" "$1" "$(dmsetup status "$name")" "$(dmsetup table "$name")" \
		"$(dmsetup info -c --noheadings -o major,minor --separator : "$name")" <<'EOF'
import json, sys
name, js, status, table, mm = sys.argv[1:6]
o = json.loads(js)
st = dict(f.split("=", 1) for f in status.split()[3:])
tb = table.split()
fail = []
def eq(what, a, b):
    if str(a) != str(b):
        fail.append(f"{what}: json {a!r} != dmsetup {b!r}")
eq("name", o["name"], name)
eq("dev", o["dev"], mm.strip().replace(" ", ""))
eq("major:minor", f'{o["major"]}:{o["minor"]}', o["dev"])
eq("size_sectors", o["size_sectors"], tb[1])
eq("origin", o["origin"]["dev"], tb[3])
eq("cache", o["cache"]["dev"], tb[4])
eq("mode", o["mode"], st["mode"])
eq("state", o["state"], st["state"])
eq("block_size", o["block_size"], st["block_size"])
eq("block_bytes", o["block_bytes"], int(st["block_size"]) * 512)
used, total = st["cache_blocks"].split("/")
eq("used_blocks", o["used_blocks"], used)
eq("cache_blocks", o["cache_blocks"], total)
eq("dirty_blocks", o["dirty_blocks"], st["dirty"])
eq("writeback_blocks", o["writeback_blocks"], st["writeback"])
eq("ram_per_block", o["ram_per_block"], st["ram_per_block"])
eq("writeback_rate", o["writeback_rate"], st["writeback_rate"])
eq("metadata", o["metadata"], st["metadata"])
eq("cache_state", o["cache_state"], st["cache_state"])
eq("writeback_retry_ms", o["writeback_retry_ms"], st["writeback_retry_ms"])
for k, v in o["counters"].items():
    eq(k, v, st[k])
for k, v in o["tunables"].items():
    eq(k, v, st[k])
want = {"read_hits", "read_misses", "write_hits", "write_misses", "promotions",
        "evictions", "invalidations", "bypassed", "written_back", "cache_errors",
        "origin_errors", "writeback_errors", "commits"}
if set(o["counters"]) != want:
    fail.append(f"counters {sorted(o['counters'])}")
if set(o["tunables"]) != {"sequential_cutoff", "high_watermark", "low_watermark",
                          "idle_ms", "writeback_inflight", "commit_ms",
                          "error_threshold"}:
    fail.append(f"tunables {sorted(o['tunables'])}")
for k in ("writeback_passes", "drains_started", "drains_completed", "metadata_seq"):
    if not isinstance(o[k], int):
        fail.append(f"{k} is not a number")
if not o["writeback_passes"] >= o["drains_started"] >= o["drains_completed"]:
    fail.append("writeback passes < drains started < drains completed")
if o["metadata"] == "persistent" and o["metadata_seq"] < 2:
    fail.append(f"metadata_seq {o['metadata_seq']} of a created and resumed cache")
for k in ("live", "volatile"):
    if not isinstance(o[k], bool):
        fail.append(f"{k} is not a boolean")
if not o["live"]:
    fail.append("not live")
for d in ("origin", "cache"):
    if not o[d]["path"] or not o[d]["path"].startswith("/dev/"):
        fail.append(f"{d} path {o[d]['path']!r}")
if fail:
    print("\n".join(fail))
    sys.exit(1)
print(f"json agrees with dmsetup: {len(o['counters'])} counters, "
      f"{len(o['tunables'])} tunables, read_hits={o['counters']['read_hits']}")
EOF
}

log "status --json against dmsetup"
json=$("$stashctl" status "$name" --json) || die "status --json"
echo "$json"
check_json "$json" || die "status --json disagrees with dmsetup"
[ "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["read_hits"])' <<<"$json")" -gt 0 ] ||
	die "no read hits counted"

log "status (human)"
out=$("$stashctl" status "$name") || die "status"
echo "$out"
assert_match "^$name \([0-9]+:[0-9]+\): writethrough, idle" "$out" "status title"
assert_match "origin +/dev/ram1 \(1:1\), 64\.0 MiB" "$out" "status origin"
assert_match "cache device +/dev/ram0 \(1:0\), [0-9.]+ MiB for data, metadata persistent" \
	"$out" "status cache"
assert_match "read hits +[0-9]+ +[0-9.]+% of [0-9]+ reads" "$out" "status read hits"
assert_match "high_watermark +60 %" "$out" "status tunable"

log "list --json"
json=$("$stashctl" list --json) || die "list --json"
obj=$(python3 -c 'import json,sys
l = json.load(sys.stdin)
m = [o for o in l if o["name"] == sys.argv[1]]
assert len(m) == 1, l
print(json.dumps(m[0]))' "$name" <<<"$json") || die "list --json does not show $name once"
check_json "$obj" || die "list --json disagrees with dmsetup"

log "stats"
out=$("$stashctl" stats "$name") || die "stats"
echo "$out"
assert_match "promotions +[1-9]" "$out" "stats promotions"
json=$("$stashctl" stats "$name" --json) || die "stats --json"
python3 - "$json" "$(dmsetup status "$name")" <<'EOF' || die "stats --json disagrees"
import json, sys
o = json.loads(sys.argv[1])
st = dict(f.split("=", 1) for f in sys.argv[2].split()[3:])
bad = [k for k, v in o["counters"].items() if str(v) != st[k]]
assert not bad and len(o["counters"]) == 13, bad
EOF
out=$("$stashctl" stats "$name" --reset) || die "stats --reset"
assert_match "counters reset" "$out" "stats --reset"
assert_match "read hits +[1-9]" "$out" "stats --reset prints before resetting"
for k in read_hits read_misses write_hits write_misses promotions; do
	assert_eq 0 "$(stash_status_field "$name" $k)" "$k after stats --reset"
done

log "get"
out=$("$stashctl" get "$name") || die "get"
echo "$out"
assert_match "^high_watermark +60 % +1\.\.100$" "$out" "get high_watermark"
assert_match "^idle_ms +2000 ms +0\.\.3600000$" "$out" "get idle_ms"
# The module's tunables are the rows stashctl was built with.
names=$("$stashctl" tunables --names) || die "tunables --names"
assert_eq "$names" "$(awk 'NR > 1 { print $1 }' <<<"$out")" "tunables listed by get"
assert_eq "$(stash_status_field "$name" idle_ms)" "$("$stashctl" get "$name" idle_ms)" "get idle_ms"
json=$("$stashctl" get "$name" --json) || die "get --json"
python3 - "$json" "$(dmsetup status "$name")" "$names" <<'EOF' || die "get --json disagrees"
import json, sys
o = json.loads(sys.argv[1])
st = dict(f.split("=", 1) for f in sys.argv[2].split()[3:])
assert list(o) == sys.argv[3].split() and all(str(v) == st[k] for k, v in o.items()), o
EOF
dmsetup message "$name" 0 set idle_ms 1234 || die "dmsetup message"
assert_eq 1234 "$("$stashctl" get "$name" idle_ms)" "get after dmsetup message"

log "status --watch"
timeout -s INT 3 "$stashctl" status "$name" --watch 0.5 >/tmp/watch.$$
n=$(grep -c "^every 0.5s: stashctl status $name" /tmp/watch.$$)
log "$n samples"
[ "$n" -ge 2 ] || die "status --watch printed $n samples"
grep -qE "read hits +[0-9]+ +[0-9.]+/s" /tmp/watch.$$ || die "status --watch shows no rates"
timeout -s INT 3 "$stashctl" status "$name" --watch 0.5 --json >/tmp/watch.$$
python3 - /tmp/watch.$$ <<'EOF' || die "status --watch --json lines are not JSON objects"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) >= 2, lines
for l in lines:
    assert json.loads(l)["mode"] == "writethrough"
EOF
rm -f /tmp/watch.$$

log "no such cache, bad arguments"
"$stashctl" status "${STASH_DM_PREFIX}nothing" 2>/tmp/err.$$
assert_eq 3 $? "status of a missing cache"
assert_match "no dm-stash cache named" "$(cat /tmp/err.$$)" "missing cache message"
"$stashctl" status "$name" --watch 0 2>/dev/null
assert_eq 2 $? "status --watch 0"
"$stashctl" status 2>/dev/null
assert_eq 2 $? "status without a name"
rm -f /tmp/err.$$

log "a loaded, inactive table does not hide the live one"
# On a volatile cache: two tables on one persistent cache device are the
# core's business, not this test's.
"$stashctl" remove "$name" >/dev/null || die "remove"
"$stashctl" create "$name" --origin $origin --cache $cache --mode writethrough \
	--volatile --format >/dev/null || die "create --volatile"
live_table=$(dmsetup table "$name")
dmsetup load "$name" --table "${live_table/writethrough/writearound}" || die "dmsetup load"
assert_match "Tables present: +LIVE & INACTIVE" "$(dmsetup info "$name")" "two tables"
assert_eq writethrough "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["mode"])' \
	<<<"$("$stashctl" status "$name" --json)")" "mode of the live table"
assert_eq 1 "$("$stashctl" list | grep -c "^$name ")" "list lines during a reload"
dmsetup resume "$name" || die "dmsetup resume"
assert_eq writearound "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["mode"])' \
	<<<"$("$stashctl" status "$name" --json)")" "mode after the resume"

log "suspended: status still answers, not live"
dmsetup suspend "$name" || die "suspend"
out=$("$stashctl" status "$name") || die "status while suspended"
assert_match "not live" "$out" "status while suspended"
dmsetup resume "$name" || die "resume"

"$stashctl" remove "$name" || die "remove"
exit 0
