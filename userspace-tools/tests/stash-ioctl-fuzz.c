// SPDX-License-Identifier: GPL-2.0
/*
 * stash-ioctl-fuzz: random and mutated ioctls against /dev/stash-control.
 *
 * usage: stash-ioctl-fuzz [--seed N] [--calls N] [--seconds S] [--jobs N] NAME...
 *	Fuzz: JOBS processes make CALLS calls in all (or stop after S
 *	seconds) against the live caches NAME...  Each call starts as a
 *	valid argument for one of the ioctls (or an unknown ioctl number of
 *	this device), which is then often mutated: bits flipped, bytes and
 *	words overwritten, the size, version, reserved fields, selector,
 *	pointers and values changed.  Every result must be one the interface
 *	allows; a valid call must succeed; STATUS and GET_TUNABLE results
 *	must be consistent.  Only ioctl numbers of this device's type are
 *	used (no generic VFS ioctls such as FIFREEZE).
 *
 *	stash-ioctl-fuzz --hammer [--seconds S] [--seed N] NAME
 *	Race helper: valid ioctls on cache NAME in a loop, opening and
 *	closing the control device every few calls, while the caller removes
 *	the cache and unloads the module.  ENODEV and a missing control
 *	device are expected; anything else is an error.  Stops after S
 *	seconds or on SIGTERM/SIGINT.
 *
 * Prints a summary; exits 1 if anything unexpected happened, 2 on a usage
 * or set-up error.
 */
#define _GNU_SOURCE

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "ioctl-common.h"

#define MAX_CACHES 8

struct cache {
	const char *name;
	unsigned int major, minor;
};

static struct cache caches[MAX_CACHES];
static unsigned int nr_caches;
static uint64_t rng_state;
static long page_size;
static char *guard;			/* a page followed by a PROT_NONE page */
static char *scratch;			/* where mutated LIST pointers may write */
#define SCRATCH_BYTES	(1u << 20)
static unsigned long unexpected;
static unsigned long core_rejects;	/* values the core will log about */
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* The tunables, from their rows (linux/dm-stash-tunables.h). */
struct tunable {
	const char *name;
	uint64_t min, max, def;
};

