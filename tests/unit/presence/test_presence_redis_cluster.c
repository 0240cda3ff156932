/* Redis presence on a 3-master Redis Cluster (tests/unit/rds/rds_cluster_fixture.h): add,
 * get, stats and remove through the slot router, tagged keys on the master owning the
 * channel's slot, and two instances (two nodes) seeing each other's entries. Skipped when
 * redis-server/redis-cli are missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "broker/rds.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/base/time.h"
#include "presence/presence_redis.h"
#include "tests/unit/rds/rds_cluster_fixture.h"

typedef struct res {
    int calls;
    int status;
    size_t n;
    char clients[8][32];
    uint32_t num_clients, num_users;
} res_t;

static void tick(struct ev_loop *loop, ev_timer *w, int revents)
{
}

static void run_until(struct ev_loop *loop, const int *calls, int ms)
{
    ev_timer t;
    ev_timer_init(&t, tick, 0.005, 0.005);
    ev_timer_start(loop, &t);
    int64_t deadline = rt_mono_ms() + ms;
    while (*calls == 0 && rt_mono_ms() < deadline)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
}

static void done_cb(int status, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
}

static void get_cb(int status, const rt_client_info_t *entries, size_t n, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    r->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(r->clients[i], sizeof(r->clients[i]), RT_STR_FMT, RT_STR_ARG(entries[i].client));
}

static void stats_cb(int status, uint32_t num_clients, uint32_t num_users, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    r->num_clients = num_clients;
    r->num_users = num_users;
}

static int saved_level;

static int group_setup(void **state)
{
    saved_level = atomic_load(&rt_log_level_);
    rt_log_set_level(RT_LOG_ERROR);
    if (!rcl_installed())
        return 0;
    rcl_t *c = calloc(1, sizeof(*c));
    if (rcl_start(c) != 0) {
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static int group_teardown(void **state)
{
    rt_log_set_level(saved_level);
    rcl_t *c = *state;
    if (c != NULL) {
        rcl_stop(c);
        free(c);
    }
    return 0;
}

/* Adds info, retrying while the router is still loading the slot table. */
static void add(struct ev_loop *loop, presence_t *p, const char *ch, const char *user,
                const char *client)
{
    rt_client_info_t info = {rt_str_c(user), rt_str_c(client), RT_STR("{}"), RT_STR_NULL};
    int64_t deadline = rt_mono_ms() + 5000;
    for (;;) {
        res_t r = {0};
        int rc = presence_add(p, rt_str_c(ch), &info, done_cb, &r);
        if (rc == 0) {
            assert_int_equal(r.calls, 0); /* never synchronous */
            run_until(loop, &r.calls, 5000);
            assert_int_equal(r.calls, 1);
            assert_int_equal(r.status, 0);
            return;
        }
        assert_int_equal(rc, RT_ECLOSED);
        assert_true(rt_mono_ms() < deadline);
        int never = 0;
        run_until(loop, &never, 20);
    }
}

