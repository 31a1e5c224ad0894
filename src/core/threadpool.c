/* SPDX-License-Identifier: MIT */
/*
 * threadpool.c - blocking operations in worker threads.
 *
 * Some operations have no readiness to wait for: openat, statx, fsync,
 * close, and reads and writes of regular files that miss the page cache.
 * Where the backend cannot run them asynchronously, a few threads of the
 * loop (evq_loop_options.threads, 4 by default) run them with the plain
 * blocking syscalls and hand the results back to the loop.
 *
 * The job queue is the ops themselves, linked through op->qnext: no
 * allocation per job, and no bound is needed on it because every entry is
 * memory the caller already owns. Results come back on a done list, and
 * the pool tells the loop with an async of its own (evq_async_send():
 * many results cost one wakeup). Its callback reports them onto the road
 * every engine takes (evq__report), to be delivered after the wait.
 *
 * op->state is the loop thread's alone: a worker only reads the op's
 * parameters and writes op->res, both under the queue lock's ordering.
 *
 * Workers block every signal, so that signals meant for the loop's
 * signalfd are never taken by a worker.
 *
 * fork(): a child has the pool's memory but none of its threads, and its
 * copy of the lock may be held by a worker that does not exist there.
 * evq_loop_free() in a child (allowed, docs/ARCHITECTURE.md) therefore
 * neither locks nor joins: it takes the queues as they are and forgets
 * the threads.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>	/* renameat2 */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

struct evq__tpool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct evq_op *qhead, *qtail;	/* waiting for a worker */
	struct evq_op *dhead, *dtail;	/* finished, for the loop */
	bool stop;
	struct evq_async done_async;	/* a worker finished a job */
	pid_t pid;		/* the process whose threads these are */
	unsigned nthreads;
	pthread_t threads[];
};

/* The ops issue 14 added that the pool runs (emul_more.c): -1 and errno,
 * or the result. */
static long run_more(struct evq_op *op)
{
	loff_t oi, oo;
	long r;

	switch (op->code) {
	case EVQ_OP_SPLICE:
		/* The loop saw the sides that have readiness ready; one a
		 * race made not ready again is waited for here. */
		oi = (loff_t)op->u.splice.off_in;
		oo = (loff_t)op->u.splice.off_out;
		for (;;) {
			struct pollfd p[2];
			nfds_t n = 0;

			r = splice(op->u.splice.fd_in, oi == -1 ? NULL : &oi,
				   op->fd, oo == -1 ? NULL : &oo,
				   op->u.splice.len, op->u.splice.flags);
			if (r >= 0 || errno != EAGAIN ||
			    (op->u.splice.flags & SPLICE_F_NONBLOCK))
				return r;
			if (!(EVQ__SPL_IN(op->cflags) & EVQ__SPL_FILE))
				p[n++] = (struct pollfd){ op->u.splice.fd_in,
							  POLLIN, 0 };
			if (!(EVQ__SPL_OUT(op->cflags) & EVQ__SPL_FILE))
				p[n++] = (struct pollfd){ op->fd, POLLOUT, 0 };
			(void)poll(p, n, 1000);	/* wakes to try again */
		}
	case EVQ_OP_FALLOCATE:
		return fallocate(op->fd, op->u.falloc.mode,
				 (off_t)op->u.falloc.off,
				 (off_t)op->u.falloc.len);
	case EVQ_OP_UNLINKAT:
		return unlinkat(op->u.open.dirfd, op->u.open.path,
				op->u.open.flags);
	case EVQ_OP_RENAMEAT:
		return renameat2(op->u.ren.olddirfd, op->u.ren.oldpath,
				 op->u.ren.newdirfd, op->u.ren.newpath,
				 op->u.ren.flags);
	case EVQ_OP_MKDIRAT:
		return mkdirat(op->u.open.dirfd, op->u.open.path,
			       (mode_t)op->u.open.mode);
	default:
		errno = EINVAL;
		return -1;
	}
}

