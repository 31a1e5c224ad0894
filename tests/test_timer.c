/* SPDX-License-Identifier: MIT */
/*
 * test_timer.c - timers: exact timeouts, order, repeat, stop and restart
 * from callbacks, zero timeouts, a million timers through the heap, and
 * "never before the deadline".
 *
 * No speed is measured here. The only upper bounds on time are the ones
 * that make a timer correct: a 50 ms timer must not take 100 ms (the
 * "waits twice the timeout" bug of BACKGROUND.md lesson 4).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <unistd.h>

/* A timer with a record of its firings. */
struct tt {
	struct evq_timer t;
	int idx;
	int count;
	uint64_t start;		/* clock just before evq_timer_start */
	uint64_t after, repeat;
	uint64_t fired[16];	/* clock at each firing */
	int stop_after;		/* stop itself after this many (0: never) */
	void (*hook)(struct evq_loop *loop, struct tt *self);
};

static int order[256], norder;

static void tt_cb(struct evq_loop *loop, struct evq_timer *t)
{
	struct tt *x = t->data;
	uint64_t now = t_now_ns();

	EXPECT_TRUE(x != NULL && &x->t == t);
	if (x->count < (int)T_NELEM(x->fired))
		x->fired[x->count] = now;
	x->count++;
	/* Never early: the k-th firing is not before start + after +
	 * (k - 1) * repeat, by the clock and by the loop's time. */
	EXPECT_GE(now, x->start + x->after + (uint64_t)(x->count - 1) *
			       x->repeat);
	EXPECT_GE(evq_now(loop), x->start + x->after);
	if (norder < (int)T_NELEM(order))
		order[norder++] = x->idx;
	if (x->stop_after && x->count >= x->stop_after)
		EXPECT_OK(evq_timer_stop(t));
	if (x->hook)
		x->hook(loop, x);
}

/* Start x afresh. Only for an inactive timer: it clears evq's fields. */
static int tt_start(struct evq_loop *loop, struct tt *x, int idx,
		    uint64_t after, uint64_t repeat)
{
	int keep = x->stop_after;
	void (*hook)(struct evq_loop *, struct tt *) = x->hook;

	memset(x, 0, sizeof(*x));
	x->t.data = x;
	x->idx = idx;
	x->after = after;
	x->repeat = repeat;
	x->stop_after = keep;
	x->hook = hook;
	x->start = t_now_ns();
	return evq_timer_start(loop, &x->t, after, repeat, tt_cb);
}

/* Restart a timer that may be active, keeping its record. */
static int tt_restart(struct evq_loop *loop, struct tt *x, uint64_t after,
		      uint64_t repeat)
{
	x->after = after;
	x->repeat = repeat;
	x->start = t_now_ns();
	return evq_timer_start(loop, &x->t, after, repeat, tt_cb);
}

/* ------------------------------------------------------------------------ */

static void stop_loop_hook(struct evq_loop *loop, struct tt *self)
{
	(void)self;
	evq_loop_stop(loop);
}

static void never_io(struct evq_loop *loop, struct evq_io *w, unsigned r)
{
	(void)loop;
	(void)w;
	(void)r;
	T_FAILF("an idle fd's watcher ran");
}

