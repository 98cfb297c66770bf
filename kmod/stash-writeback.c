// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash writeback: copies dirty blocks from the cache device to the
 * origin, in origin order, merging neighbours into one origin write.
 *
 * Passes
 * ------
 * All writeback happens in passes.  A pass starts from a snapshot of the
 * dirty bitmap (sc->wb.pass) and writes back the blocks in it:
 *  - a watermark pass starts when more than high_watermark percent of the
 *    cache is dirty and stops once low_watermark is reached;
 *  - a drain pass cleans every block of its snapshot, then completes the
 *    flushes that were waiting for it.  It is requested by a REQ_PREFLUSH
 *    while blocks are dirty, the "flush" message, idleness, a mode switch
 *    out of writeback, and suspend.
 * A block being written back is SE_WRITEBACK from the moment a pass picks
 * it until its origin write is done, and SE_BUSY only while its run reads
 * its slot (a batch of 4096 picked blocks may take seconds to issue over a
 * slow origin: a write must not wait for that).  Reads go on throughout;
 * discards wait; a write waits only for the read: before or after it, a
 * write may overwrite the slot and marks the block SE_REDIRTY, which keeps
 * it dirty when the run ends.  A dirty bit is cleared only after the origin
 * write completed, so a dirty block is never lost; on an error it stays
 * dirty and the next pass retries after a back-off.
 *
 * Throttling: at most tunables.wb_inflight runs are in flight, each at most
 * STASH_WB_RUN_BYTES, so foreground I/O keeps most of the devices; the pass
 * makes progress regardless of foreground load because user writes never
 * re-dirty a block that a pass has already taken.  The throttle
 * (stash-throttle.c) lowers that limit and pauses between runs when the
 * foreground suffers.
 *
 * Why not dm-kcopyd: a kcopyd job copies one source region.  A run gathers
 * blocks that are neighbours on the origin from wherever their slots are
 * on the cache device (one read per stretch of neighbouring slots) into
 * one buffer, and writes them with one origin write: in the bench's drain
 * of 32768 sequentially written blocks, 134 origin writes of 978 KiB on
 * average (docs/bench/results.md).  Copied by kcopyd, every stretch of
 * neighbouring slots would be an origin write of its own, and the origin
 * would depend on its queue's merging for what a run guarantees.  Fills
 * (one block, one region) do use kcopyd (stash-io.c, fill_by_copy()).
 */
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/sort.h>
#include <linux/vmalloc.h>

#include "dm-stash.h"

void stash_wb_kick(struct stash_cache *sc)
{
	queue_work(sc->wb.wq, &sc->wb.work);
}

static unsigned long waker_period(struct stash_cache *sc)
{
	u32 idle = READ_ONCE(sc->tun.idle_ms);

	return msecs_to_jiffies(idle ? clamp(idle / 4, 10u, 1000u) : 1000);
}

/* Called after a block became dirty: the waker watches for idleness. */
void stash_wb_arm_waker(struct stash_cache *sc)
{
	if (!delayed_work_pending(&sc->wb.waker))
		queue_delayed_work(sc->wb.wq, &sc->wb.waker, waker_period(sc));
}

void stash_wb_retune(struct stash_cache *sc)
{
	stash_wb_kick(sc);
	wake_up(&sc->wb.wait);
}

void stash_wb_request_drain(struct stash_cache *sc)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	sc->wb.drain_requested = true;
	spin_unlock_irqrestore(&sc->lock, flags);
	stash_wb_kick(sc);
}

/*
 * The cache is clean: free the run buffers beyond slot 0's (see
 * get_run_slot()).  Each slot is claimed while its buffer goes.
 */
static void trim_run_buffers(struct stash_cache *sc)
{
	u32 slot;

	for (slot = 1; slot < STASH_WB_SLOTS; slot++) {
		struct stash_wb_run *run = sc->wb.runs[slot];

		if (!READ_ONCE(run->buf) ||
		    !test_and_clear_bit(slot, &sc->wb.slots_free))
			continue;
		vfree(run->buf);
		WRITE_ONCE(run->buf, NULL);
		/* The slot is released after its buffer is gone. */
		smp_mb__before_atomic();
		set_bit(slot, &sc->wb.slots_free);
		wake_up(&sc->wb.wait);
	}
}

