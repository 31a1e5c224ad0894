/* SPDX-License-Identifier: MIT */
/*
 * test_aio_drain.c - evq_loop_free() on aio with ops the kernel runs
 * (note n of src/backend_aio.c): it waits for them, but for a bounded
 * time; an op still in the kernel then completes with -ETIMEDOUT, the
 * context is leaked and free returns. An op that never completes cannot
 * be made here without root and a device that stops answering (a
 * suspended dm device, an NBD server that never replies), so the give-up
 * path is driven by shrinking the bound (evq__aio_test_drain_ms) below
 * the time a real fsync of dirty data takes. aio only: links the static
 * library for the hook and the counters.
 */
#include "helpers.h"

#include "backend_aio.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

static int hits, res;

static void op_cb(struct evq_loop *loop, struct evq_op *op, int r,
		  unsigned flags)
{
	(void)loop;
	(void)op;
	(void)flags;
	hits++;
	res = r;
}

/* An unlinked temporary file holding mib MiB of dirty page-cache data,
 * so that an fsync of it has real work to do. */
static int dirty_file(unsigned mib)
{
	const char *dir = getenv("TMPDIR");
	static char block[1 << 20];
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/evq-drain-XXXXXX",
		 dir && *dir ? dir : "/var/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unlink(path);
	memset(block, 'x', sizeof(block));
	for (unsigned i = 0; i < mib; i++) {
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block)) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* A loop with one fsync of fd in the kernel (IOCB_CMD_FSYNC accepted). */
static struct evq_loop *loop_with_fsync(int fd, struct evq_op *op)
{
	struct evq__aio_stats s;
	struct evq_loop *loop = t_loop_new();

	if (!loop)
		return NULL;
	evq_prep_fsync(op, fd, 0);
	if (evq_op_submit(loop, op, 0, op_cb) < 0 ||
	    evq_loop_run(loop, EVQ_RUN_NOWAIT) < 0 ||
	    evq__aio_stats(loop, &s) < 0 || s.op_fsync != 1) {
		t_loop_free(loop);
		return NULL;
	}
	return loop;
}

/* The normal path: an fsync in flight at free is waited for and
 * completes with its own result, once. */
static int free_waits_for_an_fsync_in_flight(void)
{
	struct evq_op op = { 0 };
	struct evq_loop *loop;
	uint64_t t0;
	int fd = dirty_file(4);

	if (!t_backend_is("aio"))
		return t_skip("aio only");
	ASSERT_GE(fd, 0);
	hits = 0;
	loop = loop_with_fsync(fd, &op);
	ASSERT_NOTNULL(loop);
	t0 = t_now_ns();
	ASSERT_OK(evq_loop_free(loop));
	t_note("free took %llu ms (fsync of 4 MiB, io_destroy)",
	       (unsigned long long)((t_now_ns() - t0) / T_MS));
	ASSERT_EQ(hits, 1);
	ASSERT_OK(res);
	close(fd);
	return T_PASS;
}

/* How long a plain fsync() of mib MiB of dirty data takes here, in ms. */
static uint64_t fsync_ms(unsigned mib)
{
	int fd = dirty_file(mib);
	uint64_t t0 = t_now_ns();

	if (fd < 0 || fsync(fd) < 0)
		return 0;
	close(fd);
	return (t_now_ns() - t0) / T_MS;
}

/* The bound: with none left (the hook), an fsync the kernel still runs
 * completes with -ETIMEDOUT, exactly once, and free returns without
 * waiting for it (nor for io_destroy, which would wait for it too). The
 * process goes on: a new aio loop works. The data size is raised until a
 * plain fsync of it takes 20 ms or more here; from there on the aio one,
 * freed just after it was submitted, must be left to the kernel. */
static int free_gives_up_on_an_op_still_in_the_kernel(void)
{
	struct evq_op op = { 0 };
	struct evq_loop *loop;
	unsigned mib = 16;
	uint64_t ms = 0, plain = 0;
	int fd;

	if (!t_backend_is("aio"))
		return t_skip("aio only");
	t_case_timeout(60);
	while ((plain = fsync_ms(mib)) < 20 && mib < 256)
		mib *= 4;
	if (plain < 20)
		return t_skip("an fsync of %u MiB takes %llu ms here: too fast "
			      "to stay in flight", mib,
			      (unsigned long long)plain);
	t_note("a plain fsync of %u MiB takes %llu ms", mib,
	       (unsigned long long)plain);
	fd = dirty_file(mib);
	ASSERT_GE(fd, 0);
	hits = 0;
	res = 1;
	loop = loop_with_fsync(fd, &op);
	ASSERT_NOTNULL(loop);
	evq__aio_test_drain_ms(UINT_MAX);	/* no wait at all */
	{
		uint64_t t0 = t_now_ns();

		ASSERT_OK(evq_loop_free(loop));
		ms = (t_now_ns() - t0) / T_MS;
	}
	evq__aio_test_drain_ms(0);
	ASSERT_EQ(hits, 1);
	ASSERT_ERR(res, -ETIMEDOUT);
	close(fd);	/* the kernel's request holds the file */
	t_note("free took %llu ms with the fsync left to the kernel",
	       (unsigned long long)ms);
	/* io_destroy() would have waited for the fsync (and ~32 ms more):
	 * asserted only where the fsync is long enough to tell. */
	if (plain >= 100)
		EXPECT_LT(ms, plain);

	T_STEP("a new aio loop works: an fsync completes with 0");
	fd = dirty_file(1);
	ASSERT_GE(fd, 0);
	hits = 0;
	loop = loop_with_fsync(fd, &op);
	ASSERT_NOTNULL(loop);
	while (!hits)
		ASSERT_GE(t_run_once(loop, 5000), 0);
	ASSERT_OK(res);
	t_loop_free(loop);
	close(fd);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(free_waits_for_an_fsync_in_flight),
	T_CASE(free_gives_up_on_an_op_still_in_the_kernel),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
