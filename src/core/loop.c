/* SPDX-License-Identifier: MIT */
/*
 * loop.c - the loop: create/free and one iteration. It calls the other
 * core files; none of them calls it.
 *
 * One iteration (evq_loop_run):
 *   0. run the prepare hooks (hooks.c), so that what they start, submit
 *      or change is part of this iteration's wait;
 *   1. run the deferred calls queued before the iteration began;
 *   2. start the ops submitted so far, and deliver the results reported
 *      since the last delivery (a watch ended inside an API call; an op
 *      that finished as it started);
 *   3. flush queued interest changes to the backend, one pass;
 *   4. wait in the backend until the next timer deadline (0 if deferred
 *      calls, ops or results are pending, an idle hook is active or the
 *      mode is NOWAIT; forever if no timer); then run the check hooks;
 *   5. dispatch what the backend reported, fd by fd (io.c); then deliver
 *      the op results of this iteration, in the order they were reported
 *      (ops.c): the kernel's, the emulation's, the thread pool's;
 *      cross-loop messages a backend doorbell announced go between
 *      the two (msg.c), eventfd-announced ones with the fds;
 *   6. run the timers that are due; then, if the wait found nothing and
 *      no work is queued, the idle hooks.
 */
#include "internal.h"
#include "io.h"
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Loop lifetime
 * ------------------------------------------------------------------------ */

int evq_loop_new(struct evq_loop **loopp, const struct evq_loop_options *opts)
{
	struct evq_loop_options defaults = { 0 };
	struct evq_loop *loop;
	int r;

	if (!loopp)
		return -EINVAL;
	*loopp = NULL;
	if (!opts)
		opts = &defaults;
	if ((unsigned)opts->backend > EVQ_BACKEND_POLL || opts->flags != 0 ||
	    opts->max_events > (1u << 20) || opts->threads > 256 ||
	    opts->uring_entries > 32768 ||
	    (opts->uring_entries & (opts->uring_entries - 1)))
		return -EINVAL;

	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->sig_fd = -1;
	loop->wake_fd = -1;
	sigemptyset(&loop->sig_mask);
	sigemptyset(&loop->sig_blocked);
	loop->max_events = opts->max_events ? opts->max_events : 256;
	loop->threads = opts->threads ? opts->threads : 4;
	loop->uring_entries = opts->uring_entries ? opts->uring_entries : 256;
	loop->fired_cap = (int)loop->max_events;
	loop->fired = calloc(loop->max_events, sizeof(*loop->fired));
	if (!loop->fired) {
		free(loop);
		return -ENOMEM;
	}

	r = evq__id_take(loop);
	if (r == 0) {
		r = evq__backend_open(loop, opts->backend);
		if (r < 0)
			evq__id_release(loop);
	}
	if (r < 0) {
		free(loop->fired);
		free(loop);
		return r;
	}
	*loopp = loop;
	return 0;
}

int evq_loop_free(struct evq_loop *loop)
{
	if (!loop)
		return -EINVAL;
	/* From a callback of this loop's run, or of this very free (an op's
	 * -ECANCELED): the loop is still in use. */
	if (loop->running || loop->freeing)
		return -EBUSY;
	loop->freeing = true;

	/* Messages sent to the loop's ports are delivered now (evq.h). */
	evq__msg_detach_all(loop);
	/* Ops first: their callbacks run now and may still stop watchers. */
	evq__ops_free_all(loop);
	evq__pool_detach_all(loop);
	evq__signal_detach_all(loop);
	evq__child_detach_all(loop);
	evq__async_detach_all(loop);
	evq__wake_close(loop);
	evq__defer_detach_all(loop);
	evq__hooks_detach_all(loop);
	evq__timer_detach_all(loop);
	evq__io_detach_all(loop);
	loop->backend->destroy(loop);

	free(loop->fds);
	free(loop->changes);
	free(loop->fired);
	free(loop->heap);
	free(loop->done);
	evq__id_release(loop);	/* stopped watchers see the loop gone */
	free(loop);
	return 0;
}

void evq_loop_stop(struct evq_loop *loop)
{
	if (loop)
		loop->stop = true;
}

enum evq_backend evq_loop_backend(const struct evq_loop *loop)
{
	return loop ? loop->backend->id : EVQ_BACKEND_AUTO;
}

const char *evq_loop_backend_name(const struct evq_loop *loop)
{
	return loop ? loop->backend->name : NULL;
}

