/* Logging: where lines go (stderr, log-file, syslog), what happens when fd
 * 2 is closed, a pipe without reader or a TCP socket, and the rate limit
 * on repeated warnings. log.c depends on nothing above it: the test
 * configures it as the preload does. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "check.h"

static int failures;
static char tmpdir[] = "/tmp/tlsshim-test-log-XXXXXX";

/* Points fd 2 at a fresh file and returns its path. */
static void stderr_to(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
}

static size_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? 0 : read(fd, buf, len - 1);
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

/* Logs n copies of c as one info line on a fresh stderr at path; buf
 * (len > n) gets what was written, and the length is returned. */
static size_t long_line(const char *path, char c, size_t n, char *buf,
                        size_t len)
{
	stderr_to(path);
	memset(buf, c, n);
	buf[n] = '\0';
	ts_info("%s", buf);
	return slurp(path, buf, len);
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

int main(void)
{
	char path[256], buf[8192];
	int saved = dup(2);

	if (!mkdtemp(tmpdir))
		return 1;
	ts_log_set_level(TS_LOG_DEBUG);

	/* stderr: "tlsshim: LEVEL: message"; errno is preserved. */
	snprintf(path, sizeof path, "%s/stderr", tmpdir);
	stderr_to(path);
	errno = EAGAIN;
	ts_info("hello %d", 42);
	CHECK(errno == EAGAIN);
	slurp(path, buf, sizeof buf);
	CHECK(!strcmp(buf, "tlsshim: info: hello 42\n"));

	/* Untrusted text (a certificate subject, a name the program
	 * resolved) cannot put a control sequence on the terminal or split
	 * the line: every byte outside printable ASCII is \xNN. */
	stderr_to(path);
	ts_error("subject CN=%s end", "a\x1b]0;owned\x07" "b\nc\r\x9b" "2J\xc3\xa9\x7f");
	slurp(path, buf, sizeof buf);
	CHECK(!strcmp(buf, "tlsshim: error: subject CN=a\\x1b]0;owned\\x07b"
	                   "\\x0ac\\x0d\\x9b2J\\xc3\\xa9\\x7f end\n"), "%s", buf);
	/* A line full of escapes is cut at a whole escape, still one line. */
	size_t esc = long_line(path, '\x1b', 1000, buf, sizeof buf);
	CHECK(esc > 0 && esc <= 1024 && buf[esc - 1] == '\n' &&
	      count(buf, "\n") == 1 && count(buf, "\x1b") == 0 &&
	      (esc - 1 - strlen("tlsshim: info: ")) % 4 == 0);

	/* The level is checked before formatting. */
	ts_log_set_level(TS_LOG_WARN);
	ts_debug("%s", (const char *)NULL + 1); /* never formatted */
	ts_log_set_level(TS_LOG_DEBUG);

	/* Repeated warnings from one place: 5 lines, then silence; another
	 * place still gets through. */
	stderr_to(path);
	for (int i = 0; i < 20; i++)
		ts_warn("repeated %d", i);
	ts_warn("another place");
	ts_error("errors are never limited");
	ts_error("errors are never limited");
	slurp(path, buf, sizeof buf);
	CHECK(count(buf, "tlsshim: warn: repeated") == 5);
	CHECK(count(buf, "another place") == 1);
	CHECK(count(buf, "errors are never limited") == 2);

	/* A long message is cut, still one line. */
	size_t n = long_line(path, 'x', 3000, buf, sizeof buf);
	CHECK(n > 0 && n <= 1024 && buf[n - 1] == '\n' &&
	      count(buf, "\n") == 1);

	/* fd 2 closed: nothing happens, nothing crashes. */
	close(2);
	ts_error("into the void");
	CHECK(fcntl(2, F_GETFD) < 0);

	/* fd 2 a pipe whose reader left: no SIGPIPE kills us, none stays
	 * pending. */
	int pfd[2];
	CHECK(pipe(pfd) == 0);
	close(pfd[0]);
	dup2(pfd[1], 2);
	close(pfd[1]);
	ts_error("nobody reads this");
	sigset_t pend;
	sigpending(&pend);
	CHECK(!sigismember(&pend, SIGPIPE));

	/* fd 2 a TCP socket (a daemon that closed 0-2, then connected):
	 * never a byte to the peer. */
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sin;
	CHECK(bind(ls, (struct sockaddr *)&sin, sizeof sin) == 0);
	CHECK(listen(ls, 1) == 0);
	CHECK(getsockname(ls, (struct sockaddr *)&sin, &sl) == 0);
	int cs = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(cs, (struct sockaddr *)&sin, sizeof sin) == 0);
	dup2(cs, 2);
	close(cs);
	int as = accept(ls, NULL, NULL);
	ts_error("must not reach the peer");
	shutdown(2, SHUT_WR);
	CHECK(read(as, buf, sizeof buf) == 0);
	close(as);
	close(ls);

	/* log-file: lines go there, not to stderr. */
	char logfile[256];
	snprintf(logfile, sizeof logfile, "%s/file.log", tmpdir);
	ts_log_configure(&(struct ts_log_config){.level = TS_LOG_DEBUG,
	                                         .file = logfile});
	stderr_to(path);
	ts_info("to the file");
	ts_info("twice");
	slurp(logfile, buf, sizeof buf);
	CHECK(!strcmp(buf, "tlsshim: info: to the file\n"
	                   "tlsshim: info: twice\n"));
	slurp(path, buf, sizeof buf);
	CHECK(buf[0] == '\0');

	/* A symbolic link planted at the log-file path is not followed: its
	 * target stays untouched and the line goes to stderr instead. */
	char target[256];
	snprintf(target, sizeof target, "%s/target", tmpdir);
	close(open(target, O_WRONLY | O_CREAT, 0600));
	unlink(logfile);
	CHECK(symlink(target, logfile) == 0);
	stderr_to(path);
	ts_error("not through the link");
	slurp(target, buf, sizeof buf);
	CHECK(buf[0] == '\0');
	slurp(path, buf, sizeof buf);
	CHECK(!strcmp(buf, "tlsshim: error: not through the link\n"));
	unlink(logfile);

	/* log = syslog: one datagram per line, "<pri>tlsshim[pid]: ...". */
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/log", tmpdir);
	int ds = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK(bind(ds, (struct sockaddr *)&sun, sizeof sun) == 0);
	setenv("TLSSHIM_SYSLOG_SOCKET", sun.sun_path, 1);
	ts_log_configure(&(struct ts_log_config){.level = TS_LOG_DEBUG,
	                                         .syslog = true});
	stderr_to(path);
	ts_error("to syslog");
	ssize_t r = recv(ds, buf, sizeof buf - 1, MSG_DONTWAIT);
	CHECK(r > 0);
	buf[r > 0 ? r : 0] = '\0';
	char want[128];
	snprintf(want, sizeof want, "<11>tlsshim[%d]: %s: error: to syslog",
	         (int)getpid(), program_invocation_short_name);
	CHECK(!strcmp(buf, want));
	slurp(path, buf, sizeof buf);
	CHECK(buf[0] == '\0');
	close(ds);

	dup2(saved, 2);
	snprintf(buf, sizeof buf, "rm -rf '%s'", tmpdir);
	if (system(buf) != 0)
		failures++;
	if (failures)
		fprintf(stdout, "%d failure(s)\n", failures);
	/* Every CHECK counts, not only the clean-up. */
	return check_summary() || failures;
}
