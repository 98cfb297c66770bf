/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The persistent metadata (stash-metadata.c): the superblock, the metadata
 * pages and the commits that write them, the commit timer, the load at the
 * first resume and the clean commit at suspend.  The on-disk format and the
 * recovery rules are in stash-format.h and docs/format.md, the commit
 * protocol at the top of stash-metadata.c.  A volatile cache has no
 * metadata: of these functions it calls only stash_md_check_volatile(),
 * stash_md_prepare(), stash_md_destroy(), those of the commit work's life
 * cycle, stash_md_drops_covered(), stash_md_failed() and
 * stash_md_note_io().
 *
 * An object of its own: its state is struct stash_md, embedded in struct
 * stash_cache as sc->md.  Only stash-metadata.c uses its fields; the rest
 * of the module calls the functions below (tests/build/check-md-private.sh,
 * run by "make lint", checks it).  Those called per bio or under sc->lock
 * are inline and take &sc->md (this header comes before struct
 * stash_cache, as writeback's does); the others take the cache.
 *
 * What is whose:
 *  - cdirty and unflushed are the metadata's: what the disk may still
 *    record dirty, and the cleaned blocks whose record needs an origin
 *    flush first.  Writeback tells the metadata of each block it cleans
 *    (stash_md_note_cleaned()); the checksums ask about a slot
 *    (stash_md_is_cdirty()); the map, to which stash_md_create() attaches
 *    cdirty (stash_map_attach_cdirty()), reuses no slot in it.
 *  - touched, the pages the next commit writes, is the metadata's, but the
 *    map marks it, inline under sc->lock, for each slot it changes
 *    (stash_map_attach_pages(); stash-map.h says why that is not a call).
 *  - The commit queue, work and timer are the metadata's.  Writeback's
 *    queue runs the timer (stash_wb_queue()), so writeback's constructor
 *    and destructor call the commit work's life cycle below: the order in
 *    which both objects' work is set up and torn down is in one place
 *    (stash-writeback.h).
 *  - The identity the superblocks record is built by the target glue from
 *    the table line, which it parses, and handed over
 *    (stash_md_set_ident()); the metadata keeps the volume's name in it.
 *  - The geometry is the metadata's (the superblock records it);
 *    stash_md_open() sets the cache's sc->data_start and sc->nr_cblocks
 *    from it, immutable from then on.
 *  - The metadata reaches outside itself for: the map (it loads it and
 *    encodes it), the dirty bitmap (load_entry() sets bits without
 *    stash_set_dirty(); encoding reads it), the checksums' per-slot state
 *    (stash_csum_*()), writeback's need_space (stash_wb_space_wanted())
 *    and queue, the I/O path's deferred list (stash_md_commit()) and
 *    origin_writes_done/origin_flushed, and sc->stats.  docs/design.md
 *    lists these couplings.
 *
 * Context: "any context" means hard or soft IRQ too (bio and dm-io
 * completions); such a call does not sleep.  sc->lock is the cache's one
 * spinlock (irqsave); a call documented "not under sc->lock" may take it
 * itself.  "Synchronous I/O" means the call submits metadata or flush I/O
 * and waits for it.  sc->md.commit_lock, the metadata's mutex, is taken by
 * the commit only: no caller holds it.
 */
#ifndef STASH_METADATA_H
#define STASH_METADATA_H

#include <linux/types.h>
#include <linux/bio.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "stash-bitmap.h"
#include "stash-format.h"

struct stash_cache;

/* Metadata pages one commit writes at most (1 MiB of buffer). */
#define STASH_MD_MAX_COMMIT_PAGES	256

/* The commit timer's states (struct stash_md, commit_timer_state). */
enum { STASH_TIMER_STOPPED, STASH_TIMER_RUNNING, STASH_TIMER_PARKED };

/*
 * The metadata's state: sc->md, embedded in struct stash_cache (no pointer
 * to follow on the I/O path).  Only the commit work's part is set up on a
 * volatile cache; the rest is allocated by stash_md_create(), or stays
 * zero.
 */
struct stash_md {
	/*
	 * --- Under sc->lock.  The load at the first resume changes them
	 * without it (no I/O runs then).  nr_set of touched and unflushed is
	 * also read without the lock (READ_ONCE, the commit timer).
	 */
	/*
	 * Metadata pages changed since their last commit.  Attached to the
	 * map, which marks the page of each slot it changes.
	 */
	struct stash_bitmap touched;
	/*
	 * Slots not reusable before a commit says so: recorded dirty on
	 * disk, or written back with the origin copy not yet flushed.
	 * Attached to the map, which reuses no such slot.
	 */
	struct stash_bitmap cdirty;
	/* Blocks written back whose origin copy no commit has flushed yet. */
	struct stash_bitmap unflushed;
	unsigned long clean_due;	/* jiffies: record cleaned blocks by then */
	/*
	 * Flushes and FUA writes wait for every page changed before they
	 * came to be committed.  Commits take the changed pages in a sweep
	 * over the page numbers from cursor on, at most
	 * STASH_MD_MAX_COMMIT_PAGES each; the bios waiting when a sweep
	 * starts (commit_round) complete with the commit that ends it, those
	 * that come meanwhile wait for the next sweep (commit_waiting,
	 * stash_md_wait_commit()).  The rest only commits change (under
	 * commit_lock too).
	 */
	struct bio_list commit_waiting;	/* bios for the next sweep */
	struct bio_list commit_round;	/* bios of the sweep in progress */
	u32 cursor;			/* the page the next commit starts at */
	u32 round_left;			/* pages the sweep has yet to pass; 0: none */
	u32 round_stuck;		/* pages the sweep could not write */
	u64 round_drops;		/* stash_map_cdirty_drops() then */

	/*
	 * --- Under commit_lock, taken by a commit before sc->lock: one
	 * commit at a time.  The constructor and the load at the first
	 * resume set them without it (no commit runs then).
	 */
	struct mutex commit_lock;
	/*
	 * stash_map_cdirty_drops() when the last sweep that wrote every
	 * page it had to started (WRITE_ONCE; READ_ONCE without the lock):
	 * slots invalidated up to then are recorded empty on disk.
	 */
	u64 drops_covered;
	/* The last commit; a commit changes it under sc->lock too. */
	struct stash_sb sb;
	unsigned long *page_loc;	/* per page: copy with its newest commit */
	void *buf;			/* pages of one commit (vmalloc) */
	u32 *buf_index;			/* which page each buf slot holds */
	u64 *entries;			/* one page of entries, for commits */
	u32 *csums;			/* and their checksums */
	void *sb_buf;			/* one 4 KiB block (kmalloc) */
	/*
	 * Recorded in every superblock; built by the constructor (the target
	 * glue), the name kept up to date by commits.
	 */
	struct stash_sb_ident *ident;
	/*
	 * A commit failed, or a load that changed the map: no write needs a
	 * commit from now on, no resume.  WRITE_ONCE; READ_ONCE without the
	 * lock.
	 */
	bool failed;

	/* --- Set by the constructor, then by the first resume. --- */
	struct stash_geometry geo;
	u32 buf_pages;			/* buf's size, in pages */
	/* What the constructor writes last (stash_md_prepare()). */
	enum { STASH_MD_KEEP, STASH_MD_FORMAT, STASH_MD_ERASE } prepare;
	bool loaded;			/* the first resume loaded the map */
	/*
	 * This table formatted the device, and no other table held it since
	 * (stash_claim_devices()): the first resume need not read back what
	 * the format wrote, an empty map.
	 */
	bool fresh;

	/*
	 * --- The commit work, set up on every cache by stash_md_init_work()
	 * and stash_md_create_queue() (from stash_wb_create()). ---
	 *
	 * Commits: per-CPU (bound), so that the commit a flush waits for
	 * runs on the flushing task's CPU, without a cross-CPU wakeup.
	 * Created and destroyed with writeback's queue (stash_wb_create(),
	 * whose queue runs commit_timer), also on volatile caches.
	 */
	struct workqueue_struct *commit_wq;
	struct work_struct commit_work;	/* commit_work_fn(): commits until done */
	struct delayed_work commit_timer;	/* commit_timer_fn(), on writeback's queue */
	/*
	 * The commit timer: STOPPED while suspended (and on volatile
	 * caches), RUNNING, or PARKED when a tick of an idle volume found
	 * nothing to commit (stash_md_note_io() starts it again).  Changed
	 * and acted on (queued) under timer_lock, so that nothing queues the
	 * timer once suspend has stopped it; read without it (READ_ONCE).
	 */
	int commit_timer_state;
	spinlock_t timer_lock;		/* commit_timer_state */
};

/*
 * ---- Life cycle (the target glue, stash-target.c) ----
 */

/*
 * Constructor of a persistent cache, before stash_md_open(): what every
 * superblock records about the volume, built by the target glue from the
 * table line (record_identity()).  The metadata keeps @id, fills in the
 * volume's name before it writes a superblock and frees it in
 * stash_md_destroy().  Does not sleep.
 */
static inline void stash_md_set_ident(struct stash_md *md,
				      struct stash_sb_ident *id)
{
	md->ident = id;
}

/*
 * Constructor of a persistent cache, once the devices are open: read both
 * superblock copies (and the one in use again for the origin it records),
 * check them against the table, and decide what stash_md_prepare() writes
 * (nothing, or a format).  Sets the geometry and, from it, the cache's
 * sc->data_start and sc->nr_cblocks.  @format: the table allows formatting
 * a device that holds no usable dm-stash cache.  Returns 0, or -ENOMEM,
 * -EIO or -EINVAL with ti->error set.  Process context, sleeps,
 * synchronous I/O (reads only).
 */
int stash_md_open(struct stash_cache *sc, bool format, u32 block_sectors);

/*
 * Constructor of a volatile cache: refuse (-EINVAL, ti->error set) a cache
 * device that holds a dm-stash cache unless @format, which has
 * stash_md_prepare() erase its superblocks.  Returns 0, or -ENOMEM or -EIO
 * with ti->error set.  Process context, sleeps, synchronous I/O (reads
 * only).
 */
int stash_md_check_volatile(struct stash_cache *sc, bool format);

/*
 * Constructor of a persistent cache, after the map and stash_md_open():
 * allocate what loads and commits need, and attach the committed-dirty
 * bitmap and the changed pages to the map.  Returns 0 or -ENOMEM (the
 * destructor's stash_md_destroy() frees what was allocated).  Process
 * context, may sleep (allocations); no I/O.
 */
int stash_md_create(struct stash_cache *sc);

/*
 * The constructor's last step, once nothing else can fail: write what
 * stash_md_open() or stash_md_check_volatile() decided (format the cache
 * device, or erase its superblocks).  @alone: no other table holds the
 * cache device (no reload over a live one), so nothing else writes it
 * before this table's first resume.  Returns 0, or an error with
 * ti->error set.  Process context, sleeps, synchronous I/O.
 */
int stash_md_prepare(struct stash_cache *sc, bool alone);

/*
 * Destructor, or a constructor that failed at any point (also on a
 * volatile cache, or before stash_md_create()): detach from the map and
 * free everything.  The commit work must be over (stash_wb_destroy() has
 * cancelled it).  Process context; no I/O.
 */
void stash_md_destroy(struct stash_cache *sc);

/*
 * ---- The commit work's life cycle (stash_wb_create(), stash_wb_destroy()) ----
 *
 * On every cache, volatile too.  Writeback's constructor and destructor
 * call these, at the points where they set up and tear down writeback's
 * own queue, which also runs the commit timer (see "What is whose").
 */

/*
 * First: set up the commit work and the commit timer (STOPPED, as
 * zeroed), so that stash_md_cancel_work() may cancel them.  Does not
 * sleep.
 */
void stash_md_init_work(struct stash_cache *sc);

/*
 * Last, after writeback's queue: create the commit queue.  Returns 0 or
 * -ENOMEM.  Process context, may sleep.
 */
int stash_md_create_queue(struct stash_cache *sc);

/*
 * While writeback's queue still exists, before writeback's own work is
 * cancelled: cancel the commit timer and wait for it, then the commit work
 * (if the queue was created).  Nothing may queue them again (the timer is
 * STOPPED; a suspended or never resumed table runs no writeback that
 * commits).  Process context, sleeps.
 */
void stash_md_cancel_work(struct stash_cache *sc);

/*
 * After writeback's queue is destroyed: destroy the commit queue, if it
 * was created.  Process context, sleeps.
 */
void stash_md_destroy_queue(struct stash_cache *sc);

/*
 * ---- Suspend and resume (the target glue; persistent caches) ----
 */

/*
 * Preresume: the first one loads the metadata into the map (re-reads the
 * superblock, reads every page, rewrites a torn page's uncommitted copy);
 * every one commits until nothing is left (the superblock no longer
 * records a clean shutdown) and starts the commit timer.  Returns 0, or an
 * error: the table does not resume (a failed load that changed the map
 * fails the metadata for good).  Process context, sleeps, synchronous I/O.
 */
int stash_md_resume(struct stash_cache *sc);

/*
 * Postsuspend, once writeback is stopped and no I/O runs: stop the commit
 * timer, wait for the commit work, and commit with the clean flag until
 * nothing is left.  Process context, sleeps, synchronous I/O.
 */
void stash_md_suspend(struct stash_cache *sc);

/*
 * ---- Commits (the I/O path, stash-io.c) ----
 */

/*
 * Commit the changed pages (the top of stash-metadata.c).  @clean marks a
 * clean shutdown.  Returns 0, -EAGAIN if more pages changed than one
 * commit takes (commit again), or -EIO (the metadata has failed).  Takes
 * sc->md.commit_lock, then sc->lock inside it; completes the bios whose
 * sweep it ends.  Process context, sleeps, synchronous I/O; not under
 * sc->lock.  The metadata's own callers only: its work, resume and
 * suspend.
 */
int stash_md_commit(struct stash_cache *sc, bool clean);

/*
 * A flush or FUA write @bio completes only after the commit sweep that
 * starts after it ends (or fails, with the commit).  Queues the commit
 * work.  Persistent caches.  Any context, not under sc->lock.
 */
void stash_md_wait_commit(struct stash_cache *sc, struct bio *bio);

/*
 * Whether every slot dropped while recorded dirty is recorded empty on
 * disk by now (always, on a volatile cache).  If not, a FUA write that
 * reached the origin waits for a commit (stash_md_wait_commit()).  Any
 * context, without a lock.
 */
bool stash_md_drops_covered(struct stash_cache *sc);

/*
 * A commit failed, or a load that had changed the map: the metadata is
 * used no more (write-back writes are refused, resume too).  Sticky;
 * never on a volatile cache.  Any context, without a lock (may be a
 * moment old).
 */
static inline bool stash_md_failed(const struct stash_md *md)
{
	return READ_ONCE(md->failed);
}

/*
 * ---- The commit timer (see also stash_md_note_io(), dm-stash.h) ----
 */

/*
 * Whether the commit timer is parked (an idle tick found nothing to
 * commit).  Any context, without a lock: the caller orders it with a full
 * barrier (stash_md_note_io()).
 */
static inline bool stash_md_timer_parked(const struct stash_md *md)
{
	return READ_ONCE(md->commit_timer_state) == STASH_TIMER_PARKED;
}

/*
 * A parked commit timer runs again (for stash_md_note_io()).  Takes
 * sc->md.timer_lock.  Any context, not under sc->lock.
 */
void stash_md_wake_timer(struct stash_cache *sc);

/*
 * ---- For writeback (stash-writeback.c; persistent caches) ----
 */

/*
 * Under sc->lock: writeback copied block @c to the origin and cleaned it.
 * Until a commit records it clean or empty after an origin flush, its
 * slot holds the block's one durable copy: not reusable (cdirty), and
 * the commit that records it flushes the origin first (unflushed).  Any
 * context.
 */
static inline void stash_md_note_cleaned(struct stash_md *md, u32 c)
{
	stash_bitmap_set(&md->unflushed, c);
	stash_bitmap_set(&md->cdirty, c);
}

/*
 * Commit now rather than at the next tick (writes wait for slots only a
 * commit frees).  Any context.
 */
static inline void stash_md_kick(struct stash_md *md)
{
	queue_work(md->commit_wq, &md->commit_work);
}

/*
 * ---- For the checksums (stash-csum.c; persistent caches) ----
 */

/*
 * Under sc->lock: whether slot @c may be recorded dirty on disk (or is
 * written back and not yet recorded clean): a write in place must then
 * first be recorded open (stash_csum_open_locked()).  Any context.
 */
static inline bool stash_md_is_cdirty(const struct stash_md *md, u32 c)
{
	return stash_bitmap_test(&md->cdirty, c);
}

/*
 * ---- Status (the target glue, the control device) ----
 */

/*
 * The sequence number of the last commit.  Under sc->lock (a commit
 * changes it under the lock).  Any context.
 */
static inline u64 stash_md_seq(const struct stash_md *md)
{
	return md->sb.seq;
}

#endif /* STASH_METADATA_H */
