/* SPDX-License-Identifier: MIT */
/*
 * test_msg.c - cross-loop messages (evq_port_*, evq_msg_send): several
 * threads, with loops of their own or without, send to a port; every
 * message arrives once, in order per sender, in the port's thread (count
 * and checksum over 100,000+ messages); a send never waits for a receiver
 * that does not run; a stop and a loop's free deliver what is in flight;
 * uring and epoll loops talk to each other both ways; an embedded loop's
 * fd wakes for a message; errors.
 *
 * Labelled `threads`: the TSan build runs it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NSEND 8		/* senders per case, at most */
#define BATCH 64	/* messages a sending loop sends per iteration */

static uint64_t val_of(unsigned id, uint64_t seq)
{
	return (seq + 1) * 0x9E3779B97F4A7C15ull ^ id;
}

/* ------------------------------------------------------------------------
 * The receiving end
 * ------------------------------------------------------------------------ */

struct rx {
	struct evq_port port;
	pthread_t thread;	/* where callbacks must run */
	long count;
	uint64_t sum;
	uint64_t next[NSEND];	/* the seq expected next, per sender */
	long disorder;
	long wrong_thread;
	long drained;		/* delivered with the port stopped */
	long stop_port_at;	/* stop the port at this count (0: never) */
	long want;		/* stop the loop at this count (0: never) */
};

static void rx_cb(struct evq_loop *loop, struct evq_port *p,
		  struct evq_msg *m)
{
	struct rx *r = p->data;
	unsigned id = (unsigned)(m->tag >> 32);
	uint64_t seq = m->tag & 0xffffffffu;

	if (!pthread_equal(pthread_self(), r->thread))
		r->wrong_thread++;
	if (id >= NSEND || seq != r->next[id])
		r->disorder++;
	else
		r->next[id]++;
	r->sum += *(const uint64_t *)m->ptr;
	r->count++;
	if (!evq_port_is_active(p))
		r->drained++;
	if (r->count == r->stop_port_at)
		evq_port_stop(p);
	if (r->count == r->want)
		evq_loop_stop(loop);
}

static int rx_start(struct evq_loop *loop, struct rx *r)
{
	memset(r, 0, sizeof(*r));
	r->port.data = r;
	r->thread = pthread_self();
	return evq_port_start(loop, &r->port, rx_cb);
}

/* ------------------------------------------------------------------------
 * The sending ends: a thread with a loop of its own (sends BATCH per
 * iteration from a deferred call, `from` = its loop), or without one
 * (`from` NULL, a tight loop of sends)
 * ------------------------------------------------------------------------ */

struct tx {
	struct evq_loop *loop;	/* NULL: a plain thread */
	struct evq_port *to;
	struct evq_msg *msgs;
	uint64_t *vals;
	unsigned id;
	long n;			/* to send */
	long sent;		/* sends that returned 0 */
	long errors;		/* other returns (-EPIPE ends a run) */
	int last_err;
	bool until_epipe;	/* send until the port says -EPIPE */
	int run_ret;
	uint64_t sum;		/* of the values sent */
	struct evq_defer d;
	pthread_t th;
};

static int tx_send_one(struct tx *t)
{
	struct evq_msg *m = &t->msgs[t->sent];
	int r;

	t->vals[t->sent] = val_of(t->id, (uint64_t)t->sent);
	m->ptr = &t->vals[t->sent];
	m->tag = (uint64_t)t->id << 32 | (uint64_t)t->sent;
	r = evq_msg_send(t->loop, t->to, m);
	if (r == 0) {
		t->sum += t->vals[t->sent];
		t->sent++;
	} else {
		t->errors++;
		t->last_err = r;
	}
	return r;
}

static void tx_defer_cb(struct evq_loop *loop, struct evq_defer *d)
{
	struct tx *t = d->data;

	for (int i = 0; i < BATCH && t->sent < t->n; i++)
		if (tx_send_one(t) != 0)
			return;
	if (t->sent < t->n)
		evq_defer_start(loop, d, tx_defer_cb);
}

static void *tx_thread(void *arg)
{
	struct tx *t = arg;

	if (t->loop) {
		t->d.data = t;
		evq_defer_start(t->loop, &t->d, tx_defer_cb);
		t->run_ret = evq_loop_run(t->loop, EVQ_RUN_DEFAULT);
		return NULL;
	}
	while (t->sent < t->n)
		if (tx_send_one(t) != 0)
			break;
	return NULL;
}

