/* SPDX-License-Identifier: MIT */
/*
 * contender_raw_uring_ops.c - a hand-written io_uring completion loop
 * (liburing 2.3): the ceiling for evq-uring-ops.
 *
 * It is io_uring used the way BACKGROUND.md lesson 1 says it pays: the
 * kernel does the I/O, and everything a batch of completions asks for goes
 * to the kernel in the one io_uring_enter() that also waits for the next
 * batch (io_uring_submit_and_wait). The ring is set up with the flags evq
 * tries first (SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL, falling back as
 * evq does) and its fd is registered. Nothing else: no close-safety, no
 * timers, no chains, no emulation, no checks a library owes its users;
 * the gap to evq-uring-ops is what those cost.
 *
 * pingpong: an op slot is a read or write SQE whose user_data is the slot;
 * a CQE calls the slot's callback.
 *
 * File ops (fileread-*, statstorm): the same slots, with a READ SQE at an
 * offset or a STATX SQE; io_uring completes a read that hits the page
 * cache inline and sends statx (and reads that would block, on buffered
 * files) to its kernel workers; O_DIRECT reads go to the device.
 *
 * echo: one multishot accept (5.19); per connection one multishot recv
 * (6.0) with buffer select from a provided-buffer ring (5.19) of 2 buffers
 * of 512 bytes per connection; each buffer received is sent back with a
 * send SQE and returned to the buffer ring when the send completes (the
 * ring's tail is advanced once per batch). Sends on a connection go one at
 * a time, in order. The SQ has as many entries as there are connections
 * (256..4096), like evq-uring-ops, and the CQ four times that: up to
 * three CQEs per connection (accept, recv, send) can be waiting at once,
 * as in the burst when all connections and their first requests arrive
 * before the server has run. CQEs are handled in place, so the CQ head
 * moves only after a whole batch; evq copies each CQE out as it reaps,
 * which a CQ of the default size does for it.
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>

#define PP_ENTRIES 256	/* evq's default uring_entries */

/* cq_entries 0: the kernel's default, twice the SQ. */
static int ring_init(struct io_uring *ring, unsigned entries,
		     unsigned cq_entries)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_SUBMIT_ALL,
		0,
	};
	int r = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = { .flags = tries[i] };

		if (cq_entries) {
			p.flags |= IORING_SETUP_CQSIZE;
			p.cq_entries = cq_entries;
		}
		r = io_uring_queue_init_params(entries, ring, &p);
		if (r == 0) {
			io_uring_register_ring_fd(ring);
			return 0;
		}
		if (r != -EINVAL)
			return r;
	}
	return r;
}

static int ru_probe(const struct bench_contender *c, char *why, size_t len)
{
	struct io_uring ring;
	int err = ring_init(&ring, 8, 0);

	(void)c;
	if (err < 0)
		return err;
	io_uring_queue_exit(&ring);
	if (len > 0 && why != NULL)
		why[0] = '\0';
	return 0;
}

/* An SQE, submitting what is queued first if the SQ is full. */
static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe;

	while ((sqe = io_uring_get_sqe(ring)) == NULL)
		if (io_uring_submit(ring) < 0)
			return NULL;
	return sqe;
}

/* ------------------------------------------------------------------------
 * Loop and op slots (pingpong)
 * ------------------------------------------------------------------------ */

struct ru_loop {
	struct io_uring ring;
	unsigned inflight;
	int stop;
};

struct ru_op {
	struct ru_loop *l;
	bench_op_cb cb;
	void *arg;
};

/* A file-op slot: its ru_op calls back the user directly for a read, and
 * through ru_stat_done (which fills the bench_stat) for a statx. */
struct ru_fop {
	struct ru_op op;	/* first */
	bench_op_cb ucb;
	void *uarg;
	struct bench_stat *st;
	struct statx stx;
};

static int ru_loop_new(const struct bench_contender *c, void **loopp)
{
	struct ru_loop *l = calloc(1, sizeof(*l));
	int err;

	(void)c;
	if (l == NULL)
		return -ENOMEM;
	err = ring_init(&l->ring, PP_ENTRIES, 0);
	if (err < 0) {
		free(l);
		return err;
	}
	*loopp = l;
	return 0;
}

/* Submit, wait for one CQE, and run the callbacks of all there are. */
static int ru_reap(struct ru_loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int r = io_uring_submit_and_wait(&l->ring, 1);

	if (r < 0 && r != -EINTR && r != -EBUSY && r != -ETIME)
		return r;
	io_uring_for_each_cqe(&l->ring, head, cqe) {
		struct ru_op *o = io_uring_cqe_get_data(cqe);

		n++;
		if (o != NULL) {
			l->inflight--;
			o->cb(o->arg, cqe->res);
		}
	}
	io_uring_cq_advance(&l->ring, n);
	return 0;
}

