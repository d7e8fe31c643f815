/* The epoll registry (see epreg.h): a hash on fd, chained. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "epreg.h"
#include "forkwatch.h"

#define NBUCKETS 1024u

struct node {
	struct ts_epreg_ent e;
	struct node *next;
};

static struct node *buckets[NBUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_size_t count;

/* Every entry checks first for a fork this process has not seen yet:
 * the lock may be a vanished thread's. */
static void lock_reg(void)
{
	ts_fork_check();
	pthread_mutex_lock(&lock);
}

static struct node **slot(int epfd, int fd)
{
	struct node **p = &buckets[(unsigned)fd % NBUCKETS];
	while (*p && ((*p)->e.epfd != epfd || (*p)->e.fd != fd))
		p = &(*p)->next;
	return p;
}

size_t ts_epreg_count(void)
{
	return atomic_load_explicit(&count, memory_order_relaxed);
}

void ts_epreg_child_reset(void)
{
	/* A thread that held it does not exist in the child. */
	pthread_mutex_init(&lock, NULL);
}

static void set(int epfd, int fd, uint32_t events, uint64_t data)
{
	lock_reg();
	struct node **p = slot(epfd, fd);
	if (!*p) {
		struct node *n = malloc(sizeof *n);
		if (!n)
			goto out;
		n->e.epfd = epfd;
		n->e.fd = fd;
		n->next = NULL;
		*p = n;
		atomic_fetch_add(&count, 1);
	}
	(*p)->e.events = events;
	(*p)->e.data = data;
out:
	pthread_mutex_unlock(&lock);
}

void ts_epreg_add(int epfd, int fd, uint32_t events, uint64_t data)
{
	set(epfd, fd, events, data);
}

void ts_epreg_mod(int epfd, int fd, uint32_t events, uint64_t data)
{
	set(epfd, fd, events, data);
}

void ts_epreg_del(int epfd, int fd)
{
	lock_reg();
	struct node **p = slot(epfd, fd), *n = *p;
	if (n) {
		*p = n->next;
		free(n);
		atomic_fetch_sub(&count, 1);
	}
	pthread_mutex_unlock(&lock);
}

void ts_epreg_forget_fd(int fd)
{
	if (fd < 0 || !ts_epreg_count())
		return;
	lock_reg();
	struct node **p = &buckets[(unsigned)fd % NBUCKETS];
	while (*p) {
		struct node *n = *p;
		if (n->e.fd == fd) {
			*p = n->next;
			free(n);
			atomic_fetch_sub(&count, 1);
		} else {
			p = &n->next;
		}
	}
	pthread_mutex_unlock(&lock);
}

bool ts_epreg_get(int epfd, int fd, struct ts_epreg_ent *out)
{
	bool found = false;
	lock_reg();
	struct node *n = *slot(epfd, fd);
	if (n) {
		*out = n->e;
		found = true;
	}
	pthread_mutex_unlock(&lock);
	return found;
}

size_t ts_epreg_of_fd(int fd, struct ts_epreg_ent *out, size_t max)
{
	size_t k = 0;
	lock_reg();
	for (struct node *n = buckets[(unsigned)fd % NBUCKETS]; n; n = n->next)
		if (n->e.fd == fd) {
			if (k < max)
				out[k] = n->e;
			k++;
		}
	pthread_mutex_unlock(&lock);
	return k;
}

void ts_epreg_foreach(int epfd,
                      void (*cb)(const struct ts_epreg_ent *e, void *ctx),
                      void *ctx)
{
	lock_reg();
	for (unsigned b = 0; b < NBUCKETS; b++)
		for (struct node *n = buckets[b]; n; n = n->next)
			if (n->e.epfd == epfd)
				cb(&n->e, ctx);
	pthread_mutex_unlock(&lock);
}
