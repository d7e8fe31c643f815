/* The resumption cache: keys separate everything verification depends on;
 * a session is taken once; the cache is bounded and evicts the oldest; a
 * forked child starts empty. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tls_cache.h"
#include "check.h"

/* Digests of the trust material in use (CA and CRL bytes). */
static const unsigned char trust1[32] = {1};
static const unsigned char trust2[32] = {2};
static const unsigned char peer_a[] = {0, 2, 127, 0, 0, 1, 0x1f, 0x90};
static const unsigned char peer_b[] = {0, 2, 127, 0, 0, 1, 0x1f, 0x91};

static struct ts_tls_cache_key key(const struct ts_rule *r, const char *sni,
                                   const char *name, const void *peer,
                                   size_t peerlen, const unsigned char *pr)
{
	struct ts_tls_params p = {.fd = -1, .rule = r, .sni = sni,
	                          .verify_name = name};
	struct ts_tls_cache_key k;
	CHECK(ts_tls_cache_key_compute(&k, &p, peer, peerlen, pr));
	return k;
}

static bool same(struct ts_tls_cache_key a, struct ts_tls_cache_key b)
{
	return memcmp(a.h, b.h, sizeof a.h) == 0;
}

static gnutls_datum_t blob(unsigned char v)
{
	static unsigned char b[4];
	memset(b, v, sizeof b);
	return (gnutls_datum_t){b, sizeof b};
}

