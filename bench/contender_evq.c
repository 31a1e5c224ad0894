/* SPDX-License-Identifier: MIT */
/*
 * contender_evq.c - evq through its readiness API (struct evq_io), one
 * contender per backend.
 *
 * Every backend of enum evq_backend is listed. Whether it runs is decided
 * when the benchmark starts, by trying evq_loop_new() with that backend:
 * one that this build or kernel lacks is reported with the error evq gave
 * ("not available: Operation not supported"), so a new backend shows up
 * in the tables the day it starts to work, with no change here.
 *
 * Timers (the timers workload) are struct evq_timer: evq_timer_start
 * measures the delay from the call itself (it reads CLOCK_MONOTONIC each
 * time, for its "never early" promise), and the backends wait with
 * nanosecond timeouts (epoll_pwait2 on epoll).
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>

#include "evq.h"

struct evqb_io {
	struct evq_io w;	/* first: the callback gets &w */
	struct evq_loop *loop;
	int fd;
	bench_cb cb;
	void *arg;
};

static enum evq_backend backend_of(const struct bench_contender *c)
{
	return *(const enum evq_backend *)c->priv;
}

static int evqb_loop_new(const struct bench_contender *c, void **loopp)
{
	struct evq_loop_options opts = { .backend = backend_of(c) };
	struct evq_loop *loop;
	int err = evq_loop_new(&loop, &opts);

	if (err < 0)
		return err;
	*loopp = loop;
	return 0;
}

static int evqb_probe(const struct bench_contender *c, char *why, size_t len)
{
	void *loop;
	int err = evqb_loop_new(c, &loop);

	(void)why;
	(void)len;
	if (err < 0)
		return err;
	evq_loop_free(loop);
	return 0;
}

static void evqb_loop_free(void *loop)
{
	evq_loop_free(loop);
}

static void evqb_cb(struct evq_loop *loop, struct evq_io *w, unsigned revents)
{
	struct evqb_io *io = (struct evqb_io *)w;

	(void)loop;
	(void)revents;
	io->cb(io->arg);
}

/* A restart of the same watcher on the same, never closed fd is
 * evq_io_resume(): no syscall while the stop is unapplied, as libev's
 * ev_io_start() without ev_io_set(). The first start checks the fd. */
static int evqb_io_start(void *iop)
{
	struct evqb_io *io = iop;

	if (io->w.loop)
		return evq_io_resume(&io->w);
	return evq_io_start(io->loop, &io->w, io->fd, EVQ_READ, evqb_cb);
}

static int evqb_io_stop(void *iop)
{
	struct evqb_io *io = iop;

	return evq_io_stop(&io->w);
}

static int evqb_io_new(void *loop, int fd, bench_cb cb, void *arg, void **iop)
{
	struct evqb_io *io = calloc(1, sizeof(*io));
	int err;

	if (io == NULL)
		return -ENOMEM;
	io->loop = loop;
	io->fd = fd;
	io->cb = cb;
	io->arg = arg;
	err = evqb_io_start(io);
	if (err < 0) {
		free(io);
		return err;
	}
	*iop = io;
	return 0;
}

static void evqb_io_free(void *iop)
{
	struct evqb_io *io = iop;

	evq_io_stop(&io->w);
	free(io);
}

struct evqb_timer {
	struct evq_timer t;	/* first: the callback gets &t */
	struct evq_loop *loop;
	bench_timer_cb cb;
	void *arg;
};

static void evqb_timer_cb(struct evq_loop *loop, struct evq_timer *t)
{
	struct evqb_timer *bt = (struct evqb_timer *)t;

	(void)loop;
	bt->cb(bt->arg);
}

static int evqb_timer_new(void *loop, bench_timer_cb cb, void *arg,
			  void **tp)
{
	struct evqb_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	t->loop = loop;
	t->cb = cb;
	t->arg = arg;
	*tp = t;
	return 0;
}

static int evqb_timer_start(void *tp, uint64_t after_ns)
{
	struct evqb_timer *t = tp;

	return evq_timer_start(t->loop, &t->t, after_ns, 0, evqb_timer_cb);
}

static int evqb_timer_stop(void *tp)
{
	return evq_timer_stop(&((struct evqb_timer *)tp)->t);
}

static void evqb_timer_free(void *tp)
{
	evqb_timer_stop(tp);
	free(tp);
}

static int evqb_run(void *loop, int once)
{
	int r = evq_loop_run(loop, once ? EVQ_RUN_ONCE : EVQ_RUN_DEFAULT);

	return r < 0 ? r : 0;
}

static void evqb_break(void *loop)
{
	evq_loop_stop(loop);
}

#define EVQ_CONTENDER(sym, be, label)                                        \
	static const enum evq_backend sym##_backend = be;                   \
	const struct bench_contender sym = {                                 \
		.name = "evq-" label,                                        \
		.backend = label,                                            \
		.priv = &sym##_backend,                                      \
		.probe = evqb_probe,                                         \
		.loop_new = evqb_loop_new,                                   \
		.loop_free = evqb_loop_free,                                 \
		.io_new = evqb_io_new,                                       \
		.io_stop = evqb_io_stop,                                     \
		.io_start = evqb_io_start,                                   \
		.io_free = evqb_io_free,                                     \
		.run = evqb_run,                                             \
		.break_loop = evqb_break,                                    \
		.timer_new = evqb_timer_new,                                 \
		.timer_start = evqb_timer_start,                             \
		.timer_stop = evqb_timer_stop,                               \
		.timer_free = evqb_timer_free,                               \
	}

EVQ_CONTENDER(bench_evq_epoll, EVQ_BACKEND_EPOLL, "epoll");
EVQ_CONTENDER(bench_evq_poll, EVQ_BACKEND_POLL, "poll");
EVQ_CONTENDER(bench_evq_uring, EVQ_BACKEND_URING, "uring");
EVQ_CONTENDER(bench_evq_aio, EVQ_BACKEND_AIO, "aio");
