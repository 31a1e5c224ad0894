/* SPDX-License-Identifier: MIT */
/*
 * test_ops_stress.c - the completion API under load: 16 MiB through a
 * socket pair and through a pipe with op loops that handle short reads
 * and writes; 10,000 nops in flight; a loop freed with 10,000 ops in
 * flight (every callback runs exactly once before evq_loop_free()
 * returns, nothing leaks, and ops submitted from those callbacks get
 * -ESHUTDOWN).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"
#include "ops_helpers.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * 16 MiB transfers
 * ------------------------------------------------------------------------ */

#define XFER (16u << 20)
#define CHUNK (256u << 10)

struct xfer {
	struct t_op w, r;
	unsigned char *src, *dst;
	size_t woff, roff;
	int wfd, rfd;
	bool sock;		/* send/recv, else write/read */
	int short_w, short_r;	/* transfers shorter than asked */
	int nw, nr;
};

static void xfer_write_next(struct evq_loop *loop, struct xfer *x)
{
	size_t len = XFER - x->woff < CHUNK ? XFER - x->woff : CHUNK;

	if (x->sock)
		evq_prep_send(&x->w.op, x->wfd, x->src + x->woff, len, 0);
	else
		evq_prep_write(&x->w.op, x->wfd, x->src + x->woff, len,
			       EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &x->w, 0));
	x->nw++;
}

static void xfer_read_next(struct evq_loop *loop, struct xfer *x)
{
	/* An odd length, so reads and writes never line up. */
	size_t len = XFER - x->roff < CHUNK - 1001 ? XFER - x->roff
						   : CHUNK - 1001;

	if (x->sock)
		evq_prep_recv(&x->r.op, x->rfd, x->dst + x->roff, len, 0);
	else
		evq_prep_read(&x->r.op, x->rfd, x->dst + x->roff, len,
			      EVQ_OFFSET_CURRENT);
	EXPECT_OK(t_op_submit(loop, &x->r, 0));
	x->nr++;
}

static void xfer_w_hook(struct evq_loop *loop, struct t_op *o, int res,
			unsigned flags)
{
	struct xfer *x = o->arg;
	size_t asked = XFER - x->woff < CHUNK ? XFER - x->woff : CHUNK;

	(void)flags;
	if (res <= 0) {
		T_FAILF("write %d at %zu: %d", x->nw, x->woff, res);
		return;
	}
	if ((size_t)res > asked) {
		T_FAILF("wrote %d of %zu", res, asked);
		return;
	}
	if ((size_t)res < asked)
		x->short_w++;
	x->woff += (size_t)res;
	if (x->woff < XFER)
		xfer_write_next(loop, x);
}

static void xfer_r_hook(struct evq_loop *loop, struct t_op *o, int res,
			unsigned flags)
{
	struct xfer *x = o->arg;

	(void)flags;
	if (res <= 0) {
		T_FAILF("read %d at %zu: %d", x->nr, x->roff, res);
		return;
	}
	if (x->roff + (size_t)res > x->woff) {
		T_FAILF("read past what was written: %zu > %zu",
			x->roff + (size_t)res, x->woff);
		return;
	}
	if ((size_t)res < CHUNK - 1001 && x->roff + (size_t)res < XFER)
		x->short_r++;
	x->roff += (size_t)res;
	if (x->roff < XFER)
		xfer_read_next(loop, x);
}

