// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash I/O paths: one function per mode and direction, each returning a
 * stash_action that the single switch in stash_dispatch() acts on.
 *
 * Coherence between a promotion and a write to the same block
 * ------------------------------------------------------------
 * We use per-block locking plus a generation check, in this way:
 *  - A block being filled (promotion) or written through is SE_BUSY; reads
 *    and writes-through that find it busy wait on sc->deferred and are
 *    dispatched again when it becomes idle.
 *  - A write that must not wait (write-around, or a write-through that
 *    finds a fill in progress) invalidates the entry instead: it is
 *    unhashed and marked SE_STALE, and the fill, on completion, frees the
 *    slot instead of making it valid.  That is the generation check.
 *  - A read miss never starts a promotion while a write to the same block is
 *    in flight to the origin (sc->wip counts those writes per hash slot;
 *    a collision only costs a skipped promotion), because the fill could
 *    read the origin before that write lands and install the old data.
 * Together: no fill that could have read data older than an acknowledged
 * (or in-flight) write ever becomes valid.
 *
 * Two write-through writes to one cached block never run at once, or the
 * origin and the cache could apply them in different orders and disagree.
 * So that a hot block does not queue its writes one behind another, the
 * whole-block writes that arrive while one runs are parked together and,
 * when it ends, the newest of them is written for all of them: they were
 * all in flight at once, so the device may order them with it last.
 */
#include <linux/module.h>
#include <linux/blkdev.h>
#include <linux/sched.h>

#include "dm-stash.h"

/* What a bio needs undone at completion. */
enum stash_bio_kind {
	PB_PLAIN,	/* nothing */
	PB_READ_HIT,	/* a pin on pb->cblock */
	PB_FILL,	/* an origin read of a whole block to install in pb->cblock */
	PB_WRITE_ORIGIN,	/* wip counts of pb->wip_blocks blocks from pb->wip_first */
	PB_WRITE_HIT,	/* write-through hit: pb->cblock is busy, a cache clone runs */
	PB_WB_WRITE,	/* write-back: pb->cblock is busy and dirty */
	PB_ORIGIN_FLUSH,	/* an origin flush covering pb->flush_covers writes */
	PB_DONE,	/* the target finished its work; completion passes */
};

struct stash_bio {
	struct stash_cache *sc;
	cblock_t cblock;
	oblock_t wip_first;
	u32 wip_blocks;
	u8 kind;
	bool cache_failed;
	bool was_dirty;		/* PB_WB_WRITE: the block was dirty before */
	bool was_valid;		/* PB_WB_WRITE: the slot held data before */
	bool to_origin;		/* last remapped to the origin */
	/* A read hit whose checksum failed: read again with the block busy. */
	bool recheck;
	/* Waits for a commit that records its slot open, then goes again. */
	bool open_wait;
	s64 flush_covers;	/* PB_ORIGIN_FLUSH: origin_writes_done at issue */
	u64 start_ns;		/* for the writeback throttle; 0: not measured */
	struct bvec_iter saved_iter;
	struct bio_list absorbed;	/* PB_WRITE_HIT: writes this one carries */
};

enum stash_action {
	STASH_REMAP_ORIGIN,	/* send the bio to the origin */
	STASH_REMAP_CACHE,	/* send the bio to its slot (or, empty, the cache) */
	STASH_DEFER,		/* park until a busy block becomes idle */
	STASH_QUEUED,		/* handed to the worker */
	STASH_SUBMITTED,	/* the path submitted or completed it itself */
	STASH_KILL,		/* fail it with an I/O error */
};

/* A copy the target runs on its own (partial-block promotion). */
struct stash_job {
	struct stash_cache *sc;
	cblock_t cblock;
};

static struct kmem_cache *stash_job_cache;

size_t stash_per_bio_data_size(void)
{
	return sizeof(struct stash_bio);
}

static struct stash_bio *pb_of(struct bio *bio)
{
	return dm_per_bio_data(bio, sizeof(struct stash_bio));
}

/* What completion undoes: nothing yet. */
static void pb_init(struct stash_cache *sc, struct bio *bio)
{
	struct stash_bio *pb = pb_of(bio);

	pb->sc = sc;
	pb->kind = PB_PLAIN;
	pb->cblock = STASH_NO_CBLOCK;
	pb->to_origin = false;
	bio_list_init(&pb->absorbed);
}

static u32 wip_slot_of(oblock_t ob)
{
	return hash_64(from_oblock(ob), ilog2(STASH_WIP_SLOTS));
}

static sector_t cache_sector(struct stash_cache *sc, cblock_t c,
			     sector_t origin_sector)
{
	return sc->data_start + (from_cblock(c) << sc->block_shift) +
	       (origin_sector & (sc->block_sectors - 1));
}

void stash_kick_worker(struct stash_cache *sc)
{
	queue_work(sc->wq, &sc->worker);
}

/*
 * Called under sc->lock after a block stopped being busy: wakes writeback
 * if it waits for one (stash_wb_block_released()).  Returns true if the
 * worker has deferred bios.
 */
static bool wake_deferred_locked(struct stash_cache *sc)
{
	stash_wb_block_released(&sc->wb);
	return !bio_list_empty(&sc->deferred);
}

static void queue_bio(struct stash_cache *sc, struct bio_list *list,
		      struct bio *bio)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	bio_list_add(list, bio);
	spin_unlock_irqrestore(&sc->lock, flags);
	stash_kick_worker(sc);
}

/*
 * ---- Promotion ----
 */

/*
 * Called under sc->lock on a read miss, or a write-through miss that
 * covers its block: decide whether to bring the block in and, if so, take
 * a slot.  Returns the (busy) slot or STASH_NO_CBLOCK.
 *
 * The decision is stash_policy_decide()'s (stash-policy.c), which the
 * policy simulator (bench/sim) runs too: the promotion filter keeps one-off
 * blocks from displacing the hot set; while free slots remain nothing can
 * be displaced, so the first miss promotes.  What only the module knows,
 * a failed cache and writes in flight, comes in as @blocked.
 */
static cblock_t promote_decide_locked(struct stash_cache *sc, oblock_t ob,
				      bool sequential)
{
	bool blocked = stash_cache_failed(sc) || sc->wip[wip_slot_of(ob)];
	cblock_t c;
	u64 evicted;

	switch (stash_policy_decide(&sc->filter, &sc->map, ob, sequential,
				    blocked)) {
	case STASH_PROMOTE_BYPASS:
		sc->stats.bypassed++;
		return STASH_NO_CBLOCK;
	case STASH_PROMOTE_NO:
		return STASH_NO_CBLOCK;
	case STASH_PROMOTE_YES:
		break;
	}

	c = stash_map_alloc(&sc->map, ob, &evicted);
	if (cblock_is_valid(c) && evicted != STASH_NO_OBLOCK)
		sc->stats.evictions++;
	return c;
}

/*
 * The slot of a finished (@ok) or failed fill: valid unless invalidated
 * meanwhile.  The caller counts errors.
 */
static void fill_complete(struct stash_cache *sc, cblock_t c, bool ok)
{
	unsigned long flags;
	bool kick;

	spin_lock_irqsave(&sc->lock, flags);
	if (ok && !stash_map_is_stale(&sc->map, c)) {
		stash_map_set_valid(&sc->map, c);
		sc->stats.promotions++;
	} else {
		stash_map_invalidate(&sc->map, c);
	}
	stash_map_release(&sc->map, c, true);
	kick = wake_deferred_locked(sc);
	spin_unlock_irqrestore(&sc->lock, flags);
	if (kick)
		stash_kick_worker(sc);
}

static void fill_copy_done(int read_err, unsigned long write_err, void *context)
{
	struct stash_job *job = context;
	struct stash_cache *sc = job->sc;

	if (read_err || write_err) {
		unsigned long flags;

		spin_lock_irqsave(&sc->lock, flags);
		if (read_err)
			sc->stats.origin_errors++;
		if (write_err)
			sc->stats.cache_errors++;
		spin_unlock_irqrestore(&sc->lock, flags);
		if (write_err)
			stash_cache_error(sc);
	}
	fill_complete(sc, job->cblock, !read_err && !write_err);
	kmem_cache_free(stash_job_cache, job);
	stash_job_done(sc);
}

