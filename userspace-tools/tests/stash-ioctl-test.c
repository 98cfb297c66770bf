// SPDX-License-Identifier: GPL-2.0
/*
 * stash-ioctl-test: every validation path of every ioctl of
 * /dev/stash-control, with the errno it must give and a check that the
 * failed call changed nothing (the cache's full STATUS is the same before
 * and after).
 *
 * usage: stash-ioctl-test NAME
 *		NAME is an idle stash cache (no I/O while the test runs);
 *		runs every check; the cache ends as it started
 *	  stash-ioctl-test --unpriv NAME MAJOR:MINOR
 *		run without CAP_SYS_ADMIN: every ioctl must fail with EPERM
 *		(the caller compares the cache's status before and after)
 *	  stash-ioctl-test --not-live NAME
 *		NAME's table is suspended or not resumed yet: reading ioctls
 *		work, every changing one fails with EBUSY and changes nothing
 *
 * Prints "ok - ..." / "not ok - ..." per check and a summary; exits 1 if
 * any check failed, 2 on a usage or set-up error.
 */
#define _GNU_SOURCE

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "ioctl-common.h"

static int fd = -1;
static const char *cache_name;
static unsigned int cache_major, cache_minor;
static unsigned int nr_ok, nr_fail;
static long page_size;

