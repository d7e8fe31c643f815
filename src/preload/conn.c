/* The connection layer (see conn.h): a connection's life, and connect.
 *
 * The rest of the layer, one concern a file: the data path (conn_io.c),
 * readiness for poll and epoll (conn_poll.c), the handshake state machine
 * (conn_async.c), closing a session (conn_close.c), fd numbers: close,
 * dup, exec (conn_fd.c), ownership across fork (conn_fork.c). What they
 * share is in conn_priv.h. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "conn_async.h"
#include "conn_priv.h"
#include "log.h"
#include "real.h"
#include "resolve.h"
#include "stdio_seal.h"

static void conn_destroy(struct ts_fdent *e)
{
	struct ts_conn *c = (struct ts_conn *)e;

	ts_conn_async_unlist(c);
	if (c->tls)
		ts_conn_eng()->destroy(c->tls);
	free(c->stage);
	free(c->peek);
	pthread_mutex_destroy(&c->send_lock);
	pthread_mutex_destroy(&c->recv_lock);
	ts_nagle_destroy(&c->nagle);
	free(c);
}

__thread pthread_mutex_t *ts_conn_held[TS_CONN_HELD_MAX];

struct ts_conn *ts_conn_new(int fd, const struct ts_rule *rule)
{
	struct ts_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	atomic_init(&c->ent.refs, 1);
	c->ent.destroy = conn_destroy;
	c->fd = fd;
	c->rule = rule;
	c->state = TS_CONN_HANDSHAKING;
	atomic_init(&c->nfds, 1);
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->recv_lock, NULL);
	ts_nagle_init(&c->nagle);
	for (int d = 0; d < 2; d++)
		atomic_init(&c->own_gen[d], ts_fork_gen());
	return c;
}

const char *ts_conn_port_note(const struct ts_conn *c, char *buf,
                              size_t len)
{
	if (!c || !c->tls_port)
		return "";
	snprintf(buf, len, " (TLS port %u)", c->tls_port);
	return buf;
}

void ts_conn_say_failed(const char *rule, const char *dest, const char *name,
                        const char *why, const struct ts_conn *c)
{
	char pn[32];

	ts_error("%s %s (%s): %s%s", rule, dest, name,
	         why && why[0] ? why : "connection failed",
	         ts_conn_port_note(c, pn, sizeof pn));
}

void ts_conn_say_verified(struct ts_conn *c)
{
	char desc[128], pn[32];

	if (ts_log_level_cur < TS_LOG_INFO)
		return;
	ts_conn_eng()->describe(c->tls, desc, sizeof desc);
	if (c->server && c->rule->client_ca_file)
		ts_info("%s: rule %s %s: %s, client verified (%s)",
		        program_invocation_short_name, c->rule->name, c->dest,
		        desc, c->name);
	else if (c->server)
		ts_info("%s: rule %s %s: %s, no client certificate asked",
		        program_invocation_short_name, c->rule->name, c->dest,
		        desc);
	else
		ts_info("%s: rule %s %s (%s): %s, verified%s",
		        program_invocation_short_name, c->rule->name, c->dest,
		        c->name, desc, ts_conn_port_note(c, pn, sizeof pn));
}

/* A number whose meaning was lost (a process copied while another thread
 * was closing or replacing it): every call on it fails, none goes raw. */
void ts_conn_tombstone(int fd)
{
	static const struct ts_rule unknown = {.name = "(unknown)"};
	struct ts_conn *c = ts_conn_new(fd, &unknown);

	if (!c)
		return;
	c->state = TS_CONN_BROKEN;
	c->broken_errno = EPIPE;
	snprintf(c->dest, sizeof c->dest, "fd %d", fd);
	if (ts_fd_install(fd, &c->ent) < 0)
		ts_error("fd %d: state lost at fork; close it", fd);
	ts_conn_put(c);
}

int ts_conn_wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - ts_now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int r = REAL(poll)(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return 1; /* let the next I/O call report it */
	}
}

void ts_conn_disconnect(int fd)
{
	struct sockaddr sa = {.sa_family = AF_UNSPEC};
	int saved = errno;
	(void)REAL(connect)(fd, &sa, sizeof sa);
	errno = saved;
}

int ts_conn_dead_socket(void)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	REAL(close)(sv[1]);
	return sv[0];
}

