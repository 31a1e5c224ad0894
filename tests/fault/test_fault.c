/* SPDX-License-Identifier: MIT */
/*
 * test_fault.c - every call evq makes fails once, in turn (issue 13,
 * item 1). Linked with the renamed copy of libevq.a (see shim.c).
 *
 * For each scenario (loop create/free, a chain, a cancel storm, an echo
 * server with 16 clients, a buffer pool, signals and asyncs, thread-pool
 * ops), a first run in a forked child records every call site it reaches
 * (an injection point: the function and the exact call in evq). Then one
 * child per site runs the scenario with that site's first call failing,
 * with one of the errnos the call really returns (rotating), and checks:
 *  - no crash and no sanitizer report (the child's exit status), no hang
 *    (10 s, then SIGKILL), no leak (LeakSanitizer at the child's exit);
 *  - every op submitted completes exactly once, at the latest in
 *    evq_loop_free(); never with F_MORE on its final call;
 *  - every error is a negative errno (API returns and op results);
 *  - afterwards, with injection off, the same loop still runs a nop and a
 *    timer (when the loop was made at all).
 * Then EVQ_FAULT_RANDOM runs (default 20) fail calls at random (1 in 40)
 * from a seed (EVQ_FAULT_SEED; printed). EVQ_FAULT_NTH=k also fails the
 * k-th call of each site (k > 1), for a longer run. The points covered
 * are printed at the end.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fault.h"
#include "helpers.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char __executable_start;

#define MAXFOPS 256

struct fop {
	struct evq_op op;
	int ncb;
	int nmore;
	int res;
	bool submitted;
	char buf[64];
	struct iovec iov[2];
};

static struct fop fops[MAXFOPS];
static int nfops;
static int bad;		/* violations seen in this child */

#define BAD(...)							\
	do {								\
		bad++;							\
		printf("#   violation: " __VA_ARGS__);		\
		printf("\n");						\
		fflush(stdout);						\
	} while (0)

static bool is_errno(int r)
{
	return r < 0 && r > -4096;
}

/* An API call's return: 0/positive, or a negative errno. */
#define API(call)							\
	({								\
		int r_ = (call);					\
		if (r_ < 0 && !is_errno(r_))				\
			BAD("%s returned %d", #call, r_);		\
		r_;							\
	})

static void fop_cb(struct evq_loop *loop, struct evq_op *op, int res,
		   unsigned flags)
{
	struct fop *f = op->data;

	(void)loop;
	if (res < 0 && !is_errno(res))
		BAD("op %d: res %d", (int)(f - fops), res);
	if (flags & EVQ_OP_F_MORE) {
		f->nmore++;
		return;
	}
	if (++f->ncb > 1)
		BAD("op %d completed %d times", (int)(f - fops), f->ncb);
	f->res = res;
}

static struct fop *fop_new(void)
{
	struct fop *f;

	if (nfops >= MAXFOPS)
		abort();
	f = &fops[nfops++];
	memset(f, 0, sizeof(*f));
	f->op.data = f;
	return f;
}

static int fsubmit(struct evq_loop *loop, struct fop *f, unsigned flags)
{
	int r = API(evq_op_submit(loop, &f->op, flags, fop_cb));

	if (r == 0)
		f->submitted = true;
	return r;
}

static bool all_done(void)
{
	int i;

	for (i = 0; i < nfops; i++)
		if (fops[i].submitted && fops[i].ncb == 0)
			return false;
	return true;
}

/* Run until every op is done, a flag is set or ms pass. */
static void run_for(struct evq_loop *loop, unsigned ms, volatile int *flag)
{
	uint64_t end = t_now_ns() + (uint64_t)ms * T_MS;

	while (t_now_ns() < end && !(flag && *flag)) {
		int r;

		if (!flag && all_done())
			break;
		r = API(evq_loop_run(loop, EVQ_RUN_NOWAIT));
		if (r < 0)
			t_sleep_ms(1);
		else
			t_sleep_ms(0);
	}
}

/* ------------------------------------------------------------------------
 * Scenarios. Each gets a fresh loop (or NULL when evq_loop_new failed:
 * then it has nothing to do).
 * ------------------------------------------------------------------------ */

static int pipe_fds[2] = { -1, -1 };
static struct evq_pool *the_pool;

static void nop_io(struct evq_loop *l, struct evq_io *w, unsigned ev)
{
	(void)l, (void)w, (void)ev;
}

static void nop_timer(struct evq_loop *l, struct evq_timer *t)
{
	(void)l, (void)t;
}

static void nop_defer(struct evq_loop *l, struct evq_defer *d)
{
	(void)l, (void)d;
}

static void sc_create(struct evq_loop *loop)
{
	struct evq_timer t = { 0 };
	struct evq_io io = { 0 };

	API(evq_loop_fd(loop));
	if (pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) == 0) {
		API(evq_io_start(loop, &io, pipe_fds[0], EVQ_READ, nop_io));
		evq_io_stop(&io);
	}
	API(evq_timer_start(loop, &t, T_MS, 0, nop_timer));
	evq_timer_stop(&t);
}

