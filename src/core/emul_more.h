/* SPDX-License-Identifier: MIT */
/*
 * emul_more.h - the emulation of the ops of issue 14 (splice, ...):
 * started by emul.c (evq__emul_start), run by the emul_more.c functions
 * and, for their blocking syscalls, by the thread pool (threadpool.c,
 * run_more). What both sides read of an op (EVQ__SPL_*) is in
 * internal.h, so that threadpool.c needs nothing of this file. emul_more.c
 * calls io.c, timer.c and threadpool.c, as emul.c does, and is called by
 * emul.c only.
 */
#ifndef EVQ_EMUL_MORE_H
#define EVQ_EMUL_MORE_H

#include "internal.h"

/* emul_more.c: start an op of a new kind (never completes it from
 * inside: results are reported). */
EVQ__HIDDEN void evq__more_start(struct evq_loop *loop, struct evq_op *op);

#endif /* EVQ_EMUL_MORE_H */
