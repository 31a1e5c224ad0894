/* SPDX-License-Identifier: MIT */
/*
 * test_child.c - child process watchers: the exit status delivered once
 * (exit code, killing signal), a child that exited before the start,
 * start errors, stop leaving the child to the caller, the caller's own
 * waitpid, two loops each with its own child, and unref.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

struct tc {
	struct evq_child c;
	int count;
	int status;
	int active_in_cb;
	struct evq_loop *loop_arg;
};

static void tc_cb(struct evq_loop *loop, struct evq_child *c, int status)
{
	struct tc *x = c->data;

	EXPECT_TRUE(x != NULL && &x->c == c);
	x->count++;
	x->status = status;
	x->active_in_cb = evq_child_is_active(c);
	x->loop_arg = loop;
}

static int tc_start(struct evq_loop *loop, struct tc *x, int pid)
{
	x->c.data = x;
	return evq_child_start(loop, &x->c, pid, tc_cb);
}

/* A child that exits with code, at once (code < 0: waits for a signal). */
static int spawn(int code)
{
	int pid = fork();

	if (pid == 0) {
		if (code < 0)
			for (;;)
				pause();
		_exit(code);
	}
	return pid;
}

/* Skip where the kernel has no pidfd (before 5.3): -ENOSYS by design. */
/* Has the kernel pidfd_open (5.3)? Asked once per process: each probe
 * forks a child. */
static bool no_pidfd(struct evq_loop *loop)
{
	static int missing = -1;

	if (missing < 0) {
		struct evq_child c = { 0 };
		int pid = spawn(0), r;

		r = evq_child_start(loop, &c, pid, tc_cb);
		if (r == 0)
			evq_child_stop(&c);
		waitpid(pid, NULL, 0);
		missing = r == -ENOSYS;
	}
	return missing;
}

/* Every case needs pidfds: without them it frees its loop and skips. */
#define SKIP_WITHOUT_PIDFD(loop)					\
	do {								\
		if (no_pidfd(loop)) {					\
			t_loop_free(loop);				\
			return t_skip("no pidfd_open (Linux < 5.3): "	\
				      "-ENOSYS");			\
		}							\
	} while (0)

static int exit_status_delivered_once(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tc x = { 0 };
	struct t_guard g = { 0 };
	int pid;

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	SKIP_WITHOUT_PIDFD(loop);
	pid = spawn(7);
	ASSERT_GT(pid, 0);
	ASSERT_OK(tc_start(loop, &x, pid));
	ASSERT_EQ(evq_child_is_active(&x.c), 1);
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_ERR(tc_start(loop, &x, pid), -EBUSY);
	ASSERT_OK(t_guard_start(loop, &g, 5000, "the child's exit"));
	ASSERT_OK(evq_timer_unref(&g.timer));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_TRUE(WIFEXITED(x.status));
	ASSERT_EQ(WEXITSTATUS(x.status), 7);
	ASSERT_EQ(x.active_in_cb, 0);
	ASSERT_TRUE(x.loop_arg == loop);
	T_STEP("reaped by evq: the caller's waitpid finds nothing");
	ASSERT_EQ(waitpid(pid, NULL, WNOHANG), -1);
	ASSERT_EQ(errno, ECHILD);
	t_guard_stop(&g);
	t_loop_free(loop);
	return T_PASS;
}

static int killed_child_reports_its_signal(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tc x = { 0 };
	int pid;

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	SKIP_WITHOUT_PIDFD(loop);
	pid = spawn(-1);
	ASSERT_GT(pid, 0);
	ASSERT_OK(tc_start(loop, &x, pid));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(x.count, 0);
	ASSERT_OK(kill(pid, SIGKILL));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_TRUE(WIFSIGNALED(x.status));
	ASSERT_EQ(WTERMSIG(x.status), SIGKILL);
	t_loop_free(loop);
	return T_PASS;
}

static int exited_before_start_is_reported(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tc x = { 0 };
	siginfo_t si;
	int pid;

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	SKIP_WITHOUT_PIDFD(loop);
	pid = spawn(3);
	ASSERT_GT(pid, 0);
	/* a zombie now, not reaped */
	ASSERT_OK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT));
	ASSERT_OK(tc_start(loop, &x, pid));
	ASSERT_EQ(x.count, 0);	/* never inside the start */
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_EQ(WEXITSTATUS(x.status), 3);
	t_loop_free(loop);
	return T_PASS;
}