static void result(bool ok, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void result(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (ok)
		nr_ok++;
	else
		nr_fail++;
}

static void snapshot(struct stash_ioc_status *st)
{
	int r;

	init_hdr(st, sizeof(*st));
	sel_name(&st->cache, cache_name);
	r = xioctl(fd, STASH_IOC_STATUS, st);
	if (r) {
		fprintf(stderr, "STATUS %s failed: %s\n", cache_name, errname(r));
		exit(2);
	}
}

/* What a failed call must not change: all but what moves by itself. */
static bool same_state(struct stash_ioc_status *a, struct stash_ioc_status *b)
{
	a->writeback_rate = b->writeback_rate = 0;
	a->counters.commits = b->counters.commits = 0;
	return !memcmp(a, b, sizeof(*a));
}

/* Call @cmd with @arg; it must fail with @want and change nothing. */
static void expect(int want, unsigned long cmd, void *arg, const char *what)
{
	struct stash_ioc_status before, after;
	int r;

	snapshot(&before);
	r = xioctl(fd, cmd, arg);
	snapshot(&after);
	result(r == want, "%s: %s (want %s)", what, errname(r), errname(want));
	if (want)
		result(same_state(&before, &after), "%s: nothing changed", what);
}

/* ------------------------------------------------------------------
 * The ioctls, with a valid argument each and their reserved fields
 * ------------------------------------------------------------------
 */

struct field {
	size_t off;
	size_t len;
	const char *name;
};

#define FIELD(type, f) { offsetof(type, f), sizeof(((type *)0)->f), #f }

struct ioc {
	const char *name;
	unsigned long cmd;
	size_t size;
	bool has_sel;
	bool changes;			/* a valid call changes the cache */
	struct field reserved[6];	/* must-be-zero fields */
};

static const struct ioc iocs[] = {
	{ "VERSION", STASH_IOC_VERSION, sizeof(struct stash_ioc_version), false, false,
	  { FIELD(struct stash_ioc_version, reserved) } },
	{ "LIST", STASH_IOC_LIST, sizeof(struct stash_ioc_list), false, false,
	  { FIELD(struct stash_ioc_list, reserved0),
	    FIELD(struct stash_ioc_list, reserved) } },
	{ "STATUS", STASH_IOC_STATUS, sizeof(struct stash_ioc_status), true, false,
	  { FIELD(struct stash_ioc_status, checksum_errors),
	    FIELD(struct stash_ioc_status, checksum_bad) } },
	{ "SET_MODE", STASH_IOC_SET_MODE, sizeof(struct stash_ioc_mode), true, true,
	  { FIELD(struct stash_ioc_mode, reserved0),
	    FIELD(struct stash_ioc_mode, reserved) } },
	{ "FLUSH", STASH_IOC_FLUSH, sizeof(struct stash_ioc_cmd), true, true,
	  { FIELD(struct stash_ioc_cmd, flags),
	    FIELD(struct stash_ioc_cmd, reserved0),
	    FIELD(struct stash_ioc_cmd, reserved) } },
	{ "INVALIDATE", STASH_IOC_INVALIDATE, sizeof(struct stash_ioc_cmd), true, true,
	  { FIELD(struct stash_ioc_cmd, flags),
	    FIELD(struct stash_ioc_cmd, reserved0),
	    FIELD(struct stash_ioc_cmd, reserved) } },
	{ "GET_TUNABLE", STASH_IOC_GET_TUNABLE, sizeof(struct stash_ioc_tunable),
	  true, false,
	  { FIELD(struct stash_ioc_tunable, reserved) } },
	{ "SET_TUNABLE", STASH_IOC_SET_TUNABLE, sizeof(struct stash_ioc_tunable),
	  true, true,
	  { FIELD(struct stash_ioc_tunable, reserved),
	    FIELD(struct stash_ioc_tunable, index),
	    FIELD(struct stash_ioc_tunable, count),
	    FIELD(struct stash_ioc_tunable, min),
	    FIELD(struct stash_ioc_tunable, max) } },
	{ "RESET_COUNTERS", STASH_IOC_RESET_COUNTERS, sizeof(struct stash_ioc_cmd),
	  true, true,
	  { FIELD(struct stash_ioc_cmd, flags),
	    FIELD(struct stash_ioc_cmd, reserved0),
	    FIELD(struct stash_ioc_cmd, reserved) } },
};

static struct stash_ioc_list_entry list_buf[64];

/* A valid argument for @io that changes nothing when called. */
static void build(const struct ioc *io, void *arg, const struct stash_ioc_status *st)
{
	init_hdr(arg, io->size);
	if (io->has_sel)
		sel_name((struct stash_ioc_cache *)((char *)arg + 8), cache_name);
	if (io->cmd == STASH_IOC_LIST) {
		struct stash_ioc_list *l = arg;

		l->entries = (uintptr_t)list_buf;
		l->capacity = ARRAY_SIZE(list_buf);
		l->entry_size = sizeof(list_buf[0]);
	} else if (io->cmd == STASH_IOC_SET_MODE) {
		((struct stash_ioc_mode *)arg)->mode = st->mode;
	} else if (io->cmd == STASH_IOC_GET_TUNABLE) {
		strcpy(((struct stash_ioc_tunable *)arg)->name, "idle_ms");
	} else if (io->cmd == STASH_IOC_SET_TUNABLE) {
		struct stash_ioc_tunable *t = arg;

		strcpy(t->name, "idle_ms");
		t->value = st->tunables.idle_ms;
	}
}

static void test_generic(const struct ioc *io)
{
	union {
		struct stash_ioc_status s;
		char bytes[1024];
	} a;
	struct stash_ioc_status st;
	struct stash_ioc_cache *sel = (void *)(a.bytes + 8);
	__u32 *hdr = (__u32 *)a.bytes;
	static const __u32 bad_sizes[] = { 0, 1, 8 };
	char what[160];
	size_t i, j;
	char *page;

	snapshot(&st);

	build(io, &a, &st);
	snprintf(what, sizeof(what), "%s valid", io->name);
	result(!xioctl(fd, io->cmd, &a), "%s", what);
	if (io->has_sel) {
		build(io, &a, &st);
		sel_dev(sel, cache_major, cache_minor);
		snprintf(what, sizeof(what), "%s valid, by device number", io->name);
		result(!xioctl(fd, io->cmd, &a), "%s", what);
	}

	/* Sizes. */
	for (i = 0; i < ARRAY_SIZE(bad_sizes) + 4; i++) {
		build(io, &a, &st);
		hdr[0] = i < ARRAY_SIZE(bad_sizes) ? bad_sizes[i] :
			 i == 3 ? (__u32)io->size - 1 : i == 4 ? (__u32)io->size + 1 :
			 i == 5 ? (__u32)io->size + 8 : 0xffffffffu;
		snprintf(what, sizeof(what), "%s size %u", io->name, hdr[0]);
		expect(-EINVAL, io->cmd, &a, what);
	}

	/* Versions: VERSION takes any non-zero one. */
	for (i = 0; i < 3; i++) {
		__u32 v = i == 0 ? 0 : i == 1 ? STASH_UAPI_VERSION + 1 : 0xffffffffu;
		int want = io->cmd == STASH_IOC_VERSION && v ? 0 : -EINVAL;

		build(io, &a, &st);
		hdr[1] = v;
		snprintf(what, sizeof(what), "%s version %u", io->name, v);
		expect(want, io->cmd, &a, what);
	}

	/* Reserved fields: first and last byte of each. */
	for (i = 0; i < ARRAY_SIZE(io->reserved) && io->reserved[i].name; i++) {
		const struct field *f = &io->reserved[i];

		for (j = 0; j < 2; j++) {
			build(io, &a, &st);
			a.bytes[f->off + (j ? f->len - 1 : 0)] = (char)0x5a;
			snprintf(what, sizeof(what), "%s %s byte %zu non-zero",
				 io->name, f->name, j ? f->len - 1 : 0);
			expect(-EINVAL, io->cmd, &a, what);
		}
	}

	/* The selector. */
	if (io->has_sel) {
		build(io, &a, &st);
		memset(sel, 0, sizeof(*sel));
		snprintf(what, sizeof(what), "%s no cache given", io->name);
		expect(-EINVAL, io->cmd, &a, what);

		build(io, &a, &st);
		sel->major = cache_major;
		sel->minor = cache_minor;
		snprintf(what, sizeof(what), "%s name and device both given", io->name);
		expect(-EINVAL, io->cmd, &a, what);

		build(io, &a, &st);
		memset(sel->name, 'a', sizeof(sel->name));
		snprintf(what, sizeof(what), "%s name without a NUL", io->name);
		expect(-EINVAL, io->cmd, &a, what);

		build(io, &a, &st);
		sel_name(sel, "stash-no-such-cache");
		snprintf(what, sizeof(what), "%s unknown name", io->name);
		expect(-ENODEV, io->cmd, &a, what);

		build(io, &a, &st);
		snprintf(sel->name, sizeof(sel->name), "%s", cache_name);
		sel->name[strlen(sel->name) - 1] ^= 1;
		snprintf(what, sizeof(what), "%s name off by one letter", io->name);
		expect(-ENODEV, io->cmd, &a, what);

		for (j = 0; j < 4; j++) {
			static const unsigned int devs[][2] = {
				{ 1, 0 }, { 0, 1 }, { 4095, 1048575 },
				{ 0xffffffffu, 0xffffffffu },
			};

			build(io, &a, &st);
			sel_dev(sel, devs[j][0], devs[j][1]);
			snprintf(what, sizeof(what), "%s unknown device %u:%u",
				 io->name, devs[j][0], devs[j][1]);
			expect(-ENODEV, io->cmd, &a, what);
		}
		/* The cache's minor with the major's bits folded in. */
		build(io, &a, &st);
		sel_dev(sel, 0, (cache_major << 20) | cache_minor);
		snprintf(what, sizeof(what), "%s device 0:%u (aliases %u:%u as a dev_t)",
			 io->name, (cache_major << 20) | cache_minor, cache_major,
			 cache_minor);
		expect(-ENODEV, io->cmd, &a, what);
	}

	/* Unreadable arguments. */
	snprintf(what, sizeof(what), "%s NULL argument", io->name);
	expect(-EFAULT, io->cmd, NULL, what);
	snprintf(what, sizeof(what), "%s kernel address", io->name);
	expect(-EFAULT, io->cmd, (void *)(uintptr_t)0xffff888000000000ull, what);
	page = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page != MAP_FAILED) {
		char *p = page + page_size - io->size + 1;

		mprotect(page + page_size, page_size, PROT_NONE);
		build(io, &a, &st);
		memcpy(p, &a, io->size - 1);
		snprintf(what, sizeof(what), "%s last byte unmapped", io->name);
		expect(-EFAULT, io->cmd, p, what);
		/* Read-only: output ioctls fail, input-only ones work. */
		mprotect(page, page_size, PROT_READ);
		snprintf(what, sizeof(what), "%s argument read-only", io->name);
		if (_IOC_DIR(io->cmd) & _IOC_READ) {
			p = page;
			mprotect(page, page_size, PROT_READ | PROT_WRITE);
			build(io, p, &st);
			mprotect(page, page_size, PROT_READ);
			expect(-EFAULT, io->cmd, p, what);
		}
		munmap(page, 2 * page_size);
	}

	/* Numbers that are not this ioctl. */
	for (i = 0; i < 4; i++) {
		unsigned long cmd =
			i == 0 ? _IOC(_IOC_DIR(io->cmd), STASH_IOCTL_MAGIC,
				      _IOC_NR(io->cmd), io->size + 8) :
			i == 1 ? _IOC(_IOC_NONE, STASH_IOCTL_MAGIC, _IOC_NR(io->cmd), 0) :
			i == 2 ? _IOC(_IOC_DIR(io->cmd) ^ _IOC_READ, STASH_IOCTL_MAGIC,
				      _IOC_NR(io->cmd), io->size) :
			_IOC(_IOC_DIR(io->cmd), 0xfd, _IOC_NR(io->cmd), io->size);

		build(io, &a, &st);
		snprintf(what, sizeof(what), "%s as cmd %#lx", io->name, cmd);
		expect(-ENOTTY, cmd, &a, what);
	}
}

