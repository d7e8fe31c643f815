/* leak NAME: one way a program can put bytes on a socket, tried on a
 * connection its policy upgrades (tests/13-leaks.bats). The program side
 * checks what the program sees: each path is carried (the echo server
 * behind the tap returns the bytes: they went through TLS) or refused
 * (an error, and the stream is intact afterwards). The verdict on the
 * wire is the bats file's: the tap's record must never hold MARK.
 *
 * Environment: LEAK_PORT (the tap on 127.0.0.1, in front of a TLS echo
 * server), LEAK_PORT6 (the same on ::1), LEAK_NAME (a host name rule's
 * name, for the name tests). Exit 0 when the program side is as it must
 * be; otherwise a line on stderr says what was wrong. Plain libc only:
 * this stands for any program. */
#define _GNU_SOURCE
#include <aio.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <mqueue.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

#define MARK "TLSSHIM-LEAK-MARKER"
#define MARKLEN (sizeof MARK - 1)

extern char **environ;
/* glibc exports these; programs can call them. */
extern ssize_t __write(int, const void *, size_t);
extern ssize_t __send(int, const void *, size_t, int);
extern int __connect(int, const struct sockaddr *, socklen_t);
extern int __dprintf_chk(int, int, const char *, ...);
extern pid_t _Fork(void);

static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("leak: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static int port(const char *var)
{
	const char *s = getenv(var);
	return s ? atoi(s) : 0;
}

static socklen_t tap4(struct sockaddr_in *in)
{
	memset(in, 0, sizeof *in);
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port("LEAK_PORT"));
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof *in;
}

static int tap_connect(void)
{
	struct sockaddr_in in;
	socklen_t len = tap4(&in);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (void *)&in, len) < 0) {
		fail("connect to the tap: %s", strerror(errno));
		return -1;
	}
	return fd;
}

/* Read exactly n bytes (10 s at most). */
static bool read_n(int fd, char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 10000) <= 0)
			return false;
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

/* The echo of what was sent: proof it went through the TLS session. */
static int expect_echo(int fd, const char *want, size_t n, const char *what)
{
	char buf[4096];
	if (n > sizeof buf)
		return fail("%s: echo too long", what);
	if (!read_n(fd, buf, n))
		return fail("%s: no echo (%s)", what, strerror(errno));
	if (memcmp(buf, want, n))
		return fail("%s: wrong echo", what);
	return 0;
}

/* After a refused path: the stream is intact, the session goes on. */
static int still_works(int fd, const char *what)
{
	static const char ok[] = "still-works";
	if (write(fd, ok, sizeof ok - 1) != (ssize_t)(sizeof ok - 1))
		return fail("%s: write after: %s", what, strerror(errno));
	return expect_echo(fd, ok, sizeof ok - 1, what);
}

static int refused(int fd, long r, int want_errno, const char *what)
{
	if (r >= 0)
		return fail("%s: carried %ld bytes past the session", what, r);
	if (want_errno && errno != want_errno)
		return fail("%s: errno %s, want %s", what, strerror(errno),
		            strerror(want_errno));
	return still_works(fd, what);
}

/* ---- addresses and sockets that must not escape matching ---- */

static int connect_echo(int fd, const void *sa, socklen_t len,
                        const char *what)
{
	if (connect(fd, sa, len) < 0)
		return fail("%s: connect: %s", what, strerror(errno));
	if (write(fd, MARK, MARKLEN) != (ssize_t)MARKLEN)
		return fail("%s: write: %s", what, strerror(errno));
	return expect_echo(fd, MARK, MARKLEN, what);
}

static int t_v6len24(void)
{
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6,
	                           .sin6_port = htons((uint16_t)port("LEAK_PORT6")),
	                           .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	/* RFC 2133's sockaddr_in6: no scope id; the kernel takes it. */
	return connect_echo(fd, &in6, 24, "[::1] with a 24-byte address");
}

static int t_v6len24_mapped(void)
{
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6,
	                           .sin6_port = htons((uint16_t)port("LEAK_PORT"))};
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	return connect_echo(fd, &in6, 24, "v4-mapped, 24 bytes");
}

/* The unspecified address: Linux connects to loopback (or the socket's
 * own bound address), so the rule for 127.0.0.1 is the one that holds. */
static int t_any4(void)
{
	struct sockaddr_in in = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port("LEAK_PORT"))};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	return connect_echo(fd, &in, sizeof in, "0.0.0.0");
}

