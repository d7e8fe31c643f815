/* The policy parser: malformed policies (each error's file:line:col and
 * message), several errors in one file, valid policies and their fields,
 * trust files read at parse time, and out-of-memory at every allocation
 * (when built with TS_TEST_WRAP_ALLOC, see meson.build).
 *
 * Fixture files are made in a fresh temporary directory; "@D" in a case's
 * text or message stands for it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "check.h"

static bool streq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

#ifdef TS_TEST_WRAP_ALLOC
/* Linked with -Wl,--wrap=...: the parser's allocations come here, so a test
 * can fail the n-th one. */
static long alloc_fail_at = -1; /* -1: never */
static long alloc_count;

static bool alloc_fails(void)
{
	if (alloc_fail_at < 0)
		return false;
	if (alloc_count++ != alloc_fail_at)
		return false;
	errno = ENOMEM;
	return true;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);

void *__wrap_malloc(size_t n)
{
	return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return alloc_fails() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return alloc_fails() ? NULL : __real_strdup(s);
}
#endif

static char dir[256]; /* the fixture directory */

/* Diagnostics collected from one parse. */
struct diags {
	unsigned n;
	char msg[16][1024];
};

static void collect(void *ctx, const char *msg)
{
	struct diags *d = ctx;
	if (d->n < 16)
		snprintf(d->msg[d->n], sizeof d->msg[0], "%s", msg);
	d->n++;
}

/* s with every "@D" replaced by the fixture directory. */
static char *subst(const char *s, char *out, size_t len)
{
	size_t o = 0;
	for (; *s && o + 1 < len; s++) {
		if (s[0] == '@' && s[1] == 'D') {
			o += (size_t)snprintf(out + o, len - o, "%s", dir);
			s++;
		} else {
			out[o++] = *s;
		}
	}
	out[o < len ? o : len - 1] = '\0';
	return out;
}

static void write_file(const char *name, const char *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "cannot write %s: %s\n", path,
		        strerror(errno));
		exit(2);
	}
}

static const char pem[] =
	"subject=/CN=test\n"
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBfake\n"
	"-----END CERTIFICATE-----\n";

static void make_fixtures(void)
{
	const char *tmp = getenv("TMPDIR");
	char sub[512];

	snprintf(dir, sizeof dir, "%s/tlsshim-test-XXXXXX",
	         tmp && tmp[0] ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(2);
	}
	write_file("ca.pem", pem, strlen(pem));
	write_file("weird#name.pem", pem, strlen(pem));
	write_file("empty.pem", "", 0);
	write_file("key.pem", "-----BEGIN PRIVATE KEY-----\nx\n", 30);
	snprintf(sub, sizeof sub, "%s/adir", dir);
	mkdir(sub, 0700);
	snprintf(sub, sizeof sub, "%s/sub", dir);
	mkdir(sub, 0700);
	write_file("sub/ca2.pem", pem, strlen(pem));
	snprintf(sub, sizeof sub, "%s/cwd", dir);
	mkdir(sub, 0700);
	write_file("cwd/cwdonly.pem", pem, strlen(pem));
}

static void remove_fixtures(void)
{
	static const char *const files[] = {
		"ca.pem", "weird#name.pem", "empty.pem", "key.pem",
		"sub/ca2.pem", "cwd/cwdonly.pem", "big.conf", "nul.conf",
		"ok.conf", "p.conf", "adir", "sub", "cwd", "",
	};
	char path[512];
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		remove(path);
	}
}

/* Checks msg is "path:line:col: ..." with want somewhere in the message. */
static void check_msg(const char *what, const char *msg, const char *path,
                      unsigned line, unsigned col, const char *want)
{
	char prefix[600], w[1024];
	size_t pl;

	snprintf(prefix, sizeof prefix, "%s:%u:%u: ", path, line, col);
	pl = strlen(prefix);
	subst(want, w, sizeof w);
	CHECK(msg && !strncmp(msg, prefix, pl) && strstr(msg + pl, w),
	      "%s:\n   got  '%s'\n   want '%s...%s...'", what,
	      msg ? msg : "(none)", prefix, w);
}

/* ---- one error each ---- */

