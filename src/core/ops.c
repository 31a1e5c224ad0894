/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the completion API: submission, chains, cancellation, delivery,
 * and the emulation of operations on backends without native completions.
 *
 * Life of an op:
 *   evq_op_submit()        IDLE -> QUEUED (sq), or HELD behind a LINK op
 *   next iteration         QUEUED -> started: native (backend->op_start),
 *                          or emulated: tried at once, then WAIT_IO,
 *                          WAIT_TIMER or POOL_QUEUED, or finished
 *   completion             callback; without EVQ_OP_F_MORE: -> IDLE
 *
 * Emulation. Sockets and pipes: try the syscall in its non-blocking form
 * (MSG_DONTWAIT, RWF_NOWAIT), whatever the fd's own O_NONBLOCK says, and
 * on EAGAIN wait for readiness with an internal fd watcher embedded in the
 * op, then try again. Regular files and the ops with no readiness go to
 * the loop's thread pool (threadpool.c). Everything an op needs lives in
 * the op: no allocation per operation.
 *
 * Chains are the core's business on emulating backends (op->link holds the
 * rest of the chain); native backends pass EVQ_OP_LINK on to the kernel.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* How many results a multishot op takes from one readiness report before
 * letting other fds have their turn (level-triggered: it comes back). */
#define MULTISHOT_BURST 16
/* Chain starts nested inside completions before the rest waits for the
 * next iteration (keeps the stack bounded for long chains). */
#define MAX_START_DEPTH 8

static void op_start(struct evq_loop *loop, struct evq_op *op);
static bool has_fd(const struct evq_op *op);
static void close_ready(struct evq_loop *loop, int fd);
static void close_go(struct evq_loop *loop, struct evq_op *op);
static void native_start(struct evq_loop *loop, struct evq_op *op);

/* loop->chain_tail names the last op submitted this iteration when it had
 * EVQ_OP_LINK, and only while that op is in flight: an op that ends (a
 * cancel, a close op, a chain broken before it) may be freed or reused at
 * once, so complete() takes it off. The chain still goes on as it would
 * have: the next op submitted runs on its own after a success, and after
 * a failure completes with -ECANCELED, as on io_uring, where both SQEs go
 * in one submission. chain_broken stands for "the tail failed". */
static struct evq_op chain_broken;

/* A completion-native backend that runs every op and chain in the kernel
 * (uring). A backend with op_start but without EVQ__CAP_KERNEL_OPS takes
 * some ops (it says EVQ__EMULATE for the others), and the core keeps the
 * chains, the bookkeeping, and the emulation of the rest. */
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

/* ------------------------------------------------------------------------
 * Bookkeeping: the in-flight list and the queues
 * ------------------------------------------------------------------------ */

/* The in-flight list is in submission order, oldest first. */
static void inflight_add(struct evq_loop *loop, struct evq_op *op)
{
	op->next = NULL;
	op->prev = loop->ops_tail;
	if (loop->ops_tail)
		loop->ops_tail->next = op;
	else
		loop->ops_head = op;
	loop->ops_tail = op;
	loop->nops++;
	loop->active++;
}

static void inflight_remove(struct evq_loop *loop, struct evq_op *op)
{
	if (loop->ops_cursor == op)
		loop->ops_cursor = op->next;
	if (op->prev)
		op->prev->next = op->next;
	else
		loop->ops_head = op->next;
	if (op->next)
		op->next->prev = op->prev;
	else
		loop->ops_tail = op->prev;
	op->next = op->prev = NULL;
	loop->nops--;
	loop->active--;
}

static void sq_append(struct evq_loop *loop, struct evq_op *op)
{
	op->qnext = NULL;
	op->state = EVQ__OP_QUEUED;
	if (loop->sq_tail)
		loop->sq_tail->qnext = op;
	else
		loop->sq_head = op;
	loop->sq_tail = op;
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

/* Park a result to be delivered at the start of the next iteration: used
 * where a callback must not run now (inside a user's API call). */
static void park(struct evq_loop *loop, struct evq_op *op, int res)
{
	op->res = res;
	op->cflags = 0;
	op->state = EVQ__OP_DONE;
	op->qnext = NULL;
	if (loop->cq_tail)
		loop->cq_tail->qnext = op;
	else
		loop->cq_head = op;
	loop->cq_tail = op;
}

/* ------------------------------------------------------------------------
 * Completion and chains
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
	case EVQ_OP_READV:
	case EVQ_OP_WRITEV:
		/* the kernel moves at most EVQ_OP_LEN_MAX in one call */
		return (size_t)res == clamp_len(iov_total(op->u.vec.iov,
							  op->u.vec.cnt));
	default:	/* recvmsg/sendmsg included: any count, as io_uring */
		return true;
	}
}

