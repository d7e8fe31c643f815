/* The policy parser (see policy.h).
 *
 * One pass, one line at a time. Keys are rows of the table `keys`: a row
 * names its scope and a parse function, which either stores through the
 * row's offset (plain values) or sets what the key needs on the rule (lists,
 * files). Every error is reported and parsing goes on, so one run shows them
 * all; any error makes the result NULL. Out of memory stops the parse with
 * an error and never aborts the host program. This runs inside the
 * preload: files are read through struct ts_policy_io (the preload's
 * real read/close), never stdio streams. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h> /* vsnprintf only: it formats into memory */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"

#define MAX_LINE 4096
#define MAX_POLICY (1024 * 1024)
#define MAX_PEM (8 * 1024 * 1024)
#define MAX_KEYS 32
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A value (or key) in the mutable line copy, and its 1-based column. */
struct tok {
	char *s;
	unsigned col;
};

struct parser;

struct key {
	const char *name;
	enum { SCOPE_GLOBAL, SCOPE_RULE } scope;
	bool repeatable; /* may appear more than once per section */
	bool required;   /* every rule must set it */
	bool plain_ok;   /* a rule key that means something with tls = no */
	enum { SIDE_BOTH, SIDE_CLIENT, SIDE_SERVER } side; /* match/accept */
	/* obj is the ts_policy (global keys) or the current ts_rule; 0 or -1
	 * with the error reported. */
	int (*parse)(struct parser *ps, const struct key *k, void *obj,
	             struct tok *v);
	size_t offset; /* of the field, for parse functions that use one */
	const char *words[2]; /* parse_word: the field is true for words[1] */
};

#define FIELD(obj, k, type) ((type *)((char *)(obj) + (k)->offset))

struct parser {
	const struct ts_policy_io *io;
	const char *path; /* for messages */
	char *dir;        /* relative paths resolve here; NULL: none */
	ts_policy_diag_fn diag;
	void *ctx;
	char *err;
	size_t errlen;
	unsigned nerr;
	bool stop; /* out of memory, or not a text file */
	unsigned line;
	const char *linestart; /* for columns */
	struct ts_policy *p;
	size_t rcap;
	bool in_rule;
	unsigned section_col;
	unsigned seen[MAX_KEYS]; /* line each key was first set in the section */
};

static void report(struct parser *ps, unsigned line, unsigned col,
                   const char *fmt, va_list ap)
{
	char msg[MAX_LINE + 512];
	int n;

	/* Whole-file errors have no position: "path: message". */
	if (line)
		n = snprintf(msg, sizeof msg, "%s:%u:%u: ", ps->path, line,
		             col);
	else
		n = snprintf(msg, sizeof msg, "%s: ", ps->path);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof msg)
		n = sizeof msg - 1;
	vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	if (ps->diag)
		ps->diag(ps->ctx, msg);
	if (ps->nerr++ == 0 && ps->err && ps->errlen) {
		size_t len = strlen(msg);
		if (len >= ps->errlen)
			len = ps->errlen - 1;
		memcpy(ps->err, msg, len);
		ps->err[len] = '\0';
	}
}

__attribute__((format(printf, 3, 4)))
static void perr(struct parser *ps, unsigned col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(ps, ps->line, col, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 4, 5)))
static void perr_at(struct parser *ps, unsigned line, unsigned col,
                    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(ps, line, col, fmt, ap);
	va_end(ap);
}

static void oom(struct parser *ps)
{
	if (!ps->stop)
		perr(ps, 1, "out of memory");
	ps->stop = true;
}

static char *xstrdup(struct parser *ps, const char *s)
{
	char *d = strdup(s);
	if (!d)
		oom(ps);
	return d;
}

static unsigned col_of(const struct parser *ps, const char *s)
{
	return (unsigned)(s - ps->linestart) + 1;
}

/* ASCII only: the host program's locale must not change what matches. */
static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char *skip_ws(char *s)
{
	while (is_ws(*s))
		s++;
	return s;
}

static void rtrim(char *s)
{
	size_t n = strlen(s);
	while (n && is_ws(s[n - 1]))
		s[--n] = '\0';
}

static bool all_digits_dots(const char *s)
{
	for (; *s; s++)
		if (!is_digit(*s) && *s != '.')
			return false;
	return true;
}

/* Lower-cases name, strips one trailing dot and returns what is wrong with
 * it as a DNS name (in buf if need be), or NULL. '_' is allowed: container
 * service names use it. */
static const char *dns_name_problem(char *name, char *buf, size_t buflen)
{
	size_t len = strlen(name), label = 0;

	if (len && name[len - 1] == '.')
		name[--len] = '\0';
	if (!len)
		return "empty name";
	if (len > 253)
		return "longer than 253 characters";
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];
		if (c >= 'A' && c <= 'Z')
			name[i] = c = (char)(c - 'A' + 'a');
		if (c == '.' || c == '\0') {
			if (!label)
				return "empty label";
			if (label > 63)
				return "label longer than 63 characters";
			if (name[i - 1] == '-' || name[i - label] == '-')
				return "label starts or ends with '-'";
			label = 0;
		} else if (is_alnum(c) || c == '-' || c == '_') {
			label++;
		} else {
			if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
				snprintf(buf, buflen, "invalid character 0x%02x",
				         (unsigned char)c);
			else
				snprintf(buf, buflen, "invalid character '%c'",
				         c);
			return buf;
		}
	}
	return NULL;
}

static const struct ts_policy_io libc_io = {
	.open = open,
	.fstat = fstat,
	.read = read,
	.close = close,
};

/* Reads all of path into a NUL-terminated buffer (len excludes the NUL).
 * Returns 0 or an errno value; EFBIG past max bytes. */
static int read_all(const struct ts_policy_io *io, const char *path,
                    size_t max, struct ts_blob *out)
{
	unsigned char *buf = NULL, *nbuf;
	size_t cap, len = 0;
	struct stat st;
	int e = 0, fd;

	*out = (struct ts_blob){0};
	fd = io->open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errno;
	if (io->fstat(fd, &st) < 0) {
		e = errno;
		goto err;
	}
	if (S_ISDIR(st.st_mode)) {
		e = EISDIR;
		goto err;
	}
	/* st_size is a hint (it may change, or be 0 for /proc or a pipe);
	 * read to EOF. Room for max + 1 bytes tells "too large" apart. */
	cap = st.st_size > 0 && (size_t)st.st_size <= max ?
	              (size_t)st.st_size + 2 : 8192;
	if (cap > max + 2)
		cap = max + 2;
	for (;;) {
		if (!buf || len + 1 == cap) {
			if (buf) {
				if (cap >= max + 2) {
					e = EFBIG;
					goto err;
				}
				cap = cap > (max + 2) / 2 ? max + 2 : cap * 2;
			}
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				e = ENOMEM;
				goto err;
			}
			buf = nbuf;
		}
		ssize_t n = io->read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			goto err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		e = EFBIG;
		goto err;
	}
	io->close(fd);
	buf[len] = '\0';
	out->data = buf;
	out->len = len;
	return 0;
