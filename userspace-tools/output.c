// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl: output helpers: units, device paths, the human and JSON forms
 * of status and counters, and the flush progress display.
 *
 * The JSON forms are documented in stashctl.8; keep them in step.  Fields
 * may be added, never renamed or removed.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stashctl.h"

const char *fmt_bytes(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return buf;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

const char *fmt_pct(char *buf, size_t len, uint64_t part, uint64_t whole)
{
	if (!whole)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f%%", 100.0 * (double)part / (double)whole);
	return buf;
}

/* "/dev/NAME" of a block device number, from sysfs; "" if unknown. */
const char *dev_path(char *buf, size_t len, uint32_t major, uint32_t minor)
{
	char path[64], line[256];
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/uevent", major, minor);
	f = fopen(path, "r");
	if (!f)
		return buf;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "DEVNAME=", 8)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(buf, len, "/dev/%s", line + 8);
			break;
		}
	}
	fclose(f);
	return buf;
}

/* As dmsetup status's cache_state says it. */
static const char *cache_state(const struct stash_ioc_status *st)
{
	return st->flags & STASH_IOC_F_CACHE_FAILED ? "failed" : "ok";
}

/* As dmsetup status says it: volatile, persistent or failed. */
const char *metadata_state(const struct stash_ioc_status *st)
{
	if (st->flags & STASH_IOC_F_VOLATILE)
		return "volatile";
	if (st->flags & STASH_IOC_F_METADATA_FAILED)
		return "failed";
	return st->flags & STASH_IOC_F_METADATA ? "persistent" : "none";
}

void json_string(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* ------------------------------------------------------------------ */

struct counter_desc {
	const char *key;	/* JSON key = the dmsetup status key */
	const char *label;
	size_t offset;
};

#define COUNTER(k, l) { #k, l, offsetof(struct stash_ioc_counters, k) }

static const struct counter_desc counter_descs[] = {
	COUNTER(read_hits, "read hits"),
	COUNTER(read_misses, "read misses"),
	COUNTER(write_hits, "write hits"),
	COUNTER(write_misses, "write misses"),
	COUNTER(promotions, "promotions"),
	COUNTER(evictions, "evictions"),
	COUNTER(invalidations, "invalidations"),
	COUNTER(bypassed, "bypassed"),
	COUNTER(written_back, "written back"),
	COUNTER(cache_errors, "cache errors"),
	COUNTER(origin_errors, "origin errors"),
	COUNTER(writeback_errors, "writeback errors"),
	COUNTER(commits, "metadata commits"),
};

static uint64_t counter(const struct stash_ioc_counters *c,
			const struct counter_desc *d)
{
	uint64_t v;

	memcpy(&v, (const char *)c + d->offset, sizeof(v));
	return v;
}

/* A tunable that STASH_IOC_STATUS has (tunable->status_at): its value. */
static uint64_t status_tunable(const struct stash_ioc_status *st,
			       const struct tunable *t)
{
	uint64_t v;

	memcpy(&v, (const char *)st + t->status_at, sizeof(v));
	return v;
}

static void dev_json(FILE *f, uint32_t major, uint32_t minor)
{
	char path[300];

	fprintf(f, "{\"dev\": \"%u:%u\", \"major\": %u, \"minor\": %u, \"path\": ",
		major, minor, major, minor);
	if (*dev_path(path, sizeof(path), major, minor))
		json_string(f, path);
	else
		fputs("null", f);
	fputc('}', f);
}

void print_counters_json_body(FILE *f, const struct stash_ioc_counters *c,
			      const char *indent)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(counter_descs); i++)
		fprintf(f, "%s%s\"%s\": %" PRIu64, i ? "," : "", indent,
			counter_descs[i].key, counter(c, &counter_descs[i]));
}

/* The tunables that STASH_IOC_STATUS has, in the rows' order. */
void print_tunables_json_body(FILE *f, const struct stash_ioc_status *st,
			      const char *indent)
{
	const char *sep = "";
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tunables); i++) {
		if (!tunables[i].status_at)
			continue;
		fprintf(f, "%s%s\"%s\": %" PRIu64, sep, indent, tunables[i].name,
			status_tunable(st, &tunables[i]));
		sep = ",";
	}
}

