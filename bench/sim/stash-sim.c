// SPDX-License-Identifier: GPL-2.0
/*
 * stash-sim: a policy simulator for dm-stash.  It replays a synthetic,
 * fio-like read trace through exactly the module's read-path policy code
 * (kmod/stash-map.c and kmod/stash-policy.c, compiled in userspace) and
 * prints hit ratios, so that the promotion filter, the sequential cutoff and
 * the clock can be tuned without a VM.
 *
 * The read path is the one in kmod/stash-io.c (stash_read() and
 * promote_decide_locked()), minus the I/O, with fills completing at once.
 * The promotion decision itself is the module's function,
 * stash_policy_decide() in kmod/stash-policy.c, not a restatement:
 *
 *   seq = stash_seq_is_sequential(&seq, ob * 8, 8);     4 KiB blocks
 *   c = stash_map_lookup(&map, ob);
 *   hit:  stash_map_ref(&map, c)
 *   miss: stash_policy_decide(&filter, &map, ob, seq, false):
 *         BYPASS (sequential) or NO: nothing;
 *         YES: c = stash_map_alloc(&map, ob, &evicted);
 *              stash_map_set_valid(&map, c); stash_map_release(&map, c, true);
 *
 * (The module's "blocked" input, a failed cache or a write in flight to
 * the block, is always false here: the traces are reads.)
 *
 * Traces (all reads of one 4 KiB block):
 *   uniform    uniform over the origin
 *   zipf       Zipf(theta) over the origin, generated like fio's
 *              random_distribution=zipf:theta (lib/zipf.c: the Gray et al.
 *              approximation, zeta(n) summed over at most 10M ranks), or
 *              exactly (inverse CDF) with --zipf-gen exact.  --scatter says
 *              how a rank becomes a block: "fio" as fio does by default
 *              ((rank * GOLDEN_RATIO_64 + offset) % n, hot blocks spread
 *              over the device), "perm" a random permutation, "none" the
 *              rank itself (hot blocks contiguous at the start).
 *   zipf-scan  zipf warm-up, a measured zipf phase ("pre-scan"), one
 *              sequential scan of --scan-blocks blocks from a random offset,
 *              then zipf again ("post-scan"), measured in windows to show how
 *              fast the hit ratio recovers.
 *   zipf-scans zipf with repeated scans: after every --scan-every zipf reads,
 *              a sequential scan of --scan-blocks blocks from a random offset
 *   shift      zipf whose hot set moves: every --shift-every reads every
 *              rank's block is shifted by a new random offset (mod origin),
 *              so the new hot blocks are mostly cold ones of before
 *   loop-seq   a loop over blocks 0..--loop-blocks-1, in order (the
 *              sequential cutoff sees it)
 *   loop-rand  a loop over the same blocks in a fixed random order (the
 *              cutoff does not)
 *
 * The oracle figure is the best a static cache of the same size could do
 * on the measured trace: the share of accesses that went to the cache-size
 * most accessed blocks.  It is chosen in hindsight, so for flat
 * distributions it overstates what any cache can do (uniform over 4x the
 * cache: 0.25 is the real limit, the oracle says about 0.31).
 *
 * For zipf-scan, "hot lost" is how many of the cache-size hottest blocks
 * (by rank) were cached before the scan and no longer are after it: the
 * scan's pollution of the hot set.
 *
 * Reference policies (--policy), to judge the module's against others on
 * the same trace; they are not the module's code:
 *   lru   promote every miss, evict the least recently used block (what a
 *         cache without admission control does, bcache for one)
 *   lfu   an in-cache LFU that knows every block's access count since the
 *         start: a miss replaces the cached block with the fewest accesses
 *         if it has more (ties stay); an upper bound for frequency-based
 *         policies that keep their history in bounded RAM
 *   arc   ARC (Megiddo and Modha, FAST 2003): T1/T2 with ghost lists B1/B2
 *         and the adaptive target p
 * They promote sequential reads too: the sequential cutoff is the module's.
 *
 * --table LABEL replays one trace, generated once, through the module's
 * policy, lru, arc and lfu, and through Belady's OPT: the offline optimum,
 * with bypass (on a miss with the cache full, whichever of the cached
 * blocks and the incoming one is next read farthest in the future stays
 * out), from next-use indexes over the whole trace and a heap (n log n).
 * It prints one markdown row of hit ratios after the warm-up, and exits 3
 * if any policy had more hits than OPT over the whole trace (a self-check:
 * OPT is optimal over the trace it sees; over the measured phase alone a
 * policy may come out a hair above it, as on a loop, where which blocks
 * a policy keeps decides how the phase's partial pass counts).
 *
 * Output is a human-readable report, or one table row (--brief) under a
 * header line (--header) for "make run".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stash-map.h"
#include "stash-policy.h"

#define BLOCK_SECTORS		8	/* 4 KiB */
#define FIO_ZIPF_MAX_GEN	10000000ull
#define RECOVERY_POINTS		0.05

enum trace_kind { TRACE_UNIFORM, TRACE_ZIPF, TRACE_ZIPF_SCAN, TRACE_ZIPF_SCANS,
		  TRACE_SHIFT, TRACE_LOOP_SEQ, TRACE_LOOP_RAND, NR_TRACES };
enum zipf_gen { GEN_FIO, GEN_EXACT };
enum scatter { SCATTER_FIO, SCATTER_PERM, SCATTER_NONE };
enum policy { POLICY_STASH, POLICY_LRU, POLICY_LFU, POLICY_ARC, NR_POLICIES };

struct options {
	u64 cache_blocks;
	u64 origin_blocks;
	enum trace_kind trace;
	double theta;
	enum zipf_gen gen;
	enum scatter scatter;
	enum policy policy;
	u64 ops;
	u64 warmup;
	u64 seed;
	u64 seq_cutoff_kb;
	u64 scan_blocks;
	u64 scan_every;
	u64 shift_every;
	u64 loop_blocks;
	u64 window;
	const char *label;
	bool brief;
	bool table;
};

/*----------------------------------------------------------------
 * Random numbers and the Zipf generator
 *--------------------------------------------------------------*/

struct rng {
	u64 s[4];	/* xoshiro256** */
};

