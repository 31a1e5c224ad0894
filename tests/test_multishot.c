/* SPDX-License-Identifier: MIT */
/*
 * test_multishot.c - multishot ops and buffer pools: multishot accept of
 * 1,000 connections then cancel; multishot recv of 100 sockets sharing a
 * pool of 4 buffers (-ENOBUFS ends an op, no byte is lost, duplicated or
 * reordered); EOF ends a multishot recv; single-shot pool reads; the pool
 * API's validation and accounting.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"
#include "ops_helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int tcp_listener(bool nb, struct sockaddr_in *sin, int backlog)
{
	socklen_t len = sizeof(*sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
				 (nb ? SOCK_NONBLOCK : 0), 0);

	if (fd < 0) {
		T_FAILF("socket: %s", strerror(errno));
		return -1;
	}
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)sin, sizeof(*sin)) != 0 ||
	    listen(fd, backlog) != 0 ||
	    getsockname(fd, (struct sockaddr *)sin, &len) != 0) {
		T_FAILF("bind/listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* ------------------------------------------------------------------------
 * Multishot accept
 * ------------------------------------------------------------------------ */

#define NCONN 1000
#define BATCH 50

struct acc_state {
	int fds[NCONN + 16];
	int n;			/* results with EVQ_OP_F_MORE */
	int bad;		/* results that are not a valid new fd */
};

static struct acc_state acc;

static void acc_hook(struct evq_loop *loop, struct t_op *o, int res,
		     unsigned flags)
{
	(void)loop;
	(void)o;
	if (!(flags & EVQ_OP_F_MORE))
		return;
	if (flags & ~EVQ_OP_F_MORE)
		T_FAILF("accept result with flags %#x", flags);
	if (res < 0) {
		T_FAILF("accept result %d with EVQ_OP_F_MORE", res);
		acc.bad++;
		return;
	}
	if (acc.n < (int)T_NELEM(acc.fds))
		acc.fds[acc.n] = res;
	else
		close(res);
	acc.n++;
}

/* The peer port of fd, or -1. */
static int peer_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (getpeername(fd, (struct sockaddr *)&sin, &len) != 0)
		return -1;
	return ntohs(sin.sin_port);
}

static int local_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		return -1;
	return ntohs(sin.sin_port);
}

