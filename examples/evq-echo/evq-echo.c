/* SPDX-License-Identifier: MIT */
/*
 * evq-echo - a TCP echo server on 127.0.0.1, written with evq's completion
 * API alone: one multishot accept, one pooled multishot recv per
 * connection, and sends.
 *
 *   evq-echo [PORT]     (default 7000; 0 picks a free port)
 *
 * It prints "listening on 127.0.0.1:PORT" once it accepts, and exits
 * cleanly, everything freed, on SIGINT or SIGTERM.
 *
 * What it teaches:
 *  - A pool of buffers shared by every connection: an idle connection
 *    holds no buffer, only an armed recv. Data arrives in a buffer the
 *    pool picks; the buffer goes back to the pool once it was echoed.
 *  - Backpressure without losing a byte. A client that sends but does not
 *    read would otherwise take every buffer of the pool. Each connection
 *    may hold at most MAX_HELD buffers; at that point its recv is
 *    cancelled, and armed again once its sends caught up. When the pool is
 *    empty the recv ends with -ENOBUFS; the data waits in the socket and
 *    the connection is re-armed as buffers come back.
 *  - A multishot op's last call (no EVQ_OP_F_MORE) may still carry data:
 *    every call is handled the same way first, and only then is the end
 *    looked at.
 *  - Running out of fds: accept ends with -EMFILE; the server stops
 *    accepting (no busy loop) and starts again when a connection closes,
 *    or after a short timer when none is open.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <evq.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define POOL_BUFS 1024		/* buffers shared by all connections */
#define POOL_BUF_SIZE 4096
#define MAX_HELD 8		/* buffers one connection may hold */
#define ACCEPT_RETRY_NS 100000000ull	/* 100 ms, when out of fds */

struct conn;

struct server {
	struct evq_loop *loop;
	struct evq_pool *pool;
	int listen_fd;
	struct evq_op accept, close_listener;
	struct evq_timer accept_retry;
	struct evq_signal sigint, sigterm;
	bool accepting;		/* the accept op is armed */
	bool stopping;		/* a signal came: wind everything down */
	struct conn *conns;	/* every open connection */
	struct conn *starved;	/* connections waiting for pool buffers */
	/* Per pool buffer: its length and the next one in a send queue. The
	 * queues need no memory of their own. */
	unsigned buf_len[POOL_BUFS];
	int buf_next[POOL_BUFS];
};

struct conn {
	struct server *srv;
	int fd;
	struct evq_op recv, send, cancel, close;
	int q_head, q_tail;	/* pool buffer ids waiting to be sent, -1 */
	unsigned held;		/* buffers in the queue */
	size_t sent;		/* bytes of the head buffer already sent */
	bool reading;		/* the recv op is in flight */
	bool sending;		/* the send op is in flight */
	bool cancelling;	/* the cancel op is in flight */
	bool starved;		/* on srv->starved */
	bool done_reading;	/* EOF or an error: read no more */
	bool closing;		/* the close op was submitted */
	struct conn *next, *prev, *starved_next;
};

static void conn_pump(struct conn *c);
static void accept_arm(struct server *s);

/* Buffers came back to the pool: re-arm the connections it ran dry on. */
static void wake_starved(struct server *s)
{
	while (s->starved && evq_pool_available(s->pool) > 0) {
		struct conn *w = s->starved;

		s->starved = w->starved_next;
		w->starved = false;
		conn_pump(w);
	}
}

static void on_close(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned flags)
{
	struct conn *c = op->data;
	struct server *s = c->srv;

	(void)loop, (void)res, (void)flags;
	/* The close op ends the fd's other ops first; their last calls have
	 * all run by now, except on a backend that reports them after: wait
	 * for those in conn_pump, which frees the connection. */
	c->closing = true;
	c->fd = -1;
	conn_pump(c);
	/* An fd was freed: if accept stopped for lack of fds, resume it. */
	if (!s->accepting && !s->stopping)
		accept_arm(s);
}