static void sc_chain(struct evq_loop *loop)
{
	struct fop *a, *b, *c, *d, *e;
	static char data[32] = "0123456789abcdef0123456789abcdef";

	if (pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0)
		return;
	a = fop_new();
	evq_prep_timeout(&a->op, 2 * T_MS);
	b = fop_new();
	b->iov[0] = (struct iovec){ data, 16 };
	b->iov[1] = (struct iovec){ data + 16, 16 };
	evq_prep_writev(&b->op, pipe_fds[1], b->iov, 2, EVQ_OFFSET_CURRENT);
	c = fop_new();
	evq_prep_read(&c->op, pipe_fds[0], c->buf, 32, EVQ_OFFSET_CURRENT);
	d = fop_new();
	evq_prep_nop(&d->op);
	e = fop_new();
	evq_prep_write(&e->op, pipe_fds[1], data, 8, EVQ_OFFSET_CURRENT);
	fsubmit(loop, a, EVQ_OP_LINK);
	fsubmit(loop, b, EVQ_OP_LINK);
	fsubmit(loop, c, EVQ_OP_LINK);
	fsubmit(loop, d, EVQ_OP_LINK);
	fsubmit(loop, e, 0);
	run_for(loop, 2000, NULL);
	/* The chain rule: after a failure, the rest is -ECANCELED. */
	{
		struct fop *ch[] = { a, b, c, d, e };
		size_t lens[] = { 0, 32, 32, 0, 8 };
		int i, broken = 0;

		for (i = 0; i < 5; i++) {
			if (ch[i]->ncb != 1)
				break;
			if (broken && ch[i]->res != -ECANCELED)
				BAD("chain: op %d ran (res %d) after a "
				    "failure", i, ch[i]->res);
			if (i == 0 ? ch[i]->res != -ETIME :
			    ch[i]->res != (int)lens[i])
				broken = 1;
		}
	}
}

static void sc_cancel_storm(struct evq_loop *loop)
{
	struct fop *t[32], *c;
	int i;

	if (pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0)
		return;
	for (i = 0; i < 32; i++) {
		t[i] = fop_new();
		if (i % 2)
			evq_prep_timeout(&t[i]->op, 10000 * T_MS);
		else
			evq_prep_read(&t[i]->op, pipe_fds[0], t[i]->buf, 8,
				      EVQ_OFFSET_CURRENT);
		fsubmit(loop, t[i], 0);
	}
	evq_loop_run(loop, EVQ_RUN_NOWAIT);
	for (i = 1; i < 32; i += 2) {
		c = fop_new();
		evq_prep_cancel(&c->op, &t[i]->op);
		fsubmit(loop, c, 0);
	}
	c = fop_new();
	evq_prep_cancel_fd(&c->op, pipe_fds[0]);
	fsubmit(loop, c, 0);
	run_for(loop, 2000, NULL);
}

/* Echo: a listener with a multishot accept, 16 clients, each sends 64
 * bytes and reads them back; the server recvs and sends with ops. */
struct conn {
	struct fop *rx, *tx;
	int fd;
};

static struct conn conns[20];
static int nconns, echoed;
static int lfd = -1;
static int cfds[16];
static struct fop *acc;

static void echo_cb(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags);

