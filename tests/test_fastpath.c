/* SPDX-License-Identifier: MIT */
/*
 * test_fastpath.c - the short ways around the op road (a review of the
 * emulation's fast paths): the lone plain write tried and called back
 * in the loop's start step (ops.h evq__ops_start_lone), the plain read
 * set waiting inside evq_op_submit on the registration the op before it
 * left (ops.c submit_emul, take_over_read), and the plain op's own
 * watcher callback (emul.c evq__emul_plain_cb, plain_failed). Each must
 * give what the long road gives: one final call per submission, every
 * byte once and in order, correct counts, a stop or cancel that takes.
 *
 * Every case runs on every backend; where a path does not exist there
 * (io_uring runs ops natively, aio has op_start and batches transfers),
 * the case checks the same outcome on that backend's road.
 */
#include "ops_helpers.h"

#include <sys/uio.h>

static int run_until(struct evq_loop *loop, const int *counter, int target)
{
	return t_run_until(loop, counter, target, 2000, "op callbacks");
}

/* ------------------------------------------------------------------------
 * Ping-pong: every fast path at once
 * ------------------------------------------------------------------------ */

/* Two ends of a socket pair: each read's callback checks the byte,
 * submits the next read on its fd (the registration the read left: the
 * take-over at submit) and a one-byte write back (a lone write). */
struct pp_end {
	struct t_op rd, wr;
	int fd;
	char buf[4];
	char out;
	int sent;		/* bytes written */
	int got;		/* bytes received, in order */
	int bad;		/* bytes out of sequence */
	int rounds;
};

static void pp_read_cb(struct evq_loop *loop, struct t_op *o, int res,
		       unsigned flags);

static void pp_send(struct evq_loop *loop, struct pp_end *e)
{
	t_op_init(&e->wr);
	e->out = (char)('a' + e->sent++ % 26);
	evq_prep_write(&e->wr.op, e->fd, &e->out, 1, EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &e->wr, 0));
}

static void pp_recv(struct evq_loop *loop, struct pp_end *e)
{
	t_op_init(&e->rd);
	e->rd.hook = pp_read_cb;
	e->rd.arg = e;
	evq_prep_read(&e->rd.op, e->fd, e->buf, sizeof(e->buf),
		      EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &e->rd, 0));
}

static void pp_read_cb(struct evq_loop *loop, struct t_op *o, int res,
		       unsigned flags)
{
	struct pp_end *e = o->arg;

	(void)flags;
	if (res != 1) {
		T_FAILF("ping-pong read: res %d, want 1", res);
		return;
	}
	if (e->buf[0] != (char)('a' + e->got % 26))
		e->bad++;
	e->got++;
	if (e->got >= e->rounds)
		return;
	/* the read first: it takes over the registration at once */
	pp_recv(loop, e);
	pp_send(loop, e);
}

static int ping_pong_of_plain_reads_and_lone_writes_keeps_every_byte(void)
{
	struct evq_loop *loop = t_loop_new();
	struct pp_end a = { 0 }, b = { 0 };
	int s[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(s));
	a.fd = s[0];
	b.fd = s[1];
	a.rounds = b.rounds = 500;

	T_STEP("500 rounds, each a read set waiting at submit and a write");
	pp_recv(loop, &a);
	pp_recv(loop, &b);
	pp_send(loop, &a);	/* a sends first; b answers each byte */
	ASSERT_OK(t_run_until(loop, &b.got, 500, 5000, "ping-pong"));
	ASSERT_OK(run_until(loop, &a.got, 499));
	EXPECT_EQ(b.sent, 499);
	EXPECT_EQ(a.sent, 500);

	T_STEP("the byte b owes a, written past the loop, ends a's read");
	{
		char last = (char)('a' + 499 % 26);

		ASSERT_EQ(write(s[1], &last, 1), 1);
	}
	ASSERT_OK(run_until(loop, &a.got, 500));
	EXPECT_EQ(a.bad, 0);
	EXPECT_EQ(b.bad, 0);
	EXPECT_EQ(a.wr.ncalls, 1);
	EXPECT_EQ(b.wr.ncalls, 1);
	EXPECT_EQ(t_drain(s[0]), 0);
	EXPECT_EQ(t_drain(s[1]), 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	t_close2(s);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * The lone write
 * ------------------------------------------------------------------------ */

struct stop_ctx {
	struct t_op w[2];
	int fd;
};

static void write_and_stop(struct evq_loop *loop, struct t_op *o, int res,
			   unsigned flags)
{
	struct stop_ctx *c = o->arg;

	(void)res;
	(void)flags;
	if (o != &c->w[0])
		return;
	t_op_init(&c->w[1]);
	c->w[1].hook = NULL;
	evq_prep_write(&c->w[1].op, c->fd, "b", 1, EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &c->w[1], 0));
	evq_loop_stop(loop);
}

static void guard_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)t;
	T_FAILF("evq_loop_run(DEFAULT) did not return after evq_loop_stop");
	evq_loop_stop(loop);
}

