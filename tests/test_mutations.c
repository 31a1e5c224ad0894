/* SPDX-License-Identifier: MIT */
/*
 * test_mutations.c - completion-API cases written so that a deliberately
 * broken copy of evq fails them (issue 13, item 4; the table of
 * mutations and the case that catches each is in docs/RELIABILITY.md):
 *  - a short readv/writev counted as success in a chain;
 *  - timeout ops firing late (bounded as tightly as timer_50ms_exact
 *    bounds timers);
 *  - thread-pool jobs, finished or still running, not handed back at
 *    evq_loop_free() (epoll, poll and aio run openat in the pool);
 *  - fsync/fdatasync that return 0 without reaching the file, or that
 *    do not fail where fsync(2) does.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"
#include "ops_helpers.h"

#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* Does this backend run openat (and other blocking ops) in the loop's
 * thread pool? epoll and poll emulate every op; aio runs natively only
 * O_DIRECT transfers and fsync (evq.h, "Backends"). */
static bool pool_runs_openat(struct evq_loop *loop)
{
	enum evq_backend b = evq_loop_backend(loop);

	return b == EVQ_BACKEND_EPOLL || b == EVQ_BACKEND_POLL ||
	       b == EVQ_BACKEND_AIO;
}

/* ------------------------------------------------------------------------
 * Short vector ops in a chain
 * ------------------------------------------------------------------------ */

/* A readv/writev in a chain succeeds only when every iovec byte moved
 * (evq.h, "Chains"): a short one breaks the chain, the op behind it
 * completes with -ECANCELED. Three short ones: a readv of a pipe holding
 * fewer bytes, a readv of a file shorter than the iovecs, a writev to a
 * pipe with one page of room. And a whole readv, which must not break. */
static int short_readv_or_writev_breaks_its_chain(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op v = { 0 }, next = { 0 };
	char a[4], b[4], dir[256], path[300];
	static char big[8192];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	struct iovec wiov[2] = { { big, 4096 }, { big + 4096, 4096 } };
	struct stat st;
	int p[2], fd;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(p));

	T_STEP("readv of a pipe with 3 of 8 bytes, LINK nop");
	ASSERT_EQ(write(p[1], "abc", 3), 3);
	t_op_init(&v);
	evq_prep_readv(&v.op, p[0], iov, 2, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &v, EVQ_OP_LINK));
	t_op_init(&next);
	evq_prep_nop(&next.op);
	ASSERT_OK(t_op_submit(loop, &next, 0));
	ASSERT_OK(t_op_wait(loop, &next, 5000));
	ASSERT_EQ(v.ncalls, 1);
	ASSERT_EQ(v.res, 3);
	ASSERT_ERR(next.res, -ECANCELED);
	ASSERT_LT(v.seq, next.seq);

	T_STEP("readv of a pipe with all 8 bytes, LINK nop: goes on");
	ASSERT_EQ(write(p[1], "abcdefgh", 8), 8);
	t_op_init(&v);
	evq_prep_readv(&v.op, p[0], iov, 2, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &v, EVQ_OP_LINK));
	t_op_init(&next);
	evq_prep_nop(&next.op);
	ASSERT_OK(t_op_submit(loop, &next, 0));
	ASSERT_OK(t_op_wait(loop, &next, 5000));
	ASSERT_EQ(v.res, 8);
	ASSERT_ERR(next.res, 0);

	T_STEP("readv of a 3-byte file, LINK write to that file");
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(path, sizeof(path), "%s/f", dir);
	ASSERT_OK(t_write_file(path, "xyz", 3));
	fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	t_op_init(&v);
	evq_prep_readv(&v.op, fd, iov, 2, 0);
	ASSERT_OK(t_op_submit(loop, &v, EVQ_OP_LINK));
	t_op_init(&next);
	evq_prep_write(&next.op, fd, "WRONG", 5, 3);
	ASSERT_OK(t_op_submit(loop, &next, 0));
	ASSERT_OK(t_op_wait(loop, &next, 5000));
	ASSERT_EQ(v.res, 3);
	ASSERT_ERR(next.res, -ECANCELED);
	ASSERT_OK(fstat(fd, &st));
	ASSERT_EQ(st.st_size, 3);	/* the write never ran */
	close(fd);
	unlink(path);
	rmdir(dir);

	T_STEP("writev of 8 KiB to a pipe with one page of room, LINK nop");
	ASSERT_GT(t_fill(p[1]), 0);
	{
		static char page[4096];

		ASSERT_EQ(read(p[0], page, sizeof(page)), 4096);
	}
	t_op_init(&v);
	evq_prep_writev(&v.op, p[1], wiov, 2, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &v, EVQ_OP_LINK));
	t_op_init(&next);
	evq_prep_nop(&next.op);
	ASSERT_OK(t_op_submit(loop, &next, 0));
	ASSERT_OK(t_op_wait(loop, &next, 5000));
	ASSERT_GT(v.res, 0);
	ASSERT_LT(v.res, 8192);
	ASSERT_ERR(next.res, -ECANCELED);
	t_close2(p);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Timeout ops on time
 * ------------------------------------------------------------------------ */

