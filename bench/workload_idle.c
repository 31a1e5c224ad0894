/* SPDX-License-Identifier: MIT */
/*
 * workload_idle.c - what an idle TCP connection costs a server: idle-5000
 * (5,000 connections, in the default set) and idle-max (as many as
 * RLIMIT_NOFILE allows, read at run time: `--full`).
 *
 * The server runs in a thread of this process, as in echo-*; the client
 * side of the connections lives in child processes (at most IDLE_PER_CHILD
 * connections each, from source addresses 127.0.0.2, .3, ... so that no
 * one address runs out of ephemeral ports), so that neither their fds nor
 * their memory count against the server. A run:
 *
 * 1. the server makes its loop and, for a pooled server, its shared pool
 *    (touched whole), and says it is ready; RSS then is the baseline;
 * 2. the clients connect; the server accepts each and arms a read on it:
 *    a pooled multishot recv (evq-*-ops, idle_serve in
 *    contender_evq_ops.c: no buffer is tied to a connection until data
 *    comes), or a read watcher with a read buffer of IDLE_BUF bytes per
 *    connection, as a server that keeps one per reading connection holds
 *    (the generic readiness server below: raw-epoll, libev, libuv,
 *    libevent, tevent, evq's readiness API). Every connection's own
 *    memory comes from malloc, as it would in a server;
 * 3. once all are armed: RSS again. (RSS - baseline) / connections is the
 *    figure, in bytes per idle connection, with the library's share beside
 *    it (the read buffers held taken out);
 * 4. a trickle of IDLE_MSGS 64-byte messages, each on a random connection,
 *    one at a time per client process, each echoed and checked: the
 *    server's CPU (every thread but this one, as in echo-*) and, in the
 *    syscall pass, its syscalls per message; RSS again after it;
 * 5. the clients reset their connections and exit; the server returns.
 *
 * RSS is /proc/self/statm's resident pages: user-space memory that has
 * been touched. Socket buffers and other kernel memory are not in it.
 * Every run is made in a fresh evq-bench process (bench_run_in_child):
 * memory that earlier runs freed stays resident in malloc's arenas, and a
 * run in the same process would reuse it without RSS growing (observed:
 * from 0 to 4,208 bytes per connection for the same server);
 * malloc_trim() does not give back a thread arena's top.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define IDLE_BUF 4096		/* readiness server: read buffer per conn */
#define IDLE_POOL_BUFS 256	/* pooled server: shared pool */
#define IDLE_POOL_SIZE 2048
#define IDLE_MSG 64
#define IDLE_MSGS 2000		/* the trickle, all clients together */
#define IDLE_PER_CHILD 6000	/* client connections per process */
#define IDLE_MAX_CHILDREN 16
#define IDLE_SPARE_FDS 2000	/* idle-max leaves these to the server's
				 * loop, pools, threads and the rest */
#define IDLE_STEP_S 60		/* bound on each step of a run */

/* ------------------------------------------------------------------------
 * The generic readiness server: a watcher and a buffer per connection
 * ------------------------------------------------------------------------ */

struct is;

struct is_conn {
	struct is *s;
	int fd;
	void *io;
	char *buf;		/* IDLE_BUF bytes, this connection's */
};

struct is {
	const struct bench_contender *c;
	struct bench_idle_cfg *cfg;
	void *loop, *lio;
	struct is_conn **conns;	/* the bench's table, touched before ready */
	unsigned accepted, ended;
	bool failed;
};

static void is_fail(struct is *s, const char *fmt, ...)
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

static void is_conn_cb(void *arg)
{
	struct is_conn *cn = arg;
	struct is *s = cn->s;
	ssize_t r = recv(cn->fd, cn->buf, IDLE_BUF, 0);

	if (r > 0) {
		/* counted before the reply goes: the client may see it
		 * before this thread runs again */
		atomic_fetch_add_explicit(&s->cfg->msgs, 1,
					  memory_order_release);
		if (send(cn->fd, cn->buf, (size_t)r, MSG_NOSIGNAL) != r)
			is_fail(s, "send: %s", strerror(errno));
		return;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r == 0 || errno == ECONNRESET) {
		int e = s->c->io_stop(cn->io);

		if (e < 0) {
			is_fail(s, "io_stop: %s", strerror(-e));
			return;
		}
		if (++s->ended == s->cfg->nconn)
			s->c->break_loop(s->loop);
		return;
	}
	is_fail(s, "recv: %s", strerror(errno));
}

