/* SPDX-License-Identifier: MIT */
/*
 * backend_uring.c - the io_uring backend: native completions, and
 * readiness through an epoll set that the ring waits on.
 *
 * Notes on io_uring:
 *  a) Completion ops are native: each evq_op becomes one SQE whose
 *     user_data is the op's address. Everything the loop prepares in an
 *     iteration (op SQEs, the readiness wait) goes to the kernel in one
 *     io_uring_enter(), the same call that waits. Completions are read
 *     from the mapped CQ, never with a syscall of their own.
 *  b) Readiness is not done with POLL_ADD per fd. A pending poll request
 *     holds a reference to its file, so a plain close() neither ends the
 *     watch nor frees the file (BACKGROUND.md lesson 3), and a one-shot
 *     poll re-armed per event is what made libev's and tevent's io_uring
 *     backends slower than epoll (lesson 1). Instead the fd watchers live
 *     in an epoll set (src/core/epoll_set.c, shared with the epoll
 *     backend: same close-safety, level-triggering and fairness), and the
 *     ring waits for it with one IORING_OP_EPOLL_WAIT (Linux 6.15) per
 *     iteration, submitted in the same io_uring_enter() as everything
 *     else. Older kernels: a POLL_ADD on the epoll fd, then epoll_wait()
 *     with a zero timeout once it fires.
 *  c) Waits are exact: the timeout goes to io_uring_enter() itself
 *     (IORING_ENTER_EXT_ARG, 5.11), never as a TIMEOUT SQE: an extra SQE
 *     per wait is how liburing's submit_and_wait_timeout came to wait
 *     twice the timeout in tevent (lesson 4). Without EXT_ARG the backend
 *     is not used.
 *  d) No completion is lost: a full SQ is submitted and the SQE taken
 *     again; with IORING_FEAT_NODROP (required) the kernel keeps CQEs the
 *     CQ has no room for, and io_uring_enter() returns -EBUSY until they
 *     are reaped, which the backend then does before going on. Results
 *     reaped that way (while the core starts ops) take the road like any
 *     other (evq__report), and the core delivers them after its wait.
 *  e) Setup flags are tried best first: SINGLE_ISSUER|DEFER_TASKRUN (6.1),
 *     then COOP_TASKRUN (5.19), then none. EVQ_DEBUG=1 prints what was
 *     chosen.
 *  f) Opcodes are probed (io_uring_get_probe); a kernel without one that
 *     the completion API needs is not used, so `auto` moves on to a
 *     backend that emulates it, rather than half the API failing.
 *  g) Chains are the core's (core/ops.c), as on every backend: this
 *     backend starts single ops and never links SQEs (IOSQE_IO_LINK).
 *     The kernel's links were tried first and dropped (issue 9, bugs 2
 *     and 3): io_uring's cancel cannot find a linked request that has not
 *     been issued yet, and the kernel resolves a linked request's fd only
 *     when it issues it, so a close op left a held write to run later on
 *     whatever file took the number. The cost: each link of a chain waits
 *     for the CQE of the one before, an iteration of the loop, where the
 *     kernel would have gone on by itself. A linked send or recv is
 *     asked to wait for all its bytes (EVQ__OPF_WAITALL: MSG_WAITALL).
 *  h) Multishot accept (5.19) and recv (6.0) are native where the kernel
 *     has them; otherwise op_start says EVQ__SINGLE and runs it as a
 *     single-shot SQE, and the core starts it again after each result
 *     that keeps it going (core/ops.c). EVQ_URING_NO_NATIVE_MULTISHOT=1
 *     forces that path, for the tests.
 *  i) Buffer pools are provided-buffer rings (IORING_REGISTER_PBUF_RING,
 *     5.19): one buffer group per pool; a released buffer is put back in
 *     the ring by the caller's evq_pool_release(), no syscall.
 *  k) When the ring has nothing to do (no op in flight, no SQE queued, no
 *     readiness SQE armed), an iteration waits on the epoll set directly
 *     with epoll_pwait2(): the same single syscall the epoll backend
 *     makes, where going through the ring costs an io_uring_enter() plus
 *     an EPOLL_WAIT request (measured on a pipe ping-pong, 6.18: about 6%
 *     more CPU per event). As soon as an op is in flight, the ring waits
 *     for both in one call. EVQ_URING_NO_DIRECT=1 turns this off, for
 *     measuring and testing the ring path alone.
 *  l) Embedding: evq_loop_fd() is the epoll set's embedding fd (stable
 *     across rebuilds: core/epoll_set.c note f), readable when a watched fd
 *     is; op completions reach it through an eventfd registered with the
 *     ring (IORING_REGISTER_EVENTFD) and watched in the set. The eventfd
 *     is set up on the first evq_loop_fd() call, so loops that are not
 *     embedded do not pay for its signalling.
 *  m) A blocking op that io-wq is running when a cancel comes (-EALREADY
 *     to the canceller) is interrupted by the kernel, and some opcodes
 *     then complete with a kernel-internal restart code (seen on 6.18:
 *     openat of a FIFO with no writer, res -512, ERESTARTSYS). The core
 *     turns those codes (-512..-516) into -EINTR for every backend.
 *  j) After fork(), the child must not use the parent's loop; with
 *     SINGLE_ISSUER it cannot submit anyway. evq_loop_free() in the child
 *     unmaps and closes its copy of the ring, which leaves the parent's
 *     ring working.
 *  n) Threads (issue 9, bug 4). SINGLE_ISSUER binds a ring to the task
 *     that made it, and a registered ring fd is an index into the
 *     registering thread's own table: a loop made on one thread and run
 *     on another got -EINVAL, or entered another loop's ring that had the
 *     same index in the running thread. So the ring is made with
 *     IORING_SETUP_R_DISABLED (5.10, with SINGLE_ISSUER only) and enabled
 *     by the first thread that enters it (a wait, or a submit of a full
 *     SQ), which then registers the ring fd (5.18) in its own table and
 *     owns the loop (evq.h). Registrations before that (probe, pools,
 *     the embedding eventfd) work from any thread. Another thread enters
 *     by the plain fd; on a SINGLE_ISSUER ring the kernel then says
 *     -EEXIST, which evq_loop_run() returns. Only the owner can drop the
 *     registration: a loop freed elsewhere leaves it, and with it the
 *     ring, until the owner thread exits.
 *  o) The EPOLL_WAIT request collects readiness whenever the kernel runs
 *     it, which may be before evq_loop_run() returns to its caller (in a
 *     submit, at an op's start); its CQE is reaped by the next wait,
 *     perhaps a few runs later. A plain close() made in between would not
 *     stop those events (the loop's generations only change when evq
 *     notices), and a watcher ran for an fd its caller had closed (found
 *     by tests/test_random.c). So events of an EPOLL_WAIT armed in an
 *     earlier run are checked one by one (EPOLL_CTL_ADD answers EEXIST
 *     exactly when the number still names the registered file): one
 *     epoll_ctl per such event, never in a loop run with
 *     EVQ_RUN_DEFAULT.
 *  p) Cross-loop messages (core/msg.c) ring the receiving loop with
 *     IORING_OP_MSG_RING (5.18) when both loops are uring loops: the
 *     sender queues an SQE that posts a CQE with user_data TAG_MSG into
 *     the receiver's ring, submitted with the sender's next wait; the
 *     receiver reaps it with its own completions (no eventfd, no syscall
 *     of its own) and the core takes its ports' queues. The message data
 *     never rides the CQE: a doorbell only says "look" (evq.h says why).
 *     Used from Linux 6.3: our rings are DEFER_TASKRUN, and posting into
 *     such a ring through its task came in 6.2 ("io_uring: do msg_ring in
 *     target task via tw"), fixed late in that cycle ("fix remote queue
 *     to disabled ring": our rings start disabled, note n). A ring still
 *     disabled answers -EBADFD, so a port hands out the fd only once the
 *     ring is enabled (msg_fd). While a port may be rung, waits go through
 *     the ring, never epoll_pwait2 (note k): a DEFER_TASKRUN ring gets the
 *     CQE only when its task enters it. The doorbell SQE has
 *     IOSQE_CQE_SKIP_SUCCESS; a failure CQE (the kernel out of memory, the
 *     receiving thread gone) is ignored: the messages stay queued for the
 *     next doorbell or the port's stop. A full SQ is handed to the kernel
 *     first, as for any SQE; if even that fails, the eventfd rings
 *     instead. EVQ_URING_NO_MSG_RING=1 turns it off (eventfd doorbells),
 *     for tests and measurements.
 *  q) The ops of issue 14 (splice, ...) are probed one by one: where
 *     the kernel lacks one, prep_op says EVQ__EMULATE and the core runs
 *     it as on epoll (core/emul_more.c), so evq.h's promise holds on any
 *     kernel. EVQ_URING_EMULATE_NEW_OPS=1 takes none of them natively,
 *     so that path is tested here too ([uring-emul]).
 */
