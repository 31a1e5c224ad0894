/* SPDX-License-Identifier: MIT */
/*
 * emul_more.c - the emulation of the ops issue 14 added, where the
 * backend does not run them (epoll, poll, aio; uring on a kernel without
 * the opcode). Same road as emul.c: results are reported (evq__report),
 * never called back; everything lives in the op.
 *
 *   splice   pipes and non-blocking sockets: splice(2) with
 *            SPLICE_F_NONBLOCK in the loop, and on EAGAIN a wait for the
 *            side that is not ready (poll with no timeout says which);
 *            a regular file or a blocking socket side: the sides that
 *            have readiness are waited for in the loop, then a pool
 *            thread makes the call (threadpool.c, run_more)
 *   shutdown, socket
 *            the syscall in the loop: neither ever blocks
 *   send_zc  a plain send (no zero copy), as emul.c's, then the
 *            notification at once
 *   fallocate, unlinkat, renameat, mkdirat
 *            the thread pool, as openat and statx (file systems may
 *            wait for the disk)
 */
#include "emul_more.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* The op's last result (emul.c's finish). */
static void finish(struct evq_loop *loop, struct evq_op *op, int res)
{
	op->state = EVQ__OP_DONE;
	op->cflags = 0;
	evq__report(loop, op, res, 0);
}

/* ------------------------------------------------------------------------
 * splice
 * ------------------------------------------------------------------------ */

#define SPL_FLAGS (SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | \
		   SPLICE_F_GIFT)

/* EVQ__SPL_* of fd, or -errno. */
static int splice_kind(int fd)
{
	struct stat sb;
	int fl;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if (S_ISFIFO(sb.st_mode))
		return EVQ__SPL_PIPE;
	if (S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode))
		return EVQ__SPL_FILE;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	return (fl & O_NONBLOCK) ? 0 : EVQ__SPL_BLOCK;
}

/* Does a thread of the pool make the call (a side may block)? */
static bool splice_in_pool(const struct evq_op *op)
{
	unsigned both = EVQ__SPL_IN(op->cflags) | EVQ__SPL_OUT(op->cflags);

	return both & (EVQ__SPL_FILE | EVQ__SPL_BLOCK);
}

/* The first side with readiness that is not ready (fd_in for reading,
 * then fd_out for writing): its fd, with *events set; -1 when all are.
 * An error or hangup counts as ready: the splice will say what it is. */
