/* A GnuTLS sink for the upload tests (tests/80-close-upload.bats): reads
 * each connection to its end and appends one line per connection to the
 * results file:
 *
 *   BYTES SHA256 END
 *
 * END says how the stream ended: close_notify, eof (a FIN without
 * close_notify), reset (ECONNRESET), or error:<GnuTLS's reason>.
 *
 *   tls_sink -c CERT -k KEY -p PORTFILE -r RESULTS [-s SECONDS] [-2]
 *            [-t auto|none|late] [-w MS] [-u] [-U BYTES] [-g BYTES]
 *
 *   -2        TLS 1.2 only (default: TLS 1.3 only)
 *   -t none   no session tickets; late: none in the handshake, one sent
 *             after the -w pause (a server that sends its ticket later)
 *   -w MS     after the handshake, wait MS before reading anything: the
 *             client's upload piles up unsent in its own kernel
 *   -u        after the pause, a KeyUpdate asking the client to update too
 *   -U BYTES  such a KeyUpdate after every BYTES read (at most one each
 *             200 ms: GnuTLS refuses a peer's bursts of them)
 *   -g BYTES  after the handshake, send BYTES of application data the
 *             client may or may not read (0x67 bytes)
 *
 * Listens on 127.0.0.1 port 0 and writes the port to PORTFILE (atomically);
 * one thread per connection; exits by itself after SECONDS (default 300).
 * Not preloaded: a plain test tool. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static gnutls_certificate_credentials_t cred;
static gnutls_priority_t prio;
static gnutls_datum_t ticket_key;
static const char *results;
static enum { TICKETS_AUTO, TICKETS_NONE, TICKETS_LATE } tickets;
static long pause_ms, ku_every, greet;
static bool ku_after_pause;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int key_update(gnutls_session_t s)
{
	int r;
	do
		r = gnutls_session_key_update(s, GNUTLS_KU_PEER);
	while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
	return r;
}

/* One line, one write, O_APPEND: lines of concurrent connections do not
 * interleave. */
static void report(unsigned long long n, const unsigned char *md,
                   const char *end)
{
	char line[256];
	int len = snprintf(line, sizeof line, "%llu ", n);
	for (int i = 0; i < 32; i++)
		len += snprintf(line + len, sizeof line - (size_t)len, "%02x",
		                md[i]);
	len += snprintf(line + len, sizeof line - (size_t)len, " %s\n", end);
	int fd = open(results, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	              0644);
	if (fd < 0 || write(fd, line, (size_t)len) != len)
		perror("tls_sink: results");
	if (fd >= 0)
		close(fd);
}

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg, r;
	gnutls_session_t s;
	gnutls_hash_hd_t h;
	static __thread char buf[65536];
	unsigned long long total = 0;
	long since = 0;
	long long last_ku = 0;
	unsigned char md[32];
	char end[160] = "close_notify";
	unsigned flags = GNUTLS_SERVER;

	if (tickets == TICKETS_NONE)
		flags |= GNUTLS_NO_TICKETS;
	else if (tickets == TICKETS_LATE)
		flags |= GNUTLS_NO_AUTO_SEND_TICKET;
	if (gnutls_init(&s, flags) < 0)
		goto out;
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		goto deinit;
	gnutls_priority_set(s, prio);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
	/* Like gnutls-serv: a server issues tickets when it has a key. */
	if (tickets != TICKETS_NONE)
		gnutls_session_ticket_enable_server(s, &ticket_key);
	gnutls_transport_set_int(s, fd);
	gnutls_handshake_set_timeout(s, 20000);
	do
		r = gnutls_handshake(s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0) {
		snprintf(end, sizeof end, "error:%s", gnutls_strerror(r));
		goto done;
	}
	for (long g = greet; g > 0;) {
		memset(buf, 'g', sizeof buf);
		ssize_t w = gnutls_record_send(s, buf,
		                               g < (long)sizeof buf ? (size_t)g
		                                                    : sizeof buf);
		if (w < 0 && gnutls_error_is_fatal((int)w))
			break;
		if (w > 0)
			g -= w;
	}
	if (pause_ms)
		usleep((useconds_t)pause_ms * 1000);
	if (tickets == TICKETS_LATE &&
	    (r = gnutls_session_ticket_send(s, 1, 0)) < 0)
		fprintf(stderr, "tls_sink: ticket: %s\n", gnutls_strerror(r));
	if (ku_after_pause && (r = key_update(s)) < 0)
		fprintf(stderr, "tls_sink: key update: %s\n",
		        gnutls_strerror(r));
	for (;;) {
		ssize_t n = gnutls_record_recv(s, buf, sizeof buf);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == 0)
			break;
		if (n < 0) {
			if (n == GNUTLS_E_PREMATURE_TERMINATION)
				snprintf(end, sizeof end, "eof");
			else if (n == GNUTLS_E_PULL_ERROR && errno == ECONNRESET)
				snprintf(end, sizeof end, "reset");
			else
				snprintf(end, sizeof end, "error:%s",
				         gnutls_strerror((int)n));
			break;
		}
		gnutls_hash(h, buf, (size_t)n);
		total += (unsigned long long)n;
		if (ku_every && (since += n) >= ku_every &&
		    now_ms() - last_ku >= 200) {
			since = 0;
			last_ku = now_ms();
			if ((r = key_update(s)) < 0)
				fprintf(stderr, "tls_sink: key update: %s\n",
				        gnutls_strerror(r));
		}
	}
	if (!strcmp(end, "close_notify"))
		gnutls_bye(s, GNUTLS_SHUT_WR);
