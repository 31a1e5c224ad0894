/* SPDX-License-Identifier: MIT */
/*
 * epoll_set.h - the epoll interest set shared by the epoll backend, which
 * waits on it with epoll_wait(), and the io_uring backend, which waits on
 * it through the ring (IORING_OP_EPOLL_WAIT). Implemented in
 * core/epoll_set.c, whose notes explain close-safety and the rest.
 */
#ifndef EVQ_EPOLL_SET_H
#define EVQ_EPOLL_SET_H

#include "internal.h"

#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/types.h>

/* A file epoll refuses (EPERM: regular files): reported always ready.
 * dev/ino identify the file, checked before every report. */
struct evq__always_ready {
	int fd;
	unsigned mask;
	uint32_t gen;
	dev_t dev;
	ino_t ino;
};

struct evq__epoll_set {
	int epfd;			/* replaced by a rebuild */
	int embed_fd;			/* evq_loop_fd(): an epoll set holding
					 * epfd, for the loop's life; -1 until
					 * asked for */
	bool have_pwait2;		/* until the kernel says ENOSYS */
	bool stale;			/* the core saw reports of dead
					 * registrations (backend->stale):
					 * rebuild before the next wait */
	struct epoll_event *events;	/* loop->fired_cap of them */
	struct evq__always_ready *always;
	int nalways, always_cap;
	/* NULL: the set holds every fd the core registered (epoll, uring).
	 * Otherwise it holds only the fds for which this says true (aio's
	 * fallback, backend_aio.c note f): a rebuild re-adds only those,
	 * and a file epoll refuses (EPERM) is refused, not kept always
	 * ready, since that backend watches it itself. */
	bool (*member)(struct evq_loop *loop, int fd);
};

EVQ__HIDDEN int evq__epoll_set_init(struct evq__epoll_set *set, int nevents);
EVQ__HIDDEN void evq__epoll_set_destroy(struct evq__epoll_set *set);
/* backend->modify on the set; see struct evq__backend. */
EVQ__HIDDEN int evq__epoll_set_modify(struct evq__epoll_set *set, int fd,
				      unsigned old, unsigned mask,
				      uint32_t gen);
/* evq_loop_fd(): the set's stable fd, made on the first call. */
EVQ__HIDDEN int evq__epoll_set_embed_fd(struct evq__epoll_set *set);
/* The cold parts of the two below. */
EVQ__HIDDEN bool evq__epoll_set_rebuild(struct evq_loop *loop,
					struct evq__epoll_set *set);
EVQ__HIDDEN int evq__epoll_set_always(struct evq_loop *loop,
				      struct evq__epoll_set *set, int n);
EVQ__HIDDEN void evq__epoll_set_verify(struct evq_loop *loop,
				       struct evq__epoll_set *set,
				       struct evq__fired *f);
/* evq__epoll_set_translate, checking every report's registration
 * (uring: events collected before the loop last returned to its
 * caller, backend_uring.c note o). */
EVQ__HIDDEN int evq__epoll_set_translate_verify(struct evq_loop *loop,
						struct evq__epoll_set *set,
						int n);

/* Before a wait: drop dead registrations if the core saw their reports
 * (set->stale, set by the backend's stale slot), unless rebuild_ok is
 * false (uring, while a wait on the set is in the kernel); make the wait non-blocking when always-ready fds exist or the
 * rebuild ended watches. Returns how many events to ask the kernel for. */
static inline int evq__epoll_set_prepare(struct evq_loop *loop,
					 struct evq__epoll_set *set,
					 int64_t *timeout_ns, bool rebuild_ok)
{
	int max = loop->fired_cap;

	if (evq__unlikely(set->stale) && rebuild_ok &&
	    evq__epoll_set_rebuild(loop, set))
		*timeout_ns = 0;
	if (evq__unlikely(set->nalways)) {
		*timeout_ns = 0;
		max -= set->nalways < max / 2 ? set->nalways : max / 2;
	}
	return max;
}

/* READ for data, EOF or error; WRITE for room or error. EPOLLIN is
 * EVQ_READ and EPOLLOUT is EVQ_WRITE one bit up. */
static inline unsigned evq__epoll_revents(uint32_t ev)
{
	unsigned r;

	if (evq__likely(ev == EPOLLIN))	/* the common report */
		return EVQ_READ;
	r = (ev & EPOLLIN) | ((ev >> 1) & EVQ_WRITE);

	if (evq__unlikely(ev & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
		r |= ev & (EPOLLHUP | EPOLLERR) ? EVQ_READ | EVQ_WRITE
						 : EVQ_READ;
	return r;
}

/* A registration's data is fd | gen << 32 (epoll_set.c, ctl): on a
 * little-endian machine, the layout of evq__fired's first two fields,
 * copied in one move. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
_Static_assert(offsetof(struct evq__fired, fd) == 0 &&
		       offsetof(struct evq__fired, gen) == 4,
	       "evq__fired starts with the epoll data's fd and gen");
#define EVQ__FIRED_SET_DATA(f, data) memcpy((f), &(data), sizeof(data))
#else
#define EVQ__FIRED_SET_DATA(f, data) \
	((f)->fd = (int)(uint32_t)(data), (f)->gen = (uint32_t)((data) >> 32))
#endif

/* After a wait returned n events into set->events: fill loop->fired and
 * return how many entries it has. Every EVQ_IO_STALE_LIMIT reports of an
 * fd, check that its registration still belongs to the fd (epoll_set.c,
 * note b). */
static inline __attribute__((always_inline)) int
evq__epoll_set_translate_fd(struct evq_loop *loop, struct evq__epoll_set *set,
			    int n, int base)
{
	const struct epoll_event *e = set->events;
	struct evq__fired *f = loop->fired + base;

	_Static_assert(EPOLLIN == EVQ_READ && EPOLLOUT >> 1 == EVQ_WRITE,
		       "evq__epoll_revents maps the bits by a shift");
	for (int i = 0; i < n; i++) {
		uint64_t data = e[i].data.u64;
		int fd = (int)(uint32_t)data;

		EVQ__FIRED_SET_DATA(&f[i], data);	/* fd, gen */
		f[i].revents = evq__epoll_revents(e[i].events);
		if (evq__unlikely(++loop->fds[fd].reports >=
				  EVQ_IO_STALE_LIMIT))
			evq__epoll_set_verify(loop, set, &f[i]);
	}
	return n;
}

/* The same, with the always-ready fds after the epoll ones. */
static inline int evq__epoll_set_translate_at(struct evq_loop *loop,
					      struct evq__epoll_set *set,
					      int n, int base)
{
	n = evq__epoll_set_translate_fd(loop, set, n, base);
	if (evq__unlikely(set->nalways))
		n = evq__epoll_set_always(loop, set, base + n) - base;
	return n;
}

/* The n events go to loop->fired from its start (epoll, uring); aio puts
 * them after its own reports, from base on (it has no always-ready fds:
 * set->member). */
static inline int evq__epoll_set_translate(struct evq_loop *loop,
					   struct evq__epoll_set *set, int n)
{
	return evq__epoll_set_translate_at(loop, set, n, 0);
}

#endif /* EVQ_EPOLL_SET_H */
