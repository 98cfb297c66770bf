// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl: the subcommands.  Each takes (argc, argv) with argv[0] its own
 * name, parses its options with getopt_long (--help everywhere), checks
 * everything it can before changing anything, and returns an exit code.
 */
#define _GNU_SOURCE		/* getopt_long permutes options and operands */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>

#include "stashctl.h"

#define MODULE_VERSION_PATH "/sys/module/dm_stash/version"

/* ------------------------------------------------------------------
 * Option parsing
 * ------------------------------------------------------------------
 */

enum { OPT_HELP = 'h' };

struct opts {
	const char *cmd;
	int argc;
	char **argv;
	const char *shortopts;
	const struct option *longopts;
};

/*
 * The next option, -1 at the end of them; on --help prints the help and
 * returns -2 (the caller returns EXIT_OK); on a bad option says so and
 * returns -3 (the caller returns EXIT_USAGE).
 */
static int next_opt(struct opts *o)
{
	int c;

	opterr = 0;
	c = getopt_long(o->argc, o->argv, o->shortopts, o->longopts, NULL);
	if (c == OPT_HELP) {
		print_command_help(stdout, find_command(o->cmd));
		return -2;
	}
	if (c == '?' || c == ':') {
		const char *arg = o->argv[optind - 1];

		if (c == ':')
			usage_error(o->cmd, "option '%s' needs a value", arg);
		else if (optopt && strncmp(arg, "--", 2))
			usage_error(o->cmd, "unknown option '-%c'", optopt);
		else
			usage_error(o->cmd, "unknown option '%s'", arg);
		return -3;
	}
	return c;
}

static int opt_exit(int c)
{
	return c == -2 ? EXIT_OK : EXIT_USAGE;
}

static void opts_init(struct opts *o, int argc, char **argv,
		      const char *shortopts, const struct option *longopts)
{
	o->cmd = argv[0];
	o->argc = argc;
	o->argv = argv;
	o->shortopts = shortopts;
	o->longopts = longopts;
	optind = 1;
}

/* Exactly @min..@max operands after the options. */
static int operands(struct opts *o, int min, int max)
{
	int n = o->argc - optind;

	if (n < min)
		return usage_error(o->cmd, "missing argument");
	if (n > max)
		return usage_error(o->cmd, "unexpected argument '%s'",
				   o->argv[optind + max]);
	return 0;
}

/* ------------------------------------------------------------------
 * Waiting for a flush
 * ------------------------------------------------------------------
 */

