/* Connections tlsshim serves (accept rules): see conn.h. An accepted
 * connection whose local address a server rule matches is installed as a
 * TLS server session before accept() returns it; the handshake itself
 * runs in the program's later calls on the fd (conn_async.c), so a slow
 * client never stalls the accept loop, and no byte of the client's
 * reaches the program, nor one of the program's the client, before the
 * client is verified. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "conn_async.h"
#include "conn_priv.h"
#include "log.h"
#include "real.h"

/* 1: d is the address; 0: not an IPv4/IPv6 one (a local socket, never
 * ours); -1: the kernel would not say. */
static int addr_of(int fd, bool peer, struct ts_dest *d)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
	             : getsockname(fd, (struct sockaddr *)&ss, &len);
	if (r < 0)
		return -1;
	return ts_dest_from_sockaddr((struct sockaddr *)&ss, len, d) == 0;
}

void ts_conn_accepted(int fd)
{
	struct ts_dest local, peer;
	char l[TS_DEST_STR_MAX], p[TS_DEST_STR_MAX], why[512] = "";
	int saved = errno;

	const struct ts_rule *rule = NULL;
	ts_state_init();
	if (!ts_state.serves && !ts_state.failed)
		goto out;
	int k = addr_of(fd, false, &local);
	if (k == 0)
		goto out;
	if (ts_state.failed) {
		/* A policy that did not load might have served this one:
		 * the program gets a connection that is over. */
		ts_conn_refuse_failed_policy();
		ts_conn_make_dead(fd);
		goto out;
	}
	if (k < 0) {
		/* Whether a rule serves it cannot be told: not served in
		 * plaintext either. */
		snprintf(l, sizeof l, "?");
		snprintf(p, sizeof p, "?");
		snprintf(why, sizeof why, "its local address is unknown (%s)",
		         strerror(errno));
		goto fail;
	}
	rule = ts_policy_accept(ts_state.policy, &local);
	if (!rule)
		goto out;
	ts_conn_warn_rule_once(rule);
	ts_dest_format(&local, l, sizeof l);
	if (addr_of(fd, true, &peer) != 1)
		snprintf(p, sizeof p, "?");
	else
		ts_dest_format(&peer, p, sizeof p);
	/* A number reused without passing through our close. */
	ts_conn_purge(fd);
	struct ts_conn *c = ts_conn_new(fd, rule);
	if (!c) {
		snprintf(why, sizeof why, "out of memory");
		goto fail;
	}
	snprintf(c->dest, sizeof c->dest, "%s -> %s", p, l);
	snprintf(c->name, sizeof c->name, "TLS client"); /* until verified */
	int fl = REAL(fcntl)(fd, F_GETFL);
	c->nonblock = fl >= 0 && (fl & O_NONBLOCK);
	if (ts_conn_async_serve(c, why, sizeof why) < 0) {
		ts_conn_put(c);
		goto fail;
	}
	ts_debug("%s: rule %s: serving TLS", c->dest, rule->name);
	ts_conn_put(c); /* the table holds it now */
	goto out;
fail:
	/* The program must not serve this client in plaintext: it sees a
	 * connection that is over. */
	ts_error("%s %s -> %s: %s", rule ? rule->name : "accept", p, l, why);
	ts_conn_make_dead(fd);
out:
	errno = saved;
}
