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
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 64

struct raw_loop {
	int epfd;
	int stop;
};

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
	*loopp = l;
	return 0;
}

static void raw_loop_free(void *loop)
{
	struct raw_loop *l = loop;

	close(l->epfd);
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

static int raw_run(void *loop, int once)
{
	struct raw_loop *l = loop;
	struct epoll_event evs[MAX_EVENTS];

	l->stop = 0;
	do {
		int n = epoll_wait(l->epfd, evs, MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct raw_io *w = evs[i].data.ptr;

			w->cb(w->arg);
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
};
