/* Calls after which the policy or its CA files may no longer be readable:
 * a new root directory, another user or set of groups. The policy is
 * loaded just before them (src/preload/preload.c loads it lazily), so a daemon
 * that chroots or drops privileges before its first connect still has
 * it. A new root directory also hides the engine (libtlsshim-engine.so,
 * loaded on the first matched connect): chroot loads it first when the
 * policy has rules. Trust material named in the policy is read with it;
 * the system trust store (no ca-file) is not, and is not found after a
 * chroot. Each door costs one pthread_once check after the first call. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <unistd.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

#define TS_PRIV_HOOK(ret, name, params, args)                              \
	TS_EXPORT ret name params                                          \
	{                                                                  \
		ts_state_keep_access(false);                               \
		return REAL(name) args;                                    \
	}

TS_EXPORT int chroot(const char *path)
{
	ts_state_keep_access(true);
	return REAL(chroot)(path);
}

TS_PRIV_HOOK(int, unshare, (int flags), (flags))
TS_PRIV_HOOK(int, setuid, (uid_t u), (u))
TS_PRIV_HOOK(int, seteuid, (uid_t u), (u))
TS_PRIV_HOOK(int, setreuid, (uid_t r, uid_t e), (r, e))
TS_PRIV_HOOK(int, setresuid, (uid_t r, uid_t e, uid_t s), (r, e, s))
TS_PRIV_HOOK(int, setgid, (gid_t g), (g))
TS_PRIV_HOOK(int, setegid, (gid_t g), (g))
TS_PRIV_HOOK(int, setregid, (gid_t r, gid_t e), (r, e))
TS_PRIV_HOOK(int, setresgid, (gid_t r, gid_t e, gid_t s), (r, e, s))
TS_PRIV_HOOK(int, setgroups, (size_t n, const gid_t *list), (n, list))
TS_PRIV_HOOK(int, initgroups, (const char *user, gid_t g), (user, g))