static void sleep_seconds(double s)
{
	struct timespec ts = {
		.tv_sec = (time_t)s,
		.tv_nsec = (long)((s - (double)(time_t)s) * 1e9),
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * Wait until cache @name has no dirty block, showing progress.  A flush
 * must have been requested.  Gives up when writeback keeps failing; ends
 * early (successfully) when the drain pass is over but new writes dirtied
 * blocks again.  Returns an exit code.
 */
static int wait_flush(const char *name)
{
	const double poll = 0.2, stall = 10.0, settle = 2.0;
	struct stash_ioc_status st;
	struct progress p;
	uint64_t errors0, last_dirty;
	double last_progress;
	bool rekicked = false;
	char b1[32];
	int r;

	r = ctl_status(name, &st);
	if (r)
		return r;
	if (!st.dirty_blocks) {
		printf("%s: no dirty blocks\n", name);
		return EXIT_OK;
	}
	errors0 = st.counters.writeback_errors;
	last_dirty = st.dirty_blocks;
	last_progress = now_seconds();
	progress_start(&p, st.dirty_blocks, (uint64_t)st.block_sectors * 512);
	for (;;) {
		progress_update(&p, st.dirty_blocks, st.state);
		if (!st.dirty_blocks)
			break;
		sleep_seconds(poll);
		r = ctl_status(name, &st);
		if (r) {
			progress_end(&p);
			return r;
		}
		if (st.dirty_blocks < last_dirty)
			last_progress = now_seconds();
		last_dirty = st.dirty_blocks;
		if (!st.dirty_blocks)
			continue;
		if (st.counters.writeback_errors > errors0 &&
		    now_seconds() - last_progress > stall) {
			progress_end(&p);
			errorf("%s: writeback is failing (%" PRIu64 " failed block "
			       "writes); %" PRIu64 " blocks stay dirty on the cache. "
			       "Check the origin device ('dmesg'), then flush again",
			       name, (uint64_t)(st.counters.writeback_errors - errors0),
			       (uint64_t)st.dirty_blocks);
			return EXIT_FAILED;
		}
		if (strcmp(st.state, "idle") ||
		    now_seconds() - last_progress < settle)
			continue;
		/* The pass is over and blocks are dirty: new writes. */
		if (!rekicked) {
			rekicked = true;
			last_progress = now_seconds();
			r = ctl_cmd(name, STASH_IOC_FLUSH);
			if (r) {
				progress_end(&p);
				return r;
			}
			continue;
		}
		progress_end(&p);
		printf("%s: flushed; %" PRIu64 " blocks (%s) were dirtied again by "
		       "new writes meanwhile\n", name, (uint64_t)st.dirty_blocks,
		       fmt_bytes(b1, sizeof(b1),
				 st.dirty_blocks * st.block_sectors * 512));
		return EXIT_OK;
	}
	progress_end(&p);
	printf("%s: flushed, no dirty blocks\n", name);
	return EXIT_OK;
}

/* ------------------------------------------------------------------
 * create
 * ------------------------------------------------------------------
 */

/* SIZE in sectors: a number of sectors, or with K, KiB, M, MiB (or s). */
static int parse_block_size(const char *s, uint64_t *sectors)
{
	unsigned long long v;
	uint64_t mult = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (!*end || !strcmp(end, "s"))
		mult = 1;
	else if (!strcmp(end, "K") || !strcmp(end, "k") || !strcmp(end, "KiB"))
		mult = 2;
	else if (!strcmp(end, "M") || !strcmp(end, "m") || !strcmp(end, "MiB"))
		mult = 2048;
	if (!mult || v > UINT32_MAX)
		return -1;
	*sectors = v * mult;
	return 0;
}

static bool has_space(const char *s)
{
	return strpbrk(s, " \t\n\r\v\f") != NULL;
}

/* Check that @path is a block device; its size in sectors into *@sectors. */
static int block_device(const char *cmd, const char *what, const char *path,
			uint64_t *sectors)
{
	uint64_t bytes;
	struct stat st;
	int fd;

	if (has_space(path))
		return usage_error(cmd, "%s '%s': paths with white space cannot "
				   "go into a table line", what, path);
	if (stat(path, &st)) {
		errorf("%s %s: %s", what, path, strerror(errno));
		return errno == EACCES ? EXIT_PERM : EXIT_NOT_FOUND;
	}
	if (!S_ISBLK(st.st_mode))
		return usage_error(cmd, "%s %s is not a block device", what, path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errorf("cannot open %s %s: %s", what, path, strerror(errno));
		return errno == EACCES || errno == EPERM ? EXIT_PERM : EXIT_FAILED;
	}
	if (ioctl(fd, BLKGETSIZE64, &bytes)) {
		errorf("cannot get the size of %s %s: %s", what, path,
		       strerror(errno));
		close(fd);
		return EXIT_FAILED;
	}
	close(fd);
	*sectors = bytes / 512;
	return 0;
}

/* The names of the tunables built in, for messages: " name name ...". */
#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) " " #name
static const char tunable_list[] =
#include <linux/dm-stash-tunables.h>
	;
#undef STASH_TUNABLE

static void append(char *buf, size_t len, const char *s)
{
	size_t n = strlen(buf);

	snprintf(buf + n, len - n, "%s%s", n ? " " : "", s);
}

int cmd_create(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "origin", required_argument, NULL, 'o' },
		{ "cache", required_argument, NULL, 'c' },
		{ "mode", required_argument, NULL, 'm' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "volatile", no_argument, NULL, 'V' },
		{ "format", no_argument, NULL, 'F' },
		{ "checksum", no_argument, NULL, 'K' },
		{ "set", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *origin = NULL, *cache = NULL, *mode = NULL, *name;
	bool is_volatile = false, format = false, checksum = false;
	uint64_t block = 0, origin_sectors, cache_sectors, v;
	char opts[1024] = "", params[4096], num[32], *eq, stable[512];
	const struct tunable *tun;
	struct stash_ioc_status st;
	struct dm_dev_info di;
	struct stat so, sc;
	unsigned int nopts = 0, seen = 0;
	char size[32], csize[32], bsize[32];
	uint32_t m;
	struct opts o;
	int c, r, t;

	opts_init(&o, argc, argv, ":o:c:m:b:s:h", longopts);
	while ((c = next_opt(&o)) != -1) {
		switch (c) {
		case 'o':
			origin = optarg;
			break;
		case 'c':
			cache = optarg;
			break;
		case 'm':
			mode = optarg;
			break;
		case 'b':
			if (parse_block_size(optarg, &block))
				return usage_error(o.cmd, "bad block size '%s': "
						   "give sectors, or KiB/MiB "
						   "with a K or M suffix", optarg);
			break;
		case 'V':
			is_volatile = true;
			break;
		case 'F':
			format = true;
			break;
		case 'K':
			checksum = true;
			break;
		case 's':
			eq = strchr(optarg, '=');
			if (!eq)
				return usage_error(o.cmd, "--set takes KEY=VALUE, "
						   "not '%s'", optarg);
			*eq = '\0';
			tun = find_tunable(optarg);
			if (!tun)
				return usage_error(o.cmd, "unknown tunable '%s' "
						   "(one of:%s)", optarg,
						   tunable_list);
			t = (int)(tun - tunables);
			if (parse_u64(eq + 1, &v) || v > UINT32_MAX)
				return usage_error(o.cmd, "bad value '%s' for %s: "
						   "a whole number", eq + 1, optarg);
			snprintf(num, sizeof(num), "%" PRIu64, v);
			if (seen & (1u << t))
				return usage_error(o.cmd, "tunable %s given twice",
						   optarg);
			seen |= 1u << t;
			append(opts, sizeof(opts), optarg);
			append(opts, sizeof(opts), num);
			nopts += 2;
			break;
		default:
			return opt_exit(c);
		}
	}
	r = operands(&o, 1, 1);
	if (r)
		return r;
	name = argv[optind];
	if (!origin || !cache || !mode)
		return usage_error(o.cmd, "--origin, --cache and --mode are needed");
	if (mode_from_name(mode, &m))
		return usage_error(o.cmd, "unknown mode '%s' (writearound, "
				   "writethrough or writeback)", mode);
	if (!*name || strlen(name) >= STASH_NAME_LEN || strchr(name, '/'))
		return usage_error(o.cmd, "bad name '%s': 1..%d characters, no '/'",
				   name, STASH_NAME_LEN - 1);
	if (block && (block < 8 || block > 2048 || (block & (block - 1))))
		return usage_error(o.cmd, "bad block size: it must be a power of "
				   "two from 8 to 2048 sectors (4 KiB to 1 MiB)");

	r = block_device(o.cmd, "origin", origin, &origin_sectors);
	if (!r)
		r = block_device(o.cmd, "cache device", cache, &cache_sectors);
	if (r)
		return r;
	if (!stat(origin, &so) && !stat(cache, &sc) && so.st_rdev == sc.st_rdev)
		return usage_error(o.cmd, "the origin and the cache must be "
				   "different devices");
	if (!origin_sectors) {
		errorf("origin %s is empty", origin);
		return EXIT_FAILED;
	}
	if (!module_loaded()) {
		errorf("the dm-stash module is not loaded; load it with "
		       "'modprobe dm-stash' (or 'insmod dm-stash.ko') and try again");
		return EXIT_NO_MODULE;
	}
	r = dm_device_info(name, &di);
	if (r)
		return r;
	if (di.exists) {
		errorf("a device-mapper device named %s exists already", name);
		return EXIT_FAILED;
	}

	if (block) {
		snprintf(num, sizeof(num), "%" PRIu64, block);
		append(opts, sizeof(opts), "block_size");
		append(opts, sizeof(opts), num);
		nopts += 2;
	}
	if (is_volatile) {
		append(opts, sizeof(opts), "volatile");
		nopts++;
	}
	if (format) {
		append(opts, sizeof(opts), "format");
		nopts++;
	}
	if (checksum) {
		append(opts, sizeof(opts), "checksum");
		nopts++;
	}
	/* A persistent cache records the origin path: one that lasts. */
	if (!is_volatile)
		origin = stable_dev_path(origin, stable, sizeof(stable));
	/* The option count even when it is 0: it is never ambiguous. */
	snprintf(params, sizeof(params), "%s %s %s %u%s%s", origin, cache, mode,
		 nopts, nopts ? " " : "", opts);

	r = dm_create_device(name, origin_sectors, params,
			     format ? NULL : is_volatile ?
			     "a volatile cache refuses a cache device that holds "
			     "a dm-stash cache: --format discards that cache" :
			     "a cache device that holds other data, or the cache "
			     "of another origin, is refused: --format lets "
			     "dm-stash overwrite it");
	if (r)
		return r;
	r = ctl_status(name, &st);
	if (r)
		return r;
	printf("created /dev/mapper/%s (%u:%u): %s, %s over %s, cache %s %s in "
	       "%llu blocks of %s%s%s\n", name, st.major, st.minor, mode,
	       fmt_bytes(size, sizeof(size), st.target_sectors * 512), origin,
	       cache, fmt_bytes(csize, sizeof(csize),
				st.cache_blocks * st.block_sectors * 512),
	       (unsigned long long)st.cache_blocks,
	       fmt_bytes(bsize, sizeof(bsize), (uint64_t)st.block_sectors * 512),
	       st.flags & STASH_IOC_F_VOLATILE ? ", volatile" : "",
	       st.flags & STASH_IOC_F_CHECKSUM ? ", checksums" : "");
	return EXIT_OK;
}

/* ------------------------------------------------------------------
 * remove
 * ------------------------------------------------------------------
 */

int cmd_remove(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "no-flush", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct stash_ioc_status st;
	struct dm_dev_info di;
	bool flush = true;
	const char *name;
	struct opts o;
	int c, r;

	opts_init(&o, argc, argv, ":h", longopts);
	while ((c = next_opt(&o)) != -1) {
		if (c != 'n')
			return opt_exit(c);
		flush = false;
	}
	r = operands(&o, 1, 1);
	if (r)
		return r;
	name = argv[optind];

	r = dm_device_info(name, &di);
	if (r)
		return r;
	if (!di.exists) {
		errorf("no device-mapper device named %s", name);
		return EXIT_NOT_FOUND;
	}
	if (strcmp(di.target, STASH_TARGET_NAME)) {
		errorf("%s is not a dm-stash device (its target is '%s'); use "
		       "dmsetup for it", name, di.target);
		return EXIT_NOT_FOUND;
	}
	r = ctl_status(name, &st);
	if (r)
		return r;
	if (di.open_count > 0) {
		errorf("%s is busy: it is open %d time%s (mounted, or in use by "
		       "a program or another device); close it and try again",
		       name, di.open_count, di.open_count == 1 ? "" : "s");
		return EXIT_FAILED;
	}
	if (flush) {
		if (st.dirty_blocks) {
			r = ctl_cmd(name, STASH_IOC_FLUSH);
			if (!r)
				r = wait_flush(name);
			if (r)
				return r;
		}
	} else if (st.dirty_blocks) {
		char b1[32];

		printf("%s: %llu dirty blocks (%s) not written back yet\n", name,
		       (unsigned long long)st.dirty_blocks,
		       fmt_bytes(b1, sizeof(b1), st.dirty_blocks *
				 st.block_sectors * 512));
		if (!(st.flags & STASH_IOC_F_METADATA))
			printf("%s: the cache is volatile: the kernel writes "
			       "them back when it suspends the device for "
			       "removal, so the removal waits for that\n", name);
		else
			printf("%s: they stay on the cache device (its metadata "
			       "records them); the origin is not up to date until "
			       "the cache is created again over the same devices "
			       "and flushed\n", name);
	}
	r = dm_remove_device(name);
	if (r)
		return r;
	printf("removed %s\n", name);
	return EXIT_OK;
}

/* ------------------------------------------------------------------
 * list, status, stats
 * ------------------------------------------------------------------
 */

int cmd_list(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct stash_ioc_list_entry *e;
	struct stash_ioc_status st;
	bool json = false, first = true;
	uint32_t n, i;
	char b1[32], b2[32], b3[32], dev[24];
	struct opts o;
	int c, r;

	opts_init(&o, argc, argv, ":h", longopts);
	while ((c = next_opt(&o)) != -1) {
		if (c != 'j')
			return opt_exit(c);
		json = true;
	}
	r = operands(&o, 0, 0);
	if (!r)
		r = ctl_list(&e, &n);
	if (r)
		return r;

	if (json)
		printf("[");
	else if (n)
		printf("%-20s %-9s %-12s %-9s %10s %7s %7s\n", "NAME", "DEV", "MODE",
		       "STATE", "CACHE", "USED", "DIRTY");
	for (i = 0; i < n; i++) {
		r = ctl_status_dev(e[i].major, e[i].minor, &st);
		if (r == EXIT_NOT_FOUND)
			continue;	/* removed meanwhile */
		if (r) {
			free(e);
			return r;
		}
		if (json) {
			printf("%s\n", first ? "" : ",");
			print_status_json(stdout, &st, true);
			first = false;
			continue;
		}
		snprintf(dev, sizeof(dev), "%u:%u", st.major, st.minor);
		printf("%-20s %-9s %-12s %-9s %10s %7s %7s\n", st.name, dev,
		       mode_name(st.mode), st.state,
		       fmt_bytes(b1, sizeof(b1), st.cache_blocks * st.block_sectors * 512),
		       fmt_pct(b2, sizeof(b2), st.used_blocks, st.cache_blocks),
		       fmt_pct(b3, sizeof(b3), st.dirty_blocks, st.cache_blocks));
	}
	if (json)
		printf("]\n");
	else if (!n)
		printf("no stash devices\n");
	free(e);
	return EXIT_OK;
}

/* The tunables built in: a table, their names, or JSON. */
int cmd_tunables(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "names", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	bool names = false, json = false;
	struct opts o;
	size_t i;
	int c, r;

	opts_init(&o, argc, argv, ":h", longopts);
	while ((c = next_opt(&o)) != -1) {
		if (c == 'n')
			names = true;
		else if (c == 'j')
			json = true;
		else
			return opt_exit(c);
	}
	r = operands(&o, 0, 0);
	if (r)
		return r;
	if (names && json)
		return usage_error(o.cmd, "--names or --json, not both");
	if (json) {
		print_tunables_json(stdout);
	} else if (names) {
		for (i = 0; i < ARRAY_SIZE(tunables); i++)
			printf("%s\n", tunables[i].name);
	} else {
		print_tunables(stdout);
	}
	return EXIT_OK;
}

int cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "watch", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct stash_ioc_status st, prev;
	bool json = false, tty = isatty(STDOUT_FILENO);
	double watch = 0, t, tprev = 0;
	const char *name;
	struct opts o;
	char *end;
	int c, r;

	opts_init(&o, argc, argv, ":w:h", longopts);
	while ((c = next_opt(&o)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'w':
			errno = 0;
			watch = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(watch >= 0.1) ||
			    watch > 86400)
				return usage_error(o.cmd, "bad interval '%s': "
						   "seconds, 0.1 to 86400", optarg);
			break;
		default:
			return opt_exit(c);
		}
	}
	r = operands(&o, 1, 1);
	if (r)
		return r;
	name = argv[optind];

	r = ctl_status(name, &st);
	if (r)
		return r;
	if (!watch) {
		if (json)
			print_status_json(stdout, &st, false);
		else
			print_status(stdout, &st, NULL, 0);
		return EXIT_OK;
	}
	for (;;) {
		t = now_seconds();
		if (json) {
			print_status_json(stdout, &st, true);
		} else {
			time_t wall = time(NULL);
			char when[64];

			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
				 localtime(&wall));
			if (tty)
				printf("\033[H\033[J");
			printf("every %gs: %s status %s    %s\n\n", watch, progname,
			       name, when);
			print_status(stdout, &st, tprev ? &prev : NULL, t - tprev);
			if (!tty)
				printf("\n");
		}
		fflush(stdout);
		prev = st;
		tprev = t;
		sleep_seconds(watch - (now_seconds() - t));
		r = ctl_status(name, &st);
		if (r)
			return r;
	}
}

