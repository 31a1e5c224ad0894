/* SPDX-License-Identifier: MIT */
/*
 * contender_raw_epoll.c - a minimal hand-written epoll loop: the reference
 * that every ratio in evq-bench is taken against.
 *
 * It is the least a loop can do: the watcher's pointer rides in
 * epoll_event.data, start and stop are one epoll_ctl each (no change
 * list, so a stop and start in one iteration cost two syscalls), and the
 * dispatch has no guard against an event of a watcher that an earlier
 * callback of the same batch stopped. Real libraries pay for that guard,
 * for timers and for fairness; the gap to this file is what they pay.
 *
 * Timers (the timers workload only) are the least a loop can do too: a
 * 4-ary min-heap of (deadline, timer) pairs, deadlines counted from the
 * loop's time cached at its last wakeup (as libev and libuv do; read anew
 * when the first timer is armed), and
 * epoll_wait's millisecond timeout, rounded up. Without a timer armed the
 * loop reads no clock, so the readiness workloads do not pay for them:
 * one test of the heap's length per iteration.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64

struct raw_timer;

struct raw_heap_entry {
	uint64_t deadline;
	struct raw_timer *t;
};

struct raw_loop {
	int epfd;
	int stop;
	unsigned heap_len, heap_cap;
	struct raw_heap_entry *heap;
	uint64_t now;		/* ns, at the last wakeup with timers */
};

struct raw_timer {
	struct raw_loop *loop;
	unsigned idx;		/* heap position + 1; 0: not armed */
	bench_timer_cb cb;
	void *arg;
};

static uint64_t raw_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct raw_io {
	struct raw_loop *loop;
	int fd;
	bench_cb cb;
	void *arg;
};

static int raw_loop_new(const struct bench_contender *c, void **loopp)
{
	struct raw_loop *l = calloc(1, sizeof(*l));

	(void)c;
	if (l == NULL)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int err = -errno;

		free(l);
		return err;
	}
	l->now = raw_clock();
	*loopp = l;
	return 0;
}

static void raw_loop_free(void *loop)
{
	struct raw_loop *l = loop;

	close(l->epfd);
	free(l->heap);
	free(l);
}

static int raw_io_start(void *io)
{
	struct raw_io *w = io;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };

	return epoll_ctl(w->loop->epfd, EPOLL_CTL_ADD, w->fd, &ev) ? -errno : 0;
}

static int raw_io_stop(void *io)
{
	struct raw_io *w = io;

	return epoll_ctl(w->loop->epfd, EPOLL_CTL_DEL, w->fd, NULL) ? -errno : 0;
}

static int raw_io_new(void *loop, int fd, bench_cb cb, void *arg, void **iop)
{
	struct raw_io *w = malloc(sizeof(*w));
	int err;

	if (w == NULL)
		return -ENOMEM;
	*w = (struct raw_io){ .loop = loop, .fd = fd, .cb = cb, .arg = arg };
	err = raw_io_start(w);
	if (err) {
		free(w);
		return err;
	}
	*iop = w;
	return 0;
}

static void raw_io_free(void *io)
{
	raw_io_stop(io);	/* ENOENT when already stopped: fine */
	free(io);
}

/* ------------------------------------------------------------------------
 * Timers: a 4-ary min-heap
 * ------------------------------------------------------------------------ */

static void heap_set(struct raw_heap_entry *h, unsigned i,
		     struct raw_heap_entry e)
{
	h[i] = e;
	e.t->idx = i + 1;
}

static void sift_up(struct raw_heap_entry *h, unsigned i)
{
	struct raw_heap_entry e = h[i];

	while (i > 0 && e.deadline < h[(i - 1) / 4].deadline) {
		heap_set(h, i, h[(i - 1) / 4]);
		i = (i - 1) / 4;
	}
	heap_set(h, i, e);
}

