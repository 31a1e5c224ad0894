/* SPDX-License-Identifier: MIT */
/*
 * test_defer.c - deferred calls: FIFO order, run before the loop blocks,
 * calls queued from calls wait for the next iteration (so I/O is not
 * starved), stop, double start, and calls queued from timer and fd
 * callbacks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <unistd.h>

struct td {
	struct evq_defer d;
	int idx;
	int count;
	int active_in_cb;
	void (*hook)(struct evq_loop *loop, struct td *self);
	void *arg;
};

static int order[64], norder;

static void td_cb(struct evq_loop *loop, struct evq_defer *d)
{
	struct td *x = d->data;

	EXPECT_TRUE(x != NULL && &x->d == d);
	x->count++;
	x->active_in_cb = evq_defer_is_active(d);
	if (norder < (int)T_NELEM(order))
		order[norder++] = x->idx;
	if (x->hook)
		x->hook(loop, x);
}

/* Queue x afresh. Only for an inactive call: it clears evq's fields. */
static int td_start(struct evq_loop *loop, struct td *x, int idx)
{
	void (*hook)(struct evq_loop *, struct td *) = x->hook;
	void *arg = x->arg;

	memset(x, 0, sizeof(*x));
	x->d.data = x;
	x->idx = idx;
	x->hook = hook;
	x->arg = arg;
	return evq_defer_start(loop, &x->d, td_cb);
}

static void never_io(struct evq_loop *loop, struct evq_io *w, unsigned r)
{
	(void)loop;
	(void)w;
	(void)r;
	T_FAILF("an idle fd's watcher ran");
}

/* ------------------------------------------------------------------------ */

static int fifo_order(void)
{
	struct evq_loop *loop = t_loop_new();
	struct td x[10];
	int i;

	ASSERT_NOTNULL(loop);
	memset(x, 0, sizeof(x));
	for (i = 0; i < 10; i++)
		ASSERT_OK(td_start(loop, &x[i], i));
	ASSERT_EQ(evq_loop_active(loop), 10);
	for (i = 0; i < 10; i++)
		ASSERT_EQ(x[i].count, 0);	/* not from inside start */
	norder = 0;
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(norder, 10);
	for (i = 0; i < 10; i++) {
		T_STEP("call %d", i);
		ASSERT_EQ(order[i], i);
		ASSERT_EQ(x[i].count, 1);
		ASSERT_EQ(x[i].active_in_cb, 0);
		ASSERT_EQ(evq_defer_is_active(&x[i].d), 0);
	}
	ASSERT_EQ(evq_loop_active(loop), 0);
	T_STEP("run once only");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(norder, 10);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static void stop_loop_hook(struct evq_loop *loop, struct td *self)
{
	(void)self;
	evq_loop_stop(loop);
}

/* A deferred call runs before the loop blocks: with only an idle fd
 * besides it, a loop run returns promptly having run it. */
static int runs_before_loop_blocks(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	struct td x = { 0 };
	struct t_guard g;
	int fds[2];
	uint64_t t0;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(evq_io_start(loop, &w, fds[0], EVQ_READ, never_io));

	T_STEP("EVQ_RUN_DEFAULT; the call stops the loop");
	x.hook = stop_loop_hook;
	ASSERT_OK(td_start(loop, &x, 0));
	ASSERT_OK(t_guard_start(loop, &g, 2000, "the loop blocked first"));
	t0 = t_now_ns();
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 1);
	ASSERT_EQ(g.fired, 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_LT(t_now_ns() - t0, 100 * T_MS);
	t_guard_stop(&g);

	T_STEP("EVQ_RUN_ONCE");
	x.hook = NULL;
	ASSERT_OK(td_start(loop, &x, 0));
	ASSERT_OK(t_guard_start(loop, &g, 2000, "ONCE blocked"));
	t0 = t_now_ns();
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_ONCE), 1);
	ASSERT_EQ(x.count, 1);
	ASSERT_EQ(g.fired, 0);
	ASSERT_LT(t_now_ns() - t0, 100 * T_MS);
	t_guard_stop(&g);

	ASSERT_OK(evq_io_stop(&w));
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static void queue_arg_hook(struct evq_loop *loop, struct td *self)
{
	struct td *next = self->arg;

	EXPECT_OK(td_start(loop, next, next->idx));
}

