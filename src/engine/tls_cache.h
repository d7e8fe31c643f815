/* TLS session resumption cache of the engine (src/engine/tls_cache.c).
 *
 * One per process, bounded (LRU), shared by every thread. A cached session
 * is used at most once: taking it removes it. GnuTLS does not verify the
 * server's certificate again when it resumes a session, so an entry is
 * keyed on everything verification depends on — the rule, a digest of the
 * trust material in use (CA and CRL bytes, which change when those files
 * are re-read), the pins, its client identity, version range, ALPN list,
 * the priority string, the SNI, the name verified, the server's address
 * and port. GnuTLS does not verify a resumed session, so an entry is also
 * never offered once a certificate of the chain it was verified with has
 * expired (nor a must-staple server's past its stapled response's next
 * update): the time in `until`. A session obtained while verifying one name can never
 * be offered for another. When the policy grows a field that verification
 * or the session's identity depends on, it must be added in key_pre().
 *
 * Only libtlsshim-engine.so uses this; it links GnuTLS. It owns the
 * session's user pointer (gnutls_session_set_ptr) and its
 * NEW_SESSION_TICKET handshake hook. */
#ifndef TS_TLS_CACHE_H
#define TS_TLS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "engine.h"

#define TS_TLS_CACHE_MAX 256  /* sessions kept per process */
#define TS_TLS_CACHE_PER_KEY 4 /* per key: servers send several tickets */

struct ts_tls_cache_key {
	unsigned char h[32];   /* SHA-256 of everything listed above */
	unsigned char pre[32]; /* the same without the peer address */
	int fd;                /* where the peer address is read */
	bool pending;          /* the peer address is still to be added */
	bool valid;            /* false: this session is never cached */
	/* Sessions stored under this key are not offered from this time on
	 * (set by the engine after verifying; carried over on resumption);
	 * 0: no limit. */
	time_t until;
};

/* Set up session s (created by the engine for p) for resumption: the
 * key's parts known now go into k, which must live as long as s; the
 * tickets the server sends later are captured. Failure is never fatal:
 * the handshake is then simply a full one. */
void ts_tls_cache_attach(gnutls_session_t s, struct ts_tls_cache_key *k,
                         const struct ts_tls_params *p,
                         const unsigned char trust[32]);

/* Before each handshake step (cheap after the first): once the TCP
 * connection is up (an asynchronous connect may still be in progress at
 * create time), complete the key with the server's address and offer a
 * cached session for it, if any (it is removed from the cache). */
void ts_tls_cache_begin(gnutls_session_t s);

/* The handshake of s verified: keep a TLS 1.2 session (TLS 1.3 tickets
 * arrive later and are taken by the hook ts_tls_cache_attach() set). */
void ts_tls_cache_handshake_done(gnutls_session_t s);

/* For tests. */
bool ts_tls_cache_key_compute(struct ts_tls_cache_key *k,
                              const struct ts_tls_params *p,
                              const void *peer, size_t peerlen,
                              const unsigned char trust[32]);
void ts_tls_cache_put(const struct ts_tls_cache_key *k,
                      const gnutls_datum_t *data);
/* The most recent session for k still within its `until`, removed from
 * the cache (and those past it dropped); the caller frees out->data with
 * gnutls_free; *until (may be NULL) gets its limit. false when there is
 * none. */
bool ts_tls_cache_take(const struct ts_tls_cache_key *k,
                       gnutls_datum_t *out, time_t *until);
size_t ts_tls_cache_count(void);
void ts_tls_cache_clear(void);

/* In a process made by a fork libc did not see (forkwatch.h). */
void ts_tls_cache_child_reset(void);

#endif