static int run_blocking(struct evq_op *op)
{
	struct iovec one;
	long r;

	switch (op->code) {
	case EVQ_OP_READ:
	case EVQ_OP_WRITE:
		if (op->flags & EVQ__OPF_POOL) {
			one.iov_base = evq_pool_buf(op->u.pool.pool,
						    op->cflags >> 16);
			one.iov_len = op->u.pool.pool->size;
			if (op->u.pool.off == EVQ_OFFSET_CURRENT)
				r = readv(op->fd, &one, 1);
			else
				r = preadv(op->fd, &one, 1,
					   (off_t)op->u.pool.off);
			break;
		}
		one.iov_base = op->u.rw.buf;
		one.iov_len = op->u.rw.len;
		if (op->u.rw.off == EVQ_OFFSET_CURRENT)
			r = op->code == EVQ_OP_READ ? readv(op->fd, &one, 1)
						    : writev(op->fd, &one, 1);
		else
			r = op->code == EVQ_OP_READ
				    ? preadv(op->fd, &one, 1, (off_t)op->u.rw.off)
				    : pwritev(op->fd, &one, 1, (off_t)op->u.rw.off);
		break;
	case EVQ_OP_READV:
	case EVQ_OP_WRITEV:
		if (op->u.vec.off == EVQ_OFFSET_CURRENT)
			r = op->code == EVQ_OP_READV
				    ? readv(op->fd, op->u.vec.iov, op->u.vec.cnt)
				    : writev(op->fd, op->u.vec.iov, op->u.vec.cnt);
		else
			r = op->code == EVQ_OP_READV
				    ? preadv(op->fd, op->u.vec.iov, op->u.vec.cnt,
					     (off_t)op->u.vec.off)
				    : pwritev(op->fd, op->u.vec.iov, op->u.vec.cnt,
					      (off_t)op->u.vec.off);
		break;
	case EVQ_OP_CONNECT:
		r = connect(op->fd, op->u.conn.addr, op->u.conn.len);
		break;
	case EVQ_OP_OPENAT:
		r = openat(op->u.open.dirfd, op->u.open.path, op->u.open.flags,
			   (mode_t)op->u.open.mode);
		break;
	case EVQ_OP_STATX:
		r = statx(op->u.stat.dirfd, op->u.stat.path, op->u.stat.flags,
			  op->u.stat.mask, op->u.stat.stx);
		break;
	case EVQ_OP_FSYNC:
		r = (op->u.fsync_flags & EVQ_FSYNC_DATASYNC) ? fdatasync(op->fd)
							     : fsync(op->fd);
		break;
	case EVQ_OP_CLOSE:
		/* Linux frees the fd even when close() reports an error, so
		 * it is never retried (EINTR included). */
		r = close(op->fd);
		break;
	default:
		r = run_more(op);
		break;
	}
	if (r < 0)
		return -errno;
	return r > 0x7fffffff ? 0x7fffffff : (int)r;
}

static void *worker(void *arg)
{
	struct evq_loop *loop = arg;
	struct evq__tpool *tp = loop->tpool;

	pthread_mutex_lock(&tp->lock);
	for (;;) {
		struct evq_op *op;
		bool wake;

		while (!tp->qhead && !tp->stop)
			pthread_cond_wait(&tp->cond, &tp->lock);
		if (!tp->qhead)
			break;	/* stopping, and nothing left to run */
		op = tp->qhead;
		tp->qhead = op->qnext;
		if (!tp->qhead)
			tp->qtail = NULL;
		op->qnext = NULL;
		pthread_mutex_unlock(&tp->lock);

		op->res = run_blocking(op);

		pthread_mutex_lock(&tp->lock);
		wake = tp->dhead == NULL;
		if (tp->dtail)
			tp->dtail->qnext = op;
		else
			tp->dhead = op;
		tp->dtail = op;
		pthread_mutex_unlock(&tp->lock);
		if (wake)
			evq_async_send(&tp->done_async);
		pthread_mutex_lock(&tp->lock);
	}
	pthread_mutex_unlock(&tp->lock);
	return NULL;
}

static void done_cb(struct evq_loop *loop, struct evq_async *a)
{
	(void)a;
	evq__tpool_reap(loop);
}

static int tpool_create(struct evq_loop *loop)
{
	struct evq__tpool *tp;
	sigset_t all, old;
	unsigned n = loop->threads;
	int r;

	tp = calloc(1, sizeof(*tp) + n * sizeof(tp->threads[0]));
	if (!tp)
		return -ENOMEM;
	r = evq_async_start(loop, &tp->done_async, done_cb);
	if (r < 0) {
		free(tp);
		return r;
	}
	/* The pool's async is the loop's own: it does not keep the loop
	 * alive (the ops in flight do). */
	loop->active--;
	pthread_mutex_init(&tp->lock, NULL);
	pthread_cond_init(&tp->cond, NULL);
	tp->pid = getpid();
	loop->tpool = tp;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < n; i++) {
		r = -pthread_create(&tp->threads[i], NULL, worker, loop);
		if (r < 0)
			break;
		tp->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (tp->nthreads == 0) {
		loop->active++;
		evq_async_stop(&tp->done_async);
		pthread_mutex_destroy(&tp->lock);
		pthread_cond_destroy(&tp->cond);
		free(tp);
		loop->tpool = NULL;
		return r;
	}
	return 0;	/* fewer threads than asked still work */
}

