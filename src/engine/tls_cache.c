/* TLS session resumption cache (see tls_cache.h).
 *
 * A doubly linked list, most recently stored first, of at most
 * TS_TLS_CACHE_MAX sessions under one mutex. Lookups are a linear scan:
 * with 256 entries it costs far less than the handshake it saves, and it
 * keeps the code obviously right. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "policy.h"
#include "tls_cache.h"

struct entry {
	struct entry *prev, *next;
	unsigned char key[32];
	time_t until;        /* not offered from then on; 0: no limit */
	gnutls_datum_t data; /* gnutls_session_get_data2() output */
};

static struct entry *head, *tail;
static size_t count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void unlink_entry(struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		tail = e->prev;
	count--;
}

static void free_entry(struct entry *e)
{
	gnutls_free(e->data.data);
	free(e);
}

/* A forked child starts empty: a ticket is used once, by one process. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&lock);
}
static void fork_parent(void)
{
	pthread_mutex_unlock(&lock);
}
static void fork_child(void)
{
	struct entry *e = head, *n;
	for (; e; e = n) {
		n = e->next;
		free_entry(e);
	}
	head = tail = NULL;
	count = 0;
	pthread_mutex_unlock(&lock);
}
static void init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void ts_tls_cache_child_reset(void)
{
	/* After a fork libc did not see, a thread that held the lock may
	 * have left the list half changed: drop it unread (a leak in this
	 * process, not a crash). */
	pthread_mutex_init(&lock, NULL);
	head = tail = NULL;
	count = 0;
}

void ts_tls_cache_put(const struct ts_tls_cache_key *k,
                      const gnutls_datum_t *data)
{
	struct entry *e;

	if (!k->valid || !data->data || !data->size ||
	    (k->until && time(NULL) >= k->until))
		return;
	pthread_once(&once, init);
	e = calloc(1, sizeof *e);
	if (!e)
		return;
	e->data.data = gnutls_malloc(data->size);
	if (!e->data.data) {
		free(e);
		return;
	}
	memcpy(e->data.data, data->data, data->size);
	e->data.size = data->size;
	memcpy(e->key, k->h, sizeof e->key);
	e->until = k->until;

	pthread_mutex_lock(&lock);
	e->next = head;
	if (head)
		head->prev = e;
	head = e;
	if (!tail)
		tail = e;
	count++;
	/* Over the bound for this key (one busy destination must not push
	 * every other out), else over the whole bound: the oldest goes. */
	struct entry *old = NULL, *x;
	size_t same = 0;
	for (x = head; x; x = x->next)
		if (memcmp(x->key, e->key, sizeof e->key) == 0 &&
		    ++same > TS_TLS_CACHE_PER_KEY)
			old = x; /* the last, thus oldest, of its key */
	if (!old && count > TS_TLS_CACHE_MAX)
		old = tail;
	if (old)
		unlink_entry(old);
	pthread_mutex_unlock(&lock);
	if (old)
		free_entry(old);
}

bool ts_tls_cache_take(const struct ts_tls_cache_key *k,
                       gnutls_datum_t *out, time_t *until)
{
	struct entry *e, *next, *stale = NULL;
	time_t now = time(NULL);

	if (!k->valid)
		return false;
	pthread_mutex_lock(&lock);
	for (e = head; e; e = next) {
		next = e->next;
		if (memcmp(e->key, k->h, sizeof e->key))
			continue;
		unlink_entry(e);
		if (!e->until || now < e->until)
			break;
		e->next = stale; /* past its chain's validity: dropped */
		stale = e;
	}
	pthread_mutex_unlock(&lock);
	for (struct entry *x = stale, *n; x; x = n) {
		n = x->next;
		free_entry(x);
	}
	if (!e)
		return false;
	*out = e->data;
	if (until)
		*until = e->until;
	free(e);
	return true;
}

size_t ts_tls_cache_count(void)
{
	pthread_mutex_lock(&lock);
	size_t n = count;
	pthread_mutex_unlock(&lock);
	return n;
}

void ts_tls_cache_clear(void)
{
	pthread_mutex_lock(&lock);
	struct entry *e = head, *n;
	head = tail = NULL;
	count = 0;
	pthread_mutex_unlock(&lock);
	for (; e; e = n) {
		n = e->next;
		free_entry(e);
	}
}

/* Length-prefixed fields, so ("ab","c") and ("a","bc") differ. */
static int add(gnutls_hash_hd_t h, const void *p, size_t len)
{
	uint64_t l = p ? len : UINT64_MAX; /* NULL differs from "" */
	if (gnutls_hash(h, &l, sizeof l) < 0)
		return -1;
	return p && len ? gnutls_hash(h, p, len) : 0;
}
static int add_str(gnutls_hash_hd_t h, const char *s)
{
	return add(h, s, s ? strlen(s) : 0);
}

