/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c - every API function given NULL (or an out-of-range
 * value) returns -EINVAL, or for functions that return no error code,
 * does not crash. Each call runs first in a forked child, so that a crash
 * fails one check with a message instead of ending the executable; then
 * again in the process, to check it changed nothing.
 *
 * Also here: the environment is input too, and a setuid or setgid program
 * must not take it from its caller (environment_ignored_when_setuid).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void io_cb(struct evq_loop *l, struct evq_io *w, unsigned r)
{
	(void)l; (void)w; (void)r;
	T_FAILF("io callback ran");
}
static void timer_cb(struct evq_loop *l, struct evq_timer *t)
{
	(void)l; (void)t;
	T_FAILF("timer callback ran");
}
static void defer_cb(struct evq_loop *l, struct evq_defer *d)
{
	(void)l; (void)d;
	T_FAILF("defer callback ran");
}
static void signal_cb(struct evq_loop *l, struct evq_signal *s)
{
	(void)l; (void)s;
	T_FAILF("signal callback ran");
}
static void async_cb(struct evq_loop *l, struct evq_async *a)
{
	(void)l; (void)a;
	T_FAILF("async callback ran");
}

/* What a call gets to work with. */
struct ctx {
	struct evq_loop *loop;
	int fd;
	struct evq_io io;
	struct evq_timer timer;
	struct evq_defer defer;
	struct evq_signal sig;
	struct evq_async async;
};

typedef long (*call_fn)(struct ctx *c);

/* Run fn in a child; *ret is its result. Returns 0, or -1 if the child
 * died (the reason is printed). */
