/* The end of a session: close_notify, and at the last close (or
 * shutdown) the peer's own records consumed and our last bytes waited for
 * (docs/design.md, "Closing"). */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_notsent_bytes */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#include "clock.h"
#include "tls.h"

static int close_notify_locked(struct ts_tls *t)
{
	int rc;

	if (t->bye_sent)
		return TS_TLS_OK;
	rc = ts_tls_flush_locked(t);
	if (rc == TS_TLS_WANT_WRITE || rc == TS_TLS_INTR)
		return rc;
	rc = rc == TS_TLS_OK ? gnutls_bye(t->s, GNUTLS_SHUT_WR) : 0;
	if (rc == GNUTLS_E_AGAIN)
		return TS_TLS_WANT_WRITE;
	if (rc == GNUTLS_E_INTERRUPTED)
		return TS_TLS_INTR;
	t->bye_sent = true;
	return TS_TLS_OK;
}

int ts_tls_close_notify(struct ts_tls *t, int fd)
{
	struct ts_tls_xfer x = {.fd = fd, .send_flags = MSG_DONTWAIT | MSG_NOSIGNAL};
	if (!ts_tls_enter(t, &x))
		return ts_tls_intr();
	int rc = close_notify_locked(t);
	ts_tls_leave(t);
	return rc;
}

/* ---- closing ----
 *
 * A TLS 1.3 server sends records the program never sees as data: session
 * tickets once the handshake is over, a KeyUpdate whenever it likes. The
 * kernel answers a close() that leaves bytes unread in the socket, and
 * any byte that arrives after it, with a reset that discards all it has
 * not sent yet: the end of an upload, silently (issue 14, and
 * tests/80-close-upload.bats). So the close consumes those records, and
 * waits for the ones still to come while our bytes are unsent. Application
 * data left unread keeps the kernel's answer, a reset, as over TCP. */

/* Bytes of ours a reset would lose: not sent yet, or sent and lost (to be
 * sent again). Bytes in flight reach the peer before the reset does; to
 * wait for their ACK would cost a delayed ACK (40 ms) at many closes. */
static bool unsent(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;

	memset(&ti, 0, sizeof ti);
	if (ts_tls_io.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return false;
	return ti.tcpi_notsent_bytes > 0 || ti.tcpi_lost > 0;
}

enum drained { DRAINED_EMPTY, DRAINED_DATA, DRAINED_END };

/* Consumes, without waiting, the records queued in the kernel that carry
 * no application data (GnuTLS answers a KeyUpdate request before our next
 * application data, so after close_notify none is owed). Stops at
 * application data (DATA: it stays in the session, its first byte in
 * held), at the peer's close_notify, EOF or a fatal error (END), and at
 * the deadline: a peer that sends tickets without end cannot hold us. */
static enum drained drain_locked(struct ts_tls *t, long long deadline)
{
	for (;;) {
		if (t->has_held || gnutls_record_check_pending(t->s))
			return DRAINED_DATA;
		ts_tls_cur->pull_eagain = false;
		ssize_t ret = gnutls_record_recv(t->s, &t->held, 1);
		if (ret > 0) {
			t->has_held = true;
			return DRAINED_DATA;
		}
		if (ret == GNUTLS_E_AGAIN && ts_tls_cur->pull_eagain)
			return DRAINED_EMPTY;
		if (ret == 0)
			return DRAINED_END; /* close_notify: recv says 0 again */
		if (ret != GNUTLS_E_AGAIN && ret != GNUTLS_E_INTERRUPTED &&
		    ret != GNUTLS_E_REHANDSHAKE &&
		    gnutls_error_is_fatal((int)ret)) {
			/* GnuTLS would say "invalidated" from now on. */
			t->end_ret = (int)ret;
			t->end_errno = ts_tls_cur->pull_errno;
			return DRAINED_END;
		}
		if (ts_now_ms() >= deadline)
			return DRAINED_EMPTY;
	}
}

static void set_reset(int fd)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};
	(void)ts_tls_io.setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

bool ts_tls_close_drain(struct ts_tls *t, int fd, bool unread,
                            int timeout_ms)
{
	struct ts_tls_xfer x = {.fd = fd,
	                 .recv_flags = MSG_DONTWAIT,
	                 .send_flags = MSG_DONTWAIT | MSG_NOSIGNAL};
	struct linger l = {0};
	socklen_t len = sizeof l;

	/* The program's own SO_LINGER {1, 0}: it asks for a reset. */
	if (ts_tls_io.getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0 &&
	    l.l_onoff && !l.l_linger)
		return true;
	if (!unread && ts_tls_enter(t, &x)) {
		unread = drain_locked(t, ts_now_ms() + timeout_ms) == DRAINED_DATA;
		ts_tls_leave(t);
	}
	if (unread)
		set_reset(fd);
	return unread;
}

int ts_tls_close_linger(struct ts_tls *t, int fd, bool closing,
                            int timeout_ms)
{
	struct ts_tls_xfer x = {.fd = fd,
	                 .recv_flags = MSG_DONTWAIT,
	                 .send_flags = MSG_DONTWAIT | MSG_NOSIGNAL};
	long long deadline = ts_now_ms() + timeout_ms;
	int step = 1, rc = TS_TLS_OK;

	if (!ts_tls_enter(t, &x))
		return ts_tls_intr();
	ts_nodelay_push(fd);
	enum drained d = drain_locked(t, deadline);
	/* Without close_notify out, the peer was not reading: no wait. */
	while (d == DRAINED_EMPTY && t->bye_sent && unsent(fd)) {
		long long left = deadline - ts_now_ms();
		if (left <= 0) {
			rc = TS_TLS_WANT_WRITE;
			break;
		}
		/* No event says "acknowledged": poll for the peer's records
		 * with a timeout that grows to 64 ms. */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ts_tls_drop(t);
		int n = ts_tls_io.poll(&p, 1, step < left ? step : (int)left);
		ts_tls_retake(t);
		if (step < 64)
			step *= 2;
		if (n > 0)
			d = drain_locked(t, deadline);
	}
	/* Data after close(): TCP would reset too. After shutdown() it is
	 * the program's to read. At END the peer sends nothing more. */
	if (d == DRAINED_DATA && closing)
		set_reset(fd);
	ts_tls_leave(t);
	return rc;
}

