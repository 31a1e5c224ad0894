/* SPDX-License-Identifier: MIT */
/*
 * epoll_set.h - the epoll interest set shared by the epoll backend, which
 * waits on it with epoll_wait(), and the io_uring backend, which waits on
 * it through the ring (IORING_OP_EPOLL_WAIT). Implemented in
 * src/backend_epoll.c, whose notes explain close-safety and the rest.
 */
#ifndef EVQ_EPOLL_SET_H
#define EVQ_EPOLL_SET_H

#include "internal.h"

#include <sys/epoll.h>

/* A file epoll refuses (EPERM: regular files): reported always ready. */
struct evq__always_ready {
	int fd;
	unsigned mask;
	uint32_t gen;
};

struct evq__epoll_set {
	int epfd;
	bool have_pwait2;		/* until the kernel says ENOSYS */
	struct epoll_event *events;	/* loop->fired_cap of them */
	struct evq__always_ready *always;
	int nalways, always_cap;
};

EVQ__HIDDEN int evq__epoll_set_init(struct evq__epoll_set *set, int nevents);
EVQ__HIDDEN void evq__epoll_set_destroy(struct evq__epoll_set *set);
/* backend->modify on the set; see struct evq__backend. */
EVQ__HIDDEN int evq__epoll_set_modify(struct evq__epoll_set *set, int fd,
				      unsigned old, unsigned mask,
				      uint32_t gen);
/* Before a wait: drop dead registrations if the core saw their reports,
 * make the wait non-blocking when always-ready fds exist. Returns how many
 * events to ask the kernel for. */
EVQ__HIDDEN int evq__epoll_set_prepare(struct evq_loop *loop,
				       struct evq__epoll_set *set,
				       int64_t *timeout_ns);
/* After a wait returned n events into set->events: fill loop->fired and
 * return how many entries it has. */
EVQ__HIDDEN int evq__epoll_set_translate(struct evq_loop *loop,
					 struct evq__epoll_set *set, int n);

#endif /* EVQ_EPOLL_SET_H */
