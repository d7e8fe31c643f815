/* Inside the engine: what its files share. Only libtlsshim-engine.so uses
 * this; it links GnuTLS.
 *
 * The engine by concern: tls_engine.c (the table of struct ts_engine, the
 * exported entry points), tls_session.c (a session's life: create,
 * handshake and what is judged after it, destroy), tls_io.c (its I/O),
 * tls_close.c (its end), tls_keylog.c, tls_probe.c (--probe), tls_cred.c
 * (a rule's credentials), tls_verify.c (what is verified after GnuTLS),
 * tls_cache.c (resumption); Nagle around the handshake is in
 * src/common/nodelay.c. */
#ifndef TS_TLS_H
#define TS_TLS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>

#include "engine.h"
#include "tls_cache.h"
#include "tls_cred.h"
#include "nodelay.h"
#include "tls_verify.h"

#define TS_TLS_EXPORT __attribute__((visibility("default")))

/* The libc functions handed to ts_engine_init: the transport, and every
 * call of a name the preload hooks that the engine makes for itself
 * (never the preload's hooks). */
extern struct ts_engine_io ts_tls_io;

struct ts_tls {
	/* First: GnuTLS has one user pointer per session; tls_cache.c sets
	 * it to &ckey, which is then also the address of this ts_tls. */
	struct ts_tls_cache_key ckey; /* resumption (tls_cache.c) */
	gnutls_session_t s;
	/* Held by every GnuTLS call on the session, released only while the
	 * transport waits in the kernel (see ts_tls_enter()). */
	pthread_mutex_t lock;
	int fd;           /* the fd the session was created on (handshake) */
	bool queued;      /* a record is encrypted but not yet sent */
	bool bye_sent;
	/* The first byte of application data a drain at close or shutdown
	 * decrypted (it reads one byte to learn what a record holds): the
	 * next recv returns it first. */
	bool has_held;
	unsigned char held;
	/* How the stream ended when such a drain met its end (GnuTLS's code
	 * and the transport's errno): the next recv reports it as GnuTLS
	 * reported it to the drain. 0: not met. */
	int end_ret, end_errno;
	/* The first bytes the server sent: a refusal names them when they
	 * are not TLS. */
	unsigned char first[32];
	unsigned nfirst;
	/* GnuTLS keeps pointers to these until the handshake verifies. */
	gnutls_typed_vdata_st vdata[2];
	enum ts_nodelay nodelay; /* Nagle around the handshake */
	char verify_name[256];
	bool server;              /* tlsshim serves: an accept rule */
	char identity[256];       /* the client the rule allowed */
	char reason[512];
	/* The alert a refusal after the handshake sends (0: bad_certificate). */
	int refuse_alert;
	const struct ts_rule *rule;
	struct ts_cred *cred;     /* the rule's credentials (a reference) */
	struct ts_verify verify;  /* the chain GnuTLS verified (tls_verify.c) */
	int keylog_fd;    /* keylog-file, opened per session; -1: none */
	/* Where the transport goes instead of the fd of the call while the
	 * program's number names something else (exec's swap); -1: none. */
	_Atomic int io_fd;
};
_Static_assert(offsetof(struct ts_tls, ckey) == 0,
               "the session pointer is both the ts_tls and its cache key");

/* One engine call's transport: the fd and flags the program's call asked
 * for, and what the kernel answered. It lives on the caller's stack and
 * is found through a thread-local pointer, so that when one thread sends
 * while another receives on the same session, each transport callback
 * sees its own thread's call. */
struct ts_tls_xfer {
	int fd;
	int send_flags;   /* MSG_* for pushes */
	int recv_flags;   /* MSG_* for pulls */
	int pull_errno;   /* errno of the last failed pull, 0 if none */
	int push_errno;
	bool pull_eagain; /* the transport itself said EAGAIN */
	/* What this thread had under way when it entered (a signal
	 * handler's call): back in place at leave. */
	struct ts_tls_xfer *prev;
	struct ts_tls *prev_holding;
};
extern __thread struct ts_tls_xfer *ts_tls_cur;
/* The session whose lock this thread holds (none while a transport call
 * waits in the kernel with it dropped). */
extern __thread struct ts_tls *ts_tls_holding;

