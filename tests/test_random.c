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
 * (NOWAIT, ONCE, DEFAULT, and NOWAIT from a host polling evq_loop_fd());
 * loops made on another thread; fork with ops in flight; cross-loop
 * messages; unref'd watchers and ops.
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
 *  - a forked child frees its copy of the loop promptly;
 *  - cross-loop messages (ports started, stopped, restarted, freed from
 *    their callback; senders: the loop's thread, a plain thread, a loop
 *    on another thread): every accepted send delivered once, in the
 *    loop's thread, in order per sender, while its port's start lasts
 *    or inside the stop or free that ends it; -EPIPE keeps the message;
 *  - embedded runs (evq_loop_fd): a host that sleeps as long as
 *    evq_loop_timeout() says is woken for what the model knows is ready;
 *  - unref'd watchers, timers, ports and ops: evq_loop_active() as the
 *    model counts, EVQ_RUN_DEFAULT returns by itself when only work that
 *    ends is referenced, and its return says whether any is left;
 *  - link timeouts on reads of pipes that may stay empty: the target's
 *    callback first, then exactly one outcome (-ETIME after the target's
 *    -ECANCELED, -ECANCELED after the target's own result, -EALREADY
 *    when it could not be stopped), never early; what is linked behind
 *    runs only after the read got its 8 bytes; shutdown (the peer reads
 *    EOF; a pipe says -ENOTSOCK), socket (a new close-on-exec socket);
 *    splice pipe -> pipe and memfd -> pipe, whose records then are at
 *    home in the destination too.
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
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXOPS 1024
#define MAXFILES 12
#define MAXW 8
#define MAXT 4
#define TAG_MAGIC 0xa5ull
#define TAG_FEED 0xffffffu	/* written by the driver, not by an op */
#define MAXP 3			/* ports */
#define NSENDER 3		/* the loop's thread, a thread, a loop's */
#define MSGS_PER 160		/* messages per sender per sequence */

enum rkind { R_NOP, R_TIMEOUT, R_READ, R_WRITE, R_BADREAD, R_CLOSE,
	     R_CANCEL, R_LTIMEOUT, R_SPLICE, R_SHUTDOWN, R_SOCKET };
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
	int target;		/* cancel, link timeout: the op index */
	int file2;		/* splice: the source file, or -1 */
	int sock[2];		/* shutdown: its socket pair, or -1 */
	bool timed;		/* the target of a link timeout */
	bool hunted;		/* a cancel or close op was sent after it */
	size_t len;
	uint64_t ns;		/* timeout */
	uint64_t submit_ns;
	uint64_t tag;
	unsigned char buf[8];
	int ncb;
	int res;
	int seq;
	bool submitted;
	bool unref;		/* EVQ_OP_UNREF */
};

struct rwatch {
	struct evq_io io;
	bool active;		/* the model's view */
	int dead;		/* 1: a close op ended it, 2: a plain close */
	int dead_calls;		/* callbacks since a plain close */
	int file;
	int end;
	unsigned events;
	bool unref;
};

struct rtimer {
	struct evq_timer t;
	bool active;
	bool repeat;
	uint64_t earliest;	/* no callback before this */
	int fired;
	bool unref;
};

/* A message: state moves SENDING -> ACCEPTED (send returned 0) or
 * REJECTED (-EPIPE), and ACCEPTED or SENDING -> DELIVERED (the port's
 * callback; a send may return after its delivery). Atomic: senders run
 * in other threads. */
enum { M_FREE, M_SENDING, M_ACCEPTED, M_REJECTED, M_DELIVERED };

struct rmsg {
	struct evq_msg m;	/* first: the callback's m is the rmsg */
	int sender;
	int seq;		/* send order of its sender */
	int port;
	int gen;		/* the port's start it was sent to */
	int state;		/* atomic */
};

struct rport {
	struct evq_port *p;	/* static, or heap when it may be freed */
	struct evq_port *heap;	/* the heap one in use, if any */
	int gen;		/* starts so far */
	bool active;		/* the model's view */
	bool unref;
	bool in_stop;		/* inside evq_port_stop() */
	int users;		/* sender threads aiming at it */
};

/* A sender thread: plain (`from` NULL) or with a loop of its own that
 * sends from a deferred call in its run (`from` = that loop). */
struct rsender {
	pthread_t th;
	bool running;
	bool with_loop;
	int sender;
	int port;
	struct evq_port *p;
	int gen;
	int n;			/* messages to send */
	int bad;		/* sends that returned neither 0 nor -EPIPE */
	int bad_ret;
	int epipe_delivered;	/* -EPIPE, but the port had it */
	int done;		/* sends made */
	struct evq_loop *loop;
	struct evq_defer d;
	int loop_err;
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
	struct rport ports[MAXP];
	struct evq_port sport[MAXP];	/* the ports not on the heap */
	struct rmsg msgs[NSENDER][MSGS_PER];
	int nmsg[NSENDER];	/* used per sender */
	struct rsender thr;	/* one sender thread at a time */
	bool in_free;		/* inside evq_loop_free() */
	int loop_fd;		/* evq_loop_fd(), or < 0 */
	pthread_t main_th;
	long delivered;
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
 * pattern), close (plain closes), cancel, watch, timer, msg (ports and
 * messages), embed (evq_loop_fd and host runs), default (DEFAULT runs),
 * newops (all of the ops below; they draw from a stream of their own, so
 * with newops skipped a seed found before them replays step for step),
 * lt, splice, shutdown, socket. */
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

