/* The TLS engine: GnuTLS client sessions behind struct ts_engine.
 *
 * Knows GnuTLS and the policy's data; knows nothing of hooks or the fd
 * table. All transport I/O goes through the real libc functions handed to
 * ts_engine_init(), never through symbols GnuTLS would resolve to our hooks. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "engine.h"
#include "tls_cache.h"
#include "tls_nodelay.h"

#define EXPORT __attribute__((visibility("default")))

/* One record's payload: a send never takes more, so a queued record is
 * always exactly what the caller was told was taken. */
#define MAX_CHUNK 16384

/* TLS 1.0 and 1.1 are never offered. */
static const char default_priority[] =
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";

static struct ts_engine_io io;

struct ts_tls {
	gnutls_session_t s;
	int pull_fd;      /* the fds of the current calls (see engine.h) */
	int push_fd;
	int send_flags;   /* MSG_* for the push of the current call */
	int recv_flags;   /* MSG_* for the pull of the current call */
	int pull_errno;   /* errno of the last failed pull, 0 if none */
	int push_errno;
	bool pull_eagain; /* the transport itself said EAGAIN */
	bool queued;      /* a record is encrypted but not yet sent */
	bool bye_sent;
	/* GnuTLS keeps pointers to these until the handshake verifies. */
	gnutls_typed_vdata_st vdata[2];
	struct ts_tls_cache_key ckey; /* resumption (tls_cache.c) */
	enum ts_nodelay nodelay; /* Nagle around the handshake */
	char verify_name[256];
	char reason[512];
};

/* Credentials, loaded once per rule and shared read-only by every session
 * of that rule. The policy is immutable, so the rule pointer is the key. */
struct cred {
	struct cred *next;
	const struct ts_rule *rule;
	gnutls_certificate_credentials_t xcred;
};
static struct cred *creds;
static pthread_mutex_t creds_lock = PTHREAD_MUTEX_INITIALIZER;

static gnutls_certificate_credentials_t cred_get(const struct ts_rule *r,
                                                 char *err, size_t errlen)
{
	gnutls_certificate_credentials_t x = NULL;
	struct cred *c;
	int ret;

	pthread_mutex_lock(&creds_lock);
	for (c = creds; c; c = c->next)
		if (c->rule == r)
			goto found;
	c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ret = gnutls_certificate_allocate_credentials(&c->xcred);
	if (ret < 0) {
		snprintf(err, errlen, "%s", gnutls_strerror(ret));
		free(c);
		goto out;
	}
	if (r->ca.data) {
		gnutls_datum_t d = {r->ca.data, (unsigned)r->ca.len};
		ret = gnutls_certificate_set_x509_trust_mem(
			c->xcred, &d, GNUTLS_X509_FMT_PEM);
		if (ret == 0)
			ret = GNUTLS_E_NO_CERTIFICATE_FOUND;
		if (ret < 0)
			snprintf(err, errlen, "ca-file %s: %s", r->ca_file,
			         gnutls_strerror(ret));
	} else {
		ret = gnutls_certificate_set_x509_system_trust(c->xcred);
		if (ret == 0)
			ret = GNUTLS_E_NO_CERTIFICATE_FOUND;
		if (ret < 0)
			snprintf(err, errlen, "system trust store: %s",
			         gnutls_strerror(ret));
	}
	if (ret < 0) {
		gnutls_certificate_free_credentials(c->xcred);
		free(c);
		goto out;
	}
	c->rule = r;
	c->next = creds;
	creds = c;
found:
	x = c->xcred;
out:
	pthread_mutex_unlock(&creds_lock);
	return x;
}

static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct ts_tls *t = p;
	ssize_t n = io.recv(t->pull_fd, buf, len, t->recv_flags);

	if (n < 0) {
		t->pull_errno = errno;
		t->pull_eagain = errno == EAGAIN || errno == EWOULDBLOCK;
		gnutls_transport_set_errno(t->s, errno);
	}
	return n;
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct ts_tls *t = p;
	struct pollfd pfd = {.fd = t->pull_fd, .events = POLLIN};
	int timeout = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms;

	if (t->recv_flags & MSG_DONTWAIT)
		timeout = 0;
	return io.poll(&pfd, 1, timeout);
}

static ssize_t push(gnutls_transport_ptr_t p, const giovec_t *iov, int cnt)
{
	struct ts_tls *t = p;
	struct msghdr m = {.msg_iov = (struct iovec *)iov,
	                   .msg_iovlen = (size_t)cnt};
	ssize_t n = io.sendmsg(t->push_fd, &m, t->send_flags);

	if (n < 0) {
		t->push_errno = errno;
		gnutls_transport_set_errno(t->s, errno);
	}
	return n;
}

