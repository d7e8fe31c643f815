/* Closing a session (docs/design.md, "Closing"): the last close of an
 * fd number, shutdown, and exit without close. The peer's own records
 * are consumed, close_notify goes out, and our last bytes are waited for,
 * each by the process that owns that direction since fork. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include "conn.h"
#include "conn_async.h"
#include "conn_priv.h"
#include "log.h"
#include "real.h"

/* Queued records and close_notify go out before the FIN, as the kernel
 * sends buffered data before it: wait for room, bounded by the handshake
 * timeout so a peer that stopped reading cannot hang close(). Called with
 * send_lock held, by the owner of the writes; kfd names the socket. */
void ts_conn_close_notify(struct ts_conn *c, int kfd)
{
	long long deadline = ts_now_ms() +
	                     ts_state.policy->handshake_timeout_ms;
	for (;;) {
		int r = ts_conn_eng()->close_notify(c->tls, kfd);
		if (r == TS_TLS_OK)
			return;
		if (r == TS_TLS_WANT_WRITE && !ts_conn_wait_fd(kfd, POLLOUT, deadline)) {
			ts_warn("%s %s (%s): peer not reading; closing with "
			        "data unsent",
			        c->rule->name, c->dest, c->name);
			return;
		}
		if (r == TS_TLS_ERR)
			return;
	}
}

/* After close_notify: until our last bytes are out (bounded), take the
 * peer's own records (TLS 1.3 tickets, KeyUpdate) as they come: one that
 * arrives after the close, or lies unread at it, makes the kernel reset
 * the connection and drop those bytes (docs/design.md, "Closing"). Called
 * with recv_lock held. */
static void await_sent(struct ts_conn *c, int fd, bool closing)
{
	int ms = (int)ts_state.policy->handshake_timeout_ms;

	if (ts_conn_eng()->close_linger(c->tls, fd, closing, ms) != TS_TLS_OK)
		ts_warn("%s %s (%s): our last bytes still unsent after %d ms",
		        c->rule->name, c->dest, c->name, ms);
}

/* The last close of a session here, with send_lock held; kfd names the
 * socket. What this process owns it ends: the reads are drained (a
 * thread inside a read takes the peer's records itself: then nothing is
 * drained here), close_notify goes out on the writes, and our last bytes
 * are waited for while the peer's records are taken. */
static void close_session(struct ts_conn *c, int kfd)
{
	int ms = (int)ts_state.policy->handshake_timeout_ms;
	bool writes = ts_conn_owned(c, TS_DIR_WRITE, false);
	bool drain = pthread_mutex_trylock(&c->recv_lock) == 0;

	if (drain && !ts_conn_owned(c, TS_DIR_READ, false)) {
		pthread_mutex_unlock(&c->recv_lock);
		drain = false;
	}
	/* A reset (asked for, or data left unread): no close_notify. */
	if (!drain || !ts_conn_eng()->close_drain(c->tls, kfd, c->peek_len > 0, ms)) {
		if (writes && !c->wr_shut)
			ts_conn_close_notify(c, kfd);
		if (drain && writes)
			await_sent(c, kfd, true);
	}
	if (drain)
		pthread_mutex_unlock(&c->recv_lock);
}

int ts_conn_shutdown(struct ts_conn *c, int fd, int how)
{
	/* The peer learns of our half-close from close_notify first, then
	 * from the FIN; both after the handshake (a FIN before it would end
	 * the session before it began). */
	if (how == SHUT_WR || how == SHUT_RDWR) {
		ts_conn_async_finish(c);
		pthread_mutex_lock(&c->send_lock);
		if (!ts_fd_holds(fd, &c->ent)) {
			pthread_mutex_unlock(&c->send_lock);
			return TS_CONN_RETRY;
		}
		if (c->state == TS_CONN_READY && !c->wr_shut &&
		    ts_conn_owned(c, TS_DIR_WRITE, true)) {
			ts_conn_close_notify(c, fd);
			/* A program may exit without close() (socat does). */
			if (pthread_mutex_trylock(&c->recv_lock) == 0) {
				if (ts_conn_owned(c, TS_DIR_READ, false))
					await_sent(c, fd, false);
				pthread_mutex_unlock(&c->recv_lock);
			}
		}
		pthread_mutex_unlock(&c->send_lock);
	}
	int rv = REAL(shutdown)(fd, how);
	if (rv < 0)
		return rv;
	if (how == SHUT_RD || how == SHUT_RDWR)
		atomic_store(&c->rd_shut, true);
	if (how == SHUT_WR || how == SHUT_RDWR) {
		pthread_mutex_lock(&c->send_lock);
		c->wr_shut = true;
		pthread_mutex_unlock(&c->send_lock);
	}
	return 0;
}

bool ts_conn_drop_fd(struct ts_conn *c, int kfd)
{
	if (atomic_fetch_sub(&c->nfds, 1) != 1)
		return false; /* another fd still names the session */
	/* close_notify goes out now, while kfd still names this socket; a
	 * thread still inside a call drops the last reference later. */
	pthread_mutex_lock(&c->send_lock);
	if (c->state == TS_CONN_READY && kfd >= 0)
		close_session(c, kfd);
	if (c->state == TS_CONN_READY)
		ts_info("%s %s (%s): closed, %llu bytes out, %llu bytes in",
		        c->rule->name, c->dest, c->name,
		        (unsigned long long)c->bytes_out,
		        (unsigned long long)c->bytes_in);
	c->state = TS_CONN_BROKEN;
	c->broken_errno = EBADF;
	pthread_mutex_unlock(&c->send_lock);
	return true;
}

/* At exit the kernel closes what the program left open, as close() would
 * but without our hook: take the peer's records queued by then, as the
 * last close does (close_notify stays unsent: stdio flushes its streams
 * after this, and fdopen() streams on our fds write through the session).
 * Threads may still run: an fd busy in another call is left as it is. */
static void exit_one(int fd, struct ts_fdent *e, void *ctx)
{
	struct ts_conn *c = ts_conn_get(fd);

	(void)e;
	(void)ctx;
	if (!c)
		return;
	if (pthread_mutex_trylock(&c->send_lock) == 0) {
		bool writes = ts_conn_owned(c, TS_DIR_WRITE, false);
		if (c->state == TS_CONN_READY &&
		    pthread_mutex_trylock(&c->recv_lock) == 0) {
			int ms = (int)ts_state.policy->handshake_timeout_ms;
			bool reads = ts_conn_owned(c, TS_DIR_READ, false);
			/* After shutdown(SHUT_WR) it also waits for our last
			 * bytes, as the close would. */
			if (reads &&
			    !ts_conn_eng()->close_drain(c->tls, fd, c->peek_len > 0, ms) &&
			    writes)
				await_sent(c, fd, true);
			/* The summary a close would have logged, once per
			 * session, by a process that used it. */
			if ((reads || writes) && !c->summarized) {
				c->summarized = true;
				ts_info("%s %s (%s): open at exit, %llu bytes "
				        "out, %llu bytes in", c->rule->name,
				        c->dest, c->name,
				        (unsigned long long)c->bytes_out,
				        (unsigned long long)c->bytes_in);
			}
			pthread_mutex_unlock(&c->recv_lock);
		}
		pthread_mutex_unlock(&c->send_lock);
	}
	ts_conn_put(c);
}

void ts_conn_exit(void)
{
	if (atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		ts_fd_foreach(0, ~0u, exit_one, NULL);
}
