// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for the on-disk format (kmod/stash-format.c, docs/format.md):
 *
 * - geometry: data_start is the first block-aligned sector after the
 *   superblocks and both copies of every metadata page, the data area fits
 *   in the cache device, nr_cblocks is the largest count that fits (one more
 *   block, with the extra metadata page it may need, would not), devices
 *   too small are refused, and the metadata takes at most 1 % of a cache of
 *   4 KiB blocks;
 * - checksums: crc32c as docs/format.md defines it (checked against a
 *   table-driven implementation and the standard check value);
 * - superblock: fields at the documented offsets, encode/decode round
 *   trips, every single-bit flip refused, and blocks re-signed after a
 *   change refused for the right reason: magic, version, flags, mode,
 *   reserved bytes, geometry that is not what the sizes give, a block size
 *   that is not a power of two or outside 8..2048;
 * - the volume identity in the superblock (name, origin path and size,
 *   options): at the documented offsets, round trips, absent (all zero)
 *   accepted, unterminated strings, bytes after the NUL and characters a
 *   field does not allow refused by the decoder and not recorded by the
 *   encoder;
 * - metadata pages: fields at the documented offsets, round trips, a page
 *   found in another page's place, single-bit flips, and entries with a
 *   reserved bit, without the valid bit, for a slot past nr_cblocks or an
 *   oblock past the origin, wherever they sit in the page;
 * - the mapping table's persistence hooks (kmod/stash-map.c): loaded
 *   entries are found, valid and idle, and off the rebuilt free list, which
 *   holds exactly the other slots in ascending order; a second load of an
 *   oblock or a slot is refused; a committed-dirty (cdirty) slot is not
 *   taken from the head of the free list (the table evicts or refuses
 *   instead) until its bit is cleared, and a committed-dirty entry is never
 *   evicted even when clean in RAM; the touched bitmap gets the page of the
 *   slot that an allocation, invalidation, freeing release or
 *   stash_map_set_valid() changed, and nothing for lookups, pins, refused
 *   allocations or releases that free nothing.
 */
#include <stdio.h>

#include "unit.h"

#include "stash-format.h"

/*
 * ---- Geometry ----
 */

static const u32 block_sizes[] = { 8, 16, 32, 64, 128, 256, 512, 1024, 2048 };
#define NR_BLOCK_SIZES (sizeof(block_sizes) / sizeof(block_sizes[0]))

/* Independent model of docs/format.md: where the data of @n slots starts. */
static u64 ref_data_start(u64 n, u32 bs)
{
	u64 pages = (n + 509) / 510;
	u64 md_end = 16 + pages * 2 * 8;

	return (md_end + bs - 1) / bs * bs;
}

/* Smallest cache device that holds @n slots of @bs sectors. */
static u64 ref_min_cache(u64 n, u32 bs)
{
	return ref_data_start(n, bs) + n * bs;
}

static bool ref_fits(u64 n, u64 cache_sectors, u32 bs)
{
	return ref_min_cache(n, bs) <= cache_sectors;
}

/* The largest slot count that fits, by brute force from above. */
static u64 ref_max_cblocks(u64 cache_sectors, u32 bs)
{
	u64 n = cache_sectors > 16 ? (cache_sectors - 16) / bs : 0;

	if (n > STASH_MAX_CBLOCKS)
		n = STASH_MAX_CBLOCKS;
	while (n && !ref_fits(n, cache_sectors, bs))
		n--;
	return n;
}

/*
 * What a computed geometry must satisfy, apart from being maximal (checked
 * on its own by check_maximal(), so that these tests stay meaningful).
 */
static void check_layout(const struct stash_geometry *g, u64 cache_sectors,
			 u64 origin_sectors, u32 bs, u32 min_cblocks)
{
	u64 md_end = STASH_MD_START + (u64)g->md_pages * 2 * STASH_MD_BLOCK_SECTORS;

	CHECK_EQ(g->cache_sectors, cache_sectors);
	CHECK_EQ(g->origin_sectors, origin_sectors);
	CHECK_EQ(g->block_sectors, bs);
	CHECK_EQ(g->md_start, 16);
	CHECK_GE(g->nr_cblocks, 1);
	CHECK_GE(g->nr_cblocks, min_cblocks);
	CHECK_LE(g->nr_cblocks, STASH_MAX_CBLOCKS);
	/* Enough pages for every slot, and no spare one. */
	CHECK_GE((u64)g->md_pages * 510, g->nr_cblocks);
	CHECK_LT((u64)(g->md_pages - 1) * 510, g->nr_cblocks);
	/* Data starts at the first block boundary after the metadata. */
	CHECK_EQ(g->data_start % bs, 0);
	CHECK_GE(g->data_start, md_end);
	CHECK_LT(g->data_start, md_end + bs);
	CHECK_EQ(g->data_start, ref_data_start(g->nr_cblocks, bs));
	/* The data fits. */
	CHECK_LE(g->data_start + (u64)g->nr_cblocks * bs, cache_sectors);
	/* Both copies of the last page end at or before data_start. */
	CHECK_LE(stash_md_page_sector(g, g->md_pages - 1, 1) + 8, g->data_start);
	CHECK_EQ(stash_md_page_sector(g, 0, 0), 16);
	CHECK_EQ(stash_md_page_sector(g, 0, 1), 24);
	CHECK_EQ(stash_md_page_sector(g, 1, 0), 32);
}

/* One more slot, with the extra metadata page it may need, would not fit. */
static void check_maximal(const struct stash_geometry *g, u64 cache_sectors,
			  u32 bs)
{
	if (g->nr_cblocks < STASH_MAX_CBLOCKS)
		CHECK(!ref_fits((u64)g->nr_cblocks + 1, cache_sectors, bs));
	CHECK_EQ(g->nr_cblocks, ref_max_cblocks(cache_sectors, bs));
}

static const u64 geometry_caches[] = {
	2048, 4096, 4104, 8192 + 7, 1ull << 20, (1ull << 21) + 12345,
	1ull << 22, 1ull << 31, (1ull << 31) - 1, 3ull << 30,
	1ull << 35, (1ull << 35) + 999, 1ull << 40, 1ull << 44,
};
#define NR_GEOMETRY_CACHES (sizeof(geometry_caches) / sizeof(geometry_caches[0]))

TEST(format_geometry_layout)
{
	for (unsigned int b = 0; b < NR_BLOCK_SIZES; b++) {
		for (unsigned int k = 0; k < NR_GEOMETRY_CACHES; k++) {
			const u32 bs = block_sizes[b];
			const u64 cache = geometry_caches[k];
			struct stash_geometry g;

			test_context("cache %llu sectors, block %u", cache, bs);
			if (!ref_fits(1, cache, bs)) {
				CHECK_EQ(stash_geometry_compute(&g, cache, 7777, bs, 1), -1);
				continue;
			}
			REQUIRE_EQ(stash_geometry_compute(&g, cache, 7777, bs, 1), 0);
			check_layout(&g, cache, 7777, bs, 1);
		}
	}
}

/*
 * Around each threshold T(n), the smallest device for n slots (every n up
 * to 1200, and n = 510k - 1, 510k, 510k + 1 for large k): the layout holds
 * at T(n) - 1, T(n) and T(n) + 1.
 */
TEST(format_geometry_layout_at_thresholds)
{
	static const u64 ks[] = { 1, 2, 3, 100, 1000, 8421504 };

	for (unsigned int b = 0; b < NR_BLOCK_SIZES; b++) {
		const u32 bs = block_sizes[b];

		for (unsigned int k = 0; k < 1200 + 3 * 6; k++) {
			u64 n = k < 1200 ? k + 1 : ks[(k - 1200) / 3] * 510 +
						    (k - 1200) % 3 - 1;
			u64 t = ref_min_cache(n, bs);

			for (u64 c = t - 1; c <= t + 1; c++) {
				struct stash_geometry g;

				test_context("block %u, n %llu, cache %llu", bs, n, c);
				if (c < t && n == 1) {
					CHECK_EQ(stash_geometry_compute(&g, c, 0, bs, 1), -1);
					continue;
				}
				REQUIRE_EQ(stash_geometry_compute(&g, c, 0, bs, 1), 0);
				check_layout(&g, c, 0, bs, 1);
			}
			if (test_failed())
				return;
		}
	}
}

/*
 * nr_cblocks is the largest count that fits (docs/format.md: "the largest
 * number of slots whose metadata and data both fit"): at every threshold
 * T(n), in a sweep of every device size up to ~2200 slots (where a larger
 * device must never get fewer slots), and at the sizes of
 * format_geometry_layout.
 */
TEST(format_geometry_maximal)
{
	static const u64 ks[] = { 1, 2, 3, 100, 1000, 8421504 };
	struct stash_geometry g;
	u64 wrong = 0;

	/* The smallest case: 509 slots fit in 4104 sectors (32 + 509 * 8). */
	test_context("cache 4104, block 8");
	REQUIRE_EQ(stash_geometry_compute(&g, 4104, 0, 8, 1), 0);
	CHECK_EQ(g.nr_cblocks, 509);
	CHECK_EQ(g.data_start, 32);

	for (unsigned int b = 0; b < NR_BLOCK_SIZES; b++) {
		const u32 bs = block_sizes[b];

		for (unsigned int k = 0; k < NR_GEOMETRY_CACHES; k++) {
			const u64 cache = geometry_caches[k];

			test_context("cache %llu sectors, block %u", cache, bs);
			if (stash_geometry_compute(&g, cache, 0, bs, 1))
				continue;
			check_maximal(&g, cache, bs);
		}
		for (unsigned int k = 0; k < 1200 + 3 * 6; k++) {
			u64 n = k < 1200 ? k + 1 : ks[(k - 1200) / 3] * 510 +
						    (k - 1200) % 3 - 1;
			u64 t = ref_min_cache(n, bs);

			test_context("block %u, cache T(%llu) = %llu", bs, n, t);
			REQUIRE_EQ(stash_geometry_compute(&g, t, 0, bs, 1), 0);
			CHECK_EQ(g.nr_cblocks, n);
			if (n > 1) {
				test_context("block %u, cache T(%llu) - 1", bs, n);
				REQUIRE_EQ(stash_geometry_compute(&g, t - 1, 0, bs, 1), 0);
				CHECK_EQ(g.nr_cblocks, n - 1);
			}
		}
	}

	for (unsigned int b = 0; b < 3; b++) {
		const u32 bs = block_sizes[b];
		u32 prev = 0;

		for (u64 cache = 0; cache <= 16 + 2200ull * bs; cache++) {
			u64 n = ref_max_cblocks(cache, bs);
			int r = stash_geometry_compute(&g, cache, 1, bs, 1);

			test_context("block %u, cache %llu: %llu slots fit", bs,
				     cache, n);
			if (!n) {
				CHECK_EQ(r, -1);
				continue;
			}
			REQUIRE_EQ(r, 0);
			check_layout(&g, cache, 1, bs, 1);
			if (g.nr_cblocks != n)
				wrong++;
			CHECK_EQ(g.nr_cblocks, n);
			CHECK_GE(g.nr_cblocks, prev);	/* monotonic in the size */
			prev = g.nr_cblocks;
			/* min_cblocks: refused below, accepted at or above. */
			r = stash_geometry_compute(&g, cache, 1, bs, 16);
			CHECK_EQ(r, n >= 16 ? 0 : -1);
		}
	}
	if (wrong)
		printf("    %llu device sizes in the sweep get fewer slots than fit\n",
		       wrong);
}