static const struct {
	const char *text;
	unsigned line, col;
	const char *msg;
} bad[] = {
	/* keys and scopes */
	{"bogus = 1\n", 1, 1, "unknown key 'bogus'"},
	{"bogus = 1\r\n", 1, 1, "unknown key 'bogus'"},
	{"[r]\nmatch = 1\n  Match = 2\n", 3, 3, "unknown key 'Match'"},
	{"match = 80\n", 1, 1, "'match' is a rule key"},
	{"sni = a.b\n[r]\nmatch = 1\n", 1, 1, "'sni' is a rule key"},
	{"[r]\nmatch = 1\nlog-level = warn\n", 3, 1,
	 "'log-level' is a global key"},
	{"[r]\nmatch = 1\nhandshake-timeout = 5\n", 3, 1,
	 "'handshake-timeout' is a global key"},
	{"[r]\nmatch = 1\nmatch = 2\n", 3, 1,
	 "duplicate key 'match' (first on line 2)"},
	{"log-level = warn\nlog-level = info\n", 2, 1,
	 "duplicate key 'log-level' (first on line 1)"},
	{"[r]\nmatch = 1\nsni = a.b\n\nsni=a.b\n", 5, 1,
	 "duplicate key 'sni' (first on line 3)"},
	/* default deny and plaintext exceptions */
	{"unmatched = deny\n", 1, 13, "bad unmatched 'deny': expected pass or refuse"},
	{"io-uring = yes\n", 1, 12, "bad io-uring 'yes': expected refuse or allow"},
	{"[r]\nmatch = 1\nunmatched = refuse\n", 3, 1,
	 "'unmatched' is a global key"},
	{"[r]\nmatch = 1\ntls = off\n", 3, 7, "bad tls 'off': expected yes or no"},
	{"[r]\nmatch = 1\ntls = no\nsni = a.b\n", 4, 1,
	 "rule 'r' has tls = no: 'sni' means nothing without TLS"},
	{"[r]\nmatch = 1\ntls-port = 2\ntls = no\n", 3, 1,
	 "rule 'r' has tls = no: 'tls-port' means nothing without TLS"},
	/* server rules (accept) */
	{"[s]\naccept = 6379\n", 1, 2,
	 "rule 's' accepts connections: it needs 'cert' and 'key'"},
	{"[s]\nmatch = 1\naccept = 2\ncert = @D/ca.pem\nkey = @D/key.pem\n",
	 3, 1, "rule 's' has both 'match' and 'accept'"},
	{"[s]\naccept = db.internal:6379\ncert = @D/ca.pem\n"
	 "key = @D/key.pem\n", 2, 10,
	 "bad accept entry 'db.internal': a local address and port"},
	{"[s]\naccept = 1\ncert = @D/empty.pem\nkey = @D/key.pem\n", 3, 8,
	 "cert @D/empty.pem is empty"},
	{"[s]\naccept = 1\ncert = @D/key.pem\nkey = @D/key.pem\n", 3, 8,
	 "has no '-----BEGIN CERTIFICATE-----' block"},
	{"[s]\naccept = 1\ncert = @D/ca.pem\nkey = @D/key.pem\n"
	 "client-name = -x\nclient-ca = @D/ca.pem\n", 5, 15,
	 "bad client-name entry '-x'"},
	{"[s]\naccept = 1\ncert = @D/ca.pem\nkey = @D/key.pem\n"
	 "client-name = a.*.b\nclient-ca = @D/ca.pem\n", 5, 15,
	 "bad client-name entry 'a.*.b'"},
	{"[s]\naccept = 1\ncert = @D/ca.pem\nkey = @D/key.pem\n"
	 "client-name = a.b\n", 5, 1,
	 "client-name and client-pin-sha256 need 'client-ca'"},
	{"[s]\naccept = 1\ncert = @D/ca.pem\nkey = @D/key.pem\n"
	 "sni = a.b\n", 5, 1,
	 "rule 's': 'sni' belongs to client (match) rules"},
	{"[c]\nmatch = 1\nclient-ca = @D/ca.pem\n", 3, 1,
	 "rule 'c': 'client-ca' belongs to server (accept) rules"},
	/* sections */
	{"[r]\nsni = a.b\n", 1, 2, "rule 'r' has no 'match'"},
	{"[a]\nmatch = 1\n[ b ]\n[c]\nmatch = 1\n", 3, 3,
	 "rule 'b' has no 'match'"},
	{"[]\n", 1, 1, "empty section name"},
	{"  [  ]\nmatch = 1\n", 1, 3, "empty section name"},
	{"[a]\nmatch = 1\n[a]\nmatch = 2\n", 3, 2,
	 "duplicate section 'a' (first on line 1)"},
	{"[a\nmatch = 1\n", 1, 1, "malformed section line: missing ']'"},
	{"[a] x\nmatch = 1\n", 1, 5, "unexpected 'x' after ']'"},
	{"[a]]\nmatch = 1\n", 1, 4, "unexpected ']' after ']'"},
	{"[a b]\nmatch = 1\n", 1, 3, "bad section name 'a b'"},
	/* lines */
	{"[r]\nmatch = 1\njunk\n", 3, 1, "expected 'key = value'"},
	{"[r]\n  = 5\nmatch = 1\n", 2, 3, "missing key before '='"},
	{"[r]\nmatch =\n", 2, 8, "empty value for 'match'"},
	{"[r]\nmatch =   # only a comment\n", 2, 11,
	 "empty value for 'match'"},
	{"[r]\nmatch = ;x\n", 2, 9, "empty value for 'match'"},
	/* global values */
	{"log-level = loud\n", 1, 13, "bad log-level 'loud'"},
	{"log-level = warning\n", 1, 13, "bad log-level 'warning'"},
	{"handshake-timeout = 0\n", 1, 21, "bad handshake-timeout '0'"},
	{"handshake-timeout = 3601\n", 1, 21, "bad handshake-timeout '3601'"},
	{"handshake-timeout = 10s\n", 1, 21, "bad handshake-timeout '10s'"},
	{"handshake-timeout = -1\n", 1, 21, "bad handshake-timeout '-1'"},
	{"handshake-timeout = 99999999999999999999\n", 1, 21,
	 "bad handshake-timeout"},
	/* match entries: the value starts at column 9 */
	{"[r]\nmatch = 0\n", 2, 9, "bad port '0': expected 1..65535"},
	{"[r]\nmatch = 65536\n", 2, 9, "bad port '65536'"},
	{"[r]\nmatch = 00000000000080\n", 2, 9, "bad port"},
	{"[r]\nmatch = +80\n", 2, 9, "missing port in '+80'"},
	{"[r]\nmatch = http\n", 2, 9, "missing port in 'http'"},
	{"[r]\nmatch = 90-80\n", 2, 9, "bad port range '90-80': 90 > 80"},
	{"[r]\nmatch = 80-\n", 2, 12, "bad port ''"},
	{"[r]\nmatch = 1.2.3:80\n", 2, 9, "bad IPv4 address '1.2.3'"},
	{"[r]\nmatch = 1.2.3.256:80\n", 2, 9,
	 "bad IPv4 address '1.2.3.256'"},
	{"[r]\nmatch = 10.0.0.0/33:80\n", 2, 17,
	 "prefix /33 too large for IPv4 (max 32)"},
	{"[r]\nmatch = 10.0.0.0/:80\n", 2, 17, "bad prefix length '/'"},
	{"[r]\nmatch = foo/8:80\n", 2, 9, "bad IPv4 address 'foo'"},
	{"[r]\nmatch = [::1/129]:80\n", 2, 13,
	 "prefix /129 too large for IPv6 (max 128)"},
	{"[r]\nmatch = [::g]:80\n", 2, 9, "bad IPv6 address '::g'"},
	{"[r]\nmatch = [1.2.3.4]:80\n", 2, 9, "bad IPv6 address '1.2.3.4'"},
	{"[r]\nmatch = [::1]\n", 2, 9, "missing port in '[::1]'"},
	{"[r]\nmatch = [::1]:\n", 2, 9, "missing port in '[::1]:'"},
	{"[r]\nmatch = [::1:80\n", 2, 9, "missing ']'"},
	{"[r]\nmatch = [::1]:0\n", 2, 15, "bad port '0'"},
	{"[r]\nmatch = ::1:80\n", 2, 9, "write IPv6 addresses in brackets"},
	{"[r]\nmatch = *.:443\n", 2, 9, "bad wildcard '*.'"},
	{"[r]\nmatch = *..:443\n", 2, 9, "bad wildcard '*..'"},
	{"[r]\nmatch = a*.b:1\n", 2, 9, "bad wildcard 'a*.b'"},
	{"[r]\nmatch = *:443\n", 2, 9, "bad wildcard '*'"},
	{"[r]\nmatch = *.*.b:1\n", 2, 9, "bad wildcard '*.*.b'"},
	{"[r]\nmatch = *.a..b:1\n", 2, 9, "bad wildcard '*.a..b': empty label"},
	{"[r]\nmatch = foo!:80\n", 2, 9,
	 "bad host 'foo!': invalid character '!'"},
	{"[r]\nmatch = a..b:1\n", 2, 9, "bad host 'a..b': empty label"},
	{"[r]\nmatch = -a.b:1\n", 2, 9, "label starts or ends with '-'"},
	{"[r]\nmatch = a-.b:1\n", 2, 9, "label starts or ends with '-'"},
	{"[r]\nmatch = "
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b:1"
	 "\n", 2, 9, "label longer than 63"},
	{"[r]\nmatch = example.com\n", 2, 9, "missing port in 'example.com'"},
	{"[r]\nmatch = example.com:\n", 2, 9,
	 "missing port in 'example.com:'"},
	{"[r]\nmatch = example.com:https\n", 2, 21, "bad port 'https'"},
	{"[r]\nmatch = :80\n", 2, 9, "missing host or address"},
	{"[r]\nmatch = 80, ,81\n", 2, 13, "empty entry in match list"},
	{"[r]\nmatch = 80,\n", 2, 12, "empty entry in match list"},
	{"[r]\nmatch = 443,  example.com:0\n", 2, 27, "bad port '0'"},
	/* other rule values */
	{"[r]\nmatch = 1\ntls-port = 0\n", 3, 12, "bad tls-port '0'"},
	{"[r]\nmatch = 1\ntls-port = 65536\n", 3, 12, "bad tls-port '65536'"},
	{"[r]\nmatch = 1\ntls-port = x\n", 3, 12, "bad tls-port 'x'"},
	{"[r]\nmatch = 1\nsni = 10.0.0.1\n", 3, 7,
	 "bad sni '10.0.0.1': must be a DNS name"},
	{"[r]\nmatch = 1\nsni = ::1\n", 3, 7, "bad sni '::1'"},
	{"[r]\nmatch = 1\nsni = a b\n", 3, 7,
	 "bad sni 'a b': invalid character ' '"},
	{"[r]\nmatch = 1\nsni = -a.com\n", 3, 7, "bad sni '-a.com'"},
	{"[r]\nmatch = 1\nsni = .\n", 3, 7, "bad sni '.': empty name"},
	{"[r]\nmatch = 1\nsni = a\001b\n", 3, 7, "invalid character 0x01"},
	/* trust files */
	{"[r]\nmatch = 1\nca-file = nope.pem\n", 3, 11,
	 "cannot read @D/nope.pem: No such file or directory"},
	{"[r]\nmatch = 1\nca-file = /nonexistent-dir/ca.pem\n", 3, 11,
	 "cannot read /nonexistent-dir/ca.pem: No such file or directory"},
	{"[r]\nmatch = 1\nca-file = empty.pem\n", 3, 11,
	 "ca-file @D/empty.pem is empty"},
	{"[r]\nmatch = 1\nca-file = key.pem\n", 3, 11,
	 "ca-file @D/key.pem has no '-----BEGIN CERTIFICATE-----' block"},
	{"[r]\nmatch = 1\nca-file = adir\n", 3, 11,
	 "cannot read @D/adir: Is a directory"},
	/* relative to the policy's directory, never the working directory */
	{"[r]\nmatch = 1\nca-file = cwdonly.pem\n", 3, 11,
	 "cannot read @D/cwdonly.pem: No such file or directory"},
};

