/* tlsshim --explain and --probe (see launcher.h).
 *
 * Both decide through ts_policy_decide(), the one decision the preload
 * makes at connect, for the destination as the program would reach it:
 * with the name learned when the program resolves it through libc, and,
 * for --explain, also without (a program given the address, or one that
 * resolves names itself). --explain connects nothing; it asks the engine
 * only what the rule's sessions would offer. --probe connects and
 * handshakes through the very engine the preload uses (same credentials,
 * same verification), then asks it what was negotiated and the peer
 * chain. Every line is printed escaped (escape.h): certificate names,
 * ALPN, alerts and names typed on the command line alike. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "clock.h"
#include "engine.h"
#include "engine_open.h"
#include "escape.h"
#include "launcher.h"
#include "policy.h"

void ts_launcher_say(FILE *f, const char *fmt, ...)
{
	char raw[2048], out[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	ts_escape(out, sizeof out, raw);
	fprintf(f, "%s\n", out);
}
#define say(...) ts_launcher_say(stdout, __VA_ARGS__)
#define complain(...) ts_launcher_say(stderr, __VA_ARGS__)

struct target {
	char host[256];   /* as given, lower case, brackets and the root's
	                   * trailing dot stripped: what the preload learns */
	bool is_name;     /* host is a DNS name, not an IP literal */
	uint16_t port;
};

static int parse_target(const char *s, struct target *t)
{
	const char *colon;
	size_t hl;
	char *end;

	memset(t, 0, sizeof *t);
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -1;
		hl = (size_t)(rb - s - 1);
		s++;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl > 1 && s[hl - 1] == '.')
		hl--;
	if (!hl || hl >= sizeof t->host)
		return -1;
	for (size_t i = 0; i < hl; i++)
		t->host[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32
		                                                : s[i]);
	errno = 0;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
		return -1;
	t->port = (uint16_t)p;
	unsigned char buf[16];
	t->is_name = inet_pton(AF_INET, t->host, buf) != 1 &&
	             inet_pton(AF_INET6, t->host, buf) != 1;
	return 0;
}

static int parse_or_complain(const char *target, struct target *t)
{
	if (parse_target(target, t) == 0)
		return 0;
	complain("tlsshim: bad destination '%s': expected HOST:PORT, "
	         "NAME:PORT or [IPv6]:PORT", target);
	return -1;
}

/* Resolves the target; every address, in getaddrinfo's order. */
static int resolve(const struct target *t, struct addrinfo **res)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICSERV};
	char port[8];
	snprintf(port, sizeof port, "%u", t->port);
	if (!t->is_name)
		hints.ai_flags |= AI_NUMERICHOST;
	int e = getaddrinfo(t->host, port, &hints, res);
	if (e) {
		complain("tlsshim: %s: %s", t->host,
		         e == EAI_SYSTEM ? strerror(errno) : gai_strerror(e));
		return -1;
	}
	return 0;
}

static void print_diag(void *ctx, const char *msg)
{
	(void)ctx;
	complain("%s", msg);
}

static struct ts_policy *load(const char *path)
{
	char err[512];
	return ts_policy_load(path, print_diag, NULL, err, sizeof err);
}

/* The engine, from beside the preload, as the preload loads it (with
 * libc's functions): 0, or -1 said. */
int ts_launcher_engine(const char *preload_lib, struct ts_engine_handle *e)
{
	char err[512];

	if (ts_engine_open(preload_lib, NULL, e, err, sizeof err) == 0)
		return 0;
	complain("tlsshim: %s", err);
	return -1;
}

static size_t count_certs(const struct ts_blob *b)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	size_t n = 0;
	const unsigned char *p = b->data, *end = b->data + b->len;
	while (p && p < end &&
	       (p = memmem(p, (size_t)(end - p), begin, sizeof begin - 1))) {
		n++;
		p += sizeof begin - 1;
	}
	return n;
}

/* The words of the preload's debug line for the same decision
 * ("rule R, verifying N (WHY)"), so the two can be compared. */
