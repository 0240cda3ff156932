#include "node/base/pool.h"

#include "node/base/alloc.h"
#include "node/base/assert.h"

void rt_pool_init(rt_pool_t *pool, size_t block_size, size_t max_free)
{
    RT_ASSERT(block_size >= sizeof(void *));
    pool->block_size = block_size;
    pool->max_free = max_free;
    pool->nfree = 0;
    pool->in_use = 0;
    pool->free_list = NULL;
}

void rt_pool_cleanup(rt_pool_t *pool)
{
    while (pool->free_list) {
        void *next = *(void **)pool->free_list;
        rt_free(pool->free_list);
        pool->free_list = next;
    }
    pool->nfree = 0;
}

void *rt_pool_get(rt_pool_t *pool)
{
    pool->in_use++;
    if (pool->free_list) {
        void *b = pool->free_list;
        pool->free_list = *(void **)b;
        pool->nfree--;
        return b;
    }
    return rt_malloc(pool->block_size);
}

void rt_pool_put(rt_pool_t *pool, void *block)
{
    if (block == NULL)
        return;
    RT_DASSERT(pool->in_use > 0);
    pool->in_use--;
    if (pool->nfree >= pool->max_free) {
        rt_free(block);
        return;
    }
    *(void **)block = pool->free_list;
    pool->free_list = block;
    pool->nfree++;
}
