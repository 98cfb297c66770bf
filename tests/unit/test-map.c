// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for the mapping table (kmod/stash-map.c): init limits; slots
 * come from the free list in ascending order and are SE_BUSY until the caller
 * makes them SE_VALID and releases them; the clock evicts only entries that
 * are mapped, valid, idle (not busy, not pinned), not stale and not dirty,
 * gives referenced entries a second chance and reports the victim's oblock;
 * invalidation frees an idle entry at once and defers a busy or pinned one
 * (stale, unhashed) to its release; the slot-state functions say what the
 * flags say through a slot's life; writeback picks, takes a run's blocks
 * busy all or none, releases them, and ends keeping a block rewritten in
 * between dirty; the dirty, committed-dirty and page bitmaps of other
 * objects act once attached and not once detached; 48-bit oblocks
 * round-trip; a randomized run of ~1e5 operations agrees with a
 * brute-force reference model on lookups, flags, pins and free counts; and
 * the kernel RAM per cache block (map plus promotion filter) is what was
 * allocated and stays within the 16-byte project budget.
 */
#include <stdio.h>

#include "unit.h"

#include "stash-map.h"
#include "stash-policy.h"

#define ENTRY_STATE (SE_MAPPED | SE_VALID | SE_BUSY | SE_STALE | SE_ALLOC)

static struct stash_entry *E(struct stash_map *m, u64 c)
{
	return stash_map_entry(m, to_cblock(c));
}

/* Promote @ob and complete the fill at once: mapped, valid, idle. */
static cblock_t fill(struct stash_map *m, u64 ob)
{
	u64 ev;
	cblock_t c = stash_map_alloc(m, to_oblock(ob), &ev);

	if (cblock_is_valid(c)) {
		stash_map_entry(m, c)->flags |= SE_VALID;
		stash_map_note_reusable(m);
		stash_map_release(m, c, true);
	}
	return c;
}

static cblock_t lookup(const struct stash_map *m, u64 ob)
{
	return stash_map_lookup(m, to_oblock(ob));
}

/*
 * What stash_map_alloc() sets *evicted to when it evicted nothing (the API
 * says STASH_NO_INDEX), learnt from a fresh table so that these tests do not
 * depend on the constant's name; map_evicted_oblock_reported checks that it
 * cannot be mistaken for an oblock.
 */
static u64 no_eviction(void)
{
	static bool known;
	static u64 value;
	struct stash_map m;

	if (!known && !stash_map_init(&m, 1)) {
		stash_map_alloc(&m, to_oblock(0), &value);
		stash_map_exit(&m);
		known = true;
	}
	return value;
}

TEST(map_init_limits)
{
	struct stash_map m;

	CHECK_NE(stash_map_init(&m, 0), 0);
	CHECK(m.entries == NULL);
	stash_map_exit(&m);	/* harmless after a refused init */

	CHECK_NE(stash_map_init(&m, STASH_MAX_CBLOCKS + 1), 0);
	CHECK(m.entries == NULL);
	CHECK_NE(stash_map_init(&m, U32_MAX), 0);
	stash_map_exit(&m);

	/* The smallest table: one slot, one bucket. */
	REQUIRE_EQ(stash_map_init(&m, 1), 0);
	CHECK_EQ(m.nr_cblocks, 1);
	CHECK_EQ(m.nr_free, 1);
	CHECK_EQ(stash_map_nr_allocated(&m), 0);
	CHECK_EQ(lookup(&m, 0), STASH_NO_CBLOCK);
	CHECK_EQ(fill(&m, 0), 0);
	CHECK_EQ(lookup(&m, 0), 0);
	stash_map_exit(&m);
	CHECK(m.entries == NULL);

	REQUIRE_EQ(stash_map_init(&m, 16), 0);
	CHECK_EQ(m.nr_free, 16);
	CHECK_EQ(stash_map_nr_allocated(&m), 0);
	for (u64 ob = 0; ob < 100; ob++)
		CHECK_EQ(lookup(&m, ob), STASH_NO_CBLOCK);
	stash_map_exit(&m);

	/* A size that is not a power of two. */
	REQUIRE_EQ(stash_map_init(&m, 1000), 0);
	CHECK_EQ(m.nr_free, 1000);
	stash_map_exit(&m);
}

TEST(map_alloc_ascending_from_free_list)
{
	struct stash_map m;
	const u32 n = 64;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, n), 0);
	for (u32 i = 0; i < n; i++) {
		test_context("i=%u", i);
		cblock_t c = stash_map_alloc(&m, to_oblock(1000 + 7 * i), &ev);

		CHECK_EQ(c, i);
		CHECK_EQ(ev, no_eviction());
		CHECK_EQ(m.nr_free, n - 1 - i);
		CHECK_EQ(stash_map_nr_allocated(&m), i + 1);
		CHECK_EQ(from_oblock(stash_entry_oblock(E(&m, i))), 1000 + 7 * i);
	}
	test_context("lookups");
	for (u32 i = 0; i < n; i++) {
		CHECK_EQ(lookup(&m, 1000 + 7 * i), i);
		CHECK_EQ(lookup(&m, 1001 + 7 * i), STASH_NO_CBLOCK);
	}
	/* Every slot is busy (a fill in flight): nothing to take. */
	CHECK_EQ(stash_map_alloc(&m, to_oblock(5), &ev), STASH_NO_CBLOCK);
	CHECK_EQ(ev, no_eviction());
	CHECK_EQ(lookup(&m, 5), STASH_NO_CBLOCK);
	stash_map_exit(&m);
}

TEST(map_new_entry_busy_until_released)
{
	struct stash_map m;
	cblock_t c;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 4), 0);
	c = stash_map_alloc(&m, to_oblock(5), &ev);
	REQUIRE_EQ(c, 0);
	CHECK_EQ(E(&m, c)->flags & ENTRY_STATE, SE_ALLOC | SE_MAPPED | SE_BUSY);
	CHECK_EQ(E(&m, c)->pins, 0);
	CHECK_EQ(lookup(&m, 5), c);	/* mapped: a reader finds it and waits */
	for (u64 ob = 6; ob < 9; ob++)
		CHECK(cblock_is_valid(stash_map_alloc(&m, to_oblock(ob), &ev)));
	CHECK_EQ(m.nr_free, 0);

	/* All four fills in flight: none can be evicted. */
	CHECK_EQ(stash_map_alloc(&m, to_oblock(9), &ev), STASH_NO_CBLOCK);

	/* Released but never made valid: still not evictable. */
	CHECK(!stash_map_release(&m, c, true));
	CHECK_EQ(E(&m, c)->flags & ENTRY_STATE, SE_ALLOC | SE_MAPPED);
	CHECK_EQ(lookup(&m, 5), c);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(9), &ev), STASH_NO_CBLOCK);

	/* Valid but still busy: not evictable. */
	E(&m, c)->flags |= SE_VALID | SE_BUSY;
	CHECK_EQ(stash_map_alloc(&m, to_oblock(9), &ev), STASH_NO_CBLOCK);

	/* Valid and released: now it is the victim. */
	CHECK(!stash_map_release(&m, c, true));
	CHECK_EQ(E(&m, c)->flags & ENTRY_STATE, SE_ALLOC | SE_MAPPED | SE_VALID);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(9), &ev), c);
	CHECK_EQ(ev, 5);
	CHECK_EQ(lookup(&m, 5), STASH_NO_CBLOCK);
	CHECK_EQ(lookup(&m, 9), c);
	CHECK_EQ(E(&m, c)->flags & ENTRY_STATE, SE_ALLOC | SE_MAPPED | SE_BUSY);
	stash_map_exit(&m);
}

