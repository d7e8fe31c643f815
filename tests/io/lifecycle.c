/* Lifecycle: shutdown(SHUT_WR) half-close; dup, dup2, dup3, F_DUPFD,
 * F_DUPFD_CLOEXEC share one session which ends at the last close; dup2
 * onto an upgraded fd; close_range; an fd number reused after close
 * carries no stale state. */
#include "iotest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bool echo(int wfd, int rfd, const char *msg)
{
	char t[64] = {0};
	size_t n = strlen(msg);
	return io_write_all(wfd, msg, n) && io_read_all(rfd, t, n) && memcmp(t, msg, n) == 0;
}

/* Reads to EOF; returns the bytes (NUL-terminated) or NULL. */
static size_t read_eof(int fd, char *t, size_t cap)
{
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, t + got, cap - 1 - got);
		if (r <= 0) {
			CHECK(r == 0, "read returns 0 at the peer's close (%zd)", r);
			break;
		}
		got += (size_t)r;
	}
	t[got] = 0;
	return got;
}

/* The lowest free number (the one just closed) goes to a socketpair: no
 * stale TLS state may touch it, in either direction. */
static bool reused_plain(int n)
{
	int sv[2];
	char t[8] = {0}, u[8] = {0};
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return false;
	bool ok = sv[0] == n && write(sv[0], "plain", 5) == 5 && read(sv[1], t, 5) == 5 &&
		  memcmp(t, "plain", 5) == 0 && write(sv[1], "back!", 5) == 5 &&
		  read(sv[0], u, 5) == 5 && memcmp(u, "back!", 5) == 0;
	close(sv[0]);
	close(sv[1]);
	return ok;
}

static void halfclose(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	size_t total = io_bytes() / 10;
	static unsigned char b[65536];
	uint64_t off = 0;
	bool ok = true;
	while (ok && off < total) {
		size_t n = total - off < sizeof b ? total - off : sizeof b;
		io_fill(b, off, n);
		ok = io_write_all(fd, b, n) && io_read_all(fd, b, n) && io_verify(b, off, n);
		off += n;
	}
	CHECK(ok, "%zu bytes echoed before the half-close", total);
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown(SHUT_WR)");
	char t[64], want[64];
	read_eof(fd, t, sizeof t);
	snprintf(want, sizeof want, "EOF %zu\n", total);
	CHECK(strcmp(t, want) == 0, "server saw our EOF, counted %zu bytes and could still send (\"%.*s\")", total, (int)strcspn(t, "\n"), t);
	ssize_t r = read(fd, t, sizeof t);
	CHECK(r == 0, "read at EOF keeps returning 0 (%zd)", r);
	CHECK(shutdown(fd, SHUT_RDWR) == 0 || errno == ENOTCONN, "shutdown(SHUT_RDWR) afterwards");
	close(fd);
}

static void dups(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	int a = dup(fd);
	int b = dup2(fd, 100);
	int c = dup3(fd, 101, O_CLOEXEC);
	int d = fcntl(fd, F_DUPFD, 200);
	int e = fcntl(fd, F_DUPFD_CLOEXEC, 300);
	CHECK(a >= 0 && b == 100 && c == 101 && d >= 200 && e >= 300, "dup, dup2, dup3, F_DUPFD, F_DUPFD_CLOEXEC");
	CHECK(fcntl(c, F_GETFD) == FD_CLOEXEC && fcntl(e, F_GETFD) == FD_CLOEXEC, "CLOEXEC set where asked");
	CHECK(echo(a, b, "one-session"), "write on dup, read on dup2: one stream");
	CHECK(echo(c, d, "still-one"), "write on dup3, read on F_DUPFD");
	CHECK(close(fd) == 0 && close(a) == 0, "close the original and the first dup");
	CHECK(echo(e, b, "after-close"), "the session survives while a copy is open");
	CHECK(close(b) == 0 && close(c) == 0 && close(d) == 0, "close all but one");
	CHECK(shutdown(e, SHUT_WR) == 0, "half-close on the last copy");
	char t[64];
	read_eof(e, t, sizeof t);
	CHECK(strcmp(t, "EOF 31\n") == 0, "the server saw one connection carrying all 31 bytes (\"%.*s\")", (int)strcspn(t, "\n"), t);
	CHECK(close(e) == 0, "last close");
	CHECK(write(e, "x", 1) == -1 && errno == EBADF, "closed fd: EBADF");
}

static void dup2_onto(void)
{
	int x = io_connect(io_port(NULL));
	int y = io_connect(io_port(NULL));
	if (x < 0 || y < 0)
		return;
	CHECK(echo(x, x, "first") && echo(y, y, "second"), "two upgraded connections");
	CHECK(dup2(x, y) == y, "dup2(upgraded, upgraded)");
	/* y is now x's socket: a stale session on y would garble the stream */
	CHECK(echo(y, x, "through-y"), "write on y reaches x's connection, read on x");
	CHECK(echo(x, y, "through-x"), "and the other way");
	int p[2];
	CHECK(pipe(p) == 0, "pipe");
	int z = dup(x);
	CHECK(dup2(p[1], z) == z, "dup2(pipe, upgraded copy)");
	char t[8] = {0};
	CHECK(write(z, "plain", 5) == 5 && read(p[0], t, 5) == 5 && memcmp(t, "plain", 5) == 0,
	      "the fd is now a pipe: bytes arrive as written");
	CHECK(echo(x, x, "x-alive"), "the connection behind it is untouched");
	close(z);
	close(p[0]);
	close(p[1]);
	close(y);
	CHECK(echo(x, x, "x-still"), "closing one of two copies keeps the session");
	close(x);
}

static void closerange(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	for (int i = 400; i < 410; i++)
		dup2(fd, i);
	CHECK(close_range(400, 409, 0) == 0, "close_range(400, 409)");
	char c;
	CHECK(read(405, &c, 1) == -1 && errno == EBADF, "closed by close_range: EBADF");
	CHECK(echo(fd, fd, "outside"), "the fd outside the range still works");
	CHECK(close_range((unsigned)fd, (unsigned)fd, 0) == 0, "close_range over the last copy");
	CHECK(reused_plain(fd), "fd %d reused by a socketpair carries plain bytes both ways", fd);
}

static void reuse(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	CHECK(echo(fd, fd, "abc"), "round trip");
	close(fd);
	CHECK(reused_plain(fd), "closed upgraded fd %d reused by a socketpair: plain bytes both ways", fd);
}

static const struct io_case cases[] = {
	IO_CASE("halfclose", halfclose), IO_CASE("dup", dups),
	IO_CASE("dup2-onto", dup2_onto), IO_CASE("close-range", closerange),
	IO_CASE("reuse", reuse),
	{0},
};

int main(int argc, char **argv)
{
	io_init(argc, argv);
	io_run(cases);
	return io_summary();
}