static int in_child(call_fn fn, struct ctx *c, long *ret, const char *what)
{
	int p[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe(p) != 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		long r;

		close(p[0]);
		r = fn(c);
		_exit(write(p[1], &r, sizeof(r)) == sizeof(r) ? 0 : 3);
	}
	close(p[1]);
	n = read(p[0], ret, sizeof(*ret));
	close(p[0]);
	waitpid(pid, &status, 0);
	if (n == sizeof(*ret) && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		t_note("%s: the call crashed (signal %d)", what,
		       WTERMSIG(status));
	else
		t_note("%s: the call did not return (exit status %d)", what,
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return -1;
}

/* Check a call: safe in a child, then the same result in the process. */
#define CHECK_CALL(fn, want)						\
	do {								\
		long r_;						\
		T_STEP("%s", #fn);					\
		if (in_child(fn, &c, &r_, #fn) != 0) {			\
			T_FAILF("%s did not return", #fn);		\
			break;						\
		}							\
		EXPECT_ERR(r_, want);					\
		if (r_ == (want))					\
			EXPECT_ERR(fn(&c), want);			\
	} while (0)

/* A call that returns no error code: it must only not crash. */
#define CHECK_NO_CRASH(fn)						\
	do {								\
		long r_;						\
		T_STEP("%s", #fn);					\
		if (in_child(fn, &c, &r_, #fn) != 0) {			\
			T_FAILF("%s did not return", #fn);		\
			break;						\
		}							\
		(void)fn(&c);						\
	} while (0)

static int ctx_init(struct ctx *c)
{
	int fds[2];

	memset(c, 0, sizeof(*c));
	c->loop = t_loop_new();
	if (!c->loop)
		return -1;
	if (t_pipe(fds) != 0)
		return -1;
	close(fds[1]);
	c->fd = fds[0];
	return 0;
}

static int ctx_fini(struct ctx *c)
{
	ASSERT_EQ(evq_loop_active(c->loop), 0);
	ASSERT_EQ(evq_loop_run(c->loop, EVQ_RUN_NOWAIT), 0);
	ASSERT_OK(evq_loop_free(c->loop));
	close(c->fd);
	return T_PASS;
}

/* ------------------------------------------------------------------------
 * Loop
 * ------------------------------------------------------------------------ */

static long loop_new_null(struct ctx *c)
{
	(void)c;
	return evq_loop_new(NULL, NULL);
}
static long loop_free_null(struct ctx *c)
{
	(void)c;
	return evq_loop_free(NULL);
}
static long loop_run_null(struct ctx *c)
{
	(void)c;
	return evq_loop_run(NULL, EVQ_RUN_NOWAIT);
}
static long loop_run_bad_mode(struct ctx *c)
{
	return evq_loop_run(c->loop, (enum evq_run_mode)3);
}
static long loop_run_negative_mode(struct ctx *c)
{
	return evq_loop_run(c->loop, (enum evq_run_mode)-1);
}
static long loop_stop_null(struct ctx *c)
{
	(void)c;
	evq_loop_stop(NULL);
	return 0;
}
static long now_null(struct ctx *c)
{
	(void)c;
	return (long)evq_now(NULL);
}
static long now_update_null(struct ctx *c)
{
	(void)c;
	return (long)evq_now_update(NULL);
}
static long loop_backend_null(struct ctx *c)
{
	(void)c;
	return (long)evq_loop_backend(NULL);
}
static long loop_backend_name_null(struct ctx *c)
{
	(void)c;
	return evq_loop_backend_name(NULL) == NULL ? 0 : -1;
}
static long loop_active_null(struct ctx *c)
{
	(void)c;
	return (long)evq_loop_active(NULL);
}

static int loop_functions(void)
{
	struct ctx c;

	ASSERT_OK(ctx_init(&c));
	CHECK_CALL(loop_new_null, -EINVAL);
	CHECK_CALL(loop_free_null, -EINVAL);
	CHECK_CALL(loop_run_null, -EINVAL);
	CHECK_CALL(loop_run_bad_mode, -EINVAL);
	CHECK_CALL(loop_run_negative_mode, -EINVAL);
	CHECK_NO_CRASH(loop_stop_null);
	return ctx_fini(&c);
}

/* The accessors return no error code; given NULL they must not crash. */
static int loop_accessors_null(void)
{
	struct ctx c;

	ASSERT_OK(ctx_init(&c));
	CHECK_NO_CRASH(now_null);
	CHECK_NO_CRASH(now_update_null);
	CHECK_NO_CRASH(loop_backend_null);
	/* No loop, no name; no loop, nothing active. */
	CHECK_CALL(loop_backend_name_null, 0);
	CHECK_CALL(loop_active_null, 0);
	return ctx_fini(&c);
}

/* ------------------------------------------------------------------------
 * Watchers
 * ------------------------------------------------------------------------ */

static long io_start_null_loop(struct ctx *c)
{
	return evq_io_start(NULL, &c->io, c->fd, EVQ_READ, io_cb);
}
static long io_start_null_w(struct ctx *c)
{
	return evq_io_start(c->loop, NULL, c->fd, EVQ_READ, io_cb);
}
static long io_start_null_cb(struct ctx *c)
{
	return evq_io_start(c->loop, &c->io, c->fd, EVQ_READ, NULL);
}
static long io_set_null(struct ctx *c)
{
	(void)c;
	return evq_io_set(NULL, EVQ_READ);
}
static long io_stop_null(struct ctx *c)
{
	(void)c;
	return evq_io_stop(NULL);
}
static long io_is_active_null(struct ctx *c)
{
	(void)c;
	return evq_io_is_active(NULL);
}

static int io_functions(void)
{
	struct ctx c;

	ASSERT_OK(ctx_init(&c));
	CHECK_CALL(io_start_null_loop, -EINVAL);
	CHECK_CALL(io_start_null_w, -EINVAL);
	CHECK_CALL(io_start_null_cb, -EINVAL);
	CHECK_CALL(io_set_null, -EINVAL);
	CHECK_CALL(io_stop_null, -EINVAL);
	CHECK_CALL(io_is_active_null, 0);
	ASSERT_EQ(evq_io_is_active(&c.io), 0);
	return ctx_fini(&c);
}

static long timer_start_null_loop(struct ctx *c)
{
	return evq_timer_start(NULL, &c->timer, 0, 0, timer_cb);
}
static long timer_start_null_t(struct ctx *c)
{
	return evq_timer_start(c->loop, NULL, 0, 0, timer_cb);
}
static long timer_start_null_cb(struct ctx *c)
{
	return evq_timer_start(c->loop, &c->timer, 0, 0, NULL);
}
static long timer_stop_null(struct ctx *c)
{
	(void)c;
	return evq_timer_stop(NULL);
}
static long timer_is_active_null(struct ctx *c)
{
	(void)c;
	return evq_timer_is_active(NULL);
}

static int timer_functions(void)
{
	struct ctx c;

	ASSERT_OK(ctx_init(&c));
	CHECK_CALL(timer_start_null_loop, -EINVAL);
	CHECK_CALL(timer_start_null_t, -EINVAL);
	CHECK_CALL(timer_start_null_cb, -EINVAL);
	CHECK_CALL(timer_stop_null, -EINVAL);
	CHECK_CALL(timer_is_active_null, 0);
	ASSERT_EQ(evq_timer_is_active(&c.timer), 0);
	return ctx_fini(&c);
}

static long defer_start_null_loop(struct ctx *c)
{
	return evq_defer_start(NULL, &c->defer, defer_cb);
}
static long defer_start_null_d(struct ctx *c)
{
	return evq_defer_start(c->loop, NULL, defer_cb);
}
static long defer_start_null_cb(struct ctx *c)
{
	return evq_defer_start(c->loop, &c->defer, NULL);
}
static long defer_stop_null(struct ctx *c)
{
	(void)c;
	return evq_defer_stop(NULL);
}
static long defer_is_active_null(struct ctx *c)
{
	(void)c;
	return evq_defer_is_active(NULL);
}

static int defer_functions(void)
{
	struct ctx c;

	ASSERT_OK(ctx_init(&c));
	CHECK_CALL(defer_start_null_loop, -EINVAL);
	CHECK_CALL(defer_start_null_d, -EINVAL);
	CHECK_CALL(defer_start_null_cb, -EINVAL);
	CHECK_CALL(defer_stop_null, -EINVAL);
	CHECK_CALL(defer_is_active_null, 0);
	ASSERT_EQ(evq_defer_is_active(&c.defer), 0);
	return ctx_fini(&c);
}

static long signal_start_null_loop(struct ctx *c)
{
	return evq_signal_start(NULL, &c->sig, SIGUSR1, signal_cb);
}
static long signal_start_null_s(struct ctx *c)
{
	return evq_signal_start(c->loop, NULL, SIGUSR1, signal_cb);
}
static long signal_start_null_cb(struct ctx *c)
{
	return evq_signal_start(c->loop, &c->sig, SIGUSR1, NULL);
}
static long signal_stop_null(struct ctx *c)
{
	(void)c;
	return evq_signal_stop(NULL);
}
static long signal_is_active_null(struct ctx *c)
{
	(void)c;
	return evq_signal_is_active(NULL);
}

static int signal_functions(void)
{
	struct ctx c;
	sigset_t cur;

	ASSERT_OK(ctx_init(&c));
	CHECK_CALL(signal_start_null_loop, -EINVAL);
	CHECK_CALL(signal_start_null_s, -EINVAL);
	CHECK_CALL(signal_start_null_cb, -EINVAL);
	CHECK_CALL(signal_stop_null, -EINVAL);
	CHECK_CALL(signal_is_active_null, 0);
	ASSERT_EQ(evq_signal_is_active(&c.sig), 0);
	T_STEP("a refused start blocks nothing");
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	ASSERT_EQ(sigismember(&cur, SIGUSR1), 0);
	return ctx_fini(&c);
}

static long async_start_null_loop(struct ctx *c)
{
	return evq_async_start(NULL, &c->async, async_cb);
}
static long async_start_null_a(struct ctx *c)
{
	return evq_async_start(c->loop, NULL, async_cb);
}
static long async_start_null_cb(struct ctx *c)
{
	return evq_async_start(c->loop, &c->async, NULL);
}
static long async_send_null(struct ctx *c)
{
	(void)c;
	return evq_async_send(NULL);
}
static long async_stop_null(struct ctx *c)
{
	(void)c;
	return evq_async_stop(NULL);
}
static long async_is_active_null(struct ctx *c)
{
	(void)c;
	return evq_async_is_active(NULL);
}

static int async_functions(void)
{
	struct ctx c;

	ASSERT_OK(ctx_init(&c));
	CHECK_CALL(async_start_null_loop, -EINVAL);
	CHECK_CALL(async_start_null_a, -EINVAL);
	CHECK_CALL(async_start_null_cb, -EINVAL);
	CHECK_CALL(async_send_null, -EINVAL);
	CHECK_CALL(async_stop_null, -EINVAL);
	CHECK_CALL(async_is_active_null, 0);
	ASSERT_EQ(evq_async_is_active(&c.async), 0);
	return ctx_fini(&c);
}

/* ------------------------------------------------------------------------
 * The environment of a privileged program
 *
 * A setuid/setgid program runs with its caller's environment, so the
 * variables evq reads (EVQ_BACKEND, EVQ_DEBUG, EVQ_URING_NO_DIRECT) must
 * be ignored there, as secure_getenv() does when the kernel says AT_SECURE.
 * The check is behavioural: a copy of this executable, made setgid (so
 * the kernel sets AT_SECURE on exec), is run in probe mode with those
 * variables set and reports what evq did. Only root can make that copy.
 * ------------------------------------------------------------------------ */

#define PROBE_ARG "--env-probe"

/* Probe mode: make a loop (auto, or the backend named in argv[2]) and
 * print AT_SECURE and the backend picked; evq's debug lines, if any, go
 * to stderr, which the parent reads too. */
static int env_probe(const char *want)
{
	struct evq_loop_options o = { 0 };
	struct evq_loop *loop;
	int r;

	if (want && strcmp(want, "uring") == 0)
		o.backend = EVQ_BACKEND_URING;
	r = evq_loop_new(&loop, &o);
	printf("secure=%lu ", getauxval(AT_SECURE));
	if (r < 0) {
		printf("error=%d\n", r);
	} else {
		printf("backend=%s\n", evq_loop_backend_name(loop));
		evq_loop_free(loop);
	}
	fflush(stdout);
	fflush(stderr);
	_exit(0);	/* no atexit handlers in a setgid process */
}

/* Copy /proc/self/exe to path. 0 or -errno. */
static int copy_self(const char *path, mode_t mode)
{
	char buf[65536];
	int in, out, r = 0;
	ssize_t n;

	in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n) {
			r = -EIO;
			break;
		}
	}
	if (n < 0)
		r = -errno;
	close(in);
	/* chown drops set-id bits, so the mode comes after it. */
	if (r == 0 && fchown(out, 0, 65534) != 0)
		r = -errno;
	if (r == 0 && fchmod(out, mode) != 0)
		r = -errno;
	if (close(out) != 0 && r == 0)
		r = -errno;
	return r;
}

/* Run `exe PROBE_ARG mode` with the environment `env` (NULL-terminated),
 * stdout and stderr into out. 0 or -1. */
static int run_probe(const char *exe, const char *mode, char *const env[],
		     char *out, size_t outsz)
{
	size_t len = 0;
	int p[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char *argv[] = { (char *)exe, (char *)PROBE_ARG,
				 (char *)mode, NULL };

		dup2(p[1], 1);
		dup2(p[1], 2);
		execve(exe, argv, env);
		_exit(127);
	}
	close(p[1]);
	while (len + 1 < outsz &&
	       (n = read(p[0], out + len, outsz - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		t_note("probe %s: status %#x, output: %s", exe, status, out);
		return -1;
	}
	return 0;
}

static int environment_ignored_when_setuid(void)
{
	char self[PATH_MAX], dir[PATH_MAX + 32], plain[PATH_MAX + 64];
	char priv[PATH_MAX + 64], out[4096];
	char *env_backend[] = { (char *)"EVQ_BACKEND=poll", NULL };
	char *env_bogus[] = { (char *)"EVQ_BACKEND=bogus", NULL };
	char *env_debug[] = { (char *)"EVQ_DEBUG=1", NULL };
	ssize_t n;
	int result = T_FAIL;

	if (geteuid() != 0)
		return t_skip("making a setgid copy of the test needs root");
	t_case_timeout(30);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	ASSERT_GT(n, 0);
	self[n] = '\0';
	/* Next to the executable: its build directory is not mounted
	 * nosuid, where /tmp may be. */
	snprintf(dir, sizeof(dir), "%s/env-probe.XXXXXX", dirname(self));
	ASSERT_NOTNULL(mkdtemp(dir));
	snprintf(plain, sizeof(plain), "%s/plain", dir);
	snprintf(priv, sizeof(priv), "%s/setgid", dir);

	T_STEP("copy the test, plain and setgid");
	if (copy_self(plain, 0755) != 0 || copy_self(priv, 02755) != 0) {
		T_FAILF("cannot copy the test executable into %s", dir);
		goto out;
	}

	T_STEP("control: the plain copy obeys EVQ_BACKEND=poll");
	if (run_probe(plain, "auto", env_backend, out, sizeof(out)) != 0) {
		T_FAILF("the plain probe failed");
		goto out;
	}
	if (!strstr(out, "secure=0 ") || !strstr(out, "backend=poll")) {
		T_FAILF("plain probe: %s", out);
		goto out;
	}

	T_STEP("the setgid copy runs with AT_SECURE");
	if (run_probe(priv, "auto", env_backend, out, sizeof(out)) != 0) {
		T_FAILF("the setgid probe failed");
		goto out;
	}
	if (!strstr(out, "secure=1 ")) {
		result = t_skip("exec of a setgid copy did not set AT_SECURE "
				"here: %s", out);
		goto out;
	}
	T_STEP("setgid: EVQ_BACKEND=poll is ignored (auto picks)");
	if (strstr(out, "backend=poll") || !strstr(out, "backend=")) {
		T_FAILF("setgid probe with EVQ_BACKEND=poll: %s", out);
		goto out;
	}
	T_STEP("setgid: EVQ_BACKEND=bogus is ignored, not an error");
	if (run_probe(priv, "auto", env_bogus, out, sizeof(out)) != 0 ||
	    !strstr(out, "backend=")) {
		T_FAILF("setgid probe with EVQ_BACKEND=bogus: %s", out);
		goto out;
	}

	T_STEP("control: the plain copy obeys EVQ_DEBUG=1 on uring");
	if (run_probe(plain, "uring", env_debug, out, sizeof(out)) != 0) {
		T_FAILF("the plain probe failed");
		goto out;
	}
	if (!strstr(out, "backend=uring")) {
		t_note("uring unavailable (%s): EVQ_DEBUG not checked", out);
	} else if (!strstr(out, "evq: uring")) {
		T_FAILF("plain probe printed no debug line: %s", out);
		goto out;
	} else {
		T_STEP("setgid: EVQ_DEBUG=1 prints nothing");
		if (run_probe(priv, "uring", env_debug, out,
			      sizeof(out)) != 0 || strstr(out, "evq:")) {
			T_FAILF("setgid probe with EVQ_DEBUG=1: %s", out);
			goto out;
		}
	}
	result = T_PASS;
out:
	unlink(plain);
	unlink(priv);
	rmdir(dir);
	return result;
}

static const struct t_case cases[] = {
	T_CASE(loop_functions),
	T_CASE(loop_accessors_null),
	T_CASE(io_functions),
	T_CASE(timer_functions),
	T_CASE(defer_functions),
	T_CASE(signal_functions),
	T_CASE(async_functions),
	T_CASE(environment_ignored_when_setuid),
};

int main(int argc, char **argv)
{
	sigset_t one;

	if (argc > 1 && strcmp(argv[1], PROBE_ARG) == 0)
		return env_probe(argc > 2 ? argv[2] : NULL);
	sigemptyset(&one);
	sigaddset(&one, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &one, NULL);
	return t_main(argc, argv, cases, T_NELEM(cases));
}