int cmd_stats(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "reset", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct stash_ioc_status st;
	bool json = false, reset = false;
	const char *name;
	struct opts o;
	int c, r;

	opts_init(&o, argc, argv, ":h", longopts);
	while ((c = next_opt(&o)) != -1) {
		if (c == 'r')
			reset = true;
		else if (c == 'j')
			json = true;
		else
			return opt_exit(c);
	}
	r = operands(&o, 1, 1);
	if (r)
		return r;
	name = argv[optind];
	r = ctl_status(name, &st);
	if (r)
		return r;
	if (json)
		print_counters_json(stdout, &st);
	else
		print_counters(stdout, &st);
	if (!reset)
		return EXIT_OK;
	r = ctl_cmd(name, STASH_IOC_RESET_COUNTERS);
	if (r)
		return r;
	if (!json)
		printf("counters reset\n");
	return EXIT_OK;
}

/* ------------------------------------------------------------------
 * mode, flush, invalidate
 * ------------------------------------------------------------------
 */

/* The cache name alone; -1 after --help, or an exit code. */
static int name_only(int argc, char **argv, const char **name)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o;
	int c, r;

	opts_init(&o, argc, argv, ":h", longopts);
	c = next_opt(&o);
	if (c != -1)
		return c == -2 ? -1 : EXIT_USAGE;
	r = operands(&o, 1, 1);
	if (r)
		return r;
	*name = argv[optind];
	return 0;
}