static const char *name_from_text(enum ts_name_from f)
{
	return f == TS_NAME_SNI       ? "sni from the rule"
	       : f == TS_NAME_LEARNED ? "name the program resolved"
	                              : "IP literal, no SNI sent";
}

static bool same_decision(const struct ts_decision *a,
                          const struct ts_decision *b)
{
	return a->verdict == b->verdict && a->rule == b->rule &&
	       a->port == b->port && a->send_sni == b->send_sni &&
	       a->name_from == b->name_from && !strcmp(a->name, b->name);
}

/* Indentation of the lines about one decision: deeper under the
 * headers that tell two decisions for one address apart. */
static const char *ind = "  ";

static void explain_upgrade(const struct ts_decision *d, uint16_t port,
                            const struct ts_engine_handle *eng)
{
	const struct ts_rule *r = d->rule;
	char vers[64], why[512];

	say("%sverdict:       upgrade: rule %s, verifying %s (%s)", ind,
	    r->name, d->name, name_from_text(d->name_from));
	say("%srule:          [%s] (line %u)", ind, r->name, r->line);
	if (d->port != port)
		say("%sconnects to:   port %u (tls-port) instead of %u", ind,
		    d->port, port);
	else
		say("%sconnects to:   port %u", ind, port);
	if (d->send_sni)
		say("%sSNI sent:      %s", ind, d->name);
	else
		say("%sSNI sent:      (none: an IP literal is never sent)",
		    ind);
	say("%sname verified: %s (%s)", ind, d->name,
	    d->name_from == TS_NAME_SNI       ? "sni of the rule"
	    : d->name_from == TS_NAME_LEARNED ? "the name the program "
	                                        "resolved"
	                                      : "the IP address, against the "
	                                        "certificate's IP SANs");
	if (r->ca.data)
		say("%strust anchors: %s (%zu certificate%s)", ind, r->ca_file,
		    count_certs(&r->ca), count_certs(&r->ca) == 1 ? "" : "s");
	else
		say("%strust anchors: the system trust store", ind);
	if (r->crl.data)
		say("%srevocation:    %s (re-read when it changes)", ind,
		    r->crl_file);
	if (!r->npins)
		say("%spins:          none (any key the trust anchors vouch "
		    "for)", ind);
	for (size_t i = 0; i < r->npins; i++) {
		char b64[64];
		ts_base64(r->pins[i], 32, b64, sizeof b64);
		say("%spin-sha256:    %s (on the validated chain, in addition "
		    "to chain and name)", ind, b64);
	}
	if (eng->versions(r, vers, sizeof vers, why, sizeof why) == 0) {
		say("%sversions:      %s", ind, vers);
	} else {
		say("%sversions:      (none)", ind);
		say("%sengine:        refuses this rule's connections: %s",
		    ind, why);
	}
	if (r->priority)
		say("%spriority:      %s", ind, r->priority);
	if (!r->nalpn)
		say("%sALPN:          none offered", ind);
	for (size_t i = 0; i < r->nalpn; i++)
		say("%sALPN:          %s%s", ind, r->alpn[i],
		    r->alpn_required && i == 0 ? " (one is required)" : "");
	if (r->client_cert)
		say("%sclient cert:   %s", ind, r->client_cert);
	if (r->keylog_file)
		say("%skeylog-file:   %s (session keys written there)", ind,
		    r->keylog_file);
	say("%schecks:        chain, name, server-auth key purpose%s%s", ind,
	    r->crl.data ? ", revocation" : "", r->npins ? ", pins" : "");
}

