/* SPDX-License-Identifier: MIT */
/*
 * workload_echo.c - a TCP echo server over 127.0.0.1, driven by one shared
 * load client: echo-1, echo-64, echo-1000 (connections).
 *
 * The server is the contender. It runs in its own thread and makes its
 * own loop there. Readiness contenders run the generic
 * server below, written once against io_new: a read watcher on the
 * listening socket accepts until EAGAIN, a read watcher per connection
 * recv()s what is there and send()s it back. Completion contenders bring
 * their own server (bench_contender.echo_serve: evq-*-ops, raw-uring-ops),
 * built from accept, recv and send ops.
 *
 * The client is the same code for every contender: this thread, with N
 * blocking-connected, then non-blocking, TCP_NODELAY
 * sockets in a level-triggered epoll set. It keeps exactly one 64-byte
 * request in flight per connection: when a connection's response is
 * complete it is compared byte for byte with the request (each request's
 * bytes are a hash of the connection and its sequence number, so a
 * response sent on the wrong connection or out of order fails), and the
 * next request goes out. A run is: connect, one untimed request per
 * connection (all N are being served), then requests for warm_ms untimed
 * and sample_ms timed (by default 250 ms and 1 s: about 100 requests per
 * connection at 1,000 connections, where a fixed count of 10,000 requests
 * was only 10 and its figures spread by 43-109%), then the requests still
 * in flight are answered and checked but not counted. Every phase is
 * bounded in time (ECHO_WARM_S, ECHO_DRAIN_S past the window), past which
 * the run fails. At the end the client resets its connections (SO_LINGER
 * 0: no TIME_WAIT pile-up over hundreds of runs) and the server, having
 * seen all N end, returns.
 *
 * Where they run: the client and the server share one CPU (CPU 1), each
 * pinned to it. Given a CPU each (CPU 0 and 1: EVQ_BENCH_ECHO_CPUS=2),
 * they touch the same sockets at the same time from two CPUs, and the
 * kernel's part of a request (the TCP send and the loopback delivery into
 * the other side's socket, which the sender runs) then costs what moving
 * those cache lines between the two vCPUs costs: on this project's VM
 * both sides' CPU per request went from 5.3 to 7.2 us and back between
 * runs (echo-64, evq-epoll, same code, both CPUs busy with the bench
 * only), with the hypervisor's placement of the vCPUs, which a guest
 * cannot see. On one CPU the scheduler alternates them; each wakeup of
 * the server finds what the client sent meanwhile, no cache line moves
 * between CPUs, and the same runs agreed within 2%.
 *
 * With one request in flight per connection, the server never has more
 * than 64 bytes to send on a socket, so send() cannot be short: the
 * generic server treats a short send as a failure instead of carrying a
 * write watcher.
 *
 * Measured over the timed window: the CPU time of every thread but the
 * client's (the server thread, and io_uring workers if any;
 * /proc/self/task/N/schedstat, in ns) per request, the primary figure;
 * in the syscall pass, the server thread's syscalls per request; and
 * requests/s (wall clock). The client and the server share a CPU, so
 * requests/s is bounded by both together (and by whatever else runs
 * there) and does not separate the servers; the server's CPU and
 * syscalls per request do.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define ECHO_MSG 64
#define ECHO_WARM_S 10		/* bound on connect + the untimed round */
#define ECHO_DRAIN_S 10		/* bound on the last responses, past the
				 * timed window */
#define ECHO_JOIN_S 10		/* bound on the server's exit */
#define CLIENT_CPU 0		/* with EVQ_BENCH_ECHO_CPUS=2 only */
#define SERVER_CPU 1

/* ------------------------------------------------------------------------
 * The generic readiness server
 * ------------------------------------------------------------------------ */

struct rs;

struct rs_conn {
	struct rs *s;
	int fd;
	void *io;
	bool ended;
};

struct rs {
	const struct bench_contender *c;
	const struct bench_echo_cfg *cfg;
	void *loop;
	void *lio;
	bool lio_on;
	struct rs_conn *conns;
	unsigned nconn, accepted, ended;
	bool failed;
	char buf[16384];
};

