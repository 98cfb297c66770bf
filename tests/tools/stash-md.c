// SPDX-License-Identifier: GPL-2.0
/*
 * stash-md: damage the metadata of a dm-stash cache device in precise
 * ways, with the module's own encoder (kmod/stash-format.c built for
 * userspace).  For the corruption tests (tests/cases/54-*); they look at
 * the metadata with 'stashctl dump' and 'stashctl check'.
 *
 *   stash-md forge-sb DEV COPY FIELD VALUE
 *	set one field of superblock copy COPY (0 or 1) and fix the checksum:
 *	FIELD is magic, version, flags, seq, origin_sectors, cache_sectors,
 *	md_start, data_start, block_sectors, nr_cblocks, md_pages, mode or
 *	reserved (the first reserved byte)
 *   stash-md forge-page DEV PAGE COPY FIELD VALUE
 *	set a field of a page copy and fix the checksum: index, seq, or
 *	entry<N> (slot N of the page, VALUE the raw 64-bit word)
 *   stash-md write-page DEV PAGE COPY SEQ [SLOT=ENTRY]...
 *	write page copy COPY afresh: sequence SEQ, the given slots of the
 *	page (0..509) set to raw 64-bit entry words, every other slot empty
 *   stash-md zero-page DEV PAGE COPY
 *	zero page copy COPY (a blank copy, as format leaves copy 1)
 *   stash-md write-slot DEV SLOT FILE
 *	write the first cache block of FILE into data slot SLOT
 *   stash-md batch DEV
 *	the commands above read from stdin, one a line, without DEV: one
 *	process for many (test 57 forges hundreds of pages), one fsync at
 *	the end instead of one a write
 *   stash-md seed-clean DEV PER_PAGE [FIRST_OBLOCK]
 *	in the copy of every metadata page that recovery uses (valid, the
 *	highest sequence not above the superblock's), record the first
 *	PER_PAGE empty slots as clean mappings of origin blocks
 *	FIRST_OBLOCK (default 0), FIRST_OBLOCK + 1, ... in slot order, as if
 *	they had been filled from the origin; prints how many.  True of a
 *	cache whose slots and origin blocks there were never written (both
 *	read zeros): a cache with mappings spread over every page, without
 *	writing its data area (test 53).  The blocks must not be mapped
 *	already; one fsync at the end.
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

static void __attribute__((noreturn)) fatal(const char *fmt, const char *arg)
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

static void wr_len(int fd, const void *buf, size_t len, uint64_t sector)
{
	if (pwrite(fd, buf, len, (off_t)(sector * 512)) != (ssize_t)len)
		fatal("write failed: %s", strerror(errno));
}

static void wr_nosync(int fd, const void *buf, uint64_t sector)
{
	wr_len(fd, buf, STASH_MD_BLOCK_BYTES, sector);
}

/* In a batch, one fsync at its end. */
static int batching;

static void sync_dev(int fd)
{
	if (!batching && fsync(fd))
		fatal("fsync failed: %s", strerror(errno));
}

static void wr(int fd, const void *buf, uint64_t sector)
{
	wr_nosync(fd, buf, sector);
	sync_dev(fd);
}

static void fix_crc(void *block)
{
	uint32_t crc = ~stash_crc32c(~0u, (const uint8_t *)block + 4,
				     STASH_MD_BLOCK_BYTES - 4);

	crc = htole32(crc);
	memcpy(block, &crc, 4);
}