TEST(map_evicts_only_clean_idle_valid)
{
	unsigned long dirty[1] = { 0 };
	struct stash_map m;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 8), 0);
	m.dirty = dirty;
	for (u64 i = 0; i < 8; i++)
		REQUIRE_EQ(fill(&m, 100 + i), i);

	E(&m, 0)->flags |= SE_BUSY;		/* a write in flight */
	E(&m, 1)->pins = 1;			/* a read in flight */
	E(&m, 2)->pins = 1;			/* invalidated while read */
	CHECK(!stash_map_invalidate(&m, to_cblock(2)));
	__set_bit(3, dirty);			/* dirty: never evicted */
	E(&m, 4)->flags &= ~SE_VALID;		/* not valid */
	E(&m, 5)->pins = STASH_MAX_PINS;	/* many readers */
	E(&m, 6)->flags |= SE_BUSY;
	stash_map_ref(&m, to_cblock(6));	/* busy and referenced */
	/* 7: the only clean, idle, valid entry */

	CHECK_EQ(stash_map_alloc(&m, to_oblock(200), &ev), 7);
	CHECK_EQ(ev, 107);
	CHECK_EQ(lookup(&m, 107), STASH_NO_CBLOCK);
	CHECK_EQ(lookup(&m, 200), 7);

	/* Now nothing qualifies; the table is unchanged by the attempt. */
	CHECK_EQ(stash_map_alloc(&m, to_oblock(201), &ev), STASH_NO_CBLOCK);
	CHECK_EQ(ev, no_eviction());
	CHECK_EQ(m.nr_free, 0);
	CHECK_EQ(lookup(&m, 201), STASH_NO_CBLOCK);
	CHECK_EQ(lookup(&m, 102), STASH_NO_CBLOCK);	/* stale: unhashed */
	for (u64 i = 0; i < 7; i++) {
		if (i != 2)
			CHECK_EQ(lookup(&m, 100 + i), i);
	}
	CHECK(test_bit(6, m.refs));	/* not touched: not a candidate */

	/* Lift each condition in turn: exactly that entry becomes the victim
	 * (the new entries stay busy, so they never qualify). */
	__clear_bit(3, dirty);
	stash_map_note_reusable(&m);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(203), &ev), 3);
	CHECK_EQ(ev, 103);

	CHECK(!stash_map_release(&m, to_cblock(0), true));
	CHECK_EQ(stash_map_alloc(&m, to_oblock(204), &ev), 0);
	CHECK_EQ(ev, 100);

	CHECK(!stash_map_release(&m, to_cblock(1), false));
	CHECK_EQ(E(&m, 1)->pins, 0);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(205), &ev), 1);
	CHECK_EQ(ev, 101);

	/* The stale entry is freed by its last unpin, then comes off the
	 * free list: no eviction. */
	CHECK(stash_map_release(&m, to_cblock(2), false));
	CHECK_EQ(m.nr_free, 1);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(206), &ev), 2);
	CHECK_EQ(ev, no_eviction());

	E(&m, 4)->flags |= SE_VALID;
	stash_map_note_reusable(&m);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(207), &ev), 4);
	CHECK_EQ(ev, 104);

	E(&m, 5)->pins = 0;
	stash_map_note_reusable(&m);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(208), &ev), 5);
	CHECK_EQ(ev, 105);

	CHECK(!stash_map_release(&m, to_cblock(6), true));
	CHECK_EQ(stash_map_alloc(&m, to_oblock(209), &ev), 6);
	CHECK_EQ(ev, 106);

	/* Every slot holds a fill in flight again. */
	CHECK_EQ(stash_map_alloc(&m, to_oblock(210), &ev), STASH_NO_CBLOCK);
	for (u64 ob = 203; ob <= 209; ob++)
		CHECK(cblock_is_valid(lookup(&m, ob)));
	CHECK_EQ(lookup(&m, 200), 7);
	stash_map_exit(&m);
}

TEST(map_nothing_evictable)
{
	unsigned long dirty[BITS_TO_LONGS(16)] = { 0 };
	struct stash_map m;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 16), 0);
	for (u64 i = 0; i < 15; i++)
		REQUIRE_EQ(fill(&m, 50 + i), i);
	CHECK(!stash_map_known_full(&m));	/* a free slot */
	REQUIRE_EQ(fill(&m, 65), 15);

	/* All dirty: full, but only known to be once a sweep found so. */
	m.dirty = dirty;
	for (u32 i = 0; i < 16; i++)
		__set_bit(i, dirty);
	CHECK(!stash_map_known_full(&m));
	CHECK_EQ(stash_map_alloc(&m, to_oblock(1), &ev), STASH_NO_CBLOCK);
	CHECK_EQ(ev, no_eviction());
	CHECK(stash_map_known_full(&m));

	/* All pinned (and referenced). */
	memset(dirty, 0, sizeof(dirty));
	stash_map_note_reusable(&m);
	CHECK(!stash_map_known_full(&m));	/* no longer known */
	for (u32 i = 0; i < 16; i++) {
		E(&m, i)->pins = 1;
		stash_map_ref(&m, to_cblock(i));
	}
	CHECK_EQ(stash_map_alloc(&m, to_oblock(1), &ev), STASH_NO_CBLOCK);
	CHECK_EQ(ev, no_eviction());
	CHECK(stash_map_known_full(&m));
	for (u32 i = 0; i < 16; i++) {
		test_context("i=%u", i);
		CHECK_EQ(lookup(&m, 50 + i), i);
		CHECK_EQ(E(&m, i)->flags & ENTRY_STATE,
			 SE_ALLOC | SE_MAPPED | SE_VALID);
	}
	CHECK_EQ(m.nr_free, 0);
	CHECK_EQ(lookup(&m, 1), STASH_NO_CBLOCK);
	stash_map_exit(&m);
}

/*
 * A sweep passes runs of dirty entries a bitmap word at a time; it must
 * still stop where a step-by-step sweep would, clear the reference marks
 * a step-by-step sweep would, and leave the hand where it would.
 */
TEST(map_sweep_skips_dirty_runs)
{
	enum { N = 1000 };
	unsigned long dirty[BITS_TO_LONGS(N)] = { 0 };
	struct stash_map m;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, N), 0);
	for (u64 i = 0; i < N; i++)
		REQUIRE_EQ(fill(&m, 10000 + i), i);
	m.dirty = dirty;
	for (u32 i = 0; i < N; i++)
		__set_bit(i, dirty);
	/* Clean: 130 (referenced) and 700 (not); the hand starts at 100. */
	__clear_bit(130, dirty);
	__clear_bit(700, dirty);
	stash_map_ref(&m, to_cblock(130));
	clear_bit(700, m.refs);
	stash_map_ref(&m, to_cblock(999));	/* dirty: its mark must stay */
	m.clock_hand = 100;
	CHECK_EQ(stash_map_alloc(&m, to_oblock(1), &ev), to_cblock(700));
	CHECK_EQ(ev, 10700);
	CHECK_EQ(m.clock_hand, 701);
	CHECK(!test_bit(130, m.refs));	/* passed over once */
	CHECK(test_bit(999, m.refs));
	/* 130 is next, at the end of a run that wraps past the map's end. */
	__set_bit(700, dirty);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(2), &ev), to_cblock(130));
	CHECK_EQ(m.clock_hand, 131);
	/* Everything dirty: two full laps, and the hand ends where it began. */
	__set_bit(130, dirty);
	m.clock_hand = 517;
	CHECK_EQ(stash_map_alloc(&m, to_oblock(3), &ev), STASH_NO_CBLOCK);
	CHECK_EQ(m.clock_hand, 517);
	CHECK(stash_map_known_full(&m));
	stash_map_exit(&m);
}