/* Where tlsshim cannot carry a connection, the program gets one that is
 * over: reads see end of file, writes EPIPE. shutdown() alone is not
 * enough: Linux keeps what the peer already sent readable after SHUT_RD,
 * and it ends every other fd of the same socket. So the number is pointed
 * at a socket whose peer is gone, with its own fd and status flags. If
 * that cannot be had, the kernel disconnect drops the receive queue. */
void ts_conn_make_dead(int fd)
{
	int fdfl = REAL(fcntl)(fd, F_GETFD), fl = REAL(fcntl)(fd, F_GETFL);
	int dead = ts_conn_dead_socket();

	if (dead >= 0 &&
	    REAL(dup3)(dead, fd, fdfl >= 0 && (fdfl & FD_CLOEXEC) ? O_CLOEXEC
	                                                          : 0) == fd) {
		if (fl >= 0 && (fl & O_NONBLOCK))
			(void)REAL(fcntl)(fd, F_SETFL, O_NONBLOCK);
	} else {
		ts_conn_disconnect(fd);
		(void)REAL(shutdown)(fd, SHUT_RDWR);
	}
	if (dead >= 0)
		REAL(close)(dead);
}

/* connect ------------------------------------------------------------ */

/* Every IPv4/IPv6 stream socket is in scope: TCP, MPTCP (what mptcpize
 * makes) and any other stream protocol the kernel may carry bytes on. */
static bool is_inet_stream(int fd)
{
	int type = 0;
	socklen_t l = sizeof type;

	return REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 &&
	       type == SOCK_STREAM;
}

/* What a refused connect() returns: nothing was sent. */
static int refused(int *result)
{
	errno = ECONNREFUSED;
	*result = -1;
	return 0;
}

void ts_conn_refuse_failed_policy(void)
{
	static atomic_flag said = ATOMIC_FLAG_INIT;
	if (!atomic_flag_test_and_set(&said))
		ts_error("%s; refusing every TCP connection",
		         ts_state.failed_reason);
}

static int refused_by_failed_policy(int *result)
{
	ts_conn_refuse_failed_policy();
	return refused(result);
}

/* Policy warnings the parser cannot give (it reports errors only), once
 * per rule for the first 64 rules, on every use after that. */
void ts_conn_warn_rule_once(const struct ts_rule *rule)
{
	static _Atomic uint64_t warned;
	size_t i = (size_t)(rule - ts_state.policy->rules);

	if (!rule->key_exposed && !rule->srv_key_exposed && !rule->keylog_file)
		return;
	if (i < 64) {
		uint64_t bit = (uint64_t)1 << i;
		if (atomic_fetch_or(&warned, bit) & bit)
			return;
	}
	if (rule->key_exposed)
		ts_warn("rule %s: client-key %s is readable by group or "
		        "others; chmod 600 it", rule->name, rule->client_key);
	if (rule->srv_key_exposed)
		ts_warn("rule %s: key %s is readable by group or others; "
		        "chmod 600 it", rule->name, rule->key_file);
	if (rule->keylog_file)
		ts_warn("rule %s: keylog-file %s: TLS session keys are "
		        "written there; anyone who reads it can decrypt the "
		        "traffic", rule->name, rule->keylog_file);
}

/* connect() again on an fd that is ours already. */
static int reconnect(int fd, const struct sockaddr *sa, socklen_t len,
                     int *result)
{
	struct ts_conn *old = ts_conn_get(fd);

	if (!old)
		return 1;
	if (old->async) {
		int k = ts_conn_async_reconnect(old, fd, sa, len, result);
		ts_conn_put(old);
		return k; /* 1: failed and reported; a fresh attempt */
	}
	ts_conn_put(old);
	errno = EISCONN; /* the kernel's answer */
	*result = -1;
	return 0;
}

/* What connect() to d decides, and the name the program resolved for it
 * (host rules match on it; without an sni it is the name verified). */
static void decide(struct ts_dest *d, char *learned, size_t len,
                   struct ts_decision *dec)
{
	switch (ts_resolve_lookup(d->family, d->addr,
	                          (unsigned long)gettid(), learned, len)) {
	case TS_RESOLVE_FOUND:
		d->host = learned;
		break;
	case TS_RESOLVE_LOST:
		d->host_lost = true;
		break;
	default:
		break;
	}
	ts_policy_decide(ts_state.policy, d, dec);
}

