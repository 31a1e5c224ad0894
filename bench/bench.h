/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the contender interface of evq-bench and the timing and
 * statistics helpers its workloads share.
 *
 * A contender (bench/contender_*.c) is one event loop seen through the same
 * few calls. A readiness contender: make a loop, watch an fd for reading,
 * stop and start the watch, run the loop, break out of it. A completion
 * contender (evq-*-ops, raw-uring-ops): make a loop, start a read or a
 * write on an fd and be called back with its result, run, break. A
 * workload (bench/workload_*.c) is written once against those calls and so
 * runs unchanged on every contender of the model(s) it supports. Adding a
 * loop library is one contender file plus one line in main.c's table;
 * adding a workload is one workload file plus one line in the workload
 * table.
 *
 * The echo workload's server is the one place where a contender may bring
 * its own code (echo_serve): a completion server is built from accept,
 * recv and send ops and buffer pools, which the two-call op interface does
 * not describe. Readiness contenders use the one generic server of
 * workload_echo.c.
 *
 * Every call returns 0 or a negative errno, like evq itself.
 */
#ifndef EVQ_BENCH_H
#define EVQ_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>

/* Called by a contender when its watcher's fd is readable. The workload
 * gets back the arg it passed to io_new and nothing else, so every
 * contender pays the same one indirect call to reach the workload. */
typedef void (*bench_cb)(void *arg);

/* Called by a completion contender when an op finished: res as read(2) or
 * write(2) would return it, or -errno (-ECANCELED for an op still in
 * flight when the loop is freed). */
typedef void (*bench_op_cb)(void *arg, int res);

/* What the echo workload asks of a server (see workload_echo.c). */
struct bench_echo_cfg {
	int listen_fd;		/* O_NONBLOCK, listening on 127.0.0.1 */
	unsigned nconn;		/* connections that will come */
	char *err;		/* why it failed */
	size_t errlen;
};

struct bench_contender {
	const char *name;	/* "raw-epoll", "evq-epoll", "libev", ... */
	const char *backend;	/* the kernel facility it is run on */
	const void *priv;	/* the contender file's own (evq: backend) */

	/* Can it run here? 0, or -errno, reported as "not available: " and
	 * strerror, or the text the probe wrote into why if it did.
	 * NULL means always. */
	int (*probe)(const struct bench_contender *c, char *why, size_t len);

	/* A fresh loop for one run. */
	int (*loop_new)(const struct bench_contender *c, void **loopp);
	/* Free a loop whose watchers have all been freed. */
	void (*loop_free)(void *loop);

	/* Make a level-triggered read watcher on fd and start it. */
	int (*io_new)(void *loop, int fd, bench_cb cb, void *arg,
		      void **iop);
	/* Stop (the kernel's interest goes: epoll_ctl DEL or the library's
	 * equivalent) and start again. Both are called on started and
	 * stopped watchers only, respectively. */
	int (*io_stop)(void *io);
	int (*io_start)(void *io);
	/* Stop if needed and free; never called from a callback. */
	void (*io_free)(void *io);

	/* once == 0: run until break_loop() is called from a callback.
	 * once == 1: run one iteration, waiting for at least one event. */
	int (*run)(void *loop, int once);
	/* From a callback: make run() return after this iteration. */
	void (*break_loop)(void *loop);

	/* The completion model; NULL for readiness contenders, whose io_*
	 * are NULL instead. An op is a reusable slot for one read or write
	 * at a time, made for a callback and its arg. op_read/op_write
	 * start one (it completes from run(), never inside the call).
	 * loop_free ends the ops still in flight: their callbacks run with
	 * -ECANCELED from inside it. op_free comes after loop_free. */
	int (*op_new)(void *loop, bench_op_cb cb, void *arg, void **opp);
	int (*op_read)(void *op, int fd, void *buf, size_t len);
	int (*op_write)(void *op, int fd, const void *buf, size_t len);
	void (*op_free)(void *op);

	/* The echo workload's server, for a contender that brings its own
	 * (NULL: workload_echo.c's generic readiness server on io_new). It
	 * runs in the server thread and makes its own loop there: accept
	 * cfg->nconn connections on cfg->listen_fd, send every byte received
	 * back on the connection it came from, and return 0 once all of
	 * them have been closed by the client (EOF or ECONNRESET); -1 with
	 * cfg->err set on failure. The listening fd is the caller's. */
	int (*echo_serve)(const struct bench_contender *c,
			  const struct bench_echo_cfg *cfg);
};

