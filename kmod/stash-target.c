// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash: a device-mapper target that caches a slow origin device on a
 * fast cache device.
 *
 * Glossary
 * --------
 * origin	the slow device; it holds the truth for every clean block.
 * cache device	the fast device that holds copies of origin blocks.
 * block	the unit of caching: block_size sectors (4 KiB by default).
 * oblock	a block number on the origin (oblock_t).
 * cblock	a slot number on the cache device (cblock_t).
 * hit / miss	the block is / is not in the cache when an I/O arrives.
 * promotion	copying a block into the cache after a read miss (a fill).
 * eviction	reusing the slot of a clean, idle block for another block.
 * invalidation	forgetting a cached copy so that no read can find it.
 * busy		a slot with an exclusive operation in flight (fill, write).
 * pin		a read in flight from a slot; pinned slots are not evicted.
 * wip		writes in progress to the origin, counted per hash slot.
 * dirty	a block whose cache copy is newer than the origin's.
 * writeback	copying dirty blocks to the origin; a pass does it from a
 *		snapshot of the dirty bitmap; a drain pass cleans all of it.
 *
 * Modes
 * -----
 * writearound: writes go to the origin only; a cached copy is invalidated
 * before the write is issued.  The cache holds only what reads promoted.
 * (A "stale read until a TTL expires" variant is deliberately not offered:
 * a block device under a filesystem must never return data older than an
 * acknowledged write.)
 *
 * writethrough: writes go to the origin and, on a hit, to the cache too;
 * they complete when both are done.  A failed cache write invalidates the
 * block and the user still gets success; an origin failure is returned and
 * invalidates the block.  The cache is never dirty.
 *
 * writeback: writes go to the cache only and mark the block dirty in the
 * dirty bitmap; the writeback thread (stash-writeback.c) copies dirty blocks
 * to the origin in origin order.
 *
 * Persistence: a persistent cache device holds a superblock, the mapping
 * table and the dirty bits (stash-metadata.c, docs/format.md); a
 * REQ_PREFLUSH or REQ_FUA write completes after the metadata commit that
 * covers it, and dirty blocks survive remove, reload and power loss.  A
 * volatile cache (RAM) keeps nothing: a REQ_PREFLUSH drains all dirty
 * blocks to the origin before it completes, a REQ_FUA write goes through
 * to the origin, and suspend drains.
 *
 * Mode switches: into writeback at once; out of writeback, writes follow
 * the new mode at once (dirty blocks are updated on both devices and stay
 * dirty) while the writeback thread drains; status shows state=draining
 * until the last dirty block is clean.
 *
 * Lock ordering
 * -------------
 * sc->md.commit_lock (a mutex, one metadata commit at a time) is taken before
 * sc->lock and never inside it.
 *
 * There is one spinlock per cache, sc->lock.  It guards the mapping table,
 * the policy state, the in-flight-write table, the dirty bitmaps, the
 * writeback pass state, the bio lists and the counters.  It is taken with
 * irqsave from any context (map, end_io, kcopyd and dm-io callbacks, the
 * workers) and nothing is taken inside it but a wait queue's own lock (the
 * wake_up() of writeback's in stash_wb_block_released(), from
 * wake_deferred_locked()): no other lock, no allocation, no I/O submission.
 *
 * Read hits take and drop their pins (stash_entry.pins) without it, with
 * bounded atomic increments and decrements (stash_map_pin_lockless(),
 * stash_map_unpin()), and take the lock only when a decision waits for a
 * pin; stash-map.c gives the barrier argument.
 *
 * sc->registry is guarded by the control device's registry mutex, which is
 * taken before sc->md.commit_lock and sc->lock.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/blkdev.h>
#include <linux/llist.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

#include "dm-stash.h"
#include "linux/dm-stash.h"

/*
 * ---- Constructor ----
 */

/* The optional arguments, as parsed. */
struct stash_args {
	enum stash_mode mode;
	sector_t block_sectors;
	struct stash_tunables tun;
	bool is_volatile;
	bool format;
	bool discard_passdown;
	bool csum;
};