/* The blocking connect: the same state machine the program's event loop
 * drives for a non-blocking one (conn_async.c), run here. Other threads
 * meanwhile see the connection in progress, as the kernel would show it. */
static int wait_verified(struct ts_conn *c, int *result)
{
	for (;;) {
		int r = ts_conn_async_step(c);
		if (r == 0) {
			*result = 0;
			return 0;
		}
		if (r < 0) {
			ts_conn_async_abandon(c);
			return refused(result);
		}
		(void)ts_conn_wait_fd(c->fd, c->hs_want, c->hs_deadline);
	}
}

union sockaddr_in46 {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* sa with the port the rule connects to (tls-port). */
static void retarget(union sockaddr_in46 *t, const struct sockaddr *sa,
                     socklen_t len, uint16_t port)
{
	memcpy(t, sa, len < sizeof *t ? len : sizeof *t);
	if (sa->sa_family == AF_INET)
		t->in.sin_port = htons(port);
	else
		t->in6.sin6_port = htons(port);
}

/* The conn for fd as dec decided it, not installed yet; NULL: no memory. */
static struct ts_conn *conn_for(int fd, const struct ts_decision *dec,
                                const struct ts_dest *d, const char *dest)
{
	struct ts_conn *c = ts_conn_new(fd, dec->rule);

	if (!c)
		return NULL;
	snprintf(c->dest, sizeof c->dest, "%s", dest);
	snprintf(c->name, sizeof c->name, "%s", dec->name);
	c->send_sni = dec->send_sni;
	c->tls_port = dec->port != d->port ? dec->port : 0;
	int fl = REAL(fcntl)(fd, F_GETFL);
	c->nonblock = fl >= 0 && (fl & O_NONBLOCK);
	c->blocking = !c->nonblock;
	return c;
}

/* The connect is ours: the session is made and installed before the
 * kernel connect starts; then a blocking socket handshakes here, a
 * non-blocking one returns EINPROGRESS (conn_async.c). */
static int upgrade(int fd, const struct sockaddr *sa, socklen_t len,
                   const struct ts_dest *d, const char *dest,
                   const struct ts_decision *dec, int *result)
{
	const struct ts_rule *rule = dec->rule;
	union sockaddr_in46 target;
	struct ts_conn *c = NULL;
	char why[512] = "";

	ts_debug("%s: rule %s, verifying %s (%s)", dest, rule->name, dec->name,
	         dec->name_from == TS_NAME_SNI ? "sni from the rule" :
	         dec->name_from == TS_NAME_LEARNED ? "name the program resolved" :
	                                             "IP literal, no SNI sent");
	ts_conn_warn_rule_once(rule);
	retarget(&target, sa, len, dec->port);
	if (!ts_engine_get(why, sizeof why))
		goto fail;
	if (!(c = conn_for(fd, dec, d, dest))) {
		snprintf(why, sizeof why, "out of memory");
		goto fail;
	}
	/* A stdio stream made on this fd before now would write around the
	 * session: it fails from here on instead. */
	ts_stdio_seal(fd, rule->name, c->dest);
	if (ts_conn_async_start(c, &target.sa, len, why, sizeof why) < 0)
		goto fail;
	if (c->nonblock) {
		ts_conn_put(c); /* the table holds it now */
		*result = -1;
		errno = EINPROGRESS;
		return 0;
	}
	int rv = wait_verified(c, result);
	ts_conn_put(c);
	return rv;
fail:
	ts_conn_say_failed(rule->name, dest, dec->name, why, c);
	if (c)
		ts_conn_put(c);
	return refused(result);
}

/* Where the kernel really connects: Linux takes the unspecified address
 * (0.0.0.0, ::, ::ffff:0.0.0.0) as the socket's own bound address, else
 * loopback. Matched as written, a connect to 0.0.0.0 would reach
 * 127.0.0.1 past a rule for it, in plaintext. */
static void kernel_target(int fd, struct ts_dest *d)
{
	static const uint8_t zero[16];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	struct ts_dest own;

	if (memcmp(d->addr, zero, d->family == AF_INET ? 4 : 16) != 0)
		return;
	bool own_ok = getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	              ts_dest_from_sockaddr((struct sockaddr *)&ss, sl, &own) ==
	                      0 &&
	              own.family == d->family &&
	              memcmp(own.addr, zero, own.family == AF_INET ? 4 : 16);
	if (d->family == AF_INET && own_ok) {
		memcpy(d->addr, own.addr, 4);
	} else if (d->family == AF_INET) {
		static const uint8_t lo4[4] = {127, 0, 0, 1};
		memcpy(d->addr, lo4, 4);
	} else {
		/* IPv6: loopback (tcp_v6_connect), v4-mapped loopback on
		 * a socket bound to a v4-mapped address. */
		sl = sizeof ss;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
		    ts_dest_from_sockaddr((struct sockaddr *)&ss, sl, &own) ==
		            0 &&
		    own.mapped) {
			static const uint8_t lo4[4] = {127, 0, 0, 1};
			d->family = AF_INET;
			d->mapped = true;
			memset(d->addr, 0, sizeof d->addr);
			memcpy(d->addr, lo4, 4);
		} else {
			memset(d->addr, 0, sizeof d->addr);
			d->addr[15] = 1;
		}
	}
}