/* ------------------------------------------------------------------
 * Per-ioctl checks
 * ------------------------------------------------------------------
 */

static void test_version(void)
{
	struct stash_ioc_version v;

	init_hdr(&v, sizeof(v));
	result(!xioctl(fd, STASH_IOC_VERSION, &v) &&
	       v.module_major == STASH_VERSION_MAJOR &&
	       v.module_minor == STASH_VERSION_MINOR &&
	       v.module_patch == STASH_VERSION_PATCH &&
	       v.uapi_version == STASH_UAPI_VERSION,
	       "VERSION reports %u.%u.%u, interface %u", v.module_major,
	       v.module_minor, v.module_patch, v.uapi_version);
}

static void test_list(void)
{
	struct stash_ioc_list l;
	unsigned int i, found = 0, count;

	init_hdr(&l, sizeof(l));
	l.entry_size = sizeof(list_buf[0]);
	result(!xioctl(fd, STASH_IOC_LIST, &l) && l.count >= 1,
	       "LIST with capacity 0 counts %u caches", l.count);
	count = l.count;

	init_hdr(&l, sizeof(l));
	l.entry_size = sizeof(list_buf[0]);
	l.entries = (uintptr_t)list_buf;
	l.capacity = ARRAY_SIZE(list_buf);
	memset(list_buf, 0xff, sizeof(list_buf));
	result(!xioctl(fd, STASH_IOC_LIST, &l) && l.count == count,
	       "LIST returns the same count (%u)", l.count);
	for (i = 0; i < l.count && i < ARRAY_SIZE(list_buf); i++) {
		if (strcmp(list_buf[i].name, cache_name))
			continue;
		found++;
		result(list_buf[i].major == cache_major &&
		       list_buf[i].minor == cache_minor &&
		       list_buf[i].mode <= STASH_UAPI_MODE_WRITEBACK &&
		       (list_buf[i].flags & STASH_IOC_F_LIVE) &&
		       !list_buf[i].reserved,
		       "LIST entry of %s: %u:%u mode %u flags %#x", cache_name,
		       list_buf[i].major, list_buf[i].minor, list_buf[i].mode,
		       list_buf[i].flags);
	}
	result(found == 1, "LIST shows %s once", cache_name);

	/* A short array: count tells the caller to retry. */
	if (count >= 1) {
		init_hdr(&l, sizeof(l));
		l.entry_size = sizeof(list_buf[0]);
		l.entries = (uintptr_t)list_buf;
		l.capacity = 1;
		memset(&list_buf[1], 0x77, sizeof(list_buf[1]));
		result(!xioctl(fd, STASH_IOC_LIST, &l) && l.count == count &&
		       list_buf[1].name[0] == 0x77,
		       "LIST with capacity 1 writes 1 entry, counts %u", l.count);
	}

	for (i = 0; i < 3; i++) {
		__u32 es[] = { 0, sizeof(list_buf[0]) - 8, sizeof(list_buf[0]) + 8 };
		char what[64];

		init_hdr(&l, sizeof(l));
		l.entry_size = es[i];
		l.entries = (uintptr_t)list_buf;
		l.capacity = 1;
		snprintf(what, sizeof(what), "LIST entry_size %u", es[i]);
		expect(-EINVAL, STASH_IOC_LIST, &l, what);
	}
	init_hdr(&l, sizeof(l));
	l.entry_size = sizeof(list_buf[0]);
	l.capacity = 4;
	expect(-EFAULT, STASH_IOC_LIST, &l, "LIST capacity 4, entries NULL");
	l.entries = 0xffff888000000000ull;
	expect(-EFAULT, STASH_IOC_LIST, &l, "LIST entries at a kernel address");
}

