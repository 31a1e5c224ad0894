/* SPDX-License-Identifier: MIT */
/*
 * test_io.c - fd watchers: read/write readiness on pipes and sockets,
 * level-triggered, one-shot and edge-triggered delivery, changing interest
 * with evq_io_set, several watchers and loops on one fd, argument errors,
 * hang-up, and 10,000 watched fds at once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <limits.h>
#include <signal.h>
#include <unistd.h>

/* A watcher with a record of what its callback saw. */
struct tw {
	struct evq_io io;
	int count;		/* callback runs */
	unsigned last;		/* revents of the last run */
	unsigned ored;		/* all revents seen, or'ed */
	int active_in_cb;	/* evq_io_is_active() inside the last run */
	/* optional action, run from the callback after recording */
	void (*hook)(struct evq_loop *loop, struct tw *self, unsigned revents);
	void *arg;
	int n;			/* for hooks */
};

static void tw_cb(struct evq_loop *loop, struct evq_io *w, unsigned revents)
{
	struct tw *t = w->data;

	EXPECT_TRUE(t != NULL && &t->io == w);
	t->count++;
	t->last = revents;
	t->ored |= revents;
	t->active_in_cb = evq_io_is_active(w);
	/* Only the bits of the API, and at least one of them. */
	EXPECT_EQ(revents & ~(EVQ_READ | EVQ_WRITE), 0);
	EXPECT_NE(revents & (EVQ_READ | EVQ_WRITE), 0);
	if (t->hook)
		t->hook(loop, t, revents);
}

/* Start t afresh. Only for an inactive watcher: it clears evq's fields. */
static int tw_start(struct evq_loop *loop, struct tw *t, int fd,
		    unsigned events)
{
	memset(t, 0, sizeof(*t));
	t->io.data = t;
	return evq_io_start(loop, &t->io, fd, events, tw_cb);
}

static void tw_reset(struct tw *t)
{
	t->count = 0;
	t->last = t->ored = 0;
}

/* ------------------------------------------------------------------------ */

