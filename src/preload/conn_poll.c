/* Readiness of upgraded sockets, as poll/select/epoll must report it
 * (docs/design.md, "The data path" and "Asynchronous connect"): decrypted
 * bytes the kernel cannot see count as readable, bytes that were only
 * TLS's own messages do not, and while a handshake is pending the wait is
 * on what the handshake needs. The hooks (hook_poll.c, hook_epoll.c) wait;
 * this file says what the fds report. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "conn.h"
#include "conn_async.h"
#include "conn_priv.h"
#include "epreg.h"
#include "real.h"

short ts_conn_ready(struct ts_conn *c, short events)
{
	short r = 0;

	if (c->state == TS_CONN_HANDSHAKING)
		return 0;
	if ((events & POLLIN) &&
	    (c->eof || c->state == TS_CONN_BROKEN || c->peek_len ||
	     (c->tls && ts_conn_eng()->pending(c->tls))))
		r |= POLLIN;
	if ((events & POLLRDHUP) && c->eof)
		r |= POLLRDHUP;
	return r;
}

bool ts_conn_data_arrived(struct ts_conn *c, int fd)
{
	if (c->state != TS_CONN_READY || !c->tls || c->eof || c->peek_len ||
	    ts_conn_eng()->pending(c->tls))
		return true;
	/* The kernel's bytes may be only a TLS 1.3 ticket or another
	 * post-handshake message: a program told "readable" would get EAGAIN,
	 * or block in read() on a blocking socket. Decrypt what arrived —
	 * only where this process owns the reads: a question must not take
	 * them from the process that does. */
	if (pthread_mutex_trylock(&c->recv_lock) != 0)
		return true;
	bool data = true;
	if (ts_fd_holds(fd, &c->ent) && ts_conn_owned(c, TS_DIR_READ, false)) {
		int r = ts_conn_peek_fill(c, fd, TS_CONN_STAGE, true);
		if (r == TS_TLS_ERR)
			(void)ts_conn_engine_errno(c, r);
		data = c->peek_len || c->eof || c->state != TS_CONN_READY;
	}
	pthread_mutex_unlock(&c->recv_lock);
	return data;
}

short ts_conn_revents(struct ts_conn *c, int fd, short events, short krev)
{
	if ((krev & POLLIN) && !ts_conn_data_arrived(c, fd))
		krev &= ~POLLIN;
	short r = krev | ts_conn_ready(c, events);

	if (c->state == TS_CONN_BROKEN && c->broken_errno != EBADF)
		r |= POLLERR;
	/* Writable means our queued record is out: flush it now if the
	 * kernel has room, else the program would write into a queue. */
	if ((r & POLLOUT) && c->tls && ts_conn_eng()->send_queued(c->tls)) {
		if (pthread_mutex_trylock(&c->send_lock) == 0) {
			if (ts_fd_holds(fd, &c->ent) &&
			    ts_conn_owned(c, TS_DIR_WRITE, false))
				(void)ts_conn_eng()->flush(c->tls, fd,
				                 MSG_DONTWAIT | MSG_NOSIGNAL);
			pthread_mutex_unlock(&c->send_lock);
		}
		if (ts_conn_eng()->send_queued(c->tls))
			r &= ~POLLOUT;
	}
	return r;
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
		kev.events = ts_conn_hs_interest(c);
	int r = REAL(epoll_ctl)(epfd, op, fd, &kev);
	if (r == 0) {
		int saved = errno;
		if (op == EPOLL_CTL_ADD)
			ts_epreg_add(epfd, fd, ev->events, ev->data.u64);
		else
			ts_epreg_mod(epfd, fd, ev->events, ev->data.u64);
		/* The handshake may have ended meanwhile in another thread. */
		if (hs && c->state != TS_CONN_HANDSHAKING)
			ts_conn_sync_regs(c);
		errno = saved;
	}
	if (c)
		ts_conn_put(c);
	return r;
}

long long ts_conn_epoll_prepare(int epfd)
{
	struct ts_conn *buf[TS_CONN_SNAP_MAX], **snap;
	size_t n = ts_conn_hot_snapshot(buf, &snap);
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
	ts_conn_hot_put(buf, snap, n);
	return dl;
}

int ts_conn_epoll_finish(int epfd, struct epoll_event *evs, int n)
{
	struct ts_conn *buf[TS_CONN_SNAP_MAX], **snap;
	size_t ns = ts_conn_hot_snapshot(buf, &snap), nm = 0;
	struct ts_epreg_ent e;
	int k = 0;

	/* The hot conns registered in epfd go first in snap, with their
	 * registration's data alongside. */
	uint64_t sdata[TS_CONN_SNAP_MAX], *data = sdata;
	if (ns > TS_CONN_SNAP_MAX && !(data = malloc(ns * sizeof *data))) {
		ts_conn_hot_put(buf, snap, ns);
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
	ts_conn_hot_put(buf, snap, ns);
	return k;
}

/* The data events to synthesize for a registration of c with the
 * program's events ev (0: none). An edge-triggered registration is woken
 * once per read the program made, so a program that reads until EAGAIN is
 * not woken forever, nor left asleep with bytes; claim: this wake-up is
 * reported (the edge is spent). */
uint32_t ts_conn_epoll_data(struct ts_conn *c, uint32_t ev, bool claim)
{
	uint32_t out = 0;
	short r = ts_conn_ready(c, (short)(POLLIN | POLLRDHUP));

	if (r && (!(ev & EPOLLET) || c->recv_gen != c->et_gen)) {
		if ((r & POLLIN) && (ev & EPOLLIN))
			out |= EPOLLIN;
		if ((r & POLLRDHUP) && (ev & EPOLLRDHUP))
			out |= EPOLLRDHUP;
		if (out && claim && (ev & EPOLLET))
			c->et_gen = c->recv_gen;
	}
	return out;
}