static void test_status(void)
{
	struct stash_ioc_status st;

	snapshot(&st);
	result(!strcmp(st.name, cache_name) && st.major == cache_major &&
	       st.minor == cache_minor, "STATUS names %s %u:%u", st.name,
	       st.major, st.minor);
	result(st.mode <= STASH_UAPI_MODE_WRITEBACK && st.state[0] &&
	       memchr(st.state, 0, sizeof(st.state)) &&
	       st.used_blocks <= st.cache_blocks &&
	       st.dirty_blocks <= st.cache_blocks && st.block_sectors >= 8 &&
	       st.target_sectors > 0 && st.ram_per_block > 0 &&
	       (st.flags & STASH_IOC_F_LIVE),
	       "STATUS is consistent: mode %u state %s blocks %llu/%llu",
	       st.mode, st.state, (unsigned long long)st.used_blocks,
	       (unsigned long long)st.cache_blocks);
}

static void test_set_mode(void)
{
	static const __u32 bad[] = { 3, 4, 0x80000000u, 0xffffffffu };
	struct stash_ioc_status st, st2;
	struct stash_ioc_mode m;
	char what[64];
	__u32 orig, i;

	snapshot(&st);
	orig = st.mode;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		init_hdr(&m, sizeof(m));
		sel_name(&m.cache, cache_name);
		m.mode = bad[i];
		snprintf(what, sizeof(what), "SET_MODE mode %#x", bad[i]);
		expect(-EINVAL, STASH_IOC_SET_MODE, &m, what);
	}
	for (i = 0; i <= STASH_UAPI_MODE_WRITEBACK + 1; i++) {
		__u32 mode = i <= STASH_UAPI_MODE_WRITEBACK ? i : orig;

		init_hdr(&m, sizeof(m));
		sel_name(&m.cache, cache_name);
		m.mode = mode;
		snapshot(&st);
		result(!xioctl(fd, STASH_IOC_SET_MODE, &m), "SET_MODE %u", mode);
		snapshot(&st2);
		result(st2.mode == mode, "STATUS shows mode %u", st2.mode);
	}
}

