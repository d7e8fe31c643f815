/* Loading the TLS engine: the one loader of the preload (on the first
 * matched connect) and the launcher (--check, --explain, --probe). */
#ifndef TS_ENGINE_OPEN_H
#define TS_ENGINE_OPEN_H

#include <limits.h>
#include <stddef.h>

#include "engine.h"

struct ts_engine_handle {
	const struct ts_engine *ops;
	ts_engine_probe_fn probe;       /* the launcher's entry points */
	ts_engine_versions_fn versions;
	char path[PATH_MAX];            /* where it was loaded from */
};

/* libtlsshim-engine.so from the directory of beside (a library installed
 * beside it: the preload; "." when beside names no directory), started
 * with io (NULL: libc's own functions, for a program that is not the
 * preload). 0, or -1 with the reason in err. Opened at most once per
 * process by the dynamic loader; each call starts it again. */
int ts_engine_open(const char *beside, const struct ts_engine_io *io,
                   struct ts_engine_handle *h, char *err, size_t errlen);

#endif
