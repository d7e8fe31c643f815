/* Binding the real libc functions when one cannot be bound: the one line
 * real.c writes then must reach stderr without any hook. This program
 * links the preload's own libraries, hooks included (its syscall() is
 * tlsshim's), and dlsym is wrapped (-Wl,--wrap=dlsym) to find no
 * "write". A complaint written through syscall() went into the write
 * hook, which bound the table again from inside the binding: a hang in
 * pthread_once. The watchdog turns a hang into a failure. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "real.h"
#include "sys.h"
#include "check.h"

void *__real_dlsym(void *handle, const char *name);

static const char *missing = "write";

void *__wrap_dlsym(void *handle, const char *name)
{
	if (missing && !strcmp(name, missing))
		return NULL;
	return __real_dlsym(handle, name);
}

static void hung(int sig)
{
	static const char msg[] = "FAIL: binding the real functions hung\n";
	(void)sig;
	/* Not write(): that name is unbound here. */
	(void)!fputs(msg, stdout);
	fflush(stdout);
	_exit(1);
}

int main(void)
{
	char path[] = "/tmp/tlsshim-test-real-XXXXXX", buf[256] = "";
	int fd = mkstemp(path);
	/* Until the table is bound, fds move by system calls: fcntl() and
	 * dup2() here are hooks, which would bind it first. */
	int saved = (int)ts_sys3(SYS_fcntl, 2, F_DUPFD_CLOEXEC, 3);

	if (fd < 0 || saved < 0)
		return 1;
	signal(SIGALRM, hung);
	alarm(10);
	/* stderr into the file: the complaint goes to fd 2. */
	(void)ts_sys3(SYS_dup3, fd, 2, 0);
	ts_real_bind();
	(void)ts_sys3(SYS_dup3, saved, 2, 0);
	alarm(0);

	CHECK(ts_real.write == NULL, "write was bound");
	CHECK(ts_real.read != NULL && ts_real.close != NULL &&
	              ts_real.syscall != NULL,
	      "the other functions are bound");
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	CHECK(!strcmp(buf, "tlsshim: error: cannot bind libc function write\n"),
	      "stderr got '%s'", buf);
	/* The hook passes a call it does not route straight to libc. */
	CHECK(syscall(SYS_getpid) == getpid(), "syscall(SYS_getpid)");
	close(fd);
	unlink(path);
	return check_summary();
}
