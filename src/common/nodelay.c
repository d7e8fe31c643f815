/* Nagle around TLS: see nodelay.h. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "nodelay.h"

static const struct ts_sockopt_io *io;

void ts_nodelay_bind(const struct ts_sockopt_io *sio)
{
	io = sio;
}

/* The value of an IPPROTO_TCP flag option on fd, -1 if it cannot be read. */
static int get(int fd, int opt)
{
	int v = 0;
	socklen_t l = sizeof v;
	if (io->getsockopt(fd, IPPROTO_TCP, opt, &v, &l) < 0)
		return -1;
	return v != 0;
}

static int set_nodelay(int fd, int v)
{
	return io->setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
}

/* Around the handshake ------------------------------------------------- */

bool ts_nodelay_step(int fd)
{
	return get(fd, TCP_NODELAY) == 0 && set_nodelay(fd, 1) == 0;
}

enum ts_nodelay ts_nodelay_step_end(int fd, bool on, bool done)
{
	if (!on)
		return TS_NODELAY_NONE;
	(void)set_nodelay(fd, 0); /* off again, as the program has it */
	return done ? TS_NODELAY_FIRST : TS_NODELAY_NONE;
}

void ts_nodelay_push(int fd)
{
	/* The program may have turned it on itself by now: leave it. */
	if (get(fd, TCP_NODELAY) == 0 && set_nodelay(fd, 1) == 0)
		(void)set_nodelay(fd, 0);
}

enum ts_nodelay ts_nodelay_sent(int fd, enum ts_nodelay st)
{
	if (st == TS_NODELAY_FIRST)
		ts_nodelay_push(fd);
	return TS_NODELAY_NONE;
}

/* For large writes ----------------------------------------------------- */

enum {
	HELD = 1u,  /* we turned TCP_NODELAY on; the program has it off */
	KNOWN = 2u, /* the program's values below were read */
	PROG = 4u,  /* the program set TCP_NODELAY or TCP_CORK: hands off */
};

void ts_nagle_init(struct ts_nagle *n)
{
	atomic_init(&n->bits, 0);
	pthread_mutex_init(&n->lock, NULL);
}

void ts_nagle_destroy(struct ts_nagle *n)
{
	pthread_mutex_destroy(&n->lock);
}

void ts_nagle_child_reset(struct ts_nagle *n)
{
	pthread_mutex_init(&n->lock, NULL);
}

void ts_nagle_before_send(struct ts_nagle *n, int fd, size_t total)
{
	bool large = total >= TS_NAGLE_FULL;
	unsigned b = atomic_load_explicit(&n->bits, memory_order_relaxed);

	/* The common cases, without the lock: nothing changes. */
	if (large == ((b & HELD) != 0) || (b & PROG))
		return;
	pthread_mutex_lock(&n->lock);
	b = atomic_load_explicit(&n->bits, memory_order_relaxed);
	if (!(b & KNOWN)) {
		int nd = get(fd, TCP_NODELAY), cork = get(fd, TCP_CORK);
		b |= KNOWN | (nd != 0 || cork != 0 ? PROG : 0);
	}
	if (!(b & PROG)) {
		if (large && !(b & HELD) && set_nodelay(fd, 1) == 0)
			b |= HELD;
		else if (!large && (b & HELD)) {
			/* Even if it fails, the socket has gone back to the
			 * program (it may be gone): stop answering for it. */
			(void)set_nodelay(fd, 0);
			b &= ~HELD;
		}
	}
	atomic_store_explicit(&n->bits, b, memory_order_relaxed);
	pthread_mutex_unlock(&n->lock);
}

int ts_nagle_setsockopt(struct ts_nagle *n, int fd, int opt,
                        const void *val, socklen_t len)
{
	pthread_mutex_lock(&n->lock);
	int r = io->setsockopt(fd, IPPROTO_TCP, opt, val, len);
	if (r == 0 && (opt == TCP_NODELAY || opt == TCP_CORK)) {
		unsigned b = atomic_load_explicit(&n->bits,
		                                  memory_order_relaxed);
		/* Turning TCP_CORK on while ours is on would leave the
		 * socket uncorkable: give the program back its Nagle. */
		if (opt == TCP_CORK && (b & HELD))
			(void)set_nodelay(fd, 0);
		atomic_store_explicit(&n->bits, KNOWN | PROG,
		                      memory_order_relaxed);
	}
	pthread_mutex_unlock(&n->lock);
	return r;
}

int ts_nagle_getsockopt(struct ts_nagle *n, int fd, int opt, void *val,
                        socklen_t *len)
{
	pthread_mutex_lock(&n->lock);
	int r = io->getsockopt(fd, IPPROTO_TCP, opt, val, len);
	if (r == 0 && opt == TCP_NODELAY && val && len &&
	    (atomic_load_explicit(&n->bits, memory_order_relaxed) & HELD))
		memset(val, 0, *len);
	pthread_mutex_unlock(&n->lock);
	return r;
}