static int start_errors(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tc x = { 0 };
	int pid;

	ASSERT_NOTNULL(loop);
	SKIP_WITHOUT_PIDFD(loop);
	ASSERT_ERR(evq_child_start(NULL, &x.c, 1, tc_cb), -EINVAL);
	ASSERT_ERR(evq_child_start(loop, NULL, 1, tc_cb), -EINVAL);
	ASSERT_ERR(evq_child_start(loop, &x.c, 1, NULL), -EINVAL);
	ASSERT_ERR(evq_child_start(loop, &x.c, 0, tc_cb), -EINVAL);
	ASSERT_ERR(evq_child_start(loop, &x.c, -1, tc_cb), -EINVAL);
	ASSERT_ERR(evq_child_stop(NULL), -EINVAL);
	ASSERT_ERR(evq_child_unref(NULL), -EINVAL);
	ASSERT_ERR(evq_child_ref(NULL), -EINVAL);
	ASSERT_EQ(evq_child_is_active(NULL), 0);
	T_STEP("not a child: the parent of this process");
	ASSERT_ERR(tc_start(loop, &x, (int)getppid()), -ECHILD);
	T_STEP("a child already reaped: gone");
	pid = spawn(0);
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	ASSERT_ERR(tc_start(loop, &x, pid), -ESRCH);
	ASSERT_EQ(evq_child_is_active(&x.c), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	t_loop_free(loop);
	return T_PASS;
}

static int stop_leaves_the_child_to_the_caller(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tc x = { 0 };
	int pid, st = 0;

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	SKIP_WITHOUT_PIDFD(loop);
	pid = spawn(5);
	ASSERT_OK(tc_start(loop, &x, pid));
	ASSERT_OK(evq_child_stop(&x.c));
	ASSERT_OK(evq_child_stop(&x.c));	/* inactive: a no-op */
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_EQ(WEXITSTATUS(st), 5);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(x.count, 0);
	t_loop_free(loop);
	return T_PASS;
}

static int callers_own_waitpid_makes_it_echild(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tc x = { 0 };
	int pid;

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	SKIP_WITHOUT_PIDFD(loop);
	pid = spawn(0);
	ASSERT_OK(tc_start(loop, &x, pid));
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);	/* the caller reaps it */
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_ERR(x.status, -ECHILD);
	t_loop_free(loop);
	return T_PASS;
}

/* Two loops, a child each: neither takes the other's. Then unref: a
 * watcher of a child that never exits lets the loop return. */
static int two_loops_each_reap_their_own_and_unref(void)
{
	struct evq_loop *a = t_loop_new(), *b = t_loop_new();
	struct tc xa = { 0 }, xb = { 0 }, xs = { 0 };
	int pa, pb, ps;

	ASSERT_NOTNULL(a);
	ASSERT_NOTNULL(b);
	t_case_timeout(10);
	if (no_pidfd(a)) {
		t_loop_free(a);
		t_loop_free(b);
		return t_skip("no pidfd_open (Linux < 5.3): -ENOSYS");
	}
	pa = spawn(11);
	pb = spawn(22);
	ASSERT_OK(tc_start(a, &xa, pa));
	ASSERT_OK(tc_start(b, &xb, pb));
	ASSERT_EQ(evq_loop_run(b, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(evq_loop_run(a, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(WEXITSTATUS(xa.status), 11);
	ASSERT_EQ(WEXITSTATUS(xb.status), 22);

	T_STEP("an unref'd watcher of a sleeping child: run returns");
	ps = spawn(-1);
	ASSERT_OK(tc_start(a, &xs, ps));
	ASSERT_OK(evq_child_unref(&xs.c));
	ASSERT_EQ(evq_loop_active(a), 0);
	ASSERT_EQ(evq_loop_run(a, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(xs.count, 0);
	ASSERT_OK(evq_child_ref(&xs.c));
	ASSERT_EQ(evq_loop_active(a), 1);
	T_STEP("the loop's free detaches it; the child is the caller's");
	t_loop_free(a);
	ASSERT_EQ(evq_child_is_active(&xs.c), 0);
	ASSERT_OK(kill(ps, SIGKILL));
	ASSERT_EQ(waitpid(ps, NULL, 0), ps);
	t_loop_free(b);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(exit_status_delivered_once),
	T_CASE(killed_child_reports_its_signal),
	T_CASE(exited_before_start_is_reported),
	T_CASE(start_errors),
	T_CASE(stop_leaves_the_child_to_the_caller),
	T_CASE(callers_own_waitpid_makes_it_echild),
	T_CASE(two_loops_each_reap_their_own_and_unref),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
