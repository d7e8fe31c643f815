/* A rule's credentials (see tls_cred.h, docs/verification.md): the
 * priority under tlsshim's floor, the trust anchors and CRLs read as they
 * are now and re-read when they change, the client identity; and the two
 * judgements that go with them after a handshake: the negotiated session
 * against the same floor, and revocation against the CRLs. */
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
#include "tls_cred.h"

/* Trust material larger than this is refused (as the policy parser does). */
#define MAX_FILE (8 * 1024 * 1024)

static const char base_priority[] = "NORMAL";

static struct ts_cred *creds;
/* Whose chain the messages speak of: the server's, or, where tlsshim
 * serves (an accept rule), the client's. */
__thread const char *ts_verify_peer = "server";
static pthread_mutex_t creds_lock = PTHREAD_MUTEX_INITIALIZER;
/* The CRL signature memo (struct ts_crl), taken alone or inside
 * creds_lock (a load verifies its anchors' CRLs). */
static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;

void ts_x509_utc(time_t t, char *buf, size_t len)
{
	struct tm tm;
	if (t == (time_t)-1 || !gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "?");
}

bool ts_x509_datum_eq(const gnutls_datum_t *a, const gnutls_datum_t *b)
{
	return a->size == b->size && !memcmp(a->data, b->data, a->size);
}

/* The subject of crt for a reason text ("CN=x,O=y"); "?" if none. */
void ts_x509_subject(gnutls_x509_crt_t crt, char *buf, size_t len)
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
int ts_cred_session_floor(gnutls_session_t s, const struct ts_cred *c,
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
 * pivot_root (the preload loads the engine first, src/preload/hooks/hook_priv.c). Under
 * another root the same path names another file, perhaps one the process
 * lets others write: the files are then never read again, and what was
 * read stays in use. */
static struct ts_file_id root_id;
static void (*log_line)(int level, const char *msg);

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
	if (gnutls_x509_crl_verify(e->crl, &issuer, 1, TS_VERIFY_FLAGS, &st) < 0)
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

	if (!ts_x509_datum_eq(&e->issuer_dn, dn))
		return false;
	if (e->aki_len &&
	    gnutls_x509_crt_get_subject_key_id(crt, ski, &sl, NULL) == 0)
		return sl == e->aki_len && !memcmp(ski, e->aki, sl);
	return true;
}

