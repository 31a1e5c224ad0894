/* SPDX-License-Identifier: MIT */
/*
 * main.c - evq-bench: runs every workload on every contender and prints
 * one table per workload.
 *
 * Method (docs/BENCHMARKS.md says why): each run is a fresh loop; runs are
 * interleaved across contenders (A B C A B C ...) so that drift of the
 * machine spreads over all of them; a contender's figure is the median of
 * its runs, shown with the min and max, and its speed is given relative to
 * a reference's median (raw epoll, unless the workload names another raw
 * contender). Every run checks its count after timing; a
 * contender that fails the check is reported as failed and the exit status
 * is 1. Contenders whose library was not found at configure time are
 * listed as missing, never dropped; a contender of another model than the
 * workload's (a completion contender in pipes-*) is listed as n/a.
 *
 * Syscalls per unit of work are counted in a separate pass after the
 * timed runs, one shorter run per contender with a perf counter on the
 * raw_syscalls:sys_enter tracepoint: while that counter is open every
 * syscall on the machine is slower, so it never overlaps a timed run.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <dirent.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifdef BENCH_HAVE_EVQ
#include "evq.h"
#endif

#ifndef BENCH_RESULTS_DIR
#define BENCH_RESULTS_DIR "bench/results"
#endif

/* ------------------------------------------------------------------------
 * The contenders: the full list, whether built or not
 * ------------------------------------------------------------------------ */

extern const struct bench_contender bench_raw_epoll, bench_raw_sync;
#ifdef BENCH_HAVE_EVQ
extern const struct bench_contender bench_evq_epoll, bench_evq_poll,
	bench_evq_uring, bench_evq_aio;
extern const struct bench_contender bench_evq_epoll_ops, bench_evq_poll_ops,
	bench_evq_uring_ops, bench_evq_aio_ops;
#define EVQ_C(x) &bench_evq_##x
#else
#define EVQ_C(x) NULL
#endif
#ifdef BENCH_HAVE_LIBEV
extern const struct bench_contender bench_libev;
#define LIBEV_C &bench_libev
#else
#define LIBEV_C NULL
#endif
#ifdef BENCH_HAVE_LIBUV
extern const struct bench_contender bench_libuv;
#define LIBUV_C &bench_libuv
#else
#define LIBUV_C NULL
#endif
#ifdef BENCH_HAVE_LIBEVENT
extern const struct bench_contender bench_libevent;
#define LIBEVENT_C &bench_libevent
#else
#define LIBEVENT_C NULL
#endif
#ifdef BENCH_HAVE_TEVENT
extern const struct bench_contender bench_tevent;
#define TEVENT_C &bench_tevent
#else
#define TEVENT_C NULL
#endif
#ifdef BENCH_HAVE_LIBURING
extern const struct bench_contender bench_raw_uring, bench_raw_uring_ops;
#define RAW_URING_C &bench_raw_uring
#define RAW_URING_OPS_C &bench_raw_uring_ops
#else
#define RAW_URING_C NULL
#define RAW_URING_OPS_C NULL
#endif

#define BENCH_STR_(x) #x
#define BENCH_STR(x) BENCH_STR_(x)

#define REFERENCE "raw-epoll"	/* ratios are taken against it, unless
				 * the workload names another */

struct entry {
	const char *name;
	const struct bench_contender *c;	/* NULL: not built */
	const char *missing;			/* why it was not built */
};

static const struct entry contenders[] = {
	{ "raw-epoll", &bench_raw_epoll, NULL },
	{ "evq-epoll", EVQ_C(epoll), "evq library target not found" },
	{ "evq-poll", EVQ_C(poll), "evq library target not found" },
	{ "evq-uring", EVQ_C(uring), "evq library target not found" },
	{ "evq-aio", EVQ_C(aio), "evq library target not found" },
	{ "evq-epoll-ops", EVQ_C(epoll_ops), "evq library target not found" },
	{ "evq-poll-ops", EVQ_C(poll_ops), "evq library target not found" },
	{ "evq-uring-ops", EVQ_C(uring_ops), "evq library target not found" },
	{ "evq-aio-ops", EVQ_C(aio_ops), "evq library target not found" },
	{ "libev", LIBEV_C, "libev-dev not installed" },
	{ "libuv", LIBUV_C, "libuv1-dev not installed" },
	{ "libevent", LIBEVENT_C, "libevent-dev not installed" },
	{ "tevent", TEVENT_C, "libtevent-dev not installed" },
	{ "raw-uring", RAW_URING_C, "liburing-dev not installed" },
	{ "raw-uring-ops", RAW_URING_OPS_C, "liburing-dev not installed" },
	{ "raw-sync", &bench_raw_sync, NULL },
};
#define NCONTENDERS (sizeof(contenders) / sizeof(contenders[0]))

static const struct bench_workload *const workloads[] = {
	&bench_workload_pingpong,
	&bench_workload_pipes100,
	&bench_workload_pipes1000,
	&bench_workload_echo1,
	&bench_workload_echo64,
	&bench_workload_echo1000,
	&bench_workload_timers,
	&bench_workload_fileread_cached1,
	&bench_workload_fileread_cached32,
	&bench_workload_fileread_cached128,
	&bench_workload_fileread_direct1,
	&bench_workload_fileread_direct32,
	&bench_workload_fileread_direct128,
	&bench_workload_statstorm,
	&bench_workload_idle5000,
	&bench_workload_idlemax,
	&bench_workload_msg,
	&bench_workload_msg_pingpong,
};
#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

/* ------------------------------------------------------------------------
 * Shared helpers (bench.h)
 * ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct bench_stats bench_stats(double *v, size_t n)
{
	struct bench_stats s = { 0, 0, 0 };

	if (n == 0)
		return s;
	qsort(v, n, sizeof(*v), cmp_double);
	s.min = v[0];
	s.max = v[n - 1];
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

int bench_pipe(int fds[2])
{
	return pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0 ? -errno : 0;
}

int bench_raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		return -EMFILE;
	rl.rlim_cur = want;
	return setrlimit(RLIMIT_NOFILE, &rl) < 0 ? -errno : 0;
}

pid_t bench_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* ------------------------------------------------------------------------
 * Syscall counting (bench.h)
 *
 * The counter of choice is perf's: a counting event on the
 * raw_syscalls:sys_enter tracepoint, per thread. It needs the tracepoint's
 * id, from tracefs (root only to read, and not mounted on every system:
 * bench/run.sh mounts it when run as root), and perf_event_open's leave
 * (root, CAP_PERFMON, or kernel.perf_event_paranoid low enough). When it
 * cannot be had, sysc_init() says exactly why and the pass falls back to
 * strace: strace -c attached to the thread(s) for the counted window,
 * detached at the second read. ptrace makes every syscall of the traced
 * thread cost tens of microseconds, so the pass is slower and batching
 * loops may batch differently under it: its figures are labelled.
 * EVQ_BENCH_SYSCALLS=perf|strace|none chooses one by hand.
 * ------------------------------------------------------------------------ */

enum sysc_method { SYSC_NONE, SYSC_PERF, SYSC_STRACE };

static enum sysc_method sysc_method;
static char sysc_why[400];	/* why not perf (or why none at all) */

const char *bench_sysc_why(void)
{
	return sysc_why;
}

static const char *const tp_paths[] = {
	"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
	"/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
};

static long tracepoint_id(void)
{
	static long id = -1;

	for (size_t i = 0; id < 0 && i < sizeof(tp_paths) / sizeof(*tp_paths);
	     i++) {
		FILE *f = fopen(tp_paths[i], "r");

		if (f == NULL)
			continue;
		if (fscanf(f, "%ld", &id) != 1)
			id = -1;
		fclose(f);
	}
	return id;
}

/* Why the tracepoint's id cannot be read, in words a user can act on. */
static void tracepoint_why(char *buf, size_t len)
{
	int mounted = 0;
	char line[512];
	FILE *m = fopen("/proc/mounts", "r");

	while (m != NULL && fgets(line, sizeof(line), m) != NULL)
		if (strstr(line, " tracefs ") != NULL)
			mounted = 1;
	if (m != NULL)
		fclose(m);
	for (size_t i = 0; i < sizeof(tp_paths) / sizeof(*tp_paths); i++) {
		if (access(tp_paths[i], F_OK) == 0 || errno == EACCES) {
			snprintf(buf, len, "cannot read %s: permission denied "
				 "(tracefs is readable by root only)",
				 tp_paths[i]);
			return;
		}
	}
	if (!mounted)
		snprintf(buf, len, "tracefs is not mounted (as root: mount -t "
			 "tracefs tracefs /sys/kernel/tracing; bench/run.sh "
			 "does it when run as root)");
	else
		snprintf(buf, len, "no raw_syscalls:sys_enter tracepoint "
			 "under the mounted tracefs (a kernel without "
			 "CONFIG_FTRACE_SYSCALLS?)");
}

static int paranoid_level(void)
{
	int v = 99;
	FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");

	if (f != NULL) {
		if (fscanf(f, "%d", &v) != 1)
			v = 99;
		fclose(f);
	}
	return v;
}

