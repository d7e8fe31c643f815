/* The engine in memory: client sessions of the engine, driven through
 * struct ts_engine as the preload drives them, against a GnuTLS server in
 * this process, both over byte queues instead of sockets (the engine's
 * transport is the struct ts_engine_io handed to ts_engine_init; the
 * server's is GnuTLS's pull/push). So what verification accepts and
 * refuses is judged without starting a server: a good chain, a wrong
 * name, an unknown or rogue CA, an expired leaf, a leaf without the
 * server-auth purpose, a missing intermediate, pins on and off the
 * validated path, an IP literal. The certificates are made here, at
 * start (ECDSA P-256: cheap under valgrind). Table-driven: one row a
 * case, and what the engine must answer. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "engine.h"
#include "check.h"

/* Far above any fd this process opens: the engine's only look at the
 * kernel with it (getpeername, for the resumption key) fails, and no
 * session is ever cached. */
#define CLIENT_FD 900

/* ---- the wire: two byte queues ---- */

struct queue {
	unsigned char buf[1 << 16];
	size_t len;
};
static struct queue to_server, to_client;

static void queue_put(struct queue *q, const void *p, size_t n)
{
	if (n > sizeof q->buf - q->len)
		abort(); /* a handshake is a few KiB */
	memcpy(q->buf + q->len, p, n);
	q->len += n;
}

/* -1 with EAGAIN when empty: neither side ever blocks. */
static ssize_t queue_take(struct queue *q, void *p, size_t n, bool peek)
{
	if (!q->len) {
		errno = EAGAIN;
		return -1;
	}
	if (n > q->len)
		n = q->len;
	memcpy(p, q->buf, n);
	if (!peek) {
		memmove(q->buf, q->buf + n, q->len - n);
		q->len -= n;
	}
	return (ssize_t)n;
}

/* The engine's transport (struct ts_engine_io). */
static ssize_t io_recv(int fd, void *buf, size_t len, int flags)
{
	(void)fd;
	return queue_take(&to_client, buf, len, flags & MSG_PEEK);
}

static ssize_t io_sendmsg(int fd, const struct msghdr *m, int flags)
{
	size_t n = 0;

	(void)fd;
	(void)flags;
	for (size_t i = 0; i < m->msg_iovlen; i++) {
		queue_put(&to_server, m->msg_iov[i].iov_base,
		          m->msg_iov[i].iov_len);
		n += m->msg_iov[i].iov_len;
	}
	return (ssize_t)n;
}

static int io_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	int k = 0;

	(void)timeout;
	for (nfds_t i = 0; i < n; i++) {
		fds[i].revents = (short)(fds[i].events & POLLOUT);
		if ((fds[i].events & POLLIN) && to_client.len)
			fds[i].revents |= POLLIN;
		k += fds[i].revents != 0;
	}
	return k;
}

/* TCP_NODELAY, TCP_INFO, SO_LINGER: all zero, as on a fresh socket. */
static int io_getsockopt(int fd, int level, int opt, void *val,
                         socklen_t *len)
{
	(void)fd;
	(void)level;
	(void)opt;
	memset(val, 0, *len);
	return 0;
}

static int io_setsockopt(int fd, int level, int opt, const void *val,
                         socklen_t len)
{
	(void)fd;
	(void)level;
	(void)opt;
	(void)val;
	(void)len;
	return 0;
}

static const struct ts_engine_io io = {
	.recv = io_recv,
	.sendmsg = io_sendmsg,
	.poll = io_poll,
	.getsockopt = io_getsockopt,
	.setsockopt = io_setsockopt,
	.write = write,
	.close = close,
};

/* The server's transport. */
static ssize_t srv_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	ssize_t n = queue_take(&to_server, buf, len, false);
	if (n < 0)
		gnutls_transport_set_errno((gnutls_session_t)p, EAGAIN);
	return n;
}

static ssize_t srv_push(gnutls_transport_ptr_t p, const void *buf,
                        size_t len)
{
	(void)p;
	queue_put(&to_client, buf, len);
	return (ssize_t)len;
}

/* ---- the lab PKI ---- */

struct id {
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
};

static struct id root, inter, leaf, other, expired, client_only, rogue,
	rogue_leaf;

