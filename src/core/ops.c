/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the completion API: submission, chains, cancellation, and the
 * one road every result takes to its callback.
 *
 * The road. Every engine only reports results, {op, res, flags}, with
 * evq__report() (internal.h) into loop->done: a backend's wait (io_uring
 * CQEs, AIO events), the emulation (emul.c), the thread pool
 * (threadpool.c). After each wait the loop calls evq__ops_deliver(),
 * which runs the callbacks in report order; this file is the only caller
 * of op callbacks, as io.c is of fd watchers' (with its header ops.h,
 * which the loop inlines for io_uring's common result, as io.h is io.c's
 * hot half). What a result means for the op's future is decided here,
 * for every backend alike:
 *   - a last result leaves the in-flight list before its callback, so the
 *     callback may submit the op again or free it;
 *   - chains: the op after a LINK op starts when its predecessor fully
 *     succeeded (op_success), or completes with -ECANCELED;
 *   - multishot: a backend that runs a multishot op single-shot (it says
 *     EVQ__SINGLE) has it started again after each result that goes on;
 *   - the order of a cancel and its target (below);
 *   - kernel-internal restart codes become -EINTR.
 *
 * Life of an op:
 *   evq_op_submit()        IDLE -> QUEUED (sq), or HELD behind a LINK op;
 *                          submitting only queues, on every backend
 *   next iteration         QUEUED -> started: by the backend (op_start,
 *                          NATIVE), or by the emulation (emul.c)
 *   a result reported      delivered after the wait: callback; without
 *                          EVQ_OP_F_MORE the op is IDLE again
 */
#include "internal.h"
#include "io.h"
#include "ops.h"
#if EVQ_HAVE_URING
#include "uring_sq.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

static inline void op_start(struct evq_loop *loop, struct evq_op *op);

/* loop->chain_tail names the last op submitted this iteration when it had
 * EVQ_OP_LINK, and only while that op is in flight: an op that ends (a
 * cancel, a close op, a chain broken before it) may be freed or reused at
 * once, so complete() takes it off. The chain still goes on as it would
 * have: the next op submitted runs on its own after a success, and after
 * a failure completes with -ECANCELED, as on io_uring, where both SQEs go
 * in one submission. chain_broken stands for "the tail failed". */
static struct evq_op chain_broken;

/* A backend that runs every op (uring), and can cancel what it runs. */
static inline bool native(const struct evq_loop *loop)
{
	return loop->backend->caps & EVQ__CAP_KERNEL_OPS;
}

/* ------------------------------------------------------------------------
 * Preparation
 * ------------------------------------------------------------------------ */

/* The most bytes Linux moves in one read/write/recv/send (MAX_RW_COUNT:
 * INT_MAX rounded down to a page). A longer length is clamped here, once,
 * so that every backend and the emulation see the same value: io_uring's
 * SQE has a 32-bit length, and cutting 4 GiB to 32 bits made 0 ("EOF"). */
static size_t clamp_len(size_t len)
{
	return len > EVQ_OP_LEN_MAX ? EVQ_OP_LEN_MAX : len;
}

static void prep(struct evq_op *op, uint8_t code, int fd)
{
	op->code = code;
	op->fd = fd;
	op->flags = 0;
}

void evq_prep_nop(struct evq_op *op)
{
	prep(op, EVQ_OP_NOP, -1);
}

void evq_prep_read(struct evq_op *op, int fd, void *buf, size_t len,
		   uint64_t offset)
{
	prep(op, EVQ_OP_READ, fd);
	op->u.rw.buf = buf;
	op->u.rw.len = clamp_len(len);
	op->u.rw.off = offset;
}

void evq_prep_write(struct evq_op *op, int fd, const void *buf, size_t len,
		    uint64_t offset)
{
	prep(op, EVQ_OP_WRITE, fd);
	op->u.rw.buf = (void *)buf;
	op->u.rw.len = clamp_len(len);
	op->u.rw.off = offset;
}

void evq_prep_readv(struct evq_op *op, int fd, const struct iovec *iov,
		    int iovcnt, uint64_t offset)
{
	prep(op, EVQ_OP_READV, fd);
	op->u.vec.iov = iov;
	op->u.vec.cnt = iovcnt;
	op->u.vec.off = offset;
}

void evq_prep_writev(struct evq_op *op, int fd, const struct iovec *iov,
		     int iovcnt, uint64_t offset)
{
	prep(op, EVQ_OP_WRITEV, fd);
	op->u.vec.iov = iov;
	op->u.vec.cnt = iovcnt;
	op->u.vec.off = offset;
}

void evq_prep_recv(struct evq_op *op, int fd, void *buf, size_t len,
		   int flags)
{
	prep(op, EVQ_OP_RECV, fd);
	op->u.sr.buf = buf;
	op->u.sr.len = clamp_len(len);
	op->u.sr.flags = flags;
}

void evq_prep_send(struct evq_op *op, int fd, const void *buf, size_t len,
		   int flags)
{
	prep(op, EVQ_OP_SEND, fd);
	op->u.sr.buf = (void *)buf;
	op->u.sr.len = clamp_len(len);
	op->u.sr.flags = flags;
}

void evq_prep_recvmsg(struct evq_op *op, int fd, struct msghdr *msg,
		      int flags)
{
	prep(op, EVQ_OP_RECVMSG, fd);
	op->u.msg.msg = msg;
	op->u.msg.flags = flags;
}

void evq_prep_sendmsg(struct evq_op *op, int fd, const struct msghdr *msg,
		      int flags)
{
	prep(op, EVQ_OP_SENDMSG, fd);
	op->u.msg.msg = (struct msghdr *)msg;
	op->u.msg.flags = flags;
}

void evq_prep_accept(struct evq_op *op, int fd, struct sockaddr *addr,
		     socklen_t *addrlen, int flags)
{
	prep(op, EVQ_OP_ACCEPT, fd);
	op->u.acc.addr = addr;
	op->u.acc.addrlen = addrlen;
	op->u.acc.flags = flags;
}

void evq_prep_connect(struct evq_op *op, int fd, const struct sockaddr *addr,
		      socklen_t addrlen)
{
	prep(op, EVQ_OP_CONNECT, fd);
	op->u.conn.addr = addr;
	op->u.conn.len = addrlen;
}

void evq_prep_openat(struct evq_op *op, int dirfd, const char *path,
		     int flags, unsigned mode)
{
	prep(op, EVQ_OP_OPENAT, -1);
	op->u.open.dirfd = dirfd;
	op->u.open.path = path;
	op->u.open.flags = flags;
	op->u.open.mode = mode;
}

void evq_prep_statx(struct evq_op *op, int dirfd, const char *path,
		    int flags, unsigned mask, struct statx *stx)
{
	prep(op, EVQ_OP_STATX, -1);
	op->u.stat.dirfd = dirfd;
	op->u.stat.path = path;
	op->u.stat.flags = flags;
	op->u.stat.mask = mask;
	op->u.stat.stx = stx;
}

void evq_prep_fsync(struct evq_op *op, int fd, unsigned fsync_flags)
{
	prep(op, EVQ_OP_FSYNC, fd);
	op->u.fsync_flags = fsync_flags;
}

void evq_prep_close(struct evq_op *op, int fd)
{
	prep(op, EVQ_OP_CLOSE, fd);
}

void evq_prep_timeout(struct evq_op *op, uint64_t ns)
{
	prep(op, EVQ_OP_TIMEOUT, -1);
	op->u.tmo.ns = ns;
}

