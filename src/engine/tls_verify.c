/* The engine's own verification (see tls_verify.h, docs/verification.md).
 *
 * GnuTLS verifies the chain, the name and the key purpose inside the
 * handshake. What it cannot be trusted to judge as the policy means it is
 * judged here, after the handshake and before the program's first byte,
 * always against the *validated path*: the certificates GnuTLS actually
 * verified, leaf to trust anchor, as its verify output function reports
 * them -- never against whatever else the server chose to send. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/ocsp.h>

#include "base64.h"
#include "clock.h"
#include "tls.h"
#include "tls_verify.h"

/* Certificate verification uses the MEDIUM profile (112-bit security: RSA
 * and DH below 2048 bits refused), set in the priority string: set as
 * credential verify flags it also refused sound P-256 chains ("insecure
 * algorithm"). SHA-1 signatures are refused by GnuTLS 3.7's defaults.
 * CRLs and stapled OCSP responses are verified with the same profile. */
#define VERIFY_FLAGS GNUTLS_PROFILE_TO_VFLAGS(GNUTLS_PROFILE_MEDIUM)
/* Trust material larger than this is refused (as the policy parser does). */
#define MAX_FILE (8 * 1024 * 1024)
/* How far ahead of our clock a CRL or OCSP response may claim to have
 * been issued. */
#define SKEW_S 300
/* GnuTLS's own limit for an OCSP response without nextUpdate. */
#define OCSP_MAX_AGE_S (3 * 24 * 3600)

static const char base_priority[] = "NORMAL";

static struct ts_cred *creds;
static pthread_mutex_t creds_lock = PTHREAD_MUTEX_INITIALIZER;
/* The CRL signature memo (struct ts_crl), taken alone or inside
 * creds_lock (a load verifies its anchors' CRLs). */
static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;

static void utc(time_t t, char *buf, size_t len)
{
	struct tm tm;
	if (t == (time_t)-1 || !gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "?");
}

static bool datum_eq(const gnutls_datum_t *a, const gnutls_datum_t *b)
{
	return a->size == b->size && !memcmp(a->data, b->data, a->size);
}

/* The subject of crt for a reason text ("CN=x,O=y"); "?" if none. */
static void subject(gnutls_x509_crt_t crt, char *buf, size_t len)
{
	gnutls_datum_t dn = {0};
	if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0 && dn.data)
		snprintf(buf, len, "%s", (char *)dn.data);
	else
		snprintf(buf, len, "?");
	gnutls_free(dn.data);
}

/* ---- the session floor: what no priority string may lower ---- */

static const char *cipher_weak(gnutls_cipher_algorithm_t c)
{
	if (c == GNUTLS_CIPHER_UNKNOWN || c == GNUTLS_CIPHER_NULL)
		return "no encryption";
	if (c == GNUTLS_CIPHER_ARCFOUR_128 || c == GNUTLS_CIPHER_ARCFOUR_40)
		return "RC4, which RFC 7465 forbids";
	if (gnutls_cipher_get_key_size(c) * 8 < 112)
		return "keys below 112 bits";
	return NULL;
}

/* The key exchanges in which the server proves itself with a certificate. */
static bool kx_by_certificate(gnutls_kx_algorithm_t kx)
{
	switch (kx) {
	case GNUTLS_KX_RSA:
	case GNUTLS_KX_DHE_RSA:
	case GNUTLS_KX_DHE_DSS:
	case GNUTLS_KX_ECDHE_RSA:
	case GNUTLS_KX_ECDHE_ECDSA:
	case GNUTLS_KX_VKO_GOST_12:
		return true;
	default:
		return false;
	}
}

static bool sign_weak(gnutls_sign_algorithm_t s)
{
	gnutls_digest_algorithm_t h = gnutls_sign_get_hash_algorithm(s);
	return h == GNUTLS_DIG_MD5 || h == GNUTLS_DIG_MD2;
}

static const char *or_q(const char *s)
{
	return s ? s : "?";
}

/* What a compiled priority enables below the floor, as a reason. */
static int floor_problem(gnutls_priority_t p, const char *user, char *err,
                         size_t errlen)
{
	const unsigned *l;
	int n;

	n = gnutls_priority_cipher_list(p, &l);
	for (int i = 0; i < n; i++) {
		const char *why = cipher_weak(l[i]);
		if (why) {
			snprintf(err, errlen, "priority '%.200s' enables the "
			         "cipher %s (%s): below tlsshim's floor", user,
			         or_q(gnutls_cipher_get_name(l[i])), why);
			return -1;
		}
	}
	n = gnutls_priority_kx_list(p, &l);
	for (int i = 0; i < n; i++)
		if (!kx_by_certificate(l[i])) {
			snprintf(err, errlen, "priority '%.200s' enables the "
			         "key exchange %s, in which the server does not "
			         "prove itself with a certificate: below "
			         "tlsshim's floor", user,
			         or_q(gnutls_kx_get_name(l[i])));
			return -1;
		}
	n = gnutls_priority_certificate_type_list2(p, &l,
	                                           GNUTLS_CTYPE_SERVER);
	for (int i = 0; i < n; i++)
		if (l[i] != GNUTLS_CRT_X509) {
			snprintf(err, errlen, "priority '%.200s' lets the "
			         "server authenticate with a %s instead of an "
			         "X.509 certificate: below tlsshim's floor",
			         user,
			         or_q(gnutls_certificate_type_get_name(l[i])));
			return -1;
		}
	n = gnutls_priority_sign_list(p, &l);
	for (int i = 0; i < n; i++)
		if (sign_weak(l[i])) {
			snprintf(err, errlen, "priority '%.200s' enables the "
			         "signature %s (a broken hash): below tlsshim's "
			         "floor", user, or_q(gnutls_sign_get_name(l[i])));
			return -1;
		}
	return 0;
}

