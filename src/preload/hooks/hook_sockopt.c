/* getsockopt(2)/setsockopt(2) on our sockets: SO_ERROR of a socket whose
 * handshake runs asynchronously reports the handshake's outcome, not the
 * TCP connect's; TCP_NODELAY and TCP_CORK go through the large-write
 * Nagle logic (src/common/nodelay.h), so the program sees and sets only its own. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "conn.h"
#include "conn_async.h"
#include "hooks.h"
#include "real.h"

static bool nagle_opt(int level, int opt)
{
	return level == IPPROTO_TCP && (opt == TCP_NODELAY || opt == TCP_CORK);
}

TS_HOOK(int, getsockopt,
        (int fd, int level, int opt, void *val, socklen_t *len),
        (fd, level, opt, val, len))
{
	bool so_error = level == SOL_SOCKET && opt == SO_ERROR;
	struct ts_conn *c;

	if ((!so_error && !nagle_opt(level, opt)) || !(c = ts_conn_get(fd)))
		return REAL(getsockopt)(fd, level, opt, val, len);
	int r = so_error ? ts_conn_async_so_error(c, fd, val, len)
	                 : ts_conn_tcp_getsockopt(c, fd, opt, val, len);
	ts_conn_put(c);
	return r;
}

TS_HOOK(int, setsockopt,
        (int fd, int level, int opt, const void *val, socklen_t len),
        (fd, level, opt, val, len))
{
	struct ts_conn *c;

	if (!nagle_opt(level, opt) || !(c = ts_conn_get(fd)))
		return REAL(setsockopt)(fd, level, opt, val, len);
	int r = ts_conn_tcp_setsockopt(c, fd, opt, val, len);
	ts_conn_put(c);
	return r;
}
