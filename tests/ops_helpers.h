/* SPDX-License-Identifier: MIT */
/*
 * ops_helpers.h - what the completion-API tests (test_ops, test_multishot,
 * test_chain, test_ops_stress) share: an op wrapped with a record of its
 * completions, a bounded "run until" and small fd/file helpers.
 *
 * Header-only (static functions) so that tests/CMakeLists.txt builds each
 * test from its one .c file plus helpers.c, like every other test.
 *
 * struct t_op counts every callback of its op: `ncalls` the final ones
 * (no EVQ_OP_F_MORE), `nmore` the others. An op whose callback runs twice
 * without being resubmitted, or runs inside evq_op_submit(), fails the
 * case.
 */
#ifndef EVQ_TEST_OPS_HELPERS_H
#define EVQ_TEST_OPS_HELPERS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct t_op {
	struct evq_op op;
	int ncalls;		/* final calls (no EVQ_OP_F_MORE) */
	int nmore;		/* calls with EVQ_OP_F_MORE */
	int submits;		/* successful t_op_submit() calls */
	int res;		/* res of the last call */
	unsigned flags;		/* flags of the last call */
	int seq;		/* t_op_seq when the final call came */
	uint64_t at_ns;		/* when the final call came */
	/* optional hook, run after the record is updated */
	void (*hook)(struct evq_loop *loop, struct t_op *o, int res,
		     unsigned flags);
	void *arg;
};

/* Set while the tests are inside evq_op_submit(). */
static int t_in_submit __attribute__((unused));
/* Counts final calls of every t_op, in order. */
static int t_op_seq __attribute__((unused));

static void __attribute__((unused))
t_op_cb(struct evq_loop *loop, struct evq_op *op, int res, unsigned flags)
{
	struct t_op *o = op->data;

	if (!o || &o->op != op) {
		T_FAILF("op callback with a foreign op %p", (void *)op);
		return;
	}
	if (t_in_submit)
		T_FAILF("op callback ran inside evq_op_submit()");
	o->res = res;
	o->flags = flags;
	if (flags & EVQ_OP_F_MORE) {
		o->nmore++;
	} else {
		o->ncalls++;
		o->seq = ++t_op_seq;
		o->at_ns = t_now_ns();
		if (o->ncalls > o->submits)
			T_FAILF("op %p: %d final calls for %d submissions "
				"(res %d)", (void *)op, o->ncalls, o->submits,
				res);
	}
	if (o->hook)
		o->hook(loop, o, res, flags);
}

/* Zero the record (keeping hook/arg) and make op->data point at it. Use
 * only when the op is not in flight. */
static void __attribute__((unused)) t_op_init(struct t_op *o)
{
	void (*hook)(struct evq_loop *, struct t_op *, int, unsigned) =
		o->hook;
	void *arg = o->arg;

	memset(o, 0, sizeof(*o));
	o->op.data = o;
	o->hook = hook;
	o->arg = arg;
	o->res = 12345;	/* "no call yet" */
}

/* evq_op_submit() with t_op_cb, recording the submission. */
static int __attribute__((unused))
t_op_submit(struct evq_loop *loop, struct t_op *o, unsigned flags)
{
	int r;

	o->op.data = o;
	t_in_submit++;
	r = evq_op_submit(loop, &o->op, flags, t_op_cb);
	t_in_submit--;
	if (r == 0)
		o->submits++;
	return r;
}

/* Run EVQ_RUN_ONCE iterations until *counter >= target, for at most ms
 * (a guard timer stops the loop and fails the case). 0 or -ETIMEDOUT. */
static int __attribute__((unused))
t_run_until(struct evq_loop *loop, const int *counter, int target,
	    unsigned ms, const char *what)
{
	struct t_guard g;
	int r = 0;

	if (t_guard_start(loop, &g, ms, what) != 0)
		return -1;
	while (*counter < target && !g.fired) {
		r = evq_loop_run(loop, EVQ_RUN_ONCE);
		if (r < 0) {
			T_FAILF("evq_loop_run(ONCE) returned %d while waiting "
				"for: %s", r, what);
			break;
		}
	}
	t_guard_stop(&g);
	return *counter >= target && r >= 0 ? 0 : -ETIMEDOUT;
}

