/* tlsshim: run a program with the preload and a checked policy; check,
 * explain and probe policies; print shell code for `eval`.
 *
 *   tlsshim [-p POLICY] [-l LEVEL] [--allow-unprotected] [--] CMD [ARG...]
 *   tlsshim --check POLICY...
 *   tlsshim --explain POLICY HOST:PORT | :PORT
 *   tlsshim --probe POLICY HOST:PORT
 *   tlsshim [-p POLICY] [-l LEVEL] on | off
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "engine_open.h"
#include "launcher.h"
#include "policy.h"
#include "policy_find.h"

#ifndef TS_LIBDIR
#define TS_LIBDIR "/usr/local/lib"
#endif
#ifndef TS_BINDIR
#define TS_BINDIR "/usr/local/bin"
#endif
#ifndef TS_VERSION
#define TS_VERSION "unknown"
#endif
#ifndef TS_POLICY_DIR
#define TS_POLICY_DIR "/etc/tlsshim/policies"
#endif

#define LIBNAME "libtlsshim.so"

static void usage(FILE *f)
{
	fprintf(f,
	"usage: tlsshim [-p POLICY] [-l LEVEL] [--] COMMAND [ARG...]\n"
	"       tlsshim --check POLICY...\n"
	"       tlsshim --explain POLICY HOST:PORT | :PORT\n"
	"       tlsshim --probe POLICY HOST:PORT\n"
	"       eval \"$(tlsshim [-p POLICY] on)\"    eval \"$(tlsshim off)\"\n"
	"\n"
	"Run COMMAND with the TCP connections POLICY selects upgraded to\n"
	"verified TLS: those it opens (match rules) and those it accepts\n"
	"(accept rules). Without -p: $TLSSHIM_POLICY, else COMMAND.conf or\n"
	"default.conf in " TS_POLICY_DIR ".\n"
	"\n"
	"  -p, --policy POLICY    policy file\n"
	"  -l, --log LEVEL        error, warn, info (one line per connection),\n"
	"                         debug\n"
	"  -v, --verbose          same as -l info\n"
	"      --allow-unprotected  run a setuid/setgid/setcap COMMAND anyway\n"
	"                         (the loader drops LD_PRELOAD: NO TLS)\n"
	"      --check            validate policies: path:line:col: message\n"
	"      --explain          which rule, name, trust anchors; no connection\n"
	"      --probe            handshake, show the peer chain, pins, verdict\n"
	"  -h, --help             this text      --version  the version\n"
	"\n"
	"See tlsshim(1) and tlsshim.conf(5).\n");
}

static void print_diag(void *ctx, const char *msg)
{
	(void)ctx;
	ts_launcher_say(stderr, "%s", msg);
}

static int find_library(char *out, size_t len);

/* What only GnuTLS can judge (a priority string, a CRL's signature, a
 * client key) is judged by the engine, loaded from beside the preload as
 * the preload would load it: 0 when every rule passes. */
static int check_engine(const struct ts_policy *p)
{
	static struct ts_engine_handle h;
	const struct ts_engine *eng = h.ops;
	char lib[PATH_MAX], err[512];
	int bad = 0;

	if (!eng) {
		if (find_library(lib, sizeof lib) < 0) {
			ts_launcher_say(stderr, "tlsshim: cannot find %s", LIBNAME);
			return 1;
		}
		if (ts_launcher_engine(lib, &h) < 0)
			return 1;
		eng = h.ops;
	}
	for (size_t i = 0; i < p->nrules; i++) {
		if (eng->check_rule(&p->rules[i], err, sizeof err) < 0) {
			ts_launcher_say(stderr, "%s:%u: rule '%s': %s", p->path,
			        p->rules[i].line, p->rules[i].name, err);
			bad = 1;
		}
	}
	return bad;
}

/* The policies parse (and with engine, as for --check, the engine
 * accepts every rule): 0, else 1 with every error said. Silent for a
 * valid file, like a compiler. */
static int check(int n, char **paths, bool engine)
{
	int bad = 0;
	char err[512];

	for (int i = 0; i < n; i++) {
		struct ts_policy *p =
			ts_policy_load(paths[i], print_diag, NULL, err,
			               sizeof err);
		if (!p || (engine && check_engine(p)))
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
		    access(out, R_OK) == 0) {
			/* bin/../lib/x.so reads better as lib/x.so. */
			char canon[PATH_MAX];
			if (realpath(out, canon) && strlen(canon) < len)
				strcpy(out, canon);
			return 0;
		}
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

/* Single quotes for the shell: ' becomes '\''. */
static void shell_quote(const char *s)
{
	putchar('\'');
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*s);
	}
	putchar('\'');
}

