#!/bin/bash
# The map is an object of its own (make lint): outside kmod/stash-map.c and
# kmod/stash-map.h, the module's code (comments aside) uses the functions of
# stash-map.h only, never the fields of struct stash_map or struct
# stash_entry, stash_map_entry(), stash_entry_oblock() or the SE_* flags.
# The unit tests and the simulator may look inside: they are not checked.
set -euo pipefail

cd "$(dirname "$0")/../.."
fail=0

for f in kmod/*.c kmod/*.h; do
	case $f in
	kmod/stash-map.c | kmod/stash-map.h | *.mod.c) continue ;;
	esac
	# Comments out (kept line numbers), then the forbidden names.
	perl -0pe 's{/\*.*?\*/}{$& =~ tr/\n//cdr}gse; s{//[^\n]*}{}g' "$f" |
		grep -nE '(->|\.)map(\.|->)[a-z_]+|\bstash_map_entry\(|\bstash_entry_oblock\(|\bstruct stash_entry\b|\bSE_[A-Z]+\b' |
		sed "s|^|$f:|" && fail=1
done
if [ $fail -ne 0 ]; then
	echo "check-map-private: the lines above reach into the map; add a function to kmod/stash-map.h" >&2
	exit 1
fi
echo "check-map-private: ok"