/* Periodic while blocks are dirty; never runs on a clean cache. */
static void waker_fn(struct work_struct *ws)
{
	struct stash_cache *sc = container_of(to_delayed_work(ws),
					      struct stash_cache, wb.waker);
	u32 idle = READ_ONCE(sc->tun.idle_ms);
	unsigned long flags;
	bool dirty, flushes;

	spin_lock_irqsave(&sc->lock, flags);
	dirty = sc->dirty.nr_set;
	if (dirty && idle &&
	    time_after_eq(jiffies, READ_ONCE(sc->last_io) + msecs_to_jiffies(idle)))
		sc->wb.drain_requested = true;
	flushes = !bio_list_empty(&sc->wb.flush_waiting);
	spin_unlock_irqrestore(&sc->lock, flags);
	if (!dirty) {
		/* A flush parked while a back-off held the pass back. */
		if (flushes)
			stash_wb_kick(sc);
		trim_run_buffers(sc);
		return;
	}
	stash_wb_kick(sc);
	queue_delayed_work(sc->wb.wq, &sc->wb.waker, waker_period(sc));
}

const char *stash_wb_state(struct stash_cache *sc)
{
	if (READ_ONCE(sc->mode) != STASH_MODE_WRITEBACK &&
	    READ_ONCE(sc->dirty.nr_set))
		return "draining";
	if (!READ_ONCE(sc->wb.pass_active))
		return "idle";
	return READ_ONCE(sc->wb.pass_is_drain) ? "flushing" : "writeback";
}

/*
 * ---- Runs ----
 */

/* Under sc->lock: count written-back blocks per second of wall time. */
static void account_rate_locked(struct stash_cache *sc, u32 blocks)
{
	u64 now = ktime_get_seconds();

	if (now != sc->wb.rate_second) {
		sc->wb.rate_last = now == sc->wb.rate_second + 1 ?
				   sc->wb.rate_current : 0;
		sc->wb.rate_current = 0;
		sc->wb.rate_second = now;
	}
	sc->wb.rate_current += blocks;
}

/* Blocks written back during the last complete second. */
u64 stash_wb_rate(struct stash_cache *sc)
{
	u64 now = ktime_get_seconds(), second = READ_ONCE(sc->wb.rate_second);

	if (now == second)
		return READ_ONCE(sc->wb.rate_last);
	return now == second + 1 ? READ_ONCE(sc->wb.rate_current) : 0;
}

static void run_finish(struct stash_wb_run *run)
{
	struct stash_cache *sc = run->sc;
	unsigned long flags;
	bool kick;
	u32 i;

	spin_lock_irqsave(&sc->lock, flags);
	for (i = 0; i < run->nr_blocks; i++) {
		u32 c = run->cblocks[i];
		bool rewritten = stash_map_writeback_end(&sc->map, to_cblock(c),
							 !run->reads_released);

		sc->wb.nr_writeback--;
		if (run->failed) {
			sc->stats.writeback_errors++;
			continue;
		}
		/* The origin got the data the run read, not the newer write. */
		if (rewritten)
			continue;
		if (stash_clear_dirty(sc, c)) {
			sc->stats.written_back++;
			/*
			 * Until a commit records it clean after an origin
			 * flush, the slot holds the block's one durable copy:
			 * not reusable (stash-metadata.c, encode_page_locked()).
			 */
			if (!sc->is_volatile)
				stash_md_note_cleaned(&sc->md, c);
		}
	}
	if (run->failed)
		sc->wb.pass_failed = true;
	else
		account_rate_locked(sc, run->nr_blocks);
	/* A pass left with busy blocks only waits for this (wb_work_fn()). */
	sc->wb.events++;
	kick = !bio_list_empty(&sc->deferred);
	spin_unlock_irqrestore(&sc->lock, flags);

	if (run->failed)
		stash_err_ratelimited(sc, "writeback of %u blocks at origin block %llu failed; they stay dirty",
				      run->nr_blocks, run->first_oblock);
	if (kick)
		stash_kick_worker(sc);
	/*
	 * Writes waiting for a slot need these blocks recorded clean before
	 * they can be reused: commit now rather than at the next tick.
	 */
	if (kick && !sc->is_volatile && !run->failed)
		stash_md_kick(&sc->md);
	/* The blocks cleaned are recorded by a commit of the timer. */
	stash_md_note_io(sc);
	/* For the throttle's timing of user I/O (stash_throttle_end()). */
	WRITE_ONCE(sc->wb.last_run_end_ns, ktime_get_ns());
	/*
	 * Last: the slot (and @run) may be the next run's at once, and
	 * suspend (stash_wb_stop()) waits for no run in flight before it
	 * stops the commits.  The reads of @run above come first.
	 */
	smp_mb__before_atomic();
	set_bit(run->slot, &sc->wb.slots_free);
	/* Whoever stops writeback once it is 0 may free @sc. */
	stash_dec_wake(&sc->wb.inflight, &sc->wb.wait);
}

