/* What the two test servers (echo_thread.c, echo_epoll.c) share: options,
 * listeners, addresses, SHA-256, and the record file the tests read.
 *
 * They are the "unmodified program" of server mode (issue 16): plain
 * sockets, no TLS library. Each connection leaves two lines in the record
 * file (-r), each written with one write(2) to an O_APPEND file:
 *
 *   accept peer=ADDR acc=ADDR local=ADDR
 *   close peer=ADDR local=ADDR greet=G in=N sha256=HEX out=N end=E
 *
 * ADDR is IP:PORT, [IPv6]:PORT. peer is getpeername() on the accepted fd,
 * acc the address accept() returned, local getsockname(). G is "-" (no
 * greeting asked), "ok" (written whole) or the errno name of the write
 * that failed; in/sha256 what the program read, out what it wrote; E is
 * "eof" (a read returned 0) or read:ERRNO / write:ERRNO. */
#ifndef SRV_H
#define SRV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "iotest.h" /* SHA-256, shared with the tests/io clients */

#define SRV_MAX_LISTEN 8

struct srv_opts {
	const char *bind;     /* -b ADDR: 127.0.0.1 unless given */
	unsigned ports[SRV_MAX_LISTEN]; /* -P PORT, repeatable; 0: any */
	int nports;
	const char *portfile; /* -p: the first listener's port, once listening */
	const char *record;   /* -r FILE */
	const char *greeting; /* -g TEXT: written first on every connection */
	unsigned max_seconds; /* -t: the server exits after (default 300) */
	unsigned forks;       /* -f N: pre-fork, N children accept (thread) */
	unsigned accept_wait_ms; /* -w MS: wait before each accept (a client's
	                          * bytes are queued by the time it runs) */
};

/* Parses argv (exits with usage on error), ignores SIGPIPE, arms the
 * alarm. */
void srv_options(int argc, char **argv, const char *usage,
                 struct srv_opts *o);

/* Opens every listener (non-blocking if asked), then writes the port
 * file. Returns the number of listeners; exits on failure. */
int srv_listen(const struct srv_opts *o, int fds[SRV_MAX_LISTEN],
               int nonblock);

/* Sleeps -w MS (if given): called before each accept. */
void srv_accept_wait(const struct srv_opts *o);

/* "IP:PORT" or "[IPv6]:PORT"; "?" when unknown. */
void srv_addr(const struct sockaddr_storage *ss, socklen_t len, char *out,
              size_t outlen);

/* The accept line, from the address accept() returned. */
void srv_note_accept(int fd, const struct sockaddr_storage *acc,
                     socklen_t acclen);

struct srv_conn_log {
	char peer[64], local[64];
	char greet[32];
	uint64_t in, out;
	struct sha256 sha;
	char end[40];
};

void srv_log_init(struct srv_conn_log *l, int fd, int greeting);
void srv_note_close(struct srv_conn_log *l);

/* "EPIPE" and the like. */
const char *srv_errname(int e);

#endif
