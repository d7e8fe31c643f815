/* The address -> name map (see resolve.h). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "resolve.h"

#define BLOOM_BITS 8192

struct slot {
	uint64_t seq; /* 0: empty; larger is newer */
	unsigned long tid;
	int family;
	uint8_t addr[16];
	char name[TS_RESOLVE_NAME_MAX]; /* "": resolved as an IP literal */
};

struct map {
	pthread_mutex_t lock; /* process-shared, robust */
	uint64_t next_seq;
	size_t ring_next;     /* the ring's oldest entry */
	struct slot ring[TS_RESOLVE_SLOTS];
	struct slot pinned[TS_RESOLVE_PINNED_SLOTS];
	/* Addresses whose pinned name was pushed out. */
	uint8_t lost[BLOOM_BITS / 8];
};

static struct map *map;
static pthread_once_t map_once = PTHREAD_ONCE_INIT;
/* If no shared memory can be had: this process's own, still correct for
 * it, not shared with its children. */
static struct map private_map;

static void map_init(void)
{
	pthread_mutexattr_t a;
	struct map *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE,
	                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int saved = errno;

	if (m == MAP_FAILED)
		m = &private_map;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&m->lock, &a);
	pthread_mutexattr_destroy(&a);
	m->next_seq = 1;
	map = m;
	errno = saved;
}

void ts_resolve_init(void)
{
	pthread_once(&map_once, map_init);
}

/* A process that died holding the lock may have left one slot half
 * written: at worst a wrong name for one address, which verification
 * then refuses. */
static void lock(void)
{
	ts_resolve_init();
	if (pthread_mutex_lock(&map->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&map->lock);
}

static void unlock(void)
{
	pthread_mutex_unlock(&map->lock);
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

static bool same(const struct slot *s, int family, const void *addr,
                 size_t al)
{
	return s->seq && s->family == family && !memcmp(s->addr, addr, al);
}

static void bloom_bits(int family, const void *addr, size_t al,
                       unsigned *b1, unsigned *b2)
{
	/* FNV-1a over family and address; two bits from one hash. */
	uint64_t h = 1469598103934665603ull ^ (uint64_t)family;
	const uint8_t *p = addr;
	for (size_t i = 0; i < al; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	*b1 = (unsigned)(h % BLOOM_BITS);
	*b2 = (unsigned)((h >> 32) % BLOOM_BITS);
}

static void set_lost(const struct slot *s)
{
	unsigned b1, b2;
	bloom_bits(s->family, s->addr, addr_len(s->family), &b1, &b2);
	map->lost[b1 / 8] |= (uint8_t)(1u << (b1 % 8));
	map->lost[b2 / 8] |= (uint8_t)(1u << (b2 % 8));
}

static bool is_lost(int family, const void *addr, size_t al)
{
	unsigned b1, b2;
	bloom_bits(family, addr, al, &b1, &b2);
	return (map->lost[b1 / 8] & (1u << (b1 % 8))) &&
	       (map->lost[b2 / 8] & (1u << (b2 % 8)));
}

/* Where a record goes: the same thread's entry for the address (refreshed
 * in place, so one busy thread does not push everyone else's answers
 * out), else the oldest slot. */
static struct slot *slot_for(struct slot *v, size_t n, size_t *next,
                             int family, const void *addr, size_t al,
                             unsigned long tid)
{
	struct slot *oldest = &v[0];

	for (size_t i = 0; i < n; i++) {
		if (same(&v[i], family, addr, al) && v[i].tid == tid)
			return &v[i];
		if (v[i].seq < oldest->seq)
			oldest = &v[i];
	}
	if (!next)
		return oldest;
	struct slot *s = &v[*next];
	*next = (*next + 1) % n;
	return s;
}

void ts_resolve_record(const char *name, int family, const void *addr,
                       unsigned long tid, bool pinned)
{
	char norm[TS_RESOLVE_NAME_MAX];
	size_t al = addr_len(family);
	uint8_t lit[16];

	if (!al || !addr || !name)
		return;
	if (!ts_resolve_normalise(name, norm, sizeof norm)) {
		/* The program resolved an IP literal: that is what it means
		 * for this address now. Recorded as an empty name, it hides
		 * older names of the ring. */
		if (inet_pton(AF_INET, name, lit) != 1 &&
		    inet_pton(AF_INET6, name, lit) != 1)
			return;
		norm[0] = '\0';
		pinned = false;
	}
	lock();
	struct slot *s =
		pinned ? slot_for(map->pinned, TS_RESOLVE_PINNED_SLOTS, NULL,
		                  family, addr, al, tid)
		       : slot_for(map->ring, TS_RESOLVE_SLOTS, &map->ring_next,
		                  family, addr, al, tid);
	if (pinned && s->seq && !(same(s, family, addr, al) && s->tid == tid))
		set_lost(s); /* a pinned name is pushed out */
	s->seq = map->next_seq++;
	s->tid = tid;
	s->family = family;
	memset(s->addr, 0, sizeof s->addr);
	memcpy(s->addr, addr, al);
	memcpy(s->name, norm, strlen(norm) + 1);
	unlock();
}

/* The calling thread's newest entry for addr, else anyone's newest. */
static const struct slot *best(const struct slot *v, size_t n, int family,
                               const void *addr, size_t al,
                               unsigned long tid)
{
	const struct slot *mine = NULL, *any = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct slot *c = &v[i];
		if (!same(c, family, addr, al))
			continue;
		if (!any || c->seq > any->seq)
			any = c;
		if (c->tid == tid && (!mine || c->seq > mine->seq))
			mine = c;
	}
	return mine ? mine : any;
}

enum ts_resolve_result ts_resolve_lookup(int family, const void *addr,
                                         unsigned long tid, char *out,
                                         size_t outlen)
{
	size_t al = addr_len(family);
	enum ts_resolve_result rv = TS_RESOLVE_NONE;

	if (!al || !addr || !outlen)
		return TS_RESOLVE_NONE;
	lock();
	const struct slot *b = best(map->pinned, TS_RESOLVE_PINNED_SLOTS,
	                            family, addr, al, tid);
	if (!b && is_lost(family, addr, al)) {
		/* Whatever else resolved to it, the rule's name might be
		 * the one meant. */
		unlock();
		return TS_RESOLVE_LOST;
	}
	if (!b)
		b = best(map->ring, TS_RESOLVE_SLOTS, family, addr, al, tid);
	if (b && b->name[0]) {
		size_t n = strlen(b->name);
		if (n < outlen) {
			memcpy(out, b->name, n + 1);
			rv = TS_RESOLVE_FOUND;
		} else {
			rv = TS_RESOLVE_LOST; /* cannot say it: cannot decide */
		}
	}
	unlock();
	return rv;
}

void ts_resolve_clear(void)
{
	lock();
	memset(map->ring, 0, sizeof map->ring);
	memset(map->pinned, 0, sizeof map->pinned);
	memset(map->lost, 0, sizeof map->lost);
	map->ring_next = 0;
	map->next_seq = 1;
	unlock();
}
