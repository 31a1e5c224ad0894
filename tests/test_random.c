/* SPDX-License-Identifier: MIT */
/*
 * test_random.c - model-based random testing of the public API (issue 13,
 * item 2).
 *
 * Each sequence is a seeded random program of API calls: fd watchers
 * started, set, stopped and left on fds that are then closed; timers;
 * ops (nop, timeout, reads and writes of pipes and memfds, reads of a
 * bad fd, close ops, cancels) submitted alone, in chains (some longer
 * than the io_uring SQ, some behind a burst of unrelated nops that fills
 * it), plain closes and fd numbers reused by new files; loop runs
 * (NOWAIT, ONCE); loops made on another thread; fork with ops in flight.
 * A reference model, written from evq.h's promises only, checks every
 * callback as it comes and the files' contents at the end:
 *  - every op completes exactly once (final call), is inactive inside it;
 *  - results are those evq.h allows for the op (a read of a pipe fed in
 *    8-byte units returns 0 or 8; a timeout op -ETIME no earlier than
 *    asked; a cancel's res 0 only after its target's -ECANCELED);
 *  - chains: an op that ran (res != -ECANCELED) has a predecessor that
 *    finished first and fully succeeded; after a failed one, -ECANCELED;
 *  - data lands only in the file an op named: every 8-byte record in a
 *    memfd or pipe carries the identity of the file it was meant for, and
 *    an op that was cancelled wrote nothing;
 *  - watcher and timer callbacks only while the model says active, with
 *    wanted events; never after a close op ended the watcher or a plain
 *    close() behind its back; timers never early;
 *  - a forked child frees its copy of the loop promptly.
 *
 * Seeds: sequence i of a run uses seed base+i; a failure prints the seed
 * and the backend; replay one with EVQ_RANDOM_SEED=<seed> (one sequence).
 * Budget: EVQ_RANDOM_SECONDS (default 6 per backend; `make random-long`
 * runs longer), EVQ_RANDOM_BASE picks the base seed (default: the time).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXOPS 1024
#define MAXFILES 12
#define MAXW 8
#define MAXT 4
#define TAG_MAGIC 0xa5ull
#define TAG_FEED 0xffffffu	/* written by the driver, not by an op */

enum rkind { R_NOP, R_TIMEOUT, R_READ, R_WRITE, R_BADREAD, R_CLOSE,
	     R_CANCEL };
enum fkind { F_NONE, F_PIPE, F_MEMFD };

struct rfile {
	int kind;
	int fd[2];		/* pipe: read, write; memfd: fd, -1 */
	unsigned ident;		/* identity: never reused in a sequence */
	bool dead;		/* closed (or a close op submitted) */
	bool open_after_op;	/* its close op failed: fd[0] still open */
};

struct rop {
	struct evq_op op;
	int kind;
	int file;		/* index in files, or -1 */
	unsigned ident;		/* identity of the file it targets */
	int end;		/* which fd of the file */
	int pred;		/* chain predecessor, or -1 */
	int target;		/* cancel: the op index */
	size_t len;
	uint64_t ns;		/* timeout */
	uint64_t submit_ns;
	uint64_t tag;
	unsigned char buf[8];
	int ncb;
	int res;
	int seq;
	bool submitted;
};

struct rwatch {
	struct evq_io io;
	bool active;		/* the model's view */
	int dead;		/* 1: a close op ended it, 2: a plain close */
	int dead_calls;		/* callbacks since a plain close */
	int file;
	int end;
	unsigned events;
};

struct rtimer {
	struct evq_timer t;
	bool active;
	bool repeat;
	uint64_t earliest;	/* no callback before this */
	int fired;
};

struct rseq {
	struct evq_loop *loop;
	struct rop ops[MAXOPS];
	int nops;
	struct rfile files[MAXFILES];
	struct rwatch w[MAXW];
	struct rtimer tm[MAXT];
	struct evq_timer tick;
	unsigned next_ident;
	int seq;
	int last_linked;	/* op submitted last with LINK, or -1 */
	int errors;
	uint64_t seed;
	unsigned entries;
	bool in_cb;
};