static int t_any4_mapped(void)
{
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6,
	                           .sin6_port = htons((uint16_t)port("LEAK_PORT"))};
	inet_pton(AF_INET6, "::ffff:0.0.0.0", &in6.sin6_addr);
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	return connect_echo(fd, &in6, sizeof in6, "::ffff:0.0.0.0");
}

static int t_mptcp(void)
{
	struct sockaddr_in in;
	socklen_t len = tap4(&in);
	int fd = socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP);
	if (fd < 0)
		return fail("MPTCP socket: %s (net.mptcp.enabled?)",
		            strerror(errno));
	return connect_echo(fd, &in, len, "MPTCP");
}

static int fastopen_echo(int how, bool v6short)
{
	struct sockaddr_in in;
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6,
	                           .sin6_port = htons((uint16_t)port("LEAK_PORT"))};
	void *sa = &in;
	socklen_t len = tap4(&in);
	int fd = socket(v6short ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	struct iovec v = {MARK, MARKLEN};
	struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
	struct mmsghdr mm = {0};
	long r;

	if (v6short) {
		inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
		sa = &in6;
		len = 24;
	}
	m.msg_name = sa;
	m.msg_namelen = len;
	mm.msg_hdr = m;
	if (how == 0)
		r = sendto(fd, MARK, MARKLEN, MSG_FASTOPEN, sa, len);
	else if (how == 1)
		r = sendmsg(fd, &m, MSG_FASTOPEN);
	else
		r = sendmmsg(fd, &mm, 1, MSG_FASTOPEN) == 1 ? (long)mm.msg_len
		                                            : -1;
	if (r != (long)MARKLEN)
		return fail("fast open (%d): %ld, %s", how, r, strerror(errno));
	return expect_echo(fd, MARK, MARKLEN, "fast open");
}

/* TCP_FASTOPEN_CONNECT: connect() returns at once, the first write
 * rides on the SYN; the first write must be our ClientHello. */
static int t_fastopen_connect(void)
{
	struct sockaddr_in in;
	socklen_t len = tap4(&in);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one,
	               sizeof one) < 0)
		return fail("TCP_FASTOPEN_CONNECT: %s", strerror(errno));
	return connect_echo(fd, &in, len, "TCP_FASTOPEN_CONNECT");
}

static int t_sendto_fastopen(void) { return fastopen_echo(0, false); }
static int t_sendmsg_fastopen(void) { return fastopen_echo(1, false); }
static int t_sendmmsg_fastopen(void) { return fastopen_echo(2, false); }
static int t_sendmsg_fastopen_v6len24(void) { return fastopen_echo(1, true); }

/* A host-name rule: the name the program resolved, however it connects. */
static int name_connect(int family, int flags)
{
	struct addrinfo hints = {.ai_family = family,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = flags}, *res;
	char p[16];
	snprintf(p, sizeof p, "%d", port("LEAK_PORT"));
	int rc = getaddrinfo(getenv("LEAK_NAME"), p, &hints, &res);
	if (rc)
		return fail("getaddrinfo: %s", gai_strerror(rc));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char ip[64];
		void *a = ai->ai_family == AF_INET
		                  ? (void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
		                  : (void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		inet_ntop(ai->ai_family, a, ip, sizeof ip);
		/* The tap listens on 127.0.0.1 only. */
		if (strcmp(ip, "127.0.0.1") && strcmp(ip, "::ffff:127.0.0.1"))
			continue;
		int fd = socket(ai->ai_family, SOCK_STREAM, 0);
		int r = connect_echo(fd, ai->ai_addr, ai->ai_addrlen, ip);
		freeaddrinfo(res);
		return r;
	}
	freeaddrinfo(res);
	return fail("no 127.0.0.1 address for %s", getenv("LEAK_NAME"));
}

/* What a dual-stack JVM does: an AF_INET6 socket, v4-mapped addresses. */
static int t_name_mapped(void)
{
	return name_connect(AF_INET6, AI_V4MAPPED | AI_ALL);
}

static int t_name_v4(void)
{
	return name_connect(AF_INET, 0);
}

/* A name rule's name, then more other lookups than the old ring held. */
static int t_name_after_many(void)
{
	char name[64];
	struct addrinfo hints = {.ai_family = AF_INET}, *res;
	int n = port("LEAK_MANY");
	struct addrinfo *keep;
	char p[16];

	snprintf(p, sizeof p, "%d", port("LEAK_PORT"));
	if (getaddrinfo(getenv("LEAK_NAME"), p, &hints, &keep))
		return fail("getaddrinfo %s", getenv("LEAK_NAME"));
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "h%d.leak.test", i);
		if (getaddrinfo(name, NULL, &hints, &res))
			return fail("getaddrinfo %s: not in the hosts file", name);
		freeaddrinfo(res);
	}
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int r = connect_echo(fd, keep->ai_addr, keep->ai_addrlen,
	                     "the rule's name after many lookups");
	freeaddrinfo(keep);
	return r;
}

