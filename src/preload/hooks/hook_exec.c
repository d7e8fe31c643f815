/* exec and spawn. An upgraded fd without FD_CLOEXEC would reach the new
 * program as a bare socket that carries the TLS stream but not its
 * session: its first write would go out raw. So for each such fd the new
 * program gets a closed socket in its place (and one error line says why);
 * this process keeps its session (conn_fd.c). glibc's exec variants and
 * system()/popen() call the kernel through internal names, so each is a
 * door of its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "conn.h"
#include "hooks.h"
#include "real.h"

static bool none(void)
{
	return !atomic_load_explicit(&ts_fd_live, memory_order_relaxed);
}

/* r = call, with the numbers swapped (or marked) for its length. */
#define AROUND_HOW(what, mark, r, call)                                    \
	do {                                                               \
		struct ts_exec_save s_;                                    \
		ts_conn_exec_prepare(&s_, what, mark);                     \
		r = call;                                                  \
		int e_ = errno;                                            \
		ts_conn_exec_restore(&s_);                                 \
		errno = e_;                                                \
	} while (0)
#define AROUND(what, r, call) AROUND_HOW(what, false, r, call)

TS_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	int r;
	if (none())
		return REAL(execve)(path, argv, envp);
	AROUND(path, r, REAL(execve)(path, argv, envp));
	return r;
}

TS_EXPORT int execv(const char *path, char *const argv[])
{
	int r;
	if (none())
		return REAL(execv)(path, argv);
	AROUND(path, r, REAL(execv)(path, argv));
	return r;
}

TS_EXPORT int execvp(const char *file, char *const argv[])
{
	int r;
	if (none())
		return REAL(execvp)(file, argv);
	AROUND(file, r, REAL(execvp)(file, argv));
	return r;
}

TS_EXPORT int execvpe(const char *file, char *const argv[],
                      char *const envp[])
{
	int r;
	if (none())
		return REAL(execvpe)(file, argv, envp);
	AROUND(file, r, REAL(execvpe)(file, argv, envp));
	return r;
}

TS_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	int r;
	if (none())
		return REAL(fexecve)(fd, argv, envp);
	AROUND("the program of fexecve()", r, REAL(fexecve)(fd, argv, envp));
	return r;
}

TS_EXPORT int execveat(int dirfd, const char *path, char *const argv[],
                       char *const envp[], int flags)
{
	int r;
	if (none())
		return REAL(execveat)(dirfd, path, argv, envp, flags);
	AROUND(path, r, REAL(execveat)(dirfd, path, argv, envp, flags));
	return r;
}

/* execl, execlp, execle: the arguments as an array, as glibc builds it
 * (on the stack: these may run in a vfork child, where malloc is not
 * safe). More than the kernel could take is E2BIG, as exec would say. */
#define ARGS_MAX (1 << 18)

static size_t count_args(const char *arg, va_list *ap)
{
	va_list aq;
	size_t n = arg ? 1 : 0;

	va_copy(aq, *ap);
	while (arg && n <= ARGS_MAX && va_arg(aq, const char *))
		n++;
	va_end(aq);
	return n;
}

enum list_exec { LIST_V, LIST_VP, LIST_VE };

/* ap is after arg: the rest of the list, its NULL, (execle) envp. */
static int exec_list(enum list_exec how, const char *path, const char *arg,
                     va_list *ap)
{
	size_t n = count_args(arg, ap);
	if (n > ARGS_MAX) {
		errno = E2BIG;
		return -1;
	}
	char *argv[n + 1];
	for (size_t i = 0; i < n; i++)
		argv[i] = i ? va_arg(*ap, char *) : (char *)arg;
	argv[n] = NULL;
	if (how == LIST_VE) {
		if (n)
			(void)va_arg(*ap, char *); /* the list's NULL */
		return execve(path, argv, va_arg(*ap, char *const *));
	}
	return how == LIST_VP ? execvp(path, argv) : execv(path, argv);
}

#define EXEC_LIST(name, how)                                               \
	TS_EXPORT int name(const char *path, const char *arg, ...)         \
	{                                                                  \
		va_list ap;                                                \
		va_start(ap, arg);                                         \
		int r = exec_list(how, path, arg, &ap);                    \
		va_end(ap);                                                \
		return r;                                                  \
	}

EXEC_LIST(execl, LIST_V)
EXEC_LIST(execlp, LIST_VP)
EXEC_LIST(execle, LIST_VE)

/* The child of posix_spawn gets a copy of this process's fd table, to
 * which its file actions (dup2 of one of our fds onto 0, say) apply:
 * the swap has to be in place in the parent while it is made. */
TS_EXPORT int posix_spawn(pid_t *pid, const char *path,
                          const posix_spawn_file_actions_t *fa,
                          const posix_spawnattr_t *attr, char *const argv[],
                          char *const envp[])
{
	int r;
	if (none())
		return REAL(posix_spawn)(pid, path, fa, attr, argv, envp);
	AROUND(path, r, REAL(posix_spawn)(pid, path, fa, attr, argv, envp));
	return r;
}

TS_EXPORT int posix_spawnp(pid_t *pid, const char *file,
                           const posix_spawn_file_actions_t *fa,
                           const posix_spawnattr_t *attr, char *const argv[],
                           char *const envp[])
{
	int r;
	if (none())
		return REAL(posix_spawnp)(pid, file, fa, attr, argv, envp);
	AROUND(file, r, REAL(posix_spawnp)(pid, file, fa, attr, argv, envp));
	return r;
}

/* system() and popen() spawn inside glibc, with no file action of the
 * program's, and system() waits for its child: FD_CLOEXEC for the length
 * of the call keeps the fds from the child and leaves them untouched
 * here. */
TS_EXPORT int system(const char *cmd)
{
	int r;
	if (none() || !cmd)
		return REAL(system)(cmd);
	AROUND_HOW("/bin/sh", true, r, REAL(system)(cmd));
	return r;
}

TS_EXPORT FILE *popen(const char *cmd, const char *mode)
{
	FILE *f;
	if (none())
		return REAL(popen)(cmd, mode);
	AROUND_HOW("/bin/sh", true, f, REAL(popen)(cmd, mode));
	return f;
}