static int transfer(bool sock, bool nonblock)
{
	struct evq_loop *loop = t_loop_new();
	static struct xfer x;
	int fds[2], done = 0;

	ASSERT_NOTNULL(loop);
	t_rand_seed();
	memset(&x, 0, sizeof(x));
	x.sock = sock;
	x.src = malloc(XFER);
	x.dst = calloc(1, XFER);
	ASSERT_NOTNULL(x.src);
	ASSERT_NOTNULL(x.dst);
	t_rand_fill(x.src, XFER);
	if (sock)
		ASSERT_OK(t_sockpair_mode(fds, nonblock));
	else
		ASSERT_OK(t_pipe_mode(fds, nonblock));
	x.wfd = fds[1];
	x.rfd = fds[0];
	t_op_init(&x.w);
	x.w.hook = xfer_w_hook;
	x.w.arg = &x;
	t_op_init(&x.r);
	x.r.hook = xfer_r_hook;
	x.r.arg = &x;
	xfer_read_next(loop, &x);
	xfer_write_next(loop, &x);

	T_STEP("run until every byte arrived");
	{
		struct t_guard g;

		ASSERT_OK(t_guard_start(loop, &g, 8000, "transfer stalled"));
		while (x.roff < XFER && !g.fired && !t_failed)
			ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
		t_guard_stop(&g);
		ASSERT_EQ(g.fired, 0);
	}
	ASSERT_EQ(x.woff, XFER);
	ASSERT_EQ(x.roff, XFER);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	done = memcmp(x.src, x.dst, XFER) == 0;
	if (!done) {
		size_t i = 0;

		while (x.src[i] == x.dst[i])
			i++;
		T_FAILF("first difference at byte %zu", i);
	}
	t_note("%d writes (%d short), %d reads (%d short)", x.nw, x.short_w,
	       x.nr, x.short_r);
	T_STEP("EOF after the writer closes");
	close(x.wfd);
	x.r.hook = NULL;
	t_op_init(&x.r);
	if (sock)
		evq_prep_recv(&x.r.op, x.rfd, x.dst, 16, 0);
	else
		evq_prep_read(&x.r.op, x.rfd, x.dst, 16, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &x.r, 0));
	ASSERT_OK(t_op_wait(loop, &x.r, 2000));
	ASSERT_EQ(x.r.res, 0);
	close(x.rfd);
	free(x.src);
	free(x.dst);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int transfer_16m_socketpair(void)
{
	return transfer(true, true);
}

static int transfer_16m_socketpair_blocking(void)
{
	return transfer(true, false);
}

static int transfer_16m_pipe(void)
{
	return transfer(false, true);
}

static int transfer_16m_pipe_blocking(void)
{
	return transfer(false, false);
}

/* ------------------------------------------------------------------------
 * 10,000 nops in flight
 * ------------------------------------------------------------------------ */

#define NOPS 10000

static int total_calls;

static void count_hook(struct evq_loop *loop, struct t_op *o, int res,
		       unsigned flags)
{
	(void)loop;
	(void)o;
	(void)res;
	(void)flags;
	total_calls++;
}