/* The newest valid superblock, for the geometry; returns its copy or -1. */
static int newest_sb(int fd, struct stash_sb *out)
{
	static uint8_t buf[STASH_MD_BLOCK_BYTES] __attribute__((aligned(4096)));
	struct stash_sb sb;
	const char *why;
	int k, best = -1;

	for (k = 0; k < 2; k++) {
		rd(fd, buf, (uint64_t)k * STASH_MD_BLOCK_SECTORS);
		if (stash_sb_decode(buf, &sb, &why))
			continue;
		if (best < 0 || sb.seq > out->seq) {
			*out = sb;
			best = k;
		}
	}
	return best;
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
	struct stash_sb sb = { .seq = 0 };
	uint64_t sector;
	unsigned int slot;

	if (newest_sb(fd, &sb) < 0)
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

static uint64_t page_sector(int fd, uint32_t p, int copy)
{
	struct stash_sb sb = { .seq = 0 };

	if (newest_sb(fd, &sb) < 0)
		fatal("%s: no valid superblock", "write-page");
	if (p >= sb.geo.md_pages || copy < 0 || copy > 1)
		fatal("%s: no such page copy", "write-page");
	return stash_md_page_sector(&sb.geo, p, copy);
}

static int write_page(int fd, uint32_t p, int copy, uint64_t seq, int n,
		      char **slots)
{
	static uint8_t buf[STASH_MD_BLOCK_BYTES] __attribute__((aligned(4096)));
	static u64 entries[STASH_MD_ENTRIES_PER_PAGE];
	static const u32 no_csums[STASH_MD_ENTRIES_PER_PAGE];
	uint64_t sector = page_sector(fd, p, copy);
	struct stash_sb sb = { .seq = 0 };
	unsigned int slot;
	unsigned long long v;
	int i;

	newest_sb(fd, &sb);

	memset(entries, 0, sizeof(entries));
	for (i = 0; i < n; i++) {
		const char *eq = strchr(slots[i], '=');
		char *end;

		slot = (unsigned int)strtoul(slots[i], NULL, 10);
		v = eq ? strtoull(eq + 1, &end, 0) : 0;
		if (!eq || *end || slot >= sb.geo.entries_per_page)
			fatal("bad SLOT=ENTRY %s", slots[i]);
		/* Version 2: no checksum is known for a written entry. */
		entries[slot] = v && sb.geo.csum ? v | STASH_MD_OPEN : v;
	}
	stash_md_page_encode_geo(buf, &sb.geo, p, seq, entries, no_csums);
	wr(fd, buf, sector);
	return 0;
}

static int zero_page(int fd, uint32_t p, int copy)
{
	static uint8_t buf[STASH_MD_BLOCK_BYTES] __attribute__((aligned(4096)));

	memset(buf, 0, sizeof(buf));
	wr(fd, buf, page_sector(fd, p, copy));
	return 0;
}

static int seed_clean(int fd, uint32_t per_page, uint64_t oblock)
{
	static uint8_t buf[STASH_MD_BLOCK_BYTES] __attribute__((aligned(4096)));
	static uint8_t both[2 * STASH_MD_BLOCK_BYTES] __attribute__((aligned(4096)));
	static u64 best[STASH_MD_ENTRIES_PER_PAGE], other[STASH_MD_ENTRIES_PER_PAGE];
	static u32 best_csums[STASH_MD_ENTRIES_PER_PAGE];
	static u32 other_csums[STASH_MD_ENTRIES_PER_PAGE];
	struct stash_sb sb = { .seq = 0 };
	struct stash_md_pick pick;
	uint32_t epp;
	u64 nr_oblocks, best_seq, n = 0;
	uint32_t p, k, added;
	int best_copy;

	if (newest_sb(fd, &sb) < 0)
		fatal("%s: no valid superblock", "seed-clean");
	nr_oblocks = sb.geo.origin_sectors / sb.geo.block_sectors;
	epp = sb.geo.entries_per_page;
	for (p = 0; p < sb.geo.md_pages; p++) {
		/* Both copies at once (neighbours); the kernel's choice. */
		if (pread(fd, both, sizeof(both),
			  (off_t)(stash_md_page_sector(&sb.geo, p, 0) * 512)) !=
		    (ssize_t)sizeof(both))
			fatal("read failed: %s", strerror(errno));
		stash_md_pick_page(both, &sb.geo, p, nr_oblocks, sb.seq, false,
				   best, best_csums, other, other_csums, &pick);
		if (pick.result != STASH_PICK_OK) {
			char what[32];

			snprintf(what, sizeof(what), "%u", p);
			fatal("page %s has no usable copy", what);
		}
		best_copy = pick.best;
		best_seq = pick.copy[best_copy].seq;
		for (k = 0, added = 0; k < epp && added < per_page; k++) {
			if ((uint64_t)p * epp + k >= sb.geo.nr_cblocks)
				break;
			if (best[k])
				continue;
			if (oblock >= nr_oblocks)
				fatal("%s: past the end of the origin", "seed-clean");
			/* Version 2: the slot's checksum is not known. */
			best[k] = stash_md_entry(true, false, oblock++) |
				  (sb.geo.csum ? STASH_MD_OPEN : 0);
			added++;
		}
		stash_md_page_encode_geo(buf, &sb.geo, p, best_seq, best,
					 best_csums);
		wr_nosync(fd, buf, stash_md_page_sector(&sb.geo, p, best_copy));
		n += added;
	}
	if (fsync(fd))
		fatal("fsync failed: %s", strerror(errno));
	printf("%llu\n", (unsigned long long)n);
	return 0;
}

/* write-slot: FILE (one cache block) into data slot SLOT. */
static int write_slot(int fd, uint64_t slot, const char *file)
{
	static uint8_t buf[1 << 20] __attribute__((aligned(4096)));
	struct stash_sb sb = { .seq = 0 };
	size_t len;
	FILE *f;

	if (newest_sb(fd, &sb) < 0)
		fatal("%s: no valid superblock", "write-slot");
	if (slot >= sb.geo.nr_cblocks)
		fatal("%s: no such slot", "write-slot");
	len = (size_t)sb.geo.block_sectors * 512;
	if (len > sizeof(buf))
		fatal("%s: blocks too large", "write-slot");
	f = fopen(file, "rb");
	if (!f || fread(buf, 1, len, f) != len)
		fatal("cannot read one block from %s", file);
	fclose(f);
	wr_len(fd, buf, len, sb.geo.data_start + slot * sb.geo.block_sectors);
	sync_dev(fd);
	return 0;
}

/* One command, argv as on the command line (argv[2], the device, open in fd). */
static int run(int fd, int argc, char **argv)
{
	if (!strcmp(argv[1], "forge-sb") && argc == 6)
		return forge_sb(fd, atoi(argv[3]), argv[4], strtoull(argv[5], NULL, 0));
	if (!strcmp(argv[1], "forge-page") && argc == 7)
		return forge_page(fd, (uint32_t)strtoul(argv[3], NULL, 0), atoi(argv[4]),
				  argv[5], strtoull(argv[6], NULL, 0));
	if (!strcmp(argv[1], "write-page") && argc >= 6)
		return write_page(fd, (uint32_t)strtoul(argv[3], NULL, 0), atoi(argv[4]),
				  strtoull(argv[5], NULL, 0), argc - 6, argv + 6);
	if (!strcmp(argv[1], "zero-page") && argc == 5)
		return zero_page(fd, (uint32_t)strtoul(argv[3], NULL, 0), atoi(argv[4]));
	if (!strcmp(argv[1], "write-slot") && argc == 5)
		return write_slot(fd, strtoull(argv[3], NULL, 0), argv[4]);
	if (!strcmp(argv[1], "seed-clean") && (argc == 4 || argc == 5))
		return seed_clean(fd, (uint32_t)strtoul(argv[3], NULL, 0),
				  argc == 5 ? strtoull(argv[4], NULL, 0) : 0);
	return -1;
}

/*
 * batch: the commands on stdin, one a line, each without the device
 * ("write-page 3 0 7 0=0x8000000000000064"): one process for many
 * (a process start costs about 0.1 s under emulation).
 */
static int batch(int fd, char *dev)
{
	static char line[65536];
	char *args[STASH_MD_ENTRIES_PER_PAGE + 8];
	int n, r;

	batching = 1;
	while (fgets(line, sizeof(line), stdin)) {
		char *save = NULL, *w;

		if (!strchr(line, '\n'))
			fatal("%s: line too long", "batch");
		n = 0;
		args[n++] = "stash-md";
		w = strtok_r(line, " \t\n", &save);
		if (!w)
			continue;
		args[n++] = w;
		args[n++] = dev;
		while ((w = strtok_r(NULL, " \t\n", &save))) {
			if (n == (int)(sizeof(args) / sizeof(args[0])))
				fatal("%s: too many words", "batch");
			args[n++] = w;
		}
		r = run(fd, n, args);
		if (r < 0)
			fatal("batch: bad command %s", args[1]);
		if (r)
			return r;
	}
	batching = 0;
	sync_dev(fd);
	return 0;
}

int main(int argc, char **argv)
{
	int fd, r;

	if (argc < 3)
		goto usage;
	/* O_DIRECT: dm writes the device below its page cache. */
	fd = open(argv[2], O_RDWR | O_DIRECT);
	if (fd < 0)
		fatal("cannot open the device: %s", strerror(errno));
	if (!strcmp(argv[1], "batch") && argc == 3)
		r = batch(fd, argv[2]);
	else
		r = run(fd, argc, argv);
	if (r < 0)
		goto usage;
	close(fd);
	return r;
usage:
	fprintf(stderr, "usage: stash-md forge-sb DEV COPY FIELD VALUE | "
		"forge-page DEV PAGE COPY FIELD VALUE | "
		"write-page DEV PAGE COPY SEQ [SLOT=ENTRY]... | zero-page DEV PAGE COPY | "
		"write-slot DEV SLOT FILE | seed-clean DEV PER_PAGE [FIRST_OBLOCK] | "
		"batch DEV (those commands on stdin, without DEV)\n");
	return 2;
}
