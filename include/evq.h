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
 *  - A loop is used from one thread at a time, and belongs to the thread
 *    that first runs it: it may be made (and given watchers, ops and
 *    pools) in one thread and handed to another before its first
 *    evq_loop_run(), but once run it stays on that thread, evq_loop_free()
 *    included. With the uring backend a call from another thread that
 *    needs the kernel's ring fails: evq_loop_run() returns -EEXIST (and a
 *    loop freed elsewhere keeps its ring until the owner thread exits);
 *    the other backends do not check. The exceptions are
 *    evq_async_send() and evq_msg_send(), which are safe from any thread.
 *  - Callbacks run from evq_loop_run(), never from inside the call that
 *    started a watcher (evq_port_stop() and evq_loop_free() run the
 *    callbacks of what they end: ops, messages in flight).
 */
#ifndef EVQ_H
#define EVQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

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
struct evq_hook;
struct evq_child;
struct evq_port;
struct evq_msg;
struct evq_op;
struct evq_pool;
struct statx;

/* Backends. `auto` tries uring, epoll, aio, poll, in that order (aio is
 * slower than epoll here: src/core/backend.c). */
enum evq_backend {
	EVQ_BACKEND_AUTO = 0,	/* best that works here; EVQ_BACKEND env wins */
	EVQ_BACKEND_URING,	/* io_uring: native completions */
	EVQ_BACKEND_AIO,	/* Linux AIO: polls, O_DIRECT transfers, fsync */
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
#define EVQ_EDGE	0x10u	/* edge-triggered (epoll, uring; see docs) */
#define EVQ_ONESHOT	0x20u	/* stop the watcher before its first callback */

struct evq_loop_options {
	enum evq_backend backend;	/* EVQ_BACKEND_AUTO by default */
	unsigned max_events;		/* events per kernel wait; 0: 256 */
	unsigned flags;			/* none yet: must be 0 */
	unsigned threads;		/* blocking-op threads; 0: 4 */
	unsigned uring_entries;		/* io_uring SQ size (power of 2,
					 * <= 32768); 0: 256 */
};

/* Callbacks. The loop is passed so one callback can serve many loops. */
typedef void (*evq_io_cb)(struct evq_loop *loop, struct evq_io *w,
			  unsigned revents);
typedef void (*evq_timer_cb)(struct evq_loop *loop, struct evq_timer *t);
typedef void (*evq_defer_cb)(struct evq_loop *loop, struct evq_defer *d);
typedef void (*evq_signal_cb)(struct evq_loop *loop, struct evq_signal *s);
typedef void (*evq_async_cb)(struct evq_loop *loop, struct evq_async *a);
typedef void (*evq_hook_cb)(struct evq_loop *loop, struct evq_hook *h);
/* status: as waitpid(2) gives it (WIFEXITED(status), ...), or -ECHILD */
typedef void (*evq_child_cb)(struct evq_loop *loop, struct evq_child *c,
			     int status);
/* m: a message evq_msg_send() gave to p, now the receiver's */
typedef void (*evq_port_cb)(struct evq_loop *loop, struct evq_port *p,
			    struct evq_msg *m);

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
	unsigned flags;			/* unref */
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
	unsigned flags;			/* unref */
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
	unsigned flags;			/* unref */
};

/* Loop hooks (evq_hook_start): when in an iteration the callback runs. */
enum evq_hook_kind {
	EVQ_HOOK_PREPARE = 0,	/* right before the loop waits for events */
	EVQ_HOOK_CHECK,		/* right after the wait returns */
	EVQ_HOOK_IDLE,		/* when a wait found nothing; no blocking */
};

/* A loop hook: libev's and libuv's prepare, check and idle watchers in
 * one struct, the kind chosen when it is started. */
struct evq_hook {
	void *data;			/* the caller's */
	/* private */
	evq_hook_cb cb;
	struct evq_loop *loop;
	struct evq_hook *next;		/* hooks of the same kind */
	struct evq_hook *prev;
	uint64_t pass;			/* the pass it was started in */
	unsigned kind;			/* enum evq_hook_kind */
	unsigned flags;			/* active, unref */
};

/* A child process watcher (evq_child_start). */
struct evq_child {
	void *data;			/* the caller's */
	/* private */
	evq_child_cb cb;
	struct evq_loop *loop;
	struct evq_child *next;		/* the loop's child watchers */
	struct evq_child *prev;
	struct evq_io io;		/* the loop's own, on the pidfd */
	int pid;
	int pidfd;
	unsigned flags;			/* active, unref */
};

/* A cross-loop message (evq_msg_send): the caller's, in memory it owns;
 * evq allocates nothing per message. */
struct evq_msg {
	void *ptr;			/* the sender's: any pointer */
	uint64_t tag;			/* the sender's: any number */
	/* private */
	struct evq_msg *next;		/* evq's while in flight */
};

/* A loop's receiving end of cross-loop messages (evq_port_start). */
struct evq_port {
	void *data;			/* the caller's */
	/* private */
	evq_port_cb cb;			/* the receiving loop's thread's */
	struct evq_msg *pending;	/* taken, to deliver, oldest first */
	struct evq_msg *pending_tail;
	struct evq_port *next;		/* the loop's ports */
	struct evq_port *prev;
	struct evq_async async;		/* the eventfd doorbell */
	unsigned flags;			/* unref */
	/* what senders touch, on a cache line of its own (the receiver
	 * writes the fields above once per message) */
	struct evq_msg *head		/* atomic: sent, newest first */
		__attribute__((aligned(64)));
	struct evq_loop *loop;		/* atomic: NULL when not active */
	int ring_fd;			/* atomic: io_uring doorbell, or -1 */
	unsigned senders;		/* atomic: sends that may ring */
};

/* Completion operations (see "Operations" below). */
enum evq_op_code {
	EVQ_OP_NONE = 0,	/* not prepared */
	EVQ_OP_NOP,
	EVQ_OP_READ,
	EVQ_OP_WRITE,
	EVQ_OP_READV,
	EVQ_OP_WRITEV,
	EVQ_OP_RECV,
	EVQ_OP_SEND,
	EVQ_OP_RECVMSG,
	EVQ_OP_SENDMSG,
	EVQ_OP_ACCEPT,
	EVQ_OP_CONNECT,
	EVQ_OP_OPENAT,
	EVQ_OP_STATX,
	EVQ_OP_FSYNC,
	EVQ_OP_CLOSE,
	EVQ_OP_TIMEOUT,
	EVQ_OP_CANCEL,
	EVQ_OP_SPLICE,
	EVQ_OP_SHUTDOWN,
	EVQ_OP_SOCKET,
	EVQ_OP_FALLOCATE,
	EVQ_OP_UNLINKAT,
	EVQ_OP_RENAMEAT,
	EVQ_OP_MKDIRAT,
	EVQ_OP_SEND_ZC,
	EVQ_OP__COUNT,
	/* Not started as the others are: it watches the op before it
	 * (evq_prep_link_timeout). */
	EVQ_OP_LINK_TIMEOUT = 0x40
};

