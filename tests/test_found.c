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

int main(int argc, char **argv)
{
	static const struct t_case cases[] = {
		T_CASE(watcher_starts_on_a_regular_file_that_reused_a_watched_number),
	};

	return t_main(argc, argv, cases, T_NELEM(cases));
}
