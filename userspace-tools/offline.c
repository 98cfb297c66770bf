// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl: the offline commands, dump and check.  They read a cache
 * device's metadata straight from the device (no module needed) with the
 * module's own decoder (md-format.c) and run the kernel's recovery on it
 * (docs/format.md, "Recovery"; kmod/stash-metadata.c):
 *
 *  1. the valid superblock copy with the highest sequence;
 *  2. per metadata page, the valid copy with the highest sequence not
 *     above the superblock's; a page without one makes the load fail, and
 *     so does one whose other copy is damaged but claims (index p, a
 *     sequence above that copy's and not above the superblock's) to be
 *     the page's newest committed version;
 *  3. after a clean shutdown every mapping is kept, after an unclean one
 *     only the dirty ones (stash_md_load_keeps() says why a dirty entry
 *     must not give way to a clean one);
 *  4. of the mappings kept, an origin block in two slots: the entry of the
 *     newer page wins; two in pages of the same commit make the load
 *     fail.
 *
 * dump prints the result; check reports every problem it meets, each with
 * its severity, and exits with the worst (stashctl.8, EXIT STATUS):
 *   note	   nothing wrong (a commit cut short by a crash, an unclean
 *		   shutdown): no effect on the exit status
 *   damaged   a copy recovery does not use is damaged: the kernel loads
 *		   the cache from the other copy, the next commits rewrite it
 *   corrupt   the kernel refuses the cache
 *   not-stash no dm-stash superblock at all (blank or another kind of data)
 */
#define _GNU_SOURCE		/* O_DIRECT; getopt_long */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>

#include "../kmod/stash-format.h"
#include "stashctl.h"

/* Metadata pages read at a time (both copies of each). */
#define CHUNK_PAGES	128u
/* Problems check prints of one kind before it only counts them. */
#define MAX_REPORTS	20u

enum severity { SEV_NOTE, SEV_DAMAGED, SEV_CORRUPT, SEV_NOT_STASH };

static const char *const severity_names[] = {
	[SEV_NOTE] = "note", [SEV_DAMAGED] = "damaged",
	[SEV_CORRUPT] = "corrupt", [SEV_NOT_STASH] = "not-stash",
};

static const char *const sb_kind_names[] = {
	[STASH_SB_BLANK] = "blank", [STASH_SB_FOREIGN] = "foreign",
	[STASH_SB_BAD_CRC] = "damaged", [STASH_SB_VERSION] = "other_version",
	[STASH_SB_INVALID] = "invalid", [STASH_SB_VALID] = "valid",
};

/* One copy of a metadata page. */
struct page_copy {
	bool blank;		/* all zero */
	bool valid;		/* decodes, for this page */
	bool newest;		/* damaged, yet the newest committed version */
	u64 seq;
	const char *why;	/* when not valid */
	u32 raw_index;		/* its index and sequence fields, unvalidated */
	u64 raw_seq;
};

struct scan {
	const char *path;
	int fd;
	uint64_t dev_sectors;
	bool in_use;		/* opened while something holds the device */
	bool report;		/* print problems as they are found */
	FILE *out;		/* where: stdout for check, stderr for dump */
	enum severity worst;
	unsigned int counts[4];

	/* Superblock copies and the one in use (sb_copy, or -1). */
	enum stash_sb_kind sb_kind[2];
	const char *sb_why[2];
	uint32_t sb_version[2];
	struct stash_sb sbs[2];
	int sb_copy;
	struct stash_sb sb;	/* the copy in use; zero if none */
	uint64_t nr_oblocks;

	/* Pages: both copies, the one in use (-1: none) and its sequence. */
	struct page_copy (*pages)[2];
	int8_t *page_use;
	u64 *entries;		/* per slot, from the copy in use; 0 if none */
	u32 *csums;		/* their checksums (format version 2) */
	u32 uncommitted;	/* page copies claiming a sequence above sb's */

	/* Recovery's result: slot -> entry, with what it dropped. */
	u64 *loaded;		/* per slot: the entry recovery keeps, or 0 */
	uint64_t valid, dirty;
	uint64_t dropped_clean, dropped_older;
};

/* The superblock copy in use carries the 'needs check' mark. */
static bool needs_check(const struct scan *s)
{
	return s->sb.flags & STASH_SB_FLAG_NEEDS_CHECK;
}

