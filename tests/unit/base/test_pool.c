#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/alloc.h"
#include "node/base/pool.h"

static void test_reuse(void **state)
{
    rt_pool_t pool;
    rt_pool_init(&pool, 4096, 2);
    void *a = rt_pool_get(&pool);
    memset(a, 0xab, 4096); /* the whole block is usable */
    assert_int_equal(pool.in_use, 1);
    rt_pool_put(&pool, a);
    assert_int_equal(pool.in_use, 0);
    assert_int_equal(pool.nfree, 1);

    uint64_t before = rt_alloc_count();
    void *b = rt_pool_get(&pool);
    assert_ptr_equal(b, a); /* served from the free list, no allocation */
    assert_int_equal(rt_alloc_count(), before);
    assert_int_equal(pool.nfree, 0);
    rt_pool_put(&pool, b);
    rt_pool_put(&pool, NULL);
    assert_int_equal(pool.nfree, 1);
    assert_int_equal(pool.in_use, 0);
    rt_pool_cleanup(&pool);
    assert_int_equal(pool.nfree, 0);
}

static void test_max_free(void **state)
{
    rt_pool_t pool;
    rt_pool_init(&pool, 64, 2);
    void *blocks[5];
    for (int i = 0; i < 5; i++)
        blocks[i] = rt_pool_get(&pool);
    assert_int_equal(pool.in_use, 5);
    for (int i = 0; i < 5; i++)
        rt_pool_put(&pool, blocks[i]);
    /* Only max_free blocks stay cached; the rest went back to malloc. */
    assert_int_equal(pool.nfree, 2);
    assert_int_equal(pool.in_use, 0);

    uint64_t before = rt_alloc_count();
    void *x = rt_pool_get(&pool);
    void *y = rt_pool_get(&pool);
    assert_int_equal(rt_alloc_count(), before);
    void *z = rt_pool_get(&pool);
    assert_int_equal(rt_alloc_count(), before + 1);
    assert_true(x != y && y != z && x != z);
    rt_pool_put(&pool, x);
    rt_pool_put(&pool, y);
    rt_pool_put(&pool, z);
    rt_pool_cleanup(&pool);
}

static void test_zero_cache(void **state)
{
    rt_pool_t pool;
    rt_pool_init(&pool, sizeof(void *), 0);
    void *a = rt_pool_get(&pool);
    rt_pool_put(&pool, a);
    assert_int_equal(pool.nfree, 0);
    rt_pool_cleanup(&pool);
}

int run_pool(void);
int run_pool(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_max_free),
        cmocka_unit_test(test_zero_cache),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
