/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-stash internals shared by the target glue (stash-target.c) and the
 * I/O paths (stash-io.c).  The glossary and the lock-ordering note are at
 * the top of stash-target.c.
 */
#ifndef DM_STASH_H
#define DM_STASH_H

#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/dm-kcopyd.h>
#include <linux/bio.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <linux/wait.h>
#include <linux/atomic.h>
#include <linux/mempool.h>

#include "stash-map.h"
#include "stash-policy.h"
#include "stash-bitmap.h"
#include "stash-format.h"
#include "stash-writeback.h"
#include "stash-metadata.h"
#include "linux/dm-stash.h"

#define DM_MSG_PREFIX "stash"

enum stash_mode {
	STASH_MODE_WRITEAROUND,
	STASH_MODE_WRITETHROUGH,
	STASH_MODE_WRITEBACK,
};

/* Limits and defaults (the tunables' are in linux/dm-stash-tunables.h). */
#define STASH_DEFAULT_BLOCK_SECTORS	8	/* 4 KiB */
#define STASH_MIN_BLOCK_SECTORS		8	/* 4 KiB */
#define STASH_MAX_BLOCK_SECTORS		2048	/* 1 MiB */
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
	u64 written_back;	/* blocks copied to the origin */
	u64 writeback_errors;
	u64 commits;		/* metadata commits */
};

/* Per-CPU counters, added to struct stash_stats when read. */
struct stash_pcpu {
	u64 read_hits;
};

/*
 * Tunables: set by the table line or the "set" message, read lockless.
 * One u32 per row of linux/dm-stash-tunables.h (its field column), which
 * gives their names, ranges, defaults and meaning.
 */
struct stash_tunables {
	u32 seq_cutoff_kb;
	u32 high_wm;		/* start writeback above this percent dirty */
	u32 low_wm;		/* and stop at or below this one */
	u32 idle_ms;		/* drain after this long without I/O; 0 = never */
	u32 wb_inflight;	/* writeback runs in flight, 1..STASH_WB_SLOTS */
	u32 commit_ms;		/* periodic metadata commit */
	u32 error_threshold;	/* cache errors that fail the cache; 0 = never */
	u32 wb_latency_pct;	/* throttle target (stash-throttle.c); 0 = off */
	u32 wb_rate_kib;	/* writeback rate cap, KiB/s; 0 = none */
};

/* The defaults, from the def column. */
extern const struct stash_tunables stash_tunable_defaults;

/*
 * A tunable: its name in table lines, messages and ioctls, its range, and
 * where it lives in struct stash_tunables.  stash_tunable_descs (in
 * stash-target.c) is built from linux/dm-stash-tunables.h, indexed by
 * enum stash_tunable_index (STASH_TUN_<name>).
 */
struct stash_tunable_desc {
	const char *name;
	u32 min;
	u32 max;
	size_t offset;
};

extern const struct stash_tunable_desc stash_tunable_descs[STASH_NR_TUNABLES];
const struct stash_tunable_desc *stash_find_tunable(const char *name);