static void complete(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned cflags);

/* The op before `next` in its chain finished; go on or break the chain. */
static void chain_continue(struct evq_loop *loop, struct evq_op *next,
			   bool ok)
{
	if (ok && !loop->freeing) {
		if (loop->start_depth >= MAX_START_DEPTH) {
			sq_append(loop, next);
			return;
		}
		loop->start_depth++;
		op_start(loop, next);
		loop->start_depth--;
		return;
	}
	while (next) {
		struct evq_op *after = next->link;

		next->link = NULL;
		complete(loop, next, -ECANCELED, 0);
		next = after;
	}
}

/* Deliver a result of a multishot op that stays armed. */
static void deliver_more(struct evq_loop *loop, struct evq_op *op, int res,
			 unsigned cflags)
{
	if (cflags & EVQ_OP_F_BUFFER)
		op->u.pool.pool->out[EVQ_OP_F_BUFID(cflags)] = 1;
	loop->callbacks++;
	op->cb(loop, op, res, cflags | EVQ_OP_F_MORE);
}

/* ------------------------------------------------------------------------
 * The order of a cancel and its target
 *
 * On every backend the target's last callback runs before the callback of
 * the cancel that ended it, so the cancel's callback may free the target.
 * The emulation cancels synchronously and gets that order for free. On
 * io_uring the kernel may post the cancel's CQE first: the core keeps the
 * native cancels of one op that are in flight on loop->cancels (linked
 * through wait.native.cancel_*: the backend keeps its own state in
 * wait.native.backend and its chains in next/prev), marks those
 * whose target's last call has run, and holds back a successful cancel's
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

/* Deliver one result. Without EVQ_OP_F_MORE this is the op's last: it
 * leaves the in-flight list before its callback runs, so the callback may
 * submit it again or free it. */
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
		op->state = EVQ__OP_IDLE;
		if (loop->chain_tail == op)
			loop->chain_tail = op_success(op, res) ? NULL
							       : &chain_broken;
		if (native(loop)) {
			loop->nops--;
			loop->active--;
			if (cancel_of_one(op))
				cancels_remove(loop, op);
			else if (loop->cancels)
				held = cancels_target_done(loop, op);
		} else {
			inflight_remove(loop, op);
		}
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

/* Native backends: dispatch what the last wait reaped. A callback that
 * submits may make the backend reap more (a full SQ is submitted at once,
 * and the CQ drained if the kernel asks): those are appended, and
 * dispatched here too, in order. */
void evq__ops_dispatch_done(struct evq_loop *loop)
{
	for (int i = 0; i < loop->ndone; i++) {
		struct evq__done d = loop->done[i];	/* may move */

		if (d.flags & EVQ_OP_F_BUFFER)
			d.op->u.pool.pool->available--;
		if (evq__unlikely(cancel_of_one(d.op)) && d.res == 0 &&
		    !(d.flags & EVQ_OP_F_MORE) &&
		    !(d.op->flags & EVQ__OPF_TDONE)) {
			/* Found and cancelled, but the target's last CQE
			 * is still to come: delivered after it. */
			d.op->res = d.res;
			d.op->flags |= EVQ__OPF_HELD;
			continue;
		}
		complete(loop, d.op, d.res, d.flags);
	}
	loop->ndone = 0;
}

/* ------------------------------------------------------------------------
 * Submission
 * ------------------------------------------------------------------------ */

