/* The preload's handle on the lazily loaded TLS engine. */
#ifndef TS_ENGINE_LOAD_H
#define TS_ENGINE_LOAD_H

#include <stddef.h>

#include "engine.h"

/* Set once, by the first ts_engine_get that loads it; never unloaded. */
extern const struct ts_engine *_Atomic ts_engine_ptr;

/* Loads the engine once; NULL (reason in err) when it cannot be loaded. */
const struct ts_engine *ts_engine_get(char *err, size_t errlen);

/* The engine if it is loaded already, else NULL; never loads it. Every
 * connection has it: it is loaded before the first one is made. */
static inline const struct ts_engine *ts_engine_loaded(void)
{
	return ts_engine_ptr;
}

#endif
