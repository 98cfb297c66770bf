// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl: control tool for dm-stash block cache devices.
 *
 * Subcommands live in one table (commands[] below): each has a name, a
 * one-line summary, a usage line, a help text and a handler taking the
 * arguments after its name (argv[0] is the command name, for getopt).
 * Add new ones there, in stashctl.8 and in stashctl.bash-completion.
 * The tunables are not listed here: they come from the module's table
 * (tunables.c).
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stashctl.h"

/* Every uapi struct has the same size here as in the module. */
_Static_assert(sizeof(struct stash_ioc_cache) == STASH_IOC_CACHE_SIZE, "cache");
_Static_assert(sizeof(struct stash_ioc_version) == STASH_IOC_VERSION_SIZE, "version");
_Static_assert(sizeof(struct stash_ioc_list_entry) == STASH_IOC_LIST_ENTRY_SIZE,
	       "list entry");
_Static_assert(sizeof(struct stash_ioc_list) == STASH_IOC_LIST_SIZE, "list");
_Static_assert(sizeof(struct stash_ioc_cmd) == STASH_IOC_CMD_SIZE, "cmd");
_Static_assert(sizeof(struct stash_ioc_mode) == STASH_IOC_MODE_SIZE, "mode");
_Static_assert(sizeof(struct stash_ioc_tunable) == STASH_IOC_TUNABLE_SIZE, "tunable");
_Static_assert(sizeof(struct stash_ioc_counters) == STASH_IOC_COUNTERS_SIZE, "counters");
_Static_assert(sizeof(struct stash_ioc_tunables) == STASH_IOC_TUNABLES_SIZE, "tunables");
_Static_assert(sizeof(struct stash_ioc_status) == STASH_IOC_STATUS_SIZE, "status");

const char *progname = "stashctl";

