/* SPDX-License-Identifier: MIT */
/*
 * ops.h - the hot half of ops.c's delivery, inlined into the loop's
 * iteration (loop.c) as io.h's dispatch is: the common result of io_uring,
 * an op that evq_op_submit handed to the kernel, nothing to decide, runs
 * its callback here. Every other result, and all after it, go to ops.c
 * (evq__ops_deliver_from), which decides the rest. ops.c and this header
 * are the only callers of op callbacks.
 */
#ifndef EVQ_OPS_H
#define EVQ_OPS_H

#include "internal.h"

/* An op's code, state and flags as one 32-bit word, code the low byte
 * (the compiler makes it one load where the layout allows). */
static inline uint32_t evq__op_word(const struct evq_op *op)
{
	return (uint32_t)op->code | (uint32_t)op->state << 8 |
	       (uint32_t)op->flags << 16;
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
	/* Note m of backend_uring.c: -512..-516 become -EINTR (ops.c). */
	return (unsigned)(d->res + 516) > 4;
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

#endif /* EVQ_OPS_H */
