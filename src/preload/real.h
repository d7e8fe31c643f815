/* The real libc functions, bound once into one typed table.
 *
 * Every hook calls through REAL(name). Binding happens at most once
 * (pthread_once) and lazily, so a hook that runs before our constructor —
 * another library's constructor doing I/O — still works. Each pointer is
 * checked not to lead back into this library. */
#ifndef TS_REAL_H
#define TS_REAL_H

#include <aio.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

/* X(return type, name, parameter list) */
#define TS_REAL_FUNCS(X)                                                   \
	X(int, socket, (int, int, int))                                    \
	X(int, connect, (int, const struct sockaddr *, socklen_t))         \
	X(int, accept, (int, struct sockaddr *, socklen_t *))              \
	X(int, accept4, (int, struct sockaddr *, socklen_t *, int))        \
	X(ssize_t, read, (int, void *, size_t))                            \
	X(ssize_t, write, (int, const void *, size_t))                     \
	X(ssize_t, send, (int, const void *, size_t, int))                 \
	X(ssize_t, recv, (int, void *, size_t, int))                       \
	X(ssize_t, sendmsg, (int, const struct msghdr *, int))             \
	X(ssize_t, recvmsg, (int, struct msghdr *, int))                   \
	X(ssize_t, readv, (int, const struct iovec *, int))                \
	X(ssize_t, writev, (int, const struct iovec *, int))               \
	X(ssize_t, sendto, (int, const void *, size_t, int,                \
	                    const struct sockaddr *, socklen_t))           \
	X(ssize_t, recvfrom, (int, void *, size_t, int, struct sockaddr *, \
	                      socklen_t *))                                \
	X(ssize_t, __recvfrom_chk, (int, void *, size_t, size_t, int,      \
	                            struct sockaddr *, socklen_t *))       \
	X(int, sendmmsg, (int, struct mmsghdr *, unsigned, int))           \
	X(int, recvmmsg, (int, struct mmsghdr *, unsigned, int,            \
	                  struct timespec *))                              \
	X(int, dup, (int))                                                 \
	X(FILE *, fdopen, (int, const char *))                             \
	X(int, fclose, (FILE *))                                           \
	X(ssize_t, sendfile, (int, int, off_t *, size_t))                  \
	X(ssize_t, sendfile64, (int, int, off64_t *, size_t))              \
	X(ssize_t, splice, (int, off64_t *, int, off64_t *, size_t,        \
	                    unsigned))                                     \
	X(long, syscall, (long, ...))                                      \
	X(int, dup2, (int, int))                                           \
	X(int, dup3, (int, int, int))                                      \
	X(int, close_range, (unsigned, unsigned, int))                     \
	X(void, closefrom, (int))                                          \
	X(int, close, (int))                                               \
	X(int, shutdown, (int, int))                                       \
	X(int, poll, (struct pollfd *, nfds_t, int))                       \
	X(int, ppoll, (struct pollfd *, nfds_t, const struct timespec *,   \
	               const sigset_t *))                                  \
	X(int, pselect, (int, fd_set *, fd_set *, fd_set *,                \
	                 const struct timespec *, const sigset_t *))       \
	X(int, select, (int, fd_set *, fd_set *, fd_set *, struct timeval *)) \
	X(int, fcntl, (int, int, ...))                                     \
	X(int, fcntl64, (int, int, ...))                                   \
	X(ssize_t, __read_chk, (int, void *, size_t, size_t))              \
	X(ssize_t, __recv_chk, (int, void *, size_t, size_t, int))         \
	X(int, __poll_chk, (struct pollfd *, nfds_t, int, size_t))         \
	X(int, ioctl, (int, unsigned long, ...))                           \
	X(int, getsockopt, (int, int, int, void *, socklen_t *))           \
	X(int, setsockopt, (int, int, int, const void *, socklen_t))       \
	X(int, chroot, (const char *))                                     \
	X(int, unshare, (int))                                             \
	X(int, setuid, (uid_t))                                            \
	X(int, seteuid, (uid_t))                                           \
	X(int, setreuid, (uid_t, uid_t))                                   \
	X(int, setresuid, (uid_t, uid_t, uid_t))                           \
	X(int, setgid, (gid_t))                                            \
	X(int, setegid, (gid_t))                                           \
	X(int, setregid, (gid_t, gid_t))                                   \
	X(int, setresgid, (gid_t, gid_t, gid_t))                           \
	X(int, setgroups, (size_t, const gid_t *))                         \
	X(int, initgroups, (const char *, gid_t))                          \
	X(int, epoll_ctl, (int, int, int, struct epoll_event *))           \
	X(int, epoll_wait, (int, struct epoll_event *, int, int))          \
	X(int, epoll_pwait, (int, struct epoll_event *, int, int,          \
	                     const sigset_t *))                            \
	X(int, epoll_pwait2, (int, struct epoll_event *, int,              \
	                      const struct timespec *, const sigset_t *))  \
	X(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int)) \
	X(ssize_t, pwritev64v2, (int, const struct iovec *, int, off64_t,  \
	                         int))                                     \
	X(ssize_t, preadv2, (int, const struct iovec *, int, off_t, int))  \
	X(ssize_t, preadv64v2, (int, const struct iovec *, int, off64_t,   \
	                        int))                                      \
	X(int, vdprintf, (int, const char *, va_list))                     \
	X(int, eventfd_write, (int, uint64_t))                             \
	X(int, __vdprintf_chk, (int, int, const char *, va_list))          \
	X(int, aio_read, (struct aiocb *))                                 \
	X(int, aio_write, (struct aiocb *))                                \
	X(int, aio_read64, (struct aiocb64 *))                             \
	X(int, aio_write64, (struct aiocb64 *))                            \
	X(int, lio_listio, (int, struct aiocb *const[], int,               \
	                    struct sigevent *))                            \
	X(int, lio_listio64, (int, struct aiocb64 *const[], int,           \
	                      struct sigevent *))                          \
	X(int, execve, (const char *, char *const[], char *const[]))       \
	X(int, execv, (const char *, char *const[]))                       \
	X(int, execvp, (const char *, char *const[]))                      \
	X(int, execvpe, (const char *, char *const[], char *const[]))      \
	X(int, fexecve, (int, char *const[], char *const[]))               \
	X(int, execveat, (int, const char *, char *const[], char *const[], \
	                  int))                                            \
	X(int, posix_spawn, (pid_t *, const char *,                        \
	                     const posix_spawn_file_actions_t *,           \
	                     const posix_spawnattr_t *, char *const[],     \
	                     char *const[]))                               \
	X(int, posix_spawnp, (pid_t *, const char *,                       \
	                      const posix_spawn_file_actions_t *,          \
	                      const posix_spawnattr_t *, char *const[],    \
	                      char *const[]))                              \
	X(int, system, (const char *))                                     \
	X(int, rcmd_af, (char **, unsigned short, const char *,            \
	                 const char *, const char *, int *, sa_family_t))  \
	X(int, rexec_af, (char **, int, const char *, const char *,        \
	                  const char *, int *, sa_family_t))               \
	X(FILE *, popen, (const char *, const char *))

struct ts_real {
#define TS_REAL_FIELD(ret, name, args) ret(*name) args;
	TS_REAL_FUNCS(TS_REAL_FIELD)
#undef TS_REAL_FIELD
};

extern struct ts_real ts_real;

void ts_real_bind(void);

#define REAL(name)                                                         \
	(__builtin_expect(ts_real.name != NULL, 1)                         \
		 ? ts_real.name                                            \
		 : (ts_real_bind(), ts_real.name))

#endif
