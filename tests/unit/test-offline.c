// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl dump and check on cache images built here with the module's
 * encoder (kmod/stash-format.c): recovery's choices (docs/format.md,
 * Recovery) as the offline commands report them.  Each test writes a
 * small cache (three metadata pages) to a temporary file and runs
 * $STASHCTL on it (tests/unit/Makefile sets it to the ASan build of
 * userspace-tools; run from tests/unit, the default finds it too).
 *
 * The image, unless a test changes it: the superblock in use is copy
 * (seq % 2), the other copy holds the commit before; every page has a
 * valid, empty copy 0 with sequence 1 and copy 1 with sequence 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stash-format.h"
#include "unit.h"

#define EPP		STASH_MD_ENTRIES_PER_PAGE
/* 1100 slots of 4 KiB: three metadata pages (0..509, 510..1019, 1020..). */
#define IMG_BLOCK	8u
#define IMG_SLOTS	1100u
#define IMG_CACHE	(STASH_MD_START + 3 * 2 * STASH_MD_BLOCK_SECTORS + \
			 IMG_SLOTS * IMG_BLOCK)
#define IMG_ORIGIN	(1ull << 20)

struct img {
	char path[64];
	int fd;
	struct stash_sb sb;	/* the superblock in use */
};

/* One entry: an absolute slot, its origin block and state. */
struct ent {
	u32 slot;
	u64 oblock;
	bool dirty;
};

/* The test's image, removed when its process exits. */
static char img_path[64];

static void img_unlink(void)
{
	if (img_path[0])
		unlink(img_path);
}

static void img_write(struct img *im, const void *block, u64 sector)
{
	CHECK_EQ(pwrite(im->fd, block, STASH_MD_BLOCK_BYTES,
			(off_t)(sector * 512)), STASH_MD_BLOCK_BYTES);
}

static void img_read(struct img *im, void *block, u64 sector)
{
	CHECK_EQ(pread(im->fd, block, STASH_MD_BLOCK_BYTES,
		       (off_t)(sector * 512)), STASH_MD_BLOCK_BYTES);
}

/* Superblock copy @copy with sequence @seq and @flags. */
static void img_sb(struct img *im, int copy, u64 seq, u32 flags)
{
	struct stash_sb sb = im->sb;
	u8 block[STASH_MD_BLOCK_BYTES];

	sb.seq = seq;
	sb.flags = flags;
	stash_sb_encode(&sb, block);
	img_write(im, block, (u64)copy * STASH_MD_BLOCK_SECTORS);
}

/* Page @p, copy @copy, sequence @seq, holding the @n entries @e. */
static void img_page(struct img *im, u32 p, int copy, u64 seq,
		     const struct ent *e, unsigned int n)
{
	u8 block[STASH_MD_BLOCK_BYTES];
	u64 entries[EPP] = { 0 };

	for (unsigned int i = 0; i < n; i++) {
		CHECK_EQ(e[i].slot / EPP, p);
		entries[e[i].slot % EPP] = stash_md_entry(true, e[i].dirty,
							  e[i].oblock);
	}
	stash_md_page_encode(block, p, seq, entries);
	img_write(im, block, stash_md_page_sector(&im->sb.geo, p, copy));
}

/*
 * Damage page @p's copy @copy (a flipped bit among its entries: the
 * checksum no longer matches), after setting its index and sequence
 * fields to @index and @seq.
 */
static void img_damage_page(struct img *im, u32 p, int copy, u32 index, u64 seq)
{
	struct stash_md_page_disk d;
	u64 sector = stash_md_page_sector(&im->sb.geo, p, copy);

	img_read(im, &d, sector);
	d.index = cpu_to_le32(index);
	d.seq = cpu_to_le64(seq);
	((u8 *)d.entries)[2000] ^= 0x10;
	img_write(im, &d, sector);
}

/*
 * A new image whose superblock in use has @seq (at least 3) and @flags;
 * the other copy has seq - 1, unclean.
 */
