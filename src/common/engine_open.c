/* Loading the TLS engine (see engine_open.h).
 *
 * The engine (and with it GnuTLS) lives in a separate object so that the
 * thousands of processes that inherit LD_PRELOAD and never make a matched
 * connect do not pay for mapping and relocating GnuTLS. It is installed
 * beside the preload, in the build tree and in the installed layout
 * alike. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine_open.h"

static const struct ts_engine_io libc_io = {
	.recv = recv,
	.sendmsg = sendmsg,
	.poll = poll,
	.getsockopt = getsockopt,
	.setsockopt = setsockopt,
	.write = write,
	.close = close,
};

int ts_engine_open(const char *beside, const struct ts_engine_io *io,
                   struct ts_engine_handle *h, char *err, size_t errlen)
{
	const char *slash = strrchr(beside, '/');
	int dirlen = slash ? (int)(slash - beside) : 1;
	char *path = h->path;

	*h = (struct ts_engine_handle){0};
	if (snprintf(path, sizeof h->path, "%.*s/%s", dirlen,
	             slash ? beside : ".", TS_ENGINE_SONAME) >=
	    (int)sizeof h->path) {
		snprintf(err, errlen, "engine path too long");
		return -1;
	}
	void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "cannot load %.200s: %.250s", path,
		         dlerror());
		return -1;
	}
	ts_engine_init_fn init = (ts_engine_init_fn)dlsym(lib,
	                                                  TS_ENGINE_INIT_SYM);
	h->probe = (ts_engine_probe_fn)dlsym(lib, TS_ENGINE_PROBE_SYM);
	h->versions = (ts_engine_versions_fn)dlsym(lib, TS_ENGINE_VERSIONS_SYM);
	h->ops = init && h->probe && h->versions ? init(io ? io : &libc_io)
	                                         : NULL;
	if (!h->ops || h->ops->abi != TS_ENGINE_ABI) {
		snprintf(err, errlen, "%.400s: not a compatible tlsshim engine",
		         path);
		h->ops = NULL;
		return -1;
	}
	return 0;
}
