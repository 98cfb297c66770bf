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
 *   replay-log --log LOGDEV --replay DEV --limit N [--zero]
 *	write entries 0..N (inclusive) to DEV in log order; --zero first
 *	zeroes all of DEV
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log", required_argument, NULL, 'l' },
		{ "list", no_argument, NULL, 'L' },
		{ "points", no_argument, NULL, 'p' },
		{ "replay", required_argument, NULL, 'r' },
		{ "limit", required_argument, NULL, 'n' },
		{ "zero", no_argument, NULL, 'z' },
		{ NULL, 0, NULL, 0 },
	};
	const char *logpath = NULL, *target = NULL;
	bool list = false, points = false, zero = false;
	uint64_t limit = UINT64_MAX, nr, i, pos, ss;
	struct log_write_super super;
	int lfd, tfd = -1, c;
	char *sec, *data = NULL;
	size_t data_cap = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': logpath = optarg; break;
		case 'L': list = true; break;
		case 'p': points = true; break;
		case 'r': target = optarg; break;
		case 'n': limit = strtoull(optarg, NULL, 0); break;
		case 'z': zero = true; break;
		default: return 2;
		}
	}
	if (!logpath || (list + points + !!target) != 1 ||
	    (target && limit == UINT64_MAX)) {
		fprintf(stderr, "usage: replay-log --log LOGDEV (--list | --points | --replay DEV --limit N [--zero])\n");
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
		if (zero) {
			off_t end = lseek(tfd, 0, SEEK_END);
			size_t chunk = 1 << 20;
			char *z = calloc(1, chunk);
			off_t o;

			if (end < 0 || !z)
				fatal("%s: cannot zero", target);
			for (o = 0; o < end; o += chunk)
				write_at(tfd, z, (size_t)(end - o < (off_t)chunk ?
							   end - o : (off_t)chunk), o);
			free(z);
		}
	}

	pos = ss;	/* the first entry follows the super block */
	for (i = 0; i < nr && i <= limit; i++) {
		struct log_write_entry e;
		uint64_t sector, nsec, flags, dlen, bytes;
		char fl[64];

		read_at(lfd, sec, ss, pos);
		memcpy(&e, sec, sizeof(e));
		sector = le64toh(e.sector);
		nsec = le64toh(e.nr_sectors);
		flags = le64toh(e.flags);
		dlen = le64toh(e.data_len);
		pos += ss;
		if (flags & ~0x1full)
			fatal("entry %" PRIu64 ": unknown flags %#" PRIx64, i, flags);
		bytes = (flags & (LOG_DISCARD_FLAG | LOG_MARK_FLAG)) ? 0 : nsec * ss;

		if (list) {
			flags_str(flags, fl, sizeof(fl));
			printf("%" PRIu64 " %s %" PRIu64 " %" PRIu64, i, fl,
			       sector * (ss / 512), nsec * (ss / 512));
			if (flags & LOG_MARK_FLAG) {
				if (dlen > ss - sizeof(e))
					fatal("entry %" PRIu64 ": mark too long", i);
				printf(" %.*s", (int)dlen, sec + sizeof(e));
			}
			putchar('\n');
		} else if (points) {
			if (flags & (LOG_FLUSH_FLAG | LOG_FUA_FLAG | LOG_MARK_FLAG))
				printf("%" PRIu64 "\n", i);
		} else if (bytes) {
			if (bytes > data_cap) {
				free(data);
				data_cap = bytes;
				data = malloc(data_cap);
				if (!data)
					fatal("out of memory");
			}
			read_at(lfd, data, bytes, pos);
			write_at(tfd, data, bytes, sector * ss);
		} else if (flags & LOG_DISCARD_FLAG) {
			/* The replay target reads zeros after a discard. */
			static char z[65536];
			uint64_t left = nsec * ss, off = sector * ss;

			while (left) {
				size_t n = left < sizeof(z) ? left : sizeof(z);

				write_at(tfd, z, n, off);
				off += n;
				left -= n;
			}
		}
		pos += bytes;
	}
	if (target) {
		if (fsync(tfd))
			fatal("%s: fsync: %s", target, strerror(errno));
		close(tfd);
		fprintf(stderr, "replay-log: replayed entries 0..%" PRIu64 " of %" PRIu64 "\n",
			i ? i - 1 : 0, nr);
	}
	close(lfd);
	free(sec);
	free(data);
	return 0;
}
