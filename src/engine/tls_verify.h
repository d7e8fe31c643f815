/* What the engine (src/engine/tls_verify.c) judges beyond GnuTLS's own
 * chain and name checks (docs/verification.md): after every handshake,
 * before the program's first byte, the session's floor, the validated
 * path (leaf -> issuers -> trust anchor, as GnuTLS verified it),
 * revocation against the CRLs, stapled OCSP responses and must-staple,
 * and pins, all on that path; for a resumed session, what time changes
 * (the resumption key binds everything else).
 *
 * Only libtlsshim-engine.so uses this; it links GnuTLS. */
#ifndef TS_TLS_VERIFY_H
#define TS_TLS_VERIFY_H

#include <time.h>

#include <gnutls/gnutls.h>

#include "tls_cred.h"

/* Links and certificates of one validated path. */
#define TS_PATH_MAX 16

/* Per session: the links of the chain GnuTLS verified in the handshake. */
struct ts_verify {
	gnutls_datum_t cert[2 * TS_PATH_MAX], issuer[2 * TS_PATH_MAX];
	unsigned nlinks;
};

/* Installs the collector on s (once, at create). */
void ts_verify_session_init(gnutls_session_t s);
/* Around gnutls_handshake on this thread: v collects, NULL stops. */
void ts_verify_capture(struct ts_verify *v);
/* After a handshake GnuTLS accepted, before anything is sent: 0, or -1
 * with the reason in why. After a full handshake *until gets the time from
 * which the session must no longer be resumed (the path's earliest expiry,
 * a must-staple response's next update); a resumed one is judged on what
 * time can change since. Clears v. */
int ts_verify_after(gnutls_session_t s, struct ts_verify *v,
                    struct ts_cred *c, time_t *until, char *why,
                    size_t whylen);
void ts_verify_clear(struct ts_verify *v);

/* After a handshake tlsshim served (an accept rule), before the program
 * sees a byte: the floor, and with client-ca the client's validated path,
 * its revocation, client-pin-sha256 and client-name. identity gets the
 * client name that was allowed (or the certificate's first name; "" with
 * no client certificate asked). 0, or -1 with the reason in why. */
int ts_verify_client_after(gnutls_session_t s, struct ts_verify *v,
                           struct ts_cred *c, char *identity, size_t idlen,
                           char *why, size_t whylen);

#endif
