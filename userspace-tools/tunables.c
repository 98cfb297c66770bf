// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl: the tunables it was built with, from the rows of
 * <linux/dm-stash-tunables.h> (the module's own table): names, ranges,
 * defaults, units, meaning and where STASH_IOC_STATUS has them, and their
 * listings for the "tunables" command.  The loaded module's tunables,
 * values and ranges come from its ioctls ("get").
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "stashctl.h"

#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) \
	[STASH_TUN_##name] = { #name, min, max, def, unit, doc, \
			       STASH_IOC_STATUS_AT(ioc, name) },
const struct tunable tunables[STASH_NR_TUNABLES] = {
#include <linux/dm-stash-tunables.h>
};

#undef STASH_TUNABLE

/* Every name fits the ioctls' name field; "create" keeps a bit per tunable. */
#define STASH_TUNABLE(name, field, min, max, def, unit, ioc, doc) \
	_Static_assert(sizeof(#name) <= STASH_TUNABLE_NAME_LEN, #name);
#include <linux/dm-stash-tunables.h>
#undef STASH_TUNABLE
_Static_assert(STASH_NR_TUNABLES <= 32, "tunables");

const struct tunable *find_tunable(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(tunables); i++)
		if (!strcmp(name, tunables[i].name))
			return &tunables[i];
	return NULL;
}

const char *tunable_unit(const char *name)
{
	const struct tunable *t = find_tunable(name);

	return t ? t->unit : "";
}

/* One line per tunable: name, range, default, unit ("-": none), meaning. */
void print_tunables(FILE *f)
{
	char range[48];
	size_t i;

	fprintf(f, "%-20s %-14s %10s %-6s %s\n", "TUNABLE", "RANGE", "DEFAULT",
		"UNIT", "MEANING");
	for (i = 0; i < ARRAY_SIZE(tunables); i++) {
		const struct tunable *t = &tunables[i];

		snprintf(range, sizeof(range), "%" PRIu64 "..%" PRIu64, t->min,
			 t->max);
		fprintf(f, "%-20s %-14s %10" PRIu64 " %-6s %s\n", t->name, range,
			t->def, *t->unit ? t->unit : "-", t->doc);
	}
}

/* The same as a JSON array of objects. */
void print_tunables_json(FILE *f)
{
	size_t i;

	fputc('[', f);
	for (i = 0; i < ARRAY_SIZE(tunables); i++) {
		const struct tunable *t = &tunables[i];

		fprintf(f, "%s\n  {\"name\": ", i ? "," : "");
		json_string(f, t->name);
		fprintf(f, ", \"min\": %" PRIu64 ", \"max\": %" PRIu64
			", \"default\": %" PRIu64 ", \"unit\": ", t->min, t->max,
			t->def);
		json_string(f, t->unit);
		fputs(", \"description\": ", f);
		json_string(f, t->doc);
		fputc('}', f);
	}
	fputs("\n]\n", f);
}
