/* SPDX-License-Identifier: MIT */
/*
 * test_async.c - cross-thread wakeups: a send from another thread runs the
 * callback in the loop's thread, sends before the callback merge, a send
 * during or after the callback always causes another call (the last
 * wakeup is never lost, under four threads hammering), sends to inactive
 * watchers fail, and stopped watchers stay silent.
 *
 * Labelled `threads`: the TSan build runs it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

struct ta {
	struct evq_async a;
	int count;
	int wrong_thread;
	void (*hook)(struct evq_loop *loop, struct ta *self);
};

static pthread_t loop_thread;

static void ta_cb(struct evq_loop *loop, struct evq_async *a)
{
	struct ta *x = a->data;

	EXPECT_TRUE(x != NULL && &x->a == a);
	x->count++;
	if (!pthread_equal(pthread_self(), loop_thread))
		x->wrong_thread++;
	if (x->hook)
		x->hook(loop, x);
}

/* Start x afresh. Only for an inactive watcher: it clears evq's fields. */
static int ta_start(struct evq_loop *loop, struct ta *x)
{
	void (*hook)(struct evq_loop *, struct ta *) = x->hook;

	memset(x, 0, sizeof(*x));
	x->a.data = x;
	x->hook = hook;
	return evq_async_start(loop, &x->a, ta_cb);
}

/* Run ONCE iterations under a guard until *count >= want. */
static int run_until(struct evq_loop *loop, const int *count, int want)
{
	struct t_guard g;
	int i, r = 0;

	if (t_guard_start(loop, &g, 10000, "async callback never ran") != 0)
		return -1;
	for (i = 0; i < 1000000 && *count < want && !g.fired; i++) {
		r = evq_loop_run(loop, EVQ_RUN_ONCE);
		if (r < 0)
			break;
	}
	t_guard_stop(&g);
	return r < 0 ? r : 0;
}

/* ------------------------------------------------------------------------ */

struct sender {
	struct evq_async *a;
	int n;
	int errors;
	atomic_long *counter;	/* incremented before each send, if set */
};

static void *send_thread(void *arg)
{
	struct sender *s = arg;

	for (int i = 0; i < s->n; i++) {
		if (s->counter)
			atomic_fetch_add(s->counter, 1);
		if (evq_async_send(s->a) != 0)
			s->errors++;
	}
	return NULL;
}

