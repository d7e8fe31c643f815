/* accept(2)/accept4(2): where a connection the program serves can become
 * a TLS server session (conn_server.c). A process whose policy has no
 * server rule pays one flag test. */
#define _GNU_SOURCE
#include <sys/socket.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

static int accepted(int fd)
{
	if (fd >= 0)
		ts_conn_accepted(fd);
	return fd;
}

TS_EXPORT int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	return accepted(REAL(accept)(fd, sa, len));
}

TS_EXPORT int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	return accepted(REAL(accept4)(fd, sa, len, flags));
}