static unsigned vers_bit(gnutls_protocol_t v)
{
	return v == GNUTLS_TLS1_2 ? TS_VERS_12
	       : v == GNUTLS_TLS1_3 ? TS_VERS_13
	                            : 0;
}

/* min-version..max-version (defaults 1.2..1.3) as TS_VERS_* bits. */
static unsigned vers_range(const struct ts_rule *r)
{
	unsigned lo = r->min_version ? r->min_version : 12;
	unsigned hi = r->max_version ? r->max_version : 13;
	return (lo <= 12 && hi >= 12 ? TS_VERS_12 : 0) |
	       (lo <= 13 && hi >= 13 ? TS_VERS_13 : 0);
}

/* The rule's priority string, limited to the versions it enables within
 * min-version..max-version (TLS 1.0 and 1.1 never), with the MEDIUM
 * verification profile, and checked against the floor. On a syntax error
 * the reason names the position in the rule's own string. */
static int load_priority(const struct ts_rule *r, gnutls_priority_t *out,
                         unsigned *vers, char *err, size_t errlen)
{
	const char *user = r->priority ? r->priority : base_priority;
	size_t ul = strlen(user);
	const char *errpos = NULL;
	gnutls_priority_t up = NULL;
	const unsigned *l;
	unsigned m = 0;
	char *buf = NULL;
	int ret, rv = -1;

	*out = NULL;
	ret = gnutls_priority_init2(&up, user, &errpos, 0);
	if (ret < 0) {
		if (ret == GNUTLS_E_INVALID_REQUEST && errpos &&
		    errpos >= user && errpos < user + ul)
			snprintf(err, errlen, "priority '%.200s': syntax error "
			         "at position %zu ('%.*s')", user,
			         (size_t)(errpos - user) + 1,
			         (int)(ul - (size_t)(errpos - user)), errpos);
		else
			snprintf(err, errlen, "priority '%.200s': %s", user,
			         gnutls_strerror(ret));
		return -1;
	}
	int n = gnutls_priority_protocol_list(up, &l);
	for (int i = 0; i < n; i++)
		m |= vers_bit(l[i]);
	gnutls_priority_deinit(up);
	m &= vers_range(r);
	if (!m) {
		snprintf(err, errlen, "priority '%.200s' with min-version 1.%u "
		         "and max-version 1.%u leaves no TLS version to offer",
		         user, (r->min_version ? r->min_version : 12) - 10,
		         (r->max_version ? r->max_version : 13) - 10);
		return -1;
	}
	buf = malloc(ul + 64);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(buf, ul + 64, "%s:-VERS-ALL%s%s:%%PROFILE_MEDIUM", user,
	         m & TS_VERS_13 ? ":+VERS-TLS1.3" : "",
	         m & TS_VERS_12 ? ":+VERS-TLS1.2" : "");
	ret = gnutls_priority_init2(out, buf, &errpos, 0);
	if (ret < 0) {
		snprintf(err, errlen, "priority '%.200s': %s", user,
		         gnutls_strerror(ret));
		*out = NULL;
		goto out;
	}
	if (floor_problem(*out, user, err, errlen) < 0) {
		gnutls_priority_deinit(*out);
		*out = NULL;
		goto out;
	}
	*vers = m;
	rv = 0;
out:
	free(buf);
	return rv;
}

int ts_cred_versions(const struct ts_rule *r, char *buf, size_t len,
                     char *err, size_t errlen)
{
	gnutls_priority_t p;
	unsigned m;

	if (load_priority(r, &p, &m, err, errlen) < 0)
		return -1;
	gnutls_priority_deinit(p);
	snprintf(buf, len, "%s%s%s", m & TS_VERS_12 ? "TLS1.2" : "",
	         m == (TS_VERS_12 | TS_VERS_13) ? ", " : "",
	         m & TS_VERS_13 ? "TLS1.3" : "");
	return 0;
}