static void explain_decision(const struct ts_decision *d, uint16_t port,
                             const struct ts_engine_handle *eng)
{
	switch (d->verdict) {
	case TS_VERDICT_UPGRADE:
		explain_upgrade(d, port, eng);
		break;
	case TS_VERDICT_REFUSE:
		say("%sverdict:       refuse: refused: %s", ind, d->why);
		if (d->rule)
			say("%srule:          [%s] (line %u)", ind,
			    d->rule->name, d->rule->line);
		say("%sthe connect fails with ECONNREFUSED; nothing is sent",
		    ind);
		break;
	case TS_VERDICT_PASS:
		if (d->rule) {
			say("%sverdict:       pass: rule with tls = no; not "
			    "upgraded", ind);
			say("%srule:          [%s] (line %u): tls = no, an "
			    "explicit plaintext exception", ind, d->rule->name,
			    d->rule->line);
		} else {
			say("%sverdict:       pass: no rule matches; not "
			    "upgraded", ind);
			say("%sno rule matches: the connection is left alone "
			    "(plaintext)", ind);
		}
		break;
	}
}

/* A server rule: what a connection accepted on its addresses becomes. */
static void explain_serve(const struct ts_rule *r, const struct ts_engine_handle *eng)
{
	char vers[64], why[512];

	say("%sverdict:       serve TLS: rule %s; the program reads the "
	    "client's first byte only after the handshake%s", ind, r->name,
	    r->client_ca.data ? " and the client's verification" : "");
	say("%srule:          [%s] (line %u)", ind, r->name, r->line);
	say("%scertificate:   %s (%zu certificate%s, re-read when it "
	    "changes)", ind, r->cert_file, count_certs(&r->srv_cert),
	    count_certs(&r->srv_cert) == 1 ? "" : "s");
	say("%skey:           %s (re-read when it changes)", ind,
	    r->key_file);
	if (r->client_ca.data)
		say("%sclients:       a certificate is required, chained to "
		    "%s (%zu certificate%s)", ind, r->client_ca_file,
		    count_certs(&r->client_ca),
		    count_certs(&r->client_ca) == 1 ? "" : "s");
	else
		say("%sclients:       no certificate asked: any TLS client "
		    "may connect", ind);
	for (size_t i = 0; i < r->nclient_names; i++)
		say("%sclient-name:   %s%s", ind, r->client_names[i],
		    i ? "" : " (one of these must be a SAN of the client)");
	for (size_t i = 0; i < r->nclient_pins; i++) {
		char b64[64];
		ts_base64(r->client_pins[i], 32, b64, sizeof b64);
		say("%sclient pin:    %s (the client's key, in addition to "
		    "its chain)", ind, b64);
	}
	if (r->crl.data)
		say("%srevocation:    %s (client chains; re-read when it "
		    "changes)", ind, r->crl_file);
	if (eng->versions(r, vers, sizeof vers, why, sizeof why) == 0) {
		say("%sversions:      %s", ind, vers);
	} else {
		say("%sversions:      (none)", ind);
		say("%sengine:        drops this rule's clients: %s", ind,
		    why);
	}
	if (r->priority)
		say("%spriority:      %s", ind, r->priority);
	if (!r->nalpn)
		say("%sALPN:          none selected", ind);
	for (size_t i = 0; i < r->nalpn; i++)
		say("%sALPN:          %s%s", ind, r->alpn[i],
		    r->alpn_required && i == 0
		            ? " (a client offering none of these is dropped)"
		            : "");
	if (r->keylog_file)
		say("%skeylog-file:   %s (session keys written there)", ind,
		    r->keylog_file);
	say("%sresumption:    session tickets (key in memory only)", ind);
	if (r->client_ca.data)
		say("%schecks:        client chain, client-auth key purpose%s%s%s",
		    ind, r->crl.data ? ", revocation" : "",
		    r->nclient_names ? ", client-name" : "",
		    r->nclient_pins ? ", client pins" : "");
}

static void explain_accepted(const struct ts_policy *p,
                             const struct ts_dest *local,
                             const struct ts_engine_handle *eng)
{
	const struct ts_rule *r = ts_policy_accept(p, local);
	if (r) {
		explain_serve(r, eng);
		return;
	}
	say("%sverdict:       pass: no accept rule matches; connections "
	    "accepted here are left alone (plaintext)", ind);
}

