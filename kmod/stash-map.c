// SPDX-License-Identifier: GPL-2.0
/*
 * Mapping table and clock replacement (see stash-map.h).
 */
#include "stash-map.h"

#ifndef __KERNEL__
void (*stash_map_test_hook)(struct stash_map *m, enum stash_map_hook point,
			    u32 i);
#endif

static u32 bucket_of(const struct stash_map *m, oblock_t ob)
{
	return m->hash_bits ? hash_64(from_oblock(ob), m->hash_bits) : 0;
}

/* Every hash chain empty (at creation). */
static void reset_buckets(struct stash_map *m)
{
	u32 i, nr_buckets = 1u << m->hash_bits;

	for (i = 0; i < nr_buckets; i++) {
		m->buckets[i] = STASH_NO_INDEX;
		if (!(i & 0xffff))
			stash_cond_resched();
	}
}

/*
 * Rebuilding the free list: empty it, then push the free slots from the
 * last to the first, so that it ascends.
 */
static void free_list_reset(struct stash_map *m)
{
	m->free_head = STASH_NO_INDEX;
	m->free_tail = STASH_NO_INDEX;
	m->nr_free = 0;
}

static void free_list_push(struct stash_map *m, u32 i)
{
	m->entries[i].next = m->free_head;
	m->free_head = i;
	if (m->free_tail == STASH_NO_INDEX)
		m->free_tail = i;
	m->nr_free++;
}

int stash_map_init(struct stash_map *m, u32 nr_cblocks)
{
	u32 nr_buckets, i;

	memset(m, 0, sizeof(*m));
	if (!nr_cblocks || nr_cblocks > STASH_MAX_CBLOCKS)
		return -1;

	nr_buckets = rounddown_pow_of_two(nr_cblocks) / 2;
	if (!nr_buckets)
		nr_buckets = 1;
	m->hash_bits = ilog2(nr_buckets);

	/*
	 * The larger array first: without it, the other is not needed.  Not
	 * zeroed: the free list below fills in every entry (a 256 GiB cache
	 * of 4 KiB blocks has 67M: one pass over them, not two, unless the
	 * kernel zeroes every allocation anyway, as init_on_alloc does).
	 */
	m->entries = stash_alloc_array(nr_cblocks, sizeof(*m->entries));
	if (!m->entries)
		return -1;
	m->buckets = stash_alloc_array(nr_buckets, sizeof(*m->buckets));
	m->refs = stash_zalloc_array(BITS_TO_LONGS(nr_cblocks), sizeof(long));
	if (!m->buckets || !m->refs) {
		stash_map_exit(m);
		return -1;
	}
	reset_buckets(m);

	/* Free list in ascending order, so a new cache fills from the front. */
	for (i = 0; i < nr_cblocks; i++) {
		m->entries[i] = (struct stash_entry){
			.next = i + 1 < nr_cblocks ? i + 1 : STASH_NO_INDEX,
		};
		if (!(i & 0xffff))
			stash_cond_resched();
	}
	m->nr_cblocks = nr_cblocks;
	m->free_head = 0;
	m->free_tail = nr_cblocks - 1;
	m->nr_free = nr_cblocks;
	return 0;
}

void stash_map_exit(struct stash_map *m)
{
	stash_free_array(m->entries);
	stash_free_array(m->buckets);
	stash_free_array(m->refs);
	m->entries = NULL;
	m->buckets = NULL;
	m->refs = NULL;
}

cblock_t stash_map_lookup(const struct stash_map *m, oblock_t ob)
{
	u32 i = m->buckets[bucket_of(m, ob)];

	while (i != STASH_NO_INDEX) {
		const struct stash_entry *e = &m->entries[i];

		if (stash_entry_oblock(e) == ob)
			return to_cblock(i);
		i = e->next;
	}
	return STASH_NO_CBLOCK;
}

/*
 * Chains change under the lock while stash_map_pin_lockless() walks them:
 * each link is written once (WRITE_ONCE), an entry's next before it joins.
 */
/* The entry's block, read without the lock (either half may be stale). */
static oblock_t entry_oblock_once(const struct stash_entry *e)
{
	return to_oblock(((u64)READ_ONCE(e->oblock_hi) << 32) |
			 READ_ONCE(e->oblock_lo));
}