void evq_prep_link_timeout(struct evq_op *op, uint64_t ns)
{
	prep(op, EVQ_OP_LINK_TIMEOUT, -1);
	op->u.lt.target = NULL;
	op->u.lt.fd = -1;
	op->u.lt.ns = ns;
}

void evq_prep_cancel(struct evq_op *op, struct evq_op *target)
{
	prep(op, EVQ_OP_CANCEL, -1);
	op->u.cancel.target = target;
	op->u.cancel.fd = -1;
}

void evq_prep_cancel_fd(struct evq_op *op, int fd)
{
	prep(op, EVQ_OP_CANCEL, -1);
	op->u.cancel.target = NULL;
	op->u.cancel.fd = fd;
}

void evq_prep_recv_pool(struct evq_op *op, int fd, struct evq_pool *pool,
			int flags)
{
	prep(op, EVQ_OP_RECV, fd);
	op->flags = EVQ__OPF_POOL;
	op->u.pool.pool = pool;
	op->u.pool.flags = flags;
	op->u.pool.off = 0;
}

void evq_prep_read_pool(struct evq_op *op, int fd, struct evq_pool *pool,
			uint64_t offset)
{
	prep(op, EVQ_OP_READ, fd);
	op->flags = EVQ__OPF_POOL;
	op->u.pool.pool = pool;
	op->u.pool.flags = 0;
	op->u.pool.off = offset;
}

/* fd_out is the op's fd, as the SQE's on io_uring: cancel_fd and close
 * find the op by it. */
void evq_prep_splice(struct evq_op *op, int fd_in, int64_t off_in,
		     int fd_out, int64_t off_out, size_t len,
		     unsigned splice_flags)
{
	prep(op, EVQ_OP_SPLICE, fd_out);
	op->u.splice.fd_in = fd_in;
	op->u.splice.off_in = (uint64_t)off_in;
	op->u.splice.off_out = (uint64_t)off_out;
	op->u.splice.len = (unsigned)clamp_len(len);
	op->u.splice.flags = splice_flags;
}

void evq_prep_send_zc(struct evq_op *op, int fd, const void *buf, size_t len,
		      int flags)
{
	prep(op, EVQ_OP_SEND_ZC, fd);
	op->u.sr.buf = (void *)buf;
	op->u.sr.len = clamp_len(len);
	op->u.sr.flags = flags;
}

void evq_prep_shutdown(struct evq_op *op, int fd, int how)
{
	prep(op, EVQ_OP_SHUTDOWN, fd);
	op->u.how = how;
}

void evq_prep_socket(struct evq_op *op, int domain, int type, int protocol,
		     unsigned flags)
{
	prep(op, EVQ_OP_SOCKET, -1);
	op->u.sock.domain = domain;
	op->u.sock.type = type;
	op->u.sock.protocol = protocol;
	op->u.sock.flags = flags;
}

void evq_prep_fallocate(struct evq_op *op, int fd, int mode, uint64_t offset,
			uint64_t len)
{
	prep(op, EVQ_OP_FALLOCATE, fd);
	op->u.falloc.mode = mode;
	op->u.falloc.off = offset;
	op->u.falloc.len = len;
}

/* unlinkat and mkdirat keep their path as openat does (u.open). */
void evq_prep_unlinkat(struct evq_op *op, int dirfd, const char *path,
		       int flags)
{
	prep(op, EVQ_OP_UNLINKAT, -1);
	op->u.open.dirfd = dirfd;
	op->u.open.path = path;
	op->u.open.flags = flags;
	op->u.open.mode = 0;
}

void evq_prep_renameat(struct evq_op *op, int olddirfd, const char *oldpath,
		       int newdirfd, const char *newpath, unsigned flags)
{
	prep(op, EVQ_OP_RENAMEAT, -1);
	op->u.ren.olddirfd = olddirfd;
	op->u.ren.oldpath = oldpath;
	op->u.ren.newdirfd = newdirfd;
	op->u.ren.newpath = newpath;
	op->u.ren.flags = flags;
}

void evq_prep_mkdirat(struct evq_op *op, int dirfd, const char *path,
		      unsigned mode)
{
	prep(op, EVQ_OP_MKDIRAT, -1);
	op->u.open.dirfd = dirfd;
	op->u.open.path = path;
	op->u.open.flags = 0;
	op->u.open.mode = mode;
}

/* ------------------------------------------------------------------------
 * Bookkeeping: the in-flight list and the queue
 * ------------------------------------------------------------------------ */

/* The in-flight list holds the ops the core must find itself: for a
 * cancel (by op or by fd), a close, the emulation's checks (emul.c) and
 * the loop's free. It is in the order ops joined it, oldest first.
 *
 * An op of evq_op_submit's fast path is only counted, off the list
 * (op->next == op), while nothing needs to find it there: queued (the
 * start queue is walked instead), handed to a backend that runs every op
 * (its kernel finds its own: a cancel of an op not on the list goes to
 * it, and it says -ENOENT when it has no such op), or finished (its
 * result on the road is found there). It joins the list only when it
 * goes waiting in the core (op_start). That keeps the list's upkeep off
 * the common op: a write that completes as it starts, a native op. */
static void inflight_link(struct evq_loop *loop, struct evq_op *op)
{
	op->next = NULL;
	op->prev = loop->ops_tail;
	if (loop->ops_tail)
		loop->ops_tail->next = op;
	else
		loop->ops_head = op;
	loop->ops_tail = op;
}

static void inflight_add(struct evq_loop *loop, struct evq_op *op)
{
	inflight_link(loop, op);
	loop->nops++;
	if (evq__likely(!(op->flags & EVQ_OP_UNREF)))
		loop->active++;
}

/* The fast path's op (no flag: not EVQ_OP_UNREF), counted off the list. */
static inline void inflight_count(struct evq_loop *loop, struct evq_op *op)
{
	op->next = op;
	loop->nops++;
	loop->active++;
}

/* op joins the start queue (for the next iteration's start) */
static inline __attribute__((always_inline)) void
sq_link(struct evq_loop *loop, struct evq_op *op)
{
	op->qnext = NULL;
	op->state = EVQ__OP_QUEUED;
	if (loop->sq_tail)
		loop->sq_tail->qnext = op;
	else
		loop->sq_head = op;
	loop->sq_tail = op;
}

static void sq_append(struct evq_loop *loop, struct evq_op *op)
{
	loop->uring_open = NULL;	/* it would pass op */
	sq_link(loop, op);
}

/* Unlink op from a singly linked list; returns whether it was there. */
static bool list_remove(struct evq_op **head, struct evq_op **tail,
			struct evq_op *op)
{
	struct evq_op *prev = NULL;

	for (struct evq_op *o = *head; o; prev = o, o = o->qnext) {
		if (o != op)
			continue;
		if (prev)
			prev->qnext = o->qnext;
		else
			*head = o->qnext;
		if (tail && *tail == o)
			*tail = prev;
		o->qnext = NULL;
		return true;
	}
	return false;
}

/* The core ends op itself (a cancel, a broken chain, an error at the
 * start): its last result takes the road like any other. */
static void end(struct evq_loop *loop, struct evq_op *op, int res)
{
	op->state = EVQ__OP_DONE;
	op->cflags = 0;
	evq__report(loop, op, res, 0);
}

