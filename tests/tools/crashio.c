// SPDX-License-Identifier: GPL-2.0
/*
 * crashio: a deterministic block writer that logs what it made durable, and
 * a checker that reads a device back against that log.  Used by the crash
 * tests (tests/cases/51-*, 52-*, tests/host/hard-kill.sh).
 *
 *   crashio write -d DEV -n BLOCKS -s SEED -l LOG [-o FIRST] [-c COUNT]
 *                 [-t SECONDS] [-S | -f EVERY [-m DMNAME]] [-L] [-r FILE]
 *   crashio check -d DEV -l LOG [-w NWRITES] [-F NFSYNCS] [-D DUMP]
 *                 [-C DUMP] [-v]
 *   crashio cut DMNAME TABLE LOG...
 *
 * write: writes 4 KiB blocks with O_DIRECT to blocks FIRST .. FIRST+BLOCKS-1
 * of DEV.  Write number q (1, 2, ...) goes to a block chosen from SEED and q
 * alone, and its content is a header (magic, seed, q, block) followed by
 * bytes generated from (seed, q, block): any block on the disk says which
 * write put it there, and a torn or misplaced block is detected.
 * Durability points:
 *   -S		O_DIRECT|O_SYNC: each write is durable when it returns;
 *   -f EVERY	plain O_DIRECT, fdatasync() after every EVERY writes; with
 *		-m DMNAME, a dm-log-writes mark "f<k>" is sent to the dm
 *		device DMNAME after fdatasync number k returns.
 * After each write returns it appends a W record (block, q) to LOG, and
 * after each fdatasync an F record (k, last q).  -L fdatasync()s LOG after
 * every record (a log that must survive the machine).  -r FILE is created
 * once the first write is durable.  Runs until COUNT writes, SECONDS, or a
 * signal.
 *
 * check: reads every block of the range (parameters from LOG's header) and
 * checks, per block b:
 *   - it is all zero (never written; only if no durable write of b), or a
 *     well-formed block written by write number q to block b (invariant 3:
 *     a value once written to it, never another block's data or garbage);
 *   - q is at least the newest durable write of b (invariant 2);
 *   - q was issued: at most one past the last logged write.
 * Which writes are durable: with -S every logged write (or the first
 * NWRITES with -w); with -f those covered by the first NFSYNCS F records
 * (-F; default all).  -D writes what each block holds (q, 0 for zero) to a
 * file, -C compares with such a file: the values must not have changed
 * (invariant 3 through writeback and cache removal).
 *
 * cut: a power cut at a known point of the logs: counts the W records of
 * each LOG (printed, one a line: the -w of its check), then at once
 * suspends the dm device DMNAME without flushing, loads TABLE (one target
 * line, e.g. dm-flakey with drop_writes) and resumes it.  Every write
 * counted was acknowledged before the suspend began; the few microseconds
 * between counting and suspending keep the durable set nearly exact.
 *
 * Exit: 0 ok, 1 check failed, 2 usage or I/O error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#ifdef HAVE_LIBDEVMAPPER
#include <libdevmapper.h>
#endif

#define BLK 4096u
#define MAGIC 0x4f49485341524357ull	/* "WCRASHIO" */

enum { REC_HEADER = 'H', REC_WRITE = 'W', REC_FSYNC = 'F' };
enum { MODE_OSYNC = 1, MODE_FSYNC = 2 };

/* Log records: 32 bytes each; the first is the header. */
struct rec {
	uint32_t type;
	uint32_t mode;		/* H */
	uint64_t a;		/* H: seed   W: block  F: fsync number */
	uint64_t b;		/* H: blocks W: q      F: last q */
	uint64_t c;		/* H: first block */
};

struct blk_hdr {
	uint64_t magic;
	uint64_t seed;
	uint64_t q;
	uint64_t block;
};

static const char *prog = "crashio";

