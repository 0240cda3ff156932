/* Integration tests with the C harness: golden frames, malformed and hostile input against
 * one real rotor process. After every hostile case a fresh, well-behaved client must still
 * connect, subscribe and receive an API publication ("no other client notices").
 *
 * Usage: test_hostile /path/to/rotor */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/b64.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "tests/support/rt_testcli.h"
#include "tests/support/rt_testproc.h"

#define T_MS 2000 /* per-read timeout; failures must not eat the ctest budget */

#define CONFIG                                                                                     \
    "\"client\":{\"token\":{\"hmac_secret_key\":\"secret\"},\"stale_close_delay\":\"1s\"},"        \
    "\"http_api\":{\"key\":\"key\"},\"health\":{\"enabled\":true},\"workers\":2,"                  \
    "\"prometheus\":{\"enabled\":true},"                                                           \
    "\"shutdown\":{\"timeout\":\"3s\"},"                                                           \
    "\"channel\":{\"without_namespace\":{\"allow_subscribe_for_client\":true,"                     \
    "\"allow_publish_for_subscriber\":true}}"

#define API_HDR "X-API-Key: key\r\n"

static const char *g_binary; /* borrowed from argv */
static rt_tp_server_t g_srv; /* the shared rotor process */
static rt_buf_t g_token;     /* HS256 token for user "42", NUL-terminated */
static int g_probe;          /* probe channel sequence */
static bool g_started;       /* group setup started rotor */
static rt_tc_conn_t g_by;    /* bystander: connected across cases, subscribed to "bystander" */
static bool g_by_open;       /* g_by is connected and subscribed */

/* ---- helpers ---- */

static const char *cstr(const rt_buf_t *b)
{
    return b->p ? (const char *)b->p : "";
}

static void expect_line(const rt_buf_t *got, const char *want, const char *what)
{
    if (!rt_str_eq(rt_buf_str(got), rt_str_c(want)))
        fail_msg("%s:\n  want %s\n  got  %.*s", what, want, (int)got->len, cstr(got));
}

static void die_if_dead(const char *where)
{
    char desc[96];
    if (rt_tp_alive(&g_srv))
        return;
    rt_buf_t tail = RT_BUF_INIT;
    rt_tp_log_tail(&g_srv, &tail, 3000);
    fprintf(stderr, "--- rotor log tail ---\n%.*s\n---\n", (int)tail.len, cstr(&tail));
    rt_buf_cleanup(&tail);
    fail_msg("rotor is not running after %s: %s", where,
             rt_tp_describe(&g_srv, desc, sizeof(desc)));
}

static void ws_open(rt_tc_conn_t *c)
{
    int rc = rt_tc_ws_open(c, g_srv.port);
    if (rc != 0)
        fail_msg("WebSocket handshake failed: %s", rt_strerror(rc));
}

/* Opens a WebSocket and connects with the test token; the client id goes to cid. */
static void open_connected(rt_tc_conn_t *c, rt_buf_t *cid)
{
    rt_buf_t line = RT_BUF_INIT;
    ws_open(c);
    int rc = rt_tc_cf_connect(c, 1, cstr(&g_token), &line);
    if (rc != 0)
        fail_msg("connect failed (%s): %s", rt_strerror(rc), cstr(&line));
    if (cid != NULL)
        assert_int_equal(rt_tc_cf_client_id(rt_buf_str(&line), cid), 0);
    rt_buf_cleanup(&line);
}

static void subscribe_plain(rt_tc_conn_t *c, uint32_t id, const char *channel)
{
    rt_buf_t line = RT_BUF_INIT;
    char want[64];
    int rc = rt_tc_cf_subscribe(c, id, channel, &line);
    if (rc != 0)
        fail_msg("subscribe %s failed (%s): %s", channel, rt_strerror(rc), cstr(&line));
    snprintf(want, sizeof(want), "{\"id\":%u,\"subscribe\":{}}", id);
    expect_line(&line, want, "subscribe reply");
    rt_buf_cleanup(&line);
}

static void api_publish_ok(const char *channel, const char *data)
{
    rt_tc_http_resp_t r;
    rt_tc_http_resp_init(&r);
    int rc = rt_tc_api_publish(NULL, g_srv.port, "key", channel, data, &r);
    if (rc != 0 || r.status != 200)
        fail_msg("API publish to %s: rc=%s status=%d body=%.*s", channel, rt_strerror(rc), r.status,
                 (int)r.body.len, cstr(&r.body));
    rt_tc_http_resp_cleanup(&r);
}

/* The value of one /metrics series (name with labels, e.g.
 * centrifugo_client_num_server_disconnects{code="3008"}) on port; 0 when absent. */
static long long metric_value(int port, const char *series)
{
    rt_tc_http_resp_t r;
    long long v = 0;
    rt_tc_http_resp_init(&r);
    int rc = rt_tc_http_once(port, "GET", "/metrics", NULL, NULL, 0, &r);
    if (rc != 0 || r.status != 200)
        fail_msg("GET /metrics: %s status %d", rt_strerror(rc), r.status);
    rt_buf_append_byte(&r.body, 0);
    size_t n = strlen(series);
    for (const char *l = cstr(&r.body); *l; l++) {
        if ((l == cstr(&r.body) || l[-1] == '\n') && strncmp(l, series, n) == 0 && l[n] == ' ') {
            v = strtoll(l + n + 1, NULL, 10);
            break;
        }
    }
    rt_tc_http_resp_cleanup(&r);
    return v;
}

/* The invariant of this file: whatever the previous case did, a new client works, and
 * the bystander connected before it still receives. */
static void check_others(const char *where)
{
    rt_tc_conn_t c;
    rt_buf_t line = RT_BUF_INIT;
    char ch[32], data[32], want[128];

    die_if_dead(where);
    int n = ++g_probe;
    snprintf(ch, sizeof(ch), "probe%d", n);
    snprintf(data, sizeof(data), "{\"probe\":%d}", n);
    snprintf(want, sizeof(want), "{\"push\":{\"channel\":\"%s\",\"pub\":{\"data\":%s}}}", ch, data);
    open_connected(&c, NULL);
    subscribe_plain(&c, 2, ch);
    api_publish_ok(ch, data);
    int rc = rt_tc_cf_next(&c, &line, T_MS);
    if (rc != 0)
        fail_msg("probe client after %s got no publication: %s", where, rt_strerror(rc));
    expect_line(&line, want, "probe publication");
    rt_tc_close(&c);

    if (g_by_open) {
        snprintf(want, sizeof(want), "{\"push\":{\"channel\":\"bystander\",\"pub\":{\"data\":%s}}}",
                 data);
        api_publish_ok("bystander", data);
        rc = rt_tc_cf_next(&g_by, &line, T_MS);
        if (rc != 0 || !rt_str_eq(rt_buf_str(&line), rt_str_c(want))) {
            /* Reopened below next time, so one failure does not cascade. */
            g_by_open = false;
            rt_tc_close(&g_by);
            fail_msg("bystander connection noticed %s: %s (close %d) %s", where, rt_strerror(rc),
                     g_by.close_code, cstr(&line));
        }
    } else {
        open_connected(&g_by, NULL);
        subscribe_plain(&g_by, 2, "bystander");
        g_by_open = true;
    }
    rt_buf_cleanup(&line);
}

#define CHECK_OTHERS() check_others(__func__)

/* Waits for the server's close frame; code must be want_a or want_b (0 = unused). When
 * reason is not NULL it must match. echo: answer with a close and require the server to
 * drop TCP (the close handshake of PROTOCOL.md §6.4). */
static int expect_close(rt_tc_conn_t *c, int want_a, int want_b, const char *reason, bool echo)
{
    rt_buf_t got = RT_BUF_INIT;
    int code = 0;
    int rc = rt_tc_ws_wait_close(c, &code, &got, T_MS);
    if (rc != 0)
        fail_msg("expected close %d, got %s (code %d)", want_a, rt_strerror(rc), code);
    if (code != want_a && (want_b == 0 || code != want_b))
        fail_msg("expected close code %d%s%.0d, got %d \"%s\"", want_a, want_b ? " or " : "",
                 want_b, code, cstr(&got));
    if (reason != NULL && strcmp(cstr(&got), reason) != 0)
        fail_msg("close %d: expected reason \"%s\", got \"%s\"", code, reason, cstr(&got));
    if (echo) {
        (void)rt_tc_ws_send_close(c, code, "");
        if (rt_tc_wait_eof(c, T_MS) != 0)
            fail_msg("server kept TCP open after the close handshake (code %d)", code);
    }
    rt_buf_cleanup(&got);
    return code;
}

