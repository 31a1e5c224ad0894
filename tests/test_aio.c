/* SPDX-License-Identifier: MIT */
/*
 * test_aio.c - the Linux AIO backend's own behaviour, through its hidden
 * counters (src/backend_aio.h): completions reaped from the mapped ring
 * without a syscall, io_getevents only to block, the syscall fallback when
 * the ring is not used, partial io_submit and context growth, running out
 * of AIO capacity, the epoll fallback for fds IOCB_CMD_POLL refuses, and
 * close() of an fd with a pending poll; and the ops it runs itself
 * (note j): O_DIRECT transfers and fsync through IOCB_CMD_*, what goes to
 * the core's emulation instead, chains, cancel, loop teardown with ops in
 * flight, and ops beyond the context's capacity. Registered for the aio
 * backend only (EVQ_BACKEND=aio).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ops_helpers.h"

#include "backend_aio.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

struct tw {
	struct evq_io io;
	int count;
	unsigned last;
	int consume;	/* read one byte per call */
	int fd;
};

static void tw_cb(struct evq_loop *loop, struct evq_io *w, unsigned revents)
{
	struct tw *t = w->data;
	char c;

	(void)loop;
	t->count++;
	t->last = revents;
	if (t->consume)
		(void)read(t->fd, &c, 1);
}

static int tw_start(struct evq_loop *loop, struct tw *t, int fd,
		    unsigned events)
{
	memset(t, 0, sizeof(*t));
	t->io.data = t;
	t->fd = fd;
	return evq_io_start(loop, &t->io, fd, events, tw_cb);
}

static struct evq__aio_stats stats(struct evq_loop *loop)
{
	struct evq__aio_stats s;

	memset(&s, 0, sizeof(s));
	EXPECT_OK(evq__aio_stats(loop, &s));
	return s;
}

/* Wait up to ms for the peer to see EOF: read() == 0. */
static bool peer_sees_eof(int fd, unsigned ms)
{
	uint64_t end = t_now_ns() + ms * T_MS;
	char c;

	do {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		(void)poll(&p, 1, 50);
		if (read(fd, &c, 1) == 0)
			return true;
	} while (t_now_ns() < end);
	return false;
}

/* ------------------------------------------------------------------------
 * Reaping
 * ------------------------------------------------------------------------ */

/* Data always there: every NOWAIT iteration re-arms the poll, which
 * completes inside io_submit, and the same wait finds it in the ring. One
 * syscall per iteration, never io_getevents. */
static int ring_reaps_without_syscalls(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s1;
	struct tw r;
	int fds[2], i;

	ASSERT_NOTNULL(loop);
	ASSERT_TRUE(stats(loop).ring);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(t_write_byte(fds[1]));
	ASSERT_OK(tw_start(loop, &r, fds[0], EVQ_READ));
	s0 = stats(loop);
	T_STEP("1000 NOWAIT iterations, always readable");
	for (i = 0; i < 1000; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	s1 = stats(loop);
	ASSERT_EQ(r.count, 1000);
	ASSERT_EQ(s1.getevents_calls - s0.getevents_calls, 0);
	ASSERT_EQ(s1.submit_calls - s0.submit_calls, 1000);
	ASSERT_GE(s1.ring_reaps - s0.ring_reaps, 1000);
	ASSERT_OK(evq_io_stop(&r.io));
	t_close2(fds);
	t_loop_free(loop);
	return T_PASS;
}

/* Two watchers bounce a byte between two pipes, one ONCE iteration per
 * event: the write in one callback completes the other's armed poll
 * inside write(), so the next wait finds it in the ring and needs only
 * the io_submit of the re-arm. */
struct bounce {
	struct evq_io io;
	int rfd, wfd;
	int count;
};

static void bounce_cb(struct evq_loop *loop, struct evq_io *w,
		      unsigned revents)
{
	struct bounce *b = w->data;
	char c;

	(void)loop;
	(void)revents;
	b->count++;
	EXPECT_EQ(read(b->rfd, &c, 1), 1);
	EXPECT_EQ(write(b->wfd, &c, 1), 1);
}

static int ping_pong_once(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s1;
	struct bounce a = { 0 }, b = { 0 };
	int p1[2], p2[2], i;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p1));
	ASSERT_OK(t_pipe(p2));
	a.io.data = &a;
	a.rfd = p1[0];
	a.wfd = p2[1];
	b.io.data = &b;
	b.rfd = p2[0];
	b.wfd = p1[1];
	ASSERT_OK(evq_io_start(loop, &a.io, a.rfd, EVQ_READ, bounce_cb));
	ASSERT_OK(evq_io_start(loop, &b.io, b.rfd, EVQ_READ, bounce_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);	/* armed */
	ASSERT_OK(t_write_byte(p1[1]));
	s0 = stats(loop);
	T_STEP("2000 ONCE iterations of ping-pong");
	for (i = 0; i < 2000; i++)
		ASSERT_EQ(t_run_once(loop, 5000), 1);
	s1 = stats(loop);
	ASSERT_EQ(a.count + b.count, 2000);
	ASSERT_EQ(a.count, 1000);
	t_note("per event: %.3f io_submit, %.3f io_getevents, %.3f ring reaps",
	       (double)(s1.submit_calls - s0.submit_calls) / 2000,
	       (double)(s1.getevents_calls - s0.getevents_calls) / 2000,
	       (double)(s1.ring_reaps - s0.ring_reaps) / 2000);
	ASSERT_LE(s1.submit_calls - s0.submit_calls, 2000);
	ASSERT_LE(s1.getevents_calls - s0.getevents_calls, 2);
	ASSERT_GE(s1.ring_reaps - s0.ring_reaps, 2000);
	ASSERT_OK(evq_io_stop(&a.io));
	ASSERT_OK(evq_io_stop(&b.io));
	t_close2(p1);
	t_close2(p2);
	t_loop_free(loop);
	return T_PASS;
}

/* Nothing ready: the loop blocks in io_getevents, once, for the timer's
 * whole timeout. */
static int count_timer_runs;

static void count_timer_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
	count_timer_runs++;
}

static int blocking_calls_io_getevents(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s1;
	struct evq_timer t = { 0 };
	struct tw r;
	int fds[2];
	uint64_t t0, dt;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(tw_start(loop, &r, fds[0], EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	count_timer_runs = 0;
	t0 = t_now_ns();	/* before the timer: it counts from its start */
	ASSERT_OK(evq_timer_start(loop, &t, 20 * T_MS, 0, count_timer_cb));
	s0 = stats(loop);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_ONCE), 1);
	dt = t_now_ns() - t0;
	s1 = stats(loop);
	ASSERT_EQ(count_timer_runs, 1);
	ASSERT_GE(dt, 20 * T_MS);
	ASSERT_EQ(s1.getevents_calls - s0.getevents_calls, 1);
	ASSERT_EQ(r.count, 0);
	ASSERT_OK(evq_io_stop(&r.io));
	t_close2(fds);
	t_loop_free(loop);
	return T_PASS;
}

/* The same readiness with the ring ignored: io_getevents does the
 * reaping, non-blocking when the loop must not block. */