static void ru_loop_free(void *loop)
{
	struct ru_loop *l = loop;

	if (l->inflight > 0) {
		struct io_uring_sqe *sqe = get_sqe(&l->ring);

		if (sqe != NULL) {
			io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY |
							       IORING_ASYNC_CANCEL_ALL);
			io_uring_sqe_set_data(sqe, NULL);
		}
		while (l->inflight > 0 && ru_reap(l) == 0)
			;
	}
	io_uring_queue_exit(&l->ring);
	free(l);
}

static int ru_run(void *loop, int once)
{
	struct ru_loop *l = loop;

	l->stop = 0;
	do {
		int err = ru_reap(l);

		if (err < 0)
			return err;
	} while (!once && !l->stop);
	return 0;
}

static void ru_break(void *loop)
{
	((struct ru_loop *)loop)->stop = 1;
}

static int ru_op_new(void *loop, bench_op_cb cb, void *arg, void **opp)
{
	struct ru_op *o = malloc(sizeof(*o));

	if (o == NULL)
		return -ENOMEM;
	*o = (struct ru_op){ .l = loop, .cb = cb, .arg = arg };
	*opp = o;
	return 0;
}

static int ru_op_read(void *op, int fd, void *buf, size_t len)
{
	struct ru_op *o = op;
	struct io_uring_sqe *sqe = get_sqe(&o->l->ring);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_read(sqe, fd, buf, (unsigned)len, (uint64_t)-1);
	io_uring_sqe_set_data(sqe, o);
	o->l->inflight++;
	return 0;
}

static int ru_op_write(void *op, int fd, const void *buf, size_t len)
{
	struct ru_op *o = op;
	struct io_uring_sqe *sqe = get_sqe(&o->l->ring);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_write(sqe, fd, buf, (unsigned)len, (uint64_t)-1);
	io_uring_sqe_set_data(sqe, o);
	o->l->inflight++;
	return 0;
}

static void ru_op_free(void *op)
{
	free(op);
}

static int ru_fop_new(void *loop, bench_op_cb cb, void *arg, void **opp)
{
	struct ru_fop *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return -ENOMEM;
	o->op.l = loop;
	o->ucb = cb;
	o->uarg = arg;
	*opp = o;
	return 0;
}

static int ru_fop_read(void *op, int fd, void *buf, size_t len, uint64_t off)
{
	struct ru_fop *o = op;
	struct io_uring_sqe *sqe = get_sqe(&o->op.l->ring);

	if (sqe == NULL)
		return -EBUSY;
	o->op.cb = o->ucb;
	o->op.arg = o->uarg;
	io_uring_prep_read(sqe, fd, buf, (unsigned)len, off);
	io_uring_sqe_set_data(sqe, &o->op);
	o->op.l->inflight++;
	return 0;
}

static void ru_stat_done(void *arg, int res)
{
	struct ru_fop *o = arg;

	if (res == 0) {
		o->st->ino = o->stx.stx_ino;
		o->st->size = o->stx.stx_size;
		o->st->mtime_sec = o->stx.stx_mtime.tv_sec;
		o->st->mtime_nsec = o->stx.stx_mtime.tv_nsec;
		o->st->mode = o->stx.stx_mode;
	}
	o->ucb(o->uarg, res);
}

static int ru_fop_stat(void *op, const char *path, struct bench_stat *st)
{
	struct ru_fop *o = op;
	struct io_uring_sqe *sqe = get_sqe(&o->op.l->ring);

	if (sqe == NULL)
		return -EBUSY;
	o->st = st;
	o->op.cb = ru_stat_done;
	o->op.arg = o;
	io_uring_prep_statx(sqe, AT_FDCWD, path, 0, STATX_BASIC_STATS,
			    &o->stx);
	io_uring_sqe_set_data(sqe, &o->op);
	o->op.l->inflight++;
	return 0;
}

/* ------------------------------------------------------------------------
 * The echo server
 * ------------------------------------------------------------------------ */

#define RU_QCAP 8
#define RU_BUF 512
#define RU_BGID 0

enum { K_IGNORE, K_ACCEPT, K_RECV, K_SEND };
#define UD(idx, kind) (((uint64_t)(idx) << 2) | (kind))

struct ru_conn {
	int fd;
	uint16_t q[RU_QCAP];
	uint32_t qlen[RU_QCAP];
	unsigned qhead, qn;
	uint32_t off;
	bool recv_on, sending, eof, closed;
};