static int perf_open(pid_t tid, int inherit)
{
	struct perf_event_attr a;
	long id = tracepoint_id();
	int fd;

	if (id < 0)
		return -ENOENT;
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_TRACEPOINT;
	a.size = sizeof(a);
	a.config = (uint64_t)id;
	a.inherit = inherit ? 1 : 0;
	fd = (int)syscall(SYS_perf_event_open, &a, tid, -1, -1,
			  PERF_FLAG_FD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int have_program(const char *name)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save;
	int found = 0;

	if (path == NULL)
		return 0;
	copy = strdup(path);
	for (dir = strtok_r(copy, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		char p[4096];

		snprintf(p, sizeof(p), "%s/%s", dir, name);
		found = access(p, X_OK) == 0;
	}
	free(copy);
	return found;
}

/* Choose the counter, once, before any run. */
static void sysc_init(void)
{
	const char *force = getenv("EVQ_BENCH_SYSCALLS");
	int fd;

	if (force != NULL && strcmp(force, "none") == 0) {
		sysc_method = SYSC_NONE;
		snprintf(sysc_why, sizeof(sysc_why),
			 "EVQ_BENCH_SYSCALLS=none");
		return;
	}
	if (force != NULL && strcmp(force, "strace") == 0) {
		snprintf(sysc_why, sizeof(sysc_why),
			 "EVQ_BENCH_SYSCALLS=strace");
	} else if (tracepoint_id() < 0) {
		tracepoint_why(sysc_why, sizeof(sysc_why));
	} else if ((fd = perf_open(0, 0)) < 0) {
		if (fd == -EACCES || fd == -EPERM)
			snprintf(sysc_why, sizeof(sysc_why),
				 "perf_event_open on raw_syscalls:sys_enter: "
				 "%s (kernel.perf_event_paranoid = %d; a "
				 "tracepoint needs root, CAP_PERFMON, or -1)",
				 strerror(-fd), paranoid_level());
		else
			snprintf(sysc_why, sizeof(sysc_why),
				 "perf_event_open on raw_syscalls:sys_enter: "
				 "%s", strerror(-fd));
	} else {
		close(fd);
		sysc_method = SYSC_PERF;
		sysc_why[0] = '\0';
		return;
	}
	if (have_program("strace")) {
		sysc_method = SYSC_STRACE;
		/* Yama's ptrace_scope 1 lets only an ancestor trace us:
		 * allow the strace we start. */
		prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
	} else {
		size_t n = strlen(sysc_why);

		sysc_method = SYSC_NONE;
		snprintf(sysc_why + n, sizeof(sysc_why) - n,
			 "; and strace, the fallback, is not installed");
	}
}

/* How the figures were counted, for the tables. */
static void sysc_label(char *buf, size_t len)
{
	if (sysc_method == SYSC_PERF)
		snprintf(buf, len, "a perf counter on raw_syscalls:sys_enter");
	else
		snprintf(buf, len, "strace -c attached for the counted window "
			 "(ptrace slows each syscall, so a loop that batches "
			 "may batch differently: an approximation). The perf "
			 "counter was not used: %s", sysc_why);
}

/* strace counters: a real fd (of /dev/null) stands for each, so that
 * workloads treat both kinds alike. */
#define SYSC_STRACE_MAX 8
static struct {
	int fd;			/* -1: free */
	pid_t pid;		/* strace's */
	int reads;
	uint64_t total;
	char out[64];
} stc[SYSC_STRACE_MAX] = {
	[0 ... SYSC_STRACE_MAX - 1] = { .fd = -1 },
};

static int traced_by(pid_t tid, pid_t tracer)
{
	char path[64], line[128];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;	/* gone */
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "TracerPid:", 10) == 0)
			found = atoi(line + 10) == tracer;
	fclose(f);
	return found;
}

/* Are tid (0: every thread of the process) traced by tracer yet? */
static int all_traced(pid_t tid, pid_t tracer)
{
	DIR *d;
	struct dirent *de;
	int ok = 1;

	if (tid != 0)
		return traced_by(tid, tracer) == 1;
	d = opendir("/proc/self/task");
	while (d != NULL && (de = readdir(d)) != NULL) {
		pid_t t = (pid_t)atoi(de->d_name);

		if (t > 0 && traced_by(t, tracer) == 0)
			ok = 0;
	}
	if (d != NULL)
		closedir(d);
	return ok;
}

static uint64_t strace_total(const char *path)
{
	char line[256];
	uint64_t total = 0;
	FILE *f = fopen(path, "r");

	/* "100.00    0.001234           1      1234        12 total" */
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		char *tok[8], *save, *t;
		int n = 0;

		for (t = strtok_r(line, " \t\n", &save); t && n < 8;
		     t = strtok_r(NULL, " \t\n", &save))
			tok[n++] = t;
		if (n >= 5 && strcmp(tok[n - 1], "total") == 0)
			total = strtoull(tok[3], NULL, 10);
	}
	if (f != NULL)
		fclose(f);
	return total;
}

/* Attach strace -c to tid (0: the whole process, every thread, and the
 * threads it makes from now on). */
static int strace_open(pid_t tid)
{
	char target[32];
	char *argv[12];
	int i, k = 0, slot = -1;
	uint64_t t0;
	pid_t pid;

	for (i = 0; i < SYSC_STRACE_MAX && slot < 0; i++)
		if (stc[i].fd < 0)
			slot = i;
	if (slot < 0)
		return -EMFILE;
	snprintf(stc[slot].out, sizeof(stc[slot].out),
		 "/tmp/evq-bench-strace.%d.%d", (int)getpid(), slot);
	snprintf(target, sizeof(target), "%d", (int)(tid ? tid : getpid()));
	argv[k++] = "strace";
	argv[k++] = "-c";
	argv[k++] = "-qq";
	if (tid == 0)
		argv[k++] = "-f";
	argv[k++] = "-o";
	argv[k++] = stc[slot].out;
	argv[k++] = "-p";
	argv[k++] = target;
	argv[k] = NULL;
	if (posix_spawnp(&pid, "strace", NULL, NULL, argv, environ) != 0)
		return -ENOENT;
	/* Counting starts once strace holds every thread it was asked
	 * for; it says nothing when it does (-qq), /proc does. */
	t0 = bench_now_ns();
	while (!all_traced(tid, pid)) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid ||
		    bench_now_ns() - t0 > 5000000000ull) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			unlink(stc[slot].out);
			snprintf(sysc_why, sizeof(sysc_why),
				 "strace could not attach (ptrace refused?)");
			return -EPERM;
		}
		usleep(1000);
	}
	stc[slot].fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (stc[slot].fd < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -errno;
	}
	stc[slot].pid = pid;
	stc[slot].reads = 0;
	stc[slot].total = 0;
	return stc[slot].fd;
}

static int strace_slot(int fd)
{
	for (int i = 0; i < SYSC_STRACE_MAX; i++)
		if (stc[i].fd == fd && fd >= 0)
			return i;
	return -1;
}

/* Detach (strace prints its summary on SIGINT) and read the count. */
static void strace_stop(int i)
{
	int st;

	if (stc[i].pid <= 0)
		return;
	kill(stc[i].pid, SIGINT);
	while (waitpid(stc[i].pid, &st, 0) < 0 && errno == EINTR)
		;
	stc[i].pid = 0;
	stc[i].total = strace_total(stc[i].out);
	unlink(stc[i].out);
}

int bench_sysc_open(pid_t tid)
{
	switch (sysc_method) {
	case SYSC_PERF:
		return perf_open(tid ? tid : bench_gettid(), 0);
	case SYSC_STRACE:
		return strace_open(tid ? tid : bench_gettid());
	default:
		return -ENOTSUP;
	}
}

/* perf: the count so far. strace: 0 at the first read (the window
 * starts at the attach), the whole count from the second on (the window
 * ends: strace detaches). */
uint64_t bench_sysc_read(int fd)
{
	uint64_t v = 0;
	int i = strace_slot(fd);

	if (i >= 0) {
		if (stc[i].reads++ == 0)
			return 0;
		strace_stop(i);
		return stc[i].total;
	}
	if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

void bench_sysc_close(int fd)
{
	int i = strace_slot(fd);

	if (i >= 0) {
		strace_stop(i);
		stc[i].fd = -1;
	}
	close(fd);
}

int bench_sysc_all_open(struct bench_sysc_all *s)
{
	DIR *d;
	struct dirent *de;
	int err = 0;

	s->n = 0;
	if (sysc_method == SYSC_STRACE) {
		int fd = strace_open(0);

		if (fd < 0)
			return fd;
		s->fd[s->n++] = fd;
		return 0;
	}
	if (sysc_method != SYSC_PERF)
		return -ENOTSUP;
	d = opendir("/proc/self/task");
	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		pid_t tid = (pid_t)atoi(de->d_name);
		int fd;

		if (tid <= 0)
			continue;
		if (s->n == sizeof(s->fd) / sizeof(s->fd[0])) {
			err = -E2BIG;
			break;
		}
		fd = perf_open(tid, 1);
		if (fd == -ESRCH)
			continue;	/* it just exited */
		if (fd < 0) {
			err = fd;
			break;
		}
		s->fd[s->n++] = fd;
	}
	closedir(d);
	if (err < 0)
		bench_sysc_all_close(s);
	return err;
}

uint64_t bench_sysc_all_read(const struct bench_sysc_all *s)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < s->n; i++)
		sum += bench_sysc_read(s->fd[i]);
	return sum;
}

void bench_sysc_all_close(struct bench_sysc_all *s)
{
	for (unsigned i = 0; i < s->n; i++)
		bench_sysc_close(s->fd[i]);
	s->n = 0;
}

int bench_mkdirs(const char *dir)
{
	char path[4096];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0777) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0777) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------------------
 * CPU time of the other threads (bench.h)
 * ------------------------------------------------------------------------ */

void bench_cpu_others(pid_t skip, struct bench_task_cpu *out)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	out->n = 0;
	while (d != NULL && (de = readdir(d)) != NULL &&
	       out->n < sizeof(out->tid) / sizeof(out->tid[0])) {
		char path[64];
		unsigned long long ns;
		pid_t tid = (pid_t)atoi(de->d_name);
		FILE *f;

		if (tid <= 0 || tid == skip)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat",
			 (int)tid);
		f = fopen(path, "r");
		if (f == NULL)
			continue;	/* it just exited */
		if (fscanf(f, "%llu", &ns) == 1) {
			out->tid[out->n] = tid;
			out->ns[out->n] = ns;
			out->n++;
		}
		fclose(f);
	}
	if (d != NULL)
		closedir(d);
}

uint64_t bench_cpu_others_delta(const struct bench_task_cpu *a,
				const struct bench_task_cpu *b)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < b->n; i++) {
		uint64_t before = 0;

		for (unsigned j = 0; j < a->n; j++)
			if (a->tid[j] == b->tid[i])
				before = a->ns[j];
		if (b->ns[i] > before)
			sum += b->ns[i] - before;
	}
	return sum;
}

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

/* Sizes of a run: the default set (`make bench`, under 3 minutes on a
 * 2-core VM), --full (`make bench-full`) and --test (bench_smoke); and the
 * syscall pass's caps (smaller: it only counts, and a counter makes every
 * syscall slower). */
#define DEFAULT_EVENTS 50000
#define DEFAULT_SAMPLE_MS 1000	/* echo: timed ms per run */
#define DEFAULT_WARM_MS 250	/* echo: untimed ms before them */
#define DEFAULT_TIMERS 200000
#define DEFAULT_READ_MS 50	/* fileread-*: ms of reading per run */
#define DEFAULT_FILES 20000
#define DEFAULT_FILE_MIB 1024
#define FULL_EVENTS 1000000
#define FULL_TIMERS 1000000
#define FULL_READ_MS 1000
#define FULL_FILES 100000
#define SYS_EVENTS 20000
#define SYS_ROUNDS 10
#define SYS_SAMPLE_MS 300
/* not capped: how many wakeups an op costs depends on how many timers
 * share the 50 ms window, so the pass runs the table's own size */