static void problem(struct scan *s, enum severity sev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Count a problem and, when checking, print it (the first MAX_REPORTS). */
static void problem(struct scan *s, enum severity sev, const char *fmt, ...)
{
	va_list ap;

	if (sev > s->worst)
		s->worst = sev;
	if (!s->report || s->counts[sev]++ >= MAX_REPORTS)
		return;
	fprintf(s->out, "%s: %s: ", s->path, severity_names[sev]);
	va_start(ap, fmt);
	vfprintf(s->out, fmt, ap);
	va_end(ap);
	fputc('\n', s->out);
}

/* ------------------------------------------------------------------
 * Reading the device
 * ------------------------------------------------------------------
 */

static int open_device(struct scan *s)
{
	struct stat st;
	unsigned long long bytes;
	int fd, err;

	/* O_EXCL on a block device fails while a table or a mount holds it. */
	fd = open(s->path, O_RDONLY | O_DIRECT | O_EXCL | O_CLOEXEC);
	if (fd < 0 && errno == EBUSY) {
		s->in_use = true;
		fd = open(s->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	}
	/* A file on a file system without O_DIRECT (tmpfs). */
	if (fd < 0 && errno == EINVAL)
		fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		errorf("cannot open %s: %s", s->path, strerror(err));
		if (err == ENOENT || err == ENXIO || err == ENODEV)
			return EXIT_NOT_FOUND;
		return err == EACCES || err == EPERM ? EXIT_PERM : EXIT_FAILED;
	}
	if (fstat(fd, &st)) {
		errorf("%s: %s", s->path, strerror(errno));
		close(fd);
		return EXIT_FAILED;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &bytes)) {
			errorf("%s: cannot get its size: %s", s->path, strerror(errno));
			close(fd);
			return EXIT_FAILED;
		}
	} else if (S_ISREG(st.st_mode)) {
		bytes = (unsigned long long)st.st_size;
	} else {
		errorf("%s is neither a block device nor an image file", s->path);
		close(fd);
		return EXIT_USAGE;
	}
	s->fd = fd;
	s->dev_sectors = bytes / 512;
	if (s->in_use)
		notef("%s is in use (a live stash device?): its metadata may change "
		      "while it is read; remove the stash device for a consistent view",
		      s->path);
	return 0;
}

/* Read @len bytes at @sector; -1 if the device ends before or fails. */
static int read_at(struct scan *s, void *buf, size_t len, uint64_t sector)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(s->fd, (char *)buf + done, len - done,
			  (off_t)(sector * 512 + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static void *aligned_alloc_or_die(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len)) {
		errorf("out of memory");
		exit(EXIT_FAILED);
	}
	return p;
}

static void *calloc_or_die(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p) {
		errorf("out of memory (%zu items of %zu bytes)", n, size);
		exit(EXIT_FAILED);
	}
	return p;
}

/* ------------------------------------------------------------------
 * Recovery, as the kernel does it
 * ------------------------------------------------------------------
 */

static bool same_cache(const struct stash_sb *a, const struct stash_sb *b)
{
	return !memcmp(a->uuid, b->uuid, sizeof(a->uuid)) &&
	       !memcmp(&a->geo, &b->geo, sizeof(a->geo));
}