/* The tunables, from their rows (linux/dm-stash-tunables.h). */
#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) \
	[STASH_TUN_##name] = { #name, min, max, offsetof(struct stash_tunables, field) },
const struct stash_tunable_desc stash_tunable_descs[STASH_NR_TUNABLES] = {
#include <linux/dm-stash-tunables.h>
};

#undef STASH_TUNABLE

#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) .field = def,
const struct stash_tunables stash_tunable_defaults = {
#include <linux/dm-stash-tunables.h>
};

#undef STASH_TUNABLE

/* parse_options() gives each option a bit of an unsigned int. */
static_assert(5 + STASH_NR_TUNABLES <= 32);

const struct stash_tunable_desc *stash_find_tunable(const char *name)
{
	unsigned int i;

	for (i = 0; i < STASH_NR_TUNABLES; i++)
		if (!strcasecmp(name, stash_tunable_descs[i].name))
			return &stash_tunable_descs[i];
	return NULL;
}

static u32 *tunable_field(struct stash_tunables *tun,
			  const struct stash_tunable_desc *d)
{
	return (u32 *)((char *)tun + d->offset);
}

/*
 * A constructor's error outlives it (device-mapper prints it after the
 * constructor returns) and constructors run concurrently: the errors are
 * fixed strings.  Those naming a tunable's range are built once, at
 * module load.
 */
static char tunable_range_error[STASH_NR_TUNABLES][64];

static void init_tunable_errors(void)
{
	unsigned int i;

	/* writeback_inflight's range ends at the run slots there are. */
	BUILD_BUG_ON(stash_tunable_descs[STASH_TUN_writeback_inflight].max !=
		     STASH_WB_SLOTS);
	for (i = 0; i < STASH_NR_TUNABLES; i++)
		snprintf(tunable_range_error[i], sizeof(tunable_range_error[i]),
			 "%s must be a number in %u..%u",
			 stash_tunable_descs[i].name, stash_tunable_descs[i].min,
			 stash_tunable_descs[i].max);
}

static int check_watermarks(const struct stash_tunables *t, char **err)
{
	if (t->low_wm < t->high_wm)
		return 0;
	*err = "low_watermark must be below high_watermark";
	return -EINVAL;
}

/*
 * Parse @value for tunable @d into @tun.  The error names the range.
 * Returns 0 or -EINVAL; @tun is unchanged on error.
 */
static int parse_tunable(const struct stash_tunable_desc *d, const char *value,
			 struct stash_tunables *tun, bool check_pair, char **err)
{
	struct stash_tunables t = *tun;
	unsigned int v;

	if (!value || kstrtouint(value, 10, &v) || v < d->min || v > d->max) {
		*err = tunable_range_error[d - stash_tunable_descs];
		return -EINVAL;
	}
	/* Below 100%, any foreground I/O would stop writeback. */
	if (d == &stash_tunable_descs[STASH_TUN_writeback_latency] &&
	    v && v < STASH_WB_LATENCY_MIN_ON) {
		*err = "writeback_latency must be 0 (off) or a percent in 100..10000";
		return -EINVAL;
	}
	*tunable_field(&t, d) = v;
	if (check_pair && check_watermarks(&t, err))
		return -EINVAL;
	*tun = t;
	return 0;
}

static int parse_mode(const char *s, enum stash_mode *mode, char **error)
{
	if (!strcmp(s, "writearound")) {
		*mode = STASH_MODE_WRITEAROUND;
	} else if (!strcmp(s, "writethrough")) {
		*mode = STASH_MODE_WRITETHROUGH;
	} else if (!strcmp(s, "writeback")) {
		*mode = STASH_MODE_WRITEBACK;
	} else {
		*error = "Unknown mode (writearound, writethrough or writeback)";
		return -EINVAL;
	}
	return 0;
}

const char *stash_mode_name(enum stash_mode mode)
{
	switch (mode) {
	case STASH_MODE_WRITEAROUND:
		return "writearound";
	case STASH_MODE_WRITETHROUGH:
		return "writethrough";
	case STASH_MODE_WRITEBACK:
		return "writeback";
	}
	return "unknown";
}

static int parse_u32_arg(struct dm_arg_set *as, u32 min, u32 max, u32 *value,
			 char **error, char *msg)
{
	const char *s = dm_shift_arg(as);
	unsigned int v;

	if (!s || kstrtouint(s, 10, &v) || v < min || v > max) {
		*error = msg;
		return -EINVAL;
	}
	*value = v;
	return 0;
}

/*
 * Optional arguments: [<#opt args> <opt args>...]
 *   block_size <sectors>	power of two, 8..2048 (4 KiB..1 MiB); default 8
 *   volatile			the cache device keeps no metadata (RAM)
 *   format			a cache device with no dm-stash superblock may
 *				be formatted even if it is not blank
 *   no_discard_passdown	discards invalidate but are not sent on
 *   checksum			keep a crc32c of every cached block and check
 *				it on each cache read (stash-csum.c); a
 *				persistent cache keeps them in its metadata
 *				(format version 2)
 *   <tunable> <value>		any tunable: linux/dm-stash-tunables.h has
 *				their names, ranges, defaults, units and
 *				meaning; parse_tunable() the rules beyond
 *				the ranges
 * Each may be given once.
 */
static int parse_options(struct dm_arg_set *as, struct stash_args *args,
			 char **error)
{
	static const struct dm_arg nr_opts = {
		0, 6 + 2 * STASH_NR_TUNABLES,
		"Invalid number of optional arguments"
	};
	const struct stash_tunable_desc *d;
	unsigned int argc, seen = 0, bit;
	const char *name;
	u32 v;
	int r;

	if (!as->argc)
		return 0;	/* no optional arguments at all */
	r = dm_read_arg_group(&nr_opts, as, &argc, error);
	if (r)
		return r;

	while (argc--) {
		name = dm_shift_arg(as);
		d = stash_find_tunable(name);
		if (d) {
			bit = 16 << (d - stash_tunable_descs);
			if (!argc--) {
				*error = "A tunable needs a value";
				return -EINVAL;
			}
			r = parse_tunable(d, dm_shift_arg(as), &args->tun,
					  false, error);
			if (r)
				return r;
		} else if (!strcasecmp(name, "block_size")) {
			bit = 1;
			if (!argc--) {
				*error = "block_size needs a value";
				return -EINVAL;
			}
			r = parse_u32_arg(as, STASH_MIN_BLOCK_SECTORS,
					  STASH_MAX_BLOCK_SECTORS, &v, error,
					  "block_size must be a power of two, 8..2048 sectors");
			if (r)
				return r;
			if (!is_power_of_2(v)) {
				*error = "block_size must be a power of two, 8..2048 sectors";
				return -EINVAL;
			}
			args->block_sectors = v;
		} else if (!strcasecmp(name, "volatile")) {
			bit = 4;
			args->is_volatile = true;
		} else if (!strcasecmp(name, "no_discard_passdown")) {
			bit = 8;
			args->discard_passdown = false;
		} else if (!strcasecmp(name, "format")) {
			bit = 2;
			args->format = true;
		} else if (!strcasecmp(name, "checksum")) {
			bit = 16 << STASH_NR_TUNABLES;
			args->csum = true;
		} else {
			*error = "Unknown optional argument";
			return -EINVAL;
		}
		if (seen & bit) {
			*error = "Optional argument given twice";
			return -EINVAL;
		}
		seen |= bit;
	}
	/* The watermarks are checked together, whatever their order. */
	return check_watermarks(&args->tun, error);
}

/* Keep the optional arguments as given, so TABLE reproduces them exactly. */
static char *join_args(unsigned int argc, char **argv)
{
	size_t len = 1;
	unsigned int i;
	char *s;

	for (i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	s = kzalloc(len, GFP_KERNEL);
	if (!s)
		return NULL;
	for (i = 0; i < argc; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, argv[i]);
	}
	return s;
}

/*
 * What a persistent cache records about its volume (struct stash_sb_ident)
 * so that "stashctl assemble" can recreate the table from the cache device
 * alone: the origin as the table names it, its size, and the optional
 * arguments that differ from the defaults (neither "format" nor
 * "volatile"; the mode is recorded at each commit).  The name is filled
 * in by the metadata code.  A path or option string that does not fit is
 * not recorded, and said so.
 */
static int record_identity(struct stash_cache *sc, const struct stash_args *args,
			   const char *origin)
{
	const struct stash_tunable_desc *d;
	struct stash_sb_ident *id;
	size_t n = 0, len;
	u32 v;

	id = kzalloc(sizeof(*id), GFP_KERNEL);
	if (!id)
		return -ENOMEM;
	id->origin_dev_sectors = bdev_nr_sectors(sc->origin_dev->bdev);
	if (stash_sb_path_ok(origin))
		strscpy(id->origin_path, origin, sizeof(id->origin_path));
	else
		stash_warn(sc, "origin path not recordable: 'stashctl assemble' cannot find the origin");

	len = sizeof(id->options);
	if (args->block_sectors != STASH_DEFAULT_BLOCK_SECTORS)
		n += scnprintf(id->options + n, len - n, " block_size %llu",
			       (unsigned long long)args->block_sectors);
	if (!args->discard_passdown)
		n += scnprintf(id->options + n, len - n, " no_discard_passdown");
	if (args->csum)
		n += scnprintf(id->options + n, len - n, " checksum");
	for (d = stash_tunable_descs; d < stash_tunable_descs + STASH_NR_TUNABLES; d++) {
		v = stash_tunable_get(&args->tun, d);
		if (v != stash_tunable_get(&stash_tunable_defaults, d))
			n += scnprintf(id->options + n, len - n, " %s %u",
				       d->name, v);
	}
	/* Every option fits (at most about 200 characters); drop the space. */
	if (n)
		memmove(id->options, id->options + 1, n);
	stash_md_set_ident(&sc->md, id);
	return 0;
}

static int parse_devices(struct dm_target *ti, struct stash_cache *sc,
			 const char *origin, const char *cache)
{
	int r;

	/*
	 * The table's mode is an fmode_t on 6.1 and a blk_mode_t since 6.5:
	 * passed on as it comes, like dm-flakey does.
	 */
	r = dm_get_device(ti, origin, dm_table_get_mode(ti->table),
			  &sc->origin_dev);
	if (r) {
		ti->error = "Cannot open origin device";
		return r;
	}
	r = dm_get_device(ti, cache, dm_table_get_mode(ti->table),
			  &sc->cache_dev);
	if (r) {
		ti->error = "Cannot open cache device";
		goto bad_cache;
	}
	if (sc->cache_dev->bdev == sc->origin_dev->bdev) {
		ti->error = "Origin and cache must be different devices";
		r = -EINVAL;
		goto bad_same;
	}
	if (bdev_nr_sectors(sc->origin_dev->bdev) < ti->len) {
		ti->error = "Origin device is smaller than the target";
		r = -EINVAL;
		goto bad_same;
	}
	return 0;

bad_same:
	dm_put_device(ti, sc->cache_dev);
bad_cache:
	dm_put_device(ti, sc->origin_dev);
	return r;
}

static int parse_geometry(struct dm_target *ti, struct stash_cache *sc,
			  struct stash_args *args)
{
	sector_t cache_sectors = bdev_nr_sectors(sc->cache_dev->bdev);
	u64 nr_cblocks;
	int r;

	sc->block_sectors = args->block_sectors;
	sc->block_shift = __ffs(args->block_sectors);
	sc->nr_oblocks = ti->len >> sc->block_shift;
	if (sc->nr_oblocks >= STASH_MAX_OBLOCKS) {
		ti->error = "Origin too large for this block size";
		return -EINVAL;
	}
	/*
	 * Reads only: stash_stranded_drop() and stash_md_prepare() act on
	 * what these decide.
	 */
	r = stash_stranded_check(sc, args->format);
	if (r)
		return r;
	if (!sc->is_volatile) {
		r = stash_md_open(sc, args->format, args->block_sectors);
		if (r)
			return r;
	} else {
		r = stash_md_check_volatile(sc, args->format);
		if (r)
			return r;
		sc->data_start = 0;
		nr_cblocks = cache_sectors >> sc->block_shift;
		if (nr_cblocks < STASH_MIN_CBLOCKS) {
			ti->error = "Cache device too small (needs at least 16 blocks)";
			return -EINVAL;
		}
		if (nr_cblocks > STASH_MAX_CBLOCKS) {
			ti->error = "Cache device too large for this block size";
			return -EINVAL;
		}
		sc->nr_cblocks = nr_cblocks;
	}
	return 0;
}

static int create_runtime(struct dm_target *ti, struct stash_cache *sc,
			  struct stash_args *args)
{
	int r;

	spin_lock_init(&sc->lock);
	bio_list_init(&sc->deferred);
	bio_list_init(&sc->wt_parked);
	bio_list_init(&sc->wt_next);
	bio_list_init(&sc->fills);
	bio_list_init(&sc->retries);
	bio_list_init(&sc->discards);
	atomic_set(&sc->nr_jobs, 0);
	init_waitqueue_head(&sc->jobs_wait);
	INIT_WORK(&sc->worker, stash_do_work);
	stash_seq_init(&sc->seq, (u64)args->tun.seq_cutoff_kb * 2);
	sc->tun = args->tun;
	sc->last_io = jiffies;
	/* Writes before this table (another one, a reload) are not known. */
	atomic64_set(&sc->origin_writes_done, 1);

	if (stash_map_init(&sc->map, sc->nr_cblocks)) {
		ti->error = "Cannot allocate the mapping table";
		return -ENOMEM;
	}
	/* The cache's, not writeback's: see struct stash_cache. */
	if (stash_bitmap_init(&sc->dirty, sc->nr_cblocks)) {
		ti->error = "Cannot allocate the dirty bitmap";
		r = -ENOMEM;
		goto bad_dirty;
	}
	stash_map_attach_dirty(&sc->map, &sc->dirty);
	if (stash_filter_init(&sc->filter, sc->nr_cblocks)) {
		ti->error = "Cannot allocate the promotion filter";
		r = -ENOMEM;
		goto bad_filter;
	}
	sc->pcpu = alloc_percpu(struct stash_pcpu);
	if (!sc->pcpu) {
		ti->error = "Cannot allocate the counters";
		r = -ENOMEM;
		goto bad_pcpu;
	}
	r = bioset_init(&sc->bs, BIO_POOL_SIZE, 0, 0);
	if (r) {
		ti->error = "Cannot allocate the bio set";
		goto bad_bioset;
	}
	sc->kcopyd = dm_kcopyd_client_create(NULL);
	if (IS_ERR(sc->kcopyd)) {
		ti->error = "Cannot create the copy client";
		r = PTR_ERR(sc->kcopyd);
		goto bad_kcopyd;
	}
	sc->wq = alloc_workqueue("dm-stash", WQ_MEM_RECLAIM, 0);
	if (!sc->wq) {
		ti->error = "Cannot create the workqueue";
		r = -ENOMEM;
		goto bad_wq;
	}
	r = stash_wb_create(sc);
	if (r) {
		ti->error = "Cannot allocate the writeback state";
		goto bad_wb;
	}
	r = stash_csum_create(sc);
	if (r) {
		ti->error = "Cannot allocate the checksums";
		goto bad_csum;
	}
	if (!sc->is_volatile) {
		r = stash_md_create(sc);
		if (r) {
			ti->error = "Cannot allocate the metadata state";
			goto bad_md;
		}
	}
	return 0;

bad_md:
	stash_csum_destroy(sc);
bad_csum:
	stash_wb_destroy(sc);
bad_wb:
	destroy_workqueue(sc->wq);
bad_wq:
	dm_kcopyd_client_destroy(sc->kcopyd);
bad_kcopyd:
	bioset_exit(&sc->bs);
bad_bioset:
	free_percpu(sc->pcpu);
bad_pcpu:
	stash_filter_exit(&sc->filter);
bad_filter:
	stash_map_attach_dirty(&sc->map, NULL);
	stash_bitmap_exit(&sc->dirty);
bad_dirty:
	stash_map_exit(&sc->map);
	return r;
}

/*
 * ---- Deferred freeing of the tables ----
 *
 * The destructor's large tables (the map, the bitmaps, the filter, the
 * checksums: about 1 GiB at 64M blocks) are freed by a work item a moment
 * after the remove returned, so that neither the remove nor what follows
 * it at once (udev's events for the removed device) waits for 1 GiB of
 * pages to go back to the allocator.  The node that chains a table sits
 * in its own first bytes, as vfree_atomic() does it (which modules cannot
 * call).  A constructor runs the frees first, whose memory its tables may
 * need, and so does the module's exit.
 */
#define STASH_FREE_DELAY	(HZ / 2)

static LLIST_HEAD(stash_free_list);

static void stash_free_fn(struct work_struct *ws)
{
	struct llist_node *n, *next;

	llist_for_each_safe(n, next, llist_del_all(&stash_free_list)) {
		vfree(n);
		cond_resched();
	}
}

static DECLARE_DELAYED_WORK(stash_free_work, stash_free_fn);

void stash_vfree_deferred(void *p)
{
	if (!p)
		return;
	if (llist_add(p, &stash_free_list))
		queue_delayed_work(system_unbound_wq, &stash_free_work,
				   STASH_FREE_DELAY);
}

static void stash_wait_frees(void)
{
	flush_delayed_work(&stash_free_work);
}

static void destroy_runtime(struct stash_cache *sc)
{
	stash_csum_destroy(sc);
	stash_wb_destroy(sc);
	destroy_workqueue(sc->wq);
	dm_kcopyd_client_destroy(sc->kcopyd);
	bioset_exit(&sc->bs);
	free_percpu(sc->pcpu);
	stash_filter_exit(&sc->filter);
	stash_map_attach_dirty(&sc->map, NULL);
	stash_bitmap_exit(&sc->dirty);
	stash_map_exit(&sc->map);
}

/*
 * Table line:
 *   <start> <len> stash <origin> <cache> <mode> [<#opt args> <opt args>...]
 * mode: writearound | writethrough | writeback
 * Optional arguments: see parse_options().
 */
static int stash_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct stash_args args = {
		.block_sectors = STASH_DEFAULT_BLOCK_SECTORS,
		.tun = stash_tunable_defaults,
		.discard_passdown = true,
	};
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct stash_cache *sc;
	bool shared;
	int r;

	if (argc < 3) {
		ti->error = "Expected <origin> <cache> <mode> [<#opt args> <opt args>...]";
		return -EINVAL;
	}
	r = parse_mode(argv[2], &args.mode, &ti->error);
	if (r)
		return r;
	dm_consume_args(&as, 3);
	r = parse_options(&as, &args, &ti->error);
	if (r)
		return r;
	if (as.argc) {
		ti->error = "Too many arguments";
		return -EINVAL;
	}

	stash_wait_frees();
	sc = kzalloc(sizeof(*sc), GFP_KERNEL);
	if (!sc) {
		ti->error = "Cannot allocate the cache context";
		return -ENOMEM;
	}
	sc->ti = ti;
	INIT_LIST_HEAD(&sc->registry);
	INIT_LIST_HEAD(&sc->claim);
	sc->mode = args.mode;
	sc->is_volatile = args.is_volatile;
	sc->format = args.format;
	sc->discard_passdown = args.discard_passdown;
	sc->csum = args.csum;
	sc->table_opts = join_args(argc - 3, argv + 3);
	if (!sc->table_opts) {
		ti->error = "Cannot allocate the cache context";
		r = -ENOMEM;
		goto bad_opts;
	}

	r = parse_devices(ti, sc, argv[0], argv[1]);
	if (r)
		goto bad_devices;
	r = stash_claim_devices(sc, &shared);
	if (r)
		goto bad_claim;
	sc->io_client = dm_io_client_create();
	if (IS_ERR(sc->io_client)) {
		ti->error = "Cannot create the I/O client";
		r = PTR_ERR(sc->io_client);
		goto bad_io_client;
	}
	if (!sc->is_volatile) {
		r = record_identity(sc, &args, argv[0]);
		if (r) {
			ti->error = "Cannot allocate the cache context";
			goto bad_geometry;
		}
	}
	r = parse_geometry(ti, sc, &args);
	if (r)
		goto bad_geometry;
	r = create_runtime(ti, sc, &args);
	if (r)
		goto bad_geometry;
	/*
	 * Last, once nothing else can fail for want of memory: a refused
	 * table leaves the cache device, and what is stranded on it, as
	 * they were.  With 'format', stranded blocks are dropped, then the
	 * device is formatted (or a volatile table erases the superblocks).
	 */
	if (args.format)
		stash_stranded_drop(sc);
	r = stash_md_prepare(sc, !shared);
	if (r)
		goto bad_prepare;

	/*
	 * No max_io_len: the target cuts bios at block boundaries itself, so
	 * that reads it does not cache reach the origin whole.
	 */
	ti->num_flush_bios = 2;
	ti->flush_supported = true;
	ti->num_discard_bios = 1;
	ti->discards_supported = true;
	ti->per_io_data_size = stash_per_bio_data_size();
	ti->private = sc;
	r = stash_registry_add(sc);
	if (r) {
		ti->error = "Cannot register the cache";
		goto bad_registry;
	}
	return 0;

bad_registry:
bad_prepare:
	destroy_runtime(sc);
bad_geometry:
	stash_md_destroy(sc);
	dm_io_client_destroy(sc->io_client);
bad_io_client:
	stash_release_devices(sc);
bad_claim:
	dm_put_device(ti, sc->cache_dev);
	dm_put_device(ti, sc->origin_dev);
bad_devices:
	kfree(sc->table_opts);
bad_opts:
	kfree(sc);
	return r;
}