/* Make sender id: its arrays, and its loop of `backend` (AUTO:
 * EVQ_BACKEND's) when with_loop. */
static int tx_init(struct tx *t, unsigned id, struct evq_port *to, long n,
		   bool with_loop, enum evq_backend backend)
{
	memset(t, 0, sizeof(*t));
	t->id = id;
	t->to = to;
	t->n = n;
	t->msgs = calloc((size_t)n, sizeof(*t->msgs));
	t->vals = calloc((size_t)n, sizeof(*t->vals));
	ASSERT_NOTNULL(t->msgs);
	ASSERT_NOTNULL(t->vals);
	if (with_loop) {
		struct evq_loop_options o = { .backend = backend };

		if (backend == EVQ_BACKEND_AUTO)
			t->loop = t_loop_new();
		else
			ASSERT_OK(evq_loop_new(&t->loop, &o));
		ASSERT_NOTNULL(t->loop);
	}
	return T_PASS;
}

static void tx_fini(struct tx *t)
{
	if (t->loop)
		t_loop_free(t->loop);
	free(t->msgs);
	free(t->vals);
}

/* Run the receiving loop in this thread until r->want messages came. */
static int rx_run(struct evq_loop *loop, struct rx *r, unsigned ms)
{
	struct t_guard g;
	int ret;

	(void)r;
	ASSERT_OK(t_guard_start(loop, &g, ms, "messages did not all arrive"));
	ret = evq_loop_run(loop, EVQ_RUN_DEFAULT);
	t_guard_stop(&g);
	ASSERT_GE(ret, 0);
	ASSERT_EQ(g.fired, 0);
	return T_PASS;
}

/* n messages from each of nloop senders with a loop of tx_backend and
 * nplain plain threads, to a port on a loop of rx_backend (AUTO:
 * EVQ_BACKEND's), run in this thread: all arrive, once, in order. */
static int exchange(enum evq_backend rx_backend, enum evq_backend tx_backend,
		    unsigned nloop, unsigned nplain, long n)
{
	struct evq_loop_options o = { .backend = rx_backend };
	struct evq_loop *loop = NULL;
	struct tx tx[NSEND];
	struct rx r;
	uint64_t sum = 0;
	unsigned i, ns = nloop + nplain;

	if (rx_backend == EVQ_BACKEND_AUTO)
		loop = t_loop_new();
	else
		ASSERT_OK(evq_loop_new(&loop, &o));
	ASSERT_NOTNULL(loop);
	ASSERT_OK(rx_start(loop, &r));
	r.want = (long)ns * n;
	for (i = 0; i < ns; i++)
		if (tx_init(&tx[i], i, &r.port, n, i < nloop, tx_backend))
			return T_FAIL;
	T_STEP("%u senders with a loop, %u without, %ld messages each",
	       nloop, nplain, n);
	for (i = 0; i < ns; i++)
		ASSERT_OK(pthread_create(&tx[i].th, NULL, tx_thread, &tx[i]));
	if (rx_run(loop, &r, 30000) != T_PASS)
		return T_FAIL;
	for (i = 0; i < ns; i++) {
		ASSERT_OK(pthread_join(tx[i].th, NULL));
		EXPECT_EQ(tx[i].errors, 0);
		EXPECT_EQ(tx[i].sent, n);
		EXPECT_EQ(tx[i].run_ret, 0);
		EXPECT_EQ(r.next[i], (uint64_t)n);
		sum += tx[i].sum;
		tx_fini(&tx[i]);
	}
	T_STEP("count, checksum, order, thread");
	EXPECT_EQ(r.count, (long)ns * n);
	EXPECT_EQ(r.sum, sum);
	EXPECT_EQ(r.disorder, 0);
	EXPECT_EQ(r.wrong_thread, 0);
	EXPECT_EQ(r.drained, 0);
	T_STEP("nothing more");
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	EXPECT_EQ(r.count, (long)ns * n);
	ASSERT_OK(evq_port_stop(&r.port));
	EXPECT_EQ(r.count, (long)ns * n);
	t_loop_free(loop);
	return T_PASS;
}

/* ------------------------------------------------------------------------ */

static int messages_from_four_threads_arrive_once_in_order(void)
{
	t_case_timeout(60);
	return exchange(EVQ_BACKEND_AUTO, EVQ_BACKEND_AUTO, 2, 2, 30000);
}

