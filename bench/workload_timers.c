/* SPDX-License-Identifier: MIT */
/*
 * workload_timers.c - start, stop and fire N one-shot timers.
 *
 * A run makes N timers (outside the timed part: each contender allocates
 * its own per timer), then, timed phase by phase with the process's CPU
 * clock:
 *
 *   start   N timers, timer i with a delay d[i] drawn from a seeded PRNG,
 *           uniform in [0, 50 ms), in nanoseconds (the same sequence for
 *           every contender in the same run);
 *   stop    every odd-numbered timer (N/2), before the loop has run, so
 *           none of them can have fired;
 *   fire    run the loop until the N - N/2 others have fired; the last
 *           callback breaks out of it.
 *
 * That is 2N operations: N starts, N/2 stops and N/2 fires. The figure
 * reported is CPU time (user + system, all threads: CLOCK_PROCESS_CPUTIME_ID)
 * per operation, not wall-clock time, because the fire phase mostly waits
 * for deadlines: a loop is not faster for sleeping less. The CPU column
 * therefore shows the run's wall-clock time instead (the 50 ms window,
 * plus however long the phases took), and the extra columns split the CPU
 * time per operation by phase.
 *
 * After timing the run checks that every even timer fired exactly once,
 * no odd one fired, and the count is exactly N - N/2. A fire before the
 * loop ran or a missing or doubled one fails the run. (Whether a timer
 * fired early is not checked: that would cost a clock read per fire in
 * every contender. evq's test suite checks it.)
 *
 * The syscall pass counts the calling thread's syscalls per 1,000
 * operations: the loop's waits, and whatever its starts and stops cost.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TM_WINDOW_NS 50000000u	/* deadlines spread over 0-50 ms */

struct tmw;

struct tm_slot {
	struct tmw *tm;
	void *t;
	uint32_t fired;
};

struct tmw {
	const struct bench_contender *c;
	void *loop;
	uint64_t target;	/* fires expected */
	uint64_t fired;
	uint64_t bad;		/* a stopped timer fired, or one twice */
};

static void tm_cb(void *arg)
{
	struct tm_slot *s = arg;
	struct tmw *tm = s->tm;

	if (s->fired++)
		tm->bad++;
	if (++tm->fired == tm->target)
		tm->c->break_loop(tm->loop);
}

static int tm_run(const struct bench_workload *wl,
		  const struct bench_contender *c, const struct bench_params *p,
		  struct bench_sample *out, char *err, size_t errlen)
{
	uint64_t n = p->timers, seed = 0x74696d657273u + p->run;
	struct tmw tm = { .c = c, .target = n - n / 2 };
	struct tm_slot *slots = NULL;
	uint64_t *delay = NULL;
	uint64_t w0, w1, c0, c1, c2, c3, sys0 = 0, sys1 = 0;
	int ret = -1, e, sysfd = -1;

	(void)wl;
	if (c->timers_max && n > c->timers_max) {
		snprintf(err, errlen,
			 "cannot run: %llu timers are more than it can take "
			 "(%llu): %s",
			 (unsigned long long)n,
			 (unsigned long long)c->timers_max,
			 c->timers_max_why ? c->timers_max_why : "too slow");
		return BENCH_CANNOT;
	}
	slots = calloc(n, sizeof(*slots));
	delay = malloc(n * sizeof(*delay));
	if (slots == NULL || delay == NULL) {
		snprintf(err, errlen, "out of memory for %llu timers",
			 (unsigned long long)n);
		goto out;
	}
	for (uint64_t i = 0; i < n; i++)
		delay[i] = bench_rand(&seed) % TM_WINDOW_NS;
	if ((e = c->loop_new(c, &tm.loop)) < 0) {
		snprintf(err, errlen, "loop_new: %s", strerror(-e));
		tm.loop = NULL;
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		slots[i].tm = &tm;
		if ((e = c->timer_new(tm.loop, tm_cb, &slots[i],
				      &slots[i].t)) < 0) {
			snprintf(err, errlen, "timer_new: %s", strerror(-e));
			goto out;
		}
	}