/* evq_op_submit() flags */
#define EVQ_OP_LINK	 0x1u	/* the next op submitted waits for this one */
#define EVQ_OP_MULTISHOT 0x2u	/* accept, or recv from a pool: many results */
#define EVQ_OP_UNREF	 0x80u	/* the op does not keep the loop running */

/* Completion flags, passed to the callback */
#define EVQ_OP_F_MORE	0x1u	/* multishot: the op stays armed; send_zc: a
				 * notification follows */
#define EVQ_OP_F_BUFFER	0x2u	/* the data is in a pool buffer: see below */
#define EVQ_OP_F_NOTIF	0x4u	/* send_zc: the notification that the
				 * buffer is released (evq_prep_send_zc) */
/* The pool buffer's id in a callback's flags, when EVQ_OP_F_BUFFER is
 * set. Not a flag, so not EVQ_OP_F_*: EVQ_OP_F_BUFID is its old name,
 * kept until 1.0 because the examples, benchmarks and code written
 * against 0.1 use it. */
#define EVQ_OP_BUFID(flags) ((unsigned)(flags) >> 16)
#define EVQ_OP_F_BUFID(flags) EVQ_OP_BUFID(flags)

/* The most bytes one read, write, recv or send moves (Linux's per-call
 * maximum, 0x7ffff000 on every architecture with 4 KiB pages): a longer
 * length given to evq_prep_read/write/recv/send is clamped to it, on every
 * backend, so such an op completes short (never with a length cut to 32
 * bits). readv/writev: the kernel moves at most this much of the iovecs'
 * total, and a linked readv/writev counts as whole when it did. */
#define EVQ_OP_LEN_MAX	((size_t)0x7ffff000)

/* evq_prep_read/write offset meaning "the file's current position". */
#define EVQ_OFFSET_CURRENT ((uint64_t)-1)
/* evq_prep_fsync flags */
#define EVQ_FSYNC_DATASYNC 0x1u

typedef void (*evq_op_cb)(struct evq_loop *loop, struct evq_op *op, int res,
			  unsigned flags);

/* One operation: caller-owned, prepared with an evq_prep_*() call, then
 * submitted. Everything it points to (buffers, iovecs, msghdr, paths,
 * addresses) must stay valid until its final completion. */
struct evq_op {
	void *data;			/* the caller's */
	/* private */
	evq_op_cb cb;
	struct evq_loop *loop;
	struct evq_op *next;		/* the loop's ops in flight */
	struct evq_op *prev;
	struct evq_op *qnext;		/* queue it waits in, if any */
	struct evq_op *link;		/* next op of its chain */
	uint8_t code;			/* enum evq_op_code */
	uint8_t state;
	uint16_t flags;			/* EVQ_OP_LINK | EVQ_OP_MULTISHOT */
	int fd;
	int res;			/* a result waiting to be delivered */
	unsigned cflags;
	union {
		struct { void *buf; size_t len; uint64_t off; } rw;
		struct { const struct iovec *iov; int cnt; uint64_t off; } vec;
		struct { void *buf; size_t len; int flags; } sr;
		struct { struct msghdr *msg; int flags; } msg;
		struct { struct sockaddr *addr; socklen_t *addrlen;
			 int flags; } acc;
		struct { const struct sockaddr *addr; socklen_t len; } conn;
		struct { const char *path; int dirfd; int flags;
			 unsigned mode; } open;
		struct { const char *path; struct statx *stx; int dirfd;
			 int flags; unsigned mask; } stat;
		struct { uint64_t ns; } tmo;
		struct { struct evq_op *target; int fd; } cancel;
		struct { uint64_t off_in, off_out; int fd_in;
			 unsigned len, flags; } splice;
		struct { int domain, type, protocol; unsigned flags; } sock;
		struct { uint64_t off, len; int mode; } falloc;
		struct { const char *oldpath, *newpath; int olddirfd,
			 newdirfd; unsigned flags; } ren;
		int how;
		/* as cancel's first two: the core makes it a cancel */
		struct { struct evq_op *target; int fd; uint64_t ns; } lt;
		struct { struct evq_pool *pool; uint64_t off;
			 int flags; } pool;
		uint64_t fsync_flags;
	} u;
	union {
		struct evq_io io;	/* emulation: waiting for readiness */
		struct evq_timer timer;	/* emulation: a timeout op */
		struct {		/* ops a backend runs natively */
			void *backend[5];	/* the backend's own state */
			struct evq_op *cancel_next, *cancel_prev;
		} native;		/* core: the loop's cancels */
	} wait;
};

/* ------------------------------------------------------------------------
 * Loop
 * ------------------------------------------------------------------------ */

/* Create a loop. opts may be NULL for the defaults. With EVQ_BACKEND_AUTO
 * the environment variable EVQ_BACKEND (uring, aio, epoll, poll) picks the
 * backend; otherwise the best one that works is used. Asking for a backend
 * that this build or kernel lacks returns its error (-ENOTSUP, -ENOSYS,
 * -EPERM, ...) rather than falling back. evq reads every environment
 * variable (EVQ_BACKEND, EVQ_DEBUG, ...) with secure_getenv(): a setuid or
 * setgid program ignores them, as if they were not set. */
EVQ_API int evq_loop_new(struct evq_loop **loopp,
			 const struct evq_loop_options *opts);

/* Free a loop. Every op in flight completes before this returns: ops not
 * started, waiting, or queued for the thread pool with -ECANCELED; ops a
 * pool thread is running are waited for and complete with their own
 * result (so an fd from openat is never lost). On aio, the O_DIRECT
 * transfers and fsyncs the kernel runs are waited for up to 2 s in all;
 * one still running then (a device that does not answer) completes with
 * -ETIMEDOUT and stays the kernel's: it may write into its buffer (or
 * read from it) at any later time, so that buffer must stay allocated
 * for the life of the process, and the aio context is left to the
 * process's exit, which waits for the op. Those callbacks run from
 * here; submitting on this loop then fails with -ESHUTDOWN. Then active
 * watchers are detached: they become inactive, no callback runs, and their
 * memory stays the caller's. Signal claims are released. Returns 0, or
 * -EBUSY when called from inside evq_loop_run() or from a callback that
 * this free runs (evq_loop_run() is -EBUSY there too); the free that runs
 * the callback goes on and completes. */
EVQ_API int evq_loop_free(struct evq_loop *loop);

