/* SPDX-License-Identifier: MIT */
/*
 * timer_and_pipe.c - a repeating timer and an fd watcher on one loop.
 *
 * Every 10 ms the timer writes a line into a pipe; a read watcher on the
 * other end prints what arrives. After five lines both watchers stop, the
 * loop has nothing left to do, and evq_loop_run() returns.
 */
#define _POSIX_C_SOURCE 200809L
#include <evq.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LINES 5
#define MS 1000000ull			/* nanoseconds */

struct app {
	int rfd, wfd;			/* the pipe's two ends */
	int sent, received;		/* lines so far */
	uint64_t start;			/* loop time at start, ns */
	int err;			/* first error seen, as -errno */
};

static void on_tick(struct evq_loop *loop, struct evq_timer *t)
{
	struct app *app = t->data;
	char line[64];
	int n;

	n = snprintf(line, sizeof(line), "tick %d at %llu ms\n", ++app->sent,
		     (unsigned long long)((evq_now(loop) - app->start) / MS));
	if (write(app->wfd, line, (size_t)n) != n)
		app->err = -1;
	if (app->sent == LINES || app->err)
		evq_timer_stop(t);
}

static void on_readable(struct evq_loop *loop, struct evq_io *w,
			unsigned revents)
{
	struct app *app = w->data;
	char buf[256];
	ssize_t n;

	(void)loop;
	(void)revents;
	n = read(app->rfd, buf, sizeof(buf));
	if (n <= 0) {			/* EOF or error: give up */
		app->err = -1;
		evq_io_stop(w);
		return;
	}
	fwrite(buf, 1, (size_t)n, stdout);
	for (ssize_t i = 0; i < n; i++)	/* reads may merge lines */
		app->received += buf[i] == '\n';
	if (app->received >= LINES)
		evq_io_stop(w);
}

int main(void)
{
	struct evq_loop *loop;
	struct evq_timer timer = {0};
	struct evq_io reader = {0};
	struct app app = {0};
	int fds[2], ret;

	if (pipe(fds) < 0) {
		perror("pipe");
		return 1;
	}
	app.rfd = fds[0];
	app.wfd = fds[1];

	ret = evq_loop_new(&loop, NULL);	/* NULL: default options */
	if (ret < 0) {
		fprintf(stderr, "evq_loop_new: %s\n", strerror(-ret));
		return 1;
	}
	printf("backend: %s\n", evq_loop_backend_name(loop));
	app.start = evq_now(loop);

	timer.data = &app;
	reader.data = &app;
	ret = evq_timer_start(loop, &timer, 10 * MS, 10 * MS, on_tick);
	if (ret == 0)
		ret = evq_io_start(loop, &reader, app.rfd, EVQ_READ,
				   on_readable);
	if (ret == 0)
		ret = evq_loop_run(loop, EVQ_RUN_DEFAULT);  /* till idle */
	if (ret < 0)
		fprintf(stderr, "evq: %s\n", strerror(-ret));

	evq_loop_free(loop);
	close(fds[0]);
	close(fds[1]);
	if (ret < 0 || app.err || app.received != LINES) {
		fprintf(stderr, "failed: %d of %d lines\n", app.received,
			LINES);
		return 1;
	}
	return 0;
}
