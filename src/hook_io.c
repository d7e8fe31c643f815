/* Data calls. Each is a thin door: not our fd, straight to libc. The
 * fortified twins share the plain ones' paths after glibc's own check. */
#define _GNU_SOURCE
#include <unistd.h>
#include <sys/socket.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

/* The check glibc's fortified wrappers make before reading. */
static void chk(size_t len, size_t buflen)
{
	if (len > buflen)
		__builtin_trap();
}

static ssize_t io_recv(struct ts_conn *c, int fd, void *buf, size_t len,
                       int flags)
{
	ssize_t r = ts_conn_recv(c, fd, buf, len, flags);
	ts_conn_put(c);
	return r;
}

static ssize_t io_send(struct ts_conn *c, int fd, const void *buf,
                       size_t len, int flags)
{
	ssize_t r = ts_conn_send(c, fd, buf, len, flags);
	ts_conn_put(c);
	return r;
}

TS_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(read)(fd, buf, len);
	return io_recv(c, fd, buf, len, 0);
}

TS_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(__read_chk)(fd, buf, len, buflen);
	chk(len, buflen);
	return io_recv(c, fd, buf, len, 0);
}

TS_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(recv)(fd, buf, len, flags);
	return io_recv(c, fd, buf, len, flags);
}

TS_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen,
                             int flags)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(__recv_chk)(fd, buf, len, buflen, flags);
	chk(len, buflen);
	return io_recv(c, fd, buf, len, flags);
}

TS_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(write)(fd, buf, len);
	return io_send(c, fd, buf, len, 0);
}

TS_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(send)(fd, buf, len, flags);
	return io_send(c, fd, buf, len, flags);
}
