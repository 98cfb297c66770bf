// SPDX-License-Identifier: GPL-2.0
/*
 * The unit-test runner (see unit.h): runs every registered TEST, or those
 * whose names contain one of the arguments, each in a forked child so that a
 * sanitizer abort, a crash or a leak report fails that test alone.  Prints
 * "ok"/"FAIL" per test and ends with "N passed, N failed"; exits 1 if any
 * test failed.  Options: --list (print the names), --no-fork (run in-process,
 * for a debugger).  A test running longer than $UNIT_TIMEOUT seconds (120)
 * is killed and fails.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#define UNIT_MAX_REPORTS	20

static struct unit_test *unit_tests;
static unsigned int unit_nr_tests;
static unsigned int unit_failures;	/* failed checks in the running test */
static char unit_ctx[256];
static unsigned int unit_timeout = 120;	/* seconds per test; $UNIT_TIMEOUT */

void unit_register(struct unit_test *t)
{
	t->next = unit_tests;
	unit_tests = t;
	unit_nr_tests++;
}

bool test_failed(void)
{
	return unit_failures != 0;
}

void test_context(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(unit_ctx, sizeof(unit_ctx), fmt, ap);
	va_end(ap);
}

/* Common head of a failure line; false if this one is not to be printed. */
static bool unit_fail_head(const char *file, int line)
{
	unit_failures++;
	if (unit_failures > UNIT_MAX_REPORTS) {
		if (unit_failures == UNIT_MAX_REPORTS + 1)
			printf("    ... further failures not shown\n");
		return false;
	}
	printf("    %s:%d: ", file, line);
	if (unit_ctx[0])
		printf("[%s] ", unit_ctx);
	return true;
}

static void unit_print_val(unsigned long long v)
{
	printf("%llu (0x%llx", v, v);
	if ((long long)v < 0)
		printf(", %lld", (long long)v);
	printf(")");
}

void unit_fail(const char *file, int line, const char *expr)
{
	if (unit_fail_head(file, line))
		printf("CHECK(%s) failed\n", expr);
	fflush(stdout);
}

void unit_fail_cmp(const char *file, int line, const char *expr,
		   unsigned long long a, unsigned long long b)
{
	if (!unit_fail_head(file, line))
		return;
	printf("CHECK(%s) failed: ", expr);
	unit_print_val(a);
	printf(" vs ");
	unit_print_val(b);
	printf("\n");
	fflush(stdout);
}

void unit_fail_dbl(const char *file, int line, const char *expr,
		   double a, double b)
{
	if (unit_fail_head(file, line))
		printf("CHECK(%s) failed: %.6g vs %.6g\n", expr, a, b);
	fflush(stdout);
}

static int unit_cmp(const void *pa, const void *pb)
{
	const struct unit_test *a = *(struct unit_test *const *)pa;
	const struct unit_test *b = *(struct unit_test *const *)pb;
	int c = strcmp(a->file, b->file);

	return c ? c : a->line - b->line;
}

static bool unit_selected(const struct unit_test *t, int argc, char **argv)
{
	bool any = false;
	int i;

	for (i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue;
		any = true;
		if (strstr(t->name, argv[i]))
			return true;
	}
	return !any;
}

static void unit_reset(void)
{
	unit_failures = 0;
	unit_ctx[0] = '\0';
}

/* Run @t; true if it passed. */
static bool unit_run(struct unit_test *t, bool do_fork)
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	if (!do_fork) {
		unit_reset();
		t->fn();
		return !unit_failures;
	}

	pid = fork();
	if (pid < 0) {
		perror("fork");
		return false;
	}
	if (pid == 0) {
		alarm(unit_timeout);	/* a hang fails the test, not the run */
		unit_reset();
		t->fn();
		fflush(stdout);
		/* exit(), not _exit(): LeakSanitizer checks at exit. */
		exit(unit_failures ? 1 : 0);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return false;
	}
	if (WIFSIGNALED(status)) {
		printf("    killed by signal %d%s\n", WTERMSIG(status),
		       WTERMSIG(status) == SIGALRM ? " (timed out)" : "");
		return false;
	}
	if (WEXITSTATUS(status) > 1)
		printf("    exit status %d (sanitizer report above?)\n",
		       WEXITSTATUS(status));
	return WEXITSTATUS(status) == 0;
}

static double unit_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct unit_test **all, *t;
	unsigned int i, n = 0, passed = 0, failed = 0;
	bool do_fork = true, list = false;
	int a;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--no-fork")) {
			do_fork = false;
		} else if (!strcmp(argv[a], "--list")) {
			list = true;
		} else if (argv[a][0] == '-') {
			fprintf(stderr, "usage: %s [--list] [--no-fork] [NAME...]\n",
				argv[0]);
			return 2;
		}
	}

	if (getenv("UNIT_TIMEOUT"))
		unit_timeout = (unsigned int)strtoul(getenv("UNIT_TIMEOUT"), NULL, 0);

	all = calloc(unit_nr_tests ? unit_nr_tests : 1, sizeof(*all));
	if (!all) {
		perror("calloc");
		return 2;
	}
	for (t = unit_tests; t; t = t->next)
		all[n++] = t;
	qsort(all, n, sizeof(*all), unit_cmp);

	for (i = 0; i < n; i++) {
		double t0;
		bool ok;

		t = all[i];
		if (!unit_selected(t, argc, argv))
			continue;
		if (list) {
			printf("%s\n", t->name);
			continue;
		}
		t0 = unit_now();
		ok = unit_run(t, do_fork);
		printf("%s %s (%.2fs)\n", ok ? "ok  " : "FAIL", t->name,
		       unit_now() - t0);
		if (ok)
			passed++;
		else
			failed++;
	}
	free(all);
	if (list)
		return 0;
	printf("%u passed, %u failed\n", passed, failed);
	return failed ? 1 : 0;
}
