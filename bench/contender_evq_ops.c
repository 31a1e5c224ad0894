/* SPDX-License-Identifier: MIT */
/*
 * contender_evq_ops.c - evq through its completion API (struct evq_op),
 * one contender per backend: evq-uring-ops, evq-epoll-ops, evq-poll-ops,
 * evq-aio-ops.
 *
 * pingpong: an op slot is one struct evq_op; a read or write is
 * evq_prep_read/evq_prep_write + evq_op_submit. On uring each becomes an
 * SQE that goes to the kernel with the loop's next wait; epoll and poll
 * emulate it (try the syscall, wait for readiness on EAGAIN); aio is
 * whatever its backend does.
 *
 * echo: the server a program written for evq's completion API would be,
 * and the same design as raw-uring-ops (contender_raw_uring_ops.c), so the
 * two differ only by evq: one multishot accept op on the listening socket;
 * per connection one multishot recv op from a shared buffer pool
 * (evq_prep_recv_pool: provided buffers on uring) and a send op that sends
 * each pool buffer back, releasing it when the send completes. Sends on a
 * connection go one at a time, in order. The pool has 2 buffers of 512
 * bytes per connection (at least 64), and on uring the SQ is sized to the
 * number of connections (uring_entries, 256..4096) as a program serving
 * that many would; raw-uring-ops does the same.
 *
 * File ops (fileread-*, statstorm): evq_prep_read with an explicit offset
 * and evq_prep_statx(AT_FDCWD, path, 0, STATX_BASIC_STATS). uring runs
 * them natively (a buffered read that hits the page cache completes
 * inline; statx always goes to io_uring's kernel workers); epoll, poll and
 * aio try a read with RWF_NOWAIT first and hand it to the loop's thread
 * pool (4 threads) if it would block, and always hand statx to the pool.
 *
 * Like every contender, the backend is decided when the benchmark starts:
 * a backend this build or kernel lacks is reported with evq's error.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evq.h"

static enum evq_backend backend_of(const struct bench_contender *c)
{
	return *(const enum evq_backend *)c->priv;
}

static int eo_loop_open(const struct bench_contender *c, unsigned entries,
			struct evq_loop **loopp)
{
	struct evq_loop_options opts = {
		.backend = backend_of(c),
		.uring_entries = entries,
	};

	return evq_loop_new(loopp, &opts);
}

static int eo_loop_new(const struct bench_contender *c, void **loopp)
{
	return eo_loop_open(c, 0, (struct evq_loop **)loopp);
}

static int eo_probe(const struct bench_contender *c, char *why, size_t len)
{
	struct evq_loop *loop;
	int err = eo_loop_open(c, 0, &loop);

	(void)why;
	(void)len;
	if (err < 0)
		return err;
	evq_loop_free(loop);
	return 0;
}

static void eo_loop_free(void *loop)
{
	evq_loop_free(loop);
}

static int eo_run(void *loop, int once)
{
	int r = evq_loop_run(loop, once ? EVQ_RUN_ONCE : EVQ_RUN_DEFAULT);

	return r < 0 ? r : 0;
}

static void eo_break(void *loop)
{
	evq_loop_stop(loop);
}

/* ------------------------------------------------------------------------
 * Op slots (pingpong)
 * ------------------------------------------------------------------------ */

struct eo_op {
	struct evq_op op;	/* first: the callback gets &op */
	struct evq_loop *loop;
	bench_op_cb cb;
	void *arg;
	/* file ops */
	struct statx stx;
	struct bench_stat *st;
};

static void eo_op_cb(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned flags)
{
	struct eo_op *o = (struct eo_op *)op;

	(void)loop;
	(void)flags;
	o->cb(o->arg, res);
}

static int eo_op_new(void *loop, bench_op_cb cb, void *arg, void **opp)
{
	struct eo_op *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return -ENOMEM;
	o->loop = loop;
	o->cb = cb;
	o->arg = arg;
	*opp = o;
	return 0;
}