static void conn_start(struct evq_loop *loop, int fd)
{
	struct conn *c;

	if (nconns >= 20) {
		close(fd);
		return;
	}
	c = &conns[nconns++];
	c->fd = fd;
	c->rx = fop_new();
	evq_prep_recv(&c->rx->op, fd, c->rx->buf, 64, 0);
	c->rx->op.data = c->rx;
	if (API(evq_op_submit(loop, &c->rx->op, 0, echo_cb)) == 0)
		c->rx->submitted = true;
}

static void echo_cb(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct fop *f = op->data;
	int i;

	fop_cb(loop, op, res, flags);
	if (f == acc) {
		if (res >= 0)
			conn_start(loop, res);
		return;
	}
	for (i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];

		if (f == c->rx && res > 0) {
			c->tx = fop_new();
			evq_prep_send(&c->tx->op, c->fd, f->buf, (size_t)res,
				      0);
			c->tx->op.data = c->tx;
			if (API(evq_op_submit(loop, &c->tx->op, EVQ_OP_LINK,
					      echo_cb)) == 0)
				c->tx->submitted = true;
		} else if (f == c->tx && res > 0) {
			echoed++;
		}
	}
}

static void sc_echo(struct evq_loop *loop)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int i, got = 0;
	char buf[64];

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(lfd, 64) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
		return;
	acc = fop_new();
	evq_prep_accept(&acc->op, lfd, NULL, NULL, SOCK_NONBLOCK |
			SOCK_CLOEXEC);
	acc->op.data = acc;
	if (API(evq_op_submit(loop, &acc->op, EVQ_OP_MULTISHOT,
			      echo_cb)) == 0)
		acc->submitted = true;
	for (i = 0; i < 16; i++) {
		cfds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (cfds[i] >= 0 &&
		    connect(cfds[i], (struct sockaddr *)&a, sizeof(a)) == 0) {
			memset(buf, 'a' + i, sizeof(buf));
			if (write(cfds[i], buf, sizeof(buf)) < 0)
				BAD("client %d: write: %d", i, errno);
		}
	}
	run_for(loop, 1500, &echoed);
	{
		uint64_t end = t_now_ns() + 1500 * T_MS;

		while (echoed < 16 && t_now_ns() < end) {
			evq_loop_run(loop, EVQ_RUN_NOWAIT);
			t_sleep_ms(1);
		}
	}
	for (i = 0; i < 16; i++) {
		ssize_t n = recv(cfds[i], buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			int k;

			for (k = 0; k < n; k++)
				if (buf[k] != 'a' + i)
					BAD("client %d got foreign data", i);
			got++;
		}
	}
	(void)got;
}

static void sc_pool(struct evq_loop *loop)
{
	struct evq_pool *pool = NULL;
	int sv[2], i;
	struct fop *r;
	char msg[100];

	if (API(evq_pool_new(loop, &pool, 8, 64)) != 0)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0, sv) != 0)
		goto out;
	r = fop_new();
	evq_prep_recv_pool(&r->op, sv[0], pool, 0);
	fsubmit(loop, r, EVQ_OP_MULTISHOT);
	memset(msg, 'p', sizeof(msg));
	for (i = 0; i < 4; i++) {
		if (write(sv[1], msg, sizeof(msg)) < 0)
			break;
		evq_loop_run(loop, EVQ_RUN_NOWAIT);
		t_sleep_ms(1);
	}
	for (i = 0; i < 8; i++)
		evq_pool_release(pool, (unsigned)i);
	if (r->ncb == 0) {
		struct fop *c = fop_new();

		evq_prep_cancel(&c->op, &r->op);
		fsubmit(loop, c, 0);
	}
	run_for(loop, 1000, NULL);
	close(sv[0]);
	close(sv[1]);
out:
	/* The pool is freed after the loop (evq.h allows it). */
	the_pool = pool;
}

static volatile int sig_seen, async_seen;

static void sig_cb(struct evq_loop *loop, struct evq_signal *s)
{
	(void)loop;
	(void)s;
	sig_seen = 1;
}

static void async_cb(struct evq_loop *loop, struct evq_async *a)
{
	(void)loop;
	(void)a;
	async_seen = 1;
}

