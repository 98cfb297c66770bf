// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for the recovery rules in kmod/stash-format.c that the
 * kernel's load and stashctl check/dump share (docs/format.md, Recovery):
 * stash_md_pick_page() (which copy of a metadata page is used, when the
 * cache is refused, which copy a torn commit left) and
 * stash_md_dup_winner() (one origin block in two slots).  Each case is
 * checked with only the needed copy checked (the kernel) and with both
 * (stashctl); a random sweep checks that the two always agree and that the
 * entries returned are the used copy's.
 */
#include "unit.h"

#include "stash-format.h"

#define SB_SEQ 100

struct two_copies {
	uint8_t b[2 * STASH_MD_BLOCK_BYTES] __attribute__((aligned(8)));
};

static struct stash_geometry geo(bool csum)
{
	struct stash_geometry g;

	/* 64 MiB of cache, 4 KiB blocks, a 1 GiB origin. */
	stash_geometry_compute_csum(&g, 131072, 2097152, 8, 1, csum);
	return g;
}

/* Copy @k: page @p's entries (slot 0 maps origin block @tag), sequence @seq. */
static void put(struct two_copies *t, const struct stash_geometry *g, int k,
		u32 p, u64 seq, u64 tag)
{
	u64 entries[STASH_MD_ENTRIES_PER_PAGE] = { 0 };
	u32 csums[STASH_MD_ENTRIES_PER_PAGE] = { 0 };

	entries[0] = stash_md_entry(true, false, tag);
	csums[0] = 0x1234u + (u32)tag;
	stash_md_page_encode_geo(t->b + k * STASH_MD_BLOCK_BYTES, g, p, seq,
				 entries, csums);
}

static void zero(struct two_copies *t, int k)
{
	memset(t->b + k * STASH_MD_BLOCK_BYTES, 0, STASH_MD_BLOCK_BYTES);
}

/* Damage copy @k past its header (its index and sequence stay). */
static void flip(struct two_copies *t, int k)
{
	t->b[k * STASH_MD_BLOCK_BYTES + 100] ^= 0x10;
}

struct outcome {
	enum stash_md_pick_result result;
	int best;
	bool erase;
	u64 tag;	/* slot 0's origin block in the entries returned */
};

static struct outcome pick(const struct two_copies *t,
			   const struct stash_geometry *g, u32 p, bool both)
{
	static u64 entries[STASH_MD_ENTRIES_PER_PAGE], scratch[STASH_MD_ENTRIES_PER_PAGE];
	static u32 csums[STASH_MD_ENTRIES_PER_PAGE], cscratch[STASH_MD_ENTRIES_PER_PAGE];
	struct stash_md_pick pk;
	struct outcome o;

	memset(entries, 0xa5, sizeof(entries));
	stash_md_pick_page(t->b, g, p, 1u << 18, SB_SEQ, both, entries, csums,
			   scratch, cscratch, &pk);
	o.result = pk.result;
	o.best = pk.best;
	o.erase = pk.erase_other;
	o.tag = entries[0] & STASH_MD_OBLOCK_MASK;
	if (both)
		for (int k = 0; k < 2; k++)
			CHECK(pk.copy[k].checked);
	return o;
}

/* Both ways, the same outcome; returns it. */
static struct outcome pick2(const struct two_copies *t,
			    const struct stash_geometry *g, u32 p)
{
	struct outcome a = pick(t, g, p, false), b = pick(t, g, p, true);

	CHECK_EQ(a.result, b.result);
	CHECK_EQ(a.best, b.best);
	CHECK_EQ(a.erase, b.erase);
	if (a.result == STASH_PICK_OK)
		CHECK_EQ(a.tag, b.tag);
	return a;
}

TEST(recover_pick_page_cases)
{
	for (int v = 0; v < 2; v++) {
		struct stash_geometry g = geo(v);
		struct two_copies t;
		struct outcome o;
		const u32 p = 3;

		test_context("format version %d", v + 1);
		/* After format: copy 0 (sequence 1), copy 1 zero. */
		put(&t, &g, 0, p, 1, 11);
		zero(&t, 1);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.result, STASH_PICK_OK);
		CHECK_EQ(o.best, 0);
		CHECK_EQ(o.tag, 11);
		CHECK(!o.erase);

		/* The newer committed copy wins, either way round. */
		put(&t, &g, 0, p, 40, 40);
		put(&t, &g, 1, p, 41, 41);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.best, 1);
		CHECK_EQ(o.tag, 41);
		put(&t, &g, 0, p, 42, 42);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.best, 0);
		CHECK_EQ(o.tag, 42);

		/* A tie (a torn copy rewritten with the committed one): copy 0. */
		put(&t, &g, 1, p, 42, 42);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.best, 0);

		/* A torn commit's valid copy above the superblock: ignored, erased. */
		put(&t, &g, 0, p, 50, 50);
		put(&t, &g, 1, p, SB_SEQ + 1, 99);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.result, STASH_PICK_OK);
		CHECK_EQ(o.best, 0);
		CHECK_EQ(o.tag, 50);
		CHECK(o.erase);
		/* ... and a damaged one too. */
		flip(&t, 1);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.best, 0);
		CHECK(o.erase);

		/* The newest committed copy damaged: refused. */
		put(&t, &g, 0, p, 50, 50);
		put(&t, &g, 1, p, 60, 60);
		flip(&t, 1);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.result, STASH_PICK_NEWEST_DAMAGED);
		CHECK_EQ(o.best, 0);
		/* An older damaged copy: harmless. */
		put(&t, &g, 0, p, 70, 70);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.result, STASH_PICK_OK);
		CHECK_EQ(o.best, 0);
		CHECK_EQ(o.tag, 70);
		/* Damaged with the same sequence as the other: not newer. */
		put(&t, &g, 1, p, 70, 71);
		flip(&t, 1);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.result, STASH_PICK_OK);
		CHECK_EQ(o.best, 0);

		/* The newest copy zeroed (its claim is gone): the older is used. */
		put(&t, &g, 0, p, 50, 50);
		put(&t, &g, 1, p, 60, 60);
		zero(&t, 1);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.result, STASH_PICK_OK);
		CHECK_EQ(o.tag, 50);

		/* Nothing usable: both zero, both misplaced, both above the sb. */
		zero(&t, 0);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.result, STASH_PICK_NO_COPY);
		put(&t, &g, 0, p + 1, 50, 50);
		put(&t, &g, 1, p + 1, 60, 60);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.result, STASH_PICK_NO_COPY);
		put(&t, &g, 0, p, SB_SEQ + 2, 50);
		put(&t, &g, 1, p, SB_SEQ + 1, 60);
		o = pick2(&t, &g, p);
		CHECK_EQ(o.result, STASH_PICK_NO_COPY);
	}
}

