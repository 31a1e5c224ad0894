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
 * Two more models have calls of their own: timers (timer_new/start/stop/
 * free: the timers workload) and file ops (fop_new/read/stat/free: the
 * fileread-* and statstorm workloads). A contender offers any of the four
 * models it can; a workload runs the contenders that offer one of its
 * models, and lists the others as n/a.
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

/* Called by a timer contender when a timer fires. */
typedef void (*bench_timer_cb)(void *arg);

/* What a file-model stat op fills in (from struct statx, or libuv's
 * uv_stat_t). */
struct bench_stat {
	uint64_t ino;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;
};

/* What the echo workload asks of a server (see workload_echo.c). */
struct bench_echo_cfg {
	int listen_fd;		/* O_NONBLOCK, listening on 127.0.0.1 */
	unsigned nconn;		/* connections that will come */
	char *err;		/* why it failed */
	size_t errlen;
};

/* What the idle-connections workload asks of a server (workload_idle.c):
 * accept nconn connections on listen_fd, keep a read armed on each, echo
 * every message back, and return 0 once all of them have ended (EOF or
 * ECONNRESET); -1 with err set on failure. The server stores, with
 * release order, ready = 1 once its loop and any shared pool exist (the
 * memory baseline is taken then: a pool is not per connection), armed =
 * connections accepted with a read armed, msgs = messages echoed, and
 * held = bytes of read buffers it holds per connection (0 for a pooled
 * server). It gives every connection memory of its own from malloc, as a
 * server would, and touches a shared pool before ready. */
struct bench_idle_cfg {
	int listen_fd;		/* O_NONBLOCK, listening on 127.0.0.1 */
	unsigned nconn;
	unsigned pool_bufs;	/* a pooled server's shared pool: buffers */
	unsigned buf_size;	/* and their size; a readiness server's
				 * per-connection buffer size */
	_Atomic unsigned ready, armed;
	_Atomic unsigned long msgs;
	_Atomic unsigned long held;
	char *err;
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

	/* The idle-connections workload's server, for a contender that
	 * brings its own (evq-*-ops: a pooled multishot recv on each
	 * connection); NULL: the generic readiness server of
	 * workload_idle.c, with a read buffer per connection. */
	int (*idle_serve)(const struct bench_contender *c,
			  struct bench_idle_cfg *cfg);

	/* Timers (NULL if the contender has none): a one-shot timer made
	 * for a callback and its arg, outside any timed part. timer_start
	 * arms it to fire after_ns from now (whatever "now" is to the
	 * library: evq reads the clock, libev and libuv take the loop's
	 * cached time), on a stopped timer only; timer_stop disarms an armed
	 * one; a timer is stopped when its callback runs. timer_free on a
	 * stopped timer, before loop_free. A contender that cannot run
	 * more than timers_max timers at once in reasonable time says so
	 * (0: no limit) and why. */
	int (*timer_new)(void *loop, bench_timer_cb cb, void *arg, void **tp);
	int (*timer_start)(void *t, uint64_t after_ns);
	int (*timer_stop)(void *t);
	void (*timer_free)(void *t);
	uint64_t timers_max;
	const char *timers_max_why;

	/* File ops (NULL if none): an op slot like op_new's, for a positioned
	 * read of a regular file (fop_read: res as pread(2)) or a stat of a
	 * path (fop_stat: statx(AT_FDCWD, path, 0, STATX_BASIC_STATS) or
	 * the library's stat call; res 0 or -errno, *st filled on success).
	 * Completions come from run(), never inside the call. Ops still in
	 * flight when loop_free is called complete (or are cancelled) before
	 * it returns; fop_free comes after loop_free. */
	int (*fop_new)(void *loop, bench_op_cb cb, void *arg, void **opp);
	int (*fop_read)(void *op, int fd, void *buf, size_t len,
			uint64_t off);
	int (*fop_stat)(void *op, const char *path, struct bench_stat *st);
	void (*fop_free)(void *op);
};

#define BENCH_CANNOT (-2)	/* bench_workload.run: cannot run here */

/* What a workload asks of a run. */
struct bench_params {
	uint64_t events;	/* pingpong: callbacks per run */
	unsigned rounds;	/* pipes: timed rounds per run */
	uint64_t sample_ms;	/* echo: ms of timed requests per run */
	uint64_t warm_ms;	/* echo: ms of untimed requests before them */
	uint64_t timers;	/* timers: timers started per run */
	uint64_t read_ms;	/* fileread-*: ms of reading per run */
	uint64_t files;		/* statstorm: files stat'ed per run */
	uint64_t file_mib;	/* fileread-*: size of the file read, MiB */
	unsigned run;		/* 0 warm-up, 1..R timed, R+1 syscall pass:
				 * seeds the random sequences, the same for
				 * every contender in the same run */
	int count_syscalls;	/* the syscall pass: fill bench_sample.sys */
	int test;		/* --test: tiny sizes */
	const char *data_dir;	/* where cached test files live */
};

/* Extra columns a workload may report (medians, printed after sys). */
#define BENCH_NEXTRA 3

/* What one run measured. */
struct bench_sample {
	double value;		/* in the workload's unit */
	double cpu;		/* in the workload's cpu_unit */
	double sys;		/* syscalls per unit of work (count_syscalls) */
	double extra[BENCH_NEXTRA];	/* in the workload's extra_unit[] */
};

/* Which contenders a workload can run: BENCH_MODEL_IO needs io_new,
 * BENCH_MODEL_OPS op_new; the others are shown as n/a. */
