/* Threads: one thread writes >= 10 MB while another reads the echo on
 * the same fd (sha256 on both sides); four threads each on their own
 * connection; and in a process with threads, a blocking read keeps its
 * kernel semantics (SO_RCVTIMEO, EINTR without SA_RESTART, restart with
 * it): tlsshim waits for data differently once a process has threads. */
#include "iotest.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct job {
	int fd;
	size_t total;
	unsigned char digest[32];
	bool ok;
};

static void *writer(void *arg)
{
	struct job *j = arg;
	static __thread unsigned char b[65536];
	struct sha256 s;
	sha256_init(&s);
	j->ok = true;
	for (uint64_t off = 0; j->ok && off < j->total; off += sizeof b) {
		size_t n = j->total - off < sizeof b ? j->total - off : sizeof b;
		io_fill(b, off, n);
		sha256_update(&s, b, n);
		j->ok = io_write_all(j->fd, b, n);
	}
	sha256_final(&s, j->digest);
	return NULL;
}

static void *reader(void *arg)
{
	struct job *j = arg;
	static __thread unsigned char b[65536];
	struct sha256 s;
	sha256_init(&s);
	size_t got = 0;
	j->ok = true;
	while (got < j->total) {
		ssize_t r = read(j->fd, b, sizeof b);
		if (r <= 0) {
			j->ok = false;
			break;
		}
		sha256_update(&s, b, (size_t)r);
		got += (size_t)r;
	}
	sha256_final(&s, j->digest);
	return NULL;
}

static bool duplex(int fd, size_t total, char hex[65])
{
	struct job w = {fd, total, {0}, false}, r = {fd, total, {0}, false};
	pthread_t tw, tr;
	pthread_create(&tr, NULL, reader, &r);
	pthread_create(&tw, NULL, writer, &w);
	pthread_join(tw, NULL);
	pthread_join(tr, NULL);
	io_hex(r.digest, hex);
	return w.ok && r.ok && memcmp(w.digest, r.digest, 32) == 0;
}

static void rw_threads(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	char h[65];
	CHECK(duplex(fd, io_bytes(), h), "writer thread and reader thread on one fd: %zu bytes, sha256 %s",
	      io_bytes(), h);
	close(fd);
}

struct conn_job {
	bool ok;
	char hex[65];
};

static void *own_conn(void *arg)
{
	struct conn_job *c = arg;
	int fd = io_connect(io_port(NULL));
	c->ok = fd >= 0 && duplex(fd, io_bytes() / 4, c->hex);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void many(void)
{
	struct conn_job c[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, own_conn, &c[i]);
	int ok = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ok += c[i].ok;
	}
	CHECK(ok == 4, "four threads, each on its own connection: %d moved their bytes", ok);
}

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
}

struct poke {
	pthread_t target;
	int fd;
	bool write_after; /* then write one byte, which the echo returns */
};

static void ms_sleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void *poker(void *arg)
{
	struct poke *p = arg;
	ms_sleep(150);
	pthread_kill(p->target, SIGUSR1);
	if (p->write_after) {
		ms_sleep(150);
		(void)io_write_all(p->fd, "r", 1);
	}
	return NULL;
}

/* A read interrupted by a signal: EINTR, or (SA_RESTART) the byte that
 * comes later. */
static ssize_t read_poked(int fd, bool restart, char *c)
{
	struct sigaction sa = {.sa_handler = on_usr1,
	                       .sa_flags = restart ? SA_RESTART : 0};
	struct poke p = {pthread_self(), fd, restart};
	pthread_t t;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	if (pthread_create(&t, NULL, poker, &p))
		return -2;
	ssize_t r = read(fd, c, 1);
	int e = errno;
	pthread_join(t, NULL);
	errno = e;
	return r;
}

static void blocking_threaded(void)
{
	pthread_t t;
	char c = 0;
	CHECK(pthread_create(&t, NULL, idle, NULL) == 0 && pthread_detach(t) == 0,
	      "a second thread");
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	CHECK(io_write_all(fd, "!", 1) && io_read_all(fd, &c, 1) && c == '!',
	      "round trip");
	struct timeval tv = {0, 200000};
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0,
	      "SO_RCVTIMEO");
	ssize_t r = read(fd, &c, 1);
	CHECK(r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK),
	      "read past SO_RCVTIMEO: -1/EAGAIN (%zd)", r);
	tv.tv_usec = 0;
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0,
	      "SO_RCVTIMEO off");
	r = read_poked(fd, false, &c);
	CHECK(r == -1 && errno == EINTR,
	      "a signal without SA_RESTART: -1/EINTR (%zd)", r);
	r = read_poked(fd, true, &c);
	CHECK(r == 1 && c == 'r',
	      "a signal with SA_RESTART: the read goes on to the byte (%zd)", r);
	CHECK(io_write_all(fd, "!", 1) && io_read_all(fd, &c, 1) && c == '!',
	      "round trip after");
	close(fd);
}

/* A signal handler that writes on the fd its own thread is reading (write
 * is async-signal-safe): every byte a handler write took comes back
 * whole, and the process never hangs or crashes. tlsshim answers a
 * handler's call that would wait for its own thread with EINTR. */
static int hb_fd;
static volatile sig_atomic_t hb_bytes, hb_eintr, hb_calls;

static void heartbeat(int sig)
{
	int e = errno;
	(void)sig;
	hb_calls++;
	ssize_t r = write(hb_fd, "hb", 2);
	if (r > 0)
		hb_bytes += (sig_atomic_t)r;
	else if (r < 0 && errno == EINTR)
		hb_eintr++;
	errno = e;
}

static void signal_write(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	hb_fd = fd;
	struct timeval tv = {0, 20000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sigaction sa = {.sa_handler = heartbeat, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 200}, {0, 200}};
	setitimer(ITIMER_REAL, &it, NULL);
	long long got = 0;
	char buf[4096];
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		ssize_t r = read(fd, buf, sizeof buf);
		got += r > 0 ? r : 0;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 1);
	it = (struct itimerval){0};
	setitimer(ITIMER_REAL, &it, NULL);
	/* The rest of the echo. */
	for (int idle = 0; got < hb_bytes && idle < 100;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r > 0)
			got += r;
		else
			idle++;
	}
	CHECK(hb_bytes > 0 && got == hb_bytes,
	      "signal handler writes: %d calls, %d bytes taken and %lld echoed, %d EINTR",
	      (int)hb_calls, (int)hb_bytes, got, (int)hb_eintr);
	signal(SIGALRM, SIG_DFL);
	close(fd);
}

static const struct io_case cases[] = {
	IO_CASE("reader-writer", rw_threads), IO_CASE("many", many),
	IO_CASE("blocking-threaded", blocking_threaded),
	IO_CASE("signal-write", signal_write),
	{0},
};

int main(int argc, char **argv)
{
	io_init(argc, argv);
	io_run(cases);
	return io_summary();
}
