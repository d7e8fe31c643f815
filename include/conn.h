/* The connection layer: per-fd state of an upgraded socket.
 *
 * Hooks find a struct ts_conn through the fd table and call these functions;
 * this layer drives the TLS engine (through struct ts_engine only) and waits
 * with the real poll(2). It knows errno and fds, never GnuTLS.
 *
 * State machine of one connection:
 *   (socket) --connect matched--> HANDSHAKING --verified--> READY
 *   HANDSHAKING --any failure--> (fd disconnected, entry removed, ECONNREFUSED)
 * A non-blocking connect returns EINPROGRESS and leaves the entry installed
 * in HANDSHAKING (src/conn_async.c): no program byte passes (EAGAIN) while
 * the handshake advances inside the program's own calls; a failure there
 * keeps the entry as BROKEN with failed set and SO_ERROR = ECONNREFUSED.
 *   READY --peer close_notify/EOF--> READY with eof set (reads return 0)
 *   READY --fatal TLS error--> BROKEN (every call fails with the saved errno)
 *   any --last close--> close_notify sent without blocking, entry freed */
#ifndef TS_CONN_H
#define TS_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fdtab.h"
#include "nagle.h"
#include "policy.h"

#define TS_CONN_STAGE 16384
#define TS_CONN_PEEK_MAX 65536

enum ts_conn_state {
	TS_CONN_HANDSHAKING,
	TS_CONN_READY,
	TS_CONN_BROKEN,
};

struct ts_tls;

struct ts_conn {
	struct ts_fdent ent; /* first: the fd table's handle */
	int fd;
	enum ts_conn_state state;
	atomic_int nfds; /* fd numbers (dups) naming this session here */
	bool nonblock;   /* O_NONBLOCK as the program set it */
	bool eof;        /* peer closed: reads return 0 */
	bool wr_shut;    /* shutdown(SHUT_WR): close_notify sent, EPIPE */
	atomic_bool rd_shut; /* shutdown(SHUT_RD): reads return 0 */
	int broken_errno;
	const struct ts_rule *rule;
	struct ts_tls *tls;
	pthread_mutex_t send_lock; /* one sender at a time in the session */
	pthread_mutex_t recv_lock; /* one receiver at a time */
	struct ts_nagle nagle;     /* TCP_NODELAY for large writes */
	uint64_t bytes_out, bytes_in;
	atomic_int *owner;        /* shared with forked copies: owner's pid */
	/* The reading and the writing thread both consult and update these
	 * (each under its own lock): atomics, relaxed. */
	atomic_ulong fork_seen;   /* forks counted when ownership was known */
	atomic_ulong used_gen;    /* forks counted at the last use */
	atomic_bool lost;         /* another process owns the session */
	unsigned recv_gen;        /* reads the program made */
	unsigned et_gen;          /* recv_gen at the last synthesized edge */
	unsigned char *stage;  /* gathers small writev pieces into a record */
	unsigned char *peek;   /* decrypted, not yet consumed (MSG_PEEK) */
	size_t peek_len, peek_cap;
	char dest[64];  /* "ip:port" for messages */
	char name[256]; /* the name verified */
	/* Asynchronous connect (src/conn_async.c, include/conn_async.h). */
	bool async;            /* connected by a non-blocking connect */
	unsigned char phase;   /* TS_ASYNC_* while HANDSHAKING */
	bool failed;           /* the asynchronous handshake failed */
	short hs_want;         /* POLLIN/POLLOUT the handshake waits for */
	int so_error;          /* SO_ERROR still to report, 0 if none */
	long long hs_deadline; /* CLOCK_MONOTONIC ms */
	struct ts_conn *hot_next, *hot_prev; /* handshaking/failed list */
	bool hot;
};

/* The process's policy state, set once by the constructor. */
struct ts_state {
	const struct ts_policy *policy; /* NULL: inert or failed */
	bool failed;                    /* a named policy did not load */
	char failed_reason[512];
};
extern struct ts_state ts_state;
void ts_state_init(void);

static inline struct ts_conn *ts_conn_get(int fd)
{
	return (struct ts_conn *)ts_fd_get(fd);
}
static inline void ts_conn_put(struct ts_conn *c)
{
	ts_fdent_put(&c->ent);
}

/* connect(): returns 1 when the destination is not ours (the caller calls
 * the real connect), else the connect result (0, or -1 with errno). */
int ts_conn_connect(int fd, const struct sockaddr *sa, socklen_t len,
                    int *result);

/* fd: the program's fd for this call (one of the session's aliases). */
ssize_t ts_conn_send(struct ts_conn *c, int fd, const void *buf, size_t len,
                     int flags);
ssize_t ts_conn_recv(struct ts_conn *c, int fd, void *buf, size_t len,
                     int flags);
/* The vectored forms behind every data hook. Flags are the MSG_* flags of
 * send(2)/recv(2) with TCP's meaning. */
ssize_t ts_conn_sendv(struct ts_conn *c, int fd, const struct iovec *iov,
                      int iovcnt, int flags);
ssize_t ts_conn_recvv(struct ts_conn *c, int fd, const struct iovec *iov,
                      int iovcnt, int flags);
/* Decrypted bytes readable now (FIONREAD). */
size_t ts_conn_pending(struct ts_conn *c, int fd);

/* Readiness the kernel cannot see: POLLIN when decrypted bytes or EOF are
 * waiting in the session. */
short ts_conn_ready(struct ts_conn *c, short events);

/* What poll should report for c, given what the kernel said (krev):
 * adds the readiness above, POLLERR for a broken session, and withholds
 * POLLOUT while a record is still queued. */
short ts_conn_revents(struct ts_conn *c, int fd, short events, short krev);

/* The kernel says fd is readable: true when that means bytes (or EOF or
 * an error) for the program, false when it was only TLS's own messages,
 * now consumed. */
bool ts_conn_data_arrived(struct ts_conn *c, int fd);

/* Forget fd (close, or a new fd took the number): sends close_notify when
 * this was the last reference. */
void ts_conn_forget(int fd);

/* newfd is a duplicate of an fd of c (dup, dup2, F_DUPFD...). */
void ts_conn_alias(int newfd, struct ts_conn *c);

/* A new fd got this number while our state was stale (closed behind our
 * back): drop the state without any I/O on the new fd. */
void ts_conn_purge(int fd);

/* At exit (a destructor): the connections the program left open are
 * closed by the kernel; take the peer's queued records first. */
void ts_conn_exit(void);

/* shutdown(2): SHUT_WR and SHUT_RDWR send close_notify first. */
int ts_conn_shutdown(struct ts_conn *c, int fd, int how);

/* Ownership across fork (src/conn_fork.c). use: the caller is about to do
 * I/O and may claim a released session. !use: closing; true when this
 * process should send close_notify. */
bool ts_conn_owned(struct ts_conn *c, bool use);
atomic_int *ts_owner_cell_new(void);
unsigned long ts_conn_forks(void);
void ts_conn_fork_init(void);

void ts_conn_set_nonblock(struct ts_conn *c, bool on);

#endif
