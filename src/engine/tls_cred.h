/* A rule's credentials (src/engine/tls_cred.c, docs/verification.md):
 * trust anchors, CRLs, priority (with the version range and the cipher
 * floor), the client identity, re-read when ca-file or crl-file change;
 * and what is judged with them after a handshake (the session's floor,
 * revocation on the validated path: tls_verify.c asks).
 *
 * Only libtlsshim-engine.so uses this; it links GnuTLS. */
#ifndef TS_TLS_CRED_H
#define TS_TLS_CRED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "policy.h"

/* ca-file and crl-file are looked at (stat) at most this often, and
 * re-read when they changed. */
#define TS_TRUST_RECHECK_MS 2000
/* Certificate verification uses the MEDIUM profile (112-bit security: RSA
 * and DH below 2048 bits refused), set in the priority string: set as
 * credential verify flags it also refused sound P-256 chains ("insecure
 * algorithm"). SHA-1 signatures are refused by GnuTLS 3.7's defaults.
 * CRLs and stapled OCSP responses are verified with the same profile. */
#define TS_VERIFY_FLAGS GNUTLS_PROFILE_TO_VFLAGS(GNUTLS_PROFILE_MEDIUM)
/* How far ahead of our clock a CRL or OCSP response may claim to have
 * been issued. */
#define TS_SKEW_S 300

/* Bits of the TLS versions offered. */
#define TS_VERS_12 1u
#define TS_VERS_13 2u

struct ts_file_id {
	bool known;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
};

struct ts_crl {
	gnutls_x509_crl_t crl;
	gnutls_datum_t issuer_dn;  /* raw DER of the issuer's name */
	unsigned char aki[64];     /* authority key identifier */
	size_t aki_len;            /* 0: none */
	time_t this_update, next_update; /* next_update (time_t)-1: none */
	/* The issuer key (SHA-256 of its SPKI) the signature verified
	 * against (under tls_cred.c's memo lock): verified once, not per
	 * handshake. */
	unsigned char verified_by[32];
	bool verified;
};

/* A rule's credentials, shared read-only by its sessions (counted). */
struct ts_cred {
	struct ts_cred *next;
	const struct ts_rule *rule;
	atomic_uint refs;
	gnutls_certificate_credentials_t xcred;
	gnutls_priority_t prio;
	unsigned versions;           /* TS_VERS_*: what prio offers */
	gnutls_datum_t alpn[16];
	unsigned nalpn;
	struct ts_crl *crls;
	size_t ncrls;
	/* The CA and CRL bytes in use, where they came from, and their
	 * digest (the resumption key: a session is never resumed across a
	 * change of trust material). */
	struct ts_blob ca, crl;
	struct ts_file_id ca_id, crl_id;
	unsigned char trust_id[32];
	long long checked_ms;        /* last look at the files */
	char *failed;                /* set: the rule is refused, this is why */
	/* Server rules (accept): the certificate and key served (ca above
	 * holds client-ca), and the session ticket key, kept in memory
	 * only and across reloads (GnuTLS rotates what it derives from it). */
	struct ts_blob srv_cert, srv_key;
	struct ts_file_id cert_id, key_id;
	gnutls_datum_t ticket_key;
};

/* The current credentials of r, with a reference (ts_cred_put), or NULL
 * with the reason. At most every TS_TRUST_RECHECK_MS the files are looked
 * at, and a changed one is read again; if what it holds now does not load,
 * the rule's connections are refused with the reason until it does. Under
 * another root directory than the engine was loaded in, nothing is read
 * again. */
struct ts_cred *ts_cred_get(const struct ts_rule *r, char *err,
                            size_t errlen);
void ts_cred_put(struct ts_cred *c);
/* For tlsshim --check: everything the engine judges in r. */
int ts_cred_check(const struct ts_rule *r, char *err, size_t errlen);
/* The TLS versions r's sessions offer ("TLS1.2, TLS1.3"), from the
 * priority string, min-version and max-version together. */
int ts_cred_versions(const struct ts_rule *r, char *buf, size_t len,
                     char *err, size_t errlen);
/* Once, from ts_engine_init: notes the root directory (files are read
 * again only under it) and makes sure no credentials load is half done
 * at fork. */
void ts_cred_init(void (*log)(int level, const char *msg));
/* In a process made by a fork libc did not see (forkwatch.h). */
void ts_cred_child_reset(void);

/* Whose chain verification messages speak of ("server", or "client"
 * while tls_verify.c judges the client of an accept rule). */
extern __thread const char *ts_verify_peer;

/* After a handshake (tls_verify.c): the negotiated session against the
 * floor the rule's priority was held to (resumed: a TLS 1.3 PSK is fine);
 * the validated path's n certificates against the CRLs; CRL i's currency
 * now. 0, or -1 with the reason. */
int ts_cred_session_floor(gnutls_session_t s, const struct ts_cred *c,
                          bool resumed, char *why, size_t len);
int ts_cred_check_crls(struct ts_cred *c, gnutls_x509_crt_t *path, unsigned n,
                       char *why, size_t len);
int ts_crl_times(const struct ts_crl *e, size_t i, const char *file,
                 time_t now, char *why, size_t len);

/* For reason texts and comparisons. */
void ts_x509_utc(time_t t, char *buf, size_t len);
bool ts_x509_datum_eq(const gnutls_datum_t *a, const gnutls_datum_t *b);
/* The subject of crt ("CN=x,O=y"); "?" if none. */
void ts_x509_subject(gnutls_x509_crt_t crt, char *buf, size_t len);

#endif