static void sift_down(struct raw_heap_entry *h, unsigned len, unsigned i)
{
	struct raw_heap_entry e = h[i];

	for (;;) {
		unsigned c = 4 * i + 1, end = c + 4 < len ? c + 4 : len;
		unsigned best = i;
		uint64_t bd = e.deadline;

		for (; c < end; c++) {
			if (h[c].deadline < bd) {
				best = c;
				bd = h[c].deadline;
			}
		}
		if (best == i)
			break;
		heap_set(h, i, h[best]);
		i = best;
	}
	heap_set(h, i, e);
}

static void heap_del(struct raw_loop *l, struct raw_timer *t)
{
	unsigned i = t->idx - 1;

	t->idx = 0;
	if (--l->heap_len == i)
		return;
	l->heap[i] = l->heap[l->heap_len];
	if (i > 0 && l->heap[i].deadline < l->heap[(i - 1) / 4].deadline)
		sift_up(l->heap, i);
	else
		sift_down(l->heap, l->heap_len, i);
}

static int raw_timer_new(void *loop, bench_timer_cb cb, void *arg, void **tp)
{
	struct raw_timer *t = malloc(sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	*t = (struct raw_timer){ .loop = loop, .cb = cb, .arg = arg };
	*tp = t;
	return 0;
}

static int raw_timer_start(void *tp, uint64_t after_ns)
{
	struct raw_timer *t = tp;
	struct raw_loop *l = t->loop;

	if (l->heap_len == 0)
		l->now = raw_clock();	/* not kept up to date without timers */
	if (l->heap_len == l->heap_cap) {
		unsigned cap = l->heap_cap ? 2 * l->heap_cap : 64;
		struct raw_heap_entry *h =
			realloc(l->heap, cap * sizeof(*h));

		if (h == NULL)
			return -ENOMEM;
		l->heap = h;
		l->heap_cap = cap;
	}
	l->heap[l->heap_len] = (struct raw_heap_entry){ l->now + after_ns, t };
	sift_up(l->heap, l->heap_len++);
	return 0;
}

static int raw_timer_stop(void *tp)
{
	struct raw_timer *t = tp;

	if (t->idx)
		heap_del(t->loop, t);
	return 0;
}

static void raw_timer_free(void *tp)
{
	raw_timer_stop(tp);
	free(tp);
}

/* epoll_wait's timeout to the first deadline, ms rounded up. */
static int raw_timeout(struct raw_loop *l)
{
	uint64_t now = raw_clock(), d = l->heap[0].deadline;

	if (d <= now)
		return 0;
	d = (d - now + 999999) / 1000000;
	return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

static void raw_timers_run(struct raw_loop *l)
{
	l->now = raw_clock();
	while (l->heap_len && l->heap[0].deadline <= l->now) {
		struct raw_timer *t = l->heap[0].t;

		heap_del(l, t);
		t->cb(t->arg);
	}
}

static int raw_run(void *loop, int once)
{
	struct raw_loop *l = loop;
	struct epoll_event evs[MAX_EVENTS];
	int timeout = l->heap_len ? raw_timeout(l) : -1;

	l->stop = 0;
	do {
		int n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout);

		if (n < 0) {
			if (errno != EINTR)
				return -errno;
			n = 0;
		}
		for (int i = 0; i < n; i++) {
			struct raw_io *w = evs[i].data.ptr;

			w->cb(w->arg);
		}
		/* One test per iteration when no timer is armed. */
		timeout = -1;
		if (l->heap_len) {
			raw_timers_run(l);
			if (l->heap_len)
				timeout = raw_timeout(l);
		}
	} while (!once && !l->stop);
	return 0;
}

static void raw_break(void *loop)
{
	((struct raw_loop *)loop)->stop = 1;
}

const struct bench_contender bench_raw_epoll = {
	.name = "raw-epoll",
	.backend = "epoll",
	.loop_new = raw_loop_new,
	.loop_free = raw_loop_free,
	.io_new = raw_io_new,
	.io_stop = raw_io_stop,
	.io_start = raw_io_start,
	.io_free = raw_io_free,
	.run = raw_run,
	.break_loop = raw_break,
	.timer_new = raw_timer_new,
	.timer_start = raw_timer_start,
	.timer_stop = raw_timer_stop,
	.timer_free = raw_timer_free,
};