/* The slot count is capped where cblock indexes end. */
TEST(format_geometry_max_cblocks)
{
	const u64 t = ref_min_cache(STASH_MAX_CBLOCKS, 8);
	struct stash_geometry g;

	REQUIRE_EQ(stash_geometry_compute(&g, t, 0, 8, 1), 0);
	CHECK_EQ(g.nr_cblocks, STASH_MAX_CBLOCKS);
	check_layout(&g, t, 0, 8, 1);
	REQUIRE_EQ(stash_geometry_compute(&g, t - 1, 0, 8, 1), 0);
	CHECK_EQ(g.nr_cblocks, STASH_MAX_CBLOCKS - 1);
	check_layout(&g, t - 1, 0, 8, 1);

	for (unsigned int b = 0; b < NR_BLOCK_SIZES; b++) {
		const u64 caches[] = { 1ull << 50, ~0ull / 2, ~0ull };

		for (unsigned int k = 0; k < 3; k++) {
			test_context("block %u, cache %llu", block_sizes[b], caches[k]);
			REQUIRE_EQ(stash_geometry_compute(&g, caches[k], ~0ull,
							  block_sizes[b], 16), 0);
			CHECK_EQ(g.nr_cblocks, STASH_MAX_CBLOCKS);
			CHECK_EQ(g.md_pages, (STASH_MAX_CBLOCKS + 509ull) / 510);
			check_layout(&g, caches[k], ~0ull, block_sizes[b], 16);
		}
	}
}

TEST(format_geometry_too_small)
{
	struct stash_geometry g;

	for (unsigned int b = 0; b < NR_BLOCK_SIZES; b++) {
		const u32 bs = block_sizes[b];
		const u64 one = ref_min_cache(1, bs), sixteen = ref_min_cache(16, bs);

		test_context("block %u", bs);
		CHECK_EQ(stash_geometry_compute(&g, 0, 0, bs, 1), -1);
		CHECK_EQ(stash_geometry_compute(&g, 1, 0, bs, 1), -1);
		CHECK_EQ(stash_geometry_compute(&g, 16, 0, bs, 1), -1);
		CHECK_EQ(stash_geometry_compute(&g, 17, 0, bs, 1), -1);
		CHECK_EQ(stash_geometry_compute(&g, 32, 0, bs, 1), -1);
		CHECK_EQ(stash_geometry_compute(&g, one - 1, 0, bs, 1), -1);
		CHECK_EQ(stash_geometry_compute(&g, one - 1, 0, bs, 0), -1);
		CHECK_EQ(stash_geometry_compute(&g, one, 0, bs, 1), 0);
		CHECK_EQ(g.nr_cblocks, 1);
		CHECK_EQ(stash_geometry_compute(&g, sixteen - 1, 0, bs, 16), -1);
		CHECK_EQ(stash_geometry_compute(&g, sixteen, 0, bs, 16), 0);
		CHECK_EQ(g.nr_cblocks, 16);
		CHECK_EQ(stash_geometry_compute(&g, sixteen, 0, bs, 17), -1);
	}
	/* The smallest 4 KiB-block cache: 2 superblocks, 2 page copies, 1 slot. */
	CHECK_EQ(stash_geometry_compute(&g, 39, 0, 8, 1), -1);
	CHECK_EQ(stash_geometry_compute(&g, 40, 0, 8, 1), 0);
	CHECK_EQ(g.data_start, 32);
	CHECK_EQ(stash_geometry_compute(&g, 1ull << 30, 0, 0, 1), -1);
}

/* Project requirement: metadata <= 1 % of the cache with 4 KiB blocks. */
TEST(format_geometry_metadata_within_1_percent)
{
	static const u64 mib[] = {
		4, 5, 64, 100, 1024, 1024 + 3, 10 * 1024, 100 * 1024,
		1024 * 1024, 16 * 1024 * 1024, 64 * 1024 * 1024,
	};

	for (unsigned int k = 0; k < sizeof(mib) / sizeof(mib[0]); k++) {
		for (u64 extra = 0; extra < 16; extra += 5) {
			const u64 cache = mib[k] * 2048 + extra;
			struct stash_geometry g;
			u64 md;

			test_context("%llu MiB + %llu sectors", mib[k], extra);
			REQUIRE_EQ(stash_geometry_compute(&g, cache, cache, 8, 16), 0);
			check_layout(&g, cache, cache, 8, 16);
			md = g.data_start;	/* superblocks, pages, alignment */
			CHECK_LE(md * 100, cache);
			/* docs/format.md: about 16 bytes per 4 KiB block (0.39 %). */
			if (mib[k] >= 1024)
				CHECK_DBL_LE((double)md / cache, 0.004);
			/* With the unused tail: still within 1 % (below the cap). */
			if (g.nr_cblocks < STASH_MAX_CBLOCKS)
				CHECK_LE((cache - (u64)g.nr_cblocks * 8) * 100, cache);
		}
	}
}

/*
 * ---- Checksums and raw fields ----
 */

