/* Shared by the test servers (see srv.h). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srv.h"

/* ---- SHA-256 (FIPS 180-4): the programs link no crypto library ---- */

static const uint32_t k256[64] = {
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
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256 *s, const unsigned char *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^
		              (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^
		              (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
	e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (i = 0; i < 64; i++) {
		uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) +
		              ((e & f) ^ (~e & g)) + k256[i] + w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) +
		              ((a & b) ^ (a & c) ^ (b & c));
		h = g, g = f, f = e, e = d + t1;
		d = c, c = b, b = a, a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

void sha256_init(struct sha256 *s)
{
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
	                               0xa54ff53a, 0x510e527f, 0x9b05688c,
	                               0x1f83d9ab, 0x5be0cd19};
	memcpy(s->h, iv, sizeof iv);
	s->len = 0;
	s->n = 0;
}

void sha256_update(struct sha256 *s, const void *data, size_t len)
{
	const unsigned char *p = data;

	s->len += len;
	if (s->n) {
		size_t take = 64 - s->n < len ? 64 - s->n : len;
		memcpy(s->buf + s->n, p, take);
		s->n += take, p += take, len -= take;
		if (s->n < 64)
			return;
		sha256_block(s, s->buf);
		s->n = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		sha256_block(s, p);
	memcpy(s->buf, p, len);
	s->n = len;
}

void sha256_hex(struct sha256 *s, char out[65])
{
	uint64_t bits = s->len * 8;
	unsigned char pad[72] = {0x80};
	size_t padlen = (s->n < 56 ? 56 : 120) - s->n;

	for (int i = 0; i < 8; i++)
		pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
	sha256_update(s, pad, padlen + 8);
	for (int i = 0; i < 8; i++)
		snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* ---- options, listeners, records ---- */

static int record_fd = -1;

static void usage_exit(const char *usage)
{
	fprintf(stderr, "usage: %s\n", usage);
	exit(2);
}

void srv_options(int argc, char **argv, const char *usage,
                 struct srv_opts *o)
{
	int opt;

	*o = (struct srv_opts){.bind = "127.0.0.1", .max_seconds = 300};
	while ((opt = getopt(argc, argv, "b:P:p:r:g:t:")) != -1) {
		switch (opt) {
		case 'b': o->bind = optarg; break;
		case 'P':
			if (o->nports == SRV_MAX_LISTEN)
				usage_exit(usage);
			o->ports[o->nports++] = (unsigned)atoi(optarg);
			break;
		case 'p': o->portfile = optarg; break;
		case 'r': o->record = optarg; break;
		case 'g': o->greeting = optarg; break;
		case 't': o->max_seconds = (unsigned)atoi(optarg); break;
		default: usage_exit(usage);
		}
	}
	if (optind != argc || !o->record)
		usage_exit(usage);
	if (!o->nports)
		o->ports[o->nports++] = 0;
	record_fd = open(o->record, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	                 0644);
	if (record_fd < 0) {
		perror(o->record);
		exit(1);
	}
	/* A peer that went away is an errno for the record, not a death. */
	signal(SIGPIPE, SIG_IGN);
	alarm(o->max_seconds);
}

static int listen_one(const char *bind_addr, unsigned port, int nonblock,
                      unsigned *bound)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int one = 1, fd;

	if (inet_pton(AF_INET, bind_addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		len = sizeof *sin;
	} else if (inet_pton(AF_INET6, bind_addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		len = sizeof *sin6;
	} else {
		fprintf(stderr, "bad address %s\n", bind_addr);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	                                  (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		perror("listen");
		close(fd);
		return -1;
	}
	*bound = ntohs(ss.ss_family == AF_INET ? sin->sin_port
	                                       : sin6->sin6_port);
	return fd;
}

int srv_listen(const struct srv_opts *o, int fds[SRV_MAX_LISTEN],
               int nonblock)
{
	unsigned first = 0;

	for (int i = 0; i < o->nports; i++) {
		unsigned bound;
		fds[i] = listen_one(o->bind, o->ports[i], nonblock, &bound);
		if (fds[i] < 0)
			exit(1);
		if (i == 0)
			first = bound;
	}
	if (o->portfile) {
		char tmp[4096];
		snprintf(tmp, sizeof tmp, "%s.tmp", o->portfile);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%u\n", first) < 0 || fclose(f) != 0 ||
		    rename(tmp, o->portfile) < 0) {
			perror(o->portfile);
			exit(1);
		}
	}
	return o->nports;
}

void srv_addr(const struct sockaddr_storage *ss, socklen_t len, char *out,
              size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s = (const void *)ss;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
		snprintf(out, outlen, "%s:%u", ip, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6 &&
	           len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s = (const void *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
		snprintf(out, outlen, "[%s]:%u", ip, ntohs(s->sin6_port));
	} else {
		snprintf(out, outlen, "?");
	}
}

static void fd_addrs(int fd, char *peer, char *local, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		srv_addr(&ss, sl, peer, len);
	else
		snprintf(peer, len, "getpeername:%s", srv_errname(errno));
	sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		srv_addr(&ss, sl, local, len);
	else
		snprintf(local, len, "getsockname:%s", srv_errname(errno));
}

static void record(const char *line, int n)
{
	if (n > 0 && write(record_fd, line, (size_t)n) != n)
		perror("record");
}

void srv_note_accept(int fd, const struct sockaddr_storage *acc,
                     socklen_t acclen)
{
	char peer[64], local[64], a[64], line[256];

	fd_addrs(fd, peer, local, sizeof peer);
	srv_addr(acc, acclen, a, sizeof a);
	record(line, snprintf(line, sizeof line, "accept peer=%s acc=%s "
	                      "local=%s\n", peer, a, local));
}

void srv_log_init(struct srv_conn_log *l, int fd, int greeting)
{
	memset(l, 0, sizeof *l);
	fd_addrs(fd, l->peer, l->local, sizeof l->peer);
	snprintf(l->greet, sizeof l->greet, "%s", greeting ? "pending" : "-");
	sha256_init(&l->sha);
}

void srv_note_close(struct srv_conn_log *l)
{
	char hex[65], line[512];

	sha256_hex(&l->sha, hex);
	record(line, snprintf(line, sizeof line,
	                      "close peer=%s local=%s greet=%s in=%llu "
	                      "sha256=%s out=%llu end=%s\n",
	                      l->peer, l->local, l->greet,
	                      (unsigned long long)l->in, hex,
	                      (unsigned long long)l->out,
	                      l->end[0] ? l->end : "?"));
}

const char *srv_errname(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}
