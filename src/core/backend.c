/* SPDX-License-Identifier: MIT */
/*
 * backend.c - the table of backends and how a loop picks one.
 *
 * `auto` tries the backends in the order of the table below, best first,
 * and takes the first whose probe and init succeed (a probe that passes
 * is followed by an init that checks what the probe could not cheaply:
 * aio submits and reaps a real poll; a refusal there moves auto on, as a
 * failed probe does). The order is measured, not assumed
 * (docs/BENCHMARKS.md, docs/BACKENDS.md): it is the one line per backend
 * in `candidates`, and each line says why it stands where it does. Today
 * aio comes after epoll: it measured slower per event on the readiness
 * and the ops ping-pong (docs/BACKENDS.md has the figures). Since it also
 * needs an epoll set, auto reaches it only when epoll itself fails, which
 * makes it fail too: moving its line above epoll's is the whole change
 * once aio measures ahead (issue 11).
 * EVQ_DEBUG=1 prints, on stderr, one line per backend: the one chosen,
 * and for each other why it was skipped or not tried.
 *
 * An explicit choice (in the options, or EVQ_BACKEND in the environment
 * when the options say auto) gets that backend or its error, never a
 * silent substitute: a test run with EVQ_BACKEND=poll must test poll.
 * EVQ_BACKEND is read with secure_getenv(), so a setuid or setgid program
 * ignores it (and every other EVQ_* variable): its caller's environment
 * is not trusted input.
 */
#include "internal.h"
#include "backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct candidate {
	enum evq_backend id;
	const char *name;
	const struct evq__backend *impl;	/* NULL: not implemented yet */
	const char *why;	/* its place in the order, for EVQ_DEBUG */
};

/* The order of `auto`, best first: one line per backend. */
static const struct candidate candidates[] = {
#ifdef EVQ_HAVE_URING
	{ EVQ_BACKEND_URING, "uring", &evq__backend_uring,
	  "native ops, readiness as cheap as epoll's" },
#else
	{ EVQ_BACKEND_URING, "uring", NULL, "built without liburing" },
#endif
	{ EVQ_BACKEND_EPOLL, "epoll", &evq__backend_epoll,
	  "1 syscall per wait, no per-event check" },
	{ EVQ_BACKEND_AIO, "aio", &evq__backend_aio,
	  "after epoll: slower per event, measured" },
	{ EVQ_BACKEND_POLL, "poll", &evq__backend_poll,
	  "last: O(fds) per wait" },
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

int evq__backend_order(enum evq_backend *ids, int max)
{
	int n = 0;

	for (size_t i = 0; i < NCANDIDATES && n < max; i++)
		ids[n++] = candidates[i].id;
	return n;
}

static bool debug(void)
{
	const char *e = secure_getenv("EVQ_DEBUG");	/* not setuid */

	return e && *e && strcmp(e, "0") != 0;
}

/* Probe, then init. *stage says which one failed. */
static int try_open(struct evq_loop *loop, const struct candidate *c,
		    const char **stage)
{
	int r;

	*stage = "not built";
	if (!c->impl)
		return -ENOTSUP;
	*stage = "probe";
	r = c->impl->probe();
	if (r < 0)
		return r;
	*stage = "init";
	loop->backend = c->impl;
	r = c->impl->init(loop);
	if (r < 0)
		loop->backend = NULL;
	return r;
}

int evq__backend_open(struct evq_loop *loop, enum evq_backend want)
{
	const char *env, *stage, *from = "options";
	const struct candidate *chosen = NULL;
	bool dbg = debug();
	int r = -ENOTSUP;

	/* secure_getenv: a setuid or setgid program must not let whoever
	 * runs it pick its backend. */
	if (want == EVQ_BACKEND_AUTO && (env = secure_getenv("EVQ_BACKEND")) &&
	    *env && strcmp(env, "auto") != 0) {
		size_t i;

		for (i = 0; i < NCANDIDATES; i++)
			if (strcmp(env, candidates[i].name) == 0)
				break;
		if (i == NCANDIDATES) {
			if (dbg)
				fprintf(stderr, "evq: EVQ_BACKEND=%s: no such "
					"backend\n", env);
			return -EINVAL;
		}
		want = candidates[i].id;
		from = "EVQ_BACKEND";
	}

	for (size_t i = 0; i < NCANDIDATES; i++) {
		const struct candidate *c = &candidates[i];

		if (want != EVQ_BACKEND_AUTO && c->id != want)
			continue;
		if (chosen) {	/* auto, and an earlier one works */
			if (dbg)
				fprintf(stderr, "evq: auto: %s not tried: "
					"after %s (%s)\n", c->name,
					chosen->name, c->why);
			continue;
		}
		r = try_open(loop, c, &stage);
		if (want != EVQ_BACKEND_AUTO) {
			if (dbg && r == 0)
				fprintf(stderr, "evq: %s: asked for by %s\n",
					c->name, from);
			else if (dbg)
				fprintf(stderr, "evq: %s: asked for by %s, "
					"%s failed: %s\n", c->name, from,
					stage, strerror(-r));
			return r;
		}
		if (r == 0)
			chosen = c;
		if (dbg && r == 0)
			fprintf(stderr, "evq: auto: %s chosen (%s)\n",
				c->name, c->why);
		else if (dbg)
			fprintf(stderr, "evq: auto: %s skipped: %s: %s\n",
				c->name, stage, strerror(-r));
		if (!dbg && chosen)
			break;
	}
	return chosen ? 0 : r;
}
