/* The TLS engine: GnuTLS client sessions behind struct ts_engine.
 *
 * Knows GnuTLS and the policy's data; knows nothing of hooks or the fd
 * table. All transport I/O goes through the real libc functions handed to
 * ts_engine_init(), never through symbols GnuTLS would resolve to our hooks. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_notsent_bytes */
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "base64.h"
#include "clock.h"
#include "engine.h"
#include "tls.h"
#include "tls_cache.h"
#include "tls_nodelay.h"
#include "tls_verify.h"

#define EXPORT __attribute__((visibility("default")))

/* One record's payload: a send never takes more, so a queued record is
 * always exactly what the caller was told was taken. */
#define MAX_CHUNK 16384

struct ts_engine_io ts_tls_io;

struct ts_tls {
	/* First: GnuTLS has one user pointer per session; tls_cache.c sets
	 * it to &ckey, which is then also the address of this ts_tls. */
	struct ts_tls_cache_key ckey; /* resumption (tls_cache.c) */
	gnutls_session_t s;
	/* Held by every GnuTLS call on the session, released only while the
	 * transport waits in the kernel (see enter()). */
	pthread_mutex_t lock;
	int fd;           /* the fd the session was created on (handshake) */
	bool queued;      /* a record is encrypted but not yet sent */
	bool bye_sent;
	/* The first byte of application data a drain at close or shutdown
	 * decrypted (it reads one byte to learn what a record holds): the
	 * next recv returns it first. */
	bool has_held;
	unsigned char held;
	/* How the stream ended when such a drain met its end (GnuTLS's code
	 * and the transport's errno): the next recv reports it as GnuTLS
	 * reported it to the drain. 0: not met. */
	int end_ret, end_errno;
	/* The first bytes the server sent: a refusal names them when they
	 * are not TLS. */
	unsigned char first[32];
	unsigned nfirst;
	/* GnuTLS keeps pointers to these until the handshake verifies. */
	gnutls_typed_vdata_st vdata[2];
	enum ts_nodelay nodelay; /* Nagle around the handshake */
	char verify_name[256];
	char reason[512];
	const struct ts_rule *rule;
	struct ts_cred *cred;     /* the rule's credentials (a reference) */
	struct ts_verify verify;  /* the chain GnuTLS verified (tls_verify.c) */
	int keylog_fd;    /* keylog-file, opened per session; -1: none */
	/* Where the transport goes instead of the fd of the call while the
	 * program's number names something else (exec's swap); -1: none. */
	_Atomic int io_fd;
};
_Static_assert(offsetof(struct ts_tls, ckey) == 0,
               "the session pointer is both the ts_tls and its cache key");

/* One engine call's transport: the fd and flags the program's call asked
 * for, and what the kernel answered. It lives on the caller's stack and
 * is found through a thread-local pointer, so that when one thread sends
 * while another receives on the same session, each transport callback
 * sees its own thread's call. */
struct xfer {
	int fd;
	int send_flags;   /* MSG_* for pushes */
	int recv_flags;   /* MSG_* for pulls */
	int pull_errno;   /* errno of the last failed pull, 0 if none */
	int push_errno;
	bool pull_eagain; /* the transport itself said EAGAIN */
};
static __thread struct xfer *cur;

/* GnuTLS lets one thread send while another receives, but a TLS 1.3
 * KeyUpdate then races: updating one direction's keys copies the whole
 * record state into a new epoch, and a receive in progress in the other
 * thread (which looked its epoch up before waiting for the record) goes
 * on in the old one; the next record fails with "Decryption has failed"
 * (tests/stress/stress_keyupdate.c). So every GnuTLS call runs under the
 * session's lock, and
 *  - a send may wait in the kernel with the lock dropped (its record is
 *    encrypted before it waits, so a copy made meanwhile is current);
 *  - a receive never waits inside GnuTLS once the process has threads:
 *    its pull does not block, and the wait happens outside GnuTLS with
 *    the lock dropped, in a 1-byte MSG_PEEK recv that blocks exactly as
 *    the program's own recv would (SO_RCVTIMEO, SA_RESTART, EINTR).
 * A single-threaded process cannot interleave, and keeps the one
 * blocking recv per wait. */
static void enter(struct ts_tls *t, struct xfer *x)
{
	pthread_mutex_lock(&t->lock);
	cur = x;
}

static void leave(struct ts_tls *t)
{
	cur = NULL;
	pthread_mutex_unlock(&t->lock);
}