#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) \
	[STASH_TUN_##name] = { #name, min, max, def },
static const struct tunable tunables[STASH_NR_TUNABLES] = {
#include <linux/dm-stash-tunables.h>
};
#undef STASH_TUNABLE

/*
 * Values the core takes without a word: the range, but the watermarks in
 * bands that never cross (low below high_watermark's default, high from
 * it), and writeback_latency from STASH_WB_LATENCY_MIN_ON (0, off, is
 * taken too, but the values between are not).
 */
static uint64_t quiet_min(unsigned int i)
{
	if (i == STASH_TUN_high_watermark)
		return tunables[STASH_TUN_high_watermark].def;
	if (i == STASH_TUN_writeback_latency)
		return STASH_WB_LATENCY_MIN_ON;
	return tunables[i].min;
}

static uint64_t quiet_max(unsigned int i)
{
	if (i == STASH_TUN_low_watermark)
		return tunables[STASH_TUN_high_watermark].def - 1;
	return tunables[i].max;
}

/* xorshift64* */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static bool chance(unsigned int pct)
{
	return below(100) < pct;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct ioc {
	const char *name;
	unsigned long cmd;
	size_t size;
	bool has_sel;
};

static const struct ioc iocs[] = {
	{ "VERSION", STASH_IOC_VERSION, sizeof(struct stash_ioc_version), false },
	{ "LIST", STASH_IOC_LIST, sizeof(struct stash_ioc_list), false },
	{ "STATUS", STASH_IOC_STATUS, sizeof(struct stash_ioc_status), true },
	{ "SET_MODE", STASH_IOC_SET_MODE, sizeof(struct stash_ioc_mode), true },
	{ "FLUSH", STASH_IOC_FLUSH, sizeof(struct stash_ioc_cmd), true },
	{ "INVALIDATE", STASH_IOC_INVALIDATE, sizeof(struct stash_ioc_cmd), true },
	{ "GET_TUNABLE", STASH_IOC_GET_TUNABLE, sizeof(struct stash_ioc_tunable), true },
	{ "SET_TUNABLE", STASH_IOC_SET_TUNABLE, sizeof(struct stash_ioc_tunable), true },
	{ "RESET_COUNTERS", STASH_IOC_RESET_COUNTERS, sizeof(struct stash_ioc_cmd), true },
};

static struct stash_ioc_list_entry list_buf[64];

/*
 * Build a valid argument for @io in @arg.  *@must_work: the call must
 * succeed as built; *@may_einval: it may fail with EINVAL (a watermark
 * pair out of order); *@may_enodev: the selector may name no cache.
 */
static void build(const struct ioc *io, void *arg, bool *must_work,
		  bool *may_einval, bool *may_enodev)
{
	struct stash_ioc_cache *sel = (void *)((char *)arg + 8);
	const struct cache *c = &caches[below(nr_caches)];

	*must_work = true;
	*may_einval = false;
	*may_enodev = false;
	init_hdr(arg, io->size);
	if (io->has_sel) {
		if (chance(45)) {
			sel_name(sel, c->name);
		} else if (chance(80)) {
			sel_dev(sel, c->major, c->minor);
		} else if (chance(50)) {
			sel_name(sel, c->name);
			sel->name[below(strlen(c->name))] = (char)('a' + below(26));
			*may_enodev = true;
		} else {
			/* Never 0:0, which selects nothing (EINVAL). */
			sel_dev(sel, 1 + (unsigned int)below(300), (unsigned int)below(64));
			*may_enodev = true;
		}
	}
	switch (io->cmd) {
	case STASH_IOC_LIST: {
		struct stash_ioc_list *l = arg;

		l->entries = (uintptr_t)list_buf;
		l->capacity = (__u32)below(ARRAY_SIZE(list_buf) + 1);
		l->entry_size = sizeof(list_buf[0]);
		break;
	}
	case STASH_IOC_SET_MODE:
		((struct stash_ioc_mode *)arg)->mode = (__u32)below(3);
		break;
	case STASH_IOC_GET_TUNABLE: {
		struct stash_ioc_tunable *t = arg;

		if (chance(50))
			strcpy(t->name, tunables[below(STASH_NR_TUNABLES)].name);
		else
			t->index = (__u32)below(STASH_NR_TUNABLES);
		break;
	}
	case STASH_IOC_SET_TUNABLE: {
		struct stash_ioc_tunable *t = arg;
		unsigned int i = (unsigned int)below(STASH_NR_TUNABLES);

		strcpy(t->name, tunables[i].name);
		t->value = quiet_min(i) + below(quiet_max(i) - quiet_min(i) + 1);
		/* Small values mostly: huge idle times and cutoffs are dull. */
		if (chance(80) && t->value > quiet_min(i) + 64)
			t->value = quiet_min(i) + below(64);
		break;
	}
	default:
		break;
	}
}

static void mutate(char *arg, size_t size)
{
	unsigned int n = 1 + (unsigned int)below(4), i;

	for (i = 0; i < n; i++) {
		size_t off = below(size);

		switch (below(8)) {
		case 0:
			arg[off] ^= (char)(1u << below(8));
			break;
		case 1:
			arg[off] = (char)rnd();
			break;
		case 2:	/* a u32 at an aligned offset */
			off &= ~(size_t)3;
			if (off + 4 <= size) {
				__u32 v = (__u32)rnd();

				if (chance(50))
					v = (__u32)below(256);
				memcpy(arg + off, &v, 4);
			}
			break;
		case 3:	/* a u64 at an aligned offset */
			off &= ~(size_t)7;
			if (off + 8 <= size) {
				uint64_t v = chance(50) ? rnd() : below(1u << 20);

				memcpy(arg + off, &v, 8);
			}
			break;
		case 4: {	/* size */
			__u32 v = chance(50) ? (__u32)(size + below(17) - 8) : (__u32)rnd();

			memcpy(arg, &v, 4);
			break;
		}
		case 5: {	/* version */
			__u32 v = (__u32)below(4);

			memcpy(arg + 4, &v, 4);
			break;
		}
		case 6:	/* the tail: reserved fields */
			arg[size - 1 - below(size < 16 ? size : 16)] = (char)(1 + below(255));
			break;
		default:	/* a string without its NUL, or cut short */
			if (size > 8 + 32) {
				size_t len = 8 + below(size - 8);

				memset(arg + 8, chance(50) ? 'a' : 0, len - 8);
			}
			break;
		}
	}
}

/*
 * The core logs a warning for every value it refuses, and a warning costs
 * far more than an ioctl: after mutation, a SET_TUNABLE that passes the
 * control device's checks with a value the core would refuse (or might,
 * for the watermarks) uses up a budget, and once that is gone its value is
 * made quiet instead.
 */
static void tame_set_tunable(struct stash_ioc_tunable *t)
{
	unsigned int i;

	if (t->size != sizeof(*t) || !t->version || t->version > STASH_UAPI_VERSION ||
	    t->index || t->count || t->min || t->max || t->reserved[0] ||
	    t->reserved[1] || !memchr(t->name, 0, sizeof(t->name)))
		return;
	for (i = 0; i < STASH_NR_TUNABLES; i++)
		if (!strcasecmp(t->name, tunables[i].name))
			break;
	if (i == STASH_NR_TUNABLES ||
	    (t->value >= quiet_min(i) && t->value <= quiet_max(i)))
		return;
	/*
	 * A watermark in its range but out of its band may be taken, and then
	 * a valid call for the other one would cross it and fail: never.
	 */
	if ((i == STASH_TUN_low_watermark || i == STASH_TUN_high_watermark) &&
	    t->value >= tunables[i].min && t->value <= tunables[i].max) {
		t->value = quiet_min(i);
		return;
	}
	if (core_rejects < 150) {
		core_rejects++;
		return;
	}
	t->value = quiet_min(i);
}

/*
 * A mutated LIST entries pointer must not let the kernel write over this
 * process (its stack, heap, variables): keep it if no user mapping can be
 * there (low or kernel addresses), else move it into the scratch area.
 */
static void tame_list_pointer(struct stash_ioc_list *l)
{
	uint64_t p = l->entries;

	if (p == (uintptr_t)list_buf || p < 65536 || p >= (1ull << 47))
		return;
	l->entries = (uintptr_t)(scratch + p % (SCRATCH_BYTES / 2));
	if (l->capacity > (SCRATCH_BYTES / 2) / sizeof(list_buf[0]))
		l->capacity = (SCRATCH_BYTES / 2) / sizeof(list_buf[0]);
}

static bool allowed(int r)
{
	return r == 0 || r == -EINVAL || r == -EFAULT || r == -ENODEV ||
	       r == -ENOTTY || r == -ENOMEM || r == -EBUSY;
}

/* Something the interface does not allow: say what (the first 20). */
static void report(const char *what, int r, const char *detail)
{
	unexpected++;
	if (unexpected <= 20)
		fprintf(stderr, "%s: %s (%d)%s\n", what, errname(r), r, detail);
}

/* STATUS and GET_TUNABLE results must make sense. */
static void check_output(unsigned long cmd, const void *arg)
{
	if (cmd == STASH_IOC_STATUS) {
		const struct stash_ioc_status *s = arg;

		if (s->mode > STASH_UAPI_MODE_WRITEBACK ||
		    s->used_blocks > s->cache_blocks ||
		    s->dirty_blocks > s->cache_blocks ||
		    !memchr(s->state, 0, sizeof(s->state)) ||
		    s->tunables.low_watermark >= s->tunables.high_watermark ||
		    s->tunables.writeback_inflight <
			tunables[STASH_TUN_writeback_inflight].min ||
		    s->tunables.writeback_inflight >
			tunables[STASH_TUN_writeback_inflight].max)
			report("STATUS: inconsistent result", 0, s->name);
	} else if (cmd == STASH_IOC_GET_TUNABLE) {
		const struct stash_ioc_tunable *t = arg;

		if (t->value < t->min || t->value > t->max ||
		    t->count != STASH_NR_TUNABLES)
			report("GET_TUNABLE: value out of range", 0, t->name);
		else if (t->index >= STASH_NR_TUNABLES ||
			 strcmp(t->name, tunables[t->index].name) ||
			 t->min != tunables[t->index].min ||
			 t->max != tunables[t->index].max)
			report("GET_TUNABLE: not the row of dm-stash-tunables.h",
			       0, t->name);
	}
}

static void fuzz_one(int fd, unsigned long *hist)
{
	union {
		struct stash_ioc_status s;
		char bytes[1024];
	} a;
	const struct ioc *io;
	bool must_work, may_einval, may_enodev, mutated = false;
	unsigned long cmd;
	void *p = &a;
	int r, ptr = (int)below(100);

	if (chance(4)) {
		/* An ioctl number of our type that is not one of ours. */
		unsigned int dir = (unsigned int)below(4);
		unsigned int nr = (unsigned int)below(256);
		size_t size = chance(50) ? below(1024) : iocs[below(ARRAY_SIZE(iocs))].size;
		size_t i;

		cmd = _IOC(dir, STASH_IOCTL_MAGIC, nr, size);
		for (i = 0; i < ARRAY_SIZE(iocs); i++)
			if (iocs[i].cmd == cmd)
				return;
		memset(&a, 0, sizeof(a));
		r = xioctl(fd, cmd, &a);
		hist[r < 0 ? -r : 0]++;
		if (r != -ENOTTY)
			report("unknown ioctl number", r, "");
		return;
	}

	io = &iocs[below(ARRAY_SIZE(iocs))];
	/* Invalidate walks the whole cache: keep it rare. */
	if (io->cmd == STASH_IOC_INVALIDATE && !chance(3))
		io = &iocs[2];
	cmd = io->cmd;
	build(io, &a, &must_work, &may_einval, &may_enodev);
	if (chance(55)) {
		mutate(a.bytes, io->size);
		mutated = true;
		if (io->cmd == STASH_IOC_LIST)
			tame_list_pointer((struct stash_ioc_list *)&a);
		if (io->cmd == STASH_IOC_SET_TUNABLE)
			tame_set_tunable((struct stash_ioc_tunable *)&a);
	}
	if (io->cmd == STASH_IOC_SET_TUNABLE && chance(2) && core_rejects < 150) {
		/* A value out of range: the core checks it (and logs). */
		a.s.size = (__u32)io->size;
		((struct stash_ioc_tunable *)&a)->value = chance(50) ? 1ull << 32 : 101 + below(1000);
		core_rejects++;
		mutated = true;
	}
	if (ptr < 2) {
		p = NULL;
	} else if (ptr < 3) {
		p = (void *)(uintptr_t)(0xffff888000000000ull + below(1u << 30));
	} else if (ptr < 6) {
		/* Straddle the guard page by a few bytes. */
		size_t cut = 1 + below(io->size < 64 ? io->size : 64);

		p = guard + page_size - io->size + cut;
		memcpy(p, &a, io->size - cut);
	} else if (ptr < 8 && io->cmd == STASH_IOC_LIST) {
		((struct stash_ioc_list *)&a)->entries =
			(uintptr_t)(guard + page_size - sizeof(list_buf[0]));
		if (((struct stash_ioc_list *)&a)->capacity < 2)
			((struct stash_ioc_list *)&a)->capacity = 2;
		mutated = true;
	}
	if (p != &a)
		mutated = true;

	r = xioctl(fd, cmd, p);
	hist[r < 0 ? -r : 0]++;
	if (!allowed(r)) {
		report(io->name, r, mutated ? ", mutated call: unexpected errno" :
		       ", valid call: unexpected errno");
		return;
	}
	if (!mutated && must_work && r &&
	    !(r == -ENODEV && may_enodev) && !(r == -EINVAL && may_einval))
		report(io->name, r, ", valid call failed");
	if (!r && p == &a)
		check_output(cmd, &a);
}

static int run_fuzz(unsigned long calls, double seconds, unsigned int job)
{
	unsigned long hist[256] = { 0 }, n;
	double end = now() + seconds;
	int fd = ctl_open_fd();
	unsigned int e;

	if (fd < 0) {
		perror(CONTROL_PATH);
		return 2;
	}
	for (n = 0; n < calls; n++) {
		if (!(n % 256) && now() > end)
			break;
		fuzz_one(fd, hist);
	}
	close(fd);
	printf("job %u: %lu calls:", job, n);
	for (e = 0; e < ARRAY_SIZE(hist); e++)
		if (hist[e])
			printf(" %s=%lu", errname(-(int)e), hist[e]);
	printf("; %lu unexpected\n", unexpected);
	fflush(stdout);
	return unexpected ? 1 : 0;
}

/* ------------------------------------------------------------------
 * --hammer
 * ------------------------------------------------------------------
 */

static int hammer(const char *name, double seconds)
{
	union {
		struct stash_ioc_status s;
		char bytes[1024];
	} a;
	unsigned long calls = 0, ok = 0, enodev = 0, opens = 0, no_dev = 0;
	unsigned int major = 0, minor = 0;
	double end = now() + seconds;
	int fd, r, k, n;

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!stop && now() < end) {
		fd = ctl_open_fd();
		if (fd < 0) {
			no_dev++;
			usleep(200);
			continue;
		}
		opens++;
		n = 1 + (int)below(40);
		for (k = 0; k < n; k++) {
			const struct ioc *io = &iocs[below(ARRAY_SIZE(iocs))];
			bool must_work, may_einval, may_enodev;

			build(io, &a, &must_work, &may_einval, &may_enodev);
			if (io->has_sel) {
				if (chance(50) || !major)
					sel_name((void *)(a.bytes + 8), name);
				else
					sel_dev((void *)(a.bytes + 8), major, minor);
			}
			r = xioctl(fd, io->cmd, &a);
			calls++;
			if (!r) {
				ok++;
				if (io->cmd == STASH_IOC_STATUS) {
					major = a.s.major;
					minor = a.s.minor;
				}
			} else if (r == -ENODEV || r == -EBUSY) {
				/* Gone, or suspended / not resumed yet. */
				enodev++;
			} else if (!(r == -EINVAL && may_einval)) {
				report(io->name, r, ", hammer call failed");
			}
		}
		close(fd);
		/* A breather, so that rmmod finds the device closed now and then. */
		usleep((useconds_t)below(2000));
	}
	printf("hammer: %lu calls (%lu ok, %lu ENODEV or EBUSY), %lu opens, %lu times no "
	       "control device; %lu unexpected\n", calls, ok, enodev, opens,
	       no_dev, unexpected);
	return unexpected ? 1 : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: stash-ioctl-fuzz [--seed N] [--calls N] [--seconds S] "
		"[--jobs N] NAME...\n"
		"       stash-ioctl-fuzz --hammer [--seconds S] [--seed N] NAME\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long calls = 100000;
	double seconds = 50;
	unsigned int jobs = 1, j;
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	bool do_hammer = false;
	int i, fd, status, rc = 0;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--hammer"))
			do_hammer = true;
		else if (i + 1 >= argc)
			return usage();
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--calls"))
			calls = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seconds"))
			seconds = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--jobs"))
			jobs = (unsigned int)strtoul(argv[++i], NULL, 0);
		else
			return usage();
	}
	if (i == argc || argc - i > MAX_CACHES || !jobs)
		return usage();
	printf("seed %#llx\n", (unsigned long long)seed);
	fflush(stdout);
	rng_state = seed | 1;
	page_size = sysconf(_SC_PAGESIZE);

	if (do_hammer) {
		if (argc - i != 1)
			return usage();
		caches[0].name = argv[i];
		nr_caches = 1;
		return hammer(argv[i], seconds);
	}

	guard = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	scratch = mmap(NULL, SCRATCH_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard == MAP_FAILED || scratch == MAP_FAILED ||
	    mprotect(guard + page_size, page_size, PROT_NONE)) {
		perror("mmap");
		return 2;
	}
	fd = ctl_open_fd();
	if (fd < 0) {
		perror(CONTROL_PATH);
		return 2;
	}
	for (; i < argc; i++) {
		struct stash_ioc_status st;
		int r;

		init_hdr(&st, sizeof(st));
		sel_name(&st.cache, argv[i]);
		r = xioctl(fd, STASH_IOC_STATUS, &st);
		if (r) {
			fprintf(stderr, "no cache %s: %s\n", argv[i], errname(r));
			return 2;
		}
		caches[nr_caches].name = argv[i];
		caches[nr_caches].major = st.major;
		caches[nr_caches].minor = st.minor;
		nr_caches++;
	}
	close(fd);

	for (j = 0; j < jobs; j++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (!pid) {
			rng_state = (seed + j * 0x9E3779B97F4A7C15ull) | 1;
			exit(run_fuzz(calls / jobs, seconds, j));
		}
	}
	for (j = 0; j < jobs; j++) {
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			rc = 1;
	}
	printf("fuzz: %s\n", rc ? "FAILED" : "passed");
	return rc;
}