/* The host's SSLKEYLOGFILE must not receive our session keys. */
static int no_keylog(gnutls_session_t s, const char *label,
                     const gnutls_datum_t *secret)
{
	return 0;
}

static struct ts_tls *tls_create(const struct ts_tls_params *p, char *err,
                                 size_t errlen)
{
	struct ts_tls *t = calloc(1, sizeof *t);
	gnutls_certificate_credentials_t x;
	const char *errpos = NULL;
	int ret;

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->pull_fd = t->push_fd = p->fd;
	x = cred_get(p->rule, err, errlen);
	if (!x)
		goto err;
	ret = gnutls_init(&t->s, GNUTLS_CLIENT);
	if (ret < 0)
		goto gerr;
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_pull_function(t->s, pull);
	gnutls_transport_set_pull_timeout_function(t->s, pull_timeout);
	gnutls_transport_set_vec_push_function(t->s, push);
	gnutls_session_set_keylog_function(t->s, no_keylog);
	ret = gnutls_priority_set_direct(t->s, default_priority, &errpos);
	if (ret < 0)
		goto gerr;
	ret = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, x);
	if (ret < 0)
		goto gerr;
	if (p->sni) {
		ret = gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, p->sni,
		                             strlen(p->sni));
		if (ret < 0)
			goto gerr;
	}
	/* Chain, name and the server-auth key purpose, checked inside the
	 * handshake. No verify callback is installed: one would replace
	 * these checks rather than add to them. */
	if (snprintf(t->verify_name, sizeof t->verify_name, "%s",
	             p->verify_name) >= (int)sizeof t->verify_name) {
		snprintf(err, errlen, "name too long");
		goto err;
	}
	t->vdata[0].type = GNUTLS_DT_DNS_HOSTNAME;
	t->vdata[0].data = (unsigned char *)t->verify_name;
	t->vdata[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
	t->vdata[1].data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER;
	gnutls_session_set_verify_cert2(t->s, t->vdata, 2, 0);
	ts_tls_cache_attach(t->s, &t->ckey, p, default_priority);
	return t;
gerr:
	snprintf(err, errlen, "%s", gnutls_strerror(ret));
err:
	if (t->s)
		gnutls_deinit(t->s);
	free(t);
	return NULL;
}

static void set_reason(struct ts_tls *t, int ret)
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
	if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		snprintf(t->reason, sizeof t->reason,
		         "the server sent a fatal alert: %s",
		         gnutls_alert_get_name(gnutls_alert_get(t->s)));
		return;
	}
	if (ret == GNUTLS_E_PUSH_ERROR || ret == GNUTLS_E_PULL_ERROR) {
		int e = ret == GNUTLS_E_PUSH_ERROR ? t->push_errno
		                                   : t->pull_errno;
		snprintf(t->reason, sizeof t->reason, "%s", strerror(e));
		return;
	}
	if (ret == GNUTLS_E_PREMATURE_TERMINATION) {
		snprintf(t->reason, sizeof t->reason,
		         "the server closed the connection");
		return;
	}
	snprintf(t->reason, sizeof t->reason, "%s", gnutls_strerror(ret));
}

/* errno for a fatal session error, as close to the kernel's as we can. */
static int fatal_errno(struct ts_tls *t, int ret)
{
	if (ret == GNUTLS_E_PULL_ERROR && t->pull_errno)
		return t->pull_errno;
	if (ret == GNUTLS_E_PUSH_ERROR && t->push_errno)
		return t->push_errno;
	return ECONNRESET;
}

static int tls_handshake(struct ts_tls *t, char *err, size_t errlen)
{
	int ret;

	ts_tls_cache_begin(t->s);
	t->send_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
	t->recv_flags = MSG_DONTWAIT;
	bool nd = ts_nodelay_step(t->push_fd);
	ret = gnutls_handshake(t->s);
	t->nodelay = ts_nodelay_step_end(t->push_fd, nd, ret == 0);
	if (ret == 0) {
		ts_tls_cache_handshake_done(t->s);
		return TS_TLS_OK;
	}
	if (ret == GNUTLS_E_AGAIN)
		return gnutls_record_get_direction(t->s) ? TS_TLS_WANT_WRITE
		                                         : TS_TLS_WANT_READ;
	if (ret == GNUTLS_E_INTERRUPTED)
		return TS_TLS_INTR;
	if (!gnutls_error_is_fatal(ret))
		return TS_TLS_WANT_READ;
	set_reason(t, ret);
	snprintf(err, errlen, "%s", t->reason);
	errno = fatal_errno(t, ret);
	return TS_TLS_ERR;
}

