/* SPDX-License-Identifier: MIT */
/*
 * workload_msg.c - cross-loop messages: one loop passes N messages (a
 * pointer and a number) to a loop on another thread.
 *
 * Two loops, two threads: the sending loop sends BATCH messages per
 * iteration (from a callback of its loop, as a server's loop would hand
 * work to another core's loop), then goes through its loop's poll (it
 * does not block: there is more to send); the receiving loop sleeps until
 * woken, takes what was sent, and runs a callback per message (it counts
 * and sums them); its last one ends the run. Each message is a node the
 * sender owns, allocated before the timed part, in every contender: no
 * allocation per message anywhere, so what is compared is the queue and
 * the wakeup.
 *
 * The contenders are not the library's readiness API but each one's way
 * of doing this, chosen by the contender's name:
 *   evq-uring  evq_msg_send between two io_uring loops: the lock-free
 *              queue, and IORING_OP_MSG_RING as the receiver's wakeup
 *              (EVQ_URING_NO_MSG_RING=1 in the environment: the eventfd);
 *   evq-epoll, evq-poll, evq-aio
 *              evq_msg_send between two loops of that backend: the
 *              lock-free queue and the receiving loop's eventfd;
 *   raw-epoll  the usual hand-written way: a mutex-protected queue, and
 *              an eventfd the sender writes when it finds the queue
 *              empty; two plain epoll loops;
 *   libuv      libuv's way: a mutex-protected queue, and uv_async_send()
 *              after every push (libuv merges the sends: it writes its
 *              eventfd only when the async is not pending already); the
 *              sender's loop iterates with a uv_idle_t.
 * The others have no cross-loop model written here (BENCH_CANNOT).
 *
 * Figures: messages per second of wall time from the start of the sends
 * to the last callback; CPU ns per message (process CPU time, both
 * threads: the receiver's sleeping costs nothing); syscalls per 1000
 * messages (both threads); and the receiving loop's wakeups per 1000
 * messages (evq: its waits, counted by a check hook; raw: its epoll_wait
 * calls; libuv: its async callbacks), which say how well sends batch.
 * After timing, the run checks the count, that each message came once and
 * in order (the receiver checks each one's number against the next it
 * expects) and the sum of the pointed-to values.
 *
 * msg-pingpong (mode 1): one message in flight; loop A sends node i to
 * loop B, B sends it back, A checks it and sends node i + 1. Every
 * message wakes a sleeping loop: the wakeup's own cost.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#ifdef BENCH_HAVE_EVQ
#include "evq.h"
#endif
#ifdef BENCH_HAVE_LIBUV
#include <uv.h>
#endif

#define MSG_N 1000000u		/* messages per timed run */
#define MSG_N_WARM 100000u	/* per warm-up run */
#define MSG_N_TEST 10000u	/* --test */
#define BATCH 64		/* messages per sending-loop iteration */

/* One message: the node and its payload. evq's struct evq_msg for evq;
 * a plain singly linked node for the mutex queues. */
struct mnode {
#ifdef BENCH_HAVE_EVQ
	struct evq_msg em;
#endif
	struct mnode *next;	/* the mutex queues' link */
	uint64_t seq;
	uint64_t val;
};

/* What both sides of a run share. */
struct mrun {
	struct mnode *nodes;
	uint64_t n;
	uint64_t sent;		/* sender only */
	uint64_t got;		/* receiver only */
	uint64_t wakeups;	/* receiver: its loop's waits that returned */
	uint64_t sum;
	uint64_t bad;		/* out of order or wrong value */
	int err;		/* a send that failed */
	pthread_barrier_t go;
	uint64_t t_start;	/* when both sides were released */
	uint64_t t_end;		/* when the last one came */
};

static void got_one(struct mrun *r, uint64_t seq, uint64_t val)
{
	if (seq != r->got || val != r->nodes[seq].val)
		r->bad++;
	r->sum += val;
	r->got++;
	if (r->got == r->n)
		r->t_end = bench_now_ns();
}

