/* SPDX-License-Identifier: MIT */
/*
 * io.c - fd watchers: the fd table, interest changes, and the dispatch of
 * what a backend reported (the readiness road: backend wait -> fired[] ->
 * dispatch -> callback). Also the loop identities that let a stopped
 * watcher outlive its loop.
 *
 * Invariants that make stale dispatch impossible:
 *   - A watcher is reached only through its fd slot's list, and that list
 *     holds active watchers only: evq_io_stop() unlinks at once. So a
 *     watcher stopped (or freed after stopping) by an earlier callback of
 *     the same batch is simply not found.
 *   - Every registration carries the slot's generation; a report whose
 *     generation is not the slot's current one belongs to a file that was
 *     closed behind the loop's back and is dropped.
 *   - The slot is looked up again after every callback, since a callback
 *     may grow the table (realloc) or replace the fd's file.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Loop identities
 *
 * A stopped watcher keeps w->loop for evq_io_restart(), but its loop may be
 * freed meanwhile, and a new loop may then live at the same address. So
 * every loop holds an entry of a process-wide table: an index and the
 * entry's generation, which the loop's free bumps. A stopped watcher keeps
 * both in w->next and w->prev (unused while it is stopped), and resume
 * compares them with the table without touching the loop. The table grows
 * in chunks that are never freed (a few bytes per loop that ever lived at
 * the same time), so a reader needs no lock: the one atomic load a resume
 * costs. Entries are recycled through a free list.
 * ------------------------------------------------------------------------ */

#define ID_CHUNK_SHIFT 10
#define ID_CHUNK (1u << ID_CHUNK_SHIFT)
#define ID_CHUNKS 4096u		/* 4M loops at the same time */

struct loop_id {
	uint32_t gen;		/* atomic; never 0 */
	uint32_t next_free;
};

static struct loop_id *id_chunks[ID_CHUNKS];	/* atomic pointers */
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t id_count;	/* entries ever handed out */
static uint32_t id_free = UINT32_MAX;	/* free list head */

static struct loop_id *id_entry(uint32_t index)
{
	struct loop_id *chunk;

	if (index >= ID_CHUNKS * ID_CHUNK)
		return NULL;
	chunk = __atomic_load_n(&id_chunks[index >> ID_CHUNK_SHIFT],
				__ATOMIC_ACQUIRE);
	return chunk ? &chunk[index & (ID_CHUNK - 1)] : NULL;
}

int evq__id_take(struct evq_loop *loop)
{
	struct loop_id *e;
	uint32_t index;
	int r = 0;

	pthread_mutex_lock(&id_lock);
	if (id_free != UINT32_MAX) {
		index = id_free;
		e = id_entry(index);
		id_free = e->next_free;
	} else if (id_count == ID_CHUNKS * ID_CHUNK) {
		r = -ENOMEM;
	} else {
		index = id_count;
		e = id_entry(index);
		if (!e) {
			e = calloc(ID_CHUNK, sizeof(*e));
			if (!e) {
				r = -ENOMEM;
				goto out;
			}
			for (unsigned i = 0; i < ID_CHUNK; i++)
				e[i].gen = 1;
			__atomic_store_n(&id_chunks[index >> ID_CHUNK_SHIFT],
					 e, __ATOMIC_RELEASE);
		}
		id_count++;
	}
	if (r == 0) {
		loop->id_index = index;
		loop->id_gen = __atomic_load_n(&id_entry(index)->gen,
					       __ATOMIC_RELAXED);
	}
out:
	pthread_mutex_unlock(&id_lock);
	return r;
}

void evq__id_release(struct evq_loop *loop)
{
	struct loop_id *e = id_entry(loop->id_index);
	uint32_t gen = loop->id_gen + 1;

	pthread_mutex_lock(&id_lock);
	__atomic_store_n(&e->gen, gen ? gen : 1, __ATOMIC_RELAXED);
	e->next_free = id_free;
	id_free = loop->id_index;
	pthread_mutex_unlock(&id_lock);
}

/* Record in a watcher being stopped which loop it belonged to. */
static inline void id_mark(struct evq_io *w, const struct evq_loop *loop)
{
	w->next = (struct evq_io *)(uintptr_t)loop->id_index;
	w->prev = (struct evq_io *)(uintptr_t)loop->id_gen;
}

