/* tlsshim: run a program with the preload and a checked policy.
 *
 *   tlsshim [-p POLICY] [-v] [--] COMMAND [ARG...]
 *   tlsshim --check POLICY...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "policy.h"

#ifndef TS_LIBDIR
#define TS_LIBDIR "/usr/local/lib"
#endif
#ifndef TS_BINDIR
#define TS_BINDIR "/usr/local/bin"
#endif
#ifndef TS_VERSION
#define TS_VERSION "unknown"
#endif

#define LIBNAME "libtlsshim.so"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tlsshim [-p POLICY] [-v] [--] COMMAND [ARG...]\n"
	        "       tlsshim --check POLICY...\n"
	        "\n"
	        "Run COMMAND with its TCP connections that POLICY selects\n"
	        "upgraded to verified TLS.\n"
	        "\n"
	        "  -p, --policy POLICY  policy file (else $TLSSHIM_POLICY)\n"
	        "  -v, --verbose        log each upgraded connection (info)\n"
	        "      --check          validate policies; exit 1 on errors\n"
	        "  -h, --help           this text\n"
	        "      --version        print the version\n");
}

static void print_diag(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s\n", msg);
}

static int find_library(char *out, size_t len);

/* What only GnuTLS can judge (a priority string, a CRL's signature, a
 * client key) is judged by the engine, loaded from beside the preload as
 * the preload would load it: 0 when every rule passes. */
static int check_engine(const struct ts_policy *p)
{
	static const struct ts_engine *eng;
	static const struct ts_engine_io io = {recv, sendmsg, poll};
	char lib[PATH_MAX], err[512];
	int bad = 0;

	if (!eng) {
		if (find_library(lib, sizeof lib) < 0) {
			fprintf(stderr, "tlsshim: cannot find %s\n", LIBNAME);
			return 1;
		}
		char *slash = strrchr(lib, '/');
		if (slash)
			snprintf(slash + 1, sizeof lib - (size_t)(slash + 1 - lib),
			         "%s", TS_ENGINE_SONAME);
		void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
		ts_engine_init_fn init =
			h ? (ts_engine_init_fn)dlsym(h, TS_ENGINE_INIT_SYM)
			  : NULL;
		eng = init ? init(&io) : NULL;
		if (!eng || eng->abi != TS_ENGINE_ABI || !eng->check_rule) {
			fprintf(stderr, "tlsshim: cannot load the TLS engine "
			        "%s: %s\n", lib, h ? "incompatible" : dlerror());
			eng = NULL;
			return 1;
		}
	}
	for (size_t i = 0; i < p->nrules; i++) {
		if (eng->check_rule(&p->rules[i], err, sizeof err) < 0) {
			fprintf(stderr, "%s:%u: rule '%s': %s\n", p->path,
			        p->rules[i].line, p->rules[i].name, err);
			bad = 1;
		}
	}
	return bad;
}

static int check(int n, char **paths)
{
	int bad = 0;
	char err[512];

	for (int i = 0; i < n; i++) {
		struct ts_policy *p =
			ts_policy_load(paths[i], print_diag, NULL, err,
			               sizeof err);
		if (!p)
			bad = 1;
		ts_policy_free(p);
	}
	return bad;
}

/* --check: the policy parses, and the engine accepts every rule. */
static int check_deep(int n, char **paths)
{
	int bad = 0;
	char err[512];

	for (int i = 0; i < n; i++) {
		struct ts_policy *p =
			ts_policy_load(paths[i], print_diag, NULL, err,
			               sizeof err);
		if (!p || check_engine(p))
			bad = 1;
		ts_policy_free(p);
	}
	return bad;
}

/* Path of libdir relative to bindir, from the configured prefixes: the
 * installed launcher finds the installed preload under any DESTDIR. */
static void rel_libdir(char *out, size_t len)
{
	const char *b = TS_BINDIR, *l = TS_LIBDIR;
	size_t common = 0, i;

	for (i = 0; b[i] && b[i] == l[i]; i++)
		if (b[i] == '/')
			common = i + 1;
	if (!b[i] && (l[i] == '/' || !l[i]))
		common = i + (l[i] == '/');
	out[0] = '\0';
	if (b[common]) {
		size_t ups = 1;
		for (i = common; b[i]; i++)
			if (b[i] == '/' && b[i + 1])
				ups++;
		while (ups--)
			strncat(out, "../", len - strlen(out) - 1);
	}
	strncat(out, l + common, len - strlen(out) - 1);
}