static void run_write_done(unsigned long error, void *context)
{
	struct stash_wb_run *run = context;

	/*
	 * On a volatile or failed cache a user's flush must cover this write:
	 * the block is about to be clean, so the origin holds its only copy.
	 * On a persistent one the slot stays recorded dirty (or not reusable)
	 * until a commit that flushes the origin first; user flushes need not
	 * wait for it.  fail_cache() counts one write for those before it.
	 */
	if (error)
		run->failed = true;
	else if (run->sc->is_volatile || stash_cache_failed(run->sc))
		atomic64_inc(&run->sc->origin_writes_done);
	run_finish(run);
}

static void run_read_done(unsigned long error, void *context)
{
	struct stash_wb_run *run = context;

	if (error) {
		run->failed = true;
		stash_cache_error(run->sc);
	}
	if (atomic_dec_and_test(&run->reads_pending))
		complete(&run->reads_done);
}

static size_t wb_buf_bytes(struct stash_cache *sc)
{
	return max_t(size_t, sc->block_sectors << SECTOR_SHIFT,
		     STASH_WB_RUN_BYTES);
}

/* A free run slot that has its buffer (slot 0's always has). */
static bool wb_buffered_slot_free(struct stash_cache *sc)
{
	u32 slot;

	for_each_set_bit(slot, &sc->wb.slots_free, STASH_WB_SLOTS)
		if (READ_ONCE(sc->wb.runs[slot]->buf))
			return true;
	return false;
}

/*
 * Claim a run slot, one of at most tunables.wb_inflight in flight.  Only
 * slot 0's buffer is allocated with the table, which is enough for
 * writeback to go on; the others are allocated when a pass has more runs
 * in flight (no retries: without memory it waits for a run with a buffer
 * to end) and freed once the cache is clean (trim_run_buffers()), so
 * a volume that is not writing back keeps one buffer, not
 * STASH_WB_SLOTS.  A claimed slot's buffer is the claimer's to change.
 */
static struct stash_wb_run *get_run_slot(struct stash_cache *sc)
{
	struct stash_wb_run *run;
	u32 slot;

	wait_event(sc->wb.wait, atomic_read(&sc->wb.inflight) <
				stash_throttle_limit(sc));
	atomic_inc(&sc->wb.inflight);
	for (;;) {
		run = NULL;
		for_each_set_bit(slot, &sc->wb.slots_free, STASH_WB_SLOTS) {
			if (READ_ONCE(sc->wb.runs[slot]->buf) &&
			    test_and_clear_bit(slot, &sc->wb.slots_free)) {
				run = sc->wb.runs[slot];
				break;
			}
		}
		if (!run) {
			slot = find_first_bit(&sc->wb.slots_free, STASH_WB_SLOTS);
			if (slot >= STASH_WB_SLOTS) {
				/* trim_run_buffers() holds the free one a moment. */
				wait_event(sc->wb.wait, READ_ONCE(sc->wb.slots_free));
				continue;
			}
			if (!test_and_clear_bit(slot, &sc->wb.slots_free))
				continue;
			run = sc->wb.runs[slot];
		}
		if (run->buf)
			return run;
		run->buf = __vmalloc(wb_buf_bytes(sc),
				     GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN);
		if (run->buf)
			return run;
		/* Released as it was claimed, without a buffer. */
		smp_mb__before_atomic();
		set_bit(slot, &sc->wb.slots_free);
		wait_event(sc->wb.wait, wb_buffered_slot_free(sc));
	}
}

