/* SPDX-License-Identifier: MIT */
/*
 * evq-cp - copy a file with evq's completion API: every block is a chain
 * of two ops, read -> write, and several blocks are in flight at once.
 *
 *   evq-cp SRC DST
 *
 * What it teaches:
 *  - Blocking calls without blocking the loop: openat and statx are ops
 *    too (native on io_uring, in the loop's thread pool elsewhere).
 *  - Chains (EVQ_OP_LINK): the write of a block starts only once its read
 *    got every byte it asked for, with no trip through the program in
 *    between. A short read breaks the chain and the write completes with
 *    -ECANCELED; the program then writes what it got by itself.
 *  - Errors carry the path: each op's callback reports its own failure,
 *    and the first one decides the exit status.
 *
 * The copy is as long as SRC was when it was opened (statx). DST is
 * created or truncated, with SRC's permission bits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <evq.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK_SIZE (256 * 1024)
#define IN_FLIGHT 8		/* blocks copied at the same time */

struct block {
	struct copy *cp;
	struct evq_op read, write;
	uint64_t off;
	size_t len;		/* what the read asks for */
	int got;		/* what the read returned */
	bool busy;
	char *buf;
};

struct copy {
	struct evq_loop *loop;
	const char *src, *dst;
	int src_fd, dst_fd;
	struct evq_op open_src, open_dst, stat, close_src, close_dst;
	struct statx stx;
	uint64_t size, next_off;	/* bytes to copy; next block's offset */
	int error;			/* the first failure, -errno */
	const char *error_path;
	struct block blocks[IN_FLIGHT];
};

static void fail(struct copy *cp, const char *path, int res)
{
	if (!cp->error) {
		cp->error = res;
		cp->error_path = path;
	}
}

static void on_closed(struct evq_loop *loop, struct evq_op *op, int res,
		      unsigned flags)
{
	struct copy *cp = op->data;

	(void)loop, (void)flags;
	if (res < 0)	/* a close can report a late write error (NFS) */
		fail(cp, op == &cp->close_dst ? cp->dst : cp->src, res);
}

/* Close both files once every block is idle. */
static void finish(struct copy *cp)
{
	for (int i = 0; i < IN_FLIGHT; i++)
		if (cp->blocks[i].busy)
			return;
	if (cp->src_fd >= 0) {
		evq_prep_close(&cp->close_src, cp->src_fd);
		cp->close_src.data = cp;
		evq_op_submit(cp->loop, &cp->close_src, 0, on_closed);
		cp->src_fd = -1;
	}
	if (cp->dst_fd >= 0) {
		evq_prep_close(&cp->close_dst, cp->dst_fd);
		cp->close_dst.data = cp;
		evq_op_submit(cp->loop, &cp->close_dst, 0, on_closed);
		cp->dst_fd = -1;
	}
}

static void block_start(struct block *b);

static void on_write(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned flags)
{
	struct block *b = op->data;
	struct copy *cp = b->cp;

	(void)loop, (void)flags;
	if (res == -ECANCELED && b->got >= 0 && (size_t)b->got < b->len) {
		/* The read came back short (SRC shrank): the chain broke
		 * before this write. Write what was read, then stop. */
		cp->size = b->off + (uint64_t)b->got;
		b->len = (size_t)b->got;
		if (b->got > 0) {
			evq_prep_write(&b->write, cp->dst_fd, b->buf, b->len,
				       b->off);
			evq_op_submit(loop, &b->write, 0, on_write);
			return;
		}
	} else if (res < 0) {
		if (res != -ECANCELED)
			fail(cp, cp->dst, res);
	} else if ((size_t)res < b->len) {
		/* A short write: finish the block from where it stopped. */
		b->off += (uint64_t)res;
		b->len -= (size_t)res;
		memmove(b->buf, b->buf + res, b->len);
		evq_prep_write(&b->write, cp->dst_fd, b->buf, b->len, b->off);
		evq_op_submit(loop, &b->write, 0, on_write);
		return;
	}
	b->busy = false;
	if (cp->error)
		finish(cp);
	else
		block_start(b);
}

static void on_read(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct block *b = op->data;

	(void)loop, (void)flags;
	b->got = res;
	if (res < 0)
		fail(b->cp, b->cp->src, res);	/* the write gets -ECANCELED */
}

