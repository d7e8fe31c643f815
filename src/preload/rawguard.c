/* The marked window of raw calls (see rawguard.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "rawguard.h"
#include "real.h"
#include "sys.h"

__thread struct ts_raw_slot ts_raw_slot
	__attribute__((tls_model("initial-exec"))) = {.fd = -1};
bool ts_raw_fence;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ts_raw_slot *head;
static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool expedited;

static void unregister(void *p)
{
	struct ts_raw_slot *s = p;
	pthread_mutex_lock(&reg_lock);
	if (s->prev)
		s->prev->next = s->next;
	else
		head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->registered = false;
	pthread_mutex_unlock(&reg_lock);
}

static void init(void)
{
	int saved = errno;
	long q = ts_sys3(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	pthread_key_create(&key, unregister);
	expedited = q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	            ts_sys3(SYS_membarrier,
	                    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0,
	                    0) == 0;
	/* Without it, each mark pays a fence instead. */
	ts_raw_fence = !expedited;
	errno = saved;
}

void ts_raw_register(struct ts_raw_slot *s)
{
	int saved = errno;

	pthread_once(&once, init);
	pthread_mutex_lock(&reg_lock);
	s->tid = (pid_t)ts_sys3(SYS_gettid, 0, 0, 0);
	s->prev = NULL;
	s->next = head;
	if (head)
		head->prev = s;
	head = s;
	s->registered = true;
	pthread_mutex_unlock(&reg_lock);
	pthread_setspecific(key, s);
	errno = saved;
}

/* Whether thread tid is inside a system call now: it has resolved its fd
 * to the file it names at entry. */
static bool in_kernel(pid_t tid)
{
	char path[64], buf[32];
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = REAL(read)(fd, buf, sizeof buf - 1);
	REAL(close)(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "running" is user space (or this very read); a number is a
	 * system call; -1 is blocked outside one. */
	return buf[0] >= '0' && buf[0] <= '9';
}

void ts_raw_quiesce(int fd, long ms)
{
	int saved = errno;
	pid_t me = (pid_t)ts_sys3(SYS_gettid, 0, 0, 0);

	/* Nobody has marked a call yet: no window can be open. */
	if (!__atomic_load_n(&head, __ATOMIC_ACQUIRE))
		return;
	if (expedited)
		(void)ts_sys3(SYS_membarrier,
		              MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	else
		atomic_thread_fence(memory_order_seq_cst);
	long long end = ts_now_ms() + ms;
	pthread_mutex_lock(&reg_lock);
	for (struct ts_raw_slot *s = head; s; s = s->next) {
		if (s->tid == me)
			continue;
		unsigned seq = atomic_load(&s->seq);
		while (atomic_load(&s->depth) && atomic_load(&s->fd) == fd &&
		       atomic_load(&s->seq) == seq && !in_kernel(s->tid)) {
			if (ts_now_ms() >= end) {
				ts_warn("fd %d: thread %d is still between "
				        "deciding and making a call on it",
				        fd, (int)s->tid);
				break;
			}
			struct timespec t = {0, 100000};
			nanosleep(&t, NULL);
		}
	}
	pthread_mutex_unlock(&reg_lock);
	errno = saved;
}

void ts_raw_child_reset(void)
{
	/* Only this thread exists here; the others' slots are copies. */
	pthread_mutex_init(&reg_lock, NULL);
	struct ts_raw_slot *s = &ts_raw_slot;
	head = NULL;
	if (s->registered) {
		s->next = s->prev = NULL;
		s->tid = (pid_t)ts_sys3(SYS_gettid, 0, 0, 0);
		head = s;
	}
}