/* The JSON form: pretty, or all on one line. */
static void status_json(FILE *f, const struct stash_ioc_status *st, bool pretty)
{
	const char *nl = pretty ? "\n  " : " ";
	const char *nl2 = pretty ? "\n    " : " ";

	fputc('{', f);
	fprintf(f, "%s\"name\": ", nl);
	json_string(f, st->name);
	fprintf(f, ",%s\"dev\": \"%u:%u\", \"major\": %u, \"minor\": %u",
		nl, st->major, st->minor, st->major, st->minor);
	fprintf(f, ",%s\"mode\": \"%s\", \"state\": ", nl, mode_name(st->mode));
	json_string(f, st->state);
	fprintf(f, ",%s\"live\": %s, \"volatile\": %s, \"metadata\": \"%s\"", nl,
		st->flags & STASH_IOC_F_LIVE ? "true" : "false",
		st->flags & STASH_IOC_F_VOLATILE ? "true" : "false",
		metadata_state(st));
	fprintf(f, ",%s\"size_sectors\": %llu, \"block_size\": %u, "
		"\"block_bytes\": %llu", nl,
		(unsigned long long)st->target_sectors, st->block_sectors,
		(unsigned long long)st->block_sectors * 512);
	fprintf(f, ",%s\"origin\": ", nl);
	dev_json(f, st->origin_major, st->origin_minor);
	fprintf(f, ",%s\"cache\": ", nl);
	dev_json(f, st->cache_major, st->cache_minor);
	fprintf(f, ",%s\"cache_blocks\": %llu, \"used_blocks\": %llu, "
		"\"dirty_blocks\": %llu, \"writeback_blocks\": %llu", nl,
		(unsigned long long)st->cache_blocks,
		(unsigned long long)st->used_blocks,
		(unsigned long long)st->dirty_blocks,
		(unsigned long long)st->writeback_blocks);
	fprintf(f, ",%s\"writeback_rate\": %llu, \"ram_per_block\": %u", nl,
		(unsigned long long)st->writeback_rate, st->ram_per_block);
	fprintf(f, ",%s\"writeback_passes\": %llu, \"drains_started\": %llu, "
		"\"drains_completed\": %llu, \"metadata_seq\": %llu", nl,
		(unsigned long long)st->writeback_passes,
		(unsigned long long)st->drains_started,
		(unsigned long long)st->drains_completed,
		(unsigned long long)st->metadata_seq);
	fprintf(f, ",%s\"cache_state\": \"%s\", \"writeback_retry_ms\": %llu", nl,
		cache_state(st), (unsigned long long)st->writeback_retry_ms);
	fprintf(f, ",%s\"checksum\": %s, \"checksum_errors\": %llu, "
		"\"checksum_bad\": %llu", nl,
		st->flags & STASH_IOC_F_CHECKSUM ? "true" : "false",
		(unsigned long long)st->checksum_errors,
		(unsigned long long)st->checksum_bad);
	fprintf(f, ",%s\"counters\": {", nl);
	print_counters_json_body(f, &st->counters, nl2);
	fprintf(f, "%s}", nl);
	fprintf(f, ",%s\"tunables\": {", nl);
	print_tunables_json_body(f, st, nl2);
	fprintf(f, "%s}", nl);
	fprintf(f, "%s}\n", pretty ? "\n" : " ");
}

/* Pretty, or on one line (for --watch). */
void print_status_json(FILE *f, const struct stash_ioc_status *st, bool one_line)
{
	status_json(f, st, !one_line);
}