static struct rseq S;
static uint64_t rs;		/* the sequence's PRNG state */
static uint64_t total_seqs, total_calls;
/* The sequence's last steps, kept in memory and printed with its first
 * violation (EVQ_RANDOM_TRACE=1 prints them all as they happen). */
static bool trace;
static char tr_buf[256][112];
static unsigned tr_n;
#define TR(...)								\
	do {								\
		snprintf(tr_buf[tr_n++ % 256], sizeof(tr_buf[0]),	\
			 __VA_ARGS__);					\
		if (trace)						\
			printf("#  %s", tr_buf[(tr_n - 1) % 256]);	\
	} while (0)

static void tr_dump(void)
{
	unsigned i = tr_n > 256 ? tr_n - 256 : 0;

	printf("# the sequence's last steps:\n");
	for (; i < tr_n; i++)
		printf("#  %s", tr_buf[i % 256]);
}
static bool in_child;
/* EVQ_RANDOM_SKIP: comma-separated kinds of step to leave out, to look
 * past a bug already found: burst (nop bursts, and chains as long as the
 * SQ), fork, thread (loops made on another thread), held (the held-chain
 * pattern), close (plain closes), cancel, watch, timer. */
static const char *skip_list = "";

static bool skip(const char *what)
{
	const char *p = strstr(skip_list, what);

	return p && (p == skip_list || p[-1] == ',');
}	/* a forked child: its callbacks prove nothing */

static uint64_t rnd(void)
{
	uint64_t x = rs;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rs = x;
	return x * 0x2545f4914f6cdd1dull;
}

static unsigned rn(unsigned n)
{
	return n ? (unsigned)(rnd() % n) : 0;
}

/* A violation of evq.h's promises: report it with the seed to replay. */
#define VIOL(...)							\
	do {								\
		if (in_child)						\
			break;						\
		S.errors++;						\
		if (S.errors <= 5) {					\
			if (S.errors == 1)				\
				tr_dump();				\
			T_FAILF(__VA_ARGS__);				\
			t_note("replay: EVQ_BACKEND=%s "		\
			       "EVQ_RANDOM_SEED=%#llx", t_backend(),	\
			       (unsigned long long)S.seed);		\
		}							\
	} while (0)

static uint64_t mk_tag(unsigned ident, unsigned opid)
{
	return TAG_MAGIC << 56 | (uint64_t)(ident & 0xffffff) << 24 |
	       (opid & 0xffffff);
}

/* A record read back from a file or pipe must name that file's identity,
 * and an op's record must come from an op that succeeded. */
static void check_record(uint64_t v, unsigned ident, const char *where)
{
	unsigned id = (unsigned)(v >> 24) & 0xffffff;
	unsigned opid = (unsigned)v & 0xffffff;

	if (v == 0)
		return;
	if (v >> 56 != TAG_MAGIC) {
		VIOL("%s (ident %u): garbage record %#llx", where, ident,
		     (unsigned long long)v);
		return;
	}
	if (id != (ident & 0xffffff)) {
		VIOL("%s (ident %u): holds a record written for file %u "
		     "(op %u): an op wrote into the wrong file", where, ident,
		     id, opid);
		return;
	}
	if (opid != TAG_FEED && (int)opid < S.nops) {
		struct rop *o = &S.ops[opid];

		if (o->ncb == 1 && o->res != 8)
			VIOL("%s: op %u completed with %d but its data is "
			     "there", where, opid, o->res);
	}
}

static bool op_ok(const struct rop *o)
{
	switch (o->kind) {
	case R_NOP: return o->res >= 0;
	case R_TIMEOUT: return o->res == -ETIME;
	case R_READ: case R_WRITE: return o->res == (int)o->len;
	case R_CLOSE: return o->res == 0;
	case R_CANCEL: return o->res >= 0;
	default: return false;
	}
}

static const char *kname(int k)
{
	static const char *n[] = { "nop", "timeout", "read", "write",
				   "read(bad fd)", "close", "cancel" };

	return n[k];
}

static void w_end_for_file(int file, bool plain);

