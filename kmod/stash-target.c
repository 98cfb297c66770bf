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
 * Lock ordering
 * -------------
 * There is one spinlock per cache, sc->lock.  It guards the mapping table,
 * the policy state, the in-flight-write table, the bio lists and the
 * counters.  It is taken with irqsave from any context (map, end_io, kcopyd
 * callbacks, the worker) and nothing is ever taken inside it: no other lock,
 * no allocation, no I/O submission.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/blkdev.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "dm-stash.h"
#include "linux/dm-stash.h"

/*----------------------------------------------------------------
 * Constructor
 *--------------------------------------------------------------*/

/* The optional arguments, as parsed. */
struct stash_args {
	enum stash_mode mode;
	sector_t block_sectors;
	u32 seq_cutoff_kb;
	bool is_volatile;
	bool discard_passdown;
};

static int parse_mode(const char *s, enum stash_mode *mode, char **error)
{
	if (!strcmp(s, "writearound"))
		*mode = STASH_MODE_WRITEAROUND;
	else if (!strcmp(s, "writethrough"))
		*mode = STASH_MODE_WRITETHROUGH;
	else if (!strcmp(s, "writeback")) {
		*error = "Mode writeback is not supported yet";
		return -EINVAL;
	} else {
		*error = "Unknown mode (expected writearound, writethrough or writeback)";
		return -EINVAL;
	}
	return 0;
}

static const char *mode_name(enum stash_mode mode)
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
 *   block_size <sectors>	  power of two, 8..2048 (4 KiB..1 MiB); default 8
 *   sequential_cutoff <KiB>  bypass streams longer than this; 0 = off;
 *			  default 4096
 *   volatile		  the cache device keeps no metadata (RAM)
 *   no_discard_passdown	  discards invalidate but are not sent on
 */
