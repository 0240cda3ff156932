#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "broker/pub.h"
#include "node/base/alloc.h"

static bool str_is(rt_str_t s, const char *c)
{
    return rt_str_eq_c(s, c);
}

static void test_new_copies_everything(void **state)
{
    char channel[] = "chat:index";
    char data[] = "{\"a\":1}";
    char epoch[] = "AbCdEfGh";
    char user[] = "u1", client[] = "c1", ci[] = "{\"n\":1}", chi[] = "{\"m\":2}";
    char k1[] = "k1", v1[] = "v1", k2[] = "k2", v2[] = "";
    rt_client_info_t info = {rt_str_c(user), rt_str_c(client), rt_str_c(ci), rt_str_c(chi)};
    broker_tag_t tags[2] = {{rt_str_c(k1), rt_str_c(v1)}, {rt_str_c(k2), rt_str_c(v2)}};
    broker_pub_fields_t f = {
        .channel = rt_str_c(channel),
        .data = rt_str_c(data),
        .data_binary = true,
        .info = &info,
        .tags = tags,
        .ntags = 2,
        .delta = true,
        .offset = 42,
        .epoch = rt_str_c(epoch),
        .time_ms = 1234,
    };

    uint64_t before = rt_alloc_count();
    broker_pub_t *p = broker_pub_new(&f);
    assert_int_equal(rt_alloc_count() - before, 1);

    /* Scribble over every source buffer: the publication must not notice. */
    memset(channel, 'x', sizeof(channel) - 1);
    memset(data, 'x', sizeof(data) - 1);
    memset(epoch, 'x', sizeof(epoch) - 1);
    memset(user, 'x', sizeof(user) - 1);
    memset(client, 'x', sizeof(client) - 1);
    memset(ci, 'x', sizeof(ci) - 1);
    memset(chi, 'x', sizeof(chi) - 1);
    memset(k1, 'x', 2);
    memset(v1, 'x', 2);
    memset(k2, 'x', 2);
    memset(tags, 0, sizeof(tags));

    assert_true(str_is(p->channel, "chat:index"));
    assert_true(str_is(p->data, "{\"a\":1}"));
    assert_true(str_is(p->epoch, "AbCdEfGh"));
    assert_true(p->data_binary);
    assert_true(p->delta);
    assert_int_equal(p->offset, 42);
    assert_int_equal(p->time_ms, 1234);
    assert_true(p->has_info);
    assert_true(str_is(p->info.user, "u1"));
    assert_true(str_is(p->info.client, "c1"));
    assert_true(str_is(p->info.conn_info, "{\"n\":1}"));
    assert_true(str_is(p->info.chan_info, "{\"m\":2}"));
    assert_int_equal(p->ntags, 2);
    assert_true(str_is(p->tags[0].key, "k1"));
    assert_true(str_is(p->tags[0].value, "v1"));
    assert_true(str_is(p->tags[1].key, "k2"));
    assert_int_equal(p->tags[1].value.n, 0);
    /* Strings are NUL-terminated for logging. */
    assert_int_equal(p->channel.p[p->channel.n], '\0');
    /* Everything lives inside the one allocation. */
    const char *lo = (const char *)p, *hi = p->tags[1].value.p;
    assert_true(p->data.p > lo && p->data.p < hi);
    assert_true((const char *)p->tags > lo);
    for (int i = 0; i < BROKER_PUB_FRAME_SLOTS; i++)
        assert_null(broker_pub_frame(p, i));
    broker_pub_unref(p);
}

static void test_new_minimal(void **state)
{
    broker_pub_fields_t f = {.channel = RT_STR("c")};
    broker_pub_t *p = broker_pub_new(&f);
    assert_true(str_is(p->channel, "c"));
    assert_int_equal(p->data.n, 0);
    assert_int_equal(p->epoch.n, 0);
    assert_false(p->has_info);
    assert_int_equal(p->ntags, 0);
    assert_null(p->tags);
    broker_pub_unref(p);
    broker_pub_unref(NULL);
}

/* An encoder that hands out a prepared frame (or NULL) and counts its calls. */
typedef struct enc {
    rt_shared_t *frame;
    _Atomic int calls;
} enc_t;

static rt_shared_t *encode_prepared(const broker_pub_t *p, int slot, void *ud)
{
    enc_t *e = ud;
    atomic_fetch_add(&e->calls, 1);
    return e->frame;
}

