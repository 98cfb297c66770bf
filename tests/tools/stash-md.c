// SPDX-License-Identifier: GPL-2.0
/*
 * stash-md: look at and damage the metadata of a dm-stash cache device,
 * with the module's own decoder (kmod/stash-format.c built for userspace).
 * For the corruption tests (tests/cases/54-*).
 *
 *   stash-md show DEV
 *	both superblock copies and both copies of every metadata page: valid
 *	or why not, sequence, entries; then "newest-sb <k>" and, per page,
 *	"newest-page <p> <k>" (the copy recovery would take, or -1)
 *   stash-md forge-sb DEV COPY FIELD VALUE
 *	set one field of superblock copy COPY (0 or 1) and fix the checksum:
 *	FIELD is magic, version, flags, seq, origin_sectors, cache_sectors,
 *	md_start, data_start, block_sectors, nr_cblocks, md_pages, mode or
 *	reserved (the first reserved byte)
 *   stash-md forge-page DEV PAGE COPY FIELD VALUE
 *	set a field of a page copy and fix the checksum: index, seq, or
 *	entry<N> (slot N of the page, VALUE the raw 64-bit word)
 *
 * All I/O is O_DIRECT (the page cache of a device under dm is stale).
 * Offsets: superblock copy k at sector 8k; page p copy k at
 * md_start + (2p + k) * 8 (geometry from the newest valid superblock).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stash-format.h"

static void fatal(const char *fmt, const char *arg)
{
	fprintf(stderr, "stash-md: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(2);
}

static void rd(int fd, void *buf, uint64_t sector)
{
	if (pread(fd, buf, STASH_MD_BLOCK_BYTES, (off_t)(sector * 512)) !=
	    STASH_MD_BLOCK_BYTES)
		fatal("read failed: %s", strerror(errno));
}

static void wr(int fd, const void *buf, uint64_t sector)
{
	if (pwrite(fd, buf, STASH_MD_BLOCK_BYTES, (off_t)(sector * 512)) !=
	    STASH_MD_BLOCK_BYTES || fsync(fd))
		fatal("write failed: %s", strerror(errno));
}

static void fix_crc(void *block)
{
	uint32_t crc = ~stash_crc32c(~0u, (const uint8_t *)block + 4,
				     STASH_MD_BLOCK_BYTES - 4);

	crc = htole32(crc);
	memcpy(block, &crc, 4);
}

/* The newest valid superblock; returns its copy number or -1. */
static int newest_sb(int fd, struct stash_sb *out, int verbose)
{
	static uint8_t buf[STASH_MD_BLOCK_BYTES] __attribute__((aligned(4096)));
	struct stash_sb sb;
	const char *why;
	int k, best = -1;

	for (k = 0; k < 2; k++) {
		rd(fd, buf, (uint64_t)k * STASH_MD_BLOCK_SECTORS);
		why = "";
		if (stash_sb_decode(buf, &sb, &why)) {
			if (verbose)
				printf("sb %d invalid: %s\n", k, why);
			continue;
		}
		if (verbose)
			printf("sb %d valid seq=%llu flags=%u mode=%u origin_sectors=%llu cache_sectors=%llu block_sectors=%u nr_cblocks=%u md_pages=%u data_start=%llu\n",
			       k, (unsigned long long)sb.seq, sb.flags, sb.mode,
			       (unsigned long long)sb.geo.origin_sectors,
			       (unsigned long long)sb.geo.cache_sectors,
			       sb.geo.block_sectors, sb.geo.nr_cblocks,
			       sb.geo.md_pages, (unsigned long long)sb.geo.data_start);
		if (best < 0 || sb.seq > out->seq) {
			*out = sb;
			best = k;
		}
	}
	return best;
}

static int show(int fd)
{
	static uint8_t buf[STASH_MD_BLOCK_BYTES] __attribute__((aligned(4096)));
	static u64 entries[STASH_MD_ENTRIES_PER_PAGE];
	struct stash_sb sb;
	uint32_t p, i;
	int k, sbk;

	sbk = newest_sb(fd, &sb, 1);
	printf("newest-sb %d\n", sbk);
	if (sbk < 0)
		return 0;
	for (p = 0; p < sb.geo.md_pages; p++) {
		int best = -1;
		u64 best_seq = 0;

		for (k = 0; k < 2; k++) {
			const char *why = "";
			u64 seq;
			unsigned int used = 0, dirty = 0;

			rd(fd, buf, stash_md_page_sector(&sb.geo, p, k));
			if (stash_md_page_decode(buf, p, sb.geo.nr_cblocks,
						 sb.geo.origin_sectors / sb.geo.block_sectors,
						 &seq, entries, &why)) {
				printf("page %u copy %d invalid: %s\n", p, k, why);
				continue;
			}
			for (i = 0; i < STASH_MD_ENTRIES_PER_PAGE; i++) {
				used += !!entries[i];
				dirty += !!(entries[i] & STASH_MD_DIRTY);
			}
			printf("page %u copy %d valid seq=%llu used=%u dirty=%u%s\n",
			       p, k, (unsigned long long)seq, used, dirty,
			       seq > sb.seq ? " (newer than the superblock: ignored)" : "");
			if (seq <= sb.seq && (best < 0 || seq > best_seq)) {
				best = k;
				best_seq = seq;
			}
		}
		printf("newest-page %u %d\n", p, best);
	}
	return 0;
}