static int splice_unready(const struct evq_op *op, unsigned *events)
{
	struct pollfd p[2];
	int n = 0, r;

	if (!(EVQ__SPL_IN(op->cflags) & EVQ__SPL_FILE))
		p[n++] = (struct pollfd){ op->u.splice.fd_in, POLLIN, 0 };
	if (!(EVQ__SPL_OUT(op->cflags) & EVQ__SPL_FILE))
		p[n++] = (struct pollfd){ op->fd, POLLOUT, 0 };
	do
		r = poll(p, (nfds_t)n, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;	/* let the call say what is wrong */
	for (int i = 0; i < n; i++) {
		if (p[i].revents == 0) {
			*events = p[i].events == POLLIN ? EVQ_READ : EVQ_WRITE;
			return p[i].fd;
		}
	}
	return -1;
}

static void splice_start(struct evq_loop *loop, struct evq_op *op);
static void splice_step(struct evq_loop *loop, struct evq_op *op);

static void splice_io_cb(struct evq_loop *loop, struct evq_io *w,
			 unsigned revents)
{
	struct evq_op *op = container_of(w, struct evq_op, wait.io);

	if (revents & EVQ__NVAL) {
		if (op->flags & EVQ__OPF_UNVERIFIED) {
			/* The registration taken over was another file's:
			 * start over on what the numbers name now. */
			op->flags &= (uint16_t)~EVQ__OPF_UNVERIFIED;
			splice_start(loop, op);
			return;
		}
		finish(loop, op, -EBADF);
		return;
	}
	op->flags &= (uint16_t)~EVQ__OPF_UNVERIFIED;
	evq__io_leave(w);	/* for whichever op waits on it next */
	splice_step(loop, op);
}

static void splice_wait(struct evq_loop *loop, struct evq_op *op, int fd,
			unsigned events)
{
	int r = evq__op_wait_io(loop, op, fd, events, splice_io_cb);

	if (r < 0)
		finish(loop, op, r);
}

/* One step: the call, or the wait for what it needs. */
static void splice_step(struct evq_loop *loop, struct evq_op *op)
{
	bool nonblock = op->u.splice.flags & SPLICE_F_NONBLOCK;
	loff_t oi = (loff_t)op->u.splice.off_in;
	loff_t oo = (loff_t)op->u.splice.off_out;
	unsigned events = 0;
	ssize_t r;
	int fd;

	if (splice_in_pool(op)) {
		/* The sides with readiness first, so that the thread does
		 * not wait for them (unless asked not to wait at all). */
		if (!nonblock && (fd = splice_unready(op, &events)) >= 0) {
			splice_wait(loop, op, fd, events);
			return;
		}
		r = evq__tpool_submit(loop, op);
		if (r < 0)
			finish(loop, op, (int)r);
		return;
	}
	r = splice(op->u.splice.fd_in, oi == -1 ? NULL : &oi, op->fd,
		   oo == -1 ? NULL : &oo, op->u.splice.len,
		   op->u.splice.flags | SPLICE_F_NONBLOCK);
	if (r >= 0) {
		finish(loop, op, r > 0x7fffffff ? 0x7fffffff : (int)r);
		return;
	}
	if (errno != EAGAIN || nonblock) {
		finish(loop, op, -errno);
		return;
	}
	/* Which side? Both ready by now (a race, or a pipe with room
	 * for less than a page): wait for fd_in, which costs one
	 * iteration when it is readable: at worst a try per iteration
	 * while that lasts, never a loop inside one. */
	fd = splice_unready(op, &events);
	if (fd < 0) {
		fd = op->u.splice.fd_in;
		events = EVQ_READ;
	}
	splice_wait(loop, op, fd, events);
}

static void splice_start(struct evq_loop *loop, struct evq_op *op)
{
	int in, out;

	if (op->u.splice.fd_in < 0 || op->fd < 0) {
		finish(loop, op, -EBADF);
		return;
	}
	if (op->u.splice.flags & ~(unsigned)SPL_FLAGS) {
		finish(loop, op, -EINVAL);
		return;
	}
	in = splice_kind(op->u.splice.fd_in);
	out = splice_kind(op->fd);
	if (in < 0 || out < 0) {
		finish(loop, op, in < 0 ? in : out);
		return;
	}
	if (!((in | out) & EVQ__SPL_PIPE)) {
		finish(loop, op, -EINVAL);	/* as splice(2) */
		return;
	}
	if (((in & EVQ__SPL_PIPE) && op->u.splice.off_in != (uint64_t)-1) ||
	    ((out & EVQ__SPL_PIPE) && op->u.splice.off_out != (uint64_t)-1)) {
		finish(loop, op, -ESPIPE);
		return;
	}
	op->cflags = (unsigned)in | (unsigned)out << 4;
	splice_step(loop, op);
}

/* ------------------------------------------------------------------------
 * send_zc: a plain send, then the notification (evq.h: no zero copy)
 * ------------------------------------------------------------------------ */

static void zc_start(struct evq_loop *loop, struct evq_op *op);

/* The send's result and, when there is room for both, the notification
 * right behind it: the buffer is the caller's again already. */
static void zc_done(struct evq_loop *loop, struct evq_op *op, int res)
{
	op->res = res;	/* for a chain, when the send is the last call */
	if (!evq__done_room(loop, 2)) {
		finish(loop, op, res);
		return;
	}
	op->state = EVQ__OP_DONE;
	op->cflags = 0;
	evq__report(loop, op, res, EVQ_OP_F_MORE);
	evq__report(loop, op, 0, EVQ_OP_F_NOTIF);
}

static void zc_io_cb(struct evq_loop *loop, struct evq_io *w,
		     unsigned revents);

static void zc_try(struct evq_loop *loop, struct evq_op *op)
{
	ssize_t r = send(op->fd, op->u.sr.buf, op->u.sr.len,
			 op->u.sr.flags | MSG_DONTWAIT | MSG_NOSIGNAL);

	if (r < 0 && errno == EAGAIN) {
		r = evq__op_wait_io(loop, op, op->fd, EVQ_WRITE, zc_io_cb);
		if (r < 0)
			finish(loop, op, (int)r);
		return;
	}
	zc_done(loop, op, r < 0 ? -errno : r > 0x7fffffff ? 0x7fffffff
							   : (int)r);
}

static void zc_io_cb(struct evq_loop *loop, struct evq_io *w,
		     unsigned revents)
{
	struct evq_op *op = container_of(w, struct evq_op, wait.io);

	if (revents & EVQ__NVAL) {
		if (op->flags & EVQ__OPF_UNVERIFIED) {
			op->flags &= (uint16_t)~EVQ__OPF_UNVERIFIED;
			zc_start(loop, op);
			return;
		}
		finish(loop, op, -EBADF);
		return;
	}
	op->flags &= (uint16_t)~EVQ__OPF_UNVERIFIED;
	evq__io_leave(w);
	zc_try(loop, op);
}

/* Only where io_uring could send without a copy (TCP and UDP: the
 * kernel's SOCK_SUPPORT_ZC), so that no backend takes what another
 * refuses: two getsockopt calls per op. */
static void zc_start(struct evq_loop *loop, struct evq_op *op)
{
	int domain = 0, proto = 0;
	socklen_t len = sizeof(int);

	if (op->fd < 0) {
		finish(loop, op, -EBADF);
		return;
	}
	if (getsockopt(op->fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
	    getsockopt(op->fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0) {
		finish(loop, op, -errno);
		return;
	}
	if ((domain != AF_INET && domain != AF_INET6) ||
	    (proto != IPPROTO_TCP && proto != IPPROTO_UDP)) {
		finish(loop, op, -EOPNOTSUPP);
		return;
	}
	zc_try(loop, op);
}

/* ------------------------------------------------------------------------
 * The interface
 * ------------------------------------------------------------------------ */

void evq__more_start(struct evq_loop *loop, struct evq_op *op)
{
	int r;

	switch (op->code) {
	case EVQ_OP_SPLICE:
		splice_start(loop, op);
		return;
	case EVQ_OP_SEND_ZC:
		zc_start(loop, op);
		return;
	case EVQ_OP_SHUTDOWN:
		/* Never blocks: it only changes the socket's state. */
		r = shutdown(op->fd, op->u.how);
		finish(loop, op, r < 0 ? -errno : 0);
		return;
	case EVQ_OP_SOCKET:
		if (op->u.sock.flags != 0) {	/* io_uring's: none yet */
			finish(loop, op, -EINVAL);
			return;
		}
		r = socket(op->u.sock.domain, op->u.sock.type,
			   op->u.sock.protocol);
		finish(loop, op, r < 0 ? -errno : r);
		return;
	case EVQ_OP_UNLINKAT:
	case EVQ_OP_RENAMEAT:
	case EVQ_OP_MKDIRAT:
		/* A NULL path: what the kernel says to io_uring (libc's
		 * wrappers may not be given one). */
		if (op->code == EVQ_OP_RENAMEAT
			    ? !op->u.ren.oldpath || !op->u.ren.newpath
			    : !op->u.open.path) {
			finish(loop, op, -EFAULT);
			return;
		}
		/* fall through */
	case EVQ_OP_FALLOCATE:
		/* File systems: they may wait for the disk. */
		r = evq__tpool_submit(loop, op);
		if (r < 0)
			finish(loop, op, r);
		return;
	default:
		finish(loop, op, -EINVAL);
		return;
	}
}