/* ---- races ---- */

struct race {
	int fd;
	atomic_bool stop;
	long sent, errs;
};

static void *spin_send(void *arg)
{
	struct race *r = arg;
	while (!atomic_load(&r->stop)) {
		ssize_t n = send(r->fd, MARK, MARKLEN, MSG_NOSIGNAL);
		if (n == (ssize_t)MARKLEN) {
			r->sent++;
			break;
		}
		r->errs++;
	}
	return NULL;
}

/* One thread connects (blocking), another sends on the fd meanwhile: no
 * byte may reach the server ahead of or outside the session. */
static int t_race_connect(void)
{
	int rounds = port("LEAK_ROUNDS") ? port("LEAK_ROUNDS") : 50;
	for (int i = 0; i < rounds; i++) {
		struct sockaddr_in in;
		socklen_t len = tap4(&in);
		struct race r = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
		pthread_t t;
		pthread_create(&t, NULL, spin_send, &r);
		int c = connect(r.fd, (void *)&in, len);
		if (c < 0) {
			atomic_store(&r.stop, true);
			pthread_join(t, NULL);
			return fail("connect: %s", strerror(errno));
		}
		/* The sender's bytes went after the handshake, in TLS. */
		struct timespec end;
		clock_gettime(CLOCK_MONOTONIC, &end);
		end.tv_sec += 10;
		for (;;) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (r.sent || now.tv_sec > end.tv_sec)
				break;
			sched_yield();
		}
		atomic_store(&r.stop, true);
		pthread_join(t, NULL);
		if (!r.sent)
			return fail("round %d: the sender never got through", i);
		if (expect_echo(r.fd, MARK, MARKLEN, "race connect"))
			return 1;
		close(r.fd);
	}
	return 0;
}

static void *spin_send_all(void *arg)
{
	struct race *r = arg;
	while (!atomic_load(&r->stop)) {
		if (send(r->fd, MARK, MARKLEN, MSG_NOSIGNAL) < 0) {
			r->errs++;
			if (errno == EBADF)
				break;
		} else {
			r->sent++;
		}
	}
	return NULL;
}

/* One thread sends, another closes the fd: no send may slip out raw
 * between the end of the session and the kernel's close. */
static int t_race_close(void)
{
	int rounds = port("LEAK_ROUNDS") ? port("LEAK_ROUNDS") : 30;
	for (int i = 0; i < rounds; i++) {
		struct race r = {.fd = tap_connect()};
		pthread_t t;
		if (r.fd < 0)
			return 1;
		pthread_create(&t, NULL, spin_send_all, &r);
		usleep(1000 + 200 * (useconds_t)(i % 10));
		close(r.fd);
		usleep(2000);
		atomic_store(&r.stop, true);
		pthread_join(t, NULL);
	}
	return 0;
}

/* ---- fd changes that fail must change nothing ---- */

static int t_dup3_einval(void)
{
	int fd = tap_connect(), other = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 1;
	errno = 0;
	if (dup3(other, fd, 0x4000) != -1 || errno != EINVAL)
		return fail("dup3 with bad flags: %s", strerror(errno));
	if (dup3(fd, fd, 0) != -1 || errno != EINVAL)
		return fail("dup3 onto itself: %s", strerror(errno));
	if (write(fd, MARK, MARKLEN) != (ssize_t)MARKLEN)
		return fail("write after dup3: %s", strerror(errno));
	return expect_echo(fd, MARK, MARKLEN, "dup3");
}