#include "internal.h"
#include "epoll_set.h"
#include "sys.h"
#include "uring_sq.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Opcodes newer than liburing 2.3's header; checked with the probe. */
#define OP_EPOLL_WAIT 59

/* user_data of the backend's own SQEs; ops are addresses, never this low. */
#define TAG_IGNORE 0u		/* completion of no interest */
#define TAG_EPOLL 1u		/* the readiness wait (note b) */
#define TAG_MSG 2u		/* a cross-loop message doorbell (note p) */

/* The backend's state in each op, in the area evq.h gives native
 * backends (op->wait.native.backend). */
struct uring_opx {
	struct __kernel_timespec ts;	/* a timeout op's time: the kernel
					 * reads it at the next enter */
};

_Static_assert(sizeof(struct uring_opx) <=
		       sizeof(((struct evq_op *)0)->wait.native.backend),
	       "the op's native area holds the backend's op state");

static inline struct uring_opx *opx(struct evq_op *op)
{
	return (struct uring_opx *)(void *)op->wait.native.backend;
}

struct uring_pool {
	struct io_uring_buf_ring *br;
	size_t br_size;
	uint16_t bgid;
	unsigned mask;
};

struct uring_state {
	struct io_uring ring;
	struct evq__epoll_set set;
	bool epoll_wait_op;	/* IORING_OP_EPOLL_WAIT exists */
	bool epoll_armed;	/* the readiness SQE is in the kernel */
	uint64_t epoll_run;	/* loop->runs when it was armed */
	bool epoll_fired;	/* fallback: the epoll fd polled readable */
	int epoll_ready;	/* events the EPOLL_WAIT left in set.events,
				 * not yet handed to the core */
	bool owned;		/* note n: a thread has entered the ring */
	bool ring_ok;		/* the next wait may be uring_wait's short one
				 * (ring_ok_update) */
	int reg_index;		/* registered ring fd of the owner, or -1 */
	uintptr_t reg_owner;	/* owner when reg_index >= 0, else 0 */
	uintptr_t owner;	/* the thread that first entered
				 * (this_thread()) */
	pid_t owner_tid;
	pid_t pid;		/* the process that made the ring */
	bool multishot_accept;	/* note h */
	bool multishot_recv;
	bool etime_success;	/* IORING_TIMEOUT_ETIME_SUCCESS (5.16) */
	bool cancel_fd;		/* IORING_ASYNC_CANCEL_FD (5.19) */
	uint32_t native_new;	/* note q: 1 << code of each op of issue 14
				 * the kernel runs */
	bool direct_ok;		/* note k: epoll_pwait2 exists (5.11) */
	unsigned setup_flags;
	uint16_t next_bgid;
	struct evq__uring_sq ksq;	/* SQEs taken, op SQEs in flight:
					 * shared with evq_op_submit's inline
					 * path (core/uring_sq.h) */
	bool msg_ring;		/* note p: MSG_RING doorbells */
	unsigned msg_ports;	/* ports that take them: no direct wait */
	int cq_eventfd;		/* note l: -1 until evq_loop_fd() */
	struct evq_io cq_io;
};

/* ------------------------------------------------------------------------
 * Setup
 * ------------------------------------------------------------------------ */

static bool debug(void)
{
	const char *e = secure_getenv("EVQ_DEBUG");	/* not setuid */

	return e && *e && strcmp(e, "0") != 0;
}

static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

static int uring_probe(void)
{
	return 0;	/* setting up a ring is the only real test: init */
}

static int ring_setup(struct uring_state *st, unsigned entries)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_SUBMIT_ALL,
		0,
	};
	int r = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = { .flags = tries[i] };

		r = io_uring_queue_init_params(entries, &st->ring, &p);
		if (r == 0) {
			st->setup_flags = tries[i];
			if (!(p.features & IORING_FEAT_EXT_ARG) ||
			    !(p.features & IORING_FEAT_NODROP)) {
				io_uring_queue_exit(&st->ring);
				return -ENOTSUP;	/* notes c, d */
			}
			return 0;
		}
		if (r != -EINVAL)
			return r;	/* ENOSYS, EPERM, ENOMEM: final */
	}
	return r;
}

/* Note f: the opcodes the completion API needs. */
static int probe_ops(struct uring_state *st)
{
	static const uint8_t needed[] = {
		IORING_OP_NOP, IORING_OP_READV, IORING_OP_WRITEV,
		IORING_OP_FSYNC, IORING_OP_POLL_ADD, IORING_OP_SENDMSG,
		IORING_OP_RECVMSG, IORING_OP_TIMEOUT, IORING_OP_ACCEPT,
		IORING_OP_ASYNC_CANCEL, IORING_OP_CONNECT, IORING_OP_OPENAT,
		IORING_OP_CLOSE, IORING_OP_STATX, IORING_OP_READ,
		IORING_OP_WRITE, IORING_OP_SEND, IORING_OP_RECV,
	};
	struct io_uring_probe *p = io_uring_get_probe_ring(&st->ring);
	int r = 0;

	if (!p)
		return -ENOTSUP;
	for (size_t i = 0; i < sizeof(needed); i++)
		if (!io_uring_opcode_supported(p, needed[i]))
			r = -ENOTSUP;
	st->epoll_wait_op = io_uring_opcode_supported(p, OP_EPOLL_WAIT);
	st->msg_ring = io_uring_opcode_supported(p, IORING_OP_MSG_RING);
	io_uring_free_probe(p);
	return r;
}

