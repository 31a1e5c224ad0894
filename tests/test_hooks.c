/* SPDX-License-Identifier: MIT */
/*
 * test_hooks.c - loop hooks (prepare, check, idle) and reference counting
 * (evq_*_unref/ref, EVQ_OP_UNREF): when each hook runs in an iteration,
 * that an idle hook keeps the loop from blocking, that hooks survive
 * stops and restarts inside a pass, and that a loop whose only active
 * watchers are unref'd returns from EVQ_RUN_DEFAULT - the SIGTERM watcher
 * that must not keep a finished program alive.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

/* What happened, in order: 'P'repare, 'C'heck, 'I'dle, 'T'imer, 'R'ead. */
static char trail[256];
static int ntrail;

static void mark(char c)
{
	if (ntrail < (int)sizeof(trail) - 1)
		trail[ntrail++] = c;
	trail[ntrail] = '\0';
}

static void trail_reset(void)
{
	ntrail = 0;
	trail[0] = '\0';
}

struct th {
	struct evq_hook h;
	char tag;
	int count;
	int stop_after;		/* stop itself after this many runs; 0: no */
	void (*then)(struct evq_loop *loop, struct th *self);
	void *arg;
};

static void th_cb(struct evq_loop *loop, struct evq_hook *h)
{
	struct th *x = h->data;

	EXPECT_TRUE(x != NULL && &x->h == h);
	x->count++;
	mark(x->tag);
	if (x->stop_after && x->count >= x->stop_after)
		EXPECT_OK(evq_hook_stop(h));
	if (x->then)
		x->then(loop, x);
}

static int th_start(struct evq_loop *loop, struct th *x,
		    enum evq_hook_kind kind, char tag)
{
	x->h.data = x;
	x->tag = tag;
	return evq_hook_start(loop, &x->h, kind, th_cb);
}

static int timer_runs;

static void timer_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
	timer_runs++;
	mark('T');
}

static void read_cb(struct evq_loop *loop, struct evq_io *w, unsigned rev)
{
	(void)loop;
	EXPECT_TRUE(rev & EVQ_READ);
	mark('R');
	(void)t_drain(w->fd);
}

/* Marks 'R' and leaves the data: the fd stays readable. */
static void never_drain_cb(struct evq_loop *loop, struct evq_io *w,
			   unsigned rev)
{
	(void)loop;
	(void)w;
	EXPECT_TRUE(rev & EVQ_READ);
	mark('R');
}

static int op_runs, op_res;

static void op_cb(struct evq_loop *loop, struct evq_op *op, int res,
		  unsigned flags)
{
	(void)loop;
	(void)op;
	(void)flags;
	op_runs++;
	op_res = res;
}

static void async_cb(struct evq_loop *loop, struct evq_async *a)
{
	(void)loop;
	(void)a;
}

static int sig_runs;

static void sig_cb(struct evq_loop *loop, struct evq_signal *s)
{
	(void)loop;
	(void)s;
	sig_runs++;
}

/* ------------------------------------------------------------------------
 * Reference counting
 * ------------------------------------------------------------------------ */

/* The motivating case of issue 14: a program that watches SIGTERM to shut
 * down cleanly must still end when its work is done. */
