/* SPDX-License-Identifier: MIT */
/*
 * evq-proxy - a TCP proxy on 127.0.0.1: every connection accepted on
 * LISTEN_PORT is joined to a new connection to HOST:PORT, bytes flowing
 * both ways. Written with evq's completion API: accept, connect, recv,
 * send, close.
 *
 *   evq-proxy LISTEN_PORT HOST:PORT     (LISTEN_PORT 0 picks a free port)
 *
 * It prints "listening on 127.0.0.1:PORT", and exits cleanly on SIGINT or
 * SIGTERM.
 *
 * What it teaches:
 *  - Backpressure by construction: each direction of a connection owns one
 *    buffer and one op at a time, a recv into it and then a send out of
 *    it. While the far side reads slowly the send takes long, no recv is
 *    armed meanwhile, and the kernel's socket buffers push back on the
 *    sender. Memory per connection is bounded: two buffers.
 *  - Half-close: EOF from one side becomes shutdown(SHUT_WR) on the other,
 *    so a client that says "that is all" still gets the whole answer.
 *  - Connect errors: reported on stderr with the address, and the client's
 *    connection is closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <evq.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)	/* per direction of a connection */

struct proxy;

/* One direction: read from `from`, write to `to`. */
struct pipe_dir {
	struct session *ss;
	struct evq_op op;	/* the recv, then the send: one at a time */
	int from, to;
	size_t len, off;	/* bytes in buf, bytes of them sent */
	bool busy;		/* op in flight */
	bool done;		/* EOF or error: this direction is finished */
	char buf[BUF_SIZE];
};

struct session {
	struct proxy *px;
	int client, upstream;
	struct evq_op connect, close_client, close_upstream;
	bool connecting, closing;
	unsigned closes;	/* close ops in flight */
	struct pipe_dir up, down;	/* client->upstream, upstream->client */
	struct session *next, *prev;
};

struct proxy {
	struct evq_loop *loop;
	int listen_fd;
	struct sockaddr_storage target;
	socklen_t target_len;
	const char *target_name;
	struct evq_op accept, close_listener;
	struct evq_signal sigint, sigterm;
	struct evq_timer accept_retry;
	bool stopping;
	struct session *sessions;
};

static void session_pump(struct session *ss);

static void on_dir(struct evq_loop *loop, struct evq_op *op, int res,
		   unsigned flags)
{
	struct pipe_dir *d = op->data;

	(void)loop, (void)flags;
	d->busy = false;
	if (d->len == 0) {		/* it was the recv */
		if (res > 0)
			d->len = (size_t)res;
		else
			d->done = true;	/* EOF (0) or an error */
		if (res == 0 && !d->ss->closing)
			shutdown(d->to, SHUT_WR);	/* pass the EOF on */
	} else if (res < 0) {		/* the send */
		d->done = true;
	} else {
		d->off += (size_t)res;
		if (d->off == d->len)
			d->len = d->off = 0;
	}
	session_pump(d->ss);
}

static void dir_pump(struct pipe_dir *d)
{
	struct evq_loop *loop = d->ss->px->loop;

	if (d->busy || d->done)
		return;
	if (d->len > 0)
		evq_prep_send(&d->op, d->to, d->buf + d->off, d->len - d->off,
			      0);
	else
		evq_prep_recv(&d->op, d->from, d->buf, sizeof(d->buf), 0);
	d->op.data = d;
	if (evq_op_submit(loop, &d->op, 0, on_dir) == 0)
		d->busy = true;
	else
		d->done = true;
}

static void on_session_closed(struct evq_loop *loop, struct evq_op *op,
			      int res, unsigned flags)
{
	struct session *ss = op->data;

	(void)loop, (void)res, (void)flags;
	ss->closes--;
	session_pump(ss);
}

static void close_fd(struct session *ss, struct evq_op *op, int *fd)
{
	if (*fd < 0)
		return;
	evq_prep_close(op, *fd);
	op->data = ss;
	if (evq_op_submit(ss->px->loop, op, 0, on_session_closed) == 0)
		ss->closes++;
	else
		close(*fd);
	*fd = -1;
}

static void session_pump(struct session *ss)
{
	struct proxy *px = ss->px;

	if (!ss->closing && !ss->connecting) {
		if (px->stopping)
			ss->up.done = ss->down.done = true;
		dir_pump(&ss->up);
		dir_pump(&ss->down);
		if (!(ss->up.done && ss->down.done))
			return;
		ss->closing = true;
	}
	if (!ss->closing)
		return;
	/* Both directions finished, or the connect failed: close both
	 * sockets (the close ops end any op still waiting on them), and
	 * free the session once nothing of it is in flight. */
	close_fd(ss, &ss->close_client, &ss->client);
	close_fd(ss, &ss->close_upstream, &ss->upstream);
	if (ss->closes || ss->up.busy || ss->down.busy || ss->connecting)
		return;
	if (ss->prev)
		ss->prev->next = ss->next;
	else
		px->sessions = ss->next;
	if (ss->next)
		ss->next->prev = ss->prev;
	free(ss);
}

static void on_connect(struct evq_loop *loop, struct evq_op *op, int res,
		       unsigned flags)
{
	struct session *ss = op->data;

	(void)loop, (void)flags;
	ss->connecting = false;
	if (res < 0) {
		if (res != -ECANCELED)
			fprintf(stderr, "evq-proxy: connect %s: %s\n",
				ss->px->target_name, strerror(-res));
		ss->closing = true;
	}
	session_pump(ss);
}