TEST(map_second_chance)
{
	struct stash_map m;
	cblock_t hot;
	u64 ev;

	/* Entries referenced since the hand passed survive one sweep. */
	REQUIRE_EQ(stash_map_init(&m, 4), 0);
	for (u64 i = 0; i < 4; i++)
		REQUIRE_EQ(fill(&m, 10 + i), i);
	for (u32 i = 0; i < 3; i++)
		stash_map_ref(&m, to_cblock(i));
	CHECK_EQ(stash_map_alloc(&m, to_oblock(20), &ev), 3);
	CHECK_EQ(ev, 13);
	for (u32 i = 0; i < 3; i++)
		CHECK(!test_bit(i, m.refs));	/* the hand cleared it */
	stash_map_release(&m, to_cblock(3), true);	/* failed fill: idle */
	E(&m, 3)->flags |= SE_VALID;
	stash_map_note_reusable(&m);
	/* The hand goes on from where it stopped; cleared entries now go. */
	CHECK_EQ(stash_map_alloc(&m, to_oblock(21), &ev), 0);
	CHECK_EQ(ev, 10);
	stash_map_exit(&m);

	/* All referenced: one sweep clears them, the second takes the first. */
	REQUIRE_EQ(stash_map_init(&m, 8), 0);
	for (u64 i = 0; i < 8; i++)
		REQUIRE_EQ(fill(&m, 30 + i), i);
	for (u32 i = 0; i < 8; i++)
		stash_map_ref(&m, to_cblock(i));
	CHECK_EQ(stash_map_alloc(&m, to_oblock(40), &ev), 0);
	CHECK_EQ(ev, 30);
	for (u32 i = 1; i < 8; i++)
		CHECK(!test_bit(i, m.refs));
	stash_map_exit(&m);

	/* A block referenced between every two allocations is never evicted,
	 * while the unreferenced ones cycle through the rest of the cache. */
	REQUIRE_EQ(stash_map_init(&m, 16), 0);
	for (u64 i = 0; i < 16; i++)
		REQUIRE_EQ(fill(&m, 100 + i), i);
	hot = lookup(&m, 105);
	for (u64 i = 0; i < 1000; i++) {
		test_context("round %llu", (unsigned long long)i);
		stash_map_ref(&m, to_cblock(hot));
		cblock_t c = stash_map_alloc(&m, to_oblock(1000 + i), &ev);

		REQUIRE(cblock_is_valid(c));
		CHECK_NE(c, hot);
		CHECK_NE(ev, 105);
		E(&m, c)->flags |= SE_VALID;
		stash_map_note_reusable(&m);
		stash_map_release(&m, c, true);
		CHECK_EQ(lookup(&m, 105), hot);
	}
	test_context("after");
	/* The cold blocks of 1000 rounds: only the newest 15 remain. */
	CHECK(cblock_is_valid(lookup(&m, 1999)));
	CHECK(cblock_is_valid(lookup(&m, 1985)));
	CHECK_EQ(lookup(&m, 1984), STASH_NO_CBLOCK);
	stash_map_exit(&m);
}

/*
 * The victim's oblock is what the caller learns; it must be told apart from
 * "nothing was evicted" for every oblock the target accepts (48 bits).
 */
TEST(map_evicted_oblock_reported)
{
	static const u64 obs[] = {
		0, 1, 0xfffffffeull, 0xffffffffull, 1ull << 32,
		(1ull << 47) + 5, STASH_MAX_OBLOCKS - 1,
	};
	struct stash_map m;
	u64 none, ev;

	for (unsigned int k = 0; k < sizeof(obs) / sizeof(obs[0]); k++) {
		test_context("oblock 0x%llx", (unsigned long long)obs[k]);
		REQUIRE_EQ(stash_map_init(&m, 1), 0);
		REQUIRE_EQ(stash_map_alloc(&m, to_oblock(obs[k]), &none), 0);
		E(&m, 0)->flags |= SE_VALID;
		stash_map_note_reusable(&m);
		stash_map_release(&m, to_cblock(0), true);
		CHECK_EQ(stash_map_alloc(&m, to_oblock(obs[k] ^ 1), &ev), 0);
		CHECK_EQ(ev, obs[k]);
		/* "No eviction" must not look like an eviction of obs[k]. */
		CHECK_NE(none, ev);
		stash_map_exit(&m);
	}
	test_context("no eviction");
	CHECK_GE(no_eviction(), STASH_MAX_OBLOCKS);
}

TEST(map_invalidate_idle_frees_at_once)
{
	struct stash_map m;
	u64 ev;

	/* Three slots share one hash bucket: unlink head, middle and tail. */
	REQUIRE_EQ(stash_map_init(&m, 3), 0);
	for (u64 i = 0; i < 3; i++)
		REQUIRE_EQ(fill(&m, 70 + i), i);
	for (u32 victim = 0; victim < 3; victim++) {
		test_context("victim %u", victim);
		CHECK(stash_map_invalidate(&m, to_cblock(victim)));
		CHECK_EQ(m.nr_free, 1);
		CHECK_EQ(E(&m, victim)->flags, 0);
		CHECK_EQ(lookup(&m, 70 + victim), STASH_NO_CBLOCK);
		for (u32 i = 0; i < 3; i++) {
			if (i != victim)
				CHECK_EQ(lookup(&m, 70 + i), i);
		}
		/* Twice is a no-op, not a double free. */
		CHECK(!stash_map_invalidate(&m, to_cblock(victim)));
		CHECK_EQ(m.nr_free, 1);
		/* The freed slot is the next one handed out. */
		CHECK_EQ(stash_map_alloc(&m, to_oblock(70 + victim), &ev), victim);
		CHECK_EQ(ev, no_eviction());
		E(&m, victim)->flags |= SE_VALID;
		stash_map_note_reusable(&m);
		stash_map_release(&m, to_cblock(victim), true);
	}
	stash_map_exit(&m);
}

/*
 * A slot the metadata records dirty (cdirty), invalidated: counted in
 * cdirty_drops and its page touched, even while a reader pins it (its
 * free waits).  Break this catches: a drop not counted (a FUA write to
 * the origin would not wait for the commit that records the slot empty).
 */
TEST(map_invalidate_counts_cdirty_drops)
{
	unsigned long cdirty[1] = { 0 };
	struct stash_bitmap touched;
	struct stash_map m;

	REQUIRE_EQ(stash_map_init(&m, 8), 0);
	REQUIRE_EQ(stash_bitmap_init(&touched, 4), 0);
	m.entries_per_page = 2;
	m.cdirty = cdirty;
	for (u64 i = 0; i < 8; i++)
		REQUIRE_EQ(fill(&m, 100 + i), i);
	m.touched = &touched;
	__set_bit(3, cdirty);
	__set_bit(6, cdirty);
	CHECK(stash_map_invalidate(&m, to_cblock(0)));	/* not cdirty */
	CHECK_EQ(stash_map_cdirty_drops(&m), 0);
	CHECK(stash_map_invalidate(&m, to_cblock(3)));
	CHECK_EQ(stash_map_cdirty_drops(&m), 1);
	CHECK(stash_bitmap_test(&touched, 1));
	CHECK(stash_map_try_pin(&m, to_cblock(6)));
	CHECK(!stash_map_invalidate(&m, to_cblock(6)));	/* pinned: freed later */
	CHECK_EQ(stash_map_cdirty_drops(&m), 2);
	CHECK(stash_bitmap_test(&touched, 3));
	CHECK(!stash_map_invalidate(&m, to_cblock(6)));	/* once only */
	CHECK_EQ(stash_map_cdirty_drops(&m), 2);
	stash_bitmap_exit(&touched);
	stash_map_exit(&m);
}

