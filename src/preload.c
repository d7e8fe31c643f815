/* Process start: choose and parse the policy once.
 *
 * The policy is found in this order, and only here: $TLSSHIM_POLICY; else
 * <dir>/<program>.conf, then <dir>/default.conf, where <dir> is
 * $TLSSHIM_POLICY_DIR or the installed policy directory; else tlsshim is
 * inert. A policy that was named (by the variable, or by existing in the
 * directory) but does not load makes every TCP connect fail: a broken
 * policy never degrades to plaintext. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conn.h"
#include "log.h"
#include "policy.h"
#include "real.h"

#ifndef TS_POLICY_DIR
#define TS_POLICY_DIR "/etc/tlsshim/policies"
#endif

struct ts_state ts_state;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static const char *choose(char *buf, size_t len)
{
	const char *p = secure_getenv("TLSSHIM_POLICY");
	if (p && p[0])
		return p;
	const char *dir = secure_getenv("TLSSHIM_POLICY_DIR");
	if (!dir || !dir[0])
		dir = TS_POLICY_DIR;
	if ((size_t)snprintf(buf, len, "%s/%s.conf", dir,
	                     program_invocation_short_name) < len &&
	    exists(buf))
		return buf;
	if ((size_t)snprintf(buf, len, "%s/default.conf", dir) < len &&
	    exists(buf))
		return buf;
	return NULL;
}

static void state_init(void)
{
	char buf[4096], err[400];
	int saved = errno;
	const char *env = secure_getenv("TLSSHIM_LOG");
	int env_level = env ? ts_log_level_parse(env) : -1;

	ts_real_bind();
	ts_conn_fork_init();
	if (env_level >= 0)
		ts_log_set_level(env_level);
	const char *path = choose(buf, sizeof buf);
	if (path) {
		struct ts_policy *p = ts_policy_load(path, NULL, NULL, err,
		                                     sizeof err);
		if (p) {
			ts_state.policy = p;
			if (env_level < 0)
				ts_log_set_level(p->log_level);
			ts_debug("policy %s: %zu rules", path, p->nrules);
		} else {
			ts_state.failed = true;
			snprintf(ts_state.failed_reason,
			         sizeof ts_state.failed_reason,
			         "invalid policy: %s", err);
		}
	}
	errno = saved;
}

void ts_state_init(void)
{
	pthread_once(&state_once, state_init);
}

__attribute__((constructor)) static void ts_preload_init(void)
{
	ts_state_init();
}
