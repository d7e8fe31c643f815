/* A session's I/O: the transport GnuTLS calls (through the libc functions
 * handed to ts_engine_init), and send, flush and recv under the session's
 * lock (see ts_tls_enter in tls.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#include "tls.h"

/* One record's payload: a send never takes more, so a queued record is
 * always exactly what the caller was told was taken. */
#define MAX_CHUNK 16384

__thread struct ts_tls_xfer *ts_tls_cur;
__thread struct ts_tls *ts_tls_holding;

/* The transport callbacks: GnuTLS calls them only inside enter/leave. */
/* The transport callbacks: GnuTLS calls them only inside enter/leave. */
static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct ts_tls *t = p;
	struct ts_tls_xfer *x = ts_tls_cur;
	bool wait = !(x->recv_flags & MSG_DONTWAIT);

	if (wait)
		ts_tls_drop(t);
	ssize_t n = ts_tls_io.recv(ts_tls_xfd(t, x), buf, len, x->recv_flags);
	int e = errno;
	if (wait)
		ts_tls_retake(t);
	if (n < 0) {
		x->pull_errno = e;
		x->pull_eagain = e == EAGAIN || e == EWOULDBLOCK;
		gnutls_transport_set_errno(t->s, e);
	} else if (t->nfirst < sizeof t->first) {
		size_t k = sizeof t->first - t->nfirst;
		memcpy(t->first + t->nfirst, buf, (size_t)n < k ? (size_t)n : k);
		t->nfirst += (size_t)n < k ? (unsigned)n : (unsigned)k;
	}
	errno = e;
	return n;
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct ts_tls *t = p;
	struct ts_tls_xfer *x = ts_tls_cur;
	struct pollfd pfd = {.fd = ts_tls_xfd(t, x), .events = POLLIN};
	int timeout = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms;

	if (x->recv_flags & MSG_DONTWAIT)
		timeout = 0;
	if (timeout == 0)
		return ts_tls_io.poll(&pfd, 1, 0);
	ts_tls_drop(t);
	int r = ts_tls_io.poll(&pfd, 1, timeout), e = errno;
	ts_tls_retake(t);
	errno = e;
	return r;
}

static ssize_t push(gnutls_transport_ptr_t p, const giovec_t *iov, int cnt)
{
	struct ts_tls *t = p;
	struct ts_tls_xfer *x = ts_tls_cur;
	struct msghdr m = {.msg_iov = (struct iovec *)iov,
	                   .msg_iovlen = (size_t)cnt};

	bool wait = !(x->send_flags & MSG_DONTWAIT);

	if (wait)
		ts_tls_drop(t);
	ssize_t n = ts_tls_io.sendmsg(ts_tls_xfd(t, x), &m, x->send_flags);
	int e = errno;
	if (wait)
		ts_tls_retake(t);
	if (n < 0) {
		x->push_errno = e;
		gnutls_transport_set_errno(t->s, e);
	}
	errno = e;
	return n;
}
void ts_tls_transport_set(struct ts_tls *t)
{
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_pull_function(t->s, pull);
	gnutls_transport_set_pull_timeout_function(t->s, pull_timeout);
	gnutls_transport_set_vec_push_function(t->s, push);
}


/* A call this thread cannot make now (ts_tls_enter): EINTR. */
int ts_tls_intr(void)
{
	errno = EINTR;
	return TS_TLS_INTR;
}

