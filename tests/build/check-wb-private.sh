#!/bin/bash
# Writeback is an object of its own (make lint): outside
# kmod/stash-writeback.c, kmod/stash-throttle.c and kmod/stash-writeback.h,
# the module's code (comments aside) uses the functions of
# stash-writeback.h only, never the fields of struct stash_wb (sc->wb), a
# pointer to one, nor writeback's run and throttle types.
set -euo pipefail

cd "$(dirname "$0")/../.."
fail=0

for f in kmod/*.c kmod/*.h; do
	case $f in
	kmod/stash-writeback.c | kmod/stash-throttle.c | kmod/stash-writeback.h | *.mod.c) continue ;;
	esac
	# Comments out (kept line numbers), then the forbidden names.
	perl -0pe 's{/\*.*?\*/}{$& =~ tr/\n//cdr}gse; s{//[^\n]*}{}g' "$f" |
		grep -nE '\bwb(\.|->)[a-z_]+|\bstruct stash_wb[[:space:]]*\*|\bstruct (stash_wb_run|stash_throttle|stash_lat)\b' |
		sed "s|^|$f:|" && fail=1
done
if [ $fail -ne 0 ]; then
	echo "check-wb-private: the lines above reach into writeback; add a function to kmod/stash-writeback.h" >&2
	exit 1
fi
echo "check-wb-private: ok"