static void stash_dtr(struct dm_target *ti)
{
	struct stash_cache *sc = ti->private;

	stash_registry_remove(sc);
	if (!stash_stranded_forget(sc) && sc->is_volatile && sc->dirty.nr_set)
		stash_err(sc, "%u dirty blocks could not be written back and are lost",
			  sc->dirty.nr_set);
	stash_wait_for_jobs(sc);
	destroy_runtime(sc);
	stash_md_destroy(sc);
	dm_io_client_destroy(sc->io_client);
	stash_release_devices(sc);
	dm_put_device(ti, sc->cache_dev);
	dm_put_device(ti, sc->origin_dev);
	kfree(sc->table_opts);
	kfree(sc);
}

/*
 * ---- Status and messages ----
 */

/*
 * Kernel RAM per cache block: the map (entries, buckets, the clock's
 * reference bits), promotion filter, the two dirty bitmaps (live and pass
 * snapshot) and, when persistent, the
 * committed-dirty and written-back-but-unflushed bitmaps, and with
 * checksums a crc32c and a bad-block bit per block.  Fixed per-cache
 * buffers (writeback runs, one commit's pages) do not grow with the cache
 * and are not counted.
 */
static u32 stash_ram_per_cblock(struct stash_cache *sc)
{
	u64 bitmap = BITS_TO_LONGS(sc->nr_cblocks) * sizeof(long);
	u64 bytes = stash_map_bytes(&sc->map) +
		    2 * BITS_TO_LONGS(1ull << sc->filter.bits) * sizeof(long) +
		    (sc->is_volatile ? 2 : 4) * bitmap;

	/*
	 * Checksums; a persistent cache adds open, opening, written (2) and
	 * unknown bits.
	 */
	if (sc->csum)
		bytes += (u64)sc->nr_cblocks * sizeof(u32) +
			 (sc->is_volatile ? 1 : 6) * bitmap;

	return DIV_ROUND_UP_ULL(bytes, sc->nr_cblocks);
}

