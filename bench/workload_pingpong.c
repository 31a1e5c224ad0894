/* SPDX-License-Identifier: MIT */
/*
 * workload_pingpong.c - one byte bounced between two pipes.
 *
 * Watcher A reads the byte from pipe 1 and writes it into pipe 2; watcher
 * B reads it from pipe 2 and writes it into pipe 1. Exactly one fd is
 * ready at any time, so every loop iteration is one kernel wait, one
 * callback, one read and one write: the cost of the loop's own path from
 * the kernel's report to the callback and back, per event. The same test
 * as tevent's pipe benchmark ("Got 251125 pipe events/sec").
 *
 * Completion contenders (evq-*-ops, raw-uring-ops) run the same exchange
 * with ops: each side keeps a read op in flight on its pipe; when it
 * completes with the byte, the side starts a write op of the byte into the
 * other pipe and a new read op on its own. An event is a read completion.
 * Nothing is waited for on the way: a loop that submits in batches makes
 * one kernel entry per event (the write and the new read go in with the
 * wait), a readiness loop three (wait, read, write).
 *
 * After timing, the run checks that there were exactly the events asked
 * for, each one read the byte, every write wrote it, and no byte is left
 * in either pipe (libuv's benchmark-million-timers checks its count the
 * same way).
 */
#include "bench.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct pp;
struct pp_side;

/* Completion model: write ops in flight at once per side. The previous
 * write's completion can still be undelivered when the next is due (it
 * may come in the same batch as the read it caused, and after it). */
#define PP_WSLOTS 4

struct pp_wslot {
	struct pp_side *side;
	void *op;
	int busy;
};

struct pp_side {
	struct pp *pp;
	int rfd;		/* this watcher's pipe */
	int wfd;		/* where the byte goes next */
	/* completion model */
	void *rop;
	char rbuf[1];
	struct pp_wslot w[PP_WSLOTS];
};

struct pp {
	const struct bench_contender *c;
	void *loop;
	uint64_t target;	/* events to run */
	uint64_t events;	/* callbacks seen */
	uint64_t bytes;		/* callbacks that read the byte */
	uint64_t bad_writes;
	uint64_t writes_ok;	/* completion model: writes of 1 byte */
	uint64_t writes_cancelled;
	int closing;		/* loop_free is cancelling what is left */
	struct pp_side a, b;
};

static void pp_cb(void *arg)
{
	struct pp_side *s = arg;
	struct pp *pp = s->pp;
	char ch;

	pp->events++;
	if (read(s->rfd, &ch, 1) != 1)
		return;	/* a spurious wakeup: fails the check below */
	pp->bytes++;
	if (pp->events >= pp->target) {
		pp->c->break_loop(pp->loop);
		return;
	}
	if (write(s->wfd, &ch, 1) != 1)
		pp->bad_writes++;
}

static void pp_write_done(void *arg, int res)
{
	struct pp_wslot *w = arg;
	struct pp *pp = w->side->pp;

	w->busy = 0;
	if (res == 1)
		pp->writes_ok++;
	else if (res == -ECANCELED && pp->closing)
		pp->writes_cancelled++;
	else
		pp->bad_writes++;
}

static void pp_read_done(void *arg, int res)
{
	struct pp_side *s = arg;
	struct pp *pp = s->pp;
	struct pp_wslot *w = NULL;
	int e;

	if (pp->closing)
		return;	/* the read still in flight, cancelled */
	pp->events++;
	if (res != 1 || s->rbuf[0] != 'x') {
		pp->c->break_loop(pp->loop);	/* fails the check */
		return;
	}
	pp->bytes++;
	if (pp->events >= pp->target) {
		pp->c->break_loop(pp->loop);
		return;
	}
	for (int i = 0; i < PP_WSLOTS; i++) {
		if (!s->w[i].busy) {
			w = &s->w[i];
			break;
		}
	}
	if (w == NULL) {
		pp->bad_writes++;	/* PP_WSLOTS writes unfinished */
		pp->c->break_loop(pp->loop);
		return;
	}
	w->busy = 1;
	if ((e = pp->c->op_write(w->op, s->wfd, "x", 1)) < 0) {
		w->busy = 0;
		pp->bad_writes++;
	}
	s->rbuf[0] = 0;
	if ((e = pp->c->op_read(s->rop, s->rfd, s->rbuf, 1)) < 0)
		pp->c->break_loop(pp->loop);	/* fails the check */
}

static int pp_ops_setup(struct pp *pp, struct pp_side *s)
{
	int e;

	if ((e = pp->c->op_new(pp->loop, pp_read_done, s, &s->rop)) < 0)
		return e;
	for (int i = 0; i < PP_WSLOTS; i++) {
		s->w[i].side = s;
		if ((e = pp->c->op_new(pp->loop, pp_write_done, &s->w[i],
				       &s->w[i].op)) < 0)
			return e;
	}
	return pp->c->op_read(s->rop, s->rfd, s->rbuf, 1);
}

static void pp_ops_free(struct pp *pp, struct pp_side *s)
{
	if (s->rop != NULL)
		pp->c->op_free(s->rop);
	for (int i = 0; i < PP_WSLOTS; i++)
		if (s->w[i].op != NULL)
			pp->c->op_free(s->w[i].op);
}

/* 1 if fd has nothing to read (it is O_NONBLOCK). */
static int pipe_empty(int fd)
{
	char ch;

	return read(fd, &ch, 1) < 0 && errno == EAGAIN;
}

