#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "node/base/err.h"
#include "presence/presence.h"

#define MAXREC 16

typedef struct res {
    int calls;
    int status;
    size_t n;
    char entries[MAXREC][80]; /* "user|client|conn_info|chan_info", sorted */
    uint32_t clients, users;
} res_t;

typedef struct fix {
    struct ev_loop *loop;
    presence_t *p;
} fix_t;

static int setup_ttl(void **state, int64_t ttl_ms)
{
    fix_t *f = calloc(1, sizeof(*f));
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->p = presence_mem_new(f->loop, ttl_ms);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_ttl(state, 0);
}

static int setup_short_ttl(void **state)
{
    return setup_ttl(state, 200);
}

static int teardown(void **state)
{
    fix_t *f = *state;
    presence_destroy(f->p);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static void run(fix_t *f)
{
    ev_run(f->loop, 0);
}

static void on_wait(struct ev_loop *loop, ev_timer *w, int revents)
{
}

static void wait_ms(fix_t *f, int ms)
{
    ev_timer t;
    ev_timer_init(&t, on_wait, ms / 1000.0, 0.);
    ev_timer_start(f->loop, &t);
    ev_run(f->loop, 0);
}

static void done_cb(int status, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void get_cb(int status, const rt_client_info_t *entries, size_t n, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    r->n = n;
    for (size_t i = 0; i < n && i < MAXREC; i++) {
        const rt_client_info_t *e = &entries[i];
        snprintf(r->entries[i], sizeof(r->entries[i]),
                 RT_STR_FMT "|" RT_STR_FMT "|" RT_STR_FMT "|" RT_STR_FMT, RT_STR_ARG(e->user),
                 RT_STR_ARG(e->client), RT_STR_ARG(e->conn_info), RT_STR_ARG(e->chan_info));
    }
    qsort(r->entries, n < MAXREC ? n : MAXREC, sizeof(r->entries[0]), cmp_entry);
}

static void stats_cb(int status, uint32_t clients, uint32_t users, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    r->clients = clients;
    r->users = users;
}

static rt_client_info_t info_of(const char *user, const char *client)
{
    return (rt_client_info_t){rt_str_c(user), rt_str_c(client), RT_STR_NULL, RT_STR_NULL};
}

static void add(fix_t *f, const char *ch, const char *user, const char *client)
{
    rt_client_info_t info = info_of(user, client);
    res_t r = {0};
    assert_int_equal(presence_add(f->p, rt_str_c(ch), &info, done_cb, &r), 0);
    assert_int_equal(r.calls, 0);
    run(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
}

static void remove_client(fix_t *f, const char *ch, const char *client)
{
    res_t r = {0};
    assert_int_equal(presence_remove(f->p, rt_str_c(ch), rt_str_c(client), RT_STR(""), done_cb, &r),
                     0);
    assert_int_equal(r.calls, 0);
    run(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
}

static res_t get(fix_t *f, const char *ch)
{
    res_t r = {0};
    assert_int_equal(presence_get(f->p, rt_str_c(ch), get_cb, &r), 0);
    assert_int_equal(r.calls, 0);
    run(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    return r;
}

static res_t stats(fix_t *f, const char *ch)
{
    res_t r = {0};
    assert_int_equal(presence_stats(f->p, rt_str_c(ch), stats_cb, &r), 0);
    assert_int_equal(r.calls, 0);
    run(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    return r;
}

static void test_add_get(void **state)
{
    fix_t *f = *state;
    char user[] = "u1", client[] = "c1", ci[] = "{\"a\":1}", chi[] = "{\"b\":2}";
    rt_client_info_t info = {rt_str_c(user), rt_str_c(client), rt_str_c(ci), rt_str_c(chi)};
    res_t d = {0};
    assert_int_equal(presence_add(f->p, RT_STR("room"), &info, done_cb, &d), 0);
    /* Everything is copied at the call. */
    memset(user, 'x', 2);
    memset(client, 'x', 2);
    memset(ci, 'x', sizeof(ci) - 1);
    memset(chi, 'x', sizeof(chi) - 1);
    run(f);
    assert_int_equal(d.calls, 1);
    add(f, "room", "u2", "c2");
    add(f, "room", "", "c3");
    add(f, "other", "u9", "c9");
    res_t r = get(f, "room");
    assert_int_equal(r.n, 3);
    assert_string_equal(r.entries[0], "u1|c1|{\"a\":1}|{\"b\":2}");
    assert_string_equal(r.entries[1], "u2|c2||");
    assert_string_equal(r.entries[2], "|c3||");
    r = get(f, "other");
    assert_int_equal(r.n, 1);
    r = get(f, "empty");
    assert_int_equal(r.n, 0);
}

static void test_upsert(void **state)
{
    fix_t *f = *state;
    rt_client_info_t info = {RT_STR("u1"), RT_STR("c1"), RT_STR_NULL, RT_STR("old")};
    assert_int_equal(presence_add(f->p, RT_STR("room"), &info, NULL, NULL), 0);
    info.chan_info = RT_STR("new");
    assert_int_equal(presence_add(f->p, RT_STR("room"), &info, NULL, NULL), 0);
    run(f);
    res_t r = get(f, "room");
    assert_int_equal(r.n, 1);
    assert_string_equal(r.entries[0], "u1|c1||new");
    /* The same client under another user moves between user counts. */
    add(f, "room", "u2", "c1");
    r = stats(f, "room");
    assert_int_equal(r.clients, 1);
    assert_int_equal(r.users, 1);
    r = get(f, "room");
    assert_string_equal(r.entries[0], "u2|c1||");
}

static void test_remove(void **state)
{
    fix_t *f = *state;
    add(f, "room", "u1", "c1");
    add(f, "room", "u1", "c2");
    remove_client(f, "room", "c1");
    res_t r = get(f, "room");
    assert_int_equal(r.n, 1);
    assert_string_equal(r.entries[0], "u1|c2||");
    remove_client(f, "room", "nope");
    remove_client(f, "nochan", "c2");
    remove_client(f, "room", "c2");
    r = get(f, "room");
    assert_int_equal(r.n, 0);
    assert_int_equal(presence_mem_channel_count(f->p), 0); /* empty channels are freed */
    r = stats(f, "room");
    assert_int_equal(r.clients, 0);
    assert_int_equal(r.users, 0);
    /* Fire and forget. */
    add(f, "room", "u1", "c1");
    assert_int_equal(presence_remove(f->p, RT_STR("room"), RT_STR("c1"), RT_STR(""), NULL, NULL),
                     0);
    run(f);
    assert_int_equal(get(f, "room").n, 0);
}

static void test_stats(void **state)
{
    fix_t *f = *state;
    add(f, "room", "u1", "c1");
    add(f, "room", "u1", "c2");
    add(f, "room", "u2", "c3");
    add(f, "room", "", "c4");
    add(f, "room", "", "c5");
    res_t r = stats(f, "room");
    assert_int_equal(r.clients, 5);
    assert_int_equal(r.users, 3); /* anonymous counts as one user */
    remove_client(f, "room", "c1");
    r = stats(f, "room");
    assert_int_equal(r.clients, 4);
    assert_int_equal(r.users, 3);
    remove_client(f, "room", "c2");
    r = stats(f, "room");
    assert_int_equal(r.users, 2);
    r = stats(f, "none");
    assert_int_equal(r.clients, 0);
    assert_int_equal(r.users, 0);
}

static void test_ordering_in_one_batch(void **state)
{
    fix_t *f = *state;
    rt_client_info_t a = info_of("u", "a"), b = info_of("u", "b");
    res_t g1 = {0}, g2 = {0}, s = {0};
    assert_int_equal(presence_add(f->p, RT_STR("room"), &a, NULL, NULL), 0);
    assert_int_equal(presence_add(f->p, RT_STR("room"), &b, NULL, NULL), 0);
    assert_int_equal(presence_get(f->p, RT_STR("room"), get_cb, &g1), 0);
    assert_int_equal(presence_remove(f->p, RT_STR("room"), RT_STR("a"), RT_STR(""), NULL, NULL), 0);
    assert_int_equal(presence_get(f->p, RT_STR("room"), get_cb, &g2), 0);
    assert_int_equal(presence_stats(f->p, RT_STR("room"), stats_cb, &s), 0);
    assert_int_equal(g1.calls + g2.calls + s.calls, 0);
    run(f);
    assert_int_equal(g1.n, 2);
    assert_int_equal(g2.n, 1);
    assert_int_equal(s.clients, 1);
}

/* A get callback that removes entries: the borrowed array must stay intact. */
typedef struct remover {
    fix_t *f;
    int calls;
    char clients[4][8];
} remover_t;

static void remover_cb(int status, const rt_client_info_t *entries, size_t n, void *ud)
{
    remover_t *r = ud;
    r->calls++;
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(
            presence_remove(r->f->p, RT_STR("room"), entries[i].client, RT_STR(""), NULL, NULL), 0);
        /* Still readable after the remove call. */
        snprintf(r->clients[i], sizeof(r->clients[i]), RT_STR_FMT, RT_STR_ARG(entries[i].client));
    }
}

static void test_remove_from_get_callback(void **state)
{
    fix_t *f = *state;
    add(f, "room", "u", "a");
    add(f, "room", "u", "b");
    remover_t r = {f, 0, {{0}}};
    assert_int_equal(presence_get(f->p, RT_STR("room"), remover_cb, &r), 0);
    run(f);
    assert_int_equal(r.calls, 1);
    assert_true(strcmp(r.clients[0], r.clients[1]) != 0);
    assert_int_equal(get(f, "room").n, 0);
}

static void test_expiry(void **state)
{
    fix_t *f = *state; /* ttl 200 ms */
    add(f, "room", "u1", "a");
    add(f, "room", "u2", "b");
    wait_ms(f, 120);
    add(f, "room", "u1", "a"); /* refresh a */
    add(f, "room", "u3", "c");
    wait_ms(f, 120); /* b is 240 ms old */
    res_t r = get(f, "room");
    assert_int_equal(r.n, 2);
    assert_string_equal(r.entries[0], "u1|a||");
    assert_string_equal(r.entries[1], "u3|c||");
    r = stats(f, "room");
    assert_int_equal(r.clients, 2);
    assert_int_equal(r.users, 2);
    wait_ms(f, 250);
    r = stats(f, "room");
    assert_int_equal(r.clients, 0);
    assert_int_equal(r.users, 0);
    assert_int_equal(get(f, "room").n, 0);
}

static void test_sweep(void **state)
{
    fix_t *f = *state; /* ttl 200 ms */
    add(f, "room", "u1", "a");
    add(f, "room2", "u1", "a");
    /* Nothing reads; the periodic sweep must drop the entries and channels. Re-adding
     * afterwards proves the state is consistent. */
    assert_int_equal(presence_mem_channel_count(f->p), 2);
    wait_ms(f, 1300);
    assert_int_equal(presence_mem_channel_count(f->p), 0);
    add(f, "room", "u2", "b");
    res_t r = stats(f, "room");
    assert_int_equal(r.clients, 1);
    assert_int_equal(r.users, 1);
    assert_int_equal(get(f, "room2").n, 0);
}

static void test_never_synchronous_and_bad_args(void **state)
{
    fix_t *f = *state;
    rt_client_info_t info = info_of("u", "c");
    res_t a = {0}, g = {0}, s = {0}, rm = {0};
    assert_int_equal(presence_add(f->p, RT_STR("room"), &info, done_cb, &a), 0);
    assert_int_equal(presence_get(f->p, RT_STR("room"), get_cb, &g), 0);
    assert_int_equal(presence_stats(f->p, RT_STR("room"), stats_cb, &s), 0);
    assert_int_equal(presence_remove(f->p, RT_STR("room"), RT_STR("c"), RT_STR(""), done_cb, &rm),
                     0);
    assert_int_equal(a.calls + g.calls + s.calls + rm.calls, 0);
    run(f);
    assert_int_equal(a.calls + g.calls + s.calls + rm.calls, 4);

    rt_client_info_t noclient = info_of("u", "");
    assert_int_equal(presence_add(f->p, RT_STR(""), &info, done_cb, &a), RT_EINVAL);
    assert_int_equal(presence_add(f->p, RT_STR("room"), &noclient, done_cb, &a), RT_EINVAL);
    assert_int_equal(presence_remove(f->p, RT_STR("room"), RT_STR(""), RT_STR(""), done_cb, &a),
                     RT_EINVAL);
    assert_int_equal(presence_get(f->p, RT_STR(""), get_cb, &g), RT_EINVAL);
    assert_int_equal(presence_stats(f->p, RT_STR(""), stats_cb, &s), RT_EINVAL);
    run(f);
    assert_int_equal(a.calls + g.calls + s.calls + rm.calls, 4);
}

static void test_destroy_cancels_pending(void **state)
{
    fix_t *f = *state;
    rt_client_info_t info = info_of("u", "c");
    res_t a = {0}, g = {0}, s = {0}, rm = {0};
    assert_int_equal(presence_add(f->p, RT_STR("room"), &info, done_cb, &a), 0);
    assert_int_equal(presence_add(f->p, RT_STR("room"), &info, NULL, NULL), 0);
    assert_int_equal(presence_get(f->p, RT_STR("room"), get_cb, &g), 0);
    assert_int_equal(presence_stats(f->p, RT_STR("room"), stats_cb, &s), 0);
    assert_int_equal(presence_remove(f->p, RT_STR("room"), RT_STR("c"), RT_STR(""), done_cb, &rm),
                     0);
    presence_destroy(f->p);
    f->p = NULL;
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, RT_ECANCELED);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, RT_ECANCELED);
    assert_int_equal(g.n, 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, RT_ECANCELED);
    assert_int_equal(rm.calls, 1);
    assert_int_equal(rm.status, RT_ECANCELED);
    ev_run(f->loop, 0); /* returns at once: nothing left on the loop */
    assert_int_equal(a.calls + g.calls + s.calls + rm.calls, 4);
}

typedef struct killer {
    fix_t *f;
    int calls;
    int statuses[4];
    int reissue;
} killer_t;

static void killer_cb(int status, void *ud)
{
    killer_t *k = ud;
    k->statuses[k->calls++] = status;
    if (k->calls == 1) {
        presence_destroy(k->f->p);
        k->f->p = NULL;
    }
}

static void reissue_cb(int status, void *ud)
{
    killer_t *k = ud;
    k->statuses[k->calls++] = status;
    rt_client_info_t info = info_of("u", "c");
    k->reissue = presence_add(k->f->p, RT_STR("room"), &info, reissue_cb, k);
}

static void test_destroy_from_callback(void **state)
{
    fix_t *f = *state;
    rt_client_info_t info = info_of("u", "c");
    killer_t k = {f, 0, {0}, 0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(presence_add(f->p, RT_STR("room"), &info, killer_cb, &k), 0);
    run(f);
    assert_int_equal(k.calls, 3);
    assert_int_equal(k.statuses[0], 0);
    assert_int_equal(k.statuses[1], RT_ECANCELED);
    assert_int_equal(k.statuses[2], RT_ECANCELED);

    /* A request from a cancellation callback is refused. */
    f->p = presence_mem_new(f->loop, 0);
    killer_t r = {f, 0, {0}, 0};
    assert_int_equal(presence_add(f->p, RT_STR("room"), &info, reissue_cb, &r), 0);
    presence_destroy(f->p);
    f->p = NULL;
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.statuses[0], RT_ECANCELED);
    assert_int_equal(r.reissue, RT_ECLOSED);
}

int run_presence_mem(void); /* called by the generated unit_main.c */
int run_presence_mem(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ordering_in_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_from_get_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup_short_ttl, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup_short_ttl, teardown),
        cmocka_unit_test_setup_teardown(test_never_synchronous_and_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_cancels_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_from_callback, setup, teardown),
    };
    return cmocka_run_group_tests_name("presence_mem", tests, NULL, NULL);
}
