/* test.h: a minimal unit test harness. Each test file is one program; each
 * TEST() prints "ok - name" or "not ok - name" (TAP-like) and tests/run.sh
 * adds the counts up. Layer: tests. */
#ifndef DICOMVAULT_TEST_H
#define DICOMVAULT_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failed_now;
static int t_pass, t_fail;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		t_failed_now = 1; \
	} \
} while (0)

#define CHECK_EQ_INT(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) { \
		fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, _a, #b, _b); \
		t_failed_now = 1; \
	} \
} while (0)

#define CHECK_EQ_STR(a, b) do { \
	const char *_a = (a), *_b = (b); \
	if (_a == NULL || _b == NULL || strcmp(_a, _b) != 0) { \
		fprintf(stderr, "  %s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, _a ? _a : "(null)", _b ? _b : "(null)"); \
		t_failed_now = 1; \
	} \
} while (0)

#define TEST(name) static void name(void)

#define RUN(name) do { \
	t_failed_now = 0; \
	name(); \
	if (t_failed_now) { t_fail++; printf("not ok - %s\n", #name); } \
	else { t_pass++; printf("ok - %s\n", #name); } \
	fflush(stdout); \
} while (0)

#define TEST_DONE() (t_fail ? 1 : 0)

#endif
