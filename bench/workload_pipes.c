/* SPDX-License-Identifier: MIT */
/*
 * workload_pipes.c - libevent's benchmark (test/bench.c), on N pipes.
 *
 * N pipes each have a read watcher. A round:
 *  1. stops and starts every watcher (event_del + event_add in libevent's
 *     bench): the add/del stress, one kernel update per watcher for a loop
 *     that applies changes at once, none for one that coalesces them;
 *  2. writes one byte into each of ACTIVE pipes spread evenly over the N;
 *  3. runs the loop until every byte written has been read. Each callback
 *     reads one byte and, while any of the WRITES budget is left, writes
 *     one into the next pipe, so ACTIVE + WRITES callbacks run per round.
 * The time of the whole round is taken (libev's variant of the bench
 * reports this "total" too: libevent's own times only step 3). A run makes
 * a fresh loop and the pipes, does one round untimed, then the timed
 * rounds; its value is their median in microseconds.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACTIVE 100	/* libevent bench -a */
#define WRITES 100	/* libevent bench -w */

struct pw;

struct pw_slot {
	struct pw *pw;
	int idx;
};

struct pw {
	int npipes;
	int *fds;		/* pipe i: fds[2i] read end, fds[2i+1] write end */
	uint64_t count;		/* bytes read this round */
	uint64_t fired;		/* bytes written this round */
	uint64_t writes;	/* write budget left */
	uint64_t failures;
};

static void pw_cb(void *arg)
{
	struct pw_slot *s = arg;
	struct pw *pw = s->pw;
	int widx = s->idx + 1;
	char ch;

	if (read(pw->fds[2 * s->idx], &ch, 1) == 1)
		pw->count++;
	else
		pw->failures++;
	if (pw->writes) {
		if (widx >= pw->npipes)
			widx -= pw->npipes;
		if (write(pw->fds[2 * widx + 1], "e", 1) != 1)
			pw->failures++;
		pw->writes--;
		pw->fired++;
	}
}

/* One round; returns its time in ns, or 0 and sets err. */
static uint64_t pw_round(struct pw *pw, const struct bench_contender *c,
			 void *loop, void **ios, char *err, size_t errlen)
{
	int space = pw->npipes / ACTIVE;
	uint64_t t0, t1;
	int e;

	if (space < 1)
		space = 1;
	t0 = bench_now_ns();
	for (int i = 0; i < pw->npipes; i++) {
		if ((e = c->io_stop(ios[i])) < 0 ||
		    (e = c->io_start(ios[i])) < 0) {
			snprintf(err, errlen, "io_stop/io_start: %s",
				 strerror(-e));
			return 0;
		}
	}
	pw->count = 0;
	pw->fired = 0;
	pw->writes = WRITES;
	for (int i = 0; i < ACTIVE && i * space < pw->npipes; i++) {
		if (write(pw->fds[2 * i * space + 1], "e", 1) != 1)
			pw->failures++;
		pw->fired++;
	}
	while (pw->count != pw->fired) {
		if ((e = c->run(loop, 1)) < 0) {
			snprintf(err, errlen, "run: %s", strerror(-e));
			return 0;
		}
	}
	t1 = bench_now_ns();
	if (pw->failures != 0 || pw->count != ACTIVE + WRITES) {
		snprintf(err, errlen,
			 "count check: %llu bytes read, %llu failed reads or "
			 "writes; expected exactly %d reads",
			 (unsigned long long)pw->count,
			 (unsigned long long)pw->failures, ACTIVE + WRITES);
		return 0;
	}
	return t1 - t0 ? t1 - t0 : 1;
}

static int pw_run(const struct bench_workload *wl,
		  const struct bench_contender *c, const struct bench_params *p,
		  struct bench_sample *out, char *err, size_t errlen)
{
	struct pw pw = { .npipes = (int)wl->param };
	struct pw_slot *slots = calloc(pw.npipes, sizeof(*slots));
	void **ios = calloc(pw.npipes, sizeof(*ios));
	double *times = calloc(p->rounds ? p->rounds : 1, sizeof(*times));
	void *loop = NULL;
	uint64_t cpu0, cpu1, sys0 = 0, sys1 = 0;
	int ret = -1, e, npipes_made = 0, sysfd = -1;

