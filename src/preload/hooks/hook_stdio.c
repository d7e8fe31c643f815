/* stdio on an upgraded fd. glibc's stdio reads and writes with its
 * internal read/write, which never reach our hooks: a FILE made by
 * fdopen(3) on an upgraded fd gets cookie functions that go through the
 * session, and dprintf(3)/vdprintf(3) (a FILE on the stack, same internal
 * write) format here and send through the session. Streams that existed
 * on the number before it was upgraded are sealed (stdio_seal.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"
#include "stdio_seal.h"

static ssize_t cookie_read(void *cookie, char *buf, size_t len)
{
	int fd = (int)(intptr_t)cookie;
	ssize_t r;
	ts_conn_call(fd, r, ts_conn_recv(c, fd, buf, len, 0),
	             REAL(read)(fd, buf, len));
	return r;
}

static ssize_t cookie_write(void *cookie, const char *buf, size_t len)
{
	int fd = (int)(intptr_t)cookie;
	ssize_t r;
	/* stdio treats 0 as an error; a write of n > 0 bytes never returns
	 * 0 from a stream socket. */
	ts_conn_send_call(fd, r, ts_conn_send(c, fd, buf, len, 0),
	                  REAL(write)(fd, buf, len));
	return r;
}

static int cookie_close(void *cookie)
{
	return close((int)(intptr_t)cookie);
}

static FILE *stream_on(int fd, const char *mode)
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
	if (f) {
		f->_fileno = fd;
		ts_stdio_own(f);
	}
	return f;
}

TS_EXPORT FILE *fdopen(int fd, const char *mode)
{
	return stream_on(fd, mode);
}

/* glibc exports fdopen under its old internal name too: the same door. */
TS_EXPORT FILE *_IO_fdopen(int fd, const char *mode)
{
	return stream_on(fd, mode);
}

TS_EXPORT int fclose(FILE *f)
{
	ts_stdio_disown(f);
	return REAL(fclose)(f);
}

/* Everything, as the blocking write of a stream would: dprintf's FILE
 * writes until done or an error. */
static int send_all(int fd, const char *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t w;
		ts_conn_send_call(fd, w,
		                  ts_conn_send(c, fd, p + done, n - done, 0),
		                  REAL(write)(fd, p + done, n - done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return (int)n;
}

/* libc's own vdprintf where fd is not ours, in the marked window; -2
 * when it became ours meanwhile. */
static int plain_vdprintf(int fd, int flag, const char *fmt, va_list ap,
                          bool chk)
{
	struct ts_raw_mark m;

	if (ts_fd_peek(fd) || !ts_raw_begin(fd, &m))
		return -2;
	int r = chk ? REAL(__vdprintf_chk)(fd, flag, fmt, ap)
	            : REAL(vdprintf)(fd, fmt, ap);
	ts_raw_end(&m);
	return r;
}

static int do_vdprintf(int fd, const char *fmt, va_list ap)
{
	char small[512], *buf = small;
	va_list aq;

	va_copy(aq, ap);
	int n = vsnprintf(small, sizeof small, fmt, aq);
	va_end(aq);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof small) {
		if (!(buf = malloc((size_t)n + 1))) {
			errno = ENOMEM;
			return -1;
		}
		vsnprintf(buf, (size_t)n + 1, fmt, ap);
	}
	int r = send_all(fd, buf, (size_t)n);
	if (buf != small)
		free(buf);
	return r;
}

/* _FORTIFY_SOURCE's twins share the path: the flag asks for %n checks
 * our own formatting into memory does not need to repeat. */
static int any_vdprintf(int fd, int flag, const char *fmt, va_list ap,
                        bool chk)
{
	va_list aq;
	va_copy(aq, ap);
	int r = plain_vdprintf(fd, flag, fmt, aq, chk);
	va_end(aq);
	return r != -2 ? r : do_vdprintf(fd, fmt, ap);
}

TS_EXPORT int vdprintf(int fd, const char *fmt, va_list ap)
{
	return any_vdprintf(fd, 0, fmt, ap, false);
}

TS_EXPORT int dprintf(int fd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = any_vdprintf(fd, 0, fmt, ap, false);
	va_end(ap);
	return r;
}

TS_EXPORT int __vdprintf_chk(int fd, int flag, const char *fmt, va_list ap)
{
	return any_vdprintf(fd, flag, fmt, ap, true);
}

TS_EXPORT int __dprintf_chk(int fd, int flag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = any_vdprintf(fd, flag, fmt, ap, true);
	va_end(ap);
	return r;
}

/* eventfd_write(3) writes its 8 bytes with libc's internal write. */
TS_EXPORT int eventfd_write(int fd, eventfd_t value)
{
	ssize_t r;
	ts_conn_send_call(fd, r, ts_conn_send(c, fd, &value, sizeof value, 0),
	                  REAL(eventfd_write)(fd, value));
	if (r == (ssize_t)sizeof value)
		return 0;
	return r < 0 ? -1 : 0;
}
