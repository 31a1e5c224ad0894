/* SPDX-License-Identifier: MIT */
/*
 * backend_aio.h - white-box hooks into the Linux AIO backend, for tests.
 *
 * Hidden symbols: only code linked against the static library (evq_static)
 * reaches them, which is what tests/test_aio.c does. Nothing here is API.
 */
#ifndef EVQ_BACKEND_AIO_H
#define EVQ_BACKEND_AIO_H

#include <stdbool.h>
#include <stdint.h>

struct evq_loop;

/* What one aio loop did, counted since it was created. */
struct evq__aio_stats {
	uint64_t waits;			/* backend waits */
	uint64_t submit_calls;		/* io_submit syscalls */
	uint64_t submitted;		/* iocbs the kernel accepted */
	uint64_t partial_submits;	/* io_submit took fewer than offered */
	uint64_t getevents_calls;	/* io_getevents syscalls */
	uint64_t ring_reaps;		/* completions read from the mapped ring */
	uint64_t cancels;		/* io_cancel syscalls */
	uint64_t checks;		/* file identity checks (note g) */
	uint64_t grows;			/* contexts replaced by a bigger one */
	/* ops (note j of backend_aio.c): iocbs the kernel accepted, by
	 * command, and ops handed back to the core's emulation */
	uint64_t op_pread, op_pwrite, op_preadv, op_pwritev;
	uint64_t op_fsync, op_fdsync;
	uint64_t op_emulated;		/* op_start said EVQ__EMULATE */
	uint64_t op_direct_checks;	/* F_GETFL asked for O_DIRECT (note j) */
	uint64_t op_refused;		/* io_submit failed an op's iocb */
	uint64_t op_throttled;		/* flushes that left ops queued: full */
	uint64_t op_close_canceled;	/* queued ops ended by a close op */
	/* emulated ops' transfers in the batch (note k): iocbs accepted */
	uint64_t xfer_read, xfer_write, xfer_send;
	uint64_t xfer_canceled;		/* taken back, not submitted */
	uint64_t xfer_kind_checks;	/* fstat() for a file's kind */
	uint64_t sigpipe_checks;	/* sigaction() asked: sends */
	uint64_t sigpipe_guards;	/* ... SIGPIPE not ignored: masked */
	unsigned op_inflight;		/* native ops not reported yet */
	unsigned op_queued;		/* prepared, not submitted yet */
	unsigned nr_events;		/* what the context was asked for */
	unsigned ring_events;		/* what its ring holds (0: unmapped) */
	unsigned fallback_fds;		/* fds watched through epoll (note f) */
	bool ring;			/* completions are read in user space */
	bool degraded;			/* out of AIO capacity: all on epoll */
};

/* Copy loop's counters into *out. -EINVAL if loop does not run aio. */
__attribute__((visibility("hidden")))
int evq__aio_stats(struct evq_loop *loop, struct evq__aio_stats *out);

/* For loops created after the call, in this process (tests only; not
 * thread-safe): the io_setup() size of the first context (0: default),
 * the largest size growth may ask for (0: no limit but the kernel's), and
 * whether to ignore the mapped ring and reap with io_getevents only. */
__attribute__((visibility("hidden")))
void evq__aio_test_params(unsigned nr_events, unsigned max_nr_events,
			  bool no_ring);

/* For evq_loop_free() in this process (tests only; not thread-safe): how
 * long the drain waits for ops the kernel runs (note n of backend_aio.c),
 * in ms; 0: the default (2000); UINT_MAX: not at all. */
__attribute__((visibility("hidden")))
void evq__aio_test_drain_ms(unsigned ms);

#endif /* EVQ_BACKEND_AIO_H */
