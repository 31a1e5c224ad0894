/* SPDX-License-Identifier: MIT */
/*
 * test_signal.c - signal watchers: delivery in loop context, a burst of
 * queued real-time signals, one claim per signal per process, invalid
 * signals, blocking and unblocking, and several watchers of one signal.
 *
 * Every signal used here also has a plain handler that only counts: if
 * evq fails to block a signal, the handler runs (and the case fails)
 * instead of the default action killing the process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

static volatile sig_atomic_t plain_handler_runs;

static void plain_handler(int sig)
{
	(void)sig;
	plain_handler_runs++;
}

static bool sig_blocked(int signo)
{
	sigset_t cur;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, signo);
}

static void sig_unblock(int signo)
{
	sigset_t one;

	sigemptyset(&one);
	sigaddset(&one, signo);
	pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

static void sig_block(int signo)
{
	sigset_t one;

	sigemptyset(&one);
	sigaddset(&one, signo);
	pthread_sigmask(SIG_BLOCK, &one, NULL);
}

/* A watcher with a record. */
struct ts {
	struct evq_signal s;
	int count;
	int in_run;		/* was the loop running during the callback */
	struct evq_loop *loop_arg;
	void (*hook)(struct evq_loop *loop, struct ts *self);
	void *arg;
};

static int running;	/* set around evq_loop_run by the cases */

static void ts_cb(struct evq_loop *loop, struct evq_signal *s)
{
	struct ts *x = s->data;

	EXPECT_TRUE(x != NULL && &x->s == s);
	x->count++;
	x->in_run = running;
	x->loop_arg = loop;
	if (x->hook)
		x->hook(loop, x);
}

/* Start x afresh. Only for an inactive watcher: it clears evq's fields. */
static int ts_start(struct evq_loop *loop, struct ts *x, int signo)
{
	void (*hook)(struct evq_loop *, struct ts *) = x->hook;
	void *arg = x->arg;

	memset(x, 0, sizeof(*x));
	x->s.data = x;
	x->hook = hook;
	x->arg = arg;
	return evq_signal_start(loop, &x->s, signo, ts_cb);
}

/* Run ONCE iterations (under a guard) until *count reaches want. */
static int run_until(struct evq_loop *loop, const int *count, int want)
{
	struct t_guard g;
	int i, r = 0;

	if (t_guard_start(loop, &g, 5000, "signal not delivered") != 0)
		return -1;
	running = 1;
	for (i = 0; i < 100000 && *count < want && !g.fired; i++) {
		r = evq_loop_run(loop, EVQ_RUN_ONCE);
		if (r < 0)
			break;
	}
	running = 0;
	t_guard_stop(&g);
	return r < 0 ? r : 0;
}

/* ------------------------------------------------------------------------ */

