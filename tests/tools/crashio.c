// SPDX-License-Identifier: GPL-2.0
/*
 * crashio: a deterministic block writer that logs what it made durable, and
 * a checker that reads a device back against that log.  Used by the crash
 * tests (tests/cases/51-*, 52-*, 53-*, tests/host/hard-kill.sh).
 *
 *   crashio write -d DEV -n BLOCKS -s SEED -l LOG [-o FIRST] [-c COUNT]
 *                 [-t SECONDS] [-S | -f EVERY [-y EVERY]] [-m DMNAME]...
 *                 [-W] [-b DMNAME [-B EVERY]] [-A] [-L] [-r FILE]
 *   crashio check -d DEV -l LOG [-w NWRITES] [-F NSYNCS] [-D DUMP]
 *                 [-C DUMP] [-R BLOCKS] [-v]
 *   crashio verify -N DMNAME -t TABLE -O ORIGIN -l LOG [-F NSYNCS]
 *                 [-R BLOCKS] [-p] [-c 'DMNAME TABLE']... [-r DMNAME]...
 *   crashio cut DMNAME TABLE LOG...
 *   crashio dm DMNAME TABLE [DMNAME TABLE]...
 *
 * write: writes 4 KiB blocks with O_DIRECT to blocks FIRST .. FIRST+BLOCKS-1
 * of DEV.  Write number q (1, 2, ...) goes to a block chosen from SEED and q
 * alone, and its content is a header (magic, seed, q, block) followed by
 * bytes generated from (seed, q, block): any block on the disk says which
 * write put it there, and a torn or misplaced block is detected.
 * Durability points:
 *   -S		O_DIRECT|O_SYNC: each write is durable when it returns;
 *   -f EVERY	plain O_DIRECT, fdatasync() after every EVERY writes (after
 *		write q when q % EVERY == 0); with -y EVERY2, every EVERY2-th
 *		write that no fdatasync follows is an O_DSYNC write
 *		(pwritev2 RWF_DSYNC): durable, alone, when it returns; but
 *		not over a plain write since the last fdatasync (that one
 *		stays plain): dm-log-writes logs a FUA write at once and a
 *		plain one only when a flush covers it, so a FUA write over a
 *		still unflushed plain write of its block would be logged, and
 *		replayed, before it.
 * Sync points (fdatasyncs and O_DSYNC writes) are numbered k = 1, 2, ...
 * in one sequence.  With -m DMNAME (repeatable), a dm-log-writes mark is
 * sent to each DMNAME in the order given, one after the other, at once
 * after: fdatasync number k returns ("f<k>"), O_DSYNC write number k
 * returns ("d<k>"), and, with -W, each plain write q returns ("w<q>").
 * The writer issues nothing while it marks.  -b DMNAME names the stash
 * volume DEV is: before every -B EVERY-th fdatasync (default each one) the
 * writer sends it the "flush" message and waits until its status says
 * dirty=0 and state=idle (a drain: the blocks are written back first).
 * After each write returns it appends a W record (block, q) to LOG, after
 * each O_DSYNC write a D record (k, q), after each fdatasync an F record
 * (k, last q).  -A appends to an existing LOG instead (its header gives
 * SEED, BLOCKS, FIRST and the mode; q and k go on from its last records).
 * -L fdatasync()s LOG after every record (a log that must survive the
 * machine).  -r FILE is created once the first write is durable.  Runs
 * until COUNT writes, SECONDS, or a signal.
 *
 * check: reads every block of the range (parameters from LOG's header),
 * BLOCKS blocks per read (-R, default 1), and checks, per block b:
 *   - it is all zero (never written; only if no durable write of b), or a
 *     well-formed block written by write number q to block b (invariant 3:
 *     a value once written to it, never another block's data or garbage);
 *   - q is at least the newest durable write of b (invariant 2);
 *   - q was issued: at most one past the last logged write.
 * Which writes are durable: with -S every logged write (or the first
 * NWRITES with -w); with -f those covered by the first NSYNCS sync records
 * (-F; default all): an F record covers every write up to its q, a D
 * record its own write.  -D writes what each block holds (q, 0 for zero)
 * to a file, -C compares with such a file: the values must not have
 * changed (invariant 3 through writeback and cache removal).
 *
 * verify: one crash state, checked in one process (the crash tests check
 * hundreds; dmsetup and a process per step cost seconds each under
 * emulation): creates the dm device DMNAME from TABLE (the stash volume
 * over the replayed devices: recovery) and prints its status; checks it
 * as check -F NSYNCS does; sends "flush" and waits for dirty=0 and
 * state=idle; checks it again (values unchanged); removes it; checks the
 * origin ORIGIN alone (values unchanged).  With -p the status must also
 * say metadata=persistent.  It fails if the status shows a cache error or
 * failed metadata.  -c 'DMNAME TABLE' (repeatable) first creates that dm
 * device, in the order given (e.g. the snapshots DMNAME's table uses);
 * -r DMNAME (repeatable) removes that dm device too, at the end, in the
 * order given.
 *
 * dm: creates each dm device DMNAME from its TABLE (one target line), in
 * the order given: a crash test's per-state devices in one process.
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
#include <sys/uio.h>
#ifdef HAVE_LIBDEVMAPPER
#include <libdevmapper.h>
#endif

#define BLK 4096u
#define MAGIC 0x4f49485341524357ull	/* "WCRASHIO" */
#define MAX_MARKS 4

