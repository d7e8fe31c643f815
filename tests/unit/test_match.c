/* Matching destinations to rules: table-driven. The rules come from the
 * parser, so this also checks that what the parser stores is what the
 * matcher expects. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "policy.h"
#include "check.h"

static const char policy_text[] =
	"[exact4]\n"
	"match = 10.0.0.1:443\n"
	"[cidr4]\n"
	"match = 10.1.0.0/16:443, 192.168.1.0/24:8000-8100\n"
	"[odd4]\n"
	"match = 172.20.0.0/14:443\n"
	"[v6]\n"
	"match = [2001:db8::1]:443\n"
	"[cidr6]\n"
	"match = [2001:db8:1::/48]:443\n"
	"[odd6]\n"
	"match = [2001:db8:8000::/33]:443\n"
	"[mapped]\n"
	"match = [::ffff:172.16.0.1]:443\n"
	"[host]\n"
	"match = Redis.Internal.:6379\n"
	"[wild]\n"
	"match = *.Example.com:443\n"
	"[zero4]\n"
	"match = 0.0.0.0/0:9999\n"
	"[zero6]\n"
	"match = [::/0]:9998\n"
	"[ports]\n"
	"match = 6379, 7000-7005\n"
	"[shadowed]\n"
	"match = 6379\n"
	"[first]\n"
	"match = 10.9.0.0/16:80\n"
	"[second]\n"
	"match = 10.9.0.1:80, 10.8.0.1:80\n"
	"[loopback-host]\n"
	"match = 127.0.0.1:5432\n";

static const struct {
	const char *addr;
	unsigned port;
	const char *host;
	const char *want; /* rule name, or NULL */
} cases[] = {
	/* exact IPv4, and the same address v4-mapped */
	{"10.0.0.1", 443, NULL, "exact4"},
	{"::ffff:10.0.0.1", 443, NULL, "exact4"},
	{"10.0.0.2", 443, NULL, NULL},
	{"10.0.0.1", 444, NULL, NULL},
	{"::10.0.0.1", 443, NULL, NULL}, /* v4-compatible is not mapped */
	/* IPv4 CIDR and port ranges */
	{"10.1.0.0", 443, NULL, "cidr4"},
	{"10.1.255.255", 443, NULL, "cidr4"},
	{"10.2.0.0", 443, NULL, NULL},
	{"10.0.255.255", 443, NULL, NULL},
	{"192.168.1.77", 8000, NULL, "cidr4"},
	{"192.168.1.77", 8050, NULL, "cidr4"},
	{"192.168.1.77", 8100, NULL, "cidr4"},
	{"192.168.1.77", 7999, NULL, NULL},
	{"192.168.1.77", 8101, NULL, NULL},
	{"192.168.2.1", 8050, NULL, NULL},
	{"::ffff:192.168.1.1", 8001, NULL, "cidr4"},
	/* prefixes that end inside a byte */
	{"172.20.0.0", 443, NULL, "odd4"},
	{"172.23.255.1", 443, NULL, "odd4"},
	{"172.19.255.255", 443, NULL, NULL},
	{"172.24.0.1", 443, NULL, NULL},
	{"2001:db8:8000::1", 443, NULL, "odd6"},
	{"2001:db8:ffff:ffff::1", 443, NULL, "odd6"},
	{"2001:db8:7fff::1", 443, NULL, NULL},
	/* IPv6 */
	{"2001:db8::1", 443, NULL, "v6"},
	{"2001:DB8:0::1", 443, NULL, "v6"},
	{"2001:db8::2", 443, NULL, NULL},
	{"2001:db8::1", 80, NULL, NULL},
	{"2001:db8:1::5", 443, NULL, "cidr6"},
	{"2001:db8:1:ffff:ffff:ffff:ffff:ffff", 443, NULL, "cidr6"},
	{"2001:db8:2::", 443, NULL, NULL},
	/* a v4-mapped rule is an IPv4 rule: fits both spellings */
	{"172.16.0.1", 443, NULL, "mapped"},
	{"::ffff:172.16.0.1", 443, NULL, "mapped"},
	{"172.16.0.2", 443, NULL, NULL},
	/* host: case-insensitive; needs a known name */
	{"198.51.100.1", 6379, "redis.internal", "host"},
	{"198.51.100.1", 6379, "REDIS.internal", "host"},
	{"2001:db8::9", 6379, "redis.internal", "host"},
	{"198.51.100.1", 6380, "redis.internal", NULL},
	/* port-only: any family, any address, no name needed */
	{"198.51.100.1", 6379, NULL, "ports"},
	{"198.51.100.1", 6379, "other.internal", "ports"},
	{"::1", 6379, NULL, "ports"},
	{"::1", 7000, NULL, "ports"},
	{"10.0.0.1", 7005, NULL, "ports"},
	{"10.0.0.1", 7006, NULL, NULL},
	{"10.0.0.1", 6999, NULL, NULL},
	/* wildcard: strictly below the domain */
	{"198.51.100.1", 443, "a.example.com", "wild"},
	{"198.51.100.1", 443, "a.b.example.com", "wild"},
	{"198.51.100.1", 443, "A.EXAMPLE.COM", "wild"},
	{"198.51.100.1", 443, "example.com", NULL},
	{"198.51.100.1", 443, "badexample.com", NULL},
	{"198.51.100.1", 443, "example.com.evil", NULL},
	{"198.51.100.1", 443, NULL, NULL},
	{"198.51.100.1", 444, "a.example.com", NULL},
	/* prefix 0: the whole family */
	{"1.2.3.4", 9999, NULL, "zero4"},
	{"255.255.255.255", 9999, NULL, "zero4"},
	{"::ffff:1.2.3.4", 9999, NULL, "zero4"},
	{"::1", 9999, NULL, NULL},
	{"::1", 9998, NULL, "zero6"},
	{"1.2.3.4", 9998, NULL, NULL},
	/* first rule in file order wins, not the most specific */
	{"10.9.0.1", 80, NULL, "first"},
	{"10.8.0.1", 80, NULL, "second"},
	{"10.7.0.1", 80, NULL, NULL},
	/* an IP literal written as HOST:PORT is an address */
	{"127.0.0.1", 5432, NULL, "loopback-host"},
	{"127.0.0.2", 5432, NULL, NULL},
};