int cmd_mode(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct stash_ioc_status st;
	const char *name, *mode;
	struct opts o;
	uint32_t m;
	int c, r;

	opts_init(&o, argc, argv, ":h", longopts);
	c = next_opt(&o);
	if (c != -1)
		return opt_exit(c);
	r = operands(&o, 2, 2);
	if (r)
		return r;
	name = argv[optind];
	mode = argv[optind + 1];
	if (mode_from_name(mode, &m))
		return usage_error(o.cmd, "unknown mode '%s' (writearound, "
				   "writethrough or writeback)", mode);
	r = ctl_status(name, &st);
	if (r)
		return r;
	r = ctl_set_mode(name, m);
	if (r)
		return r;
	printf("%s: %s -> %s\n", name, mode_name(st.mode), mode);
	if (st.mode == STASH_UAPI_MODE_WRITEBACK && m != st.mode) {
		r = ctl_status(name, &st);
		if (!r && st.dirty_blocks)
			printf("%s: %llu dirty blocks are being written back in "
			       "the background (state draining); '%s flush %s' "
			       "waits for them\n", name,
			       (unsigned long long)st.dirty_blocks, progname, name);
	}
	return EXIT_OK;
}

int cmd_flush(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "no-wait", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct stash_ioc_status st;
	bool wait = true;
	const char *name;
	struct opts o;
	int c, r;

	opts_init(&o, argc, argv, ":h", longopts);
	while ((c = next_opt(&o)) != -1) {
		if (c != 'n')
			return opt_exit(c);
		wait = false;
	}
	r = operands(&o, 1, 1);
	if (r)
		return r;
	name = argv[optind];
	r = ctl_cmd(name, STASH_IOC_FLUSH);
	if (r)
		return r;
	if (wait)
		return wait_flush(name);
	r = ctl_status(name, &st);
	if (r)
		return r;
	printf("%s: flush started, %llu dirty blocks\n", name,
	       (unsigned long long)st.dirty_blocks);
	return EXIT_OK;
}

