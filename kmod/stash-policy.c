// SPDX-License-Identifier: GPL-2.0
/*
 * Promotion filter, sequential detector and the promotion decision (see
 * stash-policy.h).
 */
#include "stash-policy.h"

int stash_filter_init(struct stash_filter *f, u32 nr_cblocks)
{
	u64 nbits = rounddown_pow_of_two(4ull * (nr_cblocks ? nr_cblocks : 1));

	/* A floor for tiny caches; a cap because hash_64() gives 32 bits. */
	if (nbits < 64)
		nbits = 64;
	if (nbits > (1ull << 32))
		nbits = 1ull << 32;
	memset(f, 0, sizeof(*f));
	f->bits = ilog2(nbits);
	f->rotate_at = (u32)(nbits / 16);
	f->gen[0] = stash_zalloc_array(BITS_TO_LONGS(nbits), sizeof(long));
	f->gen[1] = stash_zalloc_array(BITS_TO_LONGS(nbits), sizeof(long));
	if (!f->gen[0] || !f->gen[1]) {
		stash_filter_exit(f);
		return -1;
	}
	return 0;
}

void stash_filter_exit(struct stash_filter *f)
{
	stash_free_array(f->gen[0]);
	stash_free_array(f->gen[1]);
	f->gen[0] = NULL;
	f->gen[1] = NULL;
}

void stash_filter_clear(struct stash_filter *f)
{
	size_t bytes = BITS_TO_LONGS(1ull << f->bits) * sizeof(long);

	memset(f->gen[0], 0, bytes);
	memset(f->gen[1], 0, bytes);
	f->inserted = 0;
}

static bool in_gen(const unsigned long *g, u32 h1, u32 h2)
{
	return test_bit(h1, g) && test_bit(h2, g);
}

static void filter_hashes(const struct stash_filter *f, oblock_t ob,
			  u32 *h1, u32 *h2)
{
	u64 v = from_oblock(ob);

	*h1 = hash_64(v, f->bits);
	*h2 = hash_64(v ^ 0x9e3779b97f4a7c15ull, f->bits);
}

bool stash_filter_test(const struct stash_filter *f, oblock_t ob)
{
	u32 h1, h2;

	filter_hashes(f, ob, &h1, &h2);
	return in_gen(f->gen[0], h1, h2) || in_gen(f->gen[1], h1, h2);
}

bool stash_filter_check_and_record(struct stash_filter *f, oblock_t ob)
{
	unsigned long *cur = f->gen[f->cur];
	u32 h1, h2;

	filter_hashes(f, ob, &h1, &h2);
	if (in_gen(cur, h1, h2) || in_gen(f->gen[f->cur ^ 1], h1, h2))
		return true;

	if (f->inserted >= f->rotate_at) {
		f->cur ^= 1;
		cur = f->gen[f->cur];
		memset(cur, 0, BITS_TO_LONGS(1ull << f->bits) * sizeof(long));
		f->inserted = 0;
	}
	__set_bit(h1, cur);
	__set_bit(h2, cur);
	f->inserted++;
	return false;
}

enum stash_promote stash_policy_decide(struct stash_filter *f,
				       const struct stash_map *m, oblock_t ob,
				       bool sequential, bool blocked)
{
	if (sequential)
		return STASH_PROMOTE_BYPASS;
	if (blocked)
		return STASH_PROMOTE_NO;
	/* Record the miss even while slots are free: it counts once full. */
	if (stash_filter_check_and_record(f, ob) || stash_map_has_free(m))
		return STASH_PROMOTE_YES;
	return STASH_PROMOTE_NO;
}

bool stash_policy_run_may_pass(const struct stash_filter *f, oblock_t ob,
			       bool sequential)
{
	return sequential || !stash_filter_test(f, ob);
}

enum stash_promote stash_policy_run_record(struct stash_filter *f,
					   oblock_t ob, bool sequential)
{
	if (sequential)
		return STASH_PROMOTE_BYPASS;
	stash_filter_check_and_record(f, ob);
	return STASH_PROMOTE_NO;
}

void stash_seq_init(struct stash_seq *s, u64 cutoff_sectors)
{
	memset(s, 0, sizeof(*s));
	s->cutoff_sectors = cutoff_sectors;
}

bool stash_seq_peek(const struct stash_seq *s, u64 sector, u32 nr_sectors)
{
	unsigned int i;

	if (!s->cutoff_sectors)
		return false;
	for (i = 0; i < STASH_NR_STREAMS; i++) {
		const struct stash_stream *st = &s->streams[i];

		if (st->next_sector == sector && st->last_used)
			return st->sectors + nr_sectors > s->cutoff_sectors;
	}
	return nr_sectors > s->cutoff_sectors;
}

bool stash_seq_continues(const struct stash_seq *s, u64 sector)
{
	unsigned int i;

	if (!READ_ONCE(s->cutoff_sectors))
		return false;
	for (i = 0; i < STASH_NR_STREAMS; i++) {
		const struct stash_stream *st = &s->streams[i];

		if (READ_ONCE(st->next_sector) == sector &&
		    READ_ONCE(st->last_used))
			return true;
	}
	return false;
}

bool stash_seq_is_sequential(struct stash_seq *s, u64 sector, u32 nr_sectors)
{
	struct stash_stream *st, *lru = &s->streams[0];
	unsigned int i;

	if (!s->cutoff_sectors)
		return false;

	s->tick++;
	for (i = 0; i < STASH_NR_STREAMS; i++) {
		st = &s->streams[i];
		if (st->next_sector == sector && st->last_used) {
			st->next_sector = sector + nr_sectors;
			st->sectors += nr_sectors;
			st->last_used = s->tick;
			return st->sectors > s->cutoff_sectors;
		}
		if (st->last_used < lru->last_used)
			lru = st;
	}
	lru->next_sector = sector + nr_sectors;
	lru->sectors = nr_sectors;
	lru->last_used = s->tick;
	return lru->sectors > s->cutoff_sectors;
}
