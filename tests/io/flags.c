/* recv/send flags as the kernel answers them on a TCP socket: MSG_PEEK
 * peeks decrypted bytes, MSG_WAITALL, MSG_DONTWAIT (EAGAIN only when
 * nothing is there), MSG_NOSIGNAL and SIGPIPE, MSG_MORE, MSG_TRUNC,
 * MSG_OOB, SO_RCVTIMEO. */
#include "iotest.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static unsigned char buf[65536];
static volatile sig_atomic_t npipe;
static void on_pipe(int s) { (void)s; npipe++; }

/* One round trip, so the TLS 1.3 session tickets are behind us. */
static bool ping(int fd)
{
	char c;
	return io_write_all(fd, "!", 1) && io_read_all(fd, &c, 1) && c == '!';
}

static void peek(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	io_fill(buf, 0, IO_REC);
	io_write_all(fd, buf, IO_REC);
	unsigned char p1[100], p2[100], r[100];
	ssize_t a = recv(fd, p1, sizeof p1, MSG_PEEK);
	CHECK(a > 0 && io_verify(p1, 0, (size_t)a), "MSG_PEEK returns payload bytes (%zd)", a);
	ssize_t b = recv(fd, p2, sizeof p2, MSG_PEEK);
	CHECK(b >= a && memcmp(p1, p2, (size_t)a) == 0, "a second MSG_PEEK sees the same bytes");
	ssize_t c = recv(fd, r, (size_t)b, 0);
	CHECK(c == b && memcmp(r, p2, (size_t)b) == 0, "recv then consumes exactly the peeked bytes");
	ssize_t d = recv(fd, buf, IO_REC - (size_t)c, MSG_WAITALL);
	CHECK(d == IO_REC - c && io_verify(buf, (uint64_t)c, (size_t)d), "rest of the record intact");
	close(fd);
}

static void waitall(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	io_fill(buf, 0, sizeof buf);
	io_write_all(fd, buf, sizeof buf);
	memset(buf, 0, sizeof buf);
	ssize_t r = recv(fd, buf, sizeof buf, MSG_WAITALL);
	CHECK(r == (ssize_t)sizeof buf && io_verify(buf, 0, sizeof buf),
	      "MSG_WAITALL returns all 64 KiB at once (%zd)", r);
	close(fd);
}

static void dontwait(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	CHECK(ping(fd), "round trip");
	ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	CHECK(r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK),
	      "MSG_DONTWAIT with nothing to read: -1/EAGAIN (%zd)", r);
	CHECK(io_record_read1(fd), "first byte of a record");
	r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	CHECK(r > 0 && io_verify(buf, 1, (size_t)r),
	      "MSG_DONTWAIT with bytes pending returns them (%zd)", r);
	size_t got = r > 0 ? (size_t)r : 0;
	while (got < IO_REC - 1) {
		if (!io_wait_in(fd, 5000))
			break;
		r = recv(fd, buf, IO_REC - 1 - got, MSG_DONTWAIT);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	CHECK(got == IO_REC - 1, "MSG_DONTWAIT after POLLIN never says EAGAIN (%zu)", got);
	r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	CHECK(r == -1 && errno == EAGAIN, "drained: EAGAIN again (%zd)", r);
	/* blocking socket stays blocking afterwards */
	CHECK(ping(fd), "blocking round trip after MSG_DONTWAIT");
	close(fd);
}

static void nosignal(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	signal(SIGPIPE, on_pipe);
	CHECK(ping(fd), "round trip");
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown(SHUT_WR)");
	npipe = 0;
	ssize_t r = send(fd, "x", 1, MSG_NOSIGNAL);
	CHECK(r == -1 && errno == EPIPE && npipe == 0,
	      "send(MSG_NOSIGNAL) after SHUT_WR: -1/EPIPE, no SIGPIPE (%zd, %d signals)", r, (int)npipe);
	r = send(fd, "x", 1, 0);
	CHECK(r == -1 && errno == EPIPE && npipe == 1,
	      "send() after SHUT_WR: -1/EPIPE and one SIGPIPE (%zd, %d signals)", r, (int)npipe);
	r = write(fd, "x", 1);
	CHECK(r == -1 && errno == EPIPE && npipe == 2,
	      "write() after SHUT_WR: -1/EPIPE and SIGPIPE (%zd, %d signals)", r, (int)npipe);
	char t[32] = {0};
	ssize_t n = recv(fd, t, sizeof t - 1, MSG_WAITALL);
	CHECK(n == 6 && strcmp(t, "EOF 1\n") == 0, "server answered after our half-close (%zd)", n);
	signal(SIGPIPE, SIG_DFL);
	close(fd);
}

static void more(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	CHECK(send(fd, "abc", 3, MSG_MORE) == 3, "send(MSG_MORE)");
	CHECK(send(fd, "def", 3, 0) == 3, "send() completing it");
	char t[8] = {0};
	CHECK(io_read_all(fd, t, 6) && memcmp(t, "abcdef", 6) == 0, "both parts echoed in order");
	close(fd);
}

static void trunc_oob(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	CHECK(ping(fd), "round trip");
	ssize_t r = recv(fd, buf, 1, MSG_OOB);
	CHECK(r == -1 && errno == EINVAL, "recv(MSG_OOB) without urgent data: -1/EINVAL (%zd)", r);
	io_write_all(fd, "0123456789", 10);
	char t[16] = {0};
	r = recv(fd, t, 4, MSG_TRUNC);
	/* TCP: MSG_TRUNC discards the bytes and returns their count */
	CHECK(r >= 1 && r <= 4 && t[0] == 0, "recv(MSG_TRUNC) discards %zd bytes unread", r);
	if (r < 1)
		r = 0;
	ssize_t k = recv(fd, t, (size_t)(10 - r), MSG_WAITALL);
	CHECK(k == 10 - r && memcmp(t, "0123456789" + r, (size_t)k) == 0,
	      "the following bytes come next (%zd)", k);
	close(fd);
}

static void rcvtimeo(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	CHECK(ping(fd), "round trip");
	struct timeval tv = {0, 200000};
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "SO_RCVTIMEO");
	ssize_t r = read(fd, buf, sizeof buf);
	CHECK(r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK),
	      "read past SO_RCVTIMEO: -1/EAGAIN (%zd)", r);
	CHECK(ping(fd), "round trip after the timeout");
	close(fd);
}

static const struct io_case cases[] = {
	IO_CASE("peek", peek), IO_CASE("waitall", waitall),
	IO_CASE("dontwait", dontwait), IO_CASE("nosignal", nosignal),
	IO_CASE("more", more), IO_CASE("trunc-oob", trunc_oob),
	IO_CASE("rcvtimeo", rcvtimeo),
	{0},
};

int main(int argc, char **argv)
{
	io_init(argc, argv);
	io_run(cases);
	return io_summary();
}