/* LD_PRELOAD without our library (any path ending in LIBNAME). */
static char *preload_without_us(void)
{
	const char *old = getenv("LD_PRELOAD");
	char *copy = old ? strdup(old) : NULL, *save = NULL;
	char *out = calloc(1, old ? strlen(old) + 1 : 1);

	if (!out || (old && !copy)) {
		free(copy);
		free(out);
		return NULL;
	}
	for (char *t = copy ? strtok_r(copy, " :", &save) : NULL; t;
	     t = strtok_r(NULL, " :", &save)) {
		const char *base = strrchr(t, '/');
		if (!strcmp(base ? base + 1 : t, LIBNAME))
			continue;
		if (out[0])
			strcat(out, " ");
		strcat(out, t);
	}
	free(copy);
	return out;
}

/* Check POLICY (every error printed); its absolute path in abs, for a
 * program that may change directory. */
static int check_absolute(const char *policy, char abs[PATH_MAX])
{
	if (check(1, (char **)&policy, false))
		return -1;
	if (!realpath(policy, abs)) {
		ts_launcher_say(stderr, "tlsshim: %s: %s", policy,
		                strerror(errno));
		return -1;
	}
	return 0;
}

/* The policy for COMMAND, in the preload's order: -p, $TLSSHIM_POLICY, else
 * <dir>/<command>.conf, then <dir>/default.conf. The one found is checked
 * here, every error printed, and handed to the program as an absolute
 * TLSSHIM_POLICY: the processes inside run under other names (a script's
 * sh, curl), and would otherwise look for their own <name>.conf. */
static int find_policy(const char *policy, const char *cmd,
                       char abs[PATH_MAX])
{
	const char *base = strrchr(cmd, '/');
	char conf[PATH_MAX];

	if (!policy || !policy[0])
		policy = getenv("TLSSHIM_POLICY");
	policy = ts_policy_find(policy, getenv("TLSSHIM_POLICY_DIR"),
	                        base ? base + 1 : cmd, conf, sizeof conf);
	if (!policy) {
		ts_launcher_say(stderr, "tlsshim: no policy: use -p POLICY (or "
		                "put one in %s)", conf);
		return -1;
	}
	return check_absolute(policy, abs);
}

/* `eval "$(tlsshim on)"`: like `. torsocks on`, for this shell and what it
 * starts. */
static int shell_on_off(bool on, const char *policy, const char *level)
{
	char lib[PATH_MAX], abs[PATH_MAX];

	if (!on) {
		char *rest = preload_without_us();
		if (!rest)
			return 2;
		if (rest[0]) {
			fputs("LD_PRELOAD=", stdout);
			shell_quote(rest);
			fputs("; export LD_PRELOAD;\n", stdout);
		} else {
			fputs("unset LD_PRELOAD;\n", stdout);
		}
		fputs("unset TLSSHIM_POLICY TLSSHIM_LOG;\n", stdout);
		free(rest);
		return 0;
	}
	if (find_library(lib, sizeof lib) < 0) {
		ts_launcher_say(stderr, "tlsshim: cannot find %s", LIBNAME);
		return 2;
	}
	if (policy && check_absolute(policy, abs) < 0)
		return 2;
	char *preload = build_preload(lib);
	if (!preload)
		return 2;
	fputs("LD_PRELOAD=", stdout);
	shell_quote(preload);
	fputs("; export LD_PRELOAD;\n", stdout);
	if (policy) {
		fputs("TLSSHIM_POLICY=", stdout);
		shell_quote(abs);
		fputs("; export TLSSHIM_POLICY;\n", stdout);
	}
	if (level) {
		fputs("TLSSHIM_LOG=", stdout);
		shell_quote(level);
		fputs("; export TLSSHIM_LOG;\n", stdout);
	}
	free(preload);
	return 0;
}

enum mode { RUN = 0, OPT_CHECK = 256, OPT_EXPLAIN, OPT_PROBE, OPT_VERSION,
             OPT_UNPROT };

struct options {
	const char *policy, *level;
	bool allow_unprot;
	enum mode mode;
	int nargs;     /* what follows the options */
	char **args;
};

/* -1 to go on, else the exit status (--help, --version, a bad option). */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{"policy", required_argument, NULL, 'p'},
		{"log", required_argument, NULL, 'l'},
		{"verbose", no_argument, NULL, 'v'},
		{"check", no_argument, NULL, OPT_CHECK},
		{"explain", no_argument, NULL, OPT_EXPLAIN},
		{"probe", no_argument, NULL, OPT_PROBE},
		{"allow-unprotected", no_argument, NULL, OPT_UNPROT},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
		{0},
	};
	int c;

	*o = (struct options){0};
	while ((c = getopt_long(argc, argv, "+p:l:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'p': o->policy = optarg; break;
		case 'l':
			if (ts_log_level_parse(optarg) < 0) {
				ts_launcher_say(stderr, "tlsshim: bad log level '%s': "
				        "expected error, warn, info or debug",
				        optarg);
				return 2;
			}
			o->level = optarg;
			break;
		case 'v': o->level = "info"; break;
		case OPT_CHECK: case OPT_EXPLAIN: case OPT_PROBE:
			o->mode = c;
			break;
		case OPT_UNPROT: o->allow_unprot = true; break;
		case 'h': usage(stdout); return 0;
		case OPT_VERSION:
			printf("tlsshim %s\n", TS_VERSION);
			return 0;
		default: usage(stderr); return 2;
		}
	}
	o->nargs = argc - optind;
	o->args = argv + optind;
	return -1;
}