static void is_accept_cb(void *arg)
{
	struct is *s = arg;

	for (;;) {
		int fd = accept4(s->cfg->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct is_conn *cn;
		int e;

		if (fd < 0) {
			if (errno == EAGAIN || errno == ECONNABORTED ||
			    errno == EINTR)
				return;
			is_fail(s, "accept4: %s after %u connections",
				strerror(errno), s->accepted);
			return;
		}
		if (s->accepted == s->cfg->nconn) {
			close(fd);
			is_fail(s, "more connections than expected");
			return;
		}
		cn = malloc(sizeof(*cn));
		if (cn != NULL)
			cn->buf = malloc(IDLE_BUF);
		if (cn == NULL || cn->buf == NULL) {
			free(cn);
			close(fd);
			is_fail(s, "out of memory");
			return;
		}
		cn->buf[0] = 0;	/* a server's buffer has been used */
		cn->s = s;
		cn->fd = fd;
		s->conns[s->accepted++] = cn;
		if ((e = s->c->io_new(s->loop, fd, is_conn_cb, cn, &cn->io)) <
		    0) {
			cn->io = NULL;
			is_fail(s, "io_new: %s", strerror(-e));
			return;
		}
		atomic_fetch_add_explicit(&s->cfg->held, IDLE_BUF,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&s->cfg->armed, 1,
					  memory_order_release);
		if (s->accepted == s->cfg->nconn) {
			if ((e = s->c->io_stop(s->lio)) < 0)
				is_fail(s, "io_stop: %s", strerror(-e));
			return;
		}
	}
}

static int is_serve(const struct bench_contender *c,
		    struct bench_idle_cfg *cfg)
{
	struct is s = { .c = c, .cfg = cfg };
	int e;

	s.conns = calloc(cfg->nconn, sizeof(*s.conns));
	if (s.conns == NULL) {
		snprintf(cfg->err, cfg->errlen, "out of memory");
		return -1;
	}
	memset(s.conns, 0, cfg->nconn * sizeof(*s.conns));	/* touch */
	if ((e = c->loop_new(c, &s.loop)) < 0) {
		snprintf(cfg->err, cfg->errlen, "loop_new: %s", strerror(-e));
		free(s.conns);
		return -1;
	}
	if ((e = c->io_new(s.loop, cfg->listen_fd, is_accept_cb, &s,
			   &s.lio)) < 0) {
		snprintf(cfg->err, cfg->errlen, "io_new: %s", strerror(-e));
		s.lio = NULL;
		s.failed = true;
	} else {
		atomic_store_explicit(&cfg->ready, 1, memory_order_release);
		e = c->run(s.loop, 0);
		if (e < 0)
			is_fail(&s, "run: %s", strerror(-e));
		else if (!s.failed && s.ended != cfg->nconn)
			is_fail(&s, "the loop ended with %u of %u connections "
				    "ended", s.ended, cfg->nconn);
	}
	for (unsigned i = 0; i < s.accepted; i++) {
		if (s.conns[i]->io != NULL)
			c->io_free(s.conns[i]->io);
		close(s.conns[i]->fd);
		free(s.conns[i]->buf);
		free(s.conns[i]);
	}
	if (s.lio != NULL)
		c->io_free(s.lio);
	c->loop_free(s.loop);
	free(s.conns);
	return s.failed ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * The client processes
 * ------------------------------------------------------------------------ */

struct child {
	pid_t pid;
	int cmd, rep;		/* pipes: commands to it, reports from it */
	unsigned first, n;	/* its connections */
};

static int read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int k = poll(&p, 1, timeout_ms);
		ssize_t r;

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k == 0 ? -ETIMEDOUT : -errno;
		r = read(fd, (char *)buf + got, len - got);
		if (r <= 0)
			return r == 0 ? -EPIPE : -errno;
		got += (size_t)r;
	}
	return 0;
}