/* A read that covers only part of the block: copy the whole block. */
static void fill_by_copy(struct stash_cache *sc, oblock_t ob, cblock_t c)
{
	struct dm_io_region from, to;
	struct stash_job *job;

	job = kmem_cache_alloc(stash_job_cache, GFP_NOIO);
	if (!job) {
		fill_complete(sc, c, false);
		return;
	}
	job->sc = sc;
	job->cblock = c;
	from.bdev = sc->origin_dev->bdev;
	from.sector = from_oblock(ob) << sc->block_shift;
	from.count = sc->block_sectors;
	to.bdev = sc->cache_dev->bdev;
	to.sector = cache_sector(sc, c, 0);
	to.count = sc->block_sectors;
	atomic_inc(&sc->nr_jobs);
	dm_kcopyd_copy(sc->kcopyd, &from, 1, &to, 0, fill_copy_done, job);
}

static void fill_write_endio(struct bio *clone)
{
	struct bio *bio = clone->bi_private;
	struct stash_bio *pb = pb_of(bio);
	struct stash_cache *sc = pb->sc;

	if (clone->bi_status) {
		unsigned long flags;

		spin_lock_irqsave(&sc->lock, flags);
		sc->stats.cache_errors++;
		spin_unlock_irqrestore(&sc->lock, flags);
		stash_cache_error(sc);
	}
	fill_complete(sc, pb->cblock, !clone->bi_status);
	bio_put(clone);
	pb->kind = PB_DONE;
	bio_endio(bio);
}

/* A checksummed fill ended (stash_csum_fill()). */
static void fill_csum_done(struct stash_cjob *job)
{
	struct stash_cache *sc = job->sc;
	bool ok = !job->cache_error && !job->origin_error;
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	if (job->origin_error)
		sc->stats.origin_errors++;
	if (job->cache_error)
		sc->stats.cache_errors++;
	if (ok)
		stash_csum_set_locked(sc, job->cblock, job->crc);
	spin_unlock_irqrestore(&sc->lock, flags);
	if (job->cache_error)
		stash_cache_error(sc);
	fill_complete(sc, job->cblock, ok);
}

/*
 * The origin read of a whole block is done: write the same pages to the
 * slot, then complete the user's read.  Runs in the worker.
 */
static void fill_by_reuse(struct stash_cache *sc, struct bio *bio)
{
	struct stash_bio *pb = pb_of(bio);
	struct bio *clone;

	bio->bi_iter = pb->saved_iter;
	clone = bio_alloc_clone(sc->cache_dev->bdev, bio, GFP_NOIO, &sc->bs);
	clone->bi_opf = REQ_OP_WRITE;
	clone->bi_iter.bi_sector = cache_sector(sc, pb->cblock, 0);
	clone->bi_end_io = fill_write_endio;
	clone->bi_private = bio;
	submit_bio_noacct(clone);
}

/*
 * ---- Reads (the same in every mode) ----
 */

/*
 * Under sc->lock: the busy flag of slot @c goes (or passes to a parked
 * write-through write).  Returns true if the worker has work.
 */
static bool wt_next_carrier_locked(struct stash_cache *sc, cblock_t c);

static bool release_busy_locked(struct stash_cache *sc, cblock_t c)
{
	bool kick = wt_next_carrier_locked(sc, c);

	if (!kick)
		stash_map_release(&sc->map, c, true);
	return kick | wake_deferred_locked(sc);
}

/* A checked read of a block (stash_csum_read()) ended. */
static void csum_read_done(struct stash_cjob *job)
{
	struct stash_cache *sc = job->sc;
	struct bio *bio = job->bio;
	struct stash_bio *pb = pb_of(bio);
	cblock_t c = job->cblock;
	unsigned long flags;
	bool dirty, kick;

	pb->kind = PB_DONE;
	if (!job->cache_error && !job->mismatch) {
		spin_lock_irqsave(&sc->lock, flags);
		if (job->adopt)
			stash_csum_adopt_locked(sc, c, job->crc);
		kick = release_busy_locked(sc, c);
		spin_unlock_irqrestore(&sc->lock, flags);
		if (kick)
			stash_kick_worker(sc);
		bio_endio(bio);
		return;
	}

	spin_lock_irqsave(&sc->lock, flags);
	sc->stats.cache_errors++;
	dirty = stash_bitmap_test(&sc->dirty, from_cblock(c));
	if (job->mismatch) {
		sc->checksum_errors++;
		if (dirty)
			stash_csum_mark_bad_locked(sc, c);
	}
	if (!dirty) {
		stash_map_invalidate(&sc->map, c);
		sc->stats.invalidations++;
	}
	kick = release_busy_locked(sc, c);
	spin_unlock_irqrestore(&sc->lock, flags);
	if (kick)
		stash_kick_worker(sc);
	stash_cache_error(sc);
	if (job->mismatch)
		stash_err_ratelimited(sc, "checksum mismatch on %s block %llu (cache block %llu)%s",
				      dirty ? "dirty" : "clean",
				      (unsigned long long)(dm_target_offset(sc->ti,
						  job->iter.bi_sector) >> sc->block_shift),
				      (unsigned long long)from_cblock(c),
				      dirty ? ": I/O error" : ": reading the origin instead");
	else
		stash_err_ratelimited(sc, "cache read error on a %s block",
				      dirty ? "dirty" : "clean");
	if (dirty) {
		/* The data exists nowhere else: the user sees the error. */
		bio->bi_status = BLK_STS_IOERR;
		bio_endio(bio);
		return;
	}
	queue_bio(sc, &sc->retries, bio);
}

/*
 * Under sc->lock: a read hit on valid slot @c that is checked through a
 * buffer (part of a block, or a second look after a mismatch).  The block
 * is held busy, so that no write changes it under the check; while it is
 * busy already, @bio waits.  Returns true if the caller must now start the
 * read (stash_csum_read()).
 */
static bool csum_read_begin_locked(struct stash_cache *sc, struct bio *bio,
				   cblock_t c)
{
	if (stash_map_is_busy(&sc->map, c)) {
		bio_list_add(&sc->deferred, bio);
		return false;
	}
	stash_map_set_busy(&sc->map, c);
	if (!pb_of(bio)->recheck)
		sc->stats.read_hits++;
	return true;
}

/*
 * A read hit's pin goes (without the lock): if it was the last one that
 * an invalidation, the clock or a waiting read cared about, finish under
 * the lock.
 */
static void read_hit_unpin(struct stash_cache *sc, cblock_t c)
{
	unsigned long flags;
	bool kick;

	/* The common case takes no lock: see stash_map_unpin(). */
	if (!stash_map_unpin(&sc->map, c))
		return;
	spin_lock_irqsave(&sc->lock, flags);
	stash_map_unpinned(&sc->map, c);
	/* A read may wait for a pin (STASH_MAX_PINS). */
	kick = wake_deferred_locked(sc);
	spin_unlock_irqrestore(&sc->lock, flags);
	if (kick)
		stash_kick_worker(sc);
}

/*
 * A read hit without the cache's lock: the slot found and pinned
 * (stash_map_pin_lockless()), the hit counted per CPU, the clock's mark
 * set atomically.  Not with checksums (their checks hold the block) and
 * not for a read that continues a stream (the detector accounts it under
 * the lock).  Returns false if the caller must take the lock.
 */
static bool read_hit_lockless(struct stash_cache *sc, struct bio *bio,
			      oblock_t ob)
{
	struct stash_bio *pb = pb_of(bio);
	cblock_t c;

	if (sc->csum || pb->recheck ||
	    stash_seq_continues(&sc->seq, bio->bi_iter.bi_sector))
		return false;
	switch (stash_map_pin_lockless(&sc->map, ob, &c)) {
	case STASH_PIN_MISS:
		return false;
	case STASH_PIN_BACKOFF:
		read_hit_unpin(sc, c);
		return false;
	case STASH_PIN_HIT:
		break;
	}
	stash_map_ref(&sc->map, c);
	this_cpu_inc(sc->pcpu->read_hits);
	pb->kind = PB_READ_HIT;
	pb->cblock = c;
	pb->saved_iter = bio->bi_iter;
	return true;
}

