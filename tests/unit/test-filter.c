// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for the promotion filter (kmod/stash-policy.c,
 * stash_filter_*): a block's first miss is only recorded and its second
 * miss promotes it, including after rotate_at other misses (the shortest
 * window the two generations guarantee); after more than 2 * rotate_at
 * other insertions it is forgotten; stash_filter_clear() forgets
 * everything; the false-positive rate on one-off keys, measured after both
 * generations are loaded, stays below 5% for several cache sizes and key
 * patterns (sequential, strided, random 48-bit, fio-scattered); and the
 * hashes reach the whole table up to the largest cache the target accepts;
 * and stash_policy_decide() makes the promotion decision from them.
 */
#include <stdio.h>

#include "unit.h"

#include "stash-policy.h"

static bool miss(struct stash_filter *f, u64 ob)
{
	return stash_filter_check_and_record(f, to_oblock(ob));
}

TEST(filter_init)
{
	static const u32 sizes[] = { 0, 1, 16, 1000, 16384, 3000017 };
	struct stash_filter f;

	for (unsigned int k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		test_context("%u cblocks", sizes[k]);
		REQUIRE_EQ(stash_filter_init(&f, sizes[k]), 0);
		CHECK(f.gen[0] && f.gen[1]);
		CHECK_GT(f.rotate_at, 0);
		CHECK_LT(f.rotate_at, 1ull << f.bits);
		CHECK(!miss(&f, 12345));
		CHECK(miss(&f, 12345));
		stash_filter_exit(&f);
		CHECK(!f.gen[0] && !f.gen[1]);
	}
}

TEST(filter_second_miss_promotes)
{
	struct stash_filter f;
	unsigned int fp = 0;

	REQUIRE_EQ(stash_filter_init(&f, 16384), 0);
	CHECK(!miss(&f, 42));
	CHECK(miss(&f, 42));
	CHECK(miss(&f, 42));

	/* Every second miss promotes; first misses rarely do. */
	for (u64 k = 0; k < 2000; k++) {
		test_context("key %llu", (unsigned long long)k);
		u64 ob = 1000000 + 13 * k;

		fp += miss(&f, ob);
		CHECK(miss(&f, ob));
	}
	test_context("%s", "");
	CHECK_LE(fp, 2000 / 20);

	stash_filter_exit(&f);
}

TEST(filter_clear_forgets_both_generations)
{
	struct stash_filter f;
	unsigned int remembered = 0;

	REQUIRE_EQ(stash_filter_init(&f, 1000), 0);
	/* Enough keys to fill one generation and start the other. */
	const u64 nr = f.rotate_at + f.rotate_at / 2;

	for (u64 k = 0; k < nr; k++)
		miss(&f, 5000 + k);
	stash_filter_clear(&f);
	for (u64 k = 0; k < nr; k++)
		remembered += miss(&f, 5000 + k);
	test_context("rotate_at %u, %u of %llu remembered", f.rotate_at,
		     remembered, (unsigned long long)nr);
	CHECK_LE(remembered, nr / 20);	/* new false positives only */
	stash_filter_exit(&f);
}

/* A block is remembered across at least rotate_at other misses. */
TEST(filter_window_lower_bound)
{
	struct stash_filter f;

	REQUIRE_EQ(stash_filter_init(&f, 4096), 0);
	for (u64 t = 0; t < 50; t++) {
		const u64 x = 7 + t * 1000003;

		test_context("trial %llu rotate_at %u", (unsigned long long)t,
			     f.rotate_at);
		if (miss(&f, x))
			continue;	/* a false positive: x was not recorded */
		for (u64 k = 0; k < f.rotate_at; k++)
			miss(&f, (1ull << 40) + t * 1000000 + k);
		CHECK(miss(&f, x));
	}
	stash_filter_exit(&f);
}