#define SYS_TIMERS FULL_TIMERS
#define SYS_READ_MS 30
#define SYS_FILES 10000
/* Warm-up caps: a warm-up costs the same at any size. */
#define WARM_EVENTS 10000
#define WARM_ROUNDS 3
#define WARM_SAMPLE_MS 200
#define WARM_TIMERS 20000
#define WARM_READ_MS 20
#define WARM_FILES 2000

static struct {
	const char *workloads;	/* comma list, NULL: all */
	const char *contenders;	/* comma list, NULL: all */
	struct bench_params params;
	unsigned runs;
	int test;
	int full;		/* --full: every workload, full sizes */
	int syscalls;		/* the syscall pass */
	int save;
	int warmup;
	int cpu;		/* pin to it, -1: don't */
	unsigned timeout;	/* s per run before the watchdog fires */
	const char *out;
	const char *child;	/* --child-run WORKLOAD:CONTENDER */
	unsigned child_seq;
	int child_test, child_sys;
} opt = {
	.params = { .events = DEFAULT_EVENTS, .rounds = 100,
		    .sample_ms = DEFAULT_SAMPLE_MS,
		    .warm_ms = DEFAULT_WARM_MS, .timers = DEFAULT_TIMERS,
		    .read_ms = DEFAULT_READ_MS, .files = DEFAULT_FILES,
		    .file_mib = DEFAULT_FILE_MIB },
	.runs = 5,
	.syscalls = 1,
	.save = 1,
	.warmup = 1,
	.cpu = -1,
	.timeout = 120,
	.out = BENCH_RESULTS_DIR,
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: evq-bench [options]\n"
"  -w, --workload LIST   workloads to run (default: the default set, see\n"
"                        --list); a name, or the part before a '-'\n"
"                        (\"pipes\" = pipes-100,pipes-1000; \"fileread\" =\n"
"                        all six fileread-*; \"fileread-direct\" = three)\n"
"      --full            every workload, at full size (make bench-full):\n"
"                        %d events, %d timers,\n"
"                        %d ms of reads, %d files; -n etc. still override\n"
"  -c, --contender LIST  contenders to run (default: all); a name, or the part\n"
"                        before a '-' (\"evq\" = evq-*, \"raw\" = raw-*); a\n"
"                        full name is only itself (evq-uring, not -ops)\n"
"  -n, --events N        pingpong: events per run (default %d)\n"
"      --rounds K        pipes-*: timed rounds per run (default 100)\n"
"      --sample-ms MS    echo-*: timed ms per run (default %d), after\n"
"      --warm-ms MS      this many untimed ms (default %d)\n"
"      --timers N        timers: timers per run (default %d)\n"
"      --read-ms MS      fileread-*: ms of reads per run (default %d)\n"
"      --files N         statstorm: files per run (default %d, at most\n"
"                        %d)\n"
"      --file-mib M      fileread-*: size of the file read (default %d)\n"
"      --data DIR        where the cached test file and tree go (default:\n"
"                        bench-data/ beside the evq-bench binary)\n"
"  -r, --runs R          runs per contender, interleaved (default 5)\n"
"      --no-syscalls     skip the syscall-counting pass\n"
"      --test            smoke test: every workload, tiny sizes, one run\n"
"                        each, no result files; exits 1 if a contender\n"
"                        that is built fails\n"
"      --out DIR         where <workload>.csv/.png go (default %s)\n"
"      --no-save         write no CSV or PNG\n"
"      --no-warmup       no untimed warm-up run per contender\n"
"      --cpu K           pin the process to CPU K\n"
"      --timeout S       a run taking longer than S s is a hang (default 120)\n"
"  -l, --list            list workloads and contenders, and exit\n"
"  -h, --help            this text\n"
"Runs are interleaved across contenders; each figure is the median of the\n"
"runs with their min and max. \"vs raw\" is the speed relative to the\n"
"reference's median (raw-epoll; raw-sync for the file workloads; higher\n"
"is better). See docs/BENCHMARKS.md.\n",
		FULL_EVENTS, FULL_TIMERS, FULL_READ_MS,
		FULL_FILES, DEFAULT_EVENTS, DEFAULT_SAMPLE_MS,
		DEFAULT_WARM_MS, DEFAULT_TIMERS,
		DEFAULT_READ_MS, DEFAULT_FILES, FULL_FILES, DEFAULT_FILE_MIB,
		BENCH_RESULTS_DIR);
}

static int is_full_name(const char *s, size_t len);

/* Does the comma list contain name, or a prefix of it ending before '-'
 * that is not itself a full name? */
static int list_has(const char *list, const char *name)
{
	const char *p = list;

	if (list == NULL)
		return 1;
	while (*p) {
		size_t len = strcspn(p, ",");

		if (len > 0 && strncmp(p, name, len) == 0 &&
		    (name[len] == '\0' ||
		     (name[len] == '-' && !is_full_name(p, len))))
			return 1;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* Is every item of the list known? Prints the unknown one. */
static int list_check(const char *list, const char *what,
		      const char *(*name_at)(size_t), size_t n)
{
	char *copy, *tok, *save;
	int ok = 1;

	if (list == NULL)
		return 1;
	copy = strdup(list);
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < n; i++)
			if (list_has(tok, name_at(i)))
				break;
		if (i == n) {
			fprintf(stderr, "evq-bench: unknown %s '%s'\n", what,
				tok);
			ok = 0;
		}
	}
	free(copy);
	return ok;
}

static const char *contender_name_at(size_t i)
{
	return contenders[i].name;
}

static const char *workload_name_at(size_t i)
{
	return workloads[i]->name;
}

static int is_full_name(const char *s, size_t len)
{
	for (size_t i = 0; i < NCONTENDERS; i++)
		if (strlen(contenders[i].name) == len &&
		    strncmp(contenders[i].name, s, len) == 0)
			return 1;
	for (size_t i = 0; i < NWORKLOADS; i++)
		if (strlen(workloads[i]->name) == len &&
		    strncmp(workloads[i]->name, s, len) == 0)
			return 1;
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0)
		return -1;
	*out = v;
	return 0;
}

/* bench-data/ beside the evq-bench binary: in the build directory, so
 * that it goes with it (make clean) and one build's runs share it. */
static const char *default_data_dir(void)
{
	static char dir[4096];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 32);
	char *slash;

	if (n <= 0)
		return "bench-data";
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash == NULL)
		return "bench-data";
	strcpy(slash + 1, "bench-data");
	return dir;
}

