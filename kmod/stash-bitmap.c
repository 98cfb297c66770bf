// SPDX-License-Identifier: GPL-2.0
/*
 * Dirty-block bitmap (see stash-bitmap.h).
 */
#include "stash-bitmap.h"

static size_t nr_words(u32 nr_bits)
{
	return BITS_TO_LONGS((u64)nr_bits);
}

int stash_bitmap_init(struct stash_bitmap *b, u32 nr_bits)
{
	b->nr_bits = nr_bits;
	b->nr_set = 0;
	b->words = stash_zalloc_array(nr_words(nr_bits), sizeof(long));
	return b->words ? 0 : -1;
}

void stash_bitmap_exit(struct stash_bitmap *b)
{
	stash_free_array(b->words);
	b->words = NULL;
}

bool stash_bitmap_set(struct stash_bitmap *b, u32 i)
{
	if (test_bit(i, b->words))
		return false;
	__set_bit(i, b->words);
	b->nr_set++;
	return true;
}

bool stash_bitmap_clear(struct stash_bitmap *b, u32 i)
{
	if (!test_bit(i, b->words))
		return false;
	__clear_bit(i, b->words);
	b->nr_set--;
	return true;
}

u32 stash_bitmap_next(const struct stash_bitmap *b, u32 start)
{
	size_t w = start / BITS_PER_LONG, n = nr_words(b->nr_bits);
	unsigned long word;

	if (start >= b->nr_bits)
		return b->nr_bits;
	word = b->words[w] & (~0ul << (start % BITS_PER_LONG));
	for (;;) {
		if (word) {
			u64 i = (u64)w * BITS_PER_LONG + __ffs(word);

			return i < b->nr_bits ? (u32)i : b->nr_bits;
		}
		if (++w >= n)
			return b->nr_bits;
		word = b->words[w];
	}
}

void stash_bitmap_copy(struct stash_bitmap *dst, const struct stash_bitmap *src)
{
	memcpy(dst->words, src->words, nr_words(src->nr_bits) * sizeof(long));
	dst->nr_set = src->nr_set;
}

void stash_bitmap_zero(struct stash_bitmap *b)
{
	memset(b->words, 0, nr_words(b->nr_bits) * sizeof(long));
	b->nr_set = 0;
}