static void op_cb(struct evq_loop *loop, struct evq_op *op, int res,
		  unsigned flags)
{
	struct rop *o = op->data;
	int i = (int)(o - S.ops);

	(void)loop;
	total_calls++;
	if (flags & EVQ_OP_F_MORE) {
		VIOL("op %d (%s): EVQ_OP_F_MORE on a single-shot op", i,
		     kname(o->kind));
		return;
	}
	if (++o->ncb > 1) {
		VIOL("op %d (%s): completed %d times (res %d)", i,
		     kname(o->kind), o->ncb, res);
		return;
	}
	o->res = res;
	o->seq = ++S.seq;
	TR("done op %d %s res %d\n", i, kname(o->kind), res);
	if (evq_op_is_active(op))
		VIOL("op %d: evq_op_is_active() is 1 in its final call", i);

	switch (o->kind) {
	case R_NOP:
		if (res != 0 && res != -ECANCELED)
			VIOL("op %d nop: res %d", i, res);
		break;
	case R_TIMEOUT:
		if (res == -ETIME) {
			uint64_t now = t_now_ns();

			if (now < o->submit_ns + o->ns)
				VIOL("op %d timeout of %llu us fired after "
				     "%llu us", i,
				     (unsigned long long)o->ns / 1000,
				     (unsigned long long)(now - o->submit_ns)
					     / 1000);
		} else if (res != -ECANCELED) {
			VIOL("op %d timeout: res %d", i, res);
		}
		break;
	case R_READ:
		if (res == 8) {
			uint64_t v;

			memcpy(&v, o->buf, 8);
			check_record(v, o->ident, "read op");
		} else if (res == -EBADF) {
			VIOL("op %d read (fd %d) ran on a closed fd: res %d; "
			     "it escaped the close op that ended it", i,
			     op->fd, res);
		} else if (res != 0 && res != -ECANCELED) {
			VIOL("op %d read of a pipe fed in 8-byte records: "
			     "res %d", i, res);
		}
		break;
	case R_WRITE:
		if (res == -EBADF)
			VIOL("op %d write (fd %d) ran on a closed fd: res %d; "
			     "it escaped the close op that ended it", i,
			     op->fd, res);
		else if (res != 8 && res != -ECANCELED && res != -EPIPE)
			VIOL("op %d write of 8 bytes: res %d", i, res);
		break;
	case R_BADREAD:
		if (res != -EBADF && res != -ECANCELED)
			VIOL("op %d read(bad fd): res %d", i, res);
		break;
	case R_CLOSE:
		if (res != 0 && res != -ECANCELED)
			VIOL("op %d close: res %d", i, res);
		if (res == 0)
			w_end_for_file(o->file, false);
		else
			S.files[o->file].open_after_op = true;
		break;
	case R_CANCEL:
		if (res == 0) {
			struct rop *t = &S.ops[o->target];

			if (t->ncb != 1 || t->res != -ECANCELED)
				VIOL("op %d cancel res 0, but its target %d "
				     "(%s) has %d calls, res %d", i,
				     o->target, kname(t->kind), t->ncb,
				     t->res);
		} else if (res != -ENOENT && res != -EALREADY &&
			   res != -ECANCELED) {
			VIOL("op %d cancel: res %d", i, res);
		}
		break;
	}

	if (o->pred >= 0 && res != -ECANCELED) {
		struct rop *p = &S.ops[o->pred];

		if (p->ncb != 1)
			VIOL("chain: op %d (%s) completed (res %d) before its "
			     "predecessor %d (%s): the chain was split", i,
			     kname(o->kind), res, o->pred, kname(p->kind));
		else if (!op_ok(p))
			VIOL("chain: op %d (%s) ran (res %d) although its "
			     "predecessor %d (%s) failed with %d", i,
			     kname(o->kind), res, o->pred, kname(p->kind),
			     p->res);
	}
}