static void dir_init(struct pipe_dir *d, struct session *ss, int from, int to)
{
	memset(d, 0, offsetof(struct pipe_dir, buf));
	d->ss = ss;
	d->from = from;
	d->to = to;
}

static void session_new(struct proxy *px, int client)
{
	struct session *ss = malloc(sizeof(*ss));
	int fd = socket(px->target.ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (!ss || fd < 0) {
		fprintf(stderr, "evq-proxy: %s\n", strerror(errno));
		free(ss);
		close(client);
		if (fd >= 0)
			close(fd);
		return;
	}
	/* Not calloc: the buffers are written by recv before they are read,
	 * and an idle session should not touch their pages. */
	memset(ss, 0, offsetof(struct session, up));
	ss->px = px;
	ss->client = client;
	ss->upstream = fd;
	dir_init(&ss->up, ss, client, fd);
	dir_init(&ss->down, ss, fd, client);
	ss->next = px->sessions;
	ss->prev = NULL;
	if (px->sessions)
		px->sessions->prev = ss;
	px->sessions = ss;
	evq_prep_connect(&ss->connect, fd, (struct sockaddr *)&px->target,
			 px->target_len);
	ss->connect.data = ss;
	if (evq_op_submit(px->loop, &ss->connect, 0, on_connect) == 0)
		ss->connecting = true;
	else
		ss->closing = true;
	session_pump(ss);
}

static void accept_arm(struct proxy *px);

static void on_accept_retry(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	accept_arm(t->data);
}

static void on_accept(struct evq_loop *loop, struct evq_op *op, int res,
		      unsigned flags)
{
	struct proxy *px = op->data;

	(void)loop;
	if (res >= 0) {
		if (px->stopping)
			close(res);
		else
			session_new(px, res);
	} else if (res != -ECANCELED) {
		fprintf(stderr, "evq-proxy: accept: %s\n", strerror(-res));
	}
	if (!(flags & EVQ_OP_F_MORE) && !px->stopping) {
		/* Out of fds: try again in 100 ms rather than spin. */
		if (res == -EMFILE || res == -ENFILE)
			evq_timer_start(loop, &px->accept_retry, 100000000, 0,
					on_accept_retry);
		else
			accept_arm(px);
	}
}

static void accept_arm(struct proxy *px)
{
	evq_prep_accept(&px->accept, px->listen_fd, NULL, NULL,
			SOCK_NONBLOCK | SOCK_CLOEXEC);
	px->accept.data = px;
	evq_op_submit(px->loop, &px->accept, EVQ_OP_MULTISHOT, on_accept);
}

static void on_listener_closed(struct evq_loop *loop, struct evq_op *op,
			       int res, unsigned flags)
{
	(void)loop, (void)op, (void)res, (void)flags;
}

static void on_signal(struct evq_loop *loop, struct evq_signal *sig)
{
	struct proxy *px = sig->data;
	struct session *ss, *next;

	px->stopping = true;
	evq_signal_stop(&px->sigint);
	evq_signal_stop(&px->sigterm);
	evq_timer_stop(&px->accept_retry);
	evq_prep_close(&px->close_listener, px->listen_fd);
	evq_op_submit(loop, &px->close_listener, 0, on_listener_closed);
	for (ss = px->sessions; ss; ss = next) {
		next = ss->next;
		ss->closing = true;	/* drop what is in transit */
		session_pump(ss);
	}
}

/* HOST:PORT -> px->target, resolved once at start (getaddrinfo blocks). */
static int resolve(struct proxy *px, const char *spec)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int ret;

	if (!colon || colon == spec || !colon[1] ||
	    (size_t)(colon - spec) >= sizeof(host))
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	ret = getaddrinfo(host, colon + 1, &hints, &ai);
	if (ret != 0) {
		fprintf(stderr, "evq-proxy: %s: %s\n", spec, gai_strerror(ret));
		return -2;
	}
	memcpy(&px->target, ai->ai_addr, ai->ai_addrlen);
	px->target_len = ai->ai_addrlen;
	px->target_name = spec;
	freeaddrinfo(ai);
	return 0;
}

static int listen_on(long port)
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
	struct proxy px = { 0 };
	char *end;
	long port = -1;
	int ret = 0;

	if (argc == 3)
		port = strtol(argv[1], &end, 10);
	if (argc != 3 || !*argv[1] || *end || port < 0 || port > 65535 ||
	    (ret = resolve(&px, argv[2])) == -1) {
		fprintf(stderr, "usage: evq-proxy LISTEN_PORT HOST:PORT\n");
		return 2;
	}
	if (ret < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	ret = evq_loop_new(&px.loop, NULL);
	if (ret < 0) {
		fprintf(stderr, "evq-proxy: loop: %s\n", strerror(-ret));
		return 1;
	}
	px.listen_fd = listen_on(port);
	if (px.listen_fd < 0) {
		fprintf(stderr, "evq-proxy: 127.0.0.1:%ld: %s\n", port,
			strerror(errno));
		evq_loop_free(px.loop);
		return 1;
	}
	px.sigint.data = px.sigterm.data = px.accept_retry.data = &px;
	evq_signal_start(px.loop, &px.sigint, SIGINT, on_signal);
	evq_signal_start(px.loop, &px.sigterm, SIGTERM, on_signal);
	accept_arm(&px);

	ret = evq_loop_run(px.loop, EVQ_RUN_DEFAULT);	/* until stopped */
	if (ret < 0)
		fprintf(stderr, "evq-proxy: run: %s\n", strerror(-ret));
	evq_loop_free(px.loop);
	return ret < 0;
}
