/* The connection layer (see conn.h). */
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

static const struct ts_engine *_Atomic eng; /* set once, before the first conn */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->recv_lock, NULL);
	ts_nagle_init(&c->nagle);
	return c;
}

static int dest_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                              struct ts_dest *d)
{
	memset(d, 0, sizeof *d);
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		d->family = AF_INET;
		memcpy(d->addr, &in->sin_addr, 4);
		d->port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		d->family = AF_INET6;
		memcpy(d->addr, &in6->sin6_addr, 16);
		d->port = ntohs(in6->sin6_port);
		return 0;
	}
	return -1;
}

static void format_dest(const struct ts_dest *d, char *buf, size_t len,
                        char *ip, size_t iplen)
{
	inet_ntop(d->family, d->addr, ip, (socklen_t)iplen);
	if (d->family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", ip, d->port);
	else
		snprintf(buf, len, "%s:%u", ip, d->port);
}

static bool is_tcp_stream(int fd)
{
	int type = 0, proto = 0;
	socklen_t l1 = sizeof type, l2 = sizeof proto;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
	    type != SOCK_STREAM)
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l2) < 0)
		return true; /* old kernels: a stream inet socket is TCP */
	return proto == IPPROTO_TCP;
}

/* Wait for fd until deadline; 1 ready, 0 timed out. Signals do not cut a
 * handshake short: the deadline bounds it. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
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

/* Leave the socket unconnected, as a refused connect does: nothing the
 * program writes afterwards can reach the server in plaintext. */
static void disconnect(int fd)
{
	struct sockaddr sa = {.sa_family = AF_UNSPEC};
	int saved = errno;
	(void)REAL(connect)(fd, &sa, sizeof sa);
	errno = saved;
}

static void refuse_failed_policy(void)
{
	static atomic_flag said = ATOMIC_FLAG_INIT;
	if (!atomic_flag_test_and_set(&said))
		ts_error("%s; refusing every TCP connection",
		         ts_state.failed_reason);
}

