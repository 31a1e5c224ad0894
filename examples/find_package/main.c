/* SPDX-License-Identifier: MIT */
/* main.c - the smallest evq program: one timer, run until idle. */
#include <evq.h>

#include <stdio.h>
#include <string.h>

static void on_timer(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	*(int *)t->data = 1;
}

int main(void)
{
	struct evq_loop *loop;
	struct evq_timer t = {0};
	int fired = 0, ret;

	ret = evq_loop_new(&loop, NULL);
	if (ret < 0) {
		fprintf(stderr, "evq_loop_new: %s\n", strerror(-ret));
		return 1;
	}
	t.data = &fired;
	ret = evq_timer_start(loop, &t, 1000000, 0, on_timer);	/* 1 ms */
	if (ret == 0)
		ret = evq_loop_run(loop, EVQ_RUN_DEFAULT);
	printf("evq %d.%d.%d, backend %s, timer fired: %s\n",
	       EVQ_VERSION_MAJOR, EVQ_VERSION_MINOR, EVQ_VERSION_PATCH,
	       evq_loop_backend_name(loop), fired ? "yes" : "no");
	evq_loop_free(loop);
	return ret < 0 || !fired;
}