static int a_lone_write_callback_that_stops_the_loop_ends_the_run(void)
{
	struct evq_loop *loop = t_loop_new();
	struct stop_ctx c = { 0 };
	struct evq_timer guard = { 0 };
	char buf[8];
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	c.fd = p[1];

	T_STEP("the write's callback submits another write and stops");
	t_op_init(&c.w[0]);
	c.w[0].hook = write_and_stop;
	c.w[0].arg = &c;
	evq_prep_write(&c.w[0].op, p[1], "a", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &c.w[0], 0));
	ASSERT_OK(evq_timer_start(loop, &guard, 2000 * T_MS, 0, guard_cb));
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	evq_timer_stop(&guard);
	ASSERT_EQ(c.w[0].ncalls, 1);
	ASSERT_EQ(c.w[0].res, 1);

	T_STEP("the next run completes the second write, after the first");
	ASSERT_OK(run_until(loop, &c.w[1].ncalls, 1));
	EXPECT_EQ(c.w[1].res, 1);
	ASSERT_EQ(read(p[0], buf, sizeof(buf)), 2);
	EXPECT_EQ(buf[0], 'a');
	EXPECT_EQ(buf[1], 'b');
	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int a_write_with_a_flag_is_counted_as_its_flag_says(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op w = { 0 }, r = { 0 };
	char c = 0;
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));

	T_STEP("an UNREF write alone: in evq_loop_ops, not in active");
	t_op_init(&w);
	evq_prep_write(&w.op, p[1], "u", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, EVQ_OP_UNREF));
	EXPECT_EQ(evq_loop_ops(loop), 1);
	EXPECT_EQ(evq_loop_active(loop), 0);
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	EXPECT_EQ(w.res, 1);
	EXPECT_EQ(evq_loop_ops(loop), 0);
	EXPECT_EQ(evq_loop_active(loop), 0);

	T_STEP("a LINK write alone heads a chain of one, then a read");
	t_op_init(&w);
	evq_prep_write(&w.op, p[1], "l", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, EVQ_OP_LINK));
	t_op_init(&r);
	evq_prep_read(&r.op, p[0], &c, 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	EXPECT_EQ(evq_loop_ops(loop), 2);
	EXPECT_EQ(evq_loop_active(loop), 2);
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	EXPECT_EQ(w.res, 1);
	EXPECT_EQ(r.res, 1);
	EXPECT_LT(w.seq, r.seq);
	/* the read ran after the write: it has the first unread byte */
	EXPECT_EQ(c, 'u');
	EXPECT_EQ(t_drain(p[0]), 1);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* A lone write to a full pipe waits; a close op of its fd, a cancel and
 * the loop's free must all find it (it joined the in-flight list). */
static int a_lone_write_that_waits_is_found_by_close_cancel_and_free(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op w = { 0 }, cl = { 0 }, cn = { 0 };
	int p[2], q[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(t_pipe(q));
	ASSERT_GT(t_fill(p[1]), 0);
	ASSERT_GT(t_fill(q[1]), 0);

	T_STEP("a cancel finds the waiting write");
	t_op_init(&w);
	evq_prep_write(&w.op, q[1], "x", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(w.ncalls, 0);
	EXPECT_EQ(evq_loop_ops(loop), 1);
	t_op_init(&cn);
	evq_prep_cancel(&cn.op, &w.op);
	ASSERT_OK(t_op_submit(loop, &cn, 0));
	ASSERT_OK(t_op_wait(loop, &cn, 2000));
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	EXPECT_ERR(w.res, -ECANCELED);
	EXPECT_EQ(cn.res, 0);
	EXPECT_LT(w.seq, cn.seq);
	ASSERT_EQ(evq_loop_ops(loop), 0);

	T_STEP("a close op of its fd ends the waiting write");
	t_op_init(&w);
	evq_prep_write(&w.op, p[1], "x", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(w.ncalls, 0);
	t_op_init(&cl);
	evq_prep_close(&cl.op, p[1]);
	ASSERT_OK(t_op_submit(loop, &cl, 0));
	ASSERT_OK(t_op_wait(loop, &cl, 2000));
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	EXPECT_EQ(cl.res, 0);
	EXPECT_LT(w.res, 0);	/* -ECANCELED or -EBADF, as the road says */
	p[1] = -1;
	ASSERT_EQ(evq_loop_ops(loop), 0);

	T_STEP("the loop's free ends a write still waiting");
	t_op_init(&w);
	evq_prep_write(&w.op, q[1], "x", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(w.ncalls, 0);
	ASSERT_EQ(evq_loop_ops(loop), 1);
	ASSERT_OK(evq_loop_free(loop));
	EXPECT_EQ(w.ncalls, 1);
	EXPECT_ERR(w.res, -ECANCELED);
	t_close2(p);
	t_close2(q);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Reads set waiting at submission
 * ------------------------------------------------------------------------ */

/* The first read's callback submits two more on its fd: the first of
 * them takes over the registration, the second cannot (it has a
 * watcher) and starts the long way. Every byte goes to exactly one. */
struct two_ctx {
	struct t_op first, r[2];
	char b0, b[2];
	int fd;
};

static void submit_two(struct evq_loop *loop, struct t_op *o, int res,
		       unsigned flags)
{
	struct two_ctx *c = o->arg;

	(void)res;
	(void)flags;
	for (int i = 0; i < 2; i++) {
		t_op_init(&c->r[i]);
		c->r[i].hook = NULL;
		evq_prep_read(&c->r[i].op, c->fd, &c->b[i], 1,
			      EVQ_OFFSET_CURRENT);
		EXPECT_OK(t_op_submit(loop, &c->r[i], 0));
	}
}

static int two_reads_submitted_in_one_callback_take_one_byte_each(void)
{
	struct evq_loop *loop = t_loop_new();
	struct two_ctx c = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	c.fd = p[0];

	T_STEP("a read that waited leaves its registration; two follow");
	t_op_init(&c.first);
	c.first.hook = submit_two;
	c.first.arg = &c;
	evq_prep_read(&c.first.op, p[0], &c.b0, 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &c.first, 0));
	ASSERT_OK(t_run_nowait(loop, 2));	/* it waits */
	ASSERT_EQ(write(p[1], "0", 1), 1);
	ASSERT_OK(t_op_wait(loop, &c.first, 2000));
	EXPECT_EQ(c.b0, '0');
	EXPECT_EQ(evq_loop_ops(loop), 2);
	EXPECT_EQ(evq_loop_active(loop), 2);

	T_STEP("two bytes arrive: one each, none twice");
	ASSERT_EQ(write(p[1], "12", 2), 2);
	ASSERT_OK(t_op_wait(loop, &c.r[0], 2000));
	ASSERT_OK(t_op_wait(loop, &c.r[1], 2000));
	EXPECT_EQ(c.r[0].res, 1);
	EXPECT_EQ(c.r[1].res, 1);
	EXPECT_TRUE((c.b[0] == '1' && c.b[1] == '2') ||
		    (c.b[0] == '2' && c.b[1] == '1'));
	t_note("first read got '%c', second '%c'", c.b[0], c.b[1]);
	EXPECT_EQ(t_drain(p[0]), 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* A read waits, completes with EOF; then the writer goes: the reads
 * taken over at submit see EOF (0) at once, each. */
struct eof_ctx {
	struct t_op r;
	char buf[8];
	int fd;
	int zeros;
};

static void read_again_until_3_eofs(struct evq_loop *loop, struct t_op *o,
				    int res, unsigned flags)
{
	struct eof_ctx *c = o->arg;

	(void)flags;
	if (res != 0)
		return;
	if (++c->zeros >= 3)
		return;
	t_op_init(&c->r);
	evq_prep_read(&c->r.op, c->fd, c->buf, sizeof(c->buf),
		      EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &c->r, 0));
}

static int reads_set_waiting_at_submit_see_eof(void)
{
	struct evq_loop *loop = t_loop_new();
	struct eof_ctx c = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	c.fd = p[0];
	t_op_init(&c.r);
	c.r.hook = read_again_until_3_eofs;
	c.r.arg = &c;
	evq_prep_read(&c.r.op, p[0], c.buf, sizeof(c.buf),
		      EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &c.r, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(c.r.ncalls, 0);

	T_STEP("the writer closes: EOF for the waiting read and two more");
	t_close(p[1]);
	p[1] = -1;
	ASSERT_OK(run_until(loop, &c.zeros, 3));
	ASSERT_OK(t_run_nowait(loop, 2));
	EXPECT_EQ(c.zeros, 3);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* A read completes on a pipe; its callback closes the pipe and opens a
 * regular file that takes the same number, then submits a read there:
 * the registration the first read left is the pipe's (gone), so the
 * read must not wait on it for ever, and must read the file. */
struct reuse_ctx {
	struct t_op r;
	char buf[16];
	int fd;			/* the number, pipe then file */
	int file;		/* the file's fd once opened */
	char path[64];
};

static void reopen_as_file(struct evq_loop *loop, struct t_op *o, int res,
			   unsigned flags)
{
	struct reuse_ctx *c = o->arg;
	int fd;

	(void)flags;
	if (res != 1 || c->file >= 0)
		return;
	close(c->fd);
	fd = open(c->path, O_RDONLY | O_CLOEXEC);
	c->file = fd;
	if (fd != c->fd) {
		T_FAILF("file took number %d, not %d", fd, c->fd);
		return;
	}
	t_op_init(&c->r);
	c->r.hook = NULL;
	evq_prep_read(&c->r.op, fd, c->buf, sizeof(c->buf),
		      EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &c->r, 0));
}

static int a_read_on_a_number_reused_by_a_file_in_the_callback_reads_it(void)
{
	struct evq_loop *loop = t_loop_new();
	struct reuse_ctx c = { 0 };
	int p[2], tmp;

	ASSERT_NOTNULL(loop);
	snprintf(c.path, sizeof(c.path), "/tmp/evq_fastpath_%d", getpid());
	tmp = open(c.path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_GE(tmp, 0);
	ASSERT_EQ(write(tmp, "file data", 9), 9);
	close(tmp);
	ASSERT_OK(t_pipe(p));
	c.fd = p[0];
	c.file = -1;

	T_STEP("a read waits on the pipe, gets a byte; its callback reopens");
	t_op_init(&c.r);
	c.r.hook = reopen_as_file;
	c.r.arg = &c;
	evq_prep_read(&c.r.op, p[0], c.buf, 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &c.r, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(write(p[1], "p", 1), 1);
	ASSERT_OK(run_until(loop, &c.r.ncalls, 1));
	ASSERT_EQ(c.file, p[0]);
	p[0] = -1;

	T_STEP("the read on the file's number reads the file");
	ASSERT_OK(t_op_wait(loop, &c.r, 2000));
	EXPECT_EQ(c.r.res, 9);
	EXPECT_EQ(memcmp(c.buf, "file data", 9), 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close(c.file);
	t_close2(p);
	unlink(c.path);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * A pipe that lost RWF_NOWAIT (splice(2), Linux 6.5 on)
 * ------------------------------------------------------------------------ */

/* splice(2) between each end of p and a file: from then on the kernel
 * refuses RWF_NOWAIT on both ends (EOPNOTSUPP). Returns whether it does
 * here (older kernels keep it: the case then checks the common road). */
static bool lose_nowait(int p[2], const char *path)
{
	int f = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	loff_t off = 0;
	char c = 'x';
	struct iovec one = { &c, 1 };
	bool lost;

	if (f < 0)
		return false;
	if (write(f, "s", 1) != 1 ||
	    splice(f, &off, p[1], NULL, 1, 0) != 1)
		T_FAILF("splice file -> pipe: %s", strerror(errno));
	off = 0;
	if (splice(p[0], NULL, f, &off, 1, 0) != 1)
		T_FAILF("splice pipe -> file: %s", strerror(errno));
	close(f);
	unlink(path);
	lost = pwritev2(p[1], &one, 1, -1, RWF_NOWAIT) < 0 &&
	       errno == EOPNOTSUPP;
	if (!lost)
		t_drain(p[0]);
	return lost;
}

static int plain_ops_on_a_pipe_that_lost_nowait_complete(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op w = { 0 }, r = { 0 };
	char path[64], buf[8];
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	snprintf(path, sizeof(path), "/tmp/evq_fastpath_s%d", getpid());
	if (!lose_nowait(p, path))
		t_note("this kernel keeps RWF_NOWAIT on a spliced pipe");

	T_STEP("a lone write completes (tried without RWF_NOWAIT)");
	t_op_init(&w);
	evq_prep_write(&w.op, p[1], "ab", 2, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	EXPECT_EQ(w.res, 2);
	ASSERT_EQ(read(p[0], buf, sizeof(buf)), 2);
	EXPECT_EQ(memcmp(buf, "ab", 2), 0);

	T_STEP("a read waits on the empty pipe, then gets its byte");
	t_op_init(&r);
	evq_prep_read(&r.op, p[0], buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(r.ncalls, 0);
	ASSERT_EQ(write(p[1], "c", 1), 1);
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	EXPECT_EQ(r.res, 1);
	EXPECT_EQ(buf[0], 'c');

	T_STEP("the next read, set waiting at submit, gets the next byte");
	ASSERT_EQ(write(p[1], "d", 1), 1);
	t_op_init(&r);
	evq_prep_read(&r.op, p[0], buf, sizeof(buf), EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	EXPECT_EQ(r.res, 1);
	EXPECT_EQ(buf[0], 'd');
	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}


/* ------------------------------------------------------------------------
 * A pool that runs out inside one batch (aio: flush_fast's xfer_pick)
 * ------------------------------------------------------------------------ */

#define NPOOLRD 4

struct pool_rd {
	struct t_op r[NPOOLRD];
	int s[NPOOLRD][2];
	struct evq_pool *pool;
	int done, ok, nobufs;
};

static void pool_rd_cb(struct evq_loop *loop, struct t_op *o, int res,
		       unsigned flags)
{
	struct pool_rd *c = o->arg;
	int i = (int)(o - c->r);
	char want[2] = { 'k', (char)('0' + i) };

	(void)loop;
	c->done++;
	if (res == -ENOBUFS) {
		c->nobufs++;
		return;
	}
	if (res != 2 || !(flags & EVQ_OP_F_BUFFER)) {
		T_FAILF("recv %d: res %d flags 0x%x", i, res, flags);
		return;
	}
	if (memcmp(evq_pool_buf(c->pool, EVQ_OP_F_BUFID(flags)), want, 2))
		T_FAILF("recv %d: another socket's bytes", i);
	c->ok++;
	EXPECT_OK(evq_pool_release(c->pool, EVQ_OP_F_BUFID(flags)));
}

/* Submit a recv_pool on every socket whose last one did not succeed. */
static void pool_rd_submit(struct evq_loop *loop, struct pool_rd *c,
			   bool all)
{
	for (int i = 0; i < NPOOLRD; i++) {
		if (!all && c->r[i].res != -ENOBUFS)
			continue;
		t_op_init(&c->r[i]);
		c->r[i].hook = pool_rd_cb;
		c->r[i].arg = c;
		evq_prep_recv_pool(&c->r[i].op, c->s[i][0], c->pool, 0);
		EXPECT_OK(t_op_submit(loop, &c->r[i], 0));
	}
}

static int recvs_that_find_the_pool_empty_in_one_batch_lose_no_byte(void)
{
	struct evq_loop *loop = t_loop_new();
	struct pool_rd c = { 0 };
	int rounds = 0;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(evq_pool_new(loop, &c.pool, 2, 16));
	for (int i = 0; i < NPOOLRD; i++)
		ASSERT_OK(t_socketpair(c.s[i]));

	for (int step = 0; step < 2; step++) {
		T_STEP("%s: four recvs, a pool of two",
		       step ? "the data arrives while they wait"
			    : "the data is there at submit");
		c.done = c.ok = c.nobufs = 0;
		if (step == 0)
			for (int i = 0; i < NPOOLRD; i++)
				ASSERT_EQ(write(c.s[i][1], (char[]){ 'k',
					  (char)('0' + i) }, 2), 2);
		pool_rd_submit(loop, &c, true);
		if (step == 1) {
			ASSERT_OK(t_run_nowait(loop, 3));
			ASSERT_EQ(c.done, 0);
			for (int i = 0; i < NPOOLRD; i++)
				ASSERT_EQ(write(c.s[i][1], (char[]){ 'k',
					  (char)('0' + i) }, 2), 2);
		}
		ASSERT_OK(run_until(loop, &c.done, NPOOLRD));
		t_note("%d with data, %d -ENOBUFS", c.ok, c.nobufs);
		EXPECT_EQ(c.ok + c.nobufs, NPOOLRD);
		EXPECT_GE(c.ok, 1);
		EXPECT_LE(c.ok, 2);
		/* the buffers are back: the others get their bytes */
		for (rounds = 0; c.ok < NPOOLRD && rounds < 4; rounds++) {
			int target = c.done + c.nobufs;

			c.nobufs = 0;
			pool_rd_submit(loop, &c, false);
			ASSERT_OK(run_until(loop, &c.done, target));
		}
		EXPECT_EQ(c.ok, NPOOLRD);
		for (int i = 0; i < NPOOLRD; i++) {
			EXPECT_EQ(c.r[i].ncalls, 1);
			EXPECT_EQ(t_drain(c.s[i][0]), 0);
		}
		ASSERT_EQ(evq_loop_ops(loop), 0);
	}
	for (int i = 0; i < NPOOLRD; i++)
		t_close2(c.s[i]);
	ASSERT_OK(evq_pool_free(c.pool));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}


/* ------------------------------------------------------------------------
 * Two waits on one fd; a number reused while its old file lives on
 * ------------------------------------------------------------------------ */

/* A read waits on a socket; a lone write to the same socket finds it
 * full and waits too: two watchers on one fd, the plain callback of each
 * with the other's there (evq__io_leave_alone's other case). */
static int a_read_and_a_write_waiting_on_one_socket_both_complete(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op r = { 0 }, w = { 0 };
	char c = 0;
	ssize_t filled;
	int s[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(s));

	T_STEP("a read waits; a write behind a full buffer waits too");
	t_op_init(&r);
	evq_prep_read(&r.op, s[0], &c, 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	filled = t_fill(s[0]);
	ASSERT_GT(filled, 0);
	t_op_init(&w);
	evq_prep_write(&w.op, s[0], "w", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(r.ncalls, 0);
	ASSERT_EQ(w.ncalls, 0);
	ASSERT_EQ(evq_loop_ops(loop), 2);

	T_STEP("the peer reads all: the write goes, the read still waits");
	ASSERT_EQ(t_drain(s[1]), filled);
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	EXPECT_EQ(w.res, 1);
	ASSERT_OK(t_run_nowait(loop, 2));
	EXPECT_EQ(r.ncalls, 0);
	ASSERT_EQ(t_drain(s[1]), 1);

	T_STEP("the peer writes: the read gets it");
	ASSERT_EQ(write(s[1], "r", 1), 1);
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	EXPECT_EQ(r.res, 1);
	EXPECT_EQ(c, 'r');
	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close2(s);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* After a read on pipe A's read end (number X) the registration stays;
 * then X is closed while a dup keeps A open (its registration lives on in
 * the kernel), pipe B takes X, and a read on X is submitted from inside
 * the loop (a deferred call: evq_op_submit's short way). Whether A is
 * readable (stale reports under X) or not (no report at all), the read
 * must read B, and only B. */
struct stale_ctx {
	struct evq_defer d;
	struct t_op r;
	int x, keep, b[2], a1;
	bool a_readable;
	char buf[4];
	int skipped;
};

static void reuse_and_read(struct evq_loop *loop, struct evq_defer *d)
{
	struct stale_ctx *c = (struct stale_ctx *)(void *)d;

	c->keep = dup(c->x);
	close(c->x);
	if (pipe2(c->b, O_NONBLOCK | O_CLOEXEC) != 0 || c->b[0] != c->x) {
		c->skipped = 1;
		return;
	}
	if (c->a_readable && write(c->a1, "A", 1) != 1)
		T_FAILF("write A: %s", strerror(errno));
	t_op_init(&c->r);
	evq_prep_read(&c->r.op, c->x, c->buf, sizeof(c->buf),
		      EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &c->r, 0));
}

static int a_read_on_a_number_whose_old_file_lives_on_reads_the_new_one(void)
{
	for (int step = 0; step < 2; step++) {
		struct evq_loop *loop = t_loop_new();
		struct stale_ctx c = { 0 };
		struct t_op first = { 0 };
		char ch;
		int a[2];

		T_STEP("the old file %s", step ? "readable" : "quiet");
		ASSERT_NOTNULL(loop);
		ASSERT_OK(t_pipe(a));
		c.x = a[0];
		c.a1 = a[1];
		c.a_readable = step == 1;
		c.b[0] = c.b[1] = c.keep = -1;
		t_op_init(&first);
		evq_prep_read(&first.op, a[0], &ch, 1, EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &first, 0));
		ASSERT_OK(t_run_nowait(loop, 2));
		ASSERT_EQ(write(a[1], "a", 1), 1);
		ASSERT_OK(t_op_wait(loop, &first, 2000));
		ASSERT_EQ(first.res, 1);

		ASSERT_OK(evq_defer_start(loop, &c.d, reuse_and_read));
		ASSERT_OK(t_run_nowait(loop, 1));
		if (c.skipped) {
			t_close(c.keep);
			t_close(a[1]);
			t_close2(c.b);
			ASSERT_OK(evq_loop_free(loop));
			return t_skip("pipe B did not get number %d", c.x);
		}
		ASSERT_EQ(c.r.submits, 1);
		ASSERT_OK(t_run_nowait(loop, 3));
		EXPECT_EQ(c.r.ncalls, 0);	/* B is empty */

		ASSERT_EQ(write(c.b[1], "B", 1), 1);
		ASSERT_OK(t_op_wait(loop, &c.r, 2000));
		EXPECT_EQ(c.r.res, 1);
		EXPECT_EQ(c.buf[0], 'B');
		EXPECT_EQ(t_drain(c.keep), step == 1 ? 1 : 0);
		ASSERT_EQ(evq_loop_ops(loop), 0);
		t_close(c.keep);
		t_close(a[1]);
		t_close2(c.b);
		ASSERT_OK(evq_loop_free(loop));
	}
	return T_PASS;
}


/* ------------------------------------------------------------------------
 * What a lone write's callback does; a timer in the same iteration
 * ------------------------------------------------------------------------ */

struct wcb_ctx {
	struct t_op w, r, cancel, close;
	int wfd;
};

/* The write's callback cancels a read waiting on another pipe and closes
 * the fd it wrote to, with ops. */
static void cancel_and_close(struct evq_loop *loop, struct t_op *o, int res,
			     unsigned flags)
{
	struct wcb_ctx *c = o->arg;

	(void)res;
	(void)flags;
	t_op_init(&c->cancel);
	evq_prep_cancel(&c->cancel.op, &c->r.op);
	EXPECT_OK(t_op_submit(loop, &c->cancel, 0));
	t_op_init(&c->close);
	evq_prep_close(&c->close.op, c->wfd);
	EXPECT_OK(t_op_submit(loop, &c->close, 0));
}

static int a_lone_write_callback_cancels_a_read_and_closes_its_fd(void)
{
	struct evq_loop *loop = t_loop_new();
	struct wcb_ctx c = { 0 };
	char ch;
	int p[2], q[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(t_pipe(q));
	c.wfd = p[1];
	t_op_init(&c.r);
	evq_prep_read(&c.r.op, q[0], &ch, 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &c.r, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(c.r.ncalls, 0);

	T_STEP("a lone write; its callback submits a cancel and a close");
	t_op_init(&c.w);
	c.w.hook = cancel_and_close;
	c.w.arg = &c;
	evq_prep_write(&c.w.op, p[1], "w", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &c.w, 0));
	ASSERT_OK(t_op_wait(loop, &c.w, 2000));
	EXPECT_EQ(c.w.res, 1);
	ASSERT_OK(t_op_wait(loop, &c.cancel, 2000));
	ASSERT_OK(t_op_wait(loop, &c.close, 2000));
	ASSERT_OK(t_op_wait(loop, &c.r, 2000));
	EXPECT_ERR(c.r.res, -ECANCELED);
	EXPECT_EQ(c.cancel.res, 0);
	EXPECT_EQ(c.close.res, 0);
	EXPECT_LT(c.r.seq, c.cancel.seq);
	EXPECT_LT(c.w.seq, c.r.seq);
	p[1] = -1;
	EXPECT_TRUE(fcntl(c.wfd, F_GETFD) < 0 && errno == EBADF);
	ASSERT_EQ(read(p[0], &ch, 1), 1);
	EXPECT_EQ(ch, 'w');
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	t_close2(p);
	t_close2(q);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int tm_seq;

static void note_timer(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
	tm_seq = ++t_op_seq;
}

/* A write that completes as it starts and a timer already due: evq.h
 * puts op results before timers in an iteration, and the lone write's
 * callback runs in the start step, before the wait. */
static int a_lone_write_and_a_due_timer_call_back_write_first(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_timer t = { 0 };
	struct t_op w = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	tm_seq = 0;
	ASSERT_OK(evq_timer_start(loop, &t, 1, 0, note_timer));
	t_sleep_ms(2);
	t_op_init(&w);
	evq_prep_write(&w.op, p[1], "w", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_op_wait(loop, &w, 2000));
	for (int i = 0; i < 10 && !tm_seq; i++)
		ASSERT_GE(t_run_once(loop, 100), 0);
	ASSERT_EQ(w.res, 1);
	ASSERT_GT(tm_seq, 0);
	if (t_backend_is("epoll") || t_backend_is("poll"))
		EXPECT_LT(w.seq, tm_seq);	/* the lone write's road */
	else
		t_note("write %s the timer", w.seq < tm_seq ? "before"
							    : "after");
	ASSERT_EQ(evq_loop_ops(loop), 0);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(ping_pong_of_plain_reads_and_lone_writes_keeps_every_byte),
	T_CASE(a_lone_write_callback_that_stops_the_loop_ends_the_run),
	T_CASE(a_write_with_a_flag_is_counted_as_its_flag_says),
	T_CASE(a_lone_write_that_waits_is_found_by_close_cancel_and_free),
	T_CASE(a_lone_write_callback_cancels_a_read_and_closes_its_fd),
	T_CASE(a_lone_write_and_a_due_timer_call_back_write_first),
	T_CASE(two_reads_submitted_in_one_callback_take_one_byte_each),
	T_CASE(reads_set_waiting_at_submit_see_eof),
	T_CASE(a_read_on_a_number_reused_by_a_file_in_the_callback_reads_it),
	T_CASE(plain_ops_on_a_pipe_that_lost_nowait_complete),
	T_CASE(recvs_that_find_the_pool_empty_in_one_batch_lose_no_byte),
	T_CASE(a_read_and_a_write_waiting_on_one_socket_both_complete),
	T_CASE(a_read_on_a_number_whose_old_file_lives_on_reads_the_new_one),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