err:
	free(buf);
	io->close(fd);
	return e;
}

/* A value path, resolved against the policy file's directory (never the
 * working directory of the program that loads it). */
static char *resolve(struct parser *ps, const struct key *k,
                     const struct tok *v)
{
	if (v->s[0] == '/')
		return xstrdup(ps, v->s);
	if (!ps->dir) {
		perr(ps, v->col, "%s: relative path '%.256s' needs a policy "
		     "file to resolve against", k->name, v->s);
		return NULL;
	}
	size_t dl = strlen(ps->dir), vl = strlen(v->s);
	bool slash = dl && ps->dir[dl - 1] == '/';
	char *full = malloc(dl + !slash + vl + 1);
	if (!full) {
		oom(ps);
		return NULL;
	}
	memcpy(full, ps->dir, dl);
	if (!slash)
		full[dl++] = '/';
	memcpy(full + dl, v->s, vl + 1);
	return full;
}

/* Reads the file a value names, which must hold mark (a PEM line). */
static int read_pem(struct parser *ps, const struct key *k,
                    const struct tok *v, const char *mark, char **path,
                    struct ts_blob *blob)
{
	char *full = resolve(ps, k, v);
	int e;

	if (!full)
		return -1;
	e = read_all(ps->io, full, MAX_PEM, blob);
	if (e == EFBIG)
		perr(ps, v->col, "cannot read %s: larger than %d MiB", full,
		     MAX_PEM >> 20);
	else if (e == ENOMEM)
		oom(ps);
	else if (e)
		perr(ps, v->col, "cannot read %s: %s", full, strerror(e));
	else if (!blob->len)
		perr(ps, v->col, "%s %s is empty", k->name, full);
	else if (!memmem(blob->data, blob->len, mark, strlen(mark)))
		perr(ps, v->col, "%s %s has no '%s' block", k->name, full,
		     mark);
	else {
		*path = full;
		return 0;
	}
	free(full);
	free(blob->data);
	*blob = (struct ts_blob){0};
	return -1;
}

/* Reads a PEM file named by a value. GnuTLS silently loads nothing from a
 * file without a BEGIN line, which would fail every handshake later with a
 * vague reason, so such a file is an error here. */
static int load_pem(struct parser *ps, const struct key *k,
                    const struct tok *v, const char *label, char **path,
                    struct ts_blob *blob)
{
	char begin[64];

	snprintf(begin, sizeof begin, "-----BEGIN %s-----", label);
	return read_pem(ps, k, v, begin, path, blob);
}

/* Digits only, 1..65535. */
static int parse_port(struct parser *ps, const char *what, const char *s,
                      unsigned col, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; is_digit(s[i]) && i < 6; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	if (!i || s[i] || v < 1 || v > 65535) {
		perr(ps, col, "bad %s '%.64s': expected 1..65535", what, s);
		return -1;
	}
	*out = (uint16_t)v;
	return 0;
}

/* PORT or PORT-PORT. */
static int parse_port_range(struct parser *ps, char *s, unsigned col,
                            struct ts_match *m)
{
	char *dash = strchr(s, '-');
	int rv = 0;

	if (!dash) {
		if (parse_port(ps, "port", s, col, &m->port_lo))
			return -1;
		m->port_hi = m->port_lo;
		return 0;
	}
	*dash = '\0';
	rv |= parse_port(ps, "port", s, col, &m->port_lo);
	rv |= parse_port(ps, "port", dash + 1, col + (unsigned)(dash + 1 - s),
	                 &m->port_hi);
	*dash = '-';
	if (!rv && m->port_lo > m->port_hi) {
		perr(ps, col, "bad port range '%.64s': %u > %u", s,
		     m->port_lo, m->port_hi);
		rv = -1;
	}
	return rv;
}

