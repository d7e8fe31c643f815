/* The epoll registry (src/preload/epreg.c): add/mod/del, per-fd and per-epfd
 * views, close forgetting an fd everywhere, many entries in one bucket. */
#include <stdio.h>
#include <stdlib.h>

#include "epreg.h"

static int fails;
#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, \
			        #cond);                                    \
			fails++;                                           \
		}                                                          \
	} while (0)

static void count_cb(const struct ts_epreg_ent *e, void *ctx)
{
	(void)e;
	(*(int *)ctx)++;
}

int main(void)
{
	struct ts_epreg_ent e, v[8];
	int n;

	CHECK(ts_epreg_count() == 0);
	CHECK(!ts_epreg_get(3, 7, &e));
	ts_epreg_add(3, 7, 0x4, 77);
	ts_epreg_add(4, 7, 0x1, 78);
	ts_epreg_add(3, 8, 0x5, 88);
	CHECK(ts_epreg_count() == 3);
	CHECK(ts_epreg_get(3, 7, &e) && e.events == 0x4 && e.data == 77);
	ts_epreg_mod(3, 7, 0x80000004u, 99);
	CHECK(ts_epreg_get(3, 7, &e) && e.events == 0x80000004u &&
	      e.data == 99);
	CHECK(ts_epreg_count() == 3);
	CHECK(ts_epreg_of_fd(7, v, 8) == 2);
	CHECK(ts_epreg_of_fd(7, v, 1) == 2); /* counts beyond max */
	n = 0;
	ts_epreg_foreach(3, count_cb, &n);
	CHECK(n == 2);
	ts_epreg_del(3, 8);
	CHECK(!ts_epreg_get(3, 8, &e));
	ts_epreg_del(3, 8); /* unknown: no-op */
	CHECK(ts_epreg_count() == 2);
	ts_epreg_forget_fd(7); /* close(7): gone from every set */
	CHECK(ts_epreg_count() == 0);
	CHECK(ts_epreg_of_fd(7, v, 8) == 0);
	/* Same bucket (fd modulo the table size), distinct entries. */
	for (int i = 0; i < 50; i++)
		ts_epreg_add(5, 3 + i * 1024, (unsigned)i, (unsigned)i);
	CHECK(ts_epreg_count() == 50);
	CHECK(ts_epreg_get(5, 3 + 49 * 1024, &e) && e.data == 49);
	ts_epreg_forget_fd(3 + 1024);
	CHECK(ts_epreg_count() == 49);
	CHECK(ts_epreg_get(5, 3, &e) && e.data == 0);
	if (fails)
		return 1;
	printf("epreg: ok\n");
	return 0;
}