/* Step 1: the superblock.  Returns false if there is none to use. */
static bool scan_superblock(struct scan *s)
{
	uint8_t *buf = aligned_alloc_or_die(STASH_MD_BLOCK_BYTES);
	bool magic = false;
	int k, other;

	s->sb_copy = -1;
	for (k = 0; k < 2; k++) {
		if (read_at(s, buf, STASH_MD_BLOCK_BYTES,
			    (uint64_t)k * STASH_MD_BLOCK_SECTORS)) {
			free(buf);
			problem(s, SEV_NOT_STASH, "the device is too small (%" PRIu64
				" sectors) or unreadable: no room for the superblocks",
				s->dev_sectors);
			return false;
		}
		s->sb_why[k] = NULL;
		s->sb_kind[k] = stash_sb_classify(buf, &s->sbs[k], &s->sb_why[k]);
		if (s->sb_kind[k] != STASH_SB_BLANK && s->sb_kind[k] != STASH_SB_FOREIGN)
			magic = true;
		memcpy(&s->sb_version[k], buf + 8, sizeof(s->sb_version[k]));
		s->sb_version[k] = le32toh(s->sb_version[k]);
		if (s->sb_kind[k] == STASH_SB_VALID &&
		    stash_sb_preferred(&s->sbs[k], s->sb_copy < 0 ? NULL : &s->sb)) {
			s->sb = s->sbs[k];
			s->sb_copy = k;
		}
	}
	free(buf);

	if (s->sb_copy < 0) {
		if (!magic) {
			problem(s, SEV_NOT_STASH, "no dm-stash superblock: the device is %s",
				s->sb_kind[0] == STASH_SB_BLANK &&
				s->sb_kind[1] == STASH_SB_BLANK ?
				"blank where the superblocks go (the kernel formats it)" :
				"not a dm-stash cache device (the kernel refuses it "
				"without 'format')");
			return false;
		}
		for (k = 0; k < 2; k++) {
			if (s->sb_kind[k] == STASH_SB_VERSION)
				problem(s, SEV_CORRUPT, "superblock copy %d: on-disk format "
					"version %u, this stashctl reads versions %u and %u",
					k, s->sb_version[k], STASH_FORMAT_VERSION,
					STASH_FORMAT_VERSION_CSUM);
			else
				problem(s, SEV_CORRUPT, "superblock copy %d: %s%s", k,
					s->sb_why[k], s->sb_kind[k] == STASH_SB_BAD_CRC ?
					" (a damaged dm-stash superblock)" : "");
		}
		problem(s, SEV_CORRUPT, "no valid superblock copy: the kernel refuses "
			"the cache; its dirty blocks, if any, are not on the origin");
		return false;
	}

	/*
	 * Format leaves copy 0 blank and writes copy 1 with sequence 1; the
	 * first commit after it writes copy 0.  A blank copy is damage later.
	 */
	other = 1 - s->sb_copy;
	if (s->sb_kind[other] == STASH_SB_BLANK && (other != 0 || s->sb.seq != 1))
		problem(s, SEV_DAMAGED, "superblock copy %d is all zero (wiped?); the "
			"kernel uses copy %d and its next commit rewrites copy %d",
			other, s->sb_copy, other);
	else if (s->sb_kind[other] == STASH_SB_VALID &&
		 !same_cache(&s->sbs[other], &s->sb))
		problem(s, SEV_DAMAGED, "superblock copy %d belongs to another cache "
			"(its uuid or geometry differs from copy %d's)", other, s->sb_copy);
	else if (s->sb_kind[other] != STASH_SB_VALID && s->sb_kind[other] != STASH_SB_BLANK)
		problem(s, SEV_DAMAGED, "superblock copy %d: %s; the kernel uses copy %d "
			"and its next commit rewrites copy %d", other, s->sb_why[other],
			s->sb_copy, other);
	if (s->sb.geo.cache_sectors != s->dev_sectors)
		problem(s, SEV_CORRUPT, "the device has %" PRIu64 " sectors, the cache "
			"was formatted for %llu: the kernel refuses it (a truncated or "
			"grown device?)", s->dev_sectors,
			(unsigned long long)s->sb.geo.cache_sectors);
	if (!(s->sb.flags & STASH_SB_FLAG_CLEAN))
		problem(s, SEV_NOTE, "not shut down cleanly (a crash, or the cache is "
			"live): recovery keeps only the dirty mappings");
	if (needs_check(s) && s->report)
		fprintf(s->out, "%s: needs check: a metadata commit failed while the "
			"cache was in use (superblock copy %d): the kernel refuses to "
			"load it until the mark is cleared\n", s->path, s->sb_copy);
	s->nr_oblocks = s->sb.geo.origin_sectors / s->sb.geo.block_sectors;
	return true;
}

/*
 * Step 2, page @page refused because its copy @best is older than its
 * other copy, which is damaged but, by its own header, the page's newest
 * committed version (stash_md_pick_page()): copy @best may map slots
 * reused since (or miss dirty blocks), so the kernel refuses the cache.
 * Reports it.
 */
static void newest_damaged(struct scan *s, uint32_t page, struct page_copy *c,
			   int best)
{
	struct page_copy *d = &c[1 - best];

	d->newest = true;
	problem(s, SEV_CORRUPT, "metadata page %u: its newest copy (copy %d, "
		"sequence %llu, not above the superblock's %llu: committed) is "
		"damaged: %s; copy %d (sequence %llu) is older and may map slots "
		"reused since, or miss dirty blocks: the kernel refuses the cache",
		page, 1 - best, d->raw_seq, s->sb.seq, d->why, best, c[best].seq);
}