/* The negotiated session, against the same floor. */
static int session_floor(gnutls_session_t s, const struct ts_cred *c,
                         bool resumed, char *why, size_t len)
{
	gnutls_protocol_t v = gnutls_protocol_get_version(s);
	gnutls_cipher_algorithm_t ci = gnutls_cipher_get(s);
	gnutls_kx_algorithm_t kx = gnutls_kx_get(s);
	gnutls_sign_algorithm_t sg = gnutls_sign_algorithm_get(s);
	const char *weak;

	if (!(vers_bit(v) & c->versions)) {
		snprintf(why, len, "the server negotiated %s, which the rule "
		         "does not offer (min-version, max-version, priority)",
		         or_q(gnutls_protocol_get_name(v)));
		return -1;
	}
	if ((weak = cipher_weak(ci))) {
		snprintf(why, len, "the server chose the cipher %s (%s): below "
		         "tlsshim's floor", or_q(gnutls_cipher_get_name(ci)),
		         weak);
		return -1;
	}
	/* A resumed TLS 1.3 session is keyed by the ticket of a session
	 * whose server proved itself with a certificate that passed every
	 * check (tls_cache.h). */
	bool psk = kx == GNUTLS_KX_PSK || kx == GNUTLS_KX_ECDHE_PSK ||
	           kx == GNUTLS_KX_DHE_PSK;
	if (!kx_by_certificate(kx) && !(resumed && v == GNUTLS_TLS1_3 && psk)) {
		snprintf(why, len, "the key exchange %s does not authenticate "
		         "the server with a certificate: below tlsshim's floor",
		         or_q(gnutls_kx_get_name(kx)));
		return -1;
	}
	if (gnutls_certificate_type_get2(s, GNUTLS_CTYPE_SERVER) !=
	    GNUTLS_CRT_X509) {
		snprintf(why, len, "the server did not authenticate with an "
		         "X.509 certificate: below tlsshim's floor");
		return -1;
	}
	if (sg != GNUTLS_SIGN_UNKNOWN && sign_weak(sg)) {
		snprintf(why, len, "the server signed with %s (a broken hash): "
		         "below tlsshim's floor", or_q(gnutls_sign_get_name(sg)));
		return -1;
	}
	return 0;
}

/* ---- trust material: read, identified, re-read when changed ---- */

static void file_id_of(const struct stat *st, struct ts_file_id *id)
{
	id->known = true;
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtim = st->st_mtim;
	id->ctim = st->st_ctim;
}

static bool file_id_eq(const struct ts_file_id *a, const struct ts_file_id *b)
{
	return a->known == b->known &&
	       (!a->known ||
	        (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	         a->mtim.tv_sec == b->mtim.tv_sec &&
	         a->mtim.tv_nsec == b->mtim.tv_nsec &&
	         a->ctim.tv_sec == b->ctim.tv_sec &&
	         a->ctim.tv_nsec == b->ctim.tv_nsec));
}

/* The root directory when the engine was loaded: before any chroot or
 * pivot_root (the preload loads the engine first, src/hook_priv.c). Under
 * another root the same path names another file, perhaps one the process
 * lets others write: the files are then never read again, and what was
 * read stays in use. */
static struct ts_file_id root_id;

static bool same_root(void)
{
	struct stat st;

	return root_id.known && stat("/", &st) == 0 &&
	       st.st_dev == root_id.dev && st.st_ino == root_id.ino;
}

/* A file that can no longer be looked at (another root, a directory the
 * process may no longer enter) has not changed: what was read stays. */
static bool file_changed(const char *path, const struct ts_file_id *id)
{
	struct stat st;
	struct ts_file_id now = {0};

	if (!path || !same_root() || stat(path, &st) < 0)
		return false;
	file_id_of(&st, &now);
	return !file_id_eq(&now, id);
}

static int blob_copy(struct ts_blob *dst, const struct ts_blob *src)
{
	*dst = (struct ts_blob){0};
	if (!src->data)
		return 0;
	dst->data = malloc(src->len + 1);
	if (!dst->data)
		return -1;
	memcpy(dst->data, src->data, src->len);
	dst->data[src->len] = '\0';
	dst->len = src->len;
	return 0;
}

/* The bytes of path as they are now, identified by the fstat of the very
 * fd they were read from; if it cannot be read, fallback's bytes (what
 * the policy or the last load read) with whatever stat says now. 0, or -1
 * out of memory. */
static int take_file(const char *path, const struct ts_blob *fallback,
                     struct ts_blob *out, struct ts_file_id *id)
{
	struct stat st;
	unsigned char *buf = NULL;
	size_t len = 0;
	int fd;

	*id = (struct ts_file_id){0};
	if (!same_root())
		return blob_copy(out, fallback);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size >= 0 && st.st_size <= MAX_FILE) {
		size_t cap = (size_t)st.st_size + 1;
		buf = malloc(cap + 1);
		while (buf) {
			/* pread: not one of the preload's hooked names. */
			ssize_t n = pread(fd, buf + len, cap - len, (off_t)len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
			if (len == cap) /* grew while read: take it next time */
				break;
		}
		if (buf && len < cap) {
			ts_tls_io.close(fd);
			buf[len] = '\0';
			out->data = buf;
			out->len = len;
			file_id_of(&st, id);
			return 0;
		}
		free(buf);
	}
	if (fd >= 0)
		ts_tls_io.close(fd);
	if (stat(path, &st) == 0)
		file_id_of(&st, id);
	return blob_copy(out, fallback);
}

static int trust_id(struct ts_cred *c)
{
	gnutls_hash_hd_t h;
	uint64_t l;

	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return -1;
	l = c->ca.data ? c->ca.len : UINT64_MAX;
	gnutls_hash(h, &l, sizeof l);
	if (c->ca.len)
		gnutls_hash(h, c->ca.data, c->ca.len);
	l = c->crl.data ? c->crl.len : UINT64_MAX;
	gnutls_hash(h, &l, sizeof l);
	if (c->crl.len)
		gnutls_hash(h, c->crl.data, c->crl.len);
	gnutls_hash_deinit(h, c->trust_id);
	return 0;
}

/* ---- CRLs ---- */

/* The signature of e verified against issuer (memoised per issuer key):
 * 0, or -1. */
