/* TCP_NODELAY and TCP_CORK as the program sees them. Under tlsshim a
 * program that leaves Nagle on gets TCP_NODELAY from us while its writes
 * fill whole records (src/common/nodelay.h); it must never see ours, its own
 * setting must be back before a small write, and its own setsockopt must
 * win. The kernel's value is read with a raw syscall, which no preload
 * sees; on a plain socket it always equals the program's (validation). */
#include "iotest.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BIG (256 * 1024)

static int opt(int fd, int o)
{
	int v = -1;
	socklen_t l = sizeof v;
	if (getsockopt(fd, IPPROTO_TCP, o, &v, &l) < 0)
		return -1;
	return v != 0;
}

static int kernel_opt(int fd, int o)
{
	int v = -1;
	socklen_t l = sizeof v;
	if (syscall(SYS_getsockopt, fd, IPPROTO_TCP, o, &v, &l) < 0)
		return -1;
	return v != 0;
}

static bool set(int fd, int o, int v)
{
	return setsockopt(fd, IPPROTO_TCP, o, &v, sizeof v) == 0;
}

static unsigned char b[BIG];

/* Write n bytes of the stream at *off and read their echo back. */
static bool echo(int fd, uint64_t *off, size_t n)
{
	io_fill(b, *off, n);
	if (!io_write_all(fd, b, n) || !io_read_all(fd, b, n) ||
	    !io_verify(b, *off, n))
		return false;
	*off += n;
	return true;
}

static void nagle_large(int fd)
{
	uint64_t off = 0;
	CHECK(opt(fd, TCP_NODELAY) == 0, "Nagle on after connect");
	CHECK(echo(fd, &off, 100), "small write echoed");
	CHECK(kernel_opt(fd, TCP_NODELAY) == 0,
	      "kernel: Nagle on after a small write");
	CHECK(echo(fd, &off, BIG), "large write echoed");
	CHECK(opt(fd, TCP_NODELAY) == 0,
	      "the program still sees its Nagle after a large write");
	CHECK(kernel_opt(fd, TCP_NODELAY) == (io_tls() ? 1 : 0),
	      "kernel: TCP_NODELAY %s after a large write",
	      io_tls() ? "on (ours)" : "off");
	CHECK(echo(fd, &off, 10), "small write after large echoed");
	CHECK(kernel_opt(fd, TCP_NODELAY) == 0,
	      "kernel: the program's Nagle is back for a small write");
	CHECK(echo(fd, &off, BIG) && echo(fd, &off, BIG),
	      "large writes again");
	CHECK(kernel_opt(fd, TCP_NODELAY) == (io_tls() ? 1 : 0),
	      "kernel: ours again for large writes");
}

static void program_nodelay(int fd)
{
	uint64_t off = 0;
	CHECK(echo(fd, &off, BIG), "large write echoed");
	/* Setting what the program believes is already set still counts:
	 * from now on the program decides. */
	CHECK(set(fd, TCP_NODELAY, 0), "setsockopt(TCP_NODELAY, 0)");
	CHECK(kernel_opt(fd, TCP_NODELAY) == 0,
	      "kernel: the program's explicit 0 holds at once");
	CHECK(echo(fd, &off, BIG), "large write echoed");
	CHECK(kernel_opt(fd, TCP_NODELAY) == 0,
	      "kernel: a program that chose Nagle keeps it for large writes");
	CHECK(set(fd, TCP_NODELAY, 1) && opt(fd, TCP_NODELAY) == 1,
	      "the program turns TCP_NODELAY on and sees it");
	CHECK(echo(fd, &off, 10), "small write echoed");
	CHECK(kernel_opt(fd, TCP_NODELAY) == 1,
	      "kernel: the program's TCP_NODELAY survives a small write");
}

static void program_cork(int fd)
{
	uint64_t off = 0;
	CHECK(echo(fd, &off, BIG), "large write echoed");
	CHECK(set(fd, TCP_CORK, 1), "setsockopt(TCP_CORK, 1)");
	CHECK(opt(fd, TCP_CORK) == 1 && kernel_opt(fd, TCP_CORK) == 1,
	      "corked");
	CHECK(kernel_opt(fd, TCP_NODELAY) == 0,
	      "kernel: ours is off once the program corks");
	io_fill(b, off, 10);
	CHECK(io_write_all(fd, b, 10), "small write while corked");
	/* (the kernel lets corked data go after 200 ms) */
	CHECK(!io_wait_in(fd, 100), "a corked small write stays in the kernel");
	CHECK(set(fd, TCP_CORK, 0), "uncork");
	CHECK(io_read_all(fd, b, 10) && io_verify(b, off, 10),
	      "uncorking sends it; echoed");
}

/* Each subtest on a fresh connection. */
static void run(const char *name, void (*body)(int fd))
{
	if (!io_selected(name))
		return;
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	body(fd);
	close(fd);
}

int main(int argc, char **argv)
{
	io_init(argc, argv);
	run("nagle-large", nagle_large);
	run("program-nodelay", program_nodelay);
	run("program-cork", program_cork);
	return io_summary();
}
