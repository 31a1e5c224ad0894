/* SPDX-License-Identifier: MIT */
/*
 * ops.h - the hot half of ops.c's delivery, inlined into the loop's
 * iteration (loop.c) as io.h's dispatch is: the common result of io_uring,
 * an op that evq_op_submit handed to the kernel, nothing to decide, runs
 * its callback here; so does a lone plain result of the other backends.
 * Every other result, and all after it, go to ops.c
 * (evq__ops_deliver_from), which decides the rest. ops.c and this header
 * are the only callers of op callbacks.
 */
#ifndef EVQ_OPS_H
#define EVQ_OPS_H

#include "internal.h"

/* The in-flight list's upkeep at an op's last result (ops.c explains the
 * list: an op of evq_op_submit's fast path may be only counted, off the
 * list, op->next == op), here for the deliveries inlined in the loop. */
static inline bool inflight_off(const struct evq_op *op)
{
	return op->next == op;
}

static inline void inflight_count_off(struct evq_loop *loop,
				      const struct evq_op *op)
{
	loop->nops--;
	if (evq__likely(!(op->flags & EVQ_OP_UNREF)))
		loop->active--;
}

static inline void inflight_unlink(struct evq_loop *loop, struct evq_op *op)
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
	if (evq__likely(!(op->flags & EVQ_OP_UNREF)))
		loop->active--;
}

/* An op's last result: it leaves the list, or only the count. */
static inline void inflight_remove(struct evq_loop *loop, struct evq_op *op)
{
	if (inflight_off(op))
		inflight_count_off(loop, op);
	else
		inflight_unlink(loop, op);
}

/* An op's code, state and flags as one 32-bit word, code the low byte
 * (the compiler makes it one load where the layout allows). */
static inline uint32_t evq__op_word(const struct evq_op *op)
{
	return (uint32_t)op->code | (uint32_t)op->state << 8 |
	       (uint32_t)op->flags << 16;
}

/* A kernel-internal restart code (-512..-516: ERESTARTSYS and its
 * kin), which an interrupted blocking op may end with (note m of
 * backend_uring.c); ops.c delivers it as -EINTR. */
static inline bool evq__res_restart(int res)
{
	return (unsigned)(res + 516) <= 4;
}

/* An op evq_op_submit handed to the kernel (EVQ__OP_KERNEL: op_queue or
 * its inline path; never a cancel), without a flag, with a result that
 * has none and is no restart code: with no cancel in flight, its last
 * result, to be delivered as it is. On a little-endian machine the op's
 * state and flags are one load. */
static inline bool evq__kernel_plain(const struct evq_op *op,
				     const struct evq__done *d)
{
	if (((evq__op_word(op) & 0xffffff00u) | d->flags) !=
	    EVQ__OP_KERNEL << 8)
		return false;
	return !evq__res_restart(d->res);
}

/* Deliver the results on the road, in order: those of the common kind
 * here, the first other one and all after it in ops.c. For a backend
 * with ops that evq_op_submit hands to the kernel (uring_sq). */
static inline void evq__ops_deliver_kernel(struct evq_loop *loop)
{
	/* Cancels in flight are added and removed only by ops.c's
	 * delivery and start (a callback's submission only queues): none
	 * now, none until ops.c has the road. */
	if (evq__unlikely(loop->cancels != NULL)) {
		evq__ops_deliver(loop);
		return;
	}
	for (int i = 0; i < loop->ndone; i++) {
		const struct evq__done *d = &loop->done[i];	/* may move */
		struct evq_op *op = d->op;

		if (evq__unlikely(!evq__kernel_plain(op, d))) {
			evq__ops_deliver_from(loop, i);
			return;
		}
		/* Counted off the list (flags 0: not UNREF). */
		loop->nops--;
		loop->active--;
		op->state = EVQ__OP_IDLE;
		loop->callbacks++;
		op->cb(loop, op, d->res, 0);
	}
	loop->ndone = 0;
	/* A pool job reaped may be what a close op waited for. */
	if (evq__unlikely(loop->close_waiters != NULL))
		evq__ops_deliver(loop);
}

/* Deliver the results on the road, for a backend without
 * EVQ__CAP_KERNEL_OPS (epoll, poll, aio): the common one, a lone plain
 * result (plain() of ops.c: no flag on it or its op, no close waiting for
 * the pool), here; anything else in ops.c. plain()'s tests of cancels
 * need not be made: loop->cancels holds only cancels a backend with
 * EVQ__CAP_KERNEL_OPS runs (backend_start), and without those a cancel
 * op's last result is delivered as any other's (complete). */
static inline void evq__ops_deliver_emul(struct evq_loop *loop)
{
	struct evq__done d;
	struct evq_op *op;

	if (loop->ndone != 1)
		goto slow;
	d = loop->done[0];
	op = d.op;
	if (evq__likely((d.flags | op->flags) == 0 && !loop->close_waiters &&
			!evq__res_restart(d.res))) {
		loop->ndone = 0;
		inflight_remove(loop, op);
		op->state = EVQ__OP_IDLE;
		loop->callbacks++;
		op->cb(loop, op, d.res, 0);
		return;
	}
slow:
	evq__ops_deliver(loop);
}

/* The common start queue of an emulated ping-pong: one plain write (no
 * flag, its own buffer at the current position), nothing on the road
 * before it, on a backend that starts no op itself (epoll, poll; aio's
 * transfers go in its batch). Its result would be reported and
 * delivered right after this start with nothing between: it is tried
 * and delivered here, without the road (evq__ops_start_queued's work
 * for a batch of one: a chain ends here too). */
static inline bool evq__ops_lone_write(const struct evq_loop *loop)
{
	const struct evq_op *op = loop->sq_head;

	return op == loop->sq_tail && !loop->backend->op_start &&
	       op->code == EVQ_OP_WRITE && op->flags == 0 &&
	       op->u.rw.off == EVQ_OFFSET_CURRENT && loop->ndone == 0 &&
	       !loop->close_waiters;
}

/* Start the lone write (evq__ops_lone_write) and deliver its result,
 * inlined in the loop's step 2. The start queue empties (a chain ends
 * here, as in evq__ops_start_queued); a write that did not complete went
 * on as evq__emul_start takes it (waiting, pool, or reported), and
 * ops.c puts it on the list. No op_start here, so no uring SQ to open
 * (evq__ops_open). */
static inline void evq__ops_start_lone(struct evq_loop *loop)
{
	struct evq_op *op = loop->sq_head;
	int res;

	loop->chain_tail = NULL;
	loop->sq_head = loop->sq_tail = NULL;
	op->qnext = NULL;
	res = evq__emul_try_write(loop, op);
	if (evq__likely(res != EVQ__WENT_ON)) {
		inflight_remove(loop, op);
		op->state = EVQ__OP_IDLE;
		loop->callbacks++;
		op->cb(loop, op, res, 0);
		return;
	}
	evq__ops_lone_waits(loop, op);
}

#endif /* EVQ_OPS_H */
