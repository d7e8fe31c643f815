/* The policy: parsed once from an INI file into an immutable object.
 *
 * Nothing here knows hooks or GnuTLS. Trust material named by the policy is
 * read into memory while parsing, so a missing file is a load-time error with
 * its file:line:col, never a surprise at connect time. */
#ifndef TS_POLICY_H
#define TS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log_level.h" /* src/common */

enum ts_match_kind {
	TS_MATCH_PORT,     /* PORT or PORT-PORT, any address */
	TS_MATCH_ADDR,     /* IP:PORT, [IPv6]:PORT, CIDR:PORT */
	TS_MATCH_HOST,     /* host.name:PORT (exact, lower case) */
	TS_MATCH_WILDCARD, /* *.domain:PORT: any name below domain */
};

struct ts_match {
	enum ts_match_kind kind;
	uint16_t port_lo, port_hi; /* inclusive */
	int family;                /* AF_INET or AF_INET6 for TS_MATCH_ADDR */
	uint8_t addr[16];          /* network order; v4 in the first 4 bytes */
	unsigned prefix;           /* significant bits of addr */
	char *host;                /* HOST: the name; WILDCARD: ".domain" */
};

struct ts_blob {
	unsigned char *data;
	size_t len;
};

struct ts_rule {
	char *name;
	unsigned line;
	struct ts_match *matches;
	size_t nmatches;
	char *sni;          /* name sent and verified; NULL: see conn layer */
	char *ca_file;      /* as written, resolved against the policy's dir */
	struct ts_blob ca;  /* PEM bytes; data == NULL: the system store */
	uint16_t tls_port;  /* 0: the port the program asked for */
	/* Verification in depth (docs/verification.md). */
	char *crl_file;           /* as written, resolved */
	struct ts_blob crl;       /* PEM bytes; NULL: no CRL */
	uint8_t (*pins)[32];      /* pin-sha256: SHA-256 of an SPKI */
	size_t npins;
	char *client_cert;        /* PEM file, or a pkcs11: URL */
	struct ts_blob cert;      /* PEM bytes; NULL for a pkcs11: URL */
	char *client_key;         /* PEM file, or a pkcs11: URL */
	struct ts_blob key;       /* PEM bytes; NULL for a pkcs11: URL */
	bool key_exposed;         /* key file readable by group or others */
	unsigned min_version;     /* 12 or 13 (TLS 1.2, 1.3); 0: 12 */
	unsigned max_version;     /* 12 or 13; 0: 13 */
	char *priority;           /* expert GnuTLS priority string */
	char **alpn;              /* protocols offered, in order */
	size_t nalpn;
	bool alpn_required;       /* refuse a server that selects none */
	char *keylog_file;        /* opt-in NSS key log; NULL: none */
	bool plaintext;           /* tls = no: an explicit plaintext exception */
	/* Server rules (accept): matches are the local addresses the
	 * program accepts on; the program's peers are the TLS clients. */
	bool server;
	char *cert_file;          /* server certificate chain (PEM) */
	struct ts_blob srv_cert;
	char *key_file;           /* its key (PEM) */
	struct ts_blob srv_key;
	bool srv_key_exposed;
	char *client_ca_file;     /* require a client certificate from it */
	struct ts_blob client_ca;
	char **client_names;      /* allowed identities: DNS or URI SANs */
	size_t nclient_names;
	uint8_t (*client_pins)[32]; /* allowed client keys (SPKI SHA-256) */
	size_t nclient_pins;
};

enum ts_log_dest {
	TS_LOG_TO_STDERR = 0, /* default */
	TS_LOG_TO_SYSLOG = 1, /* log = syslog */
};

struct ts_policy {
	char *path;
	enum ts_log_level log_level;
	unsigned handshake_timeout_ms;
	struct ts_rule *rules;
	size_t nrules;
	enum ts_log_dest log_dest; /* log = stderr | syslog */
	char *log_file; /* log-file, resolved; replaces stderr; or NULL */
	bool unmatched_refuse; /* unmatched = refuse: default deny */
	bool io_uring_allow;   /* io-uring = allow */
};

/* A destination as seen at connect(): address and port, and the host name
 * the program resolved for that address when known (NULL otherwise).
 * Built by ts_dest_from_sockaddr(), the one address normaliser: an IPv4
 * address reached through a v4-mapped IPv6 one is AF_INET here. */
struct ts_dest {
	int family;         /* AF_INET or AF_INET6 */
	uint8_t addr[16];   /* network order; v4 in the first 4 bytes */
	uint16_t port;      /* host order */
	uint32_t scope_id;  /* IPv6 interface index, 0 if none */
	bool mapped;        /* reached as ::ffff:a.b.c.d */
	const char *host;   /* lower case, no trailing dot, or NULL */
	/* The program resolved this address from a name that a host rule
	 * may match, but that name is no longer known: undecidable. */
	bool host_lost;
};

