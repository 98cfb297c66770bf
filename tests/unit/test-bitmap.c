// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for the dirty bitmap (kmod/stash-bitmap.c): set and clear
 * report whether they changed the bit and keep nr_set exact;
 * stash_bitmap_next() agrees with a brute-force scan at every start
 * position, for sizes around word boundaries and random contents; copy and
 * zero carry the count along; the chunk marks (second level) never hide a
 * set bit, nor the third level a word of marks.
 */
#include "unit.h"

#include "stash-bitmap.h"

static const u32 sizes[] = { 1, 2, 63, 64, 65, 127, 128, 129, 1000, 4097 };
#define NR_SIZES (sizeof(sizes) / sizeof(sizes[0]))

TEST(bitmap_set_clear_count)
{
	for (unsigned int k = 0; k < NR_SIZES; k++) {
		const u32 n = sizes[k];
		struct stash_bitmap b;

		test_context("%u bits", n);
		REQUIRE_EQ(stash_bitmap_init(&b, n), 0);
		CHECK_EQ(b.nr_set, 0);
		CHECK_EQ(stash_bitmap_next(&b, 0), n);
		for (u32 i = 0; i < n; i += 3) {
			CHECK(stash_bitmap_set(&b, i));
			CHECK(!stash_bitmap_set(&b, i));	/* already set */
			CHECK(stash_bitmap_test(&b, i));
		}
		CHECK_EQ(b.nr_set, (n + 2) / 3);
		for (u32 i = 0; i < n; i++)
			CHECK_EQ(stash_bitmap_test(&b, i), i % 3 == 0);
		CHECK(stash_bitmap_clear(&b, 0));
		CHECK(!stash_bitmap_clear(&b, 0));
		if (n > 1)
			CHECK(!stash_bitmap_clear(&b, 1));	/* never set */
		CHECK_EQ(b.nr_set, (n + 2) / 3 - 1);
		stash_bitmap_zero(&b);
		CHECK_EQ(b.nr_set, 0);
		CHECK_EQ(stash_bitmap_next(&b, 0), n);
		stash_bitmap_exit(&b);
		CHECK(b.words == NULL);
	}
}

static u32 brute_next(const struct stash_bitmap *b, u32 start)
{
	for (u32 i = start; i < b->nr_bits; i++) {
		if (stash_bitmap_test(b, i))
			return i;
	}
	return b->nr_bits;
}

TEST(bitmap_next_vs_brute_force)
{
	uint64_t rs = 77;

	for (unsigned int k = 0; k < NR_SIZES; k++) {
		const u32 n = sizes[k];
		/* Densities from empty to full, in sixteenths. */
		for (unsigned int d = 0; d <= 16; d += 2) {
			struct stash_bitmap b, copy;
			u32 count = 0;

			test_context("%u bits, density %u/16", n, d);
			REQUIRE_EQ(stash_bitmap_init(&b, n), 0);
			REQUIRE_EQ(stash_bitmap_init(&copy, n), 0);
			for (u32 i = 0; i < n; i++) {
				if (unit_rand_below(&rs, 16) < d)
					count += stash_bitmap_set(&b, i);
			}
			CHECK_EQ(b.nr_set, count);
			for (u32 s = 0; s <= n + 1; s++)
				CHECK_EQ(stash_bitmap_next(&b, s), brute_next(&b, s));

			stash_bitmap_copy(&copy, &b);
			CHECK_EQ(copy.nr_set, count);
			for (u32 i = 0; i < n; i++)
				CHECK_EQ(stash_bitmap_test(&copy, i),
					 stash_bitmap_test(&b, i));
			/* The copy is independent of the original. */
			if (n && stash_bitmap_test(&b, 0)) {
				stash_bitmap_clear(&b, 0);
				CHECK(stash_bitmap_test(&copy, 0));
			}
			stash_bitmap_exit(&copy);
			stash_bitmap_exit(&b);
		}
	}
}

TEST(bitmap_empty)
{
	struct stash_bitmap b;

	REQUIRE_EQ(stash_bitmap_init(&b, 0), 0);
	CHECK_EQ(stash_bitmap_next(&b, 0), 0);
	CHECK_EQ(b.nr_set, 0);
	stash_bitmap_exit(&b);
}

/*
 * Every set bit's chunk is marked, and every non-zero word of marks has its
 * third-level bit (else searches, copies and zeroing would skip them).
 */
