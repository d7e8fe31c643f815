/* A plain TCP client for tests/30-tool-launcher.bats: connects to
 * 127.0.0.1:PORT through libc and writes MARK. No headers, so it also
 * builds as a 32-bit program where no 32-bit libc headers are installed
 * (-DNO_START: without start files either), and with musl-gcc. */
struct sin {
	unsigned short family, port;
	unsigned addr;
	char zero[8];
};

int socket(int, int, int);
int connect(int, const void *, unsigned);
long write(int, const void *, unsigned long);
void exit(int);

int main(void)
{
	static const char mark[] = MARK "\n";
	/* Network byte order on a little-endian machine. */
	struct sin a = {2, (PORT & 0xff) << 8 | PORT >> 8, 0x0100007f, {0}};
	int fd = socket(2, 1, 0);

	if (fd < 0 || connect(fd, &a, sizeof a) < 0)
		return 1;
	return write(fd, mark, sizeof mark - 1) == sizeof mark - 1 ? 0 : 1;
}

#ifdef NO_START
__attribute__((force_align_arg_pointer)) void _start(void)
{
	exit(main());
}
#endif
