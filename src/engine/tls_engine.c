/* The TLS engine: GnuTLS client sessions behind struct ts_engine (the
 * table here; each concern in a file of its own, tls.h).
 *
 * Knows GnuTLS and the policy's data; knows nothing of hooks or the fd
 * table. All transport I/O goes through the real libc functions handed to
 * ts_engine_init(), never through symbols GnuTLS would resolve to our hooks. */
#define _GNU_SOURCE
#include <gnutls/gnutls.h>

#include "tls.h"

struct ts_engine_io ts_tls_io;

/* A new process, made by any fork: a thread that held a global lock is
 * gone (libc's fork has handlers for these; the others do not). */
static void tls_process_reset(void)
{
	ts_cred_child_reset();
	ts_tls_cache_child_reset();
}

/* For tlsshim --check: everything the engine would judge at the first
 * connect of this rule. */
static int tls_check_rule(const struct ts_rule *r, char *err, size_t errlen)
{
	return ts_cred_check(r, err, errlen);
}

static const struct ts_engine ops = {
	.abi = TS_ENGINE_ABI,
	.create = ts_tls_create,
	.handshake = ts_tls_handshake,
	.send = ts_tls_send,
	.flush = ts_tls_flush,
	.recv = ts_tls_recv,
	.pending = ts_tls_pending,
	.send_queued = ts_tls_send_queued,
	.close_notify = ts_tls_close_notify,
	.close_drain = ts_tls_close_drain,
	.close_linger = ts_tls_close_linger,
	.reason = ts_tls_reason,
	.describe = ts_tls_describe,
	.destroy = ts_tls_destroy,
	.child_reset = ts_tls_child_reset,
	.set_io_fd = ts_tls_set_io_fd,
	.identity = ts_tls_identity,
	.process_reset = tls_process_reset,
	.check_rule = tls_check_rule,
};

TS_TLS_EXPORT const struct ts_engine *ts_engine_init(const struct ts_engine_io *tio)
{
	if (gnutls_global_init() < 0)
		return NULL;
	ts_cred_init(tio->log);
	static struct ts_sockopt_io sockopt;

	ts_tls_io = *tio;
	sockopt.getsockopt = tio->getsockopt;
	sockopt.setsockopt = tio->setsockopt;
	ts_nodelay_bind(&sockopt);
	return &ops;
}

/* For tlsshim --explain: the versions r's sessions offer. */
TS_TLS_EXPORT int ts_engine_versions(const struct ts_rule *r, char *buf, size_t len,
                              char *err, size_t errlen)
{
	return ts_cred_versions(r, buf, len, err, errlen);
}