	if (p->count_syscalls)
		sysfd = bench_sysc_open(0);
	w0 = bench_now_ns();
	c0 = bench_pcpu_ns();
	if (sysfd >= 0)
		sys0 = bench_sysc_read(sysfd);
	for (uint64_t i = 0; i < n; i++) {
		if ((e = c->timer_start(slots[i].t, delay[i])) < 0) {
			snprintf(err, errlen, "timer_start: %s", strerror(-e));
			goto out;
		}
	}
	c1 = bench_pcpu_ns();
	for (uint64_t i = 1; i < n; i += 2) {
		if ((e = c->timer_stop(slots[i].t)) < 0) {
			snprintf(err, errlen, "timer_stop: %s", strerror(-e));
			goto out;
		}
	}
	c2 = bench_pcpu_ns();
	if (tm.fired != 0) {
		snprintf(err, errlen, "%llu timers fired before the loop ran",
			 (unsigned long long)tm.fired);
		goto out;
	}
	e = c->run(tm.loop, 0);
	if (sysfd >= 0)
		sys1 = bench_sysc_read(sysfd) - 1;	/* not this read */
	c3 = bench_pcpu_ns();
	w1 = bench_now_ns();
	if (e < 0) {
		snprintf(err, errlen, "run: %s", strerror(-e));
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		if (slots[i].fired != (i % 2 == 0 ? 1u : 0u)) {
			snprintf(err, errlen,
				 "count check: timer %llu (%s) fired %u "
				 "times; %llu fired in all, expected %llu",
				 (unsigned long long)i,
				 i % 2 ? "stopped" : "not stopped",
				 slots[i].fired,
				 (unsigned long long)tm.fired,
				 (unsigned long long)tm.target);
			goto out;
		}
	}
	if (tm.fired != tm.target || tm.bad) {
		snprintf(err, errlen, "count check: %llu fired, expected %llu",
			 (unsigned long long)tm.fired,
			 (unsigned long long)tm.target);
		goto out;
	}
	out->value = (double)(c3 - c0) / (double)(2 * n);
	out->cpu = (double)(w1 - w0) / 1e6;
	out->extra[0] = (double)(c1 - c0) / (double)n;
	out->extra[1] = (double)(c2 - c1) / (double)(n / 2 ? n / 2 : 1);
	out->extra[2] = (double)(c3 - c2) / (double)tm.target;
	if (sysfd >= 0)
		out->sys = (double)(sys1 - sys0) * 1000 / (double)(2 * n);
	ret = 0;
out:
	if (sysfd >= 0)
		bench_sysc_close(sysfd);
	for (uint64_t i = 0; slots != NULL && i < n; i++)
		if (slots[i].t != NULL)
			c->timer_free(slots[i].t);
	if (tm.loop != NULL)
		c->loop_free(tm.loop);
	free(slots);
	free(delay);
	return ret;
}

static void tm_describe(const struct bench_workload *wl,
			const struct bench_params *p, char *buf, size_t len)
{
	(void)wl;
	snprintf(buf, len,
		 "%llu timers per run, deadlines 0-50 ms (seeded), every other "
		 "one stopped; %llu ops = starts + stops + fires",
		 (unsigned long long)p->timers,
		 (unsigned long long)(2 * p->timers));
}

const struct bench_workload bench_workload_timers = {
	.name = "timers",
	.title = "start N timers with random deadlines, stop half, fire the "
		 "rest",
	.unit = "ns/op",
	.cpu_unit = "wall ms",
	.sys_unit = "sys/kop",
	.na_why = "no timers in this contender",
	.legend = "ns/op: CPU time (user+sys) per op over the three phases, "
		  "i.e. cpu s per million ops x 1000; wall ms: the run's wall "
		  "clock, start to last fire; sys/kop: syscalls per 1000 ops; "
		  "start/stop/fire ns: CPU time per op of each phase",
	.higher_is_better = 0,
	.models = BENCH_MODEL_TIMER,
	.extra_unit = { "start ns", "stop ns", "fire ns" },
	.run = tm_run,
	.describe = tm_describe,
};
