/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stashctl: declarations shared by its source files.
 *
 *   stashctl.c	main(), the command table, help, argument helpers
 *   ctl.c	/dev/stash-control: opening it and the ioctls
 *   dm.c	device-mapper devices through libdevmapper (create, remove)
 *   output.c	units, JSON, progress display
 *   commands.c	the subcommands
 *   offline.c	dump and check: a cache device's metadata, read directly
 *   md-format.c	the module's on-disk format code (kmod/stash-format.c)
 *   assemble.c	probe, assemble: volumes found by their cache's superblock
 *   tunables.c	the tunables built in (linux/dm-stash-tunables.h), "tunables"
 */
#ifndef STASHCTL_H
#define STASHCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <linux/dm-stash.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define STASHCTL_VERSION \
	STR(STASH_VERSION_MAJOR) "." STR(STASH_VERSION_MINOR) "." STR(STASH_VERSION_PATCH)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Exit codes (documented in stashctl.8). */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,	/* the operation failed */
	EXIT_USAGE = 2,		/* bad command line or a value the kernel refused */
	EXIT_NOT_FOUND = 3,	/* no such cache or device */
	EXIT_PERM = 4,		/* not permitted: needs root (CAP_SYS_ADMIN) */
	EXIT_NO_MODULE = 5,	/* the dm-stash module is not loaded */
	/* check and dump (offline.c) */
	EXIT_MD_DAMAGED = 6,	/* a metadata copy is damaged; the other is used */
	EXIT_MD_CORRUPT = 7,	/* the kernel would refuse the cache */
	EXIT_NOT_STASH = 8,	/* no dm-stash superblock on the device */
};

extern const char *progname;

/* stashctl.c */
struct command {
	const char *name;
	const char *summary;
	const char *usage;	/* arguments after the command name */
	const char *help;	/* options and details, or NULL */
	int (*run)(int argc, char **argv);
};

const struct command *find_command(const char *name);
void print_command_help(FILE *f, const struct command *c);
int usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int parse_u64(const char *s, uint64_t *v);

/*
 * tunables.c: the rows of linux/dm-stash-tunables.h, indexed by
 * STASH_TUN_<name>.  status_at: where struct stash_ioc_status has the
 * value (an offset; 0: only GET_TUNABLE has it).
 */
struct tunable {
	const char *name;
	uint64_t min;
	uint64_t max;
	uint64_t def;
	const char *unit;	/* "" for a count */
	const char *doc;
	size_t status_at;
};

extern const struct tunable tunables[STASH_NR_TUNABLES];
const struct tunable *find_tunable(const char *name);
const char *tunable_unit(const char *name);
void print_tunables(FILE *f);
void print_tunables_json(FILE *f);

/* ctl.c: every function returns 0 or an exit code, having said why. */
extern bool ctl_quiet;
const char *mode_name(uint32_t mode);
int mode_from_name(const char *name, uint32_t *mode);
bool module_loaded(void);
int ctl_open(void);
int ctl_ioctl(unsigned long cmd, void *arg);
void ctl_select(struct stash_ioc_cache *sel, const char *name);
int ctl_version(struct stash_ioc_version *v);
int ctl_status(const char *name, struct stash_ioc_status *st);
int ctl_status_dev(uint32_t major, uint32_t minor, struct stash_ioc_status *st);
int ctl_list(struct stash_ioc_list_entry **entries, uint32_t *count);
int ctl_cmd(const char *name, unsigned long cmd);
int ctl_set_mode(const char *name, uint32_t mode);
int ctl_get_tunable(const char *name, const char *key, uint32_t index,
		    struct stash_ioc_tunable *t);
int ctl_set_tunable(const char *name, const char *key, uint64_t value,
		    int *err);
int ctl_error(int err, const char *what, const char *name);

/* dm.c */
struct dm_dev_info {
	bool exists;
	uint32_t major;
	uint32_t minor;
	int32_t open_count;
	char target[32];	/* type of the first target, "" if none */
};

int dm_create_device(const char *name, uint64_t sectors, const char *params,
		     const char *hint);
int dm_remove_device(const char *name);
int dm_device_info(const char *name, struct dm_dev_info *info);

/* output.c */
const char *fmt_bytes(char *buf, size_t len, uint64_t bytes);
const char *fmt_pct(char *buf, size_t len, uint64_t part, uint64_t whole);
const char *dev_path(char *buf, size_t len, uint32_t major, uint32_t minor);
const char *metadata_state(const struct stash_ioc_status *st);
void json_string(FILE *f, const char *s);
void print_status(FILE *f, const struct stash_ioc_status *st,
		  const struct stash_ioc_status *prev, double interval);
void print_status_json(FILE *f, const struct stash_ioc_status *st, bool one_line);
void print_counters(FILE *f, const struct stash_ioc_status *st);
void print_counters_json(FILE *f, const struct stash_ioc_status *st);
void print_counters_json_body(FILE *f, const struct stash_ioc_counters *c,
			      const char *indent);
void print_tunables_json_body(FILE *f, const struct stash_ioc_status *st,
			      const char *indent);

struct progress {
	bool tty;
	uint64_t total;		/* blocks to do */
	uint64_t block_bytes;
	double start;
	double last_print;
	size_t last_width;
};

double now_seconds(void);
void progress_start(struct progress *p, uint64_t total, uint64_t block_bytes);
void progress_update(struct progress *p, uint64_t left, const char *state);
void progress_end(struct progress *p);

/* commands.c */
int cmd_create(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_mode(int argc, char **argv);
int cmd_flush(int argc, char **argv);
int cmd_invalidate(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_tunables(int argc, char **argv);

/* offline.c */
int cmd_dump(int argc, char **argv);
int cmd_check(int argc, char **argv);
/* assemble.c */
int cmd_probe(int argc, char **argv);
int cmd_assemble(int argc, char **argv);
const char *stable_dev_path(const char *path, char *buf, size_t len);

#endif /* STASHCTL_H */