/* Step 2: every page's copy in use, and the entries of that copy. */
static bool scan_pages(struct scan *s)
{
	const struct stash_geometry *g = &s->sb.geo;
	size_t chunk_bytes = (size_t)CHUNK_PAGES * 2 * STASH_MD_BLOCK_BYTES;
	uint8_t *buf = aligned_alloc_or_die(chunk_bytes);
	u64 *tmp = calloc_or_die(STASH_MD_ENTRIES_PER_PAGE, sizeof(u64));
	u32 *csums = calloc_or_die(STASH_MD_ENTRIES_PER_PAGE, sizeof(u32));
	uint32_t epp = g->entries_per_page;
	bool ok = true;
	uint32_t p, i, n;
	int k;

	s->pages = calloc_or_die(g->md_pages, sizeof(*s->pages));
	s->page_use = calloc_or_die(g->md_pages, sizeof(*s->page_use));
	s->entries = calloc_or_die((size_t)g->md_pages * epp, sizeof(u64));
	s->csums = calloc_or_die((size_t)g->md_pages * epp, sizeof(u32));
	for (p = 0; p < g->md_pages; p += n) {
		n = g->md_pages - p < CHUNK_PAGES ? g->md_pages - p : CHUNK_PAGES;
		if (read_at(s, buf, (size_t)n * 2 * STASH_MD_BLOCK_BYTES,
			    stash_md_page_sector(g, p, 0))) {
			problem(s, SEV_CORRUPT, "cannot read metadata pages %u..%u "
				"(past the end of the device?)", p, p + n - 1);
			for (i = 0; i < n; i++)
				s->page_use[p + i] = -1;
			ok = false;
			continue;
		}
		for (i = 0; i < n; i++) {
			uint32_t page = p + i;
			struct page_copy *c = s->pages[page];
			struct stash_md_pick pick;
			int best;

			/* The kernel's rules, both copies checked to report them. */
			stash_md_pick_page(buf + (size_t)i * 2 * STASH_MD_BLOCK_BYTES,
					   g, page, s->nr_oblocks, s->sb.seq, true,
					   s->entries + (size_t)page * epp,
					   s->csums + (size_t)page * epp, tmp,
					   csums, &pick);
			for (k = 0; k < 2; k++) {
				const struct stash_md_copy *m = &pick.copy[k];

				c[k].blank = m->blank;
				c[k].valid = m->valid;
				c[k].newest = false;
				c[k].seq = m->seq;
				c[k].why = m->why;
				c[k].raw_index = m->raw_index;
				c[k].raw_seq = m->raw_seq;
				if (c[k].valid && c[k].seq > s->sb.seq)
					s->uncommitted++;
			}
			best = pick.best;
			s->page_use[page] = (int8_t)best;
			if (pick.result == STASH_PICK_NO_COPY) {
				problem(s, SEV_CORRUPT, "metadata page %u: no valid copy "
					"(copy 0: %s; copy 1: %s): the kernel refuses the cache",
					page, c[0].valid ? "newer than the superblock" :
					c[0].blank ? "all zero" : c[0].why,
					c[1].valid ? "newer than the superblock" :
					c[1].blank ? "all zero" : c[1].why);
				memset(s->entries + (size_t)page * epp, 0,
				       sizeof(u64) * epp);
				ok = false;
				continue;
			}
			if (pick.result == STASH_PICK_NEWEST_DAMAGED) {
				newest_damaged(s, page, c, best);
				memset(s->entries + (size_t)page * epp, 0,
				       sizeof(u64) * epp);
				s->page_use[page] = -1;
				ok = false;
				continue;
			}
			/*
			 * Format writes copy 0 with sequence 1 and zeroes copy 1;
			 * the first commit that changes the page writes its copy
			 * 1.  A blank copy is damage later.
			 */
			for (k = 0; k < 2; k++) {
				if (k == best)
					continue;
				if (c[k].blank && (k != 1 || c[best].seq != 1))
					problem(s, SEV_DAMAGED, "metadata page %u copy %d is all "
						"zero (wiped?); the kernel uses copy %d", page, k,
						best);
				if (c[k].valid && c[k].seq > s->sb.seq)
					problem(s, SEV_NOTE, "metadata page %u copy %d: sequence "
						"%llu is newer than the superblock's (a commit "
						"cut short): ignored", page, k, c[k].seq);
				else if (!c[k].valid && !c[k].blank &&
					 c[k].raw_index == page && c[k].raw_seq > s->sb.seq)
					problem(s, SEV_DAMAGED, "metadata page %u copy %d: %s (its "
						"sequence field, %llu, is above the superblock's: "
						"a commit cut short?); the kernel uses copy %d",
						page, k, c[k].why, c[k].raw_seq, best);
				else if (!c[k].valid && !c[k].blank)
					problem(s, SEV_DAMAGED, "metadata page %u copy %d: %s; the "
						"kernel uses copy %d", page, k, c[k].why, best);
			}
		}
	}
	free(csums);
	free(tmp);
	free(buf);
	return ok;
}

struct slot_ref {
	uint64_t oblock;
	uint32_t cblock;
};

static int cmp_slot_ref(const void *a, const void *b)
{
	const struct slot_ref *x = a, *y = b;

	if (x->oblock != y->oblock)
		return x->oblock < y->oblock ? -1 : 1;
	return x->cblock < y->cblock ? -1 : x->cblock > y->cblock;
}

static u64 page_seq(const struct scan *s, uint32_t cblock)
{
	uint32_t page = cblock / s->sb.geo.entries_per_page;

	return s->pages[page][s->page_use[page]].seq;
}

/*
 * Steps 3, then 4: which mappings the kernel keeps.  False if it refuses.
 * After an unclean shutdown the clean entries are dropped first
 * (stash_md_load_keeps()); of the entries kept, one origin block in two
 * slots goes to the newer page's, and two in one commit are refused.
 */