/* Run the loop (see enum evq_run_mode). EVQ_RUN_DEFAULT runs while
 * evq_loop_active() is not 0: watchers, hooks and ops made not to keep
 * the loop running (evq_io_unref(), EVQ_OP_UNREF, ...) do not hold it,
 * though they run as usual while something else does. Returns 1 if
 * referenced watchers or ops are still active, 0 if none are (or
 * evq_loop_stop() was called and none are), or
 * a negative errno when waiting for events failed; -EBUSY if the loop is
 * already running (callbacks must not re-enter it); -EEXIST (uring) when
 * called from another thread than the one that first ran the loop. */
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

/* Embedding (run this loop inside another one: glib, libev, a plain
 * poll): an fd that becomes readable when the loop has something to do.
 * The host waits for it to be readable, or for evq_loop_timeout() to pass,
 * then calls evq_loop_run(loop, EVQ_RUN_NOWAIT). The fd belongs to the
 * loop: do not close it. It is made on the first call and stays the same
 * open file until evq_loop_free(), so it may be kept in the host's own
 * epoll set. Returns the fd, -EMFILE or -ENOMEM if it cannot be made, or
 * -ENOTSUP on the poll backend, which has no kernel object that says so.
 * On aio it is an eventfd that every completion signals (polls and ops
 * carry IOCB_FLAG_RESFD from the first call on); a watched fd's poll is
 * re-armed by the run after the one that reported it (after its
 * callback), so evq_loop_timeout() says 0 until then: honour it, or a
 * second event on that fd is not seen. It may be readable with nothing
 * for the host to do (a cancelled poll completed): a run then finds
 * nothing, and makes it quiet again (once evq_loop_fd() was called, an
 * EVQ_RUN_NOWAIT run waits with a zero timeout even when nothing is
 * active, so the host never spins on the fd). */
EVQ_API int evq_loop_fd(struct evq_loop *loop);

/* Nanoseconds until the loop must run again even if its fd stays quiet:
 * 0 when work is queued (deferred calls, ops to submit, results to
 * deliver; on aio with a loop fd, polls to re-arm) or a watched regular
 * file is always ready (no kernel wait reports one), the time to the next
 * timer (at most INT64_MAX), or -1 when there is none or its deadline is
 * "never" (see "Durations" under Timers). Never another negative value. */
EVQ_API int64_t evq_loop_timeout(struct evq_loop *loop);

/* Number of active watchers (io, timers, deferred calls, signals, asyncs,
 * hooks, children, ports) and ops in flight that keep the loop running: those
 * made not to (evq_io_unref() and the like, ops submitted with
 * EVQ_OP_UNREF) are not counted. evq_loop_run(EVQ_RUN_DEFAULT) returns
 * when it is zero. */
EVQ_API unsigned evq_loop_active(const struct evq_loop *loop);

/* ------------------------------------------------------------------------
 * fd watchers
 * ------------------------------------------------------------------------ */

/* The most reports a watcher gets for a file that stays open elsewhere
 * (dup, fork) after its fd was closed behind the loop's back (epoll, uring),
 * or for a file that reused its number (aio; see close-safety at
 * evq_io_start): then it is stopped. */
#define EVQ_IO_STALE_LIMIT 64

/* Start watching fd for events (EVQ_READ and/or EVQ_WRITE, optionally
 * EVQ_EDGE or EVQ_ONESHOT). The fd is registered with the kernel here, so
 * a closed fd is reported now (-EBADF). Starting an active watcher with a
 * new fd or events restarts it. Returns -EINVAL for a NULL pointer, a
 * negative fd, no events or unknown bits; -EINVAL for an EVQ_EDGE watcher
 * on an fd that has level-triggered watchers in this loop (or the other
 * way round); -ENOTSUP for EVQ_EDGE on a backend that cannot do it.
 *
 * Close-safety: if fd is closed (plain close()) while the watcher is
 * active, the watcher is not run for any event the loop collects after
 * the close, even when the fd number is reused and watched by another
 * watcher; it is stopped when evq notices (at the latest when a watcher
 * starts on the reused number). These limits, each because checking would
 * cost a syscall per event (docs/ARCHITECTURE.md):
 *  - a report collected before the close, in the same batch as the
 *    callback that closed the fd, is still delivered;
 *  - epoll and uring (which waits on an epoll set): if the file stays open
 *    elsewhere (dup, fork), the kernel keeps reporting it under the old
 *    fd until evq notices, which it does within EVQ_IO_STALE_LIMIT
 *    reports of the fd (it checks the registration once per that many);
 *  - poll: a number reused by a file that no watcher starts on is polled
 *    for the old watcher;
 *  - aio: a pending poll keeps the closed file open (a socket's peer sees
 *    no EOF) until evq notices; the file's next event still reaches the
 *    watcher, once: the poll's re-arm then finds the number closed and
 *    ends the watch. As with poll, a number reused (before that re-arm)
 *    by a file that no watcher starts on is polled for the old watcher,
 *    for at most EVQ_IO_STALE_LIMIT reports (docs/BACKENDS.md).
 * Stop a watcher (or close its fd with an evq close op) before closing
 * and none of these can happen. */
EVQ_API int evq_io_start(struct evq_loop *loop, struct evq_io *w, int fd,
			 unsigned events, evq_io_cb cb);

/* Change the events of an active watcher, also from inside a callback;
 * EVQ_EDGE/EVQ_ONESHOT cannot change here. Applied before the loop next
 * waits; an event already reported for this iteration is delivered only
 * if it is still wanted. Returns -EINVAL if w is not active. */
EVQ_API int evq_io_set(struct evq_io *w, unsigned events);

/* Start a stopped watcher again with the fd, events and callback of its
 * last start. The caller promises that the fd has not been closed since: then,
 * when the kernel still has the fd registered (the stop is not applied
 * yet, as when a watcher is stopped and restarted in one iteration), no
 * syscall is made; evq_io_start() assumes nothing and checks the file
 * (one syscall). Breaking the promise can leave the watcher waiting on a
 * file that is gone. Returns 0 (also when w is active), -EINVAL if w was
 * never started or its loop was freed (w active or stopped then; the
 * freed loop is not read, its address may belong to a new loop). */
EVQ_API int evq_io_restart(struct evq_io *w);

/* The old name of evq_io_restart(), kept until 1.0 (code written against
 * 0.1 uses it); the same call. */
EVQ_API int evq_io_resume(struct evq_io *w);

/* Stop a watcher. Stopping an inactive watcher is a no-op. After this
 * returns the callback never runs for w, even if its event is already
 * pending in the current iteration. Returns 0, -EINVAL for NULL. */
EVQ_API int evq_io_stop(struct evq_io *w);