static void check_connect_reply(const rt_buf_t *line, unsigned id)
{
    char prefix[64];
    rt_str_t s = rt_buf_str(line);
    static const char ver[] = "\",\"version\":\"";
    static const char tail[] = ",\"ping\":25,\"pong\":true}}";

    snprintf(prefix, sizeof(prefix), "{\"id\":%u,\"connect\":{\"client\":\"", id);
    size_t pl = strlen(prefix);
    if (!rt_str_starts_with(s, rt_str_c(prefix)) || s.n < pl + 36 ||
        !rt_tc_is_uuid(rt_str_from(s.p + pl, 36)))
        fail_msg("connect reply: want %s<uuid>\",\"version\":\"...\"%s\n  got %s", prefix, tail,
                 cstr(line));
    rt_str_t rest = rt_str_from(s.p + pl + 36, s.n - pl - 36);
    if (!rt_str_starts_with(rest, RT_STR(ver)))
        fail_msg("connect reply: \"version\" must follow \"client\": %s", cstr(line));
    const char *v = rest.p + sizeof(ver) - 1;
    const char *q = memchr(v, '"', (size_t)(rest.p + rest.n - v));
    if (q == NULL || q == v)
        fail_msg("connect reply: empty or unterminated version: %s", cstr(line));
    rt_str_t after = rt_str_from(q + 1, (size_t)(rest.p + rest.n - q - 1));
    if (!rt_str_eq(after, RT_STR(tail)))
        fail_msg("connect reply: after version want %s, got %.*s", tail, RT_STR_ARG(after));
}

/* Reads n messages into lines[] (each reset first). */
static void read_lines(rt_tc_conn_t *c, rt_buf_t *lines, int n)
{
    for (int i = 0; i < n; i++) {
        int rc = rt_tc_cf_next(c, &lines[i], T_MS);
        if (rc != 0)
            fail_msg("message %d of %d: %s (close %d)", i + 1, n, rt_strerror(rc), c->close_code);
    }
}

static int find_line(rt_buf_t *lines, int n, const char *prefix)
{
    for (int i = 0; i < n; i++) {
        if (rt_str_starts_with(rt_buf_str(&lines[i]), rt_str_c(prefix)))
            return i;
    }
    return -1;
}

static void dump_lines(rt_buf_t *lines, int n)
{
    for (int i = 0; i < n; i++)
        fprintf(stderr, "  [%d] %s\n", i, cstr(&lines[i]));
}

/* ---- golden frames ---- */

static void t_golden_connect(void **state)
{
    rt_tc_conn_t c;
    rt_buf_t line = RT_BUF_INIT;
    rt_buf_t cmd = RT_BUF_INIT;

    ws_open(&c);
    /* centrifuge-js key order: id last. */
    rt_buf_printf(&cmd, "{\"connect\":{\"token\":\"%s\",\"name\":\"js\"},\"id\":1}",
                  cstr(&g_token));
    rt_buf_append_byte(&cmd, 0);
    assert_int_equal(rt_tc_ws_send_text(&c, cstr(&cmd)), 0);
    assert_int_equal(rt_tc_cf_next(&c, &line, T_MS), 0);
    check_connect_reply(&line, 1);
    rt_tc_close(&c);

    /* Reference key order (id first) and an id other than 1. */
    ws_open(&c);
    rt_buf_reset(&cmd);
    rt_buf_printf(&cmd, "{\"id\":77,\"connect\":{\"token\":\"%s\"}}", cstr(&g_token));
    rt_buf_append_byte(&cmd, 0);
    assert_int_equal(rt_tc_ws_send_text(&c, cstr(&cmd)), 0);
    assert_int_equal(rt_tc_cf_next(&c, &line, T_MS), 0);
    check_connect_reply(&line, 77);
    rt_tc_close(&c);
    rt_buf_cleanup(&cmd);
    rt_buf_cleanup(&line);
    CHECK_OTHERS();
}

static void t_golden_subscribe(void **state)
{
    rt_tc_conn_t c;
    open_connected(&c, NULL);
    subscribe_plain(&c, 2, "gs");
    rt_tc_close(&c);
    CHECK_OTHERS();
}

static void t_golden_client_publish(void **state)
{
    rt_tc_conn_t c;
    rt_buf_t cid = RT_BUF_INIT;
    rt_buf_t lines[2] = {RT_BUF_INIT, RT_BUF_INIT};
    rt_buf_t want = RT_BUF_INIT;

    open_connected(&c, &cid);
    subscribe_plain(&c, 2, "cp");
    assert_int_equal(
        rt_tc_ws_send_text(
            &c, "{\"publish\":{\"channel\":\"cp\",\"data\":{\"text\":\"hi\"}},\"id\":3}"),
        0);
    /* The reply and the push may come in either order, in one frame or two. */
    read_lines(&c, lines, 2);
    int r = find_line(lines, 2, "{\"id\":3");
    if (r < 0) {
        dump_lines(lines, 2);
        fail_msg("no publish reply");
    }
    expect_line(&lines[r], "{\"id\":3,\"publish\":{}}", "publish reply");
    rt_buf_printf(&want,
                  "{\"push\":{\"channel\":\"cp\",\"pub\":{\"data\":{\"text\":\"hi\"},\"info\":{"
                  "\"user\":\"42\",\"client\":\"%s\"}}}}",
                  cstr(&cid));
    rt_buf_append_byte(&want, 0);
    expect_line(&lines[1 - r], cstr(&want), "publication push from a client publish");
    rt_tc_close(&c);
    rt_buf_cleanup(&cid);
    rt_buf_cleanup(&want);
    rt_buf_cleanup(&lines[0]);
    rt_buf_cleanup(&lines[1]);
    CHECK_OTHERS();
}

static void t_golden_api_push(void **state)
{
    rt_tc_conn_t c;
    rt_tc_http_resp_t r;
    rt_buf_t line = RT_BUF_INIT;

    open_connected(&c, NULL);
    subscribe_plain(&c, 2, "c");
    rt_tc_http_resp_init(&r);
    assert_int_equal(rt_tc_api_publish(NULL, g_srv.port, "key", "c", "{\"x\":1.10}", &r), 0);
    assert_int_equal(r.status, 200);
    expect_line(&r.body, "{\"result\":{}}", "API publish result (channel without history)");
    assert_int_equal(rt_tc_cf_next(&c, &line, T_MS), 0);
    expect_line(&line, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":{\"x\":1.10}}}}",
                "publication push");
    rt_tc_close(&c);
    rt_tc_http_resp_cleanup(&r);
    rt_buf_cleanup(&line);
    CHECK_OTHERS();
}

static void t_golden_raw_data_bytes(void **state)
{
    rt_tc_conn_t c;
    rt_buf_t line = RT_BUF_INIT;

    open_connected(&c, NULL);
    subscribe_plain(&c, 2, "raw");
    /* Insignificant whitespace and escapes travel as sent; only the raw newline goes
     * (PROTOCOL.md §1.2). */
    api_publish_ok("raw", "{\"a\": 1,\n \"b\":[true ,null, \"\\u00e9\", 1E+2, 2e400]}");
    assert_int_equal(rt_tc_cf_next(&c, &line, T_MS), 0);
    expect_line(&line,
                "{\"push\":{\"channel\":\"raw\",\"pub\":{\"data\":{\"a\": 1, \"b\":[true ,null, "
                "\"\\u00e9\", 1E+2, 2e400]}}}}",
                "raw data bytes");
    rt_tc_close(&c);
    rt_buf_cleanup(&line);
    CHECK_OTHERS();
}

static void t_golden_connect_and_subscribe_one_frame(void **state)
{
    rt_tc_conn_t c;
    rt_buf_t cmd = RT_BUF_INIT;
    rt_buf_t lines[2] = {RT_BUF_INIT, RT_BUF_INIT};

    ws_open(&c);
    rt_buf_printf(&cmd,
                  "{\"connect\":{\"token\":\"%s\",\"name\":\"js\"},\"id\":1}\n"
                  "{\"subscribe\":{\"channel\":\"one\",\"flag\":1},\"id\":2}",
                  cstr(&g_token));
    rt_buf_append_byte(&cmd, 0);
    assert_int_equal(rt_tc_ws_send_text(&c, cstr(&cmd)), 0);
    read_lines(&c, lines, 2);
    int ci = find_line(lines, 2, "{\"id\":1,");
    if (ci < 0) {
        dump_lines(lines, 2);
        fail_msg("no connect reply");
    }
    check_connect_reply(&lines[ci], 1);
    expect_line(&lines[1 - ci], "{\"id\":2,\"subscribe\":{}}", "subscribe reply");
    rt_tc_close(&c);
    rt_buf_cleanup(&cmd);
    rt_buf_cleanup(&lines[0]);
    rt_buf_cleanup(&lines[1]);
    CHECK_OTHERS();
}

