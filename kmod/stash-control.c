// SPDX-License-Identifier: GPL-2.0
/*
 * dm-stash control device (/dev/stash-control) and the registry of caches.
 *
 * Registry
 * --------
 * Every constructed stash table is on stash_registry from the end of its
 * constructor to the start of its destructor.  A device being reloaded has
 * two tables on it for a while (the live one and the loaded, inactive one);
 * lookups prefer the live one.
 *
 * Locking and lifetime
 * --------------------
 * stash_registry_lock (a mutex) guards the list.  An ioctl copies its
 * argument in, takes the mutex, looks its cache up and does all its work on
 * the cache under the mutex, then drops it and copies results out.  The
 * destructor takes the mutex to leave the registry, so a cache (its table
 * and mapped device too) cannot go away while an ioctl uses it.  The module
 * cannot go away either: the misc device's fops are owned by THIS_MODULE,
 * so an open control device pins the module.
 *
 * Nothing done under the mutex waits for I/O: FLUSH only starts a drain,
 * and no copy to or from user memory (which may fault for as long as it
 * likes) happens under it.  Lock order: stash_registry_lock, then dm's
 * hash-cell mutex (dm_copy_name_and_uuid()), then sc->lock (the control
 * API functions).
 *
 * The ioctls are described in uapi/linux/dm-stash.h.  The control API
 * functions they call are the ones `dmsetup message` uses, so both paths
 * validate input the same way.
 */
#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/capability.h>
#include <linux/uaccess.h>
#include <linux/mutex.h>
#include <linux/list.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/dm-ioctl.h>

#include "dm-stash.h"
#include "linux/dm-stash.h"

/* ------------------------------------------------------------------
 * Registry
 * ------------------------------------------------------------------
 */

static DEFINE_MUTEX(stash_registry_lock);
static LIST_HEAD(stash_registry);		/* stash_cache.registry */
static LIST_HEAD(stash_claims);			/* stash_cache.claim */
/* Scratch for dm_copy_name_and_uuid(); guarded by stash_registry_lock. */
static char stash_name_buf[DM_NAME_LEN];

int stash_registry_add(struct stash_cache *sc)
{
	mutex_lock(&stash_registry_lock);
	list_add_tail(&sc->registry, &stash_registry);
	mutex_unlock(&stash_registry_lock);
	return 0;
}

void stash_registry_remove(struct stash_cache *sc)
{
	mutex_lock(&stash_registry_lock);
	list_del_init(&sc->registry);
	mutex_unlock(&stash_registry_lock);
}

/*
 * Resume and postsuspend: @sc starts or stops serving I/O.  Under the
 * registry mutex, so that an ioctl that found the table live acts on it
 * before it is suspended, and none acts on it afterwards: a suspended
 * table must start no writeback and change no mapping.
 */
void stash_registry_set_live(struct stash_cache *sc, bool live)
{
	mutex_lock(&stash_registry_lock);
	WRITE_ONCE(sc->live, live);
	mutex_unlock(&stash_registry_lock);
}

static dev_t stash_devt(struct stash_cache *sc)
{
	return disk_devt(dm_disk(stash_mapped_dev(sc)));
}

/*
 * Under stash_registry_lock: the device-mapper name of @sc's device into
 * stash_name_buf.  Fails while the device is being removed (its name is
 * gone already).
 */
static int stash_name(struct stash_cache *sc)
{
	return dm_copy_name_and_uuid(stash_mapped_dev(sc), stash_name_buf, NULL);
}

static bool same_dev(struct dm_dev *a, struct dm_dev *b)
{
	return a->bdev->bd_dev == b->bdev->bd_dev;
}

/*
 * Claim @sc's cache and origin devices for its mapped device, from the
 * constructor, before it reads or writes either.  Refused (-EBUSY,
 * ti->error set) while a table of another dm-stash device holds one of
 * them, as its cache or its origin: two caches on one cache device
 * overwrite each other's blocks and metadata, two over one origin each
 * serve reads that the other's writes made stale.  The tables of one
 * mapped device (a reload) share them: the old one stops before the new
 * one starts.  *@shared: such a table holds the cache device.
 */