/* 1 if the watcher is active, else 0. */
EVQ_API int evq_io_is_active(const struct evq_io *w);

/* The fd of the watcher's last start, also once it is stopped (so a
 * callback need not carry the fd in data): -EINVAL for NULL or a watcher
 * never started. */
EVQ_API int evq_io_fd(const struct evq_io *w);

/* The events of the watcher's last start or evq_io_set(): EVQ_READ and/or
 * EVQ_WRITE, with EVQ_EDGE or EVQ_ONESHOT if it was started with them;
 * 0 for NULL or a watcher never started. Not what happened: that is the
 * callback's revents. */
EVQ_API unsigned evq_io_events(const struct evq_io *w);

/* Reference counting, libuv's uv_unref/uv_ref and libev's ev_unref: an
 * unref'd watcher works as usual but does not keep the loop running
 * (evq_loop_active() does not count it), so evq_loop_run() in
 * EVQ_RUN_DEFAULT returns once only such watchers remain. The mark is the
 * watcher's, not its start's: it may be set before or while the watcher is
 * active, and it stays across stop and start until evq_io_ref() takes it
 * off. Both are idempotent and return 0, or -EINVAL for NULL. The same pair
 * exists for timers, signals, asyncs and hooks; an op is made not to keep
 * the loop running by submitting it with EVQ_OP_UNREF. A deferred call
 * has none: it keeps the loop for one iteration at most. */
EVQ_API int evq_io_unref(struct evq_io *w);
EVQ_API int evq_io_ref(struct evq_io *w);

/* ------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

/* Durations, the one rule for every nanosecond count evq takes (a timer's
 * after_ns and repeat_ns, a timeout op's ns): the deadline is the current
 * CLOCK_MONOTONIC time plus ns, saturating. A sum that would pass
 * UINT64_MAX is UINT64_MAX, and that deadline means "never": the timer or
 * op stays active (and keeps the loop running) but never fires, and
 * evq_loop_timeout() reports -1 for it. Any other deadline is a real one,
 * however far. So UINT64_MAX always says "forever", whatever the time.
 * (On uring a timeout op is the kernel's timer, which ends its own clock
 * at INT64_MAX ns, 292 years after boot: also never, in practice.) */

/* Fire after `after_ns` nanoseconds, measured from this call (never
 * earlier), then every `repeat_ns` if that is not 0; both follow the
 * saturation rule above, so a repeat that would pass the end of the clock
 * fires once and then never again. Starting an active timer re-schedules
 * it. A repeating timer that falls behind skips the missed periods rather
 * than firing in a burst. */
EVQ_API int evq_timer_start(struct evq_loop *loop, struct evq_timer *t,
			    uint64_t after_ns, uint64_t repeat_ns,
			    evq_timer_cb cb);

/* Stop a timer; a no-op when it is not active. */
EVQ_API int evq_timer_stop(struct evq_timer *t);

EVQ_API int evq_timer_is_active(const struct evq_timer *t);

/* Let the timer not keep the loop running, or again keep it (as for
 * evq_io_unref). */
EVQ_API int evq_timer_unref(struct evq_timer *t);
EVQ_API int evq_timer_ref(struct evq_timer *t);

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

/* Let the signal watcher not keep the loop running, or again keep it (as
 * for evq_io_unref): a SIGTERM watcher that shuts the program down when
 * the signal comes, but lets evq_loop_run() return when the work is
 * done. The signal stays claimed and blocked while the watcher is
 * active. */
EVQ_API int evq_signal_unref(struct evq_signal *s);
EVQ_API int evq_signal_ref(struct evq_signal *s);

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

/* Let the async not keep the loop running, or again keep it (as for
 * evq_io_unref). Loop thread only, like start and stop. */
EVQ_API int evq_async_unref(struct evq_async *a);
EVQ_API int evq_async_ref(struct evq_async *a);

/* ------------------------------------------------------------------------
 * Cross-loop messages
 *
 * Several loops, one per thread (the way a server uses every core), send
 * each other small messages: a pointer and a number, in a struct evq_msg
 * the sender owns (embed it in what the pointer points to, or keep a
 * free list: evq allocates nothing per message). The receiving loop has a
 * port (evq_port_start); evq_msg_send() puts the message on the port's
 * queue, from any thread, and the port's callback runs in the receiving
 * loop's thread with the message.
 *
 * The guarantees:
 *  - in order per sender: two messages one thread sends to one port are
 *    delivered in the order of the sends (messages of different threads
 *    interleave in no promised order);
 *  - never lost: a send that returned 0 is delivered exactly once, by
 *    the port's callback: in the receiving loop's run, or, when the port
 *    is stopped first, inside evq_port_stop() (the loop's evq_loop_free()
 *    stops its ports); a send that failed left the message the sender's;
 *  - never blocking: a send is one compare and swap (retried under
 *    contention, no lock), and, for the one that finds the queue empty,
 *    a wakeup, itself non-blocking; the queue has no bound (its nodes are
 *    the callers'), so a receiver that does not run makes nobody wait
 *    and nobody fail;
 *  - one wakeup per batch: only the send that finds the queue empty wakes
 *    the receiver, which then takes everything queued at once; so a
 *    million messages cost as many wakeups as the receiver had batches,
 *    not a million.
 *
 * The queue is a lock-free LIFO of the callers' nodes (a compare and swap
 * on its head per send; the receiver takes the whole list with one
 * exchange and reverses it), the Linux kernel's llist: unlike a linked
 * FIFO with an exchange on the tail (Vyukov's), a sender stopped halfway
 * never keeps the receiver from the messages before it.
 *
 * The wakeup is the doorbell of the receiving loop's backend:
 *  - between two io_uring loops (a send made from inside the sending
 *    loop's run, `from` being that loop): IORING_OP_MSG_RING (Linux 5.18;
 *    evq uses it from 6.3, see docs/BACKENDS.md). The sending ring posts
 *    a completion into the receiving ring: the SQE goes to the kernel with
 *    the sending loop's next wait (no syscall of its own; evq_loop_run()
 *    submits what is left when it returns), and the receiver finds it
 *    among its completions (no syscall on its side, no eventfd);
 *  - otherwise (epoll, poll or aio, loops of different backends, `from`
 *    NULL, a kernel without MSG_RING, EVQ_URING_NO_MSG_RING=1): the
 *    receiving loop's eventfd, the one evq_async_send() writes: one
 *    write(2) per wakeup, one read(2) in the receiver.
 * Only the wakeup differs: the messages always go through the queue, so
 * order and delivery do not depend on which one rang. Why not one
 * MSG_RING completion per message: it costs a kernel request per message
 * (and an allocation in the kernel for a DEFER_TASKRUN receiver, which
 * evq's rings are), a completion that fails (the receiving ring not
 * enabled yet, out of memory) would lose or reorder the message, and it
 * is only possible between two io_uring loops. A doorbell carries
 * nothing: a late, repeated or failed one loses nothing. A MSG_RING
 * doorbell can only fail when the kernel is out of memory; the messages
 * then wait, queued, for the port's next doorbell or its stop.
 * ------------------------------------------------------------------------ */