int evq_op_submit(struct evq_loop *loop, struct evq_op *op, unsigned flags,
		  evq_op_cb cb)
{
	if (!loop || !op || !cb || op->code == EVQ_OP_NONE ||
	    op->code >= EVQ_OP__COUNT ||
	    (flags & ~(EVQ_OP_LINK | EVQ_OP_MULTISHOT)))
		return -EINVAL;
	if ((flags & EVQ_OP_MULTISHOT) &&
	    ((flags & EVQ_OP_LINK) ||
	     !(op->code == EVQ_OP_ACCEPT ||
	       (op->code == EVQ_OP_RECV && (op->flags & EVQ__OPF_POOL)))))
		return -EINVAL;
	if ((op->flags & EVQ__OPF_POOL) &&
	    (!op->u.pool.pool || op->u.pool.pool->loop != loop))
		return -EINVAL;
	if (op->state != EVQ__OP_IDLE)
		return -EBUSY;
	if (loop->freeing)
		return -ESHUTDOWN;

	op->loop = loop;
	op->cb = cb;
	op->flags = (uint16_t)((op->flags & EVQ__OPF_POOL) | flags);
	op->link = NULL;
	op->cflags = 0;
	if (op->flags & EVQ__OPF_POOL)
		op->u.pool.pool->users++;

	if (native(loop)) {
		/* Straight into the kernel's queue: SQEs keep submission
		 * order, which is all a chain needs, and the backend submits
		 * them with its next wait. The kernel keeps track of native
		 * ops (cancel, teardown), so they are only counted here. */
		loop->nops++;
		loop->active++;
		if (cancel_of_one(op))
			cancels_add(loop, op);
		native_start(loop, op);
		return 0;
	}
	inflight_add(loop, op);
	if (loop->chain_tail == &chain_broken) {
		/* Delivered next iteration: never inside this call. An op
		 * with LINK keeps the chain broken for the next one. */
		park(loop, op, -ECANCELED);
		if (!(flags & EVQ_OP_LINK))
			loop->chain_tail = NULL;
		return 0;
	}
	if (loop->chain_tail) {
		loop->chain_tail->link = op;
		op->state = EVQ__OP_HELD;
	} else {
		sq_append(loop, op);
	}
	loop->chain_tail = (flags & EVQ_OP_LINK) ? op : NULL;
	return 0;
}

int evq_op_is_active(const struct evq_op *op)
{
	return op && op->state != EVQ__OP_IDLE;
}

unsigned evq_loop_ops(const struct evq_loop *loop)
{
	return loop->nops;
}

/* Start every op submitted before this point (ops submitted by callbacks
 * from here on wait for the next iteration). A chain ends here: a LINK on
 * the last op submitted before an iteration links to nothing. */
void evq__ops_start_queued(struct evq_loop *loop)
{
	struct evq_op *op;

	evq__ops_deliver(loop);
	/* Also when nothing is queued: the tail may have been started early
	 * by its chain (chain_continue) and still be running. */
	loop->chain_tail = NULL;
	if (!loop->sq_head)
		return;
	loop->batch_head = loop->sq_head;
	loop->sq_head = loop->sq_tail = NULL;
	while ((op = loop->batch_head)) {
		loop->batch_head = op->qnext;
		op->qnext = NULL;
		op_start(loop, op);
	}
}

/* Deliver results parked by park(). */
void evq__ops_deliver(struct evq_loop *loop)
{
	struct evq_op *op = loop->cq_head;

	loop->cq_head = loop->cq_tail = NULL;
	while (op) {
		struct evq_op *next = op->qnext;

		op->qnext = NULL;
		complete(loop, op, op->res, op->cflags);
		op = next;
	}
}

/* ------------------------------------------------------------------------
 * Emulation: trying the syscall
 * ------------------------------------------------------------------------ */

/* What a try says next: a result, or where to wait. */
enum { TRY_DONE, TRY_WAIT_READ, TRY_WAIT_WRITE, TRY_POOL };

/* EAGAIN from a RWF_NOWAIT transfer: readiness for what has it (pipes,
 * sockets, ttys), the thread pool for files, which are always "ready" but
 * may block. */
static int eagain_route(int fd, unsigned wait)
{
	struct stat sb;

	if (fstat(fd, &sb) == 0 && (S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode)))
		return TRY_POOL;
	return (int)wait;
}