/* The tunables, from their rows (linux/dm-stash-tunables.h). */
struct row {
	const char *name;
	__u64 min, max;
};

#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) \
	[STASH_TUN_##name] = { #name, min, max },
static const struct row rows[STASH_NR_TUNABLES] = {
#include <linux/dm-stash-tunables.h>
};
#undef STASH_TUNABLE

static void test_tunables(void)
{
	struct stash_ioc_tunable t, g, all[16];
	struct stash_ioc_status st;
	unsigned int i, j, count = 0;
	char what[128];
	int r;

	/* Enumerate by index. */
	for (i = 0; i < ARRAY_SIZE(all); i++) {
		init_hdr(&all[i], sizeof(all[i]));
		sel_name(&all[i].cache, cache_name);
		all[i].index = i;
		r = xioctl(fd, STASH_IOC_GET_TUNABLE, &all[i]);
		if (r)
			break;
		count = all[i].count;
		if (i + 1 >= count)
			break;
	}
	result(count == STASH_NR_TUNABLES && i + 1 == count,
	       "GET_TUNABLE lists %u tunables", count);
	if (!count)
		return;
	/* The module's rows are those of the header this was built with. */
	for (i = 0; i < count && i < STASH_NR_TUNABLES; i++)
		result(!strcmp(all[i].name, rows[i].name) &&
		       all[i].min == rows[i].min && all[i].max == rows[i].max,
		       "GET_TUNABLE %u: %s %llu..%llu", i, all[i].name,
		       (unsigned long long)all[i].min,
		       (unsigned long long)all[i].max);

	init_hdr(&g, sizeof(g));
	sel_name(&g.cache, cache_name);
	g.index = count;
	expect(-EINVAL, STASH_IOC_GET_TUNABLE, &g, "GET_TUNABLE index past the end");
	init_hdr(&g, sizeof(g));
	sel_name(&g.cache, cache_name);
	strcpy(g.name, "idle_ms");
	g.index = 1;
	expect(-EINVAL, STASH_IOC_GET_TUNABLE, &g, "GET_TUNABLE name and index");
	init_hdr(&g, sizeof(g));
	sel_name(&g.cache, cache_name);
	strcpy(g.name, "no_such_tunable");
	expect(-EINVAL, STASH_IOC_GET_TUNABLE, &g, "GET_TUNABLE unknown name");
	init_hdr(&g, sizeof(g));
	sel_name(&g.cache, cache_name);
	memset(g.name, 'x', sizeof(g.name));
	expect(-EINVAL, STASH_IOC_GET_TUNABLE, &g, "GET_TUNABLE name without a NUL");
	init_hdr(&g, sizeof(g));
	sel_name(&g.cache, cache_name);
	strcpy(g.name, "HIGH_WATERMARK");
	result(!xioctl(fd, STASH_IOC_GET_TUNABLE, &g) &&
	       !strcmp(g.name, "high_watermark"),
	       "GET_TUNABLE ignores case and returns the name %s", g.name);

	snapshot(&st);
	for (i = 0; i < count; i++) {
		struct stash_ioc_tunable *d = &all[i];
		__u64 bad[6];
		unsigned int nbad = 0;

		bad[nbad++] = d->max + 1;
		bad[nbad++] = 1ull << 32;
		bad[nbad++] = (1ull << 32) + d->min + 1;	/* min+1 if truncated */
		bad[nbad++] = ~0ull;
		if (d->min)
			bad[nbad++] = d->min - 1;
		if (i == STASH_TUN_writeback_latency)	/* 0 (off) or from 100 */
			bad[nbad++] = STASH_WB_LATENCY_MIN_ON - 1;
		for (j = 0; j < nbad; j++) {
			init_hdr(&t, sizeof(t));
			sel_name(&t.cache, cache_name);
			strcpy(t.name, d->name);
			t.value = bad[j];
			snprintf(what, sizeof(what), "SET_TUNABLE %s = %llu (range %llu..%llu)",
				 d->name, (unsigned long long)bad[j],
				 (unsigned long long)d->min, (unsigned long long)d->max);
			expect(-EINVAL, STASH_IOC_SET_TUNABLE, &t, what);
		}
		/* A new valid value, read back, then the old one again. */
		for (j = 0; j < 2; j++) {
			__u64 v = j ? d->value : d->value > d->min ? d->value - 1 : d->value + 1;

			if (!strcmp(d->name, "low_watermark") &&
			    v >= st.tunables.high_watermark)
				v = st.tunables.high_watermark - 1;
			if (!strcmp(d->name, "high_watermark") &&
			    v <= st.tunables.low_watermark)
				v = st.tunables.low_watermark + 1;
			init_hdr(&t, sizeof(t));
			sel_name(&t.cache, cache_name);
			strcpy(t.name, d->name);
			t.value = v;
			r = xioctl(fd, STASH_IOC_SET_TUNABLE, &t);
			init_hdr(&g, sizeof(g));
			sel_name(&g.cache, cache_name);
			strcpy(g.name, d->name);
			result(!r && !xioctl(fd, STASH_IOC_GET_TUNABLE, &g) &&
			       g.value == v && g.min == d->min && g.max == d->max,
			       "SET_TUNABLE %s = %llu reads back as %llu", d->name,
			       (unsigned long long)v, (unsigned long long)g.value);
		}
	}

	/* The watermarks must stay ordered. */
	init_hdr(&t, sizeof(t));
	sel_name(&t.cache, cache_name);
	strcpy(t.name, "low_watermark");
	t.value = st.tunables.high_watermark;
	expect(-EINVAL, STASH_IOC_SET_TUNABLE, &t, "SET_TUNABLE low_watermark = high");
	strcpy(t.name, "high_watermark");
	t.value = st.tunables.low_watermark;
	expect(-EINVAL, STASH_IOC_SET_TUNABLE, &t, "SET_TUNABLE high_watermark = low");

	init_hdr(&t, sizeof(t));
	sel_name(&t.cache, cache_name);
	strcpy(t.name, "no_such_tunable");
	expect(-EINVAL, STASH_IOC_SET_TUNABLE, &t, "SET_TUNABLE unknown name");
	t.name[0] = '\0';
	expect(-EINVAL, STASH_IOC_SET_TUNABLE, &t, "SET_TUNABLE empty name");
	memset(t.name, 'i', sizeof(t.name));
	expect(-EINVAL, STASH_IOC_SET_TUNABLE, &t, "SET_TUNABLE name without a NUL");
}

static void test_reset_flush_invalidate(void)
{
	struct stash_ioc_status st;
	struct stash_ioc_cmd c;

	init_hdr(&c, sizeof(c));
	sel_name(&c.cache, cache_name);
	result(!xioctl(fd, STASH_IOC_RESET_COUNTERS, &c), "RESET_COUNTERS");
	snapshot(&st);
	result(!st.counters.read_hits && !st.counters.read_misses &&
	       !st.counters.write_hits && !st.counters.write_misses &&
	       !st.counters.promotions && !st.counters.invalidations,
	       "counters are zero after RESET_COUNTERS");
	result(!xioctl(fd, STASH_IOC_FLUSH, &c), "FLUSH");
	result(!xioctl(fd, STASH_IOC_INVALIDATE, &c), "INVALIDATE");
	snapshot(&st);
	result(st.used_blocks == st.dirty_blocks,
	       "after INVALIDATE only dirty blocks are cached (%llu used, %llu dirty)",
	       (unsigned long long)st.used_blocks,
	       (unsigned long long)st.dirty_blocks);
}

static void test_unknown_cmds(void)
{
	static const unsigned int nrs[] = { 0x09, 0x10, 0x7f, 0xff };
	char buf[256] = { 0 };
	char what[64];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(nrs); i++) {
		unsigned long cmd = _IOWR(STASH_IOCTL_MAGIC, nrs[i], struct stash_ioc_cmd);

		snprintf(what, sizeof(what), "unknown ioctl nr %#x", nrs[i]);
		expect(-ENOTTY, cmd, buf, what);
	}
}

