/* The epoll registry: what the program registered, per (epfd, fd).
 *
 * The kernel does not say which epoll sets hold an fd, nor with what
 * events and data; tlsshim needs both to translate the interest of an fd
 * whose handshake is pending and to wake edge-triggered waiters when it
 * completes. Recorded for every epoll_ctl once a policy is loaded (an fd
 * may be registered before its connect makes it ours); forgotten on DEL
 * and on close(fd). Plain data: no I/O, one mutex. */
#ifndef TS_EPREG_H
#define TS_EPREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ts_epreg_ent {
	int epfd, fd;
	uint32_t events; /* as the program asked (EPOLLET, EPOLLONESHOT...) */
	uint64_t data;   /* epoll_data as a u64 */
};

/* In a forked child: the lock a vanished thread may have held. */
void ts_epreg_child_reset(void);

/* Number of registrations recorded: 0 lets close() skip the registry. */
size_t ts_epreg_count(void);

/* add and mod both set the entry (mod of an unknown pair records it);
 * out of memory loses the record, never the program's call. */
void ts_epreg_add(int epfd, int fd, uint32_t events, uint64_t data);
void ts_epreg_mod(int epfd, int fd, uint32_t events, uint64_t data);
void ts_epreg_del(int epfd, int fd);
/* fd was closed: the kernel dropped its registrations. */
void ts_epreg_forget_fd(int fd);

/* The program's registration of (epfd, fd); false when none. */
bool ts_epreg_get(int epfd, int fd, struct ts_epreg_ent *out);
/* Copies of fd's registrations (any epfd), at most max; returns the
 * number of registrations (may exceed max). */
size_t ts_epreg_of_fd(int fd, struct ts_epreg_ent *out, size_t max);
/* cb on each registration in epfd, with the registry locked: cb must not
 * call back into the registry nor take locks. */
void ts_epreg_foreach(int epfd,
                      void (*cb)(const struct ts_epreg_ent *e, void *ctx),
                      void *ctx);

#endif
