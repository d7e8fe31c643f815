/* The one clock: CLOCK_MONOTONIC in milliseconds, for deadlines,
 * timeouts and rate limits (never the wall clock, which may jump). */
#ifndef TS_CLOCK_H
#define TS_CLOCK_H

#include <time.h>

static inline long long ts_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
