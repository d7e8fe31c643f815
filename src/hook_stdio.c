/* fdopen(3) on an upgraded fd. glibc's stdio reads and writes with its
 * internal read/write, which never reach our hooks, so such a FILE gets
 * cookie functions that go through the session. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

static ssize_t cookie_read(void *cookie, char *buf, size_t len)
{
	int fd = (int)(intptr_t)cookie;
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(read)(fd, buf, len);
	ssize_t r = ts_conn_recv(c, fd, buf, len, 0);
	ts_conn_put(c);
	return r;
}

static ssize_t cookie_write(void *cookie, const char *buf, size_t len)
{
	int fd = (int)(intptr_t)cookie;
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(write)(fd, buf, len);
	ssize_t r = ts_conn_send(c, fd, buf, len, 0);
	ts_conn_put(c);
	/* stdio treats 0 as an error; a write of n > 0 bytes never
	 * returns 0 from a stream socket. */
	return r;
}

static int cookie_close(void *cookie)
{
	return close((int)(intptr_t)cookie);
}

TS_EXPORT FILE *fdopen(int fd, const char *mode)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(fdopen)(fd, mode);
	ts_conn_put(c);
	/* Validate mode and fd as fdopen would. */
	FILE *probe = REAL(fdopen)(REAL(dup)(fd), mode);
	if (!probe)
		return NULL;
	REAL(fclose)(probe);
	cookie_io_functions_t io = {
		.read = cookie_read,
		.write = cookie_write,
		.seek = NULL,
		.close = cookie_close,
	};
	FILE *f = fopencookie((void *)(intptr_t)fd, mode, io);
	/* fileno() must still name the socket (programs shutdown(fileno(f))
	 * or poll it); glibc keeps cookie streams open with any _fileno other
	 * than -1 and does its I/O through the cookie only. */
	if (f)
		f->_fileno = fd;
	return f;
}