static int uring_init(struct evq_loop *loop)
{
	struct uring_state *st = calloc(1, sizeof(*st));
	int r;

	if (!st)
		return -ENOMEM;
	r = ring_setup(st, loop->uring_entries);
	if (r < 0) {
		free(st);
		return r;
	}
	r = probe_ops(st);
	if (r == 0)
		r = evq__epoll_set_init(&st->set, loop->fired_cap);
	if (r < 0) {
		io_uring_queue_exit(&st->ring);
		free(st);
		return r;
	}
	st->reg_index = -1;	/* note n: by the thread that enters first */
	st->ksq.sqes = st->ring.sq.sqes;
	st->ksq.tail = st->ksq.head_seen = st->ring.sq.sqe_tail;
	st->ksq.mask = st->ring.sq.ring_mask;
	st->ksq.entries = st->ring.sq.ring_entries;
	st->pid = getpid();
	st->cq_eventfd = -1;
	/* EVQ_URING_NO_NATIVE_MULTISHOT=1 runs multishot ops as single
	 * shots the core re-arms, as on kernels before 5.19/6.0, so that
	 * path is tested on this one too (tests/CMakeLists.txt,
	 * [uring-rearm]). */
	if (secure_getenv("EVQ_URING_NO_NATIVE_MULTISHOT")) {
		st->multishot_accept = st->multishot_recv = false;
	} else {
		st->multishot_accept = kernel_at_least(5, 19);
		st->multishot_recv = kernel_at_least(6, 0);
	}
	st->etime_success = kernel_at_least(5, 16);
	st->cancel_fd = kernel_at_least(5, 19);
	st->direct_ok = kernel_at_least(5, 11) &&
			!secure_getenv("EVQ_URING_NO_DIRECT");
	st->msg_ring = st->msg_ring && kernel_at_least(6, 3) &&
		       !secure_getenv("EVQ_URING_NO_MSG_RING");
	loop->backend_data = st;
	loop->uring_sq = &st->ksq;
	if (debug())
		fprintf(stderr,
			"evq: uring: entries %u, setup flags 0x%x, "
			"readiness via %s%s, ring %s, multishot "
			"accept %s, recv %s\n",
			loop->uring_entries, st->setup_flags,
			st->epoll_wait_op ? "IORING_OP_EPOLL_WAIT"
					  : "POLL_ADD on the epoll fd",
			st->direct_ok ? " (epoll_pwait2 when the ring is idle)"
				      : "",
			(st->setup_flags & IORING_SETUP_R_DISABLED)
				? "enabled and registered by the thread that "
				  "runs it first"
				: "registered by the thread that runs it first",
			st->multishot_accept ? "native" : "re-armed",
			st->multishot_recv ? "native" : "re-armed");
	return 0;
}

static void uring_destroy(struct evq_loop *loop)
{
	struct uring_state *st = loop->backend_data;

	/* The registration lives in the owner's io_uring task state: only
	 * the owner can drop it (note n). */
	if (st->reg_index >= 0 && st->owner_tid == (pid_t)syscall(SYS_gettid)) {
		struct io_uring_rsrc_update up = {
			.offset = (unsigned)st->reg_index,
		};

		syscall(__NR_io_uring_register, st->ring.ring_fd,
			IORING_UNREGISTER_RING_FDS, &up, 1);
	}
	io_uring_queue_exit(&st->ring);
	if (st->cq_eventfd >= 0) {
		evq_io_stop(&st->cq_io);
		close(st->cq_eventfd);
	}
	evq__epoll_set_destroy(&st->set);
	free(st);
	loop->backend_data = NULL;
	loop->uring_sq = NULL;
}

/* ------------------------------------------------------------------------
 * Submission and reaping
 * ------------------------------------------------------------------------ */

/* Make the SQEs taken so far (st->ksq.tail) visible to the kernel;
 * return how many it has not consumed yet. liburing's sqe_head is what
 * was made visible (its sqe_tail is not used). */
static unsigned sq_flush(struct uring_state *st)
{
	struct io_uring_sq *sq = &st->ring.sq;
	unsigned tail = st->ksq.tail;

	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		io_uring_smp_store_release(sq->ktail, tail);
	}
	return tail - io_uring_smp_load_acquire(sq->khead);
}

/* May the next wait be uring_wait's short one? The readiness SQE is in
 * the kernel, nothing it collected waits, no rebuild is due, no fd is
 * always ready, and the ring has its owner. Set again where any of those
 * can change: after each reap, and by modify and stale. */
static void ring_ok_update(struct uring_state *st)
{
	st->ring_ok = st->epoll_armed && !st->epoll_fired &&
		      !st->epoll_ready && !st->set.stale &&
		      !st->set.nalways && st->owned;
}

/* Which thread runs: the thread pointer where the compiler gives it
 * (no call: the owner test runs on every enter), else pthread_self().
 * Either names a thread uniquely while it lives, which is what note n
 * needs. */
static inline uintptr_t this_thread(void)
{
#if (defined(__x86_64__) || defined(__aarch64__)) && defined(__has_builtin)
#if __has_builtin(__builtin_thread_pointer)
#define EVQ__THREAD_POINTER 1
	return (uintptr_t)__builtin_thread_pointer();
#endif
#endif
#ifndef EVQ__THREAD_POINTER
	return (uintptr_t)pthread_self();
#endif
}

/* Note n: the first thread to enter the ring owns it: enable the ring
 * (made disabled, so that SINGLE_ISSUER binds it to this thread, not to
 * the one that made the loop) and register its fd in this thread's
 * io_uring state. */
