/* tlsshim --explain and --probe (see launcher.h).
 *
 * --explain is pure: the policy's own matcher decides, nothing connects.
 * --probe connects and handshakes through the very engine the preload
 * uses (same credentials, same verification), then asks the engine for
 * what was negotiated and the peer chain. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "launcher.h"
#include "policy.h"

struct target {
	char host[256];   /* as given, lower case, brackets stripped */
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
		fprintf(stderr, "tlsshim: %s: %s\n", t->host,
		        e == EAI_SYSTEM ? strerror(errno) : gai_strerror(e));
		return -1;
	}
	return 0;
}

static void dest_of(const struct addrinfo *ai, struct ts_dest *d, char *ip,
                    size_t iplen)
{
	memset(d, 0, sizeof *d);
	d->family = ai->ai_family;
	if (ai->ai_family == AF_INET) {
		const struct sockaddr_in *in = (void *)ai->ai_addr;
		memcpy(d->addr, &in->sin_addr, 4);
		d->port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (void *)ai->ai_addr;
		memcpy(d->addr, &in6->sin6_addr, 16);
		d->port = ntohs(in6->sin6_port);
	}
	inet_ntop(d->family, d->addr, ip, (socklen_t)iplen);
}

static void print_diag(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s\n", msg);
}

static struct ts_policy *load(const char *path)
{
	char err[512];
	return ts_policy_load(path, print_diag, NULL, err, sizeof err);
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

static void base64(const uint8_t *in, size_t n, char *out, size_t len)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                        "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n && o + 4 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[o] = '\0';
}

static void explain_rule(const struct ts_rule *r, const char *ip,
                         uint16_t port)
{
	const char *name = r->sni ? r->sni : ip;

	printf("  rule:          [%s] (line %u)\n", r->name, r->line);
	if (r->tls_port && r->tls_port != port)
		printf("  connects to:   port %u (tls-port) instead of %u\n",
		       r->tls_port, port);
	else
		printf("  connects to:   port %u\n", port);
	printf("  SNI sent:      %s\n", r->sni ? r->sni : "(none: an IP "
	       "literal is never sent)");
	printf("  name verified: %s (%s)\n", name,
	       r->sni ? "sni of the rule" : "the IP address, against the "
	       "certificate's IP SANs");
	if (r->ca.data)
		printf("  trust anchors: %s (%zu certificate%s)\n", r->ca_file,
		       count_certs(&r->ca),
		       count_certs(&r->ca) == 1 ? "" : "s");
	else
		printf("  trust anchors: the system trust store\n");
	if (r->crl.data)
		printf("  revocation:    %s\n", r->crl_file);
	if (!r->npins)
		printf("  pins:          none (any key the trust anchors vouch "
		       "for)\n");
	for (size_t i = 0; i < r->npins; i++) {
		char b64[64];
		base64(r->pins[i], 32, b64, sizeof b64);
		printf("  pin-sha256:    %s (in addition to chain and name)\n",
		       b64);
	}
	printf("  versions:      %s\n", r->min_version == 13
	                                     ? "TLS1.3"
	                                     : "TLS1.2, TLS1.3");
	if (r->priority)
		printf("  priority:      %s\n", r->priority);
	if (!r->nalpn)
		printf("  ALPN:          none offered\n");
	for (size_t i = 0; i < r->nalpn; i++)
		printf("  ALPN:          %s%s\n", r->alpn[i],
		       r->alpn_required && i == 0 ? " (one is required)" : "");
	if (r->client_cert)
		printf("  client cert:   %s\n", r->client_cert);
	printf("  checks:        chain, name, server-auth key purpose%s\n",
	       r->npins ? ", pins" : "");
}

int ts_launcher_explain(const char *policy, const char *target)
{
	struct ts_policy *p = load(policy);
	struct addrinfo *res = NULL;
	struct target t;
	int rv = 1;

	if (!p)
		return 2;
	if (parse_target(target, &t) < 0) {
		fprintf(stderr, "tlsshim: bad destination '%s': expected "
		        "HOST:PORT, NAME:PORT or [IPv6]:PORT\n", target);
		goto out;
	}
	if (resolve(&t, &res) < 0)
		goto out;
	printf("policy %s\n", p->path);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char ip[INET6_ADDRSTRLEN];
		struct ts_dest d;
		dest_of(ai, &d, ip, sizeof ip);
		const struct ts_rule *r = ts_policy_match(p, &d);
		if (ai->ai_family == AF_INET6)
			printf("\n[%s]:%u", ip, t.port);
		else
			printf("\n%s:%u", ip, t.port);
		if (t.is_name)
			printf(" (%s)", t.host);
		printf("\n");
		/* A name rule can only fit when the preload knows the name
		 * the program resolved; say so when it changes the answer. */
		const struct ts_rule *rn = NULL;
		if (t.is_name) {
			d.host = t.host;
			rn = ts_policy_match(p, &d);
		}
		if (!r && !rn) {
			printf("  no rule matches: the connection is left "
			       "alone (plaintext)\n");
			continue;
		}
		if (r)
			explain_rule(r, ip, t.port);
		if (rn && rn != r) {
			printf("  if the name %s is known at connect: rule "
			       "[%s] instead:\n", t.host, rn->name);
			explain_rule(rn, ip, t.port);
		}
	}
	rv = 0;
out:
	if (res)
		freeaddrinfo(res);
	ts_policy_free(p);
	return rv;
}

/* ---- probe ---- */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool wait_fd(int fd, short ev, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
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
	printf("  %s\n", line);
}