/* Start p on loop (from the loop's thread): messages sent to it are
 * delivered by cb, in loop's thread, once each, in order per sender, in
 * the iteration after the wakeup (with the fd callbacks of the wait that
 * found it). cb owns m from then on: it may free it, reuse it, or send
 * it on (a reply can reuse the request's node). An active port counts in
 * evq_loop_active() (unless unref'd), so evq_loop_run() in
 * EVQ_RUN_DEFAULT waits for messages while one is active. Any number of
 * ports per loop. p must be zeroed before its first start. Returns 0,
 * -EINVAL for a NULL pointer, -EBUSY if p is active, or the error of
 * making the loop's wakeup eventfd (-EMFILE, ...). */
EVQ_API int evq_port_start(struct evq_loop *loop, struct evq_port *p,
			   evq_port_cb cb);

/* Send m to the port `to`, from any thread, without blocking; fill
 * m->ptr and m->tag first. `from` is the caller's own loop when called
 * from that loop's thread (the io_uring doorbell needs it: it is
 * submitted from the sender's ring), or NULL from any other thread (a
 * thread without a loop, a signal handler: the send is then
 * async-signal-safe). m is the port's from a 0 return until its callback
 * has it; it must not be sent again before that. Returns 0; -EINVAL for
 * a NULL `to` or m; -EPIPE if the port is not active (never started, or
 * stopped: m stays the caller's). The port's memory must stay valid while
 * any thread may still send to it. */
EVQ_API int evq_msg_send(struct evq_loop *from, struct evq_port *to,
			 struct evq_msg *m);

/* Stop p (from its loop's thread). Sends that come after fail with
 * -EPIPE; every message whose send returned 0 is delivered before this
 * returns: those not delivered yet are passed to the callback from inside
 * this call, in order (the callback sees evq_port_is_active() == 0). A
 * send racing with the stop either fails or is delivered here; a send
 * that is ringing the port's wakeup is waited for (a few instructions).
 * After it returns, no send that returned 0 touches p any more: it may be
 * freed once no thread can still call evq_msg_send() on it (say, once
 * each sender's last message came). A no-op when p is not
 * active (also from its callback while the stop drains it). One
 * exception to "before this returns": a callback that starts p again
 * during the drain takes the messages not delivered yet over to the
 * restarted port, which delivers them in its loop's runs, in order. */
EVQ_API int evq_port_stop(struct evq_port *p);

EVQ_API int evq_port_is_active(const struct evq_port *p);

/* Let the port not keep the loop running, or again keep it (as for
 * evq_io_unref): a loop that also serves other work and should end with
 * it. Messages sent to an unref'd port are still delivered while the
 * loop runs, and by evq_port_stop() or evq_loop_free() otherwise. Loop
 * thread only. */
EVQ_API int evq_port_unref(struct evq_port *p);
EVQ_API int evq_port_ref(struct evq_port *p);

/* ------------------------------------------------------------------------
 * Loop hooks: prepare, check, idle
 *
 * What integrations with other libraries need (libev's ev_prepare,
 * ev_check, ev_idle; libuv's uv_prepare_t, uv_check_t, uv_idle_t). In one
 * iteration of evq_loop_run():
 *   EVQ_HOOK_PREPARE  runs first, before the deferred calls run, the
 *                     submitted ops start and interest changes reach the
 *                     kernel: what a prepare callback starts, submits or
 *                     changes is part of the wait that follows;
 *   EVQ_HOOK_CHECK    runs right after the wait returns (also when it
 *                     was interrupted), before the callbacks of what it
 *                     found (fds, op results, then timers);
 *   EVQ_HOOK_IDLE     while one is active the loop never blocks (its
 *                     waits only look); runs after a look that found
 *                     nothing to do: no fd event, no op result, no timer
 *                     due, no work queued.
 * Hooks of a kind run in the order they were started; one started while
 * the hooks of its kind run waits for their next run. Active hooks count in
 * evq_loop_active(), so an idle hook keeps the loop spinning and a
 * prepare hook keeps it running, unless unref'd.
 * ------------------------------------------------------------------------ */

/* Start h as a hook of this kind. Starting an active hook restarts it
 * with the new kind and callback (it then runs after the hooks already
 * there). Returns 0, or -EINVAL for a NULL pointer or an unknown kind. */
EVQ_API int evq_hook_start(struct evq_loop *loop, struct evq_hook *h,
			   enum evq_hook_kind kind, evq_hook_cb cb);

/* Stop a hook; a no-op when it is not active. After this returns its
 * callback does not run, even later in the pass that is running. */
EVQ_API int evq_hook_stop(struct evq_hook *h);

EVQ_API int evq_hook_is_active(const struct evq_hook *h);

/* Let the hook not keep the loop running, or again keep it (as for
 * evq_io_unref). An unref'd idle hook still keeps the loop from
 * blocking while anything else keeps it running. */
EVQ_API int evq_hook_unref(struct evq_hook *h);
EVQ_API int evq_hook_ref(struct evq_hook *h);

/* ------------------------------------------------------------------------
 * Child processes
 * ------------------------------------------------------------------------ */

/* Watch pid, a child of this process, until it exits: then the watcher
 * stops, the child is reaped (waitid on its pidfd, Linux 5.3) and cb runs
 * once with its status as waitpid(2) gives it (WIFEXITED(status), ...).
 * A stopped or continued child is not reported. Nothing process-wide is
 * used (no SIGCHLD handler), so any number of loops may watch children,
 * each its own; a pid watched from two loops is reaped by one, and the
 * other gets -ECHILD. The caller's own waitpid(): a wait for another pid
 * is fine; one that reaps the watched child (waitpid(-1), or SIGCHLD set
 * to SIG_IGN) makes the watcher's status -ECHILD. A child that exited
 * before the start is reported on the loop's next iteration. Returns 0;
 * -EINVAL for NULL or pid <= 0; -ESRCH when there is no such process;
 * -ECHILD when pid is not a child of this process or is reaped already;
 * -ENOSYS on kernels before 5.3 (no pidfd: there is no fallback, so that
 * one loop never steals another's children through SIGCHLD); -EMFILE;
 * -EBUSY if c is active. */
EVQ_API int evq_child_start(struct evq_loop *loop, struct evq_child *c,
			    int pid, evq_child_cb cb);

