/* Data calls. Each is a thin door: not our fd, straight to libc; ours, the
 * session (ts_conn_call, which looks the fd up again if it changed under
 * the call). The fortified twins and glibc's exported internal names
 * (__read, __write, __send) share the plain ones' paths. */
/* pwritev2 and pwritev64v2 are both defined here on purpose (hook_fd.c). */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

/* The check glibc's fortified wrappers make before reading. */
static void chk(size_t len, size_t buflen)
{
	if (len > buflen)
		__builtin_trap();
}

static ssize_t do_read(int fd, void *buf, size_t len)
{
	ssize_t r;
	ts_conn_call(fd, r, ts_conn_recv(c, fd, buf, len, 0),
	             REAL(read)(fd, buf, len));
	return r;
}

TS_HOOK(ssize_t, read, (int fd, void *buf, size_t len), (fd, buf, len))
{
	return do_read(fd, buf, len);
}

TS_EXPORT ssize_t __read(int fd, void *buf, size_t len)
{
	return do_read(fd, buf, len);
}

TS_HOOK(ssize_t, __read_chk, (int fd, void *buf, size_t len, size_t buflen), (fd, buf, len, buflen))
{
	ssize_t r;
	ts_conn_call(fd, r, (chk(len, buflen), ts_conn_recv(c, fd, buf, len, 0)),
	             REAL(__read_chk)(fd, buf, len, buflen));
	return r;
}

TS_HOOK(ssize_t, recv, (int fd, void *buf, size_t len, int flags), (fd, buf, len, flags))
{
	ssize_t r;
	ts_conn_call(fd, r, ts_conn_recv(c, fd, buf, len, flags),
	             REAL(recv)(fd, buf, len, flags));
	return r;
}

TS_HOOK(ssize_t, __recv_chk, (int fd, void *buf, size_t len, size_t buflen, int flags), (fd, buf, len, buflen, flags))
{
	ssize_t r;
	ts_conn_call(fd, r,
	             (chk(len, buflen), ts_conn_recv(c, fd, buf, len, flags)),
	             REAL(__recv_chk)(fd, buf, len, buflen, flags));
	return r;
}

static ssize_t do_write(int fd, const void *buf, size_t len)
{
	ssize_t r;
	ts_conn_send_call(fd, r, ts_conn_send(c, fd, buf, len, 0),
	                  REAL(write)(fd, buf, len));
	return r;
}

TS_SEND_HOOK(ssize_t, write, (int fd, const void *buf, size_t len), (fd, buf, len))
{
	return do_write(fd, buf, len);
}

TS_EXPORT ssize_t __write(int fd, const void *buf, size_t len)
{
	return do_write(fd, buf, len);
}

static ssize_t do_send(int fd, const void *buf, size_t len, int flags)
{
	ssize_t r;
	ts_conn_send_call(fd, r, ts_conn_send(c, fd, buf, len, flags),
	                  REAL(send)(fd, buf, len, flags));
	return r;
}

TS_SEND_HOOK(ssize_t, send, (int fd, const void *buf, size_t len, int flags), (fd, buf, len, flags))
{
	return do_send(fd, buf, len, flags);
}

TS_EXPORT ssize_t __send(int fd, const void *buf, size_t len, int flags)
{
	return do_send(fd, buf, len, flags);
}

TS_HOOK(ssize_t, readv, (int fd, const struct iovec *iov, int n), (fd, iov, n))
{
	ssize_t r;
	ts_conn_call(fd, r, ts_conn_recvv(c, fd, iov, n, 0),
	             REAL(readv)(fd, iov, n));
	return r;
}

TS_SEND_HOOK(ssize_t, writev, (int fd, const struct iovec *iov, int n), (fd, iov, n))
{
	ssize_t r;
	ts_conn_send_call(fd, r, ts_conn_sendv(c, fd, iov, n, 0),
	                  REAL(writev)(fd, iov, n));
	return r;
}

/* preadv2/pwritev2 at offset -1 are readv/writev (with RWF_NOWAIT a
 * non-blocking call); at any other offset a socket answers ESPIPE. */