	pw.fds = calloc(2 * pw.npipes, sizeof(int));
	if (slots == NULL || ios == NULL || times == NULL || pw.fds == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((e = bench_raise_nofile(2 * (rlim_t)pw.npipes + 64)) < 0) {
		snprintf(err, errlen, "cannot run: %d pipes need %d fds, "
			 "more than RLIMIT_NOFILE allows", pw.npipes,
			 2 * pw.npipes + 64);
		ret = BENCH_CANNOT;
		goto out;
	}
	for (; npipes_made < pw.npipes; npipes_made++) {
		if ((e = bench_pipe(&pw.fds[2 * npipes_made])) < 0) {
			snprintf(err, errlen, "pipe: %s", strerror(-e));
			goto out;
		}
	}
	if ((e = c->loop_new(c, &loop)) < 0) {
		snprintf(err, errlen, "loop_new: %s", strerror(-e));
		loop = NULL;
		goto out;
	}
	for (int i = 0; i < pw.npipes; i++) {
		slots[i] = (struct pw_slot){ .pw = &pw, .idx = i };
		if ((e = c->io_new(loop, pw.fds[2 * i], pw_cb, &slots[i],
				   &ios[i])) < 0) {
			snprintf(err, errlen, "io_new: %s", strerror(-e));
			goto out;
		}
	}
	if (pw_round(&pw, c, loop, ios, err, errlen) == 0)
		goto out;	/* the untimed round */
	if (p->count_syscalls)
		sysfd = bench_sysc_open(0);
	cpu0 = bench_cpu_ns();
	if (sysfd >= 0)
		sys0 = bench_sysc_read(sysfd);
	for (unsigned r = 0; r < p->rounds; r++) {
		uint64_t ns = pw_round(&pw, c, loop, ios, err, errlen);

		if (ns == 0)
			goto out;
		times[r] = (double)ns / 1e3;
	}
	if (sysfd >= 0) {
		sys1 = bench_sysc_read(sysfd) - 1;	/* not this read */
		out->sys = (double)(sys1 - sys0) / (double)p->rounds;
	}
	cpu1 = bench_cpu_ns();
	out->value = bench_stats(times, p->rounds).median;
	out->cpu = (double)(cpu1 - cpu0) / 1e3 / (double)p->rounds;
	ret = 0;
out:
	if (sysfd >= 0)
		bench_sysc_close(sysfd);
	for (int i = 0; ios != NULL && i < pw.npipes; i++)
		if (ios[i] != NULL)
			c->io_free(ios[i]);
	if (loop != NULL)
		c->loop_free(loop);
	for (int i = 0; i < 2 * npipes_made; i++)
		close(pw.fds[i]);
	free(pw.fds);
	free(times);
	free(ios);
	free(slots);
	return ret;
}

static void pw_describe(const struct bench_workload *wl,
			const struct bench_params *p, char *buf, size_t len)
{
	snprintf(buf, len,
		 "%u pipes, %d active, %d writes; %u timed rounds per run, "
		 "median round",
		 wl->param, ACTIVE, WRITES, p->rounds);
}

#define PIPES_WORKLOAD(sym, n)                                               \
	const struct bench_workload sym = {                                  \
		.name = "pipes-" #n,                                         \
		.title = "libevent's bench: stop+start " #n " read watchers, " \
			 "wake 100, chain 100 more writes",                    \
		.unit = "us/round",                                          \
		.cpu_unit = "cpu us/round",                                  \
		.sys_unit = "sys/round",                                     \
		.na_why = "no fd watchers to stop and start",                \
		.higher_is_better = 0,                                       \
		.param = n,                                                  \
		.models = BENCH_MODEL_IO,                                    \
		.run = pw_run,                                               \
		.describe = pw_describe,                                     \
	}

PIPES_WORKLOAD(bench_workload_pipes100, 100);
PIPES_WORKLOAD(bench_workload_pipes1000, 1000);