/* Stop watching; the child is not reaped (the caller's to wait for). A
 * no-op when c is not active. */
EVQ_API int evq_child_stop(struct evq_child *c);

EVQ_API int evq_child_is_active(const struct evq_child *c);

/* Let the watcher not keep the loop running, or again keep it (as for
 * evq_io_unref). */
EVQ_API int evq_child_unref(struct evq_child *c);
EVQ_API int evq_child_ref(struct evq_child *c);

/* ------------------------------------------------------------------------
 * Operations (the completion API)
 *
 * Prepare an op, submit it, and its callback runs once with the result,
 * like an io_uring CQE: res is a byte count, a new fd or 0, or -errno.
 * Submission only queues: the loop starts queued ops on its next
 * iteration, all at once, and callbacks always run from the loop, never
 * inside evq_op_submit(). Ops work on blocking and non-blocking fds alike.
 *
 * Multishot (EVQ_OP_MULTISHOT, for accept and for recv from a pool): the
 * callback runs once per result with EVQ_OP_F_MORE while the op stays
 * armed; the last call has no EVQ_OP_F_MORE (after a cancel, an error,
 * EOF, or an empty pool). The last call may also carry a result: the
 * kernel can end a multishot op at any time (io_uring does when its
 * completion queue is full), and that call then has res > 0 (recv: the
 * data, with EVQ_OP_F_BUFFER and its buffer id; accept: a new fd). Take
 * it as any other result, then submit the op again to go on. Only after
 * the last call may the op be reused.
 *
 * Chains (EVQ_OP_LINK): the next op submitted on the loop, before the loop
 * starts its next iteration, runs only after this one fully succeeded
 * (every byte for reads and writes; res >= 0 otherwise; a timeout op's
 * expiry counts as success). Otherwise the rest of the chain completes
 * with -ECANCELED, in order. A linked recv or send (not from a pool)
 * waits for all its bytes, like MSG_WAITALL, even when nothing follows
 * it: it completes whole, or short only at EOF or an error, which breaks
 * the chain. readv/writev succeed when every iovec byte moved;
 * recvmsg/sendmsg, the datagram calls, with any count >= 0. An op with
 * EVQ_OP_LINK that ends before the next op is submitted (a cancel or a
 * close op ended it, or the chain broke before it) still heads what is
 * submitted next in that iteration: it runs on its own after a success,
 * and completes with -ECANCELED after a failure.
 *
 * Reuse: after its last call (for a multishot op or a send_zc, the one
 * without EVQ_OP_F_MORE) an op is idle, and evq_op_is_active() says 0
 * already inside that call, so the callback may prepare and submit it again, or
 * free it.
 *
 * A cancel finds ops that started before it did; an op submitted after the
 * cancel in the same iteration may or may not be found (io_uring takes
 * SQEs in order). write/writev to a pipe or socket whose reader is gone
 * raise SIGPIPE, as write(2) does; send/sendmsg never do (MSG_NOSIGNAL).
 *
 * Backends: uring runs ops natively; aio runs O_DIRECT transfers and fsync
 * natively and emulates the rest. epoll and poll emulate them: sockets
 * and pipes by trying the non-blocking syscall and waiting for readiness
 * on EAGAIN; regular files and the ops that have no readiness (openat,
 * statx, fsync, close, and reads and writes that would block on a file) in
 * a small thread pool of the loop (evq_loop_options.threads).
 * ------------------------------------------------------------------------ */

EVQ_API void evq_prep_nop(struct evq_op *op);
/* offset: a file position, or EVQ_OFFSET_CURRENT */
EVQ_API void evq_prep_read(struct evq_op *op, int fd, void *buf, size_t len,
			   uint64_t offset);
EVQ_API void evq_prep_write(struct evq_op *op, int fd, const void *buf,
			    size_t len, uint64_t offset);
EVQ_API void evq_prep_readv(struct evq_op *op, int fd,
			    const struct iovec *iov, int iovcnt,
			    uint64_t offset);
EVQ_API void evq_prep_writev(struct evq_op *op, int fd,
			     const struct iovec *iov, int iovcnt,
			     uint64_t offset);
/* flags: MSG_* flags for recv(2)/send(2) */
EVQ_API void evq_prep_recv(struct evq_op *op, int fd, void *buf, size_t len,
			   int flags);
EVQ_API void evq_prep_send(struct evq_op *op, int fd, const void *buf,
			   size_t len, int flags);
EVQ_API void evq_prep_recvmsg(struct evq_op *op, int fd, struct msghdr *msg,
			      int flags);
EVQ_API void evq_prep_sendmsg(struct evq_op *op, int fd,
			      const struct msghdr *msg, int flags);
/* flags: SOCK_NONBLOCK | SOCK_CLOEXEC for the new socket; addr and
 * addrlen may be NULL. res is the new fd. */
EVQ_API void evq_prep_accept(struct evq_op *op, int fd, struct sockaddr *addr,
			     socklen_t *addrlen, int flags);
EVQ_API void evq_prep_connect(struct evq_op *op, int fd,
			      const struct sockaddr *addr, socklen_t addrlen);
/* res is the new fd */
EVQ_API void evq_prep_openat(struct evq_op *op, int dirfd, const char *path,
			     int flags, unsigned mode);
EVQ_API void evq_prep_statx(struct evq_op *op, int dirfd, const char *path,
			    int flags, unsigned mask, struct statx *stx);
/* fsync_flags: 0 or EVQ_FSYNC_DATASYNC (fdatasync) */
EVQ_API void evq_prep_fsync(struct evq_op *op, int fd, unsigned fsync_flags);
/* Close fd. Watchers and ops of this loop on fd are ended first: watchers
 * stop, pending ops complete with -ECANCELED. An op that a pool thread
 * already runs on fd (epoll, poll, aio: a file read or write, fsync)
 * cannot be ended: the close waits for it to finish, so that it never
 * acts on a file that takes the number next. A close never needs a new
 * fd, so it works at RLIMIT_NOFILE (the emulating backends then close on
 * the loop's thread when their thread pool cannot be made). */
EVQ_API void evq_prep_close(struct evq_op *op, int fd);
/* Complete with -ETIME after ns nanoseconds (measured from the start of
 * the op; never earlier). A huge ns follows the saturation rule
 * ("Durations" under Timers): UINT64_MAX never completes by itself. */