/* --explain POLICY :PORT: the accept rules for a port, on any local
 * address, in the order the preload tries them. */
static int explain_port(const struct ts_policy *p, const char *target,
                        const struct ts_engine_handle *eng)
{
	char *end;
	errno = 0;
	unsigned long port = strtoul(target + 1, &end, 10);
	if (errno || *end || end == target + 1 || port < 1 || port > 65535) {
		complain("tlsshim: bad local port '%s': expected :PORT",
		         target);
		return 2;
	}
	say("policy %s", p->path);
	say("%s", "");
	say("connections the program accepts on port %lu:", port);
	ind = "    ";
	bool any = false; /* an earlier rule took some addresses */
	for (size_t i = 0; i < p->nrules; i++) {
		const struct ts_rule *r = &p->rules[i];
		char where[1024] = "";
		size_t w = 0;
		bool everywhere = false;
		for (size_t j = 0; r->server && j < r->nmatches; j++) {
			const struct ts_match *m = &r->matches[j];
			char ip[INET6_ADDRSTRLEN], pfx[8] = "";
			if (port < m->port_lo || port > m->port_hi)
				continue;
			if (m->kind == TS_MATCH_PORT) {
				everywhere = true;
				break;
			}
			inet_ntop(m->family, m->addr, ip, sizeof ip);
			if (m->prefix != (m->family == AF_INET ? 32u : 128u))
				snprintf(pfx, sizeof pfx, "/%u", m->prefix);
			w += (size_t)snprintf(where + w, sizeof where - w,
			                      "%s%s%s%s%s", w ? ", " : "",
			                      m->family == AF_INET6 ? "[" : "",
			                      ip, m->family == AF_INET6 ? "]" : "",
			                      pfx);
			if (w >= sizeof where)
				w = sizeof where - 1;
		}
		if (everywhere)
			say("  on any %slocal address:", any ? "other " : "");
		else if (w)
			say("  on %s:", where);
		else
			continue;
		explain_serve(r, eng);
		if (everywhere)
			return 0;
		any = true;
	}
	say("  on any %slocal address:", any ? "other " : "");
	say("%sverdict:       pass: no accept rule matches; connections "
	    "accepted there are left alone (plaintext)", ind);
	return 0;
}

/* What --explain and --probe both start from: the policy, the
 * destination, the engine, the destination's addresses. */
struct query {
	struct ts_policy *p;
	struct target t;
	struct ts_engine_handle eng;
	struct addrinfo *res;
};

/* 0, or -1 with everything said. */
static int query_begin(struct query *q, const char *policy, const char *target,
                       const char *preload_lib)
{
	*q = (struct query){.p = load(policy)};
	if (!q->p || parse_or_complain(target, &q->t) < 0 ||
	    ts_launcher_engine(preload_lib, &q->eng) < 0 ||
	    resolve(&q->t, &q->res) < 0)
		return -1;
	return 0;
}

static void query_end(struct query *q)
{
	if (q->res)
		freeaddrinfo(q->res);
	ts_policy_free(q->p);
}

/* ai as the destination d, said as "ip:port (name)" (after an empty line
 * when blank); false when it is no address the preload would see. */
static bool destination(const struct query *q, const struct addrinfo *ai,
                        struct ts_dest *d, bool blank)
{
	char dest[TS_DEST_STR_MAX];
	const struct target *t = &q->t;

	if (ts_dest_from_sockaddr(ai->ai_addr, ai->ai_addrlen, d) < 0)
		return false;
	ts_dest_format(d, dest, sizeof dest);
	if (blank)
		say("%s", "");
	say("%s%s%s%s", dest, t->is_name ? " (" : "", t->is_name ? t->host : "",
	    t->is_name ? ")" : "");
	return true;
}

/* One address: the decision without the name and, for a name, with it
 * (what a program that resolves it through libc gets). */
