/* Sessions across fork.
 *
 * After a fork, parent and child hold copies of every TLS session. If two
 * processes sent with one, both would encrypt with the same key and
 * sequence number — nonce reuse; if two read, each would get half the
 * records. TLS keeps separate state per direction, so each direction has
 * one owner, recorded in a cell of shared memory (struct ts_owner) as the
 * owner's pid and the epoch of the state it holds:
 *   - the connecting process owns both directions, epoch 0;
 *   - libc's fork releases each direction no thread of the parent is using
 *     at that moment (its lock is free): the cell keeps the epoch and names
 *     no owner. The first process, parent or child, to use a released
 *     direction claims it and moves the epoch on; every other copy then
 *     holds an older epoch and can never claim it again;
 *   - a handshake is claimed whole: its steps take the writes, then the
 *     reads (conn_async.c owns_both);
 *   - a direction in use during the fork, and every direction after a fork
 *     libc did not see (_Fork, syscall(SYS_fork), clone: found by
 *     forkwatch.h), stays the parent's;
 *   - a process that uses a direction it does not own gets EPIPE (write)
 *     or ECONNRESET (read) and one warning; it never touches the session.
 * So rsync's receiver reads in one process while its generator writes in
 * another, and a daemon that forks and lets the parent exit carries on.
 * What needs the other direction: close_notify is sent only by the owner
 * of the write direction; a TLS 1.3 KeyUpdate request is answered by GnuTLS
 * before the next record it sends, i.e. by the writer's copy only if it
 * read the request itself (with split owners the request goes unanswered,
 * which TLS 1.3 allows: the peer's keys change, ours do not). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conn.h"
#include "conn_async.h"
#include "conn_priv.h"
#include "epreg.h"
#include "forkwatch.h"
#include "log.h"
#include "rawguard.h"
#include "real.h"
#include "stdio_seal.h"

#define CELLS_PER_PAGE 256
#define OWN(pid, epoch) ((uint64_t)(uint32_t)(pid) << 32 | (uint32_t)(epoch))
#define OWN_PID(v) ((pid_t)((v) >> 32))

static pthread_mutex_t cell_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ts_owner *page;
static unsigned page_used;

struct ts_owner *ts_owner_new(void)
{
	struct ts_owner *cell = NULL;

	pthread_mutex_lock(&cell_lock);
	if (!page || page_used == CELLS_PER_PAGE) {
		/* Cells are never reused: a copy of a closed session in
		 * another process may still look at its cell. */
		void *p = mmap(NULL, CELLS_PER_PAGE * sizeof *page,
		               PROT_READ | PROT_WRITE,
		               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			goto out;
		page = p;
		page_used = 0;
	}
	cell = &page[page_used++];
	atomic_store(&cell->dir[TS_DIR_WRITE], OWN(ts_fork_pid(), 0));
	atomic_store(&cell->dir[TS_DIR_READ], OWN(ts_fork_pid(), 0));
out:
	pthread_mutex_unlock(&cell_lock);
	return cell;
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

bool ts_conn_owned(struct ts_conn *c, enum ts_dir dir, bool claim)
{
	unsigned long g = ts_fork_gen();

	if (__builtin_expect(LOAD(c->own_gen[dir]) == g && !LOAD(c->lost[dir]),
	                     1))
		return true;
	if (LOAD(c->lost[dir]) || !c->owner)
		return false;
	pid_t me = ts_fork_pid();
	uint32_t ep = c->epoch[dir];
	uint64_t v = atomic_load(&c->owner->dir[dir]);
	bool owned = v == OWN(me, ep);

	if (!owned && claim && v == OWN(0, ep) &&
	    atomic_compare_exchange_strong(&c->owner->dir[dir], &v,
	                                   OWN(me, ep + 1))) {
		c->epoch[dir] = ep + 1;
		owned = true;
	}
	if (owned) {
		STORE(c->own_gen[dir], g);
		return true;
	}
	if (claim) {
		STORE(c->lost[dir], true);
		pid_t who = OWN_PID(v);
		if (who)
			ts_warn("%s %s (%s): since fork the TLS session's %s "
			        "belong to process %d; refusing them in process "
			        "%d", c->rule->name, c->dest, c->name,
			        dir == TS_DIR_WRITE ? "writes" : "reads", who,
			        me);
		else
			ts_warn("%s %s (%s): since fork another process has "
			        "used the TLS session's %s; refusing them in "
			        "process %d", c->rule->name, c->dest, c->name,
			        dir == TS_DIR_WRITE ? "writes" : "reads", me);
	}
	return false;
}

