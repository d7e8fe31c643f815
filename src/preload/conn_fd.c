/* The fd lifecycle of upgraded sockets: close, dup2/dup3 onto a number,
 * close_range, and the numbers an exec would hand on (see conn.h).
 *
 * The rule: a number leaves the table only after the kernel call that
 * changes what it names has returned, and while the call runs the number
 * is gated (fdtab.h): another thread's call on it waits, then finds what
 * the number names now. So no call can find an upgraded socket's number
 * unowned (it would go out raw), and a call that fails changes nothing. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "epreg.h"
#include "forkwatch.h"
#include "log.h"
#include "rawguard.h"
#include "real.h"
#include "stdio_seal.h"

/* The table of a vfork child is its parent's memory, its fd table is its
 * own: what it closes or dups must not be recorded. */
static bool table_is_ours(void)
{
	return !ts_fork_in_vfork_child();
}

int ts_conn_close(int fd)
{
	struct ts_fdent *e;

	if (!ts_fd_peek(fd) || !table_is_ours() || ts_fd_gate(fd, &e) < 0)
		return REAL(close)(fd);
	struct ts_conn *c = (struct ts_conn *)e;
	if (c)
		(void)ts_conn_drop_fd(c, fd);
	int rv = REAL(close)(fd), err = errno;
	/* Linux frees the number even when close fails (EINTR, EIO). */
	ts_fd_ungate(fd, NULL);
	if (c)
		ts_conn_put(c);
	errno = err;
	return rv;
}

int ts_conn_dup2(int oldfd, int newfd, int flags, bool three)
{
	struct ts_fdent *prev;

	/* The kernel's own refusals, answered before anything changes. */
	if (three && (oldfd == newfd || (flags & ~O_CLOEXEC))) {
		errno = EINVAL;
		return -1;
	}
	if (oldfd == newfd || REAL(fcntl)(oldfd, F_GETFD) < 0 ||
	    (!ts_fd_peek(oldfd) && !ts_fd_peek(newfd)) || !table_is_ours())
		return three ? REAL(dup3)(oldfd, newfd, flags)
		             : REAL(dup2)(oldfd, newfd);
	struct ts_conn *src = ts_conn_get(oldfd);
	if (ts_fd_gate(newfd, &prev) < 0) {
		if (src)
			ts_conn_put(src);
		errno = EMFILE;
		return -1;
	}
	struct ts_conn *x = (struct ts_conn *)prev;
	/* newfd's session, if this is its last number, ends with its
	 * close_notify, sent through a private copy of the socket once the
	 * kernel has replaced newfd: a failed dup2 then loses nothing. */
	int keep = x ? REAL(fcntl)(newfd, F_DUPFD_CLOEXEC, 0) : -1;
	if (src) {
		ts_stdio_seal(newfd, src->rule->name, src->dest);
		/* A send of another thread decided on the old meaning of
		 * newfd must not land on the session's socket. */
		ts_raw_quiesce(newfd, 1000);
	}
	int rv = three ? REAL(dup3)(oldfd, newfd, flags)
	               : REAL(dup2)(oldfd, newfd);
	int err = errno;
	if (rv < 0) {
		ts_fd_ungate(newfd, prev);
	} else {
		if (src)
			atomic_fetch_add(&src->nfds, 1);
		ts_fd_ungate(newfd, src ? &src->ent : NULL);
		if (x)
			(void)ts_conn_drop_fd(x, keep);
		ts_epreg_forget_fd(newfd);
	}
	if (keep >= 0)
		REAL(close)(keep);
	if (x)
		ts_conn_put(x);
	if (src)
		ts_conn_put(src);
	errno = err;
	return rv;
}

struct range {
	unsigned lo, hi;
	size_t n, cap;
	int *fds;
	bool oom;
};

static void collect(int fd, struct ts_fdent *e, void *ctx)
{
	struct range *r = ctx;
	(void)e;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		int *n = realloc(r->fds, cap * sizeof *n);
		if (!n) {
			r->oom = true;
			return;
		}
		r->fds = n;
		r->cap = cap;
	}
	r->fds[r->n++] = fd;
}

/* Gate and end the sessions of every upgraded number in [lo, hi]; the
 * caller closes them, then ungate_all. */
static int gate_all(struct range *r, struct ts_fdent ***prev)
{
	ts_fd_foreach(r->lo, r->hi, collect, r);
	if (r->oom) {
		errno = ENOMEM;
		return -1;
	}
	*prev = calloc(r->n ? r->n : 1, sizeof **prev);
	if (!*prev) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < r->n; i++) {
		if (ts_fd_gate(r->fds[i], &(*prev)[i]) < 0) {
			r->fds[i] = -1;
			continue;
		}
		if ((*prev)[i])
			(void)ts_conn_drop_fd((struct ts_conn *)(*prev)[i],
			                      r->fds[i]);
	}
	return 0;
}

/* After the kernel call: closed numbers leave the table; if it failed,
 * the sessions (ended already) stay, broken: nothing goes out raw. */
static void ungate_all(struct range *r, struct ts_fdent **prev, bool closed)
{
	for (size_t i = 0; i < r->n; i++) {
		if (r->fds[i] < 0)
			continue;
		ts_fd_ungate(r->fds[i], closed ? NULL : prev[i]);
		if (closed)
			ts_epreg_forget_fd(r->fds[i]);
		if (prev[i])
			ts_fdent_put(prev[i]);
	}
	free(prev);
	free(r->fds);
}