/* ------------------------------------------------------------------------
 * evq: ports and evq_msg_send
 * ------------------------------------------------------------------------ */

#ifdef BENCH_HAVE_EVQ
struct evq_side {
	struct mrun *r;
	struct evq_loop *loop;
	struct evq_port *to;	/* sender: the receiver's port */
	struct evq_defer d;
	struct evq_port port;	/* receiver */
	struct evq_hook check;	/* receiver: counts its waits */
};

static void evq_on_check(struct evq_loop *loop, struct evq_hook *h)
{
	struct evq_side *s = h->data;

	(void)loop;
	s->r->wakeups++;
}

static void evq_send_batch(struct evq_loop *loop, struct evq_defer *d)
{
	struct evq_side *s = d->data;
	struct mrun *r = s->r;

	for (int i = 0; i < BATCH && r->sent < r->n; i++) {
		struct mnode *m = &r->nodes[r->sent];
		int e;

		m->em.ptr = m;
		m->em.tag = m->seq;
		e = evq_msg_send(loop, s->to, &m->em);
		if (e < 0) {
			r->err = e;
			return;
		}
		r->sent++;
	}
	if (r->sent < r->n)
		evq_defer_start(loop, d, evq_send_batch);
}

static void evq_on_msg(struct evq_loop *loop, struct evq_port *p,
		       struct evq_msg *em)
{
	struct evq_side *s = p->data;
	struct mnode *m = em->ptr;

	(void)loop;
	got_one(s->r, em->tag, m->val);
	if (s->r->got == s->r->n)
		evq_port_stop(p);
}

static void *evq_sender(void *arg)
{
	struct evq_side *s = arg;

	pthread_barrier_wait(&s->r->go);
	s->d.data = s;
	evq_defer_start(s->loop, &s->d, evq_send_batch);
	if (evq_loop_run(s->loop, EVQ_RUN_DEFAULT) < 0 && !s->r->err)
		s->r->err = -EIO;
	return NULL;
}

/* msg-pingpong: A (this thread) sends node i to B, B sends it back, A
 * counts it and sends node i + 1. */
static void evq_pp_a(struct evq_loop *loop, struct evq_port *p,
		     struct evq_msg *em)
{
	struct evq_side *s = p->data;
	struct mrun *r = s->r;
	struct mnode *m = em->ptr;
	int e;

	got_one(r, em->tag, m->val);
	if (r->got == r->n) {
		evq_port_stop(p);
		return;
	}
	m = &r->nodes[r->got];
	m->em.ptr = m;
	m->em.tag = m->seq;
	if ((e = evq_msg_send(loop, s->to, &m->em)) < 0) {
		r->err = e;
		evq_port_stop(p);
	}
}

static void evq_pp_b(struct evq_loop *loop, struct evq_port *p,
		     struct evq_msg *em)
{
	struct evq_side *s = p->data;
	int e;

	if (em->tag == s->r->n - 1)
		evq_port_stop(p);	/* the last one */
	if ((e = evq_msg_send(loop, s->to, em)) < 0)
		s->r->err = e;
}

static void evq_pp_start(struct evq_loop *loop, struct evq_defer *d)
{
	struct evq_side *s = d->data;
	struct mnode *m = &s->r->nodes[0];

	m->em.ptr = m;
	m->em.tag = 0;
	if (evq_msg_send(loop, s->to, &m->em) < 0)
		s->r->err = -EPIPE;
}

static void *evq_pp_thread(void *arg)
{
	struct evq_side *s = arg;

	pthread_barrier_wait(&s->r->go);
	if (evq_loop_run(s->loop, EVQ_RUN_DEFAULT) < 0 && !s->r->err)
		s->r->err = -EIO;
	return NULL;
}

