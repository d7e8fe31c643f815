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

/* 1 when the implicit connect was handled (result in *r). */
static int fastopen(int fd, int flags, const struct sockaddr *sa,
                    socklen_t salen, int *r)
{
	if (!(flags & MSG_FASTOPEN) || !sa)
		return 0;
	return ts_conn_connect(fd, sa, salen, r) == 0;
}

ssize_t ts_sendto_unmatched(int fd, const void *buf, size_t len, int flags,
                            const struct sockaddr *sa, socklen_t salen)
{
	int r;
	if (!fastopen(fd, flags, sa, salen, &r))
		return REAL(sendto)(fd, buf, len, flags, sa, salen);
	if (r < 0)
		return -1;
	return send(fd, buf, len, flags & ~MSG_FASTOPEN);
}

ssize_t ts_sendmsg_unmatched(int fd, const struct msghdr *m, int flags)
{
	int r;
	if (!m || !fastopen(fd, flags, m->msg_name, m->msg_namelen, &r))
		return REAL(sendmsg)(fd, m, flags);
	if (r < 0)
		return -1;
	struct msghdr plain = *m;
	plain.msg_name = NULL;
	plain.msg_namelen = 0;
	return sendmsg(fd, &plain, flags & ~MSG_FASTOPEN);
}
