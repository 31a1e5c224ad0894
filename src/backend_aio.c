/* SPDX-License-Identifier: MIT */
/*
 * backend_aio.c - the Linux AIO backend: readiness through IOCB_CMD_POLL,
 * and O_DIRECT transfers and fsync as ops of their own (note j).
 *
 * Notes on Linux AIO (kernel references are to fs/aio.c):
 *  a) IOCB_CMD_POLL (Linux 4.18; polling an epoll fd, which note f needs,
 *     works from 4.19, so the probe asks for 4.19) is one-shot: a poll
 *     completes once and is gone. After a report, the fd is re-armed in
 *     the next wait if the core still wants events for it, which makes
 *     watchers level-triggered, as with poll(2). A poll submitted while
 *     the fd is ready completes inside io_submit() (aio_poll() "steals"
 *     the wakeup), so the re-arm of a still-ready fd is reported by the
 *     same wait that submits it.
 *  b) Batching: new polls, changed masks and re-arms are queued, and go to
 *     the kernel in one io_submit() at the start of wait. io_submit() can
 *     accept fewer iocbs than offered: it stops at the first one it cannot
 *     take, and the next call, starting there, returns that iocb's error:
 *     EBADF (fd closed) is reported as EVQ__NVAL, which ends the watch;
 *     EINVAL moves the fd to the fallback (note f); EAGAIN means the
 *     context is full (note e).
 *  c) Completions are read in user space: io_setup() maps a ring (struct
 *     aio_ring, which no uapi header declares) at the context's address.
 *     If its magic, incompat_features or header_length is not what is
 *     known here, the ring is left alone and io_getevents() reaps
 *     everything. Otherwise: load tail (acquire; the kernel writes the
 *     event, then smp_wmb(), then tail), read the events, store head
 *     (release, so the slots are read before the kernel may reuse them).
 *     The kernel counts slots freed this way (user_refill_reqs_available).
 *     io_getevents() is called only when the loop must block: the timeout
 *     is not 0 and the ring is empty. Its timespec is relative and served
 *     by an hrtimer with the thread's slack: it never wakes early (50 ms
 *     measured as 50.09-50.15 ms).
 *  d) Changing a mask: a poll that has fired and is not re-armed yet costs
 *     nothing, the re-arm takes the new mask. An armed poll that is
 *     narrowed is left alone and its completion filtered; one that is
 *     widened or stopped is cancelled with io_cancel() (by iocb address)
 *     and a new one queued. io_cancel() of a poll returns EINPROGRESS and
 *     the cancelled poll still completes through the ring, with whatever
 *     mask it saw (often 0). Every submission carries a serial number in
 *     the upper half of aio_data; a completion whose serial is not that of
 *     the record's armed poll is a cancelled or replaced one and is
 *     dropped here. Reports carry the core's generation of the
 *     registration.
 *  e) Capacity: io_setup(nr) makes a ring of about 2 * max(nr, 4 * CPUs)
 *     events, rounded up to whole pages, and the kernel refuses (EAGAIN)
 *     requests beyond it, less what per-CPU caches hold (nr 1: a ring of
 *     127, 120 polls accepted on 2 CPUs). The nr asked for counts against
 *     fs.aio-max-nr, 65536 for the whole system. So a loop starts small
 *     (128) and, on EAGAIN, replaces its context by one 8 times bigger (and
 *     with a slot per watched fd at least) and re-arms everything; if no
 *     bigger one can be had, every fd moves to the epoll fallback for the
 *     rest of the loop's life ("degraded").
 *     io_destroy() waits for two RCU grace periods, about 32 ms here even
 *     for an idle context: evq_loop_free() and each growth pay that.
 *  f) IOCB_CMD_POLL fails with EINVAL on files whose poll waits on two
 *     queues (ttys and ptys, a FIFO opened O_RDWR), but only when the file
 *     is not ready at submission, so one fd may be accepted once and
 *     refused the next time. Such an fd moves to an epoll set for as long
 *     as it stays registered; the epoll fd itself is polled through AIO.
 *     The set is the core's (core/epoll_set.c) with set.member saying
 *     which fds are in it: its rebuild (epoll_set.c note b) re-adds only
 *     those, and a file epoll refuses stays on AIO instead of becoming
 *     "always ready" there.
 *     A signalfd cannot be polled this way at all: a poll that does not
 *     complete at once is completed by a kworker (aio_poll_complete_work),
 *     and a signalfd's poll looks at the signals of the task that runs it,
 *     so a signal that arrives later never completes it (measured). A
 *     signalfd (an anonymous inode whose /proc/self/fd link says
 *     "[signalfd]"; any anonymous inode if /proc cannot tell) goes to the
 *     epoll set from the start. Regular files have no poll method and
 *     complete at once with IN|OUT: always ready, as with poll(2).
 *  g) close(): a pending poll holds a reference to its file (fget() at
 *     submission, fput() when the request is freed), so a plain close()
 *     neither ends the poll nor releases the file: the peer of a closed
 *     socket sees no EOF and its writes still succeed, and when the file
 *     becomes ready the poll completes for a number that is closed, or
 *     names another file. Measured: the file is released microseconds
 *     after the poll fires (in the waker's context), about 8 ms after
 *     io_cancel() (the cancel runs from a work item, whose fput is
 *     deferred), or at io_destroy(). What evq does about it:
 *      - Every registration is anchored in a private epoll set that is
 *        never waited on (idfd). epoll keys its items by (file, number),
 *        so EPOLL_CTL_MOD on a number that now names another file, or
 *        none, fails: an exact identity check for every kind of file
 *        (anonymous inodes such as eventfds share one inode, so
 *        (st_dev, st_ino) cannot tell them apart). Files epoll refuses
 *        (regular files, directories) are compared by (st_dev, st_ino).
 *        Anchors are never deleted: epoll drops them with their file.
 *      - Reports are checked once per EVQ_IO_STALE_LIMIT reports of an
 *        fd (must_check), as the epoll set checks its registrations; if
 *        the number no longer names the file, EVQ__NVAL is reported
 *        instead, which ends the watch. Not every report: that was one
 *        epoll_ctl() per event, and nothing cheaper tells a closed or
 *        reused number from the file the poll holds. So the close-safety
 *        limit is poll(2)'s (evq.h): a closed number is noticed when the
 *        poll's re-arm fails with EBADF in the next io_submit(), after the
 *        held file's next event has been reported once; a number reused
 *        before that re-arm is polled for the old watcher until the
 *        periodic check, or a watcher starting on it, notices.
 *      - A watcher joining the number, or a change of mask, is checked the
 *        same way first, and gets EVQ__STALE; the old poll is cancelled,
 *        which releases the old file.
 *      - When the core drops an fd (the last watcher stopped, or an evq
 *        close op), its poll is cancelled, and the backend waits for every
 *        cancelled poll of the fd to complete (about 15 us, measured: the
 *        cancel runs from a work item). Only then has the poll let go of
 *        the file, so that a close() that follows is the last reference
 *        and frees the file at once, as with epoll; had the work item
 *        come last, the kernel would free the file a jiffy later. A stop
 *        is applied when the loop next iterates: a close() before that
 *        still finds the poll holding the file, which then goes a few ms
 *        after that iteration.
 *      - Re-arms are not checked (a second syscall per event). A re-arm
 *        of a closed number fails with EBADF (EVQ__NVAL; io_submit()
 *        stops there and the rest of the batch is submitted again); a
 *        re-arm of a reused number polls the new file, and holds it open
 *        until the watch ends: stop a watcher before closing its fd.
 *  h) No edge-triggered mode: a one-shot poll re-armed on a still-ready fd
 *     fires at once, so "new data since the last report" cannot be told
 *     from "data still there". EVQ_EDGE gets -ENOTSUP (no EVQ__CAP_EDGE).
 *  i) A context belongs to the process's mm: a forked child has none, and
 *     its copy of the loop cannot be used (evq_loop_free() there is safe:
 *     io_destroy() fails with EINVAL and nothing else touches the kernel).
 *  j) Ops. The core offers every op it starts to op_start (core/ops.c).
 *     Taken here: read, write, readv and writev at an explicit offset on
 *     a regular file or block device open with O_DIRECT, as
 *     IOCB_CMD_PREAD/PWRITE/PREADV/PWRITEV, and fsync on any fd, as
 *     IOCB_CMD_FSYNC/FDSYNC (vfs_fsync() from a kworker: io_submit() only
 *     queues the work). Everything else gets EVQ__EMULATE: sockets and
 *     pipes are tried non-blocking (in the batch, note k) and wait for
 *     readiness through this backend's polls; files and openat, statx,
 *     close go to the loop's thread pool. Why no more:
 *      - Buffered reads and writes run inside io_submit(): aio_read()
 *        calls ->read_iter synchronously, and only direct I/O returns
 *        -EIOCBQUEUED. A cold 1 MiB buffered read spent 1.7 ms inside
 *        io_submit() and had completed when it returned.
 *      - ext4 does a direct write that extends the file synchronously
 *        ("We always perform extending DIO write synchronously",
 *        ext4_dio_write_iter()): a 4 KiB append spent 63-231 us inside
 *        io_submit(), an overwrite 8-12 us (done 30-40 us later). A write
 *        that ends past st_size, or on an O_APPEND fd, is emulated (its
 *        RWF_NOWAIT try gets EAGAIN and it goes to the pool).
 *      - A pipe can have O_DIRECT (packet mode: pipe2(), or F_SETFL), and
 *        AIO on a blocking pipe blocks in io_submit(): O_DIRECT alone is
 *        not enough, the file must be regular or a block device.
 *      - EVQ_OFFSET_CURRENT: an iocb has no "current position". Pool
 *        reads: the buffer is picked when the data is there.
 *     The check is fcntl(F_GETFL) for a transfer op, and fstat() when
 *     O_DIRECT is set. Only a "no" is kept (rec->nodirect), and asked
 *     again once per EVQ_IO_STALE_LIMIT ops of the fd, when a watcher
 *     registers the fd and at an evq close op: F_SETFL changes O_DIRECT
 *     at any time, and a number can be closed and reused between two ops
 *     without the loop seeing it (only watchers are anchored, note g).
 *     A stale "no" only emulates an op that could have been native (the
 *     emulation's result is the same); a "yes" is never kept, since a
 *     native iocb on the wrong file could block io_submit(). Even so an
 *     O_DIRECT io_submit() may block: on metadata reads (a cold inode's
 *     extent tree), when the device queue is out of tags, or where the
 *     filesystem serializes (unaligned writes). tmpfs takes O_DIRECT
 *     since Linux 6.6 and copies inside io_submit(), at memory speed.
 *     Mechanics: op_start prepares the iocb in a per-loop array (opq,
 *     grown by doubling: no allocation per op once it is big enough), and
 *     the next flush submits it after the polls, in the same io_submit().
 *     The kernel copies an iocb and the ops are never io_cancel()ed, so
 *     the array may move once it is submitted. aio_data is TAG_OP | the
 *     op's address, a poll's serial (note d) has 31 bits: the two cannot
 *     mix. A completion goes to loop->done (res is a long: counts are
 *     clamped to INT_MAX as the emulation does, negatives are -errno);
 *     its room was reserved when the op started (no memory: the op is
 *     emulated instead), so reaping never allocates. An op's iocb that
 *     io_submit() refuses completes the op with that error, the one the
 *     syscall gives too: EBADF (closed, or not open for that direction),
 *     EINVAL for an fsync of a file without an fsync method (a pipe, a
 *     socket: fsync(2) tests the same f_op->fsync).
 *     Ops take slots of the context (note e) like polls. On EAGAIN with
 *     ops in flight the rest stays queued until completions free slots;
 *     a context is replaced only with no op in flight, since io_destroy()
 *     waits for in-flight I/O and drops its completions.
 *     Cancel: io_cancel() of a read or write fails with EINVAL (only polls
 *     have a cancel method) and the request completes in full, so the
 *     core answers -EALREADY for a native op, which completes with its own
 *     result. An evq close op submits the queued ops on its fd at once:
 *     the pool may close the fd before the next wait, and a submitted
 *     request holds the file. Those that a full context refuses (EAGAIN)
 *     complete with -ECANCELED there and then: left queued, they would
 *     be submitted by number after the close, into the file that reuses
 *     it (S1 of issue 9; tests/test_aio.c). evq_loop_free() (op_drain):
 *     queued ops complete with -ECANCELED, submitted ones are waited for,
 *     up to a bound (note n): their buffers are the kernel's until they
 *     complete. wait() returns when op results arrived, with or without
 *     reports, and blocks in io_getevents() for ops alone when nothing
 *     is polled.
 *  k) Emulated ops' transfers in the batch (issue 11). The core's
 *     emulation (core/emul.c) keeps deciding what an op does; where it
 *     would call read, write, recv or send on a pipe or socket (the retry
 *     after readiness, a write or send when it starts) it offers the
 *     transfer to xfer_queue, which prepares an IOCB_CMD_PREAD/PWRITE with
 *     aio_rw_flags = RWF_NOWAIT and offset 0, in the op queue. The flush
 *     submits the op queue first, then the polls, in one io_submit():
 *     iocbs run in order, so a read runs before the re-arm of its fd's
 *     poll, which then stays armed if the read drained the socket (and
 *     completes at once if not: the op comes back for more). On a pipe or
 *     socket such a request runs inside io_submit(), on a blocking fd too
 *     (RWF_NOWAIT: -EAGAIN when empty or full, short counts as the
 *     syscall's), and its result is in the ring when the call returns;
 *     the reap hands it back (evq__emul_xfer_done), and the op goes on as
 *     if the syscall had returned it: EAGAIN waits for the poll, a short
 *     transfer completes short. A file without FMODE_NOWAIT (a pty) is
 *     refused by io_submit() with EOPNOTSUPP, so RWF_NOWAIT never lets a
 *     transfer block the batch; such a refusal (or EINVAL) marks the fd
 *     and the op makes the syscall. Offset 0: -1, preadv2's "current
 *     position", is EINVAL for an iocb, and a pipe or socket has no
 *     position; so only pipes and sockets (sockets for recv and send) go
 *     into the batch: the kind comes from the fstat() of the fd's
 *     registration (identify), or for an fd without one (a write end)
 *     from one fstat() per EVQ_IO_STALE_LIMIT transfers; an evq close op
 *     forgets it. A number closed and reused by a regular file behind the
 *     loop's back until then gets the transfer at offset 0 where the
 *     syscall would use the file's position (both act on a file that is
 *     not the op's: the caller broke the close rule of evq.h).
 *     Pool reads: the buffer is picked when the flush builds the iocb
 *     (TAG_TAKEN), so between iterations a buffer is the user's or
 *     available; none left is -ENOBUFS, as the try says; a result <= 0
 *     gives it back here. Cancel: a transfer still in the op queue is
 *     taken out (xfer_cancel; an evq close op cancels its fd's ops first,
 *     so none is submitted after the close); one submitted has run, its
 *     result comes. A refused transfer is handed back after the flush,
 *     never from inside it (the core may queue more).
 *     SIGPIPE: PWRITE on a socket whose peer is gone raises it (no
 *     MSG_NOSIGNAL), which a send must not; a write op raises it as
 *     write(2) does. A flush with sends asks sigaction(SIGPIPE) once
 *     (0 more syscalls when it is ignored, as servers do); otherwise it
 *     blocks SIGPIPE for the thread around its io_submit() calls, takes
 *     back one they raised that was not pending before (sigtimedwait),
 *     and raises it again if a write op of that batch got EPIPE.
 *     The answer is not cached: the kill happens inside io_submit(),
 *     nothing but a syscall tells that the disposition changed (any
 *     thread's sigaction(), an SA_RESETHAND handler), and no earlier
 *     report says a socket will not give EPIPE (docs/BACKENDS.md).
 *     Not in the batch: readv/writev, recvmsg/sendmsg, accept, connect,
 *     linked recv/send (MSG_WAITALL), positioned transfers and blocking
 *     accept: they keep the syscall.
 *  l) Probe and init (core/backend.c: auto takes the first backend whose
 *     probe and init succeed). The probe is io_setup(0): EINVAL says the
 *     call exists, ENOSYS or EPERM (a seccomp filter) that it does not;
 *     it makes no context, so no io_destroy() (note e) is paid. A filter
 *     may allow io_setup() and refuse the rest, so init, once it has its
 *     context, sends one IOCB_CMD_POLL through every call the backend
 *     relies on: io_submit() of a poll on an eventfd that is not ready,
 *     io_cancel() of it, io_getevents() of its completion (a few us: the
 *     cancel runs from a work item), which leaves the ring empty. A
 *     loaded machine may run that work item after init has waited its
 *     100 ms (seen under ASan in a parallel test run): then init goes on,
 *     and the completion, whenever it is reaped, is dropped as a stale
 *     one (note d): its iocb is st->probe, a record never armed. Any
 *     refusal fails init with that error, and is kept for the process:
 *     the next probe returns it at once. Cost: an eventfd and three
 *     syscalls per loop, next to the ~32 ms of io_destroy() at free.
 *  m) Embedding. A context is not an fd, but every iocb can signal an
 *     eventfd when it completes (IOCB_FLAG_RESFD, aio_complete()): that
 *     eventfd is evq_loop_fd(), made on the first call; from then on each
 *     flush marks every iocb it submits (polls, the epoll fallback's
 *     poll, ops), and each wait reads the eventfd empty before it reaps,
 *     so a completion posted after that read signals it again. Polls
 *     armed before the first call carry no flag: they are cancelled and
 *     queued again; ops in flight cannot be (note j), so the loop counts
 *     as busy (pending) until none is. What the eventfd cannot say is
 *     work held for the next wait: a report's re-arm is queued and goes
 *     to the kernel with the next flush, after the callback has run (a
 *     re-arm before it would report the same data twice). backend->
 *     pending tells evq_loop_timeout() so (0), as do completions taken
 *     but not handled (the stash, a ring that fired[] could not empty).
 *     Cost, only once embedded: an eventfd signal per completion in the
 *     kernel, a read() per wait, and a second NOWAIT run of the host per
 *     reported event (the re-arm). A cancelled poll's completion also
 *     signals it: a host may wake for nothing.
 *  n) evq_loop_free() and ops the kernel runs (this bounds the wait of
 *     note j's op_drain). Their iocbs cannot be cancelled (note j) and
 *     their buffers are the kernel's until they complete, so free waits
 *     for them, but not forever: an O_DIRECT
 *     transfer or an fsync on a device that does not answer (a hard NFS
 *     mount whose server is gone, a dead iSCSI or NBD link, a suspended
 *     dm device) may never complete, and io_destroy() itself waits,
 *     uninterruptibly, for every request of the context (fs/aio.c:
 *     io_destroy -> kill_ioctx -> wait_for_completion). So the drain
 *     waits DRAIN_MS_DEFAULT (2 s) in all; ops still in the kernel then
 *     complete with -ETIMEDOUT, and the context is leaked, not destroyed:
 *     free returns. Nothing evq can do makes their memory safe: the
 *     kernel may still write into a read's buffer (or read a write's)
 *     whenever the device answers, so the caller must keep such a buffer
 *     allocated for the rest of the process (evq.h, evq_loop_free). The
 *     leaked context keeps its share of fs.aio-max-nr, and the exit of
 *     the process waits for those requests as io_destroy() would.
 */