/* Table-driven CRC32C (Castagnoli, reflected), written apart from the kmod. */
static u32 ref_crc32c(const void *p, size_t len)
{
	static u32 table[256];
	const u8 *b = p;
	u32 crc = ~0u;

	if (!table[1]) {
		for (u32 i = 0; i < 256; i++) {
			u32 c = i;

			for (int k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
			table[i] = c;
		}
	}
	while (len--)
		crc = table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static u32 get_le32(const u8 *block, size_t off)
{
	return (u32)block[off] | (u32)block[off + 1] << 8 |
	       (u32)block[off + 2] << 16 | (u32)block[off + 3] << 24;
}

static u64 get_le64(const u8 *block, size_t off)
{
	return get_le32(block, off) | (u64)get_le32(block, off + 4) << 32;
}

static void put_le32(u8 *block, size_t off, u32 v)
{
	for (int i = 0; i < 4; i++)
		block[off + i] = (u8)(v >> (8 * i));
}

static void put_le64(u8 *block, size_t off, u64 v)
{
	put_le32(block, off, (u32)v);
	put_le32(block, off + 4, (u32)(v >> 32));
}

/* Store the checksum docs/format.md asks for: crc32c of bytes 4..4095. */
static void resign(u8 *block)
{
	put_le32(block, 0, ref_crc32c(block + 4, STASH_MD_BLOCK_BYTES - 4));
}

static void flip_bit(u8 *block, u32 bit)
{
	block[bit / 8] ^= (u8)(1u << (bit % 8));
}

TEST(format_crc32c_known_answer)
{
	static const char check[] = "123456789";
	static u8 zero[4096];

	/* The standard CRC-32C check value. */
	CHECK_EQ(ref_crc32c(check, 9), 0xE3069283u);
	CHECK_EQ(~stash_crc32c(~0u, check, 9), 0xE3069283u);
	/* The kernel's crc32c() can be chained: so must the userspace one. */
	CHECK_EQ(~stash_crc32c(stash_crc32c(~0u, check, 4), check + 4, 5),
		 0xE3069283u);
	CHECK_EQ(~stash_crc32c(~0u, zero, sizeof(zero)),
		 ref_crc32c(zero, sizeof(zero)));
}

/*
 * ---- Superblock ----
 */

/* Offsets of docs/format.md. */
enum {
	SB_CRC = 0, SB_MAGIC = 4, SB_VERSION = 8, SB_FLAGS = 12, SB_SEQ = 16,
	SB_UUID = 24, SB_ORIGIN = 40, SB_CACHE = 48, SB_MD_START = 56,
	SB_DATA_START = 64, SB_BLOCK = 72, SB_NR_CBLOCKS = 76,
	SB_MD_PAGES = 80, SB_MODE = 84, SB_NAME = 88, SB_ORIGIN_DEV = 216,
	SB_ORIGIN_PATH = 224, SB_OPTIONS = 736, SB_RESERVED = 992,
};

static void make_sb(struct stash_sb *sb, u64 cache, u64 origin, u32 bs,
		    u64 seq, u32 flags, u32 mode, uint64_t *rng)
{
	memset(sb, 0, sizeof(*sb));
	CHECK_EQ(stash_geometry_compute(&sb->geo, cache, origin, bs, 1), 0);
	sb->seq = seq;
	sb->flags = flags;
	sb->mode = mode;
	for (int i = 0; i < 16; i++)
		sb->uuid[i] = (u8)unit_rand(rng);
}

static void check_sb_equal(const struct stash_sb *a, const struct stash_sb *b)
{
	CHECK_EQ(a->geo.origin_sectors, b->geo.origin_sectors);
	CHECK_EQ(a->geo.cache_sectors, b->geo.cache_sectors);
	CHECK_EQ(a->geo.md_start, b->geo.md_start);
	CHECK_EQ(a->geo.data_start, b->geo.data_start);
	CHECK_EQ(a->geo.block_sectors, b->geo.block_sectors);
	CHECK_EQ(a->geo.nr_cblocks, b->geo.nr_cblocks);
	CHECK_EQ(a->geo.md_pages, b->geo.md_pages);
	CHECK_EQ(a->seq, b->seq);
	CHECK_EQ(a->flags, b->flags);
	CHECK_EQ(a->mode, b->mode);
	CHECK(!memcmp(a->uuid, b->uuid, sizeof(a->uuid)));
}

/*
 * @block must be refused: -1, a reason, and the output left alone.  With
 * @resigned, the block carries a good checksum, so the reason must be
 * something else than the checksum.
 */
static void check_sb_rejected(const u8 *block, bool resigned)
{
	struct stash_sb out, untouched;
	const char *why = NULL;

	memset(&out, 0xa5, sizeof(out));
	memcpy(&untouched, &out, sizeof(out));
	CHECK_EQ(stash_sb_decode(block, &out, &why), -1);
	CHECK(why != NULL);
	if (why) {
		CHECK(why[0] != '\0');
		if (resigned)
			CHECK(strstr(why, "checksum") == NULL);
	}
	CHECK(!memcmp(&out, &untouched, sizeof(out)));
}

static bool sb_accepted(const u8 *block, struct stash_sb *out)
{
	const char *why = NULL;
	int r = stash_sb_decode(block, out, &why);

	if (r)
		printf("    refused: %s\n", why ? why : "(no reason)");
	return r == 0;
}

TEST(format_sb_layout)
{
	uint64_t rng = 1;
	struct stash_sb sb;
	u8 block[4096];

	make_sb(&sb, (1ull << 31) + 1234, 1ull << 33, 64, 0x0102030405060708ull,
		STASH_SB_FLAG_CLEAN, 2, &rng);
	memset(block, 0xee, sizeof(block));	/* the encoder clears it all */
	stash_sb_encode(&sb, block);

	CHECK_EQ(get_le32(block, SB_CRC), ref_crc32c(block + 4, 4092));
	CHECK_EQ(get_le32(block, SB_MAGIC), 0x48535453u);
	CHECK(!memcmp(block + SB_MAGIC, "STSH", 4));
	CHECK_EQ(get_le32(block, SB_VERSION), 1);
	CHECK_EQ(get_le32(block, SB_FLAGS), 1);
	CHECK_EQ(get_le64(block, SB_SEQ), 0x0102030405060708ull);
	CHECK(!memcmp(block + SB_UUID, sb.uuid, 16));
	CHECK_EQ(get_le64(block, SB_ORIGIN), 1ull << 33);
	CHECK_EQ(get_le64(block, SB_CACHE), (1ull << 31) + 1234);
	CHECK_EQ(get_le64(block, SB_MD_START), 16);
	CHECK_EQ(get_le64(block, SB_DATA_START), sb.geo.data_start);
	CHECK_EQ(get_le32(block, SB_BLOCK), 64);
	CHECK_EQ(get_le32(block, SB_NR_CBLOCKS), sb.geo.nr_cblocks);
	CHECK_EQ(get_le32(block, SB_MD_PAGES), sb.geo.md_pages);
	CHECK_EQ(get_le32(block, SB_MODE), 2);
	for (u32 i = SB_RESERVED; i < 4096; i++)
		if (block[i])
			CHECK_EQ(i, 0);	/* reports the first non-zero byte */
}

TEST(format_sb_round_trip)
{
	static const struct { u64 cache, origin; u32 bs; } sizes[] = {
		{ 40, 8, 8 }, { 4104, 1 << 20, 8 }, { 1ull << 21, 1ull << 30, 8 },
		{ (1ull << 31) + 77, 3, 128 }, { 1ull << 40, ~0ull, 2048 },
		{ 1ull << 44, 1ull << 50, 8 },
	};
	static const u64 seqs[] = { 0, 1, 2, 0xffffffffull, 1ull << 32,
				    0x8000000000000001ull, ~0ull };
	uint64_t rng = 2;

	for (unsigned int s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (unsigned int q = 0; q < sizeof(seqs) / sizeof(seqs[0]); q++) {
			for (u32 mode = 0; mode <= 2; mode++) {
				for (u32 flags = 0; flags <= 1; flags++) {
					struct stash_sb sb, out;
					u8 block[4096], again[4096];

					test_context("size %u seq %llu mode %u flags %u",
						     s, seqs[q], mode, flags);
					make_sb(&sb, sizes[s].cache, sizes[s].origin,
						sizes[s].bs, seqs[q], flags, mode, &rng);
					stash_sb_encode(&sb, block);
					memset(&out, 0x5a, sizeof(out));
					REQUIRE(sb_accepted(block, &out));
					check_sb_equal(&out, &sb);
					stash_sb_encode(&out, again);
					CHECK(!memcmp(block, again, sizeof(block)));
				}
			}
		}
	}
}

/* The resigning helper is right: changes to free fields are accepted. */
TEST(format_sb_resign_helper)
{
	uint64_t rng = 3;
	struct stash_sb sb, out;
	u8 block[4096], ref[4096];

	make_sb(&sb, 1ull << 24, 1ull << 25, 8, 41, 0, 1, &rng);
	stash_sb_encode(&sb, ref);
	memcpy(block, ref, sizeof(block));
	put_le32(block, SB_CRC, 0);
	resign(block);
	CHECK(!memcmp(block, ref, sizeof(block)));

	put_le64(block, SB_SEQ, 12345);
	block[SB_UUID + 7] ^= 0xff;
	put_le64(block, SB_ORIGIN, 999);
	put_le32(block, SB_FLAGS, STASH_SB_FLAG_CLEAN);
	put_le32(block, SB_MODE, 2);
	resign(block);
	REQUIRE(sb_accepted(block, &out));
	CHECK_EQ(out.seq, 12345);
	CHECK_EQ(out.uuid[7], sb.uuid[7] ^ 0xff);
	CHECK_EQ(out.geo.origin_sectors, 999);
	CHECK_EQ(out.flags, STASH_SB_FLAG_CLEAN);
	CHECK_EQ(out.mode, 2);
	CHECK_EQ(out.geo.nr_cblocks, sb.geo.nr_cblocks);
}

/* Any single flipped bit is caught (magic or checksum). */
TEST(format_sb_single_bit_flips)
{
	uint64_t rng = 4;
	struct stash_sb sb, out;
	u8 block[4096];

	make_sb(&sb, 1ull << 28, 1ull << 29, 8, 77, STASH_SB_FLAG_CLEAN, 2, &rng);
	stash_sb_encode(&sb, block);
	REQUIRE(sb_accepted(block, &out));

	for (u32 bit = 0; bit < 128 * 8; bit++) {
		test_context("bit %u (byte %u)", bit, bit / 8);
		flip_bit(block, bit);
		check_sb_rejected(block, false);
		flip_bit(block, bit);
		if (test_failed())
			return;
	}
	for (int k = 0; k < 4000; k++) {
		u32 bit = 128 * 8 + (u32)unit_rand_below(&rng, (4096 - 128) * 8);

		test_context("bit %u (byte %u)", bit, bit / 8);
		flip_bit(block, bit);
		check_sb_rejected(block, false);
		flip_bit(block, bit);
		if (test_failed())
			return;
	}
	/* Two flips in the checksum itself, and a block of zeros. */
	test_context("crc");
	block[0] ^= 0x81;
	check_sb_rejected(block, false);
	block[0] ^= 0x81;
	test_context("zeros");
	memset(block, 0, sizeof(block));
	check_sb_rejected(block, false);
	resign(block);
	check_sb_rejected(block, true);
}

static void sb_block(u8 *block, uint64_t *rng)
{
	struct stash_sb sb;

	make_sb(&sb, (1ull << 30) + 4321, 1ull << 31, 16, 9, 0, 2, rng);
	stash_sb_encode(&sb, block);
}

TEST(format_sb_bad_magic_or_version)
{
	static const u32 magics[] = { 0, 0x48535454, 0x53545348, 0xffffffff,
				      0x48535453 ^ 0x80000000 };
	static const u32 versions[] = { 0, 2, 3, 0x100, 0x01000000, 0xffffffff };
	uint64_t rng = 5;
	u8 block[4096];

	for (unsigned int i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
		test_context("magic 0x%08x", magics[i]);
		sb_block(block, &rng);
		put_le32(block, SB_MAGIC, magics[i]);
		resign(block);
		check_sb_rejected(block, true);
	}
	for (unsigned int i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		test_context("version 0x%08x", versions[i]);
		sb_block(block, &rng);
		put_le32(block, SB_VERSION, versions[i]);
		resign(block);
		check_sb_rejected(block, true);
	}
}

TEST(format_sb_unknown_flags_or_mode)
{
	uint64_t rng = 6;
	u8 block[4096];

	/* Bit 0: clean shutdown, bit 1: needs check; the rest unknown. */
	for (u32 bit = 2; bit < 32; bit++) {
		for (u32 clean = 0; clean <= 1; clean++) {
			test_context("flag bit %u, clean %u", bit, clean);
			sb_block(block, &rng);
			put_le32(block, SB_FLAGS, (1u << bit) | clean);
			resign(block);
			check_sb_rejected(block, true);
		}
	}
	for (u32 mode = 3; mode < 40; mode++) {
		test_context("mode %u", mode);
		sb_block(block, &rng);
		put_le32(block, SB_MODE, mode);
		resign(block);
		check_sb_rejected(block, true);
	}
	test_context("mode ~0");
	sb_block(block, &rng);
	put_le32(block, SB_MODE, ~0u);
	resign(block);
	check_sb_rejected(block, true);
}

/* The known flags, alone and together, decode as they are. */
TEST(format_sb_known_flags)
{
	uint64_t rng = 7;
	struct stash_sb sb;
	const char *why;
	u8 block[4096];

	for (u32 flags = 0; flags <= 3; flags++) {
		test_context("flags %u", flags);
		sb_block(block, &rng);
		put_le32(block, SB_FLAGS, flags);
		resign(block);
		CHECK(stash_sb_decode(block, &sb, &why) == 0);
		CHECK(sb.flags == flags);
	}
}

/* Every reserved byte must be zero. */
TEST(format_sb_reserved_nonzero)
{
	uint64_t rng = 7;
	u8 block[4096];

	sb_block(block, &rng);
	for (u32 i = SB_RESERVED; i < 4096; i++) {
		test_context("reserved byte %u", i);
		block[i] = (u8)(1u << (i % 8));
		resign(block);
		check_sb_rejected(block, true);
		block[i] = 0;
		if (test_failed())
			return;
	}
	/* The helper was not hiding anything: the block is good again. */
	struct stash_sb out;

	resign(block);
	CHECK(sb_accepted(block, &out));
}

/*
 * ---- Volume identity ----
 */

static void make_ident(struct stash_sb_ident *id)
{
	memset(id, 0, sizeof(*id));
	id->origin_dev_sectors = 0x0123456789abcdefull;
	strcpy(id->name, "vol-1 (home)");
	strcpy(id->origin_path, "/dev/disk/by-id/nvme-Example_SSD_1234-part2");
	strcpy(id->options, "block_size 16 idle_ms 0");
}

TEST(format_sb_ident_layout_and_round_trip)
{
	struct stash_sb_ident id, out;
	uint64_t rng = 70;
	struct stash_sb sb, sbout;
	u8 block[4096], again[4096];

	make_sb(&sb, 1ull << 24, 1ull << 25, 16, 3, 0, 2, &rng);
	make_ident(&id);
	memset(block, 0xee, sizeof(block));
	stash_sb_encode_ident(&sb, &id, block);
	CHECK_EQ(get_le32(block, SB_CRC), ref_crc32c(block + 4, 4092));
	CHECK(!strcmp((const char *)block + SB_NAME, id.name));
	CHECK_EQ(get_le64(block, SB_ORIGIN_DEV), id.origin_dev_sectors);
	CHECK(!strcmp((const char *)block + SB_ORIGIN_PATH, id.origin_path));
	CHECK(!strcmp((const char *)block + SB_OPTIONS, id.options));
	for (u32 i = SB_RESERVED; i < 4096; i++)
		if (block[i])
			CHECK_EQ(i, 0);
	REQUIRE(sb_accepted(block, &sbout));
	check_sb_equal(&sbout, &sb);
	memset(&out, 0x5a, sizeof(out));
	stash_sb_decode_ident(block, &out);
	CHECK_EQ(out.origin_dev_sectors, id.origin_dev_sectors);
	CHECK(!strcmp(out.name, id.name));
	CHECK(!strcmp(out.origin_path, id.origin_path));
	CHECK(!strcmp(out.options, id.options));
	stash_sb_encode_ident(&sbout, &out, again);
	CHECK(!memcmp(block, again, sizeof(block)));

	/* Fields filled to the last byte before the NUL. */
	memset(id.name, 'n', sizeof(id.name) - 1);
	memset(id.origin_path, 'p', sizeof(id.origin_path) - 1);
	memset(id.options, 'o', sizeof(id.options) - 1);
	stash_sb_encode_ident(&sb, &id, block);
	REQUIRE(sb_accepted(block, &sbout));
	stash_sb_decode_ident(block, &out);
	CHECK_EQ(strlen(out.name), sizeof(out.name) - 1);
	CHECK_EQ(strlen(out.origin_path), sizeof(out.origin_path) - 1);
	CHECK_EQ(strlen(out.options), sizeof(out.options) - 1);

	/* Nothing recorded (stash_sb_encode): all zero, empty strings. */
	stash_sb_encode(&sb, block);
	REQUIRE(sb_accepted(block, &sbout));
	stash_sb_decode_ident(block, &out);
	CHECK_EQ(out.origin_dev_sectors, 0);
	CHECK(!out.name[0] && !out.origin_path[0] && !out.options[0]);
	for (u32 i = SB_NAME; i < 4096; i++)
		if (block[i])
			CHECK_EQ(i, 0);
}

/* Strings a field does not take are left out by the encoder. */
TEST(format_sb_ident_encoder_drops_bad_strings)
{
	static const struct { const char *name, *path, *opts; } bad[] = {
		{ "tab\there", "/dev/with space", "ctl\001" },
		{ "slash/name", "/dev/\177del", "\177" },
		{ "nl\n", "/dev/\200hi", "utf8 \303\251" },
	};
	struct stash_sb_ident id, out;
	uint64_t rng = 71;
	struct stash_sb sb, sbout;
	u8 block[4096];

	make_sb(&sb, 1ull << 24, 1ull << 25, 8, 3, 0, 1, &rng);
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		test_context("set %u", i);
		make_ident(&id);
		strcpy(id.name, bad[i].name);
		strcpy(id.origin_path, bad[i].path);
		strcpy(id.options, bad[i].opts);
		CHECK(!stash_sb_name_ok(id.name));
		CHECK(!stash_sb_path_ok(id.origin_path));
		CHECK(!stash_sb_options_ok(id.options));
		stash_sb_encode_ident(&sb, &id, block);
		REQUIRE(sb_accepted(block, &sbout));
		stash_sb_decode_ident(block, &out);
		CHECK(!out.name[0] && !out.origin_path[0] && !out.options[0]);
		CHECK_EQ(out.origin_dev_sectors, id.origin_dev_sectors);
	}
	/* Allowed: spaces and UTF-8 in names, spaces in options. */
	CHECK(stash_sb_name_ok("a b \303\251"));
	CHECK(stash_sb_options_ok("block_size 16"));
	CHECK(stash_sb_path_ok("/dev/mapper/x-y_z.1"));
	CHECK(stash_sb_path_ok(""));
}

/* The decoder refuses what the encoder never writes. */
TEST(format_sb_ident_malformed)
{
	static const struct { u32 off, len; u8 badc; } fields[] = {
		{ SB_NAME, 128, 0x1f }, { SB_ORIGIN_PATH, 512, ' ' },
		{ SB_OPTIONS, 256, 0x7f },
	};
	struct stash_sb_ident id;
	uint64_t rng = 72;
	struct stash_sb sb;
	u8 block[4096], good[4096];

	make_sb(&sb, 1ull << 24, 1ull << 25, 8, 3, 0, 1, &rng);
	make_ident(&id);
	stash_sb_encode_ident(&sb, &id, good);
	for (unsigned int f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
		u32 off = fields[f].off, len = fields[f].len;
		u32 n = (u32)strlen((const char *)good + off);

		test_context("field at %u: unterminated", off);
		memcpy(block, good, sizeof(block));
		memset(block + off + n, 'x', len - n);
		resign(block);
		check_sb_rejected(block, true);

		test_context("field at %u: byte after the NUL", off);
		memcpy(block, good, sizeof(block));
		block[off + len - 1] = 'x';
		resign(block);
		check_sb_rejected(block, true);

		test_context("field at %u: bad character", off);
		memcpy(block, good, sizeof(block));
		block[off + 1] = fields[f].badc;
		resign(block);
		check_sb_rejected(block, true);

		test_context("field at %u: empty with garbage after", off);
		memcpy(block, good, sizeof(block));
		block[off] = 0;
		resign(block);
		check_sb_rejected(block, true);
	}
	test_context("name with '/'");
	memcpy(block, good, sizeof(block));
	block[SB_NAME] = '/';
	resign(block);
	check_sb_rejected(block, true);
}

/*
 * Stored geometry that differs from what the stored sizes give: patched in
 * the block and resigned, and built by the encoder from a modified struct.
 */
TEST(format_sb_inconsistent_geometry)
{
	uint64_t rng = 8;
	struct stash_sb sb, bad;
	u8 block[4096];
	const struct { const char *what; int off, size; int64_t delta; } patches[] = {
		{ "nr_cblocks + 1", SB_NR_CBLOCKS, 4, 1 },
		{ "nr_cblocks - 1", SB_NR_CBLOCKS, 4, -1 },
		{ "md_pages + 1", SB_MD_PAGES, 4, 1 },
		{ "md_pages - 1", SB_MD_PAGES, 4, -1 },
		{ "md_start + 1", SB_MD_START, 8, 1 },
		{ "md_start - 1", SB_MD_START, 8, -1 },
		{ "md_start + 8", SB_MD_START, 8, 8 },
		{ "md_start - 16", SB_MD_START, 8, -16 },
		{ "data_start + 1", SB_DATA_START, 8, 1 },
		{ "data_start - 1", SB_DATA_START, 8, -1 },
		{ "data_start + block", SB_DATA_START, 8, 16 },
		{ "data_start - block", SB_DATA_START, 8, -16 },
		{ "block_sectors * 2", SB_BLOCK, 4, 16 },
		{ "block_sectors / 2", SB_BLOCK, 4, -8 },
		{ "block_sectors - 16", SB_BLOCK, 4, -16 },
		{ "cache_sectors - block", SB_CACHE, 8, -16 },
		{ "cache_sectors + 2 blocks", SB_CACHE, 8, 32 },
	};

	make_sb(&sb, (1ull << 30) + 4321, 1ull << 31, 16, 9, 0, 2, &rng);
	for (unsigned int i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
		test_context("%s", patches[i].what);
		stash_sb_encode(&sb, block);
		if (patches[i].size == 4)
			put_le32(block, patches[i].off,
				 get_le32(block, patches[i].off) + (u32)patches[i].delta);
		else
			put_le64(block, patches[i].off,
				 get_le64(block, patches[i].off) + (u64)patches[i].delta);
		resign(block);
		check_sb_rejected(block, true);
	}

	/* The same through the encoder. */
	test_context("encoder: nr_cblocks + 1");
	bad = sb;
	bad.geo.nr_cblocks++;
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);
	test_context("encoder: nr_cblocks - 1");
	bad = sb;
	bad.geo.nr_cblocks--;
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);
	test_context("encoder: md_start 24");
	bad = sb;
	bad.geo.md_start = 24;
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);
	test_context("encoder: md_start 0");
	bad = sb;
	bad.geo.md_start = 0;
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);
	test_context("encoder: md_start and data_start moved together");
	bad = sb;
	bad.geo.md_start += 16;
	bad.geo.data_start += 16;
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);
	test_context("encoder: data_start 0");
	bad = sb;
	bad.geo.data_start = 0;
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);
	test_context("encoder: nr_cblocks 0");
	bad = sb;
	bad.geo.nr_cblocks = 0;
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);
	test_context("encoder: block_sectors 0");
	bad = sb;
	bad.geo.block_sectors = 0;
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);
	test_context("encoder: more slots than the cache holds");
	bad = sb;
	bad.geo.cache_sectors = bad.geo.data_start +
				(u64)bad.geo.nr_cblocks * bad.geo.block_sectors - 1;
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);

	/* A device too small for any slot, with the geometry written anyway. */
	test_context("encoder: tiny cache");
	bad = sb;
	bad.geo.cache_sectors = 16;
	bad.geo.nr_cblocks = 1;
	bad.geo.md_pages = 1;
	bad.geo.data_start = 32;
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);

	/* All zero but magic, version and checksum. */
	test_context("zero geometry");
	memset(&bad, 0, sizeof(bad));
	stash_sb_encode(&bad, block);
	check_sb_rejected(block, true);
}

