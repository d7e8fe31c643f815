/* Signal storm: SIGALRM every millisecond (setitimer), its handler
 * installed without SA_RESTART, during a large echo transfer (a writer and
 * a reader thread on one TLS connection). Every call either transfers bytes,
 * or fails with EINTR (as the kernel would: never a short count of 0, never
 * another errno); the retry loop completes and the checksum of what came
 * back matches what was sent. $STRESS_BYTES: 64 MiB by default; the full
 * run is 1 GiB. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/time.h>

#include "stress.h"

static int fd;
static uint64_t total;
static volatile sig_atomic_t alarms;
static unsigned long eintr_w, eintr_r;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t sent_sum = 0xcbf29ce484222325ull;

static void *writer(void *arg)
{
	static unsigned char buf[65536];
	(void)arg;
	for (uint64_t off = 0; off < total;) {
		size_t n = total - off < sizeof buf ? total - off : sizeof buf;
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(7, off + i);
		sent_sum = fnv(sent_sum, buf, n);
		for (size_t done = 0; done < n;) {
			ssize_t w = write(fd, buf + done, n - done);
			if (w < 0 && errno == EINTR) {
				eintr_w++;
				continue;
			}
			if (w <= 0)
				FAIL("write: %zd (%s) at %llu", w,
				     strerror(errno),
				     (unsigned long long)(off + done));
			done += (size_t)w;
		}
		off += n;
	}
	return NULL;
}

int main(void)
{
	static unsigned char buf[65536];
	struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
	struct itimerval it = {{0, 1000}, {0, 1000}};
	uint64_t got = 0, sum = 0xcbf29ce484222325ull;
	pthread_t w;

	total = (uint64_t)env_long("STRESS_BYTES", 64L << 20);
	watchdog(240);
	fd = dial(echo_port());
	if (fd < 0)
		FAIL("connect: %s", strerror(errno));
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0 ||
	    setitimer(ITIMER_REAL, &it, NULL) < 0)
		FAIL("timer: %s", strerror(errno));
	if (pthread_create(&w, NULL, writer, NULL))
		FAIL("pthread_create");
	while (got < total) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR) {
			eintr_r++;
			continue;
		}
		if (n < 0)
			FAIL("read: %s at %llu", strerror(errno),
			     (unsigned long long)got);
		if (n == 0)
			FAIL("read: EOF at %llu of %llu",
			     (unsigned long long)got,
			     (unsigned long long)total);
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern(7, got + (uint64_t)i))
				FAIL("byte %llu differs",
				     (unsigned long long)(got + (uint64_t)i));
		sum = fnv(sum, buf, (size_t)n);
		got += (uint64_t)n;
	}
	pthread_join(w, NULL);
	it = (struct itimerval){0};
	setitimer(ITIMER_REAL, &it, NULL);
	if (sum != sent_sum)
		FAIL("checksum differs");
	close(fd);
	printf("ok: %llu bytes echoed, %d alarms, EINTR: %lu write, %lu "
	       "read, checksum %016llx\n",
	       (unsigned long long)total, (int)alarms, eintr_w, eintr_r,
	       (unsigned long long)sum);
	return 0;
}