static ssize_t rwf_v(struct ts_conn *c, int fd, const struct iovec *iov,
                     int n, off_t off, int rwf, bool out)
{
	int flags = (rwf & RWF_NOWAIT) ? MSG_DONTWAIT : 0;

	if (off != -1) {
		errno = ESPIPE;
		return -1;
	}
	if (rwf & ~(RWF_NOWAIT | RWF_HIPRI | RWF_DSYNC | RWF_SYNC |
	            RWF_APPEND)) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return out ? ts_conn_sendv(c, fd, iov, n, flags)
	           : ts_conn_recvv(c, fd, iov, n, flags);
}

/* pwritev2, pwritev64v2 (they can send: TS_SEND_HOOK), preadv2 and
 * preadv64v2: one shape, one offset type each. */
#define RWF_HOOK(hook, call, name, off_type, out)                          \
	hook(ssize_t, name,                                                \
	     (int fd, const struct iovec *iov, int n, off_type off, int rwf), \
	     (fd, iov, n, off, rwf))                                       \
	{                                                                  \
		ssize_t r;                                                 \
		call(fd, r, rwf_v(c, fd, iov, n, (off_t)off, rwf, out),    \
		     REAL(name)(fd, iov, n, off, rwf));                    \
		return r;                                                  \
	}

RWF_HOOK(TS_SEND_HOOK, ts_conn_send_call, pwritev2, off_t, true)
RWF_HOOK(TS_SEND_HOOK, ts_conn_send_call, pwritev64v2, off64_t, true)
RWF_HOOK(TS_HOOK, ts_conn_call, preadv2, off_t, false)
RWF_HOOK(TS_HOOK, ts_conn_call, preadv64v2, off64_t, false)

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

static ssize_t conn_sendto(struct ts_conn *c, int fd, const void *buf,
                           size_t len, int flags, const struct sockaddr *sa,
                           socklen_t salen)
{
	if (addr_check(fd, sa, salen) < 0)
		return -1;
	return ts_conn_send(c, fd, buf, len, flags & ~MSG_FASTOPEN);
}

TS_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
                         const struct sockaddr *sa, socklen_t salen)
{
	ssize_t r;
	ts_conn_send_call(fd, r,
	                  conn_sendto(c, fd, buf, len, flags, sa, salen),
	                  ts_sendto_unmatched(fd, buf, len, flags, sa, salen));
	return r;
}

static void no_peer_addr(struct sockaddr *sa, socklen_t *len)
{
	/* TCP reports no source address on received data. */
	(void)sa;
	if (len)
		*len = 0;
}

static ssize_t conn_recvfrom(struct ts_conn *c, int fd, void *buf, size_t len,
                             int flags, struct sockaddr *sa, socklen_t *salen)
{
	ssize_t r = ts_conn_recv(c, fd, buf, len, flags);
	if (r >= 0)
		no_peer_addr(sa, salen);
	return r;
}

TS_HOOK(ssize_t, recvfrom, (int fd, void *buf, size_t len, int flags, struct sockaddr *sa, socklen_t *salen), (fd, buf, len, flags, sa, salen))
{
	ssize_t r;
	ts_conn_call(fd, r, conn_recvfrom(c, fd, buf, len, flags, sa, salen),
	             REAL(recvfrom)(fd, buf, len, flags, sa, salen));
	return r;
}

TS_HOOK(ssize_t, __recvfrom_chk, (int fd, void *buf, size_t len, size_t buflen, int flags, struct sockaddr *sa, socklen_t *salen), (fd, buf, len, buflen, flags, sa, salen))
{
	ssize_t r;
	ts_conn_call(fd, r,
	             (chk(len, buflen),
	              conn_recvfrom(c, fd, buf, len, flags, sa, salen)),
	             REAL(__recvfrom_chk)(fd, buf, len, buflen, flags, sa,
	                                  salen));
	return r;
}

/* The kernel refuses message vectors longer than IOV_MAX with EMSGSIZE. */
static bool msg_bad(const struct msghdr *m)
{
	if (m && m->msg_iovlen <= IOV_MAX)
		return false;
	errno = m ? EMSGSIZE : EFAULT;
	return true;
}

