/* SPDX-License-Identifier: MIT */
/*
 * test_dispatch.c - what happens between the kernel's report and the
 * callbacks: fairness among always-ready fds, watchers stopped, freed or
 * closed by an earlier callback of the same batch, and close-safety when
 * an fd number is closed and reused behind the loop's back.
 *
 * Run it under AddressSanitizer: a callback that runs for a freed watcher
 * is a use-after-free. Without ASan, the registry of live watchers below
 * catches most of the same mistakes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Heap watchers and the registry of live ones
 * ------------------------------------------------------------------------ */

#define MAXW 128

struct hw {
	struct evq_io io;
	int idx;
	int fd;
	int count;
	void (*hook)(struct evq_loop *loop, struct hw *self);
};

static struct hw *live[MAXW];	/* NULL once freed */
static int nlive;
static int calls_in_batch;
static int first_idx;

static bool is_live(const struct evq_io *w)
{
	for (int i = 0; i < nlive; i++)
		if (live[i] && &live[i]->io == w)
			return true;
	return false;
}

static void hw_cb(struct evq_loop *loop, struct evq_io *w, unsigned revents)
{
	struct hw *h;

	(void)revents;
	if (!is_live(w)) {
		/* Reading w->data here would be the use-after-free itself. */
		T_FAILF("callback ran for a freed or foreign watcher %p",
			(void *)w);
		return;
	}
	h = w->data;
	h->count++;
	if (calls_in_batch++ == 0)
		first_idx = h->idx;
	if (h->hook)
		h->hook(loop, h);
}

static struct hw *hw_new(struct evq_loop *loop, int fd, unsigned events)
{
	struct hw *h = calloc(1, sizeof(*h));
	int r;

	if (!h || nlive == MAXW) {
		T_FAILF("out of watchers");
		free(h);
		return NULL;
	}
	h->io.data = h;
	h->idx = nlive;
	h->fd = fd;
	r = evq_io_start(loop, &h->io, fd, events, hw_cb);
	if (r != 0) {
		EXPECT_OK(r);
		free(h);
		return NULL;
	}
	live[nlive++] = h;
	return h;
}

static void hw_free(struct hw *h)
{
	EXPECT_OK(evq_io_stop(&h->io));
	live[h->idx] = NULL;
	free(h);
}

static void hw_reset(void)
{
	for (int i = 0; i < nlive; i++)
		if (live[i])
			hw_free(live[i]);
	nlive = 0;
	calls_in_batch = 0;
	first_idx = -1;
}

/* ------------------------------------------------------------------------
 * Fairness
 * ------------------------------------------------------------------------ */

#define NFAIR 100
#define KFAIR 50	/* iterations, when all fds fit in one wait */

