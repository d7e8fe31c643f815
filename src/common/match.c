/* Matching a destination to a rule, and deciding what a connect becomes
 * (see policy.h): pure functions, no allocation, no locale. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "policy.h"

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0,
                                      0, 0, 0xff, 0xff};

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, bytes))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return !((a[bytes] ^ b[bytes]) & mask);
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool name_equal(const char *a, const char *b)
{
	for (; *a && lower(*a) == lower(*b); a++, b++)
		;
	return lower(*a) == lower(*b);
}

bool ts_match_fits(const struct ts_match *m, const struct ts_dest *d)
{
	const uint8_t *addr = d->addr;
	int family = d->family;
	size_t hl, ml;

	if (d->port < m->port_lo || d->port > m->port_hi)
		return false;
	switch (m->kind) {
	case TS_MATCH_PORT:
		return true;
	case TS_MATCH_ADDR:
		/* A v4-mapped destination is that IPv4 address (a dual-stack
		 * socket connecting to an IPv4 peer). */
		if (family == AF_INET6 && !memcmp(addr, v4_mapped, 12)) {
			family = AF_INET;
			addr += 12;
		}
		if (family != m->family)
			return false;
		if (m->prefix > (family == AF_INET ? 32u : 128u))
			return false;
		return prefix_equal(addr, m->addr, m->prefix);
	case TS_MATCH_HOST:
		return d->host && name_equal(d->host, m->host);
	case TS_MATCH_WILDCARD:
		/* m->host is ".domain": strictly below it, not itself. */
		if (!d->host)
			return false;
		hl = strlen(d->host);
		ml = strlen(m->host);
		return hl > ml && name_equal(d->host + hl - ml, m->host);
	}
	return false;
}

static const struct ts_rule *first_fit(const struct ts_policy *p,
                                       const struct ts_dest *dest,
                                       bool server)
{
	if (!p || !dest)
		return NULL;
	for (size_t i = 0; i < p->nrules; i++) {
		const struct ts_rule *r = &p->rules[i];
		if (r->server != server)
			continue;
		for (size_t j = 0; j < r->nmatches; j++)
			if (ts_match_fits(&r->matches[j], dest))
				return r;
	}
	return NULL;
}

const struct ts_rule *ts_policy_match(const struct ts_policy *p,
                                      const struct ts_dest *dest)
{
	return first_fit(p, dest, false);
}

const struct ts_rule *ts_policy_accept(const struct ts_policy *p,
                                       const struct ts_dest *local)
{
	return first_fit(p, local, true);
}

bool ts_policy_serves(const struct ts_policy *p)
{
	for (size_t i = 0; p && i < p->nrules; i++)
		if (p->rules[i].server)
			return true;
	return false;
}

bool ts_client_name_fits(const char *pattern, const char *name)
{
	size_t pl, nl;

	if (!pattern || !name)
		return false;
	if (strchr(pattern, ':'))
		return !strcmp(pattern, name); /* a URI, exactly */
	if (pattern[0] == '*' && pattern[1] == '.') {
		/* Strictly below the domain, any depth, as match does. */
		pl = strlen(pattern + 1);
		nl = strlen(name);
		return nl > pl && name_equal(name + nl - pl, pattern + 1);
	}
	return name_equal(pattern, name);
}

/* The kernel's own minimum lengths (tcp_v4_connect, tcp_v6_connect:
 * SIN6_LEN_RFC2133 is sockaddr_in6 without the scope id). */
#define SIN_LEN 16
#define SIN6_LEN_RFC2133 24