static void explain_address(const struct query *q, struct ts_dest *d)
{
	const struct target *t = &q->t;
	struct ts_decision learned, plain;

	ts_policy_decide(q->p, d, &plain);
	/* A policy with server rules: this address as a local one too, and
	 * the client decision one level deeper. */
	bool serves = ts_policy_serves(q->p);
	const char *sub = serves ? "    " : "  ";
	if (serves) {
		ind = "    ";
		say("  accepted on this local address (accept rules):");
		explain_accepted(q->p, d, &q->eng);
		say("  connected to (match rules):");
	}
	ind = sub;
	if (!t->is_name) {
		explain_decision(&plain, t->port, &q->eng);
		return;
	}
	ind = serves ? "      " : "    ";
	d->host = t->host;
	ts_policy_decide(q->p, d, &learned);
	if (same_decision(&learned, &plain)) {
		say("%swhether or not the program resolves %s through libc:",
		    sub, t->host);
		explain_decision(&learned, t->port, &q->eng);
		return;
	}
	say("%sa program that resolves %s through libc (tlsshim learns the "
	    "name):", sub, t->host);
	explain_decision(&learned, t->port, &q->eng);
	say("%sa program that does not (it was given the address, or "
	    "resolves the name itself, as curl does for localhost):", sub);
	explain_decision(&plain, t->port, &q->eng);
}

int ts_launcher_explain(const char *policy, const char *target,
                        const char *preload_lib)
{
	struct query q;
	int rv = 2;

	if (target[0] == ':') {
		/* :PORT: the accept rules for a local port. */
		struct ts_engine_handle eng;
		struct ts_policy *p = load(policy);
		if (p && ts_launcher_engine(preload_lib, &eng) == 0)
			rv = explain_port(p, target, &eng);
		ts_policy_free(p);
		return rv;
	}
	if (query_begin(&q, policy, target, preload_lib) == 0) {
		say("policy %s", q.p->path);
		for (struct addrinfo *ai = q.res; ai; ai = ai->ai_next) {
			struct ts_dest d;
			if (destination(&q, ai, &d, true))
				explain_address(&q, &d);
		}
		rv = 0;
	}
	query_end(&q);
	return rv;
}

/* ---- probe ---- */

static bool wait_fd(int fd, short ev, long long deadline)
{
	for (;;) {
		long long left = deadline - ts_now_ms();
		if (left <= 0)
			return false;
		struct pollfd pfd = {fd, ev, 0};
		int n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return true;
		if (n < 0 && errno != EINTR)
			return false;
	}
}

static void print_line(void *ctx, const char *line)
{
	(void)ctx;
	say("  %s", line);
}

/* A TCP connection to ai's address at port, bounded by deadline: the fd,
 * or -1 with the reason in why. */
static int connect_to(const struct addrinfo *ai, uint16_t port,
                      long long deadline, char *why, size_t len)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} sa;
	int soerr = 0, fd;
	socklen_t sl = sizeof soerr;

	memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
	if (ai->ai_family == AF_INET)
		sa.in.sin_port = htons(port);
	else
		sa.in6.sin6_port = htons(port);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	            0);
	if (fd < 0) {
		snprintf(why, len, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, &sa.sa, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS)
		snprintf(why, len, "%s", strerror(errno));
	else if (!wait_fd(fd, POLLOUT, deadline))
		snprintf(why, len, "connect timed out");
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
	         soerr)
		snprintf(why, len, "%s", strerror(soerr));
	else
		return fd;
	close(fd);
	return -1;
}

/* The handshake of t on fd, bounded by deadline: 0 verified, else 1 with
 * the reason in why. */
static int handshake(const struct ts_engine_handle *eng, struct ts_tls *t,
                     int fd, const struct ts_policy *p, long long deadline,
                     char *why, size_t len)
{
	for (;;) {
		int h = eng->ops->handshake(t, why, len);
		if (h == TS_TLS_OK)
			return 0;
		if (h == TS_TLS_ERR)
			return 1;
		if (h == TS_TLS_INTR)
			continue;
		if (!wait_fd(fd, h == TS_TLS_WANT_WRITE ? POLLOUT : POLLIN,
		             deadline)) {
			snprintf(why, len, "TLS handshake timed out after %u ms",
			         p->handshake_timeout_ms);
			return 1;
		}
	}
}