static void t_golden_batch_trailing_newline(void **state)
{
    rt_tc_conn_t c;
    rt_buf_t cmd = RT_BUF_INIT;
    rt_buf_t lines[4] = {RT_BUF_INIT, RT_BUF_INIT, RT_BUF_INIT, RT_BUF_INIT};

    ws_open(&c);
    rt_buf_printf(&cmd,
                  "{\"id\":1,\"connect\":{\"token\":\"%s\"}}\n"
                  "{\"id\":2,\"subscribe\":{\"channel\":\"b1\"}}\n"
                  "{\"subscribe\":{\"channel\":\"b2\"},\"unknown\":[1,{}],\"id\":3}\n"
                  "{\"id\":4,\"subscribe\":{\"channel\":\"b3\"}}\n",
                  cstr(&g_token));
    rt_buf_append_byte(&cmd, 0);
    assert_int_equal(rt_tc_ws_send_text(&c, cstr(&cmd)), 0);
    read_lines(&c, lines, 4);
    int ci = find_line(lines, 4, "{\"id\":1,");
    if (ci < 0 || find_line(lines, 4, "{\"id\":2,\"subscribe\":{}}") < 0 ||
        find_line(lines, 4, "{\"id\":3,\"subscribe\":{}}") < 0 ||
        find_line(lines, 4, "{\"id\":4,\"subscribe\":{}}") < 0) {
        dump_lines(lines, 4);
        fail_msg("batched replies incomplete");
    }
    check_connect_reply(&lines[ci], 1);
    /* All three subscriptions are live. */
    api_publish_ok("b2", "\"two\"");
    assert_int_equal(rt_tc_cf_next(&c, &lines[0], T_MS), 0);
    expect_line(&lines[0], "{\"push\":{\"channel\":\"b2\",\"pub\":{\"data\":\"two\"}}}", "push b2");
    rt_tc_close(&c);
    rt_buf_cleanup(&cmd);
    for (int i = 0; i < 4; i++)
        rt_buf_cleanup(&lines[i]);
    CHECK_OTHERS();
}

/* ---- bad protocol input: disconnect 3501 ---- */

static void bad_after_connect(const char *frame)
{
    rt_tc_conn_t c;
    open_connected(&c, NULL);
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_TEXT, frame, strlen(frame), true), 0);
    expect_close(&c, 3501, 0, "bad request", true);
    rt_tc_close(&c);
}

static void bad_before_connect(const char *frame)
{
    rt_tc_conn_t c;
    ws_open(&c);
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_TEXT, frame, strlen(frame), true), 0);
    expect_close(&c, 3501, 0, "bad request", true);
    rt_tc_close(&c);
}

static void t_bad_invalid_json(void **state)
{
    bad_after_connect("{\"id\":2,\"subscribe\":");
    bad_after_connect("not json");
    bad_after_connect("[1,2]");
    bad_before_connect("{\"connect\":{\"token\":\"x\"},\"id\":1");
    CHECK_OTHERS();
}

static void t_bad_id_only(void **state)
{
    bad_after_connect("{\"id\":1}");
    CHECK_OTHERS();
}

static void t_bad_obsolete_ping(void **state)
{
    bad_after_connect("{\"id\":1,\"ping\":{}}");
    CHECK_OTHERS();
}

static void t_bad_empty_frame(void **state)
{
    bad_after_connect("");
    CHECK_OTHERS();
}

static void t_bad_subscribe_before_connect(void **state)
{
    bad_before_connect("{\"subscribe\":{\"channel\":\"c\"},\"id\":1}");
    CHECK_OTHERS();
}

static void t_bad_pong_before_connect(void **state)
{
    bad_before_connect("{}");
    CHECK_OTHERS();
}

static void t_bad_pong_before_ping(void **state)
{
    /* The first ping comes 12.5 s or later after connect. */
    bad_after_connect("{}");
    CHECK_OTHERS();
}

static void t_bad_second_connect(void **state)
{
    rt_buf_t cmd = RT_BUF_INIT;
    rt_buf_printf(&cmd, "{\"connect\":{\"token\":\"%s\"},\"id\":2}", cstr(&g_token));
    rt_buf_append_byte(&cmd, 0);
    bad_after_connect(cstr(&cmd));
    rt_buf_cleanup(&cmd);
    CHECK_OTHERS();
}

static void t_bad_invalid_utf8(void **state)
{
    rt_tc_conn_t c;
    static const char bad[] = "{\"id\":2,\"subscribe\":{\"channel\":\"\xc3\x28\xff\"}}";

    open_connected(&c, NULL);
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_TEXT, bad, sizeof(bad) - 1, true), 0);
    /* RFC 6455 says 1007; the spec only says an undecodable line is 3501. Either is a
     * clean close. */
    int code = expect_close(&c, 1007, 3501, NULL, true);
    fprintf(stderr, "  invalid UTF-8 text frame closed with %d\n", code);
    rt_tc_close(&c);
    CHECK_OTHERS();
}

/* ---- message size ---- */

/* A subscribe command padded with an ignored member to exactly total bytes. */
static void padded_subscribe(rt_buf_t *out, const char *channel, size_t total)
{
    rt_buf_reset(out);
    rt_buf_printf(out, "{\"subscribe\":{\"channel\":\"%s\"},\"id\":2,\"pad\":\"", channel);
    size_t tail = 2; /* "} */
    assert_true(out->len + tail <= total);
    size_t pad = total - out->len - tail;
    rt_buf_reserve(out, pad + tail);
    memset(out->p + out->len, 'a', pad);
    out->len += pad;
    rt_buf_append_cstr(out, "\"}");
    assert_int_equal(out->len, total);
}

static void t_size_65536_accepted(void **state)
{
    rt_tc_conn_t c;
    rt_buf_t msg = RT_BUF_INIT;
    rt_buf_t line = RT_BUF_INIT;

    open_connected(&c, NULL);
    padded_subscribe(&msg, "big", 65536);
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_TEXT, msg.p, msg.len, true), 0);
    int rc = rt_tc_cf_next(&c, &line, T_MS);
    if (rc != 0)
        fail_msg("65536-byte message refused: %s (close %d)", rt_strerror(rc), c.close_code);
    expect_line(&line, "{\"id\":2,\"subscribe\":{}}", "reply to a 65536-byte message");
    rt_tc_close(&c);
    rt_buf_cleanup(&msg);
    rt_buf_cleanup(&line);
    CHECK_OTHERS();
}

static void t_size_65537_closes_1009(void **state)
{
    rt_tc_conn_t c;
    rt_buf_t msg = RT_BUF_INIT;

    open_connected(&c, NULL);
    padded_subscribe(&msg, "big", 65537);
    /* The server may refuse after the header; a write error is not a failure. */
    (void)rt_tc_ws_send_frame(&c, true, RT_TC_WS_TEXT, msg.p, msg.len, true);
    expect_close(&c, 1009, 0, NULL, false);
    rt_tc_close(&c);

    /* Same limit for the sum of fragments. */
    open_connected(&c, NULL);
    assert_int_equal(rt_tc_ws_send_frame(&c, false, RT_TC_WS_TEXT, msg.p, 40000, true), 0);
    (void)rt_tc_ws_send_frame(&c, true, RT_TC_WS_CONT, msg.p + 40000, msg.len - 40000, true);
    expect_close(&c, 1009, 0, NULL, false);
    rt_tc_close(&c);
    rt_buf_cleanup(&msg);
    CHECK_OTHERS();
}

static void t_size_huge_length_header(void **state)
{
    static const uint64_t lens[] = {(uint64_t)1 << 63, ((uint64_t)1 << 63) - 1, (uint64_t)1 << 32};
    int failures = 0;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        rt_tc_conn_t c;
        rt_buf_t reason = RT_BUF_INIT;
        int code = 0;
        open_connected(&c, NULL);
        assert_int_equal(rt_tc_ws_send_header(&c, RT_TC_WS_TEXT, lens[i]), 0);
        (void)rt_tc_send(&c, "{\"id\":2", 7, T_MS);
        int rc = rt_tc_ws_wait_close(&c, &code, &reason, T_MS);
        fprintf(stderr, "  length %llu: %s close %d\n", (unsigned long long)lens[i],
                rt_strerror(rc), code);
        if (rc != 0 || (code != 1009 && code != 1002))
            failures++;
        rt_buf_cleanup(&reason);
        rt_tc_close(&c);
        die_if_dead("huge length header");
    }
    CHECK_OTHERS();
    if (failures > 0)
        fail_msg("%d of 3 huge length headers were not closed with 1009 or 1002", failures);
}

