/* Sessions across fork().
 *
 * After fork, parent and child hold copies of every TLS session. If both
 * used one, each would encrypt with the same sequence numbers — nonce reuse
 * — and the streams would interleave. So a session has one owner process,
 * recorded in a cell of shared memory that survives fork:
 *   - the process that connected owns it, and keeps it across forks;
 *   - an owner that closes it without having used it since the last fork
 *     releases it (no close_notify: another process may continue), and an
 *     owner that died releases it implicitly;
 *   - any other process may use it only after such a release, and then owns
 *     it; otherwise its calls fail (EPIPE/ECONNRESET) with one warning. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conn.h"
#include "engine_load.h"
#include "epreg.h"
#include "log.h"
#include "real.h"

#define CELLS_PER_PAGE 1024

static atomic_ulong forks;
static pthread_mutex_t cell_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int *page;
static unsigned page_used;

atomic_int *ts_owner_cell_new(void)
{
	atomic_int *cell = NULL;

	pthread_mutex_lock(&cell_lock);
	if (!page || page_used == CELLS_PER_PAGE) {
		/* Cells are never reused: a released cell may still be
		 * watched by another process. */
		void *p = mmap(NULL, CELLS_PER_PAGE * sizeof *page,
		               PROT_READ | PROT_WRITE,
		               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			goto out;
		page = p;
		page_used = 0;
	}
	cell = &page[page_used++];
	atomic_store(cell, getpid());
out:
	pthread_mutex_unlock(&cell_lock);
	return cell;
}

static bool owner_gone(int pid)
{
	return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

unsigned long ts_conn_forks(void)
{
	return atomic_load_explicit(&forks, memory_order_relaxed);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

bool ts_conn_owned(struct ts_conn *c, bool use)
{
	unsigned long f = LOAD(forks);

	if (__builtin_expect(LOAD(c->fork_seen) == f && !LOAD(c->lost), 1)) {
		/* Written only when it changes: the two threads of a
		 * full-duplex connection would otherwise share the line. */
		if (use && LOAD(c->used_gen) != f)
			STORE(c->used_gen, f);
		return true;
	}
	if (LOAD(c->lost) || !c->owner)
		return false;
	int saved = errno;
	int me = getpid(), cur = atomic_load(c->owner);
	bool owned = cur == me;

	if (!owned && use && (cur == 0 || owner_gone(cur)))
		owned = atomic_compare_exchange_strong(c->owner, &cur, me);
	if (owned && !use && LOAD(c->used_gen) != f) {
		/* Closing without having used it since the fork: leave it
		 * to the process that may carry on. */
		atomic_store(c->owner, 0);
		owned = false;
	} else if (owned) {
		STORE(c->fork_seen, f);
		if (use)
			STORE(c->used_gen, f);
	} else if (use) {
		STORE(c->lost, true);
		ts_warn("%s %s (%s): the TLS session belongs to process %d "
		        "since fork; refusing to use it in process %d",
		        c->rule->name, c->dest, c->name, cur, me);
	}
	errno = saved;
	return owned;
}

static void relock(int fd, struct ts_fdent *e, void *ctx)
{
	struct ts_conn *c = (struct ts_conn *)e;
	(void)fd;
	(void)ctx;
	/* Threads that held these are gone in the child. */
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->recv_lock, NULL);
	pthread_mutex_init(&c->nagle.lock, NULL);
	if (c->tls) {
		/* Loaded already: it made c->tls. */
		char err[64];
		const struct ts_engine *e = ts_engine_get(err, sizeof err);
		if (e)
			e->child_reset(c->tls);
	}
}

static void prepare(void)
{
	ts_real_bind(); /* before any lock: dlsym may take its own */
	ts_fd_lock();
	pthread_mutex_lock(&cell_lock);
}

static void parent(void)
{
	atomic_fetch_add(&forks, 1);
	pthread_mutex_unlock(&cell_lock);
	ts_fd_unlock();
}

static void child(void)
{
	atomic_fetch_add(&forks, 1);
	pthread_mutex_init(&cell_lock, NULL);
	/* The rest of the inherited page is the parent's to hand out: cells
	 * for the child's own connections come from a page of its own. */
	page = NULL;
	ts_fd_child_reset();
	ts_log_child_reset();
	ts_epreg_child_reset();
	ts_fd_foreach(0, ~0u, relock, NULL);
}

void ts_conn_fork_init(void)
{
	pthread_atfork(prepare, parent, child);
}