enum { REC_HEADER = 'H', REC_WRITE = 'W', REC_FSYNC = 'F', REC_DSYNC = 'D' };
enum { MODE_OSYNC = 1, MODE_FSYNC = 2 };

/* Log records: 32 bytes each; the first is the header. */
struct rec {
	uint32_t type;
	uint32_t mode;		/* H */
	uint64_t a;		/* H: seed   W: block  F, D: sync number */
	uint64_t b;		/* H: blocks W: q      F: last q  D: its q */
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

static void *alloc_blocks(size_t n)
{
	void *p;

	if (posix_memalign(&p, BLK, n * BLK))
		fatal("out of memory");
	return p;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*----------------------------------------------------------------
 * The log
 *--------------------------------------------------------------*/

struct crash_log {
	struct rec *recs;
	uint64_t nrec;
	int mode;
	uint64_t seed, nblocks, first;
	uint64_t last_q;	/* the newest logged write */
	uint64_t nsync;		/* F and D records */
};

static void load_log(const char *path, struct crash_log *L)
{
	struct stat st;
	uint64_t i;
	FILE *f;

	memset(L, 0, sizeof(*L));
	f = fopen(path, "rb");
	if (!f || fstat(fileno(f), &st))
		fatal("%s: %s", path, strerror(errno));
	L->nrec = st.st_size / sizeof(struct rec);	/* a torn last record is ignored */
	L->recs = malloc((L->nrec ? L->nrec : 1) * sizeof(*L->recs));
	if (!L->recs || fread(L->recs, sizeof(*L->recs), L->nrec, f) != L->nrec)
		fatal("%s: cannot read", path);
	fclose(f);
	if (!L->nrec || L->recs[0].type != REC_HEADER)
		fatal("%s: no header record", path);
	L->mode = L->recs[0].mode;
	L->seed = L->recs[0].a;
	L->nblocks = L->recs[0].b;
	L->first = L->recs[0].c;
	if (!L->nblocks)
		fatal("%s: no blocks", path);
	for (i = 1; i < L->nrec; i++) {
		switch (L->recs[i].type) {
		case REC_WRITE:
			L->last_q = L->recs[i].b;
			break;
		case REC_FSYNC:
		case REC_DSYNC:
			L->nsync++;
			break;
		default:
			fatal("%s: bad record %" PRIu64, path, i);
		}
	}
}

/*
 * The newest durable write of each block, given the first @max_writes
 * writes (O_SYNC logs) or the first @max_syncs sync records (fdatasync
 * logs) as durable.  *@durable_q: the newest write every earlier one is
 * durable with.
 */
static uint64_t *durable_writes(const struct crash_log *L, uint64_t max_writes,
				uint64_t max_syncs, uint64_t *durable_q)
{
	uint64_t *durable = calloc(L->nblocks, sizeof(uint64_t));
	uint64_t i, nw = 0, ns = 0, dq = 0;

	if (!durable)
		fatal("out of memory");
	for (i = 1; i < L->nrec; i++) {
		const struct rec *r = &L->recs[i];

		if (r->type == REC_WRITE) {
			if (L->mode == MODE_OSYNC && nw++ < max_writes)
				dq = r->b;
		} else if (r->type == REC_FSYNC) {
			if (ns++ < max_syncs)
				dq = r->b;
		} else if (r->type == REC_DSYNC && ns++ < max_syncs) {
			uint64_t b = block_of(L->seed, r->b, L->nblocks);

			if (durable[b] < r->b)
				durable[b] = r->b;
		}
	}
	for (i = 1; i <= dq; i++) {
		uint64_t b = block_of(L->seed, i, L->nblocks);

		if (durable[b] < i)
			durable[b] = i;
	}
	*durable_q = dq;
	return durable;
}

/*----------------------------------------------------------------
 * check
 *--------------------------------------------------------------*/

struct check_opts {
	size_t chunk;		/* blocks per read */
	bool verbose;
	unsigned int max_report;	/* BAD / CHANGED lines printed */
};

/*
 * Read every block of the range on @dev and check it (see the top of the
 * file).  @seen gets what each block holds (q, 0 zero, UINT64_MAX bad);
 * with @prev, every block must hold what @prev says.  Returns the number
 * of bad and changed blocks.
 */
static uint64_t check_dev(const char *dev, const struct crash_log *L,
			  const uint64_t *durable, uint64_t durable_q,
			  const uint64_t *prev, uint64_t *seen,
			  const struct check_opts *o, const char *what)
{
	uint64_t b, bad = 0, zero = 0, newer = 0, changed = 0;
	uint64_t last_q = L->last_q + 1;	/* the write in flight when the log stopped */
	size_t chunk = o->chunk ? o->chunk : 1;
	uint8_t *buf, *want;
	int fd;

	fd = open(dev, O_RDONLY | O_DIRECT);
	if (fd < 0)
		fatal("%s: %s", dev, strerror(errno));
	buf = alloc_blocks(chunk);
	want = alloc_blocks(1);
	printf("check %s%s%s: %" PRIu64 " blocks from %" PRIu64 ", seed %" PRIu64
	       ", %s mode, writes issued <= %" PRIu64 ", durable <= %" PRIu64 "\n",
	       what ? what : "", what ? " " : "", dev, L->nblocks, L->first, L->seed,
	       L->mode == MODE_OSYNC ? "O_SYNC" : "fdatasync", last_q, durable_q);
	for (b = 0; b < L->nblocks; b++) {
		size_t in = (size_t)(b % chunk);
		const uint8_t *blk = buf + in * BLK;
		const struct blk_hdr *h = (const void *)blk;
		const char *why = NULL;

		if (!in) {
			size_t n = L->nblocks - b < chunk ? L->nblocks - b : chunk;
			ssize_t r = pread(fd, buf, n * BLK,
					  (off_t)((L->first + b) * BLK));

			if (r != (ssize_t)(n * BLK))
				fatal("%s: read block %" PRIu64 ": %s", dev,
				      L->first + b,
				      r < 0 ? strerror(errno) : "short read");
		}
		memset(want, 0, BLK);
		if (!memcmp(blk, want, BLK)) {
			seen[b] = 0;
			zero++;
			if (durable[b])
				why = "all zero, but a write of it was durable";
		} else if (h->magic != MAGIC || h->seed != L->seed) {
			why = "garbage (not written by this run)";
		} else if (h->block != b) {
			why = "holds another block's data";
		} else if (!h->q || h->q > last_q ||
			   block_of(L->seed, h->q, L->nblocks) != b) {
			why = "header names a write that never went to this block";
		} else {
			fill_block(want, L->seed, h->q, b);
			seen[b] = h->q;
			if (memcmp(blk, want, BLK))
				why = "torn or corrupt content";
			else if (h->q < durable[b])
				why = "older than a durable write (lost write)";
			else if (h->q > durable[b])
				newer++;
		}
		if (why) {
			if (bad++ < o->max_report)
				printf("  BAD block %" PRIu64 " (device block %" PRIu64
				       "): %s; holds write %" PRIu64 " (header block %" PRIu64
				       "), newest durable write %" PRIu64 "\n",
				       b, L->first + b, why, h->magic == MAGIC ? h->q : 0,
				       h->magic == MAGIC ? h->block : 0, durable[b]);
			seen[b] = UINT64_MAX;
		} else if (o->verbose) {
			printf("  block %" PRIu64 ": write %" PRIu64 " (durable %" PRIu64 ")\n",
			       b, seen[b], durable[b]);
		}
	}
	close(fd);
	free(buf);
	free(want);
	printf("  %" PRIu64 " bad, %" PRIu64 " zero, %" PRIu64
	       " newer than the newest durable write\n", bad, zero, newer);
	if (prev) {
		for (b = 0; b < L->nblocks; b++) {
			if (prev[b] == seen[b])
				continue;
			if (changed++ < o->max_report)
				printf("  CHANGED block %" PRIu64 ": held write %" PRIu64
				       ", now %" PRIu64 "\n", b, prev[b], seen[b]);
		}
		printf("  %" PRIu64 " blocks changed since the first check\n", changed);
	}
	return bad + changed;
}

static int do_check(int argc, char **argv)
{
	const char *dev = NULL, *logpath = NULL, *dump = NULL, *cmp = NULL;
	uint64_t max_writes = UINT64_MAX, max_syncs = UINT64_MAX, dq, bad;
	struct check_opts o = { .chunk = 1, .max_report = 20 };
	uint64_t *durable, *seen, *prev = NULL;
	struct crash_log L;
	FILE *f;
	int c;

	while ((c = getopt(argc, argv, "d:l:w:F:D:C:R:v")) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 'l': logpath = optarg; break;
		case 'w': max_writes = strtoull(optarg, NULL, 0); break;
		case 'F': max_syncs = strtoull(optarg, NULL, 0); break;
		case 'D': dump = optarg; break;
		case 'C': cmp = optarg; break;
		case 'R': o.chunk = strtoul(optarg, NULL, 0); break;
		case 'v': o.verbose = true; break;
		default: return 2;
		}
	}
	if (!dev || !logpath)
		fatal("check: need -d DEV -l LOG");
	load_log(logpath, &L);
	durable = durable_writes(&L, max_writes, max_syncs, &dq);
	seen = calloc(L.nblocks, sizeof(uint64_t));
	if (!seen)
		fatal("out of memory");
	if (cmp) {
		prev = calloc(L.nblocks, sizeof(uint64_t));
		f = fopen(cmp, "rb");
		if (!prev || !f || fread(prev, sizeof(uint64_t), L.nblocks, f) != L.nblocks)
			fatal("%s: cannot read the earlier dump", cmp);
		fclose(f);
	}
	bad = check_dev(dev, &L, durable, dq, prev, seen, &o, NULL);
	if (dump) {
		f = fopen(dump, "wb");
		if (!f || fwrite(seen, sizeof(uint64_t), L.nblocks, f) != L.nblocks || fclose(f))
			fatal("%s: cannot write", dump);
	}
	free(durable);
	free(seen);
	free(prev);
	free(L.recs);
	printf("%s\n", bad ? "check FAILED" : "check ok");
	return bad ? 1 : 0;
}

/*----------------------------------------------------------------
 * Device-mapper
 *--------------------------------------------------------------*/

#ifdef HAVE_LIBDEVMAPPER
/* Run a dm task on @name; @table: one target line; returns 0 or -1. */
static int dm_try(int type, const char *name, const char *table)
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
	if (ok && type == DM_DEVICE_REMOVE)
		ok = dm_task_retry_remove(dmt);
	if (ok && table) {
		if (sscanf(table, "%llu %llu %63s %n", &start, &len, ttype, &n) != 3)
			fatal("bad table '%s'", table);
		ok = dm_task_add_target(dmt, start, len, ttype, table + n);
	}
	ok = ok && dm_task_run(dmt);
	dm_task_destroy(dmt);
	/* No udev (DM_DISABLE_UDEV): libdevmapper makes the nodes itself. */
	if (type == DM_DEVICE_CREATE || type == DM_DEVICE_REMOVE)
		dm_task_update_nodes();
	return ok ? 0 : -1;
}

