/* SPDX-License-Identifier: MIT */
/*
 * shim.c - the fault-injection shim (issue 13, item 1).
 *
 * How it is wired (tests/CMakeLists.txt, target evq_fault_lib): a copy of
 * libevq.a is made with `objcopy --redefine-syms=tests/fault/syms.txt`,
 * which renames every call the library makes to libc, the kernel and
 * liburing (malloc -> evq_fi_malloc, syscall -> evq_fi_syscall, ...).
 * Only the library's own calls are renamed: the test program, libc itself
 * and liburing keep calling the real functions, so a failure is always
 * one that evq itself must handle. (--wrap would also catch the test's
 * own calls; LD_PRELOAD would catch libc's internal ones and liburing's
 * inline syscalls are invisible to both. evq enters the ring with
 * syscall(__NR_io_uring_enter) itself, so wrapping `syscall` covers
 * io_uring_enter/register and the aio calls; the liburing functions evq
 * calls (queue_init, register_buf_ring, ...) are renamed by name.)
 *
 * Every wrapper asks fi_fail(point, site): the point is the function, the
 * site the return address (the exact call in evq). The state is in a
 * shared mapping so a parent can read what a forked child reached:
 *  - FI_RECORD: count each site's calls, fail nothing;
 *  - FI_NTH: fail the nth call (counting from 1) of one site, once;
 *  - FI_RANDOM: fail each call with probability 1/odds, from a seed.
 * The errno is one the call really returns (table below), chosen per
 * injection so each site sees them in turn.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fault.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>

struct fi_state *fi;

static const struct fi_point points[FI_NPOINTS] = {
#define E(...) { __VA_ARGS__, 0 }
	[FI_MALLOC] = { "malloc", E(ENOMEM) },
	[FI_CALLOC] = { "calloc", E(ENOMEM) },
	[FI_REALLOC] = { "realloc", E(ENOMEM) },
	[FI_EVENTFD] = { "eventfd", E(EMFILE, ENFILE, ENOMEM) },
	[FI_EPOLL_CREATE] = { "epoll_create1", E(EMFILE, ENFILE, ENOMEM) },
	[FI_EPOLL_CTL] = { "epoll_ctl", E(ENOMEM, ENOSPC) },
	[FI_EPOLL_WAIT] = { "epoll_wait", E(EINTR) },
	[FI_EPOLL_PWAIT2] = { "epoll_pwait2", E(EINTR) },
	[FI_PPOLL] = { "ppoll", E(EINTR, ENOMEM) },
	[FI_READ] = { "read", E(EINTR, EAGAIN) },
	[FI_WRITE] = { "write", E(EINTR, EAGAIN) },
	[FI_READV] = { "readv", E(EINTR, EAGAIN) },
	[FI_WRITEV] = { "writev", E(EINTR, EAGAIN) },
	[FI_PREADV] = { "preadv", E(EINTR) },
	[FI_PREADV2] = { "preadv2", E(EINTR, EAGAIN) },
	[FI_PWRITEV] = { "pwritev", E(EINTR) },
	[FI_PWRITEV2] = { "pwritev2", E(EINTR, EAGAIN) },
	[FI_RECV] = { "recv", E(EINTR, EAGAIN, ENOMEM) },
	[FI_SEND] = { "send", E(EINTR, EAGAIN, ENOBUFS) },
	[FI_RECVMSG] = { "recvmsg", E(EINTR, EAGAIN, ENOMEM) },
	[FI_SENDMSG] = { "sendmsg", E(EINTR, EAGAIN, ENOBUFS) },
	[FI_ACCEPT4] = { "accept4", E(EMFILE, ENFILE, ENOBUFS, ECONNABORTED,
				      EINTR) },
	[FI_CONNECT] = { "connect", E(ENOBUFS, EAGAIN) },
	[FI_OPENAT] = { "openat", E(EMFILE, ENFILE, EINTR) },
	[FI_PTHREAD_CREATE] = { "pthread_create", E(EAGAIN) },
	[FI_SIGNALFD] = { "signalfd", E(EMFILE, ENFILE, ENOMEM) },
	[FI_MMAP] = { "mmap", E(ENOMEM) },
	[FI_URING_ENTER] = { "io_uring_enter", E(EINTR, EAGAIN, EBUSY) },
	[FI_URING_REGISTER] = { "io_uring_register", E(ENOMEM, EINTR,
						       EBUSY) },
	[FI_URING_INIT] = { "io_uring_queue_init_params", E(ENOMEM, EMFILE,
							    ENFILE) },
	[FI_URING_BUF_RING] = { "io_uring_register_buf_ring", E(ENOMEM) },
	[FI_URING_EVENTFD] = { "io_uring_register_eventfd", E(ENOMEM,
							      EMFILE) },
	[FI_AIO_SETUP] = { "io_setup", E(EAGAIN, ENOMEM) },
	[FI_AIO_SUBMIT] = { "io_submit", E(EAGAIN, ENOMEM) },
	[FI_AIO_GETEVENTS] = { "io_getevents", E(EINTR) },
	[FI_AIO_CANCEL] = { "io_cancel", E(EAGAIN) },
#undef E
};

const struct fi_point *fi_point(int p)
{
	return &points[p];
}

void fi_init(void)
{
	if (fi)
		return;
	fi = mmap(NULL, sizeof(*fi), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fi == MAP_FAILED)
		abort();
	memset(fi, 0, sizeof(*fi));
}

static int site_slot(int point, uintptr_t site)
{
	unsigned i, n = __atomic_load_n(&fi->nsites, __ATOMIC_ACQUIRE);

	for (i = 0; i < n; i++)
		if (fi->sites[i].addr == site && fi->sites[i].point == point)
			return (int)i;
	pthread_mutex_lock(&fi->lock);
	for (i = 0; i < fi->nsites; i++)
		if (fi->sites[i].addr == site && fi->sites[i].point == point)
			break;
	if (i == fi->nsites && i < FI_MAXSITES) {
		fi->sites[i].addr = site;
		fi->sites[i].point = point;
		__atomic_store_n(&fi->nsites, i + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&fi->lock);
	return i < FI_MAXSITES ? (int)i : -1;
}

/* Should this call fail? Returns the errno to fail with, or 0. */
static int fi_fail(int point, void *ret)
{
	uintptr_t site = (uintptr_t)ret;
	int s, e;
	unsigned long n;
	const struct fi_point *p = &points[point];
	unsigned nerr;

	if (!fi || fi->mode == FI_OFF)
		return 0;
	s = site_slot(point, site);
	if (s < 0)
		return 0;
	n = __atomic_add_fetch(&fi->sites[s].calls, 1, __ATOMIC_RELAXED);
	for (nerr = 0; p->errs[nerr]; nerr++)
		;
	switch (fi->mode) {
	case FI_NTH:
		if (s != fi->target || n != fi->nth)
			return 0;
		e = p->errs[fi->err_index % nerr];
		break;
	case FI_RANDOM: {
		uint64_t x;

		pthread_mutex_lock(&fi->lock);
		x = fi->rng;
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		fi->rng = x;
		pthread_mutex_unlock(&fi->lock);
		x *= 0x2545f4914f6cdd1dull;
		if (x % fi->odds)
			return 0;
		e = p->errs[(x >> 32) % nerr];
		break;
	}
	default:
		return 0;
	}
	__atomic_add_fetch(&fi->injected, 1, __ATOMIC_RELAXED);
	fi->last_site = s;
	fi->last_err = e;
	return e;
}