static int eo_op_read(void *op, int fd, void *buf, size_t len)
{
	struct eo_op *o = op;

	evq_prep_read(&o->op, fd, buf, len, EVQ_OFFSET_CURRENT);
	return evq_op_submit(o->loop, &o->op, 0, eo_op_cb);
}

static int eo_op_write(void *op, int fd, const void *buf, size_t len)
{
	struct eo_op *o = op;

	evq_prep_write(&o->op, fd, buf, len, EVQ_OFFSET_CURRENT);
	return evq_op_submit(o->loop, &o->op, 0, eo_op_cb);
}

static void eo_op_free(void *op)
{
	free(op);
}

/* ------------------------------------------------------------------------
 * File ops (fileread-*, statstorm): the same slots
 * ------------------------------------------------------------------------ */

static int eo_fop_read(void *op, int fd, void *buf, size_t len, uint64_t off)
{
	struct eo_op *o = op;

	evq_prep_read(&o->op, fd, buf, len, off);
	return evq_op_submit(o->loop, &o->op, 0, eo_op_cb);
}

static void eo_stat_cb(struct evq_loop *loop, struct evq_op *op, int res,
		       unsigned flags)
{
	struct eo_op *o = (struct eo_op *)op;

	(void)loop;
	(void)flags;
	if (res == 0) {
		o->st->ino = o->stx.stx_ino;
		o->st->size = o->stx.stx_size;
		o->st->mtime_sec = o->stx.stx_mtime.tv_sec;
		o->st->mtime_nsec = o->stx.stx_mtime.tv_nsec;
		o->st->mode = o->stx.stx_mode;
	}
	o->cb(o->arg, res);
}

static int eo_fop_stat(void *op, const char *path, struct bench_stat *st)
{
	struct eo_op *o = op;

	o->st = st;
	evq_prep_statx(&o->op, AT_FDCWD, path, 0, STATX_BASIC_STATS, &o->stx);
	return evq_op_submit(o->loop, &o->op, 0, eo_stat_cb);
}

/* ------------------------------------------------------------------------
 * The echo server
 * ------------------------------------------------------------------------ */

#define EO_QCAP 8	/* buffers received, not yet sent back, per conn */
#define EO_BUF 512

struct eo_srv;

struct eo_conn {
	struct eo_srv *s;
	int fd;
	struct evq_op recv, send;
	uint16_t q[EO_QCAP];	/* pool buffer ids, in arrival order */
	uint32_t qlen[EO_QCAP];
	unsigned qhead, qn;
	uint32_t off;		/* bytes of the head buffer already sent */
	bool recv_on, sending, eof, closed;
};

struct eo_srv {
	const struct bench_echo_cfg *cfg;
	struct evq_loop *loop;
	struct evq_pool *pool;
	struct evq_op acc;
	struct eo_conn *conns;
	unsigned nconn, accepted, closed;
	bool acc_on, failed, stopping;
};

static void eo_fail(struct eo_srv *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->failed) {
		va_start(ap, fmt);
		vsnprintf(s->cfg->err, s->cfg->errlen, fmt, ap);
		va_end(ap);
	}
	s->failed = true;
	evq_loop_stop(s->loop);
}

static void eo_recv_cb(struct evq_loop *loop, struct evq_op *op, int res,
		       unsigned flags);
static void eo_send_cb(struct evq_loop *loop, struct evq_op *op, int res,
		       unsigned flags);
static void eo_accept_cb(struct evq_loop *loop, struct evq_op *op, int res,
			 unsigned flags);

static void eo_recv_arm(struct eo_conn *c)
{
	int r;

	evq_prep_recv_pool(&c->recv, c->fd, c->s->pool, 0);
	c->recv.data = c;
	r = evq_op_submit(c->s->loop, &c->recv, EVQ_OP_MULTISHOT, eo_recv_cb);
	if (r < 0)
		eo_fail(c->s, "evq_op_submit(recv_pool): %s", strerror(-r));
	else
		c->recv_on = true;
}

static void eo_close(struct eo_conn *c)
{
	struct eo_srv *s = c->s;

	close(c->fd);
	c->closed = true;
	if (++s->closed == s->nconn)
		evq_loop_stop(s->loop);
}