static int a_send_never_waits_for_a_receiver_that_does_not_run(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tx tx[2];
	struct rx r;
	uint64_t t0, sum;

	t_case_timeout(60);
	ASSERT_NOTNULL(loop);
	ASSERT_OK(rx_start(loop, &r));
	if (tx_init(&tx[0], 0, &r.port, 200000, false, EVQ_BACKEND_AUTO) ||
	    tx_init(&tx[1], 1, &r.port, 50000, true, EVQ_BACKEND_AUTO))
		return T_FAIL;
	T_STEP("200,000 sends from a thread, 50,000 from a loop's run");
	t0 = t_now_ns();
	ASSERT_OK(pthread_create(&tx[1].th, NULL, tx_thread, &tx[1]));
	tx_thread(&tx[0]);
	ASSERT_OK(pthread_join(tx[1].th, NULL));
	t_note("sent in %.1f ms", (double)(t_now_ns() - t0) / 1e6);
	ASSERT_EQ(tx[0].errors, 0);
	ASSERT_EQ(tx[0].sent, 200000);
	ASSERT_EQ(tx[1].errors, 0);
	ASSERT_EQ(tx[1].sent, 50000);
	ASSERT_EQ(tx[1].run_ret, 0);	/* its run ended: nothing waited */
	ASSERT_EQ(r.count, 0);
	T_STEP("the receiver runs: all of them, in order");
	r.want = 250000;
	if (rx_run(loop, &r, 30000) != T_PASS)
		return T_FAIL;
	sum = tx[0].sum + tx[1].sum;
	EXPECT_EQ(r.count, 250000);
	EXPECT_EQ(r.sum, sum);
	EXPECT_EQ(r.disorder, 0);
	EXPECT_EQ(r.next[0], 200000);
	EXPECT_EQ(r.next[1], 50000);
	tx_fini(&tx[0]);
	tx_fini(&tx[1]);
	ASSERT_OK(evq_port_stop(&r.port));
	t_loop_free(loop);
	return T_PASS;
}

struct rx_thread_arg {
	struct evq_loop *loop;
	struct rx *r;
	int ret;
};

static void *rx_thread(void *arg)
{
	struct rx_thread_arg *a = arg;

	a->r->thread = pthread_self();
	a->ret = evq_loop_run(a->loop, EVQ_RUN_DEFAULT);
	return NULL;
}

static int stopping_a_port_delivers_every_accepted_message(void)
{
	struct evq_loop *loop = t_loop_new();
	struct rx_thread_arg a;
	struct t_guard g;
	struct tx tx[3];
	struct rx r;
	pthread_t th;
	uint64_t sum = 0;
	long sent = 0;

	t_case_timeout(60);
	ASSERT_NOTNULL(loop);
	ASSERT_OK(rx_start(loop, &r));
	r.stop_port_at = 20000;
	for (unsigned i = 0; i < 3; i++) {
		if (tx_init(&tx[i], i, &r.port, 400000, i == 0,
			    EVQ_BACKEND_AUTO))
			return T_FAIL;
		tx[i].until_epipe = true;
	}
	ASSERT_OK(t_guard_start(loop, &g, 30000, "the port never stopped"));
	ASSERT_OK(evq_timer_unref(&g.timer));
	T_STEP("three senders until -EPIPE; the receiver's callback stops "
	       "the port at message 20,000, in its own thread");
	a = (struct rx_thread_arg){ .loop = loop, .r = &r };
	ASSERT_OK(pthread_create(&th, NULL, rx_thread, &a));
	for (unsigned i = 0; i < 3; i++)
		ASSERT_OK(pthread_create(&tx[i].th, NULL, tx_thread, &tx[i]));
	ASSERT_OK(pthread_join(th, NULL));
	for (unsigned i = 0; i < 3; i++)
		ASSERT_OK(pthread_join(tx[i].th, NULL));
	t_guard_stop(&g);
	ASSERT_EQ(g.fired, 0);
	ASSERT_EQ(a.ret, 0);
	for (unsigned i = 0; i < 3; i++) {
		/* each sender ended on -EPIPE, or sent all before the stop */
		if (tx[i].sent < tx[i].n) {
			EXPECT_EQ(tx[i].errors, 1);
			EXPECT_ERR(tx[i].last_err, -EPIPE);
		}
		EXPECT_EQ(r.next[i], (uint64_t)tx[i].sent);
		sent += tx[i].sent;
		sum += tx[i].sum;
	}
	t_note("accepted %ld, %ld of them delivered by the stop", sent,
	       r.drained);
	T_STEP("every accepted message was delivered, in order");
	EXPECT_GE(r.count, 20000);
	EXPECT_EQ(r.count, sent);
	EXPECT_EQ(r.sum, sum);
	EXPECT_EQ(r.disorder, 0);
	EXPECT_EQ(r.wrong_thread, 0);
	EXPECT_EQ(evq_port_is_active(&r.port), 0);
	for (unsigned i = 0; i < 3; i++)
		tx_fini(&tx[i]);
	t_loop_free(loop);
	return T_PASS;
}

