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

/* Every source file includes this first, before any system header. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#define EVQ_BUILDING 1
#include "evq.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

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

/* evq_io.state bit of an internal watcher: when the core ends its watch
 * (the fd was found closed, or a close op ended it), its callback is
 * called once more, after it stopped, with EVQ__NVAL (core/emul.c: an
 * op's wait). It may only take note: this can run inside an API call. */
#define EVQ__TELL_END 0x4u

/* A user watcher's mark that it does not keep the loop running (evq.h,
 * evq_io_unref): a bit of evq_io.state and of the other watchers' flags.
 * It stays across stop and start. Internal watchers never have it. */
#define EVQ__UNREF 0x8u

/* evq_op.state */
enum {
	EVQ__OP_IDLE = 0,	/* not in flight */
	EVQ__OP_QUEUED,		/* submitted; starts next iteration */
	EVQ__OP_HELD,		/* chained behind an op not yet complete */
	EVQ__OP_WAIT_IO,	/* emulation: waiting for readiness */
	EVQ__OP_WAIT_TIMER,	/* emulation: timeout op */
	EVQ__OP_POOL_QUEUED,	/* emulation: in the thread pool's queue */
	EVQ__OP_POOL_RUNNING,	/* emulation: a pool thread runs it */
	EVQ__OP_DONE,		/* emulation: last result reported, not yet
				 * delivered */
	EVQ__OP_NATIVE,		/* handed to the backend (op_start) */
	EVQ__OP_CLOSE_WAIT,	/* emulation: a close op waits for the ops
				 * on its fd that pool threads are running */
	EVQ__OP_XFER,		/* emulation: its non-blocking transfer is
				 * in the backend's batch (xfer_queue); its
				 * result comes through
				 * evq__emul_xfer_done */
	EVQ__OP_KERNEL,		/* NATIVE, queued by evq_op_submit's fast
				 * path (op_queue): not on the in-flight
				 * list (core/ops.c) */
};

/* evq_op.flags bits above the public EVQ_OP_LINK/EVQ_OP_MULTISHOT */
#define EVQ__OPF_POOL 0x100u	/* recv/read into a pool buffer */
#define EVQ__OPF_BLOCKING 0x200u	/* emulation: the fd is blocking */
#define EVQ__OPF_TDONE 0x400u	/* native cancel: target's last call ran */
#define EVQ__OPF_HELD 0x800u	/* native cancel: result held for it */
#define EVQ__OPF_WAITALL 0x1000u	/* recv/send: all bytes or an end
					 * (MSG_WAITALL), set by the core on
					 * linked ones */
#define EVQ__OPF_REARM 0x2000u	/* multishot run single-shot by the
				 * backend: the core starts it again */
#define EVQ__OPF_UNVERIFIED 0x4000u	/* emulation: waits on a registration
					 * kept from the op before, and no
					 * report came through it yet
					 * (emul.c) */
#define EVQ__OPF_LTMO 0x10u	/* a fired link timeout, made a cancel of
				 * its target for the backend (ops.c) */
#define EVQ__OPF_TIMED 0x20u	/* the op's link is a link timeout, armed
				 * when the op starts (ops.c) */
#define EVQ__OPF_AGAIN 0x40u	/* native splice: a -EAGAIN result (a
				 * non-blocking side not ready) goes to
				 * the emulation, which waits (ops.c) */
#define EVQ__OPF_PARKED 0x8000u	/* a last result that found no room on
				 * the road waits in the op (res, cflags),
				 * on the start queue: reported again when
				 * the queue is run */

/* A splice side's kind, kept in op->cflags while the emulation
 * (emul_more.c) or a pool thread (threadpool.c) runs the op: the low
 * nibble for fd_in, the next for fd_out. */
#define EVQ__SPL_FILE 0x1u	/* regular file or block device: no
				 * readiness, may block on the disk */
#define EVQ__SPL_BLOCK 0x2u	/* not a pipe, and no O_NONBLOCK: a
				 * syscall on it may block */
