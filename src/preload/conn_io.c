/* The data path of an upgraded socket (see conn.h): every data hook lands
 * in ts_conn_sendv or ts_conn_recvv, which give the answers a kernel
 * stream socket would give, with the program's bytes passing only through
 * the engine's session (docs/design.md, "The data path"). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "conn_async.h"
#include "conn_priv.h"
#include "log.h"
#include "real.h"

static void set_broken(struct ts_conn *c, int err)
{
	if (c->state != TS_CONN_BROKEN) {
		c->state = TS_CONN_BROKEN;
		c->broken_errno = err;
		const char *r = c->tls ? ts_conn_eng()->reason(c->tls) : NULL;
		if (r && r[0])
			ts_warn("%s %s (%s): %s", c->rule->name, c->dest,
			        c->name, r);
	}
}

int ts_conn_engine_errno(struct ts_conn *c, ssize_t r)
{
	if (r == TS_TLS_WANT_WRITE || r == TS_TLS_WANT_READ)
		return EAGAIN;
	if (r == TS_TLS_INTR)
		return EINTR;
	int err = errno;
	set_broken(c, err);
	return err;
}

/* The bytes iov describes; *err is EINVAL or EFAULT where the kernel
 * would refuse the vector (a NULL buffer is the only bad address we can
 * see without touching it). */
static size_t iov_total(const struct iovec *iov, int n, int *err)
{
	size_t t = 0;
	*err = n < 0 || n > IOV_MAX ? EINVAL : n > 0 && !iov ? EFAULT : 0;
	for (int i = 0; i < n && !*err; i++) {
		if (iov[i].iov_len > SSIZE_MAX - t)
			*err = EINVAL;
		else if (!iov[i].iov_base && iov[i].iov_len)
			*err = EFAULT;
		else
			t += iov[i].iov_len;
	}
	return t;
}

/* The start every data call shares, with lock (the direction's) taken
 * on success: the errors the kernel gives before anything moves (a bad
 * vector: bad; MSG_OOB: oob, as TCP answers it), the wait for a handshake
 * in progress, and the check that fd still names c. 0, -1 with errno, or
 * TS_CONN_RETRY (lock not held). */
static int data_call_begin(struct ts_conn *c, int fd, int flags, int bad,
                           int oob, pthread_mutex_t *lock)
{
	if (bad) {
		errno = bad;
		return -1;
	}
	if (flags & MSG_OOB) {
		errno = oob;
		return -1;
	}
	if (ts_conn_holds(lock)) {
		/* A signal handler's call in the direction its own thread is
		 * inside: it cannot wait for that thread. */
		errno = EINTR;
		return -1;
	}
	if (c->state == TS_CONN_HANDSHAKING && ts_conn_async_gate(c, flags) < 0)
		return -1;
	pthread_mutex_lock(lock);
	if (!ts_fd_holds(fd, &c->ent)) {
		pthread_mutex_unlock(lock);
		return TS_CONN_RETRY;
	}
	ts_conn_held_add(lock);
	return 0;
}

