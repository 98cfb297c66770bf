// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash checksums of cached blocks (the 'checksum' table option).
 *
 * Every cached block has a crc32c of its whole data in RAM (sc->csums,
 * 4 bytes per cache block).  It is set when the slot's data is written and
 * checked whenever the cache device's copy is read: on a read hit and
 * before writeback copies a block to the origin.  A mismatch on a clean
 * block is a cache read error (the read goes to the origin, the slot is
 * dropped); on a dirty block the read fails with EIO and the block stays
 * dirty, marked bad (sc->csum_bad) so that writeback skips it, until a
 * whole-block write or a discard replaces it.
 *
 * So that the checksum always describes what reached the cache device, the
 * data written to a slot never comes from a buffer the user may still
 * change: user writes are copied into a private buffer (a "job") and fills
 * read the origin into one; the checksum is taken of that copy.  A write
 * of part of a block reads the slot into the buffer first, checks it, then
 * merges the new sectors.  Reads that cover a whole block go straight to
 * the user's pages and are checked at completion; a mismatch there may be
 * a write that overlapped the read, so the read is done again with the
 * block held busy, into a job's buffer (as every read of part of a block
 * is), and only a mismatch then counts.
 *
 * A job's I/O runs on dm-io; a second stage (write after read) runs on the
 * cache's workqueue, and the last completion frees the job, so that a job
 * never waits for the worker (which may itself wait for a job's buffer).
 */
#include <linux/module.h>
#include <linux/bio.h>
#include <linux/mempool.h>
#include <linux/sched/mm.h>

#include "dm-stash.h"

/* Buffers each cache keeps in reserve, so that jobs always make progress. */
#define STASH_CSUM_MIN_JOBS	2

static struct kmem_cache *stash_cjob_cache;

/* ---- Checksums of memory and of bios ---- */

u32 stash_csum_buf(const void *buf, size_t len)
{
	return stash_crc32c(~0u, buf, len);
}

u32 stash_csum_bio(struct bio *bio, struct bvec_iter iter)
{
	struct bvec_iter it;
	struct bio_vec bv;
	u32 crc = ~0u;

	__bio_for_each_segment(bv, bio, it, iter) {
		void *p = bvec_kmap_local(&bv);

		crc = stash_crc32c(crc, p, bv.bv_len);
		kunmap_local(p);
	}
	return crc;
}

static void copy_from_bio(void *buf, struct bio *bio, struct bvec_iter iter)
{
	struct bvec_iter it;
	struct bio_vec bv;

	__bio_for_each_segment(bv, bio, it, iter) {
		memcpy_from_bvec(buf, &bv);
		buf += bv.bv_len;
	}
}

static void copy_to_bio(struct bio *bio, struct bvec_iter iter,
			const void *buf)
{
	struct bvec_iter it;
	struct bio_vec bv;

	__bio_for_each_segment(bv, bio, it, iter) {
		memcpy_to_bvec(&bv, buf);
		buf += bv.bv_len;
	}
}

/* ---- Bad blocks and RAM checksums (under sc->lock) ---- */

void stash_csum_set_locked(struct stash_cache *sc, cblock_t c, u32 crc)
{
	u32 i = from_cblock(c);

	sc->csums[i] = crc;
	if (__test_and_clear_bit(i, sc->csum_bad))
		sc->nr_csum_bad--;
	if (sc->csum_unknown) {
		/*
		 * A persistent cache records the new checksum at a commit; an
		 * open slot's when it closes (nothing on disk to change).
		 */
		__clear_bit(i, sc->csum_unknown);
		__set_bit(i, sc->csum_written);
		if (!test_bit(i, sc->csum_open))
			stash_map_touch(&sc->map, c);
	}
}

bool stash_csum_known(struct stash_cache *sc, cblock_t c)
{
	return !sc->csum_unknown || !test_bit(from_cblock(c), sc->csum_unknown);
}

/* A slot whose checksum was not known takes the one of its data. */
void stash_csum_adopt_locked(struct stash_cache *sc, cblock_t c, u32 crc)
{
	if (!stash_csum_known(sc, c))
		stash_csum_set_locked(sc, c, crc);
}

void stash_csum_mark_bad_locked(struct stash_cache *sc, cblock_t c)
{
	if (!__test_and_set_bit(from_cblock(c), sc->csum_bad))
		sc->nr_csum_bad++;
}

/*
 * ---- Persistent caches: open and closed slots ----
 *
 * A commit records a slot's checksum only when the slot is *closed*: no
 * write reached it since the previous commit and none is in flight, so the
 * data the commit's preflush makes durable is the data the checksum
 * describes.  Otherwise the slot is recorded *open* (no checksum), and it
 * must be open on disk before a write in place reaches a slot recorded
 * dirty: after a power cut such a slot keeps its data, whichever of the
 * writes made it there, and recovery takes its checksum from the data
 * (csum_unknown) rather than call a good block bad.  A write that makes a
 * clean slot dirty needs no wait: recovery drops clean mappings after a
 * power cut, and a clean shutdown records every checksum first.
 */

/* Under sc->lock: slot @i open or closed, counted. */
static void set_open(struct stash_cache *sc, u32 i, bool open)
{
	if (open == test_bit(i, sc->csum_open))
		return;
	__assign_bit(i, sc->csum_open, open);
	if (open)
		sc->nr_csum_open++;
	else
		sc->nr_csum_open--;
}

/* Loading entry @c: what the commit recorded. */
void stash_csum_load(struct stash_cache *sc, cblock_t c, bool open, u32 crc)
{
	u32 i = from_cblock(c);

	sc->csums[i] = crc;
	if (open) {
		set_open(sc, i, true);
		__set_bit(i, sc->csum_unknown);
	}
}

/*
 * Under sc->lock, before a write in place to valid slot @c: mark it open.
 * Returns true if the write must first wait for a commit that records it
 * open (the slot is recorded dirty and was recorded closed).
 */
bool stash_csum_open_locked(struct stash_cache *sc, cblock_t c)
{
	u32 i = from_cblock(c);

	if (!sc->csum_open || stash_cache_failed(sc))
		return false;
	__set_bit(i, sc->csum_written);
	/* Open, but not on disk yet: a write that came first waits for it. */
	if (test_bit(i, sc->csum_open))
		return test_bit(i, sc->csum_opening);
	set_open(sc, i, true);
	stash_map_touch(&sc->map, c);
	if (!stash_md_is_cdirty(&sc->md, i))
		return false;
	__set_bit(i, sc->csum_opening);
	return true;
}

/* Under sc->lock, after a commit wrote slot @c's entry (@entry). */
void stash_csum_committed_locked(struct stash_cache *sc, cblock_t c, u64 entry)
{
	if (sc->csum_opening && (entry & STASH_MD_OPEN))
		__clear_bit(from_cblock(c), sc->csum_opening);
}

/* Whether a write in place to @c would first have to wait (see above). */
bool stash_csum_must_open(struct stash_cache *sc, cblock_t c)
{
	u32 i = from_cblock(c);

	return sc->csum_open && !stash_cache_failed(sc) &&
	       (test_bit(i, sc->csum_opening) ||
		(!test_bit(i, sc->csum_open) &&
		 stash_md_is_cdirty(&sc->md, i)));
}

/*
 * Under sc->lock, encoding valid slot @c for a commit (@clean: a clean
 * shutdown's, with no I/O in flight): set the open bit in *@entry or give
 * the checksum in *@crc.
 */
void stash_csum_encode_locked(struct stash_cache *sc, cblock_t c, bool clean,
			      u64 *entry, u32 *crc)
{
	u32 i = from_cblock(c);
	bool busy = stash_map_is_busy(&sc->map, c);
	/*
	 * Written since the encoding before the last one: a write that
	 * waited for the last commit to record the slot open may not have
	 * run yet.  So a slot closes after a whole commit without writes.
	 */
	bool active = !clean && (test_bit(i, sc->csum_written) ||
				 test_bit(i, sc->csum_written_before) || busy);

	*crc = 0;
	__assign_bit(i, sc->csum_written_before, test_bit(i, sc->csum_written));
	__clear_bit(i, sc->csum_written);
	if (test_bit(i, sc->csum_unknown) ||
	    (test_bit(i, sc->csum_open) && active)) {
		set_open(sc, i, true);
		*entry |= STASH_MD_OPEN;
		return;
	}
	set_open(sc, i, false);
	*crc = sc->csums[i];
}

/* Under sc->lock, encoding slot @c with no valid data: nothing to keep. */
void stash_csum_forget_locked(struct stash_cache *sc, cblock_t c)
{
	u32 i = from_cblock(c);

	set_open(sc, i, false);
	__clear_bit(i, sc->csum_opening);
	__clear_bit(i, sc->csum_written);
	__clear_bit(i, sc->csum_written_before);
}

/*
 * Before a clean shutdown, and each commit tick while the volume is idle:
 * every open slot's page is to be written (a commit closes the slots no
 * write reached).  Open slots are not closed while writes go on: a block
 * rewritten again and again stays open and its writes never wait.  A slot
 * whose checksum is not known (open at a crash, not read since) cannot
 * close: its page is left alone.
 */
void stash_csum_touch_open(struct stash_cache *sc)
{
	unsigned long flags;
	u32 i;

	if (!sc->csum_open || !READ_ONCE(sc->nr_csum_open))
		return;
	spin_lock_irqsave(&sc->lock, flags);
	for_each_set_bit(i, sc->csum_open, sc->nr_cblocks) {
		if (test_bit(i, sc->csum_unknown))
			continue;
		stash_map_touch(&sc->map, to_cblock(i));
	}
	spin_unlock_irqrestore(&sc->lock, flags);
}

/* ---- Jobs ---- */

static void *cbuf_alloc(gfp_t gfp, void *pool_data)
{
	size_t size = (size_t)pool_data;
	unsigned int noio;
	void *p;

	/* kvmalloc() falls back on vmalloc only for GFP_KERNEL. */
	if (!gfpflags_allow_blocking(gfp))
		return kmalloc(size, gfp | __GFP_NOWARN);
	noio = memalloc_noio_save();
	p = kvmalloc(size, GFP_KERNEL);
	memalloc_noio_restore(noio);
	return p;
}

static void cbuf_free(void *p, void *pool_data)
{
	kvfree(p);
}

static struct stash_cjob *cjob_alloc(struct stash_cache *sc)
{
	struct stash_cjob *job = mempool_alloc(&sc->cjob_pool, GFP_NOIO);

	memset(job, 0, sizeof(*job));
	job->sc = sc;
	job->buf = mempool_alloc(&sc->cbuf_pool, GFP_NOIO);
	atomic_inc(&sc->nr_jobs);
	return job;
}

/* A job for @iter of @bio (within one block of slot @c). */
static struct stash_cjob *cjob_alloc_bio(struct stash_cache *sc,
					 struct bio *bio,
					 struct bvec_iter iter, cblock_t c,
					 stash_cjob_fn done)
{
	struct stash_cjob *job = cjob_alloc(sc);
	sector_t first = dm_target_offset(sc->ti, iter.bi_sector);

	job->bio = bio;
	job->iter = iter;
	job->cblock = c;
	job->done = done;
	job->offset = (first & (sc->block_sectors - 1)) << SECTOR_SHIFT;
	return job;
}

static void cjob_free(struct stash_cjob *job)
{
	struct stash_cache *sc = job->sc;

	mempool_free(job->buf, &sc->cbuf_pool);
	mempool_free(job, &sc->cjob_pool);
	stash_job_done(sc);
}

static unsigned int block_bytes(struct stash_cache *sc)
{
	return sc->block_sectors << SECTOR_SHIFT;
}

static sector_t slot_sector(struct stash_cache *sc, cblock_t c)
{
	return sc->data_start + (from_cblock(c) << sc->block_shift);
}

/* The last stage ended: hand the job to its owner, then free it. */
static void cjob_finish(struct stash_cjob *job)
{
	job->done(job);
	cjob_free(job);
}

/*
 * Start one dm-io transfer of the job's buffer (from byte @offset, @len
 * bytes) to or from @bdev at @sector; @fn runs when it ends.
 */
static void cjob_io(struct stash_cjob *job, blk_opf_t opf,
		    struct block_device *bdev, sector_t sector,
		    unsigned int offset, unsigned int len, io_notify_fn fn)
{
	struct dm_io_request req = {
		.bi_opf = opf,
		.notify.fn = fn,
		.notify.context = job,
		.client = job->sc->io_client,
	};
	struct dm_io_region region = {
		.bdev = bdev,
		.sector = sector + (offset >> SECTOR_SHIFT),
		.count = len >> SECTOR_SHIFT,
	};

	if (is_vmalloc_addr(job->buf)) {
		req.mem.type = DM_IO_VMA;
		req.mem.ptr.vma = job->buf + offset;
	} else {
		req.mem.type = DM_IO_KMEM;
		req.mem.ptr.addr = job->buf + offset;
	}
	if (stash_dm_io(&req, &region))
		fn(1, job);
}

/* The last I/O of a job ended. */
static void cjob_last_done(unsigned long error, void *context)
{
	struct stash_cjob *job = context;

	if (error)
		job->cache_error = true;
	cjob_finish(job);
}

static void cjob_queue(struct stash_cjob *job, work_func_t fn)
{
	INIT_WORK(&job->work, fn);
	queue_work(job->sc->wq, &job->work);
}

/* ---- Fills: origin block -> buffer -> slot ---- */

static void fill_write(struct work_struct *ws)
{
	struct stash_cjob *job = container_of(ws, struct stash_cjob, work);
	struct stash_cache *sc = job->sc;

	job->crc = stash_csum_buf(job->buf, block_bytes(sc));
	cjob_io(job, REQ_OP_WRITE, sc->cache_dev->bdev,
		slot_sector(sc, job->cblock), 0, block_bytes(sc),
		cjob_last_done);
}

static void fill_read_done(unsigned long error, void *context)
{
	struct stash_cjob *job = context;

	if (error) {
		job->origin_error = true;
		cjob_finish(job);
		return;
	}
	cjob_queue(job, fill_write);
}

void stash_csum_fill(struct stash_cache *sc, oblock_t ob, cblock_t c,
		     stash_cjob_fn done)
{
	struct stash_cjob *job = cjob_alloc(sc);

	job->cblock = c;
	job->done = done;
	cjob_io(job, REQ_OP_READ, sc->origin_dev->bdev,
		from_oblock(ob) << sc->block_shift, 0, block_bytes(sc),
		fill_read_done);
}

/* ---- Writes: user data -> buffer (merged with the slot) -> slot ---- */

static void write_merge(struct work_struct *ws)
{
	struct stash_cjob *job = container_of(ws, struct stash_cjob, work);
	struct stash_cache *sc = job->sc;

	/*
	 * The slot is busy with this write: its checksum cannot change.  One
	 * not known (an open slot after a power cut) is the data's.
	 */
	if (stash_csum_known(sc, job->cblock) &&
	    stash_csum_buf(job->buf, block_bytes(sc)) !=
	    READ_ONCE(sc->csums[from_cblock(job->cblock)])) {
		job->mismatch = true;
		cjob_finish(job);
		return;
	}
	copy_from_bio(job->buf + job->offset, job->bio, job->iter);
	job->crc = stash_csum_buf(job->buf, block_bytes(sc));
	cjob_io(job, REQ_OP_WRITE, sc->cache_dev->bdev,
		slot_sector(sc, job->cblock), job->offset, job->iter.bi_size,
		cjob_last_done);
}

static void write_read_done(unsigned long error, void *context)
{
	struct stash_cjob *job = context;

	if (error) {
		job->cache_error = true;
		cjob_finish(job);
		return;
	}
	cjob_queue(job, write_merge);
}

void stash_csum_write(struct stash_cache *sc, struct bio *bio,
		      struct bvec_iter iter, cblock_t c, bool slot_valid,
		      stash_cjob_fn done)
{
	struct stash_cjob *job = cjob_alloc_bio(sc, bio, iter, c, done);

	if (!job->offset && iter.bi_size == block_bytes(sc)) {
		copy_from_bio(job->buf, bio, iter);
		job->crc = stash_csum_buf(job->buf, block_bytes(sc));
		cjob_io(job, REQ_OP_WRITE, sc->cache_dev->bdev,
			slot_sector(sc, c), 0, block_bytes(sc), cjob_last_done);
		return;
	}
	/* Only a slot with valid data takes part of a block. */
	if (WARN_ON_ONCE(!slot_valid)) {
		job->cache_error = true;
		cjob_finish(job);
		return;
	}
	cjob_io(job, REQ_OP_READ, sc->cache_dev->bdev, slot_sector(sc, c), 0,
		block_bytes(sc), write_read_done);
}

/* ---- Checked reads: slot -> buffer, checked -> user's pages ---- */

static void read_done(unsigned long error, void *context)
{
	struct stash_cjob *job = context;
	struct stash_cache *sc = job->sc;

	if (error) {
		job->cache_error = true;
	} else {
		job->crc = stash_csum_buf(job->buf, block_bytes(sc));
		/* Not known: the data's checksum is taken (adopted). */
		job->adopt = !stash_csum_known(sc, job->cblock);
		if (!job->adopt &&
		    job->crc != READ_ONCE(sc->csums[from_cblock(job->cblock)]))
			job->mismatch = true;
		else
			copy_to_bio(job->bio, job->iter, job->buf + job->offset);
	}
	cjob_finish(job);
}

void stash_csum_read(struct stash_cache *sc, struct bio *bio, cblock_t c,
		     stash_cjob_fn done)
{
	struct stash_cjob *job = cjob_alloc_bio(sc, bio, bio->bi_iter, c, done);

	cjob_io(job, REQ_OP_READ, sc->cache_dev->bdev, slot_sector(sc, c), 0,
		block_bytes(sc), read_done);
}

/* ---- Writeback ---- */

/* Under sc->lock: does slot @c's data @buf match (or adopt) its checksum? */
bool stash_csum_check_block_locked(struct stash_cache *sc, u32 c,
				   const void *buf)
{
	u32 crc = stash_csum_buf(buf, block_bytes(sc));

	if (!stash_csum_known(sc, to_cblock(c))) {
		stash_csum_set_locked(sc, to_cblock(c), crc);
		return true;
	}
	return crc == sc->csums[c];
}

/* ---- Setup ---- */

static void stash_csum_free_tables(struct stash_cache *sc)
{
	stash_free_array(sc->csum_opening);
	stash_free_array(sc->csum_written_before);
	stash_free_array(sc->csum_written);
	stash_free_array(sc->csum_unknown);
	stash_free_array(sc->csum_open);
	stash_free_array(sc->csum_bad);
	stash_free_array(sc->csums);
	sc->csum_opening = NULL;
	sc->csum_written_before = NULL;
	sc->csum_written = NULL;
	sc->csum_unknown = NULL;
	sc->csum_open = NULL;
	sc->csum_bad = NULL;
	sc->csums = NULL;
}

/*
 * A bit per cache block (8 MiB at 64M blocks), allocated and freed as the
 * other per-block tables are (stash_zalloc_array(), stash_free_array():
 * vmalloc when large, freed after the remove).
 */
static unsigned long *csum_bitmap(struct stash_cache *sc)
{
	return stash_zalloc_array(BITS_TO_LONGS(sc->nr_cblocks),
				  sizeof(unsigned long));
}

int stash_csum_create(struct stash_cache *sc)
{
	int r;

	if (!sc->csum)
		return 0;
	sc->csums = stash_zalloc_array(sc->nr_cblocks, sizeof(u32));
	sc->csum_bad = csum_bitmap(sc);
	if (!sc->csums || !sc->csum_bad)
		goto bad;
	if (!sc->is_volatile) {
		sc->csum_open = csum_bitmap(sc);
		sc->csum_unknown = csum_bitmap(sc);
		sc->csum_written = csum_bitmap(sc);
		sc->csum_written_before = csum_bitmap(sc);
		sc->csum_opening = csum_bitmap(sc);
		if (!sc->csum_open || !sc->csum_unknown || !sc->csum_written ||
		    !sc->csum_written_before || !sc->csum_opening)
			goto bad;
	}
	r = mempool_init_slab_pool(&sc->cjob_pool, STASH_CSUM_MIN_JOBS,
				   stash_cjob_cache);
	if (r)
		goto bad;
	r = mempool_init(&sc->cbuf_pool, STASH_CSUM_MIN_JOBS, cbuf_alloc,
			 cbuf_free, (void *)(size_t)block_bytes(sc));
	if (r) {
		mempool_exit(&sc->cjob_pool);
		goto bad;
	}
	return 0;
bad:
	stash_csum_free_tables(sc);
	return -ENOMEM;
}

void stash_csum_destroy(struct stash_cache *sc)
{
	if (!sc->csums)
		return;
	mempool_exit(&sc->cbuf_pool);
	mempool_exit(&sc->cjob_pool);
	stash_csum_free_tables(sc);
}

int stash_csum_init(void)
{
	stash_cjob_cache = KMEM_CACHE(stash_cjob, 0);
	return stash_cjob_cache ? 0 : -ENOMEM;
}

void stash_csum_exit(void)
{
	kmem_cache_destroy(stash_cjob_cache);
}
