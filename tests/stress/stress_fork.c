/* fork and the preload.
 *  1. fork during transfers: threads echo on their own TLS connections;
 *     the main thread forks repeatedly. Children either close every
 *     inherited connection and make a fresh one (echo verified), or just
 *     exit. The parent's transfers go on intact.
 *  2. fork while another thread is inside a hook: one thread sits in a
 *     blocking read() on a TLS connection (inside the hook, holding its
 *     receive lock), others connect/close in a loop (fd table, engine);
 *     each fork's child must be able to connect, echo and close at once:
 *     a lock held by a thread that does not exist in the child would hang
 *     it (the child has its own watchdog, and the parent bounds its wait).
 *  0. (first, deterministic) after a fork, parent and child each open a
 *     fresh connection, in the order child connects, parent connects and
 *     uses its own, child uses its own: each process owns the session it
 *     made itself. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>

#include "stress.h"

static int port;
static volatile int stop;

static void echo_once(int fd, uint64_t id, size_t len)
{
	unsigned char out[8192], in[8192];
	for (size_t i = 0; i < len; i++)
		out[i] = pattern(id, i);
	write_all(fd, out, len);
	read_exact(fd, in, len);
	if (memcmp(in, out, len))
		FAIL("pid %d fd %d: echo differs", (int)getpid(), fd);
}

static void *transfer(void *arg)
{
	uint64_t id = (uint64_t)(intptr_t)arg;
	int fd = dial(port);
	if (fd < 0)
		FAIL("connect: %s", strerror(errno));
	for (uint64_t n = 0; !stop; n++)
		echo_once(fd, id * 1000003 + n, 1 + (size_t)(n * 977 % 8192));
	close(fd);
	return NULL;
}

static void *blocked_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c;
	/* Blocks inside the read hook until the main thread's shutdown. */
	ssize_t n = read(fd, &c, 1);
	(void)n;
	return NULL;
}

static void *dialer(void *arg)
{
	(void)arg;
	while (!stop) {
		int fd = dial(port);
		if (fd < 0)
			FAIL("connect: %s", strerror(errno));
		echo_once(fd, 42, 100);
		close(fd);
	}
	return NULL;
}

/* The child: bounded by alarm(); a fresh connection must work. */
static void child(bool use)
{
	alarm(20);
	if (use) {
		int fd = dial(port);
		if (fd < 0) {
			fprintf(stderr, "child: connect: %s\n",
			        strerror(errno));
			_exit(1);
		}
		echo_once(fd, (uint64_t)getpid(), 4096);
		close(fd);
	}
	_exit(0);
}

static void wait_child(pid_t pid, const char *what)
{
	int st;
	for (int i = 0; i < 300; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
				FAIL("%s: child hung (deadlock)", what);
			if (!WIFEXITED(st) || WEXITSTATUS(st))
				FAIL("%s: child failed (status %#x)", what, st);
			return;
		}
		if (r < 0 && errno != EINTR)
			FAIL("waitpid: %s", strerror(errno));
		usleep(100000);
	}
	kill(pid, SIGKILL);
	FAIL("%s: child still running after 30 s (deadlock)", what);
}

static void own_sessions_after_fork(void)
{
	int c2p[2], p2c[2];
	char b = 0;
	int before = dial(port); /* a session made before the fork */

	if (before < 0)
		FAIL("connect: %s", strerror(errno));
	if (pipe(c2p) < 0 || pipe(p2c) < 0)
		FAIL("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(20);
		int fd = dial(port);
		if (fd < 0)
			FAIL("child: connect: %s", strerror(errno));
		if (write(c2p[1], &b, 1) != 1 || read(p2c[0], &b, 1) != 1)
			FAIL("child: pipe");
		/* The parent made a session of its own meanwhile. */
		echo_once(fd, 1, 1000);
		close(fd);
		_exit(0);
	}
	if (read(c2p[0], &b, 1) != 1)
		FAIL("parent: pipe");
	int fd = dial(port);
	if (fd < 0)
		FAIL("parent: connect: %s", strerror(errno));
	echo_once(fd, 2, 1000);
	if (write(p2c[1], &b, 1) != 1)
		FAIL("parent: pipe");
	wait_child(pid, "fresh sessions in parent and child after fork");
	close(fd);
	close(c2p[0]);
	close(c2p[1]);
	close(p2c[0]);
	close(p2c[1]);
	close(before);
}

int main(void)
{
	int nforks = (int)env_long("STRESS_FORKS", 40);
	pthread_t x[4], d[2], r;

	signal(SIGPIPE, SIG_IGN);
	port = echo_port();
	watchdog(240);

	own_sessions_after_fork();
	for (int i = 0; i < 4; i++)
		pthread_create(&x[i], NULL, transfer, (void *)(intptr_t)i);
	for (int i = 0; i < nforks; i++) {
		pid_t pid = fork();
		if (pid < 0)
			FAIL("fork: %s", strerror(errno));
		if (pid == 0) {
			/* Inherited sessions: the child closes them all
			 * (fds 3..1023 it does not know) or leaves them. */
			if (i % 2 == 0)
				for (int fd = 3; fd < 1024; fd++)
					close(fd);
			child(i % 2 == 0);
		}
		wait_child(pid, "fork during transfers");
	}
	stop = 1;
	for (int i = 0; i < 4; i++)
		pthread_join(x[i], NULL);

	stop = 0;
	int idle = dial(port);
	if (idle < 0)
		FAIL("connect: %s", strerror(errno));
	pthread_create(&r, NULL, blocked_reader, (void *)(intptr_t)idle);
	for (int i = 0; i < 2; i++)
		pthread_create(&d[i], NULL, dialer, NULL);
	usleep(100000);
	for (int i = 0; i < nforks; i++) {
		pid_t pid = fork();
		if (pid < 0)
			FAIL("fork: %s", strerror(errno));
		if (pid == 0)
			child(true);
		wait_child(pid, "fork while a thread is inside a hook");
	}
	stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(d[i], NULL);
	shutdown(idle, SHUT_RDWR);
	pthread_join(r, NULL);
	close(idle);
	printf("ok: %d forks during transfers, %d forks beside a blocked "
	       "reader and dialers\n", nforks, nforks);
	return 0;
}
