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

TS_EXPORT int close(int fd)
{
	if (atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		ts_conn_forget(fd);
	ts_epreg_forget_fd(fd);
	return REAL(close)(fd);
}

TS_EXPORT int shutdown(int fd, int how)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(shutdown)(fd, how);
	int rv = ts_conn_shutdown(c, fd, how);
	ts_conn_put(c);
	return rv;
}

/* newfd now names what oldfd names: share the session, or drop stale
 * state left on the number. */
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

/* dup2/dup3 close newfd first; send its close_notify while the number
 * still names its socket. Only when oldfd is valid: else nothing closes. */
static void before_dup2(int oldfd, int newfd)
{
	if (oldfd != newfd &&
	    atomic_load_explicit(&ts_fd_live, memory_order_relaxed) &&
	    REAL(fcntl)(oldfd, F_GETFD) >= 0)
		ts_conn_forget(newfd);
}

TS_EXPORT int dup(int fd)
{
	int r = REAL(dup)(fd);
	after_dup(fd, r);
	return r;
}

TS_EXPORT int dup2(int oldfd, int newfd)
{
	before_dup2(oldfd, newfd);
	int r = REAL(dup2)(oldfd, newfd);
	if (r >= 0 && oldfd != newfd)
		after_dup(oldfd, r);
	return r;
}

TS_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (oldfd != newfd)
		before_dup2(oldfd, newfd);
	int r = REAL(dup3)(oldfd, newfd, flags);
	after_dup(oldfd, r);
	return r;
}

static void forget_one(int fd, struct ts_fdent *e, void *ctx)
{
	(void)e;
	(void)ctx;
	ts_conn_forget(fd);
}

TS_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	/* CLOSE_RANGE_CLOEXEC only marks; everything else closes. */
	if (!(flags & CLOSE_RANGE_CLOEXEC) && first <= last &&
	    atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		ts_fd_foreach(first, last, forget_one, NULL);
	return REAL(close_range)(first, last, flags);
}

TS_EXPORT void closefrom(int lowfd)
{
	if (lowfd >= 0 &&
	    atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		ts_fd_foreach((unsigned)lowfd, ~0u, forget_one, NULL);
	REAL(closefrom)(lowfd);
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

TS_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	/* Every fcntl argument is an int or a pointer, passed alike. */
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int rv = REAL(fcntl)(fd, cmd, arg);
	after_fcntl(fd, cmd, arg, rv);
	return rv;
}

TS_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int rv = REAL(fcntl64)(fd, cmd, arg);
	after_fcntl(fd, cmd, arg, rv);
	return rv;
}

TS_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (req == FIONREAD && arg) {
		struct ts_conn *c = ts_conn_get(fd);
		if (c) {
			/* Decrypted bytes, not the kernel's ciphertext. */
			size_t n = ts_conn_pending(c, fd);
			ts_conn_put(c);
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