static int own_ring(struct uring_state *st)
{
	struct io_uring_rsrc_update up = {
		.offset = -1U,
		.data = (uint64_t)st->ring.ring_fd,
	};

	if ((st->setup_flags & IORING_SETUP_R_DISABLED) &&
	    syscall(__NR_io_uring_register, st->ring.ring_fd,
		    IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
		return -errno;
	st->owner = this_thread();
	st->owner_tid = (pid_t)syscall(SYS_gettid);
	st->owned = true;
	/* 5.18; without it the ring is entered by its fd. */
	if (syscall(__NR_io_uring_register, st->ring.ring_fd,
		    IORING_REGISTER_RING_FDS, &up, 1) == 1) {
		st->reg_index = (int)up.offset;
		st->reg_owner = st->owner;
	}
	return 0;
}

static int enter(struct uring_state *st, unsigned to_submit,
		 unsigned min_complete, int64_t timeout_ns)
{
	/* Without a timeout the kernel reads the same argument each time. */
	static const struct io_uring_getevents_arg forever = {
		.sigmask_sz = _NSIG / 8
	};
	struct __kernel_timespec ts;
	struct io_uring_getevents_arg arg;
	const struct io_uring_getevents_arg *argp = &forever;
	unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
	int fd = st->ring.ring_fd;
	long r;

	if (evq__unlikely(timeout_ns >= 0 && min_complete)) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		arg = forever;
		arg.ts = (uint64_t)(uintptr_t)&ts;
		argp = &arg;
	}
	if (evq__unlikely(!st->owned)) {
		int e = own_ring(st);

		if (e < 0)
			return e;
	}
	/* The registered index means this ring only in the owner thread;
	 * another thread enters by the fd, and a SINGLE_ISSUER ring then
	 * says -EEXIST (note n). */
	if (st->reg_index >= 0 && st->owner == this_thread()) {
		flags |= IORING_ENTER_REGISTERED_RING;
		fd = st->reg_index;
	}
	/* Made directly (sys.h): libc's syscall() goes through errno. */
	r = evq__syscall6(__NR_io_uring_enter, fd, to_submit, min_complete,
			  flags, (long)(uintptr_t)argp, sizeof(*argp));
	return (int)r;
}

/* One op CQE: translate it for the core. reap() made room for it on the
 * road. */
static inline void reap_op(struct evq_loop *loop, struct uring_state *st,
			   struct evq_op *op, const struct io_uring_cqe *cqe)
{
	unsigned cf = cqe->flags, flags = 0;

	if (evq__likely(cf == 0)) {	/* a last result, no buffer */
		st->ksq.inflight--;
		loop->done[loop->ndone++] =
			(struct evq__done){ op, cqe->res, 0 };
		return;
	}

	if (cf & IORING_CQE_F_BUFFER)
		flags = EVQ_OP_F_BUFFER | (cf >> 16) << 16;
	if (cf & IORING_CQE_F_MORE)
		flags |= EVQ_OP_F_MORE;
	else
		st->ksq.inflight--;
	if (cf & IORING_CQE_F_NOTIF)	/* send_zc: the buffer is free */
		flags |= EVQ_OP_F_NOTIF;
	evq__report(loop, op, cqe->res, flags);
}

/* Move the CQEs to the core: op completions onto the road; readiness is
 * noted in st (epoll_ready, epoll_fired) for uring_wait(),
 * whichever path reaped it: a full SQ makes submit() reap mid-iteration,
 * and events taken off the epoll set then must not be dropped (edge
 * triggered ones would never come again). */
static void reap(struct evq_loop *loop, struct uring_state *st)
{
	struct io_uring_cq *cq = &st->ring.cq;
	unsigned head = *cq->khead;
	unsigned n = io_uring_smp_load_acquire(cq->ktail) - head, i;

	if (n == 0) {
		ring_ok_update(st);
		return;
	}
	/* No memory for the road: what does not fit stays in the CQ (and
	 * the kernel's overflow list) for the next wait. */
	while (n > 0 && !evq__done_room(loop, (int)n))
		n /= 2;
	for (i = 0; i < n; i++) {
		const struct io_uring_cqe *cqe =
			&cq->cqes[(head + i) & cq->ring_mask];
		uint64_t tag = cqe->user_data;

		if (evq__likely(tag > TAG_MSG)) {
			if (evq__likely(cqe->flags == 0)) {
				/* An op's last result, no buffer: the
				 * common CQE, straight onto the road. */
				struct evq__done *d =
					&loop->done[loop->ndone++];

				st->ksq.inflight--;
				d->op = (struct evq_op *)(uintptr_t)tag;
				d->res = cqe->res;
				d->flags = 0;
				continue;
			}
			reap_op(loop, st, (struct evq_op *)(uintptr_t)tag, cqe);
		} else if (tag == TAG_EPOLL) {
			st->epoll_armed = false;
			if (!st->epoll_wait_op)
				st->epoll_fired = true;
			else if (cqe->res > 0)
				st->epoll_ready = cqe->res;
		} else if (tag == TAG_MSG) {
			loop->msg_rung = true;
		}
	}
	io_uring_smp_store_release(cq->khead, head + i);
	ring_ok_update(st);
}

/* Submit what is queued, making room in the CQ if the kernel wants it. */
static int submit(struct evq_loop *loop, struct uring_state *st)
{
	int r;

	for (;;) {
		r = enter(st, sq_flush(st), 0, 0);
		if (r != -EBUSY && r != -EINTR)
			return r < 0 ? r : 0;
		reap(loop, st);	/* note d */
	}
}

/* Full SQ: hand it to the kernel, then take again. No SQE of this
 * backend links to the next one (note g), so the SQ may be cut
 * anywhere; the close's cancel and the close itself take their two
 * SQEs together (sq_room). */
/* Free SQEs, by the kernel's head read now. */
static unsigned sq_space(struct uring_state *st)
{
	st->ksq.head_seen = io_uring_smp_load_acquire(st->ring.sq.khead);
	return st->ksq.entries - (st->ksq.tail - st->ksq.head_seen);
}

static __attribute__((noinline)) struct io_uring_sqe *
get_sqe_slow(struct evq_loop *loop, struct uring_state *st)
{
	struct evq__uring_sq *q = &st->ksq;

	while (sq_space(st) == 0)
		if (submit(loop, st) < 0)
			return NULL;
	return &q->sqes[q->tail++ & q->mask];
}

/* The next free SQE. The kernel's head is read only when the SQ looks
 * full by the last value read (it can only have moved on). */
static inline struct io_uring_sqe *get_sqe(struct evq_loop *loop,
					   struct uring_state *st)
{
	struct evq__uring_sq *q = &st->ksq;
	unsigned tail = q->tail;

	if (evq__unlikely(tail - q->head_seen >= q->entries))
		return get_sqe_slow(loop, st);
	q->tail = tail + 1;
	return &q->sqes[tail & q->mask];
}

/* Room for n SQEs in a row, submitting what is queued if need be. False
 * when the SQ can never hold n, or submitting failed. */
static bool sq_room(struct evq_loop *loop, struct uring_state *st,
		    unsigned n)
{
	if (n > st->ksq.entries)
		return false;
	while (sq_space(st) < n)
		if (submit(loop, st) < 0)
			return false;
	return true;
}

/* ------------------------------------------------------------------------
 * Readiness (note b)
 * ------------------------------------------------------------------------ */

static int uring_modify(struct evq_loop *loop, int fd, unsigned old,
			unsigned mask, uint32_t gen)
{
	struct uring_state *st = loop->backend_data;
	int r = evq__epoll_set_modify(&st->set, fd, old, mask, gen);

	ring_ok_update(st);	/* an fd always ready came or went */
	return r;
}

/* The core saw reports of dead registrations: rebuild the set when no
 * wait on it is in the kernel (uring_wait). */
static void uring_stale(struct evq_loop *loop)
{
	struct uring_state *st = loop->backend_data;

	st->set.stale = true;
	st->ring_ok = false;
}

static void arm_epoll(struct evq_loop *loop, struct uring_state *st, int max)
{
	struct io_uring_sqe *sqe = get_sqe(loop, st);

	if (!sqe)
		return;
	if (st->epoll_wait_op) {
		io_uring_prep_rw(OP_EPOLL_WAIT, sqe, st->set.epfd,
				 st->set.events, (unsigned)max, 0);
	} else {
		io_uring_prep_poll_add(sqe, st->set.epfd, POLLIN);
	}
	io_uring_sqe_set_data64(sqe, TAG_EPOLL);
	st->epoll_armed = true;
	st->epoll_run = loop->runs;
}

/* Note k: nothing for the ring to do, so wait on the epoll set itself. */
static int wait_direct(struct evq_loop *loop, struct uring_state *st,
		       int max, int64_t timeout_ns)
{
	struct timespec ts;
	int n;

	if (timeout_ns < 0) {
		n = epoll_wait(st->set.epfd, st->set.events, max, -1);
	} else {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		n = epoll_pwait2(st->set.epfd, st->set.events, max, &ts, NULL);
	}
	if (n < 0)
		return errno == EINTR ? -EINTR : -errno;
	return evq__epoll_set_translate(loop, &st->set, n);
}

static int wait_tail(struct evq_loop *loop, struct uring_state *st,
		     int max);

/* Every wait but the common one (uring_wait). */
static __attribute__((noinline)) int
uring_wait_full(struct evq_loop *loop, int64_t timeout_ns)
{
	struct uring_state *st = loop->backend_data;
	/* No rebuild while a wait is armed: the kernel took its epoll fd
	 * when it took the SQE and would go on waiting on the old set.
	 * Every wait that is not armed afterwards is armed on the new set. */
	int max = evq__epoll_set_prepare(loop, &st->set, &timeout_ns,
					 !st->epoll_armed);
	int r;

	/* Op CQEs imply ops in flight; the backend's own SQEs are either
	 * still in the SQ (taken, not flushed) or were submitted with
	 * something else that is in flight. */
	if ((st->ksq.inflight | st->epoll_armed | st->epoll_fired |
	     st->epoll_ready | st->msg_ports) == 0 &&
	    st->ksq.tail == st->ring.sq.sqe_head && st->direct_ok)
		return wait_direct(loop, st, max, timeout_ns);

	/* set.events still holds unreported events: no new EPOLL_WAIT may
	 * write over them, and there is no reason to block. */
	if (!st->epoll_armed && !st->epoll_fired && !st->epoll_ready)
		arm_epoll(loop, st, max);
	if (io_uring_cq_ready(&st->ring) || st->epoll_fired ||
	    st->epoll_ready || loop->msg_rung)
		timeout_ns = 0;

	r = enter(st, sq_flush(st), timeout_ns != 0, timeout_ns);
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY &&
	    r != -EAGAIN)
		return r;
	reap(loop, st);
	return wait_tail(loop, st, max);
}