static void test_bad(void)
{
	char path[512], text[8192], what[64], err[1024];

	snprintf(path, sizeof path, "%s/p.conf", dir);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct diags d = {0};
		subst(bad[i].text, text, sizeof text);
		snprintf(what, sizeof what, "bad[%zu]", i);
		struct ts_policy *p = ts_policy_parse(path, text, strlen(text),
		                                      collect, &d, err,
		                                      sizeof err);
		CHECK(p == NULL, "%s: parsed", what);
		ts_policy_free(p);
		CHECK(d.n == 1, "%s: %u errors, first '%s'", what, d.n,
		      d.n ? d.msg[0] : "");
		check_msg(what, d.n ? d.msg[0] : NULL, path, bad[i].line,
		          bad[i].col, bad[i].msg);
		CHECK(d.n && !strcmp(err, d.msg[0]), "%s: err '%s'", what,
		      err);
	}
}

/* ---- several errors in one file: all reported, in order ---- */

struct want {
	unsigned line, col;
	const char *msg;
};

static const struct {
	const char *text;
	struct want w[10];
} multi[] = {
	{"bogus = 1\n"
	 "log-level = loud\n"
	 "[r]\n"
	 "match = 0, 1.2.3:4, x\n"
	 "sni = -x\n"
	 "[r]\n",
	 {{1, 1, "unknown key 'bogus'"},
	  {2, 13, "bad log-level 'loud'"},
	  {4, 9, "bad port '0'"},
	  {4, 12, "bad IPv4 address '1.2.3'"},
	  {4, 21, "missing port in 'x'"},
	  {5, 7, "bad sni '-x'"},
	  {6, 2, "duplicate section 'r'"},
	  {6, 2, "rule 'r' has no 'match'"}}},
	/* a bad port and a bad address in one entry: both */
	{"[r]\nmatch = 1.2.3:0\n",
	 {{2, 9, "bad IPv4 address"}, {2, 15, "bad port '0'"}}},
	{"[r]\nmatch = 0-0\n",
	 {{2, 9, "bad port '0'"}, {2, 11, "bad port '0'"}}},
	/* in the order found: a missing match at the section's end */
	{"[a]\n[b]\nmatch = 1\nmatch = 2\n[c]\ntls-port = 0\n",
	 {{1, 2, "rule 'a' has no 'match'"},
	  {4, 1, "duplicate key 'match'"},
	  {6, 12, "bad tls-port '0'"},
	  {5, 2, "rule 'c' has no 'match'"}}},
	/* a broken section line does not also lack a match */
	{"[x\nsni = a\nbogus = 1\n",
	 {{1, 1, "missing ']'"}, {3, 1, "unknown key 'bogus'"}}},
};