#define EVQ__SPL_PIPE 0x4u
#define EVQ__SPL_IN(cf) ((cf) & 0xfu)
#define EVQ__SPL_OUT(cf) (((cf) >> 4) & 0xfu)

/* One result on the road: what an engine (a backend's wait, the
 * emulation, the thread pool) reports with evq__report(), and the core
 * delivers (core/ops.c, the only caller of op callbacks). */
struct evq__done {
	struct evq_op *op;
	int res;
	unsigned flags;		/* EVQ_OP_F_* */
};

struct evq__tpool;
struct evq__uring_sq;

/* Capability bits of a backend (struct evq__backend.caps). */
#define EVQ__CAP_EDGE 0x1u	/* EVQ_EDGE: epoll, uring */
#define EVQ__CAP_KERNEL_OPS 0x2u	/* every op and chain in the kernel:
					 * uring */

/* Returned (positive) by a backend's op_start: it does not run this op
 * itself and the core should emulate it (with EVQ__CAP_KERNEL_OPS:
 * only an op of issue 14 the kernel lacks); or it runs a multishot op as single-shot
 * ops, and the core starts it again after each result it keeps going
 * on. */
#define EVQ__EMULATE 1
#define EVQ__SINGLE 2
/* Returned (positive) by a backend's op_queue: not now. */
#define EVQ__LATER 3

/* What an emulated transfer needs of its file to go into a backend's
 * batch (xfer_queue): a stream (pipe or socket: no position), a socket
 * (recv), or a socket and no SIGPIPE (send: MSG_NOSIGNAL). */