static int try_rw(struct evq_op *op, int *res)
{
	bool rd = op->code == EVQ_OP_READ || op->code == EVQ_OP_READV;
	const struct iovec *iov;
	struct iovec one;
	int cnt;
	off_t off;
	ssize_t r;

	if (op->flags & EVQ__OPF_POOL) {
		int id = evq__pool_take(op->u.pool.pool);

		if (id < 0) {
			*res = -ENOBUFS;
			return TRY_DONE;
		}
		op->cflags = (unsigned)id << 16;
		one.iov_base = evq_pool_buf(op->u.pool.pool, (unsigned)id);
		one.iov_len = op->u.pool.pool->size;
		iov = &one;
		cnt = 1;
		off = (off_t)op->u.pool.off;
	} else if (op->code == EVQ_OP_READ || op->code == EVQ_OP_WRITE) {
		one.iov_base = op->u.rw.buf;
		one.iov_len = op->u.rw.len;
		iov = &one;
		cnt = 1;
		off = (off_t)op->u.rw.off;
	} else {
		iov = op->u.vec.iov;
		cnt = op->u.vec.cnt;
		off = (off_t)op->u.vec.off;
	}

	/* RWF_NOWAIT does not stop an O_DIRECT read from waiting for the
	 * device (seen on 6.18: ~1.7 ms per MiB inside the loop), so such
	 * files go straight to the pool. Only positioned transfers can be on
	 * a file; the check costs one fcntl there. */
	if (off != (off_t)-1) {
		int fl = fcntl(op->fd, F_GETFL);

		if (fl >= 0 && (fl & O_DIRECT)) {
			if (op->flags & EVQ__OPF_POOL) {
				evq__pool_put(op->u.pool.pool,
					      op->cflags >> 16);
				op->cflags = 0;
			}
			return TRY_POOL;
		}
	}
	r = rd ? preadv2(op->fd, iov, cnt, off, RWF_NOWAIT)
	       : pwritev2(op->fd, iov, cnt, off, RWF_NOWAIT);
	if (r >= 0) {
		*res = r > 0x7fffffff ? 0x7fffffff : (int)r;
		if (op->flags & EVQ__OPF_POOL) {
			if (r > 0) {
				op->cflags |= EVQ_OP_F_BUFFER;
			} else {
				evq__pool_put(op->u.pool.pool,
					      op->cflags >> 16);
				op->cflags = 0;
			}
		}
		return TRY_DONE;
	}
	*res = -errno;
	if (op->flags & EVQ__OPF_POOL) {
		/* Keep no buffer while waiting: it may be needed elsewhere.
		 * The pool thread path picks it again. */
		evq__pool_put(op->u.pool.pool, op->cflags >> 16);
		op->cflags = 0;
	}
	if (errno == EAGAIN)
		return eagain_route(op->fd, rd ? TRY_WAIT_READ : TRY_WAIT_WRITE);
	if (errno == EOPNOTSUPP)	/* no RWF_NOWAIT for this file */
		return TRY_POOL;
	return TRY_DONE;
}

/* A linked recv or send on a stream waits for all its bytes, as
 * MSG_WAITALL does on io_uring (backend_uring.c, note g): it completes
 * whole, or short only at EOF or an error, which breaks the chain. The
 * progress is kept in op->cflags while the op waits. */
static int try_sock_all(struct evq_op *op, int *res)
{
	bool rd = op->code == EVQ_OP_RECV;
	size_t done = op->cflags;
	ssize_t r;

	while (done < op->u.sr.len) {
		char *p = (char *)op->u.sr.buf + done;

		r = rd ? recv(op->fd, p, op->u.sr.len - done,
			      op->u.sr.flags | MSG_DONTWAIT)
		       : send(op->fd, p, op->u.sr.len - done,
			      op->u.sr.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EAGAIN) {
			op->cflags = (unsigned)done;
			return rd ? TRY_WAIT_READ : TRY_WAIT_WRITE;
		}
		if (r < 0 && done == 0) {
			*res = -errno;
			return TRY_DONE;
		}
		break;	/* EOF, or an error after some bytes: short */
	}
	op->cflags = 0;
	*res = done > 0x7fffffff ? 0x7fffffff : (int)done;
	return TRY_DONE;
}

