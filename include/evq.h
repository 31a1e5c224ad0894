/* SPDX-License-Identifier: MIT */
/*
 * evq.h - the whole public API of evq, an event loop and asynchronous I/O
 * library for Linux.
 *
 * Conventions, once for the whole file:
 *  - Every function that can fail returns 0 (or a count) on success and a
 *    negative errno on failure. errno itself is never the channel.
 *  - Watchers (struct evq_io, evq_timer, ...) are owned by the caller: evq
 *    never allocates one, and never frees one. A watcher must stay valid
 *    while it is active; once stopped, its memory may be reused or freed at
 *    once, even from inside any callback.
 *  - Only the fields above the "private" marker of each struct belong to
 *    the caller. The rest is evq's; zero-initialise a watcher before its
 *    first use (a static or `= {0}` struct is fine).
 *  - A loop is used from one thread. The one exception is evq_async_send(),
 *    which is safe from any thread.
 *  - Callbacks run from evq_loop_run(), never from inside the call that
 *    started a watcher.
 */
#ifndef EVQ_H
#define EVQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EVQ_VERSION_MAJOR 0
#define EVQ_VERSION_MINOR 1
#define EVQ_VERSION_PATCH 0

#if defined(__GNUC__) && defined(EVQ_BUILDING)
#define EVQ_API __attribute__((visibility("default")))
#else
#define EVQ_API
#endif

/* ------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------ */

struct evq_loop;	/* opaque: made by evq_loop_new() */
struct evq_io;
struct evq_timer;
struct evq_defer;
struct evq_signal;
struct evq_async;

/* Backends, in the order `auto` tries them. */
enum evq_backend {
	EVQ_BACKEND_AUTO = 0,	/* best that works here; EVQ_BACKEND env wins */
	EVQ_BACKEND_URING,	/* io_uring (not yet implemented: -ENOTSUP) */
	EVQ_BACKEND_AIO,	/* Linux AIO (not yet implemented: -ENOTSUP) */
	EVQ_BACKEND_EPOLL,	/* epoll(7) */
	EVQ_BACKEND_POLL,	/* poll(2), the portable fallback */
};

/* How evq_loop_run() runs. */
enum evq_run_mode {
	EVQ_RUN_DEFAULT = 0,	/* until nothing is active or evq_loop_stop() */
	EVQ_RUN_ONCE,		/* one iteration; blocks until something happens */
	EVQ_RUN_NOWAIT,		/* one iteration; never blocks */
};

/* Event bits: interest (evq_io_start) and what happened (callback). */
#define EVQ_READ	0x01u	/* readable, or EOF, or an error to read */
#define EVQ_WRITE	0x02u	/* writable, or an error to write */
/* Options for evq_io_start(), or'ed into the events argument. */
#define EVQ_EDGE	0x10u	/* edge-triggered (epoll only, see docs) */
#define EVQ_ONESHOT	0x20u	/* stop the watcher before its first callback */

struct evq_loop_options {
	enum evq_backend backend;	/* EVQ_BACKEND_AUTO by default */
	unsigned max_events;		/* events per kernel wait; 0: 256 */
	unsigned flags;			/* none yet: must be 0 */
};

/* Callbacks. The loop is passed so one callback can serve many loops. */
typedef void (*evq_io_cb)(struct evq_loop *loop, struct evq_io *w,
			  unsigned revents);
typedef void (*evq_timer_cb)(struct evq_loop *loop, struct evq_timer *t);
typedef void (*evq_defer_cb)(struct evq_loop *loop, struct evq_defer *d);
typedef void (*evq_signal_cb)(struct evq_loop *loop, struct evq_signal *s);
typedef void (*evq_async_cb)(struct evq_loop *loop, struct evq_async *a);

/* An fd watcher: level-triggered by default. Several watchers may watch
 * one fd in one loop (say one for reading, one for writing), and several
 * loops may watch the same fd. */
struct evq_io {
	void *data;			/* the caller's */
	/* private */
	evq_io_cb cb;
	struct evq_loop *loop;
	struct evq_io *next;		/* watchers of the same fd */
	struct evq_io *prev;
	uint64_t run_stamp;		/* report it last ran for */
	int fd;
	unsigned events;		/* EVQ_READ|EVQ_WRITE|options */
	unsigned state;
};

