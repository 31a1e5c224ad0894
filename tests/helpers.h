/* SPDX-License-Identifier: MIT */
/*
 * helpers.h - what every evq test shares: the case runner, assertion
 * macros that print both operands, per-backend loop creation, guard
 * timers and fd helpers.
 *
 * A test file is one executable with many cases. Each case is a function
 * returning T_PASS, T_FAIL or T_SKIP; t_main() runs them in order, prints
 * "ok - name" or "not ok - name" for each, and exits 0 (all passed or
 * skipped), 1 (something failed) or 77 (the backend is unavailable, or
 * every case skipped). The backend under test comes from the environment
 * variable EVQ_BACKEND, which tests/CMakeLists.txt sets once per backend.
 *
 * Two kinds of checks:
 *  - ASSERT_*: print the failure and return T_FAIL from the case. Only in
 *    the case function itself.
 *  - EXPECT_*: print the failure, mark the case failed and go on. Usable
 *    anywhere, in particular inside callbacks.
 * Every failure prints file:line, the case, the current step (T_STEP), the
 * expression and both values.
 */
#ifndef EVQ_TEST_HELPERS_H
#define EVQ_TEST_HELPERS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "evq.h"

enum { T_PASS = 0, T_FAIL = 1, T_SKIP = 77 };

struct t_case {
	const char *name;
	int (*fn)(void);
};

#define T_CASE(fn) { #fn, fn }
#define T_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Run the cases (all, or those whose names contain argv[1]). */
int t_main(int argc, char **argv, const struct t_case *cases, size_t n);

/* Name what the case is doing now; printed with every failure. */
void t_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define T_STEP(...) t_step(__VA_ARGS__)

/* Print a diagnostic line ("# ...") for the current case. */
void t_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Mark the current case skipped, with a reason; return its result. */
int t_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set by every failed check of the current case. */
extern volatile int t_failed;

/* Seconds a case may run before the watchdog fails it (default 20). */
void t_case_timeout(unsigned seconds);

/* Failure reporters used by the macros below. */
void t_fail_cmp(const char *file, int line, const char *macro,
		const char *ea, const char *eb, long long a, long long b,
		bool errnos);
void t_fail_str(const char *file, int line, const char *ea, const char *eb,
		const char *a, const char *b);
void t_fail_cond(const char *file, int line, const char *macro,
		 const char *expr);

#define T_CMP_(macro, a, op, b, errnos, action)				\
	do {								\
		long long t_a_ = (long long)(a);			\
		long long t_b_ = (long long)(b);			\
		if (!(t_a_ op t_b_)) {					\
			t_fail_cmp(__FILE__, __LINE__, macro, #a, #b,	\
				   t_a_, t_b_, errnos);			\
			action;						\
		}							\
	} while (0)

