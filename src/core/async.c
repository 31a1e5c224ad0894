/* SPDX-License-Identifier: MIT */
/*
 * async.c - deferred calls and cross-thread wakeups.
 *
 * Wakeups use one eventfd per loop and two levels of flags, so that a
 * storm of sends costs one write(2) per loop iteration at most:
 *   sender:  a->pending 0->1, and only then loop->wake_pending 0->1,
 *            and only then write the eventfd;
 *   loop:    read the eventfd, clear loop->wake_pending, then take each
 *            a->pending 1->0 and run its callback.
 * All flags are sequentially consistent. The last wakeup cannot be lost:
 * a sender whose a->pending store comes after the loop looked at `a` must
 * also come after the loop cleared wake_pending, so it writes the eventfd
 * and the loop wakes again.
 */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Deferred calls
 * ------------------------------------------------------------------------ */

int evq_defer_start(struct evq_loop *loop, struct evq_defer *d,
		    evq_defer_cb cb)
{
	if (!loop || !d || !cb)
		return -EINVAL;
	if (d->loop)
		return -EBUSY;
	d->loop = loop;
	d->cb = cb;
	d->next = NULL;
	d->prev = loop->defer_tail;
	if (loop->defer_tail)
		loop->defer_tail->next = d;
	else
		loop->defer_head = d;
	loop->defer_tail = d;
	loop->active++;
	return 0;
}

static void defer_unlink(struct evq_loop *loop, struct evq_defer *d)
{
	if (d->prev)
		d->prev->next = d->next;
	else
		loop->defer_head = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		loop->defer_tail = d->prev;
	d->next = d->prev = NULL;
	d->loop = NULL;
	loop->active--;
}

int evq_defer_stop(struct evq_defer *d)
{
	struct evq_loop *loop;

	if (!d)
		return -EINVAL;
	loop = d->loop;
	if (!loop)
		return 0;
	/* Unqueuing the last call of the running batch ends the batch at
	 * the call before it (calls before it in the list are unrun ones of
	 * the same batch: run ones have left the list). */
	if (loop->defer_batch_last == d)
		loop->defer_batch_last = d->prev;
	defer_unlink(loop, d);
	return 0;
}

int evq_defer_is_active(const struct evq_defer *d)
{
	return d && d->loop != NULL;
}

/* Run the calls queued before this point, in order; calls they queue
 * wait for the next iteration. */
void evq__defer_run(struct evq_loop *loop)
{
	loop->defer_batch_last = loop->defer_tail;
	while (loop->defer_batch_last) {
		struct evq_defer *d = loop->defer_head;

		if (d == loop->defer_batch_last)
			loop->defer_batch_last = NULL;
		defer_unlink(loop, d);
		loop->callbacks++;
		d->cb(loop, d);
	}
}

void evq__defer_detach_all(struct evq_loop *loop)
{
	while (loop->defer_head)
		defer_unlink(loop, loop->defer_head);
}

/* ------------------------------------------------------------------------
 * Cross-thread wakeups
 * ------------------------------------------------------------------------ */