/*
 * The run has its data: writes to its blocks need not wait any longer (they
 * mark them SE_REDIRTY instead).
 */
static void release_slots(struct stash_cache *sc, struct stash_wb_run *run)
{
	unsigned long flags;
	bool kick;

	spin_lock_irqsave(&sc->lock, flags);
	stash_map_writeback_release(&sc->map, run->cblocks, run->nr_blocks);
	run->reads_released = true;
	kick = !bio_list_empty(&sc->deferred);
	spin_unlock_irqrestore(&sc->lock, flags);
	if (kick)
		stash_kick_worker(sc);
}

/*
 * Make the run's blocks SE_BUSY for its read if no user write is in flight
 * to any of them (such a write holds SE_BUSY briefly: the cache device
 * write); otherwise ask to be woken when a busy block is released
 * (wake_deferred_locked() in stash-io.c).  All at once, so that the run
 * never holds some blocks while it waits for others.
 */
static bool try_take_slots(struct stash_cache *sc, struct stash_wb_run *run)
{
	unsigned long flags;
	bool taken;

	spin_lock_irqsave(&sc->lock, flags);
	taken = stash_map_writeback_take(&sc->map, run->cblocks, run->nr_blocks);
	if (!taken)
		sc->wb.busy_waits = true;
	spin_unlock_irqrestore(&sc->lock, flags);
	return taken;
}

/*
 * Checksums: the run's blocks, read and still busy, must match theirs, or
 * the origin would get the damage.  A block that does not is marked bad
 * (collect() skips it from now on) and the run fails: its other blocks are
 * written back by a later pass, without it.
 */
static void run_check(struct stash_cache *sc, struct stash_wb_run *run)
{
	unsigned int block_bytes = sc->block_sectors << SECTOR_SHIFT;
	unsigned long flags;
	u32 i;

	for (i = 0; i < run->nr_blocks; i++) {
		u32 c = run->cblocks[i];

		spin_lock_irqsave(&sc->lock, flags);
		if (stash_csum_check_block_locked(sc, c, run->buf +
						  (size_t)i * block_bytes)) {
			spin_unlock_irqrestore(&sc->lock, flags);
			continue;
		}
		sc->checksum_errors++;
		sc->stats.cache_errors++;
		stash_csum_mark_bad_locked(sc, to_cblock(c));
		spin_unlock_irqrestore(&sc->lock, flags);
		stash_err_ratelimited(sc, "checksum mismatch on dirty block %llu (cache block %u)",
				      run->first_oblock + i, c);
		stash_cache_error(sc);
		run->failed = true;
	}
}