static enum stash_action stash_read(struct stash_cache *sc, struct bio *bio,
				    oblock_t ob)
{
	struct stash_bio *pb = pb_of(bio);
	unsigned long flags;
	bool sequential;
	cblock_t c;

	if (read_hit_lockless(sc, bio, ob))
		return STASH_REMAP_CACHE;
	spin_lock_irqsave(&sc->lock, flags);
	sequential = stash_seq_is_sequential(&sc->seq, bio->bi_iter.bi_sector,
					     bio_sectors(bio));
	c = stash_map_lookup(&sc->map, ob);
	if (cblock_is_valid(c)) {
		/*
		 * Only a slot without valid data (being filled or taking its
		 * first write) makes a read wait.  A write in flight to a
		 * valid slot does not: the read overlaps it and may see
		 * either version, as on any disk.
		 */
		if (stash_map_read_must_wait(&sc->map, c)) {
			bio_list_add(&sc->deferred, bio);
			spin_unlock_irqrestore(&sc->lock, flags);
			return STASH_DEFER;
		}
		if (sc->csum && (pb->recheck ||
				 bio_sectors(bio) != sc->block_sectors ||
				 !stash_csum_known(sc, c))) {
			bool start = csum_read_begin_locked(sc, bio, c);

			spin_unlock_irqrestore(&sc->lock, flags);
			if (!start)
				return STASH_DEFER;
			stash_csum_read(sc, bio, c, csum_read_done);
			return STASH_SUBMITTED;
		}
		/* Reads without the lock may have taken the last pins. */
		if (!stash_map_try_pin(&sc->map, c)) {
			bio_list_add(&sc->deferred, bio);
			spin_unlock_irqrestore(&sc->lock, flags);
			return STASH_DEFER;
		}
		stash_map_ref(&sc->map, c);
		sc->stats.read_hits++;
		spin_unlock_irqrestore(&sc->lock, flags);
		pb->kind = PB_READ_HIT;
		pb->cblock = c;
		pb->saved_iter = bio->bi_iter;
		return STASH_REMAP_CACHE;
	}

	sc->stats.read_misses++;
	c = promote_decide_locked(sc, ob, sequential);
	spin_unlock_irqrestore(&sc->lock, flags);
	if (!cblock_is_valid(c))
		return STASH_REMAP_ORIGIN;

	if (sc->csum) {
		/* Not from the user's pages: they may change under the copy. */
		stash_csum_fill(sc, ob, c, fill_csum_done);
		return STASH_REMAP_ORIGIN;
	}
	pb->cblock = c;
	if (bio_sectors(bio) == sc->block_sectors) {
		/* The user's read brings the whole block: reuse its pages. */
		pb->kind = PB_FILL;
		pb->saved_iter = bio->bi_iter;
	} else {
		fill_by_copy(sc, ob, c);
	}
	return STASH_REMAP_ORIGIN;
}

/*
 * ---- Writes ----
 */

/*
 * Under sc->lock: @bio writes @nr blocks from @first to the origin; count
 * them in flight until it ends (wip_end_locked()).
 */
static void wip_begin_locked(struct stash_cache *sc, struct bio *bio,
			     oblock_t first, u32 nr)
{
	struct stash_bio *pb = pb_of(bio);
	u32 i;

	pb->kind = PB_WRITE_ORIGIN;
	pb->wip_first = first;
	pb->wip_blocks = nr;
	for (i = 0; i < nr; i++)
		sc->wip[wip_slot_of(to_oblock(from_oblock(first) + i))]++;
}

static void wip_end_locked(struct stash_cache *sc, struct stash_bio *pb)
{
	u32 i;

	for (i = 0; i < pb->wip_blocks; i++)
		sc->wip[wip_slot_of(to_oblock(from_oblock(pb->wip_first) + i))]--;
}

/* Under sc->lock: the write goes to the origin; count it in flight. */
static enum stash_action write_origin_locked(struct stash_cache *sc,
					     struct bio *bio, oblock_t ob)
{
	wip_begin_locked(sc, bio, ob, 1);
	return STASH_REMAP_ORIGIN;
}

/*
 * Under sc->lock, before a write goes to the origin: forget its block's
 * cached copy @c, if any, so that no later read finds the old data, and
 * count the write as a hit or a miss.
 */
static void invalidate_for_write_locked(struct stash_cache *sc, cblock_t c)
{
	if (cblock_is_valid(c)) {
		stash_map_invalidate(&sc->map, c);
		sc->stats.write_hits++;
		sc->stats.invalidations++;
	} else {
		sc->stats.write_misses++;
	}
}

/* Under sc->lock: @bio, a write to @ob cached in @c (if valid), to the origin. */
static enum stash_action invalidate_and_write_origin_locked(struct stash_cache *sc,
							    struct bio *bio,
							    oblock_t ob,
							    cblock_t c)
{
	invalidate_for_write_locked(sc, c);
	return write_origin_locked(sc, bio, ob);
}

/*
 * Checksums on a persistent cache: @bio writes in place to a slot recorded
 * dirty and closed (stash_csum_open_locked()).  It waits for the commit
 * sweep that records the slot open, then is dispatched again.
 */
static enum stash_action csum_wait_open(struct stash_cache *sc,
					struct bio *bio)
{
	pb_of(bio)->open_wait = true;
	stash_md_wait_commit(sc, bio);
	return STASH_QUEUED;
}

/*
 * A commit that @bio waited for ended: a write waiting for its slot to be
 * recorded open goes on (or fails with the commit).  Returns false for the
 * other waiters: the commit completes them.
 */
bool stash_commit_waiter_done(struct stash_cache *sc, struct bio *bio,
			      bool failed)
{
	struct stash_bio *pb = pb_of(bio);

	if (!pb->open_wait)
		return false;
	pb->open_wait = false;
	if (failed) {
		bio_io_error(bio);
		return true;
	}
	queue_bio(sc, &sc->deferred, bio);
	return true;
}

/*
 * Write-around: the origin only.  A cached copy is invalidated before the
 * write is issued, so no later read can find the old data in the cache.
 */
static enum stash_action stash_write_through(struct stash_cache *sc,
					     struct bio *bio, oblock_t ob);

static enum stash_action stash_write_around(struct stash_cache *sc,
					    struct bio *bio, oblock_t ob)
{
	enum stash_action action;
	unsigned long flags;
	cblock_t c;

	spin_lock_irqsave(&sc->lock, flags);
	c = stash_map_lookup(&sc->map, ob);
	if (cblock_is_valid(c) &&
	    stash_bitmap_test(&sc->dirty, from_cblock(c))) {
		/*
		 * Left over from write-back: the rest of the block exists only
		 * here, so update both copies instead of invalidating.
		 */
		spin_unlock_irqrestore(&sc->lock, flags);
		return stash_write_through(sc, bio, ob);
	}
	action = invalidate_and_write_origin_locked(sc, bio, ob, c);
	spin_unlock_irqrestore(&sc->lock, flags);
	return action;
}

/*
 * A checksummed write to slot @job->cblock ended: record the new data's
 * checksum, or count a mismatch of the data it merged with (a dirty block
 * that fails is marked bad).  Returns true if the write failed.
 */
static bool csum_write_ended(struct stash_cjob *job)
{
	struct stash_cache *sc = job->sc;
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	if (job->mismatch) {
		sc->checksum_errors++;
		if (stash_bitmap_test(&sc->dirty, from_cblock(job->cblock)))
			stash_csum_mark_bad_locked(sc, job->cblock);
	} else if (!job->cache_error) {
		stash_csum_set_locked(sc, job->cblock, job->crc);
	}
	spin_unlock_irqrestore(&sc->lock, flags);
	if (job->mismatch)
		stash_err_ratelimited(sc, "checksum mismatch on cache block %llu under a partial write",
				      (unsigned long long)from_cblock(job->cblock));
	return job->cache_error || job->mismatch;
}

/* The cache side of a checksummed write-through write ended. */
static void write_through_csum_done(struct stash_cjob *job)
{
	if (csum_write_ended(job))
		pb_of(job->bio)->cache_failed = true;
	bio_endio(job->bio);	/* drops the count bio_inc_remaining() took */
}

/*
 * A checksummed write-back write ended: as if the bio had (a write that
 * failed on a block that was clean goes to the origin: stash_end_io()).
 */
static void write_back_csum_done(struct stash_cjob *job)
{
	job->bio->bi_status = csum_write_ended(job) ? BLK_STS_IOERR : BLK_STS_OK;
	bio_endio(job->bio);
}

static void write_through_cache_endio(struct bio *clone)
{
	struct bio *bio = clone->bi_private;

	if (clone->bi_status)
		pb_of(bio)->cache_failed = true;
	bio_put(clone);
	bio_endio(bio);		/* drops the count bio_inc_remaining() took */
}

