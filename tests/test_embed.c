/* SPDX-License-Identifier: MIT */
/*
 * test_embed.c - evq run from another loop (BACKGROUND.md lesson 8): a
 * plain poll() loop waits on evq_loop_fd() and evq_loop_timeout() and
 * calls evq_loop_run(NOWAIT) when told to. Fd events, timers, deferred
 * calls and op completions must all get through. And the other way round:
 * evq watches another loop's fd (a raw epoll set).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int io_hits, timer_hits, op_hits, op_res;

static void io_cb(struct evq_loop *loop, struct evq_io *w, unsigned revents)
{
	(void)loop;
	(void)revents;
	t_drain(w->fd);
	io_hits++;
}

static void timer_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
	timer_hits++;
}

static void op_cb(struct evq_loop *loop, struct evq_op *op, int res,
		  unsigned flags)
{
	(void)loop;
	(void)op;
	(void)flags;
	op_hits++;
	op_res = res;
}

/* The host: poll() on evq's fd with evq's timeout, until done() or the
 * deadline. Returns how many times it ran evq. */
static int host_run(struct evq_loop *loop, int fd, bool (*done)(void),
		    unsigned max_ms)
{
	uint64_t end = t_now_ns() + max_ms * T_MS;
	int runs = 0;

	while (!done() && t_now_ns() < end) {
		int64_t t = evq_loop_timeout(loop);
		int ms = t < 0 ? 100 : (int)((t + 999999) / 1000000);
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (ms > 100)
			ms = 100;	/* the deadline above */
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			return -1;
		if (evq_loop_run(loop, EVQ_RUN_NOWAIT) < 0)
			return -1;
		runs++;
	}
	return runs;
}

static bool three_hits(void)
{
	return io_hits >= 3;
}

static bool io_done(void)
{
	return io_hits > 0;
}

static bool timer_done(void)
{
	return timer_hits > 0;
}

static bool op_done(void)
{
	return op_hits > 0;
}

static void *write_later(void *arg)
{
	t_sleep_ms(20);
	if (write(*(int *)arg, "x", 1) != 1)
		return (void *)1;
	return NULL;
}

static struct evq_loop *embed_loop(int *fd)
{
	struct evq_loop *loop = t_loop_new();

	if (!loop)
		return NULL;
	*fd = evq_loop_fd(loop);
	return loop;
}

/* Does this backend have a loop fd? evq.h: epoll, uring and aio do (so
 * an -ENOTSUP there fails the case, never skips it); poll returns
 * -ENOTSUP. */
static bool has_loop_fd(void)
{
	return t_backend_is("epoll") || t_backend_is("uring") ||
	       t_backend_is("aio");
}

/* After embed_loop(): T_PASS to go on with fd, T_SKIP after a documented
 * -ENOTSUP (the loop is freed), T_FAIL otherwise. */
static int embed_check(struct evq_loop *loop, int fd)
{
	if (has_loop_fd()) {
		ASSERT_GE(fd, 0);
		return T_PASS;
	}
	ASSERT_ERR(fd, -ENOTSUP);
	t_loop_free(loop);
	return t_skip("no loop fd on %s (documented)", t_backend());
}

static int fd_event_reaches_host(void)
{
	int r;
	struct evq_io w = { 0 };
	struct evq_loop *loop;
	pthread_t th;
	int fd, p[2];

	loop = embed_loop(&fd);
	ASSERT_NOTNULL(loop);
	if ((r = embed_check(loop, fd)) != T_PASS)
		return r;
	ASSERT_GE(fd, 0);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, io_cb));
	io_hits = 0;
	ASSERT_OK(pthread_create(&th, NULL, write_later, &p[1]));
	ASSERT_GT(host_run(loop, fd, io_done, 2000), 0);
	pthread_join(th, NULL);
	ASSERT_EQ(io_hits, 1);
	evq_io_stop(&w);
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

static int timer_reaches_host(void)
{
	int r;
	struct evq_timer t = { 0 };
	struct evq_loop *loop;
	uint64_t t0;
	int fd;

	loop = embed_loop(&fd);
	ASSERT_NOTNULL(loop);
	if ((r = embed_check(loop, fd)) != T_PASS)
		return r;
	timer_hits = 0;
	t0 = t_now_ns();
	ASSERT_OK(evq_timer_start(loop, &t, 30 * T_MS, 0, timer_cb));
	ASSERT_GT(evq_loop_timeout(loop), 0);
	ASSERT_LE(evq_loop_timeout(loop), (int64_t)(30 * T_MS));
	ASSERT_GT(host_run(loop, fd, timer_done, 2000), 0);
	ASSERT_EQ(timer_hits, 1);
	ASSERT_GE(t_now_ns() - t0, 30 * T_MS);
	ASSERT_EQ(evq_loop_timeout(loop), -1);
	t_loop_free(loop);
	return T_PASS;
}

