/* epoll on an upgraded fd: level-triggered after a partial read;
 * edge-triggered reading until EAGAIN through a >= 10 MB stream (never
 * left asleep with bytes pending, not woken again once drained);
 * EPOLLONESHOT disarms and re-arms; epoll_pwait and epoll_pwait2. */
#include "iotest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum w { W_WAIT, W_PWAIT, W_PWAIT2 };

static int ewait(enum w w, int ep, int ms, uint32_t *ev)
{
	struct epoll_event e[4];
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	int r;
	do {
		if (w == W_WAIT)
			r = epoll_wait(ep, e, 4, ms);
		else if (w == W_PWAIT)
			r = epoll_pwait(ep, e, 4, ms, NULL);
		else
			r = epoll_pwait2(ep, e, 4, &ts, NULL);
	} while (r < 0 && errno == EINTR);
	if (r > 0 && ev)
		*ev = e[0].events;
	return r;
}

static void lt(int w, const char *name)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0, "%s: EPOLL_CTL_ADD", name);
	CHECK(ewait(w, ep, 0, NULL) == 0, "%s: nothing ready yet", name);
	if (io_record_read1(fd)) {
		uint32_t ev = 0;
		int r = ewait(w, ep, 3000, &ev);
		CHECK(r == 1 && (ev & EPOLLIN), "%s: EPOLLIN after reading 1 byte of a record (%d)", name, r);
		r = ewait(w, ep, 3000, &ev);
		CHECK(r == 1 && (ev & EPOLLIN), "%s: level-triggered: still EPOLLIN (%d)", name, r);
		io_record_rest(fd);
	}
	CHECK(ewait(w, ep, 0, NULL) == 0, "%s: drained, nothing ready", name);
	close(ep);
	close(fd);
}

#define CH 65536
static unsigned char wb[CH], rb[CH];

static void et(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	int ep = epoll_create1(0);
	CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "O_NONBLOCK");
	struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0, "EPOLL_CTL_ADD EPOLLET");
	size_t total = io_bytes();
	struct sha256 sw, sr;
	sha256_init(&sw);
	sha256_init(&sr);
	uint64_t off = 0;
	int round = 0, spurious = 0, eagain_reads = 0;
	bool ok = true;
	while (ok && off < total) {
		size_t n = total - off < CH ? total - off : CH;
		io_fill(wb, off, n);
		sha256_update(&sw, wb, n);
		size_t put = 0;
		while (put < n) {
			ssize_t r = write(fd, wb + put, n - put);
			if (r > 0) {
				put += (size_t)r;
				continue;
			}
			if (r < 0 && errno == EAGAIN) {
				struct pollfd p = {.fd = fd, .events = POLLOUT};
				if (poll(&p, 1, 5000) == 1)
					continue;
			}
			ok = CHECK(0, "nonblocking write at %llu", (unsigned long long)off);
			break;
		}
		size_t got = 0;
		while (ok) {
			/* an edge: read until EAGAIN, in pieces smaller than a record */
			ssize_t r = read(fd, rb, 4000);
			if (r > 0) {
				sha256_update(&sr, rb, (size_t)r);
				got += (size_t)r;
				continue;
			}
			if (r < 0 && errno == EAGAIN) {
				eagain_reads++;
				if (got == n)
					break; /* drained */
				uint32_t ev = 0;
				if (ewait(W_WAIT, ep, 5000, &ev) != 1) {
					ok = CHECK(0, "EPOLLET: asleep with %zu of %zu bytes still due at %llu",
						   n - got, n, (unsigned long long)off);
				}
				continue;
			}
			ok = CHECK(0, "read at %llu returned %zd", (unsigned long long)(off + got), r);
		}
		/* drained to EAGAIN: no new edge must come (checked now and then) */
		if (ok && round % 32 == 0 && ewait(W_WAIT, ep, 50, NULL) != 0)
			spurious++;
		off += n;
		round++;
	}
	unsigned char a[32], b[32];
	char ha[65];
	sha256_final(&sw, a);
	sha256_final(&sr, b);
	io_hex(b, ha);
	CHECK(ok && memcmp(a, b, 32) == 0, "EPOLLET: %zu bytes read until EAGAIN each round, sha256 %s",
	      total, ha);
	CHECK(spurious == 0, "EPOLLET: no wakeup after draining to EAGAIN (%d spurious)", spurious);
	close(ep);
	close(fd);
}

static void oneshot(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	int ep = epoll_create1(0);
	struct epoll_event e = {.events = EPOLLIN | EPOLLONESHOT, .data.fd = fd};
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0, "EPOLL_CTL_ADD EPOLLONESHOT");
	static unsigned char b[IO_REC];
	io_fill(b, 0, IO_REC);
	io_write_all(fd, b, IO_REC);
	uint32_t ev = 0;
	CHECK(ewait(W_WAIT, ep, 5000, &ev) == 1 && (ev & EPOLLIN), "first EPOLLIN");
	CHECK(io_read_all(fd, b, 1) && io_verify(b, 0, 1), "read 1 byte");
	CHECK(ewait(W_WAIT, ep, 100, NULL) == 0, "one-shot: disarmed after the event");
	e.events = EPOLLIN | EPOLLONESHOT;
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e) == 0, "EPOLL_CTL_MOD re-arms");
	ev = 0;
	int r = ewait(W_WAIT, ep, 3000, &ev);
	CHECK(r == 1 && (ev & EPOLLIN), "re-armed: EPOLLIN for the pending bytes (%d)", r);
	io_record_rest(fd);
	e.events = EPOLLIN | EPOLLONESHOT;
	epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
	CHECK(ewait(W_WAIT, ep, 100, NULL) == 0, "re-armed and drained: nothing");
	close(ep);
	close(fd);
}

static const struct io_case cases[] = {
	IO_CASE_WITH("lt", lt, W_WAIT, "epoll_wait"),
	IO_CASE_WITH("pwait", lt, W_PWAIT, "epoll_pwait"),
	IO_CASE_WITH("pwait2", lt, W_PWAIT2, "epoll_pwait2"),
	IO_CASE("et", et), IO_CASE("oneshot", oneshot),
	{0},
};

int main(int argc, char **argv)
{
	io_init(argc, argv);
	io_run(cases);
	return io_summary();
}