static int parse_args(int argc, char **argv)
{
	enum { O_ROUNDS = 256, O_TEST, O_OUT, O_NOSAVE, O_NOWARM, O_CPU,
	       O_TIMEOUT, O_REQUESTS, O_NOSYS, O_FULL, O_TIMERS, O_READMS,
	       O_FILES, O_FILEMIB, O_DATA, O_WARMMS, O_CHILD, O_CHILDSEQ,
	       O_CHILDTEST, O_CHILDSYS };
	static const struct option lopts[] = {
		{ "workload", required_argument, NULL, 'w' },
		{ "contender", required_argument, NULL, 'c' },
		{ "events", required_argument, NULL, 'n' },
		{ "runs", required_argument, NULL, 'r' },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "sample-ms", required_argument, NULL, O_REQUESTS },
		{ "warm-ms", required_argument, NULL, O_WARMMS },
		{ "child-run", required_argument, NULL, O_CHILD },
		{ "child-seq", required_argument, NULL, O_CHILDSEQ },
		{ "child-test", no_argument, NULL, O_CHILDTEST },
		{ "child-sys", no_argument, NULL, O_CHILDSYS },
		{ "no-syscalls", no_argument, NULL, O_NOSYS },
		{ "full", no_argument, NULL, O_FULL },
		{ "timers", required_argument, NULL, O_TIMERS },
		{ "read-ms", required_argument, NULL, O_READMS },
		{ "files", required_argument, NULL, O_FILES },
		{ "file-mib", required_argument, NULL, O_FILEMIB },
		{ "data", required_argument, NULL, O_DATA },
		{ "test", no_argument, NULL, O_TEST },
		{ "out", required_argument, NULL, O_OUT },
		{ "no-save", no_argument, NULL, O_NOSAVE },
		{ "no-warmup", no_argument, NULL, O_NOWARM },
		{ "cpu", required_argument, NULL, O_CPU },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int have_events = 0, have_runs = 0, have_rounds = 0, have_out = 0;
	int have_requests = 0, have_timers = 0, have_readms = 0;
	int have_files = 0, have_filemib = 0, have_warmms = 0;
	int c, list = 0;
	uint64_t v;

	while ((c = getopt_long(argc, argv, "w:c:n:r:lh", lopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			opt.workloads = optarg;
			break;
		case 'c':
			opt.contenders = optarg;
			break;
		case 'n':
			if (parse_u64(optarg, &opt.params.events) < 0)
				goto bad;
			have_events = 1;
			break;
		case 'r':
			if (parse_u64(optarg, &v) < 0 || v > 100000)
				goto bad;
			opt.runs = (unsigned)v;
			have_runs = 1;
			break;
		case O_ROUNDS:
			if (parse_u64(optarg, &v) < 0 || v > 1000000)
				goto bad;
			opt.params.rounds = (unsigned)v;
			have_rounds = 1;
			break;
		case O_REQUESTS:
			if (parse_u64(optarg, &opt.params.sample_ms) < 0 ||
			    opt.params.sample_ms > 600000)
				goto bad;
			have_requests = 1;
			break;
		case O_CHILD:
			opt.child = optarg;
			break;
		case O_CHILDSEQ:
			opt.child_seq = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case O_CHILDTEST:
			opt.child_test = 1;
			break;
		case O_CHILDSYS:
			opt.child_sys = 1;
			break;
		case O_WARMMS:
			if (strcmp(optarg, "0") == 0)
				v = 0;
			else if (parse_u64(optarg, &v) < 0 || v > 600000)
				goto bad;
			opt.params.warm_ms = v;
			have_warmms = 1;
			break;
		case O_NOSYS:
			opt.syscalls = 0;
			break;
		case O_FULL:
			opt.full = 1;
			break;
		case O_TIMERS:
			if (parse_u64(optarg, &opt.params.timers) < 0 ||
			    opt.params.timers > 100000000)
				goto bad;
			have_timers = 1;
			break;
		case O_READMS:
			if (parse_u64(optarg, &opt.params.read_ms) < 0 ||
			    opt.params.read_ms > 3600000)
				goto bad;
			have_readms = 1;
			break;
		case O_FILES:
			if (parse_u64(optarg, &opt.params.files) < 0 ||
			    opt.params.files > FULL_FILES)
				goto bad;
			have_files = 1;
			break;
		case O_FILEMIB:
			if (parse_u64(optarg, &opt.params.file_mib) < 0 ||
			    opt.params.file_mib > 1048576)
				goto bad;
			have_filemib = 1;
			break;
		case O_DATA:
			opt.params.data_dir = optarg;
			break;
		case O_TEST:
			opt.test = 1;
			break;
		case O_OUT:
			opt.out = optarg;
			have_out = 1;
			break;
		case O_NOSAVE:
			opt.save = 0;
			break;
		case O_NOWARM:
			opt.warmup = 0;
			break;
		case O_CPU:
			if (strcmp(optarg, "0") == 0)
				v = 0;
			else if (parse_u64(optarg, &v) < 0 || v >= CPU_SETSIZE)
				goto bad;
			opt.cpu = (int)v;
			break;
		case O_TIMEOUT:
			if (parse_u64(optarg, &v) < 0 || v > 86400)
				goto bad;
			opt.timeout = (unsigned)v;
			break;
		case 'l':
			list = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "evq-bench: unexpected argument '%s'\n",
			argv[optind]);
		exit(2);
	}
	if (!list_check(opt.workloads, "workload", workload_name_at,
			NWORKLOADS) ||
	    !list_check(opt.contenders, "contender", contender_name_at,
			NCONTENDERS))
		exit(2);
	if (opt.full && !opt.test) {
		if (!have_events)
			opt.params.events = FULL_EVENTS;
		if (!have_timers)
			opt.params.timers = FULL_TIMERS;
		if (!have_readms)
			opt.params.read_ms = FULL_READ_MS;
		if (!have_files)
			opt.params.files = FULL_FILES;
	}
	if (opt.test) {
		if (!have_events)
			opt.params.events = 1000;
		if (!have_rounds)
			opt.params.rounds = 3;
		if (!have_requests)
			opt.params.sample_ms = 50;
		if (!have_warmms)
			opt.params.warm_ms = 20;
		if (!have_timers)
			opt.params.timers = 2000;
		if (!have_readms)
			opt.params.read_ms = 10;
		if (!have_files)
			opt.params.files = 200;
		if (!have_filemib)
			opt.params.file_mib = 4;
		if (!have_runs)
			opt.runs = 1;
		if (!have_out)
			opt.save = 0;
		opt.warmup = 0;
		opt.params.test = 1;
	}
	if (opt.params.data_dir == NULL)
		opt.params.data_dir = default_data_dir();
	return list;
bad:
	fprintf(stderr, "evq-bench: bad value '%s'\n", optarg);
	exit(2);
}

/* ------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------ */

enum status {
	ST_OK,
	ST_MISSING,	/* not built */
	ST_UNAVAILABLE,	/* built, but probe says no */
	ST_FAILED,	/* a run failed: setup error or count check */
	ST_CANNOT,	/* this workload cannot run here (BENCH_CANNOT) */
	ST_NA,		/* the workload is of the other model */
};

struct result {
	const struct entry *e;
	enum status status;
	char note[480];
	double *values;		/* one per run */
	double *cpus;
	double *extras[BENCH_NEXTRA];
	unsigned n;
	struct bench_stats st, cpu, extra[BENCH_NEXTRA];
	double sys;		/* from the syscall pass; < 0: not counted */
	char sys_note[120];
};

/* What the watchdog says if a run never returns. */
static const char *volatile cur_contender = "";
static const char *volatile cur_workload = "";

static void put_err(const char *s)
{
	ssize_t r = write(2, s, strlen(s));

	(void)r;
}

static void on_alarm(int sig)
{
	(void)sig;
	put_err("\nevq-bench: ");
	put_err(cur_contender);
	put_err(" hung in workload ");
	put_err(cur_workload);
	put_err(" (--timeout reached); giving up\n");
	_exit(3);
}

static int progress_on;

static void progress(const char *wl, unsigned run, unsigned runs,
		     const char *who)
{
	if (!progress_on)
		return;
	if (runs == 0)
		fprintf(stderr, "\r\033[K%s: %s", wl, who);
	else if (run == 0)
		fprintf(stderr, "\r\033[K%s: warm-up %s", wl, who);
	else if (run > runs)
		fprintf(stderr, "\r\033[K%s: counting syscalls %s", wl, who);
	else
		fprintf(stderr, "\r\033[K%s: run %u/%u %s", wl, run, runs, who);
}

static void progress_clear(void)
{
	if (progress_on)
		fprintf(stderr, "\r\033[K");
}

static void probe_all(struct result *res, size_t *nres)
{
	size_t n = 0;

	for (size_t i = 0; i < NCONTENDERS; i++) {
		const struct entry *e = &contenders[i];
		struct result *r;

		if (!list_has(opt.contenders, e->name))
			continue;
		r = &res[n++];
		memset(r, 0, sizeof(*r));
		r->e = e;
		if (e->c == NULL) {
			r->status = ST_MISSING;
			snprintf(r->note, sizeof(r->note), "missing (%s)",
				 e->missing);
		} else if (e->c->probe != NULL) {
			char why[200] = "";
			int err = e->c->probe(e->c, why, sizeof(why));

			if (err < 0) {
				r->status = ST_UNAVAILABLE;
				snprintf(r->note, sizeof(r->note),
					 "not available: %s",
					 why[0] ? why : strerror(-err));
			}
		}
	}
	*nres = n;
}

static int model_ok(const struct bench_workload *wl,
		    const struct bench_contender *c)
{
	return ((wl->models & BENCH_MODEL_IO) && c->io_new != NULL) ||
	       ((wl->models & BENCH_MODEL_OPS) && c->op_new != NULL) ||
	       ((wl->models & BENCH_MODEL_TIMER) && c->timer_new != NULL) ||
	       ((wl->models & BENCH_MODEL_FILE) && c->fop_new != NULL) ||
	       ((wl->models & BENCH_MODEL_IDLE) && c->idle_serve != NULL);
}

static void run_one(const struct bench_workload *wl, struct result *r,
		    const struct bench_params *p, int record, unsigned run)
{
	struct bench_sample s = { 0, 0, -1, { 0 } };
	char err[400];
	int ret;

	cur_contender = r->e->name;
	cur_workload = wl->name;
	alarm(opt.timeout);
	ret = wl->run(wl, r->e->c, p, &s, err, sizeof(err));
	alarm(0);
	if (ret == BENCH_CANNOT) {
		r->status = ST_CANNOT;
		snprintf(r->note, sizeof(r->note), "%s", err);
		return;
	}
	if (ret < 0) {
		r->status = ST_FAILED;
		if (p->count_syscalls)
			snprintf(r->note, sizeof(r->note),
				 "FAILED syscall-count run: %s", err);
		else if (record)
			snprintf(r->note, sizeof(r->note), "FAILED run %u: %s",
				 run, err);
		else
			snprintf(r->note, sizeof(r->note),
				 "FAILED warm-up: %s", err);
		return;
	}
	if (p->count_syscalls) {
		r->sys = s.sys;
		return;
	}
	if (record) {
		r->values[r->n] = s.value;
		r->cpus[r->n] = s.cpu;
		for (int k = 0; k < BENCH_NEXTRA; k++)
			r->extras[k][r->n] = s.extra[k];
		r->n++;
	}
}

/* The external program of a workload (fio), measured once per timed run
 * in the same interleaving as the contenders. */
static struct {
	int status;		/* 0 ok, -1 failed, BENCH_CANNOT */
	char name[400];
	char note[400];
	double values[1024], cpus[1024];
	unsigned n;
	struct bench_stats st, cpu;
} ext;

static void run_external(const struct bench_workload *wl,
			 const struct bench_params *p)
{
	struct bench_sample s = { 0, 0, -1, { 0 } };
	char err[400] = "";
	int ret;

	if (wl->external == NULL || ext.status != 0 ||
	    ext.n == sizeof(ext.values) / sizeof(ext.values[0]))
		return;
	cur_contender = "(external)";
	cur_workload = wl->name;
	alarm(opt.timeout);
	ret = wl->external(wl, p, &s, ext.name, sizeof(ext.name), err,
			   sizeof(err));
	alarm(0);
	if (ret < 0) {
		ext.status = ret == BENCH_CANNOT ? BENCH_CANNOT : -1;
		snprintf(ext.note, sizeof(ext.note), "%s", err);
		return;
	}
	ext.values[ext.n] = s.value;
	ext.cpus[ext.n] = s.cpu;
	ext.n++;
}

/* How busy the rest of the machine was while a table was measured, from
 * /proc/stat: a busy neighbour explains a wide spread. */
struct machine_load {
	uint64_t wall_ns, cpu_ns;	/* ours */
	double busy_s, steal_s;		/* all CPUs, from /proc/stat */
};

static int read_load(struct machine_load *l)
{
	unsigned long long v[8] = { 0 };
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");
	int n;

	l->wall_ns = bench_now_ns();
	l->cpu_ns = bench_cpu_ns();
	if (f == NULL)
		return -1;
	/* cpu user nice system idle iowait irq softirq steal */
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 7 || hz <= 0)
		return -1;
	l->busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / (double)hz;
	l->steal_s = (double)v[7] / (double)hz;
	return 0;
}

static char load_note[160];

static void note_load(const struct machine_load *a,
		      const struct machine_load *b)
{
	double wall = (double)(b->wall_ns - a->wall_ns) / 1e9;
	double ours = (double)(b->cpu_ns - a->cpu_ns) / 1e9;
	double others, steal;

	load_note[0] = '\0';
	if (wall < 0.5 || a->busy_s == 0 || b->busy_s == 0)
		return;	/* /proc/stat ticks are too coarse below that */
	others = (b->busy_s - a->busy_s - ours) / wall;
	steal = (b->steal_s - a->steal_s) / wall;
	snprintf(load_note, sizeof(load_note),
		 "other processes used %.2f CPUs meanwhile, hypervisor steal "
		 "%.2f", others < 0 ? 0 : others, steal);
}