static void sc_signals(struct evq_loop *loop)
{
	static struct evq_signal s;
	static struct evq_async a;
	struct evq_defer d = { 0 };

	memset(&s, 0, sizeof(s));
	memset(&a, 0, sizeof(a));
	if (API(evq_signal_start(loop, &s, SIGUSR1, sig_cb)) == 0) {
		raise(SIGUSR1);
		run_for(loop, 500, &sig_seen);
		evq_signal_stop(&s);
	}
	if (API(evq_async_start(loop, &a, async_cb)) == 0) {
		API(evq_async_send(&a));
		run_for(loop, 500, &async_seen);
		evq_async_stop(&a);
	}
	API(evq_defer_start(loop, &d, nop_defer));
	evq_defer_stop(&d);
}

static void sc_pool_ops(struct evq_loop *loop)
{
	static char path[64];
	struct fop *o, *w, *s, *c;
	static struct statx stx;

	snprintf(path, sizeof(path), "/tmp/evq-fault-%d", (int)getpid());
	o = fop_new();
	evq_prep_openat(&o->op, AT_FDCWD, path, O_RDWR | O_CREAT |
			O_CLOEXEC, 0600);
	fsubmit(loop, o, 0);
	run_for(loop, 2000, NULL);
	unlink(path);
	if (o->ncb != 1 || o->res < 0)
		return;
	w = fop_new();
	evq_prep_write(&w->op, o->res, "hello", 5, 0);
	fsubmit(loop, w, EVQ_OP_LINK);
	s = fop_new();
	evq_prep_fsync(&s->op, o->res, 0);
	fsubmit(loop, s, 0);
	c = fop_new();
	evq_prep_statx(&c->op, AT_FDCWD, "/", 0, 0x7ff, &stx);
	fsubmit(loop, c, 0);
	run_for(loop, 2000, NULL);
	c = fop_new();
	evq_prep_close(&c->op, o->res);
	fsubmit(loop, c, 0);
	run_for(loop, 2000, NULL);
	if (c->ncb == 1 && c->res != 0)
		close(o->res);
}

static const struct {
	const char *name;
	void (*fn)(struct evq_loop *loop);
} scenarios[] = {
	{ "create", sc_create },
	{ "chain", sc_chain },
	{ "cancel_storm", sc_cancel_storm },
	{ "echo16", sc_echo },
	{ "pool", sc_pool },
	{ "signals", sc_signals },
	{ "pool_ops", sc_pool_ops },
};

/* In a child: one scenario on a fresh loop, then the checks. */
static int child(int sc)
{
	struct evq_loop *loop = NULL;
	struct evq_pool *pool;
	struct evq_loop_options o = { 0 };
	int r, i;

	alarm(10);
	o.threads = 2;
	r = API(evq_loop_new(&loop, &o));
	if (r != 0)
		return bad ? 1 : 0;
	scenarios[sc].fn(loop);

	/* The loop must still work once calls stop failing. */
	fi->mode = FI_OFF;
	if (!bad) {
		struct fop *n = fop_new();
		struct t_guard g;

		evq_prep_nop(&n->op);
		fsubmit(loop, n, 0);
		t_guard_start(loop, &g, 3000, "loop unusable after a fault");
		while (n->ncb == 0 && !g.fired && !t_failed) {
			r = evq_loop_run(loop, EVQ_RUN_ONCE);
			if (r < 0) {
				BAD("evq_loop_run after the fault: %d", r);
				break;
			}
		}
		t_guard_stop(&g);
		if (n->ncb == 1 && n->res != 0)
			BAD("nop after the fault: res %d", n->res);
		if (g.fired || n->ncb == 0)
			BAD("loop unusable after the fault: a nop never "
			    "completed");
	}
	pool = the_pool;
	r = API(evq_loop_free(loop));
	if (r != 0)
		BAD("evq_loop_free: %d", r);
	if (pool)
		evq_pool_free(pool);
	for (i = 0; i < nfops; i++)
		if (fops[i].submitted && fops[i].ncb != 1)
			BAD("op %d completed %d times by the end of "
			    "evq_loop_free()", i, fops[i].ncb);
	for (i = 0; i < nconns; i++)
		close(conns[i].fd);
	for (i = 0; i < 16; i++)
		if (cfds[i] > 0)
			close(cfds[i]);
	t_close(lfd);
	t_close(pipe_fds[0]);
	t_close(pipe_fds[1]);
	return bad ? 1 : 0;
}

