// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl: creating, removing and inspecting device-mapper devices with
 * libdevmapper.
 *
 * Device nodes: where udev runs, libdevmapper waits for it to make
 * /dev/mapper/NAME (a udev cookie); where it does not (containers, test
 * VMs, early boot), udev sync is turned off and libdevmapper makes the
 * node itself (dm_udev_wait() on a zero cookie, dm_task_update_nodes()).
 *
 * libdevmapper's own messages are collected, not printed: stashctl says
 * what failed itself and adds the last library message.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <libdevmapper.h>

#include "stashctl.h"

/* libdevmapper's log levels (not in its header). */
#define DM_LOG_ERR	3
#define DM_LOG_STDERR	128	/* a flag */

static char dm_last_error[256];

static void dm_logger(int level, const char *file, int line, int dm_errno,
		      const char *f, ...)
	__attribute__((format(printf, 5, 6)));

static void dm_logger(int level, const char *file, int line, int dm_errno,
		      const char *f, ...)
{
	va_list ap;

	(void)file;
	(void)line;
	(void)dm_errno;
	if ((level & ~DM_LOG_STDERR) > DM_LOG_ERR)
		return;
	va_start(ap, f);
	vsnprintf(dm_last_error, sizeof(dm_last_error), f, ap);
	va_end(ap);
}

static bool udev_running(void)
{
	return !access("/run/udev/control", F_OK);
}

static void dm_setup(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	dm_log_with_errno_init(dm_logger);
	if (!udev_running())
		dm_udev_set_sync_support(0);
}

static void say_dm_error(void)
{
	if (dm_last_error[0])
		fprintf(stderr, "%s:   (device-mapper: %s)\n", progname,
			dm_last_error);
}

static int dm_errno_exit(int err, const char *what, const char *name)
{
	switch (err) {
	case EPERM:
	case EACCES:
		errorf("%s %s: permission denied; stashctl needs root "
		       "(CAP_SYS_ADMIN)", what, name);
		return EXIT_PERM;
	case EBUSY:
		errorf("%s %s: device busy: it is open (mounted, or in use by a "
		       "program or another device); close it and try again",
		       what, name);
		return EXIT_FAILED;
	case ENXIO:
	case ENODEV:
		errorf("%s %s: no such device-mapper device", what, name);
		return EXIT_NOT_FOUND;
	case EEXIST:
		errorf("%s %s: a device-mapper device of that name exists "
		       "already", what, name);
		return EXIT_FAILED;
	default:
		return -1;
	}
}

int dm_device_info(const char *name, struct dm_dev_info *info)
{
	struct dm_task *dmt;
	struct dm_info di;
	uint64_t start, length;
	char *type = NULL, *params = NULL;
	int r = EXIT_FAILED, err;

	dm_setup();
	memset(info, 0, sizeof(*info));
	dmt = dm_task_create(DM_DEVICE_TABLE);
	if (!dmt) {
		errorf("cannot talk to device-mapper (is dm-mod loaded?)");
		say_dm_error();
		return EXIT_FAILED;
	}
	if (!dm_task_set_name(dmt, name)) {
		errorf("'%s' is not a valid device-mapper name", name);
		goto out;
	}
	if (!dm_task_run(dmt)) {
		err = dm_task_get_errno(dmt);
		if (err == ENXIO || err == ENODEV) {
			r = 0;		/* no such device */
			goto out;
		}
		r = dm_errno_exit(err, "info", name);
		if (r < 0) {
			errorf("cannot read device-mapper device %s: %s", name,
			       err ? strerror(err) : "failed");
			say_dm_error();
			r = EXIT_FAILED;
		}
		goto out;
	}
	if (!dm_task_get_info(dmt, &di)) {
		errorf("cannot read device-mapper device %s", name);
		goto out;
	}
	r = 0;
	if (!di.exists)
		goto out;
	info->exists = true;
	info->major = di.major;
	info->minor = di.minor;
	info->open_count = di.open_count;
	dm_get_next_target(dmt, NULL, &start, &length, &type, &params);
	if (type)
		snprintf(info->target, sizeof(info->target), "%s", type);
out:
	dm_task_destroy(dmt);
	return r;
}

/* @hint: printed too when the kernel refuses the table (or NULL). */
int dm_create_device(const char *name, uint64_t sectors, const char *params,
		     const char *hint)
{
	char path[64 + STASH_NAME_LEN];
	struct dm_task *dmt;
	uint32_t cookie = 0;
	struct stat st;
	int r = EXIT_FAILED, err;

	dm_setup();
	dmt = dm_task_create(DM_DEVICE_CREATE);
	if (!dmt) {
		errorf("cannot talk to device-mapper (is dm-mod loaded?)");
		say_dm_error();
		return EXIT_FAILED;
	}
	if (!dm_task_set_name(dmt, name) ||
	    !dm_task_add_target(dmt, 0, sectors, STASH_TARGET_NAME, params) ||
	    !dm_task_set_cookie(dmt, &cookie, 0)) {
		errorf("create %s: cannot set up the request", name);
		say_dm_error();
		goto out;
	}
	if (!dm_task_run(dmt)) {
		err = dm_task_get_errno(dmt);
		(void)dm_udev_wait(cookie);
		cookie = 0;
		r = err == EINVAL ? -1 : dm_errno_exit(err, "create", name);
		if (r < 0) {
			errorf("create %s: the kernel refused the table "
			       "'0 %llu %s %s'%s%s", name,
			       (unsigned long long)sectors, STASH_TARGET_NAME,
			       params, err ? ": " : "", err ? strerror(err) : "");
			say_dm_error();
			fprintf(stderr, "%s:   'dmesg | tail' shows the kernel's "
				"reason; nothing was created\n", progname);
			if (hint)
				fprintf(stderr, "%s:   (%s)\n", progname, hint);
			r = EXIT_FAILED;
		}
		goto out;
	}
	(void)dm_udev_wait(cookie);
	cookie = 0;
	dm_task_update_nodes();

	snprintf(path, sizeof(path), "%s/%s", dm_dir(), name);
	if (stat(path, &st) || !S_ISBLK(st.st_mode)) {
		errorf("created %s, but %s did not appear; 'dmsetup mknodes %s' "
		       "makes it", name, path, name);
		r = EXIT_FAILED;
		goto out;
	}
	r = 0;
out:
	if (cookie)
		(void)dm_udev_wait(cookie);
	dm_task_destroy(dmt);
	return r;
}

int dm_remove_device(const char *name)
{
	struct dm_task *dmt;
	uint32_t cookie = 0;
	int r = EXIT_FAILED, err;

	dm_setup();
	dmt = dm_task_create(DM_DEVICE_REMOVE);
	if (!dmt) {
		errorf("cannot talk to device-mapper (is dm-mod loaded?)");
		say_dm_error();
		return EXIT_FAILED;
	}
	if (!dm_task_set_name(dmt, name) || !dm_task_retry_remove(dmt) ||
	    !dm_task_set_cookie(dmt, &cookie, 0)) {
		errorf("remove %s: cannot set up the request", name);
		say_dm_error();
		goto out;
	}
	if (!dm_task_run(dmt)) {
		err = dm_task_get_errno(dmt);
		r = dm_errno_exit(err, "remove", name);
		if (r < 0) {
			errorf("remove %s: %s", name,
			       err ? strerror(err) : "failed");
			say_dm_error();
			r = EXIT_FAILED;
		}
		goto out;
	}
	r = 0;
out:
	(void)dm_udev_wait(cookie);
	dm_task_update_nodes();
	dm_task_destroy(dmt);
	return r;
}
