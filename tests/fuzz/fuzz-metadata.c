// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the metadata validator (kmod/stash-format.c, built
 * for userspace through kmod/stash-compat.h).  Run by "make fuzz".
 *
 * Input: one selector byte, then the data.
 *   selector % 4 == 0: a superblock block: stash_sb_decode(); a decoded
 *	superblock must describe a sane geometry (checked below) and
 *	survive an encode/decode round trip unchanged;
 *   selector % 4 == 1: a metadata page block, then (after the 4096 bytes)
 *	index, nr_cblocks and nr_oblocks: stash_md_page_decode(); accepted
 *	entries must obey the documented rules;
 *   selector % 4 == 2: stash_geometry_compute() on arbitrary sizes; a
 *	result must be sane;
 *   selector % 4 == 3: both decoders on the same block.
 * Selector bit 0x40 (selector % 4 == 1): the page as format version 2
 * (stash_md_page_decode_geo(): checksums beside the entries).
 * Selector bit 0x80: store the right checksum into the block before
 * decoding, so that the fuzzer gets past the crc32c to the field checks.
 * A short input is zero-padded to a whole block.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stash-format.h"

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz-metadata: %s:%d: %s\n",		\
			__FILE__, __LINE__, #cond);			\
		abort();						\
	}								\
} while (0)

static void fix_crc(uint8_t *block)
{
	uint32_t crc = htole32(~stash_crc32c(~0u, block + 4,
					     STASH_MD_BLOCK_BYTES - 4));

	memcpy(block, &crc, 4);
}

static uint64_t take(const uint8_t **p, size_t *left, size_t n)
{
	uint64_t v = 0;

	if (n > *left)
		n = *left;
	memcpy(&v, *p, n);
	*p += n;
	*left -= n;
	return le64toh(v);
}

/* What every geometry handed to the module must satisfy. */
static void check_geometry(const struct stash_geometry *g)
{
	u64 md_end, data_bytes, end;

	CHECK(g->block_sectors != 0);
	CHECK(g->nr_cblocks >= 1);
	CHECK(g->md_start == STASH_MD_START);
	CHECK((u64)g->md_pages * STASH_MD_ENTRIES_PER_PAGE >= g->nr_cblocks);
	CHECK(g->md_pages == ((u64)g->nr_cblocks + STASH_MD_ENTRIES_PER_PAGE - 1) /
			     STASH_MD_ENTRIES_PER_PAGE);
	md_end = g->md_start + (u64)g->md_pages * 2 * STASH_MD_BLOCK_SECTORS;
	CHECK(g->data_start >= md_end);
	CHECK(g->data_start % g->block_sectors == 0);
	CHECK(!__builtin_mul_overflow((u64)g->nr_cblocks, (u64)g->block_sectors,
				      &data_bytes));
	CHECK(!__builtin_add_overflow(g->data_start, data_bytes, &end));
	CHECK(end <= g->cache_sectors);
}

static void fuzz_sb(uint8_t *block)
{
	static uint8_t again[STASH_MD_BLOCK_BYTES];
	struct stash_sb sb, sb2;
	struct stash_sb_ident id;
	struct stash_geometry g;
	const char *why = NULL, *why2 = NULL;
	enum stash_sb_kind kind = stash_sb_classify(block, &sb2, &why2);

	/* The classifier agrees with the decoder and always says why not. */
	if (stash_sb_decode(block, &sb, &why)) {
		CHECK(why != NULL);
		CHECK(kind != STASH_SB_VALID);
		CHECK(why2 != NULL);
		return;
	}
	CHECK(kind == STASH_SB_VALID);
	check_geometry(&sb.geo);
	CHECK((sb.geo.block_sectors & (sb.geo.block_sectors - 1)) == 0);
	CHECK(!(sb.flags & ~(STASH_SB_FLAG_CLEAN | STASH_SB_FLAG_NEEDS_CHECK)));
	CHECK(sb.mode <= 2);
	/* The geometry is a function of the sizes. */
	CHECK(!stash_geometry_compute(&g, sb.geo.cache_sectors,
				      sb.geo.origin_sectors,
				      sb.geo.block_sectors, 1));
	CHECK(!memcmp(&g, &sb.geo, sizeof(g)));
	/* The identity strings are what the encoder takes. */
	stash_sb_decode_ident(block, &id);
	CHECK(stash_sb_name_ok(id.name));
	CHECK(stash_sb_path_ok(id.origin_path));
	CHECK(stash_sb_options_ok(id.options));
	/* Round trip: what was accepted encodes to the same block. */
	stash_sb_encode_ident(&sb, &id, again);
	CHECK(!memcmp(again, block, STASH_MD_BLOCK_BYTES));
	CHECK(!stash_sb_decode(again, &sb2, &why));
	CHECK(!memcmp(&sb, &sb2, sizeof(sb)));
}