/*
 * Write-through: origin and cache together, completing when both are done.
 * A hit makes the block busy so that two writes to it cannot reach the two
 * devices in different orders.  A miss that covers its whole block brings
 * the block in on the same terms as a read miss (the promotion filter,
 * free slots, the sequential detector): the slot is busy and not valid
 * until both writes are done, so reads wait for it and a second write
 * invalidates it.  A dirty block (left from write-back, or a REQ_FUA write
 * in write-back) stays dirty: only this write reached the origin.
 */
/* Send a copy of @bio to its slot; the original goes to the origin. */
static void write_through_clone(struct stash_cache *sc, struct bio *bio,
				cblock_t c)
{
	struct stash_bio *pb = pb_of(bio);
	struct bio *clone;

	pb->kind = PB_WRITE_HIT;
	pb->cblock = c;
	pb->cache_failed = false;
	if (sc->csum) {
		bool valid = stash_map_is_valid(&sc->map, c);

		pb->saved_iter = bio->bi_iter;
		bio_inc_remaining(bio);
		stash_csum_write(sc, bio, pb->saved_iter, c, valid,
				 write_through_csum_done);
		return;
	}
	clone = bio_alloc_clone(sc->cache_dev->bdev, bio, GFP_NOIO, &sc->bs);
	/*
	 * dm polls only the bio it mapped (the origin write): a polled
	 * clone nobody polls would never complete, and @bio with it.
	 */
	bio_clear_polled(clone);
	clone->bi_iter.bi_sector = cache_sector(sc, c, bio->bi_iter.bi_sector);
	clone->bi_end_io = write_through_cache_endio;
	clone->bi_private = bio;
	bio_inc_remaining(bio);
	submit_bio_noacct(clone);
}

/*
 * Under sc->lock: may @bio wait in sc->wt_parked for the write-through write
 * running on slot @c, to be carried by a later whole-block write?  Only a
 * plain whole-block write on a clean valid block (whose SE_BUSY can only
 * mean a write-through write), not a FUA one: its carrier may lack FUA.
 */
static bool wt_can_park_locked(struct stash_cache *sc, struct bio *bio,
			       cblock_t c)
{
	return stash_map_is_valid(&sc->map, c) &&
	       stash_map_is_busy(&sc->map, c) &&
	       !stash_map_in_writeback(&sc->map, c) &&
	       !stash_bitmap_test(&sc->dirty, from_cblock(c)) &&
	       !stash_csum_must_open(sc, c) &&
	       bio_sectors(bio) == sc->block_sectors &&
	       !(bio->bi_opf & REQ_FUA);
}

static enum stash_action stash_write_through(struct stash_cache *sc,
					     struct bio *bio, oblock_t ob)
{
	enum stash_action action;
	unsigned long flags;
	bool valid;
	cblock_t c;

	spin_lock_irqsave(&sc->lock, flags);
	c = stash_map_lookup(&sc->map, ob);
	if (cblock_is_valid(c)) {
		if (wt_can_park_locked(sc, bio, c)) {
			pb_of(bio)->cblock = c;
			bio_list_add(&sc->wt_parked, bio);
			sc->stats.write_hits++;
			spin_unlock_irqrestore(&sc->lock, flags);
			return STASH_DEFER;
		}
		/*
		 * Wait for a write or writeback in flight on the block, and for
		 * a write-back write filling a new slot (not valid yet, but
		 * dirty: unlike a fill, it holds data the origin lacks).
		 */
		valid = stash_map_is_valid(&sc->map, c);
		if ((valid && stash_map_is_held(&sc->map, c)) ||
		    (!valid && stash_bitmap_test(&sc->dirty, from_cblock(c)))) {
			bio_list_add(&sc->deferred, bio);
			spin_unlock_irqrestore(&sc->lock, flags);
			return STASH_DEFER;
		}
		if (valid) {
			if (stash_csum_open_locked(sc, c)) {
				spin_unlock_irqrestore(&sc->lock, flags);
				return csum_wait_open(sc, bio);
			}
			stash_map_set_busy(&sc->map, c);
			sc->stats.write_hits++;
			spin_unlock_irqrestore(&sc->lock, flags);
			write_through_clone(sc, bio, c);
			return STASH_REMAP_ORIGIN;
		}
		/* A fill is reading the origin: it must not install. */
		stash_map_invalidate(&sc->map, c);
		sc->stats.invalidations++;
	}
	sc->stats.write_misses++;
	if (bio_sectors(bio) == sc->block_sectors && !cblock_is_valid(c)) {
		bool sequential = stash_seq_is_sequential(&sc->seq,
				bio->bi_iter.bi_sector, bio_sectors(bio));

		c = promote_decide_locked(sc, ob, sequential);
		if (cblock_is_valid(c)) {
			spin_unlock_irqrestore(&sc->lock, flags);
			write_through_clone(sc, bio, c);
			return STASH_REMAP_ORIGIN;
		}
	}
	action = write_origin_locked(sc, bio, ob);
	spin_unlock_irqrestore(&sc->lock, flags);
	return action;
}

static void write_back_cache_done(struct stash_cache *sc, bool newly_dirty)
{
	if (newly_dirty) {
		stash_wb_arm_waker(sc);
		if (stash_dirty_above(sc, READ_ONCE(sc->tun.high_wm)))
			stash_wb_kick(sc);
	}
}

/*
 * Under sc->lock: whether a write-back write's uncached block goes around to
 * the origin without a slot being tried: it is part of a stream past the
 * cutoff, or the map is known to have no slot to give (then *@full is set:
 * writeback must make room).  The one-block path and a multi-block run
 * (write_back_run_locked()) both decide by it.
 */
static bool wb_miss_goes_around_locked(struct stash_cache *sc, bool sequential,
				       bool *full)
{
	*full = !sequential && stash_map_known_full(&sc->map);
	return sequential || *full;
}

/*
 * Write-back: the cache only; the block becomes dirty.
 *  - A hit (partial or whole) updates the slot.
 *  - A miss that covers the whole block takes a slot (evicting a clean
 *    block); when every slot is dirty or busy it goes around to the
 *    origin (and writeback starts, to make room).
 *  - A partial miss is written around to the origin: filling the rest of
 *    the block first would cost an origin read on the write path.
 *  - A sequential stream past the cutoff bypasses the cache like
 *    write-around (a dirty hit still updates the slot).
 *  - On a volatile cache REQ_FUA writes go through to the origin, so that
 *    the cache never holds the only copy of a FUA write; on a persistent
 *    one they complete after the next metadata commit.
 */
static enum stash_action stash_write_back(struct stash_cache *sc,
					  struct bio *bio, oblock_t ob)
{
	struct stash_bio *pb = pb_of(bio);
	unsigned long flags;
	bool sequential, newly_dirty, dirty, full;
	u64 evicted;
	cblock_t c;

	if (sc->is_volatile && (bio->bi_opf & REQ_FUA))
		return stash_write_through(sc, bio, ob);
	if (stash_md_failed(&sc->md)) {
		stash_err_ratelimited(sc, "metadata failed: refusing a write-back write");
		return STASH_KILL;
	}

	spin_lock_irqsave(&sc->lock, flags);
	sequential = stash_seq_is_sequential(&sc->seq, bio->bi_iter.bi_sector,
					     bio_sectors(bio));
	c = stash_map_lookup(&sc->map, ob);
	if (cblock_is_valid(c)) {
		if (stash_map_is_busy(&sc->map, c))
			goto defer;
		/* Writeback has read the slot: it must not clean the block. */
		stash_map_note_write(&sc->map, c);
		dirty = stash_bitmap_test(&sc->dirty, from_cblock(c));
		if (sequential && !dirty) {
			sc->stats.bypassed++;
			spin_unlock_irqrestore(&sc->lock, flags);
			return stash_write_around(sc, bio, ob);
		}
		if (stash_csum_open_locked(sc, c))
			goto wait_open;
		stash_map_set_busy(&sc->map, c);
		sc->stats.write_hits++;
		pb->was_dirty = dirty;
		pb->was_valid = stash_map_is_valid(&sc->map, c);
	} else {
		if (!wb_miss_goes_around_locked(sc, sequential, &full) &&
		    bio_sectors(bio) == sc->block_sectors) {
			c = stash_map_alloc(&sc->map, ob, &evicted);
			full = !cblock_is_valid(c);
		}
		if (!cblock_is_valid(c)) {
			/*
			 * A stream, a partial block, or every slot dirty or
			 * busy: write around to the origin (the block is not
			 * cached, so nothing older can be read back) rather
			 * than wait for writeback to clean a slot, and when
			 * full start writeback for the writes to come.
			 */
			if (sequential || full)
				sc->stats.bypassed++;
			if (full)
				stash_wb_want_space(&sc->wb);
			spin_unlock_irqrestore(&sc->lock, flags);
			if (full)
				stash_wb_kick(sc);
			return stash_write_around(sc, bio, ob);
		}
		sc->stats.write_misses++;
		if (evicted != STASH_NO_OBLOCK)
			sc->stats.evictions++;
		pb->was_dirty = false;
		pb->was_valid = false;
	}
	newly_dirty = stash_set_dirty(sc, from_cblock(c));
	spin_unlock_irqrestore(&sc->lock, flags);