static void counter_lines(FILE *f, const struct stash_ioc_status *st,
			  const struct stash_ioc_status *prev, double interval)
{
	const struct stash_ioc_counters *c = &st->counters;
	uint64_t reads = c->read_hits + c->read_misses;
	uint64_t writes = c->write_hits + c->write_misses;
	uint64_t block = (uint64_t)st->block_sectors * 512;
	char b1[32], b2[32];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(counter_descs); i++) {
		const struct counter_desc *d = &counter_descs[i];
		uint64_t v = counter(c, d);

		fprintf(f, "  %-18s %14" PRIu64, d->label, v);
		if (prev && interval > 0) {
			uint64_t pv = counter(&prev->counters, d);

			fprintf(f, "  %10.1f/s", v >= pv ? (double)(v - pv) / interval : 0.0);
		}
		if (d->offset == offsetof(struct stash_ioc_counters, read_hits))
			fprintf(f, "  %s of %" PRIu64 " reads",
				fmt_pct(b1, sizeof(b1), v, reads), reads);
		else if (d->offset == offsetof(struct stash_ioc_counters, write_hits))
			fprintf(f, "  %s of %" PRIu64 " writes",
				fmt_pct(b1, sizeof(b1), v, writes), writes);
		else if (d->offset == offsetof(struct stash_ioc_counters, written_back))
			fprintf(f, "  blocks, %s", fmt_bytes(b2, sizeof(b2), v * block));
		fputc('\n', f);
	}
}

static void tunable_lines(FILE *f, const struct stash_ioc_status *st)
{
	const struct tunable *t;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tunables); i++) {
		t = &tunables[i];
		if (t->status_at)
			fprintf(f, "  %-18s %14" PRIu64 "%s%s\n", t->name,
				status_tunable(st, t), *t->unit ? " " : "", t->unit);
	}
}

/*
 * The human form.  With @prev (the sample @interval seconds earlier) the
 * counters get rates.
 */
void print_status(FILE *f, const struct stash_ioc_status *st,
		  const struct stash_ioc_status *prev, double interval)
{
	uint64_t block = (uint64_t)st->block_sectors * 512;
	char path[300], b1[32], b2[32];

	fprintf(f, "%s (%u:%u): %s, %s%s\n", st->name, st->major, st->minor,
		mode_name(st->mode), st->state,
		st->flags & STASH_IOC_F_LIVE ? "" : ", not live (suspended or inactive)");
	fprintf(f, "  %-18s %s (%u:%u), %s\n", "origin",
		*dev_path(path, sizeof(path), st->origin_major, st->origin_minor) ?
		path : "?", st->origin_major, st->origin_minor,
		fmt_bytes(b1, sizeof(b1), st->target_sectors * 512));
	fprintf(f, "  %-18s %s (%u:%u), %s for data, metadata %s\n",
		"cache device",
		*dev_path(path, sizeof(path), st->cache_major, st->cache_minor) ?
		path : "?", st->cache_major, st->cache_minor,
		fmt_bytes(b1, sizeof(b1), st->cache_blocks * block),
		metadata_state(st));
	if (st->flags & STASH_IOC_F_CACHE_FAILED)
		fprintf(f, "  %-18s %s\n", "cache state",
			"failed: I/O goes to the origin, dirty blocks are being written back");
	fprintf(f, "  %-18s %s (%u sectors)\n", "block size",
		fmt_bytes(b1, sizeof(b1), block), st->block_sectors);
	fprintf(f, "  %-18s %14llu of %llu blocks, %s (%s)\n", "used",
		(unsigned long long)st->used_blocks,
		(unsigned long long)st->cache_blocks,
		fmt_pct(b1, sizeof(b1), st->used_blocks, st->cache_blocks),
		fmt_bytes(b2, sizeof(b2), st->used_blocks * block));
	fprintf(f, "  %-18s %14llu blocks, %s (%s)\n", "dirty",
		(unsigned long long)st->dirty_blocks,
		fmt_pct(b1, sizeof(b1), st->dirty_blocks, st->cache_blocks),
		fmt_bytes(b2, sizeof(b2), st->dirty_blocks * block));
	fprintf(f, "  %-18s %14llu blocks, %s/s\n", "in writeback",
		(unsigned long long)st->writeback_blocks,
		fmt_bytes(b1, sizeof(b1), st->writeback_rate * 1024));
	fprintf(f, "  %-18s %14llu started, %llu of them full drains (%llu done)\n",
		"writeback passes", (unsigned long long)st->writeback_passes,
		(unsigned long long)st->drains_started,
		(unsigned long long)st->drains_completed);
	if (st->flags & STASH_IOC_F_METADATA)
		fprintf(f, "  %-18s %14llu last commit sequence%s\n", "metadata",
			(unsigned long long)st->metadata_seq,
			st->flags & STASH_IOC_F_METADATA_FAILED ?
			", FAILED: writes that need a commit are refused" : "");
	if (st->writeback_retry_ms)
		fprintf(f, "  %-18s %14llu ms after errors\n", "writeback retry",
			(unsigned long long)st->writeback_retry_ms);
	if (st->flags & STASH_IOC_F_CHECKSUM)
		fprintf(f, "  %-18s %14llu mismatches, %llu dirty blocks bad%s\n",
			"checksums", (unsigned long long)st->checksum_errors,
			(unsigned long long)st->checksum_bad,
			st->checksum_bad ? ": reads of them fail, writeback "
			"skips them" : "");
	fprintf(f, "  %-18s %14u bytes per block, %s in all\n", "kernel RAM",
		st->ram_per_block,
		fmt_bytes(b1, sizeof(b1), (uint64_t)st->ram_per_block * st->cache_blocks));
	if (prev && interval > 0)
		fprintf(f, "%-37s%12s\n", "counters", "per second");
	else
		fprintf(f, "counters\n");
	counter_lines(f, st, prev, interval);
	fprintf(f, "tunables\n");
	tunable_lines(f, st);
}