static bool recover(struct scan *s)
{
	uint32_t nr = s->sb.geo.nr_cblocks, c, i, j, n = 0;
	bool clean = s->sb.flags & STASH_SB_FLAG_CLEAN, ok = true;
	struct slot_ref *refs;

	s->loaded = calloc_or_die(nr, sizeof(u64));
	refs = calloc_or_die(nr, sizeof(*refs));
	for (c = 0; c < nr; c++) {
		u64 e = s->entries[c];

		if (!e)
			continue;
		if (!stash_md_load_keeps(!clean, e)) {
			s->dropped_clean++;
			continue;
		}
		refs[n].oblock = e & STASH_MD_OBLOCK_MASK;
		refs[n].cblock = c;
		n++;
	}
	qsort(refs, n, sizeof(*refs), cmp_slot_ref);
	/* In slot order, as the kernel loads: a newer page takes the block. */
	for (i = 0; i < n; i = j) {
		uint32_t holder = refs[i].cblock;

		for (j = i + 1; j < n && refs[j].oblock == refs[i].oblock; j++) {
			uint32_t cb = refs[j].cblock;
			u64 cs = page_seq(s, cb);
			enum stash_md_dup d = stash_md_dup_winner(page_seq(s, holder),
								  cs);
			uint32_t win = d == STASH_DUP_REPLACE ? cb : holder;

			if (d == STASH_DUP_CORRUPT) {
				problem(s, SEV_CORRUPT, "origin block %" PRIu64 " is mapped "
					"by slots %u and %u in one commit (sequence %llu"
					"): the kernel refuses the cache", refs[i].oblock,
					holder, cb, cs);
				ok = false;
			} else {
				problem(s, SEV_NOTE, "origin block %" PRIu64 " is in slots "
					"%u and %u: the newer page's (slot %u) wins", refs[i].oblock,
					holder, cb, win);
			}
			s->dropped_older++;
			holder = win;
		}
		s->loaded[holder] = s->entries[holder];
	}
	free(refs);
	for (c = 0; c < nr; c++) {
		s->valid += !!s->loaded[c];
		s->dirty += !!(s->loaded[c] & STASH_MD_DIRTY);
	}
	return ok;
}

/* The whole scan; false if there is no mapping to show. */
static bool scan_device(struct scan *s)
{
	bool pages_ok;

	if (!scan_superblock(s))
		return false;
	pages_ok = scan_pages(s);
	return recover(s) && pages_ok;
}

static void scan_free(struct scan *s)
{
	free(s->pages);
	free(s->page_use);
	free(s->entries);
	free(s->csums);
	free(s->loaded);
	if (s->fd >= 0)
		close(s->fd);
}

static int exit_code(enum severity worst)
{
	switch (worst) {
	case SEV_NOTE:
		return EXIT_OK;
	case SEV_DAMAGED:
		return EXIT_MD_DAMAGED;
	case SEV_CORRUPT:
		return EXIT_MD_CORRUPT;
	default:
		return EXIT_NOT_STASH;
	}
}

/* ------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------
 */