static gnutls_x509_privkey_t new_key(void)
{
	gnutls_x509_privkey_t k;

	if (gnutls_x509_privkey_init(&k) < 0 ||
	    gnutls_x509_privkey_generate(
		    k, GNUTLS_PK_ECDSA,
		    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0)
		abort();
	return k;
}

struct spec {
	const char *cn;
	const struct id *issuer; /* NULL: self-signed */
	bool ca;
	const char *purpose;     /* key purpose OID, or NULL */
	const char *dns, *ip;    /* subject alternative names */
	long from, until;        /* validity, in days from now */
};

static void make(struct id *id, const struct spec *s, unsigned serial)
{
	gnutls_x509_crt_t c;
	unsigned char sn[4] = {0, 0, (unsigned char)(serial >> 8),
	                       (unsigned char)serial};
	unsigned char kid[64], ip[4];
	size_t kl = sizeof kid;
	time_t now = time(NULL);
	const struct id *iss = s->issuer ? s->issuer : id;
	int bad = 0;

	id->key = new_key();
	if (gnutls_x509_crt_init(&c) < 0)
		abort();
	id->crt = c;
	bad |= gnutls_x509_crt_set_version(c, 3);
	bad |= gnutls_x509_crt_set_serial(c, sn, sizeof sn);
	bad |= gnutls_x509_crt_set_activation_time(c, now + s->from * 86400);
	bad |= gnutls_x509_crt_set_expiration_time(c, now + s->until * 86400);
	bad |= gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME,
	                                     0, s->cn, strlen(s->cn));
	bad |= gnutls_x509_crt_set_key(c, id->key);
	bad |= gnutls_x509_crt_set_basic_constraints(c, s->ca, -1);
	bad |= gnutls_x509_crt_set_key_usage(
		c, s->ca ? GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN
		         : GNUTLS_KEY_DIGITAL_SIGNATURE);
	if (s->purpose)
		bad |= gnutls_x509_crt_set_key_purpose_oid(c, s->purpose, 0);
	if (s->dns)
		bad |= gnutls_x509_crt_set_subject_alt_name(
			c, GNUTLS_SAN_DNSNAME, s->dns, strlen(s->dns),
			GNUTLS_FSAN_APPEND);
	if (s->ip && inet_pton(AF_INET, s->ip, ip) == 1)
		bad |= gnutls_x509_crt_set_subject_alt_name(
			c, GNUTLS_SAN_IPADDRESS, ip, sizeof ip,
			GNUTLS_FSAN_APPEND);
	bad |= gnutls_x509_crt_get_key_id(c, 0, kid, &kl);
	bad |= gnutls_x509_crt_set_subject_key_id(c, kid, kl);
	if (s->issuer) {
		kl = sizeof kid;
		bad |= gnutls_x509_crt_get_subject_key_id(iss->crt, kid, &kl,
		                                          NULL);
		bad |= gnutls_x509_crt_set_authority_key_id(c, kid, kl);
	}
	bad |= gnutls_x509_crt_sign2(c, iss->crt, iss->key, GNUTLS_DIG_SHA256,
	                             0);
	if (bad < 0)
		abort();
}

static void free_id(struct id *id)
{
	gnutls_x509_crt_deinit(id->crt);
	gnutls_x509_privkey_deinit(id->key);
}

static void pki(void)
{
	make(&root, &(struct spec){"lab root", NULL, true, NULL, NULL, NULL,
	                           -1, 3650}, 1);
	make(&inter, &(struct spec){"lab intermediate", &root, true, NULL,
	                            NULL, NULL, -1, 3650}, 2);
	make(&leaf, &(struct spec){"api.lab.test", &inter, false,
	                           GNUTLS_KP_TLS_WWW_SERVER, "api.lab.test",
	                           "127.0.0.1", -1, 365}, 3);
	/* The same name, another key. */
	make(&other, &(struct spec){"api.lab.test", &inter, false,
	                            GNUTLS_KP_TLS_WWW_SERVER, "api.lab.test",
	                            NULL, -1, 365}, 4);
	make(&expired, &(struct spec){"api.lab.test", &inter, false,
	                              GNUTLS_KP_TLS_WWW_SERVER,
	                              "api.lab.test", NULL, -30, -1}, 5);
	make(&client_only, &(struct spec){"api.lab.test", &inter, false,
	                                  GNUTLS_KP_TLS_WWW_CLIENT,
	                                  "api.lab.test", NULL, -1, 365}, 6);
	make(&rogue, &(struct spec){"lab root", NULL, true, NULL, NULL, NULL,
	                            -1, 3650}, 1);
	make(&rogue_leaf, &(struct spec){"api.lab.test", &rogue, false,
	                                 GNUTLS_KP_TLS_WWW_SERVER,
	                                 "api.lab.test", NULL, -1, 365}, 7);
}

/* PEM of crt, as a ca-file's bytes. */
static struct ts_blob pem_of(const struct id *id)
{
	gnutls_datum_t d;
	struct ts_blob b;