enum stash_pin_result stash_map_pin_lockless(struct stash_map *m, oblock_t ob,
					     cblock_t *c)
{
	u32 i = READ_ONCE(m->buckets[bucket_of(m, ob)]), steps;
	struct stash_entry *e;
	u8 flags;

	/* A chain changing under the walk may lead anywhere: a bounded walk. */
	for (steps = 0; i < m->nr_cblocks && steps < 32; steps++) {
		e = &m->entries[i];
		if (entry_oblock_once(e) == ob)
			break;
		i = READ_ONCE(e->next);
	}
	if (i >= m->nr_cblocks || steps == 32)
		return STASH_PIN_MISS;
	stash_map_hook(m, STASH_HOOK_FOUND, i);
	e = &m->entries[i];
	*c = to_cblock(i);
	if (!stash_map_try_pin(m, *c))
		return STASH_PIN_MISS;
	/* Fully ordered by the pin: the entry as it is now. */
	flags = READ_ONCE(e->flags);
	/*
	 * The flags before the block: an entry freed and taken again while
	 * this read held no pin yet becomes valid only after its new block
	 * is written (stash_map_alloc(), then the fill's I/O).  Without the
	 * barrier a weakly ordered CPU may load the old block first and the
	 * new entry's SE_VALID after it, and read another block's data.
	 */
	smp_rmb();
	if ((flags & (SE_ALLOC | SE_MAPPED | SE_VALID | SE_STALE)) ==
	    (SE_ALLOC | SE_MAPPED | SE_VALID) && entry_oblock_once(e) == ob)
		return STASH_PIN_HIT;
	return STASH_PIN_BACKOFF;
}

static void hash_insert(struct stash_map *m, u32 i)
{
	struct stash_entry *e = &m->entries[i];
	u32 *head = &m->buckets[bucket_of(m, stash_entry_oblock(e))];

	WRITE_ONCE(e->next, *head);
	/* Its block and next before it joins (stash_map_pin_lockless()). */
	smp_wmb();
	WRITE_ONCE(*head, i);
	e->flags |= SE_MAPPED;
	stash_map_touch(m, to_cblock(i));
}

static void hash_remove(struct stash_map *m, u32 i)
{
	struct stash_entry *e = &m->entries[i];
	u32 *link = &m->buckets[bucket_of(m, stash_entry_oblock(e))];

	while (*link != STASH_NO_INDEX) {
		if (*link == i) {
			WRITE_ONCE(*link, e->next);
			break;
		}
		link = &m->entries[*link].next;
	}
	WRITE_ONCE(e->next, STASH_NO_INDEX);
	e->flags &= ~SE_MAPPED;
	stash_map_touch(m, to_cblock(i));
	stash_map_note_reusable(m);
}

static void free_entry(struct stash_map *m, u32 i)
{
	struct stash_entry *e = &m->entries[i];

	stash_map_touch(m, to_cblock(i));
	if (e->flags & SE_MAPPED)
		hash_remove(m, i);
	/* Not the pins: a read without the lock may hold one a moment. */
	WRITE_ONCE(e->flags, 0);
	clear_bit(i, m->refs);
	if (m->cdirty && test_bit(i, m->cdirty) && m->nr_free) {
		/*
		 * Not reusable before the next commit: queue it behind the
		 * slots that are, so allocation does not stall on it.
		 */
		WRITE_ONCE(e->next, STASH_NO_INDEX);
		WRITE_ONCE(m->entries[m->free_tail].next, i);
		m->free_tail = i;
	} else {
		WRITE_ONCE(e->next, m->free_head);
		m->free_head = i;
		if (!m->nr_free)
			m->free_tail = i;
	}
	m->nr_free++;
}

static bool reuse_blocked(const struct stash_map *m, u32 i)
{
	return (m->dirty && test_bit(i, m->dirty)) ||
	       (m->cdirty && test_bit(i, m->cdirty));
}

static bool evictable(const struct stash_map *m, u32 i)
{
	const struct stash_entry *e = &m->entries[i];

	if ((e->flags & (SE_MAPPED | SE_VALID | SE_BUSY | SE_STALE)) !=
	    (SE_MAPPED | SE_VALID))
		return false;
	if (READ_ONCE(e->pins))
		return false;
	return !reuse_blocked(m, i);
}

