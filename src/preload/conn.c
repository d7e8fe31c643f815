/* The connection layer (see conn.h): connect, the data path, readiness.
 * The fd lifecycle (close, dup, exec) is in conn_fd.c, the handshake state
 * machine in conn_async.c, ownership across fork in conn_fork.c. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "conn_async.h"
#include "engine.h"
#include "engine_load.h"
#include "log.h"
#include "real.h"
#include "resolve.h"
#include "stdio_seal.h"

static const struct ts_engine *_Atomic eng; /* set once, before the first conn */

static void conn_destroy(struct ts_fdent *e)
{
	struct ts_conn *c = (struct ts_conn *)e;

	ts_conn_async_unlist(c);
	if (c->tls)
		eng->destroy(c->tls);
	free(c->stage);
	free(c->peek);
	pthread_mutex_destroy(&c->send_lock);
	pthread_mutex_destroy(&c->recv_lock);
	ts_nagle_destroy(&c->nagle);
	free(c);
}

static struct ts_conn *conn_new(int fd, const struct ts_rule *rule)
{
	struct ts_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	atomic_init(&c->ent.refs, 1);
	c->ent.destroy = conn_destroy;
	c->fd = fd;
	c->rule = rule;
	c->state = TS_CONN_HANDSHAKING;
	atomic_init(&c->nfds, 1);
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->recv_lock, NULL);
	ts_nagle_init(&c->nagle);
	for (int d = 0; d < 2; d++)
		atomic_init(&c->own_gen[d], ts_fork_gen());
	return c;
}

const char *ts_conn_port_note(const struct ts_conn *c, char *buf,
                              size_t len)
{
	if (!c || !c->tls_port)
		return "";
	snprintf(buf, len, " (TLS port %u)", c->tls_port);
	return buf;
}

/* A number whose meaning was lost (a process copied while another thread
 * was closing or replacing it): every call on it fails, none goes raw. */
void ts_conn_tombstone(int fd)
{
	static const struct ts_rule unknown = {.name = "(unknown)"};
	struct ts_conn *c = conn_new(fd, &unknown);

	if (!c)
		return;
	c->state = TS_CONN_BROKEN;
	c->broken_errno = EPIPE;
	snprintf(c->dest, sizeof c->dest, "fd %d", fd);
	if (ts_fd_install(fd, &c->ent) < 0)
		ts_error("fd %d: state lost at fork; close it", fd);
	ts_conn_put(c);
}

/* Every IPv4/IPv6 stream socket is in scope: TCP, MPTCP (what mptcpize
 * makes) and any other stream protocol the kernel may carry bytes on. */
static bool is_inet_stream(int fd)
{
	int type = 0;
	socklen_t l = sizeof type;

	return REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 &&
	       type == SOCK_STREAM;
}

/* Wait for fd until deadline; 1 ready, 0 timed out. Signals do not cut a
 * handshake short: the deadline bounds it. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - ts_now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int r = REAL(poll)(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return 1; /* let the next I/O call report it */
	}
}

static void refuse_failed_policy(void)
{
	static atomic_flag said = ATOMIC_FLAG_INIT;
	if (!atomic_flag_test_and_set(&said))
		ts_error("%s; refusing every TCP connection",
		         ts_state.failed_reason);
}

/* Policy warnings the parser cannot give (it reports errors only), once
 * per rule for the first 64 rules, on every use after that. */
static void warn_rule_once(const struct ts_rule *rule)
{
	static _Atomic uint64_t warned;
	size_t i = (size_t)(rule - ts_state.policy->rules);

	if (!rule->key_exposed && !rule->keylog_file)
		return;
	if (i < 64) {
		uint64_t bit = (uint64_t)1 << i;
		if (atomic_fetch_or(&warned, bit) & bit)
			return;
	}
	if (rule->key_exposed)
		ts_warn("rule %s: client-key %s is readable by group or "
		        "others; chmod 600 it", rule->name, rule->client_key);
	if (rule->keylog_file)
		ts_warn("rule %s: keylog-file %s: TLS session keys are "
		        "written there; anyone who reads it can decrypt the "
		        "traffic", rule->name, rule->keylog_file);
}

/* connect() again on an fd that is ours already. */
static int reconnect(int fd, const struct sockaddr *sa, socklen_t len,
                     int *result)
{
	struct ts_conn *old = ts_conn_get(fd);

	if (!old)
		return 1;
	if (old->async) {
		int k = ts_conn_async_reconnect(old, fd, sa, len, result);
		ts_conn_put(old);
		return k; /* 1: failed and reported; a fresh attempt */
	}
	ts_conn_put(old);
	errno = EISCONN; /* the kernel's answer */
	*result = -1;
	return 0;
}