/* The ops added after the seeds in tests/CMakeLists.txt were found draw
 * from a stream of their own, so that EVQ_RANDOM_SKIP=newops replays
 * those seeds step for step. */
static uint64_t rs2;

static unsigned rn2(unsigned n)
{
	uint64_t x = rs2;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rs2 = x;
	return n ? (unsigned)((x * 0x2545f4914f6cdd1dull) % n) : 0;
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

/* Splices move records between files: (dst, src) pairs of identities,
 * so that a record of src is at home in dst (and what src got, too). */
static unsigned moved[256][2];
static unsigned nmoved;

static bool may_hold(unsigned ident, unsigned id, int depth)
{
	unsigned k;

	if (id == (ident & 0xffffff))
		return true;
	for (k = 0; k < nmoved && depth < 8; k++)
		if (moved[k][0] == (ident & 0xffffff) &&
		    may_hold(moved[k][1], id, depth + 1))
			return true;
	return false;
}

/* A record read back from a file or pipe must name that file's identity
 * (or one a splice moved in), and an op's record must come from an op
 * that succeeded. */
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
	if (!may_hold(ident, id, 0)) {
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
	case R_SPLICE: case R_SOCKET: return o->res >= 0;
	case R_SHUTDOWN: return o->res == 0;
	default: return false;
	}
}

