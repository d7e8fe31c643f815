/* fd lifecycle and mode: close, fcntl, ioctl. */
/* fcntl and fcntl64 are both defined here on purpose: with
 * _FILE_OFFSET_BITS=64 glibc's header would rename our fcntl to fcntl64. */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "conn.h"
#include "epreg.h"
#include "hooks.h"
#include "real.h"

static int do_close(int fd)
{
	int rv;
	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		rv = REAL(close)(fd);
	else
		rv = ts_conn_close(fd);
	ts_epreg_forget_fd(fd);
	return rv;
}

TS_EXPORT int close(int fd)
{
	return do_close(fd);
}

/* glibc exports the internal name too; a program may call it. */
TS_EXPORT int __close(int fd)
{
	return do_close(fd);
}

TS_EXPORT int shutdown(int fd, int how)
{
	int r;
	ts_conn_call(fd, r, ts_conn_shutdown(c, fd, how),
	             REAL(shutdown)(fd, how));
	return r;
}

/* newfd is a fresh number for what oldfd names: share the session, or
 * drop stale state left on the number. */
static void after_dup(int oldfd, int newfd)
{
	if (newfd < 0 ||
	    !atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return;
	ts_conn_purge(newfd);
	struct ts_conn *c = ts_conn_get(oldfd);
	if (c) {
		ts_conn_alias(newfd, c);
		ts_conn_put(c);
	}
}

TS_EXPORT int dup(int fd)
{
	int r = REAL(dup)(fd);
	after_dup(fd, r);
	return r;
}

static int do_dup2(int oldfd, int newfd)
{
	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return REAL(dup2)(oldfd, newfd);
	return ts_conn_dup2(oldfd, newfd, 0, false);
}

TS_EXPORT int dup2(int oldfd, int newfd)
{
	return do_dup2(oldfd, newfd);
}

TS_EXPORT int __dup2(int oldfd, int newfd)
{
	return do_dup2(oldfd, newfd);
}

TS_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return REAL(dup3)(oldfd, newfd, flags);
	return ts_conn_dup2(oldfd, newfd, flags, true);
}

TS_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return REAL(close_range)(first, last, flags);
	return ts_conn_close_range(first, last, flags);
}

TS_EXPORT void closefrom(int lowfd)
{
	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed)) {
		REAL(closefrom)(lowfd);
		return;
	}
	ts_conn_closefrom(lowfd);
}

static void after_fcntl(int fd, int cmd, void *arg, int rv)
{
	if (rv < 0)
		return;
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
		after_dup(fd, rv);
		return;
	}
	if (cmd != F_SETFL)
		return;
	struct ts_conn *c = ts_conn_get(fd);
	if (c) {
		ts_conn_set_nonblock(c, ((long)arg & O_NONBLOCK) != 0);
		ts_conn_put(c);
	}
}

/* fcntl, glibc's exported __fcntl and fcntl64: every argument is an int
 * or a pointer, passed alike. */
#define FCNTL_HOOK(name, real)                                             \
	TS_EXPORT int name(int fd, int cmd, ...)                           \
	{                                                                  \
		va_list ap;                                                \
		va_start(ap, cmd);                                         \
		void *arg = va_arg(ap, void *);                            \
		va_end(ap);                                                \
		int rv = REAL(real)(fd, cmd, arg);                         \
		after_fcntl(fd, cmd, arg, rv);                             \
		return rv;                                                 \
	}

FCNTL_HOOK(fcntl, fcntl)
FCNTL_HOOK(__fcntl, fcntl)
FCNTL_HOOK(fcntl64, fcntl64)

TS_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (req == FIONREAD && arg) {
		/* Decrypted bytes, not the kernel's ciphertext. */
		size_t n = 0;
		int r;
		ts_conn_call(fd, r, ts_conn_pending(c, fd, &n), 1);
		if (r == 0) {
			*(int *)arg = n > INT_MAX ? INT_MAX : (int)n;
			return 0;
		}
	}
	int rv = REAL(ioctl)(fd, req, arg);
	if (rv == 0 && req == FIONBIO && arg) {
		struct ts_conn *c = ts_conn_get(fd);
		if (c) {
			ts_conn_set_nonblock(c, *(int *)arg != 0);
			ts_conn_put(c);
		}
	}
	return rv;
}