static void dm_run(int type, const char *name, const char *table)
{
	if (dm_try(type, name, table))
		fatal("dm operation %d on %s failed", type, name);
}

static void dm_message(const char *name, const char *msg)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_TARGET_MSG);
	int ok;

	if (!dmt)
		fatal("dm_task_create failed");
	ok = dm_task_set_name(dmt, name) && dm_task_set_sector(dmt, 0) &&
	     dm_task_set_message(dmt, msg) && dm_task_run(dmt);
	dm_task_destroy(dmt);
	if (!ok)
		fatal("cannot send '%s' to %s", msg, name);
}

/* The status line of @name's first target (its parameters) into @buf. */
static void dm_status(const char *name, char *buf, size_t len)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_STATUS);
	uint64_t start, length;
	char *type = NULL, *params = NULL;
	int ok;

	if (!dmt)
		fatal("dm_task_create failed");
	ok = dm_task_set_name(dmt, name) && dm_task_run(dmt);
	if (ok)
		dm_get_next_target(dmt, NULL, &start, &length, &type, &params);
	snprintf(buf, len, "%s", params ? params : "");
	dm_task_destroy(dmt);
	if (!ok)
		fatal("cannot read the status of %s", name);
}
#endif

#ifdef HAVE_LIBDEVMAPPER
/* The value of KEY=value in a status line, into @out; false if absent. */
static bool status_field(const char *status, const char *key, char *out,
			 size_t len)
{
	size_t kl = strlen(key);
	const char *p = status;

	while ((p = strstr(p, key))) {
		if ((p == status || p[-1] == ' ') && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, " ");

			snprintf(out, len, "%.*s", (int)n, p + kl + 1);
			return true;
		}
		p += kl;
	}
	return false;
}
#endif

