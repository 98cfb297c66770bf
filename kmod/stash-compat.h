/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one place where the pure-logic files (mapping, policy, bitmap) learn
 * whether they are built into the kernel module or into a userspace unit
 * test, simulator or fuzzer.  Kernel-version differences live here too.
 */
#ifndef STASH_COMPAT_H
#define STASH_COMPAT_H

#ifdef __KERNEL__

#include <linux/types.h>
#include <linux/kernel.h>
#include <linux/bitops.h>
#include <linux/hash.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/dm-io.h>
#include <linux/blkdev.h>
#include <linux/crc32c.h>

static inline u32 stash_crc32c(u32 seed, const void *p, size_t len)
{
	return crc32c(seed, p, len);
}

/*
 * The tables sized by the devices: a failure is the constructor's to
 * report (a dm error and -ENOMEM), without the allocator's stack dump.
 */
#define STASH_GFP_TABLE	(GFP_KERNEL | __GFP_NOWARN)

static inline void *stash_zalloc_array(size_t n, size_t size)
{
	return kvcalloc(n, size, STASH_GFP_TABLE);
}

/* Not zeroed: for an array its caller fills in one pass anyway. */
static inline void *stash_alloc_array(size_t n, size_t size)
{
	return kvmalloc_array(n, size, STASH_GFP_TABLE);
}

/*
 * dm_io() gained an ioprio argument (6.10, backported to later 6.1.y);
 * Kbuild tests the header and defines STASH_DM_IO_HAS_IOPRIO.
 */
static inline int stash_dm_io(struct dm_io_request *req,
			      struct dm_io_region *region)
{
#ifdef STASH_DM_IO_HAS_IOPRIO
	return dm_io(req, 1, region, NULL, 0);
#else
	return dm_io(req, 1, region, NULL);
#endif
}

void stash_vfree_deferred(void *p);

/*
 * A table from vmalloc goes to stash_vfree_deferred(): returning 1 GiB of
 * pages to the allocator took most of a remove of a cache of 64M blocks
 * (1.1 of 1.3 s), and the remove need not wait for it.
 */
static inline void stash_free_array(void *p)
{
	if (is_vmalloc_addr(p))
		stash_vfree_deferred(p);
	else
		kfree(p);
}

/*
 * Add @delta to a byte shared with CPUs that do not hold the caller's lock
 * and return the new value.  A value-returning atomic is fully ordered
 * (Documentation/atomic_t.txt), which the map's lock-free unpin relies
 * on.  Byte cmpxchg: x86, arm64, powerpc and s390 have it.
 */
static inline u8 stash_atomic_add_u8(u8 *p, int delta)
{
	u8 old = READ_ONCE(*p);

	while (!try_cmpxchg(p, &old, (u8)(old + delta)))
		;
	return (u8)(old + delta);
}

/*
 * The target's I/O size hints, in bytes.  6.12 removed blk_limits_io_min()
 * and blk_limits_io_opt() ("block: Remove unused blk_limits_io_{min,opt}",
 * after "dm: stop using blk_limits_io_{min,opt}"): the in-tree targets set
 * the fields, and queue_limits_set() raises io_min to the physical block
 * size when it validates the table's limits, as the helper did on 6.1.
 * Kbuild defines STASH_HAVE_BLK_LIMITS_IO_MIN while blkdev.h has it.
 */
static inline void stash_limits_io_hints(struct queue_limits *limits,
					 unsigned int io_min,
					 unsigned int io_opt)
{
#ifdef STASH_HAVE_BLK_LIMITS_IO_MIN
	blk_limits_io_min(limits, io_min);
	blk_limits_io_opt(limits, io_opt);
#else
	limits->io_min = io_min;
	limits->io_opt = io_opt;
#endif
}

/*
 * Give @limits the discard limits of @from (the origin's, for discard
 * passdown).  6.11 removed queue_limits.discard_misaligned ("block: remove
 * the discard_alignment flag"); Kbuild defines STASH_HAVE_DISCARD_MISALIGNED
 * while blkdev.h has it.  Since 6.9 ("block: add a max_user_discard_sectors
 * queue limit") queue_limits_set() derives max_discard_sectors from
 * max_hw_discard_sectors, so that copy is then redundant but harmless.
 */
static inline void stash_limits_copy_discard(struct queue_limits *limits,
					     const struct queue_limits *from)
{
	limits->max_discard_sectors = from->max_discard_sectors;
	limits->max_hw_discard_sectors = from->max_hw_discard_sectors;
	limits->discard_granularity = from->discard_granularity;
	limits->discard_alignment = from->discard_alignment;
#ifdef STASH_HAVE_DISCARD_MISALIGNED
	limits->discard_misaligned = from->discard_misaligned;
#endif
}

/* Has @bdev's disk been removed (del_gendisk), or is its queue dying? */
static inline bool stash_bdev_gone(struct block_device *bdev)
{
	struct gendisk *disk = bdev->bd_disk;

	return test_bit(GD_DEAD, &disk->state) || !disk_live(disk) ||
	       blk_queue_dying(bdev_get_queue(bdev));
}

