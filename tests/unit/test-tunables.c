// SPDX-License-Identifier: GPL-2.0
/*
 * The rows of kmod/uapi/linux/dm-stash-tunables.h, which the module,
 * stashctl and the fuzzers are built from: each default in its range,
 * names that are unique and fit the ioctls, known units, one-line docs,
 * the rules beyond the ranges met by the defaults, STASH_IOC_STATUS's
 * places (ioc column) filling struct stash_ioc_tunables once each; and
 * "stashctl tunables" ($STASHCTL, the ASan build) printing every row.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/dm-stash.h>

#include "unit.h"

struct row {
	const char *name;
	unsigned long long min, max, def;
	const char *unit;
	const char *doc;
	size_t status_at;
	const char *ioc;
};

#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) \
	[STASH_TUN_##name] = { #name, min, max, def, unit, doc, \
			       STASH_IOC_STATUS_AT(ioc, name), #ioc },
static const struct row rows[STASH_NR_TUNABLES] = {
#include <linux/dm-stash-tunables.h>
};
#undef STASH_TUNABLE

TEST(tunables_rows)
{
	for (unsigned int i = 0; i < STASH_NR_TUNABLES; i++) {
		const struct row *r = &rows[i];

		test_context("row %u (%s)", i, r->name ? r->name : "?");
		REQUIRE(r->name != NULL);
		CHECK_LT(strlen(r->name), STASH_TUNABLE_NAME_LEN);
		CHECK_EQ(strspn(r->name, "abcdefghijklmnopqrstuvwxyz_"),
			 strlen(r->name));
		for (unsigned int j = 0; j < i; j++)
			CHECK(strcmp(rows[j].name, r->name) != 0);
		/* The module keeps each in a u32. */
		CHECK_LE(r->min, r->def);
		CHECK_LE(r->def, r->max);
		CHECK_LE(r->max, 0xffffffffull);
		CHECK(!strcmp(r->unit, "") || !strcmp(r->unit, "KiB") ||
		      !strcmp(r->unit, "%") || !strcmp(r->unit, "ms") ||
		      !strcmp(r->unit, "KiB/s"));
		CHECK_GT(strlen(r->doc), 0);
		CHECK(!strchr(r->doc, '\n'));
	}
}

TEST(tunables_special_rules)
{
	const struct row *lat = &rows[STASH_TUN_writeback_latency];
	const struct row *lo = &rows[STASH_TUN_low_watermark];
	const struct row *hi = &rows[STASH_TUN_high_watermark];

	CHECK(!lat->def || lat->def >= STASH_WB_LATENCY_MIN_ON);
	CHECK_EQ(lat->min, 0);
	CHECK_LE(STASH_WB_LATENCY_MIN_ON, lat->max);
	CHECK_LT(lo->def, hi->def);
	CHECK_LT(lo->max, hi->max);
	CHECK_LT(lo->min, hi->min);
}

TEST(tunables_ioc_places)
{
	const size_t first = offsetof(struct stash_ioc_status, tunables);
	const size_t end = first + sizeof(struct stash_ioc_tunables);
	unsigned int in_tunables = 0;

	for (unsigned int i = 0; i < STASH_NR_TUNABLES; i++) {
		const struct row *r = &rows[i];

		test_context("row %u (%s, ioc %s)", i, r->name, r->ioc);
		if (!strcmp(r->ioc, "none")) {
			CHECK_EQ(r->status_at, 0);
			continue;
		}
		CHECK_EQ(r->status_at % 8, 0);
		CHECK_LE(r->status_at + 8, sizeof(struct stash_ioc_status));
		if (!strcmp(r->ioc, "tunables")) {
			CHECK_GE(r->status_at, first);
			CHECK_LE(r->status_at + 8, end);
			in_tunables++;
		} else {
			CHECK(!strcmp(r->ioc, "status"));
			CHECK(r->status_at < first || r->status_at >= end);
		}
		for (unsigned int j = 0; j < i; j++)
			CHECK(!rows[j].status_at || rows[j].status_at != r->status_at);
	}
	CHECK_EQ(in_tunables * 8, sizeof(struct stash_ioc_tunables));
}

/* "stashctl @args" into @out; its exit status, or -1. */
static int stashctl(const char *args, char *out, size_t len)
{
	const char *prog = getenv("STASHCTL");
	char cmd[512];
	size_t n = 0, got;
	FILE *p;

	if (!prog)
		prog = "../../userspace-tools/stashctl-asan";
	snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", prog, args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (n + 1 < len && (got = fread(out + n, 1, len - 1 - n, p)) > 0)
		n += got;
	out[n] = '\0';
	return pclose(p);
}

TEST(tunables_stashctl_lists_rows)
{
	static char out[16384];
	char want[512];

	REQUIRE_EQ(stashctl("tunables", out, sizeof(out)), 0);
	for (unsigned int i = 0; i < STASH_NR_TUNABLES; i++) {
		const struct row *r = &rows[i];
		char range[64];

		test_context("row %s", r->name);
		snprintf(range, sizeof(range), "%llu..%llu", r->min, r->max);
		snprintf(want, sizeof(want), "\n%-20s %-14s %10llu %-6s %s\n",
			 r->name, range, r->def, *r->unit ? r->unit : "-", r->doc);
		CHECK(strstr(out, want) != NULL);
	}
	if (test_failed())
		printf("    --- stashctl tunables:\n%s    ---\n", out);

	test_context("--names");
	REQUIRE_EQ(stashctl("tunables --names", out, sizeof(out)), 0);
	want[0] = '\0';
	for (unsigned int i = 0; i < STASH_NR_TUNABLES; i++) {
		strcat(want, rows[i].name);
		strcat(want, "\n");
	}
	CHECK(!strcmp(out, want));

	test_context("--json");
	REQUIRE_EQ(stashctl("tunables --json", out, sizeof(out)), 0);
	for (unsigned int i = 0; i < STASH_NR_TUNABLES; i++) {
		const struct row *r = &rows[i];

		snprintf(want, sizeof(want),
			 "{\"name\": \"%s\", \"min\": %llu, \"max\": %llu, "
			 "\"default\": %llu, \"unit\": \"%s\", ",
			 r->name, r->min, r->max, r->def, r->unit);
		CHECK(strstr(out, want) != NULL);
	}
	CHECK_NE(stashctl("tunables --names --json", out, sizeof(out)), 0);
}
