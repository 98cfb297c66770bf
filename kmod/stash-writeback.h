/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Writeback (stash-writeback.c) and its throttle (stash-throttle.c): copies
 * dirty blocks from the cache device to the origin, in passes, in origin
 * order.  The top of stash-writeback.c describes passes and runs, the top
 * of stash-throttle.c how writeback yields to foreground I/O.
 *
 * An object of its own: its state is struct stash_wb, embedded in struct
 * stash_cache as sc->wb.  Only stash-writeback.c and stash-throttle.c use
 * its fields (the throttle is part of writeback: it steers nothing else and
 * reads the pass's state); the rest of the module calls the functions
 * below (tests/build/check-wb-private.sh, run by "make lint", checks it).
 * Those the I/O path calls per bio or under sc->lock are inline and
 * take &sc->wb (this header comes before struct stash_cache, as the map's
 * does); the others take the cache.  stash_wb_block_released() is
 * __always_inline: as a plain inline function it changed GCC's inlining of
 * the I/O path around it (the same code, laid out otherwise); forced, the
 * I/O path compiles as it did when it used the fields itself.
 *
 * What is whose:
 *  - The dirty bitmap (sc->dirty) is not writeback's but the cache's, as
 *    dm-cache's dirty bitset is its target's: the I/O path sets bits
 *    (write-back writes) and clears them (discards, failed writes), the
 *    metadata loads and records them, the map reads them on each eviction,
 *    the status counts them; writeback reads them and clears a block's bit
 *    once its origin write is done, through stash_clear_dirty() as everyone
 *    else.  Writeback owns only the snapshot its pass cleans.
 *  - The flushes waiting for a drain pass are writeback's: on a volatile or
 *    failed cache an origin flush must come after the writeback of every
 *    block dirty when it came, which only writeback's passes know.  The I/O
 *    path hands such a flush over (stash_wb_add_flush()); writeback sends
 *    it on when its drain pass ends, or at once if the cache became clean
 *    first (stash_submit_flushes()).
 *  - need_space is writeback's: the I/O path's request for a pass
 *    (stash_wb_want_space()); the metadata asks about it
 *    (stash_wb_space_wanted()) to record cleaned blocks at once.
 *  - Writeback's queue also runs the metadata's commit timer
 *    (stash_wb_queue()).  So stash_wb_create() has the metadata set up its
 *    commit work first and create its queue last (stash_md_init_work(),
 *    stash_md_create_queue()), and stash_wb_destroy() has it cancel the
 *    timer and the work before writeback's queue goes and destroy its queue
 *    after (stash_md_cancel_work(), stash_md_destroy_queue()): the order of
 *    the teardown is in one place.
 *  - A block written back on a persistent cache is the metadata's to
 *    record: run_finish() tells it (stash_md_note_cleaned()) and, when
 *    writes wait for a slot, asks for a commit at once (stash_md_kick()).
 *  - Writeback reaches outside itself for: the map (stash-map.h), the
 *    dirty bitmap, the checksums' csum_bad (collect()), and the I/O path's
 *    deferred list and origin_writes_done.  docs/design.md lists these
 *    couplings.
 *
 * Context: "any context" means hard or soft IRQ too (bio and dm-io
 * completions); such a call does not sleep.  sc->lock is the cache's one
 * spinlock (irqsave); a call documented "not under sc->lock" takes it
 * itself.
 */
#ifndef STASH_WRITEBACK_H
#define STASH_WRITEBACK_H

#include <linux/types.h>
#include <linux/atomic.h>
#include <linux/bio.h>
#include <linux/completion.h>
#include <linux/percpu.h>
#include <linux/timekeeping.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "stash-bitmap.h"

struct stash_cache;

/*
 * Runs in flight at most (writeback_inflight's max in
 * linux/dm-stash-tunables.h: a build check keeps them equal), and the
 * bytes one run may merge.
 */
#define STASH_WB_SLOTS			8
#define STASH_WB_RUN_BYTES		(1024u * 1024)
#define STASH_WB_BATCH			4096	/* candidates sorted per round */
/* Writeback retry after a failed pass: doubles from the first to the last. */
#define STASH_WB_BACKOFF_MIN_MS		100
#define STASH_WB_BACKOFF_MAX_MS		10000

/*
 * The writeback throttle (stash-throttle.c).  Foreground latency is summed
 * per CPU, per device (cache, origin) and per phase (a writeback pass
 * running or not); a look every STASH_THROTTLE_MS compares the two phases.
 */
#define STASH_THROTTLE_MS	100
/* Larger user I/O is not timed (a stream's I/O says nothing of queueing). */
#define STASH_THROTTLE_MAX_SECTORS	128

struct stash_lat {
	u64 ns[2][2];		/* [origin][writeback I/O in flight] */
	u64 n[2][2];
	s64 inflight;		/* started minus ended (one CPU's share) */
};

struct stash_throttle {
	struct stash_lat __percpu *lat;	/* cumulative */
	/* The rest: wb_work only (stash_throttle_wait()). */
	struct stash_lat seen;		/* the sums at the last look */
	u64 baseline_ns[2];		/* per device, without writeback */
	u64 pend_ns[2];			/* during passes, since the last decision */
	u64 pend_n[2];
	unsigned long pend_since;	/* jiffies: the last decision */
	u64 pass;			/* stash_wb.passes at the last look */
	unsigned long next_look;	/* jiffies */
	u64 tokens;			/* rate cap: bytes that may go now */
	u64 tokens_ns;			/* when they were counted */
	u32 limit;			/* runs in flight allowed; READ_ONCE */
	u32 pause_us;			/* before each run, at limit 1; READ_ONCE */
	u64 throttled;			/* looks that found foreground I/O slowed */
	u64 paused_us;			/* time it held writeback back; READ_ONCE */
};

/* One merged writeback I/O: contiguous origin blocks, any cache slots. */
struct stash_wb_run {
	struct stash_cache *sc;
	void *buf;			/* STASH_WB_RUN_BYTES or one block */
	u64 first_oblock;
	u32 nr_blocks;
	u32 slot;
	atomic_t reads_pending;
	bool failed;
	bool reads_released;		/* its slots are no longer SE_BUSY */
	struct completion reads_done;
	u32 cblocks[];			/* up to run_max_blocks entries */
};

/* A dirty block picked for writeback (also stash-stranded.c's pair). */
struct stash_wb_candidate {
	u64 oblock;
	u32 cblock;
};

/*
 * Writeback's state: sc->wb, embedded in struct stash_cache (no pointer to
 * follow on the I/O path).
 */
struct stash_wb {
	/*
	 * --- Under sc->lock.  Those marked READ_ONCE are also read without
	 * it (status, the throttle, wb_work's waits) and may be a moment old.
	 */
	struct stash_bitmap pass;	/* dirty blocks the current pass must clean */
	/*
	 * Flushes for the next drain pass, and those the current drain pass
	 * completes (the throttle looks at both without the lock).
	 */
	struct bio_list flush_waiting;
	struct bio_list flush_pass;
	bool drain_requested;		/* a full drain is wanted */
	bool pass_active;		/* READ_ONCE */
	bool pass_is_drain;		/* cleans the whole snapshot; READ_ONCE */
	bool pass_failed;
	u32 pass_cursor;
	u32 nr_writeback;		/* blocks in writeback runs; READ_ONCE */
	u64 passes;			/* passes started; READ_ONCE */
	u64 drains_started;
	u64 drains_completed;		/* READ_ONCE */
	unsigned long backoff_until;	/* jiffies: no pass before this */
	u32 backoff_ms;			/* the last back-off, 0 after a good pass; READ_ONCE */
	bool stopped;			/* suspended: no new writeback; READ_ONCE */
	bool need_space;		/* a write waits for a clean slot; READ_ONCE */
	bool busy_waits;		/* wb_work waits for a busy block */
	u32 events;			/* runs ended, busy blocks released; READ_ONCE */
	u64 rate_second;		/* the rate: the second counted; READ_ONCE */
	u64 rate_current;		/* blocks in that second so far; READ_ONCE */
	u64 rate_last;			/* blocks in the second before it; READ_ONCE */

	/* --- Without the lock. --- */
	bool suspending;		/* presuspend to resume: READ_ONCE/WRITE_ONCE */
	/*
	 * Runs in flight: drops under wait's lock (run_finish()), which
	 * whoever stops or frees writeback once it is 0 takes first.
	 */
	atomic_t inflight;
	/*
	 * When the last run ended (ktime ns; WRITE_ONCE): a timed I/O that
	 * began before it overlapped writeback even if none is in flight
	 * when it ends (stash_throttle_end()).
	 */
	u64 last_run_end_ns;
	atomic_t urgent;		/* drains someone waits for */
	unsigned long slots_free;	/* a bit per free run slot (atomic bit ops) */
	/* A run finished, or a busy block writeback waits for went. */
	wait_queue_head_t wait;
	wait_queue_head_t drain_wait;	/* a drain pass finished */

	/* --- wb_work only. --- */
	u32 events_seen;		/* written under sc->lock */
	struct stash_wb_candidate *batch;
	struct stash_throttle throttle;	/* see struct stash_throttle */

	/* --- Set up by stash_wb_create(). --- */
	struct workqueue_struct *wq;	/* work, waker; the commit timer too */
	struct work_struct work;	/* "wb_work", wb_work_fn(): passes and runs */
	struct delayed_work waker;	/* waker_fn(): idle drain, buffer trim */
	struct stash_wb_run *runs[STASH_WB_SLOTS];	/* a claimed slot's is its claimer's */
	u32 run_max_blocks;
};

/*
 * ---- Life cycle (the target glue, stash-target.c) ----
 */

/*
 * Constructor, after the map: allocate and set up writeback.  Returns 0 or
 * -ENOMEM (what was set up is undone).  Process context, may sleep.
 */
int stash_wb_create(struct stash_cache *sc);

/*
 * Destructor (or a failed constructor): stop the work and the waker, wait
 * for runs in flight, free everything; also has the metadata cancel its
 * commit timer and work and destroy its queue (see "What is whose"
 * above).
 * Process context, may sleep.
 */
void stash_wb_destroy(struct stash_cache *sc);

/*
 * Suspend: finish the runs in flight and start none until
 * stash_wb_start().  Process context, sleeps until no run is in flight;
 * not under sc->lock.
 */
void stash_wb_stop(struct stash_cache *sc);

/* Resume: writeback may run again.  Does not sleep; not under sc->lock. */
void stash_wb_start(struct stash_cache *sc);

/*
 * From presuspend (@on) to resume or an undone presuspend (!@on): writes
 * waiting on writeback hold the suspend, so the throttle holds nothing
 * back.  Any context.
 */
static inline void stash_wb_set_suspending(struct stash_wb *wb, bool on)
{
	WRITE_ONCE(wb->suspending, on);
}

/*
 * ---- Making writeback act ----
 */

/*
 * Writeback's work should look at the state again (blocks dirty, a mode
 * or tunable changed, a flush queued, a write wanting space).  Any
 * context.
 */
void stash_wb_kick(struct stash_cache *sc);

/*
 * A block became dirty: the waker watches for idleness (an idle drain).
 * Any context.
 */
void stash_wb_arm_waker(struct stash_cache *sc);

/*
 * Start a drain of every dirty block (the "flush" message, a failed cache,
 * a volatile suspend) without waiting for it.  Any context; not under
 * sc->lock.
 */
void stash_wb_request_drain(struct stash_cache *sc);

/*
 * A tunable changed (watermarks, idle time, runs in flight): writeback
 * looks at the state again, and a wait for a run slot at its limit.  Any
 * context.
 */
void stash_wb_retune(struct stash_cache *sc);

/*
 * Write back every dirty block and wait.  Returns 0, or -EIO if blocks
 * stay dirty because the origin or the cache device failed.  Process
 * context, sleeps; not under sc->lock.
 */
int stash_wb_drain_sync(struct stash_cache *sc);

/*
 * ---- From the I/O path, under sc->lock ----
 */

/*
 * Under sc->lock, while blocks are dirty: origin flush @bio (of a volatile
 * or failed cache) waits for the next drain pass, which sends it on
 * (stash_submit_flushes()).  The caller kicks writeback once it has
 * dropped the lock.  Writeback owns the flushes from here on: it starts
 * the drain for them, completes them with it, or sends them on at once if
 * the last dirty block went meanwhile.  Any context.
 */
static inline void stash_wb_add_flush(struct stash_wb *wb, struct bio *bio)
{
	bio_list_add(&wb->flush_waiting, bio);
}

/*
 * Under sc->lock: a write found no slot it could take (every one dirty,
 * busy or not yet recorded clean).  The next pass starts whatever the
 * watermark, and until it does the throttle holds nothing back.  The
 * caller kicks writeback once it has dropped the lock.  Any context.
 */
static inline void stash_wb_want_space(struct stash_wb *wb)
{
	wb->need_space = true;
}

/*
 * Under sc->lock, after a block stopped being busy: wake writeback if it
 * waits for one (a run's blocks, try_take_slots(), or a pass left with
 * busy blocks only).  Any context.
 */
static __always_inline void stash_wb_block_released(struct stash_wb *wb)
{
	if (unlikely(wb->busy_waits)) {
		wb->busy_waits = false;
		wb->events++;
		wake_up(&wb->wait);
	}
}

/*
 * ---- For the metadata (stash-metadata.c) ----
 */

/*
 * Under sc->lock: a write waits for a clean slot and no pass has started
 * for it yet (the metadata then records written-back blocks clean at
 * once, so that their slots may be reused).  Any context.
 */
static inline bool stash_wb_space_wanted(const struct stash_wb *wb)
{
	return wb->need_space;
}

/*
 * The queue writeback's work and waker run on; the metadata's commit timer
 * runs on it too (stash-metadata.c).  From stash_wb_create() to
 * stash_wb_destroy(), any context.
 */
static inline struct workqueue_struct *stash_wb_queue(const struct stash_wb *wb)
{
	return wb->wq;
}

/*
 * ---- Status ----
 */

/*
 * "idle", "writeback", "flushing" or "draining" (see stash_status()).  Any
 * context, under sc->lock or not.
 */
const char *stash_wb_state(struct stash_cache *sc);

/* Blocks written back during the last complete second.  Any context. */
u64 stash_wb_rate(struct stash_cache *sc);

/*
 * Counts for status and stash_get_info().  Any context: under sc->lock
 * they agree with each other and with the dirty count, without it each
 * may be a moment old.
 */

/* Blocks picked by writeback whose origin write is not done. */
static inline u32 stash_wb_nr_writeback(const struct stash_wb *wb)
{
	return READ_ONCE(wb->nr_writeback);
}

/* Passes started. */
static inline u64 stash_wb_passes(const struct stash_wb *wb)
{
	return READ_ONCE(wb->passes);
}

/* Drain passes started, and ended. */
static inline u64 stash_wb_drains_started(const struct stash_wb *wb)
{
	return READ_ONCE(wb->drains_started);
}

static inline u64 stash_wb_drains_completed(const struct stash_wb *wb)
{
	return READ_ONCE(wb->drains_completed);
}

/* The back-off before the next pass after a failed one; 0: none. */
static inline u32 stash_wb_backoff_ms(const struct stash_wb *wb)
{
	return READ_ONCE(wb->backoff_ms);
}

/*
 * ---- The throttle (stash-throttle.c) ----
 */

/* Runs in flight allowed now (at most tunables.wb_inflight).  Any context. */
u32 stash_throttle_limit(struct stash_cache *sc);

/* Its pause before each run, at one run in flight, in us.  Any context. */
static inline u32 stash_throttle_pause_us(const struct stash_wb *wb)
{
	return READ_ONCE(wb->throttle.pause_us);
}

/* Its looks that found foreground I/O slowed.  Any context. */
static inline u64 stash_throttle_throttled(const struct stash_wb *wb)
{
	return READ_ONCE(wb->throttle.throttled);
}

/* The time it held writeback back in all, in us.  Any context. */
static inline u64 stash_throttle_paused_us(const struct stash_wb *wb)
{
	return READ_ONCE(wb->throttle.paused_us);
}

/*
 * Timing user I/O (stash-io.c).  stash_throttle_start() (dm-stash.h)
 * decides whether a user read or write is timed and, if so, calls this:
 * it is in flight from now; its start time.  Any context.
 */
static inline u64 stash_throttle_time(struct stash_wb *wb)
{
	this_cpu_inc(wb->throttle.lat->inflight);
	return ktime_get_ns();
}

/*
 * A timed I/O that started at @start_ns ended (@ok: completed) on the
 * origin (@origin) or the cache device.  Any context.
 */
static inline void stash_throttle_end(struct stash_wb *wb, bool origin,
				      u64 start_ns, bool ok)
{
	/*
	 * With writeback: in flight now, or a run ended since it began.
	 * Counting only the former, an I/O slowed by a run and ending in
	 * the gap before the next one counted as without writeback, and
	 * the baseline crept up to the slowed latency during a drain.
	 */
	bool busy = atomic_read(&wb->inflight) ||
		    READ_ONCE(wb->last_run_end_ns) > start_ns;

	this_cpu_dec(wb->throttle.lat->inflight);
	if (!ok)
		return;
	this_cpu_add(wb->throttle.lat->ns[origin][busy],
		     ktime_get_ns() - start_ns);
	this_cpu_inc(wb->throttle.lat->n[origin][busy]);
}

/* For stash-writeback.c only: set up and free (create and destroy). */
int stash_throttle_init(struct stash_cache *sc);
void stash_throttle_exit(struct stash_cache *sc);
/*
 * Before writeback collects a batch (wb_work; may sleep), @bytes written
 * back since the last call: wait as the rate cap and the latency target
 * say, unless someone waits for the writeback.
 */
void stash_throttle_wait(struct stash_cache *sc, u64 bytes);
/*
 * Between the runs of a batch (wb_work): the look, if one is due, so that
 * the runs allowed in flight follow the foreground within a batch too.
 */
void stash_throttle_tick(struct stash_cache *sc);
/* Blocks the next batch may take: one run's worth while throttled or capped. */
u32 stash_throttle_batch(struct stash_cache *sc);

#endif /* STASH_WRITEBACK_H */