static void conn_free(struct conn *c)
{
	struct server *s = c->srv;

	if (c->starved) {
		struct conn **pp = &s->starved;

		while (*pp != c)
			pp = &(*pp)->starved_next;
		*pp = c->starved_next;
	}
	while (c->q_head >= 0) {	/* buffers never sent back */
		int id = c->q_head;

		c->q_head = s->buf_next[id];
		evq_pool_release(s->pool, (unsigned)id);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	if (!s->stopping)
		wake_starved(s);
}

static void on_recv(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct conn *c = op->data;
	struct server *s = c->srv;

	(void)loop;
	/* Data first: the last call of a multishot op may carry some. */
	if ((flags & EVQ_OP_F_BUFFER) && res <= 0) {
		evq_pool_release(s->pool, EVQ_OP_F_BUFID(flags));
	} else if (flags & EVQ_OP_F_BUFFER) {
		int id = (int)EVQ_OP_F_BUFID(flags);

		s->buf_len[id] = (unsigned)res;
		s->buf_next[id] = -1;
		if (c->q_tail >= 0)
			s->buf_next[c->q_tail] = id;
		else
			c->q_head = id;
		c->q_tail = id;
		c->held++;
	}
	if (!(flags & EVQ_OP_F_MORE)) {
		c->reading = false;
		if (res == -ENOBUFS && !c->starved &&
		    evq_pool_available(s->pool) == 0) {
			/* The pool ran dry; the data is still in the socket. */
			c->starved = true;
			c->starved_next = s->starved;
			s->starved = c;
		} else if (res == 0 || (res < 0 && res != -ECANCELED &&
					res != -ENOBUFS)) {
			c->done_reading = true;	/* EOF or an error */
		}
	}
	conn_pump(c);
}

static void on_send(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct conn *c = op->data;
	struct server *s = c->srv;

	(void)loop, (void)flags;
	c->sending = false;
	if (res < 0) {			/* the peer is gone: drop the rest */
		c->done_reading = true;
		while (c->q_head >= 0) {
			int id = c->q_head;

			c->q_head = s->buf_next[id];
			evq_pool_release(s->pool, (unsigned)id);
			c->held--;
		}
		c->q_tail = -1;
	} else {
		c->sent += (size_t)res;
		if (c->sent == s->buf_len[c->q_head]) {
			int id = c->q_head;

			c->q_head = s->buf_next[id];
			if (c->q_head < 0)
				c->q_tail = -1;
			c->held--;
			c->sent = 0;
			evq_pool_release(s->pool, (unsigned)id);
		}
	}
	conn_pump(c);
	wake_starved(s);
}

static void on_cancel(struct evq_loop *loop, struct evq_op *op, int res,
		      unsigned flags)
{
	struct conn *c = op->data;

	(void)loop, (void)res, (void)flags;
	c->cancelling = false;
	conn_pump(c);
}

/* Decide what the connection does next; the one place that submits its
 * ops, and that frees it once nothing is in flight. */
static void conn_pump(struct conn *c)
{
	struct server *s = c->srv;
	struct evq_loop *loop = s->loop;

	if (c->closing) {
		if (c->fd < 0 && !c->reading && !c->sending && !c->cancelling)
			conn_free(c);
		return;
	}
	if (c->q_head >= 0 && !c->sending) {
		const char *buf = evq_pool_buf(s->pool, (unsigned)c->q_head);

		evq_prep_send(&c->send, c->fd, buf + c->sent,
			      s->buf_len[c->q_head] - c->sent, 0);
		c->send.data = c;
		if (evq_op_submit(loop, &c->send, 0, on_send) == 0)
			c->sending = true;
	}
	if (c->done_reading || s->stopping) {
		if (c->q_head < 0 && !c->sending) {
			evq_prep_close(&c->close, c->fd);
			c->close.data = c;
			if (evq_op_submit(loop, &c->close, 0, on_close) == 0)
				c->closing = true;
		}
		return;
	}
	if (c->held >= MAX_HELD) {
		/* Backpressure: stop reading until the sends catch up. */
		if (c->reading && !c->cancelling) {
			evq_prep_cancel(&c->cancel, &c->recv);
			c->cancel.data = c;
			if (evq_op_submit(loop, &c->cancel, 0, on_cancel) == 0)
				c->cancelling = true;
		}
		return;
	}
	if (!c->reading && !c->starved && !c->cancelling) {
		evq_prep_recv_pool(&c->recv, c->fd, s->pool, 0);
		c->recv.data = c;
		if (evq_op_submit(loop, &c->recv, EVQ_OP_MULTISHOT,
				  on_recv) == 0)
			c->reading = true;
	}
}

static void on_accept_retry(struct evq_loop *loop, struct evq_timer *t)
{
	struct server *s = t->data;

	(void)loop;
	if (!s->accepting && !s->stopping)
		accept_arm(s);
}

static void on_accept(struct evq_loop *loop, struct evq_op *op, int res,
		      unsigned flags)
{
	struct server *s = op->data;

	if (res >= 0) {
		struct conn *c = calloc(1, sizeof(*c));

		if (!c || s->stopping) {
			free(c);
			close(res);
		} else {
			c->srv = s;
			c->fd = res;
			c->q_head = c->q_tail = -1;
			c->next = s->conns;
			if (s->conns)
				s->conns->prev = c;
			s->conns = c;
			conn_pump(c);
		}
	}
	if (flags & EVQ_OP_F_MORE)
		return;
	s->accepting = false;
	if (s->stopping)
		return;
	if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS ||
	    res == -ENOMEM) {
		/* Out of fds: resume when a connection closes (on_close), or
		 * after a while if none is open to close. */
		if (!s->conns)
			evq_timer_start(loop, &s->accept_retry, ACCEPT_RETRY_NS,
					0, on_accept_retry);
		return;
	}
	accept_arm(s);	/* any other end: arm it again */
}

