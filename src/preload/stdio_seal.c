/* Sealing stdio streams that would write around the session (see
 * stdio_seal.h). The list of open streams is glibc's own (_IO_list_all,
 * an exported symbol), walked under its lock. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "forkwatch.h"
#include "log.h"
#include "stdio_seal.h"

extern FILE *_IO_list_all;
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);

#define OWN_MAX 64

/* Our cookie streams: few, each a socket a program fdopen()ed. */
static FILE *own[OWN_MAX];
static atomic_int nown; /* fclose of any other stream pays one load */
static pthread_mutex_t own_lock = PTHREAD_MUTEX_INITIALIZER;

void ts_stdio_own(FILE *f)
{
	pthread_mutex_lock(&own_lock);
	for (int i = 0; i < OWN_MAX; i++)
		if (!own[i]) {
			own[i] = f;
			atomic_fetch_add(&nown, 1);
			break;
		}
	pthread_mutex_unlock(&own_lock);
}

void ts_stdio_disown(FILE *f)
{
	if (!atomic_load_explicit(&nown, memory_order_relaxed))
		return;
	ts_fork_check();
	pthread_mutex_lock(&own_lock);
	for (int i = 0; i < OWN_MAX; i++)
		if (own[i] == f) {
			own[i] = NULL;
			atomic_fetch_sub(&nown, 1);
		}
	pthread_mutex_unlock(&own_lock);
}

static bool owned(FILE *f)
{
	bool hit = false;
	pthread_mutex_lock(&own_lock);
	for (int i = 0; i < OWN_MAX && !hit; i++)
		hit = own[i] == f;
	pthread_mutex_unlock(&own_lock);
	return hit;
}

void ts_stdio_seal(int fd, const char *rule, const char *dest)
{
	_IO_list_lock();
	for (FILE *f = _IO_list_all; f; f = f->_chain) {
		if (f->_fileno != fd || owned(f))
			continue;
		f->_fileno = -1;
		ts_error("%s %s: a stdio stream was open on fd %d before it was "
		         "upgraded; its I/O would bypass TLS, so it now fails "
		         "(EBADF) and sends nothing: fdopen() the fd after "
		         "connect()", rule, dest, fd);
	}
	_IO_list_unlock();
}

void ts_stdio_seal_child_reset(void)
{
	pthread_mutex_init(&own_lock, NULL);
}