static void msg_fill(uint8_t *b, unsigned conn, uint32_t seq)
{
	uint64_t x = ((uint64_t)conn << 32 | seq) * 0x9E3779B97F4A7C15ull;

	for (int i = 0; i < IDLE_MSG; i += 8) {
		x ^= x >> 29;
		x *= 0xBF58476D1CE4E5B9ull;
		memcpy(b + i, &x, 8);
	}
}

/* The child: connect when told, trickle when told, reset and exit when
 * told (or when the parent goes away). Reports one int per step: 0 or
 * -errno (with a line on stderr). Never returns. */
static void child_main(int idx, const struct child *ch,
		       const struct sockaddr_in *to)
{
	int *fds = malloc(ch->n * sizeof(int));
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint64_t seed = 0x1d1e5eedull + (uint64_t)idx;
	unsigned made = 0;
	int one = 1, rep = 0;
	char cmd;

	signal(SIGPIPE, SIG_IGN);
	bench_raise_nofile(ch->n + 64);
	if (fds == NULL)
		_exit(2);
	while (read_full(ch->cmd, &cmd, 1, IDLE_STEP_S * 3000) == 0) {
		if (cmd == 'C') {
			struct sockaddr_in from = {
				.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(0x7f000002u +
							 (uint32_t)idx),
			};

			rep = 0;
			for (; made < ch->n; made++) {
				int fd = socket(AF_INET,
						SOCK_STREAM | SOCK_CLOEXEC, 0);

				if (fd < 0 ||
				    setsockopt(fd, IPPROTO_IP,
					       IP_BIND_ADDRESS_NO_PORT, &one,
					       sizeof(one)) < 0 ||
				    bind(fd, (struct sockaddr *)&from,
					 sizeof(from)) < 0 ||
				    connect(fd, (const struct sockaddr *)to,
					    sizeof(*to)) < 0 ||
				    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
					       &one, sizeof(one)) < 0) {
					rep = -errno;
					if (fd >= 0)
						close(fd);
					break;
				}
				fds[made] = fd;
			}
		} else if (cmd == 'T') {
			unsigned count;

			rep = read_full(ch->cmd, &count, sizeof(count), 5000);
			for (unsigned m = 0; rep == 0 && m < count; m++) {
				unsigned j = (unsigned)(bench_rand(&seed) %
							ch->n);
				uint8_t out[IDLE_MSG], in[IDLE_MSG];

				msg_fill(out, ch->first + j, m);
				if (send(fds[j], out, IDLE_MSG, MSG_NOSIGNAL) !=
				    IDLE_MSG) {
					rep = -EIO;
					break;
				}
				rep = read_full(fds[j], in, IDLE_MSG, 10000);
				if (rep == 0 && memcmp(in, out, IDLE_MSG) != 0)
					rep = -EBADMSG;
			}
		} else {	/* 'Q' */
			break;
		}
		if (write(ch->rep, &rep, sizeof(rep)) != sizeof(rep))
			break;
	}
	for (unsigned i = 0; i < made; i++) {
		setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fds[i]);
	}
	_exit(0);
}

/* Send a command to every child and collect their reports. */
static int children_do(struct child *ch, unsigned k, char cmd,
		       const unsigned *arg, char *err, size_t errlen)
{
	int ret = 0;

	for (unsigned i = 0; i < k; i++) {
		char buf[1 + sizeof(unsigned)];
		size_t len = 1;

		buf[0] = cmd;
		if (arg != NULL) {
			memcpy(buf + 1, &arg[i], sizeof(unsigned));
			len += sizeof(unsigned);
		}
		if (write(ch[i].cmd, buf, len) != (ssize_t)len) {
			snprintf(err, errlen, "client %u: %s", i,
				 strerror(errno));
			return -1;
		}
	}
	for (unsigned i = 0; i < k; i++) {
		int rep = 0, e = read_full(ch[i].rep, &rep, sizeof(rep),
					   IDLE_STEP_S * 1000);

		if ((e < 0 || rep < 0) && ret == 0) {
			snprintf(err, errlen, "client %u (%u connections "
				 "from 127.0.0.%u), step %c: %s", i, ch[i].n,
				 2 + i, cmd, strerror(e < 0 ? -e : -rep));
			ret = -1;
		}
	}
	return ret;
}