static int crl_verified_by(struct ts_crl *e, gnutls_x509_crt_t issuer)
{
	unsigned char kid[32];
	size_t kl = sizeof kid;
	unsigned st = 0;
	bool known;

	if (gnutls_x509_crt_get_key_id(issuer, GNUTLS_KEYID_USE_SHA256, kid,
	                               &kl) < 0 || kl != sizeof kid)
		return -1;
	pthread_mutex_lock(&memo_lock);
	known = e->verified && !memcmp(e->verified_by, kid, sizeof kid);
	pthread_mutex_unlock(&memo_lock);
	if (known)
		return 0;
	if (gnutls_x509_crl_verify(e->crl, &issuer, 1, VERIFY_FLAGS, &st) < 0)
		return -1;
	/* Its times are judged on their own, at every handshake. */
	st &= ~(unsigned)(GNUTLS_CERT_INVALID |
	                  GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
	                  GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE);
	if (st)
		return -1;
	pthread_mutex_lock(&memo_lock);
	memcpy(e->verified_by, kid, sizeof kid);
	e->verified = true;
	pthread_mutex_unlock(&memo_lock);
	return 0;
}

/* Whether e says it was issued by crt (name, and key when both say). */
static bool crl_claims(const struct ts_crl *e, gnutls_x509_crt_t crt,
                       const gnutls_datum_t *dn)
{
	unsigned char ski[64];
	size_t sl = sizeof ski;

	if (!datum_eq(&e->issuer_dn, dn))
		return false;
	if (e->aki_len &&
	    gnutls_x509_crt_get_subject_key_id(crt, ski, &sl, NULL) == 0)
		return sl == e->aki_len && !memcmp(ski, e->aki, sl);
	return true;
}

static int crl_times(const struct ts_crl *e, size_t i, const char *file,
                     time_t now, char *why, size_t len)
{
	char t[64];

	if (e->next_update != (time_t)-1 && e->next_update < now) {
		utc(e->next_update, t, sizeof t);
		snprintf(why, len, "crl-file %s: CRL %zu is out of date (next "
		         "update has passed: %s)", file, i + 1, t);
		return -1;
	}
	if (e->this_update > now + SKEW_S) {
		utc(e->this_update, t, sizeof t);
		snprintf(why, len, "crl-file %s: CRL %zu is not valid yet "
		         "(issued %s)", file, i + 1, t);
		return -1;
	}
	return 0;
}

static void crl_free(struct ts_crl *e)
{
	if (e->crl)
		gnutls_x509_crl_deinit(e->crl);
	gnutls_free(e->issuer_dn.data);
}

/* Every CRL of crl-file, each current. One whose issuer is a trust anchor
 * must verify against it now; the others are verified against their
 * issuer when a validated chain holds it (an intermediate's CRL). */
static int load_crls(struct ts_cred *c, char *err, size_t errlen)
{
	const char *file = c->rule->crl_file;
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_x509_crl_t *list = NULL;
	gnutls_datum_t d = {c->crl.data, (unsigned)c->crl.len};
	unsigned n = 0;
	time_t now = time(NULL);
	int ret;

	ret = gnutls_x509_crl_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM,
	                                   0);
	if (ret < 0 || n == 0) {
		snprintf(err, errlen, "crl-file %s: %s", file,
		         ret < 0 ? gnutls_strerror(ret) : "no CRL found");
		return -1;
	}
	c->crls = calloc(n, sizeof *c->crls);
	if (!c->crls) {
		for (unsigned i = 0; i < n; i++)
			gnutls_x509_crl_deinit(list[i]);
		gnutls_free(list);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < n; i++)
		c->crls[i].crl = list[i];
	c->ncrls = n;
	gnutls_free(list);
	gnutls_certificate_get_trust_list(c->xcred, &tl);
	for (size_t i = 0; i < c->ncrls; i++) {
		struct ts_crl *e = &c->crls[i];
		gnutls_x509_crt_t anchor = NULL;
		e->aki_len = sizeof e->aki;
		if (gnutls_x509_crl_get_authority_key_id(e->crl, e->aki,
		                                         &e->aki_len,
		                                         NULL) < 0)
			e->aki_len = 0;
		e->this_update = gnutls_x509_crl_get_this_update(e->crl);
		e->next_update = gnutls_x509_crl_get_next_update(e->crl);
		if (gnutls_x509_crl_get_raw_issuer_dn(e->crl, &e->issuer_dn) <
		    0) {
			snprintf(err, errlen, "crl-file %s: CRL %zu has no "
			         "readable issuer", file, i + 1);
			return -1;
		}
		if (crl_times(e, i, file, now, err, errlen) < 0)
			return -1;
		gnutls_datum_t aki = {e->aki, (unsigned)e->aki_len};
		if (e->aki_len)
			ret = gnutls_x509_trust_list_get_issuer_by_subject_key_id(
				tl, &e->issuer_dn, &aki, &anchor,
				GNUTLS_TL_GET_COPY);
		else
			ret = gnutls_x509_trust_list_get_issuer_by_dn(
				tl, &e->issuer_dn, &anchor, GNUTLS_TL_GET_COPY);
		if (ret < 0 || !anchor)
			continue; /* not from an anchor: judged on a chain */
		ret = crl_verified_by(e, anchor);
		gnutls_x509_crt_deinit(anchor);
		if (ret < 0) {
			snprintf(err, errlen, "crl-file %s: a CRL is not signed "
			         "by a trusted CA (its own verification failed)",
			         file);
			return -1;
		}
	}
	return 0;
}