/* What connect() to d decides, and the name the program resolved for it
 * (host rules match on it; without an sni it is the name verified). */
static void decide(struct ts_dest *d, char *learned, size_t len,
                   struct ts_decision *dec)
{
	switch (ts_resolve_lookup(d->family, d->addr,
	                          (unsigned long)gettid(), learned, len)) {
	case TS_RESOLVE_FOUND:
		d->host = learned;
		break;
	case TS_RESOLVE_LOST:
		d->host_lost = true;
		break;
	default:
		break;
	}
	ts_policy_decide(ts_state.policy, d, dec);
}

/* The blocking connect: the same state machine the program's event loop
 * drives for a non-blocking one (conn_async.c), run here. Other threads
 * meanwhile see the connection in progress, as the kernel would show it. */
static int wait_verified(struct ts_conn *c, int *result)
{
	for (;;) {
		int r = ts_conn_async_step(c);
		if (r == 0) {
			*result = 0;
			return 0;
		}
		if (r < 0) {
			ts_conn_async_abandon(c);
			errno = ECONNREFUSED;
			*result = -1;
			return 0;
		}
		(void)wait_fd(c->fd, c->hs_want, c->hs_deadline);
	}
}

int ts_conn_connect(int fd, const struct sockaddr *sa, socklen_t len,
                    int *result)
{
	struct ts_dest d;
	char dest[TS_DEST_STR_MAX], why[512] = "";
	char learned[TS_RESOLVE_NAME_MAX], port_note[32];
	struct ts_conn *c = NULL;
	struct ts_decision dec;

	if (!sa || ts_dest_from_sockaddr(sa, len, &d) < 0)
		return 1;
	ts_state_init();
	if (ts_state.failed) {
		if (!is_inet_stream(fd))
			return 1;
		refuse_failed_policy();
		errno = ECONNREFUSED;
		*result = -1;
		return 0;
	}
	if (!ts_state.policy)
		return 1;
	ts_dest_format(&d, dest, sizeof dest);
	decide(&d, learned, sizeof learned, &dec);
	if (dec.verdict == TS_VERDICT_PASS) {
		ts_debug("%s: %s; not upgraded", dest,
		         dec.rule ? "rule with tls = no" : "no rule matches");
		return 1;
	}
	if (!is_inet_stream(fd))
		return 1;
	const struct ts_rule *rule = dec.rule;
	if (dec.verdict == TS_VERDICT_REFUSE) {
		ts_error("%s %s: refused: %s", rule ? rule->name : "unmatched",
		         dest, dec.why);
		errno = ECONNREFUSED;
		*result = -1;
		return 0;
	}
	if (ts_fd_peek(fd) && reconnect(fd, sa, len, result) == 0)
		return 0;
	/* A number reused without passing through our close. */
	ts_conn_purge(fd);

	ts_debug("%s: rule %s, verifying %s (%s)", dest, rule->name, dec.name,
	         dec.name_from == TS_NAME_SNI ? "sni from the rule" :
	         dec.name_from == TS_NAME_LEARNED ? "name the program resolved" :
	                                            "IP literal, no SNI sent");
	warn_rule_once(rule);

	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} target;
	memcpy(&target, sa, len < sizeof target ? len : sizeof target);
	if (sa->sa_family == AF_INET)
		target.in.sin_port = htons(dec.port);
	else
		target.in6.sin6_port = htons(dec.port);

	eng = ts_engine_get(why, sizeof why);
	if (!eng)
		goto fail;
	c = conn_new(fd, rule);
	if (!c) {
		snprintf(why, sizeof why, "out of memory");
		goto fail;
	}
	snprintf(c->dest, sizeof c->dest, "%s", dest);
	snprintf(c->name, sizeof c->name, "%s", dec.name);
	c->send_sni = dec.send_sni;
	c->tls_port = dec.port != d.port ? dec.port : 0;
	int fl = REAL(fcntl)(fd, F_GETFL);
	c->nonblock = fl >= 0 && (fl & O_NONBLOCK);
	c->blocking = !c->nonblock;
	/* A stdio stream made on this fd before now would write around the
	 * session: it fails from here on instead. */
	ts_stdio_seal(fd, rule->name, c->dest);
	/* The conn is in the table before the kernel connect starts. */
	if (ts_conn_async_start(c, &target.sa, len, why, sizeof why) < 0)
		goto fail;
	if (c->nonblock) {
		ts_conn_put(c); /* the table holds it now */
		*result = -1;
		errno = EINPROGRESS;
		return 0;
	}
	int rv = wait_verified(c, result);
	ts_conn_put(c);
	return rv;