/* The socket a transport call uses: read at every call, so one waiting
 * across a change of io_fd goes on with the socket itself. */
static int xfd(struct ts_tls *t, const struct xfer *x)
{
	int fd = atomic_load_explicit(&t->io_fd, memory_order_acquire);
	return fd >= 0 ? fd : x->fd;
}

/* The transport callbacks: GnuTLS calls them only inside enter/leave. */
static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct ts_tls *t = p;
	struct xfer *x = cur;
	bool wait = !(x->recv_flags & MSG_DONTWAIT);

	if (wait)
		pthread_mutex_unlock(&t->lock);
	ssize_t n = ts_tls_io.recv(xfd(t, x), buf, len, x->recv_flags);
	int e = errno;
	if (wait)
		pthread_mutex_lock(&t->lock);
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

/* A server that does not speak TLS on the port (an SMTP or MySQL greeting,
 * an HTTP error) makes GnuTLS say only "An unexpected TLS packet was
 * received". Every TLS record starts with a content type (20..24) and
 * major version 3. When the first bytes are anything else, the reason
 * says so and shows them, escaped: they come from the network, and no
 * control character may reach a terminal or a log raw. */
static bool not_tls_reason(struct ts_tls *t)
{
	char shown[sizeof t->first * 4 + 1];
	size_t o = 0;

	if (!t->nfirst || ((t->first[0] >= 20 && t->first[0] <= 24) &&
	                   (t->nfirst < 2 || t->first[1] == 3)))
		return false;
	/* GnuTLS stopped at a record header: a greeting line has mostly
	 * arrived with it. The connection is refused anyway. */
	ssize_t n = ts_tls_io.recv(cur->fd, t->first + t->nfirst,
	                    sizeof t->first - t->nfirst, MSG_DONTWAIT);
	if (n > 0)
		t->nfirst += (unsigned)n;
	for (unsigned i = 0; i < t->nfirst; i++) {
		unsigned char c = t->first[i];
		const char *esc = c == '\\' ? "\\\\" : c == '"' ? "\\\"" :
		                  c == '\r' ? "\\r" : c == '\n' ? "\\n" :
		                  c == '\t' ? "\\t" : NULL;
		if (esc)
			o += (size_t)snprintf(shown + o, sizeof shown - o, "%s",
			                      esc);
		else if (c >= 0x20 && c < 0x7f)
			shown[o++] = (char)c;
		else
			o += (size_t)snprintf(shown + o, sizeof shown - o,
			                      "\\x%02x", c);
	}
	shown[o] = '\0';
	snprintf(t->reason, sizeof t->reason,
	         "the server does not speak TLS on this port (it sent: "
	         "\"%s\"%s)", shown,
	         t->nfirst == sizeof t->first ? "..." : "");
	return true;
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct ts_tls *t = p;
	struct xfer *x = cur;
	struct pollfd pfd = {.fd = xfd(t, x), .events = POLLIN};
	int timeout = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms;

	if (x->recv_flags & MSG_DONTWAIT)
		timeout = 0;
	if (timeout == 0)
		return ts_tls_io.poll(&pfd, 1, 0);
	pthread_mutex_unlock(&t->lock);
	int r = ts_tls_io.poll(&pfd, 1, timeout), e = errno;
	pthread_mutex_lock(&t->lock);
	errno = e;
	return r;
}

static ssize_t push(gnutls_transport_ptr_t p, const giovec_t *iov, int cnt)
{
	struct ts_tls *t = p;
	struct xfer *x = cur;
	struct msghdr m = {.msg_iov = (struct iovec *)iov,
	                   .msg_iovlen = (size_t)cnt};

	bool wait = !(x->send_flags & MSG_DONTWAIT);

	if (wait)
		pthread_mutex_unlock(&t->lock);
	ssize_t n = ts_tls_io.sendmsg(xfd(t, x), &m, x->send_flags);
	int e = errno;
	if (wait)
		pthread_mutex_lock(&t->lock);
	if (n < 0) {
		x->push_errno = e;
		gnutls_transport_set_errno(t->s, e);
	}
	errno = e;
	return n;
}

/* The host's SSLKEYLOGFILE must not receive our session keys: GnuTLS
 * writes it for every session unless a keylog function is installed. */
static int no_keylog(gnutls_session_t s, const char *label,
                     const gnutls_datum_t *secret)
{
	(void)s;
	(void)label;
	(void)secret;
	return 0;
}