static void test_multi(void)
{
	char path[512], what[64], err[64];

	snprintf(path, sizeof path, "%s/p.conf", dir);
	for (size_t i = 0; i < sizeof multi / sizeof multi[0]; i++) {
		struct diags d = {0};
		unsigned n = 0;
		while (n < 10 && multi[i].w[n].msg)
			n++;
		struct ts_policy *p = ts_policy_parse(
			path, multi[i].text, strlen(multi[i].text), collect,
			&d, err, sizeof err);
		CHECK(p == NULL, "multi[%zu]: parsed", i);
		CHECK(d.n == n, "multi[%zu]: %u errors, want %u", i, d.n, n);
		for (unsigned j = 0; j < n && j < d.n; j++) {
			snprintf(what, sizeof what, "multi[%zu] error %u", i,
			         j);
			check_msg(what, d.msg[j], path, multi[i].w[j].line,
			          multi[i].w[j].col, multi[i].w[j].msg);
		}
		/* err holds the first, cut to fit */
		size_t want = d.n ? strlen(d.msg[0]) : 0;
		if (want > sizeof err - 1)
			want = sizeof err - 1;
		CHECK(d.n && strlen(err) == want &&
		              !strncmp(err, d.msg[0], want),
		      "multi[%zu]: err '%s'", i, err);
	}
}

