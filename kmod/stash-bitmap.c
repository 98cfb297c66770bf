// SPDX-License-Identifier: GPL-2.0
/*
 * Dirty-block bitmap (see stash-bitmap.h).
 */
#include "stash-bitmap.h"

#define CHUNK_WORDS	STASH_BITMAP_CHUNK_WORDS

static size_t nr_words(u32 nr_bits)
{
	return BITS_TO_LONGS((u64)nr_bits);
}

static size_t nr_chunks(u32 nr_bits)
{
	return (nr_words(nr_bits) + CHUNK_WORDS - 1) / CHUNK_WORDS;
}

/* Words of chunk marks, and of the third level (one bit per such word). */
static size_t nr_mark_words(u32 nr_bits)
{
	return BITS_TO_LONGS(nr_chunks(nr_bits));
}

static size_t nr_group_words(u32 nr_bits)
{
	return BITS_TO_LONGS(nr_mark_words(nr_bits));
}

/* Words of chunk @c (the last one may be short). */
static size_t chunk_len(const struct stash_bitmap *b, size_t c)
{
	size_t left = nr_words(b->nr_bits) - c * CHUNK_WORDS;

	return left < CHUNK_WORDS ? left : CHUNK_WORDS;
}

int stash_bitmap_init(struct stash_bitmap *b, u32 nr_bits)
{
	b->nr_bits = nr_bits;
	b->nr_set = 0;
	b->words = stash_zalloc_array(nr_words(nr_bits), sizeof(long));
	b->chunks = stash_zalloc_array(nr_mark_words(nr_bits), sizeof(long));
	b->groups = stash_zalloc_array(nr_group_words(nr_bits), sizeof(long));
	if (b->words && b->chunks && b->groups)
		return 0;
	stash_bitmap_exit(b);
	return -1;
}

void stash_bitmap_exit(struct stash_bitmap *b)
{
	stash_free_array(b->words);
	stash_free_array(b->chunks);
	stash_free_array(b->groups);
	b->words = NULL;
	b->chunks = NULL;
	b->groups = NULL;
}

/* Mark chunk @c, and its word of marks in the third level. */
static void mark(struct stash_bitmap *b, size_t c)
{
	__set_bit(c, b->chunks);
	__set_bit(c / BITS_PER_LONG, b->groups);
}

/* Drop chunk @c's mark; the third level follows its word of marks. */
static void unmark(struct stash_bitmap *b, size_t c)
{
	__clear_bit(c, b->chunks);
	if (!b->chunks[c / BITS_PER_LONG])
		__clear_bit(c / BITS_PER_LONG, b->groups);
}

bool stash_bitmap_set(struct stash_bitmap *b, u32 i)
{
	if (test_bit(i, b->words))
		return false;
	__set_bit(i, b->words);
	mark(b, i / BITS_PER_LONG / CHUNK_WORDS);
	b->nr_set++;
	return true;
}

/* The chunk's mark stays: stash_bitmap_next() drops it once it is empty. */
bool stash_bitmap_clear(struct stash_bitmap *b, u32 i)
{
	if (!test_bit(i, b->words))
		return false;
	__clear_bit(i, b->words);
	b->nr_set--;
	return true;
}

/*
 * The first marked chunk at or after @c, or nr_chunks.  A word of marks
 * is non-zero only if its third-level bit is set, so only the third level
 * is scanned between marked words.
 */
static size_t next_marked(const struct stash_bitmap *b, size_t c)
{
	size_t n = nr_chunks(b->nr_bits), w = c / BITS_PER_LONG, g;
	size_t nw = nr_mark_words(b->nr_bits), ng = nr_group_words(b->nr_bits);
	unsigned long word, gword;

	if (c >= n)
		return n;
	word = b->chunks[w] & (~0ul << (c % BITS_PER_LONG));
	while (!word) {
		if (++w >= nw)
			return n;
		g = w / BITS_PER_LONG;
		gword = b->groups[g] & (~0ul << (w % BITS_PER_LONG));
		while (!gword) {
			if (++g >= ng)
				return n;
			gword = b->groups[g];
		}
		w = g * BITS_PER_LONG + __ffs(gword);
		if (w >= nw)
			return n;
		word = b->chunks[w];
	}
	c = w * BITS_PER_LONG + __ffs(word);
	return c < n ? c : n;
}

u32 stash_bitmap_next(struct stash_bitmap *b, u32 start)
{
	size_t w, c, end, n = nr_chunks(b->nr_bits);
	unsigned long word;

	if (start >= b->nr_bits)
		return b->nr_bits;
	w = start / BITS_PER_LONG;
	c = w / CHUNK_WORDS;
	word = b->words[w] & (~0ul << (start % BITS_PER_LONG));
	if (!test_bit(c, b->chunks))
		goto next_chunk;
	for (;;) {
		end = c * CHUNK_WORDS + chunk_len(b, c);
		for (;;) {
			if (word) {
				u64 i = (u64)w * BITS_PER_LONG + __ffs(word);

				return i < b->nr_bits ? (u32)i : b->nr_bits;
			}
			if (++w >= end)
				break;
			word = b->words[w];
		}
		/* Searched from its first word: the chunk is empty. */
		if (start <= c * CHUNK_WORDS * BITS_PER_LONG)
			unmark(b, c);
next_chunk:
		c = next_marked(b, c + 1);
		if (c >= n)
			return b->nr_bits;
		w = c * CHUNK_WORDS;
		word = b->words[w];
	}
}

/* Zero the words of every chunk @b marks, and the marks. */
static void zero_marked(struct stash_bitmap *b)
{
	size_t c, g, n = nr_chunks(b->nr_bits);

	for (c = next_marked(b, 0); c < n; c = next_marked(b, c + 1))
		memset(b->words + c * CHUNK_WORDS, 0,
		       chunk_len(b, c) * sizeof(long));
	for (g = 0; g < nr_group_words(b->nr_bits); g++) {
		unsigned long gword = b->groups[g];

		while (gword) {
			b->chunks[g * BITS_PER_LONG + __ffs(gword)] = 0;
			gword &= gword - 1;
		}
		b->groups[g] = 0;
	}
}

static bool chunk_empty(const struct stash_bitmap *b, size_t c)
{
	const unsigned long *w = b->words + c * CHUNK_WORDS;
	size_t i, len = chunk_len(b, c);

	for (i = 0; i < len; i++)
		if (w[i])
			return false;
	return true;
}

void stash_bitmap_copy(struct stash_bitmap *dst, struct stash_bitmap *src)
{
	size_t c, n = nr_chunks(src->nr_bits);

	zero_marked(dst);
	for (c = next_marked(src, 0); c < n; c = next_marked(src, c + 1)) {
		/* A bitmap that is only copied (dirty) sheds its marks here. */
		if (chunk_empty(src, c)) {
			unmark(src, c);
			continue;
		}
		memcpy(dst->words + c * CHUNK_WORDS, src->words + c * CHUNK_WORDS,
		       chunk_len(src, c) * sizeof(long));
		mark(dst, c);
	}
	dst->nr_set = src->nr_set;
}

void stash_bitmap_zero(struct stash_bitmap *b)
{
	zero_marked(b);
	b->nr_set = 0;
}
