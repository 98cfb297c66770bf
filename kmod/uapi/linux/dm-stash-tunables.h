/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dm-stash: the tunables, one row each.  The module, stashctl, the ioctl
 * tests and tests/tools/dm-fuzz.py all take them from here.
 *
 * This file has no include guard: define
 *
 *	STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc)
 *
 * include it, and undefine the macro again.  Each row is one call, in the
 * tunables' order: that of the ioctls' indexes (STASH_IOC_GET_TUNABLE),
 * of "stashctl tunables" and of the options a persistent cache records
 * for "stashctl assemble".  Append new rows at the end.
 *
 *   name   the name in table lines, "set" messages, the ioctls and the
 *          status line; an identifier (#name is the string)
 *   field  its u32 in the module's struct stash_tunables (kmod/dm-stash.h)
 *   min, max  the values taken, both included
 *   def    the value when the table line does not give one
 *   unit   a string: "KiB", "%", "ms", "KiB/s", or "" for a count
 *   ioc    where STASH_IOC_STATUS reports it, a layout that cannot change:
 *          tunables (the member of its name in struct stash_ioc_tunables),
 *          status (the member of its name in struct stash_ioc_status) or
 *          none (only STASH_IOC_GET_TUNABLE); a new tunable is none
 *   doc    what it does, one line
 *
 * min, max and def are plain integer literals and doc one string literal:
 * dm-fuzz.py reads this file when there is no stashctl to ask.
 *
 * Two rules go beyond the ranges; the module's parse_tunable() applies
 * them: writeback_latency is 0 (off) or at least
 * STASH_WB_LATENCY_MIN_ON, and low_watermark stays below high_watermark.
 * The status line shows the tunables in groups between other fields
 * (stash_status()); a new one shows after writeback_rate_cap.
 */
STASH_TUNABLE(sequential_cutoff, seq_cutoff_kb, 0, 4194304, 4096, "KiB", tunables,
	      "streams longer than this bypass the cache; 0 = off")
STASH_TUNABLE(high_watermark, high_wm, 1, 100, 50, "%", tunables,
	      "writeback starts above this share of dirty blocks; 100 holds it off")
STASH_TUNABLE(low_watermark, low_wm, 0, 99, 10, "%", tunables,
	      "watermark writeback stops at this share; below high_watermark")
STASH_TUNABLE(idle_ms, idle_ms, 0, 3600000, 2000, "ms", tunables,
	      "write back everything after this long without I/O; 0 = never")
STASH_TUNABLE(writeback_inflight, wb_inflight, 1, 8, 8, "", tunables,
	      "writeback I/Os in flight at most")
STASH_TUNABLE(commit_ms, commit_ms, 1, 60000, 1000, "ms", tunables,
	      "interval of the periodic metadata commit (persistent caches)")
STASH_TUNABLE(error_threshold, error_threshold, 0, 1000000000, 64, "", status,
	      "cache-device errors that fail the cache; 0 = never")
STASH_TUNABLE(writeback_latency, wb_latency_pct, 0, 10000, 200, "%", none,
	      "foreground latency allowed during writeback, % of it without; 0 = off, else >= 100")
STASH_TUNABLE(writeback_rate_cap, wb_rate_kib, 0, 1073741824, 0, "KiB/s", none,
	      "a cap on the writeback rate; 0 = none")