TEST(map_invalidate_busy_defers_free)
{
	struct stash_map m;
	cblock_t c, c2;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 4), 0);
	c = stash_map_alloc(&m, to_oblock(7), &ev);	/* fill in flight */
	REQUIRE(cblock_is_valid(c));
	CHECK(!stash_map_invalidate(&m, c));
	CHECK_EQ(E(&m, c)->flags & ENTRY_STATE, SE_ALLOC | SE_BUSY | SE_STALE);
	CHECK_EQ(lookup(&m, 7), STASH_NO_CBLOCK);
	CHECK_EQ(m.nr_free, 3);
	CHECK(!stash_map_invalidate(&m, c));		/* no double free */
	CHECK_EQ(m.nr_free, 3);

	/* The block can be promoted again while the stale fill runs. */
	c2 = stash_map_alloc(&m, to_oblock(7), &ev);
	REQUIRE(cblock_is_valid(c2));
	CHECK_NE(c2, c);
	CHECK_EQ(lookup(&m, 7), c2);
	CHECK_EQ(m.nr_free, 2);

	/* The stale fill completes: its slot is freed, the new one stays. */
	CHECK(stash_map_release(&m, c, true));
	CHECK_EQ(m.nr_free, 3);
	CHECK_EQ(E(&m, c)->flags, 0);
	CHECK_EQ(lookup(&m, 7), c2);

	/* A write in flight on a valid entry: the same. */
	E(&m, c2)->flags |= SE_VALID;
	stash_map_note_reusable(&m);
	stash_map_release(&m, c2, true);
	E(&m, c2)->flags |= SE_BUSY;
	CHECK(!stash_map_invalidate(&m, c2));
	CHECK_EQ(E(&m, c2)->flags & ENTRY_STATE, SE_ALLOC | SE_BUSY | SE_STALE);
	CHECK_EQ(lookup(&m, 7), STASH_NO_CBLOCK);
	CHECK(stash_map_release(&m, c2, true));
	CHECK_EQ(m.nr_free, 4);
	stash_map_exit(&m);
}

TEST(map_invalidate_pinned_defers_free)
{
	struct stash_map m;
	cblock_t c;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 2), 0);
	c = fill(&m, 9);
	REQUIRE_EQ(c, 0);
	REQUIRE_EQ(fill(&m, 10), 1);

	/* An unpin of a live entry only drops the pin. */
	E(&m, c)->pins = 1;
	CHECK(!stash_map_release(&m, c, false));
	CHECK_EQ(E(&m, c)->pins, 0);
	CHECK_EQ(lookup(&m, 9), c);

	E(&m, c)->pins = 2;
	CHECK(!stash_map_invalidate(&m, c));
	CHECK_EQ(E(&m, c)->flags & ENTRY_STATE, SE_ALLOC | SE_STALE);
	CHECK_EQ(lookup(&m, 9), STASH_NO_CBLOCK);
	CHECK_EQ(lookup(&m, 10), 1);
	CHECK_EQ(m.nr_free, 0);
	/* Stale and pinned: neither free nor evictable. */
	CHECK_EQ(stash_map_alloc(&m, to_oblock(11), &ev), 1);
	CHECK_EQ(ev, 10);
	CHECK(!stash_map_release(&m, c, false));
	CHECK_EQ(E(&m, c)->pins, 1);
	CHECK_EQ(m.nr_free, 0);
	CHECK(stash_map_release(&m, c, false));
	CHECK_EQ(E(&m, c)->flags, 0);
	CHECK_EQ(m.nr_free, 1);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(12), &ev), c);
	CHECK_EQ(ev, no_eviction());
	stash_map_exit(&m);
}

/*
 * The read-hit completion drops its pin without the lock
 * (stash_map_unpin()) and comes back under the lock only when a decision
 * waits for that pin: a stale entry to free, a map that believes nothing
 * is evictable, a read waiting at the pin limit.
 */
TEST(map_unpin_lockfree)
{
	struct stash_map m;
	cblock_t c;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 4), 0);
	for (u64 i = 0; i < 4; i++)
		REQUIRE_EQ(fill(&m, 20 + i), i);
	c = to_cblock(1);

	/* A live entry: no lock needed, last pin or not. */
	CHECK(stash_map_try_pin(&m, c));
	CHECK(stash_map_try_pin(&m, c));
	CHECK_EQ(E(&m, 1)->pins, 2);
	CHECK(!stash_map_unpin(&m, c));
	CHECK(!stash_map_unpin(&m, c));
	CHECK_EQ(E(&m, 1)->pins, 0);
	CHECK_EQ(lookup(&m, 21), c);

	/* Invalidated while read: the last reader frees it, under the lock. */
	CHECK(stash_map_try_pin(&m, c));
	CHECK(stash_map_try_pin(&m, c));
	CHECK(!stash_map_invalidate(&m, c));
	CHECK_EQ(m.nr_free, 0);
	CHECK(!stash_map_unpin(&m, c));		/* one reader left */
	CHECK(stash_map_unpin(&m, c));
	CHECK(stash_map_unpinned(&m, c));
	CHECK_EQ(E(&m, 1)->flags, 0);
	CHECK_EQ(m.nr_free, 1);
	/* A second stash_map_unpinned() (both sides acted) changes nothing. */
	CHECK(!stash_map_unpinned(&m, c));
	CHECK_EQ(m.nr_free, 1);
	REQUIRE_EQ(stash_map_alloc(&m, to_oblock(31), &ev), c);
	E(&m, 1)->flags |= SE_VALID;
	stash_map_release(&m, c, true);

	/* Every entry pinned: the map says none is evictable ... */
	for (u64 i = 0; i < 4; i++)
		CHECK(stash_map_try_pin(&m, to_cblock(i)));
	CHECK_EQ(stash_map_alloc(&m, to_oblock(40), &ev), STASH_NO_CBLOCK);
	CHECK(m.none_evictable);
	/* ... so the unpin that makes one evictable must come back to say so. */
	CHECK(stash_map_unpin(&m, to_cblock(2)));
	CHECK(!stash_map_unpinned(&m, to_cblock(2)));
	CHECK(!m.none_evictable);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(40), &ev), to_cblock(2));
	CHECK_EQ(ev, 22);

	/* At the pin limit a read waits: the unpin below it says so. */
	E(&m, 3)->pins = STASH_MAX_PINS;
	CHECK(stash_map_unpin(&m, to_cblock(3)));
	CHECK_EQ(E(&m, 3)->pins, STASH_MAX_PINS - 1);
	CHECK(!stash_map_unpin(&m, to_cblock(3)));
	stash_map_exit(&m);
}

/*
 * The slot-state functions the module uses instead of the flags: each
 * says what the flags say, through a slot's life (fill, read, write,
 * invalidation while busy, free).
 */
TEST(map_slot_state)
{
	struct stash_map m;
	cblock_t c;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 4), 0);
	c = to_cblock(2);
	test_context("free");
	CHECK(!stash_map_is_allocated(&m, c));
	CHECK(!stash_map_is_mapped(&m, c));
	CHECK(!stash_map_is_live(&m, c));

	for (u64 i = 0; i < 2; i++)
		REQUIRE_EQ(fill(&m, 10 + i), i);
	test_context("a fill in flight");
	REQUIRE_EQ(stash_map_alloc(&m, to_oblock((1ull << 40) + 7), &ev), c);
	CHECK(stash_map_is_allocated(&m, c));
	CHECK(stash_map_is_mapped(&m, c));
	CHECK(!stash_map_is_valid(&m, c));
	CHECK(stash_map_is_busy(&m, c));
	CHECK(stash_map_is_held(&m, c));
	CHECK(!stash_map_is_stale(&m, c));
	CHECK(!stash_map_in_writeback(&m, c));
	CHECK(!stash_map_is_live(&m, c));
	CHECK(stash_map_read_must_wait(&m, c));
	CHECK_EQ(from_oblock(stash_map_oblock(&m, c)), (1ull << 40) + 7);

	test_context("filled");
	stash_map_set_valid(&m, c);
	CHECK(stash_map_is_live(&m, c));
	CHECK(!stash_map_read_must_wait(&m, c));	/* busy: reads go on */
	CHECK(!stash_map_release(&m, c, true));
	CHECK(!stash_map_is_busy(&m, c));
	CHECK(!stash_map_is_held(&m, c));
	CHECK(stash_map_is_live(&m, c));
	CHECK(!stash_map_read_must_wait(&m, c));

	test_context("at the pin limit");
	E(&m, 2)->pins = STASH_MAX_PINS - 1;
	CHECK(!stash_map_read_must_wait(&m, c));
	CHECK(stash_map_try_pin(&m, c));
	CHECK(stash_map_read_must_wait(&m, c));
	CHECK(stash_map_unpin(&m, c));
	CHECK(!stash_map_read_must_wait(&m, c));
	E(&m, 2)->pins = 0;

	test_context("a write");
	clear_bit(2, m.refs);
	stash_map_set_busy(&m, c);
	CHECK(stash_map_is_busy(&m, c));
	CHECK(stash_map_is_held(&m, c));
	CHECK(test_bit(2, m.refs));		/* referenced for the clock */
	CHECK_EQ(E(&m, 2)->flags & ENTRY_STATE,
		 SE_ALLOC | SE_MAPPED | SE_VALID | SE_BUSY);

	test_context("invalidated while busy");
	CHECK(!stash_map_invalidate(&m, c));
	CHECK(stash_map_is_allocated(&m, c));
	CHECK(!stash_map_is_mapped(&m, c));
	CHECK(!stash_map_is_valid(&m, c));
	CHECK(stash_map_is_stale(&m, c));
	CHECK(!stash_map_is_live(&m, c));
	CHECK(stash_map_read_must_wait(&m, c));
	CHECK(stash_map_release(&m, c, true));
	CHECK(!stash_map_is_allocated(&m, c));
	CHECK(!stash_map_is_stale(&m, c));

	test_context("others untouched");
	for (u64 i = 0; i < 2; i++) {
		CHECK(stash_map_is_live(&m, to_cblock(i)));
		CHECK(!stash_map_is_held(&m, to_cblock(i)));
		CHECK_EQ(from_oblock(stash_map_oblock(&m, to_cblock(i))), 10 + i);
	}
	stash_map_exit(&m);
}

