/* The cluster router against a real 3-master Redis Cluster (rds_cluster_fixture.h): CRC16
 * and slot vectors, routing checked with direct commands on the owning master, MOVED from
 * a wrong table entry and from a finished slot migration, ASK during one, tagged script
 * keys, seed failover, cancellation, a cluster detected behind a plain address. Skipped when
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
#include "node/base/log.h"
#include "tests/support/rt_redis.h"
#include "tests/unit/rds/rds_cluster_fixture.h"
#include "tests/unit/rds/rds_test.h"

typedef struct cfix {
    rcl_t *rcl; /* the group's cluster */
    struct ev_loop *loop;
    rds_addr_t addr;
    rds_cluster_t *cl;
} cfix_t;

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

static cfix_t *fix_new(rcl_t *c, const char *url)
{
    cfix_t *f = calloc(1, sizeof(*f));
    f->rcl = c;
    f->loop = ev_loop_new(EVFLAG_AUTO);
    char buf[256];
    if (url == NULL) {
        rcl_url(c, buf, sizeof(buf));
        url = buf;
    }
    rds_test_addr(&f->addr, "%s", url);
    assert_int_equal(f->addr.mode, RDS_MODE_CLUSTER);
    f->cl = rds_cluster_new(f->loop, &f->addr, NULL);
    return f;
}

static void fix_free(cfix_t *f)
{
    rds_cluster_free(f->cl);
    rds_addr_cleanup(&f->addr);
    ev_loop_destroy(f->loop);
    free(f);
}

#define NEED_CLUSTER(c)                                                                            \
    do {                                                                                           \
        if ((c) == NULL)                                                                           \
            skip();                                                                                \
    } while (0)

static cfix_t *ready_fix(void **state)
{
    rcl_t *c = *state;
    cfix_t *f = fix_new(c, NULL);
    RUN_UNTIL(f->loop, rds_cluster_ready(f->cl), 5000);
    assert_true(rds_cluster_ready(f->cl));
    return f;
}

/* Sends argv (NUL-terminated strings) routed by key, runs the loop until the reply. */
static void cmd(cfix_t *f, rds_test_res_t *res, const char *key, int argc, const char **argv)
{
    size_t lens[16];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    memset(res, 0, sizeof(*res));
    assert_int_equal(
        rds_cluster_command(f->cl, rt_str_c(key), rds_test_on_reply, res, argc, argv, lens), 0);
    assert_int_equal(res->calls, 0); /* never synchronous */
    RUN_UNTIL(f->loop, res->calls > 0, 5000);
    assert_int_equal(res->calls, 1);
}

static char *direct_get(int port, const char *key)
{
    redisReply *r = rcl_cmd(port, "GET %s", key);
    assert_non_null(r);
    char *out = strdup(r->type == REDIS_REPLY_STRING  ? r->str
                       : r->type == REDIS_REPLY_ERROR ? "ERR"
                                                      : "nil");
    freeReplyObject(r);
    return out;
}

static void node_id(int port, char *out, size_t n)
{
    redisReply *r = rcl_cmd(port, "CLUSTER MYID");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(out, n, "%s", r->str);
    freeReplyObject(r);
}

/* ---- tests ---- */