done:
	gnutls_hash_deinit(h, md);
	report(total, md, end);
deinit:
	gnutls_deinit(s);
out:
	close(fd);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: tls_sink -c CERT -k KEY -p PORTFILE -r RESULTS "
	        "[-s SECONDS] [-2] [-t auto|none|late] [-w MS] [-u] "
	        "[-U BYTES] [-g BYTES]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof sa;
	const char *certf = NULL, *keyf = NULL, *portf = NULL;
	const char *vers = "NORMAL:-VERS-ALL:+VERS-TLS1.3";
	char tmp[4096];
	unsigned seconds = 300;
	int one = 1, o;

	while ((o = getopt(argc, argv, "c:k:p:r:s:2t:w:uU:g:")) != -1) {
		switch (o) {
		case 'c': certf = optarg; break;
		case 'k': keyf = optarg; break;
		case 'p': portf = optarg; break;
		case 'r': results = optarg; break;
		case 's': seconds = (unsigned)atoi(optarg); break;
		case '2': vers = "NORMAL:-VERS-ALL:+VERS-TLS1.2"; break;
		case 't':
			tickets = !strcmp(optarg, "none") ? TICKETS_NONE :
			          !strcmp(optarg, "late") ? TICKETS_LATE :
			                                    TICKETS_AUTO;
			break;
		case 'w': pause_ms = atol(optarg); break;
		case 'u': ku_after_pause = true; break;
		case 'U': ku_every = atol(optarg); break;
		case 'g': greet = atol(optarg); break;
		default: usage();
		}
	}
	if (!certf || !keyf || !portf || !results)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
	    gnutls_certificate_set_x509_key_file(cred, certf, keyf,
	                                         GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_priority_init(&prio, vers, NULL) < 0 ||
	    gnutls_session_ticket_key_generate(&ticket_key) < 0) {
		fprintf(stderr, "tls_sink: cannot load %s\n", certf);
		return 1;
	}
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(ls, 64) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
		perror("tls_sink: listen");
		return 1;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", portf);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(f) ||
	    rename(tmp, portf) < 0) {
		perror("tls_sink: port file");
		return 1;
	}
	alarm(seconds); /* bounded: SIGALRM ends us */
	for (;;) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("tls_sink: accept");
			return 1;
		}
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, serve, (void *)(intptr_t)c))
			close(c);
		pthread_attr_destroy(&at);
	}
}