enum { EVQ__XFER_STREAM = 1, EVQ__XFER_SOCK, EVQ__XFER_SEND };
/* Or'ed in: the try that follows a readiness report of the op's fd. */
#define EVQ__XFER_RETRY 0x10u

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
	bool opwait;		/* the kernel's registration (kmask) was made
				 * for an emulated op's wait (emul.c): the fd
				 * has readiness, and a next op may wait on
				 * it again without a syscall (io.c,
				 * evq__io_rewait). Gone with the
				 * registration. */
	uint8_t reports;	/* epoll set: reports since the last check
				 * that the fd still names the file */
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

	/* Embedding: an fd readable when the loop has work (see
	 * evq_loop_fd); NULL: not possible with this backend. */
	int (*embed_fd)(struct evq_loop *loop);
	/* Optional: work the backend holds for its next wait that its
	 * embedding fd does not signal (aio: polls to re-arm; uring: SQEs
	 * not yet handed to the kernel; epoll, uring: watched regular
	 * files, reported by every wait), so that evq_loop_timeout() says
	 * 0. NULL: none ever. */
	bool (*pending)(const struct evq_loop *loop);

	/* The core saw reports of registrations it had ended (a file closed
	 * behind the loop's back and kept open elsewhere): make the kernel
	 * forget them before the next wait (epoll: rebuild the set). NULL:
	 * the backend cannot have such registrations (poll). */
	void (*stale)(struct evq_loop *loop);

	/* Native ops; NULL: the core emulates every op. op_start starts one
	 * op (never a chain: chains, cancels of what the core holds, and
	 * multishot re-arms are the core's) and never completes it from
	 * inside: every result, an error found at the start included, is
	 * reported with evq__report() (wait() reports the kernel's). The
	 * op's wait.native.backend area is the backend's while it runs.
	 * With EVQ__CAP_KERNEL_OPS it takes every op (and cancel ops aimed
	 * at its ops), but may say EVQ__EMULATE for an op of issue 14 the
	 * kernel lacks; without, for any op it does not run. Returns 0, EVQ__EMULATE, EVQ__SINGLE, or -errno (the
	 * core then completes the op with that error). */
	int (*op_start)(struct evq_loop *loop, struct evq_op *op);
	/* Optional, with EVQ__CAP_KERNEL_OPS: op_start for a plain op (no
	 * flag, pool, cancel or close) submitted while the loop runs, called
	 * from evq_op_submit: it only queues it for the next wait, without a
	 * syscall, or returns EVQ__LATER when it cannot (the core then
	 * starts it with the next iteration's batch). 0 or -errno as
	 * op_start. */
	int (*op_queue)(struct evq_loop *loop, struct evq_op *op);
	/* For evq_loop_free: cancel every op the backend has and report
	 * each one's last result before returning. */
	void (*op_drain)(struct evq_loop *loop);
	/* Buffer pools on a native backend: set up, give a buffer back,
	 * tear down. */
	int (*pool_init)(struct evq_loop *loop, struct evq_pool *pool);
	void (*pool_release)(struct evq_loop *loop, struct evq_pool *pool,
			     unsigned id);
	void (*pool_destroy)(struct evq_loop *loop, struct evq_pool *pool);
	/* Cross-loop message doorbells (core/msg.c), optional (uring).
	 * msg_fd, on the receiving loop's thread: count the ports that take
	 * doorbells (delta +1 at a start, -1 at a stop, 0 to ask) and return
	 * the fd senders ring, or -1 when none can be taken now. msg_ring, on
	 * the sending loop's thread: queue a doorbell to that fd for the
	 * next wait; fd -1: submit the queued ones now. 0 or -errno (the core
	 * then rings the eventfd). */
	int (*msg_fd)(struct evq_loop *loop, int delta);
	int (*msg_ring)(struct evq_loop *loop, int fd);

	/* Optional, without EVQ__CAP_KERNEL_OPS (aio): an emulated op's
	 * non-blocking transfer of len bytes at buf (a read for read and
	 * recv, else a write) goes into the batch the next wait submits,
	 * instead of a syscall now. need is EVQ__XFER_*. 0: taken; the
	 * result, what the syscall would have returned, comes back through
	 * evq__emul_xfer_done() from a wait (never from inside this call).
	 * EVQ__EMULATE: not taken, make the syscall. */
	int (*xfer_queue)(struct evq_loop *loop, struct evq_op *op, void *buf,
			  size_t len, unsigned need);
	/* Take back a transfer not submitted yet: 0, or -EALREADY (the
	 * kernel has it; its result comes). */
	int (*xfer_cancel)(struct evq_loop *loop, struct evq_op *op);
};

