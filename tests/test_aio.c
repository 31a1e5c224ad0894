/* SPDX-License-Identifier: MIT */
/*
 * test_aio.c - the Linux AIO backend's own behaviour, through its hidden
 * counters (src/backend_aio.h): completions reaped from the mapped ring
 * without a syscall, io_getevents only to block, the syscall fallback when
 * the ring is not used, partial io_submit and context growth, running out
 * of AIO capacity, the epoll fallback for fds IOCB_CMD_POLL refuses, and
 * close() of an fd with a pending poll. Registered for the aio backend
 * only (EVQ_BACKEND=aio).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include "backend_aio.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
	ASSERT_OK(evq_timer_start(loop, &t, 20 * T_MS, 0, count_timer_cb));
	s0 = stats(loop);
	t0 = t_now_ns();
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
 * notices: the completion fails the identity check, the watch ends
 * without a callback, and the file is released. */
static int close_then_event_ends_watch(void)
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
	T_STEP("one iteration: the watch ends, no callback");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(evq_io_is_active(&r.io), 0);
	ASSERT_EQ(r.count, 0);
	T_STEP("the file was released: EOF for the peer");
	ASSERT_TRUE(peer_sees_eof(sv[1], 2000));
	t_close(sv[1]);
	t_loop_free(loop);
	return T_PASS;
}

/* The number is reused before the re-arm, by a file no watcher starts
 * on: the re-arm polls the new file, whose first completion fails the
 * check. The old watcher never runs; the new file is released. */
static int close_reuse_rearm_checked(void)
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
	for (i = 0; i < 3; i++)
		(void)evq_loop_run(loop, EVQ_RUN_NOWAIT);
	ASSERT_EQ(r.count, 1);
	ASSERT_EQ(evq_io_is_active(&r.io), 0);
	T_STEP("the new file is not held: its peer sees EOF after close");
	t_close(nv[0]);
	ASSERT_TRUE(peer_sees_eof(nv[1], 2000));
	t_close(nv[1]);
	t_close(sv[1]);
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
	T_CASE(close_then_event_ends_watch),
	T_CASE(close_reuse_rearm_checked),
	T_CASE(loop_free_releases_files),
	T_CASE(mask_changes),
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return t_main(argc, argv, cases, T_NELEM(cases));
}