static const char *kname(int k)
{
	static const char *n[] = { "nop", "timeout", "read", "write",
				   "read(bad fd)", "close", "cancel",
				   "link timeout", "splice", "shutdown",
				   "socket" };

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
		} else if (res != 0 && res != -ECANCELED &&
			   !(res == -EINTR && o->timed &&
			     t_backend_is("uring"))) {
			VIOL("op %d read of a pipe fed in 8-byte records: "
			     "res %d", i, res);
		}
		break;
	case R_LTIMEOUT: {
		/* evq_prep_link_timeout: the target's callback comes first;
		 * -ETIME after cancelling it (-ECANCELED, uring -EINTR),
		 * -EALREADY (uring also -ENOENT) when it could not be
		 * stopped and had its own result, -ECANCELED when the target
		 * completed first, whatever its result. */
		struct rop *t = &S.ops[o->target];
		bool uring = t_backend_is("uring");

		if (t->ncb != 1) {
			VIOL("op %d link timeout (res %d) completed before its "
			     "target %d (%s)", i, res, o->target,
			     kname(t->kind));
			break;
		}
		if (res == -ETIME) {
			uint64_t now = t_now_ns();

			if (t->res != -ECANCELED &&
			    !(t->res == -EINTR && uring))
				VIOL("op %d link timeout -ETIME, but its target "
				     "%d completed with %d", i, o->target,
				     t->res);
			if (now < o->submit_ns + o->ns)
				VIOL("op %d link timeout of %llu us fired after "
				     "%llu us", i,
				     (unsigned long long)o->ns / 1000,
				     (unsigned long long)(now - o->submit_ns)
					     / 1000);
		} else if (res == -EALREADY || (res == -ENOENT && uring)) {
			/* a cancel or close op of the model may have ended
			 * it first: that -ECANCELED is its own result */
			if (t->res == -ECANCELED && !t->hunted)
				VIOL("op %d link timeout %d (target not "
				     "stopped), but its target %d was "
				     "cancelled", i, res, o->target);
		} else if (res != -ECANCELED) {
			VIOL("op %d link timeout: res %d", i, res);
		}
		break;
	}
	case R_SPLICE:
		if (res == -EBADF)
			VIOL("op %d splice (fd %d) ran on a closed fd: it "
			     "escaped the close op that ended it", i, op->fd);
		else if (res >= 0 && (res > (int)o->len || res % 8))
			VIOL("op %d splice of %zu bytes of 8-byte records: "
			     "res %d", i, o->len, res);
		else if (res < 0 && res != -ECANCELED && res != -EPIPE &&
			 !(res == -EINTR && t_backend_is("uring")))
			VIOL("op %d splice: res %d", i, res);
		break;
	case R_SHUTDOWN:
		if (o->sock[0] >= 0) {
			char c;

			if (res == 0 && recv(o->sock[1], &c, 1,
					     MSG_DONTWAIT) != 0)
				VIOL("op %d shutdown(SHUT_WR) res 0, but the "
				     "peer reads no EOF", i);
			if (res != 0 && res != -ECANCELED)
				VIOL("op %d shutdown of a socket: res %d", i,
				     res);
			close(o->sock[0]);
			close(o->sock[1]);
			o->sock[0] = o->sock[1] = -1;
		} else if (res != -ENOTSOCK && res != -ECANCELED) {
			VIOL("op %d shutdown of a pipe: res %d", i, res);
		}
		break;
	case R_SOCKET:
		if (res >= 0) {
			struct stat sb;
			int fl = fcntl(res, F_GETFD);

			if (fstat(res, &sb) != 0 || !S_ISSOCK(sb.st_mode) ||
			    fl < 0 || !(fl & FD_CLOEXEC))
				VIOL("op %d socket: res %d is not a new "
				     "close-on-exec socket", i, res);
			close(res);
		} else if (res != -ECANCELED) {
			VIOL("op %d socket: res %d", i, res);
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
 * Cross-loop messages: ports on the sequence's loop; senders are the
 * loop's thread (from the driver and from port callbacks), a plain thread
 * and a thread with a loop of its own. The model (evq.h, "Cross-loop
 * messages"): a send that returned 0 is delivered exactly once, in the
 * loop's thread, in order per sender, while its port's start lasts or
 * inside the stop that ends it (never after that stop returned); a send
 * that returned -EPIPE keeps its message (never delivered).
 * ------------------------------------------------------------------------ */

static int m_state(const struct rmsg *rm)
{
	return __atomic_load_n(&rm->state, __ATOMIC_SEQ_CST);
}

/* A send's return, recorded; the delivery may have come first. Returns
 * false when the message was delivered although the send failed. */
static bool m_sent(struct rmsg *rm, int r)
{
	int want = M_SENDING;

	if (__atomic_compare_exchange_n(&rm->state, &want,
					r == 0 ? M_ACCEPTED : M_REJECTED,
					false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		return true;
	return r == 0;	/* delivered before the send returned: fine if 0 */
}

static struct rmsg *m_new(int sender, int port, int gen)
{
	struct rmsg *rm;

	if (S.nmsg[sender] >= MSGS_PER)
		return NULL;
	rm = &S.msgs[sender][S.nmsg[sender]];
	rm->sender = sender;
	rm->seq = S.nmsg[sender]++;
	rm->port = port;
	rm->gen = gen;
	rm->m.ptr = rm;
	rm->m.tag = (uint64_t)sender << 32 | (uint64_t)rm->seq;
	__atomic_store_n(&rm->state, M_SENDING, __ATOMIC_SEQ_CST);
	return rm;
}

/* A send from the loop's thread; from: the loop or NULL, both allowed. */
static void port_send_here(int port, bool from_loop)
{
	struct rport *rp = &S.ports[port];
	struct rmsg *rm;
	int r;

	if (!rp->p)
		return;
	rm = m_new(0, port, rp->gen);
	if (!rm)
		return;
	r = evq_msg_send(from_loop ? S.loop : NULL, rp->p, &rm->m);
	TR("send msg %d to port %d (gen %d, %s): %d\n", rm->seq, port,
	   rp->gen, rp->active ? "active" : "stopped", r);
	if (r != 0 && r != -EPIPE) {
		VIOL("evq_msg_send: %d", r);
		return;
	}
	if (r == 0 && !rp->active)
		VIOL("evq_msg_send to stopped port %d returned 0", port);
	if (r == -EPIPE && rp->active)
		VIOL("evq_msg_send to active port %d: -EPIPE", port);
	if (!m_sent(rm, r))
		VIOL("msg %d to port %d: send returned %d but it was "
		     "delivered", rm->seq, port, r);
	if (r == -EPIPE && (rm->m.ptr != rm ||
			    rm->m.tag != (uint64_t)rm->seq))
		VIOL("msg %d: -EPIPE, but its ptr or tag changed", rm->seq);
}

/* After a stop (or the loop's free) returned, and when a sender thread
 * is joined: a message accepted for a start that is over was lost. */
static void ports_check_lost(const char *when)
{
	int s, i;

	for (s = 0; s < NSENDER; s++)
		for (i = 0; i < S.nmsg[s]; i++) {
			struct rmsg *rm = &S.msgs[s][i];
			struct rport *rp = &S.ports[rm->port];

			if (m_state(rm) != M_ACCEPTED)
				continue;
			if (rm->gen == rp->gen && rp->active && !S.in_free)
				continue;
			if (s != 0 && S.thr.running)
				continue;	/* may be under way */
			VIOL("msg %d of sender %d to port %d (start %d): "
			     "accepted, never delivered (%s)", rm->seq, s,
			     rm->port, rm->gen, when);
			__atomic_store_n(&rm->state, M_DELIVERED,
					 __ATOMIC_SEQ_CST);
		}
}

static void port_start_model(int i);
static void port_stop_model(int i, bool and_free);

static void port_cb(struct evq_loop *loop, struct evq_port *p,
		    struct evq_msg *m)
{
	struct rmsg *rm = (struct rmsg *)m;
	struct rport *rp = p->data;
	int i = (int)(rp - S.ports), st, k;
	bool draining = rp->in_stop || S.in_free;

	(void)loop;
	if (in_child)
		return;		/* a forked child's free: its copy */
	total_calls++;
	if (!pthread_equal(pthread_self(), S.main_th))
		VIOL("port %d: callback in another thread", i);
	st = m_state(rm);
	TR("deliver msg %d of sender %d to port %d%s\n", rm->seq, rm->sender,
	   i, draining ? " (in its stop)" : "");
	if (st != M_ACCEPTED && st != M_SENDING) {
		VIOL("port %d: msg %d of sender %d delivered in state %d "
		     "(%s)", i, rm->seq, rm->sender, st,
		     st == M_DELIVERED ? "twice" :
		     st == M_REJECTED ? "its send said -EPIPE" : "never sent");
		return;
	}
	__atomic_store_n(&rm->state, M_DELIVERED, __ATOMIC_SEQ_CST);
	S.delivered++;
	if (rm->port != i || rm->gen != rp->gen)
		VIOL("msg %d of sender %d sent to port %d start %d, "
		     "delivered by port %d start %d: after the stop that "
		     "ended its start", rm->seq, rm->sender, rm->port, rm->gen,
		     i, rp->gen);
	if (!rp->active && !draining)
		VIOL("port %d: delivery while stopped, outside its stop", i);
	if (evq_port_is_active(p) != (!draining))
		VIOL("port %d: evq_port_is_active() %d in a callback %s", i,
		     evq_port_is_active(p),
		     draining ? "of its stop" : "of a run");
	/* In order per sender: nothing older of its sender to this start
	 * still waits. */
	for (k = 0; k < rm->seq; k++) {
		struct rmsg *o = &S.msgs[rm->sender][k];

		if (o->port == i && o->gen == rm->gen &&
		    m_state(o) == M_ACCEPTED) {
			VIOL("port %d: msg %d of sender %d delivered before "
			     "its older msg %d", i, rm->seq, rm->sender, k);
			break;
		}
	}
	if (draining)
		return;
	switch (rn(12)) {
	case 0:
		port_stop_model(i, false);
		break;
	case 1:
		port_stop_model(i, false);
		if (!rp->users)
			port_start_model(i);
		break;
	case 2:
		if (!rp->users)
			port_stop_model(i, true);
		break;
	case 3:
	case 4:
		port_send_here((int)rn(MAXP), true);
		break;
	}
}

static void port_start_model(int i)
{
	struct rport *rp = &S.ports[i];
	int r;

	if (rp->active || rp->users)
		return;
	if (!rp->p)
		rp->p = &S.sport[i];
	if (rn(4) == 0) {
		/* a port in memory of its own, which a callback may free */
		if (!rp->heap) {
			rp->heap = aligned_alloc(64, sizeof(struct evq_port));
			if (!rp->heap)
				return;
			memset(rp->heap, 0, sizeof(struct evq_port));
		}
		rp->p = rp->heap;
	}
	rp->p->data = rp;
	/* the mark is the struct's: set it on whichever this start uses */
	if (rn(4) == 0)
		rp->unref = !rp->unref;
	if (rp->unref)
		evq_port_unref(rp->p);
	else
		evq_port_ref(rp->p);
	r = evq_port_start(S.loop, rp->p, port_cb);
	TR("start port %d (gen %d)%s: %d\n", i, rp->gen + 1,
	   rp->unref ? " unref" : "", r);
	if (r != 0) {
		VIOL("evq_port_start: %d", r);
		return;
	}
	rp->gen++;
	rp->active = true;
}

static void port_stop_model(int i, bool and_free)
{
	struct rport *rp = &S.ports[i];
	int r;

	if (!rp->p)
		return;
	TR("stop port %d (gen %d)%s\n", i, rp->gen, and_free ?
	   " and free it" : "");
	rp->in_stop = true;
	r = evq_port_stop(rp->p);
	rp->in_stop = false;
	if (r != 0)
		VIOL("evq_port_stop: %d", r);
	rp->active = false;
	if (evq_port_is_active(rp->p))
		VIOL("port %d active after its stop", i);
	ports_check_lost("its port's stop returned");
	if (and_free && rp->p == rp->heap && !rp->users) {
		free(rp->heap);
		rp->heap = NULL;
		rp->p = NULL;
		rp->unref = false;
	}
}

/* The sender threads */
static int thr_send_one(struct rsender *t, struct evq_loop *from)
{
	struct rmsg *rm = &S.msgs[t->sender][t->done];
	int r;

	rm->sender = t->sender;
	rm->seq = t->done;
	rm->port = t->port;
	rm->gen = t->gen;
	rm->m.ptr = rm;
	rm->m.tag = (uint64_t)t->sender << 32 | (uint64_t)rm->seq;
	__atomic_store_n(&rm->state, M_SENDING, __ATOMIC_SEQ_CST);
	r = evq_msg_send(from, t->p, &rm->m);
	if (r != 0 && r != -EPIPE) {
		t->bad++;
		t->bad_ret = r;
	}
	if (!m_sent(rm, r))
		t->epipe_delivered++;
	t->done++;
	return r;
}

static void thr_defer_cb(struct evq_loop *loop, struct evq_defer *d)
{
	struct rsender *t = d->data;
	int k = 1 + (int)(t->n % 7);

	while (k-- > 0 && t->done < t->n)
		thr_send_one(t, loop);
	if (t->done < t->n)
		evq_defer_start(loop, d, thr_defer_cb);
}

static void *thr_main(void *arg)
{
	struct rsender *t = arg;

	if (t->with_loop) {
		t->loop_err = evq_loop_new(&t->loop, NULL);
		if (t->loop_err)
			return NULL;
		t->d.data = t;
		evq_defer_start(t->loop, &t->d, thr_defer_cb);
		t->loop_err = evq_loop_run(t->loop, EVQ_RUN_DEFAULT);
		evq_loop_free(t->loop);
		return NULL;
	}
	while (t->done < t->n) {
		thr_send_one(t, NULL);
		if (t->done % 5 == 0)
			sched_yield();
	}
	return NULL;
}

static void thr_join(void)
{
	struct rsender *t = &S.thr;

	if (!t->running)
		return;
	pthread_join(t->th, NULL);
	t->running = false;
	S.ports[t->port].users--;
	S.nmsg[t->sender] = t->done;
	TR("join sender %d: %d sends\n", t->sender, t->done);
	if (t->with_loop && t->loop_err < 0)
		VIOL("sender loop: %d", t->loop_err);
	if (t->bad)
		VIOL("sender %d: evq_msg_send returned %d", t->sender,
		     t->bad_ret);
	if (t->epipe_delivered)
		VIOL("sender %d: %d sends returned -EPIPE but were "
		     "delivered", t->sender, t->epipe_delivered);
	ports_check_lost("its sender was joined");
}

static void thr_spawn(void)
{
	struct rsender *t = &S.thr;
	int port = (int)rn(MAXP), sender = 1 + (int)rn(2);
	struct rport *rp = &S.ports[port];

	if (t->running || !rp->p || S.nmsg[sender] >= MSGS_PER)
		return;
	memset(t, 0, sizeof(*t));
	t->sender = sender;
	t->with_loop = sender == 2;
	t->port = port;
	t->p = rp->p;
	t->gen = rp->gen;
	t->n = 1 + (int)rn(MSGS_PER / 4);
	/* this thread's messages go on after those of the last one */
	t->done = S.nmsg[sender];
	t->n += t->done;
	if (t->n > MSGS_PER)
		t->n = MSGS_PER;
	rp->users++;
	TR("spawn sender %d (%s) to port %d (gen %d, %s): msgs %d..%d\n",
	   sender, t->with_loop ? "loop" : "plain", port, rp->gen,
	   rp->active ? "active" : "stopped", t->done, t->n - 1);
	if (pthread_create(&t->th, NULL, thr_main, t) != 0) {
		rp->users--;
		return;
	}
	t->running = true;
}

/* A thread aiming at a port that was stopped when it started must have
 * had only -EPIPE: checked at its join through the states. */

/* ------------------------------------------------------------------------
 * Reference counts: evq_loop_active() against the model
 * ------------------------------------------------------------------------ */

/* What keeps the loop running in the model's view: [lo, hi] (watchers
 * whose fd was closed behind evq's back are stopped when evq notices),
 * and whether some of it never ends by itself. */
static void active_range(unsigned *lo, unsigned *hi, bool *endless)
{
	int i;

	*lo = *hi = 0;
	*endless = false;
	for (i = 0; i < MAXW; i++) {
		struct rwatch *w = &S.w[i];

		if (!w->active || w->unref || w->dead == 1)
			continue;
		(*hi)++;
		*endless = true;
		/* a close op in flight may have ended it already */
		if (!w->dead && !S.files[w->file].dead)
			(*lo)++;
	}
	for (i = 0; i < MAXT; i++)
		if (S.tm[i].active && !S.tm[i].unref) {
			(*lo)++, (*hi)++;
			if (S.tm[i].repeat)
				*endless = true;
		}
	if (evq_timer_is_active(&S.tick))
		(*lo)++, (*hi)++;
	for (i = 0; i < MAXP; i++)
		if (S.ports[i].active && !S.ports[i].unref) {
			(*lo)++, (*hi)++;
			*endless = true;
		}
	for (i = 0; i < S.nops; i++) {
		struct rop *o = &S.ops[i];

		if (!o->submitted || o->ncb)
			continue;
		/* a read of a pipe may wait forever, and so may what is
		 * linked behind it */
		if (o->kind == R_READ || o->kind == R_SPLICE)
			*endless = true;
		if (!o->unref)
			(*lo)++, (*hi)++;
	}
}

static void check_active(const char *when)
{
	unsigned lo, hi, a = evq_loop_active(S.loop);
	bool endless;

	active_range(&lo, &hi, &endless);
	if (a < lo || a > hi) {
		int i, nw = 0, nt = 0, np = 0, no = 0;

		for (i = 0; i < MAXW; i++)
			nw += evq_io_is_active(&S.w[i].io) && !S.w[i].unref;
		for (i = 0; i < MAXT; i++)
			nt += evq_timer_is_active(&S.tm[i].t) &&
			      !S.tm[i].unref;
		for (i = 0; i < MAXP; i++)
			np += S.ports[i].p && !S.ports[i].unref &&
			      evq_port_is_active(S.ports[i].p);
		for (i = 0; i < S.nops; i++) {
			no += evq_op_is_active(&S.ops[i].op) &&
			      !S.ops[i].unref;
			if (evq_op_is_active(&S.ops[i].op) !=
			    (S.ops[i].submitted && !S.ops[i].ncb))
				TR("op %d: active %d, model %d\n", i,
				   evq_op_is_active(&S.ops[i].op),
				   S.ops[i].submitted && !S.ops[i].ncb);
		}
		for (i = 0; i < MAXW; i++)
			if (evq_io_is_active(&S.w[i].io) != S.w[i].active)
				TR("watcher %d: active %d, model %d dead %d "
				   "unref %d\n", i, evq_io_is_active(&S.w[i].io),
				   S.w[i].active, S.w[i].dead, S.w[i].unref);
		for (i = 0; i < MAXT; i++)
			if (evq_timer_is_active(&S.tm[i].t) != S.tm[i].active)
				TR("timer %d: active %d, model %d\n", i,
				   evq_timer_is_active(&S.tm[i].t),
				   S.tm[i].active);
		for (i = 0; i < MAXP; i++)
			if (S.ports[i].p && evq_port_is_active(S.ports[i].p)
			    != S.ports[i].active)
				TR("port %d: active %d, model %d\n", i,
				   evq_port_is_active(S.ports[i].p),
				   S.ports[i].active);
		tr_n += 0;
		VIOL("evq_loop_active() %u %s, the model says %u..%u (evq "
		     "says active: %d watchers, %d timers, tick %d, %d ports, "
		     "%d ops)", a, when, lo, hi, nw, nt,
		     evq_timer_is_active(&S.tick), np, no);
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
		    (S.ops[k].file == i || S.ops[k].file2 == i))
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
	o->file2 = -1;
	o->sock[0] = o->sock[1] = -1;
	o->tag = mk_tag(0, (unsigned)S.nops);
	S.nops++;
	return o;
}

/* A live file of that kind (F_NONE: any), looked for from start on. */
static int live_file_from(int kind, int start)
{
	for (int i = 0; i < MAXFILES; i++) {
		int k = (start + i) % MAXFILES;

		if (S.files[k].kind != F_NONE && !S.files[k].dead &&
		    (kind == F_NONE || S.files[k].kind == kind))
			return k;
	}
	return -1;
}

static int live_file(int kind)
{
	return live_file_from(kind, (int)rn(MAXFILES));
}

/* The same from the newops stream (rn2): a seed found without the new
 * ops replays with them skipped. */
static int live_file2(int kind)
{
	return live_file_from(kind, (int)rn2(MAXFILES));
}

/* The ops of the newops merge: splice (pipe -> pipe, memfd -> pipe: the
 * records keep their identity, now at home in the destination too),
 * shutdown (of a fresh socket pair: the peer then reads EOF; of a pipe:
 * -ENOTSOCK), socket. NULL when nothing fits. */
static struct rop *op_random_new(void)
{
	struct rop *o;
	int dst, src;

	switch (rn2(4)) {
	case 0:
	case 1:
		if (skip("splice"))
			return NULL;
		dst = live_file2(F_PIPE);
		src = rn2(2) ? live_file2(F_PIPE) : live_file2(F_MEMFD);
		if (dst < 0 || src < 0 || src == dst)
			return NULL;
		o = op_new(R_SPLICE);
		if (!o)
			return NULL;
		o->file = dst;
		o->file2 = src;
		o->ident = S.files[dst].ident;
		o->len = 8 * (1 + rn2(2));
		if (nmoved < 256) {
			moved[nmoved][0] = S.files[dst].ident & 0xffffff;
			moved[nmoved++][1] = S.files[src].ident & 0xffffff;
		}
		evq_prep_splice(&o->op, S.files[src].fd[0],
				S.files[src].kind == F_PIPE ? -1 :
				(int64_t)rn2(64) * 8, S.files[dst].fd[1], -1,
				o->len, 0);
		return o;
	case 2:
		if (skip("shutdown"))
			return NULL;
		o = op_new(R_SHUTDOWN);
		if (!o)
			return NULL;
		if (rn2(4) == 0 && (dst = live_file2(F_PIPE)) >= 0) {
			o->file = dst;
			o->ident = S.files[dst].ident;
			evq_prep_shutdown(&o->op, S.files[dst].fd[0], SHUT_WR);
			return o;
		}
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
			       SOCK_CLOEXEC, 0, o->sock) != 0) {
			o->sock[0] = o->sock[1] = -1;
			S.nops--;
			return NULL;
		}
		evq_prep_shutdown(&o->op, o->sock[0], SHUT_WR);
		return o;
	default:
		if (skip("socket"))
			return NULL;
		o = op_new(R_SOCKET);
		if (o)
			evq_prep_socket(&o->op, AF_UNIX, SOCK_STREAM |
					SOCK_NONBLOCK | SOCK_CLOEXEC, 0, 0);
		return o;
	}
}

/* A link timeout for target, the op just submitted with EVQ_OP_LINK;
 * link: the timeout is linked too, so the next op waits for the
 * target's full success. */
static int submit(struct rop *o, bool link);

static void submit_lt(int target, bool link)
{
	struct rop *o = skip("lt") ? NULL : op_new(R_LTIMEOUT);

	if (!o)
		return;
	o->target = target;
	o->ns = rn2(3) ? (uint64_t)rn2(20000) * 1000 : 0;
	evq_prep_link_timeout(&o->op, o->ns);
	S.ops[target].timed = true;
	if (submit(o, link) == 0)
		S.last_linked = link ? target : -1;
}

/* A read of a pipe that may stay empty, with a link timeout; sometimes
 * an op linked behind (it runs only if the read got its 8 bytes). */
static void lt_step(void)
{
	int p = live_file2(F_PIPE);
	struct rop *r, *n;
	bool more = rn2(2);

	if (p < 0 || !(r = op_new(R_READ)))
		return;
	r->file = p;
	r->ident = S.files[p].ident;
	r->len = 8;
	evq_prep_read(&r->op, S.files[p].fd[0], r->buf, 8,
		      EVQ_OFFSET_CURRENT);
	if (submit(r, true) != 0)
		return;
	submit_lt((int)(r - S.ops), more);
	if (more && (n = op_new(R_NOP)) != NULL) {
		evq_prep_nop(&n->op);
		submit(n, false);
	}
}

/* Prepare a random op; NULL when nothing fits. */
static struct rop *op_random(bool chain_member)
{
	int file;
	struct rop *o;
	unsigned k;

	if (!skip("newops") && rn2(5) == 0 && (o = op_random_new()) != NULL)
		return o;
	k = rn(chain_member ? 5 : 7);

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
			    S.ops[t].ncb == 0 && S.ops[t].kind != R_CANCEL &&
			    S.ops[t].kind != R_LTIMEOUT)
				break;
			t = -1;
		}
		if (t < 0)
			return op_random(chain_member);
		o = op_new(R_CANCEL);
		if (!o)
			return NULL;
		o->target = t;
		S.ops[t].hunted = true;
		evq_prep_cancel(&o->op, &S.ops[t].op);
		return o;
	}
	default: {
		int t;

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
		for (t = 0; t < S.nops; t++)
			if (S.ops[t].file == file || S.ops[t].file2 == file)
				S.ops[t].hunted = true;
		return o;
	}
	}
}

