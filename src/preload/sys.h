/* System calls the preload makes for itself, straight to the kernel.
 *
 * Not through libc's syscall(): this library exports a syscall() hook of
 * its own, which routes the data calls into the hooks, and a hook may
 * need the real-function table that is being bound at that moment
 * (real.c's complaint about a function that cannot be bound: a hang in
 * pthread_once). These reach no hook, no binding and no errno: the
 * result is the kernel's, -errno on failure. */
#ifndef TS_SYS_H
#define TS_SYS_H

static inline long ts_sys3(long n, long a, long b, long c)
{
	long r;
#if defined(__x86_64__)
	__asm__ volatile("syscall"
	                 : "=a"(r)
	                 : "a"(n), "D"(a), "S"(b), "d"(c)
	                 : "rcx", "r11", "memory");
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	__asm__ volatile("svc 0"
	                 : "+r"(x0)
	                 : "r"(x8), "r"(x1), "r"(x2)
	                 : "memory");
	r = x0;
#else
#error "ts_sys3: add this architecture's system call instruction"
#endif
	return r;
}

#endif
