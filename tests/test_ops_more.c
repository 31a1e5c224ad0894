/* SPDX-License-Identifier: MIT */
/*
 * test_ops_more.c - the ops of issue 14, each on every backend: splice
 * (file -> pipe -> socket byte for byte, offsets, waits for either side,
 * errors, cancel, close).
 *
 * Where uring runs an op natively, a cancel may reach it while an io-wq
 * thread is inside the syscall: the kernel interrupts it (-EINTR) and
 * says -EALREADY to the cancel (backend_uring.c, note m). The emulation
 * ends a waiting op with -ECANCELED and says 0. The cases accept both
 * pairs, and only those.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"
#include "ops_helpers.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* A cancelled op's result and its cancel's, as one of the two pairs the
 * header describes. */
static bool cancel_pair_ok(int target_res, int cancel_res)
{
	return (target_res == -ECANCELED && cancel_res == 0) ||
	       (target_res == -EINTR && cancel_res == -EALREADY);
}

/* Run until o's final call, then check its result. */
#define RUN_EXPECT(loop, o, want)					\
	do {								\
		ASSERT_OK(t_op_wait(loop, o, 5000));			\
		ASSERT_ERR((o)->res, want);				\
	} while (0)

/* ------------------------------------------------------------------------
 * splice
 * ------------------------------------------------------------------------ */

#define MIB (1024 * 1024)

/* file -> pipe -> socket, 64 KiB at a time, the peer read by a watcher */
struct relay {
	struct t_op to_pipe, to_sock;
	int file, pipe[2], sock[2];
	uint64_t off;		/* file bytes sent to the pipe */
	size_t in_pipe;		/* bytes the second splice still has to move */
	unsigned char *got;
	size_t ngot;
	struct evq_io peer;
	bool done;
};

static void relay_next(struct evq_loop *loop, struct relay *r);

static void relay_to_sock_hook(struct evq_loop *loop, struct t_op *o, int res,
			       unsigned flags)
{
	struct relay *r = o->arg;

	(void)flags;
	if (res <= 0) {
		T_FAILF("pipe -> socket splice: %d", res);
		r->done = true;
		return;
	}
	r->in_pipe -= (size_t)res;
	relay_next(loop, r);
}

static void relay_to_pipe_hook(struct evq_loop *loop, struct t_op *o, int res,
			       unsigned flags)
{
	struct relay *r = o->arg;

	(void)flags;
	if (res < 0) {
		T_FAILF("file -> pipe splice: %d", res);
		r->done = true;
		return;
	}
	if (res == 0) {		/* end of the file */
		r->done = true;
		return;
	}
	r->off += (uint64_t)res;
	r->in_pipe = (size_t)res;
	relay_next(loop, r);
}

static void relay_next(struct evq_loop *loop, struct relay *r)
{
	if (r->in_pipe > 0) {
		evq_prep_splice(&r->to_sock.op, r->pipe[0], -1, r->sock[0], -1,
				r->in_pipe, 0);
		EXPECT_OK(t_op_submit(loop, &r->to_sock, 0));
		return;
	}
	evq_prep_splice(&r->to_pipe.op, r->file, (int64_t)r->off, r->pipe[1],
			-1, 65536, 0);
	EXPECT_OK(t_op_submit(loop, &r->to_pipe, 0));
}

static void relay_peer_cb(struct evq_loop *loop, struct evq_io *w,
			  unsigned revents)
{
	struct relay *r = w->data;
	ssize_t n;

	(void)loop;
	(void)revents;
	while ((n = read(r->sock[1], r->got + r->ngot, MIB + 1 - r->ngot)) > 0)
		r->ngot += (size_t)n;
}