static void img_new(struct img *im, u64 seq, u32 flags)
{
	const char *dir = getenv("TMPDIR");

	memset(im, 0, sizeof(*im));
	snprintf(im->path, sizeof(im->path), "%s/stash-offline-XXXXXX",
		 dir && strlen(dir) < 32 ? dir : "/tmp");
	im->fd = mkstemp(im->path);
	REQUIRE(im->fd >= 0);
	if (!img_path[0])
		atexit(img_unlink);
	memcpy(img_path, im->path, sizeof(img_path));
	REQUIRE_EQ(ftruncate(im->fd, (off_t)IMG_CACHE * 512), 0);
	REQUIRE_EQ(stash_geometry_compute(&im->sb.geo, IMG_CACHE, IMG_ORIGIN,
					  IMG_BLOCK, 1), 0);
	REQUIRE_EQ(im->sb.geo.nr_cblocks, IMG_SLOTS);
	REQUIRE_EQ(im->sb.geo.md_pages, 3);
	for (int i = 0; i < 16; i++)
		im->sb.uuid[i] = (u8)(0x40 + i);
	im->sb.mode = 2;	/* writeback */
	im->sb.seq = seq;
	im->sb.flags = flags;
	img_sb(im, (int)(seq % 2), seq, flags);
	img_sb(im, (int)((seq + 1) % 2), seq - 1, 0);
	for (u32 p = 0; p < 3; p++) {
		img_page(im, p, 0, 1, NULL, 0);
		img_page(im, p, 1, 2, NULL, 0);
	}
}

/* Output of the last run_stashctl(), stdout and stderr together. */
static char out[1 << 18];