#include "internal.h"

#include "backend_aio.h"
#include "core/epoll_set.h"
#include "core/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/aio_abi.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* The ring's header, from fs/aio.c (note c). */
#define AIO_RING_MAGIC 0xa10a10a1u
#define AIO_RING_INCOMPAT_FEATURES 0u
struct aio_ring {
	unsigned id;
	unsigned nr;		/* io_events in the ring */
	unsigned head;		/* written by user space (or io_getevents) */
	unsigned tail;		/* written by the kernel */
	unsigned magic;
	unsigned compat_features;	/* may be ignored, by definition */
	unsigned incompat_features;	/* must all be known */
	unsigned header_length;
	struct io_event io_events[];
};

#define CHUNK_SHIFT 8
#define CHUNK (1 << CHUNK_SHIFT)
#define NR_EVENTS_DEFAULT 128u
#define GROWTH 8u

/* aio_data (note j): an op's iocb carries TAG_OP | the op's address (user
 * addresses never have bit 63 set); a poll's carries its serial number
 * (31 bits) << 32 | its fd. */
#define TAG_OP (1ull << 63)
/* With TAG_OP: an emulated op's transfer (note k), whose result goes back
 * to the core's emulation; and of those, a send (SIGPIPE, note k). */
#define TAG_XFER (1ull << 62)
#define TAG_SEND (1ull << 61)
/* ... and of those, a read into a pool buffer, which the flush picks
 * (TAG_TAKEN: picked; the backend gives it back on a result <= 0). */
#define TAG_POOL (1ull << 60)
#define TAG_TAKEN (1ull << 59)
#define TAG_MASK (TAG_OP | TAG_XFER | TAG_SEND | TAG_POOL | TAG_TAKEN)
#define SERIAL_MASK 0x7fffffffu

enum { MODE_AIO = 0, MODE_EPOLL };

/* Per-fd record. The iocb comes first and records never move (they live
 * in fixed chunks), because the kernel names a request by its iocb's
 * address: io_event.obj, and io_cancel()'s argument. */
struct rec {
	struct iocb cb;
	dev_t dev;		/* identity when not id_epoll (note g) */
	ino_t ino;
	uint32_t gen;		/* the core's generation, for reports */
	uint32_t serial;	/* of the last poll submitted (note d) */
	uint8_t want;		/* EVQ_READ|EVQ_WRITE the core wants; 0: none */
	uint8_t armed;		/* mask of the poll in the kernel; 0: none */
	uint8_t queued;		/* on the submit queue */
	uint8_t mode;		/* MODE_AIO or MODE_EPOLL (note f) */
	uint8_t id_epoll;	/* anchored in idfd (note g) */
	uint8_t sigfd;		/* a signalfd: epoll only (note f) */
	uint8_t cancels;	/* cancelled polls not reaped yet (note g) */
	uint8_t nodirect;	/* note j: the fd's transfers were found not
				 * native; ops answered so since. 0: ask */
	uint8_t kind;		/* note k: KIND_*, what fstat said */
	uint8_t kind_uses;	/* note k: transfers since it said so */
};

/* Note k: the file behind a record's number, for emulated transfers. */
enum { KIND_UNKNOWN = 0, KIND_PIPE, KIND_SOCK, KIND_OTHER };

struct aio_state {
	aio_context_t ctx;
	struct rec probe;	/* note l: init's self-test poll, never armed */
	struct aio_ring *ring;	/* NULL: reap with io_getevents (note c) */
	unsigned ring_nr;	/* ring->nr, read once */
	unsigned nr_events;	/* asked of io_setup() */
	unsigned max_nr_events;	/* growth limit; 0: the kernel's */
	bool degraded;		/* note e: new fds go to epoll */

	int idfd;		/* identity anchors, never waited on (note g) */
	struct rec **chunks;	/* fd >> CHUNK_SHIFT -> CHUNK records */
	int nchunks;
	int nrecs;		/* records allocated */
	struct rec **queue;	/* to (re)submit; room for every record */
	int nqueue;
	struct iocb **batch;	/* one io_submit's vector: batch_cap */
	int batch_cap;		/* nrecs + 1 + opq_cap */
	struct io_event *events;	/* io_getevents(): fired_cap */
	struct io_event *stash;	/* taken while settling (note g) */
	int stash_head, nstash, stash_cap;

	/* the epoll fallback (note f): the core's shared epoll set
	 * (core/epoll_set.c), holding only the records in MODE_EPOLL */
	struct evq__epoll_set set;	/* set.epfd -1 until needed */
	int nepoll;		/* records in MODE_EPOLL */
	struct iocb ep_cb;	/* the poll of set.epfd */
	uint32_t ep_serial;
	bool ep_armed, ep_queued;