/* An op completion wakes the host: a recv that a thread's write ends, and
 * a timeout op. */
static int op_completion_reaches_host(void)
{
	int r;
	struct evq_op op = { 0 };
	struct evq_loop *loop;
	pthread_t th;
	int fd, sv[2];
	char buf[8];

	loop = embed_loop(&fd);
	ASSERT_NOTNULL(loop);
	if ((r = embed_check(loop, fd)) != T_PASS)
		return r;
	ASSERT_OK(t_socketpair(sv));
	T_STEP("a recv, data written by a thread 20 ms later");
	op_hits = 0;
	evq_prep_recv(&op, sv[0], buf, sizeof(buf), 0);
	ASSERT_OK(evq_op_submit(loop, &op, 0, op_cb));
	ASSERT_EQ(evq_loop_timeout(loop), 0);	/* an op to submit */
	ASSERT_OK(pthread_create(&th, NULL, write_later, &sv[1]));
	ASSERT_GT(host_run(loop, fd, op_done, 2000), 0);
	pthread_join(th, NULL);
	ASSERT_EQ(op_hits, 1);
	ASSERT_EQ(op_res, 1);

	T_STEP("a 30 ms timeout op");
	op_hits = 0;
	evq_prep_timeout(&op, 30 * T_MS);
	ASSERT_OK(evq_op_submit(loop, &op, 0, op_cb));
	ASSERT_GT(host_run(loop, fd, op_done, 2000), 0);
	ASSERT_EQ(op_hits, 1);
	ASSERT_ERR(op_res, -ETIME);
	t_close2(sv);
	t_loop_free(loop);
	return T_PASS;
}

/* evq carries a watcher on another loop's fd: a raw epoll set with a pipe
 * in it is readable when the pipe is. */
static int watch_another_loops_fd(void)
{
	struct evq_loop *loop = t_loop_new();
	struct epoll_event ev = { .events = EPOLLIN };
	struct evq_io w = { 0 };
	int other, p[2];

	ASSERT_NOTNULL(loop);
	other = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_GE(other, 0);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(epoll_ctl(other, EPOLL_CTL_ADD, p[0], &ev));
	ASSERT_OK(evq_io_start(loop, &w, other, EVQ_READ, io_cb));
	io_hits = 0;
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(io_hits, 0);
	ASSERT_OK(t_write_byte(p[1]));
	ASSERT_EQ(t_run_once(loop, 2000), 1);
	ASSERT_GE(io_hits, 1);
	evq_io_stop(&w);
	t_close2(p);
	close(other);
	t_loop_free(loop);
	return T_PASS;
}

/* evq_loop_fd() is the same open file for the loop's life. epoll and uring
 * rebuild their epoll set to drop a registration that outlived its fd (a
 * dup keeps the file open, its number is reused): a host that polls the
 * fd (poll) or keeps it in its own epoll set must not notice. */
