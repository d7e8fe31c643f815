/* Fork detection that no path can miss.
 *
 * pthread_atfork handlers run only for libc's fork(): not for _Fork(),
 * syscall(SYS_fork), clone() without CLONE_VM, or a fork made by code that
 * calls the kernel itself. A page marked MADV_WIPEONFORK reads as zeros in
 * every process made by any of them, so one load tells a process that is
 * a new copy of the one that armed it. ts_fork_check() is that load; the
 * first call in a new process runs the registered child handlers once,
 * before the caller touches any tlsshim lock or shared state.
 *
 * vfork() and posix_spawn() share the parent's memory until the child
 * execs: the page is not wiped, the child is the parent's address space
 * and may use its sessions like a thread, but it has its own fd table:
 * ts_fork_in_vfork_child() tells fd-table code not to record its changes
 * in the parent's memory. */
#ifndef TS_FORKWATCH_H
#define TS_FORKWATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#define TS_FORK_ARMED 2u

extern volatile unsigned *ts_fork_page;

/* The constructor: maps the page. Where MADV_WIPEONFORK is missing
 * (Linux < 4.14) only libc's fork is seen, through the atfork handler. */
void ts_fork_watch_init(void);

/* A handler run in each new process (in registration order), before any
 * other tlsshim code of that process runs. At most 8; from constructors. */
void ts_fork_on_child(void (*fn)(void));

void ts_fork_detected(void);
/* pthread_atfork's child handler. */
void ts_fork_child_atfork(void);

static inline void ts_fork_check(void)
{
	if (__builtin_expect(*ts_fork_page != TS_FORK_ARMED, 0))
		ts_fork_detected();
}

/* Forks this process has gone through as parent or child, counted from
 * its start: a change tells state confirmed at an older count to be
 * confirmed again. */
unsigned long ts_fork_gen(void);
/* The parent side of libc's fork (pthread_atfork's parent handler). */
void ts_fork_parent_done(void);

/* The pid of this address space, as armed. */
pid_t ts_fork_pid(void);

/* True in the child of vfork()/CLONE_VM before it execs: memory shared
 * with the parent, fd table its own. One getpid() system call. */
bool ts_fork_in_vfork_child(void);

#endif
