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

/* ------------------------------------------------------------------------
 * Completions reaped while submitting (S2, S3 of issue 9)
 * ------------------------------------------------------------------------ */

#define NBURST 64

static struct evq_op burst[NBURST], burst_rd[5];
static int burst_done, burst_rd_done;
static int burst_pipe[2];
static char burst_buf[5];

static void burst_cb(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned flags)
{
	(void)loop;
	(void)flags;
	if (op >= burst_rd && op < burst_rd + 5) {
		burst_rd_done++;
		return;
	}
	if (res != 0)
		T_FAILF("nop %d: res %d", (int)(op - burst), res);
	burst_done++;
}

/* From a timer callback (not from the dispatch of completions), fill a
 * 4-entry ring many times over with nops, then queue reads that never
 * complete: a full SQ is submitted mid-callback and, with the CQ full,
 * completions are moved into the loop's array there. The next wait must
 * not block while they wait in that array. */
static void burst_timer_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)t;
	for (int i = 0; i < NBURST; i++) {
		evq_prep_nop(&burst[i]);
		EXPECT_OK(evq_op_submit(loop, &burst[i], 0, burst_cb));
	}
	for (int i = 0; i < 5; i++) {
		evq_prep_read(&burst_rd[i], burst_pipe[0], &burst_buf[i], 1,
			      EVQ_OFFSET_CURRENT);
		EXPECT_OK(evq_op_submit(loop, &burst_rd[i], 0, burst_cb));
	}
}

static int completions_reaped_while_submitting_do_not_wait(void)
{
	struct evq_loop_options o = { .uring_entries = 4 };
	struct evq_loop *loop = t_loop_new_opts(&o);
	struct evq_timer t = { 0 };
	struct t_guard g;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(burst_pipe));
	burst_done = burst_rd_done = 0;
	ASSERT_OK(evq_timer_start(loop, &t, 1 * T_MS, 0, burst_timer_cb));
	ASSERT_OK(t_guard_start(loop, &g, 1000, "nops left undelivered"));
	while (burst_done < NBURST && !g.fired)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
	t_guard_stop(&g);
	ASSERT_EQ(burst_done, NBURST);
	ASSERT_EQ(burst_rd_done, 0);
	T_STEP("the reads end at the loop's free");
	t_loop_free(loop);
	ASSERT_EQ(burst_rd_done, 5);
	t_close2(burst_pipe);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Random stress (S3 of issue 9)
 * ------------------------------------------------------------------------ */

#define SOPS 64
#define SPIPES 4

struct sop {
	struct evq_op op;
	int submits, calls;
	char buf[2];
};

static struct sop sops[SOPS];
static int stress_bad;

static void sop_cb(struct evq_loop *loop, struct evq_op *op, int res,
		   unsigned flags)
{
	struct sop *s = (struct sop *)op;

	(void)loop;
	(void)res;
	if (flags & EVQ_OP_F_MORE)
		return;
	if (++s->calls > s->submits) {
		T_FAILF("op %d: %d calls for %d submits (res %d)",
			(int)(s - sops), s->calls, s->submits, res);
		stress_bad++;
	}
}

static void tick_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
}

/* Seeded (EVQ_TEST_SEED), about two seconds: chains of nops, timeouts and
 * pipe reads, cancels by op and by fd, writes that satisfy reads, runs of
 * every mode, on a small ring. Every op completes exactly once, and the
 * loop goes idle at the end. */
static int random_ops_each_complete_once_and_loop_goes_idle(void)
{
	struct evq_loop_options o = { .uring_entries = 8 };
	struct evq_loop *loop = t_loop_new_opts(&o);
	int p[SPIPES][2];
	uint64_t end;
	struct evq_timer tick = { 0 };
	struct t_guard g;
	long steps = 0;

	ASSERT_NOTNULL(loop);
	t_rand_seed();
	t_case_timeout(30);
	memset(sops, 0, sizeof(sops));
	stress_bad = 0;
	for (int i = 0; i < SPIPES; i++)
		ASSERT_OK(t_pipe(p[i]));
	end = t_now_ns() + 2000 * T_MS;
	while (t_now_ns() < end && !stress_bad) {
		struct sop *s = &sops[t_rand() % SOPS];
		unsigned pick = (unsigned)(t_rand() % 100);
		unsigned flags = t_rand() % 3 == 0 ? EVQ_OP_LINK : 0;
		int fdi = (int)(t_rand() % SPIPES);

		steps++;
		if (pick < 60 && !evq_op_is_active(&s->op)) {
			unsigned kind = (unsigned)(t_rand() % 6);

			if (kind == 0) {
				evq_prep_nop(&s->op);
			} else if (kind <= 2) {
				evq_prep_timeout(&s->op,
						 (t_rand() % 3000) * 1000);
			} else if (kind <= 4) {
				evq_prep_read(&s->op, p[fdi][0], s->buf, 1,
					      EVQ_OFFSET_CURRENT);
			} else {
				struct sop *t = &sops[t_rand() % SOPS];

				if (t != s && t_rand() % 2)
					evq_prep_cancel(&s->op, &t->op);
				else
					evq_prep_cancel_fd(&s->op, p[fdi][0]);
			}
			ASSERT_OK(evq_op_submit(loop, &s->op, flags, sop_cb));
			s->submits++;
		} else if (pick < 70) {
			(void)!write(p[fdi][1], "x", 1);
		} else if (pick < 85) {
			ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		} else {
			/* ONCE, bounded by a short timer: pending reads may
			 * rightly keep it waiting. */
			ASSERT_OK(evq_timer_start(loop, &tick, 2 * T_MS, 0,
						  tick_cb));
			ASSERT_OK(t_guard_start(loop, &g, 2000,
						"EVQ_RUN_ONCE did not return"));
			ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
			t_guard_stop(&g);
			evq_timer_stop(&tick);
		}
	}
	t_note("%ld steps", steps);

	T_STEP("end every pending read, then run until idle");
	for (int i = 0; i < SPIPES; i++)
		for (int k = 0; k < SOPS; k++)
			(void)!write(p[i][1], "x", 1);
	ASSERT_OK(t_guard_start(loop, &g, 5000, "the loop never went idle"));
	while (evq_loop_ops(loop) > 0 && !g.fired)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
	t_guard_stop(&g);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	for (int i = 0; i < SOPS; i++) {
		T_STEP("op %d", i);
		ASSERT_EQ(sops[i].calls, sops[i].submits);
	}
	ASSERT_EQ(stress_bad, 0);
	for (int i = 0; i < SPIPES; i++)
		t_close2(p[i]);
	t_loop_free(loop);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(tiny_ring_every_op_once),
	T_CASE(exact_wait_with_ops_in_flight),
	T_CASE(fork_child_frees_and_recreates),
	T_CASE(completions_reaped_while_submitting_do_not_wait),
	T_CASE(random_ops_each_complete_once_and_loop_goes_idle),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
