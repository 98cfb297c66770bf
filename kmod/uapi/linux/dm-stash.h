/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dm-stash: the interface shared by the kernel module and stashctl.
 *
 * The control device
 * ------------------
 * /dev/stash-control (a misc device) takes the ioctls below.  Every one
 * needs CAP_SYS_ADMIN.  The argument of each is one of the structs below;
 * they all start with
 *
 *	__u32 size;	sizeof() the struct the caller was built with
 *	__u32 version;	STASH_UAPI_VERSION the caller was built with
 *
 * The kernel rejects a size it does not know for that ioctl, a version of
 * 0 or newer than its own (VERSION takes any non-zero version, so that a
 * newer tool can still ask what the module speaks), and non-zero reserved
 * fields or flags.  Zero the whole struct before filling it in.
 *
 * Rules kept by every struct: fixed-width fields only, natural alignment
 * with explicit padding (so 32-bit callers see the same layout), __u64 for
 * user pointers, sizes that are a multiple of 8.
 *
 * A cache is chosen by a struct stash_ioc_cache: either its device-mapper
 * name or its device number, exactly one of them (a non-empty name, or a
 * non-zero major/minor).  When a device has two stash tables (a reload has
 * loaded a new table that is not resumed yet), the live one is used.
 *
 * Tables that are not live: a table that is suspended, or loaded and not
 * resumed yet (STASH_IOC_F_LIVE clear), can be read (STATUS, GET_TUNABLE,
 * LIST) but not changed: SET_MODE, FLUSH, INVALIDATE, SET_TUNABLE and
 * RESET_COUNTERS fail with EBUSY, so that no ioctl starts I/O or changes
 * a mapping while device-mapper holds the device suspended.  Retry after
 * the device is resumed.
 *
 * Errors (errno)
 * --------------
 *	ENOTTY	not an ioctl of this device
 *	EPERM	the caller lacks CAP_SYS_ADMIN
 *	EFAULT	the argument (or LIST's array) is not readable/writable
 *	EINVAL	bad size, version, reserved field, flags, selector, mode or
 *		tunable name, or a tunable value out of its range
 *	ENODEV	no stash cache has that name or device number
 *	EBUSY	the cache's table is not live (suspended, or not resumed
 *		yet) and the ioctl would change it
 *	ENOMEM	out of memory
 * An ioctl that fails changes nothing.
 */
#ifndef _UAPI_LINUX_DM_STASH_H
#define _UAPI_LINUX_DM_STASH_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define STASH_TARGET_NAME	"stash"
#define STASH_CONTROL_NAME	"stash-control"

#define STASH_VERSION_MAJOR	0
#define STASH_VERSION_MINOR	1
#define STASH_VERSION_PATCH	0

/* Version of the ioctl interface below. */
#define STASH_UAPI_VERSION	1

#define STASH_NAME_LEN		128	/* = DM_NAME_LEN, with the NUL */
#define STASH_TUNABLE_NAME_LEN	32	/* with the NUL */
#define STASH_STATE_LEN		16	/* with the NUL */

/* Write modes (struct stash_ioc_mode, status, list). */
enum stash_uapi_mode {
	STASH_UAPI_MODE_WRITEAROUND = 0,
	STASH_UAPI_MODE_WRITETHROUGH = 1,
	STASH_UAPI_MODE_WRITEBACK = 2,
};

/*
 * Cache flags (status, list).  A cache is either VOLATILE (nothing kept on
 * the cache device: suspend and removal write dirty blocks back first) or
 * keeps METADATA on the cache device (dirty blocks stay there across
 * suspend, removal and crashes); METADATA_FAILED: a metadata commit failed,
 * writes that need one are refused and so is resume.  CACHE_FAILED: the
 * cache device failed (error_threshold errors, or it is gone): I/O goes to
 * the origin and the dirty blocks are written back as far as they can be
 * read.
 */
#define STASH_IOC_F_LIVE		0x1u	/* the table is resumed, serving I/O */
#define STASH_IOC_F_VOLATILE		0x2u
#define STASH_IOC_F_METADATA		0x4u
#define STASH_IOC_F_METADATA_FAILED	0x8u
#define STASH_IOC_F_CACHE_FAILED	0x10u
#define STASH_IOC_F_CHECKSUM		0x20u	/* the 'checksum' option */

/* Which cache: a NUL-terminated name, or major:minor; exactly one. */
struct stash_ioc_cache {
	char name[STASH_NAME_LEN];
	__u32 major;
	__u32 minor;
};

/* STASH_IOC_VERSION */
struct stash_ioc_version {
	__u32 size;
	__u32 version;			/* any non-zero version */
	__u32 module_major;		/* out: the module's version */
	__u32 module_minor;		/* out */
	__u32 module_patch;		/* out */
	__u32 uapi_version;		/* out: the module's STASH_UAPI_VERSION */
	__u64 reserved[2];		/* must be zero */
};