static void fatal(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* The block (relative to the first) that write q goes to. */
static uint64_t block_of(uint64_t seed, uint64_t q, uint64_t nblocks)
{
	return mix64(seed * 0x9e3779b97f4a7c15ull + q) % nblocks;
}

static void fill_block(uint8_t *buf, uint64_t seed, uint64_t q, uint64_t block)
{
	struct blk_hdr h = { MAGIC, seed, q, block };
	uint64_t s = mix64(seed ^ mix64(q) ^ (block << 20));
	size_t i;

	for (i = sizeof(h); i < BLK; i += 8) {
		s = mix64(s + 0x9e3779b97f4a7c15ull);
		memcpy(buf + i, &s, 8);
	}
	memcpy(buf, &h, sizeof(h));
}

static void *alloc_block(void)
{
	void *p;

	if (posix_memalign(&p, BLK, BLK))
		fatal("out of memory");
	return p;
}

static void pwrite_all(int fd, const void *buf, size_t len, off_t off,
		       const char *what)
{
	ssize_t r = pwrite(fd, buf, len, off);

	if (r != (ssize_t)len)
		fatal("%s: write at %lld: %s", what, (long long)off,
		      r < 0 ? strerror(errno) : "short write");
}

/*----------------------------------------------------------------
 * write
 *--------------------------------------------------------------*/

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int log_fd = -1;
static bool log_sync;

static void log_rec(const struct rec *r)
{
	if (write(log_fd, r, sizeof(*r)) != sizeof(*r))
		fatal("log write: %s", strerror(errno));
	if (log_sync && fdatasync(log_fd))
		fatal("log fdatasync: %s", strerror(errno));
}

static void send_mark(const char *dmname, uint64_t k)
{
#ifdef HAVE_LIBDEVMAPPER
	struct dm_task *dmt;
	char msg[64];
	int ok;

	snprintf(msg, sizeof(msg), "mark f%" PRIu64, k);
	dmt = dm_task_create(DM_DEVICE_TARGET_MSG);
	if (!dmt)
		fatal("dm_task_create failed");
	ok = dm_task_set_name(dmt, dmname) && dm_task_set_sector(dmt, 0) &&
	     dm_task_set_message(dmt, msg) && dm_task_run(dmt);
	dm_task_destroy(dmt);
	if (!ok)
		fatal("cannot send '%s' to %s", msg, dmname);
#else
	(void)dmname;
	(void)k;
	fatal("built without libdevmapper: -m is not available");
#endif
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int do_write(int argc, char **argv)
{
	const char *dev = NULL, *logpath = NULL, *dmname = NULL, *ready = NULL;
	uint64_t nblocks = 0, first = 0, seed = 1, count = 0, every = 0, q, k = 0;
	double seconds = 0, start;
	int mode = MODE_OSYNC, fd, c;
	uint8_t *buf;
	struct rec r;

	while ((c = getopt(argc, argv, "d:n:o:s:l:c:t:Sf:m:Lr:")) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 'n': nblocks = strtoull(optarg, NULL, 0); break;
		case 'o': first = strtoull(optarg, NULL, 0); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'l': logpath = optarg; break;
		case 'c': count = strtoull(optarg, NULL, 0); break;
		case 't': seconds = atof(optarg); break;
		case 'S': mode = MODE_OSYNC; break;
		case 'f': mode = MODE_FSYNC; every = strtoull(optarg, NULL, 0); break;
		case 'm': dmname = optarg; break;
		case 'L': log_sync = true; break;
		case 'r': ready = optarg; break;
		default: return 2;
		}
	}
	if (!dev || !logpath || !nblocks || (mode == MODE_FSYNC && !every))
		fatal("write: need -d DEV -n BLOCKS -l LOG (and -f EVERY > 0)");

	fd = open(dev, O_WRONLY | O_DIRECT | (mode == MODE_OSYNC ? O_SYNC : 0));
	if (fd < 0)
		fatal("%s: %s", dev, strerror(errno));
	log_fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (log_fd < 0)
		fatal("%s: %s", logpath, strerror(errno));
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	r = (struct rec){ REC_HEADER, mode, seed, nblocks, first };
	log_rec(&r);
	buf = alloc_block();
	start = now_s();
	for (q = 1; !stop; q++) {
		uint64_t b = block_of(seed, q, nblocks);

		fill_block(buf, seed, q, b);
		pwrite_all(fd, buf, BLK, (off_t)((first + b) * BLK), dev);
		r = (struct rec){ REC_WRITE, 0, b, q, 0 };
		log_rec(&r);
		if (mode == MODE_FSYNC && q % every == 0) {
			if (fdatasync(fd))
				fatal("fdatasync %s: %s", dev, strerror(errno));
			k++;
			r = (struct rec){ REC_FSYNC, 0, k, q, 0 };
			log_rec(&r);
			if (dmname)
				send_mark(dmname, k);
		}
		if (ready && (mode == MODE_OSYNC || k)) {
			int rf = open(ready, O_WRONLY | O_CREAT, 0644);

			if (rf >= 0)
				close(rf);
			ready = NULL;
		}
		if (count && q >= count)
			break;
		if (seconds > 0 && now_s() - start >= seconds)
			break;
	}
	close(fd);
	close(log_fd);
	free(buf);
	return 0;
}

/*----------------------------------------------------------------
 * check
 *--------------------------------------------------------------*/

static int do_check(int argc, char **argv)
{
	const char *dev = NULL, *logpath = NULL, *dump = NULL, *cmp = NULL;
	uint64_t max_writes = UINT64_MAX, max_fsyncs = UINT64_MAX;
	uint64_t nblocks, first, seed, last_q = 0, durable_q = 0, nrec, i, b;
	uint64_t *durable, *seen, *prev = NULL, bad = 0, zero = 0, newer = 0;
	uint64_t nw = 0, nf = 0;
	bool verbose = false;
	struct rec *recs;
	struct stat st;
	uint8_t *buf, *want;
	int mode, fd, c;
	FILE *f;

	while ((c = getopt(argc, argv, "d:l:w:F:D:C:v")) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 'l': logpath = optarg; break;
		case 'w': max_writes = strtoull(optarg, NULL, 0); break;
		case 'F': max_fsyncs = strtoull(optarg, NULL, 0); break;
		case 'D': dump = optarg; break;
		case 'C': cmp = optarg; break;
		case 'v': verbose = true; break;
		default: return 2;
		}
	}
	if (!dev || !logpath)
		fatal("check: need -d DEV -l LOG");

	f = fopen(logpath, "rb");
	if (!f || fstat(fileno(f), &st))
		fatal("%s: %s", logpath, strerror(errno));
	nrec = st.st_size / sizeof(struct rec);	/* a torn last record is ignored */
	recs = malloc((nrec ? nrec : 1) * sizeof(*recs));
	if (!recs || fread(recs, sizeof(*recs), nrec, f) != nrec)
		fatal("%s: cannot read", logpath);
	fclose(f);
	if (!nrec || recs[0].type != REC_HEADER)
		fatal("%s: no header record", logpath);
	mode = recs[0].mode;
	seed = recs[0].a;
	nblocks = recs[0].b;
	first = recs[0].c;

	/* The last write that may be on the disk, and the durable ones. */
	for (i = 1; i < nrec; i++) {
		if (recs[i].type == REC_WRITE) {
			last_q = recs[i].b;
			if (mode == MODE_OSYNC && nw++ < max_writes)
				durable_q = recs[i].b;
		} else if (recs[i].type == REC_FSYNC) {
			if (nf++ < max_fsyncs)
				durable_q = recs[i].b;
		} else {
			fatal("%s: bad record %" PRIu64, logpath, i);
		}
	}
	durable = calloc(nblocks, sizeof(uint64_t));
	seen = calloc(nblocks, sizeof(uint64_t));
	if (!durable || !seen)
		fatal("out of memory");
	for (i = 1; i <= durable_q; i++)
		durable[block_of(seed, i, nblocks)] = i;
	last_q += 1;	/* the write in flight when the log stopped */

	fd = open(dev, O_RDONLY | O_DIRECT);
	if (fd < 0)
		fatal("%s: %s", dev, strerror(errno));
	buf = alloc_block();
	want = alloc_block();
	printf("check %s: %" PRIu64 " blocks from %" PRIu64 ", seed %" PRIu64
	       ", %s mode, writes issued <= %" PRIu64 ", durable <= %" PRIu64 "\n",
	       dev, nblocks, first, seed, mode == MODE_OSYNC ? "O_SYNC" : "fdatasync",
	       last_q, durable_q);
	for (b = 0; b < nblocks; b++) {
		const struct blk_hdr *h = (const void *)buf;
		ssize_t r = pread(fd, buf, BLK, (off_t)((first + b) * BLK));
		const char *why = NULL;

		if (r != BLK)
			fatal("%s: read block %" PRIu64 ": %s", dev, first + b,
			      r < 0 ? strerror(errno) : "short read");
		memset(want, 0, BLK);
		if (!memcmp(buf, want, BLK)) {
			seen[b] = 0;
			zero++;
			if (durable[b])
				why = "all zero, but a write of it was durable";
		} else if (h->magic != MAGIC || h->seed != seed) {
			why = "garbage (not written by this run)";
		} else if (h->block != b) {
			why = "holds another block's data";
		} else if (!h->q || h->q > last_q ||
			   block_of(seed, h->q, nblocks) != b) {
			why = "header names a write that never went to this block";
		} else {
			fill_block(want, seed, h->q, b);
			seen[b] = h->q;
			if (memcmp(buf, want, BLK))
				why = "torn or corrupt content";
			else if (h->q < durable[b])
				why = "older than a durable write (lost write)";
			else if (h->q > durable[b])
				newer++;
		}
		if (why) {
			if (bad++ < 20)
				printf("  BAD block %" PRIu64 " (device block %" PRIu64
				       "): %s; holds write %" PRIu64 " (header block %" PRIu64
				       "), newest durable write %" PRIu64 "\n",
				       b, first + b, why, h->magic == MAGIC ? h->q : 0,
				       h->magic == MAGIC ? h->block : 0, durable[b]);
			seen[b] = UINT64_MAX;
		} else if (verbose) {
			printf("  block %" PRIu64 ": write %" PRIu64 " (durable %" PRIu64 ")\n",
			       b, seen[b], durable[b]);
		}
	}
	close(fd);
	printf("  %" PRIu64 " bad, %" PRIu64 " zero, %" PRIu64
	       " newer than the newest durable write\n", bad, zero, newer);

	if (cmp) {
		uint64_t changed = 0;

		prev = calloc(nblocks, sizeof(uint64_t));
		f = fopen(cmp, "rb");
		if (!prev || !f || fread(prev, sizeof(uint64_t), nblocks, f) != nblocks)
			fatal("%s: cannot read the earlier dump", cmp);
		fclose(f);
		for (b = 0; b < nblocks; b++) {
			if (prev[b] == seen[b])
				continue;
			if (changed++ < 20)
				printf("  CHANGED block %" PRIu64 ": held write %" PRIu64
				       ", now %" PRIu64 "\n", b, prev[b], seen[b]);
		}
		printf("  %" PRIu64 " blocks changed since %s\n", changed, cmp);
		bad += changed;
	}
	if (dump) {
		f = fopen(dump, "wb");
		if (!f || fwrite(seen, sizeof(uint64_t), nblocks, f) != nblocks || fclose(f))
			fatal("%s: cannot write", dump);
	}
	free(buf);
	free(want);
	free(durable);
	free(seen);
	free(prev);
	free(recs);
	printf("%s\n", bad ? "check FAILED" : "check ok");
	return bad ? 1 : 0;
}