static pthread_mutex_t *dir_lock(struct ts_conn *c, int d)
{
	return d == TS_DIR_WRITE ? &c->send_lock : &c->recv_lock;
}

/* Before libc's fork, with the table locked: release each direction no
 * thread is using, and keep it unusable until the fork is over. */
static void release_one(int fd, struct ts_fdent *e, void *ctx)
{
	struct ts_conn *c = (struct ts_conn *)e;
	(void)fd;
	(void)ctx;
	for (int d = 0; d < 2; d++) {
		if (c->fork_locked[d] ||
		    pthread_mutex_trylock(dir_lock(c, d)) != 0)
			continue;
		c->fork_locked[d] = true;
		/* A handshake in progress too: a pre-fork server accepts in
		 * the parent and serves in the child. Its steps claim the
		 * writes first, then the reads, so one process gets both. */
		if (c->owner && ts_conn_owned(c, (enum ts_dir)d, false))
			atomic_store(&c->owner->dir[d],
			             OWN(0, c->epoch[d]));
	}
}

static void unlock_one(int fd, struct ts_fdent *e, void *ctx)
{
	struct ts_conn *c = (struct ts_conn *)e;
	(void)fd;
	(void)ctx;
	for (int d = 0; d < 2; d++)
		if (c->fork_locked[d]) {
			c->fork_locked[d] = false;
			pthread_mutex_unlock(dir_lock(c, d));
		}
}

/* In a new process: threads that held these are gone. */
static void relock(int fd, struct ts_fdent *e, void *ctx)
{
	struct ts_conn *c = (struct ts_conn *)e;
	(void)fd;
	(void)ctx;
	c->fork_locked[0] = c->fork_locked[1] = false;
	ts_conn_child_reset(c);
}

/* A number another thread was closing or replacing when the process was
 * copied: what it names now is unknown, so it carries nothing. */
static void tombstone(int fd, void *ctx)
{
	(void)ctx;
	ts_conn_tombstone(fd);
}

static void prepare(void)
{
	ts_real_bind(); /* before any lock: dlsym may take its own */
	ts_fork_check();
	ts_fd_lock();
	pthread_mutex_lock(&cell_lock);
	ts_fd_foreach(0, ~0u, release_one, NULL);
}

static void parent(void)
{
	ts_fork_parent_done();
	ts_fd_foreach(0, ~0u, unlock_one, NULL);
	pthread_mutex_unlock(&cell_lock);
	ts_fd_unlock();
}

/* Every new process, whichever way it was made (forkwatch.h). */
static void child(void)
{
	pthread_mutex_init(&cell_lock, NULL);
	/* The rest of the inherited page is the parent's to hand out: cells
	 * for the child's own connections come from a page of its own. */
	page = NULL;
	ts_fd_child_reset(tombstone, NULL);
	ts_log_child_reset();
	ts_epreg_child_reset();
	ts_conn_async_child_reset();
	ts_stdio_seal_child_reset();
	ts_raw_child_reset();
	const struct ts_engine *eng = ts_conn_eng();
	if (eng)
		eng->process_reset();
	ts_fd_foreach(0, ~0u, relock, NULL);
}

void ts_conn_fork_init(void)
{
	ts_fork_on_child(child);
	pthread_atfork(prepare, parent, ts_fork_child_atfork);
}