static struct ts_dest make_dest(const char *addr, unsigned port,
                                const char *host)
{
	struct ts_dest d = {.port = (uint16_t)port, .host = host};
	if (inet_pton(AF_INET, addr, d.addr) == 1)
		d.family = AF_INET;
	else if (inet_pton(AF_INET6, addr, d.addr) == 1)
		d.family = AF_INET6;
	return d;
}

static void test_table(void)
{
	char err[512];
	struct ts_policy *p = ts_policy_parse("match.conf", policy_text,
	                                      strlen(policy_text), NULL,
	                                      NULL, err, sizeof err);

	CHECK(p != NULL, "policy: %s", err);
	if (!p)
		return;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ts_dest d = make_dest(cases[i].addr, cases[i].port,
		                             cases[i].host);
		const struct ts_rule *r = ts_policy_match(p, &d);
		const char *got = r ? r->name : NULL;
		bool ok = d.family &&
		          (got && cases[i].want ? !strcmp(got, cases[i].want) :
		                                  got == cases[i].want);
		CHECK(ok, "%s port %u host %s: got %s, want %s",
		      cases[i].addr, cases[i].port,
		      cases[i].host ? cases[i].host : "(none)",
		      got ? got : "(none)",
		      cases[i].want ? cases[i].want : "(none)");
	}
	ts_policy_free(p);
}

