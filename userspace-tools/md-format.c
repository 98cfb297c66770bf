// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl: the module's on-disk format code (geometry, decoding and
 * validation of superblocks and metadata pages), built into the tool so
 * that the offline commands (offline.c) judge a cache device exactly as
 * the kernel does.
 */
#define _DEFAULT_SOURCE		/* htole32() and friends in <endian.h> */

#include "../kmod/stash-format.c"
