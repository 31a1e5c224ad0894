/* SPDX-License-Identifier: MIT */
/*
 * workload_statstorm.c - statx of N files in a tree, many in flight: the
 * stat phase of `ls -lt` over a big tree.
 *
 * The tree. bench-data/statstorm-100x1000/ under the data directory (see
 * workload_fileread.c): 100 directories d000..d099 of 1,000 empty files
 * f0000..f0999 each, with modification times drawn from a seeded PRNG
 * (so that sorting by mtime would mean something). It is made once: a
 * file named "complete" is written last, and a tree that has it is
 * reused; a tree without it is completed (existing files are kept). The
 * --test tree is statstorm-4x100. Before a table every file is stat'ed
 * once with plain statx(): that warms the dentry and inode caches (every
 * table measures warm caches: dropping them would need root and would hit
 * the whole machine) and records each file's inode number and mtime, the
 * answers the runs are checked against.
 *
 * A run stats the first N files (--files; 20,000 by default: d000-d019)
 * in tree order, by absolute path (statx(AT_FDCWD, path, 0,
 * STATX_BASIC_STATS), or uv_fs_stat for libuv: every contender does the
 * same path walk), keeping 64 in flight: each completion is checked
 * (res 0, a regular file of size 0) and its slot starts the next file.
 * After timing, the sums of the inode numbers and mtimes must equal the
 * recorded ones, so every file was stat'ed exactly once and the results
 * came back to the right slot. Reported: files per second (wall clock),
 * CPU seconds per million files (the whole process) and syscalls per file
 * (every thread of the process).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SS_DEPTH 64		/* stats in flight */
#define SS_MTIME_BASE 1600000000	/* 2020-09-13 */
#define SS_MTIME_SPAN (5 * 365 * 86400)

static struct {
	char root[PATH_MAX + 64];
	unsigned dirs, per_dir;
	uint64_t nfiles;	/* dirs * per_dir; 0: not prepared */
	char **path;		/* absolute, one per file, in tree order */
	uint64_t *ino;		/* recorded by the warm-up pass */
	uint64_t *mtime;	/* ns */
	char made[160];
} ss;

static void ss_free(void)
{
	for (uint64_t i = 0; ss.path != NULL && i < ss.nfiles; i++)
		free(ss.path[i]);
	free(ss.path);
	free(ss.ino);
	free(ss.mtime);
	ss.path = NULL;
	ss.ino = ss.mtime = NULL;
	ss.nfiles = 0;
}

