// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash persistent metadata: format, load and commit (docs/format.md).
 *
 * What a commit records: for every slot whose data is valid on the cache
 * device, its oblock and whether it is dirty.  A slot being filled or
 * taking its first write is recorded as empty.
 *
 * Commit protocol (stash_md_commit):
 *  1. under sc->lock, encode every metadata page changed since the last
 *     commit (at most md.buf_pages) into md.buf: one instant, so a commit
 *     never records one oblock in two slots;
 *  2. if it records as clean or empty a block that writeback cleaned since
 *     the origin was last flushed (md.unflushed), flush the origin: issued
 *     after the encoding, the flush covers every such block's origin write,
 *     so no block loses its last durable copy before its origin copy is
 *     durable;
 *  3. write each page to its copy that does not hold its newest committed
 *     version, stamped with the new sequence;
 *  4. write superblock copy (seq % 2) with PREFLUSH and FUA: the preflush
 *     makes the pages and every completed data write durable first.  Only
 *     the last commit of a clean shutdown (no page left to write) carries
 *     the clean flag.
 * Until step 4 completes the previous commit is the valid one.  A failed
 * page or superblock write stops commits for the life of the table
 * (md.failed) and marks the device "needs check" (mark_needs_check()); a
 * failed origin flush in step 2 only makes the commit record no cleaned
 * block, and a later one tries again.
 *
 * A commit that user flushes wait for avoids the origin flush where it
 * can: a written-back block still mapped stays recorded dirty (see
 * enum md_record); commits without waiters, or when writes wait for a
 * slot, or at least every commit_ms, record such blocks clean.
 *
 * Slot reuse: a slot recorded dirty, or written back and not yet recorded
 * clean under an origin flush, stays unusable for other blocks
 * (md.cdirty, checked by the map) until a commit says otherwise;
 * otherwise recovery would write another block's data back, or lose the
 * old block.
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
 * ---- Asynchronous I/O of metadata pages ----
 */

/*
 * A read or write of both copies of a run of pages from one half of
 * md.buf, in flight while the load decodes (or the format encodes) the
 * other half.
 */
struct md_aio {
	struct completion done;
	unsigned long error;
	bool busy;
};

static void md_aio_done(unsigned long error, void *context)
{
	struct md_aio *a = context;

	a->error = error;
	complete(&a->done);
}

/* Start @opf on both copies of pages @p..@p+@n-1 from/into @buf. */
static void md_aio_start(struct stash_cache *sc, blk_opf_t opf, void *buf,
			 const struct stash_geometry *g, u32 p, u32 n,
			 struct md_aio *a)
{
	struct dm_io_request req = {
		.bi_opf = opf,
		.mem.type = DM_IO_VMA,
		.mem.ptr.vma = buf,
		.notify.fn = md_aio_done,
		.notify.context = a,
		.client = sc->io_client,
	};
	struct dm_io_region region = {
		.bdev = cache_bdev(sc),
		.sector = stash_md_page_sector(g, p, 0),
		.count = (sector_t)n * 2 * STASH_MD_BLOCK_SECTORS,
	};

	init_completion(&a->done);
	a->error = 0;
	a->busy = true;
	/* With a notify function dm_io() reports every error through it. */
	if (stash_dm_io(&req, &region))
		md_aio_done(1, a);
}

/* Wait for @a if it is in flight: 0 or -EIO. */
static int md_aio_wait(struct md_aio *a)
{
	if (!a->busy)
		return 0;
	wait_for_completion(&a->done);
	a->busy = false;
	return a->error ? -EIO : 0;
}

/*
 * md.buf in halves, each for both copies of *@chunk pages: two if it
 * holds two such pages at least, else one (I/O and CPU then take turns).
 * Returns how many; @half gets where they begin.
 */
static u32 md_buf_halves(struct stash_cache *sc, void *half[2], u32 *chunk)
{
	u32 halves = sc->md.buf_pages >= 4 ? 2 : 1;

	*chunk = max_t(u32, sc->md.buf_pages / (2 * halves), 1);
	half[0] = sc->md.buf;
	half[1] = sc->md.buf + (size_t)*chunk * 2 * STASH_MD_BLOCK_BYTES;
	return halves;
}

/*
 * ---- Constructor: superblock, format, geometry ----
 */

/*
 * The volume's dm name, as it is now (a rename between commits is picked
 * up by the next one).  Kept as it was if the device is going away.
 */
static_assert(STASH_SB_NAME_BYTES == DM_NAME_LEN);

static void refresh_name(struct stash_cache *sc)
{
	char name[DM_NAME_LEN];

	if (sc->md.ident &&
	    !dm_copy_name_and_uuid(stash_mapped_dev(sc), name, NULL))
		strscpy(sc->md.ident->name, name, sizeof(sc->md.ident->name));
}

/* Superblock copy @copy: the next commit's is (seq % 2). */
static int write_superblock_copy(struct stash_cache *sc,
				 const struct stash_sb *sb, unsigned int copy)
{
	stash_sb_encode_ident(sb, sc->md.ident, sc->md.sb_buf);
	return md_io(sc, cache_bdev(sc),
		     REQ_OP_WRITE | REQ_PREFLUSH | REQ_FUA, sc->md.sb_buf,
		     copy * STASH_MD_BLOCK_SECTORS, STASH_MD_BLOCK_SECTORS);
}

static int write_superblock(struct stash_cache *sc, const struct stash_sb *sb)
{
	return write_superblock_copy(sc, sb, sb->seq % 2);
}

/*
 * A commit failed: mark the cache "needs check", so that no later table
 * loads it before stashctl check has seen it (the blocks discarded, or
 * cleaned and written around, since the last commit are still recorded as
 * they were).  The mark is the last good commit's superblock with the
 * flag, written over the other copy, with the same sequence: the copy in
 * use is never overwritten, and a half-written failed commit can no longer
 * be taken for a complete one.  Best effort: the device may refuse it.
 */
static void mark_needs_check(struct stash_cache *sc)
{
	struct stash_sb sb = sc->md.sb;

	sb.flags = (sb.flags & ~STASH_SB_FLAG_CLEAN) | STASH_SB_FLAG_NEEDS_CHECK;
	if (write_superblock_copy(sc, &sb, (sb.seq + 1) % 2))
		stash_err(sc, "cannot mark the cache device 'needs check' either: %s",
			  "do not load it again before 'stashctl check'");
	else
		stash_err(sc, "the cache device is marked 'needs check': %s",
			  "'stashctl check' before it is loaded again");
}

/* Write an empty cache: every page, copy 0, sequence 1; then superblock. */
static int format_cache(struct stash_cache *sc, struct stash_sb *sb)
{
	u64 *zero = kcalloc(STASH_MD_ENTRIES_PER_PAGE, sizeof(u64), GFP_KERNEL);
	static const u32 no_csums[STASH_MD_CSUM_ENTRIES_PER_PAGE];
	/* A half of md.buf is written while the other half is encoded. */
	struct md_aio wr[2] = { { .busy = false }, { .busy = false } };
	u32 chunk, p, i, n, h, halves;
	void *half[2];
	int r = -ENOMEM;

	if (!zero)
		return r;

	sb->seq = 1;
	sb->flags = STASH_SB_FLAG_CLEAN;
	get_random_bytes(sb->uuid, sizeof(sb->uuid));
	halves = md_buf_halves(sc, half, &chunk);
	r = 0;
	for (p = 0, h = 0; p < sb->geo.md_pages && !r;
	     p += n, h = (h + 1) % halves) {
		n = min(chunk, sb->geo.md_pages - p);
		/* This half's last write is done before it is filled again. */
		r = md_aio_wait(&wr[h]);
		if (r)
			break;
		for (i = 0; i < n; i++) {
			void *copy0 = half[h] + (size_t)i * 2 * STASH_MD_BLOCK_BYTES;

			stash_md_page_encode_geo(copy0, &sb->geo, p + i, 1, zero,
						 no_csums);
			/* Copy 1 holds nothing valid: zero it. */
			memset(copy0 + STASH_MD_BLOCK_BYTES, 0, STASH_MD_BLOCK_BYTES);
		}
		md_aio_start(sc, REQ_OP_WRITE, half[h], &sb->geo, p, n, &wr[h]);
		cond_resched();
	}
	for (h = 0; h < halves; h++) {
		int w = md_aio_wait(&wr[h]);

		r = r ?: w;
	}
	kfree(zero);
	if (r)
		return r;
	/* The other superblock copy must not survive from an old format. */
	memset(sc->md.sb_buf, 0, STASH_MD_BLOCK_BYTES);
	r = md_io(sc, cache_bdev(sc), REQ_OP_WRITE, sc->md.sb_buf, 0,
		  STASH_MD_BLOCK_SECTORS);
	if (!r)
		r = md_flush(sc, cache_bdev(sc));
	if (!r)
		r = write_superblock(sc, sb);
	return r;
}

