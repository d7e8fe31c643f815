/* Benchmark client: the same workloads over plain sockets (bench-client,
 * also run under tlsshim, stunnel and socat) or over a GnuTLS session it
 * makes itself (bench-native, built with -DNATIVE).
 *
 *   bench-client MODE [options] HOST PORT
 *   MODE: bulk BYTES | download BYTES | connect N | pingpong N | hold N |
 *         devnull N
 *
 * One result line on stdout, "key=value ..." (the runner parses it).
 * The plain client never sets TCP_NODELAY: it is the unmodified program
 * tlsshim serves. The native client verifies like tlsshim (chain, name,
 * server-auth key purpose, same priority string) and sets TCP_NODELAY, as
 * a careful native client does. Options (native): -a CAFILE -n NAME
 * -r (resume sessions from the previous connection's ticket), -D (leave
 * Nagle on). Any client: -d sets TCP_NODELAY after connect (experiments);
 * -t starts one idle thread first (a multi-threaded process: tlsshim then
 * waits for data outside GnuTLS, see src/engine/tls_io.c). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <time.h>
#include <unistd.h>

#ifdef NATIVE
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#endif

static struct sockaddr_in dest;
static const char *cafile, *vname;
static bool resume, nodelay_plain, no_nodelay;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench-client: %s: %s\n", what, strerror(errno));
	exit(1);
}

struct conn {
	int fd;
#ifdef NATIVE
	gnutls_session_t s;
	gnutls_typed_vdata_st vdata[2];
#endif
};

#ifdef NATIVE
static gnutls_certificate_credentials_t xcred;
static gnutls_datum_t saved; /* the last ticket, for -r */
static unsigned resumed;

/* The priority string tlsshim's engine uses. */
static const char prio[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";

static int ticket_hook(gnutls_session_t s, unsigned htype, unsigned when,
                       unsigned incoming, const gnutls_datum_t *msg)
{
	if (htype == GNUTLS_HANDSHAKE_NEW_SESSION_TICKET &&
	    when == GNUTLS_HOOK_POST) {
		gnutls_free(saved.data);
		saved.data = NULL;
		gnutls_session_get_data2(s, &saved);
	}
	return 0;
}

static void native_init(void)
{
	gnutls_global_init();
	gnutls_certificate_allocate_credentials(&xcred);
	if (gnutls_certificate_set_x509_trust_file(xcred, cafile,
	                                           GNUTLS_X509_FMT_PEM) <= 0) {
		fprintf(stderr, "bench-native: cannot load %s\n", cafile);
		exit(1);
	}
}
#endif

static void conn_open(struct conn *c)
{
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		die("socket");
	if (connect(c->fd, (void *)&dest, sizeof dest) < 0)
		die("connect");
	if (nodelay_plain)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#ifdef NATIVE
	int ret;
	if (!no_nodelay)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	gnutls_init(&c->s, GNUTLS_CLIENT);
	gnutls_priority_set_direct(c->s, prio, NULL);
	gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, xcred);
	gnutls_server_name_set(c->s, GNUTLS_NAME_DNS, vname, strlen(vname));
	c->vdata[0].type = GNUTLS_DT_DNS_HOSTNAME;
	c->vdata[0].data = (unsigned char *)vname;
	c->vdata[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
	c->vdata[1].data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER;
	gnutls_session_set_verify_cert2(c->s, c->vdata, 2, 0);
	gnutls_transport_set_int(c->s, c->fd);
	if (resume) {
		if (saved.data) {
			gnutls_session_set_data(c->s, saved.data, saved.size);
			gnutls_free(saved.data);
			saved.data = NULL; /* each ticket once */
		}
		gnutls_handshake_set_hook_function(
			c->s, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
			GNUTLS_HOOK_POST, ticket_hook);
	}
	do
		ret = gnutls_handshake(c->s);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret < 0) {
		fprintf(stderr, "bench-native: handshake: %s\n",
		        gnutls_strerror(ret));
		exit(1);
	}
	if (gnutls_session_is_resumed(c->s))
		resumed++;
#endif
}

