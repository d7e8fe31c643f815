/* syscall(2): programs that make socket calls through syscall() bypass
 * every libc hook. The calls that could move data on, or create, an
 * upgraded connection are routed through our hooks; the calls that give
 * up access the policy may need (a new root, other credentials) load it
 * first and then go through as asked (a raw setuid changes one thread,
 * glibc's every thread: not ours to change); every other system call
 * passes through untouched. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

#define A(i) ((long)a[i])
#define P(i) ((void *)a[i])

TS_EXPORT long syscall(long n, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, n);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	switch (n) {
	case SYS_connect:
		return connect((int)A(0), P(1), (socklen_t)A(2));
	case SYS_sendto:
		return sendto((int)A(0), P(1), (size_t)A(2), (int)A(3), P(4),
		              (socklen_t)A(5));
	case SYS_sendmsg:
		return sendmsg((int)A(0), P(1), (int)A(2));
	case SYS_sendmmsg:
		return sendmmsg((int)A(0), P(1), (unsigned)A(2), (int)A(3));
	case SYS_write:
		return write((int)A(0), P(1), (size_t)A(2));
	case SYS_writev:
		return writev((int)A(0), P(1), (int)A(2));
	case SYS_read:
		return read((int)A(0), P(1), (size_t)A(2));
	case SYS_readv:
		return readv((int)A(0), P(1), (int)A(2));
	case SYS_recvfrom:
		return recvfrom((int)A(0), P(1), (size_t)A(2), (int)A(3),
		                P(4), P(5));
	case SYS_recvmsg:
		return recvmsg((int)A(0), P(1), (int)A(2));
	case SYS_close:
		return close((int)A(0));
	case SYS_shutdown:
		return shutdown((int)A(0), (int)A(1));
	case SYS_dup:
		return dup((int)A(0));
	case SYS_dup2:
		return dup2((int)A(0), (int)A(1));
	case SYS_dup3:
		return dup3((int)A(0), (int)A(1), (int)A(2));
	case SYS_sendfile:
		return sendfile((int)A(0), (int)A(1), P(2), (size_t)A(3));
	case SYS_splice:
		return splice((int)A(0), P(1), (int)A(2), P(3), (size_t)A(4),
		              (unsigned)A(5));
	case SYS_chroot:
	case SYS_pivot_root:
		ts_priv_prepare(true);
		break;
	case SYS_unshare:
	case SYS_setns:
	case SYS_setuid:
	case SYS_setgid:
	case SYS_setreuid:
	case SYS_setregid:
	case SYS_setresuid:
	case SYS_setresgid:
	case SYS_setgroups:
	case SYS_setfsuid:
	case SYS_setfsgid:
	case SYS_capset:
		ts_priv_prepare(false);
		break;
	default:
		break;
	}
	return REAL(syscall)(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
