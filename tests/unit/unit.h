/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A tiny unit-test framework for the userspace builds of the pure-logic
 * files in kmod/.  No dependencies beyond libc.
 *
 *   TEST(name) { ... }          defines and registers a test function
 *   CHECK(cond)                 a failed check is reported and the test goes on
 *   CHECK_EQ/NE/LT/LE/GT/GE(a, b)  integer comparisons; both values printed
 *   CHECK_DBL_LT/LE(a, b)       floating-point comparisons
 *   REQUIRE*(...)               the same, but a failure ends the test
 *   test_context(fmt, ...)      text printed with every later failure (the
 *                               loop index, the size under test, ...)
 *   test_failed()               whether the running test has failed yet
 *
 * Each test runs in its own child process (unit.c), so a sanitizer abort or
 * a leak in one test fails that test only.  Integer values are compared as
 * unsigned 64-bit and printed in decimal, hex and, when negative as a signed
 * value, signed decimal.
 */
#ifndef STASH_UNIT_H
#define STASH_UNIT_H

#include <stdbool.h>
#include <stdint.h>

struct unit_test {
	const char *name;
	const char *file;
	int line;
	void (*fn)(void);
	struct unit_test *next;
};

void unit_register(struct unit_test *t);
void unit_fail_cmp(const char *file, int line, const char *expr,
		   unsigned long long a, unsigned long long b);
void unit_fail_dbl(const char *file, int line, const char *expr,
		   double a, double b);
void unit_fail(const char *file, int line, const char *expr);
void test_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool test_failed(void);

#define TEST(fn)							\
	static void fn(void);						\
	static struct unit_test unit_t_##fn = {				\
		#fn, __FILE__, __LINE__, fn, 0 };			\
	__attribute__((constructor)) static void unit_reg_##fn(void)	\
	{								\
		unit_register(&unit_t_##fn);				\
	}								\
	static void fn(void)

#define UNIT_CHECK_(cond, on_fail)					\
	do {								\
		if (!(cond)) {						\
			unit_fail(__FILE__, __LINE__, #cond);		\
			on_fail;					\
		}							\
	} while (0)

#define UNIT_CMP_(a, op, b, on_fail)					\
	do {								\
		unsigned long long unit_a_ = (unsigned long long)(a);	\
		unsigned long long unit_b_ = (unsigned long long)(b);	\
		if (!(unit_a_ op unit_b_)) {				\
			unit_fail_cmp(__FILE__, __LINE__,		\
				      #a " " #op " " #b, unit_a_, unit_b_); \
			on_fail;					\
		}							\
	} while (0)

#define UNIT_DBL_(a, op, b, on_fail)					\
	do {								\
		double unit_a_ = (a), unit_b_ = (b);			\
		if (!(unit_a_ op unit_b_)) {				\
			unit_fail_dbl(__FILE__, __LINE__,		\
				      #a " " #op " " #b, unit_a_, unit_b_); \
			on_fail;					\
		}							\
	} while (0)

#define CHECK(c)		UNIT_CHECK_(c, (void)0)
#define CHECK_EQ(a, b)		UNIT_CMP_(a, ==, b, (void)0)
#define CHECK_NE(a, b)		UNIT_CMP_(a, !=, b, (void)0)
#define CHECK_LT(a, b)		UNIT_CMP_(a, <, b, (void)0)
#define CHECK_LE(a, b)		UNIT_CMP_(a, <=, b, (void)0)
#define CHECK_GT(a, b)		UNIT_CMP_(a, >, b, (void)0)
#define CHECK_GE(a, b)		UNIT_CMP_(a, >=, b, (void)0)
#define CHECK_DBL_LT(a, b)	UNIT_DBL_(a, <, b, (void)0)
#define CHECK_DBL_LE(a, b)	UNIT_DBL_(a, <=, b, (void)0)

#define REQUIRE(c)		UNIT_CHECK_(c, return)
#define REQUIRE_EQ(a, b)	UNIT_CMP_(a, ==, b, return)
#define REQUIRE_NE(a, b)	UNIT_CMP_(a, !=, b, return)
#define REQUIRE_LT(a, b)	UNIT_CMP_(a, <, b, return)
#define REQUIRE_LE(a, b)	UNIT_CMP_(a, <=, b, return)
#define REQUIRE_GE(a, b)	UNIT_CMP_(a, >=, b, return)

/* Deterministic PRNG for the randomized tests (splitmix64). */
static inline uint64_t unit_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0 (the modulo bias is irrelevant here). */
static inline uint64_t unit_rand_below(uint64_t *state, uint64_t n)
{
	return unit_rand(state) % n;
}

#endif /* STASH_UNIT_H */