/* After the reap: hand the readiness the ring collected to the core. */
static int wait_tail(struct evq_loop *loop, struct uring_state *st, int max)
{
	int n = st->epoll_ready;

	st->epoll_ready = 0;
	if (st->epoll_fired) {
		/* Fallback readiness: the set said readable; collect. */
		st->epoll_fired = false;
		n = epoll_wait(st->set.epfd, st->set.events, max, 0);
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		return evq__epoll_set_translate(loop, &st->set, n);
	}
	/* Note o: the EPOLL_WAIT was armed in an earlier evq_loop_run():
	 * the kernel may have collected its events before the loop returned
	 * to its caller, and a plain close() made since would not stop
	 * their delivery. Check each one's registration (one epoll_ctl
	 * each); a loop run with EVQ_RUN_DEFAULT never pays this. */
	if (evq__unlikely(n > 0 && st->epoll_run != loop->runs))
		return evq__epoll_set_translate_verify(loop, &st->set, n);
	return evq__epoll_set_translate(loop, &st->set, n);
}

/* uring_wait's end when a CQE is not an op's plain last result, or the
 * road has no room: the general reap, from the CQ's head on. */
static __attribute__((noinline)) int
wait_reap_rest(struct evq_loop *loop, struct uring_state *st)
{
	reap(loop, st);
	if (st->epoll_ready == 0 && !st->epoll_fired)
		return 0;
	return wait_tail(loop, st, loop->fired_cap);
}

/* The common wait (st->ring_ok; block: no end, else a look): enter(),
 * for a ring its owner entered before (note n), with no timeout,
 * submitting what the SQ holds (exactly: the kernel waits only when it
 * took all it was told) and waiting for one CQE unless it only looks
 * (the kernel returns at once when one is there already); then reap(),
 * for CQEs that are all plain last results of ops (no flag, no buffer:
 * the common batch), that the road has room for: the first other one
 * (readiness, a doorbell) hands the rest to reap(). */
static __attribute__((noinline)) int
uring_wait_ring(struct evq_loop *loop, struct uring_state *st, bool block)
{
	static const struct io_uring_getevents_arg forever = {
		.sigmask_sz = _NSIG / 8
	};
	struct io_uring_cq *cq = &st->ring.cq;
	unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
	int fd = st->ring.ring_fd;
	const struct io_uring_cqe *cqes;
	struct evq__done *d, *d0, *end;
	unsigned head, mask, n;
	long r;

	if (evq__likely(st->reg_owner == this_thread())) {
		flags |= IORING_ENTER_REGISTERED_RING;
		fd = st->reg_index;
	}
	r = evq__syscall6(__NR_io_uring_enter, fd, sq_flush(st), block, flags,
			  (long)(uintptr_t)&forever, sizeof(forever));
	if (evq__unlikely(r < 0) && r != -ETIME && r != -EINTR &&
	    r != -EBUSY && r != -EAGAIN)
		return (int)r;
	head = *cq->khead;
	n = io_uring_smp_load_acquire(cq->ktail) - head;
	if (evq__unlikely(loop->ndone + (int)n > loop->done_cap))
		return wait_reap_rest(loop, st);
	d0 = d = &loop->done[loop->ndone];
	end = d + n;
	cqes = cq->cqes;
	mask = cq->ring_mask;
	for (; d != end; d++, head++) {
		const struct io_uring_cqe *cqe = &cqes[head & mask];

		if (evq__unlikely(cqe->user_data <= TAG_MSG ||
				  cqe->flags != 0))
			break;
		d->op = (struct evq_op *)(uintptr_t)cqe->user_data;
		d->res = cqe->res;
		d->flags = 0;
	}
	loop->ndone += (int)(d - d0);
	st->ksq.inflight -= (unsigned)(d - d0);
	io_uring_smp_store_release(cq->khead, head);
	if (evq__unlikely(d != end))
		return wait_reap_rest(loop, st);
	return 0;	/* op completions only: readiness did not change */
}