/* Read the run's blocks from the cache, then write them to the origin. */
static void run_issue(struct stash_cache *sc, struct stash_wb_run *run)
{
	unsigned int block_bytes = sc->block_sectors << SECTOR_SHIFT;
	struct dm_io_request req = {
		.bi_opf = REQ_OP_READ,
		.mem.type = DM_IO_VMA,
		.notify.fn = run_read_done,
		.notify.context = run,
		.client = sc->io_client,
	};
	struct dm_io_region region;
	u32 i, n;

	run->failed = false;
	run->reads_released = false;
	wait_event(sc->wb.wait, try_take_slots(sc, run));
	init_completion(&run->reads_done);
	/* One read per stretch of neighbouring slots; one count for setup. */
	atomic_set(&run->reads_pending, 1);
	for (i = 0; i < run->nr_blocks; i += n) {
		for (n = 1; i + n < run->nr_blocks &&
		     run->cblocks[i + n] == run->cblocks[i] + n; n++)
			;
		region.bdev = sc->cache_dev->bdev;
		region.sector = sc->data_start +
				((sector_t)run->cblocks[i] << sc->block_shift);
		region.count = (sector_t)n << sc->block_shift;
		req.mem.ptr.vma = run->buf + (size_t)i * block_bytes;
		atomic_inc(&run->reads_pending);
		if (stash_dm_io(&req, &region))
			run_read_done(1, run);
	}
	run_read_done(0, run);
	wait_for_completion(&run->reads_done);
	if (sc->csum && !run->failed)
		run_check(sc, run);
	if (run->failed) {
		run_finish(run);
		return;
	}
	release_slots(sc, run);

	/*
	 * Flagged as block/fops.c flags a direct write (REQ_SYNC | REQ_IDLE):
	 * the block layer's writeback throttle (blk-wbt) takes any other
	 * write for the page cache's background writeback and keeps at
	 * most half the origin's queue depth of them in flight (all of it
	 * with REQ_SYNC alone, counting those its scheduler holds), less as
	 * the origin's latency grows.  Our throttle (stash-throttle.c)
	 * already weighs writeback against the foreground.  On an origin
	 * with a queue of 4 (the bench's 10 MB/s disk) plain writes kept 2
	 * in flight and drained at 0.56x its bandwidth, REQ_SYNC alone at
	 * 0.74x, these at 0.84x (docs/bench/drain.md).
	 */
	req.bi_opf = REQ_OP_WRITE | REQ_SYNC | REQ_IDLE;
	req.mem.ptr.vma = run->buf;
	req.notify.fn = run_write_done;
	region.bdev = sc->origin_dev->bdev;
	region.sector = run->first_oblock << sc->block_shift;
	region.count = (sector_t)run->nr_blocks << sc->block_shift;
	if (stash_dm_io(&req, &region))
		run_write_done(1, run);
}

static int cmp_candidate(const void *a, const void *b)
{
	const struct stash_wb_candidate *x = a, *y = b;

	if (x->oblock != y->oblock)
		return x->oblock < y->oblock ? -1 : 1;
	return 0;
}

/* Sort the batch by origin block and issue it as merged runs. */
static void issue_batch(struct stash_cache *sc, u32 n)
{
	struct stash_wb_candidate *b = sc->wb.batch;
	struct stash_wb_run *run = NULL;
	u32 i;

	sort(b, n, sizeof(*b), cmp_candidate, NULL);
	for (i = 0; i < n; i++) {
		if (run && (b[i].oblock != run->first_oblock + run->nr_blocks ||
			    run->nr_blocks == sc->wb.run_max_blocks)) {
			run_issue(sc, run);
			run = NULL;
		}
		if (!run) {
			/*
			 * A batch of scattered blocks may take seconds: the
			 * throttle looks between its runs too.
			 */
			stash_throttle_tick(sc);
			run = get_run_slot(sc);
			run->first_oblock = b[i].oblock;
			run->nr_blocks = 0;
		}
		run->cblocks[run->nr_blocks++] = b[i].cblock;
	}
	if (run)
		run_issue(sc, run);
}

/*
 * ---- Passes ----
 */

enum collect_result {
	COLLECT_IDLE = -1,	/* nothing to do */
	COLLECT_AGAIN = -2,	/* state changed: collect again */
	COLLECT_BUSY = -3,	/* only busy blocks left: wait a little */
};

/* Under sc->lock: should a pass start, and of which kind? */
static bool start_pass_locked(struct stash_cache *sc)
{
	bool drain;

	if (!sc->dirty.nr_set) {
		sc->wb.drain_requested = false;
		return false;
	}
	if (sc->wb.stopped)
		return false;
	if (time_before(jiffies, sc->wb.backoff_until))
		return false;
	drain = sc->wb.drain_requested || !bio_list_empty(&sc->wb.flush_waiting) ||
		READ_ONCE(sc->mode) != STASH_MODE_WRITEBACK ||
		stash_cache_failed(sc);
	/* Writes waiting for a slot start writeback whatever the watermark. */
	if (!drain && !sc->wb.need_space &&
	    !stash_dirty_above(sc, READ_ONCE(sc->tun.high_wm)))
		return false;
	sc->wb.need_space = false;

	sc->wb.pass_active = true;
	sc->wb.passes++;
	sc->wb.pass_is_drain = drain;
	sc->wb.pass_failed = false;
	sc->wb.pass_cursor = 0;
	sc->wb.drain_requested = false;
	if (drain) {
		sc->wb.drains_started++;
		bio_list_merge(&sc->wb.flush_pass, &sc->wb.flush_waiting);
		bio_list_init(&sc->wb.flush_waiting);
	}
	stash_bitmap_copy(&sc->wb.pass, &sc->dirty);
	return true;
}

