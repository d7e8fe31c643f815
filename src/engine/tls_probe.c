/* tlsshim --probe (the launcher only): what a session negotiated and
 * the peer's chain. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "base64.h"
#include "tls.h"

/* ---- probe (tlsshim --probe) ----
 *
 * Self-contained: what the session negotiated and the peer's chain, for
 * the launcher, one line at a time through out(). Called after the
 * handshake, whether it verified or not: the chain is what one needs to
 * debug a failure or write a pin. Public data only, never key material. */

static void probe_time(time_t t, char *buf, size_t len)
{
	struct tm tm;
	if (t == (time_t)-1 || !gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "?");
}

static void probe_cert(const gnutls_datum_t *der, unsigned idx,
                       void (*out)(void *, const char *), void *ctx)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = {0};
	char line[1024], a[64], b[64];
	unsigned char id[64];
	size_t idlen = sizeof id;

	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
		snprintf(line, sizeof line, "cert %u: cannot parse", idx);
		out(ctx, line);
		goto done;
	}
	if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
		snprintf(line, sizeof line, "cert %u: subject: %s", idx,
		         (char *)dn.data);
		out(ctx, line);
		gnutls_free(dn.data);
		dn.data = NULL;
	}
	if (gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) == 0) {
		snprintf(line, sizeof line, "  issuer: %s", (char *)dn.data);
		out(ctx, line);
		gnutls_free(dn.data);
	}
	probe_time(gnutls_x509_crt_get_activation_time(crt), a, sizeof a);
	probe_time(gnutls_x509_crt_get_expiration_time(crt), b, sizeof b);
	snprintf(line, sizeof line, "  validity: %s to %s", a, b);
	out(ctx, line);
	for (unsigned i = 0;; i++) {
		char san[512];
		size_t sl = sizeof san - 1;
		unsigned crit;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, i, san,
		                                                &sl, &crit);
		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type == GNUTLS_SAN_DNSNAME) {
			san[sl] = '\0';
			snprintf(line, sizeof line, "  san: DNS:%s", san);
		} else if (type == GNUTLS_SAN_IPADDRESS &&
		           (sl == 4 || sl == 16)) {
			char ip[INET6_ADDRSTRLEN];
			inet_ntop(sl == 4 ? AF_INET : AF_INET6, san, ip,
			          sizeof ip);
			snprintf(line, sizeof line, "  san: IP:%s", ip);
		} else {
			continue;
		}
		out(ctx, line);
	}
	/* sha256 of the SubjectPublicKeyInfo, base64: the pin format of
	 * RFC 7469 and curl's --pinnedpubkey. */
	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id,
	                               &idlen) == 0 && idlen == 32) {
		char b64[64];
		ts_base64(id, idlen, b64, sizeof b64);
		snprintf(line, sizeof line, "  pin-sha256: %s", b64);
		out(ctx, line);
	}
done:
	gnutls_x509_crt_deinit(crt);
}

TS_TLS_EXPORT void ts_engine_probe(struct ts_tls *t,
                            void (*out)(void *ctx, const char *line),
                            void *ctx)
{
	char line[512];
	gnutls_datum_t alpn = {0};
	const gnutls_datum_t *chain;
	unsigned n = 0;

	if (!t || !out)
		return;
	const char *v =
		gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
	const char *c = gnutls_cipher_get_name(gnutls_cipher_get(t->s));
	snprintf(line, sizeof line, "version: %s", v ? v : "(none)");
	out(ctx, line);
	snprintf(line, sizeof line, "cipher: %s", c ? c : "(none)");
	out(ctx, line);
	if (gnutls_alpn_get_selected_protocol(t->s, &alpn) == 0)
		snprintf(line, sizeof line, "alpn: %.*s", (int)alpn.size,
		         (const char *)alpn.data);
	else
		snprintf(line, sizeof line, "alpn: (none)");
	out(ctx, line);
	chain = gnutls_certificate_get_peers(t->s, &n);
	snprintf(line, sizeof line, "peer chain: %u certificate%s", n,
	         n == 1 ? "" : "s");
	out(ctx, line);
	for (unsigned i = 0; chain && i < n; i++)
		probe_cert(&chain[i], i, out, ctx);
}
