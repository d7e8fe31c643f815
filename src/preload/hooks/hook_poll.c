/* Readiness. The kernel sees ciphertext: an upgraded fd may hold decrypted
 * bytes inside the TLS session while its socket is not readable, so those
 * fds are reported readable without waiting. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <string.h>
#include <sys/select.h>

#include <stdlib.h>

#include "conn.h"
#include "conn_async.h"
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

/* While asynchronous handshakes are pending (conn_async.h): the real
 * waits are on what each handshake waits for, bounded by the earliest
 * handshake deadline, and repeated while they only advanced handshakes. */
static int wait_ms(struct pollfd *fds, nfds_t n, const struct waiter *w,
                   long long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	if (w->is_ppoll)
		return REAL(ppoll)(fds, n, ms < 0 ? NULL : &ts, w->mask);
	return REAL(poll)(fds, n, (int)ms);
}

static int poll_async(struct pollfd *fds, nfds_t n, const struct waiter *w)
{
	struct ts_poll_save small[64], *saved = small;
	long long end = -1;
	int rc;

	if (n > 64 && !(saved = malloc(n * sizeof *saved))) {
		errno = ENOMEM;
		return -1;
	}
	if (w->timeout)
		end = ts_now_ms() + w->timeout->tv_sec * 1000 +
		      (w->timeout->tv_nsec + 999999) / 1000000;
	for (;;) {
		long long dl, t = end, ms = -1;
		bool now;
		ts_conn_poll_prepare(fds, n, saved, &dl, &now);
		if (dl >= 0 && (t < 0 || dl < t))
			t = dl;
		if (now)
			t = 0;
		if (t >= 0) {
			ms = t ? t - ts_now_ms() : 0;
			if (ms < 0)
				ms = 0;
			if (ms > INT_MAX)
				ms = INT_MAX;
		}
		rc = ts_conn_poll_finish(fds, n, saved, wait_ms(fds, n, w, ms));
		if (rc != 0 || (end >= 0 && ts_now_ms() >= end))
			break;
	}
	if (saved != small)
		free(saved);
	return rc;
}

static int poll_impl(struct pollfd *fds, nfds_t n, const struct waiter *w)
{
	nfds_t i, ours = 0;

	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return wait_real(fds, n, w, false);
	if (atomic_load_explicit(&ts_async_hot, memory_order_relaxed))
		return poll_async(fds, n, w);
	long long end = -1;
	if (w->timeout)
		end = ts_now_ms() + w->timeout->tv_sec * 1000 +
		      (w->timeout->tv_nsec + 999999) / 1000000;
	for (;;) {
		ours = 0;
		for (i = 0; i < n; i++)
			if (fds[i].fd >= 0 &&
			    ready_of(fds[i].fd, fds[i].events))
				ours++;
		/* Bytes already decrypted: do not wait for the kernel. */
		long long left = end < 0 ? -1 : end - ts_now_ms();
		if (left < 0 && end >= 0)
			left = 0;
		int rc = ours || left == 0 ? wait_ms(fds, n, w, 0)
		                           : wait_ms(fds, n, w, left);
		if (rc < 0)
			return rc;
		rc = 0;
		for (i = 0; i < n; i++) {
			struct ts_conn *c = fds[i].fd >= 0
			                            ? ts_conn_get(fds[i].fd)
			                            : NULL;
			if (c) {
				fds[i].revents = ts_conn_revents(
					c, fds[i].fd, fds[i].events,
					fds[i].revents);
				ts_conn_put(c);
			}
			if (fds[i].revents)
				rc++;
		}
		/* Only TLS's own messages arrived (a ticket): the program's
		 * wait is not over. */
		if (rc || ours || left == 0)
			return rc;
	}
}

static int do_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts = {timeout / 1000, (timeout % 1000) * 1000000L};
	struct waiter w = {.timeout = timeout < 0 ? NULL : &ts};
	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return REAL(poll)(fds, n, timeout);
	return poll_impl(fds, n, &w);
}

TS_HOOK(int, poll, (struct pollfd *fds, nfds_t n, int timeout),
        (fds, n, timeout))
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

/* select and pselect while asynchronous handshakes are pending: the same
 * translation as poll's, through ppoll. */