/* Out of line, each way: the readiness waits save no register for the
 * ring's. */
static int uring_wait(struct evq_loop *loop, int64_t timeout_ns)
{
	struct uring_state *st = loop->backend_data;

	if (evq__likely(st->ring_ok) && evq__likely(timeout_ns <= 0))
		return uring_wait_ring(loop, st, timeout_ns != 0);
	return uring_wait_full(loop, timeout_ns);
}

/* ------------------------------------------------------------------------
 * Ops (note a)
 * ------------------------------------------------------------------------ */

static uint16_t pool_bgid(const struct evq_pool *pool)
{
	return ((const struct uring_pool *)pool->backend_data)->bgid;
}

/* The ops of issue 14 after splice (note q): EVQ__EMULATE where the
 * kernel lacks the opcode. */
static int prep_more(struct uring_state *st, struct io_uring_sqe *sqe,
		     struct evq_op *op)
{
	if (!(st->native_new & 1u << op->code))
		return EVQ__EMULATE;
	switch (op->code) {
	case EVQ_OP_SHUTDOWN:
		io_uring_prep_shutdown(sqe, op->fd, op->u.how);
		break;
	case EVQ_OP_SOCKET:
		io_uring_prep_socket(sqe, op->u.sock.domain, op->u.sock.type,
				     op->u.sock.protocol, op->u.sock.flags);
		break;
	case EVQ_OP_FALLOCATE:
		io_uring_prep_fallocate(sqe, op->fd, op->u.falloc.mode,
					(off_t)op->u.falloc.off,
					(off_t)op->u.falloc.len);
		break;
	case EVQ_OP_UNLINKAT:
		io_uring_prep_unlinkat(sqe, op->u.open.dirfd, op->u.open.path,
				       op->u.open.flags);
		break;
	case EVQ_OP_RENAMEAT:
		io_uring_prep_renameat(sqe, op->u.ren.olddirfd,
				       op->u.ren.oldpath, op->u.ren.newdirfd,
				       op->u.ren.newpath, op->u.ren.flags);
		break;
	case EVQ_OP_SEND_ZC:
		io_uring_prep_send_zc(sqe, op->fd, op->u.sr.buf, op->u.sr.len,
				      op->u.sr.flags | MSG_NOSIGNAL, 0);
		break;
	default:	/* EVQ_OP_MKDIRAT */
		io_uring_prep_mkdirat(sqe, op->u.open.dirfd, op->u.open.path,
				      (mode_t)op->u.open.mode);
		break;
	}
	return 0;
}

/* Fill sqe for op. Returns 0 or -errno. */
static int prep_op(struct evq_loop *loop, struct uring_state *st,
		   struct io_uring_sqe *sqe, struct evq_op *op)
{
	bool multi = op->flags & EVQ_OP_MULTISHOT;
	int waitall = (op->flags & EVQ__OPF_WAITALL) ? MSG_WAITALL : 0;

	(void)loop;
	switch (op->code) {
	case EVQ_OP_NOP:
		io_uring_prep_nop(sqe);
		break;
	case EVQ_OP_READ:
		if (op->flags & EVQ__OPF_POOL) {
			io_uring_prep_read(sqe, op->fd, NULL,
					   (unsigned)op->u.pool.pool->size,
					   op->u.pool.off);
			sqe->flags |= IOSQE_BUFFER_SELECT;
			sqe->buf_group = pool_bgid(op->u.pool.pool);
			break;
		}
		io_uring_prep_read(sqe, op->fd, op->u.rw.buf,
				   (unsigned)op->u.rw.len, op->u.rw.off);
		break;
	case EVQ_OP_WRITE:
		io_uring_prep_write(sqe, op->fd, op->u.rw.buf,
				    (unsigned)op->u.rw.len, op->u.rw.off);
		break;
	case EVQ_OP_READV:
		io_uring_prep_readv(sqe, op->fd, op->u.vec.iov,
				    (unsigned)op->u.vec.cnt, op->u.vec.off);
		break;
	case EVQ_OP_WRITEV:
		io_uring_prep_writev(sqe, op->fd, op->u.vec.iov,
				     (unsigned)op->u.vec.cnt, op->u.vec.off);
		break;
	case EVQ_OP_RECV:
		if (op->flags & EVQ__OPF_POOL) {
			io_uring_prep_recv(sqe, op->fd, NULL, 0,
					   op->u.pool.flags);
			sqe->flags |= IOSQE_BUFFER_SELECT;
			sqe->buf_group = pool_bgid(op->u.pool.pool);
			if (multi && st->multishot_recv)
				sqe->ioprio |= IORING_RECV_MULTISHOT;
			break;
		}
		io_uring_prep_recv(sqe, op->fd, op->u.sr.buf, op->u.sr.len,
				   op->u.sr.flags | waitall);
		break;
	case EVQ_OP_SEND:
		io_uring_prep_send(sqe, op->fd, op->u.sr.buf, op->u.sr.len,
				   op->u.sr.flags | MSG_NOSIGNAL | waitall);
		break;
	case EVQ_OP_RECVMSG:
		io_uring_prep_recvmsg(sqe, op->fd, op->u.msg.msg,
				      (unsigned)op->u.msg.flags);
		break;
	case EVQ_OP_SENDMSG:
		io_uring_prep_sendmsg(sqe, op->fd, op->u.msg.msg,
				      (unsigned)(op->u.msg.flags | MSG_NOSIGNAL));
		break;
	case EVQ_OP_ACCEPT:
		if (multi && st->multishot_accept)
			io_uring_prep_multishot_accept(sqe, op->fd,
						       op->u.acc.addr,
						       op->u.acc.addrlen,
						       op->u.acc.flags);
		else
			io_uring_prep_accept(sqe, op->fd, op->u.acc.addr,
					     op->u.acc.addrlen,
					     op->u.acc.flags);
		break;
	case EVQ_OP_CONNECT:
		io_uring_prep_connect(sqe, op->fd, op->u.conn.addr,
				      op->u.conn.len);
		break;
	case EVQ_OP_OPENAT:
		io_uring_prep_openat(sqe, op->u.open.dirfd, op->u.open.path,
				     op->u.open.flags, (mode_t)op->u.open.mode);
		break;
	case EVQ_OP_STATX:
		io_uring_prep_statx(sqe, op->u.stat.dirfd, op->u.stat.path,
				    op->u.stat.flags, op->u.stat.mask,
				    op->u.stat.stx);
		break;
	case EVQ_OP_FSYNC:
		io_uring_prep_fsync(sqe, op->fd,
				    (op->u.fsync_flags & EVQ_FSYNC_DATASYNC)
					    ? IORING_FSYNC_DATASYNC : 0);
		break;
	case EVQ_OP_CLOSE:
		io_uring_prep_close(sqe, op->fd);
		break;
	case EVQ_OP_TIMEOUT: {
		/* The kernel reads the timespec when it takes the SQE, at
		 * the next io_uring_enter(); the op keeps it until then. */
		struct __kernel_timespec *ts = &opx(op)->ts;

		ts->tv_sec = (long long)(op->u.tmo.ns / 1000000000);
		ts->tv_nsec = (long long)(op->u.tmo.ns % 1000000000);
		io_uring_prep_timeout(sqe, ts, 0,
				      st->etime_success
					      ? IORING_TIMEOUT_ETIME_SUCCESS : 0);
		break;
	}
	case EVQ_OP_CANCEL:
		if (op->u.cancel.target) {
			io_uring_prep_cancel64(
				sqe, (uint64_t)(uintptr_t)op->u.cancel.target, 0);
		} else {
			if (!st->cancel_fd)
				return -ENOTSUP;
			io_uring_prep_cancel_fd(sqe, op->u.cancel.fd,
						IORING_ASYNC_CANCEL_ALL);
		}
		break;
	case EVQ_OP_SPLICE:
		if (!(st->native_new & 1u << EVQ_OP_SPLICE))
			return EVQ__EMULATE;	/* note q */
		io_uring_prep_splice(sqe, op->u.splice.fd_in,
				     (int64_t)op->u.splice.off_in, op->fd,
				     (int64_t)op->u.splice.off_out,
				     op->u.splice.len, op->u.splice.flags);
		/* A non-blocking side that is not ready: the kernel says
		 * -EAGAIN, and the core waits for it (core/ops.c). */
		op->flags |= EVQ__OPF_AGAIN;
		break;
	case EVQ_OP_SHUTDOWN:
	case EVQ_OP_SOCKET:
	case EVQ_OP_FALLOCATE:
	case EVQ_OP_UNLINKAT:
	case EVQ_OP_RENAMEAT:
	case EVQ_OP_MKDIRAT:
	case EVQ_OP_SEND_ZC:
		return prep_more(st, sqe, op);
	default:
		return -EINVAL;
	}
	return 0;
}