#ifdef HAVE_LIBDEVMAPPER
static void dm_run(int type, const char *name, const char *table)
{
	unsigned long long start, len;
	char ttype[64];
	struct dm_task *dmt = dm_task_create(type);
	int n = 0, ok;

	if (!dmt)
		fatal("dm_task_create failed");
	ok = dm_task_set_name(dmt, name);
	if (ok && type == DM_DEVICE_SUSPEND)
		ok = dm_task_no_flush(dmt);
	if (ok && table) {
		if (sscanf(table, "%llu %llu %63s %n", &start, &len, ttype, &n) != 3)
			fatal("bad table '%s'", table);
		ok = dm_task_add_target(dmt, start, len, ttype, table + n);
	}
	ok = ok && dm_task_run(dmt);
	dm_task_destroy(dmt);
	if (!ok)
		fatal("dm operation %d on %s failed", type, name);
}

static int do_cut(int argc, char **argv)
{
	uint64_t counts[16];
	int i, n = argc - 3;

	if (n < 1 || n > 16)
		fatal("cut: need DMNAME TABLE LOG... (1..16 logs)");
	for (i = 0; i < n; i++) {
		struct stat st;

		if (stat(argv[3 + i], &st))
			fatal("%s: %s", argv[3 + i], strerror(errno));
		/* Records after the header; in -S logs all are W records. */
		counts[i] = st.st_size / sizeof(struct rec);
		counts[i] = counts[i] ? counts[i] - 1 : 0;
	}
	dm_run(DM_DEVICE_SUSPEND, argv[1], NULL);
	dm_run(DM_DEVICE_RELOAD, argv[1], argv[2]);
	dm_run(DM_DEVICE_RESUME, argv[1], NULL);
	for (i = 0; i < n; i++)
		printf("%" PRIu64 "\n", counts[i]);
	return 0;
}
#else
static int do_cut(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fatal("built without libdevmapper: cut is not available");
	return 2;
}
#endif

int main(int argc, char **argv)
{
	if (argc < 2)
		goto usage;
	if (!strcmp(argv[1], "write"))
		return do_write(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check"))
		return do_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "cut"))
		return do_cut(argc - 1, argv + 1);
usage:
	fprintf(stderr, "usage: crashio write|check|cut ... (see the top of crashio.c)\n");
	return 2;
}