static int sigterm_watcher_unrefd_lets_the_loop_return(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_signal s = { 0 };
	struct evq_timer work = { 0 };
	struct t_guard g = { 0 };

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	sig_runs = timer_runs = 0;
	T_STEP("a SIGTERM watcher, unref'd, and some work (a 5 ms timer)");
	ASSERT_OK(evq_signal_start(loop, &s, SIGTERM, sig_cb));
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_OK(evq_signal_unref(&s));
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_OK(evq_timer_start(loop, &work, 5 * T_MS, 0, timer_cb));
	ASSERT_EQ(evq_loop_active(loop), 1);
	/* The guard must not hold the loop either. */
	ASSERT_OK(t_guard_start(loop, &g, 3000, "the unref'd SIGTERM watcher"
				" kept the loop running"));
	ASSERT_OK(evq_timer_unref(&g.timer));

	T_STEP("evq_loop_run(DEFAULT) returns 0 once the work is done");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(timer_runs, 1);
	ASSERT_EQ(g.fired, 0);
	ASSERT_TRUE(evq_signal_is_active(&s));

	T_STEP("the watcher still works while something else runs the loop");
	ASSERT_OK(evq_timer_start(loop, &work, 2000 * T_MS, 0, timer_cb));
	ASSERT_OK(kill(getpid(), SIGTERM));
	ASSERT_GE(t_run_once(loop, 1000), 0);
	ASSERT_EQ(sig_runs, 1);
	ASSERT_OK(evq_timer_stop(&work));

	T_STEP("ref'd again, it keeps the loop running as before");
	ASSERT_OK(evq_signal_ref(&s));
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_OK(evq_signal_stop(&s));
	ASSERT_EQ(evq_loop_active(loop), 0);
	t_guard_stop(&g);
	t_loop_free(loop);
	return T_PASS;
}

/* Every kind of watcher and an op: unref'd, none is counted, and the
 * mark stays across stop and start until ref. */
static int unref_marks_every_watcher_kind_and_ops(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	struct evq_timer t = { 0 };
	struct evq_async a = { 0 };
	struct th h = { 0 };
	struct evq_op op = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	ASSERT_OK(t_pipe(p));
	op_runs = 0;

	T_STEP("NULL is -EINVAL for every call");
	ASSERT_ERR(evq_io_unref(NULL), -EINVAL);
	ASSERT_ERR(evq_io_ref(NULL), -EINVAL);
	ASSERT_ERR(evq_timer_unref(NULL), -EINVAL);
	ASSERT_ERR(evq_timer_ref(NULL), -EINVAL);
	ASSERT_ERR(evq_signal_unref(NULL), -EINVAL);
	ASSERT_ERR(evq_signal_ref(NULL), -EINVAL);
	ASSERT_ERR(evq_async_unref(NULL), -EINVAL);
	ASSERT_ERR(evq_async_ref(NULL), -EINVAL);
	ASSERT_ERR(evq_hook_unref(NULL), -EINVAL);
	ASSERT_ERR(evq_hook_ref(NULL), -EINVAL);

	T_STEP("unref before start: the start is not counted");
	ASSERT_OK(evq_io_unref(&w));
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, read_cb));
	ASSERT_OK(evq_timer_unref(&t));
	ASSERT_OK(evq_timer_start(loop, &t, 3600000 * T_MS, 0, timer_cb));
	ASSERT_EQ(evq_loop_active(loop), 0);

	T_STEP("unref while active: the count drops at once; twice is once");
	ASSERT_OK(evq_async_start(loop, &a, async_cb));
	ASSERT_OK(th_start(loop, &h, EVQ_HOOK_PREPARE, 'P'));
	ASSERT_EQ(evq_loop_active(loop), 2);
	ASSERT_OK(evq_async_unref(&a));
	ASSERT_OK(evq_async_unref(&a));
	ASSERT_OK(evq_hook_unref(&h.h));
	ASSERT_EQ(evq_loop_active(loop), 0);

	T_STEP("an op submitted with EVQ_OP_UNREF is in flight, not counted");
	evq_prep_timeout(&op, 3600000 * T_MS);
	ASSERT_OK(evq_op_submit(loop, &op, EVQ_OP_UNREF, op_cb));
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_EQ(evq_loop_ops(loop), 1);
	ASSERT_TRUE(evq_op_is_active(&op));

	T_STEP("only unref'd things: DEFAULT returns 0 without blocking");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_TRUE(evq_io_is_active(&w) && evq_timer_is_active(&t) &&
		    evq_async_is_active(&a) && evq_hook_is_active(&h.h));

	T_STEP("the mark stays across stop and start");
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, read_cb));
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_OK(evq_io_resume(&w));
	ASSERT_OK(evq_timer_start(loop, &t, 3600000 * T_MS, 0, timer_cb));
	ASSERT_OK(evq_async_stop(&a));
	ASSERT_OK(evq_async_start(loop, &a, async_cb));
	ASSERT_OK(th_start(loop, &h, EVQ_HOOK_CHECK, 'C'));
	ASSERT_EQ(evq_loop_active(loop), 0);

	T_STEP("ref counts each again, twice is once");
	ASSERT_OK(evq_io_ref(&w));
	ASSERT_OK(evq_io_ref(&w));
	ASSERT_OK(evq_timer_ref(&t));
	ASSERT_OK(evq_async_ref(&a));
	ASSERT_OK(evq_hook_ref(&h.h));
	ASSERT_EQ(evq_loop_active(loop), 4);
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_OK(evq_timer_stop(&t));
	ASSERT_OK(evq_async_stop(&a));
	ASSERT_OK(evq_hook_stop(&h.h));
	ASSERT_EQ(evq_loop_active(loop), 0);

	T_STEP("a stopped watcher's ref or unref changes no count");
	ASSERT_OK(evq_io_unref(&w));
	ASSERT_OK(evq_timer_unref(&t));
	ASSERT_EQ(evq_loop_active(loop), 0);

	T_STEP("the unref'd op is cancelled by the free, callback and all");
	t_close2(p);
	t_loop_free(loop);
	ASSERT_EQ(op_runs, 1);
	ASSERT_ERR(op_res, -ECANCELED);
	return T_PASS;
}