EVQ__HIDDEN extern const struct evq__backend evq__backend_epoll;
EVQ__HIDDEN extern const struct evq__backend evq__backend_poll;
EVQ__HIDDEN extern const struct evq__backend evq__backend_aio;
EVQ__HIDDEN extern const struct evq__backend evq__backend_uring;

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

	/* loop hooks (core/hooks.c), per enum evq_hook_kind */
	struct evq_hook *hook_head[3], *hook_tail[3];
	struct evq_hook *hook_cursor;	/* next hook of the pass running */
	uint64_t hook_pass;	/* passes begun; hooks started in one skip it */
	unsigned nidle;		/* active idle hooks: the loop only looks */

	/* cross-loop message ports (core/msg.c) */
	struct evq_port *ports;
	struct evq_port *port_cursor;	/* next port of a scan */
	struct evq_port *port_delivering; /* NULL once its callback stops it */
	bool msg_rung;		/* a backend doorbell came: scan the ports */
	bool msg_owed;		/* a doorbell waits in the backend's queue */

	/* child watchers (core/child.c) */
	struct evq_child *children;

	/* operations (core/ops.c) */
	struct evq_op *ops_head, *ops_tail;	/* in flight, oldest first */
	struct evq_op *ops_cursor;	/* next op of a scan of ops_head */
	unsigned nops;
	struct evq_op *sq_head, *sq_tail;	/* submitted, not started */
	struct evq_op *batch_head;	/* being started this iteration */
	struct evq_op *chain_tail;	/* last submitted op had LINK */
	struct evq_op *close_waiters;	/* EVQ__OP_CLOSE_WAIT, by qnext */
	unsigned threads;	/* thread pool size */
	unsigned uring_entries;	/* io_uring submission queue size */
	struct evq__tpool *tpool;	/* NULL until the first blocking op */
	struct evq_pool *pools;	/* buffer pools made on this loop */
	struct evq_op *cancels;	/* native: by-op cancels in flight */
	/* The uring backend's SQ, which evq_op_submit fills itself for a
	 * plain read or write (core/uring_sq.h); NULL on other backends.
	 * uring_open is the same pointer while it may: the loop runs, and
	 * no op waits in the start queue or an open chain; else NULL (never
	 * wrong: the op then goes the long way). evq__ops_open() sets it. */
	struct evq__uring_sq *uring_sq, *uring_open;
	/* evq_op_submit's short way for a plain read or write on a backend
	 * whose ops the core emulates (epoll, poll, aio: neither
	 * EVQ__CAP_KERNEL_OPS nor op_queue), while the loop runs: the
	 * callback of a plain read's wait there (evq__emul_wait_cb); NULL
	 * otherwise (ops.c, submit_emul). */
	evq_io_cb emul_open;
	/* The road: results reported, to be delivered in order. When
	 * done[] cannot grow, a last result waits in its op on the start
	 * queue (EVQ__OPF_PARKED). */
	struct evq__done *done;
	int ndone, done_cap;
	unsigned unverified;	/* emul.c: ops that may wait on a kept
				 * registration; checked before blocking */
	bool looked;		/* loop.c: the last wait was a look (for
				 * them) that found nothing */
	bool freeing;
	uint64_t handed_at;	/* 1 + loop->waits when ops were last given
				 * to the backend: until its next wait sends
				 * them, there is work even if evq_loop_fd()
				 * stays quiet */

	uint64_t now;		/* cached CLOCK_MONOTONIC ns */
	bool now_valid;		/* false: re-read on next evq_now() */
	uint64_t dispatch_seq;	/* reports dispatched, for run_stamp */
	uint64_t callbacks;	/* defer and op callbacks run (ONCE mode) */
	uint64_t waits;		/* backend waits done */
	uint64_t runs;		/* evq_loop_run calls */
	uint32_t id_index, id_gen;	/* loop.c: identity for stopped
					 * watchers (evq_io_restart) */
	unsigned active;	/* active user watchers: the loop's life */
	unsigned max_events;
	bool running;
	bool embedded;		/* evq_loop_fd() gave its fd */
	bool stop;
};

/* The core's files, each calling only those listed before it (no file
 * calls back up; docs/ARCHITECTURE.md draws it):
 *   timer.c, pool.c, io.c, hooks.c (backends are reached through the table)
 *   async.c -> io.c;  signal.c -> io.c;  child.c -> io.c;
 *   epoll_set.c -> io.c
 *   threadpool.c -> async.c (its results wake the loop), pool.c
 *   msg.c -> async.c (its eventfd doorbell)
 *   emul_more.c -> io.c, timer.c, threadpool.c
 *   emul.c -> emul_more.c, io.c, timer.c, threadpool.c, pool.c
 *   ops.c -> emul.c, threadpool.c, io.c, timer.c
 *   loop.c -> all of the above, backend.c */

/* core/io.c */
EVQ__HIDDEN int evq__io_start_internal(struct evq_loop *loop,
				       struct evq_io *w, int fd,
				       unsigned events, evq_io_cb cb);
EVQ__HIDDEN int evq__io_flush(struct evq_loop *loop);
EVQ__HIDDEN void evq__io_detach_all(struct evq_loop *loop);
EVQ__HIDDEN int evq__io_rewait(struct evq_loop *loop, struct evq_io *w,
				int fd, unsigned events, evq_io_cb cb);
EVQ__HIDDEN int evq__io_check(struct evq_loop *loop, int fd);
EVQ__HIDDEN void evq__io_leave(struct evq_io *w);