static int evq_pair(struct mrun *r, enum evq_backend b, int pingpong,
		    char *err, size_t errlen)
{
	struct evq_loop_options o = { .backend = b };
	struct evq_side rx = { .r = r }, tx = { .r = r };
	pthread_t th;
	int e;

	if ((e = evq_loop_new(&rx.loop, &o)) < 0 ||
	    (e = evq_loop_new(&tx.loop, &o)) < 0) {
		snprintf(err, errlen, "evq_loop_new: %s", strerror(-e));
		if (rx.loop)
			evq_loop_free(rx.loop);
		return e == -ENOTSUP || e == -ENOSYS ? BENCH_CANNOT : -1;
	}
	rx.port.data = &rx;
	evq_port_start(rx.loop, &rx.port, pingpong ? evq_pp_a : evq_on_msg);
	rx.check.data = &rx;
	evq_hook_start(rx.loop, &rx.check, EVQ_HOOK_CHECK, evq_on_check);
	evq_hook_unref(&rx.check);
	tx.to = &rx.port;
	if (pingpong) {
		tx.port.data = &tx;
		evq_port_start(tx.loop, &tx.port, evq_pp_b);
		rx.to = &tx.port;
		rx.d.data = &rx;
		evq_defer_start(rx.loop, &rx.d, evq_pp_start);
	}
	if (pthread_create(&th, NULL, pingpong ? evq_pp_thread : evq_sender,
			   &tx) != 0) {
		snprintf(err, errlen, "pthread_create failed");
		return -1;
	}
	pthread_barrier_wait(&r->go);
	r->t_start = bench_now_ns();
	e = evq_loop_run(rx.loop, EVQ_RUN_DEFAULT);
	pthread_join(th, NULL);
	evq_loop_free(tx.loop);
	evq_loop_free(rx.loop);
	if (e < 0) {
		snprintf(err, errlen, "evq_loop_run: %s", strerror(-e));
		return -1;
	}
	return 0;
}
#endif

/* ------------------------------------------------------------------------
 * The hand-written way: a mutex-protected queue and an eventfd
 * ------------------------------------------------------------------------ */

struct mqueue {
	pthread_mutex_t lock;
	struct mnode *head, *tail;
};

/* Push; true when the queue was empty (the pusher wakes the consumer). */
static int mq_push(struct mqueue *q, struct mnode *m)
{
	int was_empty;

	m->next = NULL;
	pthread_mutex_lock(&q->lock);
	was_empty = q->head == NULL;
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	pthread_mutex_unlock(&q->lock);
	return was_empty;
}

static struct mnode *mq_take(struct mqueue *q)
{
	struct mnode *m;

	pthread_mutex_lock(&q->lock);
	m = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->lock);
	return m;
}

struct raw_side {
	struct mrun *r;
	struct mqueue *q;
	int efd;		/* the receiver's eventfd */
	int epfd;		/* this side's loop */
};

static void *raw_sender(void *arg)
{
	struct raw_side *s = arg;
	struct mrun *r = s->r;
	struct epoll_event ev;
	uint64_t one = 1;

	pthread_barrier_wait(&r->go);
	while (r->sent < r->n) {
		for (int i = 0; i < BATCH && r->sent < r->n; i++) {
			if (mq_push(s->q, &r->nodes[r->sent]) &&
			    write(s->efd, &one, sizeof(one)) < 0)
				r->err = -errno;
			r->sent++;
		}
		/* the loop's poll between iterations, as the others do */
		epoll_wait(s->epfd, &ev, 1, 0);
	}
	return NULL;
}

/* msg-pingpong, B's side: send each node back. */
struct raw_pp {
	struct mrun *r;
	struct mqueue *qa, *qb;
	int efda, efdb, epfdb;
};

static void raw_push(struct mqueue *q, struct mnode *m, int efd, int *err)
{
	uint64_t one = 1;

	if (mq_push(q, m) && write(efd, &one, sizeof(one)) < 0)
		*err = -errno;
}