/* Give block b the next piece of the file, as a read -> write chain. */
static void block_start(struct block *b)
{
	struct copy *cp = b->cp;
	int ret;

	if (cp->next_off >= cp->size) {
		finish(cp);
		return;
	}
	b->off = cp->next_off;
	b->len = cp->size - b->off < BLOCK_SIZE ? cp->size - b->off
						 : BLOCK_SIZE;
	cp->next_off += b->len;
	b->busy = true;
	evq_prep_read(&b->read, cp->src_fd, b->buf, b->len, b->off);
	evq_prep_write(&b->write, cp->dst_fd, b->buf, b->len, b->off);
	b->read.data = b->write.data = b;
	ret = evq_op_submit(cp->loop, &b->read, EVQ_OP_LINK, on_read);
	if (ret == 0)
		ret = evq_op_submit(cp->loop, &b->write, 0, on_write);
	if (ret < 0) {	/* cannot happen with valid ops; be exact anyway */
		fail(cp, cp->src, ret);
		b->busy = evq_op_is_active(&b->read);
	}
}

static void on_open_dst(struct evq_loop *loop, struct evq_op *op, int res,
			unsigned flags)
{
	struct copy *cp = op->data;

	(void)loop, (void)flags;
	if (res < 0) {
		fail(cp, cp->dst, res);
		finish(cp);
		return;
	}
	cp->dst_fd = res;
	for (int i = 0; i < IN_FLIGHT; i++)
		block_start(&cp->blocks[i]);
	finish(cp);	/* an empty SRC: nothing started */
}

static void on_stat(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct copy *cp = op->data;

	(void)flags;
	if (res < 0) {
		fail(cp, cp->src, res);
		finish(cp);
		return;
	}
	if (S_ISDIR(cp->stx.stx_mode)) {
		fail(cp, cp->src, -EISDIR);
		finish(cp);
		return;
	}
	cp->size = cp->stx.stx_size;
	evq_prep_openat(&cp->open_dst, AT_FDCWD, cp->dst,
			O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			cp->stx.stx_mode & 07777);
	cp->open_dst.data = cp;
	evq_op_submit(loop, &cp->open_dst, 0, on_open_dst);
}

static void on_open_src(struct evq_loop *loop, struct evq_op *op, int res,
			unsigned flags)
{
	struct copy *cp = op->data;

	(void)flags;
	if (res < 0) {
		fail(cp, cp->src, res);
		return;
	}
	cp->src_fd = res;
	evq_prep_statx(&cp->stat, res, "", AT_EMPTY_PATH,
		       STATX_SIZE | STATX_MODE, &cp->stx);
	cp->stat.data = cp;
	evq_op_submit(loop, &cp->stat, 0, on_stat);
}

int main(int argc, char **argv)
{
	static struct copy cp;
	int ret;

	if (argc != 3) {
		fprintf(stderr, "usage: evq-cp SRC DST\n");
		return 2;
	}
	/* A write past RLIMIT_FSIZE should fail with EFBIG, not kill us. */
	signal(SIGXFSZ, SIG_IGN);
	cp.src = argv[1];
	cp.dst = argv[2];
	cp.src_fd = cp.dst_fd = -1;
	ret = evq_loop_new(&cp.loop, NULL);
	if (ret < 0) {
		fprintf(stderr, "evq-cp: loop: %s\n", strerror(-ret));
		return 1;
	}
	for (int i = 0; i < IN_FLIGHT; i++) {
		cp.blocks[i].cp = &cp;
		cp.blocks[i].buf = malloc(BLOCK_SIZE);
		if (!cp.blocks[i].buf) {
			fprintf(stderr, "evq-cp: out of memory\n");
			return 1;
		}
	}
	evq_prep_openat(&cp.open_src, AT_FDCWD, cp.src, O_RDONLY | O_CLOEXEC, 0);
	cp.open_src.data = &cp;
	evq_op_submit(cp.loop, &cp.open_src, 0, on_open_src);

	ret = evq_loop_run(cp.loop, EVQ_RUN_DEFAULT);	/* until all is done */
	if (ret < 0)
		fail(&cp, "evq_loop_run", ret);
	evq_loop_free(cp.loop);
	for (int i = 0; i < IN_FLIGHT; i++)
		free(cp.blocks[i].buf);
	if (cp.error) {
		fprintf(stderr, "evq-cp: %s: %s\n", cp.error_path,
			strerror(-cp.error));
		return 1;
	}
	return 0;
}
