/* Session keys (keylog-file): written only where the rule says, to a
 * private regular file of this user's, through the libc functions handed
 * to ts_engine_init; the host's SSLKEYLOGFILE never gets them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "tls.h"

/* The host's SSLKEYLOGFILE must not receive our session keys: GnuTLS
 * writes it for every session unless a keylog function is installed. */
static int no_keylog(gnutls_session_t s, const char *label,
                     const gnutls_datum_t *secret)
{
	(void)s;
	(void)label;
	(void)secret;
	return 0;
}

/* keylog-file: NSS key log format, one line per secret, appended. */
static int to_keylog(gnutls_session_t s, const char *label,
                     const gnutls_datum_t *secret)
{
	/* The session's user pointer belongs to tls_cache.c; the transport
	 * pointer is ours. */
	struct ts_tls *t = gnutls_transport_get_ptr(s);
	gnutls_datum_t crand, srand;
	char line[512];
	size_t n;

	if (!t || t->keylog_fd < 0 || secret->size > 64)
		return 0;
	gnutls_session_get_random(s, &crand, &srand);
	n = (size_t)snprintf(line, sizeof line, "%s ", label);
	for (unsigned i = 0; i < crand.size && n + 3 < sizeof line; i++)
		n += (size_t)snprintf(line + n, sizeof line - n, "%02x",
		                      crand.data[i]);
	line[n++] = ' ';
	for (unsigned i = 0; i < secret->size && n + 3 < sizeof line; i++)
		n += (size_t)snprintf(line + n, sizeof line - n, "%02x",
		                      secret->data[i]);
	line[n++] = '\n';
	/* One write of a whole line with O_APPEND: lines of concurrent
	 * sessions do not interleave. */
	if (ts_tls_io.write(t->keylog_fd, line, n) < 0)
		return 0;
	return 0;
}

/* keylog-file: the session's secrets go only to a regular file of this
 * user's that nobody else may read, and never through a symbolic link
 * (one planted there would send them wherever it points). Opened per
 * session: -1 with the reason when refused. */
static int open_keylog(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
	                            O_NOCTTY | O_NOFOLLOW | O_NONBLOCK,
	              0600);

	if (fd < 0) {
		snprintf(err, errlen, "keylog-file %s: %s", path,
		         errno == ELOOP ? "a symbolic link: refused (name the "
		                          "file itself)"
		                        : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0)
		snprintf(err, errlen, "keylog-file %s: %s", path,
		         strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(err, errlen, "keylog-file %s: not a regular file: "
		         "refused", path);
	else if (st.st_uid != geteuid())
		snprintf(err, errlen, "keylog-file %s: owned by uid %u, not by "
		         "this user (uid %u): refused", path,
		         (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_mode & 077)
		snprintf(err, errlen, "keylog-file %s: mode %04o lets group or "
		         "others at the session keys: refused (chmod 600 it)",
		         path, (unsigned)(st.st_mode & 07777));
	else
		return fd;
	ts_tls_io.close(fd);
	return -1;
}

int ts_tls_keylog_set(struct ts_tls *t, char *err, size_t errlen)
{
	if (!t->rule->keylog_file) {
		gnutls_session_set_keylog_function(t->s, no_keylog);
		return 0;
	}
	t->keylog_fd = open_keylog(t->rule->keylog_file, err, errlen);
	if (t->keylog_fd < 0)
		return -1;
	gnutls_session_set_keylog_function(t->s, to_keylog);
	return 0;
}