static void *raw_pp_thread(void *arg)
{
	struct raw_pp *b = arg;
	struct mrun *r = b->r;
	int done = 0;

	pthread_barrier_wait(&r->go);
	while (!done) {
		struct epoll_event ev;
		struct mnode *m, *next;
		uint64_t cnt;

		if (epoll_wait(b->epfdb, &ev, 1, -1) <= 0 ||
		    read(b->efdb, &cnt, sizeof(cnt)) < 0)
			continue;
		for (m = mq_take(b->qb); m; m = next) {
			next = m->next;
			done |= m->seq == r->n - 1;
			raw_push(b->qa, m, b->efda, &r->err);
		}
	}
	return NULL;
}

static int raw_pingpong(struct mrun *r, char *err, size_t errlen)
{
	struct mqueue qa = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mqueue qb = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct raw_pp b = { .r = r, .qa = &qa, .qb = &qb };
	struct epoll_event ev = { .events = EPOLLIN };
	int epfda = epoll_create1(EPOLL_CLOEXEC), ret = -1;
	pthread_t th;

	b.efda = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	b.efdb = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	b.epfdb = epoll_create1(EPOLL_CLOEXEC);
	if (epfda < 0 || b.efda < 0 || b.efdb < 0 || b.epfdb < 0 ||
	    epoll_ctl(epfda, EPOLL_CTL_ADD, b.efda, &ev) < 0 ||
	    epoll_ctl(b.epfdb, EPOLL_CTL_ADD, b.efdb, &ev) < 0) {
		snprintf(err, errlen, "eventfd/epoll: %s", strerror(errno));
		goto out;
	}
	if (pthread_create(&th, NULL, raw_pp_thread, &b) != 0) {
		snprintf(err, errlen, "pthread_create failed");
		goto out;
	}
	pthread_barrier_wait(&r->go);
	r->t_start = bench_now_ns();
	raw_push(&qb, &r->nodes[0], b.efdb, &r->err);
	while (r->got < r->n) {
		struct mnode *m, *next;
		uint64_t cnt;

		r->wakeups++;
		if (epoll_wait(epfda, &ev, 1, -1) <= 0 ||
		    read(b.efda, &cnt, sizeof(cnt)) < 0)
			continue;
		for (m = mq_take(&qa); m; m = next) {
			next = m->next;
			got_one(r, m->seq, m->val);
			if (r->got < r->n)
				raw_push(&qb, &r->nodes[r->got], b.efdb,
					 &r->err);
		}
	}
	pthread_join(th, NULL);
	ret = 0;
out:
	if (epfda >= 0)
		close(epfda);
	if (b.efda >= 0)
		close(b.efda);
	if (b.efdb >= 0)
		close(b.efdb);
	if (b.epfdb >= 0)
		close(b.epfdb);
	return ret;
}

static int raw_pair(struct mrun *r, char *err, size_t errlen)
{
	struct mqueue q = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct raw_side rx = { .r = r, .q = &q }, tx = { .r = r, .q = &q };
	struct epoll_event ev = { .events = EPOLLIN };
	pthread_t th;
	int ret = -1;

	rx.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rx.epfd = epoll_create1(EPOLL_CLOEXEC);
	tx.epfd = epoll_create1(EPOLL_CLOEXEC);
	tx.efd = rx.efd;
	if (rx.efd < 0 || rx.epfd < 0 || tx.epfd < 0 ||
	    epoll_ctl(rx.epfd, EPOLL_CTL_ADD, rx.efd, &ev) < 0) {
		snprintf(err, errlen, "eventfd/epoll: %s", strerror(errno));
		goto out;
	}
	if (pthread_create(&th, NULL, raw_sender, &tx) != 0) {
		snprintf(err, errlen, "pthread_create failed");
		goto out;
	}
	pthread_barrier_wait(&r->go);
	r->t_start = bench_now_ns();
	while (r->got < r->n) {
		struct epoll_event got;
		uint64_t cnt;
		struct mnode *m;

		r->wakeups++;
		if (epoll_wait(rx.epfd, &got, 1, -1) <= 0)
			continue;
		if (read(rx.efd, &cnt, sizeof(cnt)) < 0)
			continue;
		for (m = mq_take(&q); m; m = m->next)
			got_one(r, m->seq, m->val);
	}
	pthread_join(th, NULL);
	ret = 0;
out:
	if (rx.efd >= 0)
		close(rx.efd);
	if (rx.epfd >= 0)
		close(rx.epfd);
	if (tx.epfd >= 0)
		close(tx.epfd);
	return ret;
}