static void test_crc16_vectors(void **state)
{
    assert_int_equal(rds_crc16("123456789", 9), 0x31C3);
    assert_int_equal(rds_crc16("", 0), 0);
    assert_int_equal(rds_key_slot(RT_STR("foo")), 12182);
    assert_int_equal(rds_key_slot(RT_STR("{user1000}.following")),
                     rds_key_slot(RT_STR("{user1000}.followers")));
    assert_int_equal(rds_key_slot(RT_STR("foo{bar}{zap}")), rds_key_slot(RT_STR("bar")));
    assert_int_equal(rds_key_slot(RT_STR("foo{}{bar}")), rds_crc16("foo{}{bar}", 10) & 16383);
    assert_int_equal(rds_key_slot(RT_STR("foo{{bar}}zap")), rds_key_slot(RT_STR("{bar")));
    assert_int_equal(rds_key_slot(RT_STR("{")), rds_crc16("{", 1) & 16383);
    assert_int_equal(rds_key_slot(RT_STR("rotor.stream.{chat:1}")),
                     rds_key_slot(RT_STR("rotor.result.{chat:1}.key")));

    rcl_t *c = *state;
    NEED_CLUSTER(c);
    /* The server's own CLUSTER KEYSLOT agrees on keys with and without tags. */
    const char *keys[] = {"a",           "news",     "{chat}x", "x{chat}",          "x{}y",
                          "x{{y}}",      "}{a}",     "{a}}",    "rotor.client.{c}", "user#42",
                          "{\xff\x01}z", "\x80\x81", "{}{",     "123456789"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        redisReply *r = rcl_cmd(c->port[0], "CLUSTER KEYSLOT %b", keys[i], strlen(keys[i]));
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(rds_key_slot(rt_str_c(keys[i])), r->integer);
        freeReplyObject(r);
    }
}

static void test_routing(void **state)
{
    NEED_CLUSTER(*state);
    cfix_t *f = ready_fix(state);
    rcl_flush(f->rcl);
    int seen[RCL_NODES] = {0};
    for (int i = 0; i < 30; i++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "route:%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        rds_test_res_t res;
        cmd(f, &res, key, 3, (const char *[]){"SET", key, val});
        assert_int_equal(res.status, 0);
        assert_string_equal(res.str, "OK");

        unsigned slot = rds_key_slot(rt_str_c(key));
        int port = rcl_slot_port(f->rcl, slot);
        char name[64];
        snprintf(name, sizeof(name), "127.0.0.1:%d", port);
        assert_string_equal(rds_cluster__slot_node(f->cl, slot), name);
        char *got = direct_get(port, key);
        assert_string_equal(got, val);
        free(got);
        for (int k = 0; k < RCL_NODES; k++)
            seen[k] += f->rcl->port[k] == port;
    }
    /* 30 keys land on every master of an evenly split cluster. */
    for (int k = 0; k < RCL_NODES; k++)
        assert_true(seen[k] > 0);
    rds_cluster_stats_t st;
    rds_cluster_stats(f->cl, &st);
    assert_int_equal(st.moved, 0);
    assert_true(st.refreshes >= 1);
    fix_free(f);
}

static void test_moved_from_wrong_entry(void **state)
{
    NEED_CLUSTER(*state);
    cfix_t *f = ready_fix(state);
    const char *key = "moved:key";
    unsigned slot = rds_key_slot(rt_str_c(key));
    int right = rcl_slot_port(f->rcl, slot);
    int wrong = f->rcl->port[0] == right ? f->rcl->port[1] : f->rcl->port[0];
    rds_cluster__set_slot(f->cl, slot, "127.0.0.1", wrong);

    rds_test_res_t res;
    cmd(f, &res, key, 3, (const char *[]){"SET", key, "after-moved"});
    assert_int_equal(res.status, 0);
    assert_string_equal(res.str, "OK");
    rds_cluster_stats_t st;
    rds_cluster_stats(f->cl, &st);
    assert_int_equal(st.moved, 1);
    char name[64];
    snprintf(name, sizeof(name), "127.0.0.1:%d", right);
    assert_string_equal(rds_cluster__slot_node(f->cl, slot), name);
    char *got = direct_get(right, key);
    assert_string_equal(got, "after-moved");
    free(got);

    /* The scheduled full refresh comes and keeps the table right. */
    uint64_t before = st.refreshes;
    RUN_UNTIL(f->loop, (rds_cluster_stats(f->cl, &st), st.refreshes > before), 3000);
    assert_true(st.refreshes > before);
    assert_string_equal(rds_cluster__slot_node(f->cl, slot), name);
    assert_true(rds_cluster_ready(f->cl));
    fix_free(f);
}

typedef struct eval_res {
    int calls;
    int status;
    long long n[3];
    size_t elements;
} eval_res_t;