/* Yield in a long loop of the pure code (nothing in userspace). */
#define stash_cond_resched()	cond_resched()

#else /* userspace */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned int __le32;
typedef unsigned long long __le64;

/* Without endian.h's htole32() and friends: they need _DEFAULT_SOURCE. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define cpu_to_le32(x) ((u32)(x))
#define cpu_to_le64(x) ((u64)(x))
#else
#define cpu_to_le32(x) __builtin_bswap32((u32)(x))
#define cpu_to_le64(x) __builtin_bswap64((u64)(x))
#endif
#define le32_to_cpu(x) cpu_to_le32(x)
#define le64_to_cpu(x) cpu_to_le64(x)
#define BIT_ULL(n) (1ull << (n))

/* Castagnoli CRC, bitwise: the userspace builds are tests and tools. */
static inline u32 stash_crc32c(u32 crc, const void *p, size_t len)
{
	const unsigned char *b = p;
	int k;

	while (len--) {
		crc ^= *b++;
		for (k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
	}
	return crc;
}

#define __bitwise
#define __force
#define unlikely(x) __builtin_expect(!!(x), 0)
#define likely(x) __builtin_expect(!!(x), 1)
#define U32_MAX ((u32)~0U)
#define BITS_PER_LONG ((int)(8 * sizeof(long)))
#define BITS_TO_LONGS(n) (((n) + BITS_PER_LONG - 1) / BITS_PER_LONG)
#define GOLDEN_RATIO_64 0x61C8864680B583EBull

static inline u32 hash_64(u64 val, unsigned int bits)
{
	return (u32)((val * GOLDEN_RATIO_64) >> (64 - bits));
}

static inline unsigned int ilog2(u64 v)
{
	return 63 - __builtin_clzll(v);
}

static inline u64 rounddown_pow_of_two(u64 v)
{
	return 1ull << ilog2(v);
}

static inline unsigned long __ffs(unsigned long word)
{
	return __builtin_ctzl(word);
}

static inline bool test_bit(unsigned long nr, const unsigned long *addr)
{
	return (addr[nr / BITS_PER_LONG] >> (nr % BITS_PER_LONG)) & 1;
}

/* The first clear bit at or after @start, or @size if none is. */
static inline unsigned long find_next_zero_bit(const unsigned long *addr,
					       unsigned long size,
					       unsigned long start)
{
	unsigned long word;

	if (start >= size)
		return size;
	word = ~addr[start / BITS_PER_LONG] & (~0ul << (start % BITS_PER_LONG));
	start -= start % BITS_PER_LONG;
	while (!word) {
		start += BITS_PER_LONG;
		if (start >= size)
			return size;
		word = ~addr[start / BITS_PER_LONG];
	}
	start += __ffs(word);
	return start < size ? start : size;
}

static inline void __set_bit(unsigned long nr, unsigned long *addr)
{
	addr[nr / BITS_PER_LONG] |= 1ul << (nr % BITS_PER_LONG);
}

static inline void __clear_bit(unsigned long nr, unsigned long *addr)
{
	addr[nr / BITS_PER_LONG] &= ~(1ul << (nr % BITS_PER_LONG));
}

/* The atomic ones, as the kernel's. */
static inline void set_bit(unsigned long nr, unsigned long *addr)
{
	__atomic_fetch_or(&addr[nr / BITS_PER_LONG], 1ul << (nr % BITS_PER_LONG),
			  __ATOMIC_RELAXED);
}

static inline void clear_bit(unsigned long nr, unsigned long *addr)
{
	__atomic_fetch_and(&addr[nr / BITS_PER_LONG],
			   ~(1ul << (nr % BITS_PER_LONG)), __ATOMIC_RELAXED);
}

static inline void *stash_zalloc_array(size_t n, size_t size)
{
	return calloc(n ? n : 1, size);
}

static inline void *stash_alloc_array(size_t n, size_t size)
{
	return n && size > SIZE_MAX / n ? NULL : malloc(n ? n * size : 1);
}

static inline void stash_free_array(void *p)
{
	free(p);
}

#define READ_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE_ONCE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
/* The kernel's full barrier, for the map's reads without its lock. */
#define smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
/* Its write barrier (stash_map_alloc(), hash_insert()). */
#define smp_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
/* Its read barrier (stash_map_pin_lockless()). */
#define smp_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
/* Fully ordered, as the kernel's value-returning atomics. */
#define try_cmpxchg(p, oldp, new) \
	__atomic_compare_exchange_n((p), (oldp), (new), false, \
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)

static inline u8 stash_atomic_add_u8(u8 *p, int delta)
{
	return __atomic_add_fetch(p, (u8)delta, __ATOMIC_SEQ_CST);
}

#define stash_cond_resched()	do { } while (0)

#endif /* __KERNEL__ */

#endif /* STASH_COMPAT_H */
