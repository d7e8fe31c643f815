/* fork: the child keeps using a connection the parent closed, and the
 * parent keeps using one the child closed.  When both use it, the kernel
 * would interleave two writers on one stream; a TLS session copied by
 * fork must never be used by two processes (they would reuse nonces), so
 * under tlsshim the second process's write fails (-1) instead of
 * corrupting the stream, and the first process's connection keeps
 * working.  IO_MODE=plain asserts the kernel's answer instead. */
#include "iotest.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static bool echo_n(int fd, size_t total)
{
	static unsigned char b[65536];
	uint64_t off = 0;
	while (off < total) {
		size_t n = total - off < sizeof b ? total - off : sizeof b;
		io_fill(b, off, n);
		if (!io_write_all(fd, b, n) || !io_read_all(fd, b, n) || !io_verify(b, off, n))
			return false;
		off += n;
	}
	return true;
}

static int child_status(pid_t pid)
{
	int st = 0;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void child_continues(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	CHECK(echo_n(fd, 1000), "parent uses the connection first");
	int go[2];
	if (pipe(go) != 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		/* starts once the parent has closed its copy */
		if (read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(echo_n(fd, io_bytes()) ? 0 : 1);
	}
	close(fd); /* the parent is done with it */
	CHECK(write(go[1], "g", 1) == 1, "parent closed its copy; child goes on");
	int st = child_status(pid);
	close(go[0]);
	close(go[1]);
	CHECK(st == 0, "child moved %zu bytes over the connection the parent closed (status %d)",
	      io_bytes(), st);
}

static void parent_continues(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		close(fd);
		_exit(0);
	}
	int st = child_status(pid);
	CHECK(st == 0, "child closed its copy and exited");
	CHECK(echo_n(fd, io_bytes()), "parent moved %zu bytes after the child closed", io_bytes());
	close(fd);
}

static void both(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	int go[2];
	if (pipe(go) != 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		if (read(go[0], &c, 1) != 1)
			_exit(3);
		signal(SIGPIPE, SIG_IGN);
		ssize_t r = send(fd, "child", 5, MSG_NOSIGNAL);
		if (r == 5)
			_exit(0);
		dprintf(1, "# child's write: %zd errno %d (%s)\n", r, errno, strerror(errno));
		_exit(r < 0 ? 1 : 2);
	}
	CHECK(echo_n(fd, 100000), "parent uses the connection after fork");
	CHECK(write(go[1], "g", 1) == 1, "let the child write");
	int st = child_status(pid);
	if (io_tls()) {
		CHECK(st == 1, "second process's write on the shared session fails with -1 (status %d)", st);
		CHECK(echo_n(fd, 100000), "the parent's stream is intact afterwards");
	} else {
		char t[8] = {0};
		CHECK(st == 0, "plain: the kernel lets the child write too (status %d)", st);
		CHECK(io_read_all(fd, t, 5) && memcmp(t, "child", 5) == 0, "plain: the child's bytes echoed");
		CHECK(echo_n(fd, 100000), "plain: the stream goes on");
	}
	close(go[0]);
	close(go[1]);
	close(fd);
}

static const struct io_case cases[] = {
	IO_CASE("child-continues", child_continues),
	IO_CASE("parent-continues", parent_continues), IO_CASE("both", both),
	{0},
};

int main(int argc, char **argv)
{
	io_init(argc, argv);
	io_run(cases);
	return io_summary();
}
