/* Logging: one macro family; the level is checked before formatting. Lines
 * are formatted into a stack buffer and written with the real write(2) to
 * fd 2, never through stdio (stdio would re-enter our hooks).
 *
 * Logging depends on nothing above it: whoever knows where lines go (the
 * preload, once its policy is loaded) says so with ts_log_configure. */
#ifndef TS_LOG_H
#define TS_LOG_H

#include <stdbool.h>

#include "log_level.h"

/* Where lines go and from which level. Until configured: warn and up, to
 * stderr. */
struct ts_log_config {
	enum ts_log_level level;
	bool syslog;      /* to the local syslog socket (and not to stderr) */
	const char *file; /* to this file instead of stderr (NULL: none); it
	                   * must stay valid as long as logging goes on */
};
void ts_log_configure(const struct ts_log_config *cfg);

extern int ts_log_level_cur;

void ts_log_set_level(int level);
/* In a forked child: locks held by threads that did not survive. */
void ts_log_child_reset(void);
void ts_log_write(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define ts_log(lvl, ...)                                                  \
	do {                                                              \
		if ((lvl) <= ts_log_level_cur)                            \
			ts_log_write((lvl), __VA_ARGS__);                 \
	} while (0)
#define ts_error(...) ts_log(TS_LOG_ERROR, __VA_ARGS__)
#define ts_warn(...) ts_log(TS_LOG_WARN, __VA_ARGS__)
#define ts_info(...) ts_log(TS_LOG_INFO, __VA_ARGS__)
#define ts_debug(...) ts_log(TS_LOG_DEBUG, __VA_ARGS__)

#endif
