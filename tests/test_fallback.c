/* SPDX-License-Identifier: MIT */
/*
 * test_fallback.c - `auto` falls back for real when a kernel facility is
 * refused, as container profiles refuse it. Docker's default seccomp
 * profile (and containerd's) has blocked io_uring_setup, io_uring_enter
 * and io_uring_register since 2023 with EPERM, and allows io_setup,
 * io_submit, io_getevents and io_cancel. Each case forks a child that
 * installs a hand-written seccomp filter reproducing that (plus more
 * refusals, per case), then checks:
 *  - a backend the filter breaks, asked for by name, fails with -EPERM
 *    (never a silent substitute, never a crash);
 *  - `auto` takes the first backend of evq's documented order
 *    (evq__backend_order(), src/core/backend.c) that the filter leaves
 *    working: the test follows the order, so moving aio above epoll there
 *    changes what is expected here with no edit;
 *  - the loop auto got really works: a readiness round trip (a watcher
 *    sees a pipe byte) and an op round trip (a recv that a write ends).
 * Runs once, not per backend: it is about choosing one. Links the static
 * library for evq__backend_order() (src/core/backend.h).
 */
#include "helpers.h"

#include "core/backend.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH_NATIVE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH_NATIVE AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define ARCH_NATIVE AUDIT_ARCH_I386
#elif defined(__riscv) && __riscv_xlen == 64
#define ARCH_NATIVE AUDIT_ARCH_RISCV64
#endif

#define MAX_NRS 8

/* What a filter refuses and which backends that breaks. */
struct scenario {
	int nrs[MAX_NRS];	/* syscalls refused with EPERM; -1 ends */
	enum evq_backend broken[4];	/* EVQ_BACKEND_AUTO ends */
};

#define DOCKER __NR_io_uring_setup, __NR_io_uring_enter, \
	__NR_io_uring_register

#ifdef ARCH_NATIVE
/* Install the filter: on this architecture, each listed syscall fails
 * with EPERM and everything else runs; a syscall made through another
 * architecture's table (or x86's x32 numbering) fails with EPERM too, as
 * under Docker's profile, whose default action is to refuse. The
 * seccomp_data.nr of a syscall is only meaningful together with its arch,
 * hence the first check. */
static int install_filter(const int *nrs)
{
	struct sock_filter f[6 + 2 * MAX_NRS + 1];
	struct sock_fprog prog;
	unsigned short k = 0;

	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			offsetof(struct seccomp_data, arch));
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
			ARCH_NATIVE, 1, 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
			SECCOMP_RET_ERRNO | EPERM);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	/* x32 numbers have bit 30 set: refused (k is still 4 here). */
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K,
			0x40000000u, 0, 1);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
			SECCOMP_RET_ERRNO | EPERM);
#endif
	for (int i = 0; i < MAX_NRS && nrs[i] >= 0; i++) {
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
				(unsigned)nrs[i], 0, 1);
		f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
				SECCOMP_RET_ERRNO | EPERM);
	}
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
			SECCOMP_RET_ALLOW);
	prog.len = k;
	prog.filter = f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return -errno;
	return 0;
}
#endif

/* Can this machine run the backend at all (before any filter)? */
static bool works_here(enum evq_backend b)
{
	struct evq_loop_options o = { .backend = b };
	struct evq_loop *loop;

	if (evq_loop_new(&loop, &o) < 0)
		return false;
	evq_loop_free(loop);
	return true;
}

static bool is_broken(const struct scenario *s, enum evq_backend b)
{
	for (int i = 0; i < 4 && s->broken[i] != EVQ_BACKEND_AUTO; i++)
		if (s->broken[i] == b)
			return true;
	return false;
}

static int hits, op_res;

static void io_cb(struct evq_loop *loop, struct evq_io *w, unsigned revents)
{
	(void)loop;
	if (revents & EVQ_READ) {
		t_drain(w->fd);
		hits++;
	}
}

static void op_cb(struct evq_loop *loop, struct evq_op *op, int res,
		  unsigned flags)
{
	(void)loop;
	(void)op;
	(void)flags;
	op_res = res;
	hits++;
}

/* A readiness and an op round trip on loop. */
static int round_trips(struct evq_loop *loop)
{
	struct evq_io w = { 0 };
	struct evq_op op = { 0 };
	int p[2], sv[2];
	char buf[4];

	T_STEP("readiness on %s: a byte in a pipe runs the watcher",
	       evq_loop_backend_name(loop));
	ASSERT_OK(t_pipe(p));
	ASSERT_OK(evq_io_start(loop, &w, p[0], EVQ_READ, io_cb));
	hits = 0;
	ASSERT_OK(t_write_byte(p[1]));
	for (int i = 0; i < 5 && !hits; i++)
		ASSERT_GE(t_run_once(loop, 2000), 0);
	ASSERT_EQ(hits, 1);
	evq_io_stop(&w);
	t_close(p[0]);
	t_close(p[1]);

	T_STEP("an op on %s: a recv that a write ends",
	       evq_loop_backend_name(loop));
	ASSERT_OK(t_socketpair(sv));
	hits = 0;
	evq_prep_recv(&op, sv[0], buf, sizeof(buf), 0);
	ASSERT_OK(evq_op_submit(loop, &op, 0, op_cb));
	ASSERT_EQ(evq_loop_run(loop, EVQ_RUN_NOWAIT), 1);
	ASSERT_EQ(hits, 0);
	ASSERT_EQ(write(sv[1], "ab", 2), 2);
	for (int i = 0; i < 5 && !hits; i++)
		ASSERT_GE(t_run_once(loop, 2000), 0);
	ASSERT_EQ(hits, 1);
	ASSERT_EQ(op_res, 2);
	t_close(sv[0]);
	t_close(sv[1]);
	return T_PASS;
}