/* ---- valid policies ---- */

static void test_example(void)
{
	char path[512], err[512], ca[512];
	const char *text =
		"# tlsshim policy\n"
		"; another comment\n"
		"log-level = debug   # trailing\n"
		"handshake-timeout = 25\n"
		"\n"
		"[redis]\n"
		"match = 6379\n"
		"sni = Redis.Internal.\n"
		"ca-file = ca.pem\n"
		"tls-port = 6380\n"
		"\n"
		"[web]   ; a comment\n"
		"  match=443,8000-8100 , 10.0.0.1:443,[2001:db8::1]:443,"
		"10.0.0.0/8:80,[2001:db8::/32]:443,Example.COM.:443,"
		"*.Example.com:443,[::ffff:10.1.2.3]:5432,"
		"[::ffff:10.0.0.0/104]:5433,127.0.0.1:1-1024\n"
		"ca-file = weird#name.pem # '#' inside a word is not a comment\n"
		"[plain]\n"
		"match = 1";
	struct diags d = {0};

	snprintf(path, sizeof path, "%s/p.conf", dir);
	struct ts_policy *p = ts_policy_parse(path, text, strlen(text),
	                                      collect, &d, err, sizeof err);
	CHECK(p != NULL && d.n == 0 && err[0] == '\0', "example: %s", err);
	if (!p)
		return;
	CHECK(streq(p->path, path), "path %s", p->path);
	CHECK(p->log_level == TS_LOG_DEBUG, "log-level %d", p->log_level);
	CHECK(p->handshake_timeout_ms == 25000, "timeout %u",
	      p->handshake_timeout_ms);
	CHECK(p->nrules == 3, "%zu rules", p->nrules);
	if (p->nrules != 3)
		goto out;

	const struct ts_rule *r = &p->rules[0];
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	CHECK(streq(r->name, "redis") && r->line == 6, "rule 0 %s:%u",
	      r->name, r->line);
	CHECK(r->nmatches == 1 && r->matches[0].kind == TS_MATCH_PORT &&
	              r->matches[0].port_lo == 6379 &&
	              r->matches[0].port_hi == 6379,
	      "redis match");
	CHECK(streq(r->sni, "redis.internal"), "sni %s", r->sni);
	CHECK(streq(r->ca_file, ca), "ca_file %s", r->ca_file);
	CHECK(r->ca.len == strlen(pem) && r->ca.data &&
	              !memcmp(r->ca.data, pem, r->ca.len),
	      "ca bytes");
	CHECK(r->tls_port == 6380, "tls-port %u", r->tls_port);

	r = &p->rules[1];
	CHECK(streq(r->name, "web") && r->line == 12, "rule 1 %s:%u",
	      r->name, r->line);
	CHECK(r->sni == NULL && r->tls_port == 0, "web defaults");
	snprintf(ca, sizeof ca, "%s/weird#name.pem", dir);
	CHECK(streq(r->ca_file, ca), "ca_file %s", r->ca_file);
	CHECK(r->nmatches == 11, "web: %zu matches", r->nmatches);
	if (r->nmatches == 11) {
		const struct ts_match *m = r->matches;
		static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0,
		                               0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
		CHECK(m[0].kind == TS_MATCH_PORT && m[0].port_lo == 443 &&
		              m[0].port_hi == 443,
		      "m0");
		CHECK(m[1].kind == TS_MATCH_PORT && m[1].port_lo == 8000 &&
		              m[1].port_hi == 8100,
		      "m1");
		CHECK(m[2].kind == TS_MATCH_ADDR && m[2].family == AF_INET &&
		              m[2].prefix == 32 &&
		              !memcmp(m[2].addr, "\x0a\0\0\x01", 4) &&
		              m[2].port_lo == 443,
		      "m2");
		CHECK(m[3].kind == TS_MATCH_ADDR && m[3].family == AF_INET6 &&
		              m[3].prefix == 128 && !memcmp(m[3].addr, v6, 16),
		      "m3");
		CHECK(m[4].kind == TS_MATCH_ADDR && m[4].family == AF_INET &&
		              m[4].prefix == 8 && m[4].port_lo == 80,
		      "m4");
		CHECK(m[5].kind == TS_MATCH_ADDR && m[5].family == AF_INET6 &&
		              m[5].prefix == 32,
		      "m5");
		CHECK(m[6].kind == TS_MATCH_HOST &&
		              streq(m[6].host, "example.com"),
		      "m6 %s", m[6].host);
		CHECK(m[7].kind == TS_MATCH_WILDCARD &&
		              streq(m[7].host, ".example.com"),
		      "m7 %s", m[7].host);
		CHECK(m[8].kind == TS_MATCH_ADDR && m[8].family == AF_INET &&
		              m[8].prefix == 32 &&
		              !memcmp(m[8].addr, "\x0a\x01\x02\x03", 4),
		      "m8: v4-mapped is IPv4");
		CHECK(m[9].kind == TS_MATCH_ADDR && m[9].family == AF_INET &&
		              m[9].prefix == 8,
		      "m9: v4-mapped /104 is IPv4 /8 (%u)", m[9].prefix);
		CHECK(m[10].kind == TS_MATCH_ADDR &&
		              m[10].family == AF_INET && m[10].port_lo == 1 &&
		              m[10].port_hi == 1024,
		      "m10");
	}
	r = &p->rules[2];
	CHECK(streq(r->name, "plain") && r->nmatches == 1 && !r->ca.data &&
	              !r->ca_file,
	      "rule 2: no newline at the end");
out:
	ts_policy_free(p);
}