/* The sizes of a warm-up run and of the syscall pass. */
static struct bench_params warm_params(void)
{
	struct bench_params wp = opt.params;

	/* Fixed sizes, so a warm-up costs the same at any -n. */
	if (wp.events > WARM_EVENTS)
		wp.events = WARM_EVENTS;
	if (wp.rounds > WARM_ROUNDS)
		wp.rounds = WARM_ROUNDS;
	if (wp.sample_ms > WARM_SAMPLE_MS)
		wp.sample_ms = WARM_SAMPLE_MS;
	if (wp.timers > WARM_TIMERS)
		wp.timers = WARM_TIMERS;
	if (wp.read_ms > WARM_READ_MS)
		wp.read_ms = WARM_READ_MS;
	if (wp.files > WARM_FILES)
		wp.files = WARM_FILES;
	wp.run = 0;
	return wp;
}

static struct bench_params sys_params(void)
{
	struct bench_params sp = opt.params;

	sp.count_syscalls = 1;
	if (sp.events > SYS_EVENTS)
		sp.events = SYS_EVENTS;
	if (sp.rounds > SYS_ROUNDS)
		sp.rounds = SYS_ROUNDS;
	if (sp.sample_ms > SYS_SAMPLE_MS)
		sp.sample_ms = SYS_SAMPLE_MS;
	if (sp.timers > SYS_TIMERS)
		sp.timers = SYS_TIMERS;
	if (sp.read_ms > SYS_READ_MS)
		sp.read_ms = SYS_READ_MS;
	if (sp.files > SYS_FILES)
		sp.files = SYS_FILES;
	sp.run = opt.runs + 1;
	return sp;
}

/* What the workload's prepare() said for the table's header. */
static char prep_note[400];

static void run_workload(const struct bench_workload *wl, struct result *res,
			 size_t nres)
{
	struct machine_load l0 = { 0 }, l1 = { 0 };

	prep_note[0] = '\0';
	memset(&ext, 0, sizeof(ext));
	for (size_t i = 0; i < nres; i++) {
		res[i].n = 0;
		res[i].sys = -1;
		if (res[i].status == ST_OK && !model_ok(wl, res[i].e->c)) {
			res[i].status = ST_NA;
			snprintf(res[i].note, sizeof(res[i].note), "n/a (%s)",
				 wl->na_why ? wl->na_why : "other model");
		}
		free(res[i].values);
		free(res[i].cpus);
		res[i].values = calloc(opt.runs, sizeof(double));
		res[i].cpus = calloc(opt.runs, sizeof(double));
		for (int k = 0; k < BENCH_NEXTRA; k++) {
			free(res[i].extras[k]);
			res[i].extras[k] = calloc(opt.runs, sizeof(double));
			if (res[i].extras[k] == NULL)
				res[i].values = NULL;
		}
		if (res[i].values == NULL || res[i].cpus == NULL) {
			fprintf(stderr, "evq-bench: out of memory\n");
			exit(1);
		}
	}
	if (wl->prepare != NULL) {
		char err[400] = "";
		int ret;

		progress(wl->name, 0, 0, "(preparing its files)");
		ret = wl->prepare(wl, &opt.params, prep_note,
				  sizeof(prep_note), err, sizeof(err));
		if (ret < 0) {
			for (size_t i = 0; i < nres; i++) {
				if (res[i].status != ST_OK)
					continue;
				res[i].status = ret == BENCH_CANNOT ? ST_CANNOT
								    : ST_FAILED;
				snprintf(res[i].note, sizeof(res[i].note),
					 "%s%s", ret == BENCH_CANNOT ?
					 "cannot run: " : "FAILED setup: ",
					 err);
			}
			ext.status = BENCH_CANNOT;
			snprintf(ext.note, sizeof(ext.note), "not run");
		}
	}
	read_load(&l0);
	if (opt.warmup) {
		struct bench_params wp = warm_params();

		for (size_t i = 0; i < nres; i++) {
			if (res[i].status != ST_OK)
				continue;
			progress(wl->name, 0, opt.runs, res[i].e->name);
			run_one(wl, &res[i], &wp, 0, 0);
		}
	}
	for (unsigned run = 1; run <= opt.runs; run++) {
		struct bench_params rp = opt.params;

		rp.run = run;
		for (size_t i = 0; i < nres; i++) {
			if (res[i].status != ST_OK)
				continue;
			progress(wl->name, run, opt.runs, res[i].e->name);
			run_one(wl, &res[i], &rp, 1, run);
		}
		if (wl->external != NULL) {
			progress(wl->name, run, opt.runs, "(external)");
			run_external(wl, &rp);
		}
	}
	if (read_load(&l1) == 0)
		note_load(&l0, &l1);
	else
		load_note[0] = '\0';
	if (opt.syscalls) {
		/* The syscall pass: after the timed runs, so its counter
		 * never slows one of them. */
		struct bench_params sp = sys_params();

		for (size_t i = 0; i < nres; i++) {
			if (res[i].status != ST_OK)
				continue;
			progress(wl->name, opt.runs + 1, opt.runs,
				 res[i].e->name);
			run_one(wl, &res[i], &sp, 0, 0);
		}
	}
	progress_clear();
	for (size_t i = 0; i < nres; i++) {
		if (res[i].status != ST_OK)
			continue;
		/* bench_stats sorts: keep the run order for the CSV */
		double *v = malloc(opt.runs * sizeof(double));
		double *c = malloc(opt.runs * sizeof(double));

		memcpy(v, res[i].values, res[i].n * sizeof(double));
		memcpy(c, res[i].cpus, res[i].n * sizeof(double));
		res[i].st = bench_stats(v, res[i].n);
		res[i].cpu = bench_stats(c, res[i].n);
		for (int k = 0; k < BENCH_NEXTRA; k++) {
			memcpy(v, res[i].extras[k], res[i].n * sizeof(double));
			res[i].extra[k] = bench_stats(v, res[i].n);
		}
		free(v);
		free(c);
	}
	if (ext.n > 0) {
		double v[sizeof(ext.values) / sizeof(ext.values[0])];

		memcpy(v, ext.values, ext.n * sizeof(double));
		ext.st = bench_stats(v, ext.n);
		memcpy(v, ext.cpus, ext.n * sizeof(double));
		ext.cpu = bench_stats(v, ext.n);
	}
}

/* ------------------------------------------------------------------------
 * Reporting
 * ------------------------------------------------------------------------ */

static char when[64], machine[512];

static void describe_machine(void)
{
	time_t t = time(NULL);
	struct utsname u;
	char model[160] = "unknown CPU", line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&t));
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
			snprintf(model, sizeof(model), "%s", colon + 2);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	}
	if (f != NULL)
		fclose(f);
	uname(&u);
	snprintf(machine, sizeof(machine), "Linux %s %s, %s, %ld CPUs",
		 u.release, u.machine, model, sysconf(_SC_NPROCESSORS_ONLN));
}

static const char *ref_name(const struct bench_workload *wl)
{
	return wl->reference ? wl->reference : REFERENCE;
}

static const struct result *reference(const struct bench_workload *wl,
				      const struct result *res, size_t nres)
{
	for (size_t i = 0; i < nres; i++)
		if (strcmp(res[i].e->name, ref_name(wl)) == 0 &&
		    res[i].status == ST_OK && res[i].n > 0)
			return &res[i];
	return NULL;
}

/* The figure a table is ranked by: the CPU for workloads whose wall-clock
 * figure is bounded by something else (echo: the client), else value. */
static const struct bench_stats *primary(const struct bench_workload *wl,
					 const struct result *r)
{
	return wl->primary_cpu ? &r->cpu : &r->st;
}

static int primary_higher(const struct bench_workload *wl)
{
	return wl->primary_cpu ? 0 : wl->higher_is_better;
}

static const char *primary_unit(const struct bench_workload *wl)
{
	return wl->primary_cpu ? wl->cpu_unit : wl->unit;
}

/* Better than the reference on the primary figure: higher is better,
 * 1.00 = the reference (raw epoll, mostly). */
static double speed_vs(const struct bench_workload *wl,
		       const struct result *r, const struct result *ref)
{
	double m = primary(wl, r)->median, rm;

	if (ref == NULL || m <= 0)
		return 0;
	rm = primary(wl, ref)->median;
	return primary_higher(wl) ? m / rm : rm / m;
}

static void sys_pass_size(const struct bench_workload *wl, char *buf,
			  size_t len)
{
	struct bench_params sp = sys_params();

	wl->describe(wl, &sp, buf, len);
}

/* A figure in a column: integers for large values, else 1-2 decimals. */
static void fmt_num(char *buf, size_t len, double v)
{
	if (v >= 10000 || v <= -10000)
		snprintf(buf, len, "%.0f", v);
	else if (v >= 100 || v <= -100)
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%.2f", v);
}

