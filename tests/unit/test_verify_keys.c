/* The verification keys of the policy (crl-file, pin-sha256, client-cert,
 * client-key, min-version, max-version, priority, alpn, alpn-required,
 * keylog-file, and the global log-file):
 * each bad value's message, and the fields a good policy sets.
 * Table-driven; "@D" stands for a fresh fixture directory. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "check.h"

static char dir[256];

static void subst(const char *s, char *out, size_t len)
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
	out[o] = '\0';
}

static void write_file(const char *name, const char *data, mode_t mode)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, data, strlen(data)) < 0) {
		perror(path);
		exit(2);
	}
	fchmod(fd, mode);
	close(fd);
}

#define R "[r]\nmatch = 443\n"
#define PIN "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

static const struct {
	const char *text;
	const char *err; /* substring of the first error; NULL: valid */
} cases[] = {
	{R "crl-file = @D/crl.pem\n", NULL},
	{R "crl-file = @D/none.pem\n", "cannot read @D/none.pem"},
	{R "crl-file = @D/cert.pem\n", "has no '-----BEGIN X509 CRL-----'"},
	{R "crl-file = @D/empty.pem\n", "is empty"},
	{R "pin-sha256 = " PIN "\n", NULL},
	{R "pin-sha256 = " PIN "\npin-sha256 = " PIN "\n", "duplicate pin"},
	{R "pin-sha256 = abc\n", "bad pin-sha256 'abc'"},
	{R "pin-sha256 = 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF==\n",
	 "bad pin-sha256"},
	{R "pin-sha256 = 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF!=\n",
	 "bad pin-sha256"},
	{R "pin-sha256 = 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n",
	 "bad pin-sha256"}, /* stray bits after the digest */
	{R "client-cert = @D/cert.pem\nclient-key = @D/key.pem\n", NULL},
	{R "client-cert = @D/cert.pem\n", "needs both 'client-cert' and "
	                                  "'client-key'"},
	{R "client-key = @D/key.pem\n", "needs both"},
	{R "client-cert = @D/key.pem\nclient-key = @D/key.pem\n",
	 "has no '-----BEGIN CERTIFICATE-----'"},
	{R "client-cert = @D/cert.pem\nclient-key = @D/cert.pem\n",
	 "has no 'PRIVATE KEY-----'"},
	{R "client-cert = pkcs11:object=c\nclient-key = pkcs11:object=k\n",
	 NULL},
	{R "min-version = 1.2\n", NULL},
	{R "min-version = 1.3\n", NULL},
	{R "min-version = 1.1\n", "bad min-version '1.1': expected 1.2 or "
	                          "1.3"},
	{R "min-version = 1.3\nmin-version = 1.2\n", "duplicate key"},
	{R "max-version = 1.2\n", NULL},
	{R "max-version = 1.3\nmin-version = 1.3\n", NULL},
	{R "max-version = 1.4\n", "bad max-version '1.4': expected 1.2 or "
	                          "1.3"},
	{R "min-version = 1.3\nmax-version = 1.2\n",
	 "t.conf:4:1: rule 'r': min-version 1.3 is above max-version 1.2"},
	{R "priority = SECURE256:-VERS-TLS1.2\n", NULL},
	{R "priority =\n", "empty value for 'priority'"},
	{R "priority = NORMAL:%VERIFY_ALLOW_BROKEN\n",
	 "t.conf:3:19: priority: '%VERIFY_ALLOW_BROKEN' is not allowed"},
	{R "priority = NORMAL:%VERIFY_DISABLE_CRL_CHECKS\n", "not allowed"},
	{R "priority = NORMAL:%VERIFY_ALLOW_SIGN_WITH_SHA1\n",
	 "not allowed"},
	{R "priority = NORMAL:%PROFILE_LOW\n", "not allowed"},
	{R "alpn = h2, http/1.1\n", NULL},
	{R "alpn = h2,,http/1.1\n", "bad alpn entry ''"},
	{R "alpn-required = yes\n", "sets 'alpn-required' without 'alpn'"},
	{R "alpn = h2\nalpn-required = maybe\n", "bad alpn-required 'maybe': "
	                                         "expected yes or no"},
	{R "alpn = h2\nalpn-required = no\n", NULL},
	{R "keylog-file = @D/keys.log\n", NULL},
	{"log-file = @D/tlsshim.log\n" R, NULL},
	{"log-file = @D/link.log\n" R, "bad log-file @D/link.log: a symbolic "
	                                "link"},
	{"pin-sha256 = " PIN "\n", "'pin-sha256' is a rule key"},
};

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char text[2048], want[512], err[512];
		subst(cases[i].text, text, sizeof text);
		struct ts_policy *p = ts_policy_parse(
			"t.conf", text, strlen(text), NULL, NULL, err,
			sizeof err);
		if (!cases[i].err) {
			CHECK(p != NULL, "case %zu: %s", i, err);
		} else {
			subst(cases[i].err, want, sizeof want);
			CHECK(!p && strstr(err, want), "case %zu: want '%s', "
			      "got '%s'", i, want, p ? "(valid)" : err);
		}
		ts_policy_free(p);
	}
}