/*
 * Writeback's flags: a picked block is held until its writeback ends; a
 * run makes its blocks busy all or none; a write between the pick and the
 * end (stash_map_note_write()) keeps the block dirty, a write at any
 * other time does not; the end clears the busy flag only for a run that
 * still holds it.
 */
TEST(map_writeback_flags)
{
	const u32 run[] = { 5, 1, 3 };
	struct stash_map m;

	REQUIRE_EQ(stash_map_init(&m, 8), 0);
	for (u64 i = 0; i < 8; i++)
		REQUIRE_EQ(fill(&m, 100 + i), i);

	test_context("a write before the pick");
	stash_map_note_write(&m, to_cblock(5));
	CHECK_EQ(E(&m, 5)->flags & SE_REDIRTY, 0);

	test_context("picked");
	for (u32 i = 0; i < 3; i++) {
		stash_map_writeback_begin(&m, to_cblock(run[i]));
		CHECK(stash_map_in_writeback(&m, to_cblock(run[i])));
		CHECK(stash_map_is_held(&m, to_cblock(run[i])));
		CHECK(!stash_map_is_busy(&m, to_cblock(run[i])));
	}

	test_context("a user write holds one block");
	stash_map_set_busy(&m, to_cblock(3));
	CHECK(!stash_map_writeback_take(&m, run, 3));
	for (u32 i = 0; i < 3; i++)
		CHECK_EQ(stash_map_is_busy(&m, to_cblock(run[i])), run[i] == 3);
	/* The write ends (it was picked: the write marks it rewritten). */
	stash_map_note_write(&m, to_cblock(3));
	CHECK(!stash_map_release(&m, to_cblock(3), true));

	test_context("the run reads");
	CHECK(stash_map_writeback_take(&m, run, 3));
	for (u32 i = 0; i < 3; i++)
		CHECK(stash_map_is_busy(&m, to_cblock(run[i])));
	CHECK(!stash_map_is_busy(&m, to_cblock(0)));
	CHECK(!stash_map_writeback_take(&m, run + 1, 1));	/* taken already */
	stash_map_writeback_release(&m, run, 3);
	for (u32 i = 0; i < 3; i++) {
		CHECK(!stash_map_is_busy(&m, to_cblock(run[i])));
		CHECK(stash_map_in_writeback(&m, to_cblock(run[i])));
	}

	test_context("a write after the read, before the end");
	stash_map_set_busy(&m, to_cblock(1));
	stash_map_note_write(&m, to_cblock(1));

	test_context("the end");
	/* Released already (@busy false): 1's write keeps its busy flag. */
	CHECK(stash_map_writeback_end(&m, to_cblock(1), false));
	CHECK(stash_map_is_busy(&m, to_cblock(1)));
	CHECK(!stash_map_in_writeback(&m, to_cblock(1)));
	CHECK(stash_map_writeback_end(&m, to_cblock(3), false));
	CHECK(!stash_map_writeback_end(&m, to_cblock(5), false));
	for (u32 i = 0; i < 3; i++)
		CHECK_EQ(E(&m, run[i])->flags & (SE_WRITEBACK | SE_REDIRTY), 0);
	CHECK(!stash_map_release(&m, to_cblock(1), true));

	test_context("a run that ends without releasing");
	stash_map_writeback_begin(&m, to_cblock(6));
	CHECK(stash_map_writeback_take(&m, run + 1, 0));	/* no blocks */
	CHECK(stash_map_writeback_take(&m, (const u32[]){ 6 }, 1));
	CHECK(!stash_map_writeback_end(&m, to_cblock(6), true));
	CHECK_EQ(E(&m, 6)->flags & ENTRY_STATE, SE_ALLOC | SE_MAPPED | SE_VALID);

	test_context("a write after the end");
	stash_map_note_write(&m, to_cblock(6));
	CHECK_EQ(E(&m, 6)->flags & SE_REDIRTY, 0);
	for (u64 i = 0; i < 8; i++)
		CHECK(!stash_map_is_held(&m, to_cblock(i)));
	stash_map_exit(&m);
}

/*
 * The other objects' bitmaps, attached and detached: dirty slots are not
 * evicted, a committed-dirty free slot is not taken first, pages are
 * marked at the size given, and a detached bitmap is no longer looked at.
 */
TEST(map_attach_bitmaps)
{
	struct stash_bitmap dirty, cdirty, touched;
	struct stash_map m;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 8), 0);
	REQUIRE_EQ(stash_bitmap_init(&dirty, 8), 0);
	REQUIRE_EQ(stash_bitmap_init(&cdirty, 8), 0);
	REQUIRE_EQ(stash_bitmap_init(&touched, 3), 0);

	test_context("pages");
	stash_map_attach_pages(&m, &touched, 3);
	for (u64 i = 0; i < 7; i++)
		REQUIRE_EQ(fill(&m, 100 + i), i);
	CHECK_EQ(touched.nr_set, 3);
	stash_bitmap_zero(&touched);
	stash_map_touch(&m, to_cblock(5));
	CHECK_EQ(stash_bitmap_next(&touched, 0), 1);
	stash_bitmap_zero(&touched);
	/*
	 * Stopped while a load runs: nothing marked, the page size stays;
	 * then as before.
	 */
	stash_map_attach_pages(&m, NULL, 0);
	CHECK_EQ(m.entries_per_page, 3);
	CHECK(stash_map_invalidate(&m, to_cblock(6)));
	stash_map_touch(&m, to_cblock(4));
	CHECK_EQ(touched.nr_set, 0);
	stash_map_attach_pages(&m, &touched, 3);
	stash_map_touch(&m, to_cblock(7));
	CHECK_EQ(stash_bitmap_next(&touched, 0), 2);
	CHECK_EQ(touched.nr_set, 1);
	stash_map_attach_pages(&m, NULL, 0);
	REQUIRE_EQ(fill(&m, 106), 6);

	test_context("committed-dirty");
	REQUIRE_EQ(fill(&m, 107), 7);
	CHECK(stash_map_invalidate(&m, to_cblock(7)));
	stash_bitmap_set(&cdirty, 7);
	CHECK(stash_map_has_free(&m));		/* not attached yet */
	stash_map_attach_cdirty(&m, &cdirty);
	CHECK(!stash_map_has_free(&m));
	stash_map_attach_cdirty(&m, NULL);
	CHECK(stash_map_has_free(&m));
	REQUIRE_EQ(fill(&m, 107), 7);

	test_context("dirty");
	for (u32 i = 0; i < 8; i++)
		if (i != 4)
			stash_bitmap_set(&dirty, i);
	stash_map_attach_dirty(&m, &dirty);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(200), &ev), to_cblock(4));
	CHECK_EQ(ev, 104);
	stash_map_set_valid(&m, to_cblock(4));
	stash_map_release(&m, to_cblock(4), true);
	stash_bitmap_set(&dirty, 4);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(201), &ev), STASH_NO_CBLOCK);
	stash_map_attach_dirty(&m, NULL);
	stash_map_note_reusable(&m);
	CHECK(cblock_is_valid(stash_map_alloc(&m, to_oblock(201), &ev)));

	stash_bitmap_exit(&touched);
	stash_bitmap_exit(&cdirty);
	stash_bitmap_exit(&dirty);
	stash_map_exit(&m);
}