int cmd_invalidate(int argc, char **argv)
{
	struct stash_ioc_status before, after;
	const char *name = NULL;
	int r;

	r = name_only(argc, argv, &name);
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = ctl_status(name, &before);
	if (!r)
		r = ctl_cmd(name, STASH_IOC_INVALIDATE);
	if (!r)
		r = ctl_status(name, &after);
	if (r)
		return r;
	printf("%s: %llu blocks cached before, %llu now", name,
	       (unsigned long long)before.used_blocks,
	       (unsigned long long)after.used_blocks);
	if (after.dirty_blocks)
		printf(" (%llu dirty, kept until written back)",
		       (unsigned long long)after.dirty_blocks);
	printf("\n");
	return EXIT_OK;
}

/* ------------------------------------------------------------------
 * set, get
 * ------------------------------------------------------------------
 */

/* List the tunable names to stderr, from the module. */
static void list_tunables(const char *name)
{
	struct stash_ioc_tunable t;
	uint32_t i, count = 1;

	fprintf(stderr, "%s: tunables:", progname);
	for (i = 0; i < count; i++) {
		if (ctl_get_tunable(name, NULL, i, &t))
			break;
		count = t.count;
		fprintf(stderr, " %s", t.name);
	}
	fputc('\n', stderr);
}