static void on_eval(int status, const redisReply *r, void *ud)
{
    eval_res_t *e = ud;
    e->calls++;
    e->status = status;
    if (status == 0 && r->type == REDIS_REPLY_ARRAY) {
        e->elements = r->elements;
        for (size_t i = 0; i < r->elements && i < 3; i++)
            e->n[i] = r->element[i]->integer;
    }
}

static const char touch_src[] = "redis.call('set', KEYS[1], ARGV[1])\n"
                                "redis.call('hset', KEYS[2], 'f', ARGV[1])\n"
                                "redis.call('set', KEYS[3], ARGV[1])\n"
                                "return {redis.call('exists', KEYS[1]), redis.call('hlen', "
                                "KEYS[2]), redis.call('exists', KEYS[3])}\n";

static void eval_touch(cfix_t *f, const rds_script_t *s, const char *ch, eval_res_t *e)
{
    char k1[64], k2[64], k3[64];
    snprintf(k1, sizeof(k1), "rotor.stream.{%s}", ch);
    snprintf(k2, sizeof(k2), "rotor.stream.meta.{%s}", ch);
    snprintf(k3, sizeof(k3), "rotor.result.{%s}.idem", ch);
    const char *argv[4] = {k1, k2, k3, ch};
    size_t lens[4] = {strlen(k1), strlen(k2), strlen(k3), strlen(ch)};
    memset(e, 0, sizeof(*e));
    assert_int_equal(rds_cluster_eval(f->cl, s, 3, 4, argv, lens, on_eval, e), 0);
    assert_int_equal(e->calls, 0);
    RUN_UNTIL(f->loop, e->calls > 0, 5000);
    assert_int_equal(e->calls, 1);
}

static void test_scripts_tagged_keys(void **state)
{
    NEED_CLUSTER(*state);
    cfix_t *f = ready_fix(state);
    rcl_flush(f->rcl);
    freeReplyObject(rcl_cmd(f->rcl->port[0], "SCRIPT FLUSH"));
    rds_script_t s;
    rds_script_init(&s, "touch", touch_src);
    for (int i = 0; i < 12; i++) {
        char ch[32];
        snprintf(ch, sizeof(ch), "chat:%d", i);
        eval_res_t e;
        eval_touch(f, &s, ch, &e); /* the first per master also goes through NOSCRIPT */
        assert_int_equal(e.status, 0);
        assert_int_equal(e.elements, 3);
        assert_int_equal(e.n[0], 1);
        assert_int_equal(e.n[1], 1);
        assert_int_equal(e.n[2], 1);
        char k1[64];
        snprintf(k1, sizeof(k1), "rotor.stream.{%s}", ch);
        int port = rcl_slot_port(f->rcl, rds_key_slot(rt_str_c(ch)));
        char *got = direct_get(port, k1);
        assert_string_equal(got, ch);
        free(got);
    }
    /* Untagged keys of one call in different slots: the server refuses, the caller hears. */
    const char *argv[4] = {"untagged:a", "untagged:b", "untagged:c", "x"};
    size_t lens[4] = {10, 10, 10, 1};
    eval_res_t e = {0};
    assert_int_equal(rds_cluster_eval(f->cl, &s, 3, 4, argv, lens, on_eval, &e), 0);
    RUN_UNTIL(f->loop, e.calls > 0, 5000);
    assert_int_equal(e.calls, 1);
    assert_int_equal(e.status, RT_EREDIS);
    fix_free(f);
}

static void set_slot_all(const rcl_t *c, unsigned slot, const char *id)
{
    for (int i = 0; i < RCL_NODES; i++)
        freeReplyObject(rcl_cmd(c->port[i], "CLUSTER SETSLOT %u NODE %s", slot, id));
}