/* Revocation on the validated path: every CRL current; for each
 * certificate below the anchor, every CRL that names its issuer must
 * verify against that issuer, and none may list it. The server's own
 * certificate must be covered by one: crl-file is there to judge it. */
static int check_crls(struct ts_cred *c, gnutls_x509_crt_t *path, unsigned n,
                      char *why, size_t len)
{
	const char *file = c->rule->crl_file;
	time_t now = time(NULL);
	bool leaf_judged = n < 2; /* the leaf is itself a trust anchor */
	char who[256], by[256];

	for (size_t i = 0; i < c->ncrls; i++)
		if (crl_times(&c->crls[i], i, file, now, why, len) < 0)
			return -1;
	for (unsigned k = 0; k + 1 < n; k++) {
		gnutls_datum_t dn = {0};
		if (gnutls_x509_crt_get_raw_dn(path[k + 1], &dn) < 0) {
			snprintf(why, len, "cannot read the name of a "
			         "certificate on the server's chain");
			return -1;
		}
		for (size_t i = 0; i < c->ncrls; i++) {
			struct ts_crl *e = &c->crls[i];
			if (!crl_claims(e, path[k + 1], &dn))
				continue;
			if (crl_verified_by(e, path[k + 1]) < 0) {
				subject(path[k + 1], by, sizeof by);
				snprintf(why, len, "crl-file %s: CRL %zu names "
				         "%.200s (on the server's chain) as its "
				         "issuer but is not signed by it", file,
				         i + 1, by);
				gnutls_free(dn.data);
				return -1;
			}
			if (k == 0)
				leaf_judged = true;
			if (gnutls_x509_crt_check_revocation(path[k], &e->crl,
			                                     1) != 0) {
				subject(path[k], who, sizeof who);
				snprintf(why, len, "The certificate is NOT "
				         "trusted. The certificate chain is "
				         "revoked. (%.200s, by CRL %zu of "
				         "crl-file %s)", who, i + 1, file);
				gnutls_free(dn.data);
				return -1;
			}
		}
		gnutls_free(dn.data);
	}
	if (!leaf_judged) {
		subject(path[1], by, sizeof by);
		subject(path[0], who, sizeof who);
		snprintf(why, len, "crl-file %s holds no CRL from %.200s, the "
		         "issuer of the server's certificate (%.200s): its "
		         "revocation cannot be judged", file, by, who);
		return -1;
	}
	return 0;
}

/* ---- credentials ---- */

static void cred_free(struct ts_cred *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->ncrls; i++)
		crl_free(&c->crls[i]);
	free(c->crls);
	if (c->prio)
		gnutls_priority_deinit(c->prio);
	if (c->xcred)
		gnutls_certificate_free_credentials(c->xcred);
	free(c->ca.data);
	free(c->crl.data);
	free(c->failed);
	free(c);
}

void ts_cred_put(struct ts_cred *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		cred_free(c);
}

