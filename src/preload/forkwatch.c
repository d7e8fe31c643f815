/* Fork detection (see forkwatch.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "forkwatch.h"
#include "sys.h"

#define MAX_HANDLERS 8
#define FIXING 1u

/* Until the constructor runs, a static word stands in: armed, so that
 * hooks called from earlier constructors take the fast path. */
static unsigned early = TS_FORK_ARMED;
volatile unsigned *ts_fork_page = &early;
static bool wipes;       /* the page is MADV_WIPEONFORK */
static pid_t armed_pid;
static atomic_ulong gen;
static void (*handlers[MAX_HANDLERS])(void);
static unsigned nhandlers;
static _Atomic pid_t fixer; /* the thread running the handlers */

/* Straight from the kernel: no libc pid cache to be stale after a fork
 * libc did not see. */
static pid_t real_pid(void)
{
	return (pid_t)ts_sys3(SYS_getpid, 0, 0, 0);
}

void ts_fork_watch_init(void)
{
	int saved = errno;
	long sz = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, sz > 0 ? (size_t)sz : 4096,
	               PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	               -1, 0);

	armed_pid = real_pid();
	if (p != MAP_FAILED) {
		wipes = madvise(p, sz > 0 ? (size_t)sz : 4096,
		                MADV_WIPEONFORK) == 0;
		*(volatile unsigned *)p = TS_FORK_ARMED;
		ts_fork_page = p;
	}
	errno = saved;
}

void ts_fork_on_child(void (*fn)(void))
{
	if (nhandlers < MAX_HANDLERS)
		handlers[nhandlers++] = fn;
}

static void run_handlers(void)
{
	int saved = errno;
	armed_pid = real_pid();
	atomic_store(&fixer, (pid_t)ts_sys3(SYS_gettid, 0, 0, 0));
	atomic_fetch_add(&gen, 1);
	for (unsigned i = 0; i < nhandlers; i++)
		handlers[i]();
	atomic_store(&fixer, 0);
	errno = saved;
}

void ts_fork_detected(void)
{
	volatile unsigned *pg = ts_fork_page;
	unsigned expect = 0;

	/* The handlers themselves use the code that checks. */
	if (atomic_load(&fixer) == (pid_t)ts_sys3(SYS_gettid, 0, 0, 0))
		return;
	/* One thread runs the handlers; any other waits for them. */
	if (!__atomic_compare_exchange_n(pg, &expect, FIXING, false,
	                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(pg, __ATOMIC_ACQUIRE) != TS_FORK_ARMED)
			sched_yield();
		return;
	}
	run_handlers();
	__atomic_store_n(pg, TS_FORK_ARMED, __ATOMIC_RELEASE);
}

void ts_fork_child_atfork(void)
{
	/* Without the page (Linux < 4.14) libc's fork is all that is seen:
	 * a pid comparison cannot tell a vfork child, which must not reset
	 * the parent's shared state, from a forked one. */
	if (!wipes)
		run_handlers();
	else
		ts_fork_check();
}

unsigned long ts_fork_gen(void)
{
	return atomic_load_explicit(&gen, memory_order_relaxed);
}

void ts_fork_parent_done(void)
{
	atomic_fetch_add(&gen, 1);
}

pid_t ts_fork_pid(void)
{
	return armed_pid;
}

bool ts_fork_in_vfork_child(void)
{
	ts_fork_check();
	return real_pid() != armed_pid;
}
