/* SPDX-License-Identifier: MIT */
/*
 * pool.c - shared buffer pools: N buffers of S bytes for M sockets.
 *
 * One receive buffer per idle connection does not scale to 100,000
 * connections; a pool does: an op that names the pool gets a buffer only
 * when data arrives, and the caller hands it back when done. The memory is
 * one allocation made when the pool is created. On a native backend the
 * kernel picks the buffer (io_uring provided buffers) and the backend's
 * pool hooks keep its ring; the emulation keeps a stack of free ids.
 */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int evq_pool_new(struct evq_loop *loop, struct evq_pool **poolp,
		 unsigned nbufs, size_t size)
{
	struct evq_pool *pool;
	size_t total;
	int r;

	if (!loop || !poolp || nbufs == 0 || nbufs > 32768 ||
	    (nbufs & (nbufs - 1)) || size == 0 || size > (1u << 30))
		return -EINVAL;
	/* 32768 x 1 GiB does not fit a 32-bit size_t: refuse it rather than
	 * wrap into a small block that the buffers overrun. The 126 bytes
	 * are the rounding and the alignment slack below. */
	if (size > (SIZE_MAX - 126) / nbufs)
		return -ENOMEM;
	total = (nbufs * size + 63) & ~(size_t)63;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pool->loop = loop;
	pool->nbufs = nbufs;
	pool->size = size;
	/* Zeroed once, here, so a caller that sends a whole buffer sends no
	 * stale heap bytes. calloc rather than aligned_alloc + memset: a
	 * large block comes straight from mmap, already zero, and is not
	 * touched (no RSS for buffers the kernel has not filled yet); the
	 * 64-byte alignment is then made by hand. */
	pool->mem_base = calloc(1, total + 63);
	pool->free_ids = calloc(nbufs, sizeof(*pool->free_ids));
	pool->out = calloc(nbufs, 1);
	if (!pool->mem_base || !pool->free_ids || !pool->out) {
		r = -ENOMEM;
		goto fail;
	}
	pool->mem = (unsigned char *)(((uintptr_t)pool->mem_base + 63) &
				      ~(uintptr_t)63);
	/* Stack order: id 0 is taken first. */
	for (unsigned i = 0; i < nbufs; i++)
		pool->free_ids[i] = (uint16_t)(nbufs - 1 - i);
	pool->nfree = nbufs;
	pool->available = nbufs;
	if (loop->backend->pool_init) {
		r = loop->backend->pool_init(loop, pool);
		if (r < 0)
			goto fail;
	}
	pool->next = loop->pools;
	if (loop->pools)
		loop->pools->prev = pool;
	loop->pools = pool;
	*poolp = pool;
	return 0;
fail:
	free(pool->mem_base);
	free(pool->free_ids);
	free(pool->out);
	free(pool);
	return r;
}

/* Give the backend's part of the pool back and forget the loop. */
static void pool_detach(struct evq_pool *pool)
{
	struct evq_loop *loop = pool->loop;

	if (loop->backend->pool_destroy)
		loop->backend->pool_destroy(loop, pool);
	if (pool->prev)
		pool->prev->next = pool->next;
	else
		loop->pools = pool->next;
	if (pool->next)
		pool->next->prev = pool->prev;
	pool->next = pool->prev = NULL;
	pool->loop = NULL;
}

/* For evq_loop_free, after every op is done: the caller still owns (and
 * frees) the pools. */
void evq__pool_detach_all(struct evq_loop *loop)
{
	while (loop->pools)
		pool_detach(loop->pools);
}

int evq_pool_free(struct evq_pool *pool)
{
	if (!pool)
		return -EINVAL;
	if (pool->users)
		return -EBUSY;
	if (pool->loop)
		pool_detach(pool);
	free(pool->mem_base);
	free(pool->free_ids);
	free(pool->out);
	free(pool);
	return 0;
}

void *evq_pool_buf(struct evq_pool *pool, unsigned id)
{
	if (!pool || id >= pool->nbufs)
		return NULL;
	return pool->mem + (size_t)id * pool->size;
}

unsigned evq_pool_available(const struct evq_pool *pool)
{
	return pool ? pool->available : 0;
}

size_t evq_pool_buf_size(const struct evq_pool *pool)
{
	return pool ? pool->size : 0;
}

unsigned evq_pool_buf_count(const struct evq_pool *pool)
{
	return pool ? pool->nbufs : 0;
}

/* Emulation: take a free buffer for a transfer, or -1. */
int evq__pool_take(struct evq_pool *pool)
{
	if (pool->nfree == 0)
		return -1;
	pool->available--;
	return pool->free_ids[--pool->nfree];
}

/* Emulation: a taken buffer that received nothing goes back unseen. */
void evq__pool_put(struct evq_pool *pool, unsigned id)
{
	pool->free_ids[pool->nfree++] = (uint16_t)id;
	pool->available++;
}

int evq_pool_release(struct evq_pool *pool, unsigned id)
{
	if (!pool || id >= pool->nbufs || !pool->out[id])
		return -EINVAL;
	pool->out[id] = 0;
	if (!pool->loop)
		return 0;	/* detached: nothing takes buffers any more */
	if (pool->loop->backend->pool_release) {
		pool->available++;
		pool->loop->backend->pool_release(pool->loop, pool, id);
	} else {
		evq__pool_put(pool, id);
	}
	return 0;
}
