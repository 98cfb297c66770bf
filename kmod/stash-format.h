/* SPDX-License-Identifier: GPL-2.0 */
/*
 * On-disk format of a persistent dm-stash cache device (see docs/format.md).
 *
 * Layout, in 512-byte sectors:
 *   0..7	superblock copy 0
 *   8..15	superblock copy 1
 *   md_start	metadata pages: page p has two copies, at
 *		md_start + (2p + k) * 8, k = 0, 1
 *   data_start	cache block c at data_start + c * block_sectors
 *
 * Everything is little-endian, 4096-byte blocks, each with a crc32c of the
 * block from byte 4 on (seed ~0).  A commit with sequence S writes the
 * changed metadata pages, each to its copy that does not hold its newest
 * committed version, stamped S; flushes; then writes superblock copy S % 2
 * with FUA.  Recovery takes the valid superblock with the highest sequence
 * and, for each page, the valid copy with the highest sequence not above
 * the superblock's.
 *
 * Pure logic: encode, decode and validate only; no I/O.
 */
#ifndef STASH_FORMAT_H
#define STASH_FORMAT_H

#include "stash-compat.h"
#include "stash-map.h"

#define STASH_SB_MAGIC			0x48535453u	/* "STSH" */
#define STASH_FORMAT_VERSION		1u	/* no checksums */
#define STASH_FORMAT_VERSION_CSUM	2u	/* checksums ('checksum') */
#define STASH_MD_BLOCK_BYTES		4096u
#define STASH_MD_BLOCK_SECTORS		8u
#define STASH_MD_START			16u	/* after the two superblocks */
#define STASH_MD_ENTRIES_PER_PAGE	510u	/* version 1 */
#define STASH_MD_CSUM_ENTRIES_PER_PAGE	340u	/* version 2 */
#define STASH_SB_FLAG_CLEAN		1u	/* shut down cleanly */
#define STASH_SB_FLAG_NEEDS_CHECK	2u	/* a commit failed: check first */
#define STASH_SB_NAME_BYTES		128u	/* DM_NAME_LEN */
#define STASH_SB_PATH_BYTES		512u
#define STASH_SB_OPTIONS_BYTES		256u

/*
 * Entry: bit 63 valid, bit 62 dirty, bits 0..47 the oblock; version 2 also
 * bit 61 open (the slot may have been written since: no checksum recorded,
 * its checksum field is zero).
 */
#define STASH_MD_VALID			BIT_ULL(63)
#define STASH_MD_DIRTY			BIT_ULL(62)
#define STASH_MD_OPEN			BIT_ULL(61)
#define STASH_MD_OBLOCK_MASK		(BIT_ULL(48) - 1)
#define STASH_MD_RESERVED_MASK		(~(STASH_MD_VALID | STASH_MD_DIRTY | \
					   STASH_MD_OBLOCK_MASK))
#define STASH_MD_CSUM_RESERVED_MASK	(STASH_MD_RESERVED_MASK & ~STASH_MD_OPEN)

struct stash_sb_disk {
	__le32 crc;
	__le32 magic;
	__le32 version;
	__le32 flags;
	__le64 seq;
	u8 uuid[16];
	__le64 origin_sectors;	/* target length when formatted */
	__le64 cache_sectors;	/* cache device size when formatted */
	__le64 md_start;
	__le64 data_start;
	__le32 block_sectors;
	__le32 nr_cblocks;
	__le32 md_pages;
	__le32 mode;		/* write mode at the last commit */
	/* What "stashctl assemble" needs to recreate the volume: */
	char name[STASH_SB_NAME_BYTES];		/* dm name, NUL-padded */
	__le64 origin_dev_sectors;		/* origin device size */
	char origin_path[STASH_SB_PATH_BYTES];	/* as in the table */
	char options[STASH_SB_OPTIONS_BYTES];	/* optional table arguments */
	u8 reserved[3104];	/* zero */
};

struct stash_md_page_disk {
	__le32 crc;
	__le32 index;
	__le64 seq;
	__le64 entries[STASH_MD_ENTRIES_PER_PAGE];
};

/* Version 2: each entry's checksum beside it, committed with it. */
struct stash_md_page_csum_disk {
	__le32 crc;
	__le32 index;
	__le64 seq;
	__le64 entries[STASH_MD_CSUM_ENTRIES_PER_PAGE];
	__le32 csums[STASH_MD_CSUM_ENTRIES_PER_PAGE];
};

static_assert(sizeof(struct stash_sb_disk) == STASH_MD_BLOCK_BYTES);
static_assert(sizeof(struct stash_md_page_disk) == STASH_MD_BLOCK_BYTES);
static_assert(sizeof(struct stash_md_page_csum_disk) == STASH_MD_BLOCK_BYTES);
/* Both versions' headers and entries share offsets (peek, decode, commits). */
static_assert(offsetof(struct stash_md_page_csum_disk, seq) ==
	      offsetof(struct stash_md_page_disk, seq));
static_assert(offsetof(struct stash_md_page_csum_disk, entries) ==
	      offsetof(struct stash_md_page_disk, entries));