static int pipe_read_readiness(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw r;
	int fds[2];
	char c;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(tw_start(loop, &r, fds[0], EVQ_READ));
	ASSERT_EQ(r.count, 0);	/* never from inside start */
	T_STEP("empty pipe: nothing");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 0);
	T_STEP("one byte: READ");
	ASSERT_OK(t_write_byte(fds[1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(r.count, 1);
	ASSERT_EQ(r.last, EVQ_READ);
	ASSERT_EQ(r.active_in_cb, 1);
	T_STEP("consumed: nothing more");
	ASSERT_EQ(read(fds[0], &c, 1), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 1);
	ASSERT_OK(evq_io_stop(&r.io));
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int pipe_write_readiness(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw w;
	int fds[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(tw_start(loop, &w, fds[1], EVQ_WRITE));
	T_STEP("empty pipe: WRITE");
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(w.count, 1);
	ASSERT_EQ(w.last, EVQ_WRITE);
	T_STEP("full pipe: nothing");
	ASSERT_GT(t_fill(fds[1]), 0);
	tw_reset(&w);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(w.count, 0);
	T_STEP("drained: WRITE again");
	ASSERT_GT(t_drain(fds[0]), 0);
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(w.count, 1);
	ASSERT_EQ(w.last, EVQ_WRITE);
	ASSERT_OK(evq_io_stop(&w.io));
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int socketpair_read_write(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw w;
	int sv[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(tw_start(loop, &w, sv[0], EVQ_READ | EVQ_WRITE));
	T_STEP("idle socket: WRITE only");
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(w.count, 1);
	ASSERT_EQ(w.last, EVQ_WRITE);
	T_STEP("peer wrote: READ|WRITE");
	ASSERT_OK(t_write_byte(sv[1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(w.count, 2);
	ASSERT_EQ(w.last, EVQ_READ | EVQ_WRITE);
	T_STEP("READ-only watcher on the same socket");
	ASSERT_OK(evq_io_stop(&w.io));
	ASSERT_OK(tw_start(loop, &w, sv[0], EVQ_READ));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(w.count, 1);
	ASSERT_EQ(w.last, EVQ_READ);
	T_STEP("the peer's WRITE watcher");
	{
		struct tw p;

		ASSERT_OK(tw_start(loop, &p, sv[1], EVQ_WRITE));
		ASSERT_EQ(t_run_once(loop, 5000), 1);
		ASSERT_EQ(p.count, 1);
		ASSERT_EQ(p.last, EVQ_WRITE);
		ASSERT_OK(evq_io_stop(&p.io));
	}
	ASSERT_OK(evq_io_stop(&w.io));
	t_close2(sv);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int level_triggered_refires(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw r;
	int fds[2], i;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(tw_start(loop, &r, fds[0], EVQ_READ));
	ASSERT_OK(t_write_byte(fds[1]));
	for (i = 1; i <= 5; i++) {
		T_STEP("unconsumed data, iteration %d", i);
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(r.count, i);	/* once per iteration, every time */
		ASSERT_EQ(r.last, EVQ_READ);
	}
	T_STEP("consumed: quiet");
	ASSERT_EQ(t_drain(fds[0]), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 5);
	ASSERT_OK(evq_io_stop(&r.io));
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static void restart_oneshot_hook(struct evq_loop *loop, struct tw *t,
				 unsigned revents)
{
	(void)revents;
	if (t->count < t->n)
		EXPECT_OK(evq_io_start(loop, &t->io, *(int *)t->arg,
				       EVQ_READ | EVQ_ONESHOT, tw_cb));
}

static int oneshot(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw r;
	int fds[2], i;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(t_write_byte(fds[1]));
	ASSERT_OK(tw_start(loop, &r, fds[0], EVQ_READ | EVQ_ONESHOT));
	ASSERT_EQ(evq_loop_active(loop), 1);
	T_STEP("fires once, inactive in its callback");
	ASSERT_EQ(t_run_once(loop, 5000), 0);
	ASSERT_EQ(r.count, 1);
	ASSERT_EQ(r.last, EVQ_READ);
	ASSERT_EQ(r.active_in_cb, 0);
	ASSERT_EQ(evq_io_is_active(&r.io), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	T_STEP("data still there: no second call");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(r.count, 1);

	T_STEP("a one-shot watcher restarting itself 3 times");
	ASSERT_OK(tw_start(loop, &r, fds[0], EVQ_READ | EVQ_ONESHOT));
	r.hook = restart_oneshot_hook;
	r.arg = &fds[0];
	r.n = 3;
	for (i = 1; i <= 3; i++) {
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), i < 3);
		ASSERT_EQ(r.count, i);
		ASSERT_EQ(r.active_in_cb, 0);
	}
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(r.count, 3);
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* EVQ_EDGE: once per new data on epoll and uring (docs/BACKENDS.md: both
 * have it, so -ENOTSUP there fails); -ENOTSUP on poll and aio (whose
 * one-shot polls cannot tell new data from old). */
static int edge_triggered(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw e;
	int sv[2], fds[2], i, r;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(t_pipe(fds));
	T_STEP("EVQ_EDGE on %s", t_backend());
	r = tw_start(loop, &e, sv[0], EVQ_READ | EVQ_EDGE);
	if (t_backend_is("poll") || t_backend_is("aio")) {
		ASSERT_ERR(r, -ENOTSUP);
		ASSERT_EQ(evq_io_is_active(&e.io), 0);
		ASSERT_EQ(evq_loop_active(loop), 0);
		ASSERT_ERR(tw_start(loop, &e, fds[1], EVQ_WRITE | EVQ_EDGE),
			   -ENOTSUP);
		ASSERT_EQ(evq_loop_active(loop), 0);
		t_close2(sv);
		t_close2(fds);
		ASSERT_OK(evq_loop_free(loop));
		return T_PASS;
	}
	ASSERT_OK(r);	/* epoll, uring */
	ASSERT_OK(evq_io_stop(&e.io));

	T_STEP("socket: one write, one call");
	ASSERT_OK(tw_start(loop, &e, sv[0], EVQ_READ | EVQ_EDGE));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(e.count, 0);
	ASSERT_OK(t_write_byte(sv[1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(e.count, 1);
	ASSERT_EQ(e.last, EVQ_READ);
	for (i = 0; i < 3; i++) {
		T_STEP("socket: unconsumed, no new data, NOWAIT %d", i);
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(e.count, 1);
	}
	T_STEP("socket: a new write (old data unconsumed): one more call");
	ASSERT_OK(t_write_byte(sv[1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(e.count, 2);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(e.count, 2);
	ASSERT_OK(evq_io_stop(&e.io));

	T_STEP("pipe: drained between writes, one call per write");
	ASSERT_OK(tw_start(loop, &e, fds[0], EVQ_READ | EVQ_EDGE));
	for (i = 1; i <= 3; i++) {
		ASSERT_OK(t_write_byte(fds[1]));
		ASSERT_EQ(t_run_once(loop, 5000), 1);
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(e.count, i);
		ASSERT_EQ(t_drain(fds[0]), 1);
	}
	ASSERT_OK(evq_io_stop(&e.io));
	t_close2(sv);
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* One fd in one loop is either edge- or level-triggered. */
static int edge_level_mix_einval(void)
{
	struct evq_loop *loop = t_loop_new(), *loop2;
	struct tw a, b;
	int sv[2], r;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(t_write_byte(sv[1]));

	T_STEP("level first, then edge");
	ASSERT_OK(tw_start(loop, &a, sv[0], EVQ_READ));
	r = tw_start(loop, &b, sv[0], EVQ_READ | EVQ_EDGE);
	if (t_backend_is("epoll"))
		ASSERT_ERR(r, -EINVAL);
	else	/* either answer is right where EDGE does not exist */
		ASSERT_TRUE(r == -EINVAL || r == -ENOTSUP);
	ASSERT_EQ(evq_io_is_active(&b.io), 0);
	ASSERT_EQ(evq_loop_active(loop), 1);
	T_STEP("the level watcher is undisturbed");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(a.count, 1);
	ASSERT_EQ(b.count, 0);
	ASSERT_OK(evq_io_stop(&a.io));

	if (!t_backend_is("epoll")) {
		t_close2(sv);
		ASSERT_OK(evq_loop_free(loop));
		return T_PASS;
	}

	T_STEP("edge first, then level");
	ASSERT_OK(tw_start(loop, &b, sv[0], EVQ_READ | EVQ_EDGE));
	ASSERT_ERR(tw_start(loop, &a, sv[0], EVQ_WRITE), -EINVAL);
	ASSERT_EQ(evq_io_is_active(&a.io), 0);
	T_STEP("a second edge watcher on the fd is fine");
	{
		struct tw c;

		ASSERT_OK(tw_start(loop, &c, sv[0], EVQ_WRITE | EVQ_EDGE));
		ASSERT_EQ(evq_loop_active(loop), 2);
		ASSERT_OK(evq_io_stop(&c.io));
	}
	T_STEP("after the edge watcher stops, level is fine again");
	ASSERT_OK(evq_io_stop(&b.io));
	ASSERT_OK(tw_start(loop, &a, sv[0], EVQ_READ));
	T_STEP("another loop may watch the same fd edge-triggered");
	loop2 = t_loop_new();
	ASSERT_NOTNULL(loop2);
	ASSERT_OK(tw_start(loop2, &b, sv[0], EVQ_READ | EVQ_EDGE));
	ASSERT_OK(t_write_byte(sv[1]));
	ASSERT_EQ(t_run_once(loop2, 5000), 1);
	ASSERT_EQ(b.count, 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(a.count, 1);
	ASSERT_OK(evq_io_stop(&a.io));
	ASSERT_OK(evq_io_stop(&b.io));
	ASSERT_OK(evq_loop_free(loop2));
	t_close2(sv);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * evq_io_set
 * ------------------------------------------------------------------------ */

static void read_to_write_hook(struct evq_loop *loop, struct tw *t,
			       unsigned revents)
{
	(void)loop;
	if (t->count == 1) {
		EXPECT_EQ(revents, EVQ_READ);
		EXPECT_OK(evq_io_set(&t->io, EVQ_WRITE));
		EXPECT_EQ(evq_io_is_active(&t->io), 1);
	} else {
		EXPECT_EQ(revents, EVQ_WRITE);
		EXPECT_OK(evq_io_stop(&t->io));
	}
}

static int io_set_from_callback(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw w;
	int sv[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(t_write_byte(sv[1]));	/* readable and writable */
	ASSERT_OK(tw_start(loop, &w, sv[0], EVQ_READ));
	w.hook = read_to_write_hook;
	T_STEP("READ, then the callback asks for WRITE");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(w.count, 1);
	T_STEP("next iteration: WRITE (data unconsumed, but not wanted)");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(w.count, 2);
	ASSERT_EQ(w.last, EVQ_WRITE);

	T_STEP("evq_io_set outside a callback, then back");
	ASSERT_OK(tw_start(loop, &w, sv[0], EVQ_WRITE));
	ASSERT_OK(evq_io_set(&w.io, EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(w.count, 1);
	ASSERT_EQ(w.last, EVQ_READ);
	ASSERT_OK(evq_io_set(&w.io, EVQ_READ | EVQ_WRITE));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(w.count, 2);
	ASSERT_EQ(w.last, EVQ_READ | EVQ_WRITE);
	ASSERT_OK(evq_io_stop(&w.io));
	t_close2(sv);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Two watchers reported in one batch; whichever runs first changes the
 * other's interest to `arg` events. */
struct pair {
	struct tw w[2];
	unsigned to;		/* the other's new events */
	int first;		/* index of the one that ran first, or -1 */
	int set_ret;
	unsigned other_seen_after;	/* revents of the other after set */
};

static void change_other_hook(struct evq_loop *loop, struct tw *t,
			      unsigned revents)
{
	struct pair *p = t->arg;
	int me = t == &p->w[0] ? 0 : 1;

	(void)loop;
	if (p->first < 0) {
		p->first = me;
		p->set_ret = evq_io_set(&p->w[!me].io, p->to);
	} else if (me != p->first) {
		p->other_seen_after |= revents;
	}
}

static int pair_start(struct evq_loop *loop, struct pair *p, int fd0, int fd1,
		      unsigned events, unsigned to)
{
	int i, fd[2] = { fd0, fd1 };

	memset(p, 0, sizeof(*p));
	p->to = to;
	p->first = -1;
	for (i = 0; i < 2; i++) {
		int r = tw_start(loop, &p->w[i], fd[i], events);

		if (r)
			return r;
		p->w[i].hook = change_other_hook;
		p->w[i].arg = p;
	}
	return 0;
}

/* An event already reported for this iteration is delivered only if it
 * is still wanted. */
static int io_set_drops_unwanted_reported_event(void)
{
	struct evq_loop *loop = t_loop_new();
	struct pair p;
	int a[2], b[2], i, other;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(a));
	ASSERT_OK(t_pipe(b));
	ASSERT_OK(t_write_byte(a[1]));
	ASSERT_OK(t_write_byte(b[1]));
	/* Both read ends ready; the first to run switches the other to
	 * WRITE, which a pipe's read end never is. */
	ASSERT_OK(pair_start(loop, &p, a[0], b[0], EVQ_READ, EVQ_WRITE));
	T_STEP("one batch with both ready");
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_GE(p.first, 0);
	ASSERT_OK(p.set_ret);
	other = !p.first;
	ASSERT_EQ(p.w[p.first].count, 1);
	ASSERT_EQ(p.w[other].count, 0);
	for (i = 0; i < 3; i++) {
		T_STEP("the other stays silent, iteration %d", i);
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(p.w[other].count, 0);
		ASSERT_EQ(p.w[p.first].count, i + 2);
	}
	T_STEP("READ wanted again: it fires");
	ASSERT_OK(evq_io_set(&p.w[other].io, EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(p.w[other].count, 1);
	ASSERT_EQ(p.w[other].last, EVQ_READ);
	ASSERT_OK(evq_io_stop(&p.w[0].io));
	ASSERT_OK(evq_io_stop(&p.w[1].io));
	t_close2(a);
	t_close2(b);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Reported READ|WRITE, then only WRITE wanted: READ is not delivered. */
static int io_set_keeps_only_wanted_bits(void)
{
	struct evq_loop *loop = t_loop_new();
	struct pair p;
	int a[2], b[2], i, other;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(a));
	ASSERT_OK(t_socketpair(b));
	ASSERT_OK(t_write_byte(a[1]));
	ASSERT_OK(t_write_byte(b[1]));
	ASSERT_OK(pair_start(loop, &p, a[0], b[0], EVQ_READ | EVQ_WRITE,
			     EVQ_WRITE));
	for (i = 0; i < 3; i++) {
		T_STEP("iteration %d", i);
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	}
	ASSERT_GE(p.first, 0);
	ASSERT_OK(p.set_ret);
	other = !p.first;
	T_STEP("the other got WRITE, never READ, after the change");
	ASSERT_EQ(p.other_seen_after, EVQ_WRITE);
	ASSERT_GE(p.w[other].count, 2);
	ASSERT_EQ(p.w[p.first].count, 3);
	ASSERT_OK(evq_io_stop(&p.w[0].io));
	ASSERT_OK(evq_io_stop(&p.w[1].io));
	t_close2(a);
	t_close2(b);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int io_set_inactive_einval(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	int fds[2];

	ASSERT_NOTNULL(loop);
	T_STEP("never started");
	ASSERT_ERR(evq_io_set(&w, EVQ_READ), -EINVAL);
	T_STEP("stopped");
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(evq_io_start(loop, &w, fds[0], EVQ_READ, tw_cb));
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_ERR(evq_io_set(&w, EVQ_READ), -EINVAL);
	ASSERT_EQ(evq_io_is_active(&w), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	T_STEP("NULL");
	ASSERT_ERR(evq_io_set(NULL, EVQ_READ), -EINVAL);
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Several watchers, restarts, errors
 * ------------------------------------------------------------------------ */

static int read_and_write_watchers_same_fd(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw r, w;
	int sv[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(tw_start(loop, &r, sv[0], EVQ_READ));
	ASSERT_OK(tw_start(loop, &w, sv[0], EVQ_WRITE));
	ASSERT_EQ(evq_loop_active(loop), 2);
	T_STEP("writable only: the write watcher");
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(r.count, 0);
	ASSERT_EQ(w.count, 1);
	ASSERT_EQ(w.last, EVQ_WRITE);
	T_STEP("readable and writable: both, each with its own bit");
	ASSERT_OK(t_write_byte(sv[1]));
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(r.count, 1);
	ASSERT_EQ(r.ored, EVQ_READ);
	ASSERT_EQ(w.count, 2);
	ASSERT_EQ(w.ored, EVQ_WRITE);
	T_STEP("write watcher stopped: read watcher goes on alone");
	ASSERT_OK(evq_io_stop(&w.io));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 2);
	ASSERT_EQ(w.count, 2);
	T_STEP("read watcher stopped, write watcher back");
	ASSERT_OK(evq_io_stop(&r.io));
	ASSERT_OK(evq_io_start(loop, &w.io, sv[0], EVQ_WRITE, tw_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 2);
	ASSERT_EQ(w.count, 3);
	ASSERT_EQ(w.last, EVQ_WRITE);
	T_STEP("two read watchers on one fd both run");
	{
		struct tw r2;

		ASSERT_OK(evq_io_stop(&w.io));
		ASSERT_OK(tw_start(loop, &r, sv[0], EVQ_READ));
		ASSERT_OK(tw_start(loop, &r2, sv[0], EVQ_READ));
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
		ASSERT_EQ(r.count, 1);
		ASSERT_EQ(r2.count, 1);
		ASSERT_OK(evq_io_stop(&r.io));
		ASSERT_OK(evq_io_stop(&r2.io));
	}
	t_close2(sv);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int restart_with_new_fd(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw w;
	int a[2], b[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(a));
	ASSERT_OK(t_pipe(b));
	ASSERT_OK(tw_start(loop, &w, a[0], EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);	/* registered */
	T_STEP("restart the active watcher on another fd");
	ASSERT_OK(evq_io_start(loop, &w.io, b[0], EVQ_READ, tw_cb));
	ASSERT_EQ(evq_loop_active(loop), 1);
	T_STEP("the old fd is no longer watched");
	ASSERT_OK(t_write_byte(a[1]));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(w.count, 0);
	T_STEP("the new one is");
	ASSERT_OK(t_write_byte(b[1]));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(w.count, 1);
	ASSERT_EQ(w.last, EVQ_READ);
	T_STEP("restart with other events on the same fd");
	ASSERT_OK(evq_io_start(loop, &w.io, b[1], EVQ_WRITE, tw_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(w.count, 2);
	ASSERT_EQ(w.last, EVQ_WRITE);
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_OK(evq_io_stop(&w.io));
	ASSERT_EQ(evq_loop_active(loop), 0);
	t_close2(a);
	t_close2(b);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int start_errors(void)
{
	static const unsigned bad_events[] = {
		0, EVQ_EDGE, EVQ_ONESHOT, EVQ_EDGE | EVQ_ONESHOT,
		0x04, EVQ_READ | 0x04, EVQ_READ | 0x08, EVQ_WRITE | 0x40,
		EVQ_READ | 0x100, EVQ_READ | 0x80000000u,
	};
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	int fds[2], closed;
	size_t i;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	T_STEP("NULL loop, watcher, callback");
	ASSERT_ERR(evq_io_start(NULL, &w, fds[0], EVQ_READ, tw_cb), -EINVAL);
	ASSERT_ERR(evq_io_start(loop, NULL, fds[0], EVQ_READ, tw_cb),
		   -EINVAL);
	ASSERT_ERR(evq_io_start(loop, &w, fds[0], EVQ_READ, NULL), -EINVAL);
	T_STEP("fd -1 and INT_MIN");
	ASSERT_ERR(evq_io_start(loop, &w, -1, EVQ_READ, tw_cb), -EINVAL);
	ASSERT_ERR(evq_io_start(loop, &w, INT_MIN, EVQ_READ, tw_cb), -EINVAL);
	for (i = 0; i < T_NELEM(bad_events); i++) {
		T_STEP("events %#x", bad_events[i]);
		ASSERT_ERR(evq_io_start(loop, &w, fds[0], bad_events[i], tw_cb),
			   -EINVAL);
	}
	T_STEP("closed fd");
	{
		int p[2];

		ASSERT_OK(t_pipe(p));
		closed = p[0];
		t_close2(p);
		ASSERT_ERR(evq_io_start(loop, &w, closed, EVQ_READ, tw_cb),
			   -EBADF);
		ASSERT_ERR(evq_io_start(loop, &w, closed, EVQ_WRITE, tw_cb),
			   -EBADF);
	}
	T_STEP("an fd number never opened: 4999");
	ASSERT_ERR(evq_io_start(loop, &w, 4999, EVQ_READ, tw_cb), -EBADF);
	T_STEP("nothing got started");
	ASSERT_EQ(evq_io_is_active(&w), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	T_STEP("the watcher still starts fine afterwards");
	ASSERT_OK(evq_io_start(loop, &w, fds[1], EVQ_WRITE, tw_cb));
	ASSERT_OK(evq_io_stop(&w));
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* The largest fd numbers are not open either: -EBADF, not a huge table
 * or a hang. Last in the file: a hang here ends the executable. */
static int start_huge_fd_ebadf(void)
{
	static const int huge[] = { 1 << 20, INT_MAX / 2 + 1, INT_MAX - 1,
				    INT_MAX };
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	size_t i;

	ASSERT_NOTNULL(loop);
	for (i = 0; i < T_NELEM(huge); i++) {
		T_STEP("fd %d", huge[i]);
		ASSERT_ERR(evq_io_start(loop, &w, huge[i], EVQ_READ, tw_cb),
			   -EBADF);
		ASSERT_EQ(evq_io_is_active(&w), 0);
	}
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int stop_idempotent(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 }, never = { 0 };
	int fds[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	T_STEP("stop a never-started watcher");
	ASSERT_OK(evq_io_stop(&never));
	ASSERT_EQ(evq_io_is_active(&never), 0);
	T_STEP("stop twice");
	ASSERT_OK(evq_io_start(loop, &w, fds[0], EVQ_READ, tw_cb));
	ASSERT_EQ(evq_io_is_active(&w), 1);
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_EQ(evq_io_is_active(&w), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	T_STEP("NULL");
	ASSERT_ERR(evq_io_stop(NULL), -EINVAL);
	T_STEP("a stopped watcher with data pending never runs");
	ASSERT_OK(t_write_byte(fds[1]));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Hang-up and several loops
 * ------------------------------------------------------------------------ */

static int hup_peer_closed(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw r;
	int fds[2], sv[2];
	char c;

	ASSERT_NOTNULL(loop);
	T_STEP("pipe: writer closed -> READ, read() == 0");
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(tw_start(loop, &r, fds[0], EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 0);
	t_close(fds[1]);
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(r.count, 1);
	ASSERT_EQ(r.last, EVQ_READ);
	ASSERT_EQ(read(fds[0], &c, 1), 0);
	ASSERT_OK(evq_io_stop(&r.io));
	t_close(fds[0]);

	T_STEP("socket: peer closed -> READ, read() == 0");
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(tw_start(loop, &r, sv[0], EVQ_READ));
	t_close(sv[1]);
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(r.count, 1);
	ASSERT_EQ(r.last, EVQ_READ);
	ASSERT_EQ(read(sv[0], &c, 1), 0);
	ASSERT_OK(evq_io_stop(&r.io));
	t_close(sv[0]);

	T_STEP("pipe: reader closed -> the write watcher gets WRITE");
	ASSERT_OK(t_pipe(fds));
	ASSERT_GT(t_fill(fds[1]), 0);	/* not writable while it is open */
	ASSERT_OK(tw_start(loop, &r, fds[1], EVQ_WRITE));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(r.count, 0);
	t_close(fds[0]);
	ASSERT_EQ(t_run_once(loop, 5000), 1);
	ASSERT_EQ(r.count, 1);
	ASSERT_EQ(r.last, EVQ_WRITE);
	{
		ssize_t n = write(fds[1], "x", 1);

		ASSERT_EQ(n, -1);
		ASSERT_EQ(errno, EPIPE);
	}
	ASSERT_OK(evq_io_stop(&r.io));
	t_close(fds[1]);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int two_loops_same_fd(void)
{
	struct evq_loop *l1 = t_loop_new(), *l2 = t_loop_new();
	struct tw a, b;
	int fds[2];

	ASSERT_NOTNULL(l1);
	ASSERT_NOTNULL(l2);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(tw_start(l1, &a, fds[0], EVQ_READ));
	ASSERT_OK(tw_start(l2, &b, fds[0], EVQ_READ));
	ASSERT_OK(t_write_byte(fds[1]));
	T_STEP("both loops see the data");
	ASSERT_EQ(t_run_once(l1, 5000), 1);
	ASSERT_EQ(t_run_once(l2, 5000), 1);
	ASSERT_EQ(a.count, 1);
	ASSERT_EQ(b.count, 1);
	T_STEP("stopping in one loop leaves the other");
	ASSERT_OK(evq_io_stop(&a.io));
	ASSERT_EQ(evq_loop_run(l1, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(evq_loop_run(l2, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(a.count, 1);
	ASSERT_EQ(b.count, 2);
	T_STEP("freeing one loop leaves the other");
	ASSERT_OK(tw_start(l1, &a, fds[0], EVQ_READ));
	ASSERT_OK(evq_loop_free(l1));
	ASSERT_EQ(evq_loop_run(l2, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(b.count, 3);
	ASSERT_EQ(a.count, 0);
	ASSERT_OK(evq_io_stop(&b.io));
	t_close2(fds);
	ASSERT_OK(evq_loop_free(l2));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Many fds
 * ------------------------------------------------------------------------ */

#define MANY 10000	/* watched fds: both ends of MANY / 2 socketpairs */

struct many {
	struct evq_io io;
	int fd, peer;
	int count;	/* runs in the current iteration */
	int total;
};

static void many_cb(struct evq_loop *loop, struct evq_io *w, unsigned rev)
{
	struct many *m = w->data;

	(void)loop;
	EXPECT_EQ(rev, EVQ_READ);
	m->count++;
	m->total++;
}

/* One iteration; every watcher in `ready` (k % 1000 == off) runs exactly
 * once, every other watcher not at all. */
static int many_iteration(struct evq_loop *loop, struct many *m, int off,
			  enum evq_run_mode mode)
{
	int k, ran = 0;

	for (k = 0; k < MANY; k++)
		m[k].count = 0;
	ASSERT_EQ(evq_loop_run(loop, mode), 1);
	for (k = 0; k < MANY; k++) {
		if (off >= 0 && k % 1000 == off) {
			T_STEP("ready watcher %d (fd %d)", k, m[k].fd);
			ASSERT_EQ(m[k].count, 1);
			ran++;
		} else if (m[k].count != 0) {
			T_STEP("idle watcher %d (fd %d)", k, m[k].fd);
			ASSERT_EQ(m[k].count, 0);
		}
	}
	ASSERT_EQ(ran, off >= 0 ? MANY / 1000 : 0);
	return T_PASS;
}

static int ten_thousand_fds(void)
{
	struct evq_loop *loop;
	struct many *m;
	struct t_guard g;
	long need = MANY + t_count_fds() + 64, have;
	int k, i, r = T_FAIL;

	/* Both ends of every socketpair are watched, so 10,000 watched fds
	 * take 10,000 descriptors (not 20,000 as with one watched end). */
	have = t_raise_nofile(need);
	if (have < need)
		return t_skip("RLIMIT_NOFILE hard limit too low: %ld < %ld",
			      have, need);
	loop = t_loop_new();
	ASSERT_NOTNULL(loop);
	m = calloc(MANY, sizeof(*m));
	ASSERT_NOTNULL(m);
	T_STEP("open %d socketpairs and watch both ends", MANY / 2);
	for (k = 0; k < MANY; k += 2) {
		int sv[2];

		ASSERT_OK(t_socketpair(sv));
		m[k].fd = sv[0];
		m[k].peer = sv[1];
		m[k + 1].fd = sv[1];
		m[k + 1].peer = sv[0];
	}
	for (k = 0; k < MANY; k++) {
		m[k].io.data = &m[k];
		ASSERT_OK(evq_io_start(loop, &m[k].io, m[k].fd, EVQ_READ,
				       many_cb));
	}
	ASSERT_EQ(evq_loop_active(loop), MANY);
	ASSERT_OK(t_guard_start(loop, &g, 10000, "10,000 fds"));

	T_STEP("nothing ready");
	if (many_iteration(loop, m, -1, EVQ_RUN_NOWAIT) != T_PASS)
		goto out;
	for (i = 0; i < 2; i++) {
		int off = i ? 500 : 0;

		T_STEP("make one in 1,000 ready (offset %d)", off);
		for (k = off; k < MANY; k += 1000)
			if (t_write_byte(m[k].peer) != 0)
				goto out;
		if (many_iteration(loop, m, off, EVQ_RUN_ONCE) != T_PASS)
			goto out;
		/* Level-triggered: again, exactly once per iteration. */
		if (many_iteration(loop, m, off, EVQ_RUN_NOWAIT) != T_PASS ||
		    many_iteration(loop, m, off, EVQ_RUN_NOWAIT) != T_PASS)
			goto out;
		T_STEP("consume (offset %d)", off);
		for (k = off; k < MANY; k += 1000)
			if (t_drain(m[k].fd) != 1) {
				T_FAILF("watcher %d: expected 1 byte", k);
				goto out;
			}
		if (many_iteration(loop, m, -1, EVQ_RUN_NOWAIT) != T_PASS)
			goto out;
	}
	T_STEP("totals");
	for (k = 0; k < MANY; k++) {
		int want = (k % 1000 == 0 || k % 1000 == 500) ? 3 : 0;

		if (m[k].total != want) {
			T_STEP("total of watcher %d", k);
			EXPECT_EQ(m[k].total, want);
			goto out;
		}
	}
	r = T_PASS;
out:
	t_guard_stop(&g);
	for (k = 0; k < MANY; k++) {
		evq_io_stop(&m[k].io);
		close(m[k].fd);
	}
	free(m);
	if (evq_loop_free(loop) != 0)
		r = T_FAIL;
	return r;
}

static int resume_hits;

static void resume_cb(struct evq_loop *loop, struct evq_io *w,
		      unsigned revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	resume_hits++;
}

/* evq_io_resume: a stopped watcher restarts on its old fd and events,
 * whether or not the stop was applied to the kernel yet; errors for a
 * watcher that never started or whose loop is gone. */
static int resume_stopped_watcher(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 }, never = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_ERR(evq_io_resume(NULL), -EINVAL);
	ASSERT_ERR(evq_io_resume(&never), -EINVAL);
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, resume_cb));
	ASSERT_OK(evq_io_resume(&w));	/* active: a no-op */
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_OK(t_write_byte(p[1]));
	resume_hits = 0;

	T_STEP("stop and resume in one iteration (stop not applied)");
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_OK(evq_io_resume(&w));
	ASSERT_EQ(evq_io_is_active(&w), 1);
	ASSERT_EQ(t_run_once(loop, 2000), 1);
	ASSERT_EQ(resume_hits, 1);

	T_STEP("stop, let the loop apply it, then resume");
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(resume_hits, 1);
	ASSERT_OK(evq_io_resume(&w));
	ASSERT_EQ(t_run_once(loop, 2000), 1);
	ASSERT_EQ(resume_hits, 2);

	T_STEP("after the loop is freed");
	ASSERT_OK(evq_loop_free(loop));
	ASSERT_ERR(evq_io_resume(&w), -EINVAL);
	t_close2(p);
	return T_PASS;
}

/* A watcher stopped before its loop is freed keeps nothing evq may follow:
 * evq_io_resume() says -EINVAL without reading the freed loop (ASan), also
 * when a new loop now lives at the old one's address. */
static int resume_after_loop_freed_einval(void)
{
	struct evq_loop *loop = t_loop_new(), *loop2;
	struct evq_io w = { 0 };
	int p[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, resume_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);

	T_STEP("stop, free the loop, resume");
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_OK(evq_loop_free(loop));
	ASSERT_ERR(evq_io_resume(&w), -EINVAL);
	ASSERT_EQ(evq_io_is_active(&w), 0);

	T_STEP("a new loop (maybe at the same address); resume again");
	loop2 = t_loop_new();
	ASSERT_NOTNULL(loop2);
	if (loop2 == loop)
		t_note("the new loop took the freed one's address");
	ASSERT_ERR(evq_io_resume(&w), -EINVAL);
	ASSERT_EQ(evq_loop_active(loop2), 0);
	ASSERT_EQ(evq_loop_run(loop2, EVQ_RUN_NOWAIT), 0);

	T_STEP("stopped on a live loop, resume works as before");
	ASSERT_OK(evq_io_start(loop2, &w, p[0], EVQ_READ, resume_cb));
	ASSERT_OK(evq_io_stop(&w));
	ASSERT_OK(evq_io_resume(&w));
	ASSERT_EQ(evq_loop_active(loop2), 1);
	ASSERT_OK(evq_io_stop(&w));
	t_loop_free(loop2);
	ASSERT_ERR(evq_io_resume(&w), -EINVAL);
	t_close2(p);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Files epoll cannot watch (regular files: always ready), closed behind
 * the loop's back
 * ------------------------------------------------------------------------ */

/* A regular file with a few bytes, open for reading; -1 fails the case. */
static int open_regular_file(void)
{
	char path[] = "/tmp/evq-test-io-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0) {
		T_FAILF("mkstemp: %s", strerror(errno));
		return -1;
	}
	unlink(path);
	if (write(fd, "abc", 3) != 3) {
		T_FAILF("write: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void close_own_fd_hook(struct evq_loop *loop, struct tw *t,
			      unsigned revents)
{
	(void)loop;
	(void)revents;
	if (t->count == t->n)
		close(t->io.fd);	/* plain close(), no evq_io_stop */
}

/* A regular file is always ready. Once its fd is closed (in the callback,
 * or between runs), no later report may reach the watcher, and a number
 * reused by a pipe that nobody watches (with data in it) must not either:
 * a reading callback would take another component's data. */
static int regular_file_watcher_silent_after_close(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tw t, t2;
	int f, g, p[2], i;

	ASSERT_NOTNULL(loop);
	f = open_regular_file();
	ASSERT_GE(f, 0);
	ASSERT_OK(tw_start(loop, &t, f, EVQ_READ));
	t.hook = close_own_fd_hook;
	t.n = 2;

	T_STEP("the file is always ready; the 2nd callback closes it");
	for (i = 0; i < 5; i++)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(t.count, 2);
	ASSERT_EQ(evq_io_is_active(&t.io), 0);

	T_STEP("the number is reused by a readable pipe nobody watches");
	ASSERT_OK(t_pipe(p));
	ASSERT_EQ(p[0], f);
	ASSERT_OK(t_write_byte(p[1]));
	for (i = 0; i < 5; i++)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(t.count, 2);
	t_close2(p);

	T_STEP("closed between runs and reused at once by a readable pipe");
	f = open_regular_file();
	ASSERT_GE(f, 0);
	ASSERT_OK(tw_start(loop, &t, f, EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(t.count, 1);
	close(f);
	ASSERT_OK(t_pipe(p));
	ASSERT_EQ(p[0], f);
	ASSERT_OK(t_write_byte(p[1]));
	for (i = 0; i < 5; i++) {
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		/* poll watches numbers: its documented limit (evq.h); aio
		 * re-arms by number, so it has it too, and at most one
		 * report per iteration reaches the old watcher. */
		if (t_backend_is("poll"))
			continue;
		if (t_backend_is("aio"))
			ASSERT_LE(t.count, 1 + i + 1);
		else
			ASSERT_EQ(t.count, 1);
	}
	evq_io_stop(&t.io);
	t_close2(p);

	T_STEP("closed, reused by another file, a watcher starts on it");
	f = open_regular_file();
	ASSERT_GE(f, 0);
	ASSERT_OK(tw_start(loop, &t, f, EVQ_READ));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(t.count, 1);
	/* dup2: f's number, now for a file open meanwhile (so its inode
	 * number cannot be the old one's, which unlink and close free). */
	g = open_regular_file();
	ASSERT_GE(g, 0);
	ASSERT_EQ(dup2(g, f), f);
	close(g);
	ASSERT_OK(tw_start(loop, &t2, f, EVQ_READ));
	for (i = 0; i < 3; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(t.count, 1);
	ASSERT_EQ(t2.count, 3);
	ASSERT_EQ(evq_io_is_active(&t.io), 0);

	T_STEP("closed, reused by an idle pipe, a watcher starts on it");
	close(f);
	ASSERT_OK(t_pipe(p));
	ASSERT_EQ(p[0], f);
	ASSERT_OK(tw_start(loop, &t, f, EVQ_READ));
	for (i = 0; i < 3; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(t2.count, 3);
	ASSERT_EQ(evq_io_is_active(&t2.io), 0);
	ASSERT_EQ(t.count, 0);	/* an idle pipe is not always ready */
	evq_io_stop(&t.io);
	t_close2(p);
	t_loop_free(loop);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(pipe_read_readiness),
	T_CASE(resume_stopped_watcher),
	T_CASE(resume_after_loop_freed_einval),
	T_CASE(pipe_write_readiness),
	T_CASE(socketpair_read_write),
	T_CASE(level_triggered_refires),
	T_CASE(oneshot),
	T_CASE(edge_triggered),
	T_CASE(edge_level_mix_einval),
	T_CASE(io_set_from_callback),
	T_CASE(io_set_drops_unwanted_reported_event),
	T_CASE(io_set_keeps_only_wanted_bits),
	T_CASE(io_set_inactive_einval),
	T_CASE(read_and_write_watchers_same_fd),
	T_CASE(restart_with_new_fd),
	T_CASE(start_errors),
	T_CASE(stop_idempotent),
	T_CASE(hup_peer_closed),
	T_CASE(two_loops_same_fd),
	T_CASE(ten_thousand_fds),
	T_CASE(start_huge_fd_ebadf),
	T_CASE(regular_file_watcher_silent_after_close),
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return t_main(argc, argv, cases, T_NELEM(cases));
}
