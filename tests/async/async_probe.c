/* async_probe MODE PORT: a non-blocking client of the kind event loops are
 * made of, run under the preload against a delaying TLS echo server.
 * Each mode checks one promise of the asynchronous connect and exits 0,
 * or prints what broke and exits 1. Modes:
 *   poll select epoll-lt epoll-et-before epoll-et-after epoll-oneshot
 *     connect returns EINPROGRESS; the wait wakes once, with the fd
 *     writable only after verification; SO_ERROR 0; bytes echo back
 *   eagain     send/recv say EAGAIN and SO_ERROR 0 while handshaking
 *   twice      connect again: EALREADY, then as the kernel (compared with
 *              a plain socket: 0 then EISCONN)
 *   refused    (untrusted server) POLLOUT|POLLERR, SO_ERROR ECONNREFUSED
 *              once, then 0; nothing can be sent
 *   refused-epoll  the same seen through edge-triggered epoll
 *   timeout-poll timeout-epoll  (silent server, short handshake-timeout)
 *              an infinite wait wakes at the deadline with the error */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static int port;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("async_probe: FAIL: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static struct sockaddr_in addr_of(int p)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int sock_nb(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	return fd;
}

static int do_connect(int fd, int p)
{
	struct sockaddr_in a = addr_of(p);
	return connect(fd, (struct sockaddr *)&a, sizeof a);
}

static void connect_nb(int fd)
{
	if (do_connect(fd, port) == 0 || errno != EINPROGRESS)
		die("connect: want -1/EINPROGRESS, got %s", strerror(errno));
}

static int so_error(int fd)
{
	int e = -1;
	socklen_t l = sizeof e;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
		die("getsockopt: %s", strerror(errno));
	return e;
}

static short poll1(int fd, short ev, int ms)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int r = poll(&p, 1, ms);
	if (r < 0)
		die("poll: %s", strerror(errno));
	return r ? p.revents : 0;
}

/* The payload moves both ways once connected. */
static void echo(int fd)
{
	static const char msg[] = "ping through the async handshake\n";
	char buf[sizeof msg];
	size_t got = 0;
	if (so_error(fd) != 0)
		die("SO_ERROR not 0 once connected");
	if (!(poll1(fd, POLLOUT, 10000) & POLLOUT))
		die("not writable after connect");
	if (send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL) != (ssize_t)sizeof msg - 1)
		die("send: %s", strerror(errno));
	while (got < sizeof msg - 1) {
		if (!(poll1(fd, POLLIN, 10000) & POLLIN))
			die("no echo within 10 s");
		ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			die("recv: %zd %s", n, strerror(errno));
		got += (size_t)n;
	}
	if (memcmp(buf, msg, got))
		die("echo differs");
}

static void mode_poll(void)
{
	int fd = sock_nb(), wakeups = 0;
	connect_nb(fd);
	short r;
	do {
		r = poll1(fd, POLLOUT, 10000);
		wakeups++;
		if (!r)
			die("poll timed out");
	} while (!(r & POLLOUT));
	if (r != POLLOUT || wakeups != 1)
		die("poll: revents %#x after %d wakeups", r, wakeups);
	echo(fd);
}

static void mode_select(void)
{
	int fd = sock_nb();
	connect_nb(fd);
	fd_set w;
	FD_ZERO(&w);
	FD_SET(fd, &w);
	struct timeval tv = {10, 0};
	int r = select(fd + 1, NULL, &w, NULL, &tv);
	if (r != 1 || !FD_ISSET(fd, &w))
		die("select: %d", r);
	echo(fd);
}

/* One epoll_wait of at most ms; the events for fd (0 if none). */
static uint32_t ewait(int ep, int fd, int ms)
{
	struct epoll_event ev[4];
	int n = epoll_wait(ep, ev, 4, ms);
	uint32_t got = 0;
	if (n < 0)
		die("epoll_wait: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		if (ev[i].data.fd != fd)
			die("event for unknown data %d", ev[i].data.fd);
		got |= ev[i].events;
	}
	return got;
}