static bool marks_cover(const struct stash_bitmap *b)
{
	size_t chunks = (BITS_TO_LONGS(b->nr_bits) + STASH_BITMAP_CHUNK_WORDS - 1) /
			STASH_BITMAP_CHUNK_WORDS;

	for (u32 i = 0; i < b->nr_bits; i++) {
		if (stash_bitmap_test(b, i) &&
		    !test_bit(i / BITS_PER_LONG / STASH_BITMAP_CHUNK_WORDS, b->chunks))
			return false;
	}
	for (size_t w = 0; w < BITS_TO_LONGS(chunks); w++) {
		if (b->chunks[w] && !test_bit(w, b->groups))
			return false;
	}
	return true;
}

/*
 * The chunk marks: random sets, clears, searches from random starts (which
 * drop the marks of chunks they find empty), copies over a bitmap holding
 * other bits, and zeroing, on bitmaps of several chunks, against
 * brute force.  Breaks caught: a search that skips a marked chunk or
 * drops the mark of a chunk it did not search from its start, a copy or
 * zero that leaves bits in chunks the destination marked.
 */
TEST(bitmap_chunk_marks)
{
	static const u32 big[] = { 4096, 4097, 3 * 4096 + 5, 200000,
				   2 * 64 * 4096 + 4099 };
	uint64_t rs = 4242;

	for (unsigned int k = 0; k < sizeof(big) / sizeof(big[0]); k++) {
		const u32 n = big[k];
		struct stash_bitmap b, other;

		test_context("%u bits", n);
		REQUIRE_EQ(stash_bitmap_init(&b, n), 0);
		REQUIRE_EQ(stash_bitmap_init(&other, n), 0);
		for (unsigned int round = 0; round < 2000; round++) {
			u32 i = (u32)unit_rand_below(&rs, n);
			u32 s = (u32)unit_rand_below(&rs, n + 1);

			switch (unit_rand_below(&rs, 4)) {
			case 0:
				stash_bitmap_set(&b, i);
				break;
			case 1:
			case 2: {
				/* Clear the next set bit: chunks empty out. */
				u32 j = brute_next(&b, i);

				if (j < n)
					stash_bitmap_clear(&b, j);
				break;
			}
			default:
				break;
			}
			CHECK_EQ(stash_bitmap_next(&b, s), brute_next(&b, s));
			if (!marks_cover(&b)) {
				CHECK(!"a set bit's chunk is not marked");
				break;
			}
		}
		/* Every start position once more, then a scan of all. */
		for (u32 s = 0; s <= n; s += 97)
			CHECK_EQ(stash_bitmap_next(&b, s), brute_next(&b, s));
		{
			u32 count = 0;

			for (u32 i = stash_bitmap_next(&b, 0); i < n;
			     i = stash_bitmap_next(&b, i + 1))
				count++;
			CHECK_EQ(count, b.nr_set);
		}
		/* A copy over other bits equals the source, marks and all. */
		for (u32 i = 0; i < n; i += 7)
			stash_bitmap_set(&other, i);
		stash_bitmap_copy(&other, &b);
		CHECK_EQ(other.nr_set, b.nr_set);
		for (u32 i = 0; i < n; i++)
			CHECK_EQ(stash_bitmap_test(&other, i), stash_bitmap_test(&b, i));
		CHECK(marks_cover(&other));
		for (u32 s = 0; s <= n; s += 101)
			CHECK_EQ(stash_bitmap_next(&other, s), brute_next(&other, s));
		/* A copy from a bitmap whose bits all went sheds its marks. */
		for (u32 i = stash_bitmap_next(&b, 0); i < n; i = brute_next(&b, i + 1))
			stash_bitmap_clear(&b, i);
		stash_bitmap_set(&b, 0);
		stash_bitmap_clear(&b, 0);
		stash_bitmap_set(&b, n - 1);
		stash_bitmap_clear(&b, n - 1);
		stash_bitmap_copy(&other, &b);
		for (size_t w = 0; w < BITS_TO_LONGS((n + 4095) / 4096); w++)
			CHECK_EQ(b.chunks[w], 0);
		CHECK_EQ(stash_bitmap_next(&other, 0), n);
		/* Zeroing clears every bit, also in chunks marked long ago. */
		stash_bitmap_set(&other, n - 1);
		stash_bitmap_zero(&other);
		CHECK_EQ(stash_bitmap_next(&other, 0), n);
		for (u32 i = 0; i < n; i++) {
			if (stash_bitmap_test(&other, i)) {
				CHECK(!"a bit survived stash_bitmap_zero()");
				break;
			}
		}
		stash_bitmap_exit(&other);
		stash_bitmap_exit(&b);
	}
}