static void w_cb(struct evq_loop *loop, struct evq_io *io, unsigned revents)
{
	struct rwatch *w = io->data;
	int i = (int)(w - S.w);

	(void)loop;
	total_calls++;
	if (!w->active)
		VIOL("watcher %d: callback while stopped", i);
	/* poll: a number reused by a file that no watcher starts on is
	 * polled for the old watcher (evq.h, close-safety). aio: the
	 * closed file's next event, once, then the same as poll until the
	 * check made once per EVQ_IO_STALE_LIMIT reports. */
	if (w->dead == 2)
		w->dead_calls++;
	if (w->dead && !(w->dead == 2 && t_backend_is("poll")) &&
	    !(w->dead == 2 && t_backend_is("aio") &&
	      w->dead_calls <= 1 + EVQ_IO_STALE_LIMIT))
		VIOL("watcher %d: callback (revents %#x) after its fd %d was "
		     "closed by %s", i, revents, io->fd,
		     w->dead == 1 ? "a close op" : "close()");
	if (revents & ~w->events & (EVQ_READ | EVQ_WRITE))
		VIOL("watcher %d: revents %#x, wanted %#x", i, revents,
		     w->events);
	/* Sometimes stop or change it from inside. */
	switch (rn(8)) {
	case 0:
		evq_io_stop(io);
		w->active = false;
		break;
	case 1:
		if (S.files[w->file].kind == F_MEMFD) {
			unsigned ev = 1 + rn(3);

			if (evq_io_set(io, ev) == 0)
				w->events = ev;
		}
		break;
	}
}

static void tm_cb(struct evq_loop *loop, struct evq_timer *t)
{
	struct rtimer *r = t->data;
	uint64_t now = t_now_ns();

	(void)loop;
	total_calls++;
	if (!r->active)
		VIOL("timer %d: callback while stopped", (int)(r - S.tm));
	if (!r->fired && now < r->earliest)
		VIOL("timer %d fired %llu us early", (int)(r - S.tm),
		     (unsigned long long)(r->earliest - now) / 1000);
	r->fired++;
	if (!r->repeat)
		r->active = false;
	if (rn(6) == 0) {
		evq_timer_stop(t);
		r->active = false;
	}
}

static void tick_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	(void)t;
}

/* A close op (plain=false) ended, or a plain close (plain=true) is done:
 * the watchers on the file's fds are ended. */
static void w_end_for_file(int file, bool plain)
{
	int i;

	for (i = 0; i < MAXW; i++) {
		struct rwatch *w = &S.w[i];

		if (w->file != file || !w->active || w->dead)
			continue;
		if (!plain && evq_io_is_active(&w->io))
			VIOL("watcher %d still active after a close op on "
			     "its fd", i);
		w->dead = plain ? 2 : 1;
		w->dead_calls = 0;
	}
}

/* ------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------ */

static int file_open(int i)
{
	struct rfile *f = &S.files[i];

	memset(f, 0, sizeof(*f));
	f->fd[0] = f->fd[1] = -1;
	f->ident = ++S.next_ident;
	if (rn(2)) {
		if (pipe2(f->fd, O_NONBLOCK | O_CLOEXEC) != 0)
			return -1;
		f->kind = F_PIPE;
	} else {
		f->fd[0] = memfd_create("evq-random", MFD_CLOEXEC);
		if (f->fd[0] < 0)
			return -1;
		f->kind = F_MEMFD;
	}
	TR("open file %d (%s) fds %d %d\n", i, f->kind == F_PIPE ?
	   "pipe" : "memfd", f->fd[0], f->fd[1]);
	return 0;
}

static void memfd_check(int i)
{
	struct rfile *f = &S.files[i];
	uint64_t rec[64];
	ssize_t n, k;

	n = pread(f->fd[0], rec, sizeof(rec), 0);
	for (k = 0; k + 8 <= n; k += 8)
		check_record(rec[k / 8], f->ident, "memfd");
}

static void pipe_drain_check(int i)
{
	struct rfile *f = &S.files[i];
	uint64_t v;

	while (read(f->fd[0], &v, 8) == 8)
		check_record(v, f->ident, "pipe");
}

/* Ops in flight on file i (the model's view). */
static int file_busy(int i)
{
	int k, n = 0;

	for (k = 0; k < S.nops; k++)
		if (S.ops[k].submitted && S.ops[k].ncb == 0 &&
		    S.ops[k].file == i)
			n++;
	return n;
}

