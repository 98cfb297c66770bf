// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl: finding persistent caches by their superblock and bringing
 * their volumes back (probe, assemble), and the stable origin paths that
 * create records so that assemble can find the origin after a reboot.
 *
 * A persistent cache device starts with two superblock copies (sectors 0
 * and 8, docs/format.md), decoded here by the module's own pure decoder
 * (kmod/stash-format.c).  The newest valid copy names the volume, its
 * origin (path and size), mode and options: assemble recreates exactly
 * the table "stashctl create" made, without "format", so the module loads
 * the cache as it is (dirty blocks included) or refuses it.
 */
#define _GNU_SOURCE		/* O_DIRECT */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <linux/fs.h>

#include "stashctl.h"
#include "stash-format.h"

/*
 * ---- Reading a device ----
 */

static int dev_size(int fd, uint64_t *sectors)
{
	uint64_t bytes;

	if (ioctl(fd, BLKGETSIZE64, &bytes))
		return -1;
	*sectors = bytes >> 9;
	return 0;
}

/*
 * The newest valid superblock of @path.  Returns 0 (a dm-stash cache
 * device), 1 (not one: *why says what the first copy looked like), or -1
 * (cannot open or read it; errno).  O_DIRECT: the module writes the
 * superblock around the page cache.
 */
static int read_sb(const char *path, struct stash_sb *sb,
		   struct stash_sb_ident *id, uint64_t *size, const char **why)
{
	struct stash_sb copy;
	const char *w = NULL;
	bool found = false;
	void *buf = NULL;
	int fd, k, r = -1, err;

	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (dev_size(fd, size))
		goto out;
	*why = "too small for a dm-stash cache";
	if (*size < STASH_MD_START) {
		r = 1;
		goto out;
	}
	if (posix_memalign(&buf, STASH_MD_BLOCK_BYTES, 2 * STASH_MD_BLOCK_BYTES))
		goto out;
	if (pread(fd, buf, 2 * STASH_MD_BLOCK_BYTES, 0) != 2 * STASH_MD_BLOCK_BYTES) {
		if (!errno)
			errno = EIO;
		goto out;
	}
	for (k = 0; k < 2; k++) {
		const char *b = (const char *)buf + k * STASH_MD_BLOCK_BYTES;

		if (stash_sb_decode(b, &copy, &w)) {
			if (!k)
				*why = w;
			continue;
		}
		if (stash_sb_preferred(&copy, found ? sb : NULL)) {
			*sb = copy;
			stash_sb_decode_ident(b, id);
			found = true;
		}
	}
	r = found ? 0 : 1;
out:
	err = errno;
	free(buf);
	close(fd);
	errno = err;
	return r;
}

/* The sysfs name of a block device ("sdb1", "dm-3"), or -1. */
static int sysfs_name(dev_t rdev, char *buf, size_t len)
{
	char link[64], target[PATH_MAX];
	const char *slash;
	ssize_t n;

	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(rdev),
		 minor(rdev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -1;
	target[n] = '\0';
	slash = strrchr(target, '/');
	slash = slash ? slash + 1 : target;
	if (strlen(slash) >= len)
		return -1;
	memcpy(buf, slash, strlen(slash) + 1);
	return 0;
}

/* One line of a sysfs file, without its newline, or -1. */
static int sysfs_read(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	FILE *f;
	int r = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fgets(buf, (int)len, f)) {
		buf[strcspn(buf, "\n")] = '\0';
		r = 0;
	}
	fclose(f);
	return r;
}

/* The device-mapper name of @rdev if it is a dm device, else -1. */
static int dm_name_of(dev_t rdev, char *buf, size_t len)
{
	char dir[64];

	snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u/dm", major(rdev),
		 minor(rdev));
	return sysfs_read(dir, "name", buf, len);
}

/* Whether @rdev is a device-mapper device whose (first) target is stash. */
static bool is_stash_volume(dev_t rdev)
{
	char name[STASH_SB_NAME_BYTES];
	struct dm_dev_info info;

	if (dm_name_of(rdev, name, sizeof(name)))
		return false;
	return !dm_device_info(name, &info) && info.exists &&
	       !strcmp(info.target, STASH_TARGET_NAME);
}

/*
 * ---- Stable names ----
 */

static bool same_dev(const char *path, dev_t rdev)
{
	struct stat st;

	return !stat(path, &st) && S_ISBLK(st.st_mode) && st.st_rdev == rdev;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first entry of @dir (in name order) that is @rdev, into @buf. */
static bool find_in_dir(const char *dir, dev_t rdev, char *buf, size_t len)
{
	char **names = NULL, path[PATH_MAX];
	bool found = false;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return false;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **more;

			cap = cap ? 2 * cap : 32;
			more = realloc(names, cap * sizeof(*names));
			if (!more)
				break;
			names = more;
		}
		names[n] = strdup(de->d_name);
		if (names[n])
			n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (!found && same_dev(path, rdev) &&
		    strlen(path) < len && stash_sb_path_ok(path)) {
			snprintf(buf, len, "%s", path);
			found = true;
		}
		free(names[i]);
	}
	free(names);
	return found;
}