static void test_refcount_frees_frames(void **state)
{
    broker_pub_fields_t f = {.channel = RT_STR("c"), .data = RT_STR("d")};
    broker_pub_t *p = broker_pub_new(&f);
    enc_t e0 = {.frame = rt_shared_copy("a", 1)}, e3 = {.frame = rt_shared_copy("b", 1)};
    rt_shared_ref(e0.frame);
    rt_shared_ref(e3.frame);
    assert_null(broker_pub_frame(p, 0));
    assert_ptr_equal(broker_pub_frame_get(p, 0, encode_prepared, &e0), e0.frame);
    assert_ptr_equal(broker_pub_frame_get(p, 3, encode_prepared, &e3), e3.frame);
    assert_ptr_equal(broker_pub_frame_get(p, 0, encode_prepared, &e0), e0.frame);
    assert_int_equal(atomic_load(&e0.calls), 1); /* cached: encoded once */
    assert_ptr_equal(broker_pub_frame(p, 0), e0.frame);
    assert_ptr_equal(broker_pub_frame(p, 3), e3.frame);

    assert_ptr_equal(broker_pub_ref(p), p);
    assert_int_equal(atomic_load(&p->refs), 2);
    broker_pub_unref(p);
    assert_int_equal(atomic_load(&e0.frame->refs), 2); /* still cached */
    broker_pub_unref(p);
    assert_int_equal(atomic_load(&e0.frame->refs), 1); /* the publication dropped its ref */
    assert_int_equal(atomic_load(&e3.frame->refs), 1);
    rt_shared_unref(e0.frame);
    rt_shared_unref(e3.frame);
}

static void test_unencodable_remembered(void **state)
{
    broker_pub_fields_t f = {.channel = RT_STR("c")};
    broker_pub_t *p = broker_pub_new(&f);
    enc_t none = {.frame = NULL};
    assert_null(broker_pub_frame_get(p, 1, encode_prepared, &none));
    assert_null(broker_pub_frame_get(p, 1, encode_prepared, &none));
    assert_int_equal(atomic_load(&none.calls), 1);
    assert_null(broker_pub_frame(p, 1));
    broker_pub_unref(p); /* the mark is not a frame: nothing to unref */
}

#define RACERS 8

typedef struct race {
    broker_pub_t *pub;
    pthread_barrier_t *barrier;
    enc_t *enc;
    rt_shared_t *got;
} race_t;

/* A slow encoder widens the window in which the other racers find the slot claimed. */
static rt_shared_t *encode_slowly(const broker_pub_t *p, int slot, void *ud)
{
    enc_t *e = ud;
    atomic_fetch_add(&e->calls, 1);
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
    return rt_shared_copy("x", 1);
}

static void *racer(void *arg)
{
    race_t *r = arg;
    pthread_barrier_wait(r->barrier);
    r->got = broker_pub_frame_get(r->pub, 2, encode_slowly, r->enc);
    broker_pub_unref(r->pub);
    return NULL;
}

static void test_frame_encoded_once_under_race(void **state)
{
    for (int round = 0; round < 50; round++) {
        broker_pub_fields_t f = {.channel = RT_STR("c")};
        broker_pub_t *p = broker_pub_new(&f);
        enc_t enc = {0};
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, RACERS);
        pthread_t th[RACERS];
        race_t r[RACERS];
        for (int i = 0; i < RACERS; i++) {
            r[i] = (race_t){broker_pub_ref(p), &barrier, &enc, NULL};
            assert_int_equal(pthread_create(&th[i], NULL, racer, &r[i]), 0);
        }
        for (int i = 0; i < RACERS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);
        assert_int_equal(atomic_load(&enc.calls), 1);
        rt_shared_t *winner = broker_pub_frame(p, 2);
        assert_non_null(winner);
        for (int i = 0; i < RACERS; i++)
            assert_ptr_equal(r[i].got, winner);
        assert_int_equal(atomic_load(&winner->refs), 1);
        assert_int_equal(atomic_load(&p->refs), 1);
        broker_pub_unref(p);
    }
}

int run_pub(void); /* called by the generated unit_main.c */
int run_pub(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_copies_everything),
        cmocka_unit_test(test_new_minimal),
        cmocka_unit_test(test_refcount_frees_frames),
        cmocka_unit_test(test_unencodable_remembered),
        cmocka_unit_test(test_frame_encoded_once_under_race),
    };
    return cmocka_run_group_tests_name("broker_pub", tests, NULL, NULL);
}