static void feed(int i)
{
	struct rfile *f = &S.files[i];
	uint64_t v = mk_tag(f->ident, TAG_FEED);
	ssize_t r;

	if (f->kind == F_PIPE && !f->dead)
		r = write(f->fd[1], &v, 8);
	(void)r;
}

/* ------------------------------------------------------------------------
 * Ops
 * ------------------------------------------------------------------------ */

static struct rop *op_new(int kind)
{
	struct rop *o;

	if (S.nops >= MAXOPS)
		return NULL;
	o = &S.ops[S.nops];
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->file = -1;
	o->pred = -1;
	o->target = -1;
	o->op.data = o;
	o->tag = mk_tag(0, (unsigned)S.nops);
	S.nops++;
	return o;
}

static int live_file(int kind)
{
	int i, start = (int)rn(MAXFILES);

	for (i = 0; i < MAXFILES; i++) {
		int k = (start + i) % MAXFILES;

		if (S.files[k].kind != F_NONE && !S.files[k].dead &&
		    (kind == F_NONE || S.files[k].kind == kind))
			return k;
	}
	return -1;
}

/* Prepare a random op; NULL when nothing fits. */
static struct rop *op_random(bool chain_member)
{
	int file;
	struct rop *o;
	unsigned k = rn(chain_member ? 5 : 7);

	switch (k) {
	case 0:
		o = op_new(R_NOP);
		if (o)
			evq_prep_nop(&o->op);
		return o;
	case 1:
		o = op_new(R_TIMEOUT);
		if (!o)
			return NULL;
		o->ns = rn(4) ? (uint64_t)rn(20000) * 1000 : 0;
		evq_prep_timeout(&o->op, o->ns);
		return o;
	case 2:
		file = live_file(F_PIPE);
		if (file < 0)
			return op_random(chain_member);
		o = op_new(R_READ);
		if (!o)
			return NULL;
		o->file = file;
		o->ident = S.files[file].ident;
		o->len = 8;
		evq_prep_read(&o->op, S.files[file].fd[0], o->buf, 8,
			      EVQ_OFFSET_CURRENT);
		return o;
	case 3:
		file = live_file(F_NONE);
		if (file < 0)
			return op_random(chain_member);
		o = op_new(R_WRITE);
		if (!o)
			return NULL;
		o->file = file;
		o->ident = S.files[file].ident;
		o->len = 8;
		o->tag = mk_tag(o->ident, (unsigned)(o - S.ops));
		memcpy(o->buf, &o->tag, 8);
		if (S.files[file].kind == F_PIPE)
			evq_prep_write(&o->op, S.files[file].fd[1], o->buf, 8,
				       EVQ_OFFSET_CURRENT);
		else
			evq_prep_write(&o->op, S.files[file].fd[0], o->buf, 8,
				       (uint64_t)rn(64) * 8);
		return o;
	case 4:
		o = op_new(R_BADREAD);
		if (!o)
			return NULL;
		/* A number no file has: far above anything we open. */
		evq_prep_read(&o->op, 900 + (int)rn(50), o->buf, 8, 0);
		return o;
	case 5: {
		int t, tries;

		if (skip("cancel"))
			return op_random(true);
		for (tries = 0; tries < 8; tries++) {
			t = (int)rn((unsigned)S.nops);
			if (S.nops && S.ops[t].submitted &&
			    S.ops[t].ncb == 0 && S.ops[t].kind != R_CANCEL)
				break;
			t = -1;
		}
		if (t < 0)
			return op_random(chain_member);
		o = op_new(R_CANCEL);
		if (!o)
			return NULL;
		o->target = t;
		evq_prep_cancel(&o->op, &S.ops[t].op);
		return o;
	}
	default:
		file = live_file(F_NONE);
		if (file < 0)
			return op_random(chain_member);
		o = op_new(R_CLOSE);
		if (!o)
			return NULL;
		o->file = file;
		o->ident = S.files[file].ident;
		/* A pipe's read end: ops and watchers there end; the write
		 * end is closed plainly once no op uses it. */
		evq_prep_close(&o->op, S.files[file].fd[0]);
		S.files[file].dead = true;
		return o;
	}
}

