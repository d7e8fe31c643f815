/* connect(2): the one place a socket becomes ours. */
#define _GNU_SOURCE
#include <sys/socket.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

TS_EXPORT int socket(int domain, int type, int proto)
{
	int fd = REAL(socket)(domain, type, proto);
	if (fd >= 0 && atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		ts_conn_purge(fd);
	return fd;
}

TS_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	int result;

	if (ts_conn_connect(fd, sa, len, &result) == 0)
		return result;
	return REAL(connect)(fd, sa, len);
}
