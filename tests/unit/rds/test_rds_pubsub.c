#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rds_test.h"
#include "tests/support/rt_redis.h"

#define MAX_MSGS 64

typedef struct msg {
    char channel[64];
    char payload[64];
    size_t payload_n;
} msg_t;

typedef struct sub_state {
    int ups;
    int downs;
    bool up;
    bool bad_transition;
    int nmsgs;
    msg_t msgs[MAX_MSGS];
    rds_pubsub_t *free_me; /* freed from inside on_message when set */
} sub_state_t;

static struct ev_loop *loop;

static void on_message(void *ud, rt_str_t channel, rt_str_t payload)
{
    sub_state_t *s = ud;
    if (s->nmsgs < MAX_MSGS) {
        msg_t *m = &s->msgs[s->nmsgs];
        snprintf(m->channel, sizeof(m->channel), RT_STR_FMT, RT_STR_ARG(channel));
        m->payload_n = payload.n < sizeof(m->payload) ? payload.n : sizeof(m->payload);
        memcpy(m->payload, payload.p, m->payload_n);
    }
    s->nmsgs++;
    if (s->free_me != NULL) {
        rds_pubsub_free(s->free_me);
        s->free_me = NULL;
    }
}

static void on_sub_state(void *ud, bool up)
{
    sub_state_t *s = ud;
    if (up == s->up)
        s->bad_transition = true;
    s->up = up;
    if (up)
        s->ups++;
    else
        s->downs++;
}

static int group_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    loop = ev_loop_new(EVFLAG_AUTO);
    return 0;
}

static int group_teardown(void **state)
{
    ev_loop_destroy(loop);
    return 0;
}

typedef struct env {
    rt_redis_t redis;
    rds_client_t *cmd;
    rds_test_state_t cmd_state;
    rds_pubsub_t *ps;
    sub_state_t sub;
} env_t;

static void env_start(env_t *e, const char *query, int64_t probe_ms)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(rt_redis_start(&e->redis, NULL), 0);
    rds_addr_t a;
    rds_test_addr(&a, "redis://127.0.0.1:%d%s", e->redis.port, query ? query : "");
    rds_client_opts_t o;
    rds_client_opts_default(&o);
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 100;
    o.on_state = rds_test_on_state;
    o.ud = &e->cmd_state;
    e->cmd = rds_client_new(loop, &a, &o);
    rds_pubsub_handler_t h = {on_message, on_sub_state, &e->sub};
    e->ps = rds_pubsub_new(loop, &a, &h, probe_ms);
    rds_addr_cleanup(&a);
}

static void env_stop(env_t *e)
{
    rds_pubsub_free(e->ps);
    rds_client_free(e->cmd);
    rt_redis_stop(&e->redis);
}

/* PUBLISH through the command client; returns the receiver count. */
static long long publish(env_t *e, const char *channel, const char *payload, size_t n)
{
    const char *argv[3] = {"PUBLISH", channel, payload};
    size_t lens[3] = {7, strlen(channel), n};
    rds_test_res_t res;
    memset(&res, 0, sizeof(res));
    assert_int_equal(rds_client_command(e->cmd, rds_test_on_reply, &res, 3, argv, lens), 0);
    RUN_UNTIL(loop, res.calls == 1, 2000);
    assert_int_equal(res.status, 0);
    return res.integer;
}