#define T_COND_(macro, cond, action)					\
	do {								\
		if (!(cond)) {						\
			t_fail_cond(__FILE__, __LINE__, macro, #cond);	\
			action;						\
		}							\
	} while (0)

#define T_STR_(a, b, action)						\
	do {								\
		const char *t_sa_ = (a), *t_sb_ = (b);			\
		if (!t_sa_ || !t_sb_ || strcmp(t_sa_, t_sb_) != 0) {	\
			t_fail_str(__FILE__, __LINE__, #a, #b, t_sa_,	\
				   t_sb_);				\
			action;						\
		}							\
	} while (0)

#define T_RET_ return T_FAIL
#define T_CONT_ (void)0

#define ASSERT_EQ(a, b) T_CMP_("ASSERT_EQ", a, ==, b, false, T_RET_)
#define ASSERT_NE(a, b) T_CMP_("ASSERT_NE", a, !=, b, false, T_RET_)
#define ASSERT_LT(a, b) T_CMP_("ASSERT_LT", a, <, b, false, T_RET_)
#define ASSERT_LE(a, b) T_CMP_("ASSERT_LE", a, <=, b, false, T_RET_)
#define ASSERT_GT(a, b) T_CMP_("ASSERT_GT", a, >, b, false, T_RET_)
#define ASSERT_GE(a, b) T_CMP_("ASSERT_GE", a, >=, b, false, T_RET_)
/* Like ASSERT_EQ for return codes: also prints errno names. */
#define ASSERT_ERR(a, b) T_CMP_("ASSERT_ERR", a, ==, b, true, T_RET_)
#define ASSERT_OK(a) T_CMP_("ASSERT_OK", a, ==, 0, true, T_RET_)
#define ASSERT_TRUE(c) T_COND_("ASSERT_TRUE", c, T_RET_)
#define ASSERT_NULL(p) T_COND_("ASSERT_NULL", (p) == NULL, T_RET_)
#define ASSERT_NOTNULL(p) T_COND_("ASSERT_NOTNULL", (p) != NULL, T_RET_)
#define ASSERT_STREQ(a, b) T_STR_(a, b, T_RET_)

#define EXPECT_EQ(a, b) T_CMP_("EXPECT_EQ", a, ==, b, false, T_CONT_)
#define EXPECT_NE(a, b) T_CMP_("EXPECT_NE", a, !=, b, false, T_CONT_)
#define EXPECT_LT(a, b) T_CMP_("EXPECT_LT", a, <, b, false, T_CONT_)
#define EXPECT_LE(a, b) T_CMP_("EXPECT_LE", a, <=, b, false, T_CONT_)
#define EXPECT_GT(a, b) T_CMP_("EXPECT_GT", a, >, b, false, T_CONT_)
#define EXPECT_GE(a, b) T_CMP_("EXPECT_GE", a, >=, b, false, T_CONT_)
#define EXPECT_ERR(a, b) T_CMP_("EXPECT_ERR", a, ==, b, true, T_CONT_)
#define EXPECT_OK(a) T_CMP_("EXPECT_OK", a, ==, 0, true, T_CONT_)
#define EXPECT_TRUE(c) T_COND_("EXPECT_TRUE", c, T_CONT_)
#define EXPECT_STREQ(a, b) T_STR_(a, b, T_CONT_)

/* Fail the case (from anywhere) with a message. */
void t_fail_msg(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define T_FAILF(...) t_fail_msg(__FILE__, __LINE__, __VA_ARGS__)

/* ------------------------------------------------------------------------
 * Loops and backends
 * ------------------------------------------------------------------------ */

/* The backend this run tests: $EVQ_BACKEND, or (if unset) the one the
 * first loop got. */
const char *t_backend(void);
bool t_backend_is(const char *name);
/* Is the backend listed in $EVQ_REQUIRE_BACKENDS? Then its absence fails
 * the run instead of skipping it. */
bool t_backend_required(const char *name);

/* evq_loop_new(&loop, opts) with opts->backend == EVQ_BACKEND_AUTO (or
 * opts NULL), then asserts that the loop runs the backend of $EVQ_BACKEND:
 * no silent fallback. Exits 77 if the backend is unavailable (-ENOTSUP,
 * -ENOSYS) at the probe t_main() makes before the first case, unless it
 * is listed in $EVQ_REQUIRE_BACKENDS (then it fails). Inside a case
 * -ENOTSUP fails that case, never exits; any other error fails the case
 * and returns NULL. */
struct evq_loop *t_loop_new(void);
struct evq_loop *t_loop_new_opts(const struct evq_loop_options *opts);

/* evq_loop_free() that must succeed. */
void t_loop_free(struct evq_loop *loop);

/* A guard timer: stops the loop and fails the case if it ever fires, so
 * a bug fails a run instead of hanging it. */
struct t_guard {
	struct evq_timer timer;
	unsigned ms;
	int fired;
	const char *what;
};

int t_guard_start(struct evq_loop *loop, struct t_guard *g, unsigned ms,
		  const char *what);
void t_guard_stop(struct t_guard *g);

/* One EVQ_RUN_ONCE iteration under a guard timer of `ms`. Returns what
 * evq_loop_run() would have returned without the guard (1 if watchers
 * are still active, else 0) or its negative error; a guard that fires
 * fails the case. */
int t_run_once(struct evq_loop *loop, unsigned ms);

/* ------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------ */

#define T_MS 1000000ull		/* ns per ms */

uint64_t t_now_ns(void);		/* CLOCK_MONOTONIC */
void t_sleep_ms(unsigned ms);

/* ------------------------------------------------------------------------
 * File descriptors (all non-blocking and close-on-exec)
 * ------------------------------------------------------------------------ */

/* Threads of this process blocked in openat(2) now (read from
 * /proc/self/task/<tid>/syscall), or -1 when that cannot be read. Tests
 * of the thread pool wait with it until their jobs really block. */
int t_tasks_in_openat(void);

/* An embedded loop (fd from evq_loop_fd) settles within a few NOWAIT
 * runs: no timeout and a loop fd that is not readable, as a host that
 * would now sleep sees it (evq.h, evq_loop_fd). */
bool t_loop_settles(struct evq_loop *loop, int fd);
int t_pipe(int fds[2]);			/* 0, or fails the case: -1 */
int t_socketpair(int fds[2]);		/* AF_UNIX stream */
int t_write_byte(int fd);		/* 0, or fails the case: -1 */
ssize_t t_drain(int fd);		/* bytes read until EAGAIN/EOF */
ssize_t t_fill(int fd);			/* bytes written until EAGAIN */
void t_close(int fd);			/* close if >= 0 */
void t_close2(int fds[2]);

/* Open fds of this process (from /proc/self/fd). */
int t_count_fds(void);

/* Raise RLIMIT_NOFILE to at least `want` (soft up to hard, and the hard
 * limit too when privileged). Returns the soft limit now in force. */
long t_raise_nofile(long want);

/* A small deterministic PRNG (xorshift64*), seeded from EVQ_TEST_SEED or a
 * fixed default; the seed is printed so a failure can be replayed. */
uint64_t t_rand(void);
void t_rand_seed(void);

#endif /* EVQ_TEST_HELPERS_H */
