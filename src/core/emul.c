/* SPDX-License-Identifier: MIT */
/*
 * emul.c - the emulation: ops the core runs itself, where the backend has
 * no native completions (epoll, poll) or does not take the op (aio).
 *
 *   sockets, pipes   try the syscall in its non-blocking form (MSG_DONTWAIT,
 *                    RWF_NOWAIT), whatever the fd's own O_NONBLOCK says; on
 *                    EAGAIN wait for readiness with an internal fd watcher
 *                    embedded in the op, then try again. A backend that
 *                    batches (aio: backend->xfer_queue) makes the try of
 *                    a read, write, recv or send in its next batch
 *                    instead, and hands the result back (xfer_try,
 *                    evq__emul_xfer_done)
 *   files, and ops   the loop's thread pool (threadpool.c): openat, statx,
 *   without          fsync, close, connect on a blocking socket, reads and
 *   readiness        writes a file would block
 *   timeout ops      a timer embedded in the op
 *
 * This file only runs ops and reports their results (evq__report): it
 * never calls an op's callback, never decides about chains, and is told
 * what to start by core/ops.c, which delivers what is reported. Everything
 * an op needs lives in the op: no allocation per operation.
 */
#include "internal.h"
#include "emul_more.h"
#include "io.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* How many results a multishot op takes from one readiness report before
 * letting other fds have their turn (level-triggered: it comes back). */
#define MULTISHOT_BURST 16

/* The op's last result: it leaves the emulation (a cancel finds it done
 * and says -EALREADY) and takes the road. */
static inline __attribute__((always_inline)) void
finish(struct evq_loop *loop, struct evq_op *op, int res, unsigned flags)
{
	op->state = EVQ__OP_DONE;
	evq__report(loop, op, res, flags);
}

static bool multishot(const struct evq_op *op)
{
	return op->flags & EVQ_OP_MULTISHOT;
}

/* ------------------------------------------------------------------------
 * Trying the syscall
 * ------------------------------------------------------------------------ */

/* What a try says next: a result, or where to wait. */
enum { TRY_DONE, TRY_WAIT_READ, TRY_WAIT_WRITE, TRY_POOL };

/* EAGAIN from a RWF_NOWAIT transfer: readiness for what has it (pipes,
 * sockets, ttys), the thread pool for files, which are always "ready" but
 * may block. */
static int eagain_route(int fd, unsigned wait)
{
	struct stat sb;

	if (fstat(fd, &sb) == 0 && (S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode)))
		return TRY_POOL;
	return (int)wait;
}

/* RWF_NOWAIT refused (EOPNOTSUPP) on an fd that cannot block anyway: an
 * O_NONBLOCK pipe, socket or tty. Linux (6.5 on) clears FMODE_NOWAIT on
 * a pipe that splice(2) used, so that io_uring never waits on its lock:
 * from then on every RWF_NOWAIT read or write of that pipe says
 * EOPNOTSUPP. Such an fd is tried without the flag (it cannot block);
 * files without RWF_NOWAIT and blocking fds still go to the pool. */
static __attribute__((noinline, cold)) bool nowait_lost(int fd)
{
	struct stat sb;
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK) && fstat(fd, &sb) == 0 &&
	       !S_ISREG(sb.st_mode) && !S_ISBLK(sb.st_mode);
}

