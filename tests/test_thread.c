/* SPDX-License-Identifier: MIT */
/*
 * test_thread.c - a loop made in one thread and run in another (evq.h:
 * a loop may change threads until its first run): a timer, an fd watcher
 * and ops all work there; two loops made in two threads each reach their
 * own kernel objects; and a loop already run on one thread, run from
 * another, either works or says -EEXIST, never hangs or spins.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"
#include "ops_helpers.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------
 * Made on main, run (and freed) on a thread
 * ------------------------------------------------------------------------ */

struct runner {
	struct evq_loop *loop;
	struct t_op tm, n;
	struct evq_timer timer;
	struct evq_io io;
	int p[2];
	int timer_runs, io_runs;
	int run_res;
	int free_res;
};

static void runner_timer_cb(struct evq_loop *loop, struct evq_timer *t)
{
	struct runner *r = t->data;

	(void)loop;
	r->timer_runs++;
}

static void runner_io_cb(struct evq_loop *loop, struct evq_io *w,
			 unsigned revents)
{
	struct runner *r = w->data;
	char c;

	(void)loop;
	(void)revents;
	r->io_runs++;
	if (read(w->fd, &c, 1) == 1)
		evq_io_stop(w);
}

static void *run_and_free(void *arg)
{
	struct runner *r = arg;

	r->run_res = evq_loop_run(r->loop, EVQ_RUN_DEFAULT);
	r->free_res = evq_loop_free(r->loop);
	return NULL;
}

