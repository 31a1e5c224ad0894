/* SPDX-License-Identifier: MIT */
/*
 * backend_poll.c - the poll(2) backend, the portable fallback.
 *
 * Notes on poll:
 *  a) The kernel keeps no state between calls: the pollfd array is the
 *     interest set, handed over whole on every wait. It is kept compact
 *     (removal moves the last entry into the hole) with an fd -> index map
 *     beside it, so add, change and remove are O(1).
 *  b) poll watches fd numbers, not files. A closed fd shows up as POLLNVAL,
 *     which ends the watch (the core stops its watchers). A number that is
 *     closed and reused before the next wait cannot be told apart by poll
 *     itself, so when a watcher joins an fd that is already registered,
 *     modify() compares the file's (st_dev, st_ino) with the one recorded
 *     at registration and reports EVQ__STALE if they differ. A reuse by a
 *     file that evq is not asked to watch goes unseen until then: stop a
 *     watcher before closing its fd.
 *  c) No edge-triggered mode: EVQ_EDGE gets -ENOTSUP (no EVQ__CAP_EDGE).
 *  d) When more fds are ready than fit in loop->fired, the scan resumes
 *     where the last one stopped, so every ready fd gets its turn.
 *  e) ppoll() takes a timespec, so timer deadlines keep their nanoseconds.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct poll_entry {
	uint32_t gen;
	dev_t dev;
	ino_t ino;
};

struct poll_state {
	struct pollfd *pfds;
	struct poll_entry *entries;	/* parallel to pfds */
	int n, cap;
	int *index;		/* fd -> position in pfds, or -1 */
	int index_cap;
	int resume;		/* where the next scan starts (note d) */
};

static int poll_probe(void)
{
	return 0;
}

static int poll_init(struct evq_loop *loop)
{
	struct poll_state *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
	loop->backend_data = st;
	return 0;
}

static void poll_destroy(struct evq_loop *loop)
{
	struct poll_state *st = loop->backend_data;

	free(st->pfds);
	free(st->entries);
	free(st->index);
	free(st);
	loop->backend_data = NULL;
}

static int index_reserve(struct poll_state *st, int fd)
{
	int cap, *idx;

	if (fd < st->index_cap)
		return 0;
	cap = st->index_cap ? st->index_cap : 64;
	while (cap <= fd)
		cap = cap > INT_MAX / 2 ? fd + 1 : cap * 2;
	idx = realloc(st->index, (size_t)cap * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	memset(idx + st->index_cap, 0xff,
	       (size_t)(cap - st->index_cap) * sizeof(*idx));
	st->index = idx;
	st->index_cap = cap;
	return 0;
}

static int array_reserve(struct poll_state *st)
{
	int cap;
	struct pollfd *p;
	struct poll_entry *e;

	if (st->n < st->cap)
		return 0;
	cap = st->cap ? st->cap * 2 : 64;
	p = realloc(st->pfds, (size_t)cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	st->pfds = p;
	e = realloc(st->entries, (size_t)cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	st->entries = e;
	st->cap = cap;
	return 0;
}

static void entry_remove(struct poll_state *st, int fd)
{
	int i = st->index[fd];

	st->index[fd] = -1;
	if (--st->n != i) {
		st->pfds[i] = st->pfds[st->n];
		st->entries[i] = st->entries[st->n];
		st->index[st->pfds[i].fd] = i;
	}
}

static short poll_events(unsigned mask)
{
	return (short)((mask & EVQ_READ ? POLLIN : 0) |
		       (mask & EVQ_WRITE ? POLLOUT : 0));
}

static int poll_modify(struct evq_loop *loop, int fd, unsigned old,
		       unsigned mask, uint32_t gen)
{
	struct poll_state *st = loop->backend_data;
	struct stat sb;
	int i, r;

	r = index_reserve(st, fd);
	if (r < 0)
		return r;
	i = st->index[fd];

	if (!mask) {
		if (i >= 0)
			entry_remove(st, fd);
		return 0;
	}
	if (mask & EVQ_EDGE)
		return -ENOTSUP;

	/* Note b: is this still the file we registered? This fstat also
	 * turns a closed fd into -EBADF for the caller. */
	if (fstat(fd, &sb) < 0) {
		if (i >= 0) {
			entry_remove(st, fd);
			return EVQ__STALE;
		}
		return -errno;
	}
	if (i >= 0 && old &&
	    (st->entries[i].dev != sb.st_dev || st->entries[i].ino != sb.st_ino)) {
		entry_remove(st, fd);
		return EVQ__STALE;
	}
	if (i < 0) {
		r = array_reserve(st);
		if (r < 0)
			return r;
		i = st->n++;
		st->index[fd] = i;
		st->pfds[i].fd = fd;
		st->entries[i].dev = sb.st_dev;
		st->entries[i].ino = sb.st_ino;
	}
	st->pfds[i].events = poll_events(mask);
	st->pfds[i].revents = 0;
	st->entries[i].gen = gen;
	return 0;
}

static int poll_wait(struct evq_loop *loop, int64_t timeout_ns)
{
	struct poll_state *st = loop->backend_data;
	struct timespec ts, *tsp = NULL;
	int ready, n = 0, i;

	if (timeout_ns == 0) {
		/* a look: the loop has work queued, or an emulated op's
		 * registration to check (a busy loop of ops looks every
		 * time): no division */
		ts.tv_sec = 0;
		ts.tv_nsec = 0;
		tsp = &ts;
	} else if (timeout_ns > 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	ready = ppoll(st->pfds, (nfds_t)st->n, tsp, NULL);
	if (ready <= 0)
		return ready < 0 ? -errno : 0;

	if (st->resume >= st->n)
		st->resume = 0;
	i = st->resume;
	for (int k = 0; k < st->n && ready > 0; k++, i++) {
		short re;
		unsigned rev = 0;

		if (i == st->n)
			i = 0;
		re = st->pfds[i].revents;
		if (!re)
			continue;
		if (n == loop->fired_cap) {
			st->resume = i;	/* note d */
			return n;
		}
		ready--;
		if (re & (POLLIN | POLLHUP | POLLERR | POLLRDHUP))
			rev |= EVQ_READ;
		if (re & (POLLOUT | POLLHUP | POLLERR))
			rev |= EVQ_WRITE;
		if (re & POLLNVAL)
			rev = EVQ__NVAL;
		loop->fired[n].fd = st->pfds[i].fd;
		loop->fired[n].gen = st->entries[i].gen;
		loop->fired[n].revents = rev;
		n++;
	}
	st->resume = i;
	return n;
}

const struct evq__backend evq__backend_poll = {
	.name = "poll",
	.id = EVQ_BACKEND_POLL,
	.caps = 0,
	.probe = poll_probe,
	.init = poll_init,
	.destroy = poll_destroy,
	.modify = poll_modify,
	.wait = poll_wait,
};