#define BENCH_CANNOT (-2)	/* bench_workload.run: cannot run here */

/* What a workload asks of a run. */
struct bench_params {
	uint64_t events;	/* pingpong: callbacks per run */
	unsigned rounds;	/* pipes: timed rounds per run */
	uint64_t requests;	/* echo: requests per run (all connections) */
	int count_syscalls;	/* the syscall pass: fill bench_sample.sys */
};

/* What one run measured. */
struct bench_sample {
	double value;		/* in the workload's unit */
	double cpu;		/* in the workload's cpu_unit */
	double sys;		/* syscalls per unit of work (count_syscalls) */
};

/* Which contenders a workload can run: BENCH_MODEL_IO needs io_new,
 * BENCH_MODEL_OPS op_new; the others are shown as n/a. */
#define BENCH_MODEL_IO 0x1u
#define BENCH_MODEL_OPS 0x2u

struct bench_workload {
	const char *name;	/* for --workload and results/<name>.csv */
	const char *title;	/* one line: what it does */
	const char *unit;	/* of bench_sample.value */
	const char *cpu_unit;	/* of bench_sample.cpu */
	const char *sys_unit;	/* of bench_sample.sys: "sys/ev", ... */
	const char *na_why;	/* shown for a contender of another model */
	const char *legend;	/* printed under the table, or NULL */
	int higher_is_better;	/* events/s: 1; us/round: 0 */
	unsigned param;		/* workload's own size (pipes: number) */
	unsigned models;	/* BENCH_MODEL_* it can run */
	int optional;		/* not in the default set: only with -w
				 * (and in --test, which runs everything) */

	/* One run on a fresh loop. Returns 0; or -1 on failure (a setup
	 * error, or a count that is not exactly what was asked for); or
	 * BENCH_CANNOT when this machine cannot run it (too few fds allowed),
	 * which is reported but is no failure. err says why. */
	int (*run)(const struct bench_workload *wl,
		   const struct bench_contender *c,
		   const struct bench_params *p, struct bench_sample *out,
		   char *err, size_t errlen);
	/* Describe the size of a run ("1000000 events"). */
	void (*describe)(const struct bench_workload *wl,
			 const struct bench_params *p, char *buf, size_t len);
};

extern const struct bench_workload bench_workload_pingpong;
extern const struct bench_workload bench_workload_pipes100;
extern const struct bench_workload bench_workload_pipes1000;
extern const struct bench_workload bench_workload_echo1;
extern const struct bench_workload bench_workload_echo64;
extern const struct bench_workload bench_workload_echo1000;

/* Wall clock for intervals, ns. */
static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the process, user + system, ns (getrusage). */
static inline uint64_t bench_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
		       1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
		       1000u;
}

/* Median, minimum and maximum of v[0..n-1]; sorts v in place. */
struct bench_stats {
	double median, min, max;
};
struct bench_stats bench_stats(double *v, size_t n);

/* Make an O_NONBLOCK|O_CLOEXEC pipe; 0 or -errno. */
int bench_pipe(int fds[2]);

/* Raise RLIMIT_NOFILE to at least want; 0 or -errno. */
int bench_raise_nofile(rlim_t want);

/* The calling thread's id. */
pid_t bench_gettid(void);

/* Count the syscalls one thread makes (tid 0: the calling one), with a
 * perf counter on the raw_syscalls:sys_enter tracepoint. Returns an fd for
 * bench_sysc_read(), or -errno (then bench_sysc_why() says why). While
 * such a counter is open, every syscall on the machine takes the kernel's
 * slow path, which is why main.c counts in a separate short pass. */
int bench_sysc_open(pid_t tid);
uint64_t bench_sysc_read(int fd);
const char *bench_sysc_why(void);

/* CPU time of the whole process except thread `skip`, ns, per thread from
 * /proc/self/task/.../schedstat (exact; threads that came and went between
 * two calls are handled by bench_cpu_others_delta). */
struct bench_task_cpu {
	unsigned n;
	pid_t tid[64];
	uint64_t ns[64];
};
void bench_cpu_others(pid_t skip, struct bench_task_cpu *out);
/* CPU used between a and b by the threads in b (a thread new in b counts
 * from 0). */
uint64_t bench_cpu_others_delta(const struct bench_task_cpu *a,
				const struct bench_task_cpu *b);

#endif /* EVQ_BENCH_H */