static void rs_fail(struct rs *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->failed) {
		va_start(ap, fmt);
		vsnprintf(s->cfg->err, s->cfg->errlen, fmt, ap);
		va_end(ap);
	}
	s->failed = true;
	s->c->break_loop(s->loop);
}

static void rs_conn_cb(void *arg)
{
	struct rs_conn *cn = arg;
	struct rs *s = cn->s;
	ssize_t r = recv(cn->fd, s->buf, sizeof(s->buf), 0);

	if (r > 0) {
		ssize_t w = send(cn->fd, s->buf, (size_t)r, MSG_NOSIGNAL);

		if (w != r)
			rs_fail(s, "send: %zd of %zd bytes (%s)", w, r,
				w < 0 ? strerror(errno) : "short");
		return;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;	/* a spurious wakeup: harmless here */
	if (r == 0 || errno == ECONNRESET) {
		/* The fd stays open until the loop is gone: closing it
		 * under a stopped watcher is not something every library
		 * takes well. */
		int e = s->c->io_stop(cn->io);

		if (e < 0) {
			rs_fail(s, "io_stop: %s", strerror(-e));
			return;
		}
		cn->ended = true;
		if (++s->ended == s->nconn)
			s->c->break_loop(s->loop);
		return;
	}
	rs_fail(s, "recv: %s", strerror(errno));
}

static void rs_accept_cb(void *arg)
{
	struct rs *s = arg;

	for (;;) {
		int fd = accept4(s->cfg->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct rs_conn *cn;
		int e;

		if (fd < 0) {
			if (errno == EAGAIN || errno == ECONNABORTED ||
			    errno == EINTR)
				return;
			rs_fail(s, "accept4: %s after %u of %u connections",
				strerror(errno), s->accepted, s->nconn);
			return;
		}
		if (s->accepted == s->nconn) {
			close(fd);
			rs_fail(s, "more connections than the %u expected",
				s->nconn);
			return;
		}
		cn = &s->conns[s->accepted++];
		cn->s = s;
		cn->fd = fd;
		if ((e = s->c->io_new(s->loop, fd, rs_conn_cb, cn, &cn->io)) <
		    0) {
			cn->io = NULL;
			rs_fail(s, "io_new: %s", strerror(-e));
			return;
		}
		if (s->accepted == s->nconn) {
			/* All here: nothing more to wait for. */
			if ((e = s->c->io_stop(s->lio)) < 0) {
				rs_fail(s, "io_stop: %s", strerror(-e));
				return;
			}
			s->lio_on = false;
			return;
		}
	}
}

static int rs_serve(const struct bench_contender *c,
		    const struct bench_echo_cfg *cfg)
{
	struct rs *s = calloc(1, sizeof(*s));
	int e, ret = -1;

	if (s == NULL) {
		snprintf(cfg->err, cfg->errlen, "out of memory");
		return -1;
	}
	s->c = c;
	s->cfg = cfg;
	s->nconn = cfg->nconn;
	s->conns = calloc(cfg->nconn, sizeof(*s->conns));
	if (s->conns == NULL) {
		snprintf(cfg->err, cfg->errlen, "out of memory");
		goto out;
	}
	if ((e = c->loop_new(c, &s->loop)) < 0) {
		snprintf(cfg->err, cfg->errlen, "loop_new: %s", strerror(-e));
		s->loop = NULL;
		goto out;
	}
	if ((e = c->io_new(s->loop, cfg->listen_fd, rs_accept_cb, s,
			   &s->lio)) < 0) {
		snprintf(cfg->err, cfg->errlen, "io_new: %s", strerror(-e));
		s->lio = NULL;
		goto out;
	}
	s->lio_on = true;
	e = c->run(s->loop, 0);
	if (e < 0)
		rs_fail(s, "run: %s", strerror(-e));
	else if (!s->failed && s->ended != s->nconn)
		rs_fail(s, "the loop ended with %u of %u connections ended",
			s->ended, s->nconn);
	ret = s->failed ? -1 : 0;
out:
	for (unsigned i = 0; i < s->accepted; i++) {
		if (s->conns[i].io != NULL)
			c->io_free(s->conns[i].io);
		close(s->conns[i].fd);
	}
	if (s->lio != NULL)
		c->io_free(s->lio);
	if (s->loop != NULL)
		c->loop_free(s->loop);
	free(s->conns);
	free(s);
	return ret;
}

/* ------------------------------------------------------------------------
 * The server thread
 * ------------------------------------------------------------------------ */

struct srv_thread {
	const struct bench_contender *c;
	struct bench_echo_cfg cfg;
	char err[200];
	atomic_int tid;		/* 0 until the thread runs */
	atomic_int exited;
	int ret;
};

static void *srv_main(void *arg)
{
	struct srv_thread *st = arg;
	const struct bench_contender *c = st->c;

	atomic_store(&st->tid, (int)bench_gettid());
	st->ret = c->echo_serve ? c->echo_serve(c, &st->cfg)
				: rs_serve(c, &st->cfg);
	atomic_store(&st->exited, 1);
	return NULL;
}

/* ------------------------------------------------------------------------
 * The client
 * ------------------------------------------------------------------------ */

struct ec_conn {
	int fd;
	uint32_t seq;		/* of the request in flight */
	uint32_t got;		/* bytes of its response so far */
	uint8_t buf[ECHO_MSG];
};

struct ec {
	struct ec_conn *conns;
	unsigned n;
	int epfd;
	struct srv_thread *st;
	char *err;
	size_t errlen;
};

/* The request's bytes: a hash of (connection, sequence number). */
static void fill(uint8_t *buf, unsigned conn, uint32_t seq)
{
	uint64_t x = ((uint64_t)conn << 32 | seq) * 0x9E3779B97F4A7C15ull;

	for (int i = 0; i < ECHO_MSG; i += 8) {
		x += 0x9E3779B97F4A7C15ull;
		x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
		x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
		x ^= x >> 31;
		memcpy(buf + i, &x, 8);
	}
}

static int ec_fail(struct ec *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->err, e->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int ec_send(struct ec *e, unsigned i)
{
	struct ec_conn *cn = &e->conns[i];
	uint8_t req[ECHO_MSG];
	ssize_t w;

	fill(req, i, cn->seq);
	w = send(cn->fd, req, sizeof(req), MSG_NOSIGNAL);
	if (w != (ssize_t)sizeof(req))
		return ec_fail(e, "client send on connection %u: %s", i,
			       w < 0 ? strerror(errno) : "short");
	return 0;
}

/* What the timed window of a run saw (ec_run). */
struct ec_window {
	uint64_t t0, t1;		/* ns, monotonic */
	uint64_t done0, done1;		/* responses completed by then */
	uint64_t sys0, sys1;		/* the server's syscall counter */
	struct bench_task_cpu *cpu0, *cpu1;
	int sysfd;			/* or -1 */
	pid_t me;
};

static void ec_mark(struct ec *e, struct ec_window *w, int end, uint64_t now,
		    uint64_t done)
{
	(void)e;
	if (!end) {
		if (w->sysfd >= 0)
			w->sys0 = bench_sysc_read(w->sysfd);
		bench_cpu_others(w->me, w->cpu0);
		w->t0 = now;
		w->done0 = done;
	} else {
		w->t1 = bench_now_ns();
		bench_cpu_others(w->me, w->cpu1);
		if (w->sysfd >= 0)
			w->sys1 = bench_sysc_read(w->sysfd);
		w->done1 = done;
	}
}

/* Keep one request in flight on every connection and check each response,
 * from now until timed_end; the window [warm_end, timed_end) is measured
 * (w; NULL: untimed), then the requests still in flight are drained, not
 * counted. All of it by deadline (ns, monotonic), past which it fails. */
static int ec_phase(struct ec *e, uint64_t warm_end, uint64_t timed_end,
		    uint64_t deadline, struct ec_window *w)
{
	struct epoll_event evs[256];
	uint64_t done = 0, inflight = 0, opened_at = 0;
	bool timing = false, closed = false;

	for (unsigned i = 0; i < e->n; i++, inflight++)
		if (ec_send(e, i) < 0)
			return -1;
	while (inflight > 0) {
		int k = epoll_wait(e->epfd, evs, 256, 20);
		uint64_t now = bench_now_ns();

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return ec_fail(e, "epoll_wait: %s", strerror(errno));
		}
		if (now > deadline) {
			unsigned partial = 0;

			for (unsigned i = 0; i < e->n; i++)
				partial += e->conns[i].got != 0;
			return ec_fail(e, "timed out: %llu responses, %llu "
					  "still due (%u with some of its "
					  "bytes)", (unsigned long long)done,
				       (unsigned long long)inflight, partial);
		}
		if (k == 0 && atomic_load(&e->st->exited))
			return ec_fail(e, "the server quit: %s",
				       e->st->err[0] ? e->st->err : "?");
		if (!timing && now >= warm_end) {
			timing = true;
			opened_at = done;
			if (w != NULL)
				ec_mark(e, w, 0, now, done);
		}
		/* A window holds at least one response: on a busy machine
		 * one wakeup can come after both marks. */
		if (timing && !closed && now >= timed_end &&
		    (done > opened_at || w == NULL)) {
			closed = true;	/* no new requests from here */
			if (w != NULL)
				ec_mark(e, w, 1, now, done);
		}
		for (int j = 0; j < k; j++) {
			unsigned i = evs[j].data.u32;
			struct ec_conn *cn = &e->conns[i];
			uint8_t want[ECHO_MSG];
			ssize_t r = read(cn->fd, cn->buf + cn->got,
					 ECHO_MSG - cn->got);

			if (r <= 0) {
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				return ec_fail(e, "connection %u: %s", i,
					       r == 0 ? "closed by the server"
						      : strerror(errno));
			}
			cn->got += (uint32_t)r;
			if (cn->got < ECHO_MSG)
				continue;
			fill(want, i, cn->seq);
			if (memcmp(want, cn->buf, ECHO_MSG) != 0)
				return ec_fail(e, "connection %u, request %u: "
						  "the response differs from "
						  "the request", i, cn->seq);
			cn->got = 0;
			cn->seq++;
			done++;
			inflight--;
			if (!closed) {
				if (ec_send(e, i) < 0)
					return -1;
				inflight++;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * A run
 * ------------------------------------------------------------------------ */

static int listen_socket(int backlog, char *err, size_t errlen,
			 struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 ||
	    listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
		snprintf(err, errlen, "bind/listen on 127.0.0.1: %s",
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int fcntl_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int connect_one(const struct sockaddr_in *addr)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	/* Blocking: the kernel completes the handshake against the
	 * listen backlog whether or not the server has accepted yet. */
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    fcntl_nonblock(fd) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* A CPU each for the client and the server (EVQ_BENCH_ECHO_CPUS=2), or
 * (the default) one CPU for both: see the top of this file. */
static int split_cpus(void)
{
	const char *v = getenv("EVQ_BENCH_ECHO_CPUS");

	return v != NULL && strcmp(v, "2") == 0;
}

/* Can the CPUs of the layout be had (allowed here; not under --cpu K)? */
static int can_pin(void)
{
	cpu_set_t allowed;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		return 0;
	return CPU_ISSET(SERVER_CPU, &allowed) &&
	       (!split_cpus() || CPU_ISSET(CLIENT_CPU, &allowed));
}

/* Pin the calling thread to cpu; keep its old mask in old. */
static void pin_self(int cpu, cpu_set_t *old)
{
	cpu_set_t set;

	pthread_getaffinity_np(pthread_self(), sizeof(*old), old);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* Reset (SO_LINGER 0) and close every client connection. */
static void ec_close_all(struct ec *e)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	for (unsigned i = 0; i < e->n; i++) {
		if (e->conns[i].fd < 0)
			continue;
		setsockopt(e->conns[i].fd, SOL_SOCKET, SO_LINGER, &lg,
			   sizeof(lg));
		close(e->conns[i].fd);
		e->conns[i].fd = -1;
	}
}

static int echo_run(const struct bench_workload *wl,
		    const struct bench_contender *c,
		    const struct bench_params *p, struct bench_sample *out,
		    char *err, size_t errlen)
{
	unsigned n = wl->param;
	struct ec_window w = { .sysfd = -1 };
	struct srv_thread *st = calloc(1, sizeof(*st));
	struct ec e = { .n = n, .epfd = -1, .st = st, .err = err,
			.errlen = errlen };
	struct bench_task_cpu *cpu0 = malloc(sizeof(*cpu0));
	struct bench_task_cpu *cpu1 = malloc(sizeof(*cpu1));
	struct sockaddr_in addr;
	pthread_attr_t attr;
	pthread_t thr;
	cpu_set_t old_mask, set;
	int lfd = -1, started = 0, pinned = 0, ret = -1;
	int pin = can_pin();
	uint64_t deadline, start, requests;

	e.conns = calloc(n, sizeof(*e.conns));
	if (st == NULL || e.conns == NULL || cpu0 == NULL || cpu1 == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < n; i++)
		e.conns[i].fd = -1;
	if (bench_raise_nofile(2 * (rlim_t)n + 64) < 0) {
		snprintf(err, errlen, "cannot run: %u connections need %u fds, "
			 "more than RLIMIT_NOFILE allows", n, 2 * n + 64);
		ret = BENCH_CANNOT;
		goto out;
	}
	if ((lfd = listen_socket((int)n + 16, err, errlen, &addr)) < 0)
		goto out;
	if ((e.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		goto out;
	}

	/* The server thread on CPU 1; this one, the client, on CPU 1 too,
	 * or on CPU 0 with EVQ_BENCH_ECHO_CPUS=2. */
	st->c = c;
	st->cfg = (struct bench_echo_cfg){ .listen_fd = lfd, .nconn = n,
					   .err = st->err,
					   .errlen = sizeof(st->err) };
	pthread_attr_init(&attr);
	if (pin) {
		CPU_ZERO(&set);
		CPU_SET(SERVER_CPU, &set);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		pin_self(split_cpus() ? CLIENT_CPU : SERVER_CPU, &old_mask);
		pinned = 1;
	}
	if (pthread_create(&thr, &attr, srv_main, st) != 0) {
		pthread_attr_destroy(&attr);
		snprintf(err, errlen, "pthread_create failed");
		goto out;
	}
	pthread_attr_destroy(&attr);
	pthread_setname_np(thr, "echo-server");	/* for top, perf */
	started = 1;

	deadline = bench_now_ns() + ECHO_WARM_S * 1000000000ull;
	for (unsigned i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

		if ((e.conns[i].fd = connect_one(&addr)) < 0 ||
		    epoll_ctl(e.epfd, EPOLL_CTL_ADD, e.conns[i].fd, &ev) < 0) {
			snprintf(err, errlen, "connection %u: %s", i,
				 strerror(errno));
			goto out;
		}
	}
	/* Untimed: one request per connection, so all n are served. */
	if (ec_phase(&e, 0, 0, deadline, NULL) < 0)
		goto out;

	/* warm_ms of untimed requests, then sample_ms timed; the window
	 * opens and closes at the first wakeup past each mark. */
	w.me = bench_gettid();
	w.cpu0 = cpu0;
	w.cpu1 = cpu1;
	if (p->count_syscalls)
		w.sysfd = bench_sysc_open(atomic_load(&st->tid));
	start = bench_now_ns();
	if (ec_phase(&e, start + p->warm_ms * 1000000ull,
		     start + (p->warm_ms + p->sample_ms) * 1000000ull,
		     start + (p->warm_ms + p->sample_ms) * 1000000ull +
			     ECHO_DRAIN_S * 1000000000ull, &w) < 0)
		goto out;
	requests = w.done1 - w.done0;
	if (requests == 0) {
		snprintf(err, errlen, "no response in the %llu ms window",
			 (unsigned long long)p->sample_ms);
		goto out;
	}

	/* Nothing more may come. */
	for (unsigned i = 0; i < n; i++) {
		char ch;
		ssize_t r = recv(e.conns[i].fd, &ch, 1, MSG_DONTWAIT);

		if (r >= 0 || errno != EAGAIN) {
			snprintf(err, errlen, "connection %u: %s after the "
				 "last response", i,
				 r > 0 ? "more bytes"
				       : r == 0 ? "EOF" : strerror(errno));
			goto out;
		}
	}
	out->value = (double)requests * 1e9 / (double)(w.t1 - w.t0);
	out->cpu = (double)bench_cpu_others_delta(cpu0, cpu1) / 1e3 /
		   (double)requests;
	out->extra[0] = (double)requests / n;
	if (w.sysfd >= 0)
		out->sys = (double)(w.sys1 - w.sys0) / (double)requests;
	ret = 0;
out:
	if (w.sysfd >= 0)
		bench_sysc_close(w.sysfd);
	if (started) {
		struct timespec ts;

		/* Make the server return: reset the connections it has;
		 * shutting the listening socket down fails the accepts it
		 * still waits for, if the client gave up early. */
		ec_close_all(&e);
		if (ret != 0)
			shutdown(lfd, SHUT_RDWR);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ECHO_JOIN_S;
		if (pthread_timedjoin_np(thr, NULL, &ts) != 0) {
			fprintf(stderr, "\nevq-bench: %s: the echo server did "
				"not return %d s after the client closed its "
				"connections; giving up\n", c->name,
				ECHO_JOIN_S);
			_exit(3);
		}
		if (ret == 0 && st->ret != 0) {
			snprintf(err, errlen, "server: %s", st->err);
			ret = -1;
		} else if (ret == -1 && st->ret != 0 && st->err[0]) {
			size_t len = strlen(err);

			snprintf(err + len, errlen - len, " (server: %s)",
				 st->err);
		}
	}
	ec_close_all(&e);
	if (pinned)
		pthread_setaffinity_np(pthread_self(), sizeof(old_mask),
				       &old_mask);
	if (e.epfd >= 0)
		close(e.epfd);
	if (lfd >= 0)
		close(lfd);
	free(e.conns);
	free(cpu0);
	free(cpu1);
	free(st);
	return ret;
}

static void echo_describe(const struct bench_workload *wl,
			  const struct bench_params *p, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%u connection%s, 64-byte requests; a "
			 "run: %llu ms untimed, then %llu ms timed; ",
			 wl->param, wl->param == 1 ? "" : "s",
			 (unsigned long long)p->warm_ms,
			 (unsigned long long)p->sample_ms);

	if (n < 0 || (size_t)n >= len)
		return;
	if (!can_pin())
		snprintf(buf + n, len - (size_t)n,
			 "server and client not pinned (CPU %d%s not "
			 "allowed)", SERVER_CPU,
			 split_cpus() ? " or 0" : " is");
	else if (split_cpus())
		snprintf(buf + n, len - (size_t)n,
			 "server on CPU %d, client on CPU %d "
			 "(EVQ_BENCH_ECHO_CPUS=2)", SERVER_CPU, CLIENT_CPU);
	else
		snprintf(buf + n, len - (size_t)n,
			 "server and client both on CPU %d", SERVER_CPU);
}

#define ECHO_WORKLOAD(sym, n, opt)                                           \
	const struct bench_workload sym = {                                  \
		.name = "echo-" #n,                                          \
		.title = "TCP echo on 127.0.0.1, " #n " connection(s), one " \
			 "64-byte request in flight on each",                \
		.unit = "req/s",                                             \
		.cpu_unit = "srv us/req",                                    \
		.primary_cpu = 1,                                            \
		.extra_unit = { "req/conn" },                                \
		.sys_unit = "srv sys/req",                                   \
		.legend = "srv us/req: CPU time of the server's threads "    \
			  "over the timed window per request, the client "  \
			  "not counted; srv sys/req: the server thread's "   \
			  "syscalls per request; req/conn: requests per "    \
			  "connection in the timed window",                  \
		.na_why = "no fd watchers and no echo server",             \
		.higher_is_better = 1,                                       \
		.param = n,                                                  \
		.models = BENCH_MODEL_IO | BENCH_MODEL_OPS,                  \
		.optional = opt,                                             \
		.run = echo_run,                                             \
		.describe = echo_describe,                                   \
	}

/* echo-1 is latency-bound (one round trip at a time), so a run takes
 * several times longer than echo-64's: not in the default set. */
ECHO_WORKLOAD(bench_workload_echo1, 1, 1);
ECHO_WORKLOAD(bench_workload_echo64, 64, 0);
ECHO_WORKLOAD(bench_workload_echo1000, 1000, 0);
