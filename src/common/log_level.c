/* Log level names (see log_level.h). */
#include <stddef.h>

#include "log_level.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *const level_names[] = {
	[TS_LOG_ERROR] = "error",
	[TS_LOG_WARN] = "warn",
	[TS_LOG_INFO] = "info",
	[TS_LOG_DEBUG] = "debug",
};

const char *ts_log_level_name(enum ts_log_level l)
{
	if ((unsigned)l < ARRAY_SIZE(level_names))
		return level_names[l];
	return "?";
}

/* Case-insensitive: TLSSHIM_LOG=DEBUG should work too. */
int ts_log_level_parse(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(level_names); i++) {
		const char *n = level_names[i];
		size_t j;
		for (j = 0; n[j]; j++) {
			char c = s[j];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (c != n[j])
				break;
		}
		if (!n[j] && !s[j])
			return (int)i;
	}
	return -1;
}