/* One cache, as STASH_IOC_LIST reports it. */
struct stash_ioc_list_entry {
	char name[STASH_NAME_LEN];	/* the device-mapper name */
	__u32 major;			/* the dm device's number */
	__u32 minor;
	__u32 mode;			/* enum stash_uapi_mode */
	__u32 flags;			/* STASH_IOC_F_* */
	__u64 reserved;			/* zero */
};

/*
 * STASH_IOC_LIST: the kernel writes up to @capacity entries, one per
 * device, to the array at @entries and sets @count to the number of
 * caches there are; if @count > @capacity, call again with a bigger
 * array.  @capacity 0 only counts.
 */
struct stash_ioc_list {
	__u32 size;
	__u32 version;
	__u64 entries;			/* user pointer: struct stash_ioc_list_entry[] */
	__u32 capacity;			/* entries in the array */
	__u32 entry_size;		/* sizeof(struct stash_ioc_list_entry) */
	__u32 count;			/* out: number of caches */
	__u32 reserved0;		/* must be zero */
	__u64 reserved[2];		/* must be zero */
};

/*
 * For STASH_IOC_FLUSH (start writing back every dirty block and return;
 * status shows the progress), STASH_IOC_INVALIDATE (forget every clean
 * cached block) and STASH_IOC_RESET_COUNTERS.
 */
struct stash_ioc_cmd {
	__u32 size;
	__u32 version;
	struct stash_ioc_cache cache;
	__u32 flags;			/* none defined: must be zero */
	__u32 reserved0;		/* must be zero */
	__u64 reserved[2];		/* must be zero */
};

/*
 * STASH_IOC_SET_MODE.  Into writeback at once; out of writeback, writes
 * follow the new mode at once and the dirty blocks drain in the background
 * (state "draining" until they are clean).
 */
struct stash_ioc_mode {
	__u32 size;
	__u32 version;
	struct stash_ioc_cache cache;
	__u32 mode;			/* enum stash_uapi_mode */
	__u32 reserved0;		/* must be zero */
	__u64 reserved[2];		/* must be zero */
};

/*
 * The tunables: their rows are in <linux/dm-stash-tunables.h>.  Here their
 * indexes, STASH_TUN_<name> (GET_TUNABLE's @index for a module built from
 * the same rows; its @count is the module's number).
 */
#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) STASH_TUN_##name,
enum stash_tunable_index {
#include <linux/dm-stash-tunables.h>
	STASH_NR_TUNABLES
};

#undef STASH_TUNABLE

/* writeback_latency is 0 (off) or at least this (percent). */
#define STASH_WB_LATENCY_MIN_ON	100

/*
 * Where STASH_IOC_STATUS reports a tunable, from the ioc column of its row:
 * its offset in struct stash_ioc_status (a __u64), or 0 if only
 * GET_TUNABLE has it.  The user supplies offsetof().
 */
#define STASH_IOC_STATUS_AT(ioc, name)	__STASH_IOC_STATUS_AT_##ioc(name)
#define __STASH_IOC_STATUS_AT_tunables(name) \
	offsetof(struct stash_ioc_status, tunables.name)
#define __STASH_IOC_STATUS_AT_status(name) \
	offsetof(struct stash_ioc_status, name)
#define __STASH_IOC_STATUS_AT_none(name)	0

/*
 * STASH_IOC_GET_TUNABLE and STASH_IOC_SET_TUNABLE.
 *
 * GET: by @name, or, with an empty @name, by @index (0..count-1), which
 * lists the tunables.  The kernel fills in @name, @index, @count, @value
 * and the allowed range @min..@max.
 * SET: by @name, to @value; @index, @count, @min and @max must be zero.
 * The value goes through the same checks as the table line and the "set"
 * message (the range; low_watermark below high_watermark).
 */
struct stash_ioc_tunable {
	__u32 size;
	__u32 version;
	struct stash_ioc_cache cache;
	char name[STASH_TUNABLE_NAME_LEN];
	__u32 index;
	__u32 count;			/* out: number of tunables */
	__u64 value;
	__u64 min;			/* out */
	__u64 max;			/* out */
	__u64 reserved[2];		/* must be zero */
};

/* Counters, as in the dmsetup status line (see stash-target.c). */
struct stash_ioc_counters {
	__u64 read_hits;
	__u64 read_misses;
	__u64 write_hits;
	__u64 write_misses;
	__u64 promotions;
	__u64 evictions;
	__u64 invalidations;
	__u64 bypassed;
	__u64 written_back;		/* blocks */
	__u64 cache_errors;
	__u64 origin_errors;
	__u64 writeback_errors;		/* blocks */
	__u64 commits;			/* metadata commits */
};