static int tcp_connect(int fd, const struct sockaddr *sa, socklen_t len,
                       long long deadline, char *why, size_t whylen)
{
	if (REAL(connect)(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	if (!wait_fd(fd, POLLOUT, deadline)) {
		snprintf(why, whylen, "TCP connect timed out");
		return -1;
	}
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr) {
		snprintf(why, whylen, "%s", strerror(soerr));
		return -1;
	}
	return 0;
}

static int handshake(struct ts_conn *c, long long deadline, char *why,
                     size_t whylen)
{
	for (;;) {
		int r = eng->handshake(c->tls, why, whylen);
		if (r == TS_TLS_OK)
			return 0;
		if (r == TS_TLS_ERR)
			return -1;
		if (r == TS_TLS_INTR)
			continue;
		if (!wait_fd(c->fd, r == TS_TLS_WANT_WRITE ? POLLOUT : POLLIN,
		             deadline)) {
			snprintf(why, whylen,
			         "TLS handshake timed out after %u ms",
			         ts_state.policy->handshake_timeout_ms);
			return -1;
		}
	}
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

int ts_conn_connect(int fd, const struct sockaddr *sa, socklen_t len,
                    int *result)
{
	struct ts_dest d;
	char ip[INET6_ADDRSTRLEN], dest[64], why[512] = "";
	struct ts_conn *c = NULL;
	const struct ts_rule *rule;

	if (!sa || dest_from_sockaddr(sa, len, &d) < 0)
		return 1;
	ts_state_init();
	if (ts_state.failed) {
		if (!is_tcp_stream(fd))
			return 1;
		refuse_failed_policy();
		errno = ECONNREFUSED;
		*result = -1;
		return 0;
	}
	if (!ts_state.policy)
		return 1;
	format_dest(&d, dest, sizeof dest, ip, sizeof ip);
	/* The name the program resolved for this address, if any: host-name
	 * rules match on it, and it is the name verified without an sni. */
	char learned[TS_RESOLVE_NAME_MAX];
	if (ts_resolve_lookup(d.family, d.addr, (unsigned long)gettid(),
	                      learned, sizeof learned))
		d.host = learned;
	rule = ts_policy_match(ts_state.policy, &d);
	if (!rule) {
		ts_debug("%s: no rule matches; not upgraded", dest);
		return 1;
	}
	if (!is_tcp_stream(fd))
		return 1;
	/* Already upgraded: the kernel would say EISCONN. */
	struct ts_conn *old = ts_conn_get(fd);
	if (old && old->async) {
		int k = ts_conn_async_reconnect(old, fd, sa, len, result);
		ts_conn_put(old);
		if (k == 0)
			return 0;
		old = NULL; /* failed and reported: a fresh attempt */
	}
	if (old) {
		ts_conn_put(old);
		errno = EISCONN;
		*result = -1;
		return 0;
	}
	/* A number reused without passing through our close. */
	ts_conn_purge(fd);

	/* The name sent and verified: the rule's sni, else the name the
	 * program resolved for this address, else the IP literal (verified
	 * against the certificate's IP addresses, never sent as SNI). */
	const char *name = rule->sni ? rule->sni : d.host ? d.host : ip;
	const char *sni = rule->sni ? rule->sni : d.host;
	ts_debug("%s: rule %s, verifying %s (%s)", dest, rule->name, name,
	         rule->sni ? "sni from the rule" :
	         d.host ? "name the program resolved" :
	                  "IP literal, no SNI sent");
	warn_rule_once(rule);
	long long deadline = now_ms() + ts_state.policy->handshake_timeout_ms;

	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} target;
	memcpy(&target, sa, len < sizeof target ? len : sizeof target);
	if (rule->tls_port) {
		if (d.family == AF_INET)
			target.in.sin_port = htons(rule->tls_port);
		else
			target.in6.sin6_port = htons(rule->tls_port);
	}

	eng = ts_engine_get(why, sizeof why);
	if (!eng)
		goto fail;
	c = conn_new(fd, rule);
	if (!c) {
		snprintf(why, sizeof why, "out of memory");
		goto fail;
	}
	snprintf(c->dest, sizeof c->dest, "%s", dest);
	snprintf(c->name, sizeof c->name, "%s", name);
	int fl = REAL(fcntl)(fd, F_GETFL);
	c->nonblock = fl >= 0 && (fl & O_NONBLOCK);
	if (c->nonblock) {
		/* The event loop must not wait for the network here. */
		if (ts_conn_async_start(c, &target.sa, len, result, why,
		                        sizeof why) < 0)
			goto fail;
		ts_conn_put(c); /* the table holds it now */
		return 0;
	}

	if (tcp_connect(fd, &target.sa, len, deadline, why, sizeof why) < 0)
		goto fail;
	struct ts_tls_params tp = {
		.fd = fd,
		.rule = rule,
		.sni = sni, /* an IP literal is never sent as SNI */
		.verify_name = name,
	};
	c->tls = eng->create(&tp, why, sizeof why);
	if (!c->tls || handshake(c, deadline, why, sizeof why) < 0)
		goto fail;
	c->state = TS_CONN_READY;
	atomic_init(&c->nfds, 1);
	c->owner = ts_owner_cell_new();
	atomic_init(&c->fork_seen, ts_conn_forks());
	atomic_init(&c->used_gen, atomic_load(&c->fork_seen));
	if (!c->owner) {
		snprintf(why, sizeof why, "out of memory");
		goto fail;
	}
	if (ts_fd_install(fd, &c->ent) < 0) {
		snprintf(why, sizeof why, "out of memory");
		goto fail;
	}
	if (ts_log_level_cur >= TS_LOG_DEBUG) {
		int fdfl = REAL(fcntl)(fd, F_GETFD);
		if (fdfl >= 0 && !(fdfl & FD_CLOEXEC))
			ts_debug("%s: fd %d lacks FD_CLOEXEC: a program it "
			         "survives exec into would see the TLS stream "
			         "without the session",
			         dest, fd);
	}
	if (ts_log_level_cur >= TS_LOG_INFO) {
		char desc[128];
		eng->describe(c->tls, desc, sizeof desc);
		ts_info("%s: rule %s %s (%s): %s, verified",
		        program_invocation_short_name, rule->name, dest, name,
		        desc);
	}
	ts_conn_put(c); /* the table holds it now */
	*result = 0;
	return 0;

fail:
	ts_error("%s %s (%s): %s", rule->name, dest, name,
	         why[0] ? why : "connection failed");
	disconnect(fd);
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
		const char *r = eng->reason(c->tls);
		if (r && r[0])
			ts_warn("%s %s (%s): %s", c->rule->name, c->dest,
			        c->name, r);
	}
}

