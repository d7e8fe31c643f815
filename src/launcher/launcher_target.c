/* Refusing targets the preload cannot reach (see launcher.h).
 *
 * COMMAND is resolved like execvp and followed through its #! chain, and
 * through env(1) (which may also drop the variables), to the ELF program
 * that really runs. It is refused when the preload would not be in it, or
 * would not see its connections — each time the program would otherwise
 * run with its connections in plaintext, or not run for a reason nobody
 * could guess:
 *  - another ELF class or machine than the preload (a 32-bit program and a
 *    64-bit preload): glibc's loader skips the preload with a warning and
 *    runs the program;
 *  - statically linked (no PT_INTERP): no loader runs at all;
 *  - another program interpreter than the loader the launcher, built with
 *    the preload, runs under (musl's, a bundled one);
 *  - a Go program, static or dynamic, with cgo or not: Go's runtime makes
 *    its own system calls for connect, read and write;
 *  - env told to clear the environment, or to unset or set LD_PRELOAD or
 *    TLSSHIM_POLICY.
 * A setuid, setgid or file-capability program is flagged (*unprotected):
 * in secure-execution mode the loader ignores a LD_PRELOAD with a path.
 *
 * Only program headers are trusted (the kernel runs a file by them;
 * section headers may be stripped), and every read is bounded. */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "launcher.h"

/* The kernel follows at most 4 #! levels; env steps come on top. */
#define MAX_CHAIN 8
/* The kernel reads at most 64 KiB of program headers. */
#define MAX_PHDRS_SIZE 65536
/* Go's buildinfo sits in the first kilobytes of the writable data (or
 * after .data with external linking); 16 MiB bounds the scan. */
#define GO_SCAN_MAX (16u << 20)
#define NOTE_MAX 4096
/* cmd/link: the "Go" note of type 4 carries the Go build ID. */
#define GO_NOTE_BUILDID 4

static const char go_magic[14] = "\xff Go buildinf:";

/* What an ELF file is built for. */
struct elf_kind {
	unsigned char cls, data;
	unsigned machine;
};

struct elf {
	struct elf_kind kind;
	size_t phnum;
	Elf64_Phdr *ph; /* 32-bit headers are widened */
};

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

static bool full_pread(int fd, void *buf, size_t len, uint64_t off)
{
	return off <= (uint64_t)INT64_MAX - len &&
	       pread(fd, buf, len, (off_t)off) == (ssize_t)len;
}

/* 1 an ELF file (kind filled in), 0 not ELF. */
static int elf_kind(int fd, struct elf_kind *k)
{
	unsigned char h[EI_NIDENT + 4];

	if (!full_pread(fd, h, sizeof h, 0) || memcmp(h, ELFMAG, SELFMAG))
		return 0;
	k->cls = h[EI_CLASS];
	k->data = h[EI_DATA];
	/* e_machine follows e_type, in the file's own byte order. */
	k->machine = k->data == ELFDATA2MSB ? (unsigned)h[18] << 8 | h[19]
	                                    : (unsigned)h[19] << 8 | h[18];
	return 1;
}

static bool same_kind(const struct elf_kind *a, const struct elf_kind *b)
{
	return a->cls == b->cls && a->data == b->data &&
	       a->machine == b->machine;
}

static void describe_kind(const struct elf_kind *k, char *out, size_t len)
{
	static const struct { unsigned em; const char *name; } names[] = {
		{EM_386, "i386"}, {EM_X86_64, "x86-64"}, {EM_ARM, "arm"},
		{EM_AARCH64, "aarch64"}, {EM_RISCV, "riscv"},
		{EM_PPC, "powerpc"}, {EM_PPC64, "powerpc64"},
		{EM_S390, "s390"}, {EM_MIPS, "mips"},
	};
	const char *name = NULL;

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].em == k->machine)
			name = names[i].name;
	snprintf(out, len, "%s%s %s (machine %u)",
	         k->cls == ELFCLASS64 ? "64-bit" :
	         k->cls == ELFCLASS32 ? "32-bit" : "unknown-class",
	         k->data == ELFDATA2MSB ? " big-endian" :
	         k->data == ELFDATA2LSB ? "" : " unknown-byte-order",
	         name ? name : "unknown", k->machine);
}