TEST(map_48bit_oblocks)
{
	static const u64 obs[] = {
		(1ull << 47) + 5, 5, (1ull << 32) + 5, 0xffffffffull,
		1ull << 32, STASH_MAX_OBLOCKS - 1, 0, (1ull << 47),
		0x123456789abcull,
	};
	const unsigned int n = sizeof(obs) / sizeof(obs[0]);
	struct stash_map m;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, n), 0);
	for (unsigned int i = 0; i < n; i++) {
		test_context("oblock 0x%llx", (unsigned long long)obs[i]);
		CHECK_EQ(fill(&m, obs[i]), i);
		CHECK_EQ(from_oblock(stash_entry_oblock(E(&m, i))), obs[i]);
	}
	for (unsigned int i = 0; i < n; i++) {
		test_context("oblock 0x%llx", (unsigned long long)obs[i]);
		CHECK_EQ(lookup(&m, obs[i]), i);
	}
	test_context("aliases");
	CHECK_EQ(lookup(&m, (1ull << 47) + 6), STASH_NO_CBLOCK);
	CHECK_EQ(lookup(&m, (1ull << 33) + 5), STASH_NO_CBLOCK);

	/* The victim is reported with all 48 bits. */
	test_context("evict");
	CHECK_EQ(stash_map_alloc(&m, to_oblock(77), &ev), 0);
	CHECK_EQ(ev, (1ull << 47) + 5);
	CHECK_EQ(lookup(&m, 5), 1);
	stash_map_exit(&m);
}

/*----------------------------------------------------------------
 * Randomized comparison with a brute-force model
 *--------------------------------------------------------------*/

struct model_slot {
	bool alloc, mapped, valid, busy, stale;
	unsigned int pins;
	u64 ob;
};

struct model {
	struct model_slot *s;
	u32 n, nr_free;
	unsigned long *dirty;
};

/* What a randomized run exercised, so a test that stops exercising a path
 * fails instead of passing vacuously. */
static struct model_stats {
	unsigned long evictions, refusals, free_allocs, freed_now, freed_late;
	unsigned long deferred, hits;
} mstats;

static int model_find(const struct model *md, u64 ob)
{
	for (u32 i = 0; i < md->n; i++) {
		if (md->s[i].mapped && md->s[i].ob == ob)
			return (int)i;
	}
	return -1;
}

static bool model_evictable(const struct model *md, u32 i)
{
	const struct model_slot *s = &md->s[i];

	return s->alloc && s->mapped && s->valid && !s->busy && !s->stale &&
	       !s->pins && !test_bit(i, md->dirty);
}

static void model_free(struct model *md, u32 i)
{
	memset(&md->s[i], 0, sizeof(md->s[i]));
	md->nr_free++;
}

/* Mirror of stash_map_invalidate(): true if freed now. */
static bool model_invalidate(struct model *md, u32 i)
{
	struct model_slot *s = &md->s[i];

	if (!s->alloc || s->stale)
		return false;
	if (s->busy || s->pins) {
		s->mapped = false;
		s->valid = false;
		s->stale = true;
		mstats.deferred++;
		return false;
	}
	model_free(md, i);
	mstats.freed_now++;
	return true;
}

/* Mirror of stash_map_release(). */
static bool model_release(struct model *md, u32 i, bool busy)
{
	struct model_slot *s = &md->s[i];

	if (busy)
		s->busy = false;
	else if (s->pins)
		s->pins--;
	if (s->stale && !s->busy && !s->pins) {
		model_free(md, i);
		mstats.freed_late++;
		return true;
	}
	return false;
}

/* A random slot satisfying @pred, or -1. */
static int model_pick(const struct model *md, uint64_t *rs,
		      bool (*pred)(const struct model_slot *))
{
	u32 start = (u32)unit_rand_below(rs, md->n);

	for (u32 k = 0; k < md->n; k++) {
		u32 i = (start + k) % md->n;

		if (pred(&md->s[i]))
			return (int)i;
	}
	return -1;
}

static bool is_busy(const struct model_slot *s) { return s->busy; }
static bool is_pinned(const struct model_slot *s) { return s->pins; }
static bool is_hit_writable(const struct model_slot *s)
{
	return s->mapped && s->valid && !s->busy;
}

/* Distinct oblocks, half of them above 2^47. */
static u64 ob_of(u64 k)
{
	return (k & 1) ? (1ull << 47) | (k >> 1) : k >> 1;
}

static u8 model_flags(const struct model_slot *s)
{
	return (s->alloc ? SE_ALLOC : 0) | (s->mapped ? SE_MAPPED : 0) |
	       (s->valid ? SE_VALID : 0) | (s->busy ? SE_BUSY : 0) |
	       (s->stale ? SE_STALE : 0);
}

/* Full comparison of table and model; false (after reporting) on a difference. */
static bool model_compare(const struct stash_map *m, const struct model *md,
			  u64 nr_keys)
{
	u32 i, k;

	CHECK_EQ(m->nr_free, md->nr_free);
	for (i = 0; i < md->n; i++) {
		const struct stash_entry *e = stash_map_entry(m, to_cblock(i));

		test_context("slot %u", i);
		CHECK_EQ(e->flags & ENTRY_STATE, model_flags(&md->s[i]));
		CHECK_EQ(e->pins, md->s[i].pins);
		if (md->s[i].alloc)
			CHECK_EQ(from_oblock(stash_entry_oblock(e)), md->s[i].ob);
	}
	for (k = 0; k < nr_keys; k++) {
		int want = model_find(md, ob_of(k));

		test_context("lookup 0x%llx", (unsigned long long)ob_of(k));
		CHECK_EQ(stash_map_lookup(m, to_oblock(ob_of(k))),
			 want < 0 ? STASH_NO_CBLOCK : to_cblock(want));
	}
	/* The free list holds exactly the free slots, without a cycle. */
	test_context("free list");
	i = m->free_head;
	for (k = 0; k < m->nr_free; k++) {
		if (i >= md->n) {
			CHECK_LT(i, md->n);
			break;
		}
		CHECK(!md->s[i].alloc);
		CHECK_EQ(stash_map_entry(m, to_cblock(i))->flags, 0);
		i = stash_map_entry(m, to_cblock(i))->next;
	}
	if (m->nr_free)
		CHECK_EQ(i, STASH_NO_INDEX);
	test_context("%s", "");
	return !test_failed();
}