static res_t get(struct ev_loop *loop, presence_t *p, const char *ch)
{
    res_t r = {0};
    assert_int_equal(presence_get(p, rt_str_c(ch), get_cb, &r), 0);
    run_until(loop, &r.calls, 5000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    return r;
}

static bool has_client(const res_t *r, const char *client)
{
    for (size_t i = 0; i < r->n && i < 8; i++) {
        if (strcmp(r->clients[i], client) == 0)
            return true;
    }
    return false;
}

static void test_presence_on_cluster(void **state)
{
    rcl_t *c = *state;
    if (c == NULL)
        skip();
    rcl_flush(c);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char url[256];
    rcl_url(c, url, sizeof(url));
    rds_addr_t a;
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(rds_addr_parse(url, &a, &err), 0);
    rt_buf_cleanup(&err);
    presence_redis_opts_t opts = {.prefix = "rotor", .ttl_ms = 60000};
    presence_t *p1 = presence_redis_new(loop, &a, 1, &opts);
    presence_t *p2 = presence_redis_new(loop, &a, 1, &opts);
    rds_addr_cleanup(&a);

    const char *chans[] = {"room", "chat:1", "news", "user#42", "a", "b"};
    int masters[RCL_NODES] = {0};
    for (size_t i = 0; i < sizeof(chans) / sizeof(chans[0]); i++) {
        const char *ch = chans[i];
        add(loop, p1, ch, "u1", "c1");
        add(loop, p2, ch, "u2", "c2");
        add(loop, p2, ch, "u2", "c3");
        res_t r = get(loop, p1, ch);
        assert_int_equal(r.n, 3);
        assert_true(has_client(&r, "c1") && has_client(&r, "c2") && has_client(&r, "c3"));

        res_t s = {0};
        assert_int_equal(presence_stats(p2, rt_str_c(ch), stats_cb, &s), 0);
        run_until(loop, &s.calls, 5000);
        assert_int_equal(s.status, 0);
        assert_int_equal(s.num_clients, 3);
        assert_int_equal(s.num_users, 2);

        /* Both keys carry the {channel} tag and live on the slot's master. */
        int port = rcl_slot_port(c, rds_key_slot(rt_str_c(ch)));
        redisReply *h = rcl_cmd(port, "HLEN rotor.presence.data.{%s}", ch);
        redisReply *z = rcl_cmd(port, "ZCARD rotor.presence.expire.{%s}", ch);
        assert_non_null(h);
        assert_non_null(z);
        assert_int_equal(h->integer, 3);
        assert_int_equal(z->integer, 3);
        freeReplyObject(h);
        freeReplyObject(z);
        for (int k = 0; k < RCL_NODES; k++)
            masters[k] += c->port[k] == port;

        res_t d = {0};
        assert_int_equal(presence_remove(p1, rt_str_c(ch), RT_STR("c2"), RT_STR("u2"), done_cb, &d),
                         0);
        run_until(loop, &d.calls, 5000);
        assert_int_equal(d.status, 0);
        r = get(loop, p2, ch);
        assert_int_equal(r.n, 2);
        assert_false(has_client(&r, "c2"));
    }
    int used = 0;
    for (int k = 0; k < RCL_NODES; k++)
        used += masters[k] > 0;
    assert_true(used >= 2);

    presence_destroy(p1);
    presence_destroy(p2);
    ev_loop_destroy(loop);
}

/* The reply of a command on port as an integer (a bulk string is parsed), -1 for nil. */
static long long cmd_int(int port, const char *fmt, const char *ch, const char *field)
{
    redisReply *r = rcl_cmd(port, fmt, ch, field);
    assert_non_null(r);
    long long v = -1;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    else
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    return v;
}

/* User mapping on a cluster: all four keys carry the {channel} tag (§3.3), so the scripts
 * run in the channel's slot; counts follow adds and removes. */
static void test_user_mapping_on_cluster(void **state)
{
    rcl_t *c = *state;
    if (c == NULL)
        skip();
    rcl_flush(c);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char url[256];
    rcl_url(c, url, sizeof(url));
    rds_addr_t a;
    assert_int_equal(rds_addr_parse(url, &a, NULL), 0);
    presence_redis_opts_t opts = {.prefix = "rotor", .user_mapping = true};
    presence_t *p = presence_redis_new(loop, &a, 1, &opts);
    rds_addr_cleanup(&a);

    const char *chans[] = {"room", "chat:1", "news"};
    for (size_t i = 0; i < sizeof(chans) / sizeof(chans[0]); i++) {
        const char *ch = chans[i];
        add(loop, p, ch, "u1", "c1");
        add(loop, p, ch, "u1", "c2");
        add(loop, p, ch, "u2", "c3");
        res_t s = {0};
        assert_int_equal(presence_stats(p, rt_str_c(ch), stats_cb, &s), 0);
        run_until(loop, &s.calls, 5000);
        assert_int_equal(s.status, 0);
        assert_int_equal(s.num_clients, 3);
        assert_int_equal(s.num_users, 2);

        int port = rcl_slot_port(c, rds_key_slot(rt_str_c(ch)));
        assert_int_equal(cmd_int(port, "HGET rotor.presence.user.clients.{%s} %s", ch, "u1"), 2);
        assert_int_equal(cmd_int(port, "HGET rotor.presence.user.clients.{%s} %s", ch, "u2"), 1);
        assert_int_equal(cmd_int(port, "ZCARD rotor.presence.user.expire.{%s}", ch, NULL), 2);
        assert_true(cmd_int(port, "TTL rotor.presence.user.clients.{%s}", ch, NULL) > 0);

        res_t d = {0};
        assert_int_equal(presence_remove(p, rt_str_c(ch), RT_STR("c1"), RT_STR("u1"), done_cb, &d),
                         0);
        run_until(loop, &d.calls, 5000);
        assert_int_equal(d.status, 0);
        assert_int_equal(cmd_int(port, "HGET rotor.presence.user.clients.{%s} %s", ch, "u1"), 1);
    }
    presence_destroy(p);
    ev_loop_destroy(loop);
}

int run_presence_redis_cluster(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presence_on_cluster),
        cmocka_unit_test(test_user_mapping_on_cluster),
    };
    return cmocka_run_group_tests_name("presence_redis_cluster", tests, group_setup,
                                       group_teardown);
}
