// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash persistent metadata: format, load and commit (docs/format.md).
 *
 * What a commit records: for every slot whose data is valid on the cache
 * device, its oblock and whether it is dirty.  A slot being filled or
 * taking its first write is recorded as empty.
 *
 * Commit protocol (stash_md_commit):
 *  1. if writeback cleaned blocks since the last commit, flush the origin,
 *     so that no block is recorded clean before its origin copy is durable;
 *  2. under sc->lock, encode every metadata page changed since the last
 *     commit (at most md_buf_pages) into md_buf: one instant, so a commit
 *     never records one oblock in two slots;
 *  3. write each page to its copy that does not hold its newest committed
 *     version, stamped with the new sequence;
 *  4. flush the cache device (this also makes completed data writes
 *     durable);
 *  5. write superblock copy (seq % 2) with FUA.
 * Until step 5 completes the previous commit is the valid one.
 *
 * Slot reuse: a slot recorded dirty stays unusable for other blocks
 * (md_cdirty, checked by the map) until a commit records it clean or
 * empty; otherwise recovery would write another block's data back.
 *
 * Recovery after an unclean shutdown keeps dirty blocks only: a clean
 * slot may have been reused since the last commit.  After a clean shutdown
 * every mapping is kept and reads hit at once.
 */
#include <linux/module.h>
#include <linux/vmalloc.h>
#include <linux/random.h>

#include "dm-stash.h"

/*
 * ---- Synchronous I/O helpers ----
 */

static int md_io(struct stash_cache *sc, struct block_device *bdev,
		 blk_opf_t opf, void *buf, sector_t sector, sector_t count)
{
	struct dm_io_request req = {
		.bi_opf = opf,
		.mem.type = is_vmalloc_addr(buf) ? DM_IO_VMA : DM_IO_KMEM,
		.client = sc->io_client,
	};
	struct dm_io_region region = {
		.bdev = bdev,
		.sector = sector,
		.count = count,
	};

	if (is_vmalloc_addr(buf))
		req.mem.ptr.vma = buf;
	else
		req.mem.ptr.addr = buf;
	return stash_dm_io(&req, &region);
}

static int md_flush(struct stash_cache *sc, struct block_device *bdev)
{
	return md_io(sc, bdev, REQ_OP_WRITE | REQ_PREFLUSH, NULL, 0, 0);
}

static struct block_device *cache_bdev(struct stash_cache *sc)
{
	return sc->cache_dev->bdev;
}

/*
 * ---- Constructor: superblock, format, geometry ----
 */

static int write_superblock(struct stash_cache *sc, const struct stash_sb *sb)
{
	stash_sb_encode(sb, sc->md_sb_buf);
	return md_io(sc, cache_bdev(sc), REQ_OP_WRITE | REQ_FUA, sc->md_sb_buf,
		     (sb->seq % 2) * STASH_MD_BLOCK_SECTORS,
		     STASH_MD_BLOCK_SECTORS);
}

/* Write an empty cache: every page, copy 0, sequence 1; then superblock. */
static int format_cache(struct stash_cache *sc, struct stash_sb *sb)
{
	u64 *zero = kcalloc(STASH_MD_ENTRIES_PER_PAGE, sizeof(u64), GFP_KERNEL);
	u32 p;
	int r = -ENOMEM;

	if (!zero)
		return r;

	sb->seq = 1;
	sb->flags = STASH_SB_FLAG_CLEAN;
	get_random_bytes(sb->uuid, sizeof(sb->uuid));
	for (p = 0; p < sb->geo.md_pages; p++) {
		stash_md_page_encode(sc->md_sb_buf, p, 1, zero);
		r = md_io(sc, cache_bdev(sc), REQ_OP_WRITE, sc->md_sb_buf,
			  stash_md_page_sector(&sb->geo, p, 0),
			  STASH_MD_BLOCK_SECTORS);
		if (r)
			break;
		/* Copy 1 holds nothing valid: zero it. */
		memset(sc->md_sb_buf, 0, STASH_MD_BLOCK_BYTES);
		r = md_io(sc, cache_bdev(sc), REQ_OP_WRITE, sc->md_sb_buf,
			  stash_md_page_sector(&sb->geo, p, 1),
			  STASH_MD_BLOCK_SECTORS);
		if (r)
			break;
	}
	kfree(zero);
	if (r)
		return r;
	/* The other superblock copy must not survive from an old format. */
	memset(sc->md_sb_buf, 0, STASH_MD_BLOCK_BYTES);
	r = md_io(sc, cache_bdev(sc), REQ_OP_WRITE, sc->md_sb_buf, 0,
		  STASH_MD_BLOCK_SECTORS);
	if (!r)
		r = md_flush(sc, cache_bdev(sc));
	if (!r)
		r = write_superblock(sc, sb);
	return r;
}

