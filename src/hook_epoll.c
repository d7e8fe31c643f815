/* epoll: registrations are recorded (src/epreg.c) once a policy is loaded;
 * waits translate readiness only while an asynchronous handshake is
 * pending or a failure is unreported (see conn_async.h). */
#define _GNU_SOURCE
#include <limits.h>
#include <signal.h>
#include <sys/epoll.h>
#include <time.h>

#include "conn_async.h"
#include "hooks.h"
#include "real.h"

TS_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (!ts_state.policy)
		return REAL(epoll_ctl)(epfd, op, fd, ev);
	return ts_conn_epoll_ctl(epfd, op, fd, ev);
}

enum kind { WAIT, PWAIT, PWAIT2 };

static int wait_once(enum kind k, int epfd, struct epoll_event *evs,
                     int max, long long ms, const sigset_t *mask)
{
	if (k == PWAIT2) {
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		return REAL(epoll_pwait2)(epfd, evs, max, ms < 0 ? NULL : &ts,
		                          mask);
	}
	if (k == PWAIT)
		return REAL(epoll_pwait)(epfd, evs, max, (int)ms, mask);
	return REAL(epoll_wait)(epfd, evs, max, (int)ms);
}

/* timeout: ms, -1 forever. Waits again after internal events only, each
 * time on the kernel's readiness, until the program's timeout. */
static int wait_async(enum kind k, int epfd, struct epoll_event *evs,
                      int max, long long timeout, const sigset_t *mask)
{
	long long end = timeout < 0 ? -1 : ts_now_ms() + timeout;

	for (;;) {
		long long dl = ts_conn_epoll_prepare(epfd), t = end, ms = -1;
		if (dl >= 0 && (t < 0 || dl < t))
			t = dl;
		if (t >= 0) {
			ms = t - ts_now_ms();
			if (ms < 0)
				ms = 0;
			if (ms > INT_MAX)
				ms = INT_MAX;
		}
		int rc = wait_once(k, epfd, evs, max, ms, mask);
		if (rc <= 0 && !(rc == 0 && dl >= 0))
			return rc;
		rc = ts_conn_epoll_finish(epfd, evs, rc);
		if (rc > 0 || (end >= 0 && ts_now_ms() >= end))
			return rc;
	}
}

static long long ms_of(const struct timespec *t)
{
	if (!t)
		return -1;
	long long ms = (long long)t->tv_sec * 1000 + t->tv_nsec / 1000000;
	return ms == 0 && t->tv_nsec ? 1 : ms;
}

TS_EXPORT int epoll_wait(int epfd, struct epoll_event *evs, int max,
                         int timeout)
{
	if (!atomic_load_explicit(&ts_async_hot, memory_order_relaxed))
		return REAL(epoll_wait)(epfd, evs, max, timeout);
	return wait_async(WAIT, epfd, evs, max, timeout, NULL);
}

TS_EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max,
                          int timeout, const sigset_t *mask)
{
	if (!atomic_load_explicit(&ts_async_hot, memory_order_relaxed))
		return REAL(epoll_pwait)(epfd, evs, max, timeout, mask);
	return wait_async(PWAIT, epfd, evs, max, timeout, mask);
}

TS_EXPORT int epoll_pwait2(int epfd, struct epoll_event *evs, int max,
                           const struct timespec *t, const sigset_t *mask)
{
	if (!atomic_load_explicit(&ts_async_hot, memory_order_relaxed))
		return REAL(epoll_pwait2)(epfd, evs, max, t, mask);
	return wait_async(PWAIT2, epfd, evs, max, ms_of(t), mask);
}
