/* POSIX AIO. glibc's aio threads write with pwrite(), and on a socket
 * (ESPIPE) fall back to its internal write(): no hook sees either, so
 * aio on an upgraded fd would put plaintext on the wire. It is refused
 * before anything is queued (EOPNOTSUPP), with one error line. */
/* aio_write and aio_write64 are both defined here on purpose (hook_fd.c). */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <aio.h>
#include <errno.h>

#include "conn.h"
#include "hooks.h"
#include "log.h"
#include "real.h"

static bool refuse(int fd, const char *what)
{
	if (!ts_fd_peek(fd))
		return false;
	ts_error("%s on fd %d: POSIX AIO cannot go through a TLS session; "
	         "refused", what, fd);
	errno = EOPNOTSUPP;
	return true;
}

TS_EXPORT int aio_write(struct aiocb *cb)
{
	if (refuse(cb->aio_fildes, "aio_write"))
		return -1;
	return REAL(aio_write)(cb);
}

TS_EXPORT int aio_write64(struct aiocb64 *cb)
{
	if (refuse(cb->aio_fildes, "aio_write"))
		return -1;
	return REAL(aio_write64)(cb);
}

TS_EXPORT int aio_read(struct aiocb *cb)
{
	if (refuse(cb->aio_fildes, "aio_read"))
		return -1;
	return REAL(aio_read)(cb);
}

TS_EXPORT int aio_read64(struct aiocb64 *cb)
{
	if (refuse(cb->aio_fildes, "aio_read"))
		return -1;
	return REAL(aio_read64)(cb);
}

/* Nothing of the list is queued when one entry names an upgraded fd. */
#define LIST_REFUSED(list, n)                                              \
	({                                                                 \
		bool hit_ = false;                                         \
		for (int i_ = 0; i_ < (n) && !hit_; i_++)          \
			hit_ = list[i_] &&                                 \
			       list[i_]->aio_lio_opcode != LIO_NOP &&      \
			       refuse(list[i_]->aio_fildes, "lio_listio"); \
		hit_;                                                      \
	})

TS_EXPORT int lio_listio(int mode, struct aiocb *const list[], int n,
                         struct sigevent *sev)
{
	if (LIST_REFUSED(list, n))
		return -1;
	return REAL(lio_listio)(mode, list, n, sev);
}

TS_EXPORT int lio_listio64(int mode, struct aiocb64 *const list[], int n,
                           struct sigevent *sev)
{
	if (LIST_REFUSED(list, n))
		return -1;
	return REAL(lio_listio64)(mode, list, n, sev);
}