/* keylog-file: NSS key log format, one line per secret, appended. */
static int to_keylog(gnutls_session_t s, const char *label,
                     const gnutls_datum_t *secret)
{
	/* The session's user pointer belongs to tls_cache.c; the transport
	 * pointer is ours. */
	struct ts_tls *t = gnutls_transport_get_ptr(s);
	gnutls_datum_t crand, srand;
	char line[512];
	size_t n;

	if (!t || t->keylog_fd < 0 || secret->size > 64)
		return 0;
	gnutls_session_get_random(s, &crand, &srand);
	n = (size_t)snprintf(line, sizeof line, "%s ", label);
	for (unsigned i = 0; i < crand.size && n + 3 < sizeof line; i++)
		n += (size_t)snprintf(line + n, sizeof line - n, "%02x",
		                      crand.data[i]);
	line[n++] = ' ';
	for (unsigned i = 0; i < secret->size && n + 3 < sizeof line; i++)
		n += (size_t)snprintf(line + n, sizeof line - n, "%02x",
		                      secret->data[i]);
	line[n++] = '\n';
	/* One write of a whole line with O_APPEND: lines of concurrent
	 * sessions do not interleave. */
	if (ts_tls_io.write(t->keylog_fd, line, n) < 0)
		return 0;
	return 0;
}

/* keylog-file: the session's secrets go only to a regular file of this
 * user's that nobody else may read, and never through a symbolic link
 * (one planted there would send them wherever it points). Opened per
 * session: -1 with the reason when refused. */
