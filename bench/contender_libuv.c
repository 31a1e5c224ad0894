/* SPDX-License-Identifier: MIT */
/*
 * contender_libuv.c - libuv's uv_poll_t, its readiness watcher (epoll on
 * Linux).
 *
 * Each iteration of uv_run also updates the loop's time and walks the
 * timer, idle, prepare, check and closing queues; that is part of what is
 * measured. A uv_poll_t is freed only after its close callback ran, so
 * io_free closes it and loop_free runs the loop once more to reap it.
 *
 * Timers are uv_timer_t (a binary heap), in whole milliseconds (rounded
 * up here, so that none fires early) counted from the loop's cached time.
 *
 * File ops are libuv's fs API: uv_fs_read (with an offset) and
 * uv_fs_stat, run in libuv's thread pool (one per process, 4 threads
 * unless UV_THREADPOOL_SIZE says otherwise) and completed through the
 * loop's async handle.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

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
	/* Reap closed handles; fs requests still in flight (only after a
	 * failed run) are waited for, for up to about 10 s. */
	uv_run(loop, UV_RUN_NOWAIT);
	for (int i = 0; i < 10000 && uv_loop_close(loop) == UV_EBUSY; i++) {
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
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

struct libuv_timer {
	uv_timer_t w;		/* first: callbacks get &w */
	bench_timer_cb cb;
	void *arg;
};

static void libuv_timer_cb(uv_timer_t *w)
{
	struct libuv_timer *t = (struct libuv_timer *)w;

	t->cb(t->arg);
}

static int libuv_timer_new(void *loop, bench_timer_cb cb, void *arg,
			   void **tp)
{
	struct libuv_timer *t = malloc(sizeof(*t));
	int err;

	if (t == NULL)
		return -ENOMEM;
	t->cb = cb;
	t->arg = arg;
	err = uv_timer_init(loop, &t->w);
	if (err < 0) {
		free(t);
		return err;
	}
	*tp = t;
	return 0;
}

static int libuv_timer_start(void *tp, uint64_t after_ns)
{
	struct libuv_timer *t = tp;

	return uv_timer_start(&t->w, libuv_timer_cb,
			      (after_ns + 999999) / 1000000, 0);
}

static int libuv_timer_stop(void *tp)
{
	return uv_timer_stop(&((struct libuv_timer *)tp)->w);
}

static void libuv_timer_free(void *tp)
{
	uv_close((uv_handle_t *)&((struct libuv_timer *)tp)->w,
		 libuv_close_cb);
}

struct libuv_fop {
	uv_fs_t req;		/* first: callbacks get &req */
	uv_loop_t *loop;
	bench_op_cb cb;
	void *arg;
	uv_buf_t buf;
	struct bench_stat *st;
};

static int libuv_fop_new(void *loop, bench_op_cb cb, void *arg, void **opp)
{
	struct libuv_fop *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return -ENOMEM;
	o->loop = loop;
	o->cb = cb;
	o->arg = arg;
	*opp = o;
	return 0;
}

static void libuv_fs_cb(uv_fs_t *req)
{
	struct libuv_fop *o = (struct libuv_fop *)req;
	ssize_t res = req->result;

	if (o->st != NULL && res == 0) {
		o->st->ino = req->statbuf.st_ino;
		o->st->size = req->statbuf.st_size;
		o->st->mtime_sec = req->statbuf.st_mtim.tv_sec;
		o->st->mtime_nsec = (uint32_t)req->statbuf.st_mtim.tv_nsec;
		o->st->mode = (uint32_t)req->statbuf.st_mode;
	}
	uv_fs_req_cleanup(req);
	o->cb(o->arg, res > 0x7fffffff ? 0x7fffffff : (int)res);
}

static int libuv_fop_read(void *op, int fd, void *buf, size_t len,
			  uint64_t off)
{
	struct libuv_fop *o = op;

	o->st = NULL;
	o->buf = uv_buf_init(buf, (unsigned)len);
	return uv_fs_read(o->loop, &o->req, fd, &o->buf, 1, (int64_t)off,
			  libuv_fs_cb);
}

static int libuv_fop_stat(void *op, const char *path, struct bench_stat *st)
{
	struct libuv_fop *o = op;

	o->st = st;
	return uv_fs_stat(o->loop, &o->req, path, libuv_fs_cb);
}

static void libuv_fop_free(void *op)
{
	free(op);
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
	.timer_new = libuv_timer_new,
	.timer_start = libuv_timer_start,
	.timer_stop = libuv_timer_stop,
	.timer_free = libuv_timer_free,
	.fop_new = libuv_fop_new,
	.fop_read = libuv_fop_read,
	.fop_stat = libuv_fop_stat,
	.fop_free = libuv_fop_free,
};