int cmd_set(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct stash_ioc_tunable t, lo, hi;
	const char *name, *key, *value;
	uint64_t v;
	struct opts o;
	int c, r, err;

	opts_init(&o, argc, argv, ":h", longopts);
	c = next_opt(&o);
	if (c != -1)
		return opt_exit(c);
	r = operands(&o, 3, 3);
	if (r)
		return r;
	name = argv[optind];
	key = argv[optind + 1];
	value = argv[optind + 2];
	if (parse_u64(value, &v))
		return usage_error(o.cmd, "bad value '%s': a whole number", value);

	r = ctl_set_tunable(name, key, v, &err);
	if (r)
		return r;
	if (!err) {
		printf("%s: %s = %" PRIu64 "\n", name, key, v);
		return EXIT_OK;
	}
	/* Refused: say why. */
	r = ctl_get_tunable(name, key, 0, &t);
	if (r == -EINVAL) {
		errorf("%s has no tunable '%s'", name, key);
		list_tunables(name);
		return EXIT_USAGE;
	}
	if (r)
		return r;
	if (v < t.min || v > t.max) {
		errorf("bad value %" PRIu64 " for %s: allowed %" PRIu64 "..%" PRIu64
		       " %s", v, t.name, (uint64_t)t.min, (uint64_t)t.max,
		       tunable_unit(t.name));
		return EXIT_USAGE;
	}
	if (!strcmp(t.name, "writeback_latency") && v && v < STASH_WB_LATENCY_MIN_ON) {
		errorf("bad value %" PRIu64 " for %s: 0 (off) or %u..%" PRIu64 " %s",
		       v, t.name, STASH_WB_LATENCY_MIN_ON, (uint64_t)t.max,
		       tunable_unit(t.name));
		return EXIT_USAGE;
	}
	if (!ctl_get_tunable(name, "low_watermark", 0, &lo) &&
	    !ctl_get_tunable(name, "high_watermark", 0, &hi) &&
	    (!strcmp(t.name, "low_watermark") || !strcmp(t.name, "high_watermark"))) {
		errorf("bad value %" PRIu64 " for %s: low_watermark must stay below "
		       "high_watermark (now low %" PRIu64 ", high %" PRIu64 ")",
		       v, t.name, (uint64_t)lo.value, (uint64_t)hi.value);
		return EXIT_USAGE;
	}
	errorf("the module refused %s = %" PRIu64 " (see 'dmesg')", t.name, v);
	return EXIT_USAGE;
}

