// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash skeleton: parses <origin> <cache> <mode> and passes every bio to
 * the origin.  The cache engine replaces this file.
 */
#include <linux/module.h>
#include <linux/device-mapper.h>
#include <linux/bio.h>
#include <linux/string.h>
#include <linux/slab.h>
#include "linux/dm-stash.h"

#define DM_MSG_PREFIX "stash"

struct stash_cache {
	struct dm_dev *origin;
	struct dm_dev *cache;
	const char *mode;
};

static int stash_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct stash_cache *sc;
	int r;

	if (argc != 3) {
		ti->error = "Expected <origin> <cache> <mode>";
		return -EINVAL;
	}
	if (strcmp(argv[2], "writearound") && strcmp(argv[2], "writethrough")) {
		ti->error = "Unknown mode (expected writearound|writethrough)";
		return -EINVAL;
	}
	sc = kzalloc(sizeof(*sc), GFP_KERNEL);
	if (!sc) {
		ti->error = "Cannot allocate cache context";
		return -ENOMEM;
	}
	sc->mode = strcmp(argv[2], "writearound") ? "writethrough" : "writearound";
	r = dm_get_device(ti, argv[0], dm_table_get_mode(ti->table), &sc->origin);
	if (r) {
		ti->error = "Cannot open origin device";
		goto bad_origin;
	}
	r = dm_get_device(ti, argv[1], dm_table_get_mode(ti->table), &sc->cache);
	if (r) {
		ti->error = "Cannot open cache device";
		goto bad_cache;
	}
	if (sc->cache->bdev == sc->origin->bdev) {
		ti->error = "Origin and cache must be different devices";
		r = -EINVAL;
		goto bad_same;
	}
	ti->private = sc;
	return 0;

bad_same:
	dm_put_device(ti, sc->cache);
bad_cache:
	dm_put_device(ti, sc->origin);
bad_origin:
	kfree(sc);
	return r;
}

static void stash_dtr(struct dm_target *ti)
{
	struct stash_cache *sc = ti->private;

	dm_put_device(ti, sc->cache);
	dm_put_device(ti, sc->origin);
	kfree(sc);
}

static int stash_map(struct dm_target *ti, struct bio *bio)
{
	struct stash_cache *sc = ti->private;

	bio_set_dev(bio, sc->origin->bdev);
	bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	return DM_MAPIO_REMAPPED;
}

static void stash_status(struct dm_target *ti, status_type_t type,
			 unsigned int status_flags, char *result,
			 unsigned int maxlen)
{
	struct stash_cache *sc = ti->private;
	unsigned int sz = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		DMEMIT("%s passthrough", sc->mode);
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %s %s", sc->origin->name, sc->cache->name, sc->mode);
		break;
	case STATUSTYPE_IMA:
		*result = '\0';
		break;
	}
}

static int stash_iterate_devices(struct dm_target *ti,
				 iterate_devices_callout_fn fn, void *data)
{
	struct stash_cache *sc = ti->private;

	return fn(ti, sc->origin, 0, ti->len, data);
}

static struct target_type stash_target = {
	.name = STASH_TARGET_NAME,
	.version = { STASH_VERSION_MAJOR, STASH_VERSION_MINOR, STASH_VERSION_PATCH },
	.module = THIS_MODULE,
	.ctr = stash_ctr,
	.dtr = stash_dtr,
	.map = stash_map,
	.status = stash_status,
	.iterate_devices = stash_iterate_devices,
};

static int __init dm_stash_init(void)
{
	return dm_register_target(&stash_target);
}

static void __exit dm_stash_exit(void)
{
	dm_unregister_target(&stash_target);
}

module_init(dm_stash_init);
module_exit(dm_stash_exit);

MODULE_DESCRIPTION(DM_NAME " block cache target");
MODULE_LICENSE("GPL");