/* Run "stashctl @cmd [@opt] IMAGE"; its exit status (-1: did not run). */
static int run_stashctl(struct img *im, const char *cmd, const char *opt)
{
	const char *prog = getenv("STASHCTL");
	char *argv[5];
	size_t len = 0;
	int fds[2], status, argc = 0;
	ssize_t n;
	pid_t pid;

	if (!prog)
		prog = "../../userspace-tools/stashctl-asan";
	argv[argc++] = (char *)prog;
	argv[argc++] = (char *)cmd;
	if (opt)
		argv[argc++] = (char *)opt;
	argv[argc++] = im->path;
	argv[argc] = NULL;
	out[0] = '\0';
	if (pipe(fds))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		close(im->fd);
		execv(prog, argv);
		fprintf(stderr, "cannot run %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0 ||
	       (n < 0 && errno == EINTR))
		len += n > 0 ? (size_t)n : 0;
	out[len] = '\0';
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* The last output has (@want) or has not a line containing the text. */
static bool has(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static bool has(const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return strstr(out, text) != NULL;
}

/* Print the last output when a test failed, once. */
static void show_output(const char *what)
{
	if (test_failed())
		printf("    --- %s:\n%s    ---\n", what, out);
}

/* dump --json: what recovery loads, as mappings and counters. */
static bool mapped(u32 slot, u64 oblock, bool dirty)
{
	return has("{\"cblock\": %u, \"oblock\": %llu, \"dirty\": %s}", slot,
		   (unsigned long long)oblock, dirty ? "true" : "false");
}

static bool oblock_loaded(u64 oblock)
{
	return has("\"oblock\": %llu,", (unsigned long long)oblock);
}

TEST(offline_clean_image)
{
	static const struct ent p0[] = {
		{ 3, 100, true }, { 4, 101, false },
	};
	static const struct ent p2[] = { { 1099, 7, true } };
	struct img im;

	img_new(&im, 6, STASH_SB_FLAG_CLEAN);
	img_page(&im, 0, 0, 5, p0, 2);
	img_page(&im, 2, 1, 6, p2, 1);
	CHECK_EQ(run_stashctl(&im, "check", NULL), 0);
	CHECK(has("clean: 3 valid blocks, 2 dirty"));
	show_output("check");
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(has("\"superblock\": {\"copy\": 0, \"seq\": 6, \"clean_shutdown\": true"));
	CHECK(has("{\"page\": 0, \"copy\": 0, \"seq\": 5"));
	CHECK(has("{\"page\": 2, \"copy\": 1, \"seq\": 6"));
	CHECK(mapped(3, 100, true));
	CHECK(mapped(4, 101, false));
	CHECK(mapped(1099, 7, true));
	CHECK(has("\"valid_blocks\": 3, \"dirty_blocks\": 2,"));
	CHECK(has("\"dropped_clean\": 0, \"dropped_duplicates\": 0"));
	show_output("dump --json");
}

/* Unclean shutdown: only the dirty mappings are loaded. */
TEST(offline_unclean_drops_clean)
{
	static const struct ent p0[] = {
		{ 3, 100, true }, { 4, 101, false },
	};
	struct img im;

	img_new(&im, 6, 0);
	img_page(&im, 0, 0, 5, p0, 2);
	CHECK_EQ(run_stashctl(&im, "check", NULL), 0);
	CHECK(has("note: not shut down cleanly"));
	show_output("check");
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(mapped(3, 100, true));
	CHECK(!oblock_loaded(101));
	CHECK(has("\"dropped_clean\": 1, \"dropped_duplicates\": 0"));
	show_output("dump --json");
}

/* One origin block dirty in two pages: the newer page's entry wins. */
TEST(offline_dup_newer_dirty_wins)
{
	static const struct ent p0[] = { { 5, 77, true } };
	static const struct ent p1[] = { { 513, 77, true } };
	struct img im;

	img_new(&im, 10, 0);
	img_page(&im, 0, 0, 8, p0, 1);
	img_page(&im, 1, 1, 9, p1, 1);
	CHECK_EQ(run_stashctl(&im, "check", NULL), 0);
	CHECK(has("origin block 77 is in slots 5 and 513"));
	show_output("check");
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(mapped(513, 77, true));
	CHECK(!mapped(5, 77, true));
	CHECK(has("\"dropped_clean\": 0, \"dropped_duplicates\": 1"));
	show_output("dump --json");
}

/* The same origin block twice in pages of one commit: refused. */
TEST(offline_dup_same_seq_refused)
{
	static const struct ent p0[] = { { 5, 77, true } };
	static const struct ent p1[] = { { 513, 77, true } };
	struct img im;

	img_new(&im, 10, 0);
	img_page(&im, 0, 0, 9, p0, 1);
	img_page(&im, 1, 1, 9, p1, 1);
	CHECK_EQ(run_stashctl(&im, "check", NULL), 7);
	CHECK(has("corrupt: origin block 77 is mapped by slots 5 and 513 in one commit"));
	show_output("check");
}

/*
 * Origin block 77 recorded clean in page 0 (sequence 10: dropped from
 * slot 513 and promoted again into slot 5, recorded by the last commit)
 * and dirty in page 1, whose newest copy is older (8: a page that commit
 * did not rewrite, e.g. one a multi-commit suspend had not reached yet).
 */
static void img_newer_clean_older_dirty(struct img *im, u32 flags)
{
	static const struct ent p0[] = { { 5, 77, false }, { 6, 200, true } };
	static const struct ent p1[] = { { 513, 77, true } };

	img_new(im, 10, flags);
	img_page(im, 0, 1, 10, p0, 2);
	img_page(im, 1, 0, 8, p1, 1);
}

/*
 * After an unclean shutdown the older dirty entry stays and the newer
 * clean one goes (as a clean entry, before duplicates are looked for):
 * page 1 was not written since the block left slot 513, so no flush
 * completed since, and the origin may not hold its data durably.  Break
 * this catches: the newer page winning (block 77 read from the origin).
 */
TEST(offline_dup_older_dirty_beats_newer_clean_unclean)
{
	struct img im;

	img_newer_clean_older_dirty(&im, 0);
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(mapped(513, 77, true));
	CHECK(!mapped(5, 77, false));
	CHECK(mapped(6, 200, true));
	CHECK(has("\"valid_blocks\": 2, \"dirty_blocks\": 2,"));
	CHECK(has("\"dropped_clean\": 1, \"dropped_duplicates\": 0"));
	show_output("dump --json");
	CHECK_EQ(run_stashctl(&im, "check", NULL), 0);
	CHECK(has("clean: 2 valid blocks, 2 dirty"));
	show_output("check");
}

/* After a clean shutdown the newer clean entry is loaded. */
TEST(offline_dup_newer_clean_wins_clean_shutdown)
{
	struct img im;

	img_newer_clean_older_dirty(&im, STASH_SB_FLAG_CLEAN);
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(mapped(5, 77, false));
	CHECK(!mapped(513, 77, true));
	CHECK(mapped(6, 200, true));
	CHECK(has("\"valid_blocks\": 2, \"dirty_blocks\": 1,"));
	CHECK(has("\"dropped_clean\": 0, \"dropped_duplicates\": 1"));
	show_output("dump --json");
}

/*
 * A newer dirty entry over an older clean one, unclean shutdown: the
 * clean one goes as a clean entry, before duplicates are looked for.
 */
TEST(offline_dup_newer_dirty_over_older_clean_unclean)
{
	static const struct ent p0[] = { { 5, 77, true } };
	static const struct ent p1[] = { { 513, 77, false } };
	struct img im;

	img_new(&im, 10, 0);
	img_page(&im, 0, 1, 10, p0, 1);
	img_page(&im, 1, 0, 8, p1, 1);
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(mapped(5, 77, true));
	CHECK(has("\"dropped_clean\": 1, \"dropped_duplicates\": 0"));
	show_output("dump --json");
}

/*
 * A clean and a dirty entry of one block in pages of one commit: refused
 * after a clean shutdown; after an unclean one the clean entry is dropped
 * before duplicates are looked for (it says nothing the load uses), and
 * the dirty one is loaded.
 */
TEST(offline_dup_clean_and_dirty_same_seq)
{
	static const struct ent p0[] = { { 5, 77, false } };
	static const struct ent p1[] = { { 513, 77, true } };
	struct img im;

	img_new(&im, 10, STASH_SB_FLAG_CLEAN);
	img_page(&im, 0, 1, 9, p0, 1);
	img_page(&im, 1, 0, 9, p1, 1);
	CHECK_EQ(run_stashctl(&im, "check", NULL), 7);
	CHECK(has("corrupt: origin block 77 is mapped by slots 5 and 513 in one commit"));
	show_output("check");
	close(im.fd);
	unlink(im.path);

	img_new(&im, 10, 0);
	img_page(&im, 0, 1, 9, p0, 1);
	img_page(&im, 1, 0, 9, p1, 1);
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(mapped(513, 77, true));
	CHECK(!mapped(5, 77, false));
	CHECK(has("\"dropped_clean\": 1, \"dropped_duplicates\": 0"));
	show_output("dump --json");
}

/*
 * Page 1: copy @ok valid with sequence 6 (origin block 300 dirty in slot
 * 520), the other copy damaged, its index field @index and its sequence
 * field @raw_seq; the superblock has sequence 10, unclean.
 */
static void img_damaged_copy(struct img *im, int ok, u32 index, u64 raw_seq)
{
	static const struct ent p1[] = { { 520, 300, true } };
	static const struct ent p1_other[] = { { 521, 301, true } };

	img_new(im, 10, 0);
	img_page(im, 1, ok, 6, p1, 1);
	img_page(im, 1, 1 - ok, raw_seq, p1_other, 1);
	img_damage_page(im, 1, 1 - ok, index, raw_seq);
}

/*
 * A damaged copy whose index is the page's and whose sequence is above
 * the valid copy's and not above the superblock's is the page's newest
 * committed version: the valid copy is older and may map slots reused
 * since.  The kernel refuses the cache, so check says corrupt (7), and
 * dump loads nothing from that page.
 */
TEST(offline_damaged_newest_copy_refused)
{
	static const u64 seqs[] = { 7, 9, 10 };

	for (int ok = 0; ok < 2; ok++) {
		for (unsigned int i = 0; i < 3; i++) {
			struct img im;
			u64 r = seqs[i];

			test_context("valid copy %d, damaged copy's sequence %llu", ok,
				     (unsigned long long)r);
			img_damaged_copy(&im, ok, 1, r);
			CHECK_EQ(run_stashctl(&im, "check", NULL), 7);
			CHECK(has("corrupt: metadata page 1: its newest copy (copy %d, "
				  "sequence %llu, not above the superblock's 10: "
				  "committed) is damaged: metadata page checksum mismatch; "
				  "copy %d (sequence 6) is older and may map slots reused "
				  "since", 1 - ok, (unsigned long long)r, ok));
			CHECK(has(": corrupt: the kernel refuses this cache"));
			show_output("check");
			CHECK_EQ(run_stashctl(&im, "dump", "--json"), 7);
			CHECK(has("{\"page\": 1, \"copy\": -1, \"newest_damaged\": true,"));
			CHECK(has("{\"page\": 0, \"copy\": 1, \"seq\": 2, "
				  "\"newest_damaged\": false,"));
			CHECK(has("\"raw_index\": 1, \"raw_seq\": %llu}",
				  (unsigned long long)r));
			CHECK(!oblock_loaded(300));
			CHECK(has("the kernel would refuse this cache"));
			show_output("dump --json");
			close(im.fd);
			unlink(im.path);
		}
	}
}

/*
 * A damaged copy with a sequence above the superblock's (a commit cut
 * short) is damaged but unused, as before: exit 6, the valid copy loaded.
 */
TEST(offline_damaged_copy_above_superblock)
{
	struct img im;

	img_damaged_copy(&im, 0, 1, 11);
	CHECK_EQ(run_stashctl(&im, "check", NULL), 6);
	CHECK(has("damaged: metadata page 1 copy 1: metadata page checksum "
		  "mismatch (its sequence field, 11, is above the superblock's"));
	CHECK(!has("corrupt"));
	show_output("check");
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(has("{\"page\": 1, \"copy\": 0, \"seq\": 6, \"newest_damaged\": false,"));
	CHECK(mapped(520, 300, true));
	show_output("dump --json");
}

/*
 * A damaged copy with a sequence not above the valid copy's is an older
 * version: damaged, unused (6).
 */
TEST(offline_damaged_copy_older)
{
	static const u64 seqs[] = { 2, 5, 6 };

	for (unsigned int i = 0; i < 3; i++) {
		struct img im;

		test_context("damaged copy's sequence %llu", (unsigned long long)seqs[i]);
		img_damaged_copy(&im, 1, 1, seqs[i]);
		CHECK_EQ(run_stashctl(&im, "check", NULL), 6);
		CHECK(has("damaged: metadata page 1 copy 0: metadata page checksum "
			  "mismatch; the kernel uses copy 1"));
		CHECK(!has("corrupt"));
		show_output("check");
		CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
		CHECK(mapped(520, 300, true));
		show_output("dump --json");
		close(im.fd);
		unlink(im.path);
	}
}

/*
 * A damaged copy whose index field is not the page's is not that page's
 * version, whatever its sequence: damaged, unused (6).
 */
TEST(offline_damaged_copy_other_index)
{
	struct img im;

	img_damaged_copy(&im, 0, 2, 9);
	CHECK_EQ(run_stashctl(&im, "check", NULL), 6);
	CHECK(has("damaged: metadata page 1 copy 1: metadata page checksum "
		  "mismatch; the kernel uses copy 0"));
	show_output("check");
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(has("\"raw_index\": 2, \"raw_seq\": 9}"));
	CHECK(mapped(520, 300, true));
	show_output("dump --json");
}

/*
 * dump counts the valid page copies above the superblock's sequence (a
 * commit cut short: the kernel's next load rewrites them).  A damaged
 * copy's sequence field does not count.
 */
TEST(offline_uncommitted_copies)
{
	static const struct ent p2[] = { { 1030, 400, true } };
	struct img im;

	img_new(&im, 10, 0);
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(has("\"uncommitted_copies\": 0,"));
	show_output("dump --json");
	close(im.fd);
	unlink(im.path);

	/* Page 2 copy 0 from a commit cut short, page 1 copy 1 damaged. */
	img_damaged_copy(&im, 0, 1, 15);
	img_page(&im, 2, 0, 12, p2, 1);
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(has("{\"state\": \"newer\", \"seq\": 12}"));
	CHECK(!oblock_loaded(400));
	CHECK(has("\"uncommitted_copies\": 1,"));
	show_output("dump --json");
	CHECK_EQ(run_stashctl(&im, "dump", NULL), 0);
	CHECK(has("uncommitted        1 page copies of a commit cut short "
		  "(the next load rewrites them)"));
	show_output("dump");
}

/*
 * check --clear-needs-check rewrites the superblock with its sequence
 * unchanged: a page copy of the failed commit, above it, stays ignored.
 */
TEST(offline_clear_needs_check_keeps_seq)
{
	static const struct ent p2[] = { { 1030, 400, true } };
	struct img im;

	/* The mark: the last good superblock, flagged, over the other copy. */
	img_new(&im, 10, 0);
	img_sb(&im, 1, 10, STASH_SB_FLAG_NEEDS_CHECK);
	img_page(&im, 2, 0, 11, p2, 1);
	CHECK_EQ(run_stashctl(&im, "check", NULL), 7);
	CHECK(has("needs check"));
	show_output("check");
	CHECK_EQ(run_stashctl(&im, "check", "--clear-needs-check"), 0);
	CHECK(has("'needs check' cleared (superblock copy 1)"));
	show_output("check --clear-needs-check");
	CHECK_EQ(run_stashctl(&im, "dump", "--json"), 0);
	CHECK(has("\"seq\": 10, \"clean_shutdown\": false, \"needs_check\": false"));
	CHECK(has("[{\"copy\": 0, \"state\": \"valid\", \"seq\": 10}, "
		  "{\"copy\": 1, \"state\": \"valid\", \"seq\": 10}]"));
	CHECK(has("{\"state\": \"newer\", \"seq\": 11}"));
	CHECK(!oblock_loaded(400));
	CHECK(has("\"uncommitted_copies\": 1,"));
	show_output("dump --json");
}