/* Make the tree's missing files, with their seeded mtimes. */
static int make_tree(char *err, size_t errlen)
{
	uint64_t seed = 0x73746174u;
	char path[PATH_MAX + 128];
	int fd, e;

	for (unsigned d = 0; d < ss.dirs; d++) {
		snprintf(path, sizeof(path), "%s/d%03u", ss.root, d);
		if ((e = bench_mkdirs(path)) < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(-e));
			return -1;
		}
		for (unsigned i = 0; i < ss.per_dir; i++) {
			uint64_t r = bench_rand(&seed);
			struct timespec ts[2];

			snprintf(path, sizeof(path), "%s/d%03u/f%04u", ss.root,
				 d, i);
			fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd < 0) {
				snprintf(err, errlen, "%s: %s", path,
					 strerror(errno));
				return -1;
			}
			ts[0].tv_sec = ts[1].tv_sec =
				SS_MTIME_BASE + (time_t)(r % SS_MTIME_SPAN);
			ts[0].tv_nsec = ts[1].tv_nsec =
				(long)((r >> 32) % 1000000000u);
			if (futimens(fd, ts) < 0) {
				snprintf(err, errlen, "futimens %s: %s", path,
					 strerror(errno));
				close(fd);
				return -1;
			}
			close(fd);
		}
	}
	snprintf(path, sizeof(path), "%s/complete", ss.root);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static int ss_prepare(const struct bench_workload *wl,
		      const struct bench_params *p, char *note, size_t notelen,
		      char *err, size_t errlen)
{
	unsigned dirs = p->files <= 400 ? 4 : 100;
	unsigned per_dir = p->files <= 400 ? 100 : 1000;
	char path[PATH_MAX + 128], real[PATH_MAX];
	uint64_t t0 = bench_now_ns();
	int e;

	(void)wl;
	if (ss.nfiles != (uint64_t)dirs * per_dir) {
		ss_free();
		if ((e = bench_mkdirs(p->data_dir)) < 0) {
			snprintf(err, errlen, "%s: %s", p->data_dir,
				 strerror(-e));
			return -1;
		}
		if (realpath(p->data_dir, real) == NULL) {
			snprintf(err, errlen, "%s: %s", p->data_dir,
				 strerror(errno));
			return -1;
		}
		ss.dirs = dirs;
		ss.per_dir = per_dir;
		snprintf(ss.root, sizeof(ss.root), "%s/statstorm-%ux%u", real,
			 dirs, per_dir);
		snprintf(path, sizeof(path), "%s/complete", ss.root);
		if (access(path, F_OK) == 0) {
			snprintf(ss.made, sizeof(ss.made),
				 "made earlier, reused");
		} else {
			if (make_tree(err, errlen) < 0)
				return -1;
			snprintf(ss.made, sizeof(ss.made), "made now in %.1f s",
				 (double)(bench_now_ns() - t0) / 1e9);
		}
		ss.nfiles = (uint64_t)dirs * per_dir;
		ss.path = calloc(ss.nfiles, sizeof(*ss.path));
		ss.ino = calloc(ss.nfiles, sizeof(*ss.ino));
		ss.mtime = calloc(ss.nfiles, sizeof(*ss.mtime));
		if (ss.path == NULL || ss.ino == NULL || ss.mtime == NULL) {
			ss_free();
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		for (uint64_t i = 0; i < ss.nfiles; i++) {
			snprintf(path, sizeof(path), "%s/d%03u/f%04u", ss.root,
				 (unsigned)(i / per_dir),
				 (unsigned)(i % per_dir));
			if ((ss.path[i] = strdup(path)) == NULL) {
				ss_free();
				snprintf(err, errlen, "out of memory");
				return -1;
			}
		}
	}
	if (p->files > ss.nfiles) {
		snprintf(err, errlen, "%llu files asked for, the tree has %llu",
			 (unsigned long long)p->files,
			 (unsigned long long)ss.nfiles);
		return -1;
	}
	/* The reference pass: warms the caches, records the answers. */
	for (uint64_t i = 0; i < ss.nfiles; i++) {
		struct statx stx;

		if (statx(AT_FDCWD, ss.path[i], 0, STATX_BASIC_STATS, &stx)) {
			snprintf(err, errlen, "statx %s: %s (remove %s to "
				 "have it made again)", ss.path[i],
				 strerror(errno), ss.root);
			return -1;
		}
		ss.ino[i] = stx.stx_ino;
		ss.mtime[i] = (uint64_t)stx.stx_mtime.tv_sec * 1000000000u +
			      stx.stx_mtime.tv_nsec;
	}
	snprintf(note, notelen, "tree %s (%u dirs x %u empty files, %s); "
		 "every file stat'ed once before the table (warm dentry and "
		 "inode caches)", ss.root, dirs, per_dir, ss.made);
	return 0;
}

struct ss_run;

struct ss_slot {
	struct ss_run *r;
	void *op;
	uint64_t file;
	struct bench_stat st;
};

struct ss_run {
	const struct bench_contender *c;
	void *loop;
	uint64_t n, next, done, inflight, bad;
	uint64_t ino_sum, mtime_sum;
	int closing, failed;
	char why[200];
};

static int ss_issue(struct ss_run *r, struct ss_slot *s)
{
	int e;

	s->file = r->next;
	memset(&s->st, 0xff, sizeof(s->st));
	e = r->c->fop_stat(s->op, ss.path[s->file], &s->st);
	if (e < 0)
		return e;
	r->next++;
	r->inflight++;
	return 0;
}

static void ss_cb(void *arg, int res)
{
	struct ss_slot *s = arg;
	struct ss_run *r = s->r;

	if (r->closing)
		return;
	r->inflight--;
	r->done++;
	if (res != 0 || s->st.size != 0 || !S_ISREG(s->st.mode)) {
		if (r->bad++ == 0)
			snprintf(r->why, sizeof(r->why), "stat %s: %s",
				 ss.path[s->file],
				 res < 0 ? strerror(-res) :
				 res > 0 ? "result > 0" :
				 "not an empty regular file");
	} else {
		r->ino_sum += s->st.ino;
		r->mtime_sum += (uint64_t)s->st.mtime_sec * 1000000000u +
				s->st.mtime_nsec;
	}
	if (r->next < r->n && !r->failed) {
		int e = ss_issue(r, s);

		if (e < 0) {
			snprintf(r->why, sizeof(r->why), "fop_stat: %s",
				 strerror(-e));
			r->failed = 1;
		}
	}
	if (r->inflight == 0)
		r->c->break_loop(r->loop);
}

static int ss_run(const struct bench_workload *wl,
		  const struct bench_contender *c, const struct bench_params *p,
		  struct bench_sample *out, char *err, size_t errlen)
{
	unsigned depth = wl->param;
	struct ss_run r = { .c = c, .n = p->files };
	struct ss_slot *slots = calloc(depth, sizeof(*slots));
	struct bench_sysc_all sc = { 0 };
	uint64_t t0, t1, c0, c1, sys0 = 0, sys1 = 0, ino = 0, mt = 0;
	int ret = -1, e, counting = 0;

	if (slots == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((e = c->loop_new(c, &r.loop)) < 0) {
		snprintf(err, errlen, "loop_new: %s", strerror(-e));
		r.loop = NULL;
		goto out;
	}
	for (unsigned i = 0; i < depth; i++) {
		slots[i].r = &r;
		if ((e = c->fop_new(r.loop, ss_cb, &slots[i],
				    &slots[i].op)) < 0) {
			snprintf(err, errlen, "fop_new: %s", strerror(-e));
			goto out;
		}
	}
	if (p->count_syscalls && bench_sysc_all_open(&sc) == 0)
		counting = 1;
	c0 = bench_pcpu_ns();
	t0 = bench_now_ns();
	if (counting)
		sys0 = bench_sysc_all_read(&sc);
	for (unsigned i = 0; i < depth && r.next < r.n; i++) {
		if ((e = ss_issue(&r, &slots[i])) < 0) {
			snprintf(err, errlen, "fop_stat: %s", strerror(-e));
			r.closing = 1;
			goto out;
		}
	}
	e = c->run(r.loop, 0);
	if (counting)
		sys1 = bench_sysc_all_read(&sc) - sc.n;	/* not these reads */
	t1 = bench_now_ns();
	c1 = bench_pcpu_ns();
	if (e < 0) {
		snprintf(err, errlen, "run: %s", strerror(-e));
		r.closing = 1;
		goto out;
	}
	if (r.bad || r.failed) {
		snprintf(err, errlen, "%s (%llu bad of %llu)", r.why,
			 (unsigned long long)r.bad,
			 (unsigned long long)r.done);
		goto out;
	}
	for (uint64_t i = 0; i < r.n; i++) {
		ino += ss.ino[i];
		mt += ss.mtime[i];
	}
	if (r.done != r.n || r.inflight != 0 || r.ino_sum != ino ||
	    r.mtime_sum != mt) {
		snprintf(err, errlen, "count check: %llu of %llu files "
			 "stat'ed, %s", (unsigned long long)r.done,
			 (unsigned long long)r.n,
			 r.ino_sum != ino || r.mtime_sum != mt ?
			 "inode or mtime sums differ from the reference pass" :
			 "sums match");
		r.closing = 1;
		goto out;
	}
	out->value = (double)r.n * 1e9 / (double)(t1 - t0);
	out->cpu = (double)(c1 - c0) / 1e9 * 1e6 / (double)r.n;
	if (counting)
		out->sys = (double)(sys1 - sys0) / (double)r.n;
	ret = 0;
out:
	if (counting)
		bench_sysc_all_close(&sc);
	if (r.loop != NULL) {
		r.closing = 1;
		c->loop_free(r.loop);
	}
	for (unsigned i = 0; slots != NULL && i < depth; i++)
		if (slots[i].op != NULL)
			c->fop_free(slots[i].op);
	free(slots);
	return ret;
}

static void ss_describe(const struct bench_workload *wl,
			const struct bench_params *p, char *buf, size_t len)
{
	snprintf(buf, len, "%llu files per run, %u stats in flight, warm "
		 "caches", (unsigned long long)p->files, wl->param);
}

const struct bench_workload bench_workload_statstorm = {
	.name = "statstorm",
	.title = "statx of every file of a tree, 64 in flight (ls -lt)",
	.unit = "files/s",
	.cpu_unit = "cpu s/Mop",
	.sys_unit = "sys/op",
	.na_why = "no file ops in this contender",
	.legend = "cpu s/Mop: CPU seconds of the whole process per million "
		  "files; sys/op: syscalls of every thread per file",
	.higher_is_better = 1,
	.param = SS_DEPTH,
	.models = BENCH_MODEL_FILE,
	.reference = "raw-sync",
	.prepare = ss_prepare,
	.run = ss_run,
	.describe = ss_describe,
};