/* The child's checks, under the filter. `expect` is the backend auto
 * must pick; `native[b]` whether b worked before the filter. */
static int child_body(const struct scenario *s, enum evq_backend expect,
		      const bool *native)
{
	static const enum evq_backend all[] = {
		EVQ_BACKEND_URING, EVQ_BACKEND_AIO, EVQ_BACKEND_EPOLL,
		EVQ_BACKEND_POLL };
	struct evq_loop_options o = { 0 };
	struct evq_loop *loop;
	int r;

	for (size_t i = 0; i < T_NELEM(all); i++) {
		enum evq_backend b = all[i];

		o.backend = b;
		r = evq_loop_new(&loop, &o);
		if (!native[b]) {
			ASSERT_LT(r, 0);
			continue;
		}
		if (is_broken(s, b)) {
			T_STEP("%s, asked for by name, is refused",
			       evq_backend_name(b));
			ASSERT_ERR(r, -EPERM);
			continue;
		}
		T_STEP("%s, asked for by name, works",
		       evq_backend_name(b));
		ASSERT_OK(r);
		if (b == EVQ_BACKEND_AIO && b != expect) {
			/* aio works under this filter but auto does not
			 * take it: it must still run if asked for. */
			if (round_trips(loop) != T_PASS)
				return T_FAIL;
		}
		evq_loop_free(loop);
	}

	T_STEP("auto picks %s", evq_backend_name(expect));
	o.backend = EVQ_BACKEND_AUTO;
	ASSERT_OK(evq_loop_new(&loop, &o));
	ASSERT_STREQ(evq_loop_backend_name(loop), evq_backend_name(expect));
	if (round_trips(loop) != T_PASS)
		return T_FAIL;
	evq_loop_free(loop);
	return T_PASS;
}

