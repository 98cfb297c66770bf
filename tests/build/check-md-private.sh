#!/bin/bash
# The persistent metadata is an object of its own (make lint): outside
# kmod/stash-metadata.c and kmod/stash-metadata.h, the module's code
# (comments aside) uses the functions of stash-metadata.h only, never the
# fields of struct stash_md (sc->md), a pointer to one, the commit timer's
# states (STASH_TIMER_*) nor what the constructor writes last
# (STASH_MD_KEEP, _FORMAT, _ERASE).
set -euo pipefail

cd "$(dirname "$0")/../.."
. tests/build/private-fields.sh

check_private check-md-private "the metadata" kmod/stash-metadata.h \
	'\bmd(\.|->)[a-z_]+|\bstruct stash_md[[:space:]]*\*|\bSTASH_TIMER_[A-Z]+\b|\bSTASH_MD_(KEEP|FORMAT|ERASE)\b' \
	kmod/stash-metadata.c kmod/stash-metadata.h