struct sockaddr;

/* Read a connect() address as the kernel does (AF_INET from 16 bytes,
 * AF_INET6 from 24: the scope id is read only when 28 are given). 0 and
 * d filled for an IPv4/IPv6 address the kernel would accept, else -1. */
int ts_dest_from_sockaddr(const struct sockaddr *sa, size_t len,
                          struct ts_dest *d);

#define TS_DEST_IP_MAX 64   /* "ffff:...%4294967295" and the NUL */
#define TS_DEST_STR_MAX 80  /* "[ip%scope]:65535" */
/* The IP literal of d without the scope (what a certificate's IP address
 * is compared with), and d as "ip:port" or "[ip%scope]:port" for logs. */
void ts_dest_ip(const struct ts_dest *d, char *buf, size_t len);
void ts_dest_format(const struct ts_dest *d, char *buf, size_t len);

/* What happens to a connect to dest: the one decision the preload acts
 * on and the launcher's --explain and --probe report. */
enum ts_verdict {
	TS_VERDICT_PASS,    /* not ours: the kernel's connect, untouched */
	TS_VERDICT_UPGRADE, /* TLS with rule, verifying name */
	TS_VERDICT_REFUSE,  /* refused before any byte is sent: why */
};

enum ts_name_from {
	TS_NAME_SNI,     /* the rule's sni */
	TS_NAME_LEARNED, /* the name the program resolved for the address */
	TS_NAME_LITERAL, /* the IP literal: checked against IP SANs */
};

struct ts_decision {
	enum ts_verdict verdict;
	const struct ts_rule *rule; /* the rule that matched, or NULL */
	const char *why;            /* REFUSE: the reason */
	enum ts_name_from name_from;
	char name[256];             /* UPGRADE: the name verified */
	bool send_sni;              /* UPGRADE: name is sent as SNI */
	uint16_t port;              /* UPGRADE: the port connected to */
};

/* Pure: p may be NULL (no policy: everything passes). */
void ts_policy_decide(const struct ts_policy *p, const struct ts_dest *d,
                      struct ts_decision *out);

/* Called once per error, with "path:line:col: message" (no newline); an
 * error about the whole file (unreadable, over 1 MiB) is "path: message". */
typedef void (*ts_policy_diag_fn)(void *ctx, const char *msg);

/* How the parser reads files: the policy, and the trust material it
 * names. Inside the preload read and close are its own hooks, so it hands
 * in the real ones (ts_policy_load_io); the launcher, the tests and
 * ts_policy_load use libc's. */
struct stat;
struct ts_policy_io {
	int (*open)(const char *path, int flags, ...);
	int (*fstat)(int fd, struct stat *st);
	ssize_t (*read)(int fd, void *buf, size_t len);
	int (*close)(int fd);
};

/* Parse a policy. On any error returns NULL; every error is passed to diag
 * (which may be NULL) and the first one is copied into err. */
struct ts_policy *ts_policy_load(const char *path, ts_policy_diag_fn diag,
                                 void *ctx, char *err, size_t errlen);
struct ts_policy *ts_policy_load_io(const struct ts_policy_io *io,
                                    const char *path, ts_policy_diag_fn diag,
                                    void *ctx, char *err, size_t errlen);
struct ts_policy *ts_policy_parse(const char *path, const char *buf,
                                  size_t len, ts_policy_diag_fn diag,
                                  void *ctx, char *err, size_t errlen);
void ts_policy_free(struct ts_policy *p);

/* Pure: the first server rule (accept) whose entries fit the local address
 * a connection was accepted on, or NULL. */
const struct ts_rule *ts_policy_accept(const struct ts_policy *p,
                                       const struct ts_dest *local);
/* Pure: whether any rule is a server rule. */
bool ts_policy_serves(const struct ts_policy *p);

/* Pure: whether a client-name pattern (a DNS name, *.domain, or a URI)
 * allows name (lower-cased DNS names; URIs compared as they are). */
bool ts_client_name_fits(const char *pattern, const char *name);

/* Pure: the first client rule whose match list fits dest, or NULL. */
const struct ts_rule *ts_policy_match(const struct ts_policy *p,
                                      const struct ts_dest *dest);
bool ts_match_fits(const struct ts_match *m, const struct ts_dest *dest);
/* Pure: whether a host or wildcard match of some rule names host (lower
 * case, no trailing dot), on any port. */
bool ts_policy_names_host(const struct ts_policy *p, const char *host);

/* The keys the parser accepts, for the documentation test: the name of
 * the i-th and whether it is global; NULL past the last. */
const char *ts_policy_key(size_t i, bool *global);

#endif
