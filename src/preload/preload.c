/* Choose and parse the policy once, when it is first needed.
 *
 * The policy is found as the launcher finds it (src/common/policy_find.c):
 * $TLSSHIM_POLICY; else <dir>/<program>.conf, then <dir>/default.conf,
 * where <dir> is $TLSSHIM_POLICY_DIR or the installed policy directory;
 * else tlsshim is inert. A policy that was named (by the variable, or by existing in the
 * directory) but does not load makes every TCP connect fail: a broken
 * policy never degrades to plaintext.
 *
 * A process that never connects never reads it: start-up pays only for
 * copying the three variables (the program may clear its environment or
 * chdir before its first connect, so they are taken at start, relative
 * paths made absolute). The first connect, name lookup, or a call that
 * gives up what reading the files may need (chroot, a change of user or
 * groups: src/preload/hooks/hook_priv.c) loads it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "engine_load.h"
#include "log.h"
#include "policy.h"
#include "policy_find.h"
#include "real.h"
#include "resolve.h"

struct ts_state ts_state;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

/* The variables as they were at start; "" when unset. */
static char env_policy[4096], env_dir[4096], env_log[64];

static const char *env_bad; /* a variable that did not fit */

static void capture(const char *name, char *buf, size_t len, bool path)
{
	const char *v = secure_getenv(name);
	char cwd[4096];
	size_t n;

	if (!v || !v[0])
		return;
	if (path && v[0] != '/') {
		if (getcwd(cwd, sizeof cwd) &&
		    (size_t)snprintf(buf, len, "%s/%s", cwd, v) < len)
			return;
	} else if ((n = strlen(v)) < len) {
		memcpy(buf, v, n + 1);
		return;
	}
	buf[0] = 0;
	env_bad = name;
}

static void state_init(void)
{
	char buf[4096], err[400];
	int saved = errno;
	int env_level = env_log[0] ? ts_log_level_parse(env_log) : -1;

	ts_real_bind();
	if (env_level >= 0)
		ts_log_set_level(env_level);
	const char *path = env_bad ? NULL
	                           : ts_policy_find(env_policy, env_dir,
	                                            program_invocation_short_name,
	                                            buf, sizeof buf);
	if (env_bad) {
		ts_state.failed = true;
		snprintf(ts_state.failed_reason, sizeof ts_state.failed_reason,
		         "invalid policy: %s is too long or its directory "
		         "cannot be resolved",
		         env_bad);
	} else if (path) {
		/* read and close are our hooks: the parser gets libc's. */
		struct ts_policy_io io = {
			.open = open,
			.fstat = fstat,
			.read = REAL(read),
			.close = REAL(close),
		};
		struct ts_policy *p = ts_policy_load_io(&io, path, NULL, NULL,
		                                        err, sizeof err);
		if (p) {
			/* Names learned from here on are shared with the
			 * children forked from here on, if not already. */
			ts_resolve_init();
			ts_log_configure(&(struct ts_log_config){
				.level = env_level >= 0 ? env_level
				                        : (int)p->log_level,
				.syslog = p->log_dest == TS_LOG_TO_SYSLOG,
				.file = p->log_file,
			});
			ts_state.policy = p;
			ts_state.serves = ts_policy_serves(p);
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
	ts_fork_check();
	pthread_once(&state_once, state_init);
}

void ts_state_keep_access(bool new_root)
{
	char err[256];
	int saved = errno;

	ts_state_init();
	if (new_root && ts_state.policy && ts_state.policy->nrules)
		(void)ts_engine_get(err, sizeof err); /* refused later if not */
	errno = saved;
}

/* Nagle's socket options (nodelay.h) go to libc's real functions. */
static int real_getsockopt(int fd, int level, int opt, void *val,
                           socklen_t *len)
{
	return REAL(getsockopt)(fd, level, opt, val, len);
}

static int real_setsockopt(int fd, int level, int opt, const void *val,
                           socklen_t len)
{
	return REAL(setsockopt)(fd, level, opt, val, len);
}

static const struct ts_sockopt_io real_sockopt = {
	.getsockopt = real_getsockopt,
	.setsockopt = real_setsockopt,
};

__attribute__((constructor)) static void ts_preload_init(void)
{
	int saved = errno;
	ts_nodelay_bind(&real_sockopt);
	capture("TLSSHIM_POLICY", env_policy, sizeof env_policy, true);
	capture("TLSSHIM_POLICY_DIR", env_dir, sizeof env_dir, true);
	capture("TLSSHIM_LOG", env_log, sizeof env_log, false);
	ts_fork_watch_init();
	ts_conn_fork_init();
	/* A named policy: the name map is shared from the start, with the
	 * children the program forks before it reads the policy (lynx and
	 * links resolve in a child, connect in the parent). */
	if (env_policy[0] || env_dir[0])
		ts_resolve_init();
	errno = saved;
}

/* exit() without close(): see ts_conn_exit. */
__attribute__((destructor)) static void ts_preload_fini(void)
{
	int saved = errno;
	ts_conn_exit();
	errno = saved;
}