#define BENCH_MODEL_IO 0x1u
#define BENCH_MODEL_OPS 0x2u
#define BENCH_MODEL_TIMER 0x4u	/* timer_new */
#define BENCH_MODEL_FILE 0x8u	/* fop_new */
#define BENCH_MODEL_IDLE 0x10u	/* idle_serve */

struct bench_workload {
	const char *name;	/* for --workload and results/<name>.csv */
	const char *title;	/* one line: what it does */
	const char *unit;	/* of bench_sample.value */
	const char *cpu_unit;	/* of bench_sample.cpu */
	const char *sys_unit;	/* of bench_sample.sys: "sys/ev", ... */
	const char *na_why;	/* shown for a contender of another model */
	const char *legend;	/* printed under the table, or NULL */
	int higher_is_better;	/* events/s: 1; us/round: 0 */
	int primary_cpu;	/* the primary metric is cpu (lower is
				 * better), not value: the table shows it
				 * first, "vs raw", the plot and the summary
				 * use it (echo: req/s is bounded by the
				 * client) */
	unsigned param;		/* workload's own size (pipes: number) */
	unsigned models;	/* BENCH_MODEL_* it can run */
	int optional;		/* not in the default set: only with -w,
				 * --full, or --test (which runs everything) */
	unsigned mode;		/* workload's own variant (fileread: direct) */
	const char *reference;	/* "vs raw" is taken against this contender;
				 * NULL: raw-epoll */
	const char *extra_unit[BENCH_NEXTRA];	/* extra columns, or NULL */
	int plot_extra;		/* k + 1: the plot shows extra[k] beside
				 * each bar too; 0: none */

	/* Set up what every run shares (cached files), once per process,
	 * before the first run; NULL if nothing. 0, -1 (a failure: err) or
	 * BENCH_CANNOT (err says why; every contender is shown so). note
	 * gets a line for the table's header (or stays empty). */
	int (*prepare)(const struct bench_workload *wl,
		       const struct bench_params *p, char *note, size_t notelen,
		       char *err, size_t errlen);
	/* An external program measured beside the contenders (fio), once
	 * per timed run, interleaved with them; NULL if none. Fills value
	 * and cpu like a run; 0, or -1 with err set; BENCH_CANNOT if the
	 * program is not installed. name gets its one-line description. */
	int (*external)(const struct bench_workload *wl,
			const struct bench_params *p, struct bench_sample *out,
			char *name, size_t namelen, char *err, size_t errlen);

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
extern const struct bench_workload bench_workload_timers;
extern const struct bench_workload bench_workload_fileread_cached1;
extern const struct bench_workload bench_workload_fileread_cached32;
extern const struct bench_workload bench_workload_fileread_cached128;
extern const struct bench_workload bench_workload_fileread_direct1;
extern const struct bench_workload bench_workload_fileread_direct32;
extern const struct bench_workload bench_workload_fileread_direct128;
extern const struct bench_workload bench_workload_statstorm;
extern const struct bench_workload bench_workload_idle5000;
extern const struct bench_workload bench_workload_idlemax;
extern const struct bench_workload bench_workload_msg;
extern const struct bench_workload bench_workload_msg_pingpong;

/* Wall clock for intervals, ns. */
static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the process, all threads, ns (CLOCK_PROCESS_CPUTIME_ID:
 * exact, unlike getrusage's tick-split user/system). */
static inline uint64_t bench_pcpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A seeded PRNG (splitmix64): the same sequence for every contender. */
static inline uint64_t bench_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
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
 * perf counter on the raw_syscalls:sys_enter tracepoint, or, where that
 * cannot be had (main.c says why), with strace -c attached to the thread.
 * Returns an fd for bench_sysc_read() and bench_sysc_close(), or -errno
 * (then bench_sysc_why() says why). Read it exactly twice, at the start
 * and at the end of the window: with strace the first read returns 0 and
 * the second detaches it. While such a counter is open, every syscall
 * takes the kernel's slow path (or ptrace's, far slower), which is why
 * main.c counts in a separate short pass. */
int bench_sysc_open(pid_t tid);
uint64_t bench_sysc_read(int fd);
void bench_sysc_close(int fd);
const char *bench_sysc_why(void);

/* The same for every thread of the process (a loop's thread pool too):
 * one counter per thread that exists now, each inherited by the threads
 * it creates from then on. io_uring's kernel workers make no syscalls
 * and so count nothing. bench_sysc_all_open: 0 or -errno (why as
 * above); read sums them; close closes them. */
struct bench_sysc_all {
	unsigned n;
	int fd[64];
};
int bench_sysc_all_open(struct bench_sysc_all *s);
uint64_t bench_sysc_all_read(const struct bench_sysc_all *s);
void bench_sysc_all_close(struct bench_sysc_all *s);

/* Run one run of workload wl on contender c in a fresh evq-bench process
 * (/proc/self/exe), so that its memory starts clean (the idle workload
 * measures RSS: memory freed by earlier runs stays resident in malloc's
 * arenas and would be reused unseen). Returns what wl->run would. In that
 * process, bench_in_child is 1 and wl->run runs in place. */
extern int bench_in_child;
int bench_run_in_child(const struct bench_workload *wl,
		       const struct bench_contender *c,
		       const struct bench_params *p, struct bench_sample *out,
		       char *err, size_t errlen);

/* Make dir and its parents (mkdir -p); 0 or -errno. */
int bench_mkdirs(const char *dir);

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
