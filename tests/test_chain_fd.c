/* SPDX-License-Identifier: MIT */
/*
 * test_chain_fd.c - ops held in a chain (waiting for the op before them)
 * against close and cancel: a close op on the fd of a held op cancels it,
 * so it never runs on the file that reuses the number; a cancel by op or
 * by fd finds a held op; the op the held one waited for goes on. And
 * chains that meet a full submission queue stay whole: nothing after a
 * LINK op runs before it, or after it failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"
#include "ops_helpers.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Held ops against close and cancel
 * ------------------------------------------------------------------------ */

/* read(pipe) LINK -> write(A, "EVIL"); a close op on A; A's number then
 * goes to a new file B; then the pipe gets data. The write must end with
 * -ECANCELED at the close and never touch B; the read still gets its
 * data. */
static int close_op_cancels_held_write_before_number_reuse(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op rd = { 0 }, wr = { 0 }, cl = { 0 };
	char dir[256], pa[300], pb[300], buf[8];
	struct stat sb;
	int p[2], a, b;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(pa, sizeof(pa), "%s/a", dir);
	snprintf(pb, sizeof(pb), "%s/b", dir);
	a = open(pa, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_GE(a, 0);

	T_STEP("read(pipe) LINK -> write(A): the write waits for the read");
	t_op_init(&rd);
	evq_prep_read(&rd.op, p[0], buf, 4, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &rd, EVQ_OP_LINK));
	t_op_init(&wr);
	evq_prep_write(&wr.op, a, "EVIL", 4, 0);
	ASSERT_OK(t_op_submit(loop, &wr, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(rd.ncalls, 0);
	ASSERT_EQ(wr.ncalls, 0);

	T_STEP("a close op on A ends the held write");
	t_op_init(&cl);
	evq_prep_close(&cl.op, a);
	ASSERT_OK(t_op_submit(loop, &cl, 0));
	ASSERT_OK(t_op_wait(loop, &cl, 2000));
	ASSERT_ERR(cl.res, 0);
	EXPECT_EQ(wr.ncalls, 1);
	EXPECT_ERR(wr.res, -ECANCELED);

	T_STEP("B takes A's number; data arrives on the pipe");
	b = open(pb, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_GE(b, 0);
	if (b != a) {
		ASSERT_EQ(dup2(b, a), a);
		close(b);
	}
	ASSERT_EQ(write(p[1], "data", 4), 4);
	ASSERT_OK(t_op_wait(loop, &rd, 2000));
	ASSERT_EQ(rd.res, 4);
	ASSERT_OK(t_run_nowait(loop, 3));

	T_STEP("the write never ran: B is empty");
	ASSERT_EQ(fstat(a, &sb), 0);
	EXPECT_EQ(sb.st_size, 0);
	ASSERT_EQ(wr.ncalls, 1);
	ASSERT_ERR(wr.res, -ECANCELED);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	close(a);
	unlink(pa);
	unlink(pb);
	rmdir(dir);
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

/* timeout(100 ms) LINK -> X; cancel(X) finds X although it has not
 * started: 0, X gets -ECANCELED, and the timeout still runs its time. */
static int cancel_finds_op_held_behind_timeout(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op tm = { 0 }, x = { 0 }, c = { 0 };
	uint64_t t0;

	ASSERT_NOTNULL(loop);
	t0 = t_now_ns();
	t_op_init(&tm);
	evq_prep_timeout(&tm.op, 100 * T_MS);
	ASSERT_OK(t_op_submit(loop, &tm, EVQ_OP_LINK));
	t_op_init(&x);
	evq_prep_nop(&x.op);
	ASSERT_OK(t_op_submit(loop, &x, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(x.ncalls, 0);

	T_STEP("cancel the held nop");
	t_op_init(&c);
	evq_prep_cancel(&c.op, &x.op);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 2000));
	ASSERT_ERR(c.res, 0);
	ASSERT_OK(t_op_wait(loop, &x, 2000));
	ASSERT_ERR(x.res, -ECANCELED);
	ASSERT_LT(t_now_ns() - t0, 90 * T_MS);
	ASSERT_EQ(tm.ncalls, 0);

	T_STEP("the timeout runs its full time");
	ASSERT_OK(t_op_wait(loop, &tm, 2000));
	ASSERT_ERR(tm.res, -ETIME);
	ASSERT_GE(tm.at_ns - t0, 100 * T_MS);
	ASSERT_EQ(x.ncalls, 1);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_loop_free(loop);
	return T_PASS;
}

/* timeout LINK -> read(pipe) LINK -> nop: cancel_fd(pipe) counts the held
 * read, which ends with -ECANCELED and takes the nop after it along. */
static int cancel_fd_finds_held_op_and_breaks_its_chain(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op tm = { 0 }, rd = { 0 }, n = { 0 }, c = { 0 };
	char buf[4];
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	t_op_init(&tm);
	evq_prep_timeout(&tm.op, 50 * T_MS);
	ASSERT_OK(t_op_submit(loop, &tm, EVQ_OP_LINK));
	t_op_init(&rd);
	evq_prep_read(&rd.op, p[0], buf, 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &rd, EVQ_OP_LINK));
	t_op_init(&n);
	evq_prep_nop(&n.op);
	ASSERT_OK(t_op_submit(loop, &n, 0));
	ASSERT_OK(t_run_nowait(loop, 2));

	T_STEP("cancel_fd on the pipe");
	t_op_init(&c);
	evq_prep_cancel_fd(&c.op, p[0]);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 2000));
	ASSERT_EQ(c.res, 1);
	ASSERT_OK(t_op_wait(loop, &n, 2000));
	ASSERT_ERR(rd.res, -ECANCELED);
	ASSERT_ERR(n.res, -ECANCELED);
	ASSERT_LT(rd.seq, n.seq);

	T_STEP("the timeout is untouched; the pipe's data stays");
	ASSERT_OK(t_op_wait(loop, &tm, 2000));
	ASSERT_ERR(tm.res, -ETIME);
	ASSERT_EQ(write(p[1], "z", 1), 1);
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(rd.ncalls, 1);
	ASSERT_EQ(read(p[0], buf, sizeof(buf)), 1);
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Chains against a full submission queue
 * ------------------------------------------------------------------------ */

#define SQ_SIZE 256

static struct t_op fill_ops[SQ_SIZE];

/* SQ_SIZE - 1 unrelated nops, so that the chain submitted next meets a
 * full queue (on uring) between its first and its second op. */
static int fill_sq(struct evq_loop *loop)
{
	for (int i = 0; i < SQ_SIZE - 1; i++) {
		t_op_init(&fill_ops[i]);
		evq_prep_nop(&fill_ops[i].op);
		if (t_op_submit(loop, &fill_ops[i], 0) != 0)
			return -1;
	}
	return 0;
}

static int fill_done(void)
{
	for (int i = 0; i < SQ_SIZE - 1; i++)
		if (fill_ops[i].ncalls != 1 || fill_ops[i].res != 0)
			return -1;
	return 0;
}

static int chain_stays_whole_when_sq_fills(void)
{
	struct evq_loop_options o = { .uring_entries = SQ_SIZE };
	struct evq_loop *loop = t_loop_new_opts(&o);
	struct t_op tm = { 0 }, n = { 0 };
	uint64_t t0;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(fill_sq(loop));
	T_STEP("timeout(200 ms) LINK -> nop after %d nops", SQ_SIZE - 1);
	t0 = t_now_ns();
	t_op_init(&tm);
	evq_prep_timeout(&tm.op, 200 * T_MS);
	ASSERT_OK(t_op_submit(loop, &tm, EVQ_OP_LINK));
	t_op_init(&n);
	evq_prep_nop(&n.op);
	ASSERT_OK(t_op_submit(loop, &n, 0));
	ASSERT_OK(t_op_wait(loop, &n, 3000));
	ASSERT_EQ(tm.ncalls, 1);
	ASSERT_ERR(tm.res, -ETIME);
	ASSERT_ERR(n.res, 0);
	ASSERT_LT(tm.seq, n.seq);
	ASSERT_GE(n.at_ns - t0, 200 * T_MS);
	ASSERT_OK(fill_done());
	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_loop_free(loop);
	return T_PASS;
}

static int failed_chain_head_stops_write_when_sq_fills(void)
{
	struct evq_loop_options o = { .uring_entries = SQ_SIZE };
	struct evq_loop *loop = t_loop_new_opts(&o);
	struct t_op rd = { 0 }, wr = { 0 };
	char buf[4];
	int p[2], bad;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	/* A number that is surely not open. */
	bad = dup(p[0]);
	ASSERT_GE(bad, 0);
	close(bad);
	ASSERT_OK(fill_sq(loop));
	T_STEP("read(closed fd) LINK -> write(pipe) after %d nops",
	       SQ_SIZE - 1);
	t_op_init(&rd);
	evq_prep_read(&rd.op, bad, buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &rd, EVQ_OP_LINK));
	t_op_init(&wr);
	evq_prep_write(&wr.op, p[1], "data", 4, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &wr, 0));
	ASSERT_OK(t_op_wait(loop, &wr, 3000));
	ASSERT_EQ(rd.ncalls, 1);
	ASSERT_ERR(rd.res, -EBADF);
	ASSERT_ERR(wr.res, -ECANCELED);
	T_STEP("nothing was written");
	errno = 0;
	ASSERT_EQ(read(p[0], buf, sizeof(buf)), -1);
	ASSERT_EQ(errno, EAGAIN);
	ASSERT_OK(fill_done());
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(close_op_cancels_held_write_before_number_reuse),
	T_CASE(cancel_finds_op_held_behind_timeout),
	T_CASE(cancel_fd_finds_held_op_and_breaks_its_chain),
	T_CASE(chain_stays_whole_when_sq_fills),
	T_CASE(failed_chain_head_stops_write_when_sq_fills),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
