// SPDX-License-Identifier: GPL-2.0
/*
 * replay-log: read a dm-log-writes log device and replay it onto a device.
 *
 *   replay-log --log LOGDEV --list
 *	one line per entry: "<n> <flags> <sector> <nr_sectors> [<mark>]",
 *	flags a '+'-joined subset of FLUSH FUA DISCARD MARK METADATA, or
 *	WRITE when none; sector and nr_sectors in 512-byte sectors
 *   replay-log --log LOGDEV --points
 *	the numbers of the entries where a crash state is of interest: every
 *	FLUSH, FUA and MARK entry, one a line
 *   replay-log --log LOGDEV --replay DEV --limit N [--from F]
 *		[--zero | --discard] [--subset SEED]
 *		[--tear SEED [--tear-range START:END]]
 *	write entries 0..N (inclusive) to DEV in log order; --zero first
 *	zeroes all of DEV, --discard discards all of DEV instead (BLKDISCARD:
 *	a device that reads zeros after a discard, e.g. null_blk with
 *	discard=1, frees its memory too).  --from F writes only entries
 *	F..N: DEV already holds entries 0..F-1 (an earlier replay to F-1),
 *	so a run of crash states in log order replays each entry once;
 *	F = N + 1 writes none of them (only what --subset and --tear add,
 *	e.g. onto a snapshot of a device that holds 0..N).  --index FILE
 *	keeps where each entry starts in FILE (written by the first run
 *	that names it, over the whole log): later runs seek straight to
 *	entry F instead of reading every header before it
 *
 * Entries after N up to the next FLUSH entry F are the writes that had
 * completed (not all before N: dm-log-writes logs a write only when a
 * flush covers it) but were not yet flushed: a device's volatile write
 * cache may have kept any of them at a crash right after N.
 *   --subset SEED	also applies each of the entries N+1..F-1 with
 *			probability 1/2 (in log order);
 *   --tear SEED	tears one write: it picks one entry of N+1..F (F too
 *			if it carries data) with more than one 512-byte sector
 *			(inside START:END, in 512-byte sectors, if given: e.g.
 *			the metadata area) and applies a random part of its
 *			512-byte sectors (at least one, not all).  If that is
 *			F (a flush's own data, e.g. a superblock written with
 *			PREFLUSH|FUA), every entry before it is applied first
 *			(the flush completed); otherwise the others are applied
 *			as --subset says (not at all without it).
 * SEED picks the random choices (the same SEED, the same state).  What was
 * applied is printed on stderr.
 *
 * On-disk format (drivers/md/dm-log-writes.c, log-writes.rst): sector 0
 * holds struct log_write_super; entries follow from the next log sector
 * (sectorsize bytes, the logged device's logical block size), each one
 * log sector with struct log_write_entry at its start, followed by
 * nr_sectors log sectors of data, except for DISCARD entries (no data) and
 * MARK entries (the mark's text, data_len bytes, inside the entry sector).
 * All fields little-endian; sector and nr_sectors count log sectors.
 *
 * Exit: 0 ok, 2 usage, bad log or I/O error.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>

#define WRITE_LOG_MAGIC		0x6a736677736872ULL
#define WRITE_LOG_VERSION	1ULL
#define LOG_FLUSH_FLAG		(1 << 0)
#define LOG_FUA_FLAG		(1 << 1)
#define LOG_DISCARD_FLAG	(1 << 2)
#define LOG_MARK_FLAG		(1 << 3)
#define LOG_METADATA_FLAG	(1 << 4)

struct log_write_super {
	uint64_t magic;
	uint64_t version;
	uint64_t nr_entries;
	uint32_t sectorsize;
} __attribute__((packed));

struct log_write_entry {
	uint64_t sector;
	uint64_t nr_sectors;
	uint64_t flags;
	uint64_t data_len;
};

static void fatal(const char *fmt, ...)
{
	va_list ap;

	fputs("replay-log: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void read_at(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t r = pread(fd, buf, len, (off_t)off);

	if (r != (ssize_t)len)
		fatal("log read of %zu bytes at %" PRIu64 ": %s", len, off,
		      r < 0 ? strerror(errno) : "short read (log truncated?)");
}

static void write_at(int fd, const void *buf, size_t len, uint64_t off)
{
	ssize_t r = pwrite(fd, buf, len, (off_t)off);

	if (r != (ssize_t)len)
		fatal("replay write of %zu bytes at %" PRIu64 ": %s", len, off,
		      r < 0 ? strerror(errno) : "short write");
}

static void flags_str(uint64_t f, char *s, size_t n)
{
	static const char *const names[] = {
		"FLUSH", "FUA", "DISCARD", "MARK", "METADATA"
	};
	size_t i;

	*s = 0;
	for (i = 0; i < 5; i++)
		if (f & (1ull << i))
			snprintf(s + strlen(s), n - strlen(s), "%s%s",
				 *s ? "+" : "", names[i]);
	if (!*s)
		snprintf(s, n, "WRITE");
}

/* One entry of the log: where it is and what it writes. */
struct entry {
	uint64_t pos;		/* byte offset of its data in the log */
	uint64_t sector;	/* log sectors */
	uint64_t nsec;
	uint64_t flags;
	uint64_t dlen;
	uint64_t bytes;		/* data bytes in the log */
};