static int submit(struct rop *o, bool link)
{
	int r;

	o->pred = o->kind == R_LTIMEOUT ? -1 : S.last_linked;
	o->submit_ns = t_now_ns();
	o->unref = rn(5) == 0;
	r = evq_op_submit(S.loop, &o->op, (link ? EVQ_OP_LINK : 0) |
			  (o->unref ? EVQ_OP_UNREF : 0), op_cb);
	if (r != 0) {
		VIOL("evq_op_submit(%s): %d", kname(o->kind), r);
		return r;
	}
	o->submitted = true;
	TR("submit op %d %s fd %d file %d%s%s pred %d\n", (int)(o - S.ops),
	   kname(o->kind), o->op.fd, o->file, link ? " LINK" : "",
	   o->unref ? " UNREF" : "", o->pred);
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
		if (o->kind == R_READ && !skip("newops") && rn2(3) == 0)
			submit_lt((int)(o - S.ops), true);
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
	if (rn(4) == 0) {
		/* the mark is the watcher's: it stays across starts */
		w->unref = !w->unref;
		if (w->unref)
			evq_io_unref(&w->io);
		else
			evq_io_ref(&w->io);
	}
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
	if (rn(4) == 0) {
		r->unref = !r->unref;
		if (r->unref)
			evq_timer_unref(&r->t);
		else
			evq_timer_ref(&r->t);
	}
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
	else if (r != (evq_loop_active(S.loop) != 0))
		VIOL("evq_loop_run returned %d, evq_loop_active() %u", r,
		     evq_loop_active(S.loop));
	check_active("after a run");
}