/* "/n" after an address, n <= max. */
static int parse_prefix(struct parser *ps, const char *s, unsigned col,
                        unsigned max, unsigned *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; is_digit(s[i]) && i < 4; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	if (!i || s[i]) {
		perr(ps, col, "bad prefix length '/%.64s'", s);
		return -1;
	}
	if (v > max) {
		perr(ps, col, "prefix /%lu too large for IPv%c (max %u)", v,
		     max == 32 ? '4' : '6', max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* [v6]:PORT or [v6/n]:PORT. A v4-mapped address becomes IPv4, so it fits
 * the same connections as the plain IPv4 rule. */
static int parse_bracketed(struct parser *ps, char *s, unsigned col,
                           struct ts_match *m)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0,
	                                   0, 0, 0xff, 0xff};
	char *close = strchr(s, ']'), *slash;
	int rv = 0;

	if (!close) {
		perr(ps, col, "bad address '%.64s': missing ']'", s);
		return -1;
	}
	if (close[1] != ':' || !close[2]) {
		perr(ps, col, "missing port in '%.64s': expected [IPv6]:PORT",
		     s);
		return -1;
	}
	rv |= parse_port_range(ps, close + 2, col + (unsigned)(close + 2 - s),
	                       m);
	*close = '\0';
	m->kind = TS_MATCH_ADDR;
	m->family = AF_INET6;
	m->prefix = 128;
	slash = strchr(s + 1, '/');
	if (slash) {
		*slash = '\0';
		rv |= parse_prefix(ps, slash + 1, col + (unsigned)(slash - s),
		                   128, &m->prefix);
	}
	if (inet_pton(AF_INET6, s + 1, m->addr) != 1) {
		perr(ps, col, "bad IPv6 address '%.64s'", s + 1);
		rv = -1;
	}
	if (slash)
		*slash = '/';
	*close = ']';
	if (!rv && m->prefix >= 96 && !memcmp(m->addr, mapped, 12)) {
		m->family = AF_INET;
		memmove(m->addr, m->addr + 12, 4);
		memset(m->addr + 4, 0, 12);
		m->prefix -= 96;
	}
	return rv;
}

/* HOST, *.domain, a.b.c.d or a.b.c.d/n: the part before ":PORT". */
static int parse_where(struct parser *ps, char *s, unsigned col,
                       struct ts_match *m)
{
	char *slash = strchr(s, '/'), wbuf[40], shown[72];
	const char *why;

	if (!*s) {
		perr(ps, col, "missing host or address before ':PORT'");
		return -1;
	}
	if (strchr(s, ':')) {
		perr(ps, col, "bad address '%.64s': write IPv6 addresses in "
		     "brackets, as in [::1]:443", s);
		return -1;
	}
	if (slash || (is_digit(s[0]) && all_digits_dots(s))) {
		int rv = 0;
		m->kind = TS_MATCH_ADDR;
		m->family = AF_INET;
		m->prefix = 32;
		if (slash) {
			*slash = '\0';
			rv |= parse_prefix(ps, slash + 1,
			                   col + (unsigned)(slash - s), 32,
			                   &m->prefix);
		}
		if (inet_pton(AF_INET, s, m->addr) != 1) {
			perr(ps, col, "bad IPv4 address '%.64s'", s);
			rv = -1;
		}
		if (slash)
			*slash = '/';
		return rv;
	}
	/* As written: dns_name_problem() lower-cases and strips a dot. */
	snprintf(shown, sizeof shown, "%.64s", s);
	if (s[0] == '*' && s[1] == '.' && !strchr(s + 1, '*')) {
		char *dom = s + 2;
		m->kind = TS_MATCH_WILDCARD;
		if (!*dom || !strcmp(dom, ".")) {
			perr(ps, col, "bad wildcard '%.64s': expected "
			     "*.domain", s);
			return -1;
		}
		if ((why = dns_name_problem(dom, wbuf, sizeof wbuf))) {
			perr(ps, col, "bad wildcard '%s': %s", shown, why);
			return -1;
		}
		/* Keep the dot: ".example.com" is what a name below it ends
		 * with. */
		m->host = xstrdup(ps, s + 1);
		return m->host ? 0 : -1;
	}
	if (strchr(s, '*')) {
		perr(ps, col, "bad wildcard '%.64s': '*' must be the whole "
		     "first label, as in *.example.com", s);
		return -1;
	}
	if ((why = dns_name_problem(s, wbuf, sizeof wbuf))) {
		perr(ps, col, "bad host '%s': %s", shown, why);
		return -1;
	}
	m->kind = TS_MATCH_HOST;
	m->host = xstrdup(ps, s);
	return m->host ? 0 : -1;
}

static int parse_match_entry(struct parser *ps, char *s, unsigned col,
                             struct ts_match *m)
{
	char *colon;

	*m = (struct ts_match){.kind = TS_MATCH_PORT};
	if (s[0] == '[')
		return parse_bracketed(ps, s, col, m);
	colon = strrchr(s, ':');
	if (!colon) {
		if (strspn(s, "0123456789-") == strlen(s))
			return parse_port_range(ps, s, col, m);
		perr(ps, col, "missing port in '%.64s': expected PORT, "
		     "HOST:PORT or IP:PORT", s);
		return -1;
	}
	*colon = '\0';
	int rv = parse_where(ps, s, col, m);
	*colon = ':';
	if (!*(colon + 1)) {
		perr(ps, col, "missing port in '%.64s'", s);
		return -1;
	}
	rv |= parse_port_range(ps, colon + 1,
	                       col + (unsigned)(colon + 1 - s), m);
	return rv;
}

/* ---- key parse functions ---- */

/* A value that is one of two words: *out 0 for the first, 1 for the
 * second; else the error naming both. */
static int one_of_two(struct parser *ps, const struct key *k,
                      const struct tok *v, const char *w0, const char *w1,
                      int *out)
{
	if (!strcmp(v->s, w0))
		*out = 0;
	else if (!strcmp(v->s, w1))
		*out = 1;
	else {
		perr(ps, v->col, "bad %s '%.64s': expected %s or %s", k->name,
		     v->s, w0, w1);
		return -1;
	}
	return 0;
}

static int parse_log_level(struct parser *ps, const struct key *k,
                           void *obj, struct tok *v)
{
	int l = ts_log_level_parse(v->s);
	if (l < 0) {
		perr(ps, v->col, "bad %s '%.64s': expected error, warn, info "
		     "or debug", k->name, v->s);
		return -1;
	}
	*FIELD(obj, k, enum ts_log_level) = (enum ts_log_level)l;
	return 0;
}

/* Whole seconds 1..3600, stored as milliseconds. */
static int parse_seconds_ms(struct parser *ps, const struct key *k,
                            void *obj, struct tok *v)
{
	unsigned long s = 0;
	size_t i;

	for (i = 0; is_digit(v->s[i]) && i < 5; i++)
		s = s * 10 + (unsigned long)(v->s[i] - '0');
	if (!i || v->s[i] || s < 1 || s > 3600) {
		perr(ps, v->col, "bad %s '%.64s': expected whole seconds "
		     "1..3600", k->name, v->s);
		return -1;
	}
	*FIELD(obj, k, unsigned) = (unsigned)s * 1000;
	return 0;
}

static int parse_port_key(struct parser *ps, const struct key *k,
                          void *obj, struct tok *v)
{
	uint16_t port;

	if (parse_port(ps, k->name, v->s, v->col, &port))
		return -1;
	*FIELD(obj, k, uint16_t) = port;
	return 0;
}

/* A DNS name (not an IP address), lower case, into a char * field. */
static int parse_dns_name(struct parser *ps, const struct key *k, void *obj,
                          struct tok *v)
{
	char shown[72], wbuf[40];
	const char *why;

	snprintf(shown, sizeof shown, "%.64s", v->s);
	if ((is_digit(v->s[0]) && all_digits_dots(v->s)) ||
	    strchr(v->s, ':')) {
		perr(ps, v->col, "bad %s '%s': must be a DNS name, not an IP "
		     "address", k->name, shown);
		return -1;
	}
	if ((why = dns_name_problem(v->s, wbuf, sizeof wbuf))) {
		perr(ps, v->col, "bad %s '%s': %s", k->name, shown, why);
		return -1;
	}
	char *name = xstrdup(ps, v->s);
	if (!name)
		return -1;
	*FIELD(obj, k, char *) = name;
	return 0;
}

static int parse_ca_file(struct parser *ps, const struct key *k, void *obj,
                         struct tok *v)
{
	struct ts_rule *r = obj;
	return load_pem(ps, k, v, "CERTIFICATE", &r->ca_file, &r->ca);
}

/* ---- verification keys (docs/verification.md) ---- */

static int parse_crl_file(struct parser *ps, const struct key *k, void *obj,
                          struct tok *v)
{
	struct ts_rule *r = obj;
	/* Whether it parses and verifies against the trust anchors is the
	 * engine's check, at its load and in tlsshim --check. */
	return load_pem(ps, k, v, "X509 CRL", &r->crl_file, &r->crl);
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (is_digit(c))
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* RFC 7469: base64 of the SHA-256 of the SubjectPublicKeyInfo. */
static int pin_value(struct parser *ps, const struct key *k, struct tok *v,
                     uint8_t pin[32])
{
	uint8_t out[33];
	size_t n = 0, len = strlen(v->s);
	unsigned acc = 0, bits = 0;

	if (len != 44 || v->s[43] != '=' || v->s[42] == '=')
		goto bad;
	for (size_t i = 0; i < 43; i++) {
		int d = b64val(v->s[i]);
		if (d < 0)
			goto bad;
		acc = (acc << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	if (n != 32 || (acc & ((1u << bits) - 1)))
		goto bad;
	memcpy(pin, out, 32);
	return 0;
bad:
	perr(ps, v->col, "bad %s '%.64s': expected the base64 of a SHA-256 "
	     "digest (44 characters ending in '=')", k->name, v->s);
	return -1;
}

static int pin_add(struct parser *ps, const struct key *k, struct tok *v,
                   uint8_t (**pins)[32], size_t *npins,
                   const uint8_t pin[32])
{
	for (size_t i = 0; i < *npins; i++)
		if (!memcmp((*pins)[i], pin, 32)) {
			perr(ps, v->col, "duplicate %s '%.64s'", k->name, v->s);
			return -1;
		}
	uint8_t(*np)[32] = realloc(*pins, (*npins + 1) * sizeof *np);
	if (!np) {
		oom(ps);
		return -1;
	}
	*pins = np;
	memcpy(np[(*npins)++], pin, 32);
	return 0;
}

static int parse_pin(struct parser *ps, const struct key *k, void *obj,
                     struct tok *v)
{
	struct ts_rule *r = obj;
	uint8_t pin[32];

	if (pin_value(ps, k, v, pin) < 0)
		return -1;
	return pin_add(ps, k, v, &r->pins, &r->npins, pin);
}

static int parse_client_file(struct parser *ps, const struct key *k,
                             struct tok *v, const char *begin, char **path,
                             struct ts_blob *blob)
{
	if (!strncmp(v->s, "pkcs11:", 7)) {
		*path = xstrdup(ps, v->s);
		return *path ? 0 : -1;
	}
	/* Keys come as PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY... */
	return read_pem(ps, k, v, begin, path, blob);
}

static int parse_client_cert(struct parser *ps, const struct key *k,
                             void *obj, struct tok *v)
{
	struct ts_rule *r = obj;
	return parse_client_file(ps, k, v, "-----BEGIN CERTIFICATE-----",
	                         &r->client_cert, &r->cert);
}

static int parse_client_key(struct parser *ps, const struct key *k,
                            void *obj, struct tok *v)
{
	struct ts_rule *r = obj;
	struct stat st;

	if (parse_client_file(ps, k, v, "PRIVATE KEY-----", &r->client_key,
	                      &r->key))
		return -1;
	/* Warned about at connect (the parser only reports errors). */
	if (r->key.data && stat(r->client_key, &st) == 0 &&
	    (st.st_mode & (S_IRGRP | S_IROTH)))
		r->key_exposed = true;
	return 0;
}

/* A boolean field set by one of two words (unmatched, io-uring, tls):
 * true for the second. */
static int parse_word(struct parser *ps, const struct key *k, void *obj,
                      struct tok *v)
{
	int i;

	if (one_of_two(ps, k, v, k->words[0], k->words[1], &i) < 0)
		return -1;
	*FIELD(obj, k, bool) = i;
	return 0;
}

/* min-version, max-version: 1.2 or 1.3, into an unsigned field (12, 13). */
static int parse_version(struct parser *ps, const struct key *k, void *obj,
                         struct tok *v)
{
	int i;

	if (one_of_two(ps, k, v, "1.2", "1.3", &i) < 0)
		return -1;
	*FIELD(obj, k, unsigned) = i ? 13 : 12;
	return 0;
}

/* GnuTLS validates the syntax (engine load, tlsshim --check). Keywords
 * that would weaken certificate verification (%VERIFY_ALLOW_BROKEN,
 * %VERIFY_DISABLE_CRL_CHECKS, %PROFILE_LOW, ...) are refused here: no
 * setting disables verification. */
static int parse_priority(struct parser *ps, const struct key *k, void *obj,
                          struct tok *v)
{
	static const char *const banned[] = {"%VERIFY_", "%PROFILE_"};

	for (size_t i = 0; i < ARRAY_SIZE(banned); i++) {
		const char *at = strstr(v->s, banned[i]);
		if (at) {
			perr(ps, v->col + (unsigned)(at - v->s),
			     "%s: '%.40s' is not allowed: certificate "
			     "verification is not configurable", k->name,
			     at);
			return -1;
		}
	}
	char *s = xstrdup(ps, v->s);
	if (!s)
		return -1;
	*FIELD(obj, k, char *) = s;
	return 0;
}

static int parse_bool(struct parser *ps, const struct key *k, void *obj,
                      struct tok *v)
{
	int i = !strcmp(v->s, "true") ? 0 : !strcmp(v->s, "false") ? 1 : -1;

	if (i < 0 && one_of_two(ps, k, v, "yes", "no", &i) < 0)
		return -1;
	*FIELD(obj, k, bool) = i == 0;
	return 0;
}

/* A copy of e at the end of the list *v of *n strings. */
static int push_str(struct parser *ps, char ***v, size_t *n, const char *e)
{
	char **na = realloc(*v, (*n + 1) * sizeof *na);
	if (!na) {
		oom(ps);
		return -1;
	}
	*v = na;
	if (!(na[*n] = xstrdup(ps, e)))
		return -1;
	(*n)++;
	return 0;
}

/* "h2, http/1.1": protocol names of 1..255 printable bytes. */
static int parse_alpn(struct parser *ps, const struct key *k, void *obj,
                      struct tok *v)
{
	struct ts_rule *r = obj;
	char *s = v->s;
	int rv = 0;

	for (;;) {
		char *end = strchr(s, ','), *e;
		if (end)
			*end = '\0';
		e = skip_ws(s);
		rtrim(e);
		size_t n = strlen(e);
		bool ok = n > 0 && n <= 255;
		for (size_t i = 0; ok && i < n; i++)
			ok = e[i] > 0x20 && e[i] < 0x7f;
		if (!ok) {
			perr(ps, col_of(ps, e), "bad %s entry '%.64s': expected "
			     "a protocol name such as h2 or http/1.1", k->name,
			     e);
			rv = -1;
		} else {
			if (push_str(ps, &r->alpn, &r->nalpn, e) < 0)
				return -1;
		}
		if (!end)
			break;
		s = end + 1;
	}
	return rv;
}

static int parse_path(struct parser *ps, const struct key *k, void *obj,
                      struct tok *v)
{
	char *full = resolve(ps, k, v);
	if (!full)
		return -1;
	*FIELD(obj, k, char *) = full;
	return 0;
}

/* A comma-separated list; every bad entry is reported. */
static int parse_match(struct parser *ps, const struct key *k, void *obj,
                       struct tok *v)
{
	struct ts_rule *r = obj;
	struct ts_match *nm;
	size_t n = 1;
	int rv = 0;
	char *s = v->s;

	(void)k;
	for (const char *c = s; *c; c++)
		n += *c == ',';
	nm = realloc(r->matches, (r->nmatches + n) * sizeof *nm);
	if (!nm) {
		oom(ps);
		return -1;
	}
	r->matches = nm;
	for (;;) {
		char *end = strchr(s, ','), *e;
		if (end)
			*end = '\0';
		e = skip_ws(s);
		rtrim(e);
		if (!*e) {
			perr(ps, col_of(ps, e), "empty entry in match list");
			rv = -1;
		} else if (parse_match_entry(ps, e, col_of(ps, e),
		                             &r->matches[r->nmatches])) {
			free(r->matches[r->nmatches].host);
			rv = -1;
		} else {
			r->nmatches++;
		}
		if (!end || ps->stop)
			break;
		s = end + 1;
	}
	return rv;
}

/* accept = PORT | PORT-PORT | IP:PORT | [IPv6]:PORT | CIDR:PORT, a list:
 * the local addresses of connections the program accepts. Names have no
 * meaning here: a listening socket has an address. */
static int parse_accept(struct parser *ps, const struct key *k, void *obj,
                        struct tok *v)
{
	struct ts_rule *r = obj;
	size_t first = r->nmatches;
	int rv = parse_match(ps, k, obj, v);

	r->server = true;
	for (size_t i = first; i < r->nmatches; i++) {
		struct ts_match *m = &r->matches[i];
		static const uint8_t zero[16];
		if (m->kind == TS_MATCH_ADDR &&
		    m->prefix == (m->family == AF_INET ? 32u : 128u) &&
		    !memcmp(m->addr, zero, m->family == AF_INET ? 4 : 16)) {
			/* 0.0.0.0:PORT and [::]:PORT name a listener bound to
			 * any address, as in the program's own configuration;
			 * no accepted connection has that local address, so
			 * taken literally they would serve nothing: any IPv4
			 * address, and any address ([::] listeners take IPv4
			 * too, as v4-mapped, which is IPv4 here). */
			if (m->family == AF_INET)
				m->prefix = 0;
			else
				m->kind = TS_MATCH_PORT;
			continue;
		}
		if (m->kind != TS_MATCH_HOST && m->kind != TS_MATCH_WILDCARD)
			continue;
		perr(ps, v->col, "bad accept entry '%.64s': a local address "
		     "and port (PORT, IP:PORT, [IPv6]:PORT, CIDR:PORT), not "
		     "a name", m->host[0] == '.' ? m->host + 1 : m->host);
		rv = -1;
	}
	return rv;
}

static int parse_pem_file(struct parser *ps, const struct key *k,
                          struct tok *v, const char *begin, char **path,
                          struct ts_blob *blob, bool *exposed)
{
	struct stat st;

	if (parse_client_file(ps, k, v, begin, path, blob))
		return -1;
	if (exposed && stat(*path, &st) == 0 &&
	    (st.st_mode & (S_IRGRP | S_IROTH)))
		*exposed = true;
	return 0;
}

static int parse_srv_cert(struct parser *ps, const struct key *k, void *obj,
                          struct tok *v)
{
	struct ts_rule *r = obj;
	return parse_pem_file(ps, k, v, "-----BEGIN CERTIFICATE-----",
	                      &r->cert_file, &r->srv_cert, NULL);
}

static int parse_srv_key(struct parser *ps, const struct key *k, void *obj,
                         struct tok *v)
{
	struct ts_rule *r = obj;
	return parse_pem_file(ps, k, v, "PRIVATE KEY-----", &r->key_file,
	                      &r->srv_key, &r->srv_key_exposed);
}

static int parse_client_ca(struct parser *ps, const struct key *k,
                           void *obj, struct tok *v)
{
	struct ts_rule *r = obj;
	return load_pem(ps, k, v, "CERTIFICATE", &r->client_ca_file,
	                &r->client_ca);
}

/* client-name = app1.internal, *.svc.internal, spiffe://test/app2 */
static int parse_client_names(struct parser *ps, const struct key *k,
                              void *obj, struct tok *v)
{
	struct ts_rule *r = obj;
	char *s = v->s, wbuf[40];
	int rv = 0;

	for (;;) {
		char *end = strchr(s, ','), *e;
		if (end)
			*end = '\0';
		e = skip_ws(s);
		rtrim(e);
		const char *why = NULL;
		char *dom = e[0] == '*' && e[1] == '.' ? e + 2 : e;
		if (!*e)
			why = "empty entry";
		else if (!strstr(e, "://") &&
		         (strchr(dom, '*') ||
		          (why = dns_name_problem(dom, wbuf, sizeof wbuf))))
			why = why ? why : "'*' must be the whole first label";
		if (why) {
			perr(ps, col_of(ps, e), "bad %s entry '%.64s': %s "
			     "(a DNS name, *.domain, or a URI such as "
			     "spiffe://domain/path)", k->name, e, why);
			rv = -1;
		} else {
			if (push_str(ps, &r->client_names, &r->nclient_names,
			             e) < 0)
				return -1;
		}
		if (!end)
			break;
		s = end + 1;
	}
	return rv;
}

static int parse_client_pin(struct parser *ps, const struct key *k,
                            void *obj, struct tok *v)
{
	struct ts_rule *r = obj;
	uint8_t pin[32];

	if (pin_value(ps, k, v, pin) < 0)
		return -1;
	return pin_add(ps, k, v, &r->client_pins, &r->nclient_pins, pin);
}

/* log = stderr | syslog */
static int parse_log_dest(struct parser *ps, const struct key *k, void *obj,
                          struct tok *v)
{
	int i;

	if (one_of_two(ps, k, v, "stderr", "syslog", &i) < 0)
		return -1;
	*FIELD(obj, k, enum ts_log_dest) = i ? TS_LOG_TO_SYSLOG
	                                     : TS_LOG_TO_STDERR;
	return 0;
}

/* log-file = PATH, resolved against the policy's directory. The file is
 * opened for each line (a program may close or reuse any fd), so it need
 * not exist yet; its directory must. It is never opened through a
 * symbolic link (log.c), so one already there is an error here. */
static int parse_log_file(struct parser *ps, const struct key *k, void *obj,
                          struct tok *v)
{
	char *full = resolve(ps, k, v);
	struct stat st;

	if (!full)
		return -1;
	char *slash = strrchr(full, '/');
	if (slash) {
		*slash = '\0';
		int bad = stat(slash == full ? "/" : full, &st) < 0 ?
		                  errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
		*slash = '/';
		if (bad) {
			perr(ps, v->col, "bad %s %s: its directory: %s",
			     k->name, full, strerror(bad));
			free(full);
			return -1;
		}
	}
	if (lstat(full, &st) == 0 && S_ISLNK(st.st_mode)) {
		perr(ps, v->col, "bad %s %s: a symbolic link (tlsshim does "
		     "not follow one there: name the file itself)", k->name,
		     full);
		free(full);
		return -1;
	}
	*FIELD(obj, k, char *) = full;
	return 0;
}

/* To add a key: one row here and, unless an existing parse function fits,
 * one small parse function above. Repeatable keys append in their parse
 * function; the others are checked for duplicates before it runs. A row:
 * name, scope, parse function, then its flags and the field it stores
 * through (IN_POLICY or IN_RULE). */
#define KEY(n, sc, fn, ...)                                                \
	{.name = n, .scope = SCOPE_##sc, .parse = fn, __VA_ARGS__}
#define IN_POLICY(f) .offset = offsetof(struct ts_policy, f)
#define IN_RULE(f) .offset = offsetof(struct ts_rule, f)
#define WORDS(w0, w1) .words = {w0, w1}
#define CLIENT .side = SIDE_CLIENT
#define SERVER .side = SIDE_SERVER
static const struct key keys[] = {
	KEY("log-level", GLOBAL, parse_log_level, IN_POLICY(log_level)),
	KEY("handshake-timeout", GLOBAL, parse_seconds_ms,
	    IN_POLICY(handshake_timeout_ms)),
	KEY("log", GLOBAL, parse_log_dest, IN_POLICY(log_dest)),
	KEY("log-file", GLOBAL, parse_log_file, IN_POLICY(log_file)),
	KEY("unmatched", GLOBAL, parse_word, WORDS("pass", "refuse"),
	    IN_POLICY(unmatched_refuse)),
	KEY("io-uring", GLOBAL, parse_word, WORDS("refuse", "allow"),
	    IN_POLICY(io_uring_allow)),
	/* A rule has match (a client rule) or accept (a server rule):
	 * check_side. */
	KEY("match", RULE, parse_match, .plain_ok = true, CLIENT),
	KEY("accept", RULE, parse_accept, SERVER),
	KEY("tls", RULE, parse_word, .plain_ok = true, WORDS("yes", "no"),
	    IN_RULE(plaintext), CLIENT),
	KEY("sni", RULE, parse_dns_name, IN_RULE(sni), CLIENT),
	KEY("ca-file", RULE, parse_ca_file, CLIENT),
	KEY("tls-port", RULE, parse_port_key, IN_RULE(tls_port), CLIENT),
	KEY("cert", RULE, parse_srv_cert, SERVER),
	KEY("key", RULE, parse_srv_key, SERVER),
	KEY("client-ca", RULE, parse_client_ca, SERVER),
	KEY("client-name", RULE, parse_client_names, SERVER),
	KEY("client-pin-sha256", RULE, parse_client_pin, .repeatable = true,
	    SERVER),
	KEY("crl-file", RULE, parse_crl_file),
	KEY("pin-sha256", RULE, parse_pin, .repeatable = true, CLIENT),
	KEY("client-cert", RULE, parse_client_cert, CLIENT),
	KEY("client-key", RULE, parse_client_key, CLIENT),
	KEY("min-version", RULE, parse_version, IN_RULE(min_version)),
	KEY("max-version", RULE, parse_version, IN_RULE(max_version)),
	KEY("priority", RULE, parse_priority, IN_RULE(priority)),
	KEY("alpn", RULE, parse_alpn),
	KEY("alpn-required", RULE, parse_bool, IN_RULE(alpn_required)),
	KEY("keylog-file", RULE, parse_path, IN_RULE(keylog_file)),
};
#undef KEY
#undef IN_POLICY
#undef IN_RULE
#undef CLIENT
#undef SERVER
#undef WORDS
static const size_t nkeys = ARRAY_SIZE(keys);
_Static_assert(ARRAY_SIZE(keys) <= MAX_KEYS, "raise MAX_KEYS");

const char *ts_policy_key(size_t i, bool *global)
{
	if (i >= nkeys)
		return NULL;
	if (global)
		*global = keys[i].scope == SCOPE_GLOBAL;
	return keys[i].name;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < nkeys; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

/* ---- lines and sections ---- */

static unsigned seen(const struct parser *ps, const char *key)
{
	return ps->seen[find_key(key) - keys];
}

/* A rule is a client rule (match) or a server rule (accept), with the
 * keys of its side. */
static void check_side(struct parser *ps, const struct ts_rule *r)
{
	bool m = seen(ps, "match"), a = seen(ps, "accept");

	if (!m && !a)
		perr_at(ps, r->line, ps->section_col, "rule '%s' has no "
		        "'match' (a destination to upgrade) nor 'accept' (a "
		        "local address to serve TLS on)", r->name);
	if (m && a)
		perr_at(ps, seen(ps, "accept"), 1, "rule '%s' has both "
		        "'match' and 'accept': a rule is a client rule or a "
		        "server rule", r->name);
	if (!a)
		goto keys;
	if (!seen(ps, "cert") || !seen(ps, "key"))
		perr_at(ps, r->line, ps->section_col, "rule '%s' accepts "
		        "connections: it needs 'cert' and 'key'", r->name);
	if ((seen(ps, "client-name") || seen(ps, "client-pin-sha256")) &&
	    !seen(ps, "client-ca"))
		perr_at(ps, seen(ps, "client-name") ? seen(ps, "client-name")
		                                     : seen(ps, "client-pin-sha256"),
		        1, "rule '%s': client-name and client-pin-sha256 need "
		        "'client-ca' (the clients' certificates are verified "
		        "first)", r->name);
keys:
	for (size_t i = 0; i < nkeys; i++) {
		if (!ps->seen[i] || keys[i].side == SIDE_BOTH ||
		    (keys[i].side == SIDE_SERVER) == a || m == a)
			continue;
		perr_at(ps, ps->seen[i], 1, "rule '%s': '%s' belongs to %s "
		        "rules", r->name, keys[i].name,
		        keys[i].side == SIDE_SERVER ? "server (accept)"
		                                    : "client (match)");
	}
}

static void close_section(struct parser *ps)
{
	if (ps->in_rule) {
		struct ts_rule *r = &ps->p->rules[ps->p->nrules - 1];
		/* A section line too broken to name has been reported. */
		for (size_t i = 0; r->name && i < nkeys; i++)
			if (keys[i].required && keys[i].scope == SCOPE_RULE &&
			    !ps->seen[i])
				perr_at(ps, r->line, ps->section_col,
				        "rule '%s' has no '%s'", r->name,
				        keys[i].name);
		if (r->name)
			check_side(ps, r);
		if (r->name && !ps->seen[find_key("client-cert") - keys] !=
		                       !ps->seen[find_key("client-key") - keys])
			perr_at(ps, r->line, ps->section_col,
			        "rule '%s' needs both 'client-cert' and "
			        "'client-key'", r->name);
		for (size_t i = 0; r->name && r->plaintext && i < nkeys; i++)
			if (keys[i].scope == SCOPE_RULE && !keys[i].plain_ok &&
			    ps->seen[i])
				perr_at(ps, ps->seen[i], 1,
				        "rule '%s' has tls = no: '%s' means "
				        "nothing without TLS", r->name,
				        keys[i].name);
		if (r->name && r->min_version && r->max_version &&
		    r->min_version > r->max_version)
			perr_at(ps, ps->seen[find_key("max-version") - keys], 1,
			        "rule '%s': min-version 1.%u is above "
			        "max-version 1.%u", r->name,
			        r->min_version - 10, r->max_version - 10);
		if (r->name && r->alpn_required &&
		    !ps->seen[find_key("alpn") - keys])
			perr_at(ps, r->line, ps->section_col,
			        "rule '%s' sets 'alpn-required' without "
			        "'alpn'", r->name);
	}
	memset(ps->seen, 0, sizeof ps->seen);
}

/* Starts a rule; name NULL for a section line too broken to name, whose
 * keys are still checked. */
static void open_rule(struct parser *ps, const char *name, unsigned col)
{
	struct ts_policy *p = ps->p;

	if (p->nrules == ps->rcap) {
		size_t cap = ps->rcap ? ps->rcap * 2 : 8;
		struct ts_rule *nr = realloc(p->rules, cap * sizeof *nr);
		if (!nr) {
			oom(ps);
			return;
		}
		p->rules = nr;
		ps->rcap = cap;
	}
	struct ts_rule *r = &p->rules[p->nrules];
	*r = (struct ts_rule){.line = ps->line};
	if (name && !(r->name = xstrdup(ps, name)))
		return;
	p->nrules++;
	ps->in_rule = true;
	ps->section_col = col;
}

static void parse_section(struct parser *ps, char *s)
{
	char *close = strchr(s, ']'), *name, *rest;

	close_section(ps);
	ps->in_rule = false;
	if (!close) {
		perr(ps, col_of(ps, s), "malformed section line: missing ']'");
		open_rule(ps, NULL, col_of(ps, s));
		return;
	}
	rest = skip_ws(close + 1);
	if (*rest && *rest != '#' && *rest != ';')
		perr(ps, col_of(ps, rest), "malformed section line: "
		     "unexpected '%.64s' after ']'", rest);
	*close = '\0';
	name = skip_ws(s + 1);
	rtrim(name);
	if (!*name) {
		perr(ps, col_of(ps, s), "empty section name");
		open_rule(ps, NULL, col_of(ps, s));
		return;
	}
	for (char *c = name; *c; c++) {
		if (!is_alnum(*c) && !strchr("-_.", *c)) {
			perr(ps, col_of(ps, c), "bad section name '%.64s': "
			     "use letters, digits, '-', '_' and '.'", name);
			break;
		}
	}
	for (size_t i = 0; i < ps->p->nrules; i++) {
		const struct ts_rule *r = &ps->p->rules[i];
		if (r->name && !strcmp(r->name, name)) {
			perr(ps, col_of(ps, name), "duplicate section '%.64s' "
			     "(first on line %u)", name, r->line);
			break;
		}
	}
	open_rule(ps, name, col_of(ps, name));
}

static void parse_line(struct parser *ps, char *line)
{
	char *s = skip_ws(line), *eq, *kend, *v;
	const struct key *k;
	size_t i;

	ps->linestart = line;
	if (!*s || *s == '#' || *s == ';')
		return;
	if (*s == '[') {
		parse_section(ps, s);
		return;
	}
	eq = strchr(s, '=');
	if (!eq) {
		rtrim(s);
		perr(ps, col_of(ps, s), "expected 'key = value' or "
		     "'[section]', not '%.64s'", s);
		return;
	}
	for (kend = eq; kend > s && is_ws(kend[-1]); kend--)
		;
	if (kend == s) {
		perr(ps, col_of(ps, eq), "missing key before '='");
		return;
	}
	*kend = '\0';
	/* A comment starts at '#' or ';' at the start of the value or after
	 * white space: "a#b" is a value, "a #b" is "a". */
	v = skip_ws(eq + 1);
	for (char *c = v; *c; c++) {
		if ((*c == '#' || *c == ';') && (c == v || is_ws(c[-1]))) {
			*c = '\0';
			break;
		}
	}
	rtrim(v);

	k = find_key(s);
	if (!k) {
		perr(ps, col_of(ps, s), "unknown key '%.64s'", s);
		return;
	}
	if (k->scope == SCOPE_RULE && !ps->in_rule) {
		perr(ps, col_of(ps, s), "'%s' is a rule key: it belongs in a "
		     "[name] section", k->name);
		return;
	}
	if (k->scope == SCOPE_GLOBAL && ps->in_rule) {
		perr(ps, col_of(ps, s), "'%s' is a global key: it must come "
		     "before the first [section]", k->name);
		return;
	}
	i = (size_t)(k - keys);
	if (ps->seen[i] && !k->repeatable) {
		perr(ps, col_of(ps, s), "duplicate key '%s' (first on line "
		     "%u)", k->name, ps->seen[i]);
		return;
	}
	/* Seen even when the value is bad: that error says enough, a
	 * "rule has no match" on top would not. */
	if (!ps->seen[i])
		ps->seen[i] = ps->line;
	if (!*v) {
		perr(ps, col_of(ps, v), "empty value for '%s'", k->name);
		return;
	}
	struct tok val = {v, col_of(ps, v)};
	void *obj = k->scope == SCOPE_RULE ?
	                    (void *)&ps->p->rules[ps->p->nrules - 1] :
	                    (void *)ps->p;
	k->parse(ps, k, obj, &val);
}

static char *dir_of(struct parser *ps, const char *path)
{
	const char *slash = strrchr(path, '/');
	char *d;

	if (!slash)
		return xstrdup(ps, ".");
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	if (!(d = malloc(n + 1))) {
		oom(ps);
		return NULL;
	}
	memcpy(d, path, n);
	d[n] = '\0';
	return d;
}

static struct ts_policy *parse(const struct ts_policy_io *io,
                               const char *path, const char *buf, size_t len,
                               ts_policy_diag_fn diag, void *ctx, char *err,
                               size_t errlen)
{
	struct parser ps = {
		.io = io,
		.path = path ? path : "(policy)",
		.diag = diag, .ctx = ctx, .err = err, .errlen = errlen,
	};
	char line[MAX_LINE + 1];
	size_t pos = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!buf)
		len = 0;
	if (!(ps.p = calloc(1, sizeof *ps.p))) {
		oom(&ps);
		return NULL;
	}
	ps.p->log_level = TS_LOG_WARN;
	ps.p->handshake_timeout_ms = 10 * 1000;
	if (path) {
		ps.p->path = xstrdup(&ps, path);
		ps.dir = dir_of(&ps, path);
	}
	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
		pos = 3; /* a UTF-8 byte order mark some editors write */
	while (pos < len && !ps.stop) {
		const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		const char *nul;

		pos += n + (nl != NULL);
		ps.line++;
		if (n && s[n - 1] == '\r')
			n--;
		if ((nul = memchr(s, '\0', n))) {
			perr(&ps, (unsigned)(nul - s) + 1,
			     "NUL byte: not a text file");
			ps.stop = true;
			break;
		}
		if (n > MAX_LINE) {
			perr(&ps, MAX_LINE + 1, "line longer than %d bytes",
			     MAX_LINE);
			continue;
		}
		memcpy(line, s, n);
		line[n] = '\0';
		parse_line(&ps, line);
	}
	if (!ps.stop)
		close_section(&ps);
	free(ps.dir);
	if (ps.nerr) {
		ts_policy_free(ps.p);
		return NULL;
	}
	return ps.p;
}

struct ts_policy *ts_policy_parse(const char *path, const char *buf,
                                  size_t len, ts_policy_diag_fn diag,
                                  void *ctx, char *err, size_t errlen)
{
	return parse(&libc_io, path, buf, len, diag, ctx, err, errlen);
}

struct ts_policy *ts_policy_load(const char *path, ts_policy_diag_fn diag,
                                 void *ctx, char *err, size_t errlen)
{
	return ts_policy_load_io(&libc_io, path, diag, ctx, err, errlen);
}

struct ts_policy *ts_policy_load_io(const struct ts_policy_io *io,
                                    const char *path, ts_policy_diag_fn diag,
                                    void *ctx, char *err, size_t errlen)
{
	struct parser ps = {
		.path = path, .diag = diag, .ctx = ctx, .err = err,
		.errlen = errlen,
	};
	struct ts_policy *p;
	struct ts_blob b;
	int e;

	if (err && errlen)
		err[0] = '\0';
	if (!path) {
		ps.path = "(policy)";
		perr(&ps, 0, "no path");
		return NULL;
	}
	/* Errors about the whole file have no line: "path: message". */
	e = read_all(io, path, MAX_POLICY, &b);
	if (e == EFBIG) {
		perr(&ps, 0, "larger than %d MiB", MAX_POLICY >> 20);
		return NULL;
	}
	if (e == ENOMEM) {
		perr(&ps, 0, "out of memory");
		return NULL;
	}
	if (e) {
		perr(&ps, 0, "cannot read: %s", strerror(e));
		return NULL;
	}
	p = parse(io, path, (const char *)b.data, b.len, diag, ctx, err,
	          errlen);
	free(b.data);
	return p;
}

/* push_str's list, freed. */
static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void ts_policy_free(struct ts_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nrules; i++) {
		struct ts_rule *r = &p->rules[i];
		for (size_t j = 0; j < r->nmatches; j++)
			free(r->matches[j].host);
		free(r->matches);
		free(r->name);
		free(r->sni);
		free(r->ca_file);
		free(r->ca.data);
		free(r->crl_file);
		free(r->crl.data);
		free(r->pins);
		free(r->client_cert);
		free(r->cert.data);
		free(r->client_key);
		free(r->key.data);
		free(r->priority);
		free_strs(r->alpn, r->nalpn);
		free(r->keylog_file);
		free(r->cert_file);
		free(r->srv_cert.data);
		free(r->key_file);
		free(r->srv_key.data);
		free(r->client_ca_file);
		free(r->client_ca.data);
		free_strs(r->client_names, r->nclient_names);
		free(r->client_pins);
	}
	free(p->rules);
	free(p->path);
	free(p->log_file);
	free(p);
}