struct field {
	const char *name;
	size_t off;
	size_t size;
};

#define F(n) { #n, offsetof(struct stash_sb_disk, n), \
	       sizeof(((struct stash_sb_disk *)0)->n) }

static const struct field sb_fields[] = {
	F(magic), F(version), F(flags), F(seq), F(origin_sectors),
	F(cache_sectors), F(md_start), F(data_start), F(block_sectors),
	F(nr_cblocks), F(md_pages), F(mode),
	{ "reserved", offsetof(struct stash_sb_disk, reserved), 1 },
};

static void set_field(uint8_t *block, size_t off, size_t size, uint64_t v)
{
	uint64_t le = htole64(v);

	/* Little-endian: the low bytes come first. */
	memcpy(block + off, &le, size);
}

static int forge_sb(int fd, int copy, const char *name, uint64_t v)
{
	static uint8_t buf[STASH_MD_BLOCK_BYTES] __attribute__((aligned(4096)));
	size_t i;

	for (i = 0; i < sizeof(sb_fields) / sizeof(sb_fields[0]); i++) {
		if (strcmp(sb_fields[i].name, name))
			continue;
		rd(fd, buf, (uint64_t)copy * STASH_MD_BLOCK_SECTORS);
		set_field(buf, sb_fields[i].off, sb_fields[i].size, v);
		fix_crc(buf);
		wr(fd, buf, (uint64_t)copy * STASH_MD_BLOCK_SECTORS);
		return 0;
	}
	fatal("unknown superblock field %s", name);
	return 2;
}

static int forge_page(int fd, uint32_t p, int copy, const char *name, uint64_t v)
{
	static uint8_t buf[STASH_MD_BLOCK_BYTES] __attribute__((aligned(4096)));
	struct stash_sb sb;
	uint64_t sector;
	unsigned int slot;

	if (newest_sb(fd, &sb, 0) < 0)
		fatal("%s: no valid superblock", "forge-page");
	sector = stash_md_page_sector(&sb.geo, p, copy);
	rd(fd, buf, sector);
	if (!strcmp(name, "index"))
		set_field(buf, offsetof(struct stash_md_page_disk, index), 4, v);
	else if (!strcmp(name, "seq"))
		set_field(buf, offsetof(struct stash_md_page_disk, seq), 8, v);
	else if (sscanf(name, "entry%u", &slot) == 1 &&
		 slot < STASH_MD_ENTRIES_PER_PAGE)
		set_field(buf, offsetof(struct stash_md_page_disk, entries) + 8 * slot,
			  8, v);
	else
		fatal("unknown page field %s", name);
	fix_crc(buf);
	wr(fd, buf, sector);
	return 0;
}

int main(int argc, char **argv)
{
	int fd, r;

	if (argc < 3)
		goto usage;
	/* O_DIRECT: dm writes the device below its page cache. */
	fd = open(argv[2], (strcmp(argv[1], "show") ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0)
		fatal("cannot open the device: %s", strerror(errno));
	if (!strcmp(argv[1], "show") && argc == 3)
		r = show(fd);
	else if (!strcmp(argv[1], "forge-sb") && argc == 6)
		r = forge_sb(fd, atoi(argv[3]), argv[4], strtoull(argv[5], NULL, 0));
	else if (!strcmp(argv[1], "forge-page") && argc == 7)
		r = forge_page(fd, (uint32_t)strtoul(argv[3], NULL, 0), atoi(argv[4]),
			       argv[5], strtoull(argv[6], NULL, 0));
	else
		goto usage;
	close(fd);
	return r;
usage:
	fprintf(stderr, "usage: stash-md show DEV | forge-sb DEV COPY FIELD VALUE | forge-page DEV PAGE COPY FIELD VALUE\n");
	return 2;
}