int evq_loop_fd(struct evq_loop *loop)
{
	int r;

	if (!loop)
		return -EINVAL;
	if (!loop->backend->embed_fd)
		return -ENOTSUP;
	r = loop->backend->embed_fd(loop);
	if (r >= 0)
		loop->embedded = true;
	return r;
}

int64_t evq_loop_timeout(struct evq_loop *loop)
{
	if (!loop)
		return -EINVAL;
	if (loop->defer_head || evq__ops_pending(loop) || loop->nchanges ||
	    loop->nidle)
		return 0;
	if (loop->backend->pending && loop->active &&
	    loop->backend->pending(loop))
		return 0;
	return loop->heap_len ? evq__timer_timeout(loop) : -1;
}

unsigned evq_loop_active(const struct evq_loop *loop)
{
	return loop ? loop->active : 0;
}

/* ------------------------------------------------------------------------
 * Run
 * ------------------------------------------------------------------------ */

/* The timeout of a wait that may block, when timers or unchecked
 * registrations exist. Emulated ops may wait on registrations they took
 * over without a check (emul.c): one whose number was closed and reused
 * would never report, so they are checked before the loop blocks. But
 * first the loop looks (timeout 0): when that finds reports, as it does in
 * a busy loop, nothing needs checking yet; a look that finds nothing is
 * followed by the check, then the wait. */
#define LOOK (-2)	/* block_timeout: a look (timeout 0) for them */
static __attribute__((noinline)) int64_t block_timeout(struct evq_loop *loop)
{
	if (loop->unverified) {
		if (!loop->looked)
			return LOOK;
		loop->looked = false;
		if (evq__emul_verify(loop))
			return 0;	/* an op started over */
	}
	return loop->heap_len ? evq__timer_timeout(loop) : -1;
}

/* Step 1-3 when work is queued: deferred calls, ops to start, results
 * to deliver, interest changes. Returns -errno (a flush failed), or
 * RAN_CALLBACKS | KEEP_BUSY bits. */
#define RAN_CALLBACKS 1
#define KEEP_BUSY 2
static __attribute__((noinline)) int run_queued(struct evq_loop *loop,
						enum evq_run_mode mode)
{
	uint64_t callbacks = loop->callbacks;
	int r;

	if (loop->defer_head)
		evq__defer_run(loop);
	/* Start what was submitted, then deliver what is reported: results
	 * that came after the last delivery (a watch ended inside an API
	 * call), and those of ops that finished as they started (a send
	 * with room): their callbacks run now, not after a wait that would
	 * only look. */
	if (loop->sq_head && evq__ops_lone_write(loop))
		evq__ops_start_lone(loop);
	else if (loop->sq_head)
		evq__ops_start_queued(loop);
	if (loop->ndone)
		evq__ops_deliver(loop);
	if (loop->nchanges) {
		r = evq__io_flush(loop);
		if (r < 0)
			return r;
	}
	/* Never block with work queued for the next iteration, nor, in ONCE
	 * mode, after callbacks already ran in this one. */
	r = loop->callbacks != callbacks ? RAN_CALLBACKS : 0;
	if (((uintptr_t)loop->defer_head | (uintptr_t)loop->sq_head |
	     (unsigned)loop->ndone) != 0 ||
	    (mode == EVQ_RUN_ONCE && r))
		r |= KEEP_BUSY;
	return r;
}

/* Step 6 when there are timers or idle hooks: results of this
 * iteration, timers, idle hooks. */
static inline __attribute__((always_inline)) void
run_after(struct evq_loop *loop, int n, bool busy)
{
	/* Idle hooks run after a wait that found nothing, with no work
	 * queued (the clock is read only when they exist). */
	bool idle = evq__unlikely(loop->nidle != 0) && n <= 0 &&
		    !loop->ndone && !busy &&
		    !(loop->heap_len && evq__timer_due(loop));

	/* Results that found no room on the road wait, parked, on the start
	 * queue: the next iteration does not block. */
	if (loop->ndone && loop->uring_sq)
		evq__ops_deliver_kernel(loop);
	else if (loop->ndone)
		evq__ops_deliver(loop);
	if (loop->heap_len)
		evq__timer_run(loop);
	if (evq__unlikely(idle) && !loop->stop)
		evq__hooks_run(loop, EVQ_HOOK_IDLE);
}