static void never_io(struct evq_loop *loop, struct evq_io *w, unsigned ev)
{
	(void)loop;
	(void)w;
	(void)ev;
	T_FAILF("an idle fd's watcher ran");
}

/* A timeout op of 50 ms completes with -ETIME after 50 ms and well before
 * 100 ms: the bound timer_50ms_exact (test_timer.c) puts on timers. Alone,
 * next to an idle fd watcher, and at the head of a chain. */
static int timeout_op_50ms_exact(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op t = { 0 }, next = { 0 };
	struct evq_io w = { 0 };
	uint64_t t0;
	int rep, fds[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe(fds));
	for (rep = 0; rep < 5; rep++) {
		T_STEP("50 ms timeout op, round %d%s", rep,
		       rep >= 3 ? " (an idle fd watched)" : "");
		if (rep == 3)
			ASSERT_OK(evq_io_start(loop, &w, fds[0], EVQ_READ,
					       never_io));
		t_op_init(&t);
		evq_prep_timeout(&t.op, 50 * T_MS);
		t0 = t_now_ns();
		ASSERT_OK(t_op_submit(loop, &t, 0));
		ASSERT_OK(t_op_wait(loop, &t, 5000));
		ASSERT_ERR(t.res, -ETIME);
		ASSERT_GE(t.at_ns - t0, 50 * T_MS);
		ASSERT_LT(t.at_ns - t0, 100 * T_MS);
	}
	ASSERT_OK(evq_io_stop(&w));

	T_STEP("20 ms timeout op LINK nop");
	t_op_init(&t);
	evq_prep_timeout(&t.op, 20 * T_MS);
	t0 = t_now_ns();
	ASSERT_OK(t_op_submit(loop, &t, EVQ_OP_LINK));
	t_op_init(&next);
	evq_prep_nop(&next.op);
	ASSERT_OK(t_op_submit(loop, &next, 0));
	ASSERT_OK(t_op_wait(loop, &next, 5000));
	ASSERT_ERR(t.res, -ETIME);
	ASSERT_ERR(next.res, 0);
	ASSERT_GE(t.at_ns - t0, 20 * T_MS);
	ASSERT_LT(t.at_ns - t0, 70 * T_MS);
	ASSERT_GE(next.at_ns - t0, 20 * T_MS);
	ASSERT_LT(next.at_ns - t0, 70 * T_MS);

	T_STEP("1.5 ms timeout op: the sub-millisecond part is not lost");
	t_op_init(&t);
	evq_prep_timeout(&t.op, 1500000);
	t0 = t_now_ns();
	ASSERT_OK(t_op_submit(loop, &t, 0));
	ASSERT_OK(t_op_wait(loop, &t, 5000));
	ASSERT_GE(t.at_ns - t0, 1500000);
	/* Not absurdly late: a unit slip (us for ns, s for ms) is seconds
	 * late; 250 ms leaves room for a loaded machine. */
	ASSERT_LT(t.at_ns - t0, 250 * T_MS);
	t_close2(fds);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Pool jobs at evq_loop_free()
 * ------------------------------------------------------------------------ */

static bool freeing;
static int called_in_free;

static void free_hook(struct evq_loop *loop, struct t_op *o, int res,
		      unsigned flags)
{
	(void)loop;
	(void)flags;
	if (freeing)
		called_in_free++;
	if (res >= 0)
		close(res);	/* an fd from openat: never lost */
	(void)o;
}

struct opener {
	const char *path;
	unsigned ms;
	int fd;
};

/* Open the FIFO as a writer after ms: the blocked reader's open ends.
 * O_RDWR never blocks on a FIFO, so this thread cannot hang. */
static void *open_later(void *arg)
{
	struct opener *w = arg;

	t_sleep_ms(w->ms);
	w->fd = open(w->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	return NULL;
}

#define NOPEN 8

/* Opens the pool has finished before the free, whose results wait for
 * the loop: evq_loop_free() hands each back with its own result, the fd
 * (evq.h: "so an fd from openat is never lost"). The opens are of a
 * FIFO's read side, which a writer that comes 20 ms after the loop's last
 * iteration ends, so that they all finish after that iteration and before
 * the free, on every run. */
static int free_hands_back_finished_pool_jobs(void)
{
	int fds_before = t_count_fds();
	struct evq_loop_options opts = { .threads = NOPEN };
	struct evq_loop *loop = t_loop_new_opts(&opts);
	struct opener w = { 0 };
	struct t_op o[NOPEN];
	char dir[256], fifo[300];
	pthread_t th;
	bool pool;

	ASSERT_NOTNULL(loop);
	pool = pool_runs_openat(loop);
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ASSERT_EQ(mkfifo(fifo, 0600), 0);
	freeing = false;
	called_in_free = 0;

	T_STEP("%d opens of a FIFO started; a writer 20 ms later", NOPEN);
	for (int i = 0; i < NOPEN; i++) {
		memset(&o[i], 0, sizeof(o[i]));
		o[i].hook = free_hook;
		t_op_init(&o[i]);
		evq_prep_openat(&o[i].op, AT_FDCWD, fifo,
				O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
		ASSERT_OK(t_op_submit(loop, &o[i], 0));
	}
	ASSERT_OK(evq_loop_run(loop, EVQ_RUN_NOWAIT) < 0);
	w.path = fifo;
	w.ms = 20;
	w.fd = -1;
	ASSERT_OK(pthread_create(&th, NULL, open_later, &w));
	pthread_join(th, NULL);
	ASSERT_GE(w.fd, 0);
	t_sleep_ms(100);	/* the opens end when the writer comes */
	for (int i = 0; i < NOPEN; i++)
		ASSERT_EQ(o[i].ncalls, 0);

	T_STEP("free the loop");
	freeing = true;
	ASSERT_OK(evq_loop_free(loop));
	freeing = false;
	for (int i = 0; i < NOPEN; i++) {
		T_STEP("open %d", i);
		ASSERT_EQ(o[i].ncalls, 1);
		if (pool)	/* finished jobs keep their result */
			ASSERT_GE(o[i].res, 0);
		else
			ASSERT_TRUE(o[i].res >= 0 || o[i].res == -ECANCELED ||
				    o[i].res == -EINTR);
	}
	ASSERT_EQ(called_in_free, NOPEN);
	T_STEP("no fd lost");
	close(w.fd);
	ASSERT_EQ(t_count_fds(), fds_before);
	unlink(fifo);
	rmdir(dir);
	return T_PASS;
}

/* An open that a pool thread is running (a FIFO's read side blocks until
 * a writer comes) when evq_loop_free() is called: the free waits for it
 * and hands back its result, the fd. Deterministic: the case waits until
 * a thread of the process is seen blocked in openat before it frees (the
 * "job still running at free" path of free_with_10000_in_flight, which
 * that case reaches only by chance). On uring the open runs in the
 * kernel, which may cancel it instead. */
static int free_waits_for_a_pool_job_still_running(void)
{
	int fds_before = t_count_fds();
	struct evq_loop *loop = t_loop_new();
	struct opener w = { 0 };
	struct t_op o = { 0 };
	char dir[256], fifo[300];
	pthread_t th;
	uint64_t t0, end;
	bool pool;

	ASSERT_NOTNULL(loop);
	pool = pool_runs_openat(loop);
	if (pool && access("/proc/self/syscall", R_OK) != 0) {
		ASSERT_OK(evq_loop_free(loop));
		return t_skip("/proc/self/task/<tid>/syscall is not readable");
	}
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ASSERT_EQ(mkfifo(fifo, 0600), 0);
	freeing = false;
	called_in_free = 0;

	T_STEP("an open of a FIFO, blocked in a pool thread");
	o.hook = free_hook;
	t_op_init(&o);
	evq_prep_openat(&o.op, AT_FDCWD, fifo, O_RDONLY | O_CREAT | O_CLOEXEC,
			0600);
	ASSERT_OK(t_op_submit(loop, &o, 0));
	ASSERT_OK(evq_loop_run(loop, EVQ_RUN_NOWAIT) < 0);
	if (pool) {
		end = t_now_ns() + 5000 * T_MS;
		while (t_tasks_in_openat() < 1 && t_now_ns() < end)
			t_sleep_ms(1);
		ASSERT_GE(t_tasks_in_openat(), 1);
	}
	ASSERT_EQ(o.ncalls, 0);

	T_STEP("free the loop; a writer comes 150 ms later");
	w.path = fifo;
	w.ms = 150;
	w.fd = -1;
	ASSERT_OK(pthread_create(&th, NULL, open_later, &w));
	t0 = t_now_ns();
	freeing = true;
	ASSERT_OK(evq_loop_free(loop));
	freeing = false;
	pthread_join(th, NULL);
	ASSERT_EQ(o.ncalls, 1);
	ASSERT_EQ(called_in_free, 1);
	if (pool) {
		ASSERT_GE(o.res, 0);
		ASSERT_GE(t_now_ns() - t0, 100 * T_MS);	/* it waited */
	} else {
		ASSERT_TRUE(o.res >= 0 || o.res == -ECANCELED ||
			    o.res == -EINTR);
	}
	t_close(w.fd);
	ASSERT_EQ(t_count_fds(), fds_before);
	unlink(fifo);
	rmdir(dir);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * fsync and fdatasync
 * ------------------------------------------------------------------------ */

/* What fsync(2)/fdatasync(2) say about fd: 0 or -errno. */
static int sys_sync(int fd, bool data)
{
	int r = data ? fdatasync(fd) : fsync(fd);

	return r == 0 ? 0 : -errno;
}

/* fsync and fdatasync ops reach the file (the data written through one
 * fd is what a second open of the file reads, and what the op synced)
 * and fail where fsync(2) and fdatasync(2) fail: a pipe (-EINVAL) and a
 * closed fd (-EBADF), each compared with the syscall's own answer. */
static int fsync_ops_reach_the_file_and_fail_like_fsync(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a = { 0 }, b = { 0 };
	char dir[256], path[300], buf[16];
	int fd, fd2, p[2], bad;
	static const char data[] = "durable";

	ASSERT_NOTNULL(loop);
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_GE(fd, 0);
	ASSERT_OK(t_pipe(p));
	bad = fcntl(fd, F_DUPFD_CLOEXEC, 1000);	/* a free number */
	ASSERT_GE(bad, 1000);
	close(bad);

	for (int data_only = 0; data_only < 2; data_only++) {
		unsigned fl = data_only ? EVQ_FSYNC_DATASYNC : 0;
		const char *what = data_only ? "fdatasync" : "fsync";

		T_STEP("%s: write op LINK %s op on a file", what, what);
		ASSERT_OK(ftruncate(fd, 0));
		t_op_init(&a);
		evq_prep_write(&a.op, fd, data, sizeof(data), 0);
		ASSERT_OK(t_op_submit(loop, &a, EVQ_OP_LINK));
		t_op_init(&b);
		evq_prep_fsync(&b.op, fd, fl);
		ASSERT_OK(t_op_submit(loop, &b, 0));
		ASSERT_OK(t_op_wait(loop, &b, 5000));
		ASSERT_EQ(a.res, (int)sizeof(data));
		ASSERT_ERR(b.res, 0);
		ASSERT_LT(a.seq, b.seq);
		T_STEP("%s: the data, read through a second open", what);
		fd2 = open(path, O_RDONLY | O_CLOEXEC);
		ASSERT_GE(fd2, 0);
		memset(buf, 0, sizeof(buf));
		ASSERT_EQ(read(fd2, buf, sizeof(buf)), (int)sizeof(data));
		close(fd2);
		ASSERT_STREQ(buf, data);

		T_STEP("%s of a pipe: as %s(2) says", what, what);
		t_op_init(&a);
		evq_prep_fsync(&a.op, p[0], fl);
		ASSERT_OK(t_op_submit(loop, &a, 0));
		ASSERT_OK(t_op_wait(loop, &a, 5000));
		ASSERT_ERR(sys_sync(p[0], data_only), -EINVAL);
		ASSERT_ERR(a.res, -EINVAL);

		T_STEP("%s of a closed fd: as %s(2) says", what, what);
		t_op_init(&a);
		evq_prep_fsync(&a.op, bad, fl);
		ASSERT_OK(t_op_submit(loop, &a, 0));
		ASSERT_OK(t_op_wait(loop, &a, 5000));
		ASSERT_ERR(sys_sync(bad, data_only), -EBADF);
		ASSERT_ERR(a.res, -EBADF);
	}
	t_close2(p);
	close(fd);
	unlink(path);
	rmdir(dir);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(short_readv_or_writev_breaks_its_chain),
	T_CASE(timeout_op_50ms_exact),
	T_CASE(free_hands_back_finished_pool_jobs),
	T_CASE(free_waits_for_a_pool_job_still_running),
	T_CASE(fsync_ops_reach_the_file_and_fail_like_fsync),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