/* A timer on CLOCK_MONOTONIC, in nanoseconds. */
struct evq_timer {
	void *data;			/* the caller's */
	/* private */
	evq_timer_cb cb;
	struct evq_loop *loop;
	uint64_t deadline;		/* absolute, ns */
	uint64_t repeat;		/* ns; 0 for one-shot */
	uint64_t seq;			/* start order: ties fire in it */
	unsigned heap_index;		/* 0 when not in the heap */
};

/* A call deferred to the next loop iteration. */
struct evq_defer {
	void *data;			/* the caller's */
	/* private */
	evq_defer_cb cb;
	struct evq_loop *loop;
	struct evq_defer *next;
	struct evq_defer *prev;
};

/* A signal watcher: the signal is delivered in loop context. */
struct evq_signal {
	void *data;			/* the caller's */
	/* private */
	evq_signal_cb cb;
	struct evq_loop *loop;
	struct evq_signal *next;	/* watchers of the same signal */
	struct evq_signal *prev;
	int signo;
};

/* A cross-thread wakeup. */
struct evq_async {
	void *data;			/* the caller's */
	/* private */
	evq_async_cb cb;
	struct evq_loop *loop;
	struct evq_async *next;
	struct evq_async *prev;
	unsigned pending;		/* atomic: set by senders, cleared by loop */
};

/* ------------------------------------------------------------------------
 * Loop
 * ------------------------------------------------------------------------ */

/* Create a loop. opts may be NULL for the defaults. With EVQ_BACKEND_AUTO
 * the environment variable EVQ_BACKEND (uring, aio, epoll, poll) picks the
 * backend; otherwise the best one that works is used. Asking for a backend
 * that this build or kernel lacks returns its error (-ENOTSUP, -ENOSYS,
 * -EPERM, ...) rather than falling back. */
EVQ_API int evq_loop_new(struct evq_loop **loopp,
			 const struct evq_loop_options *opts);

/* Free a loop. Active watchers are detached: they become inactive, no
 * callback runs, and their memory stays the caller's. Signal claims are
 * released. Returns 0, or -EBUSY when called from inside evq_loop_run(). */
EVQ_API int evq_loop_free(struct evq_loop *loop);

/* Run the loop (see enum evq_run_mode). Returns 1 if watchers are still
 * active, 0 if none are (or evq_loop_stop() was called and none are), or
 * a negative errno when waiting for events failed; -EBUSY if the loop is
 * already running (callbacks must not re-enter it). */
EVQ_API int evq_loop_run(struct evq_loop *loop, enum evq_run_mode mode);

/* Make evq_loop_run() return after the current iteration. */
EVQ_API void evq_loop_stop(struct evq_loop *loop);

/* The loop's time: CLOCK_MONOTONIC in ns, read once per iteration after
 * the loop wakes (and again if it is asked for before then). */
EVQ_API uint64_t evq_now(struct evq_loop *loop);

/* Re-read the clock into the loop's time and return it. */
EVQ_API uint64_t evq_now_update(struct evq_loop *loop);

/* The backend in use, as an enum and as its name ("epoll", ...). */
EVQ_API enum evq_backend evq_loop_backend(const struct evq_loop *loop);
EVQ_API const char *evq_loop_backend_name(const struct evq_loop *loop);

/* The name of a backend enum value, or NULL. */
EVQ_API const char *evq_backend_name(enum evq_backend backend);

/* Number of active watchers (io, timers, deferred calls, signals, asyncs):
 * the loop keeps running while it is not zero. */
EVQ_API unsigned evq_loop_active(const struct evq_loop *loop);

/* ------------------------------------------------------------------------
 * fd watchers
 * ------------------------------------------------------------------------ */

/* Start watching fd for events (EVQ_READ and/or EVQ_WRITE, optionally
 * EVQ_EDGE or EVQ_ONESHOT). The fd is registered with the kernel here, so
 * a closed fd is reported now (-EBADF). Starting an active watcher with a
 * new fd or events restarts it. Returns -EINVAL for a NULL pointer, a
 * negative fd, no events or unknown bits; -EINVAL for an EVQ_EDGE watcher
 * on an fd that has level-triggered watchers in this loop (or the other
 * way round); -ENOTSUP for EVQ_EDGE on a backend that cannot do it.
 *
 * Close-safety: if fd is closed (plain close()) while the watcher is
 * active, the watcher never runs again, even when the fd number is reused
 * and watched by another watcher. It is stopped when evq notices (see
 * docs/ARCHITECTURE.md); stopping it yourself first is always cheaper. */