/* Is the loop a stopped watcher belonged to still alive? */
static inline bool id_alive(const struct evq_io *w)
{
	const struct loop_id *e = id_entry((uint32_t)(uintptr_t)w->next);

	return e && __atomic_load_n(&e->gen, __ATOMIC_RELAXED) ==
			    (uint32_t)(uintptr_t)w->prev;
}

/* Detach every io watcher: they become inactive and keep no pointer into
 * the loop that is worth following. */
void evq__io_detach_all(struct evq_loop *loop)
{
	for (int fd = 0; fd < loop->nfds; fd++) {
		struct evq_io *w = loop->fds[fd].head;

		while (w) {
			struct evq_io *next = w->next;

			w->state &= EVQ__UNREF;
			w->next = w->prev = NULL;
			w->loop = NULL;
			w = next;
		}
		loop->fds[fd].head = NULL;
	}
}

/* ------------------------------------------------------------------------
 * fd table
 * ------------------------------------------------------------------------ */

/* Make room for fd in the table. Growth doubles, so it is amortised and
 * never happens on a steady-state path. */
static int fd_reserve(struct evq_loop *loop, int fd)
{
	struct evq__fd *fds;
	int n;

	if (evq__likely(fd < loop->nfds))
		return 0;
	/* Grow only for an open fd: a huge bogus number must give -EBADF,
	 * not an attempt at a huge table. */
	if (fcntl(fd, F_GETFD) < 0)
		return -errno;
	n = loop->nfds ? loop->nfds : 64;
	while (n <= fd) {
		if (n > INT_MAX / 2) {
			n = fd + 1;	/* fd < INT_MAX: open fds are */
			break;
		}
		n *= 2;
	}
	fds = realloc(loop->fds, (size_t)n * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	memset(fds + loop->nfds, 0, (size_t)(n - loop->nfds) * sizeof(*fds));
	loop->fds = fds;
	loop->nfds = n;
	return 0;
}

/* Queue fd for the flush before the next wait. */
static int fd_change(struct evq_loop *loop, int fd)
{
	struct evq__fd *slot = &loop->fds[fd];

	if (slot->dirty)
		return 0;
	if (loop->nchanges == loop->changes_cap) {
		int cap = loop->changes_cap ? loop->changes_cap * 2 : 64;
		int *c = realloc(loop->changes, (size_t)cap * sizeof(*c));

		if (!c)
			return -ENOMEM;
		loop->changes = c;
		loop->changes_cap = cap;
	}
	loop->changes[loop->nchanges++] = fd;
	slot->dirty = true;
	return 0;
}

/* What the kernel should watch for the slot's watchers. */
static unsigned fd_wanted(const struct evq__fd *slot)
{
	unsigned mask = 0;

	for (const struct evq_io *w = slot->head; w; w = w->next)
		mask |= w->events & (EVQ__IO_MASK | EVQ_EDGE);
	return mask;
}

/* Does a watcher in this state keep the loop running? The unref mark
 * stays in a stopped watcher's state; internal watchers never have it. */
static inline bool counts(unsigned state)
{
	return !(state & (EVQ__INTERNAL | EVQ__UNREF));
}

static void io_unlink(struct evq_loop *loop, struct evq_io *w)
{
	struct evq__fd *slot = &loop->fds[w->fd];

	if (w->prev)
		w->prev->next = w->next;
	else
		slot->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	id_mark(w, loop);
	if (counts(w->state))
		loop->active--;
	w->state &= EVQ__UNREF;
}

/* The file behind fd was closed behind the loop's back: every watcher of
 * the slot belongs to the old file and must never run again. Stop them,
 * and move the slot to a new generation so that late reports for the old
 * registration are recognised and dropped. */
static void fd_kill(struct evq_loop *loop, int fd)
{
	struct evq__fd *slot = &loop->fds[fd];
	struct evq_io *w = slot->head, *next;

	/* The slot is renewed first: a watcher told of the end may start
	 * again on the fd at once (an op starting afresh on the file that
	 * has the number now), on the new generation. */
	slot->head = NULL;
	slot->kmask = 0;
	slot->opwait = false;
	slot->gen++;
	slot->killed_at = loop->waits;
	for (; w; w = next) {
		bool tell = w->state & EVQ__TELL_END;

		next = w->next;
		id_mark(w, loop);
		if (counts(w->state))
			loop->active--;
		w->state &= EVQ__UNREF;
		/* An internal watcher that asked to know (an emulated op's
		 * wait) hears of the end through its own callback: a
		 * report of EVQ__NVAL after it stopped. It must only take
		 * note, or start again: this may run inside a user's API
		 * call. */
		if (tell)
			w->cb(loop, w, EVQ__NVAL);
	}
}

void evq__fd_end(struct evq_loop *loop, int fd)
{
	struct evq__fd *slot;

	if (fd < 0 || fd >= loop->nfds)
		return;
	slot = &loop->fds[fd];
	if (slot->kmask)
		(void)loop->backend->modify(loop, fd, slot->kmask, 0,
					    slot->gen);
	fd_kill(loop, fd);
}

/* Bring the kernel in line with the slot. Returns 0 or -errno. */
static int fd_apply(struct evq_loop *loop, int fd)
{
	struct evq__fd *slot = &loop->fds[fd];
	unsigned want = fd_wanted(slot);
	int r;

	if (want == slot->kmask)
		return 0;
	r = loop->backend->modify(loop, fd, slot->kmask, want, slot->gen);
	if (r == EVQ__STALE) {
		fd_kill(loop, fd);
		return 0;
	}
	if (r < 0)
		return r;
	slot->kmask = want;
	if (!want)
		slot->opwait = false;
	return 0;
}

/* Apply every queued interest change: one pass, just before waiting. A
 * failure is returned from evq_loop_run(); the rest are still applied. */
int evq__io_flush(struct evq_loop *loop)
{
	int err = 0;

	for (int i = 0; i < loop->nchanges; i++) {
		int fd = loop->changes[i];
		int r;

		loop->fds[fd].dirty = false;
		r = fd_apply(loop, fd);
		if (r < 0 && !err)
			err = r;
	}
	loop->nchanges = 0;
	return err;
}

/* ------------------------------------------------------------------------
 * fd watchers
 * ------------------------------------------------------------------------ */

static int io_start(struct evq_loop *loop, struct evq_io *w, int fd,
		    unsigned events, evq_io_cb cb, unsigned state)
{
	struct evq__fd *slot;
	unsigned want;
	int r;

	if ((events & EVQ_EDGE) && !(loop->backend->caps & EVQ__CAP_EDGE))
		return -ENOTSUP;
	if (w->state & EVQ__ACTIVE)
		evq_io_stop(w);
	if (!(state & EVQ__INTERNAL))
		state |= w->state & EVQ__UNREF;	/* kept across starts */
	r = fd_reserve(loop, fd);
	if (r < 0)
		return r;
	slot = &loop->fds[fd];
	if (slot->head && ((slot->head->events ^ events) & EVQ_EDGE))
		return -EINVAL;

	/* Register now, so that a bad fd is reported to the caller. When the
	 * kernel already has a registration for this fd number, modify()
	 * checks that it still belongs to the same open file: if the fd was
	 * closed and its number reused, the old watchers are killed here and
	 * the new one starts on a fresh generation. */
	want = fd_wanted(slot) | (events & (EVQ__IO_MASK | EVQ_EDGE));
	r = loop->backend->modify(loop, fd, slot->kmask, want, slot->gen);
	if (r == EVQ__STALE) {
		fd_kill(loop, fd);
		want = events & (EVQ__IO_MASK | EVQ_EDGE);
		r = loop->backend->modify(loop, fd, 0, want, slot->gen);
	}
	if (r < 0)
		return r;
	slot->kmask = want;

	w->loop = loop;
	w->cb = cb;
	w->fd = fd;
	w->events = events;
	w->state = EVQ__ACTIVE | state;
	w->prev = NULL;
	w->next = slot->head;
	if (slot->head)
		slot->head->prev = w;
	slot->head = w;
	if (counts(state))
		loop->active++;
	return 0;
}

int evq_io_start(struct evq_loop *loop, struct evq_io *w, int fd,
		 unsigned events, evq_io_cb cb)
{
	if (!loop || !w || !cb || fd < 0 || !(events & EVQ__IO_MASK) ||
	    (events & ~(EVQ__IO_MASK | EVQ_EDGE | EVQ_ONESHOT)))
		return -EINVAL;
	return io_start(loop, w, fd, events, cb, 0);
}

int evq_io_restart(struct evq_io *w)
{
	struct evq_loop *loop;
	struct evq__fd *slot;
	unsigned want;

	if (!w || !w->loop || !w->cb || w->fd < 0 ||
	    !(w->events & EVQ__IO_MASK) || (w->state & EVQ__INTERNAL))
		return -EINVAL;
	if (w->state & EVQ__ACTIVE)
		return 0;
	if (!id_alive(w))
		return -EINVAL;	/* its loop was freed: do not read it */
	loop = w->loop;
	slot = &loop->fds[w->fd];	/* the table never shrinks */
	want = fd_wanted(slot) | (w->events & (EVQ__IO_MASK | EVQ_EDGE));
	/* The caller promises the file is the one it was: if the kernel still
	 * has it registered for everything wanted (the stop is not flushed
	 * yet), relink without a syscall. Otherwise start as usual. */
	if (!slot->kmask || (want & ~slot->kmask) ||
	    (slot->head && ((slot->head->events ^ w->events) & EVQ_EDGE)))
		return io_start(loop, w, w->fd, w->events, w->cb, 0);
	w->state = EVQ__ACTIVE | (w->state & EVQ__UNREF);
	w->prev = NULL;
	w->next = slot->head;
	if (slot->head)
		slot->head->prev = w;
	slot->head = w;
	if (counts(w->state))
		loop->active++;
	return 0;
}

int evq_io_resume(struct evq_io *w)
{
	return evq_io_restart(w);
}

int evq__io_start_internal(struct evq_loop *loop, struct evq_io *w, int fd,
			   unsigned events, evq_io_cb cb)
{
	return io_start(loop, w, fd, events, cb, EVQ__INTERNAL);
}

/* An emulated op's wait (EVQ__TELL_END, internal). When the op before it
 * on fd waited for the same events and its stop is not flushed yet, the
 * kernel still has that registration: take it over without a syscall
 * (returns 1), as evq_io_restart() does. It is trusted to name the same
 * file, as a watcher's is: the loop checks it before it blocks
 * (evq__io_check), in case the fd was closed and its number reused in
 * between. Otherwise a start as usual (0 or -errno). */
int evq__io_rewait(struct evq_loop *loop, struct evq_io *w, int fd,
		   unsigned events, evq_io_cb cb)
{
	struct evq__fd *slot = fd < loop->nfds ? &loop->fds[fd] : NULL;
	int r;

	if (slot && slot->opwait && !slot->head && slot->kmask == events) {
		w->loop = loop;
		w->cb = cb;
		w->fd = fd;
		w->events = events;
		w->state = EVQ__ACTIVE | EVQ__INTERNAL | EVQ__TELL_END;
		w->prev = w->next = NULL;
		slot->head = w;
		return 1;
	}
	r = io_start(loop, w, fd, events, cb, EVQ__INTERNAL | EVQ__TELL_END);
	if (r == 0)
		loop->fds[fd].opwait = true;
	return r;
}

/* An emulated op's wait ends with its op: the watcher goes, but the
 * kernel's registration stays for the next op on the fd to take over
 * (evq__io_rewait). No change is queued: if no op comes, the first report
 * of the fd finds no watcher and drops it (evq__io_orphan), so a
 * registration nobody wants costs one wakeup at most. */
void evq__io_leave(struct evq_io *w)
{
	if (w->state & EVQ__ACTIVE)
		io_unlink(w->loop, w);
}

/* A report for a registration that only an ended op's wait left: drop
 * it, and move the slot to a new generation, so that a registration the
 * drop cannot reach (the file lives on in a dup: epoll_set.c, note b)
 * is recognised as stale from now on. */
void evq__io_orphan(struct evq_loop *loop, int fd)
{
	struct evq__fd *slot = &loop->fds[fd];

	(void)loop->backend->modify(loop, fd, slot->kmask, 0, slot->gen);
	slot->kmask = 0;
	slot->opwait = false;
	slot->gen++;
	slot->killed_at = loop->waits;
}

/* Does the kernel's registration of fd still belong to the file the
 * number names? 0 if so; otherwise the watch of fd ends (its watchers
 * are stopped, told by EVQ__TELL_END) and 1 is returned. One syscall on
 * epoll (EPOLL_CTL_MOD), one fstat() on poll. */
int evq__io_check(struct evq_loop *loop, int fd)
{
	struct evq__fd *slot = &loop->fds[fd];
	int r;

	if (!slot->kmask)
		return 0;
	r = loop->backend->modify(loop, fd, slot->kmask, slot->kmask,
				  slot->gen);
	if (r == 0)
		return 0;
	if (r < 0)	/* not a file the kernel can watch: not ours */
		(void)loop->backend->modify(loop, fd, slot->kmask, 0,
					    slot->gen);
	fd_kill(loop, fd);
	return 1;
}

int evq_io_set(struct evq_io *w, unsigned events)
{
	if (!w || !(w->state & EVQ__ACTIVE) || !(events & EVQ__IO_MASK) ||
	    (events & ~EVQ__IO_MASK))
		return -EINVAL;
	if ((w->events & EVQ__IO_MASK) == events)
		return 0;
	w->events = (w->events & ~EVQ__IO_MASK) | events;
	return fd_change(w->loop, w->fd);
}

int evq_io_stop(struct evq_io *w)
{
	if (!w)
		return -EINVAL;
	if (!(w->state & EVQ__ACTIVE))
		return 0;
	io_unlink(w->loop, w);
	/* The kernel is told before the next wait; a stop followed by a
	 * start in the same iteration costs at most one syscall. Queuing
	 * cannot fail for want of memory without leaving the kernel with a
	 * registration nobody wants, which dispatch then ignores. */
	(void)fd_change(w->loop, w->fd);
	return 0;
}

int evq_io_is_active(const struct evq_io *w)
{
	return w && (w->state & EVQ__ACTIVE);
}

/* A watcher was started when it has a callback (a zeroed one has none;
 * stop and the loop's free keep cb, fd and events). */
int evq_io_fd(const struct evq_io *w)
{
	if (!w || !w->cb || (w->state & EVQ__INTERNAL))
		return -EINVAL;
	return w->fd;
}

unsigned evq_io_events(const struct evq_io *w)
{
	if (!w || !w->cb || (w->state & EVQ__INTERNAL))
		return 0;
	return w->events & (EVQ__IO_MASK | EVQ_EDGE | EVQ_ONESHOT);
}

int evq_io_unref(struct evq_io *w)
{
	if (!w || (w->state & EVQ__INTERNAL))
		return -EINVAL;
	evq__set_unref(w->loop, &w->state, w->state & EVQ__ACTIVE, true);
	return 0;
}

int evq_io_ref(struct evq_io *w)
{
	if (!w || (w->state & EVQ__INTERNAL))
		return -EINVAL;
	evq__set_unref(w->loop, &w->state, w->state & EVQ__ACTIVE, false);
	return 0;
}

/* ------------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------------ */

/* Run the watchers of one fd for one report when it has several (the
 * one-watcher case is inlined: io.h). Each watcher that is on the fd's
 * list when the report's dispatch begins, and still there (active) when
 * its turn comes, runs. A callback may change the list in any way, so
 * the list is rescanned from its head after every callback, and a
 * per-report stamp keeps a watcher from running twice (a watcher that
 * restarts itself, say). */
void evq__io_dispatch_many(struct evq_loop *loop, const struct evq__fired *f)
{
	uint64_t stamp = ++loop->dispatch_seq;
	struct evq_io *w;
	unsigned ev;

again:
	for (w = loop->fds[f->fd].head; w; w = w->next) {
		ev = f->revents & w->events & EVQ__IO_MASK;
		if (!ev || w->run_stamp == stamp)
			continue;
		w->run_stamp = stamp;
		if (w->events & EVQ_ONESHOT)
			evq_io_stop(w);
		w->cb(loop, w, ev);
		if (loop->fds[f->fd].gen != f->gen)
			return;
		goto again;
	}
}

/* A report that is not for the slot's current registration, or that says
 * the fd is not open. Kept out of line: it is rare. */
void evq__io_dispatch_odd(struct evq_loop *loop, const struct evq__fired *f)
{
	struct evq__fd *slot = &loop->fds[f->fd];

	if (slot->gen != f->gen) {
		/* Either the slot was renewed by a callback of this batch
		 * (the report is simply late), or, if it was renewed before
		 * this wait, a registration of a file closed behind our back
		 * is still alive because a dup of that file is open
		 * elsewhere. The backend must then get rid of it. */
		if (slot->killed_at < loop->waits && loop->backend->stale)
			loop->backend->stale(loop);
		return;
	}
	/* EVQ__NVAL: the fd is not open; the watch ends here. */
	(void)loop->backend->modify(loop, f->fd, slot->kmask, 0, slot->gen);
	fd_kill(loop, f->fd);
}