static const struct ts_engine *load_engine(const char *preload_lib,
                                           ts_engine_probe_fn *probe)
{
	static struct ts_engine_io io;
	char path[4096];
	const char *slash = strrchr(preload_lib, '/');
	int dl = slash ? (int)(slash - preload_lib) : 1;

	snprintf(path, sizeof path, "%.*s/%s", dl, slash ? preload_lib : ".",
	         TS_ENGINE_SONAME);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "tlsshim: cannot load %s: %s\n", path,
		        dlerror());
		return NULL;
	}
	ts_engine_init_fn init =
		(ts_engine_init_fn)dlsym(h, TS_ENGINE_INIT_SYM);
	*probe = (ts_engine_probe_fn)dlsym(h, TS_ENGINE_PROBE_SYM);
	io.recv = recv;
	io.sendmsg = sendmsg;
	io.poll = poll;
	io.getsockopt = getsockopt;
	io.setsockopt = setsockopt;
	const struct ts_engine *e = init ? init(&io) : NULL;
	if (!e || e->abi != TS_ENGINE_ABI || !*probe) {
		fprintf(stderr, "tlsshim: %s: not a compatible engine\n", path);
		return NULL;
	}
	return e;
}

/* 0 verified, 1 not. */
static int probe_one(const struct ts_engine *eng, ts_engine_probe_fn probe,
                     const struct ts_policy *p, const struct ts_rule *r,
                     const struct addrinfo *ai, const char *ip,
                     const char *name)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} sa;
	char why[512] = "";
	long long deadline = now_ms() + p->handshake_timeout_ms;
	struct ts_tls *t = NULL;
	int fd = -1, rv = 1;
	uint16_t port;

	memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
	if (r->tls_port) {
		if (ai->ai_family == AF_INET)
			sa.in.sin_port = htons(r->tls_port);
		else
			sa.in6.sin6_port = htons(r->tls_port);
	}
	port = ai->ai_family == AF_INET ? ntohs(sa.in.sin_port)
	                                : ntohs(sa.in6.sin6_port);
	printf("  connecting to %s%s%s:%u, verifying %s\n",
	       ai->ai_family == AF_INET6 ? "[" : "", ip,
	       ai->ai_family == AF_INET6 ? "]" : "", port, name);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	            0);
	if (fd < 0) {
		snprintf(why, sizeof why, "socket: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, &sa.sa, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			snprintf(why, sizeof why, "%s", strerror(errno));
			goto out;
		}
		if (!wait_fd(fd, POLLOUT, deadline)) {
			snprintf(why, sizeof why, "connect timed out");
			goto out;
		}
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			snprintf(why, sizeof why, "%s", strerror(soerr));
			goto out;
		}
	}
	struct ts_tls_params tp = {
		.fd = fd, .rule = r, .sni = r->sni, .verify_name = name,
	};
	t = eng->create(&tp, why, sizeof why);
	if (!t)
		goto out;
	for (;;) {
		int h = eng->handshake(t, why, sizeof why);
		if (h == TS_TLS_OK) {
			rv = 0;
			break;
		}
		if (h == TS_TLS_ERR)
			break;
		if (h == TS_TLS_INTR)
			continue;
		if (!wait_fd(fd, h == TS_TLS_WANT_WRITE ? POLLOUT : POLLIN,
		              deadline)) {
			snprintf(why, sizeof why,
			         "TLS handshake timed out after %u ms",
			         p->handshake_timeout_ms);
			break;
		}
	}
	probe(t, print_line, NULL);
out:
	if (rv == 0)
		printf("  verdict: OK: verified %s (%s)\n", name,
		       r->ca.data ? r->ca_file : "system trust store");
	else
		printf("  verdict: FAILED: %s\n",
		       why[0] ? why : "connection failed");
	if (t)
		eng->destroy(t);
	if (fd >= 0)
		close(fd);
	return rv;
}

int ts_launcher_probe(const char *policy, const char *target,
                      const char *preload_lib)
{
	struct ts_policy *p = load(policy);
	struct addrinfo *res = NULL;
	ts_engine_probe_fn probe = NULL;
	const struct ts_engine *eng;
	struct target t;
	int rv = 2;

	if (!p)
		return 2;
	if (parse_target(target, &t) < 0) {
		fprintf(stderr, "tlsshim: bad destination '%s': expected "
		        "HOST:PORT, NAME:PORT or [IPv6]:PORT\n", target);
		goto out;
	}
	if (!(eng = load_engine(preload_lib, &probe)))
		goto out;
	if (resolve(&t, &res) < 0)
		goto out;
	rv = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char ip[INET6_ADDRSTRLEN];
		struct ts_dest d;
		struct ts_rule none = {.name = "(no rule)"};
		dest_of(ai, &d, ip, sizeof ip);
		const struct ts_rule *r = ts_policy_match(p, &d);
		if (!r && t.is_name) {
			d.host = t.host;
			r = ts_policy_match(p, &d);
		}
		printf("%s%s%s:%u%s%s%s\n", ai->ai_family == AF_INET6 ? "[" : "",
		       ip, ai->ai_family == AF_INET6 ? "]" : "", t.port,
		       t.is_name ? " (" : "", t.is_name ? t.host : "",
		       t.is_name ? ")" : "");
		if (r) {
			printf("  rule: [%s]\n", r->name);
		} else {
			printf("  no rule matches: the program's connection "
			       "would not be upgraded; probing with the "
			       "system trust store\n");
			if (t.is_name)
				none.sni = t.host;
			r = &none;
		}
		const char *name = r->sni ? r->sni : ip;
		if (probe_one(eng, probe, p, r, ai, ip, name))
			rv = 1;
		fflush(stdout);
	}
out:
	if (res)
		freeaddrinfo(res);
	ts_policy_free(p);
	return rv;
}