#define RA __builtin_return_address(0)
#define FAIL_INT(pt)							\
	do {								\
		int e_ = fi_fail(pt, RA);				\
		if (e_) {						\
			errno = e_;					\
			return -1;					\
		}							\
	} while (0)

void *evq_fi_malloc(size_t n)
{
	if (fi_fail(FI_MALLOC, RA)) {
		errno = ENOMEM;
		return NULL;
	}
	return malloc(n);
}

void *evq_fi_calloc(size_t a, size_t b)
{
	if (fi_fail(FI_CALLOC, RA)) {
		errno = ENOMEM;
		return NULL;
	}
	return calloc(a, b);
}

void *evq_fi_realloc(void *p, size_t n)
{
	if (fi_fail(FI_REALLOC, RA)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n);
}

int evq_fi_eventfd(unsigned v, int flags)
{
	FAIL_INT(FI_EVENTFD);
	return eventfd(v, flags);
}

int evq_fi_epoll_create1(int flags)
{
	FAIL_INT(FI_EPOLL_CREATE);
	return epoll_create1(flags);
}

int evq_fi_epoll_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
	/* A DEL that fails would leave a registration behind: the kernel
	 * fails a DEL only for a bad fd, never for want of memory. */
	if (op != EPOLL_CTL_DEL)
		FAIL_INT(FI_EPOLL_CTL);
	return epoll_ctl(ep, op, fd, ev);
}

int evq_fi_epoll_wait(int ep, struct epoll_event *ev, int n, int ms)
{
	FAIL_INT(FI_EPOLL_WAIT);
	return epoll_wait(ep, ev, n, ms);
}

int evq_fi_epoll_pwait2(int ep, struct epoll_event *ev, int n,
			const struct timespec *ts, const sigset_t *ss)
{
	FAIL_INT(FI_EPOLL_PWAIT2);
	return epoll_pwait2(ep, ev, n, ts, ss);
}

int evq_fi_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		 const sigset_t *ss)
{
	FAIL_INT(FI_PPOLL);
	return ppoll(fds, n, ts, ss);
}

ssize_t evq_fi_read(int fd, void *b, size_t n)
{
	FAIL_INT(FI_READ);
	return read(fd, b, n);
}

unsigned fi_pool_write_delay_ms;

static void pool_write_delay(void)
{
	unsigned ms = __atomic_load_n(&fi_pool_write_delay_ms,
				      __ATOMIC_RELAXED);

	if (ms && gettid() != getpid())
		usleep(ms * 1000u);
}

