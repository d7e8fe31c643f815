/* Issue 4: a matched connect on a non-blocking socket returns at once
 * (-1/EINPROGRESS) and the handshake is driven by the program's own
 * poll/epoll/getsockopt/connect calls.
 *
 * Ports: IO_PORT echo server; IO_DELAY_PORT echo server that waits 300 ms
 * after accept before its first byte (so a TLS handshake is surely still
 * pending); IO_SILENT_PORT accepts and never answers; IO_REFUSE_PORT a
 * server tlsshim must refuse (certificate for another name) - a closed
 * port in plain mode; IO_HS_TIMEOUT the policy's handshake-timeout (s). */
#include "iotest.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int nb_connect(const char *env, int *rv, int *err)
{
	struct sockaddr_storage ss;
	unsigned len;
	io_addr(io_port(env), &ss, &len);
	int fd = io_socket_nb();
	errno = 0;
	*rv = connect(fd, (struct sockaddr *)&ss, len);
	*err = errno;
	return fd;
}

static bool started(int rv, int err)
{
	return rv == 0 || (rv == -1 && err == EINPROGRESS);
}

static int so_error(int fd)
{
	int e = -1;
	socklen_t l = sizeof e;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) != 0)
		return -1;
	return e;
}

/* The program's own poll loop; returns revents or 0 after `tries`. */
static short poll_out(int fd, int ms, int tries)
{
	for (int i = 0; i < tries; i++) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int r = poll(&p, 1, ms);
		if (r == 1)
			return p.revents;
		if (r < 0 && errno != EINTR)
			return POLLNVAL;
	}
	return 0;
}

/* Nonblocking echo of n bytes, waiting with poll. */
static bool nb_echo(int fd, size_t total)
{
	static unsigned char b[65536];
	uint64_t off = 0;
	while (off < total) {
		size_t n = total - off < sizeof b ? total - off : sizeof b, put = 0, got = 0;
		io_fill(b, off, n);
		while (put < n || got < n) {
			struct pollfd p = {.fd = fd, .events = (short)((put < n ? POLLOUT : 0) | POLLIN)};
			if (poll(&p, 1, 10000) != 1)
				return CHECK(0, "poll timed out in echo at %llu", (unsigned long long)off);
			if (put < n && (p.revents & POLLOUT)) {
				ssize_t r = send(fd, b + put, n - put, MSG_NOSIGNAL);
				if (r > 0)
					put += (size_t)r;
				else if (errno != EAGAIN)
					return CHECK(0, "send returned %zd", r);
			}
			if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
				static unsigned char in[65536];
				ssize_t r = recv(fd, in, n - got, 0);
				if (r > 0) {
					if (!io_verify(in, off + got, (size_t)r))
						return CHECK(0, "echoed bytes differ at %llu", (unsigned long long)(off + got));
					got += (size_t)r;
				} else if (r == 0 || errno != EAGAIN) {
					return CHECK(0, "recv returned %zd", r);
				}
			}
		}
		off += n;
	}
	return true;
}

static void einprogress(void)
{
	int rv, err;
	/* the silent server never answers: a connect that waited for the
	 * handshake could only end in failure after handshake-timeout */
	int fd = nb_connect("IO_SILENT_PORT", &rv, &err);
	if (io_tls())
		CHECK(rv == -1 && err == EINPROGRESS, "non-blocking connect: -1/EINPROGRESS at once (rv %d errno %d)", rv, err);
	else
		CHECK(started(rv, err), "non-blocking connect: 0 or -1/EINPROGRESS (rv %d errno %d)", rv, err);
	char c;
	ssize_t r = recv(fd, &c, 1, 0);
	CHECK(r == -1 && errno == EAGAIN, "recv while nothing can be read: -1/EAGAIN (%zd)", r);
	close(fd);
}

static void pending_io(void)
{
	int rv, err;
	int fd = nb_connect("IO_DELAY_PORT", &rv, &err);
	CHECK(started(rv, err), "connect started (rv %d errno %d)", rv, err);
	char c;
	ssize_t r = recv(fd, &c, 1, 0);
	CHECK(r == -1 && errno == EAGAIN, "recv before the server spoke: -1/EAGAIN (%zd)", r);
	if (io_tls()) {
		/* the handshake waits for the server: nothing may be taken yet */
		r = send(fd, "x", 1, MSG_NOSIGNAL);
		CHECK(r == -1 && errno == EAGAIN, "send during the handshake: -1/EAGAIN (%zd)", r);
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		CHECK(poll(&p, 1, 0) == 0, "not writable during the handshake (revents %#x)", p.revents);
	}
	short ev = poll_out(fd, 5000, 6);
	CHECK(ev & POLLOUT, "POLLOUT once connected (revents %#x)", ev);
	CHECK(so_error(fd) == 0, "SO_ERROR 0");
	CHECK(nb_echo(fd, 100000), "echo afterwards");
	close(fd);
}

