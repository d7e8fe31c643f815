/* Readiness through poll, ppoll, select, pselect: writable at once; a
 * record partly read leaves the fd readable (the rest is decrypted and
 * waiting, though the kernel socket may be empty); the peer's half-close
 * shows as POLLIN + POLLRDHUP and read returns 0. */
#include "iotest.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

/* not a constant, so that fortified builds call __poll_chk/__ppoll_chk */
static volatile nfds_t one = 1;

enum api { P_POLL, P_PPOLL, P_SELECT, P_PSELECT };
static const char *names[] = {"poll", "ppoll", "select", "pselect"};

/* 1 readable/writable as asked, 0 timeout, -1 error */
static int wait_fd(enum api a, int fd, bool out, int ms)
{
	struct pollfd p[1] = {{.fd = fd, .events = out ? POLLOUT : POLLIN}};
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	fd_set s;
	sigset_t mask;
	sigemptyset(&mask);
	FD_ZERO(&s);
	FD_SET(fd, &s); /* __fdelt_chk when fortified */
	int r;
	switch (a) {
	case P_POLL:
		r = poll(p, one, ms); /* __poll_chk */
		return r == 1 ? ((p[0].revents & p[0].events) ? 1 : -1) : r;
	case P_PPOLL:
		r = ppoll(p, one, &ts, &mask); /* __ppoll_chk */
		return r == 1 ? ((p[0].revents & p[0].events) ? 1 : -1) : r;
	case P_SELECT:
		r = out ? select(fd + 1, NULL, &s, NULL, &tv) : select(fd + 1, &s, NULL, NULL, &tv);
		return r == 1 ? (FD_ISSET(fd, &s) ? 1 : -1) : r;
	default:
		r = out ? pselect(fd + 1, NULL, &s, NULL, &ts, &mask)
			: pselect(fd + 1, &s, NULL, NULL, &ts, &mask);
		return r == 1 ? (FD_ISSET(fd, &s) ? 1 : -1) : r;
	}
}

static void partial(enum api a)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	CHECK(wait_fd(a, fd, true, 3000) == 1, "%s: connected socket is writable", names[a]);
	CHECK(wait_fd(a, fd, false, 0) == 0, "%s: nothing to read yet", names[a]);
	if (io_record_read1(fd)) {
		int r = wait_fd(a, fd, false, 3000);
		CHECK(r == 1, "%s: readable after reading 1 byte of a 16 KiB record (%d)", names[a], r);
		io_record_rest(fd);
	}
	CHECK(wait_fd(a, fd, false, 0) == 0, "%s: drained, not readable", names[a]);
	close(fd);
}

static void rdhup(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	CHECK(io_write_all(fd, "hello", 5), "write");
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown(SHUT_WR)");
	char t[64];
	size_t got = 0;
	short last = 0;
	for (;;) {
		struct pollfd p[1] = {{.fd = fd, .events = POLLIN | POLLRDHUP}};
		if (poll(p, one, 5000) != 1) {
			CHECK(0, "poll timed out waiting for the peer's close");
			break;
		}
		last = p[0].revents;
		ssize_t r = read(fd, t + got, sizeof t - 1 - got);
		if (r <= 0) {
			CHECK(r == 0, "read returns 0 at the peer's close (%zd)", r);
			break;
		}
		got += (size_t)r;
	}
	t[got] = 0;
	CHECK(got == 11 && strcmp(t, "helloEOF 5\n") == 0, "echo and the server's answer after our SHUT_WR");
	CHECK((last & POLLIN) && (last & POLLRDHUP), "POLLIN|POLLRDHUP at the peer's close (revents %#x)", last);
	close(fd);
}

int main(int argc, char **argv)
{
	io_init(argc, argv);
	for (int a = P_POLL; a <= P_PSELECT; a++)
		if (io_selected(names[a]))
			partial((enum api)a);
	if (io_selected("rdhup"))
		rdhup();
	return io_summary();
}