int ts_dest_from_sockaddr(const struct sockaddr *sa, size_t len,
                          struct ts_dest *d)
{
	memset(d, 0, sizeof *d);
	if (!sa || len < sizeof sa->sa_family)
		return -1;
	if (sa->sa_family == AF_INET && len >= SIN_LEN) {
		const struct sockaddr_in *in = (const void *)sa;
		d->family = AF_INET;
		memcpy(d->addr, &in->sin_addr, 4);
		d->port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= SIN6_LEN_RFC2133) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		d->port = ntohs(in6->sin6_port);
		if (!memcmp(&in6->sin6_addr, v4_mapped, 12)) {
			/* The wire carries IPv4: one address, one name. */
			d->family = AF_INET;
			d->mapped = true;
			memcpy(d->addr, (const uint8_t *)&in6->sin6_addr + 12,
			       4);
			return 0;
		}
		d->family = AF_INET6;
		memcpy(d->addr, &in6->sin6_addr, 16);
		if (len >= sizeof(struct sockaddr_in6))
			d->scope_id = in6->sin6_scope_id;
		return 0;
	}
	return -1;
}

void ts_dest_ip(const struct ts_dest *d, char *buf, size_t len)
{
	if (!len)
		return;
	if (!inet_ntop(d->family, d->addr, buf, (socklen_t)len))
		buf[0] = '\0';
}

void ts_dest_format(const struct ts_dest *d, char *buf, size_t len)
{
	char ip[TS_DEST_IP_MAX];

	ts_dest_ip(d, ip, sizeof ip);
	if (d->family != AF_INET6)
		snprintf(buf, len, "%s:%u", ip, d->port);
	else if (d->scope_id)
		snprintf(buf, len, "[%s%%%u]:%u", ip, d->scope_id, d->port);
	else
		snprintf(buf, len, "[%s]:%u", ip, d->port);
}

bool ts_policy_names_host(const struct ts_policy *p, const char *host)
{
	struct ts_dest d = {.host = host};

	for (size_t i = 0; p && host && i < p->nrules; i++)
		for (size_t j = 0; !p->rules[i].server &&
		                   j < p->rules[i].nmatches; j++) {
			const struct ts_match *m = &p->rules[i].matches[j];
			if (m->kind != TS_MATCH_HOST &&
			    m->kind != TS_MATCH_WILDCARD)
				continue;
			d.port = m->port_lo;
			if (ts_match_fits(m, &d))
				return true;
		}
	return false;
}

static bool host_rules(const struct ts_policy *p)
{
	for (size_t i = 0; i < p->nrules; i++)
		for (size_t j = 0; j < p->rules[i].nmatches; j++)
			if (p->rules[i].matches[j].kind == TS_MATCH_HOST ||
			    p->rules[i].matches[j].kind == TS_MATCH_WILDCARD)
				return true;
	return false;
}

void ts_policy_decide(const struct ts_policy *p, const struct ts_dest *d,
                      struct ts_decision *out)
{
	memset(out, 0, sizeof *out);
	out->verdict = TS_VERDICT_PASS;
	if (!p || !d)
		return;
	if (d->host_lost && host_rules(p)) {
		/* A name rule might have matched the name it came from:
		 * neither passing nor verifying a guessed name is safe. */
		out->verdict = TS_VERDICT_REFUSE;
		out->why = "the host name this address was resolved from is "
		           "no longer known, so whether a rule selects it "
		           "cannot be decided";
		return;
	}
	const struct ts_rule *r = ts_policy_match(p, d);
	out->rule = r;
	if (!r) {
		if (p->unmatched_refuse) {
			out->verdict = TS_VERDICT_REFUSE;
			out->why = "no rule matches and the policy says "
			           "unmatched = refuse";
		}
		return;
	}
	if (r->plaintext)
		return; /* tls = no: an explicit exception */
	out->verdict = TS_VERDICT_UPGRADE;
	out->port = r->tls_port ? r->tls_port : d->port;
	/* The name sent and verified: the rule's sni, else the name the
	 * program resolved for this address, else the IP literal (verified
	 * against the certificate's IP addresses, never sent as SNI). */
	if (r->sni) {
		out->name_from = TS_NAME_SNI;
		snprintf(out->name, sizeof out->name, "%s", r->sni);
		out->send_sni = true;
	} else if (d->host) {
		out->name_from = TS_NAME_LEARNED;
		snprintf(out->name, sizeof out->name, "%s", d->host);
		out->send_sni = true;
	} else {
		out->name_from = TS_NAME_LITERAL;
		ts_dest_ip(d, out->name, sizeof out->name);
	}
}