static long long commandstat_calls(env_t *e, const char *cmd)
{
    char info[8192];
    const char *argv[2] = {"INFO", "commandstats"};
    assert_true(rt_redis_cmd(&e->redis, info, sizeof(info), 2, argv) > 0);
    char key[64];
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
    const char *p = strstr(info, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : 0;
}

static bool has_msg(const sub_state_t *s, const char *channel, const char *payload, size_t n)
{
    for (int i = 0; i < s->nmsgs && i < MAX_MSGS; i++) {
        if (strcmp(s->msgs[i].channel, channel) == 0 && s->msgs[i].payload_n == n &&
            memcmp(s->msgs[i].payload, payload, n) == 0)
            return true;
    }
    return false;
}

static void test_subscribe_publish_unsubscribe(void **state)
{
    env_t e;
    env_start(&e, NULL, 1000);
    /* Before up: remembered, reported as not (yet) subscribed. */
    assert_int_equal(rds_pubsub_subscribe(e.ps, RT_STR("a")), RT_ECLOSED);
    assert_int_equal(rds_pubsub_subscribe(e.ps, RT_STR("b")), RT_ECLOSED);
    assert_int_equal(rds_pubsub_count(e.ps), 2);
    assert_false(rds_pubsub_ready(e.ps));
    RUN_UNTIL(loop, e.sub.ups == 1 && e.cmd_state.ups == 1, 3000);
    assert_int_equal(e.sub.ups, 1);
    assert_true(rds_pubsub_ready(e.ps));
    assert_int_equal(rds_pubsub_subscribe(e.ps, RT_STR("c")), 0);
    assert_int_equal(rds_pubsub_subscribe(e.ps, RT_STR("c")), 0);
    assert_int_equal(rds_pubsub_count(e.ps), 3);
    RUN_UNTIL(loop, false, 50);

    assert_int_equal(publish(&e, "a", "one", 3), 1);
    assert_int_equal(publish(&e, "b", "t\0o", 3), 1);
    assert_int_equal(publish(&e, "c", "", 0), 1);
    RUN_UNTIL(loop, e.sub.nmsgs == 3, 2000);
    assert_int_equal(e.sub.nmsgs, 3);
    assert_true(has_msg(&e.sub, "a", "one", 3));
    assert_true(has_msg(&e.sub, "b", "t\0o", 3));
    assert_true(has_msg(&e.sub, "c", "", 0));

    assert_int_equal(rds_pubsub_unsubscribe(e.ps, RT_STR("b")), 0);
    assert_int_equal(rds_pubsub_unsubscribe(e.ps, RT_STR("nope")), 0);
    assert_int_equal(rds_pubsub_count(e.ps), 2);
    /* Dropped and re-added within one iteration: still subscribed. */
    assert_int_equal(rds_pubsub_unsubscribe(e.ps, RT_STR("c")), 0);
    assert_int_equal(rds_pubsub_subscribe(e.ps, RT_STR("c")), 0);
    RUN_UNTIL(loop, false, 50);
    assert_int_equal(publish(&e, "b", "gone", 4), 0);
    assert_int_equal(publish(&e, "c", "again", 5), 1);
    RUN_UNTIL(loop, e.sub.nmsgs == 4, 2000);
    assert_int_equal(e.sub.nmsgs, 4);
    assert_true(has_msg(&e.sub, "c", "again", 5));
    assert_false(has_msg(&e.sub, "b", "gone", 4));
    assert_false(e.sub.bad_transition);
    env_stop(&e);
}

static void test_batching(void **state)
{
    env_t e;
    env_start(&e, NULL, 1000);
    RUN_UNTIL(loop, e.sub.ups == 1 && e.cmd_state.ups == 1, 3000);
    long long before = commandstat_calls(&e, "subscribe");
    char name[32];
    for (int i = 0; i < 2500; i++) {
        snprintf(name, sizeof(name), "ch.%d", i);
        assert_int_equal(rds_pubsub_subscribe(e.ps, rt_str_c(name)), 0);
    }
    RUN_UNTIL(loop, false, 100);
    /* One loop iteration, batches of 1000. */
    assert_int_equal(commandstat_calls(&e, "subscribe") - before, 3);
    assert_int_equal(publish(&e, "ch.0", "x", 1), 1);
    assert_int_equal(publish(&e, "ch.2499", "x", 1), 1);

    long long unsub_before = commandstat_calls(&e, "unsubscribe");
    for (int i = 0; i < 1500; i++) {
        snprintf(name, sizeof(name), "ch.%d", i);
        assert_int_equal(rds_pubsub_unsubscribe(e.ps, rt_str_c(name)), 0);
    }
    RUN_UNTIL(loop, false, 100);
    assert_int_equal(commandstat_calls(&e, "unsubscribe") - unsub_before, 2);
    assert_int_equal(rds_pubsub_count(e.ps), 1000);
    assert_int_equal(publish(&e, "ch.0", "x", 1), 0);
    assert_int_equal(publish(&e, "ch.1500", "x", 1), 1);
    env_stop(&e);
}

static void test_resubscribe_after_restart(void **state)
{
    env_t e;
    env_start(&e, NULL, 1000);
    char name[32];
    for (int i = 0; i < 2100; i++) {
        snprintf(name, sizeof(name), "r.%d", i);
        rds_pubsub_subscribe(e.ps, rt_str_c(name));
    }
    RUN_UNTIL(loop, e.sub.ups == 1 && e.cmd_state.ups == 1, 3000);
    assert_int_equal(e.sub.ups, 1);
    assert_int_equal(publish(&e, "r.7", "before", 6), 1);

    rt_redis_kill(&e.redis);
    RUN_UNTIL(loop, e.sub.downs == 1 && e.cmd_state.downs == 1, 3000);
    assert_int_equal(e.sub.downs, 1);
    assert_false(rds_pubsub_ready(e.ps));
    /* Remembered while down. */
    assert_int_equal(rds_pubsub_subscribe(e.ps, RT_STR("late")), RT_ECLOSED);
    assert_int_equal(rds_pubsub_unsubscribe(e.ps, RT_STR("r.0")), 0);

    assert_int_equal(rt_redis_restart(&e.redis), 0);
    long long before = commandstat_calls(&e, "subscribe");
    RUN_UNTIL(loop, e.sub.ups == 2 && e.cmd_state.ups == 2, 3000);
    assert_int_equal(e.sub.ups, 2);
    assert_int_equal(commandstat_calls(&e, "subscribe") - before, 3);
    e.sub.nmsgs = 0;
    assert_int_equal(publish(&e, "r.2099", "after", 5), 1);
    assert_int_equal(publish(&e, "late", "late", 4), 1);
    assert_int_equal(publish(&e, "r.0", "no", 2), 0);
    RUN_UNTIL(loop, e.sub.nmsgs == 2, 2000);
    assert_true(has_msg(&e.sub, "r.2099", "after", 5));
    assert_true(has_msg(&e.sub, "late", "late", 4));
    assert_false(e.sub.bad_transition);
    env_stop(&e);
}

static void test_probe_detects_paused_server(void **state)
{
    env_t e;
    env_start(&e, "?io_timeout=500ms", 200);
    rds_pubsub_subscribe(e.ps, RT_STR("p"));
    RUN_UNTIL(loop, e.sub.ups == 1, 3000);
    assert_int_equal(e.sub.ups, 1);
    /* Probes keep passing while the server is healthy. */
    RUN_UNTIL(loop, false, 700);
    assert_int_equal(e.sub.downs, 0);
    assert_true(commandstat_calls(&e, "psubscribe") >= 3);

    char out[64];
    const char *pause[4] = {"CLIENT", "PAUSE", "3000", "ALL"};
    assert_true(rt_redis_cmd(&e.redis, out, sizeof(out), 4, pause) > 0);
    assert_string_equal(out, "OK");
    int64_t t0 = rt_mono_ms();
    RUN_UNTIL(loop, e.sub.downs == 1, 2000);
    assert_int_equal(e.sub.downs, 1);
    assert_true(rt_mono_ms() - t0 < 1200);
    RUN_UNTIL(loop, e.sub.ups == 2, 6000);
    assert_int_equal(e.sub.ups, 2);
    RUN_UNTIL(loop, e.cmd_state.up, 3000);
    assert_int_equal(publish(&e, "p", "alive", 5), 1);
    RUN_UNTIL(loop, e.sub.nmsgs == 1, 2000);
    assert_true(has_msg(&e.sub, "p", "alive", 5));
    assert_false(e.sub.bad_transition);
    env_stop(&e);
}

static void test_free_inside_callback(void **state)
{
    env_t e;
    env_start(&e, NULL, 1000);
    rds_pubsub_subscribe(e.ps, RT_STR("x"));
    rds_pubsub_subscribe(e.ps, RT_STR("y"));
    RUN_UNTIL(loop, e.sub.ups == 1 && e.cmd_state.ups == 1, 3000);
    e.sub.free_me = e.ps;
    /* Two messages arrive in one read; the first frees the connection. */
    const char *argv[3] = {"PUBLISH", "x", "1"};
    size_t lens[3] = {7, 1, 1};
    rds_test_res_t r1, r2;
    memset(&r1, 0, sizeof(r1));
    memset(&r2, 0, sizeof(r2));
    assert_int_equal(rds_client_command(e.cmd, rds_test_on_reply, &r1, 3, argv, lens), 0);
    argv[1] = "y";
    assert_int_equal(rds_client_command(e.cmd, rds_test_on_reply, &r2, 3, argv, lens), 0);
    RUN_UNTIL(loop, e.sub.free_me == NULL && r2.calls == 1, 2000);
    RUN_UNTIL(loop, false, 50);
    assert_null(e.sub.free_me);
    assert_int_equal(e.sub.nmsgs, 1);
    e.ps = NULL;
    env_stop(&e);
}

static void test_free_while_connecting(void **state)
{
    env_t e;
    env_start(&e, NULL, 1000);
    rds_pubsub_subscribe(e.ps, RT_STR("x"));
    rds_pubsub_free(e.ps);
    e.ps = NULL;
    RUN_UNTIL(loop, false, 30);
    assert_int_equal(e.sub.ups, 0);
    env_stop(&e);
}

int run_rds_pubsub(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe_publish_unsubscribe),
        cmocka_unit_test(test_batching),
        cmocka_unit_test(test_resubscribe_after_restart),
        cmocka_unit_test(test_probe_detects_paused_server),
        cmocka_unit_test(test_free_inside_callback),
        cmocka_unit_test(test_free_while_connecting),
    };
    return cmocka_run_group_tests_name("rds_pubsub", tests, group_setup, group_teardown);
}
