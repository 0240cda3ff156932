/* Per-thread free list of fixed-size blocks (read buffers, assembly buffers). Single
 * thread only. Keeps at most max_free blocks; the rest go back to malloc, so an idle node
 * returns memory. */
#ifndef RT_BASE_POOL_H
#define RT_BASE_POOL_H

#include <stddef.h>

typedef struct rt_pool {
    size_t block_size;
    size_t max_free;
    size_t nfree;
    size_t in_use; /* blocks handed out and not yet returned */
    void *free_list;
} rt_pool_t;

void rt_pool_init(rt_pool_t *pool, size_t block_size, size_t max_free);
void rt_pool_cleanup(rt_pool_t *pool);
/* Returns a block of pool->block_size bytes (uninitialised). */
void *rt_pool_get(rt_pool_t *pool);
/* Returns a block obtained from rt_pool_get. NULL is a no-op. */
void rt_pool_put(rt_pool_t *pool, void *block);

#endif
