/* SPDX-License-Identifier: MIT */
/*
 * contender_libuv.c - libuv's uv_poll_t, its readiness watcher (epoll on
 * Linux).
 *
 * Each iteration of uv_run also updates the loop's time and walks the
 * timer, idle, prepare, check and closing queues; that is part of what is
 * measured. A uv_poll_t is freed only after its close callback ran, so
 * io_free closes it and loop_free runs the loop once more to reap it.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>

#include <uv.h>

struct libuv_io {
	uv_poll_t w;		/* first: callbacks get &w */
	bench_cb cb;
	void *arg;
};

static int libuv_loop_new(const struct bench_contender *c, void **loopp)
{
	uv_loop_t *loop = malloc(sizeof(*loop));
	int err;

	(void)c;
	if (loop == NULL)
		return -ENOMEM;
	err = uv_loop_init(loop);
	if (err < 0) {
		free(loop);
		return err;
	}
	*loopp = loop;
	return 0;
}

static void libuv_loop_free(void *loop)
{
	uv_run(loop, UV_RUN_NOWAIT);	/* reap closed handles */
	uv_loop_close(loop);
	free(loop);
}

static void libuv_cb(uv_poll_t *w, int status, int events)
{
	struct libuv_io *io = (struct libuv_io *)w;

	(void)status;
	(void)events;
	io->cb(io->arg);
}

static int libuv_io_start(void *iop)
{
	struct libuv_io *io = iop;

	return uv_poll_start(&io->w, UV_READABLE, libuv_cb);
}

static int libuv_io_stop(void *iop)
{
	struct libuv_io *io = iop;

	return uv_poll_stop(&io->w);
}

static int libuv_io_new(void *loop, int fd, bench_cb cb, void *arg, void **iop)
{
	struct libuv_io *io = malloc(sizeof(*io));
	int err;

	if (io == NULL)
		return -ENOMEM;
	io->cb = cb;
	io->arg = arg;
	err = uv_poll_init(loop, &io->w, fd);
	if (err == 0)
		err = libuv_io_start(io);
	if (err < 0) {
		free(io);
		return err;
	}
	*iop = io;
	return 0;
}

static void libuv_close_cb(uv_handle_t *h)
{
	free(h);
}

static void libuv_io_free(void *iop)
{
	struct libuv_io *io = iop;

	uv_close((uv_handle_t *)&io->w, libuv_close_cb);
}

static int libuv_run(void *loop, int once)
{
	int r = uv_run(loop, once ? UV_RUN_ONCE : UV_RUN_DEFAULT);

	return r < 0 ? r : 0;
}

static void libuv_break(void *loop)
{
	uv_stop(loop);
}

const struct bench_contender bench_libuv = {
	.name = "libuv",
	.backend = "epoll",
	.loop_new = libuv_loop_new,
	.loop_free = libuv_loop_free,
	.io_new = libuv_io_new,
	.io_stop = libuv_io_stop,
	.io_start = libuv_io_start,
	.io_free = libuv_io_free,
	.run = libuv_run,
	.break_loop = libuv_break,
};
