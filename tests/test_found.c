/* SPDX-License-Identifier: MIT */
/*
 * test_found.c - regressions for bugs the reliability machinery (issue
 * 13: tests/test_random.c, tests/fault/) found on main; each case names
 * the tool and seed that found it. The fixes belong to src/ (not done on
 * this branch): until then these cases fail where the bug is.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int fired;

static void count_cb(struct evq_loop *loop, struct evq_io *w, unsigned ev)
{
	(void)loop;
	(void)w;
	(void)ev;
	fired++;
}

/* test_random, uring, seed 0x10daaeb8001b: a watcher left active on a
 * pipe closed with close(); a memfd takes the number; a watcher started
 * on the memfd got -EPERM (epoll_ctl's answer for a regular file) instead
 * of evq noticing the old watcher's fd was gone (evq.h, close-safety: "at
 * the latest when a watcher starts on the reused number"). */
static int watcher_starts_on_a_regular_file_that_reused_a_watched_number(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w1 = { 0 }, w2 = { 0 };
	int p[2], m;

	ASSERT_NOTNULL(loop);
	T_STEP("watch a pipe's read end, then close() it behind evq's back");
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(evq_io_start(loop, &w1, p[0], EVQ_READ, count_cb));
	ASSERT_EQ(t_write_byte(p[1]), 0);
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	t_close2(p);
	T_STEP("a memfd takes the number; watch it for read and write");
	m = memfd_create("evq-found", MFD_CLOEXEC);
	ASSERT_GE(m, 0);
	EXPECT_OK(evq_io_start(loop, &w2, m, EVQ_READ | EVQ_WRITE,
			       count_cb));
	fired = 0;
	if (evq_io_is_active(&w2))
		EXPECT_GE(t_run_once(loop, 1000), 0);
	evq_io_stop(&w1);
	evq_io_stop(&w2);
	close(m);
	t_loop_free(loop);
	return T_PASS;
}

static int op_calls, op_res;

static void op_cb(struct evq_loop *loop, struct evq_op *op, int res,
		  unsigned flags)
{
	(void)loop;
	(void)op;
	(void)flags;
	op_calls++;
	op_res = res;
}

/* test_random, uring (evq_loop_run -EEXIST in about 1 s): a fork child
 * freed its copy of the loop, and the free entered the ring the child
 * shares with its parent: it cancelled every op of the parent's (a cancel
 * of all in the parent's ring) and enabled the parent's disabled
 * SINGLE_ISSUER ring for itself, after which the parent's runs failed
 * with -EEXIST. The child's free must leave the parent's loop as it was:
 * its op still in flight, its watcher still watching. */
static int fork_child_free_run(bool ran_before_fork)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_op rd = { 0 };
	struct evq_io w = { 0 };
	char buf[8];
	int p[2], q[2], status;
	pid_t pid;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(t_pipe(q));
	T_STEP("a read op and a watcher, in flight, before any run");
	evq_prep_read(&rd, p[0], buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(evq_op_submit(loop, &rd, 0, op_cb));
	ASSERT_OK(evq_io_start(loop, &w, q[0], EVQ_READ, count_cb));
	op_calls = fired = 0;
	if (ran_before_fork) {
		T_STEP("the parent runs once: the op is in the kernel");
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		ASSERT_EQ(op_calls, 0);
	}
	T_STEP("fork; the child frees its copy and exits");
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		alarm(5);
		_exit(evq_loop_free(loop) == 0 ? 0 : 3);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	T_STEP("the parent's op and watcher still work");
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(op_calls, 0);
	ASSERT_EQ(t_write_byte(p[1]), 0);
	ASSERT_EQ(t_write_byte(q[1]), 0);
	for (int i = 0; i < 100 && (op_calls == 0 || fired == 0); i++)
		ASSERT_GE(t_run_once(loop, 100), 0);
	ASSERT_EQ(op_calls, 1);
	ASSERT_ERR(op_res, 1);
	ASSERT_GE(fired, 1);
	evq_io_stop(&w);
	t_close2(p);
	t_close2(q);
	t_loop_free(loop);
	return T_PASS;
}

static int fork_child_freeing_its_copy_leaves_the_parent_loop_alone(void)
{
	if (fork_child_free_run(false) != T_PASS)
		return T_FAIL;
	return fork_child_free_run(true);
}

/* Found by test_limits (fork_with_ops_in_flight), issue 13 item 5, uring:
 * an op submitted but never started (no loop iteration since) must
 * complete with -ECANCELED when the loop is freed (evq.h, evq_loop_free:
 * "ops not started ... with -ECANCELED"), in the process that made the
 * loop and in a fork child freeing its copy (docs/ARCHITECTURE.md: only
 * "ops the kernel holds end without a callback" there). On uring the
 * parent's free runs the nop (res 0) and the child's free never calls
 * it back (0 calls); epoll, poll and aio give -ECANCELED in both. */
static int never_started_op_at_free_is_cancelled(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_op nop = { 0 };
	int status;
	pid_t pid;

	ASSERT_NOTNULL(loop);
	T_STEP("a nop submitted, the loop freed before any run");
	evq_prep_nop(&nop);
	op_calls = 0;
	op_res = 12345;
	ASSERT_OK(evq_op_submit(loop, &nop, 0, op_cb));
	ASSERT_OK(evq_loop_free(loop));
	EXPECT_EQ(op_calls, 1);
	EXPECT_ERR(op_res, -ECANCELED);

	T_STEP("the same in a fork child freeing its copy");
	loop = t_loop_new();
	ASSERT_NOTNULL(loop);
	memset(&nop, 0, sizeof(nop));
	evq_prep_nop(&nop);
	op_calls = 0;
	op_res = 12345;
	ASSERT_OK(evq_op_submit(loop, &nop, 0, op_cb));
	fflush(stdout);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		alarm(5);
		if (evq_loop_free(loop) != 0)
			_exit(3);
		if (op_calls != 1)
			_exit(4);
		_exit(op_res == -ECANCELED ? 0 : 5);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	/* 4: no callback, 5: another result */
	EXPECT_EQ(WEXITSTATUS(status), 0);
	op_calls = 0;
	ASSERT_OK(evq_loop_free(loop));
	EXPECT_EQ(op_calls, 1);
	return T_PASS;
}

int main(int argc, char **argv)
{
	static const struct t_case cases[] = {
		T_CASE(watcher_starts_on_a_regular_file_that_reused_a_watched_number),
		T_CASE(fork_child_freeing_its_copy_leaves_the_parent_loop_alone),
		T_CASE(never_started_op_at_free_is_cancelled),
	};

	return t_main(argc, argv, cases, T_NELEM(cases));
}