static int t_close_range_einval(void)
{
	int fd = tap_connect();
	if (fd < 0)
		return 1;
	if (syscall(SYS_close_range, fd, fd, 0x8000) != -1 || errno != EINVAL)
		return fail("close_range, raw, bad flags: %s",
		            strerror(errno));
	if (close_range((unsigned)fd, (unsigned)fd, 0x8000) != -1 ||
	    errno != EINVAL)
		return fail("close_range with bad flags: %s", strerror(errno));
	if (close_range((unsigned)fd + 1, (unsigned)fd, 0) != -1 ||
	    errno != EINVAL)
		return fail("close_range first > last: %s", strerror(errno));
	if (write(fd, MARK, MARKLEN) != (ssize_t)MARKLEN)
		return fail("write after close_range: %s", strerror(errno));
	return expect_echo(fd, MARK, MARKLEN, "close_range");
}

/* dup2 of an upgraded fd onto a plain number and onto another upgraded
 * one: the number then carries the first session. */
static int t_dup2_over(void)
{
	int a = tap_connect(), b = tap_connect(), plain = socket(AF_INET,
	                                                       SOCK_STREAM, 0);
	if (a < 0 || b < 0)
		return 1;
	if (dup2(a, plain) != plain || dup2(a, b) != b)
		return fail("dup2: %s", strerror(errno));
	if (write(plain, MARK, MARKLEN) != (ssize_t)MARKLEN ||
	    write(b, MARK, MARKLEN) != (ssize_t)MARKLEN)
		return fail("write on the copies: %s", strerror(errno));
	return expect_echo(a, MARK MARK, 2 * MARKLEN, "dup2");
}

/* ---- write paths: carried through the session ---- */

static int carried(long r, int fd, const char *what)
{
	if (r != (long)MARKLEN)
		return fail("%s: %ld (%s)", what, r, strerror(errno));
	return expect_echo(fd, MARK, MARKLEN, what);
}