/* A block size that is not a power of two, with matching geometry. */
TEST(format_sb_block_size_not_power_of_two)
{
	static const u32 sizes[] = { 3, 12, 24, 48, 1000, 2047, 2049, 3072 };
	uint64_t rng = 9;

	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct stash_sb sb;
		u8 block[4096];

		test_context("block_sectors %u", sizes[i]);
		make_sb(&sb, 1ull << 30, 1ull << 30, sizes[i], 5, 0, 1, &rng);
		stash_sb_encode(&sb, block);
		check_sb_rejected(block, true);
	}
}

/*
 * docs/format.md: block_sectors is "power of two, 8..2048".  A superblock
 * with a power of two outside that range, whose geometry matches its
 * sizes, must be refused too.
 */
TEST(format_sb_block_size_outside_8_to_2048)
{
	static const u32 sizes[] = { 1, 2, 4, 4096, 8192, 1u << 20 };
	uint64_t rng = 10;

	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct stash_sb sb;
		u8 block[4096];

		test_context("block_sectors %u", sizes[i]);
		make_sb(&sb, 1ull << 32, 1ull << 32, sizes[i], 5, 0, 1, &rng);
		stash_sb_encode(&sb, block);
		check_sb_rejected(block, true);
	}
	/* The bounds themselves are fine. */
	for (u32 bs = 8; bs <= 2048; bs *= 2) {
		struct stash_sb sb, out;
		u8 block[4096];

		test_context("block_sectors %u", bs);
		make_sb(&sb, 1ull << 32, 1ull << 32, bs, 5, 0, 1, &rng);
		stash_sb_encode(&sb, block);
		CHECK(sb_accepted(block, &out));
	}
}

/*
 * ---- Metadata pages ----
 */

#define EPP STASH_MD_ENTRIES_PER_PAGE

/* Random entries: a third empty, the rest valid, half of them dirty. */
static void random_entries(u64 *entries, u64 nr_oblocks, uint64_t *rng)
{
	for (u32 i = 0; i < EPP; i++) {
		u64 r = unit_rand(rng);

		entries[i] = r % 3 ? stash_md_entry(true, r & 8,
						    unit_rand(rng) % nr_oblocks)
				   : 0;
	}
}

/*
 * @block must be refused for page @index: -1 and a reason.  With
 * @resigned, the reason must not be the checksum.
 */
static void check_page_rejected(const u8 *block, u32 index, u32 nr_cblocks,
				u64 nr_oblocks, bool resigned)
{
	u64 entries[EPP], seq = 0;
	const char *why = NULL;

	CHECK_EQ(stash_md_page_decode(block, index, nr_cblocks, nr_oblocks,
				      &seq, entries, &why), -1);
	CHECK(why != NULL);
	if (why) {
		CHECK(why[0] != '\0');
		if (resigned)
			CHECK(strstr(why, "checksum") == NULL);
	}
}

static bool page_accepted(const u8 *block, u32 index, u32 nr_cblocks,
			  u64 nr_oblocks, u64 *seq, u64 *entries)
{
	const char *why = NULL;
	int r = stash_md_page_decode(block, index, nr_cblocks, nr_oblocks,
				     seq, entries, &why);

	if (r)
		printf("    refused: %s\n", why ? why : "(no reason)");
	return r == 0;
}

TEST(format_page_layout_and_round_trip)
{
	static const struct { u32 index, nr_cblocks; u64 nr_oblocks, seq; } cases[] = {
		{ 0, EPP, 1, 1 },
		{ 0, EPP, 1000, 2 },
		{ 1, 3 * EPP, 1ull << 20, 0x123456789abcull },
		{ 7, 8 * EPP, 1ull << 48, ~0ull },
		{ 8421504, STASH_MAX_CBLOCKS, 1ull << 48, 0 },
	};
	uint64_t rng = 11;

	for (unsigned int k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		for (int rep = 0; rep < 20; rep++) {
			u64 in[EPP], out[EPP], seq = 0;
			u32 index = cases[k].index;
			u32 nr = cases[k].nr_cblocks;
			u8 block[4096];

			test_context("case %u rep %d", k, rep);
			random_entries(in, cases[k].nr_oblocks, &rng);
			/* The last page of a full-size cache is partial. */
			for (u32 i = 0; i < EPP; i++)
				if ((u64)index * EPP + i >= nr)
					in[i] = 0;
			memset(block, 0xee, sizeof(block));
			stash_md_page_encode(block, index, cases[k].seq, in);

			CHECK_EQ(get_le32(block, 0), ref_crc32c(block + 4, 4092));
			CHECK_EQ(get_le32(block, 4), index);
			CHECK_EQ(get_le64(block, 8), cases[k].seq);
			for (u32 i = 0; i < EPP; i++)
				if (get_le64(block, 16 + 8 * i) != in[i])
					CHECK_EQ(get_le64(block, 16 + 8 * i), in[i]);

			memset(out, 0xee, sizeof(out));
			REQUIRE(page_accepted(block, index, nr, cases[k].nr_oblocks,
					      &seq, out));
			CHECK_EQ(seq, cases[k].seq);
			for (u32 i = 0; i < EPP; i++)
				if (out[i] != in[i])
					CHECK_EQ(out[i], in[i]);
		}
	}
}