/* What each superblock copy holds, as read by read_superblock(). */
struct sb_copies {
	enum stash_sb_kind kind[2];
	const char *why[2];
	u32 version[2];		/* the version field, for messages */
	int best;		/* the copy in use, or -1 */
};

/*
 * Read both superblock copies and take the valid one with the highest
 * sequence.  Returns 0 and fills @sb, -ENOENT if neither copy is valid
 * (@c says what each holds), or -EIO.
 */
static int read_superblock(struct stash_cache *sc, struct stash_sb *sb,
			   struct sb_copies *c)
{
	const struct stash_sb_disk *d = sc->md.sb_buf;
	struct stash_sb copy;
	int i, r;

	c->best = -1;
	for (i = 0; i < 2; i++) {
		r = md_io(sc, cache_bdev(sc), REQ_OP_READ, sc->md.sb_buf,
			  i * STASH_MD_BLOCK_SECTORS, STASH_MD_BLOCK_SECTORS);
		if (r)
			return -EIO;
		c->why[i] = NULL;
		c->kind[i] = stash_sb_classify(sc->md.sb_buf, &copy, &c->why[i]);
		c->version[i] = le32_to_cpu(d->version);
		if (c->kind[i] != STASH_SB_VALID)
			continue;
		if (stash_sb_preferred(&copy, c->best < 0 ? NULL : sb)) {
			*sb = copy;
			c->best = i;
		}
	}
	return c->best < 0 ? -ENOENT : 0;
}

static bool sb_kind_is(const struct sb_copies *c, enum stash_sb_kind kind)
{
	return c->kind[0] == kind || c->kind[1] == kind;
}

/*
 * Neither superblock copy is valid.  Returns 0 if the device may be
 * formatted, else sets ti->error and returns -EINVAL.  A device that
 * carries a dm-stash superblock (damaged, or of another format version)
 * is a cache that may hold dirty data: it is only formatted when the
 * table asks for it, and the refusal does not point at 'format' first.
 */
static int may_format(struct stash_cache *sc, const struct sb_copies *c,
		      bool format)
{
	struct dm_target *ti = sc->ti;
	bool damaged = sb_kind_is(c, STASH_SB_BAD_CRC) ||
		       sb_kind_is(c, STASH_SB_INVALID);
	bool version = sb_kind_is(c, STASH_SB_VERSION);
	int i;

	if (!damaged && !version) {
		if (format || (c->kind[0] == STASH_SB_BLANK &&
			       c->kind[1] == STASH_SB_BLANK))
			return 0;
		stash_err(sc, "cache device: %s", c->why[c->kind[0] == STASH_SB_BLANK]);
		ti->error = "Cache device not blank, not dm-stash: 'format' overwrites it";
		return -EINVAL;
	}

	for (i = 0; i < 2; i++) {
		if (c->kind[i] == STASH_SB_VERSION)
			stash_err(sc, "cache device: superblock copy %d: format version %u, not %u or %u",
				  i, c->version[i], STASH_FORMAT_VERSION,
				  STASH_FORMAT_VERSION_CSUM);
		else
			stash_err(sc, "cache device: superblock copy %d: %s", i, c->why[i]);
	}
	if (format) {
		stash_warn(sc, "cache device: 'format': re-formatting a dm-stash cache (%s superblock)",
			   damaged ? "damaged" : "other version");
		stash_warn(sc, "cache device: its cached and dirty blocks are discarded");
		return 0;
	}
	if (!damaged) {
		stash_err(sc, "cache device: written by a dm-stash of another on-disk format:");
		stash_err(sc, "cache device: flush it with that version; nothing was changed");
		ti->error = "Cache device holds a dm-stash cache of another format version";
		return -EINVAL;
	}
	stash_err(sc, "cache device: both dm-stash superblock copies are damaged; nothing was changed");
	stash_err(sc, "cache device: dirty blocks it holds are not on the origin yet;");
	stash_err(sc, "cache device: 'stashctl check' on the cache device shows the damage;");
	stash_err(sc, "cache device: only to give up its cached data, add 'format' to the table");
	ti->error = "Damaged dm-stash superblock (both copies): see the kernel log";
	return -EINVAL;
}

/*
 * The constructor's first look at the cache device: md.sb_buf allocated and
 * both superblock copies read (read_superblock()).  -ENOMEM and -EIO set
 * ti->error.
 */
static int open_superblock(struct stash_cache *sc, struct stash_sb *sb,
			   struct sb_copies *copies)
{
	int r;

	sc->md.sb_buf = kzalloc(STASH_MD_BLOCK_BYTES, GFP_KERNEL);
	if (!sc->md.sb_buf) {
		sc->ti->error = "Cannot allocate metadata buffers";
		return -ENOMEM;
	}
	r = read_superblock(sc, sb, copies);
	if (r == -EIO)
		sc->ti->error = "Cannot read the cache device's superblock";
	return r;
}

/* A table's device argument as a device number: "major:minor" or a path. */
static int devt_of(const char *name, dev_t *dev)
{
	unsigned int major, minor;
	char dummy;

	if (sscanf(name, "%u:%u%c", &major, &minor, &dummy) == 2) {
		*dev = MKDEV(major, minor);
		return MAJOR(*dev) == major && MINOR(*dev) == minor ? 0 : -EINVAL;
	}
	return lookup_bdev(name, dev);
}

/*
 * The superblock copy in use says which origin the cache belongs to: the
 * origin as its table named it, and that device's size.  A table that
 * names another device would write the cache's dirty blocks onto it (and
 * serve its cached blocks for it): refused.  A recorded path that names no
 * device now (renamed since) proves nothing either way: accepted, and the
 * next commit records the new one.
 */
