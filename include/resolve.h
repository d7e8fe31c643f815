/* What host names the program resolved: a bounded, thread-safe,
 * per-process map from addresses to the names that resolved to them.
 *
 * The resolver hooks (src/hook_resolve.c) record every answer; the
 * connection layer looks the destination address up at connect to match
 * host-name rules and to choose the name it verifies. Names are stored
 * normalised: lower case, no trailing dot. The most recent resolution of an
 * address wins, and one made by the calling thread is preferred to other
 * threads'. Nothing here allocates: the table is a fixed ring. */
#ifndef TS_RESOLVE_H
#define TS_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TS_RESOLVE_SLOTS 256
#define TS_RESOLVE_NAME_MAX 254 /* 253 characters and the NUL */

/* Copies name normalised into out; false when it is no DNS name worth
 * remembering (empty, too long, an IP literal). */
bool ts_resolve_normalise(const char *name, char *out, size_t outlen);

/* Remember that name resolved to addr (4 or 16 bytes by family) in thread
 * tid. Safe from any thread; never fails loudly (a name that does not fit
 * is simply not remembered). */
void ts_resolve_record(const char *name, int family, const void *addr,
                       unsigned long tid);

/* The name for addr: the newest one resolved by thread tid, else the
 * newest from any thread. Copies it into out and returns true, or false
 * when the address was never seen. */
bool ts_resolve_lookup(int family, const void *addr, unsigned long tid,
                       char *out, size_t outlen);

/* Forget everything (tests). */
void ts_resolve_clear(void);

#endif
