/* SPDX-License-Identifier: MIT */
/*
 * contender_tevent.c - Samba's tevent on its "epoll" backend.
 *
 * tevent has no "run until told to stop": a loop calls tevent_loop_once()
 * until its own flag says so, as Samba's daemons do. Stopping a watcher is
 * tevent_fd_set_flags(fde, 0), which the epoll backend turns into
 * EPOLL_CTL_DEL at once, and starting it sets TEVENT_FD_READ again.
 *
 * Timers are tevent_add_timer() with an absolute deadline from
 * tevent_timeval_current_ofs() (a gettimeofday per start); stopping one
 * is freeing it, and tevent frees a timer itself after its handler ran.
 * tevent keeps its timers in a list sorted by deadline, and an insert
 * walks it from the tail: O(1) for deadlines that only grow (Samba's
 * case), O(n) for random ones. tevent_loop_once() fires at most one
 * timer per iteration.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>

#include <talloc.h>
#include <tevent.h>

struct tev_loop {
	struct tevent_context *ev;
	int stop;
};

struct tev_io {
	struct tevent_fd *fde;
	bench_cb cb;
	void *arg;
};

static int tev_loop_new(const struct bench_contender *c, void **loopp)
{
	struct tev_loop *l = talloc_zero(NULL, struct tev_loop);

	(void)c;
	if (l == NULL)
		return -ENOMEM;
	l->ev = tevent_context_init_byname(l, "epoll");
	if (l->ev == NULL) {
		talloc_free(l);
		return -ENOSYS;
	}
	*loopp = l;
	return 0;
}

static void tev_loop_free(void *loop)
{
	talloc_free(loop);
}

static void tev_cb(struct tevent_context *ev, struct tevent_fd *fde,
		   uint16_t flags, void *private_data)
{
	struct tev_io *io = private_data;

	(void)ev;
	(void)fde;
	(void)flags;
	io->cb(io->arg);
}

static int tev_io_start(void *iop)
{
	struct tev_io *io = iop;

	tevent_fd_set_flags(io->fde, TEVENT_FD_READ);
	return 0;
}

static int tev_io_stop(void *iop)
{
	struct tev_io *io = iop;

	tevent_fd_set_flags(io->fde, 0);
	return 0;
}

static int tev_io_new(void *loop, int fd, bench_cb cb, void *arg, void **iop)
{
	struct tev_loop *l = loop;
	struct tev_io *io = talloc_zero(l, struct tev_io);

	if (io == NULL)
		return -ENOMEM;
	io->cb = cb;
	io->arg = arg;
	io->fde = tevent_add_fd(l->ev, io, fd, TEVENT_FD_READ, tev_cb, io);
	if (io->fde == NULL) {
		talloc_free(io);
		return -ENOMEM;
	}
	*iop = io;
	return 0;
}

static void tev_io_free(void *iop)
{
	talloc_free(iop);	/* frees the fde too, which removes it */
}

struct tev_timer {
	struct tev_loop *l;
	struct tevent_timer *te;	/* a talloc child of this struct */
	bench_timer_cb cb;
	void *arg;
};

static void tev_timer_cb(struct tevent_context *ev, struct tevent_timer *te,
			 struct timeval now, void *private_data)
{
	struct tev_timer *t = private_data;

	(void)ev;
	(void)te;
	(void)now;
	t->te = NULL;	/* tevent frees it after this returns */
	t->cb(t->arg);
}

static int tev_timer_new(void *loop, bench_timer_cb cb, void *arg, void **tp)
{
	struct tev_loop *l = loop;
	struct tev_timer *t = talloc_zero(l, struct tev_timer);

	if (t == NULL)
		return -ENOMEM;
	t->l = l;
	t->cb = cb;
	t->arg = arg;
	*tp = t;
	return 0;
}

static int tev_timer_start(void *tp, uint64_t after_ns)
{
	struct tev_timer *t = tp;
	uint64_t us = (after_ns + 999) / 1000;	/* never early */

	t->te = tevent_add_timer(t->l->ev, t,
				 tevent_timeval_current_ofs(
					 (uint32_t)(us / 1000000),
					 (uint32_t)(us % 1000000)),
				 tev_timer_cb, t);
	return t->te != NULL ? 0 : -ENOMEM;
}

static int tev_timer_stop(void *tp)
{
	struct tev_timer *t = tp;

	TALLOC_FREE(t->te);
	return 0;
}

static void tev_timer_free(void *tp)
{
	talloc_free(tp);	/* and its timer, if armed */
}

static int tev_run(void *loop, int once)
{
	struct tev_loop *l = loop;

	l->stop = 0;
	do {
		if (tevent_loop_once(l->ev) != 0)
			return errno ? -errno : -EIO;
	} while (!once && !l->stop);
	return 0;
}

static void tev_break(void *loop)
{
	((struct tev_loop *)loop)->stop = 1;
}

const struct bench_contender bench_tevent = {
	.name = "tevent",
	.backend = "epoll",
	.loop_new = tev_loop_new,
	.loop_free = tev_loop_free,
	.io_new = tev_io_new,
	.io_stop = tev_io_stop,
	.io_start = tev_io_start,
	.io_free = tev_io_free,
	.run = tev_run,
	.break_loop = tev_break,
	.timer_new = tev_timer_new,
	.timer_start = tev_timer_start,
	.timer_stop = tev_timer_stop,
	.timer_free = tev_timer_free,
	.timers_max = 20000,
	.timers_max_why = "tevent keeps timers in a sorted list and an insert "
			  "walks it from the tail: O(n) per random deadline",
};