/* --explain and --probe POLICY HOST:PORT, with the engine from beside the
 * preload. */
static int explain_or_probe(enum mode mode, int nargs, char **args)
{
	char lib[PATH_MAX];

	if (nargs != 2) {
		fprintf(stderr, "usage: tlsshim %s\n",
		        mode == OPT_PROBE ? "--probe POLICY HOST:PORT"
		                          : "--explain POLICY HOST:PORT | :PORT");
		return 2;
	}
	if (find_library(lib, sizeof lib) < 0) {
		ts_launcher_say(stderr, "tlsshim: cannot find %s", LIBNAME);
		return 2;
	}
	return mode == OPT_PROBE ? ts_launcher_probe(args[0], args[1], lib)
	                         : ts_launcher_explain(args[0], args[1], lib);
}

/* What the preload cannot reach is refused (launcher_target.c); a
 * setuid/setgid/setcap command only with --allow-unprotected. 0 to go
 * on, else the exit status. */
static int check_target(char **args, const char *lib, bool allow_unprot)
{
	char why[2 * PATH_MAX + 256];
	bool unprot = false;
	int t = ts_launcher_check_target(args, lib, &unprot, why, sizeof why);

	if (t == -2) {
		ts_launcher_say(stderr, "tlsshim: %s", why);
		return 127;
	}
	if (t < 0) {
		ts_launcher_say(stderr, "tlsshim: refusing to run: %s", why);
		return 126;
	}
	if (!unprot)
		return 0;
	if (!allow_unprot) {
		ts_launcher_say(stderr,
		        "tlsshim: refusing to run: %s is setuid, setgid "
		        "or has file capabilities: the loader ignores "
		        "LD_PRELOAD for it, so its connections would "
		        "stay plaintext (--allow-unprotected runs it "
		        "anyway, without TLS)", args[0]);
		return 126;
	}
	ts_launcher_say(stderr, "tlsshim: warning: %s runs unprotected "
	        "(setuid/setgid/setcap): NO TLS", args[0]);
	return 0;
}

/* The command's environment: the preload (after sanitizer runtimes), the
 * policy's absolute path, the log level. */
static int set_environment(const char *lib, const char *policy,
                           const char *level)
{
	char *preload = build_preload(lib);
	int rv = -1;

	if (preload && setenv("LD_PRELOAD", preload, 1) == 0 &&
	    setenv("TLSSHIM_POLICY", policy, 1) == 0 &&
	    (!level || setenv("TLSSHIM_LOG", level, 1) == 0))
		rv = 0;
	free(preload);
	return rv;
}

/* tlsshim [-p POLICY] [-l LEVEL] [--] CMD [ARG...]: the policy checked,
 * the command checked, then exec'd under the preload. */
static int run_command(const struct options *o)
{
	char abs[PATH_MAX], lib[PATH_MAX];
	int rc;

	if (find_policy(o->policy, o->args[0], abs) < 0)
		return 2;
	if (find_library(lib, sizeof lib) < 0) {
		fprintf(stderr, "tlsshim: cannot find %s\n", LIBNAME);
		return 2;
	}
	if ((rc = check_target(o->args, lib, o->allow_unprot)) != 0)
		return rc;
	if (set_environment(lib, abs, o->level) < 0) {
		fprintf(stderr, "tlsshim: out of memory\n");
		return 2;
	}
	execvp(o->args[0], o->args);
	ts_launcher_say(stderr, "tlsshim: %s: %s", o->args[0],
	                strerror(errno));
	return errno == ENOENT ? 127 : 126;
}

int main(int argc, char **argv)
{
	struct options o;
	int rc = parse_options(argc, argv, &o);

	if (rc >= 0)
		return rc;
	switch (o.mode) {
	case OPT_CHECK:
		if (o.nargs < 1) {
			fprintf(stderr, "tlsshim: --check needs a policy\n");
			return 2;
		}
		return check(o.nargs, o.args, true);
	case OPT_EXPLAIN:
	case OPT_PROBE:
		return explain_or_probe(o.mode, o.nargs, o.args);
	default:
		break;
	}
	if (o.nargs < 1) {
		usage(stderr);
		return 2;
	}
	if (o.nargs == 1 &&
	    (!strcmp(o.args[0], "on") || !strcmp(o.args[0], "off")))
		return shell_on_off(o.args[0][1] == 'n', o.policy, o.level);
	return run_command(&o);
}