/* ---- frame-level protocol errors: close 1002 ---- */

static void t_frame_protocol_errors(void **state)
{
    static const char sub[] = "{\"subscribe\":{\"channel\":\"c\"},\"id\":2}";
    uint8_t big_ping[126];
    int failures = 0;
    memset(big_ping, 'p', sizeof(big_ping));

    for (int k = 0; k < 10; k++) {
        rt_tc_conn_t c;
        const char *name = "";
        open_connected(&c, NULL);
        switch (k) {
        case 0:
            name = "unmasked client frame";
            (void)rt_tc_ws_send_frame(&c, true, RT_TC_WS_TEXT, sub, sizeof(sub) - 1, false);
            break;
        case 1:
            name = "reserved data opcode 3";
            (void)rt_tc_ws_send_frame(&c, true, 3, "x", 1, true);
            break;
        case 2:
            name = "reserved control opcode 11";
            (void)rt_tc_ws_send_frame(&c, true, 11, "", 0, true);
            break;
        case 3:
            name = "RSV1 without an extension";
            (void)rt_tc_ws_send_frame(&c, true, 0x40 | RT_TC_WS_TEXT, sub, sizeof(sub) - 1, true);
            break;
        case 4:
            name = "continuation without a start";
            (void)rt_tc_ws_send_frame(&c, true, RT_TC_WS_CONT, sub, sizeof(sub) - 1, true);
            break;
        case 5:
            name = "ping with 126-byte payload";
            (void)rt_tc_ws_send_frame(&c, true, RT_TC_WS_PING, big_ping, sizeof(big_ping), true);
            break;
        case 6:
            name = "fragmented ping";
            (void)rt_tc_ws_send_frame(&c, false, RT_TC_WS_PING, "x", 1, true);
            break;
        case 7:
            name = "new text frame inside a fragmented message";
            (void)rt_tc_ws_send_frame(&c, false, RT_TC_WS_TEXT, "{", 1, true);
            (void)rt_tc_ws_send_frame(&c, true, RT_TC_WS_TEXT, sub, sizeof(sub) - 1, true);
            break;
        case 8:
            name = "close frame with a 1-byte payload";
            (void)rt_tc_ws_send_frame(&c, true, RT_TC_WS_CLOSE, "\x03", 1, true);
            break;
        case 9:
            name = "close frame with reserved code 1005";
            (void)rt_tc_ws_send_close(&c, 1005, "");
            break;
        }
        rt_buf_t reason = RT_BUF_INIT;
        int code = 0;
        int rc = rt_tc_ws_wait_close(&c, &code, &reason, T_MS);
        /* Every case runs, so one report names all the broken ones. */
        if (rc != 0 || code != 1002) {
            fprintf(stderr, "  %s: expected close 1002, got %s code %d \"%s\"\n", name,
                    rt_strerror(rc), code, cstr(&reason));
            failures++;
        }
        rt_buf_cleanup(&reason);
        rt_tc_close(&c);
        die_if_dead(name);
    }
    CHECK_OTHERS();
    if (failures > 0)
        fail_msg("%d of 10 frame-level violations were not closed with 1002", failures);
}

/* ---- frame-level features that must work ---- */

static void t_frame_fragmented_with_ping(void **state)
{
    rt_tc_conn_t c;
    rt_buf_t cmd = RT_BUF_INIT;
    rt_tc_ws_frame_t f;
    bool got_pong = false, got_reply = false;

    ws_open(&c);
    rt_buf_printf(&cmd, "{\"connect\":{\"token\":\"%s\",\"name\":\"js\"},\"id\":1}",
                  cstr(&g_token));
    size_t a = 5, b = cmd.len / 2;
    assert_int_equal(rt_tc_ws_send_frame(&c, false, RT_TC_WS_TEXT, cmd.p, a, true), 0);
    assert_int_equal(rt_tc_ws_send_frame(&c, false, RT_TC_WS_CONT, cmd.p + a, b - a, true), 0);
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_PING, "mid", 3, true), 0);
    assert_int_equal(rt_tc_ws_send_frame(&c, false, RT_TC_WS_CONT, cmd.p + b, 0, true), 0);
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_CONT, cmd.p + b, cmd.len - b, true), 0);
    rt_tc_ws_frame_init(&f);
    while (!got_pong || !got_reply) {
        int rc = rt_tc_ws_read_frame(&c, &f, T_MS);
        if (rc != 0)
            fail_msg("fragmented connect: %s (pong %d, reply %d)", rt_strerror(rc), got_pong,
                     got_reply);
        if (f.opcode == RT_TC_WS_PONG) {
            assert_false(got_reply); /* the ping arrived before the last fragment */
            assert_true(rt_str_eq(rt_buf_str(&f.payload), RT_STR("mid")));
            got_pong = true;
        } else if (f.opcode == RT_TC_WS_TEXT) {
            assert_true(f.fin);
            assert_false(f.masked);
            rt_buf_append_byte(&f.payload, 0);
            f.payload.len--;
            check_connect_reply(&f.payload, 1);
            got_reply = true;
        } else {
            fail_msg("unexpected opcode %d", f.opcode);
        }
    }
    rt_tc_ws_frame_cleanup(&f);
    subscribe_plain(&c, 2, "frag");
    rt_tc_close(&c);
    rt_buf_cleanup(&cmd);
    CHECK_OTHERS();
}

static void t_frame_ping_pong(void **state)
{
    rt_tc_conn_t c;
    rt_tc_ws_frame_t f;
    uint8_t payload[125];

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)i;
    ws_open(&c);
    rt_tc_ws_frame_init(&f);
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_PING, payload, sizeof(payload), true),
                     0);
    assert_int_equal(rt_tc_ws_read_frame(&c, &f, T_MS), 0);
    assert_int_equal(f.opcode, RT_TC_WS_PONG);
    assert_true(f.fin);
    assert_false(f.masked);
    assert_int_equal(f.payload.len, sizeof(payload));
    assert_memory_equal(f.payload.p, payload, sizeof(payload));
    /* Empty ping, and an unsolicited pong, which must be ignored. */
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_PONG, "u", 1, true), 0);
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_PING, "", 0, true), 0);
    assert_int_equal(rt_tc_ws_read_frame(&c, &f, T_MS), 0);
    assert_int_equal(f.opcode, RT_TC_WS_PONG);
    assert_int_equal(f.payload.len, 0);
    rt_tc_ws_frame_cleanup(&f);
    rt_tc_close(&c);

    /* Control frames are not protocol messages: connect still works after them. */
    rt_buf_t line = RT_BUF_INIT;
    ws_open(&c);
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_PING, "a", 1, true), 0);
    assert_int_equal(rt_tc_cf_connect(&c, 1, cstr(&g_token), &line), 0);
    check_connect_reply(&line, 1);
    rt_tc_close(&c);
    rt_buf_cleanup(&line);
    CHECK_OTHERS();
}

static void t_frame_client_close_echoed(void **state)
{
    rt_tc_conn_t c;
    rt_tc_ws_frame_t f;

    open_connected(&c, NULL);
    assert_int_equal(rt_tc_ws_send_close(&c, 1000, "bye"), 0);
    rt_tc_ws_frame_init(&f);
    assert_int_equal(rt_tc_ws_read_frame(&c, &f, T_MS), 0);
    assert_int_equal(f.opcode, RT_TC_WS_CLOSE);
    assert_int_equal(f.close_code, 1000);
    assert_int_equal(rt_tc_wait_eof(&c, T_MS), 0);
    rt_tc_ws_frame_cleanup(&f);
    rt_tc_close(&c);

    /* A close without a status code is answered too (with 1000 or no code). */
    ws_open(&c);
    rt_tc_ws_frame_init(&f);
    assert_int_equal(rt_tc_ws_send_frame(&c, true, RT_TC_WS_CLOSE, "", 0, true), 0);
    assert_int_equal(rt_tc_ws_read_frame(&c, &f, T_MS), 0);
    assert_int_equal(f.opcode, RT_TC_WS_CLOSE);
    assert_true(f.close_code == 1000 || f.close_code == RT_TC_WS_NO_STATUS);
    assert_int_equal(rt_tc_wait_eof(&c, T_MS), 0);
    rt_tc_ws_frame_cleanup(&f);
    rt_tc_close(&c);
    CHECK_OTHERS();
}

