/* SPDX-License-Identifier: MIT */
/*
 * test_fallback.c - `auto` falls back for real when a kernel facility is
 * refused: a seccomp filter in a child process makes io_uring_setup (and
 * then io_setup too) fail with EPERM, as container profiles do. Asking for
 * the refused backend by name must return that error; `auto` must take the
 * next backend in order (uring, epoll, aio, poll: src/core/backend.c says
 * why aio comes after epoll). Runs once, not per backend: it is about
 * choosing one.
 */
#include "helpers.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Make each listed syscall fail with EPERM in this process, for good. */
static int refuse_syscalls(const int *nrs, int n)
{
	struct sock_filter f[1 + 2 * 4 + 1];
	struct sock_fprog prog;
	int k = 0;

	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	for (int i = 0; i < n; i++) {
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						      (unsigned)nrs[i], 0, 1);
		f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
						      SECCOMP_RET_ERRNO | EPERM);
	}
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog.len = (unsigned short)k;
	prog.filter = f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	return 0;
}

/* Can this machine run the backend at all (before any filter)? */
static bool backend_works(enum evq_backend b)
{
	struct evq_loop_options o = { .backend = b };
	struct evq_loop *loop;

	if (evq_loop_new(&loop, &o) < 0)
		return false;
	evq_loop_free(loop);
	return true;
}

/* In a child: refuse `nrs`, then check that `refused` gives -EPERM by
 * name and that auto picks `expect`. Exit status: 0 ok, else the step. */
static int child_check(const int *nrs, int n, const enum evq_backend *refused,
		       int nrefused, const char *expect)
{
	struct evq_loop_options o = { 0 };
	struct evq_loop *loop;
	pid_t pid = fork();
	int status;

	ASSERT_GE(pid, 0);
	if (pid == 0) {
		unsetenv("EVQ_BACKEND");
		if (refuse_syscalls(nrs, n) < 0)
			_exit(10);
		for (int i = 0; i < nrefused; i++) {
			o.backend = refused[i];
			if (evq_loop_new(&loop, &o) != -EPERM)
				_exit(11 + i);
		}
		o.backend = EVQ_BACKEND_AUTO;
		if (evq_loop_new(&loop, &o) < 0)
			_exit(20);
		if (strcmp(evq_loop_backend_name(loop), expect) != 0) {
			fprintf(stderr, "# auto picked %s, expected %s\n",
				evq_loop_backend_name(loop), expect);
			_exit(21);
		}
		evq_loop_free(loop);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	return T_PASS;
}

/* io_uring refused: auto takes epoll. */
static int uring_refused(void)
{
	static const int nrs[] = { __NR_io_uring_setup };
	static const enum evq_backend refused[] = { EVQ_BACKEND_URING };

	if (!backend_works(EVQ_BACKEND_URING))
		return t_skip("io_uring does not work here to begin with");
	return child_check(nrs, 1, refused, 1, "epoll");
}

/* io_uring and epoll refused: aio needs an epoll set too (for its
 * close-safety check), so auto goes down to poll. */
static int uring_and_epoll_refused(void)
{
	static const int nrs[] = { __NR_io_uring_setup, __NR_epoll_create1,
				   __NR_epoll_create };
	static const enum evq_backend refused[] = { EVQ_BACKEND_URING,
						    EVQ_BACKEND_EPOLL };

	if (!backend_works(EVQ_BACKEND_URING))
		return t_skip("io_uring does not work here to begin with");
	return child_check(nrs, 3, refused, 2, "poll");
}

/* io_uring and Linux AIO refused: auto takes epoll. */
static int uring_and_aio_refused(void)
{
	static const int nrs[] = { __NR_io_uring_setup, __NR_io_setup };
	static const enum evq_backend uring_only[] = { EVQ_BACKEND_URING };
	static const enum evq_backend both[] = { EVQ_BACKEND_URING,
						 EVQ_BACKEND_AIO };

	if (!backend_works(EVQ_BACKEND_URING))
		return t_skip("io_uring does not work here to begin with");
	/* An aio backend that is not built reports -ENOTSUP, not -EPERM. */
	if (backend_works(EVQ_BACKEND_AIO))
		return child_check(nrs, 2, both, 2, "epoll");
	return child_check(nrs, 2, uring_only, 1, "epoll");
}

static const struct t_case cases[] = {
	T_CASE(uring_refused),
	T_CASE(uring_and_epoll_refused),
	T_CASE(uring_and_aio_refused),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