static void wake_cb(struct evq_loop *loop, struct evq_io *w, unsigned revents)
{
	uint64_t count;
	struct evq_async *a;

	(void)w;
	(void)revents;
	/* Drain first, then clear: a send after the clear writes again. */
	while (read(loop->wake_fd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
	__atomic_store_n(&loop->wake_pending, 0, __ATOMIC_SEQ_CST);


	/* The cursor survives a callback that stops (and frees) the next
	 * watcher: evq_async_stop() moves it on. */
	for (a = loop->async_head; a; a = loop->async_cursor) {
		loop->async_cursor = a->next;
		if (__atomic_exchange_n(&a->pending, 0, __ATOMIC_SEQ_CST))
			a->cb(loop, a);
	}
}

/* The loop's eventfd, made on first need (an async; the thread pool's
 * is one). */
static int wake_init(struct evq_loop *loop)
{
	int fd, r;

	if (loop->wake_fd >= 0)
		return 0;
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = evq__io_start_internal(loop, &loop->wake_io, fd, EVQ_READ, wake_cb);
	if (r < 0) {
		close(fd);
		return r;
	}
	loop->wake_fd = fd;
	return 0;
}

/* Wake the loop from any thread; at most one write per loop wakeup. */
static void wake(struct evq_loop *loop)
{
	uint64_t one = 1;

	if (__atomic_exchange_n(&loop->wake_pending, 1, __ATOMIC_SEQ_CST))
		return;
	/* An eventfd write fails only when the counter would overflow,
	 * and then the loop is woken anyway. */
	while (write(loop->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

int evq_async_start(struct evq_loop *loop, struct evq_async *a,
		    evq_async_cb cb)
{
	int r;

	if (!loop || !a || !cb)
		return -EINVAL;
	if (__atomic_load_n(&a->loop, __ATOMIC_ACQUIRE))
		return -EBUSY;
	r = wake_init(loop);
	if (r < 0)
		return r;
	a->cb = cb;
	a->prev = NULL;
	a->next = loop->async_head;
	if (loop->async_head)
		loop->async_head->prev = a;
	loop->async_head = a;
	__atomic_store_n(&a->pending, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&a->loop, loop, __ATOMIC_RELEASE);
	if (!(a->flags & EVQ__UNREF))
		loop->active++;
	return 0;
}

int evq_async_send(struct evq_async *a)
{
	struct evq_loop *loop;

	if (!a)
		return -EINVAL;
	loop = __atomic_load_n(&a->loop, __ATOMIC_ACQUIRE);
	if (!loop)
		return -EINVAL;
	if (__atomic_exchange_n(&a->pending, 1, __ATOMIC_SEQ_CST))
		return 0;
	wake(loop);
	return 0;
}

static void async_unlink(struct evq_loop *loop, struct evq_async *a)
{
	if (loop->async_cursor == a)
		loop->async_cursor = a->next;
	if (a->prev)
		a->prev->next = a->next;
	else
		loop->async_head = a->next;
	if (a->next)
		a->next->prev = a->prev;
	a->next = a->prev = NULL;
	__atomic_store_n(&a->loop, NULL, __ATOMIC_RELEASE);
	if (!(a->flags & EVQ__UNREF))
		loop->active--;
}

int evq_async_stop(struct evq_async *a)
{
	struct evq_loop *loop;

	if (!a)
		return -EINVAL;
	loop = __atomic_load_n(&a->loop, __ATOMIC_ACQUIRE);
	if (loop)
		async_unlink(loop, a);
	return 0;
}

int evq_async_is_active(const struct evq_async *a)
{
	return a && __atomic_load_n(&a->loop, __ATOMIC_ACQUIRE) != NULL;
}

/* The unref mark (evq.h, evq_io_unref). a->flags is the loop thread's
 * only: senders read a->loop and a->pending, never this. The thread
 * pool's own async never has it (threadpool.c adjusts the count). */
int evq_async_unref(struct evq_async *a)
{
	struct evq_loop *loop;

	if (!a)
		return -EINVAL;
	loop = __atomic_load_n(&a->loop, __ATOMIC_ACQUIRE);
	evq__set_unref(loop, &a->flags, loop != NULL, true);
	return 0;
}

int evq_async_ref(struct evq_async *a)
{
	struct evq_loop *loop;

	if (!a)
		return -EINVAL;
	loop = __atomic_load_n(&a->loop, __ATOMIC_ACQUIRE);
	evq__set_unref(loop, &a->flags, loop != NULL, false);
	return 0;
}

void evq__async_detach_all(struct evq_loop *loop)
{
	while (loop->async_head)
		async_unlink(loop, loop->async_head);
}

/* After the thread pool is gone: nobody can wake the loop any more. */
void evq__wake_close(struct evq_loop *loop)
{
	if (loop->wake_fd >= 0) {
		evq_io_stop(&loop->wake_io);
		close(loop->wake_fd);
		loop->wake_fd = -1;
	}
}