/*
 * The cache's table is not live (suspended, or loaded and not resumed):
 * reading works, every ioctl that would change the cache fails with EBUSY
 * and changes nothing; bad arguments are still EINVAL.
 */
static int run_not_live(void)
{
	union {
		struct stash_ioc_status s;
		char bytes[1024];
	} a;
	struct stash_ioc_cache *sel = (void *)(a.bytes + 8);
	struct stash_ioc_status st;
	struct stash_ioc_mode *m = (void *)a.bytes;
	struct stash_ioc_list *l = (void *)a.bytes;
	char what[128];
	unsigned int i, by, n;
	int r;

	snapshot(&st);
	cache_major = st.major;
	cache_minor = st.minor;
	result(!(st.flags & STASH_IOC_F_LIVE), "STATUS: LIVE flag clear (flags %#x)",
	       st.flags);
	for (i = 0; i < ARRAY_SIZE(iocs); i++) {
		const struct ioc *io = &iocs[i];

		for (by = 0; by < (io->has_sel ? 2u : 1u); by++) {
			build(io, &a, &st);
			if (by)
				sel_dev(sel, cache_major, cache_minor);
			/* Ask for a real change where there is a value. */
			if (io->cmd == STASH_IOC_SET_MODE)
				m->mode = (st.mode + 1) % 3;
			if (io->cmd == STASH_IOC_SET_TUNABLE)
				((struct stash_ioc_tunable *)a.bytes)->value =
					st.tunables.idle_ms + 1;
			snprintf(what, sizeof(what), "%s on a table that is not live%s",
				 io->name, by ? ", by device number" : "");
			if (io->changes) {
				expect(-EBUSY, io->cmd, &a, what);
				continue;
			}
			r = xioctl(fd, io->cmd, &a);
			result(!r, "%s: %s (want success)", what, errname(r));
		}
	}
	build(&iocs[3], &a, &st);
	m->mode = 7;
	expect(-EINVAL, STASH_IOC_SET_MODE, &a, "SET_MODE 7 on a table that is not live");

	/* LIST shows it, not live. */
	build(&iocs[1], &a, &st);
	r = xioctl(fd, STASH_IOC_LIST, &a);
	for (n = 0; !r && n < l->count && n < ARRAY_SIZE(list_buf); n++)
		if (list_buf[n].major == cache_major && list_buf[n].minor == cache_minor)
			break;
	result(!r && n < l->count && n < ARRAY_SIZE(list_buf) &&
	       !(list_buf[n].flags & STASH_IOC_F_LIVE),
	       "LIST shows the cache without the LIVE flag");
	return 0;
}

