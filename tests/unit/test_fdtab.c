/* The fd table: lookups, references, removal, iteration, limits. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "fdtab.h"
#include "check.h"

struct ent {
	struct ts_fdent e;
	int destroyed;
};

static int destroyed_total;

static void destroy(struct ts_fdent *e)
{
	((struct ent *)e)->destroyed++;
	destroyed_total++;
}

static void ent_init(struct ent *x)
{
	atomic_init(&x->e.refs, 1);
	x->e.destroy = destroy;
	x->destroyed = 0;
}

static int seen[8], nseen;
static void collect(int fd, struct ts_fdent *e, void *ctx)
{
	(void)e;
	(void)ctx;
	if (nseen < 8)
		seen[nseen++] = fd;
}

int main(void)
{
	struct ent a, b;
	ent_init(&a);
	ent_init(&b);

	/* An empty table answers without looking. */
	CHECK(ts_fd_get(3) == NULL);
	CHECK(atomic_load(&ts_fd_live) == 0);

	CHECK(ts_fd_install(3, &a.e) == 0);
	CHECK(ts_fd_install(3, &b.e) == -1); /* occupied */
	CHECK(ts_fd_install(-1, &b.e) == -1);
	CHECK(ts_fd_install(1 << 21, &b.e) == -1); /* beyond the limit */
	CHECK(atomic_load(&ts_fd_live) == 1);

	/* Lookups: only the installed fd, other numbers in the same and in
	 * other chunks are not ours. */
	struct ts_fdent *g = ts_fd_get(3);
	CHECK(g == &a.e);
	CHECK(atomic_load(&a.e.refs) == 3); /* creator, table, lookup */
	ts_fdent_put(g);
	CHECK(ts_fd_get(4) == NULL);
	CHECK(ts_fd_get(5000) == NULL);
	CHECK(ts_fd_get(-7) == NULL);

	/* Two fd numbers may name one entry (dup). */
	CHECK(ts_fd_install(1500, &a.e) == 0);
	CHECK(ts_fd_install(9, &b.e) == 0);
	nseen = 0;
	ts_fd_foreach(0, ~0u, collect, NULL);
	CHECK(nseen == 3 && seen[0] == 3 && seen[1] == 9 && seen[2] == 1500);
	nseen = 0;
	ts_fd_foreach(4, 1499, collect, NULL);
	CHECK(nseen == 1 && seen[0] == 9);

	/* Removal hands back the table's reference; the entry lives until
	 * the last reference goes. */
	struct ts_fdent *r = ts_fd_remove(3);
	CHECK(r == &a.e);
	CHECK(ts_fd_get(3) == NULL);
	CHECK(ts_fd_remove(3) == NULL);
	ts_fdent_put(r);
	CHECK(a.destroyed == 0);
	ts_fdent_put(ts_fd_remove(1500));
	CHECK(a.destroyed == 0); /* the creator still holds it */
	ts_fdent_put(&a.e);
	CHECK(a.destroyed == 1);

	ts_fdent_put(ts_fd_remove(9));
	ts_fdent_put(&b.e);
	CHECK(b.destroyed == 1);
	CHECK(atomic_load(&ts_fd_live) == 0);
	CHECK(destroyed_total == 2);
	ts_fdent_put(NULL); /* accepted */

	return check_summary();
}