/* Another process owns the session since fork. */
static void set_lost(struct ts_conn *c)
{
	c->state = TS_CONN_BROKEN;
	c->broken_errno = EPIPE;
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
	if (c->state == TS_CONN_READY && !ts_conn_owned(c, true))
		set_lost(c);
	if (c->state == TS_CONN_BROKEN || c->wr_shut) {
		/* After SHUT_WR the kernel answers EPIPE (and SIGPIPE). */
		err = c->wr_shut && c->state != TS_CONN_BROKEN ? EPIPE
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
	c->recv_gen++;
	if (c->state == TS_CONN_READY && !ts_conn_owned(c, true))
		set_lost(c);
	if (c->state == TS_CONN_BROKEN && !c->peek_len) {
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

size_t ts_conn_pending(struct ts_conn *c, int fd)
{
	pthread_mutex_lock(&c->recv_lock);
	/* Decrypt what already arrived, without waiting, so the count is of
	 * bytes the program can read now. */
	if (c->state == TS_CONN_READY)
		(void)peek_fill(c, fd, c->peek_len + TS_CONN_STAGE, true);
	size_t n = c->peek_len + (c->tls ? eng->pending(c->tls) : 0);
	pthread_mutex_unlock(&c->recv_lock);
	return n;
}

short ts_conn_ready(struct ts_conn *c, short events)
{
	short r = 0;

	if (c->state == TS_CONN_HANDSHAKING || !c->tls)
		return 0;
	if ((events & POLLIN) &&
	    (c->eof || c->state == TS_CONN_BROKEN || c->peek_len ||
	     eng->pending(c->tls)))
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
	 * or block in read() on a blocking socket. Decrypt what arrived. */
	if (pthread_mutex_trylock(&c->recv_lock) != 0)
		return true;
	int r = peek_fill(c, fd, TS_CONN_STAGE, true);
	if (r == TS_TLS_ERR)
		(void)engine_errno(c, r);
	bool data = c->peek_len || c->eof || c->state != TS_CONN_READY;
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
	if ((r & POLLOUT) && eng->send_queued(c->tls)) {
		if (pthread_mutex_trylock(&c->send_lock) == 0) {
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
 * send_lock held. */
static void close_notify_flushed(struct ts_conn *c, int fd)
{
	long long deadline = now_ms() + ts_state.policy->handshake_timeout_ms;
	for (;;) {
		int r = eng->close_notify(c->tls, fd);
		if (r == TS_TLS_OK)
			return;
		if (r == TS_TLS_WANT_WRITE && !wait_fd(fd, POLLOUT, deadline)) {
			ts_warn("%s %s (%s): peer not reading; closing with "
			        "data unsent",
			        c->rule->name, c->dest, c->name);
			return;
		}
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

/* The last close of a session this process owns. A thread inside a read
 * takes the peer's records itself: then nothing is drained here. */
static void close_session(struct ts_conn *c, int fd)
{
	int ms = (int)ts_state.policy->handshake_timeout_ms;
	bool drain = pthread_mutex_trylock(&c->recv_lock) == 0;

	/* A reset (asked for, or data left unread): no close_notify. */
	if (!drain || !eng->close_drain(c->tls, fd, c->peek_len > 0, ms)) {
		if (!c->wr_shut)
			close_notify_flushed(c, fd);
		if (drain)
			await_sent(c, fd, true);
	}
	if (drain)
		pthread_mutex_unlock(&c->recv_lock);
}

int ts_conn_shutdown(struct ts_conn *c, int fd, int how)
{
	/* The peer learns of our half-close from close_notify first, then
	 * from the FIN. */
	if ((how == SHUT_WR || how == SHUT_RDWR) && c->state == TS_CONN_READY) {
		pthread_mutex_lock(&c->send_lock);
		if (c->state == TS_CONN_READY && !c->wr_shut &&
		    ts_conn_owned(c, true)) {
			close_notify_flushed(c, fd);
			/* A program may exit without close() (socat does). */
			if (pthread_mutex_trylock(&c->recv_lock) == 0) {
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

/* One fd number less refers to c; true when it was the last. */
static bool drop_alias(struct ts_conn *c)
{
	return atomic_fetch_sub(&c->nfds, 1) == 1;
}

void ts_conn_alias(int newfd, struct ts_conn *c)
{
	atomic_fetch_add(&c->nfds, 1);
	if (ts_fd_install(newfd, &c->ent) < 0) {
		/* Out of memory: the new fd must not carry plaintext. */
		atomic_fetch_sub(&c->nfds, 1);
		ts_error("%s %s: cannot track duplicated fd %d; closing it",
		         c->rule->name, c->dest, newfd);
		REAL(shutdown)(newfd, SHUT_RDWR);
	}
}

void ts_conn_purge(int fd)
{
	struct ts_fdent *e = ts_fd_remove(fd);
	if (!e)
		return;
	struct ts_conn *c = (struct ts_conn *)e;
	ts_debug("fd %d reused: forgetting %s %s", fd, c->rule->name, c->dest);
	if (drop_alias(c)) {
		pthread_mutex_lock(&c->send_lock);
		c->state = TS_CONN_BROKEN;
		c->broken_errno = EBADF;
		pthread_mutex_unlock(&c->send_lock);
	}
	ts_fdent_put(e);
}

void ts_conn_forget(int fd)
{
	struct ts_fdent *e = ts_fd_remove(fd);
	if (!e)
		return;
	struct ts_conn *c = (struct ts_conn *)e;
	if (!drop_alias(c)) {
		ts_fdent_put(e); /* another fd still names the session */
		return;
	}
	/* close_notify goes out now, while fd still names this socket; a
	 * thread still inside a call drops the last reference later. */
	pthread_mutex_lock(&c->send_lock);
	if (c->state == TS_CONN_READY && ts_conn_owned(c, false))
		close_session(c, fd);
	c->state = TS_CONN_BROKEN;
	c->broken_errno = EBADF;
	pthread_mutex_unlock(&c->send_lock);
	ts_info("%s %s (%s): closed, %llu bytes out, %llu bytes in",
	        c->rule->name, c->dest, c->name,
	        (unsigned long long)c->bytes_out,
	        (unsigned long long)c->bytes_in);
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
		if (c->state == TS_CONN_READY && ts_conn_owned(c, false) &&
		    pthread_mutex_trylock(&c->recv_lock) == 0) {
			int ms = (int)ts_state.policy->handshake_timeout_ms;
			/* After shutdown(SHUT_WR) it also waits for our last
			 * bytes, as the close would. */
			if (!eng->close_drain(c->tls, fd, c->peek_len > 0, ms))
				await_sent(c, fd, true);
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
