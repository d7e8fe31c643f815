/* Log levels: the policy's log-level key, TLSSHIM_LOG, the launcher's -l,
 * and the preload's logging all speak of the same four. */
#ifndef TS_LOG_LEVEL_H
#define TS_LOG_LEVEL_H

enum ts_log_level {
	TS_LOG_ERROR = 0,
	TS_LOG_WARN = 1,
	TS_LOG_INFO = 2,
	TS_LOG_DEBUG = 3,
};

const char *ts_log_level_name(enum ts_log_level l);
int ts_log_level_parse(const char *s); /* -1 if unknown */

#endif
