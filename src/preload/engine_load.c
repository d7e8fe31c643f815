/* Loading the TLS engine on the first matched connect.
 *
 * The engine (and with it GnuTLS) lives in a separate object so that the
 * thousands of processes that inherit LD_PRELOAD and never make a matched
 * connect do not pay for mapping and relocating GnuTLS. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "engine_load.h"
#include "log.h"
#include "real.h"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const struct ts_engine *_Atomic engine;
static char load_error[512];

static void load(void)
{
	Dl_info self;
	char path[PATH_MAX];
	static struct ts_engine_io io;

	if (!dladdr((void *)ts_engine_get, &self) || !self.dli_fname) {
		snprintf(load_error, sizeof load_error,
		         "cannot locate the preload library");
		return;
	}
	/* The engine is installed beside the preload, in the build tree and
	 * in the installed layout alike. */
	const char *slash = strrchr(self.dli_fname, '/');
	int dirlen = slash ? (int)(slash - self.dli_fname) : 1;
	const char *dir = slash ? self.dli_fname : ".";
	if (snprintf(path, sizeof path, "%.*s/%s", dirlen, dir,
	             TS_ENGINE_SONAME) >= (int)sizeof path) {
		snprintf(load_error, sizeof load_error, "engine path too long");
		return;
	}
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(load_error, sizeof load_error, "cannot load %.200s: %.250s",
		         path, dlerror());
		return;
	}
	ts_engine_init_fn init =
		(ts_engine_init_fn)dlsym(h, TS_ENGINE_INIT_SYM);
	io.recv = REAL(recv);
	io.sendmsg = REAL(sendmsg);
	io.poll = REAL(poll);
	io.getsockopt = REAL(getsockopt);
	io.setsockopt = REAL(setsockopt);
	const struct ts_engine *e = init ? init(&io) : NULL;
	if (!e || e->abi != TS_ENGINE_ABI) {
		snprintf(load_error, sizeof load_error,
		         "%.400s: not a compatible tlsshim engine", path);
		return;
	}
	ts_debug("loaded TLS engine %s", path);
	engine = e;
}

const struct ts_engine *ts_engine_loaded(void)
{
	return engine;
}

const struct ts_engine *ts_engine_get(char *err, size_t errlen)
{
	pthread_once(&load_once, load);
	if (!engine)
		snprintf(err, errlen, "%s", load_error);
	return engine;
}