static void test_small_valid(void)
{
	static const char *const ok[] = {
		"",
		"\n\n   \n",
		"# only comments\n; and these\n",
		"\xef\xbb\xbf[r]\nmatch = 1\n", /* byte order mark */
		"[r]\r\nmatch = 1\r\nsni = a.b\r\n",
		"log-level = ERROR\n",
		"handshake-timeout = 1\n",
		"handshake-timeout = 3600\n",
		"[r]\nmatch = 65535, 1-65535\ntls-port = 65535\n",
		"[under_score.x-y]\nmatch = my_service:80\n",
		"\t[r]\t# tab\n\tmatch\t=\t1\t; tab\n",
		"[r]\nmatch = [::]:1, [::/0]:1, 0.0.0.0/0:1, 1.2.3.4/32:1\n",
		"[r]\nmatch = localhost:5432\nsni = localhost\n",
	};
	char err[512];

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct ts_policy *p = ts_policy_parse(
			"ok.conf", ok[i], strlen(ok[i]), NULL, NULL, err,
			sizeof err);
		CHECK(p != NULL, "ok[%zu]: %s", i, err);
		ts_policy_free(p);
	}

	struct ts_policy *p = ts_policy_parse("ok.conf", "", 0, NULL, NULL,
	                                      NULL, 0);
	CHECK(p && p->log_level == TS_LOG_WARN &&
	              p->handshake_timeout_ms == 10000 && p->nrules == 0,
	      "defaults");
	ts_policy_free(p);
	p = ts_policy_parse("ok.conf", NULL, 0, NULL, NULL, NULL, 0);
	CHECK(p && p->nrules == 0, "NULL buffer is empty");
	ts_policy_free(p);
	ts_policy_free(NULL);
}