/* Where everything lives, derived from the sizes and the block size. */
struct stash_geometry {
	u64 origin_sectors;
	u64 cache_sectors;
	u64 md_start;
	u64 data_start;
	u32 block_sectors;
	u32 nr_cblocks;
	u32 md_pages;
	u32 entries_per_page;	/* 510 (version 1) or 340 (2) */
	bool csum;		/* version 2: checksums beside the entries */
};

/* A decoded superblock. */
struct stash_sb {
	struct stash_geometry geo;
	u64 seq;
	u32 flags;
	u32 mode;
	u8 uuid[16];
};

/*
 * The volume's identity, recorded in the superblock so that the volume can
 * be recreated from the cache device alone (stashctl assemble).  Strings
 * are NUL-terminated; empty means "not recorded".  name: no control
 * characters; origin_path: printable, no spaces; options: the optional
 * table arguments that differ from the defaults (without the count, the
 * mode, "format" or "volatile"), printable.
 */
struct stash_sb_ident {
	u64 origin_dev_sectors;
	char name[STASH_SB_NAME_BYTES];
	char origin_path[STASH_SB_PATH_BYTES];
	char options[STASH_SB_OPTIONS_BYTES];
};

/*
 * Fit as many cache blocks as possible after the metadata they need (with
 * @csum, version 2 pages).  Returns 0, or -1 if fewer than @min_cblocks
 * fit.
 */
int stash_geometry_compute_csum(struct stash_geometry *g, u64 cache_sectors,
				u64 origin_sectors, u32 block_sectors,
				u32 min_cblocks, bool csum);
static inline int stash_geometry_compute(struct stash_geometry *g,
					 u64 cache_sectors, u64 origin_sectors,
					 u32 block_sectors, u32 min_cblocks)
{
	return stash_geometry_compute_csum(g, cache_sectors, origin_sectors,
					   block_sectors, min_cblocks, false);
}

static inline u64 stash_md_page_sector(const struct stash_geometry *g,
				       u32 page, u32 copy)
{
	return g->md_start + ((u64)page * 2 + copy) * STASH_MD_BLOCK_SECTORS;
}

/* @id may be NULL: nothing recorded. */
void stash_sb_encode_ident(const struct stash_sb *sb,
			   const struct stash_sb_ident *id, void *block);
static inline void stash_sb_encode(const struct stash_sb *sb, void *block)
{
	stash_sb_encode_ident(sb, NULL, block);
}

/*
 * Decode and validate one superblock copy.  Returns 0, or -1 with *why
 * saying what is wrong (no magic, bad checksum, unknown version, bad
 * geometry, a malformed identity string, non-zero reserved bytes).
 */
int stash_sb_decode(const void *block, struct stash_sb *sb, const char **why);
/* The identity of a superblock that stash_sb_decode() accepted. */
void stash_sb_decode_ident(const void *block, struct stash_sb_ident *id);
/* Whether @s would be accepted in that field (the encoder's checks). */
bool stash_sb_name_ok(const char *s);
bool stash_sb_path_ok(const char *s);
bool stash_sb_options_ok(const char *s);

/*
 * Recovery's choice between two valid superblock copies: is @copy to be
 * used rather than @best (none yet: NULL)?  The higher sequence; of two
 * with one sequence, the one marked "needs check" (the mark a failed
 * commit writes over the other copy).  The kernel, stashctl check/dump
 * and assemble all choose with this.
 */
static inline bool stash_sb_preferred(const struct stash_sb *copy,
				      const struct stash_sb *best)
{
	return !best || copy->seq > best->seq ||
	       (copy->seq == best->seq &&
		(copy->flags & STASH_SB_FLAG_NEEDS_CHECK));
}

/* What a superblock copy holds (stash_sb_classify()). */
enum stash_sb_kind {
	STASH_SB_BLANK,		/* all zero */
	STASH_SB_FOREIGN,	/* no dm-stash magic: not ours */
	STASH_SB_BAD_CRC,	/* dm-stash magic, checksum mismatch: damaged */
	STASH_SB_VERSION,	/* intact, but another format version */
	STASH_SB_INVALID,	/* checksum right, fields or geometry wrong */
	STASH_SB_VALID,
};

/*
 * Decode one superblock copy like stash_sb_decode() and say what it is;
 * *why is set for every kind but STASH_SB_VALID.
 */
enum stash_sb_kind stash_sb_classify(const void *block, struct stash_sb *sb,
				     const char **why);

void stash_md_page_encode(void *block, u32 index, u64 seq,
			  const u64 *entries);
/*
 * Validate one metadata page copy for page @index and return its sequence
 * and entries (host order).  Returns 0, or -1 with *why.
 */
int stash_md_page_decode(const void *block, u32 index, u32 nr_cblocks,
			 u64 nr_oblocks, u64 *seq, u64 *entries,
			 const char **why);
/*
 * Either version, as @g says: @csums (g->entries_per_page of them: up to
 * STASH_MD_ENTRIES_PER_PAGE) is
 * written from (encode; ignored for version 1, may then be NULL) or filled
 * in (decode; zero for version 1).  An open or empty entry's checksum is zero.
 */