static const char *stash_metadata_state(struct stash_cache *sc)
{
	if (sc->is_volatile)
		return "volatile";
	return stash_md_failed(&sc->md) ? "failed" : "persistent";
}

/* The counters: struct stash_stats plus the per-CPU ones. */
static void read_stats(struct stash_cache *sc, struct stash_stats *st)
{
	int cpu;

	*st = sc->stats;
	for_each_possible_cpu(cpu)
		st->read_hits += READ_ONCE(per_cpu_ptr(sc->pcpu, cpu)->read_hits);
}

void stash_get_info(struct stash_cache *sc, struct stash_info *info)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	info->mode = sc->mode;
	info->state = stash_wb_state(sc);
	info->block_sectors = sc->block_sectors;
	info->nr_cblocks = sc->nr_cblocks;
	info->used_cblocks = stash_map_nr_allocated(&sc->map);
	info->dirty = sc->dirty.nr_set;
	info->writeback = stash_wb_nr_writeback(&sc->wb);
	read_stats(sc, &info->stats);
	info->tun = sc->tun;
	info->wb_passes = stash_wb_passes(&sc->wb);
	info->drains_started = stash_wb_drains_started(&sc->wb);
	info->drains_completed = stash_wb_drains_completed(&sc->wb);
	info->md_seq = sc->is_volatile ? 0 : stash_md_seq(&sc->md);
	info->checksum_errors = sc->checksum_errors;
	info->checksum_bad = sc->nr_csum_bad;
	info->checksum = sc->csum;
	spin_unlock_irqrestore(&sc->lock, flags);
	info->ram_per_block = stash_ram_per_cblock(sc);
	info->wb_rate = stash_wb_rate(sc);
	info->wb_backoff_ms = stash_wb_backoff_ms(&sc->wb);
	info->is_volatile = sc->is_volatile;
	info->cache_failed = stash_cache_failed(sc);
	info->origin_dev = sc->origin_dev->bdev->bd_dev;
	info->cache_dev = sc->cache_dev->bdev->bd_dev;
}

