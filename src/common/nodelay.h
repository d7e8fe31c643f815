/* Nagle (TCP_NODELAY) around TLS: one topic, used by both objects that
 * write records, each with its own state. Both touch the socket only
 * through the socket-option functions bound here (ts_nodelay_bind: libc's
 * real ones, never the preload's hooks).
 *
 * Around the handshake (the engine). A program that never sets TCP_NODELAY
 * would otherwise stall twice after a TLS 1.3 handshake, each time for the
 * peer's delayed ACK (~40 ms):
 *   1. inside the handshake: the client's ChangeCipherSpec (middlebox
 *      compatibility) leaves as one small segment, and Nagle then holds
 *      the client Finished until that segment is acknowledged — the
 *      server, waiting for Finished, has nothing to piggyback the ACK on;
 *   2. at the first write: the program's first record is small, the
 *      Finished segment is still unacknowledged, and a server that sends
 *      no session ticket again has nothing to send first.
 * A plain TCP client meets neither: its first segment goes out at once.
 * So each handshake step (one call into GnuTLS) runs with TCP_NODELAY on
 * when the program has it off, and the program's value is back before the
 * step returns: the program never sees our value, and a value it sets
 * between steps (an asynchronous connect returns EINPROGRESS before the
 * handshake) is respected. The record of the first write after the
 * handshake is pushed out by turning TCP_NODELAY on and off again right
 * after it is queued (setting it pushes pending frames). From then on the
 * program's own setting rules, Nagle included (but for large writes,
 * below). Cost: three get/setsockopt calls per handshake step (two or
 * three steps) and three at the first write.
 *
 * For large writes (the preload's connection layer). A program that leaves
 * Nagle on and writes in large pieces (a file, a request body) runs
 * erratically under TLS: records of 16 KiB are less than a loopback
 * segment, so every record's tail waits on the peer's ACK, and the speed
 * of a 1 GiB upload swung between 0.7 and 1.1 of a native client that
 * sets TCP_NODELAY (every careful TLS client does). Nagle exists to
 * coalesce small writes into full segments; a write that fills whole
 * records has nothing to coalesce. So while the program's writes are at
 * least one full record, TCP_NODELAY is on; before a smaller write the
 * program's own setting is back, so small writes are coalesced exactly as
 * the program asked. The program never sees ours: getsockopt(TCP_NODELAY)
 * answers its value, and a setsockopt of TCP_NODELAY or TCP_CORK hands
 * control back at once. A program that set TCP_NODELAY or TCP_CORK itself
 * is left alone. Cost: nothing while the size class of writes stays the
 * same; one setsockopt at each change (and two getsockopt calls the first
 * time). */
#ifndef TS_NODELAY_H
#define TS_NODELAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The socket-option calls to use, once per object, before any other call
 * here. */
struct ts_sockopt_io {
	int (*getsockopt)(int fd, int level, int opt, void *val,
	                  socklen_t *len);
	int (*setsockopt)(int fd, int level, int opt, const void *val,
	                  socklen_t len);
};
void ts_nodelay_bind(const struct ts_sockopt_io *io);

/* Around the handshake. */
enum ts_nodelay {
	TS_NODELAY_NONE = 0,  /* nothing to do (the program set it) */
	TS_NODELAY_FIRST = 1, /* handshake done with Nagle on: push the
	                         first write */
};
/* Before a handshake step: true when we turned TCP_NODELAY on. */
bool ts_nodelay_step(int fd);
/* After it: restores the program's value if step said true. Returns the
 * state to keep (FIRST when done and the program has Nagle on). */
enum ts_nodelay ts_nodelay_step_end(int fd, bool on, bool done);
/* A record of the program's data was just queued on fd. */
enum ts_nodelay ts_nodelay_sent(int fd, enum ts_nodelay st);
/* What is queued on fd leaves now, whatever Nagle holds back (at close,
 * which then waits for it to leave). */
void ts_nodelay_push(int fd);

/* For large writes: a write of at least this many bytes fills a TLS
 * record. */
#define TS_NAGLE_FULL 16384

struct ts_nagle {
	atomic_uint bits; /* TS_NAGLE_* below */
	pthread_mutex_t lock; /* orders our setsockopt with the program's */
};

void ts_nagle_init(struct ts_nagle *n);
void ts_nagle_destroy(struct ts_nagle *n);
/* In a new process: a thread that held the lock is gone. */
void ts_nagle_child_reset(struct ts_nagle *n);

/* Before a write of total bytes on fd. */
void ts_nagle_before_send(struct ts_nagle *n, int fd, size_t total);

/* The program's setsockopt(IPPROTO_TCP, opt) on fd: performs it. */
int ts_nagle_setsockopt(struct ts_nagle *n, int fd, int opt,
                        const void *val, socklen_t len);

/* The program's getsockopt(IPPROTO_TCP, opt) on fd: performs it and
 * answers the program's own TCP_NODELAY while ours is on. */
int ts_nagle_getsockopt(struct ts_nagle *n, int fd, int opt, void *val,
                        socklen_t *len);

#endif