static void print_table(const struct bench_workload *wl,
			const struct result *res, size_t nres)
{
	const struct result *ref = reference(wl, res, nres);
	int pc = wl->primary_cpu;
	int cw = (int)strlen(wl->cpu_unit), sw = (int)strlen(wl->sys_unit);
	int vw = (int)strlen(wl->unit);
	int xw[BENCH_NEXTRA];
	char size[240], a[32], b[32], c[32];
	int any_sys = 0;

	if (cw < 9)
		cw = 9;
	if (sw < 7)
		sw = 7;
	if (vw < 10)
		vw = 10;
	wl->describe(wl, &opt.params, size, sizeof(size));
	printf("\n== %s: %s ==\n", wl->name, wl->title);
	printf("%s; %u run%s per contender, interleaved; %s\n", size, opt.runs,
	       opt.runs == 1 ? "" : "s", when);
	if (prep_note[0])
		printf("%s\n", prep_note);
	if (pc)
		printf("Primary figures: %s and %s (lower is better). %s is "
		       "bounded by the client on a small machine and does not "
		       "separate the servers; it is shown last.\n",
		       wl->cpu_unit, wl->sys_unit, wl->unit);
	else
		printf("Primary figure: %s (%s is better).\n", wl->unit,
		       wl->higher_is_better ? "higher" : "lower");
	if (pc)
		printf("%-13s %*s %9s %9s %6s %*s %*s %*s %*s %6s",
		       "contender", cw, wl->cpu_unit, "min", "max", "vs raw",
		       sw, wl->sys_unit, vw, wl->unit, vw, "min", vw, "max",
		       "spread");
	else
		printf("%-13s %*s %*s %*s %6s %6s %*s %*s", "contender", vw,
		       wl->unit, vw, "min", vw, "max", "spread", "vs raw", cw,
		       wl->cpu_unit, sw, wl->sys_unit);
	for (int k = 0; k < BENCH_NEXTRA; k++) {
		xw[k] = wl->extra_unit[k] ? (int)strlen(wl->extra_unit[k]) : 0;
		if (xw[k] > 0 && xw[k] < 8)
			xw[k] = 8;
		if (xw[k] > 0)
			printf(" %*s", xw[k], wl->extra_unit[k]);
	}
	printf("\n");
	for (size_t i = 0; i < nres; i++) {
		const struct result *r = &res[i];
		double sp = speed_vs(wl, r, ref);
		char sps[16], sys[32];

		if (r->status != ST_OK) {
			printf("%-13s %s\n", r->e->name, r->note);
			continue;
		}
		fmt_num(a, sizeof(a), r->st.median);
		fmt_num(b, sizeof(b), r->st.min);
		fmt_num(c, sizeof(c), r->st.max);
		if (sp > 0)
			snprintf(sps, sizeof(sps), "%.2f", sp);
		else
			snprintf(sps, sizeof(sps), "-");
		if (r->sys >= 0) {
			snprintf(sys, sizeof(sys), "%.2f", r->sys);
			any_sys = 1;
		} else {
			snprintf(sys, sizeof(sys), "-");
		}
		if (pc)
			printf("%-13s %*.2f %9.2f %9.2f %6s %*s %*s %*s %*s "
			       "%5.1f%%", r->e->name, cw, r->cpu.median,
			       r->cpu.min, r->cpu.max, sps, sw, sys, vw, a,
			       vw, b, vw, c, (r->st.max - r->st.min) /
			       r->st.median * 100);
		else
			printf("%-13s %*s %*s %*s %5.1f%% %6s %*.2f %*s",
			       r->e->name, vw, a, vw, b, vw, c,
			       (r->st.max - r->st.min) / r->st.median * 100,
			       sps, cw, r->cpu.median, sw, sys);
		for (int k = 0; k < BENCH_NEXTRA; k++) {
			if (xw[k] == 0)
				continue;
			fmt_num(a, sizeof(a), r->extra[k].median);
			printf(" %*s", xw[k], a);
		}
		printf("\n");
	}
	printf("(median of the runs%s; spread = (max - min) / median; vs raw "
	       "= %s relative to %s%s, higher is better)\n",
	       pc ? ", min and max of the runs beside it" : "",
	       pc ? "CPU per request" : "the primary figure", ref_name(wl),
	       ref ? "" : " (not run)");
	if (wl->legend)
		printf("(%s)\n", wl->legend);
	if (wl->external != NULL) {
		if (ext.n > 0) {
			fmt_num(a, sizeof(a), ext.st.median);
			fmt_num(b, sizeof(b), ext.st.min);
			snprintf(c, sizeof(c), "%.2f", ext.cpu.median);
			printf("[external, not a contender] %s: %s %s (min %s, "
			       "max ", ext.name, a, wl->unit, b);
			fmt_num(a, sizeof(a), ext.st.max);
			printf("%s), %s %s; median of %u runs, one after each "
			       "round of the contenders\n", a, c, wl->cpu_unit,
			       ext.n);
		}
		if (ext.status != 0)
			printf("[external] %s%s%s\n", ext.name[0] ? ext.name : "",
			       ext.name[0] ? ": " : "", ext.note);
	}
	if (any_sys) {
		char how[600];

		sysc_label(how, sizeof(how));
		sys_pass_size(wl, size, sizeof(size));
		printf("(%s counted in a separate run of %s, with %s)\n",
		       wl->sys_unit, size, how);
	} else if (opt.syscalls) {
		printf("(%s: not counted: %s)\n", wl->sys_unit,
		       bench_sysc_why()[0] ? bench_sysc_why() : "no run");
	}
	if (load_note[0])
		printf("(%s)\n", load_note);
	fflush(stdout);
}

static const char *status_name(enum status s)
{
	switch (s) {
	case ST_OK:
		return "ok";
	case ST_MISSING:
		return "missing";
	case ST_UNAVAILABLE:
		return "unavailable";
	case ST_CANNOT:
		return "cannot";
	case ST_NA:
		return "n/a";
	default:
		return "failed";
	}
}

static int save_csv(const struct bench_workload *wl, const struct result *res,
		    size_t nres)
{
	const struct result *ref = reference(wl, res, nres);
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.csv", opt.out, wl->name);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "evq-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "workload,contender,backend,status,unit,median,min,max,"
		   "speed_vs_raw,cpu_unit,cpu_median,sys_unit,sys,runs,values,"
		   "date,note,extra,cpu_min,cpu_max,cpu_values\n");
	for (size_t i = 0; i < nres; i++) {
		const struct result *r = &res[i];
		const char *be = r->e->c ? r->e->c->backend : "";

		fprintf(f, "%s,%s,%s,%s,%s,", wl->name, r->e->name, be,
			status_name(r->status), wl->unit);
		if (r->status == ST_OK) {
			fprintf(f, "%.3f,%.3f,%.3f,", r->st.median, r->st.min,
				r->st.max);
			if (ref)
				fprintf(f, "%.4f", speed_vs(wl, r, ref));
			fprintf(f, ",%s,%.4f,%s,", wl->cpu_unit,
				r->cpu.median, wl->sys_unit);
			if (r->sys >= 0)
				fprintf(f, "%.3f", r->sys);
			fprintf(f, ",%u,", r->n);
			for (unsigned k = 0; k < r->n; k++)
				fprintf(f, "%s%.3f", k ? ";" : "",
					r->values[k]);
			fprintf(f, ",%s,,", when);
			for (int k = 0, first = 1; k < BENCH_NEXTRA; k++) {
				if (wl->extra_unit[k] == NULL)
					continue;
				fprintf(f, "%s%s=%.3f", first ? "" : ";",
					wl->extra_unit[k], r->extra[k].median);
				first = 0;
			}
			fprintf(f, ",%.4f,%.4f,", r->cpu.min, r->cpu.max);
			for (unsigned k = 0; k < r->n; k++)
				fprintf(f, "%s%.4f", k ? ";" : "", r->cpus[k]);
			fprintf(f, "\n");
		} else {
			/* notes hold no commas or quotes worth escaping
			 * beyond doubling quotes */
			fprintf(f, ",,,,%s,,%s,,0,,%s,\"", wl->cpu_unit,
				wl->sys_unit, when);
			for (const char *p = r->note; *p; p++)
				fprintf(f, *p == '"' ? "\"\"" : "%c", *p);
			fprintf(f, "\",\n");
		}
	}
	if (ext.n > 0) {
		fprintf(f, "%s,external,,ok,%s,%.3f,%.3f,%.3f,", wl->name,
			wl->unit, ext.st.median, ext.st.min, ext.st.max);
		if (ref)
			fprintf(f, "%.4f", wl->higher_is_better ?
				ext.st.median / ref->st.median :
				ref->st.median / ext.st.median);
		fprintf(f, ",%s,%.4f,%s,,%u,", wl->cpu_unit, ext.cpu.median,
			wl->sys_unit, ext.n);
		for (unsigned k = 0; k < ext.n; k++)
			fprintf(f, "%s%.3f", k ? ";" : "", ext.values[k]);
		fprintf(f, ",%s,\"", when);
		for (const char *p = ext.name; *p; p++)
			fprintf(f, *p == '"' ? "\"\"" : "%c", *p);
		fprintf(f, "\",\n");
	}
	fclose(f);
	return 0;
}

/* ------------------------------------------------------------------------
 * Plots (gnuplot): one PNG per table and a summary figure
 * ------------------------------------------------------------------------ */

enum kind { K_EVQ, K_PEER, K_RAW };

static enum kind kind_of(const char *name)
{
	if (strncmp(name, "evq-", 4) == 0)
		return K_EVQ;
	if (strncmp(name, "raw-", 4) == 0)
		return K_RAW;
	return K_PEER;
}

static const unsigned kind_rgb[] = { 0x1f6fb4, 0xf08c1e, 0x9a9a9a };

/* Text inside a gnuplot double-quoted string. */
static void gp_str(FILE *g, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', g);
		fputc(*s, g);
	}
}

/* Text wrapped at about width characters, lines joined by gnuplot's
 * "\n", inside a double-quoted string. */
static void gp_wrapped(FILE *g, const char *s, size_t width)
{
	size_t col = 0;

	while (*s) {
		size_t w = strcspn(s, " ");

		if (col > 0 && col + 1 + w > width) {
			fputs("\\n", g);
			col = 0;
		} else if (col > 0) {
			fputc(' ', g);
			col++;
		}
		for (size_t i = 0; i < w; i++) {
			if (s[i] == '"' || s[i] == '\\')
				fputc('\\', g);
			fputc(s[i], g);
		}
		col += w;
		s += w;
		while (*s == ' ')
			s++;
	}
}

static const char *row_label(const char *name, const struct bench_workload *wl,
			     char *buf, size_t len)
{
	if (kind_of(name) == K_RAW)
		snprintf(buf, len, "%s (raw %s)", name,
			 strcmp(name, ref_name(wl)) == 0 ? "reference"
							 : "ceiling");
	else
		snprintf(buf, len, "%s", name);
	return buf;
}

static int gp_terminal(FILE *g, const char *path, int w, int h)
{
	fprintf(g,
		"if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
		"  set terminal pngcairo size %d,%d font 'DejaVu Sans,10'\n"
		"} else {\n"
		"  set terminal png size %d,%d\n"
		"}\n"
		"set output '%s'\n", w, h, w, h, path);
	return 0;
}

static const struct bench_workload *sort_wl;

static int cmp_rows(const void *pa, const void *pb)
{
	const struct result *a = *(const struct result *const *)pa;
	const struct result *b = *(const struct result *const *)pb;
	int oka = a->status == ST_OK && a->n > 0;
	int okb = b->status == ST_OK && b->n > 0;
	double x, y;

	if (oka != okb)
		return okb - oka;	/* runnable first */
	if (!oka)
		return 0;
	x = primary(sort_wl, a)->median;
	y = primary(sort_wl, b)->median;
	if (primary_higher(sort_wl))
		return (x < y) - (x > y);
	return (x > y) - (x < y);
}

