/* The unit tests' one assertion: counts, and names the failing condition
 * with an optional printf-style message. main() ends with
 * `return check_summary();`, which prints the "N passed, N failed" line. */
#ifndef TS_TEST_CHECK_H
#define TS_TEST_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int npass, nfail;

/* No format attribute: CHECK(cond) passes an empty format. */
static inline void check_one(bool ok, const char *expr, const char *file,
                             int line, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		npass++;
		return;
	}
	nfail++;
	fprintf(stderr, "%s:%d: FAIL (%s)", file, line, expr);
	if (fmt[0]) {
		fputs(": ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
}

#define CHECK(cond, ...)                                                  \
	check_one((cond) ? true : false, #cond, __FILE__, __LINE__,       \
	          "" __VA_ARGS__)

static inline int check_summary(void)
{
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail != 0;
}

#endif
