/* The upload tests' own client (tests/80-close-upload.bats): a plain TCP
 * program, run under the preload, that writes a whole file and closes.
 *
 *   upload_client PORT FILE MODE
 *
 *   close      write everything, close()
 *   shutdown   write everything, shutdown(SHUT_WR), close()
 *   nonblock   O_NONBLOCK after connect, writes driven by poll(), close()
 *   linger     SO_LINGER {1, 10} (close may wait for the data), close()
 *   reset      SO_LINGER {1, 0}: the program asks for a reset at close
 *              (after 300 ms: the server's handshake is over by then)
 *   fork       fork() after connect; the child closes its copy and exits
 *              before the parent writes: the child must not take from
 *              the socket what is the parent's (the server's greeting)
 *   exit       write everything, exit without close()
 *   halfclose  write everything, shutdown(SHUT_WR), read to the end
 *              ("upload_client: read N bytes"), close(): the end of the
 *              stream must read as 0, not as an error
 *   greeting   read the server's whole greeting ($GREET bytes) first
 *   peek       MSG_PEEK the whole greeting and leave it unread
 *   unread     give the greeting 300 ms to arrive, leave it unread
 *
 * $SNDBUF sets SO_SNDBUF first: the upload then sits in the kernel,
 * unsent, when the server does not read yet.
 *
 * Exit 0 when every call succeeded; "upload_client: ..." and 1 otherwise.
 * A watchdog ends it after 120 s. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "upload_client: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void write_all(int s, const char *p, size_t n, int nonblock)
{
	while (n) {
		if (nonblock) {
			struct pollfd pf = {.fd = s, .events = POLLOUT};
			if (poll(&pf, 1, 60000) <= 0)
				die("poll");
		}
		ssize_t w = write(s, p, n);
		if (w < 0 && (errno == EINTR ||
		              (nonblock && errno == EAGAIN)))
			continue;
		if (w <= 0)
			die("write");
		p += w;
		n -= (size_t)w;
	}
}

/* Reads s until want bytes (want < 0: to the end); the count read. */
static long read_from(int s, long want, const char *what)
{
	static char buf[65536];
	long got = 0;

	while (want < 0 || got < want) {
		ssize_t r = read(s, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die(what);
		if (r == 0)
			break;
		got += r;
	}
	return got;
}

/* The greeting: $GREET bytes the server sends first. */
static void read_greeting(int s)
{
	long want = getenv("GREET") ? atol(getenv("GREET")) : 0;
	long got = read_from(s, want, "greeting");

	if (got < want) {
		fprintf(stderr, "upload_client: greeting: %ld of %ld bytes\n",
		        got, want);
		exit(1);
	}
}

/* The greeting seen with MSG_PEEK only: the program leaves it unread. */
static void peek_greeting(int s)
{
	long want = getenv("GREET") ? atol(getenv("GREET")) : 0;
	static char buf[1 << 20];

	if (want > (long)sizeof buf)
		want = sizeof buf;
	for (int i = 0; i < 1000; i++) {
		ssize_t r = recv(s, buf, (size_t)want, MSG_PEEK);
		if (r < 0 && errno != EINTR)
			die("recv(MSG_PEEK)");
		if (r >= want)
			return;
		usleep(10000);
	}
	fprintf(stderr, "upload_client: the greeting did not arrive\n");
	exit(1);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	static char buf[1 << 20];

	if (argc != 4) {
		fprintf(stderr, "usage: upload_client PORT FILE MODE\n");
		return 2;
	}
	const char *mode = argv[3];
	alarm(120);
	int in = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (in < 0)
		die(argv[2]);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect");
	if (getenv("SNDBUF")) {
		int n = atoi(getenv("SNDBUF"));
		if (setsockopt(s, SOL_SOCKET, SO_SNDBUF, &n, sizeof n) < 0)
			die("SO_SNDBUF");
	}
	int nonblock = !strcmp(mode, "nonblock");
	if (nonblock && fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK) < 0)
		die("fcntl");
	if (!strcmp(mode, "linger") || !strcmp(mode, "reset")) {
		struct linger l = {1, mode[0] == 'l' ? 10 : 0};
		if (setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l) < 0)
			die("SO_LINGER");
	}
	if (!strcmp(mode, "fork")) {
		/* Let the greeting arrive first: the child's close must
		 * leave it to the parent. */
		usleep(200000);
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			close(s);
			_exit(0);
		}
		int st;
		if (waitpid(pid, &st, 0) < 0)
			die("waitpid");
	}
	if (!strcmp(mode, "fork") || !strcmp(mode, "greeting"))
		read_greeting(s);
	if (!strcmp(mode, "peek"))
		peek_greeting(s);
	if (!strcmp(mode, "unread") || !strcmp(mode, "reset"))
		usleep(300000);
	for (;;) {
		ssize_t r = read(in, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read");
		if (r == 0)
			break;
		write_all(s, buf, (size_t)r, nonblock);
	}
	if ((!strcmp(mode, "shutdown") || !strcmp(mode, "halfclose")) &&
	    shutdown(s, SHUT_WR) < 0)
		die("shutdown");
	if (!strcmp(mode, "halfclose"))
		printf("upload_client: read %ld bytes\n",
		       read_from(s, -1, "read after shutdown"));
	if (!strcmp(mode, "exit"))
		exit(0); /* the kernel closes the socket */
	if (close(s) < 0)
		die("close");
	return 0;
}