static inline __attribute__((always_inline)) int try_rw(struct evq_op *op, int *res)
{
	bool rd = op->code == EVQ_OP_READ || op->code == EVQ_OP_READV;
	const struct iovec *iov;
	struct iovec one;
	int cnt;
	off_t off;
	ssize_t r;

	if (op->flags & EVQ__OPF_POOL) {
		int id = evq__pool_take(op->u.pool.pool);

		if (id < 0) {
			*res = -ENOBUFS;
			return TRY_DONE;
		}
		op->cflags = (unsigned)id << 16;
		one.iov_base = evq_pool_buf(op->u.pool.pool, (unsigned)id);
		one.iov_len = op->u.pool.pool->size;
		iov = &one;
		cnt = 1;
		off = (off_t)op->u.pool.off;
	} else if (op->code == EVQ_OP_READ || op->code == EVQ_OP_WRITE) {
		one.iov_base = op->u.rw.buf;
		one.iov_len = op->u.rw.len;
		iov = &one;
		cnt = 1;
		off = (off_t)op->u.rw.off;
	} else {
		iov = op->u.vec.iov;
		cnt = op->u.vec.cnt;
		off = (off_t)op->u.vec.off;
	}

	/* RWF_NOWAIT does not stop an O_DIRECT read from waiting for the
	 * device (seen on 6.18: ~1.7 ms per MiB inside the loop), so such
	 * files go straight to the pool. Only positioned transfers can be on
	 * a file; the check costs one fcntl there. */
	if (off != (off_t)-1) {
		int fl = fcntl(op->fd, F_GETFL);

		if (fl >= 0 && (fl & O_DIRECT)) {
			if (op->flags & EVQ__OPF_POOL) {
				evq__pool_put(op->u.pool.pool,
					      op->cflags >> 16);
				op->cflags = 0;
			}
			return TRY_POOL;
		}
	}
	r = evq__sys_prwv2(rd, op->fd, iov, cnt, off, RWF_NOWAIT);
	if (evq__unlikely(r == -EOPNOTSUPP) && nowait_lost(op->fd))
		r = evq__sys_prwv2(rd, op->fd, iov, cnt, off, 0);
	if (r >= 0) {
		*res = r > 0x7fffffff ? 0x7fffffff : (int)r;
		if (op->flags & EVQ__OPF_POOL) {
			if (r > 0) {
				op->cflags |= EVQ_OP_F_BUFFER;
			} else {
				evq__pool_put(op->u.pool.pool,
					      op->cflags >> 16);
				op->cflags = 0;
			}
		}
		return TRY_DONE;
	}
	*res = (int)r;
	if (op->flags & EVQ__OPF_POOL) {
		/* Keep no buffer while waiting: it may be needed elsewhere.
		 * The pool thread path picks it again. */
		evq__pool_put(op->u.pool.pool, op->cflags >> 16);
		op->cflags = 0;
	}
	if (r == -EAGAIN)
		return eagain_route(op->fd, rd ? TRY_WAIT_READ : TRY_WAIT_WRITE);
	if (r == -EOPNOTSUPP)	/* no RWF_NOWAIT for this file */
		return TRY_POOL;
	return TRY_DONE;
}

/* A linked recv or send (EVQ__OPF_WAITALL, set by core/ops.c) waits for
 * all its bytes, as MSG_WAITALL does on io_uring: it completes whole, or
 * short only at EOF or an error, which breaks the chain. The progress is
 * kept in op->cflags while the op waits. */
static int try_sock_all(struct evq_op *op, int *res)
{
	bool rd = op->code == EVQ_OP_RECV;
	size_t done = op->cflags;
	ssize_t r;

	while (done < op->u.sr.len) {
		char *p = (char *)op->u.sr.buf + done;

		r = rd ? evq__sys_recv(op->fd, p, op->u.sr.len - done,
				       op->u.sr.flags | MSG_DONTWAIT)
		       : evq__sys_send(op->fd, p, op->u.sr.len - done,
				       op->u.sr.flags | MSG_DONTWAIT |
					       MSG_NOSIGNAL);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r == -EAGAIN) {
			op->cflags = (unsigned)done;
			return rd ? TRY_WAIT_READ : TRY_WAIT_WRITE;
		}
		if (r < 0 && done == 0) {
			*res = (int)r;
			return TRY_DONE;
		}
		break;	/* EOF, or an error after some bytes: short */
	}
	op->cflags = 0;
	*res = done > 0x7fffffff ? 0x7fffffff : (int)done;
	return TRY_DONE;
}