static int check_origin(struct stash_cache *sc, int copy, bool format)
{
	struct dm_target *ti = sc->ti;
	struct block_device *origin = sc->origin_dev->bdev;
	struct stash_sb_ident *was;
	dev_t dev;
	int r;

	if (!sc->md.ident)
		return 0;
	was = kzalloc(sizeof(*was), GFP_KERNEL);
	if (!was) {
		ti->error = "Cannot allocate metadata buffers";
		return -ENOMEM;
	}
	r = md_io(sc, cache_bdev(sc), REQ_OP_READ, sc->md.sb_buf,
		  copy * STASH_MD_BLOCK_SECTORS, STASH_MD_BLOCK_SECTORS);
	if (r) {
		ti->error = "Cannot read the cache device's superblock";
		goto out;
	}
	stash_sb_decode_ident(sc->md.sb_buf, was);
	if (was->origin_path[0] &&
	    strcmp(was->origin_path, sc->md.ident->origin_path)) {
		if (devt_of(was->origin_path, &dev))
			stash_warn(sc, "cache device: origin %s names no device now: taking %s",
				   was->origin_path, sc->origin_dev->name);
		else if (dev != origin->bd_dev) {
			stash_err(sc, "cache device: belongs to origin %s (%u:%u), not %s (%u:%u)",
				  was->origin_path, MAJOR(dev), MINOR(dev),
				  sc->origin_dev->name, MAJOR(origin->bd_dev),
				  MINOR(origin->bd_dev));
			stash_err(sc, "cache device: its dirty blocks would go to the wrong device");
			ti->error = "Cache belongs to another origin device: see the kernel log";
			r = -EINVAL;
		}
	}
	if (!r && was->origin_dev_sectors &&
	    was->origin_dev_sectors != bdev_nr_sectors(origin)) {
		stash_err(sc, "cache device: made for an origin of %llu sectors; %s has %llu",
			  was->origin_dev_sectors, sc->origin_dev->name,
			  (u64)bdev_nr_sectors(origin));
		ti->error = "Cache belongs to an origin of another size: see the kernel log";
		r = -EINVAL;
	}
	if (r == -EINVAL) {
		if (format) {
			stash_warn(sc, "cache device: 'format': its cached and dirty blocks are discarded");
			ti->error = NULL;
			r = -ENOENT;
		} else {
			stash_err(sc, "cache device: load it with its origin, or 'format' to discard it");
		}
	}
out:
	kfree(was);
	return r;
}

/*
 * A volatile table keeps nothing on the cache device and overwrites it
 * from its first block on: refused over a device that holds a dm-stash
 * cache (intact or damaged: it may hold dirty blocks), unless the table
 * says 'format', which then also erases both superblock copies, so that
 * the device is never taken for that cache again.
 */
int stash_md_check_volatile(struct stash_cache *sc, bool format)
{
	struct dm_target *ti = sc->ti;
	struct sb_copies copies;
	struct stash_sb sb;
	bool ours;
	int r, i;

	r = open_superblock(sc, &sb, &copies);
	if (r == -ENOMEM || r == -EIO)
		goto out;
	ours = false;
	for (i = 0; i < 2; i++)
		ours |= copies.kind[i] != STASH_SB_BLANK &&
			copies.kind[i] != STASH_SB_FOREIGN;
	r = 0;
	if (!ours)
		goto out;
	if (!format) {
		stash_err(sc, "cache device: holds a dm-stash cache%s; a volatile table would overwrite it",
			  copies.best >= 0 && !(sb.flags & STASH_SB_FLAG_CLEAN) ?
			  " (not shut down cleanly: it may hold dirty blocks)" : "");
		stash_err(sc, "cache device: load it without 'volatile', or add 'format' to discard it");
		ti->error = "Cache device holds a dm-stash cache: see the kernel log";
		r = -EINVAL;
		goto out;
	}
	/* Erased by stash_md_prepare(), once nothing else can fail. */
	sc->md.prepare = STASH_MD_ERASE;
	return 0;
out:
	kfree(sc->md.sb_buf);
	sc->md.sb_buf = NULL;
	return r;
}

/* A valid superblock: was it made for this table's sizes? */
static int check_geometry(struct stash_cache *sc, const struct stash_sb *sb,
			  u32 block_sectors, sector_t cache_sectors)
{
	struct dm_target *ti = sc->ti;

	if (sb->geo.block_sectors != block_sectors) {
		ti->error = "Cache was formatted with a different block_size";
		return -EINVAL;
	}
	if (sb->geo.origin_sectors != ti->len) {
		ti->error = "Cache belongs to an origin of a different size";
		return -EINVAL;
	}
	if (sb->geo.cache_sectors != cache_sectors) {
		ti->error = "Cache device size differs from when it was formatted";
		return -EINVAL;
	}
	if (sb->geo.csum != sc->csum) {
		ti->error = sb->geo.csum ?
			"Cache keeps checksums: the table needs 'checksum'" :
			"Cache has no checksums: drop 'checksum' (or wipe the cache device)";
		return -EINVAL;
	}
	return 0;
}

/*
 * Called by the constructor of a persistent cache: open or format the
 * metadata and set the geometry.  @format: the table allows formatting a
 * device that holds no valid dm-stash superblock.
 */
int stash_md_open(struct stash_cache *sc, bool format, u32 block_sectors)
{
	struct dm_target *ti = sc->ti;
	sector_t cache_sectors = bdev_nr_sectors(cache_bdev(sc));
	struct sb_copies copies;
	struct stash_sb sb;
	int r;

	r = open_superblock(sc, &sb, &copies);
	if (r == -ENOMEM || r == -EIO)
		return r;
	if (!r && (sb.flags & STASH_SB_FLAG_NEEDS_CHECK)) {
		stash_err(sc, "cache device: a metadata commit failed while it was in use");
		stash_err(sc, "cache device: superblock copy %d says 'needs check'",
			  copies.best);
		if (!format) {
			stash_err(sc, "cache device: 'stashctl check DEV' shows its state,");
			stash_err(sc, "cache device: 'stashctl check --clear-needs-check DEV' accepts it");
			ti->error = "Cache metadata needs a check: see the kernel log";
			return -EINVAL;
		}
		stash_warn(sc, "cache device: 'format': its cached and dirty blocks are discarded");
		r = -ENOENT;
	}
	if (!r) {
		r = check_geometry(sc, &sb, block_sectors, cache_sectors);
		if (r)
			return r;
		r = check_origin(sc, copies.best, format);
		if (r && r != -ENOENT)
			return r;
	}
	if (r == -ENOENT) {
		r = may_format(sc, &copies, format);
		if (r)
			return r;
		if (stash_geometry_compute_csum(&sb.geo, cache_sectors, ti->len,
						block_sectors, STASH_MIN_CBLOCKS,
						sc->csum)) {
			ti->error = "Cache device too small (needs 16 blocks after the metadata)";
			return -EINVAL;
		}
		sb.mode = sc->mode;
		/* Formatted by stash_md_prepare(), once nothing else can fail. */
		sc->md.prepare = STASH_MD_FORMAT;
	} else {
		int other = 1 - copies.best;

		/* Format leaves copy 0 blank; anything else is damage. */
		if (copies.kind[other] != STASH_SB_BLANK &&
		    copies.kind[other] != STASH_SB_VALID)
			stash_warn(sc, "cache device: superblock copy %d is damaged (%s): using copy %d",
				   other, copies.why[other], copies.best);
	}
	sc->md.sb = sb;
	sc->md.geo = sb.geo;
	sc->data_start = sb.geo.data_start;
	sc->nr_cblocks = sb.geo.nr_cblocks;
	return 0;
}

/*
 * The constructor's last step, after everything it allocates: write what
 * stash_md_open() or stash_md_check_volatile() decided (format the cache
 * device, or erase the dm-stash superblocks a volatile table with
 * 'format' replaces).  A table refused or short of memory before this
 * leaves the cache device as it was.  Sets ti->error on failure.
 */
int stash_md_prepare(struct stash_cache *sc, bool alone)
{
	int r = 0, i;

	switch (sc->md.prepare) {
	case STASH_MD_KEEP:
		break;
	case STASH_MD_FORMAT:
		refresh_name(sc);
		r = format_cache(sc, &sc->md.sb);
		if (r) {
			sc->ti->error = "Cannot format the cache device";
			break;
		}
		stash_note(sc, "formatted a cache of %u blocks", sc->md.sb.geo.nr_cblocks);
		sc->md.fresh = alone;
		break;
	case STASH_MD_ERASE:
		stash_warn(sc, "cache device: 'format': the dm-stash cache on it is discarded");
		memset(sc->md.sb_buf, 0, STASH_MD_BLOCK_BYTES);
		for (i = 0; i < 2 && !r; i++)
			r = md_io(sc, cache_bdev(sc), REQ_OP_WRITE | REQ_FUA,
				  sc->md.sb_buf, i * STASH_MD_BLOCK_SECTORS,
				  STASH_MD_BLOCK_SECTORS);
		if (r)
			sc->ti->error = "Cannot erase the cache device's superblock";
		kfree(sc->md.sb_buf);
		sc->md.sb_buf = NULL;
		break;
	}
	sc->md.prepare = STASH_MD_KEEP;
	return r;
}