/* ------------------------------------------------------------------------
 * Link timeouts (evq_prep_link_timeout)
 *
 * A link timeout is held as the link of its target (target->link, with
 * EVQ__OPF_TIMED on the target) and armed, a core timer in lt->wait,
 * when the target starts. The target finishing first ends it with
 * -ECANCELED (chain_continue), and the chain goes on after it. The timer
 * firing first takes it out of the chain (the target's link becomes what
 * followed it) and cancels the target: what the core holds or emulates
 * it ends at once; a target the backend runs (uring) is cancelled by the
 * timeout op itself, made a cancel of its target for the backend, and
 * turned back into a link timeout when that result is delivered
 * (complete: -ETIME for a found target).
 * ------------------------------------------------------------------------ */

static int cancel_one(struct evq_loop *loop, struct evq_op *t);
static inline void backend_start(struct evq_loop *loop, struct evq_op *op);

/* Stop lt's timer if it runs; the timer does not count as a watcher of
 * its own (the op does), as for the emulation's timeout op. */
static void lt_disarm(struct evq_loop *loop, struct evq_op *lt)
{
	if (lt->state == EVQ__OP_WAIT_TIMER) {
		evq_timer_stop(&lt->wait.timer);
		loop->active++;
	}
}

/* End lt (its target finished, or the chain broke) and return what
 * followed it in the chain. */
static struct evq_op *lt_end(struct evq_loop *loop, struct evq_op *lt,
			     int res)
{
	struct evq_op *after = lt->link;

	lt->link = NULL;
	lt_disarm(loop, lt);
	end(loop, lt, res);
	return after;
}

static void lt_fire(struct evq_loop *loop, struct evq_timer *t)
{
	struct evq_op *lt = (struct evq_op *)(void *)((char *)t -
					offsetof(struct evq_op, wait.timer));
	struct evq_op *target = lt->u.lt.target;
	int r;

	loop->active++;	/* the firing took one off (lt_disarm) */
	/* What followed the timeout now follows the target. */
	target->link = lt->link;
	lt->link = NULL;
	r = cancel_one(loop, target);
	if (r == 1) {
		/* The backend runs the target: lt cancels it there. */
		lt->code = EVQ_OP_CANCEL;
		lt->u.cancel.fd = -1;
		lt->flags |= EVQ__OPF_LTMO;
		backend_start(loop, lt);
		return;
	}
	end(loop, lt, r == 0 ? -ETIME : r);
}

/* target starts now: arm the link timeout that watches it. */
static __attribute__((noinline, cold)) void
lt_arm(struct evq_loop *loop, struct evq_op *target)
{
	struct evq_op *lt = target->link;
	int r;

	target->flags &= (uint16_t)~EVQ__OPF_TIMED;
	if (!lt || lt->code != EVQ_OP_LINK_TIMEOUT || lt->state != EVQ__OP_HELD)
		return;	/* cancelled meanwhile */
	lt->wait.timer = (struct evq_timer){ 0 };
	r = evq_timer_start(loop, &lt->wait.timer, lt->u.lt.ns, 0, lt_fire);
	if (r < 0) {
		target->link = lt_end(loop, lt, r);
		return;
	}
	lt->state = EVQ__OP_WAIT_TIMER;
	loop->active--;	/* see lt_disarm */
}

/* The result of a fired link timeout's cancel (EVQ__OPF_LTMO): the op is
 * a link timeout again, and says -ETIME if its target was found. */
static int lt_fired(struct evq_op *lt, int res)
{
	lt->code = EVQ_OP_LINK_TIMEOUT;
	lt->flags &= (uint16_t)~EVQ__OPF_LTMO;
	return res == 0 ? -ETIME : res;
}

/* Submission of a link timeout with a chain open: watch the tail, and
 * be the tail if flags has EVQ_OP_LINK. */
static __attribute__((noinline, cold)) void
lt_attach(struct evq_loop *loop, struct evq_op *lt, unsigned flags)
{
	struct evq_op *target = loop->chain_tail;

	loop->chain_tail = (flags & EVQ_OP_LINK) ? lt : NULL;
	lt->u.lt.target = target;
	lt->u.lt.fd = -1;
	target->link = lt;
	target->flags |= EVQ__OPF_TIMED;
	lt->flags |= EVQ__OPF_TIMED;	/* for chain_continue's one test */
	lt->state = EVQ__OP_HELD;
	/* A target its chain started already (in this delivery). */
	if (target->state != EVQ__OP_QUEUED && target->state != EVQ__OP_HELD) {
		lt_arm(loop, target);
		return;
	}
	/* A recv or send with a timeout completes with what came in
	 * time: not made to wait for all its bytes as a linked one is. */
	target->flags &= (uint16_t)~EVQ__OPF_WAITALL;
}

/* ------------------------------------------------------------------------
 * Chains
 * ------------------------------------------------------------------------ */

static size_t iov_total(const struct iovec *iov, int cnt)
{
	size_t n = 0;

	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - n)
			return SIZE_MAX;
		n += iov[i].iov_len;
	}
	return n;
}

/* Did op fully succeed, so that its chain goes on? */
static bool op_success(const struct evq_op *op, int res)
{
	if (op->code == EVQ_OP_TIMEOUT)
		return res == -ETIME || res >= 0;
	if (res < 0)
		return false;
	if (op->flags & EVQ__OPF_POOL)
		return true;
	switch (op->code) {
	case EVQ_OP_READ:
	case EVQ_OP_WRITE:
		return (size_t)res == op->u.rw.len;
	case EVQ_OP_RECV:
	case EVQ_OP_SEND:
		return (size_t)res == op->u.sr.len;
	case EVQ_OP_SEND_ZC:
		/* res is the notification's: the send's is in op->res */
		return (size_t)op->res == op->u.sr.len;
	case EVQ_OP_READV:
	case EVQ_OP_WRITEV:
		/* the kernel moves at most EVQ_OP_LEN_MAX in one call */
		return (size_t)res == clamp_len(iov_total(op->u.vec.iov,
							  op->u.vec.cnt));
	default:	/* recvmsg/sendmsg included: any count, as io_uring */
		return true;
	}
}

/* The op before `next` in its chain finished: start next (its result
 * comes back on the road, later in this same delivery when it is
 * immediate), or end it and the rest of the chain with -ECANCELED, in
 * order. */
static void chain_continue(struct evq_loop *loop, struct evq_op *next,
			   bool ok)
{
	/* EVQ__OPF_TIMED: a link timeout, or the target of one. */
	if (evq__unlikely(next->flags & EVQ__OPF_TIMED) &&
	    next->code == EVQ_OP_LINK_TIMEOUT) {
		/* The target finished first: its timeout is done, and the
		 * chain goes on after it as after the target. */
		next = lt_end(loop, next, -ECANCELED);
		if (!next)
			return;
	}
	if (ok && !loop->freeing) {
		if (evq__unlikely(next->flags & EVQ__OPF_TIMED))
			lt_arm(loop, next);
		op_start(loop, next);
		return;
	}
	while (next) {
		struct evq_op *after = next->link;

		next->link = NULL;
		/* Its end breaks what follows; the link is already cut. */
		end(loop, next, -ECANCELED);
		next = after;
	}
}

/* ------------------------------------------------------------------------
 * The order of a cancel and its target
 *
 * On every backend the target's last callback runs before the callback of
 * the cancel that ended it, so the cancel's callback may free the target.
 * When the core ends the target itself (it held it, or emulates it), the
 * target's -ECANCELED is reported before the cancel's result, and the
 * road keeps report order. On io_uring the kernel may post the cancel's
 * CQE first: the core keeps the native cancels of one op that are in
 * flight on loop->cancels (linked through wait.native.cancel_*: the
 * backend keeps its own state in wait.native.backend), marks those whose
 * target's last call has run, and holds back a successful cancel's
 * result until its target's last call has run.
 * ------------------------------------------------------------------------ */