static int loop_fd_same_across_rebuild(void)
{
	int r;
	struct epoll_event ev = { .events = EPOLLIN }, out;
	struct evq_io wa = { 0 }, wb = { 0 };
	struct stat st0, st1;
	struct evq_loop *loop;
	int fd, host, p1[2], p2[2], n, d, i;

	loop = embed_loop(&fd);
	ASSERT_NOTNULL(loop);
	if ((r = embed_check(loop, fd)) != T_PASS)
		return r;
	ASSERT_GE(fd, 0);
	ASSERT_OK(fstat(fd, &st0));
	host = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_GE(host, 0);
	ASSERT_OK(epoll_ctl(host, EPOLL_CTL_ADD, fd, &ev));

	T_STEP("a registration outlives its fd (dup), the number is reused");
	ASSERT_OK(t_pipe(p1));
	n = p1[0];
	ASSERT_OK(evq_io_start(loop, &wa, n, EVQ_READ, io_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	d = dup(n);
	ASSERT_GE(d, 0);
	close(n);
	ASSERT_OK(t_pipe(p2));
	ASSERT_EQ(p2[0], n);
	ASSERT_OK(evq_io_start(loop, &wb, n, EVQ_READ, io_cb));
	ASSERT_OK(t_write_byte(p1[1]));	/* the dead registration is ready */
	io_hits = 0;
	for (i = 0; i < 3; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(io_hits, 0);

	T_STEP("the set was rebuilt: the dead registration is gone");
	ASSERT_EQ(epoll_wait(host, &out, 1, 0), 0);
	ASSERT_EQ(evq_loop_fd(loop), fd);
	ASSERT_GE(fcntl(fd, F_GETFD), 0);
	ASSERT_OK(fstat(fd, &st1));
	ASSERT_EQ(st1.st_dev, st0.st_dev);
	ASSERT_EQ(st1.st_ino, st0.st_ino);

	T_STEP("data for B wakes a host on epoll, and one on poll");
	ASSERT_OK(t_write_byte(p2[1]));
	ASSERT_EQ(epoll_wait(host, &out, 1, 2000), 1);
	{
		struct pollfd pf = { .fd = fd, .events = POLLIN };

		uint64_t end = t_now_ns() + 2000 * T_MS;

		ASSERT_EQ(poll(&pf, 1, 2000), 1);
		ASSERT_EQ(pf.revents, POLLIN);
		/* As a host does: run when the fd says so, until B's report
		 * is in. On aio a completion can reach the ring late (the
		 * kernel hands an aio poll wakeup that finds its context
		 * busy to a worker): the dead registration's may wake the
		 * host first, B's then wakes it again. */
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		while (io_hits == 0 && t_now_ns() < end) {
			ASSERT_GE(poll(&pf, 1, 100), 0);
			ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		}
	}
	ASSERT_EQ(io_hits, 1);
	evq_io_stop(&wb);
	evq_io_stop(&wa);
	close(host);
	close(d);
	t_close2(p2);
	close(p1[1]);
	t_loop_free(loop);
	return T_PASS;
}

/* A strict host: it never polls for longer than evq says it may sleep,
 * but it does sleep that long (-1: until max_ms), so a wakeup that the
 * fd fails to give is a failure here, not a 100 ms delay. -1 when the fd
 * stayed quiet while evq had nothing timed, else the runs. */
static int host_strict(struct evq_loop *loop, int fd, bool (*done)(void),
		       unsigned max_ms)
{
	uint64_t end = t_now_ns() + max_ms * T_MS;
	int runs = 0;

	while (!done()) {
		int64_t t = evq_loop_timeout(loop);
		uint64_t now = t_now_ns();
		int ms, r;
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (now >= end)
			return -1;
		ms = (int)((end - now) / T_MS);
		if (t >= 0 && (t + 999999) / 1000000 < ms)
			ms = (int)((t + 999999) / 1000000);
		r = poll(&p, 1, ms);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r == 0 && t < 0) {
			t_note("the loop fd stayed quiet for %d ms", ms);
			return -1;
		}
		if (evq_loop_run(loop, EVQ_RUN_NOWAIT) < 0)
			return -1;
		runs++;
	}
	return runs;
}

/* An idle host sleeps, and its fd wakes it for an event and for that
 * event only: the loop settles again after the callback (aio re-arms the
 * poll in the run after the callback, so evq_loop_timeout() says 0
 * until then; a host that spun, or one that slept through the event,
 * fails here). Twice, so the re-armed poll is the one that wakes it. */
static int idle_host_sleeps_and_wakes_for_each_event(void)
{
	int r;
	struct evq_io w = { 0 };
	struct evq_loop *loop;
	pthread_t th;
	int fd, p[2];

	loop = embed_loop(&fd);
	ASSERT_NOTNULL(loop);
	if ((r = embed_check(loop, fd)) != T_PASS)
		return r;
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, io_cb));
	T_STEP("idle: nothing timed, fd quiet");
	ASSERT_TRUE(t_loop_settles(loop, fd));
	for (int round = 1; round <= 2; round++) {
		T_STEP("round %d: a write 20 ms later wakes the host", round);
		io_hits = 0;
		ASSERT_OK(pthread_create(&th, NULL, write_later, &p[1]));
		ASSERT_GT(host_strict(loop, fd, io_done, 3000), 0);
		pthread_join(th, NULL);
		ASSERT_EQ(io_hits, 1);
		T_STEP("round %d: settled again, no second callback", round);
		ASSERT_TRUE(t_loop_settles(loop, fd));
		ASSERT_EQ(io_hits, 1);
	}
	evq_io_stop(&w);
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

/* An op submitted by a callback while the loop runs: on uring, a read's
 * SQE is filled in evq_op_submit and waits for the next enter, which the
 * loop fd cannot signal, so evq_loop_timeout() must say 0 until the
 * kernel has it (a host that slept on -1 would never see the read end). */
static struct evq_op cb_read;
static char cb_buf[1];
static int cb_read_fd = -1, cb_submit = 1;

static void submit_read_cb(struct evq_loop *loop, struct evq_io *w,
			   unsigned revents)
{
	(void)revents;
	t_drain(w->fd);	/* kept: a stop would queue a change, and that
			 * alone makes the timeout 0 */
	io_hits++;
	evq_prep_read(&cb_read, cb_read_fd, cb_buf, 1, EVQ_OFFSET_CURRENT);
	cb_submit = evq_op_submit(loop, &cb_read, 0, op_cb);
}

static int op_submitted_by_a_callback_reaches_host(void)
{
	int r;
	struct evq_io w = { 0 };
	struct evq_loop *loop;
	pthread_t th;
	int fd, a[2], b[2];

	loop = embed_loop(&fd);
	ASSERT_NOTNULL(loop);
	if ((r = embed_check(loop, fd)) != T_PASS)
		return r;
	ASSERT_OK(t_pipe(a));
	ASSERT_OK(t_pipe(b));
	cb_read_fd = b[0];
	cb_submit = 1;
	io_hits = op_hits = 0;
	ASSERT_OK(evq_io_start(loop, &w, a[0], EVQ_READ, submit_read_cb));

	T_STEP("a watcher's callback submits a read of an empty pipe");
	ASSERT_OK(t_write_byte(a[1]));
	ASSERT_GT(host_strict(loop, fd, io_done, 2000), 0);
	ASSERT_OK(cb_submit);
	ASSERT_EQ(op_hits, 0);

	T_STEP("a write 20 ms later ends it, and the host wakes for it");
	ASSERT_OK(pthread_create(&th, NULL, write_later, &b[1]));
	ASSERT_GT(host_strict(loop, fd, op_done, 3000), 0);
	pthread_join(th, NULL);
	ASSERT_EQ(op_hits, 1);
	ASSERT_EQ(op_res, 1);
	evq_io_stop(&w);
	t_close2(a);
	t_close2(b);
	t_loop_free(loop);
	return T_PASS;
}

/* The loop fd is asked for only after a watcher's fd is armed in the
 * kernel (aio: a poll submitted without IOCB_FLAG_RESFD must be armed
 * again with it). */
static int loop_fd_made_after_a_watch_is_armed(void)
{
	struct evq_io w = { 0 };
	struct evq_loop *loop = t_loop_new();
	pthread_t th;
	int fd, p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, io_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	fd = evq_loop_fd(loop);
	if (!has_loop_fd()) {
		ASSERT_ERR(fd, -ENOTSUP);
		evq_io_stop(&w);
		t_close2(p);
		t_loop_free(loop);
		return t_skip("no loop fd on %s (documented)", t_backend());
	}
	ASSERT_GE(fd, 0);
	ASSERT_TRUE(t_loop_settles(loop, fd));
	io_hits = 0;
	ASSERT_OK(pthread_create(&th, NULL, write_later, &p[1]));
	ASSERT_GT(host_strict(loop, fd, io_done, 3000), 0);
	pthread_join(th, NULL);
	ASSERT_EQ(io_hits, 1);
	evq_io_stop(&w);
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

/* A watcher on a regular file (a memfd) is always ready: epoll and the
 * epoll set under io_uring refuse such files, evq reports them on every
 * wait, and nothing makes the loop fd readable for them. So
 * evq_loop_timeout() must say 0 while one is watched, or a host that
 * sleeps as told never runs the watcher (found by test_random). */
static int a_watched_regular_file_keeps_the_host_running(void)
{
	struct evq_io w = { 0 };
	struct evq_loop *loop;
	int r, fd, mfd;

	loop = embed_loop(&fd);
	ASSERT_NOTNULL(loop);
	if ((r = embed_check(loop, fd)) != T_PASS)
		return r;
	mfd = memfd_create("evq-embed", MFD_CLOEXEC);
	ASSERT_GE(mfd, 0);
	ASSERT_OK(evq_io_start(loop, &w, mfd, EVQ_READ, io_cb));
	T_STEP("a strict host runs the watcher again and again");
	io_hits = 0;
	ASSERT_GT(host_strict(loop, fd, three_hits, 3000), 0);
	ASSERT_GE(io_hits, 3);
	T_STEP("stopped: the host may sleep again");
	evq_io_stop(&w);
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(evq_loop_timeout(loop), -1);
	close(mfd);
	t_loop_free(loop);
	return T_PASS;
}

/* aio: the last watcher's stop cancels its poll, and the cancelled
 * poll's completion signals the loop fd; but a run with nothing active
 * returns before it waits, so nothing reads the eventfd and it stays
 * readable: a host that polls it spins until something is started again.
 * evq.h promises a run "then finds nothing". Found by the random model
 * (feat/stress); an embedded loop's NOWAIT run now looks once even with
 * nothing active. */
static int a_host_sleeps_once_the_last_watcher_stops(void)
{
	struct evq_io w = { 0 };
	struct evq_loop *loop;
	int r, fd, p[2];

	loop = embed_loop(&fd);
	ASSERT_NOTNULL(loop);
	if ((r = embed_check(loop, fd)) != T_PASS)
		return r;
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, io_cb));
	for (int i = 0; i < 3; i++)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	T_STEP("the only watcher stops: the loop settles");
	evq_io_stop(&w);
	ASSERT_TRUE(t_loop_settles(loop, fd));
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

/* An fsync op's completion wakes the host: native on aio
 * (IOCB_CMD_FSYNC), the thread pool elsewhere. Once submitted before the
 * loop fd exists (aio: an iocb in flight without IOCB_FLAG_RESFD, which
 * cannot be re-armed: the loop must say it is busy until it is done),
 * once after. */
static int fsync_op_reaches_host(void)
{
	struct evq_op op = { 0 };
	struct evq_loop *loop = t_loop_new();
	const char *dir = getenv("TMPDIR");
	char path[256];
	int fd, file;

	ASSERT_NOTNULL(loop);
	snprintf(path, sizeof(path), "%s/evq-embed-XXXXXX",
		 dir && *dir ? dir : "/tmp");
	file = mkstemp(path);
	ASSERT_GE(file, 0);
	unlink(path);
	ASSERT_EQ(write(file, "data", 4), 4);

	T_STEP("an fsync in flight before the loop fd is made");
	op_hits = 0;
	evq_prep_fsync(&op, file, 0);
	ASSERT_OK(evq_op_submit(loop, &op, 0, op_cb));
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	fd = evq_loop_fd(loop);
	if (!has_loop_fd()) {
		ASSERT_ERR(fd, -ENOTSUP);
		close(file);
		t_loop_free(loop);
		return t_skip("no loop fd on %s (documented)", t_backend());
	}
	ASSERT_GE(fd, 0);
	ASSERT_GE(host_strict(loop, fd, op_done, 3000), 0);
	ASSERT_EQ(op_hits, 1);
	ASSERT_OK(op_res);

	T_STEP("an fsync submitted with the loop fd in place");
	ASSERT_TRUE(t_loop_settles(loop, fd));
	op_hits = 0;
	ASSERT_EQ(write(file, "more", 4), 4);
	evq_prep_fsync(&op, file, EVQ_FSYNC_DATASYNC);
	ASSERT_OK(evq_op_submit(loop, &op, 0, op_cb));
	ASSERT_GT(host_strict(loop, fd, op_done, 3000), 0);
	ASSERT_EQ(op_hits, 1);
	ASSERT_OK(op_res);
	ASSERT_TRUE(t_loop_settles(loop, fd));
	close(file);
	t_loop_free(loop);
	return T_PASS;
}

static int loop_fd_errors(void)
{
	ASSERT_ERR(evq_loop_fd(NULL), -EINVAL);
	ASSERT_ERR(evq_loop_timeout(NULL), -EINVAL);
	{
		struct evq_loop *loop = t_loop_new();
		int fd;

		ASSERT_NOTNULL(loop);
		fd = evq_loop_fd(loop);
		if (has_loop_fd()) {
			T_STEP("%s has a loop fd, the same on every call",
			       t_backend());
			ASSERT_GE(fd, 0);
			ASSERT_EQ(evq_loop_fd(loop), fd);
		} else {
			T_STEP("%s has none: -ENOTSUP", t_backend());
			ASSERT_ERR(fd, -ENOTSUP);
		}
		t_loop_free(loop);
	}
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(fd_event_reaches_host),
	T_CASE(timer_reaches_host),
	T_CASE(op_completion_reaches_host),
	T_CASE(watch_another_loops_fd),
	T_CASE(loop_fd_same_across_rebuild),
	T_CASE(loop_fd_errors),
	T_CASE(idle_host_sleeps_and_wakes_for_each_event),
	T_CASE(loop_fd_made_after_a_watch_is_armed),
	T_CASE(op_submitted_by_a_callback_reaches_host),
	T_CASE(fsync_op_reaches_host),
	T_CASE(a_watched_regular_file_keeps_the_host_running),
	T_CASE(a_host_sleeps_once_the_last_watcher_stops),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