static void poll_loop(void)
{
	int rv, err;
	int fd = nb_connect(NULL, &rv, &err);
	CHECK(started(rv, err), "connect started (rv %d errno %d)", rv, err);
	short ev = poll_out(fd, 5000, 6);
	CHECK(ev == POLLOUT, "poll loop: POLLOUT (revents %#x)", ev);
	CHECK(so_error(fd) == 0, "SO_ERROR 0 after POLLOUT");
	CHECK(nb_echo(fd, io_bytes()), "non-blocking echo of %zu bytes", io_bytes());
	close(fd);
}

static int ewait(int ep, int ms, uint32_t *ev)
{
	struct epoll_event e;
	int r;
	do
		r = epoll_wait(ep, &e, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r == 1)
		*ev = e.events;
	return r;
}

/* Wait for EPOLLOUT: events without it (a socket registered before
 * connect may show EPOLLHUP first) are skipped, as programs do. */
static uint32_t wait_out(int ep, int ms, int tries)
{
	for (int i = 0; i < tries; i++) {
		uint32_t ev = 0;
		int r = ewait(ep, ms, &ev);
		if (r == 1 && (ev & (EPOLLOUT | EPOLLERR)))
			return ev;
		if (r < 0)
			return 0;
	}
	return 0;
}

enum ep_kind { LT_AFTER, ET_BEFORE, ET_AFTER, ONESHOT };

static void epoll_case(int k, const char *name)
{
	int ep = epoll_create1(0);
	int rv = 0, err = 0, fd;
	uint32_t flags = k == LT_AFTER ? 0 : k == ONESHOT ? EPOLLONESHOT : EPOLLET;
	const char *port = k == LT_AFTER ? NULL : "IO_DELAY_PORT";
	struct epoll_event e = {.events = EPOLLOUT | EPOLLIN | flags};
	if (k == ET_BEFORE) {
		struct sockaddr_storage ss;
		unsigned len;
		io_addr(io_port(port), &ss, &len);
		fd = io_socket_nb();
		e.data.fd = fd;
		CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0, "%s: registered before connect", name);
		rv = connect(fd, (struct sockaddr *)&ss, len);
		err = errno;
	} else {
		fd = nb_connect(port, &rv, &err);
		e.data.fd = fd;
		CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0, "%s: registered after connect", name);
	}
	CHECK(started(rv, err), "%s: connect started (rv %d errno %d)", name, rv, err);
	uint32_t ev = wait_out(ep, 5000, 6);
	CHECK((ev & EPOLLOUT) && !(ev & EPOLLERR), "%s: EPOLLOUT (events %#x)", name, ev);
	CHECK(so_error(fd) == 0, "%s: SO_ERROR 0", name);
	/* writable means a send is taken now */
	ssize_t r = send(fd, "ping", 4, MSG_NOSIGNAL);
	CHECK(r == 4, "%s: send right after EPOLLOUT takes the bytes (%zd)", name, r);
	e.events = EPOLLIN | flags;
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e) == 0, "%s: now waiting for EPOLLIN", name);
	char t[8] = {0};
	size_t got = 0;
	for (int i = 0; i < 10 && got < 4; i++) {
		if (ewait(ep, 5000, &ev) != 1)
			break;
		for (;;) { /* read until EAGAIN: edge-triggered style */
			ssize_t n = recv(fd, t + got, sizeof t - 1 - got, 0);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (k == ONESHOT) /* handled: re-arm, as one-shot programs do */
			epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
	}
	CHECK(got == 4 && strcmp(t, "ping") == 0, "%s: echo arrived through epoll (%zu)", name, got);
	close(ep);
	close(fd);
}