/* Run until the op's final call (counting resubmissions). */
static int __attribute__((unused))
t_op_wait(struct evq_loop *loop, struct t_op *o, unsigned ms)
{
	return t_run_until(loop, &o->ncalls, o->submits, ms,
			   "an op never completed");
}

static void __attribute__((unused))
t_keepalive_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
}

/* n EVQ_RUN_NOWAIT iterations (never block). A timer that never fires
 * keeps the loop active meanwhile, so that every iteration really polls
 * even when no op is in flight: a late or duplicate completion, or a
 * watcher that should be dead, would show up. */
static int __attribute__((unused)) t_run_nowait(struct evq_loop *loop, int n)
{
	struct evq_timer keep = { 0 };
	int r = evq_timer_start(loop, &keep, 3600000 * T_MS, 0,
				t_keepalive_cb);

	for (int i = 0; r == 0 && i < n; i++) {
		r = evq_loop_run(loop, EVQ_RUN_NOWAIT);
		r = r < 0 ? r : 0;
	}
	evq_timer_stop(&keep);
	return r;
}

/* ------------------------------------------------------------------------
 * fds and files
 * ------------------------------------------------------------------------ */

/* An AF_UNIX stream pair, blocking or not. 0 or -1 (case failed). */
static int __attribute__((unused)) t_sockpair_mode(int fds[2], bool nonblock)
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
			       (nonblock ? SOCK_NONBLOCK : 0), 0, fds) != 0) {
		T_FAILF("socketpair: %s", strerror(errno));
		fds[0] = fds[1] = -1;
		return -1;
	}
	return 0;
}

static int __attribute__((unused)) t_pipe_mode(int fds[2], bool nonblock)
{
	if (pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)) != 0) {
		T_FAILF("pipe2: %s", strerror(errno));
		fds[0] = fds[1] = -1;
		return -1;
	}
	return 0;
}

/* Is fd open? (fcntl, no side effect) */
static bool __attribute__((unused)) t_fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

/* Fill a socket's send side (MSG_DONTWAIT: the fd's flags stay). */
static ssize_t __attribute__((unused)) t_sock_fill(int fd)
{
	static const char buf[65536];
	ssize_t r, total = 0;

	for (;;) {
		r = send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			total += r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		while (send(fd, buf, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
			total++;
		return total;
	}
}

/* Read what is queued on a socket (MSG_DONTWAIT). */
static ssize_t __attribute__((unused)) t_sock_drain(int fd)
{
	char buf[65536];
	ssize_t r, total = 0;

	for (;;) {
		r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r > 0) {
			total += r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		return total;
	}
}

/* Set or clear O_NONBLOCK; returns the old flags, or -1. */
static int __attribute__((unused)) t_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	if (fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
		return -1;
	return fl;
}

/* A private temporary directory ($TMPDIR or /tmp); "" on failure. */
static void __attribute__((unused)) t_tmpdir(char *buf, size_t len)
{
	const char *base = getenv("TMPDIR");

	if (!base || !*base)
		base = "/tmp";
	snprintf(buf, len, "%s/evq-test-XXXXXX", base);
	if (!mkdtemp(buf)) {
		T_FAILF("mkdtemp(%s): %s", buf, strerror(errno));
		buf[0] = 0;
	}
}

/* Create dir/name holding len bytes of data; 0 or -1. */
static int __attribute__((unused))
t_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0) {
		T_FAILF("open(%s): %s", path, strerror(errno));
		return -1;
	}
	while (off < len) {
		ssize_t r = write(fd, (const char *)data + off, len - off);

		if (r <= 0) {
			T_FAILF("write(%s): %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)r;
	}
	close(fd);
	return 0;
}

/* Fill buf with the PRNG's bytes. */
static void __attribute__((unused)) t_rand_fill(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len >= 8) {
		uint64_t x = t_rand();

		memcpy(p, &x, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t x = t_rand();

		memcpy(p, &x, len);
	}
}

/* Is this one of the backends that emulate ops (readiness plus the
 * loop's thread pool, as evq.h describes)? */
static bool __attribute__((unused)) t_backend_emulates(struct evq_loop *loop)
{
	enum evq_backend b = evq_loop_backend(loop);

	return b == EVQ_BACKEND_EPOLL || b == EVQ_BACKEND_POLL;
}

#endif /* EVQ_TEST_OPS_HELPERS_H */
