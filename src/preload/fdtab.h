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

/* The entry for fd with a reference taken, or NULL. While a transition
 * of fd is under way (ts_fd_gate), waits until it ends. */
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
/* Remove fd's entry only if it is e; true (and the table's reference is
 * the caller's) when it was. */
bool ts_fd_remove_if(int fd, struct ts_fdent *e);

/* Transitions of an fd number (close, dup2/dup3 onto it, exec's swap):
 * from ts_fd_gate until ts_fd_ungate, every lookup of fd waits, so no
 * call on fd can act on the old entry after the kernel changed what fd
 * names, nor find no entry before the new one is in place. gate returns
 * the entry that was there (the table's reference passes to the caller)
 * and 0, or -1 when out of memory or fd is out of range. ungate puts e
 * (NULL: none) in the slot, the table taking its own reference, and wakes
 * the waiters. One transition per fd at a time: the caller serialises. */
int ts_fd_gate(int fd, struct ts_fdent **old);
void ts_fd_ungate(int fd, struct ts_fdent *e);

/* Whether fd's slot holds e now: the check a call makes under the
 * connection's lock that the number it came in through is still e's. */
bool ts_fd_holds(int fd, const struct ts_fdent *e);

/* Every entry with lo <= fd <= hi, without references taken, gates
 * skipped: for fork handlers and close_range. */
void ts_fd_foreach(unsigned lo, unsigned hi,
                   void (*cb)(int fd, struct ts_fdent *e, void *ctx),
                   void *ctx);

/* For pthread_atfork: no table change may be half done at fork. */
void ts_fd_lock(void);
void ts_fd_unlock(void);
/* In a forked child: the locks are reset, and every gate left by a
 * transition that was under way in a thread the child does not have is
 * emptied and passed to on_gate (which may install an entry there). */
void ts_fd_child_reset(void (*on_gate)(int fd, void *ctx), void *ctx);

#endif
