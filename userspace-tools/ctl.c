// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl: the control device /dev/stash-control and its ioctls.
 *
 * ctl_open() finds the device (making its node from sysfs when there is
 * none or a stale one, as there is no udev everywhere), checks that the
 * module speaks our interface version, and keeps the descriptor.  The
 * wrappers fill in size and version and turn errors into messages and
 * exit codes.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE		/* makedev() */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "stashctl.h"

#define CONTROL_PATH	"/dev/" STASH_CONTROL_NAME
#define CONTROL_SYSFS	"/sys/class/misc/" STASH_CONTROL_NAME "/dev"
#define MODULE_SYSFS	"/sys/module/dm_stash"

static int ctl_fd = -1;
bool ctl_quiet;		/* say nothing about errors (version) */

static const char *const mode_names[] = {
	[STASH_UAPI_MODE_WRITEAROUND] = "writearound",
	[STASH_UAPI_MODE_WRITETHROUGH] = "writethrough",
	[STASH_UAPI_MODE_WRITEBACK] = "writeback",
};

const char *mode_name(uint32_t mode)
{
	return mode < ARRAY_SIZE(mode_names) ? mode_names[mode] : "unknown";
}

int mode_from_name(const char *name, uint32_t *mode)
{
	uint32_t i;

	for (i = 0; i < ARRAY_SIZE(mode_names); i++) {
		if (!strcmp(name, mode_names[i])) {
			*mode = i;
			return 0;
		}
	}
	return -1;
}

bool module_loaded(void)
{
	return !access(MODULE_SYSFS, F_OK);
}

static int no_module(void)
{
	errorf("the dm-stash module is not loaded; load it with "
	       "'modprobe dm-stash' (or 'insmod dm-stash.ko') and try again");
	return EXIT_NO_MODULE;
}

static int no_permission(const char *what)
{
	errorf("%s: permission denied; stashctl needs root (CAP_SYS_ADMIN)",
	       what);
	return EXIT_PERM;
}

/* (Re)make the control node from the number in sysfs. */
static int make_control_node(void)
{
	unsigned int major, minor;
	FILE *f = fopen(CONTROL_SYSFS, "r");
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "%u:%u", &major, &minor);
	fclose(f);
	if (n != 2)
		return -EINVAL;
	if (unlink(CONTROL_PATH) && errno != ENOENT)
		return -errno;
	if (mknod(CONTROL_PATH, S_IFCHR | 0600, makedev(major, minor)))
		return -errno;
	return 0;
}

/* Does the node at CONTROL_PATH have the number sysfs shows? */
static bool control_node_current(void)
{
	unsigned int major, minor;
	struct stat st;
	FILE *f;
	int n;

	if (stat(CONTROL_PATH, &st))
		return false;
	f = fopen(CONTROL_SYSFS, "r");
	if (!f)
		return true;	/* cannot tell: try it */
	n = fscanf(f, "%u:%u", &major, &minor);
	fclose(f);
	return n != 2 || (S_ISCHR(st.st_mode) &&
			  st.st_rdev == makedev(major, minor));
}

int ctl_open(void)
{
	struct stash_ioc_version v;
	int r;

	if (ctl_fd >= 0)
		return 0;
	if (!module_loaded())
		return no_module();
	if (!control_node_current()) {
		r = make_control_node();
		if (r == -EACCES || r == -EPERM)
			return no_permission("cannot create " CONTROL_PATH);
		if (r) {
			errorf("the dm-stash module is loaded but %s is missing "
			       "and cannot be created: %s", CONTROL_PATH,
			       strerror(-r));
			return EXIT_NO_MODULE;
		}
	}
	ctl_fd = open(CONTROL_PATH, O_RDWR | O_CLOEXEC);
	if (ctl_fd < 0) {
		r = errno;
		if (r == EACCES || r == EPERM)
			return no_permission("cannot open " CONTROL_PATH);
		if ((r == ENXIO || r == ENODEV || r == ENOENT) && !module_loaded())
			return no_module();
		errorf("cannot open %s: %s", CONTROL_PATH, strerror(r));
		return EXIT_FAILED;
	}

	memset(&v, 0, sizeof(v));
	v.size = sizeof(v);
	v.version = STASH_UAPI_VERSION;
	if (ioctl(ctl_fd, STASH_IOC_VERSION, &v)) {
		r = errno;
		close(ctl_fd);
		ctl_fd = -1;
		if (r == EPERM)
			return no_permission("the control device");
		errorf("the dm-stash module does not answer the version request "
		       "(%s): it does not match this stashctl (%s)", strerror(r),
		       STASHCTL_VERSION);
		return EXIT_FAILED;
	}
	if (v.uapi_version < STASH_UAPI_VERSION) {
		close(ctl_fd);
		ctl_fd = -1;
		errorf("the dm-stash module %u.%u.%u speaks interface version %u, "
		       "older than this stashctl's %u: load a matching module",
		       v.module_major, v.module_minor, v.module_patch,
		       v.uapi_version, STASH_UAPI_VERSION);
		return EXIT_FAILED;
	}
	return 0;
}

