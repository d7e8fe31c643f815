#include "iotest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int io_failed, io_passed;
const char *io_test = "";
static char **sel;
static int nsel;

/* ---- sha256 (FIPS 180-4), small and slow enough ---- */
static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void block(struct sha256 *s, const unsigned char *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h;
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
	e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) +
			      ((e & f) ^ (~e & g)) + K[i] + w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) +
			      ((a & b) ^ (a & c) ^ (b & c));
		h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
	}
	s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
	s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

void sha256_init(struct sha256 *s)
{
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
		0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	memcpy(s->h, iv, sizeof iv);
	s->len = 0;
	s->n = 0;
}

void sha256_update(struct sha256 *s, const void *p, size_t n)
{
	const unsigned char *c = p;
	s->len += n;
	while (n > 0) {
		if (s->n == 0 && n >= 64) {
			block(s, c);
			c += 64;
			n -= 64;
			continue;
		}
		size_t k = 64 - s->n < n ? 64 - s->n : n;
		memcpy(s->buf + s->n, c, k);
		s->n += k;
		c += k;
		n -= k;
		if (s->n == 64) {
			block(s, s->buf);
			s->n = 0;
		}
	}
}

void sha256_final(struct sha256 *s, unsigned char out[32])
{
	uint64_t bits = s->len * 8;
	unsigned char pad[72] = {0x80};
	size_t padlen = (s->n < 56 ? 56 : 120) - s->n;
	for (int i = 0; i < 8; i++)
		pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
	sha256_update(s, pad, padlen + 8);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (unsigned char)(s->h[i] >> 24);
		out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
		out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
		out[4 * i + 3] = (unsigned char)s->h[i];
	}
}

void io_hex(const unsigned char d[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- reporting ---- */
bool io_check(bool cond, const char *what, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (cond) {
		io_passed++;
		printf("ok - %s: %s\n", io_test, msg);
	} else {
		io_failed++;
		printf("not ok - %s: %s [%s] (errno %d %s)\n", io_test, msg,
		       what, errno, strerror(errno));
	}
	fflush(stdout);
	return cond;
}

static void on_alarm(int sig)
{
	char m[256];
	int n = snprintf(m, sizeof m, "not ok - %s: TIMEOUT (IO_TIMEOUT), hung here\n", io_test);
	(void)sig;
	if (write(1, m, (size_t)n) < 0)
		_exit(3);
	_exit(3);
}

void io_init(int argc, char **argv)
{
	const char *t = getenv("IO_TIMEOUT");
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_alarm);
	alarm(t ? (unsigned)atoi(t) : 60);
	sel = argv + 1;
	nsel = argc - 1;
}

bool io_selected(const char *name)
{
	io_test = name;
	if (nsel == 0)
		return true;
	for (int i = 0; i < nsel; i++)
		if (strcmp(sel[i], name) == 0)
			return true;
	return false;
}

void io_run(const struct io_case *cases)
{
	for (; cases->name; cases++)
		if (!io_selected(cases->name))
			continue;
		else if (cases->run)
			cases->run();
		else
			cases->run_with(cases->kind, cases->what);
}

int io_summary(void)
{
	printf("%d passed, %d failed\n", io_passed, io_failed);
	return io_failed || !io_passed ? 1 : 0;
}

bool io_tls(void)
{
	const char *m = getenv("IO_MODE");
	return m && strcmp(m, "tls") == 0;
}

size_t io_bytes(void)
{
	const char *b = getenv("IO_BYTES");
	return b ? strtoul(b, NULL, 0) : 10u << 20;
}

int io_port(const char *env)
{
	const char *p = getenv(env ? env : "IO_PORT");
	if (!p) {
		fprintf(stderr, "%s not set\n", env ? env : "IO_PORT");
		exit(2);
	}
	return atoi(p);
}

int io_addr(int port, void *sa, unsigned *len)
{
	const char *h = getenv("IO_HOST");
	if (!h)
		h = "127.0.0.1";
	if (strchr(h, ':')) {
		struct sockaddr_in6 *a = sa;
		memset(a, 0, sizeof *a);
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, h, &a->sin6_addr);
		*len = sizeof *a;
		return AF_INET6;
	}
	struct sockaddr_in *a = sa;
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, h, &a->sin_addr);
	*len = sizeof *a;
	return AF_INET;
}

int io_connect(int port)
{
	struct sockaddr_storage ss;
	unsigned len;
	int fam = io_addr(port, &ss, &len);
	int fd = socket(fam, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) != 0) {
		CHECK(0, "connect to port %d", port);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int io_socket_nb(void)
{
	struct sockaddr_storage ss;
	unsigned len;
	int fam = io_addr(1, &ss, &len);
	return socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
}

static inline unsigned char byte_at(uint64_t i)
{
	uint64_t x = (i / 8 + 1) * 0x9e3779b97f4a7c15ull;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return (unsigned char)(x >> (8 * (i % 8)));
}

void io_fill(unsigned char *buf, uint64_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = byte_at(off + i);
}

bool io_verify(const unsigned char *buf, uint64_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != byte_at(off + i))
			return false;
	return true;
}

bool io_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t r = write(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		c += r;
		n -= (size_t)r;
	}
	return true;
}

bool io_read_all(int fd, void *p, size_t n)
{
	char *c = p;
	while (n > 0) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		c += r;
		n -= (size_t)r;
	}
	return true;
}

bool io_wait_in(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r == 1 && (p.revents & POLLIN);
}

bool io_record_read1(int fd)
{
	static unsigned char b[IO_REC];
	io_fill(b, 0, IO_REC);
	if (!io_write_all(fd, b, IO_REC))
		return CHECK(0, "write 16 KiB");
	if (!io_read_all(fd, b, 1) || !io_verify(b, 0, 1))
		return CHECK(0, "read first byte of the echoed record");
	return true;
}

bool io_record_rest(int fd)
{
	static unsigned char b[IO_REC];
	bool ok = io_read_all(fd, b, IO_REC - 1) && io_verify(b, 1, IO_REC - 1);
	return CHECK(ok, "the remaining %d bytes arrive intact", IO_REC - 1);
}