static int open_keylog(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
	                            O_NOCTTY | O_NOFOLLOW | O_NONBLOCK,
	              0600);

	if (fd < 0) {
		snprintf(err, errlen, "keylog-file %s: %s", path,
		         errno == ELOOP ? "a symbolic link: refused (name the "
		                          "file itself)"
		                        : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0)
		snprintf(err, errlen, "keylog-file %s: %s", path,
		         strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(err, errlen, "keylog-file %s: not a regular file: "
		         "refused", path);
	else if (st.st_uid != geteuid())
		snprintf(err, errlen, "keylog-file %s: owned by uid %u, not by "
		         "this user (uid %u): refused", path,
		         (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_mode & 077)
		snprintf(err, errlen, "keylog-file %s: mode %04o lets group or "
		         "others at the session keys: refused (chmod 600 it)",
		         path, (unsigned)(st.st_mode & 07777));
	else
		return fd;
	ts_tls_io.close(fd);
	return -1;
}

/* The name to send and verify as the certificate means it: lower case,
 * without the root's trailing dot ("Host.Example." is host.example). A
 * name libc would read as an IPv4 address but that is not one in the
 * dotted quad ("127.1", "0x7f000001") is refused: as a DNS name GnuTLS
 * would match it against DNS names and even the subject's CN, never
 * against the certificate's IP addresses. */
static int take_name(const char *in, char *out, size_t len, char *err,
                     size_t errlen)
{
	unsigned char ip[16];
	struct in_addr a;
	size_t n = strlen(in);

	if (n && in[n - 1] == '.')
		n--;
	if (!n || n >= len) {
		snprintf(err, errlen, "bad name to verify: '%.64s'", in);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32
		                                              : in[i]);
	out[n] = '\0';
	if (inet_pton(AF_INET, out, ip) != 1 &&
	    inet_pton(AF_INET6, out, ip) != 1 && inet_aton(out, &a)) {
		snprintf(err, errlen, "the name '%.64s' is an IPv4 address in "
		         "a non-standard form: it cannot be verified as a name "
		         "(use the address itself)", out);
		return -1;
	}
	return 0;
}

static struct ts_tls *tls_create(const struct ts_tls_params *p, char *err,
                                 size_t errlen)
{
	struct ts_tls *t = calloc(1, sizeof *t);
	struct ts_cred *cr;
	char sni[256];
	int ret;

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->fd = p->fd;
	t->keylog_fd = -1;
	atomic_init(&t->io_fd, -1);
	pthread_mutex_init(&t->lock, NULL);
	t->rule = p->rule;
	if (take_name(p->verify_name, t->verify_name, sizeof t->verify_name,
	              err, errlen) < 0 ||
	    (p->sni && take_name(p->sni, sni, sizeof sni, err, errlen) < 0))
		goto err;
	cr = t->cred = ts_cred_get(p->rule, err, errlen);
	if (!cr)
		goto err;
	ret = gnutls_init(&t->s, GNUTLS_CLIENT);
	if (ret < 0)
		goto gerr;
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_pull_function(t->s, pull);
	gnutls_transport_set_pull_timeout_function(t->s, pull_timeout);
	gnutls_transport_set_vec_push_function(t->s, push);
	if (p->rule->keylog_file) {
		t->keylog_fd = open_keylog(p->rule->keylog_file, err, errlen);
		if (t->keylog_fd < 0)
			goto err;
		gnutls_session_set_keylog_function(t->s, to_keylog);
	} else {
		gnutls_session_set_keylog_function(t->s, no_keylog);
	}
	ret = gnutls_priority_set(t->s, cr->prio);
	if (ret < 0)
		goto gerr;
	ret = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, cr->xcred);
	if (ret < 0)
		goto gerr;
	if (cr->nalpn) {
		ret = gnutls_alpn_set_protocols(t->s, cr->alpn, cr->nalpn, 0);
		if (ret < 0)
			goto gerr;
	}
	if (p->sni) {
		ret = gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, sni,
		                             strlen(sni));
		if (ret < 0)
			goto gerr;
	}
	/* Chain, name and the server-auth key purpose, checked inside the
	 * handshake. No verify callback is installed: a session's verify
	 * function replaces these checks, and one on the credentials is not
	 * even called once this is set. The verify output function only
	 * records the path GnuTLS validated; revocation, stapled OCSP,
	 * must-staple, pins, the session floor and ALPN are judged on it
	 * after the handshake, before anything is sent (tls_verify.c). */
	t->vdata[0].type = GNUTLS_DT_DNS_HOSTNAME;
	t->vdata[0].data = (unsigned char *)t->verify_name;
	t->vdata[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
	t->vdata[1].data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER;
	gnutls_session_set_verify_cert2(t->s, t->vdata, 2, 0);
	ts_verify_session_init(t->s);
	ts_tls_cache_attach(t->s, &t->ckey, p, cr->trust_id);
	return t;
gerr:
	snprintf(err, errlen, "%s", gnutls_strerror(ret));
err:
	if (t->s)
		gnutls_deinit(t->s);
	if (t->keylog_fd >= 0)
		ts_tls_io.close(t->keylog_fd);
	ts_cred_put(t->cred);
	pthread_mutex_destroy(&t->lock);
	free(t);
	return NULL;
}

/* In TLS 1.3 a server judges the client's certificate after the client's
 * handshake is over: a server that demands one would only say so once the
 * program's first bytes were sent. So a TLS 1.3 server that asks for a
 * certificate when the rule has none is refused here, before any byte
 * leaves. (In TLS 1.2 the server's verdict ends the handshake.) */
static int check_client_cert(struct ts_tls *t)
{
	if (t->rule->client_cert ||
	    gnutls_protocol_get_version(t->s) != GNUTLS_TLS1_3 ||
	    !gnutls_certificate_client_get_request_status(t->s))
		return 0;
	snprintf(t->reason, sizeof t->reason,
	         "the server asks for a client certificate and the rule has "
	         "none (client-cert, client-key)");
	return -1;
}

static int check_alpn(struct ts_tls *t)
{
	gnutls_datum_t sel;

	if (gnutls_alpn_get_selected_protocol(t->s, &sel) == 0)
		return 0;
	snprintf(t->reason, sizeof t->reason,
	         "alpn-required: the server selected none of the offered "
	         "protocols (ALPN)");
	return -1;
}

/* Checks made once the chain and name verified, before the connection is
 * handed to the program: nothing of the program's has been sent. */
static int after_handshake(struct ts_tls *t)
{
	if (ts_verify_after(t->s, &t->verify, t->cred, &t->ckey.until,
	                    t->reason, sizeof t->reason) < 0)
		return -1;
	if (t->rule->alpn_required && check_alpn(t) < 0)
		return -1;
	if (check_client_cert(t) < 0)
		return -1;
	return 0;
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
		int e = !cur                       ? EIO
		        : ret == GNUTLS_E_PUSH_ERROR ? cur->push_errno
		                                     : cur->pull_errno;
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
static int fatal_errno(int ret)
{
	if (cur && ret == GNUTLS_E_PULL_ERROR && cur->pull_errno)
		return cur->pull_errno;
	if (cur && ret == GNUTLS_E_PUSH_ERROR && cur->push_errno)
		return cur->push_errno;
	return ECONNRESET;
}

static int handshake_locked(struct ts_tls *t, char *err, size_t errlen)
{
	int ret;

	ts_tls_cache_begin(t->s);
	bool nd = ts_nodelay_step(t->fd);
	ts_verify_capture(&t->verify);
	ret = gnutls_handshake(t->s);
	ts_verify_capture(NULL);
	t->nodelay = ts_nodelay_step_end(t->fd, nd, ret == 0);
	if (ret == 0) {
		if (after_handshake(t) == 0) {
			ts_tls_cache_handshake_done(t->s);
			return TS_TLS_OK;
		}
		(void)gnutls_alert_send(t->s, GNUTLS_AL_FATAL,
		                        GNUTLS_A_BAD_CERTIFICATE);
		snprintf(err, errlen, "%s", t->reason);
		errno = ECONNREFUSED;
		return TS_TLS_ERR;
	}
	if (ret == GNUTLS_E_AGAIN)
		return gnutls_record_get_direction(t->s) ? TS_TLS_WANT_WRITE
		                                         : TS_TLS_WANT_READ;
	if (ret == GNUTLS_E_INTERRUPTED)
		return TS_TLS_INTR;
	if (!gnutls_error_is_fatal(ret))
		return TS_TLS_WANT_READ;
	if (!not_tls_reason(t))
		set_reason(t, ret);
	snprintf(err, errlen, "%s", t->reason);
	errno = fatal_errno(ret);
	return TS_TLS_ERR;
}

static int tls_handshake(struct ts_tls *t, char *err, size_t errlen)
{
	struct xfer x = {.fd = t->fd,
	                 .send_flags = MSG_DONTWAIT | MSG_NOSIGNAL,
	                 .recv_flags = MSG_DONTWAIT};
	enter(t, &x);
	int rc = handshake_locked(t, err, errlen);
	leave(t);
	return rc;
}

/* Flush a queued record through cur's fd and flags. */
static int flush_locked(struct ts_tls *t)
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
	set_reason(t, (int)ret);
	errno = fatal_errno((int)ret);
	return TS_TLS_ERR;
}

static int tls_flush(struct ts_tls *t, int fd, int flags)
{
	struct xfer x = {.fd = fd, .send_flags = flags};
	enter(t, &x);
	int rc = flush_locked(t);
	leave(t);
	return rc;
}

static ssize_t send_locked(struct ts_tls *t, int fd, const void *buf,
                           size_t len)
{
	size_t chunk = len < MAX_CHUNK ? len : MAX_CHUNK;
	ssize_t ret;
	int rc = flush_locked(t);

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
	set_reason(t, (int)ret);
	errno = fatal_errno((int)ret);
	return TS_TLS_ERR;
}

static ssize_t tls_send(struct ts_tls *t, int fd, const void *buf,
                        size_t len, int flags)
{
	struct xfer x = {.fd = fd, .send_flags = flags};
	enter(t, &x);
	ssize_t r = send_locked(t, fd, buf, len);
	leave(t);
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
		cur->pull_eagain = false;
		if (t->end_ret) {
			ret = t->end_ret;
			cur->pull_errno = t->end_errno;
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
			if (cur->pull_eagain)
				return TS_TLS_WANT_READ;
			continue;
		case GNUTLS_E_INTERRUPTED:
			return TS_TLS_INTR;
		case GNUTLS_E_PREMATURE_TERMINATION:
			/* EOF without close_notify: reads end as at EOF; the
			 * reason lets the caller note a possible truncation. */
			snprintf(t->reason, sizeof t->reason,
			         "the server ended the stream without "
			         "close_notify");
			return 0;
		case GNUTLS_E_REHANDSHAKE:
			/* Renegotiation is not offered; keep reading. */
			continue;
		default:
			if (!gnutls_error_is_fatal((int)ret))
				continue;
			set_reason(t, (int)ret);
			errno = fatal_errno((int)ret);
			return TS_TLS_ERR;
		}
	}
}