static bool cancel_of_one(const struct evq_op *op)
{
	return op->code == EVQ_OP_CANCEL && op->u.cancel.target;
}

static void cancels_add(struct evq_loop *loop, struct evq_op *c)
{
	c->flags &= (uint16_t)~(EVQ__OPF_TDONE | EVQ__OPF_HELD);
	c->wait.native.cancel_prev = NULL;
	c->wait.native.cancel_next = loop->cancels;
	if (c->wait.native.cancel_next)
		c->wait.native.cancel_next->wait.native.cancel_prev = c;
	loop->cancels = c;
}

static void cancels_remove(struct evq_loop *loop, struct evq_op *c)
{
	if (c->wait.native.cancel_prev)
		c->wait.native.cancel_prev->wait.native.cancel_next =
			c->wait.native.cancel_next;
	else if (loop->cancels == c)
		loop->cancels = c->wait.native.cancel_next;
	else
		return;	/* not on the list */
	if (c->wait.native.cancel_next)
		c->wait.native.cancel_next->wait.native.cancel_prev =
			c->wait.native.cancel_prev;
	c->wait.native.cancel_next = c->wait.native.cancel_prev = NULL;
}

/* op's last call is about to run: mark the cancels aimed at it, and
 * return (linked through qnext) those whose result waits for it. Only
 * addresses are compared: op may be freed by its callback. */
static struct evq_op *cancels_target_done(struct evq_loop *loop,
					  const struct evq_op *op)
{
	struct evq_op *held = NULL, **tail = &held;

	for (struct evq_op *c = loop->cancels; c;
	     c = c->wait.native.cancel_next) {
		if (c->u.cancel.target != op)
			continue;
		c->flags |= EVQ__OPF_TDONE;
		if (c->flags & EVQ__OPF_HELD) {
			c->flags &= (uint16_t)~EVQ__OPF_HELD;
			c->qnext = NULL;
			*tail = c;
			tail = &c->qnext;
		}
	}
	return held;
}

/* ------------------------------------------------------------------------
 * Delivery: the only caller of op callbacks
 * ------------------------------------------------------------------------ */

/* Run op's callback for one result. Without EVQ_OP_F_MORE this is the
 * op's last: it leaves the in-flight list before its callback runs, so
 * the callback may submit it again or free it. */
static void complete(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned cflags)
{
	struct evq_op *link = NULL, *held = NULL;
	bool ok = false;

	if (cflags & EVQ_OP_F_BUFFER)
		op->u.pool.pool->out[EVQ_OP_F_BUFID(cflags)] = 1;
	if (!(cflags & EVQ_OP_F_MORE)) {
		if (op->flags & EVQ__OPF_POOL)
			op->u.pool.pool->users--;
		link = op->link;
		op->link = NULL;
		if (link)
			ok = op_success(op, res);
		if (loop->chain_tail == op)
			loop->chain_tail = op_success(op, res) ? NULL
							       : &chain_broken;
		inflight_remove(loop, op);
		op->state = EVQ__OP_IDLE;
		if (evq__unlikely(loop->cancels != NULL)) {
			if (cancel_of_one(op)) {
				cancels_remove(loop, op);
				if (op->flags & EVQ__OPF_LTMO)
					res = lt_fired(op, res);
			} else
				held = cancels_target_done(loop, op);
		}
	} else if (op->code == EVQ_OP_SEND_ZC) {
		/* its chain goes on after the notification if the send
		 * was whole (op_success) */
		op->res = res;
	}
	loop->callbacks++;
	op->cb(loop, op, res, cflags);
	if (link)
		chain_continue(loop, link, ok);
	while (held) {
		struct evq_op *c = held;

		held = c->qnext;
		c->qnext = NULL;
		complete(loop, c, c->res, 0);
	}
}

/* A result the backend ran (state NATIVE): what it means is decided
 * here. Returns false when the result is held back. */
static bool native_result(struct evq__done *d)
{
	struct evq_op *op = d->op;

	if (evq__unlikely(evq__res_restart(d->res)))
		d->res = -EINTR;
	if (d->flags & EVQ_OP_F_BUFFER)
		op->u.pool.pool->available--;
	if (evq__likely(op->code != EVQ_OP_CANCEL))
		return true;
	if (!op->u.cancel.target) {
		/* cancel_fd: the kernel's count of what it cancelled, and
		 * op->res, what the core cancelled itself; none is
		 * -ENOENT, as on every backend. */
		if (d->res >= 0)
			d->res += op->res;
		else if (op->res > 0)
			d->res = op->res;
		if (d->res == 0)
			d->res = -ENOENT;
		return true;
	}
	if (d->res == 0 && !(d->flags & EVQ_OP_F_MORE) &&
	    !(op->flags & EVQ__OPF_TDONE)) {
		/* Found and cancelled, but the target's last CQE is still
		 * to come: delivered after it. */
		op->res = d->res;
		op->flags |= EVQ__OPF_HELD;
		return false;
	}
	return true;
}

/* A native splice said -EAGAIN: a side is a non-blocking fd that was
 * not ready (io_uring does not wait for those). evq waits on every fd
 * (evq.h): the emulation takes the op over and waits for the side that
 * is not ready. Not when the caller asked for SPLICE_F_NONBLOCK, nor
 * when a cancel aimed at it is on its way (it ends as cancelled). */
static bool splice_again(struct evq_loop *loop, struct evq__done *d)
{
	struct evq_op *op = d->op;

	op->flags &= (uint16_t)~EVQ__OPF_AGAIN;
	if (d->res != -EAGAIN || (op->u.splice.flags & SPLICE_F_NONBLOCK) ||
	    loop->freeing)
		return false;
	for (const struct evq_op *c = loop->cancels; c;
	     c = c->wait.native.cancel_next) {
		if (c->u.cancel.target == op) {
			d->res = -ECANCELED;
			return false;
		}
	}
	if (inflight_off(op))	/* the core holds it now: on the list */
		inflight_link(loop, op);
	op->state = EVQ__OP_QUEUED;
	evq__emul_start(loop, op);
	return true;
}

static void deliver_one(struct evq_loop *loop, struct evq__done d)
{
	struct evq_op *op = d.op;
	bool rearm = false;

	if (op->state == EVQ__OP_NATIVE || op->state == EVQ__OP_KERNEL) {
		if (evq__unlikely(op->flags & EVQ__OPF_AGAIN) &&
		    splice_again(loop, &d))
			return;
		if (!native_result(&d))
			return;
		/* A multishot op the backend runs single-shot: this result
		 * ends it there, but the op goes on here. */
		if (evq__unlikely(op->flags & EVQ__OPF_REARM) &&
		    !(d.flags & EVQ_OP_F_MORE) && evq__more_ok(op, d.res) &&
		    !loop->freeing) {
			d.flags |= EVQ_OP_F_MORE;
			rearm = true;
		}
	}
	complete(loop, op, d.res, d.flags);
	if (evq__unlikely(rearm)) {
		int r = loop->backend->op_start(loop, op);

		loop->handed_at = loop->waits + 1;
		if (r < 0)
			evq__report(loop, op, r, 0);
	}
}

/* Deliver every result reported so far, in order, and those the
 * callbacks cause meanwhile (an immediate result of a chain's next op,
 * the end of a watch). */
/* The common result: an op's last, nothing to decide (no chain, pool,
 * cancel, re-arm, restart code). */