/* Embedding (evq_loop_fd): the host sleeps on the fd as long as
 * evq_loop_timeout() says, then runs NOWAIT. What the model knows is
 * ready (a watcher on a memfd, or on a pipe with data; an accepted
 * message for an active port) must wake it: a host that waits 50 ms
 * where evq said "sleep longer" and sees a quiet fd has lost an event. */
static const char *model_ready(bool fds_only)
{
	static char why[64];
	int i, s, n;

	/* with nothing referenced active a run returns before it waits:
	 * unref'd watchers and ports do not run then (evq_loop_run) */
	if (!evq_loop_active(S.loop))
		return NULL;

	for (i = 0; i < MAXW; i++) {
		struct rwatch *w = &S.w[i];
		struct rfile *f = &S.files[w->file];

		if (!w->active || w->dead || f->dead || f->kind == F_NONE)
			continue;
		if (f->kind == F_MEMFD) {
			snprintf(why, sizeof(why), "watcher %d on a memfd", i);
			return why;
		}
		if ((w->events & EVQ_READ) &&
		    ioctl(f->fd[0], FIONREAD, &n) == 0 && n > 0) {
			snprintf(why, sizeof(why), "watcher %d on a pipe "
				 "with %d bytes", i, n);
			return why;
		}
	}
	for (s = 0; s < NSENDER && !fds_only; s++)
		for (i = 0; i < (s ? 0 : S.nmsg[0]); i++) {
			struct rmsg *rm = &S.msgs[s][i];

			if (m_state(rm) == M_ACCEPTED &&
			    S.ports[rm->port].active &&
			    S.ports[rm->port].gen == rm->gen) {
				snprintf(why, sizeof(why), "msg %d for port "
					 "%d", rm->seq, rm->port);
				return why;
			}
		}
	return NULL;
}

