/* SPDX-License-Identifier: MIT */
/*
 * hooks.c - loop hooks: prepare, check and idle (evq.h). Each kind is a
 * list in start order; loop.c runs a kind's list at its point of the
 * iteration (evq__hooks_run). Calls nothing of the core: loop.c calls it.
 *
 * A pass over a list must survive any callback: one may stop the hook
 * that runs next (the cursor then moves past it), stop and restart
 * itself, or start new hooks. A hook started during a pass carries that
 * pass's number and is skipped by it, so a hook that restarts itself
 * cannot make a pass endless, and hooks started by a callback run from
 * the next iteration on, as the documentation says.
 */
#include "internal.h"

#include <errno.h>

#define HOOK_ACTIVE 0x1u

static bool counts(const struct evq_hook *h)
{
	return !(h->flags & EVQ__UNREF);
}

int evq_hook_start(struct evq_loop *loop, struct evq_hook *h,
		   enum evq_hook_kind kind, evq_hook_cb cb)
{
	unsigned k = (unsigned)kind;

	if (!loop || !h || !cb || k > EVQ_HOOK_IDLE)
		return -EINVAL;
	if (h->flags & HOOK_ACTIVE)
		evq_hook_stop(h);
	h->loop = loop;
	h->cb = cb;
	h->kind = k;
	h->pass = loop->hook_pass;
	h->next = NULL;
	h->prev = loop->hook_tail[k];
	if (h->prev)
		h->prev->next = h;
	else
		loop->hook_head[k] = h;
	loop->hook_tail[k] = h;
	h->flags |= HOOK_ACTIVE;
	if (k == EVQ_HOOK_IDLE)
		loop->nidle++;
	if (counts(h))
		loop->active++;
	return 0;
}

int evq_hook_stop(struct evq_hook *h)
{
	struct evq_loop *loop;

	if (!h)
		return -EINVAL;
	if (!(h->flags & HOOK_ACTIVE))
		return 0;
	loop = h->loop;
	if (loop->hook_cursor == h)
		loop->hook_cursor = h->next;
	if (h->prev)
		h->prev->next = h->next;
	else
		loop->hook_head[h->kind] = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		loop->hook_tail[h->kind] = h->prev;
	h->next = h->prev = NULL;
	h->flags &= ~HOOK_ACTIVE;
	if (h->kind == EVQ_HOOK_IDLE)
		loop->nidle--;
	if (counts(h))
		loop->active--;
	return 0;
}

int evq_hook_is_active(const struct evq_hook *h)
{
	return h && (h->flags & HOOK_ACTIVE);
}

int evq_hook_unref(struct evq_hook *h)
{
	if (!h)
		return -EINVAL;
	evq__set_unref(h->loop, &h->flags, h->flags & HOOK_ACTIVE, true);
	return 0;
}

int evq_hook_ref(struct evq_hook *h)
{
	if (!h)
		return -EINVAL;
	evq__set_unref(h->loop, &h->flags, h->flags & HOOK_ACTIVE, false);
	return 0;
}

/* One pass over the hooks of a kind. Passes do not nest: hooks run only
 * from the loop's iteration, which a callback cannot re-enter. */
void evq__hooks_run(struct evq_loop *loop, unsigned kind)
{
	uint64_t pass = ++loop->hook_pass;
	struct evq_hook *h = loop->hook_head[kind];

	for (; h; h = loop->hook_cursor) {
		loop->hook_cursor = h->next;
		if (h->pass == pass)
			continue;	/* started during this pass */
		h->cb(loop, h);
	}
	loop->hook_cursor = NULL;
}

/* evq_loop_free: hooks become inactive, their memory the caller's. */
void evq__hooks_detach_all(struct evq_loop *loop)
{
	for (unsigned k = 0; k <= EVQ_HOOK_IDLE; k++)
		while (loop->hook_head[k])
			evq_hook_stop(loop->hook_head[k]);
}