/* The groups of tunables in the status below cover every row once, in order. */
static_assert(STASH_TUN_sequential_cutoff == 0);
static_assert(STASH_TUN_commit_ms == STASH_TUN_writeback_inflight + 1);
static_assert(STASH_TUN_error_threshold == STASH_TUN_commit_ms + 1);
static_assert(STASH_TUN_writeback_latency == STASH_TUN_error_threshold + 1);

/* " name=value" for tunables @first to @last, at @sz; the new @sz. */
static unsigned int emit_tunables(struct stash_cache *sc, unsigned int first,
				  unsigned int last, char *result,
				  unsigned int maxlen, unsigned int sz)
{
	const struct stash_tunable_desc *d;

	for (d = &stash_tunable_descs[first]; d <= &stash_tunable_descs[last]; d++)
		DMEMIT(" %s=%u", d->name, READ_ONCE(*tunable_field(&sc->tun, d)));
	return sz;
}

/*
 * INFO status: space-separated key=value fields, in this order:
 *   mode=		writearound | writethrough | writeback
 *   state=		idle | writeback (a watermark pass runs) | flushing (a
 *			drain pass runs) | draining (left write-back, dirty
 *			blocks remain)
 *   block_size=	block size in sectors
 *   cache_blocks=	<used>/<total> cache blocks
 *   dirty=		dirty blocks
 *   writeback=	blocks in writeback I/O now
 *   read_hits= read_misses= write_hits= write_misses=
 *			blocks (a bio spanning blocks counts once per block)
 *   promotions=	blocks copied into the cache
 *   evictions=	clean blocks dropped to make room
 *   invalidations=	cached copies forgotten (writes, discards, errors)
 *   bypassed=		I/Os that skipped the cache as part of a sequential
 *			stream
 *   writes_carried=	write-through writes to a busy block that a newer
 *			whole-block write to it carried (see stash-io.c)
 *   written_back=	blocks copied to the origin by writeback
 *   writeback_rate=	KiB written back during the last complete second
 *   cache_errors=	failed cache-device I/Os
 *   origin_errors=	failed origin I/Os
 *   writeback_errors=	blocks whose writeback failed (they stay dirty)
 *   sequential_cutoff= high_watermark= low_watermark= idle_ms=
 *   writeback_inflight=	tunables (linux/dm-stash-tunables.h), a group
 *			of rows in their order (emit_tunables())
 *   commit_ms=	the tunable
 *   commits=		metadata commits done
 *   ram_per_block=	bytes of kernel RAM per cache block
 *   metadata=		volatile (nothing kept on the cache device) |
 *			persistent | failed (a commit failed: writes that
 *			need one are refused, resume is refused)
 *   error_threshold=	the tunable
 *   writeback_retry_ms=	the back-off before writeback retries failed
 *			blocks; 0 = the last pass had no error
 *   cache_state=	ok | failed (the cache device failed: I/O goes to
 *			the origin, dirty blocks are being written back)
 *   checksum=		on | off (the 'checksum' option)
 *   checksum_errors=	cache reads whose data failed its checksum
 *   checksum_bad=	dirty blocks that failed their checksum: reads of
 *			them fail and writeback skips them
 *   writeback_latency= writeback_rate_cap=	the tunables from there to the
 *			last row (a new tunable shows here)
 *   writeback_limit=	writeback runs the throttle allows in flight now
 *   writeback_pause_us=	its pause before each run (at one run)
 *   writeback_throttled=	its looks that found foreground I/O slowed
 *   writeback_paused_ms=	the time it held writeback back in all (its
 *			pauses and the rate cap's)
 *
 * TABLE status: the constructor line, with the current mode.
 */