	pb->kind = PB_WB_WRITE;
	pb->cblock = c;
	pb->saved_iter = bio->bi_iter;
	write_back_cache_done(sc, newly_dirty);
	if (sc->csum) {
		stash_csum_write(sc, bio, pb->saved_iter, c, pb->was_valid,
				 write_back_csum_done);
		return STASH_SUBMITTED;
	}
	return STASH_REMAP_CACHE;

defer:
	bio_list_add(&sc->deferred, bio);
	spin_unlock_irqrestore(&sc->lock, flags);
	return STASH_DEFER;

wait_open:
	spin_unlock_irqrestore(&sc->lock, flags);
	return csum_wait_open(sc, bio);
}

/*
 * ---- Flushes and discards ----
 */

/*
 * Empty flush: bio number 1 goes to the cache device, number 0 to the
 * origin.  On a persistent cache, number 1 completes after the next
 * metadata commit (which flushes the cache device).  On a volatile cache,
 * while blocks are dirty the origin's flush first waits for a drain pass,
 * so that every write acknowledged before the flush is on the origin when
 * the origin flushes; number 1 completes at once.  A failed cache flushes
 * as a volatile one does.
 */
/*
 * The origin's flush bio: sent on only if an origin write completed since
 * the newest origin flush was issued; otherwise there is nothing to make
 * durable and it completes at once.
 */
static enum stash_action origin_flush(struct stash_cache *sc, struct bio *bio)
{
	struct stash_bio *pb = pb_of(bio);
	s64 done = atomic64_read(&sc->origin_writes_done);

	if (done == atomic64_read(&sc->origin_flushed)) {
		bio_endio(bio);
		return STASH_SUBMITTED;
	}
	pb->kind = PB_ORIGIN_FLUSH;
	pb->flush_covers = done;
	return STASH_REMAP_ORIGIN;
}

/* The origin's flush, after a drain pass if blocks are dirty. */
static enum stash_action flush_after_drain(struct stash_cache *sc,
					   struct bio *bio)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	if (!sc->dirty.nr_set) {
		spin_unlock_irqrestore(&sc->lock, flags);
		return origin_flush(sc, bio);
	}
	stash_wb_add_flush(&sc->wb, bio);
	spin_unlock_irqrestore(&sc->lock, flags);
	stash_wb_kick(sc);
	return STASH_QUEUED;
}

static enum stash_action stash_flush(struct stash_cache *sc, struct bio *bio)
{
	bool failed = stash_cache_failed(sc);

	if (!sc->is_volatile && !failed) {
		/* Persistent: the origin flushes; the cache commits. */
		if (!dm_bio_get_target_bio_nr(bio))
			return origin_flush(sc, bio);
		stash_md_wait_commit(sc, bio);
		return STASH_QUEUED;
	}
	/*
	 * Volatile, or a failed cache (whose dirty blocks are leaving for
	 * the origin): the origin's flush waits for the dirty blocks, and
	 * the cache device keeps nothing a flush must make durable.
	 */
	if (dm_bio_get_target_bio_nr(bio)) {
		bio_endio(bio);
		return STASH_SUBMITTED;
	}
	return flush_after_drain(sc, bio);
}

/*
 * A flush that was waiting for a metadata commit when the cache device
 * failed: it flushes the origin once the dirty blocks are written back.
 */
void stash_flush_failed(struct stash_cache *sc, struct bio *bio)
{
	if (flush_after_drain(sc, bio) == STASH_REMAP_ORIGIN) {
		bio_set_dev(bio, sc->origin_dev->bdev);
		dm_submit_bio_remap(bio, NULL);
	}
}

/* Complete the flushes a drain pass was holding. */
void stash_submit_flushes(struct stash_cache *sc, struct bio_list *flushes,
			  bool failed)
{
	struct bio *bio;

	while ((bio = bio_list_pop(flushes))) {
		if (failed) {
			bio->bi_status = BLK_STS_IOERR;
			bio_endio(bio);
			continue;
		}
		bio_set_dev(bio, sc->origin_dev->bdev);
		dm_submit_bio_remap(bio, NULL);
	}
}

/*
 * Under sc->lock: forget block @c for a discard covering [@start, @end)
 * of the origin.  A dirty block that the discard covers only in part keeps
 * its other sectors, so it stays; a dirty block under writeback or a write
 * makes the discard wait.  Returns false if the discard must wait.
 */
static bool discard_block_locked(struct stash_cache *sc, cblock_t c,
				 sector_t start, sector_t end)
{
	sector_t first = from_oblock(stash_map_oblock(&sc->map, c)) <<
			 sc->block_shift;
	u32 i = from_cblock(c);

	if (stash_bitmap_test(&sc->dirty, i)) {
		if (first < start || first + sc->block_sectors > end)
			return true;
		if (stash_map_is_held(&sc->map, c))
			return false;
		stash_clear_dirty(sc, i);
	}
	stash_map_invalidate(&sc->map, c);
	sc->stats.invalidations++;
	return true;
}

/*
 * Invalidate every block a discard touches; runs in the worker.  Returns
 * false if some block was busy: the discard is dispatched again later and
 * finds the blocks it already invalidated gone.
 */
static bool discard_invalidate(struct stash_cache *sc, struct bio *bio)
{
	sector_t start = dm_target_offset(sc->ti, bio->bi_iter.bi_sector);
	sector_t end = start + bio_sectors(bio);
	u64 first = start >> sc->block_shift;
	u64 last = (end - 1) >> sc->block_shift;
	bool walk_slots = last - first >= sc->nr_cblocks;
	u64 i, n = walk_slots ? sc->nr_cblocks : last - first + 1;
	unsigned long flags;
	bool done = true;
	cblock_t c;

	spin_lock_irqsave(&sc->lock, flags);
	for (i = 0; i < n; i++) {
		if (walk_slots) {
			/* A huge range: walking the slots is cheaper. */
			cblock_t slot = to_cblock(i);
			u64 ob = from_oblock(stash_map_oblock(&sc->map, slot));

			c = stash_map_is_mapped(&sc->map, slot) &&
			    ob >= first && ob <= last ? slot : STASH_NO_CBLOCK;
		} else {
			c = stash_map_lookup(&sc->map, to_oblock(first + i));
		}
		if (cblock_is_valid(c) && !discard_block_locked(sc, c, start, end))
			done = false;
		if (!((i + 1) % 4096)) {
			spin_unlock_irqrestore(&sc->lock, flags);
			cond_resched();
			spin_lock_irqsave(&sc->lock, flags);
		}
	}
	spin_unlock_irqrestore(&sc->lock, flags);
	return done;
}

/*
 * ---- A failed cache ----
 */

/*
 * A whole-block write to a failed cache replaces whatever the cache held,
 * dirty or not: the slot is dropped and the write goes to the origin.
 * Partial writes go around (a dirty block is updated on both devices, and
 * the write fails if the cache write does).
 */
static enum stash_action failed_write(struct stash_cache *sc, struct bio *bio,
				      oblock_t ob)
{
	enum stash_action action;
	unsigned long flags;
	cblock_t c;

	if (bio_sectors(bio) != sc->block_sectors)
		return stash_write_around(sc, bio, ob);
	spin_lock_irqsave(&sc->lock, flags);
	c = stash_map_lookup(&sc->map, ob);
	if (cblock_is_valid(c)) {
		if (stash_map_is_held(&sc->map, c)) {
			bio_list_add(&sc->deferred, bio);
			spin_unlock_irqrestore(&sc->lock, flags);
			return STASH_DEFER;
		}
		stash_clear_dirty(sc, from_cblock(c));
	}
	action = invalidate_and_write_origin_locked(sc, bio, ob, c);
	spin_unlock_irqrestore(&sc->lock, flags);
	return action;
}