/*
 * A name for the block device @path that survives reboots, into @buf:
 * @path itself if it is one already (/dev/mapper/..., /dev/disk/by-...),
 * else /dev/mapper/NAME for a device-mapper device, else the first match
 * in /dev/disk/by-id, by-partuuid, by-path, by-uuid; else @path.
 */
const char *stable_dev_path(const char *path, char *buf, size_t len)
{
	static const char *const dirs[] = {
		"/dev/disk/by-id", "/dev/disk/by-partuuid", "/dev/disk/by-path",
		"/dev/disk/by-uuid",
	};
	char name[STASH_SB_NAME_BYTES], p[PATH_MAX];
	struct stat st;
	size_t i;

	if (!strncmp(path, "/dev/mapper/", 12) || !strncmp(path, "/dev/disk/by-", 13) ||
	    stat(path, &st) || !S_ISBLK(st.st_mode))
		return path;
	if (!dm_name_of(st.st_rdev, name, sizeof(name))) {
		snprintf(p, sizeof(p), "/dev/mapper/%s", name);
		if (same_dev(p, st.st_rdev) && strlen(p) < len && stash_sb_path_ok(p)) {
			snprintf(buf, len, "%s", p);
			return buf;
		}
	}
	for (i = 0; i < ARRAY_SIZE(dirs); i++)
		if (find_in_dir(dirs[i], st.st_rdev, buf, len))
			return buf;
	return path;
}

static void uuid_hex(const u8 *uuid, char *buf)
{
	int i;

	for (i = 0; i < 16; i++)
		snprintf(buf + 2 * i, 3, "%02x", uuid[i]);
}

/*
 * ---- probe ----
 */

int cmd_probe(int argc, char **argv)
{
	char uuid[33];
	struct stash_sb_ident id;
	struct stash_sb sb;
	const char *why = NULL, *dev;
	bool export = false;
	uint64_t size;
	struct stat st;
	int i, r;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--export")) {
			export = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			print_command_help(stdout, find_command("probe"));
			return EXIT_OK;
		} else {
			return usage_error("probe", "unknown option '%s'", argv[i]);
		}
	}
	if (argc - i != 1)
		return usage_error("probe", "give one device");
	dev = argv[i];
	if (stat(dev, &st) || !S_ISBLK(st.st_mode)) {
		if (!export)
			errorf("%s: not a block device", dev);
		return EXIT_NOT_FOUND;
	}
	/* Reading a volume would go through its cache: never a cache device. */
	if (is_stash_volume(st.st_rdev)) {
		if (!export)
			printf("%s: a dm-stash volume, not a cache device\n", dev);
		return EXIT_FAILED;
	}
	r = read_sb(dev, &sb, &id, &size, &why);
	if (r < 0) {
		if (!export)
			errorf("%s: cannot read: %s", dev, strerror(errno));
		return EXIT_FAILED;
	}
	if (r) {
		if (!export)
			printf("%s: not a dm-stash cache device (%s)\n", dev, why);
		return EXIT_FAILED;
	}
	uuid_hex(sb.uuid, uuid);
	if (export) {
		printf("STASH_CACHE=1\nSTASH_CACHE_UUID=%s\n", uuid);
		return EXIT_OK;
	}
	printf("%s: dm-stash cache device %s: volume %s, origin %s (%llu"
	       " sectors), %s, block size %u sectors, %u blocks, %s shutdown\n",
	       dev, uuid, id.name[0] ? id.name : "(not recorded)",
	       id.origin_path[0] ? id.origin_path : "(not recorded)",
	       (unsigned long long)id.origin_dev_sectors, mode_name(sb.mode), sb.geo.block_sectors,
	       sb.geo.nr_cblocks, sb.flags & STASH_SB_FLAG_CLEAN ? "clean" : "unclean");
	if (sb.flags & STASH_SB_FLAG_NEEDS_CHECK)
		printf("%s: needs check: a metadata commit failed while it was in use "
		       "('%s check %s')\n", dev, progname, dev);
	return EXIT_OK;
}

/*
 * ---- assemble ----
 */

/*
 * --only-listed: caches whose uuid is not in this file (one uuid a line,
 * as "probe" prints it; '#' starts a comment) are left alone.  The udev
 * rule uses it: a device that merely carries a dm-stash superblock (a
 * disk from another machine, a crafted USB stick) must not get a volume
 * that writes its dirty blocks back over a local disk.
 */
#define STASH_ALLOW_FILE "/etc/dm-stash/assemble.allow"