static void t_stale_3502(void **state)
{
    rt_tc_conn_t c;
    ws_open(&c);
    int64_t t0 = rt_tc_now_ms();
    rt_buf_t reason = RT_BUF_INIT;
    int code = 0;
    int rc = rt_tc_ws_wait_close(&c, &code, &reason, 4000);
    int64_t took = rt_tc_now_ms() - t0;
    if (rc != 0 || code != 3502 || strcmp(cstr(&reason), "stale") != 0)
        fail_msg("idle connection: want close 3502 \"stale\", got %s %d \"%s\" after %lld ms",
                 rt_strerror(rc), code, cstr(&reason), (long long)took);
    if (took < 800 || took > 3500)
        fail_msg("stale close after %lld ms, stale_close_delay is 1 s", (long long)took);
    rt_buf_cleanup(&reason);
    rt_tc_close(&c);
    CHECK_OTHERS();
}

/* ---- clients that stop mid-frame (issue 7) ---- */

/* Half a frame header (FIN + text, no length byte), then silence with the socket open,
 * before connect: nothing more arrives, so stale_close_delay (1 s here) closes it. */
static void t_mid_frame_before_connect_3502(void **state)
{
    rt_tc_conn_t c;
    rt_buf_t reason = RT_BUF_INIT;
    int code = 0;
    static const uint8_t half[] = {0x81};

    ws_open(&c);
    int64_t t0 = rt_tc_now_ms();
    assert_int_equal(rt_tc_send(&c, half, sizeof(half), T_MS), 0);
    int rc = rt_tc_ws_wait_close(&c, &code, &reason, 4000);
    int64_t took = rt_tc_now_ms() - t0;
    if (rc != 0 || code != 3502 || strcmp(cstr(&reason), "stale") != 0)
        fail_msg("half a header, then silence: want close 3502 \"stale\", got %s %d \"%s\" "
                 "after %lld ms",
                 rt_strerror(rc), code, cstr(&reason), (long long)took);
    if (took > 3000)
        fail_msg("closed after %lld ms, stale_close_delay is 1 s", (long long)took);
    rt_buf_cleanup(&reason);
    rt_tc_close(&c);
    CHECK_OTHERS();
}

/* A second rotor with short pings: ping_interval 1 s, pong_timeout 500 ms. A connected
 * client gets its next ping at most 1 s after going silent and must answer within 500 ms,
 * so a silent one is closed with 3012 "no pong" within 1.5 s (+ slack). */
#define PING_CONFIG                                                                                \
    "\"client\":{\"token\":{\"hmac_secret_key\":\"secret\"},\"ping_interval\":\"1s\","             \
    "\"pong_timeout\":\"500ms\"},"                                                                 \
    "\"http_api\":{\"key\":\"key\"},\"health\":{\"enabled\":true},\"workers\":2,"                  \
    "\"shutdown\":{\"timeout\":\"3s\"},"                                                           \
    "\"channel\":{\"without_namespace\":{\"allow_subscribe_for_client\":true}}"
#define PING_BOUND_MS 2500 /* ping_interval + pong_timeout + 1 s slack */

static void open_connected_at(rt_tc_conn_t *c, int port)
{
    rt_buf_t line = RT_BUF_INIT;
    int rc = rt_tc_ws_open(c, port);
    if (rc != 0)
        fail_msg("WebSocket handshake failed: %s", rt_strerror(rc));
    rc = rt_tc_cf_connect(c, 1, cstr(&g_token), &line);
    if (rc != 0)
        fail_msg("connect failed (%s): %s", rt_strerror(rc), cstr(&line));
    rt_buf_cleanup(&line);
}

/* Connected clients that send half a frame header, or a header and half the payload, and
 * then go silent with the socket open (they keep reading, so TCP itself is healthy: only
 * the ping/pong timeout can notice). Each is closed with 3012 within the bound; a
 * bystander answering its pings on the same node is untouched throughout. */
static void t_mid_frame_connected_3012(void **state)
{
    enum { NS = 2 };
    rt_tp_server_t srv;
    rt_tc_conn_t by, s[NS];
    rt_buf_t line = RT_BUF_INIT;
    rt_buf_t reason[NS] = {RT_BUF_INIT, RT_BUF_INIT};
    int code[NS] = {0}, rc[NS] = {RT_ETIMEOUT, RT_ETIMEOUT};
    int64_t t0[NS], took[NS] = {-1, -1};
    char desc[96];
    /* 0: FIN + text and nothing else; 1: a masked 100-byte text frame cut after 10 bytes. */
    uint8_t head[] = {0x81};
    uint8_t part[2 + 4 + 10] = {0x81, 0x80 | 100, 1,   2,   3,   4,   'x', 'x',
                                'x',  'x',        'x', 'x', 'x', 'x', 'x', 'x'};
    const uint8_t *half[NS] = {head, part};
    size_t half_len[NS] = {sizeof(head), sizeof(part)};

    int src = rt_tp_start(&srv, g_binary, PING_CONFIG, 10000);
    if (src != 0)
        fail_msg("cannot start a second rotor: %s", rt_strerror(src));
    open_connected_at(&by, srv.port);
    by.pong = true;
    subscribe_plain(&by, 2, "midby");
    for (int i = 0; i < NS; i++) {
        open_connected_at(&s[i], srv.port);
        assert_int_equal(rt_tc_send(&s[i], half[i], half_len[i], T_MS), 0);
        t0[i] = rt_tc_now_ms();
    }

    /* Poll the silent ones for their close while the bystander answers its pings. */
    int64_t deadline = rt_tc_now_ms() + PING_BOUND_MS + 2000;
    int open = NS;
    while (open > 0 && rt_tc_now_ms() < deadline) {
        for (int i = 0; i < NS; i++) {
            if (took[i] >= 0)
                continue;
            rc[i] = rt_tc_ws_wait_close(&s[i], &code[i], &reason[i], 10);
            if (rc[i] != RT_ETIMEOUT) {
                took[i] = rt_tc_now_ms() - t0[i];
                open--;
            }
        }
        int brc = rt_tc_cf_next(&by, &line, 10);
        if (brc != 0 && brc != RT_ETIMEOUT)
            fail_msg("bystander lost while others stalled mid-frame: %s (close %d)",
                     rt_strerror(brc), by.close_code);
    }
    for (int i = 0; i < NS; i++) {
        fprintf(stderr,
                "  silent client %d (%zu bytes of a frame): %s close %d \"%s\" after %lld ms\n", i,
                half_len[i], rt_strerror(rc[i]), code[i], cstr(&reason[i]), (long long)took[i]);
        if (rc[i] != 0 || code[i] != 3012 || strcmp(cstr(&reason[i]), "no pong") != 0)
            fail_msg("silent client %d: want close 3012 \"no pong\", got %s %d \"%s\"", i,
                     rt_strerror(rc[i]), code[i], cstr(&reason[i]));
        if (took[i] > PING_BOUND_MS)
            fail_msg("silent client %d closed after %lld ms, bound %d ms", i, (long long)took[i],
                     PING_BOUND_MS);
    }
    /* The server releases the socket even though the peer never finishes its frame nor
     * answers the close: the close handshake waits 5 s at most. */
    deadline = rt_tc_now_ms() + 7000;
    for (int i = 0; i < NS; i++) {
        while (rt_tc_wait_eof(&s[i], 10) != 0) {
            if (rt_tc_now_ms() > deadline)
                fail_msg("silent client %d: TCP still open 7 s after the close frame", i);
            int brc = rt_tc_cf_next(&by, &line, 10); /* answers the bystander's pings */
            if (brc != 0 && brc != RT_ETIMEOUT)
                fail_msg("bystander lost: %s (close %d)", rt_strerror(brc), by.close_code);
        }
    }

    /* The bystander still receives, and a new client works. */
    rt_tc_http_resp_t r;
    rt_tc_http_resp_init(&r);
    int prc = rt_tc_api_publish(NULL, srv.port, "key", "midby", "{\"still\":1}", &r);
    if (prc != 0 || r.status != 200)
        fail_msg("API publish: %s status %d", rt_strerror(prc), r.status);
    assert_int_equal(rt_tc_cf_next(&by, &line, T_MS), 0);
    expect_line(&line, "{\"push\":{\"channel\":\"midby\",\"pub\":{\"data\":{\"still\":1}}}}",
                "bystander publication");
    rt_tc_conn_t fresh;
    open_connected_at(&fresh, srv.port);
    rt_tc_close(&fresh);

    if (!rt_tp_alive(&srv))
        fail_msg("the second rotor died: %s", rt_tp_describe(&srv, desc, sizeof(desc)));
    for (int i = 0; i < NS; i++) {
        rt_tc_close(&s[i]);
        rt_buf_cleanup(&reason[i]);
    }
    rt_tc_close(&by);
    rt_tc_http_resp_cleanup(&r);
    rt_buf_cleanup(&line);
    if (rt_tp_stop(&srv, false) != 0)
        fail_msg("the second rotor did not exit cleanly: %s",
                 rt_tp_describe(&srv, desc, sizeof(desc)));
    CHECK_OTHERS();
}

