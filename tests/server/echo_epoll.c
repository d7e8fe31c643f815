/* A single-threaded, non-blocking, edge-triggered epoll echo server: the
 * event-loop daemon of server mode (issue 16). Connections come from
 * accept4(SOCK_NONBLOCK) and are registered EPOLLIN|EPOLLOUT|EPOLLRDHUP|
 * EPOLLET; the greeting (-g) is queued at accept and I/O is tried at
 * once, then on every event, until EAGAIN (the edge-triggered contract).
 * Echoes every byte until EOF, 64 KiB at a time. What it saw goes to the
 * record file (srv.h).
 *
 *   echo_epoll -r RECORD [-b ADDR] [-P PORT]... [-p PORTFILE] [-g TEXT]
 *              [-t SECONDS] [-w MS] */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "srv.h"

#define CHUNK 65536

struct conn {
	int fd;
	bool listener;
	bool eof;
	size_t greet_left; /* greeting bytes still queued in buf */
	size_t off, len;   /* queued bytes: buf[off..len) */
	char buf[CHUNK];
	struct srv_conn_log l;
};

static struct srv_opts opts;
static int ep;

static void finish(struct conn *c)
{
	srv_note_close(&c->l);
	close(c->fd); /* also leaves the epoll set */
	free(c);
}

/* A write failed with e: the record keeps it, and what a read says now. */
static void write_failed(struct conn *c, int e)
{
	char buf[256];
	ssize_t n;

	if (c->greet_left)
		snprintf(c->l.greet, sizeof c->l.greet, "%s", srv_errname(e));
	while ((n = read(c->fd, buf, sizeof buf)) < 0 && errno == EINTR)
		;
	if (n == 0 && c->greet_left)
		snprintf(c->l.end, sizeof c->l.end, "eof");
	else if (n < 0 && c->greet_left)
		snprintf(c->l.end, sizeof c->l.end, "read:%s",
		         srv_errname(errno));
	else
		snprintf(c->l.end, sizeof c->l.end, "write:%s", srv_errname(e));
	finish(c);
}

/* As far as the socket goes: returns at EAGAIN, or frees c. */
static void step(struct conn *c)
{
	for (;;) {
		while (c->off < c->len) {
			ssize_t n = write(c->fd, c->buf + c->off, c->len - c->off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				return; /* EPOLLOUT will come */
			if (n < 0) {
				write_failed(c, errno);
				return;
			}
			c->off += (size_t)n;
			c->l.out += (uint64_t)n;
			if (c->greet_left) {
				c->greet_left -= (size_t)n < c->greet_left
				                         ? (size_t)n : c->greet_left;
				if (!c->greet_left)
					snprintf(c->l.greet, sizeof c->l.greet,
					         "ok");
			}
		}
		c->off = c->len = 0;
		if (c->eof) {
			snprintf(c->l.end, sizeof c->l.end, "eof");
			finish(c);
			return;
		}
		ssize_t n = read(c->fd, c->buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLIN will come */
		if (n < 0) {
			snprintf(c->l.end, sizeof c->l.end, "read:%s",
			         srv_errname(errno));
			finish(c);
			return;
		}
		if (n == 0) {
			c->eof = true;
			continue;
		}
		c->l.in += (uint64_t)n;
		sha256_update(&c->l.sha, c->buf, (size_t)n);
		c->len = (size_t)n;
	}
}

static void accept_all(struct conn *ls)
{
	srv_accept_wait(&opts);
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			perror("accept4");
			exit(1);
		}
		srv_note_accept(fd, &ss, sl);
		struct conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		srv_log_init(&c->l, fd, opts.greeting != NULL);
		if (opts.greeting) {
			size_t g = strlen(opts.greeting);
			if (g > CHUNK)
				g = CHUNK;
			memcpy(c->buf, opts.greeting, g);
			c->len = c->greet_left = g;
		}
		struct epoll_event ev = {
			.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
			.data.ptr = c,
		};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			perror("epoll_ctl");
			exit(1);
		}
		step(c);
	}
}

int main(int argc, char **argv)
{
	int ls[SRV_MAX_LISTEN], n;
	struct epoll_event evs[64];

	srv_options(argc, argv,
	            "echo_epoll -r RECORD [-b ADDR] [-P PORT]... "
	            "[-p PORTFILE] [-g TEXT] [-t SECONDS] [-w MS]",
	            &opts);
	n = srv_listen(&opts, ls, 1);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("epoll_create1");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		struct conn *c = calloc(1, sizeof *c);
		if (!c)
			return 1;
		c->fd = ls[i];
		c->listener = true;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, ls[i], &ev) < 0) {
			perror("epoll_ctl");
			return 1;
		}
	}
	for (;;) {
		int k = epoll_wait(ep, evs, 64, -1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			perror("epoll_wait");
			return 1;
		}
		for (int i = 0; i < k; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->listener)
				accept_all(c);
			else
				step(c);
		}
	}
}
