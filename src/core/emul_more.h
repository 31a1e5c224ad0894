/* SPDX-License-Identifier: MIT */
/*
 * emul_more.h - the emulation of the ops of issue 14 (splice, ...):
 * started by emul.c (evq__emul_start), run by the emul_more.c functions
 * and, for their blocking syscalls, by the thread pool (threadpool.c,
 * run_more). What both sides read of an op is defined here. emul_more.c
 * calls io.c, timer.c and threadpool.c, as emul.c does, and is called by
 * emul.c only.
 */
#ifndef EVQ_EMUL_MORE_H
#define EVQ_EMUL_MORE_H

#include "internal.h"

/* A splice side's kind, kept in op->cflags while the op is emulated (in
 * the low nibble for fd_in, the next for fd_out). */
#define EVQ__SPL_FILE 0x1u	/* regular file or block device: no
				 * readiness, may block on the disk */
#define EVQ__SPL_BLOCK 0x2u	/* not a pipe, and no O_NONBLOCK: a
				 * syscall on it may block */
#define EVQ__SPL_PIPE 0x4u
#define EVQ__SPL_IN(cf) ((cf) & 0xfu)
#define EVQ__SPL_OUT(cf) (((cf) >> 4) & 0xfu)

/* emul_more.c: start an op of a new kind (never completes it from
 * inside: results are reported). */
EVQ__HIDDEN void evq__more_start(struct evq_loop *loop, struct evq_op *op);

#endif /* EVQ_EMUL_MORE_H */