/* ca-file paths resolve against the policy file's directory. */
static void test_relative(void)
{
	char path[512], want[512], err[512], cwd[512];
	const char *t1 = "[r]\nmatch = 1\nca-file = ca2.pem\n";
	const char *t2 = "[r]\nmatch = 1\nca-file = ../ca.pem\n";
	const char *t3 = "[r]\nmatch = 1\nca-file = cwdonly.pem\n";
	struct ts_policy *p;

	snprintf(path, sizeof path, "%s/sub/p.conf", dir);
	p = ts_policy_parse(path, t1, strlen(t1), NULL, NULL, err,
	                    sizeof err);
	snprintf(want, sizeof want, "%s/sub/ca2.pem", dir);
	CHECK(p && streq(p->rules[0].ca_file, want) &&
	              p->rules[0].ca.len == strlen(pem),
	      "sub/ca2.pem: %s", p ? p->rules[0].ca_file : err);
	ts_policy_free(p);

	p = ts_policy_parse(path, t2, strlen(t2), NULL, NULL, err,
	                    sizeof err);
	snprintf(want, sizeof want, "%s/sub/../ca.pem", dir);
	CHECK(p && streq(p->rules[0].ca_file, want), "../ca.pem: %s",
	      p ? p->rules[0].ca_file : err);
	ts_policy_free(p);

	/* A policy named without a directory is in the working directory;
	 * a file that is only in the working directory of the program is
	 * not found for a policy elsewhere (test_bad). */
	if (!getcwd(cwd, sizeof cwd)) {
		CHECK(0, "getcwd: %s", strerror(errno));
		return;
	}
	snprintf(want, sizeof want, "%s/cwd", dir);
	if (chdir(want)) {
		CHECK(0, "chdir %s: %s", want, strerror(errno));
		return;
	}
	p = ts_policy_parse("p.conf", t3, strlen(t3), NULL, NULL, err,
	                    sizeof err);
	CHECK(p && streq(p->rules[0].ca_file, "./cwdonly.pem"),
	      "bare policy name: %s", p ? p->rules[0].ca_file : err);
	ts_policy_free(p);
	snprintf(path, sizeof path, "%s/p.conf", dir);
	p = ts_policy_parse(path, t3, strlen(t3), NULL, NULL, err,
	                    sizeof err);
	CHECK(p == NULL && strstr(err, "cannot read"),
	      "cwd is not the policy dir: %s", err);
	ts_policy_free(p);
	/* no path at all: nothing to resolve against */
	p = ts_policy_parse(NULL, t3, strlen(t3), NULL, NULL, err,
	                    sizeof err);
	CHECK(p == NULL && !strncmp(err, "(policy):3:11: ", 15) &&
	              strstr(err, "relative path"),
	      "no policy path: %s", err);
	ts_policy_free(p);
	if (chdir(cwd))
		CHECK(0, "chdir back: %s", strerror(errno));
}

static void test_text_limits(void)
{
	char path[512], err[512];
	struct diags d = {0};
	enum { n = 5000 };
	/* Static: the allocator is wrapped in this test. */
	static char text[n + 64];
	struct ts_policy *p;

	snprintf(path, sizeof path, "%s/p.conf", dir);
	/* 4096 bytes is fine; 4097 is not, and parsing goes on */
	memset(text, ' ', 4096);
	memcpy(text, "#", 1);
	strcpy(text + 4096, "\n[r]\nmatch = 1\n");
	p = ts_policy_parse(path, text, strlen(text), NULL, NULL, err,
	                    sizeof err);
	CHECK(p != NULL, "4096-byte line: %s", err);
	ts_policy_free(p);
	text[0] = ' ';
	memcpy(text + 4096 - 7, "bogus=1", 7);
	p = ts_policy_parse(path, text, strlen(text), NULL, NULL, err,
	                    sizeof err);
	CHECK(p == NULL && strstr(err, ":1:4090: unknown key"),
	      "column at the end of a long line: %s", err);
	ts_policy_free(p);

	memset(text, '#', n);
	strcpy(text + n, "\nbogus = 1\n");
	p = ts_policy_parse(path, text, strlen(text), collect, &d, err,
	                    sizeof err);
	CHECK(p == NULL && d.n == 2, "long line: %u errors", d.n);
	check_msg("long line", d.msg[0], path, 1, 4097,
	          "line longer than 4096 bytes");
	check_msg("after long line", d.msg[1], path, 2, 1, "unknown key");
	ts_policy_free(p);

	/* NUL: not text; stop at the first */
	static const char nul[] = "[r]\nmatch = 1\nsni = a\0b\nbogus\0\n";
	d.n = 0;
	p = ts_policy_parse(path, nul, sizeof nul - 1, collect, &d, err,
	                    sizeof err);
	CHECK(p == NULL && d.n == 1, "NUL: %u errors", d.n);
	check_msg("NUL", d.msg[0], path, 3, 8, "NUL byte: not a text file");
	ts_policy_free(p);
}

