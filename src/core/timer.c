/* SPDX-License-Identifier: MIT */
/*
 * timer.c - the loop's clock, and timers: a 4-ary min-heap of deadlines.
 *
 * A 4-ary heap is shallower than a binary one (half the levels) and its
 * four children share a cache line or two, which is what matters once a
 * million timers no longer fit in cache. The heap stores the deadline and
 * start sequence beside the pointer so that sifting never touches the
 * timers themselves. Ties fire in start order.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

uint64_t evq__clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t evq_now(struct evq_loop *loop)
{
	if (!loop)
		return 0;
	if (!loop->now_valid) {
		loop->now = evq__clock_ns();
		loop->now_valid = true;
	}
	return loop->now;
}

uint64_t evq_now_update(struct evq_loop *loop)
{
	if (!loop)
		return 0;
	loop->now_valid = false;
	return evq_now(loop);
}

#define ARITY 4

static inline bool entry_before(const struct evq__heap_entry *a,
				const struct evq__heap_entry *b)
{
	return a->deadline < b->deadline ||
	       (a->deadline == b->deadline && a->seq < b->seq);
}

static inline void heap_put(struct evq__heap_entry *heap, unsigned i,
			    struct evq__heap_entry e)
{
	heap[i] = e;
	e.t->heap_index = i + 1;
}

static void sift_up(struct evq__heap_entry *heap, unsigned i)
{
	struct evq__heap_entry e = heap[i];

	while (i > 0) {
		unsigned parent = (i - 1) / ARITY;

		if (!entry_before(&e, &heap[parent]))
			break;
		heap_put(heap, i, heap[parent]);
		i = parent;
	}
	heap_put(heap, i, e);
}

static void sift_down(struct evq__heap_entry *heap, unsigned len, unsigned i)
{
	struct evq__heap_entry e = heap[i];

	for (;;) {
		unsigned first = i * ARITY + 1, best = i, end;
		const struct evq__heap_entry *bestp = &e;

		if (first >= len)
			break;
		end = first + ARITY < len ? first + ARITY : len;
		for (unsigned c = first; c < end; c++) {
			if (entry_before(&heap[c], bestp)) {
				best = c;
				bestp = &heap[c];
			}
		}
		if (best == i)
			break;
		heap_put(heap, i, heap[best]);
		i = best;
	}
	heap_put(heap, i, e);
}

static void heap_remove(struct evq_loop *loop, struct evq_timer *t)
{
	struct evq__heap_entry *heap = loop->heap;
	unsigned i = t->heap_index - 1;

	t->heap_index = 0;
	if (--loop->heap_len == i)
		return;
	heap[i] = heap[loop->heap_len];
	heap[i].t->heap_index = i + 1;
	if (i > 0 && entry_before(&heap[i], &heap[(i - 1) / ARITY]))
		sift_up(heap, i);
	else
		sift_down(heap, loop->heap_len, i);
}

static int heap_insert(struct evq_loop *loop, struct evq_timer *t)
{
	if (loop->heap_len == loop->heap_cap) {
		unsigned cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		struct evq__heap_entry *h;

		h = realloc(loop->heap, (size_t)cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		loop->heap = h;
		loop->heap_cap = cap;
	}
	loop->heap[loop->heap_len] = (struct evq__heap_entry){
		.deadline = t->deadline, .seq = t->seq, .t = t,
	};
	t->heap_index = ++loop->heap_len;
	sift_up(loop->heap, loop->heap_len - 1);
	return 0;
}

int evq_timer_start(struct evq_loop *loop, struct evq_timer *t,
		    uint64_t after_ns, uint64_t repeat_ns, evq_timer_cb cb)
{
	uint64_t now;

	if (!loop || !t || !cb)
		return -EINVAL;
	if (t->heap_index)
		evq_timer_stop(t);
	/* Measure from this very call, not from the loop's cached time,
	 * which may be a whole callback batch old: that is what makes "never
	 * early" hold. */
	now = evq__clock_ns();
	t->deadline = evq__ns_after(now, after_ns);
	t->repeat = repeat_ns;
	t->seq = loop->timer_seq++;
	t->cb = cb;
	t->loop = loop;
	if (heap_insert(loop, t) < 0)
		return -ENOMEM;
	if (!(t->flags & EVQ__UNREF))
		loop->active++;
	return 0;
}

