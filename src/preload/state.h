/* The process's policy state (src/preload/preload.c): which policy, once
 * it is first needed. */
#ifndef TS_STATE_H
#define TS_STATE_H

#include <stdbool.h>

#include "policy.h"

struct ts_state {
	const struct ts_policy *policy; /* NULL: inert or failed */
	bool failed;                    /* a named policy did not load */
	bool serves;                    /* the policy has server rules */
	char failed_reason[512];
};
extern struct ts_state ts_state;

/* Loads the policy the first time (and in a new process, after fork
 * detection); cheap after that. */
void ts_state_init(void);

/* Before the process gives up access the policy may need (a new root
 * directory, another user or set of groups: src/preload/hooks/hook_priv.c):
 * the policy is loaded now; for a new root, the engine too. errno kept. */
void ts_state_keep_access(bool new_root);

#endif