/* What a data call returns: the bytes it moved, else its error, else 0. */
static ssize_t moved(size_t done, int err)
{
	if (done > 0)
		return (ssize_t)done;
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* send ---------------------------------------------------------------- */

/* A place in an iovec: segment i, offset off in it. */
struct iov_pos {
	int i;
	size_t off;
};

/* The next piece to hand the engine at pos, left bytes still to send:
 * a large segment in place; small ones gathered into c->stage, so that
 * one record carries them (writev of a header and a body). */
static const char *next_piece(struct ts_conn *c, const struct iovec *iov,
                              int iovcnt, struct iov_pos *pos, size_t left,
                              size_t *n)
{
	while (pos->off == iov[pos->i].iov_len) {
		pos->i++;
		pos->off = 0;
	}
	const char *p = (const char *)iov[pos->i].iov_base + pos->off;
	*n = iov[pos->i].iov_len - pos->off;
	if (*n >= TS_CONN_STAGE || *n >= left)
		return p;
	if (!c->stage && !(c->stage = malloc(TS_CONN_STAGE)))
		return p;
	size_t got = 0, o = pos->off;
	for (int j = pos->i; j < iovcnt && got < TS_CONN_STAGE; j++, o = 0) {
		size_t k = iov[j].iov_len - o;
		if (k > TS_CONN_STAGE - got)
			k = TS_CONN_STAGE - got;
		memcpy(c->stage + got, (const char *)iov[j].iov_base + o, k);
		got += k;
	}
	*n = got;
	return (const char *)c->stage;
}

/* Move pos on by r bytes. */
static void iov_advance(const struct iovec *iov, struct iov_pos *pos,
                        size_t r)
{
	for (size_t left = r; left;) {
		size_t k = iov[pos->i].iov_len - pos->off;
		if (k > left)
			k = left;
		pos->off += k;
		left -= k;
		if (pos->off == iov[pos->i].iov_len && left) {
			pos->i++;
			pos->off = 0;
		}
	}
}

/* A write that fails with EPIPE raises SIGPIPE unless asked not to; a
 * connection already known broken answers without touching the kernel,
 * so raise it here as the kernel would. */
static void maybe_sigpipe(int err, int flags)
{
	if (err == EPIPE && !(flags & MSG_NOSIGNAL))
		pthread_kill(pthread_self(), SIGPIPE);
}

/* Whether c may send now, with send_lock held; else *err (0 for a clean
 * refusal), SIGPIPE raised where the kernel would. */
static bool may_send(struct ts_conn *c, int flags, int *err)
{
	if (c->state == TS_CONN_READY &&
	    !ts_conn_owned(c, TS_DIR_WRITE, true))
		*err = EPIPE; /* another process sends on it since fork */
	else if (c->state != TS_CONN_READY || c->wr_shut)
		/* After SHUT_WR the kernel answers EPIPE (and SIGPIPE). */
		*err = c->wr_shut && c->state == TS_CONN_READY
		               ? EPIPE
		               : c->broken_errno;
	else
		return true;
	maybe_sigpipe(*err, flags);
	return false;
}

/* Like a kernel stream socket: a blocking send takes everything unless
 * interrupted, a non-blocking one what fits. The bytes taken; *err when
 * it stopped on an error. send_lock held. */
static size_t send_records(struct ts_conn *c, int fd, const struct iovec *iov,
                           int iovcnt, size_t total, int tflags, int *err)
{
	struct iov_pos pos = {0, 0};
	size_t done = 0;

	while (done < total) {
		size_t n;
		const char *p = next_piece(c, iov, iovcnt, &pos, total - done,
		                           &n);
		ssize_t r = ts_conn_eng()->send(c->tls, fd, p, n, tflags);
		if (r <= 0) {
			*err = r == 0 ? 0 : ts_conn_engine_errno(c, r);
			break;
		}
		done += (size_t)r;
		iov_advance(iov, &pos, (size_t)r);
	}
	return done;
}

ssize_t ts_conn_sendv(struct ts_conn *c, int fd, const struct iovec *iov,
                      int iovcnt, int flags)
{
	bool nb = c->nonblock || (flags & MSG_DONTWAIT);
	int tflags = (nb ? MSG_DONTWAIT : 0) |
	             (flags & (MSG_NOSIGNAL | MSG_MORE));
	int err = 0, bad;
	size_t total = iov_total(iov, iovcnt, &bad), done = 0;
	/* Urgent data has no meaning inside a TLS stream. */
	int rc = data_call_begin(c, fd, flags, bad, EOPNOTSUPP, &c->send_lock);

	if (rc != 0)
		return rc;
	if (may_send(c, flags, &err)) {
		if (total)
			ts_nagle_before_send(&c->nagle, fd, total);
		done = send_records(c, fd, iov, iovcnt, total, tflags, &err);
		c->bytes_out += done;
	}
	ts_conn_unlock(&c->send_lock);
	return moved(done, err);
}

ssize_t ts_conn_send(struct ts_conn *c, int fd, const void *buf, size_t len,
                     int flags)
{
	struct iovec v = {(void *)buf, len};
	return ts_conn_sendv(c, fd, &v, 1, flags);
}

/* recv ---------------------------------------------------------------- */

/* An end of stream without close_notify reads as EOF (programs cannot
 * tell), but the log says so: it may be a truncation. */
static void note_eof(struct ts_conn *c)
{
	const char *why = ts_conn_eng()->reason(c->tls);
	if (why && why[0])
		ts_info("%s %s (%s): %s", c->rule->name, c->dest, c->name,
		        why);
}

int ts_conn_peek_fill(struct ts_conn *c, int fd, size_t want, bool nb)
{
	const struct ts_engine *eng = ts_conn_eng();

	if (want > TS_CONN_PEEK_MAX)
		want = TS_CONN_PEEK_MAX;
	if (c->peek_cap < want) {
		unsigned char *b = realloc(c->peek, want);
		if (!b) {
			errno = ENOMEM;
			return TS_TLS_ERR;
		}
		c->peek = b;
		c->peek_cap = want;
	}
	while (c->peek_len < want && !c->eof) {
		if (c->peek_len && !eng->pending(c->tls))
			break;
		ssize_t r = eng->recv(c->tls, fd, c->peek + c->peek_len,
		                      want - c->peek_len,
		                      nb || c->peek_len ? MSG_DONTWAIT : 0);
		if (r == 0) {
			c->eof = true;
			note_eof(c);
		} else if (r > 0) {
			c->peek_len += (size_t)r;
		} else if (c->peek_len) {
			/* Keep the bytes; a fatal error is reported once
			 * they are read (the kernel reports ECONNRESET only
			 * once: losing it here would read as a clean EOF). */
			if (r == TS_TLS_ERR)
				(void)ts_conn_engine_errno(c, r);
			break;
		} else {
			return (int)r;
		}
	}
	return 0;
}

/* Copy from the peek buffer into iov at byte offset done; consume unless
 * peeking. */
static size_t peek_take(struct ts_conn *c, const struct iovec *iov,
                        int iovcnt, size_t done, bool consume)
{
	size_t taken = 0, pos = 0;
	for (int i = 0; i < iovcnt && taken < c->peek_len; i++) {
		size_t len = iov[i].iov_len, o = 0;
		if (pos + len <= done) {
			pos += len;
			continue;
		}
		if (done > pos)
			o = done - pos;
		size_t k = len - o;
		if (k > c->peek_len - taken)
			k = c->peek_len - taken;
		memcpy((char *)iov[i].iov_base + o, c->peek + taken, k);
		taken += k;
		pos += len;
		done += k;
	}
	if (consume) {
		memmove(c->peek, c->peek + taken, c->peek_len - taken);
		c->peek_len -= taken;
	}
	return taken;
}

/* The iovec segment at byte offset done: base and room. */
static char *iov_at(const struct iovec *iov, int iovcnt, size_t done,
                    size_t *room)
{
	for (int i = 0; i < iovcnt; i++) {
		if (done < iov[i].iov_len) {
			*room = iov[i].iov_len - done;
			return (char *)iov[i].iov_base + done;
		}
		done -= iov[i].iov_len;
	}
	*room = 0;
	return NULL;
}

/* Whether c may be read now, with recv_lock held; else *err (0: reads
 * see the end of the stream). */
static bool may_recv(struct ts_conn *c, int *err)
{
	if (c->state == TS_CONN_READY && !ts_conn_owned(c, TS_DIR_READ, true))
		*err = ECONNRESET; /* another process reads it since fork */
	else if (c->state != TS_CONN_READY && !c->peek_len)
		/* A dropped client (served_drop): the end of the stream. */
		*err = c->eof ? 0 : c->broken_errno;
	else if (!atomic_load(&c->rd_shut))
		return true;
	return false;
}

/* A zero-length read answers whether anything is there: 0 if so, else
 * EAGAIN when it may not wait (the kernel's own answer, for bytes not yet
 * decrypted). Its error, or 0. */
static int zero_read(struct ts_conn *c, int fd, bool nb)
{
	char none[1];

	if (nb && !c->eof && !c->peek_len && c->tls &&
	    !ts_conn_eng()->pending(c->tls) &&
	    REAL(recv)(fd, none, 0, MSG_DONTWAIT) < 0)
		return errno;
	return 0;
}

/* MSG_PEEK: decrypt into the peek buffer, copy without consuming. */
static size_t peek_read(struct ts_conn *c, int fd, const struct iovec *iov,
                        int iovcnt, size_t total, bool nb, int *err)
{
	int r = ts_conn_peek_fill(c, fd, total, nb);

	if (r < 0 && !c->peek_len) {
		*err = ts_conn_engine_errno(c, r);
		return 0;
	}
	return peek_take(c, iov, iovcnt, 0, false);
}

/* Bytes an earlier MSG_PEEK decrypted come first (MSG_TRUNC discards
 * them). */
static size_t take_peeked(struct ts_conn *c, const struct iovec *iov,
                          int iovcnt, size_t total, int flags)
{
	size_t done = 0;

	if (c->peek_len && (flags & MSG_TRUNC)) {
		done = c->peek_len < total ? c->peek_len : total;
		memmove(c->peek, c->peek + done, c->peek_len - done);
		c->peek_len -= done;
	} else if (c->peek_len) {
		done = peek_take(c, iov, iovcnt, 0, true);
	}
	return done;
}

/* Records from the session into iov from offset done on. After the first
 * bytes, a read takes all that has arrived without waiting for more, as
 * the kernel does: programs (libuv) take a short read with POLLHUP as the
 * end of the stream. MSG_WAITALL waits. The bytes read in all; *err when
 * nothing was read and the engine failed. recv_lock held. */
static size_t recv_records(struct ts_conn *c, int fd, const struct iovec *iov,
                           int iovcnt, size_t total, size_t done, int flags,
                           bool nb, int *err)
{
	bool waitall = (flags & MSG_WAITALL) && !(flags & MSG_PEEK);
	char scratch[4096];

	while (done < total && !c->eof && c->state != TS_CONN_BROKEN) {
		bool wait = !nb && (done == 0 || waitall);
		size_t room;
		char *dst = iov_at(iov, iovcnt, done, &room);
		if (flags & MSG_TRUNC) {
			/* TCP's MSG_TRUNC discards the bytes it counts. */
			dst = scratch;
			if (room > sizeof scratch)
				room = sizeof scratch;
		}
		ssize_t r = ts_conn_eng()->recv(c->tls, fd, dst, room,
		                                wait ? 0 : MSG_DONTWAIT);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r == 0) {
			c->eof = true;
			note_eof(c);
			break;
		}
		if (done == 0)
			*err = ts_conn_engine_errno(c, r);
		else if (r == TS_TLS_ERR)
			(void)ts_conn_engine_errno(c, r);
		break;
	}
	return done;
}