static int try_sock(struct evq_op *op, int *res)
{
	ssize_t r;
	bool rd;

	if ((op->flags & EVQ_OP_LINK) && !(op->flags & EVQ__OPF_POOL) &&
	    (op->code == EVQ_OP_RECV || op->code == EVQ_OP_SEND) &&
	    op->u.sr.len <= 0x7fffffff)
		return try_sock_all(op, res);

	switch (op->code) {
	case EVQ_OP_RECV:
		rd = true;
		if (op->flags & EVQ__OPF_POOL) {
			struct evq_pool *pool = op->u.pool.pool;
			int id = evq__pool_take(pool);

			if (id < 0) {
				*res = -ENOBUFS;
				return TRY_DONE;
			}
			r = recv(op->fd, evq_pool_buf(pool, (unsigned)id),
				 pool->size, op->u.pool.flags | MSG_DONTWAIT);
			if (r > 0)
				op->cflags = EVQ_OP_F_BUFFER | (unsigned)id << 16;
			else
				evq__pool_put(pool, (unsigned)id);
		} else {
			r = recv(op->fd, op->u.sr.buf, op->u.sr.len,
				 op->u.sr.flags | MSG_DONTWAIT);
		}
		break;
	case EVQ_OP_SEND:
		rd = false;
		r = send(op->fd, op->u.sr.buf, op->u.sr.len,
			 op->u.sr.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	case EVQ_OP_RECVMSG:
		rd = true;
		r = recvmsg(op->fd, op->u.msg.msg,
			    op->u.msg.flags | MSG_DONTWAIT);
		break;
	default: /* EVQ_OP_SENDMSG */
		rd = false;
		r = sendmsg(op->fd, op->u.msg.msg,
			    op->u.msg.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	}
	if (r >= 0) {
		*res = r > 0x7fffffff ? 0x7fffffff : (int)r;
		return TRY_DONE;
	}
	*res = -errno;
	if (errno == EAGAIN)
		return rd ? TRY_WAIT_READ : TRY_WAIT_WRITE;
	return TRY_DONE;
}

/* accept4 has no per-call non-blocking flag. On a blocking listening
 * socket evq waits for readiness first, so the call finds a connection
 * waiting (unless another process takes it first: then it blocks, which
 * is why listening sockets should be O_NONBLOCK when shared). */
static int try_accept(struct evq_op *op, int *res, bool ready)
{
	int fd;

	if (!ready) {
		int fl = fcntl(op->fd, F_GETFL);

		if (fl < 0) {
			*res = -errno;
			return TRY_DONE;
		}
		if (!(fl & O_NONBLOCK)) {
			op->flags |= EVQ__OPF_BLOCKING;
			return TRY_WAIT_READ;
		}
	}
	fd = accept4(op->fd, op->u.acc.addr, op->u.acc.addrlen,
		     op->u.acc.flags);
	if (fd >= 0) {
		*res = fd;
		return TRY_DONE;
	}
	*res = -errno;
	if (errno == EAGAIN || errno == ECONNABORTED)
		return TRY_WAIT_READ;
	return TRY_DONE;
}

/* connect: a non-blocking socket connects in the loop (EINPROGRESS, then
 * writable, then SO_ERROR); a blocking one would block, so it connects in
 * the thread pool. */
static int try_connect(struct evq_op *op, int *res, bool ready)
{
	socklen_t len = sizeof(*res);
	int fl, err = 0;

	if (ready) {
		if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		*res = -err;
		return TRY_DONE;
	}
	fl = fcntl(op->fd, F_GETFL);
	if (fl < 0) {
		*res = -errno;
		return TRY_DONE;
	}
	if (!(fl & O_NONBLOCK))
		return TRY_POOL;
	if (connect(op->fd, op->u.conn.addr, op->u.conn.len) == 0) {
		*res = 0;
		return TRY_DONE;
	}
	*res = -errno;
	if (errno == EINPROGRESS || errno == EAGAIN)
		return TRY_WAIT_WRITE;
	return TRY_DONE;
}

static int try_op(struct evq_op *op, int *res, bool ready)
{
	switch (op->code) {
	case EVQ_OP_READ:
	case EVQ_OP_WRITE:
	case EVQ_OP_READV:
	case EVQ_OP_WRITEV:
		return try_rw(op, res);
	case EVQ_OP_RECV:
	case EVQ_OP_SEND:
	case EVQ_OP_RECVMSG:
	case EVQ_OP_SENDMSG:
		return try_sock(op, res);
	case EVQ_OP_ACCEPT:
		return try_accept(op, res, ready);
	case EVQ_OP_CONNECT:
		return try_connect(op, res, ready);
	default:
		return TRY_POOL;
	}
}

/* ------------------------------------------------------------------------
 * Emulation: waiting
 * ------------------------------------------------------------------------ */

static void op_route(struct evq_loop *loop, struct evq_op *op, int how,
		     int res);

static bool multishot(const struct evq_op *op)
{
	return op->flags & EVQ_OP_MULTISHOT;
}

/* Is res a result after which a multishot op stays armed? Accept: any new
 * fd. recv: data (0 is EOF, the end). */
static bool more_ok(const struct evq_op *op, int res)
{
	return op->code == EVQ_OP_ACCEPT ? res >= 0 : res > 0;
}

/* Readiness arrived for a waiting op: try again. A multishot op takes up
 * to MULTISHOT_BURST results, then waits for the next report. */
static void op_io_cb(struct evq_loop *loop, struct evq_io *w, unsigned revents)
{
	struct evq_op *op = container_of(w, struct evq_op, wait.io);
	int res, how;

	(void)revents;
	for (int burst = 0; burst < MULTISHOT_BURST; burst++) {
		/* On a blocking fd only the first try is known not to
		 * block. */
		if (burst > 0 && (op->flags & EVQ__OPF_BLOCKING)) {
			how = TRY_DONE;
			break;
		}
		how = try_op(op, &res, true);
		if (how != TRY_DONE)
			break;
		if (multishot(op) && more_ok(op, res)) {
			/* Another result; the op stays armed. The callback
			 * may not end the op (only a cancel op can, and it
			 * runs at the next iteration). */
			unsigned cflags = op->cflags;

			op->cflags = 0;
			deliver_more(loop, op, res, cflags);
			if (op->state != EVQ__OP_WAIT_IO)
				return;
			/* A recv that did not fill its buffer has most
			 * likely drained the socket: trying again would
			 * only fetch EAGAIN (a syscall per request). The
			 * level-triggered watch brings it back if not. */
			if (op->code == EVQ_OP_RECV &&
			    (size_t)res < op->u.pool.pool->size)
				return;
			continue;
		}
		evq_io_stop(w);
		complete(loop, op, res, op->cflags);
		return;
	}
	if (how == TRY_WAIT_READ || how == TRY_WAIT_WRITE) {
		unsigned want = how == TRY_WAIT_READ ? EVQ_READ : EVQ_WRITE;

		if ((w->events & EVQ__IO_MASK) != want)
			evq_io_set(w, want);
		return;
	}
	/* burst used up: stay armed; or TRY_POOL */
	if (how == TRY_DONE)
		return;
	evq_io_stop(w);
	op_route(loop, op, how, res);
}

/* The emulated timeout op's timer does not count as a watcher of its own
 * (the op counts once): evq_timer_start/stop and firing adjust
 * loop->active, and these functions undo that. */
static void op_timer_cb(struct evq_loop *loop, struct evq_timer *t)
{
	struct evq_op *op = container_of(t, struct evq_op, wait.timer);

	loop->active++;	/* the firing took one off */
	complete(loop, op, -ETIME, 0);
}

/* Act on what a try said. */
static void op_route(struct evq_loop *loop, struct evq_op *op, int how,
		     int res)
{
	int r;

	switch (how) {
	case TRY_DONE:
		if (multishot(op) && more_ok(op, res)) {
			/* First result of a multishot op: deliver it and
			 * arm the op for the rest. */
			unsigned cflags = op->cflags;

			op->cflags = 0;
			op->state = EVQ__OP_WAIT_IO;
			op->wait.io = (struct evq_io){ 0 };
			r = evq__io_start_internal(loop, &op->wait.io, op->fd,
						   EVQ_READ, op_io_cb);
			if (r < 0) {
				/* Cannot stay armed: this result is the
				 * last one. */
				complete(loop, op, res, cflags);
				return;
			}
			op->wait.io.state |= EVQ__OPWAIT;
			deliver_more(loop, op, res, cflags);
			return;
		}
		complete(loop, op, res, op->cflags);
		return;
	case TRY_WAIT_READ:
	case TRY_WAIT_WRITE:
		op->state = EVQ__OP_WAIT_IO;
		op->wait.io = (struct evq_io){ 0 };
		r = evq__io_start_internal(loop, &op->wait.io, op->fd,
					   how == TRY_WAIT_READ ? EVQ_READ
								: EVQ_WRITE,
					   op_io_cb);
		if (r < 0) {
			complete(loop, op, r, 0);
			return;
		}
		op->wait.io.state |= EVQ__OPWAIT;
		return;
	default: /* TRY_POOL */
		if (op->flags & EVQ__OPF_POOL) {
			int id = evq__pool_take(op->u.pool.pool);

			if (id < 0) {
				complete(loop, op, -ENOBUFS, 0);
				return;
			}
			op->cflags = (unsigned)id << 16;
		}
		r = evq__tpool_submit(loop, op);
		if (r < 0) {
			if (op->flags & EVQ__OPF_POOL)
				evq__pool_put(op->u.pool.pool,
					      op->cflags >> 16);
			complete(loop, op, r, 0);
		}
		return;
	}
}

/* A pool thread finished op (or shutdown cancelled it). */
void evq__ops_pool_done(struct evq_loop *loop, struct evq_op *op)
{
	unsigned cflags = 0;
	int fd;

	if (op->flags & EVQ__OPF_POOL) {
		unsigned id = op->cflags >> 16;

		if (op->res > 0)
			cflags = EVQ_OP_F_BUFFER | id << 16;
		else
			evq__pool_put(op->u.pool.pool, id);
	}
	op->cflags = 0;
	fd = has_fd(op) ? op->fd : -1;
	complete(loop, op, op->res, cflags);	/* may free op */
	if (evq__unlikely(loop->close_waiters != NULL) && fd >= 0)
		close_ready(loop, fd);
}

/* The fd an op waited on was found closed behind the loop's back (its
 * watcher was stopped by the core): the op ends with -EBADF, delivered at
 * the next iteration since this may run inside a user's API call. */
void evq__ops_watch_killed(struct evq_loop *loop, struct evq_io *w)
{
	struct evq_op *op = container_of(w, struct evq_op, wait.io);

	park(loop, op, -EBADF);
}

/* ------------------------------------------------------------------------
 * Cancellation
 * ------------------------------------------------------------------------ */

/* Cancel one op of this loop: 0 (it completes with -ECANCELED now),
 * -ENOENT (not in flight) or -EALREADY (running, cannot be stopped). */
static int cancel_one(struct evq_loop *loop, struct evq_op *t)
{
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
	case EVQ__OP_WAIT_IO:
		evq_io_stop(&t->wait.io);
		break;
	case EVQ__OP_WAIT_TIMER:
		evq_timer_stop(&t->wait.timer);
		loop->active++;	/* see op_timer_cb */
		break;
	case EVQ__OP_POOL_QUEUED:
		if (!evq__tpool_remove(loop, t))
			return -EALREADY;
		if (t->flags & EVQ__OPF_POOL)
			evq__pool_put(t->u.pool.pool, t->cflags >> 16);
		break;
	case EVQ__OP_DONE:
	case EVQ__OP_NATIVE:
	case EVQ__OP_CLOSE_WAIT:
		return -EALREADY;
	default:
		return -ENOENT;
	}
	t->cflags = 0;
	complete(loop, t, -ECANCELED, 0);
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
		return false;
	default:
		return true;
	}
}