static int build(struct ts_cred *c, char *err, size_t errlen)
{
	const struct ts_rule *r = c->rule;
	int ret;

	if (load_priority(r, &c->prio, &c->versions, err, errlen) < 0)
		return -1;
	ret = gnutls_certificate_allocate_credentials(&c->xcred);
	if (ret < 0) {
		snprintf(err, errlen, "%s", gnutls_strerror(ret));
		return -1;
	}
	if (c->ca.data) {
		gnutls_datum_t d = {c->ca.data, (unsigned)c->ca.len};
		ret = gnutls_certificate_set_x509_trust_mem(
			c->xcred, &d, GNUTLS_X509_FMT_PEM);
		if (ret == 0)
			ret = GNUTLS_E_NO_CERTIFICATE_FOUND;
		if (ret < 0) {
			snprintf(err, errlen, "ca-file %s: %s", r->ca_file,
			         gnutls_strerror(ret));
			return -1;
		}
	} else {
		ret = gnutls_certificate_set_x509_system_trust(c->xcred);
		if (ret == 0)
			ret = GNUTLS_E_NO_CERTIFICATE_FOUND;
		if (ret < 0) {
			snprintf(err, errlen, "system trust store: %s",
			         gnutls_strerror(ret));
			return -1;
		}
	}
	if (c->crl.data && load_crls(c, err, errlen) < 0)
		return -1;
	if (r->client_cert && r->client_key) {
		if (r->cert.data && r->key.data) {
			gnutls_datum_t cd = {r->cert.data, (unsigned)r->cert.len};
			gnutls_datum_t kd = {r->key.data, (unsigned)r->key.len};
			ret = gnutls_certificate_set_x509_key_mem2(
				c->xcred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
		} else {
			/* pkcs11: URLs (a file beside a URL works too). */
			ret = gnutls_certificate_set_x509_key_file2(
				c->xcred, r->client_cert, r->client_key,
				GNUTLS_X509_FMT_PEM, NULL, 0);
		}
		if (ret < 0) {
			snprintf(err, errlen, "client-cert %s / client-key "
			         "%s: %s", r->client_cert, r->client_key,
			         gnutls_strerror(ret));
			return -1;
		}
	}
	for (size_t i = 0; i < r->nalpn && i < 16; i++) {
		c->alpn[i].data = (unsigned char *)r->alpn[i];
		c->alpn[i].size = (unsigned)strlen(r->alpn[i]);
		c->nalpn++;
	}
	return 0;
}

/* Everything a rule's sessions share; every policy value GnuTLS must
 * judge (priority, CA, CRL, client key) is judged here, so a bad one
 * fails the rule's connects, and tlsshim --check, with its reason. The
 * files are read as they are now (prev's bytes, else the policy's, when
 * they cannot be). NULL only out of memory; else c->failed says whether
 * it loaded. */
static struct ts_cred *cred_new(const struct ts_rule *r,
                                const struct ts_cred *prev)
{
	struct ts_cred *c = calloc(1, sizeof *c);
	char err[512] = "";

	if (!c)
		return NULL;
	c->rule = r;
	atomic_init(&c->refs, 1);
	if (r->ca_file &&
	    take_file(r->ca_file, prev ? &prev->ca : &r->ca, &c->ca,
	              &c->ca_id) < 0)
		goto oom;
	if (r->crl_file &&
	    take_file(r->crl_file, prev ? &prev->crl : &r->crl, &c->crl,
	              &c->crl_id) < 0)
		goto oom;
	if (trust_id(c) < 0)
		goto oom;
	if (build(c, err, sizeof err) < 0 &&
	    !(c->failed = strdup(err[0] ? err : "out of memory")))
		goto oom;
	return c;
oom:
	cred_free(c);
	return NULL;
}

struct ts_cred *ts_cred_get(const struct ts_rule *r, char *err,
                            size_t errlen)
{
	struct ts_cred *c, **pp;
	long long now = ts_now_ms();

	pthread_mutex_lock(&creds_lock);
	for (pp = &creds; (c = *pp); pp = &c->next)
		if (c->rule == r)
			break;
	if (c && now - c->checked_ms >= TS_TRUST_RECHECK_MS) {
		c->checked_ms = now;
		if (file_changed(r->ca_file, &c->ca_id) ||
		    file_changed(r->crl_file, &c->crl_id)) {
			struct ts_cred *n = cred_new(r, c);
			if (n) {
				n->checked_ms = now;
				n->next = c->next;
				*pp = n;
				ts_cred_put(c); /* the list's reference */
				c = n;
			}
		}
	}
	if (!c && (c = cred_new(r, NULL))) {
		c->checked_ms = now;
		c->next = creds;
		creds = c;
	}
	if (!c)
		snprintf(err, errlen, "out of memory");
	else if (c->failed)
		snprintf(err, errlen, "%s", c->failed);
	else
		atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&creds_lock);
	return c && !c->failed ? c : NULL;
}

int ts_cred_check(const struct ts_rule *r, char *err, size_t errlen)
{
	struct ts_cred *c = cred_new(r, NULL);
	int rv = c && !c->failed ? 0 : -1;

	if (!c)
		snprintf(err, errlen, "out of memory");
	else if (c->failed)
		snprintf(err, errlen, "%s", c->failed);
	ts_cred_put(c);
	return rv;
}

/* No credentials load may be half done at fork: a child connecting with a
 * lock its vanished thread held would hang. */
static void creds_prepare(void)
{
	pthread_mutex_lock(&creds_lock);
	pthread_mutex_lock(&memo_lock);
}

static void creds_release(void)
{
	pthread_mutex_unlock(&memo_lock);
	pthread_mutex_unlock(&creds_lock);
}

void ts_cred_child_reset(void)
{
	pthread_mutex_init(&creds_lock, NULL);
	pthread_mutex_init(&memo_lock, NULL);
}

void ts_cred_init(void)
{
	struct stat st;

	if (stat("/", &st) == 0)
		file_id_of(&st, &root_id);
	pthread_atfork(creds_prepare, creds_release, creds_release);
}

/* ---- the validated path ---- */

static __thread struct ts_verify *collecting;

/* GnuTLS's verify output function: called for each link it checks, with
 * the certificate, the issuer it checked it against, and the result. The
 * links that verified, leaf upwards, are the validated path. */
static int on_link(gnutls_x509_crt_t cert, gnutls_x509_crt_t issuer,
                   gnutls_x509_crl_t crl, unsigned out)
{
	struct ts_verify *v = collecting;
	unsigned i;

	if (!v || crl || !cert || !issuer || out ||
	    v->nlinks >= 2 * TS_PATH_MAX)
		return 0;
	i = v->nlinks;
	if (gnutls_x509_crt_export2(cert, GNUTLS_X509_FMT_DER, &v->cert[i]) <
	    0)
		return 0;
	if (gnutls_x509_crt_export2(issuer, GNUTLS_X509_FMT_DER,
	                            &v->issuer[i]) < 0) {
		gnutls_free(v->cert[i].data);
		v->cert[i].data = NULL;
		return 0;
	}
	v->nlinks++;
	return 0;
}

void ts_verify_session_init(gnutls_session_t s)
{
	gnutls_session_set_verify_output_function(s, on_link);
}

void ts_verify_capture(struct ts_verify *v)
{
	collecting = v;
}

void ts_verify_clear(struct ts_verify *v)
{
	for (unsigned i = 0; i < v->nlinks; i++) {
		gnutls_free(v->cert[i].data);
		gnutls_free(v->issuer[i].data);
	}
	v->nlinks = 0;
}