/* ... and forgotten after more than 2 * rotate_at other insertions. */
TEST(filter_forgets_after_two_windows)
{
	unsigned int trials = 0, remembered = 0;
	struct stash_filter f;
	u64 next = 1ull << 36;

	REQUIRE_EQ(stash_filter_init(&f, 4096), 0);
	for (u64 t = 0; t < 100; t++) {
		const u64 x = 11 + t * 7919;
		u32 inserted = 0;

		if (miss(&f, x))
			continue;	/* a false positive: x was not recorded */
		trials++;
		/* Only misses that return false are insertions; a filter that
		 * never forgets soon stops taking any. */
		for (u64 tries = 0; inserted <= 2 * f.rotate_at; tries++) {
			REQUIRE_LT(tries, 100ull * f.rotate_at);
			inserted += !miss(&f, next++);
		}
		remembered += miss(&f, x);
	}
	test_context("rotate_at %u, %u of %u trials remembered", f.rotate_at,
		     remembered, trials);
	CHECK_GE(trials, 90);
	/* The survivors are false positives: allow 10%. */
	CHECK_LE(remembered, trials / 10);
	stash_filter_exit(&f);
}

enum key_pattern { KEYS_SEQ, KEYS_STRIDE8, KEYS_RANDOM, KEYS_SCATTERED, NR_PATTERNS };
static const char *const pattern_name[] = {
	"sequential", "stride 8", "random 48-bit", "fio-scattered",
};

/* The i-th key of @p; distinct for distinct i (i < 2^40). */
static u64 key(enum key_pattern p, u64 i, u64 salt)
{
	const u64 mask = STASH_MAX_OBLOCKS - 1;

	switch (p) {
	case KEYS_SEQ:
		return (salt << 40) + i;
	case KEYS_STRIDE8:
		return (salt << 40) + 8 * i;
	case KEYS_RANDOM:	/* an odd multiplier is a bijection mod 2^48 */
		return ((salt << 40) + i) * 0xd6e8feb86659fd93ull & mask;
	default:		/* fio's zipf scatter: rank * golden ratio */
		return ((salt << 40) + i) * GOLDEN_RATIO_64 & mask;
	}
}

/*
 * False positives: one-off keys that the filter calls a second miss, so a
 * scan promotes them.  Measured after a warm-up that loads both generations.
 */
TEST(filter_false_positive_rate)
{
	static const u32 sizes[] = { 16, 1000, 16384, 1u << 20 };
	const unsigned int nr_probes = 100000;
	struct stash_filter f;

	for (unsigned int k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		for (int p = 0; p < NR_PATTERNS; p++) {
			unsigned int fp = 0;
			u64 i;

			test_context("%u cblocks, %s keys", sizes[k],
				     pattern_name[p]);
			REQUIRE_EQ(stash_filter_init(&f, sizes[k]), 0);
			for (i = 0; i < 4ull * f.rotate_at; i++)
				miss(&f, key(p, i, 1));
			for (i = 0; i < nr_probes; i++)
				fp += miss(&f, key(p, i, 2));
			printf("    %7u cblocks %-14s false positives %.2f%%\n",
			       sizes[k], pattern_name[p], 100.0 * fp / nr_probes);
			CHECK_DBL_LT((double)fp / nr_probes, 0.05);
			stash_filter_exit(&f);
		}
	}
}

/*
 * Every bit of a generation must be reachable, up to the largest cache the
 * target accepts (STASH_MAX_CBLOCKS: 2 x 2^33 bits, 2 GiB of virtual memory,
 * mostly untouched).  Checked by recording keys and finding set bits in the
 * upper half of the current generation.  (hash_64() returns 32 bits.)
 */
TEST(filter_hashes_cover_the_table)
{
	static const u32 sizes[] = { 16384, 3000017, STASH_MAX_CBLOCKS };
	struct stash_filter f;

	for (unsigned int k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned long upper = 0, lower = 0;
		size_t words, w;

		test_context("%u cblocks", sizes[k]);
		if (stash_filter_init(&f, sizes[k])) {
			printf("    %u cblocks: cannot allocate the filter, skipped\n",
			       sizes[k]);
			continue;
		}
		/* 1000 keys, fewer than rotate_at: all in the current generation. */
		for (u64 i = 0; i < 1000; i++)
			miss(&f, i * 0x9e3779b97f4a7c15ull & (STASH_MAX_OBLOCKS - 1));
		words = BITS_TO_LONGS(1ull << f.bits);
		for (w = 0; w < words; w++) {
			if (w < words / 2)
				lower |= f.gen[f.cur][w];
			else
				upper |= f.gen[f.cur][w];
		}
		CHECK_NE(lower, 0);
		CHECK_NE(upper, 0);
		stash_filter_exit(&f);
	}
}

/*
 * stash_filter_test() answers what the next miss would and records
 * nothing: a key never missed stays unknown however often it is tested,
 * and a key missed once tests true.
 */