static void host_run(void)
{
	struct pollfd pf = { .fd = S.loop_fd, .events = POLLIN };
	const char *now = model_ready(true), *ready = model_ready(false);
	int64_t t = evq_loop_timeout(S.loop);
	int r, ms;

	S.last_linked = -1;
	if (t < -1)
		VIOL("evq_loop_timeout: %lld", (long long)t);
	/* An fd that is ready now must not cost the host a sleep: the loop
	 * fd is readable or the timeout 0. aio: a poll may complete from a
	 * kernel worker a moment after the write, so there the fd gets 20
	 * ms, and only a longer sleep counts. (Messages: the 50 ms check
	 * below; a MSG_RING doorbell waits in the sender's ring for its
	 * next wait.) */
	if (now && t != 0) {
		bool aio = t_backend_is("aio");

		if ((!aio || t < 0 || t > 20 * (int64_t)T_MS) &&
		    poll(&pf, 1, aio ? 20 : 0) == 0)
			VIOL("embedded loop: %s, but evq_loop_timeout() says "
			     "%lld and the loop fd is quiet: the host sleeps",
			     now, (long long)t);
	}
	if (t != 0) {
		ms = t < 0 || t > 50 * (int64_t)T_MS ? 50 :
		     (int)((t + T_MS - 1) / T_MS);
		r = poll(&pf, 1, ms);
		TR("host: timeout %lld ns, poll %d ms: %d%s%s\n",
		   (long long)t, ms, r, ready ? ", ready: " : "",
		   ready ? ready : "");
		if (r == 0 && ready && (t < 0 || t > 50 * (int64_t)T_MS))
			VIOL("embedded loop: %s, but evq_loop_timeout() said "
			     "%lld and the loop fd stayed quiet for 50 ms",
			     ready, (long long)t);
	}
	r = evq_loop_run(S.loop, EVQ_RUN_NOWAIT);
	if (r < 0)
		VIOL("evq_loop_run(NOWAIT) from the host: %d", r);
	check_active("after a host run");
}

