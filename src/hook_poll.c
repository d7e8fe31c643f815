/* Readiness. The kernel sees ciphertext: an upgraded fd may hold decrypted
 * bytes inside the TLS session while its socket is not readable, so those
 * fds are reported readable without waiting. */
#define _GNU_SOURCE
#include <poll.h>
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

static int poll_impl(struct pollfd *fds, nfds_t n, int timeout,
                     int (*real)(struct pollfd *, nfds_t, int))
{
	nfds_t i, ours = 0;

	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return real(fds, n, timeout);
	for (i = 0; i < n; i++)
		if (fds[i].fd >= 0 && ready_of(fds[i].fd, fds[i].events))
			ours++;
	if (!ours)
		return real(fds, n, timeout);
	int rc = real(fds, n, 0);
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		short r = fds[i].fd >= 0 ? ready_of(fds[i].fd, fds[i].events)
		                         : 0;
		if (!r)
			continue;
		if (!fds[i].revents)
			rc++;
		fds[i].revents |= r;
	}
	return rc;
}

static int real_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return REAL(poll)(fds, n, timeout);
}

TS_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return poll_impl(fds, n, timeout, real_poll);
}

TS_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout,
                         size_t fdslen)
{
	if (fdslen / sizeof *fds < n)
		__builtin_trap();
	return poll_impl(fds, n, timeout, real_poll);
}

TS_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e,
                     struct timeval *tv)
{
	fd_set ready;
	int fd, ours = 0;

	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed) || !r)
		return REAL(select)(nfds, r, w, e, tv);
	FD_ZERO(&ready);
	for (fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
		if (FD_ISSET(fd, r) && ready_of(fd, POLLIN)) {
			FD_SET(fd, &ready);
			ours++;
		}
	if (!ours)
		return REAL(select)(nfds, r, w, e, tv);
	struct timeval zero = {0, 0};
	int rc = REAL(select)(nfds, r, w, e, &zero);
	if (rc < 0)
		return rc;
	for (fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
		if (FD_ISSET(fd, &ready) && !FD_ISSET(fd, r)) {
			FD_SET(fd, r);
			rc++;
		}
	return rc;
}