static bool buf_is_zero(const void *buf, size_t len)
{
	return !memchr_inv(buf, 0, len);
}

/*
 * Find the newest valid superblock.  Returns 0 and fills @sb, -ENOENT if
 * neither copy is a dm-stash superblock (*blank tells whether both are
 * all zero), or -EIO.
 */
static int read_superblock(struct stash_cache *sc, struct stash_sb *sb,
			   bool *blank, const char **why)
{
	struct stash_sb copy;
	bool found = false;
	int i, r;

	*blank = true;
	for (i = 0; i < 2; i++) {
		r = md_io(sc, cache_bdev(sc), REQ_OP_READ, sc->md_sb_buf,
			  i * STASH_MD_BLOCK_SECTORS, STASH_MD_BLOCK_SECTORS);
		if (r) {
			*why = "cannot read the superblock";
			return -EIO;
		}
		if (!buf_is_zero(sc->md_sb_buf, STASH_MD_BLOCK_BYTES))
			*blank = false;
		if (stash_sb_decode(sc->md_sb_buf, &copy, why))
			continue;
		if (!found || copy.seq > sb->seq) {
			*sb = copy;
			found = true;
		}
	}
	return found ? 0 : -ENOENT;
}

/*
 * Called by the constructor of a persistent cache: open or format the
 * metadata and set the geometry.  @format: the table allows formatting a
 * device that holds no dm-stash superblock.
 */
int stash_md_open(struct stash_cache *sc, bool format, u32 block_sectors)
{
	struct dm_target *ti = sc->ti;
	sector_t cache_sectors = bdev_nr_sectors(cache_bdev(sc));
	struct stash_sb sb;
	const char *why = NULL;
	bool blank;
	int r;

	sc->md_sb_buf = kzalloc(STASH_MD_BLOCK_BYTES, GFP_KERNEL);
	if (!sc->md_sb_buf) {
		ti->error = "Cannot allocate metadata buffers";
		return -ENOMEM;
	}

	r = read_superblock(sc, &sb, &blank, &why);
	if (r == -EIO) {
		ti->error = "Cannot read the cache device's superblock";
		return r;
	}
	if (r == -ENOENT) {
		if (!format && !blank) {
			DMERR("cache device: %s", why);
			ti->error = "Cache device not blank, not dm-stash: 'format' overwrites it";
			return -EINVAL;
		}
		if (stash_geometry_compute(&sb.geo, cache_sectors, ti->len,
					   block_sectors, STASH_MIN_CBLOCKS)) {
			ti->error = "Cache device too small (needs 16 blocks after the metadata)";
			return -EINVAL;
		}
		sb.mode = sc->mode;
		r = format_cache(sc, &sb);
		if (r) {
			ti->error = "Cannot format the cache device";
			return r;
		}
		DMINFO("formatted a cache of %u blocks", sb.geo.nr_cblocks);
	} else {
		if (sb.geo.block_sectors != block_sectors) {
			ti->error = "Cache was formatted with a different block_size";
			return -EINVAL;
		}
		if (sb.geo.origin_sectors != ti->len) {
			ti->error = "Cache belongs to an origin of a different size";
			return -EINVAL;
		}
		if (sb.geo.cache_sectors != cache_sectors) {
			ti->error = "Cache device size differs from when it was formatted";
			return -EINVAL;
		}
	}
	sc->sb = sb;
	sc->geo = sb.geo;
	sc->data_start = sb.geo.data_start;
	sc->nr_cblocks = sb.geo.nr_cblocks;
	return 0;
}