	if (gnutls_x509_crt_export2(id->crt, GNUTLS_X509_FMT_PEM, &d) < 0)
		abort();
	b.data = malloc(d.size + 1);
	if (!b.data)
		abort();
	memcpy(b.data, d.data, d.size);
	b.data[d.size] = '\0';
	b.len = d.size;
	gnutls_free(d.data);
	return b;
}

/* pin-sha256 of id's key: SHA-256 of its SubjectPublicKeyInfo. */
static void pin_of(const struct id *id, uint8_t pin[32])
{
	size_t n = 32;

	if (gnutls_x509_crt_get_key_id(id->crt, GNUTLS_KEYID_USE_SHA256, pin,
	                               &n) < 0 || n != 32)
		abort();
}

/* ---- the cases ---- */

struct row {
	const char *what;
	const struct id *served[3]; /* what the server sends, leaf first */
	const struct id *anchor;    /* ca-file */
	const char *verify;         /* the name verified */
	bool sni;                   /* sent as SNI */
	const struct id *pin;       /* pin-sha256 of this one's key, or NULL */
	bool ok;                    /* verified? */
	const char *reason;         /* else: part of the engine's reason */
};

static const struct row rows[] = {
	{"chain to the anchor", {&leaf, &inter}, &root, "api.lab.test", true,
	 NULL, true, NULL},
	{"a name the certificate does not carry", {&leaf, &inter}, &root,
	 "www.lab.test", true, NULL, false,
	 "The name in the certificate does not match the expected"},
	{"an IP literal among the IP addresses", {&leaf, &inter}, &root,
	 "127.0.0.1", false, NULL, true, NULL},
	{"an IP literal the certificate does not carry", {&leaf, &inter},
	 &root, "127.0.0.2", false, NULL, false,
	 "The name in the certificate does not match the expected"},
	{"a chain to another anchor", {&leaf, &inter}, &rogue,
	 "api.lab.test", true, NULL, false, "issuer is unknown"},
	{"a rogue CA of the same name", {&rogue_leaf, NULL}, &root,
	 "api.lab.test", true, NULL, false, "issuer is unknown"},
	{"an expired leaf", {&expired, &inter}, &root, "api.lab.test", true,
	 NULL, false, "uses expired certificate"},
	{"a leaf for client authentication only", {&client_only, &inter},
	 &root, "api.lab.test", true, NULL, false,
	 "does not match the intended purpose"},
	{"the intermediate not sent", {&leaf, NULL}, &root, "api.lab.test",
	 true, NULL, false, "issuer is unknown"},
	{"a pin of the intermediate, on the path", {&leaf, &inter}, &root,
	 "api.lab.test", true, &inter, true, NULL},
	{"a pin of the anchor, on the path", {&leaf, &inter}, &root,
	 "api.lab.test", true, &root, true, NULL},
	{"a pin of the leaf", {&leaf, &inter}, &root, "api.lab.test", true,
	 &leaf, true, NULL},
	{"a pin of another key for the same name", {&leaf, &inter}, &root,
	 "api.lab.test", true, &other, false, "no pin-sha256 matches"},
	{"a pin of a certificate sent beside the path", {&leaf, &inter, &rogue},
	 &root, "api.lab.test", true, &rogue, false, "no pin-sha256 matches"},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* One rule per row, never reused: the engine keeps credentials per rule. */
static struct ts_rule rules[NROWS];
static uint8_t pins[NROWS][32];
static struct ts_blob anchors[NROWS];

static void rule_for(size_t i)
{
	const struct row *w = &rows[i];
	struct ts_rule *r = &rules[i];

	r->name = (char *)"v";
	/* No such file: the engine keeps the bytes the policy read. */
	r->ca_file = (char *)"(in memory)";
	anchors[i] = pem_of(w->anchor);
	r->ca = anchors[i];
	if (w->pin) {
		pin_of(w->pin, pins[i]);
		r->pins = &pins[i];
		r->npins = 1;
	}
}

struct server {
	gnutls_session_t s;
	gnutls_certificate_credentials_t cred;
	bool done;
};

static void server_start(struct server *sv, const struct row *w)
{
	gnutls_x509_crt_t chain[3];
	unsigned n = 0;

	while (n < 3 && w->served[n]) {
		chain[n] = w->served[n]->crt;
		n++;
	}
	sv->done = false;
	if (gnutls_certificate_allocate_credentials(&sv->cred) < 0 ||
	    gnutls_certificate_set_x509_key(sv->cred, chain, n,
	                                    w->served[0]->key) < 0 ||
	    gnutls_init(&sv->s, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0 ||
	    gnutls_set_default_priority(sv->s) < 0 ||
	    gnutls_credentials_set(sv->s, GNUTLS_CRD_CERTIFICATE, sv->cred) < 0)
		abort();
	gnutls_transport_set_ptr(sv->s, sv->s);
	gnutls_transport_set_pull_function(sv->s, srv_pull);
	gnutls_transport_set_push_function(sv->s, srv_push);
}

static void server_step(struct server *sv)
{
	if (sv->done)
		return;
	int r = gnutls_handshake(sv->s);
	sv->done = r == 0 || gnutls_error_is_fatal(r);
}

static void server_end(struct server *sv)
{
	gnutls_deinit(sv->s);
	gnutls_certificate_free_credentials(sv->cred);
}

/* The client's handshake against the server, in turns, until the engine
 * says OK or ERR (bounded: a handshake takes a few turns). */
static int handshake(const struct ts_engine *e, struct ts_tls *t,
                     struct server *sv, char *why, size_t len)
{
	for (int turn = 0; turn < 64; turn++) {
		int r = e->handshake(t, why, len);
		if (r == TS_TLS_OK || r == TS_TLS_ERR)
			return r;
		server_step(sv);
	}
	snprintf(why, len, "no verdict after 64 turns");
	return TS_TLS_ERR;
}

/* After a verified handshake the session carries data both ways, and
 * only as ciphertext. */
static void exchange(const struct ts_engine *e, struct ts_tls *t,
                     struct server *sv, const char *what)
{
	static const char up[] = "TLSSHIM-PLAINTEXT-MARKER up";
	char buf[128];
	ssize_t n;

	/* The server takes the client's Finished first. */
	for (int turn = 0; turn < 8 && !sv->done; turn++)
		server_step(sv);
	CHECK(e->send(t, CLIENT_FD, up, sizeof up - 1, 0) ==
	              (ssize_t)(sizeof up - 1), "%s: send", what);
	CHECK(!memmem(to_server.buf, to_server.len, "MARKER", 6),
	      "%s: plaintext on the wire", what);
	do
		n = gnutls_record_recv(sv->s, buf, sizeof buf);
	while (n == GNUTLS_E_AGAIN && to_server.len);
	CHECK(n == (ssize_t)(sizeof up - 1) && !memcmp(buf, up, (size_t)n),
	      "%s: the server got %zd bytes", what, n);
	CHECK(gnutls_record_send(sv->s, "down", 4) == 4, "%s", what);
	n = e->recv(t, CLIENT_FD, buf, sizeof buf, MSG_DONTWAIT);
	CHECK(n == 4 && !memcmp(buf, "down", 4), "%s: recv %zd", what, n);
}

static void run_row(const struct ts_engine *e, size_t i)
{
	const struct row *w = &rows[i];
	struct ts_tls_params p = {
		.fd = CLIENT_FD,
		.rule = &rules[i],
		.sni = w->sni ? w->verify : NULL,
		.verify_name = w->verify,
	};
	char why[512] = "";
	struct server sv;

	to_server.len = to_client.len = 0;
	rule_for(i);
	server_start(&sv, w);
	struct ts_tls *t = e->create(&p, why, sizeof why);
	CHECK(t != NULL, "%s: create: %s", w->what, why);
	if (!t) {
		server_end(&sv);
		return;
	}
	int r = handshake(e, t, &sv, why, sizeof why);
	if (w->ok) {
		CHECK(r == TS_TLS_OK, "%s: refused: %s", w->what, why);
		if (r == TS_TLS_OK)
			exchange(e, t, &sv, w->what);
	} else {
		CHECK(r == TS_TLS_ERR, "%s: accepted", w->what);
		CHECK(strstr(why, w->reason) != NULL,
		      "%s: reason '%s', expected '%s'", w->what, why,
		      w->reason);
		CHECK(!strcmp(e->reason(t), why), "%s: reason() '%s'",
		      w->what, e->reason(t));
	}
	e->destroy(t);
	server_end(&sv);
}

int main(void)
{
	const struct ts_engine *e;

	if (gnutls_global_init() < 0)
		return 1;
	pki();
	e = ts_engine_init(&io);
	CHECK(e && e->abi == TS_ENGINE_ABI, "ts_engine_init");
	if (!e)
		return check_summary();
	for (size_t i = 0; i < NROWS; i++)
		run_row(e, i);
	for (size_t i = 0; i < NROWS; i++)
		free(anchors[i].data);
	struct id *ids[] = {&root, &inter, &leaf, &other, &expired,
	                    &client_only, &rogue, &rogue_leaf};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
		free_id(ids[i]);
	gnutls_global_deinit();
	return check_summary();
}