static void conn_write(struct conn *c, const void *buf, size_t len)
{
	const char *b = buf;
	while (len) {
#ifdef NATIVE
		ssize_t n = gnutls_record_send(c->s, b, len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0) {
			fprintf(stderr, "bench-native: send: %s\n",
			        gnutls_strerror((int)n));
			exit(1);
		}
#else
		ssize_t n = write(c->fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write");
#endif
		b += n;
		len -= (size_t)n;
	}
}

/* One read of at most len bytes: how many came (EOF is an error here). */
static size_t conn_read_some(struct conn *c, void *buf, size_t len)
{
	for (;;) {
#ifdef NATIVE
		ssize_t n = gnutls_record_recv(c->s, buf, len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0) {
			fprintf(stderr, "bench-native: recv: %s\n",
			        gnutls_strerror((int)n));
			exit(1);
		}
#else
		ssize_t n = read(c->fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
#endif
		if (n == 0) {
			fprintf(stderr, "bench-client: unexpected EOF\n");
			exit(1);
		}
		return (size_t)n;
	}
}

static void conn_read(struct conn *c, void *buf, size_t len)
{
	char *b = buf;
	while (len) {
		size_t n = conn_read_some(c, b, len);
		b += n;
		len -= n;
	}
}

static void conn_close(struct conn *c)
{
#ifdef NATIVE
	gnutls_bye(c->s, GNUTLS_SHUT_WR);
	gnutls_deinit(c->s);
#endif
	close(c->fd);
}

static void bulk(unsigned long long bytes)
{
	static char buf[16384];
	struct conn c;
	uint64_t hdr = bytes;
	char k;

	memset(buf, 'x', sizeof buf);
	conn_open(&c);
	double t0 = now();
	conn_write(&c, &hdr, sizeof hdr);
	for (unsigned long long left = bytes; left;) {
		size_t n = left < sizeof buf ? (size_t)left : sizeof buf;
		conn_write(&c, buf, n);
		left -= n;
	}
	conn_read(&c, &k, 1);
	double t = now() - t0;
	conn_close(&c);
	printf("bytes=%llu secs=%.6f mibps=%.2f\n", bytes, t,
	       (double)bytes / t / 1048576.0);
}

/* The other direction (a source server): ask for BYTES, read them all. */
static void download(unsigned long long bytes)
{
	static char buf[65536];
	struct conn c;
	uint64_t hdr = bytes;

	conn_open(&c);
	double t0 = now();
	conn_write(&c, &hdr, sizeof hdr);
	for (unsigned long long left = bytes; left;) {
		size_t n = left < sizeof buf ? (size_t)left : sizeof buf;
		n = conn_read_some(&c, buf, n);
		left -= n;
	}
	double t = now() - t0;
	conn_close(&c);
	printf("bytes=%llu secs=%.6f mibps=%.2f\n", bytes, t,
	       (double)bytes / t / 1048576.0);
}

static void connects(unsigned long n)
{
	double t0 = now();
	for (unsigned long i = 0; i < n; i++) {
		struct conn c;
		char b = 'x';
		conn_open(&c);
		conn_write(&c, &b, 1);
		conn_read(&c, &b, 1);
		conn_close(&c);
	}
	double t = now() - t0;
#ifdef NATIVE
	printf("n=%lu secs=%.6f cps=%.2f resumed=%u\n", n, t, (double)n / t,
	       resumed);
#else
	printf("n=%lu secs=%.6f cps=%.2f\n", n, t, (double)n / t);
#endif
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void pingpong(unsigned long n)
{
	char buf[64];
	double *rtt = calloc(n, sizeof *rtt);
	struct conn c;

	if (!rtt)
		die("calloc");
	memset(buf, 'p', sizeof buf);
	conn_open(&c);
	double t0 = now();
	for (unsigned long i = 0; i < n; i++) {
		double a = now();
		conn_write(&c, buf, sizeof buf);
		conn_read(&c, buf, sizeof buf);
		rtt[i] = now() - a;
	}
	double t = now() - t0;
	conn_close(&c);
	qsort(rtt, n, sizeof *rtt, cmp_double);
	printf("n=%lu secs=%.6f median_us=%.2f p99_us=%.2f\n", n, t,
	       rtt[n / 2] * 1e6, rtt[n * 99 / 100] * 1e6);
	free(rtt);
}

static long rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* n idle connections, each used once (one byte each way) so that the
 * session is fully set up; RSS growth from the first to the last. The
 * first connection pays the one-time costs (engine, credentials). */
static void hold(unsigned long n)
{
	struct conn *c = calloc(n + 1, sizeof *c);
	struct rlimit rl;
	char b = 'h';

	if (!c)
		die("calloc");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	conn_open(&c[0]);
	conn_write(&c[0], &b, 1);
	conn_read(&c[0], &b, 1);
	long before = rss_kib();
	for (unsigned long i = 1; i <= n; i++) {
		conn_open(&c[i]);
		conn_write(&c[i], &b, 1);
		conn_read(&c[i], &b, 1);
	}
	long after = rss_kib();
	printf("n=%lu rss_before_kib=%ld rss_after_kib=%ld per_conn_kib=%.2f\n",
	       n, before, after, (double)(after - before) / (double)n);
	for (unsigned long i = 0; i <= n; i++)
		conn_close(&c[i]);
	free(c);
}

/* The loop callgrind measures (--toggle-collect=devnull_loop). */
__attribute__((noinline)) void devnull_loop(int fd, unsigned long n)
{
	char b = 'd';
	for (unsigned long i = 0; i < n; i++)
		if (write(fd, &b, 1) != 1)
			die("write /dev/null");
}

static void devnull(unsigned long n)
{
	int fd = open("/dev/null", O_WRONLY);
	if (fd < 0)
		die("/dev/null");
	/* One write first, outside the measured loop: the dynamic linker
	 * and the preload bind functions on their first call, once per
	 * process; the loop measures every call after that. */
	if (write(fd, "w", 1) != 1)
		die("write /dev/null");
	double t0 = now();
	devnull_loop(fd, n);
	double t = now() - t0;
	close(fd);
	printf("n=%lu secs=%.6f ns_per_write=%.2f\n", n, t, t * 1e9 / (double)n);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: bench-client [-a CAFILE -n NAME -r -D] [-d] [-t] "
	        "bulk BYTES|download BYTES|connect N|pingpong N|hold N|"
	        "devnull N "
	        "[HOST PORT]\n");
	exit(2);
}

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th;
	int opt;

	while ((opt = getopt(argc, argv, "a:n:rdDt")) != -1) {
		switch (opt) {
		case 'a': cafile = optarg; break;
		case 'n': vname = optarg; break;
		case 'r': resume = true; break;
		case 'd': nodelay_plain = true; break;
		case 'D': no_nodelay = true; break;
		case 't':
			if (pthread_create(&th, NULL, idle, NULL))
				die("pthread_create");
			break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		usage();
	const char *mode = argv[0];
	unsigned long long arg = strtoull(argv[1], NULL, 0);
	if (strcmp(mode, "devnull") == 0) {
		devnull(arg);
		return 0;
	}
	if (argc != 4)
		usage();
	dest.sin_family = AF_INET;
	dest.sin_port = htons((uint16_t)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &dest.sin_addr) != 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
#ifdef NATIVE
	if (!cafile || !vname)
		usage();
	native_init();
#endif
	if (strcmp(mode, "bulk") == 0)
		bulk(arg);
	else if (strcmp(mode, "download") == 0)
		download(arg);
	else if (strcmp(mode, "connect") == 0)
		connects(arg);
	else if (strcmp(mode, "pingpong") == 0)
		pingpong(arg);
	else if (strcmp(mode, "hold") == 0)
		hold(arg);
	else
		usage();
	return 0;
}