struct ru_srv {
	const struct bench_echo_cfg *cfg;
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	size_t br_size;
	char *bufs;
	unsigned nbufs;
	int mask;
	int nadd;		/* buffers given back, tail not yet moved */
	struct ru_conn *conns;
	unsigned nconn, accepted, closed;
	bool acc_on, failed;
};

static void ru_fail(struct ru_srv *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->failed) {
		va_start(ap, fmt);
		vsnprintf(s->cfg->err, s->cfg->errlen, fmt, ap);
		va_end(ap);
	}
	s->failed = true;
}

static struct io_uring_sqe *srv_sqe(struct ru_srv *s)
{
	struct io_uring_sqe *sqe = get_sqe(&s->ring);

	if (sqe == NULL)
		ru_fail(s, "io_uring_submit failed with a full SQ");
	return sqe;
}

static void arm_accept(struct ru_srv *s)
{
	struct io_uring_sqe *sqe = srv_sqe(s);

	if (sqe == NULL)
		return;
	io_uring_prep_multishot_accept(sqe, s->cfg->listen_fd, NULL, NULL,
				       SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD(0, K_ACCEPT));
	s->acc_on = true;
}

static void arm_recv(struct ru_srv *s, unsigned idx)
{
	struct io_uring_sqe *sqe = srv_sqe(s);

	if (sqe == NULL)
		return;
	io_uring_prep_recv(sqe, s->conns[idx].fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = RU_BGID;
	sqe->ioprio |= IORING_RECV_MULTISHOT;
	io_uring_sqe_set_data64(sqe, UD(idx, K_RECV));
	s->conns[idx].recv_on = true;
}

static void send_next(struct ru_srv *s, unsigned idx)
{
	struct ru_conn *c = &s->conns[idx];
	struct io_uring_sqe *sqe = srv_sqe(s);
	unsigned bid = c->q[c->qhead];

	if (sqe == NULL)
		return;
	io_uring_prep_send(sqe, c->fd, s->bufs + (size_t)bid * RU_BUF + c->off,
			   c->qlen[c->qhead] - c->off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(idx, K_SEND));
	c->sending = true;
}

static void conn_close(struct ru_srv *s, struct ru_conn *c)
{
	close(c->fd);
	c->closed = true;
	s->closed++;
}

static void on_accept(struct ru_srv *s, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		s->acc_on = false;
	if (res >= 0) {
		if (s->accepted == s->nconn) {
			close(res);
			ru_fail(s, "more connections than the %u expected",
				s->nconn);
			return;
		}
		s->conns[s->accepted].fd = res;
		arm_recv(s, s->accepted++);
	} else if (res != -ECONNABORTED && res != -EINTR && res != -EAGAIN) {
		ru_fail(s, "accept: %s after %u of %u connections",
			strerror(-res), s->accepted, s->nconn);
		return;
	}
	if (!s->acc_on && s->accepted < s->nconn)
		arm_accept(s);
}

static void on_recv(struct ru_srv *s, unsigned idx, int res, unsigned flags)
{
	struct ru_conn *c = &s->conns[idx];
	bool more = flags & IORING_CQE_F_MORE;

	if (!more)
		c->recv_on = false;
	if (res > 0) {
		unsigned slot;

		if (!(flags & IORING_CQE_F_BUFFER) || c->qn == RU_QCAP) {
			ru_fail(s, "recv: no buffer, or %d queued", RU_QCAP);
			return;
		}
		slot = (c->qhead + c->qn++) % RU_QCAP;
		c->q[slot] = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
		c->qlen[slot] = (uint32_t)res;
		if (!c->sending)
			send_next(s, idx);
		if (!more)
			arm_recv(s, idx);
		return;
	}
	if (res == -ENOBUFS) {
		if (!more)
			arm_recv(s, idx);
		return;
	}
	if (res == 0 || res == -ECONNRESET) {
		if (more)
			return;
		c->eof = true;
		if (!c->sending)
			conn_close(s, c);
		return;
	}
	ru_fail(s, "recv: %s", strerror(-res));
}

static void on_send(struct ru_srv *s, unsigned idx, int res)
{
	struct ru_conn *c = &s->conns[idx];
	unsigned bid;

	c->sending = false;
	if (res < 0) {
		ru_fail(s, "send: %s", strerror(-res));
		return;
	}
	c->off += (uint32_t)res;
	if (c->off < c->qlen[c->qhead]) {
		send_next(s, idx);
		return;
	}
	bid = c->q[c->qhead];
	io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * RU_BUF, RU_BUF,
			      (unsigned short)bid, s->mask, s->nadd++);
	c->qhead = (c->qhead + 1) % RU_QCAP;
	c->qn--;
	c->off = 0;
	if (c->qn > 0)
		send_next(s, idx);
	else if (c->eof && !c->recv_on)
		conn_close(s, c);
}