static const struct command commands[] = {
	{ "create", "create a stash device over an origin and a cache device",
	  "NAME --origin DEV --cache DEV --mode MODE [--block-size SIZE]\n"
	  "       [--volatile] [--checksum] [--format] [--set KEY=VALUE]...",
	  "  --origin DEV       the slow device that holds the data\n"
	  "  --cache DEV        the fast device that caches it\n"
	  "  --mode MODE        writearound, writethrough or writeback\n"
	  "  --block-size SIZE  cache block size: sectors, or with a K/KiB or\n"
	  "                     M/MiB suffix; a power of two, 4 KiB..1 MiB\n"
	  "                     (default 4 KiB)\n"
	  "  --volatile         the cache device keeps no metadata (RAM)\n"
	  "  --checksum         keep a crc32c of every cached block, checked on\n"
	  "                     each read of the cache device\n"
	  "  --format           format a cache device that is not blank and\n"
	  "                     holds no dm-stash cache (its data is lost; an\n"
	  "                     existing dm-stash cache is loaded, not wiped);\n"
	  "                     not with --volatile\n"
	  "  --set KEY=VALUE    set a tunable from the start ('stashctl tunables'\n"
	  "                     lists them)\n"
	  "The device covers the whole origin and appears as /dev/mapper/NAME.",
	  cmd_create },
	{ "remove", "write back dirty blocks, then remove a stash device",
	  "NAME [--no-flush]",
	  "  --no-flush  remove without flushing first; prints how many blocks\n"
	  "              are still dirty: a volatile cache still writes them back\n"
	  "              when the device is suspended for removal; a persistent\n"
	  "              one keeps them on the cache device, and the origin is\n"
	  "              behind until the cache is created again and flushed\n"
	  "By default stashctl starts a flush, shows its progress and removes\n"
	  "the device once no block is dirty.  A device that is open (mounted,\n"
	  "in use) is left alone.",
	  cmd_remove },
	{ "list", "list the stash devices", "[--json]",
	  "  --json  one JSON array (see stashctl(8))",
	  cmd_list },
	{ "status", "show a cache's state, sizes, counters and tunables",
	  "NAME [--json] [--watch SECONDS]",
	  "  --json             one JSON object (see stashctl(8)); with --watch,\n"
	  "                     one object per line\n"
	  "  --watch SECONDS    repeat every SECONDS until interrupted, with\n"
	  "                     rates per second",
	  cmd_status },
	{ "mode", "switch a cache's write mode", "NAME MODE",
	  "MODE is writearound, writethrough or writeback.  Into writeback at\n"
	  "once; out of writeback, writes follow the new mode at once and the\n"
	  "dirty blocks are written back in the background (state draining).",
	  cmd_mode },
	{ "flush", "write every dirty block back to the origin", "NAME [--no-wait]",
	  "  --no-wait  start the flush and return at once\n"
	  "Without --no-wait, shows the progress (a bar on a terminal, a line\n"
	  "a second otherwise) until no block is dirty.",
	  cmd_flush },
	{ "invalidate", "forget every clean cached block", "NAME",
	  "Dirty blocks stay cached until they are written back.",
	  cmd_invalidate },
	{ "set", "set a tunable", "NAME KEY VALUE",
	  "'stashctl get NAME' lists the module's tunables with their values\n"
	  "and ranges; these are the ones this stashctl knows:",
	  cmd_set },
	{ "get", "show tunables, or one tunable's value", "NAME [KEY] [--json]",
	  "  --json  one JSON object KEY: VALUE (without KEY)\n"
	  "With KEY, prints its value alone; without, every tunable with its\n"
	  "unit and allowed range.",
	  cmd_get },
	{ "stats", "show a cache's counters", "NAME [--reset] [--json]",
	  "  --reset  print the counters, then set them to zero\n"
	  "  --json   one JSON object (see stashctl(8))",
	  cmd_stats },
	{ "dump", "show a cache device's metadata and mappings (offline)",
	  "DEVICE [--json] [--summary]",
	  "  --json     one JSON object (see stashctl(8))\n"
	  "  --summary  the superblock and the totals, not every mapping\n"
	  "Reads the metadata from the cache device itself (no module needed)\n"
	  "and shows what the kernel would load from it: the superblock, each\n"
	  "cached block (cache slot -> origin block, dirty or clean) and the\n"
	  "totals.  Best done while no stash device uses it.",
	  cmd_dump },
	{ "check", "check a cache device's metadata (offline)",
	  "DEVICE [--quiet] [--clear-needs-check]",
	  "  --quiet  print only the verdict\n"
	  "  --clear-needs-check\n"
	  "           clear the mark a failed metadata commit left (stashctl(8))\n"
	  "Validates everything the kernel's recovery validates (checksums,\n"
	  "magic, version, geometry, page places and sequences, reserved bits,\n"
	  "origin block ranges, duplicate origin blocks) and reports each\n"
	  "problem.  Exit status: 0 clean, 6 damaged but loadable (a copy the\n"
	  "kernel does not use), 7 corrupt or needs check (the kernel refuses\n"
	  "the cache), 8 not a dm-stash cache device.",
	  cmd_check },
	{ "assemble", "recreate persistent volumes from their cache devices",
	  "--all | CACHE-DEVICE... [--dry-run] [--only-listed[=FILE]]",
	  "  --all      look at every block device for dm-stash superblocks\n"
	  "  --dry-run  say what would be created, create nothing\n"
	  "  --only-listed[=FILE]\n"
	  "             only caches whose uuid ('probe' shows it) is a line of\n"
	  "             FILE (default /etc/dm-stash/assemble.allow); the udev\n"
	  "             rule uses this\n"
	  "Each cache's superblock names its volume, origin (path and size),\n"
	  "mode and options: the volume is created as 'create' made it, and\n"
	  "the module loads the cache as it is, dirty blocks included.  A\n"
	  "missing origin or one of another size leaves the cache untouched\n"
	  "(exit 3 or 1); volumes that exist already are skipped.",
	  cmd_assemble },
	{ "probe", "tell whether a device is a dm-stash cache device",
	  "DEVICE [--export]",
	  "  --export  print STASH_CACHE=1 and STASH_CACHE_UUID=... (for udev)\n"
	  "Exit status 0 if DEVICE holds a valid dm-stash superblock.",
	  cmd_probe },
	{ "tunables", "list the tunables: range, default, unit, meaning",
	  "[--names | --json]",
	  "  --names  only the names, one a line\n"
	  "  --json   one JSON array of objects: name, min, max, default, unit,\n"
	  "           description\n"
	  "The tunables this stashctl was built with (the module's own table);\n"
	  "needs neither root nor the module.  'stashctl get NAME' shows a\n"
	  "cache's values.",
	  cmd_tunables },
	{ "version", "print the tool's and the loaded module's versions", "",
	  NULL, cmd_version },
	{ "help", "show this help, or the help of one command", "[COMMAND]",
	  NULL, cmd_help },
};