int stash_claim_devices(struct stash_cache *sc, bool *shared)
{
	struct mapped_device *md = stash_mapped_dev(sc);
	struct dm_dev *taken = NULL;
	struct stash_cache *o;

	*shared = false;
	mutex_lock(&stash_registry_lock);
	list_for_each_entry(o, &stash_claims, claim) {
		if (stash_mapped_dev(o) == md) {
			*shared |= same_dev(o->cache_dev, sc->cache_dev);
			continue;
		}
		if (same_dev(o->cache_dev, sc->cache_dev) ||
		    same_dev(o->origin_dev, sc->cache_dev))
			taken = sc->cache_dev;
		else if (same_dev(o->cache_dev, sc->origin_dev) ||
			 same_dev(o->origin_dev, sc->origin_dev))
			taken = sc->origin_dev;
		else
			continue;
		stash_err(sc, "the %s device %pg is in use by dm-stash device %s",
			  taken == sc->cache_dev ? "cache" : "origin", taken->bdev,
			  stash_name(o) ? "(being removed)" : stash_name_buf);
		break;
	}
	if (!taken)
		list_add_tail(&sc->claim, &stash_claims);
	mutex_unlock(&stash_registry_lock);
	if (!taken)
		return 0;
	sc->ti->error = taken == sc->cache_dev ?
		"Cache device in use by another dm-stash device" :
		"Origin device in use by another dm-stash device";
	return -EBUSY;
}

/* The destructor, or a constructor that failed after claiming them. */
void stash_release_devices(struct stash_cache *sc)
{
	mutex_lock(&stash_registry_lock);
	list_del_init(&sc->claim);
	mutex_unlock(&stash_registry_lock);
}

/*
 * Under stash_registry_lock: is @sc the table to report for its device,
 * i.e. no other table of the device is live while @sc is not, and none
 * equally live comes earlier in the registry?
 */
static bool stash_preferred(struct stash_cache *sc)
{
	struct mapped_device *md = stash_mapped_dev(sc);
	bool live = READ_ONCE(sc->live);
	struct stash_cache *o;
	bool earlier = true;

	list_for_each_entry(o, &stash_registry, registry) {
		bool olive;

		if (o == sc) {
			earlier = false;
			continue;
		}
		if (stash_mapped_dev(o) != md)
			continue;
		olive = READ_ONCE(o->live);
		if ((olive && !live) || (olive == live && earlier))
			return false;
	}
	return true;
}

/* Under stash_registry_lock: the cache @sel selects, or NULL. */
static struct stash_cache *stash_lookup(const struct stash_ioc_cache *sel)
{
	struct stash_cache *sc, *found = NULL;
	bool by_name = sel->name[0];
	dev_t devt;

	lockdep_assert_held(&stash_registry_lock);
	list_for_each_entry(sc, &stash_registry, registry) {
		if (by_name) {
			if (stash_name(sc) || strcmp(stash_name_buf, sel->name))
				continue;
		} else {
			devt = stash_devt(sc);
			if (MAJOR(devt) != sel->major || MINOR(devt) != sel->minor)
				continue;
		}
		if (!found || (READ_ONCE(sc->live) && !READ_ONCE(found->live)))
			found = sc;
	}
	return found;
}

/*
 * Under stash_registry_lock: the cache an ioctl that changes something
 * acts on.  Returns -ENODEV if there is none, -EBUSY if its table is not
 * live (suspended, or loaded and not resumed yet): such a table starts no
 * I/O and changes nothing until it is resumed.
 */
static int stash_lookup_live(const struct stash_ioc_cache *sel,
			     struct stash_cache **scp)
{
	struct stash_cache *sc = stash_lookup(sel);