/* Cancel every op on fd; returns how many were cancelled. */
static int cancel_fd(struct evq_loop *loop, int fd, const struct evq_op *self)
{
	int n = 0;

	for (struct evq_op *o = loop->ops_head; o; o = loop->ops_cursor) {
		loop->ops_cursor = o->next;
		if (o != self && has_fd(o) && o->fd == fd &&
		    cancel_one(loop, o) == 0)
			n++;
	}
	loop->ops_cursor = NULL;
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
	return false;
}

static int do_cancel(struct evq_loop *loop, struct evq_op *op)
{
	struct evq_op *t = op->u.cancel.target;
	int n;

	if (!t) {
		n = cancel_fd(loop, op->u.cancel.fd, op);
		return n > 0 ? n : -ENOENT;
	}
	if (t == op || !in_flight(loop, t))
		return -ENOENT;
	return cancel_one(loop, t);
}

/* ------------------------------------------------------------------------
 * Close ops and the thread pool
 * ------------------------------------------------------------------------ */

/* Does a pool thread run an op of this loop on fd? After cancel_fd, an op
 * still in EVQ__OP_POOL_QUEUED is one a worker took (or finished, its
 * result not yet reaped). */
static bool pool_runs_on_fd(const struct evq_loop *loop, int fd,
			    const struct evq_op *self)
{
	for (const struct evq_op *o = loop->ops_head; o; o = o->next)
		if (o != self && o->state == EVQ__OP_POOL_QUEUED &&
		    has_fd(o) && o->fd == fd)
			return true;
	return false;
}