static int loop_made_in_main_runs_in_a_thread(void)
{
	static struct runner r;
	pthread_t th;

	memset(&r, 0, sizeof(r));
	r.loop = t_loop_new();
	ASSERT_NOTNULL(r.loop);
	ASSERT_OK(t_pipe(r.p));
	T_STEP("set up a timer, a watcher and two ops on main");
	r.timer.data = &r;
	ASSERT_OK(evq_timer_start(r.loop, &r.timer, 10 * T_MS, 0,
				  runner_timer_cb));
	r.io.data = &r;
	ASSERT_OK(evq_io_start(r.loop, &r.io, r.p[0], EVQ_READ,
			       runner_io_cb));
	ASSERT_OK(t_write_byte(r.p[1]));
	t_op_init(&r.tm);
	evq_prep_timeout(&r.tm.op, 30 * T_MS);
	ASSERT_OK(t_op_submit(r.loop, &r.tm, EVQ_OP_LINK));
	t_op_init(&r.n);
	evq_prep_nop(&r.n.op);
	ASSERT_OK(t_op_submit(r.loop, &r.n, 0));

	T_STEP("run in a thread until idle, free there");
	/* Every watcher ends by itself, so the run returns 0; a hang is
	 * caught by the case's watchdog. */
	t_case_timeout(10);
	ASSERT_OK(pthread_create(&th, NULL, run_and_free, &r));
	ASSERT_OK(pthread_join(th, NULL));
	ASSERT_ERR(r.run_res, 0);
	ASSERT_OK(r.free_res);
	ASSERT_EQ(r.timer_runs, 1);
	ASSERT_EQ(r.io_runs, 1);
	ASSERT_EQ(r.tm.ncalls, 1);
	ASSERT_ERR(r.tm.res, -ETIME);
	ASSERT_EQ(r.n.ncalls, 1);
	ASSERT_ERR(r.n.res, 0);
	t_close2(r.p);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Two loops made in two threads, one run on main
 * ------------------------------------------------------------------------ */

static void *make_loop(void *arg)
{
	struct evq_loop **lp = arg;

	*lp = t_loop_new();
	return NULL;
}

static int loops_made_in_two_threads_each_reach_their_own_ring(void)
{
	struct evq_loop *a = NULL, *b;
	struct t_op tm = { 0 }, tb = { 0 };
	struct t_guard g;
	uint64_t t0, c0;
	pthread_t th;
	int r;

	T_STEP("thread T makes loop A; main makes loop B");
	ASSERT_OK(pthread_create(&th, NULL, make_loop, &a));
	ASSERT_OK(pthread_join(th, NULL));
	ASSERT_NOTNULL(a);
	b = t_loop_new();
	ASSERT_NOTNULL(b);
	/* B in use too, so that any per-thread state of B is set up. */
	t_op_init(&tb);
	evq_prep_timeout(&tb.op, 1 * T_MS);
	ASSERT_OK(t_op_submit(b, &tb, 0));
	ASSERT_OK(t_op_wait(b, &tb, 2000));

	T_STEP("main runs A with a 100 ms timeout op");
	t_op_init(&tm);
	evq_prep_timeout(&tm.op, 100 * T_MS);
	ASSERT_OK(t_op_submit(a, &tm, 0));
	ASSERT_OK(t_guard_start(a, &g, 2000, "A's timeout op"));
	t0 = t_now_ns();
	c0 = cpu_ns();
	while (tm.ncalls == 0 && !g.fired) {
		r = evq_loop_run(a, EVQ_RUN_ONCE);
		ASSERT_GE(r, 0);
	}
	t_guard_stop(&g);
	ASSERT_EQ(tm.ncalls, 1);
	ASSERT_ERR(tm.res, -ETIME);
	ASSERT_GE(tm.at_ns - t0, 100 * T_MS);
	ASSERT_LT(tm.at_ns - t0, 1000 * T_MS);
	T_STEP("no spinning while it waited");
	ASSERT_LT(cpu_ns() - c0, 50 * T_MS);
	T_STEP("B still works");
	t_op_init(&tb);
	evq_prep_timeout(&tb.op, 1 * T_MS);
	ASSERT_OK(t_op_submit(b, &tb, 0));
	ASSERT_OK(t_op_wait(b, &tb, 2000));
	ASSERT_ERR(tb.res, -ETIME);
	t_loop_free(a);
	t_loop_free(b);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Run on main, then on a thread: works, or -EEXIST (evq.h)
 * ------------------------------------------------------------------------ */

struct second {
	struct evq_loop *loop;
	struct t_op tm;
	int res;
};

static void *run_once_from_thread(void *arg)
{
	struct second *s = arg;

	t_op_init(&s->tm);
	evq_prep_timeout(&s->tm.op, 20 * T_MS);
	s->res = t_op_submit(s->loop, &s->tm, 0);
	if (s->res == 0)
		s->res = evq_loop_run(s->loop, EVQ_RUN_ONCE);
	return NULL;
}

static int loop_run_on_a_second_thread_works_or_says_eexist(void)
{
	static struct second s;
	struct t_op n = { 0 };
	pthread_t th;
	uint64_t t0;

	memset(&s, 0, sizeof(s));
	s.loop = t_loop_new();
	ASSERT_NOTNULL(s.loop);
	t_op_init(&n);
	evq_prep_nop(&n.op);
	ASSERT_OK(t_op_submit(s.loop, &n, 0));
	ASSERT_OK(t_op_wait(s.loop, &n, 2000));

	T_STEP("run once from another thread");
	t0 = t_now_ns();
	ASSERT_OK(pthread_create(&th, NULL, run_once_from_thread, &s));
	ASSERT_OK(pthread_join(th, NULL));
	ASSERT_LT(t_now_ns() - t0, 1000 * T_MS);
	t_note("evq_loop_run from the second thread: %d", s.res);
	if (s.res < 0) {
		ASSERT_ERR(s.res, -EEXIST);
		ASSERT_TRUE(t_backend_is("uring"));
	}
	T_STEP("back on the first thread the op completes");
	ASSERT_OK(t_op_wait(s.loop, &s.tm, 2000));
	ASSERT_ERR(s.tm.res, -ETIME);
	t_loop_free(s.loop);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(loop_made_in_main_runs_in_a_thread),
	T_CASE(loops_made_in_two_threads_each_reach_their_own_ring),
	T_CASE(loop_run_on_a_second_thread_works_or_says_eexist),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
