/* The one door between the preload and the TLS engine.
 *
 * libtlsshim-engine.so links GnuTLS; libtlsshim.so does not. The preload
 * dlopen()s the engine on the first matched connect and calls
 * ts_engine_init() once, handing it the real libc functions so that
 * neither GnuTLS nor the engine ever re-enters our own hooks. Everything
 * the preload needs from TLS goes through struct ts_engine. The launcher
 * loads the same engine the same way (src/common/engine_open.c), with
 * libc's functions, and uses two more entry points. */
#ifndef TS_ENGINE_H
#define TS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <poll.h>

#include "policy.h"

#define TS_ENGINE_ABI 7
#define TS_ENGINE_SONAME "libtlsshim-engine.so"
#define TS_ENGINE_INIT_SYM "ts_engine_init"

/* Real libc calls, bound by the preload: the session's transport, and
 * every call of a name the preload hooks that the engine makes for itself
 * (the key log's write and close, the trust files' close). */
struct ts_engine_io {
	ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
	ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
	int (*poll)(struct pollfd *fds, nfds_t n, int timeout);
	int (*getsockopt)(int fd, int level, int opt, void *val,
	                  socklen_t *len);
	int (*setsockopt)(int fd, int level, int opt, const void *val,
	                  socklen_t len);
	ssize_t (*write)(int fd, const void *buf, size_t len);
	int (*close)(int fd);
	/* A line for the preload's log (level as enum ts_log_level), for
	 * what happens outside any session (a reload that failed); NULL:
	 * none (the launcher). */
	void (*log)(int level, const char *msg);
};

/* Calls that do I/O take the fd to use: the program may reach one session
 * through several fds (dup), any of which may be closed first. */

/* Results of engine calls that are not byte counts. */
enum ts_tls_rc {
	TS_TLS_OK = 0,
	TS_TLS_WANT_READ = -1,  /* the transport would block reading */
	TS_TLS_WANT_WRITE = -2, /* the transport would block writing */
	TS_TLS_INTR = -3,       /* a signal interrupted the transport */
	TS_TLS_ERR = -4,        /* fatal; errno and the reason are set */
};

struct ts_tls_params {
	int fd;
	const struct ts_rule *rule;
	const char *sni;         /* sent as SNI; NULL for none */
	const char *verify_name; /* DNS name or IP literal to verify */
	bool server;             /* an accepted connection (rule->server) */
};

struct ts_tls;

