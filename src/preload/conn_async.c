/* Asynchronous connect and handshake (see conn_async.h).
 *
 * A non-blocking connect starts the kernel connect and installs the conn in
 * HANDSHAKING. Every later touch of the fd calls ts_conn_async_step(),
 * which advances the TCP connect and the TLS handshake as far as they go
 * without waiting, under both of the conn's locks. Conns handshaking, or
 * failed with SO_ERROR unreported, sit on one "hot" list: the wait hooks
 * translate readiness only while it is not empty. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <fcntl.h>

#include "conn_async.h"
#include "conn_priv.h"
#include "epreg.h"
#include "log.h"
#include "rawguard.h"
#include "real.h"

#define REGS_MAX 16  /* epoll sets one fd is translated in */

atomic_uint ts_async_hot;
static pthread_mutex_t hot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ts_conn *hot_head;

static void hot_add(struct ts_conn *c)
{
	ts_fork_check();
	pthread_mutex_lock(&hot_lock);
	if (!c->hot) {
		c->hot = true;
		c->hot_prev = NULL;
		c->hot_next = hot_head;
		if (hot_head)
			hot_head->hot_prev = c;
		hot_head = c;
		atomic_fetch_add(&ts_async_hot, 1);
	}
	pthread_mutex_unlock(&hot_lock);
}

static void hot_remove(struct ts_conn *c)
{
	ts_fork_check();
	pthread_mutex_lock(&hot_lock);
	if (c->hot) {
		if (c->hot_prev)
			c->hot_prev->hot_next = c->hot_next;
		else
			hot_head = c->hot_next;
		if (c->hot_next)
			c->hot_next->hot_prev = c->hot_prev;
		c->hot = false;
		atomic_fetch_sub(&ts_async_hot, 1);
	}
	pthread_mutex_unlock(&hot_lock);
}

void ts_conn_async_unlist(struct ts_conn *c)
{
	if (c->async)
		hot_remove(c);
}

/* A reference on a conn that may be on its way to destruction: only when
 * some reference still holds it. */
static bool try_ref(struct ts_conn *c)
{
	int r = atomic_load(&c->ent.refs);
	while (r > 0)
		if (atomic_compare_exchange_weak(&c->ent.refs, &r, r + 1))
			return true;
	return false;
}

/* The hot conns, referenced, into buf (TS_CONN_SNAP_MAX) or, when more
 * are hot, a heap array the caller frees (*arr != buf); the caller puts
 * each. Every hot conn must be seen: an internal event let through would
 * tell the program its fd is connected. */
size_t ts_conn_hot_snapshot(struct ts_conn **buf, struct ts_conn ***arr)
{
	size_t k = 0, max = TS_CONN_SNAP_MAX;
	*arr = buf;
	ts_fork_check();
	pthread_mutex_lock(&hot_lock);
	unsigned hot = atomic_load(&ts_async_hot);
	if (hot > TS_CONN_SNAP_MAX) {
		struct ts_conn **big = malloc(hot * sizeof *big);
		if (big) {
			*arr = big;
			max = hot;
		}
	}
	for (struct ts_conn *c = hot_head; c && k < max; c = c->hot_next)
		if (try_ref(c))
			(*arr)[k++] = c;
	pthread_mutex_unlock(&hot_lock);
	return k;
}

void ts_conn_hot_put(struct ts_conn **buf, struct ts_conn **arr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ts_conn_put(arr[i]);
	if (arr != buf)
		free(arr);
}

uint32_t ts_conn_hs_interest(const struct ts_conn *c)
{
	return c->hs_want == POLLOUT ? EPOLLOUT : EPOLLIN;
}

/* Point the kernel's registrations of c's fd at what the handshake waits
 * for while it is pending, back at the program's own once it is over: the
 * kernel then re-evaluates readiness and queues the program's EPOLLOUT,
 * which is what wakes an edge-triggered or one-shot waiter. */
void ts_conn_sync_regs(struct ts_conn *c)
{
	struct ts_epreg_ent regs[REGS_MAX];
	int saved = errno;
	size_t n = ts_epreg_of_fd(c->fd, regs, REGS_MAX);

	if (n > REGS_MAX)
		n = REGS_MAX;
	for (size_t i = 0; i < n; i++) {
		struct epoll_event ev = {.data.u64 = regs[i].data};
		ev.events = c->state == TS_CONN_HANDSHAKING
		                    ? ts_conn_hs_interest(c)
		                    : regs[i].events;
		if (REAL(epoll_ctl)(regs[i].epfd, EPOLL_CTL_MOD, c->fd, &ev) <
		        0 &&
		    (errno == EBADF || errno == ENOENT))
			ts_epreg_del(regs[i].epfd, regs[i].fd); /* stale */
	}
	errno = saved;
}