#define CARRIED(fn, expr)                                                  \
	static int t_##fn(void)                                            \
	{                                                                  \
		int fd = tap_connect();                                    \
		struct iovec v = {MARK, MARKLEN};                          \
		(void)v;                                                   \
		if (fd < 0)                                                \
			return 1;                                          \
		return carried((long)(expr), fd, #fn);                     \
	}

CARRIED(write, write(fd, MARK, MARKLEN))
CARRIED(__write, __write(fd, MARK, MARKLEN))
CARRIED(send, send(fd, MARK, MARKLEN, 0))
CARRIED(__send, __send(fd, MARK, MARKLEN, 0))
CARRIED(writev, writev(fd, &v, 1))
CARRIED(pwritev2, pwritev2(fd, &v, 1, -1, 0))
CARRIED(pwritev64v2, pwritev64v2(fd, &v, 1, -1, 0))
CARRIED(syscall_write, syscall(SYS_write, fd, MARK, MARKLEN))
CARRIED(syscall_pwritev2, syscall(SYS_pwritev2, fd, &v, 1, -1L, -1L, 0))
CARRIED(dprintf, dprintf(fd, "%s", MARK))
CARRIED(__dprintf_chk, __dprintf_chk(fd, 1, "%s", MARK))

static int vd(int fd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vdprintf(fd, fmt, ap);
	va_end(ap);
	return r;
}
CARRIED(vdprintf, vd(fd, "%s", MARK))

static int t___connect(void)
{
	struct sockaddr_in in;
	socklen_t len = tap4(&in);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (__connect(fd, (void *)&in, len) < 0)
		return fail("__connect: %s", strerror(errno));
	return carried(write(fd, MARK, MARKLEN), fd, "__connect");
}

/* eventfd_write(fd, v) writes the 8 bytes of v with libc's own write. */
static int t_eventfd_write(void)
{
	int fd = tap_connect();
	eventfd_t v;
	memcpy(&v, "8-BYTES!", 8);
	if (fd < 0)
		return 1;
	if (eventfd_write(fd, v) != 0)
		return fail("eventfd_write: %s", strerror(errno));
	return expect_echo(fd, "8-BYTES!", 8, "eventfd_write");
}

static int t_sendfile(void)
{
	int fd = tap_connect(), p[2];
	if (fd < 0 || pipe(p) < 0)
		return 1;
	char path[] = "/tmp/leak-sendfile-XXXXXX";
	int f = mkstemp(path);
	unlink(path);
	if (write(f, MARK, MARKLEN) != (ssize_t)MARKLEN)
		return 1;
	off_t off = 0;
	return carried(sendfile(fd, f, &off, MARKLEN), fd, "sendfile");
}

static int t_splice(void)
{
	int fd = tap_connect(), p[2];
	if (fd < 0 || pipe(p) < 0 ||
	    write(p[1], MARK, MARKLEN) != (ssize_t)MARKLEN)
		return 1;
	return carried(splice(p[0], NULL, fd, NULL, MARKLEN, 0), fd,
	               "splice");
}

/* ---- write paths the kernel or tlsshim refuses ---- */

#define REFUSED(fn, expr, err)                                             \
	static int t_##fn(void)                                            \
	{                                                                  \
		int fd = tap_connect();                                    \
		struct iovec v = {MARK, MARKLEN};                          \
		(void)v;                                                   \
		if (fd < 0)                                                \
			return 1;                                          \
		errno = 0;                                                 \
		return refused(fd, (long)(expr), err, #fn);                \
	}

REFUSED(pwrite, pwrite(fd, MARK, MARKLEN, 0), ESPIPE)
REFUSED(pwritev, pwritev(fd, &v, 1, 0), ESPIPE)
REFUSED(pwritev2_offset, pwritev2(fd, &v, 1, 5, 0), ESPIPE)
REFUSED(tcsendbreak, tcsendbreak(fd, 0), 0)

static int t_mq_send(void)
{
	int fd = tap_connect();
	if (fd < 0)
		return 1;
	/* A message queue descriptor is an fd on Linux; a socket is not
	 * one. */
	return refused(fd, mq_send(fd, MARK, MARKLEN, 0), EBADF, "mq_send");
}

static int t_aio_read(void)
{
	int fd = tap_connect();
	char buf[64];
	struct aiocb cb = {.aio_fildes = fd, .aio_buf = buf,
	                   .aio_nbytes = sizeof buf};
	if (fd < 0)
		return 1;
	return refused(fd, aio_read(&cb), EOPNOTSUPP, "aio_read");
}

/* rexec and rcmd connect inside libc: never seen by the connect hook. */
static int t_rexec(void)
{
	char host[] = "127.0.0.1", *h = host;
	int fd = tap_connect();
	if (fd < 0)
		return 1;
	errno = 0;
	int r = rexec_af(&h, htons((uint16_t)port("LEAK_PORT")), MARK, MARK,
	                 MARK, NULL, AF_INET);
	return refused(fd, r, 0, "rexec_af");
}

static int t_rcmd(void)
{
	char host[] = "127.0.0.1", *h = host;
	int fd = tap_connect();
	if (fd < 0)
		return 1;
	errno = 0;
	int r = rcmd_af(&h, htons((uint16_t)port("LEAK_PORT")), MARK, MARK,
	                MARK, NULL, AF_INET);
	return refused(fd, r, 0, "rcmd_af");
}

static int t_copy_file_range(void)
{
	int fd = tap_connect();
	char path[] = "/tmp/leak-cfr-XXXXXX";
	int f = mkstemp(path);
	unlink(path);
	if (fd < 0 || write(f, MARK, MARKLEN) != (ssize_t)MARKLEN)
		return 1;
	loff_t off = 0;
	return refused(fd, copy_file_range(f, &off, fd, NULL, MARKLEN, 0), 0,
	               "copy_file_range");
}

static int t_tee(void)
{
	int fd = tap_connect(), p[2];
	if (fd < 0 || pipe(p) < 0 ||
	    write(p[1], MARK, MARKLEN) != (ssize_t)MARKLEN)
		return 1;
	return refused(fd, tee(p[0], fd, MARKLEN, 0), EINVAL, "tee");
}

static int t_vmsplice(void)
{
	int fd = tap_connect();
	struct iovec v = {MARK, MARKLEN};
	if (fd < 0)
		return 1;
	return refused(fd, vmsplice(fd, &v, 1, 0), 0, "vmsplice");
}

static int t_aio_write(void)
{
	int fd = tap_connect();
	struct aiocb cb = {.aio_fildes = fd, .aio_buf = (void *)MARK,
	                   .aio_nbytes = MARKLEN};
	if (fd < 0)
		return 1;
	int r = aio_write(&cb);
	/* If it had been queued, give its thread time to act. */
	usleep(200000);
	return refused(fd, r, EOPNOTSUPP, "aio_write");
}

static int t_lio_listio(void)
{
	int fd = tap_connect();
	struct aiocb cb = {.aio_fildes = fd, .aio_buf = (void *)MARK,
	                   .aio_nbytes = MARKLEN,
	                   .aio_lio_opcode = LIO_WRITE};
	struct aiocb *list[1] = {&cb};
	if (fd < 0)
		return 1;
	int r = lio_listio(LIO_WAIT, list, 1, NULL);
	return refused(fd, r, EOPNOTSUPP, "lio_listio");
}

static int t_io_submit(void)
{
	int fd = tap_connect();
	aio_context_t ctx = 0;
	struct iocb cb = {.aio_fildes = (uint32_t)fd,
	                  .aio_lio_opcode = IOCB_CMD_PWRITE,
	                  .aio_buf = (uint64_t)(uintptr_t)MARK,
	                  .aio_nbytes = MARKLEN};
	struct iocb *list[1] = {&cb};
	if (fd < 0 || syscall(SYS_io_setup, 8, &ctx) < 0)
		return fail("io_setup: %s", strerror(errno));
	long r = syscall(SYS_io_submit, ctx, 1L, list);
	usleep(200000);
	return refused(fd, r, EOPNOTSUPP, "io_submit");
}

static int t_io_uring_setup(void)
{
	int fd = tap_connect();
	char params[120] = {0};
	if (fd < 0)
		return 1;
	long r = syscall(SYS_io_uring_setup, 8, params);
	if (r >= 0)
		return fail("io_uring_setup was allowed");
	return refused(fd, r, ENOSYS, "io_uring_setup");
}

/* ---- stdio ---- */

/* A stream made before the connect: sealed, never raw. */
static int t_stdio_before(void)
{
	struct sockaddr_in in;
	socklen_t len = tap4(&in);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	FILE *f = fdopen(fd, "w");
	if (!f || connect(fd, (void *)&in, len) < 0)
		return fail("fdopen/connect: %s", strerror(errno));
	fputs(MARK, f);
	if (fflush(f) != EOF)
		return fail("the stream made before connect wrote");
	return still_works(fd, "stdio before connect");
}

/* stdout moved onto the socket with dup2: the stream is sealed. */
static int t_stdout_dup2(void)
{
	int fd = tap_connect(), keep = dup(1);
	if (fd < 0)
		return 1;
	if (dup2(fd, 1) != 1)
		return fail("dup2: %s", strerror(errno));
	printf("%s", MARK);
	int r = fflush(stdout);
	dup2(keep, 1);
	if (r != EOF)
		return fail("stdout wrote on the socket");
	/* The number itself is carried: write(1) went through TLS. */
	return still_works(fd, "stdout over the socket");
}

/* glibc's old internal name of fdopen, still exported. */
extern FILE *_IO_fdopen(int fd, const char *mode);

/* A stream made on the socket after connect, by make: through TLS. */
static int stream_after(FILE *(*make)(int, const char *), const char *what)
{
	int fd = tap_connect();
	FILE *f = fd >= 0 ? make(fd, "r+") : NULL;
	if (!f)
		return 1;
	if (fputs(MARK, f) < 0 || fflush(f) != 0)
		return fail("fputs/fflush: %s", strerror(errno));
	return expect_echo(fd, MARK, MARKLEN, what);
}

static int t_stdio_after(void)
{
	return stream_after(fdopen, "stdio after connect");
}

static int t__IO_fdopen(void)
{
	return stream_after(_IO_fdopen, "_IO_fdopen after connect");
}

/* ---- exec and spawn ---- */

static char shcmd[256];

static const char *write_mark_cmd(int fd)
{
	snprintf(shcmd, sizeof shcmd,
	         "printf %%s %s >&%d 2>/dev/null; true", MARK, fd);
	return shcmd;
}

static int wait_ok(pid_t pid, const char *what)
{
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return fail("%s: %s", what, strerror(errno));
	return 0;
}

static int t_exec(void)
{
	int fd = tap_connect();
	if (fd < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", write_mark_cmd(fd), (char *)NULL);
		_exit(127);
	}
	if (wait_ok(pid, "exec"))
		return 1;
	return still_works(fd, "exec");
}

/* execle: the environment after the list reaches the program. */
static int t_execle(void)
{
	int fd = tap_connect(), st;
	char cmd[256];
	char *envp[] = {"LEAKENV=yes", NULL};
	if (fd < 0)
		return 1;
	snprintf(cmd, sizeof cmd,
	         "[ \"$LEAKENV\" = yes ] || exit 9; printf %%s %s >&%d "
	         "2>/dev/null; exit 0", MARK, fd);
	pid_t pid = fork();
	if (pid == 0) {
		execle("/bin/sh", "sh", "-c", cmd, (char *)NULL, envp);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st))
		return fail("execle: the program did not get its environment "
		            "(%d)", st);
	return still_works(fd, "execle");
}

static int t_exec_failed(void)
{
	int fd = tap_connect();
	char *argv[] = {"nothing", NULL};
	if (fd < 0)
		return 1;
	if (execve("/nonexistent/program", argv, environ) != -1)
		return 1;
	if (fcntl(fd, F_GETFD) & FD_CLOEXEC)
		return fail("a failed exec left FD_CLOEXEC behind");
	return still_works(fd, "a failed exec");
}

static int t_vfork_exec(void)
{
	int fd = tap_connect();
	if (fd < 0)
		return 1;
	const char *cmd = write_mark_cmd(fd);
	pid_t pid = vfork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	if (wait_ok(pid, "vfork"))
		return 1;
	return still_works(fd, "vfork+exec");
}

static int t_posix_spawn(void)
{
	int fd = tap_connect();
	posix_spawn_file_actions_t fa;
	pid_t pid;
	char *argv[] = {"printf", MARK, NULL};
	if (fd < 0)
		return 1;
	/* The child's stdout is the socket: what inetd-style code does. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	if (posix_spawnp(&pid, "printf", &fa, NULL, argv, environ))
		return fail("posix_spawnp: %s", strerror(errno));
	posix_spawn_file_actions_destroy(&fa);
	if (wait_ok(pid, "posix_spawn"))
		return 1;
	return still_works(fd, "posix_spawn");
}

static int t_system(void)
{
	int fd = tap_connect();
	if (fd < 0)
		return 1;
	(void)system(write_mark_cmd(fd));
	if (fcntl(fd, F_GETFD) & FD_CLOEXEC)
		return fail("system() left FD_CLOEXEC behind");
	return still_works(fd, "system");
}

static int t_popen(void)
{
	int fd = tap_connect();
	if (fd < 0)
		return 1;
	FILE *p = popen(write_mark_cmd(fd), "r");
	if (!p)
		return fail("popen: %s", strerror(errno));
	pclose(p);
	return still_works(fd, "popen");
}

/* An upgraded fd passed to another process (SCM_RIGHTS): that process
 * gets a closed socket, never the raw one. */
static int t_scm_rights(void)
{
	int sv[2], fd = tap_connect(), st;
	if (fd < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		char c, ctl[CMSG_SPACE(sizeof(int))];
		struct iovec v = {&c, 1};
		struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1,
		                   .msg_control = ctl,
		                   .msg_controllen = sizeof ctl};
		if (recvmsg(sv[1], &m, 0) != 1)
			_exit(2);
		int got;
		memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof got);
		ssize_t r = send(got, MARK, MARKLEN, MSG_NOSIGNAL);
		_exit(r < 0 ? 0 : 3);
	}
	char ctl[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec v = {"x", 1};
	struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1,
	                   .msg_control = ctl, .msg_controllen = sizeof ctl};
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof fd);
	if (sendmsg(sv[0], &m, 0) != 1)
		return fail("sendmsg SCM_RIGHTS: %s", strerror(errno));
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st))
		return fail("the receiving process wrote on the socket (%d)",
		            st);
	return still_works(fd, "SCM_RIGHTS");
}

