// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for the sequential-stream detector (kmod/stash-policy.c,
 * stash_seq_*): a cutoff of 0 turns it off; a stream of contiguous I/Os is
 * called sequential exactly once it has moved more than the cutoff (for
 * small and large I/O sizes and the target's default cutoff), and a gap or
 * a jump back starts a new stream; random I/O never is; 16 interleaved
 * streams are all tracked; a 17th replaces the least recently used one; a
 * stream stays tracked while random I/O is mixed in.
 */
#include "unit.h"

#include "stash-policy.h"
#include <linux/dm-stash.h>

/* The tunables' defaults (linux/dm-stash-tunables.h), as constants. */
#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) \
	DEFAULT_##name = def,
enum {
#include <linux/dm-stash-tunables.h>
};
#undef STASH_TUNABLE

#define BLOCK_SECTORS	8	/* 4 KiB blocks */
/* The target's default sequential_cutoff, in sectors. */
#define DEFAULT_CUTOFF	(DEFAULT_sequential_cutoff * 2)

static bool io(struct stash_seq *s, u64 sector, u32 nr)
{
	return stash_seq_is_sequential(s, sector, nr);
}

TEST(seq_cutoff_zero_is_off)
{
	struct stash_seq s;
	u64 sector = 0;

	stash_seq_init(&s, 0);
	for (unsigned int k = 0; k < 10000; k++, sector += BLOCK_SECTORS)
		CHECK(!io(&s, sector, BLOCK_SECTORS));
	for (unsigned int k = 0; k < 100; k++, sector += 2048)
		CHECK(!io(&s, sector, 2048));
}

/* I/O number k (from 1) of @size sectors: sequential iff k * size > cutoff. */
static void check_stream(u64 cutoff, u32 size, u64 base, unsigned int nr)
{
	struct stash_seq s;

	stash_seq_init(&s, cutoff);
	for (unsigned int k = 1; k <= nr; k++) {
		test_context("cutoff %llu, %u-sector I/O number %u",
			     (unsigned long long)cutoff, size, k);
		CHECK_EQ(io(&s, base + (u64)(k - 1) * size, size),
			 (u64)k * size > cutoff);
	}
}

TEST(seq_stream_becomes_sequential_past_cutoff)
{
	check_stream(64, BLOCK_SECTORS, 0, 200);
	check_stream(64, BLOCK_SECTORS, 1ull << 40, 200);
	check_stream(DEFAULT_CUTOFF, BLOCK_SECTORS, 12345, 2000);
	check_stream(DEFAULT_CUTOFF, 256, 0, 100);
	check_stream(DEFAULT_CUTOFF + 1, 1, 0, DEFAULT_CUTOFF + 100);
}

TEST(seq_gap_or_jump_back_restarts)
{
	struct stash_seq s;
	u64 sector = 0;
	unsigned int k;

	stash_seq_init(&s, 64);
	for (k = 0; k < 20; k++, sector += BLOCK_SECTORS)
		io(&s, sector, BLOCK_SECTORS);
	CHECK(io(&s, sector, BLOCK_SECTORS));		/* going on */
	sector += BLOCK_SECTORS;

	/* Skip one block: a new stream. */
	sector += BLOCK_SECTORS;
	for (k = 1; k <= 8; k++, sector += BLOCK_SECTORS) {
		test_context("after gap, I/O %u", k);
		CHECK(!io(&s, sector, BLOCK_SECTORS));
	}
	CHECK(io(&s, sector, BLOCK_SECTORS));

	/* Re-read from the start: a new stream too. */
	test_context("re-read");
	CHECK(!io(&s, 0, BLOCK_SECTORS));
	CHECK(!io(&s, BLOCK_SECTORS, BLOCK_SECTORS));
}

TEST(seq_random_io_never_sequential)
{
	static const u64 cutoffs[] = { 64, DEFAULT_CUTOFF };
	static const u64 spans[] = { 1ull << 32, 65536, 1024 };	/* blocks */

	for (unsigned int c = 0; c < 2; c++) {
		for (unsigned int sp = 0; sp < 3; sp++) {
			uint64_t rs = 0xabcdef + c * 3 + sp;
			unsigned int seq = 0;
			struct stash_seq s;

			stash_seq_init(&s, cutoffs[c]);
			for (unsigned int k = 0; k < 100000; k++) {
				u64 b = unit_rand_below(&rs, spans[sp]);

				seq += io(&s, b * BLOCK_SECTORS, BLOCK_SECTORS);
			}
			test_context("cutoff %llu, span %llu blocks",
				     (unsigned long long)cutoffs[c],
				     (unsigned long long)spans[sp]);
			CHECK_EQ(seq, 0);
		}
	}
}

static u64 stream_base(unsigned int i)
{
	return (u64)i << 30;
}

TEST(seq_16_interleaved_streams_tracked)
{
	u64 next[STASH_NR_STREAMS];
	struct stash_seq s;

	stash_seq_init(&s, 64);
	for (unsigned int i = 0; i < STASH_NR_STREAMS; i++)
		next[i] = stream_base(i);
	for (unsigned int r = 1; r <= 20; r++) {
		for (unsigned int i = 0; i < STASH_NR_STREAMS; i++) {
			test_context("round %u stream %u", r, i);
			CHECK_EQ(io(&s, next[i], BLOCK_SECTORS),
				 r * BLOCK_SECTORS > 64);
			next[i] += BLOCK_SECTORS;
		}
	}
}

TEST(seq_17th_stream_replaces_lru)
{
	u64 next[STASH_NR_STREAMS + 1];
	struct stash_seq s;
	unsigned int i;

	stash_seq_init(&s, 64);
	for (i = 0; i <= STASH_NR_STREAMS; i++)
		next[i] = stream_base(i);
	/* 16 streams, all past the cutoff; stream 0 touched last. */
	for (unsigned int r = 0; r < 12; r++) {
		for (i = 0; i < STASH_NR_STREAMS; i++) {
			io(&s, next[i], BLOCK_SECTORS);
			next[i] += BLOCK_SECTORS;
		}
	}
	CHECK(io(&s, next[0], BLOCK_SECTORS));
	next[0] += BLOCK_SECTORS;

	/* A 17th stream takes the slot of the LRU one: stream 1. */
	test_context("new stream");
	CHECK(!io(&s, next[16], BLOCK_SECTORS));
	next[16] += BLOCK_SECTORS;
	for (i = 2; i < STASH_NR_STREAMS; i++) {
		test_context("stream %u", i);
		CHECK(io(&s, next[i], BLOCK_SECTORS));
		next[i] += BLOCK_SECTORS;
	}
	test_context("stream 0");
	CHECK(io(&s, next[0], BLOCK_SECTORS));
	next[0] += BLOCK_SECTORS;
	test_context("stream 16");
	CHECK(!io(&s, next[16], BLOCK_SECTORS));	/* tracked, 16 sectors */
	next[16] += BLOCK_SECTORS;

	/* Stream 1 was forgotten: it starts over, replacing stream 2, now
	 * the least recently used. */
	test_context("stream 1");
	CHECK(!io(&s, next[1], BLOCK_SECTORS));
	next[1] += BLOCK_SECTORS;
	test_context("stream 2");
	CHECK(!io(&s, next[2], BLOCK_SECTORS));
	next[2] += BLOCK_SECTORS;

	/* Stream 16 is still tracked: I/Os 3..8 are within the cutoff, the
	 * 9th is past it. */
	for (unsigned int k = 3; k <= 9; k++) {
		test_context("stream 16, I/O %u", k);
		CHECK_EQ(io(&s, next[16], BLOCK_SECTORS), k == 9);
		next[16] += BLOCK_SECTORS;
	}
}

TEST(seq_stream_among_random_io)
{
	uint64_t rs = 4242;
	struct stash_seq s;
	u64 next = 1ull << 33;

	stash_seq_init(&s, 64);
	for (unsigned int k = 1; k <= 100; k++) {
		test_context("stream I/O %u", k);
		CHECK_EQ(io(&s, next, BLOCK_SECTORS), k * BLOCK_SECTORS > 64);
		next += BLOCK_SECTORS;
		for (unsigned int j = 0; j < 8; j++) {
			u64 b = unit_rand_below(&rs, 1ull << 30);

			CHECK(!io(&s, b * BLOCK_SECTORS, BLOCK_SECTORS));
		}
	}
}

/*
 * stash_seq_peek() says what the next stash_seq_is_sequential() would,
 * and changes nothing: on a mix of streams, jumps and random I/O, each
 * peek matches the call that follows, and peeking twice is the same.
 */
TEST(seq_peek_predicts_and_records_nothing)
{
	struct stash_seq s;
	u64 rnd = 88172645463325252ull, next[4] = { 0, 1 << 20, 1 << 24, 1ull << 40 };

	stash_seq_init(&s, 64);
	for (unsigned int k = 0; k < 20000; k++) {
		u64 sector;
		u32 nr;
		bool p1, p2;

		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		nr = 1 + rnd % 40;
		if (rnd % 5 == 0) {
			sector = (rnd >> 8) % (1ull << 32);
		} else {
			sector = next[rnd % 4];
			next[rnd % 4] += nr;
		}
		test_context("I/O %u: %u sectors at %llu", k, nr,
			     (unsigned long long)sector);
		p1 = stash_seq_peek(&s, sector, nr);
		p2 = stash_seq_peek(&s, sector, nr);
		CHECK_EQ(p1, p2);
		CHECK_EQ(p1, io(&s, sector, nr));
	}
	stash_seq_init(&s, 0);
	CHECK(!stash_seq_peek(&s, 0, 1 << 20));
}