/* ---- HTTP ---- */

static void t_http_websocket_get_without_upgrade(void **state)
{
    rt_tc_http_resp_t r;
    rt_tc_http_resp_init(&r);
    assert_int_equal(rt_tc_http_once(g_srv.port, "GET", "/connection/websocket", NULL, NULL, 0, &r),
                     0);
    assert_int_equal(r.status, 400);
    rt_str_t ct = rt_tc_http_header(&r, "Content-Type");
    if (!rt_str_starts_with(ct, RT_STR("application/json")))
        fail_msg("400 Content-Type: %.*s", RT_STR_ARG(ct));
    if (!rt_json_valid((const char *)r.body.p, r.body.len) || r.body.len == 0 || r.body.p[0] != '{')
        fail_msg("400 body is not a JSON object: %.*s", (int)r.body.len, cstr(&r.body));

    /* Upgrade with a version we do not speak. */
    rt_tc_http_resp_t r2;
    rt_tc_http_resp_init(&r2);
    assert_int_equal(rt_tc_http_once(g_srv.port, "GET", "/connection/websocket",
                                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                     "Sec-WebSocket-Version: 8\r\n",
                                     NULL, 0, &r2),
                     0);
    if (r2.status != 400 && r2.status != 426)
        fail_msg("upgrade with version 8: want 400 or 426, got %d", r2.status);
    rt_tc_http_resp_cleanup(&r);
    rt_tc_http_resp_cleanup(&r2);
    CHECK_OTHERS();
}

