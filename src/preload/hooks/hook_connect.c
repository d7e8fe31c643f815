/* connect(2) and its implicit forms: the one place a socket becomes ours.
 * Every way the kernel can start a TCP connection from libc goes through
 * ts_conn_connect(): connect and glibc's exported __connect, and TCP Fast
 * Open's sendto/sendmsg/sendmmsg with MSG_FASTOPEN and an address (the
 * data must never ride on the SYN in plaintext). TCP_FASTOPEN_CONNECT
 * makes connect() itself return at once; it still goes through here. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "hooks.h"
#include "log.h"
#include "real.h"
#include "resolve.h"

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

/* SCM_RIGHTS hands an fd to another process, which would get the bare
 * socket without its session: as across exec, it gets one whose peer is
 * gone, and one error line says so. m unchanged when it passes no
 * upgraded fd; else a copy in *copy with its control data in ctl. */
static const struct msghdr *handoff(const struct msghdr *m,
                                    struct msghdr *copy, char *ctl,
                                    size_t ctlmax, int *dead)
{
	*dead = -1;
	if (!m || !m->msg_control || !m->msg_controllen ||
	    !atomic_load_explicit(&ts_fd_live, memory_order_relaxed))
		return m;
	bool ours = false;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(m); h && !ours;
	     h = CMSG_NXTHDR((struct msghdr *)m, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n && !ours; i++) {
			int f;
			memcpy(&f, CMSG_DATA(h) + i * sizeof f, sizeof f);
			ours = ts_fd_peek(f);
		}
	}
	if (!ours || m->msg_controllen > ctlmax)
		return m; /* (too large to copy: the kernel refuses it too) */
	*copy = *m;
	memcpy(ctl, m->msg_control, m->msg_controllen);
	copy->msg_control = ctl;
	*dead = ts_conn_dead_socket();
	for (struct cmsghdr *h = CMSG_FIRSTHDR(copy); h;
	     h = CMSG_NXTHDR(copy, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int f;
			memcpy(&f, CMSG_DATA(h) + i * sizeof f, sizeof f);
			if (!ts_fd_peek(f))
				continue;
			ts_error("fd %d is an upgraded socket: the process it is "
			         "passed to (SCM_RIGHTS) would get the TLS stream "
			         "without its session; it gets a closed socket "
			         "instead", f);
			memcpy(CMSG_DATA(h) + i * sizeof f, dead, sizeof f);
		}
	}
	return copy;
}

ssize_t ts_sendmsg_plain(int fd, const struct msghdr *m, int flags)
{
	struct msghdr copy;
	char ctl[4096];
	int dead;
	const struct msghdr *use = handoff(m, &copy, ctl, sizeof ctl, &dead);
	ssize_t r = REAL(sendmsg)(fd, use, flags);
	if (dead >= 0) {
		int e = errno;
		REAL(close)(dead);
		errno = e;
	}
	return r;
}

ssize_t ts_sendmsg_unmatched(int fd, const struct msghdr *m, int flags)
{
	int h = m && (flags & MSG_FASTOPEN)
	                ? ts_fastopen_connect(fd, m->msg_name, m->msg_namelen)
	                : 0;
	if (h < 0)
		return -1;
	if (!h)
		return ts_sendmsg_plain(fd, m, flags);
	struct msghdr plain = *m;
	plain.msg_name = NULL;
	plain.msg_namelen = 0;
	return sendmsg(fd, &plain, flags & ~MSG_FASTOPEN);
}

/* rcmd(3) and rexec(3) connect with libc's internal connect, which no hook
 * sees, and speak plaintext by design: where connect() to any address of
 * the host would be upgraded or refused, they are refused. */
static bool remote_refused(const char *what, const char *host,
                           unsigned short rport)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	char norm[TS_RESOLVE_NAME_MAX], dest[TS_DEST_STR_MAX];
	const struct ts_rule *hit = NULL;
	bool refuse = false;

	ts_state_init();
	if (ts_state.failed) {
		ts_error("%s to %s: refused: %s", what, host ? host : "?",
		         ts_state.failed_reason);
		return true;
	}
	if (!ts_state.policy || !host)
		return false;
	if (ts_real_getaddrinfo(host, NULL, &hints, &res) != 0)
		return false; /* libc's own lookup fails the same way */
	bool named = ts_resolve_normalise(host, norm, sizeof norm);
	for (ai = res; ai && !refuse; ai = ai->ai_next) {
		struct ts_dest d;
		struct ts_decision dec;
		if (ts_dest_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &d) < 0)
			continue;
		d.port = ntohs(rport);
		d.host = named ? norm : NULL;
		ts_policy_decide(ts_state.policy, &d, &dec);
		if (dec.verdict != TS_VERDICT_PASS) {
			refuse = true;
			hit = dec.rule;
			ts_dest_format(&d, dest, sizeof dest);
		}
	}
	freeaddrinfo(res);
	if (refuse)
		ts_error("%s %s: refused: %s makes its own plaintext connection, "
		         "which tlsshim cannot upgrade", hit ? hit->name : "unmatched",
		         dest, what);
	return refuse;
}

TS_EXPORT int rcmd_af(char **ahost, unsigned short rport, const char *locuser,
                      const char *remuser, const char *cmd, int *fd2p,
                      sa_family_t af)
{
	if (ahost && remote_refused("rcmd", *ahost, rport)) {
		errno = ECONNREFUSED;
		return -1;
	}
	return REAL(rcmd_af)(ahost, rport, locuser, remuser, cmd, fd2p, af);
}

TS_EXPORT int rcmd(char **ahost, unsigned short rport, const char *locuser,
                   const char *remuser, const char *cmd, int *fd2p)
{
	return rcmd_af(ahost, rport, locuser, remuser, cmd, fd2p, AF_INET);
}

TS_EXPORT int rexec_af(char **ahost, int rport, const char *name,
                       const char *pass, const char *cmd, int *fd2p,
                       sa_family_t af)
{
	if (ahost && remote_refused("rexec", *ahost, (unsigned short)rport)) {
		errno = ECONNREFUSED;
		return -1;
	}
	return REAL(rexec_af)(ahost, rport, name, pass, cmd, fd2p, af);
}

TS_EXPORT int rexec(char **ahost, int rport, const char *name,
                    const char *pass, const char *cmd, int *fd2p)
{
	return rexec_af(ahost, rport, name, pass, cmd, fd2p, AF_INET);
}