EVQ_API void evq_prep_timeout(struct evq_op *op, uint64_t ns);
/* A timeout for the op submitted just before it with EVQ_OP_LINK (the
 * target), as io_uring's IORING_OP_LINK_TIMEOUT: "this recv, but at most
 * ns". Its clock starts when the target starts (after the ops the target
 * waits for in its chain). If the target completes first, with any
 * result, the timeout completes with -ECANCELED. If the time runs out
 * first, the target is cancelled and completes with -ECANCELED (on uring
 * -EINTR if the kernel was inside a blocking call), and then the timeout
 * completes with -ETIME; or, when the target could not be stopped any
 * more (a pool thread runs it; on uring: the kernel had finished it),
 * with -EALREADY (on uring also -ENOENT) while the target completes with
 * its own result. The target's callback runs before the timeout's.
 * The target is not made to wait for all its bytes as a linked recv or
 * send otherwise is: a recv with a timeout completes with what came.
 * Submitted with EVQ_OP_LINK itself, the op after it runs when the
 * target fully succeeded (the chain rules above: a short recv does not),
 * as if the timeout were not there, and completes with -ECANCELED
 * otherwise. evq_op_submit() says -EINVAL when the op before it was not
 * submitted with EVQ_OP_LINK in this iteration (or is a link timeout).
 * Cancelling the timeout (evq_prep_cancel) leaves the target running
 * without it. ns follows the saturation rule as evq_prep_timeout's.
 *
 * Every backend runs it in the core, with a timer; on uring too: evq
 * never links SQEs (see "Chains"; io_uring's cancel cannot find a held
 * linked request), so a fired timeout cancels its target by address. */
EVQ_API void evq_prep_link_timeout(struct evq_op *op, uint64_t ns);
/* Cancel one op. res: 0 when the target was cancelled (it completes with
 * -ECANCELED, or, multishot, with a last call without EVQ_OP_F_MORE);
 * -ENOENT when it is not in flight (on uring also when it has just
 * finished and its own callback is still to come); -EALREADY when it is
 * already running
 * where it cannot be stopped (a blocking call in a pool thread): it then
 * completes with its own result. Order, on every backend: with res 0 the
 * target's last callback has run before the cancel's callback runs, so
 * the cancel's callback may free the target. A target that is not in
 * flight is found by its address only, never read: it may have been
 * freed. */
EVQ_API void evq_prep_cancel(struct evq_op *op, struct evq_op *target);
/* Cancel every op in flight on fd. res: how many were cancelled, or
 * -ENOENT if none was found. The cancelled ops' callbacks run before this
 * op's on the emulating backends; on uring they may come in either order
 * (the kernel does not say which ops it cancelled). */
EVQ_API void evq_prep_cancel_fd(struct evq_op *op, int fd);
/* Move up to len bytes from fd_in to fd_out without copying them through
 * user space, as splice(2) and io_uring's IORING_OP_SPLICE: one of the two
 * fds must be a pipe. off_in/off_out: a file position (the file's own
 * position is left alone), or -1 for the current position, and -1 for a
 * pipe or socket (else -ESPIPE). splice_flags: SPLICE_F_MOVE,
 * SPLICE_F_MORE, SPLICE_F_NONBLOCK (then a pipe that is not ready
 * completes the op with -EAGAIN instead of waiting); others: -EINVAL.
 * res: the bytes moved, maybe fewer than len (what the pipe held, or had
 * room for), 0 at the end of fd_in, or -errno (-EINVAL when neither fd is
 * a pipe). len is clamped as for read (EVQ_OP_LEN_MAX). A pipe or socket
 * whose reader is gone raises SIGPIPE, as write(2) does. A close op of
 * either fd ends the op (-ECANCELED, or -EINTR on uring when the kernel
 * was in the call), so that it never acts on a file that takes the
 * number next. evq_prep_cancel_fd() finds it by either fd on the
 * emulating backends, and by fd_out on uring once the kernel has begun
 * it (io_uring takes a splice's files then): to be sure, cancel it by
 * op.
 *
 * uring: native (Linux 5.7); a non-blocking side that is not ready is
 * waited for, as elsewhere (io_uring alone would say -EAGAIN), unless
 * SPLICE_F_NONBLOCK was given. Elsewhere, the emulation never blocks the
 * loop's thread: with only pipes and non-blocking sockets (or other
 * O_NONBLOCK fds) on both sides, the loop tries splice(2) with
 * SPLICE_F_NONBLOCK, and on EAGAIN looks (poll, no wait) which side is
 * not ready and waits for that one's readiness. A regular file or block
 * device side may block on the disk, and a blocking socket on the
 * network: then the loop waits until the other sides are ready, and
 * a thread of the pool makes the splice(2) (a race with another user of
 * the pipe can make that thread wait, as a blocking read there would). */
EVQ_API void evq_prep_splice(struct evq_op *op, int fd_in, int64_t off_in,
			     int fd_out, int64_t off_out, size_t len,
			     unsigned splice_flags);
/* send, without copying buf where the kernel can (io_uring's
 * IORING_OP_SEND_ZC): the kernel sends from buf itself, so buf must stay
 * unchanged until the kernel says it is done with it. The callback runs
 * twice: first with the send's result (the bytes sent, or -errno) and
 * EVQ_OP_F_MORE, then with res 0 and EVQ_OP_F_NOTIF, the notification,
 * which is the op's last call. The buffer may be reused, and the op
 * submitted again, after the last call (the one without EVQ_OP_F_MORE),
 * never before: that is the notification, or a single call when no
 * notification comes (an error before the send began, a cancel of an op
 * that waited for room, or, emulated, no memory for the second result).
 * flags: MSG_* as for evq_prep_send; MSG_NOSIGNAL is added. Only TCP and
 * UDP sockets can: on any other fd, -EOPNOTSUPP (-ENOTSOCK for a file),
 * on every backend. Linked (EVQ_OP_LINK), the chain goes on after the
 * last call when the send moved every byte; no MSG_WAITALL is added as
 * for send.
 *
 * uring: native (6.0), zero copy; evq_loop_free() waits for the
 * notifications still to come (for TCP, until the data is acknowledged).
 * Elsewhere, and on a kernel without the opcode: a plain send, as
 * evq_prep_send's (the bytes are copied: no zero copy there), then at
 * once the notification, so that code written for uring runs unchanged;
 * a full socket is waited for as for send. */
EVQ_API void evq_prep_send_zc(struct evq_op *op, int fd, const void *buf,
			      size_t len, int flags);
/* Shut down part of a full-duplex connection, as shutdown(2) with how
 * SHUT_RD, SHUT_WR or SHUT_RDWR: after SHUT_WR the peer reads EOF once it
 * has read what was sent. res: 0 or -errno (-EINVAL for a bad how,
 * -ENOTSOCK, -ENOTCONN, -EBADF). uring: native (5.11); elsewhere a
 * shutdown(2) in the loop (it never blocks). */
