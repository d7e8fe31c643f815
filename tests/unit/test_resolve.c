/* The address -> name map: normalisation, most recent wins, the calling
 * thread's own resolution preferred, names a rule matches (pinned) win and
 * are never forgotten into "unknown", the bounds, sharing across fork, and
 * concurrent use. Table-driven: each case is records, then one lookup. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "resolve.h"
#include "check.h"

static const struct {
	const char *in, *out; /* out NULL: not remembered */
} norm_cases[] = {
	{"Example.COM", "example.com"},
	{"example.com.", "example.com"},
	{"localhost", "localhost"},
	{"a", "a"},
	{".", NULL},
	{"", NULL},
	{"127.0.0.1", NULL},
	{"::1", NULL},
	{"fe80::1%eth0", NULL},
	{"bad name", NULL},
	{"tab\tname", NULL},
	{"caf\xc3\xa9.example", NULL},
};

static void test_normalise(void)
{
	char out[TS_RESOLVE_NAME_MAX], big[300];

	for (size_t i = 0; i < sizeof norm_cases / sizeof *norm_cases; i++) {
		bool ok = ts_resolve_normalise(norm_cases[i].in, out,
		                               sizeof out);
		if (norm_cases[i].out)
			CHECK(ok && !strcmp(out, norm_cases[i].out),
			      "'%s' -> '%s'", norm_cases[i].in,
			      ok ? out : "(rejected)");
		else
			CHECK(!ok, "'%s' should be rejected", norm_cases[i].in);
	}
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CHECK(!ts_resolve_normalise(big, out, sizeof out), "too long");
	CHECK(!ts_resolve_normalise(NULL, out, sizeof out), "NULL");
}

struct rec {
	const char *name;
	const char *addr; /* v4 or v6 text */
	unsigned long tid;
	bool pinned;
};

static const struct {
	const char *what;
	struct rec recs[4];
	const char *addr;
	unsigned long tid;
	const char *want; /* NULL: not found */
} cases[] = {
	{"unknown address", {{0}}, "192.0.2.1", 1, NULL},
	{"one name", {{"A.example.", "192.0.2.1", 1, false}}, "192.0.2.1", 1,
	 "a.example"},
	{"another thread's name is used",
	 {{"a.example", "192.0.2.1", 2, false}}, "192.0.2.1", 1, "a.example"},
	{"most recent wins",
	 {{"a.example", "192.0.2.1", 1, false}, {"b.example", "192.0.2.1", 1, false}},
	 "192.0.2.1", 1, "b.example"},
	{"same thread preferred over a newer other thread",
	 {{"mine.example", "192.0.2.1", 1, false}, {"theirs.example", "192.0.2.1", 2, false}},
	 "192.0.2.1", 1, "mine.example"},
	{"other thread: the newest",
	 {{"mine.example", "192.0.2.1", 1, false}, {"theirs.example", "192.0.2.1", 2, false}},
	 "192.0.2.1", 3, "theirs.example"},
	{"v6", {{"six.example", "2001:db8::1", 1, false}}, "2001:db8::1", 1,
	 "six.example"},
	{"v4 and v6 apart", {{"six.example", "::ffff:192.0.2.1", 1, false}},
	 "192.0.2.1", 1, NULL},
	{"IP literals teach nothing", {{"192.0.2.1", "192.0.2.1", 1, false}},
	 "192.0.2.1", 1, NULL},
	{"a later IP literal hides an older name (the host's own name)",
	 {{"vm", "127.0.0.1", 1, false}, {"127.0.0.1", "127.0.0.1", 1, false}},
	 "127.0.0.1", 1, NULL},
	{"a later name wins over an older IP literal",
	 {{"127.0.0.1", "127.0.0.1", 1, false}, {"api.example", "127.0.0.1", 1, false}},
	 "127.0.0.1", 1, "api.example"},
	{"other addresses untouched",
	 {{"a.example", "192.0.2.1", 1, false}, {"b.example", "192.0.2.2", 1, false}},
	 "192.0.2.1", 1, "a.example"},
	/* pinned: a name a host rule matches */
	{"a rule's name wins over a newer other name",
	 {{"rule.example", "192.0.2.1", 1, true},
	  {"other.example", "192.0.2.1", 1, false}},
	 "192.0.2.1", 1, "rule.example"},
	{"a rule's name wins over a newer IP literal",
	 {{"rule.example", "192.0.2.1", 1, true}, {"192.0.2.1", "192.0.2.1", 1, false}},
	 "192.0.2.1", 1, "rule.example"},
	{"among rule names, the calling thread's",
	 {{"mine.example", "192.0.2.1", 1, true},
	  {"theirs.example", "192.0.2.1", 2, true}},
	 "192.0.2.1", 1, "mine.example"},
};

