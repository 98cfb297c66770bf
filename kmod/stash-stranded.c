// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash stranded blocks: dirty blocks a volatile cache could not write
 * back when it was suspended (the origin failed its writes).
 *
 * A volatile cache keeps nothing on disk, so once its table is gone the
 * only record of which slot holds which origin block's newest data would
 * be gone too, and a reload would serve the origin's stale copy.  Instead,
 * a suspend whose drain fails stops writeback and strands the dirty
 * blocks: a copy of their mappings is kept here, keyed by the cache
 * device, with a module reference (the module cannot be unloaded while
 * anything is stranded).  Then:
 *  - the same table resumed takes them back (stash_stranded_reclaim());
 *  - the next volatile table on that cache device, with the same origin
 *    and geometry, adopts them at its first resume: they are dirty blocks
 *    of that table, read as hits and written back when the origin works;
 *  - any other table on that cache device is refused (constructor and
 *    first resume), unless it says 'format', which drops them knowingly.
 *
 * stash_stranded_lock (a mutex) guards the list.  It is taken only from
 * the constructor, suspend and resume (process context, no I/O waited for
 * under it), never with sc->lock held; sc->lock is taken under it.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>

#include "dm-stash.h"

struct stash_stranded {
	struct list_head list;
	struct stash_cache *owner;	/* the table that stranded them, or NULL */
	dev_t cache_dev;
	dev_t origin_dev;
	u32 block_sectors;
	u32 nr_cblocks;
	u32 nr;
	struct stash_wb_candidate *blocks;	/* oblock, cblock */
};

static DEFINE_MUTEX(stash_stranded_lock);
static LIST_HEAD(stash_stranded_list);

static dev_t cache_devt(struct stash_cache *sc)
{
	return sc->cache_dev->bdev->bd_dev;
}

/* Under stash_stranded_lock: what is stranded on @sc's cache device. */
static struct stash_stranded *find_locked(struct stash_cache *sc)
{
	struct stash_stranded *s;

	list_for_each_entry(s, &stash_stranded_list, list)
		if (s->cache_dev == cache_devt(sc))
			return s;
	return NULL;
}

static void free_stranded(struct stash_stranded *s)
{
	list_del(&s->list);
	kvfree(s->blocks);
	kfree(s);
	module_put(THIS_MODULE);
}

/*
 * Postsuspend of a volatile cache whose drain failed (writeback is
 * stopped): strand its dirty blocks.  Returns 0, or -ENOMEM (they are
 * then lost with the table, and said so by the destructor).
 */
int stash_stranded_add(struct stash_cache *sc)
{
	struct stash_stranded *s;
	unsigned long flags;
	u32 c, n = 0, want;
	unsigned int noio;

	want = READ_ONCE(sc->dirty.nr_set);
	/* The device is suspended: no allocation may wait for its I/O. */
	noio = memalloc_noio_save();
	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (s)
		s->blocks = kvcalloc(max(want, 1u), sizeof(*s->blocks),
				     GFP_KERNEL);
	memalloc_noio_restore(noio);
	if (!s || !s->blocks) {
		kfree(s);
		return -ENOMEM;
	}
	s->owner = sc;
	s->cache_dev = cache_devt(sc);
	s->origin_dev = sc->origin_dev->bdev->bd_dev;
	s->block_sectors = sc->block_sectors;
	s->nr_cblocks = sc->nr_cblocks;

	/* Writeback is stopped and no I/O runs: the dirty set is final. */
	spin_lock_irqsave(&sc->lock, flags);
	for (c = stash_bitmap_next(&sc->dirty, 0); c < sc->nr_cblocks && n < want;
	     c = stash_bitmap_next(&sc->dirty, c + 1)) {
		s->blocks[n].cblock = c;
		s->blocks[n].oblock =
			from_oblock(stash_map_oblock(&sc->map, to_cblock(c)));
		n++;
	}
	spin_unlock_irqrestore(&sc->lock, flags);
	s->nr = n;

	mutex_lock(&stash_stranded_lock);
	if (find_locked(sc)) {
		/* One record per cache device: an older one is ours again. */
		mutex_unlock(&stash_stranded_lock);
		kvfree(s->blocks);
		kfree(s);
		return 0;
	}
	__module_get(THIS_MODULE);
	list_add_tail(&s->list, &stash_stranded_list);
	mutex_unlock(&stash_stranded_lock);
	stash_err(sc, "%u dirty blocks could not be written back: stranded on cache device %u:%u",
		  n, MAJOR(s->cache_dev), MINOR(s->cache_dev));
	stash_err(sc, "a volatile table on that cache device and origin %u:%u takes them over",
		  MAJOR(s->origin_dev), MINOR(s->origin_dev));
	return 0;
}