int evq_timer_stop(struct evq_timer *t)
{
	if (!t)
		return -EINVAL;
	if (!t->heap_index)
		return 0;
	heap_remove(t->loop, t);
	if (!(t->flags & EVQ__UNREF))
		t->loop->active--;
	return 0;
}

int evq_timer_is_active(const struct evq_timer *t)
{
	return t && t->heap_index != 0;
}

/* The unref mark (evq.h, evq_io_unref). An emulated timeout op's timer
 * is zeroed before its start, so it never has it: emul.c's own
 * adjustments of loop->active stay right. */
int evq_timer_unref(struct evq_timer *t)
{
	if (!t)
		return -EINVAL;
	evq__set_unref(t->loop, &t->flags, t->heap_index != 0, true);
	return 0;
}

int evq_timer_ref(struct evq_timer *t)
{
	if (!t)
		return -EINVAL;
	evq__set_unref(t->loop, &t->flags, t->heap_index != 0, false);
	return 0;
}

/* Time to the first deadline: -1 when there is none or it is "never"
 * (then every deadline is), else capped at INT64_MAX so that a far
 * deadline never reads as negative. */
int64_t evq__timer_timeout(struct evq_loop *loop)
{
	uint64_t now, deadline;

	if (loop->heap_len == 0 || loop->heap[0].deadline == EVQ__NEVER)
		return -1;
	deadline = loop->heap[0].deadline;
	now = evq__clock_ns();
	if (deadline <= now)
		return 0;
	return deadline - now > INT64_MAX ? INT64_MAX
					  : (int64_t)(deadline - now);
}

bool evq__timer_due(struct evq_loop *loop)
{
	return loop->heap_len && loop->heap[0].deadline <= evq__clock_ns();
}

/* Fire every timer that is due. A repeating timer is put back before its
 * callback runs, so the callback may stop or restart it. A timer started
 * from one of these callbacks waits for the next iteration, even with a
 * zero timeout: the batch is bounded by the time and the start sequence
 * read on entry (a new timer due now sorts after every older due one). */
void evq__timer_run(struct evq_loop *loop)
{
	uint64_t now = evq_now_update(loop);
	uint64_t seq_limit = loop->timer_seq;

	while (loop->heap_len && loop->heap[0].deadline <= now &&
	       loop->heap[0].seq < seq_limit) {
		struct evq_timer *t = loop->heap[0].t;

		if (t->repeat) {
			/* Saturating, or a huge repeat wraps into the past
			 * and fires on every iteration; EVQ__NEVER is never
			 * <= now, so such a timer just stays pending. */
			uint64_t next = evq__ns_after(t->deadline, t->repeat);

			/* Fallen behind: skip the missed periods. */
			if (next <= now)
				next = evq__ns_after(now, t->repeat);
			t->deadline = next;
			t->seq = loop->timer_seq++;	/* > seq_limit: fine,
							 * next > now */
			loop->heap[0].deadline = next;
			loop->heap[0].seq = t->seq;
			sift_down(loop->heap, loop->heap_len, 0);
		} else {
			heap_remove(loop, t);
			if (!(t->flags & EVQ__UNREF))
				loop->active--;
		}
		t->cb(loop, t);
	}
}

void evq__timer_detach_all(struct evq_loop *loop)
{
	for (unsigned i = 0; i < loop->heap_len; i++)
		loop->heap[i].t->heap_index = 0;
	loop->heap_len = 0;
}
