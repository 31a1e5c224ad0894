/* SPDX-License-Identifier: MIT */
/*
 * contender_libevent.c - libevent 2.x, an event_base on its epoll method.
 *
 * The other methods are avoided in the event_config and the method is
 * checked after the base is made, so EVENT_NOEPOLL or a missing epoll
 * turns into "not available" rather than a silent poll(2) run. The version
 * check catches libev's libevent emulation answering in libevent's place. The base
 * runs without the epoll change list (libevent's default), so event_del
 * and event_add each make their epoll_ctl call at once.
 *
 * Timers are evtimer_* events (a binary min-heap); outside the loop,
 * event_add reads the clock to turn the delay into a deadline.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

struct libevent_io {
	struct event *ev;
	bench_cb cb;
	void *arg;
};

static int libevent_loop_new(const struct bench_contender *c, void **loopp)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	(void)c;
	if (cfg == NULL)
		return -ENOMEM;
	event_config_avoid_method(cfg, "select");
	event_config_avoid_method(cfg, "poll");
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK |
				   EVENT_BASE_FLAG_IGNORE_ENV);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (base == NULL)
		return -ENOSYS;
	if (strcmp(event_base_get_method(base), "epoll") != 0) {
		event_base_free(base);
		return -ENOSYS;
	}
	*loopp = base;
	return 0;
}

/* Debian's libev.so exports libevent 1.x emulation (event_add, event_del,
 * event_base_loop, ...). If it came first in the dynamic linker's search
 * order, this file would benchmark libev; bench/CMakeLists.txt orders the
 * link line so it does not, and this check makes sure. */
static int libevent_probe(const struct bench_contender *c, char *why,
			  size_t len)
{
	const char *v = event_get_version();
	void *base;
	int err;

	if (strncmp(v, "2.", 2) != 0) {
		snprintf(why, len, "event_get_version() is \"%s\": libev's "
			 "libevent emulation shadows libevent (link order)", v);
		return -ELIBACC;
	}
	err = libevent_loop_new(c, &base);
	if (err < 0) {
		snprintf(why, len, "libevent made no epoll event_base");
		return err;
	}
	event_base_free(base);
	return 0;
}

static void libevent_loop_free(void *loop)
{
	event_base_free(loop);
}

static void libevent_cb(evutil_socket_t fd, short what, void *arg)
{
	struct libevent_io *io = arg;

	(void)fd;
	(void)what;
	io->cb(io->arg);
}

static int libevent_io_start(void *iop)
{
	struct libevent_io *io = iop;

	return event_add(io->ev, NULL) ? -EINVAL : 0;
}

static int libevent_io_stop(void *iop)
{
	struct libevent_io *io = iop;

	return event_del(io->ev) ? -EINVAL : 0;
}

static int libevent_io_new(void *loop, int fd, bench_cb cb, void *arg,
			   void **iop)
{
	struct libevent_io *io = malloc(sizeof(*io));

	if (io == NULL)
		return -ENOMEM;
	io->cb = cb;
	io->arg = arg;
	io->ev = event_new(loop, fd, EV_READ | EV_PERSIST, libevent_cb, io);
	if (io->ev == NULL || event_add(io->ev, NULL) != 0) {
		if (io->ev != NULL)
			event_free(io->ev);
		free(io);
		return -EINVAL;
	}
	*iop = io;
	return 0;
}

static void libevent_io_free(void *iop)
{
	struct libevent_io *io = iop;

	event_free(io->ev);	/* deletes it first */
	free(io);
}

struct libevent_timer {
	struct event *ev;
	bench_timer_cb cb;
	void *arg;
};

static void libevent_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct libevent_timer *t = arg;

	(void)fd;
	(void)what;
	t->cb(t->arg);
}

static int libevent_timer_new(void *loop, bench_timer_cb cb, void *arg,
			      void **tp)
{
	struct libevent_timer *t = malloc(sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	t->cb = cb;
	t->arg = arg;
	t->ev = evtimer_new((struct event_base *)loop, libevent_timer_cb, t);
	if (t->ev == NULL) {
		free(t);
		return -ENOMEM;
	}
	*tp = t;
	return 0;
}

static int libevent_timer_start(void *tp, uint64_t after_ns)
{
	struct libevent_timer *t = tp;
	/* microseconds, rounded up: never early */
	uint64_t us = (after_ns + 999) / 1000;
	struct timeval tv = { .tv_sec = (time_t)(us / 1000000),
			      .tv_usec = (suseconds_t)(us % 1000000) };

	return evtimer_add(t->ev, &tv) ? -EINVAL : 0;
}

static int libevent_timer_stop(void *tp)
{
	struct libevent_timer *t = tp;

	return evtimer_del(t->ev) ? -EINVAL : 0;
}

static void libevent_timer_free(void *tp)
{
	struct libevent_timer *t = tp;

	event_free(t->ev);	/* deletes it first */
	free(t);
}

static int libevent_run(void *loop, int once)
{
	return event_base_loop(loop, once ? EVLOOP_ONCE : 0) < 0 ? -EIO : 0;
}

static void libevent_break(void *loop)
{
	event_base_loopbreak(loop);
}

const struct bench_contender bench_libevent = {
	.name = "libevent",
	.backend = "epoll",
	.probe = libevent_probe,
	.loop_new = libevent_loop_new,
	.loop_free = libevent_loop_free,
	.io_new = libevent_io_new,
	.io_stop = libevent_io_stop,
	.io_start = libevent_io_start,
	.io_free = libevent_io_free,
	.run = libevent_run,
	.break_loop = libevent_break,
	.timer_new = libevent_timer_new,
	.timer_start = libevent_timer_start,
	.timer_stop = libevent_timer_stop,
	.timer_free = libevent_timer_free,
};