static int freeing_the_loop_delivers_messages_in_flight(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tx tx[2];
	struct evq_msg late = { 0 };
	struct rx r;

	t_case_timeout(30);
	ASSERT_NOTNULL(loop);
	ASSERT_OK(rx_start(loop, &r));
	if (tx_init(&tx[0], 0, &r.port, 1000, false, EVQ_BACKEND_AUTO) ||
	    tx_init(&tx[1], 1, &r.port, 1000, true, EVQ_BACKEND_AUTO))
		return T_FAIL;
	T_STEP("2,000 messages to a loop that never runs");
	ASSERT_OK(pthread_create(&tx[1].th, NULL, tx_thread, &tx[1]));
	tx_thread(&tx[0]);
	ASSERT_OK(pthread_join(tx[1].th, NULL));
	ASSERT_EQ(tx[0].sent + tx[1].sent, 2000);
	ASSERT_EQ(r.count, 0);
	T_STEP("evq_loop_free() delivers them, in order, the port stopped");
	t_loop_free(loop);
	EXPECT_EQ(r.count, 2000);
	EXPECT_EQ(r.drained, 2000);
	EXPECT_EQ(r.disorder, 0);
	EXPECT_EQ(r.sum, tx[0].sum + tx[1].sum);
	EXPECT_EQ(evq_port_is_active(&r.port), 0);
	T_STEP("a send after that fails and leaves the message alone");
	ASSERT_ERR(evq_msg_send(NULL, &r.port, &late), -EPIPE);
	EXPECT_TRUE(late.next == NULL);
	tx_fini(&tx[0]);
	tx_fini(&tx[1]);
	return T_PASS;
}

static int a_callback_that_stops_its_port_gets_the_rest_in_the_stop(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tx t;
	struct rx r;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(rx_start(loop, &r));
	r.stop_port_at = 10;
	if (tx_init(&t, 0, &r.port, 100, false, EVQ_BACKEND_AUTO))
		return T_FAIL;
	T_STEP("100 messages queued; the 10th's callback stops the port");
	tx_thread(&t);
	ASSERT_EQ(t.sent, 100);
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_GE(t_run_once(loop, 5000), 0);
	EXPECT_EQ(r.count, 100);
	EXPECT_EQ(r.drained, 90);
	EXPECT_EQ(r.disorder, 0);
	EXPECT_EQ(evq_loop_active(loop), 0);
	T_STEP("stopped: sends fail, nothing more runs");
	ASSERT_ERR(evq_msg_send(NULL, &r.port, &t.msgs[0]), -EPIPE);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	EXPECT_EQ(r.count, 100);
	T_STEP("started again, it works again");
	r.stop_port_at = 0;
	ASSERT_OK(evq_port_start(loop, &r.port, rx_cb));
	t.msgs[0].tag = 0;	/* sender 0, seq 0 again */
	r.next[0] = 0;
	ASSERT_OK(evq_msg_send(NULL, &r.port, &t.msgs[0]));
	ASSERT_GE(t_run_once(loop, 5000), 0);
	EXPECT_EQ(r.count, 101);
	EXPECT_EQ(r.disorder, 0);
	ASSERT_OK(evq_port_stop(&r.port));
	tx_fini(&t);
	t_loop_free(loop);
	return T_PASS;
}

/* evq.h: a stopped watcher's memory may be freed at once, even from
 * inside any callback. A port whose callback stops it and frees it (here:
 * unmaps its page, so that a later read faults in every build) must not
 * be read again by the delivery that ran the callback (found by
 * test_random). */
static struct evq_port *unmap_port;
static long unmap_count;

static void unmap_cb(struct evq_loop *loop, struct evq_port *p,
		     struct evq_msg *m)
{
	(void)loop;
	(void)m;
	if (++unmap_count == 1 && p == unmap_port) {
		evq_port_stop(p);
		munmap(p, 4096);
		unmap_port = NULL;
	}
}