/*
 * Under sc->lock: after a pass with errors, the next one waits, twice as
 * long as last time (STASH_WB_BACKOFF_MIN_MS..STASH_WB_BACKOFF_MAX_MS); a
 * pass without errors ends the back-off.
 */
static void backoff_locked(struct stash_cache *sc, bool failed)
{
	if (!failed) {
		sc->wb.backoff_ms = 0;
		return;
	}
	sc->wb.backoff_ms = clamp_t(u32, sc->wb.backoff_ms * 2,
				    STASH_WB_BACKOFF_MIN_MS,
				    STASH_WB_BACKOFF_MAX_MS);
	sc->wb.backoff_until = jiffies + msecs_to_jiffies(sc->wb.backoff_ms);
}

/* Under sc->lock; the lock is dropped and taken again. */
static void end_pass_locked(struct stash_cache *sc, unsigned long *flags)
	__must_hold(&sc->lock)
{
	struct bio_list flushes = BIO_EMPTY_LIST;
	bool failed = sc->wb.pass_failed;

	sc->wb.pass_active = false;
	stash_bitmap_zero(&sc->wb.pass);
	backoff_locked(sc, failed);
	/* A drain that left blocks dirty is still wanted: retry it. */
	if (failed && sc->wb.pass_is_drain)
		sc->wb.drain_requested = true;
	if (sc->wb.pass_is_drain) {
		sc->wb.drains_completed++;
		bio_list_merge(&flushes, &sc->wb.flush_pass);
		bio_list_init(&sc->wb.flush_pass);
	}
	spin_unlock_irqrestore(&sc->lock, *flags);

	stash_submit_flushes(sc, &flushes, failed);
	wake_up_all(&sc->wb.drain_wait);
	if (failed)
		stash_wb_arm_waker(sc);
	spin_lock_irqsave(&sc->lock, *flags);
}

/*
 * Under sc->lock, which is dropped and taken again: nothing is dirty, so
 * the flushes waiting for a drain pass have nothing to wait for (a pass,
 * discards or failed writes cleaned the last block before one started).
 */
static void release_flushes_locked(struct stash_cache *sc,
				   unsigned long *flags)
	__must_hold(&sc->lock)
{
	struct bio_list flushes = BIO_EMPTY_LIST;

	bio_list_merge(&flushes, &sc->wb.flush_waiting);
	bio_list_init(&sc->wb.flush_waiting);
	spin_unlock_irqrestore(&sc->lock, *flags);
	stash_submit_flushes(sc, &flushes, false);
	spin_lock_irqsave(&sc->lock, *flags);
}

/*
 * Pick the next dirty blocks of the pass, mark them SE_WRITEBACK and put
 * them in sc->wb.batch.  Returns how many, or a collect_result.
 */