static ssize_t tls_recv(struct ts_tls *t, int fd, void *buf, size_t len,
                        int flags)
{
	/* A response GnuTLS sends while receiving must never block or
	 * raise SIGPIPE behind the program's back. */
	bool outside = !(flags & MSG_DONTWAIT) && !__libc_single_threaded;
	struct xfer x = {.fd = fd,
	                 .recv_flags = outside ? MSG_DONTWAIT
	                                       : flags & MSG_DONTWAIT,
	                 .send_flags = MSG_NOSIGNAL | (flags & MSG_DONTWAIT)};
	for (;;) {
		enter(t, &x);
		ssize_t r = recv_locked(t, buf, len);
		leave(t);
		if (r != TS_TLS_WANT_READ || !outside)
			return r;
		char c;
		ssize_t n = ts_tls_io.recv(xfd(t, &x), &c, 1, MSG_PEEK);
		if (n < 0 && errno == EINTR)
			return TS_TLS_INTR;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return TS_TLS_WANT_READ; /* SO_RCVTIMEO ran out */
		/* Bytes, EOF or an error: GnuTLS takes it from here. */
	}
}

static size_t tls_pending(struct ts_tls *t)
{
	pthread_mutex_lock(&t->lock);
	size_t n = gnutls_record_check_pending(t->s) + t->has_held;
	pthread_mutex_unlock(&t->lock);
	return n;
}