int ts_crl_times(const struct ts_crl *e, size_t i, const char *file,
                     time_t now, char *why, size_t len)
{
	char t[64];

	if (e->next_update != (time_t)-1 && e->next_update < now) {
		ts_x509_utc(e->next_update, t, sizeof t);
		snprintf(why, len, "crl-file %s: CRL %zu is out of date (next "
		         "update has passed: %s)", file, i + 1, t);
		return -1;
	}
	if (e->this_update > now + TS_SKEW_S) {
		ts_x509_utc(e->this_update, t, sizeof t);
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
		if (ts_crl_times(e, i, file, now, err, errlen) < 0)
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
int ts_cred_check_crls(struct ts_cred *c, gnutls_x509_crt_t *path, unsigned n,
                      char *why, size_t len)
{
	const char *file = c->rule->crl_file;
	time_t now = time(NULL);
	bool leaf_judged = n < 2; /* the leaf is itself a trust anchor */
	char who[256], by[256];

	for (size_t i = 0; i < c->ncrls; i++)
		if (ts_crl_times(&c->crls[i], i, file, now, why, len) < 0)
			return -1;
	for (unsigned k = 0; k + 1 < n; k++) {
		gnutls_datum_t dn = {0};
		if (gnutls_x509_crt_get_raw_dn(path[k + 1], &dn) < 0) {
			snprintf(why, len, "cannot read the name of a "
			         "certificate on the %s's chain", ts_verify_peer);
			return -1;
		}
		for (size_t i = 0; i < c->ncrls; i++) {
			struct ts_crl *e = &c->crls[i];
			if (!crl_claims(e, path[k + 1], &dn))
				continue;
			if (crl_verified_by(e, path[k + 1]) < 0) {
				ts_x509_subject(path[k + 1], by, sizeof by);
				snprintf(why, len, "crl-file %s: CRL %zu names "
				         "%.200s (on the %s's chain) as its "
				         "issuer but is not signed by it", file,
				         i + 1, by, ts_verify_peer);
				gnutls_free(dn.data);
				return -1;
			}
			if (k == 0)
				leaf_judged = true;
			if (gnutls_x509_crt_check_revocation(path[k], &e->crl,
			                                     1) != 0) {
				ts_x509_subject(path[k], who, sizeof who);
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
		ts_x509_subject(path[1], by, sizeof by);
		ts_x509_subject(path[0], who, sizeof who);
		snprintf(why, len, "crl-file %s holds no CRL from %.200s, the "
		         "issuer of the %s's certificate (%.200s): its "
		         "revocation cannot be judged", file, by, ts_verify_peer, who);
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
	free(c->srv_cert.data);
	if (c->srv_key.data) {
		gnutls_memset(c->srv_key.data, 0, c->srv_key.len);
		free(c->srv_key.data);
	}
	if (c->ticket_key.data) {
		gnutls_memset(c->ticket_key.data, 0, c->ticket_key.size);
		gnutls_free(c->ticket_key.data);
	}
	free(c->failed);
	free(c);
}

void ts_cred_put(struct ts_cred *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		cred_free(c);
}

static void alpn_list(struct ts_cred *c)
{
	const struct ts_rule *r = c->rule;

	for (size_t i = 0; i < r->nalpn && i < 16; i++) {
		c->alpn[i].data = (unsigned char *)r->alpn[i];
		c->alpn[i].size = (unsigned)strlen(r->alpn[i]);
		c->nalpn++;
	}
}

/* The trust anchors read from the rule's key (ca-file, client-ca) into
 * the credentials: at least one, or the reason. */
static int set_trust(struct ts_cred *c, const char *key, const char *file,
                     char *err, size_t errlen)
{
	gnutls_datum_t d = {c->ca.data, (unsigned)c->ca.len};
	int ret = gnutls_certificate_set_x509_trust_mem(c->xcred, &d,
	                                                GNUTLS_X509_FMT_PEM);
	if (ret == 0)
		ret = GNUTLS_E_NO_CERTIFICATE_FOUND;
	if (ret >= 0)
		return 0;
	snprintf(err, errlen, "%s %s: %s", key, file, gnutls_strerror(ret));
	return -1;
}

/* An accept rule: the certificate and key served, client-ca (the
 * clients' trust anchors) and their CRLs, a ticket key. */
static int build_server(struct ts_cred *c, char *err, size_t errlen)
{
	const struct ts_rule *r = c->rule;
	int ret;

	if (c->ca.data &&
	    set_trust(c, "client-ca", r->client_ca_file, err, errlen) < 0)
		return -1;
	if (c->crl.data && load_crls(c, err, errlen) < 0)
		return -1;
	gnutls_datum_t cd = {c->srv_cert.data, (unsigned)c->srv_cert.len};
	gnutls_datum_t kd = {c->srv_key.data, (unsigned)c->srv_key.len};
	ret = gnutls_certificate_set_x509_key_mem2(c->xcred, &cd, &kd,
	                                           GNUTLS_X509_FMT_PEM, NULL,
	                                           0);
	if (ret < 0) {
		snprintf(err, errlen, "cert %s / key %s: %s", r->cert_file,
		         r->key_file, gnutls_strerror(ret));
		return -1;
	}
	if (!c->ticket_key.data &&
	    (ret = gnutls_session_ticket_key_generate(&c->ticket_key)) < 0) {
		snprintf(err, errlen, "session ticket key: %s",
		         gnutls_strerror(ret));
		return -1;
	}
	alpn_list(c);
	return 0;
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
	if (r->server)
		return build_server(c, err, errlen);
	if (c->ca.data) {
		if (set_trust(c, "ca-file", r->ca_file, err, errlen) < 0)
			return -1;
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
	alpn_list(c);
	return 0;
}

/* An accept rule's files as they are now. */
static int server_files(struct ts_cred *c, const struct ts_cred *prev)
{
	const struct ts_rule *r = c->rule;

	if (r->client_ca_file &&
	    take_file(r->client_ca_file, prev ? &prev->ca : &r->client_ca,
	              &c->ca, &c->ca_id) < 0)
		return -1;
	if (take_file(r->cert_file, prev ? &prev->srv_cert : &r->srv_cert,
	              &c->srv_cert, &c->cert_id) < 0 ||
	    take_file(r->key_file, prev ? &prev->srv_key : &r->srv_key,
	              &c->srv_key, &c->key_id) < 0)
		return -1;
	return 0;
}

/* The ticket key carries over a certificate rotation (returning clients
 * still resume), never a change of what clients are judged by: a ticket
 * issued under the old client-ca or CRLs would skip the new ones. */
static int ticket_key_from(struct ts_cred *c, const struct ts_cred *prev)
{
	if (!prev || !prev->ticket_key.data ||
	    !file_id_eq(&prev->ca_id, &c->ca_id) ||
	    !file_id_eq(&prev->crl_id, &c->crl_id))
		return 0; /* build() makes a new one */
	c->ticket_key.data = gnutls_malloc(prev->ticket_key.size);
	if (!c->ticket_key.data)
		return -1;
	memcpy(c->ticket_key.data, prev->ticket_key.data,
	       prev->ticket_key.size);
	c->ticket_key.size = prev->ticket_key.size;
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
	if (r->server && server_files(c, prev) < 0)
		goto oom;
	if (r->ca_file &&
	    take_file(r->ca_file, prev ? &prev->ca : &r->ca, &c->ca,
	              &c->ca_id) < 0)
		goto oom;
	if (r->crl_file &&
	    take_file(r->crl_file, prev ? &prev->crl : &r->crl, &c->crl,
	              &c->crl_id) < 0)
		goto oom;
	if (r->server && ticket_key_from(c, prev) < 0)
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

static bool files_changed(const struct ts_cred *c)
{
	const struct ts_rule *r = c->rule;

	if (r->server)
		return file_changed(r->cert_file, &c->cert_id) ||
		       file_changed(r->key_file, &c->key_id) ||
		       file_changed(r->client_ca_file, &c->ca_id) ||
		       file_changed(r->crl_file, &c->crl_id);
	return file_changed(r->ca_file, &c->ca_id) ||
	       file_changed(r->crl_file, &c->crl_id);
}

/* The files of an accept rule changed and do not load: the old ones stay
 * in use (their ids take the new files', so the same broken files are
 * not read again), and the error is logged. */
static void reload_failed(struct ts_cred *old, const struct ts_cred *n)
{
	char msg[700];

	old->cert_id = n->cert_id;
	old->key_id = n->key_id;
	old->ca_id = n->ca_id;
	old->crl_id = n->crl_id;
	snprintf(msg, sizeof msg, "rule %s: the changed files do not load "
	         "(%s); still serving the previous certificate",
	         old->rule->name, n->failed);
	if (log_line)
		log_line(TS_LOG_ERROR, msg);
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
		if (files_changed(c)) {
			struct ts_cred *n = cred_new(r, c);
			if (n && n->failed && r->server && !c->failed) {
				/* A server keeps serving: the new files wait
				 * until they load (looked at again when they
				 * change). */
				reload_failed(c, n);
				ts_cred_put(n);
				n = NULL;
			}
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

void ts_cred_init(void (*log)(int level, const char *msg))
{
	log_line = log;
	struct stat st;

	if (stat("/", &st) == 0)
		file_id_of(&st, &root_id);
	pthread_atfork(creds_prepare, creds_release, creds_release);
}