/* ts_match_fits on hand-built matches: the contract, without the parser. */
static void test_fits(void)
{
	struct ts_match port = {.kind = TS_MATCH_PORT, .port_lo = 10,
	                        .port_hi = 20};
	struct ts_match v4 = {.kind = TS_MATCH_ADDR, .port_lo = 1,
	                      .port_hi = 65535, .family = AF_INET,
	                      .addr = {192, 0, 2, 0}, .prefix = 25};
	struct ts_match v6 = {.kind = TS_MATCH_ADDR, .port_lo = 443,
	                      .port_hi = 443, .family = AF_INET6,
	                      .prefix = 0};
	struct ts_match host = {.kind = TS_MATCH_HOST, .port_lo = 443,
	                        .port_hi = 443, .host = "db.local"};
	struct ts_match wild = {.kind = TS_MATCH_WILDCARD, .port_lo = 443,
	                        .port_hi = 443, .host = ".local"};
	struct ts_dest d;

	d = make_dest("192.0.2.1", 10, NULL);
	CHECK(ts_match_fits(&port, &d), "port lo");
	d = make_dest("::1", 20, NULL);
	CHECK(ts_match_fits(&port, &d), "port hi, v6");
	d = make_dest("::1", 21, NULL);
	CHECK(!ts_match_fits(&port, &d), "port above");
	d = make_dest("::1", 9, NULL);
	CHECK(!ts_match_fits(&port, &d), "port below");

	d = make_dest("192.0.2.127", 1, NULL);
	CHECK(ts_match_fits(&v4, &d), "v4 /25 last");
	d = make_dest("192.0.2.128", 1, NULL);
	CHECK(!ts_match_fits(&v4, &d), "v4 /25 outside");
	d = make_dest("::ffff:192.0.2.5", 1, NULL);
	CHECK(ts_match_fits(&v4, &d), "v4 rule, mapped dest");
	d = make_dest("c000:0201::", 1, NULL); /* same bytes, v6 */
	CHECK(!ts_match_fits(&v4, &d), "v4 rule, v6 dest");

	d = make_dest("2001:db8::1", 443, NULL);
	CHECK(ts_match_fits(&v6, &d), "v6 /0");
	d = make_dest("192.0.2.1", 443, NULL);
	CHECK(!ts_match_fits(&v6, &d), "v6 rule, v4 dest");
	d = make_dest("::ffff:192.0.2.1", 443, NULL);
	CHECK(!ts_match_fits(&v6, &d), "v6 rule, mapped dest is v4");

	d = make_dest("192.0.2.1", 443, "db.local");
	CHECK(ts_match_fits(&host, &d), "host");
	CHECK(ts_match_fits(&wild, &d), "wildcard below");
	d.host = "DB.Local";
	CHECK(ts_match_fits(&host, &d), "host case");
	d.host = "xdb.local";
	CHECK(!ts_match_fits(&host, &d), "host is exact");
	d.host = "local";
	CHECK(!ts_match_fits(&wild, &d), "wildcard: not the domain");
	d.host = "x.local";
	d.port = 444;
	CHECK(!ts_match_fits(&wild, &d), "wildcard: port");
	d.host = NULL;
	d.port = 443;
	CHECK(!ts_match_fits(&host, &d), "host needs a name");
	CHECK(!ts_match_fits(&wild, &d), "wildcard needs a name");
}

static void test_empty(void)
{
	struct ts_dest d = make_dest("10.0.0.1", 443, NULL);
	struct ts_policy *p = ts_policy_parse("empty.conf", "", 0, NULL,
	                                      NULL, NULL, 0);

	CHECK(p && p->nrules == 0, "empty policy parses");
	CHECK(ts_policy_match(p, &d) == NULL, "empty policy matches nothing");
	CHECK(ts_policy_match(NULL, &d) == NULL, "NULL policy");
	CHECK(ts_policy_match(p, NULL) == NULL, "NULL dest");
	ts_policy_free(p);
}

/* The one address normaliser: lengths as the kernel takes them, v4-mapped
 * as IPv4, scope ids only from a full sockaddr_in6. */
