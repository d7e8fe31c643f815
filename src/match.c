/* Matching a destination to a rule (see policy.h): pure functions, no
 * allocation, no locale. */
#include <stdbool.h>
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

const struct ts_rule *ts_policy_match(const struct ts_policy *p,
                                      const struct ts_dest *dest)
{
	if (!p || !dest)
		return NULL;
	for (size_t i = 0; i < p->nrules; i++) {
		const struct ts_rule *r = &p->rules[i];
		for (size_t j = 0; j < r->nmatches; j++)
			if (ts_match_fits(&r->matches[j], dest))
				return r;
	}
	return NULL;
}
