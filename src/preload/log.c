/* Logging (see log.h).
 *
 * Where lines go is configured (the preload passes the policy's choice):
 * stderr (default), a file (instead of stderr), the local syslog socket.
 * Every line
 * is formatted into a stack buffer and written with the real write/send:
 * no stdio, no allocation, no hook re-entered.
 *
 * fd 2 is used only while it is safe: a program may have closed it, or
 * reused the number for a network socket (a daemon that closed 0-2) —
 * lines are then dropped rather than sent to a peer. A pipe whose reader
 * left must not kill the program with SIGPIPE. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h> /* vsnprintf only: it formats into memory */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "escape.h"
#include "forkwatch.h"
#include "log.h"
#include "real.h"

#define LOG_LINE 1024
/* Rate limit for warnings: per call site (format string), at most BURST
 * lines per WINDOW; the rest are counted and summed up in one line. */
#define RL_SLOTS 16
#define RL_BURST 5
#define RL_WINDOW_MS 60000

int ts_log_level_cur = TS_LOG_WARN;

/* Published once configured; read by every line. */
static struct ts_log_config where_cfg;
static const struct ts_log_config *_Atomic where;

void ts_log_set_level(int level)
{
	ts_log_level_cur = level;
}

void ts_log_configure(const struct ts_log_config *cfg)
{
	where_cfg = *cfg;
	atomic_store_explicit(&where, &where_cfg, memory_order_release);
	ts_log_set_level(cfg->level);
}

struct rl_slot {
	const char *fmt;
	long long start;
	unsigned count;
	unsigned suppressed;
};
static struct rl_slot rl[RL_SLOTS];
static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;

void ts_log_child_reset(void)
{
	/* A thread that held it does not exist in the child. */
	pthread_mutex_init(&rl_lock, NULL);
}

/* True when this line may be written; *dropped gets how many lines of the
 * same call site were suppressed in the window that just ended. */
static bool rate_ok(const char *fmt, unsigned *dropped)
{
	long long now = ts_now_ms();
	struct rl_slot *s = NULL, *oldest = &rl[0];
	bool ok;

	*dropped = 0;
	pthread_mutex_lock(&rl_lock);
	for (size_t i = 0; i < RL_SLOTS; i++) {
		if (rl[i].fmt == fmt) {
			s = &rl[i];
			break;
		}
		if (rl[i].start < oldest->start)
			oldest = &rl[i];
	}
	if (!s) {
		s = oldest;
		*s = (struct rl_slot){.fmt = fmt, .start = now};
	}
	if (now - s->start >= RL_WINDOW_MS) {
		*dropped = s->suppressed;
		s->start = now;
		s->count = 0;
		s->suppressed = 0;
	}
	ok = s->count++ < RL_BURST;
	if (!ok)
		s->suppressed++;
	pthread_mutex_unlock(&rl_lock);
	return ok;
}