/* Horizontal bars of the primary figure, best at the top, whiskers from
 * the minimum to the maximum run, evq and the peers and the raw loops in
 * three colours; a contender that could not run gets its row and its
 * reason. */
static void save_png(const struct bench_workload *wl, const struct result *res,
		     size_t nres)
{
	const struct result *rows[NCONTENDERS];
	char path[4096], size[240], lab[64], num[32];
	double xmax = 0;
	int width = 1000, height;
	size_t n = 0;
	FILE *g;

	for (size_t i = 0; i < nres; i++)
		if (res[i].status != ST_NA)
			rows[n++] = &res[i];
	if (n == 0)
		return;
	sort_wl = wl;
	/* qsort is not stable: keep the table's order among equals */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && cmp_rows(&rows[j - 1], &rows[j]) > 0;
		     j--) {
			const struct result *t = rows[j];

			rows[j] = rows[j - 1];
			rows[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++)
		if (rows[i]->status == ST_OK && rows[i]->n > 0 &&
		    primary(wl, rows[i])->max > xmax)
			xmax = primary(wl, rows[i])->max;
	if (xmax <= 0)
		xmax = 1;
	height = 230 + 30 * (int)n;
	snprintf(path, sizeof(path), "%s/%s.png", opt.out, wl->name);
	g = popen("gnuplot", "w");
	if (g == NULL) {
		fprintf(stderr, "evq-bench: gnuplot: %s\n", strerror(errno));
		return;
	}
	wl->describe(wl, &opt.params, size, sizeof(size));
	gp_terminal(g, path, width, height);
	fprintf(g, "set title \"");
	snprintf(path, sizeof(path), "%s: %s", wl->name, wl->title);
	gp_wrapped(g, path, 95);
	fputs("\\n", g);
	snprintf(path, sizeof(path), "%s. Median of %u runs, whiskers from "
		 "the min to the max run; %s", size, opt.runs, when);
	gp_wrapped(g, path, 100);
	fprintf(g, "\" noenhanced font ',10'\n");
	fprintf(g, "set xlabel \"");
	if (wl->primary_cpu)
		gp_str(g, wl->cpu_unit);
	else
		gp_str(g, wl->unit);
	fprintf(g, " (%s is better)%s\" noenhanced\n",
		primary_higher(wl) ? "higher" : "lower",
		wl->primary_cpu ? "; server CPU per request, the client not "
				  "counted" : "");
	fprintf(g, "set xrange [0:%g]\n", xmax * 1.32);
	if (xmax >= 10000)	/* 200k, 1M: not 1x10^6 */
		fprintf(g, "set format x '%%.0s%%c'\n");
	fprintf(g, "set yrange [-0.7:%g]\n", (double)n - 0.3);
	fprintf(g, "set grid xtics lc rgb '#dddddd'\n"
		   "set lmargin 26\nset rmargin 3\n"
		   "set style fill solid 0.85 noborder\n"
		   "set key outside top center horizontal samplen 2\n"
		   "set ytics nomirror noenhanced (");
	for (size_t i = 0; i < n; i++)
		fprintf(g, "%s\"%s\" %zu", i ? ", " : "",
			row_label(rows[i]->e->name, wl, lab, sizeof(lab)),
			n - 1 - i);
	fprintf(g, ")\nset ytics scale 0\n");
	/* reasons for the rows without a bar, values beside the bars */
	for (size_t i = 0; i < n; i++) {
		const struct result *r = rows[i];
		char note[128];

		if (r->status == ST_OK && r->n > 0) {
			const struct bench_stats *st = primary(wl, r);

			fmt_num(num, sizeof(num), st->median);
			fprintf(g, "set label \"%s", num);
			if (wl->primary_cpu && r->sys >= 0)
				fprintf(g, "   %.2f %s", r->sys, wl->sys_unit);
			if (wl->plot_extra > 0) {
				int x = wl->plot_extra - 1;

				fmt_num(num, sizeof(num), r->extra[x].median);
				fprintf(g, "   (%s %s)", wl->extra_unit[x], num);
			}
			fprintf(g, "\" at %g,%zu left offset 0.6,0 noenhanced "
				   "font ',9'\n", st->max, n - 1 - i);
			continue;
		}
		if (strlen(r->note) < sizeof(note)) {
			strcpy(note, r->note);
		} else {
			memcpy(note, r->note, sizeof(note) - 4);
			strcpy(note + sizeof(note) - 4, "...");
		}
		fprintf(g, "set label \"");
		gp_str(g, note);
		fprintf(g, "\" at %g,%zu left offset 0.5,0 tc rgb '#b00000' "
			   "noenhanced font ',9'\n", 0.0, n - 1 - i);
	}
	fprintf(g, "$d << EOD\n");
	for (size_t i = 0; i < n; i++) {
		const struct result *r = rows[i];
		const struct bench_stats *st;

		if (r->status != ST_OK || r->n == 0)
			continue;
		st = primary(wl, r);
		fprintf(g, "%zu %g %g %g %u\n", n - 1 - i, st->median, st->min,
			st->max, kind_rgb[kind_of(r->e->name)]);
	}
	fprintf(g, "EOD\n"
		   "if (|$d| == 0) { plot 1/0 notitle; exit }\n"
		   "plot $d using (0):1:(0):2:($1-0.36):($1+0.36):5 "
		   "with boxxyerror lc rgb variable notitle, \\\n"
		   "  $d using 2:1:3:4 with xerrorbars pt 0 lw 1.2 "
		   "lc rgb 'black' notitle, \\\n"
		   "  keyentry with boxes fc rgb '#%06x' title 'evq', \\\n"
		   "  keyentry with boxes fc rgb '#%06x' title 'peer library', "
		   "\\\n"
		   "  keyentry with boxes fc rgb '#%06x' "
		   "title 'raw loop (hand-written)'\n",
		   kind_rgb[K_EVQ], kind_rgb[K_PEER], kind_rgb[K_RAW]);
	if (pclose(g) != 0)
		fprintf(stderr, "evq-bench: gnuplot failed for %s/%s.png\n",
			opt.out, wl->name);
}

/* evq against the best peer library, per workload, on the primary
 * figure: filled as the tables come, printed and plotted at the end. */
static struct summary_row {
	char workload[32], unit[24];
	char evq[24], peer[24];
	double ratio;		/* > 1: evq is better */
	double evq_med, peer_med;
	int higher;
} summary[NWORKLOADS];
static size_t nsummary;

static void summary_add(const struct bench_workload *wl,
			const struct result *res, size_t nres)
{
	const struct result *be = NULL, *bp = NULL;
	struct summary_row *s;
	int hi = primary_higher(wl);

	for (size_t i = 0; i < nres; i++) {
		const struct result *r = &res[i];
		const struct result **best;
		double m;

		if (r->status != ST_OK || r->n == 0)
			continue;
		switch (kind_of(r->e->name)) {
		case K_EVQ:
			best = &be;
			break;
		case K_PEER:
			best = &bp;
			break;
		default:
			continue;
		}
		m = primary(wl, r)->median;
		if (*best == NULL || (hi ? m > primary(wl, *best)->median
					 : m < primary(wl, *best)->median))
			*best = r;
	}
	if (nsummary == NWORKLOADS)
		return;
	s = &summary[nsummary++];
	memset(s, 0, sizeof(*s));
	snprintf(s->workload, sizeof(s->workload), "%s", wl->name);
	snprintf(s->unit, sizeof(s->unit), "%s", primary_unit(wl));
	s->higher = hi;
	if (be != NULL) {
		snprintf(s->evq, sizeof(s->evq), "%s", be->e->name);
		s->evq_med = primary(wl, be)->median;
	}
	if (bp != NULL) {
		snprintf(s->peer, sizeof(s->peer), "%s", bp->e->name);
		s->peer_med = primary(wl, bp)->median;
	}
	if (be != NULL && bp != NULL && s->evq_med > 0 && s->peer_med > 0)
		s->ratio = hi ? s->evq_med / s->peer_med
			      : s->peer_med / s->evq_med;
}

static void summary_print(void)
{
	char a[32], b[32];

	if (nsummary == 0)
		return;
	printf("\n== summary: evq vs the best peer library, per workload ==\n"
	       "(the best evq-* row against the best of libev, libuv, "
	       "libevent, tevent, on each table's primary figure; ratio > 1: "
	       "evq is better)\n");
	printf("%-20s %-12s %-14s %10s %-10s %10s %6s\n", "workload", "figure",
	       "best evq", "", "best peer", "", "ratio");
	for (size_t i = 0; i < nsummary; i++) {
		const struct summary_row *s = &summary[i];

		fmt_num(a, sizeof(a), s->evq_med);
		fmt_num(b, sizeof(b), s->peer_med);
		printf("%-20s %-12s %-14s %10s %-10s %10s ", s->workload,
		       s->unit, s->evq[0] ? s->evq : "(none ran)",
		       s->evq[0] ? a : "", s->peer[0] ? s->peer : "(none ran)",
		       s->peer[0] ? b : "");
		if (s->ratio > 0)
			printf("%6.2f\n", s->ratio);
		else
			printf("%6s\n", "-");
	}
}