/* The validated path, leaf first, from the links that verified: each
 * step is a certificate GnuTLS checked the previous one's signature with,
 * up to the trust anchor. A certificate the server merely sent is never
 * on it. */
static int build_path(gnutls_session_t s, const struct ts_verify *v,
                      gnutls_x509_crt_t *path, unsigned *n, char *why,
                      size_t len)
{
	const gnutls_datum_t *der[TS_PATH_MAX];
	unsigned np = 0;
	const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &np);

	*n = 0;
	if (!peers || !np || !v->nlinks) {
		snprintf(why, len, "the server's certificate chain was not "
		         "verified");
		return -1;
	}
	der[0] = &peers[0];
	for (;;) {
		if (gnutls_x509_crt_init(&path[*n]) < 0) {
			snprintf(why, len, "out of memory");
			return -1;
		}
		(*n)++;
		if (gnutls_x509_crt_import(path[*n - 1], der[*n - 1],
		                           GNUTLS_X509_FMT_DER) < 0) {
			snprintf(why, len, "cannot read a certificate of the "
			         "server's chain");
			return -1;
		}
		const gnutls_datum_t *next = NULL;
		for (unsigned i = 0; i < v->nlinks && !next; i++)
			if (datum_eq(&v->cert[i], der[*n - 1]) &&
			    !datum_eq(&v->issuer[i], der[*n - 1]))
				next = &v->issuer[i];
		for (unsigned k = 0; next && k < *n; k++)
			if (datum_eq(der[k], next))
				next = NULL; /* a loop: the anchor was reached */
		if (!next || *n == TS_PATH_MAX)
			return 0;
		der[*n] = next;
	}
}

/* ---- stapled OCSP responses, must-staple ---- */

static bool must_staple(gnutls_x509_crt_t crt)
{
	gnutls_x509_tlsfeatures_t f;
	unsigned feat;
	bool must = false;

	if (gnutls_x509_tlsfeatures_init(&f) < 0)
		return true; /* cannot tell: ask for the staple */
	if (gnutls_x509_crt_get_tlsfeatures(crt, f, 0, NULL) == 0)
		for (unsigned i = 0;
		     gnutls_x509_tlsfeatures_get(f, i, &feat) == 0; i++)
			if (feat == 5) /* status_request */
				must = true;
	gnutls_x509_tlsfeatures_deinit(f);
	return must;
}

/* A stapled response for cert: about cert, signed by its issuer on the
 * validated path (or by a responder that issuer certified for OCSP),
 * current, and not revoked. GnuTLS itself also accepts a response signed
 * by any certificate the server appended to its chain. */
static int check_staple(const gnutls_datum_t *data, gnutls_x509_crt_t cert,
                        gnutls_x509_crt_t issuer, bool must, time_t *until,
                        char *why, size_t len)
{
	gnutls_ocsp_resp_t resp;
	unsigned vst = 0, cst = 0;
	time_t thisu = 0, nextu = 0, revt = 0, now = time(NULL);
	char who[256], t[64];
	int rv = -1;

	if (gnutls_ocsp_resp_init(&resp) < 0) {
		snprintf(why, len, "out of memory");
		return -1;
	}
	if (gnutls_ocsp_resp_import(resp, data) < 0) {
		snprintf(why, len, "the stapled OCSP response does not parse");
		goto out;
	}
	if (gnutls_ocsp_resp_get_status(resp) != GNUTLS_OCSP_RESP_SUCCESSFUL) {
		if (!must)
			rv = 0; /* no answer, as if none were stapled */
		else
			snprintf(why, len, "The certificate is NOT trusted. "
			         "The certificate requires the server to "
			         "include an OCSP status in its response, but "
			         "the OCSP status is missing. (the stapled "
			         "response is not a successful one)");
		goto out;
	}
	subject(cert, who, sizeof who);
	if (gnutls_ocsp_resp_check_crt(resp, 0, cert) < 0) {
		snprintf(why, len, "the stapled OCSP response is for another "
		         "certificate than %.200s", who);
		goto out;
	}
	if (gnutls_ocsp_resp_verify_direct(resp, issuer, &vst,
	                                   VERIFY_FLAGS) < 0 || vst) {
		char by[256];
		subject(issuer, by, sizeof by);
		snprintf(why, len, "the stapled OCSP response for %.200s is "
		         "not signed by its issuer (%.200s) or by a responder "
		         "that issuer authorised", who, by);
		goto out;
	}
	if (gnutls_ocsp_resp_get_single(resp, 0, NULL, NULL, NULL, NULL, &cst,
	                                &thisu, &nextu, &revt, NULL) < 0) {
		snprintf(why, len, "the stapled OCSP response does not parse");
		goto out;
	}
	if (cst == GNUTLS_OCSP_CERT_REVOKED) {
		snprintf(why, len, "The certificate is NOT trusted. The "
		         "certificate chain is revoked. (%.200s, by its "
		         "stapled OCSP response)", who);
		goto out;
	}
	if (thisu > now + SKEW_S) {
		utc(thisu, t, sizeof t);
		snprintf(why, len, "the stapled OCSP response for %.200s is "
		         "not valid yet (produced %s)", who, t);
		goto out;
	}
	if (nextu != (time_t)-1 ? nextu < now : now - thisu > OCSP_MAX_AGE_S) {
		utc(nextu != (time_t)-1 ? nextu : thisu, t, sizeof t);
		snprintf(why, len, "the stapled OCSP response for %.200s is out "
		         "of date (%s %s)", who,
		         nextu != (time_t)-1 ? "next update was" : "produced",
		         t);
		goto out;
	}
	if (must && cst != GNUTLS_OCSP_CERT_GOOD) {
		snprintf(why, len, "the stapled OCSP response does not say "
		         "that %.200s is good, and the certificate requires "
		         "one that does (must-staple)", who);
		goto out;
	}
	/* A must-staple server's session is not resumed past it. */
	if (must)
		*until = nextu != (time_t)-1 ? nextu : thisu + OCSP_MAX_AGE_S;
	rv = 0;
out:
	gnutls_ocsp_resp_deinit(resp);
	return rv;
}

