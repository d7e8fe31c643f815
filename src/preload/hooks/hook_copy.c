/* Kernel-side copies onto an upgraded fd (sendfile, splice) would put
 * plaintext on the wire: they are emulated through the session. */
/* sendfile and sendfile64 are both defined on purpose (see hook_fd.c). */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

#define COPY_CHUNK 16384

/* Send all n bytes: they were already taken from the source, which may
 * be a pipe that cannot give them back. */
static ssize_t send_all(struct ts_conn *c, int out, const char *buf, size_t n)
{
	size_t sent = 0;

	while (sent < n) {
		ssize_t w = ts_conn_send(c, out, buf + sent, n - sent, 0);
		if (w > 0) {
			sent += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = out, .events = POLLOUT};
			REAL(poll)(&p, 1, -1);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		return sent ? (ssize_t)sent : -1;
	}
	return (ssize_t)sent;
}

static bool is_kind(int fd, mode_t kind)
{
	struct stat st;
	return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

/* Read up to len from in (at *off when off is given) and send it on the
 * session. Returns bytes moved, or -1 with errno when nothing moved. A
 * socket as the source is refused as the kernel refuses it (EINVAL):
 * read raw, it would move an unverified client's bytes, or a session's
 * ciphertext, into this one. */
static ssize_t copy_out(struct ts_conn *c, int out, int in, off64_t *off,
                        size_t len)
{
	char buf[COPY_CHUNK];
	size_t done = 0;

	if (is_kind(in, S_IFSOCK)) {
		errno = EINVAL;
		return -1;
	}

	while (done < len) {
		size_t want = len - done < sizeof buf ? len - done : sizeof buf;
		ssize_t n = off ? pread64(in, buf, want, *off)
		                : REAL(read)(in, buf, want);
		if (n <= 0) {
			if (n < 0 && done == 0)
				return -1;
			break;
		}
		ssize_t w = send_all(c, out, buf, (size_t)n);
		if (w < 0)
			return done ? (ssize_t)done : -1;
		if (off)
			*off += w;
		done += (size_t)w;
		if (w < n)
			break;
	}
	return (ssize_t)done;
}

static ssize_t plain_sendfile(int out, int in, off64_t *off, size_t len,
                              bool big)
{
	if (big)
		return REAL(sendfile64)(out, in, off, len);
	off_t o = off ? (off_t)*off : 0;
	ssize_t r = REAL(sendfile)(out, in, off ? &o : NULL, len);
	if (off)
		*off = o;
	return r;
}

static ssize_t do_sendfile(int out, int in, off64_t *off, size_t len,
                           bool big)
{
	ssize_t r;
	ts_conn_send_call(out, r, copy_out(c, out, in, off, len),
	                  plain_sendfile(out, in, off, len, big));
	return r;
}

TS_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t len)
{
	off64_t o = off ? *off : 0;
	ssize_t r = do_sendfile(out, in, off ? &o : NULL, len, false);
	if (off && r >= 0)
		*off = (off_t)o;
	return r;
}

TS_EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t len)
{
	return do_sendfile(out, in, off, len, true);
}

TS_EXPORT ssize_t splice(int in, off64_t *off_in, int out, off64_t *off_out,
                         size_t len, unsigned flags)
{
	struct ts_conn *cout = ts_conn_get(out), *cin = ts_conn_get(in);
	ssize_t r;

	if (!cout && !cin) {
		struct ts_raw_mark m;
		if (!ts_raw_begin(out, &m))
			return splice(in, off_in, out, off_out, len, flags);
		r = REAL(splice)(in, off_in, out, off_out, len, flags);
		ts_raw_end(&m);
		return r;
	}
	if (!is_kind(cout ? in : out, S_IFIFO)) {
		/* The kernel splices only to or from a pipe. */
		errno = EINVAL;
		r = -1;
	} else if (cout) {
		r = copy_out(cout, out, in, off_in, len);
	} else {
		/* From the session into a pipe. */
		char buf[COPY_CHUNK];
		r = ts_conn_recv(cin, in, buf, len < sizeof buf ? len : sizeof buf,
		                 (flags & SPLICE_F_NONBLOCK) ? MSG_DONTWAIT : 0);
		if (r > 0) {
			ssize_t w = off_out ? pwrite64(out, buf, (size_t)r, *off_out)
			                    : REAL(write)(out, buf, (size_t)r);
			if (w > 0 && off_out)
				*off_out += w;
			/* Decrypted bytes a full pipe cannot take would be
			 * lost: wait for room instead. */
			while (w >= 0 && w < r) {
				ssize_t k = REAL(write)(out, buf + w,
				                        (size_t)(r - w));
				if (k > 0) {
					w += k;
				} else if (errno == EAGAIN) {
					struct pollfd p = {.fd = out,
					                   .events = POLLOUT};
					REAL(poll)(&p, 1, -1);
				} else if (errno != EINTR) {
					break;
				}
			}
		}
	}
	if (cout)
		ts_conn_put(cout);
	if (cin)
		ts_conn_put(cin);
	return r;
}