static void fuzz_page(uint8_t *block, u32 index, u32 nr_cblocks, u64 nr_oblocks)
{
	static u64 entries[STASH_MD_ENTRIES_PER_PAGE];
	static uint8_t again[STASH_MD_BLOCK_BYTES];
	const char *why = NULL;
	u64 seq = 0, first = (u64)index * STASH_MD_ENTRIES_PER_PAGE;
	u32 i;

	if (stash_md_page_decode(block, index, nr_cblocks, nr_oblocks, &seq,
				 entries, &why)) {
		CHECK(why != NULL);
		return;
	}
	for (i = 0; i < STASH_MD_ENTRIES_PER_PAGE; i++) {
		u64 e = entries[i];

		if (!e)
			continue;
		CHECK(e & STASH_MD_VALID);
		CHECK(!(e & STASH_MD_RESERVED_MASK));
		CHECK(first + i < nr_cblocks);
		CHECK((e & STASH_MD_OBLOCK_MASK) < nr_oblocks);
		CHECK(e == stash_md_entry(true, e & STASH_MD_DIRTY,
					  e & STASH_MD_OBLOCK_MASK));
	}
	stash_md_page_encode(again, index, seq, entries);
	CHECK(!memcmp(again, block, STASH_MD_BLOCK_BYTES));
}

/* The same page as format version 2 (selector bit 0x40). */
static void fuzz_page_csum(uint8_t *block, u32 index, u32 nr_cblocks,
			   u64 nr_oblocks)
{
	static u64 entries[STASH_MD_CSUM_ENTRIES_PER_PAGE];
	static u32 csums[STASH_MD_CSUM_ENTRIES_PER_PAGE];
	static uint8_t again[STASH_MD_BLOCK_BYTES];
	struct stash_geometry g = {
		.nr_cblocks = nr_cblocks,
		.entries_per_page = STASH_MD_CSUM_ENTRIES_PER_PAGE,
		.csum = true,
	};
	u64 seq = 0, first = (u64)index * STASH_MD_CSUM_ENTRIES_PER_PAGE;
	const char *why = NULL;
	u32 i;

	if (stash_md_page_decode_geo(block, &g, index, nr_oblocks, &seq,
				     entries, csums, &why)) {
		CHECK(why != NULL);
		return;
	}
	for (i = 0; i < STASH_MD_CSUM_ENTRIES_PER_PAGE; i++) {
		u64 e = entries[i];

		if (!e || (e & STASH_MD_OPEN))
			CHECK(!csums[i]);
		if (!e)
			continue;
		CHECK(e & STASH_MD_VALID);
		CHECK(!(e & STASH_MD_CSUM_RESERVED_MASK));
		CHECK(first + i < nr_cblocks);
		CHECK((e & STASH_MD_OBLOCK_MASK) < nr_oblocks);
	}
	stash_md_page_encode_geo(again, &g, index, seq, entries, csums);
	CHECK(!memcmp(again, block, STASH_MD_BLOCK_BYTES));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t block[STASH_MD_BLOCK_BYTES];
	const uint8_t *p;
	size_t left, n;
	uint8_t sel;

	if (!size)
		return 0;
	sel = data[0];
	p = data + 1;
	left = size - 1;
	n = left < sizeof(block) ? left : sizeof(block);
	memset(block, 0, sizeof(block));
	memcpy(block, p, n);
	p += n;
	left -= n;
	if (sel & 0x80)
		fix_crc(block);

	switch (sel % 4) {
	case 0:
		fuzz_sb(block);
		break;
	case 1: {
		u32 index = (u32)take(&p, &left, 4);
		u32 nr_cblocks = (u32)take(&p, &left, 4);
		u64 nr_oblocks = take(&p, &left, 8);

		if (sel & 0x40)
			fuzz_page_csum(block, index, nr_cblocks, nr_oblocks);
		else
			fuzz_page(block, index, nr_cblocks, nr_oblocks);
		break;
	}
	case 2: {
		struct stash_geometry g;
		u64 cache_sectors, origin_sectors;
		u32 block_sectors, min_cblocks;

		p = data + 1;
		left = size - 1;
		cache_sectors = take(&p, &left, 8);
		origin_sectors = take(&p, &left, 8);
		block_sectors = (u32)take(&p, &left, 4);
		min_cblocks = (u32)take(&p, &left, 4);
		if (!stash_geometry_compute(&g, cache_sectors, origin_sectors,
					    block_sectors, min_cblocks)) {
			check_geometry(&g);
			CHECK(g.nr_cblocks >= min_cblocks);
			CHECK(g.cache_sectors == cache_sectors);
		}
		break;
	}
	default:
		fuzz_sb(block);
		fuzz_page(block, 0, 1u << 20, 1ull << 30);
		break;
	}
	return 0;
}