void stash_md_page_encode_geo(void *block, const struct stash_geometry *g,
			      u32 index, u64 seq, const u64 *entries,
			      const u32 *csums);
int stash_md_page_decode_geo(const void *block,
			     const struct stash_geometry *g, u32 index,
			     u64 nr_oblocks, u64 *seq, u64 *entries,
			     u32 *csums, const char **why);
/*
 * Read page copy @buf's index and sequence fields without validating it
 * (its crc may be wrong): what a damaged copy claims to be.
 */
void stash_md_page_peek(const void *buf, u32 *index, u64 *seq);

/*
 * ---- Recovery rules (docs/format.md, "Recovery"): the kernel's load,
 * stashctl check and dump, and the unit tests apply these ----
 */

/* One copy of a metadata page, as recovery sees it. */
struct stash_md_copy {
	bool checked;		/* decoded (the common case checks one copy) */
	bool valid;		/* checked: checksum, index and entries right */
	bool blank;		/* checked: all zero */
	u32 raw_index;		/* its header's fields, unvalidated */
	u64 raw_seq;
	u64 seq;		/* valid: its sequence */
	const char *why;	/* checked and not valid: what is wrong */
};

enum stash_md_pick_result {
	STASH_PICK_OK,			/* use copy ->best */
	STASH_PICK_NO_COPY,		/* no valid copy not above the superblock */
	STASH_PICK_NEWEST_DAMAGED,	/* refused: see stash_md_pick_page() */
};

struct stash_md_pick {
	enum stash_md_pick_result result;
	int best;		/* STASH_PICK_OK, NEWEST_DAMAGED: the copy used */
	/*
	 * STASH_PICK_OK: the other copy claims this page and a sequence above
	 * the superblock's (a torn commit's): the kernel rewrites it with the
	 * best copy before any commit can take that sequence again.
	 */
	bool erase_other;
	struct stash_md_copy copy[2];
};

/*
 * Step 2 of recovery for page @p, whose copies 0 and 1 are adjacent at
 * @both, under a superblock of sequence @sb_seq: use the valid copy with
 * the highest sequence not above the superblock's (copy 0 on a tie), its
 * entries and checksums into @entries and @csums (@scratch and
 * @csum_scratch: room for the other copy's).  Refused
 * (STASH_PICK_NEWEST_DAMAGED) when the other copy fails validation but
 * claims this page and a sequence above the used one's, not above the
 * superblock's: it was the newest committed version (a commit never
 * overwrites the copy of the page's last completed commit, and a torn one
 * is stamped above the superblock), and the older copy may map slots
 * reused since.  Only the copy that claims the newest committed version is
 * checked when it is valid, unless @check_both (for reports).
 */
void stash_md_pick_page(const void *both, const struct stash_geometry *g,
			u32 p, u64 nr_oblocks, u64 sb_seq, bool check_both,
			u64 *entries, u32 *csums, u64 *scratch,
			u32 *csum_scratch, struct stash_md_pick *pick);
/* STASH_PICK_NO_COPY: the reason, as the kernel reports it. */
const char *stash_md_pick_why(const struct stash_md_pick *pick);

/*
 * Step 3: does the load keep the (valid) entry @e?  After an unclean
 * shutdown only the dirty ones: a clean slot may have been reused after
 * the last commit, and its data is on the origin anyway.  A dirty entry
 * must then not give way to a clean one of the same block, even a newer
 * one: an older page that still records the block dirty was not written
 * since the block left that slot, and every flush and FUA write waited for
 * a commit sweep that would have written it, so nothing newer than that
 * dirty copy was made durable.  Dropping the clean entries before step 4
 * sees them ensures it, and spares the load a lookup for each.
 */
static inline bool stash_md_load_keeps(bool unclean, u64 e)
{
	return !unclean || (e & STASH_MD_DIRTY);
}

/* Step 4: one origin block in two slots (stash_md_dup_winner()). */
enum stash_md_dup {
	STASH_DUP_KEEP,		/* the slot loaded first keeps the block */
	STASH_DUP_REPLACE,	/* the new slot takes it */
	STASH_DUP_CORRUPT,	/* both in one commit: refused */
};

/*
 * An origin block mapped by a kept entry of a page of sequence @held_seq
 * is found in another kept entry, of a page of sequence @seq: the newer
 * page wins; two in one commit are corrupt.
 */
static inline enum stash_md_dup stash_md_dup_winner(u64 held_seq, u64 seq)
{
	if (held_seq == seq)
		return STASH_DUP_CORRUPT;
	return seq > held_seq ? STASH_DUP_REPLACE : STASH_DUP_KEEP;
}

static inline u64 stash_md_entry(bool valid, bool dirty, u64 oblock)
{
	if (!valid)
		return 0;
	return STASH_MD_VALID | (dirty ? STASH_MD_DIRTY : 0) |
	       (oblock & STASH_MD_OBLOCK_MASK);
}

#endif /* STASH_FORMAT_H */
