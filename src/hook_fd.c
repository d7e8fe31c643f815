/* fd lifecycle and mode: close, fcntl, ioctl. */
/* fcntl and fcntl64 are both defined here on purpose: with
 * _FILE_OFFSET_BITS=64 glibc's header would rename our fcntl to fcntl64. */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

TS_EXPORT int close(int fd)
{
	if (atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		ts_conn_forget(fd);
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

static void after_setfl(int fd, int cmd, void *arg, int rv)
{
	if (rv < 0 || cmd != F_SETFL)
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
	after_setfl(fd, cmd, arg, rv);
	return rv;
}

TS_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int rv = REAL(fcntl64)(fd, cmd, arg);
	after_setfl(fd, cmd, arg, rv);
	return rv;
}

TS_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
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
