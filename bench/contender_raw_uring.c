/* SPDX-License-Identifier: MIT */
/*
 * contender_raw_uring.c - a minimal hand-written io_uring readiness loop
 * (liburing): io_uring used as a poll replacement, the way libev's and
 * tevent's io_uring backends use it.
 *
 * Notes on io_uring as a poll(2):
 *  a) IORING_OP_POLL_ADD is one-shot here and re-armed after each
 *     callback. A one-shot poll checks readiness when it is armed, so the
 *     loop stays level-triggered: a pipe with two bytes and a callback
 *     that reads one fires again. Multishot poll would not (it fires on
 *     wakeups, not on state), and the pipes-* workloads would hang.
 *  b) Stopping a watcher whose poll is in flight takes an
 *     IORING_OP_POLL_REMOVE; the poll then completes with -ECANCELED. A
 *     watcher started again before that completion is re-armed then.
 *  c) A watcher freed while its poll is in flight is kept until the
 *     poll's completion arrives, since the completion carries its address.
 *  d) Every re-arm and the wait share one io_uring_enter: a callback costs
 *     one syscall for the loop, like epoll_wait, plus its own read/write.
 * BACKGROUND.md lesson 1 says this use loses to epoll; this file is there
 * to measure by how much on this machine.
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include <liburing.h>

#define RING_ENTRIES 1024

struct uring_loop {
	struct io_uring ring;
	unsigned in_flight;	/* polls not yet completed */
	int stop;
};

struct uring_io {
	struct uring_loop *loop;
	int fd;
	int active;		/* the user wants events */
	int armed;		/* a poll is in flight */
	int freed;		/* io_free was called: free on completion */
	bench_cb cb;
	void *arg;
};

static int uring_probe(const struct bench_contender *c, char *why, size_t len)
{
	struct io_uring ring;
	int err = io_uring_queue_init(8, &ring, 0);

	(void)c;
	(void)why;
	(void)len;
	if (err < 0)
		return err;
	io_uring_queue_exit(&ring);
	return 0;
}

static int uring_loop_new(const struct bench_contender *c, void **loopp)
{
	struct uring_loop *l = calloc(1, sizeof(*l));
	int err;

	(void)c;
	if (l == NULL)
		return -ENOMEM;
	err = io_uring_queue_init(RING_ENTRIES, &l->ring, 0);
	if (err < 0) {
		free(l);
		return err;
	}
	*loopp = l;
	return 0;
}

/* An SQE, submitting what is queued first if the ring is full. */
static struct io_uring_sqe *get_sqe(struct uring_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (sqe == NULL) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

static int arm(struct uring_io *w)
{
	struct io_uring_sqe *sqe = get_sqe(w->loop);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, w->fd, POLLIN);
	io_uring_sqe_set_data(sqe, w);
	w->armed = 1;
	w->loop->in_flight++;
	return 0;
}

static int uring_io_start(void *io)
{
	struct uring_io *w = io;

	w->active = 1;
	return w->armed ? 0 : arm(w);
}

static int uring_io_stop(void *io)
{
	struct uring_io *w = io;
	struct io_uring_sqe *sqe;

	w->active = 0;
	if (!w->armed)
		return 0;
	sqe = get_sqe(w->loop);
	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)w);
	io_uring_sqe_set_data(sqe, NULL);	/* its own CQE: ignored */
	return 0;
}

static int uring_io_new(void *loop, int fd, bench_cb cb, void *arg, void **iop)
{
	struct uring_io *w = calloc(1, sizeof(*w));
	int err;

	if (w == NULL)
		return -ENOMEM;
	*w = (struct uring_io){ .loop = loop, .fd = fd, .cb = cb, .arg = arg };
	err = uring_io_start(w);
	if (err < 0) {
		free(w);
		return err;
	}
	*iop = w;
	return 0;
}

static void uring_io_free(void *io)
{
	struct uring_io *w = io;

	uring_io_stop(w);
	if (w->armed)
		w->freed = 1;
	else
		free(w);
}

static void complete(struct uring_io *w, int res)
{
	w->armed = 0;
	w->loop->in_flight--;
	if (w->freed) {
		free(w);
		return;
	}
	if (w->active && res >= 0)
		w->cb(w->arg);
	if (w->active && !w->armed)
		arm(w);
}

static int reap(struct uring_loop *l, int wait)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int err = wait ? io_uring_submit_and_wait(&l->ring, 1)
		       : io_uring_submit(&l->ring);

	if (err < 0 && err != -EINTR && err != -EBUSY)
		return err;
	io_uring_for_each_cqe(&l->ring, head, cqe) {
		struct uring_io *w = io_uring_cqe_get_data(cqe);

		n++;
		if (w != NULL)
			complete(w, cqe->res);
	}
	io_uring_cq_advance(&l->ring, n);
	return 0;
}

static void uring_loop_free(void *loop)
{
	struct uring_loop *l = loop;

	while (l->in_flight > 0 && reap(l, 1) == 0)
		;
	io_uring_queue_exit(&l->ring);
	free(l);
}

static int uring_run(void *loop, int once)
{
	struct uring_loop *l = loop;

	l->stop = 0;
	do {
		int err = reap(l, 1);

		if (err < 0)
			return err;
	} while (!once && !l->stop);
	return 0;
}

static void uring_break(void *loop)
{
	((struct uring_loop *)loop)->stop = 1;
}

const struct bench_contender bench_raw_uring = {
	.name = "raw-uring",
	.backend = "io_uring",
	.probe = uring_probe,
	.loop_new = uring_loop_new,
	.loop_free = uring_loop_free,
	.io_new = uring_io_new,
	.io_stop = uring_io_stop,
	.io_start = uring_io_start,
	.io_free = uring_io_free,
	.run = uring_run,
	.break_loop = uring_break,
};