int ts_conn_connect(int fd, const struct sockaddr *sa, socklen_t len,
                    int *result)
{
	char dest[TS_DEST_STR_MAX], learned[TS_RESOLVE_NAME_MAX];
	struct ts_decision dec;
	struct ts_dest d;

	if (!sa || ts_dest_from_sockaddr(sa, len, &d) < 0)
		return 1;
	kernel_target(fd, &d);
	ts_state_init();
	if (ts_state.failed)
		return is_inet_stream(fd) ? refused_by_failed_policy(result) : 1;
	if (!ts_state.policy)
		return 1;
	ts_dest_format(&d, dest, sizeof dest);
	decide(&d, learned, sizeof learned, &dec);
	if (dec.verdict == TS_VERDICT_PASS) {
		ts_debug("%s: %s; not upgraded", dest,
		         dec.rule ? "rule with tls = no" : "no rule matches");
		return 1;
	}
	if (!is_inet_stream(fd))
		return 1;
	if (dec.verdict == TS_VERDICT_REFUSE) {
		ts_error("%s %s: refused: %s",
		         dec.rule ? dec.rule->name : "unmatched", dest, dec.why);
		return refused(result);
	}
	if (ts_fd_peek(fd) && reconnect(fd, sa, len, result) == 0)
		return 0;
	/* A number reused without passing through our close. */
	ts_conn_purge(fd);
	return upgrade(fd, sa, len, &d, dest, &dec, result);
}

/* What other layers ask of a connection -------------------------------- */

void ts_conn_set_nonblock(struct ts_conn *c, bool on)
{
	c->nonblock = on;
}

int ts_conn_tcp_getsockopt(struct ts_conn *c, int fd, int opt, void *val,
                           socklen_t *len)
{
	return ts_nagle_getsockopt(&c->nagle, fd, opt, val, len);
}

int ts_conn_tcp_setsockopt(struct ts_conn *c, int fd, int opt,
                           const void *val, socklen_t len)
{
	return ts_nagle_setsockopt(&c->nagle, fd, opt, val, len);
}

void ts_conn_set_io_fd(struct ts_conn *c, int fd)
{
	if (c->tls)
		ts_conn_eng()->set_io_fd(c->tls, fd);
}

void ts_conn_child_reset(struct ts_conn *c)
{
	const struct ts_engine *eng = ts_conn_eng();

	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->recv_lock, NULL);
	ts_nagle_child_reset(&c->nagle);
	if (c->tls && eng)
		eng->child_reset(c->tls);
}

void ts_conn_alias(int newfd, struct ts_conn *c)
{
	atomic_fetch_add(&c->nfds, 1);
	ts_stdio_seal(newfd, c->rule->name, c->dest);
	if (ts_fd_install(newfd, &c->ent) < 0) {
		/* Out of memory: the new fd must not carry plaintext. */
		atomic_fetch_sub(&c->nfds, 1);
		ts_error("%s %s: cannot track duplicated fd %d; closing it",
		         c->rule->name, c->dest, newfd);
		ts_conn_make_dead(newfd);
	}
}

void ts_conn_purge(int fd)
{
	struct ts_fdent *e = ts_fd_remove(fd);
	if (!e)
		return;
	struct ts_conn *c = (struct ts_conn *)e;
	ts_debug("fd %d reused: forgetting %s %s", fd, c->rule->name, c->dest);
	(void)ts_conn_drop_fd(c, -1);
	ts_fdent_put(e);
}
