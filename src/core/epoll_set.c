/* SPDX-License-Identifier: MIT */
/*
 * epoll_set.c - the epoll interest set: one per loop on the epoll backend,
 * which waits on it with epoll_wait(), and on the io_uring backend, which
 * waits on it through the ring (backend_uring.c, note b). Declared in
 * epoll_set.h, whose inline halves (prepare, translate) run on every wait.
 *
 * Notes on the set:
 *  a) Registrations are keyed by (fd number, open file). When the last
 *     reference to a file goes away, the kernel drops its registration by
 *     itself; evq learns of it when EPOLL_CTL_MOD on that fd number fails
 *     with ENOENT (or EBADF), and reports EVQ__STALE so the core can end
 *     the old watchers' watch (close-safety).
 *  b) If the file outlives the fd number (a dup, or a forked child still
 *     holding it), the registration outlives it too and keeps reporting,
 *     under the fd number's old data; nothing can name it any more to
 *     delete it. Every registration carries the slot's generation in the
 *     upper half of its data, so such reports are recognised and dropped
 *     by the core; when they are seen, this backend rebuilds its epoll set
 *     from the core's fd table, which is the only way to get rid of them.
 *     Until the core notices the close, though, a file kept alive this way
 *     still looks like the old fd to epoll: stop a watcher before closing
 *     its fd when the file may be shared. The translation bounds that:
 *     every EVQ_IO_STALE_LIMIT (64) reports of an fd, it asks the kernel
 *     whether the fd number's current file is the registered one (ADD
 *     answers EEXIST exactly then, and changes nothing); if not, the
 *     report becomes EVQ__NVAL, the core ends the watch and the slot's
 *     generation moves on, so the registration's next report triggers
 *     the rebuild. One syscall per 64 reports, and a watcher of a closed
 *     fd runs at most 63 more times.
 *  c) Regular files (and directories) cannot be added (EPERM). poll(2)
 *     reports them always ready, and so does evq: they are kept in a
 *     side list and reported on every wait, which is then non-blocking.
 *     Nothing in the kernel ends such a watch when the fd is closed, so
 *     each report first checks that the fd still names the file it did
 *     at registration (device and inode number, by statx() with an empty
 *     mask: no file system work, measured as cheap as fcntl(F_GETFD));
 *     if not, the report says EVQ__NVAL and the core ends the watch. That
 *     is one syscall per report of such a file, on a path that already
 *     makes a syscall per iteration and whose callback reads the file;
 *     fds in the epoll set pay nothing.
 *  d) EPOLL_CTL_ADD of an fd number that already has a registration of
 *     the same file fails with EEXIST; that is turned into a MOD.
 *  f) evq_loop_fd() must stay the same open file for the loop's life, but
 *     a rebuild (note b) replaces the set. Handing out the set's fd and
 *     dup3()-ing the new set onto its number would keep the number only:
 *     a host that keeps the fd in its own epoll set registered the old
 *     file, and that registration vanishes with it. So the embedder gets
 *     a second epoll set, made on the first evq_loop_fd() call (loops that
 *     are not embedded pay nothing), which holds the set's fd and is
 *     readable when the set is; a rebuild moves the new set into it.
 */
#include "internal.h"
#include "epoll_set.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>


int evq__epoll_set_init(struct evq__epoll_set *set, int nevents)
{
	*set = (struct evq__epoll_set){ .epfd = -1, .embed_fd = -1,
					.have_pwait2 = true };
	set->events = calloc((size_t)nevents, sizeof(*set->events));
	if (!set->events)
		return -ENOMEM;
	set->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (set->epfd < 0) {
		int r = -errno;

		free(set->events);
		set->events = NULL;
		return r;
	}
	return 0;
}

void evq__epoll_set_destroy(struct evq__epoll_set *set)
{
	if (set->epfd >= 0)
		close(set->epfd);
	if (set->embed_fd >= 0)
		close(set->embed_fd);
	free(set->events);
	free(set->always);
	*set = (struct evq__epoll_set){ .epfd = -1, .embed_fd = -1 };
}

