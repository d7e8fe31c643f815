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
#include "engine.h"
#include "engine_load.h"
#include "epreg.h"
#include "log.h"
#include "rawguard.h"
#include "real.h"

#define SNAP_MAX 256 /* hot conns looked at per wait */
#define REGS_MAX 16  /* epoll sets one fd is translated in */

atomic_uint ts_async_hot;
static const struct ts_engine *_Atomic eng; /* the same value at every store */
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

/* The hot conns, referenced, into buf (SNAP_MAX) or, when more are hot, a
 * heap array the caller frees (*arr != buf); the caller puts each. Every
 * hot conn must be seen: an internal event let through would tell the
 * program its fd is connected. */
static size_t hot_snapshot(struct ts_conn **buf, struct ts_conn ***arr)
{
	size_t k = 0, max = SNAP_MAX;
	*arr = buf;
	ts_fork_check();
	pthread_mutex_lock(&hot_lock);
	unsigned hot = atomic_load(&ts_async_hot);
	if (hot > SNAP_MAX) {
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

static void snapshot_put(struct ts_conn **buf, struct ts_conn **arr,
                         size_t n)
{
	for (size_t i = 0; i < n; i++)
		ts_conn_put(arr[i]);
	if (arr != buf)
		free(arr);
}

static uint32_t hs_interest(const struct ts_conn *c)
{
	return c->hs_want == POLLOUT ? EPOLLOUT : EPOLLIN;
}

/* Point the kernel's registrations of c's fd at what the handshake waits
 * for while it is pending, back at the program's own once it is over: the
 * kernel then re-evaluates readiness and queues the program's EPOLLOUT,
 * which is what wakes an edge-triggered or one-shot waiter. */
static void sync_regs(struct ts_conn *c)
{
	struct ts_epreg_ent regs[REGS_MAX];
	int saved = errno;
	size_t n = ts_epreg_of_fd(c->fd, regs, REGS_MAX);

	if (n > REGS_MAX)
		n = REGS_MAX;
	for (size_t i = 0; i < n; i++) {
		struct epoll_event ev = {.data.u64 = regs[i].data};
		ev.events = c->state == TS_CONN_HANDSHAKING ? hs_interest(c)
		                                            : regs[i].events;
		if (REAL(epoll_ctl)(regs[i].epfd, EPOLL_CTL_MOD, c->fd, &ev) <
		        0 &&
		    (errno == EBADF || errno == ENOENT))
			ts_epreg_del(regs[i].epfd, regs[i].fd); /* stale */
	}
	errno = saved;
}

/* Leave the socket unconnected, as a refused connect does: nothing the
 * program writes afterwards can reach the server in plaintext. */
static void disconnect(int fd)
{
	struct sockaddr sa = {.sa_family = AF_UNSPEC};
	int saved = errno;
	(void)REAL(connect)(fd, &sa, sizeof sa);
	errno = saved;
}

void ts_conn_async_child_reset(void)
{
	pthread_mutex_init(&hot_lock, NULL);
}

int ts_conn_async_start(struct ts_conn *c, const struct sockaddr *target,
                        socklen_t len, char *why, size_t whylen)
{
	eng = ts_engine_get(why, whylen);
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
	c->tls = eng->create(&tp, why, whylen);
	if (!c->tls)
		return -1;
	c->owner = ts_owner_new();
	if (!c->owner) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	hot_add(c);
	/* Owned before the kernel can send: from here every call of every
	 * thread on the fd finds the connection in progress. */
	if (ts_fd_install(c->fd, &c->ent) < 0) {
		hot_remove(c);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	ts_debug("%s: rule %s: connect in progress", c->dest, c->rule->name);
	sync_regs(c); /* registered with epoll before connect */
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
		sync_regs(c);
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
		int r = eng->handshake(c->tls, why, whylen);
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

int ts_conn_async_step(struct ts_conn *c)
{
	char why[512] = "";
	int rv;

	if (!c->async)
		return c->state == TS_CONN_READY ? 0 : -1;
	pthread_mutex_lock(&c->recv_lock);
	pthread_mutex_lock(&c->send_lock);
	if (c->state != TS_CONN_HANDSHAKING || !owns_both(c)) {
		rv = c->state == TS_CONN_READY ? 0 : -1;
		pthread_mutex_unlock(&c->send_lock);
		pthread_mutex_unlock(&c->recv_lock);
		return rv;
	}
	short before = c->hs_want;
	int saved = errno;
	rv = advance(c, why, sizeof why);
	if (rv == 0) {
		c->state = TS_CONN_READY;
		note_cloexec(c);
		if (ts_log_level_cur >= TS_LOG_INFO) {
			char desc[128];
			eng->describe(c->tls, desc, sizeof desc);
			char pn[32];
			ts_info("%s: rule %s %s (%s): %s, verified%s",
			        program_invocation_short_name, c->rule->name,
			        c->dest, c->name, desc,
			        ts_conn_port_note(c, pn, sizeof pn));
		}
	} else if (rv < 0) {
		char pn[32];
		ts_error("%s %s (%s): %s%s", c->rule->name, c->dest, c->name,
		         why[0] ? why : "connection failed",
		         ts_conn_port_note(c, pn, sizeof pn));
		disconnect(c->fd);
		c->state = TS_CONN_BROKEN;
		c->broken_errno = ECONNREFUSED;
		c->so_error = ECONNREFUSED;
		c->failed = true;
	}
	errno = saved;
	pthread_mutex_unlock(&c->send_lock);
	pthread_mutex_unlock(&c->recv_lock);
	if (rv == 0)
		hot_remove(c);
	if (rv != 1 || c->hs_want != before)
		sync_regs(c);
	return rv;
}

int ts_conn_async_gate(struct ts_conn *c, int flags)
{
	bool nb = c->nonblock || (flags & MSG_DONTWAIT);

	if (c->state != TS_CONN_HANDSHAKING)
		return 0;
	while (ts_conn_async_step(c) == 1) {
		if (nb) {
			/* As the kernel answers on a socket still connecting. */
			errno = EAGAIN;
			return -1;
		}
		/* Made blocking since connect: a blocking call waits for the
		 * connection, bounded by the handshake deadline. */
		long long left = c->hs_deadline - ts_now_ms();
		if (!c->hs_want) {
			/* The connecting thread is about to issue it. */
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
			continue;
		}
		struct pollfd p = {.fd = c->fd, .events = c->hs_want};
		(void)REAL(poll)(&p, 1, left < 0 ? 0 : left > 60000 ? 60000
		                                                 : (int)left);
	}
	return 0; /* ready, or BROKEN: the data path says which errno */
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

/* poll ---------------------------------------------------------------- */

enum { K_PLAIN, K_HS, K_FAILED };

void ts_conn_poll_prepare(struct pollfd *fds, nfds_t n,
                          struct ts_poll_save *saved, long long *deadline,
                          bool *now)
{
	*deadline = -1;
	*now = false;
	for (nfds_t i = 0; i < n; i++) {
		saved[i].events = fds[i].events;
		saved[i].kind = K_PLAIN;
		struct ts_conn *c = fds[i].fd >= 0 ? ts_conn_get(fds[i].fd)
		                                   : NULL;
		if (!c)
			continue;
		if (c->async && c->state == TS_CONN_HANDSHAKING &&
		    ts_conn_async_step(c) == 1) {
			saved[i].kind = K_HS;
			fds[i].events = c->hs_want;
			if (*deadline < 0 || c->hs_deadline < *deadline)
				*deadline = c->hs_deadline;
		} else if (c->failed && c->so_error) {
			saved[i].kind = K_FAILED;
			*now = true;
		} else if (ts_conn_ready(c, fds[i].events)) {
			*now = true;
		}
		ts_conn_put(c);
	}
}

int ts_conn_poll_finish(struct pollfd *fds, nfds_t n,
                        const struct ts_poll_save *saved, int rc)
{
	int count = 0;
	long long t = ts_now_ms();

	for (nfds_t i = 0; i < n; i++) {
		short ev = saved[i].events;
		fds[i].events = ev;
		if (rc < 0 || fds[i].fd < 0)
			continue;
		struct ts_conn *c = ts_conn_get(fds[i].fd);
		if (saved[i].kind == K_HS && c) {
			int r = 1;
			if (fds[i].revents || t >= c->hs_deadline)
				r = ts_conn_async_step(c);
			short rev = fds[i].revents & POLLNVAL;
			if (r == 0) /* and bytes that came with the handshake */
				rev = ts_conn_revents(c, fds[i].fd, ev,
				                      rev | (ev & (POLLOUT |
				                                   POLLWRNORM)));
			else if (r < 0)
				rev |= POLLERR | POLLHUP |
				       (ev & (POLLOUT | POLLWRNORM | POLLIN |
				              POLLRDNORM));
			fds[i].revents = rev;
		} else if (saved[i].kind == K_FAILED) {
			fds[i].revents |= POLLERR;
		} else if (c && c->state != TS_CONN_HANDSHAKING) {
			fds[i].revents = ts_conn_revents(c, fds[i].fd, ev,
			                                 fds[i].revents);
		}
		if (c)
			ts_conn_put(c);
		if (fds[i].revents)
			count++;
	}
	return rc < 0 ? rc : count;
}

/* epoll --------------------------------------------------------------- */

int ts_conn_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (op == EPOLL_CTL_DEL || !ev) {
		int r = REAL(epoll_ctl)(epfd, op, fd, ev);
		if (op == EPOLL_CTL_DEL)
			ts_epreg_del(epfd, fd);
		return r;
	}
	struct ts_conn *c = ts_conn_get(fd);
	struct epoll_event kev = *ev;
	bool hs = c && c->async && c->state == TS_CONN_HANDSHAKING;
	if (hs)
		kev.events = hs_interest(c);
	int r = REAL(epoll_ctl)(epfd, op, fd, &kev);
	if (r == 0) {
		int saved = errno;
		if (op == EPOLL_CTL_ADD)
			ts_epreg_add(epfd, fd, ev->events, ev->data.u64);
		else
			ts_epreg_mod(epfd, fd, ev->events, ev->data.u64);
		/* The handshake may have ended meanwhile in another thread. */
		if (hs && c->state != TS_CONN_HANDSHAKING)
			sync_regs(c);
		errno = saved;
	}
	if (c)
		ts_conn_put(c);
	return r;
}

long long ts_conn_epoll_prepare(int epfd)
{
	struct ts_conn *buf[SNAP_MAX], **snap;
	size_t n = hot_snapshot(buf, &snap);
	long long dl = -1, t = ts_now_ms();
	struct ts_epreg_ent e;

	for (size_t i = 0; i < n; i++) {
		struct ts_conn *c = snap[i];
		if (c->state == TS_CONN_HANDSHAKING &&
		    ts_epreg_get(epfd, c->fd, &e)) {
			if (t >= c->hs_deadline)
				(void)ts_conn_async_step(c);
			if (c->state == TS_CONN_HANDSHAKING &&
			    (dl < 0 || c->hs_deadline < dl))
				dl = c->hs_deadline;
		}
	}
	snapshot_put(buf, snap, n);
	return dl;
}

int ts_conn_epoll_finish(int epfd, struct epoll_event *evs, int n)
{
	struct ts_conn *buf[SNAP_MAX], **snap;
	size_t ns = hot_snapshot(buf, &snap), nm = 0;
	struct ts_epreg_ent e;
	int k = 0;

	/* The hot conns registered in epfd go first in snap, with their
	 * registration's data alongside. */
	uint64_t sdata[SNAP_MAX], *data = sdata;
	if (ns > SNAP_MAX && !(data = malloc(ns * sizeof *data))) {
		snapshot_put(buf, snap, ns);
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < ns; i++)
		if (ts_epreg_get(epfd, snap[i]->fd, &e)) {
			struct ts_conn *c = snap[i];
			snap[i] = snap[nm];
			snap[nm] = c;
			data[nm++] = e.data;
		}
	for (int i = 0; i < n; i++) {
		struct ts_conn *c = NULL;
		for (size_t j = 0; j < nm && !c; j++)
			if (data[j] == evs[i].data.u64)
				c = snap[j];
		if (c && c->state == TS_CONN_HANDSHAKING) {
			/* Our own interest fired: advance. On completion or
			 * failure the program's registration is back and the
			 * kernel queues its event for the next wait. */
			(void)ts_conn_async_step(c);
			continue;
		}
		if (c && c->failed && c->so_error)
			evs[i].events |= EPOLLERR;
		evs[k++] = evs[i];
	}
	if (data != sdata)
		free(data);
	snapshot_put(buf, snap, ns);
	return k;
}