/* Everything but the peer address, into k->pre. */
static bool key_pre(struct ts_tls_cache_key *k, const struct ts_tls_params *p,
                    const unsigned char trust[32])
{
	static const char version[] = "tlsshim session key 3";
	const struct ts_rule *r = p->rule;
	gnutls_hash_hd_t h;
	int bad = 0;

	k->valid = false;
	k->until = 0;
	if (!r || !p->verify_name)
		return false;
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return false;
	bad |= add_str(h, version);
	bad |= add(h, &r, sizeof r); /* the rule: the policy is immutable */
	bad |= add_str(h, r->name);
	bad |= add_str(h, p->sni);
	bad |= add_str(h, p->verify_name);
	bad |= add_str(h, r->ca_file);
	bad |= add_str(h, r->crl_file);
	bad |= add(h, trust, 32); /* the CA and CRL bytes in use */
	bad |= add(h, r->pins, r->npins * sizeof *r->pins);
	bad |= add_str(h, r->client_cert); /* the client identity */
	bad |= add(h, r->cert.data, r->cert.len);
	bad |= add_str(h, r->client_key);
	bad |= add(h, &r->min_version, sizeof r->min_version);
	bad |= add(h, &r->max_version, sizeof r->max_version);
	for (size_t i = 0; i < r->nalpn; i++)
		bad |= add_str(h, r->alpn[i]);
	bad |= add(h, &r->nalpn, sizeof r->nalpn);
	bad |= add(h, &r->alpn_required, sizeof r->alpn_required);
	bad |= add_str(h, r->priority);
	gnutls_hash_deinit(h, k->pre);
	return bad == 0;
}

/* k->pre and the peer's family, address and port, into k->h. */
static bool key_final(struct ts_tls_cache_key *k, const void *peer,
                      size_t peerlen)
{
	gnutls_hash_hd_t h;
	int bad = 0;

	k->valid = false;
	if (!peer || !peerlen || gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return false;
	bad |= add(h, k->pre, sizeof k->pre);
	bad |= add(h, peer, peerlen);
	gnutls_hash_deinit(h, k->h);
	k->valid = bad == 0;
	return k->valid;
}

bool ts_tls_cache_key_compute(struct ts_tls_cache_key *k,
                              const struct ts_tls_params *p,
                              const void *peer, size_t peerlen,
                              const unsigned char trust[32])
{
	return key_pre(k, p, trust) && key_final(k, peer, peerlen);
}

/* The address and port alone: sin_zero and the like stay out. */
static size_t peer_bytes(int fd, unsigned char *out, size_t cap)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} u;
	socklen_t l = sizeof u;
	size_t n = 0;

	if (getpeername(fd, &u.sa, &l) < 0 || cap < 2 + 16 + 2 + 4)
		return 0;
	out[n++] = (unsigned char)(u.sa.sa_family >> 8);
	out[n++] = (unsigned char)u.sa.sa_family;
	if (u.sa.sa_family == AF_INET) {
		memcpy(out + n, &u.in.sin_addr, 4);
		n += 4;
		memcpy(out + n, &u.in.sin_port, 2);
		n += 2;
	} else if (u.sa.sa_family == AF_INET6) {
		memcpy(out + n, &u.in6.sin6_addr, 16);
		n += 16;
		memcpy(out + n, &u.in6.sin6_port, 2);
		n += 2;
		memcpy(out + n, &u.in6.sin6_scope_id, 4);
		n += 4;
	} else {
		return 0;
	}
	return n;
}

static int ticket_hook(gnutls_session_t s, unsigned htype, unsigned when,
                       unsigned incoming, const gnutls_datum_t *msg)
{
	struct ts_tls_cache_key *k = gnutls_session_get_ptr(s);
	gnutls_datum_t d = {0};

	/* TLS 1.2 tickets arrive inside the handshake: kept once it has
	 * verified (ts_tls_cache_handshake_done). */
	if (!k || !incoming || when != GNUTLS_HOOK_POST ||
	    htype != GNUTLS_HANDSHAKE_NEW_SESSION_TICKET ||
	    gnutls_protocol_get_version(s) != GNUTLS_TLS1_3)
		return 0;
	if (gnutls_session_get_data2(s, &d) == 0)
		ts_tls_cache_put(k, &d);
	gnutls_free(d.data);
	return 0;
}

void ts_tls_cache_attach(gnutls_session_t s, struct ts_tls_cache_key *k,
                         const struct ts_tls_params *p,
                         const unsigned char trust[32])
{
	k->pending = false;
	if (!key_pre(k, p, trust))
		return;
	k->fd = p->fd;
	k->pending = true;
	gnutls_session_set_ptr(s, k);
	gnutls_handshake_set_hook_function(s,
	                                   GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
	                                   GNUTLS_HOOK_POST, ticket_hook);
}

void ts_tls_cache_begin(gnutls_session_t s)
{
	struct ts_tls_cache_key *k = gnutls_session_get_ptr(s);
	unsigned char peer[32];
	gnutls_datum_t d;

	if (!k || !k->pending)
		return;
	k->pending = false;
	size_t n = peer_bytes(k->fd, peer, sizeof peer);
	if (!n || !key_final(k, peer, n))
		return;
	if (ts_tls_cache_take(k, &d, &k->until)) {
		/* A session the server no longer accepts costs nothing but
		 * the full handshake GnuTLS then does in the same
		 * connection. */
		(void)gnutls_session_set_data(s, d.data, d.size);
		gnutls_free(d.data);
	}
}

void ts_tls_cache_handshake_done(gnutls_session_t s)
{
	struct ts_tls_cache_key *k = gnutls_session_get_ptr(s);
	gnutls_datum_t d = {0};

	if (!k || !k->valid ||
	    gnutls_protocol_get_version(s) == GNUTLS_TLS1_3)
		return;
	if (gnutls_session_get_data2(s, &d) == 0)
		ts_tls_cache_put(k, &d);
	gnutls_free(d.data);
}
