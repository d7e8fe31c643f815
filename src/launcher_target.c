/* Refusing targets the preload cannot reach (see launcher.h).
 *
 * A statically linked program (no PT_INTERP: the dynamic loader never runs,
 * LD_PRELOAD is never read) would silently run with plaintext. A setuid,
 * setgid or file-capability program runs in secure-execution mode, where
 * the loader ignores a LD_PRELOAD with a path: same silent plaintext. */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "launcher.h"

/* Like execvp: a name without '/' is looked up in PATH. */
static int resolve(const char *cmd, char *out, size_t len)
{
	if (strchr(cmd, '/')) {
		if ((size_t)snprintf(out, len, "%s", cmd) >= len)
			return -1;
		return access(out, X_OK) == 0 ? 0 : -1;
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/bin:/usr/bin";
	for (const char *p = path;; ) {
		const char *end = strchrnul(p, ':');
		int n = (int)(end - p);
		struct stat st;
		if ((size_t)snprintf(out, len, "%.*s/%s", n ? n : 1,
		                     n ? p : ".", cmd) < len &&
		    stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(out, X_OK) == 0)
			return 0;
		if (!*end)
			break;
		p = end + 1;
	}
	errno = ENOENT;
	return -1;
}

/* 1 dynamic, 0 static, -1 not ELF / unreadable. */
static int elf_dynamic(int fd, char *why, size_t whylen)
{
	unsigned char id[EI_NIDENT];
	bool has_interp = false, has_dynamic = false;

	if (pread(fd, id, sizeof id, 0) != (ssize_t)sizeof id ||
	    memcmp(id, ELFMAG, SELFMAG))
		return -1;
	if (id[EI_CLASS] == ELFCLASS64) {
		Elf64_Ehdr eh;
		if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh)
			return -1;
		for (unsigned i = 0; i < eh.e_phnum && i < 4096; i++) {
			Elf64_Phdr ph;
			if (pread(fd, &ph, sizeof ph,
			          (off_t)(eh.e_phoff + (Elf64_Off)i *
			                                   eh.e_phentsize)) !=
			    (ssize_t)sizeof ph)
				return -1;
			has_interp |= ph.p_type == PT_INTERP;
			has_dynamic |= ph.p_type == PT_DYNAMIC;
		}
	} else if (id[EI_CLASS] == ELFCLASS32) {
		Elf32_Ehdr eh;
		if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh)
			return -1;
		for (unsigned i = 0; i < eh.e_phnum && i < 4096; i++) {
			Elf32_Phdr ph;
			if (pread(fd, &ph, sizeof ph,
			          (off_t)(eh.e_phoff + (Elf32_Off)i *
			                                   eh.e_phentsize)) !=
			    (ssize_t)sizeof ph)
				return -1;
			has_interp |= ph.p_type == PT_INTERP;
			has_dynamic |= ph.p_type == PT_DYNAMIC;
		}
	} else {
		return -1;
	}
	if (has_interp && has_dynamic)
		return 1;
	snprintf(why, whylen, "%s",
	         has_dynamic ? "static-pie (no program interpreter)"
	                     : "statically linked (no dynamic section)");
	return 0;
}

static bool unprotected_file(int fd, const struct stat *st)
{
	if ((st->st_mode & S_ISUID) && st->st_uid != geteuid())
		return true;
	if ((st->st_mode & S_ISGID) && st->st_gid != getegid())
		return true;
	/* File capabilities also switch the loader to secure mode. */
	return fgetxattr(fd, "security.capability", NULL, 0) > 0;
}

int ts_launcher_check_target(const char *cmd, bool *unprotected,
                             char *why, size_t whylen)
{
	char path[PATH_MAX], interp[PATH_MAX];
	int depth, rv = -1;

	*unprotected = false;
	if (resolve(cmd, path, sizeof path) < 0) {
		bool nf = errno == ENOENT;
		snprintf(why, whylen, "%s: %s", cmd,
		         nf ? "command not found" : strerror(errno));
		return nf ? -2 : -1;
	}
	/* Scripts: what runs is the interpreter (a chain of at most 4). */
	for (depth = 0; depth < 5; depth++) {
		struct stat st;
		char what[256];
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (unprotected_file(fd, &st))
			*unprotected = true;
		int dyn = elf_dynamic(fd, what, sizeof what);
		if (dyn >= 0) {
			close(fd);
			if (dyn == 0) {
				snprintf(why, whylen,
				         "%s is %s: LD_PRELOAD cannot reach it, "
				         "its connections would stay plaintext; "
				         "use a TLS tunnel",
				         path, what);
				return -1;
			}
			return 0;
		}
		char head[PATH_MAX + 2];
		ssize_t n = pread(fd, head, sizeof head - 1, 0);
		close(fd);
		if (n < 2 || head[0] != '#' || head[1] != '!') {
			/* execvp hands such a file to /bin/sh. */
			snprintf(interp, sizeof interp, "/bin/sh");
		} else {
			head[n] = '\0';
			char *s = head + 2, *e;
			s += strspn(s, " \t");
			e = s + strcspn(s, " \t\n");
			*e = '\0';
			if (!*s) {
				snprintf(why, whylen, "%s: empty #! line", path);
				return -1;
			}
			snprintf(interp, sizeof interp, "%s", s);
		}
		memcpy(path, interp, sizeof path);
	}
	snprintf(why, whylen, "%s: interpreter chain too deep", cmd);
	return rv;
}