static bool tls_send_queued(struct ts_tls *t)
{
	pthread_mutex_lock(&t->lock);
	bool q = t->queued;
	pthread_mutex_unlock(&t->lock);
	return q;
}

static int close_notify_locked(struct ts_tls *t)
{
	int rc;

	if (t->bye_sent)
		return TS_TLS_OK;
	rc = flush_locked(t);
	if (rc == TS_TLS_WANT_WRITE || rc == TS_TLS_INTR)
		return rc;
	rc = rc == TS_TLS_OK ? gnutls_bye(t->s, GNUTLS_SHUT_WR) : 0;
	if (rc == GNUTLS_E_AGAIN)
		return TS_TLS_WANT_WRITE;
	if (rc == GNUTLS_E_INTERRUPTED)
		return TS_TLS_INTR;
	t->bye_sent = true;
	return TS_TLS_OK;
}

static int tls_close_notify(struct ts_tls *t, int fd)
{
	struct xfer x = {.fd = fd, .send_flags = MSG_DONTWAIT | MSG_NOSIGNAL};
	enter(t, &x);
	int rc = close_notify_locked(t);
	leave(t);
	return rc;
}

/* ---- closing ----
 *
 * A TLS 1.3 server sends records the program never sees as data: session
 * tickets once the handshake is over, a KeyUpdate whenever it likes. The
 * kernel answers a close() that leaves bytes unread in the socket, and
 * any byte that arrives after it, with a reset that discards all it has
 * not sent yet: the end of an upload, silently (issue 14, and
 * tests/80-close-upload.bats). So the close consumes those records, and
 * waits for the ones still to come while our bytes are unsent. Application
 * data left unread keeps the kernel's answer, a reset, as over TCP. */

/* Bytes of ours a reset would lose: not sent yet, or sent and lost (to be
 * sent again). Bytes in flight reach the peer before the reset does; to
 * wait for their ACK would cost a delayed ACK (40 ms) at many closes. */
static bool unsent(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;

	memset(&ti, 0, sizeof ti);
	if (ts_tls_io.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return false;
	return ti.tcpi_notsent_bytes > 0 || ti.tcpi_lost > 0;
}

enum drained { DRAINED_EMPTY, DRAINED_DATA, DRAINED_END };

/* Consumes, without waiting, the records queued in the kernel that carry
 * no application data (GnuTLS answers a KeyUpdate request before our next
 * application data, so after close_notify none is owed). Stops at
 * application data (DATA: it stays in the session, its first byte in
 * held), at the peer's close_notify, EOF or a fatal error (END), and at
 * the deadline: a peer that sends tickets without end cannot hold us. */
static enum drained drain_locked(struct ts_tls *t, long long deadline)
{
	for (;;) {
		if (t->has_held || gnutls_record_check_pending(t->s))
			return DRAINED_DATA;
		cur->pull_eagain = false;
		ssize_t ret = gnutls_record_recv(t->s, &t->held, 1);
		if (ret > 0) {
			t->has_held = true;
			return DRAINED_DATA;
		}
		if (ret == GNUTLS_E_AGAIN && cur->pull_eagain)
			return DRAINED_EMPTY;
		if (ret == 0)
			return DRAINED_END; /* close_notify: recv says 0 again */
		if (ret != GNUTLS_E_AGAIN && ret != GNUTLS_E_INTERRUPTED &&
		    ret != GNUTLS_E_REHANDSHAKE &&
		    gnutls_error_is_fatal((int)ret)) {
			/* GnuTLS would say "invalidated" from now on. */
			t->end_ret = (int)ret;
			t->end_errno = cur->pull_errno;
			return DRAINED_END;
		}
		if (ts_now_ms() >= deadline)
			return DRAINED_EMPTY;
	}
}

static void set_reset(int fd)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};
	(void)ts_tls_io.setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