EVQ__HIDDEN int evq__id_take(struct evq_loop *loop);
EVQ__HIDDEN void evq__id_release(struct evq_loop *loop);

/* core/timer.c */
EVQ__HIDDEN uint64_t evq__clock_ns(void);
EVQ__HIDDEN int64_t evq__timer_timeout(struct evq_loop *loop);
EVQ__HIDDEN void evq__timer_run(struct evq_loop *loop);
EVQ__HIDDEN bool evq__timer_due(struct evq_loop *loop);
EVQ__HIDDEN void evq__timer_detach_all(struct evq_loop *loop);

/* core/signal.c */
EVQ__HIDDEN void evq__signal_detach_all(struct evq_loop *loop);

/* core/io.c: end the watch of fd (close op): stop its watchers, drop
 * the kernel registration, new generation. */
EVQ__HIDDEN void evq__fd_end(struct evq_loop *loop, int fd);

/* core/hooks.c: run the hooks of a kind (one pass); detach them all */
EVQ__HIDDEN void evq__hooks_run(struct evq_loop *loop, unsigned kind);
EVQ__HIDDEN void evq__hooks_detach_all(struct evq_loop *loop);

/* core/child.c */
EVQ__HIDDEN void evq__child_detach_all(struct evq_loop *loop);

/* core/msg.c: deliver what the ports have (a backend doorbell came);
 * send the doorbells left in the backend's queue (a run's end); stop
 * every port (evq_loop_free) */
EVQ__HIDDEN void evq__msg_run(struct evq_loop *loop);
EVQ__HIDDEN void evq__msg_flush(struct evq_loop *loop);
EVQ__HIDDEN void evq__msg_detach_all(struct evq_loop *loop);

/* core/async.c */
EVQ__HIDDEN void evq__wake_close(struct evq_loop *loop);
EVQ__HIDDEN void evq__async_detach_all(struct evq_loop *loop);
EVQ__HIDDEN void evq__defer_run(struct evq_loop *loop);
EVQ__HIDDEN void evq__defer_detach_all(struct evq_loop *loop);

/* core/ops.c: submission, chains, cancels, and delivery */
EVQ__HIDDEN void evq__ops_start_queued(struct evq_loop *loop);
EVQ__HIDDEN void evq__ops_deliver(struct evq_loop *loop);
EVQ__HIDDEN void evq__ops_deliver_from(struct evq_loop *loop, int i);
EVQ__HIDDEN void evq__ops_free_all(struct evq_loop *loop);
EVQ__HIDDEN void evq__ops_lone_waits(struct evq_loop *loop,
				     struct evq_op *op);

/* core/emul.c: ops run by the core (no backend takes them). start never
 * completes the op from inside: results are reported (evq__report).
 * cancel stops a waiting op: 0, or -EALREADY when it cannot be stopped
 * (a pool thread runs it, or its last result is already reported). */
EVQ__HIDDEN void evq__emul_start(struct evq_loop *loop, struct evq_op *op);
EVQ__HIDDEN int evq__emul_cancel(struct evq_loop *loop, struct evq_op *op);
/* The callbacks of an emulated op's readiness wait (its fd watcher):
 * every op's, and a plain read's or write's (its own buffer at the
 * current position, no pool) on a backend that batches no transfer.
 * For evq_op_submit (ops.c) too, which sets a read waiting at once on
 * the registration the op before it left, without a syscall. */
EVQ__HIDDEN void evq__emul_io_cb(struct evq_loop *loop, struct evq_io *w,
				 unsigned revents);
EVQ__HIDDEN void evq__emul_plain_cb(struct evq_loop *loop, struct evq_io *w,
				    unsigned revents);
static inline evq_io_cb evq__emul_wait_cb(const struct evq_loop *loop,
					  const struct evq_op *op)
{
	return !loop->backend->xfer_queue &&
			       (op->code == EVQ_OP_READ ||
				op->code == EVQ_OP_WRITE) &&
			       !(op->flags & EVQ__OPF_POOL) &&
			       op->u.rw.off == EVQ_OFFSET_CURRENT
		       ? evq__emul_plain_cb
		       : evq__emul_io_cb;
}
/* Only reads are ever set waiting by evq_op_submit: the test that spares
 * every other op the call. */