static void children_end(struct child *ch, unsigned k)
{
	for (unsigned i = 0; i < k; i++) {
		if (ch[i].pid <= 0)
			continue;
		if (write(ch[i].cmd, "Q", 1) != 1)
			kill(ch[i].pid, SIGKILL);
	}
	for (unsigned i = 0; i < k; i++) {
		uint64_t t0 = bench_now_ns();
		int st;

		if (ch[i].pid <= 0)
			continue;
		while (waitpid(ch[i].pid, &st, WNOHANG) == 0) {
			if (bench_now_ns() - t0 > 10000000000ull) {
				kill(ch[i].pid, SIGKILL);
				waitpid(ch[i].pid, &st, 0);
				break;
			}
			usleep(2000);
		}
		ch[i].pid = 0;
		close(ch[i].cmd);
		close(ch[i].rep);
	}
}

/* ------------------------------------------------------------------------
 * A run
 * ------------------------------------------------------------------------ */

/* How many connections: the workload's, or as many as the fd limit lets
 * the server hold, in thousands. 0: not even 1,000. */
static unsigned idle_count(const struct bench_workload *wl,
			   const struct bench_params *p)
{
	struct rlimit rl;
	rlim_t max;

	if (p->test)
		return 200;
	if (wl->param != 0)
		return wl->param;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	max = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
	if (max > 1048576)
		max = 1048576;
	if (max < IDLE_SPARE_FDS + 1000)
		return 0;
	return (unsigned)((max - IDLE_SPARE_FDS) / 1000 * 1000);
}

