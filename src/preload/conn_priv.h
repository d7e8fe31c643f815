/* Inside the connection layer (src/preload/conn*.c): what its files share.
 * The hooks see conn.h and conn_async.h only. */
#ifndef TS_CONN_PRIV_H
#define TS_CONN_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "clock.h"
#include "conn.h"
#include "engine.h"
#include "engine_load.h"

/* The engine: every connection has it (it is loaded before the first one
 * is made, and never unloaded). */
static inline const struct ts_engine *ts_conn_eng(void)
{
	return ts_engine_loaded();
}

/* The lines that name a connection: its failure (the one error line: rule,
 * destination, name, the reason, and the TLS port when it is another; c
 * may be NULL before the conn exists), and its verification (info). */
void ts_conn_say_failed(const char *rule, const char *dest, const char *name,
                        const char *why, const struct ts_conn *c);
void ts_conn_say_verified(struct ts_conn *c);

/* Wait for events on fd until deadline (ts_now_ms): 1 ready (or an error
 * the next I/O call reports), 0 timed out. Signals do not cut it short:
 * the deadline bounds it. */
int ts_conn_wait_fd(int fd, short events, long long deadline);

/* Leave fd unconnected (connect to AF_UNSPEC), as a refused connect does:
 * nothing the program writes afterwards can reach the server. errno is
 * kept. */
void ts_conn_disconnect(int fd);

/* The connection locks this thread holds, in the data path and the
 * handshake step. Another call of this thread that needs one of them can
 * only come from a signal handler: it fails with EINTR rather than wait
 * for its own thread. */
#define TS_CONN_HELD_MAX 4
extern __thread pthread_mutex_t *ts_conn_held[TS_CONN_HELD_MAX];

static inline bool ts_conn_holds(const pthread_mutex_t *l)
{
	for (int i = 0; i < TS_CONN_HELD_MAX; i++)
		if (ts_conn_held[i] == l)
			return true;
	return false;
}

static inline void ts_conn_held_add(pthread_mutex_t *l)
{
	for (int i = 0; i < TS_CONN_HELD_MAX; i++)
		if (!ts_conn_held[i]) {
			ts_conn_held[i] = l;
			return;
		}
}

static inline void ts_conn_unlock(pthread_mutex_t *l)
{
	for (int i = 0; i < TS_CONN_HELD_MAX; i++)
		if (ts_conn_held[i] == l)
			ts_conn_held[i] = NULL;
	pthread_mutex_unlock(l);
}

static inline void ts_conn_lock(pthread_mutex_t *l)
{
	pthread_mutex_lock(l);
	ts_conn_held_add(l);
}

/* The number fd names a socket whose peer is gone from now on (reads see
 * EOF, writes EPIPE), its flags kept: never the raw connection. */
void ts_conn_make_dead(int fd);

/* The data path (conn_io.c), for readiness and closing. */
/* The errno of a failed engine call (a ts_tls_rc), after marking the
 * connection broken for a fatal one. */
int ts_conn_engine_errno(struct ts_conn *c, ssize_t r);
/* Decrypt into the peek buffer until it holds want bytes; only the first
 * read may wait (unless nb). 0, or a negative ts_tls_rc. recv_lock held. */
int ts_conn_peek_fill(struct ts_conn *c, int fd, size_t want, bool nb);

/* The hot list (conn_async.c): connections handshaking asynchronously or
 * failed with SO_ERROR unreported, for the epoll translation
 * (conn_poll.c). A snapshot holds a reference on each. */
#define TS_CONN_SNAP_MAX 256 /* hot conns looked at per wait, on the stack */
size_t ts_conn_hot_snapshot(struct ts_conn **buf, struct ts_conn ***arr);
void ts_conn_hot_put(struct ts_conn **buf, struct ts_conn **arr, size_t n);
/* The kernel registrations of c's fd follow its handshake (conn_async.c). */
uint32_t ts_conn_hs_interest(const struct ts_conn *c);
void ts_conn_sync_regs(struct ts_conn *c);

#endif