static int pp_run(const struct bench_workload *wl,
		  const struct bench_contender *c, const struct bench_params *p,
		  struct bench_sample *out, char *err, size_t errlen)
{
	struct pp pp = { .c = c, .target = p->events };
	int p1[2] = { -1, -1 }, p2[2] = { -1, -1 };
	void *ioa = NULL, *iob = NULL;
	uint64_t t0, t1, cpu0, cpu1, sys0 = 0, sys1 = 0;
	int ret = -1, e, sysfd = -1, ops = c->io_new == NULL;

	(void)wl;
	if ((e = bench_pipe(p1)) < 0 || (e = bench_pipe(p2)) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(-e));
		goto out;
	}
	if ((e = c->loop_new(c, &pp.loop)) < 0) {
		snprintf(err, errlen, "loop_new: %s", strerror(-e));
		pp.loop = NULL;
		goto out;
	}
	pp.a = (struct pp_side){ .pp = &pp, .rfd = p1[0], .wfd = p2[1] };
	pp.b = (struct pp_side){ .pp = &pp, .rfd = p2[0], .wfd = p1[1] };
	if (ops) {
		if ((e = pp_ops_setup(&pp, &pp.a)) < 0 ||
		    (e = pp_ops_setup(&pp, &pp.b)) < 0) {
			snprintf(err, errlen, "op_new/op_read: %s",
				 strerror(-e));
			goto out;
		}
	} else if ((e = c->io_new(pp.loop, p1[0], pp_cb, &pp.a, &ioa)) < 0 ||
		   (e = c->io_new(pp.loop, p2[0], pp_cb, &pp.b, &iob)) < 0) {
		snprintf(err, errlen, "io_new: %s", strerror(-e));
		goto out;
	}

	if (p->count_syscalls)
		sysfd = bench_sysc_open(0);
	cpu0 = bench_cpu_ns();
	t0 = bench_now_ns();
	if (sysfd >= 0)
		sys0 = bench_sysc_read(sysfd);
	if (write(p1[1], "x", 1) != 1) {
		snprintf(err, errlen, "write: %s", strerror(errno));
		goto out;
	}
	e = c->run(pp.loop, 0);
	if (sysfd >= 0)
		sys1 = bench_sysc_read(sysfd) - 1;	/* not this read */
	t1 = bench_now_ns();
	cpu1 = bench_cpu_ns();

	if (e < 0) {
		snprintf(err, errlen, "run: %s", strerror(-e));
		goto out;
	}
	if (ops) {
		/* End the reads still in flight before looking at the
		 * pipes: an op in flight could take the byte. */
		pp.closing = 1;
		c->loop_free(pp.loop);
		pp.loop = NULL;
		if (pp.writes_ok + pp.writes_cancelled != pp.target - 1) {
			snprintf(err, errlen,
				 "count check: %llu writes done and %llu "
				 "cancelled, expected %llu in all",
				 (unsigned long long)pp.writes_ok,
				 (unsigned long long)pp.writes_cancelled,
				 (unsigned long long)pp.target - 1);
			goto out;
		}
	}
	if (pp.events != pp.target || pp.bytes != pp.target ||
	    pp.bad_writes != 0) {
		snprintf(err, errlen,
			 "count check: %llu events (%llu read a byte, %llu "
			 "writes failed), expected exactly %llu",
			 (unsigned long long)pp.events,
			 (unsigned long long)pp.bytes,
			 (unsigned long long)pp.bad_writes,
			 (unsigned long long)pp.target);
		goto out;
	}
	if (!pipe_empty(p1[0]) || !pipe_empty(p2[0])) {
		snprintf(err, errlen, "a byte is left in a pipe after the run");
		goto out;
	}
	out->value = (double)pp.events * 1e9 / (double)(t1 - t0);
	/* seconds of CPU per million events */
	out->cpu = (double)(cpu1 - cpu0) / 1e9 * 1e6 / (double)pp.events;
	if (sysfd >= 0)
		out->sys = (double)(sys1 - sys0) / (double)pp.events;
	ret = 0;
out:
	if (sysfd >= 0)
		bench_sysc_close(sysfd);
	if (ioa != NULL)
		c->io_free(ioa);
	if (iob != NULL)
		c->io_free(iob);
	if (pp.loop != NULL) {
		pp.closing = 1;
		c->loop_free(pp.loop);
	}
	if (ops) {
		pp_ops_free(&pp, &pp.a);
		pp_ops_free(&pp, &pp.b);
	}
	for (int i = 0; i < 2; i++) {
		if (p1[i] >= 0)
			close(p1[i]);
		if (p2[i] >= 0)
			close(p2[i]);
	}
	return ret;
}

static void pp_describe(const struct bench_workload *wl,
			const struct bench_params *p, char *buf, size_t len)
{
	(void)wl;
	snprintf(buf, len, "%llu events per run", (unsigned long long)p->events);
}

const struct bench_workload bench_workload_pingpong = {
	.name = "pingpong",
	.title = "2 pipes, 2 read watchers (or read ops), 1 byte bounced "
		 "between them",
	.unit = "events/s",
	.cpu_unit = "cpu s/Mev",
	.sys_unit = "sys/ev",
	.na_why = "no fd watchers or fd ops",
	.higher_is_better = 1,
	.models = BENCH_MODEL_IO | BENCH_MODEL_OPS,
	.run = pp_run,
	.describe = pp_describe,
};