void ts_tls_set_reason(struct ts_tls *t, int ret)
{
	if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		unsigned status = gnutls_session_get_verify_cert_status(t->s);
		gnutls_datum_t out = {0};
		if (gnutls_certificate_verification_status_print(
			    status, GNUTLS_CRT_X509, &out, 0) == 0) {
			snprintf(t->reason, sizeof t->reason, "%s",
			         (char *)out.data);
			gnutls_free(out.data);
			/* GnuTLS ends its text with a space. */
			size_t n = strlen(t->reason);
			while (n && t->reason[n - 1] == ' ')
				t->reason[--n] = '\0';
			return;
		}
	}
	if (t->server && (ret == GNUTLS_E_CERTIFICATE_REQUIRED ||
	                  ret == GNUTLS_E_NO_CERTIFICATE_FOUND)) {
		snprintf(t->reason, sizeof t->reason,
		         "the client sent no certificate (client-ca asks for "
		         "one)");
		return;
	}
	/* GnuTLS says "No supported cipher suites" also when only the
	 * versions differ: name the keys that decide both. */
	if (t->server && (ret == GNUTLS_E_NO_CIPHER_SUITES ||
	                  ret == GNUTLS_E_UNSUPPORTED_VERSION_PACKET ||
	                  ret == GNUTLS_E_NO_PRIORITIES_WERE_SET)) {
		snprintf(t->reason, sizeof t->reason,
		         "the client offers no TLS version and cipher suite the "
		         "rule allows (see min-version, max-version, priority): "
		         "%s", gnutls_strerror(ret));
		return;
	}
	if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED && t->server) {
		snprintf(t->reason, sizeof t->reason,
		         "the client sent a fatal alert: %s",
		         gnutls_alert_get_name(gnutls_alert_get(t->s)));
		return;
	}
	if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		gnutls_alert_description_t a = gnutls_alert_get(t->s);
		snprintf(t->reason, sizeof t->reason,
		         "the server sent a fatal alert: %s%s",
		         gnutls_alert_get_name(a),
		         a == GNUTLS_A_PROTOCOL_VERSION ?
		                 " (it speaks no TLS version the rule "
		                 "accepts: see min-version)" :
		         a == GNUTLS_A_CERTIFICATE_REQUIRED ?
		                 " (configure client-cert and client-key)" :
		                 "");
		return;
	}
	if (ret == GNUTLS_E_PUSH_ERROR || ret == GNUTLS_E_PULL_ERROR) {
		int e = !ts_tls_cur                       ? EIO
		        : ret == GNUTLS_E_PUSH_ERROR ? ts_tls_cur->push_errno
		                                     : ts_tls_cur->pull_errno;
		snprintf(t->reason, sizeof t->reason, "%s", strerror(e));
		return;
	}
	if (ret == GNUTLS_E_PREMATURE_TERMINATION) {
		snprintf(t->reason, sizeof t->reason,
		         t->server ? "the client closed the connection during "
		                     "the handshake (it may not trust this "
		                     "server's certificate)"
		                   : "the server closed the connection");
		return;
	}
	snprintf(t->reason, sizeof t->reason, "%s", gnutls_strerror(ret));
}

/* errno for a fatal session error, as close to the kernel's as we can. */
int ts_tls_fatal_errno(int ret)
{
	if (ts_tls_cur && ret == GNUTLS_E_PULL_ERROR && ts_tls_cur->pull_errno)
		return ts_tls_cur->pull_errno;
	if (ts_tls_cur && ret == GNUTLS_E_PUSH_ERROR && ts_tls_cur->push_errno)
		return ts_tls_cur->push_errno;
	return ECONNRESET;
}

/* Flush a queued record through ts_tls_cur's fd and flags. */
int ts_tls_flush_locked(struct ts_tls *t)
{
	ssize_t ret;

	if (!t->queued)
		return TS_TLS_OK;
	ret = gnutls_record_send(t->s, NULL, 0);
	if (ret >= 0) {
		t->queued = false;
		return TS_TLS_OK;
	}
	if (ret == GNUTLS_E_AGAIN)
		return TS_TLS_WANT_WRITE;
	if (ret == GNUTLS_E_INTERRUPTED)
		return TS_TLS_INTR;
	ts_tls_set_reason(t, (int)ret);
	errno = ts_tls_fatal_errno((int)ret);
	return TS_TLS_ERR;
}

int ts_tls_flush(struct ts_tls *t, int fd, int flags)
{
	struct ts_tls_xfer x = {.fd = fd, .send_flags = flags};
	if (!ts_tls_enter(t, &x))
		return ts_tls_intr();
	int rc = ts_tls_flush_locked(t);
	ts_tls_leave(t);
	return rc;
}

static ssize_t send_locked(struct ts_tls *t, int fd, const void *buf,
                           size_t len)
{
	size_t chunk = len < MAX_CHUNK ? len : MAX_CHUNK;
	ssize_t ret;
	int rc = ts_tls_flush_locked(t);

	if (rc != TS_TLS_OK)
		return rc;
	if (len == 0)
		return 0;
	ret = gnutls_record_send(t->s, buf, chunk);
	if (t->nodelay)
		t->nodelay = ts_nodelay_sent(fd, t->nodelay);
	if (ret >= 0)
		return ret;
	/* The record is encrypted and queued: the bytes are taken, and the
	 * next call flushes them before anything new. */
	if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
		t->queued = true;
		return (ssize_t)chunk;
	}
	ts_tls_set_reason(t, (int)ret);
	errno = ts_tls_fatal_errno((int)ret);
	return TS_TLS_ERR;
}

