/* A small GnuTLS echo server for the stress suite: one thread per
 * connection, echo until EOF, then close_notify. Python is too slow for
 * thousands of handshakes on two cores.
 *
 *   echo_server CERT KEY PORTFILE MAXSECONDS
 *
 * With $ECHO_KEYUPDATE=N it sends a TLS 1.3 KeyUpdate asking the client
 * to update too (GNUTLS_KU_PEER) after every N bytes it echoes, at most
 * one each 200 ms (GnuTLS refuses a peer's bursts of them), and adds
 * "<count>\n" to the file $ECHO_KEYUPDATE_LOG when a connection ends.
 *
 * Listens on 127.0.0.1 port 0 and writes the port to PORTFILE (atomically),
 * exits by itself after MAXSECONDS. Not preloaded: a plain test tool. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static gnutls_certificate_credentials_t cred;
static gnutls_priority_t prio;
static long ku_every;
static const char *ku_log;
static pthread_mutex_t ku_lock = PTHREAD_MUTEX_INITIALIZER;

/* After n more bytes echoed: a KeyUpdate when one is due. */
static int maybe_key_update(gnutls_session_t s, long n, long *since,
                            long *count, struct timespec *last)
{
	struct timespec now;
	int r;

	if (!ku_every || (*since += n) < ku_every)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((now.tv_sec - last->tv_sec) * 1000 +
	            (now.tv_nsec - last->tv_nsec) / 1000000 <
	    200)
		return 0;
	*last = now;
	*since = 0;
	do
		r = gnutls_session_key_update(s, GNUTLS_KU_PEER);
	while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
	if (r == 0)
		++*count;
	return r;
}

static void log_key_updates(long count)
{
	if (!ku_log || !count)
		return;
	pthread_mutex_lock(&ku_lock);
	FILE *f = fopen(ku_log, "a");
	if (f) {
		fprintf(f, "%ld\n", count);
		fclose(f);
	}
	pthread_mutex_unlock(&ku_lock);
}

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg, r;
	gnutls_session_t s;
	static __thread char buf[65536];
	long since = 0, count = 0;
	struct timespec last = {0, 0};

	if (gnutls_init(&s, GNUTLS_SERVER) < 0)
		goto out;
	gnutls_priority_set(s, prio);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
	gnutls_transport_set_int(s, fd);
	gnutls_handshake_set_timeout(s, 20000);
	do
		r = gnutls_handshake(s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0)
		goto deinit;
	for (;;) {
		ssize_t n = gnutls_record_recv(s, buf, sizeof buf);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n <= 0) {
			if (n < 0)
				fprintf(stderr, "echo_server: %s\n",
				        gnutls_strerror((int)n));
			break;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = gnutls_record_send(s, buf + off, n - off);
			if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
				continue;
			if (w < 0)
				goto bye;
			off += w;
		}
		if ((r = maybe_key_update(s, (long)n, &since, &count, &last)) <
		    0) {
			fprintf(stderr, "echo_server: key update: %s\n",
			        gnutls_strerror(r));
			goto bye;
		}
	}
bye:
	log_key_updates(count);
	gnutls_bye(s, GNUTLS_SHUT_WR);
deinit:
	gnutls_deinit(s);
out:
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof sa;
	char tmp[4096];
	int one = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: echo_server CERT KEY PORTFILE SECS\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	ku_every = getenv("ECHO_KEYUPDATE") ? atol(getenv("ECHO_KEYUPDATE")) : 0;
	ku_log = getenv("ECHO_KEYUPDATE_LOG");
	if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
	    gnutls_certificate_set_x509_key_file(cred, argv[1], argv[2],
	                                         GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_priority_init(&prio, "NORMAL", NULL) < 0) {
		fprintf(stderr, "echo_server: cannot load %s\n", argv[1]);
		return 1;
	}
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(ls, 512) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
		perror("echo_server: listen");
		return 1;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", argv[3]);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(f) ||
	    rename(tmp, argv[3]) < 0) {
		perror("echo_server: port file");
		return 1;
	}
	alarm((unsigned)atoi(argv[4])); /* bounded: SIGALRM ends us */
	for (;;) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE)
				continue;
			perror("echo_server: accept");
			return 1;
		}
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&t, &at, serve, (void *)(intptr_t)c))
			close(c);
		pthread_attr_destroy(&at);
	}
}