int ts_conn_close_range(unsigned first, unsigned last, int flags)
{
	struct range r = {.lo = first, .hi = last};
	struct ts_fdent **prev;

	/* The kernel refuses these without closing anything; so do we. */
	if (first > last ||
	    (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC))) {
		errno = EINVAL;
		return -1;
	}
	/* CLOSE_RANGE_CLOEXEC only marks. */
	if ((flags & CLOSE_RANGE_CLOEXEC) || !table_is_ours())
		return REAL(close_range)(first, last, flags);
	if (gate_all(&r, &prev) < 0) {
		free(r.fds);
		return -1;
	}
	int rv = REAL(close_range)(first, last, flags), err = errno;
	ungate_all(&r, prev, rv == 0);
	errno = err;
	return rv;
}

void ts_conn_closefrom(int lowfd)
{
	struct range r = {.lo = (unsigned)lowfd, .hi = ~0u};
	struct ts_fdent **prev;

	if (lowfd < 0 || !table_is_ours()) {
		REAL(closefrom)(lowfd);
		return;
	}
	if (gate_all(&r, &prev) < 0) {
		/* No memory to remember them: end each session first. */
		free(r.fds);
		for (int fd = lowfd; fd >= 0 && fd < 1 << 20; fd++)
			if (ts_fd_peek(fd))
				(void)ts_conn_close(fd);
		REAL(closefrom)(lowfd);
		return;
	}
	REAL(closefrom)(lowfd); /* it cannot fail: glibc aborts instead */
	ungate_all(&r, prev, true);
}

/* exec ------------------------------------------------------------------ */

struct exec_ctx {
	struct ts_exec_save *s;
	const char *what;
	int dead;
};

static void swap_one(int fd, struct ts_fdent *e, void *ctx)
{
	struct exec_ctx *x = ctx;
	struct ts_exec_save *s = x->s;
	struct ts_conn *c = (struct ts_conn *)e;
	int fl = REAL(fcntl)(fd, F_GETFD);

	if (fl < 0 || (fl & FD_CLOEXEC))
		return; /* the exec closes it */
	if (s->mark_only) {
		/* No file actions of the program's run in the child: the
		 * flag keeps the fd from it, and this process's fd stays
		 * as it is. */
		ts_error("%s %s (%s): fd %d has no FD_CLOEXEC: %s does not "
		         "get it (it would have the TLS stream without its "
		         "session)", c->rule->name, c->dest, c->name, fd,
		         x->what);
		if (s->n < TS_EXEC_SAVE_MAX &&
		    REAL(fcntl)(fd, F_SETFD, fl | FD_CLOEXEC) == 0) {
			s->fds[s->n].fd = fd;
			s->fds[s->n].saved = -1;
			s->fds[s->n].c = NULL;
			s->n++;
		} else {
			REAL(close)(fd);
		}
		return;
	}
	if (x->dead < 0 && (x->dead = ts_conn_dead_socket()) < 0)
		x->dead = -2;
	ts_error("%s %s (%s): fd %d has no FD_CLOEXEC: %s would get the "
	         "TLS stream without its session; it gets a closed socket "
	         "instead", c->rule->name, c->dest, c->name, fd, x->what);
	int saved = -1;
	if (s->n < TS_EXEC_SAVE_MAX)
		saved = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 0);
	if (saved >= 0) {
		s->fds[s->n].fd = fd;
		s->fds[s->n].saved = saved;
		s->fds[s->n].c = NULL;
		/* Calls of other threads on the session meanwhile use the
		 * socket itself, not the number that now names the dead
		 * one. Not in a vfork child: the session is the parent's
		 * memory, and the copy of the socket lives in the child's
		 * fd table only. */
		if (!s->vfork_child && c->tls) {
			ts_conn_ref(c);
			s->fds[s->n].c = c;
			ts_conn_set_io_fd(c, saved);
		}
		s->n++;
	}
	/* No copy kept (too many, or no fd left): the number is closed for
	 * good rather than handed on raw. */
	if (x->dead < 0 || REAL(dup2)(x->dead, fd) < 0)
		REAL(close)(fd);
}

void ts_conn_exec_prepare(struct ts_exec_save *s, const char *what,
                          bool mark_only)
{
	struct exec_ctx x = {.s = s, .what = what, .dead = -1};

	s->n = 0;
	s->vfork_child = false;
	s->mark_only = mark_only;
	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return;
	s->vfork_child = ts_fork_in_vfork_child();
	ts_fd_foreach(0, ~0u, swap_one, &x);
	if (x.dead >= 0)
		REAL(close)(x.dead);
}

void ts_conn_exec_restore(struct ts_exec_save *s)
{
	int saved = errno;

	for (unsigned i = 0; i < s->n; i++) {
		if (s->fds[i].saved < 0) {
			int fl = REAL(fcntl)(s->fds[i].fd, F_GETFD);
			if (fl >= 0)
				(void)REAL(fcntl)(s->fds[i].fd, F_SETFD,
				                  fl & ~FD_CLOEXEC);
			continue;
		}
		(void)REAL(dup2)(s->fds[i].saved, s->fds[i].fd);
		struct ts_conn *c = s->fds[i].c;
		if (c) {
			ts_conn_set_io_fd(c, -1);
			ts_conn_put(c);
		}
		REAL(close)(s->fds[i].saved);
	}
	s->n = 0;
	errno = saved;
}