int evq__tpool_submit(struct evq_loop *loop, struct evq_op *op)
{
	struct evq__tpool *tp;
	int r;

	if (!loop->tpool) {
		r = tpool_create(loop);
		if (r < 0)
			return r;
	}
	tp = loop->tpool;
	op->qnext = NULL;
	/* op->state belongs to the loop thread: workers never touch it. */
	op->state = EVQ__OP_POOL_QUEUED;
	pthread_mutex_lock(&tp->lock);
	if (tp->qtail)
		tp->qtail->qnext = op;
	else
		tp->qhead = op;
	tp->qtail = op;
	pthread_cond_signal(&tp->cond);
	pthread_mutex_unlock(&tp->lock);
	return 0;
}

/* Take op out of the queue if no worker has it yet. */
bool evq__tpool_remove(struct evq_loop *loop, struct evq_op *op)
{
	struct evq__tpool *tp = loop->tpool;
	struct evq_op *prev = NULL, *o;
	bool found = false;

	if (!tp)
		return false;
	pthread_mutex_lock(&tp->lock);
	for (o = tp->qhead; o; prev = o, o = o->qnext) {
		if (o != op)
			continue;
		if (prev)
			prev->qnext = o->qnext;
		else
			tp->qhead = o->qnext;
		if (tp->qtail == o)
			tp->qtail = prev;
		o->qnext = NULL;
		found = true;
		break;
	}
	pthread_mutex_unlock(&tp->lock);
	return found;
}

/* A finished job's result onto the road. A recv/read into a pool buffer
 * took its buffer when it was queued (id in cflags): it goes with the
 * data, or back to the pool. */
static void report(struct evq_loop *loop, struct evq_op *op)
{
	unsigned flags = 0;

	if (op->flags & EVQ__OPF_POOL) {
		unsigned id = op->cflags >> 16;

		if (op->res > 0)
			flags = EVQ_OP_F_BUFFER | id << 16;
		else
			evq__pool_put(op->u.pool.pool, id);
	}
	op->cflags = 0;
	op->state = EVQ__OP_DONE;
	evq__report(loop, op, op->res, flags);
}

static void report_list(struct evq_loop *loop, struct evq_op *op)
{
	while (op) {
		struct evq_op *next = op->qnext;

		op->qnext = NULL;
		report(loop, op);
		op = next;
	}
}

/* Report the results the workers finished. */
void evq__tpool_reap(struct evq_loop *loop)
{
	struct evq__tpool *tp = loop->tpool;
	struct evq_op *op;

	if (!tp)
		return;
	pthread_mutex_lock(&tp->lock);
	op = tp->dhead;
	tp->dhead = tp->dtail = NULL;
	pthread_mutex_unlock(&tp->lock);
	report_list(loop, op);
}

/* For evq_loop_free: cancel what has not started, let running jobs
 * finish, join the workers, and deliver every result. In a forked child
 * (see the top) the jobs the parent's workers were running never finish
 * here: they stay on the loop's list, and the loop's free cancels them. */
void evq__tpool_shutdown(struct evq_loop *loop)
{
	struct evq__tpool *tp = loop->tpool;
	bool child;
	struct evq_op *op;

	if (!tp)
		return;
	child = tp->pid != getpid();
	if (!child)
		pthread_mutex_lock(&tp->lock);
	op = tp->qhead;
	tp->qhead = tp->qtail = NULL;
	tp->stop = true;
	if (!child) {
		pthread_cond_broadcast(&tp->cond);
		pthread_mutex_unlock(&tp->lock);
		for (unsigned i = 0; i < tp->nthreads; i++)
			pthread_join(tp->threads[i], NULL);
	}
	for (struct evq_op *o = op; o; o = o->qnext)
		o->res = -ECANCELED;
	report_list(loop, op);
	if (child) {
		/* Results finished before the fork; no lock to take. */
		op = tp->dhead;
		tp->dhead = tp->dtail = NULL;
		report_list(loop, op);
		/* The lock and condition may record the parent's threads
		 * (a destroy could wait for them): just free the memory. */
		loop->active++;	/* see tpool_create */
		evq_async_stop(&tp->done_async);
		free(tp);
		loop->tpool = NULL;
		return;
	}
	evq__tpool_reap(loop);
	loop->active++;	/* see tpool_create */
	evq_async_stop(&tp->done_async);
	pthread_mutex_destroy(&tp->lock);
	pthread_cond_destroy(&tp->cond);
	free(tp);
	loop->tpool = NULL;
}