static const char *allow_file;

static bool uuid_listed(const char *uuid)
{
	char line[256], *p, *e;
	bool found = false;
	FILE *f;

	f = fopen(allow_file, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "#\n")] = '\0';
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		for (e = p + strlen(p); e > p && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		found = !strcasecmp(p, uuid);
	}
	fclose(f);
	return found;
}

/* Whether some stash volume holds @cache (sysfs holders of the cache). */
static bool held_by_stash(dev_t cache, char *name, size_t len)
{
	char sname[64], dir[128], dmdir[512];
	struct dirent *de;
	bool found = false;
	DIR *d;

	if (sysfs_name(cache, sname, sizeof(sname)))
		return false;
	snprintf(dir, sizeof(dir), "/sys/class/block/%s/holders", sname);
	d = opendir(dir);
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		struct dm_dev_info info;

		if (de->d_name[0] == '.' ||
		    snprintf(dmdir, sizeof(dmdir), "%s/%s/dm", dir,
			     de->d_name) >= (int)sizeof(dmdir) ||
		    sysfs_read(dmdir, "name", name, len))
			continue;
		found = !dm_device_info(name, &info) && info.exists &&
			!strcmp(info.target, STASH_TARGET_NAME);
	}
	closedir(d);
	return found;
}

/*
 * Assemble the volume whose cache is @cache.  @quiet_not_cache: say
 * nothing about a device that is not a cache (--all).  Returns 0 (created
 * or already there), -1 (not a cache device), or an exit code.
 */
static int assemble_one(const char *cache, bool quiet_not_cache, bool dry_run)
{
	char holder[STASH_SB_NAME_BYTES], params[2048], opts[STASH_SB_OPTIONS_BYTES];
	const char *why = NULL, *p;
	struct stash_sb_ident id;
	struct dm_dev_info info;
	uint64_t size, osize;
	struct stash_sb sb;
	struct stat st, ost;
	unsigned int nopts = 0;
	int r, fd;

	if (stat(cache, &st) || !S_ISBLK(st.st_mode)) {
		errorf("%s: not a block device", cache);
		return EXIT_NOT_FOUND;
	}
	if (is_stash_volume(st.st_rdev)) {
		if (!quiet_not_cache)
			errorf("%s is a dm-stash volume, not a cache device", cache);
		return -1;
	}
	r = read_sb(cache, &sb, &id, &size, &why);
	if (r < 0) {
		if (quiet_not_cache)
			return -1;
		errorf("%s: cannot read: %s", cache, strerror(errno));
		return EXIT_FAILED;
	}
	if (r) {
		if (!quiet_not_cache)
			errorf("%s: not a dm-stash cache device (%s)", cache, why);
		return -1;
	}
	if (sb.flags & STASH_SB_FLAG_NEEDS_CHECK) {
		errorf("%s: a metadata commit failed while this cache was in use: "
		       "the kernel refuses it until '%s check %s' has seen it "
		       "(stashctl(8), check): left alone", cache, progname, cache);
		return EXIT_MD_CORRUPT;
	}
	if (allow_file) {
		char uuid[33];

		uuid_hex(sb.uuid, uuid);
		if (!uuid_listed(uuid)) {
			errorf("%s: dm-stash cache %s (volume %s) is not listed in %s: "
			       "left alone", cache, uuid,
			       id.name[0] ? id.name : "?", allow_file);
			return EXIT_FAILED;
		}
	}
	/* Its volume exists (the origin of a volume is held too: not here). */
	if (held_by_stash(st.st_rdev, holder, sizeof(holder))) {
		printf("%s: in use by dm-stash volume %s already, skipped\n",
		       cache, holder);
		return 0;
	}
	if (!id.name[0] || !id.origin_path[0]) {
		errorf("%s: dm-stash cache without a recorded volume name or origin "
		       "(made by an older dm-stash); recreate the volume with "
		       "'stashctl create' naming the same origin: left untouched",
		       cache);
		return EXIT_FAILED;
	}
	if (size != sb.geo.cache_sectors) {
		errorf("%s: cache device of volume %s is %" PRIu64 " sectors, it "
		       "was formatted at %" PRIu64 ": left untouched", cache,
		       id.name, size, (uint64_t)sb.geo.cache_sectors);
		return EXIT_FAILED;
	}
	r = dm_device_info(id.name, &info);
	if (r)
		return r;
	if (info.exists) {
		errorf("%s: volume %s: a device-mapper device of that name exists "
		       "already (%s), and it does not use this cache: left "
		       "untouched", cache, id.name,
		       info.target[0] ? info.target : "no table");
		return EXIT_FAILED;
	}
	fd = open(id.origin_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &ost) || !S_ISBLK(ost.st_mode) ||
	    dev_size(fd, &osize)) {
		errorf("%s: volume %s: origin %s %s: cache left untouched",
		       cache, id.name, id.origin_path,
		       fd < 0 ? "not found" : "is not a readable block device");
		if (fd >= 0)
			close(fd);
		return EXIT_NOT_FOUND;
	}
	close(fd);
	if (ost.st_rdev == st.st_rdev) {
		errorf("%s: volume %s: the recorded origin %s is this cache "
		       "device: left untouched", cache, id.name, id.origin_path);
		return EXIT_FAILED;
	}
	if (osize != id.origin_dev_sectors || osize < sb.geo.origin_sectors) {
		errorf("%s: volume %s: origin %s is %" PRIu64 " sectors, it was %"
		       PRIu64 " when the cache last recorded it: wrong device? "
		       "cache left untouched", cache, id.name, id.origin_path,
		       osize, (uint64_t)id.origin_dev_sectors);
		return EXIT_FAILED;
	}

	snprintf(opts, sizeof(opts), "%s", id.options);
	for (p = opts; *p; p++)
		if (*p != ' ' && (p == opts || p[-1] == ' '))
			nopts++;
	snprintf(params, sizeof(params), "%s %s %s %u%s%s", id.origin_path, cache,
		 mode_name(sb.mode), nopts, nopts ? " " : "", opts);
	if (dry_run) {
		printf("%s: would create %s: 0 %" PRIu64 " %s %s\n", cache, id.name,
		       (uint64_t)sb.geo.origin_sectors, STASH_TARGET_NAME, params);
		return 0;
	}
	r = dm_create_device(id.name, sb.geo.origin_sectors, params,
			     "the module refused the cache as it is on disk");
	if (r)
		return r;
	printf("assembled /dev/mapper/%s: %s over %s, cache %s (%s shutdown)\n",
	       id.name, mode_name(sb.mode), id.origin_path, cache,
	       sb.flags & STASH_SB_FLAG_CLEAN ? "clean" : "unclean");
	return 0;
}