static void test_normalise(void)
{
	struct sockaddr_in in = {.sin_family = AF_INET,
	                         .sin_port = htons(443)};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6,
	                           .sin6_port = htons(8443),
	                           .sin6_scope_id = 7};
	struct ts_dest d;
	char buf[TS_DEST_STR_MAX], ip[TS_DEST_IP_MAX];

	inet_pton(AF_INET, "192.0.2.9", &in.sin_addr);
	CHECK(ts_dest_from_sockaddr((void *)&in, sizeof in, &d) == 0 &&
	      d.family == AF_INET && d.port == 443 && !d.mapped);
	ts_dest_format(&d, buf, sizeof buf);
	CHECK(!strcmp(buf, "192.0.2.9:443"), "%s", buf);
	CHECK(ts_dest_from_sockaddr((void *)&in, 15, &d) < 0,
	      "the kernel wants 16 bytes of sockaddr_in");
	CHECK(ts_dest_from_sockaddr((void *)&in, 64, &d) == 0,
	      "longer is fine, as for the kernel");

	inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
	CHECK(ts_dest_from_sockaddr((void *)&in6, sizeof in6, &d) == 0 &&
	      d.family == AF_INET6 && d.port == 8443 && d.scope_id == 7);
	ts_dest_format(&d, buf, sizeof buf);
	CHECK(!strcmp(buf, "[fe80::1%7]:8443"), "%s", buf);
	ts_dest_ip(&d, ip, sizeof ip);
	CHECK(!strcmp(ip, "fe80::1"), "the literal has no scope: %s", ip);
	/* RFC 2133's 24-byte sockaddr_in6, which the kernel accepts. */
	CHECK(ts_dest_from_sockaddr((void *)&in6, 24, &d) == 0 &&
	      d.family == AF_INET6 && d.scope_id == 0,
	      "24 bytes: an address without scope id");
	CHECK(ts_dest_from_sockaddr((void *)&in6, 23, &d) < 0);

	inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
	for (size_t len = 24; len <= sizeof in6; len += 4) {
		CHECK(ts_dest_from_sockaddr((void *)&in6, len, &d) == 0 &&
		      d.family == AF_INET && d.mapped && d.port == 8443 &&
		      !memcmp(d.addr, "\x7f\0\0\x01", 4),
		      "v4-mapped is IPv4 (len %zu)", len);
		ts_dest_format(&d, buf, sizeof buf);
		ts_dest_ip(&d, ip, sizeof ip);
		CHECK(!strcmp(buf, "127.0.0.1:8443") &&
		      !strcmp(ip, "127.0.0.1"), "%s %s", buf, ip);
	}
	struct sockaddr sa = {.sa_family = AF_UNIX};
	CHECK(ts_dest_from_sockaddr(&sa, sizeof sa, &d) < 0, "not inet");
	CHECK(ts_dest_from_sockaddr(NULL, 16, &d) < 0);
	CHECK(ts_dest_from_sockaddr(&sa, 1, &d) < 0, "shorter than a family");
}

static const char decide_text[] =
	"unmatched = refuse\n"
	"[named]\n"
	"match = 127.0.0.1:443\n"
	"sni = svc.internal\n"
	"tls-port = 8443\n"
	"[byname]\n"
	"match = db.internal:5432, 10.0.0.0/8:5432\n"
	"[plain]\n"
	"match = 53, 127.0.0.1:80\n"
	"tls = no\n";

static void test_decide(void)
{
	char err[512];
	struct ts_policy *p = ts_policy_parse("decide.conf", decide_text,
	                                      strlen(decide_text), NULL,
	                                      NULL, err, sizeof err);
	struct ts_decision dec;
	struct ts_dest d;

	CHECK(p != NULL, "policy: %s", err);
	if (!p)
		return;
	d = make_dest("127.0.0.1", 443, "ignored.example");
	ts_policy_decide(p, &d, &dec);
	CHECK(dec.verdict == TS_VERDICT_UPGRADE && dec.port == 8443 &&
	      dec.name_from == TS_NAME_SNI && dec.send_sni &&
	      !strcmp(dec.name, "svc.internal"), "sni wins, tls-port used");
	d = make_dest("10.1.2.3", 5432, "db.internal");
	ts_policy_decide(p, &d, &dec);
	CHECK(dec.verdict == TS_VERDICT_UPGRADE && dec.port == 5432 &&
	      dec.name_from == TS_NAME_LEARNED && dec.send_sni &&
	      !strcmp(dec.name, "db.internal"), "the learned name");
	d = make_dest("10.1.2.3", 5432, NULL);
	ts_policy_decide(p, &d, &dec);
	CHECK(dec.verdict == TS_VERDICT_UPGRADE &&
	      dec.name_from == TS_NAME_LITERAL && !dec.send_sni &&
	      !strcmp(dec.name, "10.1.2.3"), "the literal, never sent");
	d = make_dest("::ffff:10.1.2.3", 5432, NULL);
	d.family = AF_INET; /* what the normaliser makes of it */
	memmove(d.addr, d.addr + 12, 4);
	ts_policy_decide(p, &d, &dec);
	CHECK(!strcmp(dec.name, "10.1.2.3"), "mapped literal: %s", dec.name);
	d = make_dest("127.0.0.1", 80, NULL);
	ts_policy_decide(p, &d, &dec);
	CHECK(dec.verdict == TS_VERDICT_PASS && dec.rule &&
	      !strcmp(dec.rule->name, "plain"), "tls = no passes");
	d = make_dest("192.0.2.1", 53, NULL);
	ts_policy_decide(p, &d, &dec);
	CHECK(dec.verdict == TS_VERDICT_PASS, "tls = no by port");
	d = make_dest("192.0.2.1", 80, NULL);
	ts_policy_decide(p, &d, &dec);
	CHECK(dec.verdict == TS_VERDICT_REFUSE && !dec.rule && dec.why,
	      "unmatched = refuse");
	d = make_dest("192.0.2.1", 5432, NULL);
	d.host_lost = true;
	ts_policy_decide(p, &d, &dec);
	CHECK(dec.verdict == TS_VERDICT_REFUSE && dec.why,
	      "a forgotten name under name rules cannot be decided");
	ts_policy_decide(NULL, &d, &dec);
	CHECK(dec.verdict == TS_VERDICT_PASS, "no policy");
	ts_policy_free(p);

	/* Without unmatched = refuse, an unmatched destination passes. */
	static const char d2[] = "[r]\nmatch = 1.2.3.4:1\n";
	p = ts_policy_parse("d2.conf", d2, strlen(d2), NULL,
	                    NULL, err, sizeof err);
	d = make_dest("192.0.2.1", 80, NULL);
	ts_policy_decide(p, &d, &dec);
	CHECK(p && dec.verdict == TS_VERDICT_PASS && !dec.rule);
	d.host_lost = true;
	ts_policy_decide(p, &d, &dec);
	CHECK(dec.verdict == TS_VERDICT_PASS,
	      "no name rules: a forgotten name changes nothing");
	ts_policy_free(p);
}

