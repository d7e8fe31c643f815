/* stdio on an upgraded fd: glibc's FILE calls its internal read/write,
 * not the exported ones.  fdopen + fprintf + fflush + fgets, and
 * fwrite/fread of >= 10 MB checked by sha256. */
#include "iotest.h"

#include <stdio.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

static void lines(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	FILE *w = fdopen(fd, "w");
	FILE *r = fdopen(dup(fd), "r");
	if (!CHECK(w && r, "fdopen for writing and reading"))
		return;
	int bad = 0, n = 0;
	char line[256], want[256];
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 200; i++)
			fprintf(w, "line %d of round %d: the quick brown fox\n", i, round);
		if (fflush(w) != 0)
			bad++;
		for (int i = 0; i < 200; i++) {
			snprintf(want, sizeof want, "line %d of round %d: the quick brown fox\n", i, round);
			if (!fgets(line, sizeof line, r) || strcmp(line, want) != 0)
				bad++;
			else
				n++;
		}
	}
	CHECK(bad == 0 && n == 4000, "fprintf + fflush + fgets: %d lines echoed, %d wrong", n, bad);
	fclose(w);
	fclose(r);
}

static void blocks(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	FILE *w = fdopen(fd, "w");
	FILE *r = fdopen(dup(fd), "r");
	if (!CHECK(w && r, "fdopen"))
		return;
	static unsigned char b[65536];
	size_t total = io_bytes();
	struct sha256 sw, sr;
	sha256_init(&sw);
	sha256_init(&sr);
	bool ok = true;
	for (uint64_t off = 0; ok && off < total; off += sizeof b) {
		size_t n = total - off < sizeof b ? total - off : sizeof b;
		io_fill(b, off, n);
		sha256_update(&sw, b, n);
		ok = fwrite(b, 1, n, w) == n && fflush(w) == 0 && fread(b, 1, n, r) == n;
		sha256_update(&sr, b, n);
	}
	unsigned char a[32], c[32];
	char h[65];
	sha256_final(&sw, a);
	sha256_final(&sr, c);
	io_hex(c, h);
	CHECK(ok && memcmp(a, c, 32) == 0, "fwrite + fread %zu bytes, sha256 %s", total, h);
	/* fgetc at EOF after a half-close */
	shutdown(fileno(w), SHUT_WR);
	char t[32] = {0};
	CHECK(fgets(t, sizeof t, r) != NULL && strncmp(t, "EOF ", 4) == 0, "fgets of the server's reply after SHUT_WR");
	CHECK(fgetc(r) == EOF && feof(r), "then EOF");
	fclose(w);
	fclose(r);
}

static const struct io_case cases[] = {
	IO_CASE("lines", lines), IO_CASE("blocks", blocks),
	{0},
};

int main(int argc, char **argv)
{
	io_init(argc, argv);
	io_run(cases);
	return io_summary();
}
