/* getsockopt(2): SO_ERROR of a socket whose handshake runs asynchronously
 * reports the handshake's outcome, not the TCP connect's. */
#define _GNU_SOURCE
#include <sys/socket.h>

#include "conn_async.h"
#include "hooks.h"
#include "real.h"

TS_EXPORT int getsockopt(int fd, int level, int opt, void *val,
                         socklen_t *len)
{
	struct ts_conn *c;

	if (level != SOL_SOCKET || opt != SO_ERROR || !(c = ts_conn_get(fd)))
		return REAL(getsockopt)(fd, level, opt, val, len);
	int r = ts_conn_async_so_error(c, fd, val, len);
	ts_conn_put(c);
	return r;
}
