/* SPDX-License-Identifier: MIT */
/*
 * signal.c - signals delivered in loop context through a signalfd.
 *
 * A signal can be read by one signalfd only in a useful way (whichever
 * reads first takes it), so a process-wide table records which loop has
 * claimed each signal and a second claim fails with -EBUSY. The first
 * watcher of a signal in a loop blocks it in the calling thread; the last
 * one to stop discards what is still pending of it and unblocks it again
 * if evq was the one that blocked it.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define SIG_MAX 64

static pthread_mutex_t claims_lock = PTHREAD_MUTEX_INITIALIZER;
static struct evq_loop *claims[SIG_MAX + 1];

static void sig_cb(struct evq_loop *loop, struct evq_io *w, unsigned revents)
{
	struct signalfd_siginfo info[16];
	ssize_t n;

	(void)w;
	(void)revents;
	n = read(loop->sig_fd, info, sizeof(info));
	if (n <= 0)
		return;
	for (size_t i = 0; i < (size_t)n / sizeof(info[0]); i++) {
		unsigned signo = info[i].ssi_signo;
		struct evq_signal *s;

		if (signo == 0 || signo > SIG_MAX)
			continue;
		/* The cursor survives a callback that stops (and frees)
		 * the next watcher: evq_signal_stop() moves it on. */
		for (s = loop->sig_watchers[signo]; s; s = loop->sig_cursor) {
			loop->sig_cursor = s->next;
			s->cb(loop, s);
		}
	}
	/* More than one buffer's worth stays readable: the level-triggered
	 * watcher brings us back next iteration, after other fds had their
	 * turn. */
}

/* Point the signalfd at loop->sig_mask, creating it on first use. */
static int sig_fd_update(struct evq_loop *loop)
{
	int fd = signalfd(loop->sig_fd, &loop->sig_mask,
			  SFD_NONBLOCK | SFD_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	if (loop->sig_fd < 0) {
		r = evq__io_start_internal(loop, &loop->sig_io, fd, EVQ_READ,
					   sig_cb);
		if (r < 0) {
			close(fd);
			return r;
		}
		loop->sig_fd = fd;
	}
	return 0;
}

static int claim(struct evq_loop *loop, int signo)
{
	sigset_t one, old;
	int r = 0;

	pthread_mutex_lock(&claims_lock);
	if (claims[signo] && claims[signo] != loop)
		r = -EBUSY;
	else
		claims[signo] = loop;
	pthread_mutex_unlock(&claims_lock);
	if (r < 0)
		return r;

	sigemptyset(&one);
	sigaddset(&one, signo);
	pthread_sigmask(SIG_BLOCK, &one, &old);
	if (!sigismember(&old, signo))
		sigaddset(&loop->sig_blocked, signo);
	sigaddset(&loop->sig_mask, signo);
	r = sig_fd_update(loop);
	if (r < 0) {
		sigdelset(&loop->sig_mask, signo);
		/* release below undoes the block and the claim */
	}
	return r;
}

static void release(struct evq_loop *loop, int signo)
{
	sigset_t one;
	struct timespec zero = { 0, 0 };

	sigdelset(&loop->sig_mask, signo);
	if (loop->sig_fd >= 0)
		(void)sig_fd_update(loop);
	if (sigismember(&loop->sig_blocked, signo)) {
		sigemptyset(&one);
		sigaddset(&one, signo);
		/* Unblocking with an instance pending would run the default
		 * action (often: terminate); nobody asked for it any more. */
		while (sigtimedwait(&one, NULL, &zero) == signo)
			;
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
		sigdelset(&loop->sig_blocked, signo);
	}
	pthread_mutex_lock(&claims_lock);
	if (claims[signo] == loop)
		claims[signo] = NULL;
	pthread_mutex_unlock(&claims_lock);
}

int evq_signal_start(struct evq_loop *loop, struct evq_signal *s, int signo,
		     evq_signal_cb cb)
{
	int r;

	if (!loop || !s || !cb || signo <= 0 || signo > SIG_MAX ||
	    signo == SIGKILL || signo == SIGSTOP)
		return -EINVAL;
	if (s->loop)
		evq_signal_stop(s);
	if (!loop->sig_watchers[signo]) {
		r = claim(loop, signo);
		if (r < 0) {
			if (r != -EBUSY)
				release(loop, signo);
			return r;
		}
	}
	s->loop = loop;
	s->cb = cb;
	s->signo = signo;
	s->prev = NULL;
	s->next = loop->sig_watchers[signo];
	if (s->next)
		s->next->prev = s;
	loop->sig_watchers[signo] = s;
	if (!(s->flags & EVQ__UNREF))
		loop->active++;
	return 0;
}

int evq_signal_stop(struct evq_signal *s)
{
	struct evq_loop *loop;

	if (!s)
		return -EINVAL;
	loop = s->loop;
	if (!loop)
		return 0;
	if (loop->sig_cursor == s)
		loop->sig_cursor = s->next;
	if (s->prev)
		s->prev->next = s->next;
	else
		loop->sig_watchers[s->signo] = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	s->loop = NULL;
	if (!(s->flags & EVQ__UNREF))
		loop->active--;
	if (!loop->sig_watchers[s->signo])
		release(loop, s->signo);
	return 0;
}

int evq_signal_is_active(const struct evq_signal *s)
{
	return s && s->loop != NULL;
}

/* The unref mark (evq.h, evq_io_unref): the claim and the blocked mask
 * are the watcher's activity, not its count, so they do not change. */
int evq_signal_unref(struct evq_signal *s)
{
	if (!s)
		return -EINVAL;
	evq__set_unref(s->loop, &s->flags, s->loop != NULL, true);
	return 0;
}

int evq_signal_ref(struct evq_signal *s)
{
	if (!s)
		return -EINVAL;
	evq__set_unref(s->loop, &s->flags, s->loop != NULL, false);
	return 0;
}

void evq__signal_detach_all(struct evq_loop *loop)
{
	for (int signo = 1; signo <= SIG_MAX; signo++)
		while (loop->sig_watchers[signo])
			evq_signal_stop(loop->sig_watchers[signo]);
	if (loop->sig_fd >= 0) {
		evq_io_stop(&loop->sig_io);
		close(loop->sig_fd);
		loop->sig_fd = -1;
	}
}