/* An unref'd op still completes while something else runs the loop. */
static int unrefd_op_completes_while_the_loop_runs(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_op op = { 0 };
	struct evq_timer t = { 0 };

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	op_runs = timer_runs = 0;
	evq_prep_timeout(&op, 1 * T_MS);
	ASSERT_OK(evq_op_submit(loop, &op, EVQ_OP_UNREF, op_cb));
	ASSERT_OK(evq_timer_start(loop, &t, 200 * T_MS, 0, timer_cb));
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(op_runs, 1);
	ASSERT_ERR(op_res, -ETIME);
	ASSERT_EQ(timer_runs, 1);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);

	T_STEP("a plain submit of the same op counts again");
	evq_prep_nop(&op);
	ASSERT_OK(evq_op_submit(loop, &op, 0, op_cb));
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(op_runs, 2);
	ASSERT_EQ(op_res, 0);
	t_loop_free(loop);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Hooks
 * ------------------------------------------------------------------------ */

/* Is s one or more "PC" (a wait with its prepare and check), then last? */
static bool pc_pairs_then(const char *s, char last)
{
	size_t n = strlen(s);

	if (n < 3 || n % 2 == 0 || s[n - 1] != last)
		return false;
	for (size_t i = 0; i + 1 < n; i += 2)
		if (s[i] != 'P' || s[i + 1] != 'C')
			return false;
	return true;
}

static int hook_start_rejects_bad_arguments(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_hook h = { 0 };

	ASSERT_NOTNULL(loop);
	ASSERT_ERR(evq_hook_start(NULL, &h, EVQ_HOOK_IDLE, th_cb), -EINVAL);
	ASSERT_ERR(evq_hook_start(loop, NULL, EVQ_HOOK_IDLE, th_cb), -EINVAL);
	ASSERT_ERR(evq_hook_start(loop, &h, EVQ_HOOK_IDLE, NULL), -EINVAL);
	ASSERT_ERR(evq_hook_start(loop, &h, (enum evq_hook_kind)3, th_cb),
		   -EINVAL);
	ASSERT_ERR(evq_hook_start(loop, &h, (enum evq_hook_kind)-1, th_cb),
		   -EINVAL);
	ASSERT_ERR(evq_hook_stop(NULL), -EINVAL);
	ASSERT_EQ(evq_hook_is_active(NULL), 0);
	ASSERT_EQ(evq_hook_is_active(&h), 0);
	ASSERT_OK(evq_hook_stop(&h));	/* inactive: a no-op */
	ASSERT_EQ(evq_loop_active(loop), 0);
	t_loop_free(loop);
	return T_PASS;
}