EVQ_API int evq_io_start(struct evq_loop *loop, struct evq_io *w, int fd,
			 unsigned events, evq_io_cb cb);

/* Change the events of an active watcher, also from inside a callback;
 * EVQ_EDGE/EVQ_ONESHOT cannot change here. Applied before the loop next
 * waits; an event already reported for this iteration is delivered only
 * if it is still wanted. Returns -EINVAL if w is not active. */
EVQ_API int evq_io_set(struct evq_io *w, unsigned events);

/* Stop a watcher. Stopping an inactive watcher is a no-op. After this
 * returns the callback never runs for w, even if its event is already
 * pending in the current iteration. Returns 0, -EINVAL for NULL. */
EVQ_API int evq_io_stop(struct evq_io *w);

/* 1 if the watcher is active, else 0. */
EVQ_API int evq_io_is_active(const struct evq_io *w);

/* ------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

/* Fire after `after_ns` nanoseconds, measured from this call (never
 * earlier), then every `repeat_ns` if that is not 0. Starting an active
 * timer re-schedules it. A repeating timer that falls behind skips the
 * missed periods rather than firing in a burst. */
EVQ_API int evq_timer_start(struct evq_loop *loop, struct evq_timer *t,
			    uint64_t after_ns, uint64_t repeat_ns,
			    evq_timer_cb cb);

/* Stop a timer; a no-op when it is not active. */
EVQ_API int evq_timer_stop(struct evq_timer *t);

EVQ_API int evq_timer_is_active(const struct evq_timer *t);

/* ------------------------------------------------------------------------
 * Deferred calls
 * ------------------------------------------------------------------------ */

/* Call cb once, on the next loop iteration, before the loop blocks. Calls
 * run in the order they were queued; a call queued from inside a deferred
 * call runs in the following iteration, so I/O is never starved. Returns
 * -EBUSY if d is already queued. */
EVQ_API int evq_defer_start(struct evq_loop *loop, struct evq_defer *d,
			    evq_defer_cb cb);

/* Unqueue a deferred call; a no-op when it is not queued. */
EVQ_API int evq_defer_stop(struct evq_defer *d);

EVQ_API int evq_defer_is_active(const struct evq_defer *d);

/* ------------------------------------------------------------------------
 * Signals
 * ------------------------------------------------------------------------ */

/* Deliver signo in loop context. The first watcher of a signal blocks it
 * in the calling thread (with signalfd, every thread must keep it blocked:
 * start signal watchers before creating threads, or block it yourself).
 * Standard signals raised several times before the loop reads them may be
 * merged by the kernel into one; real-time signals are queued and each
 * one is delivered. Returns -EBUSY if another loop of this process has
 * claimed signo; -EINVAL for SIGKILL, SIGSTOP or an invalid number. */
EVQ_API int evq_signal_start(struct evq_loop *loop, struct evq_signal *s,
			     int signo, evq_signal_cb cb);

/* Stop a signal watcher. The last watcher of a signal in a loop releases
 * the claim and unblocks the signal if evq blocked it. */
EVQ_API int evq_signal_stop(struct evq_signal *s);

EVQ_API int evq_signal_is_active(const struct evq_signal *s);

/* ------------------------------------------------------------------------
 * Cross-thread wakeups
 * ------------------------------------------------------------------------ */

EVQ_API int evq_async_start(struct evq_loop *loop, struct evq_async *a,
			    evq_async_cb cb);

/* Wake the loop and have a's callback run in it. Safe from any thread and
 * from signal handlers. Sends that arrive before the callback runs are
 * merged into one call; a send that arrives while or after the callback
 * runs always causes another call. a must stay active meanwhile. */
EVQ_API int evq_async_send(struct evq_async *a);

EVQ_API int evq_async_stop(struct evq_async *a);

EVQ_API int evq_async_is_active(const struct evq_async *a);

#ifdef __cplusplus
}
#endif

#endif /* EVQ_H */