	/* native ops (note j) */
	struct iocb *opq;	/* [opq_head, nopq): prepared, for the next
				 * flush */
	int opq_head, nopq, opq_cap;
	unsigned nnative;	/* submitted, completion not handled yet */
	uint64_t reported;	/* op results reported, ever */
	/* note k: transfers io_submit() refused, handed back to the core
	 * after the flush (never from inside it: the core may queue more) */
	struct io_event *xrefused;	/* room: opq_cap */
	int nxrefused;
	int last_reports;	/* note k: what the last wait reported */
	bool pipe_owed;		/* note k: the guard took a SIGPIPE that
				 * a write op (not a send) may have raised */
	bool pipe_asked;	/* note k: flush_fast() found SIGPIPE not
				 * ignored; flush()'s guard need not ask */

	/* embedding (note m) */
	int efd;		/* the IOCB_FLAG_RESFD eventfd; -1: none */
	bool quiet_ops;		/* ops in flight from before efd */
	bool reap_full;		/* io_getevents() filled fired[] */

	struct evq__aio_stats stats;
};

/* ------------------------------------------------------------------------
 * Syscalls: raw, -errno (no libaio)
 * ------------------------------------------------------------------------ */

static int sys_io_setup(unsigned nr, aio_context_t *ctx)
{
	return (int)EVQ__SYS(syscall(__NR_io_setup, nr, ctx));
}

static int sys_io_destroy(aio_context_t ctx)
{
	return (int)EVQ__SYS(syscall(__NR_io_destroy, ctx));
}

/* The one of every iteration: made directly (core/sys.h), not through
 * libc's variadic syscall() and errno. */
static int sys_io_submit(aio_context_t ctx, long nr, struct iocb **iocbs)
{
	return (int)evq__syscall6(__NR_io_submit, (long)ctx, nr,
				  (long)(uintptr_t)iocbs, 0, 0, 0);
}

static int sys_io_cancel(aio_context_t ctx, struct iocb *iocb,
			 struct io_event *result)
{
	return (int)EVQ__SYS(syscall(__NR_io_cancel, ctx, iocb, result));
}

static int sys_io_getevents(aio_context_t ctx, long min_nr, long nr,
			    struct io_event *events, struct timespec *timeout)
{
	return (int)EVQ__SYS(syscall(__NR_io_getevents, ctx, min_nr, nr,
				     events, timeout));
}

/* ------------------------------------------------------------------------
 * Test hooks (backend_aio.h)
 * ------------------------------------------------------------------------ */

static unsigned test_nr_events, test_max_nr_events;
static bool test_no_ring;

void evq__aio_test_params(unsigned nr_events, unsigned max_nr_events,
			  bool no_ring)
{
	test_nr_events = nr_events;
	test_max_nr_events = max_nr_events;
	test_no_ring = no_ring;
}

int evq__aio_stats(struct evq_loop *loop, struct evq__aio_stats *out)
{
	struct aio_state *st;

	if (!loop || !out || loop->backend != &evq__backend_aio)
		return -EINVAL;
	st = loop->backend_data;
	*out = st->stats;
	out->nr_events = st->nr_events;
	out->ring_events = st->ring ? st->ring_nr : 0;
	out->fallback_fds = (unsigned)st->nepoll;
	out->ring = st->ring != NULL;
	out->degraded = st->degraded;
	out->op_inflight = st->nnative;
	out->op_queued = (unsigned)(st->nopq - st->opq_head);
	return 0;
}

/* ------------------------------------------------------------------------
 * Context and ring
 * ------------------------------------------------------------------------ */

/* 4.19 or later (note a); the answer is kept for the process. */
static int kernel_ok(void)
{
	static int cached;	/* 0 unknown, 1 yes, -1 no */
	int ok = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	struct utsname u;
	unsigned major = 0, minor = 0;

	if (ok)
		return ok > 0;
	if (uname(&u) == 0)
		(void)sscanf(u.release, "%u.%u", &major, &minor);
	ok = major > 4 || (major == 4 && minor >= 19) ? 1 : -1;
	__atomic_store_n(&cached, ok, __ATOMIC_RELAXED);
	return ok > 0;
}

/* What init's self-test (note l) found, kept for the process: 0 not
 * known (or it passed), else its -errno. */
static int selftest_err;

/* Cheap: io_setup(0) fails with EINVAL where the syscall exists, and with
 * ENOSYS or EPERM (seccomp) where it does not; no context is made, so no
 * io_destroy() (note e) is paid. The rest (io_submit, io_cancel,
 * io_getevents allowed, IOCB_CMD_POLL known) is checked by init on its
 * own context (note l); a failure there is remembered, so this says it at
 * once next time. */
static int aio_probe(void)
{
	aio_context_t ctx = 0;
	int r;

	if (!kernel_ok())
		return -ENOSYS;
	r = __atomic_load_n(&selftest_err, __ATOMIC_RELAXED);
	if (r < 0)
		return r;
	r = sys_io_setup(0, &ctx);
	if (r == -EINVAL)
		return 0;
	if (r == 0) {	/* not expected; do not leak it */
		(void)sys_io_destroy(ctx);
		return 0;
	}
	return r;
}

/* Note c: use the ring only if it is the layout known here. */
static void ring_attach(struct aio_state *st)
{
	struct aio_ring *ring = (struct aio_ring *)(uintptr_t)st->ctx;

	st->ring = NULL;
	if (test_no_ring || !ring || ring->magic != AIO_RING_MAGIC ||
	    ring->incompat_features != AIO_RING_INCOMPAT_FEATURES ||
	    ring->header_length != sizeof(struct aio_ring) || ring->nr == 0)
		return;
	st->ring = ring;
	st->ring_nr = ring->nr;
}

static struct rec *rec_at(const struct aio_state *st, int fd)
{
	int ci = fd >> CHUNK_SHIFT;

	if (ci >= st->nchunks || !st->chunks[ci])
		return NULL;
	return &st->chunks[ci][fd & (CHUNK - 1)];
}

static void rec_queue(struct aio_state *st, struct rec *rec)
{
	if (!rec->queued) {
		rec->queued = 1;
		st->queue[st->nqueue++] = rec;	/* room: one per record */
	}
}

/* Note e: ctx (of nr events) replaces a context that is gone. Every poll
 * of the old one ended with it, unreported: all wanted fds are queued
 * again, and being level-triggered they lose nothing. */
static void ctx_install(struct aio_state *st, aio_context_t ctx,
			unsigned nr)
{
	st->ctx = ctx;
	st->nr_events = nr;
	ring_attach(st);
	st->nqueue = 0;
	st->stash_head = st->nstash = 0;
	for (int ci = 0; ci < st->nchunks; ci++) {
		if (!st->chunks[ci])
			continue;
		for (int i = 0; i < CHUNK; i++) {
			struct rec *rec = &st->chunks[ci][i];

			rec->queued = 0;
			rec->armed = 0;
			rec->cancels = 0;	/* their completions went too */
			if (rec->want && rec->mode == MODE_AIO)
				rec_queue(st, rec);
		}
	}
	st->ep_armed = false;
	st->ep_queued = st->nepoll > 0;
}

/* Note e: a bigger context, made before the old one goes, so a failure
 * leaves the old one working. */
static int ctx_replace(struct aio_state *st, unsigned nr)
{
	aio_context_t ctx = 0;
	int r = sys_io_setup(nr, &ctx);

	if (r < 0)
		return r;
	(void)sys_io_destroy(st->ctx);	/* cancels, waits: ~32 ms */
	ctx_install(st, ctx, nr);
	return 0;
}

/* Note e: the context is full. Ask for GROWTH times as much, and at
 * least as much as every wanted fd (the kernel doubles that again), then
 * less if the system will not give it. 0, or -EAGAIN: no bigger one. */
static int grow(struct aio_state *st)
{
	unsigned nr = st->nr_events, need = 1, f;

	for (int ci = 0; ci < st->nchunks; ci++)
		for (int i = 0; st->chunks[ci] && i < CHUNK; i++)
			need += st->chunks[ci][i].want &&
				st->chunks[ci][i].mode == MODE_AIO;
	for (f = GROWTH; f > 1; f /= 2) {
		unsigned want = nr > UINT_MAX / f ? UINT_MAX : nr * f;

		if (want < need)
			want = need;
		if (st->max_nr_events && want > st->max_nr_events)
			want = st->max_nr_events;
		if (want <= nr)
			break;
		if (ctx_replace(st, want) == 0) {
			st->stats.grows++;
			return 0;
		}
	}
	return -EAGAIN;
}

/* ------------------------------------------------------------------------
 * The epoll fallback (note f)
 * ------------------------------------------------------------------------ */

/* set.member: the set holds the records moved off AIO, and a rebuild
 * re-adds only those. */
static bool ep_member(struct evq_loop *loop, int fd)
{
	struct aio_state *st = loop->backend_data;
	const struct rec *rec = rec_at(st, fd);

	return rec && rec->mode == MODE_EPOLL;
}

static int ep_open(struct evq_loop *loop, struct aio_state *st)
{
	int r;

	if (st->set.epfd >= 0)
		return 0;
	r = evq__epoll_set_init(&st->set, loop->fired_cap);
	st->set.member = ep_member;
	return r;
}

/* Watch fd through epoll from now on. -EPERM: a regular file, which
 * epoll refuses and AIO handles (note f); the record stays on AIO (the
 * shared set refuses it too, because of set.member). */
static int ep_add(struct evq_loop *loop, struct aio_state *st, int fd,
		  struct rec *rec)
{
	int r = ep_open(loop, st);

	if (r < 0)
		return r;
	r = evq__epoll_set_modify(&st->set, fd, 0, rec->want, rec->gen);
	if (r < 0)
		return r;
	rec->mode = MODE_EPOLL;
	rec->armed = 0;
	st->nepoll++;
	if (!st->ep_armed)
		st->ep_queued = true;
	return 0;
}

static void ep_del(struct aio_state *st, int fd, struct rec *rec)
{
	/* The set ignores ENOENT/EBADF: epoll forgot a closed file. */
	(void)evq__epoll_set_modify(&st->set, fd, rec->want, 0, rec->gen);
	rec->mode = MODE_AIO;
	st->nepoll--;
}

/* Note e: out of AIO capacity for good. Everything moves to epoll, and a
 * small new context carries just the poll of the epoll fd. */
static int degrade(struct evq_loop *loop, struct aio_state *st)
{
	aio_context_t ctx = 0;
	int r;

	st->degraded = true;
	for (int ci = 0; ci < st->nchunks; ci++) {
		if (!st->chunks[ci])
			continue;
		for (int i = 0; i < CHUNK; i++) {
			struct rec *rec = &st->chunks[ci][i];

			if (rec->want && rec->mode == MODE_AIO) {
				r = ep_add(loop, st, ci << CHUNK_SHIFT | i,
					   rec);
				if (r < 0 && r != -EPERM)
					return r;
			}
		}
	}
	/* The full context goes first: its quota is what the new one
	 * needs. */
	(void)sys_io_destroy(st->ctx);
	st->ctx = 0;
	st->ring = NULL;
	r = sys_io_setup(1, &ctx);
	if (r < 0)
		return r;
	ctx_install(st, ctx, 1);
	return 0;
}

/* The core saw reports of registrations it had ended (a file closed but
 * kept open elsewhere, epoll_set.c note b): the shared set's rebuild,
 * which re-adds only the fallback records (set.member) and ends the
 * watches of those closed meanwhile. The poll of the old epoll fd is
 * cancelled first, so the old set is released when the rebuild closes
 * it; the new one is polled from the next flush. */
static void ep_rebuild(struct evq_loop *loop, struct aio_state *st)
{
	if (st->set.epfd < 0) {
		st->set.stale = false;
		return;
	}
	if (st->ep_armed) {
		struct io_event ev;

		(void)sys_io_cancel(st->ctx, &st->ep_cb, &ev);
		st->stats.cancels++;
		st->ep_armed = false;
	}
	(void)evq__epoll_set_rebuild(loop, &st->set);
	st->ep_queued = true;
}

/* ------------------------------------------------------------------------
 * Life
 * ------------------------------------------------------------------------ */

