/* TLS 1.3 KeyUpdate while one thread writes and another reads the same
 * connection. The echo server (run with $ECHO_KEYUPDATE) updates its keys
 * and asks for ours every few hundred KiB: the reading thread meets the
 * KeyUpdate (new receive keys) while the writing thread is inside a send,
 * and our answering KeyUpdate goes out with the writer's next record.
 * $STRESS_CONNS connections at once (default 4), each carrying
 * $STRESS_BYTES (default 16 MiB) in writes of 1 byte to 64 KiB, every
 * byte of the echo checked; then at least $STRESS_MIN_KU key updates
 * must have been logged by the server ($ECHO_KEYUPDATE_LOG), so the test
 * cannot pass without exercising them. */
#define _GNU_SOURCE
#include "stress.h"

static int port;
static size_t total;

struct conn {
	int fd;
	uint64_t id;
};

#define PIECE_MAX 65536

/* Fills buf with the next piece of c's stream at off: 1 B .. 64 KiB, its
 * size from the pattern too (small and large records). Returns its size. */
static size_t next_piece(const struct conn *c, size_t off, unsigned char *buf)
{
	size_t n = 1 + ((size_t)pattern(c->id, off) << 8 |
	                pattern(c->id, off + 1)) % PIECE_MAX;
	if (n > total - off)
		n = total - off;
	for (size_t i = 0; i < n; i++)
		buf[i] = pattern(c->id, off + i);
	return n;
}

/* Fails unless buf holds c's stream at off. */
static void check_piece(const struct conn *c, size_t off,
                        const unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pattern(c->id, off + i))
			FAIL("conn %d: byte %zu differs", (int)c->id, off + i);
}

static void *writer(void *arg)
{
	struct conn *c = arg;
	static __thread unsigned char buf[PIECE_MAX];

	for (size_t off = 0, n; off < total; off += n) {
		n = next_piece(c, off, buf);
		write_all(c->fd, buf, n);
	}
	return NULL;
}

static void *reader(void *arg)
{
	struct conn *c = arg;
	static __thread unsigned char buf[65536];
	size_t off = 0;

	while (off < total) {
		ssize_t n = read(c->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			FAIL("conn %d: read at %zu: %s", (int)c->id, off,
			     strerror(errno));
		if (n == 0)
			FAIL("conn %d: EOF at %zu of %zu", (int)c->id, off,
			     total);
		check_piece(c, off, buf, (size_t)n);
		off += (size_t)n;
	}
	return NULL;
}

/* Key updates the server logged, waiting up to 10 s for its connection
 * threads to finish. */
static long logged(const char *path, int nconns)
{
	long sum = 0;
	for (int tries = 0; tries < 100; tries++) {
		FILE *f = fopen(path, "r");
		long v, lines = 0;
		sum = 0;
		if (f) {
			while (fscanf(f, "%ld", &v) == 1) {
				sum += v;
				lines++;
			}
			fclose(f);
		}
		if (lines >= nconns)
			break;
		usleep(100000);
	}
	return sum;
}

/* $STRESS_SEQUENTIAL=1: one thread, each piece written then read back
 * (the control: the same traffic without concurrency). */
static void *sequential(void *arg)
{
	struct conn *c = arg;
	static __thread unsigned char buf[PIECE_MAX];

	for (size_t off = 0, n; off < total; off += n) {
		n = next_piece(c, off, buf);
		write_all(c->fd, buf, n);
		read_exact(c->fd, buf, n);
		check_piece(c, off, buf, n);
	}
	return NULL;
}

int main(void)
{
	int nconns = (int)env_long("STRESS_CONNS", 4);
	long min_ku = env_long("STRESS_MIN_KU", 1);
	const char *log = getenv("ECHO_KEYUPDATE_LOG");
	struct conn c[64];
	pthread_t w[64], r[64];

	total = (size_t)env_long("STRESS_BYTES", 16 << 20);
	port = echo_port();
	watchdog(240);
	if (nconns < 1 || nconns > 64 || !log)
		FAIL("bad STRESS_CONNS, or ECHO_KEYUPDATE_LOG unset");
	for (int i = 0; i < nconns; i++) {
		c[i].id = (uint64_t)i + 7;
		c[i].fd = dial(port);
		if (c[i].fd < 0)
			FAIL("connect: %s", strerror(errno));
	}
	bool seq = env_long("STRESS_SEQUENTIAL", 0) != 0;
	for (int i = 0; i < nconns; i++)
		if (seq ? pthread_create(&w[i], NULL, sequential, &c[i])
		        : pthread_create(&r[i], NULL, reader, &c[i]) ||
		                  pthread_create(&w[i], NULL, writer, &c[i]))
			FAIL("pthread_create");
	for (int i = 0; i < nconns; i++) {
		pthread_join(w[i], NULL);
		if (!seq)
			pthread_join(r[i], NULL);
		close(c[i].fd);
	}
	long ku = logged(log, nconns);
	if (ku < min_ku)
		FAIL("the server logged %ld key updates, expected >= %ld", ku,
		     min_ku);
	printf("ok: %d connections x %zu bytes echoed and verified across "
	       "%ld key updates\n",
	       nconns, total, ku);
	return 0;
}