static inline u32 stash_tunable_get(const struct stash_tunables *tun,
				    const struct stash_tunable_desc *d)
{
	return *(const u32 *)((const char *)tun + d->offset);
}

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
	bool format;			/* the table says 'format' */
	bool discard_passdown;
	bool csum;			/* the table says 'checksum' (stash-csum.c) */
	char *table_opts;
	struct dm_io_client *io_client;		/* optional args as given, for TABLE */

	/* --- Guarded by lock (taken from any context: irqsave). --- */
	spinlock_t lock;
	struct stash_map map;
	struct stash_filter filter;
	struct stash_seq seq;
	u32 wip[STASH_WIP_SLOTS];	/* writes in flight per oblock hash slot */
	struct bio_list deferred;	/* bios waiting for a busy block */
	struct bio_list wt_parked;	/* write-through writes to carry (stash-io.c) */
	struct bio_list wt_next;	/* parked writes whose turn came */
	u64 writes_carried;		/* status only (not in stash_ioc_counters) */
	u64 checksum_errors;		/* cache reads that failed their checksum */
	struct bio_list fills;		/* origin reads done, cache write due */
	struct bio_list retries;	/* failed cache reads to redo on origin */
	struct bio_list discards;	/* discards to process in process context */
	struct stash_stats stats;
	/* Counted without the lock: read hits that took none. */
	struct stash_pcpu __percpu *pcpu;
	/*
	 * Checksums (sc->csum only): a crc32c per slot of the data it holds,
	 * and the dirty slots found not to match it (writeback skips them).
	 */
	u32 *csums;
	unsigned long *csum_bad;
	u32 nr_csum_bad;
	/*
	 * Persistent caches (stash-csum.c): slots recorded (or to be) open,
	 * written since their page was last encoded, and whose checksum is
	 * not known (open at a power cut: taken from the data when read).
	 */
	unsigned long *csum_open;
	unsigned long *csum_written;
	unsigned long *csum_written_before;	/* the encoding before */
	unsigned long *csum_unknown;
	unsigned long *csum_opening;	/* open in RAM, not yet on disk */
	u32 nr_csum_open;
	/*
	 * Blocks newer on the cache than on the origin.  The cache's, not
	 * writeback's (stash-writeback.h says why): the constructor
	 * allocates it and attaches it to the map (never evict a dirty
	 * block); change it with stash_set_dirty() and stash_clear_dirty().
	 */
	struct stash_bitmap dirty;

	/* --- Lockless. --- */
	bool live;			/* resumed: serves I/O (set under the registry lock) */
	/*
	 * The cache device failed (error_threshold reached, or it is gone):
	 * I/O passes to the origin except for dirty blocks.  Sticky.
	 */
	atomic_t cache_failed;		/* 0 or 1 */
	atomic_t cache_error_count;	/* cache errors since the constructor */
	struct list_head registry;	/* in the control registry (its lock) */
	struct list_head claim;		/* holds its devices (the same lock) */
	enum stash_mode mode;		/* READ_ONCE/WRITE_ONCE */
	struct stash_tunables tun;	/* READ_ONCE/WRITE_ONCE */
	unsigned long last_io;		/* jiffies of the last user I/O */
	/*
	 * Origin writes completed, and that count when the newest successful
	 * origin flush was issued: a flush with nothing new to cover
	 * completes without reaching the origin.
	 */
	atomic64_t origin_writes_done;
	atomic64_t origin_flushed;
	atomic_t nr_jobs;		/* internal copies in flight */
	wait_queue_head_t jobs_wait;

	struct workqueue_struct *wq;
	struct work_struct worker;
	struct dm_kcopyd_client *kcopyd;
	struct bio_set bs;
	mempool_t cjob_pool;		/* checksummed copies (stash-csum.c) */
	mempool_t cbuf_pool;		/* their one-block buffers */

	/* --- Writeback (stash-writeback.h). --- */
	struct stash_wb wb;

	/* --- Persistent metadata (stash-metadata.h). --- */
	struct stash_md md;

	/* Its stranded dirty blocks went to another table (stash-stranded.c). */
	bool stranded_taken;		/* under stash_stranded_lock */
};

/*
 * Control API (stash-target.c): what `dmsetup message` and the ioctls of
 * the control device both call.  Each returns 0 or -EINVAL and changes
 * nothing on error.
 */
const char *stash_mode_name(enum stash_mode mode);
int stash_set_mode(struct stash_cache *sc, const char *name);
int stash_set_tunable(struct stash_cache *sc, const char *key,
		      const char *value);
void stash_reset_counters(struct stash_cache *sc);
void stash_invalidate_clean(struct stash_cache *sc);
/* stash_wb_request_drain() (stash-writeback.h) starts a flush of all dirty blocks. */

/* A consistent-enough snapshot of a cache for the control device. */
struct stash_info {
	enum stash_mode mode;
	const char *state;
	u32 block_sectors;
	u32 nr_cblocks;
	u32 used_cblocks;
	u32 dirty;
	u32 writeback;
	u32 ram_per_block;
	u64 wb_rate;		/* blocks per second */
	u64 wb_passes;		/* writeback passes started */
	u64 drains_started;	/* of them, full drains */
	u64 drains_completed;
	u64 md_seq;		/* last metadata commit; 0 if volatile */
	u64 checksum_errors;
	u32 checksum_bad;	/* dirty blocks that failed their checksum */
	bool checksum;
	u32 wb_backoff_ms;	/* writeback retry delay now; 0 = none */
	bool is_volatile;
	bool cache_failed;
	dev_t origin_dev;
	dev_t cache_dev;
	struct stash_stats stats;
	struct stash_tunables tun;
};

void stash_get_info(struct stash_cache *sc, struct stash_info *info);

/* A cache-device I/O failed: count it; may fail the cache.  Not under sc->lock. */
void stash_cache_error(struct stash_cache *sc);

/* The mapped device @sc's table belongs to (its name, its dev_t). */
static inline struct mapped_device *stash_mapped_dev(struct stash_cache *sc)
{
	return dm_table_get_md(sc->ti->table);
}

/* The dm name of @sc's device (set from the constructor on), for messages. */
static inline const char *stash_dev_name(struct stash_cache *sc)
{
	return dm_device_name(stash_mapped_dev(sc));
}

/*
 * Kernel messages about @sc's device: "device-mapper: stash: <dm name>:
 * <message>".  Anything that can fire per I/O (per bio, run, completion or
 * commit) uses a _ratelimited form (one rate limit per call site).
 * stash_note() logs at KERN_INFO, as DMINFO() does (stash_info is the
 * struct above).
 */