static void model_run(u32 n, unsigned int nr_ops, uint64_t seed)
{
	const u64 nr_keys = 3 * (u64)n + 2;
	unsigned long *dirty = calloc(BITS_TO_LONGS(n), sizeof(long));
	struct model md = { calloc(n, sizeof(struct model_slot)), n, n, dirty };
	struct stash_map m;
	uint64_t rs = seed;

	REQUIRE(dirty && md.s);
	REQUIRE_EQ(stash_map_init(&m, n), 0);
	m.dirty = dirty;

	for (unsigned int op = 0; op < nr_ops && !test_failed(); op++) {
		unsigned int r = (unsigned int)unit_rand_below(&rs, 100);
		int i;

		test_context("n=%u op %u r=%u", n, op, r);
		if (r < 30) {
			/* A read: hit (pin it) or miss (maybe promote). */
			u64 ob = ob_of(unit_rand_below(&rs, nr_keys));
			int want = model_find(&md, ob);
			cblock_t c = stash_map_lookup(&m, to_oblock(ob));

			REQUIRE_EQ(c, want < 0 ? STASH_NO_CBLOCK : to_cblock(want));
			if (want >= 0) {
				struct stash_entry *e = stash_map_entry(&m, c);

				if (e->flags & SE_BUSY || e->pins == STASH_MAX_PINS)
					continue;	/* the bio would wait */
				e->pins++;
				stash_map_ref(&m, c);
				md.s[want].pins++;
				mstats.hits++;
				continue;
			}
			if (unit_rand_below(&rs, 4) == 0)
				continue;	/* the filter said no */

			bool any_idle = false, any_cold = false, was_ref[64] = { 0 };
			u64 ev;

			for (u32 j = 0; j < n; j++) {
				bool ref = test_bit(j, m.refs);

				if (!model_evictable(&md, j))
					continue;
				any_idle = true;
				any_cold |= !ref;
				if (j < 64)
					was_ref[j] = ref;
			}
			c = stash_map_alloc(&m, to_oblock(ob), &ev);
			if (md.nr_free) {
				REQUIRE(cblock_is_valid(c));
				REQUIRE_LT(from_cblock(c), n);
				REQUIRE(!md.s[from_cblock(c)].alloc);
				REQUIRE_EQ(ev, no_eviction());
				md.nr_free--;
				mstats.free_allocs++;
			} else if (!any_idle) {
				REQUIRE_EQ(c, STASH_NO_CBLOCK);
				REQUIRE_EQ(ev, no_eviction());
				mstats.refusals++;
				continue;
			} else {
				mstats.evictions++;
				REQUIRE(cblock_is_valid(c));
				REQUIRE_LT(from_cblock(c), n);
				REQUIRE(model_evictable(&md, (u32)from_cblock(c)));
				REQUIRE_EQ(ev, md.s[from_cblock(c)].ob);
				/* Second chance: a referenced victim only if
				 * every candidate was referenced. */
				if (any_cold && from_cblock(c) < 64)
					REQUIRE(!was_ref[from_cblock(c)]);
			}
			i = (int)from_cblock(c);
			md.s[i] = (struct model_slot){ .alloc = true, .mapped = true,
						       .busy = true, .ob = ob };
		} else if (r < 52) {
			/* A fill or a write completes, or fails. */
			i = model_pick(&md, &rs, is_busy);
			if (i < 0)
				continue;
			if (unit_rand_below(&rs, 5)) {
				if (!md.s[i].stale) {
					stash_map_entry(&m, to_cblock(i))->flags |= SE_VALID;
					stash_map_note_reusable(&m);
					md.s[i].valid = true;
				}
			} else {
				REQUIRE_EQ(stash_map_invalidate(&m, to_cblock(i)),
					   model_invalidate(&md, i));
			}
			REQUIRE_EQ(stash_map_release(&m, to_cblock(i), true),
				   model_release(&md, i, true));
		} else if (r < 74) {
			/* A read from the cache completes. */
			i = model_pick(&md, &rs, is_pinned);
			if (i < 0)
				continue;
			if (r & 1) {
				REQUIRE_EQ(stash_map_release(&m, to_cblock(i), false),
					   model_release(&md, i, false));
			} else {
				/* The lock-free unpin, then the lock if it asks. */
				bool freed = stash_map_unpin(&m, to_cblock(i)) &&
					     stash_map_unpinned(&m, to_cblock(i));

				REQUIRE_EQ(freed, model_release(&md, i, false));
			}
		} else if (r < 81) {
			/* A write-around invalidates by oblock. */
			u64 ob = ob_of(unit_rand_below(&rs, nr_keys));
			cblock_t c = stash_map_lookup(&m, to_oblock(ob));

			i = model_find(&md, ob);
			REQUIRE_EQ(c, i < 0 ? STASH_NO_CBLOCK : to_cblock(i));
			if (i >= 0)
				REQUIRE_EQ(stash_map_invalidate(&m, c),
					   model_invalidate(&md, i));
		} else if (r < 86) {
			/* A write-through hit makes the entry busy. */
			i = model_pick(&md, &rs, is_hit_writable);
			if (i < 0)
				continue;
			stash_map_entry(&m, to_cblock(i))->flags |= SE_BUSY;
			stash_map_ref(&m, to_cblock(i));
			md.s[i].busy = true;
		} else if (r < 93) {
			/* The dirty bitmap changes. */
			u32 b = (u32)unit_rand_below(&rs, n);

			if (test_bit(b, dirty)) {
				__clear_bit(b, dirty);
				stash_map_note_reusable(&m);
			} else if (unit_rand_below(&rs, 3) == 0)
				__set_bit(b, dirty);
		} else {
			/* Invalidate any slot by number, free or stale too. */
			i = (int)unit_rand_below(&rs, n);
			REQUIRE_EQ(stash_map_invalidate(&m, to_cblock(i)),
				   model_invalidate(&md, i));
		}
		REQUIRE_EQ(m.nr_free, md.nr_free);
		REQUIRE_EQ(stash_map_nr_allocated(&m), n - md.nr_free);
		if (op % 64 == 0 && !model_compare(&m, &md, nr_keys))
			break;
	}
	if (!test_failed())
		model_compare(&m, &md, nr_keys);
	stash_map_exit(&m);
	free(md.s);
	free(dirty);
}

