/* SPDX-License-Identifier: MIT */
/*
 * child.c - child process watchers (evq.h, evq_child_start). Each watcher
 * holds a pidfd of its child and waits on it with an internal fd watcher:
 * a pidfd becomes readable when the process exits. Then waitid(P_PIDFD)
 * reaps exactly that child. No SIGCHLD handler and no waitpid(-1): nothing
 * process-wide, so several loops (and the program's own waits for other
 * pids) never take each other's children. Calls io.c only.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define CHILD_ACTIVE 0x1u

static int pidfd_open(int pid)
{
#ifdef SYS_pidfd_open
	return (int)EVQ__SYS(syscall(SYS_pidfd_open, pid, 0));
#else
	(void)pid;
	return -ENOSYS;
#endif
}

/* A wait status as waitpid(2) makes it, from waitid's siginfo. */
static int wait_status(const siginfo_t *si)
{
	switch (si->si_code) {
	case CLD_EXITED:
		return (si->si_status & 0xff) << 8;
	case CLD_DUMPED:
		return (si->si_status & 0x7f) | 0x80;
	default:	/* CLD_KILLED */
		return si->si_status & 0x7f;
	}
}

static void child_unlink(struct evq_loop *loop, struct evq_child *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		loop->children = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	/* Drop the kernel's registration now, before the number can be
	 * reused: a stop would leave it to the next flush. */
	evq__fd_end(loop, c->pidfd);
	close(c->pidfd);
	c->pidfd = -1;
	c->flags &= ~CHILD_ACTIVE;
	if (!(c->flags & EVQ__UNREF))
		loop->active--;
	c->loop = NULL;
}

static void pidfd_cb(struct evq_loop *loop, struct evq_io *w, unsigned rev)
{
	struct evq_child *c = w->data;
	siginfo_t si = { 0 };
	int status;

	(void)rev;
	if (waitid((idtype_t)P_PIDFD, (id_t)c->pidfd, &si,
		   WEXITED | WNOHANG) < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;	/* readable again next iteration */
		status = -errno;	/* -ECHILD: reaped by someone else */
	} else if (si.si_pid == 0) {
		return;		/* not exited yet */
	} else {
		status = wait_status(&si);
	}
	/* Stopped before the callback, so it may start c again, or free
	 * it. */
	child_unlink(loop, c);
	c->cb(loop, c, status);
}

int evq_child_start(struct evq_loop *loop, struct evq_child *c, int pid,
		    evq_child_cb cb)
{
	siginfo_t si = { 0 };
	int fd, r;

	if (!loop || !c || !cb || pid <= 0)
		return -EINVAL;
	if (c->flags & CHILD_ACTIVE)
		return -EBUSY;
	fd = pidfd_open(pid);
	if (fd < 0)
		return fd;
	/* Only a child can be waited for: say so now, not at its exit. */
	if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si,
		   WEXITED | WNOHANG | WNOWAIT) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	c->io = (struct evq_io){ .data = c };
	r = evq__io_start_internal(loop, &c->io, fd, EVQ_READ, pidfd_cb);
	if (r < 0) {
		close(fd);
		return r;
	}
	c->loop = loop;
	c->cb = cb;
	c->pid = pid;
	c->pidfd = fd;
	c->prev = NULL;
	c->next = loop->children;
	if (c->next)
		c->next->prev = c;
	loop->children = c;
	c->flags |= CHILD_ACTIVE;
	if (!(c->flags & EVQ__UNREF))
		loop->active++;
	return 0;
}

int evq_child_stop(struct evq_child *c)
{
	if (!c)
		return -EINVAL;
	if (c->flags & CHILD_ACTIVE)
		child_unlink(c->loop, c);
	return 0;
}

int evq_child_is_active(const struct evq_child *c)
{
	return c && (c->flags & CHILD_ACTIVE);
}

int evq_child_unref(struct evq_child *c)
{
	if (!c)
		return -EINVAL;
	evq__set_unref(c->loop, &c->flags, c->flags & CHILD_ACTIVE, true);
	return 0;
}

int evq_child_ref(struct evq_child *c)
{
	if (!c)
		return -EINVAL;
	evq__set_unref(c->loop, &c->flags, c->flags & CHILD_ACTIVE, false);
	return 0;
}

/* evq_loop_free: watchers become inactive, children unreaped. */
void evq__child_detach_all(struct evq_loop *loop)
{
	while (loop->children)
		child_unlink(loop, loop->children);
}