static void eo_send_next(struct eo_conn *c)
{
	struct eo_srv *s = c->s;
	unsigned bid = c->q[c->qhead];
	char *buf = evq_pool_buf(s->pool, bid);
	int r;

	evq_prep_send(&c->send, c->fd, buf + c->off, c->qlen[c->qhead] - c->off,
		      MSG_NOSIGNAL);
	c->send.data = c;
	r = evq_op_submit(s->loop, &c->send, 0, eo_send_cb);
	if (r < 0)
		eo_fail(s, "evq_op_submit(send): %s", strerror(-r));
	else
		c->sending = true;
}

static void eo_recv_cb(struct evq_loop *loop, struct evq_op *op, int res,
		       unsigned flags)
{
	struct eo_conn *c = op->data;
	struct eo_srv *s = c->s;
	bool more = flags & EVQ_OP_F_MORE;

	(void)loop;
	if (!more)
		c->recv_on = false;
	if (res > 0) {
		unsigned slot;

		if (!(flags & EVQ_OP_F_BUFFER)) {
			eo_fail(s, "recv_pool: a result without a buffer");
			return;
		}
		if (c->qn == EO_QCAP) {
			eo_fail(s, "more than %d buffers queued on a "
				   "connection (the client pipelines?)",
				EO_QCAP);
			return;
		}
		slot = (c->qhead + c->qn++) % EO_QCAP;
		c->q[slot] = (uint16_t)EVQ_OP_F_BUFID(flags);
		c->qlen[slot] = (uint32_t)res;
		if (!c->sending)
			eo_send_next(c);
		if (!more && !s->stopping)
			eo_recv_arm(c);
		return;
	}
	if (res == -ECANCELED && s->stopping)
		return;
	if (res == -ENOBUFS) {
		/* The pool ran dry; sizing makes this rare. Buffers come
		 * back as sends complete: ask again. */
		if (!more && !s->stopping)
			eo_recv_arm(c);
		return;
	}
	if (res == 0 || res == -ECONNRESET) {
		if (more)
			return;
		c->eof = true;
		if (!c->sending)
			eo_close(c);
		return;
	}
	eo_fail(s, "recv: %s", strerror(-res));
}

static void eo_send_cb(struct evq_loop *loop, struct evq_op *op, int res,
		       unsigned flags)
{
	struct eo_conn *c = op->data;
	struct eo_srv *s = c->s;

	(void)loop;
	(void)flags;
	c->sending = false;
	if (res < 0) {
		if (s->stopping)
			return;
		eo_fail(s, "send: %s", strerror(-res));
		return;
	}
	c->off += (uint32_t)res;
	if (c->off < c->qlen[c->qhead]) {
		eo_send_next(c);	/* a short send: the rest */
		return;
	}
	evq_pool_release(s->pool, c->q[c->qhead]);
	c->qhead = (c->qhead + 1) % EO_QCAP;
	c->qn--;
	c->off = 0;
	if (c->qn > 0)
		eo_send_next(c);
	else if (c->eof && !c->recv_on && !c->closed)
		eo_close(c);
}

static void eo_accept_arm(struct eo_srv *s)
{
	int r;

	evq_prep_accept(&s->acc, s->cfg->listen_fd, NULL, NULL,
			SOCK_NONBLOCK | SOCK_CLOEXEC);
	s->acc.data = s;
	r = evq_op_submit(s->loop, &s->acc, EVQ_OP_MULTISHOT, eo_accept_cb);
	if (r < 0)
		eo_fail(s, "evq_op_submit(accept): %s", strerror(-r));
	else
		s->acc_on = true;
}

static void eo_accept_cb(struct evq_loop *loop, struct evq_op *op, int res,
			 unsigned flags)
{
	struct eo_srv *s = op->data;

	(void)loop;
	if (!(flags & EVQ_OP_F_MORE))
		s->acc_on = false;
	if (s->stopping) {
		if (res >= 0)
			close(res);
		return;
	}
	if (res >= 0) {
		struct eo_conn *c;

		if (s->accepted == s->nconn) {
			close(res);
			eo_fail(s, "more connections than the %u expected",
				s->nconn);
			return;
		}
		c = &s->conns[s->accepted++];
		c->s = s;
		c->fd = res;
		eo_recv_arm(c);
	} else if (res != -ECONNABORTED && res != -EINTR && res != -EAGAIN) {
		eo_fail(s, "accept: %s after %u of %u connections",
			strerror(-res), s->accepted, s->nconn);
		return;
	}
	if (!s->acc_on && s->accepted < s->nconn)
		eo_accept_arm(s);
}