void ts_conn_async_child_reset(void)
{
	pthread_mutex_init(&hot_lock, NULL);
}

/* The engine session, its owner, and the fd made ours: from here every
 * call of every thread on the fd finds the connection in progress (for a
 * connect, before the kernel can send). 0, or -1 with the reason. */
static int begin_session(struct ts_conn *c, const struct ts_engine *eng,
                         const struct ts_tls_params *tp, char *why,
                         size_t whylen)
{
	c->tls = eng->create(tp, why, whylen);
	if (!c->tls)
		return -1;
	c->owner = ts_owner_new();
	if (!c->owner) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	hot_add(c);
	if (ts_fd_install(c->fd, &c->ent) < 0) {
		hot_remove(c);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

int ts_conn_async_start(struct ts_conn *c, const struct sockaddr *target,
                        socklen_t len, char *why, size_t whylen)
{
	const struct ts_engine *eng = ts_engine_get(why, whylen);
	if (!eng)
		return -1;
	c->async = true;
	c->phase = TS_ASYNC_PRE;
	c->hs_want = POLLOUT;
	c->hs_deadline = ts_now_ms() + ts_state.policy->handshake_timeout_ms;
	/* The name chosen at connect (ts_policy_decide). */
	struct ts_tls_params tp = {
		.fd = c->fd,
		.rule = c->rule,
		.sni = c->send_sni ? c->name : NULL,
		.verify_name = c->name,
	};
	if (begin_session(c, eng, &tp, why, whylen) < 0)
		return -1;
	ts_debug("%s: rule %s: connect in progress", c->dest, c->rule->name);
	ts_conn_sync_regs(c); /* registered with epoll before connect */
	/* A call of another thread that found the fd not ours a moment ago
	 * must not send once the kernel connects it. */
	ts_raw_quiesce(c->fd, 1000);
	int r = REAL(connect)(c->fd, target, len);
	if (r == 0 || errno == EINPROGRESS || errno == EINTR) {
		pthread_mutex_lock(&c->recv_lock);
		pthread_mutex_lock(&c->send_lock);
		if (c->phase == TS_ASYNC_PRE)
			c->phase = TS_ASYNC_TCP;
		pthread_mutex_unlock(&c->send_lock);
		pthread_mutex_unlock(&c->recv_lock);
	} else {
		snprintf(why, whylen, "%s", strerror(errno));
		pthread_mutex_lock(&c->recv_lock);
		pthread_mutex_lock(&c->send_lock);
		c->state = TS_CONN_BROKEN;
		c->broken_errno = ECONNREFUSED;
		pthread_mutex_unlock(&c->send_lock);
		pthread_mutex_unlock(&c->recv_lock);
		hot_remove(c);
		if (ts_fd_remove_if(c->fd, &c->ent))
			ts_fdent_put(&c->ent);
		ts_conn_sync_regs(c);
		return -1;
	}
	return 0;
}

/* One pass: 0 verified, 1 pending (hs_want set), -1 failed (why set). */
static int advance(struct ts_conn *c, char *why, size_t whylen)
{
	for (;;) {
		if (c->phase == TS_ASYNC_PRE) {
			/* An unconnected socket polls writable: nothing to
			 * look at until the connecting thread issued it. */
			c->hs_want = 0;
			break;
		}
		if (c->phase == TS_ASYNC_TCP) {
			struct pollfd p = {.fd = c->fd, .events = POLLOUT};
			int r = REAL(poll)(&p, 1, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				snprintf(why, whylen, "%s", strerror(errno));
				return -1;
			}
			if (r == 0) {
				c->hs_want = POLLOUT;
				break;
			}
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			if (REAL(getsockopt)(c->fd, SOL_SOCKET, SO_ERROR,
			                     &soerr, &sl) < 0)
				soerr = errno;
			if (soerr) {
				snprintf(why, whylen, "%s", strerror(soerr));
				return -1;
			}
			if (!(p.revents & POLLOUT)) {
				snprintf(why, whylen, "connection closed");
				return -1;
			}
			c->phase = TS_ASYNC_TLS;
		}
		int r = ts_conn_eng()->handshake(c->tls, why, whylen);
		if (r == TS_TLS_OK)
			return 0;
		if (r == TS_TLS_ERR)
			return -1;
		if (r == TS_TLS_INTR)
			continue;
		c->hs_want = r == TS_TLS_WANT_WRITE ? POLLOUT : POLLIN;
		break;
	}
	if (ts_now_ms() >= c->hs_deadline) {
		if (c->phase != TS_ASYNC_TLS)
			snprintf(why, whylen, "TCP connect timed out");
		else
			snprintf(why, whylen,
			         "TLS handshake timed out after %u ms",
			         ts_state.policy->handshake_timeout_ms);
		return -1;
	}
	return 1;
}

/* A handshake uses both directions: only a process that owns both may
 * step it (a copy forked mid-handshake leaves it to the parent). */
static bool owns_both(struct ts_conn *c)
{
	if (ts_conn_owned(c, TS_DIR_WRITE, true) &&
	    ts_conn_owned(c, TS_DIR_READ, true))
		return true;
	c->state = TS_CONN_BROKEN;
	c->broken_errno = EPIPE;
	return false;
}

static void note_cloexec(struct ts_conn *c)
{
	if (ts_log_level_cur < TS_LOG_DEBUG)
		return;
	int fl = REAL(fcntl)(c->fd, F_GETFD);
	if (fl >= 0 && !(fl & FD_CLOEXEC))
		ts_debug("%s: fd %d lacks FD_CLOEXEC: a program it survives "
		         "exec into gets a closed socket in its place",
		         c->dest, c->fd);
}

/* A served connection's name in every later line: the client's identity,
 * or that none was asked for. */
static void served_name(struct ts_conn *c)
{
	ts_conn_eng()->identity(c->tls, c->name, sizeof c->name);
	if (!c->name[0])
		snprintf(c->name, sizeof c->name, "no client certificate");
}

/* A client tlsshim served that did not complete the handshake: the
 * program never sees a byte of it; its reads see the end of the stream,
 * its writes EPIPE, and the client is let go (FIN). */
static void served_drop(struct ts_conn *c)
{
	(void)REAL(shutdown)(c->fd, SHUT_RDWR);
	c->state = TS_CONN_BROKEN;
	c->broken_errno = EPIPE;
	c->eof = true;
}

int ts_conn_async_serve(struct ts_conn *c, char *why, size_t whylen)
{
	const struct ts_engine *eng = ts_engine_get(why, whylen);
	if (!eng)
		return -1;
	struct ts_tls_params tp = {.fd = c->fd, .rule = c->rule,
	                           .server = true};
	c->server = true;
	c->async = true;
	c->phase = TS_ASYNC_TLS; /* the TCP connection is there */
	c->hs_want = POLLIN;      /* the ClientHello */
	c->hs_deadline = ts_now_ms() + ts_state.policy->handshake_timeout_ms;
	return begin_session(c, eng, &tp, why, whylen);
}

/* The connection this thread is stepping, locks held: a signal handler
 * that calls into the same connection meanwhile must not wait for locks
 * its own thread holds. */
static __thread const struct ts_conn *stepping;

int ts_conn_async_step(struct ts_conn *c)
{
	char why[512] = "";
	int rv;

	if (!c->async)
		return c->state == TS_CONN_READY ? 0 : -1;
	if (stepping == c || ts_conn_holds(&c->recv_lock) ||
	    ts_conn_holds(&c->send_lock))
		return 1; /* re-entered from a signal handler: still going */
	ts_conn_lock(&c->recv_lock);
	ts_conn_lock(&c->send_lock);
	stepping = c;
	if (c->state != TS_CONN_HANDSHAKING || !owns_both(c)) {
		rv = c->state == TS_CONN_READY ? 0 : -1;
		stepping = NULL;
		ts_conn_unlock(&c->send_lock);
		ts_conn_unlock(&c->recv_lock);
		return rv;
	}
	short before = c->hs_want;
	int saved = errno;
	rv = advance(c, why, sizeof why);
	if (rv == 0) {
		c->state = TS_CONN_READY;
		note_cloexec(c);
		if (c->server)
			served_name(c);
		ts_conn_say_verified(c);
	} else if (rv < 0 && c->server) {
		ts_error("%s %s: %s", c->rule->name, c->dest,
		         why[0] ? why : "handshake failed");
		served_drop(c);
	} else if (rv < 0) {
		ts_conn_say_failed(c->rule->name, c->dest, c->name, why, c);
		ts_conn_disconnect(c->fd);
		c->state = TS_CONN_BROKEN;
		c->broken_errno = ECONNREFUSED;
		c->so_error = ECONNREFUSED;
		c->failed = true;
	}
	errno = saved;
	stepping = NULL;
	ts_conn_unlock(&c->send_lock);
	ts_conn_unlock(&c->recv_lock);
	if (rv == 0 || (rv < 0 && c->server))
		hot_remove(c);
	if (rv != 1 || c->hs_want != before)
		ts_conn_sync_regs(c);
	return rv;
}

/* Steps the handshake to its end (READY or BROKEN), waiting for the fd,
 * bounded by the handshake deadline. */
static void finish(struct ts_conn *c)
{
	while (ts_conn_async_step(c) == 1) {
		if (!c->hs_want) {
			/* The connecting thread is about to issue it. */
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
			continue;
		}
		(void)ts_conn_wait_fd(c->fd, c->hs_want, c->hs_deadline);
	}
}

int ts_conn_async_gate(struct ts_conn *c, int flags)
{
	bool nb = c->nonblock || (flags & MSG_DONTWAIT);

	if (c->state != TS_CONN_HANDSHAKING)
		return 0;
	if (stepping == c) {
		/* A signal handler's call while its thread steps the
		 * handshake: it cannot wait for its own thread. */
		errno = EINTR;
		return -1;
	}
	if (nb) {
		/* As the kernel answers on a socket still connecting. */
		if (ts_conn_async_step(c) == 1) {
			errno = EAGAIN;
			return -1;
		}
		return 0;
	}
	/* Made blocking since connect: a blocking call waits for the
	 * connection, bounded by the handshake deadline. */
	finish(c);
	return 0; /* ready, or BROKEN: the data path says which errno */
}

void ts_conn_async_finish(struct ts_conn *c)
{
	if (c->state == TS_CONN_HANDSHAKING && stepping != c)
		finish(c);
}

/* The error a failed handshake left to report, taken once. */
static int take_so_error(struct ts_conn *c)
{
	pthread_mutex_lock(&c->send_lock);
	int e = c->so_error;
	c->so_error = 0;
	pthread_mutex_unlock(&c->send_lock);
	if (e)
		hot_remove(c);
	return e;
}

void ts_conn_async_abandon(struct ts_conn *c)
{
	(void)take_so_error(c);
	hot_remove(c);
	/* The socket is disconnected already: no call that finds the fd
	 * unowned from here can reach the server. */
	if (ts_fd_remove_if(c->fd, &c->ent))
		ts_fdent_put(&c->ent);
}

int ts_conn_async_reconnect(struct ts_conn *c, int fd,
                            const struct sockaddr *sa, socklen_t len,
                            int *result)
{
	int r = ts_conn_async_step(c);
	if (r == 1) {
		*result = -1;
		errno = EALREADY;
		return 0;
	}
	if (r == 0 || !c->failed) {
		/* Connected: the kernel says 0 the first time, then EISCONN. */
		*result = REAL(connect)(fd, sa, len);
		return 0;
	}
	int e = take_so_error(c);
	if (e) {
		*result = -1;
		errno = e;
		return 0;
	}
	/* Failed and reported: the socket is unconnected; a new attempt. */
	ts_conn_purge(fd);
	return 1;
}

int ts_conn_async_so_error(struct ts_conn *c, int fd, void *val,
                           socklen_t *len)
{
	if (!c->async)
		return REAL(getsockopt)(fd, SOL_SOCKET, SO_ERROR, val, len);
	int r = ts_conn_async_step(c);
	if (r == 0 || (r < 0 && !c->failed))
		return REAL(getsockopt)(fd, SOL_SOCKET, SO_ERROR, val, len);
	int e = r < 0 ? take_so_error(c) : 0;
	if (!len || !val || (int)*len < 0) {
		errno = !len || !val ? EFAULT : EINVAL;
		return -1;
	}
	socklen_t n = *len < sizeof e ? *len : (socklen_t)sizeof e;
	memcpy(val, &e, n);
	*len = n;
	return 0;
}