static void summary_save(void)
{
	char path[4096], lab[160];
	double xmax = 2, xmin = 0.5;
	int height = 190 + 34 * (int)nsummary;
	FILE *f, *g;

	if (nsummary == 0)
		return;
	snprintf(path, sizeof(path), "%s/summary.csv", opt.out);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "evq-bench: %s: %s\n", path, strerror(errno));
		return;
	}
	fprintf(f, "workload,figure,higher_is_better,best_evq,evq_median,"
		   "best_peer,peer_median,ratio,date\n");
	for (size_t i = 0; i < nsummary; i++) {
		const struct summary_row *s = &summary[i];

		fprintf(f, "%s,%s,%d,%s,%.4f,%s,%.4f,%.4f,%s\n", s->workload,
			s->unit, s->higher, s->evq, s->evq_med, s->peer,
			s->peer_med, s->ratio, when);
		if (s->ratio > xmax)
			xmax = s->ratio;
		if (s->ratio > 0 && s->ratio < xmin)
			xmin = s->ratio;
	}
	fclose(f);
	if (!have_program("gnuplot"))
		return;
	snprintf(path, sizeof(path), "%s/summary.png", opt.out);
	g = popen("gnuplot", "w");
	if (g == NULL)
		return;
	gp_terminal(g, path, 1000, height);
	fprintf(g, "set title \"evq vs the best peer library, per workload "
		   "(%s)\\nthe best evq row's median over the best of libev, "
		   "libuv, libevent and tevent,\\non each table's primary "
		   "figure; > 1: evq is better (for a lower-is-better figure, "
		   "peer / evq)\" noenhanced\n", when);
	/* A log scale: 0.8x and 20x both read, bars grow from parity. */
	fprintf(g, "set xlabel 'ratio, log scale (1 = parity; right of it: "
		   "evq better)'\n"
		   "set logscale x 2\nset format x '%%gx'\n"
		   "set xrange [%g:%g]\nset yrange [-0.7:%g]\n"
		   "set grid xtics lc rgb '#dddddd'\n"
		   "set lmargin 44\nset rmargin 3\n"
		   "set style fill solid 0.85 noborder\n"
		   "set arrow from 1,graph 0 to 1,graph 1 nohead lw 1.5 "
		   "lc rgb 'black' dt 2\n"
		   "set ytics nomirror noenhanced scale 0 (",
		   xmin / 1.5, xmax * 16, (double)nsummary - 0.3);
	for (size_t i = 0; i < nsummary; i++) {
		const struct summary_row *s = &summary[i];

		snprintf(lab, sizeof(lab), "%.31s (%.23s)", s->workload,
			 s->unit);
		fprintf(g, "%s\"", i ? ", " : "");
		gp_str(g, lab);
		fprintf(g, "\" %zu", nsummary - 1 - i);
	}
	fprintf(g, ")\n");
	for (size_t i = 0; i < nsummary; i++) {
		const struct summary_row *s = &summary[i];

		if (s->ratio > 0)
			snprintf(lab, sizeof(lab), "%.2fx  %s vs %s", s->ratio,
				 s->evq, s->peer);
		else
			snprintf(lab, sizeof(lab), "no ratio: %s",
				 !s->evq[0] ? "no evq row ran"
					    : "no peer library runs this "
					      "workload");
		fprintf(g, "set label \"");
		gp_str(g, lab);
		fprintf(g, "\" at %g,%zu left offset 0.6,0 noenhanced "
			   "font ',9'%s\n", s->ratio > 1 ? s->ratio : 1.0,
			nsummary - 1 - i,
			s->ratio > 0 ? "" : " tc rgb '#b00000'");
	}
	fprintf(g, "$d << EOD\n");
	for (size_t i = 0; i < nsummary; i++)
		if (summary[i].ratio > 0)
			fprintf(g, "%zu %g %u\n", nsummary - 1 - i,
				summary[i].ratio,
				summary[i].ratio >= 1 ? 0x2a9d4au : 0xd1495bu);
	fprintf(g, "EOD\n"
		   "if (|$d| > 0) {\n"
		   "  plot $d using ($2 < 1 ? $2 : 1):1:($2 < 1 ? $2 : 1):"
		   "($2 < 1 ? 1 : $2):($1-0.34):($1+0.34):3 "
		   "with boxxyerror lc rgb variable notitle\n"
		   "} else {\n  plot 1/0 notitle\n}\n");
	if (pclose(g) != 0)
		fprintf(stderr, "evq-bench: gnuplot failed for %s\n", path);
}

static void save_results(const struct bench_workload *wl,
			 const struct result *res, size_t nres)
{
	if (bench_mkdirs(opt.out) < 0) {
		fprintf(stderr, "evq-bench: %s: %s\n", opt.out,
			strerror(errno));
		return;
	}
	if (save_csv(wl, res, nres) < 0)
		return;
	if (have_program("gnuplot"))
		save_png(wl, res, nres);
}

int bench_in_child;

int bench_run_in_child(const struct bench_workload *wl,
		       const struct bench_contender *c,
		       const struct bench_params *p, struct bench_sample *out,
		       char *err, size_t errlen)
{
	char arg[160], run[16], line[1024];
	char *argv[12];
	int k = 0, pfd[2], st, ret = -1;
	posix_spawn_file_actions_t fa;
	size_t got = 0;
	uint64_t t0 = bench_now_ns();
	pid_t pid;

	snprintf(arg, sizeof(arg), "%s:%s", wl->name, c->name);
	snprintf(run, sizeof(run), "%u", p->run);
	argv[k++] = "evq-bench";
	argv[k++] = "--child-run";
	argv[k++] = arg;
	argv[k++] = "--child-seq";
	argv[k++] = run;
	if (p->test)
		argv[k++] = "--child-test";
	if (p->count_syscalls)
		argv[k++] = "--child-sys";
	argv[k] = NULL;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	if (posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ) !=
	    0) {
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[0]);
		close(pfd[1]);
		snprintf(err, errlen, "cannot start a child evq-bench");
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	/* One line back; bounded by the run's own --timeout. */
	while (got < sizeof(line) - 1) {
		struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
		int n = poll(&pf, 1, 1000);
		ssize_t r;

		if (bench_now_ns() - t0 > (uint64_t)opt.timeout * 1000000000ull) {
			kill(pid, SIGKILL);
			break;
		}
		if (n <= 0)
			continue;
		r = read(pfd[0], line + got, sizeof(line) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	line[got] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (sscanf(line, "R %d %lf %lf %lf %lf %lf %lf", &ret, &out->value,
		   &out->cpu, &out->sys, &out->extra[0], &out->extra[1],
		   &out->extra[2]) == 7 && ret == 0)
		return 0;
	if (strncmp(line, "E ", 2) == 0) {
		int code = 0, off = 0;

		sscanf(line + 2, "%d %n", &code, &off);
		line[strcspn(line, "\n")] = '\0';
		snprintf(err, errlen, "%s", line + 2 + off);
		return code == BENCH_CANNOT ? BENCH_CANNOT : -1;
	}
	snprintf(err, errlen, "the child evq-bench ended without a result "
		 "(status 0x%x)", st);
	return -1;
}

/* --child-run: the child's side of bench_run_in_child. */
static int child_run(const char *spec, unsigned run, int test, int sys)
{
	struct bench_sample s = { 0, 0, -1, { 0 } };
	struct bench_params p = opt.params;
	char err[400] = "";
	const struct bench_workload *wl = NULL;
	const struct bench_contender *c = NULL;
	size_t wlen = strcspn(spec, ":");
	int ret;

	for (size_t i = 0; i < NWORKLOADS; i++)
		if (strlen(workloads[i]->name) == wlen &&
		    strncmp(workloads[i]->name, spec, wlen) == 0)
			wl = workloads[i];
	for (size_t i = 0; spec[wlen] == ':' && i < NCONTENDERS; i++)
		if (contenders[i].c != NULL &&
		    strcmp(contenders[i].name, spec + wlen + 1) == 0)
			c = contenders[i].c;
	if (wl == NULL || c == NULL) {
		printf("E -1 bad --child-run %s\n", spec);
		return 2;
	}
	bench_in_child = 1;
	p.run = run;
	p.test = test;
	p.count_syscalls = sys;
	if (sys)
		sysc_init();
	signal(SIGPIPE, SIG_IGN);
	ret = wl->run(wl, c, &p, &s, err, sizeof(err));
	if (ret == 0)
		printf("R 0 %.6f %.6f %.6f %.6f %.6f %.6f\n", s.value, s.cpu,
		       s.sys, s.extra[0], s.extra[1], s.extra[2]);
	else
		printf("E %d %s\n", ret, err);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct result res[NCONTENDERS];
	size_t nres;
	int failed = 0, list = parse_args(argc, argv);

	if (opt.child != NULL)
		return child_run(opt.child, opt.child_seq, opt.child_test,
				 opt.child_sys);
	setvbuf(stdout, NULL, _IOLBF, 0);
	probe_all(res, &nres);
	if (list) {
		printf("workloads:\n");
		for (size_t i = 0; i < NWORKLOADS; i++)
			printf("  %-19s %s%s\n", workloads[i]->name,
			       workloads[i]->title,
			       workloads[i]->optional ? " (only with -w or --full)" : "");
		printf("contenders:\n");
		for (size_t i = 0; i < nres; i++) {
			const struct bench_contender *c = res[i].e->c;

			if (res[i].status != ST_OK) {
				printf("  %-13s %s\n", res[i].e->name,
				       res[i].note);
				continue;
			}
			/* ok, and the models it offers (run.sh reads them) */
			printf("  %-13s ok %s%s%s%s\n", res[i].e->name,
			       c->io_new ? "io," : "", c->op_new ? "ops," : "",
			       c->timer_new ? "timers," : "",
			       c->fop_new ? "files," : "");
		}
		return 0;
	}
	if (opt.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(opt.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0) {
			fprintf(stderr, "evq-bench: --cpu %d: %s\n", opt.cpu,
				strerror(errno));
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	progress_on = isatty(2);
	if (opt.syscalls)
		sysc_init();
	describe_machine();
	printf("evq-bench%s: %s; %s%s\n",
#ifdef BENCH_HAVE_EVQ
	       " (evq " BENCH_STR(EVQ_VERSION_MAJOR) "." BENCH_STR(EVQ_VERSION_MINOR)
	       "." BENCH_STR(EVQ_VERSION_PATCH) ")",
#else
	       "",
#endif
	       machine, when, opt.test ? "; test mode" : "");

	for (size_t w = 0; w < NWORKLOADS; w++) {
		const struct bench_workload *wl = workloads[w];

		if (!list_has(opt.workloads, wl->name))
			continue;
		if (wl->optional && opt.workloads == NULL && !opt.test &&
		    !opt.full)
			continue;
		/* a failure is per workload: give every contender its
		 * chance again */
		for (size_t i = 0; i < nres; i++) {
			if (res[i].status == ST_FAILED ||
			    res[i].status == ST_CANNOT ||
			    res[i].status == ST_NA) {
				res[i].status = ST_OK;
				res[i].note[0] = '\0';
			}
		}
		run_workload(wl, res, nres);
		print_table(wl, res, nres);
		for (size_t i = 0; i < nres; i++)
			failed |= res[i].status == ST_FAILED;
		summary_add(wl, res, nres);
		if (opt.save)
			save_results(wl, res, nres);
	}
	summary_print();
	if (opt.save && !opt.test)
		summary_save();
	for (size_t i = 0; i < nres; i++) {
		free(res[i].values);
		free(res[i].cpus);
		for (int k = 0; k < BENCH_NEXTRA; k++)
			free(res[i].extras[k]);
	}
	if (failed)
		fprintf(stderr, "evq-bench: a contender failed its run "
				"(see FAILED above)\n");
	return failed ? 1 : 0;
}