int main(void)
{
	struct ts_rule r1 = {.name = "one", .sni = "a.test",
	                     .ca_file = "/ca.pem",
	                     .ca = {(unsigned char *)"PEM1", 4}};
	struct ts_rule r2 = r1; /* same contents, another rule */
	struct ts_rule r3 = r1;
	r3.priority = "SECURE256"; /* another priority string */
	struct ts_rule r4 = r1;
	r4.ca_file = NULL; /* the system store */
	struct ts_rule r5 = r1;
	r5.max_version = 12; /* another version range */

	struct ts_tls_cache_key base =
		key(&r1, "a.test", "a.test", peer_a, sizeof peer_a, trust1);
	/* Stable. */
	CHECK(same(base, key(&r1, "a.test", "a.test", peer_a, sizeof peer_a,
	                     trust1)));
	/* Every input separates. */
	CHECK(!same(base, key(&r1, "a.test", "b.test", peer_a, sizeof peer_a,
	                      trust1)));
	CHECK(!same(base, key(&r1, "b.test", "a.test", peer_a, sizeof peer_a,
	                      trust1)));
	CHECK(!same(base, key(&r1, NULL, "a.test", peer_a, sizeof peer_a,
	                      trust1)));
	CHECK(!same(base, key(&r1, "", "a.test", peer_a, sizeof peer_a,
	                      trust1)));
	CHECK(!same(base, key(&r1, "a.test", "a.test", peer_b, sizeof peer_b,
	                      trust1)));
	CHECK(!same(base, key(&r2, "a.test", "a.test", peer_a, sizeof peer_a,
	                      trust1)));
	CHECK(!same(key(&r2, "a.test", "a.test", peer_a, sizeof peer_a, trust1),
	            key(&r3, "a.test", "a.test", peer_a, sizeof peer_a,
	                trust1)));
	CHECK(!same(key(&r2, "a.test", "a.test", peer_a, sizeof peer_a, trust1),
	            key(&r4, "a.test", "a.test", peer_a, sizeof peer_a,
	                trust1)));
	CHECK(!same(key(&r2, "a.test", "a.test", peer_a, sizeof peer_a, trust1),
	            key(&r5, "a.test", "a.test", peer_a, sizeof peer_a,
	                trust1)));
	/* Trust material re-read from changed files: another key. */
	CHECK(!same(base, key(&r1, "a.test", "a.test", peer_a, sizeof peer_a,
	                      trust2)));
	/* Field boundaries: ("a.tes", "ta.test") is not ("a.test", "a.test"). */
	CHECK(!same(base, key(&r1, "a.tes", "ta.test", peer_a, sizeof peer_a,
	                      trust1)));

	/* A session goes back to its own key only, and only once. */
	struct ts_tls_cache_key other =
		key(&r1, "a.test", "b.test", peer_a, sizeof peer_a, trust1);
	gnutls_datum_t d = blob(1), out;
	ts_tls_cache_put(&base, &d);
	CHECK(ts_tls_cache_count() == 1);
	CHECK(!ts_tls_cache_take(&other, &out, NULL));
	CHECK(ts_tls_cache_take(&base, &out, NULL));
	CHECK(out.size == 4 && out.data[0] == 1);
	gnutls_free(out.data);
	CHECK(!ts_tls_cache_take(&base, &out, NULL));
	CHECK(ts_tls_cache_count() == 0);

	/* Most recent first. */
	d = blob(2);
	ts_tls_cache_put(&base, &d);
	d = blob(3);
	ts_tls_cache_put(&base, &d);
	CHECK(ts_tls_cache_take(&base, &out, NULL) && out.data[0] == 3);
	gnutls_free(out.data);
	CHECK(ts_tls_cache_take(&base, &out, NULL) && out.data[0] == 2);
	gnutls_free(out.data);

	/* Bounded per key: the oldest of the key goes, others stay. */
	d = blob(9);
	ts_tls_cache_put(&other, &d);
	for (int i = 0; i < TS_TLS_CACHE_PER_KEY + 3; i++) {
		d = blob((unsigned char)i);
		ts_tls_cache_put(&base, &d);
	}
	CHECK(ts_tls_cache_count() == TS_TLS_CACHE_PER_KEY + 1);
	for (int i = TS_TLS_CACHE_PER_KEY + 2; i >= 3; i--) {
		CHECK(ts_tls_cache_take(&base, &out, NULL) && out.data[0] == i);
		gnutls_free(out.data);
	}
	CHECK(!ts_tls_cache_take(&base, &out, NULL));
	CHECK(ts_tls_cache_take(&other, &out, NULL) && out.data[0] == 9);
	gnutls_free(out.data);

	/* Bounded in all: the oldest goes. */
	static struct ts_rule many[TS_TLS_CACHE_MAX + 1];
	struct ts_tls_cache_key first =
		key(&many[0], "x", "x", peer_a, sizeof peer_a, trust1);
	for (int i = 0; i <= TS_TLS_CACHE_MAX; i++) {
		struct ts_tls_cache_key k =
			key(&many[i], "x", "x", peer_a, sizeof peer_a, trust1);
		d = blob((unsigned char)i);
		ts_tls_cache_put(&k, &d);
	}
	CHECK(ts_tls_cache_count() == TS_TLS_CACHE_MAX);
	CHECK(!ts_tls_cache_take(&first, &out, NULL));
	ts_tls_cache_clear();
	CHECK(ts_tls_cache_count() == 0);

	/* A key that could not be computed never matches anything. */
	struct ts_tls_cache_key bad = {.valid = false};
	ts_tls_cache_put(&bad, &d);
	CHECK(ts_tls_cache_count() == 0);
	CHECK(!ts_tls_cache_take(&bad, &out, NULL));

	/* A session is offered only within its chain's validity: an entry
	 * past its `until` is dropped, not taken; one put already past it is
	 * not kept; the limit comes back with the session. */
	time_t until = 0;
	struct ts_tls_cache_key live = base, dead = base;
	live.until = time(NULL) + 3600;
	dead.until = time(NULL) + 1;
	d = blob(5);
	ts_tls_cache_put(&live, &d);
	d = blob(6);
	ts_tls_cache_put(&dead, &d);
	CHECK(ts_tls_cache_count() == 2);
	sleep(1); /* time(NULL) is now at least dead.until */
	CHECK(ts_tls_cache_take(&base, &out, &until) && out.data[0] == 5 &&
	      until == live.until);
	gnutls_free(out.data);
	CHECK(ts_tls_cache_count() == 0);
	ts_tls_cache_put(&dead, &d);
	CHECK(ts_tls_cache_count() == 0);

	/* A forked child starts empty: a ticket is used by one process. */
	d = blob(7);
	ts_tls_cache_put(&base, &d);
	pid_t pid = fork();
	if (pid == 0)
		_exit(ts_tls_cache_count() == 0 &&
		              !ts_tls_cache_take(&base, &out, NULL)
		          ? 0
		          : 1);
	int st = -1;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	      WEXITSTATUS(st) == 0);
	CHECK(ts_tls_cache_take(&base, &out, NULL) && out.data[0] == 7);
	gnutls_free(out.data);

	return check_summary();
}