/* Note l: one poll through every call the backend depends on, on the new
 * context, before the loop uses it: io_submit() of an IOCB_CMD_POLL on an
 * eventfd that is not ready (EINVAL before 4.18, EPERM under a filter
 * that allows io_setup() only), io_cancel() of it, and io_getevents() of
 * its completion, up to 100 ms. The poll's iocb is st->probe, never
 * armed: a completion that comes later is dropped as a stale one. */
static int selftest(struct aio_state *st)
{
	struct timespec ts = { 0, 100 * 1000000 };
	struct iocb *cbp = &st->probe.cb;
	struct io_event ev;
	int efd, r;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0)
		return -errno;
	memset(&st->probe, 0, sizeof(st->probe));
	cbp->aio_lio_opcode = IOCB_CMD_POLL;
	cbp->aio_fildes = (uint32_t)efd;
	cbp->aio_buf = POLLIN;
	r = sys_io_submit(st->ctx, 1, &cbp);
	if (r == 1) {
		r = sys_io_cancel(st->ctx, cbp, &ev);
		/* 0: the event was handed back in ev (the old rule of
		 * io_cancel(2)), not posted; since 4.19 a cancelled poll
		 * completes from a work item, later (EINPROGRESS). */
		if (r != 0 && r != -EPERM && r != -ENOSYS) {
			do
				r = sys_io_getevents(st->ctx, 1, 1, &ev, &ts);
			while (r == -EINTR);
			if (r > 0)
				r = 0;	/* 0: late, dropped when it comes */
		}
	} else if (r >= 0) {
		r = -EIO;
	}
	close(efd);
	return r;
}

static int aio_init(struct evq_loop *loop)
{
	struct aio_state *st = calloc(1, sizeof(*st));
	int r;

	if (!st)
		return -ENOMEM;
	st->set = (struct evq__epoll_set){ .epfd = -1, .embed_fd = -1 };
	st->efd = -1;
	st->events = calloc((size_t)loop->fired_cap, sizeof(*st->events));
	if (!st->events) {
		free(st);
		return -ENOMEM;
	}
	st->idfd = epoll_create1(EPOLL_CLOEXEC);
	if (st->idfd < 0) {
		r = -errno;
		goto fail;
	}
	st->nr_events = test_nr_events ? test_nr_events : NR_EVENTS_DEFAULT;
	st->max_nr_events = test_max_nr_events;
	r = sys_io_setup(st->nr_events, &st->ctx);
	if (r == 0) {
		r = selftest(st);
		if (r < 0) {
			/* A refusal (a filter, a kernel without
			 * IOCB_CMD_POLL) is for the process: the next
			 * probe says it at once. Anything else (no
			 * memory, no fds) may pass next time. */
			if (r == -EPERM || r == -ENOSYS || r == -EINVAL ||
			    r == -EOPNOTSUPP)
				__atomic_store_n(&selftest_err, r,
						 __ATOMIC_RELAXED);
			(void)sys_io_destroy(st->ctx);
		}
	}
	if (r < 0) {
		close(st->idfd);
		goto fail;
	}
	ring_attach(st);
	loop->backend_data = st;
	return 0;
fail:
	free(st->events);
	free(st);
	return r;
}

static void aio_destroy(struct evq_loop *loop)
{
	struct aio_state *st = loop->backend_data;

	/* Cancels every poll, which releases the files (note g). */
	if (st->ctx)
		(void)sys_io_destroy(st->ctx);
	evq__epoll_set_destroy(&st->set);
	close(st->idfd);
	if (st->efd >= 0)
		close(st->efd);
	for (int ci = 0; ci < st->nchunks; ci++)
		free(st->chunks[ci]);
	free(st->chunks);
	free(st->queue);
	free(st->batch);
	free(st->opq);
	free(st->xrefused);
	free(st->events);
	free(st->stash);
	free(st);
	loop->backend_data = NULL;
}

/* Room in the submit vector for nb iocbs. */
static int batch_fit(struct aio_state *st, int nb)
{
	struct iocb **batch;

	if (nb <= st->batch_cap)
		return 0;
	batch = realloc(st->batch, (size_t)nb * sizeof(*batch));
	if (!batch)
		return -ENOMEM;
	st->batch = batch;
	st->batch_cap = nb;
	return 0;
}

/* Make sure fd has a record. The queue and the submit vector grow with
 * the records (and the op queue), so queuing never allocates. */
static int reserve(struct aio_state *st, int fd)
{
	int ci = fd >> CHUNK_SHIFT, n;
	struct rec **chunks, **queue;

	if (ci < st->nchunks && st->chunks[ci])
		return 0;
	if (ci >= st->nchunks) {
		n = st->nchunks ? st->nchunks : 4;
		while (n <= ci)
			n *= 2;
		chunks = realloc(st->chunks, (size_t)n * sizeof(*chunks));
		if (!chunks)
			return -ENOMEM;
		memset(chunks + st->nchunks, 0,
		       (size_t)(n - st->nchunks) * sizeof(*chunks));
		st->chunks = chunks;
		st->nchunks = n;
	}
	n = st->nrecs + CHUNK;
	queue = realloc(st->queue, (size_t)n * sizeof(*queue));
	if (!queue)
		return -ENOMEM;
	st->queue = queue;
	if (batch_fit(st, n + 1 + st->opq_cap) < 0)
		return -ENOMEM;
	st->chunks[ci] = calloc(CHUNK, sizeof(struct rec));
	if (!st->chunks[ci])
		return -ENOMEM;
	/* A record's poll iocb changes only in aio_data and aio_buf (and
	 * the RESFD fields, note m): the rest is set once, here. */
	for (int i = 0; i < CHUNK; i++) {
		st->chunks[ci][i].cb.aio_lio_opcode = IOCB_CMD_POLL;
		st->chunks[ci][i].cb.aio_fildes =
			(uint32_t)(ci << CHUNK_SHIFT | i);
	}
	st->nrecs = n;
	return 0;
}

/* A completion of rec that is not its armed poll's: a cancelled one. */
static bool is_stale_of(const struct io_event *ev, const struct rec *rec)
{
	return !(ev->data & TAG_OP) && ev->obj == (uintptr_t)&rec->cb &&
	       (!rec->armed || (uint32_t)(ev->data >> 32) != rec->serial);
}

/* Completions of rec's cancelled polls already posted (or taken into the
 * stash) but not handled yet. Looks, does not take. */
static int stale_posted(const struct aio_state *st, const struct rec *rec)
{
	const struct aio_ring *ring = st->ring;
	int n = 0;

	for (int i = st->stash_head; i < st->nstash; i++)
		n += is_stale_of(&st->stash[i], rec);
	if (ring) {
		unsigned t = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);

		for (unsigned h = ring->head; h != t && h < st->ring_nr;
		     h = h + 1 == st->ring_nr ? 0 : h + 1)
			n += is_stale_of(&ring->io_events[h], rec);
	}
	return n;
}

/* Note g: wait until every cancelled poll of rec has completed. Each
 * drops its reference to the file a few instructions after its
 * completion is posted, so a close() that follows is the last one and
 * frees the file at once; a cancelled poll that came last would free it
 * from a work item, which the kernel defers by a jiffy. Completions taken
 * from the kernel meanwhile are kept, in order, for the next wait. Gives
 * up after 100 ms: the file is then freed a little later. */
static void cancel_settle(struct aio_state *st, const struct rec *rec)
{
	uint64_t deadline = evq__clock_ns() + 100 * 1000000ull;

	for (;;) {
		struct timespec ts = { 0, 1000000 };
		uint64_t now = evq__clock_ns();
		int r;

		if (stale_posted(st, rec) >= rec->cancels || now >= deadline)
			return;
		if (st->nstash == st->stash_cap) {
			int cap = st->stash_cap ? 2 * st->stash_cap : 64;
			struct io_event *a;

			a = realloc(st->stash, (size_t)cap * sizeof(*a));
			if (!a)
				return;
			st->stash = a;
			st->stash_cap = cap;
		}
		if (deadline - now < 1000000)
			ts.tv_nsec = (long)(deadline - now);
		r = sys_io_getevents(st->ctx, 1, st->stash_cap - st->nstash,
				     st->stash + st->nstash, &ts);
		st->stats.getevents_calls++;
		if (r < 0 && r != -EINTR)
			return;
		if (r > 0)
			st->nstash += r;
	}
}

/* Note d: ask the kernel to drop the armed poll. Whatever io_cancel()
 * says (EINPROGRESS; EINVAL if it was completing anyway), a completion
 * will come, and it is a stale one: armed is 0 now. */
static void rec_cancel(struct aio_state *st, struct rec *rec)
{
	struct io_event ev;

	(void)sys_io_cancel(st->ctx, &rec->cb, &ev);
	st->stats.cancels++;
	rec->armed = 0;
	if (rec->cancels < UINT8_MAX)
		rec->cancels++;
}

/* The core no longer wants fd (settle: it may close it next), or its
 * file was replaced. */
static void rec_drop(struct aio_state *st, int fd, struct rec *rec,
		     bool settle)
{
	if (rec->mode == MODE_EPOLL)
		ep_del(st, fd, rec);
	else if (rec->armed)
		rec_cancel(st, rec);
	if (settle && rec->cancels)
		cancel_settle(st, rec);
	rec->want = 0;	/* a queued entry is skipped at flush */
}

/* Note f: is fd a signalfd? */
static bool is_signalfd(int fd)
{
	char path[32], link[32];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return true;	/* cannot tell: the safe side */
	link[n] = '\0';
	return strcmp(link, "anon_inode:[signalfd]") == 0;
}