static void refused(void)
{
	int rv, err;
	int fd = nb_connect("IO_REFUSE_PORT", &rv, &err);
	if (io_tls())
		CHECK(rv == -1 && err == EINPROGRESS, "connect to a server to refuse: -1/EINPROGRESS (rv %d errno %d)", rv, err);
	else
		CHECK((rv == -1 && err == ECONNREFUSED) || started(rv, err), "connect to a closed port (rv %d errno %d)", rv, err);
	if (rv == -1 && err == ECONNREFUSED) {
		close(fd);
		return;
	}
	short ev = poll_out(fd, 5000, 6);
	CHECK(ev & (POLLOUT | POLLERR), "poll reports the outcome (revents %#x)", ev);
	int e = so_error(fd);
	CHECK(e == ECONNREFUSED, "SO_ERROR = ECONNREFUSED (%d %s)", e, strerror(e));
	e = so_error(fd);
	CHECK(e == 0, "SO_ERROR is cleared once read (%d)", e);
	ssize_t r = send(fd, "secret", 6, MSG_NOSIGNAL);
	CHECK(r == -1, "send afterwards fails: nothing leaves (%zd)", r);
	close(fd);
}

static void silent(void)
{
	if (!io_tls()) {
		printf("# silent: plain mode has no handshake to time out; not run\n");
		return;
	}
	const char *t = getenv("IO_HS_TIMEOUT");
	int hs = t ? atoi(t) : 2;
	int rv, err;
	int fd = nb_connect("IO_SILENT_PORT", &rv, &err);
	CHECK(rv == -1 && err == EINPROGRESS, "connect: -1/EINPROGRESS (rv %d errno %d)", rv, err);
	/* one long wait of the program's own: the timeout must end it */
	short ev = poll_out(fd, (hs + 10) * 1000, 1);
	CHECK(ev & (POLLOUT | POLLERR), "the program's poll returns after handshake-timeout (revents %#x)", ev);
	int e = so_error(fd);
	CHECK(e == ECONNREFUSED || e == ETIMEDOUT, "SO_ERROR = ECONNREFUSED or ETIMEDOUT (%d %s)", e, strerror(e));
	printf("# silent server: SO_ERROR after handshake-timeout is %s\n",
	       e == ECONNREFUSED ? "ECONNREFUSED" : e == ETIMEDOUT ? "ETIMEDOUT" : strerror(e));
	close(fd);
}

static void twice(void)
{
	int rv, err;
	struct sockaddr_storage ss;
	unsigned len;
	io_addr(io_port("IO_DELAY_PORT"), &ss, &len);
	int fd = nb_connect("IO_DELAY_PORT", &rv, &err);
	CHECK(started(rv, err), "first connect (rv %d errno %d)", rv, err);
	rv = connect(fd, (struct sockaddr *)&ss, len);
	err = errno;
	if (io_tls())
		CHECK(rv == -1 && err == EALREADY, "second connect during the handshake: -1/EALREADY (rv %d errno %d)", rv, err);
	else
		CHECK((rv == -1 && (err == EALREADY || err == EISCONN)) || rv == 0,
		      "second connect: EALREADY, or 0/EISCONN if done (rv %d errno %d)", rv, err);
	short ev = poll_out(fd, 5000, 6);
	CHECK(ev & POLLOUT, "POLLOUT (revents %#x)", ev);
	CHECK(so_error(fd) == 0, "SO_ERROR 0");
	rv = connect(fd, (struct sockaddr *)&ss, len);
	err = errno;
	CHECK(rv == 0 || (rv == -1 && err == EISCONN), "connect after completion: 0 or EISCONN (rv %d errno %d)", rv, err);
	rv = connect(fd, (struct sockaddr *)&ss, len);
	err = errno;
	CHECK(rv == -1 && err == EISCONN, "connect again: -1/EISCONN (rv %d errno %d)", rv, err);
	CHECK(nb_echo(fd, 100000), "echo afterwards");
	close(fd);
}

static const struct io_case cases[] = {
	IO_CASE("einprogress", einprogress), IO_CASE("pending-io", pending_io),
	IO_CASE("poll-loop", poll_loop),
	IO_CASE_WITH("epoll-lt", epoll_case, LT_AFTER, "epoll LT after connect"),
	IO_CASE_WITH("epoll-et-before", epoll_case, ET_BEFORE,
	             "epoll ET registered before connect"),
	IO_CASE_WITH("epoll-et-after", epoll_case, ET_AFTER,
	             "epoll ET registered after connect"),
	IO_CASE_WITH("epoll-oneshot", epoll_case, ONESHOT, "epoll ONESHOT"),
	IO_CASE("refused", refused), IO_CASE("silent", silent),
	IO_CASE("twice", twice),
	{0},
};

int main(int argc, char **argv)
{
	io_init(argc, argv);
	io_run(cases);
	return io_summary();
}