/* ---- fork: one writer per session ---- */

#define PARENT_PLAIN "PARENT-RECORD-PLAINTEXT-0001"
#define CHILD_PLAIN "CHILD--RECORD-PLAINTEXT-0002"

static int child_write(int fd)
{
	ssize_t r = send(fd, CHILD_PLAIN, sizeof CHILD_PLAIN - 1,
	                 MSG_NOSIGNAL);
	/* The parent owns the session: the child's write must fail. */
	return r < 0 && errno == EPIPE ? 0 : 3;
}

static int clone_child(void *arg)
{
	return child_write(*(int *)arg);
}

/* how: 0 syscall(SYS_fork), 1 _Fork, 2 clone. The child writes first. */
static int fork_other(int how)
{
	static char stack[64 * 1024];
	int fd = tap_connect(), st;
	pid_t pid;
	if (fd < 0)
		return 1;
	if (how == 0)
		pid = (pid_t)syscall(SYS_fork);
	else if (how == 1)
		pid = _Fork();
	else
		pid = clone(clone_child, stack + sizeof stack, SIGCHLD, &fd);
	if (pid == 0)
		_exit(child_write(fd));
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return fail("fork %d: %s", how, strerror(errno));
	/* The parent's record goes out in any case: had the child's gone
	 * too, the two would share a nonce, which the wire shows. */
	ssize_t w = write(fd, PARENT_PLAIN, sizeof PARENT_PLAIN - 1);
	usleep(100000);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return fail("fork %d: the child's write was not refused (%d)",
		            how, st);
	if (w != (ssize_t)(sizeof PARENT_PLAIN - 1))
		return fail("parent write: %s", strerror(errno));
	return expect_echo(fd, PARENT_PLAIN, sizeof PARENT_PLAIN - 1,
	                   "parent after fork");
}

