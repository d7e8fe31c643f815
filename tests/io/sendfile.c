/* Bytes that bypass read/write: sendfile from a file and splice from a
 * pipe onto an upgraded fd must go through TLS, >= 10 MB by sha256. */
#include "iotest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define CH 65536
static unsigned char b[CH];

static int make_file(size_t total)
{
	char path[] = "/tmp/tlsshim-io-XXXXXX";
	int f = mkstemp(path);
	if (f < 0)
		return -1;
	unlink(path);
	for (uint64_t off = 0; off < total; off += CH) {
		size_t n = total - off < CH ? total - off : CH;
		io_fill(b, off, n);
		if (!io_write_all(f, b, n))
			return -1;
	}
	return f;
}

static void do_sendfile(void)
{
	size_t total = io_bytes();
	int f = make_file(total);
	int fd = io_connect(io_port(NULL));
	if (f < 0 || fd < 0)
		return;
	struct sha256 s;
	sha256_init(&s);
	off_t off = 0;
	bool ok = true;
	while (ok && (size_t)off < total) {
		size_t n = total - (size_t)off < CH ? total - (size_t)off : CH;
		off_t start = off;
		while (ok && off < start + (off_t)n) {
			ssize_t r = sendfile(fd, f, &off, (size_t)(start + (off_t)n - off));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				ok = CHECK(0, "sendfile at %lld returned %zd", (long long)off, r);
		}
		ok = ok && io_read_all(fd, b, n) && io_verify(b, (uint64_t)start, n);
		sha256_update(&s, b, n);
	}
	unsigned char d[32];
	char h[65];
	sha256_final(&s, d);
	io_hex(d, h);
	CHECK(ok && (size_t)off == total, "sendfile moved %zu bytes through the connection, echo sha256 %s",
	      total, h);
	close(fd);
	close(f);
}

static void do_splice(void)
{
	size_t total = io_bytes() / 10;
	int fd = io_connect(io_port(NULL));
	int p[2];
	if (fd < 0 || pipe(p) != 0)
		return;
	uint64_t off = 0;
	bool ok = true;
	while (ok && off < total) {
		size_t n = total - off < 16384 ? total - off : 16384;
		io_fill(b, off, n);
		ok = io_write_all(p[1], b, n);
		size_t moved = 0;
		while (ok && moved < n) {
			ssize_t r = splice(p[0], NULL, fd, NULL, n - moved, 0);
			ok = r > 0;
			moved += r > 0 ? (size_t)r : 0;
		}
		ok = ok && io_read_all(fd, b, n) && io_verify(b, off, n);
		off += n;
	}
	CHECK(ok, "splice from a pipe moved %zu bytes through the connection", total);
	close(p[0]);
	close(p[1]);
	close(fd);
}

/* A socket as the source: the kernel refuses sendfile and splice from
 * one socket to another (EINVAL), and the source keeps its bytes. */
static void do_socket_source(void)
{
	static const char mark[] = "socket-source-mark";
	int dst = io_connect(io_port(NULL)), src = io_connect(io_port(NULL));
	char got[sizeof mark];
	if (dst < 0 || src < 0)
		return;
	bool ok = io_write_all(src, mark, sizeof mark - 1);
	struct pollfd pfd = {.fd = src, .events = POLLIN};
	ok = ok && poll(&pfd, 1, 10000) == 1; /* its echo is waiting */
	errno = 0;
	ssize_t r = sendfile(dst, src, NULL, sizeof mark - 1);
	CHECK(r < 0 && errno == EINVAL, "sendfile from a socket: -1 EINVAL (got %zd, %s)",
	      r, strerror(errno));
	errno = 0;
	r = splice(src, NULL, dst, NULL, sizeof mark - 1, 0);
	CHECK(r < 0 && errno == EINVAL, "splice from a socket to a socket: -1 EINVAL (got %zd, %s)",
	      r, strerror(errno));
	ok = ok && io_read_all(src, got, sizeof mark - 1) &&
	     memcmp(got, mark, sizeof mark - 1) == 0;
	CHECK(ok, "the source socket still has all its bytes");
	close(src);
	close(dst);
}

static const struct io_case cases[] = {
	IO_CASE("sendfile", do_sendfile), IO_CASE("splice", do_splice),
	IO_CASE("socket-source", do_socket_source),
	{0},
};

int main(int argc, char **argv)
{
	io_init(argc, argv);
	io_run(cases);
	return io_summary();
}
