/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Mapping table: which origin block (oblock) lives in which cache slot
 * (cblock), plus the replacement policy state that rides on each entry.
 *
 * Pure logic: no locking, no I/O, no kernel dependency beyond stash-compat.h.
 * The caller serialises every call (the cache's map lock in the module).
 * None of these calls sleeps.
 *
 * An object of its own: the rest of the module uses the functions below,
 * never the fields of struct stash_map or struct stash_entry, nor the SE_*
 * flags (tests/build/check-map-private.sh, run by "make lint", checks it).
 * Those stay in this header only for its inline functions and for the
 * white-box unit tests (tests/unit).
 *
 * RAM per cache block: one 12-byte entry, at most two bytes of hash buckets
 * (rounddown_pow_of_two(nr_cblocks) / 2 buckets of 4 bytes), plus what the
 * promotion filter and the dirty bitmap add (see stash-policy.h and
 * stash-bitmap.h).  Lists are linked by 32-bit indexes, not pointers.
 */
#ifndef STASH_MAP_H
#define STASH_MAP_H

#include "stash-compat.h"
#include "stash-bitmap.h"

typedef u64 __bitwise oblock_t;
typedef u64 __bitwise cblock_t;

static inline oblock_t to_oblock(u64 b)
{
	return (__force oblock_t)b;
}

static inline u64 from_oblock(oblock_t b)
{
	return (__force u64)b;
}

static inline cblock_t to_cblock(u64 b)
{
	return (__force cblock_t)b;
}

static inline u64 from_cblock(cblock_t b)
{
	return (__force u64)b;
}

/* Largest oblock an entry can hold: 48 bits, 1 EiB of origin at 4 KiB. */
#define STASH_MAX_OBLOCKS	BIT_ULL(48)
/* Largest number of cache blocks: indexes are 32-bit, U32_MAX is "none". */
#define STASH_MAX_CBLOCKS	(U32_MAX - 1)
#define STASH_NO_INDEX		U32_MAX
#define STASH_NO_CBLOCK		to_cblock(STASH_NO_INDEX)
/* "No oblock": outside the 48-bit range an entry can hold. */
#define STASH_NO_OBLOCK		(~0ull)

static inline bool cblock_is_valid(cblock_t c)
{
	return from_cblock(c) != STASH_NO_INDEX;
}

/* Entry flags: the map's own (see the top of this file). */
enum {
	SE_MAPPED = 1 << 0,	/* in the hash: lookups find it */
	SE_VALID  = 1 << 1,	/* the cache slot holds the block's data */
	/* 1 << 2: free (the reference mark is in stash_map.refs). */
	SE_BUSY   = 1 << 3,	/* an exclusive operation (fill, write) runs */
	SE_STALE  = 1 << 4,	/* invalidated while busy or pinned: free when idle */
	SE_ALLOC  = 1 << 5,	/* allocated (not on the free list) */
	SE_WRITEBACK = 1 << 6,	/* being written back (see stash-writeback.c) */
	SE_REDIRTY = 1 << 7,	/* written while being written back: stays dirty */
};

/* Readers in flight on one slot before new readers must wait. */
#define STASH_MAX_PINS		255

struct stash_entry {
	u32 oblock_lo;
	u32 next;		/* hash chain when mapped, free list when free */
	u16 oblock_hi;
	u8 flags;
	/*
	 * Reads in flight from the cache slot.  Taken under the map's lock,
	 * dropped without it (stash_map_unpin()), so every change to it is
	 * atomic and every read of it READ_ONCE.
	 */
	u8 pins;
};

struct stash_map {
	struct stash_entry *entries;
	u32 *buckets;
	/*
	 * Referenced since the clock hand last passed, a bit per slot: set
	 * with atomic bit operations, also by reads that take no lock
	 * (stash_map_ref()).
	 */
	unsigned long *refs;
	/* Dirty bitmap (may be NULL): never evict (stash_map_attach_dirty()). */
	const unsigned long *dirty;
	/*
	 * Committed-dirty bitmap (may be NULL): slots the on-disk metadata
	 * says are dirty.  They are not reused, even when free or clean in
	 * RAM, until a commit says otherwise: after a crash, recovery would
	 * take the new data for the old block (stash_map_attach_cdirty()).
	 */
	const unsigned long *cdirty;
	/*
	 * Mapped slots invalidated while committed-dirty: until a commit
	 * records them empty, recovery would bring their data back, over
	 * anything the origin got since (stash_map_cdirty_drops()).
	 */
	u64 cdirty_drops;
	/*
	 * Groups of entries_per_page slots changed since the last commit:
	 * the metadata pages (may be NULL; stash_map_attach_pages()).
	 */
	struct stash_bitmap *touched;
	u32 entries_per_page;
	u32 nr_cblocks;
	u32 hash_bits;
	u32 free_head;
	u32 free_tail;		/* committed-dirty slots are freed here */
	u32 nr_free;
	u32 clock_hand;
	/*
	 * A full clock sweep found nothing to evict and nothing has changed
	 * since that could make an entry evictable: fail at once instead of
	 * sweeping again (a cache full of dirty blocks would otherwise cost
	 * a sweep per waiting write).
	 */
	bool none_evictable;
};

int stash_map_init(struct stash_map *m, u32 nr_cblocks);
void stash_map_exit(struct stash_map *m);

/* Slot @c's entry: for this header's functions and the unit tests only. */
static inline struct stash_entry *stash_map_entry(const struct stash_map *m,
						  cblock_t c)
{
	return &m->entries[from_cblock(c)];
}

static inline oblock_t stash_entry_oblock(const struct stash_entry *e)
{
	return to_oblock(((u64)e->oblock_hi << 32) | e->oblock_lo);
}

static inline u32 stash_map_nr_allocated(const struct stash_map *m)
{
	return m->nr_cblocks - m->nr_free;
}

/*
 * True if stash_map_alloc() would take a free slot rather than evict one
 * (a free slot whose dirty state is not yet committed does not count).
 */
static inline bool stash_map_has_free(const struct stash_map *m)
{
	return m->nr_free && !(m->cdirty && test_bit(m->free_head, m->cdirty));
}

/*
 * True if stash_map_alloc() is known to fail: no free slot, and the last
 * clock sweep found nothing to evict with nothing changed since.  (False
 * does not promise that it succeeds: no sweep may have run yet.)
 */
static inline bool stash_map_known_full(const struct stash_map *m)
{
	return !stash_map_has_free(m) && READ_ONCE(m->none_evictable);
}

/* The mapped slot of @ob, or STASH_NO_CBLOCK. */
cblock_t stash_map_lookup(const struct stash_map *m, oblock_t ob);

/*
 * Take a slot for @ob from the free list or, failing that, by evicting the
 * clean, idle, unreferenced entry the clock hand finds first.  The new entry
 * is mapped and SE_BUSY (not yet SE_VALID).  Sets *evicted to the victim's
 * oblock or to STASH_NO_OBLOCK.  Returns STASH_NO_CBLOCK when every slot is
 * busy, pinned or dirty.
 */
cblock_t stash_map_alloc(struct stash_map *m, oblock_t ob, u64 *evicted);

/*
 * Forget the mapping of @c: new lookups miss.  An idle entry goes back to
 * the free list at once; a busy or pinned one is marked SE_STALE and is
 * freed by stash_map_release() when its last user lets go.
 * Returns true if the slot was freed now.
 */
bool stash_map_invalidate(struct stash_map *m, cblock_t c);

/*
 * Drop one pin or the busy flag (as @busy says) and free the entry if it is
 * stale and nobody else holds it.  Returns true if the slot was freed.
 */
bool stash_map_release(struct stash_map *m, cblock_t c, bool busy);

/*
 * Take a read pin on an entry, unless it holds STASH_MAX_PINS already.
 * Pins are taken under the lock (the entry checked valid first) and
 * without it (stash_map_pin_lockless()): an atomic increment, never past
 * the limit.
 */
static inline bool stash_map_try_pin(struct stash_map *m, cblock_t c)
{
	u8 *pins = &m->entries[from_cblock(c)].pins;
	u8 old = READ_ONCE(*pins);

	do {
		if (old >= STASH_MAX_PINS)
			return false;
	} while (!try_cmpxchg(pins, &old, old + 1));
	return true;
}

/*
 * Points where the unit tests step in to force an interleaving of a read
 * without the lock and the clock (tests/unit/test-map.c); nothing in the
 * module.
 */
enum stash_map_hook {
	STASH_HOOK_VICTIM,	/* the clock chose slot i, before it marks it */
	STASH_HOOK_FOUND,	/* a lockless read found slot i, before it pins */
};

#ifdef __KERNEL__
#define stash_map_hook(m, point, i)	do { } while (0)
#else
extern void (*stash_map_test_hook)(struct stash_map *m,
				   enum stash_map_hook point, u32 i);
#define stash_map_hook(m, point, i)					\
	do {								\
		if (stash_map_test_hook)				\
			stash_map_test_hook(m, point, i);		\
	} while (0)
#endif

/* What stash_map_pin_lockless() found. */
enum stash_pin_result {
	STASH_PIN_MISS,		/* not found without the lock: take it */
	STASH_PIN_HIT,		/* pinned, valid: read the slot */
	STASH_PIN_BACKOFF,	/* pinned, then found changing: unpin, take the lock */
};

/*
 * Without the lock: find @ob's slot and pin it for a read if it is mapped
 * and valid (*@c: the slot, for HIT and BACKOFF).  The pin comes first and
 * the entry is checked after it, with a full barrier between; whatever
 * changes an entry's mapping or validity marks the entry first and looks
 * at its pins after (stash_map_invalidate(), the clock's victim), so one
 * of the two sees the other.  A walk that meets a chain being changed
 * may miss: the caller then looks again under the lock.
 */
enum stash_pin_result stash_map_pin_lockless(struct stash_map *m, oblock_t ob,
					     cblock_t *c);

/* A read hit references @c for the clock (any context). */
static inline void stash_map_ref(struct stash_map *m, cblock_t c)
{
	u32 i = (u32)from_cblock(c);

	if (!test_bit(i, m->refs))
		set_bit(i, m->refs);
}

/*
 * Drop a read pin WITHOUT the map's lock: the read-hit completion path.
 * Returns true if the caller must now take the lock, call
 * stash_map_unpinned() and wake deferred reads: the last pin left an
 * entry that is stale (its last reader frees it) or the map believes
 * nothing is evictable, or the slot just fell below its pin limit.
 *
 * Why this is safe: the decisions that wait for the last pin - freeing a
 * stale entry, evicting an entry, clearing none_evictable - are made on
 * both sides: the locked side stores its flag then loads the pins, the
 * pin and unpin store the pins then load the flags, each with a full
 * barrier, so at least one side acts; acting twice is harmless.  Nothing
 * but these atomic increments and decrements writes the pins.
 */
bool stash_map_unpin(struct stash_map *m, cblock_t c);

/*
 * Under the lock, after a pin or the busy flag went: note that the entry
 * may be evictable and free it if it is stale and idle.  Returns true if
 * the slot was freed.
 */
bool stash_map_unpinned(struct stash_map *m, cblock_t c);

/*
 * ---- The bitmaps of other objects ----
 *
 * The map reads the dirty and committed-dirty bitmaps (never evict or
 * reuse such a slot) and marks the metadata page of each slot it changes.
 * Their owners (writeback, metadata) attach them once they exist and
 * detach them (NULL) before they go; NULL is also the state after
 * stash_map_init().  Under the map's lock, or before any I/O.
 *
 * Why the map marks pages itself: every change the metadata records goes
 * through the map under the lock, and marking is one division and one bit,
 * inline.  A "slot changed" hook into stash-metadata.c would be an indirect
 * call (a retpoline) on each, or a call into another file that the unit
 * tests and the simulator would have to provide.  The map knows of the
 * layout only that a page holds @entries_per_page consecutive slots.
 */
static inline void stash_map_attach_dirty(struct stash_map *m,
					  const struct stash_bitmap *dirty)
{
	m->dirty = dirty ? dirty->words : NULL;
}

static inline void stash_map_attach_cdirty(struct stash_map *m,
					   const struct stash_bitmap *cdirty)
{
	m->cdirty = cdirty ? cdirty->words : NULL;
}

/*
 * Mark in @touched the page (@entries_per_page slots) of every slot the
 * map changes from now on.  NULL stops it (a load, whose pages already say
 * what it loads) and leaves the page size as it was.
 */
static inline void stash_map_attach_pages(struct stash_map *m,
					  struct stash_bitmap *touched,
					  u32 entries_per_page)
{
	if (touched)
		m->entries_per_page = entries_per_page;
	m->touched = touched;
}

/* Record that slot @c changed, for the next metadata commit. */
static inline void stash_map_touch(struct stash_map *m, cblock_t c)
{
	if (m->touched)
		stash_bitmap_set(m->touched,
				 (u32)from_cblock(c) / m->entries_per_page);
}

/*
 * How many mapped slots were invalidated while committed-dirty, ever (see
 * struct stash_map).  Any context: read without the lock by
 * stash_md_drops_covered().
 */
static inline u64 stash_map_cdirty_drops(const struct stash_map *m)
{
	return READ_ONCE(m->cdirty_drops);
}

/*
 * Tell the map that an entry may have become evictable through a change
 * it cannot see (a dirty or committed-dirty bit cleared).
 */
static inline void stash_map_note_reusable(struct stash_map *m)
{
	WRITE_ONCE(m->none_evictable, false);
}

/*
 * Mark a busy entry's data valid (a fill or first write completed).  An
 * entry valid already (a write over cached data) changes nothing the
 * metadata records: its page is not touched again.
 */
static inline void stash_map_set_valid(struct stash_map *m, cblock_t c)
{
	struct stash_entry *e = &m->entries[from_cblock(c)];

	if (!(e->flags & SE_VALID)) {
		e->flags |= SE_VALID;
		stash_map_touch(m, c);
	}
	stash_map_note_reusable(m);
}

/*
 * ---- A slot's state ----
 *
 * Under the map's lock, for an allocated slot (@c from a lookup, an
 * allocation, or a busy or pinned slot the caller holds), unless said
 * otherwise.
 */

/* The origin block slot @c holds or last held. */
static inline oblock_t stash_map_oblock(const struct stash_map *m, cblock_t c)
{
	return stash_entry_oblock(stash_map_entry(m, c));
}

/* Taken from the free list (any slot @c < nr_cblocks: free ones say no). */
static inline bool stash_map_is_allocated(const struct stash_map *m,
					  cblock_t c)
{
	return stash_map_entry(m, c)->flags & SE_ALLOC;
}

/* Lookups find it (any slot @c < nr_cblocks: free ones say no). */
static inline bool stash_map_is_mapped(const struct stash_map *m, cblock_t c)
{
	return stash_map_entry(m, c)->flags & SE_MAPPED;
}

/*
 * The slot holds its block's data.  The holder of SE_BUSY may also look
 * without the lock: only an invalidation changes it then, and takes it away.
 */
static inline bool stash_map_is_valid(const struct stash_map *m, cblock_t c)
{
	return stash_map_entry(m, c)->flags & SE_VALID;
}

/* An exclusive operation (fill, write, checked read, writeback read) runs. */
static inline bool stash_map_is_busy(const struct stash_map *m, cblock_t c)
{
	return stash_map_entry(m, c)->flags & SE_BUSY;
}

/* Invalidated while busy or pinned: the last user frees it. */
static inline bool stash_map_is_stale(const struct stash_map *m, cblock_t c)
{
	return stash_map_entry(m, c)->flags & SE_STALE;
}

/* Picked by writeback, until its origin write is done. */
static inline bool stash_map_in_writeback(const struct stash_map *m,
					  cblock_t c)
{
	return stash_map_entry(m, c)->flags & SE_WRITEBACK;
}

/* Busy, or picked by writeback: neither writeback nor a discard may take it. */
static inline bool stash_map_is_held(const struct stash_map *m, cblock_t c)
{
	return stash_map_entry(m, c)->flags & (SE_BUSY | SE_WRITEBACK);
}

/* Mapped, valid and not stale: a lookup finds the block's data here. */
static inline bool stash_map_is_live(const struct stash_map *m, cblock_t c)
{
	return (stash_map_entry(m, c)->flags &
		(SE_MAPPED | SE_VALID | SE_STALE)) == (SE_MAPPED | SE_VALID);
}

/*
 * A read of mapped slot @c waits: no valid data yet (a fill or a first
 * write runs), or STASH_MAX_PINS readers already.
 */
static inline bool stash_map_read_must_wait(const struct stash_map *m,
					    cblock_t c)
{
	const struct stash_entry *e = stash_map_entry(m, c);

	return !(e->flags & SE_VALID) || READ_ONCE(e->pins) >= STASH_MAX_PINS;
}

/*
 * Start an exclusive operation on slot @c, which is not busy (a write, or
 * a read through a checksum buffer): SE_BUSY, and a reference for the
 * clock.  stash_map_release(m, c, true) ends it.
 */
static inline void stash_map_set_busy(struct stash_map *m, cblock_t c)
{
	stash_map_entry(m, c)->flags |= SE_BUSY;
	stash_map_ref(m, c);
}

/*
 * A write is about to change slot @c's data: if writeback has picked the
 * block, it stays dirty when its writeback ends (SE_REDIRTY).
 */
static inline void stash_map_note_write(struct stash_map *m, cblock_t c)
{
	struct stash_entry *e = stash_map_entry(m, c);

	if (e->flags & SE_WRITEBACK)
		e->flags |= SE_REDIRTY;
}

/*
 * ---- Writeback (stash-writeback.c) ----
 *
 * A block is picked (SE_WRITEBACK) until its origin write is done, and is
 * busy only while its run reads the slot.  Under the map's lock.
 */

/* Pick slot @c, which is not held (stash_map_is_held()). */
static inline void stash_map_writeback_begin(struct stash_map *m, cblock_t c)
{
	stash_map_entry(m, c)->flags |= SE_WRITEBACK;
}

/*
 * Make the @n slots @cblocks of a run busy for its read, all or none:
 * returns false, and changes nothing, if one of them is busy already.
 */
bool stash_map_writeback_take(struct stash_map *m, const u32 *cblocks, u32 n);

/*
 * The run has read its slots: they are no longer busy (writes to them
 * mark them SE_REDIRTY instead of waiting).
 */
void stash_map_writeback_release(struct stash_map *m, const u32 *cblocks,
				 u32 n);

/*
 * The writeback of slot @c ended (its origin write done or failed), and
 * with it the busy flag if the run still holds it (@busy).  Returns true
 * if a write changed the slot after the run picked it: the origin has the
 * older data, the block stays dirty.
 */
static inline bool stash_map_writeback_end(struct stash_map *m, cblock_t c,
					   bool busy)
{
	struct stash_entry *e = stash_map_entry(m, c);
	bool rewritten = e->flags & SE_REDIRTY;

	e->flags &= ~(SE_WRITEBACK | SE_REDIRTY);
	if (busy)
		e->flags &= ~SE_BUSY;
	return rewritten;
}

/*
 * Loading a cache from disk: map @ob to slot @c as a valid, idle entry.
 * Returns 0, -EINVAL if @c is out of range or taken, or -EEXIST if @ob is
 * mapped already (by *@held, if @held is not NULL: the load's one lookup
 * serves the caller's duplicate rules too).  Call stash_map_rebuild_free()
 * when every entry is loaded.
 */
int stash_map_load(struct stash_map *m, cblock_t c, oblock_t ob,
		   cblock_t *held);
void stash_map_rebuild_free(struct stash_map *m);

/* Bytes of RAM the map takes: entries, hash buckets, reference bits. */
u64 stash_map_bytes(const struct stash_map *m);
/* The same per cache block, rounded up. */
u32 stash_map_bytes_per_cblock(const struct stash_map *m);

#endif /* STASH_MAP_H */