/*
 * The cache device failed: I/O goes to the origin, except to a dirty
 * block, which only the cache holds until writeback copies it or a
 * whole-block write replaces it.  A read of one tries the cache (an error
 * goes to the user: the origin's copy is stale).  Nothing is promoted.
 */
static enum stash_action stash_failed_io(struct stash_cache *sc,
					 struct bio *bio, oblock_t ob)
{
	unsigned long flags;
	bool dirty;
	cblock_t c;

	if (bio_data_dir(bio) != READ)
		return failed_write(sc, bio, ob);
	spin_lock_irqsave(&sc->lock, flags);
	c = stash_map_lookup(&sc->map, ob);
	dirty = cblock_is_valid(c) &&
		stash_bitmap_test(&sc->dirty, from_cblock(c));
	spin_unlock_irqrestore(&sc->lock, flags);
	return dirty ? stash_read(sc, bio, ob) : STASH_REMAP_ORIGIN;
}

/*
 * ---- Dispatch ----
 */

static enum stash_action stash_process(struct stash_cache *sc, struct bio *bio)
{
	sector_t origin_sector;
	oblock_t ob;

	pb_init(sc, bio);

	if (bio->bi_opf & REQ_PREFLUSH)
		return stash_flush(sc, bio);
	if (bio_op(bio) == REQ_OP_DISCARD) {
		queue_bio(sc, &sc->discards, bio);
		return STASH_QUEUED;
	}

	origin_sector = dm_target_offset(sc->ti, bio->bi_iter.bi_sector);
	ob = stash_oblock_of(sc, origin_sector);
	/* A partial last block is never cached. */
	if (from_oblock(ob) >= sc->nr_oblocks)
		return STASH_REMAP_ORIGIN;
	if (stash_cache_failed(sc))
		return stash_failed_io(sc, bio, ob);

	if (bio_data_dir(bio) == READ)
		return stash_read(sc, bio, ob);

	switch (READ_ONCE(sc->mode)) {
	case STASH_MODE_WRITEBACK:
		return stash_write_back(sc, bio, ob);
	case STASH_MODE_WRITETHROUGH:
		return stash_write_through(sc, bio, ob);
	case STASH_MODE_WRITEAROUND:
	default:
		return stash_write_around(sc, bio, ob);
	}
}

/*
 * Remap @bio to the origin, and remember that it went there: a driver
 * below may point bi_bdev at another device of its own (NVMe multipath
 * picks a path; md-linear on 6.1 remaps in place), so completion cannot
 * tell from bi_bdev where the bio went.
 */
static void remap_to_origin(struct stash_cache *sc, struct bio *bio)
{
	pb_of(bio)->to_origin = true;
	bio_set_dev(bio, sc->origin_dev->bdev);
	if (bio_sectors(bio))
		bio->bi_iter.bi_sector =
			dm_target_offset(sc->ti, bio->bi_iter.bi_sector);
}

static void remap_to_cache(struct stash_cache *sc, struct bio *bio)
{
	struct stash_bio *pb = pb_of(bio);

	pb->to_origin = false;
	bio_set_dev(bio, sc->cache_dev->bdev);
	if (cblock_is_valid(pb->cblock))
		bio->bi_iter.bi_sector =
			cache_sector(sc, pb->cblock,
				     dm_target_offset(sc->ti, bio->bi_iter.bi_sector));
}

/* Returns true if @bio was remapped and the caller must submit it. */
static bool stash_dispatch(struct stash_cache *sc, struct bio *bio)
{
	switch (stash_process(sc, bio)) {
	case STASH_REMAP_ORIGIN:
		remap_to_origin(sc, bio);
		return true;
	case STASH_REMAP_CACHE:
		remap_to_cache(sc, bio);
		return true;
	case STASH_KILL:
		bio_io_error(bio);
		break;
	case STASH_DEFER:
	case STASH_QUEUED:
	case STASH_SUBMITTED:
		break;
	}
	return false;
}

/*
 * ---- Bios that span blocks ----
 *
 * The paths above handle one block at a time, so a bio that spans blocks
 * is cut at the end of its first block (dm_accept_partial_bio(): device
 * mapper sends the rest through the target again).  Two kinds of run at
 * the front of a bio go on in one piece instead, as under dm-linear, so
 * that a long I/O over a partly cached range costs one origin I/O per run,
 * not one per block:
 *  - reads of blocks none of which is cached or to be promoted: a stream
 *    past the sequential cutoff, or blocks the promotion filter has not
 *    seen (even while slots are free: a read this large is more likely a
 *    stream than a hot block);
 *  - write-around writes of blocks none of which is dirty (left from
 *    write-back): each cached copy is invalidated first and every block
 *    counts as a write in flight (sc->wip), as one-block writes do;
 *  - write-back writes of blocks none of which is cached, when each would
 *    go around on its own: a stream past the sequential cutoff, or a cache
 *    whose every slot is dirty or busy (a 1 MiB write over a full cache
 *    would otherwise reach the origin as 256 writes of one block).
 * The run ends at the first block that needs the one-block path; a bio
 * made only of such blocks goes whole.  Each block of a run is accounted
 * as it would be on its own.
 */

/*
 * Under sc->lock: how many blocks from @first (at most @nr) a read may
 * take to the origin in one piece; the first block's piece is
 * @first_sectors long.
 */
static u64 read_run_locked(struct stash_cache *sc, struct bio *bio,
			   u64 first, u64 nr, u32 first_sectors)
{
	u64 end = min_t(u64, first + nr, sc->nr_oblocks), ob, run;
	bool sequential = stash_seq_peek(&sc->seq, bio->bi_iter.bi_sector,
					 first_sectors);

	for (ob = first; ob < end; ob++) {
		if (cblock_is_valid(stash_map_lookup(&sc->map, to_oblock(ob))))
			break;
		if (!stash_policy_run_may_pass(&sc->filter, to_oblock(ob),
					       sequential))
			break;
	}
	/* Blocks past the last whole block are never cached. */
	run = ob < end ? ob - first : nr;

	/* Record only now: one block's bits must not stop the next one. */
	for (ob = first; ob < first + run && ob < end; ob++) {
		sc->stats.read_misses++;
		if (stash_policy_run_record(&sc->filter, to_oblock(ob),
					    sequential) == STASH_PROMOTE_BYPASS)
			sc->stats.bypassed++;
	}
	return run;
}

/* The same for a write-around write: invalidates and counts the run. */
static u64 write_around_run_locked(struct stash_cache *sc, struct bio *bio,
				   u64 first, u64 nr)
{
	u64 end = min_t(u64, first + nr, sc->nr_oblocks), ob, run;
	cblock_t c;

	/* Every block before the first dirty one is in the run: forget it. */
	for (ob = first; ob < end; ob++) {
		c = stash_map_lookup(&sc->map, to_oblock(ob));
		if (cblock_is_valid(c) &&
		    stash_bitmap_test(&sc->dirty, from_cblock(c)))
			break;
		invalidate_for_write_locked(sc, c);
	}
	run = ob < end ? ob - first : nr;
	if (run && first < end)
		wip_begin_locked(sc, bio, to_oblock(first),
				 min_t(u64, run, end - first));
	return run;
}

/* The sectors of a run of @run (>= 1) blocks whose first piece is @first_sectors. */
static sector_t run_sectors(struct stash_cache *sc, sector_t first_sectors,
			    u64 run)
{
	return first_sectors + ((run - 1) << sc->block_shift);
}

/*
 * Under sc->lock: the sequential detector sees a run of @run of @nr blocks
 * of @bio go to the origin, as the one-block path would see each block.
 */
static void seq_advance_by_run_locked(struct stash_cache *sc, struct bio *bio,
				      sector_t first_sectors, u64 run, u64 nr)
{
	stash_seq_is_sequential(&sc->seq, bio->bi_iter.bi_sector,
				run < nr ? run_sectors(sc, first_sectors, run)
					 : bio_sectors(bio));
}

/*
 * The same for a write-back write: the blocks before the first cached one,
 * if stash_write_back() would send each of them around (see there); none
 * otherwise.  Sets *@full when the reason is a full cache: the caller then
 * starts writeback, to make room for the writes to come.
 */
