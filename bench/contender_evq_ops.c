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
#include <stdatomic.h>
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

/* ------------------------------------------------------------------------
 * The idle-connections server (workload_idle.c)
 *
 * Per connection: the connection's own struct from malloc, holding its fd
 * and one struct evq_op, a multishot recv from the shared pool
 * (evq_prep_recv_pool): no buffer is tied to a connection until data
 * comes. Replies go out through a few shared send ops (the trickle has one
 * message in flight per client process), each releasing its pool buffer
 * when it completes. What evq keeps per connection besides the op is
 * whatever its backend needs for an armed recv (on epoll and poll, an
 * internal watcher; on uring, nothing in user space but the op).
 * ------------------------------------------------------------------------ */

#define EI_SENDS 64

struct ei_srv;

struct ei_conn {
	struct evq_op recv;	/* first */
	struct ei_srv *s;
	int fd;
};

struct ei_send {
	struct evq_op op;	/* first */
	struct ei_srv *s;
	unsigned bid;
	bool busy;
};

struct ei_srv {
	struct bench_idle_cfg *cfg;
	struct evq_loop *loop;
	struct evq_pool *pool;
	struct evq_op acc;
	struct ei_conn **conns;	/* the bench's table, touched before ready */
	struct ei_send sends[EI_SENDS];
	unsigned accepted, ended;
	bool acc_on, failed, stopping;
};

static void ei_fail(struct ei_srv *s, const char *fmt, ...)
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

static void ei_recv_cb(struct evq_loop *loop, struct evq_op *op, int res,
		       unsigned flags);

static int ei_recv_arm(struct ei_conn *c)
{
	int r;

	evq_prep_recv_pool(&c->recv, c->fd, c->s->pool, 0);
	c->recv.data = c;
	r = evq_op_submit(c->s->loop, &c->recv, EVQ_OP_MULTISHOT, ei_recv_cb);
	if (r < 0)
		ei_fail(c->s, "evq_op_submit(recv_pool): %s", strerror(-r));
	return r;
}

static void ei_send_cb(struct evq_loop *loop, struct evq_op *op, int res,
		       unsigned flags)
{
	struct ei_send *sd = (struct ei_send *)op;
	struct ei_srv *s = sd->s;

	(void)loop;
	(void)flags;
	evq_pool_release(s->pool, sd->bid);
	sd->busy = false;
	if (res < 0 && !s->stopping)
		ei_fail(s, "send: %s", strerror(-res));
}

static void ei_recv_cb(struct evq_loop *loop, struct evq_op *op, int res,
		       unsigned flags)
{
	struct ei_conn *c = (struct ei_conn *)op;
	struct ei_srv *s = c->s;
	bool more = flags & EVQ_OP_F_MORE;

	(void)loop;
	if (res > 0) {
		struct ei_send *sd = NULL;
		unsigned bid = EVQ_OP_F_BUFID(flags);
		int r;

		for (unsigned i = 0; i < EI_SENDS && sd == NULL; i++)
			if (!s->sends[i].busy)
				sd = &s->sends[i];
		if (sd == NULL) {
			ei_fail(s, "more than %d replies in flight", EI_SENDS);
			return;
		}
		/* counted before the reply goes: the client may see it
		 * before its send's completion is reaped */
		atomic_fetch_add_explicit(&s->cfg->msgs, 1,
					  memory_order_release);
		sd->busy = true;
		sd->bid = bid;
		sd->s = s;
		evq_prep_send(&sd->op, c->fd, evq_pool_buf(s->pool, bid),
			      (size_t)res, MSG_NOSIGNAL);
		r = evq_op_submit(s->loop, &sd->op, 0, ei_send_cb);
		if (r < 0) {
			ei_fail(s, "evq_op_submit(send): %s", strerror(-r));
			return;
		}
		if (!more && !s->stopping)
			ei_recv_arm(c);
		return;
	}
	if (res == -ECANCELED && s->stopping)
		return;
	if (res == -ENOBUFS) {
		if (!more && !s->stopping)
			ei_recv_arm(c);
		return;
	}
	if (res == 0 || res == -ECONNRESET) {
		if (more)
			return;
		close(c->fd);
		c->fd = -1;
		if (++s->ended == s->cfg->nconn)
			evq_loop_stop(s->loop);
		return;
	}
	ei_fail(s, "recv: %s", strerror(-res));
}

static void ei_accept_cb(struct evq_loop *loop, struct evq_op *op, int res,
			 unsigned flags);