/* EVQ_RUN_DEFAULT returns once nothing referenced is active: with only
 * work that ends by itself, it must return (a 3 s guard says it did
 * not); otherwise an unref'd timer stops it. Either way its return is 1
 * exactly when referenced work is left. */
static bool guard_fired;

static void guard_cb(struct evq_loop *loop, struct evq_timer *t)
{
	(void)t;
	guard_fired = true;
	evq_loop_stop(loop);
}

static void default_run(void)
{
	struct evq_timer guard = { 0 };
	unsigned lo, hi, a;
	bool endless;
	int r;

	S.last_linked = -1;
	active_range(&lo, &hi, &endless);
	if (lo != hi)
		endless = true;
	guard_fired = false;
	evq_timer_unref(&guard);
	evq_timer_start(S.loop, &guard, endless ? (1 + rn(20)) * T_MS :
			3000 * T_MS, 0, guard_cb);
	TR("run DEFAULT (%s, active %u..%u)\n", endless ? "endless" :
	   "ends", lo, hi);
	r = evq_loop_run(S.loop, EVQ_RUN_DEFAULT);
	evq_timer_stop(&guard);
	a = evq_loop_active(S.loop);
	if (r < 0)
		VIOL("evq_loop_run(DEFAULT): %d", r);
	else if (r != (a != 0))
		VIOL("evq_loop_run(DEFAULT) returned %d, evq_loop_active() "
		     "%u", r, a);
	/* a callback of this run may have started referenced work that
	 * does not end (a port): then the guard rightly had to stop it */
	if (!endless && guard_fired) {
		unsigned lo2, hi2;

		active_range(&lo2, &hi2, &endless);
		TR("guard fired; the model now says %s (active %u..%u)\n",
		   endless ? "endless" : "ends", lo2, hi2);
	}
	if (!endless && guard_fired)
		VIOL("evq_loop_run(DEFAULT) did not return in 3 s with only "
		     "work that ends (active %u)", a);
	check_active("after a DEFAULT run");
}

