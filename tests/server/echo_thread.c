/* A blocking, thread-per-connection echo server: the legacy daemon of
 * server mode (issue 16). One accept thread per listener; each accepted
 * connection gets a thread that writes the greeting (-g) first, then
 * echoes every byte it reads until EOF. What it saw goes to the record
 * file (srv.h). With -f N it is a pre-fork server: the parent listens,
 * forks N children that accept on the inherited listeners, and waits.
 *
 *   echo_thread -r RECORD [-b ADDR] [-P PORT]... [-p PORTFILE] [-g TEXT]
 *               [-t SECONDS] [-f N] [-w MS] */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srv.h"

static struct srv_opts opts;

/* Everything, or the errno of the write that failed. */
static int write_all(int fd, const char *p, size_t len, uint64_t *out)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		p += n, len -= (size_t)n, *out += (uint64_t)n;
	}
	return 0;
}

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg, e;
	struct srv_conn_log l;
	char *buf = malloc(65536);

	srv_log_init(&l, fd, opts.greeting != NULL);
	if (!buf) {
		snprintf(l.end, sizeof l.end, "malloc");
		goto out;
	}
	if (opts.greeting) {
		e = write_all(fd, opts.greeting, strlen(opts.greeting), &l.out);
		snprintf(l.greet, sizeof l.greet, "%s", e ? srv_errname(e) : "ok");
	}
	/* Read on after a failed greeting: what a read then says is part
	 * of the record. */
	for (;;) {
		ssize_t n = read(fd, buf, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(l.end, sizeof l.end, "read:%s", srv_errname(errno));
			break;
		}
		if (n == 0) {
			snprintf(l.end, sizeof l.end, "eof");
			break;
		}
		l.in += (uint64_t)n;
		sha256_update(&l.sha, buf, (size_t)n);
		e = write_all(fd, buf, (size_t)n, &l.out);
		if (e) {
			snprintf(l.end, sizeof l.end, "write:%s", srv_errname(e));
			break;
		}
	}
out:
	srv_note_close(&l);
	close(fd);
	free(buf);
	return NULL;
}

static void *acceptor(void *arg)
{
	int ls = (int)(intptr_t)arg;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		pthread_t th;
		srv_accept_wait(&opts);
		int fd = accept(ls, (struct sockaddr *)&ss, &sl);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("accept");
			exit(1);
		}
		srv_note_accept(fd, &ss, sl);
		if (pthread_create(&th, &attr, serve, (void *)(intptr_t)fd)) {
			perror("pthread_create");
			close(fd);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int ls[SRV_MAX_LISTEN], n;
	pthread_t th;

	srv_options(argc, argv,
	            "echo_thread -r RECORD [-b ADDR] [-P PORT]... "
	            "[-p PORTFILE] [-g TEXT] [-t SECONDS] [-f N] [-w MS]",
	            &opts);
	n = srv_listen(&opts, ls, 0);
	for (unsigned i = 0; i < opts.forks; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			/* Ends with the parent the test stops; an alarm is
			 * not inherited. */
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			alarm(opts.max_seconds);
			goto serve;
		}
	}
	if (opts.forks) {
		while (wait(NULL) > 0 || errno == EINTR)
			;
		return 0;
	}
serve:
	for (int i = 1; i < n; i++)
		if (pthread_create(&th, NULL, acceptor, (void *)(intptr_t)ls[i])) {
			perror("pthread_create");
			return 1;
		}
	acceptor((void *)(intptr_t)ls[0]);
	return 0;
}