/* Program headers of a file of the preload's own kind (so in this
 * process's byte order): 0, or -1 for a file the kernel would not run. */
static int elf_load(int fd, const struct elf_kind *k, struct elf *e)
{
	union {
		Elf64_Ehdr e64;
		Elf32_Ehdr e32;
	} eh;
	bool wide = k->cls == ELFCLASS64;
	uint64_t phoff;
	size_t entsize, phnum;
	unsigned char *raw = NULL;
	int rv = -1;

	e->ph = NULL;
	if (!full_pread(fd, &eh, wide ? sizeof eh.e64 : sizeof eh.e32, 0))
		goto err;
	phoff = wide ? eh.e64.e_phoff : eh.e32.e_phoff;
	entsize = wide ? eh.e64.e_phentsize : eh.e32.e_phentsize;
	phnum = wide ? eh.e64.e_phnum : eh.e32.e_phnum;
	if (entsize != (wide ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)))
		goto err;
	if (phnum == 0 || phnum * entsize > MAX_PHDRS_SIZE)
		goto err;
	raw = malloc(phnum * entsize);
	e->ph = calloc(phnum, sizeof *e->ph);
	if (!raw || !e->ph || !full_pread(fd, raw, phnum * entsize, phoff))
		goto err;
	for (size_t i = 0; i < phnum; i++) {
		Elf64_Phdr *p = &e->ph[i];
		if (wide) {
			memcpy(p, raw + i * entsize, sizeof *p);
		} else {
			Elf32_Phdr q;
			memcpy(&q, raw + i * entsize, sizeof q);
			*p = (Elf64_Phdr){
				.p_type = q.p_type, .p_flags = q.p_flags,
				.p_offset = q.p_offset, .p_vaddr = q.p_vaddr,
				.p_paddr = q.p_paddr, .p_filesz = q.p_filesz,
				.p_memsz = q.p_memsz, .p_align = q.p_align,
			};
		}
	}
	e->phnum = phnum;
	rv = 0;
err:
	free(raw);
	if (rv < 0) {
		free(e->ph);
		e->ph = NULL;
	}
	return rv;
}

static const Elf64_Phdr *elf_find(const struct elf *e, uint32_t type)
{
	for (size_t i = 0; i < e->phnum; i++)
		if (e->ph[i].p_type == type)
			return &e->ph[i];
	return NULL;
}

/* The "Go" build-ID note, in a PT_NOTE segment. */
static bool go_note(int fd, const Elf64_Phdr *p)
{
	unsigned char n[NOTE_MAX];
	size_t len = p->p_filesz < sizeof n ? p->p_filesz : sizeof n;
	size_t align = p->p_align == 8 ? 8 : 4;

	if (!full_pread(fd, n, len, p->p_offset))
		return false;
	for (size_t o = 0; o + 12 <= len;) {
		uint32_t namesz, descsz, type;
		memcpy(&namesz, n + o, 4);
		memcpy(&descsz, n + o + 4, 4);
		memcpy(&type, n + o + 8, 4);
		if (namesz > len || descsz > len)
			break;
		if (namesz == 4 && type == GO_NOTE_BUILDID && o + 16 <= len &&
		    !memcmp(n + o + 12, "Go\0\0", 4))
			return true;
		o += 12 + ((namesz + align - 1) & ~(align - 1)) +
		     ((descsz + align - 1) & ~(align - 1));
	}
	return false;
}

/* Go's build information: the magic at a 16-byte aligned address,
 * followed by the pointer size (4 or 8). The linker puts it in writable,
 * non-executable data — where Go's own debug/buildinfo looks when there
 * is no .go.buildinfo section. */
static bool go_buildinfo(int fd, const Elf64_Phdr *p, size_t *budget)
{
	static unsigned char chunk[1 << 16];
	uint64_t off = p->p_offset + (16 - p->p_vaddr % 16) % 16;
	uint64_t end = p->p_offset + p->p_filesz;

	if (end < p->p_offset)
		return false;
	/* Chunks start at aligned addresses and hold whole 16-byte slots:
	 * the magic never straddles two reads. */
	while (off + 16 <= end && *budget >= 16) {
		size_t n = sizeof chunk;
		if (n > end - off)
			n = (size_t)(end - off) & ~(size_t)15;
		if (n > *budget)
			n = *budget & ~(size_t)15;
		if (!full_pread(fd, chunk, n, off))
			return false;
		for (size_t i = 0; i + 16 <= n; i += 16)
			if (!memcmp(chunk + i, go_magic, sizeof go_magic) &&
			    (chunk[i + 14] == 4 || chunk[i + 14] == 8))
				return true;
		off += n;
		*budget -= n;
	}
	return false;
}