ssize_t evq_fi_write(int fd, const void *b, size_t n)
{
	FAIL_INT(FI_WRITE);
	return write(fd, b, n);
}

ssize_t evq_fi_readv(int fd, const struct iovec *v, int n)
{
	FAIL_INT(FI_READV);
	return readv(fd, v, n);
}

ssize_t evq_fi_writev(int fd, const struct iovec *v, int n)
{
	pool_write_delay();
	FAIL_INT(FI_WRITEV);
	return writev(fd, v, n);
}

ssize_t evq_fi_preadv(int fd, const struct iovec *v, int n, off_t o)
{
	FAIL_INT(FI_PREADV);
	return preadv(fd, v, n, o);
}

ssize_t evq_fi_preadv2(int fd, const struct iovec *v, int n, off_t o,
		       int fl)
{
	FAIL_INT(FI_PREADV2);
	return preadv2(fd, v, n, o, fl);
}

ssize_t evq_fi_pwritev(int fd, const struct iovec *v, int n, off_t o)
{
	FAIL_INT(FI_PWRITEV);
	pool_write_delay();
	return pwritev(fd, v, n, o);
}

ssize_t evq_fi_pwritev2(int fd, const struct iovec *v, int n, off_t o,
			int fl)
{
	FAIL_INT(FI_PWRITEV2);
	return pwritev2(fd, v, n, o, fl);
}

ssize_t evq_fi_recv(int fd, void *b, size_t n, int fl)
{
	FAIL_INT(FI_RECV);
	return recv(fd, b, n, fl);
}

ssize_t evq_fi_send(int fd, const void *b, size_t n, int fl)
{
	FAIL_INT(FI_SEND);
	return send(fd, b, n, fl);
}

ssize_t evq_fi_recvmsg(int fd, struct msghdr *m, int fl)
{
	FAIL_INT(FI_RECVMSG);
	return recvmsg(fd, m, fl);
}

ssize_t evq_fi_sendmsg(int fd, const struct msghdr *m, int fl)
{
	FAIL_INT(FI_SENDMSG);
	return sendmsg(fd, m, fl);
}

int evq_fi_accept4(int fd, struct sockaddr *a, socklen_t *l, int fl)
{
	FAIL_INT(FI_ACCEPT4);
	return accept4(fd, a, l, fl);
}

int evq_fi_connect(int fd, const struct sockaddr *a, socklen_t l)
{
	FAIL_INT(FI_CONNECT);
	return connect(fd, a, l);
}

int evq_fi_openat(int dfd, const char *path, int fl, ...)
{
	unsigned mode = 0;

	if (fl & (O_CREAT | __O_TMPFILE)) {
		va_list ap;

		va_start(ap, fl);
		mode = va_arg(ap, unsigned);
		va_end(ap);
	}
	FAIL_INT(FI_OPENAT);
	return openat(dfd, path, fl, mode);
}

int evq_fi_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg)
{
	if (fi_fail(FI_PTHREAD_CREATE, RA))
		return EAGAIN;	/* pthread_create returns its error */
	return pthread_create(t, a, fn, arg);
}

int evq_fi_signalfd(int fd, const sigset_t *m, int fl)
{
	FAIL_INT(FI_SIGNALFD);
	return signalfd(fd, m, fl);
}

void *evq_fi_mmap(void *a, size_t l, int p, int f, int fd, off_t o)
{
	if (fi_fail(FI_MMAP, RA)) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return mmap(a, l, p, f, fd, o);
}

long evq_fi_syscall(long nr, ...)
{
	long a[6];
	int i, pt = -1, e;
	va_list ap;

	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	switch (nr) {
	case __NR_io_uring_enter: pt = FI_URING_ENTER; break;
	case __NR_io_uring_register: pt = FI_URING_REGISTER; break;
	case __NR_io_setup: pt = FI_AIO_SETUP; break;
	case __NR_io_submit: pt = FI_AIO_SUBMIT; break;
	case __NR_io_getevents: pt = FI_AIO_GETEVENTS; break;
	case __NR_io_cancel: pt = FI_AIO_CANCEL; break;
	}
	if (pt >= 0 && (e = fi_fail(pt, RA)) != 0) {
		errno = e;
		return -1;
	}
	return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* liburing's functions return -errno themselves. */
int evq_fi_io_uring_queue_init_params(unsigned n, struct io_uring *r,
				      struct io_uring_params *p)
{
	int e = fi_fail(FI_URING_INIT, RA);

	return e ? -e : io_uring_queue_init_params(n, r, p);
}

int evq_fi_io_uring_register_buf_ring(struct io_uring *r,
				      struct io_uring_buf_reg *reg,
				      unsigned flags)
{
	int e = fi_fail(FI_URING_BUF_RING, RA);

	return e ? -e : io_uring_register_buf_ring(r, reg, flags);
}

int evq_fi_io_uring_register_eventfd(struct io_uring *r, int fd)
{
	int e = fi_fail(FI_URING_EVENTFD, RA);

	return e ? -e : io_uring_register_eventfd(r, fd);
}
