/* SPDX-License-Identifier: MIT */
/*
 * test_ops.c - the completion API, one op at a time: nop; read, write,
 * readv, writev on pipes (blocking and O_NONBLOCK) and regular files
 * (explicit offsets and the current position); recv, send, recvmsg,
 * sendmsg on socket pairs; accept and connect on loopback TCP; openat,
 * statx, fsync, fdatasync, close; the error paths (-EBADF, -EPIPE, EOF,
 * -ECONNREFUSED, -ENOENT); submit validation, -EBUSY, counts; timeout ops
 * against timers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"
#include "ops_helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void never_io(struct evq_loop *loop, struct evq_io *w, unsigned r)
{
	(void)loop;
	(void)w;
	(void)r;
	T_FAILF("a watcher ran that must not");
}

/* ------------------------------------------------------------------------
 * nop, counts, submission
 * ------------------------------------------------------------------------ */

static void resubmit_once_hook(struct evq_loop *loop, struct t_op *o, int res,
			       unsigned flags)
{
	(void)res;
	(void)flags;
	if (o->ncalls == 1)
		EXPECT_OK(t_op_submit(loop, o, 0));
}

static int nop_runs_from_loop_only(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a = { 0 };

	ASSERT_NOTNULL(loop);
	t_op_init(&a);
	evq_prep_nop(&a.op);
	T_STEP("submit");
	ASSERT_OK(t_op_submit(loop, &a, 0));
	ASSERT_EQ(a.ncalls, 0);
	ASSERT_EQ(evq_op_is_active(&a.op), 1);
	ASSERT_EQ(evq_loop_ops(loop), 1);
	ASSERT_EQ(evq_loop_active(loop), 1);
	T_STEP("one loop iteration delivers it");
	ASSERT_EQ(t_run_once(loop, 2000), 0);
	ASSERT_EQ(a.ncalls, 1);
	ASSERT_EQ(a.nmore, 0);
	ASSERT_ERR(a.res, 0);
	ASSERT_EQ(a.flags, 0);
	ASSERT_EQ(evq_op_is_active(&a.op), 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	T_STEP("no second call");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_OK(t_run_nowait(loop, 2));	/* really polls */
	ASSERT_EQ(a.ncalls, 1);

	T_STEP("reuse after the final call, also from the callback");
	t_op_init(&a);
	a.hook = resubmit_once_hook;
	evq_prep_nop(&a.op);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	ASSERT_EQ(t_run_once(loop, 2000), 1);	/* resubmitted: in flight */
	ASSERT_EQ(a.ncalls, 1);
	ASSERT_EQ(evq_op_is_active(&a.op), 1);
	/* Submitted by a callback: it starts at the next iteration. */
	ASSERT_EQ(t_run_once(loop, 2000), 0);
	ASSERT_EQ(a.ncalls, 2);
	ASSERT_ERR(a.res, 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* An op submitted inside a callback runs from the loop too, never inside
 * that evq_op_submit(). */
static struct t_op inner;

static void submit_inner_hook(struct evq_loop *loop, struct t_op *o, int res,
			      unsigned flags)
{
	(void)o;
	(void)res;
	(void)flags;
	t_op_init(&inner);
	evq_prep_nop(&inner.op);
	EXPECT_OK(t_op_submit(loop, &inner, 0));
	EXPECT_EQ(inner.ncalls, 0);
}

static int callbacks_never_inside_submit(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a = { 0 }, many[16];

	ASSERT_NOTNULL(loop);
	t_op_init(&a);
	a.hook = submit_inner_hook;
	evq_prep_nop(&a.op);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	for (int i = 0; i < 16; i++) {
		memset(&many[i], 0, sizeof(many[i]));
		t_op_init(&many[i]);
		evq_prep_nop(&many[i].op);
		ASSERT_OK(t_op_submit(loop, &many[i], 0));
		ASSERT_EQ(many[i].ncalls, 0);
	}
	ASSERT_EQ(a.ncalls, 0);
	ASSERT_EQ(evq_loop_ops(loop), 17);
	T_STEP("iteration 1");
	ASSERT_EQ(t_run_once(loop, 2000), 1);
	ASSERT_EQ(a.ncalls, 1);
	for (int i = 0; i < 16; i++)
		ASSERT_EQ(many[i].ncalls, 1);
	ASSERT_EQ(inner.ncalls, 0);
	ASSERT_EQ(evq_loop_ops(loop), 1);
	T_STEP("iteration 2 runs the op the callback submitted");
	ASSERT_EQ(t_run_once(loop, 2000), 0);
	ASSERT_EQ(inner.ncalls, 1);
	ASSERT_ERR(inner.res, 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int counts_and_is_active(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op n[3], rv = { 0 }, tmo = { 0 };
	struct evq_op never = { 0 };
	char buf[8];
	int sp[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sp));
	ASSERT_EQ(evq_op_is_active(NULL), 0);
	ASSERT_EQ(evq_op_is_active(&never), 0);
	T_STEP("three nops");
	for (int i = 0; i < 3; i++) {
		memset(&n[i], 0, sizeof(n[i]));
		t_op_init(&n[i]);
		evq_prep_nop(&n[i].op);
		ASSERT_OK(t_op_submit(loop, &n[i], 0));
		ASSERT_EQ(evq_loop_ops(loop), (unsigned)i + 1);
		ASSERT_EQ(evq_loop_active(loop), (unsigned)i + 1);
	}
	T_STEP("a pending recv and a pending timeout");
	t_op_init(&rv);
	evq_prep_recv(&rv.op, sp[0], buf, sizeof(buf), 0);
	ASSERT_OK(t_op_submit(loop, &rv, 0));
	t_op_init(&tmo);
	evq_prep_timeout(&tmo.op, 10000 * T_MS);
	ASSERT_OK(t_op_submit(loop, &tmo, 0));
	ASSERT_EQ(evq_loop_ops(loop), 5);
	ASSERT_EQ(evq_loop_active(loop), 5);
	ASSERT_EQ(t_run_once(loop, 2000), 1);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(n[i].ncalls, 1);
	ASSERT_EQ(rv.ncalls, 0);
	ASSERT_EQ(tmo.ncalls, 0);
	ASSERT_EQ(evq_op_is_active(&rv.op), 1);
	ASSERT_EQ(evq_op_is_active(&tmo.op), 1);
	ASSERT_EQ(evq_op_is_active(&n[0].op), 0);
	T_STEP("started ops count once each, in ops and in active");
	ASSERT_EQ(evq_loop_ops(loop), 2);
	ASSERT_EQ(evq_loop_active(loop), 2);
	T_STEP("the recv completes");
	ASSERT_OK(t_write_byte(sp[1]));
	ASSERT_OK(t_op_wait(loop, &rv, 2000));
	ASSERT_EQ(rv.res, 1);
	ASSERT_EQ(evq_loop_ops(loop), 1);
	ASSERT_EQ(evq_loop_active(loop), 1);
	T_STEP("cancel the timeout");
	{
		struct t_op c = { 0 };

		t_op_init(&c);
		evq_prep_cancel(&c.op, &tmo.op);
		ASSERT_OK(t_op_submit(loop, &c, 0));
		ASSERT_OK(t_op_wait(loop, &c, 2000));
		ASSERT_OK(t_op_wait(loop, &tmo, 2000));
		ASSERT_ERR(c.res, 0);
		ASSERT_ERR(tmo.res, -ECANCELED);
	}
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_OK(t_run_nowait(loop, 2));	/* really polls */
	t_close2(sp);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* A loop with only ops in flight keeps running (EVQ_RUN_DEFAULT) until
 * they are done, and then returns 0. */
static int ops_keep_loop_alive(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op t = { 0 };
	uint64_t t0;

	ASSERT_NOTNULL(loop);
	t_case_timeout(5);	/* no guard: it would keep the loop alive */
	t_op_init(&t);
	evq_prep_timeout(&t.op, 20 * T_MS);
	ASSERT_OK(t_op_submit(loop, &t, 0));
	t0 = t_now_ns();
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(t.ncalls, 1);
	ASSERT_ERR(t.res, -ETIME);
	ASSERT_GE(t_now_ns() - t0, 20 * T_MS);
	ASSERT_LT(t_now_ns() - t0, 2000 * T_MS);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static void dummy_cb(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned flags)
{
	(void)loop;
	(void)op;
	(void)res;
	(void)flags;
	T_FAILF("an op rejected by evq_op_submit() got a callback");
}

static int submit_validation(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_op op = { 0 };
	struct evq_pool *pool = NULL;
	char buf[8];
	int sp[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sp));
	ASSERT_OK(evq_pool_new(loop, &pool, 4, 64));

	T_STEP("NULL loop, op, cb");
	evq_prep_nop(&op);
	ASSERT_ERR(evq_op_submit(NULL, &op, 0, dummy_cb), -EINVAL);
	ASSERT_ERR(evq_op_submit(loop, NULL, 0, dummy_cb), -EINVAL);
	/* A NULL cb is fire and forget (test_api.c), except where the
	 * result is an fd or a pool buffer. */
	evq_prep_accept(&op, sp[0], NULL, NULL, 0);
	ASSERT_ERR(evq_op_submit(loop, &op, 0, NULL), -EINVAL);

	T_STEP("unprepared op");
	memset(&op, 0, sizeof(op));
	ASSERT_ERR(evq_op_submit(loop, &op, 0, dummy_cb), -EINVAL);

	T_STEP("unknown flags");
	evq_prep_nop(&op);
	ASSERT_ERR(evq_op_submit(loop, &op, 0x4, dummy_cb), -EINVAL);
	ASSERT_ERR(evq_op_submit(loop, &op, 0x100, dummy_cb), -EINVAL);
	ASSERT_ERR(evq_op_submit(loop, &op, 0x80000000u, dummy_cb), -EINVAL);
	ASSERT_ERR(evq_op_submit(loop, &op, EVQ_OP_LINK | 0x8, dummy_cb),
		   -EINVAL);

	T_STEP("MULTISHOT on ops that cannot be");
	memset(&op, 0, sizeof(op));
	evq_prep_nop(&op);
	ASSERT_ERR(evq_op_submit(loop, &op, EVQ_OP_MULTISHOT, dummy_cb),
		   -EINVAL);
	memset(&op, 0, sizeof(op));
	evq_prep_read(&op, sp[0], buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_ERR(evq_op_submit(loop, &op, EVQ_OP_MULTISHOT, dummy_cb),
		   -EINVAL);
	memset(&op, 0, sizeof(op));
	evq_prep_recv(&op, sp[0], buf, sizeof(buf), 0);
	ASSERT_ERR(evq_op_submit(loop, &op, EVQ_OP_MULTISHOT, dummy_cb),
		   -EINVAL);
	memset(&op, 0, sizeof(op));
	evq_prep_timeout(&op, T_MS);
	ASSERT_ERR(evq_op_submit(loop, &op, EVQ_OP_MULTISHOT, dummy_cb),
		   -EINVAL);

	T_STEP("LINK|MULTISHOT");
	memset(&op, 0, sizeof(op));
	evq_prep_accept(&op, sp[0], NULL, NULL, 0);
	ASSERT_ERR(evq_op_submit(loop, &op, EVQ_OP_LINK | EVQ_OP_MULTISHOT,
				 dummy_cb), -EINVAL);
	memset(&op, 0, sizeof(op));
	evq_prep_recv_pool(&op, sp[0], pool, 0);
	ASSERT_ERR(evq_op_submit(loop, &op, EVQ_OP_LINK | EVQ_OP_MULTISHOT,
				 dummy_cb), -EINVAL);

	T_STEP("nothing was queued");
	ASSERT_EQ(evq_op_is_active(&op), 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_OK(t_run_nowait(loop, 2));	/* really polls */
	/* A rejected pool op does not hold the pool. */
	ASSERT_OK(evq_pool_free(pool));
	t_close2(sp);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int submit_in_flight_ebusy(void)
{
	struct evq_loop *loop = t_loop_new(), *other = t_loop_new();
	struct t_op a = { 0 }, r = { 0 };
	char buf[4];
	int sp[2];

	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(other);
	ASSERT_OK(t_socketpair(sp));
	T_STEP("a queued nop");
	t_op_init(&a);
	evq_prep_nop(&a.op);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	ASSERT_ERR(t_op_submit(loop, &a, 0), -EBUSY);
	ASSERT_ERR(t_op_submit(other, &a, 0), -EBUSY);
	ASSERT_EQ(evq_loop_ops(loop), 1);
	ASSERT_EQ(evq_loop_ops(other), 0);
	ASSERT_OK(t_op_wait(loop, &a, 2000));
	ASSERT_EQ(a.ncalls, 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_OK(t_run_nowait(loop, 2));	/* really polls */
	ASSERT_EQ(a.ncalls, 1);

	T_STEP("a waiting recv");
	t_op_init(&r);
	evq_prep_recv(&r.op, sp[0], buf, sizeof(buf), 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(r.ncalls, 0);
	ASSERT_ERR(t_op_submit(loop, &r, 0), -EBUSY);
	/* Re-preparing an op in flight is the caller's bug; submitting it
	 * again must still be refused without harm. */
	ASSERT_ERR(t_op_submit(other, &r, 0), -EBUSY);
	ASSERT_OK(t_write_byte(sp[1]));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.res, 1);
	ASSERT_EQ(r.ncalls, 1);

	T_STEP("after the final call it can be submitted again");
	evq_prep_nop(&a.op);
	ASSERT_OK(t_op_submit(other, &a, 0));
	ASSERT_OK(t_op_wait(other, &a, 2000));
	ASSERT_EQ(a.ncalls, 2);
	t_close2(sp);
	ASSERT_OK(evq_loop_free(other));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Pipes
 * ------------------------------------------------------------------------ */

static void pattern(unsigned char *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((i * 131u + seed * 7u + (i >> 8)) ^ seed);
}

static int pipe_rw(bool nb)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op w = { 0 }, r = { 0 };
	unsigned char out[300], in[300];
	int p[2], fl0, fl1;
	ssize_t filled, drained;
	uint64_t t0;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe_mode(p, nb));
	fl0 = fcntl(p[0], F_GETFL);
	fl1 = fcntl(p[1], F_GETFL);
	pattern(out, sizeof(out), 1);

	T_STEP("write 300 bytes, read them back");
	t_op_init(&w);
	evq_prep_write(&w.op, p[1], out, sizeof(out), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	ASSERT_EQ(w.res, 300);
	memset(in, 0, sizeof(in));
	t_op_init(&r);
	evq_prep_read(&r.op, p[0], in, sizeof(in), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.res, 300);
	ASSERT_EQ(memcmp(in, out, 300), 0);

	T_STEP("a read of an empty pipe waits, without blocking the loop");
	memset(in, 0, sizeof(in));
	t_op_init(&r);
	evq_prep_read(&r.op, p[0], in, 100, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	t0 = t_now_ns();
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_LT(t_now_ns() - t0, 1000 * T_MS);
	ASSERT_EQ(r.ncalls, 0);	/* not -EAGAIN */
	ASSERT_EQ(evq_op_is_active(&r.op), 1);
	ASSERT_EQ(write(p[1], out + 7, 100), 100);
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.res, 100);
	ASSERT_EQ(memcmp(in, out + 7, 100), 0);

	T_STEP("a write to a full pipe waits, without blocking the loop");
	ASSERT_GE(t_set_nonblock(p[1], true), 0);
	filled = t_fill(p[1]);
	ASSERT_GT(filled, 0);
	ASSERT_EQ(fcntl(p[1], F_SETFL, fl1), 0);
	t_op_init(&w);
	evq_prep_write(&w.op, p[1], out, 200, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	t0 = t_now_ns();
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_LT(t_now_ns() - t0, 1000 * T_MS);
	ASSERT_EQ(w.ncalls, 0);
	ASSERT_GE(t_set_nonblock(p[0], true), 0);
	drained = t_drain(p[0]);
	ASSERT_EQ(drained, filled);
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	ASSERT_EQ(w.res, 200);	/* <= PIPE_BUF into an empty pipe: whole */
	memset(in, 0, sizeof(in));
	ASSERT_EQ(read(p[0], in, sizeof(in)), 200);
	ASSERT_EQ(memcmp(in, out, 200), 0);
	ASSERT_EQ(fcntl(p[0], F_SETFL, fl0), 0);

	T_STEP("readv waits; writev in the same batch feeds it");
	{
		unsigned char a[5], b[10], c[20], x[7], y[13], z[15];
		unsigned char cat[35];
		struct iovec wv[3] = { { a, 5 }, { b, 10 }, { c, 20 } };
		struct iovec rv[3] = { { x, 7 }, { y, 13 }, { z, 15 } };

		pattern(a, 5, 2);
		pattern(b, 10, 3);
		pattern(c, 20, 4);
		memset(x, 0, 7);
		memset(y, 0, 13);
		memset(z, 0, 15);
		t_op_init(&r);
		evq_prep_readv(&r.op, p[0], rv, 3, EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &r, 0));
		ASSERT_OK(t_run_nowait(loop, 2));
		ASSERT_EQ(r.ncalls, 0);
		t_op_init(&w);
		evq_prep_writev(&w.op, p[1], wv, 3, EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &w, 0));
		ASSERT_OK(t_op_wait(loop, &w, 2000));
		ASSERT_OK(t_op_wait(loop, &r, 2000));
		ASSERT_EQ(w.res, 35);
		ASSERT_EQ(r.res, 35);
		memcpy(cat, x, 7);
		memcpy(cat + 7, y, 13);
		memcpy(cat + 20, z, 15);
		ASSERT_EQ(memcmp(cat, a, 5), 0);
		ASSERT_EQ(memcmp(cat + 5, b, 10), 0);
		ASSERT_EQ(memcmp(cat + 15, c, 20), 0);
	}

	T_STEP("the fds' flags are untouched");
	ASSERT_EQ(fcntl(p[0], F_GETFL), fl0);
	ASSERT_EQ(fcntl(p[1], F_GETFL), fl1);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int pipe_rw_nonblocking(void)
{
	return pipe_rw(true);
}

static int pipe_rw_blocking(void)
{
	t_case_timeout(10);	/* a loop stuck in read(2) fails here */
	return pipe_rw(false);
}

/* ------------------------------------------------------------------------
 * Regular files
 * ------------------------------------------------------------------------ */

static int file_rw_offsets(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op w1 = { 0 }, w2 = { 0 }, r = { 0 };
	unsigned char A[4096], B[100], in[4096], chk[12288];
	char dir[256], path[300];
	int fd;

	ASSERT_NOTNULL(loop);
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_GE(fd, 0);
	pattern(A, sizeof(A), 11);
	pattern(B, sizeof(B), 12);

	T_STEP("two writes at explicit offsets, one batch");
	t_op_init(&w1);
	evq_prep_write(&w1.op, fd, A, sizeof(A), 8192);
	ASSERT_OK(t_op_submit(loop, &w1, 0));
	t_op_init(&w2);
	evq_prep_write(&w2.op, fd, B, sizeof(B), 0);
	ASSERT_OK(t_op_submit(loop, &w2, 0));
	ASSERT_OK(t_op_wait(loop, &w1, 5000));
	ASSERT_OK(t_op_wait(loop, &w2, 5000));
	ASSERT_EQ(w1.res, 4096);
	ASSERT_EQ(w2.res, 100);
	T_STEP("the file holds them (pread)");
	ASSERT_EQ(lseek(fd, 0, SEEK_END), 12288);
	ASSERT_EQ(pread(fd, chk, sizeof(chk), 0), 12288);
	ASSERT_EQ(memcmp(chk, B, 100), 0);
	for (int i = 100; i < 8192; i++)
		if (chk[i] != 0)
			ASSERT_EQ(chk[i], 0);
	ASSERT_EQ(memcmp(chk + 8192, A, 4096), 0);
	T_STEP("explicit offsets leave the file position alone");
	ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
	t_op_init(&r);
	evq_prep_read(&r.op, fd, in, 1000, 8192 + 10);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 5000));
	ASSERT_EQ(r.res, 1000);
	ASSERT_EQ(memcmp(in, A + 10, 1000), 0);
	ASSERT_EQ(lseek(fd, 0, SEEK_CUR), 0);

	T_STEP("a read across the end is short; past it, 0");
	t_op_init(&r);
	evq_prep_read(&r.op, fd, in, 100, 12288 - 50);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 5000));
	ASSERT_EQ(r.res, 50);
	ASSERT_EQ(memcmp(in, A + 4096 - 50, 50), 0);
	t_op_init(&r);
	evq_prep_read(&r.op, fd, in, 100, 20000);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 5000));
	ASSERT_EQ(r.res, 0);

	T_STEP("writev/readv at an offset, split differently");
	{
		unsigned char a[300], b[700], c[24], x[512], y[512];
		struct iovec wv[3] = { { a, 300 }, { b, 700 }, { c, 24 } };
		struct iovec rv[2] = { { x, 512 }, { y, 512 } };

		pattern(a, 300, 21);
		pattern(b, 700, 22);
		pattern(c, 24, 23);
		t_op_init(&w1);
		evq_prep_writev(&w1.op, fd, wv, 3, 50000);
		ASSERT_OK(t_op_submit(loop, &w1, 0));
		ASSERT_OK(t_op_wait(loop, &w1, 5000));
		ASSERT_EQ(w1.res, 1024);
		t_op_init(&r);
		evq_prep_readv(&r.op, fd, rv, 2, 50000);
		ASSERT_OK(t_op_submit(loop, &r, 0));
		ASSERT_OK(t_op_wait(loop, &r, 5000));
		ASSERT_EQ(r.res, 1024);
		ASSERT_EQ(memcmp(x, a, 300), 0);
		ASSERT_EQ(memcmp(x + 300, b, 212), 0);
		ASSERT_EQ(memcmp(y, b + 212, 488), 0);
		ASSERT_EQ(memcmp(y + 488, c, 24), 0);
		ASSERT_EQ(pread(fd, chk, 1024, 50000), 1024);
		ASSERT_EQ(memcmp(chk, a, 300), 0);
		ASSERT_EQ(memcmp(chk + 1000, c, 24), 0);
	}

	T_STEP("EVQ_OFFSET_CURRENT on a file uses and moves the position");
	ASSERT_EQ(lseek(fd, 8192 + 100, SEEK_SET), 8192 + 100);
	t_op_init(&r);
	evq_prep_read(&r.op, fd, in, 200, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 5000));
	ASSERT_EQ(r.res, 200);
	ASSERT_EQ(memcmp(in, A + 100, 200), 0);
	ASSERT_EQ(lseek(fd, 0, SEEK_CUR), 8192 + 300);
	t_op_init(&w1);
	evq_prep_write(&w1.op, fd, B, 10, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w1, 0));
	ASSERT_OK(t_op_wait(loop, &w1, 5000));
	ASSERT_EQ(w1.res, 10);
	ASSERT_EQ(lseek(fd, 0, SEEK_CUR), 8192 + 310);
	ASSERT_EQ(pread(fd, chk, 10, 8192 + 300), 10);
	ASSERT_EQ(memcmp(chk, B, 10), 0);

	close(fd);
	unlink(path);
	rmdir(dir);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Sockets
 * ------------------------------------------------------------------------ */

static int sock_rw(bool nb)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op s = { 0 }, r = { 0 };
	unsigned char out[1000], in[1000];
	int sp[2], fl0, fl1;
	ssize_t filled, drained;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_sockpair_mode(sp, nb));
	fl0 = fcntl(sp[0], F_GETFL);
	fl1 = fcntl(sp[1], F_GETFL);
	pattern(out, sizeof(out), 5);

	T_STEP("recv waits for data; a send op feeds it");
	memset(in, 0, sizeof(in));
	t_op_init(&r);
	evq_prep_recv(&r.op, sp[0], in, sizeof(in), 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(r.ncalls, 0);	/* not -EAGAIN */
	t_op_init(&s);
	evq_prep_send(&s.op, sp[1], out, 64, 0);
	ASSERT_OK(t_op_submit(loop, &s, 0));
	ASSERT_OK(t_op_wait(loop, &s, 2000));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(s.res, 64);
	ASSERT_EQ(r.res, 64);
	ASSERT_EQ(memcmp(in, out, 64), 0);

	T_STEP("recv of data already there");
	ASSERT_EQ(send(sp[1], out + 1, 10, 0), 10);
	t_op_init(&r);
	evq_prep_recv(&r.op, sp[0], in, sizeof(in), 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.res, 10);
	ASSERT_EQ(memcmp(in, out + 1, 10), 0);

	T_STEP("recv flags: MSG_PEEK leaves the data");
	ASSERT_EQ(send(sp[1], out + 2, 5, 0), 5);
	t_op_init(&r);
	evq_prep_recv(&r.op, sp[0], in, sizeof(in), MSG_PEEK);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.res, 5);
	ASSERT_EQ(recv(sp[0], in + 100, 100, MSG_DONTWAIT), 5);
	ASSERT_EQ(memcmp(in + 100, out + 2, 5), 0);

	T_STEP("a send to a full socket waits");
	filled = t_sock_fill(sp[0]);
	ASSERT_GT(filled, 0);
	t_op_init(&s);
	evq_prep_send(&s.op, sp[0], out, sizeof(out), 0);
	ASSERT_OK(t_op_submit(loop, &s, 0));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(s.ncalls, 0);
	drained = t_sock_drain(sp[1]);
	ASSERT_EQ(drained, filled);
	ASSERT_OK(t_op_wait(loop, &s, 2000));
	ASSERT_GT(s.res, 0);
	ASSERT_LE(s.res, 1000);
	memset(in, 0, sizeof(in));
	ASSERT_EQ(recv(sp[1], in, sizeof(in), MSG_DONTWAIT), s.res);
	ASSERT_EQ(memcmp(in, out, (size_t)s.res), 0);

	T_STEP("sendmsg (2 iovecs) to a waiting recvmsg (3 iovecs)");
	{
		unsigned char a[30], b[70], x[10], y[50], z[40];
		struct iovec wv[2] = { { a, 30 }, { b, 70 } };
		struct iovec rv[3] = { { x, 10 }, { y, 50 }, { z, 40 } };
		struct msghdr wm = { 0 }, rm = { 0 };

		pattern(a, 30, 6);
		pattern(b, 70, 7);
		wm.msg_iov = wv;
		wm.msg_iovlen = 2;
		rm.msg_iov = rv;
		rm.msg_iovlen = 3;
		t_op_init(&r);
		evq_prep_recvmsg(&r.op, sp[1], &rm, 0);
		ASSERT_OK(t_op_submit(loop, &r, 0));
		ASSERT_OK(t_run_nowait(loop, 2));
		ASSERT_EQ(r.ncalls, 0);
		t_op_init(&s);
		evq_prep_sendmsg(&s.op, sp[0], &wm, 0);
		ASSERT_OK(t_op_submit(loop, &s, 0));
		ASSERT_OK(t_op_wait(loop, &s, 2000));
		ASSERT_OK(t_op_wait(loop, &r, 2000));
		ASSERT_EQ(s.res, 100);
		ASSERT_EQ(r.res, 100);
		ASSERT_EQ(memcmp(x, a, 10), 0);
		ASSERT_EQ(memcmp(y, a + 10, 20), 0);
		ASSERT_EQ(memcmp(y + 20, b, 30), 0);
		ASSERT_EQ(memcmp(z, b + 30, 40), 0);
	}

	T_STEP("read/write ops on a socket");
	t_op_init(&r);
	evq_prep_read(&r.op, sp[1], in, 50, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(r.ncalls, 0);
	t_op_init(&s);
	evq_prep_write(&s.op, sp[0], out + 3, 50, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &s, 0));
	ASSERT_OK(t_op_wait(loop, &s, 2000));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(s.res, 50);
	ASSERT_EQ(r.res, 50);
	ASSERT_EQ(memcmp(in, out + 3, 50), 0);

	T_STEP("the fds' flags are untouched");
	ASSERT_EQ(fcntl(sp[0], F_GETFL), fl0);
	ASSERT_EQ(fcntl(sp[1], F_GETFL), fl1);
	t_close2(sp);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int socket_ops_nonblocking(void)
{
	return sock_rw(true);
}

static int socket_ops_blocking(void)
{
	t_case_timeout(10);
	return sock_rw(false);
}

/* A listening TCP socket on 127.0.0.1, port 0; its address in *sin. */
static int tcp_listener(bool nb, struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
				 (nb ? SOCK_NONBLOCK : 0), 0);

	if (fd < 0) {
		T_FAILF("socket: %s", strerror(errno));
		return -1;
	}
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)sin, sizeof(*sin)) != 0 ||
	    listen(fd, 128) != 0 ||
	    getsockname(fd, (struct sockaddr *)sin, &len) != 0) {
		T_FAILF("bind/listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int local_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		return -1;
	return ntohs(sin.sin_port);
}

static int tcp_accept_connect(bool nb)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a = { 0 }, c = { 0 };
	struct sockaddr_in lsin, peer;
	socklen_t plen;
	int lfd, cfd, afd, cfd2;
	char ch = 0;

	ASSERT_NOTNULL(loop);
	lfd = tcp_listener(nb, &lsin);
	ASSERT_GE(lfd, 0);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
			      (nb ? SOCK_NONBLOCK : 0), 0);
	ASSERT_GE(cfd, 0);

	T_STEP("accept waits for a connection");
	memset(&peer, 0, sizeof(peer));
	plen = sizeof(peer);
	t_op_init(&a);
	evq_prep_accept(&a.op, lfd, (struct sockaddr *)&peer, &plen,
			SOCK_CLOEXEC);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(a.ncalls, 0);	/* not -EAGAIN, and the loop is not stuck */

	T_STEP("connect op; both complete");
	t_op_init(&c);
	evq_prep_connect(&c.op, cfd, (struct sockaddr *)&lsin, sizeof(lsin));
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_OK(t_op_wait(loop, &a, 5000));
	ASSERT_ERR(c.res, 0);
	ASSERT_GE(a.res, 0);
	afd = a.res;
	ASSERT_TRUE(t_fd_open(afd));
	ASSERT_TRUE(fcntl(afd, F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(fcntl(afd, F_GETFL) & O_NONBLOCK, 0);
	ASSERT_EQ(plen, sizeof(peer));
	ASSERT_EQ(peer.sin_family, AF_INET);
	ASSERT_EQ(ntohs(peer.sin_port), local_port(cfd));
	T_STEP("the two ends are connected");
	ASSERT_EQ(send(cfd, "k", 1, MSG_NOSIGNAL), 1);
	ASSERT_EQ(recv(afd, &ch, 1, 0), 1);
	ASSERT_EQ(ch, 'k');
	close(afd);

	T_STEP("connect first, then accept with SOCK_NONBLOCK, no address");
	cfd2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
			       (nb ? SOCK_NONBLOCK : 0), 0);
	ASSERT_GE(cfd2, 0);
	t_op_init(&c);
	evq_prep_connect(&c.op, cfd2, (struct sockaddr *)&lsin, sizeof(lsin));
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_ERR(c.res, 0);
	t_op_init(&a);
	evq_prep_accept(&a.op, lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	ASSERT_OK(t_op_wait(loop, &a, 5000));
	ASSERT_GE(a.res, 0);
	afd = a.res;
	ASSERT_TRUE(fcntl(afd, F_GETFL) & O_NONBLOCK);
	plen = sizeof(peer);
	ASSERT_EQ(getpeername(afd, (struct sockaddr *)&peer, &plen), 0);
	ASSERT_EQ(ntohs(peer.sin_port), local_port(cfd2));
	close(afd);

	T_STEP("the fds' flags are untouched");
	ASSERT_EQ(!!(fcntl(lfd, F_GETFL) & O_NONBLOCK), nb);
	ASSERT_EQ(!!(fcntl(cfd, F_GETFL) & O_NONBLOCK), nb);
	close(cfd2);
	close(cfd);
	close(lfd);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int tcp_accept_connect_nonblocking(void)
{
	return tcp_accept_connect(true);
}

static int tcp_accept_connect_blocking(void)
{
	t_case_timeout(10);
	return tcp_accept_connect(false);
}

static int connect_refused(void)
{
	struct evq_loop *loop = t_loop_new();
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int hold;

	ASSERT_NOTNULL(loop);
	/* A bound socket that does not listen: its port refuses, and nobody
	 * else can take the port meanwhile. */
	hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(hold, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(bind(hold, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ASSERT_EQ(getsockname(hold, (struct sockaddr *)&sin, &len), 0);
	for (int nb = 0; nb < 2; nb++) {
		struct t_op c = { 0 };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
					 (nb ? SOCK_NONBLOCK : 0), 0);

		T_STEP("%s socket", nb ? "non-blocking" : "blocking");
		ASSERT_GE(fd, 0);
		t_op_init(&c);
		evq_prep_connect(&c.op, fd, (struct sockaddr *)&sin,
				 sizeof(sin));
		ASSERT_OK(t_op_submit(loop, &c, 0));
		ASSERT_EQ(c.ncalls, 0);
		ASSERT_OK(t_op_wait(loop, &c, 5000));
		ASSERT_ERR(c.res, -ECONNREFUSED);
		close(fd);
	}
	close(hold);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Blocking ops: openat, statx, fsync, close
 * ------------------------------------------------------------------------ */

static int openat_ok_and_enoent(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op o = { 0 };
	char dir[256], path[300], missing[300], buf[64];
	struct stat st1, st2;
	int dfd;

	ASSERT_NOTNULL(loop);
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(path, sizeof(path), "%s/hello", dir);
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	ASSERT_OK(t_write_file(path, "hello evq", 9));

	T_STEP("absolute path, AT_FDCWD");
	t_op_init(&o);
	evq_prep_openat(&o.op, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_EQ(o.ncalls, 0);
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_GE(o.res, 0);
	ASSERT_EQ(fstat(o.res, &st1), 0);
	ASSERT_EQ(stat(path, &st2), 0);
	ASSERT_EQ(st1.st_ino, st2.st_ino);
	ASSERT_TRUE(fcntl(o.res, F_GETFD) & FD_CLOEXEC);
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(read(o.res, buf, sizeof(buf)), 9);
	ASSERT_STREQ(buf, "hello evq");
	close(o.res);

	T_STEP("relative to a dirfd");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_GE(dfd, 0);
	t_op_init(&o);
	evq_prep_openat(&o.op, dfd, "hello", O_RDONLY | O_CLOEXEC, 0);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_GE(o.res, 0);
	ASSERT_EQ(fstat(o.res, &st1), 0);
	ASSERT_EQ(st1.st_ino, st2.st_ino);
	close(o.res);

	T_STEP("O_CREAT with a mode");
	t_op_init(&o);
	evq_prep_openat(&o.op, dfd, "created",
			O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_GE(o.res, 0);
	ASSERT_EQ(fstat(o.res, &st1), 0);
	ASSERT_EQ(st1.st_mode & 0777, 0600);
	ASSERT_EQ(fcntl(o.res, F_GETFL) & O_ACCMODE, O_WRONLY);
	close(o.res);

	T_STEP("missing file: -ENOENT in the callback");
	t_op_init(&o);
	evq_prep_openat(&o.op, AT_FDCWD, missing, O_RDONLY | O_CLOEXEC, 0);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_ERR(o.res, -ENOENT);
	T_STEP("O_EXCL on an existing file: -EEXIST");
	t_op_init(&o);
	evq_prep_openat(&o.op, dfd, "created",
			O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_ERR(o.res, -EEXIST);

	close(dfd);
	unlinkat(AT_FDCWD, path, 0);
	snprintf(path, sizeof(path), "%s/created", dir);
	unlink(path);
	rmdir(dir);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Fork a child that frees the loop and exits: 0 when the free returned
 * and `job` (if any) got exactly one call, -ECANCELED. The parent waits
 * at most 5 s: a child that hangs (joining pool threads that exist only
 * in the parent) is killed and fails the case. */
static int free_in_child(struct evq_loop *loop, struct t_op *job)
{
	int status = 0;
	uint64_t t0;
	pid_t pid = fork(), w;

	if (pid == 0) {
		int r = evq_loop_free(loop);

		if (r != 0)
			_exit(2);
		if (job && (job->ncalls != 1 || job->res != -ECANCELED))
			_exit(3);
		_exit(0);
	}
	ASSERT_GT(pid, 0);
	t0 = t_now_ns();
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 &&
	       t_now_ns() - t0 < 5000 * T_MS)
		t_sleep_ms(5);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		T_FAILF("evq_loop_free() in the child hung");
		return T_FAIL;
	}
	ASSERT_EQ(w, pid);
	if (WIFSIGNALED(status))
		T_FAILF("the child died of signal %d", WTERMSIG(status));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	return T_PASS;
}

/* docs/ARCHITECTURE.md: after fork() the child may free its copy of the
 * loop. Once the thread pool has been used (openat runs there on epoll,
 * poll and aio), the child has the pool's memory but not its threads. */
static int loop_free_in_fork_child_after_pool_use(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op o = { 0 };
	char dir[256], fifo[300];
	int wfd;

	ASSERT_NOTNULL(loop);
	t_case_timeout(20);
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ASSERT_EQ(mkfifo(fifo, 0600), 0);
	T_STEP("use the pool");
	t_op_init(&o);
	evq_prep_openat(&o.op, AT_FDCWD, dir, O_RDONLY | O_CLOEXEC, 0);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_GE(o.res, 0);
	close(o.res);
	T_STEP("the child frees the loop (pool idle)");
	if (free_in_child(loop, NULL) != T_PASS)
		return T_FAIL;

	if (t_backend_emulates(loop) ||
	    evq_loop_backend(loop) == EVQ_BACKEND_AIO) {
		T_STEP("the child frees the loop (a job running in the pool)");
		/* opening a FIFO for reading blocks until a writer comes */
		t_op_init(&o);
		evq_prep_openat(&o.op, AT_FDCWD, fifo, O_RDONLY | O_CLOEXEC,
				0);
		ASSERT_OK(t_op_submit(loop, &o, 0));
		ASSERT_OK(t_run_nowait(loop, 1));
		t_sleep_ms(20);	/* let a worker take it */
		ASSERT_EQ(o.ncalls, 0);
		if (free_in_child(loop, &o) != T_PASS)
			return T_FAIL;
		wfd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		ASSERT_GE(wfd, 0);
		ASSERT_OK(t_op_wait(loop, &o, 5000));
		ASSERT_GE(o.res, 0);
		close(o.res);
		close(wfd);
	}
	T_STEP("the parent's loop still works");
	t_op_init(&o);
	evq_prep_nop(&o.op);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	unlink(fifo);
	rmdir(dir);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int statx_matches_fstat(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op o = { 0 };
	struct statx stx;
	struct stat st;
	char dir[256], path[300], data[1234];
	int fd;

	ASSERT_NOTNULL(loop);
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(path, sizeof(path), "%s/f", dir);
	memset(data, 'z', sizeof(data));
	ASSERT_OK(t_write_file(path, data, sizeof(data)));
	ASSERT_EQ(chmod(path, 0604), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(fstat(fd, &st), 0);

	T_STEP("by path");
	memset(&stx, 0, sizeof(stx));
	t_op_init(&o);
	evq_prep_statx(&o.op, AT_FDCWD, path, 0, STATX_BASIC_STATS, &stx);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_ERR(o.res, 0);
	ASSERT_TRUE((stx.stx_mask & (STATX_SIZE | STATX_MODE | STATX_INO)) ==
		    (STATX_SIZE | STATX_MODE | STATX_INO));
	ASSERT_EQ(stx.stx_size, st.st_size);
	ASSERT_EQ(stx.stx_size, 1234);
	ASSERT_EQ(stx.stx_mode, st.st_mode);
	ASSERT_EQ(stx.stx_mode & 07777, 0604);
	ASSERT_TRUE(S_ISREG(stx.stx_mode));
	ASSERT_EQ(stx.stx_ino, st.st_ino);

	T_STEP("by fd (AT_EMPTY_PATH)");
	memset(&stx, 0, sizeof(stx));
	t_op_init(&o);
	evq_prep_statx(&o.op, fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_MODE,
		       &stx);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_ERR(o.res, 0);
	ASSERT_EQ(stx.stx_size, st.st_size);
	ASSERT_EQ(stx.stx_mode, st.st_mode);

	T_STEP("missing: -ENOENT");
	t_op_init(&o);
	evq_prep_statx(&o.op, AT_FDCWD, "/nonexistent/evq/x", 0,
		       STATX_BASIC_STATS, &stx);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_ERR(o.res, -ENOENT);

	close(fd);
	unlink(path);
	rmdir(dir);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int fsync_and_fdatasync(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a = { 0 }, b = { 0 }, c = { 0 };
	char dir[256], path[300];
	int fd, bad;

	ASSERT_NOTNULL(loop);
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(write(fd, "data", 4), 4);
	bad = fcntl(fd, F_DUPFD_CLOEXEC, 1000);	/* a number nobody takes */
	ASSERT_GE(bad, 1000);
	close(bad);

	t_op_init(&a);
	evq_prep_fsync(&a.op, fd, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	t_op_init(&b);
	evq_prep_fsync(&b.op, fd, EVQ_FSYNC_DATASYNC);
	ASSERT_OK(t_op_submit(loop, &b, 0));
	t_op_init(&c);
	evq_prep_fsync(&c.op, bad, 0);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &a, 5000));
	ASSERT_OK(t_op_wait(loop, &b, 5000));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	T_STEP("fsync");
	ASSERT_ERR(a.res, 0);
	T_STEP("fdatasync");
	ASSERT_ERR(b.res, 0);
	T_STEP("fsync of a closed fd");
	ASSERT_ERR(c.res, -EBADF);
	close(fd);
	unlink(path);
	rmdir(dir);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int close_op_closes_fd(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op c = { 0 };
	char ch;
	int p[2], bad;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	T_STEP("close the write end");
	t_op_init(&c);
	evq_prep_close(&c.op, p[1]);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_ERR(c.res, 0);
	errno = 0;
	ASSERT_EQ(fcntl(p[1], F_GETFD), -1);
	ASSERT_EQ(errno, EBADF);
	/* The file is gone, not just the number: the reader sees EOF. */
	ASSERT_EQ(read(p[0], &ch, 1), 0);

	T_STEP("close of a closed fd: -EBADF in the callback");
	bad = fcntl(p[0], F_DUPFD_CLOEXEC, 1000);	/* nobody takes it */
	ASSERT_GE(bad, 1000);
	close(bad);
	t_op_init(&c);
	evq_prep_close(&c.op, bad);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_ERR(c.res, -EBADF);
	close(p[0]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* At RLIMIT_NOFILE a close op must still close: it is how a server at
 * its fd limit gets fds back, so it may not need a new fd itself (the
 * thread pool is made lazily and needs an eventfd). The loop is fresh:
 * nothing has made its pool yet. */
static int close_op_at_fd_limit(void)
{
	struct evq_loop *loop = t_loop_new();
	struct rlimit old, lim;
	struct t_op c = { 0 };
	int p[2], fill[256], nfill = 0, top = -1, fd = -1;
	bool emfile, closed;
	DIR *d;
	struct dirent *e;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	T_STEP("lower the limit to the highest open fd, fill the holes");
	d = opendir("/proc/self/fd");
	ASSERT_NOTNULL(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > top)
			top = atoi(e->d_name);
	closedir(d);
	lim = old;
	lim.rlim_cur = (rlim_t)top + 1;
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
	while (nfill < (int)T_NELEM(fill) && (fd = dup(p[1])) >= 0)
		fill[nfill++] = fd;
	emfile = fd < 0 && errno == EMFILE;

	T_STEP("a close op at the limit");
	t_op_init(&c);
	evq_prep_close(&c.op, p[0]);
	if (emfile && t_op_submit(loop, &c, 0) == 0)
		(void)t_op_wait(loop, &c, 5000);
	closed = !t_fd_open(p[0]);
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	ASSERT_TRUE(emfile);
	ASSERT_EQ(c.ncalls, 1);
	ASSERT_ERR(c.res, 0);
	ASSERT_TRUE(closed);
	close(p[1]);
	T_STEP("ops that need the thread pool work once fds are back");
	ASSERT_OK(t_pipe(p));
	t_op_init(&c);
	evq_prep_close(&c.op, p[0]);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_ERR(c.res, 0);
	ASSERT_TRUE(!t_fd_open(p[0]));
	close(p[1]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Lengths above what the kernel moves in one call (0x7ffff000, as
 * read(2) says) are clamped to it on every backend: never cut to 32 bits,
 * which turned a 4 GiB read into a 0-byte "EOF" on io_uring. The buffer
 * is small: the kernel touches only the bytes it moves. */
static int huge_lengths_are_clamped(void)
{
	const size_t huge = (size_t)1 << 32;
	struct evq_loop *loop;
	struct t_op o = { 0 };
	struct iovec iov;
	unsigned char *buf;
	int p[2], sp[2];

	if (sizeof(size_t) < 8)
		return t_skip("size_t is 32 bits here");
	loop = t_loop_new();
	ASSERT_NOTNULL(loop);
	buf = mmap(NULL, 65536, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(buf != MAP_FAILED);
	memset(buf, 'x', 65536);
	ASSERT_OK(t_pipe(p));
	/* one page: a write moves at most that much */
	ASSERT_GE(fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
	ASSERT_OK(t_socketpair(sp));

	T_STEP("read of 4 GiB with 16 bytes in the pipe");
	ASSERT_EQ(write(p[1], "0123456789abcdef", 16), 16);
	t_op_init(&o);
	evq_prep_read(&o.op, p[0], buf, huge, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_EQ(o.res, 16);
	ASSERT_EQ(memcmp(buf, "0123456789abcdef", 16), 0);
	T_STEP("readv of one 4 GiB iovec");
	ASSERT_EQ(write(p[1], "0123456789abcdef", 16), 16);
	iov.iov_base = buf;
	iov.iov_len = huge;
	t_op_init(&o);
	evq_prep_readv(&o.op, p[0], &iov, 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_EQ(o.res, 16);
	T_STEP("write of 4 GiB to a one-page pipe: a positive count");
	t_op_init(&o);
	evq_prep_write(&o.op, p[1], buf, huge, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_GT(o.res, 0);
	ASSERT_LE(o.res, 65536);
	ASSERT_EQ(t_drain(p[0]), o.res);
	T_STEP("recv of 4 GiB with 16 bytes queued");
	ASSERT_EQ(write(sp[1], "0123456789abcdef", 16), 16);
	t_op_init(&o);
	evq_prep_recv(&o.op, sp[0], buf, huge, 0);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_EQ(o.res, 16);
	T_STEP("send of 4 GiB: a positive count");
	ASSERT_GE(setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &(int){ 4096 },
			     sizeof(int)), 0);
	t_op_init(&o);
	evq_prep_send(&o.op, sp[0], buf, huge, 0);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_GT(o.res, 0);
	ASSERT_LE(o.res, 65536);
	ASSERT_EQ(t_sock_drain(sp[1]), o.res);
	t_close2(p);
	t_close2(sp);
	munmap(buf, 65536);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int close_op_ends_watchers_and_ops(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io wr = { 0 }, rd = { 0 }, other = { 0 };
	struct t_op rv = { 0 }, c = { 0 };
	char buf[8];
	int sp[2], sp2[2], p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sp));
	ASSERT_OK(t_pipe(p));
	T_STEP("a pending recv on sp[0]");
	t_op_init(&rv);
	evq_prep_recv(&rv.op, sp[0], buf, sizeof(buf), 0);
	ASSERT_OK(t_op_submit(loop, &rv, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(rv.ncalls, 0);

	T_STEP("watchers on sp[0], then a close op, no iteration between");
	/* Always writable: it would run in the next iteration if the close
	 * did not end it first. */
	ASSERT_OK(evq_io_start(loop, &wr, sp[0], EVQ_WRITE, never_io));
	ASSERT_OK(evq_io_start(loop, &rd, sp[0], EVQ_READ, never_io));
	/* A watcher on another fd is not touched. */
	ASSERT_OK(evq_io_start(loop, &other, p[0], EVQ_READ, never_io));
	ASSERT_EQ(evq_loop_active(loop), 4);
	t_op_init(&c);
	evq_prep_close(&c.op, sp[0]);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_ERR(c.res, 0);
	T_STEP("the pending recv was cancelled, the watchers stopped");
	ASSERT_EQ(rv.ncalls, 1);
	ASSERT_ERR(rv.res, -ECANCELED);
	ASSERT_EQ(evq_io_is_active(&wr), 0);
	ASSERT_EQ(evq_io_is_active(&rd), 0);
	ASSERT_EQ(evq_io_is_active(&other), 1);
	ASSERT_EQ(evq_loop_active(loop), 1);
	T_STEP("the fd is closed");
	errno = 0;
	ASSERT_EQ(fcntl(sp[0], F_GETFD), -1);
	ASSERT_EQ(errno, EBADF);
	ASSERT_EQ(recv(sp[1], buf, 1, MSG_DONTWAIT), 0);	/* EOF */

	T_STEP("the number is reused and made ready: nothing old runs");
	ASSERT_OK(t_socketpair(sp2));
	ASSERT_OK(t_write_byte(sp2[1]));
	ASSERT_OK(t_write_byte(sp2[0]));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(evq_io_is_active(&wr), 0);
	ASSERT_EQ(evq_io_is_active(&rd), 0);
	ASSERT_EQ(rv.ncalls, 1);

	ASSERT_OK(evq_io_stop(&other));
	t_close2(sp2);
	t_close(sp[1]);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Error paths
 * ------------------------------------------------------------------------ */

static int ebadf_in_callback(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op r = { 0 }, s = { 0 }, neg = { 0 }, rv = { 0 };
	char buf[8];
	int p[2], bad;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	/* A number well above what this process uses, so nothing that
	 * opens an fd meanwhile (the loop's own, say) can take it. */
	bad = fcntl(p[0], F_DUPFD_CLOEXEC, 1000);
	ASSERT_GE(bad, 1000);
	close(bad);
	t_close2(p);
	ASSERT_TRUE(!t_fd_open(bad));

	t_op_init(&r);
	evq_prep_read(&r.op, bad, buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));	/* not at submit */
	t_op_init(&s);
	evq_prep_send(&s.op, bad, buf, 1, 0);
	ASSERT_OK(t_op_submit(loop, &s, 0));
	t_op_init(&rv);
	evq_prep_recv(&rv.op, bad, buf, 1, 0);
	ASSERT_OK(t_op_submit(loop, &rv, 0));
	t_op_init(&neg);
	evq_prep_read(&neg.op, -1, buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &neg, 0));
	ASSERT_EQ(r.ncalls + s.ncalls + rv.ncalls + neg.ncalls, 0);
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_OK(t_op_wait(loop, &s, 2000));
	ASSERT_OK(t_op_wait(loop, &rv, 2000));
	ASSERT_OK(t_op_wait(loop, &neg, 2000));
	T_STEP("read");
	ASSERT_ERR(r.res, -EBADF);
	T_STEP("send");
	ASSERT_ERR(s.res, -EBADF);
	T_STEP("recv");
	ASSERT_ERR(rv.res, -EBADF);
	T_STEP("read of fd -1");
	ASSERT_ERR(neg.res, -EBADF);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* With SIGPIPE at its default action, a send to a closed peer must give
 * -EPIPE (or -ECONNRESET), not kill the process. */
static int send_to_closed_peer(void)
{
	struct evq_loop *loop = t_loop_new();
	struct sigaction dfl = { 0 }, old;
	sigset_t none, oldmask;
	struct t_op s = { 0 }, sm = { 0 };
	unsigned char out[100];
	struct iovec iov = { out, 100 };
	struct msghdr msg = { 0 };
	int sp[2];

	ASSERT_NOTNULL(loop);
	dfl.sa_handler = SIG_DFL;
	ASSERT_EQ(sigaction(SIGPIPE, &dfl, &old), 0);
	sigemptyset(&none);
	sigaddset(&none, SIGPIPE);
	ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &none, &oldmask), 0);
	memset(out, 'p', sizeof(out));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;

	T_STEP("socket pair, peer already closed");
	ASSERT_OK(t_socketpair(sp));
	close(sp[1]);
	t_op_init(&s);
	evq_prep_send(&s.op, sp[0], out, sizeof(out), 0);
	ASSERT_OK(t_op_submit(loop, &s, 0));
	t_op_init(&sm);
	evq_prep_sendmsg(&sm.op, sp[0], &msg, 0);
	ASSERT_OK(t_op_submit(loop, &sm, 0));
	ASSERT_OK(t_op_wait(loop, &s, 2000));
	ASSERT_OK(t_op_wait(loop, &sm, 2000));
	ASSERT_TRUE(s.res == -EPIPE || s.res == -ECONNRESET);
	ASSERT_TRUE(sm.res == -EPIPE || sm.res == -ECONNRESET);
	close(sp[0]);

	T_STEP("a waiting send whose peer closes");
	ASSERT_OK(t_socketpair(sp));
	ASSERT_GT(t_sock_fill(sp[0]), 0);
	t_op_init(&s);
	evq_prep_send(&s.op, sp[0], out, sizeof(out), 0);
	ASSERT_OK(t_op_submit(loop, &s, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(s.ncalls, 0);
	close(sp[1]);
	ASSERT_OK(t_op_wait(loop, &s, 2000));
	ASSERT_TRUE(s.res == -EPIPE || s.res == -ECONNRESET);
	close(sp[0]);

	T_STEP("TCP: the peer closed; sends end in an error");
	{
		struct sockaddr_in sin;
		int lfd = tcp_listener(false, &sin), cfd, afd, i, err = 0;
		char junk[16] = { 0 };

		ASSERT_GE(lfd, 0);
		cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ASSERT_GE(cfd, 0);
		ASSERT_EQ(connect(cfd, (struct sockaddr *)&sin, sizeof(sin)),
			  0);
		afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		ASSERT_GE(afd, 0);
		/* Unread data at close: the peer resets at once. */
		ASSERT_EQ(send(cfd, junk, sizeof(junk), 0), 16);
		close(afd);
		for (i = 0; i < 50 && err == 0; i++) {
			t_op_init(&s);
			evq_prep_send(&s.op, cfd, out, sizeof(out), 0);
			ASSERT_OK(t_op_submit(loop, &s, 0));
			ASSERT_OK(t_op_wait(loop, &s, 2000));
			if (s.res < 0)
				err = s.res;
			else
				t_sleep_ms(2);	/* let the RST arrive */
		}
		ASSERT_TRUE(err == -EPIPE || err == -ECONNRESET);
		close(cfd);
		close(lfd);
	}

	ASSERT_EQ(sigaction(SIGPIPE, &old, NULL), 0);
	ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &oldmask, NULL), 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* A write op to a pipe without readers, SIGPIPE ignored: -EPIPE. */
static int write_to_widowed_pipe(void)
{
	struct evq_loop *loop = t_loop_new();
	struct sigaction ign = { 0 }, old;
	struct t_op w = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	ign.sa_handler = SIG_IGN;
	ASSERT_EQ(sigaction(SIGPIPE, &ign, &old), 0);
	ASSERT_OK(t_pipe(p));
	close(p[0]);
	t_op_init(&w);
	evq_prep_write(&w.op, p[1], "x", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	ASSERT_ERR(w.res, -EPIPE);
	close(p[1]);
	ASSERT_EQ(sigaction(SIGPIPE, &old, NULL), 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int eof_gives_zero(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op r = { 0 }, rm = { 0 }, pr = { 0 };
	char buf[16];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { 0 };
	int sp[2], p[2];

	ASSERT_NOTNULL(loop);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;

	T_STEP("recv and recvmsg waiting when the peer closes");
	ASSERT_OK(t_socketpair(sp));
	t_op_init(&r);
	evq_prep_recv(&r.op, sp[0], buf, sizeof(buf), 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	t_op_init(&rm);
	evq_prep_recvmsg(&rm.op, sp[0], &msg, 0);
	ASSERT_OK(t_op_submit(loop, &rm, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(r.ncalls + rm.ncalls, 0);
	close(sp[1]);
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_OK(t_op_wait(loop, &rm, 2000));
	ASSERT_EQ(r.res, 0);
	ASSERT_EQ(rm.res, 0);

	T_STEP("recv after the peer closed");
	t_op_init(&r);
	evq_prep_recv(&r.op, sp[0], buf, sizeof(buf), 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.res, 0);
	close(sp[0]);

	T_STEP("pipe: a waiting read when the writer closes");
	ASSERT_OK(t_pipe(p));
	t_op_init(&pr);
	evq_prep_read(&pr.op, p[0], buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &pr, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(pr.ncalls, 0);
	close(p[1]);
	ASSERT_OK(t_op_wait(loop, &pr, 2000));
	ASSERT_EQ(pr.res, 0);
	close(p[0]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Timeouts
 * ------------------------------------------------------------------------ */

static int timeout_op_not_early(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op t = { 0 }, z = { 0 };
	uint64_t t0;

	ASSERT_NOTNULL(loop);
	T_STEP("30 ms");
	t_op_init(&t);
	evq_prep_timeout(&t.op, 30 * T_MS);
	t0 = t_now_ns();
	ASSERT_OK(t_op_submit(loop, &t, 0));
	ASSERT_OK(t_op_wait(loop, &t, 2000));
	ASSERT_ERR(t.res, -ETIME);
	ASSERT_EQ(t.flags, 0);
	ASSERT_GE(t.at_ns - t0, 30 * T_MS);
	ASSERT_LT(t.at_ns - t0, 1000 * T_MS);
	T_STEP("0 ns: -ETIME promptly");
	t_op_init(&z);
	evq_prep_timeout(&z.op, 0);
	t0 = t_now_ns();
	ASSERT_OK(t_op_submit(loop, &z, 0));
	ASSERT_OK(t_op_wait(loop, &z, 2000));
	ASSERT_ERR(z.res, -ETIME);
	ASSERT_LT(z.at_ns - t0, 500 * T_MS);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int timer_fired_iter = -1;
static uint64_t timer_fired_at;
static int iter;

static void tmr_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
	timer_fired_iter = iter;
	timer_fired_at = t_now_ns();
}

static int timeout_op_and_timer_same_deadline(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_timer tm = { 0 };
	struct t_op t = { 0 };
	struct t_guard g;
	int op_iter = -1;
	uint64_t t_op0, t_tm0;

	ASSERT_NOTNULL(loop);
	timer_fired_iter = -1;
	iter = 0;
	t_op_init(&t);
	evq_prep_timeout(&t.op, 50 * T_MS);
	t_op0 = t_now_ns();
	ASSERT_OK(t_op_submit(loop, &t, 0));
	t_tm0 = t_now_ns();
	ASSERT_OK(evq_timer_start(loop, &tm, 50 * T_MS, 0, tmr_cb));
	ASSERT_OK(t_guard_start(loop, &g, 2000, "the timeouts never came"));
	while ((t.ncalls == 0 || timer_fired_iter < 0) && !g.fired) {
		iter++;
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
		if (t.ncalls && op_iter < 0)
			op_iter = iter;
	}
	t_guard_stop(&g);
	ASSERT_EQ(g.fired, 0);
	ASSERT_ERR(t.res, -ETIME);
	t_note("timeout op in iteration %d, timer in iteration %d", op_iter,
	       timer_fired_iter);
	ASSERT_LE(abs(op_iter - timer_fired_iter), 1);
	ASSERT_GE(t.at_ns - t_op0, 50 * T_MS);
	ASSERT_GE(timer_fired_at - t_tm0, 50 * T_MS);
	ASSERT_LT(t.at_ns - t_op0, 1000 * T_MS);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * The road (issue 10): one order of delivery, registrations kept from one
 * op to the next
 * ------------------------------------------------------------------------ */

struct order_ctx {
	struct evq_loop *loop;
	struct t_op late;	/* submitted by the first op's callback */
};

static void order_first_hook(struct evq_loop *loop, struct t_op *o, int res,
			     unsigned flags)
{
	struct order_ctx *c = o->arg;

	(void)res;
	(void)flags;
	evq_prep_nop(&c->late.op);
	if (t_op_submit(loop, &c->late, 0) != 0)
		T_FAILF("submitting from a callback failed");
}

static int results_delivered_in_report_order(void)
{
	struct evq_loop *loop = t_loop_new();
	struct order_ctx c = { 0 };
	struct t_op ops[8];

	ASSERT_NOTNULL(loop);
	c.loop = loop;
	T_STEP("eight nops submitted in one iteration");
	for (int i = 0; i < 8; i++) {
		memset(&ops[i], 0, sizeof(ops[i]));
		if (i == 0) {
			ops[i].hook = order_first_hook;
			ops[i].arg = &c;
		}
		t_op_init(&ops[i]);
		evq_prep_nop(&ops[i].op);
		ASSERT_OK(t_op_submit(loop, &ops[i], 0));
	}
	t_op_init(&c.late);
	T_STEP("one iteration delivers them all, in submission order");
	ASSERT_OK(t_run_nowait(loop, 1));
	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(ops[i].ncalls, 1);
		ASSERT_EQ(ops[i].res, 0);
		if (i > 0)
			ASSERT_EQ(ops[i].seq, ops[i - 1].seq + 1);
	}
	T_STEP("an op a callback submitted waits for the next iteration");
	ASSERT_EQ(c.late.ncalls, 0);
	ASSERT_OK(t_op_wait(loop, &c.late, 2000));
	ASSERT_GT(c.late.seq, ops[7].seq);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* The read's callback submits the next read of the same fd and a cancel
 * of it: the next read starts on the registration the first one left
 * (the emulation takes it over without a syscall), and the cancel comes
 * right after it in the same batch. */
struct rewait_ctx {
	struct evq_loop *loop;
	int fd;
	char buf[8];
	struct t_op r2, cancel, r3;
};

static void rewait_r1_hook(struct evq_loop *loop, struct t_op *o, int res,
			   unsigned flags)
{
	struct rewait_ctx *c = o->arg;

	(void)res;
	(void)flags;
	evq_prep_read(&c->r2.op, c->fd, c->buf, sizeof(c->buf),
		      EVQ_OFFSET_CURRENT);
	if (t_op_submit(loop, &c->r2, 0) != 0)
		T_FAILF("submitting r2 failed");
	evq_prep_cancel(&c->cancel.op, &c->r2.op);
	if (t_op_submit(loop, &c->cancel, 0) != 0)
		T_FAILF("submitting the cancel failed");
}

static void rewait_cancel_hook(struct evq_loop *loop, struct t_op *o, int res,
			       unsigned flags)
{
	struct rewait_ctx *c = o->arg;

	(void)res;
	(void)flags;
	evq_prep_read(&c->r3.op, c->fd, c->buf, sizeof(c->buf),
		      EVQ_OFFSET_CURRENT);
	if (t_op_submit(loop, &c->r3, 0) != 0)
		T_FAILF("submitting r3 failed");
}

static int cancel_races_kept_registration(void)
{
	struct evq_loop *loop = t_loop_new();
	struct rewait_ctx c = { 0 };
	struct t_op r1 = { 0 };
	char buf[8];
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	c.loop = loop;
	c.fd = p[0];
	r1.hook = rewait_r1_hook;
	r1.arg = &c;
	c.cancel.hook = rewait_cancel_hook;
	c.cancel.arg = &c;
	t_op_init(&r1);
	t_op_init(&c.r2);
	t_op_init(&c.cancel);
	t_op_init(&c.r3);
	T_STEP("a read waits for the pipe");
	evq_prep_read(&r1.op, p[0], buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r1, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(r1.ncalls, 0);
	ASSERT_EQ(write(p[1], "a", 1), 1);
	ASSERT_OK(t_op_wait(loop, &r1, 2000));
	ASSERT_EQ(r1.res, 1);
	T_STEP("the next read, cancelled in the batch it starts in");
	ASSERT_OK(t_op_wait(loop, &c.cancel, 2000));
	ASSERT_EQ(c.r2.ncalls, 1);
	ASSERT_EQ(c.r2.res, -ECANCELED);
	ASSERT_EQ(c.cancel.res, 0);
	ASSERT_LT(c.r2.seq, c.cancel.seq);
	T_STEP("a third read still gets what is written later");
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(c.r3.ncalls, 0);
	ASSERT_EQ(write(p[1], "bc", 2), 2);
	ASSERT_OK(t_op_wait(loop, &c.r3, 2000));
	ASSERT_EQ(c.r3.res, 2);
	ASSERT_EQ(memcmp(c.buf, "bc", 2), 0);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* The first read's callback closes the fd and puts another kind of file
 * on its number (dup2 closes and reuses in one step), then reads the
 * number again: what the loop kept of the old file (its registration,
 * that it has readiness) must not decide how the new one is read. */
struct reuse_ctx {
	int fd;			/* the number */
	int other;		/* the file that takes it */
	char buf[16];
	struct t_op r2;
};

static void reuse_hook(struct evq_loop *loop, struct t_op *o, int res,
		       unsigned flags)
{
	struct reuse_ctx *c = o->arg;

	(void)res;
	(void)flags;
	if (dup2(c->other, c->fd) != c->fd) {
		T_FAILF("dup2: %s", strerror(errno));
		return;
	}
	evq_prep_read(&c->r2.op, c->fd, c->buf, sizeof(c->buf),
		      EVQ_OFFSET_CURRENT);
	if (t_op_submit(loop, &c->r2, 0) != 0)
		T_FAILF("submitting the second read failed");
}

static int op_on_reused_number_of_another_kind(void)
{
	struct evq_loop *loop = t_loop_new();
	struct reuse_ctx c = { 0 };
	struct t_op r1 = { 0 }, w = { 0 };
	char dir[256], path[300], buf[8];
	int p[2], q[2];

	ASSERT_NOTNULL(loop);
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(path, sizeof(path), "%s/f", dir);
	ASSERT_OK(t_write_file(path, "file data", 9));

	T_STEP("a pipe's number becomes a regular file's");
	ASSERT_OK(t_pipe(p));
	c.fd = p[0];
	c.other = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_GE(c.other, 0);
	r1.hook = reuse_hook;
	r1.arg = &c;
	t_op_init(&r1);
	t_op_init(&c.r2);
	evq_prep_read(&r1.op, p[0], buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r1, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(write(p[1], "x", 1), 1);
	ASSERT_OK(t_op_wait(loop, &r1, 2000));
	ASSERT_EQ(r1.res, 1);
	ASSERT_OK(t_op_wait(loop, &c.r2, 3000));
	ASSERT_EQ(c.r2.res, 9);
	ASSERT_EQ(memcmp(c.buf, "file data", 9), 0);
	close(c.fd);
	close(c.other);
	close(p[1]);

	T_STEP("a pipe's number becomes another pipe's");
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(t_pipe(q));
	c.fd = p[0];
	c.other = q[0];
	t_op_init(&r1);
	t_op_init(&c.r2);
	evq_prep_read(&r1.op, p[0], buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r1, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(write(p[1], "x", 1), 1);
	ASSERT_OK(t_op_wait(loop, &r1, 2000));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(c.r2.ncalls, 0);
	T_STEP("data on the new pipe reaches the read");
	t_op_init(&w);
	evq_prep_write(&w.op, q[1], "new", 3, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_op_wait(loop, &c.r2, 3000));
	ASSERT_EQ(c.r2.res, 3);
	ASSERT_EQ(memcmp(c.buf, "new", 3), 0);
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	close(c.fd);
	close(p[1]);
	t_close2(q);
	unlink(path);
	rmdir(dir);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* A read op takes over the registration its fd's last op left; the fd
 * was closed behind the loop's back in between and its number reused by
 * another pipe (the new read is right to name it). A report then comes
 * through the registration (on aio a poll re-armed by number, so of the
 * new pipe) but finds no data (a reader took it first), and a watcher
 * started on the number checks the registration: the stale watch ends.
 * The read must start over on the new pipe, not fail with -EBADF on an
 * open fd (aio did; found by test_random, seed 0x596975940029). */
static int read_on_a_reused_number_survives_a_stale_watch_check(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	struct t_op r1 = { 0 }, r2 = { 0 };
	char buf[8], b2[8], steal[8];
	int p[2], q[2];

	ASSERT_NOTNULL(loop);
	T_STEP("a read on a pipe waits, then completes");
	ASSERT_OK(t_pipe(p));
	t_op_init(&r1);
	evq_prep_read(&r1.op, p[0], buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r1, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(write(p[1], "12345678", 8), 8);
	ASSERT_OK(t_op_wait(loop, &r1, 2000));
	ASSERT_EQ(r1.res, 8);
	T_STEP("closed behind the loop's back; another pipe takes the number");
	close(p[0]);
	close(p[1]);
	ASSERT_OK(t_pipe(q));
	ASSERT_EQ(q[0], p[0]);
	t_op_init(&r2);
	evq_prep_read(&r2.op, q[0], b2, sizeof(b2), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r2, 0));
	ASSERT_OK(t_run_nowait(loop, 1));
	T_STEP("a report without data, then a watcher checks the number");
	ASSERT_EQ(write(q[1], "abcdefgh", 8), 8);
	t_sleep_ms(10);
	ASSERT_EQ(read(q[0], steal, 8), 8);
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(r2.ncalls, 0);
	ASSERT_OK(evq_io_start(loop, &w, q[0], EVQ_READ, never_io));
	evq_io_stop(&w);
	ASSERT_OK(t_run_nowait(loop, 2));
	EXPECT_EQ(r2.ncalls, 0);
	T_STEP("data on the new pipe reaches the read");
	ASSERT_EQ(write(q[1], "ijklmnop", 8), 8);
	ASSERT_OK(t_op_wait(loop, &r2, 3000));
	ASSERT_EQ(r2.res, 8);
	ASSERT_EQ(memcmp(b2, "ijklmnop", 8), 0);
	t_close2(q);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* evq.h: submission only queues, on every backend. A close op ends the
 * fd's watchers when the loop starts it, not inside evq_op_submit() (on
 * uring it did, issue 10 item 5). */
static int close_op_ends_watchers_when_started(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	struct t_op c = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, never_io));
	t_op_init(&c);
	evq_prep_close(&c.op, p[0]);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	T_STEP("after the submit the watcher is still active");
	ASSERT_EQ(evq_io_is_active(&w), 1);
	ASSERT_EQ(c.ncalls, 0);
	T_STEP("the loop starts the close: the watch ends, then the fd");
	ASSERT_OK(t_op_wait(loop, &c, 2000));
	ASSERT_EQ(c.res, 0);
	ASSERT_EQ(evq_io_is_active(&w), 0);
	ASSERT_TRUE(!t_fd_open(p[0]));
	close(p[1]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(nop_runs_from_loop_only),
	T_CASE(callbacks_never_inside_submit),
	T_CASE(counts_and_is_active),
	T_CASE(ops_keep_loop_alive),
	T_CASE(submit_validation),
	T_CASE(submit_in_flight_ebusy),
	T_CASE(pipe_rw_nonblocking),
	T_CASE(pipe_rw_blocking),
	T_CASE(file_rw_offsets),
	T_CASE(socket_ops_nonblocking),
	T_CASE(socket_ops_blocking),
	T_CASE(tcp_accept_connect_nonblocking),
	T_CASE(tcp_accept_connect_blocking),
	T_CASE(connect_refused),
	T_CASE(openat_ok_and_enoent),
	T_CASE(loop_free_in_fork_child_after_pool_use),
	T_CASE(statx_matches_fstat),
	T_CASE(fsync_and_fdatasync),
	T_CASE(close_op_closes_fd),
	T_CASE(close_op_at_fd_limit),
	T_CASE(huge_lengths_are_clamped),
	T_CASE(close_op_ends_watchers_and_ops),
	T_CASE(ebadf_in_callback),
	T_CASE(send_to_closed_peer),
	T_CASE(write_to_widowed_pipe),
	T_CASE(eof_gives_zero),
	T_CASE(timeout_op_not_early),
	T_CASE(timeout_op_and_timer_same_deadline),
	T_CASE(results_delivered_in_report_order),
	T_CASE(cancel_races_kept_registration),
	T_CASE(op_on_reused_number_of_another_kind),
	T_CASE(read_on_a_reused_number_survives_a_stale_watch_check),
	T_CASE(close_op_ends_watchers_when_started),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