#define stash_err(sc, fmt, ...) \
	DMERR("%s: " fmt, stash_dev_name(sc), ##__VA_ARGS__)
#define stash_err_ratelimited(sc, fmt, ...) \
	DMERR_LIMIT("%s: " fmt, stash_dev_name(sc), ##__VA_ARGS__)
#define stash_warn(sc, fmt, ...) \
	DMWARN("%s: " fmt, stash_dev_name(sc), ##__VA_ARGS__)
#define stash_warn_ratelimited(sc, fmt, ...) \
	DMWARN_LIMIT("%s: " fmt, stash_dev_name(sc), ##__VA_ARGS__)
#define stash_note(sc, fmt, ...) \
	DMINFO("%s: " fmt, stash_dev_name(sc), ##__VA_ARGS__)

/*
 * A count of things in flight whose waiter frees what the count and its
 * wait queue live in once it sees 0 (runs, internal copies).  The count
 * drops and the waiters are woken under the queue's lock, and
 * stash_wait_gone() takes that lock once it has seen 0: when it returns,
 * no wake-up still uses them.  stash_dec_wake(): any context.
 */
static inline void stash_dec_wake(atomic_t *count, wait_queue_head_t *wq)
{
	unsigned long flags;

	spin_lock_irqsave(&wq->lock, flags);
	atomic_dec(count);
	wake_up_locked(wq);
	spin_unlock_irqrestore(&wq->lock, flags);
}

/* Sleeps until @count is 0 and its last stash_dec_wake() is out. */
static inline void stash_wait_gone(atomic_t *count, wait_queue_head_t *wq)
{
	wait_event(*wq, !atomic_read(count));
	spin_lock_irq(&wq->lock);
	spin_unlock_irq(&wq->lock);
}

/* stash-control.c: the registry of caches and /dev/stash-control. */
int stash_registry_add(struct stash_cache *sc);
void stash_registry_remove(struct stash_cache *sc);
void stash_registry_set_live(struct stash_cache *sc, bool live);
int stash_claim_devices(struct stash_cache *sc, bool *shared);
void stash_release_devices(struct stash_cache *sc);
int stash_control_init(void);
void stash_control_exit(void);

/*
 * The metadata (stash-metadata.h).  Something may need a commit soon (user
 * I/O, a writeback run, a message): a parked commit timer runs again.
 * Cheap when it runs.  Any context, not under sc->lock.
 */
static inline void stash_md_note_io(struct stash_cache *sc)
{
	/* Pairs with the barrier after commit_timer_fn() parks the timer. */
	smp_mb();
	if (unlikely(stash_md_timer_parked(&sc->md)))
		stash_md_wake_timer(sc);
}

/* stash-stranded.c */
int stash_stranded_add(struct stash_cache *sc);
void stash_stranded_reclaim(struct stash_cache *sc);
bool stash_stranded_forget(struct stash_cache *sc);
int stash_stranded_check(struct stash_cache *sc, bool format);
void stash_stranded_drop(struct stash_cache *sc);
void stash_stranded_adopt(struct stash_cache *sc);

/* stash-csum.c: a copy through a private buffer, and what ended it. */
struct stash_cjob;
typedef void (*stash_cjob_fn)(struct stash_cjob *job);

struct stash_cjob {
	struct stash_cache *sc;
	struct bio *bio;		/* the user's bio (none for a fill) */
	struct bvec_iter iter;		/* its data */
	cblock_t cblock;
	unsigned int offset;		/* bytes into the block of that data */
	u32 crc;			/* of the block written to the slot */
	bool cache_error;		/* a cache device I/O failed */
	bool origin_error;		/* the origin read (fill) failed */
	bool mismatch;			/* the slot's data failed its checksum */
	bool adopt;			/* its checksum was not known: @crc is it */
	void *buf;			/* one block */
	stash_cjob_fn done;		/* runs once, any context; then freed */
	struct work_struct work;
};

u32 stash_csum_buf(const void *buf, size_t len);
u32 stash_csum_bio(struct bio *bio, struct bvec_iter iter);
void stash_csum_set_locked(struct stash_cache *sc, cblock_t c, u32 crc);
void stash_csum_mark_bad_locked(struct stash_cache *sc, cblock_t c);
/* Fill busy slot @c with origin block @ob. */
void stash_csum_fill(struct stash_cache *sc, oblock_t ob, cblock_t c,
		     stash_cjob_fn done);
/*
 * Write @iter of @bio (within one block) to busy slot @c; a partial block
 * needs @slot_valid (it is merged with the slot's data, checked first).
 */
void stash_csum_write(struct stash_cache *sc, struct bio *bio,
		      struct bvec_iter iter, cblock_t c, bool slot_valid,
		      stash_cjob_fn done);
/* Read slot @c, check it, and copy the part @bio asks for into it. */
void stash_csum_read(struct stash_cache *sc, struct bio *bio, cblock_t c,
		     stash_cjob_fn done);
bool stash_csum_check_block_locked(struct stash_cache *sc, u32 c,
				   const void *buf);
bool stash_csum_known(struct stash_cache *sc, cblock_t c);
void stash_csum_adopt_locked(struct stash_cache *sc, cblock_t c, u32 crc);
void stash_csum_load(struct stash_cache *sc, cblock_t c, bool open, u32 crc);
bool stash_csum_open_locked(struct stash_cache *sc, cblock_t c);
bool stash_csum_must_open(struct stash_cache *sc, cblock_t c);
void stash_csum_encode_locked(struct stash_cache *sc, cblock_t c, bool clean,
			      u64 *entry, u32 *crc);
void stash_csum_touch_open(struct stash_cache *sc);
void stash_csum_forget_locked(struct stash_cache *sc, cblock_t c);
void stash_csum_committed_locked(struct stash_cache *sc, cblock_t c, u64 entry);
int stash_csum_create(struct stash_cache *sc);
void stash_csum_destroy(struct stash_cache *sc);
int stash_csum_init(void);
void stash_csum_exit(void);

/*
 * The writeback throttle's timing of user I/O (stash-writeback.h).  A user
 * read or write of @sectors starts: its start time, for
 * stash_throttle_end(), or 0 if it is not timed (the throttle is off, no
 * writeback can run, or a large I/O).  Any context.
 */
static inline u64 stash_throttle_start(struct stash_cache *sc, u32 sectors)
{
	if (!READ_ONCE(sc->tun.wb_latency_pct) ||
	    sectors > STASH_THROTTLE_MAX_SECTORS ||
	    (READ_ONCE(sc->mode) != STASH_MODE_WRITEBACK &&
	     !READ_ONCE(sc->dirty.nr_set)))
		return 0;
	return stash_throttle_time(&sc->wb);
}

/* stash-io.c */
void stash_kick_worker(struct stash_cache *sc);
void stash_submit_flushes(struct stash_cache *sc, struct bio_list *flushes,
			  bool failed);
void stash_flush_failed(struct stash_cache *sc, struct bio *bio);
bool stash_commit_waiter_done(struct stash_cache *sc, struct bio *bio,
			      bool failed);
int stash_map_bio(struct dm_target *ti, struct bio *bio);
int stash_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error);
void stash_do_work(struct work_struct *ws);
void stash_job_done(struct stash_cache *sc);
void stash_wait_for_jobs(struct stash_cache *sc);
size_t stash_per_bio_data_size(void);
int stash_io_init(void);
void stash_io_exit(void);

/*
 * Under sc->lock: mark @c dirty; true if it was clean.  Only a change
 * touches the metadata page: rewriting a dirty block changes nothing the
 * next commit records.
 */
static inline bool stash_set_dirty(struct stash_cache *sc, u32 c)
{
	if (!stash_bitmap_set(&sc->dirty, c))
		return false;
	stash_map_touch(&sc->map, to_cblock(c));
	return true;
}

/*
 * Under sc->lock: mark @c clean; true if it was dirty.  A checksum failure
 * marks only dirty blocks bad: a clean one is read from the origin.
 */
static inline bool stash_clear_dirty(struct stash_cache *sc, u32 c)
{
	if (sc->csum_bad && __test_and_clear_bit(c, sc->csum_bad))
		sc->nr_csum_bad--;
	stash_map_touch(&sc->map, to_cblock(c));
	stash_map_note_reusable(&sc->map);
	return stash_bitmap_clear(&sc->dirty, c);
}

/* Under sc->lock: has the cache more dirty blocks than @pct percent? */
static inline bool stash_dirty_above(struct stash_cache *sc, u32 pct)
{
	return (u64)sc->dirty.nr_set * 100 > (u64)pct * sc->nr_cblocks;
}

/*
 * An origin flush issued when origin_writes_done was @covers completed:
 * raise origin_flushed to it, never lower.
 */
static inline void stash_origin_flushed(struct stash_cache *sc, s64 covers)
{
	s64 old = atomic64_read(&sc->origin_flushed);

	while (old < covers) {
		s64 seen = atomic64_cmpxchg(&sc->origin_flushed, old, covers);

		if (seen == old)
			break;
		old = seen;
	}
}

static inline bool stash_cache_failed(struct stash_cache *sc)
{
	return atomic_read(&sc->cache_failed);
}

static inline oblock_t stash_oblock_of(struct stash_cache *sc,
				       sector_t origin_sector)
{
	return to_oblock(origin_sector >> sc->block_shift);
}

#endif /* DM_STASH_H */