/* GnuTLS lets one thread send while another receives, but a TLS 1.3
 * KeyUpdate then races: updating one direction's keys copies the whole
 * record state into a new epoch, and a receive in progress in the other
 * thread (which looked its epoch up before waiting for the record) goes
 * on in the old one; the next record fails with "Decryption has failed"
 * (tests/stress/stress_keyupdate.c). So every GnuTLS call runs under the
 * session's lock, and
 *  - a send may wait in the kernel with the lock dropped (its record is
 *    encrypted before it waits, so a copy made meanwhile is current);
 *  - a receive never waits inside GnuTLS once the process has threads:
 *    its pull does not block, and the wait happens outside GnuTLS with
 *    the lock dropped, in a 1-byte MSG_PEEK recv that blocks exactly as
 *    the program's own recv would (SO_RCVTIMEO, SA_RESTART, EINTR).
 * A single-threaded process cannot interleave, and keeps the one
 * blocking recv per wait. */
/* false: this thread holds t's lock already, in the middle of a GnuTLS
 * call on t (a signal handler's call): the caller answers TS_TLS_INTR
 * rather than wait for its own thread or step GnuTLS inside itself. */
static inline bool ts_tls_enter(struct ts_tls *t, struct ts_tls_xfer *x)
{
	if (ts_tls_holding == t)
		return false;
	pthread_mutex_lock(&t->lock);
	x->prev = ts_tls_cur;
	x->prev_holding = ts_tls_holding;
	ts_tls_cur = x;
	ts_tls_holding = t;
	return true;
}

static inline void ts_tls_leave(struct ts_tls *t)
{
	struct ts_tls_xfer *x = ts_tls_cur;
	ts_tls_cur = x ? x->prev : NULL;
	ts_tls_holding = x ? x->prev_holding : NULL;
	pthread_mutex_unlock(&t->lock);
}

int ts_tls_intr(void);

/* Around a transport wait in the kernel: the lock is dropped, so a
 * signal handler's call may take it meanwhile. */
static inline void ts_tls_drop(struct ts_tls *t)
{
	ts_tls_holding = NULL;
	pthread_mutex_unlock(&t->lock);
}

static inline void ts_tls_retake(struct ts_tls *t)
{
	pthread_mutex_lock(&t->lock);
	ts_tls_holding = t;
}

/* The socket a transport call uses: read at every call, so one waiting
 * across a change of io_fd goes on with the socket itself. */
static inline int ts_tls_xfd(struct ts_tls *t, const struct ts_tls_xfer *x)
{
	int fd = atomic_load_explicit(&t->io_fd, memory_order_acquire);
	return fd >= 0 ? fd : x->fd;
}

/* The struct ts_engine functions (tls_engine.c's table), by file. */
struct ts_tls *ts_tls_create(const struct ts_tls_params *p, char *err,
                             size_t errlen);
int ts_tls_handshake(struct ts_tls *t, char *err, size_t errlen);
const char *ts_tls_reason(struct ts_tls *t);
void ts_tls_identity(struct ts_tls *t, char *buf, size_t len);
void ts_tls_describe(struct ts_tls *t, char *buf, size_t len);
void ts_tls_destroy(struct ts_tls *t);
void ts_tls_child_reset(struct ts_tls *t);
void ts_tls_set_io_fd(struct ts_tls *t, int fd);
ssize_t ts_tls_send(struct ts_tls *t, int fd, const void *buf, size_t len,
                    int flags);
int ts_tls_flush(struct ts_tls *t, int fd, int flags);
ssize_t ts_tls_recv(struct ts_tls *t, int fd, void *buf, size_t len,
                    int flags);
size_t ts_tls_pending(struct ts_tls *t);
bool ts_tls_send_queued(struct ts_tls *t);
int ts_tls_close_notify(struct ts_tls *t, int fd);
bool ts_tls_close_drain(struct ts_tls *t, int fd, bool unread,
                        int timeout_ms);
int ts_tls_close_linger(struct ts_tls *t, int fd, bool closing,
                        int timeout_ms);

/* tls_io.c, for the session's other files. */
/* GnuTLS does its I/O through these (pull, push, pull-timeout). */
void ts_tls_transport_set(struct ts_tls *t);
/* t->reason for GnuTLS error ret: its verification text, the alert, the
 * transport's errno (within ts_tls_enter). */
void ts_tls_set_reason(struct ts_tls *t, int ret);
/* errno for a fatal session error, as close to the kernel's as we can. */
int ts_tls_fatal_errno(int ret);
/* Flush a queued record through ts_tls_cur's fd and flags. */
int ts_tls_flush_locked(struct ts_tls *t);

/* tls_keylog.c: the key log function on t's session (keylog-file, else
 * one that writes nothing). 0, or -1 with the reason. */
int ts_tls_keylog_set(struct ts_tls *t, char *err, size_t errlen);

#endif