/* Connects to ai's address at port, handshakes as rule r would, verifying
 * name (sent as SNI when sni), and prints what was negotiated and the
 * peer chain, verified or not. 0 verified, 1 not. */
static int probe_one(const struct ts_engine_handle *eng,
                     const struct ts_policy *p, const struct ts_rule *r,
                     const struct addrinfo *ai, uint16_t port,
                     const char *name, bool sni)
{
	char why[512] = "", dest[TS_DEST_STR_MAX];
	long long deadline = ts_now_ms() + p->handshake_timeout_ms;
	struct ts_tls *t = NULL;
	struct ts_dest d;
	int fd, rv = 1;

	if (ts_dest_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &d) == 0) {
		d.port = port;
		ts_dest_format(&d, dest, sizeof dest);
	} else {
		snprintf(dest, sizeof dest, "?");
	}
	say("  connecting to %s, verifying %s%s", dest, name,
	    sni ? " (sent as SNI)" : " (no SNI)");
	fd = connect_to(ai, port, deadline, why, sizeof why);
	if (fd < 0)
		goto out;
	struct ts_tls_params tp = {
		.fd = fd, .rule = r, .sni = sni ? name : NULL,
		.verify_name = name,
	};
	t = eng->ops->create(&tp, why, sizeof why);
	if (!t)
		goto out;
	rv = handshake(eng, t, fd, p, deadline, why, sizeof why);
	eng->probe(t, print_line, NULL);
out:
	if (rv == 0)
		say("  verdict: OK: verified %s (%s)", name,
		    r->ca.data ? r->ca_file : "system trust store");
	else
		say("  verdict: FAILED: %s", why[0] ? why : "connection failed");
	if (t)
		eng->ops->destroy(t);
	if (fd >= 0)
		close(fd);
	return rv;
}

/* One address, as the program would reach it: 0 verified, 1 not. */
static int probe_address(const struct query *q, const struct addrinfo *ai,
                         struct ts_dest *d)
{
	const struct target *t = &q->t;
	struct ts_rule none = {.name = "(no rule)"};
	struct ts_decision dec;
	char ip[TS_DEST_IP_MAX];

	/* As the program's own lookup of the name would be used: the name
	 * is what the preload learns for the address. */
	if (t->is_name)
		d->host = t->host;
	ts_policy_decide(q->p, d, &dec);
	if (dec.verdict == TS_VERDICT_REFUSE) {
		say("  verdict: REFUSED by the policy: %s", dec.why);
		return 1;
	}
	if (dec.verdict == TS_VERDICT_UPGRADE) {
		say("  rule: [%s]", dec.rule->name);
		return probe_one(&q->eng, q->p, dec.rule, ai, dec.port,
		                 dec.name, dec.send_sni);
	}
	say("  %s: the program's connection would not be upgraded; probing "
	    "with the system trust store",
	    dec.rule ? "rule with tls = no" : "no rule matches");
	ts_dest_ip(d, ip, sizeof ip);
	return probe_one(&q->eng, q->p, &none, ai, t->port,
	                 t->is_name ? t->host : ip, t->is_name);
}

int ts_launcher_probe(const char *policy, const char *target,
                      const char *preload_lib)
{
	struct query q;
	int rv = 2;

	if (query_begin(&q, policy, target, preload_lib) == 0) {
		rv = 0;
		for (struct addrinfo *ai = q.res; ai; ai = ai->ai_next) {
			struct ts_dest d;
			if (!destination(&q, ai, &d, false))
				continue;
			if (probe_address(&q, ai, &d))
				rv = 1;
			fflush(stdout);
		}
	}
	query_end(&q);
	return rv;
}