static int queued_from_call_runs_next_iteration(void)
{
	struct evq_loop *loop = t_loop_new();
	struct td a = { 0 }, b = { 0 };

	ASSERT_NOTNULL(loop);
	b.idx = 1;
	a.hook = queue_arg_hook;
	a.arg = &b;
	ASSERT_OK(td_start(loop, &a, 0));
	T_STEP("iteration 1: the first call only");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(a.count, 1);
	ASSERT_EQ(b.count, 0);
	ASSERT_EQ(evq_defer_is_active(&b.d), 1);
	T_STEP("iteration 2: the call it queued");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(a.count, 1);
	ASSERT_EQ(b.count, 1);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* A call that re-queues itself forever: one run per iteration, and a
 * ready fd is dispatched in every iteration too. */
static int io_runs_this_iter;

static void requeue_self_hook(struct evq_loop *loop, struct td *self)
{
	if (self->count < 1000)	/* bounded: a starving loop fails */
		EXPECT_OK(evq_defer_start(loop, &self->d, td_cb));
}

static void ready_io(struct evq_loop *loop, struct evq_io *w, unsigned r)
{
	(void)loop;
	(void)w;
	(void)r;
	io_runs_this_iter++;
}

static int requeue_forever_does_not_starve_io(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	struct td x = { 0 };
	int fds[2], i, io_total = 0;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(t_write_byte(fds[1]));	/* always ready */
	ASSERT_OK(evq_io_start(loop, &w, fds[0], EVQ_READ, ready_io));
	x.hook = requeue_self_hook;
	ASSERT_OK(td_start(loop, &x, 0));
	for (i = 1; i <= 10; i++) {
		T_STEP("ONCE %d", i);
		io_runs_this_iter = 0;
		ASSERT_EQ(t_run_once(loop, 2000), 1);
		ASSERT_EQ(x.count, i);
		ASSERT_EQ(io_runs_this_iter, 1);
		io_total++;
	}
	T_STEP("NOWAIT runs too");
	for (i = 11; i <= 20; i++) {
		io_runs_this_iter = 0;
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(x.count, i);
		ASSERT_EQ(io_runs_this_iter, 1);
	}
	ASSERT_EQ(io_total, 10);
	ASSERT_OK(evq_defer_stop(&x.d));
	ASSERT_OK(evq_io_stop(&w));
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static struct td *heap_victim;

static void stop_free_victim_hook(struct evq_loop *loop, struct td *self)
{
	(void)loop;
	(void)self;
	if (heap_victim) {
		EXPECT_OK(evq_defer_stop(&heap_victim->d));
		EXPECT_EQ(evq_defer_is_active(&heap_victim->d), 0);
		free(heap_victim);
		heap_victim = NULL;
	}
}

static int stop_unqueues(void)
{
	struct evq_loop *loop = t_loop_new();
	struct td x[3], never = { 0 };
	int i;

	ASSERT_NOTNULL(loop);
	memset(x, 0, sizeof(x));
	T_STEP("stop the middle one of three");
	for (i = 0; i < 3; i++)
		ASSERT_OK(td_start(loop, &x[i], i));
	ASSERT_OK(evq_defer_stop(&x[1].d));
	ASSERT_EQ(evq_defer_is_active(&x[1].d), 0);
	ASSERT_EQ(evq_loop_active(loop), 2);
	norder = 0;
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(norder, 2);
	ASSERT_EQ(order[0], 0);
	ASSERT_EQ(order[1], 2);
	ASSERT_EQ(x[1].count, 0);

	T_STEP("stop what is not queued: a no-op");
	ASSERT_OK(evq_defer_stop(&never.d));
	ASSERT_OK(evq_defer_stop(&x[1].d));
	ASSERT_EQ(evq_loop_active(loop), 0);

	T_STEP("the first of a batch stops and frees the last");
	memset(x, 0, sizeof(x));
	heap_victim = calloc(1, sizeof(*heap_victim));
	ASSERT_NOTNULL(heap_victim);
	x[0].hook = stop_free_victim_hook;
	ASSERT_OK(td_start(loop, &x[0], 0));
	ASSERT_OK(td_start(loop, &x[1], 1));
	ASSERT_OK(td_start(loop, heap_victim, 2));
	norder = 0;
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_NULL(heap_victim);
	ASSERT_EQ(norder, 2);
	ASSERT_EQ(order[0], 0);
	ASSERT_EQ(order[1], 1);

	T_STEP("the first of a batch stops and frees the next");
	memset(x, 0, sizeof(x));
	heap_victim = calloc(1, sizeof(*heap_victim));
	ASSERT_NOTNULL(heap_victim);
	x[0].hook = stop_free_victim_hook;
	ASSERT_OK(td_start(loop, &x[0], 0));
	ASSERT_OK(td_start(loop, heap_victim, 1));
	ASSERT_OK(td_start(loop, &x[2], 2));
	norder = 0;
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_NULL(heap_victim);
	ASSERT_EQ(norder, 2);
	ASSERT_EQ(order[0], 0);
	ASSERT_EQ(order[1], 2);

	T_STEP("a call stops the call it queued for the next iteration");
	memset(x, 0, sizeof(x));
	x[0].hook = queue_arg_hook;
	x[0].arg = &x[1];
	x[1].idx = 1;
	ASSERT_OK(td_start(loop, &x[0], 0));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_OK(evq_defer_stop(&x[1].d));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(x[1].count, 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int restart_ret = 12345;

static void restart_once_hook(struct evq_loop *loop, struct td *self)
{
	if (self->count == 1)
		restart_ret = evq_defer_start(loop, &self->d, td_cb);
}

static int double_start_ebusy(void)
{
	struct evq_loop *loop = t_loop_new();
	struct td x = { 0 };

	ASSERT_NOTNULL(loop);
	ASSERT_OK(td_start(loop, &x, 0));
	T_STEP("start while queued");
	ASSERT_ERR(evq_defer_start(loop, &x.d, td_cb), -EBUSY);
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(x.count, 1);	/* queued once, runs once */
	T_STEP("start again after it ran");
	ASSERT_OK(evq_defer_start(loop, &x.d, td_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(x.count, 2);
	T_STEP("restart from its own callback");
	x.hook = restart_once_hook;
	x.count = 0;
	ASSERT_OK(evq_defer_start(loop, &x.d, td_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_OK(restart_ret);
	ASSERT_EQ(x.active_in_cb, 0);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(x.count, 2);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * From timer and fd callbacks
 * ------------------------------------------------------------------------ */

static struct td from_cb;
static int queued_at_iter_cb;

static void timer_queues(struct evq_loop *loop, struct evq_timer *t)
{
	(void)t;
	EXPECT_OK(td_start(loop, &from_cb, 7));
}

static void io_queues(struct evq_loop *loop, struct evq_io *w, unsigned r)
{
	(void)r;
	EXPECT_OK(evq_io_stop(w));
	EXPECT_OK(td_start(loop, &from_cb, 8));
	queued_at_iter_cb++;
}

static int queued_from_timer_and_io_callbacks(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io idle = { 0 }, rd = { 0 };
	struct evq_timer t = { 0 };
	struct t_guard g;
	int fds[2], p[2];
	uint64_t t0;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(evq_io_start(loop, &idle, fds[0], EVQ_READ, never_io));

	T_STEP("a timer callback queues a call; the call stops the loop");
	memset(&from_cb, 0, sizeof(from_cb));
	from_cb.hook = stop_loop_hook;
	ASSERT_OK(evq_timer_start(loop, &t, 5 * T_MS, 0, timer_queues));
	ASSERT_OK(t_guard_start(loop, &g, 2000, "deferred call never ran"));
	t0 = t_now_ns();
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 1);
	ASSERT_EQ(g.fired, 0);
	ASSERT_EQ(from_cb.count, 1);
	ASSERT_EQ(from_cb.idx, 7);
	ASSERT_LT(t_now_ns() - t0, 100 * T_MS);
	t_guard_stop(&g);

	T_STEP("an fd callback queues a call; the call stops the loop");
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(t_write_byte(p[1]));
	from_cb.hook = stop_loop_hook;
	from_cb.count = 0;
	ASSERT_OK(evq_io_start(loop, &rd, p[0], EVQ_READ, io_queues));
	ASSERT_OK(t_guard_start(loop, &g, 2000, "deferred call never ran"));
	t0 = t_now_ns();
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 1);
	ASSERT_EQ(g.fired, 0);
	ASSERT_EQ(queued_at_iter_cb, 1);
	ASSERT_EQ(from_cb.count, 1);
	ASSERT_EQ(from_cb.idx, 8);
	ASSERT_LT(t_now_ns() - t0, 100 * T_MS);
	t_guard_stop(&g);

	ASSERT_OK(evq_io_stop(&idle));
	t_close2(fds);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int errors(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_defer d = { 0 };

	ASSERT_NOTNULL(loop);
	ASSERT_ERR(evq_defer_start(NULL, &d, td_cb), -EINVAL);
	ASSERT_ERR(evq_defer_start(loop, NULL, td_cb), -EINVAL);
	ASSERT_ERR(evq_defer_start(loop, &d, NULL), -EINVAL);
	ASSERT_ERR(evq_defer_stop(NULL), -EINVAL);
	ASSERT_EQ(evq_defer_is_active(NULL), 0);
	ASSERT_EQ(evq_defer_is_active(&d), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(fifo_order),
	T_CASE(runs_before_loop_blocks),
	T_CASE(queued_from_call_runs_next_iteration),
	T_CASE(requeue_forever_does_not_starve_io),
	T_CASE(stop_unqueues),
	T_CASE(double_start_ebusy),
	T_CASE(queued_from_timer_and_io_callbacks),
	T_CASE(errors),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
