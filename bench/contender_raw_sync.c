/* SPDX-License-Identifier: MIT */
/*
 * contender_raw_sync.c - plain blocking syscalls in the calling thread:
 * the reference of the file workloads (fileread-*, statstorm).
 *
 * A file op runs at once, in the call that starts it (pread(2) or
 * statx(2)), and its result waits in a FIFO until run() delivers it, so
 * the workloads drive it through the same calls as every other file
 * contender. There is never more than one syscall at a time: whatever
 * queue depth the workload asks for, this is queue depth 1, and what an
 * asynchronous contender gains over it is what its parallelism is worth
 * (and what it loses, when the data is in the page cache, is what its
 * machinery costs). It has no loop, no readiness and no timers.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct rs_op;

struct rs_loop {
	struct rs_op *head, *tail;	/* done, not yet delivered */
	int stop;
};

struct rs_op {
	struct rs_loop *l;
	struct rs_op *next;
	bench_op_cb cb;
	void *arg;
	int res;
};

static int rs_loop_new(const struct bench_contender *c, void **loopp)
{
	struct rs_loop *l = calloc(1, sizeof(*l));

	(void)c;
	if (l == NULL)
		return -ENOMEM;
	*loopp = l;
	return 0;
}

/* Results not delivered yet end as cancelled, as the op model asks. */
static void rs_loop_free(void *loop)
{
	struct rs_loop *l = loop;

	while (l->head != NULL) {
		struct rs_op *o = l->head;

		l->head = o->next;
		o->cb(o->arg, -ECANCELED);
	}
	free(l);
}

static int rs_run(void *loop, int once)
{
	struct rs_loop *l = loop;

	l->stop = 0;
	do {
		struct rs_op *o = l->head;

		if (o == NULL)
			return -EDEADLK;	/* nothing can ever happen */
		l->head = o->next;
		if (l->head == NULL)
			l->tail = NULL;
		o->cb(o->arg, o->res);
	} while (!once && !l->stop);
	return 0;
}

static void rs_break(void *loop)
{
	((struct rs_loop *)loop)->stop = 1;
}

static int rs_fop_new(void *loop, bench_op_cb cb, void *arg, void **opp)
{
	struct rs_op *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return -ENOMEM;
	o->l = loop;
	o->cb = cb;
	o->arg = arg;
	*opp = o;
	return 0;
}

static void rs_done(struct rs_op *o, long res)
{
	struct rs_loop *l = o->l;

	o->res = res < 0 ? -errno : res > 0x7fffffff ? 0x7fffffff : (int)res;
	o->next = NULL;
	if (l->tail != NULL)
		l->tail->next = o;
	else
		l->head = o;
	l->tail = o;
}

static int rs_fop_read(void *op, int fd, void *buf, size_t len, uint64_t off)
{
	rs_done(op, (long)pread(fd, buf, len, (off_t)off));
	return 0;
}

static int rs_fop_stat(void *op, const char *path, struct bench_stat *st)
{
	struct statx stx;
	int r = statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &stx);

	if (r == 0) {
		st->ino = stx.stx_ino;
		st->size = stx.stx_size;
		st->mtime_sec = stx.stx_mtime.tv_sec;
		st->mtime_nsec = stx.stx_mtime.tv_nsec;
		st->mode = stx.stx_mode;
	}
	rs_done(op, r);
	return 0;
}

static void rs_fop_free(void *op)
{
	free(op);
}

const struct bench_contender bench_raw_sync = {
	.name = "raw-sync",
	.backend = "syscalls",
	.loop_new = rs_loop_new,
	.loop_free = rs_loop_free,
	.run = rs_run,
	.break_loop = rs_break,
	.fop_new = rs_fop_new,
	.fop_read = rs_fop_read,
	.fop_stat = rs_fop_stat,
	.fop_free = rs_fop_free,
};
