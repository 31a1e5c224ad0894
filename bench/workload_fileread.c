/* SPDX-License-Identifier: MIT */
/*
 * workload_fileread.c - 4 KiB random reads from one big file at a fixed
 * queue depth: fileread-cached-{1,32,128} (the file in the page cache)
 * and fileread-direct-{1,32,128} (O_DIRECT: every read goes to the disk).
 *
 * The file. bench-data/fileread-<M>MiB.dat (1024 MiB by default, --file-mib)
 * under the data directory (--data; default: beside the evq-bench binary,
 * in the build directory). It is made once and kept: later runs check its
 * size and a sample of its blocks and reuse it. Every 4 KiB block starts
 * with its own block number and a magic number, so that every read can
 * be checked to have come from the offset asked for. It is written to a
 * temporary name and renamed, so a half-made file is never reused. Before
 * a cached table the whole file is read once (into the page cache) and
 * mincore() says how much of it is resident; the table's header says so.
 *
 * A run opens the file (O_DIRECT for direct), makes a fresh loop and QD
 * op slots, each with its own 4 KiB-aligned buffer, and keeps QD reads in
 * flight for --read-ms milliseconds (200 by default): each completion is
 * checked (4096 bytes, the right block number and magic) and the slot
 * reads the next block of the run's sequence, until the time is up; then
 * the reads in flight are drained. The block numbers come from a seeded
 * PRNG, uniform over the file: the same sequence for every contender in
 * the same run. Reported: reads per second (wall clock, first submit to
 * last completion), CPU seconds per million reads (the whole process:
 * thread pools and io_uring's workers count) and syscalls per read (every
 * thread of the process; io_uring's kernel workers make none).
 *
 * fio (if installed) runs the same reads with its io_uring engine once
 * after each round of contenders, and its median is printed under the
 * table: an outside reference for what this kernel and disk can do, not a
 * contender (it is a different program with its own loop).
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define FR_BLOCK 4096u
#define FR_MAGIC 0x6576712d62656e63ull	/* "evq-benc" */
#define FR_DIRECT 1u			/* bench_workload.mode */
#define TMPFS_MAGIC_ 0x01021994

/* The file, shared by every fileread table of the process. */
static struct {
	char path[PATH_MAX];
	uint64_t mib;		/* what path was made for; 0: not yet */
	uint64_t blocks;
	char made[160];		/* "made in 2.1 s" or "reused" */
} fr_file;

/* ------------------------------------------------------------------------
 * The file: made once, checked, reused
 * ------------------------------------------------------------------------ */

static void stamp(unsigned char *blk, uint64_t n)
{
	uint64_t magic = FR_MAGIC;

	memcpy(blk, &n, 8);
	memcpy(blk + 8, &magic, 8);
}

static bool stamped(const unsigned char *blk, uint64_t n)
{
	uint64_t got, magic;

	memcpy(&got, blk, 8);
	memcpy(&magic, blk + 8, 8);
	return got == n && magic == FR_MAGIC;
}

/* Is path a complete file of `blocks` stamped blocks? Checks the size,
 * the first and last block and 256 others. */
static bool file_ok(const char *path, uint64_t blocks)
{
	unsigned char blk[FR_BLOCK];
	uint64_t seed = 1;
	struct stat sb;
	bool ok = true;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != blocks * FR_BLOCK)
		ok = false;
	for (int i = 0; ok && i < 258; i++) {
		uint64_t n = i == 0 ? 0 : i == 1 ? blocks - 1 :
			     bench_rand(&seed) % blocks;

		ok = pread(fd, blk, FR_BLOCK, (off_t)(n * FR_BLOCK)) ==
			     (ssize_t)FR_BLOCK && stamped(blk, n);
	}
	close(fd);
	return ok;
}

