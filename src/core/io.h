/* SPDX-License-Identifier: MIT */
/*
 * io.h - the hot half of io.c's dispatch, inlined into the loop's
 * iteration (loop.c): what the backend reported goes to the watchers of
 * each fd. The rare cases (several watchers on one fd, a stale or
 * NVAL report) are io.c's. Also the emulated op's wait on an fd (for
 * emul.c, emul_more.c and ops.c), built on io.c's registrations.
 */
#ifndef EVQ_IO_H
#define EVQ_IO_H

#include "internal.h"

EVQ__HIDDEN void evq__io_dispatch_many(struct evq_loop *loop,
				       const struct evq__fired *f);
EVQ__HIDDEN void evq__io_dispatch_odd(struct evq_loop *loop,
				      const struct evq__fired *f);
EVQ__HIDDEN void evq__io_orphan(struct evq_loop *loop, int fd);

/* An emulated op's wait takes over the registration that the op before
 * it on fd left (slot->opwait, no watcher, the kernel watching just
 * `events`): the watcher is linked without a syscall (evq__io_rewait). */
static inline bool evq__io_can_take_over(const struct evq_loop *loop, int fd,
					 unsigned events)
{
	const struct evq__fd *slot;

	if ((unsigned)fd >= (unsigned)loop->nfds)
		return false;
	slot = &loop->fds[fd];
	return slot->opwait && !slot->head && slot->kmask == events;
}

static inline void evq__io_take_over(struct evq_loop *loop, struct evq_io *w,
				     int fd, unsigned events, evq_io_cb cb)
{
	w->data = NULL;
	w->run_stamp = 0;
	w->loop = loop;
	w->cb = cb;
	w->fd = fd;
	w->events = events;
	w->state = EVQ__ACTIVE | EVQ__INTERNAL | EVQ__TELL_END;
	w->prev = w->next = NULL;
	loop->fds[fd].head = w;
}

/* evq__io_leave for the common case, an op's wait alone on its fd: the
 * watcher is unlinked here. It is internal (not counted in active), and
 * no one resumes an op's watcher, so it needs no loop identity. */
static inline __attribute__((always_inline)) void
evq__io_leave_alone(struct evq_loop *loop, struct evq_io *w)
{
	if (evq__likely((w->state & EVQ__ACTIVE) && !w->prev && !w->next &&
			(w->state & EVQ__INTERNAL))) {
		loop->fds[w->fd].head = NULL;
		w->state = 0;
		return;
	}
	evq__io_leave(w);
}

/* Dispatch the n reports of the last wait, in order. Every reported fd is
 * below loop->nfds: the table only grows, and only registered fds are
 * reported. An fd with one watcher (the common case) runs it here. */
static inline void evq__io_dispatch(struct evq_loop *loop, int n)
{
	const struct evq__fired *fired = loop->fired;	/* never moves */

	for (int i = 0; i < n; i++) {
		const struct evq__fired *f = &fired[i];
		const struct evq__fd *slot = &loop->fds[f->fd];
		struct evq_io *w = slot->head;
		unsigned ev;

		if (evq__unlikely(slot->gen != f->gen ||
				  (f->revents & EVQ__NVAL))) {
			evq__io_dispatch_odd(loop, f);
			continue;
		}
		if (evq__unlikely(w == NULL)) {
			/* Stopped earlier in this batch (the flush tells
			 * the kernel), or left by an ended op's wait. */
			if (slot->opwait && !slot->dirty)
				evq__io_orphan(loop, f->fd);
			continue;
		}
		if (evq__unlikely(w->next != NULL)) {
			evq__io_dispatch_many(loop, f);
			continue;
		}
		ev = f->revents & w->events & EVQ__IO_MASK;
		if (!ev)
			continue;
		if (w->events & EVQ_ONESHOT)
			evq_io_stop(w);
		w->cb(loop, w, ev);
	}
}

/* An emulated op waits for readiness of fd (op->fd, or a splice's other
 * side) with its own watcher, on the registration an op before it left
 * (no syscall; checked before the loop blocks: evq__emul_verify, which
 * the UNVERIFIED mark asks for) or a new one; for emul.c and
 * emul_more.c. An op waiting again from its own callback keeps the
 * stamp of the report being dispatched: that report (which another
 * op's callback may have used up) is not this wait's, and with a fresh
 * stamp the dispatch would run it again at once, for ever (a splice
 * that found its pipe emptied). 0 or -errno. */
static inline __attribute__((always_inline)) int
evq__op_wait_io(struct evq_loop *loop, struct evq_op *op, int fd,
		unsigned events, evq_io_cb cb)
{
	uint64_t stamp = op->state == EVQ__OP_WAIT_IO ? op->wait.io.run_stamp
						      : 0;
	int r;

	op->state = EVQ__OP_WAIT_IO;
	op->wait.io = (struct evq_io){ 0 };
	r = evq__io_rewait(loop, &op->wait.io, fd, events, cb);
	op->wait.io.run_stamp = stamp;
	if (r == 1) {
		op->flags |= EVQ__OPF_UNVERIFIED;
		loop->unverified++;
		r = 0;
	}
	return r;
}

#endif /* EVQ_IO_H */
