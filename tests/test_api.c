/* SPDX-License-Identifier: MIT */
/*
 * test_api.c - the small calls of issue 14, item 5: a watcher's fd and
 * events, a pool's buffer size and count, ops submitted without a
 * callback (fire and forget), and the new names (evq_io_restart,
 * EVQ_OP_BUFID) next to the old ones they replace.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

static int io_runs;

static void io_cb(struct evq_loop *loop, struct evq_io *w, unsigned rev)
{
	(void)loop;
	(void)rev;
	io_runs++;
	/* What a callback wants without carrying the fd in data. */
	EXPECT_GE(evq_io_fd(w), 0);
	(void)t_drain(evq_io_fd(w));
}

static void op_cb(struct evq_loop *loop, struct evq_op *op, int res,
		  unsigned flags)
{
	(void)loop;
	(void)op;
	(void)res;
	(void)flags;
}

static int io_getters_give_the_last_start(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));

	T_STEP("NULL and a watcher never started");
	ASSERT_ERR(evq_io_fd(NULL), -EINVAL);
	ASSERT_ERR(evq_io_fd(&w), -EINVAL);
	ASSERT_EQ(evq_io_events(NULL), 0);
	ASSERT_EQ(evq_io_events(&w), 0);

	T_STEP("started: its fd and events, options included");
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ | EVQ_ONESHOT, io_cb));
	ASSERT_EQ(evq_io_fd(&w), p[0]);
	ASSERT_EQ(evq_io_events(&w), EVQ_READ | EVQ_ONESHOT);

	T_STEP("evq_io_set changes the events");
	ASSERT_OK(evq_io_start(loop, &w, p[1], EVQ_WRITE, io_cb));
	ASSERT_OK(evq_io_set(&w, EVQ_READ | EVQ_WRITE));
	ASSERT_EQ(evq_io_fd(&w), p[1]);
	ASSERT_EQ(evq_io_events(&w), EVQ_READ | EVQ_WRITE);

	T_STEP("stopped, and after the loop's free: still the last start");
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_EQ(evq_io_fd(&w), p[1]);
	ASSERT_EQ(evq_io_events(&w), EVQ_READ | EVQ_WRITE);
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, io_cb));
	t_loop_free(loop);
	ASSERT_EQ(evq_io_is_active(&w), 0);
	ASSERT_EQ(evq_io_fd(&w), p[0]);
	ASSERT_EQ(evq_io_events(&w), EVQ_READ);
	t_close2(p);
	return T_PASS;
}

/* evq_io_restart is evq_io_resume's new name: both work, the same way. */
static int io_restart_and_its_old_name_start_again(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	ASSERT_OK(t_pipe(p));
	io_runs = 0;
	ASSERT_ERR(evq_io_restart(&w), -EINVAL);	/* never started */
	ASSERT_ERR(evq_io_restart(NULL), -EINVAL);
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ | EVQ_ONESHOT, io_cb));
	ASSERT_OK(t_write_byte(p[1]));
	ASSERT_GE(t_run_once(loop, 1000), 0);
	ASSERT_EQ(io_runs, 1);
	ASSERT_EQ(evq_io_is_active(&w), 0);

	T_STEP("evq_io_restart");
	ASSERT_OK(evq_io_restart(&w));
	ASSERT_EQ(evq_io_is_active(&w), 1);
	ASSERT_OK(evq_io_restart(&w));	/* active: 0, nothing changes */
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_OK(t_write_byte(p[1]));
	ASSERT_GE(t_run_once(loop, 1000), 0);
	ASSERT_EQ(io_runs, 2);

	T_STEP("evq_io_resume, the old name");
	ASSERT_OK(evq_io_resume(&w));
	ASSERT_OK(t_write_byte(p[1]));
	ASSERT_GE(t_run_once(loop, 1000), 0);
	ASSERT_EQ(io_runs, 3);
	ASSERT_EQ(evq_loop_active(loop), 0);
	t_loop_free(loop);
	t_close2(p);
	return T_PASS;
}

static int pool_getters_give_size_and_count(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_pool *pool = NULL;

	ASSERT_NOTNULL(loop);
	ASSERT_EQ(evq_pool_buf_size(NULL), 0);
	ASSERT_EQ(evq_pool_buf_count(NULL), 0);
	ASSERT_OK(evq_pool_new(loop, &pool, 8, 1500));
	ASSERT_EQ(evq_pool_buf_size(pool), 1500);
	ASSERT_EQ(evq_pool_buf_count(pool), 8);
	T_STEP("after the loop's free, until the pool's");
	t_loop_free(loop);
	ASSERT_EQ(evq_pool_buf_size(pool), 1500);
	ASSERT_EQ(evq_pool_buf_count(pool), 8);
	ASSERT_OK(evq_pool_free(pool));
	return T_PASS;
}