static void accept_arm(struct server *s)
{
	evq_timer_stop(&s->accept_retry);
	evq_prep_accept(&s->accept, s->listen_fd, NULL, NULL,
			SOCK_NONBLOCK | SOCK_CLOEXEC);
	s->accept.data = s;
	if (evq_op_submit(s->loop, &s->accept, EVQ_OP_MULTISHOT,
			  on_accept) == 0)
		s->accepting = true;
}

static void on_listener_closed(struct evq_loop *loop, struct evq_op *op,
			       int res, unsigned flags)
{
	(void)loop, (void)op, (void)res, (void)flags;
}

static void on_signal(struct evq_loop *loop, struct evq_signal *sig)
{
	struct server *s = sig->data;
	struct conn *c, *next;

	s->stopping = true;
	evq_signal_stop(&s->sigint);
	evq_signal_stop(&s->sigterm);
	evq_timer_stop(&s->accept_retry);
	/* Closing the listener through an op ends the accept op too. */
	evq_prep_close(&s->close_listener, s->listen_fd);
	evq_op_submit(loop, &s->close_listener, 0, on_listener_closed);
	for (c = s->starved; c; c = c->starved_next)
		c->starved = false;	/* nobody will re-arm them now */
	s->starved = NULL;
	for (c = s->conns; c; c = next) {
		next = c->next;
		conn_pump(c);	/* it closes once its sends are out */
	}
}

static int listen_on(int port)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(sa);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		close(fd);
		return -1;
	}
	printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
	fflush(stdout);
	return fd;
}

int main(int argc, char **argv)
{
	static struct server s;	/* big (per-buffer arrays): not on the stack */
	char *end;
	long port = 7000;
	int ret;

	if (argc > 2 || (argc == 2 && ((port = strtol(argv[1], &end, 10)) < 0 ||
				       port > 65535 || *end || !*argv[1]))) {
		fprintf(stderr, "usage: evq-echo [PORT]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	ret = evq_loop_new(&s.loop, NULL);
	if (ret < 0) {
		fprintf(stderr, "evq-echo: loop: %s\n", strerror(-ret));
		return 1;
	}
	ret = evq_pool_new(s.loop, &s.pool, POOL_BUFS, POOL_BUF_SIZE);
	if (ret < 0) {
		fprintf(stderr, "evq-echo: pool: %s\n", strerror(-ret));
		evq_loop_free(s.loop);
		return 1;
	}
	s.listen_fd = listen_on((int)port);
	if (s.listen_fd < 0) {
		fprintf(stderr, "evq-echo: 127.0.0.1:%ld: %s\n", port,
			strerror(errno));
		evq_pool_free(s.pool);
		evq_loop_free(s.loop);
		return 1;
	}
	s.sigint.data = s.sigterm.data = s.accept_retry.data = &s;
	evq_signal_start(s.loop, &s.sigint, SIGINT, on_signal);
	evq_signal_start(s.loop, &s.sigterm, SIGTERM, on_signal);
	accept_arm(&s);

	ret = evq_loop_run(s.loop, EVQ_RUN_DEFAULT);	/* until stopped */
	if (ret < 0)
		fprintf(stderr, "evq-echo: run: %s\n", strerror(-ret));
	evq_pool_free(s.pool);
	evq_loop_free(s.loop);
	return ret < 0;
}