static bool tls_close_drain(struct ts_tls *t, int fd, bool unread,
                            int timeout_ms)
{
	struct xfer x = {.fd = fd,
	                 .recv_flags = MSG_DONTWAIT,
	                 .send_flags = MSG_DONTWAIT | MSG_NOSIGNAL};
	struct linger l = {0};
	socklen_t len = sizeof l;

	/* The program's own SO_LINGER {1, 0}: it asks for a reset. */
	if (ts_tls_io.getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0 &&
	    l.l_onoff && !l.l_linger)
		return true;
	if (!unread) {
		enter(t, &x);
		unread = drain_locked(t, ts_now_ms() + timeout_ms) == DRAINED_DATA;
		leave(t);
	}
	if (unread)
		set_reset(fd);
	return unread;
}

static int tls_close_linger(struct ts_tls *t, int fd, bool closing,
                            int timeout_ms)
{
	struct xfer x = {.fd = fd,
	                 .recv_flags = MSG_DONTWAIT,
	                 .send_flags = MSG_DONTWAIT | MSG_NOSIGNAL};
	long long deadline = ts_now_ms() + timeout_ms;
	int step = 1, rc = TS_TLS_OK;

	ts_nodelay_push(fd);
	enter(t, &x);
	enum drained d = drain_locked(t, deadline);
	/* Without close_notify out, the peer was not reading: no wait. */
	while (d == DRAINED_EMPTY && t->bye_sent && unsent(fd)) {
		long long left = deadline - ts_now_ms();
		if (left <= 0) {
			rc = TS_TLS_WANT_WRITE;
			break;
		}
		/* No event says "acknowledged": poll for the peer's records
		 * with a timeout that grows to 64 ms. */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		leave(t);
		int n = ts_tls_io.poll(&p, 1, step < left ? step : (int)left);
		enter(t, &x);
		if (step < 64)
			step *= 2;
		if (n > 0)
			d = drain_locked(t, deadline);
	}
	/* Data after close(): TCP would reset too. After shutdown() it is
	 * the program's to read. At END the peer sends nothing more. */
	if (d == DRAINED_DATA && closing)
		set_reset(fd);
	leave(t);
	return rc;
}

static const char *tls_reason(struct ts_tls *t)
{
	return t->reason;
}

static void tls_describe(struct ts_tls *t, char *buf, size_t len)
{
	pthread_mutex_lock(&t->lock);
	const char *v =
		gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
	const char *c = gnutls_cipher_get_name(gnutls_cipher_get(t->s));
	snprintf(buf, len, "%s %s%s", v ? v : "?", c ? c : "?",
	         gnutls_session_is_resumed(t->s) ? " resumed" : "");
	pthread_mutex_unlock(&t->lock);
}