static int tls_flush(struct ts_tls *t, int fd, int flags)
{
	ssize_t ret;

	if (!t->queued)
		return TS_TLS_OK;
	t->push_fd = fd;
	t->send_flags = flags;
	ret = gnutls_record_send(t->s, NULL, 0);
	if (ret >= 0) {
		t->queued = false;
		return TS_TLS_OK;
	}
	if (ret == GNUTLS_E_AGAIN)
		return TS_TLS_WANT_WRITE;
	if (ret == GNUTLS_E_INTERRUPTED)
		return TS_TLS_INTR;
	set_reason(t, (int)ret);
	errno = fatal_errno(t, (int)ret);
	return TS_TLS_ERR;
}

static ssize_t tls_send(struct ts_tls *t, int fd, const void *buf,
                        size_t len, int flags)
{
	size_t chunk = len < MAX_CHUNK ? len : MAX_CHUNK;
	ssize_t ret;
	int rc = tls_flush(t, fd, flags);

	if (rc != TS_TLS_OK)
		return rc;
	if (len == 0)
		return 0;
	t->push_fd = fd;
	t->send_flags = flags;
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
	set_reason(t, (int)ret);
	errno = fatal_errno(t, (int)ret);
	return TS_TLS_ERR;
}

static ssize_t tls_recv(struct ts_tls *t, int fd, void *buf, size_t len,
                        int flags)
{
	ssize_t ret;

	t->pull_fd = t->push_fd = fd;
	t->recv_flags = flags & MSG_DONTWAIT;
	/* A response GnuTLS sends while receiving must never block or
	 * raise SIGPIPE behind the program's back. */
	t->send_flags = MSG_NOSIGNAL | (flags & MSG_DONTWAIT);
	for (;;) {
		t->pull_eagain = false;
		ret = gnutls_record_recv(t->s, buf, len);
		if (ret >= 0)
			return ret;
		switch (ret) {
		case GNUTLS_E_AGAIN:
			/* GnuTLS also says AGAIN after consuming a
			 * post-handshake message (a TLS 1.3 ticket) on a
			 * blocking socket: only the transport's own EAGAIN
			 * is reported. */
			if (t->pull_eagain)
				return TS_TLS_WANT_READ;
			continue;
		case GNUTLS_E_INTERRUPTED:
			return TS_TLS_INTR;
		case GNUTLS_E_PREMATURE_TERMINATION:
			/* EOF without close_notify: reads end as at EOF. */
			return 0;
		case GNUTLS_E_REHANDSHAKE:
			/* Renegotiation is not offered; keep reading. */
			continue;
		default:
			if (!gnutls_error_is_fatal((int)ret))
				continue;
			set_reason(t, (int)ret);
			errno = fatal_errno(t, (int)ret);
			return TS_TLS_ERR;
		}
	}
}

static size_t tls_pending(struct ts_tls *t)
{
	return gnutls_record_check_pending(t->s);
}

static bool tls_send_queued(struct ts_tls *t)
{
	return t->queued;
}

static void tls_close_notify(struct ts_tls *t, int fd)
{
	int flags = MSG_DONTWAIT | MSG_NOSIGNAL;

	if (t->bye_sent)
		return;
	t->bye_sent = true;
	if (tls_flush(t, fd, flags) != TS_TLS_OK)
		return;
	t->push_fd = fd;
	t->send_flags = flags;
	(void)gnutls_bye(t->s, GNUTLS_SHUT_WR);
}

static const char *tls_reason(struct ts_tls *t)
{
	return t->reason;
}

static void tls_describe(struct ts_tls *t, char *buf, size_t len)
{
	const char *v =
		gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
	const char *c = gnutls_cipher_get_name(gnutls_cipher_get(t->s));
	snprintf(buf, len, "%s %s%s", v ? v : "?", c ? c : "?",
	         gnutls_session_is_resumed(t->s) ? " resumed" : "");
}

static void tls_destroy(struct ts_tls *t)
{
	if (!t)
		return;
	gnutls_deinit(t->s);
	free(t);
}

static const struct ts_engine ops = {
	.abi = TS_ENGINE_ABI,
	.create = tls_create,
	.handshake = tls_handshake,
	.send = tls_send,
	.flush = tls_flush,
	.recv = tls_recv,
	.pending = tls_pending,
	.send_queued = tls_send_queued,
	.close_notify = tls_close_notify,
	.reason = tls_reason,
	.describe = tls_describe,
	.destroy = tls_destroy,
};

EXPORT const struct ts_engine *ts_engine_init(const struct ts_engine_io *tio)
{
	if (gnutls_global_init() < 0)
		return NULL;
	io = *tio;
	return &ops;
}
