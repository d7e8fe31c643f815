/* libFuzzer target: the policy parser and the matcher.
 *
 * The input is a policy text. A policy that parses is matched against a
 * fixed set of destinations and against the names it mentions itself, and
 * the result is checked against a straightforward re-implementation of the
 * rule order (first rule whose match list fits wins).
 *
 * policy.c is compiled into this binary with open() wrapped
 * (-Wl,--wrap=open): a ca-file names no real file here. "ca.pem" (any
 * directory) is a small PEM in memory, everything else is ENOENT, so the
 * fuzzer can never block on a FIFO or read /dev/zero. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "policy.h"

static const char pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBszCCAVmgAwIBAgIUb2Z1enpmdXp6ZnV6emZ1enpmdXp6MAoGCCqGSM49BAMC\n"
	"-----END CERTIFICATE-----\n";

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...)
{
	size_t n = strlen(path);

	if (n >= 6 && !strcmp(path + n - 6, "ca.pem")) {
		int fd = memfd_create("ca.pem", MFD_CLOEXEC);
		if (fd < 0)
			return -1;
		if (write(fd, pem, sizeof pem - 1) != (ssize_t)(sizeof pem - 1) ||
		    lseek(fd, 0, SEEK_SET) < 0) {
			close(fd);
			errno = EIO;
			return -1;
		}
		return fd;
	}
	errno = ENOENT;
	return -1;
}

static const struct ts_rule *slow_match(const struct ts_policy *p,
                                        const struct ts_dest *d)
{
	for (size_t i = 0; i < p->nrules; i++)
		for (size_t j = 0; j < p->rules[i].nmatches; j++)
			if (ts_match_fits(&p->rules[i].matches[j], d))
				return &p->rules[i];
	return NULL;
}

static void check(const struct ts_policy *p, const struct ts_dest *d)
{
	const struct ts_rule *r = ts_policy_match(p, d);

	if (r != slow_match(p, d))
		abort();
	if (r && (!r->name || !r->nmatches))
		abort();
}

static void probe(const struct ts_policy *p, const char *host)
{
	static const uint16_t ports[] = {1, 80, 443, 8000, 8100, 65535};
	struct ts_dest d = {.host = host};

	for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
		d.port = ports[i];
		d.family = AF_INET;
		memset(d.addr, 0, sizeof d.addr);
		memcpy(d.addr, "\x0a\x00\x00\x01", 4);
		check(p, &d);
		memcpy(d.addr, "\x7f\x00\x00\x01", 4);
		check(p, &d);
		d.family = AF_INET6;
		memset(d.addr, 0, sizeof d.addr);
		d.addr[15] = 1; /* ::1 */
		check(p, &d);
		memcpy(d.addr, "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff"
		               "\x0a\x00\x00\x01", 16); /* ::ffff:10.0.0.1 */
		check(p, &d);
		memcpy(d.addr, "\x20\x01\x0d\xb8\x00\x01", 6);
		check(p, &d);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], host[300];
	struct ts_policy *p =
		ts_policy_parse("/fuzz/policy.conf", (const char *)data, size,
		                NULL, NULL, err, sizeof err);

	if (!p) {
		if (!memchr(err, '\0', sizeof err) || !err[0])
			abort(); /* a NULL result always says why */
		return 0;
	}
	probe(p, NULL);
	probe(p, "localhost");
	/* Every port of every match, and the rule's own names. */
	for (size_t i = 0; i < p->nrules; i++) {
		const struct ts_rule *r = &p->rules[i];
		for (size_t j = 0; j < r->nmatches; j++) {
			const struct ts_match *m = &r->matches[j];
			struct ts_dest d = {.family = m->family ? m->family
			                                        : AF_INET,
			                    .port = m->port_lo};
			memcpy(d.addr, m->addr, sizeof d.addr);
			check(p, &d);
			d.port = m->port_hi;
			check(p, &d);
			if (m->host && strlen(m->host) < 200) {
				d.host = m->host[0] == '.' ? m->host + 1
				                           : m->host;
				check(p, &d);
				snprintf(host, sizeof host, "a%s", m->host);
				d.host = host;
				check(p, &d);
			}
		}
	}
	ts_policy_free(p);
	return 0;
}
