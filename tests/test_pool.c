/* SPDX-License-Identifier: MIT */
/*
 * test_pool.c - buffer pools on their own: the bounds evq_pool_new()
 * checks (nbufs * size must not wrap), and memory that starts out zeroed,
 * so that a caller who sends a whole pool buffer sends no stale heap data.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helpers.h"
#include "ops_helpers.h"

#include <limits.h>

/* Sizes out of the documented range, or whose product would not fit a
 * size_t: a clean -EINVAL/-ENOMEM, no pool, no crash. On a 64-bit build
 * the documented maximum (32768 x 1 GiB = 32 TiB) fits a size_t; on a
 * 32-bit one it does not and must be refused rather than wrap into a
 * small allocation that the buffers then overrun. */
static int pool_size_overflow_is_refused(void)
{
	struct evq_loop *loop = t_loop_new();
	const struct { unsigned nbufs; size_t size; } bad[] = {
		{ UINT_MAX, SIZE_MAX / 2 },
		{ 32768, SIZE_MAX },
		{ 32768, SIZE_MAX / 32768 + 1 },
		{ 65536, 1 },
		{ 1, ((size_t)1 << 30) + 1 },
		{ 0, 64 },
		{ 64, 0 },
		{ 3, 64 },
	};
	struct evq_pool *pool;

	ASSERT_NOTNULL(loop);
	for (size_t i = 0; i < T_NELEM(bad); i++) {
		int r;

		T_STEP("nbufs %u, size %zu", bad[i].nbufs, bad[i].size);
		pool = (struct evq_pool *)&pool;	/* not NULL */
		r = evq_pool_new(loop, &pool, bad[i].nbufs, bad[i].size);
		if (r != -ENOMEM)
			ASSERT_ERR(r, -EINVAL);
		ASSERT_TRUE(pool == (struct evq_pool *)&pool);
	}
	if ((size_t)32768 > SIZE_MAX / ((size_t)1 << 30)) {
		T_STEP("32768 x 1 GiB wraps a %zu-byte size_t",
		       sizeof(size_t));
		ASSERT_ERR(evq_pool_new(loop, &pool, 32768, (size_t)1 << 30),
			   -ENOMEM);
	}
	T_STEP("a pool still works afterwards");
	ASSERT_OK(evq_pool_new(loop, &pool, 4, 64));
	ASSERT_EQ(evq_pool_available(pool), 4);
	ASSERT_OK(evq_pool_free(pool));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Every byte of a new pool reads 0. The heap is dirtied first with a
 * block of the same size, freed, so that an allocator which hands that
 * block back (as malloc does for small sizes) would show its old bytes. */
static int fresh_pool_reads_as_zeros(void)
{
	struct evq_loop *loop = t_loop_new();
	const struct { unsigned nbufs; size_t size; } shapes[] = {
		{ 1, 1 }, { 4, 100 }, { 16, 4096 }, { 64, 16384 },
	};

	ASSERT_NOTNULL(loop);
	for (size_t i = 0; i < T_NELEM(shapes); i++) {
		size_t total = shapes[i].nbufs * shapes[i].size;
		struct evq_pool *pool;
		unsigned char *dirty;

		T_STEP("%u buffers of %zu bytes", shapes[i].nbufs,
		       shapes[i].size);
		for (int k = 0; k < 4; k++) {
			dirty = malloc(total + 63 + 64 * k);
			ASSERT_NOTNULL(dirty);
			memset(dirty, 0xA5, total + 63 + 64 * k);
			free(dirty);
		}
		ASSERT_OK(evq_pool_new(loop, &pool, shapes[i].nbufs,
				       shapes[i].size));
		for (unsigned id = 0; id < shapes[i].nbufs; id++) {
			const unsigned char *b = evq_pool_buf(pool, id);

			ASSERT_NOTNULL(b);
			if (!all_zero(b, shapes[i].size)) {
				t_note("buffer %u is not zeroed", id);
				ASSERT_TRUE(all_zero(b, shapes[i].size));
			}
		}
		ASSERT_OK(evq_pool_free(pool));
	}
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

/* What a caller sees: a 4-byte recv into a 256-byte pool buffer leaves
 * the other 252 bytes zero, on every backend (the kernel's provided
 * buffers on uring, the emulation's recv elsewhere). */
static int short_recv_leaves_rest_of_buffer_zero(void)
{
	struct evq_loop *loop = t_loop_new();
	struct evq_pool *pool;
	struct t_op r = { 0 };
	unsigned char *dirty;
	const unsigned char *b;
	unsigned id;
	int sp[2];

	ASSERT_NOTNULL(loop);
	dirty = malloc(8 * 256 + 63);
	ASSERT_NOTNULL(dirty);
	memset(dirty, 0x5A, 8 * 256 + 63);
	free(dirty);
	ASSERT_OK(evq_pool_new(loop, &pool, 8, 256));
	ASSERT_OK(t_socketpair(sp));
	t_op_init(&r);
	evq_prep_recv_pool(&r.op, sp[0], pool, 0);
	ASSERT_OK(t_op_submit(loop, &r, 0));
	ASSERT_EQ(send(sp[1], "abcd", 4, 0), 4);
	ASSERT_OK(t_op_wait(loop, &r, 2000));
	ASSERT_EQ(r.res, 4);
	ASSERT_TRUE(r.flags & EVQ_OP_F_BUFFER);
	id = EVQ_OP_F_BUFID(r.flags);
	b = evq_pool_buf(pool, id);
	ASSERT_NOTNULL(b);
	ASSERT_EQ(memcmp(b, "abcd", 4), 0);
	ASSERT_TRUE(all_zero(b + 4, 256 - 4));
	ASSERT_OK(evq_pool_release(pool, id));
	t_close2(sp);
	ASSERT_OK(evq_pool_free(pool));
	ASSERT_OK(evq_loop_free(loop));
	return T_PASS;
}

static const struct t_case cases[] = {
	T_CASE(pool_size_overflow_is_refused),
	T_CASE(fresh_pool_reads_as_zeros),
	T_CASE(short_recv_leaves_rest_of_buffer_zero),
};

int main(int argc, char **argv)
{
	return t_main(argc, argv, cases, T_NELEM(cases));
}
