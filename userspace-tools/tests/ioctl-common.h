/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the ioctl test programs: the control device, argument
 * set-up and raw calls that return -errno.
 */
#ifndef STASH_IOCTL_COMMON_H
#define STASH_IOCTL_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include <linux/dm-stash.h>

#define CONTROL_PATH "/dev/" STASH_CONTROL_NAME
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(sizeof(struct stash_ioc_status) == STASH_IOC_STATUS_SIZE, "status");
_Static_assert(sizeof(struct stash_ioc_tunable) == STASH_IOC_TUNABLE_SIZE, "tunable");
_Static_assert(sizeof(struct stash_ioc_cmd) == STASH_IOC_CMD_SIZE, "cmd");
_Static_assert(sizeof(struct stash_ioc_mode) == STASH_IOC_MODE_SIZE, "mode");
_Static_assert(sizeof(struct stash_ioc_list) == STASH_IOC_LIST_SIZE, "list");
_Static_assert(sizeof(struct stash_ioc_version) == STASH_IOC_VERSION_SIZE, "version");

static inline int ctl_open_fd(void)
{
	return open(CONTROL_PATH, O_RDWR | O_CLOEXEC);
}

/* The ioctl; 0 or -errno. */
static inline int xioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

/* Zero @arg of @size bytes and set its size and version header. */
static inline void init_hdr(void *arg, size_t size)
{
	__u32 hdr[2] = { (__u32)size, STASH_UAPI_VERSION };

	memset(arg, 0, size);
	memcpy(arg, hdr, sizeof(hdr));
}

static inline void sel_name(struct stash_ioc_cache *sel, const char *name)
{
	memset(sel, 0, sizeof(*sel));
	snprintf(sel->name, sizeof(sel->name), "%s", name);
}

static inline void sel_dev(struct stash_ioc_cache *sel, unsigned int major,
			   unsigned int minor)
{
	memset(sel, 0, sizeof(*sel));
	sel->major = major;
	sel->minor = minor;
}

static inline const char *errname(int e)
{
	switch (e < 0 ? -e : e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case ENODEV: return "ENODEV";
	case ENOTTY: return "ENOTTY";
	case ENOMEM: return "ENOMEM";
	case ENXIO: return "ENXIO";
	case EBUSY: return "EBUSY";
	case EACCES: return "EACCES";
	default: return "E?";
	}
}

#endif /* STASH_IOCTL_COMMON_H */