/* Allocate what commits need, once the map exists. */
int stash_md_create(struct stash_cache *sc)
{
	u32 pages = sc->md.geo.md_pages;

	mutex_init(&sc->md.commit_lock);
	bio_list_init(&sc->md.commit_waiting);
	bio_list_init(&sc->md.commit_round);
	/*
	 * At least two pages: load_metadata() reads both copies of a page
	 * into md.buf at once, also when the map has a single page.
	 */
	sc->md.buf_pages = clamp_t(u32, pages, 2, STASH_MD_MAX_COMMIT_PAGES);
	sc->md.buf = __vmalloc(array_size(sc->md.buf_pages, STASH_MD_BLOCK_BYTES),
			       STASH_GFP_TABLE);
	sc->md.buf_index = kvcalloc(sc->md.buf_pages, sizeof(u32), STASH_GFP_TABLE);
	sc->md.page_loc = bitmap_zalloc(pages, GFP_KERNEL);
	sc->md.entries = kcalloc(STASH_MD_ENTRIES_PER_PAGE, sizeof(u64),
				 GFP_KERNEL);
	sc->md.csums = kcalloc(STASH_MD_ENTRIES_PER_PAGE, sizeof(u32), GFP_KERNEL);
	if (!sc->md.buf || !sc->md.entries || !sc->md.csums || !sc->md.buf_index ||
	    !sc->md.page_loc ||
	    stash_bitmap_init(&sc->md.touched, pages) ||
	    stash_bitmap_init(&sc->md.cdirty, sc->nr_cblocks) ||
	    stash_bitmap_init(&sc->md.unflushed, sc->nr_cblocks))
		return -ENOMEM;
	stash_map_attach_pages(&sc->map, &sc->md.touched,
			       sc->md.geo.entries_per_page);
	stash_map_attach_cdirty(&sc->map, &sc->md.cdirty);
	return 0;
}

void stash_md_destroy(struct stash_cache *sc)
{
	stash_map_attach_pages(&sc->map, NULL, 0);
	stash_map_attach_cdirty(&sc->map, NULL);
	stash_bitmap_exit(&sc->md.unflushed);
	stash_bitmap_exit(&sc->md.cdirty);
	stash_bitmap_exit(&sc->md.touched);
	bitmap_free(sc->md.page_loc);
	kfree(sc->md.entries);
	sc->md.entries = NULL;
	kfree(sc->md.csums);
	sc->md.csums = NULL;
	kvfree(sc->md.buf_index);
	vfree(sc->md.buf);
	kfree(sc->md.sb_buf);
	kfree(sc->md.ident);
	sc->md.ident = NULL;
	sc->md.page_loc = NULL;
	sc->md.buf_index = NULL;
	sc->md.buf = NULL;
	sc->md.sb_buf = NULL;
}

/*
 * ---- Load (first resume) ----
 */

/*
 * Per page of metadata: which copy to trust, and its entries (the rules:
 * stash_md_pick_page()).  A copy that a torn commit left (stamped above
 * the superblock) is rewritten here with the committed copy, so that no
 * later commit (which may take that sequence again, or pass it) can make
 * it current, valid or torn.
 */
static int load_page(struct stash_cache *sc, u32 p, void *both, u64 *entries,
		     u32 *csums, u64 *page_seq, u64 *scratch, u32 *csum_scratch)
{
	struct stash_md_pick pick;
	int best, other;

	stash_md_pick_page(both, &sc->md.geo, p, sc->nr_oblocks, sc->md.sb.seq, false,
			   entries, csums, scratch, csum_scratch, &pick);
	best = pick.best;
	switch (pick.result) {
	case STASH_PICK_OK:
		break;
	case STASH_PICK_NO_COPY:
		stash_err(sc, "metadata page %u: no valid copy (%s)", p,
			  stash_md_pick_why(&pick));
		return -EINVAL;
	case STASH_PICK_NEWEST_DAMAGED:
		stash_err(sc, "metadata page %u: its newest copy (sequence %llu) is damaged",
			  p, pick.copy[1 - best].raw_seq);
		stash_err(sc, "metadata page %u: the older copy (sequence %llu) may map slots reused since",
			  p, pick.copy[best].seq);
		return -EINVAL;
	}
	other = 1 - best;
	if (pick.erase_other) {
		int r = md_io(sc, cache_bdev(sc), REQ_OP_WRITE,
			      both + best * STASH_MD_BLOCK_BYTES,
			      stash_md_page_sector(&sc->md.geo, p, other),
			      STASH_MD_BLOCK_SECTORS);

		if (r) {
			stash_err(sc, "metadata page %u: cannot erase an uncommitted copy", p);
			return r;
		}
	}
	if (best)
		__set_bit(p, sc->md.page_loc);
	*page_seq = pick.copy[best].seq;
	return 0;
}

/*
 * The load dropped the entry of slot @c: its page is written at the resume
 * commit.  (The map itself touches no page while it loads.)
 */
static void load_drop(struct stash_cache *sc, u32 c)
{
	stash_bitmap_set(&sc->md.touched, c / sc->md.geo.entries_per_page);
}

/*
 * Map @c to @ob; a second mapping of @ob is resolved by
 * stash_md_dup_winner() (the newer page wins).  After an unclean shutdown
 * only dirty entries get here (stash_md_load_keeps()).
 */
static int load_entry(struct stash_cache *sc, u32 c, u64 e, u32 crc, u64 seq,
		      u64 *entry_seq_of_page)
{
	oblock_t ob = to_oblock(e & STASH_MD_OBLOCK_MASK);
	bool dirty = e & STASH_MD_DIRTY;
	cblock_t other;
	u32 o;
	int r;

	r = stash_map_load(&sc->map, to_cblock(c), ob, &other);
	if (r == -EEXIST) {
		o = from_cblock(other);
		/* The loser's page is written again (see load_metadata()). */
		switch (stash_md_dup_winner(entry_seq_of_page[o / sc->md.geo.entries_per_page],
					    seq)) {
		case STASH_DUP_CORRUPT:
			stash_err(sc, "metadata maps origin block %llu twice in one commit",
				  from_oblock(ob));
			return -EINVAL;
		case STASH_DUP_KEEP:
			load_drop(sc, c);
			return 0;
		case STASH_DUP_REPLACE:
			break;
		}
		stash_bitmap_clear(&sc->dirty, o);
		stash_bitmap_clear(&sc->md.cdirty, o);
		stash_map_invalidate(&sc->map, other);
		load_drop(sc, o);
		r = stash_map_load(&sc->map, to_cblock(c), ob, NULL);
	}
	if (r)
		return -EINVAL;
	if (dirty) {
		stash_bitmap_set(&sc->dirty, c);
		stash_bitmap_set(&sc->md.cdirty, c);
	}
	if (sc->csum)
		stash_csum_load(sc, to_cblock(c), e & STASH_MD_OPEN, crc);
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
	const struct stash_geometry *g = &sc->md.geo;
	struct sb_copies copies;
	struct stash_sb sb;
	int r;

	r = read_superblock(sc, &sb, &copies);
	if (r) {
		stash_err(sc, "cannot read the superblock again: %s",
			  r == -ENOENT ? "no valid copy" :
			  r == -ENOMEM ? "out of memory" : "I/O error");
		return r == -ENOENT ? -EINVAL : r;
	}
	if (sb.geo.origin_sectors != g->origin_sectors ||
	    sb.geo.cache_sectors != g->cache_sectors ||
	    sb.geo.md_start != g->md_start || sb.geo.data_start != g->data_start ||
	    sb.geo.block_sectors != g->block_sectors ||
	    sb.geo.nr_cblocks != g->nr_cblocks || sb.geo.md_pages != g->md_pages) {
		stash_err(sc, "the superblock's geometry changed since the table was loaded");
		return -EINVAL;
	}
	sc->md.sb = sb;
	return 0;
}

