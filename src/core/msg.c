/* SPDX-License-Identifier: MIT */
/*
 * msg.c - cross-loop messages: ports, the lock-free queue, doorbells.
 *
 * evq.h ("Cross-loop messages") says what is promised; this is how.
 *
 * The queue of a port is a LIFO of the senders' nodes (the kernel's
 * llist): a send links its node in front of p->head with a compare and
 * swap (release); the receiving loop takes the whole list with one
 * exchange (acquire), reverses it, and appends it to p->pending, which
 * only the loop's thread touches. The messages of one sender are in the
 * LIFO newest first, so after the reversal they are in send order; a
 * later batch holds only later sends. No sender ever waits for another
 * (a failed compare and swap means another send succeeded), and the
 * receiver never waits for a sender.
 *
 * Wakeups: the send whose compare and swap found the head NULL rings the
 * doorbell, after the node is in. Each take that empties the head is
 * answered by the next send with a ring, and every ring leads to a take:
 * whenever the head is not NULL a ring is owed or done since the
 * receiver's last take, so no message waits unseen, and a storm of sends
 * costs one ring per batch the receiver takes. Two doorbells:
 *   - the port's own evq_async (async.c): the loop's eventfd, from any
 *     thread, on every backend; its callback takes this port's queue;
 *   - a backend doorbell (io_uring: IORING_OP_MSG_RING, queued in the
 *     sending loop's ring, so it needs `from`, on its thread): the
 *     receiving backend sets loop->msg_rung and the loop calls
 *     evq__msg_run() after its wait, which takes the queue of each port
 *     of the loop (a doorbell names no port: a ring fd is all the sender
 *     has, and a stale one, for a port stopped meanwhile, must be
 *     harmless). A port publishes its loop's doorbell fd (p->ring_fd)
 *     once the backend can take them (a ring enabled by its thread).
 *
 * Stop: evq_port_stop() exchanges the head for CLOSED, which takes what
 * is queued and makes every later push fail (-EPIPE), in one step. A
 * push onto a non-empty queue touches nothing of p after its compare and
 * swap, so it needs no more. A send that may find the queue empty (it
 * will ring, and so touch p after its push) announces itself first in
 * p->senders, and the stop waits for p->senders to be 0 after its
 * exchange (all sequentially consistent: such a send's push came before
 * the exchange, so its announcement is seen; or it comes after, and sees
 * CLOSED). So when the stop returns no send that returned 0 touches p,
 * and a receiver that frees p once each sender's last message came is
 * right. The wait is a few instructions of a sender (a push, maybe an
 * eventfd write): sched_yield() between looks. The fast path of a send
 * is one compare and swap; the announced path, once per batch, three
 * atomic operations more.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>

/* The head of a stopped port: pushes fail. Never a node's address. */
#define CLOSED ((struct evq_msg *)1)

/* Put the LIFO list m at the end of p->pending, oldest first. */
static void port_append(struct evq_port *p, struct evq_msg *m)
{
	struct evq_msg *next, *fifo = NULL, *last = m;

	if (!m)
		return;
	while (m) {
		next = m->next;
		m->next = fifo;
		fifo = m;
		m = next;
	}
	if (p->pending_tail)
		p->pending_tail->next = fifo;
	else
		p->pending = fifo;
	p->pending_tail = last;
}

/* Deliver what p has, while p stays in the state `want` names: its loop
 * (a delivery: what senders pushed is taken first), or NULL (the drain of
 * a stop, which took it). A callback that stops p has the stop deliver
 * the rest; one that restarts it during a drain leaves the rest for the
 * restarted port, first in line. */
static void port_deliver(struct evq_loop *loop, struct evq_port *p,
			 struct evq_loop *want)
{
	struct evq_msg *m;