/* The ioctl; -errno on failure. */
int ctl_ioctl(unsigned long cmd, void *arg)
{
	int r;

	do {
		r = ioctl(ctl_fd, cmd, arg);
	} while (r && errno == EINTR);
	return r ? -errno : 0;
}

void ctl_select(struct stash_ioc_cache *sel, const char *name)
{
	memset(sel, 0, sizeof(*sel));
	snprintf(sel->name, sizeof(sel->name), "%s", name);
}

/*
 * Explain a failed ioctl on cache @name; returns the exit code.  EINVAL
 * is left to the caller when it can say more (it gets EXIT_USAGE here).
 */
int ctl_error(int err, const char *what, const char *name)
{
	switch (err) {
	case -ENODEV:
		errorf("no dm-stash cache named '%s' ('%s list' shows them)",
		       name, progname);
		return EXIT_NOT_FOUND;
	case -EPERM:
	case -EACCES:
		return no_permission(what);
	case -EBUSY:
		errorf("%s %s: the cache is suspended or its table is not resumed "
		       "yet, and changes nothing until it is ('dmsetup resume %s')",
		       what, name, name);
		return EXIT_FAILED;
	case -EINVAL:
		errorf("%s %s: the module refused the request (invalid argument)",
		       what, name);
		return EXIT_USAGE;
	case -ENOTTY:
		errorf("%s: the module does not know this request; is it older "
		       "than stashctl %s?", what, STASHCTL_VERSION);
		return EXIT_FAILED;
	default:
		errorf("%s %s: %s", what, name, strerror(-err));
		return EXIT_FAILED;
	}
}

static bool name_ok(const char *name)
{
	if (!*name || strlen(name) >= STASH_NAME_LEN) {
		errorf("'%s' is not a device-mapper name (1..%d characters)",
		       name, STASH_NAME_LEN - 1);
		return false;
	}
	return true;
}

int ctl_version(struct stash_ioc_version *v)
{
	int r = ctl_open();

	if (r)
		return r;
	memset(v, 0, sizeof(*v));
	v->size = sizeof(*v);
	v->version = STASH_UAPI_VERSION;
	r = ctl_ioctl(STASH_IOC_VERSION, v);
	return r ? ctl_error(r, "version", "") : 0;
}

static int status_by(struct stash_ioc_status *st, const char *label)
{
	int r;

	st->size = sizeof(*st);
	st->version = STASH_UAPI_VERSION;
	r = ctl_ioctl(STASH_IOC_STATUS, st);
	return r ? ctl_error(r, "status", label) : 0;
}

int ctl_status(const char *name, struct stash_ioc_status *st)
{
	int r;

	if (!name_ok(name))
		return EXIT_USAGE;
	r = ctl_open();
	if (r)
		return r;
	memset(st, 0, sizeof(*st));
	ctl_select(&st->cache, name);
	return status_by(st, name);
}

/* Quiet: for caches that LIST just showed (they may be gone already). */
int ctl_status_dev(uint32_t major, uint32_t minor, struct stash_ioc_status *st)
{
	int r;

	memset(st, 0, sizeof(*st));
	st->cache.major = major;
	st->cache.minor = minor;
	st->size = sizeof(*st);
	st->version = STASH_UAPI_VERSION;
	r = ctl_ioctl(STASH_IOC_STATUS, st);
	if (r && r != -ENODEV)
		return ctl_error(r, "status", "");
	return r ? EXIT_NOT_FOUND : 0;
}

