// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests for the on-disk format (kmod/stash-format.c, docs/format.md):
 *
 * - geometry: data_start is the first block-aligned sector after the
 *   superblocks and both copies of every metadata page, the data area fits
 *   in the cache device, nr_cblocks is the largest count that fits (one more
 *   block, with the extra metadata page it may need, would not), devices
 *   too small are refused, and the metadata takes at most 1 % of a cache of
 *   4 KiB blocks.
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
