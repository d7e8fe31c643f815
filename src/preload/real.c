/* Binding the real libc functions (see real.h). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "real.h"
#include "sys.h"

struct ts_real ts_real;

static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

/* Any address inside this library, to recognise a pointer that leads back
 * to ourselves (a second copy of the preload, or a broken link order). */
static void self_marker(void) {}

/* Straight to the kernel (sys.h): the real write may be the one missing,
 * and libc's syscall() is our own hook, whose write would bind again
 * inside this binding (a hang in pthread_once). */
static void complain(const char *name)
{
	static const char pre[] = "tlsshim: error: cannot bind libc function ";
	(void)ts_sys3(SYS_write, 2, (long)pre, sizeof pre - 1);
	(void)ts_sys3(SYS_write, 2, (long)name, (long)strlen(name));
	(void)ts_sys3(SYS_write, 2, (long)"\n", 1);
}

/* This library's mapped range, found once: dladdr() per pointer scans
 * symbol tables (~45k instructions a call, 3.6M for the whole table),
 * which was almost all of a preloaded process's start-up cost. */
static uintptr_t self_lo, self_hi;

static int find_self(struct dl_phdr_info *info, size_t size, void *ctx)
{
	uintptr_t me = (uintptr_t)self_marker, lo = UINTPTR_MAX, hi = 0;

	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;
		if (a < lo)
			lo = a;
		if (a + ph->p_memsz > hi)
			hi = a + ph->p_memsz;
	}
	if (me < lo || me >= hi)
		return 0;
	self_lo = lo;
	self_hi = hi;
	return 1;
}

static void *bind_one(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p && (uintptr_t)p >= self_lo && (uintptr_t)p < self_hi)
		p = NULL;
	if (!p)
		complain(name);
	return p;
}

static void bind_all(void)
{
	dl_iterate_phdr(find_self, NULL);
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
