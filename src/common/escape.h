/* Text from outside (the network, the program, files) made safe to print:
 * shared by the preload's log lines and the launcher's output. */
#ifndef TS_ESCAPE_H
#define TS_ESCAPE_H

#include <stddef.h>

/* Copies in to out (cap bytes, NUL-terminated when cap > 0), writing every
 * byte outside printable ASCII (0x20..0x7e) as \xNN: no control character,
 * no escape sequence and no byte a terminal could read as one (C1 controls,
 * stray UTF-8) passes. Cuts at a whole character. Returns the length
 * written, without the NUL. */
size_t ts_escape(char *out, size_t cap, const char *in);

#endif
