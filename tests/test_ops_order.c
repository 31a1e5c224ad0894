/* SPDX-License-Identifier: MIT */
/*
 * test_ops_order.c - what the road from an op's result to its callback
 * must keep however it is taken (issue 10): the order of callbacks within
 * one iteration, a cancel that meets an emulated read just as its fd
 * became readable or its registration was taken over again, and an op on
 * an fd number the loop knew as one kind of file that was closed and
 * reopened as another.
 *
 * Every case runs on every backend. Where the kernel may legally decide
 * (io_uring finishes a read before the cancel that follows it reaches
 * it), the case accepts each outcome evq.h allows and checks what must
 * hold in all of them: one final call per submission, the cancel's
 * callback after its target's, no byte lost or read twice.
 */
#include "ops_helpers.h"

#include <poll.h>
#include <sys/socket.h>

/* evq_loop_run(ONCE) calls made by the case so far: a callback notes the
 * run it came in. */
static int run_no;

static int run_once(struct evq_loop *loop)
{
	run_no++;
	return t_run_once(loop, 2000);
}

/* Run ONCE iterations until *counter >= target (at most 2 s). */
static int run_until(struct evq_loop *loop, const int *counter, int target)
{
	for (int i = 0; i < 400 && *counter < target; i++)
		if (run_once(loop) < 0)
			return -1;
	return *counter >= target ? 0 : -ETIMEDOUT;
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* ------------------------------------------------------------------------
 * Order of callbacks within one iteration
 * ------------------------------------------------------------------------ */

/* Submitted by the first op's callback: its callback must come after
 * every result already reported, in a later run. */
struct order_ctx {
	struct t_op late;
	int late_fd;		/* -1: a nop; else a write of one byte */
	int submitted_in;	/* run_no of that submission */
};

static void submit_late(struct evq_loop *loop, struct t_op *o, int res,
			unsigned flags)
{
	struct order_ctx *c = o->arg;

	(void)res;
	(void)flags;
	if (c->submitted_in)
		return;
	c->submitted_in = run_no;
	t_op_init(&c->late);
	if (c->late_fd < 0)
		evq_prep_nop(&c->late.op);
	else
		evq_prep_write(&c->late.op, c->late_fd, "L", 1,
			       EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &c->late, 0));
}

static void note_run(struct evq_loop *loop, struct t_op *o, int res,
		     unsigned flags)
{
	(void)loop;
	(void)res;
	(void)flags;
	*(int *)o->arg = run_no;
}

/* A watcher that notes the t_op_seq its callback saw, and stops. */
struct seen_io {
	struct evq_io io;
	int seq;	/* t_op_seq + 1 when it ran: before that op */
	int calls;
};

static void seen_io_cb(struct evq_loop *loop, struct evq_io *w,
		       unsigned revents)
{
	struct seen_io *s = (struct seen_io *)(void *)w;

	(void)loop;
	(void)revents;
	s->calls++;
	s->seq = t_op_seq + 1;
	evq_io_stop(w);
}

/* A timer whose callback submits a write of one byte. */
struct late_write {
	struct evq_timer timer;
	struct t_op w;
	int fd;
};

static void submit_write_cb(struct evq_loop *loop, struct evq_timer *t)
{
	struct late_write *lw = (struct late_write *)(void *)t;

	evq_prep_write(&lw->w.op, lw->fd, "x", 1, EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &lw->w, 0));
}