static unsigned pow2_at_least(unsigned v, unsigned lo, unsigned hi)
{
	unsigned p = lo;

	while (p < v && p < hi)
		p <<= 1;
	return p;
}

static int ru_bufs_init(struct ru_srv *s)
{
	struct io_uring_buf_reg reg = { 0 };
	int r;

	s->nbufs = pow2_at_least(2 * s->nconn, 64, 32768);
	s->mask = io_uring_buf_ring_mask(s->nbufs);
	s->bufs = aligned_alloc(64, (size_t)s->nbufs * RU_BUF);
	s->br_size = s->nbufs * sizeof(struct io_uring_buf);
	s->br = mmap(NULL, s->br_size, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (s->bufs == NULL || s->br == MAP_FAILED) {
		s->br = NULL;
		return -ENOMEM;
	}
	reg.ring_addr = (uint64_t)(uintptr_t)s->br;
	reg.ring_entries = s->nbufs;
	reg.bgid = RU_BGID;
	r = io_uring_register_buf_ring(&s->ring, &reg, 0);
	if (r < 0)
		return r;
	io_uring_buf_ring_init(s->br);
	for (unsigned i = 0; i < s->nbufs; i++)
		io_uring_buf_ring_add(s->br, s->bufs + (size_t)i * RU_BUF,
				      RU_BUF, (unsigned short)i, s->mask, (int)i);
	io_uring_buf_ring_advance(s->br, (int)s->nbufs);
	return 0;
}

static int ru_echo_serve(const struct bench_contender *c,
			 const struct bench_echo_cfg *cfg)
{
	struct ru_srv s = { .cfg = cfg, .nconn = cfg->nconn };
	unsigned entries;
	int r;

	(void)c;
	s.conns = calloc(cfg->nconn, sizeof(*s.conns));
	if (s.conns == NULL) {
		snprintf(cfg->err, cfg->errlen, "out of memory");
		return -1;
	}
	entries = pow2_at_least(cfg->nconn, 256, 4096);
	r = ring_init(&s.ring, entries, 4 * entries);
	if (r < 0) {
		snprintf(cfg->err, cfg->errlen, "io_uring_queue_init: %s",
			 strerror(-r));
		free(s.conns);
		return -1;
	}
	r = ru_bufs_init(&s);
	if (r < 0) {
		ru_fail(&s, "provided buffers: %s", strerror(-r));
		goto out;
	}
	arm_accept(&s);
	while (!s.failed && s.closed < s.nconn) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		r = io_uring_submit_and_wait(&s.ring, 1);
		if (r < 0 && r != -EINTR && r != -EBUSY && r != -ETIME) {
			ru_fail(&s, "io_uring_submit_and_wait: %s",
				strerror(-r));
			break;
		}
		io_uring_for_each_cqe(&s.ring, head, cqe) {
			uint64_t ud = cqe->user_data;
			unsigned idx = (unsigned)(ud >> 2);

			n++;
			switch (ud & 3) {
			case K_ACCEPT:
				on_accept(&s, cqe->res, cqe->flags);
				break;
			case K_RECV:
				on_recv(&s, idx, cqe->res, cqe->flags);
				break;
			case K_SEND:
				on_send(&s, idx, cqe->res);
				break;
			}
		}
		io_uring_cq_advance(&s.ring, n);
		if (s.nadd > 0) {
			io_uring_buf_ring_advance(s.br, s.nadd);
			s.nadd = 0;
		}
	}
out:
	/* Tearing the ring down cancels the accept (and, on a failure,
	 * whatever else is in flight) before the fds are closed. */
	io_uring_queue_exit(&s.ring);
	for (unsigned i = 0; i < s.accepted; i++)
		if (!s.conns[i].closed)
			close(s.conns[i].fd);
	if (s.br != NULL)
		munmap(s.br, s.br_size);
	free(s.bufs);
	free(s.conns);
	return s.failed ? -1 : 0;
}

const struct bench_contender bench_raw_uring_ops = {
	.name = "raw-uring-ops",
	.backend = "io_uring",
	.probe = ru_probe,
	.loop_new = ru_loop_new,
	.loop_free = ru_loop_free,
	.run = ru_run,
	.break_loop = ru_break,
	.op_new = ru_op_new,
	.op_read = ru_op_read,
	.op_write = ru_op_write,
	.op_free = ru_op_free,
	.echo_serve = ru_echo_serve,
	.fop_new = ru_fop_new,
	.fop_read = ru_fop_read,
	.fop_stat = ru_fop_stat,
	.fop_free = ru_op_free,
};