static int find_library(char *out, size_t len)
{
	char exe[PATH_MAX], rel[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		/* The build tree: the preload sits beside the launcher. */
		if (snprintf(out, len, "%s/%s", exe, LIBNAME) < (int)len &&
		    access(out, R_OK) == 0)
			return 0;
		rel_libdir(rel, sizeof rel);
		if (snprintf(out, len, "%s/%s/%s", exe, rel, LIBNAME) <
		            (int)len &&
		    access(out, R_OK) == 0)
			return 0;
	}
	if (snprintf(out, len, "%s/%s", TS_LIBDIR, LIBNAME) >= (int)len)
		return -1;
	return access(out, R_OK) == 0 ? 0 : -1;
}

static bool is_sanitizer_runtime(const char *entry)
{
	const char *base = strrchr(entry, '/');
	base = base ? base + 1 : entry;
	return !strncmp(base, "libasan", 7) || !strncmp(base, "libubsan", 8) ||
	       !strncmp(base, "libtsan", 7) || !strncmp(base, "libhwasan", 9) ||
	       !strncmp(base, "libclang_rt.", 12);
}

/* Ours goes first, except that sanitizer runtimes must stay ahead of
 * every other library. */
static char *build_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	size_t cap = strlen(lib) + (old ? strlen(old) : 0) + 4;
	char *san = calloc(1, cap), *rest = calloc(1, cap), *out = NULL;
	char *copy = old ? strdup(old) : NULL, *save = NULL;

	if (!san || !rest || (old && !copy))
		goto out;
	for (char *t = copy ? strtok_r(copy, " :", &save) : NULL; t;
	     t = strtok_r(NULL, " :", &save)) {
		char *dst = is_sanitizer_runtime(t) ? san : rest;
		if (!strcmp(t, lib))
			continue;
		if (dst[0])
			strcat(dst, " ");
		strcat(dst, t);
	}
	out = malloc(cap + 2);
	if (out)
		snprintf(out, cap + 2, "%s%s%s%s%s", san, san[0] ? " " : "",
		         lib, rest[0] ? " " : "", rest);
out:
	free(san);
	free(rest);
	free(copy);
	return out;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"policy", required_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{"check", no_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	const char *policy = NULL;
	bool verbose = false, do_check = false;
	int o;

	while ((o = getopt_long(argc, argv, "+p:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'p': policy = optarg; break;
		case 'v': verbose = true; break;
		case 'c': do_check = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("tlsshim %s\n", TS_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (do_check) {
		if (optind >= argc) {
			fprintf(stderr, "tlsshim: --check needs a policy\n");
			return 2;
		}
		return check_deep(argc - optind, argv + optind);
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (!policy)
		policy = getenv("TLSSHIM_POLICY");
	if (!policy || !policy[0]) {
		fprintf(stderr, "tlsshim: no policy: use -p POLICY\n");
		return 2;
	}
	if (check(1, (char **)&policy))
		return 2;
	char abs[PATH_MAX], lib[PATH_MAX];
	if (!realpath(policy, abs)) {
		fprintf(stderr, "tlsshim: %s: %s\n", policy, strerror(errno));
		return 2;
	}
	if (find_library(lib, sizeof lib) < 0) {
		fprintf(stderr, "tlsshim: cannot find %s\n", LIBNAME);
		return 2;
	}
	char *preload = build_preload(lib);
	if (!preload || setenv("LD_PRELOAD", preload, 1) < 0 ||
	    setenv("TLSSHIM_POLICY", abs, 1) < 0 ||
	    (verbose && setenv("TLSSHIM_LOG", "info", 1) < 0)) {
		fprintf(stderr, "tlsshim: out of memory\n");
		return 2;
	}
	free(preload);
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "tlsshim: %s: %s\n", argv[optind], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