/* prepare, wait, check, then what the wait found: per iteration. */
static int prepare_and_check_run_around_each_wait(void)
{
	struct evq_loop *loop = t_loop_new();
	struct th pre = { 0 }, chk = { 0 };
	struct evq_timer t = { 0 };

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	trail_reset();
	ASSERT_OK(th_start(loop, &pre, EVQ_HOOK_PREPARE, 'P'));
	ASSERT_OK(th_start(loop, &chk, EVQ_HOOK_CHECK, 'C'));
	ASSERT_EQ(evq_loop_active(loop), 2);
	/* unref'd hooks: the loop ends with the timer */
	ASSERT_OK(evq_hook_unref(&pre.h));
	ASSERT_OK(evq_hook_unref(&chk.h));
	ASSERT_OK(evq_timer_start(loop, &t, 5 * T_MS, 0, timer_cb));

	T_STEP("one iteration: P, wait (5 ms), C, the timer");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
	/* A wait the kernel interrupts (EINTR) is made again in ONCE mode,
	 * with its own prepare and check: "PCPCT" is right too. */
	ASSERT_TRUE(pc_pairs_then(trail, 'T'));

	T_STEP("DEFAULT with nothing referenced: no hook runs");
	trail_reset();
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_STREQ(trail, "");

	T_STEP("stopped, they run no more");
	ASSERT_OK(evq_hook_stop(&pre.h));
	ASSERT_OK(evq_hook_stop(&chk.h));
	ASSERT_OK(evq_timer_start(loop, &t, 1 * T_MS, 0, timer_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_STREQ(trail, "T");
	t_loop_free(loop);
	return T_PASS;
}

/* What a prepare callback starts is in the wait that follows it: the
 * integration case (a foreign library's fds, registered just in time). */
static void start_reader(struct evq_loop *loop, struct th *x)
{
	struct evq_io *w = x->arg;

	if (!evq_io_is_active(w))
		EXPECT_OK(evq_io_start(loop, w, w->fd, EVQ_READ, read_cb));
}

static int prepare_starts_are_part_of_the_wait(void)
{
	struct evq_loop *loop = t_loop_new();
	struct th pre = { 0 };
	struct evq_io w = { 0 };
	struct evq_timer keep = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	ASSERT_OK(t_pipe(p));
	trail_reset();
	w.fd = p[0];
	pre.arg = &w;
	pre.then = start_reader;
	pre.stop_after = 1;
	ASSERT_OK(th_start(loop, &pre, EVQ_HOOK_PREPARE, 'P'));
	ASSERT_OK(t_write_byte(p[1]));
	/* keeps the loop from finishing, never fires */
	ASSERT_OK(evq_timer_start(loop, &keep, 5000 * T_MS, 0, timer_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_ONCE), 1);
	ASSERT_STREQ(trail, "PR");
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_OK(evq_timer_stop(&keep));
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

/* An idle hook: the loop does not block while it is active, and it runs
 * only in iterations that found nothing. */
static void stop_timer(struct evq_loop *loop, struct th *x)
{
	(void)loop;
	if (x->count == 50)
		EXPECT_OK(evq_timer_stop(x->arg));
}

static int idle_runs_when_nothing_is_pending_and_never_blocks(void)
{
	struct evq_loop *loop = t_loop_new();
	struct th idle = { 0 };
	struct evq_timer far = { 0 };
	uint64_t t0;

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	trail_reset();
	T_STEP("an hour's timer and an idle hook that stops it at run 50");
	ASSERT_OK(evq_timer_start(loop, &far, 3600000 * T_MS, 0, timer_cb));
	idle.arg = &far;
	idle.then = stop_timer;
	idle.stop_after = 50;
	ASSERT_OK(th_start(loop, &idle, EVQ_HOOK_IDLE, 'I'));
	ASSERT_EQ(evq_loop_timeout(loop), 0);
	t0 = t_now_ns();
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(idle.count, 50);
	ASSERT_LT(t_now_ns() - t0, 5000 * T_MS);
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_EQ(evq_loop_timeout(loop), -1);
	t_loop_free(loop);
	return T_PASS;
}

static int idle_waits_while_an_fd_keeps_reporting(void)
{
	struct evq_loop *loop = t_loop_new();
	struct th idle = { 0 };
	struct evq_io w = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	ASSERT_OK(t_pipe(p));
	trail_reset();
	ASSERT_OK(th_start(loop, &idle, EVQ_HOOK_IDLE, 'I'));
	T_STEP("a readable fd: iterations report it, idle does not run");
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, never_drain_cb));
	ASSERT_OK(t_write_byte(p[1]));
	for (int i = 0; i < 5; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_ONCE), 1);
	ASSERT_EQ(idle.count, 0);
	ASSERT_EQ(ntrail, 5);

	T_STEP("drained: the next iteration finds nothing, idle runs");
	ASSERT_GT(t_drain(p[0]), 0);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_ONCE), 1);
	ASSERT_EQ(idle.count, 1);
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_OK(evq_hook_stop(&idle.h));
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