/* A close with no callback: the fd is closed, the op ends, and the loop
 * runs until it has (it counts as any op). */
static int close_without_callback_closes_and_ends(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_op op = { 0 }, w = { 0 };
	static const char msg[] = "fire and forget";
	char buf[32];
	int p[2];

	ASSERT_NOTNULL(loop);
	t_case_timeout(10);
	ASSERT_OK(t_pipe(p));

	T_STEP("a write nobody waits for, then a close of the writer");
	evq_prep_write(&w, p[1], msg, sizeof(msg), EVQ_OFFSET_CURRENT);
	ASSERT_OK(evq_op_submit(loop, &w, EVQ_OP_LINK, NULL));
	evq_prep_close(&op, p[1]);
	ASSERT_OK(evq_op_submit(loop, &op, 0, NULL));
	ASSERT_TRUE(evq_op_is_active(&op));
	ASSERT_EQ(evq_loop_active(loop), 2);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(evq_op_is_active(&op), 0);
	ASSERT_EQ(evq_op_is_active(&w), 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);

	T_STEP("the reader got the data, then EOF: the writer is closed");
	ASSERT_OK(fcntl(p[0], F_SETFL, 0));	/* blocking: wait for it */
	ASSERT_EQ(read(p[0], buf, sizeof(buf)), (ssize_t)sizeof(msg));
	ASSERT_EQ(memcmp(buf, msg, sizeof(msg)), 0);
	ASSERT_EQ(read(p[0], buf, sizeof(buf)), 0);

	T_STEP("a failing op without a callback is dropped quietly");
	evq_prep_close(&op, p[1]);	/* closed already: -EBADF, dropped */
	ASSERT_OK(evq_op_submit(loop, &op, 0, NULL));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(evq_op_is_active(&op), 0);

	T_STEP("an unref'd op without a callback: the free ends it");
	evq_prep_timeout(&op, UINT64_MAX);
	ASSERT_OK(evq_op_submit(loop, &op, EVQ_OP_UNREF, NULL));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_TRUE(evq_op_is_active(&op));
	t_loop_free(loop);
	ASSERT_EQ(evq_op_is_active(&op), 0);
	t_close(p[0]);
	return T_PASS;
}

/* Ops whose result is an fd or a pool buffer would lose it unseen. */
static int ops_that_make_an_fd_or_take_a_buffer_need_a_callback(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_pool *pool = NULL;
	struct evq_op op = { 0 };
	int sv[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(evq_pool_new(loop, &pool, 4, 64));
	evq_prep_accept(&op, sv[0], NULL, NULL, 0);
	ASSERT_ERR(evq_op_submit(loop, &op, 0, NULL), -EINVAL);
	ASSERT_ERR(evq_op_submit(loop, &op, EVQ_OP_MULTISHOT, NULL), -EINVAL);
	evq_prep_openat(&op, AT_FDCWD, "/", O_RDONLY, 0);
	ASSERT_ERR(evq_op_submit(loop, &op, 0, NULL), -EINVAL);
	evq_prep_recv_pool(&op, sv[0], pool, 0);
	ASSERT_ERR(evq_op_submit(loop, &op, 0, NULL), -EINVAL);
	evq_prep_read_pool(&op, sv[0], pool, EVQ_OFFSET_CURRENT);
	ASSERT_ERR(evq_op_submit(loop, &op, 0, NULL), -EINVAL);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_op_is_active(&op), 0);
	T_STEP("NULL loop or op is still -EINVAL");
	evq_prep_nop(&op);
	ASSERT_ERR(evq_op_submit(NULL, &op, 0, NULL), -EINVAL);
	ASSERT_ERR(evq_op_submit(loop, NULL, 0, op_cb), -EINVAL);
	ASSERT_OK(evq_pool_free(pool));
	t_loop_free(loop);
	t_close2(sv);
	return T_PASS;
}

static int bufid_macro_and_its_old_name_agree(void)
{
	unsigned flags = EVQ_OP_F_BUFFER | EVQ_OP_F_MORE | (1234u << 16);

	ASSERT_EQ(EVQ_OP_BUFID(flags), 1234);
	ASSERT_EQ(EVQ_OP_F_BUFID(flags), 1234);
	ASSERT_EQ(EVQ_OP_BUFID(0xffff0000u), 0xffff);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(io_getters_give_the_last_start),
	T_CASE(io_restart_and_its_old_name_start_again),
	T_CASE(pool_getters_give_size_and_count),
	T_CASE(close_without_callback_closes_and_ends),
	T_CASE(ops_that_make_an_fd_or_take_a_buffer_need_a_callback),
	T_CASE(bufid_macro_and_its_old_name_agree),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