static int thread_send_runs_callback(void)
{
	struct evq_loop *loop = t_loop_new();
	struct ta x = { 0 };
	struct sender s;
	pthread_t th;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(ta_start(loop, &x));
	ASSERT_EQ(evq_async_is_active(&x.a), 1);
	ASSERT_EQ(evq_loop_active(loop), 1);
	T_STEP("idle: no call");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(x.count, 0);
	T_STEP("one send from another thread");
	s = (struct sender){ .a = &x.a, .n = 1 };
	ASSERT_OK(pthread_create(&th, NULL, send_thread, &s));
	ASSERT_OK(run_until(loop, &x.count, 1));
	ASSERT_OK(pthread_join(th, NULL));
	ASSERT_EQ(s.errors, 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_EQ(x.wrong_thread, 0);
	T_STEP("no further call without a send");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(x.count, 1);
	ASSERT_OK(evq_async_stop(&x.a));
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* "Sends that arrive before the callback runs are merged into one call." */
static int sends_before_callback_merge(void)
{
	struct evq_loop *loop = t_loop_new();
	struct ta x = { 0 };
	struct sender s;
	pthread_t th;
	int i;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(ta_start(loop, &x));
	T_STEP("1,000 sends from the loop's thread, then run");
	for (i = 0; i < 1000; i++)
		ASSERT_OK(evq_async_send(&x.a));
	ASSERT_EQ(x.count, 0);	/* never from inside send */
	ASSERT_OK(run_until(loop, &x.count, 1));
	for (i = 0; i < 3; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(x.count, 1);

	T_STEP("1,000 sends from another thread (joined), then run");
	x.count = 0;
	s = (struct sender){ .a = &x.a, .n = 1000 };
	ASSERT_OK(pthread_create(&th, NULL, send_thread, &s));
	ASSERT_OK(pthread_join(th, NULL));
	ASSERT_EQ(s.errors, 0);
	ASSERT_OK(run_until(loop, &x.count, 1));
	for (i = 0; i < 3; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(x.count, 1);
	ASSERT_EQ(x.wrong_thread, 0);
	ASSERT_OK(evq_async_stop(&x.a));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static void send_again_hook(struct evq_loop *loop, struct ta *self)
{
	(void)loop;
	if (self->count < 3)
		EXPECT_OK(evq_async_send(&self->a));
}

/* A send from inside the callback causes another call. */
static int send_during_callback_calls_again(void)
{
	struct evq_loop *loop = t_loop_new();
	struct ta x = { 0 };

	ASSERT_NOTNULL(loop);
	x.hook = send_again_hook;
	ASSERT_OK(ta_start(loop, &x));
	ASSERT_OK(evq_async_send(&x.a));
	ASSERT_OK(run_until(loop, &x.count, 3));
	ASSERT_EQ(x.count, 3);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(x.count, 3);
	ASSERT_OK(evq_async_stop(&x.a));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * The last wakeup is never lost
 * ------------------------------------------------------------------------ */

#define NTHREADS 4
#define PER_THREAD 100000
#define TOTAL ((long)NTHREADS * PER_THREAD)

static atomic_long counter;
static long last_seen;
static long calls;
static bool stop_at_total;

static void observe_cb(struct evq_loop *loop, struct evq_async *a)
{
	(void)a;
	last_seen = atomic_load(&counter);
	calls++;
	if (stop_at_total && last_seen == TOTAL)
		evq_loop_stop(loop);
}

static int last_wakeup(enum evq_run_mode mode)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_async a = { 0 };
	struct sender s[NTHREADS];
	pthread_t th[NTHREADS];
	struct t_guard g;
	int i;
	long iters = 0;

	ASSERT_NOTNULL(loop);
	t_case_timeout(50);
	atomic_store(&counter, 0);
	last_seen = calls = 0;
	stop_at_total = mode == EVQ_RUN_DEFAULT;
	ASSERT_OK(evq_async_start(loop, &a, observe_cb));
	ASSERT_OK(t_guard_start(loop, &g, 15000,
				"the last send was not followed by a call"));
	T_STEP("%d threads x %d sends", NTHREADS, PER_THREAD);
	for (i = 0; i < NTHREADS; i++) {
		s[i] = (struct sender){ .a = &a, .n = PER_THREAD,
					.counter = &counter };
		ASSERT_OK(pthread_create(&th[i], NULL, send_thread, &s[i]));
	}
	if (mode == EVQ_RUN_DEFAULT) {
		T_STEP("EVQ_RUN_DEFAULT until a call sees %ld", TOTAL);
		EXPECT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 1);
	} else {
		T_STEP("EVQ_RUN_ONCE until a call sees %ld", TOTAL);
		while (last_seen != TOTAL && !g.fired) {
			int r = evq_loop_run(loop, EVQ_RUN_ONCE);

			iters++;
			if (r < 0) {
				EXPECT_GE(r, 0);	/* join first */
				break;
			}
		}
	}
	for (i = 0; i < NTHREADS; i++) {
		ASSERT_OK(pthread_join(th[i], NULL));
		ASSERT_EQ(s[i].errors, 0);
	}
	ASSERT_EQ(g.fired, 0);
	ASSERT_EQ(atomic_load(&counter), TOTAL);
	ASSERT_EQ(last_seen, TOTAL);
	T_STEP("drained: whatever runs now still sees the total");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(last_seen, TOTAL);
	ASSERT_GE(calls, 1);
	ASSERT_LE(calls, TOTAL);
	t_note("%ld callbacks for %ld sends (%ld ONCE iterations)", calls,
	       TOTAL, iters);
	t_guard_stop(&g);
	ASSERT_OK(evq_async_stop(&a));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int last_wakeup_never_lost_run_default(void)
{
	return last_wakeup(EVQ_RUN_DEFAULT);
}

static int last_wakeup_never_lost_run_once(void)
{
	return last_wakeup(EVQ_RUN_ONCE);
}

/* ------------------------------------------------------------------------
 * Inactive, stopped, freed
 * ------------------------------------------------------------------------ */

static int send_inactive_einval(void)
{
	struct evq_loop *loop = t_loop_new();
	struct ta x = { 0 };
	struct evq_async never = { 0 };

	ASSERT_NOTNULL(loop);
	T_STEP("never started");
	ASSERT_ERR(evq_async_send(&never), -EINVAL);
	T_STEP("stopped");
	ASSERT_OK(ta_start(loop, &x));
	ASSERT_OK(evq_async_stop(&x.a));
	ASSERT_EQ(evq_async_is_active(&x.a), 0);
	ASSERT_ERR(evq_async_send(&x.a), -EINVAL);
	ASSERT_OK(evq_async_stop(&x.a));	/* twice: a no-op */
	T_STEP("NULL");
	ASSERT_ERR(evq_async_send(NULL), -EINVAL);
	ASSERT_ERR(evq_async_stop(NULL), -EINVAL);
	ASSERT_ERR(evq_async_start(NULL, &x.a, ta_cb), -EINVAL);
	ASSERT_ERR(evq_async_start(loop, NULL, ta_cb), -EINVAL);
	ASSERT_ERR(evq_async_start(loop, &x.a, NULL), -EINVAL);
	ASSERT_EQ(evq_async_is_active(NULL), 0);
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(x.count, 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int stopped_after_send_stays_silent(void)
{
	struct evq_loop *loop = t_loop_new();
	struct ta x = { 0 }, y = { 0 };

	ASSERT_NOTNULL(loop);
	ASSERT_OK(ta_start(loop, &x));
	ASSERT_OK(ta_start(loop, &y));
	ASSERT_OK(evq_async_send(&x.a));
	ASSERT_OK(evq_async_stop(&x.a));
	T_STEP("sent then stopped: no call; the other is not called either");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(x.count, 0);
	ASSERT_EQ(y.count, 0);
	T_STEP("restarted: a fresh send works, an old one is gone");
	ASSERT_OK(ta_start(loop, &x));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(x.count, 0);
	ASSERT_OK(evq_async_send(&x.a));
	ASSERT_OK(run_until(loop, &x.count, 1));
	ASSERT_EQ(x.count, 1);
	ASSERT_EQ(y.count, 0);
	ASSERT_OK(evq_async_stop(&x.a));
	ASSERT_OK(evq_async_stop(&y.a));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Both sent; the first callback stops and frees the other. */
static struct ta *pair[2];
static int pair_calls;

static void free_other_hook(struct evq_loop *loop, struct ta *self)
{
	(void)loop;
	pair_calls++;
	for (int i = 0; i < 2; i++) {
		if (pair[i] && pair[i] != self) {
			EXPECT_OK(evq_async_stop(&pair[i]->a));
			free(pair[i]);
			pair[i] = NULL;
		}
	}
}

static int freed_by_other_callback(void)
{
	struct evq_loop *loop = t_loop_new();
	int i, alive = 0;

	ASSERT_NOTNULL(loop);
	pair_calls = 0;
	for (i = 0; i < 2; i++) {
		pair[i] = calloc(1, sizeof(struct ta));
		ASSERT_NOTNULL(pair[i]);
		pair[i]->hook = free_other_hook;
		ASSERT_OK(ta_start(loop, pair[i]));
	}
	ASSERT_OK(evq_async_send(&pair[0]->a));
	ASSERT_OK(evq_async_send(&pair[1]->a));
	ASSERT_OK(run_until(loop, &pair_calls, 1));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(pair_calls, 1);
	for (i = 0; i < 2; i++) {
		if (pair[i]) {
			alive++;
			ASSERT_OK(evq_async_stop(&pair[i]->a));
			free(pair[i]);
			pair[i] = NULL;
		}
	}
	ASSERT_EQ(alive, 1);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* "Safe from any thread and from signal handlers." */
static struct evq_async *handler_target;
static volatile sig_atomic_t handler_ret = 12345;

static void send_from_handler(int sig)
{
	(void)sig;
	handler_ret = evq_async_send(handler_target);
}

static int send_from_signal_handler(void)
{
	struct evq_loop *loop = t_loop_new();
	struct sigaction sa, old;
	struct ta x = { 0 };

	ASSERT_NOTNULL(loop);
	ASSERT_OK(ta_start(loop, &x));
	handler_target = &x.a;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = send_from_handler;
	ASSERT_OK(sigaction(SIGUSR2, &sa, &old));
	ASSERT_OK(raise(SIGUSR2));
	ASSERT_OK(sigaction(SIGUSR2, &old, NULL));
	ASSERT_OK(handler_ret);
	ASSERT_OK(run_until(loop, &x.count, 1));
	ASSERT_EQ(x.count, 1);
	ASSERT_OK(evq_async_stop(&x.a));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(thread_send_runs_callback),
	T_CASE(sends_before_callback_merge),
	T_CASE(send_during_callback_calls_again),
	T_CASE(last_wakeup_never_lost_run_default),
	T_CASE(last_wakeup_never_lost_run_once),
	T_CASE(send_inactive_einval),
	T_CASE(stopped_after_send_stays_silent),
	T_CASE(freed_by_other_callback),
	T_CASE(send_from_signal_handler),
};

int main(int argc, char **argv)
{
	loop_thread = pthread_self();
	return t_main(argc, argv, cases, T_NELEM(cases));
}
