/* Bad input from the program: every call is made on a plain TCP socket
 * (a loopback echo in this process, not matched by the policy) and on a
 * TLS socket in the same state; result and errno must be the same. Calls
 * that might crash a careless hook come last. */
#define _GNU_SOURCE
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "stress.h"

static int nbad, ngood;

struct res {
	long r;
	int e;
};

#define CALL(expr)                                                        \
	({                                                                \
		errno = 0;                                                \
		long r_ = (long)(expr);                                   \
		(struct res){r_, errno};                                  \
	})

/* Opaque to the compiler, so it lets the program make the bad calls. */
static void *volatile null_;
static volatile int minus1_ = -1;
#define NUL ((void *)null_)
#define NEG ((int)minus1_)

static void same(const char *what, struct res plain, struct res tls)
{
	if (plain.r == tls.r && (plain.r != -1 || plain.e == tls.e)) {
		ngood++;
		return;
	}
	nbad++;
	fprintf(stderr, "MISMATCH %s: plain socket %ld (%s), tls %ld (%s)%s\n",
	        what, plain.r, plain.r < 0 ? strerror(plain.e) : "-", tls.r,
	        tls.r < 0 ? strerror(tls.e) : "-",
	        tls.r <= -100 ? " CRASHED or HUNG (signal = -100 - value; 14: hung)" : "");
}

/* Wait (at most 2 s) for the peer's end of stream. */
static void settle(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};
	(void)poll(&p, 1, 2000);
	usleep(50000);
}

static struct iovec iov[IOV_MAX + 2];
static char buf[65536];

/* prime: 1 when a byte must be waiting first. */
static const struct {
	const char *what;
	int prime;
} ops[] = {
	{"writev iovcnt IOV_MAX+1", 0},
	{"readv iovcnt IOV_MAX+1", 1},
	{"sendmsg iovlen IOV_MAX+1", 0},
	{"recvmsg iovlen IOV_MAX+1", 1},
	{"write NULL", 0},
	{"send NULL", 0},
	{"writev NULL base", 0},
	{"writev NULL iov, 1", 0},
	{"read NULL (a byte waiting)", 1},
	{"recv NULL (a byte waiting)", 1},
	{"readv NULL base (a byte waiting)", 1},
	{"recvmsg NULL msg", 1},
	{"sendmsg NULL msg", 0},
	{"write then read after EFAULT (a byte waiting)", 1},
};
#define NOPS ((int)(sizeof ops / sizeof ops[0]))

static struct res do_op(int fd, int op)
{
	struct iovec bad = {NUL, 10};
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = IOV_MAX + 1};

	switch (op) {
	case 0: return CALL(writev(fd, iov, IOV_MAX + 1));
	case 1: return CALL(readv(fd, iov, IOV_MAX + 1));
	case 2: return CALL(sendmsg(fd, &m, 0));
	case 3: return CALL(recvmsg(fd, &m, 0));
	case 4: return CALL(write(fd, NUL, 10));
	case 5: return CALL(send(fd, NUL, 10, 0));
	case 6: return CALL(writev(fd, &bad, 1));
	case 7: return CALL(writev(fd, NUL, 1));
	case 8: return CALL(read(fd, NUL, 10));
	case 9: return CALL(recv(fd, NUL, 10, 0));
	case 10: return CALL(readv(fd, &bad, 1));
	case 11: return CALL(recvmsg(fd, NUL, MSG_DONTWAIT));
	case 12: return CALL(sendmsg(fd, NUL, 0));
	case 13: {
		/* The byte stays after EFAULT (kernel) and can be read. */
		if (read(fd, NUL, 10) != -1)
			return (struct res){-2, 0};
		return CALL(read(fd, buf, 10));
	}
	}
	return (struct res){-3, 0};
}

static void prime(int fd);

/* Runs op in a child on a fresh connection to port. A crash is -100-sig. */
static struct res isolated(int port, int op)
{
	int p[2], st;
	struct res r = {-99, 0};

	if (pipe(p) < 0)
		FAIL("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(5);
		int fd = dial(port);
		if (fd < 0)
			_exit(2);
		if (ops[op].prime)
			prime(fd);
		r = do_op(fd, op);
		if (write(p[1], &r, sizeof r) != sizeof r)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &r, sizeof r) != sizeof r)
		r = (struct res){-99, 0};
	close(p[0]);
	if (waitpid(pid, &st, 0) == pid && WIFSIGNALED(st))
		r = (struct res){-100 - WTERMSIG(st), 0};
	return r;
}

static void *plain_conn(void *arg)
{
	int c = (int)(intptr_t)arg;
	char b[4096];
	ssize_t n;
	while ((n = read(c, b, sizeof b)) > 0)
		if (write(c, b, (size_t)n) != n)
			break;
	close(c);
	return NULL;
}