static int callbacks_of_one_iteration_come_in_report_order(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op ops[5];
	struct order_ctx ctx;
	int p[2], q[2], base, late_run;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(t_pipe(q));
	run_no = 0;

	for (int kind = 0; kind < 2; kind++) {
		T_STEP("%s finishing as they start come back in submission "
		       "order, before an op their callbacks submit",
		       kind ? "writes" : "nops");
		memset(&ctx, 0, sizeof(ctx));
		ctx.late_fd = kind ? q[1] : -1;
		late_run = 0;
		ctx.late.hook = note_run;
		ctx.late.arg = &late_run;
		base = t_op_seq;
		for (int i = 0; i < 5; i++) {
			memset(&ops[i], 0, sizeof(ops[i]));
			ops[i].hook = submit_late;
			ops[i].arg = &ctx;
			t_op_init(&ops[i]);
			if (kind)
				evq_prep_write(&ops[i].op, i & 1 ? q[1] : p[1],
					       "x", 1, EVQ_OFFSET_CURRENT);
			else
				evq_prep_nop(&ops[i].op);
			ASSERT_OK(t_op_submit(loop, &ops[i], 0));
		}
		ASSERT_OK(run_until(loop, &ctx.late.ncalls, 1));
		for (int i = 0; i < 5; i++) {
			EXPECT_EQ(ops[i].ncalls, 1);
			EXPECT_EQ(ops[i].res, kind ? 1 : 0);
			EXPECT_EQ(ops[i].seq, base + 1 + i);
		}
		EXPECT_EQ(ctx.late.seq, base + 6);
		EXPECT_GT(late_run, ctx.submitted_in);
		ASSERT_EQ(evq_loop_ops(loop), 0);
	}
	t_drain(p[0]);
	t_drain(q[0]);

	for (int first = 0; first < 2; first++) {
		struct seen_io sw = { 0 };
		struct t_op rd = { 0 };
		char b = 0;

		T_STEP("a watcher and a waiting read made ready by one wait "
		       "(%s ready first): the watcher's callback runs first",
		       first ? "the read's fd" : "the watcher's fd");
		t_op_init(&rd);
		evq_prep_read(&rd.op, p[0], &b, 1, EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &rd, 0));
		ASSERT_OK(t_run_nowait(loop, 2));
		ASSERT_EQ(rd.ncalls, 0);
		ASSERT_OK(evq_io_start(loop, &sw.io, q[0], EVQ_READ,
				       seen_io_cb));
		if (first) {
			ASSERT_OK(t_write_byte(p[1]));
			ASSERT_OK(t_write_byte(q[1]));
		} else {
			ASSERT_OK(t_write_byte(q[1]));
			ASSERT_OK(t_write_byte(p[1]));
		}
		ASSERT_OK(run_until(loop, &rd.ncalls, 1));
		ASSERT_OK(run_until(loop, &sw.calls, 1));
		EXPECT_EQ(rd.res, 1);
		EXPECT_EQ(sw.calls, 1);
		EXPECT_LE(sw.seq, rd.seq);
		EXPECT_EQ(t_drain(q[0]), 1);
		EXPECT_EQ(t_drain(p[0]), 0);
	}

	T_STEP("a timeout op's result reported after the iteration's "
	       "delivery (by the timers that ran after it) comes before the "
	       "callback of a write a later timer's callback submitted");
	{
		struct t_op tmo = { 0 };
		struct late_write lw = { 0 };

		t_op_init(&tmo);
		evq_prep_timeout(&tmo.op, 5 * T_MS);
		ASSERT_OK(t_op_submit(loop, &tmo, 0));
		ASSERT_OK(t_run_nowait(loop, 1));	/* its clock starts */
		ASSERT_EQ(tmo.ncalls, 0);
		lw.fd = q[1];
		t_op_init(&lw.w);
		ASSERT_OK(evq_timer_start(loop, &lw.timer, 5 * T_MS, 0,
					  submit_write_cb));
		t_sleep_ms(15);
		ASSERT_OK(run_until(loop, &lw.w.ncalls, 1));
		ASSERT_EQ(tmo.ncalls, 1);
		EXPECT_ERR(tmo.res, -ETIME);
		EXPECT_EQ(lw.w.res, 1);
		EXPECT_LT(tmo.seq, lw.w.seq);
		EXPECT_EQ(t_drain(q[0]), 1);
	}

	t_close2(p);
	t_close2(q);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * A cancel racing the internal re-registration
 * ------------------------------------------------------------------------ */

struct rearm_ctx {
	struct t_op again;	/* the read, submitted again */
	struct t_op cancel;
	char buf[2];
	int fd;
	bool by_fd;
};

/* The first read's callback submits the next read on the same fd (which
 * takes over the registration the first one leaves) and, at once, a
 * cancel of it. */