/* No flag at all on the result or the op: an op with a link, or that
 * is a chain's tail, has EVQ_OP_LINK (only a LINK op is made a tail), and
 * any other flag only sends it the long way, which decides everything. */
static inline bool plain(const struct evq_loop *loop, const struct evq__done *d)
{
	const struct evq_op *op = d->op;

	return (d->flags | op->flags) == 0 && op->code != EVQ_OP_CANCEL &&
	       !loop->cancels && !evq__res_restart(d->res);
}

/* The results on the road from index i on (those before it were
 * delivered by evq__ops_deliver_kernel, ops.h). */
static inline __attribute__((always_inline)) void
deliver_from(struct evq_loop *loop, int i)
{
	/* Only a backend with op_queue has EVQ__OP_KERNEL ops. */
	if (loop->backend->op_queue) {
		for (; i < loop->ndone; i++) {
			struct evq__done d = loop->done[i];	/* may move */
			struct evq_op *op = d.op;

			if (evq__likely(evq__kernel_plain(op, &d) &&
					!loop->cancels)) {
				loop->nops--;
				loop->active--;	/* flags 0: not UNREF */
				op->state = EVQ__OP_IDLE;
				loop->callbacks++;
				op->cb(loop, op, d.res, 0);
				continue;
			}
			if (evq__likely(plain(loop, &d))) {
				inflight_remove(loop, d.op);
				d.op->state = EVQ__OP_IDLE;
				loop->callbacks++;
				d.op->cb(loop, d.op, d.res, 0);
				continue;
			}
			deliver_one(loop, d);
		}
		loop->ndone = 0;
	} else {
		for (; i < loop->ndone; i++) {
			struct evq__done d = loop->done[i];	/* may move */

			if (evq__likely(plain(loop, &d))) {
				inflight_remove(loop, d.op);
				d.op->state = EVQ__OP_IDLE;
				loop->callbacks++;
				d.op->cb(loop, d.op, d.res, 0);
				continue;
			}
			deliver_one(loop, d);
		}
		loop->ndone = 0;
	}
	/* A pool job reaped may be what a close op waited for. */
	if (evq__unlikely(loop->close_waiters != NULL))
		evq__emul_close_ready(loop, false);
}

void evq__ops_deliver_from(struct evq_loop *loop, int i)
{
	deliver_from(loop, i);
}

void evq__ops_deliver(struct evq_loop *loop)
{
	deliver_from(loop, 0);
}

/* ------------------------------------------------------------------------
 * Submission
 * ------------------------------------------------------------------------ */

/* The checks of a submission with flags or a pool: 0 or -EINVAL. */
static int submit_check(const struct evq_loop *loop, const struct evq_op *op,
			unsigned flags)
{
	if (flags & ~(EVQ_OP_LINK | EVQ_OP_MULTISHOT | EVQ_OP_UNREF))
		return -EINVAL;
	if ((flags & EVQ_OP_MULTISHOT) &&
	    ((flags & EVQ_OP_LINK) ||
	     !(op->code == EVQ_OP_ACCEPT ||
	       (op->code == EVQ_OP_RECV && (op->flags & EVQ__OPF_POOL)))))
		return -EINVAL;
	if ((op->flags & EVQ__OPF_POOL) &&
	    (!op->u.pool.pool || op->u.pool.pool->loop != loop))
		return -EINVAL;
	return 0;
}

/* Where op goes in an open chain, the rare case: behind the chain's tail,
 * or, if the chain broke before it, -ECANCELED (delivered next iteration:
 * never inside evq_op_submit). An op with LINK keeps a broken chain
 * broken for the next one. */
static void submit_chained(struct evq_loop *loop, struct evq_op *op,
			   unsigned flags)
{
	if (loop->chain_tail == &chain_broken) {
		end(loop, op, -ECANCELED);
		if (!(flags & EVQ_OP_LINK))
			loop->chain_tail = NULL;
		return;
	}
	loop->chain_tail->link = op;
	op->state = EVQ__OP_HELD;
	loop->chain_tail = (flags & EVQ_OP_LINK) ? op : NULL;
}

static bool has_fd(const struct evq_op *op);

/* Is an op on fd in the start queue? A walk: the queue holds what
 * callbacks submitted since the iteration began, a few ops. */
static bool queued_on(const struct evq_loop *loop, int fd)
{
	for (const struct evq_op *o = loop->sq_head; o; o = o->qnext)
		if (o->fd == fd && has_fd(o))
			return true;
	return false;
}

static void drop_result(struct evq_loop *loop, struct evq_op *op, int res,
			unsigned flags);

/* submit_slow for a link timeout, whose code lies outside the others'
 * range so that no other op pays for it: it needs an op to watch (not
 * another link timeout), and joins the chain as its target's link. The
 * rest as submit_slow. */
static __attribute__((noinline, cold)) int
submit_lt(struct evq_loop *loop, struct evq_op *op, unsigned flags,
	  evq_op_cb cb)
{
	const struct evq_op *tail = loop->chain_tail;

	if (op->code != EVQ_OP_LINK_TIMEOUT || !tail ||
	    (tail != &chain_broken && tail->code == EVQ_OP_LINK_TIMEOUT) ||
	    (flags & ~(EVQ_OP_LINK | EVQ_OP_UNREF)))
		return -EINVAL;
	if (op->state != EVQ__OP_IDLE)
		return -EBUSY;
	if (loop->freeing)
		return -ESHUTDOWN;
	op->loop = loop;
	op->cb = cb ? cb : drop_result;
	op->link = NULL;
	op->cflags = 0;
	op->flags = (uint16_t)flags;
	inflight_add(loop, op);
	if (tail == &chain_broken) {
		end(loop, op, -ECANCELED);
		if (!(flags & EVQ_OP_LINK))
			loop->chain_tail = NULL;
		return 0;
	}
	lt_attach(loop, op, flags);
	return 0;
}

/* The callback of an op submitted without one (evq.h). */
static void drop_result(struct evq_loop *loop, struct evq_op *op, int res,
			unsigned flags)
{
	(void)loop;
	(void)op;
	(void)res;
	(void)flags;
}

/* The slow road of evq_op_submit: flags, a pool, an open chain, no
 * callback, and every error. */
static __attribute__((noinline)) int
submit_slow(struct evq_loop *loop, struct evq_op *op, unsigned flags,
	    evq_op_cb cb)
{
	unsigned special;
	int r;

	if (evq__unlikely(!loop || !op ||
			  (unsigned)(op->code - 1) >= EVQ_OP__COUNT - 1))
		return op && loop ? submit_lt(loop, op, flags, cb) : -EINVAL;
	if (evq__unlikely(!cb)) {
		/* Fire and forget, but never of an fd or a buffer. */
		if (op->code == EVQ_OP_ACCEPT || op->code == EVQ_OP_OPENAT ||
		    op->code == EVQ_OP_SOCKET || (op->flags & EVQ__OPF_POOL))
			return -EINVAL;
		cb = drop_result;
	}
	special = flags | (op->flags & EVQ__OPF_POOL);
	if (special && (r = submit_check(loop, op, flags)) < 0)
		return r;
	if (op->state != EVQ__OP_IDLE)
		return -EBUSY;
	if (loop->freeing)
		return -ESHUTDOWN;

	op->loop = loop;
	op->cb = cb;
	op->link = NULL;
	op->cflags = 0;
	op->flags = (uint16_t)((op->flags & EVQ__OPF_POOL) | flags);
	/* A linked recv or send waits for all its bytes (evq.h). */
	if ((flags & EVQ_OP_LINK) && !(op->flags & EVQ__OPF_POOL) &&
	    (op->code == EVQ_OP_RECV || op->code == EVQ_OP_SEND) &&
	    op->u.sr.len <= 0x7fffffff)
		op->flags |= EVQ__OPF_WAITALL;
	if (op->flags & EVQ__OPF_POOL)
		op->u.pool.pool->users++;

	inflight_add(loop, op);
	if (loop->chain_tail != NULL) {
		submit_chained(loop, op, flags);
		return 0;
	}
	sq_append(loop, op);
	if (flags & EVQ_OP_LINK)
		loop->chain_tail = op;
	return 0;
}

