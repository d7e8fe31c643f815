/* Shared by the stress programs: the TLS echo port from $STRESS_PORT (a
 * policy rule matches it, so every connection there is upgraded by the
 * preload), counts from the environment, a watchdog, exact I/O. */
#ifndef STRESS_H
#define STRESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#define FAIL(...)                                                         \
	do {                                                              \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
		fprintf(stderr, __VA_ARGS__);                             \
		fputc('\n', stderr);                                      \
		fflush(stderr);                                           \
		_exit(1);                                                 \
	} while (0)

static inline long env_long(const char *name, long dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtol(v, NULL, 10) : dflt;
}

static inline int echo_port(void)
{
	long p = env_long("STRESS_PORT", 0);
	if (p <= 0 || p > 65535)
		FAIL("STRESS_PORT is not set");
	return (int)p;
}

/* A connection to 127.0.0.1:port; with the preload, a verified TLS
 * session. -1 with errno on failure. */
static inline int dial(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (errno == EINTR)
			continue;
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static inline void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			FAIL("write fd %d: %zd (%s)", fd, n, strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

static inline void read_exact(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			FAIL("read fd %d: %s", fd, strerror(errno));
		if (n == 0)
			FAIL("read fd %d: early EOF, %zu bytes missing", fd,
			     len);
		p += n;
		len -= (size_t)n;
	}
}

/* Payload byte i of stream `id`: a mix that tells streams apart. */
static inline unsigned char pattern(uint64_t id, uint64_t i)
{
	uint64_t x = (id + 1) * 0x9e3779b97f4a7c15ull ^ (i / 8);
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return (unsigned char)(x >> (8 * (i % 8)));
}

static void *watchdog_main(void *arg)
{
	long secs = (long)(intptr_t)arg;
	struct timespec ts = {.tv_sec = secs};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	fprintf(stderr, "FAIL: still running after %ld s (hang?)\n", secs);
	_exit(3);
	return NULL;
}

/* Every program is bounded: $STRESS_TIMEOUT seconds (default given). */
static inline void watchdog(long dflt)
{
	pthread_t t;
	long secs = env_long("STRESS_TIMEOUT", dflt);
	if (pthread_create(&t, NULL, watchdog_main, (void *)(intptr_t)secs))
		FAIL("pthread_create");
	pthread_detach(t);
}

#endif
