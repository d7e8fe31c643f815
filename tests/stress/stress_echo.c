/* Many threads, many connections through one process: each thread opens
 * $STRESS_CONNS connections in turn (default 20; the full run is 200),
 * $STRESS_THREADS threads (default 32) at once; on each it writes a payload
 * of its own (pattern of thread and connection, 1..48 KiB) in pieces while
 * reading the echo back, and checks every byte. An fd mix-up, a corrupted
 * or lost byte, or a deadlock (watchdog) fails. */
#define _GNU_SOURCE
#include "stress.h"

static int port, nconns;

static void *worker(void *arg)
{
	uint64_t t = (uint64_t)(intptr_t)arg;
	static __thread unsigned char out[49152], in[49152];

	for (int c = 0; c < nconns; c++) {
		uint64_t id = t * 100000 + (uint64_t)c;
		size_t len = 1 + (size_t)(pattern(id, 0) * 191u +
		                          pattern(id, 1)) % sizeof out;
		for (size_t i = 0; i < len; i++)
			out[i] = pattern(id, i);
		int fd = dial(port);
		if (fd < 0)
			FAIL("thread %d conn %d: connect: %s", (int)t, c,
			     strerror(errno));
		/* Write in chunks of up to 8 KiB, reading each echo, so
		 * neither side's buffers fill up. */
		for (size_t off = 0; off < len;) {
			size_t n = len - off < 8192 ? len - off : 8192;
			write_all(fd, out + off, n);
			read_exact(fd, in + off, n);
			off += n;
		}
		if (memcmp(in, out, len)) {
			size_t i = 0;
			while (in[i] == out[i])
				i++;
			FAIL("thread %d conn %d fd %d: byte %zu of %zu differs",
			     (int)t, c, fd, i, len);
		}
		if (close(fd) < 0)
			FAIL("close: %s", strerror(errno));
	}
	return NULL;
}

int main(void)
{
	int nthreads = (int)env_long("STRESS_THREADS", 32);
	pthread_t th[1024];

	nconns = (int)env_long("STRESS_CONNS", 20);
	port = echo_port();
	watchdog(240);
	if (nthreads < 1 || nthreads > 1024)
		FAIL("bad STRESS_THREADS");
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i))
			FAIL("pthread_create");
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	printf("ok: %d threads x %d connections echoed and verified\n",
	       nthreads, nconns);
	return 0;
}
