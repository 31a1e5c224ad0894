/* SPDX-License-Identifier: MIT */
/*
 * io.h - the hot half of io.c's dispatch, inlined into the loop's
 * iteration (loop.c): what the backend reported goes to the watchers of
 * each fd. The rare cases (several watchers on one fd, a stale or
 * NVAL report) are io.c's.
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

#endif /* EVQ_IO_H */