static void stash_status(struct dm_target *ti, status_type_t type,
			 unsigned int status_flags, char *result,
			 unsigned int maxlen)
{
	struct stash_cache *sc = ti->private;
	struct stash_stats stats, *st = &stats;
	unsigned int sz = 0;

	read_stats(sc, &stats);

	switch (type) {
	case STATUSTYPE_INFO:
		DMEMIT("mode=%s state=%s block_size=%llu cache_blocks=%u/%u",
		       stash_mode_name(READ_ONCE(sc->mode)), stash_wb_state(sc),
		       (unsigned long long)sc->block_sectors,
		       stash_map_nr_allocated(&sc->map), sc->nr_cblocks);
		DMEMIT(" dirty=%u writeback=%u", READ_ONCE(sc->dirty.nr_set),
		       stash_wb_nr_writeback(&sc->wb));
		DMEMIT(" read_hits=%llu read_misses=%llu write_hits=%llu write_misses=%llu",
		       READ_ONCE(st->read_hits), READ_ONCE(st->read_misses),
		       READ_ONCE(st->write_hits), READ_ONCE(st->write_misses));
		DMEMIT(" promotions=%llu evictions=%llu invalidations=%llu bypassed=%llu",
		       READ_ONCE(st->promotions), READ_ONCE(st->evictions),
		       READ_ONCE(st->invalidations), READ_ONCE(st->bypassed));
		DMEMIT(" writes_carried=%llu", READ_ONCE(sc->writes_carried));
		DMEMIT(" written_back=%llu writeback_rate=%llu cache_errors=%llu",
		       READ_ONCE(st->written_back),
		       stash_wb_rate(sc) * (sc->block_sectors << SECTOR_SHIFT) >> 10,
		       READ_ONCE(st->cache_errors));
		DMEMIT(" origin_errors=%llu writeback_errors=%llu",
		       READ_ONCE(st->origin_errors),
		       READ_ONCE(st->writeback_errors));
		sz = emit_tunables(sc, STASH_TUN_sequential_cutoff,
				   STASH_TUN_writeback_inflight, result, maxlen, sz);
		sz = emit_tunables(sc, STASH_TUN_commit_ms, STASH_TUN_commit_ms,
				   result, maxlen, sz);
		DMEMIT(" commits=%llu ram_per_block=%u metadata=%s",
		       READ_ONCE(st->commits), stash_ram_per_cblock(sc),
		       stash_metadata_state(sc));
		sz = emit_tunables(sc, STASH_TUN_error_threshold,
				   STASH_TUN_error_threshold, result, maxlen, sz);
		DMEMIT(" writeback_retry_ms=%u cache_state=%s",
		       stash_wb_backoff_ms(&sc->wb),
		       stash_cache_failed(sc) ? "failed" : "ok");
		DMEMIT(" checksum=%s checksum_errors=%llu checksum_bad=%u",
		       sc->csum ? "on" : "off", READ_ONCE(sc->checksum_errors),
		       READ_ONCE(sc->nr_csum_bad));
		sz = emit_tunables(sc, STASH_TUN_writeback_latency,
				   STASH_NR_TUNABLES - 1, result, maxlen, sz);
		DMEMIT(" writeback_limit=%u writeback_pause_us=%u writeback_throttled=%llu",
		       stash_throttle_limit(sc),
		       stash_throttle_pause_us(&sc->wb),
		       stash_throttle_throttled(&sc->wb));
		DMEMIT(" writeback_paused_ms=%llu",
		       div_u64(stash_throttle_paused_us(&sc->wb), 1000));
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %s %s", sc->origin_dev->name, sc->cache_dev->name,
		       stash_mode_name(READ_ONCE(sc->mode)));
		if (*sc->table_opts)
			DMEMIT(" %s", sc->table_opts);
		break;
	case STATUSTYPE_IMA:
		*result = '\0';
		break;
	}
}