static void test_fields(void)
{
	char text[2048], err[512];
	subst(R "crl-file = @D/crl.pem\n"
	        "pin-sha256 = " PIN "\n"
	        "pin-sha256 = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	        "client-cert = @D/cert.pem\nclient-key = @D/openkey.pem\n"
	        "min-version = 1.3\nmax-version = 1.3\n"
	        "priority = SECURE256\n"
	        "alpn = h2 , http/1.1\nalpn-required = yes\n"
	        "keylog-file = @D/keys.log\n",
	      text, sizeof text);
	struct ts_policy *p = ts_policy_parse("t.conf", text, strlen(text),
	                                      NULL, NULL, err, sizeof err);
	CHECK(p != NULL, "%s", err);
	if (!p)
		return;
	const struct ts_rule *r = &p->rules[0];
	CHECK(r->crl.data && strstr((char *)r->crl.data, "X509 CRL"), "crl");
	CHECK(r->npins == 2, "npins %zu", r->npins);
	/* 47DEQ...: the SHA-256 of the empty string, e3b0c442... */
	CHECK(r->npins && r->pins[0][0] == 0xe3 && r->pins[0][1] == 0xb0 &&
	              r->pins[0][31] == 0x55,
	      "pin bytes");
	CHECK(r->npins == 2 && r->pins[1][0] == 0 && r->pins[1][31] == 0,
	      "second pin");
	CHECK(r->cert.data && r->key.data, "client material read");
	CHECK(r->key_exposed, "a 0644 key is exposed");
	CHECK(r->min_version == 13, "min_version %u", r->min_version);
	CHECK(r->max_version == 13, "max_version %u", r->max_version);
	CHECK(r->priority && !strcmp(r->priority, "SECURE256"), "priority");
	CHECK(r->nalpn == 2 && !strcmp(r->alpn[0], "h2") &&
	              !strcmp(r->alpn[1], "http/1.1"),
	      "alpn");
	CHECK(r->alpn_required, "alpn_required");
	CHECK(r->keylog_file && strstr(r->keylog_file, "keys.log"),
	      "keylog");
	ts_policy_free(p);

	subst(R "client-cert = @D/cert.pem\nclient-key = @D/key.pem\n", text,
	      sizeof text);
	p = ts_policy_parse("t.conf", text, strlen(text), NULL, NULL, err,
	                    sizeof err);
	CHECK(p && !p->rules[0].key_exposed, "a 0600 key is not exposed");
	CHECK(p && p->rules[0].min_version == 0 &&
	              p->rules[0].max_version == 0 && !p->rules[0].npins &&
	              !p->rules[0].alpn_required && !p->rules[0].keylog_file,
	      "defaults");
	ts_policy_free(p);
}

int main(void)
{
	snprintf(dir, sizeof dir, "%s/tsvk.XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	write_file("crl.pem", "-----BEGIN X509 CRL-----\nAA==\n"
	                      "-----END X509 CRL-----\n", 0644);
	write_file("cert.pem", "-----BEGIN CERTIFICATE-----\nAA==\n"
	                       "-----END CERTIFICATE-----\n", 0644);
	write_file("key.pem", "-----BEGIN PRIVATE KEY-----\nAA==\n"
	                      "-----END PRIVATE KEY-----\n", 0600);
	write_file("openkey.pem", "-----BEGIN EC PRIVATE KEY-----\nAA==\n"
	                          "-----END EC PRIVATE KEY-----\n", 0644);
	write_file("empty.pem", "", 0644);
	char link[512];
	snprintf(link, sizeof link, "%s/link.log", dir);
	if (symlink("/dev/null", link) < 0) {
		perror(link);
		return 2;
	}
	test_cases();
	test_fields();
	const char *names[] = {"crl.pem", "cert.pem", "key.pem",
	                       "openkey.pem", "empty.pem", "link.log"};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	return check_summary();
}