static int make_file(const char *path, uint64_t blocks, char *err,
		     size_t errlen)
{
	const size_t chunk = 1u << 20;
	char tmp[PATH_MAX + 32];
	unsigned char *buf = calloc(1, chunk);
	uint64_t n = 0;
	int fd, ret = -1;

	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		free(buf);
		return -1;
	}
	while (n < blocks) {
		size_t k = 0;

		for (; k < chunk / FR_BLOCK && n < blocks; k++, n++)
			stamp(buf + k * FR_BLOCK, n);
		if (write(fd, buf, k * FR_BLOCK) != (ssize_t)(k * FR_BLOCK)) {
			snprintf(err, errlen, "writing %s: %s", tmp,
				 errno ? strerror(errno) : "short write");
			goto out;
		}
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "rename to %s: %s", path,
			 strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		unlink(tmp);
	free(buf);
	return ret;
}

/* Read the whole file once (into the page cache); how much of it is then
 * resident, in percent (mincore), or -1. */
static double warm_cache(const char *path, uint64_t blocks)
{
	const size_t chunk = 1u << 20;
	size_t len = blocks * FR_BLOCK, pages, res = 0;
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *buf = malloc(chunk), *vec;
	void *map;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || buf == NULL) {
		if (fd >= 0)
			close(fd);
		free(buf);
		return -1;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	for (off_t off = 0; (size_t)off < len; off += (off_t)chunk)
		if (pread(fd, buf, chunk, off) <= 0)
			break;
	free(buf);
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED || pg <= 0)
		return -1;
	pages = (len + (size_t)pg - 1) / (size_t)pg;
	vec = malloc(pages);
	if (vec != NULL && mincore(map, len, vec) == 0)
		for (size_t i = 0; i < pages; i++)
			res += vec[i] & 1;
	munmap(map, len);
	if (vec == NULL)
		return -1;
	free(vec);
	return 100.0 * (double)res / (double)pages;
}

