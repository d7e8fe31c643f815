/* The fd table (see fdtab.h).
 *
 * Two levels: 1024 chunks of 1024 slots, allocated on first install in a
 * chunk and never freed (fd numbers are dense and small in practice). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#include "fdtab.h"
#include "forkwatch.h"

#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS 1024u
#define FD_LIMIT (CHUNK_SIZE * NCHUNKS)

typedef struct ts_fdent *_Atomic slot_t;

atomic_uint ts_fd_live;
static slot_t *_Atomic chunks[NCHUNKS];
/* Taken only by installs, removals and lookups that found an entry. */
static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
/* A slot holding GATE is in transition; its waiters sleep on gate_cv. */
static struct ts_fdent gate_mark;
#define GATE (&gate_mark)
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;

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

static void wait_gate(slot_t *s)
{
	pthread_mutex_lock(&gate_lock);
	while (atomic_load(s) == GATE)
		pthread_cond_wait(&gate_cv, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
}

/* fd's entry, waiting out a gate: with a reference taken (lookup), or
 * taken out of the table with the table's reference (remove). */
static inline struct ts_fdent *take(int fd, bool remove)
{
	ts_fork_check(); /* before any lock a vanished thread held */
	slot_t *s = slot_of(fd, false);
	struct ts_fdent *e;

	if (!s || !atomic_load_explicit(s, memory_order_relaxed))
		return NULL;
	for (;;) {
		pthread_mutex_lock(&tab_lock);
		e = atomic_load_explicit(s, memory_order_relaxed);
		if (e && e != GATE && remove) {
			atomic_store_explicit(s, NULL, memory_order_relaxed);
			atomic_fetch_sub(&ts_fd_live, 1);
		} else if (e && e != GATE) {
			atomic_fetch_add(&e->refs, 1);
		}
		pthread_mutex_unlock(&tab_lock);
		if (e != GATE)
			return e;
		wait_gate(s);
	}
}

struct ts_fdent *ts_fd_lookup(int fd)
{
	return take(fd, false);
}

bool ts_fd_peek(int fd)
{
	slot_t *s = slot_of(fd, false);
	return s && atomic_load_explicit(s, memory_order_relaxed);
}

bool ts_fd_holds(int fd, const struct ts_fdent *e)
{
	slot_t *s = slot_of(fd, false);
	return s && atomic_load_explicit(s, memory_order_acquire) == e;
}

int ts_fd_gate(int fd, struct ts_fdent **old)
{
	ts_fork_check(); /* before any lock a vanished thread held */
	int rv = -1;

	*old = NULL;
	pthread_mutex_lock(&tab_lock);
	slot_t *s = slot_of(fd, true);
	if (!s)
		goto out;
	struct ts_fdent *e = atomic_exchange(s, GATE);
	if (e == GATE) {
		/* Callers serialise transitions of one fd: never here. */
		goto out;
	}
	if (!e)
		atomic_fetch_add(&ts_fd_live, 1);
	*old = e;
	rv = 0;
out:
	pthread_mutex_unlock(&tab_lock);
	return rv;
}

void ts_fd_ungate(int fd, struct ts_fdent *e)
{
	slot_t *s = slot_of(fd, false);

	if (!s)
		return;
	pthread_mutex_lock(&tab_lock);
	if (e)
		atomic_fetch_add(&e->refs, 1);
	else
		atomic_fetch_sub(&ts_fd_live, 1);
	atomic_store_explicit(s, e, memory_order_release);
	pthread_mutex_unlock(&tab_lock);
	pthread_mutex_lock(&gate_lock);
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_lock);
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
	ts_fork_check(); /* before any lock a vanished thread held */
	int rv = -1;
	pthread_mutex_lock(&tab_lock);
	slot_t *s = slot_of(fd, true);
	/* Occupied, or in transition. */
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
	return take(fd, true);
}

bool ts_fd_remove_if(int fd, struct ts_fdent *e)
{
	ts_fork_check(); /* before any lock a vanished thread held */
	slot_t *s = slot_of(fd, false);
	bool hit = false;

	if (!s || !e)
		return false;
	pthread_mutex_lock(&tab_lock);
	if (atomic_load_explicit(s, memory_order_relaxed) == e) {
		atomic_store_explicit(s, NULL, memory_order_relaxed);
		atomic_fetch_sub(&ts_fd_live, 1);
		hit = true;
	}
	pthread_mutex_unlock(&tab_lock);
	return hit;
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
			if (e && e != GATE)
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

void ts_fd_child_reset(void (*on_gate)(int fd, void *ctx), void *ctx)
{
	pthread_mutex_init(&tab_lock, NULL);
	pthread_mutex_init(&gate_lock, NULL);
	pthread_cond_init(&gate_cv, NULL);
	for (unsigned ch = 0; ch < NCHUNKS; ch++) {
		slot_t *c = atomic_load(&chunks[ch]);
		for (unsigned i = 0; c && i < CHUNK_SIZE; i++) {
			if (atomic_load(&c[i]) != GATE)
				continue;
			atomic_store(&c[i], NULL);
			atomic_fetch_sub(&ts_fd_live, 1);
			if (on_gate)
				on_gate((int)((ch << CHUNK_BITS) | i), ctx);
		}
	}
}
