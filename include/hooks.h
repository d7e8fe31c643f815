/* Shared by the hook files only. */
#ifndef TS_HOOKS_H
#define TS_HOOKS_H

#include <sys/socket.h>
#include <sys/types.h>

#define TS_EXPORT __attribute__((visibility("default")))

/* sendto/sendmsg on a socket that is not ours yet: TCP Fast Open
 * (MSG_FASTOPEN with an address) is an implicit connect, which must be
 * upgraded before any byte of data leaves. */
ssize_t ts_sendto_unmatched(int fd, const void *buf, size_t len, int flags,
                            const struct sockaddr *sa, socklen_t salen);
ssize_t ts_sendmsg_unmatched(int fd, const struct msghdr *m, int flags);

#endif