static int a_callback_may_stop_and_free_its_port(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_msg m[3];
	void *page;

	ASSERT_NOTNULL(loop);
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(page, MAP_FAILED);
	unmap_port = page;
	unmap_count = 0;
	ASSERT_OK(evq_port_start(loop, unmap_port, unmap_cb));
	T_STEP("three messages; the first's callback stops the port and "
	       "unmaps it");
	for (int i = 0; i < 3; i++) {
		m[i].tag = (uint64_t)i;
		ASSERT_OK(evq_msg_send(NULL, unmap_port, &m[i]));
	}
	ASSERT_GE(t_run_once(loop, 5000), 0);
	EXPECT_EQ(unmap_count, 3);
	EXPECT_EQ(evq_loop_active(loop), 0);
	t_loop_free(loop);
	return T_PASS;
}

/* Loops of two backends: skipped when this kernel has no io_uring. */
static bool have_uring(void)
{
	struct evq_loop_options o = { .backend = EVQ_BACKEND_URING };
	struct evq_loop *loop;

	if (evq_loop_new(&loop, &o) != 0)
		return false;
	evq_loop_free(loop);
	return true;
}

static int uring_and_epoll_loops_send_to_each_other(void)
{
	t_case_timeout(60);
	if (!have_uring())
		return t_skip("no io_uring loop here");
	T_STEP("uring loops to an epoll loop (the eventfd doorbell)");
	if (exchange(EVQ_BACKEND_EPOLL, EVQ_BACKEND_URING, 2, 0, 20000))
		return T_FAIL;
	T_STEP("epoll loops to a uring loop (the eventfd doorbell)");
	if (exchange(EVQ_BACKEND_URING, EVQ_BACKEND_EPOLL, 2, 0, 20000))
		return T_FAIL;
	T_STEP("uring loops to a uring loop (MSG_RING where the kernel has "
	       "it)");
	if (exchange(EVQ_BACKEND_URING, EVQ_BACKEND_URING, 2, 1, 20000))
		return T_FAIL;
	return T_PASS;
}

static int null_pointers_and_inactive_ports_are_errors(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_port p = { 0 };
	struct evq_msg m = { 0 };

	ASSERT_NOTNULL(loop);
	T_STEP("NULL");
	ASSERT_ERR(evq_port_start(NULL, &p, rx_cb), -EINVAL);
	ASSERT_ERR(evq_port_start(loop, NULL, rx_cb), -EINVAL);
	ASSERT_ERR(evq_port_start(loop, &p, NULL), -EINVAL);
	ASSERT_ERR(evq_msg_send(NULL, NULL, &m), -EINVAL);
	ASSERT_ERR(evq_msg_send(loop, &p, NULL), -EINVAL);
	ASSERT_ERR(evq_port_stop(NULL), -EINVAL);
	ASSERT_ERR(evq_port_unref(NULL), -EINVAL);
	ASSERT_ERR(evq_port_ref(NULL), -EINVAL);
	ASSERT_EQ(evq_port_is_active(NULL), 0);
	T_STEP("a port never started");
	ASSERT_EQ(evq_port_is_active(&p), 0);
	ASSERT_ERR(evq_msg_send(NULL, &p, &m), -EPIPE);
	ASSERT_ERR(evq_msg_send(loop, &p, &m), -EPIPE);
	ASSERT_OK(evq_port_stop(&p));
	ASSERT_EQ(evq_loop_active(loop), 0);
	T_STEP("started twice");
	p.data = NULL;
	ASSERT_OK(evq_port_start(loop, &p, rx_cb));
	ASSERT_ERR(evq_port_start(loop, &p, rx_cb), -EBUSY);
	ASSERT_EQ(evq_port_is_active(&p), 1);
	ASSERT_EQ(evq_loop_active(loop), 1);
	ASSERT_OK(evq_port_stop(&p));
	ASSERT_OK(evq_port_stop(&p));
	ASSERT_EQ(evq_loop_active(loop), 0);
	t_loop_free(loop);
	return T_PASS;
}

/* A loop sends to its own port from a callback of its run (from = the
 * loop): the port's callback stops it, and EVQ_RUN_DEFAULT returns. */
static struct tx *self_tx;

static void self_send_cb(struct evq_loop *loop, struct evq_defer *d)
{
	(void)loop;
	(void)d;
	tx_send_one(self_tx);
}

