/* Readiness. The kernel sees ciphertext: an upgraded fd may hold decrypted
 * bytes inside the TLS session while its socket is not readable, so those
 * fds are reported readable without waiting. */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <string.h>
#include <sys/select.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

static short ready_of(int fd, short events)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return 0;
	short r = ts_conn_ready(c, events);
	ts_conn_put(c);
	return r;
}

/* One waiting primitive for poll and ppoll: timeout NULL waits forever,
 * zero only polls. */
struct waiter {
	const struct timespec *timeout;
	const sigset_t *mask;
	bool is_ppoll;
};

static int wait_real(struct pollfd *fds, nfds_t n, const struct waiter *w,
                     bool zero)
{
	static const struct timespec ts0;
	if (w->is_ppoll)
		return REAL(ppoll)(fds, n, zero ? &ts0 : w->timeout, w->mask);
	int ms = -1;
	if (zero)
		ms = 0;
	else if (w->timeout)
		ms = (int)(w->timeout->tv_sec * 1000 +
		           w->timeout->tv_nsec / 1000000);
	return REAL(poll)(fds, n, ms);
}

static int poll_impl(struct pollfd *fds, nfds_t n, const struct waiter *w)
{
	nfds_t i, ours = 0;

	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return wait_real(fds, n, w, false);
	for (i = 0; i < n; i++)
		if (fds[i].fd >= 0 && ready_of(fds[i].fd, fds[i].events))
			ours++;
	/* Bytes already decrypted: do not wait for the kernel. */
	int rc = wait_real(fds, n, w, ours > 0);
	if (rc < 0)
		return rc;
	rc = 0;
	for (i = 0; i < n; i++) {
		struct ts_conn *c = fds[i].fd >= 0 ? ts_conn_get(fds[i].fd)
		                                   : NULL;
		if (c) {
			fds[i].revents = ts_conn_revents(
				c, fds[i].fd, fds[i].events, fds[i].revents);
			ts_conn_put(c);
		}
		if (fds[i].revents)
			rc++;
	}
	return rc;
}

static int do_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts = {timeout / 1000, (timeout % 1000) * 1000000L};
	struct waiter w = {.timeout = timeout < 0 ? NULL : &ts};
	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return REAL(poll)(fds, n, timeout);
	return poll_impl(fds, n, &w);
}

TS_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return do_poll(fds, n, timeout);
}

TS_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout,
                         size_t fdslen)
{
	if (fdslen / sizeof *fds < n)
		__builtin_trap();
	return do_poll(fds, n, timeout);
}

TS_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t,
                    const sigset_t *mask)
{
	struct waiter w = {.timeout = t, .mask = mask, .is_ppoll = true};
	return poll_impl(fds, n, &w);
}

TS_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n,
                          const struct timespec *t, const sigset_t *mask,
                          size_t fdslen)
{
	if (fdslen / sizeof *fds < n)
		__builtin_trap();
	return ppoll(fds, n, t, mask);
}

/* select and pselect: fds with decrypted bytes waiting are readable. */
static int select_impl(int nfds, fd_set *r, fd_set *w, fd_set *e,
                       const struct timespec *t, const sigset_t *mask,
                       bool is_pselect, struct timeval *tv)
{
	fd_set ready;
	int fd, ours = 0;
	static const struct timespec ts0;
	struct timeval tv0 = {0, 0};

	if (atomic_load_explicit(&ts_fd_live, memory_order_relaxed) && r) {
		FD_ZERO(&ready);
		for (fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
			if (FD_ISSET(fd, r) && ready_of(fd, POLLIN)) {
				FD_SET(fd, &ready);
				ours++;
			}
	}
	if (!ours)
		return is_pselect ? REAL(pselect)(nfds, r, w, e, t, mask)
		                  : REAL(select)(nfds, r, w, e, tv);
	int rc = is_pselect ? REAL(pselect)(nfds, r, w, e, &ts0, mask)
	                    : REAL(select)(nfds, r, w, e, &tv0);
	if (rc < 0)
		return rc;
	for (fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
		if (FD_ISSET(fd, &ready) && !FD_ISSET(fd, r)) {
			FD_SET(fd, r);
			rc++;
		}
	return rc;
}

TS_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e,
                     struct timeval *tv)
{
	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return REAL(select)(nfds, r, w, e, tv);
	return select_impl(nfds, r, w, e, NULL, NULL, false, tv);
}

TS_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
                      const struct timespec *t, const sigset_t *mask)
{
	return select_impl(nfds, r, w, e, t, mask, true, NULL);
}