/* Note g: anchor a new registration's file. -EBADF for a closed fd. */
static int identify(struct aio_state *st, int fd, struct rec *rec)
{
	struct epoll_event ev = { 0 };
	struct stat sb;
	int r;

	r = epoll_ctl(st->idfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
	if (r == -EEXIST) {	/* this file was registered on fd before */
		rec->id_epoll = 1;
		return 0;
	}
	if (r == -EBADF)
		return r;
	if (fstat(fd, &sb) < 0)
		return -errno;
	rec->id_epoll = r == 0;
	rec->nodirect = 0;	/* maybe another file now (note j) */
	rec->kind = S_ISFIFO(sb.st_mode) ? KIND_PIPE
		    : S_ISSOCK(sb.st_mode) ? KIND_SOCK : KIND_OTHER;
	rec->kind_uses = 0;
	rec->sigfd = (sb.st_mode & S_IFMT) == 0 && is_signalfd(fd);
	rec->dev = sb.st_dev;
	rec->ino = sb.st_ino;
	return 0;
}

/* Note g: does fd still name the file registered? */
static __attribute__((noinline)) bool same_file(struct aio_state *st, int fd, const struct rec *rec)
{
	struct epoll_event ev = { 0 };
	struct stat sb;

	st->stats.checks++;
	if (evq__likely(rec->id_epoll))
		return epoll_ctl(st->idfd, EPOLL_CTL_MOD, fd, &ev) == 0;
	return fstat(fd, &sb) == 0 && sb.st_dev == rec->dev &&
	       sb.st_ino == rec->ino;
}

static int aio_modify(struct evq_loop *loop, int fd, unsigned old,
		      unsigned mask, uint32_t gen)
{
	struct aio_state *st = loop->backend_data;
	struct rec *rec = rec_at(st, fd);
	int r;

	if (!mask) {
		if (rec && rec->want)
			rec_drop(st, fd, rec, true);
		return 0;
	}
	if (mask & EVQ_EDGE)
		return -ENOTSUP;	/* note h */

	if (rec && rec->want) {
		/* A watcher joins, or the mask changes: still the file
		 * registered (note g)? */
		if (!old) {
			rec_drop(st, fd, rec, false);	/* not expected */
		} else if (!same_file(st, fd, rec)) {
			rec_drop(st, fd, rec, false);	/* closed already */
			return EVQ__STALE;
		}
	}
	if (!rec) {
		r = reserve(st, fd);
		if (r < 0)
			return r;
		rec = rec_at(st, fd);
	}
	if (!rec->want) {
		r = identify(st, fd, rec);
		if (r < 0)
			return r;
	}
	rec->gen = gen;

	if (rec->mode == MODE_EPOLL) {
		rec->want = (uint8_t)mask;
		r = evq__epoll_set_modify(&st->set, fd, old, mask, gen);
		if (r == EVQ__STALE)
			rec_drop(st, fd, rec, false);
		return r;
	}
	if (rec->armed) {
		if (!(mask & ~rec->armed)) {
			rec->want = (uint8_t)mask;	/* narrowed: note d */
			return 0;
		}
		rec_cancel(st, rec);	/* widened: note d */
	}
	rec->want = (uint8_t)mask;
	if (evq__unlikely(st->degraded || rec->sigfd)) {
		r = ep_add(loop, st, fd, rec);
		if (r != -EPERM) {
			if (r < 0)
				rec->want = 0;
			return r;
		}
	}
	rec_queue(st, rec);
	return 0;
}

/* ------------------------------------------------------------------------
 * Ops (note j)
 * ------------------------------------------------------------------------ */

static int flush(struct evq_loop *loop, struct aio_state *st, int *np,
		 bool ops_only);
static void opq_cancel_fd(struct evq_loop *loop, struct aio_state *st,
			  int fd);
static void xfer_refused_run(struct evq_loop *loop, struct aio_state *st);
static void opq_taken(struct aio_state *st, int k);

/* Room on the road for every native op not reported yet, plus one: an
 * op is taken only with its room, so reaping never needs memory. */
static bool done_reserve(struct evq_loop *loop, const struct aio_state *st)
{
	return evq__done_room(loop, (st->nopq - st->opq_head) +
					    (int)st->nnative + 1);
}

/* Room for one more prepared op, and for it in the submit vector. */
static bool opq_room(struct aio_state *st)
{
	int cap = st->opq_cap ? 2 * st->opq_cap : 16;
	struct io_event *x;
	struct iocb *q;

	if (st->nopq < st->opq_cap)
		return true;
	if (st->opq_head > 0) {	/* room at the front: move down */
		st->nopq -= st->opq_head;
		memmove(st->opq, st->opq + st->opq_head,
			(size_t)st->nopq * sizeof(*st->opq));
		st->opq_head = 0;
		return true;
	}
	if (batch_fit(st, st->nrecs + 1 + cap) < 0)
		return false;
	x = realloc(st->xrefused, (size_t)cap * sizeof(*x));
	if (!x)
		return false;
	st->xrefused = x;
	q = realloc(st->opq, (size_t)cap * sizeof(*q));
	if (!q)
		return false;
	st->opq = q;
	st->opq_cap = cap;
	return true;
}

/* Not an iocb command (IOCB_CMD_PWRITE is 1, as EVQ__EMULATE is). */
#define EMULATE (-1)

static uint64_t iov_bytes(const struct iovec *iov, int cnt)
{
	uint64_t n = 0;

	for (int i = 0; i < cnt; i++)
		n = n + iov[i].iov_len < n ? UINT64_MAX : n + iov[i].iov_len;
	return n;
}

/* Note j: does the kernel do this transfer asynchronously? Then its
 * iocb command, else EMULATE. F_GETFL for O_DIRECT, then fstat: a
 * regular file or block device (a pipe can have O_DIRECT too), and no
 * write past the end of a file. Nothing is cached: F_SETFL can change
 * O_DIRECT, and the number can name another file by the next op. */
/* Note j: fd's transfers are not native; keep that for the next ops. No
 * memory for a record: nothing kept, the next op asks again. */
static void nodirect_keep(struct aio_state *st, int fd)
{
	struct rec *rec = rec_at(st, fd);

	if (!rec && reserve(st, fd) == 0)
		rec = rec_at(st, fd);
	if (rec)
		rec->nodirect = 1;
}

static __attribute__((noinline)) int
direct_check(struct aio_state *st, const struct evq_op *op, bool wr,
	     bool vec, uint64_t off)
{
	struct stat sb;
	uint64_t len;
	int fl;

	st->stats.op_direct_checks++;
	fl = fcntl(op->fd, F_GETFL);
	if (fl < 0 || !(fl & O_DIRECT) || fstat(op->fd, &sb) < 0 ||
	    !(S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode))) {
		nodirect_keep(st, op->fd);
		return EMULATE;
	}
	if (wr && S_ISREG(sb.st_mode)) {
		len = vec ? iov_bytes(op->u.vec.iov, op->u.vec.cnt)
			  : op->u.rw.len;
		if ((fl & O_APPEND) || len > (uint64_t)sb.st_size ||
		    off > (uint64_t)sb.st_size - len)
			return EMULATE;
	}
	if (vec)
		return wr ? IOCB_CMD_PWRITEV : IOCB_CMD_PREADV;
	return wr ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
}

static int direct_cmd(struct aio_state *st, const struct evq_op *op)
{
	bool wr = op->code == EVQ_OP_WRITE || op->code == EVQ_OP_WRITEV;
	bool vec = op->code == EVQ_OP_READV || op->code == EVQ_OP_WRITEV;
	uint64_t off = vec ? op->u.vec.off : op->u.rw.off;
	struct rec *rec;

	/* EVQ_OFFSET_CURRENT too: AIO has no "current position". */
	if ((op->flags & EVQ__OPF_POOL) || op->fd < 0 || off > INT64_MAX ||
	    (vec && (op->u.vec.cnt <= 0 || op->u.vec.cnt > IOV_MAX)))
		return EMULATE;
	rec = rec_at(st, op->fd);
	if (rec && rec->nodirect) {
		if (rec->nodirect++ < EVQ_IO_STALE_LIMIT)
			return EMULATE;
		rec->nodirect = 0;	/* ask again */
	}
	return direct_check(st, op, wr, vec, off);
}

static void fill_op(struct iocb *cb, struct evq_op *op, int cmd)
{
	memset(cb, 0, sizeof(*cb));
	cb->aio_data = TAG_OP | (uintptr_t)op;
	cb->aio_lio_opcode = (uint16_t)cmd;
	cb->aio_fildes = (uint32_t)op->fd;
	if (cmd == IOCB_CMD_PREAD || cmd == IOCB_CMD_PWRITE) {
		cb->aio_buf = (uintptr_t)op->u.rw.buf;
		cb->aio_nbytes = op->u.rw.len;
		cb->aio_offset = (int64_t)op->u.rw.off;
	} else if (cmd == IOCB_CMD_PREADV || cmd == IOCB_CMD_PWRITEV) {
		cb->aio_buf = (uintptr_t)op->u.vec.iov;
		cb->aio_nbytes = (uint64_t)op->u.vec.cnt;
		cb->aio_offset = (int64_t)op->u.vec.off;
	}
}

/* An evq close op starts (the thread pool closes the fd). Out of line:
 * it holds a flush, which op_start's common path should not pay a frame
 * for. */
static __attribute__((noinline)) void
close_op_start(struct evq_loop *loop, struct aio_state *st,
	       const struct evq_op *op)
{
	if (op->fd >= 0 && rec_at(st, op->fd))
		rec_at(st, op->fd)->nodirect =
			rec_at(st, op->fd)->kind = 0;	/* j, k */
	/* The pool may close fd before the next wait: ops on it that
	 * started before the close go to the kernel now, and so hold the
	 * file, as they would elsewhere. What a full context leaves queued
	 * is cancelled: submitted later, by number, it would reach
	 * whatever file takes the number next (S1 of issue 9). */
	for (int i = st->opq_head; i < st->nopq; i++) {
		if (st->opq[i].aio_fildes == (uint32_t)op->fd) {
			int n = 0;

			(void)flush(loop, st, &n, true);
			opq_cancel_fd(loop, st, op->fd);
			xfer_refused_run(loop, st);
			break;
		}
	}
}

/* backend->op_start: O_DIRECT transfers and fsync are prepared here and
 * submitted by the next flush; everything else is the core's. */
static int aio_op_start(struct evq_loop *loop, struct evq_op *op)
{
	struct aio_state *st = loop->backend_data;
	int cmd;

	switch (op->code) {
	case EVQ_OP_READ:
	case EVQ_OP_WRITE:
	case EVQ_OP_READV:
	case EVQ_OP_WRITEV:
		cmd = direct_cmd(st, op);
		break;
	case EVQ_OP_FSYNC:
		if (op->fd < 0)
			cmd = EMULATE;
		else if (op->u.fsync_flags & EVQ_FSYNC_DATASYNC)
			cmd = IOCB_CMD_FDSYNC;
		else
			cmd = IOCB_CMD_FSYNC;
		break;
	case EVQ_OP_CLOSE:
		close_op_start(loop, st, op);
		cmd = EMULATE;
		break;
	default:
		cmd = EMULATE;
		break;
	}
	/* No memory for it: emulated, not failed. */
	if (cmd == EMULATE || !opq_room(st) || !done_reserve(loop, st)) {
		st->stats.op_emulated++;
		return EVQ__EMULATE;
	}
	fill_op(&st->opq[st->nopq++], op, cmd);
	return 0;
}

/* backend->xfer_queue (note k): an emulated op's transfer as an
 * IOCB_CMD_PREAD/PWRITE with RWF_NOWAIT, into the next flush, ahead of
 * the polls. Only on a pipe or a socket (a socket for recv and send): the
 * kind comes from the fstat() of the fd's registration (identify), or, for
 * an fd not registered, from one fstat() per EVQ_IO_STALE_LIMIT transfers
 * of it (a number closed and reused behind the loop's back is seen so;
 * until then a transfer acts on the file that has the number, as the
 * syscall would, but at offset 0 where that file has a position). */
/* Note k: what fstat() says fd is, into rec->kind. False: it failed (the
 * syscall will say why). */
static __attribute__((noinline)) bool
xfer_kind_check(struct aio_state *st, int fd, struct rec *rec)
{
	struct stat sb;

	st->stats.xfer_kind_checks++;
	if (fstat(fd, &sb) < 0)
		return false;
	rec->kind = S_ISFIFO(sb.st_mode) ? KIND_PIPE
		    : S_ISSOCK(sb.st_mode) ? KIND_SOCK : KIND_OTHER;
	rec->kind_uses = 0;
	return true;
}

static __attribute__((noinline)) struct rec *
xfer_rec_new(struct aio_state *st, int fd)
{
	return reserve(st, fd) < 0 ? NULL : rec_at(st, fd);
}

/* The transfer's iocb, at the end of the op queue (room: checked). */
static inline void xfer_fill(struct evq_loop *loop, struct aio_state *st,
			     struct evq_op *op, void *buf, size_t len,
			     unsigned need)
{
	struct iocb *cb = &st->opq[st->nopq++];

	memset(cb, 0, sizeof(*cb));
	cb->aio_data = TAG_OP | TAG_XFER | (uintptr_t)op |
		       (need == EVQ__XFER_SEND ? TAG_SEND : 0) |
		       (buf ? 0 : TAG_POOL);
	cb->aio_lio_opcode = op->code == EVQ_OP_READ ||
			     op->code == EVQ_OP_RECV ? IOCB_CMD_PREAD
						     : IOCB_CMD_PWRITE;
	cb->aio_fildes = (uint32_t)op->fd;
	cb->aio_buf = (uintptr_t)buf;
	cb->aio_nbytes = len;
	cb->aio_offset = 0;	/* a pipe or a socket has no position */
	cb->aio_rw_flags = RWF_NOWAIT;
	loop->handed_at = loop->waits + 1;
}

/* Does the kind of rec's file take this transfer into the batch? */
static inline bool xfer_kind_ok(const struct rec *rec, unsigned need)
{
	return rec->mode == MODE_AIO && rec->kind != KIND_OTHER &&
	       (need == EVQ__XFER_STREAM || rec->kind == KIND_SOCK);
}

/* aio_xfer_queue, when something has to be made or asked first: the
 * record, the file's kind (fstat), room in the op queue or on the road. */
static __attribute__((noinline)) int
xfer_queue_slow(struct evq_loop *loop, struct aio_state *st,
		struct evq_op *op, void *buf, size_t len, unsigned need)
{
	struct rec *rec = rec_at(st, op->fd);