static void uuid_string(char *buf, const uint8_t *u)
{
	int i, n = 0;

	for (i = 0; i < 16; i++)
		n += sprintf(buf + n, "%s%02x",
			     i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", u[i]);
}

static void dump_human(const struct scan *s, bool mappings)
{
	const struct stash_geometry *g = &s->sb.geo;
	uint64_t block = (uint64_t)g->block_sectors * 512;
	char uuid[40], b1[32], b2[32];
	uint32_t c;
	int k;

	uuid_string(uuid, s->sb.uuid);
	printf("%s: dm-stash cache, on-disk format version %u%s\n", s->path,
	       s->sb.geo.csum ? STASH_FORMAT_VERSION_CSUM : STASH_FORMAT_VERSION,
	       s->sb.geo.csum ? " (checksums)" : "");
	printf("  %-18s copy %d, sequence %llu, %s shutdown%s\n", "superblock",
	       s->sb_copy, (unsigned long long)s->sb.seq,
	       s->sb.flags & STASH_SB_FLAG_CLEAN ? "clean" : "unclean",
	       needs_check(s) ? ", needs check (a commit failed)" : "");
	for (k = 0; k < 2; k++) {
		char label[24];

		snprintf(label, sizeof(label), "  copy %d", k);
		if (s->sb_kind[k] == STASH_SB_VALID)
			printf("  %-18s valid, sequence %llu\n", label,
			       (unsigned long long)s->sbs[k].seq);
		else
			printf("  %-18s %s: %s\n", label, sb_kind_names[s->sb_kind[k]],
			       s->sb_why[k]);
	}
	if (s->uncommitted)
		printf("  %-18s %u page copies of a commit cut short (the next "
		       "load rewrites them)\n", "uncommitted",
		       s->uncommitted);
	printf("  %-18s %s\n", "uuid", uuid);
	printf("  %-18s %s\n", "mode", mode_name(s->sb.mode));
	printf("  %-18s %llu sectors (%s)\n", "origin",
	       (unsigned long long)g->origin_sectors,
	       fmt_bytes(b1, sizeof(b1), g->origin_sectors * 512));
	printf("  %-18s %llu sectors (%s), data from sector %llu\n", "cache device",
	       (unsigned long long)g->cache_sectors,
	       fmt_bytes(b1, sizeof(b1), g->cache_sectors * 512),
	       (unsigned long long)g->data_start);
	printf("  %-18s %u sectors (%s)\n", "block size", g->block_sectors,
	       fmt_bytes(b1, sizeof(b1), block));
	printf("  %-18s %u\n", "cache blocks", g->nr_cblocks);
	printf("  %-18s %u, two copies each, from sector %llu\n", "metadata pages",
	       g->md_pages, (unsigned long long)g->md_start);
	printf("  %-18s %llu blocks, %s (%s)\n", "valid",
	       (unsigned long long)s->valid,
	       fmt_pct(b1, sizeof(b1), s->valid, g->nr_cblocks),
	       fmt_bytes(b2, sizeof(b2), s->valid * block));
	printf("  %-18s %llu blocks, %s (%s)\n", "dirty",
	       (unsigned long long)s->dirty,
	       fmt_pct(b1, sizeof(b1), s->dirty, g->nr_cblocks),
	       fmt_bytes(b2, sizeof(b2), s->dirty * block));
	if (s->dropped_clean || s->dropped_older)
		printf("  %-18s %llu clean after an unclean shutdown, %llu older "
		       "duplicates\n", "dropped at load",
		       (unsigned long long)s->dropped_clean,
		       (unsigned long long)s->dropped_older);
	if (!mappings)
		return;
	printf("mappings\n  %10s %14s  %s\n", "cblock", "oblock", "state");
	for (c = 0; c < g->nr_cblocks; c++)
		if (s->loaded[c])
			printf("  %10u %14llu  %s\n", c,
			       (unsigned long long)(s->loaded[c] & STASH_MD_OBLOCK_MASK),
			       s->loaded[c] & STASH_MD_DIRTY ? "dirty" : "clean");
	printf("%llu valid, %llu dirty\n", (unsigned long long)s->valid,
	       (unsigned long long)s->dirty);
}

static void page_copy_json(const struct page_copy *c, const struct scan *s)
{
	if (c->valid)
		printf("{\"state\": \"%s\", \"seq\": %llu}",
		       c->seq > s->sb.seq ? "newer" : "valid", c->seq);
	else if (c->blank)
		printf("{\"state\": \"blank\"}");
	else {
		printf("{\"state\": \"invalid\", \"error\": ");
		json_string(stdout, c->why);
		printf(", \"raw_index\": %u, \"raw_seq\": %llu}", c->raw_index,
		       c->raw_seq);
	}
}

static void dump_json(const struct scan *s, bool mappings)
{
	const struct stash_geometry *g = &s->sb.geo;
	char uuid[40];
	bool first = true;
	uint32_t p, c;
	int k;

	uuid_string(uuid, s->sb.uuid);
	printf("{\n  \"device\": ");
	json_string(stdout, s->path);
	printf(",\n  \"device_sectors\": %" PRIu64 ", \"in_use\": %s,\n",
	       s->dev_sectors, s->in_use ? "true" : "false");
	printf("  \"format_version\": %u, \"checksums\": %s,\n",
	       s->sb.geo.csum ? STASH_FORMAT_VERSION_CSUM : STASH_FORMAT_VERSION,
	       s->sb.geo.csum ? "true" : "false");
	printf("  \"superblock\": {\"copy\": %d, \"seq\": %llu, "
	       "\"clean_shutdown\": %s, \"needs_check\": %s, \"uuid\": \"%s\", "
	       "\"mode\": \"%s\",\n"
	       "    \"origin_sectors\": %llu, \"cache_sectors\": %llu, "
	       "\"block_size\": %u, \"md_start\": %llu, \"data_start\": %llu,\n"
	       "    \"cache_blocks\": %u, \"md_pages\": %u},\n",
	       s->sb_copy, (unsigned long long)s->sb.seq,
	       s->sb.flags & STASH_SB_FLAG_CLEAN ? "true" : "false",
	       needs_check(s) ? "true" : "false", uuid, mode_name(s->sb.mode),
	       (unsigned long long)g->origin_sectors,
	       (unsigned long long)g->cache_sectors, g->block_sectors,
	       (unsigned long long)g->md_start, (unsigned long long)g->data_start,
	       g->nr_cblocks, g->md_pages);
	printf("  \"superblock_copies\": [");
	for (k = 0; k < 2; k++) {
		printf("%s{\"copy\": %d, \"state\": \"%s\"", k ? ", " : "", k,
		       sb_kind_names[s->sb_kind[k]]);
		if (s->sb_kind[k] == STASH_SB_VALID) {
			printf(", \"seq\": %llu", (unsigned long long)s->sbs[k].seq);
		} else {
			printf(", \"error\": ");
			json_string(stdout, s->sb_why[k]);
		}
		putchar('}');
	}
	printf("],\n  \"uncommitted_copies\": %u,\n  \"pages\": [",
	       s->uncommitted);
	for (p = 0; p < g->md_pages; p++) {
		printf("%s\n    {\"page\": %u, \"copy\": %d", p ? "," : "", p,
		       s->page_use[p]);
		if (s->page_use[p] >= 0)
			printf(", \"seq\": %llu", s->pages[p][s->page_use[p]].seq);
		printf(", \"newest_damaged\": %s, \"copies\": [",
		       s->pages[p][0].newest || s->pages[p][1].newest ?
		       "true" : "false");
		page_copy_json(&s->pages[p][0], s);
		printf(", ");
		page_copy_json(&s->pages[p][1], s);
		printf("]}");
	}
	printf("\n  ],\n  \"valid_blocks\": %llu, \"dirty_blocks\": %llu,\n"
	       "  \"dropped_clean\": %llu, \"dropped_duplicates\": %llu",
	       (unsigned long long)s->valid, (unsigned long long)s->dirty,
	       (unsigned long long)s->dropped_clean,
	       (unsigned long long)s->dropped_older);
	if (mappings) {
		printf(",\n  \"mappings\": [");
		for (c = 0; c < g->nr_cblocks; c++) {
			if (!s->loaded[c])
				continue;
			printf("%s\n    {\"cblock\": %u, \"oblock\": %llu, \"dirty\": %s",
			       first ? "" : ",", c,
			       (unsigned long long)(s->loaded[c] & STASH_MD_OBLOCK_MASK),
			       s->loaded[c] & STASH_MD_DIRTY ? "true" : "false");
			if (g->csum && (s->loaded[c] & STASH_MD_OPEN))
				printf(", \"checksum\": null");
			else if (g->csum)
				printf(", \"checksum\": %u", s->csums[c]);
			putchar('}');
			first = false;
		}
		printf("%s]", first ? "" : "\n  ");
	}
	printf("\n}\n");
}

/* ------------------------------------------------------------------
 * The commands
 * ------------------------------------------------------------------
 */

/* The command line of dump and check. */
struct offline_args {
	bool json, summary;		/* dump */
	bool quiet, clear_needs_check;	/* check */
	const char *path;
};

/* DEVICE [--json] [--summary] for dump, DEVICE [--quiet]
 * [--clear-needs-check] for check.
 */
static int parse_args(int argc, char **argv, struct offline_args *a)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "summary", no_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "clear-needs-check", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool dump = !strcmp(argv[0], "dump");
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			print_command_help(stdout, find_command(argv[0]));
			return -1;
		}
		if (dump && c == 'j')
			a->json = true;
		else if (dump && c == 's')
			a->summary = true;
		else if (!dump && c == 'q')
			a->quiet = true;
		else if (!dump && c == 'c')
			a->clear_needs_check = true;
		else
			return usage_error(argv[0], "unknown option '%s'", argv[optind - 1]);
	}
	if (argc - optind != 1)
		return usage_error(argv[0], argc - optind ? "too many arguments" :
				   "which cache device?");
	a->path = argv[optind];
	return 0;
}

