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
 * in HANDSHAKING (conn_async.c): no program byte passes (EAGAIN) while
 * the handshake advances inside the program's own calls; a failure there
 * keeps the entry as BROKEN with failed set and SO_ERROR = ECONNREFUSED.
 *   READY --peer close_notify/EOF--> READY with eof set (reads return 0)
 *   READY --fatal TLS error--> BROKEN (every call fails with the saved errno)
 *   any --last close--> close_notify sent without blocking, entry freed
 *
 * The entry is in the fd table before the kernel connect starts, and leaves
 * it only after the kernel call that ends it (close, dup2 onto the number)
 * has returned: no call of another thread can find the fd unowned while it
 * names the socket. A call that took the conn and then finds, under the
 * conn's lock, that its fd no longer names it returns TS_CONN_RETRY: the
 * hook looks the fd up again (ts_conn_call). */
#ifndef TS_CONN_H
#define TS_CONN_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fdtab.h"
#include "forkwatch.h"
#include "nodelay.h"
#include "policy.h"
#include "state.h"

#define TS_CONN_STAGE 16384
#define TS_CONN_PEEK_MAX 65536
/* From the data functions: fd does not name the conn any more (a close or
 * dup2 of it finished meanwhile); look it up again. */
#define TS_CONN_RETRY (-2)

/* The directions of a session, owned separately across fork. */
enum ts_dir {
	TS_DIR_WRITE = 0, /* send_lock */
	TS_DIR_READ = 1,  /* recv_lock */
};

/* Shared by every process that holds a copy of the session (MAP_SHARED):
 * per direction, the owner's pid and the epoch of the state it holds. */
struct ts_owner {
	_Atomic uint64_t dir[2];
};

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
	/* Ownership across fork (conn_fork.c), per direction, each
	 * under that direction's lock. */
	struct ts_owner *owner;
	uint32_t epoch[2];        /* epoch of this copy's state */
	atomic_ulong own_gen[2];  /* ts_fork_gen() when ownership was known */
	atomic_bool lost[2];      /* another process owns the direction */
	bool fork_locked[2];      /* lock taken by the atfork prepare */
	unsigned recv_gen;        /* reads the program made */
	unsigned et_gen;          /* recv_gen at the last synthesized edge */
	unsigned char *stage;  /* gathers small writev pieces into a record */
	unsigned char *peek;   /* decrypted, not yet consumed (MSG_PEEK) */
	size_t peek_len, peek_cap;
	/* "ip:port" for messages; for a connection tlsshim serves,
	 * "client -> local" */
	char dest[2 * TS_DEST_STR_MAX + 8];
	char name[256]; /* the name verified */
	bool send_sni;  /* name is sent as SNI (not an IP literal) */
	uint16_t tls_port; /* tls-port connected to instead, or 0 */
	bool summarized;   /* its byte counts logged at exit */
	bool server;       /* accepted on a server rule: tlsshim serves */
	/* Asynchronous connect (conn_async.c, conn_async.h).
	 * A blocking connect runs the same state machine in the calling
	 * thread (blocking set), so other threads see it as in progress. */
	bool async;            /* handshake driven by ts_conn_async_step */
	bool blocking;         /* a blocking connect() waits for it */
	unsigned char phase;   /* TS_ASYNC_* while HANDSHAKING */
	bool failed;           /* the asynchronous handshake failed */
	short hs_want;         /* POLLIN/POLLOUT the handshake waits for */
	int so_error;          /* SO_ERROR still to report, 0 if none */
	long long hs_deadline; /* CLOCK_MONOTONIC ms */
	struct ts_conn *hot_next, *hot_prev; /* handshaking/failed list */
	bool hot;
};


static inline struct ts_conn *ts_conn_get(int fd)
{
	return (struct ts_conn *)ts_fd_get(fd);
}
static inline void ts_conn_put(struct ts_conn *c)
{
	ts_fdent_put(&c->ent);
}
static inline void ts_conn_ref(struct ts_conn *c)
{
	ts_fdent_ref(&c->ent);
}

/* The shape of every data hook: the session call (an expression using c,
 * its result in r) when fd is ours, again when that says TS_CONN_RETRY;
 * else plain_stmt, which sets r and breaks (or continues: look again). */
#define ts_conn_loop(fd, r, conn_call, plain_stmt)                        \
	do {                                                               \
		for (;;) {                                                 \
			struct ts_conn *c = ts_conn_get(fd);               \
			if (!c)                                            \
				plain_stmt                                 \
			r = conn_call;                                     \
			ts_conn_put(c);                                    \
			if (r != TS_CONN_RETRY)                            \
				break;                                     \
		}                                                          \
	} while (0)

/* The plain call when fd is not ours. */
#define ts_conn_call(fd, r, conn_call, plain_call)                        \
	ts_conn_loop(fd, r, conn_call, {                                   \
		r = plain_call;                                            \
		break;                                                     \
	})

/* accept()/accept4() returned fd: when a server rule matches the local
 * address it was accepted on, fd becomes a TLS server session before the
 * program sees a byte of it (conn_server.c). */
void ts_conn_accepted(int fd);
/* The warnings a rule's use deserves (a key others can read, a keylog
 * file), once per rule. */