	if (!rec && !(rec = xfer_rec_new(st, op->fd)))
		return EVQ__EMULATE;
	if (rec->mode != MODE_AIO)
		return EVQ__EMULATE;
	if ((rec->kind == KIND_UNKNOWN ||
	     (!rec->want && ++rec->kind_uses >= EVQ_IO_STALE_LIMIT)) &&
	    !xfer_kind_check(st, op->fd, rec))
		return EVQ__EMULATE;	/* the syscall says why */
	if (!xfer_kind_ok(rec, need) || !opq_room(st) ||
	    !done_reserve(loop, st))
		return EVQ__EMULATE;
	xfer_fill(loop, st, op, buf, len, need);
	return 0;
}

/* backend->xfer_queue. The common case (a known pipe or socket, room
 * everywhere) calls nothing, so it needs no frame: ~40 instructions
 * fewer per transfer than one function with the slow cases inside
 * (callgrind, echo-64). */
static int aio_xfer_queue(struct evq_loop *loop, struct evq_op *op,
			  void *buf, size_t len, unsigned need)
{
	struct aio_state *st = loop->backend_data;
	struct rec *rec;

	/* A single-shot op's retry after the only report of the last wait
	 * would most likely be the batch's only transfer: its syscall now
	 * costs the same and saves the loop an iteration (ping-pong: 2.51
	 * -> 2.08 s of CPU per million events). With more reports, the
	 * reads of all of them share the next io_submit(); a multishot
	 * recv (a server's) always goes in (echo-64: 0.54 -> 0.2-0.3
	 * syscalls per request). */
	if ((need & EVQ__XFER_RETRY) && st->last_reports <= 1)
		return EVQ__EMULATE;
	need &= ~EVQ__XFER_RETRY;
	if (evq__unlikely(op->fd < 0 || st->degraded))
		return EVQ__EMULATE;
	rec = rec_at(st, op->fd);
	if (evq__unlikely(!rec || rec->kind == KIND_UNKNOWN ||
			  (!rec->want &&
			   rec->kind_uses + 1 >= EVQ_IO_STALE_LIMIT) ||
			  st->nopq == st->opq_cap ||
			  loop->ndone + (st->nopq - st->opq_head) +
					  (int)st->nnative + 1 >
				  loop->done_cap))
		return xfer_queue_slow(loop, st, op, buf, len, need);
	if (!rec->want)
		rec->kind_uses++;
	if (!xfer_kind_ok(rec, need))
		return EVQ__EMULATE;
	xfer_fill(loop, st, op, buf, len, need);
	return 0;
}

/* backend->xfer_cancel: a transfer still in the op queue is taken out;
 * one submitted has run inside io_submit() (note k), its result comes. */
static int aio_xfer_cancel(struct evq_loop *loop, struct evq_op *op)
{
	struct aio_state *st = loop->backend_data;
	uint64_t key = (uintptr_t)op;

	for (int i = st->opq_head; i < st->nopq; i++) {
		if ((st->opq[i].aio_data & TAG_XFER) &&
		    (st->opq[i].aio_data & ~TAG_MASK) == key) {
			if (st->opq[i].aio_data & TAG_TAKEN)
				evq__pool_put(op->u.pool.pool,
					      op->cflags >> 16);
			memmove(&st->opq[i], &st->opq[i + 1],
				(size_t)(st->nopq - i - 1) * sizeof(*st->opq));
			st->nopq--;
			opq_taken(st, 0);
			st->stats.xfer_canceled++;
			return 0;
		}
	}
	return -EALREADY;
}

static struct evq_op *op_of(uint64_t data)
{
	return (struct evq_op *)(uintptr_t)(data & ~TAG_MASK);
}

/* Note k: a transfer's result <= 0, before the core sees it. */
static __attribute__((noinline)) void
xfer_failed(struct aio_state *st, struct evq_op *op, uint64_t data,
	    int64_t res)
{
	struct rec *rec = rec_at(st, op->fd);

	/* A pool buffer goes to the op with data only. */
	if (data & TAG_TAKEN)
		evq__pool_put(op->u.pool.pool, op->cflags >> 16);
	if (data & TAG_POOL)
		op->cflags = 0;
	/* Refused for this file; the core makes the syscall, and the next
	 * transfers of the fd too. */
	if ((res == -EOPNOTSUPP || res == -EINVAL) && rec)
		rec->kind = KIND_OTHER;
	/* A write op (not a send) raises SIGPIPE, as write(2) does: if the
	 * guard took it, it is raised again. */
	if (res == -EPIPE && !(data & TAG_SEND) && st->pipe_owed) {
		st->pipe_owed = false;
		(void)pthread_kill(pthread_self(), SIGPIPE);
	}
}

/* An op's result onto the road (room: done_reserve). A long becomes an
 * int as the core knows it: restart codes are the core's (ops.c). */
static void op_report(struct evq_loop *loop, struct aio_state *st,
		      uint64_t data, int64_t res)
{
	if (res > INT_MAX)
		res = INT_MAX;	/* as the emulation clamps a count */
	else if (res < -4095)
		res = -EIO;	/* not an errno */
	st->reported++;
	if (data & TAG_XFER) {
		struct evq_op *op = op_of(data);

		if (evq__unlikely(res <= 0))
			xfer_failed(st, op, data, res);
		evq__emul_xfer_done(loop, op, (int)res);
		return;
	}
	evq__report(loop, op_of(data), (int)res, 0);
}

/* A completion of a submitted op. */
static __attribute__((noinline)) void op_complete(struct evq_loop *loop, struct aio_state *st,
			const struct io_event *ev)
{
	st->nnative--;
	op_report(loop, st, ev->data, ev->res);
}

/* Note n: how long evq_loop_free() waits for ops the kernel runs. */
#define DRAIN_MS_DEFAULT 2000u
static unsigned drain_ms = DRAIN_MS_DEFAULT;

void evq__aio_test_drain_ms(unsigned ms)
{
	drain_ms = ms ? ms : DRAIN_MS_DEFAULT;
	if (ms == UINT_MAX)
		drain_ms = 0;
}

/* Note n: the kernel still has nnative ops after drain_ms. Their results
 * are delivered first (the road has them), so that the native ops left
 * on the core's list are exactly those in the kernel; each ends with
 * -ETIMEDOUT. io_destroy() would wait for them (uninterruptibly), so the
 * context is not destroyed: it and its ring stay until the process
 * exits, and so does the kernel's hold on those ops' buffers. */
static void drain_give_up(struct evq_loop *loop, struct aio_state *st)
{
	evq__ops_deliver(loop);
	for (struct evq_op *op = loop->ops_head; op; op = op->next) {
		if (op->state != EVQ__OP_NATIVE)
			continue;
		op_report(loop, st, TAG_OP | (uintptr_t)op, -ETIMEDOUT);
	}
	st->nnative = 0;
	st->ctx = 0;	/* leaked: aio_destroy() does not io_destroy() */
	st->ring = NULL;
}

/* The first k prepared ops went to the kernel (or were refused): drop
 * them from the queue. */
static void opq_taken(struct aio_state *st, int k)
{
	if (k > 0)
		st->opq_head += k;
	if (st->opq_head == st->nopq)
		st->opq_head = st->nopq = 0;
}

/* Prepared ops on fd that are still queued end with -ECANCELED, as ops
 * not started yet do at a close; the others keep their order. Only for
 * iocbs never submitted, so the array may move. */
static void opq_cancel_fd(struct evq_loop *loop, struct aio_state *st,
			  int fd)
{
	int k = st->opq_head;

	for (int i = st->opq_head; i < st->nopq; i++) {
		if (st->opq[i].aio_fildes == (uint32_t)fd) {
			op_report(loop, st, st->opq[i].aio_data, -ECANCELED);
			st->stats.op_close_canceled++;
			continue;
		}
		if (k != i)
			st->opq[k] = st->opq[i];
		k++;
	}
	st->nopq = k;
	opq_taken(st, 0);
}

/* backend->op_drain, for evq_loop_free (note n): ops prepared but not
 * submitted never reach the kernel (-ECANCELED, like ops the core had
 * not started); submitted ones cannot be cancelled (io_cancel() is for
 * polls only), so wait for them, up to drain_ms in all. Those the kernel
 * still has then end with -ETIMEDOUT and the context is leaked. In a
 * forked child io_getevents() fails (note i): the core then ends what is
 * left with -ECANCELED. */
static void aio_op_drain(struct evq_loop *loop)
{
	struct aio_state *st = loop->backend_data;
	uint64_t deadline = evq__ns_after(evq__clock_ns(),
					  (uint64_t)drain_ms * 1000000u);
	struct timespec ts = { 0, 0 };

	for (int i = st->opq_head; i < st->nopq; i++)
		op_report(loop, st, st->opq[i].aio_data, -ECANCELED);
	opq_taken(st, st->nopq - st->opq_head);
	for (int i = st->stash_head; i < st->nstash; i++)
		if (st->stash[i].data & TAG_OP)
			op_complete(loop, st, &st->stash[i]);
	st->stash_head = st->nstash = 0;
	while (st->nnative > 0) {
		int r = sys_io_getevents(st->ctx, 1, loop->fired_cap,
					 st->events, &ts);
		uint64_t now = evq__clock_ns();

		st->stats.getevents_calls++;
		if (r < 0 && r != -EINTR)
			return;
		for (int i = 0; i < r; i++)
			if (st->events[i].data & TAG_OP)
				op_complete(loop, st, &st->events[i]);
		if (st->nnative == 0)
			return;
		if (r == 0 && now >= deadline)
			break;
		ts.tv_sec = (time_t)((deadline - now) / 1000000000u);
		ts.tv_nsec = (long)((deadline - now) % 1000000000u);
		if (now >= deadline)
			ts.tv_sec = ts.tv_nsec = 0;
	}
	if (st->nnative > 0)
		drain_give_up(loop, st);
}

/* ------------------------------------------------------------------------
 * Embedding (note m)
 * ------------------------------------------------------------------------ */

/* Every iocb of a flush signals the eventfd when it completes. */
static void resfd_mark(const struct aio_state *st, struct iocb **b, int nb)
{
	for (int i = 0; i < nb; i++) {
		b[i]->aio_flags |= IOCB_FLAG_RESFD;
		b[i]->aio_resfd = (uint32_t)st->efd;
	}
}

/* At the start of a wait, before reaping: completions posted after this
 * signal it again. */