int cmd_dump(int argc, char **argv)
{
	struct scan s = { .fd = -1 };
	struct offline_args a = { 0 };
	bool ok;
	int r;

	r = parse_args(argc, argv, &a);
	if (r)
		return r < 0 ? EXIT_OK : r;
	s.path = a.path;
	r = open_device(&s);
	if (r)
		return r;
	/* Only what keeps the mapping from being shown, on stderr. */
	s.report = false;
	s.out = stderr;
	ok = scan_device(&s);
	if (s.sb_copy < 0) {
		s.report = true;
		memset(s.counts, 0, sizeof(s.counts));
		scan_superblock(&s);
		scan_free(&s);
		return exit_code(s.worst);
	}
	if (a.json)
		dump_json(&s, !a.summary);
	else
		dump_human(&s, !a.summary);
	if (!ok || s.worst >= SEV_CORRUPT)
		errorf("%s: the kernel would refuse this cache ('%s check %s' says why); "
		       "the mappings above are what the valid metadata holds",
		       s.path, progname, s.path);
	else if (needs_check(&s))
		errorf("%s: a metadata commit failed while the cache was in use: the "
		       "kernel refuses it until '%s check --clear-needs-check %s'",
		       s.path, progname, s.path);
	else if (s.worst >= SEV_DAMAGED)
		notef("%s: some metadata copies are damaged ('%s check %s')",
		      s.path, progname, s.path);
	scan_free(&s);
	return !ok || s.worst >= SEV_CORRUPT || needs_check(&s) ?
	       EXIT_MD_CORRUPT : EXIT_OK;
}

/*
 * check --clear-needs-check: rewrite the superblock copy in use without
 * the mark, the rest of it unchanged.  Only on a device nothing holds.
 *
 * The sequence stays the one the scan judged the pages against (checked
 * below): only the flag changes.  Page copies above it (those of the
 * failed commit, or of a torn one) stay above the superblock's and so
 * stay rejected, as they were; a higher sequence here could make such a
 * copy, never committed, acceptable.  The kernel's next load rewrites
 * them with the committed copies before it commits.
 */