const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void print_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: %s COMMAND [ARGS...]\n\n", progname);
	fprintf(f, "Control dm-stash block cache devices.\n\ncommands:\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s  %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'%s COMMAND --help' or '%s help COMMAND' shows the help of "
		"one command.\n", progname, progname);
	fprintf(f, "Exit status: 0 ok, 1 failed, 2 usage or bad value, 3 no such "
		"cache,\n4 not permitted (needs root), 5 module not loaded; check "
		"and dump:\n6 metadata damaged but loadable, 7 corrupt, 8 not a "
		"dm-stash cache device.\n");
}

void print_command_help(FILE *f, const struct command *c)
{
	fprintf(f, "usage: %s %s%s%s\n\n%c%s.\n", progname, c->name,
		*c->usage ? " " : "", c->usage, toupper((unsigned char)c->summary[0]),
		c->summary + 1);
	if (c->help)
		fprintf(f, "\n%s\n", c->help);
	/* set's KEY: the tunables built in. */
	if (c->run == cmd_set) {
		fputc('\n', f);
		print_tunables(f);
	}
}

static void vmsg(const char *prefix, const char *fmt, va_list ap)
{
	fflush(stdout);
	fprintf(stderr, "%s: %s", progname, prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void errorf(const char *fmt, ...)
{
	va_list ap;

	if (ctl_quiet)
		return;
	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

void notef(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("note: ", fmt, ap);
	va_end(ap);
}

/* Say what is wrong with the command line, show the usage, return 2. */
int usage_error(const char *cmd, const char *fmt, ...)
{
	const struct command *c = cmd ? find_command(cmd) : NULL;
	va_list ap;

	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
	if (c)
		fprintf(stderr, "usage: %s %s%s%s\n'%s %s --help' for more.\n",
			progname, c->name, *c->usage ? " " : "", c->usage,
			progname, c->name);
	return EXIT_USAGE;
}

/* A decimal number that fits in 64 bits, nothing else. */
int parse_u64(const char *s, uint64_t *v)
{
	unsigned long long x;
	char *end;

	if (!*s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*v = x;
	return 0;
}

int cmd_help(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		if (argc >= 2)
			print_command_help(stdout, find_command("help"));
		else
			print_usage(stdout);
		return EXIT_OK;
	}
	if (argc > 2)
		return usage_error("help", "too many arguments");
	c = find_command(argv[1]);
	if (!c)
		return usage_error("help", "unknown command '%s'", argv[1]);
	print_command_help(stdout, c);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		print_usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(1, argv + 1);
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
		return cmd_version(1, argv + 1);

	c = find_command(argv[1]);
	if (!c) {
		errorf("unknown command '%s'", argv[1]);
		print_usage(stderr);
		return EXIT_USAGE;
	}
	return c->run(argc - 1, argv + 1);
}