/* Allocate what commits need, once the map exists. */
int stash_md_create(struct stash_cache *sc)
{
	u32 pages = sc->geo.md_pages;

	mutex_init(&sc->commit_lock);
	bio_list_init(&sc->commit_waiting);
	/*
	 * At least two pages: load_metadata() reads both copies of a page
	 * into md_buf at once, also when the map has a single page.
	 */
	sc->md_buf_pages = clamp_t(u32, pages, 2, STASH_MD_MAX_COMMIT_PAGES);
	sc->md_buf = vmalloc(array_size(sc->md_buf_pages, STASH_MD_BLOCK_BYTES));
	sc->md_buf_index = kvcalloc(sc->md_buf_pages, sizeof(u32), GFP_KERNEL);
	sc->md_page_loc = bitmap_zalloc(pages, GFP_KERNEL);
	sc->md_entries = kcalloc(STASH_MD_ENTRIES_PER_PAGE, sizeof(u64),
				 GFP_KERNEL);
	if (!sc->md_buf || !sc->md_entries || !sc->md_buf_index || !sc->md_page_loc ||
	    stash_bitmap_init(&sc->md_touched, pages) ||
	    stash_bitmap_init(&sc->md_cdirty, sc->nr_cblocks))
		return -ENOMEM;
	sc->map.touched = &sc->md_touched;
	sc->map.entries_per_page = STASH_MD_ENTRIES_PER_PAGE;
	sc->map.cdirty = sc->md_cdirty.words;
	return 0;
}

void stash_md_destroy(struct stash_cache *sc)
{
	sc->map.touched = NULL;
	sc->map.cdirty = NULL;
	stash_bitmap_exit(&sc->md_cdirty);
	stash_bitmap_exit(&sc->md_touched);
	bitmap_free(sc->md_page_loc);
	kfree(sc->md_entries);
	sc->md_entries = NULL;
	kvfree(sc->md_buf_index);
	vfree(sc->md_buf);
	kfree(sc->md_sb_buf);
	sc->md_page_loc = NULL;
	sc->md_buf_index = NULL;
	sc->md_buf = NULL;
	sc->md_sb_buf = NULL;
}

/*
 * ---- Load (first resume) ----
 */

/* Per page of metadata: which copy to trust, and its entries. */
static int load_page(struct stash_cache *sc, u32 p, void *both, u64 *entries,
		     u64 *page_seq, u64 *scratch)
{
	u64 seq[2] = { 0, 0 };
	const char *why = "sequence newer than the superblock's";
	bool ok[2];
	int k, best = -1;

	for (k = 0; k < 2; k++) {
		ok[k] = !stash_md_page_decode(both + k * STASH_MD_BLOCK_BYTES, p,
					     sc->nr_cblocks, sc->nr_oblocks,
					     &seq[k], k ? scratch : entries, &why) &&
			seq[k] <= sc->sb.seq;
		if (ok[k] && (best < 0 || seq[k] > seq[best]))
			best = k;
	}
	if (best < 0) {
		DMERR("metadata page %u: no valid copy (%s)", p, why);
		return -EINVAL;
	}
	if (best == 1)
		memcpy(entries, scratch, sizeof(u64) * STASH_MD_ENTRIES_PER_PAGE);
	if (best)
		__set_bit(p, sc->md_page_loc);
	*page_seq = seq[best];
	return 0;
}

/* Map @c to @ob; a second mapping of @ob is resolved by page sequence. */
static int load_entry(struct stash_cache *sc, u32 c, u64 e, u64 seq,
		      u64 *entry_seq_of_page)
{
	oblock_t ob = to_oblock(e & STASH_MD_OBLOCK_MASK);
	bool dirty = e & STASH_MD_DIRTY;
	cblock_t other;

	if (!dirty && !(sc->sb.flags & STASH_SB_FLAG_CLEAN))
		return 0;	/* unclean shutdown: the slot may be reused */
	other = stash_map_lookup(&sc->map, ob);
	if (cblock_is_valid(other)) {
		u32 o = from_cblock(other);
		u64 oseq = entry_seq_of_page[o / STASH_MD_ENTRIES_PER_PAGE];

		if (oseq == seq) {
			DMERR("metadata maps origin block %llu twice in one commit",
			      from_oblock(ob));
			return -EINVAL;
		}
		if (oseq > seq)
			return 0;	/* the newer page wins */
		stash_bitmap_clear(&sc->dirty, o);
		stash_bitmap_clear(&sc->md_cdirty, o);
		stash_map_invalidate(&sc->map, other);
	}
	if (stash_map_load(&sc->map, to_cblock(c), ob))
		return -EINVAL;
	if (dirty) {
		stash_bitmap_set(&sc->dirty, c);
		stash_bitmap_set(&sc->md_cdirty, c);
	}
	return 0;
}

/*
 * Read the superblock again at the first resume: on a table reload the
 * constructor read it while the previous table was still live and
 * committing, and that table's later commits (the last one at its suspend)
 * carry newer sequence numbers and the clean flag.  The geometry must not
 * have changed.
 */