/* BACKGROUND.md lesson 4: a loop that promises a timer at T wakes at T. */
static int timer_50ms_exact(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tt x = { 0 };
	struct evq_io w = { 0 };
	int rep, fds[2];

	ASSERT_NOTNULL(loop);
	for (rep = 0; rep < 3; rep++) {
		T_STEP("50 ms timer alone, round %d", rep);
		ASSERT_OK(tt_start(loop, &x, 0, 50 * T_MS, 0));
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
		ASSERT_EQ(x.count, 1);
		ASSERT_GE(x.fired[0] - x.start, 50 * T_MS);
		ASSERT_LT(x.fired[0] - x.start, 100 * T_MS);
		ASSERT_EQ(evq_timer_is_active(&x.t), 0);
	}
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(evq_io_start(loop, &w, fds[0], EVQ_READ, never_io));
	x.hook = stop_loop_hook;
	for (rep = 0; rep < 2; rep++) {
		T_STEP("50 ms timer with an idle fd, round %d", rep);
		ASSERT_OK(tt_start(loop, &x, 0, 50 * T_MS, 0));
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 1);
		ASSERT_EQ(x.count, 1);
		ASSERT_GE(x.fired[0] - x.start, 50 * T_MS);
		ASSERT_LT(x.fired[0] - x.start, 100 * T_MS);
	}
	T_STEP("1.5 ms timer: sub-millisecond part is not lost");
	ASSERT_OK(tt_start(loop, &x, 0, 1500000, 0));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 1);
	ASSERT_EQ(x.count, 1);
	ASSERT_GE(x.fired[0] - x.start, 1500000);
	ASSERT_LT(x.fired[0] - x.start, 50 * T_MS);
	ASSERT_OK(evq_io_stop(&w));
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int order_by_deadline(void)
{
	static const unsigned ms[] = { 30, 10, 20, 5, 25, 15, 1, 40 };
	struct evq_loop *loop = t_loop_new();
	struct tt x[T_NELEM(ms)];
	size_t i, j;

	ASSERT_NOTNULL(loop);
	memset(x, 0, sizeof(x));
	norder = 0;
	for (i = 0; i < T_NELEM(ms); i++)
		ASSERT_OK(tt_start(loop, &x[i], (int)i, ms[i] * T_MS, 0));
	ASSERT_EQ(evq_loop_active(loop), T_NELEM(ms));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(norder, T_NELEM(ms));
	for (j = 1; j < T_NELEM(ms); j++) {
		T_STEP("firing %zu: timer %d (%u ms) after timer %d (%u ms)",
		       j, order[j], ms[order[j]], order[j - 1],
		       ms[order[j - 1]]);
		ASSERT_LT(ms[order[j - 1]], ms[order[j]]);
	}
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static struct tt same[100];

static void start_same_hook(struct evq_loop *loop, struct tt *self)
{
	(void)self;
	/* From inside a callback, in reverse index order. */
	for (int i = 99; i >= 0; i--)
		EXPECT_OK(tt_start(loop, &same[i], i, 5 * T_MS, 0));
}

static int same_deadline_start_order(void)
{
	static const uint64_t afters[] = { 0, 3 * T_MS };
	struct evq_loop *loop = t_loop_new();
	struct tt first = { 0 };
	size_t a;
	int i;

	ASSERT_NOTNULL(loop);
	for (a = 0; a < T_NELEM(afters); a++) {
		T_STEP("100 timers of %llu ns started in index order",
		       (unsigned long long)afters[a]);
		memset(same, 0, sizeof(same));
		norder = 0;
		for (i = 0; i < 100; i++)
			ASSERT_OK(tt_start(loop, &same[i], i, afters[a], 0));
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
		ASSERT_EQ(norder, 100);
		for (i = 0; i < 100; i++)
			ASSERT_EQ(order[i], i);
	}
	T_STEP("100 timers started from a callback, reverse index order");
	memset(same, 0, sizeof(same));
	first.hook = start_same_hook;
	ASSERT_OK(tt_start(loop, &first, 1000, 0, 0));
	norder = 0;
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(norder, 101);
	ASSERT_EQ(order[0], 1000);
	for (i = 1; i <= 100; i++)
		ASSERT_EQ(order[i], 100 - i);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int repeat_timer(void)
{
	struct evq_loop *loop = t_loop_new();
	const uint64_t period = 20 * T_MS;
	struct tt x = { 0 };
	int k;

	ASSERT_NOTNULL(loop);
	x.stop_after = 5;
	ASSERT_OK(tt_start(loop, &x, 0, period, period));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 5);
	for (k = 1; k <= 5; k++) {
		T_STEP("firing %d", k);
		ASSERT_GE(x.fired[k - 1] - x.start, (uint64_t)k * period);
	}
	T_STEP("five periods take about five periods");
	ASSERT_LT(x.fired[4] - x.start, 5 * period + 40 * T_MS);
	ASSERT_EQ(evq_timer_is_active(&x.t), 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static void slow_first_hook(struct evq_loop *loop, struct tt *self)
{
	(void)loop;
	if (self->count == 1) {
		t_sleep_ms(55);	/* miss five 10 ms periods */
		self->fired[15] = t_now_ns();	/* end of the slow callback */
	}
}

/* A repeating timer that falls behind skips missed periods. */
static int repeat_skips_missed_periods(void)
{
	struct evq_loop *loop = t_loop_new();
	const uint64_t period = 10 * T_MS;
	struct tt x = { 0 };
	int k, burst = 0;

	ASSERT_NOTNULL(loop);
	x.stop_after = 4;
	x.hook = slow_first_hook;
	ASSERT_OK(tt_start(loop, &x, 0, period, period));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 4);
	for (k = 1; k < 4; k++)
		if (x.fired[k] < x.fired[15] + period / 2)
			burst++;
	T_STEP("firings within half a period of the slow callback's end");
	ASSERT_LE(burst, 1);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static void restart_self_hook(struct evq_loop *loop, struct tt *self)
{
	if (self->count < 3)
		EXPECT_OK(tt_restart(loop, self, 2 * T_MS, 0));
}

static int stop_and_restart_in_own_callback(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tt x = { 0 };

	ASSERT_NOTNULL(loop);
	T_STEP("a repeating timer stops itself on its first firing");
	x.stop_after = 1;
	ASSERT_OK(tt_start(loop, &x, 0, 2 * T_MS, 1 * T_MS));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_EQ(evq_timer_is_active(&x.t), 0);

	T_STEP("a one-shot timer restarts itself twice");
	memset(&x, 0, sizeof(x));
	x.hook = restart_self_hook;
	ASSERT_OK(tt_start(loop, &x, 0, 2 * T_MS, 0));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 3);
	ASSERT_EQ(evq_timer_is_active(&x.t), 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Heap timers: the first to fire stops and frees every other one. */
#define NSTOP 10
static struct tt *heap_tt[NSTOP];

static void free_others_hook(struct evq_loop *loop, struct tt *self)
{
	(void)loop;
	for (int i = 0; i < NSTOP; i++) {
		if (heap_tt[i] && heap_tt[i] != self) {
			EXPECT_OK(evq_timer_stop(&heap_tt[i]->t));
			free(heap_tt[i]);
			heap_tt[i] = NULL;
		}
	}
}

static int free_other_due_timers_in_batch(void)
{
	struct evq_loop *loop = t_loop_new();
	int i, alive = 0;

	ASSERT_NOTNULL(loop);
	T_STEP("%d heap timers due in one batch; the first frees the rest",
	       NSTOP);
	norder = 0;
	for (i = 0; i < NSTOP; i++) {
		heap_tt[i] = calloc(1, sizeof(struct tt));
		ASSERT_NOTNULL(heap_tt[i]);
		heap_tt[i]->hook = free_others_hook;
		ASSERT_OK(tt_start(loop, heap_tt[i], i, 1 * T_MS, 0));
	}
	t_sleep_ms(5);	/* all due before the loop looks */
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(norder, 1);
	ASSERT_EQ(order[0], 0);	/* the earliest deadline: started first */
	for (i = 0; i < NSTOP; i++) {
		if (heap_tt[i]) {
			alive++;
			ASSERT_EQ(heap_tt[i]->count, 1);
			free(heap_tt[i]);
			heap_tt[i] = NULL;
		}
	}
	ASSERT_EQ(alive, 1);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static struct tt *victim;

static void stop_victim_hook(struct evq_loop *loop, struct tt *self)
{
	(void)loop;
	(void)self;
	EXPECT_OK(evq_timer_stop(&victim->t));
}

static int stop_other_pending_timer(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tt a = { 0 }, b = { 0 };

	ASSERT_NOTNULL(loop);
	victim = &b;
	a.hook = stop_victim_hook;
	ASSERT_OK(tt_start(loop, &a, 0, 10 * T_MS, 0));
	ASSERT_OK(tt_start(loop, &b, 1, 20 * T_MS, 0));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(a.count, 1);
	ASSERT_EQ(b.count, 0);
	ASSERT_EQ(evq_timer_is_active(&b.t), 0);

	T_STEP("both due in one batch: the first stops the second");
	ASSERT_OK(tt_start(loop, &a, 0, 1 * T_MS, 0));
	ASSERT_OK(tt_start(loop, &b, 1, 1 * T_MS, 0));
	t_sleep_ms(5);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(a.count, 1);
	ASSERT_EQ(b.count, 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int restart_active_reschedules(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tt x = { 0 };

	ASSERT_NOTNULL(loop);
	T_STEP("20 ms, restarted at once to 60 ms");
	ASSERT_OK(tt_start(loop, &x, 0, 20 * T_MS, 0));
	ASSERT_OK(tt_restart(loop, &x, 60 * T_MS, 0));
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_GE(x.fired[0] - x.start, 60 * T_MS);

	T_STEP("1 s, restarted at once to 10 ms: fires once, early");
	ASSERT_OK(tt_start(loop, &x, 0, 1000 * T_MS, 0));
	ASSERT_OK(tt_restart(loop, &x, 10 * T_MS, 0));
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_LT(x.fired[0] - x.start, 500 * T_MS);

	T_STEP("a repeating timer restarted as one-shot");
	ASSERT_OK(tt_start(loop, &x, 0, 1 * T_MS, 1 * T_MS));
	ASSERT_OK(tt_restart(loop, &x, 3 * T_MS, 0));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int zero_timeout_next_iteration(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tt x = { 0 };
	uint64_t t0;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(tt_start(loop, &x, 0, 0, 0));
	ASSERT_EQ(x.count, 0);	/* not from inside start */
	ASSERT_EQ(evq_timer_is_active(&x.t), 1);
	T_STEP("NOWAIT runs it");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_EQ(evq_timer_is_active(&x.t), 0);
	T_STEP("ONCE runs it without waiting");
	ASSERT_OK(tt_start(loop, &x, 0, 0, 0));
	t0 = t_now_ns();
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_LT(t_now_ns() - t0, 100 * T_MS);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int io_runs;

static void rearm_zero_hook(struct evq_loop *loop, struct tt *self)
{
	/* Re-arm forever, bounded so a starving loop fails, not hangs. */
	if (self->count < 1000 && io_runs == 0)
		EXPECT_OK(evq_timer_start(loop, &self->t, 0, 0, tt_cb));
}

static void count_io(struct evq_loop *loop, struct evq_io *w, unsigned r)
{
	(void)loop;
	(void)r;
	io_runs++;
	evq_io_stop(w);
}

/* A timer that re-arms itself with 0 from its callback does not keep the
 * loop from reaching I/O. */
static int zero_timer_rearm_does_not_starve_io(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_io w = { 0 };
	struct tt x = { 0 };
	int fds[2], i;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	ASSERT_OK(t_write_byte(fds[1]));
	io_runs = 0;
	ASSERT_OK(evq_io_start(loop, &w, fds[0], EVQ_READ, count_io));
	x.hook = rearm_zero_hook;
	ASSERT_OK(tt_start(loop, &x, 0, 0, 0));
	x.hook = rearm_zero_hook;
	for (i = 0; i < 3 && io_runs == 0; i++) {
		T_STEP("NOWAIT %d", i);
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	}
	ASSERT_EQ(io_runs, 1);
	ASSERT_LT(x.count, 1000);
	evq_timer_stop(&x.t);
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* "measured from this call": not from the loop's cached time. */
static struct tt late;

static void slow_then_start_hook(struct evq_loop *loop, struct tt *self)
{
	(void)self;
	t_sleep_ms(30);	/* the loop's time is now 30 ms stale */
	late.hook = NULL;
	late.stop_after = 0;
	EXPECT_OK(tt_start(loop, &late, 1, 20 * T_MS, 0));
}

static int start_measured_from_the_call(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tt x = { 0 };

	ASSERT_NOTNULL(loop);
	T_STEP("started from a slow callback");
	memset(&late, 0, sizeof(late));
	x.hook = slow_then_start_hook;
	ASSERT_OK(tt_start(loop, &x, 0, 0, 0));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(late.count, 1);
	ASSERT_GE(late.fired[0] - late.start, 20 * T_MS);

	T_STEP("started after the loop idled 30 ms outside run");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	(void)evq_now(loop);
	t_sleep_ms(30);
	memset(&x, 0, sizeof(x));
	ASSERT_OK(tt_start(loop, &x, 0, 20 * T_MS, 0));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_GE(x.fired[0] - x.start, 20 * T_MS);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Random timers, some repeating: none fires before its deadline (checked
 * in tt_cb against the clock and the loop's time). */
static int never_before_deadline(void)
{
	enum { N = 300 };
	struct evq_loop *loop = t_loop_new();
	struct tt *x = calloc(N, sizeof(*x));
	int i, want = 0, got = 0;

	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(x);
	t_rand_seed();
	for (i = 0; i < N; i++) {
		uint64_t after = t_rand() % (20 * T_MS);
		uint64_t repeat = i % 5 == 0 ? T_MS + t_rand() % (4 * T_MS) : 0;

		x[i].stop_after = repeat ? 3 : 0;
		ASSERT_OK(tt_start(loop, &x[i], i, after, repeat));
		want += repeat ? 3 : 1;
	}
	norder = 0;
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	for (i = 0; i < N; i++)
		got += x[i].count;
	ASSERT_EQ(got, want);
	free(x);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * A million timers
 * ------------------------------------------------------------------------ */

#define MILLION 1000000

struct mt {
	struct evq_timer t;	/* first: the callback casts back */
	uint64_t lo;		/* clock just before start */
	uint32_t span;		/* clock after start - lo */
	uint32_t after;		/* ns, <= 2 ms */
	uint8_t fired;
	uint8_t stopped;
};

static struct mt *mts;
static struct mt *mt_prev;
static long mt_fired, mt_disorder, mt_early;

static void mt_cb(struct evq_loop *loop, struct evq_timer *t)
{
	struct mt *m = (struct mt *)t;

	m->fired++;
	mt_fired++;
	/* The deadline is in [lo + after, lo + span + after]. The previous
	 * firing's deadline must not be surely later than this one's. */
	if (mt_prev && mt_prev->lo + mt_prev->after >
			       m->lo + m->span + m->after)
		mt_disorder++;
	if (t_now_ns() < m->lo + m->after || evq_now(loop) < m->lo + m->after)
		mt_early++;
	mt_prev = m;
}

static int million_timers(void)
{
	struct evq_loop *loop = t_loop_new();
	long i, kept = 0;

	ASSERT_NOTNULL(loop);
	t_case_timeout(50);
	mts = calloc(MILLION, sizeof(*mts));
	ASSERT_NOTNULL(mts);
	t_rand_seed();
	T_STEP("start %d timers in [0, 2 ms]", MILLION);
	for (i = 0; i < MILLION; i++) {
		struct mt *m = &mts[i];
		int r;

		m->after = (uint32_t)(t_rand() % (2 * T_MS + 1));
		m->lo = t_now_ns();
		r = evq_timer_start(loop, &m->t, m->after, 0, mt_cb);
		m->span = (uint32_t)(t_now_ns() - m->lo);
		if (r != 0)
			ASSERT_OK(r);
	}
	ASSERT_EQ(evq_loop_active(loop), MILLION);
	T_STEP("stop a random half");
	for (i = 0; i < MILLION; i++) {
		if (t_rand() & 1) {
			ASSERT_OK(evq_timer_stop(&mts[i].t));
			mts[i].stopped = 1;
		} else {
			kept++;
		}
	}
	ASSERT_EQ(evq_loop_active(loop), kept);
	T_STEP("run until all fired");
	mt_prev = NULL;
	mt_fired = mt_disorder = mt_early = 0;
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(mt_fired, kept);
	ASSERT_EQ(mt_disorder, 0);
	ASSERT_EQ(mt_early, 0);
	T_STEP("each kept timer exactly once, each stopped one never");
	for (i = 0; i < MILLION; i++) {
		if (mts[i].fired != (mts[i].stopped ? 0 : 1)) {
			t_note("timer %ld: stopped %d", i, mts[i].stopped);
			ASSERT_EQ(mts[i].fired, mts[i].stopped ? 0 : 1);
		}
	}
	free(mts);
	mts = NULL;
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * The saturation rule (evq.h, "Durations"): now + ns past the end of the
 * clock is the end of the clock, and that deadline never comes.
 * ------------------------------------------------------------------------ */

static int huge_count;

static void count_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
	huge_count++;
}

static void stop_loop_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)t;
	evq_loop_stop(loop);
}

/* Repeats whose deadline + repeat (or now + repeat) passes UINT64_MAX:
 * evq.h's saturation rule makes the next firing "never", so each fires
 * once, after 1 ms, and then not again. With wrapping arithmetic the next
 * deadline lands in the past and the timer fires on every iteration. */
static int huge_repeat_fires_once_then_never(void)
{
	uint64_t now = t_now_ns();
	const uint64_t repeats[] = {
		UINT64_MAX,
		UINT64_MAX - 1,
		UINT64_MAX - now + 1,	/* now + repeat wraps to 1 */
		UINT64_MAX - now,	/* deadline + repeat wraps */
		(uint64_t)1 << 63,
		(uint64_t)INT64_MAX,
	};

	t_case_timeout(10);
	for (size_t i = 0; i < T_NELEM(repeats); i++) {
		struct evq_loop *loop = t_loop_new();
		struct evq_timer t = { 0 }, stop = { 0 };
		int64_t left;

		T_STEP("repeat %#llx", (unsigned long long)repeats[i]);
		ASSERT_NOTNULL(loop);
		huge_count = 0;
		ASSERT_OK(evq_timer_start(loop, &t, T_MS, repeats[i],
					  count_cb));
		ASSERT_OK(evq_timer_start(loop, &stop, 200 * T_MS, 0,
					  stop_loop_cb));
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 1);
		ASSERT_EQ(huge_count, 1);
		ASSERT_EQ(evq_timer_is_active(&t), 1);
		T_STEP("repeat %#llx: loop timeout after the first firing",
		       (unsigned long long)repeats[i]);
		left = evq_loop_timeout(loop);
		if (left != -1)
			ASSERT_GE(left, (int64_t)3600 * 1000 * T_MS);
		ASSERT_OK(evq_timer_stop(&t));
		ASSERT_OK(evq_loop_free(loop));
	}
	return T_PASS;
}

/* evq_loop_timeout() with only a far timer pending: -1 for a deadline
 * the rule makes "never", else a large positive count, never a small or
 * negative one (a host loop would spin or misread it). Nor may the loop
 * fire it: a run under a 50 ms stop timer sees only the stop timer. */
static int huge_after_reports_far_loop_timeout(void)
{
	uint64_t now = t_now_ns();
	const uint64_t afters[] = {
		UINT64_MAX,
		UINT64_MAX - now + 1,
		UINT64_MAX - now - 1000,
		(uint64_t)1 << 63,
		(uint64_t)INT64_MAX,
		(uint64_t)INT64_MAX - 1,
	};

	for (size_t i = 0; i < T_NELEM(afters); i++) {
		struct evq_loop *loop = t_loop_new();
		struct evq_timer t = { 0 }, stop = { 0 };
		int64_t left;

		T_STEP("after %#llx", (unsigned long long)afters[i]);
		ASSERT_NOTNULL(loop);
		huge_count = 0;
		ASSERT_OK(evq_timer_start(loop, &t, afters[i], 0, count_cb));
		left = evq_loop_timeout(loop);
		if (left != -1)
			ASSERT_GE(left, (int64_t)3600 * 1000 * T_MS);
		ASSERT_OK(evq_timer_start(loop, &stop, 50 * T_MS, 0,
					  stop_loop_cb));
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 1);
		ASSERT_EQ(huge_count, 0);
		ASSERT_OK(evq_timer_stop(&t));
		ASSERT_OK(evq_loop_free(loop));
	}
	return T_PASS;
}

static int tmo_res;
static int tmo_calls;

static void tmo_cb(struct evq_loop *loop, struct evq_op *op, int res,
		   unsigned flags)
{
	(void)loop;
	(void)op;
	(void)flags;
	tmo_res = res;
	tmo_calls++;
}

/* A timeout op with a huge ns follows the same rule: it does not
 * complete (on uring the kernel gets a timespec, which must not wrap
 * into a short or invalid one). */
static int timeout_op_with_huge_ns_never_completes(void)
{
	uint64_t now = t_now_ns();
	const uint64_t nss[] = {
		UINT64_MAX,
		UINT64_MAX - now + 1,
		(uint64_t)1 << 63,
		(uint64_t)INT64_MAX,
	};

	for (size_t i = 0; i < T_NELEM(nss); i++) {
		struct evq_loop *loop = t_loop_new();
		struct evq_timer stop = { 0 };
		struct evq_op op = { 0 };
		int64_t left;

		T_STEP("timeout op of %#llx ns", (unsigned long long)nss[i]);
		ASSERT_NOTNULL(loop);
		tmo_calls = 0;
		tmo_res = 1;
		evq_prep_timeout(&op, nss[i]);
		ASSERT_OK(evq_op_submit(loop, &op, 0, tmo_cb));
		ASSERT_OK(evq_timer_start(loop, &stop, 100 * T_MS, 0,
					  stop_loop_cb));
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 1);
		ASSERT_EQ(tmo_calls, 0);
		ASSERT_EQ(evq_op_is_active(&op), 1);
		T_STEP("timeout op of %#llx ns: loop timeout",
		       (unsigned long long)nss[i]);
		left = evq_loop_timeout(loop);
		if (left != -1)
			ASSERT_GE(left, (int64_t)3600 * 1000 * T_MS);
		ASSERT_OK(evq_loop_free(loop));
		ASSERT_EQ(tmo_calls, 1);
		ASSERT_ERR(tmo_res, -ECANCELED);
	}
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(timer_50ms_exact),
	T_CASE(order_by_deadline),
	T_CASE(same_deadline_start_order),
	T_CASE(repeat_timer),
	T_CASE(repeat_skips_missed_periods),
	T_CASE(stop_and_restart_in_own_callback),
	T_CASE(free_other_due_timers_in_batch),
	T_CASE(stop_other_pending_timer),
	T_CASE(restart_active_reschedules),
	T_CASE(zero_timeout_next_iteration),
	T_CASE(zero_timer_rearm_does_not_starve_io),
	T_CASE(start_measured_from_the_call),
	T_CASE(never_before_deadline),
	T_CASE(million_timers),
	T_CASE(huge_repeat_fires_once_then_never),
	T_CASE(huge_after_reports_far_loop_timeout),
	T_CASE(timeout_op_with_huge_ns_never_completes),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