static int run_scenario(const struct scenario *s)
{
#ifndef ARCH_NATIVE
	(void)s;
	return t_skip("no seccomp arch value known for this architecture");
#else
	enum evq_backend order[8], expect = EVQ_BACKEND_AUTO;
	bool native[EVQ_BACKEND_POLL + 1] = { false };
	int n = evq__backend_order(order, 8), status;
	pid_t pid;

	for (int b = EVQ_BACKEND_URING; b <= EVQ_BACKEND_POLL; b++)
		native[b] = works_here((enum evq_backend)b);
	for (int i = 0; i < n && expect == EVQ_BACKEND_AUTO; i++)
		if (native[order[i]] && !is_broken(s, order[i]))
			expect = order[i];
	if (expect == EVQ_BACKEND_AUTO)
		return t_skip("no backend left under this filter here");
	if (!native[EVQ_BACKEND_URING])
		t_note("io_uring does not work here to begin with");
	if (!native[EVQ_BACKEND_AIO])
		t_note("aio does not work here to begin with");
	t_note("documented order: %s, %s, %s, %s; auto should pick %s",
	       evq_backend_name(order[0]), evq_backend_name(order[1]),
	       evq_backend_name(order[2]), evq_backend_name(order[3]),
	       evq_backend_name(expect));

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int r;

		alarm(20);	/* a hang fails the case, not the suite */
		unsetenv("EVQ_BACKEND");
		r = install_filter(s->nrs);
		if (r < 0) {
			fprintf(stderr, "# seccomp filter: %s\n",
				strerror(-r));
			_exit(3);
		}
		r = child_body(s, expect, native);
		fflush(stdout);
		_exit(r == T_PASS ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	if (WEXITSTATUS(status) == 3)
		return t_skip("cannot install a seccomp filter here");
	ASSERT_EQ(WEXITSTATUS(status), 0);
	return T_PASS;
#endif
}

/* Docker's default profile: io_uring refused, AIO allowed. auto takes
 * whichever of aio and epoll comes first in the order. */
static int docker_profile_auto_takes_the_next_in_order(void)
{
	static const struct scenario s = {
		{ DOCKER, -1 },
		{ EVQ_BACKEND_URING, EVQ_BACKEND_AUTO } };

	return run_scenario(&s);
}

/* Docker's profile and io_setup refused: no aio, so epoll. */
static int docker_profile_without_io_setup_gives_epoll(void)
{
	static const struct scenario s = {
		{ DOCKER, __NR_io_setup, -1 },
		{ EVQ_BACKEND_URING, EVQ_BACKEND_AIO, EVQ_BACKEND_AUTO } };

	return run_scenario(&s);
}

/* io_setup allowed but io_submit refused: the context can be made, no
 * poll can be submitted. aio's init must find out (its self-test), so
 * aio by name is -EPERM and auto does not stop there. */
static int docker_profile_without_io_submit_gives_epoll(void)
{
	static const struct scenario s = {
		{ DOCKER, __NR_io_submit, -1 },
		{ EVQ_BACKEND_URING, EVQ_BACKEND_AIO, EVQ_BACKEND_AUTO } };

	return run_scenario(&s);
}

/* Docker's profile and epoll refused: aio needs an epoll set too (its
 * identity anchors and fallback), so it is broken as well: poll. */
static int docker_profile_without_epoll_gives_poll(void)
{
	static const struct scenario s = {
		{ DOCKER, __NR_epoll_create1,
#ifdef __NR_epoll_create
		  __NR_epoll_create,
#endif
		  -1 },
		{ EVQ_BACKEND_URING, EVQ_BACKEND_EPOLL, EVQ_BACKEND_AIO,
		  EVQ_BACKEND_AUTO } };

	return run_scenario(&s);
}

/* Docker's profile, io_setup and epoll refused: poll, the last one. */
static int docker_profile_without_aio_and_epoll_gives_poll(void)
{
	static const struct scenario s = {
		{ DOCKER, __NR_io_setup, __NR_epoll_create1,
#ifdef __NR_epoll_create
		  __NR_epoll_create,
#endif
		  -1 },
		{ EVQ_BACKEND_URING, EVQ_BACKEND_EPOLL, EVQ_BACKEND_AIO,
		  EVQ_BACKEND_AUTO } };

	return run_scenario(&s);
}

/* EVQ_DEBUG=1 under Docker's profile: one stderr line per backend, in
 * the order: the refused ones "skipped" with the stage and the error,
 * the one taken "chosen", the rest "not tried". */
static int debug_logs_one_line_per_backend(void)
{
#ifndef ARCH_NATIVE
	return t_skip("no seccomp arch value known for this architecture");
#else
	static const int nrs[] = { DOCKER, -1 };
	enum evq_backend order[8], expect = EVQ_BACKEND_AUTO;
	int n = evq__backend_order(order, 8), p[2], status, lines = 0;
	char buf[4096], want[128];
	size_t len = 0;
	ssize_t k;
	pid_t pid;

	for (int i = 0; i < n && expect == EVQ_BACKEND_AUTO; i++)
		if (order[i] != EVQ_BACKEND_URING && works_here(order[i]))
			expect = order[i];
	ASSERT_OK(pipe(p));
	fflush(stderr);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct evq_loop *loop;

		alarm(20);
		unsetenv("EVQ_BACKEND");
		setenv("EVQ_DEBUG", "1", 1);
		if (dup2(p[1], 2) < 0 || install_filter(nrs) < 0)
			_exit(3);
		if (evq_loop_new(&loop, NULL) < 0)
			_exit(1);
		evq_loop_free(loop);
		_exit(0);
	}
	close(p[1]);
	while (len < sizeof(buf) - 1 &&
	       (k = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)k;
	buf[len] = '\0';
	close(p[0]);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	if (WEXITSTATUS(status) == 3)
		return t_skip("cannot install a seccomp filter here");
	ASSERT_EQ(WEXITSTATUS(status), 0);
	for (char *l = buf, *e; *l; l = e + 1) {
		if (!(e = strchr(l, '\n')))
			break;
		t_note("stderr: %.*s", (int)(e - l), l);
	}
	for (char *l = buf; (l = strstr(l, "evq: auto: ")); l++)
		lines++;
	ASSERT_EQ(lines, n);
	snprintf(want, sizeof(want), "evq: auto: uring skipped: ");
	ASSERT_NOTNULL(strstr(buf, want));
	snprintf(want, sizeof(want), "evq: auto: %s chosen (",
		 evq_backend_name(expect));
	ASSERT_NOTNULL(strstr(buf, want));
	snprintf(want, sizeof(want), "evq: auto: poll not tried: after %s (",
		 evq_backend_name(expect));
	if (expect != EVQ_BACKEND_POLL)
		ASSERT_NOTNULL(strstr(buf, want));
	return T_PASS;
#endif
}

static const struct t_case cases[] = {
	T_CASE(docker_profile_auto_takes_the_next_in_order),
	T_CASE(docker_profile_without_io_setup_gives_epoll),
	T_CASE(docker_profile_without_io_submit_gives_epoll),
	T_CASE(docker_profile_without_epoll_gives_poll),
	T_CASE(docker_profile_without_aio_and_epoll_gives_poll),
	T_CASE(debug_logs_one_line_per_backend),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