static int reread_superblock(struct stash_cache *sc)
{
	const struct stash_geometry *g = &sc->geo;
	const char *why = "I/O error";
	struct stash_sb sb;
	bool blank;
	int r;

	r = read_superblock(sc, &sb, &blank, &why);
	if (r) {
		DMERR("cannot read the superblock again: %s", why);
		return r == -ENOENT ? -EINVAL : r;
	}
	if (sb.geo.origin_sectors != g->origin_sectors ||
	    sb.geo.cache_sectors != g->cache_sectors ||
	    sb.geo.md_start != g->md_start || sb.geo.data_start != g->data_start ||
	    sb.geo.block_sectors != g->block_sectors ||
	    sb.geo.nr_cblocks != g->nr_cblocks || sb.geo.md_pages != g->md_pages) {
		DMERR("the superblock's geometry changed since the table was loaded");
		return -EINVAL;
	}
	sc->sb = sb;
	return 0;
}

static int load_metadata(struct stash_cache *sc)
{
	u32 pages = sc->geo.md_pages, p, i, chunk;
	u64 *entries, *scratch, *page_seq;
	int r;

	r = reread_superblock(sc);
	if (r)
		return r;

	entries = kmalloc_array(STASH_MD_ENTRIES_PER_PAGE, sizeof(u64), GFP_KERNEL);
	scratch = kmalloc_array(STASH_MD_ENTRIES_PER_PAGE, sizeof(u64), GFP_KERNEL);
	page_seq = kvcalloc(pages, sizeof(u64), GFP_KERNEL);
	if (!entries || !scratch || !page_seq) {
		r = -ENOMEM;
		goto out;
	}
	/* Read both copies of as many pages as md_buf holds at a time. */
	chunk = max_t(u32, sc->md_buf_pages / 2, 1);
	for (p = 0; p < pages && !r; p += chunk) {
		u32 n = min(chunk, pages - p);

		r = md_io(sc, cache_bdev(sc), REQ_OP_READ, sc->md_buf,
			  stash_md_page_sector(&sc->geo, p, 0),
			  (sector_t)n * 2 * STASH_MD_BLOCK_SECTORS);
		if (r) {
			DMERR("cannot read metadata pages %u..%u", p, p + n - 1);
			break;
		}
		for (i = 0; i < n && !r; i++) {
			u32 k, page = p + i;

			r = load_page(sc, page, sc->md_buf +
				      (size_t)i * 2 * STASH_MD_BLOCK_BYTES,
				      entries, &page_seq[page], scratch);
			for (k = 0; k < STASH_MD_ENTRIES_PER_PAGE && !r; k++) {
				u32 c = page * STASH_MD_ENTRIES_PER_PAGE + k;

				if (entries[k])
					r = load_entry(sc, c, entries[k],
						       page_seq[page], page_seq);
			}
		}
	}
	stash_map_rebuild_free(&sc->map);
	/*
	 * The resume commit rewrites every page from what was loaded, so
	 * entries dropped above (clean ones after a crash, older duplicates)
	 * cannot come back at a later load.
	 */
	for (p = 0; p < pages; p++)
		stash_bitmap_set(&sc->md_touched, p);
out:
	kvfree(page_seq);
	kfree(scratch);
	kfree(entries);
	return r;
}

/*
 * ---- Commit ----
 */

struct page_writes {
	atomic_t pending;
	bool failed;
	struct completion done;
};

static void page_write_done(unsigned long error, void *context)
{
	struct page_writes *pw = context;

	if (error)
		pw->failed = true;
	if (atomic_dec_and_test(&pw->pending))
		complete(&pw->done);
}

/* Write buffer slots 0..n-1 to the copies not holding committed data. */
static int write_pages(struct stash_cache *sc, u32 n)
{
	struct page_writes pw = { .failed = false };
	struct dm_io_request req = {
		.bi_opf = REQ_OP_WRITE,
		.mem.type = DM_IO_VMA,
		.notify.fn = page_write_done,
		.notify.context = &pw,
		.client = sc->io_client,
	};
	struct dm_io_region region = {
		.bdev = cache_bdev(sc),
		.count = STASH_MD_BLOCK_SECTORS,
	};
	u32 i;

	init_completion(&pw.done);
	atomic_set(&pw.pending, n + 1);
	for (i = 0; i < n; i++) {
		u32 p = sc->md_buf_index[i];

		region.sector = stash_md_page_sector(&sc->geo, p,
						     !test_bit(p, sc->md_page_loc));
		req.mem.ptr.vma = sc->md_buf + (size_t)i * STASH_MD_BLOCK_BYTES;
		if (stash_dm_io(&req, &region))
			page_write_done(1, &pw);
	}
	page_write_done(0, &pw);
	wait_for_completion(&pw.done);
	return pw.failed ? -EIO : 0;
}