/* Note f: put the set's epfd into the embedding set. */
static int embed_add(int embed_fd, int epfd)
{
	struct epoll_event ev = { .events = EPOLLIN };

	return epoll_ctl(embed_fd, EPOLL_CTL_ADD, epfd, &ev) < 0 ? -errno : 0;
}

int evq__epoll_set_embed_fd(struct evq__epoll_set *set)
{
	int fd, r;

	if (set->embed_fd >= 0)
		return set->embed_fd;
	fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = embed_add(fd, set->epfd);
	if (r < 0) {
		close(fd);
		return r;
	}
	set->embed_fd = fd;
	return fd;
}

static inline uint64_t pack(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

static int ctl(struct evq__epoll_set *set, int op, int fd, unsigned mask,
	       uint32_t gen)
{
	struct epoll_event ev = {
		.events = (mask & EVQ_READ ? EPOLLIN : 0) |
			  (mask & EVQ_WRITE ? EPOLLOUT : 0) |
			  (mask & EVQ_EDGE ? EPOLLET : 0),
		.data.u64 = pack(fd, gen),
	};

	return epoll_ctl(set->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static struct evq__always_ready *always_find(struct evq__epoll_set *set,
					     int fd)
{
	for (int i = 0; i < set->nalways; i++)
		if (set->always[i].fd == fd)
			return &set->always[i];
	return NULL;
}

/* Note c: the identity of the file fd names now. */
static int file_id(int fd, dev_t *dev, ino_t *ino)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, 0, &stx) < 0)
		return -errno;
	*dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	*ino = (ino_t)stx.stx_ino;
	return 0;
}

static bool always_same_file(const struct evq__always_ready *a)
{
	dev_t dev;
	ino_t ino;

	return file_id(a->fd, &dev, &ino) == 0 && dev == a->dev &&
	       ino == a->ino;
}

