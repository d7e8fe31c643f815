/* Nagle around the handshake (src/tls_nodelay.c, engine side).
 *
 * A program that never sets TCP_NODELAY would otherwise stall twice after
 * a TLS 1.3 handshake, each time for the peer's delayed ACK (~40 ms):
 *   1. inside the handshake: the client's ChangeCipherSpec (middlebox
 *      compatibility) leaves as one small segment, and Nagle then holds
 *      the client Finished until that segment is acknowledged — the
 *      server, waiting for Finished, has nothing to piggyback the ACK on;
 *   2. at the first write: the program's first record is small, the
 *      Finished segment is still unacknowledged, and a server that sends
 *      no session ticket again has nothing to send first.
 * A plain TCP client meets neither: its first segment goes out at once.
 *
 * So each handshake step (one call into GnuTLS) runs with TCP_NODELAY on
 * when the program has it off, and the program's value is back before the
 * step returns: the program never sees our value, and a value it sets
 * between steps (an asynchronous connect returns EINPROGRESS before the
 * handshake) is respected. The record of the first write after the
 * handshake is pushed out by turning TCP_NODELAY on and off again right
 * after it is queued (setting it pushes pending frames). From then on the
 * program's own setting rules, Nagle included (writes of whole records
 * aside: include/nagle.h). The calls go to libc through struct
 * ts_engine_io, never to our hooks. Cost: three get/setsockopt calls per
 * handshake step (two or three steps) and three at the first write. */
#ifndef TS_TLS_NODELAY_H
#define TS_TLS_NODELAY_H

#include <stdbool.h>

#include "engine.h"

enum ts_nodelay {
	TS_NODELAY_NONE = 0,  /* nothing to do (the program set it) */
	TS_NODELAY_FIRST = 1, /* handshake done with Nagle on: push the
	                         first write */
};

/* The socket option calls to use (libc's, not the preload's hooks). */
void ts_nodelay_bind(const struct ts_engine_io *io);
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

#endif