TEST(filter_test_records_nothing)
{
	struct stash_filter f;
	unsigned int known = 0;

	REQUIRE_EQ(stash_filter_init(&f, 16384), 0);
	for (u64 k = 0; k < 1000; k++) {
		u64 ob = 5000000 + 7 * k;

		known += stash_filter_test(&f, to_oblock(ob));
		known += stash_filter_test(&f, to_oblock(ob));
		CHECK_EQ(f.inserted, 0);
	}
	CHECK_EQ(known, 0);	/* an empty filter knows no key */
	CHECK(!miss(&f, 77));
	CHECK(stash_filter_test(&f, to_oblock(77)));
	CHECK(miss(&f, 77));
	stash_filter_exit(&f);
}

/*
 * stash_policy_decide(): sequential bypasses and records nothing; blocked
 * refuses and records nothing; while slots are free the first miss
 * promotes (and is recorded); once full, only a second miss does.
 */
TEST(filter_policy_decide)
{
	struct stash_filter f;
	struct stash_map m;
	u64 evicted;
	cblock_t c;

	REQUIRE_EQ(stash_filter_init(&f, 2), 0);
	REQUIRE_EQ(stash_map_init(&m, 2), 0);

	CHECK_EQ(stash_policy_decide(&f, &m, to_oblock(7), true, false),
		 STASH_PROMOTE_BYPASS);
	CHECK_EQ(stash_policy_decide(&f, &m, to_oblock(7), false, true),
		 STASH_PROMOTE_NO);
	CHECK(!stash_filter_test(&f, to_oblock(7)));

	/* Free slots: the first miss promotes, and is recorded. */
	CHECK_EQ(stash_policy_decide(&f, &m, to_oblock(1), false, false),
		 STASH_PROMOTE_YES);
	CHECK(stash_filter_test(&f, to_oblock(1)));
	for (u64 ob = 1; ob <= 2; ob++) {
		c = stash_map_alloc(&m, to_oblock(ob), &evicted);
		REQUIRE(cblock_is_valid(c));
		stash_map_set_valid(&m, c);
		stash_map_release(&m, c, true);
	}

	/* Full: a first miss does not promote, the second does. */
	CHECK_EQ(stash_policy_decide(&f, &m, to_oblock(3), false, false),
		 STASH_PROMOTE_NO);
	CHECK_EQ(stash_policy_decide(&f, &m, to_oblock(3), false, false),
		 STASH_PROMOTE_YES);
	/* Sequential even so: bypass. */
	CHECK_EQ(stash_policy_decide(&f, &m, to_oblock(3), true, false),
		 STASH_PROMOTE_BYPASS);

	stash_map_exit(&m);
	stash_filter_exit(&f);
}

/*
 * A multi-block read's run (stash_policy_run_may_pass(), _run_record()):
 * an unseen block may pass even while slots are free (stash_policy_decide()
 * would promote it), a block that missed recently may not; passing records
 * nothing, recording a run's block makes its next miss a second one; a
 * sequential read passes and is recorded as a bypass, not in the filter.
 */
TEST(filter_policy_run)
{
	struct stash_filter f;
	struct stash_map m;

	REQUIRE_EQ(stash_filter_init(&f, 64), 0);
	REQUIRE_EQ(stash_map_init(&m, 64), 0);

	CHECK(stash_map_has_free(&m));
	CHECK(stash_policy_run_may_pass(&f, to_oblock(9), false));
	CHECK(stash_policy_run_may_pass(&f, to_oblock(9), false));
	CHECK_EQ(f.inserted, 0);
	CHECK_EQ(stash_policy_run_record(&f, to_oblock(9), false),
		 STASH_PROMOTE_NO);
	CHECK(!stash_policy_run_may_pass(&f, to_oblock(9), false));
	CHECK(stash_policy_run_may_pass(&f, to_oblock(9), true));
	/* The one-block path now promotes it: its second miss. */
	CHECK_EQ(stash_policy_decide(&f, &m, to_oblock(9), false, false),
		 STASH_PROMOTE_YES);

	CHECK_EQ(stash_policy_run_record(&f, to_oblock(11), true),
		 STASH_PROMOTE_BYPASS);
	CHECK(!stash_filter_test(&f, to_oblock(11)));
	CHECK(stash_policy_run_may_pass(&f, to_oblock(11), false));

	stash_map_exit(&m);
	stash_filter_exit(&f);
}