/* ------------------------------------------------------------------------
 * libuv's way: a mutex-protected queue and uv_async_send()
 * ------------------------------------------------------------------------ */

#ifdef BENCH_HAVE_LIBUV
struct uv_side {
	struct mrun *r;
	struct mqueue *q;
	uv_loop_t loop;
	uv_async_t async;	/* receiver */
	uv_async_t *to;		/* sender: the receiver's */
	struct mqueue *peer_q;	/* msg-pingpong: the other side's */
	uv_idle_t idle;		/* sender */
};

static void uv_on_async(uv_async_t *a)
{
	struct uv_side *s = a->data;
	struct mnode *m;

	s->r->wakeups++;	/* libuv runs it once per wakeup */
	for (m = mq_take(s->q); m; m = m->next)
		got_one(s->r, m->seq, m->val);
	if (s->r->got == s->r->n)
		uv_close((uv_handle_t *)a, NULL);
}

static void uv_send_batch(uv_idle_t *h)
{
	struct uv_side *s = h->data;
	struct mrun *r = s->r;

	for (int i = 0; i < BATCH && r->sent < r->n; i++) {
		mq_push(s->q, &r->nodes[r->sent++]);
		uv_async_send(s->to);
	}
	if (r->sent == r->n)
		uv_close((uv_handle_t *)h, NULL);
}