static int fairness(unsigned max_events)
{
	struct evq_loop_options opts = { 0 };
	struct evq_loop *loop;
	int fds[NFAIR][2], prev[NFAIR], i, k, iters = KFAIR;

	/* Enough iterations for every watcher to get two turns. */
	if (max_events && KFAIR * max_events < 2 * NFAIR)
		iters = (2 * NFAIR + (int)max_events - 1) / (int)max_events;

	opts.max_events = max_events;
	loop = t_loop_new_opts(&opts);
	ASSERT_NOTNULL(loop);
	hw_reset();
	for (i = 0; i < NFAIR; i++) {
		ASSERT_OK(t_pipe(fds[i]));
		ASSERT_OK(t_write_byte(fds[i][1]));	/* never consumed */
		ASSERT_NOTNULL(hw_new(loop, fds[i][0], EVQ_READ));
	}
	for (k = 1; k <= iters; k++) {
		int min = 1 << 30, max = -1;

		T_STEP("iteration %d of %d, max_events %u", k, iters,
		       max_events);
		for (i = 0; i < NFAIR; i++)
			prev[i] = live[i]->count;
		ASSERT_EQ(t_run_once(loop, 5000), 1);
		for (i = 0; i < NFAIR; i++) {
			int c = live[i]->count;

			/* At most once per iteration. */
			if (c - prev[i] > 1)
				ASSERT_LE(c - prev[i], 1);
			if (c < min)
				min = c;
			if (c > max)
				max = c;
		}
		ASSERT_GT(max, 0);
		ASSERT_LE(max - min, 1);
	}
	T_STEP("every watcher ran");
	for (i = 0; i < NFAIR; i++)
		ASSERT_GE(live[i]->count, 1);
	hw_reset();
	for (i = 0; i < NFAIR; i++)
		t_close2(fds[i]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int fairness_100_ready(void)
{
	return fairness(0);
}

/* Fewer events per wait than ready fds: the ones left over must come
 * first next time, or some watchers starve. */
static int fairness_100_ready_max_events_16(void)
{
	return fairness(16);
}

static int fairness_100_ready_max_events_1(void)
{
	return fairness(1);
}

/* ------------------------------------------------------------------------
 * Stopped and freed in the same batch
 * ------------------------------------------------------------------------ */

static void free_all_others(struct evq_loop *loop, struct hw *self)
{
	(void)loop;
	for (int i = 0; i < nlive; i++)
		if (live[i] && live[i] != self)
			hw_free(live[i]);
}

static void stop_all_others(struct evq_loop *loop, struct hw *self)
{
	(void)loop;
	for (int i = 0; i < nlive; i++)
		if (live[i] && live[i] != self)
			EXPECT_OK(evq_io_stop(&live[i]->io));
}

static void free_self(struct evq_loop *loop, struct hw *self)
{
	(void)loop;
	hw_free(self);
}

/* n ready watchers, each on its own pipe or all on one; each callback
 * runs `hook`. Over three iterations, want_calls callbacks in all. */
static int batch_case(int n, bool one_fd, void (*hook)(struct evq_loop *,
						       struct hw *),
		      int want_calls)
{
	struct evq_loop *loop = t_loop_new();
	int fds[16][2], i, npipes = one_fd ? 1 : n;

	ASSERT_NOTNULL(loop);
	ASSERT_LE(n, 16);
	hw_reset();
	for (i = 0; i < npipes; i++) {
		ASSERT_OK(t_pipe(fds[i]));
		ASSERT_OK(t_write_byte(fds[i][1]));
	}
	for (i = 0; i < n; i++) {
		struct hw *h = hw_new(loop, fds[one_fd ? 0 : i][0], EVQ_READ);

		ASSERT_NOTNULL(h);
		h->hook = hook;
	}
	T_STEP("the batch with all %d ready", n);
	ASSERT_GE(t_run_once(loop, 5000), 0);
	T_STEP("two more iterations");
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(calls_in_batch, want_calls);
	hw_reset();
	for (i = 0; i < npipes; i++)
		t_close2(fds[i]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* The first callback frees every other ready watcher: only it runs, now
 * and afterwards (it stays ready: 3 runs over 3 iterations). */
static int free_other_ready_watcher(void)
{
	T_STEP("separate fds");
	if (batch_case(10, false, free_all_others, 3) != T_PASS)
		return T_FAIL;
	T_STEP("one fd, ten watchers");
	return batch_case(10, true, free_all_others, 3);
}

static int stop_other_ready_watcher(void)
{
	T_STEP("separate fds");
	if (batch_case(10, false, stop_all_others, 3) != T_PASS)
		return T_FAIL;
	return batch_case(10, true, stop_all_others, 3);
}

/* Each callback stops and frees itself: each runs exactly once. */
static int free_self_in_callback(void)
{
	T_STEP("separate fds");
	if (batch_case(10, false, free_self, 10) != T_PASS)
		return T_FAIL;
	return batch_case(10, true, free_self, 10);
}

/* ------------------------------------------------------------------------
 * Closed by an earlier callback of the batch
 * ------------------------------------------------------------------------ */

static bool reuse_wanted;	/* reopen a pipe on the closed number */
static int reuse_pipe[2] = { -1, -1 };

static void close_others_fd(struct evq_loop *loop, struct hw *self)
{
	(void)loop;
	/* Only the first callback closes: a late report delivered to the
	 * other watcher (allowed, see close_other_in_batch) must not close
	 * the first one's fd in turn. */
	for (int i = 0; i < nlive; i++)
		if (live[i])
			live[i]->hook = NULL;
	for (int i = 0; i < nlive; i++) {
		if (!live[i] || live[i] == self || live[i]->fd < 0)
			continue;
		close(live[i]->fd);	/* no evq_io_stop: plain close() */
		if (reuse_wanted) {
			/* Make the number point at a new, readable file. */
			reuse_wanted = false;
			if (t_pipe(reuse_pipe) == 0) {
				EXPECT_EQ(reuse_pipe[0], live[i]->fd);
				EXPECT_OK(t_write_byte(reuse_pipe[1]));
			}
		}
		live[i]->fd = -1;
	}
}

static int close_other_in_batch(bool reuse)
{
	struct evq_loop *loop = t_loop_new();
	int a[2], b[2], i, other, seen;
	struct hw *h[2];

	ASSERT_NOTNULL(loop);
	hw_reset();
	reuse_wanted = reuse;
	ASSERT_OK(t_pipe(a));
	ASSERT_OK(t_pipe(b));
	ASSERT_OK(t_write_byte(a[1]));
	ASSERT_OK(t_write_byte(b[1]));
	ASSERT_NOTNULL(h[0] = hw_new(loop, a[0], EVQ_READ));
	ASSERT_NOTNULL(h[1] = hw_new(loop, b[0], EVQ_READ));
	h[0]->hook = h[1]->hook = close_others_fd;
	T_STEP("one batch; the first callback closes the other's fd");
	ASSERT_GE(t_run_once(loop, 5000), 0);
	ASSERT_GE(first_idx, 0);
	other = !first_idx;
	ASSERT_EQ(h[first_idx]->count, 1);
	/* evq.h, close-safety, first limit: the other's report was
	 * collected before the close, in this batch; it may still be
	 * delivered, once. Nothing collected after the close may be. */
	ASSERT_LE(h[other]->count, 1);
	seen = h[other]->count;
	for (i = 0; i < 3; i++) {
		T_STEP("later iteration %d: the closed watcher stays silent",
		       i);
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		/* poll's and aio's documented limit: a reused number that
		 * nobody starts a watcher on is polled for the old watcher
		 * (on aio until its check, once per EVQ_IO_STALE_LIMIT
		 * reports). */
		if (reuse && (t_backend_is("poll") || t_backend_is("aio")))
			continue;
		ASSERT_EQ(h[other]->count, seen);
	}
	T_STEP("its owner stops it: harmless, and final");
	ASSERT_OK(evq_io_stop(&h[other]->io));
	seen = h[other]->count;
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(h[other]->count, seen);
	ASSERT_EQ(h[first_idx]->count, 5);
	hw_reset();
	/* Close what is still open. */
	t_close(other ? a[0] : b[0]);
	t_close(a[1]);
	t_close(b[1]);
	if (reuse)
		t_close2(reuse_pipe);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int close_other_ready_fd(void)
{
	return close_other_in_batch(false);
}

/* ... and the number is reused at once by a new, readable pipe. */
static int close_other_ready_fd_and_reuse(void)
{
	return close_other_in_batch(true);
}

/* ------------------------------------------------------------------------
 * Close-safety: fd numbers closed and reused behind the loop's back
 * ------------------------------------------------------------------------ */

enum reuse_kind {
	REUSE_ACTIVE,		/* A active, close, reuse, start B */
	REUSE_STOPPED,		/* A stopped (not flushed), close, ... */
	REUSE_NEVER_RUN,	/* A started, never a loop iteration */
	REUSE_STOP_LATER,	/* as ACTIVE, then A's owner stops A */
	REUSE_STOP_AT_ONCE,	/* as ACTIVE, A stopped right after B starts */
};

static int close_reuse(enum reuse_kind kind, bool socket)
{
	struct evq_loop *loop = t_loop_new();
	int p1[2], p2[2], n, i;
	struct hw *A, *B;

	ASSERT_NOTNULL(loop);
	hw_reset();
	ASSERT_OK(t_pipe(p1));
	n = p1[0];
	ASSERT_NOTNULL(A = hw_new(loop, n, EVQ_READ));
	if (kind != REUSE_NEVER_RUN) {
		T_STEP("A registered and idle");
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(A->count, 0);
	}
	/* Unconsumed data on the old file, so a stale report is possible. */
	ASSERT_OK(t_write_byte(p1[1]));
	if (kind == REUSE_STOPPED)
		ASSERT_OK(evq_io_stop(&A->io));

	T_STEP("close fd %d and reuse the number", n);
	t_close2(p1);
	if (socket)
		ASSERT_OK(t_socketpair(p2));
	else
		ASSERT_OK(t_pipe(p2));
	ASSERT_EQ(p2[0], n);
	ASSERT_NOTNULL(B = hw_new(loop, n, EVQ_READ));
	if (kind == REUSE_STOP_AT_ONCE)
		ASSERT_OK(evq_io_stop(&A->io));

	T_STEP("the new file is idle: nobody runs");
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(A->count, 0);
	ASSERT_EQ(B->count, 0);

	T_STEP("data on the new file: B runs, A does not");
	ASSERT_OK(t_write_byte(p2[1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(B->count, 1);
	ASSERT_EQ(A->count, 0);
	if (kind == REUSE_STOP_LATER) {
		T_STEP("A's owner stops A late");
		ASSERT_OK(evq_io_stop(&A->io));
		ASSERT_EQ(evq_io_is_active(&A->io), 0);
	}
	for (i = 0; i < 3; i++) {
		T_STEP("level-triggered B, iteration %d", i);
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(B->count, 2 + i);
		ASSERT_EQ(A->count, 0);
	}
	T_STEP("stopping A at the end is harmless too");
	ASSERT_OK(evq_io_stop(&A->io));
	ASSERT_EQ(evq_io_is_active(&B->io), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(B->count, 5);
	ASSERT_EQ(A->count, 0);
	hw_reset();
	t_close2(p2);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int close_reuse_active(void)
{
	if (close_reuse(REUSE_ACTIVE, false) != T_PASS)
		return T_FAIL;
	T_STEP("reused by a socket");
	return close_reuse(REUSE_ACTIVE, true);
}

static int close_reuse_stopped_not_flushed(void)
{
	return close_reuse(REUSE_STOPPED, false);
}

static int close_reuse_before_first_iteration(void)
{
	return close_reuse(REUSE_NEVER_RUN, false);
}

static int close_reuse_then_owner_stops_old(void)
{
	if (close_reuse(REUSE_STOP_LATER, false) != T_PASS)
		return T_FAIL;
	return close_reuse(REUSE_STOP_AT_ONCE, false);
}

/* A active on N; close(N); the number is reused by a file that evq is not
 * asked to watch. A must never run, however ready the new file is. poll
 * watches numbers and cannot tell (evq.h, close-safety, third limit);
 * aio has the same limit, bounded: its re-arm polls the new file, and
 * the check once per EVQ_IO_STALE_LIMIT reports ends the watch. */
static int close_reuse_unwatched(void)
{
	struct evq_loop *loop;
	int p1[2], p2[2], n, i;
	struct hw *A;

	if (t_backend_is("poll"))
		return t_skip("documented limit of poll: numbers, not files");
	loop = t_loop_new();
	ASSERT_NOTNULL(loop);
	hw_reset();
	ASSERT_OK(t_pipe(p1));
	n = p1[0];
	ASSERT_NOTNULL(A = hw_new(loop, n, EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	T_STEP("close %d, reuse it, make the new file readable", n);
	t_close2(p1);
	ASSERT_OK(t_pipe(p2));
	ASSERT_EQ(p2[0], n);
	ASSERT_OK(t_write_byte(p2[1]));
	if (t_backend_is("aio")) {
		/* The old file's poll is still pending (it holds the
		 * file): it completes when that file's HUP reaches it,
		 * from a kernel work item, so wait for it. Then the
		 * re-arm polls the new file. */
		T_STEP("aio: the old file's HUP, then the new file's "
		       "reports, until the check");
		ASSERT_GE(t_run_once(loop, 2000), 0);
		for (i = 0; evq_io_is_active(&A->io) &&
			    i < 4 * EVQ_IO_STALE_LIMIT; i++)
			ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		t_note("%d runs, %d callbacks", i, A->count);
		ASSERT_EQ(evq_io_is_active(&A->io), 0);
		ASSERT_LE(A->count, EVQ_IO_STALE_LIMIT + 1);
	}
	for (i = 0; i < 3; i++) {
		int seen = A->count;

		T_STEP("iteration %d", i);
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		ASSERT_EQ(A->count, seen);
	}
	ASSERT_OK(evq_io_stop(&A->io));
	hw_reset();
	t_close2(p2);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* The old file outlives the number (a dup elsewhere) and becomes ready;
 * the number is reused and watched by B, whose file stays idle. Neither
 * may run: the old file's readiness belongs to nobody. */
static int close_reuse_old_file_kept_by_dup(void)
{
	struct evq_loop *loop = t_loop_new();
	int p1[2], p2[2], n, d, i;
	struct hw *A, *B;

	ASSERT_NOTNULL(loop);
	hw_reset();
	ASSERT_OK(t_pipe(p1));
	n = p1[0];
	ASSERT_NOTNULL(A = hw_new(loop, n, EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	d = dup(n);
	ASSERT_GE(d, 0);
	T_STEP("close %d (dup %d keeps the file), reuse the number", n, d);
	close(n);
	ASSERT_OK(t_pipe(p2));
	ASSERT_EQ(p2[0], n);
	ASSERT_NOTNULL(B = hw_new(loop, n, EVQ_READ));
	T_STEP("the old file becomes readable");
	ASSERT_OK(t_write_byte(p1[1]));
	for (i = 0; i < 3; i++) {
		T_STEP("iteration %d: neither A nor B", i);
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(A->count, 0);
		ASSERT_EQ(B->count, 0);
	}
	T_STEP("the new file becomes readable: B");
	ASSERT_OK(t_write_byte(p2[1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(B->count, 1);
	ASSERT_EQ(A->count, 0);
	ASSERT_OK(evq_io_stop(&A->io));
	hw_reset();
	t_close2(p2);
	close(d);
	close(p1[1]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Like the above without reuse: the old file is kept open by a dup and
 * becomes readable. A must never run. epoll keeps reporting a file that
 * is open elsewhere under the old number until evq notices (evq.h,
 * close-safety, second limit). */
static int close_with_dup_alive(void)
{
	struct evq_loop *loop;
	int p1[2], n, d, i;
	struct hw *A;

	if (t_backend_is("epoll") || t_backend_is("uring"))
		return t_skip("documented limit of epoll (uring waits on an "
			      "epoll set): a dup keeps the registration");
	loop = t_loop_new();
	ASSERT_NOTNULL(loop);
	hw_reset();
	ASSERT_OK(t_pipe(p1));
	n = p1[0];
	ASSERT_NOTNULL(A = hw_new(loop, n, EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	d = dup(n);
	ASSERT_GE(d, 0);
	T_STEP("close %d (dup %d keeps the file), then data", n, d);
	close(n);
	ASSERT_OK(t_write_byte(p1[1]));
	for (i = 0; i < 3; i++) {
		T_STEP("iteration %d: A never runs", i);
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		/* aio's documented limit: its pending poll's completion
		 * (the file's next event) is reported once; the re-arm
		 * finds the number closed and ends the watch. */
		if (t_backend_is("aio")) {
			ASSERT_LE(A->count, 1);
			continue;
		}
		ASSERT_EQ(A->count, 0);
	}
	if (t_backend_is("aio"))
		ASSERT_EQ(evq_io_is_active(&A->io), 0);
	ASSERT_OK(evq_io_stop(&A->io));
	hw_reset();
	close(d);
	close(p1[1]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static void noop_timer_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
}

/* The same on epoll and uring, where the kernel keeps reporting the file
 * that a dup keeps open: the watcher may run, but at most
 * EVQ_IO_STALE_LIMIT times (evq.h), then it is stopped, and the loop goes
 * idle instead of spinning on the dead registration. */
static int close_with_dup_alive_stops_within_bound(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_timer tick = { 0 };
	int p1[2], n, d, runs;
	struct hw *A;

	ASSERT_NOTNULL(loop);
	hw_reset();
	ASSERT_OK(t_pipe(p1));
	n = p1[0];
	ASSERT_NOTNULL(A = hw_new(loop, n, EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	d = dup(n);
	ASSERT_GE(d, 0);
	T_STEP("close %d (dup %d keeps the file), then data", n, d);
	close(n);
	ASSERT_OK(t_write_byte(p1[1]));
	for (runs = 0; evq_io_is_active(&A->io) && runs < 1000; runs++)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	t_note("stopped after %d runs, %d callbacks", runs, A->count);
	ASSERT_EQ(evq_io_is_active(&A->io), 0);
	ASSERT_LE(A->count, EVQ_IO_STALE_LIMIT);
	ASSERT_EQ(evq_loop_active(loop), 0);

	T_STEP("the loop blocks again: a 50 ms timer takes few iterations");
	ASSERT_OK(evq_timer_start(loop, &tick, 50 * T_MS, 0, noop_timer_cb));
	for (runs = 0; evq_timer_is_active(&tick) && runs < 100; runs++)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
	ASSERT_LE(runs, 3);
	hw_reset();
	close(d);
	close(p1[1]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Make the lowest free fd number `n`: fill every hole below it with a
 * placeholder (closed by fillers_close). Returns how many it made. */
static int fillers[64];

static int fill_below(int n)
{
	int k = 0, fd;

	while (k < 64 && (fd = dup(0)) >= 0) {
		if (fd > n) {
			close(fd);
			break;
		}
		fillers[k++] = fd;
	}
	return k;
}

static void fillers_close(int k)
{
	while (k > 0)
		close(fillers[--k]);
}

/* epoll and uring drop a registration that outlived its fd (a dup keeps
 * the file) by rebuilding their epoll set. If a watched fd was closed
 * behind the loop's back just before, the new set's fd can take that very
 * number: its watcher must end (it is the fd's watcher that was closed),
 * not stay active with nothing registered, and the loop must go on
 * working - on uring through the ring too (uring-ring). */
static int rebuild_takes_number_of_closed_watched_fd(void)
{
	struct evq_loop *loop = t_loop_new();
	int pa[2], p1[2], p2[2], pc[2], n, a, d, i, k, a_runs;
	struct hw *A, *S, *B, *C;

	ASSERT_NOTNULL(loop);
	hw_reset();
	ASSERT_OK(t_pipe(pa));
	a = pa[0];
	ASSERT_NOTNULL(A = hw_new(loop, a, EVQ_READ));
	ASSERT_OK(t_pipe(p1));
	n = p1[0];
	ASSERT_NOTNULL(S = hw_new(loop, n, EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);

	T_STEP("a registration outlives fd %d (dup), its number is reused", n);
	d = dup(n);
	ASSERT_GE(d, 0);
	close(n);
	ASSERT_OK(t_pipe(p2));
	ASSERT_EQ(p2[0], n);
	ASSERT_NOTNULL(B = hw_new(loop, n, EVQ_READ));
	ASSERT_EQ(evq_io_is_active(&S->io), 0);
	ASSERT_OK(t_write_byte(p1[1]));	/* the dead registration reports */
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);

	T_STEP("close A's fd %d behind the loop's back, lowest free number",
	       a);
	k = fill_below(a);
	close(a);
	/* aio notices a closed fd after its file's next event (evq.h);
	 * the other backends see EPIPE here: nobody has the file open. */
	if (write(pa[1], "x", 1) < 0)
		ASSERT_ERR(-errno, -EPIPE);
	for (i = 0; i < 3; i++)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	t_note("fd %d after the runs: %s", a,
	       fcntl(a, F_GETFD) >= 0 ? "taken (the new epoll set)" : "free");
	fillers_close(k);
	/* aio: the file's next event is reported once (evq.h). */
	ASSERT_LE(A->count, t_backend_is("aio") ? 1 : 0);
	a_runs = A->count;
	ASSERT_EQ(evq_io_is_active(&A->io), 0);
	ASSERT_EQ(evq_io_is_active(&B->io), 1);
	ASSERT_EQ(B->count, 0);

	T_STEP("the loop still works: B, and a watcher started now");
	ASSERT_OK(t_pipe(pc));
	ASSERT_NOTNULL(C = hw_new(loop, pc[0], EVQ_READ));
	ASSERT_OK(t_write_byte(pc[1]));
	ASSERT_EQ(t_run_once(loop, 3000), 1);
	ASSERT_EQ(C->count, 1);
	ASSERT_OK(t_write_byte(p2[1]));
	for (i = 0; i < 3 && B->count == 0; i++)
		ASSERT_EQ(t_run_once(loop, 3000), 1);
	ASSERT_GE(B->count, 1);
	ASSERT_EQ(A->count, a_runs);
	ASSERT_EQ(S->count, 0);
	hw_reset();
	t_close2(p2);
	t_close2(pc);
	close(pa[1]);
	close(d);
	close(p1[1]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * A callback that replaces the fd's file and starts a watcher on it
 * ------------------------------------------------------------------------ */

struct rw {
	struct evq_io io;
	int count;
};

static struct rw reuse_w[2], reuse_new;
static int reuse_q[2] = { -1, -1 };

static void reuse_new_cb(struct evq_loop *loop, struct evq_io *w,
			 unsigned ev)
{
	char c;

	(void)loop;
	(void)ev;
	reuse_new.count++;
	/* Only data written to the new pipe may wake this watcher. */
	EXPECT_EQ(read(w->fd, &c, 1), 1);
}

/* The first of two watchers of a readable pipe closes the fd (dup2 puts
 * an empty pipe on its number) and starts a new watcher on the number,
 * all inside its callback. The report being dispatched belongs to the old
 * file: neither the second old watcher (now stopped) nor the new one may
 * run for it. The loop checks the fd's generation after every callback
 * of a multi-watcher dispatch (src/core/loop.c, dispatch_fd); without
 * that check the new watcher runs for the old file's event. */
static void reuse_cb(struct evq_loop *loop, struct evq_io *w, unsigned ev)
{
	struct rw *self = (struct rw *)w;
	int fd = w->fd;

	(void)ev;
	self->count++;
	if (reuse_new.count || evq_io_is_active(&reuse_new.io))
		return;	/* done already: this is the other old watcher */
	EXPECT_EQ(dup2(reuse_q[0], fd), fd);
	EXPECT_OK(evq_io_start(loop, &reuse_new.io, fd, EVQ_READ,
			       reuse_new_cb));
}

static int callback_reuses_number_and_starts_watcher(void)
{
	struct evq_loop *loop = t_loop_new();
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(t_pipe(reuse_q));
	memset(reuse_w, 0, sizeof(reuse_w));
	memset(&reuse_new, 0, sizeof(reuse_new));
	T_STEP("two watchers of a readable pipe");
	ASSERT_OK(evq_io_start(loop, &reuse_w[0].io, p[0], EVQ_READ,
			       reuse_cb));
	ASSERT_OK(evq_io_start(loop, &reuse_w[1].io, p[0], EVQ_READ,
			       reuse_cb));
	ASSERT_OK(t_write_byte(p[1]));

	T_STEP("the first callback replaces the file, starts a watcher");
	ASSERT_EQ(t_run_once(loop, 2000), 1);
	ASSERT_EQ(reuse_w[0].count + reuse_w[1].count, 1);
	ASSERT_TRUE(evq_io_is_active(&reuse_new.io));
	ASSERT_EQ(reuse_new.count, 0);
	T_STEP("the other old watcher is stopped");
	ASSERT_EQ(evq_io_is_active(&reuse_w[0].io) +
		  evq_io_is_active(&reuse_w[1].io), 0);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(reuse_new.count, 0);
	ASSERT_EQ(reuse_w[0].count + reuse_w[1].count, 1);

	T_STEP("data in the new pipe wakes the new watcher");
	ASSERT_OK(t_write_byte(reuse_q[1]));
	ASSERT_EQ(t_run_once(loop, 2000), 1);
	ASSERT_EQ(reuse_new.count, 1);
	ASSERT_OK(evq_io_stop(&reuse_new.io));
	close(p[0]);		/* the number: now the new pipe's dup */
	close(p[1]);
	t_close2(reuse_q);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(fairness_100_ready),
	T_CASE(fairness_100_ready_max_events_16),
	T_CASE(fairness_100_ready_max_events_1),
	T_CASE(free_other_ready_watcher),
	T_CASE(stop_other_ready_watcher),
	T_CASE(free_self_in_callback),
	T_CASE(close_other_ready_fd),
	T_CASE(close_other_ready_fd_and_reuse),
	T_CASE(close_reuse_active),
	T_CASE(close_reuse_stopped_not_flushed),
	T_CASE(close_reuse_before_first_iteration),
	T_CASE(close_reuse_then_owner_stops_old),
	T_CASE(close_reuse_unwatched),
	T_CASE(close_reuse_old_file_kept_by_dup),
	T_CASE(close_with_dup_alive),
	T_CASE(close_with_dup_alive_stops_within_bound),
	T_CASE(rebuild_takes_number_of_closed_watched_fd),
	T_CASE(callback_reuses_number_and_starts_watcher),
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return t_main(argc, argv, cases, T_NELEM(cases));
}