static int t_fork_syscall(void) { return fork_other(0); }
static int t__Fork(void) { return fork_other(1); }
static int t_clone(void) { return fork_other(2); }

/* vfork's child shares the parent's memory: its record advances the
 * same session, the parent's follows it. */
static int t_vfork_write(void)
{
	int fd = tap_connect();
	if (fd < 0)
		return 1;
	pid_t pid = vfork();
	if (pid == 0) {
		ssize_t r = send(fd, CHILD_PLAIN, sizeof CHILD_PLAIN - 1,
		                 MSG_NOSIGNAL);
		_exit(r == (ssize_t)(sizeof CHILD_PLAIN - 1) ? 0 : 3);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st))
		return fail("vfork child's write failed");
	if (write(fd, PARENT_PLAIN, sizeof PARENT_PLAIN - 1) !=
	    (ssize_t)(sizeof PARENT_PLAIN - 1))
		return fail("parent write: %s", strerror(errno));
	return expect_echo(fd, CHILD_PLAIN PARENT_PLAIN,
	                   sizeof CHILD_PLAIN + sizeof PARENT_PLAIN - 2,
	                   "vfork");
}

/* libc's fork: each direction goes to the first process that uses it.
 * The child writes (and so owns the writes), the parent reads. */
static int t_fork_split(void)
{
	int fd = tap_connect(), st;
	if (fd < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		ssize_t r = send(fd, CHILD_PLAIN, sizeof CHILD_PLAIN - 1,
		                 MSG_NOSIGNAL);
		_exit(r == (ssize_t)(sizeof CHILD_PLAIN - 1) ? 0 : 3);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st))
		return fail("child's write failed (%d)", st);
	if (expect_echo(fd, CHILD_PLAIN, sizeof CHILD_PLAIN - 1,
	                "the parent reads what the child wrote"))
		return 1;
	/* The writes are the child's now. */
	if (send(fd, PARENT_PLAIN, sizeof PARENT_PLAIN - 1, MSG_NOSIGNAL) !=
	            -1 ||
	    errno != EPIPE)
		return fail("the parent wrote on the child's direction");
	return 0;
}

