#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker/table.h"
#include "node/base/alloc.h"

typedef struct item {
    broker_table_node_t node;
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
    broker_table_t t;
    broker_table_init(&t);
    assert_null(broker_table_find(&t, RT_STR("k1")));
    item_t *items = items_new();
    for (int i = 0; i < N; i++)
        broker_table_insert(&t, &items[i].node);
    assert_int_equal(t.count, N);
    for (int i = 0; i < N; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        broker_table_node_t *n = broker_table_find(&t, rt_str_c(k));
        assert_non_null(n);
        assert_int_equal(BROKER_TABLE_ENTRY(n, item_t, node)->value, i);
    }
    assert_null(broker_table_find(&t, RT_STR("nope")));
    assert_null(broker_table_find(&t, RT_STR("")));
    for (int i = 0; i < N; i += 2)
        broker_table_remove(&t, &items[i].node);
    assert_int_equal(t.count, N / 2);
    for (int i = 0; i < N; i++)
        assert_true((broker_table_find(&t, items[i].node.key) != NULL) == (i % 2 == 1));
    broker_table_cleanup(&t);
    rt_free(items);
}

static void test_iterate_with_removal_and_shrink(void **state)
{
    broker_table_t t;
    broker_table_init(&t);
    item_t *items = items_new();
    for (int i = 0; i < N; i++)
        broker_table_insert(&t, &items[i].node);
    size_t peak = t.nbuckets;

    /* Remove all but every tenth while iterating; each node is seen exactly once. */
    int seen[N] = {0};
    broker_table_iter_t it;
    broker_table_iter_init(&it, &t);
    for (broker_table_node_t *n; (n = broker_table_iter_next(&it)) != NULL;) {
        item_t *item = BROKER_TABLE_ENTRY(n, item_t, node);
        seen[item->value]++;
        if (item->value % 10 != 0)
            broker_table_remove(&t, n);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(t.count, N / 10);
    broker_table_shrink(&t);
    assert_true(t.nbuckets < peak);
    for (int i = 0; i < N; i += 10)
        assert_non_null(broker_table_find(&t, items[i].node.key));

    broker_table_iter_init(&it, &t);
    for (broker_table_node_t *n; (n = broker_table_iter_next(&it)) != NULL;)
        broker_table_remove(&t, n);
    assert_int_equal(t.count, 0);
    broker_table_shrink(&t);
    assert_null(t.buckets);
    broker_table_iter_init(&it, &t);
    assert_null(broker_table_iter_next(&it));
    broker_table_cleanup(&t);
    rt_free(items);
}

int run_table(void); /* called by the generated unit_main.c */
int run_table(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_iterate_with_removal_and_shrink),
    };
    return cmocka_run_group_tests_name("broker_table", tests, NULL, NULL);
}