void ts_conn_warn_rule_once(const struct ts_rule *rule);
/* The policy did not load: says so once (every TCP connection, made or
 * accepted, is refused). */
void ts_conn_refuse_failed_policy(void);

/* A new connection's state, HANDSHAKING, one reference (the caller's). */
struct ts_conn *ts_conn_new(int fd, const struct ts_rule *rule);

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
/* Decrypted bytes readable now (FIONREAD) into *n: 0, or TS_CONN_RETRY. */
int ts_conn_pending(struct ts_conn *c, int fd, size_t *n);

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

/* The fd lifecycle (conn_fd.c): each makes the kernel call itself,
 * with the table kept right around it, and returns its result. close
 * sends close_notify at the last close of a session. */
int ts_conn_close(int fd);
/* dup2 (three false) or dup3 onto newfd. */
int ts_conn_dup2(int oldfd, int newfd, int flags, bool three);
int ts_conn_close_range(unsigned first, unsigned last, int flags);
void ts_conn_closefrom(int lowfd);

/* newfd is a fresh duplicate of an fd of c (dup, F_DUPFD...). */
void ts_conn_alias(int newfd, struct ts_conn *c);

/* exec and spawn (conn_fd.c): an upgraded fd without FD_CLOEXEC would
 * reach the new program as a bare socket carrying the TLS stream, with no
 * session. For the length of the call each such fd is a closed socket
 * (or, mark_only, where no file action of the program's can copy it: it
 * has FD_CLOEXEC); restore puts them back (the call failed, or it was a
 * spawn). */
#define TS_EXEC_SAVE_MAX 64
struct ts_exec_save {
	unsigned n;
	bool vfork_child, mark_only;
	struct {
		int fd, saved;
		struct ts_conn *c;
	} fds[TS_EXEC_SAVE_MAX];
};
void ts_conn_exec_prepare(struct ts_exec_save *s, const char *what,
                          bool mark_only);
void ts_conn_exec_restore(struct ts_exec_save *s);

/* A stream socket whose peer is gone (reads see EOF, writes EPIPE), close
 * on exec; -1 when none can be made. What an upgraded fd becomes where it
 * would leave the process (exec, SCM_RIGHTS). */
int ts_conn_dead_socket(void);

/* A new fd got this number while our state was stale (closed behind our
 * back): drop the state without any I/O on the new fd. */
void ts_conn_purge(int fd);

/* One fd number less names c. At the last, close_notify goes out on kfd
 * (which names the socket; -1: none) when this process owns the writes,
 * and c is closed; returns whether it was the last. */
bool ts_conn_drop_fd(struct ts_conn *c, int kfd);
/* Queued records, then close_notify, bounded by the handshake timeout;
 * with send_lock held. */
void ts_conn_close_notify(struct ts_conn *c, int kfd);

/* " (TLS port N)" when c connected to a tls-port other than the port the
 * program asked for, else "": for every line that names the connection. */
const char *ts_conn_port_note(const struct ts_conn *c, char *buf,
                              size_t len);

/* An entry at fd on which every call fails (EPIPE): what a number whose
 * meaning was lost at fork carries. */
void ts_conn_tombstone(int fd);

/* At exit (a destructor): the connections the program left open are
 * closed by the kernel; take the peer's queued records first. */
void ts_conn_exit(void);

/* shutdown(2): SHUT_WR and SHUT_RDWR send close_notify first. 0, -1, or
 * TS_CONN_RETRY. */
int ts_conn_shutdown(struct ts_conn *c, int fd, int how);

/* Ownership across fork (conn_fork.c), called with dir's lock held.
 * claim: the caller is about to use the direction and may take it when
 * it was released at a fork and this copy is current (then owns it);
 * otherwise it is marked lost here, with one warning. !claim: a question
 * only (poll, close). */
bool ts_conn_owned(struct ts_conn *c, enum ts_dir dir, bool claim);
/* A new session's shared cell, owned by this process. NULL: no memory. */
struct ts_owner *ts_owner_new(void);
/* The constructor: fork handlers (pthread_atfork and forkwatch). */
void ts_conn_fork_init(void);

/* What the other layers ask of a connection, each through a call here
 * rather than by touching its fields. */
void ts_conn_set_nonblock(struct ts_conn *c, bool on);
/* The program's getsockopt/setsockopt(IPPROTO_TCP, opt) on fd: Nagle's
 * options answer and take the program's own value (nodelay.h). */
int ts_conn_tcp_getsockopt(struct ts_conn *c, int fd, int opt, void *val,
                           socklen_t *len);
int ts_conn_tcp_setsockopt(struct ts_conn *c, int fd, int opt,
                           const void *val, socklen_t len);
/* The session's transport through fd (-1: back to the fd of each call):
 * while exec's swap makes the program's number name another file. */
void ts_conn_set_io_fd(struct ts_conn *c, int fd);
/* In a new process: c's locks, and its session's, may be a vanished
 * thread's. */
void ts_conn_child_reset(struct ts_conn *c);
/* epoll's view of c's data for a registration with the program's events
 * (src/preload/conn_poll.c). */
uint32_t ts_conn_epoll_data(struct ts_conn *c, uint32_t events, bool claim);

#endif