static int submit(struct rop *o, bool link)
{
	int r;

	o->pred = S.last_linked;
	o->submit_ns = t_now_ns();
	r = evq_op_submit(S.loop, &o->op, link ? EVQ_OP_LINK : 0, op_cb);
	if (r != 0) {
		VIOL("evq_op_submit(%s): %d", kname(o->kind), r);
		return r;
	}
	o->submitted = true;
	TR("submit op %d %s fd %d file %d%s pred %d\n", (int)(o - S.ops),
	   kname(o->kind), o->op.fd, o->file, link ? " LINK" : "", o->pred);
	S.last_linked = link ? (int)(o - S.ops) : -1;
	return 0;
}

static void submit_chain(unsigned len)
{
	unsigned i;

	for (i = 0; i < len; i++) {
		struct rop *o = op_random(i + 1 < len);
		bool last = i + 1 == len || (o && o->kind == R_CLOSE);

		if (!o || submit(o, !last) != 0 || last)
			break;
	}
}

/* The pattern of bug #9.2: read(pipe) LINK -> write(file), then (maybe
 * later) a close op on the file, a new file on the number, pipe data. */
static void held_chain(void)
{
	int p = live_file(F_PIPE), m = live_file(F_MEMFD);
	struct rop *r, *w;

	if (p < 0 || m < 0)
		return;
	r = op_new(R_READ);
	w = r ? op_new(R_WRITE) : NULL;
	if (!w)
		return;
	r->file = p;
	r->ident = S.files[p].ident;
	r->len = 8;
	evq_prep_read(&r->op, S.files[p].fd[0], r->buf, 8,
		      EVQ_OFFSET_CURRENT);
	w->file = m;
	w->ident = S.files[m].ident;
	w->len = 8;
	w->tag = mk_tag(w->ident, (unsigned)(w - S.ops));
	memcpy(w->buf, &w->tag, 8);
	evq_prep_write(&w->op, S.files[m].fd[0], w->buf, 8, 0);
	if (submit(r, true) == 0)
		submit(w, false);
}

static void nop_burst(void)
{
	unsigned i, n = rn(2 * S.entries + 2);

	for (i = 0; i < n; i++) {
		struct rop *o = op_new(R_NOP);

		if (!o)
			return;
		evq_prep_nop(&o->op);
		if (submit(o, false) != 0)
			return;
	}
}

/* ------------------------------------------------------------------------
 * The driver
 * ------------------------------------------------------------------------ */

static void plain_close(int i)
{
	struct rfile *f = &S.files[i];
	int k;

	if (f->kind == F_NONE || file_busy(i))
		return;
	for (k = 0; k < MAXW; k++)
		if (S.w[k].file == i && S.w[k].active && rn(2)) {
			evq_io_stop(&S.w[k].io);
			S.w[k].active = false;
		}
	TR("plain close file %d fds %d %d\n", i, f->fd[0], f->fd[1]);
	if (f->kind == F_MEMFD && !f->dead)
		memfd_check(i);
	if (f->kind == F_PIPE && !f->dead)
		pipe_drain_check(i);
	if (!f->dead || f->open_after_op)
		close(f->fd[0]);
	t_close(f->fd[1]);
	w_end_for_file(i, true);
	f->kind = F_NONE;
}

static void watcher_start(void)
{
	int k = (int)rn(MAXW), file = live_file(F_NONE), r;
	struct rwatch *w = &S.w[k];
	unsigned ev;

	if (file < 0)
		return;
	ev = S.files[file].kind == F_PIPE ? EVQ_READ : 1 + rn(3);
	w->io.data = w;
	TR("watch %d on file %d (%s) fd %d events %#x\n", k, file,
	   S.files[file].kind == F_PIPE ? "pipe" : "memfd",
	   S.files[file].fd[0], ev);
	r = evq_io_start(S.loop, &w->io, S.files[file].fd[0], ev, w_cb);
	if (r != 0) {
		VIOL("evq_io_start(fd %d): %d", S.files[file].fd[0], r);
		return;
	}
	w->active = true;
	w->dead = 0;
	w->file = file;
	w->events = ev;
}