/* evq_op_submit's common op, taken by a backend that queues it now
 * (op_queue): off the in-flight list (see inflight_count_off), only
 * counted; counted first, so that nothing is left to do after the
 * backend's call but to look at its answer. Out of line, so that
 * evq_op_submit itself needs no frame. */
static int submit_refused(struct evq_op *op, int r);

static __attribute__((noinline)) int submit_kernel(struct evq_loop *loop,
						   struct evq_op *op)
{
	int r;

	op->state = EVQ__OP_KERNEL;
	inflight_count(loop, op);
	loop->handed_at = loop->waits + 1;
	r = loop->backend->op_queue(loop, op);
	if (evq__likely(r == 0))
		return 0;
	return submit_refused(op, r);
}

/* The backend's op_queue refused op (EVQ__LATER, or -errno): undo the
 * count evq_op_submit made, and put op on the list, the long way. */
static __attribute__((noinline)) int submit_refused(struct evq_op *op, int r)
{
	struct evq_loop *loop = op->loop;

	op->state = EVQ__OP_NATIVE;
	inflight_link(loop, op);
	if (r != EVQ__LATER)
		end(loop, op, r);
	else
		sq_append(loop, op);
	return 0;
}

/* A read set waiting at submission on the registration the op before it
 * on its fd left (submit_core, submit_emul): no syscall, on the list. */
static inline __attribute__((always_inline)) void
take_over_read(struct evq_loop *loop, struct evq_op *op, evq_io_cb wait_cb)
{
	op->state = EVQ__OP_WAIT_IO;
	evq__io_take_over(loop, &op->wait.io, op->fd, EVQ_READ, wait_cb);
	/* its registration is checked before the loop blocks */
	op->flags = EVQ__OPF_UNVERIFIED;
	loop->unverified++;
	inflight_add(loop, op);
}

/* evq_op_submit's common op otherwise: on the in-flight list, and
 * queued for the next iteration's start, or (emulation) set waiting on
 * the registration its fd keeps. Inlined in submit_common: the common
 * submission on epoll and poll. */
static inline __attribute__((always_inline)) int
submit_core(struct evq_loop *loop, struct evq_op *op)
{
	/* Emulated: a read that evq__emul_start would only set waiting on
	 * the registration the op before it on fd left (its wait_first)
	 * waits there now. That is no syscall and no result, so it is still
	 * only queuing: the next wait looks at it, as it would have. Not
	 * when an op on the same fd is queued before it: it waits its turn
	 * (another read's start must come first). It joins the list. */
	if (evq__emul_may_queue(op) && loop->running && !native(loop) &&
	    (loop->sq_head ? !queued_on(loop, op->fd)
			   : !loop->backend->op_queue) &&
	    evq__io_can_take_over(loop, op->fd, EVQ_READ)) {
		take_over_read(loop, op, evq__emul_wait_cb(loop, op));
		return 0;
	}
	inflight_count(loop, op);
	sq_append(loop, op);
	return 0;
}

/* An idle read or write without a pool, and no flag: what evq_op_submit
 * fills on io_uring itself, and takes on the emulation's short way. The
 * op's code, state and flags make one 32-bit word (evq__op_word), and
 * READ and WRITE differ in the low bit only, so that is one mask and
 * compare. */
#define PLAIN_RW_MASK (0xfeu | 0xffu << 8 | (uint32_t)EVQ__OPF_POOL << 16)
_Static_assert((EVQ_OP_READ & 1) == 0 && EVQ_OP_WRITE == EVQ_OP_READ + 1,
	       "READ and WRITE differ in the low bit");

/* evq_op_submit's short way on a backend whose ops the core emulates
 * (loop->emul_open: epoll, poll, aio) for a plain read or write
 * (PLAIN_RW_MASK, at the current position) with no chain open: what
 * submit_common and submit_core do for it, without their tests for what
 * it cannot be. A write is counted off the list and queued; a read takes
 * over the registration the op before it on fd left (submit_core), with
 * the callback evq__emul_wait_cb gives it (wait_cb), unless an op on fd
 * is queued before it. */
static inline __attribute__((always_inline)) int
submit_emul(struct evq_loop *loop, struct evq_op *op, evq_op_cb cb,
	    uint32_t w, evq_io_cb wait_cb)
{
	op->loop = loop;
	op->cb = cb;
	op->link = NULL;
	op->cflags = 0;
	if (!(w & 1) && evq__io_can_take_over(loop, op->fd, EVQ_READ) &&
	    (!loop->sq_head || !queued_on(loop, op->fd))) {
		take_over_read(loop, op, wait_cb);
		return 0;
	}
	op->flags = 0;
	inflight_count(loop, op);
	sq_link(loop, op);	/* (no uring_open on the emulation) */
	return 0;
}

/* evq_op_submit but for io_uring's inline path, with op, loop and cb
 * given: the common submission (no flag, no pool, no chain open, an idle
 * op of a known kind on a loop not being freed), or the slow road. Out
 * of line, so that the inline path needs no frame. */
static __attribute__((noinline)) int
submit_common(struct evq_loop *loop, struct evq_op *op, unsigned flags,
	      evq_op_cb cb)
{
	if (evq__unlikely((flags | (op->flags & EVQ__OPF_POOL) | op->state |
			   loop->freeing | (uintptr_t)loop->chain_tail) != 0) ||
	    evq__unlikely((unsigned)(op->code - 1) >= EVQ_OP__COUNT - 1))
		return submit_slow(loop, op, flags, cb);

	op->loop = loop;
	op->cb = cb;
	op->link = NULL;
	op->cflags = 0;
	op->flags = 0;
	/* On a backend that runs every op, the op of a running loop takes
	 * its SQE now instead of at the next iteration's start. That is
	 * still only queuing (the kernel takes it at the next wait, as it
	 * would have), in the same order (nothing is queued before it), and
	 * a start's error is reported, never called back from here. The
	 * backend takes it only when that needs no syscall (a full SQ would
	 * be entered, and reaped: readiness taken from the kernel inside a
	 * callback could outlive the iteration, and be reported after the
	 * user closed the fd). Only in a running loop, whose thread is the
	 * ring's (backend_uring.c, note n). Cancels and closes always start
	 * with their batch; so do a splice (a -EAGAIN hands it to the
	 * emulation) and a send_zc (a result, then a notification): a
	 * cancel or close must find those on the in-flight list. */
	if (evq__likely(loop->running) && !loop->sq_head &&
	    loop->backend->op_queue &&
	    !((1u << op->code) & (1u << EVQ_OP_CANCEL | 1u << EVQ_OP_CLOSE |
				  1u << EVQ_OP_SPLICE | 1u << EVQ_OP_SEND_ZC)))
		return submit_kernel(loop, op);
	return submit_core(loop, op);
}

/* evq_op_submit past io_uring's inline path: the emulation's short way
 * (submit_emul), or submit_common. Out of line, as submit_common, so
 * that io_uring's inline path keeps its code as it was. */