/* Close now: in the pool, since close() can block (the last reference to
 * a lingering socket, a network file system's flush). But a close must
 * never need a new fd: when the pool cannot be had (at RLIMIT_NOFILE it
 * cannot make its eventfd), or is being shut down, close here. Linux
 * frees the fd even when close() fails. */
static void close_go(struct evq_loop *loop, struct evq_op *op)
{
	if (loop->freeing || evq__tpool_submit(loop, op) < 0)
		complete(loop, op, (int)EVQ__SYS(close(op->fd)), 0);
}

/* A pool op on fd finished: start the close ops that waited for it. */
static void close_ready(struct evq_loop *loop, int fd)
{
	struct evq_op **pp = &loop->close_waiters;

	while (*pp) {
		struct evq_op *c = *pp;

		if (c->fd != fd || pool_runs_on_fd(loop, fd, c)) {
			pp = &c->qnext;
			continue;
		}
		*pp = c->qnext;
		c->qnext = NULL;
		close_go(loop, c);
		pp = &loop->close_waiters;	/* the list may have changed */
	}
}

/* ------------------------------------------------------------------------
 * Starting
 * ------------------------------------------------------------------------ */

static void emul_start(struct evq_loop *loop, struct evq_op *op)
{
	int res = 0, how;

	switch (op->code) {
	case EVQ_OP_NOP:
		complete(loop, op, 0, 0);
		return;
	case EVQ_OP_TIMEOUT:
		op->state = EVQ__OP_WAIT_TIMER;
		op->wait.timer = (struct evq_timer){ 0 };
		res = evq_timer_start(loop, &op->wait.timer, op->u.tmo.ns, 0,
				      op_timer_cb);
		if (res < 0)
			complete(loop, op, res, 0);
		else
			loop->active--;	/* see op_timer_cb */
		return;
	case EVQ_OP_CANCEL:
		res = do_cancel(loop, op);
		complete(loop, op, res, 0);
		return;
	case EVQ_OP_CLOSE:
		/* End what this loop has on fd before the number is freed
		 * and can be reused. An op a pool thread already runs
		 * cannot be ended: it may not have made its syscall yet, and
		 * would make it on whatever file takes the number after the
		 * close. The close waits for it (close_ready). */
		cancel_fd(loop, op->fd, op);
		evq__fd_end(loop, op->fd);
		if (pool_runs_on_fd(loop, op->fd, op)) {
			op->state = EVQ__OP_CLOSE_WAIT;
			op->qnext = loop->close_waiters;
			loop->close_waiters = op;
			return;
		}
		close_go(loop, op);
		return;
	case EVQ_OP_OPENAT:
	case EVQ_OP_STATX:
	case EVQ_OP_FSYNC:
		op_route(loop, op, TRY_POOL, 0);
		return;
	default:
		if (op->fd < 0) {
			complete(loop, op, -EBADF, 0);
			return;
		}
		how = try_op(op, &res, false);
		op_route(loop, op, how, res);
		return;
	}
}