static int select_async(int nfds, fd_set *r, fd_set *w, fd_set *e,
                        const struct timespec *t, const sigset_t *mask,
                        bool is_pselect, struct timeval *tv)
{
	struct pollfd pf[FD_SETSIZE];
	struct timespec ts;
	nfds_t k = 0;
	int fd, count = 0;

	if (nfds < 0) {
		errno = EINVAL;
		return -1;
	}
	for (fd = 0; fd < nfds && fd < FD_SETSIZE; fd++) {
		short ev = (r && FD_ISSET(fd, r) ? POLLIN : 0) |
		           (w && FD_ISSET(fd, w) ? POLLOUT : 0) |
		           (e && FD_ISSET(fd, e) ? POLLPRI : 0);
		if (ev)
			pf[k++] = (struct pollfd){.fd = fd, .events = ev};
	}
	if (!is_pselect && tv) {
		ts.tv_sec = tv->tv_sec;
		ts.tv_nsec = tv->tv_usec * 1000L;
		t = &ts;
	}
	struct waiter wt = {.timeout = t, .mask = is_pselect ? mask : NULL,
	                    .is_ppoll = true};
	int rc = poll_async(pf, k, &wt);
	if (rc < 0)
		return rc;
	for (nfds_t i = 0; i < k; i++) {
		if (pf[i].revents & POLLNVAL) {
			errno = EBADF;
			return -1;
		}
	}
	if (r)
		FD_ZERO(r);
	if (w)
		FD_ZERO(w);
	if (e)
		FD_ZERO(e);
	for (nfds_t i = 0; i < k; i++) {
		short ev = pf[i].events, rev = pf[i].revents;
		if ((ev & POLLIN) && (rev & (POLLIN | POLLHUP | POLLERR))) {
			FD_SET(pf[i].fd, r);
			count++;
		}
		if ((ev & POLLOUT) && (rev & (POLLOUT | POLLERR))) {
			FD_SET(pf[i].fd, w);
			count++;
		}
		if ((ev & POLLPRI) && (rev & POLLPRI)) {
			FD_SET(pf[i].fd, e);
			count++;
		}
	}
	return count;
}

/* Readable by the kernel only through TLS's own messages: not readable. */
static int select_filter(int nfds, fd_set *r, int rc)
{
	if (rc <= 0 || !r ||
	    !atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return rc;
	for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++) {
		if (!FD_ISSET(fd, r))
			continue;
		struct ts_conn *c = ts_conn_get(fd);
		if (!c)
			continue;
		if (!ts_conn_data_arrived(c, fd)) {
			FD_CLR(fd, r);
			rc--;
		}
		ts_conn_put(c);
	}
	return rc;
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

	if (atomic_load_explicit(&ts_async_hot, memory_order_relaxed))
		return select_async(nfds, r, w, e, t, mask, is_pselect, tv);

	if (atomic_load_explicit(&ts_fd_live, memory_order_relaxed) && r) {
		FD_ZERO(&ready);
		for (fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
			if (FD_ISSET(fd, r) && ready_of(fd, POLLIN)) {
				FD_SET(fd, &ready);
				ours++;
			}
	}
	if (!ours) {
		/* A wait that only TLS's own messages ended (a ticket) goes
		 * on for the rest of the program's timeout. */
		fd_set r0, w0, e0;
		long long end = -1;
		if (t || tv)
			end = ts_now_ms() +
			      (t ? t->tv_sec * 1000 + (t->tv_nsec + 999999) / 1000000
			         : tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000);
		if (r)
			r0 = *r;
		if (w)
			w0 = *w;
		if (e)
			e0 = *e;
		struct timespec ts;
		struct timeval tvl;
		for (;;) {
			int rc = select_filter(
				nfds, r,
				is_pselect ? REAL(pselect)(nfds, r, w, e, t, mask)
				           : REAL(select)(nfds, r, w, e, tv));
			if (rc != 0)
				return rc;
			if (end >= 0) {
				long long left = end - ts_now_ms();
				if (left <= 0)
					return 0;
				ts.tv_sec = left / 1000;
				ts.tv_nsec = (left % 1000) * 1000000L;
				tvl.tv_sec = left / 1000;
				tvl.tv_usec = (left % 1000) * 1000;
				t = t ? &ts : NULL;
				tv = tv ? &tvl : NULL;
			}
			if (r)
				*r = r0;
			if (w)
				*w = w0;
			if (e)
				*e = e0;
		}
	}
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


TS_HOOK(int, select,
        (int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv),
        (nfds, r, w, e, tv))
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
