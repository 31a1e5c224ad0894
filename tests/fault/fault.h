/* SPDX-License-Identifier: MIT */
/* fault.h - the fault-injection shim's state (see shim.c). */
#ifndef EVQ_TEST_FAULT_H
#define EVQ_TEST_FAULT_H

#include <pthread.h>
#include <stdint.h>

enum {
	FI_MALLOC, FI_CALLOC, FI_REALLOC, FI_EVENTFD, FI_EPOLL_CREATE,
	FI_EPOLL_CTL, FI_EPOLL_WAIT, FI_EPOLL_PWAIT2, FI_PPOLL, FI_READ,
	FI_WRITE, FI_READV, FI_WRITEV, FI_PREADV, FI_PREADV2, FI_PWRITEV,
	FI_PWRITEV2, FI_RECV, FI_SEND, FI_RECVMSG, FI_SENDMSG, FI_ACCEPT4,
	FI_CONNECT, FI_OPENAT, FI_PTHREAD_CREATE, FI_SIGNALFD, FI_MMAP,
	FI_URING_ENTER, FI_URING_REGISTER, FI_URING_INIT, FI_URING_BUF_RING,
	FI_URING_EVENTFD, FI_AIO_SETUP, FI_AIO_SUBMIT, FI_AIO_GETEVENTS,
	FI_AIO_CANCEL, FI_NPOINTS
};

enum { FI_OFF, FI_RECORD, FI_NTH, FI_RANDOM };

#define FI_MAXSITES 1024

struct fi_point {
	const char *name;
	int errs[8];		/* the errnos it really fails with, 0-ended */
};

struct fi_site {
	uintptr_t addr;		/* return address: the call in libevq */
	int point;
	unsigned long calls;
};

struct fi_state {
	pthread_mutex_t lock;	/* a forked child may inherit it held:
				 * children are forked while it is free */
	int mode;
	int target;		/* FI_NTH: site index */
	unsigned long nth;	/* FI_NTH: which call of the site */
	unsigned err_index;	/* FI_NTH: which of the point's errnos */
	uint64_t rng;		/* FI_RANDOM */
	unsigned odds;		/* FI_RANDOM: fail 1 in odds */
	unsigned long injected;
	int last_site, last_err;
	unsigned nsites;
	struct fi_site sites[FI_MAXSITES];
};

extern struct fi_state *fi;
/* Not a failure but a delay: pwritev/writev calls made by a thread other
 * than the process's first (the loop's thread pool) sleep this long first,
 * to widen the window between a worker taking a job and its syscall. */
extern unsigned fi_pool_write_delay_ms;
void fi_init(void);
const struct fi_point *fi_point(int p);

#endif