/*
 * Move the clock hand past the dirty entries from it on (at most @left of
 * them, and not past the map's end), a bitmap word at a time; returns how
 * many it passed.  A dirty entry is never evictable and its reference mark
 * is left alone, so passing it here is what one step of the sweep would
 * do, only cheaper: in a cache that is mostly dirty, a sweep otherwise
 * costs one step per slot under the lock.
 */
static u64 skip_dirty(struct stash_map *m, u64 left)
{
	u32 i = m->clock_hand;
	u64 next;

	if (!m->dirty)
		return 0;
	next = find_next_zero_bit(m->dirty, m->nr_cblocks, i);
	if (next - i > left)
		next = i + left;
	m->clock_hand = next < m->nr_cblocks ? (u32)next : 0;
	return next - i;
}

/*
 * Second-chance clock: a referenced entry loses its mark and is passed
 * over once.  Two sweeps always suffice to find an evictable entry if there
 * is one.
 */
static u32 clock_sweep(struct stash_map *m)
{
	u64 left = 2ull * m->nr_cblocks;

	while (left) {
		u32 i;
		struct stash_entry *e;

		left -= skip_dirty(m, left);
		if (!left)
			break;
		i = m->clock_hand;
		e = &m->entries[i];
		m->clock_hand = i + 1 < m->nr_cblocks ? i + 1 : 0;
		left--;
		if (!evictable(m, i))
			continue;
		if (test_bit(i, m->refs)) {
			clear_bit(i, m->refs);
			continue;
		}
		stash_map_hook(m, STASH_HOOK_VICTIM, i);
		/*
		 * A read without the lock pins, then looks at the entry: mark
		 * it, then look at the pins (stash_map_pin_lockless()).
		 */
		WRITE_ONCE(e->flags, e->flags | SE_STALE);
		/* Pairs with the fully ordered pin in stash_map_try_pin(). */
		smp_mb();
		if (READ_ONCE(e->pins)) {
			WRITE_ONCE(e->flags, e->flags & ~SE_STALE);
			continue;
		}
		return i;
	}
	return STASH_NO_INDEX;
}

static u32 clock_evict(struct stash_map *m)
{
	u32 i;

	if (m->none_evictable)
		return STASH_NO_INDEX;
	i = clock_sweep(m);
	if (i != STASH_NO_INDEX)
		return i;
	/*
	 * A read may have dropped its pin, without the lock, after the sweep
	 * passed its entry.  Say "none evictable" first, then look again:
	 * a reader that unpins later sees the flag and clears it under the
	 * lock (stash_map_unpin()).  Both sides store, then load, with full
	 * barriers between: one of them sees the other.
	 */
	WRITE_ONCE(m->none_evictable, true);
	/* Pairs with the fully ordered pin drop in stash_map_unpin(). */
	smp_mb();
	i = clock_sweep(m);
	if (i != STASH_NO_INDEX)
		m->none_evictable = false;
	return i;
}

cblock_t stash_map_alloc(struct stash_map *m, oblock_t ob, u64 *evicted)
{
	struct stash_entry *e;
	u32 i;

	*evicted = STASH_NO_OBLOCK;
	if (stash_map_has_free(m)) {
		i = m->free_head;
		m->free_head = m->entries[i].next;
		if (m->free_head == STASH_NO_INDEX)
			m->free_tail = STASH_NO_INDEX;
		m->nr_free--;
	} else {
		i = clock_evict(m);
		if (i == STASH_NO_INDEX)
			return STASH_NO_CBLOCK;
		*evicted = from_oblock(stash_entry_oblock(&m->entries[i]));
		hash_remove(m, i);
	}

	/*
	 * Busy (not valid) before its new block shows: a read without the
	 * lock that finds it by the new block backs off.  Not the pins: such
	 * a read may hold one a moment.
	 */
	e = &m->entries[i];
	WRITE_ONCE(e->flags, SE_ALLOC | SE_BUSY);
	/* The flags before the block: a reader that sees the block sees them. */
	smp_wmb();
	WRITE_ONCE(e->oblock_lo, (u32)from_oblock(ob));
	WRITE_ONCE(e->oblock_hi, (u16)(from_oblock(ob) >> 32));
	clear_bit(i, m->refs);
	hash_insert(m, i);
	return to_cblock(i);
}