static int collect(struct stash_cache *sc, u32 max)
{
	u32 n = 0, i, start;
	bool skipped = false, done;
	unsigned long flags;
	int r;

	spin_lock_irqsave(&sc->lock, flags);
	if (!sc->wb.pass_active && !start_pass_locked(sc)) {
		r = COLLECT_IDLE;
		if (!sc->dirty.nr_set && !bio_list_empty(&sc->wb.flush_waiting))
			release_flushes_locked(sc, &flags);
		goto out;
	}
	/* A watermark pass stops at the low watermark; any pass at suspend. */
	done = sc->wb.stopped || (!sc->wb.pass_is_drain &&
		!stash_dirty_above(sc, READ_ONCE(sc->tun.low_wm)));

	start = sc->wb.pass_cursor;
	for (i = done ? sc->nr_cblocks : stash_bitmap_next(&sc->wb.pass, start);
	     i < sc->nr_cblocks && n < max;
	     i = stash_bitmap_next(&sc->wb.pass, i + 1)) {
		cblock_t c = to_cblock(i);

		if (!stash_bitmap_test(&sc->dirty, i)) {
			stash_bitmap_clear(&sc->wb.pass, i);
			continue;
		}
		if (stash_map_is_held(&sc->map, c)) {
			skipped = true;
			continue;
		}
		/* Failed its checksum: the pass fails rather than copy it. */
		if (sc->csum_bad && test_bit(i, sc->csum_bad)) {
			stash_bitmap_clear(&sc->wb.pass, i);
			sc->wb.pass_failed = true;
			sc->stats.writeback_errors++;
			continue;
		}
		stash_map_writeback_begin(&sc->map, c);
		stash_bitmap_clear(&sc->wb.pass, i);
		sc->wb.nr_writeback++;
		sc->wb.batch[n].oblock = from_oblock(stash_map_oblock(&sc->map, c));
		sc->wb.batch[n].cblock = i;
		n++;
	}
	sc->wb.pass_cursor = i < sc->nr_cblocks ? i : 0;
	if (n) {
		r = n;
		goto out;
	}
	if (done || !sc->wb.pass.nr_set) {
		if (atomic_read(&sc->wb.inflight)) {
			spin_unlock_irqrestore(&sc->lock, flags);
			wait_event(sc->wb.wait, !atomic_read(&sc->wb.inflight));
			return COLLECT_AGAIN;
		}
		end_pass_locked(sc, &flags);
		r = COLLECT_AGAIN;
	} else if (start || !skipped) {
		r = COLLECT_AGAIN;
	} else {
		/*
		 * Only blocks that a user write or a run holds are left: wait
		 * for one to be released (wake_deferred_locked()) or a run
		 * to end (run_finish()), whichever comes first.
		 */
		sc->wb.busy_waits = true;
		sc->wb.events_seen = sc->wb.events;
		r = COLLECT_BUSY;
	}
out:
	spin_unlock_irqrestore(&sc->lock, flags);
	return r;
}

static void wb_work_fn(struct work_struct *ws)
{
	struct stash_cache *sc = container_of(ws, struct stash_cache, wb.work);
	unsigned int noio = memalloc_noio_save();
	size_t block_bytes = sc->block_sectors << SECTOR_SHIFT;
	u64 issued = 0;
	int n;

	for (;;) {
		/* The throttle (stash-throttle.c) before a batch is taken. */
		stash_throttle_wait(sc, issued);
		issued = 0;
		n = collect(sc, stash_throttle_batch(sc));
		if (n == COLLECT_IDLE) {
			/* Nothing to do: a drain waiter may find the cache clean. */
			wake_up_all(&sc->wb.drain_wait);
			break;
		}
		if (n == COLLECT_BUSY) {
			wait_event(sc->wb.wait,
				   READ_ONCE(sc->wb.events) != sc->wb.events_seen ||
				   READ_ONCE(sc->wb.stopped));
			continue;
		}
		if (n > 0) {
			issue_batch(sc, n);
			issued = (u64)n * block_bytes;
		}
		cond_resched();
	}
	memalloc_noio_restore(noio);
}

/*
 * Write back every dirty block and wait.  Returns 0, or -EIO if blocks
 * stay dirty because the origin or the cache device failed.
 */
int stash_wb_drain_sync(struct stash_cache *sc)
{
	unsigned long flags;
	u64 target;
	bool failed;

	for (;;) {
		spin_lock_irqsave(&sc->lock, flags);
		if (!sc->dirty.nr_set) {
			spin_unlock_irqrestore(&sc->lock, flags);
			return 0;
		}
		/* Someone waits: the throttle holds nothing back. */
		atomic_inc(&sc->wb.urgent);
		sc->wb.drain_requested = true;
		sc->wb.backoff_until = jiffies;
		target = sc->wb.drains_started + 1;
		spin_unlock_irqrestore(&sc->lock, flags);

		stash_wb_kick(sc);
		/*
		 * A pass already running may clean the last block first; then
		 * no drain pass starts, so a clean cache ends the wait too.
		 */
		wait_event(sc->wb.drain_wait,
			   READ_ONCE(sc->wb.drains_completed) >= target ||
			   !READ_ONCE(sc->dirty.nr_set));
		atomic_dec(&sc->wb.urgent);
		spin_lock_irqsave(&sc->lock, flags);
		failed = sc->wb.pass_failed && sc->dirty.nr_set;
		spin_unlock_irqrestore(&sc->lock, flags);
		if (failed)
			return -EIO;
	}
}

