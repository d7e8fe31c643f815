/* fd reuse: churn threads open and close sockets (TLS ones too), files,
 * pipes and socketpairs in a tight loop, and use each plain fd as the
 * kernel promises (a byte through a pipe, a byte through a socketpair, a
 * read of /dev/zero), while transfer threads echo verified payloads on
 * long-lived TLS connections. Stale TLS state applied to a reused fd number
 * shows up as a wrong byte, an error on a plain fd, or a corrupted echo. */


#define _GNU_SOURCE
#include <signal.h>

#include "stress.h"

static int port;
static long rounds;
static volatile int stop;

static void plain_checks(unsigned seed)
{
	int p[2], sp[2], fd;
	unsigned char b = (unsigned char)seed, r = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		FAIL("pipe: %s", strerror(errno));
	if (write(p[1], &b, 1) != 1 || read(p[0], &r, 1) != 1 || r != b)
		FAIL("pipe fds %d/%d: byte lost or changed (%s)", p[0], p[1],
		     strerror(errno));
	close(p[0]);
	close(p[1]);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		FAIL("socketpair: %s", strerror(errno));
	if (send(sp[0], &b, 1, 0) != 1 || recv(sp[1], &r, 1, 0) != 1 ||
	    r != b)
		FAIL("socketpair fds %d/%d: byte lost or changed (%s)", sp[0],
		     sp[1], strerror(errno));
	close(sp[0]);
	close(sp[1]);
	fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	r = 1;
	if (fd < 0 || read(fd, &r, 1) != 1 || r != 0)
		FAIL("/dev/zero fd %d: %s", fd, strerror(errno));
	close(fd);
	/* A TCP socket that is never connected: plain errno. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		FAIL("socket: %s", strerror(errno));
	if (write(fd, &b, 1) != -1 || (errno != EPIPE && errno != ENOTCONN))
		FAIL("unconnected socket fd %d: write gave %s", fd,
		     strerror(errno));
	close(fd);
}

static void *churn(void *arg)
{
	unsigned seed = (unsigned)(intptr_t)arg;
	for (long i = 0; i < rounds; i++) {
		plain_checks(seed + (unsigned)i);
		if (i % 8 == 0) {
			/* A short TLS connection: its fd number is reused
			 * by the plain fds of the next round. */
			int fd = dial(port);
			unsigned char b = (unsigned char)i, r;
			if (fd < 0)
				FAIL("connect: %s", strerror(errno));
			write_all(fd, &b, 1);
			read_exact(fd, &r, 1);
			if (r != b)
				FAIL("short TLS echo on fd %d", fd);
			close(fd);
		}
	}
	return NULL;
}

static void *transfer(void *arg)
{
	uint64_t id = (uint64_t)(intptr_t)arg, pos = 0;
	unsigned char out[4096], in[4096];
	int fd = dial(port);

	if (fd < 0)
		FAIL("connect: %s", strerror(errno));
	while (!stop) {
		for (size_t i = 0; i < sizeof out; i++)
			out[i] = pattern(id, pos + i);
		write_all(fd, out, sizeof out);
		read_exact(fd, in, sizeof in);
		if (memcmp(in, out, sizeof in))
			FAIL("transfer %d fd %d: echo differs at offset %llu",
			     (int)id, fd, (unsigned long long)pos);
		pos += sizeof out;
	}
	close(fd);
	return NULL;
}

int main(void)
{
	int nchurn = (int)env_long("STRESS_CHURN_THREADS", 4);
	int nxfer = (int)env_long("STRESS_XFER_THREADS", 4);
	pthread_t c[64], x[64];

	signal(SIGPIPE, SIG_IGN); /* EPIPE, as on the unconnected socket */
	rounds = env_long("STRESS_ROUNDS", 2000);
	port = echo_port();
	watchdog(240);
	if (nchurn < 1 || nchurn > 64 || nxfer < 1 || nxfer > 64)
		FAIL("bad thread counts");
	for (int i = 0; i < nxfer; i++)
		if (pthread_create(&x[i], NULL, transfer, (void *)(intptr_t)i))
			FAIL("pthread_create");
	for (int i = 0; i < nchurn; i++)
		if (pthread_create(&c[i], NULL, churn,
		                   (void *)(intptr_t)(i * 7919)))
			FAIL("pthread_create");
	for (int i = 0; i < nchurn; i++)
		pthread_join(c[i], NULL);
	stop = 1;
	for (int i = 0; i < nxfer; i++)
		pthread_join(x[i], NULL);
	printf("ok: %d churn threads x %ld rounds beside %d transfers\n",
	       nchurn, rounds, nxfer);
	return 0;
}
