/* Escaping of untrusted text (see escape.h): pure, no allocation. */
#include "escape.h"

size_t ts_escape(char *out, size_t cap, const char *in)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (!cap)
		return 0;
	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;
		if (c >= 0x20 && c < 0x7f) {
			if (n + 1 >= cap)
				break;
			out[n++] = (char)c;
			continue;
		}
		if (n + 4 >= cap)
			break;
		out[n++] = '\\';
		out[n++] = 'x';
		out[n++] = hex[c >> 4];
		out[n++] = hex[c & 15];
	}
	out[n] = '\0';
	return n;
}
