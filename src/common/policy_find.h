/* Which policy a process uses: the one rule the preload and the launcher
 * both follow (README, "Policy files"). */
#ifndef TS_POLICY_FIND_H
#define TS_POLICY_FIND_H

#include <stddef.h>

/* named (-p, or $TLSSHIM_POLICY) when set; else <dir>/<program>.conf,
 * then <dir>/default.conf, where dir is $TLSSHIM_POLICY_DIR or else the
 * installed policy directory. A file that exists is the policy, readable
 * or not (it fails closed if it cannot be read); the current directory is
 * never searched. NULL when there is none: buf then holds the first path
 * looked for, for a message. */
const char *ts_policy_find(const char *named, const char *dir,
                           const char *program, char *buf, size_t len);

#endif
