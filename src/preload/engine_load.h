/* The preload's handle on the lazily loaded TLS engine. */
#ifndef TS_ENGINE_LOAD_H
#define TS_ENGINE_LOAD_H

#include <stddef.h>

#include "engine.h"

/* Loads the engine once; NULL (reason in err) when it cannot be loaded. */
const struct ts_engine *ts_engine_get(char *err, size_t errlen);
/* The engine if it is loaded already, else NULL; never loads it. */
const struct ts_engine *ts_engine_loaded(void);

#endif
