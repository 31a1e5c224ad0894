/* SPDX-License-Identifier: MIT */
/*
 * backend.c - the table of backends and how a loop picks one.
 *
 * `auto` tries the backends in the order of this table, best first, and
 * takes the first whose probe and init succeed. The order is measured, not
 * assumed (docs/BENCHMARKS.md): aio comes after epoll because its one-shot
 * polls and the per-report identity check that close-safety needs cost one
 * syscall per event more than epoll (4 against 3 on a pipe ping-pong, 3
 * against 2 per request on a TCP echo), and its context setup and teardown
 * cost tens of milliseconds. Since the aio backend also needs an epoll set,
 * auto reaches it only when epoll itself fails; ask for it by name. An explicit choice (in the
 * options, or EVQ_BACKEND in the environment when the options say auto)
 * gets that backend or its error, never a silent substitute: a test run
 * with EVQ_BACKEND=poll must test poll. EVQ_BACKEND is read with
 * secure_getenv(), so a setuid or setgid program ignores it (and every
 * other EVQ_* variable): its caller's environment is not trusted input.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct candidate {
	enum evq_backend id;
	const char *name;
	const struct evq__backend *impl;	/* NULL: not implemented yet */
};

static const struct candidate candidates[] = {
#ifdef EVQ_HAVE_URING
	{ EVQ_BACKEND_URING, "uring", &evq__backend_uring },
#else
	{ EVQ_BACKEND_URING, "uring", NULL },	/* built without liburing */
#endif
	{ EVQ_BACKEND_EPOLL, "epoll", &evq__backend_epoll },
	{ EVQ_BACKEND_AIO, "aio", &evq__backend_aio },
	{ EVQ_BACKEND_POLL, "poll", &evq__backend_poll },
};

#define NCANDIDATES (sizeof(candidates) / sizeof(candidates[0]))

const char *evq_backend_name(enum evq_backend backend)
{
	if (backend == EVQ_BACKEND_AUTO)
		return "auto";
	for (size_t i = 0; i < NCANDIDATES; i++)
		if (candidates[i].id == backend)
			return candidates[i].name;
	return NULL;
}

static int try_open(struct evq_loop *loop, const struct candidate *c)
{
	int r;

	if (!c->impl)
		return -ENOTSUP;
	r = c->impl->probe();
	if (r < 0)
		return r;
	loop->backend = c->impl;
	r = c->impl->init(loop);
	if (r < 0)
		loop->backend = NULL;
	return r;
}

int evq__backend_open(struct evq_loop *loop, enum evq_backend want)
{
	const char *env;
	int r = -ENOTSUP;

	/* secure_getenv: a setuid or setgid program must not let whoever
	 * runs it pick its backend. */
	if (want == EVQ_BACKEND_AUTO && (env = secure_getenv("EVQ_BACKEND")) &&
	    *env && strcmp(env, "auto") != 0) {
		size_t i;

		for (i = 0; i < NCANDIDATES; i++)
			if (strcmp(env, candidates[i].name) == 0)
				break;
		if (i == NCANDIDATES)
			return -EINVAL;
		want = candidates[i].id;
	}

	for (size_t i = 0; i < NCANDIDATES; i++) {
		if (want != EVQ_BACKEND_AUTO && candidates[i].id != want)
			continue;
		r = try_open(loop, &candidates[i]);
		if (r == 0 || want != EVQ_BACKEND_AUTO)
			return r;
	}
	return r;
}