static void *uv_sender(void *arg)
{
	struct uv_side *s = arg;

	pthread_barrier_wait(&s->r->go);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* msg-pingpong: A's and B's async callbacks. */
static void uv_pp_a(uv_async_t *a)
{
	struct uv_side *s = a->data;
	struct mrun *r = s->r;
	struct mnode *m, *next;

	r->wakeups++;
	for (m = mq_take(s->q); m; m = next) {
		next = m->next;
		got_one(r, m->seq, m->val);
		if (r->got < r->n) {
			mq_push(s->peer_q, &r->nodes[r->got]);
			uv_async_send(s->to);
		}
	}
	if (r->got == r->n)
		uv_close((uv_handle_t *)a, NULL);
}

static void uv_pp_b(uv_async_t *a)
{
	struct uv_side *s = a->data;
	struct mnode *m, *next;
	int done = 0;

	for (m = mq_take(s->q); m; m = next) {
		next = m->next;
		done |= m->seq == s->r->n - 1;
		mq_push(s->peer_q, m);
		uv_async_send(s->to);
	}
	if (done)
		uv_close((uv_handle_t *)a, NULL);
}

static int uv_pingpong(struct mrun *r, char *err, size_t errlen)
{
	struct mqueue qa = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mqueue qb = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct uv_side a = { .r = r, .q = &qa, .peer_q = &qb };
	struct uv_side b = { .r = r, .q = &qb, .peer_q = &qa };
	pthread_t th;

	if (uv_loop_init(&a.loop) < 0 || uv_loop_init(&b.loop) < 0 ||
	    uv_async_init(&a.loop, &a.async, uv_pp_a) < 0 ||
	    uv_async_init(&b.loop, &b.async, uv_pp_b) < 0) {
		snprintf(err, errlen, "libuv loop setup failed");
		return -1;
	}
	a.async.data = &a;
	b.async.data = &b;
	a.to = &b.async;
	b.to = &a.async;
	if (pthread_create(&th, NULL, uv_sender, &b) != 0) {
		snprintf(err, errlen, "pthread_create failed");
		return -1;
	}
	pthread_barrier_wait(&r->go);
	r->t_start = bench_now_ns();
	mq_push(&qb, &r->nodes[0]);
	uv_async_send(&b.async);
	uv_run(&a.loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	uv_loop_close(&a.loop);
	uv_loop_close(&b.loop);
	return 0;
}

static int uv_pair(struct mrun *r, char *err, size_t errlen)
{
	struct mqueue q = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct uv_side rx = { .r = r, .q = &q }, tx = { .r = r, .q = &q };
	pthread_t th;

	if (uv_loop_init(&rx.loop) < 0 || uv_loop_init(&tx.loop) < 0 ||
	    uv_async_init(&rx.loop, &rx.async, uv_on_async) < 0 ||
	    uv_idle_init(&tx.loop, &tx.idle) < 0) {
		snprintf(err, errlen, "libuv loop setup failed");
		return -1;
	}
	rx.async.data = &rx;
	tx.idle.data = &tx;
	tx.to = &rx.async;
	uv_idle_start(&tx.idle, uv_send_batch);
	if (pthread_create(&th, NULL, uv_sender, &tx) != 0) {
		snprintf(err, errlen, "pthread_create failed");
		return -1;
	}
	pthread_barrier_wait(&r->go);
	r->t_start = bench_now_ns();
	uv_run(&rx.loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	uv_loop_close(&tx.loop);
	uv_loop_close(&rx.loop);
	return 0;
}
#endif

/* ------------------------------------------------------------------------ */

enum { WAY_NONE, WAY_EVQ, WAY_RAW, WAY_UV };

static int way_of(const struct bench_contender *c)
{
#ifdef BENCH_HAVE_EVQ
	if (strncmp(c->name, "evq-", 4) == 0 && c->io_new != NULL)
		return WAY_EVQ;
#endif
	if (strcmp(c->name, "raw-epoll") == 0)
		return WAY_RAW;
#ifdef BENCH_HAVE_LIBUV
	if (strcmp(c->name, "libuv") == 0)
		return WAY_UV;
#endif
	return WAY_NONE;
}

static int msg_run(const struct bench_workload *wl,
		   const struct bench_contender *c,
		   const struct bench_params *p, struct bench_sample *out,
		   char *err, size_t errlen)
{
	struct mrun r = { 0 };
	struct bench_sysc_all sc = { 0 };
	uint64_t sum = 0, seed = 0x6d7367u + p->run, c0, c1;
	uint64_t sys0 = 0, sys1 = 0, msgs;
	int way = way_of(c), counting = 0, ret = -1, pingpong = wl->mode;

	if (way == WAY_NONE) {
		snprintf(err, errlen, "no cross-loop messages written for it "
			 "here (raw-epoll is the hand-written way)");
		return BENCH_CANNOT;
	}
	if (pingpong)	/* round trips: two messages each */
		r.n = p->test ? 500 : p->events / 10 ? p->events / 10 : 1;
	else
		r.n = p->test ? MSG_N_TEST : p->run == 0 ? MSG_N_WARM : MSG_N;
	r.nodes = calloc(r.n, sizeof(*r.nodes));
	if (r.nodes == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (uint64_t i = 0; i < r.n; i++) {
		r.nodes[i].seq = i;
		r.nodes[i].val = bench_rand(&seed);
		sum += r.nodes[i].val;
	}
	pthread_barrier_init(&r.go, NULL, 2);
	/* Counting starts before the sender thread exists: it inherits. */
	if (p->count_syscalls && bench_sysc_all_open(&sc) == 0)
		counting = 1;
	if (counting)
		sys0 = bench_sysc_all_read(&sc);
	c0 = bench_pcpu_ns();
	switch (way) {
#ifdef BENCH_HAVE_EVQ
	case WAY_EVQ:
		ret = evq_pair(&r, *(const enum evq_backend *)c->priv,
			       pingpong, err, errlen);
		break;
#endif
	case WAY_RAW:
		ret = pingpong ? raw_pingpong(&r, err, errlen)
			       : raw_pair(&r, err, errlen);
		break;
#ifdef BENCH_HAVE_LIBUV
	case WAY_UV:
		ret = pingpong ? uv_pingpong(&r, err, errlen)
			       : uv_pair(&r, err, errlen);
		break;
#endif
	}
	c1 = bench_pcpu_ns();
	if (counting)
		sys1 = bench_sysc_all_read(&sc) - sc.n;	/* not these reads */
	if (ret != 0)
		goto out;
	ret = -1;
	if (r.err) {
		snprintf(err, errlen, "a send failed: %s", strerror(-r.err));
		goto out;
	}
	if (r.got != r.n || r.bad || r.sum != sum) {
		snprintf(err, errlen, "count check: %llu of %llu came, %llu "
			 "out of order or wrong, sum %s",
			 (unsigned long long)r.got, (unsigned long long)r.n,
			 (unsigned long long)r.bad,
			 r.sum == sum ? "right" : "wrong");
		goto out;
	}
	/* Wall time from the release of both threads (the loops exist);
	 * CPU time and syscalls include making the two loops and the
	 * thread: tens of syscalls, nothing per message. */
	msgs = pingpong ? 2 * r.n : r.n;
	out->value = (double)msgs / ((double)(r.t_end - r.t_start) / 1e9);
	out->cpu = (double)(c1 - c0) / (double)msgs;
	if (counting)
		out->sys = (double)(sys1 - sys0) * 1000 / (double)msgs;
	out->extra[0] = (double)r.wakeups * 1000 / (double)msgs;
	ret = 0;
out:
	if (counting)
		bench_sysc_all_close(&sc);
	pthread_barrier_destroy(&r.go);
	free(r.nodes);
	return ret;
}

static void msg_describe(const struct bench_workload *wl,
			 const struct bench_params *p, char *buf, size_t len)
{
	if (wl->mode) {
		snprintf(buf, len, "%llu round trips (%llu messages) per run "
			 "between loops on two threads, one message in flight",
			 (unsigned long long)(p->test ? 500 : p->events / 10),
			 (unsigned long long)(p->test ? 1000 : p->events / 5));
		return;
	}
	snprintf(buf, len,
		 "%u messages per run from a loop on one thread to a loop "
		 "on another, %u per sending iteration; nodes preallocated",
		 p->test ? MSG_N_TEST : MSG_N, BATCH);
}

const struct bench_workload bench_workload_msg = {
	.name = "msg",
	.title = "cross-loop messages: one loop sends 1,000,000 to a loop on "
		 "another thread",
	.unit = "msg/s",
	.cpu_unit = "cpu ns/msg",
	.sys_unit = "sys/kmsg",
	.na_why = "a completion contender: its readiness twin runs it",
	.legend = "msg/s: messages per second of wall time, first send to "
		  "last callback; cpu ns/msg: CPU time of both threads per "
		  "message; sys/kmsg: syscalls of both threads per 1000 messages. "
		  "evq-*: evq_msg_send (lock-free queue; uring: MSG_RING "
		  "wakeup, others: eventfd); raw-epoll: mutex queue + eventfd "
		  "written on empty; libuv: mutex queue + uv_async_send; "
		  "wakeups/kmsg: the receiving loop's waits per 1000 "
		  "messages (the sender's loop polls once per 64)",
	.higher_is_better = 1,
	.models = BENCH_MODEL_IO,
	.extra_unit = { "wakeups/kmsg" },
	.run = msg_run,
	.describe = msg_describe,
};

const struct bench_workload bench_workload_msg_pingpong = {
	.name = "msg-pingpong",
	.title = "cross-loop messages: one message bounced between loops on "
		 "two threads",
	.unit = "msg/s",
	.cpu_unit = "cpu ns/msg",
	.sys_unit = "sys/kmsg",
	.na_why = "a completion contender: its readiness twin runs it",
	.legend = "as msg, with one message in flight: every message is a "
		  "wakeup of a sleeping loop, so this is the wakeup's cost "
		  "(-n N: N / 10 round trips, N / 5 messages per run); "
		  "wakeups/kmsg: the first loop's waits per 1000 messages",
	.higher_is_better = 1,
	.models = BENCH_MODEL_IO,
	.mode = 1,
	.extra_unit = { "wakeups/kmsg" },
	.run = msg_run,
	.describe = msg_describe,
};
