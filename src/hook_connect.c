/* connect(2) and its implicit forms: the one place a socket becomes ours.
 * Every way the kernel can start a TCP connection from libc goes through
 * ts_conn_connect(): connect and glibc's exported __connect, and TCP Fast
 * Open's sendto/sendmsg/sendmmsg with MSG_FASTOPEN and an address (the
 * data must never ride on the SYN in plaintext). TCP_FASTOPEN_CONNECT
 * makes connect() itself return at once; it still goes through here. */
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

static int do_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	int result;

	if (ts_conn_connect(fd, sa, len, &result) == 0)
		return result;
	return REAL(connect)(fd, sa, len);
}

TS_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	return do_connect(fd, sa, len);
}

TS_EXPORT int __connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	return do_connect(fd, sa, len);
}

int ts_fastopen_connect(int fd, const void *sa, socklen_t salen)
{
	int r;
	if (!sa || ts_conn_connect(fd, sa, salen, &r) != 0)
		return 0;
	return r < 0 ? -1 : 1;
}

ssize_t ts_sendto_unmatched(int fd, const void *buf, size_t len, int flags,
                            const struct sockaddr *sa, socklen_t salen)
{
	int h = flags & MSG_FASTOPEN ? ts_fastopen_connect(fd, sa, salen) : 0;
	if (h < 0)
		return -1;
	if (!h)
		return REAL(sendto)(fd, buf, len, flags, sa, salen);
	return send(fd, buf, len, flags & ~MSG_FASTOPEN);
}

ssize_t ts_sendmsg_unmatched(int fd, const struct msghdr *m, int flags)
{
	int h = m && (flags & MSG_FASTOPEN)
	                ? ts_fastopen_connect(fd, m->msg_name, m->msg_namelen)
	                : 0;
	if (h < 0)
		return -1;
	if (!h)
		return REAL(sendmsg)(fd, m, flags);
	struct msghdr plain = *m;
	plain.msg_name = NULL;
	plain.msg_namelen = 0;
	return sendmsg(fd, &plain, flags & ~MSG_FASTOPEN);
}