int ctl_list(struct stash_ioc_list_entry **entries, uint32_t *count)
{
	struct stash_ioc_list_entry *e = NULL, *ne;
	struct stash_ioc_list l;
	uint32_t cap = 16;
	int r = ctl_open();

	if (r)
		return r;
	for (;;) {
		ne = realloc(e, cap * sizeof(*e));
		if (!ne) {
			free(e);
			errorf("out of memory");
			return EXIT_FAILED;
		}
		e = ne;
		memset(&l, 0, sizeof(l));
		l.size = sizeof(l);
		l.version = STASH_UAPI_VERSION;
		l.entries = (uintptr_t)e;
		l.capacity = cap;
		l.entry_size = sizeof(*e);
		r = ctl_ioctl(STASH_IOC_LIST, &l);
		if (r) {
			free(e);
			return ctl_error(r, "list", "");
		}
		if (l.count <= cap)
			break;
		cap = l.count + 16;	/* more appeared meanwhile: retry */
	}
	*entries = e;
	*count = l.count;
	return 0;
}

int ctl_cmd(const char *name, unsigned long cmd)
{
	struct stash_ioc_cmd c;
	const char *what = cmd == STASH_IOC_FLUSH ? "flush" :
			   cmd == STASH_IOC_INVALIDATE ? "invalidate" :
			   "reset counters";
	int r;

	if (!name_ok(name))
		return EXIT_USAGE;
	r = ctl_open();
	if (r)
		return r;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.version = STASH_UAPI_VERSION;
	ctl_select(&c.cache, name);
	r = ctl_ioctl(cmd, &c);
	return r ? ctl_error(r, what, name) : 0;
}

int ctl_set_mode(const char *name, uint32_t mode)
{
	struct stash_ioc_mode m;
	int r;

	if (!name_ok(name))
		return EXIT_USAGE;
	r = ctl_open();
	if (r)
		return r;
	memset(&m, 0, sizeof(m));
	m.size = sizeof(m);
	m.version = STASH_UAPI_VERSION;
	ctl_select(&m.cache, name);
	m.mode = mode;
	r = ctl_ioctl(STASH_IOC_SET_MODE, &m);
	return r ? ctl_error(r, "mode", name) : 0;
}

/*
 * Tunable @key of cache @name, or with @key NULL the one at @index.
 * -EINVAL (unknown tunable, index past the end) is returned as is, quietly.
 */
int ctl_get_tunable(const char *name, const char *key, uint32_t index,
		    struct stash_ioc_tunable *t)
{
	int r;

	if (!name_ok(name))
		return EXIT_USAGE;
	r = ctl_open();
	if (r)
		return r;
	memset(t, 0, sizeof(*t));
	t->size = sizeof(*t);
	t->version = STASH_UAPI_VERSION;
	ctl_select(&t->cache, name);
	if (key) {
		if (strlen(key) >= sizeof(t->name))
			return -EINVAL;
		snprintf(t->name, sizeof(t->name), "%s", key);
	} else {
		t->index = index;
	}
	r = ctl_ioctl(STASH_IOC_GET_TUNABLE, t);
	if (r == -EINVAL)
		return r;
	return r ? ctl_error(r, "get", name) : 0;
}

/* Like ctl_get_tunable(), but *@err gets the errno of a refused value. */
int ctl_set_tunable(const char *name, const char *key, uint64_t value,
		    int *err)
{
	struct stash_ioc_tunable t;
	int r;

	*err = 0;
	if (!name_ok(name))
		return EXIT_USAGE;
	r = ctl_open();
	if (r)
		return r;
	memset(&t, 0, sizeof(t));
	t.size = sizeof(t);
	t.version = STASH_UAPI_VERSION;
	ctl_select(&t.cache, name);
	if (strlen(key) >= sizeof(t.name)) {
		*err = -EINVAL;
		return 0;
	}
	snprintf(t.name, sizeof(t.name), "%s", key);
	t.value = value;
	r = ctl_ioctl(STASH_IOC_SET_TUNABLE, &t);
	if (r == -EINVAL) {
		*err = r;
		return 0;
	}
	return r ? ctl_error(r, "set", name) : 0;
}
