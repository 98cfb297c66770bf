#!/bin/bash
# Sourced by the check-*-private.sh scripts (make lint): an object's fields
# are its own.
#
# check_private NAME WHAT HEADER REGEX OWNER...
#   Outside the OWNER files, no line of kmod/*.c or kmod/*.h (comments
#   aside, line numbers kept) may match the extended REGEX.  Prints the
#   lines that do and "NAME: ok" or a failure naming WHAT and HEADER;
#   returns 0 or 1.  Run from the top of the tree.

check_private() {
	local name=$1 what=$2 header=$3 re=$4 f o own fail=0
	shift 4
	for f in kmod/*.c kmod/*.h; do
		case $f in *.mod.c) continue ;; esac
		own=
		for o in "$@"; do
			[ "$f" = "$o" ] && own=1
		done
		[ -n "$own" ] && continue
		# Comments out (kept line numbers), then the forbidden names.
		perl -0pe 's{/\*.*?\*/}{$& =~ tr/\n//cdr}gse; s{//[^\n]*}{}g' "$f" |
			grep -nE "$re" | sed "s|^|$f:|" && fail=1
	done
	if [ $fail -ne 0 ]; then
		echo "$name: the lines above reach into $what; add a function to $header" >&2
		return 1
	fi
	echo "$name: ok"
}
