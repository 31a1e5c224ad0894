/* SPDX-License-Identifier: MIT */
/*
 * cross_loop.c - loops on several threads hand each other work.
 *
 * The main loop sends six jobs to three worker loops, each running in a
 * thread of its own, through their ports; each worker computes and sends
 * the job back to the main loop's port, reusing the same message (a
 * struct evq_msg inside the job: nothing is allocated per message). When
 * every job is back, the main loop tells the workers to quit, and each
 * one's port stops, which ends its loop's run.
 *
 * Sends made from inside a loop's run pass that loop as `from`: between
 * two io_uring loops the wakeup is then an IORING_OP_MSG_RING completion
 * posted from ring to ring, with no syscall of its own; otherwise it is
 * the receiving loop's eventfd. The messages arrive the same either way.
 */
#define _POSIX_C_SOURCE 200809L
#include <evq.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define WORKERS 3
#define JOBS 6

enum { TAG_JOB = 1, TAG_QUIT };

struct job {
	struct evq_msg msg;	/* msg.ptr points back to the job */
	int id;
	unsigned long below;
	unsigned long primes;	/* the worker's answer */
	int worker;
};

struct worker {
	struct evq_loop *loop;
	struct evq_port port;
	struct evq_port *reply_to;	/* the main loop's port */
	struct evq_msg quit;
	int id;
	pthread_t thread;
};

struct app {
	struct evq_loop *loop;
	struct evq_port port;		/* replies come here */
	struct evq_defer kickoff;
	struct worker workers[WORKERS];
	struct job jobs[JOBS];
	int back;
};

/* Some work: count the primes below n, slowly. */
static unsigned long count_primes(unsigned long n)
{
	unsigned long count = 0;

	for (unsigned long i = 2; i < n; i++) {
		unsigned long d = 2;

		while (d * d <= i && i % d)
			d++;
		count += d * d > i;
	}
	return count;
}

/* A worker's port: runs in the worker's thread. */
static void on_job(struct evq_loop *loop, struct evq_port *p,
		   struct evq_msg *m)
{
	struct worker *w = p->data;
	struct job *j = m->ptr;

	if (m->tag == TAG_QUIT) {
		evq_port_stop(p);	/* nothing left: the run returns */
		return;
	}
	j->primes = count_primes(j->below);
	j->worker = w->id;
	/* The same message goes back: it is ours until we send it. */
	evq_msg_send(loop, w->reply_to, &j->msg);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int ret = evq_loop_run(w->loop, EVQ_RUN_DEFAULT);

	if (ret < 0)
		fprintf(stderr, "worker %d: evq_loop_run: %s\n", w->id,
			strerror(-ret));
	return NULL;
}

/* The main loop's port: replies, in the main thread. */
static void on_reply(struct evq_loop *loop, struct evq_port *p,
		     struct evq_msg *m)
{
	struct app *app = p->data;

	(void)m;
	if (++app->back < JOBS)
		return;
	for (int i = 0; i < WORKERS; i++) {
		struct worker *w = &app->workers[i];

		w->quit.tag = TAG_QUIT;
		evq_msg_send(loop, &w->port, &w->quit);
	}
	evq_port_stop(p);	/* nothing left: the run returns */
}

/* In the main loop's run, so that the sends can pass it as `from`. */
static void kickoff(struct evq_loop *loop, struct evq_defer *d)
{
	struct app *app = d->data;

	for (int i = 0; i < JOBS; i++) {
		struct job *j = &app->jobs[i];

		j->id = i + 1;
		j->below = 10000ul * (unsigned long)(i + 1);
		j->msg.ptr = j;
		j->msg.tag = TAG_JOB;
		evq_msg_send(loop, &app->workers[i % WORKERS].port, &j->msg);
	}
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "%s: %s\n", what, strerror(err < 0 ? -err : err));
	return 1;
}

int main(void)
{
	static struct app app;
	int ret;

	ret = evq_loop_new(&app.loop, NULL);
	if (ret < 0)
		return fail("evq_loop_new", ret);
	app.port.data = &app;
	ret = evq_port_start(app.loop, &app.port, on_reply);
	if (ret < 0)
		return fail("evq_port_start", ret);

	/* Each worker's loop and port are made here, before its thread
	 * exists; from then on the loop is the thread's. */
	for (int i = 0; i < WORKERS; i++) {
		struct worker *w = &app.workers[i];

		w->id = i + 1;
		w->reply_to = &app.port;
		w->port.data = w;
		ret = evq_loop_new(&w->loop, NULL);
		if (ret < 0)
			return fail("evq_loop_new", ret);
		ret = evq_port_start(w->loop, &w->port, on_job);
		if (ret < 0)
			return fail("evq_port_start", ret);
		ret = pthread_create(&w->thread, NULL, worker_main, w);
		if (ret != 0)
			return fail("pthread_create", ret);
	}

	app.kickoff.data = &app;
	evq_defer_start(app.loop, &app.kickoff, kickoff);
	ret = evq_loop_run(app.loop, EVQ_RUN_DEFAULT);
	if (ret < 0)
		return fail("evq_loop_run", ret);

	for (int i = 0; i < WORKERS; i++) {
		pthread_join(app.workers[i].thread, NULL);
		evq_loop_free(app.workers[i].loop);
	}
	evq_loop_free(app.loop);

	for (int i = 0; i < JOBS; i++)
		printf("job %d: %lu primes below %lu (worker %d)\n",
		       app.jobs[i].id, app.jobs[i].primes, app.jobs[i].below,
		       app.jobs[i].worker);
	if (app.back != JOBS)
		return 1;
	printf("done\n");
	return 0;
}
