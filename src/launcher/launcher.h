/* The launcher's parts (src/launcher/): a plain program, never preloaded
 * into anything, so it may use stdio. */
#ifndef TS_LAUNCHER_H
#define TS_LAUNCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* src/launcher/launcher_target.c: resolve argv[0] like execvp, follow its #! chain
 * and env(1), and refuse what the preload (the library at preload) cannot
 * reach: another ELF class or machine, no or another program interpreter,
 * a Go program, env dropping LD_PRELOAD or TLSSHIM_POLICY. 0 when it can
 * run under the preload; else -1 with the reason in why (-2: not found).
 * *unprotected is set for setuid/setgid/file-capability targets (the
 * loader drops LD_PRELOAD); the caller decides. */
int ts_launcher_check_target(char *const argv[], const char *preload,
                             bool *unprotected, char *why, size_t whylen);

/* One line to f (the newline added), every byte outside printable ASCII
 * escaped (escape.h): what the launcher prints of names, paths, policy
 * text and the network never reaches a terminal raw. */
void ts_launcher_say(FILE *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* src/launcher/launcher_explain.c: preload_lib locates the engine beside
 * it; ts_launcher_engine loads it (every error said). */
struct ts_engine_handle;
int ts_launcher_engine(const char *preload_lib, struct ts_engine_handle *e);
int ts_launcher_explain(const char *policy, const char *target,
                        const char *preload_lib);
int ts_launcher_probe(const char *policy, const char *target,
                      const char *preload_lib);

#endif
