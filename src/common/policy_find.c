/* Finding the policy (see policy_find.h). */
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

#include "policy_find.h"

#ifndef TS_POLICY_DIR
#define TS_POLICY_DIR "/etc/tlsshim/policies"
#endif

/* dir/name.conf into buf, if it fits and exists. */
static bool candidate(char *buf, size_t len, const char *dir,
                      const char *name)
{
	struct stat st;

	return (size_t)snprintf(buf, len, "%s/%s.conf", dir, name) < len &&
	       stat(buf, &st) == 0;
}

const char *ts_policy_find(const char *named, const char *dir,
                           const char *program, char *buf, size_t len)
{
	char first[4096];

	if (named && named[0])
		return named;
	if (!dir || !dir[0])
		dir = TS_POLICY_DIR;
	if (candidate(buf, len, dir, program))
		return buf;
	snprintf(first, sizeof first, "%s", buf);
	if (candidate(buf, len, dir, "default"))
		return buf;
	snprintf(buf, len, "%s", first);
	return NULL;
}