fail:
	ts_error("%s %s (%s): %s%s", rule->name, dest, dec.name,
	         why[0] ? why : "connection failed",
	         ts_conn_port_note(c, port_note, sizeof port_note));
	if (c)
		ts_conn_put(c);
	errno = ECONNREFUSED;
	*result = -1;
	return 0;
}

static void set_broken(struct ts_conn *c, int err)
{
	if (c->state != TS_CONN_BROKEN) {
		c->state = TS_CONN_BROKEN;
		c->broken_errno = err;
		const char *r = c->tls ? eng->reason(c->tls) : NULL;
		if (r && r[0])
			ts_warn("%s %s (%s): %s", c->rule->name, c->dest,
			        c->name, r);
	}
}

/* The errno of a failed engine call, after marking fatal ones. */
static int engine_errno(struct ts_conn *c, ssize_t r)
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

/* A write that fails with EPIPE raises SIGPIPE unless asked not to; a
 * connection already known broken answers without touching the kernel,
 * so raise it here as the kernel would. */
static void maybe_sigpipe(int err, int flags)
{
	if (err == EPIPE && !(flags & MSG_NOSIGNAL))
		pthread_kill(pthread_self(), SIGPIPE);
}

ssize_t ts_conn_sendv(struct ts_conn *c, int fd, const struct iovec *iov,
                      int iovcnt, int flags)
{
	bool nb = c->nonblock || (flags & MSG_DONTWAIT);
	int tflags = (nb ? MSG_DONTWAIT : 0) |
	             (flags & (MSG_NOSIGNAL | MSG_MORE));
	int err = 0, i = 0, bad;
	size_t total = iov_total(iov, iovcnt, &bad), done = 0, off = 0;

	if (bad) {
		errno = bad;
		return -1;
	}
	if (flags & MSG_OOB) {
		/* Urgent data has no meaning inside a TLS stream. */
		errno = EOPNOTSUPP;
		return -1;
	}
	if (c->state == TS_CONN_HANDSHAKING && ts_conn_async_gate(c, flags) < 0)
		return -1;
	pthread_mutex_lock(&c->send_lock);
	if (!ts_fd_holds(fd, &c->ent)) {
		pthread_mutex_unlock(&c->send_lock);
		return TS_CONN_RETRY;
	}
	if (c->state == TS_CONN_READY &&
	    !ts_conn_owned(c, TS_DIR_WRITE, true)) {
		/* Another process sends on this session since fork. */
		err = EPIPE;
		maybe_sigpipe(err, flags);
		goto out;
	}
	if (c->state != TS_CONN_READY || c->wr_shut) {
		/* After SHUT_WR the kernel answers EPIPE (and SIGPIPE). */
		err = c->wr_shut && c->state == TS_CONN_READY ? EPIPE
		                                              : c->broken_errno;
		maybe_sigpipe(err, flags);
		goto out;
	}
	if (total)
		ts_nagle_before_send(&c->nagle, fd, total);
	/* Like a kernel stream socket: a blocking send takes everything
	 * unless interrupted; a non-blocking one takes what fits. */
	while (done < total) {
		while (off == iov[i].iov_len) {
			i++;
			off = 0;
		}
		const char *p = (const char *)iov[i].iov_base + off;
		size_t n = iov[i].iov_len - off;
		/* Small pieces are gathered so that one record carries them
		 * (writev of a header and a body); large ones go direct. */
		if (n < TS_CONN_STAGE && n < total - done) {
			if (!c->stage)
				c->stage = malloc(TS_CONN_STAGE);
			if (c->stage) {
				size_t got = 0, o = off;
				for (int j = i; j < iovcnt && got < TS_CONN_STAGE;
				     j++, o = 0) {
					size_t k = iov[j].iov_len - o;
					if (k > TS_CONN_STAGE - got)
						k = TS_CONN_STAGE - got;
					memcpy(c->stage + got,
					       (const char *)iov[j].iov_base + o,
					       k);
					got += k;
				}
				p = (const char *)c->stage;
				n = got;
			}
		}
		ssize_t r = eng->send(c->tls, fd, p, n, tflags);
		if (r <= 0) {
			err = r == 0 ? 0 : engine_errno(c, r);
			break;
		}
		done += (size_t)r;
		/* Advance the iovec position by r bytes. */
		for (size_t left = (size_t)r; left;) {
			size_t k = iov[i].iov_len - off;
			if (k > left)
				k = left;
			off += k;
			left -= k;
			if (off == iov[i].iov_len && left) {
				i++;
				off = 0;
			}
		}
	}
	c->bytes_out += done;
out:
	pthread_mutex_unlock(&c->send_lock);
	if (done > 0)
		return (ssize_t)done;
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

ssize_t ts_conn_send(struct ts_conn *c, int fd, const void *buf, size_t len,
                     int flags)
{
	struct iovec v = {(void *)buf, len};
	return ts_conn_sendv(c, fd, &v, 1, flags);
}

/* An end of stream without close_notify reads as EOF (programs cannot
 * tell), but the log says so: it may be a truncation. */
static void note_eof(struct ts_conn *c)
{
	const char *why = eng->reason(c->tls);
	if (why && why[0])
		ts_info("%s %s (%s): %s", c->rule->name, c->dest, c->name,
		        why);
}

/* Decrypt into the peek buffer until it holds want bytes; only the first
 * read may wait. Returns 0 or a negative ts_tls_rc / 0-length EOF (1). */
static int peek_fill(struct ts_conn *c, int fd, size_t want, bool nb)
{
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
				(void)engine_errno(c, r);
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

ssize_t ts_conn_recvv(struct ts_conn *c, int fd, const struct iovec *iov,
                      int iovcnt, int flags)
{
	bool nb = c->nonblock || (flags & MSG_DONTWAIT);
	bool waitall = (flags & MSG_WAITALL) && !(flags & MSG_PEEK);
	int err = 0, bad;
	size_t total = iov_total(iov, iovcnt, &bad), done = 0;
	char scratch[4096];

	if (bad && !((flags & MSG_TRUNC) && bad == EFAULT)) {
		errno = bad;
		return -1;
	}
	if (flags & MSG_OOB) {
		/* No urgent data ever arrives inside a TLS stream. */
		errno = EINVAL;
		return -1;
	}
	if (c->state == TS_CONN_HANDSHAKING && ts_conn_async_gate(c, flags) < 0)
		return -1;
	pthread_mutex_lock(&c->recv_lock);
	if (!ts_fd_holds(fd, &c->ent)) {
		pthread_mutex_unlock(&c->recv_lock);
		return TS_CONN_RETRY;
	}
	c->recv_gen++;
	if (c->state == TS_CONN_READY && !ts_conn_owned(c, TS_DIR_READ, true)) {
		/* Another process reads this session since fork. */
		err = ECONNRESET;
		goto out;
	}
	if (c->state != TS_CONN_READY && !c->peek_len) {
		err = c->broken_errno;
		goto out;
	}
	if (atomic_load(&c->rd_shut))
		goto out;
	if (total == 0) {
		/* A zero-length read answers whether anything is there: 0 if
		 * so, else EAGAIN when it may not wait (the kernel's own
		 * answer, for bytes not yet decrypted). */
		if (nb && !c->eof && !c->peek_len && c->tls &&
		    !eng->pending(c->tls) &&
		    REAL(recv)(fd, scratch, 0, MSG_DONTWAIT) < 0)
			err = errno;
		goto out;
	}
	if (flags & MSG_PEEK) {
		int r = peek_fill(c, fd, total, nb);
		if (r < 0 && !c->peek_len) {
			err = engine_errno(c, r);
			goto out;
		}
		done = peek_take(c, iov, iovcnt, 0, false);
		goto out;
	}
	if (c->peek_len && (flags & MSG_TRUNC)) {
		done = c->peek_len < total ? c->peek_len : total;
		memmove(c->peek, c->peek + done, c->peek_len - done);
		c->peek_len -= done;
	} else if (c->peek_len) {
		done = peek_take(c, iov, iovcnt, 0, true);
	}
	while (done < total && !c->eof && c->state != TS_CONN_BROKEN) {
		/* After the first bytes, a read takes all that has arrived
		 * without waiting for more, as the kernel does: programs
		 * (libuv) take a short read with POLLHUP as the end of the
		 * stream. MSG_WAITALL waits. */
		bool wait = !nb && (done == 0 || waitall);
		size_t room;
		char *dst = iov_at(iov, iovcnt, done, &room);
		if (flags & MSG_TRUNC) {
			/* TCP's MSG_TRUNC discards the bytes it counts. */
			dst = scratch;
			if (room > sizeof scratch)
				room = sizeof scratch;
		}
		ssize_t r = eng->recv(c->tls, fd, dst, room,
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
			err = engine_errno(c, r);
		else if (r == TS_TLS_ERR)
			(void)engine_errno(c, r);
		break;
	}
	c->bytes_in += done;
out:
	pthread_mutex_unlock(&c->recv_lock);
	if (done > 0 || !err)
		return (ssize_t)done;
	errno = err;
	return -1;
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
		(void)peek_fill(c, fd, c->peek_len + TS_CONN_STAGE, true);
	*n = c->peek_len + (mine ? eng->pending(c->tls) : 0);
	pthread_mutex_unlock(&c->recv_lock);
	return 0;
}

short ts_conn_ready(struct ts_conn *c, short events)
{
	short r = 0;

	if (c->state == TS_CONN_HANDSHAKING)
		return 0;
	if ((events & POLLIN) &&
	    (c->eof || c->state == TS_CONN_BROKEN || c->peek_len ||
	     (c->tls && eng->pending(c->tls))))
		r |= POLLIN;
	if ((events & POLLRDHUP) && c->eof)
		r |= POLLRDHUP;
	return r;
}

bool ts_conn_data_arrived(struct ts_conn *c, int fd)
{
	if (c->state != TS_CONN_READY || !c->tls || c->eof || c->peek_len ||
	    eng->pending(c->tls))
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
		int r = peek_fill(c, fd, TS_CONN_STAGE, true);
		if (r == TS_TLS_ERR)
			(void)engine_errno(c, r);
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
	if ((r & POLLOUT) && c->tls && eng->send_queued(c->tls)) {
		if (pthread_mutex_trylock(&c->send_lock) == 0) {
			if (ts_fd_holds(fd, &c->ent) &&
			    ts_conn_owned(c, TS_DIR_WRITE, false))
				(void)eng->flush(c->tls, fd,
				                 MSG_DONTWAIT | MSG_NOSIGNAL);
			pthread_mutex_unlock(&c->send_lock);
		}
		if (eng->send_queued(c->tls))
			r &= ~POLLOUT;
	}
	return r;
}

/* Queued records and close_notify go out before the FIN, as the kernel
 * sends buffered data before it: wait for room, bounded by the handshake
 * timeout so a peer that stopped reading cannot hang close(). Called with
 * send_lock held, by the owner of the writes; kfd names the socket. */
void ts_conn_close_notify(struct ts_conn *c, int kfd)
{
	long long deadline = ts_now_ms() +
	                     ts_state.policy->handshake_timeout_ms;
	for (;;) {
		int r = eng->close_notify(c->tls, kfd);
		if (r == TS_TLS_OK)
			return;
		if (r == TS_TLS_WANT_WRITE && !wait_fd(kfd, POLLOUT, deadline)) {
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

	if (eng->close_linger(c->tls, fd, closing, ms) != TS_TLS_OK)
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
	if (!drain || !eng->close_drain(c->tls, kfd, c->peek_len > 0, ms)) {
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
	 * from the FIN. */
	if (how == SHUT_WR || how == SHUT_RDWR) {
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

void ts_conn_set_nonblock(struct ts_conn *c, bool on)
{
	c->nonblock = on;
}

void ts_conn_alias(int newfd, struct ts_conn *c)
{
	atomic_fetch_add(&c->nfds, 1);
	ts_stdio_seal(newfd, c->rule->name, c->dest);
	if (ts_fd_install(newfd, &c->ent) < 0) {
		/* Out of memory: the new fd must not carry plaintext. */
		atomic_fetch_sub(&c->nfds, 1);
		ts_error("%s %s: cannot track duplicated fd %d; closing it",
		         c->rule->name, c->dest, newfd);
		REAL(shutdown)(newfd, SHUT_RDWR);
	}
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

void ts_conn_purge(int fd)
{
	struct ts_fdent *e = ts_fd_remove(fd);
	if (!e)
		return;
	struct ts_conn *c = (struct ts_conn *)e;
	ts_debug("fd %d reused: forgetting %s %s", fd, c->rule->name, c->dest);
	(void)ts_conn_drop_fd(c, -1);
	ts_fdent_put(e);
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
			    !eng->close_drain(c->tls, fd, c->peek_len > 0, ms) &&
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