/* Start reading both copies of the @chunk pages from @p, if any, into @buf. */
static void md_read_chunk(struct stash_cache *sc, void *buf, u32 p, u32 chunk,
			  struct md_aio *a)
{
	u32 pages = sc->md.geo.md_pages;

	if (p < pages)
		md_aio_start(sc, REQ_OP_READ, buf, &sc->md.geo, p,
			     min(chunk, pages - p), a);
}

/*
 * Build the map from the metadata pages.  *@map_touched tells whether a
 * failure came after the map began to change (before, nothing was).
 */
static int load_metadata(struct stash_cache *sc, bool *map_touched)
{
	u32 pages = sc->md.geo.md_pages, p, i, chunk, halves, h;
	u64 loaded = 0;
	struct md_aio rd[2] = { { .busy = false }, { .busy = false } };
	void *half[2];
	u64 *entries, *scratch, *page_seq;
	u32 *csums, *csum_scratch;
	bool unclean;
	int r;

	*map_touched = false;
	/*
	 * Formatted by this table, with nothing else on the device since:
	 * the superblock is the format's, every page empty in copy 0
	 * (md.page_loc as allocated), the map empty as created and attached
	 * to md.touched as stash_md_create() left it.
	 */
	if (sc->md.fresh) {
		sc->md.fresh = false;
		return 0;
	}
	r = reread_superblock(sc);
	if (r)
		return r;
	unclean = !(sc->md.sb.flags & STASH_SB_FLAG_CLEAN);

	entries = kmalloc_array(STASH_MD_ENTRIES_PER_PAGE, sizeof(u64), GFP_KERNEL);
	scratch = kmalloc_array(STASH_MD_ENTRIES_PER_PAGE, sizeof(u64), GFP_KERNEL);
	/* Either version's page (a version 1 page fills in 510 zeros). */
	csums = kcalloc(STASH_MD_ENTRIES_PER_PAGE, sizeof(u32), GFP_KERNEL);
	csum_scratch = kcalloc(STASH_MD_ENTRIES_PER_PAGE, sizeof(u32), GFP_KERNEL);
	page_seq = kvcalloc(pages, sizeof(u64), STASH_GFP_TABLE);
	if (!entries || !scratch || !csums || !csum_scratch || !page_seq) {
		r = -ENOMEM;
		goto out;
	}
	/*
	 * Read both copies of as many pages as half of md.buf holds at a
	 * time, the next chunk while the load decodes this one (a large
	 * cache's load is as much CPU as reading).  The map touches no page
	 * while it loads: the pages already say what it loads (load_drop()
	 * marks those that do not).
	 */
	*map_touched = true;
	stash_map_attach_pages(&sc->map, NULL, 0);
	halves = md_buf_halves(sc, half, &chunk);
	md_read_chunk(sc, half[0], 0, chunk, &rd[0]);
	for (p = 0, h = 0; p < pages; p += chunk, h = (h + 1) % halves) {
		u32 n = min(chunk, pages - p), next = (h + 1) % halves;
		void *buf = half[h];

		r = md_aio_wait(&rd[h]);
		if (r) {
			stash_err(sc, "cannot read metadata pages %u..%u", p, p + n - 1);
			break;
		}
		/* With one half, the next read waits for the decode below. */
		if (halves == 2)
			md_read_chunk(sc, half[next], p + chunk, chunk, &rd[next]);
		for (i = 0; i < n && !r; i++) {
			u32 k, page = p + i;

			r = load_page(sc, page, buf +
				      (size_t)i * 2 * STASH_MD_BLOCK_BYTES,
				      entries, csums, &page_seq[page], scratch,
				      csum_scratch);
			for (k = 0; k < sc->md.geo.entries_per_page && !r; k++) {
				u32 c = page * sc->md.geo.entries_per_page + k;

				if (!entries[k])
					continue;
				if (!stash_md_load_keeps(unclean, entries[k])) {
					load_drop(sc, c);
					continue;
				}
				r = load_entry(sc, c, entries[k], csums[k],
					       page_seq[page], page_seq);
				loaded++;
			}
			cond_resched();
		}
		if (r)
			break;
		if (halves == 1)
			md_read_chunk(sc, half[next], p + chunk, chunk, &rd[next]);
	}
	/* A read ahead still in flight when the load stopped. */
	for (h = 0; h < halves; h++)
		md_aio_wait(&rd[h]);
	/*
	 * Loading leaves the free list as stash_map_init() made it, the
	 * loaded slots still on it: rebuild it, unless nothing was loaded
	 * (an empty cache: every slot free, in order, as it is).
	 */
	if (loaded)
		stash_map_rebuild_free(&sc->map);
	stash_map_attach_pages(&sc->map, &sc->md.touched,
			       sc->md.geo.entries_per_page);
	/*
	 * The pages of the entries dropped above (clean ones after a crash,
	 * older duplicates) are touched: the resume commit writes them from
	 * what was loaded, so that those entries cannot come back at a later
	 * load.  The other pages say what the map holds already: a clean
	 * resume writes none, whatever the size of the cache.
	 */
out:
	kvfree(page_seq);
	kfree(csum_scratch);
	kfree(csums);
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
		u32 p = sc->md.buf_index[i];

		region.sector = stash_md_page_sector(&sc->md.geo, p,
						     !test_bit(p, sc->md.page_loc));
		req.mem.ptr.vma = sc->md.buf + (size_t)i * STASH_MD_BLOCK_BYTES;
		if (stash_dm_io(&req, &region))
			page_write_done(1, &pw);
	}
	page_write_done(0, &pw);
	wait_for_completion(&pw.done);
	return pw.failed ? -EIO : 0;
}

/*
 * How a commit records a block that writeback cleaned since the origin was
 * last flushed (md.unflushed): until its origin write is durable, the slot
 * is the block's one durable copy, so it is recorded clean or empty only
 * under an origin flush that the commit issues after encoding.
 */
enum md_record {
	/* Every such block as it is; the commit flushes the origin. */
	MD_RECORD_CLEAN,
	/*
	 * Waiters are in a hurry: a block still mapped stays recorded dirty
	 * (recovery writes it back again, no flush needed); one no longer
	 * mapped (invalidated, discarded) is recorded empty under the flush.
	 */
	MD_RECORD_DIRTY,
	/*
	 * The origin flush failed: as MD_RECORD_DIRTY, but a page with a
	 * block no longer mapped cannot be written at all.
	 */
	MD_RECORD_NOFLUSH,
};

enum md_page_enc {
	PAGE_ENCODED,		/* records everything: no longer touched */
	PAGE_DEFERRED,		/* encoded; a block still to record clean */
	PAGE_STUCK,		/* not encoded: needs an origin flush */
};

/*
 * Under sc->lock: encode page @p of the map into @buf.  *@unflushed
 * counts the written-back blocks it records clean or empty: the caller
 * flushes the origin before writing the page.
 */
