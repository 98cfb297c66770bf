/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Dirty-block bitmap: one bit per cache block plus a count of set bits.
 *
 * Pure logic; the caller serialises calls (sc->lock in the module), and
 * setting a bit never blocks or allocates.  A writeback pass works from a
 * snapshot (stash_bitmap_copy() into a second bitmap) so that the live
 * bitmap keeps changing while the pass runs.
 *
 * Second level: one mark per chunk of STASH_BITMAP_CHUNK_WORDS words
 * (4096 bits), set when a bit of the chunk is set and dropped by the first
 * search that finds the chunk empty, or by a copy from the bitmap.  Third
 * level: one bit per word of marks (64 chunks, 256K bits), set while that
 * word may be non-zero.  Searches, copies and zeroing skip unmarked chunks
 * and mark words, so their cost follows the bits set, not the size: a pass
 * over a few dirty blocks of a cache of 64M blocks reads a few chunks, a
 * few words of marks and 32 B of the third level, not 8 MiB or the 2 KiB
 * of marks (whose scans, about five per pass, made a volatile cache's
 * fsync 46% slower at 64M blocks than at 64K).  Callers may test bits in @words
 * directly; they change them only through these calls.
 */
#ifndef STASH_BITMAP_H
#define STASH_BITMAP_H

#include "stash-compat.h"

#define STASH_BITMAP_CHUNK_WORDS	64

struct stash_bitmap {
	unsigned long *words;
	unsigned long *chunks;	/* chunks that may have a bit set */
	unsigned long *groups;	/* words of @chunks that may be non-zero */
	u32 nr_bits;
	u32 nr_set;
};

int stash_bitmap_init(struct stash_bitmap *b, u32 nr_bits);
void stash_bitmap_exit(struct stash_bitmap *b);

static inline bool stash_bitmap_test(const struct stash_bitmap *b, u32 i)
{
	return test_bit(i, b->words);
}

/* Returns true if the bit was clear before. */
bool stash_bitmap_set(struct stash_bitmap *b, u32 i);
/* Returns true if the bit was set before. */
bool stash_bitmap_clear(struct stash_bitmap *b, u32 i);
/* The first set bit at or after @start, or nr_bits (drops stale marks). */
u32 stash_bitmap_next(struct stash_bitmap *b, u32 start);
/* @dst becomes a copy of @src (same size); @src drops stale marks. */
void stash_bitmap_copy(struct stash_bitmap *dst, struct stash_bitmap *src);
void stash_bitmap_zero(struct stash_bitmap *b);

#endif /* STASH_BITMAP_H */