static int sigusr1_delivered_in_loop(void)
{
	struct evq_loop *loop = t_loop_new();
	struct ts x = { 0 };

	ASSERT_NOTNULL(loop);
	plain_handler_runs = 0;
	ASSERT_TRUE(!sig_blocked(SIGUSR1));
	ASSERT_OK(ts_start(loop, &x, SIGUSR1));
	ASSERT_EQ(evq_signal_is_active(&x.s), 1);
	ASSERT_EQ(evq_loop_active(loop), 1);
	T_STEP("the first watcher blocks the signal");
	ASSERT_TRUE(sig_blocked(SIGUSR1));
	T_STEP("kill(getpid(), SIGUSR1)");
	ASSERT_OK(kill(getpid(), SIGUSR1));
	ASSERT_EQ(x.count, 0);
	ASSERT_OK(run_until(loop, &x.count, 1));
	ASSERT_EQ(x.count, 1);
	ASSERT_EQ(x.in_run, 1);
	ASSERT_TRUE(x.loop_arg == loop);
	ASSERT_EQ(plain_handler_runs, 0);
	T_STEP("no second delivery");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(x.count, 1);
	T_STEP("a second signal, a second call");
	ASSERT_OK(kill(getpid(), SIGUSR1));
	ASSERT_OK(run_until(loop, &x.count, 2));
	ASSERT_EQ(x.count, 2);
	ASSERT_OK(evq_signal_stop(&x.s));
	ASSERT_EQ(evq_signal_is_active(&x.s), 0);
	ASSERT_TRUE(!sig_blocked(SIGUSR1));
	ASSERT_EQ(plain_handler_runs, 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Real-time signals queue: 1,000 sent, 1,000 delivered. */
static int rt_signal_burst_all_delivered(void)
{
	enum { N = 1000 };
	struct evq_loop *loop;
	struct rlimit rl;
	struct ts x = { 0 };
	int signo = SIGRTMIN + 1, i;

	ASSERT_OK(getrlimit(RLIMIT_SIGPENDING, &rl));
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < N + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_SIGPENDING, &rl);
		getrlimit(RLIMIT_SIGPENDING, &rl);
		if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < N + 64)
			return t_skip("RLIMIT_SIGPENDING %llu < %d",
				      (unsigned long long)rl.rlim_cur, N + 64);
	}
	loop = t_loop_new();
	ASSERT_NOTNULL(loop);
	plain_handler_runs = 0;
	ASSERT_OK(ts_start(loop, &x, signo));
	T_STEP("sigqueue %d x SIGRTMIN+1", N);
	for (i = 0; i < N; i++) {
		union sigval v = { .sival_int = i };

		if (sigqueue(getpid(), signo, v) != 0) {
			T_STEP("sigqueue #%d", i);
			ASSERT_OK(-errno);
		}
	}
	T_STEP("deliver");
	ASSERT_OK(run_until(loop, &x.count, N));
	ASSERT_EQ(x.count, N);
	T_STEP("and not one more");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(x.count, N);
	ASSERT_EQ(plain_handler_runs, 0);
	ASSERT_OK(evq_signal_stop(&x.s));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int one_claim_per_signal(void)
{
	struct evq_loop *l1 = t_loop_new(), *l2 = t_loop_new();
	struct ts a = { 0 }, b = { 0 }, c = { 0 };

	ASSERT_NOTNULL(l1);
	ASSERT_NOTNULL(l2);
	plain_handler_runs = 0;
	T_STEP("loop 1 claims SIGUSR2; loop 2 cannot");
	ASSERT_OK(ts_start(l1, &a, SIGUSR2));
	ASSERT_ERR(ts_start(l2, &b, SIGUSR2), -EBUSY);
	ASSERT_EQ(evq_signal_is_active(&b.s), 0);
	ASSERT_EQ(evq_loop_active(l2), 0);
	T_STEP("loop 2 may claim another signal meanwhile");
	ASSERT_OK(ts_start(l2, &c, SIGUSR1));
	ASSERT_OK(evq_signal_stop(&c.s));
	T_STEP("loop 1 stops: loop 2 can claim");
	ASSERT_OK(evq_signal_stop(&a.s));
	ASSERT_OK(ts_start(l2, &b, SIGUSR2));
	T_STEP("and gets the signal; loop 1 does not");
	ASSERT_OK(kill(getpid(), SIGUSR2));
	ASSERT_OK(run_until(l2, &b.count, 1));
	ASSERT_EQ(b.count, 1);
	ASSERT_EQ(evq_loop_run(l1, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(a.count, 0);
	T_STEP("now loop 1 is refused");
	ASSERT_ERR(ts_start(l1, &a, SIGUSR2), -EBUSY);
	ASSERT_OK(evq_signal_stop(&b.s));
	ASSERT_EQ(plain_handler_runs, 0);
	ASSERT_OK(evq_loop_free(l1));
	ASSERT_OK(evq_loop_free(l2));
	return T_PASS;
}

static int invalid_signals_einval(void)
{
	static const int bad[] = { SIGKILL, SIGSTOP, 0, 65, -1, 1000,
				   -SIGUSR1 };
	struct evq_loop *loop = t_loop_new();
	struct ts x = { 0 };
	size_t i;

	ASSERT_NOTNULL(loop);
	for (i = 0; i < T_NELEM(bad); i++) {
		T_STEP("signal %d", bad[i]);
		ASSERT_ERR(ts_start(loop, &x, bad[i]), -EINVAL);
		ASSERT_EQ(evq_signal_is_active(&x.s), 0);
	}
	ASSERT_EQ(evq_loop_active(loop), 0);
	T_STEP("NULL arguments");
	ASSERT_ERR(evq_signal_start(NULL, &x.s, SIGUSR1, ts_cb), -EINVAL);
	ASSERT_ERR(evq_signal_start(loop, NULL, SIGUSR1, ts_cb), -EINVAL);
	ASSERT_ERR(evq_signal_start(loop, &x.s, SIGUSR1, NULL), -EINVAL);
	ASSERT_ERR(evq_signal_stop(NULL), -EINVAL);
	ASSERT_EQ(evq_signal_is_active(NULL), 0);
	ASSERT_TRUE(!sig_blocked(SIGUSR1));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int unblocked_after_last_stop(void)
{
	struct evq_loop *loop = t_loop_new();
	struct ts a = { 0 }, b = { 0 };

	ASSERT_NOTNULL(loop);
	plain_handler_runs = 0;
	T_STEP("not blocked before");
	sig_unblock(SIGUSR1);
	ASSERT_TRUE(!sig_blocked(SIGUSR1));
	ASSERT_OK(ts_start(loop, &a, SIGUSR1));
	ASSERT_OK(ts_start(loop, &b, SIGUSR1));
	ASSERT_TRUE(sig_blocked(SIGUSR1));
	T_STEP("one of two stopped: still blocked");
	ASSERT_OK(evq_signal_stop(&a.s));
	ASSERT_TRUE(sig_blocked(SIGUSR1));
	T_STEP("the last stopped: unblocked");
	ASSERT_OK(evq_signal_stop(&b.s));
	ASSERT_TRUE(!sig_blocked(SIGUSR1));
	T_STEP("the signal now reaches the plain handler");
	ASSERT_OK(kill(getpid(), SIGUSR1));
	ASSERT_EQ(plain_handler_runs, 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(a.count + b.count, 0);

	T_STEP("blocked by the caller before: stays blocked");
	sig_block(SIGUSR1);
	ASSERT_OK(ts_start(loop, &a, SIGUSR1));
	ASSERT_OK(evq_signal_stop(&a.s));
	ASSERT_TRUE(sig_blocked(SIGUSR1));
	sig_unblock(SIGUSR1);
	ASSERT_EQ(plain_handler_runs, 1);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int two_watchers_one_signal(void)
{
	struct evq_loop *loop = t_loop_new();
	struct ts a = { 0 }, b = { 0 };

	ASSERT_NOTNULL(loop);
	plain_handler_runs = 0;
	ASSERT_OK(ts_start(loop, &a, SIGUSR1));
	ASSERT_OK(ts_start(loop, &b, SIGUSR1));
	ASSERT_EQ(evq_loop_active(loop), 2);
	ASSERT_OK(kill(getpid(), SIGUSR1));
	ASSERT_OK(run_until(loop, &b.count, 1));
	ASSERT_OK(run_until(loop, &a.count, 1));
	ASSERT_EQ(a.count, 1);
	ASSERT_EQ(b.count, 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(a.count + b.count, 2);
	ASSERT_OK(evq_signal_stop(&a.s));
	ASSERT_OK(evq_signal_stop(&b.s));
	ASSERT_EQ(plain_handler_runs, 0);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Two heap watchers of one signal; the first to run stops and frees the
 * other, which must not run (a use-after-free under ASan otherwise). */
static struct ts *pair[2];
static int pair_calls;

static void free_other_hook(struct evq_loop *loop, struct ts *self)
{
	(void)loop;
	pair_calls++;
	for (int i = 0; i < 2; i++) {
		if (pair[i] && pair[i] != self) {
			EXPECT_OK(evq_signal_stop(&pair[i]->s));
			free(pair[i]);
			pair[i] = NULL;
		}
	}
}

static int watcher_freed_by_other_in_callback(void)
{
	struct evq_loop *loop = t_loop_new();
	int i, alive = 0;

	ASSERT_NOTNULL(loop);
	pair_calls = 0;
	for (i = 0; i < 2; i++) {
		pair[i] = calloc(1, sizeof(struct ts));
		ASSERT_NOTNULL(pair[i]);
		pair[i]->hook = free_other_hook;
		ASSERT_OK(ts_start(loop, pair[i], SIGUSR1));
	}
	ASSERT_OK(kill(getpid(), SIGUSR1));
	ASSERT_OK(run_until(loop, &pair_calls, 1));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(pair_calls, 1);
	for (i = 0; i < 2; i++) {
		if (pair[i]) {
			alive++;
			ASSERT_EQ(pair[i]->count, 1);
			ASSERT_OK(evq_signal_stop(&pair[i]->s));
			free(pair[i]);
			pair[i] = NULL;
		}
	}
	ASSERT_EQ(alive, 1);
	ASSERT_TRUE(!sig_blocked(SIGUSR1));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* Standard signals raised several times before the loop reads them may
 * be merged, but at least one call comes. */
static int standard_signal_repeated(void)
{
	struct evq_loop *loop = t_loop_new();
	struct ts x = { 0 };
	int i;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(ts_start(loop, &x, SIGUSR2));
	for (i = 0; i < 3; i++)
		ASSERT_OK(kill(getpid(), SIGUSR2));
	ASSERT_OK(run_until(loop, &x.count, 1));
	for (i = 0; i < 3; i++)
		ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_GE(x.count, 1);
	ASSERT_LE(x.count, 3);
	ASSERT_OK(evq_signal_stop(&x.s));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* A watcher that stops itself from its callback: the signal goes back
 * to its plain handler. */
static void stop_self_hook(struct evq_loop *loop, struct ts *self)
{
	(void)loop;
	EXPECT_OK(evq_signal_stop(&self->s));
	EXPECT_EQ(evq_signal_is_active(&self->s), 0);
}

static int stop_in_own_callback(void)
{
	struct evq_loop *loop = t_loop_new();
	struct ts x = { 0 };

	ASSERT_NOTNULL(loop);
	plain_handler_runs = 0;
	x.hook = stop_self_hook;
	ASSERT_OK(ts_start(loop, &x, SIGUSR1));
	ASSERT_OK(kill(getpid(), SIGUSR1));
	ASSERT_OK(run_until(loop, &x.count, 1));
	ASSERT_EQ(x.count, 1);
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_TRUE(!sig_blocked(SIGUSR1));
	ASSERT_OK(kill(getpid(), SIGUSR1));
	ASSERT_EQ(plain_handler_runs, 1);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(x.count, 1);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(sigusr1_delivered_in_loop),
	T_CASE(rt_signal_burst_all_delivered),
	T_CASE(one_claim_per_signal),
	T_CASE(invalid_signals_einval),
	T_CASE(unblocked_after_last_stop),
	T_CASE(two_watchers_one_signal),
	T_CASE(watcher_freed_by_other_in_callback),
	T_CASE(standard_signal_repeated),
	T_CASE(stop_in_own_callback),
};

int main(int argc, char **argv)
{
	static const int sigs[] = { SIGUSR1, SIGUSR2 };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = plain_handler;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < T_NELEM(sigs); i++) {
		sigaction(sigs[i], &sa, NULL);
		sig_unblock(sigs[i]);
	}
	sigaction(SIGRTMIN + 1, &sa, NULL);
	sig_unblock(SIGRTMIN + 1);
	return t_main(argc, argv, cases, T_NELEM(cases));
}