TEST(map_random_vs_model)
{
	static const u32 sizes[] = { 1, 2, 3, 8, 16, 61 };

	for (unsigned int k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		model_run(sizes[k], 20000, 0x5eed0000ull + k);
	printf("    %lu hits, %lu evictions, %lu refusals, %lu free-list allocs, "
	       "%lu invalidated idle, %lu deferred, %lu freed on release\n",
	       mstats.hits, mstats.evictions, mstats.refusals, mstats.free_allocs,
	       mstats.freed_now, mstats.deferred, mstats.freed_late);
	test_context("coverage");
	CHECK_GT(mstats.hits, 1000);
	CHECK_GT(mstats.evictions, 1000);
	CHECK_GT(mstats.refusals, 100);
	CHECK_GT(mstats.free_allocs, 1000);
	CHECK_GT(mstats.freed_now, 1000);
	CHECK_GT(mstats.freed_late, 1000);
	CHECK_GT(mstats.deferred, 1000);
}

/*----------------------------------------------------------------
 * RAM budget
 *--------------------------------------------------------------*/

/*
 * Project requirement: kernel RAM per cache block <= 16 bytes for the
 * mapping table (entries, buckets) plus the promotion filter, at every
 * cache size the target accepts (it accepts 16 blocks and up).
 */
TEST(map_ram_per_cblock_within_16_bytes)
{
	static const u32 sizes[] = { 16, 1000, 4096, 65536, 1u << 20, 3000017 };

	for (unsigned int k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		const u32 n = sizes[k];
		struct stash_filter f;
		struct stash_map m;
		u64 map_bytes, filter_bytes;
		u32 per;

		test_context("%u cblocks", n);
		REQUIRE_EQ(stash_map_init(&m, n), 0);
		REQUIRE_EQ(stash_filter_init(&f, n), 0);
		per = stash_map_bytes_per_cblock(&m);
		/* The figure must be honest: what was allocated. */
		map_bytes = (u64)n * sizeof(struct stash_entry) +
			    sizeof(u32) * (1ull << m.hash_bits) +
			    BITS_TO_LONGS((u64)n) * sizeof(long);
		CHECK_EQ(stash_map_bytes(&m), map_bytes);
		CHECK_EQ(per, (map_bytes + n - 1) / n);
		CHECK_GE(per, sizeof(struct stash_entry));
		filter_bytes = 2 * BITS_TO_LONGS(1ull << f.bits) * sizeof(long);
		/* per + filter_bytes / n <= 16 */
		CHECK_LE((u64)per * n + filter_bytes, 16ull * n);
		stash_filter_exit(&f);
		stash_map_exit(&m);
	}
}

/*
 * Reads that take no lock (stash_map_pin_lockless()) against a writer that
 * maps, fills, invalidates and evicts under a lock, on two threads each:
 * a read that got a pin finds its entry mapping its block for as long as
 * it holds the pin (nothing reuses a pinned slot), and every pin comes
 * back (no slot stays pinned at the end).  Breaks it catches (seen
 * failing): the clock evicting without marking its victim before it looks
 * at the pins, and a lockless pin that does not look at the entry again
 * after it took the pin.
 */
#include <pthread.h>

struct race {
	struct stash_map m;
	pthread_mutex_t lock;
	volatile int stop;
	u32 nr_ob;
	unsigned long hits, backoffs, bad;
};

static void race_unpin(struct race *r, cblock_t c)
{
	if (stash_map_unpin(&r->m, c)) {
		pthread_mutex_lock(&r->lock);
		stash_map_unpinned(&r->m, c);
		pthread_mutex_unlock(&r->lock);
	}
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	uint64_t rs = (uint64_t)(uintptr_t)&rs;

	while (!r->stop) {
		oblock_t ob = to_oblock(unit_rand_below(&rs, r->nr_ob));
		cblock_t c;

		switch (stash_map_pin_lockless(&r->m, ob, &c)) {
		case STASH_PIN_MISS:
			break;
		case STASH_PIN_BACKOFF:
			__atomic_fetch_add(&r->backoffs, 1, __ATOMIC_RELAXED);
			race_unpin(r, c);
			break;
		case STASH_PIN_HIT:
			__atomic_fetch_add(&r->hits, 1, __ATOMIC_RELAXED);
			for (int k = 0; k < 50; k++) {
				const struct stash_entry *e = stash_map_entry(&r->m, c);

				if (to_oblock(((u64)READ_ONCE(e->oblock_hi) << 32) |
					      READ_ONCE(e->oblock_lo)) != ob)
					__atomic_fetch_add(&r->bad, 1, __ATOMIC_RELAXED);
			}
			race_unpin(r, c);
			break;
		}
	}
	return NULL;
}

TEST(map_lockless_pins_race)
{
	struct race r = { .nr_ob = 24 };
	pthread_t th[2];
	uint64_t rs = 99;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&r.m, 16), 0);
	pthread_mutex_init(&r.lock, NULL);
	for (int i = 0; i < 2; i++)
		REQUIRE_EQ(pthread_create(&th[i], NULL, race_reader, &r), 0);
	for (int op = 0; op < 3000000; op++) {
		oblock_t ob = to_oblock(unit_rand_below(&rs, r.nr_ob));
		cblock_t c;

		pthread_mutex_lock(&r.lock);
		c = stash_map_lookup(&r.m, ob);
		if (!cblock_is_valid(c)) {
			/* Map and fill it (evicting, once full). */
			c = stash_map_alloc(&r.m, ob, &ev);
			if (cblock_is_valid(c)) {
				stash_map_set_valid(&r.m, c);
				stash_map_release(&r.m, c, true);
			}
		} else if (unit_rand_below(&rs, 4) == 0) {
			stash_map_invalidate(&r.m, c);
		} else if (stash_map_entry(&r.m, c)->flags & SE_VALID) {
			stash_map_ref(&r.m, c);
		}
		pthread_mutex_unlock(&r.lock);
	}
	r.stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	test_context("%lu hits, %lu back-offs", r.hits, r.backoffs);
	if (getenv("RACE_VERBOSE"))
		fprintf(stderr, "race: %lu hits, %lu back-offs, %lu bad\n",
			r.hits, r.backoffs, r.bad);
	CHECK_EQ(r.bad, 0);
	CHECK_GT(r.hits, 0);
	for (u32 i = 0; i < 16; i++)
		CHECK_EQ(stash_map_entry(&r.m, to_cblock(i))->pins, 0);
	pthread_mutex_destroy(&r.lock);
	stash_map_exit(&r.m);
}

/*
 * The same two interleavings, forced (stash_map_test_hook): a read pins
 * the very slot the clock has just chosen, before the clock marks it; and
 * the clock evicts and reuses the very slot a read has just found, before
 * the read pins it.  Breaks they catch (seen failing): the clock not
 * marking its victim and looking at the pins again (the pinned slot is
 * reused), and the read not looking at the entry again after its pin (it
 * reads another block's data).
 */
static struct {
	oblock_t ob;		/* what the forced read looks for */
	cblock_t pinned;
	enum stash_pin_result got;
	bool done;
	u64 evict_ob;		/* the forced eviction maps this */
	cblock_t reused;
} forced;

static void hook_pin_victim(struct stash_map *m, enum stash_map_hook point, u32 i)
{
	if (point != STASH_HOOK_VICTIM || forced.done)
		return;
	forced.done = true;
	forced.ob = stash_entry_oblock(&m->entries[i]);
	forced.got = stash_map_pin_lockless(m, forced.ob, &forced.pinned);
}

static void hook_evict_found(struct stash_map *m, enum stash_map_hook point, u32 i)
{
	u64 ev;

	if (point != STASH_HOOK_FOUND || forced.done)
		return;
	forced.done = true;
	forced.reused = stash_map_alloc(m, to_oblock(forced.evict_ob), &ev);
	(void)i;
}

/* Four slots mapping blocks 100..103, valid and idle. */
static void four_slots(struct stash_map *m)
{
	u64 ev;

	REQUIRE_EQ(stash_map_init(m, 4), 0);
	for (u32 b = 0; b < 4; b++) {
		cblock_t c = stash_map_alloc(m, to_oblock(100 + b), &ev);

		stash_map_set_valid(m, c);
		stash_map_release(m, c, true);
	}
}

TEST(map_lockless_pin_forced_interleavings)
{
	struct stash_map m;
	cblock_t c;
	u64 ev;

	test_context("a read pins the clock's victim before it is marked");
	four_slots(&m);
	memset(&forced, 0, sizeof(forced));
	stash_map_test_hook = hook_pin_victim;
	c = stash_map_alloc(&m, to_oblock(200), &ev);
	stash_map_test_hook = NULL;
	REQUIRE(forced.done);
	CHECK_EQ(forced.got, STASH_PIN_HIT);
	CHECK(cblock_is_valid(c));
	CHECK(from_cblock(c) != from_cblock(forced.pinned));
	CHECK_EQ(from_oblock(stash_entry_oblock(stash_map_entry(&m, forced.pinned))),
		 from_oblock(forced.ob));
	stash_map_unpin(&m, forced.pinned);
	stash_map_exit(&m);

	test_context("the clock reuses the slot a read found before it pins");
	four_slots(&m);
	memset(&forced, 0, sizeof(forced));
	forced.evict_ob = 300;
	/* Only block 102's slot is evictable: the others are busy. */
	for (u32 b = 0; b < 4; b++)
		if (b != 2)
			stash_map_entry(&m, stash_map_lookup(&m, to_oblock(100 + b)))->flags |= SE_BUSY;
	stash_map_test_hook = hook_evict_found;
	CHECK(stash_map_pin_lockless(&m, to_oblock(102), &c) != STASH_PIN_HIT);
	stash_map_test_hook = NULL;
	REQUIRE(forced.done);
	CHECK_EQ(from_cblock(forced.reused), from_cblock(c));
	stash_map_unpin(&m, c);
	CHECK_EQ(stash_map_entry(&m, c)->pins, 0);
	stash_map_exit(&m);
}