static void efd_drain(struct aio_state *st)
{
	uint64_t v;

	while (read(st->efd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	if (st->quiet_ops && st->nnative == 0)
		st->quiet_ops = false;
}

static int aio_embed_fd(struct evq_loop *loop)
{
	struct aio_state *st = loop->backend_data;

	if (st->efd >= 0)
		return st->efd;
	st->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (st->efd < 0)
		return -errno;
	/* Polls armed without the flag are armed again with it; ops in
	 * flight cannot be (io_cancel() is for polls only), so the loop
	 * says it is busy until they are done. */
	for (int ci = 0; ci < st->nchunks; ci++) {
		for (int i = 0; st->chunks[ci] && i < CHUNK; i++) {
			struct rec *rec = &st->chunks[ci][i];

			if (rec->armed && rec->mode == MODE_AIO) {
				rec_cancel(st, rec);
				rec_queue(st, rec);
			}
		}
	}
	if (st->ep_armed) {
		struct io_event ev;

		(void)sys_io_cancel(st->ctx, &st->ep_cb, &ev);
		st->stats.cancels++;
		st->ep_armed = false;
		st->ep_queued = true;
	}
	st->quiet_ops = st->nnative > 0;
	return st->efd;
}

/* What the next wait has to do that the eventfd does not say: polls to
 * (re-)arm (a report's re-arm waits for its callback to run), ops to
 * submit, completions taken but not handled (the stash, a ring or an
 * io_getevents() that fired[] could not take), ops from before the
 * eventfd. */
static bool aio_pending(const struct evq_loop *loop)
{
	const struct aio_state *st = loop->backend_data;
	const struct aio_ring *ring = st->ring;

	if (st->efd < 0)
		return false;
	return st->nqueue || st->ep_queued || st->nopq > st->opq_head ||
	       st->nstash > st->stash_head ||
	       (st->quiet_ops && st->nnative) ||
	       (ring ? ring->head != __atomic_load_n(&ring->tail,
						    __ATOMIC_ACQUIRE)
		     : st->reap_full);
}

/* ------------------------------------------------------------------------
 * Wait
 * ------------------------------------------------------------------------ */

static unsigned revents_of(int64_t res)
{
	uint64_t ev = res < 0 ? POLLERR : (uint64_t)res;

	return ((ev & (POLLIN | POLLHUP | POLLERR | POLLRDHUP)) != 0) |
	       ((ev & (POLLOUT | POLLHUP | POLLERR)) != 0) << 1;
}

/* The next serial number of a poll (note d): 31 bits (TAG_OP). */
static uint32_t next_serial(uint32_t *serial)
{
	*serial = (*serial + 1) & SERIAL_MASK;
	return *serial;
}

/* poll(2) events of EVQ_READ|EVQ_WRITE */
static const uint16_t poll_events[4] = {
	0, POLLIN, POLLOUT, POLLIN | POLLOUT
};

static void fill_poll(struct iocb *cb, int fd, uint32_t serial,
		      unsigned mask)
{
	memset(cb, 0, sizeof(*cb));
	cb->aio_data = (uint64_t)serial << 32 | (uint32_t)fd;
	cb->aio_lio_opcode = IOCB_CMD_POLL;
	cb->aio_fildes = (uint32_t)fd;
	cb->aio_buf = poll_events[mask & 3];
}

/* Put iocbs not (yet) accepted back on the queue. */
static void requeue(struct aio_state *st, struct iocb **cbs, int n)
{
	for (int i = 0; i < n; i++) {
		if (cbs[i]->aio_data & TAG_OP) {
			continue;	/* ops stay in opq (note j) */
		} else if (cbs[i] == &st->ep_cb) {
			st->ep_queued = true;
		} else {
			struct rec *rec = (struct rec *)cbs[i];

			rec_queue(st, rec);
		}
	}
}

/* The kernel took cb: mark it in flight. */
static void accepted(struct aio_state *st, struct iocb *cb)
{
	if (cb->aio_data & TAG_XFER) {
		st->nnative++;
		if (cb->aio_data & TAG_SEND)
			st->stats.xfer_send++;
		else if (cb->aio_lio_opcode == IOCB_CMD_PREAD)
			st->stats.xfer_read++;
		else
			st->stats.xfer_write++;
	} else if (cb->aio_data & TAG_OP) {
		st->nnative++;
		switch (cb->aio_lio_opcode) {
		case IOCB_CMD_PREAD: st->stats.op_pread++; break;
		case IOCB_CMD_PWRITE: st->stats.op_pwrite++; break;
		case IOCB_CMD_PREADV: st->stats.op_preadv++; break;
		case IOCB_CMD_PWRITEV: st->stats.op_pwritev++; break;
		case IOCB_CMD_FSYNC: st->stats.op_fsync++; break;
		default: st->stats.op_fdsync++; break;
		}
	} else if (cb == &st->ep_cb) {
		st->ep_armed = true;
	} else {
		struct rec *rec = (struct rec *)cb;

		rec->armed = rec->want;
	}
}

/* Note k: a send must not raise SIGPIPE (send(MSG_NOSIGNAL)), and an
 * IOCB_CMD_PWRITE to a socket whose peer is gone does. Nothing to do when
 * SIGPIPE is ignored (one sigaction() per batch with sends asks); else
 * it is blocked for the thread around the io_submit() calls, and one
 * they raised, that was not pending before, is taken back. */
struct pipe_guard {
	sigset_t old;
	bool on, was_pending;
};

static bool sigpipe_ignored(struct aio_state *st)
{
	struct sigaction sa;

	st->stats.sigpipe_checks++;
	return sigaction(SIGPIPE, NULL, &sa) == 0 &&
	       sa.sa_handler == SIG_IGN && !(sa.sa_flags & SA_SIGINFO);
}

static void pipe_guard_on(struct aio_state *st, struct pipe_guard *g)
{
	sigset_t set, pend;

	g->on = false;
	if (st->pipe_asked)
		st->pipe_asked = false;	/* flush_fast() asked: not ignored */
	else if (sigpipe_ignored(st))
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &set, &g->old) != 0)
		return;
	g->on = true;
	st->stats.sigpipe_guards++;
	g->was_pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE);
}

static void pipe_guard_off(struct aio_state *st, struct pipe_guard *g)
{
	struct timespec zero = { 0, 0 };
	sigset_t set, pend;

	if (!g->on)
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!g->was_pending && sigpending(&pend) == 0 &&
	    sigismember(&pend, SIGPIPE) &&
	    sigtimedwait(&set, NULL, &zero) == SIGPIPE)
		st->pipe_owed = true;	/* see op_report */
	(void)pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* Note k: a pool read's buffer is picked when its iocb is built, so
 * that between iterations a buffer is either the user's or available,
 * as in the emulation's try. None left: -ENOBUFS, as the try says. */
static bool xfer_pick(struct aio_state *st, struct iocb *cb)
{
	struct evq_op *op = op_of(cb->aio_data);
	struct evq_pool *pool = op->u.pool.pool;
	int id = evq__pool_take(pool);

	if (id < 0) {
		st->xrefused[st->nxrefused].data = cb->aio_data;
		st->xrefused[st->nxrefused++].res = -ENOBUFS;
		cb->aio_data = 0;	/* opq_compact drops it */
		return false;
	}
	op->cflags = (unsigned)id << 16;
	cb->aio_buf = (uintptr_t)evq_pool_buf(pool, (unsigned)id);
	cb->aio_data |= TAG_TAKEN;
	return true;
}

/* Drop the op queue's entries xfer_pick emptied (aio_data 0); nothing
 * is submitted yet, so the array may move. */
static void opq_compact(struct aio_state *st)
{
	int k = st->opq_head;

	for (int i = st->opq_head; i < st->nopq; i++)
		if (st->opq[i].aio_data)
			st->opq[k++] = st->opq[i];
	st->nopq = k;
}

/* Note k: transfers io_submit() refused go back to the core after the
 * flush: the core may queue more, which moves the op queue. */
static void xfer_refused_run(struct evq_loop *loop, struct aio_state *st)
{
	for (int i = 0; i < st->nxrefused; i++)
		op_report(loop, st, st->xrefused[i].data, st->xrefused[i].res);
	st->nxrefused = 0;
}

/* Note b: submit everything queued, in one io_submit() unless the kernel
 * refuses something: the prepared ops first (a transfer before the
 * re-arm of its fd's poll, note k), then the polls. *np counts
 * loop->fired entries used (EVQ__NVAL for fds found closed). With
 * ops_only, the prepared ops alone, and no growth. A refused transfer
 * is kept in xrefused: the caller hands it back (xfer_refused_run). */
static int flush(struct evq_loop *loop, struct aio_state *st, int *np,
		 bool ops_only)
{
	struct pipe_guard guard;	/* no initializer: 160 bytes */
	bool sends = false, dropped = false;
	struct iocb **b;
	int nb, nops, done, r;

	guard.on = false;
again:
	b = st->batch;
	nb = 0;
	for (int i = st->opq_head; i < st->nopq; i++) {
		struct iocb *cb = &st->opq[i];

		if (evq__unlikely((cb->aio_data & (TAG_POOL | TAG_TAKEN)) ==
				  TAG_POOL) && !xfer_pick(st, cb)) {
			dropped = true;	/* -ENOBUFS, after the flush */
			continue;
		}
		sends |= (cb->aio_data & TAG_SEND) != 0;
		b[nb++] = cb;
	}
	if (evq__unlikely(dropped)) {
		/* the vector again, over the compacted queue */
		dropped = false;
		opq_compact(st);
		nb = 0;
		for (int i = st->opq_head; i < st->nopq; i++)
			b[nb++] = &st->opq[i];
	}
	nops = nb;
	if (!ops_only) {
		for (int i = 0; i < st->nqueue; i++) {
			struct rec *rec = st->queue[i];

			rec->queued = 0;
			if (!rec->want || rec->armed || rec->mode != MODE_AIO)
				continue;
			/* the other fields are the record's for good
			 * (reserve) */
			rec->cb.aio_data =
				(uint64_t)next_serial(&rec->serial) << 32 |
				rec->cb.aio_fildes;
			rec->cb.aio_buf = poll_events[rec->want & 3];
			b[nb++] = &rec->cb;
		}
		st->nqueue = 0;
		if (st->ep_queued && !st->ep_armed && st->nepoll > 0) {
			fill_poll(&st->ep_cb, st->set.epfd,
				  next_serial(&st->ep_serial), EVQ_READ);
			b[nb++] = &st->ep_cb;
		}
		st->ep_queued = false;
	}
	if (!guard.on) {
		st->pipe_owed = false;	/* only for this batch's writes */
		if (sends)
			pipe_guard_on(st, &guard);
	}

	if (evq__unlikely(st->efd >= 0))
		resfd_mark(st, b, nb);	/* note m: every iocb */
	for (done = 0; done < nb;) {
		struct rec *rec;

		r = sys_io_submit(st->ctx, nb - done, b + done);
		st->stats.submit_calls++;
		if (r > 0) {
			for (int i = done; i < done + r; i++)
				accepted(st, b[i]);
			st->stats.submitted += (unsigned)r;
			done += r;
			if (done < nb)
				st->stats.partial_submits++;
			continue;
		}
		if (r == -EINTR)
			continue;
		if (r == -EAGAIN) {	/* note e */
			requeue(st, b + done, nb - done);
			if (st->nnative > 0 || ops_only) {
				/* Note j: ops hold slots until they are
				 * reaped; wait for them, not for a bigger
				 * context. */
				st->stats.op_throttled++;
				r = 0;
				goto out;
			}
			opq_taken(st, done < nops ? done : nops);
			if (grow(st) == 0)
				goto again;
			r = degrade(loop, st);
			if (r < 0)
				goto out_guard;
			goto again;
		}
		if (r < 0 && (b[done]->aio_data & TAG_XFER)) {
			/* Note k: back to the core after the flush. */
			st->xrefused[st->nxrefused].data = b[done]->aio_data;
			st->xrefused[st->nxrefused++].res = r;
			st->stats.op_refused++;
			done++;
			continue;
		}
		if (r < 0 && (b[done]->aio_data & TAG_OP)) {
			/* Note j: the error the syscall itself gives. */
			op_report(loop, st, b[done]->aio_data, r);
			st->stats.op_refused++;
			done++;
			continue;
		}
		if (r == 0 || b[done] == &st->ep_cb) {
			requeue(st, b + done, nb - done);
			r = r < 0 ? r : -EIO;
			goto out;
		}
		rec = (struct rec *)b[done];
		if (r == -EBADF) {
			/* Closed behind our back: the watch ends (core:
			 * modify(0), then a new generation). */
			if (*np < loop->fired_cap) {
				loop->fired[*np].fd = (int)rec->cb.aio_fildes;
				loop->fired[*np].gen = rec->gen;
				loop->fired[*np].revents = EVQ__NVAL;
				(*np)++;
			} else {
				requeue(st, b + done, 1);
			}
			done++;
			continue;
		}
		if (r == -EINVAL) {	/* note f */
			r = ep_add(loop, st, (int)rec->cb.aio_fildes, rec);
			if (r == 0) {
				done++;
				continue;
			}
		}
		requeue(st, b + done, nb - done);
		goto out;
	}
	r = 0;
out:
	opq_taken(st, done < nops ? done : nops);
out_guard:
	st->pipe_asked = false;
	pipe_guard_off(st, &guard);
	return r;
}

/* The poll of the epoll fd fired: collect what epoll has, after the n
 * reports there are. The shared translation checks an fd's registration
 * once per EVQ_IO_STALE_LIMIT reports (epoll_set.c note b). */
static int ep_collect(struct evq_loop *loop, struct aio_state *st, int n)
{
	int k = epoll_wait(st->set.epfd, st->set.events,
			   loop->fired_cap - n, 0);

	if (k <= 0)
		return n;
	return n + evq__epoll_set_translate_at(loop, &st->set, k, n);
}