int evq_loop_run(struct evq_loop *loop, enum evq_run_mode mode)
{
	int64_t forever = mode == EVQ_RUN_NOWAIT ? 0 : -1;
	int err = 0;

	if (!loop || (unsigned)mode > EVQ_RUN_NOWAIT)
		return -EINVAL;
	if (loop->running || loop->freeing)
		return -EBUSY;
	loop->running = true;
	loop->stop = false;
	loop->runs++;
	evq__ops_open(loop);
	if (!(loop->backend->caps & EVQ__CAP_KERNEL_OPS) &&
	    !loop->backend->op_queue)
		loop->emul_open = loop->backend->xfer_queue ? evq__emul_io_cb
							     : evq__emul_plain_cb;

	/* The common iteration, in a busy loop, is a wait and its dispatch
	 * and delivery: one test each for the rare steps around them. */
	for (;;) {
		int queued = 0;
		bool look = false;
		int64_t timeout;
		int n;

		/* Prepare hooks: only while the loop is to go on, so that an
		 * unref'd one does not run once more on the way out. */
		if (evq__unlikely(loop->hook_head[EVQ_HOOK_PREPARE] != NULL) &&
		    loop->active && !loop->stop)
			evq__hooks_run(loop, EVQ_HOOK_PREPARE);

		/* Work queued since the last wait. One test when there is
		 * none, which is the common case of a busy server. */
		if (evq__unlikely(((uintptr_t)loop->defer_head |
				   (uintptr_t)loop->sq_head |
				   (uintptr_t)loop->ndone |
				   (uintptr_t)loop->nchanges) != 0)) {
			queued = run_queued(loop, mode);
			if (queued < 0) {
				err = queued;
				break;
			}
		}
		if (evq__unlikely(loop->stop || loop->active == 0)) {
			/* An embedded loop's NOWAIT run still looks once: its
			 * fd may be readable for what has just ended (aio: a
			 * stopped watcher's cancelled poll signals it), and
			 * only a wait makes it quiet again; a host polling it
			 * would spin. */
			if (loop->stop || mode != EVQ_RUN_NOWAIT ||
			    !loop->embedded)
				break;
		}

		/* One test for the common wait: forever (a look for
		 * NOWAIT). */
		if (evq__likely(((unsigned)queued | loop->nidle |
				 loop->heap_len | loop->unverified) == 0))
			timeout = forever;
		else if ((queued & KEEP_BUSY) || mode == EVQ_RUN_NOWAIT ||
			 loop->nidle)
			timeout = 0;
		else if ((timeout = block_timeout(loop)) == LOOK)
			timeout = 0, look = true;

		n = loop->backend->wait(loop, timeout);
		if (evq__unlikely(look))	/* results count (aio batch) */
			loop->looked = n == 0 && !loop->ndone;
		loop->waits++;
		loop->now_valid = false;
		if (evq__unlikely(loop->hook_head[EVQ_HOOK_CHECK] != NULL))
			evq__hooks_run(loop, EVQ_HOOK_CHECK);
		if (evq__likely(n > 0)) {
			evq__io_dispatch(loop, n);
		} else if (evq__unlikely(n < 0)) {
			if (n != -EINTR) {
				err = n;
				break;
			}
			/* A signal handler ran: nothing for the loop. ONCE
			 * still owes its caller an event; wait again (the
			 * next timeout is computed afresh). */
			if (mode == EVQ_RUN_ONCE && !loop->ndone &&
			    !(queued & RAN_CALLBACKS) && !loop->stop &&
			    !evq__timer_due(loop))
				continue;
		}
		/* A backend doorbell for cross-loop messages (msg.c). */
		if (evq__unlikely(loop->msg_rung))
			evq__msg_run(loop);
		/* Results, timers, idle hooks: one test when there are
		 * neither timers nor idle hooks, and one for results. */
		if (evq__unlikely((loop->heap_len | loop->nidle) != 0))
			run_after(loop, n, queued & KEEP_BUSY);
		else if (loop->ndone && loop->uring_sq)
			evq__ops_deliver_kernel(loop);
		else if (loop->ndone)
			evq__ops_deliver_emul(loop);

		if (evq__unlikely(mode != EVQ_RUN_DEFAULT || loop->stop))
			break;
	}

	loop->running = false;
	loop->uring_open = NULL;	/* only a running loop's thread fills */
	loop->emul_open = NULL;
	if (evq__unlikely(loop->msg_owed))
		evq__msg_flush(loop);	/* doorbells sent in this run */
	if (err < 0)
		return err;
	return loop->active > 0;
}
