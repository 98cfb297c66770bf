// SPDX-License-Identifier: GPL-2.0
/*
 * Seed corpus of fuzz-metadata: a valid superblock, a valid metadata page
 * with clean and dirty entries, and a few geometries, each with the
 * selector byte fuzz-metadata.c expects.
 *
 *   gen-seeds DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stash-format.h"

static void put(const char *dir, const char *name, unsigned char sel,
		const void *data, size_t len, const void *tail, size_t tlen)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fputc(sel, f) == EOF || fwrite(data, 1, len, f) != len ||
	    (tlen && fwrite(tail, 1, tlen, f) != tlen) || fclose(f)) {
		perror(path);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static unsigned char block[STASH_MD_BLOCK_BYTES];
	static u64 entries[STASH_MD_ENTRIES_PER_PAGE];
	struct {
		u32 index, nr_cblocks;
		u64 nr_oblocks;
	} __attribute__((packed)) pargs = { 0, 4000, 16384 };
	struct {
		u64 cache, origin;
		u32 bs, min;
	} __attribute__((packed)) geo[] = {
		{ 32768, 131072, 8, 16 }, { 1ull << 31, 1ull << 40, 2048, 16 },
		{ 200, 1000, 8, 1 }, { 16, 16, 8, 1 },
	};
	struct stash_sb sb = { .seq = 42, .flags = STASH_SB_FLAG_CLEAN, .mode = 2 };
	struct stash_sb_ident ident = {
		.origin_dev_sectors = 131072,
		.name = "vol0",
		.origin_path = "/dev/disk/by-id/ata-EXAMPLE_1234-part1",
		.options = "block_size 16 idle_ms 0",
	};
	char name[32];
	unsigned int i;

	if (argc != 2) {
		fprintf(stderr, "usage: gen-seeds DIR\n");
		return 2;
	}
	if (stash_geometry_compute(&sb.geo, 32768, 131072, 8, 16))
		return 1;
	memcpy(sb.uuid, "0123456789abcdef", 16);
	stash_sb_encode(&sb, block);
	put(argv[1], "sb", 0, block, sizeof(block), NULL, 0);
	put(argv[1], "sb-fixcrc", 0x80, block, sizeof(block), NULL, 0);
	put(argv[1], "sb-both", 3, block, sizeof(block), NULL, 0);
	stash_sb_encode_ident(&sb, &ident, block);
	put(argv[1], "sb-ident", 0, block, sizeof(block), NULL, 0);
	put(argv[1], "sb-ident-fixcrc", 0x80, block, sizeof(block), NULL, 0);

	for (i = 0; i < STASH_MD_ENTRIES_PER_PAGE; i += 3)
		entries[i] = stash_md_entry(true, i % 2, i * 7);
	stash_md_page_encode(block, 0, 41, entries);
	put(argv[1], "page", 1, block, sizeof(block), &pargs, sizeof(pargs));
	put(argv[1], "page-fixcrc", 0x81, block, sizeof(block), &pargs, sizeof(pargs));
	put(argv[1], "page-both", 3, block, sizeof(block), NULL, 0);

	for (i = 0; i < sizeof(geo) / sizeof(geo[0]); i++) {
		snprintf(name, sizeof(name), "geometry-%u", i);
		put(argv[1], name, 2, &geo[i], sizeof(geo[i]), NULL, 0);
	}
	return 0;
}