/* Server rules: matched on the local address a connection was accepted
 * on; never by a connect. Client names: DNS names, *.domain, URIs. */
static void test_accept(void)
{
	struct ts_match m4 = {.kind = TS_MATCH_ADDR, .port_lo = 6379,
	                      .port_hi = 6379, .family = AF_INET,
	                      .addr = {127, 0, 0, 1}, .prefix = 32};
	struct ts_match any = {.kind = TS_MATCH_PORT, .port_lo = 8443,
	                       .port_hi = 8443};
	struct ts_match cm = {.kind = TS_MATCH_PORT, .port_lo = 6379,
	                      .port_hi = 6379};
	struct ts_rule rules[] = {
		{.name = "c", .matches = &cm, .nmatches = 1},
		{.name = "s4", .matches = &m4, .nmatches = 1, .server = true},
		{.name = "any", .matches = &any, .nmatches = 1, .server = true},
	};
	struct ts_policy pol = {.rules = rules, .nrules = 3};
	struct ts_dest d = make_dest("127.0.0.1", 6379, NULL);
	const struct ts_rule *r = ts_policy_accept(&pol, &d);
	CHECK(r && !strcmp(r->name, "s4"), "accept by local address");
	r = ts_policy_match(&pol, &d);
	CHECK(r && !strcmp(r->name, "c"), "a connect never takes a server rule");
	d = make_dest("10.0.0.1", 6379, NULL);
	CHECK(ts_policy_accept(&pol, &d) == NULL, "another local address");
	d = make_dest("::1", 8443, NULL);
	r = ts_policy_accept(&pol, &d);
	CHECK(r && !strcmp(r->name, "any"), "a port: any address");
	d = make_dest("127.0.0.1", 8443, NULL);
	CHECK(ts_policy_match(&pol, &d) == NULL, "server rules match no connect");
	CHECK(ts_policy_serves(&pol));
	pol.nrules = 1;
	CHECK(!ts_policy_serves(&pol));

	CHECK(ts_client_name_fits("app1.internal", "APP1.internal"));
	CHECK(!ts_client_name_fits("app1.internal", "app2.internal"));
	CHECK(ts_client_name_fits("*.svc.internal", "a.svc.internal"));
	CHECK(ts_client_name_fits("*.svc.internal", "a.b.svc.internal"));
	CHECK(!ts_client_name_fits("*.svc.internal", "svc.internal"));
	CHECK(!ts_client_name_fits("*.svc.internal", "evilsvc.internal"));
	CHECK(ts_client_name_fits("spiffe://test/app2", "spiffe://test/app2"));
	CHECK(!ts_client_name_fits("spiffe://test/app2", "spiffe://test/app2x"));
	CHECK(!ts_client_name_fits("spiffe://test/app2", "SPIFFE://test/app2"),
	      "URIs compare exactly");
}

int main(void)
{
	test_table();
	test_fits();
	test_empty();
	test_normalise();
	test_decide();
	test_accept();
	return check_summary();
}
