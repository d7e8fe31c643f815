/* Nagle around the handshake: see tls_nodelay.h. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "tls_nodelay.h"

static const struct ts_engine_io *io;

void ts_nodelay_bind(const struct ts_engine_io *tio)
{
	io = tio;
}

static int get(int fd)
{
	int v = 0;
	socklen_t l = sizeof v;
	if (io->getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l) < 0)
		return -1;
	return v != 0;
}

static int set(int fd, int v)
{
	return io->setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
}

bool ts_nodelay_step(int fd)
{
	return get(fd) == 0 && set(fd, 1) == 0;
}

enum ts_nodelay ts_nodelay_step_end(int fd, bool on, bool done)
{
	if (!on)
		return TS_NODELAY_NONE;
	(void)set(fd, 0); /* off again, as the program has it */
	return done ? TS_NODELAY_FIRST : TS_NODELAY_NONE;
}

void ts_nodelay_push(int fd)
{
	/* The program may have turned it on itself by now: leave it. */
	if (get(fd) == 0 && set(fd, 1) == 0)
		(void)set(fd, 0);
}

enum ts_nodelay ts_nodelay_sent(int fd, enum ts_nodelay st)
{
	if (st == TS_NODELAY_FIRST)
		ts_nodelay_push(fd);
	return TS_NODELAY_NONE;
}