static int splice_relays_a_file_through_a_pipe_to_a_socket_byte_for_byte(void)
{
	struct evq_loop *loop = t_loop_new();
	struct relay r = { 0 };
	char dir[256], path[300];
	unsigned char *data = malloc(MIB);
	struct t_guard g;

	ASSERT_NOTNULL(loop);
	ASSERT_NOTNULL(data);
	r.got = malloc(MIB + 1);
	ASSERT_NOTNULL(r.got);
	t_rand_fill(data, MIB);
	t_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	ASSERT_OK(t_write_file(path, data, MIB));
	r.file = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_GE(r.file, 0);
	ASSERT_OK(t_pipe_mode(r.pipe, false));
	ASSERT_OK(t_sockpair_mode(r.sock, true));
	r.to_pipe.hook = relay_to_pipe_hook;
	r.to_pipe.arg = &r;
	r.to_sock.hook = relay_to_sock_hook;
	r.to_sock.arg = &r;
	t_op_init(&r.to_pipe);
	t_op_init(&r.to_sock);
	r.peer.data = &r;
	ASSERT_OK(evq_io_start(loop, &r.peer, r.sock[1], EVQ_READ,
			       relay_peer_cb));

	T_STEP("1 MiB, 64 KiB per splice, from explicit file offsets");
	relay_next(loop, &r);
	ASSERT_OK(t_guard_start(loop, &g, 10000, "the relay never ended"));
	while (!r.done && !g.fired)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
	t_guard_stop(&g);
	T_STEP("the peer reads every byte, in order");
	while (r.ngot < MIB && t_run_once(loop, 2000) >= 0 && !t_failed)
		;
	ASSERT_EQ(r.off, MIB);
	ASSERT_EQ(r.ngot, MIB);
	ASSERT_EQ(memcmp(r.got, data, MIB), 0);
	T_STEP("an explicit offset leaves the file position alone");
	ASSERT_EQ(lseek(r.file, 0, SEEK_CUR), 0);

	evq_io_stop(&r.peer);
	t_close(r.file);
	t_close2(r.pipe);
	t_close2(r.sock);
	unlink(path);
	rmdir(dir);
	free(data);
	free(r.got);
	t_loop_free(loop);
	return t_failed ? T_FAIL : T_PASS;
}