/*
 * ---- Cache device errors ----
 */

/*
 * Fail the cache, once: from now on I/O goes to the origin (see
 * stash_failed_io()) and writeback drains what it can read.
 */
static void fail_cache(struct stash_cache *sc, const char *why)
{
	if (atomic_cmpxchg(&sc->cache_failed, 0, 1))
		return;
	/*
	 * Flushes now rely on the origin alone (stash_flush()): the next one
	 * must reach it, for writeback writes that only a commit covered.
	 */
	atomic64_inc(&sc->origin_writes_done);
	stash_err(sc, "cache device %s failed (%s); I/O goes to the origin",
		  sc->cache_dev->name, why);
	stash_err(sc, "writing back %u dirty blocks", READ_ONCE(sc->dirty.nr_set));
	stash_wb_request_drain(sc);
	stash_kick_worker(sc);
}

static void check_errors(struct stash_cache *sc)
{
	u32 limit = READ_ONCE(sc->tun.error_threshold);

	if (limit && (u32)atomic_read(&sc->cache_error_count) >= limit)
		fail_cache(sc, "error_threshold reached");
}

void stash_cache_error(struct stash_cache *sc)
{
	atomic_inc(&sc->cache_error_count);
	if (stash_bdev_gone(sc->cache_dev->bdev))
		fail_cache(sc, "the device is gone");
	else
		check_errors(sc);
}

void stash_reset_counters(struct stash_cache *sc)
{
	unsigned long flags;
	int cpu;

	spin_lock_irqsave(&sc->lock, flags);
	memset(&sc->stats, 0, sizeof(sc->stats));
	/* Racy with hits on other CPUs: one may survive, as at any reset. */
	for_each_possible_cpu(cpu)
		WRITE_ONCE(per_cpu_ptr(sc->pcpu, cpu)->read_hits, 0);
	sc->writes_carried = 0;
	sc->checksum_errors = 0;
	spin_unlock_irqrestore(&sc->lock, flags);
}

/* Forget every clean block (dirty ones stay until written back). */
void stash_invalidate_clean(struct stash_cache *sc)
{
	unsigned long flags;
	u32 i;

	spin_lock_irqsave(&sc->lock, flags);
	for (i = 0; i < sc->nr_cblocks; i++) {
		if (stash_map_is_mapped(&sc->map, to_cblock(i)) &&
		    !stash_bitmap_test(&sc->dirty, i)) {
			stash_map_invalidate(&sc->map, to_cblock(i));
			sc->stats.invalidations++;
		}
		if (!((i + 1) % 4096)) {
			spin_unlock_irqrestore(&sc->lock, flags);
			cond_resched();
			spin_lock_irqsave(&sc->lock, flags);
		}
	}
	spin_unlock_irqrestore(&sc->lock, flags);
	stash_md_note_io(sc);
}

int stash_set_tunable(struct stash_cache *sc, const char *key,
		      const char *value)
{
	const struct stash_tunable_desc *d = stash_find_tunable(key), *t;
	struct stash_tunables tun;
	unsigned long flags;
	char *err;
	int r;

	if (!d) {
		stash_warn_ratelimited(sc, "unknown tunable '%s'", key);
		return -EINVAL;
	}
	spin_lock_irqsave(&sc->lock, flags);
	tun = sc->tun;
	r = parse_tunable(d, value, &tun, true, &err);
	if (!r) {
		/* Each field once: readers take them without the lock. */
		for (t = stash_tunable_descs;
		     t < stash_tunable_descs + STASH_NR_TUNABLES; t++)
			WRITE_ONCE(*tunable_field(&sc->tun, t),
				   *tunable_field(&tun, t));
		stash_seq_init(&sc->seq, (u64)tun.seq_cutoff_kb * 2);
	}
	spin_unlock_irqrestore(&sc->lock, flags);
	if (r) {
		stash_warn_ratelimited(sc, "%s %s: %s", key, value ?: "", err);
		return r;
	}
	/* A lower error_threshold may be reached already. */
	check_errors(sc);
	/* New watermarks or idle time may call for writeback now. */
	stash_wb_retune(sc);
	return 0;
}

/* Into write-back at once; out of it, the writeback thread drains. */
int stash_set_mode(struct stash_cache *sc, const char *name)
{
	enum stash_mode mode;
	char *err = NULL;

	if (parse_mode(name, &mode, &err)) {
		stash_warn_ratelimited(sc, "%s", err);
		return -EINVAL;
	}
	WRITE_ONCE(sc->mode, mode);
	stash_wb_kick(sc);
	stash_md_note_io(sc);
	return 0;
}

/*
 * Messages:
 *   reset_counters		zero the counters shown by status
 *   set <tunable> <value>	see stash_tunable_descs
 *   mode <mode>		switch mode (see the top of this file)
 *   flush			start writing back every dirty block; progress
 *				shows in status (state=flushing, dirty=)
 *   invalidate		forget every clean cached block
 */
static int stash_message(struct dm_target *ti, unsigned int argc, char **argv,
			 char *result, unsigned int maxlen)
{
	struct stash_cache *sc = ti->private;

	if (argc == 1 && !strcasecmp(argv[0], "reset_counters")) {
		stash_reset_counters(sc);
		return 0;
	}
	if (argc == 1 && !strcasecmp(argv[0], "flush")) {
		stash_wb_request_drain(sc);
		return 0;
	}
	if (argc == 1 && !strcasecmp(argv[0], "invalidate")) {
		stash_invalidate_clean(sc);
		return 0;
	}
	if (argc == 2 && !strcasecmp(argv[0], "mode"))
		return stash_set_mode(sc, argv[1]);
	if (argc == 3 && !strcasecmp(argv[0], "set"))
		return stash_set_tunable(sc, argv[1], argv[2]);

	stash_warn_ratelimited(sc, "unrecognised message '%s' with %u arguments",
			       argc ? argv[0] : "", argc);
	return -EINVAL;
}

