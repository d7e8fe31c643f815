/* Asynchronous connect: a matched connect on a non-blocking socket returns
 * EINPROGRESS at once and the TCP connect and TLS handshake advance inside
 * the program's own calls on the fd (poll family, epoll, send/recv,
 * getsockopt(SO_ERROR), connect again). No thread, no busy wait: between
 * the program's calls nothing happens.
 *
 * While a handshake is pending, readiness is translated: the program's
 * interest in the fd (POLLOUT: "connected") is replaced in the real wait by
 * what the handshake waits for, and the real wait's timeout is shortened
 * to the earliest handshake deadline. The fd reports POLLOUT only once the
 * peer is verified; a failure reports POLLOUT|POLLERR|POLLHUP and
 * SO_ERROR = ECONNREFUSED, with the usual one-line reason on stderr. */
#ifndef TS_CONN_ASYNC_H
#define TS_CONN_ASYNC_H

#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "clock.h"
#include "conn.h"

enum ts_async_phase {
	TS_ASYNC_PRE = 1, /* installed; the kernel connect not issued yet */
	TS_ASYNC_TCP,     /* kernel connect in progress */
	TS_ASYNC_TLS,     /* TLS handshake in progress */
};

/* Connections handshaking asynchronously or failed with SO_ERROR still
 * unreported. Zero in almost every process: the fast-path test. */
extern atomic_uint ts_async_hot;

/* From ts_conn_connect: install c in HANDSHAKING, then start the kernel
 * connect to target (for a blocking socket, the kernel's connect blocks
 * here). 0: under way (or TCP connected); -1: failed at once, reason in
 * why (the caller reports), c not installed. */
int ts_conn_async_start(struct ts_conn *c, const struct sockaddr *target,
                        socklen_t len, char *why, size_t whylen);

/* From ts_conn_accepted: c, an accepted connection on a server rule, is
 * installed in HANDSHAKING; its handshake runs in the program's first
 * calls on the fd, as a non-blocking connect's does (never in accept()).
 * -1: failed at once, reason in why, c not installed. */
int ts_conn_async_serve(struct ts_conn *c, char *why, size_t whylen);

/* A blocking connect whose handshake failed (reported and disconnected by
 * ts_conn_async_step): the connect() returns the error itself, so the
 * entry goes and no SO_ERROR is left to report. */
void ts_conn_async_abandon(struct ts_conn *c);

/* In a new process: the hot list's lock. */
void ts_conn_async_child_reset(void);

/* connect() on an fd whose conn exists: EALREADY while handshaking; the
 * kernel's answer once verified; the pending error after a failure, then a
 * fresh attempt. 1 when the caller should treat fd as not ours (purged). */
int ts_conn_async_reconnect(struct ts_conn *c, int fd,
                            const struct sockaddr *sa, socklen_t len,
                            int *result);

/* Advance a pending handshake without blocking. 0 verified, 1 pending,
 * -1 failed (or not an asynchronous connection in a usable state). */
int ts_conn_async_step(struct ts_conn *c);

/* The data path's gate: 0 when c may carry data (READY) or the data path
 * should report its failure (BROKEN), else -1 with errno EAGAIN while
 * handshaking. A blocking call (socket made blocking since connect, no
 * MSG_DONTWAIT) waits for the handshake instead. */
int ts_conn_async_gate(struct ts_conn *c, int flags);

/* The handshake to its end whatever the fd's mode, bounded by its
 * deadline: for calls that must come after it (shutdown's close_notify
 * and FIN). */
void ts_conn_async_finish(struct ts_conn *c);

/* getsockopt(fd, SOL_SOCKET, SO_ERROR). */
int ts_conn_async_so_error(struct ts_conn *c, int fd, void *val,
                           socklen_t *len);

/* Unlink from the hot list (conn_destroy). */
void ts_conn_async_unlist(struct ts_conn *c);

/* The translation for the wait hooks (src/preload/conn_poll.c).
 *
 * poll, around the real wait. prepare rewrites the events of
 * handshaking fds (saved in saved[i]) and returns the earliest deadline
 * (CLOCK_MONOTONIC ms, -1 none) in *deadline and whether something is
 * reportable without waiting in *now. finish restores events, advances the
 * handshakes the kernel woke, fixes revents and returns the new count. */
struct ts_poll_save {
	short events;
	unsigned char kind;
};
void ts_conn_poll_prepare(struct pollfd *fds, nfds_t n,
                          struct ts_poll_save *saved, long long *deadline,
                          bool *now);
int ts_conn_poll_finish(struct pollfd *fds, nfds_t n,
                        const struct ts_poll_save *saved, int rc);

/* epoll: registrations of handshaking fds are translated in the kernel;
 * these keep that in step with the program's calls. */
int ts_conn_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* Before a wait on epfd: advance due handshakes; the earliest deadline. */
long long ts_conn_epoll_prepare(int epfd);
/* After: drop internal events, add EPOLLERR for failed handshakes.
 * Returns the new count (0: wait again if time remains). */
int ts_conn_epoll_finish(int epfd, struct epoll_event *evs, int n);


#endif