static u64 write_back_run_locked(struct stash_cache *sc, struct bio *bio,
				 u64 first, u64 nr, u32 first_sectors,
				 bool *full)
{
	u64 end = min_t(u64, first + nr, sc->nr_oblocks), ob, run, n;
	bool sequential, map_full;

	if (stash_md_failed(&sc->md))
		return 0;	/* the one-block path refuses the write */
	sequential = stash_seq_peek(&sc->seq, bio->bi_iter.bi_sector,
				    first_sectors);
	if (!wb_miss_goes_around_locked(sc, sequential, &map_full))
		return 0;

	for (ob = first; ob < end; ob++)
		if (cblock_is_valid(stash_map_lookup(&sc->map, to_oblock(ob))))
			break;
	/* Blocks past the last whole block are never cached. */
	run = ob < end ? ob - first : nr;
	if (!run)
		return 0;

	/* Each block is counted as it would be on its own. */
	n = first < end ? min_t(u64, run, end - first) : 0;
	sc->stats.write_misses += n;
	sc->stats.bypassed += n;
	if (n)
		wip_begin_locked(sc, bio, to_oblock(first), n);
	seq_advance_by_run_locked(sc, bio, first_sectors, run, nr);
	if (map_full)
		stash_wb_want_space(&sc->wb);
	*full = map_full;
	return run;
}

/*
 * Cut @bio where the one-block path must take over: after a run that goes
 * to the origin in one piece (then returns true: remap what is left of
 * @bio to the origin), else at its first block's end.  Only ->map may cut
 * a bio.
 */
static bool cut_or_pass_run(struct stash_cache *sc, struct bio *bio)
{
	sector_t off, first_sectors;
	unsigned long flags;
	u64 first, nr, run = 0;
	bool full = false;

	if (!bio_sectors(bio) || bio_op(bio) == REQ_OP_DISCARD ||
	    (bio->bi_opf & REQ_PREFLUSH))
		return false;
	off = dm_target_offset(sc->ti, bio->bi_iter.bi_sector);
	first_sectors = sc->block_sectors - (off & (sc->block_sectors - 1));
	if (bio_sectors(bio) <= first_sectors)
		return false;

	first = off >> sc->block_shift;
	nr = ((off + bio_sectors(bio) - 1) >> sc->block_shift) - first + 1;
	pb_init(sc, bio);	/* a write-around run records its wip in it */
	spin_lock_irqsave(&sc->lock, flags);
	if (bio_op(bio) == REQ_OP_READ) {
		run = read_run_locked(sc, bio, first, nr, first_sectors);
		/* The stream advances by the run, the one-block path's way. */
		if (run)
			seq_advance_by_run_locked(sc, bio, first_sectors, run,
						  nr);
	} else if (bio_op(bio) == REQ_OP_WRITE && !stash_cache_failed(sc)) {
		switch (READ_ONCE(sc->mode)) {
		case STASH_MODE_WRITEAROUND:
			run = write_around_run_locked(sc, bio, first, nr);
			break;
		case STASH_MODE_WRITEBACK:
			run = write_back_run_locked(sc, bio, first, nr,
						    first_sectors, &full);
			break;
		default:
			break;
		}
	}
	spin_unlock_irqrestore(&sc->lock, flags);
	if (full)
		stash_wb_kick(sc);
	if (!run) {
		dm_accept_partial_bio(bio, first_sectors);
		return false;
	}
	if (run < nr)
		dm_accept_partial_bio(bio, run_sectors(sc, first_sectors, run));
	return true;
}

int stash_map_bio(struct dm_target *ti, struct bio *bio)
{
	struct stash_cache *sc = ti->private;

	pb_of(bio)->recheck = false;
	pb_of(bio)->open_wait = false;
	/* User reads and writes: their latency steers the throttle. */
	pb_of(bio)->start_ns = bio_sectors(bio) &&
			       (bio_op(bio) == REQ_OP_READ ||
				bio_op(bio) == REQ_OP_WRITE) ?
			       stash_throttle_start(sc, bio_sectors(bio)) : 0;

	/*
	 * Once per jiffy: the commit timer parks only when last_io is two
	 * periods old, so I/O in the same jiffy need not look at it.
	 */
	if (time_after(jiffies, READ_ONCE(sc->last_io))) {
		WRITE_ONCE(sc->last_io, jiffies);
		stash_md_note_io(sc);
	}
	if (cut_or_pass_run(sc, bio)) {
		remap_to_origin(sc, bio);
		return DM_MAPIO_REMAPPED;
	}
	return stash_dispatch(sc, bio) ? DM_MAPIO_REMAPPED : DM_MAPIO_SUBMITTED;
}

/*
 * ---- Completion ----
 */

/*
 * Under sc->lock, when the write-through write on slot @c ends: if writes
 * are parked on it, the newest becomes the next write (the slot stays
 * SE_BUSY, the worker submits it) and carries the others.  If the slot was
 * invalidated meanwhile they go back to dispatch instead.  Returns true if
 * the worker has work.
 */
static bool wt_next_carrier_locked(struct stash_cache *sc, cblock_t c)
{
	struct bio_list mine = BIO_EMPTY_LIST, rest = BIO_EMPTY_LIST;
	struct bio *bio, *carrier;

	while ((bio = bio_list_pop(&sc->wt_parked)))
		bio_list_add(pb_of(bio)->cblock == c ? &mine : &rest, bio);
	bio_list_merge(&sc->wt_parked, &rest);
	if (bio_list_empty(&mine))
		return false;
	if (!stash_map_is_live(&sc->map, c)) {
		bio_list_merge(&sc->deferred, &mine);
		return false;
	}
	/* The newest is last: it carries the others. */
	carrier = mine.tail;
	while ((bio = bio_list_pop(&mine)) != carrier) {
		pb_of(bio)->kind = PB_DONE;
		bio_list_add(&pb_of(carrier)->absorbed, bio);
		sc->writes_carried++;
	}
	bio_list_add(&sc->wt_next, carrier);
	return true;
}

/* The writes @bio carried end as it did. */
static void complete_absorbed(struct bio *bio, blk_status_t error)
{
	struct bio *w;

	while ((w = bio_list_pop(&pb_of(bio)->absorbed))) {
		w->bi_status = error;
		bio_endio(w);
	}
}