static void timer_start(void)
{
	struct rtimer *r = &S.tm[rn(MAXT)];
	uint64_t after = (uint64_t)rn(15000) * 1000;

	r->t.data = r;
	r->repeat = rn(3) == 0;
	r->earliest = t_now_ns() + after;
	r->fired = 0;
	if (evq_timer_start(S.loop, &r->t, after,
			    r->repeat ? 1000000 + rn(5000000) : 0,
			    tm_cb) != 0)
		VIOL("evq_timer_start");
	r->active = true;
}

static void run_once(void)
{
	int r;

	S.last_linked = -1;
	TR("run\n");
	if (rn(2)) {
		r = evq_loop_run(S.loop, EVQ_RUN_NOWAIT);
	} else {
		evq_timer_start(S.loop, &S.tick, 20 * T_MS, 0, tick_cb);
		r = evq_loop_run(S.loop, EVQ_RUN_ONCE);
	}
	if (r < 0)
		VIOL("evq_loop_run: %d", r);
}

static void do_fork(void)
{
	pid_t pid;
	int status, i;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0) {
		in_child = true;
		alarm(5);
		_exit(evq_loop_free(S.loop) == 0 ? 0 : 3);
	}
	for (i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				VIOL("fork child freeing its loop: status "
				     "%#x", status);
			return;
		}
		t_sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	VIOL("fork child's evq_loop_free() hung (5 s)");
}

struct mk_arg {
	struct evq_loop_options o;
	struct evq_loop *loop;
	int r;
};

static void *mk_thread(void *p)
{
	struct mk_arg *a = p;

	a->r = evq_loop_new(&a->loop, &a->o);
	return NULL;
}

