/* Threads: one thread writes >= 10 MB while another reads the echo on
 * the same fd (sha256 on both sides); four threads each on their own
 * connection. */
#include "iotest.h"

#include <pthread.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	io_init(argc, argv);
	if (io_selected("reader-writer"))
		rw_threads();
	if (io_selected("many"))
		many();
	return io_summary();
}
