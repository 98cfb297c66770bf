#!/bin/bash
# The tunables' documentation against their table (make lint).  Each row
# "stashctl tunables" prints (kmod/uapi/linux/dm-stash-tunables.h) has
#  - an entry in stashctl.8's TUNABLES section whose first line gives the
#    end of its range and its default;
#  - a row "| `name <unit>` | ... | default |" in docs/table.md's optional
#    arguments, and a place in its "set" message row;
# and stashctl.8 has no tunable the table does not.  STASHCTL=... picks the
# stashctl (default: userspace-tools/stashctl, built).
set -euo pipefail

cd "$(dirname "$0")/../.."
stashctl=${STASHCTL:-userspace-tools/stashctl}
man=userspace-tools/stashctl.8
doc=docs/table.md
fail=0

bad() {
	echo "check-tunables-docs: $*" >&2
	fail=1
}

rows=$("$stashctl" tunables | tail -n +2)
[ -n "$rows" ] || { bad "$stashctl tunables printed nothing"; exit 1; }
man_sec=$(sed -n '/^\.SH TUNABLES/,/^\.SH [^T]/p' "$man")
set_row=$(grep -E '^\| `set <tunable> <value>`' "$doc" || true)
[ -n "$set_row" ] || bad "$doc: no 'set <tunable> <value>' row"

while read -r name range def _; do
	max=${range#*..}
	first=$(awk -v n="$name" '$0 == ".B " n { getline; print; exit }' <<<"$man_sec")
	if [ -z "$first" ]; then
		bad "$man: no '.B $name' under TUNABLES"
	elif [[ $first != *"..$max;"* || $first != *"default $def."* ]]; then
		bad "$man: $name: '$first' (want ..$max; and default $def.)"
	fi
	line=$(grep -E "^\| \`$name <" "$doc" || true)
	if [ -z "$line" ]; then
		bad "$doc: no row for $name"
	elif [[ $line != *"| $def |" ]]; then
		bad "$doc: $name: the row does not end in its default, | $def |"
	fi
	[[ $set_row == *"\`$name\`"* ]] || bad "$doc: the set row does not name $name"
done <<<"$rows"

names=$(awk '{ print $1 }' <<<"$rows")
for n in $(awk 'p == ".TP" && /^\.B [a-z_]+$/ { print $2 } { p = $0 }' <<<"$man_sec"); do
	grep -qx "$n" <<<"$names" || bad "$man: TUNABLES has $n, the table does not"
done
exit $fail