static inline bool evq__emul_may_queue(const struct evq_op *op)
{
	_Static_assert(EVQ_OP__COUNT <= 32, "op codes fit a 32-bit mask");
	return (1u << op->code) & (1u << EVQ_OP_READ | 1u << EVQ_OP_READV |
				   1u << EVQ_OP_RECV | 1u << EVQ_OP_RECVMSG);
}
/* The start of a plain write (a read or write of its own buffer at the
 * current position, no flag) on a backend without op_start: its result,
 * not reported (the caller delivers it); or EVQ__WENT_ON when it went on
 * as evq__emul_start takes it (waiting, pool, or reported). */
#define EVQ__WENT_ON INT32_MIN	/* no result: never a -errno */
EVQ__HIDDEN int evq__emul_try_write(struct evq_loop *loop, struct evq_op *op);
EVQ__HIDDEN bool evq__emul_verify(struct evq_loop *loop);
/* A transfer taken by backend->xfer_queue has its result: the op goes on
 * as if the syscall had returned res. Called from the backend's wait (or
 * op_drain), not from inside a submission. */
EVQ__HIDDEN void evq__emul_xfer_done(struct evq_loop *loop, struct evq_op *op,
				     int res);
/* Start the close ops that waited for pool jobs on their fd once those
 * are reaped (all of them, at once, when force: the loop's free). */
EVQ__HIDDEN void evq__emul_close_ready(struct evq_loop *loop, bool force);

/* core/threadpool.c: blocking ops in worker threads. Results are reported
 * by evq__tpool_reap (and by shutdown, for every op it still had). */
EVQ__HIDDEN int evq__tpool_submit(struct evq_loop *loop, struct evq_op *op);
EVQ__HIDDEN bool evq__tpool_remove(struct evq_loop *loop, struct evq_op *op);
EVQ__HIDDEN void evq__tpool_reap(struct evq_loop *loop);
EVQ__HIDDEN void evq__tpool_shutdown(struct evq_loop *loop);

/* core/pool.c */
struct evq_pool {
	struct evq_loop *loop;	/* NULL once the loop is freed */
	struct evq_pool *next, *prev;	/* the loop's pools */
	unsigned char *mem;	/* 64-byte aligned, inside mem_base */
	void *mem_base;		/* what calloc returned */
	size_t size;		/* bytes per buffer */
	unsigned nbufs;
	unsigned nfree;		/* emulation: ids on the free stack */
	uint16_t *free_ids;	/* emulation: the free stack */
	uint8_t *out;		/* per id: 1 while the caller holds it */
	unsigned users;		/* ops in flight naming the pool */
	void *backend_data;	/* native backends */
	unsigned available;	/* buffers the kernel/emulation may use */
};
EVQ__HIDDEN int evq__pool_take(struct evq_pool *pool);
EVQ__HIDDEN void evq__pool_detach_all(struct evq_loop *loop);
EVQ__HIDDEN void evq__pool_put(struct evq_pool *pool, unsigned id);

/* Work for the next iteration: ops to start, results to deliver, ops
 * handed to the backend that its next wait sends to the kernel. */
static inline bool evq__ops_pending(const struct evq_loop *loop)
{
	return loop->sq_head != NULL || loop->ndone != 0 ||
	       loop->handed_at > loop->waits;
}

/* ------------------------------------------------------------------------
 * The road: how an engine reports a result
 *
 * Room for n more results in loop->done. Growth doubles and is kept, so
 * a steady state allocates nothing. False when there is no memory: a
 * result with EVQ_OP_F_MORE must then wait (the engine keeps it: an
 * unreaped CQE, readiness that comes back); a last result can always be
 * reported (evq__report parks it).
 * ------------------------------------------------------------------------ */
