/* The fd table (see fdtab.h).
 *
 * Two levels: 1024 chunks of 1024 slots, allocated on first install in a
 * chunk and never freed (fd numbers are dense and small in practice). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#include "fdtab.h"

#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS 1024u
#define FD_LIMIT (CHUNK_SIZE * NCHUNKS)

typedef struct ts_fdent *_Atomic slot_t;

atomic_uint ts_fd_live;
static slot_t *_Atomic chunks[NCHUNKS];
/* Taken only by installs, removals and lookups that found an entry. */
static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;

static slot_t *slot_of(int fd, bool create)
{
	if (fd < 0 || (unsigned)fd >= FD_LIMIT)
		return NULL;
	slot_t *c = atomic_load_explicit(&chunks[fd >> CHUNK_BITS],
	                                 memory_order_acquire);
	if (!c && create) {
		c = calloc(CHUNK_SIZE, sizeof *c);
		if (!c)
			return NULL;
		atomic_store_explicit(&chunks[fd >> CHUNK_BITS], c,
		                      memory_order_release);
	}
	return c ? &c[fd & (CHUNK_SIZE - 1)] : NULL;
}

struct ts_fdent *ts_fd_lookup(int fd)
{
	slot_t *s = slot_of(fd, false);
	if (!s || !atomic_load_explicit(s, memory_order_relaxed))
		return NULL;
	pthread_mutex_lock(&tab_lock);
	struct ts_fdent *e = atomic_load_explicit(s, memory_order_relaxed);
	if (e)
		atomic_fetch_add(&e->refs, 1);
	pthread_mutex_unlock(&tab_lock);
	return e;
}

bool ts_fd_peek(int fd)
{
	slot_t *s = slot_of(fd, false);
	return s && atomic_load_explicit(s, memory_order_relaxed);
}

void ts_fdent_ref(struct ts_fdent *e)
{
	atomic_fetch_add(&e->refs, 1);
}

void ts_fdent_put(struct ts_fdent *e)
{
	if (e && atomic_fetch_sub(&e->refs, 1) == 1)
		e->destroy(e);
}

int ts_fd_install(int fd, struct ts_fdent *e)
{
	int rv = -1;
	pthread_mutex_lock(&tab_lock);
	slot_t *s = slot_of(fd, true);
	if (!s || atomic_load_explicit(s, memory_order_relaxed))
		goto out;
	atomic_fetch_add(&e->refs, 1);
	atomic_store_explicit(s, e, memory_order_release);
	atomic_fetch_add(&ts_fd_live, 1);
	rv = 0;
out:
	pthread_mutex_unlock(&tab_lock);
	return rv;
}

struct ts_fdent *ts_fd_remove(int fd)
{
	slot_t *s = slot_of(fd, false);
	if (!s || !atomic_load_explicit(s, memory_order_relaxed))
		return NULL;
	pthread_mutex_lock(&tab_lock);
	struct ts_fdent *e = atomic_exchange(s, NULL);
	if (e)
		atomic_fetch_sub(&ts_fd_live, 1);
	pthread_mutex_unlock(&tab_lock);
	return e;
}

void ts_fd_foreach(unsigned lo, unsigned hi,
                   void (*cb)(int fd, struct ts_fdent *e, void *ctx),
                   void *ctx)
{
	if (hi >= FD_LIMIT)
		hi = FD_LIMIT - 1;
	for (unsigned ch = lo >> CHUNK_BITS; ch <= hi >> CHUNK_BITS; ch++) {
		slot_t *c = atomic_load(&chunks[ch]);
		if (!c)
			continue;
		for (unsigned i = 0; i < CHUNK_SIZE; i++) {
			unsigned fd = (ch << CHUNK_BITS) | i;
			if (fd < lo || fd > hi)
				continue;
			struct ts_fdent *e = atomic_load(&c[i]);
			if (e)
				cb((int)fd, e, ctx);
		}
	}
}

void ts_fd_lock(void)
{
	pthread_mutex_lock(&tab_lock);
}

void ts_fd_unlock(void)
{
	pthread_mutex_unlock(&tab_lock);
}

void ts_fd_child_reset(void)
{
	pthread_mutex_init(&tab_lock, NULL);
}