static void site_name(int s, char *buf, size_t len)
{
	snprintf(buf, len, "%s@+%#lx", fi_point(fi->sites[s].point)->name,
		 (unsigned long)(fi->sites[s].addr -
				 (uintptr_t)&__executable_start));
}

/* Fork a child for scenario sc under the current fi mode. 0: it passed. */
static int run_child(int sc, char *why, size_t len)
{
	pid_t pid;
	int status, i;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		memset(fops, 0, sizeof(fops));
		_exit(child(sc));
	}
	for (i = 0; i < 1500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		t_sleep_ms(10);
	}
	if (i == 1500) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		snprintf(why, len, "hung (killed after 15 s)");
		return 1;
	}
	if (WIFSIGNALED(status)) {
		snprintf(why, len, "died of signal %d", WTERMSIG(status));
		return 1;
	}
	if (WEXITSTATUS(status) != 0) {
		snprintf(why, len, "exit status %d (violation, sanitizer "
			 "report or leak)", WEXITSTATUS(status));
		return 1;
	}
	return 0;
}

static unsigned long covered[FI_NPOINTS];
static unsigned nfailed;

static int every_call_fails_once_in_turn(void)
{
	size_t sc;
	char why[128], name[96];
	unsigned long nth_max = strtoul(getenv("EVQ_FAULT_NTH") ?
					getenv("EVQ_FAULT_NTH") : "1", NULL, 0);
	unsigned sites_total = 0, runs = 0, p, npoints = 0;
	uint64_t t0 = t_now_ns();

	t_case_timeout(600);
	signal(SIGPIPE, SIG_IGN);
	fi_init();
	pthread_mutex_init(&fi->lock, NULL);
	for (sc = 0; sc < T_NELEM(scenarios); sc++) {
		unsigned s, nsites;
		unsigned long nth;
		struct fi_site rec[FI_MAXSITES];

		T_STEP("scenario %s: record", scenarios[sc].name);
		fi->nsites = 0;
		fi->mode = FI_RECORD;
		if (run_child((int)sc, why, sizeof(why)) != 0) {
			T_FAILF("scenario %s fails without a fault: %s",
				scenarios[sc].name, why);
			continue;
		}
		nsites = fi->nsites;
		memcpy(rec, fi->sites, sizeof(rec));
		sites_total += nsites;
		for (s = 0; s < nsites; s++) {
			for (nth = 1; nth <= nth_max; nth++) {
				if (nth > rec[s].calls)
					break;
				memcpy(fi->sites, rec, sizeof(rec));
				fi->nsites = nsites;
				for (p = 0; p < nsites; p++)
					fi->sites[p].calls = 0;
				fi->mode = FI_NTH;
				fi->target = (int)s;
				fi->nth = nth;
				fi->err_index = s + (unsigned)nth + (unsigned)sc;
				fi->injected = 0;
				site_name((int)s, name, sizeof(name));
				T_STEP("scenario %s, %s call %lu fails",
				       scenarios[sc].name, name, nth);
				runs++;
				if (run_child((int)sc, why, sizeof(why))) {
					nfailed++;
					T_FAILF("%s: %s (call %lu) failing "
						"with %s: %s (addr2line -f -e "
						"tests/test_fault %s)",
						scenarios[sc].name, name, nth,
						strerror(fi->last_err), why,
						strchr(name, '@') + 2);
				} else if (fi->injected) {
					covered[rec[s].point]++;
				}
			}
		}
	}
	/* Random faults, from a seed. */
	{
		unsigned nrand = (unsigned)strtoul(getenv("EVQ_FAULT_RANDOM") ?
						   getenv("EVQ_FAULT_RANDOM") :
						   "20", NULL, 0);
		uint64_t seed = getenv("EVQ_FAULT_SEED") ?
			strtoull(getenv("EVQ_FAULT_SEED"), NULL, 0) :
			t_now_ns();
		unsigned i;

		t_note("random faults: %u runs per scenario, seed %#llx "
		       "(EVQ_FAULT_SEED to replay)", nrand,
		       (unsigned long long)seed);
		for (i = 0; i < nrand; i++)
			for (sc = 0; sc < T_NELEM(scenarios); sc++) {
				fi->mode = FI_RANDOM;
				fi->odds = 40;
				fi->rng = (seed + i * 131 + sc) | 1;
				T_STEP("scenario %s, random faults, seed "
				       "%#llx", scenarios[sc].name,
				       (unsigned long long)fi->rng);
				runs++;
				if (run_child((int)sc, why, sizeof(why))) {
					nfailed++;
					T_FAILF("%s: random faults from seed "
						"%#llx: %s", scenarios[sc].name,
						(unsigned long long)fi->rng,
						why);
				}
			}
	}
	fi->mode = FI_OFF;
	for (p = 0; p < FI_NPOINTS; p++)
		if (covered[p]) {
			npoints++;
			t_note("covered: %-28s %lu call sites", fi_point(p)->name,
			       covered[p]);
		}
	t_note("%u functions, %u call sites reached across scenarios, %u "
	       "runs, %u failed, %.1f s", npoints, sites_total, runs,
	       nfailed, (double)(t_now_ns() - t0) / 1e9);
	return t_failed ? T_FAIL : T_PASS;
}