	/* A delivery's callback may stop p and free it: port_unlink clears
	 * loop->port_delivering, and p is not read again. */
	if (want) {
		port_append(p, __atomic_exchange_n(&p->head, NULL,
						   __ATOMIC_ACQUIRE));
		loop->port_delivering = p;
	}
	while ((!want || loop->port_delivering == p) &&
	       (m = p->pending) != NULL &&
	       __atomic_load_n(&p->loop, __ATOMIC_RELAXED) == want) {
		p->pending = m->next;
		if (!p->pending)
			p->pending_tail = NULL;
		m->next = NULL;
		loop->callbacks++;
		p->cb(loop, p, m);
	}
	if (want)
		loop->port_delivering = NULL;
}

/* The backend's doorbell fd, once it has one (a ring is enabled by the
 * thread that runs it first: before that a doorbell would fail). */
static void port_publish(struct evq_loop *loop, struct evq_port *p)
{
	int fd = loop->backend->msg_fd(loop, 0);

	if (fd >= 0)
		__atomic_store_n(&p->ring_fd, fd, __ATOMIC_RELAXED);
}

/* The eventfd doorbell rang for this port. */
static void port_async_cb(struct evq_loop *loop, struct evq_async *a)
{
	struct evq_port *p = a->data;

	if (evq__unlikely(p->ring_fd < 0) && loop->backend->msg_fd)
		port_publish(loop, p);
	port_deliver(loop, p, loop);
}

/* A backend doorbell rang: take every port's queue. The cursor survives
 * a callback that stops (and frees) the next port: port_unlink moves it
 * on. */
void evq__msg_run(struct evq_loop *loop)
{
	struct evq_port *p;

	loop->msg_rung = false;
	for (p = loop->ports; p; p = loop->port_cursor) {
		loop->port_cursor = p->next;
		port_deliver(loop, p, loop);
	}
}

/* The end of a run: doorbells queued in the backend go now, not with a
 * wait that may be far off. */
void evq__msg_flush(struct evq_loop *loop)
{
	loop->msg_owed = false;
	loop->backend->msg_ring(loop, -1);
}

int evq_port_start(struct evq_loop *loop, struct evq_port *p,
		   evq_port_cb cb)
{
	int r, fd = -1;

	if (!loop || !p || !cb)
		return -EINVAL;
	if (__atomic_load_n(&p->loop, __ATOMIC_ACQUIRE))
		return -EBUSY;
	/* p->senders is balanced (a stop waited for it, a zeroed port has
	 * 0); p->head is CLOSED after a stop, NULL in a zeroed port.
	 * p->pending may hold what a drain left to this restart: delivered
	 * first. */
	p->async = (struct evq_async){ .data = p };
	r = evq_async_start(loop, &p->async, port_async_cb);
	if (r < 0)
		return r;
	evq_async_unref(&p->async);	/* the port counts for itself */
	if (loop->backend->msg_fd)
		fd = loop->backend->msg_fd(loop, 1);
	__atomic_store_n(&p->ring_fd, fd, __ATOMIC_RELAXED);
	p->cb = cb;
	p->prev = NULL;
	p->next = loop->ports;
	if (loop->ports)
		loop->ports->prev = p;
	loop->ports = p;
	if (!(p->flags & EVQ__UNREF))
		loop->active++;
	__atomic_store_n(&p->head, NULL, __ATOMIC_SEQ_CST);
	__atomic_store_n(&p->loop, loop, __ATOMIC_SEQ_CST);
	if (p->pending)
		evq_async_send(&p->async);
	return 0;
}

int evq_msg_send(struct evq_loop *from, struct evq_port *to,
		 struct evq_msg *m)
{
	struct evq_loop *loop;
	struct evq_msg *head;
	int fd, r = 0;