static u64 rotl(u64 x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static u64 rng_next(struct rng *r)
{
	u64 *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

static void rng_seed(struct rng *r, u64 seed)
{
	for (int i = 0; i < 4; i++) {	/* splitmix64 */
		u64 z = (seed += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		r->s[i] = z ^ (z >> 31);
	}
}

/* Uniform in [0, 1). */
static double rng_double(struct rng *r)
{
	return (rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n). */
static u64 rng_below(struct rng *r, u64 n)
{
	return (u64)(((unsigned __int128)rng_next(r) * n) >> 64);
}

struct zipf {
	enum zipf_gen gen;
	enum scatter scatter;
	u64 n;
	double theta, zeta2, zetan;
	u64 rand_off;
	u64 shift;	/* shift: where the hot set has moved to */
	double *cdf;	/* GEN_EXACT: cdf[r] = P(rank <= r) */
	u64 *perm;	/* SCATTER_PERM */
};

static int zipf_init(struct zipf *z, const struct options *o, struct rng *r)
{
	u64 i, to_gen = o->origin_blocks < FIO_ZIPF_MAX_GEN ?
			o->origin_blocks : FIO_ZIPF_MAX_GEN;

	memset(z, 0, sizeof(*z));
	z->gen = o->gen;
	z->scatter = o->scatter;
	z->n = o->origin_blocks;
	z->theta = o->theta;
	z->zeta2 = 1.0 + pow(0.5, z->theta);
	for (i = 0; i < to_gen; i++)
		z->zetan += pow(1.0 / (double)(i + 1), z->theta);
	z->rand_off = rng_next(r) & 0xffffffffull;	/* fio: one __rand() */

	if (z->gen == GEN_EXACT) {
		double sum = 0, total = 0;

		z->cdf = malloc(z->n * sizeof(*z->cdf));
		if (!z->cdf)
			return -1;
		for (i = 0; i < z->n; i++)
			total += pow(1.0 / (double)(i + 1), z->theta);
		for (i = 0; i < z->n; i++) {
			sum += pow(1.0 / (double)(i + 1), z->theta);
			z->cdf[i] = sum / total;
		}
		z->cdf[z->n - 1] = 1.0;
	}
	if (z->scatter == SCATTER_PERM) {
		z->perm = malloc(z->n * sizeof(*z->perm));
		if (!z->perm)
			return -1;
		for (i = 0; i < z->n; i++)
			z->perm[i] = i;
		for (i = z->n - 1; i > 0; i--) {
			u64 j = rng_below(r, i + 1), t = z->perm[i];

			z->perm[i] = z->perm[j];
			z->perm[j] = t;
		}
	}
	return 0;
}

static void zipf_exit(struct zipf *z)
{
	free(z->cdf);
	free(z->perm);
}

/* The block that rank @rank (0: the hottest) lives in. */
static u64 zipf_block(const struct zipf *z, u64 rank)
{
	u64 b;

	switch (z->scatter) {
	case SCATTER_FIO:
		b = (rank * GOLDEN_RATIO_64 + z->rand_off) % z->n;
		break;
	case SCATTER_PERM:
		b = z->perm[rank % z->n];
		break;
	default:
		b = rank % z->n;
		break;
	}
	return z->shift ? (b + z->shift) % z->n : b;
}

/* fio's zipf_next(): a rank, 0-based (it may be n for u -> 1, as in fio). */
static u64 zipf_rank_fio(const struct zipf *z, struct rng *r)
{
	double alpha = 1.0 / (1.0 - z->theta);
	double eta = (1.0 - pow(2.0 / z->n, 1.0 - z->theta)) /
		     (1.0 - z->zeta2 / z->zetan);
	double u = rng_double(r), uz = u * z->zetan;
	u64 val;

	if (uz < 1.0)
		val = 1;
	else if (uz < 1.0 + pow(0.5, z->theta))
		val = 2;
	else
		val = 1 + (u64)(z->n * pow(eta * u - eta + 1.0, alpha));
	return val - 1;
}

static u64 zipf_rank_exact(const struct zipf *z, struct rng *r)
{
	double u = rng_double(r);
	u64 lo = 0, hi = z->n - 1;

	while (lo < hi) {
		u64 mid = lo + (hi - lo) / 2;

		if (z->cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static u64 zipf_next(const struct zipf *z, struct rng *r)
{
	u64 rank = z->gen == GEN_FIO ? zipf_rank_fio(z, r) :
				       zipf_rank_exact(z, r);

	return zipf_block(z, rank);
}

/*----------------------------------------------------------------
 * Traces
 *--------------------------------------------------------------*/

struct tracegen {
	const struct options *o;
	struct zipf *z;
	struct rng *r;
	u64 n;		/* reads generated so far */
	u64 scan_at;	/* zipf-scans: the running scan's next block */
	u64 *loop;	/* loop-rand: the loop's blocks in their order */
};

static int tg_init(struct tracegen *g, const struct options *o,
		   struct zipf *z, struct rng *r)
{
	memset(g, 0, sizeof(*g));
	g->o = o;
	g->z = z;
	g->r = r;
	if (o->trace == TRACE_LOOP_RAND) {
		u64 i, n = o->loop_blocks;

		g->loop = malloc(n * sizeof(*g->loop));
		if (!g->loop)
			return -1;
		for (i = 0; i < n; i++)
			g->loop[i] = i;
		for (i = n - 1; i > 0; i--) {
			u64 j = rng_below(r, i + 1), t = g->loop[i];

			g->loop[i] = g->loop[j];
			g->loop[j] = t;
		}
	}
	return 0;
}

static void tg_exit(struct tracegen *g)
{
	free(g->loop);
}

/* The next read of the trace (zipf-scan's scan is run_scan()'s). */
static u64 tg_next(struct tracegen *g)
{
	const struct options *o = g->o;
	u64 i = g->n++, pos;

	switch (o->trace) {
	case TRACE_UNIFORM:
		return rng_below(g->r, o->origin_blocks);
	case TRACE_ZIPF_SCANS:
		pos = i % (o->scan_every + o->scan_blocks);
		if (pos < o->scan_every)
			return zipf_next(g->z, g->r);
		if (pos == o->scan_every)
			g->scan_at = rng_below(g->r, o->origin_blocks);
		return g->scan_at++ % o->origin_blocks;
	case TRACE_SHIFT:
		if (i && i % o->shift_every == 0)
			g->z->shift = rng_below(g->r, o->origin_blocks);
		return zipf_next(g->z, g->r);
	case TRACE_LOOP_SEQ:
		return i % o->loop_blocks;
	case TRACE_LOOP_RAND:
		return g->loop[i % o->loop_blocks];
	default:
		return zipf_next(g->z, g->r);
	}
}

/*----------------------------------------------------------------
 * The cache: the module's read-path policy
 *--------------------------------------------------------------*/

struct stats {
	u64 ops, hits, promotions, evictions, bypassed, alloc_failed;
};

#define REF_NONE	UINT32_MAX

/* A reference policy's cache (see --policy); slots are 0..cache_blocks-1. */
struct ref_cache {
	u32 *slot_of;		/* origin block -> slot, REF_NONE: not cached */
	u64 *block_of;		/* slot -> origin block */
	u32 nr_slots;
	u32 used;		/* slots taken (they fill in order) */
	/* lru: a list through the slots, head the most recently used */
	u32 *prev, *next;
	u32 head, tail;
	/* lfu: accesses per origin block since the start; a min-heap of the
	 * slots by their block's count, and each slot's place in it */
	u32 *freq;
	u32 *heap, *pos;
};

/*
 * ARC (Megiddo and Modha, "ARC: A Self-Tuning, Low Overhead Replacement
 * Cache", FAST 2003): T1 (seen once recently) and T2 (seen at least twice)
 * hold the cached blocks, B1 and B2 remember the blocks recently evicted
 * from each; p, the target size of T1, grows on a hit in B1 and shrinks on
 * a hit in B2.  Lists are linked through origin-block-indexed arrays,
 * head the most recently used.
 */
enum { ARC_NONE, ARC_T1, ARC_T2, ARC_B1, ARC_B2, ARC_LISTS };

struct arc {
	u8 *where;		/* origin block -> list */
	u32 *prev, *next;	/* origin block -> neighbours in its list */
	u32 head[ARC_LISTS], tail[ARC_LISTS], size[ARC_LISTS];
	u32 c;
	u32 p;
};

struct cache {
	enum policy policy;
	struct stash_map map;
	struct stash_filter filter;
	struct stash_seq seq;
	struct ref_cache ref;
	struct arc arc;
	struct stats st;	/* of the running phase */
	u32 *counts;		/* accesses per origin block, for the oracle */
};

static int ref_init(struct ref_cache *r, const struct options *o)
{
	u64 i, nc = o->cache_blocks;

	memset(r, 0, sizeof(*r));
	r->nr_slots = (u32)nc;
	r->slot_of = malloc(o->origin_blocks * sizeof(*r->slot_of));
	r->block_of = calloc(nc, sizeof(*r->block_of));
	r->prev = calloc(nc, sizeof(*r->prev));
	r->next = calloc(nc, sizeof(*r->next));
	r->freq = calloc(o->origin_blocks, sizeof(*r->freq));
	r->heap = calloc(nc, sizeof(*r->heap));
	r->pos = calloc(nc, sizeof(*r->pos));
	if (!r->slot_of || !r->block_of || !r->prev || !r->next || !r->freq ||
	    !r->heap || !r->pos)
		return -1;
	for (i = 0; i < o->origin_blocks; i++)
		r->slot_of[i] = REF_NONE;
	r->head = REF_NONE;
	r->tail = REF_NONE;
	return 0;
}

static void ref_exit(struct ref_cache *r)
{
	free(r->slot_of);
	free(r->block_of);
	free(r->prev);
	free(r->next);
	free(r->freq);
	free(r->heap);
	free(r->pos);
}

static int arc_init(struct arc *a, const struct options *o)
{
	memset(a, 0, sizeof(*a));
	a->c = (u32)o->cache_blocks;
	a->where = calloc(o->origin_blocks, sizeof(*a->where));
	a->prev = malloc(o->origin_blocks * sizeof(*a->prev));
	a->next = malloc(o->origin_blocks * sizeof(*a->next));
	if (!a->where || !a->prev || !a->next)
		return -1;
	for (int l = 0; l < ARC_LISTS; l++) {
		a->head[l] = REF_NONE;
		a->tail[l] = REF_NONE;
	}
	return 0;
}

static void arc_exit(struct arc *a)
{
	free(a->where);
	free(a->prev);
	free(a->next);
}

static void arc_unlink(struct arc *a, u32 b)
{
	int l = a->where[b];

	if (a->prev[b] != REF_NONE)
		a->next[a->prev[b]] = a->next[b];
	else
		a->head[l] = a->next[b];
	if (a->next[b] != REF_NONE)
		a->prev[a->next[b]] = a->prev[b];
	else
		a->tail[l] = a->prev[b];
	a->size[l]--;
	a->where[b] = ARC_NONE;
}

static void arc_push(struct arc *a, int l, u32 b)
{
	a->prev[b] = REF_NONE;
	a->next[b] = a->head[l];
	if (a->head[l] != REF_NONE)
		a->prev[a->head[l]] = b;
	a->head[l] = b;
	if (a->tail[l] == REF_NONE)
		a->tail[l] = b;
	a->size[l]++;
	a->where[b] = (u8)l;
}

/* Move the LRU block of list @from to the MRU end of @to (or drop it). */
static void arc_demote(struct arc *a, int from, int to)
{
	u32 b = a->tail[from];

	arc_unlink(a, b);
	if (to != ARC_NONE)
		arc_push(a, to, b);
}

/* REPLACE(x, p): evict from T1 or T2 into its ghost list. */
static void arc_replace(struct arc *a, bool in_b2, struct stats *st)
{
	u32 t1 = a->size[ARC_T1];

	if (t1 && ((in_b2 && t1 == a->p) || t1 > a->p || !a->size[ARC_T2]))
		arc_demote(a, ARC_T1, ARC_B1);
	else
		arc_demote(a, ARC_T2, ARC_B2);
	st->evictions++;
}

/* A read under ARC; true on a hit. */
static bool arc_read(struct arc *a, u32 x, struct stats *st)
{
	u32 d, l1, all;

	switch (a->where[x]) {
	case ARC_T1:
	case ARC_T2:
		arc_unlink(a, x);
		arc_push(a, ARC_T2, x);
		return true;
	case ARC_B1:
		d = a->size[ARC_B1] >= a->size[ARC_B2] ? 1 :
		    a->size[ARC_B2] / a->size[ARC_B1];
		a->p = a->p + d < a->c ? a->p + d : a->c;
		arc_replace(a, false, st);
		arc_unlink(a, x);
		arc_push(a, ARC_T2, x);
		st->promotions++;
		return false;
	case ARC_B2:
		d = a->size[ARC_B2] >= a->size[ARC_B1] ? 1 :
		    a->size[ARC_B1] / a->size[ARC_B2];
		a->p = a->p > d ? a->p - d : 0;
		arc_replace(a, true, st);
		arc_unlink(a, x);
		arc_push(a, ARC_T2, x);
		st->promotions++;
		return false;
	}
	l1 = a->size[ARC_T1] + a->size[ARC_B1];
	all = l1 + a->size[ARC_T2] + a->size[ARC_B2];
	if (l1 == a->c) {
		if (a->size[ARC_T1] < a->c) {
			arc_demote(a, ARC_B1, ARC_NONE);
			arc_replace(a, false, st);
		} else {
			arc_demote(a, ARC_T1, ARC_NONE);
			st->evictions++;
		}
	} else if (all >= a->c) {
		if (all == 2 * a->c)
			arc_demote(a, ARC_B2, ARC_NONE);
		arc_replace(a, false, st);
	}
	arc_push(a, ARC_T1, x);
	st->promotions++;
	return false;
}

static int cache_init(struct cache *c, const struct options *o)
{
	memset(c, 0, sizeof(*c));
	c->policy = o->policy;
	if (stash_map_init(&c->map, (u32)o->cache_blocks) ||
	    stash_filter_init(&c->filter, (u32)o->cache_blocks))
		return -1;
	if ((c->policy == POLICY_LRU || c->policy == POLICY_LFU) &&
	    ref_init(&c->ref, o))
		return -1;
	if (c->policy == POLICY_ARC && arc_init(&c->arc, o))
		return -1;
	stash_seq_init(&c->seq, o->seq_cutoff_kb * 2);
	c->counts = calloc(o->origin_blocks, sizeof(*c->counts));
	return c->counts ? 0 : -1;
}

static void cache_exit(struct cache *c)
{
	if (c->policy == POLICY_LRU || c->policy == POLICY_LFU)
		ref_exit(&c->ref);
	if (c->policy == POLICY_ARC)
		arc_exit(&c->arc);
	stash_filter_exit(&c->filter);
	stash_map_exit(&c->map);
	free(c->counts);
}

static void lru_unlink(struct ref_cache *r, u32 s)
{
	if (r->prev[s] != REF_NONE)
		r->next[r->prev[s]] = r->next[s];
	else
		r->head = r->next[s];
	if (r->next[s] != REF_NONE)
		r->prev[r->next[s]] = r->prev[s];
	else
		r->tail = r->prev[s];
}

static void lru_push_front(struct ref_cache *r, u32 s)
{
	r->prev[s] = REF_NONE;
	r->next[s] = r->head;
	if (r->head != REF_NONE)
		r->prev[r->head] = s;
	r->head = s;
	if (r->tail == REF_NONE)
		r->tail = s;
}

static u32 heap_key(const struct ref_cache *r, u32 i)
{
	return r->freq[r->block_of[r->heap[i]]];
}

static void heap_swap(struct ref_cache *r, u32 i, u32 j)
{
	u32 t = r->heap[i];

	r->heap[i] = r->heap[j];
	r->heap[j] = t;
	r->pos[r->heap[i]] = i;
	r->pos[r->heap[j]] = j;
}

static void heap_down(struct ref_cache *r, u32 i)
{
	for (;;) {
		u32 l = 2 * i + 1, m = i;

		if (l < r->used && heap_key(r, l) < heap_key(r, m))
			m = l;
		if (l + 1 < r->used && heap_key(r, l + 1) < heap_key(r, m))
			m = l + 1;
		if (m == i)
			return;
		heap_swap(r, i, m);
		i = m;
	}
}

static void heap_up(struct ref_cache *r, u32 i)
{
	while (i && heap_key(r, (i - 1) / 2) > heap_key(r, i)) {
		heap_swap(r, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

/* A read under a reference policy; true on a hit. */
static bool ref_read(struct cache *c, u64 block)
{
	struct ref_cache *r = &c->ref;
	u32 s = r->slot_of[block];

	r->freq[block]++;
	if (s != REF_NONE) {
		if (c->policy == POLICY_LRU) {
			lru_unlink(r, s);
			lru_push_front(r, s);
		} else {
			heap_down(r, r->pos[s]);
		}
		return true;
	}
	if (r->used < r->nr_slots) {
		s = r->used++;
		r->block_of[s] = block;
		r->slot_of[block] = s;
		if (c->policy == POLICY_LRU) {
			lru_push_front(r, s);
		} else {
			r->heap[s] = s;
			r->pos[s] = s;
			heap_up(r, s);
		}
		c->st.promotions++;
		return false;
	}
	if (c->policy == POLICY_LRU) {
		s = r->tail;
		lru_unlink(r, s);
		lru_push_front(r, s);
	} else {
		s = r->heap[0];
		if (r->freq[block] <= r->freq[r->block_of[s]])
			return false;
	}
	r->slot_of[r->block_of[s]] = REF_NONE;
	r->block_of[s] = block;
	r->slot_of[block] = s;
	if (c->policy == POLICY_LFU)
		heap_down(r, 0);
	c->st.promotions++;
	c->st.evictions++;
	return false;
}

static bool cache_has(const struct cache *c, u64 block)
{
	if (c->policy == POLICY_ARC)
		return c->arc.where[block] == ARC_T1 ||
		       c->arc.where[block] == ARC_T2;
	if (c->policy != POLICY_STASH)
		return c->ref.slot_of[block] != REF_NONE;
	return cblock_is_valid(stash_map_lookup(&c->map, to_oblock(block)));
}

static void cache_read(struct cache *c, u64 block)
{
	oblock_t ob = to_oblock(block);
	bool sequential;
	cblock_t cb;
	u64 evicted;

	c->st.ops++;
	c->counts[block]++;
	if (c->policy == POLICY_ARC) {
		c->st.hits += arc_read(&c->arc, (u32)block, &c->st);
		return;
	}
	if (c->policy != POLICY_STASH) {
		c->st.hits += ref_read(c, block);
		return;
	}
	sequential = stash_seq_is_sequential(&c->seq, block * BLOCK_SECTORS,
					     BLOCK_SECTORS);
	cb = stash_map_lookup(&c->map, ob);
	if (cblock_is_valid(cb)) {
		stash_map_ref(&c->map, cb);
		c->st.hits++;
		return;
	}
	switch (stash_policy_decide(&c->filter, &c->map, ob, sequential,
				    false)) {
	case STASH_PROMOTE_BYPASS:
		c->st.bypassed++;
		return;
	case STASH_PROMOTE_NO:
		return;
	case STASH_PROMOTE_YES:
		break;
	}
	/* Count evictions from the free count: the evicted oblock is not a
	 * reliable signal (STASH_NO_INDEX is also a valid oblock). */
	bool full = !stash_map_has_free(&c->map);

	cb = stash_map_alloc(&c->map, ob, &evicted);
	if (!cblock_is_valid(cb)) {
		c->st.alloc_failed++;
		return;
	}
	stash_map_set_valid(&c->map, cb);
	stash_map_release(&c->map, cb, true);
	c->st.promotions++;
	c->st.evictions += full;
}

/* Start a phase: zero the counters, return the previous phase's. */
static struct stats cache_phase(struct cache *c, u64 origin_blocks)
{
	struct stats prev = c->st;

	memset(&c->st, 0, sizeof(c->st));
	memset(c->counts, 0, origin_blocks * sizeof(*c->counts));
	return prev;
}

static int cmp_u32_desc(const void *a, const void *b)
{
	u32 x = *(const u32 *)a, y = *(const u32 *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Share of the phase's accesses that the cache-size hottest blocks got. */
static double oracle(const struct cache *c, const struct options *o)
{
	u32 *sorted = malloc(o->origin_blocks * sizeof(*sorted));
	u64 i, top = 0, all = 0;

	if (!sorted)
		return NAN;
	memcpy(sorted, c->counts, o->origin_blocks * sizeof(*sorted));
	qsort(sorted, o->origin_blocks, sizeof(*sorted), cmp_u32_desc);
	for (i = 0; i < o->origin_blocks; i++) {
		all += sorted[i];
		if (i < o->cache_blocks)
			top += sorted[i];
	}
	free(sorted);
	return all ? (double)top / all : NAN;
}

static double ratio(const struct stats *s)
{
	return s->ops ? (double)s->hits / s->ops : NAN;
}

/* How many of the cache-size hottest ranks are cached. */
static u64 hot_cached(const struct cache *c, const struct zipf *z, u64 n)
{
	u64 r, k = 0;

	for (r = 0; r < n; r++)
		k += cache_has(c, zipf_block(z, r));
	return k;
}

/*----------------------------------------------------------------
 * Runs and reports
 *--------------------------------------------------------------*/

static const char *const trace_names[] = {
	"uniform", "zipf", "zipf-scan", "zipf-scans", "shift", "loop-seq",
	"loop-rand",
};
static const char *const gen_names[] = { "fio", "exact" };
static const char *const scatter_names[] = { "fio", "perm", "none" };
static const char *const policy_names[] = { "stash", "lru", "lfu", "arc" };

static void print_phase(const char *name, const struct stats *s)
{
	printf("  %-10s %10" "llu" "  %9.4f  %10" "llu" "  %9" "llu"
	       "  %9" "llu" "\n", name, s->ops, ratio(s), s->promotions,
	       s->evictions, s->bypassed);
}

static void print_header(void)
{
	printf("%-26s %7s %7s %7s %7s %7s %7s %9s %8s\n", "workload", "cutoff",
	       "warmup", "steady", "oracle", "scan", "1st-win", "recovery",
	       "hot");
	printf("%-26s %7s %7s %7s %7s %7s %7s %9s %8s\n", "", "KiB", "hit",
	       "hit", "hit", "hit", "hit", "ops", "lost");
}

static void run_steady(const struct options *o, struct cache *c,
		       struct tracegen *g)
{
	struct stats warm, steady;
	double orc;
	u64 i;

	for (i = 0; i < o->warmup; i++)
		cache_read(c, tg_next(g));
	warm = cache_phase(c, o->origin_blocks);
	for (i = 0; i < o->ops; i++)
		cache_read(c, tg_next(g));
	orc = oracle(c, o);
	steady = cache_phase(c, o->origin_blocks);

	if (o->brief) {
		printf("%-26s %7" "llu" " %7.3f %7.3f %7.3f %7s %7s %9s %8s\n",
		       o->label, o->seq_cutoff_kb, ratio(&warm), ratio(&steady),
		       orc, "-", "-", "-", "-");
		return;
	}
	printf("  %-10s %10s  %9s  %10s  %9s  %9s\n", "phase", "ops",
	       "hit ratio", "promotions", "evictions", "bypassed");
	print_phase("warm-up", &warm);
	print_phase("steady", &steady);
	printf("  oracle (static best %" "llu" " blocks of the steady phase): %.4f\n",
	       o->cache_blocks, orc);
}

static void run_scan(const struct options *o, struct cache *c,
		     struct zipf *z, struct rng *r)
{
	u64 nr_windows = (o->ops + o->window - 1) / o->window;
	double *win = calloc(nr_windows, sizeof(*win));
	u64 i, start, hot_before, hot_after, recovered = 0;
	struct stats warm, pre, scan, post, w;
	double orc, pre_ratio;
	bool found = false;

	if (!win) {
		perror("calloc");
		exit(1);
	}
	for (i = 0; i < o->warmup; i++)
		cache_read(c, zipf_next(z, r));
	warm = cache_phase(c, o->origin_blocks);
	for (i = 0; i < o->ops; i++)
		cache_read(c, zipf_next(z, r));
	orc = oracle(c, o);
	pre = cache_phase(c, o->origin_blocks);
	pre_ratio = ratio(&pre);
	hot_before = hot_cached(c, z, o->cache_blocks);

	start = o->scan_blocks <= o->origin_blocks ?
		rng_below(r, o->origin_blocks - o->scan_blocks + 1) :
		rng_below(r, o->origin_blocks);
	for (i = 0; i < o->scan_blocks; i++)
		cache_read(c, (start + i) % o->origin_blocks);
	scan = cache_phase(c, o->origin_blocks);
	hot_after = hot_cached(c, z, o->cache_blocks);

	/* Post-scan: windows, and the phase as a whole. */
	memset(&post, 0, sizeof(post));
	for (u64 k = 0; k < nr_windows; k++) {
		u64 len = o->ops - k * o->window < o->window ?
			  o->ops - k * o->window : o->window;

		for (i = 0; i < len; i++)
			cache_read(c, zipf_next(z, r));
		w = cache_phase(c, o->origin_blocks);
		win[k] = ratio(&w);
		post.ops += w.ops;
		post.hits += w.hits;
		post.promotions += w.promotions;
		post.evictions += w.evictions;
		post.bypassed += w.bypassed;
		if (!found && win[k] >= pre_ratio - RECOVERY_POINTS) {
			found = true;
			recovered = k * o->window + len;
		}
	}

	if (o->brief) {
		char rec[32];

		if (found && recovered <= o->window)
			snprintf(rec, sizeof(rec), "<=%" "llu", recovered);
		else if (found)
			snprintf(rec, sizeof(rec), "%" "llu", recovered);
		else
			snprintf(rec, sizeof(rec), ">%" "llu", o->ops);
		printf("%-26s %7" "llu" " %7.3f %7.3f %7.3f %7.3f %7.3f %9s %8" PRId64 "\n",
		       o->label, o->seq_cutoff_kb, ratio(&warm), pre_ratio, orc,
		       ratio(&scan), nr_windows ? win[0] : NAN, rec,
		       (int64_t)(hot_before - hot_after));
		free(win);
		return;
	}
	printf("  %-10s %10s  %9s  %10s  %9s  %9s\n", "phase", "ops",
	       "hit ratio", "promotions", "evictions", "bypassed");
	print_phase("warm-up", &warm);
	print_phase("pre-scan", &pre);
	print_phase("scan", &scan);
	print_phase("post-scan", &post);
	printf("  oracle (static best %" "llu" " blocks of the pre-scan phase): %.4f\n",
	       o->cache_blocks, orc);
	printf("  scan: %" "llu" " blocks from block %" "llu"
	       "; hottest %" "llu" " blocks cached: %" "llu" " before, %" "llu" " after\n",
	       o->scan_blocks, start, o->cache_blocks, hot_before, hot_after);
	printf("  post-scan hit ratio per %" "llu" " ops:", o->window);
	for (u64 k = 0; k < nr_windows; k++) {
		if (k % 10 == 0)
			printf("\n   ");
		printf(" %.3f", win[k]);
	}
	printf("\n");
	if (found)
		printf("  recovery: within %.0f points of the pre-scan %.4f after %" "llu" " ops\n",
		       RECOVERY_POINTS * 100, pre_ratio, recovered);
	else
		printf("  recovery: not within %.0f points of the pre-scan %.4f after %" "llu" " ops\n",
		       RECOVERY_POINTS * 100, pre_ratio, o->ops);
	free(win);
}

/*----------------------------------------------------------------
 * Belady's OPT and the policy table
 *--------------------------------------------------------------*/

#define OPT_NEVER	UINT32_MAX

struct opt_heap {	/* a max-heap of cached blocks by next use */
	u32 *heap, *pos, *key;	/* pos and key: by origin block */
	u32 used;
};

static void opt_swap(struct opt_heap *h, u32 i, u32 j)
{
	u32 t = h->heap[i];

	h->heap[i] = h->heap[j];
	h->heap[j] = t;
	h->pos[h->heap[i]] = i;
	h->pos[h->heap[j]] = j;
}

static void opt_up(struct opt_heap *h, u32 i)
{
	while (i && h->key[h->heap[(i - 1) / 2]] < h->key[h->heap[i]]) {
		opt_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void opt_down(struct opt_heap *h, u32 i)
{
	for (;;) {
		u32 l = 2 * i + 1, m = i;

		if (l < h->used && h->key[h->heap[l]] > h->key[h->heap[m]])
			m = l;
		if (l + 1 < h->used &&
		    h->key[h->heap[l + 1]] > h->key[h->heap[m]])
			m = l + 1;
		if (m == i)
			return;
		opt_swap(h, i, m);
		i = m;
	}
}

/*
 * Belady's OPT with bypass over the whole trace @t (@n reads): on a miss
 * with the cache full, of the cached blocks and the incoming one, the one
 * next used farthest in the future stays out (a block never used again is
 * never brought in).  Hits among reads @warm..@n-1, and among all of them
 * in *@all; -1 if out of memory.
 */
static int64_t opt_hits(const u32 *t, u64 n, u64 warm, u32 cap, u64 origin,
			u64 *all)
{
	u32 *next = malloc(n * sizeof(*next));
	struct opt_heap h = {
		.heap = malloc((u64)cap * sizeof(u32)),
		.pos = malloc(origin * sizeof(u32)),
		.key = malloc(origin * sizeof(u32)),
	};
	int64_t hits = 0;
	u64 i;

	*all = 0;
	if (!next || !h.heap || !h.pos || !h.key) {
		hits = -1;
		goto out;
	}
	/* Next uses, with key[] as each block's next use so far. */
	for (i = 0; i < origin; i++) {
		h.key[i] = OPT_NEVER;
		h.pos[i] = REF_NONE;
	}
	for (i = n; i-- > 0;) {
		next[i] = h.key[t[i]];
		h.key[t[i]] = (u32)i;
	}
	for (i = 0; i < n; i++) {
		u32 b = t[i], nu = next[i];

		if (h.pos[b] != REF_NONE) {
			hits += i >= warm;
			(*all)++;
			h.key[b] = nu;		/* later: move it up */
			opt_up(&h, h.pos[b]);
			continue;
		}
		if (nu == OPT_NEVER)
			continue;
		h.key[b] = nu;
		if (h.used < cap) {
			h.heap[h.used] = b;
			h.pos[b] = h.used;
			opt_up(&h, h.used++);
		} else if (h.key[h.heap[0]] > nu) {
			h.pos[h.heap[0]] = REF_NONE;
			h.heap[0] = b;
			h.pos[b] = 0;
			opt_down(&h, 0);
		}
	}
out:
	free(next);
	free(h.heap);
	free(h.pos);
	free(h.key);
	return hits;
}

static void print_table_header(void)
{
	printf("| trace | cache blocks | stash | OPT | LRU | ARC | static | stash/OPT | stash - LRU | >= 0.95x OPT | >= LRU |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|\n");
}

/* Share of reads @warm..@n-1 that went to their @cap most read blocks. */
static double static_best(const u32 *t, u64 n, u64 warm, u64 cap, u64 origin)
{
	u32 *cnt = calloc(origin, sizeof(*cnt));
	u64 i, top = 0;

	if (!cnt)
		return NAN;
	for (i = warm; i < n; i++)
		cnt[t[i]]++;
	qsort(cnt, origin, sizeof(*cnt), cmp_u32_desc);
	for (i = 0; i < cap && i < origin; i++)
		top += cnt[i];
	free(cnt);
	return n > warm ? (double)top / (n - warm) : NAN;
}

/*
 * One row of the policy table: the trace, generated once, replayed through
 * the module's policy, LRU, ARC, LFU and OPT; hit ratios of the reads
 * after the warm-up.  "static" is the best static cache of those reads in
 * hindsight: on the zipf traces, whose reads are independent, no online
 * policy can expect more than the most probable blocks give, which it
 * approaches (slightly above: it is chosen in hindsight).  The zipf traces (not their scan or shift variants)
 * carry the OPT target.  Exits 3 if a policy had more hits than OPT over
 * the whole trace (a bug: OPT is optimal over it).
 */
static int run_table(const struct options *o, struct tracegen *g)
{
	static const enum policy pols[] = {
		POLICY_STASH, POLICY_LRU, POLICY_ARC, POLICY_LFU,
	};
	u64 i, n = o->warmup + o->ops;
	double hr[NR_POLICIES], opt, rel, stat;
	u64 all[NR_POLICIES], opt_all;
	bool zipf = o->trace == TRACE_ZIPF;
	int64_t oh;
	u32 *t;

	if (n >= OPT_NEVER || o->origin_blocks >= REF_NONE) {
		fprintf(stderr, "stash-sim: --table: too many reads or blocks\n");
		return 2;
	}
	t = malloc(n * sizeof(*t));
	if (!t)
		return 1;
	for (i = 0; i < n; i++)
		t[i] = (u32)tg_next(g);
	for (unsigned int k = 0; k < sizeof(pols) / sizeof(pols[0]); k++) {
		struct options po = *o;
		struct cache c;
		struct stats st, warm;

		po.policy = pols[k];
		if (cache_init(&c, &po))
			return 1;
		for (i = 0; i < o->warmup; i++)
			cache_read(&c, t[i]);
		warm = cache_phase(&c, o->origin_blocks);
		for (; i < n; i++)
			cache_read(&c, t[i]);
		st = cache_phase(&c, o->origin_blocks);
		hr[pols[k]] = ratio(&st);
		all[pols[k]] = warm.hits + st.hits;
		cache_exit(&c);
	}
	oh = opt_hits(t, n, o->warmup, (u32)o->cache_blocks, o->origin_blocks,
		      &opt_all);
	stat = static_best(t, n, o->warmup, o->cache_blocks, o->origin_blocks);
	free(t);
	if (oh < 0)
		return 1;
	opt = o->ops ? (double)oh / o->ops : NAN;
	for (unsigned int k = 0; k < sizeof(pols) / sizeof(pols[0]); k++) {
		if (all[pols[k]] > opt_all) {
			fprintf(stderr, "stash-sim: self-check failed: %s: %s %" "llu" " hits > OPT %" "llu" "\n",
				o->label, policy_names[pols[k]], all[pols[k]],
				opt_all);
			return 3;
		}
	}
	rel = opt > 0 ? hr[POLICY_STASH] / opt : NAN;
	printf("| %s | %" "llu" " | %.4f | %.4f | %.4f | %.4f | %.4f | %.3f | %+.4f | %s | %s |\n",
	       o->label, o->cache_blocks, hr[POLICY_STASH], opt,
	       hr[POLICY_LRU], hr[POLICY_ARC], stat, rel,
	       hr[POLICY_STASH] - hr[POLICY_LRU],
	       !zipf ? "-" : rel >= 0.95 ? "PASS" : "MISS",
	       hr[POLICY_STASH] >= hr[POLICY_LRU] ? "PASS" : "MISS");
	return 0;
}

/*----------------------------------------------------------------
 * Options
 *--------------------------------------------------------------*/

static void usage(FILE *f)
{
	fprintf(f,
"usage: stash-sim [options]\n"
"  --cache-blocks N     cache size in 4 KiB blocks (16384)\n"
"  --origin-blocks N    origin size in blocks (4 x cache)\n"
"  --trace T            uniform | zipf | zipf-scan | zipf-scans | shift |\n"
"                       loop-seq | loop-rand (zipf)\n"
"  --zipf-theta X       Zipf exponent (1.2)\n"
"  --zipf-gen G         fio (fio's approximation) | exact (fio)\n"
"  --scatter S          rank to block: fio | perm | none (fio)\n"
"  --policy P           stash (the module's) | lru | lfu | arc: reference\n"
"                       policies\n"
"                       for comparison (stash)\n"
"  --ops N              measured reads after warm-up; for zipf-scan, before\n"
"                       and again after the scan (2000000)\n"
"  --warmup N           reads before measuring (1000000)\n"
"  --seed S             random seed (1)\n"
"  --seq-cutoff-kb K    sequential cutoff, 0 = off (4096, the target default)\n"
"  --scan-blocks N      zipf-scan: blocks in the scan (2 x cache)\n"
"  --window N           zipf-scan: ops per post-scan window (5000)\n"
"  --scan-every N       zipf-scans: zipf reads between scans (8 x cache)\n"
"  --shift-every N      shift: reads between moves of the hot set (16 x cache)\n"
"  --loop-blocks N      loop-*: blocks in the loop (1.5 x cache; the origin\n"
"                       defaults to the loop)\n"
"  --table LABEL        one markdown row labelled LABEL: the module's policy,\n"
"                       OPT, LRU and ARC on the same trace (exit 3 if a\n"
"                       policy beats OPT)\n"
"  --table-header       print the header of --table rows and exit\n"
"  --brief LABEL        print one table row labelled LABEL\n"
"  --header             print the table header for --brief rows and exit\n");
}

static u64 parse_u64(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-') {
		fprintf(stderr, "stash-sim: %s: not a number: %s\n", opt, s);
		exit(2);
	}
	return v;
}

static int parse_name(const char *opt, const char *s,
		      const char *const *names, int n)
{
	for (int i = 0; i < n; i++) {
		if (!strcmp(s, names[i]))
			return i;
	}
	fprintf(stderr, "stash-sim: %s: unknown value %s\n", opt, s);
	exit(2);
}

static void parse_options(int argc, char **argv, struct options *o)
{
	enum { O_CACHE = 256, O_ORIGIN, O_TRACE, O_THETA, O_GEN, O_SCATTER,
	       O_POLICY, O_OPS, O_WARMUP, O_SEED, O_CUTOFF, O_SCAN, O_WINDOW, O_BRIEF,
	       O_HEADER, O_HELP, O_SCAN_EVERY, O_SHIFT_EVERY, O_LOOP, O_TABLE,
	       O_TABLE_HEADER };
	static const struct option longopts[] = {
		{ "cache-blocks", required_argument, NULL, O_CACHE },
		{ "origin-blocks", required_argument, NULL, O_ORIGIN },
		{ "trace", required_argument, NULL, O_TRACE },
		{ "zipf-theta", required_argument, NULL, O_THETA },
		{ "zipf-gen", required_argument, NULL, O_GEN },
		{ "scatter", required_argument, NULL, O_SCATTER },
		{ "policy", required_argument, NULL, O_POLICY },
		{ "ops", required_argument, NULL, O_OPS },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "seed", required_argument, NULL, O_SEED },
		{ "seq-cutoff-kb", required_argument, NULL, O_CUTOFF },
		{ "scan-blocks", required_argument, NULL, O_SCAN },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "brief", required_argument, NULL, O_BRIEF },
		{ "header", no_argument, NULL, O_HEADER },
		{ "scan-every", required_argument, NULL, O_SCAN_EVERY },
		{ "shift-every", required_argument, NULL, O_SHIFT_EVERY },
		{ "loop-blocks", required_argument, NULL, O_LOOP },
		{ "table", required_argument, NULL, O_TABLE },
		{ "table-header", no_argument, NULL, O_TABLE_HEADER },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	bool origin_set = false, scan_set = false;
	bool every_set = false, shift_set = false, loop_set = false;
	char *end;
	int c;

	*o = (struct options){
		.cache_blocks = 16384, .trace = TRACE_ZIPF, .theta = 1.2,
		.gen = GEN_FIO, .scatter = SCATTER_FIO, .ops = 2000000,
		.warmup = 1000000, .seed = 1, .seq_cutoff_kb = 4096,
		.window = 5000,
	};
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_CACHE:
			o->cache_blocks = parse_u64("--cache-blocks", optarg);
			break;
		case O_ORIGIN:
			o->origin_blocks = parse_u64("--origin-blocks", optarg);
			origin_set = true;
			break;
		case O_TRACE:
			o->trace = parse_name("--trace", optarg, trace_names,
					      NR_TRACES);
			break;
		case O_THETA:
			o->theta = strtod(optarg, &end);
			if (end == optarg || *end || !(o->theta > 0) ||
			    o->theta == 1.0) {
				fprintf(stderr, "stash-sim: --zipf-theta: a number > 0, not 1\n");
				exit(2);
			}
			break;
		case O_GEN:
			o->gen = parse_name("--zipf-gen", optarg, gen_names, 2);
			break;
		case O_SCATTER:
			o->scatter = parse_name("--scatter", optarg, scatter_names, 3);
			break;
		case O_POLICY:
			o->policy = parse_name("--policy", optarg, policy_names,
					       NR_POLICIES);
			break;
		case O_OPS:
			o->ops = parse_u64("--ops", optarg);
			break;
		case O_WARMUP:
			o->warmup = parse_u64("--warmup", optarg);
			break;
		case O_SEED:
			o->seed = parse_u64("--seed", optarg);
			break;
		case O_CUTOFF:
			o->seq_cutoff_kb = parse_u64("--seq-cutoff-kb", optarg);
			break;
		case O_SCAN:
			o->scan_blocks = parse_u64("--scan-blocks", optarg);
			scan_set = true;
			break;
		case O_WINDOW:
			o->window = parse_u64("--window", optarg);
			break;
		case O_BRIEF:
			o->brief = true;
			o->label = optarg;
			break;
		case O_HEADER:
			print_header();
			exit(0);
		case O_SCAN_EVERY:
			o->scan_every = parse_u64("--scan-every", optarg);
			every_set = true;
			break;
		case O_SHIFT_EVERY:
			o->shift_every = parse_u64("--shift-every", optarg);
			shift_set = true;
			break;
		case O_LOOP:
			o->loop_blocks = parse_u64("--loop-blocks", optarg);
			loop_set = true;
			break;
		case O_TABLE:
			o->table = true;
			o->label = optarg;
			break;
		case O_TABLE_HEADER:
			print_table_header();
			exit(0);
		case O_HELP:
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (!loop_set)
		o->loop_blocks = o->cache_blocks * 3 / 2;
	if (!origin_set)
		o->origin_blocks = o->trace == TRACE_LOOP_SEQ ||
				   o->trace == TRACE_LOOP_RAND ?
				   o->loop_blocks : 4 * o->cache_blocks;
	if (!scan_set)
		o->scan_blocks = 2 * o->cache_blocks;
	if (!every_set)
		o->scan_every = 8 * o->cache_blocks;
	if (!shift_set)
		o->shift_every = 16 * o->cache_blocks;
	if (!o->loop_blocks || o->loop_blocks > o->origin_blocks ||
	    !o->shift_every || (!o->scan_every && !o->scan_blocks)) {
		fprintf(stderr, "stash-sim: --loop-blocks: 1 to the origin; --shift-every: at least 1; --scan-every, --scan-blocks: not both 0\n");
		exit(2);
	}
	if (!o->cache_blocks || o->cache_blocks > STASH_MAX_CBLOCKS) {
		fprintf(stderr, "stash-sim: --cache-blocks: 1 to %u\n",
			STASH_MAX_CBLOCKS);
		exit(2);
	}
	if (!o->origin_blocks || o->origin_blocks > (1ull << 32)) {
		fprintf(stderr, "stash-sim: --origin-blocks: 1 to 2^32\n");
		exit(2);
	}
	if (!o->window) {
		fprintf(stderr, "stash-sim: --window: at least 1\n");
		exit(2);
	}
	if (o->seq_cutoff_kb > (1ull << 40)) {
		fprintf(stderr, "stash-sim: --seq-cutoff-kb: too large\n");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct options o;
	struct cache c;
	struct tracegen g;
	struct zipf z;
	struct rng r;
	int ret;

	parse_options(argc, argv, &o);
	rng_seed(&r, o.seed);
	if (o.table) {
		if (zipf_init(&z, &o, &r) || tg_init(&g, &o, &z, &r)) {
			fprintf(stderr, "stash-sim: out of memory\n");
			return 1;
		}
		ret = run_table(&o, &g);
		if (ret == 1)
			fprintf(stderr, "stash-sim: out of memory\n");
		tg_exit(&g);
		zipf_exit(&z);
		return ret;
	}
	if (cache_init(&c, &o) || zipf_init(&z, &o, &r) ||
	    tg_init(&g, &o, &z, &r)) {
		fprintf(stderr, "stash-sim: out of memory\n");
		return 1;
	}
	if (!o.brief) {
		printf("stash-sim: %s", trace_names[o.trace]);
		if (o.trace == TRACE_LOOP_SEQ || o.trace == TRACE_LOOP_RAND)
			printf(" of %" "llu" " blocks", o.loop_blocks);
		else if (o.trace != TRACE_UNIFORM)
			printf(" theta %.2f (%s generator, %s scatter)", o.theta,
			       gen_names[o.gen], scatter_names[o.scatter]);
		printf(", cache %" "llu" " blocks, origin %" "llu"
		       " blocks, seq cutoff %" "llu" " KiB, seed %" "llu" "\n",
		       o.cache_blocks, o.origin_blocks, o.seq_cutoff_kb, o.seed);
		if (o.policy == POLICY_STASH)
			printf("  filter: 2 x %llu bits, rotates every %u insertions; map: %u bytes/block\n",
			       1ull << c.filter.bits, c.filter.rotate_at,
			       stash_map_bytes_per_cblock(&c.map));
		else
			printf("  policy: %s (a reference, not the module's)\n",
			       policy_names[o.policy]);
		/* Ranks are in order of probability: the top ranks are the
		 * best static choice for the distribution itself. */
		if (o.trace == TRACE_ZIPF && o.gen == GEN_EXACT &&
		    o.cache_blocks < o.origin_blocks)
			printf("  static optimum of the distribution (%" "llu"
			       " hottest blocks): %.4f\n", o.cache_blocks,
			       z.cdf[o.cache_blocks - 1]);
	}
	if (o.trace == TRACE_ZIPF_SCAN)
		run_scan(&o, &c, &z, &r);
	else
		run_steady(&o, &c, &g);
	tg_exit(&g);
	zipf_exit(&z);
	cache_exit(&c);
	return 0;
}