static inline __attribute__((always_inline)) int try_sock(struct evq_op *op, int *res)
{
	ssize_t r;
	bool rd;

	if (op->flags & EVQ__OPF_WAITALL)
		return try_sock_all(op, res);

	switch (op->code) {
	case EVQ_OP_RECV:
		rd = true;
		if (op->flags & EVQ__OPF_POOL) {
			struct evq_pool *pool = op->u.pool.pool;
			int id = evq__pool_take(pool);

			if (id < 0) {
				*res = -ENOBUFS;
				return TRY_DONE;
			}
			r = evq__sys_recv(op->fd,
					  evq_pool_buf(pool, (unsigned)id),
					  pool->size,
					  op->u.pool.flags | MSG_DONTWAIT);
			if (r > 0)
				op->cflags = EVQ_OP_F_BUFFER | (unsigned)id << 16;
			else
				evq__pool_put(pool, (unsigned)id);
		} else {
			r = evq__sys_recv(op->fd, op->u.sr.buf, op->u.sr.len,
					  op->u.sr.flags | MSG_DONTWAIT);
		}
		break;
	case EVQ_OP_SEND:
		rd = false;
		r = evq__sys_send(op->fd, op->u.sr.buf, op->u.sr.len,
				  op->u.sr.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	case EVQ_OP_RECVMSG:
		rd = true;
		r = EVQ__SYS(recvmsg(op->fd, op->u.msg.msg,
				     op->u.msg.flags | MSG_DONTWAIT));
		break;
	default: /* EVQ_OP_SENDMSG */
		rd = false;
		r = EVQ__SYS(sendmsg(op->fd, op->u.msg.msg,
				     op->u.msg.flags | MSG_DONTWAIT |
					     MSG_NOSIGNAL));
		break;
	}
	if (r >= 0) {
		*res = r > 0x7fffffff ? 0x7fffffff : (int)r;
		return TRY_DONE;
	}
	*res = (int)r;
	if (r == -EAGAIN)
		return rd ? TRY_WAIT_READ : TRY_WAIT_WRITE;
	return TRY_DONE;
}

/* accept4 has no per-call non-blocking flag. On a blocking listening
 * socket evq waits for readiness first, so the call finds a connection
 * waiting (unless another process takes it first: then it blocks, which
 * is why listening sockets should be O_NONBLOCK when shared). */
static int try_accept(struct evq_op *op, int *res, bool ready)
{
	int fd;

	if (!ready) {
		int fl = fcntl(op->fd, F_GETFL);

		if (fl < 0) {
			*res = -errno;
			return TRY_DONE;
		}
		if (!(fl & O_NONBLOCK)) {
			op->flags |= EVQ__OPF_BLOCKING;
			return TRY_WAIT_READ;
		}
	}
	fd = accept4(op->fd, op->u.acc.addr, op->u.acc.addrlen,
		     op->u.acc.flags);
	if (fd >= 0) {
		*res = fd;
		return TRY_DONE;
	}
	*res = -errno;
	if (errno == EAGAIN || errno == ECONNABORTED)
		return TRY_WAIT_READ;
	return TRY_DONE;
}

/* connect: a non-blocking socket connects in the loop (EINPROGRESS, then
 * writable, then SO_ERROR); a blocking one would block, so it connects in
 * the thread pool. */
static int try_connect(struct evq_op *op, int *res, bool ready)
{
	socklen_t len = sizeof(*res);
	int fl, err = 0;

	if (ready) {
		if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		*res = -err;
		return TRY_DONE;
	}
	fl = fcntl(op->fd, F_GETFL);
	if (fl < 0) {
		*res = -errno;
		return TRY_DONE;
	}
	if (!(fl & O_NONBLOCK))
		return TRY_POOL;
	if (connect(op->fd, op->u.conn.addr, op->u.conn.len) == 0) {
		*res = 0;
		return TRY_DONE;
	}
	*res = -errno;
	if (errno == EINPROGRESS || errno == EAGAIN)
		return TRY_WAIT_WRITE;
	return TRY_DONE;
}

static inline __attribute__((always_inline)) int try_op(struct evq_op *op, int *res, bool ready)
{
	switch (op->code) {
	case EVQ_OP_READ:
	case EVQ_OP_WRITE:
	case EVQ_OP_READV:
	case EVQ_OP_WRITEV:
		return try_rw(op, res);
	case EVQ_OP_RECV:
	case EVQ_OP_SEND:
	case EVQ_OP_RECVMSG:
	case EVQ_OP_SENDMSG:
		return try_sock(op, res);
	case EVQ_OP_ACCEPT:
		return try_accept(op, res, ready);
	case EVQ_OP_CONNECT:
		return try_connect(op, res, ready);
	default:
		return TRY_POOL;
	}
}

/* ------------------------------------------------------------------------
 * Transfers in the backend's batch (aio: one io_submit carries them)
 * ------------------------------------------------------------------------ */

/* Hand op's next try to the backend's batch instead of making the
 * syscall (backend->xfer_queue). Only what an iocb does exactly: one
 * buffer at the current position of a stream (read, write), recv and
 * send without flags but those the try adds (MSG_DONTWAIT; MSG_NOSIGNAL:
 * the backend sees that a send raises no SIGPIPE). A
 * pool read passes no buffer: the backend picks one when it builds the
 * iocb, sets op->cflags to its id, and gives it back itself with a result
 * <= 0 (-ENOBUFS if none is left), so that between iterations a buffer
 * is the user's or available, as with the try. The op's wait, if any,
 * stays as it is: the backend re-arms its poll after the transfer, in
 * the same batch. retry: EVQ__XFER_RETRY for the try of a single-shot op
 * that follows a readiness report (the backend may prefer the syscall
 * then: see note k of backend_aio.c). Returns whether it was taken. */
static bool xfer_try(struct evq_loop *loop, struct evq_op *op, unsigned retry)
{
	int (*queue)(struct evq_loop *, struct evq_op *, void *, size_t,
		     unsigned) = loop->backend->xfer_queue;
	struct evq_pool *pool = NULL;
	unsigned need;
	void *buf;
	size_t len;

	if (!queue)
		return false;
	switch (op->code) {
	case EVQ_OP_READ:
	case EVQ_OP_WRITE:
		if (op->flags & EVQ__OPF_POOL) {
			if (op->u.pool.off != EVQ_OFFSET_CURRENT)
				return false;
			pool = op->u.pool.pool;
		} else if (op->u.rw.off != EVQ_OFFSET_CURRENT) {
			return false;
		}
		need = EVQ__XFER_STREAM;
		break;
	case EVQ_OP_RECV:
		if (op->flags & EVQ__OPF_WAITALL)
			return false;
		if (op->flags & EVQ__OPF_POOL) {
			if (op->u.pool.flags & ~MSG_DONTWAIT)
				return false;
			pool = op->u.pool.pool;
		} else if (op->u.sr.flags & ~MSG_DONTWAIT) {
			return false;
		}
		need = EVQ__XFER_SOCK;
		break;
	case EVQ_OP_SEND:
		/* MSG_DONTWAIT and MSG_NOSIGNAL are what the try adds */
		if ((op->flags & EVQ__OPF_WAITALL) ||
		    (op->u.sr.flags & ~(MSG_DONTWAIT | MSG_NOSIGNAL)))
			return false;
		need = EVQ__XFER_SEND;
		break;
	default:
		return false;
	}
	if (pool) {
		buf = NULL;
		len = pool->size;
		op->cflags = 0;
	} else if (op->code == EVQ_OP_READ || op->code == EVQ_OP_WRITE) {
		buf = op->u.rw.buf;
		len = op->u.rw.len;
	} else {
		buf = op->u.sr.buf;
		len = op->u.sr.len;
	}
	if (queue(loop, op, buf, len, need | retry) != 0)
		return false;
	if (op->state != EVQ__OP_WAIT_IO)
		op->wait.io = (struct evq_io){ 0 };	/* no wait */
	op->state = EVQ__OP_XFER;
	return true;
}

/* ------------------------------------------------------------------------
 * Waiting
 * ------------------------------------------------------------------------ */

static void route(struct evq_loop *loop, struct evq_op *op, int how, int res);

/* A plain read's or write's RWF_NOWAIT try failed with r: what that
 * means. A file that lost RWF_NOWAIT (a pipe splice(2) touched) is tried
 * once without it: readiness says it will not block. Returns how to go
 * on (TRY_*), the result or error in *res. */
static __attribute__((noinline, cold)) int
plain_try_failed(const struct evq_op *op, long r, int *res)
{
	bool rd = op->code == EVQ_OP_READ;

	if (r == -EOPNOTSUPP && nowait_lost(op->fd)) {
		struct iovec one = { op->u.rw.buf, op->u.rw.len };

		r = evq__sys_prwv2(rd, op->fd, &one, 1, (off_t)-1, 0);
	}
	*res = r > 0x7fffffff ? 0x7fffffff : (int)r;
	if (r == -EAGAIN)
		return eagain_route(op->fd, rd ? TRY_WAIT_READ : TRY_WAIT_WRITE);
	if (r == -EOPNOTSUPP)	/* no RWF_NOWAIT for this file */
		return TRY_POOL;
	return TRY_DONE;
}

/* The common op: a read or write of the op's own buffer at the current
 * position. No pool, and no O_DIRECT check (only positioned transfers
 * need it): try_rw without its switches. */
static inline bool plain_rw(const struct evq_op *op)
{
	return (op->code == EVQ_OP_READ || op->code == EVQ_OP_WRITE) &&
	       !(op->flags & EVQ__OPF_POOL) &&
	       op->u.rw.off == EVQ_OFFSET_CURRENT;
}

static inline __attribute__((always_inline)) int
try_plain_rw(struct evq_op *op, int *res)
{
	bool rd = op->code == EVQ_OP_READ;
	struct iovec one = { op->u.rw.buf, op->u.rw.len };
	long r;

	r = evq__sys_prwv2(rd, op->fd, &one, 1, (off_t)-1, RWF_NOWAIT);
	if (evq__likely(r >= 0)) {
		*res = r > 0x7fffffff ? 0x7fffffff : (int)r;
		return TRY_DONE;
	}
	return plain_try_failed(op, r, res);
}

/* Readiness arrived for a waiting op: try again. A multishot op takes up
 * to MULTISHOT_BURST results, then waits for the next report. EVQ__NVAL:
 * the core ended the watch (the fd was closed behind the loop's back);
 * the watcher is stopped already. */
void evq__emul_io_cb(struct evq_loop *loop, struct evq_io *w, unsigned revents)
{
	struct evq_op *op = container_of(w, struct evq_op, wait.io);
	int res, how;

	if (evq__unlikely(op->state == EVQ__OP_XFER)) {
		/* Its transfer is in the backend's batch: that result
		 * decides. A report meanwhile is the re-armed poll's; an
		 * end of the watch (NVAL) is seen by evq__emul_xfer_done. */
		op->flags &= (uint16_t)~EVQ__OPF_UNVERIFIED;
		return;
	}
	if (evq__unlikely(revents & EVQ__NVAL)) {
		if (op->flags & EVQ__OPF_UNVERIFIED) {
			/* The registration it took over was for another
			 * file: the number was closed and reused before
			 * the op started. Start over on the file it names
			 * now; if none, that says -EBADF. */
			op->flags &= (uint16_t)~EVQ__OPF_UNVERIFIED;
			evq__emul_start(loop, op);
			return;
		}
		finish(loop, op, -EBADF, 0);
		return;
	}
	/* A report came through the registration, but it may be another
	 * file's (aio re-arms a poll by number, on whatever file took it):
	 * only a result proves the registration is the op's. An op that
	 * must wait again stays unverified, so that a check ending the
	 * stale watch starts it over rather than failing it (-EBADF). */
	if (evq__likely((op->flags & ~EVQ__OPF_UNVERIFIED) == 0 &&
			plain_rw(op))) {
		/* Single-shot, non-blocking: one try, no burst. */
		if (xfer_try(loop, op, EVQ__XFER_RETRY))
			return;
		how = try_plain_rw(op, &res);
		if (evq__likely(how == TRY_DONE)) {
			/* A result: the registration was the op's, and the
			 * op goes as a plain result (no flag) to delivery. */
			op->flags = 0;
			/* for the next op on the fd */
			evq__io_leave_alone(loop, w);
			finish(loop, op, res, op->cflags);
			return;
		}
		goto not_done;
	}
	/* One try per report in the batch; the level-triggered watch,
	 * re-armed after it, brings the op back while data remains. */
	if (!(op->flags & EVQ__OPF_BLOCKING) &&
	    (!multishot(op) || evq__done_room(loop, 1)) &&
	    xfer_try(loop, op, multishot(op) ? 0 : EVQ__XFER_RETRY))
		return;
	for (int burst = 0; burst < MULTISHOT_BURST; burst++) {
		/* On a blocking fd only the first try is known not to
		 * block. A result that stays armed needs room on the road
		 * first; without it, the next report brings it back. */
		if ((burst > 0 && (op->flags & EVQ__OPF_BLOCKING)) ||
		    (multishot(op) && !evq__done_room(loop, 1))) {
			how = TRY_DONE;
			break;
		}
		how = try_op(op, &res, true);
		if (how != TRY_DONE)
			break;
		op->flags &= (uint16_t)~EVQ__OPF_UNVERIFIED;
		if (multishot(op) && evq__more_ok(op, res)) {
			/* Another result; the op stays armed (only a cancel
			 * op ends it, and that starts next iteration). */
			unsigned cflags = op->cflags;

			op->cflags = 0;
			evq__report(loop, op, res, cflags | EVQ_OP_F_MORE);
			/* A recv that did not fill its buffer has most
			 * likely drained the socket: trying again would
			 * only fetch EAGAIN (a syscall per request). The
			 * level-triggered watch brings it back if not. */
			if (op->code == EVQ_OP_RECV &&
			    (size_t)res < op->u.pool.pool->size)
				return;
			continue;
		}
		evq__io_leave(w);	/* for the next op on the fd */
		finish(loop, op, res, op->cflags);
		return;
	}
not_done:
	if (how == TRY_WAIT_READ || how == TRY_WAIT_WRITE) {
		unsigned want = how == TRY_WAIT_READ ? EVQ_READ : EVQ_WRITE;

		if ((w->events & EVQ__IO_MASK) != want)
			evq_io_set(w, want);
		return;
	}
	/* burst used up: stay armed; or TRY_POOL */
	if (how == TRY_DONE)
		return;
	evq_io_stop(w);
	route(loop, op, how, res);
}

/* The try of evq__emul_io_cb failed with r: EAGAIN (another reader was
 * first; or the registration is another file's), RWF_NOWAIT refused, an
 * error. What try_plain_rw and evq__emul_io_cb would make of it. */
static __attribute__((noinline, cold)) void
plain_failed(struct evq_loop *loop, struct evq_op *op, struct evq_io *w,
	     long r)
{
	int res, how = plain_try_failed(op, r, &res);

	if (how == TRY_DONE) {
		op->flags = 0;
		evq__io_leave_alone(loop, w);
		finish(loop, op, res, 0);
		return;
	}
	if (how != TRY_POOL) {
		unsigned want = how == TRY_WAIT_READ ? EVQ_READ : EVQ_WRITE;

		if ((w->events & EVQ__IO_MASK) != want)
			evq_io_set(w, want);
		return;
	}
	evq_io_stop(w);
	route(loop, op, how, res);
}

/* The watcher callback of a plain read or write (plain_rw) on a backend
 * that batches no transfer (wait_cb): readiness lets it run. Its try and
 * result here, in a function of its own; a report that is not the
 * common one (the op has a flag but the unverified mark, or the watch
 * ended), and a try that did not give a result, go to evq__emul_io_cb
 * and plain_failed, which decide as before. */
void evq__emul_plain_cb(struct evq_loop *loop, struct evq_io *w,
			unsigned revents)
{
	struct evq_op *op = container_of(w, struct evq_op, wait.io);
	struct iovec one;
	long r;

	if (evq__unlikely((op->flags & ~EVQ__OPF_UNVERIFIED) != 0 ||
			  (revents & EVQ__NVAL) ||
			  op->state != EVQ__OP_WAIT_IO)) {
		evq__emul_io_cb(loop, w, revents);
		return;
	}
	one = (struct iovec){ op->u.rw.buf, op->u.rw.len };
	r = evq__sys_prwv2(op->code == EVQ_OP_READ, op->fd, &one, 1,
			   (off_t)-1, RWF_NOWAIT);
	if (evq__likely(r >= 0)) {
		/* A result: the registration was the op's (no longer
		 * unverified), and the op goes as a plain result to
		 * delivery; its registration stays for the next op on the
		 * fd. */
		op->flags = 0;
		evq__io_leave_alone(loop, w);
		finish(loop, op, r > 0x7fffffff ? 0x7fffffff : (int)r, 0);
		return;
	}
	plain_failed(loop, op, w, r);
}

/* Wait for readiness of op->fd (io.h, evq__op_wait_io), with the
 * plain op's own callback where it has one (evq__emul_wait_cb). */
static inline __attribute__((always_inline)) int wait_io(struct evq_loop *loop, struct evq_op *op, unsigned events)
{
	return evq__op_wait_io(loop, op, op->fd, events,
			       evq__emul_wait_cb(loop, op));
}

/* Would readiness say that trying op now fails? A read of an fd whose
 * last op just waited for it (its registration is still there: the
 * stop is not flushed) has most likely found it empty: the loop waits
 * for the report instead of asking with a syscall that says EAGAIN. A
 * report comes at once if data is there (level-triggered). */
static inline __attribute__((always_inline)) bool wait_first(const struct evq_loop *loop, const struct evq_op *op)
{
	const struct evq__fd *slot;

	switch (op->code) {
	case EVQ_OP_READ:
	case EVQ_OP_READV:
	case EVQ_OP_RECV:
	case EVQ_OP_RECVMSG:
		break;
	default:
		return false;
	}
	if (op->fd >= loop->nfds)
		return false;
	slot = &loop->fds[op->fd];
	return slot->opwait && !slot->head && slot->kmask == EVQ_READ;
}

/* The emulated timeout op's timer does not count as a watcher of its own
 * (the op counts once): evq_timer_start/stop and firing adjust
 * loop->active, and these functions undo that. */
static void op_timer_cb(struct evq_loop *loop, struct evq_timer *t)
{
	struct evq_op *op = container_of(t, struct evq_op, wait.timer);

	loop->active++;	/* the firing took one off */
	finish(loop, op, -ETIME, 0);
}

/* Act on what a try said. */
static void route(struct evq_loop *loop, struct evq_op *op, int how, int res)
{
	int r;

	switch (how) {
	case TRY_DONE:
		if (multishot(op) && evq__more_ok(op, res)) {
			/* First result of a multishot op: report it and
			 * arm the op for the rest. */
			unsigned cflags = op->cflags;

			op->cflags = 0;
			/* Cannot stay armed (no room on the road for a
			 * result that is not the last, or no watch): this
			 * result is the last one. A result parked for want
			 * of room must not be one that stays armed. */
			if (!evq__done_room(loop, 1) ||
			    wait_io(loop, op, EVQ_READ) < 0) {
				finish(loop, op, res, cflags);
				return;
			}
			evq__report(loop, op, res, cflags | EVQ_OP_F_MORE);
			return;
		}
		finish(loop, op, res, op->cflags);
		return;
	case TRY_WAIT_READ:
	case TRY_WAIT_WRITE:
		r = wait_io(loop, op,
			    how == TRY_WAIT_READ ? EVQ_READ : EVQ_WRITE);
		if (r < 0)
			finish(loop, op, r, 0);
		return;
	default: /* TRY_POOL */
		if (op->flags & EVQ__OPF_POOL) {
			int id = evq__pool_take(op->u.pool.pool);

			if (id < 0) {
				finish(loop, op, -ENOBUFS, 0);
				return;
			}
			op->cflags = (unsigned)id << 16;
		}
		r = evq__tpool_submit(loop, op);
		if (r < 0) {
			if (op->flags & EVQ__OPF_POOL)
				evq__pool_put(op->u.pool.pool,
					      op->cflags >> 16);
			op->cflags = 0;
			finish(loop, op, r, 0);
		}
		return;
	}
}

/* ------------------------------------------------------------------------
 * Close ops and the thread pool
 * ------------------------------------------------------------------------ */

/* Does a pool thread run an op of this loop on fd? An op still in
 * EVQ__OP_POOL_QUEUED after the close op's cancel of the fd is one a
 * worker took (its result is reported, EVQ__OP_DONE, when reaped). */
static bool pool_runs_on_fd(const struct evq_loop *loop, int fd)
{
	for (const struct evq_op *o = loop->ops_head; o; o = o->next)
		if (o->state == EVQ__OP_POOL_QUEUED &&
		    o->code != EVQ_OP_CLOSE &&
		    (o->fd == fd || (o->code == EVQ_OP_SPLICE &&
				     o->u.splice.fd_in == fd)))
			return true;
	return false;
}

/* Close now: in the pool, since close() can block (the last reference to
 * a lingering socket, a network file system's flush). But a close must
 * never need a new fd: when the pool cannot be had (at RLIMIT_NOFILE it
 * cannot make its eventfd), or is being shut down, close here. Linux
 * frees the fd even when close() fails. */
static void close_go(struct evq_loop *loop, struct evq_op *op)
{
	if (loop->freeing || evq__tpool_submit(loop, op) < 0)
		finish(loop, op, (int)EVQ__SYS(close(op->fd)), 0);
}

void evq__emul_close_ready(struct evq_loop *loop, bool force)
{
	struct evq_op **pp = &loop->close_waiters;

	while (*pp) {
		struct evq_op *c = *pp;

		if (!force && pool_runs_on_fd(loop, c->fd)) {
			pp = &c->qnext;
			continue;
		}
		*pp = c->qnext;
		c->qnext = NULL;
		close_go(loop, c);
	}
}

/* ------------------------------------------------------------------------
 * The interface: start, cancel
 * ------------------------------------------------------------------------ */

void evq__emul_start(struct evq_loop *loop, struct evq_op *op)
{
	int res = 0, how;

	if (evq__likely(plain_rw(op) && op->fd >= 0)) {
		if (op->code == EVQ_OP_READ && wait_first(loop, op))
			how = TRY_WAIT_READ;
		else if (op->code == EVQ_OP_WRITE && xfer_try(loop, op, 0))
			return;
		else
			how = try_plain_rw(op, &res);
		if (evq__likely(how == TRY_DONE))
			finish(loop, op, res, op->cflags);
		else
			route(loop, op, how, res);
		return;
	}

	switch (op->code) {
	case EVQ_OP_NOP:
		finish(loop, op, 0, 0);
		return;
	case EVQ_OP_TIMEOUT:
		op->state = EVQ__OP_WAIT_TIMER;
		op->wait.timer = (struct evq_timer){ 0 };
		res = evq_timer_start(loop, &op->wait.timer, op->u.tmo.ns, 0,
				      op_timer_cb);
		if (res < 0)
			finish(loop, op, res, 0);
		else
			loop->active--;	/* see op_timer_cb */
		return;
	case EVQ_OP_CLOSE:
		/* The core has ended what it could on fd. An op a pool
		 * thread already runs cannot be ended: it may not have made
		 * its syscall yet, and would make it on whatever file takes
		 * the number after the close. The close waits for it. */
		if (pool_runs_on_fd(loop, op->fd)) {
			op->state = EVQ__OP_CLOSE_WAIT;
			op->qnext = loop->close_waiters;
			loop->close_waiters = op;
			return;
		}
		close_go(loop, op);
		return;
	case EVQ_OP_OPENAT:
	case EVQ_OP_STATX:
	case EVQ_OP_FSYNC:
		route(loop, op, TRY_POOL, 0);
		return;
	case EVQ_OP_SPLICE:
	case EVQ_OP_SHUTDOWN:
	case EVQ_OP_SOCKET:
	case EVQ_OP_FALLOCATE:
	case EVQ_OP_UNLINKAT:
	case EVQ_OP_RENAMEAT:
	case EVQ_OP_MKDIRAT:
	case EVQ_OP_SEND_ZC:
		evq__more_start(loop, op);	/* emul_more.c */
		return;
	default:
		if (op->fd < 0) {
			finish(loop, op, -EBADF, 0);
			return;
		}
		if (wait_first(loop, op))
			how = TRY_WAIT_READ;
		else if (op->code == EVQ_OP_SEND && xfer_try(loop, op, 0))
			return;
		else
			how = try_op(op, &res, false);
		route(loop, op, how, res);
		return;
	}
}

/* The result of a transfer the backend's batch made for op (xfer_try):
 * go on as the try would have, with res as the syscall's result. The
 * op's wait, if it had one, was left as it was, and may have ended
 * meanwhile (its fd closed: the watch is no longer active). */
void evq__emul_xfer_done(struct evq_loop *loop, struct evq_op *op, int res)
{
	struct evq_io *w = &op->wait.io;
	bool watching = w->state & EVQ__ACTIVE;
	bool rd = op->code == EVQ_OP_READ || op->code == EVQ_OP_RECV;
	unsigned want = rd ? EVQ_READ : EVQ_WRITE;
	unsigned cflags;

	op->state = EVQ__OP_WAIT_IO;
	if ((op->flags & EVQ__OPF_POOL) && res > 0)
		op->cflags |= EVQ_OP_F_BUFFER;	/* the backend's pick */
	if (res == -EAGAIN || res == -EOPNOTSUPP || res == -EINVAL) {
		if (res != -EAGAIN) {
			/* The kernel would not take it for this file (the
			 * backend will not offer it again): the syscall. */
			if (watching)
				evq__emul_io_cb(loop, w, want);
			else
				evq__emul_start(loop, op);
			return;
		}
		if (!watching) {
			int r = wait_io(loop, op, want);

			if (r < 0)
				finish(loop, op, r, 0);
		} else if ((w->events & EVQ__IO_MASK) != want) {
			evq_io_set(w, want);
		}
		return;
	}
	if (multishot(op) && evq__more_ok(op, res) && watching &&
	    evq__done_room(loop, 1)) {
		cflags = op->cflags;
		op->cflags = 0;
		evq__report(loop, op, res, cflags | EVQ_OP_F_MORE);
		return;
	}
	if (watching)
		evq__io_leave(w);	/* for the next op on the fd */
	finish(loop, op, res, op->cflags);
}

/* The try of evq__emul_try_write failed with r: what try_plain_rw and
 * route make of it, but a result is handed back. */
static __attribute__((noinline, cold)) int
start_failed(struct evq_loop *loop, struct evq_op *op, long r)
{
	int res, how = plain_try_failed(op, r, &res);

	if (how == TRY_DONE)
		return res;
	route(loop, op, how, res);
	return EVQ__WENT_ON;
}

/* For ops.h's start of a lone plain write (plain_rw, on a backend that
 * batches no transfer: epoll, poll): the try evq__emul_start makes, but a
 * result is handed back instead of being reported, the op left as it
 * was, for the caller to deliver at once. Any other outcome (wait, pool)
 * goes on as from evq__emul_start; EVQ__WENT_ON then. */
int evq__emul_try_write(struct evq_loop *loop, struct evq_op *op)
{
	struct iovec one = { op->u.rw.buf, op->u.rw.len };
	long r = evq__sys_prwv2(false, op->fd, &one, 1, (off_t)-1,
				RWF_NOWAIT);

	if (evq__likely(r >= 0))
		return r > 0x7fffffff ? 0x7fffffff : (int)r;
	return start_failed(loop, op, r);
}

int evq__emul_cancel(struct evq_loop *loop, struct evq_op *op)
{
	switch (op->state) {
	case EVQ__OP_WAIT_IO:
		evq_io_stop(&op->wait.io);
		break;
	case EVQ__OP_WAIT_TIMER:
		evq_timer_stop(&op->wait.timer);
		loop->active++;	/* see op_timer_cb */
		break;
	case EVQ__OP_POOL_QUEUED:
		if (!evq__tpool_remove(loop, op))
			return -EALREADY;
		if (op->flags & EVQ__OPF_POOL)
			evq__pool_put(op->u.pool.pool, op->cflags >> 16);
		break;
	case EVQ__OP_XFER:
		/* Built, not submitted: removable. Submitted: it ran inside
		 * io_submit() and its result is on its way. */
		if (loop->backend->xfer_cancel(loop, op) < 0)
			return -EALREADY;
		if (op->wait.io.state & EVQ__ACTIVE)
			evq_io_stop(&op->wait.io);
		break;	/* a pool buffer it had, the backend gave back */
	default:
		return -EALREADY;
	}
	op->cflags = 0;
	return 0;
}

/* Before the loop blocks: check the registrations that ops took over
 * without a syscall (wait_io) and have had no report through since. A
 * number closed and reused in between (by another file, maybe of
 * another kind) would otherwise never report: the op starts afresh on
 * the file the number names now. Returns whether any did, so that the
 * loop does not block. One syscall per op checked; a loop that never
 * blocks (busy) checks nothing, and an op a report reached is known to
 * be fine. */
bool evq__emul_verify(struct evq_loop *loop)
{
	bool restarted = false;

	loop->unverified = 0;
	for (struct evq_op *op = loop->ops_head; op; op = loop->ops_cursor) {
		loop->ops_cursor = op->next;
		if (!(op->flags & EVQ__OPF_UNVERIFIED))
			continue;
		if (op->state == EVQ__OP_WAIT_IO &&
		    evq__io_check(loop, op->wait.io.fd))
			restarted = true;	/* evq__emul_io_cb started it over */
		op->flags &= (uint16_t)~EVQ__OPF_UNVERIFIED;
	}
	loop->ops_cursor = NULL;
	return restarted;
}
