/* syscall(2): programs that make socket calls through syscall() bypass
 * every libc hook. The calls that could move data on, create, copy or
 * end an upgraded connection are routed through our hooks (and execve
 * through exec's swap); io_uring_setup is refused where the policy
 * upgrades anything (its I/O never passes a hook); the calls that give up
 * access the policy may need (a new root, other credentials) load it
 * first and then go through as asked (a raw setuid changes one thread,
 * glibc's every thread: not ours to change); every other system call
 * passes through untouched. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <errno.h>
#include <linux/aio_abi.h>
#include <spawn.h>

#include "conn.h"
#include "hooks.h"
#include "log.h"
#include "real.h"

/* io_submit(2): kernel AIO works on sockets and passes no hook. */
static bool aio_refused(long nr, struct iocb **v)
{
	for (long i = 0; v && i < nr && i < 4096; i++)
		if (v[i] && ts_fd_peek((int)v[i]->aio_fildes)) {
			ts_error("io_submit on fd %u: kernel AIO cannot go "
			         "through a TLS session; refused",
			         v[i]->aio_fildes);
			errno = EOPNOTSUPP;
			return true;
		}
	return false;
}

/* io_uring's submissions never pass a hook: where the policy upgrades
 * anything, its setup is refused (io-uring = allow permits it), as is
 * every setup under a policy that failed to load. Programs that make the
 * system call themselves (liburing does) are out of reach: README. */
static bool ts_io_uring_refused(void)
{
	static atomic_flag said = ATOMIC_FLAG_INIT;
	const struct ts_policy *p;
	bool upgrades = false;

	ts_state_init();
	p = ts_state.policy;
	for (size_t i = 0; p && !p->io_uring_allow && i < p->nrules; i++)
		upgrades |= !p->rules[i].plaintext;
	if (!upgrades && !ts_state.failed)
		return false;
	if (!atomic_flag_test_and_set(&said))
		ts_error("io_uring_setup refused: its I/O would bypass TLS "
		         "(io-uring = allow in the policy permits it)");
	errno = ENOSYS;
	return true;
}

#define A(i) ((long)a[i])
#define P(i) ((void *)a[i])

/* Longer than a door should be, on purpose: the switch is the routing
 * table, one case per system call, read whole (and by
 * tests/check-hooks.sh); split, it would hide which calls are routed. */
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
	case SYS_accept:
		return accept((int)A(0), P(1), P(2));
	case SYS_accept4:
		return accept4((int)A(0), P(1), P(2), (int)A(3));
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
	case SYS_pwritev2:
		/* x86-64 passes the offset whole in the low word. */
		return pwritev2((int)A(0), P(1), (int)A(2), (off_t)A(3),
		                (int)A(5));
	case SYS_preadv2:
		return preadv2((int)A(0), P(1), (int)A(2), (off_t)A(3),
		               (int)A(5));
	case SYS_recvmmsg:
		return recvmmsg((int)A(0), P(1), (unsigned)A(2), (int)A(3),
		                P(4));
	case SYS_close_range:
		return close_range((unsigned)A(0), (unsigned)A(1), (int)A(2));
	case SYS_fcntl:
		return fcntl((int)A(0), (int)A(1), A(2));
	case SYS_ioctl:
		return ioctl((int)A(0), (unsigned long)A(1), A(2));
	case SYS_execve:
		return execve(P(0), P(1), P(2));
	case SYS_execveat:
		return execveat((int)A(0), P(1), P(2), P(3), (int)A(4));
	case SYS_io_submit:
		if (aio_refused(A(1), P(2)))
			return -1;
		break;
	case SYS_io_uring_setup:
		if (ts_io_uring_refused())
			return -1;
		break;
	case SYS_sendfile:
		return sendfile((int)A(0), (int)A(1), P(2), (size_t)A(3));
	case SYS_splice:
		return splice((int)A(0), P(1), (int)A(2), P(3), (size_t)A(4),
		              (unsigned)A(5));
	case SYS_chroot:
	case SYS_pivot_root:
		ts_state_keep_access(true);
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
		ts_state_keep_access(false);
		break;
	default:
		break;
	}
	return REAL(syscall)(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
