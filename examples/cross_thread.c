/* SPDX-License-Identifier: MIT */
/*
 * cross_thread.c - a worker thread hands results to the loop's thread.
 *
 * The worker computes three results; after each one it queues it under a
 * mutex and calls evq_async_send(), the one evq call that is safe from any
 * thread. Sends that arrive before the callback runs are merged, so the
 * callback drains whatever is queued rather than counting calls.
 */
#define _POSIX_C_SOURCE 200809L
#include <evq.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define JOBS 3

struct app {
	pthread_mutex_t lock;
	unsigned long results[JOBS];	/* filled by the worker */
	int produced;			/* guarded by lock */
	int consumed;			/* loop thread only */
	pthread_t worker;
	struct evq_async wakeup;
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

static void *worker_main(void *arg)
{
	struct app *app = arg;
	struct timespec pause = {0, 5 * 1000000};	/* 5 ms */

	for (int i = 0; i < JOBS; i++) {
		unsigned long r = count_primes(20000ul * (unsigned long)(i + 1));

		nanosleep(&pause, NULL);
		pthread_mutex_lock(&app->lock);
		app->results[app->produced++] = r;
		pthread_mutex_unlock(&app->lock);
		evq_async_send(&app->wakeup);	/* wake the loop */
	}
	return NULL;
}

static void on_wakeup(struct evq_loop *loop, struct evq_async *a)
{
	struct app *app = a->data;
	int produced;

	(void)loop;
	pthread_mutex_lock(&app->lock);
	produced = app->produced;
	pthread_mutex_unlock(&app->lock);

	for (; app->consumed < produced; app->consumed++)
		printf("result %d: %lu primes\n", app->consumed + 1,
		       app->results[app->consumed]);

	if (app->consumed == JOBS) {
		/* The worker may still be inside its last evq_async_send(),
		 * and the watcher must stay active until that returns. */
		pthread_join(app->worker, NULL);
		evq_async_stop(a);	/* nothing active: the loop returns */
	}
}

int main(void)
{
	struct evq_loop *loop;
	struct app app = {0};
	int ret;

	pthread_mutex_init(&app.lock, NULL);
	ret = evq_loop_new(&loop, NULL);
	if (ret < 0) {
		fprintf(stderr, "evq_loop_new: %s\n", strerror(-ret));
		return 1;
	}

	app.wakeup.data = &app;
	ret = evq_async_start(loop, &app.wakeup, on_wakeup);
	if (ret < 0) {
		fprintf(stderr, "evq_async_start: %s\n", strerror(-ret));
		return 1;
	}
	/* The watcher is active before the thread that sends on it exists. */
	ret = pthread_create(&app.worker, NULL, worker_main, &app);
	if (ret != 0) {
		fprintf(stderr, "pthread_create: %s\n", strerror(ret));
		return 1;
	}

	ret = evq_loop_run(loop, EVQ_RUN_DEFAULT);
	if (ret < 0)
		fprintf(stderr, "evq_loop_run: %s\n", strerror(-ret));
	evq_loop_free(loop);
	pthread_mutex_destroy(&app.lock);
	if (ret < 0 || app.consumed != JOBS)
		return 1;
	printf("done\n");
	return 0;
}