static int parse_addr(const char *s, uint8_t *a)
{
	if (inet_pton(AF_INET, s, a) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, a) == 1)
		return AF_INET6;
	return -1;
}

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char out[TS_RESOLVE_NAME_MAX];
		uint8_t a[16];
		ts_resolve_clear();
		for (size_t j = 0; j < 4 && cases[i].recs[j].name; j++) {
			int fam = parse_addr(cases[i].recs[j].addr, a);
			ts_resolve_record(cases[i].recs[j].name, fam, a,
			                  cases[i].recs[j].tid,
			                  cases[i].recs[j].pinned);
		}
		int fam = parse_addr(cases[i].addr, a);
		bool ok = ts_resolve_lookup(fam, a, cases[i].tid, out,
		                            sizeof out) == TS_RESOLVE_FOUND;
		if (cases[i].want)
			CHECK(ok && !strcmp(out, cases[i].want), "%s: got %s",
			      cases[i].what, ok ? out : "(none)");
		else
			CHECK(!ok, "%s: got %s", cases[i].what, out);
	}
}

/* The ring holds TS_RESOLVE_SLOTS answers; older ones fall out. */
static void test_bound(void)
{
	char name[64], out[TS_RESOLVE_NAME_MAX];
	uint8_t a[4] = {10, 0, 0, 0};

	ts_resolve_clear();
	for (unsigned i = 0; i < TS_RESOLVE_SLOTS + 10; i++) {
		a[2] = (uint8_t)(i >> 8);
		a[3] = (uint8_t)i;
		snprintf(name, sizeof name, "h%u.example", i);
		ts_resolve_record(name, AF_INET, a, 1, false);
	}
	a[2] = 0;
	a[3] = 0;
	CHECK(ts_resolve_lookup(AF_INET, a, 1, out, sizeof out) ==
	              TS_RESOLVE_NONE,
	      "the oldest answer should be gone, got %s", out);
	unsigned last = TS_RESOLVE_SLOTS + 9;
	a[2] = (uint8_t)(last >> 8);
	a[3] = (uint8_t)last;
	CHECK(ts_resolve_lookup(AF_INET, a, 1, out, sizeof out) ==
	                      TS_RESOLVE_FOUND &&
	              !strcmp(out, "h265.example"),
	      "the newest answer should be there");
	/* A thread re-resolving one address refreshes in place. */
	ts_resolve_clear();
	uint8_t b[4] = {192, 0, 2, 9};
	ts_resolve_record("keep.example", AF_INET, b, 7, false);
	for (unsigned i = 0; i < 3 * TS_RESOLVE_SLOTS; i++)
		ts_resolve_record("busy.example", AF_INET, a, 1, false);
	CHECK(ts_resolve_lookup(AF_INET, b, 7, out, sizeof out) ==
	                      TS_RESOLVE_FOUND &&
	              !strcmp(out, "keep.example"),
	      "one busy thread pushed another's answer out");
	/* A short output buffer is never a truncated name. */
	CHECK(ts_resolve_lookup(AF_INET, b, 7, out, 4) != TS_RESOLVE_FOUND,
	      "truncated");
}