static unsigned pow2_at_least(unsigned v, unsigned lo, unsigned hi)
{
	unsigned p = lo;

	while (p < v && p < hi)
		p <<= 1;
	return p;
}

static int eo_echo_serve(const struct bench_contender *c,
			 const struct bench_echo_cfg *cfg)
{
	struct eo_srv s = { .cfg = cfg, .nconn = cfg->nconn };
	unsigned entries = pow2_at_least(cfg->nconn, 256, 4096);
	int r;

	s.conns = calloc(cfg->nconn, sizeof(*s.conns));
	if (s.conns == NULL) {
		snprintf(cfg->err, cfg->errlen, "out of memory");
		return -1;
	}
	r = eo_loop_open(c, entries, &s.loop);
	if (r < 0) {
		snprintf(cfg->err, cfg->errlen, "evq_loop_new: %s",
			 strerror(-r));
		free(s.conns);
		return -1;
	}
	r = evq_pool_new(s.loop, &s.pool,
			 pow2_at_least(2 * cfg->nconn, 64, 32768), EO_BUF);
	if (r < 0) {
		snprintf(cfg->err, cfg->errlen, "evq_pool_new: %s",
			 strerror(-r));
		evq_loop_free(s.loop);
		free(s.conns);
		return -1;
	}
	eo_accept_arm(&s);
	if (!s.failed) {
		r = evq_loop_run(s.loop, EVQ_RUN_DEFAULT);
		if (r < 0)
			eo_fail(&s, "evq_loop_run: %s", strerror(-r));
		else if (s.closed != s.nconn)
			eo_fail(&s, "the loop ended with %u of %u connections "
				    "closed", s.closed, s.nconn);
	}
	s.stopping = true;
	/* Every recv has ended once all connections are closed; on a
	 * failure some may not have, and the pool is left to the exit. */
	if (evq_pool_free(s.pool) == 0)
		s.pool = NULL;
	evq_loop_free(s.loop);	/* cancels the accept op */
	for (unsigned i = 0; i < s.accepted; i++)
		if (!s.conns[i].closed)
			close(s.conns[i].fd);
	free(s.conns);
	return s.failed ? -1 : 0;
}

#define EVQ_OPS_CONTENDER(sym, be, label)                                    \
	static const enum evq_backend sym##_backend = be;                   \
	const struct bench_contender sym = {                                 \
		.name = "evq-" label "-ops",                                 \
		.backend = label,                                            \
		.priv = &sym##_backend,                                      \
		.probe = eo_probe,                                           \
		.loop_new = eo_loop_new,                                     \
		.loop_free = eo_loop_free,                                   \
		.run = eo_run,                                               \
		.break_loop = eo_break,                                      \
		.op_new = eo_op_new,                                         \
		.op_read = eo_op_read,                                       \
		.op_write = eo_op_write,                                     \
		.op_free = eo_op_free,                                       \
		.echo_serve = eo_echo_serve,                                 \
		.fop_new = eo_op_new,                                        \
		.fop_read = eo_fop_read,                                     \
		.fop_stat = eo_fop_stat,                                     \
		.fop_free = eo_op_free,                                      \
	}

EVQ_OPS_CONTENDER(bench_evq_epoll_ops, EVQ_BACKEND_EPOLL, "epoll");
EVQ_OPS_CONTENDER(bench_evq_poll_ops, EVQ_BACKEND_POLL, "poll");
EVQ_OPS_CONTENDER(bench_evq_uring_ops, EVQ_BACKEND_URING, "uring");
EVQ_OPS_CONTENDER(bench_evq_aio_ops, EVQ_BACKEND_AIO, "aio");