/* test_random found it on poll (about once in 18 runs of 10 s): a write
 * on a memfd ran in a pool thread; a close op on the memfd completed
 * while the worker had taken the job but not yet made its syscall, which
 * then went to whatever file had the number by then. The shim's delay
 * holds the worker in that window for 200 ms: a close op must wait for
 * an op that a pool thread runs on its fd (on uring the kernel owns the
 * write and the shim sees no pwritev: it passes trivially there). */
static void count_final(struct evq_loop *loop, struct evq_op *op, int res,
			unsigned flags)
{
	int *calls = op->data;

	(void)loop;
	(void)flags;
	calls[0]++;
	calls[1] = res;
}

static int close_op_never_lets_a_pool_write_reach_the_next_file(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_op wr = { 0 }, cl = { 0 };
	int wcalls[2] = { 0, 0 }, ccalls[2] = { 0, 0 };
	struct stat st;
	int m, m2 = -1;

	ASSERT_NOTNULL(loop);
	m = memfd_create("evq-first", MFD_CLOEXEC);
	ASSERT_GE(m, 0);
	__atomic_store_n(&fi_pool_write_delay_ms, 200, __ATOMIC_RELAXED);
	T_STEP("a write on a memfd, held in its pool thread");
	evq_prep_write(&wr, m, "EVIL", 4, 0);
	wr.data = wcalls;
	ASSERT_OK(evq_op_submit(loop, &wr, 0, count_final));
	for (int i = 0; i < 5; i++) {
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
		t_sleep_ms(10);
	}
	T_STEP("a close op on the memfd, then a new memfd on its number");
	evq_prep_close(&cl, m);
	cl.data = ccalls;
	ASSERT_OK(evq_op_submit(loop, &cl, 0, count_final));
	for (int i = 0; i < 300 && !ccalls[0]; i++)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
	ASSERT_EQ(ccalls[0], 1);
	ASSERT_ERR(ccalls[1], 0);
	m2 = memfd_create("evq-second", MFD_CLOEXEC);
	ASSERT_EQ(m2, m);
	for (int i = 0; i < 300 && !wcalls[0]; i++)
		ASSERT_GE(evq_loop_run(loop, EVQ_RUN_ONCE), 0);
	__atomic_store_n(&fi_pool_write_delay_ms, 0, __ATOMIC_RELAXED);
	ASSERT_EQ(wcalls[0], 1);
	T_STEP("nothing of the write is in the file that took the number");
	ASSERT_EQ(fstat(m2, &st), 0);
	ASSERT_EQ(st.st_size, 0);
	close(m2);
	t_loop_free(loop);
	return T_PASS;
}

int main(int argc, char **argv)
{
	static const struct t_case cases[] = {
		T_CASE(every_call_fails_once_in_turn),
		T_CASE(close_op_never_lets_a_pool_write_reach_the_next_file),
	};

	return t_main(argc, argv, cases, T_NELEM(cases));
}