/* A pass survives its callbacks: A stops B (next in line) and starts D;
 * C stops and restarts itself. B never runs; C once; D waits for the
 * next pass. */
static struct th pass_h[4];

static void a_then(struct evq_loop *loop, struct th *x)
{
	(void)x;
	EXPECT_OK(evq_hook_stop(&pass_h[1].h));
	if (!evq_hook_is_active(&pass_h[3].h))
		EXPECT_OK(th_start(loop, &pass_h[3], EVQ_HOOK_CHECK, 'D'));
}

static void c_then(struct evq_loop *loop, struct th *x)
{
	EXPECT_OK(evq_hook_stop(&x->h));
	EXPECT_OK(th_start(loop, x, EVQ_HOOK_CHECK, 'c'));
}

static int hooks_survive_stops_and_starts_inside_a_pass(void)
{
	struct evq_loop *loop = t_loop_new();

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	memset(pass_h, 0, sizeof(pass_h));
	trail_reset();
	pass_h[0].then = a_then;
	pass_h[2].then = c_then;
	ASSERT_OK(th_start(loop, &pass_h[0], EVQ_HOOK_CHECK, 'A'));
	ASSERT_OK(th_start(loop, &pass_h[1], EVQ_HOOK_CHECK, 'B'));
	ASSERT_OK(th_start(loop, &pass_h[2], EVQ_HOOK_CHECK, 'c'));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_STREQ(trail, "Ac");
	trail_reset();
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_STREQ(trail, "ADc");
	ASSERT_EQ(pass_h[1].count, 0);
	T_STEP("the loop's free detaches them");
	t_loop_free(loop);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(evq_hook_is_active(&pass_h[i].h), 0);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(sigterm_watcher_unrefd_lets_the_loop_return),
	T_CASE(unref_marks_every_watcher_kind_and_ops),
	T_CASE(unrefd_op_completes_while_the_loop_runs),
	T_CASE(hook_start_rejects_bad_arguments),
	T_CASE(prepare_and_check_run_around_each_wait),
	T_CASE(prepare_starts_are_part_of_the_wait),
	T_CASE(idle_runs_when_nothing_is_pending_and_never_blocks),
	T_CASE(idle_waits_while_an_fd_keeps_reporting),
	T_CASE(hooks_survive_stops_and_starts_inside_a_pass),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