static void ei_accept_arm(struct ei_srv *s)
{
	int r;

	evq_prep_accept(&s->acc, s->cfg->listen_fd, NULL, NULL,
			SOCK_NONBLOCK | SOCK_CLOEXEC);
	s->acc.data = s;
	r = evq_op_submit(s->loop, &s->acc, EVQ_OP_MULTISHOT, ei_accept_cb);
	if (r < 0)
		ei_fail(s, "evq_op_submit(accept): %s", strerror(-r));
	else
		s->acc_on = true;
}

static void ei_accept_cb(struct evq_loop *loop, struct evq_op *op, int res,
			 unsigned flags)
{
	struct ei_srv *s = op->data;

	(void)loop;
	if (!(flags & EVQ_OP_F_MORE))
		s->acc_on = false;
	if (s->stopping) {
		if (res >= 0)
			close(res);
		return;
	}
	if (res >= 0) {
		struct ei_conn *c;

		if (s->accepted == s->cfg->nconn) {
			close(res);
			ei_fail(s, "more connections than expected");
			return;
		}
		c = calloc(1, sizeof(*c));	/* an op starts zeroed */
		if (c == NULL) {
			close(res);
			ei_fail(s, "out of memory");
			return;
		}
		c->s = s;
		c->fd = res;
		s->conns[s->accepted++] = c;
		if (ei_recv_arm(c) < 0)
			return;
		atomic_fetch_add_explicit(&s->cfg->armed, 1,
					  memory_order_release);
	} else if (res != -ECONNABORTED && res != -EINTR && res != -EAGAIN) {
		ei_fail(s, "accept: %s after %u connections", strerror(-res),
			s->accepted);
		return;
	}
	if (!s->acc_on && s->accepted < s->cfg->nconn)
		ei_accept_arm(s);
}

static int eo_idle_serve(const struct bench_contender *c,
			 struct bench_idle_cfg *cfg)
{
	struct ei_srv *s = calloc(1, sizeof(*s));
	int r;

	if (s == NULL) {
		snprintf(cfg->err, cfg->errlen, "out of memory");
		return -1;
	}
	s->cfg = cfg;
	s->conns = calloc(cfg->nconn, sizeof(*s->conns));
	if (s->conns == NULL) {
		snprintf(cfg->err, cfg->errlen, "out of memory");
		free(s);
		return -1;
	}
	memset(s->conns, 0, cfg->nconn * sizeof(*s->conns));	/* touch */
	r = eo_loop_open(c, 0, &s->loop);
	if (r < 0) {
		snprintf(cfg->err, cfg->errlen, "evq_loop_new: %s",
			 strerror(-r));
		goto out_conns;
	}
	r = evq_pool_new(s->loop, &s->pool, cfg->pool_bufs, cfg->buf_size);
	if (r < 0) {
		snprintf(cfg->err, cfg->errlen, "evq_pool_new: %s",
			 strerror(-r));
		evq_loop_free(s->loop);
		goto out_conns;
	}
	/* The pool is shared, not per connection: touched now, it is in
	 * the baseline. */
	for (unsigned i = 0; i < cfg->pool_bufs; i++)
		memset(evq_pool_buf(s->pool, i), 0, cfg->buf_size);
	ei_accept_arm(s);
	if (!s->failed) {
		atomic_store_explicit(&cfg->ready, 1, memory_order_release);
		r = evq_loop_run(s->loop, EVQ_RUN_DEFAULT);
		if (r < 0)
			ei_fail(s, "evq_loop_run: %s", strerror(-r));
		else if (!s->failed && s->ended != cfg->nconn)
			ei_fail(s, "the loop ended with %u of %u connections "
				   "ended", s->ended, cfg->nconn);
	}
	s->stopping = true;
	evq_loop_free(s->loop);	/* cancels what is still in flight */
	evq_pool_free(s->pool);	/* after its loop: nothing uses it now */
	for (unsigned i = 0; i < s->accepted; i++) {
		if (s->conns[i]->fd >= 0)
			close(s->conns[i]->fd);
		free(s->conns[i]);
	}
	r = s->failed ? -1 : 0;
	free(s->conns);
	free(s);
	return r;
out_conns:
	free(s->conns);
	free(s);
	return -1;
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
		.idle_serve = eo_idle_serve,                                 \
		.fop_new = eo_op_new,                                        \
		.fop_read = eo_fop_read,                                     \
		.fop_stat = eo_fop_stat,                                     \
		.fop_free = eo_op_free,                                      \
	}

EVQ_OPS_CONTENDER(bench_evq_epoll_ops, EVQ_BACKEND_EPOLL, "epoll");
EVQ_OPS_CONTENDER(bench_evq_poll_ops, EVQ_BACKEND_POLL, "poll");
EVQ_OPS_CONTENDER(bench_evq_uring_ops, EVQ_BACKEND_URING, "uring");
EVQ_OPS_CONTENDER(bench_evq_aio_ops, EVQ_BACKEND_AIO, "aio");