static int nops_10000(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op *ops = calloc(NOPS, sizeof(*ops));

	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(ops);
	total_calls = 0;
	for (int i = 0; i < NOPS; i++) {
		ops[i].hook = count_hook;
		t_op_init(&ops[i]);
		evq_prep_nop(&ops[i].op);
		ASSERT_OK(t_op_submit(loop, &ops[i], 0));
	}
	ASSERT_EQ(evq_loop_ops(loop), NOPS);
	ASSERT_EQ(evq_loop_active(loop), NOPS);
	ASSERT_EQ(total_calls, 0);
	ASSERT_OK(t_run_until(loop, &total_calls, NOPS, 5000,
			      "not every nop completed"));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(total_calls, NOPS);
	for (int i = 0; i < NOPS; i++) {
		T_STEP("nop %d", i);
		ASSERT_EQ(ops[i].ncalls, 1);
		ASSERT_ERR(ops[i].res, 0);
		ASSERT_EQ(evq_op_is_active(&ops[i].op), 0);
	}
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	free(ops);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * evq_loop_free with 10,000 ops in flight
 * ------------------------------------------------------------------------ */

enum kind { K_RECV, K_PIPE, K_TMO, K_OPEN, K_NKIND };
static const char *const kind_name[] = { "recv", "pipe read", "timeout",
					 "openat" };

#define NFREE 10000
#define NSP 50		/* socket pairs for the recvs */
#define NPIPE 10

struct fop {
	struct t_op t;
	enum kind kind;
};

static bool in_free;
static int calls_in_free, calls_before_free, shutdown_ok, opened_fds;
static struct evq_op extra;

static void extra_cb(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned flags)
{
	(void)loop;
	(void)op;
	(void)res;
	(void)flags;
	T_FAILF("an op refused with -ESHUTDOWN got a callback");
}

static void free_hook(struct evq_loop *loop, struct t_op *o, int res,
		      unsigned flags)
{
	struct fop *f = (struct fop *)o;

	(void)flags;
	if (in_free)
		calls_in_free++;
	else
		calls_before_free++;
	if (f->kind == K_OPEN && res >= 0) {
		/* A pool thread ran it: its own result, an fd to close. */
		opened_fds++;
		close(res);
	} else if (res != -ECANCELED) {
		T_FAILF("%s op: res %d, not -ECANCELED", kind_name[f->kind],
			res);
	}
	if (in_free) {
		/* Nothing may be submitted while the loop is being freed:
		 * neither a new op nor this one again. */
		memset(&extra, 0, sizeof(extra));
		evq_prep_nop(&extra);
		if (evq_op_submit(loop, &extra, 0, extra_cb) == -ESHUTDOWN &&
		    evq_op_submit(loop, &o->op, 0, t_op_cb) == -ESHUTDOWN)
			shutdown_ok++;
		else
			T_FAILF("submit while the loop is freed: not "
				"-ESHUTDOWN");
	}
}

static int free_with_10000_in_flight(void)
{
	int fds_before = t_count_fds();	/* before the loop's own fds */
	struct evq_loop *loop = t_loop_new();
	struct fop *ops = calloc(NFREE, sizeof(*ops));
	int sp[NSP][2], pp[NPIPE][2], counts[K_NKIND] = { 0 };
	char dir[256], path[300];
	static char rbuf[NFREE][2];

	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(ops);
	ASSERT_GE(t_raise_nofile(1024), 256);
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(path, sizeof(path), "%s/f", dir);
	ASSERT_OK(t_write_file(path, "x", 1));
	for (int i = 0; i < NSP; i++)
		ASSERT_OK(t_socketpair(sp[i]));
	for (int i = 0; i < NPIPE; i++)
		ASSERT_OK(t_pipe(pp[i]));
	in_free = false;
	calls_in_free = calls_before_free = shutdown_ok = opened_fds = 0;

	T_STEP("submit 10,000 ops; iterate once after the first half");
	for (int i = 0; i < NFREE; i++) {
		struct fop *f = &ops[i];

		f->t.hook = free_hook;
		t_op_init(&f->t);
		f->kind = (enum kind)(i % K_NKIND);
		switch (f->kind) {
		case K_RECV:
			evq_prep_recv(&f->t.op, sp[i % NSP][0], rbuf[i], 2, 0);
			break;
		case K_PIPE:
			evq_prep_read(&f->t.op, pp[i % NPIPE][0], rbuf[i], 2,
				      EVQ_OFFSET_CURRENT);
			break;
		case K_TMO:
			evq_prep_timeout(&f->t.op, 60000 * T_MS);
			break;
		default:
			evq_prep_openat(&f->t.op, AT_FDCWD, path,
					O_RDONLY | O_CLOEXEC, 0);
			break;
		}
		ASSERT_OK(t_op_submit(loop, &f->t, 0));
		counts[f->kind]++;
		if (i == NFREE / 2) {
			/* started: waiting for readiness, timers, and pool
			 * jobs queued or running; the rest never starts */
			ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		}
	}
	ASSERT_EQ(evq_loop_ops(loop), NFREE - calls_before_free);

	T_STEP("free the loop");
	in_free = true;
	ASSERT_OK(evq_loop_free(loop));
	in_free = false;
	t_note("%d calls before the free, %d during it; %d opens ran",
	       calls_before_free, calls_in_free, opened_fds);
	T_STEP("every op completed exactly once");
	for (int i = 0; i < NFREE; i++) {
		T_STEP("op %d (%s)", i, kind_name[ops[i].kind]);
		ASSERT_EQ(ops[i].t.ncalls, 1);
		ASSERT_EQ(ops[i].t.nmore, 0);
		ASSERT_EQ(evq_op_is_active(&ops[i].t.op), 0);
		if (ops[i].kind != K_OPEN)
			ASSERT_ERR(ops[i].t.res, -ECANCELED);
	}
	ASSERT_EQ(calls_before_free + calls_in_free, NFREE);
	/* Only pool jobs can have finished in that one NOWAIT iteration. */
	ASSERT_LE(calls_before_free, counts[K_OPEN]);
	ASSERT_EQ(shutdown_ok, calls_in_free);
	for (int i = 0; i < NSP; i++)
		t_close2(sp[i]);
	for (int i = 0; i < NPIPE; i++)
		t_close2(pp[i]);
	/* Every fd an openat produced was delivered (and closed). */
	ASSERT_EQ(t_count_fds(), fds_before);
	unlink(path);
	rmdir(dir);
	free(ops);
	return T_PASS;
}

/* A chain whose head is a pool job at free time: the rest completes once
 * (-ECANCELED, or its own result if the head's success let it start), no
 * thread or job outlives the loop. Many rounds, since whether the head is
 * queued, running or done at the free is up to the pool's threads. */
static int free_with_chain_behind_pool_job(void)
{
	char dir[256], path[300];
	int fd;

	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ASSERT_GE(fd, 0);
	for (int round = 0; round < 50; round++) {
		struct evq_loop *loop = t_loop_new();
		struct t_op a = { 0 }, b = { 0 }, c = { 0 };
		struct statx stx;

		T_STEP("round %d", round);
		ASSERT_NOTNULL(loop);
		t_op_init(&a);
		evq_prep_fsync(&a.op, fd, 0);
		ASSERT_OK(t_op_submit(loop, &a, EVQ_OP_LINK));
		t_op_init(&b);
		evq_prep_statx(&b.op, AT_FDCWD, path, 0, STATX_SIZE, &stx);
		ASSERT_OK(t_op_submit(loop, &b, EVQ_OP_LINK));
		t_op_init(&c);
		evq_prep_nop(&c.op);
		ASSERT_OK(t_op_submit(loop, &c, 0));
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		ASSERT_OK(evq_loop_free(loop));
		ASSERT_EQ(a.ncalls, 1);
		ASSERT_EQ(b.ncalls, 1);
		ASSERT_EQ(c.ncalls, 1);
		ASSERT_TRUE(a.res == 0 || a.res == -ECANCELED);
		ASSERT_TRUE(b.res == 0 || b.res == -ECANCELED);
		ASSERT_TRUE(c.res == 0 || c.res == -ECANCELED);
		/* a chain: a later op succeeded only if the earlier did */
		if (b.res == 0)
			ASSERT_ERR(a.res, 0);
		if (c.res == 0)
			ASSERT_ERR(b.res, 0);
		ASSERT_LT(a.seq, b.seq);
		ASSERT_LT(b.seq, c.seq);
	}
	close(fd);
	unlink(path);
	rmdir(dir);
	return T_PASS;
}

/* Chains at evq_loop_free: the rest of a chain completes with
 * -ECANCELED in order, after its head, whether the chain had started
 * (head waiting) or not (all queued). */
static int free_cancels_chains_in_order(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a[3], b[3];
	char buf[4];
	int sp[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sp));
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	T_STEP("a started chain: recv (waiting) -> nop -> timeout");
	for (int i = 0; i < 3; i++)
		t_op_init(&a[i]);
	evq_prep_recv(&a[0].op, sp[0], buf, sizeof(buf), 0);
	evq_prep_nop(&a[1].op);
	evq_prep_timeout(&a[2].op, 1);
	ASSERT_OK(t_op_submit(loop, &a[0], EVQ_OP_LINK));
	ASSERT_OK(t_op_submit(loop, &a[1], EVQ_OP_LINK));
	ASSERT_OK(t_op_submit(loop, &a[2], 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(a[0].ncalls + a[1].ncalls + a[2].ncalls, 0);
	T_STEP("a chain not started: recv -> nop -> timeout");
	for (int i = 0; i < 3; i++)
		t_op_init(&b[i]);
	evq_prep_recv(&b[0].op, sp[1], buf, sizeof(buf), 0);
	evq_prep_nop(&b[1].op);
	evq_prep_timeout(&b[2].op, 1);
	ASSERT_OK(t_op_submit(loop, &b[0], EVQ_OP_LINK));
	ASSERT_OK(t_op_submit(loop, &b[1], EVQ_OP_LINK));
	ASSERT_OK(t_op_submit(loop, &b[2], 0));
	ASSERT_OK(evq_loop_free(loop));
	for (int i = 0; i < 3; i++) {
		T_STEP("op %d of the started chain", i);
		ASSERT_EQ(a[i].ncalls, 1);
		ASSERT_ERR(a[i].res, -ECANCELED);
		if (i > 0)
			ASSERT_LT(a[i - 1].seq, a[i].seq);
		T_STEP("op %d of the chain not started", i);
		ASSERT_EQ(b[i].ncalls, 1);
		ASSERT_ERR(b[i].res, -ECANCELED);
		if (i > 0)
			ASSERT_LT(b[i - 1].seq, b[i].seq);
	}
	t_close2(sp);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(transfer_16m_socketpair),
	T_CASE(transfer_16m_socketpair_blocking),
	T_CASE(transfer_16m_pipe),
	T_CASE(transfer_16m_pipe_blocking),
	T_CASE(nops_10000),
	T_CASE(free_with_10000_in_flight),
	T_CASE(free_cancels_chains_in_order),
	T_CASE(free_with_chain_behind_pool_job),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