/* Hand op to a completion-native backend. A refusal is delivered at the
 * next iteration, never from inside evq_op_submit(). */
static void native_start(struct evq_loop *loop, struct evq_op *op)
{
	int r;

	/* The kernel cancels the fd's ops (see the backend); the loop's
	 * watchers of the fd end here. */
	if (op->code == EVQ_OP_CLOSE)
		evq__fd_end(loop, op->fd);
	op->state = EVQ__OP_NATIVE;
	r = loop->backend->op_start(loop, op);
	if (r < 0)
		park(loop, op, r);
}

static void op_start(struct evq_loop *loop, struct evq_op *op)
{
	int r;

	if (native(loop)) {
		native_start(loop, op);
		return;
	}
	if (loop->backend->op_start) {
		/* Offer it to the backend first (aio: O_DIRECT transfers). */
		op->state = EVQ__OP_NATIVE;
		r = loop->backend->op_start(loop, op);
		if (r == 0)
			return;
		op->state = EVQ__OP_QUEUED;
		if (r < 0) {
			complete(loop, op, r, 0);
			return;
		}
		/* EVQ__EMULATE: not one the backend runs itself. */
	}
	emul_start(loop, op);
}

/* ------------------------------------------------------------------------
 * Loop teardown
 * ------------------------------------------------------------------------ */

/* For evq_loop_free: every op in flight completes exactly once before the
 * loop goes. Ops not started, waiting, or queued for the pool complete
 * with -ECANCELED; ops a pool thread is running are waited for and
 * complete with their own result (an fd from openat is the caller's to
 * close, not lost). */
void evq__ops_free_all(struct evq_loop *loop)
{
	loop->freeing = true;
	if (loop->backend->op_drain) {
		/* Ops queued but not started never reach the kernel. */
		struct evq_op *op;

		while ((op = loop->sq_head)) {
			loop->sq_head = op->qnext;
			if (!loop->sq_head)
				loop->sq_tail = NULL;
			op->qnext = NULL;
			complete(loop, op, -ECANCELED, 0);
		}
		loop->backend->op_drain(loop);
		evq__ops_dispatch_done(loop);
		/* Every target has reported by now; a cancel still held
		 * (its target's CQE never came) is not kept back. */
		for (struct evq_op *c = loop->cancels, *n; c; c = n) {
			n = c->wait.native.cancel_next;
			if (c->flags & EVQ__OPF_HELD) {
				c->flags &= (uint16_t)~EVQ__OPF_HELD;
				complete(loop, c, c->res, 0);
				n = loop->cancels;	/* list changed */
			}
		}
	}
	evq__tpool_shutdown(loop);
	evq__ops_deliver(loop);
	/* Close ops still waiting (a fork child's pool jobs never finish
	 * here) close now: the fd must not outlive its close op. */
	while (loop->close_waiters) {
		struct evq_op *c = loop->close_waiters;

		loop->close_waiters = c->qnext;
		c->qnext = NULL;
		close_go(loop, c);
	}
	/* Oldest first; an op held in a chain goes with its chain, in order,
	 * when the op it waits for is cancelled. */
	while (loop->ops_head) {
		struct evq_op *op = loop->ops_head;

		while (op && op->state == EVQ__OP_HELD)
			op = op->next;
		if (!op)
			op = loop->ops_head;	/* cannot happen: a chain
						 * has a head in flight */
		if (cancel_one(loop, op) < 0) {
			/* Native ops: the backend's teardown reports them;
			 * anything else must not stay on the list. */
			complete(loop, op, -ECANCELED, 0);
		}
	}
}