static void do_fork(void)
{
	pid_t pid;
	int status, i;

	thr_join();	/* a thread may hold a lock the child would need */
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
	nmoved = 0;
	S.seed = seed;
	S.last_linked = -1;
	rs = seed ? seed : 1;
	rs2 = (seed ^ 0x6e65776f7073ull) | 1;
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
	S.main_th = pthread_self();
	S.loop_fd = -1;
	if (rn(2) && !skip("embed")) {
		S.loop_fd = evq_loop_fd(S.loop);
		if (S.loop_fd < 0 && !(S.loop_fd == -ENOTSUP &&
				       t_backend_is("poll")))
			VIOL("evq_loop_fd: %d", S.loop_fd);
	}
	for (i = 0; i < MAXFILES / 2; i++)
		if (file_open(i) != 0)
			return -1;

	for (i = 0; i < (int)steps && S.nops < MAXOPS - 40; i++) {
		unsigned a = rn(125), k = rn(MAXFILES);

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
			if (!skip("newops") && rn2(2) == 0)
				lt_step();
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
		} else if (a < 100) {
			run_once();
		} else if (a < 104) {
			if (!skip("msg"))
				port_start_model((int)rn(MAXP));
		} else if (a < 106) {
			int p = (int)rn(MAXP);

			if (!skip("msg"))
				port_stop_model(p, rn(3) == 0 &&
						!S.ports[p].users);
		} else if (a < 111) {
			if (!skip("msg"))
				port_send_here((int)rn(MAXP), rn(2));
		} else if (a < 113) {
			if (!skip("msg") && !skip("thread"))
				thr_spawn();
		} else if (a < 114) {
			thr_join();
		} else if (a < 121) {
			if (S.loop_fd >= 0)
				host_run();
			else
				run_once();
		} else {
			if (!skip("default"))
				default_run();
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
	if (rn(2))
		thr_join();
	S.in_free = true;
	r = evq_loop_free(S.loop);
	S.in_free = false;
	if (r != 0)
		VIOL("evq_loop_free: %d", r);
	for (i = 0; i < MAXP; i++)
		S.ports[i].active = false;
	ports_check_lost("the loop's free returned");
	thr_join();
	for (i = 0; i < MAXP; i++)
		free(S.ports[i].heap);
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
