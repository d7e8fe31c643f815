/* The launcher's parts (src/launcher*.c): a plain program, never preloaded
 * into anything, so it may use stdio. */
#ifndef TS_LAUNCHER_H
#define TS_LAUNCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* src/launcher_target.c: resolve COMMAND like execvp and refuse what the
 * preload cannot reach. 0 when it can run under the preload; else -1
 * with the reason in why (-2: not found). *unprotected is set for setuid/setgid/
 * file-capability targets (the loader drops LD_PRELOAD); the caller
 * decides. */
int ts_launcher_check_target(const char *cmd, bool *unprotected,
                             char *why, size_t whylen);

/* One line to f (the newline added), every byte outside printable ASCII
 * escaped (escape.h): what the launcher prints of names, paths, policy
 * text and the network never reaches a terminal raw. */
void ts_launcher_say(FILE *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* src/launcher_explain.c: preload_lib locates the engine beside it. */
int ts_launcher_explain(const char *policy, const char *target,
                        const char *preload_lib);
int ts_launcher_probe(const char *policy, const char *target,
                      const char *preload_lib);

#endif