static void eadd(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void mode_epoll(uint32_t events, bool before)
{
	int fd = sock_nb(), ep = epoll_create1(0);
	if (before)
		eadd(ep, fd, events);
	connect_nb(fd);
	if (!before)
		eadd(ep, fd, events);
	uint32_t r = ewait(ep, fd, 10000);
	if (!(r & EPOLLOUT) || (r & (EPOLLERR | EPOLLHUP)))
		die("epoll: events %#x", r);
	if (events & (EPOLLET | EPOLLONESHOT)) {
		/* Edge-triggered: no second event; one-shot: disarmed. (With
		 * EPOLLIN, a TLS 1.3 ticket arriving is a legitimate edge.) */
		r = events & EPOLLIN ? 0 : ewait(ep, fd, 200);
		if (r & EPOLLOUT)
			die("epoll: a second EPOLLOUT %#x", r);
	} else if (!(ewait(ep, fd, 0) & EPOLLOUT)) {
		die("epoll: level-triggered EPOLLOUT not repeated");
	}
	echo(fd);
}

static void mode_eagain(void)
{
	int fd = sock_nb();
	char c = 'x';
	connect_nb(fd);
	if (send(fd, &c, 1, MSG_NOSIGNAL) != -1 || errno != EAGAIN)
		die("send while handshaking: want EAGAIN, got %s",
		    strerror(errno));
	if (write(fd, &c, 1) != -1 || errno != EAGAIN)
		die("write while handshaking: want EAGAIN");
	if (recv(fd, &c, 1, 0) != -1 || errno != EAGAIN)
		die("recv while handshaking: want EAGAIN, got %s",
		    strerror(errno));
	if (so_error(fd) != 0)
		die("SO_ERROR while handshaking not 0");
	if (poll1(fd, POLLOUT, 0) & POLLOUT)
		die("writable while the server still delays its handshake");
	if (!(poll1(fd, POLLOUT, 10000) & POLLOUT))
		die("never connected");
	echo(fd);
}

/* connect; with pending, connect again at once; wait; connect twice more.
 * res/err: the two answers after the wait. */
static int twice(int fd, int p, bool pending, int res[2], int err[2])
{
	int e0 = 0;
	if (do_connect(fd, p) == 0 || errno != EINPROGRESS)
		die("first connect: %s", strerror(errno));
	if (pending && do_connect(fd, p) != 0)
		e0 = errno;
	if (!(poll1(fd, POLLOUT, 10000) & POLLOUT))
		die("never connected");
	for (int i = 0; i < 2; i++) {
		res[i] = do_connect(fd, p);
		err[i] = res[i] ? errno : 0;
	}
	return e0;
}

static void mode_twice(void)
{
	int r[2], e[2], pr[2], pe[2];
	int e0 = twice(sock_nb(), port, true, r, e);
	if (e0 != EALREADY)
		die("connect while handshaking: want EALREADY, got %s",
		    strerror(e0));
	/* The kernel's own answers once connected, on a plain socket. */
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = addr_of(0);
	socklen_t al = sizeof a;
	if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		die("listener: %s", strerror(errno));
	twice(sock_nb(), ntohs(a.sin_port), false, pr, pe);
	for (int i = 0; i < 2; i++)
		if (r[i] != pr[i] || e[i] != pe[i])
			die("connect #%d after the handshake: %d/%s, kernel "
			    "says %d/%s", i + 1, r[i], strerror(e[i]), pr[i],
			    strerror(pe[i]));
	printf("connect again: EALREADY, then %s, then %s\n",
	       r[0] ? strerror(e[0]) : "0", r[1] ? strerror(e[1]) : "0");
	/* The connection still works. */
	int fd = sock_nb();
	connect_nb(fd);
	if (!(poll1(fd, POLLOUT, 10000) & POLLOUT))
		die("never connected");
	echo(fd);
}

static void after_failure(int fd)
{
	int e = so_error(fd);
	if (e != ECONNREFUSED)
		die("SO_ERROR: want ECONNREFUSED, got %d (%s)", e,
		    strerror(e));
	if (so_error(fd) != 0)
		die("SO_ERROR not cleared after it was read");
	if (send(fd, "plain", 5, MSG_NOSIGNAL) >= 0)
		die("send succeeded on a refused connection");
	printf("SO_ERROR: %s\n", strerror(e));
}

static void mode_refused_poll(int ms)
{
	int fd = sock_nb();
	connect_nb(fd);
	short r = poll1(fd, POLLOUT, ms);
	if (!(r & POLLOUT) || !(r & POLLERR))
		die("poll: want POLLOUT|POLLERR, got %#x", r);
	after_failure(fd);
}

static void mode_refused_epoll(int ms)
{
	int fd = sock_nb(), ep = epoll_create1(0);
	connect_nb(fd);
	eadd(ep, fd, EPOLLIN | EPOLLOUT | EPOLLET);
	uint32_t r = ewait(ep, fd, ms);
	if (!(r & EPOLLOUT) || !(r & EPOLLERR))
		die("epoll: want EPOLLOUT|EPOLLERR, got %#x", r);
	after_failure(fd);
}

int main(int argc, char **argv)
{
	if (argc != 3)
		die("usage: async_probe MODE PORT");
	const char *m = argv[1];
	port = atoi(argv[2]);
	if (!strcmp(m, "poll"))
		mode_poll();
	else if (!strcmp(m, "select"))
		mode_select();
	else if (!strcmp(m, "epoll-lt"))
		mode_epoll(EPOLLOUT, false);
	else if (!strcmp(m, "epoll-et-before"))
		mode_epoll(EPOLLIN | EPOLLOUT | EPOLLET, true);
	else if (!strcmp(m, "epoll-et-after"))
		mode_epoll(EPOLLOUT | EPOLLET, false);
	else if (!strcmp(m, "epoll-oneshot"))
		mode_epoll(EPOLLOUT | EPOLLONESHOT, false);
	else if (!strcmp(m, "epoll-oneshot-before"))
		mode_epoll(EPOLLOUT | EPOLLONESHOT, true);
	else if (!strcmp(m, "eagain"))
		mode_eagain();
	else if (!strcmp(m, "twice"))
		mode_twice();
	else if (!strcmp(m, "refused"))
		mode_refused_poll(10000);
	else if (!strcmp(m, "refused-epoll"))
		mode_refused_epoll(10000);
	else if (!strcmp(m, "timeout-poll"))
		mode_refused_poll(-1);
	else if (!strcmp(m, "timeout-epoll"))
		mode_refused_epoll(-1);
	else
		die("unknown mode %s", m);
	printf("ok %s\n", m);
	return 0;
}