static int run_default_waits_for_a_port_unless_unref(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_defer d = { 0 };
	struct t_guard g;
	struct tx t;
	struct rx r;

	ASSERT_NOTNULL(loop);
	ASSERT_OK(rx_start(loop, &r));
	T_STEP("an unref'd port does not keep the loop running");
	ASSERT_OK(evq_port_unref(&r.port));
	ASSERT_OK(evq_port_unref(&r.port));
	ASSERT_EQ(evq_loop_active(loop), 0);
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	ASSERT_EQ(evq_port_is_active(&r.port), 1);
	T_STEP("ref'd, it does, until a message's callback stops it");
	ASSERT_OK(evq_port_ref(&r.port));
	ASSERT_EQ(evq_loop_active(loop), 1);
	if (tx_init(&t, 0, &r.port, 1, false, EVQ_BACKEND_AUTO))
		return T_FAIL;
	t.loop = loop;	/* a send from inside the loop's run */
	self_tx = &t;
	r.stop_port_at = 1;
	ASSERT_OK(evq_defer_start(loop, &d, self_send_cb));
	ASSERT_OK(t_guard_start(loop, &g, 10000, "the message never came"));
	ASSERT_OK(evq_timer_unref(&g.timer));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_DEFAULT), 0);
	t_guard_stop(&g);
	ASSERT_EQ(g.fired, 0);
	EXPECT_EQ(t.sent, 1);
	EXPECT_EQ(r.count, 1);
	EXPECT_EQ(r.drained, 0);
	EXPECT_EQ(evq_port_is_active(&r.port), 0);
	t.loop = NULL;
	tx_fini(&t);
	t_loop_free(loop);
	return T_PASS;
}

/* An embedded loop (evq_loop_fd) is woken by a message: through its
 * eventfd first, then, on uring, by a MSG_RING doorbell from a loop of
 * another thread (the ring's eventfd makes the embedding fd readable). */
static int embed_fd_ready(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };

	return poll(&pf, 1, 5000);
}

static int an_embedded_loop_wakes_for_a_message(void)
{
	struct evq_loop *loop = t_loop_new();
	struct tx t0, t;
	struct rx r;
	int fd;

	t_case_timeout(30);
	ASSERT_NOTNULL(loop);
	fd = evq_loop_fd(loop);
	if (fd == -ENOTSUP) {
		t_loop_free(loop);
		return t_skip("no evq_loop_fd() on this backend");
	}
	ASSERT_GE(fd, 0);
	ASSERT_OK(rx_start(loop, &r));
	if (tx_init(&t0, 0, &r.port, 1, false, EVQ_BACKEND_AUTO) ||
	    tx_init(&t, 1, &r.port, 1, true, EVQ_BACKEND_AUTO))
		return T_FAIL;
	ASSERT_TRUE(t_loop_settles(loop, fd));
	T_STEP("a message from a plain thread makes the fd readable");
	tx_thread(&t0);
	ASSERT_EQ(t0.sent, 1);
	ASSERT_EQ(embed_fd_ready(fd), 1);
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_EQ(r.count, 1);
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_TRUE(t_loop_settles(loop, fd));
	T_STEP("one from another loop's run in its thread too");
	ASSERT_OK(pthread_create(&t.th, NULL, tx_thread, &t));
	ASSERT_OK(pthread_join(t.th, NULL));
	ASSERT_EQ(t.sent, 1);
	ASSERT_EQ(t.errors, 0);
	ASSERT_EQ(t.run_ret, 0);
	ASSERT_EQ(embed_fd_ready(fd), 1);
	ASSERT_GE(evq_loop_run(loop, EVQ_RUN_NOWAIT), 0);
	EXPECT_EQ(r.count, 2);
	EXPECT_EQ(r.disorder, 0);
	ASSERT_OK(evq_port_stop(&r.port));
	tx_fini(&t0);
	tx_fini(&t);
	t_loop_free(loop);
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(messages_from_four_threads_arrive_once_in_order),
	T_CASE(a_send_never_waits_for_a_receiver_that_does_not_run),
	T_CASE(stopping_a_port_delivers_every_accepted_message),
	T_CASE(freeing_the_loop_delivers_messages_in_flight),
	T_CASE(a_callback_that_stops_its_port_gets_the_rest_in_the_stop),
	T_CASE(a_callback_may_stop_and_free_its_port),
	T_CASE(uring_and_epoll_loops_send_to_each_other),
	T_CASE(null_pointers_and_inactive_ports_are_errors),
	T_CASE(run_default_waits_for_a_port_unless_unref),
	T_CASE(an_embedded_loop_wakes_for_a_message),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