int cmd_assemble(int argc, char **argv)
{
	bool all = false, dry_run = false;
	int i, r, rc = EXIT_OK, found = 0;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--all") || !strcmp(argv[i], "-a")) {
			all = true;
		} else if (!strcmp(argv[i], "--dry-run") || !strcmp(argv[i], "-n")) {
			dry_run = true;
		} else if (!strcmp(argv[i], "--only-listed")) {
			allow_file = STASH_ALLOW_FILE;
		} else if (!strncmp(argv[i], "--only-listed=", 14) && argv[i][14]) {
			allow_file = argv[i] + 14;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			print_command_help(stdout, find_command("assemble"));
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else {
			return usage_error("assemble", "unknown option '%s'", argv[i]);
		}
	}
	if (all == (i < argc))
		return usage_error("assemble", "give --all or the cache devices");

	if (!all) {
		for (; i < argc; i++) {
			r = assemble_one(argv[i], false, dry_run);
			if (r < 0)
				r = EXIT_NOT_FOUND;
			if (r && rc == EXIT_OK)
				rc = r;
		}
		return rc;
	}

	/* Every block device the kernel knows, in name order. */
	struct dirent **list;
	int n = scandir("/sys/class/block", &list, NULL, alphasort);

	if (n < 0) {
		errorf("cannot list /sys/class/block: %s", strerror(errno));
		return EXIT_FAILED;
	}
	for (i = 0; i < n; i++) {
		char dir[PATH_MAX], dev[PATH_MAX], val[64];
		unsigned int ma, mi;
		struct stat st;

		if (list[i]->d_name[0] == '.')
			goto next;
		snprintf(dir, sizeof(dir), "/sys/class/block/%s", list[i]->d_name);
		/* Empty devices (unbound loop, nbd) and unreadable ones: skip. */
		if (sysfs_read(dir, "size", val, sizeof(val)) ||
		    strtoull(val, NULL, 10) < STASH_MD_START ||
		    sysfs_read(dir, "dev", val, sizeof(val)) ||
		    sscanf(val, "%u:%u", &ma, &mi) != 2)
			goto next;
		/* A suspended device-mapper device would hang the read. */
		if (!sysfs_read(dir, "dm/suspended", val, sizeof(val)) &&
		    strcmp(val, "0"))
			goto next;
		snprintf(dev, sizeof(dev), "/dev/%s", list[i]->d_name);
		if (stat(dev, &st) || !S_ISBLK(st.st_mode) ||
		    st.st_rdev != makedev(ma, mi))
			goto next;
		r = assemble_one(dev, true, dry_run);
		if (r >= 0)
			found++;
		if (r > 0 && rc == EXIT_OK)
			rc = r;
next:
		free(list[i]);
	}
	free(list);
	if (!found)
		printf("no dm-stash cache devices found\n");
	return rc;
}