static void read_again_and_cancel(struct evq_loop *loop, struct t_op *o,
				  int res, unsigned flags)
{
	struct rearm_ctx *c = o->arg;

	(void)flags;
	EXPECT_EQ(res, 1);
	t_op_init(&c->again);
	evq_prep_read(&c->again.op, c->fd, c->buf + 1, 1, EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &c->again, 0));
	t_op_init(&c->cancel);
	if (c->by_fd)
		evq_prep_cancel_fd(&c->cancel.op, c->fd);
	else
		evq_prep_cancel(&c->cancel.op, &c->again.op);
	EXPECT_OK(t_op_submit(loop, &c->cancel, 0));
}

/* The outcome of a read of one byte from fd that a cancel may have
 * ended: cancelled, and the byte still there; or the read won, and the
 * cancel found nothing. Either way one final call each, the target's
 * first when the cancel says it found it. */
static int check_race(struct t_op *rd, struct t_op *cancel, int fd,
		      int bytes_left_if_cancelled)
{
	ASSERT_EQ(rd->ncalls, 1);
	ASSERT_EQ(cancel->ncalls, 1);
	if (rd->res == -ECANCELED) {
		ASSERT_TRUE(cancel->res == 0 || cancel->res == 1);
		ASSERT_LT(rd->seq, cancel->seq);
		EXPECT_EQ(t_drain(fd), bytes_left_if_cancelled);
	} else {
		ASSERT_EQ(rd->res, 1);
		ASSERT_TRUE(cancel->res == -ENOENT ||
			    cancel->res == -EALREADY);
		EXPECT_EQ(t_drain(fd), bytes_left_if_cancelled - 1);
	}
	return T_PASS;
}

static void cancel_from_watcher_cb(struct evq_loop *loop, struct evq_io *w,
				   unsigned revents)
{
	struct rearm_ctx *c = w->data;

	(void)revents;
	evq_io_stop(w);
	t_op_init(&c->cancel);
	evq_prep_cancel(&c->cancel.op, &c->again.op);
	EXPECT_OK(t_op_submit(loop, &c->cancel, 0));
}

static int cancel_meets_a_read_as_its_fd_is_rearmed_or_ready(void)
{
	struct evq_loop *loop = t_loop_new();
	struct rearm_ctx ctx;
	struct t_op first;
	int p[2], q[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(t_pipe(q));

	for (int by_fd = 0; by_fd < 2; by_fd++) {
		T_STEP("a read's callback reads again on its fd, which "
		       "still has a byte, and cancels that read (%s)",
		       by_fd ? "by fd" : "by op");
		memset(&ctx, 0, sizeof(ctx));
		ctx.fd = p[0];
		ctx.by_fd = by_fd;
		memset(&first, 0, sizeof(first));
		first.hook = read_again_and_cancel;
		first.arg = &ctx;
		t_op_init(&first);
		evq_prep_read(&first.op, p[0], ctx.buf, 1,
			      EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &first, 0));
		ASSERT_OK(t_run_nowait(loop, 2));	/* it waits */
		ASSERT_EQ(write(p[1], "ab", 2), 2);
		ASSERT_OK(run_until(loop, &ctx.cancel.ncalls, 1));
		ASSERT_OK(run_until(loop, &ctx.again.ncalls, 1));
		ASSERT_EQ(first.ncalls, 1);
		if (check_race(&ctx.again, &ctx.cancel, p[0], 1) != T_PASS)
			return T_FAIL;
		ASSERT_EQ(evq_loop_ops(loop), 0);
	}

	T_STEP("a waiting read is cancelled by a watcher's callback in the "
	       "wait that reports its fd readable");
	for (int first_ready = 0; first_ready < 2; first_ready++) {
		struct evq_io w = { 0 };

		memset(&ctx, 0, sizeof(ctx));
		ctx.fd = p[0];
		t_op_init(&ctx.again);
		evq_prep_read(&ctx.again.op, p[0], ctx.buf, 1,
			      EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &ctx.again, 0));
		ASSERT_OK(t_run_nowait(loop, 2));
		ASSERT_EQ(ctx.again.ncalls, 0);
		w.data = &ctx;
		ASSERT_OK(evq_io_start(loop, &w, q[0], EVQ_READ,
				       cancel_from_watcher_cb));
		if (first_ready) {
			ASSERT_OK(t_write_byte(p[1]));
			ASSERT_OK(t_write_byte(q[1]));
		} else {
			ASSERT_OK(t_write_byte(q[1]));
			ASSERT_OK(t_write_byte(p[1]));
		}
		ASSERT_OK(run_until(loop, &ctx.cancel.ncalls, 1));
		ASSERT_OK(run_until(loop, &ctx.again.ncalls, 1));
		if (check_race(&ctx.again, &ctx.cancel, p[0], 1) != T_PASS)
			return T_FAIL;
		EXPECT_EQ(t_drain(q[0]), 1);
		ASSERT_EQ(evq_loop_ops(loop), 0);
	}

	T_STEP("a read submitted and cancelled before its fd, ready all "
	       "along, is looked at: cancelled, the byte stays");
	memset(&ctx, 0, sizeof(ctx));
	ASSERT_OK(t_write_byte(p[1]));
	t_op_init(&ctx.again);
	evq_prep_read(&ctx.again.op, p[0], ctx.buf, 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &ctx.again, 0));
	t_op_init(&ctx.cancel);
	evq_prep_cancel(&ctx.cancel.op, &ctx.again.op);
	ASSERT_OK(t_op_submit(loop, &ctx.cancel, 0));
	ASSERT_OK(run_until(loop, &ctx.cancel.ncalls, 1));
	ASSERT_OK(run_until(loop, &ctx.again.ncalls, 1));
	if (check_race(&ctx.again, &ctx.cancel, p[0], 1) != T_PASS)
		return T_FAIL;

	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close2(p);
	t_close2(q);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * A read that took over its fd's registration from a callback
 * ------------------------------------------------------------------------ */

