/* Binding the real libc functions (see real.h). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "real.h"

struct ts_real ts_real;

static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

/* Any address inside this library, to recognise a pointer that leads back
 * to ourselves (a second copy of the preload, or a broken link order). */
static void self_marker(void) {}

static void complain(const char *name)
{
	/* No logging layer yet: the real write may be the one missing. */
	static const char pre[] = "tlsshim: error: cannot bind libc function ";
	syscall(SYS_write, 2, pre, sizeof pre - 1);
	syscall(SYS_write, 2, name, strlen(name));
	syscall(SYS_write, 2, "\n", 1);
}

static void *bind_one(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	Dl_info mine, theirs;

	if (p && dladdr((void *)self_marker, &mine) && dladdr(p, &theirs) &&
	    mine.dli_fbase == theirs.dli_fbase)
		p = NULL;
	if (!p)
		complain(name);
	return p;
}

static void bind_all(void)
{
#define TS_REAL_BIND(ret, name, args)                                      \
	__atomic_store_n(&ts_real.name,                                    \
	                 (ret(*) args)bind_one(#name), __ATOMIC_RELEASE);
	TS_REAL_FUNCS(TS_REAL_BIND)
#undef TS_REAL_BIND
}

void ts_real_bind(void)
{
	pthread_once(&bind_once, bind_all);
}