TEST(format_page_entry_encoding)
{
	CHECK_EQ(stash_md_entry(false, true, 5), 0);
	CHECK_EQ(stash_md_entry(true, false, 0), 1ull << 63);
	CHECK_EQ(stash_md_entry(true, true, 0), 3ull << 62);
	CHECK_EQ(stash_md_entry(true, false, (1ull << 48) - 1),
		 (1ull << 63) | ((1ull << 48) - 1));
	CHECK_EQ(STASH_MD_RESERVED_MASK, ((1ull << 62) - 1) & ~((1ull << 48) - 1));
}

TEST(format_page_wrong_index)
{
	u64 entries[EPP];
	uint64_t rng = 12;
	u8 block[4096];
	u64 seq;

	random_entries(entries, 1000, &rng);
	stash_md_page_encode(block, 3, 10, entries);
	CHECK(page_accepted(block, 3, 10 * EPP, 1000, &seq, entries));
	for (u32 other = 0; other < 10; other++) {
		if (other == 3)
			continue;
		test_context("found page 3 where page %u belongs", other);
		check_page_rejected(block, other, 10 * EPP, 1000, true);
	}
	test_context("page 3 + 2^16");
	check_page_rejected(block, 3 + (1u << 16), STASH_MAX_CBLOCKS, 1000, true);
	test_context("stored index 2^32 - 1");
	put_le32(block, 4, ~0u);
	resign(block);
	check_page_rejected(block, 3, 10 * EPP, 1000, true);
}

/*
 * stash_md_page_peek(): the stored index and sequence, whatever the rest
 * of the copy holds (recovery reads them from a damaged copy).
 */
TEST(format_page_peek)
{
	u64 entries[EPP];
	uint64_t rng = 15;
	u8 block[4096];
	u64 seq = 0;
	u32 index = 0;

	random_entries(entries, 1000, &rng);
	stash_md_page_encode(block, 7, 0x0123456789abcdefull, entries);
	stash_md_page_peek(block, &index, &seq);
	CHECK_EQ(index, 7);
	CHECK_EQ(seq, 0x0123456789abcdefull);

	/* A wrong checksum and an entry out of range change nothing. */
	block[100] ^= 0x40;
	put_le64(block, 16, ~0ull);
	check_page_rejected(block, 7, 10 * EPP, 1000, false);
	stash_md_page_peek(block, &index, &seq);
	CHECK_EQ(index, 7);
	CHECK_EQ(seq, 0x0123456789abcdefull);

	/* Raw little-endian fields at offsets 4 and 8. */
	put_le32(block, 4, 0xfedcba98u);
	put_le64(block, 8, 3);
	stash_md_page_peek(block, &index, &seq);
	CHECK_EQ(index, 0xfedcba98u);
	CHECK_EQ(seq, 3);

	memset(block, 0, sizeof(block));
	stash_md_page_peek(block, &index, &seq);
	CHECK_EQ(index, 0);
	CHECK_EQ(seq, 0);
}

TEST(format_page_single_bit_flips)
{
	u64 entries[EPP], seq;
	uint64_t rng = 13;
	u8 block[4096];

	random_entries(entries, 1ull << 48, &rng);
	stash_md_page_encode(block, 2, 99, entries);
	REQUIRE(page_accepted(block, 2, 3 * EPP, 1ull << 48, &seq, entries));

	for (u32 bit = 0; bit < 128 * 8; bit++) {
		test_context("bit %u (byte %u)", bit, bit / 8);
		flip_bit(block, bit);
		check_page_rejected(block, 2, 3 * EPP, 1ull << 48, false);
		flip_bit(block, bit);
		if (test_failed())
			return;
	}
	for (int k = 0; k < 4000; k++) {
		u32 bit = 128 * 8 + (u32)unit_rand_below(&rng, (4096 - 128) * 8);

		test_context("bit %u (byte %u)", bit, bit / 8);
		flip_bit(block, bit);
		check_page_rejected(block, 2, 3 * EPP, 1ull << 48, false);
		flip_bit(block, bit);
		if (test_failed())
			return;
	}
	test_context("all zero");
	memset(block, 0, sizeof(block));
	check_page_rejected(block, 0, 3 * EPP, 1ull << 48, false);
}

/*
 * One bad entry @e at slot @i of an otherwise good page @index (signed by
 * the encoder, which does not validate) is refused.
 */
static void check_bad_entry(u32 index, u32 i, u64 e, u32 nr_cblocks,
			    u64 nr_oblocks)
{
	u64 entries[EPP];
	u8 block[4096];

	for (u32 k = 0; k < EPP; k++)
		entries[k] = (u64)index * EPP + k < nr_cblocks && nr_oblocks ?
			     stash_md_entry(true, k & 1, k % nr_oblocks) : 0;
	entries[i] = e;
	stash_md_page_encode(block, index, 7, entries);
	check_page_rejected(block, index, nr_cblocks, nr_oblocks, true);
}

static const u32 entry_positions[] = { 0, 1, 2, 63, 64, 255, 508, 509 };
#define NR_POSITIONS (sizeof(entry_positions) / sizeof(entry_positions[0]))

TEST(format_page_entry_reserved_bits)
{
	for (unsigned int p = 0; p < NR_POSITIONS; p++) {
		for (u32 bit = 48; bit < 62; bit++) {
			u32 i = entry_positions[p];

			test_context("slot %u, bit %u", i, bit);
			check_bad_entry(1, i, STASH_MD_VALID | BIT_ULL(bit) | 5,
					4 * EPP, 100);
			check_bad_entry(1, i, STASH_MD_VALID | STASH_MD_DIRTY |
					BIT_ULL(bit), 4 * EPP, 100);
			check_bad_entry(1, i, BIT_ULL(bit), 4 * EPP, 100);
		}
	}
}

TEST(format_page_entry_without_valid_bit)
{
	static const u64 words[] = {
		STASH_MD_DIRTY, 1, 5, (1ull << 48) - 1, STASH_MD_DIRTY | 5,
		STASH_MD_DIRTY | ((1ull << 48) - 1), ~STASH_MD_VALID,
	};

	for (unsigned int p = 0; p < NR_POSITIONS; p++) {
		for (unsigned int w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
			test_context("slot %u, word 0x%llx", entry_positions[p],
				     words[w]);
			check_bad_entry(0, entry_positions[p], words[w], EPP,
					1ull << 48);
		}
	}
}

/* Slots past nr_cblocks exist only on the last page: they must be empty. */
TEST(format_page_slot_beyond_nr_cblocks)
{
	const u32 nr = 3 * EPP + 100;	/* page 3 holds slots 1530..1629 */
	u64 entries[EPP], out[EPP], seq;
	u8 block[4096];

	/* Full up to the last slot: accepted. */
	for (u32 k = 0; k < EPP; k++)
		entries[k] = k < 100 ? stash_md_entry(true, false, k) : 0;
	stash_md_page_encode(block, 3, 1, entries);
	CHECK(page_accepted(block, 3, nr, 1000, &seq, out));

	for (u32 i = 100; i < EPP; i++) {
		test_context("slot %u of page 3, nr_cblocks %u", i, nr);
		check_bad_entry(3, i, stash_md_entry(true, false, 1), nr, 1000);
		check_bad_entry(3, i, stash_md_entry(true, true, 0), nr, 1000);
	}
	/* A page wholly past the end: empty is harmless, anything else not. */
	test_context("page 4 of 4");
	memset(entries, 0, sizeof(entries));
	stash_md_page_encode(block, 4, 1, entries);
	CHECK(page_accepted(block, 4, nr, 1000, &seq, out));
	check_bad_entry(4, 0, stash_md_entry(true, false, 1), nr, 1000);
	/* The smallest cache: one slot. */
	test_context("one slot");
	check_bad_entry(0, 1, stash_md_entry(true, false, 0), 1, 1000);
	entries[0] = stash_md_entry(true, true, 999);
	stash_md_page_encode(block, 0, 1, entries);
	CHECK(page_accepted(block, 0, 1, 1000, &seq, out));
	CHECK_EQ(out[0], entries[0]);
	/* A whole last page. */
	test_context("nr_cblocks a multiple of the page");
	for (u32 k = 0; k < EPP; k++)
		entries[k] = stash_md_entry(true, false, k);
	stash_md_page_encode(block, 2, 1, entries);
	CHECK(page_accepted(block, 2, 3 * EPP, 1000, &seq, out));
	CHECK_EQ(stash_md_page_decode(block, 2, 3 * EPP - 1, 1000, &seq, out,
				      &(const char *){ NULL }), -1);
}

TEST(format_page_oblock_beyond_origin)
{
	static const u64 origins[] = { 1, 2, 1000, 1ull << 32, (1ull << 48) - 1 };
	u64 entries[EPP], out[EPP], seq;
	u8 block[4096];

	for (unsigned int o = 0; o < sizeof(origins) / sizeof(origins[0]); o++) {
		const u64 nob = origins[o];

		for (unsigned int p = 0; p < NR_POSITIONS; p++) {
			u32 i = entry_positions[p];

			test_context("%llu oblocks, slot %u", nob, i);
			check_bad_entry(0, i, stash_md_entry(true, false, nob), EPP, nob);
			check_bad_entry(0, i, stash_md_entry(true, true, nob), EPP, nob);
			check_bad_entry(0, i, stash_md_entry(true, false,
							     (1ull << 48) - 1),
					EPP, nob);
			/* The last oblock is fine. */
			memset(entries, 0, sizeof(entries));
			entries[i] = stash_md_entry(true, true, nob - 1);
			stash_md_page_encode(block, 0, 1, entries);
			CHECK(page_accepted(block, 0, EPP, nob, &seq, out));
			CHECK_EQ(out[i], entries[i]);
		}
	}
	/* An origin smaller than one block holds no oblock at all. */
	test_context("0 oblocks");
	check_bad_entry(0, 0, stash_md_entry(true, false, 0), EPP, 0);
	/* The full 48 bits. */
	test_context("2^48 oblocks");
	memset(entries, 0, sizeof(entries));
	entries[509] = stash_md_entry(true, true, (1ull << 48) - 1);
	stash_md_page_encode(block, 0, 1, entries);
	CHECK(page_accepted(block, 0, EPP, 1ull << 48, &seq, out));
	CHECK_EQ(out[509], entries[509]);
}

/*
 * ---- Mapping table: loading from disk, committed-dirty, touched pages ----
 */

#define ENTRY_STATE (SE_MAPPED | SE_VALID | SE_BUSY | SE_STALE | SE_ALLOC)

static struct stash_entry *ent(struct stash_map *m, u64 c)
{
	return stash_map_entry(m, to_cblock(c));
}

static cblock_t lookup(const struct stash_map *m, u64 ob)
{
	return stash_map_lookup(m, to_oblock(ob));
}

static int load(struct stash_map *m, u64 c, u64 ob)
{
	return stash_map_load(m, to_cblock(c), to_oblock(ob), NULL);
}

/* Promote @ob and complete the fill at once: mapped, valid, idle. */
static cblock_t fill(struct stash_map *m, u64 ob)
{
	u64 ev;
	cblock_t c = stash_map_alloc(m, to_oblock(ob), &ev);

	if (cblock_is_valid(c)) {
		stash_map_set_valid(m, c);
		stash_map_release(m, c, true);
	}
	return c;
}