static int seq_run(uint64_t seed, unsigned steps)
{
	static const unsigned entries[] = { 4, 8, 16, 256 };
	struct mk_arg mk;
	int i, r;

	memset(&S, 0, sizeof(S));
	tr_n = 0;
	S.seed = seed;
	S.last_linked = -1;
	rs = seed ? seed : 1;
	S.entries = entries[rn(4)];
	if (skip("burst"))
		S.entries = 256;

	memset(&mk, 0, sizeof(mk));
	mk.o.uring_entries = S.entries;
	mk.o.threads = 1 + rn(3);
	if (rn(4) == 0 && !skip("thread")) {
		pthread_t th;

		pthread_create(&th, NULL, mk_thread, &mk);
		pthread_join(th, NULL);
		r = mk.r;
		S.loop = mk.loop;
	} else {
		r = evq_loop_new(&S.loop, &mk.o);
	}
	if (r != 0) {
		VIOL("evq_loop_new: %d", r);
		return -1;
	}
	for (i = 0; i < MAXFILES / 2; i++)
		if (file_open(i) != 0)
			return -1;

	for (i = 0; i < (int)steps && S.nops < MAXOPS - 40; i++) {
		unsigned a = rn(100), k = rn(MAXFILES);

		if (a < 14) {
			unsigned len = 2 + rn(rn(4) ? 4 : 14);

			if (skip("burst") && len > S.entries / 2)
				len = S.entries / 2 > 2 ? S.entries / 2 : 2;
			submit_chain(len);
		} else if (a < 24) {
			struct rop *o = op_random(false);

			if (o)
				submit(o, false);
		} else if (a < 30) {
			if (!skip("held"))
				held_chain();
		} else if (a < 34) {
			if (skip("burst"))
				continue;
			nop_burst();
			submit_chain(2 + rn(4));
		} else if (a < 40) {
			if (S.files[k].kind == F_NONE)
				file_open((int)k);
		} else if (a < 44) {
			if (!skip("close"))
				plain_close((int)k);
		} else if (a < 54) {
			int p = live_file(F_PIPE);

			if (p >= 0)
				feed(p);
		} else if (a < 60) {
			if (!skip("watch"))
				watcher_start();
		} else if (a < 63) {
			struct rwatch *w = &S.w[rn(MAXW)];

			evq_io_stop(&w->io);
			w->active = false;
		} else if (a < 67) {
			if (!skip("timer"))
				timer_start();
		} else if (a < 69) {
			struct rtimer *t = &S.tm[rn(MAXT)];

			evq_timer_stop(&t->t);
			t->active = false;
		} else if (a < 70) {
			if (rn(4) == 0 && !skip("fork"))
				do_fork();
		} else {
			run_once();
		}
		/* a dead pipe's write end goes once nothing writes to it */
		for (k = 0; k < MAXFILES; k++)
			if (S.files[k].kind == F_PIPE && S.files[k].dead &&
			    S.files[k].fd[1] >= 0 && !file_busy((int)k)) {
				close(S.files[k].fd[1]);
				S.files[k].fd[1] = -1;
			}
		if (S.errors)
			break;
	}

	/* Feed every pipe so held chains can go on, run a little, free. */
	for (i = 0; i < 4; i++) {
		int k;

		for (k = 0; k < MAXFILES; k++)
			if (S.files[k].kind == F_PIPE && !S.files[k].dead) {
				feed(k);
				feed(k);
			}
		run_once();
	}
	r = evq_loop_free(S.loop);
	if (r != 0)
		VIOL("evq_loop_free: %d", r);
	for (i = 0; i < S.nops; i++)
		if (S.ops[i].submitted && S.ops[i].ncb != 1)
			VIOL("op %d (%s) completed %d times by the end", i,
			     kname(S.ops[i].kind), S.ops[i].ncb);
	for (i = 0; i < MAXFILES; i++) {
		struct rfile *f = &S.files[i];

		if (f->kind == F_MEMFD && !f->dead)
			memfd_check(i);
		if (f->kind == F_PIPE && !f->dead)
			pipe_drain_check(i);
		if (f->kind != F_NONE && (!f->dead || f->open_after_op))
			t_close(f->fd[0]);
		if (f->kind != F_NONE)
			t_close(f->fd[1]);
	}
	total_seqs++;
	return S.errors ? -1 : 0;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

static int random_sequences_keep_evq_promises(void)
{
	uint64_t budget = env_u64("EVQ_RANDOM_SECONDS", 6);
	uint64_t one = env_u64("EVQ_RANDOM_SEED", 0);
	uint64_t base = env_u64("EVQ_RANDOM_BASE", 0);
	unsigned steps = (unsigned)env_u64("EVQ_RANDOM_STEPS", 300);
	uint64_t t0 = t_now_ns(), end = t0 + budget * 1000000000ull;
	uint64_t i;

	t_case_timeout((unsigned)budget + 30);
	trace = env_u64("EVQ_RANDOM_TRACE", 0) != 0;
	if (getenv("EVQ_RANDOM_SKIP"))
		skip_list = getenv("EVQ_RANDOM_SKIP");
	signal(SIGPIPE, SIG_IGN);
	t_raise_nofile(4096);
	if (one) {
		t_note("replaying seed %#llx", (unsigned long long)one);
		seq_run(one, steps);
		return t_failed ? T_FAIL : T_PASS;
	}
	if (!base)
		base = (t_now_ns() ^ (uint64_t)getpid() << 32) & ~0xffffull;
	t_note("base seed %#llx, %llu s (EVQ_RANDOM_BASE, "
	       "EVQ_RANDOM_SECONDS)", (unsigned long long)base,
	       (unsigned long long)budget);
	for (i = 0; t_now_ns() < end; i++) {
		T_STEP("sequence seed %#llx", (unsigned long long)(base + i));
		alarm((unsigned)budget + 30);
		if (seq_run(base + i, steps) != 0) {
			t_note("first failure after %llu sequences, %.2f s",
			       (unsigned long long)i,
			       (double)(t_now_ns() - t0) / 1e9);
			return T_FAIL;
		}
	}
	t_note("%llu sequences, %llu callbacks checked in %.1f s",
	       (unsigned long long)total_seqs,
	       (unsigned long long)total_calls,
	       (double)(t_now_ns() - t0) / 1e9);
	return T_PASS;
}

int main(int argc, char **argv)
{
	static const struct t_case cases[] = {
		T_CASE(random_sequences_keep_evq_promises),
	};

	return t_main(argc, argv, cases, T_NELEM(cases));
}
