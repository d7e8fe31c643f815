/* Base64 (RFC 4648, with padding): pins as RFC 7469 and curl write them. */
#ifndef TS_BASE64_H
#define TS_BASE64_H

#include <stddef.h>

/* The base64 of n bytes into out, NUL-terminated; whole groups of four
 * only, as many as fit in cap (4 * ((n + 2) / 3) + 1 bytes hold all). */
void ts_base64(const unsigned char *in, size_t n, char *out, size_t cap);

#endif