/* Suspend of a persistent cache: finish the runs in flight, start none. */
void stash_wb_stop(struct stash_cache *sc)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	sc->wb.stopped = true;
	spin_unlock_irqrestore(&sc->lock, flags);
	/* A pass waiting for busy blocks stops waiting (wb_work_fn()). */
	wake_up(&sc->wb.wait);
	cancel_delayed_work_sync(&sc->wb.waker);
	flush_work(&sc->wb.work);
	stash_wait_gone(&sc->wb.inflight, &sc->wb.wait);
}

void stash_wb_start(struct stash_cache *sc)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	sc->wb.stopped = false;
	spin_unlock_irqrestore(&sc->lock, flags);
	stash_wb_kick(sc);
	stash_wb_arm_waker(sc);
}

/*
 * ---- Setup ----
 */

int stash_wb_create(struct stash_cache *sc)
{
	size_t block_bytes = sc->block_sectors << SECTOR_SHIFT;
	u32 i;

	sc->wb.run_max_blocks = wb_buf_bytes(sc) / block_bytes;
	stash_md_init_work(sc);
	atomic_set(&sc->wb.inflight, 0);
	atomic_set(&sc->wb.urgent, 0);
	init_waitqueue_head(&sc->wb.wait);
	init_waitqueue_head(&sc->wb.drain_wait);
	INIT_WORK(&sc->wb.work, wb_work_fn);
	INIT_DELAYED_WORK(&sc->wb.waker, waker_fn);
	bio_list_init(&sc->wb.flush_waiting);
	bio_list_init(&sc->wb.flush_pass);

	if (stash_bitmap_init(&sc->wb.pass, sc->nr_cblocks) ||
	    stash_throttle_init(sc))
		goto bad;
	sc->wb.batch = kvcalloc(STASH_WB_BATCH, sizeof(*sc->wb.batch),
				STASH_GFP_TABLE);
	if (!sc->wb.batch)
		goto bad;
	for (i = 0; i < STASH_WB_SLOTS; i++) {
		struct stash_wb_run *run;

		run = kzalloc(struct_size(run, cblocks, sc->wb.run_max_blocks),
			      GFP_KERNEL);
		if (!run)
			goto bad;
		sc->wb.runs[i] = run;
		run->sc = sc;
		run->slot = i;
		/* The others when a pass needs them (get_run_slot()). */
		if (!i) {
			run->buf = __vmalloc(wb_buf_bytes(sc), STASH_GFP_TABLE);
			if (!run->buf)
				goto bad;
		}
		set_bit(i, &sc->wb.slots_free);
	}
	/* Writeback, commits and the two timers may all run at once. */
	sc->wb.wq = alloc_workqueue("dm-stash-wb", WQ_MEM_RECLAIM | WQ_UNBOUND, 4);
	if (!sc->wb.wq)
		goto bad;
	if (stash_md_create_queue(sc))
		goto bad;
	return 0;

bad:
	stash_wb_destroy(sc);
	return -ENOMEM;
}

void stash_wb_destroy(struct stash_cache *sc)
{
	u32 i;

	if (sc->wb.wq) {
		stash_md_cancel_work(sc);
		cancel_delayed_work_sync(&sc->wb.waker);
		cancel_work_sync(&sc->wb.work);
		/* A volatile suspend that drained did not stop writeback. */
		stash_wait_gone(&sc->wb.inflight, &sc->wb.wait);
		destroy_workqueue(sc->wb.wq);
		sc->wb.wq = NULL;
	}
	stash_md_destroy_queue(sc);
	for (i = 0; i < STASH_WB_SLOTS; i++) {
		if (sc->wb.runs[i])
			vfree(sc->wb.runs[i]->buf);
		kfree(sc->wb.runs[i]);
		sc->wb.runs[i] = NULL;
	}
	kvfree(sc->wb.batch);
	sc->wb.batch = NULL;
	stash_throttle_exit(sc);
	stash_bitmap_exit(&sc->wb.pass);
}