static enum md_page_enc encode_page_locked(struct stash_cache *sc, u32 p,
					   void *buf, u64 seq, u64 *entries,
					   enum md_record how, bool clean,
					   u32 *unflushed)
{
	enum md_page_enc ret = PAGE_ENCODED;
	u32 k, c;

	for (k = 0; k < sc->md.geo.entries_per_page; k++) {
		bool valid, dirty;
		oblock_t ob;

		c = p * sc->md.geo.entries_per_page + k;
		if (c >= sc->nr_cblocks) {
			entries[k] = 0;
			continue;
		}
		valid = stash_map_is_live(&sc->map, to_cblock(c));
		dirty = valid && stash_bitmap_test(&sc->dirty, c);
		if (!dirty && stash_bitmap_test(&sc->md.unflushed, c)) {
			if (how == MD_RECORD_CLEAN ||
			    (how == MD_RECORD_DIRTY && !valid)) {
				stash_bitmap_clear(&sc->md.unflushed, c);
				(*unflushed)++;
			} else if (valid) {
				dirty = true;
				ret = PAGE_DEFERRED;
			} else {
				return PAGE_STUCK;
			}
		}
		ob = stash_map_oblock(&sc->map, to_cblock(c));
		entries[k] = stash_md_entry(valid, dirty, from_oblock(ob));
		if (sc->csum && valid)
			stash_csum_encode_locked(sc, to_cblock(c), clean,
						 &entries[k], &sc->md.csums[k]);
		else if (sc->csum)
			stash_csum_forget_locked(sc, to_cblock(c));
		/* Recorded dirty: block reuse from now on, to be safe. */
		if (dirty)
			stash_bitmap_set(&sc->md.cdirty, c);
	}
	stash_md_page_encode_geo(buf, &sc->md.geo, p, seq, entries, sc->md.csums);
	return ret;
}

/*
 * After a commit: a slot stays committed-dirty (not reusable) if it was
 * recorded dirty, or if writeback cleaned it again since it was encoded
 * (its next record needs an origin flush first).
 */
static void settle_cdirty_locked(struct stash_cache *sc, u32 n)
{
	u32 i, k;

	for (i = 0; i < n; i++) {
		struct stash_md_page_disk *d = sc->md.buf +
					       (size_t)i * STASH_MD_BLOCK_BYTES;
		u32 p = sc->md.buf_index[i];

		__change_bit(p, sc->md.page_loc);
		for (k = 0; k < sc->md.geo.entries_per_page; k++) {
			u32 c = p * sc->md.geo.entries_per_page + k;

			if (c >= sc->nr_cblocks)
				break;
			stash_csum_committed_locked(sc, to_cblock(c),
						    le64_to_cpu(d->entries[k]));
			if (!(le64_to_cpu(d->entries[k]) & STASH_MD_DIRTY) &&
			    !stash_bitmap_test(&sc->md.unflushed, c) &&
			    stash_bitmap_clear(&sc->md.cdirty, c))
				stash_map_note_reusable(&sc->map);
		}
	}
}

/*
 * The origin flush of a commit that records cleaned blocks failed.  Undo
 * what encoding did before it is encoded again without them: its pages
 * are touched again, every block they record clean, and every empty slot
 * not yet reusable, is taken as not yet flushed (a superset of those
 * encoding took out of md.unflushed, which is safe: such a block only
 * costs a flush, or is recorded dirty once more), the waiters go back to
 * the head of the queue, and recording cleaned blocks waits commit_ms.
 */
static void origin_flush_failed(struct stash_cache *sc, u32 n,
				struct bio_list *waiters)
{
	unsigned long flags;
	u32 i, k;

	spin_lock_irqsave(&sc->lock, flags);
	for (i = 0; i < n; i++) {
		struct stash_md_page_disk *d = sc->md.buf +
					       (size_t)i * STASH_MD_BLOCK_BYTES;
		u32 p = sc->md.buf_index[i];

		stash_bitmap_set(&sc->md.touched, p);
		for (k = 0; k < sc->md.geo.entries_per_page; k++) {
			u32 c = p * sc->md.geo.entries_per_page + k;
			u64 e;

			if (c >= sc->nr_cblocks)
				break;
			e = le64_to_cpu(d->entries[k]);
			if ((e & STASH_MD_VALID) ? !(e & STASH_MD_DIRTY) :
			    stash_bitmap_test(&sc->md.cdirty, c))
				stash_bitmap_set(&sc->md.unflushed, c);
		}
	}
	bio_list_merge_head(&sc->md.commit_round, waiters);
	bio_list_init(waiters);
	sc->stats.origin_errors++;
	sc->md.clean_due = jiffies +
		msecs_to_jiffies(READ_ONCE(sc->tun.commit_ms));
	spin_unlock_irqrestore(&sc->lock, flags);
}

/*
 * A failed commit fails its waiters, except that, once the cache device
 * has failed, a flush is done as a failed cache does it: on the origin,
 * after the dirty blocks (stash_flush_failed()).
 */
static void complete_waiters(struct stash_cache *sc, struct bio_list *waiters,
			     bool failed)
{
	struct bio *bio;

	while ((bio = bio_list_pop(waiters))) {
		if (stash_commit_waiter_done(sc, bio, failed))
			continue;
		if (failed && stash_cache_failed(sc) && !bio_has_data(bio)) {
			stash_flush_failed(sc, bio);
			continue;
		}
		if (failed)
			bio->bi_status = BLK_STS_IOERR;
		bio_endio(bio);
	}
}

/*
 * Before a superblock with the clean flag: flush the origin if a write
 * reached it since its newest flush.  Returns 0, or the flush's error.
 */
static int flush_origin_for_clean(struct stash_cache *sc)
{
	s64 done = atomic64_read(&sc->origin_writes_done);
	unsigned long flags;
	int r;

	if (done == atomic64_read(&sc->origin_flushed))
		return 0;
	r = md_flush(sc, sc->origin_dev->bdev);
	if (!r) {
		stash_origin_flushed(sc, done);
		return 0;
	}
	stash_err_ratelimited(sc, "commit: origin flush failed %d: %s", r,
			      "no clean shutdown recorded");
	spin_lock_irqsave(&sc->lock, flags);
	sc->stats.origin_errors++;
	spin_unlock_irqrestore(&sc->lock, flags);
	return r;
}

/*
 * Encode the changed pages among @from..@to - 1 into md.buf from slot *@n
 * on, until md.buf is full; counts what encode_page_locked() says in
 * *@unflushed, *@deferred and *@stuck.  Returns @to if it passed every
 * page (no changed page is left there), else the page after the last one
 * it took.  Deferred and stuck pages stay changed, for a later commit.
 */
static u32 encode_pages_locked(struct stash_cache *sc, u32 from, u32 to,
			       u64 seq, enum md_record how, bool clean, u32 *n,
			       u32 *unflushed, u32 *deferred, u32 *stuck)
{
	u32 p;

	for (p = stash_bitmap_next(&sc->md.touched, from); p < to;
	     p = stash_bitmap_next(&sc->md.touched, p + 1)) {
		if (*n == sc->md.buf_pages)
			return p;
		switch (encode_page_locked(sc, p, sc->md.buf +
					   (size_t)*n * STASH_MD_BLOCK_BYTES,
					   seq, sc->md.entries, how, clean,
					   unflushed)) {
		case PAGE_STUCK:
			(*stuck)++;
			continue;
		case PAGE_DEFERRED:
			(*deferred)++;
			break;
		case PAGE_ENCODED:
			stash_bitmap_clear(&sc->md.touched, p);
			break;
		}
		sc->md.buf_index[(*n)++] = p;
	}
	return to;
}

/*
 * Commit changed metadata (see the top of this file).  @clean marks a
 * clean shutdown.  Returns 0, -EAGAIN if more pages changed than one commit
 * takes (commit again), or -EIO (the cache's metadata has failed).
 */