/* Each certificate of the path the server stapled a response for, and the
 * leaf's must-staple (TLS feature status_request, RFC 7633) -- whether or
 * not the priority let us ask for a staple. */
static int check_staples(gnutls_session_t s, gnutls_x509_crt_t *path,
                         unsigned n, time_t *until, char *why, size_t len)
{
	unsigned np = 0;
	const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &np);

	for (unsigned k = 0; k + 1 < n; k++) {
		gnutls_datum_t der = {0}, resp;
		bool must = k == 0 && must_staple(path[0]);
		int idx = -1;
		if (gnutls_x509_crt_export2(path[k], GNUTLS_X509_FMT_DER,
		                            &der) < 0) {
			snprintf(why, len, "out of memory");
			return -1;
		}
		for (unsigned i = 0; i < np && idx < 0; i++)
			if (datum_eq(&peers[i], &der))
				idx = (int)i;
		gnutls_free(der.data);
		if (idx < 0 ||
		    gnutls_ocsp_status_request_get2(s, (unsigned)idx, &resp) <
		            0) {
			if (!must)
				continue;
			snprintf(why, len, "The certificate is NOT trusted. The "
			         "certificate requires the server to include "
			         "an OCSP status in its response, but the OCSP "
			         "status is missing.");
			return -1;
		}
		time_t u = 0;
		if (check_staple(&resp, path[k], path[k + 1], must, &u, why,
		                 len) < 0)
			return -1;
		if (u && (!*until || u < *until))
			*until = u;
	}
	return 0;
}

/* ---- pins ---- */

/* RFC 7469: a certificate on the validated path -- leaf, issuers, trust
 * anchor -- has a public key whose SPKI SHA-256 is pinned. */
static int check_pins(const struct ts_rule *r, gnutls_x509_crt_t *path,
                      unsigned n, char *why, size_t len)
{
	char shown[48] = "none";

	for (unsigned k = 0; k < n; k++) {
		unsigned char id[32];
		size_t idlen = sizeof id;
		if (gnutls_x509_crt_get_key_id(path[k], GNUTLS_KEYID_USE_SHA256,
		                               id, &idlen) < 0 ||
		    idlen != sizeof id)
			continue;
		if (k == 0)
			ts_base64(id, sizeof id, shown, sizeof shown);
		for (size_t j = 0; j < r->npins; j++)
			if (!memcmp(r->pins[j], id, sizeof id))
				return 0;
	}
	snprintf(why, len, "no pin-sha256 matches a certificate on the "
	         "validated chain (server key pin-sha256 %s)", shown);
	return -1;
}

/* The earliest expiry of the path's certificates. */
static time_t path_until(gnutls_x509_crt_t *path, unsigned n)
{
	time_t until = 0;

	for (unsigned k = 0; k < n; k++) {
		time_t t = gnutls_x509_crt_get_expiration_time(path[k]);
		if (t != (time_t)-1 && (!until || t < until))
			until = t;
	}
	return until;
}

int ts_verify_after(gnutls_session_t s, struct ts_verify *v,
                    struct ts_cred *c, time_t *until, char *why,
                    size_t whylen)
{
	gnutls_x509_crt_t path[TS_PATH_MAX];
	unsigned n = 0;
	int rv = -1;

	why[0] = '\0';
	if (session_floor(s, c, gnutls_session_is_resumed(s), why, whylen) <
	    0)
		goto out;
	if (gnutls_session_is_resumed(s)) {
		/* The ticket was kept from a session verified with the same
		 * trust material, pins and rule (the resumption key), and is
		 * offered only within its chain's validity (*until): what
		 * time alone can change is the CRLs' currency. */
		time_t now = time(NULL);
		for (size_t i = 0; i < c->ncrls; i++)
			if (crl_times(&c->crls[i], i, c->rule->crl_file, now, why,
			              whylen) < 0)
				goto out;
		rv = 0;
		goto out;
	}
	if (build_path(s, v, path, &n, why, whylen) < 0)
		goto out;
	if (c->ncrls && check_crls(c, path, n, why, whylen) < 0)
		goto out;
	*until = path_until(path, n);
	if (check_staples(s, path, n, until, why, whylen) < 0)
		goto out;
	if (c->rule->npins && check_pins(c->rule, path, n, why, whylen) < 0)
		goto out;
	rv = 0;
out:
	while (n--)
		gnutls_x509_crt_deinit(path[n]);
	ts_verify_clear(v);
	return rv;
}