void print_counters(FILE *f, const struct stash_ioc_status *st)
{
	fprintf(f, "%s (%u:%u): %s, %s\n", st->name, st->major, st->minor,
		mode_name(st->mode), st->state);
	counter_lines(f, st, NULL, 0);
}

void print_counters_json(FILE *f, const struct stash_ioc_status *st)
{
	fputs("{\n  \"name\": ", f);
	json_string(f, st->name);
	fputs(",\n  \"counters\": {", f);
	print_counters_json_body(f, &st->counters, "\n    ");
	fputs("\n  }\n}\n", f);
}

/* ------------------------------------------------------------------ */

double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_start(struct progress *p, uint64_t total, uint64_t block_bytes)
{
	memset(p, 0, sizeof(*p));
	p->tty = isatty(STDOUT_FILENO);
	p->total = total;
	p->block_bytes = block_bytes;
	p->start = now_seconds();
	p->last_print = -1;
}

/* @left dirty blocks now; a bar on a terminal, a line a second otherwise. */
void progress_update(struct progress *p, uint64_t left, const char *state)
{
	double t = now_seconds(), elapsed = t - p->start, rate;
	uint64_t done = left < p->total ? p->total - left : 0;
	unsigned int pct = p->total ? (unsigned int)(100 * done / p->total) : 100;
	char bar[41], b1[32], b2[32];
	size_t i, fill;
	int n;

	if (left > p->total)
		p->total = left;	/* new dirty blocks: the goal moved */
	rate = elapsed > 0 ? (double)(done * p->block_bytes) / elapsed : 0;
	if (!p->tty) {
		if (p->last_print >= 0 && t - p->last_print < 1.0)
			return;
		p->last_print = t;
		printf("flush: %3u%% done, %" PRIu64 " dirty blocks (%s) left, %s/s, "
		       "state %s\n", pct, left,
		       fmt_bytes(b1, sizeof(b1), left * p->block_bytes),
		       fmt_bytes(b2, sizeof(b2), (uint64_t)rate), state);
		fflush(stdout);
		return;
	}
	fill = (size_t)pct * (sizeof(bar) - 1) / 100;
	for (i = 0; i < sizeof(bar) - 1; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[sizeof(bar) - 1] = '\0';
	n = printf("\r[%s] %3u%%  %" PRIu64 " blocks (%s) left  %s/s ", bar, pct,
		   left, fmt_bytes(b1, sizeof(b1), left * p->block_bytes),
		   fmt_bytes(b2, sizeof(b2), (uint64_t)rate));
	if (n > 0 && (size_t)n < p->last_width)
		printf("%*s", (int)(p->last_width - (size_t)n), "");
	if (n > 0)
		p->last_width = (size_t)n;
	fflush(stdout);
}

void progress_end(struct progress *p)
{
	if (p->tty && p->last_width)
		putchar('\n');
	fflush(stdout);
}
