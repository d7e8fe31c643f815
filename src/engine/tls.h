/* Inside the engine: what its files share. Only libtlsshim-engine.so uses
 * this; it links GnuTLS. */
#ifndef TS_TLS_H
#define TS_TLS_H

#include "engine.h"

/* The libc functions handed to ts_engine_init: the transport, and every
 * call of a name the preload hooks that the engine makes for itself
 * (never the preload's hooks). */
extern struct ts_engine_io ts_tls_io;

#endif
