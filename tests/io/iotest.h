/* Shared by the tests/io clients: an unmodified plain program's view.
 * No GnuTLS here: these clients stand for any program tlsshim is put under.
 *
 * Environment: IO_PORT (echo server), IO_HOST (default 127.0.0.1),
 * IO_MODE=plain|tls (what the client runs against; only a few checks
 * differ, each says why), IO_BYTES (payload size, default 10 MiB),
 * IO_TIMEOUT (seconds, default 60: SIGALRM ends a hung client).
 * argv[1..]: run only the named subtests.
 * Output: one "ok - NAME" / "not ok - NAME: why" line per check and
 * "N passed, N failed"; exit 1 on any failure. */
#ifndef IOTEST_H
#define IOTEST_H

#define _GNU_SOURCE
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char buf[64];
	size_t n;
};
void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *p, size_t n);
void sha256_final(struct sha256 *s, unsigned char out[32]);

extern int io_failed, io_passed;
extern const char *io_test; /* name of the running subtest */

/* Record a check; returns cond so callers can bail out. */
bool io_check(bool cond, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define CHECK(cond, ...) io_check((cond), #cond, __VA_ARGS__)
#define CHECK_OK(cond, what) io_check((cond), what, "%s", what)

void io_init(int argc, char **argv);
bool io_selected(const char *name);
int io_summary(void);

/* A family's cases, by name: its main runs the selected ones. A case is
 * run(), or run_with(kind, what) for one function that serves several. */
struct io_case {
	const char *name;
	void (*run)(void);
	void (*run_with)(int kind, const char *what);
	int kind;
	const char *what;
};
#define IO_CASE(n, f) {.name = n, .run = f}
#define IO_CASE_WITH(n, f, k, w)                                           \
	{.name = n, .run_with = f, .kind = k, .what = w}
/* Runs each selected case of a table ended by {0}, in its order. */
void io_run(const struct io_case *cases);
bool io_tls(void);        /* IO_MODE=tls */
size_t io_bytes(void);
int io_port(const char *env); /* port from env var (IO_PORT if NULL) */

/* Blocking TCP connect to IO_HOST:port; -1 (and a failed check) on error. */
int io_connect(int port);
/* Nonblocking socket, not yet connected. */
int io_socket_nb(void);
int io_addr(int port, void *sa, unsigned *len);

/* Deterministic payload: byte i of the stream. */
void io_fill(unsigned char *buf, uint64_t off, size_t n);
bool io_verify(const unsigned char *buf, uint64_t off, size_t n);

/* Full read/write with the plain calls; false on error/EOF. */
bool io_write_all(int fd, const void *p, size_t n);
bool io_read_all(int fd, void *p, size_t n);
/* Wait for POLLIN (poll, timeout ms); true if readable. */
bool io_wait_in(int fd, int ms);
void io_hex(const unsigned char d[32], char out[65]);

#endif

/* Sends 16 KiB of payload (one full TLS record on the way back from the
 * echo server) and reads its first byte; the rest is then pending. */
#define IO_REC 16384
bool io_record_read1(int fd);
/* Reads and verifies the remaining IO_REC-1 bytes of that record. */
bool io_record_rest(int fd);