/* A rule's name survives any number of other lookups; when its own store
 * overflows, its address is marked lost, never unknown. */
static void test_pinned(void)
{
	char name[64], out[TS_RESOLVE_NAME_MAX];
	uint8_t r[4] = {203, 0, 113, 7}, a[4] = {10, 0, 0, 0};

	ts_resolve_clear();
	ts_resolve_record("rule.example", AF_INET, r, 1, true);
	for (unsigned i = 0; i < 4 * TS_RESOLVE_SLOTS; i++) {
		a[2] = (uint8_t)(i >> 8);
		a[3] = (uint8_t)i;
		snprintf(name, sizeof name, "h%u.example", i);
		ts_resolve_record(name, AF_INET, a, 1, false);
	}
	CHECK(ts_resolve_lookup(AF_INET, r, 1, out, sizeof out) ==
	                      TS_RESOLVE_FOUND &&
	              !strcmp(out, "rule.example"),
	      "a rule's name was pushed out by other lookups");

	for (unsigned i = 0; i < TS_RESOLVE_PINNED_SLOTS + 5; i++) {
		a[2] = (uint8_t)(i >> 8);
		a[3] = (uint8_t)i;
		snprintf(name, sizeof name, "p%u.rule.example", i);
		ts_resolve_record(name, AF_INET, a, 2, true);
	}
	CHECK(ts_resolve_lookup(AF_INET, r, 1, out, sizeof out) ==
	              TS_RESOLVE_LOST,
	      "an overflowed rule name must read as lost");
	/* Even when another name of the address is still known. */
	ts_resolve_record("other.example", AF_INET, r, 1, false);
	CHECK(ts_resolve_lookup(AF_INET, r, 1, out, sizeof out) ==
	              TS_RESOLVE_LOST,
	      "a lost rule name is not replaced by another name");
	/* Resolving it again brings it back. */
	ts_resolve_record("rule.example", AF_INET, r, 1, true);
	CHECK(ts_resolve_lookup(AF_INET, r, 1, out, sizeof out) ==
	              TS_RESOLVE_FOUND);
}

/* Made before a fork, the map is one for parent and child: a name the
 * child resolved is the parent's to use (lynx, links). */
static void test_fork(void)
{
	char out[TS_RESOLVE_NAME_MAX];
	uint8_t a[4] = {198, 51, 100, 77};

	ts_resolve_clear();
	pid_t pid = fork();
	if (pid == 0) {
		ts_resolve_record("child.example", AF_INET, a, 99, true);
		_exit(0);
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && st == 0);
	CHECK(ts_resolve_lookup(AF_INET, a, 1, out, sizeof out) ==
	                      TS_RESOLVE_FOUND &&
	              !strcmp(out, "child.example"),
	      "the parent does not see its child's lookup");
}

static void *hammer(void *arg)
{
	unsigned long tid = (unsigned long)(size_t)arg;
	uint8_t a[4] = {198, 51, 100, (uint8_t)tid};
	char name[32], out[TS_RESOLVE_NAME_MAX];
	int bad = 0;

	snprintf(name, sizeof name, "t%lu.example", tid);
	for (int i = 0; i < 20000; i++) {
		ts_resolve_record(name, AF_INET, a, tid, tid & 1);
		if (ts_resolve_lookup(AF_INET, a, tid, out, sizeof out) !=
		            TS_RESOLVE_FOUND ||
		    strcmp(out, name))
			bad++;
	}
	return (void *)(size_t)bad;
}

static void test_threads(void)
{
	pthread_t t[4];
	ts_resolve_clear();
	for (size_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, hammer, (void *)(i + 1));
	for (size_t i = 0; i < 4; i++) {
		void *bad;
		pthread_join(t[i], &bad);
		CHECK(bad == NULL, "thread %zu saw %zu wrong answers", i,
		      (size_t)bad);
	}
}

int main(void)
{
	test_normalise();
	test_cases();
	test_bound();
	test_pinned();
	test_fork();
	test_threads();
	return check_summary();
}
