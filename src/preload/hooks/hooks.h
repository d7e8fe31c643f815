/* Shared by the hook files only. */
#ifndef TS_HOOKS_H
#define TS_HOOKS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/single_threaded.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "conn.h"
#include "fdtab.h"
#include "rawguard.h"
#include "real.h"

#define TS_EXPORT __attribute__((visibility("default")))

/* True while no fd of the process is upgraded and libc's function is
 * bound: then no fd can be ours and the hook is a tail call into libc. */
#define TS_IDLE(name)                                                      \
	__builtin_expect(atomic_load_explicit(&ts_fd_live,                 \
	                                      memory_order_relaxed) == 0 &&  \
	                         ts_real.name != NULL,                     \
	                 1)

/* Defines the exported hook `name` as that tail call, and opens the
 * definition of name##_door, the out-of-line rest that looks the fd up.
 * Keeping the rest out of line lets the compiler give the common path no
 * stack frame: a load, two branches and a jump on an untouched write(). */
#define TS_HOOK(ret, name, params, args)                                   \
	static __attribute__((noinline)) ret name##_door params;          \
	TS_EXPORT ret name params                                          \
	{                                                                  \
		if (TS_IDLE(name))                                         \
			return ts_real.name args;                          \
		return name##_door args;                                   \
	}                                                                  \
	static ret name##_door params

/* The same for calls that can send (fd among their parameters): the tail
 * call only in a process without threads; with threads, the window
 * between the check and the kernel call is marked (rawguard.h), and the
 * check made again inside it. */
#define TS_SEND_HOOK(ret, name, params, args)                              \
	static __attribute__((noinline)) ret name##_door params;          \
	static __attribute__((noinline)) ret name##_marked params          \
	{                                                                  \
		struct ts_raw_mark m;                                      \
		ts_raw_enter(&m, fd);                                      \
		if (__builtin_expect(atomic_load_explicit(                 \
		                             &ts_fd_live,                  \
		                             memory_order_relaxed) != 0,   \
		                     0)) {                                 \
			ts_raw_leave(&m);                                  \
			return name##_door args;                           \
		}                                                          \
		ret r = ts_real.name args;                                 \
		ts_raw_leave(&m);                                          \
		return r;                                                  \
	}                                                                  \
	TS_EXPORT ret name params                                          \
	{                                                                  \
		if (TS_IDLE(name)) {                                       \
			if (__builtin_expect(__libc_single_threaded, 1))   \
				return ts_real.name args;                  \
			return name##_marked args;                         \
		}                                                          \
		return name##_door args;                                   \
	}                                                                  \
	static ret name##_door params

/* Around a plain call that can send on fd, which was found not ours:
 * false when fd became ours meanwhile (look it up again), else true and
 * the call runs in the marked window, which ts_raw_end closes. */
static inline bool ts_raw_begin(int fd, struct ts_raw_mark *m)
{
	if (__libc_single_threaded) {
		m->saved_fd = -2; /* nothing marked */
		return true;
	}
	ts_raw_enter(m, fd);
	/* No entry at all (the common case), or none for fd. */
	if (!atomic_load_explicit(&ts_fd_live, memory_order_relaxed) ||
	    !ts_fd_peek(fd))
		return true;
	ts_raw_leave(m);
	return false;
}

static inline void ts_raw_end(const struct ts_raw_mark *m)
{
	if (m->saved_fd != -2)
		ts_raw_leave(m);
}

/* ts_conn_call (conn.h) for a call that can send: the plain call runs in
 * the marked window, and goes back to the lookup if fd became ours in the
 * meantime. */
#define ts_conn_send_call(fd, r, conn_call, plain_call)                   \
	ts_conn_loop(fd, r, conn_call, {                                   \
		struct ts_raw_mark m_;                                     \
		if (!ts_raw_begin(fd, &m_))                                \
			continue;                                          \
		r = plain_call;                                            \
		ts_raw_end(&m_);                                           \
		break;                                                     \
	})

/* sendto/sendmsg on a socket that is not ours yet: TCP Fast Open
 * (MSG_FASTOPEN with an address) is an implicit connect, which must be
 * upgraded before any byte of data leaves. */
ssize_t ts_sendto_unmatched(int fd, const void *buf, size_t len, int flags,
                            const struct sockaddr *sa, socklen_t salen);
ssize_t ts_sendmsg_unmatched(int fd, const struct msghdr *m, int flags);
/* sendmsg on an fd not ours, where an SCM_RIGHTS message cannot hand an
 * upgraded fd to another process raw. */
ssize_t ts_sendmsg_plain(int fd, const struct msghdr *m, int flags);
/* The implicit connect of MSG_FASTOPEN to sa: 1 upgraded (or under way),
 * 0 not ours (the kernel's own fast open goes ahead), -1 refused. */
int ts_fastopen_connect(int fd, const void *sa, socklen_t salen);

/* libc's getaddrinfo, never the hook (src/preload/hooks/hook_resolve.c). */
struct addrinfo;
int ts_real_getaddrinfo(const char *node, const char *service,
                        const struct addrinfo *hints, struct addrinfo **res);

#endif