static int no_ring_fallback(void)
{
	struct evq_loop *loop;
	struct evq__aio_stats s;
	struct tw r;
	int fds[2], i;

	evq__aio_test_params(0, 0, true);
	loop = t_loop_new();
	evq__aio_test_params(0, 0, false);
	ASSERT_NOTNULL(loop);
	s = stats(loop);
	ASSERT_EQ(s.ring, false);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(tw_start(loop, &r, fds[0], EVQ_READ));
	T_STEP("empty: nothing");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 0);
	T_STEP("level-triggered, 10 iterations");
	ASSERT_OK(t_write_byte(fds[1]));
	for (i = 1; i <= 10; i++) {
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(r.count, i);
	}
	T_STEP("consumed, then a blocking wait woken by a write");
	ASSERT_EQ(t_drain(fds[0]), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 10);
	ASSERT_OK(t_write_byte(fds[1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(r.count, 11);
	s = stats(loop);
	ASSERT_EQ(s.ring_reaps, 0);
	ASSERT_GE(s.getevents_calls, 13);
	ASSERT_OK(evq_io_stop(&r.io));
	t_close2(fds);
	t_loop_free(loop);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Capacity
 * ------------------------------------------------------------------------ */

#define NPIPES 300

struct many {
	struct tw w[NPIPES];
	int p[NPIPES][2];
};

/* NPIPES readable pipes watched; every watcher runs once per iteration
 * (the loops are made with room for all of them in one wait). */
static int many_round(struct evq_loop *loop, struct many *m,
		      enum evq_run_mode mode, int expect)
{
	int k;

	for (k = 0; k < NPIPES; k++)
		m->w[k].count = 0;
	ASSERT_EQ(evq_loop_run(loop, mode), 1);
	for (k = 0; k < NPIPES; k++) {
		if (m->w[k].count != expect) {
			T_STEP("watcher %d (fd %d)", k, m->w[k].fd);
			ASSERT_EQ(m->w[k].count, expect);
		}
	}
	return T_PASS;
}

static int many_open(struct evq_loop *loop, struct many *m)
{
	int k;

	for (k = 0; k < NPIPES; k++)
		m->p[k][0] = m->p[k][1] = -1;
	for (k = 0; k < NPIPES; k++) {
		ASSERT_OK(t_pipe(m->p[k]));
		ASSERT_OK(t_write_byte(m->p[k][1]));
		ASSERT_OK(tw_start(loop, &m->w[k], m->p[k][0], EVQ_READ));
	}
	return T_PASS;
}

static void many_close(struct many *m)
{
	for (int k = 0; k < NPIPES; k++) {
		evq_io_stop(&m->w[k].io);
		t_close2(m->p[k]);
	}
}

/* A context made for one request (a ring of 127 on most machines) and
 * 300 polls: io_submit accepts part of them, then says EAGAIN; the loop
 * grows its context and re-arms everything, and no report is lost. */
static int partial_submit_grows_context(void)
{
	struct evq_loop_options opts = { .max_events = 2 * NPIPES };
	struct evq_loop *loop;
	struct many *m = calloc(1, sizeof(*m));
	struct evq__aio_stats s;
	int r = T_FAIL;

	ASSERT_NOTNULL(m);
	if (t_raise_nofile(2 * NPIPES + 64) < 2 * NPIPES + 64) {
		free(m);
		return t_skip("RLIMIT_NOFILE too low");
	}
	evq__aio_test_params(1, 0, false);
	loop = t_loop_new_opts(&opts);
	evq__aio_test_params(0, 0, false);
	ASSERT_NOTNULL(loop);
	ASSERT_EQ(stats(loop).nr_events, 1);
	if (many_open(loop, m) != T_PASS)
		goto out;
	T_STEP("first iteration: all %d ready", NPIPES);
	if (many_round(loop, m, EVQ_RUN_NOWAIT, 1) != T_PASS)
		goto out;
	s = stats(loop);
	t_note("io_submit calls %llu, partial %llu, grows %llu, nr_events %u",
	       (unsigned long long)s.submit_calls,
	       (unsigned long long)s.partial_submits,
	       (unsigned long long)s.grows, s.nr_events);
	EXPECT_GE(s.partial_submits, 1);
	EXPECT_GE(s.grows, 1);
	EXPECT_GT(s.nr_events, 1);
	EXPECT_EQ(s.fallback_fds, 0);
	EXPECT_EQ(s.degraded, false);
	T_STEP("level-triggered: all again, twice");
	if (many_round(loop, m, EVQ_RUN_NOWAIT, 1) != T_PASS ||
	    many_round(loop, m, EVQ_RUN_NOWAIT, 1) != T_PASS)
		goto out;
	T_STEP("drained: none");
	for (int k = 0; k < NPIPES; k++)
		EXPECT_EQ(t_drain(m->p[k][0]), 1);
	if (many_round(loop, m, EVQ_RUN_NOWAIT, 0) != T_PASS)
		goto out;
	T_STEP("one written: that one, through a blocking wait");
	ASSERT_OK(t_write_byte(m->p[123][1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(m->w[123].count, 1);
	r = t_failed ? T_FAIL : T_PASS;
out:
	many_close(m);
	free(m);
	t_loop_free(loop);
	return r;
}

/* Growth refused (as when fs.aio-max-nr is used up): every fd moves to
 * the epoll fallback, and the loop goes on working. */
static int capacity_exhausted_degrades(void)
{
	struct evq_loop_options opts = { .max_events = 2 * NPIPES };
	struct evq_loop *loop;
	struct many *m = calloc(1, sizeof(*m));
	struct evq__aio_stats s;
	struct tw late;
	int fds[2] = { -1, -1 };
	int r = T_FAIL;

	ASSERT_NOTNULL(m);
	if (t_raise_nofile(2 * NPIPES + 64) < 2 * NPIPES + 64) {
		free(m);
		return t_skip("RLIMIT_NOFILE too low");
	}
	evq__aio_test_params(1, 1, false);
	loop = t_loop_new_opts(&opts);
	evq__aio_test_params(0, 0, false);
	ASSERT_NOTNULL(loop);
	if (many_open(loop, m) != T_PASS)
		goto out;
	T_STEP("first iteration: all %d ready", NPIPES);
	if (many_round(loop, m, EVQ_RUN_NOWAIT, 1) != T_PASS)
		goto out;
	s = stats(loop);
	EXPECT_EQ(s.degraded, true);
	EXPECT_EQ(s.fallback_fds, NPIPES);
	T_STEP("level-triggered through epoll");
	if (many_round(loop, m, EVQ_RUN_NOWAIT, 1) != T_PASS)
		goto out;
	for (int k = 0; k < NPIPES; k++)
		EXPECT_EQ(t_drain(m->p[k][0]), 1);
	if (many_round(loop, m, EVQ_RUN_NOWAIT, 0) != T_PASS)
		goto out;
	T_STEP("a watcher started now goes to epoll too");
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(tw_start(loop, &late, fds[0], EVQ_READ));
	EXPECT_EQ(stats(loop).fallback_fds, NPIPES + 1);
	ASSERT_OK(t_write_byte(fds[1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(late.count, 1);
	ASSERT_OK(evq_io_stop(&late.io));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);	/* applied */
	EXPECT_EQ(stats(loop).fallback_fds, NPIPES);
	r = t_failed ? T_FAIL : T_PASS;
out:
	t_close2(fds);
	many_close(m);
	free(m);
	t_loop_free(loop);
	return r;
}

/* ------------------------------------------------------------------------
 * The epoll fallback for fds IOCB_CMD_POLL refuses
 * ------------------------------------------------------------------------ */

/* A pty master polls two wait queues: IOCB_CMD_POLL says EINVAL while it
 * is not ready. */
static int pty_goes_to_epoll(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw r;
	int m, s;
	char c = 'x';

	ASSERT_NOTNULL(loop);
	m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (m < 0) {
		t_loop_free(loop);
		return t_skip("no pty: %s", strerror(errno));
	}
	ASSERT_OK(grantpt(m));
	ASSERT_OK(unlockpt(m));
	s = open(ptsname(m), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	ASSERT_GE(s, 0);
	ASSERT_OK(tw_start(loop, &r, m, EVQ_READ));
	r.consume = 1;
	T_STEP("idle: nothing, and the fd is on epoll");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 0);
	ASSERT_EQ(stats(loop).fallback_fds, 1);
	T_STEP("the slave writes: the master's watcher runs");
	ASSERT_EQ(write(s, &c, 1), 1);
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(r.count, 1);
	ASSERT_EQ(r.last, EVQ_READ);
	T_STEP("consumed: quiet again");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 1);
	T_STEP("stop: off epoll");
	ASSERT_OK(evq_io_stop(&r.io));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(stats(loop).fallback_fds, 0);
	close(s);
	close(m);
	t_loop_free(loop);
	return T_PASS;
}

/* A FIFO opened O_RDWR polls both its queues too. */
static int fifo_rdwr_goes_to_epoll(void)
{
	struct evq_loop *loop = t_loop_new();
	char path[64];
	struct tw r;
	int fd;

	ASSERT_NOTNULL(loop);
	snprintf(path, sizeof(path), "/tmp/evq-test-aio-fifo.%d", (int)getpid());
	(void)unlink(path);
	ASSERT_OK(mkfifo(path, 0600));
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	(void)unlink(path);
	ASSERT_GE(fd, 0);
	ASSERT_OK(tw_start(loop, &r, fd, EVQ_READ));
	r.consume = 1;
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 0);
	ASSERT_EQ(stats(loop).fallback_fds, 1);
	ASSERT_OK(t_write_byte(fd));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(r.count, 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 1);
	ASSERT_OK(evq_io_stop(&r.io));
	close(fd);
	t_loop_free(loop);
	return T_PASS;
}

/* A regular file has no poll method: always ready, natively. */
static int regular_file_always_ready(void)
{
	struct evq_loop *loop = t_loop_new();
	char path[64];
	struct tw r;
	int fd, i;

	ASSERT_NOTNULL(loop);
	snprintf(path, sizeof(path), "/tmp/evq-test-aio-file.%d", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	(void)unlink(path);
	ASSERT_GE(fd, 0);
	ASSERT_OK(tw_start(loop, &r, fd, EVQ_READ | EVQ_WRITE));
	for (i = 1; i <= 3; i++) {
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(r.count, i);
		ASSERT_EQ(r.last, EVQ_READ | EVQ_WRITE);
	}
	ASSERT_EQ(stats(loop).fallback_fds, 0);
	ASSERT_OK(evq_io_stop(&r.io));
	close(fd);
	t_loop_free(loop);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * close() with a pending poll (note g of src/backend_aio.c)
 * ------------------------------------------------------------------------ */

/* The pending poll keeps the closed file open: the peer sees no EOF.
 * Stopping the watcher cancels the poll, and the file goes. */
static int close_then_stop_releases_file(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0;
	struct pollfd p;
	struct tw r;
	int sv[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(tw_start(loop, &r, sv[0], EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);	/* armed */
	T_STEP("plain close(): the kernel keeps the file for the poll");
	t_close(sv[0]);
	p = (struct pollfd){ .fd = sv[1], .events = POLLIN };
	ASSERT_EQ(poll(&p, 1, 50), 0);
	T_STEP("stop: io_cancel, the peer sees EOF");
	s0 = stats(loop);
	ASSERT_OK(evq_io_stop(&r.io));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(stats(loop).cancels - s0.cancels, 1);
	ASSERT_TRUE(peer_sees_eof(sv[1], 2000));
	ASSERT_EQ(r.count, 0);
	t_close(sv[1]);
	t_loop_free(loop);
	return T_PASS;
}

/* A watcher stopped (and the stop applied by an iteration) before its fd
 * is closed: the cancelled poll has let go of the file, so the close()
 * frees it at once, as with epoll. */
static int stop_then_close_frees_at_once(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw r, w;
	int sv[2];
	char c;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(tw_start(loop, &r, sv[0], EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);	/* armed */
	T_STEP("stop; an iteration applies it");
	ASSERT_OK(evq_io_stop(&r.io));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	T_STEP("close: EOF for the peer without waiting");
	t_close(sv[0]);
	ASSERT_EQ(recv(sv[1], &c, 1, MSG_DONTWAIT), 0);
	t_close(sv[1]);

	T_STEP("the same after a widening cancelled an earlier poll");
	ASSERT_OK(t_socketpair(sv));
	ASSERT_GT(t_fill(sv[0]), 0);	/* not writable */
	ASSERT_OK(tw_start(loop, &r, sv[0], EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);	/* armed */
	ASSERT_OK(tw_start(loop, &w, sv[0], EVQ_WRITE));	/* widens */
	ASSERT_OK(evq_io_stop(&r.io));
	ASSERT_OK(evq_io_stop(&w.io));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	t_close(sv[0]);
	ASSERT_GT(t_drain(sv[1]), 0);
	ASSERT_EQ(recv(sv[1], &c, 1, MSG_DONTWAIT), 0);
	t_close(sv[1]);
	t_loop_free(loop);
	return T_PASS;
}

/* The number is reused and a watcher starts on it: the old file is told
 * apart, its watcher stopped, its poll cancelled (the old peer sees EOF),
 * and only the new watcher runs. */
static int close_reuse_joining_watcher(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw old, new;
	int sv[2], nv[2], num;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(t_socketpair(nv));
	ASSERT_OK(tw_start(loop, &old, sv[0], EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);	/* armed */
	T_STEP("close, and reuse the number for another socket");
	num = sv[0];
	t_close(sv[0]);
	ASSERT_EQ(dup2(nv[0], num), num);
	t_close(nv[0]);
	nv[0] = num;
	T_STEP("a watcher starts on the number");
	ASSERT_OK(tw_start(loop, &new, num, EVQ_READ));
	ASSERT_EQ(evq_io_is_active(&old.io), 0);
	ASSERT_EQ(evq_io_is_active(&new.io), 1);
	ASSERT_EQ(evq_loop_active(loop), 1);
	T_STEP("the old file was released: its peer sees EOF");
	ASSERT_TRUE(peer_sees_eof(sv[1], 2000));
	T_STEP("the new file's data runs the new watcher only");
	ASSERT_OK(t_write_byte(nv[1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(new.count, 1);
	ASSERT_EQ(old.count, 0);
	ASSERT_OK(evq_io_stop(&new.io));
	t_close(sv[1]);
	t_close2(nv);
	t_loop_free(loop);
	return T_PASS;
}

/* The closed file (kept open by the poll) becomes ready before evq
 * notices: the pending poll's completion is reported to the watcher, once
 * (evq.h, close-safety: no per-report check); the re-arm that follows
 * fails with EBADF in the next io_submit(), which ends the watch, and the
 * file is released. */
static int close_then_event_reported_once_then_watch_ends(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw r;
	int sv[2];
	char c = 'x';

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(tw_start(loop, &r, sv[0], EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);	/* armed */
	t_close(sv[0]);
	T_STEP("the peer can still write: the file is alive");
	ASSERT_EQ(write(sv[1], &c, 1), 1);
	T_STEP("one iteration: the held file's event, once");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 1);
	T_STEP("the next: the re-arm finds the number closed, no callback");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(evq_io_is_active(&r.io), 0);
	ASSERT_EQ(r.count, 1);
	T_STEP("the file was released: EOF for the peer");
	ASSERT_TRUE(peer_sees_eof(sv[1], 2000));
	t_close(sv[1]);
	t_loop_free(loop);
	return T_PASS;
}

/* The number is reused before the re-arm, by a file no watcher starts
 * on: the re-arm polls the new file and its reports reach the old
 * watcher (poll's limit too, evq.h), until the check made once per
 * EVQ_IO_STALE_LIMIT reports of the fd ends the watch; then the new
 * file is not held. */
static int close_reuse_rearm_checked_within_stale_limit(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw r;
	int sv[2], nv[2], num, i;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(t_write_byte(sv[1]));
	ASSERT_OK(tw_start(loop, &r, sv[0], EVQ_READ));
	T_STEP("a report; the poll is now to be re-armed");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 1);
	T_STEP("close and reuse the number for a readable socket");
	ASSERT_OK(t_socketpair(nv));
	num = sv[0];
	t_close(sv[0]);
	ASSERT_EQ(dup2(nv[0], num), num);
	t_close(nv[0]);
	nv[0] = num;
	ASSERT_OK(t_write_byte(nv[1]));
	for (i = 0; evq_io_is_active(&r.io) && i < 4 * EVQ_IO_STALE_LIMIT;
	     i++)
		(void)evq_loop_run(loop, EVQ_RUN_NOWAIT);
	t_note("ended after %d runs, %d callbacks", i, r.count);
	ASSERT_EQ(evq_io_is_active(&r.io), 0);
	ASSERT_LE(r.count, 1 + EVQ_IO_STALE_LIMIT);
	T_STEP("the new file is not held: its peer sees EOF after close");
	t_close(nv[0]);
	ASSERT_TRUE(peer_sees_eof(nv[1], 2000));
	t_close(nv[1]);
	t_close(sv[1]);
	t_loop_free(loop);
	return T_PASS;
}

/* A transfer in the batch whose number was closed behind the loop's back
 * (known as a pipe, so no fstat() asks): io_submit() takes the iocbs
 * before it and stops there; the next call says EBADF for it alone,
 * which its op gets, as write(2) would say, and the rest of the batch
 * goes in after it. */
static int closed_fd_transfer_in_mid_batch_fails_alone(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s1;
	struct t_op o[3];
	int p[3][2];
	char c;

	ASSERT_NOTNULL(loop);
	memset(o, 0, sizeof(o));	/* t_op_init keeps hook and arg */
	for (int i = 0; i < 3; i++)
		ASSERT_OK(t_pipe(p[i]));
	T_STEP("a first write on each: the loop knows them as pipes");
	for (int i = 0; i < 3; i++) {
		t_op_init(&o[i]);
		evq_prep_write(&o[i].op, p[i][1], "x", 1, EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &o[i], 0));
		ASSERT_OK(t_op_wait(loop, &o[i], 2000));
		ASSERT_EQ(o[i].res, 1);
		ASSERT_EQ(read(p[i][0], &c, 1), 1);
	}
	T_STEP("the middle fd closed behind the loop's back, three writes");
	t_close(p[1][1]);
	s0 = stats(loop);
	for (int i = 0; i < 3; i++) {
		t_op_init(&o[i]);
		evq_prep_write(&o[i].op, p[i][1], "x", 1, EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &o[i], 0));
	}
	T_STEP("the middle one fails with EBADF, the others write");
	for (int i = 0; i < 3; i++)
		ASSERT_OK(t_op_wait(loop, &o[i], 2000));
	s1 = stats(loop);
	ASSERT_EQ(o[0].res, 1);
	ASSERT_ERR(o[1].res, -EBADF);
	ASSERT_EQ(o[2].res, 1);
	ASSERT_EQ(s1.xfer_write - s0.xfer_write, 2);
	ASSERT_EQ(s1.op_refused - s0.op_refused, 1);
	t_note("io_submit calls %llu, partial %llu",
	       (unsigned long long)(s1.submit_calls - s0.submit_calls),
	       (unsigned long long)(s1.partial_submits - s0.partial_submits));
	ASSERT_EQ(s1.submit_calls - s0.submit_calls, 3);
	ASSERT_EQ(s1.partial_submits - s0.partial_submits, 1);
	ASSERT_EQ(read(p[0][0], &c, 1), 1);
	ASSERT_EQ(read(p[2][0], &c, 1), 1);
	for (int i = 0; i < 3; i++) {
		t_close(p[i][0]);
		if (i != 1)
			t_close(p[i][1]);
	}
	t_loop_free(loop);
	return T_PASS;
}

/* The re-arm of a closed number in the middle of a batch: io_submit()
 * takes the iocbs before it and stops; the next call, starting there,
 * says EBADF for it alone (the watch ends, no callback), and the rest of
 * the batch goes in after it: the watchers around it lose nothing. */
static int closed_fd_in_mid_batch_ends_only_its_watch(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s1;
	struct tw w[3];
	int p[3][2], i;

	ASSERT_NOTNULL(loop);
	for (i = 0; i < 3; i++) {
		ASSERT_OK(t_pipe(p[i]));
		ASSERT_OK(t_write_byte(p[i][1]));
		ASSERT_OK(tw_start(loop, &w[i], p[i][0], EVQ_READ));
	}
	T_STEP("three reports; three re-arms queued, in this order");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(w[i].count, 1);
	T_STEP("plain close() of the middle one's fd");
	t_close(p[1][0]);
	s0 = stats(loop);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	s1 = stats(loop);
	t_note("io_submit calls %llu, partial %llu",
	       (unsigned long long)(s1.submit_calls - s0.submit_calls),
	       (unsigned long long)(s1.partial_submits - s0.partial_submits));
	ASSERT_GE(s1.partial_submits - s0.partial_submits, 1);
	ASSERT_EQ(w[0].count, 2);
	ASSERT_EQ(w[1].count, 1);
	ASSERT_EQ(w[2].count, 2);
	ASSERT_EQ(evq_io_is_active(&w[1].io), 0);
	ASSERT_EQ(evq_loop_active(loop), 2);
	T_STEP("the others go on, one io_submit per iteration again");
	s0 = stats(loop);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	s1 = stats(loop);
	ASSERT_EQ(w[0].count, 5);
	ASSERT_EQ(w[2].count, 5);
	ASSERT_EQ(s1.submit_calls - s0.submit_calls, 3);
	ASSERT_EQ(s1.checks - s0.checks, 0);
	for (i = 0; i < 3; i++)
		if (i != 1)
			ASSERT_OK(evq_io_stop(&w[i].io));
	t_close2(p[0]);
	t_close2(p[2]);
	t_close(p[1][1]);
	t_loop_free(loop);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Emulated ops' transfers in the batch (note k)
 * ------------------------------------------------------------------------ */

#define NCONN 16

/* Sixteen sockets with a multishot pool recv each, all made readable
 * at once: one wait reports their polls, and the next io_submit() carries
 * the sixteen reads (IOCB_CMD_PREAD), whose results come with the MORE
 * flag and a pool buffer holding the bytes, as on every backend. */
static int one_io_submit_carries_the_reads_of_all_ready_connections(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s1;
	struct t_op o[NCONN] = { 0 };
	struct evq_pool *pool;
	int sv[NCONN][2], i, runs;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(evq_pool_new(loop, &pool, 2 * NCONN, 64));
	for (i = 0; i < NCONN; i++) {
		ASSERT_OK(t_socketpair(sv[i]));
		t_op_init(&o[i]);
		evq_prep_recv_pool(&o[i].op, sv[i][0], pool, 0);
		ASSERT_OK(t_op_submit(loop, &o[i], EVQ_OP_MULTISHOT));
	}
	T_STEP("the recvs find nothing and wait");
	ASSERT_OK(t_run_nowait(loop, 3));
	for (i = 0; i < NCONN; i++)
		ASSERT_EQ(o[i].nmore + o[i].ncalls, 0);
	T_STEP("all peers write; the polls report, the reads are queued");
	for (i = 0; i < NCONN; i++)
		ASSERT_EQ(write(sv[i][1], "ab", 2), 2);
	s0 = stats(loop);
	for (runs = 0; runs < 10; runs++) {
		int got = 0;

		ASSERT_GE(t_run_once(loop, 2000), 0);
		for (i = 0; i < NCONN; i++)
			got += o[i].nmore;
		if (got == NCONN)
			break;
	}
	s1 = stats(loop);
	t_note("%d runs, %llu io_submit calls, %llu PREADs",
	       runs + 1,
	       (unsigned long long)(s1.submit_calls - s0.submit_calls),
	       (unsigned long long)(s1.xfer_read - s0.xfer_read));
	ASSERT_EQ(s1.xfer_read - s0.xfer_read, NCONN);
	ASSERT_LE(s1.submit_calls - s0.submit_calls, 2);
	ASSERT_EQ(s1.getevents_calls - s0.getevents_calls, 0);
	for (i = 0; i < NCONN; i++) {
		unsigned id = EVQ_OP_BUFID(o[i].flags);

		ASSERT_EQ(o[i].nmore, 1);
		ASSERT_EQ(o[i].res, 2);
		ASSERT_TRUE(o[i].flags & EVQ_OP_F_MORE);
		ASSERT_TRUE(o[i].flags & EVQ_OP_F_BUFFER);
		ASSERT_EQ(memcmp(evq_pool_buf(pool, id), "ab", 2), 0);
		ASSERT_OK(evq_pool_release(pool, id));
	}
	T_STEP("EOF ends each one, buffers all back");
	for (i = 0; i < NCONN; i++)
		t_close(sv[i][1]);
	for (i = 0; i < NCONN; i++) {
		ASSERT_OK(t_op_wait(loop, &o[i], 2000));
		ASSERT_EQ(o[i].res, 0);
		ASSERT_EQ(o[i].ncalls, 1);
	}
	ASSERT_EQ(evq_pool_available(pool), 2 * NCONN);
	for (i = 0; i < NCONN; i++)
		t_close(sv[i][0]);
	ASSERT_OK(evq_pool_free(pool));
	t_loop_free(loop);
	return T_PASS;
}

/* In a child: one batched send to a socket whose peer is gone, with
 * SIGPIPE's default action set before (at_new) or after the loop was made
 * and a first send batch had run with SIGPIPE ignored. Exit 0: the op
 * said -EPIPE and the child lived; a SIGPIPE kills it. */
static void send_epipe_child(bool at_new)
{
	struct evq__aio_stats st = { 0 };
	struct evq_loop *loop;
	struct t_op snd = { 0 };
	int a[2];

	signal(SIGPIPE, at_new ? SIG_DFL : SIG_IGN);
	loop = t_loop_new();
	if (!loop || t_socketpair(a) < 0)
		_exit(10);
	t_close(a[1]);
	if (!at_new) {	/* a batch with a send while it is ignored */
		t_op_init(&snd);
		evq_prep_send(&snd.op, a[0], "x", 1, 0);
		if (t_op_submit(loop, &snd, 0) < 0 ||
		    t_op_wait(loop, &snd, 2000) < 0 || snd.res != -EPIPE)
			_exit(11);
		signal(SIGPIPE, SIG_DFL);
	}
	t_op_init(&snd);
	evq_prep_send(&snd.op, a[0], "x", 1, 0);
	if (t_op_submit(loop, &snd, 0) < 0 || t_op_wait(loop, &snd, 2000) < 0)
		_exit(12);
	if (snd.res != -EPIPE)
		_exit(13);
	if (evq__aio_stats(loop, &st) < 0 || st.xfer_send < 1)
		_exit(14);	/* not through the batch: tests nothing */
	_exit(0);
}

/* A send op never kills the process with SIGPIPE, whatever its
 * disposition was when the loop was made, and after the user changes it
 * (the batched send is an IOCB_CMD_PWRITE, which raises it: note k of
 * backend_aio.c). Any cache of the disposition must keep this. */
static int batched_send_never_dies_of_sigpipe(void)
{
	for (int at_new = 1; at_new >= 0; at_new--) {
		int status = 0;
		pid_t pid;

		T_STEP(at_new ? "SIG_DFL when the loop is made"
			      : "SIG_IGN when made and for a batch, then SIG_DFL");
		pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0)
			send_epipe_child(at_new);
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		if (WIFSIGNALED(status))
			t_note("child killed by signal %d", WTERMSIG(status));
		ASSERT_TRUE(WIFEXITED(status));
		ASSERT_EQ(WEXITSTATUS(status), 0);
	}
	return T_PASS;
}

static volatile sig_atomic_t sigpipes;

static void count_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

/* A send op raises no SIGPIPE (MSG_NOSIGNAL on every backend), even as an
 * IOCB_CMD_PWRITE in the batch, which does raise it: with SIGPIPE ignored
 * nothing is needed (one sigaction() per batch asks); with a handler the
 * batch blocks it and takes it back. A write op raises it, as write(2)
 * does, also when a send in the same batch made the batch take one. */
static int batched_send_raises_no_sigpipe_write_does(void)
{
	struct evq_loop *loop = t_loop_new();
	struct sigaction sa = { 0 }, old;
	struct evq__aio_stats s0, s1;
	struct t_op snd = { 0 }, wr = { 0 };
	int a[2], b[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(a));
	ASSERT_OK(t_socketpair(b));
	t_close(a[1]);
	t_close(b[1]);
	sa.sa_handler = count_sigpipe;
	sigemptyset(&sa.sa_mask);
	ASSERT_OK(sigaction(SIGPIPE, &sa, &old));
	sigpipes = 0;

	T_STEP("a send to a gone peer: -EPIPE, no signal");
	s0 = stats(loop);
	t_op_init(&snd);
	evq_prep_send(&snd.op, a[0], "x", 1, 0);
	ASSERT_OK(t_op_submit(loop, &snd, 0));
	ASSERT_OK(t_op_wait(loop, &snd, 2000));
	s1 = stats(loop);
	ASSERT_EQ(snd.res, -EPIPE);
	ASSERT_EQ(sigpipes, 0);
	ASSERT_EQ(s1.xfer_send - s0.xfer_send, 1);
	ASSERT_EQ(s1.sigpipe_guards - s0.sigpipe_guards, 1);
	ASSERT_EQ(s1.sigpipe_checks - s0.sigpipe_checks, 1);	/* asked once */

	T_STEP("a write op there: -EPIPE and SIGPIPE, as write(2)");
	t_op_init(&wr);
	evq_prep_write(&wr.op, b[0], "x", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &wr, 0));
	ASSERT_OK(t_op_wait(loop, &wr, 2000));
	ASSERT_EQ(wr.res, -EPIPE);
	ASSERT_EQ(sigpipes, 1);

	T_STEP("both in one batch: the write's signal is still raised");
	sigpipes = 0;
	s0 = stats(loop);
	t_op_init(&snd);
	t_op_init(&wr);
	evq_prep_send(&snd.op, a[0], "x", 1, 0);
	evq_prep_write(&wr.op, b[0], "x", 1, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &snd, 0));
	ASSERT_OK(t_op_submit(loop, &wr, 0));
	ASSERT_OK(t_op_wait(loop, &snd, 2000));
	ASSERT_OK(t_op_wait(loop, &wr, 2000));
	s1 = stats(loop);
	ASSERT_EQ(snd.res, -EPIPE);
	ASSERT_EQ(wr.res, -EPIPE);
	ASSERT_EQ(sigpipes, 1);
	ASSERT_EQ(s1.xfer_send - s0.xfer_send, 1);
	ASSERT_EQ(s1.xfer_write - s0.xfer_write, 1);

	T_STEP("SIGPIPE ignored: asked, not blocked");
	ASSERT_OK(sigaction(SIGPIPE, &old, NULL));
	s0 = stats(loop);
	t_op_init(&snd);
	evq_prep_send(&snd.op, a[0], "x", 1, 0);
	ASSERT_OK(t_op_submit(loop, &snd, 0));
	ASSERT_OK(t_op_wait(loop, &snd, 2000));
	s1 = stats(loop);
	ASSERT_EQ(snd.res, -EPIPE);
	ASSERT_EQ(s1.sigpipe_checks - s0.sigpipe_checks, 1);
	ASSERT_EQ(s1.sigpipe_guards - s0.sigpipe_guards, 0);
	t_close(a[0]);
	t_close(b[0]);
	t_loop_free(loop);
	return T_PASS;
}

/* A transfer built but not submitted yet is cancellable: a cancel op, or
 * a close op on its fd, started in the same iteration, takes it out of
 * the batch; it completes with -ECANCELED and nothing reaches the peer. */
static int queued_transfer_is_cancelled_by_cancel_and_close_ops(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s1;
	struct t_op snd = { 0 }, can = { 0 }, cl = { 0 };
	int sv[2];
	char c;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	T_STEP("send, then a cancel of it, started together");
	s0 = stats(loop);
	t_op_init(&snd);
	t_op_init(&can);
	evq_prep_send(&snd.op, sv[0], "x", 1, 0);
	evq_prep_cancel(&can.op, &snd.op);
	ASSERT_OK(t_op_submit(loop, &snd, 0));
	ASSERT_OK(t_op_submit(loop, &can, 0));
	ASSERT_OK(t_op_wait(loop, &snd, 2000));
	ASSERT_OK(t_op_wait(loop, &can, 2000));
	s1 = stats(loop);
	ASSERT_EQ(snd.res, -ECANCELED);
	ASSERT_EQ(can.res, 0);
	ASSERT_EQ(s1.xfer_canceled - s0.xfer_canceled, 1);
	ASSERT_EQ(s1.xfer_send - s0.xfer_send, 0);
	ASSERT_EQ(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
	ASSERT_EQ(errno, EAGAIN);

	T_STEP("write, then a close op of its fd, started together");
	s0 = stats(loop);
	t_op_init(&snd);
	t_op_init(&cl);
	evq_prep_write(&snd.op, sv[0], "y", 1, EVQ_OFFSET_CURRENT);
	evq_prep_close(&cl.op, sv[0]);
	ASSERT_OK(t_op_submit(loop, &snd, 0));
	ASSERT_OK(t_op_submit(loop, &cl, 0));
	ASSERT_OK(t_op_wait(loop, &snd, 2000));
	ASSERT_OK(t_op_wait(loop, &cl, 2000));
	s1 = stats(loop);
	ASSERT_EQ(snd.res, -ECANCELED);
	ASSERT_EQ(cl.res, 0);
	ASSERT_EQ(s1.xfer_canceled - s0.xfer_canceled, 1);
	ASSERT_EQ(recv(sv[1], &c, 1, MSG_DONTWAIT), 0);	/* EOF only */
	t_close(sv[1]);
	t_loop_free(loop);
	return T_PASS;
}

/* Only pipes and sockets go into the batch: an iocb has no "current
 * position" (offset 0 instead), which a pipe ignores and a regular file
 * does not. The kind of an fd that is never polled (a pipe's write end)
 * costs one fstat() per EVQ_IO_STALE_LIMIT transfers; a regular file's
 * write at the current position stays a syscall and lands there. */
static int only_pipes_and_sockets_go_into_the_batch(void)
{
	struct evq_loop *loop = t_loop_new();
	char path[] = "/tmp/evq-test-aio-XXXXXX", got[8] = { 0 };
	struct evq__aio_stats s0, s1;
	struct t_op o = { 0 };
	int p[2], f, i;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	T_STEP("4 * EVQ_IO_STALE_LIMIT writes to a pipe: PWRITEs");
	s0 = stats(loop);
	for (i = 0; i < 4 * EVQ_IO_STALE_LIMIT; i++) {
		t_op_init(&o);
		evq_prep_write(&o.op, p[1], "x", 1, EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &o, 0));
		ASSERT_OK(t_op_wait(loop, &o, 2000));
		ASSERT_EQ(o.res, 1);
		ASSERT_EQ(t_drain(p[0]), 1);
	}
	s1 = stats(loop);
	ASSERT_EQ(s1.xfer_write - s0.xfer_write, 4 * EVQ_IO_STALE_LIMIT);
	ASSERT_LE(s1.xfer_kind_checks - s0.xfer_kind_checks, 5);

	T_STEP("a regular file at its position: the syscall, at offset 4");
	f = mkstemp(path);
	ASSERT_GE(f, 0);
	unlink(path);
	ASSERT_EQ(write(f, "abcd", 4), 4);
	s0 = stats(loop);
	t_op_init(&o);
	evq_prep_write(&o.op, f, "EF", 2, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 2000));
	s1 = stats(loop);
	ASSERT_EQ(o.res, 2);
	ASSERT_EQ(s1.xfer_write - s0.xfer_write, 0);
	ASSERT_EQ(pread(f, got, sizeof(got), 0), 6);
	ASSERT_STREQ(got, "abcdEF");
	close(f);
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

/* Freeing the loop destroys the context, which cancels every poll. */
static int loop_free_releases_files(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw r;
	int sv[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(tw_start(loop, &r, sv[0], EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);	/* armed */
	t_close(sv[0]);
	t_loop_free(loop);
	ASSERT_TRUE(peer_sees_eof(sv[1], 2000));
	t_close(sv[1]);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Masks
 * ------------------------------------------------------------------------ */

/* Widening an armed poll cancels it and submits a new one; narrowing
 * leaves it and filters; a fired poll takes its new mask for free. */
static int mask_changes(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0;
	struct tw w;
	int sv[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_GT(t_fill(sv[0]), 0);	/* not writable */
	ASSERT_OK(tw_start(loop, &w, sv[0], EVQ_WRITE));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);	/* armed */
	ASSERT_EQ(w.count, 0);
	T_STEP("widen to READ|WRITE while armed: one io_cancel");
	s0 = stats(loop);
	ASSERT_OK(evq_io_set(&w.io, EVQ_READ | EVQ_WRITE));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(stats(loop).cancels - s0.cancels, 1);
	ASSERT_EQ(w.count, 0);
	T_STEP("narrow to WRITE while armed: no io_cancel");
	s0 = stats(loop);
	ASSERT_OK(evq_io_set(&w.io, EVQ_WRITE));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(stats(loop).cancels, s0.cancels);
	T_STEP("data arrives: the READ|WRITE poll fires, READ is filtered");
	ASSERT_OK(t_write_byte(sv[1]));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(w.count, 0);
	T_STEP("room to write: WRITE");
	ASSERT_GT(t_drain(sv[1]), 0);
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(w.count, 1);
	ASSERT_EQ(w.last, EVQ_WRITE);
	ASSERT_EQ(stats(loop).cancels, s0.cancels);
	ASSERT_OK(evq_io_stop(&w.io));
	t_close2(sv);
	t_loop_free(loop);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Ops (note j of src/backend_aio.c)
 * ------------------------------------------------------------------------ */

#define BLK 4096u

static char direct_why[1024];

/* The byte at offset i of a test file. */
static unsigned char pat(uint64_t i)
{
	return (unsigned char)(i * 7 + (i >> 12));
}

static bool is_pat(const unsigned char *p, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != pat(off + i))
			return false;
	return true;
}

static bool all_bytes(const unsigned char *p, int c, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)c)
			return false;
	return true;
}

/* Zeroed memory aligned for O_DIRECT, or NULL. */
static unsigned char *xalign(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, BLK, len) != 0)
		return NULL;
	memset(p, 0, len);
	return p;
}

/* An unlinked file of `size` bytes (a multiple of BLK, holding pat()),
 * open O_RDWR | O_DIRECT, in the first directory whose filesystem takes
 * O_DIRECT: $TMPDIR, /var/tmp, the working directory (ctest runs in the
 * build tree), /tmp. tmpfs refuses O_DIRECT before Linux 6.6. *buffered,
 * if not NULL, gets a second, buffered fd of the same file. -1, with the
 * reasons in direct_why, if no directory will do. */
static int direct_file(size_t size, int *buffered)
{
	const char *dirs[] = { getenv("TMPDIR"), "/var/tmp", ".", "/tmp" };
	static unsigned seq;
	unsigned char *buf = xalign(size);
	char path[512];
	size_t wl = 0;

	direct_why[0] = 0;
	if (!buf)
		return -1;
	for (size_t i = 0; i < size; i++)
		buf[i] = pat(i);
	for (size_t d = 0; d < T_NELEM(dirs); d++) {
		int fd, bfd = -1, e;

		if (!dirs[d] || !dirs[d][0])
			continue;
		snprintf(path, sizeof(path), "%s/evq-test-aio-direct.%d.%u",
			 dirs[d], (int)getpid(), seq++);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_DIRECT |
				O_CLOEXEC, 0600);
		if (fd < 0) {
			e = errno;
			wl += (size_t)snprintf(direct_why + wl,
					       sizeof(direct_why) - wl,
					       "%s: open: %s; ", dirs[d],
					       strerror(e));
			continue;
		}
		if (buffered)
			bfd = open(path, O_RDWR | O_CLOEXEC);
		(void)unlink(path);
		if (pwrite(fd, buf, size, 0) != (ssize_t)size ||
		    (buffered && bfd < 0)) {
			e = errno;
			wl += (size_t)snprintf(direct_why + wl,
					       sizeof(direct_why) - wl,
					       "%s: O_DIRECT write: %s; ",
					       dirs[d], strerror(e));
			close(fd);
			t_close(bfd);
			continue;
		}
		if (buffered)
			*buffered = bfd;
		free(buf);
		return fd;
	}
	free(buf);
	return -1;
}

#define DIRECT_FILE_OR_SKIP(fd, size, buffered, loop)			\
	do {								\
		(fd) = direct_file((size), (buffered));			\
		if ((fd) < 0) {						\
			t_loop_free(loop);				\
			return t_skip("no filesystem here takes "	\
				      "O_DIRECT: %s", direct_why);	\
		}							\
	} while (0)

/* O_DIRECT read, write, readv, writev, fsync and fdatasync each go to the
 * kernel as one IOCB_CMD_* iocb, with the core emulating none of them. */
static int direct_ops_native(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s;
	struct t_op o = { 0 };
	unsigned char *a = xalign(4 * BLK), *b = xalign(2 * BLK);
	struct iovec iov[2];
	int fd;

	ASSERT_NOTNULL(loop);
	ASSERT_TRUE(a && b);
	DIRECT_FILE_OR_SKIP(fd, 16 * BLK, NULL, loop);
	s0 = stats(loop);

	T_STEP("read: IOCB_CMD_PREAD");
	t_op_init(&o);
	evq_prep_read(&o.op, fd, a, 2 * BLK, 2 * BLK);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_EQ(o.res, 2 * BLK);
	ASSERT_TRUE(is_pat(a, 2 * BLK, 2 * BLK));
	ASSERT_EQ(stats(loop).op_pread - s0.op_pread, 1);

	T_STEP("write: IOCB_CMD_PWRITE");
	memset(b, 'W', 2 * BLK);
	t_op_init(&o);
	evq_prep_write(&o.op, fd, b, BLK, BLK);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_EQ(o.res, BLK);
	ASSERT_EQ(pread(fd, a, BLK, BLK), BLK);
	ASSERT_TRUE(all_bytes(a, 'W', BLK));
	ASSERT_EQ(stats(loop).op_pwrite - s0.op_pwrite, 1);

	T_STEP("readv: IOCB_CMD_PREADV");
	memset(a, 0, 4 * BLK);
	iov[0] = (struct iovec){ a, BLK };
	iov[1] = (struct iovec){ a + 2 * BLK, BLK };
	t_op_init(&o);
	evq_prep_readv(&o.op, fd, iov, 2, 3 * BLK);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_EQ(o.res, 2 * BLK);
	ASSERT_TRUE(is_pat(a, 3 * BLK, BLK));
	ASSERT_TRUE(is_pat(a + 2 * BLK, 4 * BLK, BLK));
	ASSERT_EQ(stats(loop).op_preadv - s0.op_preadv, 1);

	T_STEP("writev: IOCB_CMD_PWRITEV");
	iov[0] = (struct iovec){ b, BLK };
	iov[1] = (struct iovec){ b + BLK, BLK };
	t_op_init(&o);
	evq_prep_writev(&o.op, fd, iov, 2, 8 * BLK);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_EQ(o.res, 2 * BLK);
	ASSERT_EQ(pread(fd, a, 2 * BLK, 8 * BLK), 2 * BLK);
	ASSERT_TRUE(all_bytes(a, 'W', 2 * BLK));
	ASSERT_EQ(stats(loop).op_pwritev - s0.op_pwritev, 1);

	T_STEP("fsync and fdatasync: IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC");
	t_op_init(&o);
	evq_prep_fsync(&o.op, fd, 0);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_ERR(o.res, 0);
	t_op_init(&o);
	evq_prep_fsync(&o.op, fd, EVQ_FSYNC_DATASYNC);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(t_op_wait(loop, &o, 5000));
	ASSERT_ERR(o.res, 0);

	T_STEP("counters");
	s = stats(loop);
	ASSERT_EQ(s.op_fsync - s0.op_fsync, 1);
	ASSERT_EQ(s.op_fdsync - s0.op_fdsync, 1);
	ASSERT_EQ(s.op_emulated - s0.op_emulated, 0);
	ASSERT_EQ(s.op_refused - s0.op_refused, 0);
	ASSERT_EQ(s.op_inflight, 0);
	ASSERT_EQ(s.op_queued, 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_OK(t_run_nowait(loop, 3));	/* nothing late */
	ASSERT_EQ(o.ncalls, 1);
	close(fd);
	free(a);
	free(b);
	t_loop_free(loop);
	return T_PASS;
}

/* Run op (prepared in o) to its completion; 0 or -1. */
static int run_op(struct evq_loop *loop, struct t_op *o)
{
	if (t_op_submit(loop, o, 0) != 0)
		return -1;
	return t_op_wait(loop, o, 5000);
}

/* The identity check of note g costs a syscall. Every report pays it
 * once per EVQ_IO_STALE_LIMIT reports of the fd, as the epoll set does:
 * an emulated op's wait (its retry acts on the number, as its syscall
 * would) and a user's watcher alike (evq.h, close-safety: a closed
 * number is noticed by the re-arm's EBADF, a reused one by this). */
static int op_waits_checked_once_per_stale_limit(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s1;
	struct t_op o = { 0 };
	struct tw w;
	char c;
	int p[2], q[2], i;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	s0 = stats(loop);
	T_STEP("4 * EVQ_IO_STALE_LIMIT reads that wait for the pipe");
	for (i = 0; i < 4 * EVQ_IO_STALE_LIMIT; i++) {
		t_op_init(&o);
		evq_prep_read(&o.op, p[0], &c, 1, EVQ_OFFSET_CURRENT);
		ASSERT_OK(t_op_submit(loop, &o, 0));
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		ASSERT_EQ(o.ncalls, 0);		/* waiting */
		ASSERT_OK(t_write_byte(p[1]));
		ASSERT_OK(t_op_wait(loop, &o, 5000));
		ASSERT_EQ(o.res, 1);
	}
	s1 = stats(loop);
	ASSERT_LE(s1.checks - s0.checks, 4);

	T_STEP("a user's watcher: once per EVQ_IO_STALE_LIMIT reports too");
	ASSERT_OK(t_pipe(q));
	ASSERT_OK(t_write_byte(q[1]));
	ASSERT_OK(tw_start(loop, &w, q[0], EVQ_READ));
	s0 = stats(loop);
	for (i = 0; i < 4 * EVQ_IO_STALE_LIMIT; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	s1 = stats(loop);
	ASSERT_EQ(w.count, 4 * EVQ_IO_STALE_LIMIT);
	ASSERT_LE(s1.checks - s0.checks, 4);
	ASSERT_GE(s1.checks - s0.checks, 3);
	ASSERT_OK(evq_io_stop(&w.io));
	t_close2(q);
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

/* Whether an fd's transfers can be native costs an F_GETFL (note j). A
 * "no" is kept for the fd and asked again once per EVQ_IO_STALE_LIMIT
 * ops: F_SETFL may add O_DIRECT, and that is seen within as many ops. */
static int direct_check_cached_per_fd(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s1;
	struct t_op o = { 0 };
	unsigned char *a = xalign(BLK);
	int fd, bfd = -1, fl, i;

	ASSERT_NOTNULL(loop);
	ASSERT_TRUE(a != NULL);
	DIRECT_FILE_OR_SKIP(fd, 4 * BLK, &bfd, loop);
	s0 = stats(loop);
	T_STEP("4 * EVQ_IO_STALE_LIMIT reads of the buffered fd");
	for (i = 0; i < 4 * EVQ_IO_STALE_LIMIT; i++) {
		t_op_init(&o);
		evq_prep_read(&o.op, bfd, a, BLK, BLK);
		ASSERT_OK(run_op(loop, &o));
		ASSERT_EQ(o.res, BLK);
	}
	s1 = stats(loop);
	ASSERT_EQ(s1.op_emulated - s0.op_emulated, 4 * EVQ_IO_STALE_LIMIT);
	ASSERT_LE(s1.op_direct_checks - s0.op_direct_checks, 4);
	T_STEP("F_SETFL adds O_DIRECT: native within EVQ_IO_STALE_LIMIT ops");
	fl = fcntl(bfd, F_GETFL);
	ASSERT_GE(fl, 0);
	ASSERT_OK(fcntl(bfd, F_SETFL, fl | O_DIRECT));
	for (i = 0; i <= EVQ_IO_STALE_LIMIT; i++) {
		t_op_init(&o);
		evq_prep_read(&o.op, bfd, a, BLK, BLK);
		ASSERT_OK(run_op(loop, &o));
		ASSERT_EQ(o.res, BLK);
		if (stats(loop).op_pread > s1.op_pread)
			break;
	}
	ASSERT_GT(stats(loop).op_pread, s1.op_pread);
	t_close(fd);
	t_close(bfd);
	free(a);
	t_loop_free(loop);
	return T_PASS;
}

/* What the backend leaves to the core: a buffered file (buffered AIO
 * would block inside io_submit), EVQ_OFFSET_CURRENT, a write past the end
 * of the file (ext4 does those inside io_submit) or on an O_APPEND fd, a
 * read into a pool buffer, and a pipe with O_DIRECT (packet mode: AIO would block in
 * io_submit on it). fsync of a file without an fsync method is refused
 * by io_submit with the error fsync(2) gives. */
static int emulated_ops(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s;
	struct evq_pool *pool = NULL;
	struct t_op o = { 0 };
	unsigned char *a = xalign(2 * BLK), *b = xalign(BLK);
	struct stat sb;
	int fd, bfd = -1, p[2], fl, bad, fsync_errno;

	ASSERT_NOTNULL(loop);
	ASSERT_TRUE(a && b);
	DIRECT_FILE_OR_SKIP(fd, 16 * BLK, &bfd, loop);
	s0 = stats(loop);

	T_STEP("buffered file");
	t_op_init(&o);
	evq_prep_read(&o.op, bfd, a, BLK, 5 * BLK);
	ASSERT_OK(run_op(loop, &o));
	ASSERT_EQ(o.res, BLK);
	ASSERT_TRUE(is_pat(a, 5 * BLK, BLK));
	ASSERT_EQ(stats(loop).op_emulated - s0.op_emulated, 1);

	T_STEP("EVQ_OFFSET_CURRENT");
	ASSERT_EQ(lseek(fd, BLK, SEEK_SET), BLK);
	t_op_init(&o);
	evq_prep_read(&o.op, fd, a, BLK, EVQ_OFFSET_CURRENT);
	ASSERT_OK(run_op(loop, &o));
	ASSERT_EQ(o.res, BLK);
	ASSERT_TRUE(is_pat(a, BLK, BLK));
	ASSERT_EQ(stats(loop).op_emulated - s0.op_emulated, 2);

	T_STEP("a write past the end");
	memset(b, 'E', BLK);
	t_op_init(&o);
	evq_prep_write(&o.op, fd, b, BLK, 16 * BLK);
	ASSERT_OK(run_op(loop, &o));
	ASSERT_EQ(o.res, BLK);
	ASSERT_OK(fstat(fd, &sb));
	ASSERT_EQ(sb.st_size, 17 * BLK);
	ASSERT_EQ(stats(loop).op_emulated - s0.op_emulated, 3);

	T_STEP("a write on an O_APPEND fd (appends, whatever the offset)");
	fl = fcntl(fd, F_GETFL);
	ASSERT_GE(fl, 0);
	ASSERT_OK(fcntl(fd, F_SETFL, fl | O_APPEND));
	t_op_init(&o);
	evq_prep_write(&o.op, fd, b, BLK, 0);
	ASSERT_OK(run_op(loop, &o));
	ASSERT_EQ(o.res, BLK);
	ASSERT_OK(fstat(fd, &sb));
	ASSERT_EQ(sb.st_size, 18 * BLK);
	ASSERT_OK(fcntl(fd, F_SETFL, fl));
	ASSERT_EQ(stats(loop).op_emulated - s0.op_emulated, 4);

	T_STEP("a read into a pool buffer");
	ASSERT_OK(evq_pool_new(loop, &pool, 1, BLK));
	t_op_init(&o);
	evq_prep_read_pool(&o.op, fd, pool, 0);
	ASSERT_OK(run_op(loop, &o));
	if (o.flags & EVQ_OP_F_BUFFER)
		ASSERT_OK(evq_pool_release(pool, EVQ_OP_F_BUFID(o.flags)));
	ASSERT_EQ(stats(loop).op_emulated - s0.op_emulated, 5);

	T_STEP("a pipe with O_DIRECT");
	ASSERT_OK(t_pipe_mode(p, false));
	fl = fcntl(p[0], F_GETFL);
	ASSERT_GE(fl, 0);
	ASSERT_OK(fcntl(p[0], F_SETFL, fl | O_DIRECT));
	ASSERT_TRUE(fcntl(p[0], F_GETFL) & O_DIRECT);
	t_op_init(&o);
	evq_prep_read(&o.op, p[0], a, BLK, 0);	/* AIO: blocks forever */
	ASSERT_OK(run_op(loop, &o));
	ASSERT_ERR(o.res, -ESPIPE);	/* pread(2) on a pipe */
	ASSERT_EQ(stats(loop).op_emulated - s0.op_emulated, 6);

	T_STEP("fsync of a pipe: refused like fsync(2)");
	errno = 0;
	ASSERT_EQ(fsync(p[1]), -1);
	fsync_errno = errno;
	t_op_init(&o);
	evq_prep_fsync(&o.op, p[1], 0);
	ASSERT_OK(run_op(loop, &o));
	ASSERT_ERR(o.res, -fsync_errno);
	T_STEP("fsync of a closed fd");
	bad = fcntl(fd, F_DUPFD_CLOEXEC, 1000);
	ASSERT_GE(bad, 1000);
	close(bad);
	t_op_init(&o);
	evq_prep_fsync(&o.op, bad, 0);
	ASSERT_OK(run_op(loop, &o));
	ASSERT_ERR(o.res, -EBADF);

	s = stats(loop);
	ASSERT_EQ(s.op_emulated - s0.op_emulated, 6);
	ASSERT_EQ(s.op_refused - s0.op_refused, 2);
	ASSERT_EQ(s.op_pread + s.op_pwrite + s.op_fsync -
		  s0.op_pread - s0.op_pwrite - s0.op_fsync, 0);
	ASSERT_EQ(s.op_inflight, 0);
	t_close2(p);
	close(fd);
	close(bfd);
	ASSERT_OK(evq_pool_free(pool));
	free(a);
	free(b);
	t_loop_free(loop);
	return T_PASS;
}

/* With the ring ignored, op completions come from io_getevents. */
static int direct_ops_no_ring(void)
{
	struct evq_loop *loop;
	struct evq__aio_stats s;
	struct t_op o = { 0 };
	unsigned char *a = xalign(BLK);
	int fd;

	evq__aio_test_params(0, 0, true);
	loop = t_loop_new();
	evq__aio_test_params(0, 0, false);
	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(a);
	ASSERT_EQ(stats(loop).ring, false);
	DIRECT_FILE_OR_SKIP(fd, 4 * BLK, NULL, loop);
	for (int i = 0; i < 4; i++) {
		t_op_init(&o);
		evq_prep_read(&o.op, fd, a, BLK, (uint64_t)i * BLK);
		ASSERT_OK(run_op(loop, &o));
		ASSERT_EQ(o.res, BLK);
		ASSERT_TRUE(is_pat(a, (uint64_t)i * BLK, BLK));
	}
	s = stats(loop);
	ASSERT_EQ(s.op_pread, 4);
	ASSERT_EQ(s.ring_reaps, 0);
	ASSERT_GE(s.getevents_calls, 4);
	close(fd);
	free(a);
	t_loop_free(loop);
	return T_PASS;
}

/* Nothing but native ops in flight: no poll will ever complete, so the
 * loop must block in io_getevents for the ops themselves, and return
 * when they are done (a hang here fails through the watchdog). */
static int run_with_only_native_ops(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op r = { 0 }, f = { 0 };
	unsigned char *a = xalign(8 * BLK);
	int fd;

	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(a);
	t_case_timeout(10);
	DIRECT_FILE_OR_SKIP(fd, 8 * BLK, NULL, loop);
	t_op_init(&r);
	evq_prep_read(&r.op, fd, a, 8 * BLK, 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	t_op_init(&f);
	evq_prep_fsync(&f.op, fd, 0);
	ASSERT_OK(t_op_submit(loop, &f, 0));
	T_STEP("EVQ_RUN_DEFAULT returns when both are done");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(r.ncalls, 1);
	ASSERT_EQ(r.res, 8 * BLK);
	ASSERT_TRUE(is_pat(a, 0, 8 * BLK));
	ASSERT_EQ(f.ncalls, 1);
	ASSERT_ERR(f.res, 0);
	ASSERT_EQ(stats(loop).op_pread, 1);
	ASSERT_EQ(stats(loop).op_fsync, 1);
	close(fd);
	free(a);
	t_loop_free(loop);
	return T_PASS;
}

/* A chain mixing the two kinds: a native O_DIRECT read, then an emulated
 * send of what it read. A short read (at the end of the file) breaks the
 * chain. */
static int chain_native_then_emulated(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s0, s;
	struct t_op r = { 0 }, w = { 0 };
	unsigned char *a = xalign(2 * BLK), got[2 * BLK];
	int fd, sv[2];

	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(a);
	DIRECT_FILE_OR_SKIP(fd, 8 * BLK, NULL, loop);
	ASSERT_OK(t_socketpair(sv));
	s0 = stats(loop);

	T_STEP("read 2 blocks, then send them");
	t_op_init(&r);
	evq_prep_read(&r.op, fd, a, 2 * BLK, 4 * BLK);
	ASSERT_OK(t_op_submit(loop, &r, EVQ_OP_LINK));
	t_op_init(&w);
	evq_prep_send(&w.op, sv[0], a, 2 * BLK, 0);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_op_wait(loop, &w, 5000));
	ASSERT_EQ(r.ncalls, 1);
	ASSERT_EQ(r.res, 2 * BLK);
	ASSERT_EQ(w.res, 2 * BLK);
	ASSERT_LT(r.seq, w.seq);
	ASSERT_EQ(recv(sv[1], got, sizeof(got), MSG_WAITALL), 2 * BLK);
	ASSERT_TRUE(is_pat(got, 4 * BLK, 2 * BLK));
	s = stats(loop);
	ASSERT_EQ(s.op_pread - s0.op_pread, 1);
	ASSERT_EQ(s.op_emulated - s0.op_emulated, 1);

	T_STEP("a short read at the end breaks the chain");
	t_op_init(&r);
	evq_prep_read(&r.op, fd, a, 2 * BLK, 7 * BLK);
	ASSERT_OK(t_op_submit(loop, &r, EVQ_OP_LINK));
	t_op_init(&w);
	evq_prep_send(&w.op, sv[0], a, 2 * BLK, 0);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	ASSERT_OK(t_op_wait(loop, &w, 5000));
	ASSERT_EQ(r.res, BLK);
	ASSERT_ERR(w.res, -ECANCELED);
	ASSERT_EQ(stats(loop).op_pread - s0.op_pread, 2);
	ASSERT_EQ(t_sock_drain(sv[1]), 0);
	t_close2(sv);
	close(fd);
	free(a);
	t_loop_free(loop);
	return T_PASS;
}

/* A native op cannot be stopped (io_cancel() is for polls): a cancel
 * says -EALREADY, and the op completes once, with its own result. The
 * cancel runs in the iteration that starts the read, so the read is
 * native by then whatever the device's speed. */
static int cancel_native_op(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op r = { 0 }, c = { 0 }, cf = { 0 };
	unsigned char *a = xalign(4 * BLK);
	int fd;

	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(a);
	DIRECT_FILE_OR_SKIP(fd, 4 * BLK, NULL, loop);
	t_op_init(&r);
	evq_prep_read(&r.op, fd, a, 4 * BLK, 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	t_op_init(&c);
	evq_prep_cancel(&c.op, &r.op);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	t_op_init(&cf);
	evq_prep_cancel_fd(&cf.op, fd);
	ASSERT_OK(t_op_submit(loop, &cf, 0));
	ASSERT_OK(t_op_wait(loop, &r, 5000));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_OK(t_op_wait(loop, &cf, 5000));
	ASSERT_ERR(c.res, -EALREADY);
	ASSERT_ERR(cf.res, -ENOENT);	/* none cancelled */
	ASSERT_EQ(r.res, 4 * BLK);
	ASSERT_TRUE(is_pat(a, 0, 4 * BLK));
	ASSERT_EQ(stats(loop).op_pread, 1);
	ASSERT_OK(t_run_nowait(loop, 5));
	ASSERT_EQ(r.ncalls, 1);
	close(fd);
	free(a);
	t_loop_free(loop);
	return T_PASS;
}

/* A write and an evq close op on its fd, in the same iteration: the close
 * runs in the thread pool, maybe before the loop's next io_submit, so
 * the write goes to the kernel when the close starts, and holds the file:
 * it lands, natively, and the close closes. */
static int close_op_after_native_write(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op w = { 0 }, c = { 0 };
	unsigned char *a = xalign(BLK);
	int fd, bfd = -1;

	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(a);
	DIRECT_FILE_OR_SKIP(fd, 4 * BLK, &bfd, loop);
	memset(a, 'C', BLK);
	t_op_init(&w);
	evq_prep_write(&w.op, fd, a, BLK, 2 * BLK);
	ASSERT_OK(t_op_submit(loop, &w, 0));
	t_op_init(&c);
	evq_prep_close(&c.op, fd);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &w, 5000));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_EQ(w.res, BLK);
	ASSERT_ERR(c.res, 0);
	ASSERT_TRUE(!t_fd_open(fd));
	ASSERT_EQ(stats(loop).op_pwrite, 1);
	memset(a, 0, BLK);
	ASSERT_EQ(pread(bfd, a, BLK, 2 * BLK), BLK);
	ASSERT_TRUE(all_bytes(a, 'C', BLK));
	close(bfd);
	free(a);
	t_loop_free(loop);
	return T_PASS;
}

#define NFREE 100
#define FREE_LEN (16 * BLK)
#define FREE_TRIES 10

/* One try of the case below: NFREE reads submitted by one iteration,
 * then evq_loop_free(). *inflight: how many had not completed at the
 * free. */
static int free_with_reads(int fd, struct t_op *o, unsigned char *a,
			   unsigned *inflight)
{
	struct evq_loop *loop = t_loop_new();
	struct evq__aio_stats s;
	int ok = 0;

	ASSERT_NOTNULL(loop);
	memset(o, 0, NFREE * sizeof(*o));
	for (int i = 0; i < NFREE; i++) {
		t_op_init(&o[i]);
		evq_prep_read(&o[i].op, fd, a + (size_t)i * FREE_LEN, FREE_LEN,
			      (uint64_t)i * FREE_LEN);
		ASSERT_OK(t_op_submit(loop, &o[i], 0));
	}
	T_STEP("one iteration submits all of them");
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);	/* 0: done */
	s = stats(loop);
	ASSERT_EQ(s.op_pread, NFREE);
	*inflight = s.op_inflight;
	T_STEP("free with %u in flight", s.op_inflight);
	t_loop_free(loop);
	for (int i = 0; i < NFREE; i++) {
		EXPECT_EQ(o[i].ncalls, 1);
		EXPECT_EQ(o[i].res, FREE_LEN);
		ok += o[i].res == FREE_LEN &&
		      is_pat(a + (size_t)i * FREE_LEN, (uint64_t)i * FREE_LEN,
			     FREE_LEN);
	}
	ASSERT_EQ(ok, NFREE);
	return T_PASS;
}

/* evq_loop_free() with native reads in flight: it waits for every one
 * (they cannot be cancelled), and each completes exactly once, with its
 * own result, from inside the free. A device usually takes longer than
 * the few us between the last io_submit and the reap that follows it, but
 * a preempted loop may find all done: then try again. tmpfs (no device)
 * completes each read inside io_submit: nothing is ever in flight. */
static int loop_free_waits_for_native_ops(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op *o = calloc(NFREE, sizeof(*o));
	unsigned char *a = xalign((size_t)NFREE * FREE_LEN);
	unsigned inflight = 0;
	struct stat sb;
	int fd, tries = 0;

	ASSERT_NOTNULL(loop);
	ASSERT_TRUE(o && a);
	DIRECT_FILE_OR_SKIP(fd, (size_t)NFREE * FREE_LEN, NULL, loop);
	t_loop_free(loop);
	ASSERT_OK(fstat(fd, &sb));
	do {
		if (free_with_reads(fd, o, a, &inflight) != T_PASS)
			return T_FAIL;
	} while (inflight == 0 && major(sb.st_dev) != 0 &&
		 ++tries < FREE_TRIES);
	t_note("%u of %d in flight at evq_loop_free(), try %d", inflight,
	       NFREE, tries + 1);
	if (major(sb.st_dev) != 0)
		ASSERT_GT(inflight, 0);
	close(fd);
	free(a);
	free(o);
	return T_PASS;
}

/* An op started by a completion (the next of a chain) is prepared but not
 * submitted until the next wait; a free before that ends it with
 * -ECANCELED, as it ends ops not started yet. */
static int loop_free_cancels_unsubmitted(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op r1 = { 0 }, r2 = { 0 };
	unsigned char *a = xalign(2 * BLK);
	struct evq__aio_stats s;
	int fd;

	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(a);
	DIRECT_FILE_OR_SKIP(fd, 2 * BLK, NULL, loop);
	t_op_init(&r1);
	evq_prep_read(&r1.op, fd, a, BLK, 0);
	ASSERT_OK(t_op_submit(loop, &r1, EVQ_OP_LINK));
	t_op_init(&r2);
	evq_prep_read(&r2.op, fd, a + BLK, BLK, BLK);
	ASSERT_OK(t_op_submit(loop, &r2, 0));
	ASSERT_OK(t_op_wait(loop, &r1, 5000));
	ASSERT_EQ(r1.res, BLK);
	s = stats(loop);
	ASSERT_EQ(r2.ncalls, 0);
	ASSERT_EQ(s.op_queued, 1);
	ASSERT_EQ(s.op_pread, 1);
	t_loop_free(loop);
	ASSERT_EQ(r2.ncalls, 1);
	ASSERT_ERR(r2.res, -ECANCELED);
	close(fd);
	free(a);
	return T_PASS;
}

#define NCAP 400

/* More ops than the context holds (io_setup(1): about 120 requests on a
 * machine with few CPUs; the kernel makes room for 4 per CPU at least):
 * io_submit takes what fits, the rest wait for completions to free
 * slots, and the context is not grown for them. A watched pipe shares
 * the submissions meanwhile. */
static int ops_beyond_capacity(void)
{
	struct evq_loop *loop;
	struct t_op *o = calloc(NCAP, sizeof(*o));
	unsigned char *a = xalign((size_t)NCAP * BLK);
	struct evq__aio_stats s;
	struct tw w;
	int fd, fds[2], done = 0, ok = 0;

	evq__aio_test_params(1, 0, false);
	loop = t_loop_new();
	evq__aio_test_params(0, 0, false);
	ASSERT_NOTNULL(loop);
	ASSERT_TRUE(o && a);
	DIRECT_FILE_OR_SKIP(fd, 64 * BLK, NULL, loop);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(tw_start(loop, &w, fds[0], EVQ_READ));
	w.consume = 1;
	for (int i = 0; i < NCAP; i++) {
		t_op_init(&o[i]);
		evq_prep_read(&o[i].op, fd, a + (size_t)i * BLK, BLK,
			      (uint64_t)(i % 64) * BLK);
		ASSERT_OK(t_op_submit(loop, &o[i], 0));
	}
	ASSERT_OK(t_write_byte(fds[1]));
	T_STEP("run until all are done");
	for (uint64_t end = t_now_ns() + 10000 * T_MS;
	     done < NCAP && t_now_ns() < end;) {
		ASSERT_GE(t_run_once(loop, 5000), 0);
		done = 0;
		for (int i = 0; i < NCAP; i++)
			done += o[i].ncalls;
	}
	ASSERT_EQ(done, NCAP);
	for (int i = 0; i < NCAP; i++)
		ok += o[i].res == (int)BLK &&
		      is_pat(a + (size_t)i * BLK, (uint64_t)(i % 64) * BLK,
			     BLK);
	ASSERT_EQ(ok, NCAP);
	ASSERT_EQ(w.count, 1);
	s = stats(loop);
	t_note("%llu io_submit calls, %llu throttled, a ring of %u",
	       (unsigned long long)s.submit_calls,
	       (unsigned long long)s.op_throttled, s.ring_events);
	ASSERT_EQ(s.op_pread, NCAP);
	if (s.ring_events && s.ring_events < NCAP)	/* not on many CPUs */
		ASSERT_GT(s.op_throttled, 0);
	ASSERT_EQ(s.grows, 0);
	ASSERT_EQ(s.degraded, false);
	ASSERT_EQ(s.op_inflight, 0);
	ASSERT_EQ(s.op_queued, 0);
	ASSERT_OK(evq_io_stop(&w.io));
	t_close2(fds);
	close(fd);
	t_loop_free(loop);
	free(a);
	free(o);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * S1 of issue 9: a close op while the context is full
 * ------------------------------------------------------------------------ */

#define NFULL 2000

static struct evq_loop *full_loop;
static int full_fd_a, full_fd_b;
static uint64_t full_pwrites_at_close;

/* The close op's callback: the number is free now, and the program opens
 * another file, which takes it (dup2 makes that certain). */
static void full_close_hook(struct evq_loop *loop, struct t_op *o, int res,
			    unsigned flags)
{
	(void)loop;
	(void)o;
	(void)flags;
	EXPECT_ERR(res, 0);
	full_pwrites_at_close = stats(full_loop).op_pwrite;
	EXPECT_EQ(dup2(full_fd_b, full_fd_a), full_fd_a);
}

/* NFULL O_DIRECT writes of file A and an evq close op of A, in one
 * iteration, on a context that holds about 120 requests and may not grow.
 * The close's ops-only flush submits what fits and gets EAGAIN for the
 * rest. Those must not stay queued by fd number: the pool closes A, the
 * close's callback reuses the number for file B, and a queued write
 * submitted then would land in B. Each write completes with BLK
 * (submitted before the close: it holds A) or -ECANCELED (never
 * submitted), none reaches the kernel after the close, and B is intact. */
static int close_op_with_context_full_leaves_no_op_on_fd(void)
{
	struct evq_loop *loop;
	struct t_op *o = calloc(NFULL, sizeof(*o));
	struct t_op c = { 0 };
	unsigned char *a = xalign(BLK), *b = xalign(64 * BLK);
	int bfd_a = -1, bfd_b = -1, fd_b, done = 0;
	int ok = 0, canceled = 0, badf = 0, other = 0;
	struct evq__aio_stats s;

	evq__aio_test_params(1, 1, false);
	loop = t_loop_new();
	evq__aio_test_params(0, 0, false);
	ASSERT_NOTNULL(loop);
	ASSERT_TRUE(o && a && b);
	t_case_timeout(30);
	DIRECT_FILE_OR_SKIP(full_fd_a, 64 * BLK, &bfd_a, loop);
	fd_b = direct_file(64 * BLK, &bfd_b);
	ASSERT_GE(fd_b, 0);
	full_fd_b = fd_b;
	full_loop = loop;
	full_pwrites_at_close = UINT64_MAX;
	memset(a, 'W', BLK);

	T_STEP("%d writes of A, then a close op of A", NFULL);
	for (int i = 0; i < NFULL; i++) {
		t_op_init(&o[i]);
		evq_prep_write(&o[i].op, full_fd_a, a, BLK,
			       (uint64_t)(i % 64) * BLK);
		ASSERT_OK(t_op_submit(loop, &o[i], 0));
	}
	c.hook = full_close_hook;
	t_op_init(&c);
	evq_prep_close(&c.op, full_fd_a);
	ASSERT_OK(t_op_submit(loop, &c, 0));

	T_STEP("run until every op is done");
	for (uint64_t end = t_now_ns() + 20000 * T_MS;
	     (done < NFULL || c.ncalls == 0) && t_now_ns() < end;) {
		ASSERT_GE(t_run_once(loop, 5000), 0);
		done = 0;
		for (int i = 0; i < NFULL; i++)
			done += o[i].ncalls;
	}
	ASSERT_EQ(done, NFULL);
	ASSERT_EQ(c.ncalls, 1);
	for (int i = 0; i < NFULL; i++) {
		if (o[i].res == (int)BLK)
			ok++;
		else if (o[i].res == -ECANCELED)
			canceled++;
		else if (o[i].res == -EBADF)
			badf++;
		else
			other++;
	}
	s = stats(loop);
	t_note("%d written, %d cancelled, %d EBADF, %d other; %llu native "
	       "writes, %llu when the close completed, a ring of %u", ok,
	       canceled, badf, other, (unsigned long long)s.op_pwrite,
	       (unsigned long long)full_pwrites_at_close, s.ring_events);

	T_STEP("no write reached the kernel after the close");
	EXPECT_EQ(s.op_pwrite, full_pwrites_at_close);
	EXPECT_EQ(badf, 0);
	EXPECT_EQ(other, 0);
	T_STEP("file B, which took A's number, is intact");
	ASSERT_EQ(pread(bfd_b, b, 64 * BLK, 0), (ssize_t)(64 * BLK));
	EXPECT_TRUE(is_pat(b, 0, 64 * BLK));
	if (s.ring_events && s.ring_events < NFULL) {
		T_STEP("the context was full: some writes never started");
		EXPECT_GT(canceled, 0);
	}
	EXPECT_EQ(s.op_close_canceled, (uint64_t)canceled);
	ASSERT_EQ(s.op_inflight, 0);
	ASSERT_EQ(s.op_queued, 0);
	close(full_fd_a);	/* B's number now */
	close(fd_b);
	close(bfd_a);
	close(bfd_b);
	t_loop_free(loop);
	free(a);
	free(b);
	free(o);
	return t_failed ? T_FAIL : T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(ring_reaps_without_syscalls),
	T_CASE(ping_pong_once),
	T_CASE(blocking_calls_io_getevents),
	T_CASE(no_ring_fallback),
	T_CASE(partial_submit_grows_context),
	T_CASE(capacity_exhausted_degrades),
	T_CASE(pty_goes_to_epoll),
	T_CASE(fifo_rdwr_goes_to_epoll),
	T_CASE(regular_file_always_ready),
	T_CASE(close_then_stop_releases_file),
	T_CASE(stop_then_close_frees_at_once),
	T_CASE(close_reuse_joining_watcher),
	T_CASE(close_then_event_reported_once_then_watch_ends),
	T_CASE(close_reuse_rearm_checked_within_stale_limit),
	T_CASE(closed_fd_in_mid_batch_ends_only_its_watch),
	T_CASE(closed_fd_transfer_in_mid_batch_fails_alone),
	T_CASE(one_io_submit_carries_the_reads_of_all_ready_connections),
	T_CASE(batched_send_raises_no_sigpipe_write_does),
	T_CASE(batched_send_never_dies_of_sigpipe),
	T_CASE(queued_transfer_is_cancelled_by_cancel_and_close_ops),
	T_CASE(only_pipes_and_sockets_go_into_the_batch),
	T_CASE(loop_free_releases_files),
	T_CASE(mask_changes),
	T_CASE(direct_ops_native),
	T_CASE(emulated_ops),
	T_CASE(direct_check_cached_per_fd),
	T_CASE(op_waits_checked_once_per_stale_limit),
	T_CASE(direct_ops_no_ring),
	T_CASE(run_with_only_native_ops),
	T_CASE(chain_native_then_emulated),
	T_CASE(cancel_native_op),
	T_CASE(close_op_after_native_write),
	T_CASE(loop_free_waits_for_native_ops),
	T_CASE(loop_free_cancels_unsubmitted),
	T_CASE(ops_beyond_capacity),
	T_CASE(close_op_with_context_full_leaves_no_op_on_fd),
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return t_main(argc, argv, cases, T_NELEM(cases));
}
