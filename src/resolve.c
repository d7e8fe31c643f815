/* The address -> name cache (see resolve.h). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "resolve.h"

struct slot {
	uint64_t seq; /* 0: empty; larger is newer */
	unsigned long tid;
	int family;
	uint8_t addr[16];
	char name[TS_RESOLVE_NAME_MAX];
};

static struct slot slots[TS_RESOLVE_SLOTS];
static uint64_t next_seq = 1;
static size_t next_slot; /* the ring's oldest entry */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A fork while another thread holds the lock must not leave the child's
 * copy locked forever: the lock is taken around fork. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&lock);
}

static void fork_release(void)
{
	pthread_mutex_unlock(&lock);
}

static void register_atfork(void)
{
	pthread_atfork(fork_prepare, fork_release, fork_release);
}

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

bool ts_resolve_normalise(const char *name, char *out, size_t outlen)
{
	uint8_t buf[16];
	size_t n;

	if (!name || !outlen)
		return false;
	n = strlen(name);
	if (n && name[n - 1] == '.')
		n--;
	if (!n || n >= outlen || n >= TS_RESOLVE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f)
			return false;
		out[i] = c;
	}
	out[n] = '\0';
	/* getaddrinfo("192.0.2.1") teaches no name. */
	if (inet_pton(AF_INET, out, buf) == 1 ||
	    inet_pton(AF_INET6, out, buf) == 1 || strchr(out, ':'))
		return false;
	return true;
}

void ts_resolve_record(const char *name, int family, const void *addr,
                       unsigned long tid)
{
	char norm[TS_RESOLVE_NAME_MAX];
	size_t al = addr_len(family);
	struct slot *s = NULL;

	uint8_t lit[16];

	if (!al || !addr || !name)
		return;
	if (!ts_resolve_normalise(name, norm, sizeof norm)) {
		/* The program resolved an IP literal: that is the name it
		 * means for this address now. Recorded as an empty name, it
		 * hides older names (a library resolving the host's own name
		 * to 127.0.0.1 must not rename connections to 127.0.0.1). */
		if (inet_pton(AF_INET, name, lit) != 1 &&
		    inet_pton(AF_INET6, name, lit) != 1)
			return;
		norm[0] = '\0';
	}
	pthread_once(&atfork_once, register_atfork);
	pthread_mutex_lock(&lock);
	/* Same thread, same address: refresh that entry in place, so one
	 * busy thread does not push everyone else's answers out. */
	for (size_t i = 0; i < TS_RESOLVE_SLOTS; i++) {
		struct slot *c = &slots[i];
		if (c->seq && c->tid == tid && c->family == family &&
		    !memcmp(c->addr, addr, al)) {
			s = c;
			break;
		}
	}
	if (!s) {
		s = &slots[next_slot];
		next_slot = (next_slot + 1) % TS_RESOLVE_SLOTS;
	}
	s->seq = next_seq++;
	s->tid = tid;
	s->family = family;
	memset(s->addr, 0, sizeof s->addr);
	memcpy(s->addr, addr, al);
	memcpy(s->name, norm, strlen(norm) + 1);
	pthread_mutex_unlock(&lock);
}

bool ts_resolve_lookup(int family, const void *addr, unsigned long tid,
                       char *out, size_t outlen)
{
	size_t al = addr_len(family);
	const struct slot *mine = NULL, *any = NULL, *best;
	bool found = false;

	if (!al || !addr || !outlen)
		return false;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < TS_RESOLVE_SLOTS; i++) {
		const struct slot *c = &slots[i];
		if (!c->seq || c->family != family ||
		    memcmp(c->addr, addr, al))
			continue;
		if (!any || c->seq > any->seq)
			any = c;
		if (c->tid == tid && (!mine || c->seq > mine->seq))
			mine = c;
	}
	best = mine ? mine : any;
	if (best && best->name[0] && strlen(best->name) < outlen) {
		memcpy(out, best->name, strlen(best->name) + 1);
		found = true;
	}
	pthread_mutex_unlock(&lock);
	return found;
}

void ts_resolve_clear(void)
{
	pthread_mutex_lock(&lock);
	memset(slots, 0, sizeof slots);
	next_slot = 0;
	next_seq = 1;
	pthread_mutex_unlock(&lock);
}