/* A close of fd: the kernel's cancel by fd does not find a splice that
 * no io-wq thread has begun (it takes its files when it begins, and
 * would then take whatever file has the number), so each splice on fd
 * (either side) is cancelled by address first. A walk of the loop's ops
 * in flight, as the core's own for the close. */
static __attribute__((noinline, cold)) void
close_splices(struct evq_loop *loop, struct uring_state *st, int fd)
{
	struct io_uring_sqe *sqe;

	if (!(st->native_new & 1u << EVQ_OP_SPLICE))
		return;
	for (struct evq_op *o = loop->ops_head; o; o = o->next) {
		if (o->code != EVQ_OP_SPLICE || o->state != EVQ__OP_NATIVE ||
		    (o->fd != fd && o->u.splice.fd_in != fd))
			continue;
		sqe = get_sqe(loop, st);
		if (!sqe)
			return;
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)o, 0);
		io_uring_sqe_set_data64(sqe, TAG_IGNORE);
	}
}

/* backend->op_start: one SQE (two for a close), sent to the kernel by
 * the next wait, or by a submit when the SQ is full. Its results come
 * from the CQ, onto the road; an error here is returned to the core. */
static int uring_op_start(struct evq_loop *loop, struct evq_op *op)
{
	struct uring_state *st = loop->backend_data;
	struct io_uring_sqe *sqe;
	int r;

	if (evq__unlikely(op->code == EVQ_OP_CLOSE) &&
	    (close_splices(loop, st, op->fd), st->cancel_fd) &&
	    sq_room(loop, st, 2)) {
		/* The kernel's ops on fd end before the number is freed
		 * (the core ended its own); HARDLINK so that "nothing to
		 * cancel" does not cancel the close. Both SQEs are taken
		 * together, or a full SQ could part them. A ring of one
		 * entry cannot: its close goes alone. */
		sqe = get_sqe(loop, st);
		io_uring_prep_cancel_fd(sqe, op->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, TAG_IGNORE);
		sqe->flags |= IOSQE_IO_HARDLINK;
	}
	sqe = get_sqe(loop, st);
	if (!sqe)
		return -EBUSY;	/* submitting failed: the ring is unusable */
	r = prep_op(loop, st, sqe, op);
	if (r != 0) {
		if (r == EVQ__EMULATE) {
			/* note q: the SQE just taken goes back unused */
			st->ksq.tail--;
			return r;
		}
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, TAG_IGNORE);
		return r;
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
	st->ksq.inflight++;
	/* Note h: multishot that the kernel cannot do is single-shot. */
	if (evq__unlikely(op->flags & EVQ_OP_MULTISHOT) &&
	    !(op->code == EVQ_OP_ACCEPT ? st->multishot_accept
					: st->multishot_recv))
		return EVQ__SINGLE;
	return 0;
}

/* op_queue's SQE for an op other than a plain read or write. */
static __attribute__((noinline)) int
op_queue_other(struct evq_loop *loop, struct uring_state *st,
	       struct io_uring_sqe *sqe, struct evq_op *op)
{
	int r = prep_op(loop, st, sqe, op);

	if (evq__unlikely(r != 0)) {
		if (r == EVQ__EMULATE) {
			st->ksq.tail--;	/* unused: the core's */
			return EVQ__LATER;
		}
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, TAG_IGNORE);
		return r;
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
	st->ksq.inflight++;
	return 0;
}

/* backend->op_queue: a plain op's SQE, if the SQ has room for it without
 * entering the ring (the kernel's head is read again before saying no).
 * A plain read or write (no pool: op_queue gets no flags), the common
 * op, is filled here without prep_op's switch, and calls nothing. */
static int uring_op_queue(struct evq_loop *loop, struct evq_op *op)
{
	struct uring_state *st = loop->backend_data;
	struct evq__uring_sq *q = &st->ksq;
	struct io_uring_sqe *sqe;
	unsigned tail = q->tail;

	if (evq__unlikely(tail - q->head_seen >= q->entries) &&
	    sq_space(st) == 0)
		return EVQ__LATER;
	q->tail = tail + 1;
	sqe = &q->sqes[tail & q->mask];
	if (evq__unlikely(op->code != EVQ_OP_READ &&
			  op->code != EVQ_OP_WRITE))
		return op_queue_other(loop, st, sqe, op);
	io_uring_prep_rw(op->code == EVQ_OP_READ ? IORING_OP_READ
						 : IORING_OP_WRITE,
			 sqe, op->fd, op->u.rw.buf, (unsigned)op->u.rw.len,
			 op->u.rw.off);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
	st->ksq.inflight++;
	return 0;
}

/* backend->pending: SQEs taken and not handed to the kernel yet (an
 * op's, from evq_op_submit's inline path too): the next wait sends
 * them, though evq_loop_fd() stays quiet until then. And regular files
 * in the epoll set, reported by every wait (epoll_set.c, note c): neither
 * the ring's eventfd nor the set's fd says so. */