static long rss_bytes(void)
{
	long size, rss = -1;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

struct idle_thread {
	const struct bench_contender *c;
	struct bench_idle_cfg cfg;
	char err[200];
	_Atomic int tid, exited;
	int ret;
};

static void *idle_main(void *arg)
{
	struct idle_thread *t = arg;

	atomic_store(&t->tid, (int)bench_gettid());
	t->ret = t->c->idle_serve ? t->c->idle_serve(t->c, &t->cfg)
				  : is_serve(t->c, &t->cfg);
	atomic_store(&t->exited, 1);
	return NULL;
}

/* Wait until *v >= want, the server fails, or the bound passes. */
static int wait_for(struct idle_thread *t, _Atomic unsigned *v,
		    unsigned want, const char *what, char *err, size_t errlen)
{
	uint64_t t0 = bench_now_ns();

	while (atomic_load_explicit(v, memory_order_acquire) < want) {
		if (atomic_load(&t->exited)) {
			snprintf(err, errlen, "the server quit: %s",
				 t->err[0] ? t->err : "?");
			return -1;
		}
		if (bench_now_ns() - t0 > IDLE_STEP_S * 1000000000ull) {
			snprintf(err, errlen, "timed out waiting for %s "
				 "(%u of %u)", what, atomic_load(v), want);
			return -1;
		}
		usleep(1000);
	}
	return 0;
}

static int idle_run(const struct bench_workload *wl,
		    const struct bench_contender *c,
		    const struct bench_params *p, struct bench_sample *out,
		    char *err, size_t errlen)
{
	unsigned n = idle_count(wl, p), k, per[IDLE_MAX_CHILDREN];
	struct idle_thread *t = calloc(1, sizeof(*t));
	struct child ch[IDLE_MAX_CHILDREN];
	struct bench_task_cpu *cpu0 = malloc(sizeof(*cpu0));
	struct bench_task_cpu *cpu1 = malloc(sizeof(*cpu1));
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t alen = sizeof(addr);
	pthread_t thr;
	int lfd = -1, started = 0, ret = -1, sysfd = -1, one = 1;
	unsigned nch = 0;
	long base, idle, after;
	unsigned long msgs0, msgs1;
	uint64_t sys0 = 0, sys1 = 0;
	unsigned total_msgs = p->test ? 100 : IDLE_MSGS;

	if (!bench_in_child) {
		free(t);
		free(cpu0);
		free(cpu1);
		return bench_run_in_child(wl, c, p, out, err, errlen);
	}
	memset(ch, 0, sizeof(ch));
	if (t == NULL || cpu0 == NULL || cpu1 == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (n == 0 || bench_raise_nofile((rlim_t)n + IDLE_SPARE_FDS) < 0) {
		struct rlimit rl;

		getrlimit(RLIMIT_NOFILE, &rl);
		snprintf(err, errlen, "cannot run: %u connections need %u fds "
			 "in the server, more than RLIMIT_NOFILE's hard limit "
			 "(%llu) allows", n ? n : 1000,
			 (n ? n : 1000) + IDLE_SPARE_FDS,
			 (unsigned long long)rl.rlim_max);
		ret = BENCH_CANNOT;
		goto out;
	}
	k = (n + IDLE_PER_CHILD - 1) / IDLE_PER_CHILD;
	if (k > IDLE_MAX_CHILDREN) {
		snprintf(err, errlen, "cannot run: %u connections need more "
			 "than %d client processes", n, IDLE_MAX_CHILDREN);
		ret = BENCH_CANNOT;
		goto out;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
		snprintf(err, errlen, "listen on 127.0.0.1: %s",
			 strerror(errno));
		goto out;
	}

	/* The clients first, while this process has one thread. */
	for (unsigned i = 0, first = 0; i < k; i++) {
		int cp[2], rp[2];

		per[i] = n / k + (i < n % k);
		if (pipe2(cp, O_CLOEXEC) < 0 || pipe2(rp, O_CLOEXEC) < 0) {
			snprintf(err, errlen, "pipe: %s", strerror(errno));
			goto out;
		}
		ch[i] = (struct child){ .cmd = cp[1], .rep = rp[0],
					.first = first, .n = per[i] };
		first += per[i];
		ch[i].pid = fork();
		if (ch[i].pid == 0) {
			struct child me = ch[i];

			close(cp[1]);
			close(rp[0]);
			close(lfd);
			me.cmd = cp[0];
			me.rep = rp[1];
			child_main((int)i, &me, &addr);
		}
		close(cp[0]);
		close(rp[1]);
		if (ch[i].pid < 0) {
			ch[i].pid = 0;
			close(ch[i].cmd);
			close(ch[i].rep);
			snprintf(err, errlen, "fork: %s", strerror(errno));
			goto out;
		}
		nch++;
	}

	t->c = c;
	t->cfg.listen_fd = lfd;
	t->cfg.nconn = n;
	t->cfg.pool_bufs = IDLE_POOL_BUFS;
	t->cfg.buf_size = c->idle_serve ? IDLE_POOL_SIZE : IDLE_BUF;
	t->cfg.err = t->err;
	t->cfg.errlen = sizeof(t->err);
	if (pthread_create(&thr, NULL, idle_main, t) != 0) {
		snprintf(err, errlen, "pthread_create failed");
		goto out;
	}
	pthread_setname_np(thr, "idle-server");
	started = 1;

	/* 1. The baseline: the server's loop and pool, no connection. */
	if (wait_for(t, &t->cfg.ready, 1, "the server's loop", err,
		     errlen) < 0)
		goto out;
	usleep(20000);
	base = rss_bytes();

	/* 2-3. Connect, wait for every read to be armed, settle. */
	if (children_do(ch, nch, 'C', NULL, err, errlen) < 0 ||
	    wait_for(t, &t->cfg.armed, n, "connections armed", err,
		     errlen) < 0)
		goto out;
	usleep(50000);
	idle = rss_bytes();

	/* 4. The trickle. */
	for (unsigned i = 0; i < nch; i++)
		per[i] = total_msgs / nch + (i < total_msgs % nch);
	if (p->count_syscalls &&
	    (sysfd = bench_sysc_open(atomic_load(&t->tid))) >= 0)
		sys0 = bench_sysc_read(sysfd);
	msgs0 = atomic_load(&t->cfg.msgs);
	bench_cpu_others(bench_gettid(), cpu0);
	if (children_do(ch, nch, 'T', per, err, errlen) < 0)
		goto out;
	bench_cpu_others(bench_gettid(), cpu1);
	msgs1 = atomic_load(&t->cfg.msgs);
	if (sysfd >= 0)
		sys1 = bench_sysc_read(sysfd);
	after = rss_bytes();
	if (msgs1 - msgs0 != total_msgs) {
		snprintf(err, errlen, "the server echoed %lu messages of %u",
			 msgs1 - msgs0, total_msgs);
		goto out;
	}
	out->value = (double)(idle - base) / n;
	out->extra[0] = (double)(idle - base -
				 (long)atomic_load(&t->cfg.held)) / n;
	out->extra[1] = (double)(after - base) / n;
	out->extra[2] = n;
	out->cpu = (double)bench_cpu_others_delta(cpu0, cpu1) / 1e3 /
		   total_msgs;
	if (sysfd >= 0)
		out->sys = (double)(sys1 - sys0) / total_msgs;
	ret = 0;
out:
	if (sysfd >= 0)
		bench_sysc_close(sysfd);
	children_end(ch, nch);
	if (started) {
		struct timespec ts;

		if (ret != 0)
			shutdown(lfd, SHUT_RDWR);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += IDLE_STEP_S;
		if (pthread_timedjoin_np(thr, NULL, &ts) != 0) {
			fprintf(stderr, "\nevq-bench: %s: the idle server did "
				"not return %d s after its clients left; giving "
				"up\n", c->name, IDLE_STEP_S);
			_exit(3);
		}
		if (ret == 0 && t->ret != 0) {
			snprintf(err, errlen, "server: %s", t->err);
			ret = -1;
		} else if (ret == -1 && t->ret != 0 && t->err[0]) {
			size_t len = strlen(err);

			snprintf(err + len, errlen - len, " (server: %s)",
				 t->err);
		}
	}
	if (lfd >= 0)
		close(lfd);
	free(cpu0);
	free(cpu1);
	free(t);
	return ret;
}

static void idle_describe(const struct bench_workload *wl,
			  const struct bench_params *p, char *buf, size_t len)
{
	unsigned n = idle_count(wl, p);

	snprintf(buf, len, "%u idle connections%s (clients in %u processes); "
		 "then %u 64-byte messages on random ones; pooled servers: "
		 "one pool of %d x %d bytes, readiness servers: %d bytes per "
		 "connection", n, wl->param ? "" : " (as many as "
		 "RLIMIT_NOFILE allows)", n ? (n + IDLE_PER_CHILD - 1) /
		 IDLE_PER_CHILD : 0, p->test ? 100 : IDLE_MSGS,
		 IDLE_POOL_BUFS, IDLE_POOL_SIZE, IDLE_BUF);
}

#define IDLE_WORKLOAD(sym, wname, n, opt)                                    \
	const struct bench_workload sym = {                                  \
		.name = wname,                                               \
		.title = "idle TCP connections on 127.0.0.1: user-space "    \
			 "memory per connection with a read armed on each",  \
		.unit = "B/conn",                                            \
		.cpu_unit = "srv us/msg",                                    \
		.sys_unit = "srv sys/msg",                                   \
		.legend = "B/conn: (RSS with every connection armed - RSS "  \
			  "of the server's loop and pool alone) / "          \
			  "connections; loop B/conn: the same without the "  \
			  "read buffers the server holds per connection "    \
			  "(4096 B each for readiness servers, none for "    \
			  "pooled ones); B/conn after: after the messages; " \
			  "srv us/msg, srv sys/msg: the server's CPU and "   \
			  "syscalls per message of the trickle",             \
		.na_why = "no fd watchers and no idle server",              \
		.higher_is_better = 0,                                       \
		.param = n,                                                  \
		.models = BENCH_MODEL_IO | BENCH_MODEL_IDLE,                 \
		.optional = opt,                                             \
		.extra_unit = { "loop B/conn", "B/conn after", "conns" },    \
		.plot_extra = 1,                                             \
		.run = idle_run,                                             \
		.describe = idle_describe,                                   \
	}

IDLE_WORKLOAD(bench_workload_idle5000, "idle-5000", 5000, 0);
IDLE_WORKLOAD(bench_workload_idlemax, "idle-max", 0, 1);
