/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dm-stash: the interface shared by the kernel module and stashctl.
 *
 * Every ioctl argument has fixed-width fields, natural alignment with
 * explicit padding, __u64 for user pointers, a size field the kernel checks
 * and reserved fields that must be zero.
 */
#ifndef _UAPI_LINUX_DM_STASH_H
#define _UAPI_LINUX_DM_STASH_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define STASH_TARGET_NAME	"stash"
#define STASH_CONTROL_NAME	"stash-control"

#define STASH_VERSION_MAJOR	0
#define STASH_VERSION_MINOR	1
#define STASH_VERSION_PATCH	0

#endif /* _UAPI_LINUX_DM_STASH_H */
