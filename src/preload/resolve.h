/* What host names the program resolved: a bounded, thread-safe map from
 * addresses to the names that resolved to them, in memory shared with the
 * process's forked children and its parent (lynx and links resolve in a
 * child and connect in the parent).
 *
 * The resolver hooks (src/preload/hooks/hook_resolve.c) record every answer; the
 * connection layer looks the destination address up at connect to match
 * host-name rules and to choose the name it verifies. Names are stored
 * normalised: lower case, no trailing dot.
 *
 * Two stores. Names a host rule of the policy matches ("pinned") are kept
 * until their store is full, and one pushed out then leaves its address
 * marked: a later connect to it cannot be decided and is refused, never
 * passed as unmatched. Other names sit in a ring where the oldest give
 * way. At lookup a pinned name wins (a connect that may be the rule's is
 * upgraded: the certificate decides), then the newest answer of the
 * calling thread, then the newest of anyone. Nothing here allocates after
 * the first use. */
#ifndef TS_RESOLVE_H
#define TS_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TS_RESOLVE_SLOTS 256        /* the ring */
#define TS_RESOLVE_PINNED_SLOTS 1024
#define TS_RESOLVE_NAME_MAX 254 /* 253 characters and the NUL */

/* Copies name normalised into out; false when it is no DNS name worth
 * remembering (empty, too long, an IP literal). */
bool ts_resolve_normalise(const char *name, char *out, size_t outlen);

/* The shared map: made once, before the first fork that must share it
 * (the preload's constructor when a policy is named); else on first use,
 * then private to this process and its later children. */
void ts_resolve_init(void);

/* Remember that name resolved to addr (4 or 16 bytes by family) in thread
 * tid; pinned when a host rule matches name. Safe from any thread and
 * process; never fails loudly. */
void ts_resolve_record(const char *name, int family, const void *addr,
                       unsigned long tid, bool pinned);

enum ts_resolve_result {
	TS_RESOLVE_NONE,  /* never resolved from a name (or as a literal) */
	TS_RESOLVE_FOUND, /* the name, in out */
	TS_RESOLVE_LOST,  /* resolved from a pinned name since forgotten */
};

/* The name for addr (see above for which). */
enum ts_resolve_result ts_resolve_lookup(int family, const void *addr,
                                         unsigned long tid, char *out,
                                         size_t outlen);

/* Forget everything (tests). */
void ts_resolve_clear(void);

#endif
