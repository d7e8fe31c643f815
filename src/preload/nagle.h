/* Nagle for large writes (src/nagle.c, preload side).
 *
 * A program that leaves Nagle on and writes in large pieces (a file, a
 * request body) runs erratically under TLS: records of 16 KiB are less
 * than a loopback segment, so every record's tail waits on the peer's
 * ACK, and the speed of a 1 GiB upload swung between 0.7 and 1.1 of a
 * native client that sets TCP_NODELAY (every careful TLS client does).
 * Nagle exists to coalesce small writes into full segments; a write that
 * fills whole records has nothing to coalesce. So while the program's
 * writes are at least one full record, TCP_NODELAY is on; before a
 * smaller write the program's own setting is back, so small writes are
 * coalesced exactly as the program asked. The program never sees ours:
 * getsockopt(TCP_NODELAY) answers its value, and a setsockopt of
 * TCP_NODELAY or TCP_CORK hands control back at once. A program that set
 * TCP_NODELAY or TCP_CORK itself is left alone. Cost: nothing while the
 * size class of writes stays the same; one setsockopt at each change
 * (and two getsockopt calls the first time). */
#ifndef TS_NAGLE_H
#define TS_NAGLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* A write of at least this many bytes fills a TLS record. */
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
