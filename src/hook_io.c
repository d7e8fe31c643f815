/* Data calls. Each is a thin door: not our fd, straight to libc. The
 * fortified twins share the plain ones' paths after glibc's own check. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
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

TS_HOOK(ssize_t, read, (int fd, void *buf, size_t len), (fd, buf, len))
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(read)(fd, buf, len);
	return io_recv(c, fd, buf, len, 0);
}

TS_HOOK(ssize_t, __read_chk, (int fd, void *buf, size_t len, size_t buflen), (fd, buf, len, buflen))
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(__read_chk)(fd, buf, len, buflen);
	chk(len, buflen);
	return io_recv(c, fd, buf, len, 0);
}

TS_HOOK(ssize_t, recv, (int fd, void *buf, size_t len, int flags), (fd, buf, len, flags))
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(recv)(fd, buf, len, flags);
	return io_recv(c, fd, buf, len, flags);
}

TS_HOOK(ssize_t, __recv_chk, (int fd, void *buf, size_t len, size_t buflen, int flags), (fd, buf, len, buflen, flags))
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(__recv_chk)(fd, buf, len, buflen, flags);
	chk(len, buflen);
	return io_recv(c, fd, buf, len, flags);
}

TS_HOOK(ssize_t, write, (int fd, const void *buf, size_t len), (fd, buf, len))
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(write)(fd, buf, len);
	return io_send(c, fd, buf, len, 0);
}

TS_HOOK(ssize_t, send, (int fd, const void *buf, size_t len, int flags), (fd, buf, len, flags))
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(send)(fd, buf, len, flags);
	return io_send(c, fd, buf, len, flags);
}

static ssize_t io_recvv(struct ts_conn *c, int fd, const struct iovec *iov,
                        int n, int flags)
{
	ssize_t r = ts_conn_recvv(c, fd, iov, n, flags);
	ts_conn_put(c);
	return r;
}

static ssize_t io_sendv(struct ts_conn *c, int fd, const struct iovec *iov,
                        int n, int flags)
{
	ssize_t r = ts_conn_sendv(c, fd, iov, n, flags);
	ts_conn_put(c);
	return r;
}

TS_HOOK(ssize_t, readv, (int fd, const struct iovec *iov, int n), (fd, iov, n))
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(readv)(fd, iov, n);
	return io_recvv(c, fd, iov, n, 0);
}

TS_HOOK(ssize_t, writev, (int fd, const struct iovec *iov, int n), (fd, iov, n))
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(writev)(fd, iov, n);
	return io_sendv(c, fd, iov, n, 0);
}

/* A connected stream socket answers an address as the kernel decides; ask
 * it with a zero-length call that carries no data. */
static int addr_check(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (!sa)
		return 0;
	return REAL(sendto)(fd, "", 0, MSG_DONTWAIT | MSG_NOSIGNAL, sa, len) <
	               0
		       ? -1
		       : 0;
}

TS_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
                         const struct sockaddr *sa, socklen_t salen)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return ts_sendto_unmatched(fd, buf, len, flags, sa, salen);
	if (addr_check(fd, sa, salen) < 0) {
		ts_conn_put(c);
		return -1;
	}
	return io_send(c, fd, buf, len, flags & ~MSG_FASTOPEN);
}

static void no_peer_addr(struct sockaddr *sa, socklen_t *len)
{
	/* TCP reports no source address on received data. */
	(void)sa;
	if (len)
		*len = 0;
}

TS_HOOK(ssize_t, recvfrom, (int fd, void *buf, size_t len, int flags, struct sockaddr *sa, socklen_t *salen), (fd, buf, len, flags, sa, salen))
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(recvfrom)(fd, buf, len, flags, sa, salen);
	ssize_t r = io_recv(c, fd, buf, len, flags);
	if (r >= 0)
		no_peer_addr(sa, salen);
	return r;
}

TS_HOOK(ssize_t, __recvfrom_chk, (int fd, void *buf, size_t len, size_t buflen, int flags, struct sockaddr *sa, socklen_t *salen), (fd, buf, len, buflen, flags, sa, salen))
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(__recvfrom_chk)(fd, buf, len, buflen, flags, sa, salen);
	chk(len, buflen);
	ssize_t r = io_recv(c, fd, buf, len, flags);
	if (r >= 0)
		no_peer_addr(sa, salen);
	return r;
}

/* The kernel refuses message vectors longer than IOV_MAX with EMSGSIZE. */
static bool msg_too_long(struct ts_conn *c, const struct msghdr *m)
{
	if (m && m->msg_iovlen <= IOV_MAX)
		return false;
	ts_conn_put(c);
	errno = m ? EMSGSIZE : EFAULT;
	return true;
}

static ssize_t msg_send(struct ts_conn *c, int fd, const struct msghdr *m,
                        int flags)
{
	if (msg_too_long(c, m))
		return -1;
	if (addr_check(fd, m->msg_name, m->msg_namelen) < 0) {
		ts_conn_put(c);
		return -1;
	}
	/* Ancillary data on a TCP socket carries nothing to the peer. */
	return io_sendv(c, fd, m->msg_iov, (int)m->msg_iovlen,
	                flags & ~MSG_FASTOPEN);
}

static ssize_t msg_recv(struct ts_conn *c, int fd, struct msghdr *m,
                        int flags)
{
	if (msg_too_long(c, m))
		return -1;
	ssize_t r = io_recvv(c, fd, m->msg_iov, (int)m->msg_iovlen, flags);
	if (r >= 0) {
		m->msg_namelen = 0;
		m->msg_controllen = 0;
		m->msg_flags = 0;
	}
	return r;
}

TS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return ts_sendmsg_unmatched(fd, m, flags);
	return msg_send(c, fd, m, flags);
}

TS_EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	struct ts_conn *c;
	/* The error queue is the kernel's, not the stream's. */
	if ((flags & MSG_ERRQUEUE) || !(c = ts_conn_get(fd)))
		return REAL(recvmsg)(fd, m, flags);
	return msg_recv(c, fd, m, flags);
}

TS_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(sendmmsg)(fd, v, n, flags);
	ts_conn_put(c);
	unsigned i;
	for (i = 0; i < n && i < 1024; i++) {
		struct ts_conn *cc = ts_conn_get(fd);
		if (!cc)
			break;
		ssize_t r = msg_send(cc, fd, &v[i].msg_hdr, flags);
		if (r < 0)
			return i ? (int)i : -1;
		v[i].msg_len = (unsigned)r;
	}
	return (int)i;
}

TS_EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags,
                       struct timespec *timeout)
{
	struct ts_conn *c = ts_conn_get(fd);
	if (!c)
		return REAL(recvmmsg)(fd, v, n, flags, timeout);
	ts_conn_put(c);
	unsigned i;
	for (i = 0; i < n && i < 1024; i++) {
		struct ts_conn *cc = ts_conn_get(fd);
		if (!cc)
			break;
		/* MSG_WAITFORONE: only the first message may wait. */
		int f = flags & ~MSG_WAITFORONE;
		if (i && (flags & MSG_WAITFORONE))
			f |= MSG_DONTWAIT;
		ssize_t r = msg_recv(cc, fd, &v[i].msg_hdr, f);
		if (r < 0)
			return i ? (int)i : -1;
		v[i].msg_len = (unsigned)r;
		if (r == 0)
			break;
	}
	return (int)i;
}