int stash_md_commit(struct stash_cache *sc, bool clean)
{
	struct bio_list waiters = BIO_EMPTY_LIST;
	u32 n, p, unflushed, deferred, stuck, passed, round_failed = 0;
	u32 cursor0, round_left0, round_stuck0;
	bool more, origin_flushed = true, round_done = false;
	u64 round_drops = 0;
	enum md_record how;
	struct stash_sb sb;
	unsigned long flags;
	int r;

	mutex_lock(&sc->md.commit_lock);
	if (READ_ONCE(sc->md.failed)) {
		r = -EIO;
		goto fail_waiters;
	}

	refresh_name(sc);
	sb = sc->md.sb;
	sb.seq++;
	sb.mode = READ_ONCE(sc->mode);

	spin_lock_irqsave(&sc->lock, flags);
	cursor0 = sc->md.cursor;
	round_left0 = sc->md.round_left;
	round_stuck0 = sc->md.round_stuck;
	spin_unlock_irqrestore(&sc->lock, flags);
encode:
	n = 0;
	unflushed = 0;
	deferred = 0;
	stuck = 0;
	/* Only the encoding that is written may end the sweep. */
	round_done = false;
	round_failed = 0;
	round_drops = 0;
	spin_lock_irqsave(&sc->lock, flags);
	if (!origin_flushed) {
		/* Encoded again: the sweep as it was before. */
		sc->md.cursor = cursor0;
		sc->md.round_left = round_left0;
		sc->md.round_stuck = round_stuck0;
	}
	/* Bios wait and no sweep runs: this commit starts one for them. */
	if (!sc->md.round_left && (!bio_list_empty(&sc->md.commit_round) ||
				   !bio_list_empty(&sc->md.commit_waiting))) {
		bio_list_merge(&sc->md.commit_round, &sc->md.commit_waiting);
		bio_list_init(&sc->md.commit_waiting);
		sc->md.round_left = sc->md.geo.md_pages;
		sc->md.round_stuck = 0;
		sc->md.round_drops = stash_map_cdirty_drops(&sc->map);
	}
	if (!origin_flushed)
		how = MD_RECORD_NOFLUSH;
	else if (clean || bio_list_empty(&sc->md.commit_round) ||
		 stash_wb_space_wanted(&sc->wb) ||
		 !bio_list_empty(&sc->deferred) ||
		 time_after_eq(jiffies, sc->md.clean_due))
		how = MD_RECORD_CLEAN;
	else
		how = MD_RECORD_DIRTY;
	/* From the cursor to the last page, then from the first page to it. */
	p = encode_pages_locked(sc, sc->md.cursor, sc->md.geo.md_pages, sb.seq,
				how, clean, &n, &unflushed, &deferred, &stuck);
	passed = p - sc->md.cursor;
	if (p == sc->md.geo.md_pages) {
		p = encode_pages_locked(sc, 0, sc->md.cursor, sb.seq, how,
					clean, &n, &unflushed, &deferred,
					&stuck);
		passed += p;
	}
	sc->md.cursor = p;
	more = sc->md.touched.nr_set > deferred + stuck;
	if (sc->md.round_left) {
		sc->md.round_stuck += stuck;
		if (passed >= sc->md.round_left) {
			/* The sweep passed every page: its bios complete. */
			bio_list_merge(&waiters, &sc->md.commit_round);
			bio_list_init(&sc->md.commit_round);
			round_failed = sc->md.round_stuck;
			sc->md.round_left = 0;
			round_done = true;
			round_drops = sc->md.round_drops;
		} else {
			sc->md.round_left -= passed;
			more = true;
		}
	}
	if (how == MD_RECORD_CLEAN)
		sc->md.clean_due = jiffies +
			msecs_to_jiffies(READ_ONCE(sc->tun.commit_ms));
	spin_unlock_irqrestore(&sc->lock, flags);
	/*
	 * A clean shutdown is recorded by the commit that writes the last
	 * changed page, never by one of several before it: after a crash
	 * between them, the pages not yet written would be taken as
	 * current.
	 */
	sb.flags = clean && !more && !stuck ? STASH_SB_FLAG_CLEAN : 0;

	if (unflushed) {
		s64 done = atomic64_read(&sc->origin_writes_done);

		r = md_flush(sc, sc->origin_dev->bdev);
		if (r) {
			/*
			 * An origin error, not a metadata one: this commit
			 * records no cleaned block, and a later one retries.
			 */
			stash_err_ratelimited(sc, "commit: origin flush failed %d: %s", r,
					      "cleaned blocks stay recorded dirty");
			origin_flush_failed(sc, n, &waiters);
			origin_flushed = false;
			clean = false;
			goto encode;
		}
		stash_origin_flushed(sc, done);
	}

	/*
	 * The clean flag says every clean mapping equals the origin's durable
	 * copy: write-through and write-around writes the origin has not
	 * flushed yet are made durable first (unless the flush above covered
	 * them), or the flag is not written.
	 */
	if (sb.flags && flush_origin_for_clean(sc))
		sb.flags = 0;

	/*
	 * The superblock write flushes the cache device first (PREFLUSH).
	 * Nothing to record (writes only overwrote dirty blocks, or none
	 * came): the last superblock still says it all, and a flush of the
	 * cache device is all the waiters need.
	 */
	if (!n && !sb.flags && !(sc->md.sb.flags & STASH_SB_FLAG_CLEAN) &&
	    sb.mode == sc->md.sb.mode) {
		r = md_flush(sc, cache_bdev(sc));
		if (!r) {
			if (round_done && !round_failed)
				WRITE_ONCE(sc->md.drops_covered, round_drops);
			mutex_unlock(&sc->md.commit_lock);
			complete_waiters(sc, &waiters, round_failed);
			return more ? -EAGAIN : 0;
		}
		stash_err(sc, "commit: cache device flush failed %d", r);
	} else {
		r = write_pages(sc, n);
		if (!r)
			r = write_superblock(sc, &sb);
		if (r)
			stash_err(sc, "commit %llu failed %d", sb.seq, r);
	}
	if (r) {
		spin_lock_irqsave(&sc->lock, flags);
		sc->stats.cache_errors++;
		spin_unlock_irqrestore(&sc->lock, flags);
		stash_cache_error(sc);
		goto failed;
	}

	spin_lock_irqsave(&sc->lock, flags);
	settle_cdirty_locked(sc, n);
	sc->md.sb = sb;
	sc->stats.commits++;
	if (round_done && !round_failed)
		WRITE_ONCE(sc->md.drops_covered, round_drops);
	spin_unlock_irqrestore(&sc->lock, flags);
	mutex_unlock(&sc->md.commit_lock);

	/*
	 * A page that needed the failed origin flush was not written: the
	 * flushes and FUA writes waiting for this commit fail.
	 */
	if (round_failed)
		stash_err_ratelimited(sc, "commit: %u metadata pages wait for an origin flush: %s",
				      round_failed, "flushes waiting for them fail");
	complete_waiters(sc, &waiters, round_failed);
	/* Slots may be reusable now. */
	stash_kick_worker(sc);
	return more ? -EAGAIN : 0;

failed:
	WRITE_ONCE(sc->md.failed, true);
	stash_err(sc, "metadata commit failed: writes that need a commit are refused");
	mark_needs_check(sc);
	r = -EIO;
fail_waiters:
	spin_lock_irqsave(&sc->lock, flags);
	bio_list_merge(&waiters, &sc->md.commit_round);
	bio_list_init(&sc->md.commit_round);
	bio_list_merge(&waiters, &sc->md.commit_waiting);
	bio_list_init(&sc->md.commit_waiting);
	sc->md.round_left = 0;
	spin_unlock_irqrestore(&sc->lock, flags);
	mutex_unlock(&sc->md.commit_lock);
	complete_waiters(sc, &waiters, true);
	return r;
}