static int parse_options(struct dm_arg_set *as, struct stash_args *args,
			 char **error)
{
	static const struct dm_arg nr_opts = {
		0, 6, "Invalid number of optional arguments"
	};
	unsigned int argc, seen = 0;
	const char *name;
	u32 v;
	int r;

	r = dm_read_arg_group(&nr_opts, as, &argc, error);
	if (r)
		return r;

	while (argc--) {
		unsigned int bit;

		name = dm_shift_arg(as);
		if (!strcasecmp(name, "block_size")) {
			bit = 1;
			if (!argc--) {
				*error = "block_size needs a value";
				return -EINVAL;
			}
			r = parse_u32_arg(as, STASH_MIN_BLOCK_SECTORS,
					  STASH_MAX_BLOCK_SECTORS, &v, error,
					  "block_size must be a power of two between 8 and 2048 sectors");
			if (r)
				return r;
			if (!is_power_of_2(v)) {
				*error = "block_size must be a power of two between 8 and 2048 sectors";
				return -EINVAL;
			}
			args->block_sectors = v;
		} else if (!strcasecmp(name, "sequential_cutoff")) {
			bit = 2;
			if (!argc--) {
				*error = "sequential_cutoff needs a value";
				return -EINVAL;
			}
			r = parse_u32_arg(as, 0, STASH_MAX_SEQ_CUTOFF_KB,
					  &args->seq_cutoff_kb, error,
					  "sequential_cutoff must be 0..4194304 KiB");
			if (r)
				return r;
		} else if (!strcasecmp(name, "volatile")) {
			bit = 4;
			args->is_volatile = true;
		} else if (!strcasecmp(name, "no_discard_passdown")) {
			bit = 8;
			args->discard_passdown = false;
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
	return 0;
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

static int parse_devices(struct dm_target *ti, struct stash_cache *sc,
			 const char *origin, const char *cache)
{
	fmode_t mode = dm_table_get_mode(ti->table);
	int r;

	r = dm_get_device(ti, origin, mode, &sc->origin_dev);
	if (r) {
		ti->error = "Cannot open origin device";
		return r;
	}
	r = dm_get_device(ti, cache, mode, &sc->cache_dev);
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

	sc->block_sectors = args->block_sectors;
	sc->block_shift = __ffs(args->block_sectors);
	sc->data_start = 0;
	nr_cblocks = (cache_sectors - sc->data_start) >> sc->block_shift;
	if (nr_cblocks < STASH_MIN_CBLOCKS) {
		ti->error = "Cache device too small (needs at least 16 blocks)";
		return -EINVAL;
	}
	if (nr_cblocks > STASH_MAX_CBLOCKS) {
		ti->error = "Cache device too large for this block size";
		return -EINVAL;
	}
	sc->nr_cblocks = nr_cblocks;
	sc->nr_oblocks = ti->len >> sc->block_shift;
	if (sc->nr_oblocks >= STASH_MAX_OBLOCKS) {
		ti->error = "Origin too large for this block size";
		return -EINVAL;
	}
	return 0;
}

static int create_runtime(struct dm_target *ti, struct stash_cache *sc,
			  struct stash_args *args)
{
	int r;

	spin_lock_init(&sc->lock);
	bio_list_init(&sc->deferred);
	bio_list_init(&sc->fills);
	bio_list_init(&sc->retries);
	bio_list_init(&sc->discards);
	atomic_set(&sc->nr_jobs, 0);
	init_waitqueue_head(&sc->jobs_wait);
	INIT_WORK(&sc->worker, stash_do_work);
	stash_seq_init(&sc->seq, (u64)args->seq_cutoff_kb * 2);

	if (stash_map_init(&sc->map, sc->nr_cblocks)) {
		ti->error = "Cannot allocate the mapping table";
		return -ENOMEM;
	}
	if (stash_filter_init(&sc->filter, sc->nr_cblocks)) {
		ti->error = "Cannot allocate the promotion filter";
		r = -ENOMEM;
		goto bad_filter;
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
	return 0;

bad_wq:
	dm_kcopyd_client_destroy(sc->kcopyd);
bad_kcopyd:
	bioset_exit(&sc->bs);
bad_bioset:
	stash_filter_exit(&sc->filter);
bad_filter:
	stash_map_exit(&sc->map);
	return r;
}

static void destroy_runtime(struct stash_cache *sc)
{
	destroy_workqueue(sc->wq);
	dm_kcopyd_client_destroy(sc->kcopyd);
	bioset_exit(&sc->bs);
	stash_filter_exit(&sc->filter);
	stash_map_exit(&sc->map);
}

/*
 * Table line:
 *   <start> <len> stash <origin> <cache> <mode> [<#opt args> <opt args>...]
 * mode: writearound | writethrough (writeback is refused for now)
 * Optional arguments: see parse_options().
 */
static int stash_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct stash_args args = {
		.block_sectors = STASH_DEFAULT_BLOCK_SECTORS,
		.seq_cutoff_kb = STASH_DEFAULT_SEQ_CUTOFF_KB,
		.discard_passdown = true,
	};
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct stash_cache *sc;
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

	sc = kzalloc(sizeof(*sc), GFP_KERNEL);
	if (!sc) {
		ti->error = "Cannot allocate the cache context";
		return -ENOMEM;
	}
	sc->ti = ti;
	sc->mode = args.mode;
	sc->is_volatile = args.is_volatile;
	sc->discard_passdown = args.discard_passdown;
	sc->table_opts = join_args(argc - 3, argv + 3);
	if (!sc->table_opts) {
		ti->error = "Cannot allocate the cache context";
		r = -ENOMEM;
		goto bad_opts;
	}

	r = parse_devices(ti, sc, argv[0], argv[1]);
	if (r)
		goto bad_devices;
	r = parse_geometry(ti, sc, &args);
	if (r)
		goto bad_geometry;
	r = create_runtime(ti, sc, &args);
	if (r)
		goto bad_geometry;

	r = dm_set_target_max_io_len(ti, sc->block_sectors);
	if (r)
		goto bad_io_len;
	ti->num_flush_bios = 2;
	ti->flush_supported = true;
	ti->num_discard_bios = 1;
	ti->discards_supported = true;
	ti->per_io_data_size = stash_per_bio_data_size();
	ti->private = sc;
	return 0;

bad_io_len:
	destroy_runtime(sc);
bad_geometry:
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

	stash_wait_for_jobs(sc);
	destroy_runtime(sc);
	dm_put_device(ti, sc->cache_dev);
	dm_put_device(ti, sc->origin_dev);
	kfree(sc->table_opts);
	kfree(sc);
}

/*----------------------------------------------------------------
 * Status and messages
 *--------------------------------------------------------------*/

/* Kernel RAM per cache block: mapping entries, buckets, filter. */
static u32 stash_ram_per_cblock(struct stash_cache *sc)
{
	u64 bytes = (u64)sc->map.nr_cblocks * sizeof(struct stash_entry) +
		    (sizeof(u32) << sc->map.hash_bits) +
		    2 * BITS_TO_LONGS(1ull << sc->filter.bits) * sizeof(long);

	return DIV_ROUND_UP_ULL(bytes, sc->nr_cblocks);
}

/*
 * INFO status: space-separated key=value fields, in this order:
 *   mode=		writearound | writethrough
 *   block_size=	block size in sectors
 *   cache_blocks=	<used>/<total> cache blocks
 *   read_hits= read_misses= write_hits= write_misses=
 *			I/Os (after splitting at block boundaries)
 *   promotions=	blocks copied into the cache
 *   evictions=	clean blocks dropped to make room
 *   invalidations=	cached copies forgotten (writes, discards, errors)
 *   bypassed=		read misses not promoted because they were sequential
 *   cache_errors=	failed cache-device I/Os
 *   origin_errors=	failed origin I/Os
 *   sequential_cutoff=	current cutoff in KiB (0 = off)
 *   ram_per_block=	bytes of kernel RAM per cache block
 *   metadata=		volatile (no metadata is kept on the cache device)
 *
 * TABLE status: the constructor line, with the current mode.
 */
static void stash_status(struct dm_target *ti, status_type_t type,
			 unsigned int status_flags, char *result,
			 unsigned int maxlen)
{
	struct stash_cache *sc = ti->private;
	struct stash_stats *st = &sc->stats;
	unsigned int sz = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		DMEMIT("mode=%s block_size=%llu cache_blocks=%u/%u",
		       mode_name(READ_ONCE(sc->mode)),
		       (unsigned long long)sc->block_sectors,
		       stash_map_nr_allocated(&sc->map), sc->nr_cblocks);
		DMEMIT(" read_hits=%llu read_misses=%llu write_hits=%llu write_misses=%llu",
		       READ_ONCE(st->read_hits), READ_ONCE(st->read_misses),
		       READ_ONCE(st->write_hits), READ_ONCE(st->write_misses));
		DMEMIT(" promotions=%llu evictions=%llu invalidations=%llu bypassed=%llu",
		       READ_ONCE(st->promotions), READ_ONCE(st->evictions),
		       READ_ONCE(st->invalidations), READ_ONCE(st->bypassed));
		DMEMIT(" cache_errors=%llu origin_errors=%llu",
		       READ_ONCE(st->cache_errors), READ_ONCE(st->origin_errors));
		DMEMIT(" sequential_cutoff=%llu ram_per_block=%u metadata=volatile",
		       (unsigned long long)READ_ONCE(sc->seq.cutoff_sectors) / 2,
		       stash_ram_per_cblock(sc));
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %s %s", sc->origin_dev->name, sc->cache_dev->name,
		       mode_name(READ_ONCE(sc->mode)));
		if (*sc->table_opts)
			DMEMIT(" %s", sc->table_opts);
		break;
	case STATUSTYPE_IMA:
		*result = '\0';
		break;
	}
}

static void reset_counters(struct stash_cache *sc)
{
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	memset(&sc->stats, 0, sizeof(sc->stats));
	spin_unlock_irqrestore(&sc->lock, flags);
}

static int set_tunable(struct stash_cache *sc, const char *key,
		       const char *value)
{
	unsigned long flags;
	unsigned int v;

	if (!strcasecmp(key, "sequential_cutoff")) {
		if (kstrtouint(value, 10, &v) || v > STASH_MAX_SEQ_CUTOFF_KB) {
			DMWARN("sequential_cutoff must be 0..%u KiB",
			       STASH_MAX_SEQ_CUTOFF_KB);
			return -EINVAL;
		}
		spin_lock_irqsave(&sc->lock, flags);
		stash_seq_init(&sc->seq, (u64)v * 2);
		spin_unlock_irqrestore(&sc->lock, flags);
		return 0;
	}
	DMWARN("unknown tunable '%s'", key);
	return -EINVAL;
}

/*
 * Messages:
 *   reset_counters		zero the counters shown by status
 *   set <tunable> <value>	sequential_cutoff <KiB>
 */
static int stash_message(struct dm_target *ti, unsigned int argc, char **argv,
			 char *result, unsigned int maxlen)
{
	struct stash_cache *sc = ti->private;

	if (argc == 1 && !strcasecmp(argv[0], "reset_counters")) {
		reset_counters(sc);
		return 0;
	}
	if (argc == 3 && !strcasecmp(argv[0], "set"))
		return set_tunable(sc, argv[1], argv[2]);

	DMWARN("unrecognised message '%s' with %u arguments",
	       argc ? argv[0] : "", argc);
	return -EINVAL;
}

/*----------------------------------------------------------------
 * Suspend, devices, limits
 *--------------------------------------------------------------*/

static void stash_postsuspend(struct dm_target *ti)
{
	stash_wait_for_jobs(ti->private);
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

	if (limits->io_opt < block_bytes || limits->io_opt % block_bytes) {
		blk_limits_io_min(limits, block_bytes);
		blk_limits_io_opt(limits, block_bytes);
	}

	if (sc->discard_passdown && bdev_max_discard_sectors(origin)) {
		struct queue_limits *ol = &bdev_get_queue(origin)->limits;

		limits->max_discard_sectors = ol->max_discard_sectors;
		limits->max_hw_discard_sectors = ol->max_hw_discard_sectors;
		limits->discard_granularity = ol->discard_granularity;
		limits->discard_alignment = ol->discard_alignment;
		limits->discard_misaligned = ol->discard_misaligned;
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
	.postsuspend = stash_postsuspend,
	.status = stash_status,
	.message = stash_message,
	.iterate_devices = stash_iterate_devices,
	.io_hints = stash_io_hints,
};

static int __init dm_stash_init(void)
{
	int r;

	r = stash_io_init();
	if (r)
		return r;
	r = dm_register_target(&stash_target);
	if (r) {
		DMERR("register failed %d", r);
		stash_io_exit();
	}
	return r;
}

static void __exit dm_stash_exit(void)
{
	dm_unregister_target(&stash_target);
	stash_io_exit();
}

module_init(dm_stash_init);
module_exit(dm_stash_exit);

MODULE_DESCRIPTION(DM_NAME " block cache target");
MODULE_LICENSE("GPL");
MODULE_VERSION(__stringify(STASH_VERSION_MAJOR) "."
	       __stringify(STASH_VERSION_MINOR) "."
	       __stringify(STASH_VERSION_PATCH));