static void tls_destroy(struct ts_tls *t)
{
	if (!t)
		return;
	gnutls_deinit(t->s);
	if (t->keylog_fd >= 0)
		ts_tls_io.close(t->keylog_fd);
	ts_verify_clear(&t->verify);
	ts_cred_put(t->cred);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* In a forked child: a thread that held the lock is gone. */
static void tls_child_reset(struct ts_tls *t)
{
	pthread_mutex_init(&t->lock, NULL);
	atomic_store(&t->io_fd, -1);
}

/* A new process, made by any fork: a thread that held a global lock is
 * gone (libc's fork has handlers for these; the others do not). */
static void tls_process_reset(void)
{
	ts_cred_child_reset();
	ts_tls_cache_child_reset();
}

static void tls_set_io_fd(struct ts_tls *t, int fd)
{
	atomic_store_explicit(&t->io_fd, fd, memory_order_release);
}

/* For tlsshim --check: everything the engine would judge at the first
 * connect of this rule. */
static int tls_check_rule(const struct ts_rule *r, char *err, size_t errlen)
{
	return ts_cred_check(r, err, errlen);
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
	.close_drain = tls_close_drain,
	.close_linger = tls_close_linger,
	.reason = tls_reason,
	.describe = tls_describe,
	.destroy = tls_destroy,
	.child_reset = tls_child_reset,
	.set_io_fd = tls_set_io_fd,
	.process_reset = tls_process_reset,
	.check_rule = tls_check_rule,
};

EXPORT const struct ts_engine *ts_engine_init(const struct ts_engine_io *tio)
{
	if (gnutls_global_init() < 0)
		return NULL;
	ts_cred_init();
	ts_tls_io = *tio;
	ts_nodelay_bind(&ts_tls_io);
	return &ops;
}

/* For tlsshim --explain: the versions r's sessions offer. */
EXPORT int ts_engine_versions(const struct ts_rule *r, char *buf, size_t len,
                              char *err, size_t errlen)
{
	return ts_cred_versions(r, buf, len, err, errlen);
}

/* ---- probe (tlsshim --probe) ----
 *
 * Self-contained: what the session negotiated and the peer's chain, for
 * the launcher, one line at a time through out(). Called after the
 * handshake, whether it verified or not: the chain is what one needs to
 * debug a failure or write a pin. Public data only, never key material. */

static void probe_time(time_t t, char *buf, size_t len)
{
	struct tm tm;
	if (t == (time_t)-1 || !gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "?");
}

static void probe_cert(const gnutls_datum_t *der, unsigned idx,
                       void (*out)(void *, const char *), void *ctx)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = {0};
	char line[1024], a[64], b[64];
	unsigned char id[64];
	size_t idlen = sizeof id;

	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
		snprintf(line, sizeof line, "cert %u: cannot parse", idx);
		out(ctx, line);
		goto done;
	}
	if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
		snprintf(line, sizeof line, "cert %u: subject: %s", idx,
		         (char *)dn.data);
		out(ctx, line);
		gnutls_free(dn.data);
		dn.data = NULL;
	}
	if (gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) == 0) {
		snprintf(line, sizeof line, "  issuer: %s", (char *)dn.data);
		out(ctx, line);
		gnutls_free(dn.data);
	}
	probe_time(gnutls_x509_crt_get_activation_time(crt), a, sizeof a);
	probe_time(gnutls_x509_crt_get_expiration_time(crt), b, sizeof b);
	snprintf(line, sizeof line, "  validity: %s to %s", a, b);
	out(ctx, line);
	for (unsigned i = 0;; i++) {
		char san[512];
		size_t sl = sizeof san - 1;
		unsigned crit;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, i, san,
		                                                &sl, &crit);
		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type == GNUTLS_SAN_DNSNAME) {
			san[sl] = '\0';
			snprintf(line, sizeof line, "  san: DNS:%s", san);
		} else if (type == GNUTLS_SAN_IPADDRESS &&
		           (sl == 4 || sl == 16)) {
			char ip[INET6_ADDRSTRLEN];
			inet_ntop(sl == 4 ? AF_INET : AF_INET6, san, ip,
			          sizeof ip);
			snprintf(line, sizeof line, "  san: IP:%s", ip);
		} else {
			continue;
		}
		out(ctx, line);
	}
	/* sha256 of the SubjectPublicKeyInfo, base64: the pin format of
	 * RFC 7469 and curl's --pinnedpubkey. */
	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id,
	                               &idlen) == 0 && idlen == 32) {
		char b64[64];
		ts_base64(id, idlen, b64, sizeof b64);
		snprintf(line, sizeof line, "  pin-sha256: %s", b64);
		out(ctx, line);
	}
done:
	gnutls_x509_crt_deinit(crt);
}

EXPORT void ts_engine_probe(struct ts_tls *t,
                            void (*out)(void *ctx, const char *line),
                            void *ctx)
{
	char line[512];
	gnutls_datum_t alpn = {0};
	const gnutls_datum_t *chain;
	unsigned n = 0;

	if (!t || !out)
		return;
	const char *v =
		gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
	const char *c = gnutls_cipher_get_name(gnutls_cipher_get(t->s));
	snprintf(line, sizeof line, "version: %s", v ? v : "(none)");
	out(ctx, line);
	snprintf(line, sizeof line, "cipher: %s", c ? c : "(none)");
	out(ctx, line);
	if (gnutls_alpn_get_selected_protocol(t->s, &alpn) == 0)
		snprintf(line, sizeof line, "alpn: %.*s", (int)alpn.size,
		         (const char *)alpn.data);
	else
		snprintf(line, sizeof line, "alpn: (none)");
	out(ctx, line);
	chain = gnutls_certificate_get_peers(t->s, &n);
	snprintf(line, sizeof line, "peer chain: %u certificate%s", n,
	         n == 1 ? "" : "s");
	out(ctx, line);
	for (unsigned i = 0; chain && i < n; i++)
		probe_cert(&chain[i], i, out, ctx);
}
