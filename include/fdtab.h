/* fd -> connection table.
 *
 * Every hooked call on every fd of every preloaded program asks "is this fd
 * ours?", so the answer for fds that are not is lock-free: one relaxed load
 * of a global count (zero in processes with no upgraded fd), else two loads
 * in a two-level array. Entries are reference counted so that a close in one
 * thread never frees state another thread is using. */
#ifndef TS_FDTAB_H
#define TS_FDTAB_H

#include <stdatomic.h>
#include <stdbool.h>

struct ts_fdent {
	atomic_int refs;
	void (*destroy)(struct ts_fdent *e);
};

extern atomic_uint ts_fd_live;

struct ts_fdent *ts_fd_lookup(int fd);

/* The entry for fd with a reference taken, or NULL when fd is not ours. */
static inline struct ts_fdent *ts_fd_get(int fd)
{
	if (__builtin_expect(atomic_load_explicit(&ts_fd_live,
	                                          memory_order_relaxed) == 0,
	                     1))
		return 0;
	return ts_fd_lookup(fd);
}

/* Whether fd has an entry right now, without a reference or a lock: a
 * hint for code that must not block (the answer may change at once). */
bool ts_fd_peek(int fd);

void ts_fdent_ref(struct ts_fdent *e);
void ts_fdent_put(struct ts_fdent *e);

/* Install e at fd (the table takes a reference). -1 when out of memory or
 * fd is out of range. Replaces nothing: the caller removed any old entry. */
int ts_fd_install(int fd, struct ts_fdent *e);

/* Remove fd's entry and return the table's reference (NULL if none). */
struct ts_fdent *ts_fd_remove(int fd);

/* Every entry with lo <= fd <= hi, without references taken: for fork
 * handlers and close_range, where nothing else runs concurrently on them. */
void ts_fd_foreach(unsigned lo, unsigned hi,
                   void (*cb)(int fd, struct ts_fdent *e, void *ctx),
                   void *ctx);

/* For pthread_atfork: no table change may be half done at fork. */
void ts_fd_lock(void);
void ts_fd_unlock(void);
void ts_fd_child_reset(void);

#endif