int cmd_get(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct stash_ioc_tunable t;
	uint32_t i, count = 1;
	bool json = false;
	const char *name;
	char range[64];
	struct opts o;
	int c, r;

	opts_init(&o, argc, argv, ":h", longopts);
	while ((c = next_opt(&o)) != -1) {
		if (c != 'j')
			return opt_exit(c);
		json = true;
	}
	r = operands(&o, 1, 2);
	if (r)
		return r;
	name = argv[optind];
	if (optind + 1 < argc) {
		const char *key = argv[optind + 1];

		r = ctl_get_tunable(name, key, 0, &t);
		if (r == -EINVAL) {
			struct stash_ioc_status st;

			r = ctl_status(name, &st);	/* no such cache? */
			if (r)
				return r;
			errorf("%s has no tunable '%s'", name, key);
			list_tunables(name);
			return EXIT_USAGE;
		}
		if (r)
			return r;
		if (json)
			printf("{\"%s\": %" PRIu64 "}\n", t.name, (uint64_t)t.value);
		else
			printf("%" PRIu64 "\n", (uint64_t)t.value);
		return EXIT_OK;
	}

	if (json)
		printf("{");
	else
		printf("%-20s %12s %-5s %s\n", "TUNABLE", "VALUE", "UNIT", "RANGE");
	for (i = 0; i < count; i++) {
		r = ctl_get_tunable(name, NULL, i, &t);
		if (r == -EINVAL)
			break;
		if (r)
			return r;
		count = t.count;
		if (json) {
			printf("%s\n  \"%s\": %" PRIu64, i ? "," : "", t.name,
			       (uint64_t)t.value);
			continue;
		}
		snprintf(range, sizeof(range), "%" PRIu64 "..%" PRIu64,
			 (uint64_t)t.min, (uint64_t)t.max);
		printf("%-20s %12" PRIu64 " %-5s %s\n", t.name, (uint64_t)t.value,
		       tunable_unit(t.name), range);
	}
	if (json)
		printf("\n}\n");
	return EXIT_OK;
}

/* ------------------------------------------------------------------
 * version
 * ------------------------------------------------------------------
 */

int cmd_version(int argc, char **argv)
{
	struct stash_ioc_version v;
	char line[64];
	FILE *f;

	if (argc > 1) {
		if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
			print_command_help(stdout, find_command("version"));
			return EXIT_OK;
		}
		return usage_error("version", "unexpected argument '%s'", argv[1]);
	}
	printf("stashctl: %s\n", STASHCTL_VERSION);
	if (!module_loaded()) {
		printf("module: not loaded\n");
		return EXIT_OK;
	}
	/* The ioctl needs root; sysfs does not. */
	ctl_quiet = true;
	if (geteuid() == 0 && !ctl_version(&v)) {
		printf("module: %u.%u.%u\n", v.module_major, v.module_minor,
		       v.module_patch);
		printf("interface: %u (stashctl %u)\n", v.uapi_version,
		       STASH_UAPI_VERSION);
		return EXIT_OK;
	}
	f = fopen(MODULE_VERSION_PATH, "r");
	if (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		printf("module: %s\n", line);
	} else {
		printf("module: loaded (version unknown)\n");
	}
	if (f)
		fclose(f);
	return EXIT_OK;
}
