#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/alloc.h"
#include "node/base/table.h"

typedef struct item {
    rt_table_node_t node;
    int value;
    char key[16];
} item_t;

#define N 1000

static item_t *items_new(void)
{
    item_t *items = rt_calloc(N, sizeof(*items));
    for (int i = 0; i < N; i++) {
        snprintf(items[i].key, sizeof(items[i].key), "k%d", i);
        items[i].value = i;
        items[i].node.key = rt_str_c(items[i].key);
    }
    return items;
}

static void test_insert_find_remove(void **state)
{
    rt_table_t t;
    rt_table_init(&t);
    assert_null(rt_table_find(&t, RT_STR("k1")));
    item_t *items = items_new();
    for (int i = 0; i < N; i++)
        rt_table_insert(&t, &items[i].node);
    assert_int_equal(t.count, N);
    for (int i = 0; i < N; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        rt_table_node_t *n = rt_table_find(&t, rt_str_c(k));
        assert_non_null(n);
        assert_int_equal(RT_TABLE_ENTRY(n, item_t, node)->value, i);
    }
    assert_null(rt_table_find(&t, RT_STR("nope")));
    assert_null(rt_table_find(&t, RT_STR("")));
    for (int i = 0; i < N; i += 2)
        rt_table_remove(&t, &items[i].node);
    assert_int_equal(t.count, N / 2);
    for (int i = 0; i < N; i++)
        assert_true((rt_table_find(&t, items[i].node.key) != NULL) == (i % 2 == 1));
    rt_table_cleanup(&t);
    rt_free(items);
}

static void test_iterate_with_removal_and_shrink(void **state)
{
    rt_table_t t;
    rt_table_init(&t);
    item_t *items = items_new();
    for (int i = 0; i < N; i++)
        rt_table_insert(&t, &items[i].node);
    size_t peak = t.nbuckets;

    /* Remove all but every tenth while iterating; each node is seen exactly once. */
    int seen[N] = {0};
    rt_table_iter_t it;
    rt_table_iter_init(&it, &t);
    for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;) {
        item_t *item = RT_TABLE_ENTRY(n, item_t, node);
        seen[item->value]++;
        if (item->value % 10 != 0)
            rt_table_remove(&t, n);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(t.count, N / 10);
    rt_table_shrink(&t);
    assert_true(t.nbuckets < peak);
    for (int i = 0; i < N; i += 10)
        assert_non_null(rt_table_find(&t, items[i].node.key));

    rt_table_iter_init(&it, &t);
    for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;)
        rt_table_remove(&t, n);
    assert_int_equal(t.count, 0);
    rt_table_shrink(&t);
    assert_null(t.buckets);
    rt_table_iter_init(&it, &t);
    assert_null(rt_table_iter_next(&it));
    rt_table_cleanup(&t);
    rt_free(items);
}

int run_table(void); /* called by the generated unit_main.c */
int run_table(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_iterate_with_removal_and_shrink),
    };
    return cmocka_run_group_tests_name("rt_table", tests, NULL, NULL);
}
