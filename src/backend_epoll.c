/* SPDX-License-Identifier: MIT */
/*
 * backend_epoll.c - the epoll(7) backend: a wait on the loop's epoll set
 * (core/epoll_set.c, whose notes a-d and f explain close-safety, files
 * epoll refuses, and the embedding fd).
 *
 * Notes on epoll:
 *  a) epoll_wait() takes milliseconds; epoll_pwait2() (Linux 5.11) takes a
 *     timespec. Timer deadlines are nanoseconds, so pwait2 is used where
 *     there is one and the millisecond timeout is rounded up otherwise:
 *     never wake before the deadline.
 */
#include "internal.h"
#include "epoll_set.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * The epoll backend
 * ------------------------------------------------------------------------ */

static int epoll_probe(void)
{
	return 0;	/* every kernel evq supports has epoll */
}

static int epoll_init(struct evq_loop *loop)
{
	struct evq__epoll_set *set = malloc(sizeof(*set));
	int r;

	if (!set)
		return -ENOMEM;
	r = evq__epoll_set_init(set, loop->fired_cap);
	if (r < 0) {
		free(set);
		return r;
	}
	loop->backend_data = set;
	return 0;
}

static void epoll_destroy(struct evq_loop *loop)
{
	evq__epoll_set_destroy(loop->backend_data);
	free(loop->backend_data);
	loop->backend_data = NULL;
}

static int epoll_modify(struct evq_loop *loop, int fd, unsigned old,
			unsigned mask, uint32_t gen)
{
	return evq__epoll_set_modify(loop->backend_data, fd, old, mask, gen);
}

/* Wait with a finite timeout (note a); out of the hot path. */
static __attribute__((noinline)) int
epoll_wait_timed(struct evq__epoll_set *set, int max, int64_t timeout_ns)
{
	int ms;

	if (timeout_ns > 0 && set->have_pwait2) {
		struct timespec ts = {
			.tv_sec = timeout_ns / 1000000000,
			.tv_nsec = timeout_ns % 1000000000,
		};
		int n = epoll_pwait2(set->epfd, set->events, max, &ts, NULL);

		if (n >= 0 || errno != ENOSYS)
			return n < 0 ? -errno : n;
		set->have_pwait2 = false;
	}
	if (timeout_ns > (int64_t)1000000 * 0x7fffffff)
		ms = 0x7fffffff;
	else
		ms = (int)((timeout_ns + 999999) / 1000000);	/* round up */
	ms = epoll_wait(set->epfd, set->events, max, ms);
	return ms < 0 ? -errno : ms;
}

/* A wait with anything out of the common: a rebuild due, always-ready
 * fds, a finite timeout. */
static __attribute__((noinline)) int
epoll_wait_slow(struct evq_loop *loop, int64_t timeout_ns)
{
	struct evq__epoll_set *set = loop->backend_data;
	int n, max = evq__epoll_set_prepare(loop, set, &timeout_ns, true);

	if (timeout_ns <= 0)
		n = epoll_wait(set->epfd, set->events, max,
			       timeout_ns < 0 ? -1 : 0);
	else
		n = epoll_wait_timed(set, max, timeout_ns);
	if (n < 0)
		return timeout_ns > 0 ? n : -errno;
	return evq__epoll_set_translate(loop, set, n);
}

static int epoll_wait_events(struct evq_loop *loop, int64_t timeout_ns)
{
	struct evq__epoll_set *set = loop->backend_data;
	int n;

	/* The common wait: forever, or a look (the loop has work queued),
	 * on a set with nothing to rebuild and no always-ready fd. */
	if (evq__unlikely(timeout_ns > 0 || set->stale || set->nalways))
		return epoll_wait_slow(loop, timeout_ns);
	n = epoll_wait(set->epfd, set->events, loop->fired_cap,
		       (int)(timeout_ns >> 63));	/* -1 or 0 */
	if (evq__unlikely(n < 0))
		return -errno;
	/* No always-ready fd: none can be added during the wait. */
	return evq__epoll_set_translate_fd(loop, set, n, 0);
}

static void epoll_stale(struct evq_loop *loop)
{
	((struct evq__epoll_set *)loop->backend_data)->stale = true;
}

static int epoll_embed_fd(struct evq_loop *loop)
{
	return evq__epoll_set_embed_fd(loop->backend_data);
}

/* Regular files are reported by every wait (epoll_set.c, note c), but
 * the set's fd never becomes readable for them: a host must not sleep. */
static bool epoll_pending(const struct evq_loop *loop)
{
	return ((const struct evq__epoll_set *)loop->backend_data)->nalways;
}

const struct evq__backend evq__backend_epoll = {
	.name = "epoll",
	.id = EVQ_BACKEND_EPOLL,
	.caps = EVQ__CAP_EDGE,
	.probe = epoll_probe,
	.init = epoll_init,
	.destroy = epoll_destroy,
	.modify = epoll_modify,
	.wait = epoll_wait_events,
	.stale = epoll_stale,
	.embed_fd = epoll_embed_fd,
	.pending = epoll_pending,
};
