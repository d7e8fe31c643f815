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
#include <time.h>
#include <unistd.h>

#include "srv.h"

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
	while ((opt = getopt(argc, argv, "b:P:p:r:g:t:f:w:")) != -1) {
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
		case 'f': o->forks = (unsigned)atoi(optarg); break;
		case 'w': o->accept_wait_ms = (unsigned)atoi(optarg); break;
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

void srv_accept_wait(const struct srv_opts *o)
{
	struct timespec ts = {o->accept_wait_ms / 1000,
	                      (long)(o->accept_wait_ms % 1000) * 1000000};
	while (o->accept_wait_ms && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
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
	unsigned char sum[32];
	char hex[65], line[512];

	sha256_final(&l->sha, sum);
	io_hex(sum, hex);
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