static bool is_go(int fd, const struct elf *e)
{
	size_t budget = GO_SCAN_MAX;

	for (size_t i = 0; i < e->phnum; i++) {
		const Elf64_Phdr *p = &e->ph[i];
		if (p->p_type == PT_NOTE && go_note(fd, p))
			return true;
		if (p->p_type == PT_LOAD &&
		    (p->p_flags & (PF_W | PF_X)) == PF_W &&
		    go_buildinfo(fd, p, &budget))
			return true;
	}
	return false;
}

static int interp_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_INTERP)
			snprintf(data, PATH_MAX, "%s",
			         (const char *)(info->dlpi_addr +
			                        info->dlpi_phdr[i].p_vaddr));
	return 1; /* the first object is the program itself */
}

/* What a program needs for the preload to be loaded into it. */
struct need {
	struct elf_kind kind; /* the preload's */
	char loader[PATH_MAX]; /* the launcher's own interpreter */
	struct stat loader_st;
};

static int need_init(struct need *nd, const char *preload, char *why,
                     size_t whylen)
{
	struct statvfs vfs;
	int fd = open(preload, O_RDONLY | O_CLOEXEC);
	int elf = fd >= 0 ? elf_kind(fd, &nd->kind) : -1;

	if (fd >= 0)
		close(fd);
	if (elf != 1) {
		snprintf(why, whylen, "the preload %s: %s", preload,
		         elf < 0 ? strerror(errno) : "not an ELF file");
		return -1;
	}
	/* The loader cannot map it from there, and skips it. */
	if (statvfs(preload, &vfs) == 0 && (vfs.f_flag & ST_NOEXEC)) {
		snprintf(why, whylen, "the preload %s is on a noexec mount: "
		         "the loader would skip it and connections would stay "
		         "plaintext", preload);
		return -1;
	}
	nd->loader[0] = '\0';
	dl_iterate_phdr(interp_cb, nd->loader);
	if (!nd->loader[0] || stat(nd->loader, &nd->loader_st) < 0) {
		snprintf(why, whylen, "cannot tell the system's dynamic loader");
		return -1;
	}
	return 0;
}

#define UNREACHABLE \
	": LD_PRELOAD cannot reach it, its connections would stay " \
	"plaintext; use a TLS tunnel"