/*
 * A drain: "flush" to the stash volume @name, then wait until its status
 * says dirty=0 and state=idle.
 */
static void drain(const char *name)
{
#ifdef HAVE_LIBDEVMAPPER
	char st[4096], dirty[32], state[32];
	double start = now_s();

	dm_message(name, "flush");
	for (;;) {
		dm_status(name, st, sizeof(st));
		if (status_field(st, "dirty", dirty, sizeof(dirty)) &&
		    status_field(st, "state", state, sizeof(state)) &&
		    !strcmp(dirty, "0") && !strcmp(state, "idle"))
			return;
		if (now_s() - start > 120)
			fatal("%s: still not clean after 120 s of flush: %s", name, st);
		usleep(2000);
	}
#else
	(void)name;
	fatal("built without libdevmapper: -b is not available");
#endif
}

static void send_mark(const char *dmname, const char *mark)
{
#ifdef HAVE_LIBDEVMAPPER
	char msg[64];

	snprintf(msg, sizeof(msg), "mark %s", mark);
	dm_message(dmname, msg);
#else
	(void)dmname;
	(void)mark;
	fatal("built without libdevmapper: -m is not available");
#endif
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

static const char *marks[MAX_MARKS];
static int nmarks;

/* Mark every log-writes device, in the order given, with PREFIX<n>. */
static void mark_all(char prefix, uint64_t n)
{
	char text[32];
	int i;

	snprintf(text, sizeof(text), "%c%" PRIu64, prefix, n);
	for (i = 0; i < nmarks; i++)
		send_mark(marks[i], text);
}

static int do_write(int argc, char **argv)
{
	const char *dev = NULL, *logpath = NULL, *ready = NULL, *vol = NULL;
	uint64_t nblocks = 0, first = 0, seed = 1, count = 0, every = 0, q, k = 0;
	uint64_t dsync_every = 0, drain_every = 1, nfsync = 0, q0 = 1, done = 0;
	uint64_t *plain_q = NULL, synced_q = 0;	/* plain writes since the last fdatasync */
	bool mark_writes = false, append = false;
	double seconds = 0, start;
	int mode = MODE_OSYNC, fd, c;
	uint8_t *buf;
	struct rec r;

	while ((c = getopt(argc, argv, "d:n:o:s:l:c:t:Sf:y:m:Wb:B:ALr:")) != -1) {
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
		case 'y': dsync_every = strtoull(optarg, NULL, 0); break;
		case 'm':
			if (nmarks == MAX_MARKS)
				fatal("write: at most %d -m", MAX_MARKS);
			marks[nmarks++] = optarg;
			break;
		case 'W': mark_writes = true; break;
		case 'b': vol = optarg; break;
		case 'B': drain_every = strtoull(optarg, NULL, 0); break;
		case 'A': append = true; break;
		case 'L': log_sync = true; break;
		case 'r': ready = optarg; break;
		default: return 2;
		}
	}
	if (append && logpath) {
		struct crash_log L;
		uint64_t i;

		load_log(logpath, &L);
		if (L.mode != mode)
			fatal("write: %s was written in the other mode", logpath);
		seed = L.seed;
		nblocks = L.nblocks;
		first = L.first;
		q0 = L.last_q + 1;
		k = L.nsync;
		plain_q = calloc(nblocks, sizeof(uint64_t));
		if (!plain_q)
			fatal("out of memory");
		for (i = 1; i < L.nrec; i++) {
			const struct rec *rr = &L.recs[i];

			if (rr->type == REC_FSYNC) {
				nfsync++;
				synced_q = rr->b;
			} else if (rr->type == REC_WRITE) {
				plain_q[rr->a] = rr->b;
			} else if (rr->type == REC_DSYNC) {
				plain_q[block_of(seed, rr->b, nblocks)] = 0;
			}
		}
		free(L.recs);
	}
	if (!dev || !logpath || !nblocks || (mode == MODE_FSYNC && !every) ||
	    (dsync_every && mode != MODE_FSYNC) || !drain_every)
		fatal("write: need -d DEV -n BLOCKS -l LOG (and -f EVERY > 0; -y only with -f)");

	fd = open(dev, O_WRONLY | O_DIRECT | (mode == MODE_OSYNC ? O_SYNC : 0));
	if (fd < 0)
		fatal("%s: %s", dev, strerror(errno));
	log_fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | (append ? 0 : O_TRUNC), 0644);
	if (log_fd < 0)
		fatal("%s: %s", logpath, strerror(errno));
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	if (!append) {
		r = (struct rec){ REC_HEADER, mode, seed, nblocks, first };
		log_rec(&r);
		plain_q = calloc(nblocks, sizeof(uint64_t));
		if (!plain_q)
			fatal("out of memory");
	}
	buf = alloc_blocks(1);
	start = now_s();
	for (q = q0; !stop; q++) {
		uint64_t b = block_of(seed, q, nblocks);
		bool fsync_now = mode == MODE_FSYNC && q % every == 0;
		bool dsync = !fsync_now && dsync_every && q % dsync_every == 0 &&
			     plain_q[b] <= synced_q;
		struct iovec iov = { buf, BLK };
		ssize_t w;

		fill_block(buf, seed, q, b);
		w = pwritev2(fd, &iov, 1, (off_t)((first + b) * BLK),
			     dsync ? RWF_DSYNC : 0);
		if (w != BLK)
			fatal("%s: write at block %" PRIu64 ": %s", dev, first + b,
			      w < 0 ? strerror(errno) : "short write");
		r = (struct rec){ REC_WRITE, 0, b, q, 0 };
		log_rec(&r);
		done++;
		plain_q[b] = dsync ? 0 : q;
		if (dsync) {
			k++;
			r = (struct rec){ REC_DSYNC, 0, k, q, 0 };
			log_rec(&r);
			mark_all('d', k);
		} else if (mark_writes) {
			mark_all('w', q);
		}
		if (fsync_now) {
			if (vol && nfsync % drain_every == 0)
				drain(vol);
			if (fdatasync(fd))
				fatal("fdatasync %s: %s", dev, strerror(errno));
			k++;
			nfsync++;
			synced_q = q;
			r = (struct rec){ REC_FSYNC, 0, k, q, 0 };
			log_rec(&r);
			mark_all('f', k);
		}
		if (ready && (mode == MODE_OSYNC || k)) {
			int rf = open(ready, O_WRONLY | O_CREAT, 0644);

			if (rf >= 0)
				close(rf);
			ready = NULL;
		}
		if (count && done >= count)
			break;
		if (seconds > 0 && now_s() - start >= seconds)
			break;
	}
	close(fd);
	close(log_fd);
	free(buf);
	free(plain_q);
	return 0;
}