/* Resume of a table that stranded its dirty blocks: they are its own again. */
void stash_stranded_reclaim(struct stash_cache *sc)
{
	struct stash_stranded *s;

	mutex_lock(&stash_stranded_lock);
	s = find_locked(sc);
	if (s && s->owner == sc)
		free_stranded(s);
	mutex_unlock(&stash_stranded_lock);
}

/*
 * Destructor: stranded blocks outlive the table that stranded them.
 * Returns true if its dirty blocks are stranded or were taken over.
 */
bool stash_stranded_forget(struct stash_cache *sc)
{
	struct stash_stranded *s;
	bool kept = false;

	mutex_lock(&stash_stranded_lock);
	list_for_each_entry(s, &stash_stranded_list, list) {
		if (s->owner == sc) {
			s->owner = NULL;
			kept = true;
		}
	}
	kept |= sc->stranded_taken;
	mutex_unlock(&stash_stranded_lock);
	return kept;
}

/* Under stash_stranded_lock: may @sc take @s over? */
static bool adoptable(struct stash_cache *sc, const struct stash_stranded *s)
{
	return sc->is_volatile && s->owner != sc &&
	       s->origin_dev == sc->origin_dev->bdev->bd_dev &&
	       s->block_sectors == sc->block_sectors &&
	       s->nr_cblocks == bdev_nr_sectors(sc->cache_dev->bdev) >>
				sc->block_shift;
}

/* Under stash_stranded_lock: stranded blocks @sc may not take over. */
static struct stash_stranded *foreign_locked(struct stash_cache *sc)
{
	struct stash_stranded *s = find_locked(sc);

	return !s || s->owner == sc || adoptable(sc, s) ? NULL : s;
}

/*
 * Constructor and first resume: blocks stranded on this cache device
 * belong to this table if it may adopt them; otherwise the table is
 * refused (ti->error set, -EINVAL), unless @format: then
 * stash_stranded_drop() drops them, when the table writes to the device.
 */
int stash_stranded_check(struct stash_cache *sc, bool format)
{
	struct stash_stranded *s;
	int r = 0;

	mutex_lock(&stash_stranded_lock);
	s = foreign_locked(sc);
	if (!s || format)
		goto out;
	stash_err(sc, "cache device: holds %u stranded dirty blocks of origin %u:%u",
		  s->nr, MAJOR(s->origin_dev), MINOR(s->origin_dev));
	stash_err(sc, "cache device: (a volatile cache could not write them back)");
	stash_err(sc, "cache device: a volatile table with that origin and block size takes them over;");
	stash_err(sc, "cache device: 'format' drops them");
	sc->ti->error = "Cache device holds stranded dirty blocks: see the kernel log";
	r = -EINVAL;
out:
	mutex_unlock(&stash_stranded_lock);
	return r;
}

/* A table with 'format': drop what stash_stranded_check() let it. */
void stash_stranded_drop(struct stash_cache *sc)
{
	struct stash_stranded *s;

	mutex_lock(&stash_stranded_lock);
	s = foreign_locked(sc);
	if (s) {
		stash_warn(sc, "cache device: 'format': %u stranded blocks of origin %u:%u dropped",
			   s->nr, MAJOR(s->origin_dev), MINOR(s->origin_dev));
		free_stranded(s);
	}
	mutex_unlock(&stash_stranded_lock);
}

/*
 * First resume of a volatile table (nothing cached yet): take over what is
 * stranded on its cache device (stash_stranded_check() said it may), as
 * dirty blocks.
 */
void stash_stranded_adopt(struct stash_cache *sc)
{
	struct stash_stranded *s;
	unsigned long flags;
	u32 i, n = 0;

	mutex_lock(&stash_stranded_lock);
	s = find_locked(sc);
	if (!s || !adoptable(sc, s) || stash_map_nr_allocated(&sc->map)) {
		mutex_unlock(&stash_stranded_lock);
		return;
	}
	spin_lock_irqsave(&sc->lock, flags);
	for (i = 0; i < s->nr; i++) {
		u32 c = s->blocks[i].cblock;

		if (stash_map_load(&sc->map, to_cblock(c),
				   to_oblock(s->blocks[i].oblock), NULL))
			continue;
		stash_bitmap_set(&sc->dirty, c);
		n++;
	}
	stash_map_rebuild_free(&sc->map);
	spin_unlock_irqrestore(&sc->lock, flags);
	if (s->owner)
		s->owner->stranded_taken = true;
	stash_note(sc, "took over %u stranded dirty blocks", n);
	if (n != s->nr)
		stash_err(sc, "%u stranded blocks clashed with each other: not taken", s->nr - n);
	free_stranded(s);
	mutex_unlock(&stash_stranded_lock);
	stash_wb_arm_waker(sc);
}
