/* SPDX-License-Identifier: MIT */
/*
 * test_uring.c - what only the io_uring backend has to prove: no
 * completion lost with a tiny ring, exact waits with ops in flight, and a
 * loop that survives fork() in the parent. Registered for uring only.
 */
#include "helpers.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOPS 10000

static unsigned char seen[NOPS];
static int completions, bad;

static void count_cb(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned flags)
{
	size_t i = (size_t)(uintptr_t)op->data;

	(void)loop;
	(void)flags;
	if (i >= NOPS || seen[i]++) {
		bad++;
		return;
	}
	/* nops give 0, timeouts -ETIME */
	if (res != 0 && res != -ETIME)
		bad++;
	completions++;
}

/* 10,000 ops through a ring with 4 SQ entries (and a CQ of 8): full SQs
 * are submitted mid-iteration and the CQ overflows into the kernel's
 * backlog (IORING_FEAT_NODROP); every op must complete exactly once. */
static int tiny_ring_every_op_once(void)
{
	struct evq_loop_options o = { .uring_entries = 4 };
	static struct evq_op ops[NOPS];
	struct evq_loop *loop = t_loop_new_opts(&o);
	struct t_guard g;

	ASSERT_NOTNULL(loop);
	memset(ops, 0, sizeof(ops));
	memset(seen, 0, sizeof(seen));
	completions = bad = 0;
	for (int i = 0; i < NOPS; i++) {
		ops[i].data = (void *)(uintptr_t)i;
		if (i % 2)
			evq_prep_timeout(&ops[i], 1 * T_MS);
		else
			evq_prep_nop(&ops[i]);
		ASSERT_OK(evq_op_submit(loop, &ops[i], 0, count_cb));
	}
	ASSERT_EQ(evq_loop_ops(loop), NOPS);
	ASSERT_OK(t_guard_start(loop, &g, 10000, "10,000 ops"));
	while (evq_loop_ops(loop) > 0 && !g.fired)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
	t_guard_stop(&g);
	ASSERT_EQ(completions, NOPS);
	ASSERT_EQ(bad, 0);
	for (int i = 0; i < NOPS; i++)
		ASSERT_EQ(seen[i], 1);
	t_loop_free(loop);
	return T_PASS;
}

static int timer_fired;
static uint64_t timer_at;

static void timer_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
	timer_fired++;
	timer_at = t_now_ns();
}

static void idle_recv_cb(struct evq_loop *loop, struct evq_op *op, int res,
			 unsigned flags)
{
	(void)loop;
	(void)flags;
	*(int *)op->data = res;
}

/* Lesson 4 of BACKGROUND.md: a wait with ops in flight must wake at the
 * timer, not at twice the timer. A recv on an idle socket keeps the ring
 * busy, so the wait goes through io_uring_enter(), not epoll. */
static int exact_wait_with_ops_in_flight(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_op recv_op = { 0 }, cancel = { 0 };
	struct evq_timer t = { 0 };
	int sv[2], recv_res = 1, cancel_res = 1;
	char buf[16];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	recv_op.data = &recv_res;
	evq_prep_recv(&recv_op, sv[0], buf, sizeof(buf), 0);
	ASSERT_OK(evq_op_submit(loop, &recv_op, 0, idle_recv_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);

	for (int round = 0; round < 5; round++) {
		uint64_t t0, dt;

		T_STEP("round %d: 50 ms timer, recv in flight", round);
		timer_fired = 0;
		t0 = t_now_ns();
		ASSERT_OK(evq_timer_start(loop, &t, 50 * T_MS, 0, timer_cb));
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_ONCE), 1);
		ASSERT_EQ(timer_fired, 1);
		dt = timer_at - t0;
		ASSERT_GE(dt, 50 * T_MS);
		ASSERT_LT(dt, 90 * T_MS);	/* twice would be 100 */
	}
	ASSERT_EQ(recv_res, 1);	/* still in flight */

	T_STEP("cancel the recv");
	cancel.data = &cancel_res;
	evq_prep_cancel(&cancel, &recv_op);
	ASSERT_OK(evq_op_submit(loop, &cancel, 0, idle_recv_cb));
	while (evq_loop_ops(loop) > 0)
		ASSERT_GE(t_run_once(loop, 2000), 0);
	ASSERT_ERR(recv_res, -ECANCELED);
	ASSERT_OK(cancel_res);
	t_close2(sv);
	t_loop_free(loop);
	return T_PASS;
}

static void nop_cb(struct evq_loop *loop, struct evq_op *op, int res,
		   unsigned flags)
{
	(void)loop;
	(void)flags;
	*(int *)op->data = res;
}

/* After fork() the child frees its copy of the loop and makes a new one;
 * the parent's loop and ring keep working. */
static int fork_child_frees_and_recreates(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_op op = { 0 };
	int res = 1, status;
	pid_t pid;

	ASSERT_NOTNULL(loop);
	op.data = &res;
	evq_prep_timeout(&op, 100 * T_MS);
	ASSERT_OK(evq_op_submit(loop, &op, 0, nop_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct evq_loop *child;
		struct evq_op cop = { 0 };
		int cres = 1;

		/* The child's copy: freed without touching the parent's
		 * ring (the op in it belongs to the parent). */
		evq_loop_free(loop);
		if (evq_loop_new(&child, NULL) < 0)
			_exit(2);
		cop.data = &cres;
		evq_prep_nop(&cop);
		if (evq_op_submit(child, &cop, 0, nop_cb) < 0)
			_exit(3);
		evq_loop_run(child, EVQ_RUN_DEFAULT);
		_exit(cres == 0 ? 0 : 4);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);

	T_STEP("the parent's timeout op still completes");
	while (evq_loop_ops(loop) > 0)
		ASSERT_GE(t_run_once(loop, 2000), 0);
	ASSERT_ERR(res, -ETIME);
	t_loop_free(loop);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(tiny_ring_every_op_once),
	T_CASE(exact_wait_with_ops_in_flight),
	T_CASE(fork_child_frees_and_recreates),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