struct test {
	const char *name;
	int (*fn)(void);
};

#define T(n) {#n, t_##n}
static const struct test tests[] = {
	T(v6len24), T(v6len24_mapped), T(any4), T(any4_mapped), T(mptcp), T(fastopen_connect),
	T(sendto_fastopen),
	T(sendmsg_fastopen), T(sendmmsg_fastopen), T(sendmsg_fastopen_v6len24),
	T(name_mapped), T(name_v4), T(name_after_many),
	T(race_connect), T(race_close), T(dup3_einval), T(close_range_einval),
	T(dup2_over),
	T(write), T(__write), T(send), T(__send), T(writev), T(pwritev2),
	T(pwritev64v2), T(syscall_write), T(syscall_pwritev2), T(dprintf),
	T(__dprintf_chk), T(vdprintf), T(__connect), T(eventfd_write),
	T(sendfile), T(splice),
	T(pwrite), T(pwritev), T(pwritev2_offset), T(tcsendbreak),
	T(copy_file_range), T(tee), T(vmsplice), T(mq_send), T(aio_write),
	T(aio_read), T(lio_listio), T(rexec), T(rcmd),
	T(io_submit), T(io_uring_setup),
	T(stdio_before), T(stdout_dup2), T(stdio_after), T(_IO_fdopen),
	T(exec), T(execle), T(exec_failed), T(vfork_exec), T(posix_spawn), T(system),
	T(popen), T(scm_rights),
	T(fork_syscall), T(_Fork), T(clone), T(vfork_write), T(fork_split),
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	for (size_t i = 0; argc == 2 && i < sizeof tests / sizeof *tests; i++)
		if (!strcmp(argv[1], tests[i].name))
			return tests[i].fn();
	fprintf(stderr, "usage: leak --list | leak NAME\n");
	return 2;
}