static int clear_needs_check(struct scan *s)
{
	uint8_t *buf = aligned_alloc_or_die(STASH_MD_BLOCK_BYTES);
	uint64_t sector = (uint64_t)s->sb_copy * STASH_MD_BLOCK_SECTORS;
	struct stash_sb_ident id;
	struct stash_sb sb;
	const char *why;
	int fd, r = EXIT_FAILED;

	/* The scan's descriptor holds the device exclusively too. */
	close(s->fd);
	s->fd = -1;
	/* O_DIRECT: the kernel wrote the mark past the page cache. */
	fd = open(s->path, O_RDWR | O_EXCL | O_DIRECT | O_CLOEXEC);
	if (fd < 0 && errno == EINVAL)	/* an image file on tmpfs */
		fd = open(s->path, O_RDWR | O_EXCL | O_CLOEXEC);
	if (fd < 0) {
		errorf("cannot open %s for writing%s: %s", s->path,
		       errno == EBUSY ? " (in use: remove the stash device first)" : "",
		       strerror(errno));
		free(buf);
		return errno == EACCES || errno == EPERM ? EXIT_PERM : EXIT_FAILED;
	}
	if (pread(fd, buf, STASH_MD_BLOCK_BYTES, (off_t)(sector * 512)) !=
	    STASH_MD_BLOCK_BYTES || stash_sb_decode(buf, &sb, &why) ||
	    sb.seq != s->sb.seq || !(sb.flags & STASH_SB_FLAG_NEEDS_CHECK)) {
		errorf("%s: superblock copy %d changed while it was checked", s->path,
		       s->sb_copy);
		goto out;
	}
	stash_sb_decode_ident(buf, &id);
	sb.flags &= ~STASH_SB_FLAG_NEEDS_CHECK;
	stash_sb_encode_ident(&sb, &id, buf);
	if (pwrite(fd, buf, STASH_MD_BLOCK_BYTES, (off_t)(sector * 512)) !=
	    STASH_MD_BLOCK_BYTES || fsync(fd)) {
		errorf("%s: cannot write superblock copy %d: %s", s->path, s->sb_copy,
		       strerror(errno));
		goto out;
	}
	printf("%s: 'needs check' cleared (superblock copy %d): the kernel loads "
	       "this cache again\n", s->path, s->sb_copy);
	r = EXIT_OK;
out:
	close(fd);
	free(buf);
	return r;
}

int cmd_check(int argc, char **argv)
{
	struct scan s = { .fd = -1 };
	struct offline_args a = { 0 };
	unsigned int k;
	int r;

	r = parse_args(argc, argv, &a);
	if (r)
		return r < 0 ? EXIT_OK : r;
	s.path = a.path;
	r = open_device(&s);
	if (r)
		return r;
	s.report = !a.quiet;
	s.out = stdout;
	scan_device(&s);
	for (k = 0; k < ARRAY_SIZE(s.counts); k++)
		if (s.report && s.counts[k] > MAX_REPORTS)
			printf("%s: %s: %u more like the above\n", s.path,
			       severity_names[k], s.counts[k] - MAX_REPORTS);
	switch (s.worst) {
	case SEV_NOTE:
	case SEV_DAMAGED:
		if (needs_check(&s)) {
			printf("%s: needs check: its metadata is intact (%llu valid "
			       "blocks, %llu dirty) and is the last commit before the "
			       "failure. '%s check --clear-needs-check %s' lets the "
			       "kernel load it (see stashctl(8) first); 'format' in the "
			       "table discards it\n", s.path, (unsigned long long)s.valid,
			       (unsigned long long)s.dirty, progname, s.path);
			break;
		}
		if (s.worst == SEV_NOTE)
			printf("%s: clean: %llu valid blocks, %llu dirty; the kernel "
			       "loads this cache as it is\n", s.path,
			       (unsigned long long)s.valid, (unsigned long long)s.dirty);
		else
			printf("%s: damaged, recoverable: the kernel loads this cache "
			       "from the intact copies (%llu valid blocks, %llu dirty) and "
			       "its next commits rewrite the damaged ones\n", s.path,
			       (unsigned long long)s.valid, (unsigned long long)s.dirty);
		break;
	case SEV_CORRUPT:
		printf("%s: corrupt: the kernel refuses this cache; its dirty blocks, "
		       "if any, are not on the origin. Keep the device as it is; "
		       "'format' in the table discards what it holds\n", s.path);
		break;
	default:
		printf("%s: not a dm-stash cache device\n", s.path);
		break;
	}
	r = exit_code(s.worst);
	if (a.clear_needs_check) {
		if (!needs_check(&s))
			printf("%s: no 'needs check' mark to clear\n", s.path);
		else if (s.worst >= SEV_CORRUPT)
			errorf("%s: the metadata is corrupt: the mark stays", s.path);
		else if ((k = clear_needs_check(&s)))
			r = (int)k;
	} else if (needs_check(&s) && r != EXIT_MD_CORRUPT) {
		r = EXIT_MD_CORRUPT;	/* the kernel refuses it */
	}
	scan_free(&s);
	return r;
}