	if (!to || !m)
		return -EINVAL;
	/* The fast path: a push onto a queue that has messages (a ring is
	 * owed or done for them); nothing of `to` is touched after it. */
	head = __atomic_load_n(&to->head, __ATOMIC_RELAXED);
	while (head && head != CLOSED) {
		m->next = head;
		if (__atomic_compare_exchange_n(&to->head, &head, m, true,
						__ATOMIC_RELEASE,
						__ATOMIC_RELAXED))
			return 0;
	}
	/* This send may ring: announced, so that a stop waits for it. */
	__atomic_add_fetch(&to->senders, 1, __ATOMIC_SEQ_CST);
	loop = __atomic_load_n(&to->loop, __ATOMIC_SEQ_CST);
	head = __atomic_load_n(&to->head, __ATOMIC_SEQ_CST);
	do {
		if (!loop || head == CLOSED) {
			r = -EPIPE;
			goto out;
		}
		m->next = head;
	} while (!__atomic_compare_exchange_n(&to->head, &head, m, true,
					      __ATOMIC_SEQ_CST,
					      __ATOMIC_SEQ_CST));
	if (head)
		goto out;	/* another send rang meanwhile */
	/* The backend doorbell: from this loop's ring, with its next wait
	 * (`from` is the caller's loop, so reading running is no race). */
	fd = __atomic_load_n(&to->ring_fd, __ATOMIC_RELAXED);
	if (fd >= 0 && from && from->running && from->backend->msg_ring &&
	    from->backend->msg_ring(from, fd) == 0) {
		from->msg_owed = true;
		goto out;
	}
	evq_async_send(&to->async);
out:
	__atomic_sub_fetch(&to->senders, 1, __ATOMIC_SEQ_CST);
	return r;
}

static void port_unlink(struct evq_loop *loop, struct evq_port *p)
{
	if (loop->port_cursor == p)
		loop->port_cursor = p->next;
	if (loop->port_delivering == p)
		loop->port_delivering = NULL;
	if (p->prev)
		p->prev->next = p->next;
	else
		loop->ports = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->next = p->prev = NULL;
	if (!(p->flags & EVQ__UNREF))
		loop->active--;
}

int evq_port_stop(struct evq_port *p)
{
	struct evq_loop *loop;

	if (!p)
		return -EINVAL;
	loop = __atomic_load_n(&p->loop, __ATOMIC_ACQUIRE);
	if (!loop)
		return 0;
	__atomic_store_n(&p->loop, NULL, __ATOMIC_SEQ_CST);
	port_append(p, __atomic_exchange_n(&p->head, CLOSED,
					   __ATOMIC_SEQ_CST));
	while (__atomic_load_n(&p->senders, __ATOMIC_SEQ_CST) != 0)
		sched_yield();
	port_unlink(loop, p);
	evq_async_stop(&p->async);
	if (loop->backend->msg_fd)
		loop->backend->msg_fd(loop, -1);
	__atomic_store_n(&p->ring_fd, -1, __ATOMIC_RELAXED);
	/* Everything sent is taken now: deliver it. */
	port_deliver(loop, p, NULL);
	return 0;
}

int evq_port_is_active(const struct evq_port *p)
{
	return p && __atomic_load_n(&p->loop, __ATOMIC_ACQUIRE) != NULL;
}

/* The unref mark (evq.h, evq_io_unref); p->flags is the loop thread's. */
int evq_port_unref(struct evq_port *p)
{
	struct evq_loop *loop;

	if (!p)
		return -EINVAL;
	loop = __atomic_load_n(&p->loop, __ATOMIC_RELAXED);
	evq__set_unref(loop, &p->flags, loop != NULL, true);
	return 0;
}

int evq_port_ref(struct evq_port *p)
{
	struct evq_loop *loop;

	if (!p)
		return -EINVAL;
	loop = __atomic_load_n(&p->loop, __ATOMIC_RELAXED);
	evq__set_unref(loop, &p->flags, loop != NULL, false);
	return 0;
}

/* evq_loop_free: stop every port, delivering what it has. */
void evq__msg_detach_all(struct evq_loop *loop)
{
	while (loop->ports)
		evq_port_stop(loop->ports);
}