ssize_t ts_conn_recvv(struct ts_conn *c, int fd, const struct iovec *iov,
                      int iovcnt, int flags)
{
	bool nb = c->nonblock || (flags & MSG_DONTWAIT);
	int err = 0, bad;
	size_t total = iov_total(iov, iovcnt, &bad), done = 0;

	/* MSG_TRUNC reads into no buffer at all. */
	if ((flags & MSG_TRUNC) && bad == EFAULT)
		bad = 0;
	/* No urgent data ever arrives inside a TLS stream. */
	int rc = data_call_begin(c, fd, flags, bad, EINVAL, &c->recv_lock);
	if (rc != 0)
		return rc;
	c->recv_gen++;
	if (!may_recv(c, &err)) {
		/* err says why, or 0: the end of the stream */
	} else if (total == 0) {
		err = zero_read(c, fd, nb);
	} else if (flags & MSG_PEEK) {
		done = peek_read(c, fd, iov, iovcnt, total, nb, &err);
	} else {
		done = take_peeked(c, iov, iovcnt, total, flags);
		done = recv_records(c, fd, iov, iovcnt, total, done, flags, nb,
		                    &err);
		c->bytes_in += done;
	}
	ts_conn_unlock(&c->recv_lock);
	return moved(done, err);
}

ssize_t ts_conn_recv(struct ts_conn *c, int fd, void *buf, size_t len,
                     int flags)
{
	struct iovec v = {buf, len};
	return ts_conn_recvv(c, fd, &v, 1, flags);
}

int ts_conn_pending(struct ts_conn *c, int fd, size_t *n)
{
	pthread_mutex_lock(&c->recv_lock);
	if (!ts_fd_holds(fd, &c->ent)) {
		pthread_mutex_unlock(&c->recv_lock);
		return TS_CONN_RETRY;
	}
	/* Decrypt what already arrived, without waiting, so the count is of
	 * bytes the program can read now. */
	bool mine = c->state == TS_CONN_READY &&
	            ts_conn_owned(c, TS_DIR_READ, false);
	if (mine)
		(void)ts_conn_peek_fill(c, fd, c->peek_len + TS_CONN_STAGE, true);
	*n = c->peek_len + (mine ? ts_conn_eng()->pending(c->tls) : 0);
	pthread_mutex_unlock(&c->recv_lock);
	return 0;
}
