/* A session's life: made for a rule and a name (credentials, verification
 * set up before any byte is sent), its handshake and what is judged after
 * it, its end. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls.h"

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

/* The session's GnuTLS side: transport, key log, priority, credentials,
 * ALPN, SNI. 0, or -1 with the reason in err. */
static int session_setup(struct ts_tls *t, const struct ts_tls_params *p,
                         const char *sni, char *err, size_t errlen)
{
	struct ts_cred *cr = t->cred;
	int ret = gnutls_init(&t->s, t->server ? GNUTLS_SERVER : GNUTLS_CLIENT);

	if (ret < 0)
		goto gerr;
	ts_tls_transport_set(t);
	if (ts_tls_keylog_set(t, err, errlen) < 0)
		return -1;
	ret = gnutls_priority_set(t->s, cr->prio);
	if (ret < 0)
		goto gerr;
	ret = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, cr->xcred);
	if (ret < 0)
		goto gerr;
	if (t->server)
		return 0; /* serve_setup */
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
	return 0;
gerr:
	snprintf(err, errlen, "%s", gnutls_strerror(ret));
	return -1;
}

/* Chain, name and the server-auth key purpose, checked inside the
 * handshake. No verify callback is installed: a session's verify function
 * replaces these checks, and one on the credentials is not even called
 * once this is set. The verify output function only records the path
 * GnuTLS validated; revocation, stapled OCSP, must-staple, pins, the
 * session floor and ALPN are judged on it after the handshake, before
 * anything is sent (tls_verify.c). */