EVQ_API void evq_prep_shutdown(struct evq_op *op, int fd, int how);
/* Make a socket, as socket(2): type may include SOCK_NONBLOCK and
 * SOCK_CLOEXEC. flags: 0 (io_uring's; anything else is -EINVAL). res is
 * the new fd, or -errno (-EAFNOSUPPORT, -EINVAL, -EMFILE, ...). The new
 * fd is the callback's to keep or close: a cancel that comes too late
 * says -EALREADY (or, on uring, -ENOENT) and the fd is delivered, never
 * lost; so a callback is required (evq_op_submit: -EINVAL without).
 * uring: native (5.19); elsewhere a socket(2) in the loop (it never
 * blocks). */
EVQ_API void evq_prep_socket(struct evq_op *op, int domain, int type,
			     int protocol, unsigned flags);
/* Allocate (or, with mode's FALLOC_FL_* flags, punch, zero, ...) the
 * bytes [offset, offset + len) of the file fd, as fallocate(2). res: 0
 * or -errno (-EOPNOTSUPP where the file system lacks the mode, -ENOSPC,
 * -EBADF, -EINVAL). uring: native (5.6); elsewhere the loop's thread
 * pool (it may write to the disk). */
EVQ_API void evq_prep_fallocate(struct evq_op *op, int fd, int mode,
				uint64_t offset, uint64_t len);
/* unlinkat(2): remove path (a directory with AT_REMOVEDIR in flags),
 * relative to dirfd (AT_FDCWD: the current directory). res: 0 or -errno
 * (-ENOENT, -ENOTEMPTY, -EISDIR, -EFAULT for a NULL path, ...). The path
 * must stay valid until the op completes, as for openat. uring: native
 * (5.11); elsewhere the loop's thread pool, as openat and statx. */
EVQ_API void evq_prep_unlinkat(struct evq_op *op, int dirfd, const char *path,
			       int flags);
/* renameat2(2): move oldpath (relative to olddirfd) to newpath (relative
 * to newdirfd); flags: 0, RENAME_NOREPLACE, RENAME_EXCHANGE, ... res: 0
 * or -errno (-ENOENT, -EEXIST with RENAME_NOREPLACE, -EXDEV, -EFAULT for
 * a NULL path, ...). Both paths must stay valid until the op completes.
 * uring: native (5.11); elsewhere the loop's thread pool. */
EVQ_API void evq_prep_renameat(struct evq_op *op, int olddirfd,
			       const char *oldpath, int newdirfd,
			       const char *newpath, unsigned flags);
/* mkdirat(2): make the directory path, relative to dirfd, with mode (less
 * the umask). res: 0 or -errno (-EEXIST, -ENOENT, -EFAULT for a NULL
 * path, ...). The path must stay valid until the op completes. uring:
 * native (5.15); elsewhere the loop's thread pool. */
EVQ_API void evq_prep_mkdirat(struct evq_op *op, int dirfd, const char *path,
			      unsigned mode);
/* recv/read into a buffer the pool picks when data arrives. flags as for
 * recv; offset as for read. The callback gets EVQ_OP_F_BUFFER and the id
 * in its flags; the buffer is evq_pool_buf(pool, id) and must be handed
 * back with evq_pool_release(). An empty pool completes the op with
 * -ENOBUFS (a multishot op stops); no data is lost: it stays in the
 * socket until a recv is submitted again. */
EVQ_API void evq_prep_recv_pool(struct evq_op *op, int fd,
				struct evq_pool *pool, int flags);
EVQ_API void evq_prep_read_pool(struct evq_op *op, int fd,
				struct evq_pool *pool, uint64_t offset);

/* Submit a prepared op with EVQ_OP_LINK/EVQ_OP_MULTISHOT flags, and
 * EVQ_OP_UNREF for an op that should not keep the loop running (it is not
 * counted by evq_loop_active(); evq_loop_ops() counts it). Returns 0;
 * -EINVAL for a NULL loop or op, an unprepared op, unknown flags,
 * multishot on an op that cannot be, or a link timeout with no op to
 * watch (evq_prep_link_timeout); -EBUSY if op is still in flight;
 * -ESHUTDOWN while the loop is being freed. Errors of the operation
 * itself go to cb.
 *
 * Fire and forget: cb may be NULL, and then the result is dropped (a
 * close, a write, an fsync nobody waits for). The op is still in flight
 * until it completes: its memory, and what it points to, must stay valid
 * until evq_op_is_active() says 0 (or the loop is freed), and it links,
 * cancels and counts as any op. Ops whose result is a resource the caller
 * would lose, an fd (accept, openat, socket) or a pool buffer (recv_pool,
 * read_pool), need a callback: -EINVAL. The loop's callbacks get loop as
 * their first argument, so an op has no getter for its loop. */
EVQ_API int evq_op_submit(struct evq_loop *loop, struct evq_op *op,
			  unsigned flags, evq_op_cb cb);

/* 1 if op is in flight (submitted, final completion not yet delivered). */
EVQ_API int evq_op_is_active(const struct evq_op *op);

/* Ops in flight on the loop (also counted by evq_loop_active()). */
EVQ_API unsigned evq_loop_ops(const struct evq_loop *loop);

/* ------------------------------------------------------------------------
 * Buffer pools
 * ------------------------------------------------------------------------ */

/* A pool of nbufs buffers of size bytes each, on one loop, for
 * evq_prep_recv_pool/evq_prep_read_pool. nbufs: 1..32768, a power of two;
 * size: 1..(1 << 30); -EINVAL otherwise, -ENOMEM when nbufs * size does
 * not fit the address space (a 32-bit build) or cannot be allocated. The
 * memory is allocated here, once, and starts zeroed: a buffer holds only
 * what evq received into it, so sending a whole buffer leaks nothing. */
EVQ_API int evq_pool_new(struct evq_loop *loop, struct evq_pool **poolp,
			 unsigned nbufs, size_t size);

/* Free a pool. -EBUSY while an op in flight uses it. Buffers not yet
 * released become invalid. A pool may be freed after its loop (the loop's
 * free detaches it), but must be freed. */
EVQ_API int evq_pool_free(struct evq_pool *pool);

/* The buffer with this id, or NULL for a bad id. */
EVQ_API void *evq_pool_buf(struct evq_pool *pool, unsigned id);

/* Hand a buffer back. -EINVAL for a bad id or one that is not out. */
EVQ_API int evq_pool_release(struct evq_pool *pool, unsigned id);

/* Buffers currently available to the kernel/emulation. */
EVQ_API unsigned evq_pool_available(const struct evq_pool *pool);

/* The size of each buffer, and how many buffers the pool has, as given to
 * evq_pool_new(); 0 for NULL. Valid also after the pool's loop is freed. */
EVQ_API size_t evq_pool_buf_size(const struct evq_pool *pool);
EVQ_API unsigned evq_pool_buf_count(const struct evq_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* EVQ_H */