/*
 * The free list holds exactly the slots not in @used (one flag per slot),
 * in ascending order, and nr_free counts them.
 */
static void check_free_list(const struct stash_map *m, const bool *used)
{
	u32 expect = 0, count = 0, i = m->free_head, prev = 0;

	for (u32 c = 0; c < m->nr_cblocks; c++)
		expect += !used[c];
	CHECK_EQ(m->nr_free, expect);
	while (i != STASH_NO_INDEX && count <= m->nr_cblocks) {
		REQUIRE_LT(i, m->nr_cblocks);
		CHECK(!used[i]);
		CHECK_EQ(m->entries[i].flags & SE_ALLOC, 0);
		if (count)
			CHECK_GT(i, prev);
		prev = i;
		count++;
		i = m->entries[i].next;
	}
	CHECK_EQ(count, expect);
	CHECK_EQ(i, STASH_NO_INDEX);
}

/* New blocks take every slot not in @used, in ascending order, no eviction. */
static void fill_free_slots(struct stash_map *m, const bool *used)
{
	u64 ev;

	for (u32 c = 0; c < m->nr_cblocks; c++) {
		if (used[c])
			continue;
		test_context("alloc into free slot %u", c);
		CHECK_EQ(stash_map_alloc(m, to_oblock(5000 + c), &ev), c);
		CHECK_EQ(ev, STASH_NO_OBLOCK);
	}
}

TEST(format_map_load_rebuild_free)
{
	static const struct { u32 c; u64 ob; } loaded[] = {
		{ 0, 1000 }, { 5, 7 }, { 6, (1ull << 48) - 1 }, { 39, 3 },
		{ 20, 0 }, { 21, 1ull << 32 }, { 22, 8 },
	};
	const u32 n = 40, nl = sizeof(loaded) / sizeof(loaded[0]);
	bool used[40] = { false };
	struct stash_map m;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, n), 0);
	for (u32 k = 0; k < nl; k++) {
		CHECK_EQ(load(&m, loaded[k].c, loaded[k].ob), 0);
		used[loaded[k].c] = true;
	}
	stash_map_rebuild_free(&m);

	for (u32 k = 0; k < nl; k++) {
		struct stash_entry *e = ent(&m, loaded[k].c);

		test_context("slot %u, oblock %llu", loaded[k].c, loaded[k].ob);
		CHECK_EQ(lookup(&m, loaded[k].ob), loaded[k].c);
		CHECK_EQ(from_oblock(stash_entry_oblock(e)), loaded[k].ob);
		/* Valid and idle: no busy, stale, referenced or writeback bit. */
		CHECK_EQ(e->flags, SE_ALLOC | SE_MAPPED | SE_VALID);
		CHECK_EQ(e->pins, 0);
	}
	test_context("free list");
	CHECK_EQ(stash_map_nr_allocated(&m), nl);
	check_free_list(&m, used);
	for (u64 ob = 1; ob < 7; ob++)
		if (ob != 3)
			CHECK_EQ(lookup(&m, ob), STASH_NO_CBLOCK);

	/* New blocks get the free slots, in ascending order, no eviction. */
	fill_free_slots(&m, used);
	CHECK_EQ(m.nr_free, 0);
	/* Then only loaded entries are evictable: they are valid and idle. */
	for (u32 k = 0; k < nl; k++) {
		cblock_t c;

		test_context("eviction %u", k);
		c = stash_map_alloc(&m, to_oblock(9000 + k), &ev);
		REQUIRE(cblock_is_valid(c));
		CHECK(used[from_cblock(c)]);
		CHECK_EQ(lookup(&m, ev), STASH_NO_CBLOCK);
		CHECK_EQ(lookup(&m, 9000 + k), c);
	}
	test_context("all busy");
	CHECK_EQ(stash_map_alloc(&m, to_oblock(1), &ev), STASH_NO_CBLOCK);
	stash_map_exit(&m);
}

TEST(format_map_load_refuses_duplicates)
{
	bool used[16] = { false };
	struct stash_map m;

	REQUIRE_EQ(stash_map_init(&m, 16), 0);
	REQUIRE_EQ(load(&m, 4, 100), 0);
	used[4] = true;

	/* The same oblock in another slot: the slot that holds it. */
	CHECK_EQ(load(&m, 9, 100), -EEXIST);
	CHECK_EQ(ent(&m, 9)->flags & ENTRY_STATE, 0);
	CHECK_EQ(lookup(&m, 100), 4);
	{
		cblock_t held = STASH_NO_CBLOCK;

		CHECK_EQ(stash_map_load(&m, to_cblock(9), to_oblock(100), &held),
			 -EEXIST);
		CHECK_EQ(from_cblock(held), 4);
	}
	/* The same slot for another oblock, and for the same one again. */
	CHECK_EQ(load(&m, 4, 200), -EINVAL);
	CHECK_EQ(load(&m, 4, 100), -EINVAL);
	CHECK_EQ(lookup(&m, 200), STASH_NO_CBLOCK);
	CHECK_EQ(lookup(&m, 100), 4);
	CHECK_EQ(from_oblock(stash_entry_oblock(ent(&m, 4))), 100);
	CHECK_EQ(ent(&m, 4)->flags, SE_ALLOC | SE_MAPPED | SE_VALID);
	/* A slot past the end. */
	CHECK_EQ(load(&m, 16, 300), -EINVAL);
	CHECK_EQ(lookup(&m, 300), STASH_NO_CBLOCK);

	/* Other slots and oblocks still load. */
	CHECK_EQ(load(&m, 9, 200), 0);
	used[9] = true;
	CHECK_EQ(load(&m, 15, 101), 0);
	used[15] = true;
	stash_map_rebuild_free(&m);
	check_free_list(&m, used);
	CHECK_EQ(lookup(&m, 100), 4);
	CHECK_EQ(lookup(&m, 200), 9);
	CHECK_EQ(lookup(&m, 101), 15);
	CHECK_EQ(stash_map_nr_allocated(&m), 3);
	stash_map_exit(&m);
}

/*
 * What recovery does when a newer page maps an oblock an older one had:
 * invalidate the old slot, load the new one.  The rebuilt free list then
 * holds the old slot once, and nothing else changed.
 */
TEST(format_map_load_after_invalidate)
{
	bool used[12] = { false };
	struct stash_map m;

	REQUIRE_EQ(stash_map_init(&m, 12), 0);
	REQUIRE_EQ(load(&m, 2, 50), 0);
	REQUIRE_EQ(load(&m, 3, 51), 0);
	CHECK(stash_map_invalidate(&m, to_cblock(2)));
	CHECK_EQ(lookup(&m, 50), STASH_NO_CBLOCK);
	REQUIRE_EQ(load(&m, 7, 50), 0);
	/* The freed slot can be loaded again too. */
	REQUIRE_EQ(load(&m, 2, 52), 0);
	CHECK(stash_map_invalidate(&m, to_cblock(2)));
	stash_map_rebuild_free(&m);
	used[3] = used[7] = true;
	check_free_list(&m, used);
	CHECK_EQ(lookup(&m, 50), 7);
	CHECK_EQ(lookup(&m, 51), 3);
	CHECK_EQ(lookup(&m, 52), STASH_NO_CBLOCK);
	stash_map_exit(&m);
}

TEST(format_map_rebuild_free_empty_and_full)
{
	bool used[1100] = { false };
	struct stash_map m;
	u64 ev;

	/* Nothing loaded: the same list as a fresh table. */
	REQUIRE_EQ(stash_map_init(&m, 1100), 0);
	stash_map_rebuild_free(&m);
	check_free_list(&m, used);
	CHECK_EQ(m.free_head, 0);
	stash_map_exit(&m);

	/* Everything loaded: no free slot; alloc evicts. */
	REQUIRE_EQ(stash_map_init(&m, 1100), 0);
	for (u32 c = 0; c < 1100; c++) {
		REQUIRE_EQ(load(&m, c, 3 * c + 1), 0);
		used[c] = true;
	}
	stash_map_rebuild_free(&m);
	check_free_list(&m, used);
	CHECK_EQ(m.free_head, STASH_NO_INDEX);
	for (u32 c = 0; c < 1100; c++)
		if (lookup(&m, 3 * c + 1) != c)
			CHECK_EQ(lookup(&m, 3 * c + 1), c);
	REQUIRE(cblock_is_valid(stash_map_alloc(&m, to_oblock(2), &ev)));
	CHECK_NE(ev, STASH_NO_OBLOCK);
	CHECK_EQ(ev % 3, 1);
	stash_map_exit(&m);
}

/* A free slot whose committed-dirty bit is set is not handed out. */
TEST(format_map_cdirty_free_head_fresh_table)
{
	struct stash_bitmap cd;
	struct stash_map m;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 4), 0);
	REQUIRE_EQ(stash_bitmap_init(&cd, 4), 0);
	stash_map_attach_cdirty(&m, &cd);

	stash_bitmap_set(&cd, 0);
	/* Slot 0 heads the free list; nothing is mapped, so nothing to evict. */
	CHECK_EQ(stash_map_alloc(&m, to_oblock(10), &ev), STASH_NO_CBLOCK);
	CHECK_EQ(ev, STASH_NO_OBLOCK);
	CHECK_EQ(lookup(&m, 10), STASH_NO_CBLOCK);
	CHECK_EQ(m.nr_free, 4);
	CHECK_EQ(m.free_head, 0);
	CHECK_EQ(ent(&m, 0)->flags, 0);

	stash_bitmap_clear(&cd, 0);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(10), &ev), 0);
	CHECK_EQ(ev, STASH_NO_OBLOCK);
	CHECK_EQ(lookup(&m, 10), 0);

	/* A committed-dirty slot further down the list: taken when it heads. */
	stash_bitmap_set(&cd, 2);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(11), &ev), 1);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(12), &ev), STASH_NO_CBLOCK);
	CHECK_EQ(m.nr_free, 2);
	stash_bitmap_clear(&cd, 2);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(12), &ev), 2);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(13), &ev), 3);
	CHECK_EQ(m.nr_free, 0);

	stash_bitmap_exit(&cd);
	stash_map_exit(&m);
}

/* With evictable entries, a committed-dirty free head means evicting. */
TEST(format_map_cdirty_free_head_evicts_instead)
{
	struct stash_bitmap cd;
	struct stash_map m;
	bool used[8] = { false };
	cblock_t c;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 8), 0);
	REQUIRE_EQ(stash_bitmap_init(&cd, 8), 0);
	stash_map_attach_cdirty(&m, &cd);
	for (u32 i = 0; i < 4; i++) {
		REQUIRE_EQ(load(&m, i, 100 + i), 0);
		used[i] = true;
	}
	stash_map_rebuild_free(&m);
	check_free_list(&m, used);
	REQUIRE_EQ(m.free_head, 4);

	stash_bitmap_set(&cd, 4);
	for (u32 k = 0; k < 3; k++) {
		test_context("eviction %u", k);
		c = stash_map_alloc(&m, to_oblock(200 + k), &ev);
		REQUIRE(cblock_is_valid(c));
		CHECK_LT(from_cblock(c), 4);
		CHECK_EQ(ev, 100 + from_cblock(c));
		CHECK_EQ(lookup(&m, ev), STASH_NO_CBLOCK);
		CHECK_EQ(m.nr_free, 4);
		CHECK_EQ(m.free_head, 4);
		CHECK_EQ(ent(&m, 4)->flags, 0);
		/* The new entry is busy: not a candidate again. */
	}
	/* The last loaded entry: committed dirty too, so nothing qualifies. */
	for (u32 i = 0; i < 4; i++)
		if (ent(&m, i)->flags == (SE_ALLOC | SE_MAPPED | SE_VALID))
			stash_bitmap_set(&cd, i);
	test_context("nothing evictable");
	CHECK_EQ(stash_map_alloc(&m, to_oblock(300), &ev), STASH_NO_CBLOCK);
	CHECK_EQ(ev, STASH_NO_OBLOCK);
	CHECK_EQ(m.nr_free, 4);

	/* A commit recorded slot 4 clean or empty: it is free for use. */
	test_context("after the commit");
	stash_bitmap_clear(&cd, 4);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(300), &ev), 4);
	CHECK_EQ(ev, STASH_NO_OBLOCK);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(301), &ev), 5);
	CHECK_EQ(m.nr_free, 2);

	stash_bitmap_exit(&cd);
	stash_map_exit(&m);
}