/* Note g: is this report of fd checked? Once per EVQ_IO_STALE_LIMIT
 * reports of the fd, whoever watches it, as the epoll set does (the
 * slot's counter: an fd is on AIO or in the set, not both). A closed
 * number is noticed for free: the re-arm that follows the report fails
 * with EBADF in the next io_submit(). A number reused by another file
 * is noticed when a watcher starts on it, or by this check; until then
 * the old watcher gets the new file's reports, the limit poll(2) has
 * too (evq.h, close-safety). */
static bool must_check(struct evq_loop *loop, int fd)
{
	struct evq__fd *slot = &loop->fds[fd];

	if (evq__likely(++slot->reports < EVQ_IO_STALE_LIMIT))
		return false;
	slot->reports = 0;
	return true;
}

/* One completion: an op's result into loop->done (note j), or a report
 * in loop->fired[n], or nothing if it is stale (note d) or filtered.
 * Returns the new n. Every live completion queues its fd for re-arming;
 * the flush skips it if nothing is wanted by then. */
static __attribute__((noinline)) int
handle_ep(struct evq_loop *loop, struct aio_state *st,
	  const struct io_event *ev, int n)
{
	if (!st->ep_armed || (uint32_t)(ev->data >> 32) != st->ep_serial)
		return n;
	st->ep_armed = false;
	st->ep_queued = true;
	return n < loop->fired_cap ? ep_collect(loop, st, n) : n;
}

static inline int handle(struct evq_loop *loop, struct aio_state *st,
			 const struct io_event *ev, int n)
{
	struct rec *rec;
	unsigned rev;
	int fd;

	if (ev->data & TAG_OP) {
		op_complete(loop, st, ev);
		return n;
	}
	if (evq__unlikely(ev->obj == (uintptr_t)&st->ep_cb))
		return handle_ep(loop, st, ev, n);
	rec = (struct rec *)(uintptr_t)ev->obj;
	if (!rec->armed || (uint32_t)(ev->data >> 32) != rec->serial) {
		if (rec->cancels)
			rec->cancels--;	/* a cancelled poll: note d */
		return n;
	}
	fd = (int)rec->cb.aio_fildes;
	rec->armed = 0;
	rec_queue(st, rec);
	rev = revents_of(ev->res) & rec->want;
	/* No room (the epoll fallback filled fired[]): the re-arm will
	 * report it again, if it is still true. */
	if (!rev || n == loop->fired_cap)
		return n;
	if (must_check(loop, fd) && !same_file(st, fd, rec))
		rev = EVQ__NVAL;	/* closed behind our back: note g */
	loop->fired[n].fd = fd;
	loop->fired[n].gen = rec->gen;
	loop->fired[n].revents = rev;
	return n + 1;
}

/* Completions cancel_settle() took from the kernel come first. */
static int reap_stash(struct evq_loop *loop, struct aio_state *st, int n)
{
	while (st->stash_head < st->nstash && n < loop->fired_cap)
		n = handle(loop, st, &st->stash[st->stash_head++], n);
	if (st->stash_head == st->nstash)
		st->stash_head = st->nstash = 0;
	return n;
}

/* Note c: take completions from the mapped ring, no syscall. */
static int reap_ring(struct evq_loop *loop, struct aio_state *st, int n)
{
	struct aio_ring *ring = st->ring;
	unsigned head = ring->head, tail;

	tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
	if (evq__unlikely(head >= st->ring_nr || tail >= st->ring_nr)) {
		st->ring = NULL;	/* not the ring we know: syscalls */
		return n;
	}
	while (head != tail && n < loop->fired_cap) {
		n = handle(loop, st, &ring->io_events[head], n);
		if (++head == st->ring_nr)
			head = 0;
		st->stats.ring_reaps++;
	}
	__atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
	return n;
}

/* Without a usable ring: a non-blocking io_getevents(). */
static int reap_syscall(struct evq_loop *loop, struct aio_state *st, int n)
{
	struct timespec zero = { 0, 0 };
	int k;

	if (n >= loop->fired_cap)
		return n;
	k = sys_io_getevents(st->ctx, 0, loop->fired_cap - n, st->events,
			     &zero);
	st->stats.getevents_calls++;
	st->reap_full = k == loop->fired_cap - n;	/* note m */
	for (int i = 0; i < k; i++)
		n = handle(loop, st, &st->events[i], n);
	return n;
}

/* The fast flushes' re-arms: every queued record that wants a poll and
 * has none armed goes into the batch b after its nb iocbs, with a new
 * serial (a late report of an earlier arm is told apart by it). Returns
 * the batch's length. */
static inline __attribute__((always_inline)) int
add_rearms(struct aio_state *st, struct iocb **b, int nb)
{
	for (int i = 0; i < st->nqueue; i++) {
		struct rec *rec = st->queue[i];

		rec->queued = 0;
		if (!rec->want || rec->armed || rec->mode != MODE_AIO)
			continue;
		rec->cb.aio_data = (uint64_t)next_serial(&rec->serial) << 32 |
				   rec->cb.aio_fildes;
		rec->cb.aio_buf = poll_events[rec->want & 3];
		b[nb++] = &rec->cb;
	}
	st->nqueue = 0;
	return nb;
}

/* flush_fast() with no op prepared: a readiness loop's re-arms, 79 user
 * instructions per event less than flush() (callgrind, ping-pong), of
 * which 17-39 because it is kept apart from flush_fast(). */
static inline bool flush_rearms(struct aio_state *st)
{
	struct iocb **b = st->batch;
	int nb = 0, r;

	nb = add_rearms(st, b, nb);
	if (!nb)
		return true;
	r = sys_io_submit(st->ctx, nb, b);
	st->stats.submit_calls++;
	for (int i = 0; i < r; i++) {
		struct rec *rec = (struct rec *)b[i];

		rec->armed = rec->want;
	}
	if (evq__likely(r == nb)) {
		st->stats.submitted += (unsigned)r;
		return true;
	}
	if (r < 0)
		r = 0;	/* flush() submits it again and sees why */
	st->stats.submitted += (unsigned)r;
	st->stats.partial_submits += r > 0;
	requeue(st, b + r, nb - r);
	return false;
}

/* The common flush: the prepared ops (pool buffers picked), then the
 * re-arms, with no epoll fallback poll, no eventfd, and SIGPIPE ignored
 * if a send is in the batch; all accepted. True: done. False: flush()
 * takes it from there, with nothing left half done (an iocb refused or
 * the context full: what was not accepted is queued again, and flush()
 * submits it and meets the refusal itself; a handler for SIGPIPE: the
 * batch needs the guard; no pool buffer left). 48 user instructions per
 * event less than flush() in the ops ping-pong (callgrind). */
static inline bool flush_fast(struct aio_state *st)
{
	struct iocb **b = st->batch;
	bool sends = false;
	int nb = 0, nops, r;

	if (st->ep_queued || st->efd >= 0)
		return false;
	for (int i = st->opq_head; i < st->nopq; i++) {
		struct iocb *cb = &st->opq[i];

		if (evq__unlikely((cb->aio_data & (TAG_POOL | TAG_TAKEN)) ==
				  TAG_POOL) && !xfer_pick(st, cb)) {
			opq_compact(st);	/* -ENOBUFS, after the flush */
			return false;
		}
		sends |= (cb->aio_data & TAG_SEND) != 0;
		b[nb++] = cb;
	}
	nops = nb;
	if (sends && !sigpipe_ignored(st)) {
		st->pipe_asked = true;	/* flush() blocks it, unasked */
		return false;
	}
	st->pipe_owed = false;	/* only for this batch's writes */
	nb = add_rearms(st, b, nb);
	if (!nb)
		return true;
	r = sys_io_submit(st->ctx, nb, b);
	st->stats.submit_calls++;
	for (int i = 0; i < r; i++)
		accepted(st, b[i]);
	if (evq__likely(r == nb)) {
		st->stats.submitted += (unsigned)r;
		opq_taken(st, nops);
		return true;
	}
	if (r < 0)
		r = 0;	/* flush() submits it again and sees why */
	st->stats.submitted += (unsigned)r;
	st->stats.partial_submits += r > 0;
	opq_taken(st, r < nops ? r : nops);
	requeue(st, b + r, nb - r);
	return false;
}

/* One pass: submit what is queued, take what has completed. */
static inline __attribute__((always_inline)) int
flush_reap(struct evq_loop *loop, struct aio_state *st, int n)
{
	if ((st->nqueue || st->ep_queued || st->nopq) &&
	    !(st->ep_queued || st->efd >= 0 ? false
	      : st->nopq ? flush_fast(st) : flush_rearms(st))) {
		int r = flush(loop, st, &n, false);

		if (evq__unlikely(st->nxrefused))
			xfer_refused_run(loop, st);
		if (evq__unlikely(r < 0))
			return r;
	}
	if (evq__unlikely(st->nstash))
		n = reap_stash(loop, st, n);
	return st->ring ? reap_ring(loop, st, n) : reap_syscall(loop, st, n);
}

/* Nothing yet: block in the kernel, until reports or op results come
 * (note j) or the timeout passes. */
static __attribute__((noinline)) int
wait_block(struct evq_loop *loop, struct aio_state *st, int64_t timeout_ns,
	   uint64_t reported)
{
	uint64_t deadline = 0;
	int n, r;

	for (;;) {
		struct timespec ts, *tsp = NULL;

		if (timeout_ns > 0) {
			uint64_t now = evq__clock_ns();

			if (!deadline)
				deadline = evq__ns_after(now,
							 (uint64_t)timeout_ns);
			else if (now >= deadline)
				return 0;
			ts.tv_sec = (time_t)((deadline - now) / 1000000000u);
			ts.tv_nsec = (long)((deadline - now) % 1000000000u);
			tsp = &ts;
		}
		r = sys_io_getevents(st->ctx, 1, loop->fired_cap, st->events,
				     tsp);
		st->stats.getevents_calls++;
		if (r <= 0)
			return r;	/* 0: timed out; -EINTR is fine */
		n = 0;
		for (int i = 0; i < r; i++)
			n = handle(loop, st, &st->events[i], n);
		if (st->ring && n < loop->fired_cap)
			n = reap_ring(loop, st, n);
		if (n > 0 || st->reported != reported)
			return n;	/* reports, or op results (note j) */
		/* Only stale or filtered completions: submit what they
		 * queued, and wait for the rest of the timeout. */
		n = flush_reap(loop, st, 0);
		if (n != 0 || st->reported != reported)
			return n;
	}
}

static int wait_reap(struct evq_loop *loop, int64_t timeout_ns)
{
	struct aio_state *st = loop->backend_data;
	uint64_t reported = st->reported;
	int n;

	st->stats.waits++;
	if (evq__unlikely(st->efd >= 0))
		efd_drain(st);	/* note m */
	if (evq__unlikely(st->set.stale))
		ep_rebuild(loop, st);
	n = flush_reap(loop, st, 0);
	if (n != 0 || st->reported != reported || timeout_ns == 0)
		return n;
	return wait_block(loop, st, timeout_ns, reported);
}

static int aio_wait(struct evq_loop *loop, int64_t timeout_ns)
{
	int n = wait_reap(loop, timeout_ns);

	/* note k: how many reports the core is about to dispatch */
	((struct aio_state *)loop->backend_data)->last_reports = n;
	return n;
}

/* The core saw reports of registrations it had ended: rebuild the epoll
 * fallback before the next wait (ep_rebuild). */
static void aio_stale(struct evq_loop *loop)
{
	((struct aio_state *)loop->backend_data)->set.stale = true;
}

const struct evq__backend evq__backend_aio = {
	.name = "aio",
	.id = EVQ_BACKEND_AIO,
	.caps = 0,
	.probe = aio_probe,
	.init = aio_init,
	.destroy = aio_destroy,
	.modify = aio_modify,
	.wait = aio_wait,
	.stale = aio_stale,
	.embed_fd = aio_embed_fd,
	.pending = aio_pending,
	.op_start = aio_op_start,
	.op_drain = aio_op_drain,
	.xfer_queue = aio_xfer_queue,
	.xfer_cancel = aio_xfer_cancel,
};
