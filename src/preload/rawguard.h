/* The window between "this fd is not ours" and the kernel call.
 *
 * A hook that finds no entry for an fd calls libc at once; in a process
 * with threads, another thread may meanwhile make that number an upgraded
 * socket (connect, or dup2 onto it) — and the first thread's call, decided
 * a moment before, would then reach the kernel and send raw. So every call
 * that can send passes through that window marked: the thread's slot names
 * the fd for the length of the call, and the check is made after the mark.
 * The thread that upgrades a number first makes it ours (so new calls see
 * it), then waits, with ts_raw_quiesce, for the marked calls on that
 * number that may have decided before: each either finishes or is seen
 * blocked inside the kernel (it has resolved its fd to the old file). The
 * marks are plain stores; membarrier(2) makes them visible to the waiter
 * (or, where that is missing, a fence on each mark).
 * A single-threaded process has no such window and skips all of it. */
#ifndef TS_RAWGUARD_H
#define TS_RAWGUARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

struct ts_raw_slot {
	_Atomic int fd;         /* the fd of the call in the window, or -1 */
	_Atomic unsigned depth; /* nested calls (signal handlers) */
	_Atomic unsigned seq;   /* calls entered: a change is progress */
	pid_t tid;
	bool registered;
	struct ts_raw_slot *next, *prev;
};

extern __thread struct ts_raw_slot ts_raw_slot
	__attribute__((tls_model("initial-exec")));
extern bool ts_raw_fence;

void ts_raw_register(struct ts_raw_slot *s);

struct ts_raw_mark {
	int saved_fd;
};

static inline void ts_raw_enter(struct ts_raw_mark *m, int fd)
{
	struct ts_raw_slot *s = &ts_raw_slot;

	if (__builtin_expect(!s->registered, 0))
		ts_raw_register(s);
	m->saved_fd = atomic_load_explicit(&s->fd, memory_order_relaxed);
	atomic_store_explicit(&s->fd, fd, memory_order_relaxed);
	atomic_store_explicit(&s->depth,
	                      atomic_load_explicit(&s->depth,
	                                           memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	atomic_store_explicit(&s->seq,
	                      atomic_load_explicit(&s->seq,
	                                           memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	if (__builtin_expect(ts_raw_fence, 0))
		atomic_thread_fence(memory_order_seq_cst);
	else
		atomic_signal_fence(memory_order_seq_cst);
}

static inline void ts_raw_leave(const struct ts_raw_mark *m)
{
	struct ts_raw_slot *s = &ts_raw_slot;

	atomic_signal_fence(memory_order_seq_cst);
	atomic_store_explicit(&s->depth,
	                      atomic_load_explicit(&s->depth,
	                                           memory_order_relaxed) - 1,
	                      memory_order_relaxed);
	atomic_store_explicit(&s->fd, m->saved_fd, memory_order_relaxed);
}

/* fd has just become ours: wait for calls on it that may have decided
 * otherwise. Bounded by ms (a call that neither ends nor enters the
 * kernel in that time is reported, and not waited for). */
void ts_raw_quiesce(int fd, long ms);

/* In a new process: the other threads' slots are gone. */
void ts_raw_child_reset(void);

#endif