/*
 * The case the bit exists for: a dirty block is invalidated (its RAM dirty
 * bit cleared) and its slot freed before a commit records that.  Until
 * then the slot must not take another block.
 */
TEST(format_map_cdirty_invalidated_dirty_slot)
{
	struct stash_bitmap cd, dirty;
	struct stash_map m;
	cblock_t c;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 4), 0);
	REQUIRE_EQ(stash_bitmap_init(&cd, 4), 0);
	REQUIRE_EQ(stash_bitmap_init(&dirty, 4), 0);
	stash_map_attach_cdirty(&m, &cd);
	stash_map_attach_dirty(&m, &dirty);
	for (u64 i = 0; i < 4; i++)
		REQUIRE_EQ(fill(&m, 10 + i), i);
	stash_bitmap_set(&dirty, 2);
	stash_bitmap_set(&cd, 2);		/* committed as dirty */

	stash_bitmap_clear(&dirty, 2);
	CHECK(stash_map_invalidate(&m, to_cblock(2)));
	REQUIRE_EQ(m.free_head, 2);
	REQUIRE_EQ(m.nr_free, 1);

	c = stash_map_alloc(&m, to_oblock(20), &ev);
	REQUIRE(cblock_is_valid(c));
	CHECK_NE(c, 2);
	CHECK_EQ(ev, 10 + from_cblock(c));
	CHECK_EQ(m.nr_free, 1);
	CHECK_EQ(m.free_head, 2);

	stash_bitmap_clear(&cd, 2);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(21), &ev), 2);
	CHECK_EQ(ev, STASH_NO_OBLOCK);
	CHECK_EQ(m.nr_free, 0);

	stash_bitmap_exit(&dirty);
	stash_bitmap_exit(&cd);
	stash_map_exit(&m);
}

/* Only the committed-dirty bit holds back a free slot, not the RAM one. */
TEST(format_map_ram_dirty_free_slot_is_used)
{
	struct stash_bitmap cd, dirty;
	struct stash_map m;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, 4), 0);
	REQUIRE_EQ(stash_bitmap_init(&cd, 4), 0);
	REQUIRE_EQ(stash_bitmap_init(&dirty, 4), 0);
	stash_map_attach_cdirty(&m, &cd);
	stash_map_attach_dirty(&m, &dirty);
	stash_bitmap_set(&dirty, 0);
	CHECK_EQ(stash_map_alloc(&m, to_oblock(1), &ev), 0);
	CHECK_EQ(ev, STASH_NO_OBLOCK);
	stash_bitmap_exit(&dirty);
	stash_bitmap_exit(&cd);
	stash_map_exit(&m);
}

/*
 * An entry whose committed-dirty bit is set is never evicted, even when
 * clean in RAM, referenced or not, loaded or filled; randomized.
 */
TEST(format_map_cdirty_entry_never_evicted)
{
	const u32 n = 64;
	struct stash_bitmap cd, dirty;
	uint64_t rng = 14;
	struct stash_map m;
	u64 owner[64];
	u64 ev, next_ob = 1000;
	u32 evictions = 0, refusals = 0;

	REQUIRE_EQ(stash_map_init(&m, n), 0);
	REQUIRE_EQ(stash_bitmap_init(&cd, n), 0);
	REQUIRE_EQ(stash_bitmap_init(&dirty, n), 0);
	stash_map_attach_cdirty(&m, &cd);
	stash_map_attach_dirty(&m, &dirty);
	for (u32 c = 0; c < n; c++) {
		owner[c] = 7 * c + 3;
		REQUIRE_EQ(load(&m, c, owner[c]), 0);
		if (c % 3 == 0)
			stash_bitmap_set(&cd, c);
	}
	stash_map_rebuild_free(&m);
	REQUIRE_EQ(m.nr_free, 0);

	for (int step = 0; step < 20000; step++) {
		u32 r = (u32)unit_rand_below(&rng, 100);
		u32 c = (u32)unit_rand_below(&rng, n);
		cblock_t got;

		test_context("step %d", step);
		if (r < 1) {			/* everything recorded dirty */
			for (u32 i = 0; i < n; i++)
				stash_bitmap_set(&cd, i);
			continue;
		}
		if (r < 10) {			/* a commit changes the bits */
			if (stash_bitmap_test(&cd, c)) {
				stash_bitmap_clear(&cd, c);
				stash_map_note_reusable(&m);
			} else {
				stash_bitmap_set(&cd, c);
			}
			continue;
		}
		if (r < 20) {			/* a read hit */
			stash_map_ref(&m, to_cblock(c));
			continue;
		}
		got = stash_map_alloc(&m, to_oblock(next_ob), &ev);
		if (!cblock_is_valid(got)) {
			refusals++;
			/* Then every mapped slot is committed dirty (or busy). */
			for (u32 i = 0; i < n; i++)
				if (!stash_bitmap_test(&cd, i))
					CHECK_NE(ent(&m, i)->flags & ENTRY_STATE,
						 SE_ALLOC | SE_MAPPED | SE_VALID);
			continue;
		}
		evictions++;
		c = (u32)from_cblock(got);
		CHECK(!stash_bitmap_test(&cd, c));
		CHECK_EQ(ev, owner[c]);
		owner[c] = next_ob++;
		stash_map_set_valid(&m, got);
		stash_map_release(&m, got, true);
		/* Every committed-dirty slot still holds its block. */
		for (u32 i = 0; i < n; i++)
			if (lookup(&m, owner[i]) != i)
				CHECK_EQ(lookup(&m, owner[i]), i);
		if (test_failed())
			break;
	}
	CHECK_GT(evictions, 1000);
	CHECK_GT(refusals, 100);

	/* All committed dirty: nothing evictable, however often asked. */
	test_context("all committed dirty");
	for (u32 c = 0; c < n; c++)
		stash_bitmap_set(&cd, c);
	for (int k = 0; k < 3; k++)
		CHECK_EQ(stash_map_alloc(&m, to_oblock(1), &ev), STASH_NO_CBLOCK);
	stash_bitmap_exit(&dirty);
	stash_bitmap_exit(&cd);
	stash_map_exit(&m);
}

/*
 * The touched bitmap: exactly page @page (or nothing, for -1) is marked;
 * then it is cleared for the next step.
 */
static void check_touched(struct stash_bitmap *t, int page)
{
	if (page < 0) {
		CHECK_EQ(t->nr_set, 0);
		CHECK_EQ(stash_bitmap_next(t, 0), t->nr_bits);
	} else {
		CHECK_EQ(t->nr_set, 1);
		CHECK_EQ(stash_bitmap_next(t, 0), (u32)page);
	}
	stash_bitmap_zero(t);
}

static int page_of(const struct stash_map *m, u64 c)
{
	return (int)(c / m->entries_per_page);
}

/*
 * Which metadata page each map operation marks as changed, with small
 * pages (8 slots) so that every operation can be aimed at its own page.
 */
TEST(format_map_touched_pages)
{
	const u32 epp = 8, n = 3 * epp + 5;	/* pages 0..3, the last partial */
	struct stash_bitmap t;
	struct stash_map m;
	cblock_t c;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, n), 0);
	REQUIRE_EQ(stash_bitmap_init(&t, 4), 0);
	stash_map_attach_pages(&m, &t, epp);

	/* Allocation from the free list: the slot's page. */
	for (u32 i = 0; i < n; i++) {
		test_context("alloc of slot %u", i);
		c = stash_map_alloc(&m, to_oblock(100 + i), &ev);
		REQUIRE_EQ(c, i);
		check_touched(&t, page_of(&m, i));
		/* Lookups change nothing. */
		CHECK_EQ(lookup(&m, 100 + i), i);
		CHECK_EQ(lookup(&m, 99), STASH_NO_CBLOCK);
		check_touched(&t, -1);
		/* Becoming valid: the page. */
		stash_map_set_valid(&m, c);
		check_touched(&t, page_of(&m, i));
		/* The end of the fill: nothing to record. */
		CHECK(!stash_map_release(&m, c, true));
		check_touched(&t, -1);
	}

	/* Eviction: victim and new block share the slot, so one page. */
	test_context("eviction in page 2");
	m.clock_hand = 2 * epp + 1;
	c = stash_map_alloc(&m, to_oblock(500), &ev);
	REQUIRE_EQ(c, 2 * epp + 1);
	CHECK_EQ(ev, 100 + 2 * epp + 1);
	check_touched(&t, 2);
	stash_map_set_valid(&m, c);
	stash_map_release(&m, c, true);
	stash_bitmap_zero(&t);

	/* A refused allocation changes nothing (the clock may clear refs). */
	test_context("refused alloc");
	for (u32 i = 0; i < n; i++) {
		ent(&m, i)->flags |= SE_BUSY;
		if (i & 1)
			stash_map_ref(&m, to_cblock(i));
	}
	CHECK_EQ(stash_map_alloc(&m, to_oblock(501), &ev), STASH_NO_CBLOCK);
	check_touched(&t, -1);
	for (u32 i = 0; i < n; i++) {
		ent(&m, i)->flags &= ~SE_BUSY;
		clear_bit(i, m.refs);
	}

	/* Pins come and go without a trace. */
	test_context("pins");
	ent(&m, 5)->pins = 2;
	CHECK(!stash_map_release(&m, to_cblock(5), false));
	CHECK(!stash_map_release(&m, to_cblock(5), false));
	CHECK_EQ(ent(&m, 5)->pins, 0);
	check_touched(&t, -1);

	/* Invalidating an idle entry frees it: its page. */
	test_context("invalidate idle slot 13");
	CHECK(stash_map_invalidate(&m, to_cblock(13)));
	check_touched(&t, 1);
	/* Invalidating a free slot does nothing. */
	test_context("invalidate free slot 13");
	CHECK(!stash_map_invalidate(&m, to_cblock(13)));
	check_touched(&t, -1);

	/* Invalidating a busy entry unmaps it now: its page; freed later. */
	test_context("invalidate busy slot 22");
	ent(&m, 22)->flags |= SE_BUSY;
	CHECK(!stash_map_invalidate(&m, to_cblock(22)));
	check_touched(&t, 2);
	test_context("invalidate stale slot 22 again");
	CHECK(!stash_map_invalidate(&m, to_cblock(22)));
	check_touched(&t, -1);
	test_context("release frees slot 22");
	CHECK(stash_map_release(&m, to_cblock(22), true));
	check_touched(&t, 2);

	/* The same with a pinned entry in the last, partial page. */
	test_context("invalidate pinned slot %u", n - 1);
	ent(&m, n - 1)->pins = 2;
	CHECK(!stash_map_invalidate(&m, to_cblock(n - 1)));
	check_touched(&t, 3);
	CHECK(!stash_map_release(&m, to_cblock(n - 1), false));
	check_touched(&t, -1);
	CHECK(stash_map_release(&m, to_cblock(n - 1), false));
	check_touched(&t, 3);

	/* Slots at page edges. */
	for (u32 i = epp - 1; i <= epp; i++) {
		test_context("invalidate slot %u", i);
		CHECK(stash_map_invalidate(&m, to_cblock(i)));
		check_touched(&t, page_of(&m, i));
	}
	/* Freed slots come back from the free list: their pages. */
	test_context("realloc");
	c = stash_map_alloc(&m, to_oblock(600), &ev);
	REQUIRE(cblock_is_valid(c));
	CHECK_EQ(ev, STASH_NO_OBLOCK);
	check_touched(&t, page_of(&m, from_cblock(c)));

	/* Set valid on the last slot of the last page. */
	test_context("set_valid of the last slot");
	stash_map_set_valid(&m, to_cblock(n - 1));
	check_touched(&t, 3);

	stash_bitmap_exit(&t);
	stash_map_exit(&m);
}

