/* ioctl(FIONREAD) (and SIOCINQ, the same request) reports the bytes a
 * read would return: decrypted bytes, not the ciphertext in the kernel. */
#include "iotest.h"

#include <errno.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void fionread(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	int n = -1;
	char c;
	CHECK(io_write_all(fd, "!", 1) && io_read_all(fd, &c, 1), "round trip");
	CHECK(ioctl(fd, FIONREAD, &n) == 0 && n == 0, "FIONREAD 0 with nothing pending (%d)", n);
	if (!io_record_read1(fd))
		return;
	static unsigned char b[IO_REC];
	size_t got = 1;
	bool exact = true;
	while (got < IO_REC) {
		if (!io_wait_in(fd, 5000)) {
			CHECK(0, "readable while %zu bytes are due", IO_REC - got);
			break;
		}
		n = -1;
		if (ioctl(fd, FIONREAD, &n) != 0 || n <= 0) {
			CHECK(0, "FIONREAD > 0 when readable (got %d)", n);
			break;
		}
		/* exactly that many bytes are there to read without waiting */
		ssize_t r = recv(fd, b, (size_t)n, MSG_DONTWAIT);
		if (r != n || !io_verify(b, got, (size_t)r)) {
			exact = false;
			CHECK(0, "recv(MSG_DONTWAIT) of FIONREAD=%d bytes returned %zd", n, r);
			break;
		}
		got += (size_t)r;
	}
	CHECK(exact && got == IO_REC, "FIONREAD matched the readable bytes each time (%zu)", got);
	n = -1;
	CHECK(ioctl(fd, SIOCINQ, &n) == 0 && n == 0, "SIOCINQ 0 once drained (%d)", n);
	close(fd);
}

static void after_partial(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	if (!io_record_read1(fd))
		return;
	int n = -1;
	CHECK(ioctl(fd, FIONREAD, &n) == 0 && n > 0 && n <= IO_REC - 1,
	      "FIONREAD counts the bytes left of a partly read record (%d)", n);
	io_record_rest(fd);
	close(fd);
}

static const struct io_case cases[] = {
	IO_CASE("fionread", fionread), IO_CASE("after-partial", after_partial),
	{0},
};

int main(int argc, char **argv)
{
	io_init(argc, argv);
	io_run(cases);
	return io_summary();
}