/* write(2) all of buf to fd, without SIGPIPE; best effort. */
static void write_all(int fd, const char *buf, size_t len, bool pipe)
{
	sigset_t pipe_set, old, pending;
	bool was_pending = false;

	if (pipe) {
		sigemptyset(&pipe_set);
		sigaddset(&pipe_set, SIGPIPE);
		sigpending(&pending);
		was_pending = sigismember(&pending, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	}
	while (len) {
		ssize_t n = REAL(write)(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf += n;
		len -= (size_t)n;
	}
	if (pipe) {
		/* Consume the SIGPIPE we caused, not one already pending. */
		if (!was_pending) {
			struct timespec zero = {0, 0};
			sigpending(&pending);
			if (sigismember(&pending, SIGPIPE))
				sigtimedwait(&pipe_set, NULL, &zero);
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
}

static void to_stderr(const char *line, size_t len)
{
	struct stat st;

	if (fstat(2, &st) < 0)
		return; /* closed: the line is lost, the program is not */
	if (S_ISSOCK(st.st_mode)) {
		/* A unix socket (journald's stream) is fine; a TCP socket at
		 * fd 2 is a peer, maybe one of our TLS sessions. */
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		if (getsockname(2, (struct sockaddr *)&ss, &sl) < 0 ||
		    ss.ss_family != AF_UNIX)
			return;
		(void)REAL(send)(2, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		return;
	}
	write_all(2, line, len, S_ISFIFO(st.st_mode));
}

/* false when the line could not be written there. */
static bool to_file(const char *path, const char *line, size_t len)
{
	/* Opened per line: the program may close or reuse any fd number.
	 * Never through a symbolic link: one planted at the path would
	 * send our lines into whatever file it names. */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	                            O_NOCTTY | O_NONBLOCK | O_NOFOLLOW, 0600);
	if (fd < 0)
		return false;
	write_all(fd, line, len, false);
	REAL(close)(fd);
	return true;
}

static const int syslog_pri[] = {
	[TS_LOG_ERROR] = 3, [TS_LOG_WARN] = 4, [TS_LOG_INFO] = 6,
	[TS_LOG_DEBUG] = 7,
};

/* RFC 3164 without a timestamp (the daemon adds it), facility user. */
static void to_syslog(int level, const char *msg, size_t len)
{
	const char *path = secure_getenv("TLSSHIM_SYSLOG_SOCKET");
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char line[LOG_LINE + 128];
	int fd, n;

	if (!path || !path[0])
		path = "/dev/log";
	if (strlen(path) >= sizeof sun.sun_path)
		return;
	strcpy(sun.sun_path, path);
	n = snprintf(line, sizeof line, "<%d>tlsshim[%d]: %s: %.*s",
	             8 + syslog_pri[level & 3], (int)getpid(),
	             program_invocation_short_name, (int)len, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1;
	fd = REAL(socket)(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (REAL(connect)(fd, (struct sockaddr *)&sun, sizeof sun) == 0)
		(void)REAL(send)(fd, line, (size_t)n,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
	REAL(close)(fd);
}

static void emit(int level, char *line, size_t n)
{
	const struct ts_log_config *w =
		atomic_load_explicit(&where, memory_order_acquire);
	size_t prefix = sizeof "tlsshim: " - 1;

	/* line ends with '\n'; syslog gets it without prefix and newline. */
	if (w && w->syslog)
		to_syslog(level, line + prefix, n - prefix - 1);
	/* A log-file that cannot be opened (gone, a symbolic link): the
	 * line goes to stderr rather than nowhere. */
	if (w && w->file && to_file(w->file, line, n))
		return;
	if (!w || !w->syslog || w->file)
		to_stderr(line, n);
}

/* Every byte of the message that is not printable ASCII is escaped
 * (escape.h): names the program resolved, certificate names and GnuTLS's
 * texts reach the line through many callers, and none of them may put a
 * control sequence on a terminal or split the line. */
static size_t format(char *line, size_t cap, int level, const char *fmt,
                     va_list ap)
{
	char msg[LOG_LINE];
	int n = snprintf(line, cap, "tlsshim: %s: ", ts_log_level_name(level));
	if (n < 0)
		n = 0;
	/* vsnprintf formats into memory only: no stdio stream, no hook. */
	if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
		msg[0] = '\0';
	size_t len = (size_t)n + ts_escape(line + n, cap - (size_t)n - 1, msg);
	line[len++] = '\n';
	return len;
}

static void emit_fmt(int level, const char *fmt, ...)
{
	char line[LOG_LINE];
	va_list ap;

	va_start(ap, fmt);
	size_t n = format(line, sizeof line, level, fmt, ap);
	va_end(ap);
	emit(level, line, n);
}

void ts_log_write(int level, const char *fmt, ...)
{
	char line[LOG_LINE];
	int saved = errno;
	unsigned dropped = 0;
	va_list ap;

	ts_fork_check(); /* rl_lock may be a vanished thread's */
	if (level == TS_LOG_WARN && !rate_ok(fmt, &dropped)) {
		errno = saved;
		return;
	}
	if (dropped)
		emit_fmt(TS_LOG_WARN, "%u similar warnings suppressed", dropped);
	va_start(ap, fmt);
	size_t n = format(line, sizeof line, level, fmt, ap);
	va_end(ap);
	emit(level, line, n);
	errno = saved;
}
