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

/* GnuTLS's own limit for an OCSP response without nextUpdate. */
#define OCSP_MAX_AGE_S (3 * 24 * 3600)

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
		snprintf(why, len, "the %s's certificate chain was not "
		         "verified", ts_verify_peer);
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
			         "%s's chain", ts_verify_peer);
			return -1;
		}
		const gnutls_datum_t *next = NULL;
		for (unsigned i = 0; i < v->nlinks && !next; i++)
			if (ts_x509_datum_eq(&v->cert[i], der[*n - 1]) &&
			    !ts_x509_datum_eq(&v->issuer[i], der[*n - 1]))
				next = &v->issuer[i];
		for (unsigned k = 0; next && k < *n; k++)
			if (ts_x509_datum_eq(der[k], next))
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
	ts_x509_subject(cert, who, sizeof who);
	if (gnutls_ocsp_resp_check_crt(resp, 0, cert) < 0) {
		snprintf(why, len, "the stapled OCSP response is for another "
		         "certificate than %.200s", who);
		goto out;
	}
	if (gnutls_ocsp_resp_verify_direct(resp, issuer, &vst,
	                                   TS_VERIFY_FLAGS) < 0 || vst) {
		char by[256];
		ts_x509_subject(issuer, by, sizeof by);
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
	if (thisu > now + TS_SKEW_S) {
		ts_x509_utc(thisu, t, sizeof t);
		snprintf(why, len, "the stapled OCSP response for %.200s is "
		         "not valid yet (produced %s)", who, t);
		goto out;
	}
	if (nextu != (time_t)-1 ? nextu < now : now - thisu > OCSP_MAX_AGE_S) {
		ts_x509_utc(nextu != (time_t)-1 ? nextu : thisu, t, sizeof t);
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
			if (ts_x509_datum_eq(&peers[i], &der))
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
	if (ts_cred_session_floor(s, c, gnutls_session_is_resumed(s), why, whylen) <
	    0)
		goto out;
	if (gnutls_session_is_resumed(s)) {
		/* The ticket was kept from a session verified with the same
		 * trust material, pins and rule (the resumption key), and is
		 * offered only within its chain's validity (*until): what
		 * time alone can change is the CRLs' currency. */
		time_t now = time(NULL);
		for (size_t i = 0; i < c->ncrls; i++)
			if (ts_crl_times(&c->crls[i], i, c->rule->crl_file, now, why,
			              whylen) < 0)
				goto out;
		rv = 0;
		goto out;
	}
	if (build_path(s, v, path, &n, why, whylen) < 0)
		goto out;
	if (c->ncrls && ts_cred_check_crls(c, path, n, why, whylen) < 0)
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

/* ---- the client of an accept rule ---- */

/* The DNS and URI names of crt (its subjectAltName), else its CN, one at
 * a time: 0 and the name in buf, or -1 when there are no more. */
static int cert_name(gnutls_x509_crt_t crt, unsigned *seq, char *buf,
                     size_t len, bool *cn_only)
{
	for (;; (*seq)++) {
		size_t n = len - 1;
		unsigned crit;
		int t = gnutls_x509_crt_get_subject_alt_name(crt, *seq, buf, &n,
		                                             &crit);
		if (t == GNUTLS_SAN_DNSNAME || t == GNUTLS_SAN_URI) {
			buf[n] = '\0';
			(*seq)++;
			*cn_only = false;
			return 0;
		}
		if (t == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (t < 0) {
			/* An entry that cannot be read (too long for any
			 * name, or broken) may be a DNS name or URI: it
			 * rules out the CN, and names nothing itself. */
			*cn_only = false;
			if (t != GNUTLS_E_SHORT_MEMORY_BUFFER)
				break;
		}
	}
	/* No name in the SAN: the CN, once. */
	if (!*cn_only)
		return -1;
	*cn_only = false;
	size_t n = len - 1;
	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
	                                  0, buf, &n) < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* The client's name: one client-name allows, or (none set) its first. */
static int client_identity(const struct ts_rule *r, gnutls_x509_crt_t leaf,
                           char *identity, size_t idlen, char *why,
                           size_t len)
{
	char name[256], seen[256] = "";
	unsigned seq = 0;
	bool cn_only = true;

	while (cert_name(leaf, &seq, name, sizeof name, &cn_only) == 0) {
		if (!seen[0])
			snprintf(seen, sizeof seen, "%s", name);
		if (!r->nclient_names) {
			snprintf(identity, idlen, "%s", name);
			return 0;
		}
		for (size_t i = 0; i < r->nclient_names; i++)
			if (ts_client_name_fits(r->client_names[i], name)) {
				snprintf(identity, idlen, "%s", name);
				return 0;
			}
	}
	if (!r->nclient_names)
		return 0;
	snprintf(why, len, "the client's certificate (%s) names no identity "
	         "client-name allows", seen[0] ? seen : "no name");
	return -1;
}

static int client_pin(const struct ts_rule *r, gnutls_x509_crt_t leaf,
                      char *why, size_t len)
{
	unsigned char id[32];
	size_t idlen = sizeof id;
	char shown[48] = "?";

	if (gnutls_x509_crt_get_key_id(leaf, GNUTLS_KEYID_USE_SHA256, id,
	                               &idlen) == 0 &&
	    idlen == sizeof id) {
		for (size_t j = 0; j < r->nclient_pins; j++)
			if (!memcmp(r->client_pins[j], id, sizeof id))
				return 0;
		ts_base64(id, sizeof id, shown, sizeof shown);
	}
	snprintf(why, len, "the client's key (pin-sha256 %s) is not among "
	         "client-pin-sha256", shown);
	return -1;
}

/* A resumed session carries the chain the client sent in its full
 * handshake, and GnuTLS verifies nothing when resuming: the chain is
 * verified again here against client-ca as it is now, at this time (a
 * certificate that expired, or a CA that was replaced, since), collecting
 * the validated path into v as a full handshake does; the caller then
 * judges that path the same way (crl-file: a certificate revoked since,
 * or refused before but holding a ticket). */
static int reverify_resumed(gnutls_session_t s, struct ts_verify *v,
                            struct ts_cred *c, char *why, size_t len)
{
	unsigned np = 0, k, status = 0;
	const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &np);
	gnutls_x509_crt_t chain[TS_PATH_MAX];
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_typed_vdata_st vd = {
		.type = GNUTLS_DT_KEY_PURPOSE_OID,
		.data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
	};
	int ret = -1;

	if (!peers || !np) {
		snprintf(why, len, "the resumed session carries no client "
		         "certificate");
		return -1;
	}
	if (np > TS_PATH_MAX)
		np = TS_PATH_MAX;
	for (k = 0; k < np; k++) {
		if (gnutls_x509_crt_init(&chain[k]) < 0)
			break;
		if (gnutls_x509_crt_import(chain[k], &peers[k],
		                           GNUTLS_X509_FMT_DER) < 0) {
			gnutls_x509_crt_deinit(chain[k]);
			break;
		}
	}
	if (k == np) {
		gnutls_certificate_get_trust_list(c->xcred, &tl);
		ts_verify_clear(v);
		ts_verify_capture(v);
		ret = gnutls_x509_trust_list_verify_crt2(tl, chain, np, &vd, 1, 0,
		                                         &status, on_link);
		ts_verify_capture(NULL);
	}
	while (k--)
		gnutls_x509_crt_deinit(chain[k]);
	if (ret < 0 || status) {
		gnutls_datum_t out = {0};
		if (ret >= 0 && gnutls_certificate_verification_status_print(
		                        status, GNUTLS_CRT_X509, &out, 0) == 0) {
			snprintf(why, len, "resumed session: %s", out.data);
			gnutls_free(out.data);
			for (size_t e = strlen(why); e && why[e - 1] == ' ';)
				why[--e] = '\0';
		} else {
			snprintf(why, len, "resumed session: the client's "
			         "certificate chain cannot be verified again");
		}
		return -1;
	}
	return 0;
}

int ts_verify_client_after(gnutls_session_t s, struct ts_verify *v,
                           struct ts_cred *c, char *identity, size_t idlen,
                           char *why, size_t whylen)
{
	const struct ts_rule *r = c->rule;
	gnutls_x509_crt_t path[TS_PATH_MAX];
	unsigned n = 0;
	int rv = -1;

	ts_verify_peer = "client";
	why[0] = identity[0] = '\0';
	if (ts_cred_session_floor(s, c, gnutls_session_is_resumed(s), why, whylen) <
	    0)
		goto out;
	if (!r->client_ca_file) {
		rv = 0;
		goto out;
	}
	if (gnutls_session_is_resumed(s) &&
	    reverify_resumed(s, v, c, why, whylen) < 0)
		goto out;
	if (build_path(s, v, path, &n, why, whylen) < 0)
		goto out;
	if (c->ncrls && ts_cred_check_crls(c, path, n, why, whylen) < 0)
		goto out;
	if (r->nclient_pins && client_pin(r, path[0], why, whylen) < 0)
		goto out;
	if (client_identity(r, path[0], identity, idlen, why, whylen) < 0)
		goto out;
	rv = 0;
out:
	while (n--)
		gnutls_x509_crt_deinit(path[n]);
	ts_verify_clear(v);
	ts_verify_peer = "server";
	return rv;
}
