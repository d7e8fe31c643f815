/* Logging (see log.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "real.h"

int ts_log_level_cur = TS_LOG_WARN;

void ts_log_set_level(int level)
{
	ts_log_level_cur = level;
}

void ts_log_write(int level, const char *fmt, ...)
{
	char line[1024];
	int saved = errno;
	int n = snprintf(line, sizeof line, "tlsshim: %s: ",
	                 ts_log_level_name(level));
	va_list ap;

	va_start(ap, fmt);
	/* vsnprintf formats into memory only: no stdio stream, no hook. */
	int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2;
	line[n++] = '\n';
	/* A program that closed fd 2 simply loses the line. */
	(void)REAL(write)(2, line, (size_t)n);
	errno = saved;
}
