/* The preload's engine: loaded once, on the first matched connect, from
 * beside this library (src/common/engine_open.c), with the real libc
 * functions for its I/O. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "engine_load.h"
#include "engine_open.h"
#include "log.h"
#include "real.h"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
const struct ts_engine *_Atomic ts_engine_ptr;
static char load_error[512];

/* The engine's lines outside any session (a reload that failed). */
static void engine_log(int level, const char *msg)
{
	ts_log(level, "%s", msg);
}

static void load(void)
{
	static struct ts_engine_io io;
	static struct ts_engine_handle h;
	Dl_info self;

	if (!dladdr((void *)ts_engine_get, &self) || !self.dli_fname) {
		snprintf(load_error, sizeof load_error,
		         "cannot locate the preload library");
		return;
	}
	io.recv = REAL(recv);
	io.sendmsg = REAL(sendmsg);
	io.poll = REAL(poll);
	io.getsockopt = REAL(getsockopt);
	io.setsockopt = REAL(setsockopt);
	io.write = REAL(write);
	io.close = REAL(close);
	io.log = engine_log;
	if (ts_engine_open(self.dli_fname, &io, &h, load_error,
	                   sizeof load_error) < 0)
		return;
	ts_debug("loaded TLS engine %s", h.path);
	ts_engine_ptr = h.ops;
}

const struct ts_engine *ts_engine_get(char *err, size_t errlen)
{
	pthread_once(&load_once, load);
	if (!ts_engine_ptr)
		snprintf(err, errlen, "%s", load_error);
	return ts_engine_ptr;
}