/* The first read's callback submits the second on the same fd: on the
 * emulation that read waits at once on the registration the first left
 * (evq_op_submit's short way), off the start queue. */
struct taken_ctx {
	struct t_op first, second;
	int fd;
	char buf[2];
};

static void read_again(struct evq_loop *loop, struct t_op *o, int res,
		       unsigned flags)
{
	struct taken_ctx *c = o->arg;

	(void)flags;
	if (res != 1)
		return;
	t_op_init(&c->second);
	evq_prep_read(&c->second.op, c->fd, c->buf + 1, 1,
		      EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &c->second, 0));
}

/* Run c->first to its result on fd: it waits first, then a byte comes.
 * c->second then waits on fd, which is empty. 0, or the case failed. */
static int second_waits(struct evq_loop *loop, struct taken_ctx *c, int fd,
			int wfd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->first.hook = read_again;
	c->first.arg = c;
	t_op_init(&c->first);
	evq_prep_read(&c->first.op, fd, c->buf, 1, EVQ_OFFSET_CURRENT);
	if (t_op_submit(loop, &c->first, 0) < 0 ||
	    t_run_nowait(loop, 2) < 0 || t_write_byte(wfd) < 0 ||
	    run_until(loop, &c->first.ncalls, 1) < 0 ||
	    t_run_nowait(loop, 2) < 0) {
		T_FAILF("the first read did not complete");
		return -1;
	}
	if (c->first.res != 1 || c->second.submits != 1 ||
	    c->second.ncalls != 0 || evq_loop_ops(loop) != 1 ||
	    evq_loop_active(loop) == 0) {
		T_FAILF("first res %d, second submitted %d, called %d, "
			"ops %u", c->first.res, c->second.submits,
			c->second.ncalls, evq_loop_ops(loop));
		return -1;
	}
	return 0;
}