int stash_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error)
{
	struct stash_cache *sc = ti->private;
	struct stash_bio *pb = pb_of(bio);
	/* Not again when it ends after its wait (PB_DONE). */
	bool fua_origin = pb->to_origin && pb->kind != PB_DONE &&
			  bio_op(bio) == REQ_OP_WRITE && (bio->bi_opf & REQ_FUA);
	unsigned long flags;
	bool kick;

	if (pb->start_ns) {
		stash_throttle_end(&sc->wb, pb->to_origin, pb->start_ns, !*error);
		pb->start_ns = 0;
	}
	/* Whatever reached the origin, a later flush must cover. */
	if (!*error && pb->to_origin &&
	    (bio_op(bio) == REQ_OP_DISCARD ||
	     (bio_op(bio) == REQ_OP_WRITE && !(bio->bi_opf & REQ_PREFLUSH))))
		atomic64_inc(&sc->origin_writes_done);

	switch (pb->kind) {
	case PB_READ_HIT:
		if (!*error) {
			/*
			 * A mismatch may be a write that overlapped the read:
			 * read again, with the block busy (csum_read_begin_locked()).
			 */
			bool recheck = sc->csum &&
				stash_csum_bio(bio, pb->saved_iter) !=
				READ_ONCE(sc->csums[from_cblock(pb->cblock)]);

			read_hit_unpin(sc, pb->cblock);
			if (!recheck)
				break;
			pb->kind = PB_DONE;
			pb->recheck = true;
			bio->bi_iter = pb->saved_iter;
			queue_bio(sc, &sc->deferred, bio);
			return DM_ENDIO_INCOMPLETE;
		}
		spin_lock_irqsave(&sc->lock, flags);
		sc->stats.cache_errors++;
		if (stash_bitmap_test(&sc->dirty, from_cblock(pb->cblock))) {
			/* The data exists nowhere else: the user sees the error. */
			stash_map_release(&sc->map, pb->cblock, false);
			/* A read may wait for a pin (STASH_MAX_PINS). */
			kick = wake_deferred_locked(sc);
			spin_unlock_irqrestore(&sc->lock, flags);
			if (kick)
				stash_kick_worker(sc);
			stash_cache_error(sc);
			stash_err_ratelimited(sc, "cache read error %d on a dirty block",
					      blk_status_to_errno(*error));
			break;
		}
		/* A clean block: read it from the origin instead. */
		stash_map_invalidate(&sc->map, pb->cblock);
		sc->stats.invalidations++;
		stash_map_release(&sc->map, pb->cblock, false);
		kick = wake_deferred_locked(sc);
		spin_unlock_irqrestore(&sc->lock, flags);
		if (kick)
			stash_kick_worker(sc);
		stash_cache_error(sc);
		stash_err_ratelimited(sc, "cache read error %d: reading the origin instead",
				      blk_status_to_errno(*error));
		pb->kind = PB_DONE;
		bio->bi_iter = pb->saved_iter;
		bio->bi_status = BLK_STS_OK;
		queue_bio(sc, &sc->retries, bio);
		return DM_ENDIO_INCOMPLETE;

	case PB_FILL:
		if (*error) {
			fill_complete(sc, pb->cblock, false);
			break;
		}
		queue_bio(sc, &sc->fills, bio);
		return DM_ENDIO_INCOMPLETE;

	case PB_WRITE_ORIGIN:
		spin_lock_irqsave(&sc->lock, flags);
		wip_end_locked(sc, pb);
		if (*error)
			sc->stats.origin_errors++;
		spin_unlock_irqrestore(&sc->lock, flags);
		break;

	case PB_ORIGIN_FLUSH:
		if (!*error)
			stash_origin_flushed(sc, pb->flush_covers);
		break;

	case PB_WRITE_HIT:
		spin_lock_irqsave(&sc->lock, flags);
		if (*error)
			sc->stats.origin_errors++;
		if (pb->cache_failed)
			sc->stats.cache_errors++;
		if (stash_bitmap_test(&sc->dirty, from_cblock(pb->cblock))) {
			/*
			 * Other sectors of the block exist only in the cache:
			 * keep it; a failed cache write fails the user's write.
			 */
			if (pb->cache_failed)
				*error = BLK_STS_IOERR;
		} else if (*error || pb->cache_failed) {
			stash_map_invalidate(&sc->map, pb->cblock);
			sc->stats.invalidations++;
		} else if (!stash_map_is_valid(&sc->map, pb->cblock) &&
			   !stash_map_is_stale(&sc->map, pb->cblock)) {
			/* A miss that took a slot: both copies now hold it. */
			stash_map_set_valid(&sc->map, pb->cblock);
		}
		kick = release_busy_locked(sc, pb->cblock);
		spin_unlock_irqrestore(&sc->lock, flags);
		if (kick)
			stash_kick_worker(sc);
		if (pb->cache_failed)
			stash_cache_error(sc);
		complete_absorbed(bio, *error);
		break;

	case PB_WB_WRITE:
		spin_lock_irqsave(&sc->lock, flags);
		if (!*error) {
			stash_map_set_valid(&sc->map, pb->cblock);
		} else {
			sc->stats.cache_errors++;
			if (!pb->was_dirty) {
				/*
				 * The origin still has the block's only good
				 * copy: forget the slot and write there.
				 */
				stash_clear_dirty(sc, from_cblock(pb->cblock));
				stash_map_invalidate(&sc->map, pb->cblock);
			}
		}
		stash_map_release(&sc->map, pb->cblock, true);
		kick = wake_deferred_locked(sc);
		if (*error && !pb->was_dirty) {
			sector_t sector = dm_target_offset(ti,
							   pb->saved_iter.bi_sector);

			write_origin_locked(sc, bio, stash_oblock_of(sc, sector));
			spin_unlock_irqrestore(&sc->lock, flags);
			stash_err_ratelimited(sc, "cache write error %d: writing to the origin instead",
					      blk_status_to_errno(*error));
			bio->bi_iter = pb->saved_iter;
			bio->bi_status = BLK_STS_OK;
			queue_bio(sc, &sc->retries, bio);
			stash_cache_error(sc);
			return DM_ENDIO_INCOMPLETE;
		}
		spin_unlock_irqrestore(&sc->lock, flags);
		if (kick)
			stash_kick_worker(sc);
		if (*error)
			stash_cache_error(sc);
		if (!*error && (bio->bi_opf & REQ_FUA) && !sc->is_volatile) {
			/* Durable once the mapping is committed too. */
			pb->kind = PB_DONE;
			stash_md_wait_commit(sc, bio);
			return DM_ENDIO_INCOMPLETE;
		}
		break;

	default:
		break;
	}
	if (*error && bio_data_dir(bio) == READ && pb->to_origin) {
		spin_lock_irqsave(&sc->lock, flags);
		sc->stats.origin_errors++;
		spin_unlock_irqrestore(&sc->lock, flags);
		stash_err_ratelimited(sc, "origin read error %d", blk_status_to_errno(*error));
	}
	/*
	 * A FUA write that reached the origin (write-around, write-through,
	 * a write-back write that went around), while a slot the metadata
	 * records dirty was dropped and is not yet recorded empty: a power
	 * cut would let recovery write that slot back over this write.
	 */
	if (fua_origin && !*error && !stash_md_drops_covered(sc)) {
		pb->kind = PB_DONE;
		stash_md_wait_commit(sc, bio);
		return DM_ENDIO_INCOMPLETE;
	}
	return DM_ENDIO_DONE;
}

/*
 * ---- Worker ----
 */

static void process_discard(struct stash_cache *sc, struct bio *bio)
{
	unsigned long flags;

	if (!discard_invalidate(sc, bio)) {
		spin_lock_irqsave(&sc->lock, flags);
		bio_list_add(&sc->deferred, bio);
		spin_unlock_irqrestore(&sc->lock, flags);
		return;
	}
	if (sc->discard_passdown &&
	    bdev_max_discard_sectors(sc->origin_dev->bdev)) {
		remap_to_origin(sc, bio);
		dm_submit_bio_remap(bio, NULL);
	} else {
		bio_endio(bio);
	}
}

static void take_list(struct stash_cache *sc, struct bio_list *from,
		      struct bio_list *to)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	bio_list_merge(to, from);
	bio_list_init(from);
	spin_unlock_irqrestore(&sc->lock, flags);
}

void stash_do_work(struct work_struct *ws)
{
	struct stash_cache *sc = container_of(ws, struct stash_cache, worker);
	struct bio_list list = BIO_EMPTY_LIST;
	struct bio *bio;

	take_list(sc, &sc->fills, &list);
	while ((bio = bio_list_pop(&list)))
		fill_by_reuse(sc, bio);

	take_list(sc, &sc->retries, &list);
	while ((bio = bio_list_pop(&list))) {
		remap_to_origin(sc, bio);
		submit_bio_noacct(bio);
	}

	/* Parked write-through writes whose turn came; the slot is busy. */
	take_list(sc, &sc->wt_next, &list);
	while ((bio = bio_list_pop(&list))) {
		write_through_clone(sc, bio, pb_of(bio)->cblock);
		remap_to_origin(sc, bio);
		dm_submit_bio_remap(bio, NULL);
	}

	take_list(sc, &sc->discards, &list);
	while ((bio = bio_list_pop(&list)))
		process_discard(sc, bio);

	/*
	 * Bios deferred from here on wait for the next kick (a busy block
	 * becoming idle), so a discard that must wait does not spin.
	 */
	take_list(sc, &sc->deferred, &list);
	while ((bio = bio_list_pop(&list))) {
		if (bio_op(bio) == REQ_OP_DISCARD)
			process_discard(sc, bio);
		else if (stash_dispatch(sc, bio))
			dm_submit_bio_remap(bio, NULL);
	}
}

/* An internal copy ended (stash_dec_wake(): the waiter may free @sc). */
void stash_job_done(struct stash_cache *sc)
{
	stash_dec_wake(&sc->nr_jobs, &sc->jobs_wait);
}

void stash_wait_for_jobs(struct stash_cache *sc)
{
	stash_wait_gone(&sc->nr_jobs, &sc->jobs_wait);
	flush_workqueue(sc->wq);
}

int stash_io_init(void)
{
	stash_job_cache = KMEM_CACHE(stash_job, 0);
	return stash_job_cache ? 0 : -ENOMEM;
}

void stash_io_exit(void)
{
	kmem_cache_destroy(stash_job_cache);
}
