/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-stash internals shared by the target glue (stash-target.c) and the
 * I/O paths (stash-io.c).  The glossary and the lock-ordering note are at
 * the top of stash-target.c.
 */
#ifndef DM_STASH_H
#define DM_STASH_H

#include <linux/device-mapper.h>
#include <linux/dm-kcopyd.h>
#include <linux/bio.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <linux/wait.h>
#include <linux/atomic.h>

#include "stash-map.h"
#include "stash-policy.h"

#define DM_MSG_PREFIX "stash"

enum stash_mode {
	STASH_MODE_WRITEAROUND,
	STASH_MODE_WRITETHROUGH,
	STASH_MODE_WRITEBACK,
};

/* Tunable defaults and limits. */
#define STASH_DEFAULT_BLOCK_SECTORS	8	/* 4 KiB */
#define STASH_MIN_BLOCK_SECTORS		8	/* 4 KiB */
#define STASH_MAX_BLOCK_SECTORS		2048	/* 1 MiB */
#define STASH_DEFAULT_SEQ_CUTOFF_KB	4096
#define STASH_MAX_SEQ_CUTOFF_KB		(4u << 20)	/* 4 GiB */
#define STASH_MIN_CBLOCKS		16
/* Slots of the in-flight-write table (power of two). */
#define STASH_WIP_SLOTS			1024

/*
 * Counters.  Written under sc->lock, read without it by status (a torn
 * read is impossible for u64 on the 64-bit machines we build for, and a
 * slightly stale figure is fine).
 */
struct stash_stats {
	u64 read_hits;
	u64 read_misses;
	u64 write_hits;
	u64 write_misses;
	u64 promotions;
	u64 evictions;
	u64 invalidations;
	u64 bypassed;
	u64 cache_errors;
	u64 origin_errors;
};

struct stash_cache {
	struct dm_target *ti;

	/* --- Immutable after the constructor. --- */
	struct dm_dev *origin_dev;
	struct dm_dev *cache_dev;
	sector_t block_sectors;
	unsigned int block_shift;
	sector_t data_start;		/* first data sector on the cache device */
	u32 nr_cblocks;
	u64 nr_oblocks;			/* whole blocks of the origin we may cache */
	bool is_volatile;
	bool discard_passdown;
	char *table_opts;		/* optional args as given, for TABLE */

	/* --- Guarded by lock (taken from any context: irqsave). --- */
	spinlock_t lock;
	struct stash_map map;
	struct stash_filter filter;
	struct stash_seq seq;
	u32 wip[STASH_WIP_SLOTS];	/* writes in flight per oblock hash slot */
	struct bio_list deferred;	/* bios waiting for a busy block */
	struct bio_list fills;		/* origin reads done, cache write due */
	struct bio_list retries;	/* failed cache reads to redo on origin */
	struct bio_list discards;	/* discards to process in process context */
	struct stash_stats stats;

	/* --- Lockless. --- */
	enum stash_mode mode;		/* READ_ONCE/WRITE_ONCE */
	atomic_t nr_jobs;		/* internal copies in flight */
	wait_queue_head_t jobs_wait;

	struct workqueue_struct *wq;
	struct work_struct worker;
	struct dm_kcopyd_client *kcopyd;
	struct bio_set bs;
};

/* stash-io.c */
int stash_map_bio(struct dm_target *ti, struct bio *bio);
int stash_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error);
void stash_do_work(struct work_struct *ws);
void stash_wait_for_jobs(struct stash_cache *sc);
size_t stash_per_bio_data_size(void);
int stash_io_init(void);
void stash_io_exit(void);

static inline oblock_t stash_oblock_of(struct stash_cache *sc,
				       sector_t origin_sector)
{
	return to_oblock(origin_sector >> sc->block_shift);
}

#endif /* DM_STASH_H */