static ssize_t msg_send(struct ts_conn *c, int fd, const struct msghdr *m,
                        int flags)
{
	if (msg_bad(m) || addr_check(fd, m->msg_name, m->msg_namelen) < 0)
		return -1;
	/* Ancillary data on a TCP socket carries nothing to the peer. */
	return ts_conn_sendv(c, fd, m->msg_iov, (int)m->msg_iovlen,
	                     flags & ~MSG_FASTOPEN);
}

static ssize_t msg_recv(struct ts_conn *c, int fd, struct msghdr *m,
                        int flags)
{
	if (msg_bad(m))
		return -1;
	ssize_t r = ts_conn_recvv(c, fd, m->msg_iov, (int)m->msg_iovlen, flags);
	if (r >= 0) {
		m->msg_namelen = 0;
		m->msg_controllen = 0;
		m->msg_flags = 0;
	}
	return r;
}

TS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	ssize_t r;
	ts_conn_send_call(fd, r, msg_send(c, fd, m, flags),
	                  ts_sendmsg_unmatched(fd, m, flags));
	return r;
}

TS_EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	ssize_t r;
	/* The error queue is the kernel's, not the stream's. */
	if (flags & MSG_ERRQUEUE)
		return REAL(recvmsg)(fd, m, flags);
	ts_conn_call(fd, r, msg_recv(c, fd, m, flags),
	             REAL(recvmsg)(fd, m, flags));
	return r;
}

/* One message of sendmmsg/recvmmsg through the session; -1 with errno, or
 * the byte count. The fd may stop being ours between messages. */
static ssize_t mmsg_one(int fd, struct msghdr *m, int flags, bool out)
{
	ssize_t r;
	if (out)
		ts_conn_send_call(fd, r, msg_send(c, fd, m, flags),
		                  ts_sendmsg_plain(fd, m, flags));
	else
		ts_conn_call(fd, r, msg_recv(c, fd, m, flags),
		             REAL(recvmsg)(fd, m, flags));
	return r;
}

static bool carries_control(const struct mmsghdr *v, unsigned n)
{
	for (unsigned i = 0; v && i < n; i++)
		if (v[i].msg_hdr.msg_controllen)
			return true;
	return false;
}

TS_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	struct ts_raw_mark m;

	while (!ts_fd_peek(fd)) {
		/* TCP Fast Open's implicit connect, as for sendmsg: the
		 * kernel would connect on the first message. */
		int handled = (flags & MSG_FASTOPEN) && n && v
		                      ? ts_fastopen_connect(fd,
		                                            v[0].msg_hdr.msg_name,
		                                            v[0].msg_hdr.msg_namelen)
		                      : 0;
		if (handled < 0)
			return -1;
		if (handled) {
			flags &= ~MSG_FASTOPEN;
			break;
		}
		if (carries_control(v, n))
			break; /* one by one, each message's fds looked at */
		if (!ts_raw_begin(fd, &m))
			continue;
		int r = REAL(sendmmsg)(fd, v, n, flags);
		ts_raw_end(&m);
		return r;
	}
	unsigned i;
	for (i = 0; i < n && i < 1024; i++) {
		ssize_t r = mmsg_one(fd, &v[i].msg_hdr, flags, true);
		if (r < 0)
			return i ? (int)i : -1;
		v[i].msg_len = (unsigned)r;
	}
	return (int)i;
}

TS_EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags,
                       struct timespec *timeout)
{
	if (!ts_fd_peek(fd))
		return REAL(recvmmsg)(fd, v, n, flags, timeout);
	unsigned i;
	for (i = 0; i < n && i < 1024; i++) {
		/* MSG_WAITFORONE: only the first message may wait. */
		int f = flags & ~MSG_WAITFORONE;
		if (i && (flags & MSG_WAITFORONE))
			f |= MSG_DONTWAIT;
		ssize_t r = mmsg_one(fd, &v[i].msg_hdr, f, false);
		if (r < 0)
			return i ? (int)i : -1;
		v[i].msg_len = (unsigned)r;
		if (r == 0)
			break;
	}
	return (int)i;
}