static __attribute__((noinline)) int
submit_short(struct evq_loop *loop, struct evq_op *op, unsigned flags,
	     evq_op_cb cb)
{
	evq_io_cb wait_cb = loop->emul_open;

	if (wait_cb) {
		uint32_t w = evq__op_word(op);

		if (((w & PLAIN_RW_MASK) | flags) == EVQ_OP_READ &&
		    !loop->chain_tail && op->u.rw.off == EVQ_OFFSET_CURRENT)
			return submit_emul(loop, op, cb, w, wait_cb);
	}
	return submit_common(loop, op, flags, cb);
}

int evq_op_submit(struct evq_loop *loop, struct evq_op *op, unsigned flags,
		  evq_op_cb cb)
{
	if (evq__unlikely(!op))
		return -EINVAL;
	if (evq__unlikely(!loop) || evq__unlikely(!cb))
		return submit_slow(loop, op, flags, cb);
#if EVQ_HAVE_URING
	/* On io_uring, a plain read or write of a running loop (so not one
	 * being freed) with nothing queued before it (loop->uring_open):
	 * its SQE is taken and filled here, as submit_kernel would have the
	 * backend do (the backend's pending() says it waits for the next
	 * enter). */
	if (loop->uring_open != NULL) {
		uint32_t w = evq__op_word(op);

		if (((w & PLAIN_RW_MASK) | flags) == EVQ_OP_READ &&
		    evq__uring_sq_rw(loop->uring_open, op, (uint8_t)w)) {
			op->loop = loop;
			op->cb = cb;
			op->link = NULL;
			/* cflags is only read after a report that sets it (a
			 * parked result, the emulation's pool ids) */
			op->state = EVQ__OP_KERNEL;
			op->flags = 0;
			inflight_count(loop, op);
			return 0;
		}
	}
#endif
	return submit_short(loop, op, flags, cb);
}

int evq_op_is_active(const struct evq_op *op)
{
	return op && op->state != EVQ__OP_IDLE;
}

unsigned evq_loop_ops(const struct evq_loop *loop)
{
	return loop->nops;
}

/* ops.h, evq__ops_start_lone: the lone write did not complete as it
 * started. Waiting in the core (readiness, the pool), it joins the list,
 * where a cancel or a close finds it. */
void evq__ops_lone_waits(struct evq_loop *loop, struct evq_op *op)
{
	if (inflight_off(op) && op->state != EVQ__OP_DONE)
		inflight_link(loop, op);
}

/* Start every op submitted before this point (ops submitted by callbacks
 * from here on wait for the next iteration). A chain ends here: a LINK on
 * the last op submitted before an iteration links to nothing. */
void evq__ops_start_queued(struct evq_loop *loop)
{
	struct evq_op *op;

	/* Also when nothing is queued: the tail may have been started early
	 * by its chain (chain_continue) and still be running. */
	loop->chain_tail = NULL;
	if (!loop->sq_head) {
		evq__ops_open(loop);
		return;
	}
	loop->batch_head = loop->sq_head;
	loop->sq_head = loop->sq_tail = NULL;
	while ((op = loop->batch_head)) {
		loop->batch_head = op->qnext;
		op->qnext = NULL;
		if (evq__unlikely(op->flags &
				  (EVQ__OPF_PARKED | EVQ__OPF_TIMED))) {
			if (op->flags & EVQ__OPF_TIMED) {
				lt_arm(loop, op);
				op_start(loop, op);
				continue;
			}
			op->flags &= (uint16_t)~EVQ__OPF_PARKED;
			evq__report(loop, op, op->res, op->cflags);
		} else {
			op_start(loop, op);
		}
	}
	evq__ops_open(loop);
}

/* ------------------------------------------------------------------------
 * Cancellation
 * ------------------------------------------------------------------------ */

/* Cancel one op of this loop that the core holds or emulates: 0 (its
 * -ECANCELED is reported now), -EALREADY (a pool thread runs it, or its
 * last result is reported already), or 1: the backend runs it (only a
 * cancel the backend runs can reach it). */
static int cancel_one(struct evq_loop *loop, struct evq_op *t)
{
	int r;

	if (evq__unlikely(t->code == EVQ_OP_LINK_TIMEOUT) &&
	    (t->state == EVQ__OP_WAIT_TIMER || t->state == EVQ__OP_HELD)) {
		/* A link timeout: its target goes on without it, followed
		 * by what followed the timeout. */
		t->u.lt.target->link = lt_end(loop, t, -ECANCELED);
		return 0;
	}
	switch (t->state) {
	case EVQ__OP_QUEUED:
		if (!list_remove(&loop->sq_head, &loop->sq_tail, t) &&
		    !list_remove(&loop->batch_head, NULL, t))
			return -ENOENT;
		break;
	case EVQ__OP_HELD:
		for (struct evq_op *p = loop->ops_head; p; p = p->next) {
			if (p->link == t) {
				p->link = NULL;
				break;
			}
		}
		break;
	case EVQ__OP_NATIVE:
	case EVQ__OP_KERNEL:
		return native(loop) ? 1 : -EALREADY;
	case EVQ__OP_IDLE:
		return -ENOENT;
	default:
		r = evq__emul_cancel(loop, t);
		if (r < 0)
			return r;
		break;
	}
	end(loop, t, -ECANCELED);
	return 0;
}

static bool has_fd(const struct evq_op *op)
{
	switch (op->code) {
	case EVQ_OP_NOP:
	case EVQ_OP_OPENAT:
	case EVQ_OP_STATX:
	case EVQ_OP_TIMEOUT:
	case EVQ_OP_CANCEL:
	case EVQ_OP_SOCKET:
	case EVQ_OP_UNLINKAT:
	case EVQ_OP_RENAMEAT:
	case EVQ_OP_MKDIRAT:
	case EVQ_OP_LINK_TIMEOUT:
		return false;
	default:
		return true;
	}
}

/* Is op on fd? A splice is on both its fds. */
static inline bool on_fd(const struct evq_op *op, int fd)
{
	return op->fd == fd ||
	       (op->code == EVQ_OP_SPLICE && op->u.splice.fd_in == fd);
}

/* Cancel the ops on fd in one start queue that are off the list. */
static int cancel_queued_fd(struct evq_loop *loop, struct evq_op **head,
			    int fd, const struct evq_op *self)
{
	struct evq_op *o, *next;
	int n = 0;

	for (o = *head; o; o = next) {
		next = o->qnext;
		if (o != self && inflight_off(o) &&
		    o->state == EVQ__OP_QUEUED && has_fd(o) && on_fd(o, fd) &&
		    cancel_one(loop, o) == 0)
			n++;
	}
	return n;
}

/* Cancel every op on fd that the core can; returns how many were. A
 * splice is on both its fds. */
static int cancel_fd(struct evq_loop *loop, int fd, const struct evq_op *self)
{
	int n = 0;

	for (struct evq_op *o = loop->ops_head; o; o = loop->ops_cursor) {
		loop->ops_cursor = o->next;
		if (o != self && has_fd(o) && on_fd(o, fd) &&
		    cancel_one(loop, o) == 0)
			n++;
	}
	loop->ops_cursor = NULL;
	/* Queued ops off the list (inflight_link): the ones on the list
	 * were cancelled above, and leave the queues there. */
	n += cancel_queued_fd(loop, &loop->batch_head, fd, self);
	n += cancel_queued_fd(loop, &loop->sq_head, fd, self);
	return n;
}