static int fr_prepare(const struct bench_workload *wl,
		      const struct bench_params *p, char *note, size_t notelen,
		      char *err, size_t errlen)
{
	bool direct = wl->mode & FR_DIRECT;
	uint64_t blocks = p->file_mib * (1u << 20) / FR_BLOCK;
	struct statfs sfs;
	int e;

	if (fr_file.mib != p->file_mib) {
		struct statvfs vfs;
		uint64_t t0;

		if ((e = bench_mkdirs(p->data_dir)) < 0) {
			snprintf(err, errlen, "%s: %s", p->data_dir,
				 strerror(-e));
			return -1;
		}
		snprintf(fr_file.path, sizeof(fr_file.path),
			 "%s/fileread-%lluMiB.dat", p->data_dir,
			 (unsigned long long)p->file_mib);
		fr_file.blocks = blocks;
		if (file_ok(fr_file.path, blocks)) {
			snprintf(fr_file.made, sizeof(fr_file.made),
				 "made earlier, reused");
		} else {
			/* room for it, and 1 GiB to spare */
			if (statvfs(p->data_dir, &vfs) == 0 &&
			    (uint64_t)vfs.f_bavail * vfs.f_frsize <
				    blocks * FR_BLOCK + (1ull << 30)) {
				snprintf(err, errlen,
					 "%s has too little free space for a "
					 "%llu MiB file (use --file-mib or "
					 "--data)", p->data_dir,
					 (unsigned long long)p->file_mib);
				return BENCH_CANNOT;
			}
			t0 = bench_now_ns();
			if (make_file(fr_file.path, blocks, err, errlen) < 0)
				return -1;
			snprintf(fr_file.made, sizeof(fr_file.made),
				 "made now in %.1f s",
				 (double)(bench_now_ns() - t0) / 1e9);
		}
		fr_file.mib = p->file_mib;
	}
	if (direct) {
		int fd;

		if (statfs(p->data_dir, &sfs) == 0 &&
		    sfs.f_type == TMPFS_MAGIC_) {
			snprintf(err, errlen, "%s is on tmpfs: O_DIRECT would "
				 "reach no disk (use --data)", p->data_dir);
			return BENCH_CANNOT;
		}
		fd = open(fr_file.path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen, "open(O_DIRECT): %s",
				 strerror(errno));
			return BENCH_CANNOT;
		}
		close(fd);
		snprintf(note, notelen, "file %s (%llu MiB, %s), opened "
			 "O_DIRECT: every read goes to the disk",
			 fr_file.path, (unsigned long long)p->file_mib,
			 fr_file.made);
	} else {
		double res = warm_cache(fr_file.path, blocks);

		snprintf(note, notelen, "file %s (%llu MiB, %s); read once "
			 "before the table, %.1f%% of it is in the page cache",
			 fr_file.path, (unsigned long long)p->file_mib,
			 fr_file.made, res);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * A run
 * ------------------------------------------------------------------------ */

struct fr;

struct fr_slot {
	struct fr *f;
	void *op;
	unsigned char *buf;
	uint64_t blk;
};

struct fr {
	const struct bench_contender *c;
	void *loop;
	int fd;
	uint64_t seed, blocks;
	uint64_t deadline;	/* ns: no new reads after it */
	uint64_t issued, done, bad, inflight;
	int stopping, closing, failed;
	char why[160];
};

static int fr_issue(struct fr *f, struct fr_slot *s)
{
	int e;

	s->blk = bench_rand(&f->seed) % f->blocks;
	memset(s->buf, 0, 16);
	e = f->c->fop_read(s->op, f->fd, s->buf, FR_BLOCK, s->blk * FR_BLOCK);
	if (e < 0)
		return e;
	f->issued++;
	f->inflight++;
	return 0;
}

static void fr_cb(void *arg, int res)
{
	struct fr_slot *s = arg;
	struct fr *f = s->f;

	if (f->closing)
		return;
	f->inflight--;
	f->done++;
	if (res != (int)FR_BLOCK || !stamped(s->buf, s->blk)) {
		if (f->bad++ == 0)
			snprintf(f->why, sizeof(f->why),
				 "read of block %llu: %s",
				 (unsigned long long)s->blk,
				 res < 0 ? strerror(-res) :
				 res != (int)FR_BLOCK ? "short read" :
				 "wrong data (not that block)");
		f->stopping = 1;
	}
	/* The clock, every 16 completions: time to stop issuing? */
	if (!f->stopping && (f->done & 15) == 0 &&
	    bench_now_ns() >= f->deadline)
		f->stopping = 1;
	if (!f->stopping) {
		int e = fr_issue(f, s);

		if (e < 0) {
			snprintf(f->why, sizeof(f->why), "fop_read: %s",
				 strerror(-e));
			f->failed = 1;
			f->stopping = 1;
		}
	}
	if (f->inflight == 0)
		f->c->break_loop(f->loop);
}

static int fr_run(const struct bench_workload *wl,
		  const struct bench_contender *c, const struct bench_params *p,
		  struct bench_sample *out, char *err, size_t errlen)
{
	unsigned qd = wl->param;
	struct fr f = { .c = c, .fd = -1, .blocks = fr_file.blocks,
			.seed = 0x66696c65u * 1000003u + p->run };
	struct fr_slot *slots = calloc(qd, sizeof(*slots));
	unsigned char *bufs = NULL;
	struct bench_sysc_all sc = { 0 };
	uint64_t t0, t1, c0, c1, sys0 = 0, sys1 = 0;
	int ret = -1, e, counting = 0;

	if (slots == NULL ||
	    posix_memalign((void **)&bufs, FR_BLOCK, (size_t)qd * FR_BLOCK)) {
		bufs = NULL;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	f.fd = open(fr_file.path, O_RDONLY | O_CLOEXEC |
			       (wl->mode & FR_DIRECT ? O_DIRECT : 0));
	if (f.fd < 0) {
		snprintf(err, errlen, "%s: %s", fr_file.path, strerror(errno));
		goto out;
	}
	if ((e = c->loop_new(c, &f.loop)) < 0) {
		snprintf(err, errlen, "loop_new: %s", strerror(-e));
		f.loop = NULL;
		goto out;
	}
	for (unsigned i = 0; i < qd; i++) {
		slots[i].f = &f;
		slots[i].buf = bufs + (size_t)i * FR_BLOCK;
		if ((e = c->fop_new(f.loop, fr_cb, &slots[i],
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
	f.deadline = t0 + p->read_ms * 1000000u;
	for (unsigned i = 0; i < qd; i++) {
		if ((e = fr_issue(&f, &slots[i])) < 0) {
			snprintf(err, errlen, "fop_read: %s", strerror(-e));
			f.closing = 1;
			goto out;
		}
	}
	e = c->run(f.loop, 0);
	if (counting)
		sys1 = bench_sysc_all_read(&sc) - sc.n;	/* not these reads */
	t1 = bench_now_ns();
	c1 = bench_pcpu_ns();
	if (e < 0) {
		snprintf(err, errlen, "run: %s", strerror(-e));
		f.closing = 1;
		goto out;
	}
	if (f.bad || f.failed) {
		snprintf(err, errlen, "%s (%llu bad of %llu)", f.why,
			 (unsigned long long)f.bad,
			 (unsigned long long)f.done);
		goto out;
	}
	if (f.inflight != 0 || f.done != f.issued || f.done == 0) {
		snprintf(err, errlen, "count check: %llu reads issued, %llu "
			 "completed", (unsigned long long)f.issued,
			 (unsigned long long)f.done);
		f.closing = 1;
		goto out;
	}
	out->value = (double)f.done * 1e9 / (double)(t1 - t0);
	out->cpu = (double)(c1 - c0) / 1e9 * 1e6 / (double)f.done;
	if (counting)
		out->sys = (double)(sys1 - sys0) / (double)f.done;
	ret = 0;
out:
	if (counting)
		bench_sysc_all_close(&sc);
	if (f.loop != NULL) {
		f.closing = 1;
		c->loop_free(f.loop);
	}
	for (unsigned i = 0; slots != NULL && i < qd; i++)
		if (slots[i].op != NULL)
			c->fop_free(slots[i].op);
	if (f.fd >= 0)
		close(f.fd);
	free(bufs);
	free(slots);
	return ret;
}

static void fr_describe(const struct bench_workload *wl,
			const struct bench_params *p, char *buf, size_t len)
{
	snprintf(buf, len, "4 KiB random reads%s, queue depth %u, %llu ms of "
		 "reads per run, %llu MiB file",
		 wl->mode & FR_DIRECT ? " with O_DIRECT" :
		 " from the page cache", wl->param,
		 (unsigned long long)p->read_ms,
		 (unsigned long long)p->file_mib);
}

/* ------------------------------------------------------------------------
 * fio, the external reference
 * ------------------------------------------------------------------------ */

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save;
	bool found = false;

	if (path == NULL)
		return false;
	copy = strdup(path);
	for (dir = strtok_r(copy, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/%s", dir, prog);
		found = access(p, X_OK) == 0;
	}
	free(copy);
	return found;
}

/* The number after "key" : at or after from, or -1. */
static double json_num(const char *from, const char *key)
{
	char pat[64];
	const char *k;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	k = strstr(from, pat);
	if (k == NULL)
		return -1;
	k += strlen(pat);
	while (*k == ' ' || *k == ':' || *k == '\t' || *k == '\n')
		k++;
	return strtod(k, NULL);
}

static int fr_fio(const struct bench_workload *wl,
		  const struct bench_params *p, struct bench_sample *out,
		  char *name, size_t namelen, char *err, size_t errlen)
{
	static char version[32];
	char cmd[PATH_MAX + 512], *json = NULL;
	size_t cap = 0, len = 0;
	double ios, rt, usr, sys;
	const char *rd;
	FILE *f;
	int st;

	static const struct bench_workload *test_once;

	if (!in_path("fio")) {
		snprintf(name, namelen, "fio");
		snprintf(err, errlen, "not installed (Debian package fio)");
		return BENCH_CANNOT;
	}
	/* --test: fio's start-up costs 0.3 s; one table is enough to see
	 * that it runs and its output parses */
	if (p->test && test_once != NULL && test_once != wl) {
		snprintf(name, namelen, "fio");
		snprintf(err, errlen, "--test runs it for %s only",
			 test_once->name);
		return BENCH_CANNOT;
	}
	test_once = wl;
	if (version[0] == '\0') {
		f = popen("fio --version 2>/dev/null", "r");
		if (f == NULL || fgets(version, sizeof(version), f) == NULL)
			snprintf(version, sizeof(version), "fio");
		version[strcspn(version, "\n")] = '\0';
		if (f != NULL)
			pclose(f);
	}
	snprintf(name, namelen,
		 "%s --ioengine=io_uring --iodepth=%u --direct=%d "
		 "--rw=randread --bs=4k, same file, %llu ms", version,
		 wl->param, wl->mode & FR_DIRECT ? 1 : 0,
		 (unsigned long long)p->read_ms);
	/* invalidate=0: fio must not drop the file from the page cache
	 * (the cached tables rely on it) */
	snprintf(cmd, sizeof(cmd),
		 "fio --name=fileread --filename='%s' --size=%llu "
		 "--allow_file_create=0 --rw=randread --bs=4k "
		 "--ioengine=io_uring --iodepth=%u --direct=%d --invalidate=0 "
		 "--norandommap --randrepeat=0 --randseed=%u --thread "
		 "--time_based --runtime=%llums --output-format=json "
		 "2>/dev/null",
		 fr_file.path,
		 (unsigned long long)(fr_file.blocks * FR_BLOCK), wl->param,
		 wl->mode & FR_DIRECT ? 1 : 0, p->run + 1,
		 (unsigned long long)p->read_ms);
	f = popen(cmd, "r");
	if (f == NULL) {
		snprintf(err, errlen, "popen: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		size_t n;

		if (len + 4096 + 1 > cap) {
			char *nj = realloc(json, cap = cap ? 2 * cap : 65536);

			if (nj == NULL)
				break;
			json = nj;
		}
		n = fread(json + len, 1, cap - len - 1, f);
		if (n == 0)
			break;
		len += n;
	}
	st = pclose(f);
	if (json == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json[len] = '\0';
	rd = strstr(json, "\"read\"");
	ios = rd ? json_num(rd, "total_ios") : -1;
	rt = rd ? json_num(rd, "runtime") : -1;
	usr = rd ? json_num(rd, "usr_cpu") : -1;
	sys = rd ? json_num(rd, "sys_cpu") : -1;
	free(json);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || ios <= 0 || rt <= 0) {
		snprintf(err, errlen, "fio failed (exit status %d): %s",
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1, cmd);
		return -1;
	}
	out->value = ios / (rt / 1e3);
	if (usr >= 0 && sys >= 0)
		out->cpu = (usr + sys) / 100 * (rt / 1e3) / ios * 1e6;
	return 0;
}

#define FILEREAD_WORKLOAD(sym, kind, qd, m, opt)                             \
	const struct bench_workload sym = {                                  \
		.name = "fileread-" kind "-" #qd,                            \
		.title = "4 KiB random reads of one big file, " kind         \
			 ", queue depth " #qd,                                 \
		.unit = "reads/s",                                           \
		.cpu_unit = "cpu s/Mop",                                     \
		.sys_unit = "sys/op",                                        \
		.na_why = "no file ops in this contender",                   \
		.legend = "cpu s/Mop: CPU seconds of the whole process per " \
			  "million reads; sys/op: syscalls of every thread " \
			  "per read",                                        \
		.higher_is_better = 1,                                       \
		.param = qd,                                                 \
		.mode = m,                                                   \
		.models = BENCH_MODEL_FILE,                                  \
		.optional = opt,                                             \
		.reference = "raw-sync",                                     \
		.prepare = fr_prepare,                                       \
		.external = fr_fio,                                          \
		.run = fr_run,                                               \
		.describe = fr_describe,                                     \
	}

FILEREAD_WORKLOAD(bench_workload_fileread_cached1, "cached", 1, 0, 0);
FILEREAD_WORKLOAD(bench_workload_fileread_cached32, "cached", 32, 0, 0);
FILEREAD_WORKLOAD(bench_workload_fileread_cached128, "cached", 128, 0, 1);
FILEREAD_WORKLOAD(bench_workload_fileread_direct1, "direct", 1, FR_DIRECT, 1);
FILEREAD_WORKLOAD(bench_workload_fileread_direct32, "direct", 32, FR_DIRECT,
		  1);
FILEREAD_WORKLOAD(bench_workload_fileread_direct128, "direct", 128,
		  FR_DIRECT, 1);
