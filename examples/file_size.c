/* SPDX-License-Identifier: MIT */
/*
 * file_size.c - the completion API: open a file, read it to the end in
 * 64 KiB chunks, close it, all as evq ops, and print its size and a
 * checksum. Usage: file_size [PATH] (default: this program's binary).
 *
 * Each op's callback submits the next one. On io_uring these ops are
 * native; on epoll and poll evq runs them in the loop's small thread pool.
 * Either way the callbacks run on the loop's thread.
 */
#define _POSIX_C_SOURCE 200809L
#include <evq.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

struct file {
	const char *path;
	int fd;
	uint64_t size;			/* bytes read so far */
	uint32_t sum;			/* sum = sum * 31 + byte, per byte */
	int err;			/* first error, -errno */
	struct evq_op op;		/* one op at a time, reused */
	unsigned char buf[64 * 1024];
};

static void on_read(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags);

static void on_close(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned flags)
{
	struct file *f = op->data;

	(void)loop;
	(void)flags;
	if (res < 0 && !f->err)
		f->err = res;
}

/* Read done: account for it, then read on, or close at EOF or error. */
static void on_read(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct file *f = op->data;
	int r;

	(void)flags;
	if (res > 0) {
		for (int i = 0; i < res; i++)
			f->sum = (f->sum * 31u) + f->buf[i];
		f->size += (uint64_t)res;
		evq_prep_read(op, f->fd, f->buf, sizeof(f->buf), f->size);
		r = evq_op_submit(loop, op, 0, on_read);
	} else {
		if (res < 0)
			f->err = res;
		evq_prep_close(op, f->fd);
		r = evq_op_submit(loop, op, 0, on_close);
	}
	if (r < 0 && !f->err)
		f->err = r;
}

static void on_open(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct file *f = op->data;
	int r;

	(void)flags;
	if (res < 0) {
		f->err = res;
		return;			/* nothing more in flight: loop ends */
	}
	f->fd = res;
	evq_prep_read(op, f->fd, f->buf, sizeof(f->buf), 0);
	r = evq_op_submit(loop, op, 0, on_read);
	if (r < 0)
		f->err = r;
}

int main(int argc, char **argv)
{
	static struct file f;		/* static: the buffer is 64 KiB */
	struct evq_loop *loop;
	int ret;

	f.path = argc > 1 ? argv[1] : "/proc/self/exe";
	f.fd = -1;
	ret = evq_loop_new(&loop, NULL);
	if (ret < 0) {
		fprintf(stderr, "evq_loop_new: %s\n", strerror(-ret));
		return 1;
	}

	f.op.data = &f;
	evq_prep_openat(&f.op, AT_FDCWD, f.path, O_RDONLY | O_CLOEXEC, 0);
	ret = evq_op_submit(loop, &f.op, 0, on_open);
	if (ret == 0)
		ret = evq_loop_run(loop, EVQ_RUN_DEFAULT);  /* until no op */
	if (ret < 0 && !f.err)
		f.err = ret;
	evq_loop_free(loop);

	if (f.err) {
		fprintf(stderr, "%s: %s\n", f.path, strerror(-f.err));
		return 1;
	}
	printf("%s: %llu bytes, checksum %08x\n", f.path,
	       (unsigned long long)f.size, (unsigned)f.sum);
	return 0;
}
