/* stdio streams on an upgraded number.
 *
 * glibc's stdio writes with its internal write(), which no hook sees. A
 * FILE made by fdopen() after the fd is ours goes through the session
 * (hook_stdio.c); one that already existed on the number when it became
 * ours (fdopen before connect, stdout when dup2 puts a socket on fd 1, a
 * stream left on a number the program closed behind stdio's back) would
 * write plaintext. Such streams are sealed: their fd becomes -1, so their
 * I/O fails with EBADF and nothing is sent; one error line says so. */
#ifndef TS_STDIO_SEAL_H
#define TS_STDIO_SEAL_H

#include <stdio.h>

/* Seal every stream on fd but the session's own (rule and dest name the
 * connection for the error line). */
void ts_stdio_seal(int fd, const char *rule, const char *dest);

/* The session's own streams (fdopen after connect) are not sealed. */
void ts_stdio_own(FILE *f);
void ts_stdio_disown(FILE *f);
/* In a new process: the lock a vanished thread may have held. */
void ts_stdio_seal_child_reset(void);

#endif
