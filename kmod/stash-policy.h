/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Promotion policy: which read misses earn a cache slot.
 *
 * - Promotion filter: a block is promoted on its second miss within a recent
 *   window, so a one-off scan (every block seen once) never displaces the
 *   hot set.  Two generations of a two-hash Bloom filter remember the
 *   window; the older generation is cleared when the newer one has taken
 *   nbits / 16 insertions, which keeps false positives near 1.5 %.
 *   RAM: two tables of rounddown_pow_of_two(4 * nr_cblocks) bits, at most
 *   one byte per cache block for both.
 * - Sequential detector: a few recent streams; I/O that continues a stream
 *   which has already moved more than the cutoff is "sequential" and is
 *   neither promoted nor allowed to allocate (it bypasses the cache).
 *
 * - The promotion decision, stash_policy_decide(): the one rule both the
 *   module's miss paths (stash-io.c) and the policy simulator (bench/sim)
 *   apply, so that the simulator measures the module's policy, not a copy.
 *
 * Pure logic like stash-map.c: the caller serialises calls.
 */
#ifndef STASH_POLICY_H
#define STASH_POLICY_H

#include "stash-compat.h"
#include "stash-map.h"

struct stash_filter {
	unsigned long *gen[2];
	u32 bits;		/* log2 of the bits per generation */
	u32 cur;		/* generation taking insertions */
	u32 inserted;		/* insertions into gen[cur] */
	u32 rotate_at;
};

int stash_filter_init(struct stash_filter *f, u32 nr_cblocks);
void stash_filter_exit(struct stash_filter *f);
/* Record a miss on @ob; true if @ob missed recently too (promote it). */
bool stash_filter_check_and_record(struct stash_filter *f, oblock_t ob);
/* True if @ob missed recently (its next miss would promote); records nothing. */
bool stash_filter_test(const struct stash_filter *f, oblock_t ob);
void stash_filter_clear(struct stash_filter *f);

#define STASH_NR_STREAMS	16

struct stash_stream {
	u64 next_sector;	/* where the stream goes on */
	u64 sectors;		/* how far it has gone */
	u64 last_used;
};

struct stash_seq {
	struct stash_stream streams[STASH_NR_STREAMS];
	u64 tick;
	u64 cutoff_sectors;	/* 0: detection off */
};

void stash_seq_init(struct stash_seq *s, u64 cutoff_sectors);
/* Account an I/O; true if it belongs to a stream past the cutoff. */
bool stash_seq_is_sequential(struct stash_seq *s, u64 sector, u32 nr_sectors);
/*
 * What stash_seq_is_sequential() would say of an I/O of @nr_sectors at
 * @sector, without accounting it.
 */
bool stash_seq_peek(const struct stash_seq *s, u64 sector, u32 nr_sectors);
/*
 * Without the caller's lock: would an I/O at @sector continue a stream?
 * A racy look (the streams may change under it): a wrong answer only
 * accounts an I/O to the detector, or not.  Read hits that continue no
 * stream skip the detector (and its lock): a stream then starts at its
 * first miss.
 */
bool stash_seq_continues(const struct stash_seq *s, u64 sector);

enum stash_promote {
	STASH_PROMOTE_BYPASS,	/* sequential: around the cache, not recorded */
	STASH_PROMOTE_NO,	/* not now */
	STASH_PROMOTE_YES,	/* take a slot: stash_map_alloc() */
};

/*
 * The promotion decision on a miss of @ob that could bring the block in (a
 * read miss, or a write-through miss covering its block):
 *  - @sequential (stash_seq_is_sequential() said so): bypass;
 *  - @blocked (the caller cannot fill the block now: the cache failed, or
 *    a write to the block is in flight): no, and the miss is not recorded;
 *  - otherwise the miss is recorded in the promotion filter, and the block
 *    is promoted if it missed recently too, or if the map still has a free
 *    slot (nothing can be displaced: the first miss promotes).
 */
enum stash_promote stash_policy_decide(struct stash_filter *f,
				       const struct stash_map *m, oblock_t ob,
				       bool sequential, bool blocked);

/*
 * A read that spans blocks goes to the origin in one piece over its
 * uncached blocks that would not be promoted (stash-io.c,
 * cut_or_pass_run()).  May uncached block @ob join such a run?  Yes if the
 * read is @sequential, or if the block has not missed recently.  Unlike
 * stash_policy_decide(), a free slot does not make the first miss promote:
 * a read this large is more likely a stream than a hot block.  Nothing is
 * recorded (one block's miss must not stop the next one joining).
 */
bool stash_policy_run_may_pass(const struct stash_filter *f, oblock_t ob,
			       bool sequential);
/*
 * Then each block of the run, as the one-block path records a miss it does
 * not promote: returns STASH_PROMOTE_BYPASS (@sequential: not recorded) or
 * STASH_PROMOTE_NO (recorded in the filter).
 */
enum stash_promote stash_policy_run_record(struct stash_filter *f,
					   oblock_t ob, bool sequential);

#endif /* STASH_POLICY_H */