struct ts_engine {
	unsigned abi;
	/* A session on fd: a client one, or (p->server) a server one;
	 * NULL on error, reason in err. */
	struct ts_tls *(*create)(const struct ts_tls_params *p, char *err,
	                         size_t errlen);
	/* One non-blocking step. OK when verified; WANT_* to wait; ERR with
	 * the most specific reason (GnuTLS's verification text) in err. */
	int (*handshake)(struct ts_tls *t, char *err, size_t errlen);
	/* Send up to one record of buf. Returns bytes the session took
	 * (they are committed: encrypted, maybe still queued), or a
	 * ts_tls_rc. flags are MSG_* flags for the transport
	 * (MSG_DONTWAIT, MSG_NOSIGNAL, MSG_MORE). A queued record is flushed
	 * before new bytes are taken. */
	ssize_t (*send)(struct ts_tls *t, int fd, const void *buf, size_t len,
	                int flags);
	/* Flush a queued record: OK, WANT_WRITE, INTR or ERR. */
	int (*flush)(struct ts_tls *t, int fd, int flags);
	/* Bytes read, 0 at the peer's close_notify or EOF, or a ts_tls_rc.
	 * WANT_READ is returned only when the transport itself said EAGAIN. */
	ssize_t (*recv)(struct ts_tls *t, int fd, void *buf, size_t len,
	                int flags);
	/* Decrypted bytes buffered in the session. */
	size_t (*pending)(struct ts_tls *t);
	/* True while a record is queued for sending. */
	bool (*send_queued)(struct ts_tls *t);
	/* Flush what is queued, then send close_notify, without blocking:
	 * OK once sent (or impossible), WANT_WRITE/INTR to call again. */
	int (*close_notify)(struct ts_tls *t, int fd);
	/* The last close of a session this process owns, before
	 * close_notify: consume, without waiting (at most timeout_ms), the
	 * records queued on fd that carry no application data (TLS 1.3
	 * tickets, KeyUpdate; application data stays in the session): left
	 * unread they make the kernel's close a reset that discards our
	 * unsent bytes. true when the close is to be
	 * a reset all the same, as over TCP: the program asked for one
	 * (SO_LINGER {1, 0}), or left application data unread (in the
	 * socket, the session, or, with unread, in the caller's buffer);
	 * SO_LINGER {1, 0} is then set, and no close_notify should follow. */
	bool (*close_drain)(struct ts_tls *t, int fd, bool unread,
	                    int timeout_ms);
	/* After close_notify (shutdown, or the last close): consume such
	 * records, and while bytes of ours are unsent (or not yet
	 * acknowledged) wait for more, at most timeout_ms, so that none
	 * arrives after the close (the kernel answers that with the same
	 * reset). Application data ends the wait and stays in the session;
	 * when closing it makes the close a reset, as over TCP. OK, or
	 * WANT_WRITE when time ran out with bytes unsent. */
	int (*close_linger)(struct ts_tls *t, int fd, bool closing,
	                    int timeout_ms);
	/* Why the last call returned TS_TLS_ERR. */
	const char *(*reason)(struct ts_tls *t);
	/* "TLS1.3 AES-256-GCM" and the like, for logs. */
	void (*describe)(struct ts_tls *t, char *buf, size_t len);
	/* A server session: the client's identity the rule allowed (a DNS
	 * or URI name of its certificate), "" when none was asked for. */
	void (*identity)(struct ts_tls *t, char *buf, size_t len);
	void (*destroy)(struct ts_tls *t);
	/* In a forked child, before anything else touches the session: the
	 * session's lock may have been held by a thread that is gone. */
	void (*child_reset)(struct ts_tls *t);
	/* Transport through fd instead of the fd each call names (-1: back
	 * to those), taking effect in calls already waiting too: for the
	 * moment the program's number names another file (exec's swap). */
	void (*set_io_fd)(struct ts_tls *t, int fd);
	/* First thing in a new process, however forked: global locks a
	 * vanished thread may have held. Before child_reset of sessions. */
	void (*process_reset)(void);
	/* Judge what GnuTLS must judge in a rule (priority string, CRL,
	 * client key) without connecting: 0, or -1 with the reason. */
	int (*check_rule)(const struct ts_rule *r, char *err, size_t errlen);
};

/* The entry points libtlsshim-engine.so exports, found with dlsym by
 * name. Declared here, so that the compiler checks the engine's
 * definitions against the types its loaders call them through. */

/* The engine, once per process; io is copied. NULL: it cannot start. */
const struct ts_engine *ts_engine_init(const struct ts_engine_io *io);
typedef __typeof__(&ts_engine_init) ts_engine_init_fn;

/* For `tlsshim --probe` (the launcher only): after a handshake, verified
 * or not, writes what was negotiated and the peer's certificate chain
 * (subject, issuer, validity, SANs, pin-sha256) one line at a time. */
#define TS_ENGINE_PROBE_SYM "ts_engine_probe"
void ts_engine_probe(struct ts_tls *t,
                     void (*out)(void *ctx, const char *line), void *ctx);
typedef __typeof__(&ts_engine_probe) ts_engine_probe_fn;

/* For `tlsshim --explain` (the launcher only): the TLS versions the
 * sessions of r offer ("TLS1.2, TLS1.3"), as priority, min-version and
 * max-version combine; -1 with the reason if the engine refuses r. */
#define TS_ENGINE_VERSIONS_SYM "ts_engine_versions"
int ts_engine_versions(const struct ts_rule *r, char *buf, size_t len,
                       char *err, size_t errlen);
typedef __typeof__(&ts_engine_versions) ts_engine_versions_fn;

#endif
