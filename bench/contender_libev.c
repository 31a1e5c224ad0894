/* SPDX-License-Identifier: MIT */
/*
 * contender_libev.c - libev (4.x) on its epoll backend.
 *
 * EVFLAG_NOENV keeps LIBEV_FLAGS from changing the backend behind the
 * benchmark's back. libev batches watcher changes in a change list and
 * applies them in the next ev_run iteration, so a stop and start of the
 * same watcher within one iteration may cost no syscall at all.
 *
 * Timers are ev_timer (a 4-ary heap in libev's default build); a delay is
 * counted from ev_now(), the loop's time cached at its last wakeup, so
 * starting one reads no clock.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>

#include <ev.h>

struct libev_io {
	ev_io w;
	struct ev_loop *loop;
	bench_cb cb;
	void *arg;
};

static int libev_loop_new(const struct bench_contender *c, void **loopp)
{
	struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);

	(void)c;
	if (loop == NULL)
		return -ENOSYS;
	if (ev_backend(loop) != EVBACKEND_EPOLL) {
		ev_loop_destroy(loop);
		return -ENOSYS;
	}
	*loopp = loop;
	return 0;
}

static void libev_loop_free(void *loop)
{
	ev_loop_destroy(loop);
}

static void libev_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct libev_io *io = (struct libev_io *)w;

	(void)loop;
	(void)revents;
	io->cb(io->arg);
}

static int libev_io_start(void *iop)
{
	struct libev_io *io = iop;

	ev_io_start(io->loop, &io->w);
	return 0;
}

static int libev_io_stop(void *iop)
{
	struct libev_io *io = iop;

	ev_io_stop(io->loop, &io->w);
	return 0;
}

static int libev_io_new(void *loop, int fd, bench_cb cb, void *arg, void **iop)
{
	struct libev_io *io = malloc(sizeof(*io));

	if (io == NULL)
		return -ENOMEM;
	io->loop = loop;
	io->cb = cb;
	io->arg = arg;
	ev_io_init(&io->w, libev_cb, fd, EV_READ);
	ev_io_start(loop, &io->w);
	*iop = io;
	return 0;
}

static void libev_io_free(void *iop)
{
	libev_io_stop(iop);
	free(iop);
}

struct libev_timer {
	ev_timer w;
	struct ev_loop *loop;
	bench_timer_cb cb;
	void *arg;
};

static void libev_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct libev_timer *t = (struct libev_timer *)w;

	(void)loop;
	(void)revents;
	t->cb(t->arg);
}

static int libev_timer_new(void *loop, bench_timer_cb cb, void *arg,
			   void **tp)
{
	struct libev_timer *t = malloc(sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	t->loop = loop;
	t->cb = cb;
	t->arg = arg;
	ev_timer_init(&t->w, libev_timer_cb, 0., 0.);
	*tp = t;
	return 0;
}

static int libev_timer_start(void *tp, uint64_t after_ns)
{
	struct libev_timer *t = tp;

	ev_timer_set(&t->w, (ev_tstamp)after_ns / 1e9, 0.);
	ev_timer_start(t->loop, &t->w);
	return 0;
}

static int libev_timer_stop(void *tp)
{
	struct libev_timer *t = tp;

	ev_timer_stop(t->loop, &t->w);
	return 0;
}

static void libev_timer_free(void *tp)
{
	libev_timer_stop(tp);
	free(tp);
}

static int libev_run(void *loop, int once)
{
	ev_run(loop, once ? EVRUN_ONCE : 0);
	return 0;
}

static void libev_break(void *loop)
{
	ev_break(loop, EVBREAK_ALL);
}

const struct bench_contender bench_libev = {
	.name = "libev",
	.backend = "epoll",
	.loop_new = libev_loop_new,
	.loop_free = libev_loop_free,
	.io_new = libev_io_new,
	.io_stop = libev_io_stop,
	.io_start = libev_io_start,
	.io_free = libev_io_free,
	.run = libev_run,
	.break_loop = libev_break,
	.timer_new = libev_timer_new,
	.timer_start = libev_timer_start,
	.timer_stop = libev_timer_stop,
	.timer_free = libev_timer_free,
};
