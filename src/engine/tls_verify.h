/* What the engine (src/tls_verify.c) judges beyond GnuTLS's own chain and
 * name checks (docs/verification.md):
 *  - a rule's credentials: trust anchors, CRLs, priority (with the version
 *    range and the cipher floor), re-read when ca-file or crl-file change;
 *  - after every handshake, before the program's first byte: the session's
 *    floor, the validated path (leaf -> issuers -> trust anchor, as GnuTLS
 *    verified it), revocation against the CRLs, stapled OCSP responses and
 *    must-staple, and pins, all on that path; for a resumed session, what
 *    time changes (the resumption key binds everything else).
 *
 * Only libtlsshim-engine.so uses this; it links GnuTLS. */
#ifndef TS_TLS_VERIFY_H
#define TS_TLS_VERIFY_H

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
/* Links and certificates of one validated path. */
#define TS_PATH_MAX 16

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
	 * against (under tls_verify.c's memo lock): verified once, not per
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
void ts_cred_init(void);
/* In a process made by a fork libc did not see (forkwatch.h). */
void ts_cred_child_reset(void);

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

#endif
