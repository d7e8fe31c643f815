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
 * So: TCP_NODELAY is on during the handshake (only if the program had it
 * off), and the program's value is restored before connect() returns, so
 * getsockopt() by the program always sees its own value. The record of
 * the first write after the handshake is pushed out by turning
 * TCP_NODELAY on and off again right after it is queued (setting it
 * pushes pending frames); from then on the program's own setting rules,
 * Nagle included. Cost: six getsockopt/setsockopt calls per connection. */
#ifndef TS_TLS_NODELAY_H
#define TS_TLS_NODELAY_H

enum ts_nodelay {
	TS_NODELAY_NONE = 0,      /* nothing to do (the program set it) */
	TS_NODELAY_HANDSHAKE = 1, /* on for the handshake; restore after */
	TS_NODELAY_FIRST = 2,     /* restored; push the first write */
};

/* Before the handshake. Returns the state to keep. */
enum ts_nodelay ts_nodelay_begin(int fd);
/* The handshake finished (or failed): restore the program's value. */
enum ts_nodelay ts_nodelay_end(int fd, enum ts_nodelay st);
/* A record of the program's data was just queued on fd. */
enum ts_nodelay ts_nodelay_sent(int fd, enum ts_nodelay st);

#endif