static bool uring_pending(const struct evq_loop *loop)
{
	const struct uring_state *st = loop->backend_data;

	return st->ksq.tail != st->ring.sq.sqe_head || st->set.nalways;
}

/* For evq_loop_free: cancel everything, then wait for every last CQE. */
static void uring_op_drain(struct evq_loop *loop)
{
	struct uring_state *st = loop->backend_data;
	struct io_uring_sqe *sqe;

	if (getpid() != st->pid) {
		/* A fork child freeing its copy: the ring is the parent's,
		 * shared, and so are the requests in it. Entering it would
		 * cancel the parent's ops (and, SINGLE_ISSUER, take the ring
		 * from the parent's thread): the child's copies of those ops
		 * end without a callback (docs/ARCHITECTURE.md, fork). */
		st->ksq.inflight = 0;
	}
	if (st->ksq.inflight > 0) {
		sqe = get_sqe(loop, st);
		if (sqe) {
			io_uring_prep_cancel64(sqe, 0,
					       IORING_ASYNC_CANCEL_ANY |
						       IORING_ASYNC_CANCEL_ALL);
			io_uring_sqe_set_data64(sqe, TAG_IGNORE);
		}
	}
	while (st->ksq.inflight > 0) {
		int r = enter(st, sq_flush(st), 1, -1);

		if (r < 0 && r != -EINTR && r != -EBUSY && r != -ETIME)
			break;
		reap(loop, st);
	}
}

/* ------------------------------------------------------------------------
 * Cross-loop message doorbells (note p)
 * ------------------------------------------------------------------------ */

/* backend->msg_fd: the ring's fd once senders can ring it (the ring is
 * enabled, note n; a ring still disabled answers -EBADFD). */
static int uring_msg_fd(struct evq_loop *loop, int delta)
{
	struct uring_state *st = loop->backend_data;

	if (!st->msg_ring)
		return -1;
	st->msg_ports += (unsigned)delta;
	return st->owned ? st->ring.ring_fd : -1;
}

/* backend->msg_ring: a doorbell SQE for the ring behind fd, sent with
 * the next wait; no CQE here unless it fails, and then it is ignored
 * (note p). fd -1: submit now what is queued. */
static int uring_msg_ring(struct evq_loop *loop, int fd)
{
	struct uring_state *st = loop->backend_data;
	struct io_uring_sqe *sqe;

	if (fd < 0)
		return sq_flush(st) ? submit(loop, st) : 0;
	if (!st->msg_ring)
		return -ENOTSUP;
	sqe = get_sqe(loop, st);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_msg_ring(sqe, fd, 0, TAG_MSG, 0);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, TAG_IGNORE);
	return 0;
}

/* ------------------------------------------------------------------------
 * Embedding (note l)
 * ------------------------------------------------------------------------ */

static void cq_event_cb(struct evq_loop *loop, struct evq_io *w,
			unsigned revents)
{
	uint64_t n;

	(void)loop;
	(void)revents;
	/* The CQEs themselves are reaped by the wait; this only drains the
	 * eventfd so that it stops being readable. */
	while (read(w->fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
}

static int uring_embed_fd(struct evq_loop *loop)
{
	struct uring_state *st = loop->backend_data;
	int fd, r;

	if (st->cq_eventfd >= 0)
		return evq__epoll_set_embed_fd(&st->set);
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = io_uring_register_eventfd(&st->ring, fd);
	if (r == 0)
		r = evq__io_start_internal(loop, &st->cq_io, fd, EVQ_READ,
					   cq_event_cb);
	if (r < 0) {
		io_uring_unregister_eventfd(&st->ring);
		close(fd);
		return r;
	}
	st->cq_eventfd = fd;
	return evq__epoll_set_embed_fd(&st->set);
}

/* ------------------------------------------------------------------------
 * Buffer pools (note i)
 * ------------------------------------------------------------------------ */

static int uring_pool_init(struct evq_loop *loop, struct evq_pool *pool)
{
	struct uring_state *st = loop->backend_data;
	struct io_uring_buf_reg reg = { 0 };
	struct uring_pool *up = calloc(1, sizeof(*up));
	int r;

	if (!up)
		return -ENOMEM;
	up->br_size = pool->nbufs * sizeof(struct io_uring_buf);
	up->br = mmap(NULL, up->br_size, PROT_READ | PROT_WRITE,
		      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (up->br == MAP_FAILED) {
		free(up);
		return -ENOMEM;
	}
	up->bgid = st->next_bgid++;
	up->mask = (unsigned)io_uring_buf_ring_mask(pool->nbufs);
	reg.ring_addr = (uint64_t)(uintptr_t)up->br;
	reg.ring_entries = pool->nbufs;
	reg.bgid = up->bgid;
	r = io_uring_register_buf_ring(&st->ring, &reg, 0);
	if (r < 0) {
		munmap(up->br, up->br_size);
		free(up);
		return r;
	}
	io_uring_buf_ring_init(up->br);
	for (unsigned i = 0; i < pool->nbufs; i++)
		io_uring_buf_ring_add(up->br, pool->mem + (size_t)i * pool->size,
				      (unsigned)pool->size, (unsigned short)i,
				      (int)up->mask, (int)i);
	io_uring_buf_ring_advance(up->br, (int)pool->nbufs);
	pool->backend_data = up;
	return 0;
}

static void uring_pool_release(struct evq_loop *loop, struct evq_pool *pool,
			       unsigned id)
{
	struct uring_pool *up = pool->backend_data;

	(void)loop;
	io_uring_buf_ring_add(up->br, pool->mem + (size_t)id * pool->size,
			      (unsigned)pool->size, (unsigned short)id,
			      (int)up->mask, 0);
	io_uring_buf_ring_advance(up->br, 1);
}

static void uring_pool_destroy(struct evq_loop *loop, struct evq_pool *pool)
{
	struct uring_state *st = loop->backend_data;
	struct uring_pool *up = pool->backend_data;

	io_uring_unregister_buf_ring(&st->ring, up->bgid);
	munmap(up->br, up->br_size);
	free(up);
	pool->backend_data = NULL;
}

const struct evq__backend evq__backend_uring = {
	.name = "uring",
	.id = EVQ_BACKEND_URING,
	.caps = EVQ__CAP_EDGE | EVQ__CAP_KERNEL_OPS,
	.probe = uring_probe,
	.init = uring_init,
	.destroy = uring_destroy,
	.modify = uring_modify,
	.wait = uring_wait,
	.stale = uring_stale,
	.embed_fd = uring_embed_fd,
	.pending = uring_pending,
	.op_start = uring_op_start,
	.op_queue = uring_op_queue,
	.op_drain = uring_op_drain,
	.pool_init = uring_pool_init,
	.pool_release = uring_pool_release,
	.pool_destroy = uring_pool_destroy,
	.msg_fd = uring_msg_fd,
	.msg_ring = uring_msg_ring,
};
