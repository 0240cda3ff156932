/* node/map.c: string and id maps used for hubs, clients and requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node/map.h"

int run_map(void);

static void test_string_keys_grow_and_delete(void **state)
{
    (void)state;
    node_map_t m;
    node_map_init(&m);
    static char keys[5000][16];
    for (int i = 0; i < 5000; i++) {
        snprintf(keys[i], sizeof(keys[i]), "ch:%d", i);
        node_map_put(&m, rt_str_c(keys[i]), keys[i]);
    }
    assert_int_equal(m.count, 5000);
    for (int i = 0; i < 5000; i++)
        assert_ptr_equal(node_map_get(&m, rt_str_c(keys[i])), keys[i]);
    assert_null(node_map_get(&m, RT_STR("ch:5000")));
    for (int i = 0; i < 5000; i += 2)
        assert_ptr_equal(node_map_del(&m, rt_str_c(keys[i])), keys[i]);
    assert_int_equal(m.count, 2500);
    assert_null(node_map_get(&m, rt_str_c(keys[0])));
    assert_ptr_equal(node_map_get(&m, rt_str_c(keys[1])), keys[1]);
    size_t seen = 0;
    for (node_map_iter_t it = node_map_iter(&m); node_map_next(&it);)
        seen++;
    assert_int_equal(seen, 2500);
    node_map_cleanup(&m);
    assert_int_equal(m.count, 0);
}

/* Replacing a value keeps the first key: callers hand in slices that may die first. */
static void test_update_keeps_original_key(void **state)
{
    (void)state;
    node_map_t m;
    node_map_init(&m);
    char first[] = "user";
    char second[] = "user";
    node_map_put(&m, rt_str_c(first), (void *)1);
    node_map_put(&m, rt_str_c(second), (void *)2);
    memset(second, 'x', 4); /* the second slice dies */
    node_map_iter_t it = node_map_iter(&m);
    assert_true(node_map_next(&it));
    assert_memory_equal(it.entry->key.p, "user", 4);
    assert_ptr_equal(it.entry->val, (void *)2);
    assert_false(node_map_next(&it));
    node_map_cleanup(&m);
}

static void test_id_keys(void **state)
{
    (void)state;
    node_map_t m;
    node_map_init(&m);
    for (uint64_t i = 1; i <= 1000; i++)
        node_map_put_id(&m, i << 40, (void *)(uintptr_t)i);
    for (uint64_t i = 1; i <= 1000; i++)
        assert_int_equal((uintptr_t)node_map_get_id(&m, i << 40), i);
    assert_null(node_map_get_id(&m, 7));
    assert_int_equal((uintptr_t)node_map_del_id(&m, 5ULL << 40), 5);
    assert_null(node_map_get_id(&m, 5ULL << 40));
    assert_null(node_map_del_id(&m, 5ULL << 40));
    assert_int_equal(m.count, 999);
    node_map_cleanup(&m);
}

static void test_empty_map(void **state)
{
    (void)state;
    node_map_t m;
    node_map_init(&m);
    assert_null(node_map_get(&m, RT_STR("a")));
    assert_null(node_map_del(&m, RT_STR("a")));
    assert_null(node_map_get_id(&m, 1));
    node_map_iter_t it = node_map_iter(&m);
    assert_false(node_map_next(&it));
    node_map_cleanup(&m);
}

int run_map(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_keys_grow_and_delete),
        cmocka_unit_test(test_update_keeps_original_key),
        cmocka_unit_test(test_id_keys),
        cmocka_unit_test(test_empty_map),
    };
    return cmocka_run_group_tests_name("map", tests, NULL, NULL);
}