static unsigned long commit_period(struct stash_cache *sc)
{
	return msecs_to_jiffies(READ_ONCE(sc->tun.commit_ms));
}

/* Pages to write, or written-back blocks to record clean. */
static bool md_work_left(struct stash_cache *sc)
{
	return READ_ONCE(sc->md.touched.nr_set) ||
	       READ_ONCE(sc->md.unflushed.nr_set);
}

static void commit_work_fn(struct work_struct *ws)
{
	struct stash_cache *sc = container_of(ws, struct stash_cache,
					      md.commit_work);

	while (stash_md_commit(sc, false) == -EAGAIN)
		cond_resched();
	/* Pages left (an origin flush failed, say): a parked timer retries. */
	if (md_work_left(sc))
		stash_md_note_io(sc);
}

/*
 * Whether every slot invalidated while committed-dirty is recorded empty
 * on disk by now.  If not, a FUA write that reached the origin completes
 * only after a commit (stash_md_wait_commit()): a power cut would let
 * recovery write such a slot's older data back over it.
 */
bool stash_md_drops_covered(struct stash_cache *sc)
{
	return sc->is_volatile ||
	       stash_map_cdirty_drops(&sc->map) == READ_ONCE(sc->md.drops_covered);
}

/* A bio that completes only after the next commit (flush, FUA write). */
void stash_md_wait_commit(struct stash_cache *sc, struct bio *bio)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	bio_list_add(&sc->md.commit_waiting, bio);
	spin_unlock_irqrestore(&sc->lock, flags);
	queue_work(sc->md.commit_wq, &sc->md.commit_work);
}

/*
 * Periodic commit: bounds what is at risk between flushes.  An idle volume
 * with nothing to commit parks the timer rather than wake up every period
 * for nothing; the next I/O, writeback run or message starts it again
 * (stash_md_note_io()), and so does a commit that leaves work behind.
 * Nothing waits for the timer: flushes and FUA writes start their own
 * commits.
 */
static void commit_timer_fn(struct work_struct *ws)
{
	struct stash_cache *sc = container_of(to_delayed_work(ws),
					      struct stash_cache, md.commit_timer);
	unsigned long quiet = 2 * commit_period(sc), flags;
	bool changed, idle, parked = false;

	if (READ_ONCE(sc->md.commit_timer_state) == STASH_TIMER_STOPPED)
		return;
	idle = time_after(jiffies, READ_ONCE(sc->last_io) + quiet);
	/*
	 * Idle: the slots left open by checksummed writes close now (their
	 * pages are touched, so the timer runs until they are).
	 */
	if (idle)
		stash_csum_touch_open(sc);
	changed = md_work_left(sc);
	if (changed)
		queue_work(sc->md.commit_wq, &sc->md.commit_work);
	spin_lock_irqsave(&sc->md.timer_lock, flags);
	if (sc->md.commit_timer_state == STASH_TIMER_RUNNING) {
		if (idle && !changed && !work_busy(&sc->md.commit_work)) {
			sc->md.commit_timer_state = STASH_TIMER_PARKED;
			parked = true;
		} else {
			queue_delayed_work(stash_wb_queue(&sc->wb), &sc->md.commit_timer,
					   commit_period(sc));
		}
	}
	spin_unlock_irqrestore(&sc->md.timer_lock, flags);
	if (!parked)
		return;
	/*
	 * Pairs with stash_md_note_io(): I/O that came meanwhile saw the
	 * timer running, so look again.
	 */
	smp_mb();
	if (!time_after(jiffies, READ_ONCE(sc->last_io) + quiet) ||
	    md_work_left(sc))
		stash_md_wake_timer(sc);
}

void stash_md_wake_timer(struct stash_cache *sc)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->md.timer_lock, flags);
	if (sc->md.commit_timer_state == STASH_TIMER_PARKED) {
		sc->md.commit_timer_state = STASH_TIMER_RUNNING;
		queue_delayed_work(stash_wb_queue(&sc->wb), &sc->md.commit_timer,
				   commit_period(sc));
	}
	spin_unlock_irqrestore(&sc->md.timer_lock, flags);
}

/* Start (RUNNING) or stop (STOPPED) the commit timer. */
static void set_timer_state(struct stash_cache *sc, int state)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->md.timer_lock, flags);
	sc->md.commit_timer_state = state;
	if (state == STASH_TIMER_RUNNING)
		queue_delayed_work(stash_wb_queue(&sc->wb), &sc->md.commit_timer,
				   commit_period(sc));
	spin_unlock_irqrestore(&sc->md.timer_lock, flags);
}

/*
 * ---- Suspend and resume ----
 */

/* First resume: load; every resume: mark the metadata in use (unclean). */
int stash_md_resume(struct stash_cache *sc)
{
	int r;

	if (READ_ONCE(sc->md.failed)) {
		stash_err(sc, "metadata failed earlier: refusing to resume; check the cache device");
		return -EIO;
	}
	if (!sc->md.loaded) {
		bool map_touched;

		r = load_metadata(sc, &map_touched);
		if (r) {
			/*
			 * A half-built map can never be used: this table will
			 * not resume.  A load that failed before the map
			 * changed (no memory, the superblock unreadable) is
			 * tried again at the next resume.
			 */
			if (map_touched)
				WRITE_ONCE(sc->md.failed, true);
			stash_err(sc, "cannot load the cache metadata (%d): refusing to resume", r);
			return r;
		}
		sc->md.loaded = true;
		stash_note(sc, "loaded %u blocks (%u dirty) after a%s shutdown",
			   stash_map_nr_allocated(&sc->map), sc->dirty.nr_set,
			   sc->md.sb.flags & STASH_SB_FLAG_CLEAN ? " clean" : "n unclean");
	}
	r = stash_md_commit(sc, false);
	while (r == -EAGAIN)
		r = stash_md_commit(sc, false);
	if (r)
		return r;
	set_timer_state(sc, STASH_TIMER_RUNNING);
	return 0;
}

/* Suspend: no I/O runs; record everything with the clean flag. */
void stash_md_suspend(struct stash_cache *sc)
{
	int r;

	/* Stopped, nothing queues it again (stash_md_wake_timer()). */
	set_timer_state(sc, STASH_TIMER_STOPPED);
	cancel_delayed_work_sync(&sc->md.commit_timer);
	flush_work(&sc->md.commit_work);
	if (!sc->md.loaded)
		return;
	/* A clean shutdown records every slot's checksum. */
	stash_csum_touch_open(sc);
	do {
		r = stash_md_commit(sc, true);
	} while (r == -EAGAIN);
}

/*
 * ---- The commit work's life cycle (from writeback's) ----
 */

void stash_md_init_work(struct stash_cache *sc)
{
	spin_lock_init(&sc->md.timer_lock);
	INIT_WORK(&sc->md.commit_work, commit_work_fn);
	INIT_DELAYED_WORK(&sc->md.commit_timer, commit_timer_fn);
}

int stash_md_create_queue(struct stash_cache *sc)
{
	sc->md.commit_wq = alloc_workqueue("dm-stash-commit",
					   WQ_MEM_RECLAIM | WQ_HIGHPRI, 1);
	return sc->md.commit_wq ? 0 : -ENOMEM;
}

void stash_md_cancel_work(struct stash_cache *sc)
{
	cancel_delayed_work_sync(&sc->md.commit_timer);
	if (sc->md.commit_wq)
		cancel_work_sync(&sc->md.commit_work);
}

void stash_md_destroy_queue(struct stash_cache *sc)
{
	if (sc->md.commit_wq) {
		destroy_workqueue(sc->md.commit_wq);
		sc->md.commit_wq = NULL;
	}
}