static int lfd = -1, tfd = -1;
static uint64_t ss;		/* log sector size */
static char *data;
static size_t data_cap;

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Read entry @i's header at *@pos (advanced past the entry). */
static void read_entry(char *sec, uint64_t i, uint64_t *pos, struct entry *e)
{
	struct log_write_entry d;

	read_at(lfd, sec, ss, *pos);
	memcpy(&d, sec, sizeof(d));
	e->sector = le64toh(d.sector);
	e->nsec = le64toh(d.nr_sectors);
	e->flags = le64toh(d.flags);
	e->dlen = le64toh(d.data_len);
	if (e->flags & ~0x1full)
		fatal("entry %" PRIu64 ": unknown flags %#" PRIx64, i, e->flags);
	e->bytes = (e->flags & (LOG_DISCARD_FLAG | LOG_MARK_FLAG)) ? 0 : e->nsec * ss;
	*pos += ss;
	e->pos = *pos;
	*pos += e->bytes;
}

static void *data_buf(uint64_t bytes)
{
	if (bytes > data_cap) {
		free(data);
		data_cap = bytes;
		data = malloc(data_cap);
		if (!data)
			fatal("out of memory");
	}
	return data;
}

/*
 * Apply entry @e to the target; with @keep (a torn write), only the
 * 512-byte sectors whose bit is set.
 */
static void apply(const struct entry *e, const uint8_t *keep)
{
	if (e->bytes) {
		read_at(lfd, data_buf(e->bytes), e->bytes, e->pos);
		if (!keep) {
			write_at(tfd, data, e->bytes, e->sector * ss);
		} else {
			uint64_t k;

			for (k = 0; k < e->bytes / 512; k++)
				if (keep[k])
					write_at(tfd, data + k * 512, 512,
						 e->sector * ss + k * 512);
		}
	} else if (e->flags & LOG_DISCARD_FLAG) {
		/* The replay target reads zeros after a discard. */
		static char z[65536];
		uint64_t left = e->nsec * ss, off = e->sector * ss;

		while (left) {
			size_t n = left < sizeof(z) ? left : sizeof(z);

			write_at(tfd, z, n, off);
			off += n;
			left -= n;
		}
	}
}

/*
 * Where entry @i (0..@nr, @nr: the end of the log) starts, from the index
 * file @path; the first call that finds no such file writes it, reading
 * every header once.
 */
static uint64_t index_pos(const char *path, uint64_t nr, char *sec, uint64_t i)
{
	uint64_t pos = ss, k, *idx, at;
	struct entry e;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0) {
		char tmp[4096];

		if (errno != ENOENT)
			fatal("%s: %s", path, strerror(errno));
		idx = malloc((nr + 1) * sizeof(*idx));
		if (!idx)
			fatal("out of memory");
		for (k = 0; k < nr; k++) {
			idx[k] = pos;
			read_entry(sec, k, &pos, &e);
		}
		idx[nr] = pos;
		/*
		 * Several replays may build it at once (test 53's checkers):
		 * each writes its own file and renames it into place.
		 */
		snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			fatal("%s: %s", tmp, strerror(errno));
		write_at(fd, idx, (nr + 1) * sizeof(*idx), 0);
		if (close(fd) || rename(tmp, path))
			fatal("%s: %s", path, strerror(errno));
		at = idx[i];
		free(idx);
		return at;
	}
	{
		struct stat st;

		if (fstat(fd, &st) || (uint64_t)st.st_size != (nr + 1) * sizeof(at))
			fatal("%s: not an index of this log (%" PRIu64 " entries)",
			      path, nr);
	}
	if (pread(fd, &at, sizeof(at), (off_t)(i * sizeof(at))) != sizeof(at))
		fatal("%s: cannot read entry %" PRIu64, path, i);
	close(fd);
	return at;
}