/* A live slot migration: ASK while it runs, MOVED once it is done. */
static void test_migration_ask_then_moved(void **state)
{
    NEED_CLUSTER(*state);
    cfix_t *f = ready_fix(state);
    rcl_flush(f->rcl);
    const char *ch = "migrating";
    char key[64];
    snprintf(key, sizeof(key), "k.{%s}", ch);
    unsigned slot = rds_key_slot(rt_str_c(key));
    int src = rcl_slot_port(f->rcl, slot);
    int dst = f->rcl->port[0] == src ? f->rcl->port[1] : f->rcl->port[0];
    char src_id[64], dst_id[64];
    node_id(src, src_id, sizeof(src_id));
    node_id(dst, dst_id, sizeof(dst_id));
    freeReplyObject(rcl_cmd(dst, "CLUSTER SETSLOT %u IMPORTING %s", slot, src_id));
    freeReplyObject(rcl_cmd(src, "CLUSTER SETSLOT %u MIGRATING %s", slot, dst_id));

    /* The key is not on the source: it answers ASK, and the command runs on dst. */
    rds_test_res_t res;
    cmd(f, &res, key, 3, (const char *[]){"SET", key, "asked"});
    assert_int_equal(res.status, 0);
    assert_string_equal(res.str, "OK");
    rds_cluster_stats_t st;
    rds_cluster_stats(f->cl, &st);
    assert_int_equal(st.asked, 1);
    /* ASK is one-off: the table still names the source. */
    char name[64];
    snprintf(name, sizeof(name), "127.0.0.1:%d", src);
    assert_string_equal(rds_cluster__slot_node(f->cl, slot), name);

    /* A script through ASK goes out as EVAL (a NOSCRIPT retry would lose ASKING). One key:
     * an importing node answers TRYAGAIN to several keys it does not all have yet. */
    freeReplyObject(rcl_cmd(dst, "SCRIPT FLUSH"));
    rds_script_t s;
    rds_script_init(&s, "incr", "return {redis.call('incr', KEYS[1])}");
    char ikey[64];
    snprintf(ikey, sizeof(ikey), "n.{%s}", ch);
    eval_res_t e = {0};
    const char *eargv[1] = {ikey};
    size_t elens[1] = {strlen(ikey)};
    assert_int_equal(rds_cluster_eval(f->cl, &s, 1, 1, eargv, elens, on_eval, &e), 0);
    RUN_UNTIL(f->loop, e.calls > 0, 5000);
    assert_int_equal(e.status, 0);
    assert_int_equal(e.n[0], 1);
    rds_cluster_stats(f->cl, &st);
    assert_int_equal(st.asked, 2);

    set_slot_all(f->rcl, slot, dst_id);
    uint64_t moved = st.moved;
    cmd(f, &res, key, 2, (const char *[]){"GET", key});
    assert_int_equal(res.status, 0);
    assert_string_equal(res.str, "asked");
    rds_cluster_stats(f->cl, &st);
    assert_int_equal(st.moved, moved + 1);
    snprintf(name, sizeof(name), "127.0.0.1:%d", dst);
    assert_string_equal(rds_cluster__slot_node(f->cl, slot), name);
    uint64_t before = st.refreshes;
    RUN_UNTIL(f->loop, (rds_cluster_stats(f->cl, &st), st.refreshes > before), 3000);
    assert_string_equal(rds_cluster__slot_node(f->cl, slot), name);

    /* Give the slot back so later tests see the original layout. */
    node_id(src, src_id, sizeof(src_id));
    freeReplyObject(rcl_cmd(dst, "DEL %s", key));
    freeReplyObject(rcl_cmd(dst, "DEL %s", ikey));
    set_slot_all(f->rcl, slot, src_id);
    fix_free(f);
}

static void test_not_ready_fails_fast(void **state)
{
    NEED_CLUSTER(*state);
    cfix_t *f = fix_new(*state, NULL);
    assert_false(rds_cluster_ready(f->cl));
    rds_test_res_t res = {0};
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    assert_int_equal(
        rds_cluster_command(f->cl, RT_STR("k"), rds_test_on_reply, &res, 1, argv, lens),
        RT_ECLOSED);
    rds_script_t s;
    rds_script_init(&s, "touch", touch_src);
    eval_res_t e = {0};
    assert_int_equal(rds_cluster_eval(f->cl, &s, 0, 0, NULL, NULL, on_eval, &e), RT_ECLOSED);
    RUN_UNTIL(f->loop, rds_cluster_ready(f->cl), 5000);
    assert_int_equal(res.calls, 0);
    assert_int_equal(e.calls, 0);
    /* Nodes known: the three masters, then the three seeds. */
    assert_int_equal(rds_cluster_node_count(f->cl), 6);
    rds_addr_t a;
    rds_cluster_node_addr(f->cl, 7, &a);
    assert_int_equal(a.mode, RDS_MODE_STANDALONE);
    assert_string_equal(a.host, "127.0.0.1");
    rds_addr_cleanup(&a);
    fix_free(f);
}

