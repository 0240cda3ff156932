/* node/control.c: MessagePack control messages between nodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/alloc.h"
#include "node/control.h"

int run_control(void);

static void roundtrip(const node_ctl_msg_t *in, node_ctl_msg_t *out, rt_buf_t *b)
{
    rt_buf_reset(b);
    node_ctl_encode(b, in);
    assert_int_equal(node_ctl_decode(b->p, b->len, out), 0);
    assert_int_equal(out->type, in->type);
    assert_string_equal(out->uid, in->uid);
}

static void test_node_info(void **state)
{
    (void)state;
    node_ctl_msg_t m, out;
    rt_buf_t b = RT_BUF_INIT;
    node_ctl_msg_init(&m);
    m.type = NODE_CTL_NODE;
    snprintf(m.uid, sizeof(m.uid), "uid-a");
    snprintf(m.node.uid, sizeof(m.node.uid), "uid-a");
    snprintf(m.node.name, sizeof(m.node.name), "host_8000");
    snprintf(m.node.version, sizeof(m.node.version), "0.1.0 rotor");
    m.node.num_clients = 10;
    m.node.num_users = 7;
    m.node.num_channels = 3;
    m.node.num_subs = 12;
    m.node.uptime_s = 99;
    roundtrip(&m, &out, &b);
    assert_string_equal(out.node.name, "host_8000");
    assert_int_equal(out.node.num_clients, 10);
    assert_int_equal(out.node.num_users, 7);
    assert_int_equal(out.node.num_channels, 3);
    assert_int_equal(out.node.num_subs, 12);
    assert_int_equal(out.node.uptime_s, 99);
    node_ctl_msg_cleanup(&out);
    node_ctl_msg_cleanup(&m);
    rt_buf_cleanup(&b);
}

static void test_command(void **state)
{
    (void)state;
    node_control_t *c = node_control_new(NODE_CONTROL_DISCONNECT);
    rt_free(c->user);
    c->user = rt_strdup("42");
    c->code = 4001;
    rt_free(c->reason);
    c->reason = rt_strdup("bye");
    c->whitelist = rt_calloc(3, sizeof(char *));
    c->whitelist[0] = rt_strdup("c1");
    c->whitelist[1] = rt_strdup("c2");
    rt_buf_append_cstr(&c->info, "{\"a\":1.10}");
    c->override.presence = NODE_JWT_FALSE;
    node_ctl_msg_t m, out;
    rt_buf_t b = RT_BUF_INIT;
    node_ctl_msg_init(&m);
    m.type = NODE_CTL_COMMAND;
    snprintf(m.uid, sizeof(m.uid), "uid-b");
    m.control = c;
    roundtrip(&m, &out, &b);
    assert_non_null(out.control);
    assert_int_equal(out.control->kind, NODE_CONTROL_DISCONNECT);
    assert_string_equal(out.control->user, "42");
    assert_int_equal(out.control->code, 4001);
    assert_string_equal(out.control->reason, "bye");
    assert_string_equal(out.control->whitelist[0], "c1");
    assert_string_equal(out.control->whitelist[1], "c2");
    assert_null(out.control->whitelist[2]);
    assert_int_equal(out.control->info.len, 10);
    assert_memory_equal(out.control->info.p, "{\"a\":1.10}", 10);
    assert_int_equal(out.control->override.presence, NODE_JWT_FALSE);
    assert_int_equal(out.control->override.join_leave, NODE_JWT_UNSET);
    node_control_unref(out.control);
    node_ctl_msg_cleanup(&out);
    node_control_unref(c);
    rt_buf_cleanup(&b);
}

static void test_survey_and_channels(void **state)
{
    (void)state;
    node_survey_result_t r;
    node_survey_result_init(&r);
    node_survey_result_add(&r, &r.channels, RT_STR("news"), 3);
    node_survey_result_add(&r, &r.channels, RT_STR("chat:1"), 1);
    node_ctl_msg_t m, out;
    rt_buf_t b = RT_BUF_INIT;
    node_ctl_msg_init(&m);
    m.type = NODE_CTL_SURVEY_RESP;
    snprintf(m.uid, sizeof(m.uid), "uid-c");
    m.survey_id = 77;
    node_ctl_encode_channels(&m.survey_data, &r.channels);
    roundtrip(&m, &out, &b);
    assert_int_equal(out.survey_id, 77);
    node_survey_result_t merged;
    node_survey_result_init(&merged);
    node_survey_result_add(&merged, &merged.channels, RT_STR("news"), 2);
    assert_int_equal(node_ctl_decode_channels(out.survey_data.p, out.survey_data.len, &merged), 0);
    /* values are stored as count + 1 */
    assert_int_equal((uintptr_t)node_map_get(&merged.channels, RT_STR("news")) - 1, 5);
    assert_int_equal((uintptr_t)node_map_get(&merged.channels, RT_STR("chat:1")) - 1, 1);
    node_survey_result_cleanup(&merged);
    node_ctl_msg_cleanup(&out);
    node_ctl_msg_cleanup(&m);
    node_survey_result_cleanup(&r);
    rt_buf_cleanup(&b);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",                                         /* empty */
        "\x91\x01",                                 /* array, not a map */
        "\x81\xa3uid\x01",                          /* uid not a string */
        "\x81\xa3uid\xa1x",                         /* no body */
        "\x82\xa3uid\xa1x\xa4zzzz\x80",             /* unknown kind */
        "\x82\xa3uid\xa1x\xa4node\x81\xa4name\x05", /* wrong type inside */
        "\x82\xa3uid\xa1x\xaa"
        "disconnect\x81\xa4"
        "code\xd1\xff\xff",     /* negative code */
        "\xdf\xff\xff\xff\xff", /* huge map header, truncated */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        node_ctl_msg_t m;
        assert_int_not_equal(node_ctl_decode((const uint8_t *)bad[i], strlen(bad[i]), &m), 0);
        assert_null(m.control);
        node_ctl_msg_cleanup(&m);
    }
}

int run_control(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_info),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_survey_and_channels),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("control", tests, NULL, NULL);
}