static int a_taken_over_read_is_found_by_cancel_close_check_and_free(void)
{
	struct evq_loop *loop = t_loop_new();
	struct taken_ctx c;
	struct t_op x = { 0 };
	int p[2], q[2], d;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(t_pipe(q));

	for (int by_fd = 0; by_fd < 2; by_fd++) {
		T_STEP("a cancel %s finds it: -ECANCELED first, then the "
		       "cancel's result", by_fd ? "by fd" : "by op");
		ASSERT_OK(second_waits(loop, &c, p[0], p[1]));
		t_op_init(&x);
		if (by_fd)
			evq_prep_cancel_fd(&x.op, p[0]);
		else
			evq_prep_cancel(&x.op, &c.second.op);
		ASSERT_OK(t_op_submit(loop, &x, 0));
		ASSERT_OK(run_until(loop, &x.ncalls, 1));
		ASSERT_EQ(c.second.ncalls, 1);
		ASSERT_EQ(c.second.res, -ECANCELED);
		ASSERT_EQ(x.res, by_fd ? 1 : 0);
		/* uring's cancel_fd may come first (evq.h) */
		if (!by_fd || evq_loop_backend(loop) != EVQ_BACKEND_URING)
			ASSERT_LT(c.second.seq, x.seq);
		ASSERT_EQ(evq_loop_ops(loop), 0);
	}

	T_STEP("a close op on its fd ends it with -ECANCELED");
	d = dup(p[0]);
	ASSERT_GE(d, 0);
	ASSERT_OK(second_waits(loop, &c, d, p[1]));
	t_op_init(&x);
	evq_prep_close(&x.op, d);
	ASSERT_OK(t_op_submit(loop, &x, 0));
	ASSERT_OK(run_until(loop, &x.ncalls, 1));
	ASSERT_EQ(x.res, 0);
	ASSERT_EQ(c.second.ncalls, 1);
	ASSERT_EQ(c.second.res, -ECANCELED);
	ASSERT_EQ(evq_loop_ops(loop), 0);

	T_STEP("its number closed and reused by another pipe behind the "
	       "loop's back: it reads the new pipe's byte (on uring the "
	       "kernel holds the file it started on: that one's)");
	d = dup(p[0]);
	ASSERT_GE(d, 0);
	ASSERT_OK(second_waits(loop, &c, d, p[1]));
	ASSERT_OK(t_write_byte(q[1]));
	ASSERT_EQ(dup2(q[0], d), d);	/* closes d's pipe first */
	if (evq_loop_backend(loop) == EVQ_BACKEND_URING)
		ASSERT_OK(t_write_byte(p[1]));
	ASSERT_OK(run_until(loop, &c.second.ncalls, 1));
	ASSERT_EQ(c.second.res, 1);
	EXPECT_EQ(t_drain(q[0]),
		  evq_loop_backend(loop) == EVQ_BACKEND_URING ? 1 : 0);
	EXPECT_EQ(t_drain(p[0]), 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close(d);

	T_STEP("the loop's free ends it with -ECANCELED");
	ASSERT_OK(second_waits(loop, &c, p[0], p[1]));
	ASSERT_OK(evq_loop_free(loop));
	ASSERT_EQ(c.second.ncalls, 1);
	ASSERT_EQ(c.second.res, -ECANCELED);
	t_close2(p);
	t_close2(q);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * An fd number reused by another kind of file
 * ------------------------------------------------------------------------ */

/* A regular file holding text, opened read-only at position 0; -1 and
 * the case failed if not. */
static int text_file(const char *text)
{
	char dir[256], path[300];
	int fd;

	t_tmpdir(dir, sizeof(dir));
	if (!dir[0]) {
		T_FAILF("no temporary directory");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    lseek(fd, 0, SEEK_SET) != 0) {
		T_FAILF("text file: %s", strerror(errno));
		t_close(fd);
		fd = -1;
	}
	unlink(path);
	rmdir(dir);
	return fd;
}

/* One read of up to len bytes of fd through an op; its result. */
static int op_read(struct evq_loop *loop, int fd, char *buf, size_t len)
{
	struct t_op r = { 0 };

	t_op_init(&r);
	evq_prep_read(&r.op, fd, buf, len, EVQ_OFFSET_CURRENT);
	if (t_op_submit(loop, &r, 0) != 0 || t_op_wait(loop, &r, 2000) != 0)
		return -ETIMEDOUT;
	return r.res;
}

static int op_write(struct evq_loop *loop, int fd, const char *buf)
{
	struct t_op w = { 0 };

	t_op_init(&w);
	evq_prep_write(&w.op, fd, buf, strlen(buf), EVQ_OFFSET_CURRENT);
	if (t_op_submit(loop, &w, 0) != 0 || t_op_wait(loop, &w, 2000) != 0)
		return -ETIMEDOUT;
	return w.res;
}

static int op_on_a_number_reopened_as_another_kind_of_file(void)
{
	struct evq_loop *loop = t_loop_new();
	char buf[16];
	int p[2], n, keep, s[2], f;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	n = p[0];

	T_STEP("reads on a pipe: the loop learns the number as a pipe");
	for (int i = 0; i < 3; i++) {
		ASSERT_OK(t_write_byte(p[1]));
		ASSERT_EQ(op_read(loop, n, buf, 1), 1);
	}

	T_STEP("the number becomes a regular file: a read reads the file");
	keep = dup(n);	/* the pipe's file stays open elsewhere */
	ASSERT_GE(keep, 0);
	f = text_file("hello");
	ASSERT_GE(f, 0);
	ASSERT_EQ(dup3(f, n, O_CLOEXEC), n);
	t_close(f);
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(op_read(loop, n, buf, sizeof(buf)), 5);
	ASSERT_EQ(memcmp(buf, "hello", 5), 0);
	T_STEP("the old pipe, readable, reports nothing to the file's ops");
	ASSERT_OK(t_write_byte(p[1]));
	ASSERT_EQ(op_read(loop, n, buf, sizeof(buf)), 0);	/* EOF */
	ASSERT_TRUE(readable(keep));
	ASSERT_EQ(t_drain(keep), 1);

	T_STEP("the number becomes a socket with no data: the read waits, "
	       "however readable the old pipe is, for the socket's data");
	ASSERT_OK(t_socketpair(s));
	ASSERT_EQ(dup3(s[0], n, O_CLOEXEC), n);
	t_close(s[0]);
	{
		struct t_op r = { 0 };

		memset(buf, 0, sizeof(buf));
		t_op_init(&r);
		evq_prep_read(&r.op, n, buf, sizeof(buf), EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &r, 0));
		ASSERT_OK(t_write_byte(p[1]));	/* the old pipe */
		ASSERT_OK(t_run_nowait(loop, 3));
		ASSERT_EQ(r.ncalls, 0);
		ASSERT_EQ(write(s[1], "sock", 4), 4);
		ASSERT_OK(t_op_wait(loop, &r, 2000));
		ASSERT_EQ(r.res, 4);
		ASSERT_EQ(memcmp(buf, "sock", 4), 0);
		ASSERT_EQ(t_drain(keep), 1);
	}
	T_STEP("and a write on it goes to the socket");
	ASSERT_EQ(op_write(loop, n, "back"), 4);
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(read(s[1], buf, sizeof(buf)), 4);
	ASSERT_EQ(memcmp(buf, "back", 4), 0);

	T_STEP("the number becomes a pipe again (a new one): reads and "
	       "writes go to it");
	{
		int p2[2];

		ASSERT_OK(t_pipe(p2));
		ASSERT_EQ(dup3(p2[0], n, O_CLOEXEC), n);
		t_close(p2[0]);
		ASSERT_OK(t_write_byte(p2[1]));
		ASSERT_EQ(op_read(loop, n, buf, sizeof(buf)), 1);
		/* the write side, reused as a regular file */
		f = text_file("");
		ASSERT_GE(f, 0);
		ASSERT_EQ(op_write(loop, p2[1], "to pipe"), 7);
		ASSERT_EQ(dup3(f, p2[1], O_CLOEXEC), p2[1]);
		t_close(f);
		ASSERT_EQ(op_write(loop, p2[1], "to file"), 7);
		ASSERT_EQ(pread(p2[1], buf, sizeof(buf), 0), 7);
		ASSERT_EQ(memcmp(buf, "to file", 7), 0);
		ASSERT_EQ(op_read(loop, n, buf, sizeof(buf)), 7);
		ASSERT_EQ(memcmp(buf, "to pipe", 7), 0);
		t_close(p2[1]);
	}

	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close(s[1]);
	t_close(keep);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * A report used up before the op's try; a write that cannot go at once
 * ------------------------------------------------------------------------ */

struct thief {
	struct evq_io io;
	int fd;
	ssize_t stolen;
};

static void steal_cb(struct evq_loop *loop, struct evq_io *w,
		     unsigned revents)
{
	struct thief *t = (struct thief *)(void *)w;

	(void)loop;
	(void)revents;
	t->stolen += t_drain(t->fd);
}

/* A write's callback that submits another write of one byte to fd. */
struct chain_w {
	struct t_op w[3];
	int fd;
	int next;
};

static void write_next(struct evq_loop *loop, struct t_op *o, int res,
		       unsigned flags)
{
	struct chain_w *c = o->arg;

	(void)res;
	(void)flags;
	if (c->next >= 3)
		return;
	t_op_init(&c->w[c->next]);
	evq_prep_write(&c->w[c->next].op, c->fd, "w", 1, EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &c->w[c->next], 0));
	c->next++;
}

static int read_and_write_tries_that_find_nothing_wait_again(void)
{
	struct evq_loop *loop = t_loop_new();
	struct thief th = { 0 };
	struct t_op r = { 0 };
	struct chain_w cw;
	ssize_t filled;
	char b = 0;
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));

	T_STEP("a watcher of the same fd takes the byte readiness reported: "
	       "the read gets it or waits for the next, never both, never "
	       "an error");
	th.fd = p[0];
	t_op_init(&r);
	evq_prep_read(&r.op, p[0], &b, 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_OK(evq_io_start(loop, &th.io, p[0], EVQ_READ, steal_cb));
	for (int i = 0; i < 5 && r.ncalls == 0; i++) {
		ASSERT_OK(t_write_byte(p[1]));
		ASSERT_OK(t_run_nowait(loop, 3));
		ASSERT_EQ(th.stolen + r.ncalls, i + 1);
	}
	t_note("the watcher took %zd byte(s) first", th.stolen);
	evq_io_stop(&th.io);
	if (r.ncalls == 0) {
		ASSERT_OK(t_write_byte(p[1]));
		ASSERT_OK(t_op_wait(loop, &r, 2000));
	}
	ASSERT_EQ(r.ncalls, 1);
	ASSERT_EQ(r.res, 1);
	EXPECT_EQ(b, 'x');

	T_STEP("writes submitted one by one from callbacks to a full pipe "
	       "wait, then complete in order as it drains");
	ASSERT_GT((filled = t_fill(p[1])), 0);
	memset(&cw, 0, sizeof(cw));
	cw.fd = p[1];
	for (int i = 0; i < 3; i++) {
		cw.w[i].hook = write_next;
		cw.w[i].arg = &cw;
	}
	t_op_init(&cw.w[0]);
	evq_prep_write(&cw.w[0].op, p[1], "w", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &cw.w[0], 0));
	cw.next = 1;
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(cw.w[0].ncalls, 0);
	ASSERT_EQ(t_drain(p[0]), filled);
	ASSERT_OK(run_until(loop, &cw.w[2].ncalls, 1));
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(cw.w[i].ncalls, 1);
		EXPECT_EQ(cw.w[i].res, 1);
	}
	EXPECT_LT(cw.w[0].seq, cw.w[1].seq);
	EXPECT_LT(cw.w[1].seq, cw.w[2].seq);
	EXPECT_EQ(t_drain(p[0]), 3);

	T_STEP("a write to a closed number completes with -EBADF");
	{
		int fd = dup(p[1]);

		ASSERT_GE(fd, 0);
		close(fd);
		t_op_init(&cw.w[0]);
		cw.w[0].hook = NULL;
		evq_prep_write(&cw.w[0].op, fd, "w", 1, EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &cw.w[0], 0));
		ASSERT_OK(t_op_wait(loop, &cw.w[0], 2000));
		ASSERT_ERR(cw.w[0].res, -EBADF);
	}

	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(callbacks_of_one_iteration_come_in_report_order),
	T_CASE(cancel_meets_a_read_as_its_fd_is_rearmed_or_ready),
	T_CASE(op_on_a_number_reopened_as_another_kind_of_file),
	T_CASE(read_and_write_tries_that_find_nothing_wait_again),
	T_CASE(a_taken_over_read_is_found_by_cancel_close_check_and_free),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