static void test_free_cancels(void **state)
{
    NEED_CLUSTER(*state);
    cfix_t *f = ready_fix(state);
    rds_test_res_t res[4];
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof(key), "cancel:%d", i);
        const char *argv[2] = {"GET", key};
        size_t lens[2] = {3, strlen(key)};
        memset(&res[i], 0, sizeof(res[i]));
        assert_int_equal(
            rds_cluster_command(f->cl, rt_str_c(key), rds_test_on_reply, &res[i], 2, argv, lens),
            0);
    }
    rds_cluster_free(f->cl);
    f->cl = NULL;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(res[i].calls, 1);
        assert_int_equal(res[i].status, RT_ECANCELED);
    }
    fix_free(f);
}

static void test_dead_first_seed(void **state)
{
    NEED_CLUSTER(*state);
    rcl_t *c = *state;
    char url[256];
    snprintf(url, sizeof(url),
             "redis+cluster://127.0.0.1:%d?addr=127.0.0.1:%d&connect_timeout=200ms",
             rcl_free_port(), c->port[2]);
    cfix_t *f = fix_new(c, url);
    RUN_UNTIL(f->loop, rds_cluster_ready(f->cl), 5000);
    assert_true(rds_cluster_ready(f->cl));
    rds_test_res_t res;
    cmd(f, &res, "seed:key", 3, (const char *[]){"SET", "seed:key", "1"});
    assert_int_equal(res.status, 0);
    fix_free(f);
}

static void test_router(void **state)
{
    NEED_CLUSTER(*state);
    rcl_t *c = *state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char url[256];
    rcl_url(c, url, sizeof(url));
    rds_addr_t ca, sa;
    rds_test_addr(&ca, "%s", url);
    /* A cluster node spoken to as a standalone server: fine for keys it owns. */
    rds_test_addr(&sa, "127.0.0.1:%d", c->port[0]);
    rds_router_t *rc = rds_router_new(loop, &ca, NULL);
    rds_router_t *rs = rds_router_new(loop, &sa, NULL);
    assert_true(rds_router_is_cluster(rc));
    assert_false(rds_router_is_cluster(rs));
    RUN_UNTIL(loop, rds_router_ready(rc) && rds_router_ready(rs), 5000);
    assert_true(rds_router_ready(rc) && rds_router_ready(rs));

    rds_test_res_t r1 = {0}, r2 = {0};
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    assert_int_equal(rds_router_command(rc, RT_STR("x"), rds_test_on_reply, &r1, 1, argv, lens), 0);
    assert_int_equal(rds_router_command(rs, RT_STR("x"), rds_test_on_reply, &r2, 1, argv, lens), 0);
    RUN_UNTIL(loop, r1.calls && r2.calls, 5000);
    assert_string_equal(r1.str, "PONG");
    assert_string_equal(r2.str, "PONG");

    rds_addr_t p;
    rds_router_pubsub_addr(rs, 3, &p);
    assert_int_equal(p.port, c->port[0]);
    rds_addr_cleanup(&p);
    rds_router_pubsub_addr(rc, 0, &p);
    assert_int_equal(p.mode, RDS_MODE_STANDALONE);
    rds_addr_cleanup(&p);

    rds_router_free(rc);
    rds_router_free(rs);
    rds_addr_cleanup(&ca);
    rds_addr_cleanup(&sa);
    ev_loop_destroy(loop);
}