	*scp = sc;
	if (!sc)
		return -ENODEV;
	return READ_ONCE(sc->live) ? 0 : -EBUSY;
}

/* ------------------------------------------------------------------
 * Argument checks and conversions
 * ------------------------------------------------------------------
 */

/* The header every argument starts with. */
struct stash_ioc_hdr {
	__u32 size;
	__u32 version;
};

static int check_hdr(const void *arg, size_t size)
{
	const struct stash_ioc_hdr *h = arg;

	if (h->size != size)
		return -EINVAL;
	if (!h->version || h->version > STASH_UAPI_VERSION)
		return -EINVAL;
	return 0;
}

/* A name and a NUL within @len bytes, or an empty name. */
static bool valid_string(const char *s, size_t len)
{
	return !!memchr(s, '\0', len);
}

static int check_selector(const struct stash_ioc_cache *sel)
{
	bool by_name = sel->name[0];
	bool by_dev = sel->major || sel->minor;

	if (by_name == by_dev)
		return -EINVAL;
	if (by_name && !valid_string(sel->name, sizeof(sel->name)))
		return -EINVAL;
	return 0;
}

static bool all_zero(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

static int mode_from_uapi(u32 m, enum stash_mode *mode)
{
	switch (m) {
	case STASH_UAPI_MODE_WRITEAROUND:
		*mode = STASH_MODE_WRITEAROUND;
		return 0;
	case STASH_UAPI_MODE_WRITETHROUGH:
		*mode = STASH_MODE_WRITETHROUGH;
		return 0;
	case STASH_UAPI_MODE_WRITEBACK:
		*mode = STASH_MODE_WRITEBACK;
		return 0;
	}
	return -EINVAL;
}

static u32 mode_to_uapi(enum stash_mode mode)
{
	switch (mode) {
	case STASH_MODE_WRITEAROUND:
		return STASH_UAPI_MODE_WRITEAROUND;
	case STASH_MODE_WRITETHROUGH:
		return STASH_UAPI_MODE_WRITETHROUGH;
	case STASH_MODE_WRITEBACK:
		return STASH_UAPI_MODE_WRITEBACK;
	}
	return U32_MAX;
}

static u32 cache_flags(struct stash_cache *sc, const struct stash_info *info)
{
	u32 flags = 0;

	if (READ_ONCE(sc->live))
		flags |= STASH_IOC_F_LIVE;
	if (info->is_volatile)
		flags |= STASH_IOC_F_VOLATILE;
	else
		flags |= STASH_IOC_F_METADATA;
	/* Not in stash_info (yet): the sticky flag, read as status does. */
	if (!info->is_volatile && stash_md_failed(&sc->md))
		flags |= STASH_IOC_F_METADATA_FAILED;
	if (info->cache_failed)
		flags |= STASH_IOC_F_CACHE_FAILED;
	if (info->checksum)
		flags |= STASH_IOC_F_CHECKSUM;
	return flags;
}

/* ------------------------------------------------------------------
 * ioctls
 * ------------------------------------------------------------------
 */

static long ioc_version(void __user *uarg)
{
	struct stash_ioc_version v;

	if (copy_from_user(&v, uarg, sizeof(v)))
		return -EFAULT;
	/* Any version: this is how a caller learns the module's. */
	if (v.size != sizeof(v) || !v.version)
		return -EINVAL;
	if (!all_zero(v.reserved, sizeof(v.reserved)))
		return -EINVAL;
	v.module_major = STASH_VERSION_MAJOR;
	v.module_minor = STASH_VERSION_MINOR;
	v.module_patch = STASH_VERSION_PATCH;
	v.uapi_version = STASH_UAPI_VERSION;
	return copy_to_user(uarg, &v, sizeof(v)) ? -EFAULT : 0;
}

static long ioc_list(void __user *uarg)
{
	struct stash_ioc_list l;
	struct stash_ioc_list_entry *e = NULL;
	struct stash_info info;
	struct stash_cache *sc;
	u32 count = 0, n = 0, cap;
	int r;

	if (copy_from_user(&l, uarg, sizeof(l)))
		return -EFAULT;
	r = check_hdr(&l, sizeof(l));
	if (r)
		return r;
	if (l.entry_size != sizeof(*e) || l.reserved0 ||
	    !all_zero(l.reserved, sizeof(l.reserved)))
		return -EINVAL;

	mutex_lock(&stash_registry_lock);
	list_for_each_entry(sc, &stash_registry, registry)
		count++;
	cap = min(l.capacity, count);
	if (cap) {
		e = kvcalloc(cap, sizeof(*e), STASH_GFP_TABLE);
		if (!e) {
			mutex_unlock(&stash_registry_lock);
			return -ENOMEM;
		}
	}
	count = 0;
	list_for_each_entry(sc, &stash_registry, registry) {
		dev_t devt;

		if (!stash_preferred(sc) || stash_name(sc))
			continue;
		count++;
		if (n == cap)
			continue;
		stash_get_info(sc, &info);
		devt = stash_devt(sc);
		strscpy(e[n].name, stash_name_buf, sizeof(e[n].name));
		e[n].major = MAJOR(devt);
		e[n].minor = MINOR(devt);
		e[n].mode = mode_to_uapi(info.mode);
		e[n].flags = cache_flags(sc, &info);
		n++;
	}
	mutex_unlock(&stash_registry_lock);

	r = 0;
	if (n && copy_to_user(u64_to_user_ptr(l.entries), e, n * sizeof(*e)))
		r = -EFAULT;
	kvfree(e);
	if (r)
		return r;
	l.count = count;
	return copy_to_user(uarg, &l, sizeof(l)) ? -EFAULT : 0;
}

/*
 * Where STASH_IOC_STATUS has each tunable (the ioc column of its row): an
 * offset in struct stash_ioc_status, 0 for none.
 */
#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) \
	[STASH_TUN_##name] = STASH_IOC_STATUS_AT(ioc, name),
static const size_t tunable_status_at[STASH_NR_TUNABLES] = {
#include <linux/dm-stash-tunables.h>
};

#undef STASH_TUNABLE

/* The rows whose ioc column is "tunables", counted: STASH_IOC_NR_TUNABLES. */
#define STASH_IOC_ROW_tunables(name)	STASH_IOC_TUN_##name,
#define STASH_IOC_ROW_status(name)
#define STASH_IOC_ROW_none(name)
#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) \
	STASH_IOC_ROW_##ioc(name)
enum {
#include <linux/dm-stash-tunables.h>
	STASH_IOC_NR_TUNABLES
};

#undef STASH_TUNABLE

static void fill_status(struct stash_ioc_status *s, struct stash_cache *sc)
{
	struct stash_info info;
	dev_t devt = stash_devt(sc);
	unsigned int i;
	__u64 v;

	stash_get_info(sc, &info);
	strscpy_pad(s->name, stash_name_buf, sizeof(s->name));
	s->major = MAJOR(devt);
	s->minor = MINOR(devt);
	s->mode = mode_to_uapi(info.mode);
	s->flags = cache_flags(sc, &info);
	strscpy_pad(s->state, info.state ?: "unknown", sizeof(s->state));
	s->block_sectors = info.block_sectors;
	s->ram_per_block = info.ram_per_block;
	s->origin_major = MAJOR(info.origin_dev);
	s->origin_minor = MINOR(info.origin_dev);
	s->cache_major = MAJOR(info.cache_dev);
	s->cache_minor = MINOR(info.cache_dev);
	s->target_sectors = sc->ti->len;
	s->cache_blocks = info.nr_cblocks;
	s->used_blocks = info.used_cblocks;
	s->dirty_blocks = info.dirty;
	s->writeback_blocks = info.writeback;
	s->writeback_rate = info.wb_rate * (info.block_sectors << SECTOR_SHIFT) >> 10;

	s->counters.read_hits = info.stats.read_hits;
	s->counters.read_misses = info.stats.read_misses;
	s->counters.write_hits = info.stats.write_hits;
	s->counters.write_misses = info.stats.write_misses;
	s->counters.promotions = info.stats.promotions;
	s->counters.evictions = info.stats.evictions;
	s->counters.invalidations = info.stats.invalidations;
	s->counters.bypassed = info.stats.bypassed;
	s->counters.written_back = info.stats.written_back;
	s->counters.cache_errors = info.stats.cache_errors;
	s->counters.origin_errors = info.stats.origin_errors;
	s->counters.writeback_errors = info.stats.writeback_errors;
	s->counters.commits = info.stats.commits;

	for (i = 0; i < STASH_NR_TUNABLES; i++) {
		if (!tunable_status_at[i])
			continue;
		v = stash_tunable_get(&info.tun, &stash_tunable_descs[i]);
		memcpy((char *)s + tunable_status_at[i], &v, sizeof(v));
	}

	s->writeback_passes = info.wb_passes;
	s->drains_started = info.drains_started;
	s->drains_completed = info.drains_completed;
	s->metadata_seq = info.md_seq;
	s->writeback_retry_ms = info.wb_backoff_ms;
	s->checksum_errors = info.checksum_errors;
	s->checksum_bad = info.checksum_bad;
}

static long ioc_status(void __user *uarg)
{
	struct stash_ioc_status *s;
	struct stash_cache *sc;
	long r;

	s = kmalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	r = -EFAULT;
	if (copy_from_user(s, uarg, sizeof(*s)))
		goto out;
	r = check_hdr(s, sizeof(*s));
	if (!r)
		r = check_selector(&s->cache);
	if (!r && (s->checksum_errors || s->checksum_bad))
		r = -EINVAL;
	if (r)
		goto out;

	mutex_lock(&stash_registry_lock);
	sc = stash_lookup(&s->cache);
	if (sc && !stash_name(sc))
		fill_status(s, sc);
	else
		r = -ENODEV;
	mutex_unlock(&stash_registry_lock);

	if (!r && copy_to_user(uarg, s, sizeof(*s)))
		r = -EFAULT;
out:
	kfree(s);
	return r;
}

static long ioc_set_mode(void __user *uarg)
{
	struct stash_ioc_mode m;
	struct stash_cache *sc;
	enum stash_mode mode;
	int r;

	if (copy_from_user(&m, uarg, sizeof(m)))
		return -EFAULT;
	r = check_hdr(&m, sizeof(m));
	if (!r)
		r = check_selector(&m.cache);
	if (!r)
		r = mode_from_uapi(m.mode, &mode);
	if (!r && (m.reserved0 || !all_zero(m.reserved, sizeof(m.reserved))))
		r = -EINVAL;
	if (r)
		return r;

	mutex_lock(&stash_registry_lock);
	r = stash_lookup_live(&m.cache, &sc);
	if (!r)
		r = stash_set_mode(sc, stash_mode_name(mode));
	mutex_unlock(&stash_registry_lock);
	return r;
}

/* FLUSH, INVALIDATE and RESET_COUNTERS. */
static long ioc_cmd(unsigned int cmd, void __user *uarg)
{
	struct stash_ioc_cmd c;
	struct stash_cache *sc;
	int r;

	if (copy_from_user(&c, uarg, sizeof(c)))
		return -EFAULT;
	r = check_hdr(&c, sizeof(c));
	if (!r)
		r = check_selector(&c.cache);
	if (!r && (c.flags || c.reserved0 ||
		   !all_zero(c.reserved, sizeof(c.reserved))))
		r = -EINVAL;
	if (r)
		return r;

	mutex_lock(&stash_registry_lock);
	r = stash_lookup_live(&c.cache, &sc);
	if (!r && cmd == STASH_IOC_FLUSH)
		stash_wb_request_drain(sc);
	else if (!r && cmd == STASH_IOC_INVALIDATE)
		stash_invalidate_clean(sc);
	else if (!r)
		stash_reset_counters(sc);
	mutex_unlock(&stash_registry_lock);
	return r;
}

static int check_tunable_arg(const struct stash_ioc_tunable *t, bool set)
{
	int r = check_hdr(t, sizeof(*t));

	if (!r)
		r = check_selector(&t->cache);
	if (r)
		return r;
	if (!all_zero(t->reserved, sizeof(t->reserved)))
		return -EINVAL;
	if (!valid_string(t->name, sizeof(t->name)))
		return -EINVAL;
	if (set)
		return (!t->name[0] || t->index || t->count || t->min || t->max) ?
			-EINVAL : 0;
	if (t->name[0] && t->index)
		return -EINVAL;
	return 0;
}

static long ioc_get_tunable(void __user *uarg)
{
	const struct stash_tunable_desc *d;
	struct stash_ioc_tunable t;
	struct stash_info info;
	struct stash_cache *sc;
	int r;

	if (copy_from_user(&t, uarg, sizeof(t)))
		return -EFAULT;
	r = check_tunable_arg(&t, false);
	if (r)
		return r;
	if (t.name[0])
		d = stash_find_tunable(t.name);
	else if (t.index < STASH_NR_TUNABLES)
		d = &stash_tunable_descs[t.index];
	else
		d = NULL;
	if (!d)
		return -EINVAL;

	mutex_lock(&stash_registry_lock);
	sc = stash_lookup(&t.cache);
	if (sc)
		stash_get_info(sc, &info);
	mutex_unlock(&stash_registry_lock);
	if (!sc)
		return -ENODEV;

	strscpy_pad(t.name, d->name, sizeof(t.name));
	t.index = d - stash_tunable_descs;
	t.count = STASH_NR_TUNABLES;
	t.value = stash_tunable_get(&info.tun, d);
	t.min = d->min;
	t.max = d->max;
	return copy_to_user(uarg, &t, sizeof(t)) ? -EFAULT : 0;
}

static long ioc_set_tunable(void __user *uarg)
{
	const struct stash_tunable_desc *d;
	struct stash_ioc_tunable t;
	struct stash_cache *sc;
	char value[24];
	int r;

	if (copy_from_user(&t, uarg, sizeof(t)))
		return -EFAULT;
	r = check_tunable_arg(&t, true);
	if (r)
		return r;
	d = stash_find_tunable(t.name);
	if (!d)
		return -EINVAL;
	snprintf(value, sizeof(value), "%llu", (unsigned long long)t.value);

	mutex_lock(&stash_registry_lock);
	r = stash_lookup_live(&t.cache, &sc);
	if (!r)
		r = stash_set_tunable(sc, d->name, value);
	mutex_unlock(&stash_registry_lock);
	return r;
}

static long stash_ctl_ioctl(struct file *file, unsigned int cmd,
			    unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case STASH_IOC_VERSION:
	case STASH_IOC_LIST:
	case STASH_IOC_STATUS:
	case STASH_IOC_SET_MODE:
	case STASH_IOC_FLUSH:
	case STASH_IOC_INVALIDATE:
	case STASH_IOC_GET_TUNABLE:
	case STASH_IOC_SET_TUNABLE:
	case STASH_IOC_RESET_COUNTERS:
		break;
	default:
		return -ENOTTY;
	}
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;

	switch (cmd) {
	case STASH_IOC_VERSION:
		return ioc_version(uarg);
	case STASH_IOC_LIST:
		return ioc_list(uarg);
	case STASH_IOC_STATUS:
		return ioc_status(uarg);
	case STASH_IOC_SET_MODE:
		return ioc_set_mode(uarg);
	case STASH_IOC_GET_TUNABLE:
		return ioc_get_tunable(uarg);
	case STASH_IOC_SET_TUNABLE:
		return ioc_set_tunable(uarg);
	default:
		return ioc_cmd(cmd, uarg);
	}
}

/* ------------------------------------------------------------------
 * The misc device
 * ------------------------------------------------------------------
 */

static const struct file_operations stash_ctl_fops = {
	.owner = THIS_MODULE,
	.open = nonseekable_open,
	.unlocked_ioctl = stash_ctl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice stash_ctl_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = STASH_CONTROL_NAME,
	.mode = 0600,
	.fops = &stash_ctl_fops,
};

/* The uapi structs have the same layout on every architecture. */
static void __init stash_ctl_check_layout(void)
{
	BUILD_BUG_ON(STASH_NAME_LEN != DM_NAME_LEN);
	BUILD_BUG_ON(sizeof(struct stash_ioc_cache) != STASH_IOC_CACHE_SIZE);
	BUILD_BUG_ON(sizeof(struct stash_ioc_version) != STASH_IOC_VERSION_SIZE);
	BUILD_BUG_ON(sizeof(struct stash_ioc_list_entry) != STASH_IOC_LIST_ENTRY_SIZE);
	BUILD_BUG_ON(sizeof(struct stash_ioc_list) != STASH_IOC_LIST_SIZE);
	BUILD_BUG_ON(sizeof(struct stash_ioc_cmd) != STASH_IOC_CMD_SIZE);
	BUILD_BUG_ON(sizeof(struct stash_ioc_mode) != STASH_IOC_MODE_SIZE);
	BUILD_BUG_ON(sizeof(struct stash_ioc_tunable) != STASH_IOC_TUNABLE_SIZE);
	BUILD_BUG_ON(sizeof(struct stash_ioc_counters) != STASH_IOC_COUNTERS_SIZE);
	BUILD_BUG_ON(sizeof(struct stash_ioc_tunables) != STASH_IOC_TUNABLES_SIZE);
	BUILD_BUG_ON(sizeof(struct stash_ioc_status) != STASH_IOC_STATUS_SIZE);
	BUILD_BUG_ON(offsetof(struct stash_ioc_status, target_sectors) % 8);
	BUILD_BUG_ON(offsetof(struct stash_ioc_tunable, value) % 8);
	BUILD_BUG_ON(offsetof(struct stash_ioc_list, entries) % 8);
	BUILD_BUG_ON(sizeof(struct stash_ioc_hdr) != 8);
	BUILD_BUG_ON(offsetof(struct stash_ioc_status, cache) != 8);
	BUILD_BUG_ON(offsetof(struct stash_ioc_status, checksum_bad) + sizeof(__u64) !=
		     STASH_IOC_STATUS_SIZE);
	/*
	 * A counter added to the core must be added to the uapi struct and
	 * fill_status() as well.  A tunable is a row of
	 * linux/dm-stash-tunables.h and a field of struct stash_tunables.
	 */
	BUILD_BUG_ON(sizeof(struct stash_stats) !=
		     sizeof(struct stash_ioc_counters));
	BUILD_BUG_ON(sizeof(struct stash_tunables) !=
		     STASH_NR_TUNABLES * sizeof(u32));
	/*
	 * The rows with ioc "tunables" fill struct stash_ioc_tunables, one
	 * member each (error_threshold came later: it sits in the status
	 * itself; the later ones are in STASH_IOC_GET_TUNABLE only).
	 */
	BUILD_BUG_ON(sizeof(struct stash_ioc_tunables) !=
		     STASH_IOC_NR_TUNABLES * sizeof(__u64));
}

int __init stash_control_init(void)
{
	stash_ctl_check_layout();
	return misc_register(&stash_ctl_misc);
}

void stash_control_exit(void)
{
	misc_deregister(&stash_ctl_misc);
}
