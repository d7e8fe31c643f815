/* Resolver hooks: learn which names the program resolved to which
 * addresses (see resolve.h). Each returns exactly what libc returned —
 * results, return codes, errno and h_errno — and only records the answer
 * when a policy is loaded.
 *
 * The real functions are bound here rather than in the shared ts_real
 * table: they are called only from these doors, and keeping them local
 * keeps the resolver hooks one self-contained file. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conn.h"
#include "hooks.h"
#include "resolve.h"

#define RESOLVE_FUNCS(X)                                                   \
	X(int, getaddrinfo, (const char *, const char *,                   \
	                     const struct addrinfo *, struct addrinfo **)) \
	X(struct hostent *, gethostbyname, (const char *))                 \
	X(struct hostent *, gethostbyname2, (const char *, int))           \
	X(int, gethostbyname_r, (const char *, struct hostent *, char *,   \
	                         size_t, struct hostent **, int *))        \
	X(int, gethostbyname2_r, (const char *, int, struct hostent *,     \
	                          char *, size_t, struct hostent **, int *))

static struct {
#define FIELD(ret, name, args) ret(*name) args;
	RESOLVE_FUNCS(FIELD)
#undef FIELD
} real_res;
static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

static void bind_all(void)
{
#define BIND(ret, name, args)                                              \
	real_res.name = (ret(*) args)dlsym(RTLD_NEXT, #name);
	RESOLVE_FUNCS(BIND)
#undef BIND
}

static void bind_res(void)
{
	pthread_once(&bind_once, bind_all);
}

/* Recording is for matched connects: with no policy, nothing is kept. */
static bool learning(void)
{
	ts_state_init();
	return ts_state.policy != NULL;
}

/* The machine's own host name is looked up by libraries that want their
 * FQDN (libldap, Kerberos, mailers), not to name a destination: it often
 * maps to a loopback address and would shadow what the program meant. */
static char self_name[256];
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void self_init(void)
{
	if (gethostname(self_name, sizeof self_name - 1) < 0)
		self_name[0] = '\0';
}

static bool is_self(const char *name)
{
	pthread_once(&self_once, self_init);
	size_t n = strlen(name), m = strlen(self_name);
	if (n && name[n - 1] == '.')
		n--;
	return m && n == m && !strncasecmp(name, self_name, m);
}

/* Names a host rule matches are kept apart, never to be forgotten into
 * "no rule matches" (resolve.h). */
static bool pinned(const char *name)
{
	char norm[TS_RESOLVE_NAME_MAX];
	return ts_resolve_normalise(name, norm, sizeof norm) &&
	       ts_policy_names_host(ts_state.policy, norm);
}

/* Every address, v4-mapped ones as the IPv4 address the connect will
 * name (the one address normaliser, policy.h). */
static void learn_addrinfo(const char *node, const struct addrinfo *ai)
{
	unsigned long tid = (unsigned long)gettid();
	bool pin = pinned(node);
	struct ts_dest d;

	for (; ai; ai = ai->ai_next)
		if (ai->ai_addr &&
		    ts_dest_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &d) == 0)
			ts_resolve_record(node, d.family, d.addr, tid, pin);
}

static void learn_hostent(const char *name, const struct hostent *h)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0,
	                                   0, 0, 0xff, 0xff};
	unsigned long tid = (unsigned long)gettid();
	bool pin = pinned(name);

	if (!h || !h->h_addr_list)
		return;
	if (h->h_addrtype != AF_INET && h->h_addrtype != AF_INET6)
		return;
	for (char **a = h->h_addr_list; *a; a++) {
		/* RES_USE_INET6 answers IPv4 hosts v4-mapped. */
		if (h->h_addrtype == AF_INET6 && h->h_length == 16 &&
		    !memcmp(*a, mapped, 12))
			ts_resolve_record(name, AF_INET, *a + 12, tid, pin);
		else
			ts_resolve_record(name, h->h_addrtype, *a, tid, pin);
	}
}

/* libc's getaddrinfo, for the preload's own lookups (hook_connect.c):
 * what it resolves for itself teaches nothing. */
int ts_real_getaddrinfo(const char *node, const char *service,
                        const struct addrinfo *hints, struct addrinfo **res)
{
	bind_res();
	if (!real_res.getaddrinfo)
		return EAI_SYSTEM;
	return real_res.getaddrinfo(node, service, hints, res);
}

TS_EXPORT int getaddrinfo(const char *node, const char *service,
                          const struct addrinfo *hints,
                          struct addrinfo **res)
{
	bind_res();
	if (!real_res.getaddrinfo)
		return EAI_SYSTEM;
	int rc = real_res.getaddrinfo(node, service, hints, res);
	if (rc == 0 && node && res && !(hints && (hints->ai_flags & AI_PASSIVE)) &&
	    learning() && !is_self(node)) {
		int saved = errno;
		learn_addrinfo(node, *res);
		errno = saved;
	}
	return rc;
}

/* What a gethostbyname* answer h teaches, when a policy is loaded and
 * name is not the machine's own; errno stays libc's. */
static void learned(const char *name, const struct hostent *h)
{
	if (h && name && learning() && !is_self(name)) {
		int saved = errno;
		learn_hostent(name, h);
		errno = saved;
	}
}

TS_EXPORT struct hostent *gethostbyname(const char *name)
{
	bind_res();
	if (!real_res.gethostbyname)
		return NULL;
	struct hostent *h = real_res.gethostbyname(name);
	learned(name, h);
	return h;
}

TS_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
	bind_res();
	if (!real_res.gethostbyname2)
		return NULL;
	struct hostent *h = real_res.gethostbyname2(name, af);
	learned(name, h);
	return h;
}

TS_EXPORT int gethostbyname_r(const char *name, struct hostent *ret,
                              char *buf, size_t buflen,
                              struct hostent **result, int *h_errnop)
{
	bind_res();
	if (!real_res.gethostbyname_r)
		return ENOSYS;
	int rc = real_res.gethostbyname_r(name, ret, buf, buflen, result,
	                                  h_errnop);
	learned(name, rc == 0 && result ? *result : NULL);
	return rc;
}

TS_EXPORT int gethostbyname2_r(const char *name, int af,
                               struct hostent *ret, char *buf,
                               size_t buflen, struct hostent **result,
                               int *h_errnop)
{
	bind_res();
	if (!real_res.gethostbyname2_r)
		return ENOSYS;
	int rc = real_res.gethostbyname2_r(name, af, ret, buf, buflen,
	                                   result, h_errnop);
	learned(name, rc == 0 && result ? *result : NULL);
	return rc;
}