/* Is t one of this loop's ops in flight? Found by address, without
 * reading t: an op that completed may have been freed by its callback.
 * A walk of the list, as cancel_fd's: cancels are rare. */
static bool in_flight(const struct evq_loop *loop, const struct evq_op *t)
{
	for (const struct evq_op *o = loop->ops_head; o; o = o->next)
		if (o == t)
			return true;
	/* Off the list (inflight_link): queued, or finished with its
	 * result on the road. */
	for (const struct evq_op *o = loop->sq_head; o; o = o->qnext)
		if (o == t)
			return true;
	for (const struct evq_op *o = loop->batch_head; o; o = o->qnext)
		if (o == t)
			return true;
	for (int i = 0; i < loop->ndone; i++)
		if (loop->done[i].op == t)
			return true;
	return false;
}

/* The result of a cancel op that the backend need not see. */
#define TO_BACKEND INT_MIN

/* A cancel op: what the core can do itself, it does; a target the
 * backend runs is the backend's to cancel. Returns the cancel's result,
 * or TO_BACKEND: hand the cancel to the backend. */
static int do_cancel(struct evq_loop *loop, struct evq_op *op)
{
	struct evq_op *t = op->u.cancel.target;
	int n;

	if (!t) {
		n = cancel_fd(loop, op->u.cancel.fd, op);
		if (native(loop)) {
			op->res = n;	/* added to the kernel's count */
			return TO_BACKEND;
		}
		return n > 0 ? n : -ENOENT;
	}
	if (t == op)
		return -ENOENT;
	if (!in_flight(loop, t))	/* maybe one the kernel has, off the
					 * list (EVQ__OP_KERNEL) */
		return native(loop) ? TO_BACKEND : -ENOENT;
	n = cancel_one(loop, t);
	return n == 1 ? TO_BACKEND : n;
}

/* ------------------------------------------------------------------------
 * Starting
 * ------------------------------------------------------------------------ */

/* Hand op to the backend; its results come back on the road. */
static inline __attribute__((always_inline)) void
backend_start(struct evq_loop *loop, struct evq_op *op)
{
	int r;

	op->state = EVQ__OP_NATIVE;
	if (cancel_of_one(op))
		cancels_add(loop, op);
	r = loop->backend->op_start(loop, op);
	loop->handed_at = loop->waits + 1;
	if (evq__unlikely(r > 0)) {	/* one test for 0, the common r */
		if (r == EVQ__SINGLE) {
			op->flags |= EVQ__OPF_REARM;
		} else {
			/* EVQ__EMULATE: an op of issue 14 the kernel lacks
			 * (uring probes them): the emulation's, as on the
			 * other backends. Waiting in the core, it joins the
			 * list, where a cancel or a close finds it. */
			if (inflight_off(op))
				inflight_link(loop, op);
			op->state = EVQ__OP_QUEUED;
			evq__emul_start(loop, op);
		}
	} else if (r < 0) {
		/* A cancel_fd the kernel cannot do still counts what the
		 * core cancelled. */
		if (op->code == EVQ_OP_CANCEL && !op->u.cancel.target &&
		    op->res > 0)
			r = op->res;
		end(loop, op, r);
	}
}

static inline __attribute__((always_inline)) void
op_start(struct evq_loop *loop, struct evq_op *op)
{
	int r;

	switch (op->code) {
	case EVQ_OP_CANCEL:
		r = do_cancel(loop, op);
		if (r != TO_BACKEND) {
			end(loop, op, r);
			return;
		}
		backend_start(loop, op);
		return;
	case EVQ_OP_CLOSE:
		/* End what this loop has on fd before the number is freed
		 * and can be reused: the ops the core holds or emulates,
		 * the watchers, the registration and what goes with it. The
		 * backend cancels its own ops on fd with the close. */
		cancel_fd(loop, op->fd, op);
		evq__fd_end(loop, op->fd);
		break;
	default:
		break;
	}
	if (native(loop)) {
		backend_start(loop, op);
		return;
	}
	if (loop->backend->op_start) {
		/* Offered to the backend first (aio: O_DIRECT transfers). */
		op->state = EVQ__OP_NATIVE;
		r = loop->backend->op_start(loop, op);
		if (r == 0) {
			loop->handed_at = loop->waits + 1;
			if (inflight_off(op))	/* the core cancels it */
				inflight_link(loop, op);
			return;
		}
		op->state = EVQ__OP_QUEUED;
		if (r < 0) {
			end(loop, op, r);
			return;
		}
		/* EVQ__EMULATE: not one the backend runs itself. */
	}
	evq__emul_start(loop, op);
	/* Waiting in the core (readiness, a timer, the pool, a close's
	 * wait): it joins the list, where a cancel or a close finds it. */
	if (inflight_off(op) && op->state != EVQ__OP_DONE)
		inflight_link(loop, op);
}

/* ------------------------------------------------------------------------
 * Loop teardown
 * ------------------------------------------------------------------------ */

/* For evq_loop_free: deliver what is on the road, and what the start
 * queue holds: a result parked there without memory (delivered straight,
 * since the road may still have no room), or an op never started
 * (-ECANCELED). */
static void free_drain(struct evq_loop *loop)
{
	struct evq_op *op;

	evq__ops_deliver(loop);
	while ((op = loop->sq_head)) {
		loop->sq_head = op->qnext;
		if (!loop->sq_head)
			loop->sq_tail = NULL;
		op->qnext = NULL;
		if (op->flags & EVQ__OPF_PARKED) {
			op->flags &= (uint16_t)~EVQ__OPF_PARKED;
			complete(loop, op, op->res, op->cflags);
		} else {
			op->state = EVQ__OP_DONE;
			complete(loop, op, -ECANCELED, 0);
		}
		evq__ops_deliver(loop);
	}
}

/* For evq_loop_free: every op in flight completes exactly once before the
 * loop goes. Ops not started, waiting, or queued for the pool complete
 * with -ECANCELED; ops a pool thread or the kernel is running are waited
 * for and complete with their own result (an fd from openat is the
 * caller's to close, not lost). */
void evq__ops_free_all(struct evq_loop *loop)
{
	struct evq_op *op;

	loop->freeing = true;
	/* Ops queued but not started never start. */
	free_drain(loop);
	if (loop->backend->op_drain)
		loop->backend->op_drain(loop);
	evq__tpool_shutdown(loop);
	/* Close ops still waiting (a fork child's pool jobs never finish
	 * here) close now: the fd must not outlive its close op. */
	evq__emul_close_ready(loop, true);
	free_drain(loop);
	/* Every target has reported by now; a cancel still held (its
	 * target's CQE never came) is not kept back. */
	for (struct evq_op *c = loop->cancels, *n; c; c = n) {
		n = c->wait.native.cancel_next;
		if (c->flags & EVQ__OPF_HELD) {
			c->flags &= (uint16_t)~EVQ__OPF_HELD;
			complete(loop, c, c->res, 0);
			n = loop->cancels;	/* list changed */
		}
	}
	/* Oldest first; an op held in a chain goes with its chain, in order,
	 * when the op it waits for is cancelled. */
	while (loop->ops_head) {
		op = loop->ops_head;
		while (op && op->state == EVQ__OP_HELD)
			op = op->next;
		if (!op)
			op = loop->ops_head;	/* cannot happen: a chain
						 * has a head in flight */
		if (cancel_one(loop, op) != 0) {
			/* Nothing can stop it any more (the backend is
			 * drained): it must not stay on the list. */
			end(loop, op, -ECANCELED);
		}
		free_drain(loop);
	}
}
