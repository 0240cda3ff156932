#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/bytes.h"

static void test_new_copy_ref(void **state)
{
    rt_bytes_t *b = rt_bytes_new(5);
    assert_int_equal(b->refs, 1);
    assert_int_equal(b->len, 5);
    assert_null(b->shared);
    memcpy(rt_bytes_mut(b), "hello", 5);
    assert_memory_equal(b->data, "hello", 5);
    assert_ptr_equal(rt_bytes_ref(b), b);
    assert_int_equal(b->refs, 2);
    rt_bytes_unref(b);
    assert_int_equal(b->refs, 1);
    assert_memory_equal(b->data, "hello", 5);
    rt_bytes_unref(b);

    rt_bytes_t *c = rt_bytes_copy("abc", 3);
    assert_int_equal(c->len, 3);
    assert_memory_equal(c->data, "abc", 3);
    rt_bytes_unref(c);

    rt_bytes_t *e = rt_bytes_copy(NULL, 0);
    assert_int_equal(e->len, 0);
    rt_bytes_unref(e);
    rt_bytes_unref(NULL);
}

static void test_views_share_one_buffer(void **state)
{
    rt_shared_t *s = rt_shared_copy("payload", 7);
    assert_int_equal(atomic_load(&s->refs), 1);

    /* Two workers' views: each takes one atomic reference and points at the same bytes. */
    rt_bytes_t *v1 = rt_bytes_view(s);
    rt_bytes_t *v2 = rt_bytes_view(s);
    assert_int_equal(atomic_load(&s->refs), 3);
    assert_ptr_equal(v1->data, s->data);
    assert_ptr_equal(v2->data, s->data);
    assert_int_equal(v1->len, 7);

    /* Subscribers of one worker take plain references on its view only. */
    rt_bytes_ref(v1);
    rt_bytes_ref(v1);
    assert_int_equal(v1->refs, 3);
    assert_int_equal(atomic_load(&s->refs), 3);

    rt_shared_unref(s); /* the producer's reference */
    assert_int_equal(atomic_load(&s->refs), 2);
    rt_bytes_unref(v1);
    rt_bytes_unref(v1);
    assert_int_equal(atomic_load(&s->refs), 2);
    rt_bytes_unref(v1); /* last view reference drops the atomic one */
    assert_int_equal(atomic_load(&s->refs), 1);
    assert_memory_equal(v2->data, "payload", 7);
    rt_bytes_unref(v2); /* frees s; ASan/valgrind would flag a leak otherwise */
    rt_shared_unref(NULL);
}

#define REF_THREADS 4
#define REF_ROUNDS  100000

static void *ref_worker(void *arg)
{
    rt_shared_t *s = arg;
    for (int i = 0; i < REF_ROUNDS; i++) {
        rt_bytes_t *v = rt_bytes_view(s);
        rt_bytes_unref(v);
        rt_shared_unref(rt_shared_ref(s));
    }
    return NULL;
}

static void test_shared_across_threads(void **state)
{
    rt_shared_t *s = rt_shared_new(16);
    memset(s->data, 'x', 16);
    pthread_t t[REF_THREADS];
    for (int i = 0; i < REF_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, ref_worker, s), 0);
    for (int i = 0; i < REF_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&s->refs), 1);
    assert_int_equal(s->data[15], 'x');
    rt_shared_unref(s);
}

int run_bytes(void);
int run_bytes(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_copy_ref),
        cmocka_unit_test(test_views_share_one_buffer),
        cmocka_unit_test(test_shared_across_threads),
    };
    return cmocka_run_group_tests_name("bytes", tests, NULL, NULL);
}
