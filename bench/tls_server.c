/* Benchmark server: a TLS 1.3 (GnuTLS, AES-256-GCM) or plaintext sink/echo.
 *
 *   bench-server [-c cert.pem -k key.pem] [-T] -m sink|echo|source -p PORTFILE
 *
 * Without -c the server speaks plaintext. -T disables session tickets (so
 * every client handshake is a full one); -R gives every connection a ticket
 * key of its own (tickets are issued, but no ticket is ever accepted). One thread per connection, so one
 * process can hold thousands of idle connections (memory bench).
 *
 * sink: the client sends an 8-byte little-endian length, then that many
 * bytes; the server answers one byte 'k' once it has them all (repeatable).
 * echo: every byte read is written back, until EOF.
 * source: the client sends an 8-byte little-endian length; the server
 * writes that many bytes in 16 KiB writes (repeatable). */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

static gnutls_certificate_credentials_t xcred;
static gnutls_priority_t prio;
static gnutls_datum_t ticket_key;
static bool tls, tickets = true, rotate;
static enum { SINK, ECHO, SOURCE } mode;

struct peer {
	int fd;
	gnutls_session_t s;
};

static ssize_t peer_read(struct peer *p, void *buf, size_t len)
{
	if (!tls)
		return read(p->fd, buf, len);
	for (;;) {
		ssize_t n = gnutls_record_recv(p->s, buf, len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;
		return n < 0 ? -1 : n;
	}
}

static int peer_write(struct peer *p, const void *buf, size_t len)
{
	const char *b = buf;
	while (len) {
		ssize_t n = tls ? gnutls_record_send(p->s, b, len)
		                : write(p->fd, b, len);
		if (tls && (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED))
			continue;
		if (n < 0 && !tls && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *serve(void *arg)
{
	struct peer p = {.fd = (int)(intptr_t)arg};
	gnutls_datum_t own_key = {0};
	char *buf = malloc(65536);
	int one = 1;

	setsockopt(p.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (!buf)
		goto out;
	if (tls) {
		int ret;
		gnutls_init(&p.s, GNUTLS_SERVER);
		gnutls_priority_set(p.s, prio);
		gnutls_credentials_set(p.s, GNUTLS_CRD_CERTIFICATE, xcred);
		if (tickets && rotate) {
			/* A key of its own: no earlier ticket is valid. */
			gnutls_session_ticket_key_generate(&own_key);
			gnutls_session_ticket_enable_server(p.s, &own_key);
		} else if (tickets) {
			gnutls_session_ticket_enable_server(p.s, &ticket_key);
		}
		gnutls_transport_set_int(p.s, p.fd);
		gnutls_handshake_set_timeout(p.s, 10000);
		do
			ret = gnutls_handshake(p.s);
		while (ret < 0 && !gnutls_error_is_fatal(ret));
		if (ret < 0)
			goto out;
	}
	if (mode == ECHO) {
		ssize_t n;
		while ((n = peer_read(&p, buf, 65536)) > 0)
			if (peer_write(&p, buf, (size_t)n) < 0)
				break;
	} else {
		for (;;) {
			uint64_t want = 0;
			size_t got = 0;
			while (got < sizeof want) {
				ssize_t n = peer_read(&p, (char *)&want + got,
				                      sizeof want - got);
				if (n <= 0)
					goto out;
				got += (size_t)n;
			}
			if (mode == SOURCE) {
				memset(buf, 'x', 16384);
				for (; want; want -= want < 16384 ? want : 16384)
					if (peer_write(&p, buf, want < 16384
					                                ? (size_t)want
					                                : 16384) < 0)
						goto out;
				continue;
			}
			while (want) {
				ssize_t n = peer_read(&p, buf,
				                      want < 65536 ? want : 65536);
				if (n <= 0)
					goto out;
				want -= (uint64_t)n;
			}
			if (peer_write(&p, "k", 1) < 0)
				goto out;
		}
	}
out:
	if (p.s) {
		gnutls_bye(p.s, GNUTLS_SHUT_WR);
		gnutls_deinit(p.s);
	}
	gnutls_free(own_key.data);
	close(p.fd);
	free(buf);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-server [-c CERT -k KEY] [-T|-R] "
	                "-m sink|echo|source -p PORTFILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL, *portfile = NULL, *mname = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "c:k:TRm:p:")) != -1) {
		switch (opt) {
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'T': tickets = false; break;
		case 'R': rotate = true; break;
		case 'm': mname = optarg; break;
		case 'p': portfile = optarg; break;
		default: usage();
		}
	}
	if (!mname || !portfile || !cert != !key)
		usage();
	if (strcmp(mname, "echo") == 0)
		mode = ECHO;
	else if (strcmp(mname, "source") == 0)
		mode = SOURCE;
	else if (strcmp(mname, "sink") != 0)
		usage();
	tls = cert != NULL;
	signal(SIGPIPE, SIG_IGN);

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (tls) {
		gnutls_global_init();
		gnutls_certificate_allocate_credentials(&xcred);
		int ret = gnutls_certificate_set_x509_key_file(
			xcred, cert, key, GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			fprintf(stderr, "bench-server: %s: %s\n", cert,
			        gnutls_strerror(ret));
			return 1;
		}
		ret = gnutls_priority_init(
			&prio,
			"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM",
			NULL);
		if (ret < 0)
			return 1;
		gnutls_session_ticket_key_generate(&ticket_key);
	}

	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sin;
	if (ls < 0 || bind(ls, (void *)&sin, sizeof sin) < 0 ||
	    listen(ls, 4096) < 0 || getsockname(ls, (void *)&sin, &sl) < 0) {
		perror("bench-server");
		return 1;
	}
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", portfile);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return 1;
	fprintf(f, "%u\n", ntohs(sin.sin_port));
	fclose(f);
	rename(tmp, portfile);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE)
				continue;
			perror("accept");
			return 1;
		}
		pthread_t th;
		if (pthread_create(&th, &attr, serve, (void *)(intptr_t)fd))
			close(fd);
	}
}