/*----------------------------------------------------------------
 * verify
 *--------------------------------------------------------------*/

#ifdef HAVE_LIBDEVMAPPER
/* The status must show no cache error and metadata that did not fail. */
static uint64_t status_sane(const char *name, bool persistent)
{
	char st[4096], v[64];
	uint64_t bad = 0;

	dm_status(name, st, sizeof(st));
	printf("status %s: %s\n", name, st);
	if (!status_field(st, "cache_errors", v, sizeof(v)) || strcmp(v, "0")) {
		printf("  BAD status: cache_errors=%s\n", v);
		bad++;
	}
	if (!status_field(st, "metadata", v, sizeof(v)) || !strcmp(v, "failed") ||
	    (persistent && strcmp(v, "persistent"))) {
		printf("  BAD status: metadata=%s\n", v);
		bad++;
	}
	return bad;
}

/* Remove the dm device @name, retrying while it is still busy. */
static void dm_remove_retry(const char *name)
{
	int i;

	for (i = 0; dm_try(DM_DEVICE_REMOVE, name, NULL); i++) {
		if (i == 50)
			fatal("cannot remove %s", name);
		usleep(100000);
	}
}

static int do_verify(int argc, char **argv)
{
	const char *name = NULL, *table = NULL, *origin = NULL, *logpath = NULL;
	struct check_opts o = { .chunk = 1, .max_report = 4 };
	uint64_t max_syncs = UINT64_MAX, dq, bad = 0, *durable, *first, *seen;
	const char *removes[8];
	char *creates[8];
	bool persistent = false;
	struct crash_log L;
	int nremoves = 0, ncreates = 0;
	char dev[300];
	double t0;
	int c, i;

	while ((c = getopt(argc, argv, "N:t:O:l:F:R:pr:c:")) != -1) {
		switch (c) {
		case 'N': name = optarg; break;
		case 't': table = optarg; break;
		case 'O': origin = optarg; break;
		case 'l': logpath = optarg; break;
		case 'F': max_syncs = strtoull(optarg, NULL, 0); break;
		case 'R': o.chunk = strtoul(optarg, NULL, 0); break;
		case 'p': persistent = true; break;
		case 'r':
			if (nremoves == 8)
				fatal("verify: at most 8 -r");
			removes[nremoves++] = optarg;
			break;
		case 'c':
			if (ncreates == 8 || !strchr(optarg, ' '))
				fatal("verify: -c 'DMNAME TABLE', at most 8");
			creates[ncreates++] = optarg;
			break;
		default: return 2;
		}
	}
	if (!name || !table || !origin || !logpath)
		fatal("verify: need -N DMNAME -t TABLE -O ORIGIN -l LOG");
	load_log(logpath, &L);
	durable = durable_writes(&L, UINT64_MAX, max_syncs, &dq);
	first = calloc(L.nblocks, sizeof(uint64_t));
	seen = calloc(L.nblocks, sizeof(uint64_t));
	if (!first || !seen)
		fatal("out of memory");
	snprintf(dev, sizeof(dev), "/dev/mapper/%s", name);

	for (i = 0; i < ncreates; i++) {
		char *sp = strchr(creates[i], ' ');

		*sp = 0;
		if (dm_try(DM_DEVICE_CREATE, creates[i], sp + 1))
			fatal("cannot create %s from '%s'", creates[i], sp + 1);
	}
	if (dm_try(DM_DEVICE_CREATE, name, table)) {
		printf("verify: cannot create %s (recovery refused the devices)\n", name);
		return 2;
	}
	bad += status_sane(name, persistent);
	bad += check_dev(dev, &L, durable, dq, NULL, first, &o, "after recovery");
	t0 = now_s();
	drain(name);
	printf("drained in %.2f s\n", now_s() - t0);
	bad += status_sane(name, persistent);
	bad += check_dev(dev, &L, durable, dq, first, seen, &o, "after a full flush");
	dm_remove_retry(name);
	bad += check_dev(origin, &L, durable, dq, first, seen, &o, "on the origin alone");
	for (i = 0; i < nremoves; i++)
		dm_remove_retry(removes[i]);
	free(durable);
	free(first);
	free(seen);
	free(L.recs);
	printf("%s\n", bad ? "verify FAILED" : "verify ok");
	return bad ? 1 : 0;
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

static int do_dm(int argc, char **argv)
{
	int i;

	if (argc < 3 || argc % 2 != 1)
		fatal("dm: need DMNAME TABLE [DMNAME TABLE]...");
	for (i = 1; i < argc; i += 2)
		if (dm_try(DM_DEVICE_CREATE, argv[i], argv[i + 1]))
			fatal("cannot create %s from '%s'", argv[i], argv[i + 1]);
	return 0;
}
#else
static int do_verify(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fatal("built without libdevmapper: verify is not available");
	return 2;
}

static int do_cut(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fatal("built without libdevmapper: cut is not available");
	return 2;
}

static int do_dm(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fatal("built without libdevmapper: dm is not available");
	return 2;
}
#endif

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		goto usage;
	if (!strcmp(argv[1], "write"))
		return do_write(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check"))
		return do_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "verify"))
		return do_verify(argc - 1, argv + 1);
	if (!strcmp(argv[1], "cut"))
		return do_cut(argc - 1, argv + 1);
	if (!strcmp(argv[1], "dm"))
		return do_dm(argc - 1, argv + 1);
usage:
	fprintf(stderr, "usage: crashio write|check|verify|cut|dm ... (see the top of crashio.c)\n");
	return 2;
}