/* 0 when the preload reaches the ELF program at path; else -1 and why. */
static int check_elf(int fd, const char *path, const struct elf_kind *k,
                     const struct need *nd, char *why, size_t whylen)
{
	struct elf e = {0};
	char interp[PATH_MAX], a[80], b[80];
	struct stat st;
	int rv = -1;

	if (!same_kind(k, &nd->kind)) {
		describe_kind(k, a, sizeof a);
		describe_kind(&nd->kind, b, sizeof b);
		snprintf(why, whylen, "%s is built for %s and the preload for "
		         "%s: the loader skips a preload of another kind"
		         UNREACHABLE, path, a, b);
		return -1;
	}
	if (elf_load(fd, k, &e) < 0) {
		snprintf(why, whylen, "%s: malformed ELF program headers",
		         path);
		return -1;
	}
	const Elf64_Phdr *pi = elf_find(&e, PT_INTERP);
	if (is_go(fd, &e)) {
		snprintf(why, whylen, "%s is a Go program: Go makes its own "
		         "system calls (with cgo too), so LD_PRELOAD cannot see "
		         "its connections and they would stay plaintext; use a "
		         "TLS tunnel", path);
	} else if (!pi) {
		snprintf(why, whylen, "%s is %s" UNREACHABLE, path,
		         elf_find(&e, PT_DYNAMIC)
		                 ? "static-pie (no program interpreter)"
		                 : "statically linked (no dynamic section)");
	} else if (pi->p_filesz < 2 || pi->p_filesz > sizeof interp ||
	           !full_pread(fd, interp, pi->p_filesz, pi->p_offset) ||
	           interp[pi->p_filesz - 1] != '\0') {
		snprintf(why, whylen, "%s: malformed program interpreter",
		         path);
	} else if (stat(interp, &st) < 0 || st.st_dev != nd->loader_st.st_dev ||
	           st.st_ino != nd->loader_st.st_ino) {
		snprintf(why, whylen, "%s asks for the program interpreter %s, "
		         "not the dynamic loader the preload is built for (%s)"
		         UNREACHABLE, path, interp, nd->loader);
	} else {
		rv = 0;
	}
	free(e.ph);
	return rv;
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

/* The words env(1) was given; -S splits one into more, kept in split
 * (never overwritten: earlier words may point there). */
struct words {
	char *w[64];
	int n, i;
	char split[PATH_MAX];
	size_t used;
	bool cut; /* more words than w holds */
};

static bool loses_preload(const char *name, size_t len)
{
	return (len == 10 && !strncmp(name, "LD_PRELOAD", 10)) ||
	       (len == 14 && !strncmp(name, "TLSSHIM_POLICY", 14));
}

/* env -S STRING: its words take the place of STRING. */
static int split_words(struct words *ws, const char *s)
{
	char *rest[64], *buf = ws->split + ws->used;
	size_t len = strlen(s);
	int nrest = 0;
	bool cmd = false;

	if (len >= sizeof ws->split - ws->used)
		return -1;
	memcpy(buf, s, len + 1);
	ws->used += len + 1;
	while (ws->i < ws->n)
		rest[nrest++] = ws->w[ws->i++];
	ws->n = ws->i = 0;
	for (char *save, *t = strtok_r(buf, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		/* env -S also reads quotes, escapes and ${VAR}: fine in the
		 * command's arguments, not before. */
		if ((!cmd && strpbrk(t, "'\"\\$")) || ws->n == 64)
			return -1;
		cmd |= t[0] != '-' && !strchr(t, '=');
		ws->w[ws->n++] = t;
	}
	for (int i = 0; i < nrest; i++) {
		if (ws->n == 64) {
			ws->cut = true;
			break;
		}
		ws->w[ws->n++] = rest[i];
	}
	return 0;
}

/* The argument of option w if it is -X or --long (NULL if it is neither):
 * "-Xarg", "--long=arg", or the next word. */
static const char *opt_arg(struct words *ws, const char *w, const char *x,
                           const char *lng)
{
	size_t l = strlen(lng);

	if (!strcmp(w, x) || !strcmp(w, lng))
		return ws->i < ws->n ? ws->w[ws->i++] : "";
	if (!strncmp(w, x, 2) && w[2])
		return w + 2;
	if (!strncmp(w, lng, l) && w[l] == '=')
		return w + l + 1;
	return NULL;
}

/* The command env(1) runs with these words: 1 and its name in *cmd, 0 when
 * it runs none, -1 when it would drop the preload or cannot be read. */
static int env_command(struct words *ws, const char **cmd, char *why,
                       size_t whylen)
{
	static const char *const flags[] = {
		"-0", "--null", "-v", "--debug", "--default-signal",
		"--ignore-signal", "--block-signal", "--list-signal-handling",
	};

	while (ws->i < ws->n) {
		const char *w = ws->w[ws->i++], *eq = strchr(w, '='), *v = NULL;
		bool known = false;

		if (!strcmp(w, "--"))
			break;
		if (w[0] != '-' && !eq) {
			ws->i--;
			break;
		}
		if (w[0] != '-' ? loses_preload(w, (size_t)(eq - w)) :
		    !strcmp(w, "-") || !strcmp(w, "-i") ||
		    !strcmp(w, "--ignore-environment") ||
		    ((v = opt_arg(ws, w, "-u", "--unset")) &&
		     loses_preload(v, strlen(v)))) {
			bool sep = v && v == ws->w[ws->i - 1] && v != w;
			snprintf(why, whylen, "env %s%s%s would drop the "
			         "preload or its policy (LD_PRELOAD, "
			         "TLSSHIM_POLICY): the program it runs would "
			         "talk plaintext", w, sep ? " " : "",
			         sep ? v : "");
			return -1;
		}
		if (w[0] != '-' || v)
			continue;
		if ((v = opt_arg(ws, w, "-S", "--split-string"))) {
			if (split_words(ws, v) < 0) {
				snprintf(why, whylen, "cannot tell which "
				         "program env -S '%s' runs", v);
				return -1;
			}
			continue;
		}
		if (opt_arg(ws, w, "-C", "--chdir"))
			continue;
		for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
			size_t l = strlen(flags[f]);
			known |= !strncmp(w, flags[f], l) &&
			         (!w[l] || (w[1] == '-' && w[l] == '='));
		}
		if (!known) {
			snprintf(why, whylen, "cannot tell which program env "
			         "runs with '%s'", w);
			return -1;
		}
	}
	if (ws->i >= ws->n && ws->cut) {
		snprintf(why, whylen, "cannot tell which program env runs: "
		         "too many arguments");
		return -1;
	}
	if (ws->i >= ws->n)
		return 0;
	*cmd = ws->w[ws->i++];
	return 1;
}

/* Not an ELF file: the interpreter of its #! line (execvp hands a file
 * without one to /bin/sh), and that line's argument in ws. */
static int shebang(int fd, const char *path, char *interp, size_t len,
                   struct words *ws, char *why, size_t whylen)
{
	static char head[PATH_MAX + 2];
	ssize_t n = pread(fd, head, sizeof head - 1, 0);

	ws->n = ws->i = 0;
	ws->used = 0;
	ws->cut = false;
	if (n < 2 || head[0] != '#' || head[1] != '!') {
		snprintf(interp, len, "/bin/sh");
		return 0;
	}
	head[n] = '\0';
	char *s = head + 2, *e;
	s += strspn(s, " \t");
	e = s + strcspn(s, " \t\n");
	char *arg = e + strspn(e, " \t");
	arg[strcspn(arg, "\n")] = '\0';
	for (size_t l = strlen(arg); l && strchr(" \t", arg[l - 1]); l--)
		arg[l - 1] = '\0';
	*e = '\0';
	if (!*s) {
		snprintf(why, whylen, "%s: empty #! line", path);
		return -1;
	}
	snprintf(interp, len, "%s", s);
	/* The kernel passes the rest of the line as one argument, then the
	 * script: what env sees. */
	if (*arg)
		ws->w[ws->n++] = arg;
	ws->w[ws->n++] = (char *)path;
	return 0;
}

int ts_launcher_check_target(char *const argv[], const char *preload,
                             bool *unprotected, char *why, size_t whylen)
{
	static char paths[MAX_CHAIN + 1][PATH_MAX];
	struct need nd;
	struct words ws = {0};

	*unprotected = false;
	if (need_init(&nd, preload, why, whylen) < 0)
		return -1;
	if (resolve(argv[0], paths[0], PATH_MAX) < 0) {
		bool nf = errno == ENOENT;
		snprintf(why, whylen, "%s: %s", argv[0],
		         nf ? "command not found" : strerror(errno));
		return nf ? -2 : -1;
	}
	for (int i = 1; argv[i]; i++) {
		if (ws.n == 64) {
			ws.cut = true;
			break;
		}
		ws.w[ws.n++] = argv[i];
	}
	for (int depth = 0; depth < MAX_CHAIN; depth++) {
		const char *path = paths[depth], *base = strrchr(path, '/');
		char *next = paths[depth + 1];
		const char *cmd;
		struct elf_kind k;
		struct stat st;
		int rv, fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || fstat(fd, &st) < 0) {
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (unprotected_file(fd, &st))
			*unprotected = true;
		if (!elf_kind(fd, &k)) {
			rv = shebang(fd, path, next, PATH_MAX, &ws, why,
			             whylen);
			close(fd);
			if (rv < 0)
				return -1;
			continue;
		}
		rv = check_elf(fd, path, &k, &nd, why, whylen);
		close(fd);
		if (rv < 0 || strcmp(base ? base + 1 : path, "env"))
			return rv;
		/* env runs another program, found in PATH like ours. */
		rv = env_command(&ws, &cmd, why, whylen);
		if (rv <= 0)
			return rv;
		if (resolve(cmd, next, PATH_MAX) < 0) {
			snprintf(why, whylen, "%s runs %s: %s", path, cmd,
			         strerror(errno));
			return -1;
		}
	}
	snprintf(why, whylen, "%s: interpreter chain too deep", argv[0]);
	return -1;
}
