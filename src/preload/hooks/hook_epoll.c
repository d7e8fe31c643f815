/* epoll: registrations are recorded (src/preload/epreg.c) once a policy is loaded;
 * waits translate readiness only while an asynchronous handshake is
 * pending or a failure is unreported (see conn_async.h). */
#define _GNU_SOURCE
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <time.h>

#include "conn_async.h"
#include "epreg.h"
#include "hooks.h"
#include "real.h"

TS_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	/* An event loop registers a socket before it connects it: whether
	 * registrations are tracked depends on the policy, so load it. */
	ts_state_init();
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
		if (rc != 0 || (end >= 0 && ts_now_ms() >= end))
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

/* Data readiness the kernel cannot see: decrypted bytes (or EOF) waiting
 * inside the session of a registered upgraded fd. */
#define SYNTH_MAX 64

struct synth_ctx {
	struct ts_epreg_ent ents[SYNTH_MAX];
	size_t n;
};

static void collect_ours(const struct ts_epreg_ent *e, void *ctx)
{
	struct synth_ctx *sc = ctx;
	/* Lock-free peek only: the registry is locked here. */
	if (sc->n < SYNTH_MAX && ts_fd_peek(e->fd) &&
	    (e->events & (EPOLLIN | EPOLLRDHUP)))
		sc->ents[sc->n++] = *e;
}

/* The events to synthesize for e now (0: none; conn_poll.c says which). */
static uint32_t data_events(const struct ts_epreg_ent *e, bool claim)
{
	struct ts_conn *c = ts_conn_get(e->fd);
	if (!c)
		return 0;
	uint32_t out = ts_conn_epoll_data(c, e->events, claim);
	ts_conn_put(c);
	return out;
}

static size_t scan(int epfd, struct synth_ctx *sc)
{
	sc->n = 0;
	if (atomic_load_explicit(&ts_fd_live, memory_order_relaxed) &&
	    ts_epreg_count())
		ts_epreg_foreach(epfd, collect_ours, sc);
	size_t ready = 0;
	for (size_t i = 0; i < sc->n; i++)
		if (data_events(&sc->ents[i], false))
			ready++;
	return ready;
}

/* Merge synthesized events into the n the kernel returned. */
static int merge(int epfd, struct synth_ctx *sc, struct epoll_event *evs,
                 int max, int n)
{
	for (size_t i = 0; i < sc->n && n < max; i++) {
		const struct ts_epreg_ent *e = &sc->ents[i];
		int j;
		for (j = 0; j < n && evs[j].data.u64 != e->data; j++)
			;
		if (j < n && (e->events & EPOLLONESHOT)) {
			/* The kernel fired it and disarmed it. */
			ts_epreg_mod(epfd, e->fd, EPOLLONESHOT, e->data);
			continue;
		}
		if (j < n && (evs[j].events & EPOLLIN))
			continue; /* the kernel already said so */
		uint32_t add = data_events(e, true);
		if (!add)
			continue;
		if (j == n) {
			evs[n].events = 0;
			evs[n].data.u64 = e->data;
			n++;
		}
		evs[j].events |= add;
		if (e->events & EPOLLONESHOT) {
			/* Fired: disarmed until the program re-arms it. */
			struct epoll_event off = {.events = EPOLLONESHOT,
			                          .data.u64 = e->data};
			REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, e->fd, &off);
			ts_epreg_mod(epfd, e->fd, EPOLLONESHOT, e->data);
		}
	}
	return n;
}

/* Drop EPOLLIN the kernel gave for bytes that were only TLS's own
 * messages (a TLS 1.3 ticket): the program would read EAGAIN, or block. */
static int drop_tls_only(int epfd, struct synth_ctx *sc,
                         struct epoll_event *evs, int n)
{
	for (size_t i = 0; i < sc->n; i++) {
		const struct ts_epreg_ent *e = &sc->ents[i];
		int j;
		for (j = 0; j < n && evs[j].data.u64 != e->data; j++)
			;
		if (j == n || !(evs[j].events & EPOLLIN))
			continue;
		struct ts_conn *c = ts_conn_get(e->fd);
		if (!c)
			continue;
		bool data = ts_conn_data_arrived(c, e->fd);
		ts_conn_put(c);
		if (data)
			continue;
		evs[j].events &= ~(uint32_t)EPOLLIN;
		if (evs[j].events)
			continue;
		if (e->events & EPOLLONESHOT) {
			/* The kernel disarmed it for nothing: arm it again. */
			struct epoll_event on = {.events = e->events,
			                         .data.u64 = e->data};
			REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, e->fd, &on);
			ts_epreg_mod(epfd, e->fd, e->events, e->data);
		}
		evs[j] = evs[--n];
	}
	return n;
}

static int wait_data(enum kind k, int epfd, struct epoll_event *evs,
                     int max, long long timeout, const sigset_t *mask)
{
	struct synth_ctx sc;
	long long end = timeout < 0 ? -1 : ts_now_ms() + timeout;

	if (max <= 0)
		return wait_once(k, epfd, evs, max, timeout, mask);
	for (;;) {
		bool hot = atomic_load_explicit(&ts_async_hot,
		                                memory_order_relaxed);
		size_t ready = scan(epfd, &sc);
		long long left = end < 0 ? -1 : end - ts_now_ms();
		if (end >= 0 && left < 0)
			left = 0;
		if (ready)
			left = 0;
		int n = hot ? wait_async(k, epfd, evs, max, left, mask)
		            : wait_once(k, epfd, evs, max, left, mask);
		if (n < 0 || !sc.n)
			return n;
		n = drop_tls_only(epfd, &sc, evs, n);
		n = merge(epfd, &sc, evs, max, n);
		/* Only TLS's own messages woke the wait: it goes on. */
		if (n || ready || left == 0)
			return n;
	}
}

static bool plain_wait(void)
{
	return !atomic_load_explicit(&ts_async_hot, memory_order_relaxed) &&
	       !atomic_load_explicit(&ts_fd_live, memory_order_relaxed);
}

TS_EXPORT int epoll_wait(int epfd, struct epoll_event *evs, int max,
                         int timeout)
{
	if (plain_wait())
		return REAL(epoll_wait)(epfd, evs, max, timeout);
	return wait_data(WAIT, epfd, evs, max, timeout, NULL);
}

TS_EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max,
                          int timeout, const sigset_t *mask)
{
	if (plain_wait())
		return REAL(epoll_pwait)(epfd, evs, max, timeout, mask);
	return wait_data(PWAIT, epfd, evs, max, timeout, mask);
}

TS_EXPORT int epoll_pwait2(int epfd, struct epoll_event *evs, int max,
                           const struct timespec *t, const sigset_t *mask)
{
	if (plain_wait())
		return REAL(epoll_pwait2)(epfd, evs, max, t, mask);
	return wait_data(PWAIT2, epfd, evs, max, ms_of(t), mask);
}