/* Under sc->lock: encode page @p of the map into @buf. */
static void encode_page_locked(struct stash_cache *sc, u32 p, void *buf,
			       u64 seq, u64 *entries)
{
	u32 k, c;

	for (k = 0; k < STASH_MD_ENTRIES_PER_PAGE; k++) {
		struct stash_entry *e;
		bool valid, dirty;

		c = p * STASH_MD_ENTRIES_PER_PAGE + k;
		if (c >= sc->nr_cblocks) {
			entries[k] = 0;
			continue;
		}
		e = &sc->map.entries[c];
		valid = (e->flags & (SE_MAPPED | SE_VALID | SE_STALE)) ==
			(SE_MAPPED | SE_VALID);
		dirty = valid && stash_bitmap_test(&sc->dirty, c);
		entries[k] = stash_md_entry(valid, dirty,
					    from_oblock(stash_entry_oblock(e)));
		/* Recorded dirty: block reuse from now on, to be safe. */
		if (dirty)
			stash_bitmap_set(&sc->md_cdirty, c);
	}
	stash_md_page_encode(buf, p, seq, entries);
}

/* After a commit: a slot is committed-dirty exactly if it was recorded so. */
static void settle_cdirty_locked(struct stash_cache *sc, u32 n)
{
	u32 i, k;

	for (i = 0; i < n; i++) {
		struct stash_md_page_disk *d = sc->md_buf +
					       (size_t)i * STASH_MD_BLOCK_BYTES;
		u32 p = sc->md_buf_index[i];

		__change_bit(p, sc->md_page_loc);
		for (k = 0; k < STASH_MD_ENTRIES_PER_PAGE; k++) {
			u32 c = p * STASH_MD_ENTRIES_PER_PAGE + k;

			if (c >= sc->nr_cblocks)
				break;
			if (!(le64_to_cpu(d->entries[k]) & STASH_MD_DIRTY) &&
			    stash_bitmap_clear(&sc->md_cdirty, c))
				stash_map_note_reusable(&sc->map);
		}
	}
}

static void complete_waiters(struct bio_list *waiters, bool failed)
{
	struct bio *bio;

	while ((bio = bio_list_pop(waiters))) {
		if (failed)
			bio->bi_status = BLK_STS_IOERR;
		bio_endio(bio);
	}
}

/*
 * Commit changed metadata (see the top of this file).  @clean marks a
 * clean shutdown.  Returns 0, -EAGAIN if more pages changed than one commit
 * takes (commit again), or -EIO (the cache's metadata has failed).
 */
int stash_md_commit(struct stash_cache *sc, bool clean)
{
	struct bio_list waiters = BIO_EMPTY_LIST;
	struct stash_sb sb;
	unsigned long flags;
	u64 cleaned;
	u32 n = 0, p;
	bool more;
	int r;

	mutex_lock(&sc->commit_lock);
	if (READ_ONCE(sc->md_failed)) {
		r = -EIO;
		goto fail_waiters;
	}

	spin_lock_irqsave(&sc->lock, flags);
	cleaned = sc->md_cleaned;
	sc->md_cleaned = 0;
	spin_unlock_irqrestore(&sc->lock, flags);
	if (cleaned) {
		r = md_flush(sc, sc->origin_dev->bdev);
		if (r) {
			DMERR("commit: origin flush failed %d", r);
			goto failed;
		}
	}

	sb = sc->sb;
	sb.seq++;
	sb.flags = clean ? STASH_SB_FLAG_CLEAN : 0;
	sb.mode = READ_ONCE(sc->mode);

	spin_lock_irqsave(&sc->lock, flags);
	for (p = stash_bitmap_next(&sc->md_touched, 0);
	     p < sc->geo.md_pages && n < sc->md_buf_pages;
	     p = stash_bitmap_next(&sc->md_touched, p + 1)) {
		encode_page_locked(sc, p, sc->md_buf +
				   (size_t)n * STASH_MD_BLOCK_BYTES, sb.seq,
				   sc->md_entries);
		stash_bitmap_clear(&sc->md_touched, p);
		sc->md_buf_index[n++] = p;
	}
	more = sc->md_touched.nr_set;
	if (!more) {
		bio_list_merge(&waiters, &sc->commit_waiting);
		bio_list_init(&sc->commit_waiting);
	}
	spin_unlock_irqrestore(&sc->lock, flags);

	r = write_pages(sc, n);
	if (!r)
		r = md_flush(sc, cache_bdev(sc));
	if (!r)
		r = write_superblock(sc, &sb);
	if (r) {
		DMERR("commit %llu failed %d", sb.seq, r);
		goto failed;
	}

	spin_lock_irqsave(&sc->lock, flags);
	settle_cdirty_locked(sc, n);
	sc->sb = sb;
	sc->stats.commits++;
	spin_unlock_irqrestore(&sc->lock, flags);
	mutex_unlock(&sc->commit_lock);

	complete_waiters(&waiters, false);
	/* Slots may be reusable now. */
	stash_kick_worker(sc);
	return more ? -EAGAIN : 0;

failed:
	WRITE_ONCE(sc->md_failed, true);
	DMERR("metadata commit failed: writes that need a commit are refused");
	DMERR("remove the device and check the cache device before reuse");
	r = -EIO;
fail_waiters:
	spin_lock_irqsave(&sc->lock, flags);
	bio_list_merge(&waiters, &sc->commit_waiting);
	bio_list_init(&sc->commit_waiting);
	spin_unlock_irqrestore(&sc->lock, flags);
	mutex_unlock(&sc->commit_lock);
	complete_waiters(&waiters, true);
	return r;
}