/* Without CAP_SYS_ADMIN: every ioctl is refused, unknown ones are ENOTTY. */
static int run_unpriv(void)
{
	union {
		struct stash_ioc_status s;
		char bytes[1024];
	} a;
	struct stash_ioc_status st;
	unsigned int i;
	int r;

	memset(&st, 0, sizeof(st));
	st.tunables.idle_ms = 2000;
	for (i = 0; i < ARRAY_SIZE(iocs); i++) {
		build(&iocs[i], &a, &st);
		if (iocs[i].has_sel)
			sel_name((struct stash_ioc_cache *)(a.bytes + 8), cache_name);
		r = xioctl(fd, iocs[i].cmd, &a);
		result(r == -EPERM, "%s without CAP_SYS_ADMIN: %s", iocs[i].name,
		       errname(r));
		r = xioctl(fd, iocs[i].cmd, NULL);
		result(r == -EPERM, "%s without CAP_SYS_ADMIN, NULL argument: %s",
		       iocs[i].name, errname(r));
	}
	r = xioctl(fd, _IOWR(STASH_IOCTL_MAGIC, 0x7f, struct stash_ioc_cmd), &a);
	result(r == -ENOTTY, "unknown ioctl without CAP_SYS_ADMIN: %s", errname(r));
	return 0;
}

