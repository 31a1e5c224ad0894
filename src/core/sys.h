/* SPDX-License-Identifier: MIT */
/*
 * sys.h - the emulation's transfer syscalls, made directly: each returns
 * the result or -errno, converted once here (liburing's
 * src/arch/.../syscall.h does the same). libc's preadv2() and friends
 * are cancellation points that go through errno: about 30 user
 * instructions a call (callgrind, glibc 2.36), where the syscall itself
 * takes a few; an emulated op makes one per transfer.
 */
#ifndef EVQ_SYS_H
#define EVQ_SYS_H

#include "internal.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(__x86_64__)
static inline long evq__syscall6(long n, long a, long b, long c, long d,
				 long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
			   "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;	/* -4095..-1: -errno */
}
#else
static inline long evq__syscall6(long n, long a, long b, long c, long d,
				 long e, long f)
{
	long r = syscall(n, a, b, c, d, e, f);

	return r < 0 ? -errno : r;
}
#endif

/* preadv2/pwritev2: the offset goes as two halves (low, high), as the
 * kernel takes it (pos_from_hilo); on 64-bit the high half is unused. */
static inline long evq__sys_prwv2(bool rd, int fd, const struct iovec *iov,
				  int cnt, off_t off, int flags)
{
	uint64_t pos = (uint64_t)off;

	return evq__syscall6(rd ? SYS_preadv2 : SYS_pwritev2, fd,
			     (long)(uintptr_t)iov, cnt, (long)pos,
			     (long)(sizeof(long) == 8 ? 0 : pos >> 32), flags);
}

/* recv/send: recvfrom/sendto without an address. */
static inline long evq__sys_recv(int fd, void *buf, size_t len, int flags)
{
	return evq__syscall6(SYS_recvfrom, fd, (long)(uintptr_t)buf,
			     (long)len, flags, 0, 0);
}

static inline long evq__sys_send(int fd, const void *buf, size_t len,
				 int flags)
{
	return evq__syscall6(SYS_sendto, fd, (long)(uintptr_t)buf, (long)len,
			     flags, 0, 0);
}

#endif /* EVQ_SYS_H */