static int always_add(struct evq__epoll_set *set, int fd, unsigned mask,
		      uint32_t gen)
{
	dev_t dev;
	ino_t ino;
	int r = file_id(fd, &dev, &ino);

	if (r < 0)
		return r;
	if (set->nalways == set->always_cap) {
		int cap = set->always_cap ? set->always_cap * 2 : 8;
		struct evq__always_ready *a;

		a = realloc(set->always, (size_t)cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		set->always = a;
		set->always_cap = cap;
	}
	set->always[set->nalways++] =
		(struct evq__always_ready){ fd, mask, gen, dev, ino };
	return 0;
}

int evq__epoll_set_modify(struct evq__epoll_set *set, int fd, unsigned old,
			  unsigned mask, uint32_t gen)
{
	struct evq__always_ready *a;
	int r;

	if (evq__unlikely(set->nalways) && (a = always_find(set, fd))) {
		if (mask && old && always_same_file(a)) {
			a->mask = mask;
			a->gen = gen;
			return 0;
		}
		*a = set->always[--set->nalways];
		if (mask && old)
			return EVQ__STALE;	/* note c: closed, reused */
		if (!mask)
			return 0;
		/* !old: a stale record; register afresh below. */
	}

	if (!old) {
		if (!mask)
			return 0;
		r = ctl(set, EPOLL_CTL_ADD, fd, mask, gen);
		if (r == -EEXIST)
			r = ctl(set, EPOLL_CTL_MOD, fd, mask, gen);
		else if (r == -EPERM && !set->member)
			r = always_add(set, fd, mask, gen);
		return r;
	}
	if (!mask) {
		/* ENOENT/EBADF: the kernel already forgot it (note a). */
		(void)ctl(set, EPOLL_CTL_DEL, fd, 0, gen);
		return 0;
	}
	r = ctl(set, EPOLL_CTL_MOD, fd, mask, gen);
	/* EPERM: a file epoll refuses (a regular file, note c) now has the
	 * number that a pollable file was registered under: the old one was
	 * closed and the number reused, as with ENOENT. */
	if (r == -ENOENT || r == -EBADF || r == -EPERM)
		return EVQ__STALE;
	return r;
}

/* Note b: start a new epoll set holding exactly the core's registrations.
 * Each is first checked in the old set, as the translation does (note b):
 * an fd closed behind the loop's back must not be registered again by
 * number, which would watch whatever file has the number now, the new
 * set's own fd included. Its watch is ended instead. Returns whether any
 * was: the wait must not block then, the loop has to look again. */
bool evq__epoll_set_rebuild(struct evq_loop *loop, struct evq__epoll_set *set)
{
	struct evq__epoll_set next = *set;
	bool ended = false;
	int old = set->epfd;

	set->stale = false;
	next.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (next.epfd < 0)
		return false;	/* keep dropping the stale reports; retry */
	if (set->embed_fd >= 0 && embed_add(set->embed_fd, next.epfd) < 0) {
		close(next.epfd);
		return false;
	}
	for (int fd = 0; fd < loop->nfds; fd++) {
		struct evq__fd *slot = &loop->fds[fd];

		if (!slot->kmask || always_find(set, fd) ||
		    (set->member && !set->member(loop, fd)))
			continue;
		if (ctl(set, EPOLL_CTL_ADD, fd, 0, slot->gen) != -EEXIST ||
		    ctl(&next, EPOLL_CTL_ADD, fd, slot->kmask, slot->gen) < 0) {
			/* Ends the watch; its modify() drops from the old
			 * set whatever the check may have added there. */
			evq__fd_end(loop, fd);
			ended = true;
		}
	}
	set->epfd = next.epfd;
	if (set->embed_fd >= 0)
		(void)epoll_ctl(set->embed_fd, EPOLL_CTL_DEL, old, NULL);
	close(old);
	return ended;
}

/* Note b: the fd of report f has had EVQ_IO_STALE_LIMIT reports since its
 * last check. Does its number still name the registered file? */
void evq__epoll_set_verify(struct evq_loop *loop, struct evq__epoll_set *set,
			   struct evq__fired *f)
{
	struct evq__fd *slot = &loop->fds[f->fd];
	int r;

	slot->reports = 0;
	if (slot->gen != f->gen)
		return;	/* already dropped by the core */
	r = ctl(set, EPOLL_CTL_ADD, f->fd, 0, f->gen);
	if (r == -EEXIST)
		return;
	if (r == 0)	/* the number names another file: undo */
		(void)ctl(set, EPOLL_CTL_DEL, f->fd, 0, f->gen);
	f->revents = EVQ__NVAL;
}

int evq__epoll_set_translate_verify(struct evq_loop *loop,
				    struct evq__epoll_set *set, int n)
{
	const struct epoll_event *e = set->events;
	struct evq__fired *f = loop->fired;

	for (int i = 0; i < n; i++) {
		f[i].fd = (int)(uint32_t)e[i].data.u64;
		f[i].gen = (uint32_t)(e[i].data.u64 >> 32);
		f[i].revents = evq__epoll_revents(e[i].events);
		evq__epoll_set_verify(loop, set, &f[i]);
	}
	if (set->nalways)
		n = evq__epoll_set_always(loop, set, n);
	return n;
}

/* Note c: report the always-ready fds after the n epoll ones. */
int evq__epoll_set_always(struct evq_loop *loop, struct evq__epoll_set *set,
			  int n)
{
	for (int i = 0; i < set->nalways && n < loop->fired_cap; i++, n++) {
		const struct evq__always_ready *a = &set->always[i];

		loop->fired[n].fd = a->fd;
		loop->fired[n].gen = a->gen;
		loop->fired[n].revents = always_same_file(a)
						 ? a->mask & EVQ__IO_MASK
						 : EVQ__NVAL;
	}
	return n;
}