ssize_t ts_tls_send(struct ts_tls *t, int fd, const void *buf,
                        size_t len, int flags)
{
	struct ts_tls_xfer x = {.fd = fd, .send_flags = flags};
	if (!ts_tls_enter(t, &x))
		return ts_tls_intr();
	ssize_t r = send_locked(t, fd, buf, len);
	ts_tls_leave(t);
	return r;
}

static ssize_t recv_locked(struct ts_tls *t, void *buf, size_t len)
{
	ssize_t ret;

	if (t->has_held && len) {
		/* The rest of its record is decrypted: no wait for more. */
		*(unsigned char *)buf = t->held;
		t->has_held = false;
		ret = len > 1 && gnutls_record_check_pending(t->s) ?
		              gnutls_record_recv(t->s, (char *)buf + 1, len - 1) :
		              0;
		return 1 + (ret > 0 ? ret : 0);
	}
	for (;;) {
		ts_tls_cur->pull_eagain = false;
		if (t->end_ret) {
			ret = t->end_ret;
			ts_tls_cur->pull_errno = t->end_errno;
		} else {
			ret = gnutls_record_recv(t->s, buf, len);
		}
		if (ret >= 0)
			return ret;
		switch (ret) {
		case GNUTLS_E_AGAIN:
			/* GnuTLS also says AGAIN after consuming a
			 * post-handshake message (a TLS 1.3 ticket) on a
			 * blocking socket: only the transport's own EAGAIN
			 * is reported. */
			if (ts_tls_cur->pull_eagain)
				return TS_TLS_WANT_READ;
			continue;
		case GNUTLS_E_INTERRUPTED:
			return TS_TLS_INTR;
		case GNUTLS_E_PREMATURE_TERMINATION:
			/* EOF without close_notify: reads end as at EOF; the
			 * reason lets the caller note a possible truncation. */
			snprintf(t->reason, sizeof t->reason,
			         "the %s ended the stream without "
			         "close_notify", t->server ? "client" : "server");
			return 0;
		case GNUTLS_E_REHANDSHAKE:
			/* Renegotiation is not offered; keep reading. */
			continue;
		default:
			if (!gnutls_error_is_fatal((int)ret))
				continue;
			ts_tls_set_reason(t, (int)ret);
			errno = ts_tls_fatal_errno((int)ret);
			return TS_TLS_ERR;
		}
	}
}

ssize_t ts_tls_recv(struct ts_tls *t, int fd, void *buf, size_t len,
                        int flags)
{
	/* A response GnuTLS sends while receiving must never block or
	 * raise SIGPIPE behind the program's back. */
	bool outside = !(flags & MSG_DONTWAIT) && !__libc_single_threaded;
	struct ts_tls_xfer x = {.fd = fd,
	                 .recv_flags = outside ? MSG_DONTWAIT
	                                       : flags & MSG_DONTWAIT,
	                 .send_flags = MSG_NOSIGNAL | (flags & MSG_DONTWAIT)};
	for (;;) {
		if (!ts_tls_enter(t, &x))
			return ts_tls_intr();
		ssize_t r = recv_locked(t, buf, len);
		ts_tls_leave(t);
		if (r != TS_TLS_WANT_READ || !outside)
			return r;
		char c;
		ssize_t n = ts_tls_io.recv(ts_tls_xfd(t, &x), &c, 1, MSG_PEEK);
		if (n < 0 && errno == EINTR)
			return TS_TLS_INTR;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return TS_TLS_WANT_READ; /* SO_RCVTIMEO ran out */
		/* Bytes, EOF or an error: GnuTLS takes it from here. */
	}
}

size_t ts_tls_pending(struct ts_tls *t)
{
	pthread_mutex_lock(&t->lock);
	size_t n = gnutls_record_check_pending(t->s) + t->has_held;
	pthread_mutex_unlock(&t->lock);
	return n;
}

bool ts_tls_send_queued(struct ts_tls *t)
{
	pthread_mutex_lock(&t->lock);
	bool q = t->queued;
	pthread_mutex_unlock(&t->lock);
	return q;
}