static int cmp_u32(const void *a, const void *b)
{
	u32 x = *(const u32 *)a, y = *(const u32 *)b;

	return x < y ? -1 : x > y;
}

/* Words of the third level of an @n-bit bitmap. */
static size_t group_words(u32 n)
{
	size_t chunks = (BITS_TO_LONGS(n) + STASH_BITMAP_CHUNK_WORDS - 1) /
			STASH_BITMAP_CHUNK_WORDS;

	return BITS_TO_LONGS(BITS_TO_LONGS(chunks));
}

/* The first of the sorted @set (of @nr) at or after @start, or @n. */
static u32 sorted_next(const u32 *set, unsigned int nr, u32 start, u32 n)
{
	for (unsigned int k = 0; k < nr; k++) {
		if (set[k] >= start)
			return set[k];
	}
	return n;
}

/*
 * The third level, on bitmaps of several of its words (64 words of marks,
 * 16M bits, each): a few bits far apart, found from random starts and
 * after a copy and zeroing, and marks that empty out drop their
 * third-level bit.  Breaks caught: a search that skips a third-level word
 * or trusts a stale one, a copy that does not mark the destination's third
 * level, a zero that leaves a word of marks set.
 */
TEST(bitmap_third_level)
{
	static const u32 sizes3[] = { 16777216, 16777216 + 4096 * 3 + 7,
				      3 * 16777216 + 100 };
	uint64_t rs = 99;

	for (unsigned int k = 0; k < sizeof(sizes3) / sizeof(sizes3[0]); k++) {
		const u32 n = sizes3[k];
		struct stash_bitmap b, other;
		u32 set[24];
		unsigned int nr = 0;

		test_context("%u bits", n);
		REQUIRE_EQ(stash_bitmap_init(&b, n), 0);
		REQUIRE_EQ(stash_bitmap_init(&other, n), 0);
		set[nr++] = 0;
		set[nr++] = n - 1;
		while (nr < 24) {
			u32 i = (u32)unit_rand_below(&rs, n);

			if (sorted_next(set, nr, i, n) != i)
				set[nr++] = i;
			qsort(set, nr, sizeof(set[0]), cmp_u32);
		}
		for (unsigned int j = 0; j < nr; j++)
			CHECK(stash_bitmap_set(&b, set[j]));
		CHECK_EQ(b.nr_set, nr);
		for (unsigned int r = 0; r < 2000; r++) {
			u32 s = (u32)unit_rand_below(&rs, n + 1);

			CHECK_EQ(stash_bitmap_next(&b, s), sorted_next(set, nr, s, n));
		}
		/* Each found in order from each one's successor. */
		for (unsigned int j = 0; j < nr; j++)
			CHECK_EQ(stash_bitmap_next(&b, j ? set[j - 1] + 1 : 0), set[j]);
		CHECK(marks_cover(&b));

		stash_bitmap_set(&other, n / 2 + 1);
		stash_bitmap_copy(&other, &b);
		CHECK(marks_cover(&other));
		for (unsigned int j = 0; j < nr; j++)
			CHECK_EQ(stash_bitmap_next(&other, j ? set[j - 1] + 1 : 0), set[j]);
		CHECK_EQ(stash_bitmap_next(&other, set[nr - 1] + 1), n);

		/* Clear all but the last: searches drop the empty marks. */
		for (unsigned int j = 0; j + 1 < nr; j++)
			CHECK(stash_bitmap_clear(&b, set[j]));
		CHECK_EQ(stash_bitmap_next(&b, 0), n - 1);
		for (size_t w = 0; w < group_words(n); w++) {
			if (w != (n - 1) / 4096 / 64 / 64 && b.groups[w]) {
				CHECK(!"a third-level bit outlived its marks");
				break;
			}
		}
		CHECK(marks_cover(&b));

		stash_bitmap_zero(&other);
		CHECK_EQ(other.nr_set, 0);
		CHECK_EQ(stash_bitmap_next(&other, 0), n);
		for (size_t w = 0; w < group_words(n); w++)
			CHECK_EQ(other.groups[w], 0);
		CHECK_EQ(group_words(n), (size_t)1 << k);
		stash_bitmap_exit(&other);
		stash_bitmap_exit(&b);
	}
}