static void commit_work_fn(struct work_struct *ws)
{
	struct stash_cache *sc = container_of(ws, struct stash_cache,
					      commit_work);

	while (stash_md_commit(sc, false) == -EAGAIN)
		cond_resched();
}

/* A bio that completes only after the next commit (flush, FUA write). */
void stash_md_wait_commit(struct stash_cache *sc, struct bio *bio)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	bio_list_add(&sc->commit_waiting, bio);
	spin_unlock_irqrestore(&sc->lock, flags);
	queue_work(sc->wb_wq, &sc->commit_work);
}

/* Periodic commit: bounds what is at risk between flushes. */
static void commit_timer_fn(struct work_struct *ws)
{
	struct stash_cache *sc = container_of(to_delayed_work(ws),
					      struct stash_cache, commit_timer);
	bool changed;

	changed = READ_ONCE(sc->md_touched.nr_set) || READ_ONCE(sc->md_cleaned);
	if (changed)
		queue_work(sc->wb_wq, &sc->commit_work);
	queue_delayed_work(sc->wb_wq, &sc->commit_timer,
			   msecs_to_jiffies(READ_ONCE(sc->tun.commit_ms)));
}

/*
 * ---- Suspend and resume ----
 */

/* First resume: load; every resume: mark the metadata in use (unclean). */
int stash_md_resume(struct stash_cache *sc)
{
	int r;

	if (READ_ONCE(sc->md_failed)) {
		DMERR("metadata failed earlier: refusing to resume; check the cache device");
		return -EIO;
	}
	if (!sc->md_loaded) {
		r = load_metadata(sc);
		if (r) {
			/* The map is half built: this table can never resume. */
			WRITE_ONCE(sc->md_failed, true);
			DMERR("cannot load the cache metadata (%d): refusing to resume", r);
			return r;
		}
		sc->md_loaded = true;
		DMINFO("loaded %u blocks (%u dirty) after a%s shutdown",
		       stash_map_nr_allocated(&sc->map), sc->dirty.nr_set,
		       sc->sb.flags & STASH_SB_FLAG_CLEAN ? " clean" : "n unclean");
	}
	r = stash_md_commit(sc, false);
	while (r == -EAGAIN)
		r = stash_md_commit(sc, false);
	if (r)
		return r;
	queue_delayed_work(sc->wb_wq, &sc->commit_timer,
			   msecs_to_jiffies(READ_ONCE(sc->tun.commit_ms)));
	return 0;
}

/* Suspend: no I/O runs; record everything with the clean flag. */
void stash_md_suspend(struct stash_cache *sc)
{
	int r;

	cancel_delayed_work_sync(&sc->commit_timer);
	flush_work(&sc->commit_work);
	if (!sc->md_loaded)
		return;
	do {
		r = stash_md_commit(sc, true);
	} while (r == -EAGAIN);
}

void stash_md_init_work(struct stash_cache *sc)
{
	INIT_WORK(&sc->commit_work, commit_work_fn);
	INIT_DELAYED_WORK(&sc->commit_timer, commit_timer_fn);
}