static void clear_target(const char *target, bool discard)
{
	off_t end = lseek(tfd, 0, SEEK_END);
	size_t chunk = 1 << 20;
	char *z;
	off_t o;

	if (end < 0)
		fatal("%s: cannot size it", target);
	if (discard) {
		uint64_t range[2] = { 0, (uint64_t)end };

		if (ioctl(tfd, BLKDISCARD, range))
			fatal("%s: BLKDISCARD: %s", target, strerror(errno));
		return;
	}
	z = calloc(1, chunk);
	if (!z)
		fatal("%s: cannot zero", target);
	for (o = 0; o < end; o += chunk)
		write_at(tfd, z, (size_t)(end - o < (off_t)chunk ? end - o : (off_t)chunk), o);
	free(z);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log", required_argument, NULL, 'l' },
		{ "list", no_argument, NULL, 'L' },
		{ "points", no_argument, NULL, 'p' },
		{ "replay", required_argument, NULL, 'r' },
		{ "limit", required_argument, NULL, 'n' },
		{ "from", required_argument, NULL, 'f' },
		{ "zero", no_argument, NULL, 'z' },
		{ "discard", no_argument, NULL, 'd' },
		{ "subset", required_argument, NULL, 's' },
		{ "tear", required_argument, NULL, 't' },
		{ "tear-range", required_argument, NULL, 'R' },
		{ "index", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char *logpath = NULL, *target = NULL, *index = NULL;
	bool list = false, points = false, zero = false, discard = false;
	bool subset = false, tear = false;
	uint64_t limit = UINT64_MAX, from = 0, nr, i, pos, subset_seed = 0, tear_seed = 0;
	uint64_t tear_lo = 0, tear_hi = UINT64_MAX;
	struct log_write_super super;
	struct entry e;
	char *sec;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': logpath = optarg; break;
		case 'L': list = true; break;
		case 'p': points = true; break;
		case 'r': target = optarg; break;
		case 'n': limit = strtoull(optarg, NULL, 0); break;
		case 'f': from = strtoull(optarg, NULL, 0); break;
		case 'i': index = optarg; break;
		case 'z': zero = true; break;
		case 'd': discard = true; break;
		case 's': subset = true; subset_seed = strtoull(optarg, NULL, 0); break;
		case 't': tear = true; tear_seed = strtoull(optarg, NULL, 0); break;
		case 'R':
			if (sscanf(optarg, "%" SCNu64 ":%" SCNu64, &tear_lo, &tear_hi) != 2 ||
			    tear_lo >= tear_hi)
				fatal("bad --tear-range %s", optarg);
			break;
		default: return 2;
		}
	}
	if (!logpath || (list + points + !!target) != 1 ||
	    (target && limit == UINT64_MAX) || (zero && discard) ||
	    (!target && (zero || discard || subset || tear || from)) ||
	    (from && (zero || discard || from > limit + 1))) {
		fprintf(stderr, "usage: replay-log --log LOGDEV (--list | --points | --replay DEV --limit N [--from F] [--zero | --discard] [--subset SEED] [--tear SEED [--tear-range START:END]])\n");
		return 2;
	}

	lfd = open(logpath, O_RDONLY);
	if (lfd < 0)
		fatal("%s: %s", logpath, strerror(errno));
	/*
	 * dm writes below the page cache: drop what it holds of the devices
	 * so that buffered I/O sees the disks (fails harmlessly on a file).
	 */
	ioctl(lfd, BLKFLSBUF, 0);
	read_at(lfd, &super, sizeof(super), 0);
	if (le64toh(super.magic) != WRITE_LOG_MAGIC)
		fatal("%s: not a dm-log-writes log (bad magic)", logpath);
	if (le64toh(super.version) != WRITE_LOG_VERSION)
		fatal("%s: log version %" PRIu64 " unknown", logpath,
		      le64toh(super.version));
	ss = le32toh(super.sectorsize);
	if (ss < 512 || ss > 65536 || (ss & (ss - 1)))
		fatal("%s: bad sector size %" PRIu64, logpath, ss);
	nr = le64toh(super.nr_entries);
	sec = malloc(ss);
	if (!sec)
		fatal("out of memory");

	if (target) {
		tfd = open(target, O_WRONLY);
		if (tfd < 0)
			fatal("%s: %s", target, strerror(errno));
		ioctl(tfd, BLKFLSBUF, 0);
		if (zero || discard)
			clear_target(target, discard);
	}

	pos = ss;	/* the first entry follows the super block */
	i = 0;
	if (index && target && from) {
		i = from < nr ? from : nr;
		pos = index_pos(index, nr, sec, i);
	}
	for (; i < nr && i <= limit; i++) {
		char fl[64];

		read_entry(sec, i, &pos, &e);
		if (list) {
			flags_str(e.flags, fl, sizeof(fl));
			printf("%" PRIu64 " %s %" PRIu64 " %" PRIu64, i, fl,
			       e.sector * (ss / 512), e.nsec * (ss / 512));
			if (e.flags & LOG_MARK_FLAG) {
				if (e.dlen > ss - sizeof(struct log_write_entry))
					fatal("entry %" PRIu64 ": mark too long", i);
				printf(" %.*s", (int)e.dlen,
				       sec + sizeof(struct log_write_entry));
			}
			putchar('\n');
		} else if (points) {
			if (e.flags & (LOG_FLUSH_FLAG | LOG_FUA_FLAG | LOG_MARK_FLAG))
				printf("%" PRIu64 "\n", i);
		} else if (i >= from) {
			apply(&e, NULL);
		}
	}
	if (target && from >= i)
		fprintf(stderr, "replay-log: entries 0..%" PRIu64 " of %" PRIu64
			" already there", i ? i - 1 : 0, nr);
	else if (target)
		fprintf(stderr, "replay-log: replayed entries %" PRIu64 "..%" PRIu64
			" of %" PRIu64, from, i - 1, nr);

	if (target && (subset || tear)) {
		/* The entries up to the next FLUSH one (included). */
		struct entry *ents = NULL;
		uint64_t n = 0, cap = 0, first = i, victim = UINT64_MAX, k, applied = 0;
		uint64_t cands = 0;
		uint8_t *keep = NULL;

		for (; i < nr; i++) {
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				ents = realloc(ents, cap * sizeof(*ents));
				if (!ents)
					fatal("out of memory");
			}
			read_entry(sec, i, &pos, &ents[n++]);
			if (ents[n - 1].flags & LOG_FLUSH_FLAG)
				break;
		}
		/* n entries first..first+n-1; the last is the FLUSH one if i < nr. */
		if (tear) {
			rng_state = tear_seed * 0x2545f4914f6cdd1dull + 1;
			for (k = 0; k < n; k++) {
				const struct entry *t = &ents[k];
				uint64_t s0 = t->sector * (ss / 512);

				if (!t->bytes || t->bytes < 1024 || s0 < tear_lo ||
				    s0 + t->bytes / 512 > tear_hi)
					continue;
				/* Reservoir sampling: each candidate equally likely. */
				if (rng() % ++cands == 0)
					victim = k;
			}
		}
		if (victim != UINT64_MAX) {
			const struct entry *t = &ents[victim];
			uint64_t ns = t->bytes / 512, kept = 0, tries;

			keep = calloc(ns, 1);
			if (!keep)
				fatal("out of memory");
			for (tries = 0; tries < 64 && (kept == 0 || kept == ns); tries++) {
				kept = 0;
				for (k = 0; k < ns; k++)
					kept += keep[k] = rng() & 1;
			}
			if (kept == 0 || kept == ns) {
				/* Unlucky: keep the first sector only. */
				memset(keep, 0, ns);
				keep[0] = 1;
			}
		}
		/* In log order: later writes may overlap earlier ones. */
		rng_state = subset_seed * 0x9e3779b97f4a7c15ull + 7;
		for (k = 0; k < n; k++) {
			if (k == victim) {
				apply(&ents[k], keep);
				continue;
			}
			if (ents[k].flags & LOG_FLUSH_FLAG)
				continue;	/* a flush's own data only torn */
			if (victim != UINT64_MAX && (ents[victim].flags & LOG_FLUSH_FLAG)) {
				apply(&ents[k], NULL);	/* its preflush completed */
				applied++;
			} else if (subset && (rng() & 1)) {
				apply(&ents[k], NULL);
				applied++;
			}
		}
		if (n)
			fprintf(stderr, "; then %" PRIu64 " of the %" PRIu64
				" entries %" PRIu64 "..%" PRIu64 " before the next flush",
				applied, (ents[n - 1].flags & LOG_FLUSH_FLAG) ? n - 1 : n,
				first, first + n - 1);
		if (tear && victim == UINT64_MAX) {
			fprintf(stderr, "; no write to tear among them");
		} else if (tear) {
			const struct entry *t = &ents[victim];
			uint64_t ns = t->bytes / 512, kept = 0;

			for (k = 0; k < ns; k++)
				kept += keep[k];
			fprintf(stderr, "; tore entry %" PRIu64 "%s (sector %" PRIu64
				", %" PRIu64 " of its %" PRIu64 " sectors written)",
				first + victim, (t->flags & LOG_FLUSH_FLAG) ? " (the flush)" : "",
				t->sector * (ss / 512), kept, ns);
		}
		free(keep);
		free(ents);
	}
	if (target) {
		fputc('\n', stderr);
		if (fsync(tfd))
			fatal("%s: fsync: %s", target, strerror(errno));
		close(tfd);
	}
	close(lfd);
	free(sec);
	free(data);
	return 0;
}
