/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the loop's private structures and the backend interface.
 *
 * The split of work follows Redis's ae: a backend only translates between
 * the kernel and the loop. It keeps the kernel's interest set in step with
 * what the core asks for (modify) and reports what the kernel says into
 * the loop-owned fired[] array (wait). The core decides everything else:
 * which watcher runs, in which order, and whether it is still allowed to.
 */
#ifndef EVQ_INTERNAL_H
#define EVQ_INTERNAL_H

#define EVQ_BUILDING 1
#include "evq.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#define EVQ__HIDDEN __attribute__((visibility("hidden")))
#define evq__likely(x) __builtin_expect(!!(x), 1)
#define evq__unlikely(x) __builtin_expect(!!(x), 0)

/* Masks passed between core and backends. */
#define EVQ__IO_MASK (EVQ_READ | EVQ_WRITE)
/* Reported by a backend: the fd is not open (poll's POLLNVAL). */
#define EVQ__NVAL 0x100u

/* evq_io.state bits */
#define EVQ__ACTIVE 0x1u
#define EVQ__INTERNAL 0x2u	/* the loop's own: not counted in active */

/* Returned (positive) by backend->modify when the kernel's registration of
 * the fd no longer refers to the file the core registered: the fd was
 * closed (and maybe reused) behind the loop's back. */
#define EVQ__STALE 1

/* Capability bits of a backend (struct evq__backend.caps). */
#define EVQ__CAP_EDGE 0x1u	/* EVQ_EDGE: epoll */

/* One readiness report from the kernel: fd, the generation the fd's slot
 * had when it was registered, and EVQ_READ/EVQ_WRITE/EVQ__NVAL bits. */
struct evq__fired {
	int fd;
	uint32_t gen;
	unsigned revents;
};

/* Per-fd state, indexed by fd number. */
struct evq__fd {
	struct evq_io *head;	/* active watchers of this fd */
	unsigned kmask;		/* what the kernel has: EVQ_READ|WRITE|EDGE */
	uint32_t gen;		/* bumped when the fd's file is found replaced */
	bool dirty;		/* on the loop's change list */
	uint64_t killed_at;	/* loop->waits when gen was last bumped */
};

/* A timer in the heap; the key is copied out of the timer for locality. */
struct evq__heap_entry {
	uint64_t deadline;
	uint64_t seq;
	struct evq_timer *t;
};

struct evq_loop;

/* The backend interface. One const table per backend file; everything
 * else in that file is static. */
struct evq__backend {
	const char *name;
	enum evq_backend id;
	unsigned caps;		/* EVQ__CAP_* */

	/* Can this backend work here? Cheap; 0 or -errno. */
	int (*probe)(void);
	/* Set up/tear down loop->backend_data. */
	int (*init)(struct evq_loop *loop);
	void (*destroy)(struct evq_loop *loop);
	/* Make the kernel watch fd for `mask` (EVQ_READ|EVQ_WRITE|EVQ_EDGE,
	 * 0 to stop) where it watched `old` before; one call covers add,
	 * change and delete. `gen` is to be reported with every event of this
	 * registration. When old != 0, the backend checks that its registration
	 * still belongs to the same open file and returns EVQ__STALE (having
	 * dropped its own record of it) if it does not. Otherwise 0 or
	 * -errno. */
	int (*modify)(struct evq_loop *loop, int fd, unsigned old,
		      unsigned mask, uint32_t gen);
	/* Wait up to timeout_ns (-1: forever, 0: poll) and fill loop->fired.
	 * Returns the number of entries, or -errno (-EINTR is fine). */
	int (*wait)(struct evq_loop *loop, int64_t timeout_ns);
};

/* A backend that sees loop->stale_reports grow must make the kernel forget
 * registrations whose generation is not their slot's (epoll: rebuild the
 * set) and reset the counter. */

EVQ__HIDDEN extern const struct evq__backend evq__backend_epoll;
EVQ__HIDDEN extern const struct evq__backend evq__backend_poll;

struct evq_loop {
	const struct evq__backend *backend;
	void *backend_data;

	/* fd table */
	struct evq__fd *fds;
	int nfds;		/* entries allocated */
	int *changes;		/* fds whose interest changed, to flush */
	int nchanges, changes_cap;

	/* what the last wait reported */
	struct evq__fired *fired;
	int fired_cap;

	/* timers: a 4-ary min-heap (core/timer.c) */
	struct evq__heap_entry *heap;
	unsigned heap_len, heap_cap;
	uint64_t timer_seq;

	/* deferred calls: a FIFO; defer_batch_last is the last call of the
	 * batch being run (NULL when none is) */
	struct evq_defer *defer_head, *defer_tail, *defer_batch_last;

	/* signals */
	struct evq_signal *sig_watchers[65];	/* per signo (1..64) */
	sigset_t sig_mask;	/* signals this loop's signalfd reads */
	sigset_t sig_blocked;	/* signals evq blocked (and so unblocks) */
	int sig_fd;		/* -1 until the first signal watcher */
	struct evq_io sig_io;
	struct evq_signal *sig_cursor;	/* next watcher of a delivery */

	/* cross-thread wakeups */
	struct evq_async *async_head;
	int wake_fd;		/* eventfd, -1 until the first async */
	struct evq_io wake_io;
	struct evq_async *async_cursor;	/* next async of a scan */
	unsigned wake_pending;	/* atomic: an eventfd write is under way */

	uint64_t now;		/* cached CLOCK_MONOTONIC ns */
	bool now_valid;		/* false: re-read on next evq_now() */
	uint64_t dispatch_seq;	/* reports dispatched, for run_stamp */
	uint64_t stale_reports;	/* reports of dead registrations seen */
	uint64_t waits;		/* backend waits done */
	unsigned active;	/* active user watchers: the loop's life */
	unsigned max_events;
	bool running;
	bool stop;
};

/* core/loop.c */
EVQ__HIDDEN uint64_t evq__clock_ns(void);
EVQ__HIDDEN int evq__io_start_internal(struct evq_loop *loop,
				       struct evq_io *w, int fd,
				       unsigned events, evq_io_cb cb);

/* core/timer.c */
EVQ__HIDDEN int64_t evq__timer_timeout(struct evq_loop *loop);
EVQ__HIDDEN void evq__timer_run(struct evq_loop *loop);
EVQ__HIDDEN void evq__timer_detach_all(struct evq_loop *loop);

/* core/signal.c */
EVQ__HIDDEN void evq__signal_detach_all(struct evq_loop *loop);

/* core/async.c */
EVQ__HIDDEN void evq__async_detach_all(struct evq_loop *loop);
EVQ__HIDDEN void evq__defer_run(struct evq_loop *loop);
EVQ__HIDDEN void evq__defer_detach_all(struct evq_loop *loop);

/* core/backend.c: pick, set loop->backend and init it. */
EVQ__HIDDEN int evq__backend_open(struct evq_loop *loop,
				  enum evq_backend want);

/* Syscall edge: run a libc call that sets errno, return -errno or result. */
#define EVQ__SYS(call) ({ long evq__r = (call); evq__r < 0 ? -errno : evq__r; })

#endif /* EVQ_INTERNAL_H */