static void t_http_unknown_path_404(void **state)
{
    rt_tc_http_resp_t r;
    rt_tc_http_resp_init(&r);
    assert_int_equal(rt_tc_http_once(g_srv.port, "GET", "/no/such/path", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(
        rt_tc_http_once(g_srv.port, "POST", "/api/no_such_method", API_HDR, "{}", 2, &r), 0);
    if (r.status != 404 && r.status != 200)
        fail_msg("unknown API method: want 404 (or 200 with error 104), got %d", r.status);
    rt_tc_http_resp_cleanup(&r);
    CHECK_OTHERS();
}

/* Sends head then body_len bytes of body while watching for an early answer, and reads
 * the response. */
static void send_big_request(const char *head, const uint8_t *body, size_t body_len,
                             rt_tc_http_resp_t *r)
{
    rt_tc_conn_t c;
    size_t sent = 0;
    assert_int_equal(rt_tc_connect(&c, g_srv.port, 0), 0);
    assert_int_equal(rt_tc_send_cstr(&c, head), 0);
    int rc = rt_tc_send_until_reply(&c, body, body_len, &sent, 5000);
    if (rc != 0)
        fail_msg("sending %zu bytes: %s after %zu", body_len, rt_strerror(rc), sent);
    rc = rt_tc_http_read(&c, r, T_MS);
    if (rc != 0)
        fail_msg("no response after %zu of %zu bytes: %s (reset %d)", sent, body_len,
                 rt_strerror(rc), c.reset);
    rt_tc_close(&c);
}

static void t_http_body_too_large_413(void **state)
{
    /* One byte past 1 MiB: rotor's API body limit is max(websocket limit, 1 MiB). */
    size_t n = (1 << 20) + 1;
    uint8_t *body = malloc(n);
    rt_tc_http_resp_t r;
    char head[256];

    assert_non_null(body);
    static const char pre[] = "{\"channel\":\"c\",\"data\":\"";
    memcpy(body, pre, sizeof(pre) - 1);
    memset(body + sizeof(pre) - 1, 'a', n - (sizeof(pre) - 1) - 2);
    memcpy(body + n - 2, "\"}", 2);
    snprintf(head, sizeof(head),
             "POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n" API_HDR
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             n);
    rt_tc_http_resp_init(&r);
    send_big_request(head, body, n, &r);
    assert_int_equal(r.status, 413);
    free(body);
    rt_tc_http_resp_cleanup(&r);
    CHECK_OTHERS();
}

static void t_http_headers_too_large_431(void **state)
{
    size_t n = 64 * 1024;
    uint8_t *hdr = malloc(n + 4);
    rt_tc_http_resp_t r;

    assert_non_null(hdr);
    memcpy(hdr, "X-Pad: ", 7);
    memset(hdr + 7, 'a', n - 7);
    memcpy(hdr + n, "\r\n\r\n", 4);
    rt_tc_http_resp_init(&r);
    send_big_request("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n", hdr, n + 4, &r);
    assert_int_equal(r.status, 431);
    free(hdr);
    rt_tc_http_resp_cleanup(&r);
    CHECK_OTHERS();
}

static void t_http_garbage_400(void **state)
{
    rt_tc_conn_t c;
    rt_tc_http_resp_t r;
    static const char junk[] = "\x00\x01\x02 garbage\r\n\r\n";

    rt_tc_http_resp_init(&r);
    assert_int_equal(rt_tc_connect(&c, g_srv.port, 0), 0);
    assert_int_equal(rt_tc_send(&c, junk, sizeof(junk) - 1, T_MS), 0);
    int rc = rt_tc_http_read(&c, &r, T_MS);
    if (rc != 0)
        fail_msg("garbage: no HTTP response (%s)", rt_strerror(rc));
    assert_int_equal(r.status, 400);
    if (rt_tc_wait_eof(&c, T_MS) != 0)
        fail_msg("garbage: connection not closed after 400");
    rt_tc_close(&c);
    rt_tc_http_resp_cleanup(&r);
    CHECK_OTHERS();
}

static void t_http_pipelining(void **state)
{
    rt_tc_conn_t c;
    rt_tc_http_resp_t r;
    static const char body[] = "{\"channel\":\"pl\",\"data\":{}}";
    rt_buf_t req = RT_BUF_INIT;

    rt_buf_printf(&req,
                  "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
                  "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
                  "POST /api/publish HTTP/1.1\r\nHost: a\r\n" API_HDR
                  "Content-Length: %zu\r\n\r\n%s"
                  "GET /health HTTP/1.1\r\nHost: a\r\n\r\n",
                  sizeof(body) - 1, body);
    rt_tc_http_resp_init(&r);
    assert_int_equal(rt_tc_connect(&c, g_srv.port, 0), 0);
    assert_int_equal(rt_tc_send(&c, req.p, req.len, T_MS), 0);
    static const int want[] = {200, 404, 200, 200};
    for (int i = 0; i < 4; i++) {
        int rc = rt_tc_http_read(&c, &r, T_MS);
        if (rc != 0)
            fail_msg("pipelined response %d: %s", i + 1, rt_strerror(rc));
        if (r.status != want[i])
            fail_msg("pipelined response %d: want %d, got %d", i + 1, want[i], r.status);
        if (i == 2)
            expect_line(&r.body, "{\"result\":{}}", "pipelined publish");
        if (i < 3)
            assert_false(r.conn_close);
    }
    rt_tc_close(&c);
    rt_buf_cleanup(&req);
    rt_tc_http_resp_cleanup(&r);
    CHECK_OTHERS();
}

static void t_http_keepalive(void **state)
{
    rt_tc_conn_t c;
    rt_tc_http_resp_t r;

    rt_tc_http_resp_init(&r);
    assert_int_equal(rt_tc_connect(&c, g_srv.port, 0), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rt_tc_http_send(&c, "GET", "/health", NULL, NULL, 0), 0);
        assert_int_equal(rt_tc_http_read(&c, &r, T_MS), 0);
        assert_int_equal(r.status, 200);
        assert_false(r.conn_close);
        rt_tc_sleep_ms(50);
        assert_int_equal(rt_tc_api_publish(&c, 0, "key", "ka", "[1]", &r), 0);
        assert_int_equal(r.status, 200);
        assert_false(r.conn_close);
    }
    /* Connection: close is honoured. */
    assert_int_equal(rt_tc_http_send(&c, "GET", "/health", "Connection: close\r\n", NULL, 0), 0);
    assert_int_equal(rt_tc_http_read(&c, &r, T_MS), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(rt_tc_wait_eof(&c, T_MS), 0);
    rt_tc_close(&c);
    rt_tc_http_resp_cleanup(&r);
    CHECK_OTHERS();
}

static void t_http_slowloris(void **state)
{
    rt_tc_conn_t slow;
    rt_tc_http_resp_t r;
    int64_t worst = 0;

    rt_tc_http_resp_init(&r);
    assert_int_equal(rt_tc_connect(&slow, g_srv.port, 0), 0);
    assert_int_equal(rt_tc_send_cstr(&slow, "GET /health HTTP/1.1\r\nHost: a\r\nX-Slow: "), 0);
    for (int tick = 0; tick < 20; tick++) {
        /* A closed slow connection (header timeout) is acceptable; blocking is not. */
        (void)rt_tc_send(&slow, "a", 1, T_MS);
        if (tick % 4 == 0) {
            int64_t t0 = rt_tc_now_ms();
            assert_int_equal(rt_tc_http_once(g_srv.port, "GET", "/health", NULL, NULL, 0, &r), 0);
            assert_int_equal(r.status, 200);
            rt_tc_conn_t c;
            rt_buf_t line = RT_BUF_INIT;
            ws_open(&c);
            assert_int_equal(rt_tc_cf_connect(&c, 1, cstr(&g_token), &line), 0);
            rt_tc_close(&c);
            rt_buf_cleanup(&line);
            int64_t took = rt_tc_now_ms() - t0;
            worst = took > worst ? took : worst;
        }
        rt_tc_sleep_ms(100);
    }
    if (worst > 500)
        fail_msg("other clients waited %lld ms while a slow client trickled headers",
                 (long long)worst);
    if (rt_tc_send_cstr(&slow, "\r\n\r\n") == 0) {
        int rc = rt_tc_http_read(&slow, &r, T_MS);
        if (rc == 0 && r.status != 200 && r.status != 408)
            fail_msg("slow request finished with %d", r.status);
    }
    rt_tc_close(&slow);
    rt_tc_http_resp_cleanup(&r);
    CHECK_OTHERS();
}

/* ---- slow reader ---- */

static void t_slow_reader_disconnected(void **state)
{
    enum { N = 128, PAD = 65000 };
    rt_tc_conn_t slow, fast, api;
    rt_tc_http_resp_t r;
    rt_buf_t data = RT_BUF_INIT;
    rt_buf_t line = RT_BUF_INIT;
    rt_buf_t line2 = RT_BUF_INIT;
    char prefix[96];

    static const char slow_series[] = "centrifugo_client_num_server_disconnects{code=\"3008\"}";
    long long slow_before = metric_value(g_srv.port, slow_series);

    /* A tiny receive window: the kernel cannot hide the backlog for us. */
    assert_int_equal(rt_tc_connect(&slow, g_srv.port, 4096), 0);
    assert_int_equal(rt_tc_ws_handshake(&slow, "/connection/websocket", NULL, NULL), 0);
    assert_int_equal(rt_tc_cf_connect(&slow, 1, cstr(&g_token), &line), 0);
    subscribe_plain(&slow, 2, "slowch");
    open_connected(&fast, NULL);
    subscribe_plain(&fast, 2, "slowch");
    assert_int_equal(rt_tc_connect(&api, g_srv.port, 0), 0);
    rt_tc_http_resp_init(&r);

    for (int i = 0; i < N; i++) {
        rt_buf_reset(&data);
        rt_buf_printf(&data, "{\"i\":%d,\"pad\":\"", i);
        rt_buf_reserve(&data, PAD + 3);
        memset(data.p + data.len, 'z', PAD);
        data.len += PAD;
        rt_buf_append_cstr(&data, "\"}");
        rt_buf_append_byte(&data, 0);
        int rc = rt_tc_api_publish(&api, 0, "key", "slowch", cstr(&data), &r);
        if (rc != 0 || r.status != 200)
            fail_msg("publish %d: %s status %d", i, rt_strerror(rc), r.status);
        rc = rt_tc_cf_next(&fast, &line, T_MS);
        if (rc != 0)
            fail_msg("fast client missed publication %d: %s (close %d)", i, rt_strerror(rc),
                     fast.close_code);
        snprintf(prefix, sizeof(prefix),
                 "{\"push\":{\"channel\":\"slowch\",\"pub\":{\"data\":{\"i\":%d,", i);
        if (!rt_str_starts_with(rt_buf_str(&line), rt_str_c(prefix)))
            fail_msg("fast client: publication %d out of order: %.80s", i, cstr(&line));
    }

    /* Now drain the slow client: some publications, then the close frame 3008. The server
     * cannot write it while the socket is full, but it drops the queued publications, keeps
     * the close frame after the one frame already partly in the kernel (the stream stays
     * parseable) and waits up to its close timeout (5 s) for the peer to read: a client
     * that drains, as this one does at once, gets the code. A reset or EOF without it means
     * the close frame was lost. */
    int got = 0, rc;
    int64_t deadline = rt_tc_now_ms() + 8000;
    slow.pong = false;
    for (;;) {
        rc = rt_tc_cf_next(&slow, &line2, (int)(deadline - rt_tc_now_ms()));
        if (rc != 0)
            break;
        got++;
    }
    fprintf(stderr, "  slow client: %d of %d publications, then %s close %d reset %d\n", got, N,
            rt_strerror(rc), slow.close_code, slow.reset);
    if (rc == RT_ETIMEOUT)
        fail_msg("slow client saw neither a close frame nor EOF within 8 s (%d of %d "
                 "publications delivered)",
                 got, N);
    if (rc == RT_EPROTO)
        fail_msg("slow client stream corrupted after %d publications", got);
    if (rc == RT_ECLOSED && slow.close_code != 3008)
        fail_msg("slow client closed with %d (reset %d) after %d publications, want close 3008",
                 slow.close_code, slow.reset, got);
    assert_true(got < N);
    /* And the server counted it as a 3008 disconnect (the metric is per node). */
    long long slow_after = metric_value(g_srv.port, slow_series);
    if (slow_after != slow_before + 1)
        fail_msg("%s went from %lld to %lld, want one more", slow_series, slow_before, slow_after);

    rt_tc_close(&slow);
    rt_tc_close(&fast);
    rt_tc_close(&api);
    rt_tc_http_resp_cleanup(&r);
    rt_buf_cleanup(&data);
    rt_buf_cleanup(&line);
    rt_buf_cleanup(&line2);
    CHECK_OTHERS();
}

/* ---- hostile tokens and keys (issue 7) ---- */

/* Sends a connect command carrying token (any bytes a JSON string may hold) on a fresh
 * WebSocket and requires close 3500 "invalid token": no reply, nothing else. */
static void expect_token_refused(const char *token, const char *what)
{
    rt_tc_conn_t c;
    rt_buf_t cmd = RT_BUF_INIT;
    ws_open(&c);
    rt_buf_printf(&cmd, "{\"id\":1,\"connect\":{\"token\":\"%s\"}}", token);
    rt_buf_append_byte(&cmd, 0);
    assert_int_equal(rt_tc_ws_send_text(&c, cstr(&cmd)), 0);
    rt_buf_t reason = RT_BUF_INIT;
    int code = 0;
    int rc = rt_tc_ws_wait_close(&c, &code, &reason, T_MS);
    if (rc != 0 || code != 3500 || strcmp(cstr(&reason), "invalid token") != 0)
        fail_msg("%s: want close 3500 \"invalid token\", got %s %d \"%s\"", what, rt_strerror(rc),
                 code, cstr(&reason));
    rt_buf_cleanup(&reason);
    rt_buf_cleanup(&cmd);
    rt_tc_close(&c);
}

/* A token from literal header and claims JSON with the signature segment sig (b64url). */
static void forged_token(rt_buf_t *out, const char *header, const char *claims, const char *sig)
{
    rt_b64_encode(out, header, strlen(header), true, false);
    rt_buf_append_byte(out, '.');
    rt_b64_encode(out, claims, strlen(claims), true, false);
    rt_buf_append_byte(out, '.');
    rt_buf_append_cstr(out, sig);
    rt_buf_append_byte(out, 0);
}

static void t_jwt_hostile_connect_tokens(void **state)
{
    rt_buf_t t = RT_BUF_INIT;

    forged_token(&t, "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"sub\":\"42\"}", "");
    expect_token_refused(cstr(&t), "alg none");
    rt_buf_reset(&t);
    forged_token(&t, "{\"alg\":\"HS256\"}", "{\"sub\":\"42\"}", "c2lnbmF0dXJl");
    expect_token_refused(cstr(&t), "forged HS256 signature");
    rt_buf_reset(&t);
    rt_tc_jwt_hs256(&t, "not-the-secret", "{\"sub\":\"42\"}");
    expect_token_refused(cstr(&t), "wrong secret");
    rt_buf_reset(&t);
    rt_tc_jwt_hs256(&t, "secret", "{\"sub\":\"42\",\"channel\":\"x\"}");
    expect_token_refused(cstr(&t), "connection token with a channel claim");
    expect_token_refused("!!!.@@@.###", "not base64url");
    expect_token_refused("eyJhbGciOiJIUzI1NiJ9", "one segment");

    /* A token near the WebSocket message limit: garbage segments, refused without a stall. */
    rt_buf_reset(&t);
    for (int seg = 0; seg < 3; seg++) {
        for (int i = 0; i < 21000; i++)
            rt_buf_append_byte(&t, 'A');
        if (seg < 2)
            rt_buf_append_byte(&t, '.');
    }
    rt_buf_append_byte(&t, 0);
    expect_token_refused(cstr(&t), "huge token");
    rt_buf_cleanup(&t);
    CHECK_OTHERS();
}

/* An expired token is an error reply (109), not a disconnect: the client may refresh. */
static void t_jwt_expired_connect_token(void **state)
{
    rt_tc_conn_t c;
    rt_buf_t t = RT_BUF_INIT, line = RT_BUF_INIT;
    rt_tc_jwt_hs256(&t, "secret", "{\"sub\":\"42\",\"exp\":1000000000}");
    ws_open(&c);
    rt_buf_t cmd = RT_BUF_INIT;
    rt_buf_printf(&cmd, "{\"id\":1,\"connect\":{\"token\":\"%s\"}}", cstr(&t));
    rt_buf_append_byte(&cmd, 0);
    assert_int_equal(rt_tc_ws_send_text(&c, cstr(&cmd)), 0);
    assert_int_equal(rt_tc_cf_next(&c, &line, T_MS), 0);
    expect_line(&line, "{\"id\":1,\"error\":{\"code\":109,\"message\":\"token expired\"}}",
                "expired token");
    rt_tc_close(&c);
    rt_buf_cleanup(&cmd);
    rt_buf_cleanup(&line);
    rt_buf_cleanup(&t);
    CHECK_OTHERS();
}

/* A subscription token for another channel or user is an invalid token (3500). */
static void t_jwt_subscription_token_bound(void **state)
{
    static const char *claims[] = {
        "{\"sub\":\"42\",\"channel\":\"other\"}",
        "{\"sub\":\"43\",\"channel\":\"mine\"}",
        "{\"channel\":\"mine\"}",
    };
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        rt_tc_conn_t c;
        rt_buf_t t = RT_BUF_INIT, cmd = RT_BUF_INIT;
        open_connected(&c, NULL);
        rt_tc_jwt_hs256(&t, "secret", claims[i]);
        rt_buf_printf(&cmd, "{\"id\":2,\"subscribe\":{\"channel\":\"mine\",\"token\":\"%s\"}}",
                      cstr(&t));
        rt_buf_append_byte(&cmd, 0);
        assert_int_equal(rt_tc_ws_send_text(&c, cstr(&cmd)), 0);
        expect_close(&c, 3500, 0, "invalid token", true);
        rt_tc_close(&c);
        rt_buf_cleanup(&t);
        rt_buf_cleanup(&cmd);
    }
    CHECK_OTHERS();
}

/* Wrong API keys in every place a key may come from, over and over: 401 each time, and
 * the right key still works. */
static void t_api_wrong_keys(void **state)
{
    static const char *hdrs[] = {"X-API-Key: wrong\r\n",
                                 "X-API-Key: \r\n",
                                 "Authorization: apikey wrong\r\n",
                                 "Authorization: apikey\r\n",
                                 "X-API-Key: keyX\r\n",
                                 "X-API-Key: ke\r\n",
                                 NULL};
    rt_tc_http_resp_t r;
    rt_tc_http_resp_init(&r);
    for (int round = 0; round < 20; round++) {
        for (int i = 0; hdrs[i] != NULL; i++) {
            assert_int_equal(rt_tc_http_once(g_srv.port, "POST", "/api/info", hdrs[i], "{}", 2, &r),
                             0);
            if (r.status != 401)
                fail_msg("%.*s: want 401, got %d", (int)strlen(hdrs[i]) - 2, hdrs[i], r.status);
        }
        assert_int_equal(
            rt_tc_http_once(g_srv.port, "POST", "/api/info?api_key=wrong", NULL, "{}", 2, &r), 0);
        assert_int_equal(r.status, 401);
    }
    assert_int_equal(rt_tc_http_once(g_srv.port, "POST", "/api/info", API_HDR, "{}", 2, &r), 0);
    assert_int_equal(r.status, 200);
    rt_tc_http_resp_cleanup(&r);
    CHECK_OTHERS();
}

/* ---- runner ---- */

static int group_setup(void **state)
{
    int rc = rt_tp_start(&g_srv, g_binary, CONFIG, 10000);
    if (rc != 0) {
        fprintf(stderr, "test_hostile: cannot start rotor from %s: %s\n", g_binary,
                rt_strerror(rc));
        return -1;
    }
    g_started = true;
    g_by.fd = -1;
    return 0;
}

static int group_teardown(void **state)
{
    char desc[96];
    rt_buf_t tail = RT_BUF_INIT;
    if (!g_started)
        return 0;
    rt_tc_close(&g_by);
    bool was_alive = rt_tp_alive(&g_srv);
    int rc = rt_tp_stop(&g_srv, true);

    if (!was_alive || rc != 0) {
        rt_tp_log_tail(&g_srv, &tail, 3000);
        fprintf(stderr, "test_hostile: rotor %s on stop (%s); log in %s\n%.*s\n",
                was_alive ? "did not exit cleanly" : "had already died",
                rt_tp_describe(&g_srv, desc, sizeof(desc)), g_srv.log, (int)tail.len, cstr(&tail));
        rt_buf_cleanup(&tail);
        return -1;
    }
    rt_tp_remove_dir(&g_srv);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s /path/to/rotor\n", argv[0]);
        return 2;
    }
    g_binary = argv[1];
    rt_tc_jwt_hs256(&g_token, "secret", "{\"sub\":\"42\"}");

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_golden_connect),
        cmocka_unit_test(t_golden_subscribe),
        cmocka_unit_test(t_golden_client_publish),
        cmocka_unit_test(t_golden_api_push),
        cmocka_unit_test(t_golden_raw_data_bytes),
        cmocka_unit_test(t_golden_connect_and_subscribe_one_frame),
        cmocka_unit_test(t_golden_batch_trailing_newline),
        cmocka_unit_test(t_bad_invalid_json),
        cmocka_unit_test(t_bad_id_only),
        cmocka_unit_test(t_bad_obsolete_ping),
        cmocka_unit_test(t_bad_empty_frame),
        cmocka_unit_test(t_bad_subscribe_before_connect),
        cmocka_unit_test(t_bad_pong_before_connect),
        cmocka_unit_test(t_bad_pong_before_ping),
        cmocka_unit_test(t_bad_second_connect),
        cmocka_unit_test(t_bad_invalid_utf8),
        cmocka_unit_test(t_size_65536_accepted),
        cmocka_unit_test(t_size_65537_closes_1009),
        cmocka_unit_test(t_size_huge_length_header),
        cmocka_unit_test(t_frame_protocol_errors),
        cmocka_unit_test(t_frame_fragmented_with_ping),
        cmocka_unit_test(t_frame_ping_pong),
        cmocka_unit_test(t_frame_client_close_echoed),
        cmocka_unit_test(t_stale_3502),
        cmocka_unit_test(t_mid_frame_before_connect_3502),
        cmocka_unit_test(t_mid_frame_connected_3012),
        cmocka_unit_test(t_http_websocket_get_without_upgrade),
        cmocka_unit_test(t_http_unknown_path_404),
        cmocka_unit_test(t_http_body_too_large_413),
        cmocka_unit_test(t_http_headers_too_large_431),
        cmocka_unit_test(t_http_garbage_400),
        cmocka_unit_test(t_http_pipelining),
        cmocka_unit_test(t_http_keepalive),
        cmocka_unit_test(t_http_slowloris),
        cmocka_unit_test(t_slow_reader_disconnected),
        cmocka_unit_test(t_jwt_hostile_connect_tokens),
        cmocka_unit_test(t_jwt_expired_connect_token),
        cmocka_unit_test(t_jwt_subscription_token_bound),
        cmocka_unit_test(t_api_wrong_keys),
    };
    int failed = cmocka_run_group_tests_name("hostile", tests, group_setup, group_teardown);
    rt_buf_cleanup(&g_token);
    return failed ? 1 : 0;
}