static __attribute__((noinline, cold, unused)) bool
evq__done_grow(struct evq_loop *loop, int n)
{
	struct evq__done *d;
	int cap;

	cap = loop->done_cap ? loop->done_cap : 64;
	while (cap < loop->ndone + n)
		cap *= 2;
	d = realloc(loop->done, (size_t)cap * sizeof(*d));
	if (!d)
		return false;
	loop->done = d;
	loop->done_cap = cap;
	return true;
}

static inline bool evq__done_room(struct evq_loop *loop, int n)
{
	if (evq__likely(loop->ndone + n <= loop->done_cap))
		return true;
	return evq__done_grow(loop, n);	/* out of the common path */
}

/* Report a result of op: res as a CQE's (>= 0, or -errno), flags
 * EVQ_OP_F_*. Delivered in report order by core/ops.c, never from here,
 * so an engine may report from anywhere (inside a user's API call too).
 * A result with EVQ_OP_F_MORE needs room (evq__done_room) first. */
static inline __attribute__((always_inline)) void
evq__report(struct evq_loop *loop, struct evq_op *op, int res, unsigned flags)
{
	if (evq__likely(evq__done_room(loop, 1))) {
		loop->done[loop->ndone++] = (struct evq__done){ op, res, flags };
		return;
	}
	/* No memory: park it in the op, on the start queue (the loop does
	 * not block while anything is queued there). */
	loop->uring_open = NULL;
	op->res = res;
	op->cflags = flags;
	op->flags |= EVQ__OPF_PARKED;
	op->qnext = NULL;
	if (loop->sq_tail)
		loop->sq_tail->qnext = op;
	else
		loop->sq_head = op;
	loop->sq_tail = op;
}

/* evq_op_submit's inline path is open (loop->uring_open) while the loop
 * runs with nothing in its start queue and no chain open: set when those
 * may have changed to allow it (the loop's start, the start queue run);
 * closed where they change to forbid it. */
static inline void evq__ops_open(struct evq_loop *loop)
{
	if (loop->uring_sq)
		loop->uring_open = loop->running && !loop->sq_head &&
					   !loop->chain_tail
				   ? loop->uring_sq
				   : NULL;
}

/* Does a multishot op go on after this result? accept: any new fd;
 * recv: data (0 is EOF, the end). The rule of every backend. */
static inline bool evq__more_ok(const struct evq_op *op, int res)
{
	return op->code == EVQ_OP_ACCEPT ? res >= 0 : res > 0;
}

/* evq_*_unref and evq_*_ref: set the unref mark (EVQ__UNREF) in *flags,
 * or clear it; the count of an active watcher follows. loop is read only
 * when active. Idempotent. */
static inline void evq__set_unref(struct evq_loop *loop, unsigned *flags,
				  bool active, bool unref)
{
	if (!!(*flags & EVQ__UNREF) == unref)
		return;
	*flags ^= EVQ__UNREF;
	if (active) {
		if (unref)
			loop->active--;
		else
			loop->active++;
	}
}

/* core/backend.c: pick, set loop->backend and init it. */
EVQ__HIDDEN int evq__backend_open(struct evq_loop *loop,
				  enum evq_backend want);

/* The saturation rule of every duration (evq.h, "Durations"): now + ns,
 * or EVQ__NEVER where that would pass the end of the 64-bit clock. A
 * deadline of EVQ__NEVER never comes: no clock reading reaches it. */
#define EVQ__NEVER UINT64_MAX
static inline uint64_t evq__ns_after(uint64_t now, uint64_t ns)
{
	return ns > EVQ__NEVER - now ? EVQ__NEVER : now + ns;
}

/* Syscall edge: run a libc call that sets errno, return -errno or result. */
#define EVQ__SYS(call) ({ long evq__r = (call); evq__r < 0 ? -errno : evq__r; })

#endif /* EVQ_INTERNAL_H */
