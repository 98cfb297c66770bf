/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The persistent metadata (stash-metadata.c): the superblock, the metadata
 * pages and the commits that write them, the commit timer, the load at the
 * first resume and the clean commit at suspend.  The on-disk format and the
 * recovery rules are in stash-format.h and docs/format.md, the commit
 * protocol at the top of stash-metadata.c.  A volatile cache has no
 * metadata: of these functions it calls only stash_md_check_volatile(),
 * stash_md_prepare(), stash_md_destroy(), those of the commit work's life
 * cycle, stash_md_drops_covered() and stash_md_note_io().
 *
 * Context: "any context" means hard or soft IRQ too (bio and dm-io
 * completions); such a call does not sleep.  sc->lock is the cache's one
 * spinlock (irqsave); a call documented "not under sc->lock" may take it
 * itself.  "Synchronous I/O" means the call submits metadata or flush I/O
 * and waits for it.  sc->commit_lock, the metadata's mutex, is taken by
 * the commit only: no caller holds it.
 */
#ifndef STASH_METADATA_H
#define STASH_METADATA_H

#include <linux/types.h>
#include <linux/bio.h>

struct stash_cache;

/* Metadata pages one commit writes at most (1 MiB of buffer). */
#define STASH_MD_MAX_COMMIT_PAGES	256

/* The commit timer's states (see stash_md_note_io()). */
enum { STASH_TIMER_STOPPED, STASH_TIMER_RUNNING, STASH_TIMER_PARKED };

/*
 * ---- The constructor and the destructor (the target glue) ----
 */

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
 * The constructor's last step, once nothing else can fail: write what
 * stash_md_open() or stash_md_check_volatile() decided (format the cache
 * device, or erase its superblocks).  Returns 0, or an error with
 * ti->error set.  Process context, sleeps, synchronous I/O.
 */
int stash_md_prepare(struct stash_cache *sc);

/*
 * Constructor of a persistent cache, after the map and stash_md_open():
 * allocate what loads and commits need, and attach the committed-dirty
 * bitmap and the changed pages to the map.  Returns 0 or -ENOMEM (the
 * destructor's stash_md_destroy() frees what was allocated).  Process
 * context, may sleep (allocations); no I/O.
 */
int stash_md_create(struct stash_cache *sc);

/*
 * Destructor, or a constructor that failed at any point (also on a
 * volatile cache, or before stash_md_create()): detach from the map and
 * free everything.  The commit work must be over (stash_wb_destroy() has
 * cancelled it).  Process context; no I/O.
 */
void stash_md_destroy(struct stash_cache *sc);

/*
 * From stash_wb_create(), first, on every cache: set up the commit work
 * and the commit timer (STOPPED), so that stash_wb_destroy() may cancel
 * them.  Does not sleep.
 */
void stash_md_init_work(struct stash_cache *sc);

/*
 * ---- Suspend and resume (the target glue; persistent caches) ----
 */

/*
 * Preresume: the first one loads the metadata into the map (re-reads the
 * superblock, reads every page, rewrites a torn page's uncommitted copy);
 * every one commits until nothing is left (recording the cache in use,
 * not clean) and starts the commit timer.  Returns 0, or an error: the
 * table does not resume (a failed load that changed the map fails the
 * metadata for good).  Process context, sleeps, synchronous I/O.
 */
int stash_md_resume(struct stash_cache *sc);

/*
 * Postsuspend, once writeback is stopped and no I/O runs: stop the commit
 * timer, wait for the commit work, and commit with the clean flag until
 * nothing is left.  Process context, sleeps, synchronous I/O.
 */
void stash_md_suspend(struct stash_cache *sc);

/*
 * ---- Commits ----
 */

/*
 * Commit the changed pages (the top of stash-metadata.c).  @clean marks a
 * clean shutdown.  Returns 0, -EAGAIN if more pages changed than one
 * commit takes (commit again), or -EIO (the metadata has failed).  Takes
 * sc->commit_lock, then sc->lock inside it; completes the bios whose sweep
 * it ends.  Process context, sleeps, synchronous I/O; not under sc->lock.
 * The metadata's own callers only: its work, resume and suspend.
 */
int stash_md_commit(struct stash_cache *sc, bool clean);

/*
 * A flush or FUA write @bio completes only after the commit sweep that
 * starts after it ends (or fails, with the commit).  Queues the commit
 * work.  Any context, not under sc->lock; persistent caches.
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
 * A parked commit timer runs again (for stash_md_note_io(), in
 * dm-stash.h).  Takes sc->timer_lock.  Any context, not under sc->lock.
 */
void stash_md_wake_timer(struct stash_cache *sc);

#endif /* STASH_METADATA_H */