int main(int argc, char **argv)
{
	struct stash_ioc_status st;
	bool unpriv = false, not_live = false;
	unsigned int i;

	page_size = sysconf(_SC_PAGESIZE);
	if (argc == 3 && !strcmp(argv[1], "--not-live")) {
		not_live = true;
		cache_name = argv[2];
	} else if (argc == 4 && !strcmp(argv[1], "--unpriv")) {
		unpriv = true;
		cache_name = argv[2];
		if (sscanf(argv[3], "%u:%u", &cache_major, &cache_minor) != 2)
			return 2;
	} else if (argc == 2) {
		cache_name = argv[1];
	} else {
		fprintf(stderr, "usage: %s NAME | --unpriv NAME MAJOR:MINOR | --not-live NAME\n",
			argv[0]);
		return 2;
	}
	fd = ctl_open_fd();
	if (fd < 0) {
		perror(CONTROL_PATH);
		return 2;
	}

	if (unpriv) {
		run_unpriv();
	} else if (not_live) {
		run_not_live();
	} else {
		snapshot(&st);
		cache_major = st.major;
		cache_minor = st.minor;
		for (i = 0; i < ARRAY_SIZE(iocs); i++)
			test_generic(&iocs[i]);
		test_version();
		test_list();
		test_status();
		test_set_mode();
		test_tunables();
		test_reset_flush_invalidate();
		test_unknown_cmds();
	}
	printf("%u passed, %u failed\n", nr_ok, nr_fail);
	return nr_fail ? 1 : 0;
}