/* Tunables, named as in the table line and the "set" message. */
struct stash_ioc_tunables {
	__u64 sequential_cutoff;	/* KiB; 0 = off */
	__u64 high_watermark;		/* percent dirty */
	__u64 low_watermark;		/* percent dirty */
	__u64 idle_ms;			/* ms; 0 = never */
	__u64 writeback_inflight;	/* writeback I/Os in flight */
	__u64 commit_ms;		/* ms between metadata commits */
};

/* STASH_IOC_STATUS: everything about one cache; "out" unless noted. */
struct stash_ioc_status {
	__u32 size;
	__u32 version;
	struct stash_ioc_cache cache;	/* in */
	char name[STASH_NAME_LEN];	/* the device-mapper name */
	__u32 major;			/* the dm device */
	__u32 minor;
	__u32 mode;			/* enum stash_uapi_mode */
	__u32 flags;			/* STASH_IOC_F_* */
	char state[STASH_STATE_LEN];	/* idle, writeback, flushing, draining */
	__u32 block_sectors;		/* 512-byte sectors per cache block */
	__u32 ram_per_block;		/* bytes of kernel RAM per cache block */
	__u32 origin_major;
	__u32 origin_minor;
	__u32 cache_major;
	__u32 cache_minor;
	__u64 target_sectors;		/* size of the stash device */
	__u64 cache_blocks;		/* blocks on the cache device */
	__u64 used_blocks;		/* of them, holding a block */
	__u64 dirty_blocks;		/* newer on the cache than the origin */
	__u64 writeback_blocks;		/* in writeback I/O now */
	__u64 writeback_rate;		/* KiB written back in the last second */
	struct stash_ioc_counters counters;
	struct stash_ioc_tunables tunables;
	/*
	 * Writeback passes started (watermark, idle, flush, mode switch,
	 * suspend), and of them the full drains started and completed, since
	 * the table was loaded; reset_counters does not zero them.
	 */
	__u64 writeback_passes;
	__u64 drains_started;
	__u64 drains_completed;
	__u64 metadata_seq;		/* sequence of the last metadata commit; 0 if volatile */
	__u64 error_threshold;		/* tunable: cache errors that fail it */
	__u64 writeback_retry_ms;	/* writeback back-off now; 0 = none */
	/* Checksums (STASH_IOC_F_CHECKSUM); in: must be zero. */
	__u64 checksum_errors;		/* cache reads that failed their checksum */
	__u64 checksum_bad;		/* dirty blocks that failed it */
};

#define STASH_IOCTL_MAGIC	0xFC	/* next to device-mapper's 0xFD */

#define STASH_IOC_VERSION	  _IOWR(STASH_IOCTL_MAGIC, 0x00, struct stash_ioc_version)
#define STASH_IOC_LIST		  _IOWR(STASH_IOCTL_MAGIC, 0x01, struct stash_ioc_list)
#define STASH_IOC_STATUS	  _IOWR(STASH_IOCTL_MAGIC, 0x02, struct stash_ioc_status)
#define STASH_IOC_SET_MODE	  _IOW(STASH_IOCTL_MAGIC, 0x03, struct stash_ioc_mode)
#define STASH_IOC_FLUSH		  _IOW(STASH_IOCTL_MAGIC, 0x04, struct stash_ioc_cmd)
#define STASH_IOC_INVALIDATE	  _IOW(STASH_IOCTL_MAGIC, 0x05, struct stash_ioc_cmd)
#define STASH_IOC_GET_TUNABLE	  _IOWR(STASH_IOCTL_MAGIC, 0x06, struct stash_ioc_tunable)
#define STASH_IOC_SET_TUNABLE	  _IOW(STASH_IOCTL_MAGIC, 0x07, struct stash_ioc_tunable)
#define STASH_IOC_RESET_COUNTERS  _IOW(STASH_IOCTL_MAGIC, 0x08, struct stash_ioc_cmd)

/* Sizes, checked by BUILD_BUG_ON in the module and _Static_assert in stashctl. */
#define STASH_IOC_CACHE_SIZE		136
#define STASH_IOC_VERSION_SIZE		40
#define STASH_IOC_LIST_ENTRY_SIZE	152
#define STASH_IOC_LIST_SIZE		48
#define STASH_IOC_CMD_SIZE		168
#define STASH_IOC_MODE_SIZE		168
#define STASH_IOC_TUNABLE_SIZE		224
#define STASH_IOC_COUNTERS_SIZE		104
#define STASH_IOC_TUNABLES_SIZE		48
#define STASH_IOC_STATUS_SIZE		592

#endif /* _UAPI_LINUX_DM_STASH_H */