static int splice_at_the_current_position_moves_it(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a = { 0 };
	char dir[256], path[300], buf[16];
	int p[2], fd;

	ASSERT_NOTNULL(loop);
	t_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	ASSERT_OK(t_write_file(path, "0123456789", 10));
	fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	ASSERT_OK(t_pipe_mode(p, true));
	ASSERT_EQ(lseek(fd, 3, SEEK_SET), 3);

	T_STEP("file at its position -> pipe");
	t_op_init(&a);
	evq_prep_splice(&a.op, fd, -1, p[1], -1, 4, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	RUN_EXPECT(loop, &a, 4);
	ASSERT_EQ(lseek(fd, 0, SEEK_CUR), 7);
	ASSERT_EQ(read(p[0], buf, sizeof(buf)), 4);
	ASSERT_EQ(memcmp(buf, "3456", 4), 0);

	T_STEP("pipe -> file at offset 8: the file grows, its position stays");
	ASSERT_EQ(write(p[1], "abcd", 4), 4);
	t_op_init(&a);
	evq_prep_splice(&a.op, p[0], -1, fd, 8, 4, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	RUN_EXPECT(loop, &a, 4);
	ASSERT_EQ(lseek(fd, 0, SEEK_CUR), 7);
	ASSERT_EQ(pread(fd, buf, sizeof(buf), 0), 12);
	ASSERT_EQ(memcmp(buf, "01234567abcd", 12), 0);

	t_close(fd);
	t_close2(p);
	unlink(path);
	rmdir(dir);
	t_loop_free(loop);
	return T_PASS;
}

static int splice_waits_for_data_in_the_pipe_then_for_room_in_the_socket(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a = { 0 };
	int p[2], s[2];
	ssize_t filled;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe_mode(p, false));
	ASSERT_OK(t_sockpair_mode(s, true));

	T_STEP("an empty pipe: the splice waits");
	t_op_init(&a);
	evq_prep_splice(&a.op, p[0], -1, s[0], -1, 100, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(a.ncalls, 0);
	T_STEP("data arrives: it moves to the socket");
	ASSERT_EQ(write(p[1], "hello", 5), 5);
	RUN_EXPECT(loop, &a, 5);
	ASSERT_EQ(t_sock_drain(s[1]), 5);

	T_STEP("a full socket: the splice waits for room");
	filled = t_sock_fill(s[0]);
	ASSERT_GT(filled, 0);
	ASSERT_EQ(write(p[1], "world", 5), 5);
	t_op_init(&a);
	evq_prep_splice(&a.op, p[0], -1, s[0], -1, 5, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	ASSERT_OK(t_run_nowait(loop, 3));
	ASSERT_EQ(a.ncalls, 0);
	T_STEP("the peer reads: the splice completes");
	ASSERT_EQ(t_sock_drain(s[1]), filled);
	RUN_EXPECT(loop, &a, 5);
	ASSERT_EQ(t_sock_drain(s[1]), 5);

	T_STEP("the writer closes an empty pipe: 0, the end");
	t_close(p[1]);
	p[1] = -1;
	t_op_init(&a);
	evq_prep_splice(&a.op, p[0], -1, s[0], -1, 5, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	RUN_EXPECT(loop, &a, 0);

	t_close2(p);
	t_close2(s);
	t_loop_free(loop);
	return T_PASS;
}

static int splice_errors_are_reported_as_by_the_kernel(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a = { 0 };
	char dir[256], path[300];
	int p[2], s[2], fd;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe_mode(p, false));
	ASSERT_OK(t_sockpair_mode(s, true));
	t_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	ASSERT_OK(t_write_file(path, "x", 1));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);

	T_STEP("neither side a pipe: -EINVAL");
	t_op_init(&a);
	evq_prep_splice(&a.op, fd, 0, s[0], -1, 1, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	RUN_EXPECT(loop, &a, -EINVAL);
	T_STEP("an offset on the pipe side: -ESPIPE");
	t_op_init(&a);
	evq_prep_splice(&a.op, fd, 0, p[1], 0, 1, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	RUN_EXPECT(loop, &a, -ESPIPE);
	T_STEP("a bad fd on either side: -EBADF");
	t_op_init(&a);
	evq_prep_splice(&a.op, -1, -1, p[1], -1, 1, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	RUN_EXPECT(loop, &a, -EBADF);
	t_op_init(&a);
	evq_prep_splice(&a.op, p[0], -1, INT_MAX - 7, -1, 1, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	RUN_EXPECT(loop, &a, -EBADF);
	T_STEP("an unknown splice flag: -EINVAL");
	t_op_init(&a);
	evq_prep_splice(&a.op, p[0], -1, s[0], -1, 1, 0x100u);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	RUN_EXPECT(loop, &a, -EINVAL);
	T_STEP("SPLICE_F_NONBLOCK on an empty pipe: -EAGAIN, no wait");
	t_op_init(&a);
	evq_prep_splice(&a.op, p[0], -1, s[0], -1, 1, SPLICE_F_NONBLOCK);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	RUN_EXPECT(loop, &a, -EAGAIN);
	T_STEP("an unprepared op, a NULL op: -EINVAL at submission");
	ASSERT_ERR(evq_op_submit(loop, NULL, 0, t_op_cb), -EINVAL);

	t_close(fd);
	t_close2(p);
	t_close2(s);
	unlink(path);
	rmdir(dir);
	t_loop_free(loop);
	return T_PASS;
}

static int splice_waiting_for_a_pipe_is_cancelled_and_closed(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a = { 0 }, c = { 0 };
	int p[2], s[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_pipe_mode(p, false));
	ASSERT_OK(t_sockpair_mode(s, true));

	T_STEP("a cancel ends a splice waiting on an empty pipe");
	t_op_init(&a);
	evq_prep_splice(&a.op, p[0], -1, s[0], -1, 100, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	t_op_init(&c);
	evq_prep_cancel(&c.op, &a.op);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_OK(t_op_wait(loop, &a, 5000));
	ASSERT_TRUE(cancel_pair_ok(a.res, c.res));
	if (c.res == 0)		/* the order evq.h promises */
		ASSERT_LT(a.seq, c.seq);

	T_STEP("a close op of fd_out ends it too (the op is fd_out's)");
	t_op_init(&a);
	evq_prep_splice(&a.op, p[0], -1, s[0], -1, 100, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	t_op_init(&c);
	evq_prep_close(&c.op, s[0]);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_OK(t_op_wait(loop, &a, 5000));
	ASSERT_ERR(c.res, 0);
	if (a.res != -ECANCELED && a.res != -EINTR)
		ASSERT_ERR(a.res, -ECANCELED);
	s[0] = -1;
	T_STEP("no data was lost to the ended splices");
	ASSERT_EQ(write(p[1], "z", 1), 1);
	ASSERT_EQ(read(p[0], &c, sizeof(c)), 1);

	T_STEP("a close op of fd_in ends it as well");
	t_close(s[1]);
	ASSERT_OK(t_sockpair_mode(s, true));
	t_op_init(&a);
	evq_prep_splice(&a.op, p[0], -1, s[0], -1, 100, 0);
	ASSERT_OK(t_op_submit(loop, &a, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	t_op_init(&c);
	evq_prep_close(&c.op, p[0]);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 5000));
	ASSERT_OK(t_op_wait(loop, &a, 5000));
	ASSERT_ERR(c.res, 0);
	if (a.res != -ECANCELED && a.res != -EINTR)
		ASSERT_ERR(a.res, -ECANCELED);
	p[0] = -1;

	t_close2(p);
	t_close2(s);
	t_loop_free(loop);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(splice_relays_a_file_through_a_pipe_to_a_socket_byte_for_byte),
	T_CASE(splice_at_the_current_position_moves_it),
	T_CASE(splice_waits_for_data_in_the_pipe_then_for_room_in_the_socket),
	T_CASE(splice_errors_are_reported_as_by_the_kernel),
	T_CASE(splice_waiting_for_a_pipe_is_cancelled_and_closed),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