static void verify_setup(struct ts_tls *t)
{
	t->vdata[0].type = GNUTLS_DT_DNS_HOSTNAME;
	t->vdata[0].data = (unsigned char *)t->verify_name;
	t->vdata[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
	t->vdata[1].data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER;
	gnutls_session_set_verify_cert2(t->s, t->vdata, 2, 0);
	ts_verify_session_init(t->s);
}

/* A session tlsshim serves: the client certificate is asked for (and
 * verified inside the handshake, with the client-auth key purpose) when
 * the rule names client-ca; ALPN chooses among the rule's protocols;
 * tickets let returning clients resume. 0, or -1 with the reason. */
static int serve_setup(struct ts_tls *t, char *err, size_t errlen)
{
	struct ts_cred *cr = t->cred;
	int ret = 0;

	if (t->rule->client_ca_file) {
		gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
		t->vdata[0].type = GNUTLS_DT_KEY_PURPOSE_OID;
		t->vdata[0].data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT;
		gnutls_session_set_verify_cert2(t->s, t->vdata, 1, 0);
		ts_verify_session_init(t->s);
	}
	if (cr->nalpn)
		ret = gnutls_alpn_set_protocols(t->s, cr->alpn, cr->nalpn,
		                                GNUTLS_ALPN_SERVER_PRECEDENCE);
	if (ret >= 0)
		ret = gnutls_session_ticket_enable_server(t->s,
		                                          &cr->ticket_key);
	if (ret >= 0)
		return 0;
	snprintf(err, errlen, "%s", gnutls_strerror(ret));
	return -1;
}

struct ts_tls *ts_tls_create(const struct ts_tls_params *p, char *err,
                             size_t errlen)
{
	struct ts_tls *t = calloc(1, sizeof *t);
	char sni[256];

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->fd = p->fd;
	t->keylog_fd = -1;
	atomic_init(&t->io_fd, -1);
	pthread_mutex_init(&t->lock, NULL);
	t->rule = p->rule;
	t->server = p->server;
	if (!t->server &&
	    (take_name(p->verify_name, t->verify_name, sizeof t->verify_name,
	               err, errlen) < 0 ||
	     (p->sni && take_name(p->sni, sni, sizeof sni, err, errlen) < 0)))
		goto err;
	if (!(t->cred = ts_cred_get(p->rule, err, errlen)))
		goto err;
	if (session_setup(t, p, sni, err, errlen) < 0)
		goto err;
	if (t->server) {
		if (serve_setup(t, err, errlen) < 0)
			goto err;
		return t;
	}
	verify_setup(t);
	ts_tls_cache_attach(t->s, &t->ckey, p, t->cred->trust_id);
	return t;
err:
	ts_tls_destroy(t);
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
	t->refuse_alert = GNUTLS_A_NO_APPLICATION_PROTOCOL; /* RFC 7301 */
	snprintf(t->reason, sizeof t->reason,
	         t->server ? "alpn-required: the client offered none of the "
	                     "rule's protocols (ALPN)"
	                   : "alpn-required: the server selected none of the "
	                     "offered protocols (ALPN)");
	return -1;
}

/* Checks made once the chain and name verified, before the connection is
 * handed to the program: nothing of the program's has been sent. */
static int after_handshake(struct ts_tls *t)
{
	if (t->server) {
		if (ts_verify_client_after(t->s, &t->verify, t->cred,
		                           t->identity, sizeof t->identity,
		                           t->reason, sizeof t->reason) < 0)
			return -1;
		return t->rule->alpn_required ? check_alpn(t) : 0;
	}
	if (ts_verify_after(t->s, &t->verify, t->cred, &t->ckey.until,
	                    t->reason, sizeof t->reason) < 0)
		return -1;
	if (t->rule->alpn_required && check_alpn(t) < 0)
		return -1;
	if (check_client_cert(t) < 0)
		return -1;
	return 0;
}

/* A server that does not speak TLS on the port (an SMTP or MySQL greeting,
 * an HTTP error) makes GnuTLS say only "An unexpected TLS packet was
 * received". Every TLS record starts with a content type (20..24) and
 * major version 3. When the first bytes are anything else, the reason
 * says so and shows them, escaped: they come from the network, and no
 * control character may reach a terminal or a log raw. A client's bytes
 * may be its secrets (a password first, as Redis's AUTH): of those, only
 * enough to tell the protocol is shown. */
static bool not_tls_reason(struct ts_tls *t)
{
	char shown[sizeof t->first * 4 + 1];
	size_t o = 0;

	if (!t->nfirst || ((t->first[0] >= 20 && t->first[0] <= 24) &&
	                   (t->nfirst < 2 || t->first[1] == 3)))
		return false;
	/* GnuTLS stopped at a record header: a greeting line has mostly
	 * arrived with it. The connection is refused anyway. */
	ssize_t n = ts_tls_io.recv(ts_tls_cur->fd, t->first + t->nfirst,
	                    sizeof t->first - t->nfirst, MSG_DONTWAIT);
	if (n > 0)
		t->nfirst += (unsigned)n;
	unsigned shown_n = t->server && t->nfirst > 4 ? 4 : t->nfirst;
	for (unsigned i = 0; i < shown_n; i++) {
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
	if (t->server)
		snprintf(t->reason, sizeof t->reason,
		         "the client does not speak TLS on this port (it sent "
		         "plaintext starting \"%s\"; no more of it is logged)",
		         shown);
	else
		snprintf(t->reason, sizeof t->reason,
		         "the server does not speak TLS on this port (it sent: "
		         "\"%s\"%s)", shown,
		         t->nfirst == sizeof t->first ? "..." : "");
	return true;
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
		                        t->refuse_alert ? (gnutls_alert_description_t)
		                                                  t->refuse_alert
		                                        : GNUTLS_A_BAD_CERTIFICATE);
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
		ts_tls_set_reason(t, ret);
	snprintf(err, errlen, "%s", t->reason);
	errno = ts_tls_fatal_errno(ret);
	return TS_TLS_ERR;
}

int ts_tls_handshake(struct ts_tls *t, char *err, size_t errlen)
{
	struct ts_tls_xfer x = {.fd = t->fd,
	                 .send_flags = MSG_DONTWAIT | MSG_NOSIGNAL,
	                 .recv_flags = MSG_DONTWAIT};
	if (!ts_tls_enter(t, &x)) {
		snprintf(err, errlen, "interrupted");
		return ts_tls_intr();
	}
	int rc = handshake_locked(t, err, errlen);
	ts_tls_leave(t);
	return rc;
}

const char *ts_tls_reason(struct ts_tls *t)
{
	return t->reason;
}

void ts_tls_identity(struct ts_tls *t, char *buf, size_t len)
{
	snprintf(buf, len, "%s", t->identity);
}

void ts_tls_describe(struct ts_tls *t, char *buf, size_t len)
{
	pthread_mutex_lock(&t->lock);
	const char *v =
		gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
	const char *c = gnutls_cipher_get_name(gnutls_cipher_get(t->s));
	snprintf(buf, len, "%s %s%s", v ? v : "?", c ? c : "?",
	         gnutls_session_is_resumed(t->s) ? " resumed" : "");
	pthread_mutex_unlock(&t->lock);
}

void ts_tls_destroy(struct ts_tls *t)
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
void ts_tls_child_reset(struct ts_tls *t)
{
	pthread_mutex_init(&t->lock, NULL);
	atomic_store(&t->io_fd, -1);
}

void ts_tls_set_io_fd(struct ts_tls *t, int fd)
{
	atomic_store_explicit(&t->io_fd, fd, memory_order_release);
}

