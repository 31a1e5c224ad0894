/* SPDX-License-Identifier: MIT */
/*
 * uring_sq.h - the io_uring backend's submission queue, as evq_op_submit
 * fills it itself for the common op (core/ops.c): a plain read or write
 * of a running loop takes its SQE there, inline, with no call into the
 * backend. Everything else goes through the backend's table. The queue
 * is the backend's (backend_uring.c keeps it in its state and points
 * loop->uring_sq at it); only EVQ_HAVE_URING builds include this.
 */
#ifndef EVQ_URING_SQ_H
#define EVQ_URING_SQ_H

#include "internal.h"

#include <liburing.h>
#include <stddef.h>
#include <string.h>

/* liburing's own SQE bookkeeping (io_uring_sq.sqe_tail) is not used: the
 * backend and this path take SQEs here, and the backend hands them to the
 * kernel (sq_flush) up to tail. */
struct evq__uring_sq {
	struct io_uring_sqe *sqes;	/* the mapped SQE array */
	unsigned tail;		/* SQEs taken */
	unsigned head_seen;	/* the kernel's SQ head, as last read */
	unsigned mask;		/* entries - 1 */
	unsigned entries;
	unsigned inflight;	/* op SQEs whose last CQE has not come */
};

_Static_assert(EVQ_OP_WRITE == EVQ_OP_READ + 1 &&
		       IORING_OP_WRITE == IORING_OP_READ + 1,
	       "a read or write op's opcode is one addition");

/* Take an SQE for op, a plain read or write (code READ or WRITE, no
 * pool), and fill it; false when the SQ is full by the head last read
 * (the backend's op_queue reads the kernel's head again, and may have to
 * wait for the next iteration). The kernel sees it at the next enter. */
static inline bool evq__uring_sq_rw(struct evq__uring_sq *q,
				    struct evq_op *op, uint8_t code)
{
	unsigned tail = q->tail;
	struct io_uring_sqe *sqe;

	if (evq__unlikely(tail - q->head_seen >= q->entries))
		return false;
	q->tail = tail + 1;
	q->inflight++;
	sqe = &q->sqes[tail & q->mask];
	/* What io_uring_prep_rw writes, and user_data. The length was
	 * clamped to 32 bits by evq_prep_*. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	{
		/* opcode, flags 0, ioprio 0, fd; and len, rw_flags 0: two
		 * 64-bit words, each one store. */
		uint64_t w0 = (uint64_t)(uint32_t)op->fd << 32 |
			      (uint8_t)(code - EVQ_OP_READ +
					IORING_OP_READ);
		uint64_t w3 = (uint32_t)op->u.rw.len;

		_Static_assert(offsetof(struct io_uring_sqe, fd) == 4 &&
				       offsetof(struct io_uring_sqe, len) == 24 &&
				       offsetof(struct io_uring_sqe,
						rw_flags) == 28,
			       "the SQE's layout, as the kernel's ABI has it");
		memcpy(sqe, &w0, sizeof(w0));
		memcpy(&sqe->len, &w3, sizeof(w3));
	}
#else
	sqe->opcode = (uint8_t)(code - EVQ_OP_READ + IORING_OP_READ);
	sqe->flags = 0;
	sqe->ioprio = 0;
	sqe->fd = op->fd;
	sqe->len = (uint32_t)op->u.rw.len;
	sqe->rw_flags = 0;
#endif
	sqe->off = op->u.rw.off;
	sqe->addr = (uint64_t)(uintptr_t)op->u.rw.buf;
	sqe->user_data = (uint64_t)(uintptr_t)op;
	sqe->buf_index = 0;
	sqe->personality = 0;
	sqe->file_index = 0;
	sqe->addr3 = 0;
	sqe->__pad2[0] = 0;
	return true;
}

#endif /* EVQ_URING_SQ_H */