TEST(recover_pick_page_why)
{
	struct stash_geometry g = geo(false);
	u64 e[STASH_MD_ENTRIES_PER_PAGE], s[STASH_MD_ENTRIES_PER_PAGE];
	u32 c[STASH_MD_ENTRIES_PER_PAGE], cs[STASH_MD_ENTRIES_PER_PAGE];
	struct stash_md_pick pk;
	struct two_copies t;

	put(&t, &g, 0, 9, 5, 1);
	put(&t, &g, 1, 9, 6, 2);
	stash_md_pick_page(t.b, &g, 4, 1u << 18, SB_SEQ, false, e, c, s, cs, &pk);
	CHECK_EQ(pk.result, STASH_PICK_NO_COPY);
	CHECK(strstr(stash_md_pick_why(&pk), "wrong place") != NULL);
	put(&t, &g, 0, 4, SB_SEQ + 1, 1);
	put(&t, &g, 1, 4, SB_SEQ + 2, 2);
	stash_md_pick_page(t.b, &g, 4, 1u << 18, SB_SEQ, false, e, c, s, cs, &pk);
	CHECK_EQ(pk.result, STASH_PICK_NO_COPY);
	CHECK(strstr(stash_md_pick_why(&pk), "newer than the superblock") != NULL);
}

/*
 * Random pairs of copies (valid, damaged, zero, misplaced; sequences below,
 * at and above the superblock's): checking one copy and checking both
 * always agree, and an OK pick returns the entries of the copy with the
 * highest committed sequence.  Break caught: a fast path that trusts the
 * higher claim without checking it, or checks the lower one.
 */
TEST(recover_pick_page_fast_equals_full)
{
	uint64_t rs = 31337;

	for (int v = 0; v < 2; v++) {
		struct stash_geometry g = geo(v);

		for (int round = 0; round < 4000; round++) {
			struct two_copies t;
			u64 seq[2];
			int state[2];
			struct outcome o;
			const u32 p = 7;

			test_context("version %d, round %d", v + 1, round);
			for (int k = 0; k < 2; k++) {
				seq[k] = SB_SEQ - 3 + unit_rand_below(&rs, 6);
				state[k] = (int)unit_rand_below(&rs, 4);
				switch (state[k]) {
				case 0: /* valid */
				case 1: /* damaged */
					put(&t, &g, k, p, seq[k], 1000 + k);
					if (state[k] == 1)
						flip(&t, k);
					break;
				case 2:
					zero(&t, k);
					break;
				default: /* another page's */
					put(&t, &g, k, p + 1, seq[k], 1000 + k);
					break;
				}
			}
			o = pick2(&t, &g, p);
			if (o.result != STASH_PICK_OK)
				continue;
			/* The used copy: valid, committed, the newest such. */
			CHECK_EQ(state[o.best], 0);
			CHECK(seq[o.best] <= SB_SEQ);
			CHECK_EQ(o.tag, 1000 + (u64)o.best);
			if (state[1 - o.best] == 0 && seq[1 - o.best] <= SB_SEQ)
				CHECK(seq[1 - o.best] < seq[o.best] ||
				      (seq[1 - o.best] == seq[o.best] && o.best == 0));
		}
	}
}

TEST(recover_dup_winner)
{
	/* One commit: refused. */
	CHECK_EQ(stash_md_dup_winner(5, 5), STASH_DUP_CORRUPT);
	/* Otherwise the newer page wins. */
	CHECK_EQ(stash_md_dup_winner(5, 6), STASH_DUP_REPLACE);
	CHECK_EQ(stash_md_dup_winner(6, 5), STASH_DUP_KEEP);
}

/*
 * Step 3: after an unclean shutdown only dirty entries are kept, so that
 * no clean entry, however new, displaces a dirty one in step 4.  Break it
 * catches: clean entries kept (an older dirty block loses to a newer clean
 * entry and is read from an origin that may not hold it durably).
 */
TEST(recover_load_keeps)
{
	const u64 dirty = stash_md_entry(true, true, 77);
	const u64 clean = stash_md_entry(true, false, 77);

	CHECK(stash_md_load_keeps(false, dirty));
	CHECK(stash_md_load_keeps(false, clean));
	CHECK(stash_md_load_keeps(true, dirty));
	CHECK(!stash_md_load_keeps(true, clean));
}