static void test_load(void)
{
	char path[512], err[512], want[600];
	struct diags d = {0};
	struct ts_policy *p;
	const char *ok = "log-level = info\n[r]\nmatch = 1\nca-file = ca.pem\n";

	write_file("ok.conf", ok, strlen(ok));
	snprintf(path, sizeof path, "%s/ok.conf", dir);
	p = ts_policy_load(path, collect, &d, err, sizeof err);
	CHECK(p && p->log_level == TS_LOG_INFO && p->nrules == 1 &&
	              p->rules[0].ca.len == strlen(pem),
	      "load: %s", err);
	ts_policy_free(p);

	/* whole-file errors: "path: message", no line */
	snprintf(path, sizeof path, "%s/missing.conf", dir);
	p = ts_policy_load(path, collect, &d, err, sizeof err);
	snprintf(want, sizeof want, "%s: cannot read: No such file or "
	         "directory", path);
	CHECK(!p && !strcmp(err, want) && d.n == 1 &&
	              !strcmp(d.msg[0], want),
	      "missing: %s", err);

	snprintf(path, sizeof path, "%s/adir", dir);
	p = ts_policy_load(path, NULL, NULL, err, sizeof err);
	snprintf(want, sizeof want, "%s: cannot read: Is a directory", path);
	CHECK(!p && !strcmp(err, want), "directory: %s", err);

	/* 1 MiB of comments loads; one byte more does not */
	size_t n = 1024 * 1024;
	char *big = malloc(n + 1);
	memset(big, '\n', n + 1);
	big[0] = '#';
	write_file("big.conf", big, n);
	snprintf(path, sizeof path, "%s/big.conf", dir);
	p = ts_policy_load(path, NULL, NULL, err, sizeof err);
	CHECK(p != NULL, "1 MiB: %s", err);
	ts_policy_free(p);
	write_file("big.conf", big, n + 1);
	p = ts_policy_load(path, NULL, NULL, err, sizeof err);
	snprintf(want, sizeof want, "%s: larger than 1 MiB", path);
	CHECK(!p && !strcmp(err, want), "1 MiB + 1: %s", err);
	free(big);

	write_file("nul.conf", "[r]\n\0", 5);
	snprintf(path, sizeof path, "%s/nul.conf", dir);
	p = ts_policy_load(path, NULL, NULL, err, sizeof err);
	CHECK(!p && strstr(err, "nul.conf:2:1: NUL byte"), "NUL: %s", err);

	/* err is optional, and cut to fit */
	p = ts_policy_load(path, NULL, NULL, NULL, 0);
	CHECK(!p, "no err buffer");
	memset(err, 'x', sizeof err);
	p = ts_policy_load(path, NULL, NULL, err, 5);
	CHECK(!p && !strncmp(err, dir, 4) && err[4] == '\0' &&
	              err[5] == 'x',
	      "err cut to 5 bytes");
	p = ts_policy_load(NULL, NULL, NULL, err, sizeof err);
	CHECK(!p && strstr(err, "no path"), "NULL path: %s", err);
}

static void test_log_levels(void)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	for (int i = 0; i < 4; i++) {
		CHECK(streq(ts_log_level_name((enum ts_log_level)i),
		            names[i]),
		      "name %d", i);
		CHECK(ts_log_level_parse(names[i]) == i, "parse %s",
		      names[i]);
	}
	CHECK(ts_log_level_parse("DEBUG") == TS_LOG_DEBUG, "upper case");
	CHECK(ts_log_level_parse("Warn") == TS_LOG_WARN, "mixed case");
	CHECK(ts_log_level_parse("warning") == -1, "warning");
	CHECK(ts_log_level_parse("war") == -1, "prefix");
	CHECK(ts_log_level_parse("") == -1, "empty");
	CHECK(ts_log_level_parse(NULL) == -1, "NULL");
	CHECK(streq(ts_log_level_name((enum ts_log_level)7), "?"),
	      "unknown level name");
}

#ifdef TS_TEST_WRAP_ALLOC
/* Fail each allocation in turn: the parse must fail cleanly with an
 * error (ASan and valgrind see any leak), never crash or abort. */
static void test_oom(void)
{
	char path[512], err[512];
	const char *text =
		"log-level = info\n"
		"[a]\nmatch = 1, 10.0.0.0/8:2, [::1]:3, h.x:4, *.y:5\n"
		"sni = a.b\nca-file = ca.pem\n"
		"[b]\nmatch = 1\n[c]\nmatch = 1\n[d]\nmatch = 1\n[e]\nmatch = 1\n"
		"[f]\nmatch = 1\n[g]\nmatch = 1\n[h]\nmatch = 1\n[i]\nmatch = 1\n";
	int fails = 0;

	snprintf(path, sizeof path, "%s/p.conf", dir);
	write_file("p.conf", text, strlen(text));
	for (long i = 0;; i++) {
		alloc_count = 0;
		alloc_fail_at = i;
		struct ts_policy *p = ts_policy_load(path, NULL, NULL, err,
		                                     sizeof err);
		bool hit = alloc_count > i;
		alloc_fail_at = -1;
		if (!hit) {
			CHECK(p != NULL, "no failure injected: %s", err);
			ts_policy_free(p);
			break;
		}
		if (p || !strstr(err, "out of memory"))
			fails++;
		ts_policy_free(p);
	}
	CHECK(fails == 0, "%d allocations failed without an error", fails);
	remove(path);
}
#endif

int main(void)
{
	make_fixtures();
	test_bad();
	test_multi();
	test_example();
	test_small_valid();
	test_relative();
	test_text_limits();
	test_load();
	test_log_levels();
#ifdef TS_TEST_WRAP_ALLOC
	test_oom();
#endif
	remove_fixtures();
	return check_summary();
}
