// SPDX-License-Identifier: GPL-2.0
/*
 * stashctl: control tool for dm-stash block cache devices.
 *
 * Subcommands live in one table (commands[] below): each has a name, a
 * one-line summary, a usage line and a handler taking the arguments after
 * its name.  Add new ones there.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/dm-stash.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define STASHCTL_VERSION \
	STR(STASH_VERSION_MAJOR) "." STR(STASH_VERSION_MINOR) "." STR(STASH_VERSION_PATCH)

#define MODULE_VERSION_PATH "/sys/module/dm_stash/version"
#define MODULE_PATH "/sys/module/dm_stash"

static const char *progname = "stashctl";

struct command {
	const char *name;
	const char *summary;
	const char *usage;	/* arguments after the command name */
	int (*run)(int argc, char **argv);
};

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct command commands[] = {
	{ "version", "print the tool's and the loaded module's versions", "",
	  cmd_version },
	{ "help", "show this help, or the usage of one command", "[COMMAND]",
	  cmd_help },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void print_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: %s COMMAND [ARGS...]\n\n", progname);
	fprintf(f, "Control dm-stash block cache devices.\n\ncommands:\n");
	for (i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'%s help COMMAND' shows the usage of one command.\n",
		progname);
}

static void print_command_usage(FILE *f, const struct command *c)
{
	fprintf(f, "usage: %s %s%s%s\n", progname, c->name,
		*c->usage ? " " : "", c->usage);
}

/* Read the first line of a small file, without the newline. */
static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	int err;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f)) {
		err = ferror(f) ? -EIO : -ENODATA;
		fclose(f);
		return err;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int cmd_version(int argc, char **argv)
{
	char version[64];
	FILE *probe;
	int err;

	(void)argv;
	if (argc > 0) {
		print_command_usage(stderr, find_command("version"));
		return 2;
	}
	printf("stashctl: %s\n", STASHCTL_VERSION);

	err = read_line(MODULE_VERSION_PATH, version, sizeof(version));
	if (!err) {
		printf("module: %s\n", version);
		return 0;
	}
	probe = fopen(MODULE_PATH "/initstate", "r");
	if (probe) {
		fclose(probe);
		printf("module: loaded (version unknown)\n");
	} else {
		printf("module: not loaded\n");
	}
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	const struct command *c;

	if (argc == 0) {
		print_usage(stdout);
		return 0;
	}
	c = find_command(argv[0]);
	if (!c) {
		fprintf(stderr, "%s: unknown command '%s'\n", progname, argv[0]);
		return 2;
	}
	print_command_usage(stdout, c);
	printf("%s\n", c->summary);
	return 0;
}

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		print_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(0, NULL);
	if (!strcmp(argv[1], "--version"))
		return cmd_version(0, NULL);

	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "%s: unknown command '%s'\n", progname, argv[1]);
		print_usage(stderr);
		return 2;
	}
	return c->run(argc - 2, argv + 2);
}