static int multishot_accept(bool nb, int nconn)
{
	struct evq_loop *loop = t_loop_new();
	struct t_op a = { 0 }, c = { 0 };
	struct sockaddr_in sin;
	static int clients[NCONN];
	static unsigned char seen[65536];
	int lfd, connected = 0;

	ASSERT_NOTNULL(loop);
	ASSERT_GE(t_raise_nofile(2 * nconn + 256), 2 * nconn + 100);
	memset(&acc, 0, sizeof(acc));
	memset(seen, 0, sizeof(seen));
	lfd = tcp_listener(nb, &sin, 128);
	ASSERT_GE(lfd, 0);

	T_STEP("arm a multishot accept");
	t_op_init(&a);
	a.hook = acc_hook;
	evq_prep_accept(&a.op, lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	ASSERT_OK(t_op_submit(loop, &a, EVQ_OP_MULTISHOT));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(acc.n, 0);
	ASSERT_EQ(a.ncalls, 0);

	while (connected < nconn) {
		int end = connected + BATCH < nconn ? connected + BATCH : nconn;

		T_STEP("connect clients %d..%d", connected, end - 1);
		for (int i = connected; i < end; i++) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
						 SOCK_NONBLOCK, 0);

			ASSERT_GE(fd, 0);
			if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) !=
			    0)
				ASSERT_ERR(-errno, -EINPROGRESS);
			clients[i] = fd;
		}
		connected = end;
		ASSERT_OK(t_run_until(loop, &acc.n, connected, 5000,
				      "accepts of a batch never came"));
		ASSERT_EQ(acc.n, connected);
		ASSERT_EQ(a.ncalls, 0);	/* still armed */
		ASSERT_EQ(evq_op_is_active(&a.op), 1);
	}

	T_STEP("every accepted fd is a new, valid socket of one client");
	for (int i = 0; i < nconn; i++) {
		int port = local_port(clients[i]);

		ASSERT_GT(port, 0);
		ASSERT_EQ(seen[port], 0);
		seen[port] = 1;
	}
	for (int i = 0; i < nconn; i++) {
		int port = peer_port(acc.fds[i]);

		ASSERT_GT(port, 0);
		ASSERT_EQ(seen[port], 1);	/* one client, only once */
		seen[port] = 2;
		ASSERT_TRUE(fcntl(acc.fds[i], F_GETFL) & O_NONBLOCK);
		ASSERT_TRUE(fcntl(acc.fds[i], F_GETFD) & FD_CLOEXEC);
	}
	ASSERT_EQ(acc.bad, 0);

	T_STEP("cancel: a last call without MORE, -ECANCELED");
	t_op_init(&c);
	evq_prep_cancel(&c.op, &a.op);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 2000));
	ASSERT_OK(t_op_wait(loop, &a, 2000));
	ASSERT_ERR(c.res, 0);
	ASSERT_EQ(a.ncalls, 1);
	ASSERT_ERR(a.res, -ECANCELED);
	ASSERT_EQ(a.flags & EVQ_OP_F_MORE, 0);
	ASSERT_EQ(a.nmore, nconn);
	ASSERT_EQ(acc.n, nconn);
	ASSERT_EQ(evq_op_is_active(&a.op), 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);

	T_STEP("a connection after the cancel is not accepted");
	{
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		ASSERT_GE(fd, 0);
		ASSERT_EQ(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		ASSERT_OK(t_run_nowait(loop, 3));
		ASSERT_EQ(acc.n, nconn);
		ASSERT_EQ(a.ncalls, 1);
		close(fd);
	}

	for (int i = 0; i < nconn; i++) {
		close(clients[i]);
		close(acc.fds[i]);
	}
	close(lfd);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int accept_1000_nonblocking_listener(void)
{
	return multishot_accept(true, NCONN);
}

static int accept_200_blocking_listener(void)
{
	t_case_timeout(10);
	return multishot_accept(false, 200);
}

/* ------------------------------------------------------------------------
 * Multishot recv from a shared pool
 * ------------------------------------------------------------------------ */

#define NSOCK 100
#define STREAM (64 * 1024)
#define NBUFS 4
#define BUFSZ 4096

struct conn {
	struct t_op op;
	int fd[2];		/* fd[0]: the op's; fd[1]: the writer */
	unsigned char *data;	/* the stream the writer sends */
	size_t sent, recvd;
	bool eof;		/* final res 0 seen */
	bool resubmit;		/* ended with -ENOBUFS: submit again */
	int idx;
};

struct held {
	struct conn *c;
	unsigned id;
	size_t off, len;
};

static struct conn conns[NSOCK];
static struct held held[NBUFS * 4];
static int nheld;
static struct evq_pool *gpool;
static int n_enobufs, n_final_data, n_eof, n_results;

static void pool_recv_hook(struct evq_loop *loop, struct t_op *o, int res,
			   unsigned flags)
{
	struct conn *c = o->arg;

	(void)loop;
	if (res > 0) {
		unsigned id = EVQ_OP_F_BUFID(flags);

		n_results++;
		if (!(flags & EVQ_OP_F_BUFFER)) {
			T_FAILF("conn %d: %d bytes without EVQ_OP_F_BUFFER",
				c->idx, res);
			return;
		}
		if (id >= NBUFS || res > BUFSZ) {
			T_FAILF("conn %d: buffer id %u, %d bytes", c->idx, id,
				res);
			return;
		}
		for (int i = 0; i < nheld; i++)
			if (held[i].id == id)
				T_FAILF("buffer %u handed out twice", id);
		if (nheld == (int)T_NELEM(held)) {
			T_FAILF("more buffers out than the pool has");
			return;
		}
		if (c->recvd + (size_t)res > c->sent) {
			T_FAILF("conn %d: %zu bytes received, %zu sent",
				c->idx, c->recvd + (size_t)res, c->sent);
			return;
		}
		held[nheld++] = (struct held){ c, id, c->recvd, (size_t)res };
		c->recvd += (size_t)res;
		if (!(flags & EVQ_OP_F_MORE)) {
			/* Allowed (a last result may carry data), but the
			 * op is over: submit it again. */
			n_final_data++;
			c->resubmit = true;
		}
		return;
	}
	if (flags & (EVQ_OP_F_MORE | EVQ_OP_F_BUFFER)) {
		T_FAILF("conn %d: res %d with flags %#x", c->idx, res, flags);
		return;
	}
	if (res == -ENOBUFS) {
		n_enobufs++;
		c->resubmit = true;
	} else if (res == 0) {
		n_eof++;
		c->eof = true;
		if (c->recvd != STREAM || c->fd[1] >= 0)
			T_FAILF("conn %d: EOF after %zu of %d bytes",
				c->idx, c->recvd, STREAM);
	} else {
		T_FAILF("conn %d: final res %d", c->idx, res);
	}
}

/* Check every held buffer against the stream, then hand it back. */
static int release_held(void)
{
	for (int i = 0; i < nheld; i++) {
		struct held *h = &held[i];
		unsigned char *b = evq_pool_buf(gpool, h->id);

		ASSERT_NOTNULL(b);
		if (memcmp(b, h->c->data + h->off, h->len) != 0) {
			T_FAILF("conn %d: bytes %zu..%zu differ from what "
				"was sent (buffer %u)", h->c->idx, h->off,
				h->off + h->len - 1, h->id);
			return -1;
		}
		ASSERT_OK(evq_pool_release(gpool, h->id));
	}
	nheld = 0;
	return 0;
}

static int recv_pool_100_sockets(void)
{
	struct evq_loop *loop = t_loop_new();
	struct t_guard g;
	int done = 0, iters = 0;

	ASSERT_NOTNULL(loop);
	t_rand_seed();
	nheld = n_enobufs = n_final_data = n_eof = n_results = 0;
	ASSERT_OK(evq_pool_new(loop, &gpool, NBUFS, BUFSZ));
	ASSERT_EQ(evq_pool_available(gpool), NBUFS);
	for (int i = 0; i < NSOCK; i++) {
		struct conn *c = &conns[i];

		memset(c, 0, sizeof(*c));
		c->idx = i;
		ASSERT_OK(t_socketpair(c->fd));
		c->data = malloc(STREAM);
		ASSERT_NOTNULL(c->data);
		t_rand_fill(c->data, STREAM);
		t_op_init(&c->op);
		c->op.hook = pool_recv_hook;
		c->op.arg = c;
		evq_prep_recv_pool(&c->op.op, c->fd[0], gpool, 0);
		ASSERT_OK(t_op_submit(loop, &c->op, EVQ_OP_MULTISHOT));
	}

	ASSERT_OK(t_guard_start(loop, &g, 8000, "the streams did not end"));
	while (done < NSOCK && !g.fired && !t_failed) {
		T_STEP("iteration %d", iters);
		/* The writers: a random chunk each, then EOF. */
		for (int i = 0; i < NSOCK; i++) {
			struct conn *c = &conns[i];
			size_t chunk = 1 + t_rand() % 8192;
			ssize_t n;

			if (c->fd[1] < 0)
				continue;
			if (chunk > STREAM - c->sent)
				chunk = STREAM - c->sent;
			n = send(c->fd[1], c->data + c->sent, chunk,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				c->sent += (size_t)n;
			else
				ASSERT_TRUE(n < 0 && errno == EAGAIN);
			if (c->sent == STREAM) {
				close(c->fd[1]);
				c->fd[1] = -1;
			}
		}
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
		iters++;
		/* Held buffers are out: the rest is available. */
		ASSERT_EQ(evq_pool_available(gpool) + (unsigned)nheld, NBUFS);
		ASSERT_OK(release_held());
		ASSERT_EQ(evq_pool_available(gpool), NBUFS);
		done = 0;
		for (int i = 0; i < NSOCK; i++) {
			struct conn *c = &conns[i];

			if (c->eof) {
				done++;
				continue;
			}
			if (!c->resubmit)
				continue;
			ASSERT_EQ(evq_op_is_active(&c->op.op), 0);
			c->resubmit = false;
			ASSERT_OK(t_op_submit(loop, &c->op,
					      EVQ_OP_MULTISHOT));
		}
	}
	t_guard_stop(&g);
	ASSERT_EQ(g.fired, 0);
	t_note("%d iterations, %d results, %d -ENOBUFS, %d last results "
	       "with data", iters, n_results, n_enobufs, n_final_data);

	T_STEP("every stream arrived whole, then EOF");
	for (int i = 0; i < NSOCK; i++) {
		ASSERT_EQ(conns[i].recvd, STREAM);
		ASSERT_TRUE(conns[i].eof);
		ASSERT_EQ(conns[i].op.ncalls, conns[i].op.submits);
		ASSERT_EQ(evq_op_is_active(&conns[i].op.op), 0);
	}
	ASSERT_EQ(n_eof, NSOCK);
	/* 100 busy sockets, 4 buffers kept out for a whole iteration: the
	 * pool must have run dry. */
	ASSERT_GT(n_enobufs, 0);
	ASSERT_EQ(evq_loop_ops(loop), 0);
	ASSERT_EQ(evq_pool_available(gpool), NBUFS);
	ASSERT_OK(evq_pool_free(gpool));
	for (int i = 0; i < NSOCK; i++) {
		close(conns[i].fd[0]);
		free(conns[i].data);
	}
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * EOF, empty pool, single-shot pool ops
 * ------------------------------------------------------------------------ */

static int eof_ends_multishot_recv(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_pool *pool;
	struct t_op r = { 0 };
	int sp[2];
	unsigned id;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(evq_pool_new(loop, &pool, 2, 64));
	ASSERT_OK(t_socketpair(sp));

	T_STEP("data, then EOF");
	t_op_init(&r);
	evq_prep_recv_pool(&r.op, sp[0], pool, 0);
	ASSERT_OK(t_op_submit(loop, &r, EVQ_OP_MULTISHOT));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(r.nmore + r.ncalls, 0);
	ASSERT_EQ(send(sp[1], "0123456789", 10, 0), 10);
	ASSERT_OK(t_run_until(loop, &r.nmore, 1, 2000, "no data came"));
	ASSERT_EQ(r.res, 10);
	ASSERT_TRUE(r.flags & EVQ_OP_F_MORE);
	ASSERT_TRUE(r.flags & EVQ_OP_F_BUFFER);
	id = EVQ_OP_F_BUFID(r.flags);
	ASSERT_LT(id, 2);
	ASSERT_EQ(memcmp(evq_pool_buf(pool, id), "0123456789", 10), 0);
	ASSERT_EQ(evq_pool_available(pool), 1);
	ASSERT_EQ(r.ncalls, 0);
	close(sp[1]);
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.nmore, 1);
	ASSERT_EQ(r.res, 0);
	ASSERT_EQ(r.flags, 0);	/* no MORE, no BUFFER */
	ASSERT_EQ(evq_op_is_active(&r.op), 0);
	ASSERT_EQ(evq_pool_available(pool), 1);
	ASSERT_OK(evq_pool_release(pool, id));
	ASSERT_EQ(evq_pool_available(pool), 2);

	T_STEP("the peer closed before the op started");
	t_op_init(&r);
	evq_prep_recv_pool(&r.op, sp[0], pool, 0);
	ASSERT_OK(t_op_submit(loop, &r, EVQ_OP_MULTISHOT));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.nmore, 0);
	ASSERT_EQ(r.res, 0);
	ASSERT_EQ(r.flags, 0);
	ASSERT_EQ(evq_pool_available(pool), 2);
	close(sp[0]);
	ASSERT_OK(evq_pool_free(pool));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* A pool of one buffer: while it is out, a recv from the pool ends with
 * -ENOBUFS and the data stays in the socket. */
static int empty_pool_enobufs_keeps_data(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_pool *pool;
	struct t_op r = { 0 }, m = { 0 };
	unsigned char out[100], got[100];
	int sp[2];
	unsigned id;

	ASSERT_NOTNULL(loop);
	for (int i = 0; i < 100; i++)
		out[i] = (unsigned char)(i * 7 + 1);
	ASSERT_OK(evq_pool_new(loop, &pool, 1, 40));
	ASSERT_OK(t_socketpair(sp));
	ASSERT_EQ(send(sp[1], out, 100, 0), 100);

	T_STEP("single-shot: 40 bytes into the only buffer");
	t_op_init(&r);
	evq_prep_recv_pool(&r.op, sp[0], pool, 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.res, 40);
	ASSERT_EQ(r.flags & EVQ_OP_F_MORE, 0);
	ASSERT_TRUE(r.flags & EVQ_OP_F_BUFFER);
	id = EVQ_OP_F_BUFID(r.flags);
	ASSERT_EQ(id, 0);
	memcpy(got, evq_pool_buf(pool, id), 40);
	ASSERT_EQ(evq_pool_available(pool), 0);

	T_STEP("pool empty: single-shot and multishot end with -ENOBUFS");
	t_op_init(&r);
	evq_prep_recv_pool(&r.op, sp[0], pool, 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_ERR(r.res, -ENOBUFS);
	ASSERT_EQ(r.flags, 0);
	t_op_init(&m);
	evq_prep_recv_pool(&m.op, sp[0], pool, 0);
	ASSERT_OK(t_op_submit(loop, &m, EVQ_OP_MULTISHOT));
	ASSERT_OK(t_op_wait(loop, &m, 2000));
	ASSERT_ERR(m.res, -ENOBUFS);
	ASSERT_EQ(m.flags, 0);
	ASSERT_EQ(m.nmore, 0);

	T_STEP("release; the rest of the data is still there, in order");
	ASSERT_OK(evq_pool_release(pool, id));
	ASSERT_EQ(evq_pool_available(pool), 1);
	for (int off = 40; off < 100;) {
		t_op_init(&r);
		evq_prep_recv_pool(&r.op, sp[0], pool, 0);
		ASSERT_OK(t_op_submit(loop, &r, 0));
		ASSERT_OK(t_op_wait(loop, &r, 2000));
		ASSERT_GT(r.res, 0);
		ASSERT_LE(off + r.res, 100);
		id = EVQ_OP_F_BUFID(r.flags);
		memcpy(got + off, evq_pool_buf(pool, id), (size_t)r.res);
		off += r.res;
		ASSERT_OK(evq_pool_release(pool, id));
	}
	ASSERT_EQ(memcmp(got, out, 100), 0);
	ASSERT_EQ(recv(sp[0], got, 1, MSG_DONTWAIT), -1);	/* nothing else */
	t_close2(sp);
	ASSERT_OK(evq_pool_free(pool));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* A multishot op may end with data: io_uring ends a multishot recv whose
 * CQE cannot be posted (the CQ is full) with a last CQE that carries the
 * data and no IORING_CQE_F_MORE. evq.h: a last call may carry data (res >
 * 0 and a buffer), which the caller must take. Here a tiny ring (4 CQ
 * entries) and 48 datagrams queued before the recv starts make the kernel
 * overflow the CQ in one go; the emulation takes MULTISHOT_BURST results
 * per report and never ends this way. On every backend every datagram
 * must arrive once, in order, whichever call carries it. */
#define NDGRAM 48

struct dgram_rx {
	struct evq_pool *pool;
	int next;		/* datagrams received */
	int finals_with_data;
	bool over;		/* the op's last call came */
};

static void dgram_hook(struct evq_loop *loop, struct t_op *o, int res,
		       unsigned flags)
{
	struct dgram_rx *rx = o->arg;
	unsigned char *b;

	(void)loop;
	if (!(flags & EVQ_OP_F_MORE))
		rx->over = true;
	if (res <= 0) {
		if (flags & EVQ_OP_F_BUFFER)
			T_FAILF("res %d with a buffer", res);
		if (res != -ENOBUFS && res != -ECANCELED)
			T_FAILF("multishot recv ended with %d", res);
		return;
	}
	if (!(flags & EVQ_OP_F_BUFFER)) {
		T_FAILF("%d bytes without EVQ_OP_F_BUFFER (flags %#x)", res,
			flags);
		return;
	}
	if (!(flags & EVQ_OP_F_MORE))
		rx->finals_with_data++;
	b = evq_pool_buf(rx->pool, EVQ_OP_F_BUFID(flags));
	if (!b || res != 8 || b[0] != (unsigned char)rx->next)
		T_FAILF("datagram %d: %d bytes, first byte %d", rx->next, res,
			b ? b[0] : -1);
	rx->next++;
	EXPECT_OK(evq_pool_release(rx->pool, EVQ_OP_F_BUFID(flags)));
}

static int multishot_last_call_carries_data(void)
{
	struct evq_loop_options opts = { 0 };
	struct evq_loop *loop;
	struct dgram_rx rx = { 0 };
	struct t_op o = { 0 };
	struct t_guard g;
	int sp[2], submits = 0;

	opts.uring_entries = 2;	/* CQ: 4 entries */
	loop = t_loop_new_opts(&opts);
	ASSERT_NOTNULL(loop);
	ASSERT_OK(evq_pool_new(loop, &rx.pool, 64, 64));
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK |
					      SOCK_CLOEXEC, 0, sp), 0);
	for (int i = 0; i < NDGRAM; i++) {
		unsigned char d[8];

		memset(d, i, sizeof(d));
		ASSERT_EQ(send(sp[1], d, sizeof(d), 0), 8);
	}
	o.hook = dgram_hook;
	o.arg = &rx;
	ASSERT_OK(t_guard_start(loop, &g, 5000, "datagrams never arrived"));
	while (rx.next < NDGRAM && !g.fired) {
		if (!evq_op_is_active(&o.op)) {
			T_STEP("submit the multishot recv (%d datagrams in)",
			       rx.next);
			t_op_init(&o);
			rx.over = false;
			evq_prep_recv_pool(&o.op, sp[0], rx.pool, 0);
			ASSERT_OK(t_op_submit(loop, &o, EVQ_OP_MULTISHOT));
			submits++;
		}
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
	}
	t_guard_stop(&g);
	ASSERT_EQ(rx.next, NDGRAM);
	t_note("%d submissions, %d last calls with data", submits,
	       rx.finals_with_data);
	T_STEP("cancel the op");
	if (evq_op_is_active(&o.op)) {
		struct t_op c = { 0 };

		t_op_init(&c);
		evq_prep_cancel(&c.op, &o.op);
		ASSERT_OK(t_op_submit(loop, &c, 0));
		ASSERT_OK(t_op_wait(loop, &c, 2000));
		ASSERT_TRUE(rx.over);
	}
	ASSERT_EQ(rx.next, NDGRAM);
	t_close2(sp);
	ASSERT_OK(evq_pool_free(rx.pool));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int read_pool_pipe_and_file(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_pool *pool;
	struct t_op r = { 0 };
	char dir[256], path[300];
	unsigned char data[5000];
	int p[2], fd;
	unsigned id;

	ASSERT_NOTNULL(loop);
	for (int i = 0; i < 5000; i++)
		data[i] = (unsigned char)(i * 13 + (i >> 7));
	ASSERT_OK(evq_pool_new(loop, &pool, 2, 1024));

	T_STEP("pipe: a waiting pool read");
	ASSERT_OK(t_pipe(p));
	t_op_init(&r);
	evq_prep_read_pool(&r.op, p[0], pool, EVQ_OFFSET_CURRENT);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_EQ(r.ncalls, 0);
	ASSERT_EQ(write(p[1], data, 300), 300);
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.res, 300);
	ASSERT_TRUE(r.flags & EVQ_OP_F_BUFFER);
	ASSERT_EQ(r.flags & EVQ_OP_F_MORE, 0);
	id = EVQ_OP_F_BUFID(r.flags);
	ASSERT_LT(id, 2);
	ASSERT_EQ(memcmp(evq_pool_buf(pool, id), data, 300), 0);
	ASSERT_OK(evq_pool_release(pool, id));
	t_close2(p);

	T_STEP("file: a pool read at an offset");
	t_tmpdir(dir, sizeof(dir));
	ASSERT_TRUE(dir[0]);
	snprintf(path, sizeof(path), "%s/f", dir);
	ASSERT_OK(t_write_file(path, data, sizeof(data)));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	t_op_init(&r);
	evq_prep_read_pool(&r.op, fd, pool, 1000);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 5000));
	ASSERT_EQ(r.res, 1024);
	ASSERT_TRUE(r.flags & EVQ_OP_F_BUFFER);
	id = EVQ_OP_F_BUFID(r.flags);
	ASSERT_EQ(memcmp(evq_pool_buf(pool, id), data + 1000, 1024), 0);
	T_STEP("file: short at the end");
	{
		struct t_op r2 = { 0 };
		unsigned id2;

		t_op_init(&r2);
		evq_prep_read_pool(&r2.op, fd, pool, 4500);
		ASSERT_OK(t_op_submit(loop, &r2, 0));
		ASSERT_OK(t_op_wait(loop, &r2, 5000));
		ASSERT_EQ(r2.res, 500);
		id2 = EVQ_OP_F_BUFID(r2.flags);
		ASSERT_NE(id2, id);
		ASSERT_EQ(memcmp(evq_pool_buf(pool, id2), data + 4500, 500), 0);
		/* the first buffer was not touched meanwhile */
		ASSERT_EQ(memcmp(evq_pool_buf(pool, id), data + 1000, 1024), 0);
		ASSERT_EQ(evq_pool_available(pool), 0);
		T_STEP("file: no buffer left");
		t_op_init(&r2);
		evq_prep_read_pool(&r2.op, fd, pool, 0);
		ASSERT_OK(t_op_submit(loop, &r2, 0));
		ASSERT_OK(t_op_wait(loop, &r2, 5000));
		ASSERT_ERR(r2.res, -ENOBUFS);
		ASSERT_OK(evq_pool_release(pool, id2));
	}
	ASSERT_OK(evq_pool_release(pool, id));
	ASSERT_EQ(evq_pool_available(pool), 2);
	close(fd);
	unlink(path);
	rmdir(dir);
	ASSERT_OK(evq_pool_free(pool));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * The pool API
 * ------------------------------------------------------------------------ */

static int pool_validation(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_pool *pool = NULL;
	static const unsigned bad_n[] = { 0, 3, 6, 100, 32769, 65536 };

	ASSERT_NOTNULL(loop);
	for (size_t i = 0; i < T_NELEM(bad_n); i++) {
		T_STEP("nbufs %u", bad_n[i]);
		ASSERT_ERR(evq_pool_new(loop, &pool, bad_n[i], 64), -EINVAL);
		ASSERT_NULL(pool);
	}
	T_STEP("size 0, size above 1 GiB");
	ASSERT_ERR(evq_pool_new(loop, &pool, 4, 0), -EINVAL);
	ASSERT_ERR(evq_pool_new(loop, &pool, 1, ((size_t)1 << 30) + 1),
		   -EINVAL);
	ASSERT_NULL(pool);
	T_STEP("NULL loop or pool pointer");
	ASSERT_ERR(evq_pool_new(NULL, &pool, 4, 64), -EINVAL);
	ASSERT_ERR(evq_pool_new(loop, NULL, 4, 64), -EINVAL);
	ASSERT_ERR(evq_pool_free(NULL), -EINVAL);
	ASSERT_ERR(evq_pool_release(NULL, 0), -EINVAL);
	ASSERT_NULL(evq_pool_buf(NULL, 0));
	ASSERT_EQ(evq_pool_available(NULL), 0);

	T_STEP("the smallest and the largest counts");
	ASSERT_OK(evq_pool_new(loop, &pool, 1, 1));
	ASSERT_NOTNULL(pool);
	ASSERT_EQ(evq_pool_available(pool), 1);
	ASSERT_NOTNULL(evq_pool_buf(pool, 0));
	ASSERT_NULL(evq_pool_buf(pool, 1));
	ASSERT_OK(evq_pool_free(pool));
	pool = NULL;
	ASSERT_OK(evq_pool_new(loop, &pool, 32768, 16));
	ASSERT_EQ(evq_pool_available(pool), 32768);
	ASSERT_NOTNULL(evq_pool_buf(pool, 32767));
	ASSERT_NULL(evq_pool_buf(pool, 32768));
	/* Every buffer is its own `size` bytes (ASan checks the bounds). */
	for (unsigned i = 0; i < 32768; i++)
		memset(evq_pool_buf(pool, i), (int)(i & 0xff), 16);
	for (unsigned i = 0; i < 32768; i++) {
		unsigned char *b = evq_pool_buf(pool, i);

		if (b[0] != (i & 0xff) || b[15] != (i & 0xff))
			ASSERT_EQ(b[0], i & 0xff);
	}
	ASSERT_OK(evq_pool_free(pool));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int pool_release_errors(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_pool *pool;
	struct t_op r = { 0 };
	int sp[2];
	unsigned id;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(evq_pool_new(loop, &pool, 4, 64));
	ASSERT_OK(t_socketpair(sp));
	T_STEP("bad ids, ids not out");
	ASSERT_ERR(evq_pool_release(pool, 4), -EINVAL);
	ASSERT_ERR(evq_pool_release(pool, 0xffffffffu), -EINVAL);
	for (unsigned i = 0; i < 4; i++)
		ASSERT_ERR(evq_pool_release(pool, i), -EINVAL);
	ASSERT_EQ(evq_pool_available(pool), 4);

	T_STEP("a buffer out: released once, not twice");
	ASSERT_OK(t_write_byte(sp[1]));
	t_op_init(&r);
	evq_prep_recv_pool(&r.op, sp[0], pool, 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.res, 1);
	id = EVQ_OP_F_BUFID(r.flags);
	ASSERT_LT(id, 4);
	ASSERT_EQ(evq_pool_available(pool), 3);
	for (unsigned i = 0; i < 4; i++)
		if (i != id)
			ASSERT_ERR(evq_pool_release(pool, i), -EINVAL);
	ASSERT_EQ(evq_pool_available(pool), 3);
	ASSERT_OK(evq_pool_release(pool, id));
	ASSERT_EQ(evq_pool_available(pool), 4);
	ASSERT_ERR(evq_pool_release(pool, id), -EINVAL);
	ASSERT_EQ(evq_pool_available(pool), 4);

	T_STEP("the released buffer is used again");
	for (int i = 0; i < 8; i++) {
		ASSERT_OK(t_write_byte(sp[1]));
		t_op_init(&r);
		evq_prep_recv_pool(&r.op, sp[0], pool, 0);
		ASSERT_OK(t_op_submit(loop, &r, 0));
		ASSERT_OK(t_op_wait(loop, &r, 2000));
		ASSERT_EQ(r.res, 1);
		ASSERT_OK(evq_pool_release(pool, EVQ_OP_F_BUFID(r.flags)));
	}
	ASSERT_EQ(evq_pool_available(pool), 4);
	t_close2(sp);
	ASSERT_OK(evq_pool_free(pool));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static int pool_free_busy(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_pool *pool;
	struct t_op r = { 0 }, s = { 0 }, c = { 0 };
	int sp[2], sp2[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(evq_pool_new(loop, &pool, 4, 64));
	ASSERT_OK(t_socketpair(sp));
	ASSERT_OK(t_socketpair(sp2));

	T_STEP("a queued single-shot pool recv");
	t_op_init(&s);
	evq_prep_recv_pool(&s.op, sp2[0], pool, 0);
	ASSERT_OK(t_op_submit(loop, &s, 0));
	ASSERT_ERR(evq_pool_free(pool), -EBUSY);
	T_STEP("a waiting multishot pool recv");
	t_op_init(&r);
	evq_prep_recv_pool(&r.op, sp[0], pool, 0);
	ASSERT_OK(t_op_submit(loop, &r, EVQ_OP_MULTISHOT));
	ASSERT_OK(t_run_nowait(loop, 2));
	ASSERT_ERR(evq_pool_free(pool), -EBUSY);
	T_STEP("the single-shot one completes: still busy");
	ASSERT_OK(t_write_byte(sp2[1]));
	ASSERT_OK(t_op_wait(loop, &s, 2000));
	ASSERT_EQ(s.res, 1);
	ASSERT_ERR(evq_pool_free(pool), -EBUSY);
	T_STEP("cancel the multishot one: free works");
	t_op_init(&c);
	evq_prep_cancel(&c.op, &r.op);
	ASSERT_OK(t_op_submit(loop, &c, 0));
	ASSERT_OK(t_op_wait(loop, &c, 2000));
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_ERR(c.res, 0);
	ASSERT_ERR(r.res, -ECANCELED);
	ASSERT_EQ(r.flags & EVQ_OP_F_MORE, 0);
	/* A buffer still out does not keep the pool alive. */
	ASSERT_OK(evq_pool_free(pool));
	t_close2(sp);
	t_close2(sp2);
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static void keep_buffer_cb(struct evq_loop *loop, struct evq_op *op, int res,
			   unsigned flags)
{
	(void)loop;
	(void)res;
	*(unsigned *)op->data = flags;
}

/* evq.h: a pool may be freed after its loop, and a buffer the caller
 * still holds may be released then (ASan checks that nothing touches the
 * freed loop). */
static int pool_outlives_loop(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_op op = { 0 };
	struct evq_pool *pool;
	unsigned flags = 0;
	int sv[2];

	ASSERT_NOTNULL(loop);
	ASSERT_OK(t_socketpair(sv));
	ASSERT_OK(evq_pool_new(loop, &pool, 2, 64));
	op.data = &flags;
	evq_prep_recv_pool(&op, sv[0], pool, 0);
	ASSERT_OK(evq_op_submit(loop, &op, 0, keep_buffer_cb));
	ASSERT_EQ(send(sv[1], "data", 4, 0), 4);
	while (evq_op_is_active(&op))
		ASSERT_GE(t_run_once(loop, 2000), 0);
	ASSERT_TRUE(flags & EVQ_OP_F_BUFFER);
	T_STEP("free the loop while a buffer is still held");
	ASSERT_OK(evq_loop_free(loop));
	ASSERT_EQ(memcmp(evq_pool_buf(pool, EVQ_OP_F_BUFID(flags)), "data", 4),
		  0);
	ASSERT_OK(evq_pool_release(pool, EVQ_OP_F_BUFID(flags)));
	ASSERT_ERR(evq_pool_release(pool, EVQ_OP_F_BUFID(flags)), -EINVAL);
	ASSERT_OK(evq_pool_free(pool));
	t_close2(sv);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(accept_1000_nonblocking_listener),
	T_CASE(accept_200_blocking_listener),
	T_CASE(recv_pool_100_sockets),
	T_CASE(eof_ends_multishot_recv),
	T_CASE(empty_pool_enobufs_keeps_data),
	T_CASE(multishot_last_call_carries_data),
	T_CASE(read_pool_pipe_and_file),
	T_CASE(pool_validation),
	T_CASE(pool_release_errors),
	T_CASE(pool_free_busy),
	T_CASE(pool_outlives_loop),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