static void *plain_echo(void *arg)
{
	int ls = (int)(intptr_t)arg;
	for (;;) {
		int c = accept(ls, NULL, NULL);
		pthread_t t;
		if (c < 0)
			continue;
		if (pthread_create(&t, NULL, plain_conn, (void *)(intptr_t)c))
			close(c);
		else
			pthread_detach(t);
	}
	return NULL;
}

static int plain_listener(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	pthread_t t;
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(ls, 8) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0)
		FAIL("listen: %s", strerror(errno));
	pthread_create(&t, NULL, plain_echo, (void *)(intptr_t)ls);
	pthread_detach(t);
	return ntohs(sa.sin_port);
}

/* One byte through, so both are readable with one byte waiting. */
static void prime(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	write_all(fd, "x", 1);
	if (poll(&p, 1, 10000) != 1)
		FAIL("no echo on fd %d", fd);
}

static void drain(int fd)
{
	char c;
	read_exact(fd, &c, 1);
}

int main(void)
{
	int pl, tl, plain_port, tls_port;

	signal(SIGPIPE, SIG_IGN);
	watchdog(150);
	plain_port = plain_listener();
	tls_port = echo_port();
	pl = dial(plain_port);
	tl = dial(tls_port);
	if (pl < 0 || tl < 0)
		FAIL("connect: %s", strerror(errno));
	for (int i = 0; i < IOV_MAX + 2; i++)
		iov[i] = (struct iovec){buf, 1};

#define BOTH(what, expr_of_fd)                                            \
	do {                                                              \
		int fd_ = pl;                                             \
		struct res p_ = CALL(expr_of_fd);                         \
		fd_ = tl;                                                 \
		fprintf(stderr, "- %s\n", what);                         \
		struct res t_ = CALL(expr_of_fd);                         \
		same(what, p_, t_);                                       \
	} while (0)

	/* Bad fds never reach a session. */
	same("read(-1)", CALL(read(-1, buf, 1)), CALL(read(-1, buf, 1)));
	same("write(99999)", CALL(write(99999, buf, 1)),
	     CALL(write(99999, buf, 1)));

	/* Zero-length I/O. */
	BOTH("write len 0", write(fd_, buf, 0));
	BOTH("send len 0", send(fd_, buf, 0, 0));
	BOTH("writev iovcnt 0", writev(fd_, iov, 0));
	BOTH("writev NULL iov, 0", writev(fd_, NUL, 0));
	BOTH("read len 0 (nothing waiting)", read(fd_, buf, 0));
	BOTH("recv len 0 MSG_DONTWAIT (nothing waiting)",
	     recv(fd_, buf, 0, MSG_DONTWAIT));
	BOTH("recv MSG_DONTWAIT (nothing waiting)",
	     recv(fd_, buf, 1, MSG_DONTWAIT));

	/* Bad counts and flags. */
	BOTH("writev iovcnt -1", writev(fd_, iov, NEG));
	BOTH("readv iovcnt -1", readv(fd_, iov, NEG));
	BOTH("shutdown how=42", shutdown(fd_, 42));

	/* Reads with one byte waiting. */
	prime(pl);
	prime(tl);
	BOTH("read len 0 (a byte waiting)", read(fd_, buf, 0));
	BOTH("recv MSG_PEEK len 0", recv(fd_, buf, 0, MSG_PEEK));
	drain(pl);
	drain(tl);

	/* Calls that may crash a careless hook, or break the session: each
	 * in a child of its own, on a fresh connection of the child's. */
	for (int op = 0; op < NOPS; op++) {
		fprintf(stderr, "- %s (isolated)\n", ops[op].what);
		same(ops[op].what, isolated(plain_port, op),
		     isolated(tls_port, op));
	}

	/* shutdown twice, then I/O, then close twice. */
	BOTH("shutdown SHUT_WR", shutdown(fd_, SHUT_WR));
	/* What follows depends on whether the peer's FIN has arrived (the
	 * kernel says ENOTCONN once both sides closed): let it arrive on
	 * both connections before comparing. */
	settle(pl);
	settle(tl);
	BOTH("shutdown SHUT_WR again", shutdown(fd_, SHUT_WR));
	BOTH("write after SHUT_WR", write(fd_, buf, 1));
	BOTH("shutdown SHUT_RDWR", shutdown(fd_, SHUT_RDWR));
	BOTH("shutdown SHUT_RDWR again", shutdown(fd_, SHUT_RDWR));
	BOTH("read after SHUT_RDWR", read(fd_, buf, 1));
	BOTH("close", close(fd_));
	BOTH("close again", close(fd_));
	BOTH("read after close", read(fd_, buf, 1));
	BOTH("write after close", write(fd_, buf, 1));
	BOTH("shutdown after close", shutdown(fd_, SHUT_RDWR));
	BOTH("fcntl after close", fcntl(fd_, F_GETFL));

	printf("%d calls agree, %d differ\n", ngood, nbad);
	return nbad ? 1 : 0;
}