/*
 * ---- Suspend, devices, limits ----
 */

/*
 * Suspend: a volatile cache writes every dirty block back; a persistent
 * one stops writeback and commits its metadata with the clean flag, so
 * dirty blocks stay on the cache device across remove and reload.
 */
static void stash_presuspend(struct dm_target *ti)
{
	struct stash_cache *sc = ti->private;

	/* Writes waiting on writeback hold the suspend: no throttle now. */
	stash_wb_set_suspending(&sc->wb, true);
	if (sc->is_volatile)
		stash_wb_request_drain(sc);
}

/* The suspend was called off: the throttle may act again. */
static void stash_presuspend_undo(struct dm_target *ti)
{
	struct stash_cache *sc = ti->private;

	stash_wb_set_suspending(&sc->wb, false);
}

static void stash_postsuspend(struct dm_target *ti)
{
	struct stash_cache *sc = ti->private;

	stash_registry_set_live(sc, false);
	if (sc->is_volatile && stash_wb_drain_sync(sc)) {
		/*
		 * Nothing may write back behind a table that takes these
		 * blocks over (stash-stranded.c); a resume starts it again.
		 */
		stash_wb_stop(sc);
		stash_err(sc, "suspend: %u dirty blocks could not be written back",
			  READ_ONCE(sc->dirty.nr_set));
		if (stash_stranded_add(sc))
			stash_err(sc, "suspend: no memory to keep them for the next table");
	} else if (!sc->is_volatile) {
		stash_wb_stop(sc);
	}
	stash_wait_for_jobs(sc);
	if (!sc->is_volatile)
		stash_md_suspend(sc);
}

/* A persistent cache loads its metadata on the first resume. */
static int stash_preresume(struct dm_target *ti)
{
	struct stash_cache *sc = ti->private;
	int r;

	/* Stranded on the cache device since the constructor ran? */
	r = stash_stranded_check(sc, sc->format);
	if (r)
		return r;
	if (sc->format)
		stash_stranded_drop(sc);
	if (sc->is_volatile) {
		stash_stranded_reclaim(sc);
		stash_stranded_adopt(sc);
		return 0;
	}
	/* A failed cache no longer uses its metadata: it passes I/O on. */
	if (stash_cache_failed(sc))
		return 0;
	return stash_md_resume(sc);
}

static void stash_resume(struct dm_target *ti)
{
	struct stash_cache *sc = ti->private;

	/* Also after a volatile suspend stopped it (stranded blocks). */
	stash_wb_set_suspending(&sc->wb, false);
	stash_wb_start(sc);
	stash_registry_set_live(sc, true);
}

static int stash_iterate_devices(struct dm_target *ti,
				 iterate_devices_callout_fn fn, void *data)
{
	struct stash_cache *sc = ti->private;
	int r;

	r = fn(ti, sc->origin_dev, 0, ti->len, data);
	if (!r)
		r = fn(ti, sc->cache_dev, 0,
		       bdev_nr_sectors(sc->cache_dev->bdev), data);
	return r;
}

static void stash_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct stash_cache *sc = ti->private;
	unsigned int block_bytes = sc->block_sectors << SECTOR_SHIFT;
	struct block_device *origin = sc->origin_dev->bdev;

	if (limits->io_opt < block_bytes || limits->io_opt % block_bytes)
		stash_limits_io_hints(limits, block_bytes, block_bytes);

	if (sc->discard_passdown && bdev_max_discard_sectors(origin)) {
		stash_limits_copy_discard(limits,
					  &bdev_get_queue(origin)->limits);
	} else {
		limits->max_discard_sectors = min_t(sector_t,
						    sc->block_sectors * 1024,
						    ti->len);
		limits->max_hw_discard_sectors = limits->max_discard_sectors;
		limits->discard_granularity = block_bytes;
	}
}

static struct target_type stash_target = {
	.name = STASH_TARGET_NAME,
	.version = { STASH_VERSION_MAJOR, STASH_VERSION_MINOR,
		     STASH_VERSION_PATCH },
	.module = THIS_MODULE,
	.ctr = stash_ctr,
	.dtr = stash_dtr,
	.map = stash_map_bio,
	.end_io = stash_end_io,
	.presuspend = stash_presuspend,
	.presuspend_undo = stash_presuspend_undo,
	.postsuspend = stash_postsuspend,
	.preresume = stash_preresume,
	.resume = stash_resume,
	.status = stash_status,
	.message = stash_message,
	.iterate_devices = stash_iterate_devices,
	.io_hints = stash_io_hints,
};

static int __init dm_stash_init(void)
{
	int r;

	init_tunable_errors();
	r = stash_io_init();
	if (r)
		return r;
	r = stash_csum_init();
	if (r)
		goto bad_csum;
	r = dm_register_target(&stash_target);
	if (r) {
		DMERR("register failed %d", r);
		goto bad_target;
	}
	r = stash_control_init();
	if (r) {
		DMERR("control device failed %d", r);
		goto bad_control;
	}
	return 0;

bad_control:
	dm_unregister_target(&stash_target);
bad_target:
	stash_csum_exit();
bad_csum:
	stash_io_exit();
	return r;
}

static void __exit dm_stash_exit(void)
{
	stash_control_exit();
	dm_unregister_target(&stash_target);
	stash_wait_frees();
	stash_csum_exit();
	stash_io_exit();
}

module_init(dm_stash_init);
module_exit(dm_stash_exit);

MODULE_DESCRIPTION(DM_NAME " block cache target");
MODULE_LICENSE("GPL");
MODULE_VERSION(__stringify(STASH_VERSION_MAJOR) "."
	       __stringify(STASH_VERSION_MINOR) "."
	       __stringify(STASH_VERSION_PATCH));