/* The real page size: slot c is in page c / 510. */
TEST(format_map_touched_real_pages)
{
	const u32 n = 3 * EPP - 7;
	struct stash_bitmap t;
	struct stash_map m;
	u64 ev;

	REQUIRE_EQ(stash_map_init(&m, n), 0);
	REQUIRE_EQ(stash_bitmap_init(&t, 3), 0);
	stash_map_attach_pages(&m, &t, EPP);
	for (u32 i = 0; i < n; i++) {
		cblock_t c = stash_map_alloc(&m, to_oblock(i), &ev);

		test_context("slot %u", i);
		REQUIRE_EQ(c, i);
		check_touched(&t, (int)(i / EPP));
		stash_map_set_valid(&m, c);
		check_touched(&t, (int)(i / EPP));
		stash_map_release(&m, c, true);
		check_touched(&t, -1);
		if (test_failed())
			return;
	}
	for (u32 i = EPP - 2; i < EPP + 2; i++) {
		test_context("invalidate slot %u", i);
		CHECK(stash_map_invalidate(&m, to_cblock(i)));
		check_touched(&t, (int)(i / EPP));
	}
	/* Many changes in one page mark it once. */
	test_context("a whole page");
	for (u32 i = 2 * EPP; i < n; i++)
		CHECK(stash_map_invalidate(&m, to_cblock(i)));
	check_touched(&t, 2);
	stash_bitmap_exit(&t);
	stash_map_exit(&m);
}

/* stash_sb_classify() tells blank, foreign, damaged, other version, valid. */
TEST(format_sb_classify)
{
	uint64_t rng = 77;
	struct stash_sb sb, out;
	const char *why;
	u8 block[4096], b[4096];

	make_sb(&sb, 1ull << 24, 1ull << 25, 8, 9, 0, 2, &rng);
	stash_sb_encode(&sb, block);

	why = NULL;
	CHECK_EQ(stash_sb_classify(block, &out, &why), STASH_SB_VALID);
	check_sb_equal(&out, &sb);

	memset(b, 0, sizeof(b));
	CHECK_EQ(stash_sb_classify(b, &out, &why), STASH_SB_BLANK);
	CHECK(why && strstr(why, "zero"));

	memcpy(b, block, sizeof(b));
	put_le32(b, SB_MAGIC, 0x12345678);
	resign(b);
	CHECK_EQ(stash_sb_classify(b, &out, &why), STASH_SB_FOREIGN);

	/* A flip outside the magic and the checksum: damaged. */
	for (u32 bit = 8 * 8; bit < 4096 * 8; bit += 997) {
		memcpy(b, block, sizeof(b));
		flip_bit(b, bit);
		test_context("bit %u", bit);
		CHECK_EQ(stash_sb_classify(b, &out, &why), STASH_SB_BAD_CRC);
		CHECK(why && strstr(why, "checksum"));
	}

	memcpy(b, block, sizeof(b));
	put_le32(b, SB_VERSION, 3);
	resign(b);
	CHECK_EQ(stash_sb_classify(b, &out, &why), STASH_SB_VERSION);

	memcpy(b, block, sizeof(b));
	put_le32(b, SB_NR_CBLOCKS, get_le32(b, SB_NR_CBLOCKS) + 1);
	resign(b);
	CHECK_EQ(stash_sb_classify(b, &out, &why), STASH_SB_INVALID);
	memcpy(b, block, sizeof(b));
	b[SB_RESERVED + 5] = 1;
	resign(b);
	CHECK_EQ(stash_sb_classify(b, &out, &why), STASH_SB_INVALID);
}

/*
 * ---- Format version 2: checksums beside the entries ----
 */

#define EPP2 STASH_MD_CSUM_ENTRIES_PER_PAGE

/* Version 2 geometry: 340 entries a page, so more pages for the slots. */
TEST(format_csum_geometry)
{
	struct stash_geometry g1, g2;
	const u64 caches[] = { 4104, 1ull << 20, 1ull << 21, (1ull << 30) + 17 };

	for (size_t k = 0; k < sizeof(caches) / sizeof(caches[0]); k++) {
		test_context("cache %llu sectors", (unsigned long long)caches[k]);
		REQUIRE_EQ(stash_geometry_compute(&g1, caches[k], 0, 8, 1), 0);
		REQUIRE_EQ(stash_geometry_compute_csum(&g2, caches[k], 0, 8, 1,
						       true), 0);
		CHECK_EQ(g1.entries_per_page, 510);
		CHECK(!g1.csum);
		CHECK_EQ(g2.entries_per_page, 340);
		CHECK(g2.csum);
		CHECK_EQ(g2.md_pages, (g2.nr_cblocks + 339) / 340);
		CHECK(g2.nr_cblocks <= g1.nr_cblocks);
		CHECK(g2.data_start + (u64)g2.nr_cblocks * 8 <= caches[k]);
		/* The largest: one more slot would not fit. */
		struct stash_geometry g3;

		if (!stash_geometry_compute_csum(&g3, caches[k] + 8, 0, 8, 1, true))
			CHECK(g3.nr_cblocks >= g2.nr_cblocks);
	}
}

/* A version 2 superblock decodes with checksums; version 3 is refused. */
TEST(format_csum_superblock)
{
	struct stash_sb sb, out;
	const char *why = NULL;
	u8 block[4096];

	memset(&sb, 0, sizeof(sb));
	REQUIRE_EQ(stash_geometry_compute_csum(&sb.geo, 1 << 20, 1 << 22, 8, 1,
					       true), 0);
	sb.seq = 5;
	stash_sb_encode(&sb, block);
	CHECK_EQ(get_le32(block, 8), 2);
	REQUIRE_EQ(stash_sb_decode(block, &out, &why), 0);
	CHECK(out.geo.csum);
	CHECK_EQ(out.geo.entries_per_page, 340);
	CHECK_EQ(out.geo.nr_cblocks, sb.geo.nr_cblocks);
	/* Version 1 sizes under a version 2 stamp: the geometry is wrong. */
	REQUIRE_EQ(stash_geometry_compute(&sb.geo, 1 << 20, 1 << 22, 8, 1), 0);
	stash_sb_encode(&sb, block);
	put_le32(block, 8, 2);
	resign(block);
	CHECK_EQ(stash_sb_decode(block, &out, &why), -1);
	put_le32(block, 8, 3);
	resign(block);
	CHECK_EQ(stash_sb_classify(block, &out, &why), STASH_SB_VERSION);
}

/* Entries, open bits and checksums survive a version 2 page round trip. */
TEST(format_csum_page_roundtrip)
{
	struct stash_geometry g;
	u64 in[EPP2], out[EPP2], seq;
	u32 crc_in[EPP2], crc_out[EPP2];
	const char *why = NULL;
	uint64_t rng = 77;
	u8 block[4096];

	REQUIRE_EQ(stash_geometry_compute_csum(&g, 1ull << 24, 1ull << 30, 8, 1,
					       true), 0);
	for (u32 i = 0; i < EPP2; i++) {
		u64 r = unit_rand(&rng);

		in[i] = r % 3 ? stash_md_entry(true, r & 4, r % 100000) : 0;
		if (in[i] && r % 5 == 0)
			in[i] |= STASH_MD_OPEN;
		crc_in[i] = (u32)unit_rand(&rng);
	}
	stash_md_page_encode_geo(block, &g, 2, 9, in, crc_in);
	REQUIRE_EQ(stash_md_page_decode_geo(block, &g, 2, 1ull << 27, &seq, out,
					    crc_out, &why), 0);
	CHECK_EQ(seq, 9);
	for (u32 i = 0; i < EPP2; i++) {
		test_context("slot %u", i);
		CHECK_EQ(out[i], in[i]);
		/* Open and empty entries store no checksum. */
		CHECK_EQ(crc_out[i], in[i] && !(in[i] & STASH_MD_OPEN) ?
			 crc_in[i] : 0);
	}
}

/* What a version 2 page must not hold. */
TEST(format_csum_page_rejects)
{
	struct stash_geometry g, g1;
	u64 entries[EPP2], out[EPP], seq;
	u32 crcs[EPP2] = { 0 }, crc_out[EPP];
	const char *why = NULL;
	u8 block[4096];

	REQUIRE_EQ(stash_geometry_compute_csum(&g, 1ull << 24, 1ull << 30, 8, 1,
					       true), 0);
	REQUIRE_EQ(stash_geometry_compute(&g1, 1ull << 24, 1ull << 30, 8, 1), 0);
	memset(entries, 0, sizeof(entries));
	entries[3] = stash_md_entry(true, true, 42);
	crcs[3] = 0x12345678;
	stash_md_page_encode_geo(block, &g, 0, 1, entries, crcs);
	REQUIRE_EQ(stash_md_page_decode_geo(block, &g, 0, 1000, &seq, out,
					    crc_out, &why), 0);
	CHECK_EQ(crc_out[3], 0x12345678);

	test_context("a checksum on an empty slot");
	put_le32(block, 16 + 8 * EPP2 + 4 * 4, 1);
	resign(block);
	CHECK_EQ(stash_md_page_decode_geo(block, &g, 0, 1000, &seq, out, crc_out,
					  &why), -1);

	test_context("a checksum on an open slot");
	entries[3] |= STASH_MD_OPEN;
	stash_md_page_encode_geo(block, &g, 0, 1, entries, crcs);
	put_le32(block, 16 + 8 * EPP2 + 4 * 3, 7);
	resign(block);
	CHECK_EQ(stash_md_page_decode_geo(block, &g, 0, 1000, &seq, out, crc_out,
					  &why), -1);

	test_context("the open bit on a version 1 page");
	memset(out, 0, sizeof(out));
	out[3] = stash_md_entry(true, true, 42) | STASH_MD_OPEN;
	stash_md_page_encode(block, 0, 1, out);
	CHECK_EQ(stash_md_page_decode_geo(block, &g1, 0, 1000, &seq, out,
					  crc_out, &why), -1);

	test_context("a slot beyond nr_cblocks (340 a page)");
	memset(entries, 0, sizeof(entries));
	entries[EPP2 - 1] = stash_md_entry(true, false, 1);
	stash_md_page_encode_geo(block, &g, g.md_pages - 1, 1, entries, crcs);
	CHECK_EQ(stash_md_page_decode_geo(block, &g, g.md_pages - 1, 1000, &seq,
					  out, crc_out, &why),
		 (u64)(g.md_pages - 1) * EPP2 + EPP2 - 1 < g.nr_cblocks ? 0 : -1);
}