/* SERVER.md §3.2: a plain host:port of one cluster member is detected as a cluster and
 * seeds a router that reaches every master; a standalone server and a dead port stay as
 * they were. */
static void test_detect_behind_plain_address(void **state)
{
    NEED_CLUSTER(*state);
    rcl_t *c = *state;
    rcl_flush(c);
    rds_addr_t a;
    rds_test_addr(&a, "127.0.0.1:%d", c->port[1]);
    assert_int_equal(a.mode, RDS_MODE_STANDALONE);
    assert_true(rds_addr_detect_cluster(&a));
    assert_int_equal(a.mode, RDS_MODE_CLUSTER);
    assert_int_equal(a.nseeds, 1);
    char seed[64];
    snprintf(seed, sizeof(seed), "127.0.0.1:%d", c->port[1]);
    assert_string_equal(a.seeds[0], seed);

    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    rds_router_t *r = rds_router_new(loop, &a, NULL);
    assert_true(rds_router_is_cluster(r));
    RUN_UNTIL(loop, rds_router_ready(r), 5000);
    assert_true(rds_router_ready(r));
    assert_int_equal(rds_router_master_count(r), RCL_NODES);
    /* Keys owned by every master, each written through the router without a redirection
     * (a single-server client on port[1] would get MOVED for two thirds of them). */
    int seen[RCL_NODES] = {0};
    for (int i = 0; i < 30; i++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "detect:%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        const char *argv[3] = {"SET", key, val};
        size_t lens[3] = {3, strlen(key), strlen(val)};
        rds_test_res_t res = {0};
        assert_int_equal(
            rds_router_command(r, rt_str_c(key), rds_test_on_reply, &res, 3, argv, lens), 0);
        RUN_UNTIL(loop, res.calls > 0, 5000);
        assert_int_equal(res.status, 0);
        assert_string_equal(res.str, "OK");
        int port = rcl_slot_port(c, rds_key_slot(rt_str_c(key)));
        char *got = direct_get(port, key);
        assert_string_equal(got, val);
        free(got);
        for (int k = 0; k < RCL_NODES; k++)
            seen[k] += c->port[k] == port;
    }
    for (int k = 0; k < RCL_NODES; k++)
        assert_true(seen[k] > 0);
    rds_router_free(r);
    ev_loop_destroy(loop);
    rds_addr_cleanup(&a);

    /* A standalone server answers cluster_enabled:0: nothing changes. */
    rt_redis_t plain;
    assert_int_equal(rt_redis_start(&plain, NULL), 0);
    rds_test_addr(&a, "redis://127.0.0.1:%d/2", plain.port);
    assert_false(rds_addr_detect_cluster(&a));
    assert_int_equal(a.mode, RDS_MODE_STANDALONE);
    assert_int_equal(a.nseeds, 0);
    assert_int_equal(a.db, 2);
    rds_addr_cleanup(&a);
    rt_redis_stop(&plain);

    /* Nobody listening: given up after the connect timeout, still standalone. */
    int dead = rcl_free_port();
    rds_test_addr(&a, "redis://127.0.0.1:%d?connect_timeout=300ms", dead);
    int64_t t0 = rt_mono_ms();
    assert_false(rds_addr_detect_cluster(&a));
    int64_t took = rt_mono_ms() - t0;
    assert_true(took >= 250 && took < 1500);
    assert_int_equal(a.mode, RDS_MODE_STANDALONE);
    rds_addr_cleanup(&a);
}

int run_rds_cluster(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_vectors),
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_moved_from_wrong_entry),
        cmocka_unit_test(test_scripts_tagged_keys),
        cmocka_unit_test(test_migration_ask_then_moved),
        cmocka_unit_test(test_not_ready_fails_fast),
        cmocka_unit_test(test_free_cancels),
        cmocka_unit_test(test_dead_first_seed),
        cmocka_unit_test(test_router),
        cmocka_unit_test(test_detect_behind_plain_address),
    };
    return cmocka_run_group_tests_name("rds_cluster", tests, group_setup, group_teardown);
}