int stash_map_load(struct stash_map *m, cblock_t c, oblock_t ob,
		   cblock_t *held)
{
	u32 i = (u32)from_cblock(c);
	struct stash_entry *e;
	cblock_t other;

	if (i >= m->nr_cblocks || (m->entries[i].flags & SE_ALLOC))
		return -EINVAL;
	other = stash_map_lookup(m, ob);
	if (cblock_is_valid(other)) {
		if (held)
			*held = other;
		return -EEXIST;
	}
	e = &m->entries[i];
	e->oblock_lo = (u32)from_oblock(ob);
	e->oblock_hi = (u16)(from_oblock(ob) >> 32);
	e->flags = SE_ALLOC | SE_VALID;
	e->pins = 0;
	hash_insert(m, i);
	return 0;
}

void stash_map_rebuild_free(struct stash_map *m)
{
	u32 i = m->nr_cblocks;

	free_list_reset(m);
	while (i--)
		if (!(m->entries[i].flags & SE_ALLOC))
			free_list_push(m, i);
}

bool stash_map_invalidate(struct stash_map *m, cblock_t c)
{
	u32 i = (u32)from_cblock(c);
	struct stash_entry *e = &m->entries[i];

	if (!(e->flags & SE_ALLOC) || (e->flags & SE_STALE))
		return false;
	if (e->flags & SE_MAPPED)
		hash_remove(m, i);
	if (m->cdirty && test_bit(i, m->cdirty)) {
		WRITE_ONCE(m->cdirty_drops, m->cdirty_drops + 1);
		stash_map_touch(m, c);
	}
	WRITE_ONCE(e->flags, (e->flags & ~SE_VALID) | SE_STALE);
	/*
	 * Mark it stale before looking at its pins: a reader that drops the
	 * last pin without the lock then sees SE_STALE and frees the entry
	 * under the lock itself (stash_map_unpin()).
	 */
	smp_mb();
	if ((e->flags & SE_BUSY) || READ_ONCE(e->pins))
		return false;
	free_entry(m, i);
	return true;
}

bool stash_map_release(struct stash_map *m, cblock_t c, bool busy)
{
	u32 i = (u32)from_cblock(c);
	struct stash_entry *e = &m->entries[i];

	if (busy)
		e->flags &= ~SE_BUSY;
	else if (READ_ONCE(e->pins))
		stash_atomic_add_u8(&e->pins, -1);
	return stash_map_unpinned(m, c);
}

bool stash_map_unpin(struct stash_map *m, cblock_t c)
{
	struct stash_entry *e = &m->entries[from_cblock(c)];

	u8 left = stash_atomic_add_u8(&e->pins, -1);

	/* A read found the slot at its pin limit and waits for this one. */
	if (left == STASH_MAX_PINS - 1)
		return true;
	if (left)
		return false;
	/* Fully ordered: the pin's drop is seen before the loads below. */
	return (READ_ONCE(e->flags) & SE_STALE) || READ_ONCE(m->none_evictable);
}

bool stash_map_unpinned(struct stash_map *m, cblock_t c)
{
	u32 i = (u32)from_cblock(c);
	struct stash_entry *e = &m->entries[i];

	stash_map_note_reusable(m);
	if ((e->flags & SE_STALE) && !(e->flags & SE_BUSY) &&
	    !READ_ONCE(e->pins)) {
		free_entry(m, i);
		return true;
	}
	return false;
}

bool stash_map_writeback_take(struct stash_map *m, const u32 *cblocks, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++)
		if (m->entries[cblocks[i]].flags & SE_BUSY)
			return false;
	for (i = 0; i < n; i++)
		m->entries[cblocks[i]].flags |= SE_BUSY;
	return true;
}

void stash_map_writeback_release(struct stash_map *m, const u32 *cblocks,
				 u32 n)
{
	u32 i;

	for (i = 0; i < n; i++)
		m->entries[cblocks[i]].flags &= ~SE_BUSY;
}

u64 stash_map_bytes(const struct stash_map *m)
{
	return (u64)m->nr_cblocks * sizeof(struct stash_entry) +
	       (sizeof(u32) << m->hash_bits) +
	       BITS_TO_LONGS((u64)m->nr_cblocks) * sizeof(long);
}

u32 stash_map_bytes_per_cblock(const struct stash_map *m)
{
	u64 bytes = stash_map_bytes(m);

	return (u32)((bytes + m->nr_cblocks - 1) / m->nr_cblocks);
}
