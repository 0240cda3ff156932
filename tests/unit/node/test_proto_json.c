/* JSON client protocol: Command decoder and Reply/Push encoders (PROTOCOL.md §1-§5, §8.3,
 * §12.7). Decoded commands are flattened into a canonical text so a whole frame, each line on
 * its own and every truncation can be compared with one expected string. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "node/codes.h"
#include "node/proto.h"

/* ------------------------------------------------------------------------------------------
 * Decoder helpers
 */

static const char *type_name(node_cmd_type_t t)
{
    static const char *names[] = {"PONG",    "CONNECT",  "SUBSCRIBE",      "UNSUBSCRIBE",
                                  "PUBLISH", "PRESENCE", "PRESENCE_STATS", "HISTORY",
                                  "RPC",     "SEND",     "REFRESH",        "SUB_REFRESH",
                                  "UNKNOWN"};
    return names[t];
}

static void put_s(rt_buf_t *b, const char *k, rt_str_t s)
{
    if (s.n > 0)
        rt_buf_printf(b, " %s=" RT_STR_FMT, k, RT_STR_ARG(s));
}

static void put_flag(rt_buf_t *b, const char *k, bool v)
{
    if (v)
        rt_buf_printf(b, " %s", k);
}

static void describe(rt_buf_t *b, const node_cmd_t *c)
{
    rt_buf_printf(b, "%s", type_name(c->type));
    if (c->id != 0)
        rt_buf_printf(b, " id=%u", c->id);
    put_s(b, "ch", c->channel);
    put_s(b, "tok", c->token);
    put_s(b, "data", c->data);
    put_s(b, "name", c->name);
    put_s(b, "ver", c->version);
    put_s(b, "method", c->method);
    put_s(b, "epoch", c->epoch);
    put_s(b, "delta", c->delta);
    put_flag(b, "recover", c->recover);
    put_flag(b, "positioned", c->positioned);
    put_flag(b, "recoverable", c->recoverable);
    put_flag(b, "join_leave", c->join_leave);
    if (c->offset != 0)
        rt_buf_printf(b, " offset=%llu", (unsigned long long)c->offset);
    if (c->flag != 0)
        rt_buf_printf(b, " flag=%lld", (long long)c->flag);
    if (c->ext_type != 0)
        rt_buf_printf(b, " type=%d", c->ext_type);
    put_flag(b, "tf", c->has_tf);
    put_flag(b, "reverse", c->reverse);
    if (c->has_limit)
        rt_buf_printf(b, " limit=%d", c->limit);
    if (c->has_since)
        rt_buf_printf(b, " since");
    put_s(b, "since_epoch", c->since_epoch);
    for (size_t i = 0; i < c->nsubs; i++) {
        const node_sub_recover_t *s = &c->subs[i];
        rt_buf_printf(b, " sub[" RT_STR_FMT "%s,%llu," RT_STR_FMT "," RT_STR_FMT "]",
                      RT_STR_ARG(s->channel), s->recover ? ",recover" : "",
                      (unsigned long long)s->offset, RT_STR_ARG(s->epoch), RT_STR_ARG(s->delta));
    }
}

/* Reads frame[0..n) to the end: "CMD1 | CMD2 | EPROTO" (terminal status last: "END" when the
 * frame was exhausted, "EPROTO" on error). Checks that RT_EPROTO is sticky. */
static void read_frame(const char *frame, size_t n, rt_buf_t *out)
{
    node_json_reader_t r;
    node_cmd_t cmd;
    node_json_reader_init(&r, (const uint8_t *)frame, n);
    for (;;) {
        int rc = node_json_reader_next(&r, &cmd);
        if (rc == 1) {
            describe(out, &cmd);
            rt_buf_append_cstr(out, " | ");
            continue;
        }
        if (rc == 0) {
            rt_buf_append_cstr(out, "END");
            assert_int_equal(node_json_reader_next(&r, &cmd), 0);
        } else {
            assert_int_equal(rc, RT_EPROTO);
            rt_buf_append_cstr(out, "EPROTO");
            assert_int_equal(node_json_reader_next(&r, &cmd), RT_EPROTO);
        }
        break;
    }
    node_json_reader_cleanup(&r);
}

/* Appends the commands of frame[0..n) without the terminal status (a frame of blank lines
 * only reports EPROTO, which is dropped too). */
static void commands_of(const char *frame, size_t n, rt_buf_t *out)
{
    size_t start = out->len;
    read_frame(frame, n, out);
    while (out->len > start && out->p[out->len - 1] != ' ')
        out->len--;
}

/* The frame must decode to `want`. Also: every line on its own decodes to its own part of the
 * result; every split of the frame at a newline into two frames gives the same commands; and
 * every truncation returns a prefix of the same commands before it ends or fails. */
static void expect_frame(const char *frame, const char *want)
{
    size_t n = strlen(frame);
    rt_buf_t got = RT_BUF_INIT;
    read_frame(frame, n, &got);
    rt_buf_append_byte(&got, 0);
    assert_string_equal((const char *)got.p, want);

    /* Commands of the whole frame, without the terminal status. */
    got.len--;
    size_t cmds_len = got.len;
    while (cmds_len > 0 && got.p[cmds_len - 1] != ' ')
        cmds_len--;
    bool whole_ok = strcmp(want + strlen(want) - 3, "END") == 0;

    /* Each line individually, concatenated, matches when the whole frame succeeds. */
    if (whole_ok) {
        rt_buf_t lines = RT_BUF_INIT;
        size_t pos = 0;
        while (pos < n) {
            const char *nl = memchr(frame + pos, '\n', n - pos);
            size_t len = nl ? (size_t)(nl - (frame + pos)) : n - pos;
            rt_buf_t one = RT_BUF_INIT;
            read_frame(frame + pos, len, &one);
            rt_str_t s = rt_buf_str(&one);
            if (!rt_str_eq_c(s, "EPROTO")) { /* a blank line alone is an empty frame */
                assert_true(s.n > 3 && memcmp(s.p + s.n - 3, "END", 3) == 0);
                rt_buf_append(&lines, s.p, s.n - 3);
            }
            rt_buf_cleanup(&one);
            pos += len + 1;
        }
        assert_int_equal(lines.len, cmds_len);
        assert_memory_equal(lines.p, got.p, cmds_len);
        rt_buf_cleanup(&lines);
    }

    /* Split into two frames at every newline. */
    for (size_t i = 0; whole_ok && i < n; i++) {
        if (frame[i] != '\n')
            continue;
        rt_buf_t flat = RT_BUF_INIT;
        commands_of(frame, i, &flat);
        commands_of(frame + i + 1, n - i - 1, &flat);
        assert_int_equal(flat.len, cmds_len);
        assert_memory_equal(flat.p, got.p, cmds_len);
        rt_buf_cleanup(&flat);
    }

    /* Every truncation never crashes; of a valid frame it returns a prefix of the commands
     * (a strict prefix of a valid line is never valid unless only whitespace was cut). */
    for (size_t i = 0; i < n; i++) {
        rt_buf_t part = RT_BUF_INIT;
        read_frame(frame, i, &part);
        rt_str_t s = rt_buf_str(&part);
        if (!whole_ok) {
            rt_buf_cleanup(&part);
            continue;
        }
        size_t k = s.n;
        while (k > 0 && s.p[k - 1] != ' ')
            k--;
        assert_true(k <= got.len);
        assert_memory_equal(s.p, got.p, k);
        rt_buf_cleanup(&part);
    }
    rt_buf_cleanup(&got);
}

/* ------------------------------------------------------------------------------------------
 * Decoder tests
 */

static void test_centrifuge_js_first_frame(void **state)
{
    expect_frame("{\"connect\":{\"token\":\"eyJhbGciOi...\",\"name\":\"js\"},\"id\":1}\n"
                 "{\"subscribe\":{\"channel\":\"chat:index\",\"flag\":1},\"id\":2}\n"
                 "{\"subscribe\":{\"channel\":\"news\",\"flag\":1},\"id\":3}",
                 "CONNECT id=1 tok=eyJhbGciOi... name=js | "
                 "SUBSCRIBE id=2 ch=chat:index flag=1 | SUBSCRIBE id=3 ch=news flag=1 | END");
    /* centrifuge-js 5.8.0 as observed (§12.6), and its resubscribe with recovery. */
    expect_frame("{\"connect\":{\"token\":\"TOK\",\"name\":\"js\"},\"id\":1}\n"
                 "{\"subscribe\":{\"channel\":\"ch\",\"flag\":1},\"id\":2}",
                 "CONNECT id=1 tok=TOK name=js | SUBSCRIBE id=2 ch=ch flag=1 | END");
    expect_frame("{\"subscribe\":{\"channel\":\"ch\",\"flag\":1,\"recover\":true,\"offset\":6,"
                 "\"epoch\":\"E\"},\"id\":4}",
                 "SUBSCRIBE id=4 ch=ch epoch=E recover offset=6 flag=1 | END");
    expect_frame(
        "{\"subscribe\":{\"channel\":\"chat:index\",\"recover\":true,\"epoch\":\"qWeRtYuI\","
        "\"offset\":17,\"flag\":1},\"id\":14}",
        "SUBSCRIBE id=14 ch=chat:index epoch=qWeRtYuI recover offset=17 flag=1 | END");
    expect_frame("{\"subscribe\":{\"channel\":\"c\",\"token\":\"T\",\"data\":{\"x\":1},"
                 "\"positioned\":true,\"recoverable\":true,\"join_leave\":true,\"delta\":"
                 "\"fossil\",\"flag\":3},\"id\":9}",
                 "SUBSCRIBE id=9 ch=c tok=T data={\"x\":1} delta=fossil positioned recoverable "
                 "join_leave flag=3 | END");
}

static void test_pong(void **state)
{
    expect_frame("{}", "PONG | END");
    expect_frame("{}\n", "PONG | END");
    expect_frame(" { } ", "PONG | END");
    /* id 0 without send is a pong whatever else it has (§1.1). */
    expect_frame("{\"connect\":{}}", "PONG | END");
    expect_frame("{\"connect\":{\"token\":\"x\"},\"id\":0}", "PONG | END");
    expect_frame("{\"id\":null,\"subscribe\":{\"channel\":\"a\"}}", "PONG | END");
    expect_frame("{\"ping\":{}}", "PONG | END");
    expect_frame("{\"whatever\":[1,2]}", "PONG | END");
}

static void test_unknown(void **state)
{
    expect_frame("{\"id\":5}", "UNKNOWN id=5 | END");
    expect_frame("{\"ping\":{},\"id\":3}", "UNKNOWN id=3 | END");
    expect_frame("{\"id\":3,\"connect\":null}", "UNKNOWN id=3 | END");
    expect_frame("{\"id\":4294967295}", "UNKNOWN id=4294967295 | END");
}

static void test_every_command(void **state)
{
    expect_frame("{\"unsubscribe\":{\"channel\":\"chat:index\"},\"id\":5}\n"
                 "{\"publish\":{\"channel\":\"chat:index\",\"data\":{\"text\":\"hi\"}},\"id\":6}\n"
                 "{\"presence\":{\"channel\":\"chat:index\"},\"id\":7}\n"
                 "{\"presence_stats\":{\"channel\":\"chat:index\"},\"id\":8}\n"
                 "{\"rpc\":{\"method\":\"getProfile\",\"data\":{\"id\":1}},\"id\":10}\n"
                 "{\"send\":{\"data\":{\"typing\":true}}}\n"
                 "{\"refresh\":{\"token\":\"eyJ\\u2026\"},\"id\":11}\n"
                 "{\"sub_refresh\":{\"channel\":\"$secret\",\"token\":\"eyJ\"},\"id\":12}",
                 "UNSUBSCRIBE id=5 ch=chat:index | "
                 "PUBLISH id=6 ch=chat:index data={\"text\":\"hi\"} | "
                 "PRESENCE id=7 ch=chat:index | PRESENCE_STATS id=8 ch=chat:index | "
                 "RPC id=10 data={\"id\":1} method=getProfile | SEND data={\"typing\":true} | "
                 "REFRESH id=11 tok=eyJ\xe2\x80\xa6 | SUB_REFRESH id=12 ch=$secret tok=eyJ | END");
    /* send may carry an id; rpc method may be empty. */
    expect_frame("{\"send\":{\"data\":1},\"id\":2}", "SEND id=2 data=1 | END");
    expect_frame("{\"rpc\":{},\"id\":2}", "RPC id=2 | END");
    /* Reference order picks the first present field; a null one counts as absent. */
    expect_frame("{\"subscribe\":{\"channel\":\"s\"},\"connect\":{\"name\":\"n\"},\"id\":1}",
                 "CONNECT id=1 name=n | END");
    expect_frame("{\"connect\":null,\"subscribe\":{\"channel\":\"x\"},\"id\":2}",
                 "SUBSCRIBE id=2 ch=x | END");
    expect_frame("{\"sub_refresh\":{\"channel\":\"a\"},\"refresh\":{\"token\":\"t\"},\"id\":2}",
                 "REFRESH id=2 tok=t | END");
    /* id 0 with send: dispatched in reference order, connect first. */
    expect_frame("{\"send\":{},\"connect\":{\"name\":\"n\"}}", "CONNECT name=n | END");
    /* Unknown keys anywhere are ignored; extensions are surfaced. */
    expect_frame("{\"id\":1,\"publish\":{\"channel\":\"c\",\"data\":1,\"key\":\"k\",\"foo\":[1]},"
                 "\"bar\":{\"x\":null}}",
                 "PUBLISH id=1 ch=c data=1 | END");
    expect_frame("{\"publish\":{\"channel\":\"c\",\"data\":1,\"type\":1},\"id\":1}",
                 "PUBLISH id=1 ch=c data=1 type=1 | END");
    expect_frame("{\"subscribe\":{\"channel\":\"c\",\"tf\":{\"op\":\"and\"},\"type\":4},\"id\":1}",
                 "SUBSCRIBE id=1 ch=c type=4 tf | END");
    expect_frame("{\"connect\":{\"headers\":{\"a\":\"b\"},\"version\":\"1.0\",\"data\":\"d\","
                 "\"flag\":-1},\"id\":1}",
                 "CONNECT id=1 data=\"d\" ver=1.0 flag=-1 | END");
}

static void test_history(void **state)
{
    expect_frame("{\"history\":{\"channel\":\"chat:index\",\"limit\":2,\"since\":{\"offset\":15,"
                 "\"epoch\":\"qWeRtYuI\"}},\"id\":9}",
                 "HISTORY id=9 ch=chat:index offset=15 limit=2 since since_epoch=qWeRtYuI | END");
    expect_frame("{\"history\":{\"channel\":\"chat:index\",\"limit\":1,\"reverse\":true},\"id\":4}",
                 "HISTORY id=4 ch=chat:index reverse limit=1 | END");
    expect_frame("{\"history\":{\"channel\":\"c\"},\"id\":4}", "HISTORY id=4 ch=c | END");
    expect_frame("{\"history\":{\"channel\":\"c\",\"limit\":0,\"since\":{}},\"id\":4}",
                 "HISTORY id=4 ch=c limit=0 since | END");
    expect_frame("{\"history\":{\"channel\":\"c\",\"limit\":-1,\"since\":null},\"id\":4}",
                 "HISTORY id=4 ch=c limit=-1 | END");
}

static void test_bad_types(void **state)
{
    static const char *bad[] = {
        "{\"subscribe\":{\"channel\":5},\"id\":1}",
        "{\"subscribe\":{\"channel\":\"a\"},\"id\":-1}",
        "{\"subscribe\":{\"channel\":\"a\"},\"id\":\"1\"}",
        "{\"subscribe\":{\"channel\":\"a\"},\"id\":1.0}",
        "{\"subscribe\":{\"channel\":\"a\"},\"id\":1e2}",
        "{\"subscribe\":{\"channel\":\"a\"},\"id\":4294967296}",
        "{\"subscribe\":{\"channel\":\"a\",\"offset\":1.5},\"id\":1}",
        "{\"subscribe\":{\"channel\":\"a\",\"offset\":-1},\"id\":1}",
        "{\"subscribe\":{\"channel\":\"a\",\"offset\":18446744073709551616},\"id\":1}",
        "{\"subscribe\":{\"channel\":\"a\",\"recover\":\"true\"},\"id\":1}",
        "{\"subscribe\":{\"channel\":\"a\",\"recover\":1},\"id\":1}",
        "{\"subscribe\":{\"channel\":\"a\",\"flag\":\"1\"},\"id\":1}",
        "{\"subscribe\":{\"channel\":\"a\",\"tf\":[]},\"id\":1}",
        "{\"subscribe\":{\"channel\":\"a\",\"type\":2147483648},\"id\":1}",
        "{\"subscribe\":{\"channel\":[\"a\"]},\"id\":1}",
        "{\"subscribe\":\"chat\",\"id\":1}",
        "{\"connect\":5,\"id\":1}",
        "{\"connect\":[],\"id\":1}",
        "{\"connect\":{\"token\":1},\"id\":1}",
        "{\"connect\":{\"subs\":[]},\"id\":1}",
        "{\"connect\":{\"subs\":{\"a\":5}},\"id\":1}",
        "{\"connect\":{\"subs\":{\"a\":{\"offset\":\"1\"}}},\"id\":1}",
        "{\"connect\":{\"headers\":{\"a\":1}},\"id\":1}",
        "{\"connect\":{\"headers\":[]},\"id\":1}",
        "{\"history\":{\"channel\":\"c\",\"since\":5},\"id\":1}",
        "{\"history\":{\"channel\":\"c\",\"since\":{\"offset\":true}},\"id\":1}",
        "{\"history\":{\"channel\":\"c\",\"limit\":2147483648},\"id\":1}",
        "{\"history\":{\"channel\":\"c\",\"reverse\":0},\"id\":1}",
        "{\"rpc\":{\"method\":{}},\"id\":1}",
        "{\"refresh\":{\"token\":false},\"id\":1}",
        "{\"publish\":{\"channel\":\"c\",\"type\":\"x\"},\"id\":1}",
        "{\"send\":true}",
        "{\"ping\":1,\"id\":1}",
        /* a bad field in a request that is not the selected one still fails the command */
        "{\"connect\":{},\"subscribe\":{\"channel\":1},\"id\":1}",
        "{\"subscribe\":{\"channel\":1}}",
        /* not a Command / not JSON */
        "[]",
        "null",
        "\"x\"",
        "1",
        "{",
        "{\"id\":1,}",
        "{\"id\":01}",
        "{'id':1}",
        "{\"id\":1}{\"id\":2}",
        "{\"id\":1} x",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\xff\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rt_buf_t got = RT_BUF_INIT;
        read_frame(bad[i], strlen(bad[i]), &got);
        rt_buf_append_byte(&got, 0);
        if (strcmp((const char *)got.p, "EPROTO") != 0)
            fail_msg("%s decoded as %s", bad[i], (const char *)got.p);
        rt_buf_cleanup(&got);
        expect_frame(bad[i], "EPROTO");
    }
}

static void test_bad_line_after_good(void **state)
{
    expect_frame("{}\n{bad", "PONG | EPROTO");
    expect_frame("{\"connect\":{},\"id\":1}\n{\"id\":\"2\"}\n{\"id\":3}", "CONNECT id=1 | EPROTO");
    expect_frame("{\"id\":1}\nnull", "UNKNOWN id=1 | EPROTO");
}

static void test_empty_and_blank(void **state)
{
    expect_frame("", "EPROTO");
    expect_frame("\n", "EPROTO");
    expect_frame("  \n\r\n\t", "EPROTO");
    expect_frame("\n{}\n\n{\"id\":1,\"presence\":{\"channel\":\"a\"}}\n",
                 "PONG | PRESENCE id=1 ch=a | END");
    expect_frame("{\"id\":1,\"presence\":{\"channel\":\"a\"}}\r\n{}\r\n",
                 "PRESENCE id=1 ch=a | PONG | END");
    /* a NUL byte is neither blank nor JSON */
    node_json_reader_t r;
    node_cmd_t cmd;
    node_json_reader_init(&r, (const uint8_t *)"{}\n\0", 4);
    assert_int_equal(node_json_reader_next(&r, &cmd), 1);
    assert_int_equal(node_json_reader_next(&r, &cmd), RT_EPROTO);
    node_json_reader_cleanup(&r);
}

static void test_escapes(void **state)
{
    expect_frame("{\"subscribe\":{\"channel\":\"a\\u0062c\"},\"id\":1}",
                 "SUBSCRIBE id=1 ch=abc | END");
    expect_frame("{\"subscribe\":{\"channel\":\"q\\\"\\\\\\/\\n\",\"token\":\"\\ud83d\\ude00\"},"
                 "\"id\":1}",
                 "SUBSCRIBE id=1 ch=q\"\\/\n tok=\xf0\x9f\x98\x80 | END");
    /* escaped keys are matched after unescaping */
    expect_frame("{\"\\u0069d\":3,\"unsubscribe\":{\"ch\\u0061nnel\":\"x\"}}",
                 "UNSUBSCRIBE id=3 ch=x | END");
    /* raw data keeps its escapes */
    expect_frame("{\"publish\":{\"channel\":\"c\\u00e9\",\"data\":\"a\\nb\\u0041\"},\"id\":1}",
                 "PUBLISH id=1 ch=c\xc3\xa9 data=\"a\\nb\\u0041\" | END");
}

static void test_raw_data(void **state)
{
    expect_frame("{\"publish\":{\"channel\":\"c\",\"data\":1.10},\"id\":1}",
                 "PUBLISH id=1 ch=c data=1.10 | END");
    expect_frame("{\"publish\":{\"channel\":\"c\",\"data\":1180591620717411303424},\"id\":1}",
                 "PUBLISH id=1 ch=c data=1180591620717411303424 | END");
    expect_frame(
        "{\"publish\":{\"channel\":\"c\",\"data\":{ \"a\" : [1, {\"b\":null}] }},\"id\":1}",
        "PUBLISH id=1 ch=c data={ \"a\" : [1, {\"b\":null}] } | END");
    expect_frame("{\"publish\":{\"channel\":\"c\",\"data\":[true,false,-0.5e3]},\"id\":1}",
                 "PUBLISH id=1 ch=c data=[true,false,-0.5e3] | END");
    /* null data is absent */
    expect_frame("{\"publish\":{\"channel\":\"c\",\"data\":null},\"id\":1}",
                 "PUBLISH id=1 ch=c | END");
    /* nesting deeper than the parser's limit is not a Command */
    rt_buf_t deep = RT_BUF_INIT;
    rt_buf_append_cstr(&deep, "{\"publish\":{\"channel\":\"c\",\"data\":");
    for (int i = 0; i < 100; i++)
        rt_buf_append_byte(&deep, '[');
    for (int i = 0; i < 100; i++)
        rt_buf_append_byte(&deep, ']');
    rt_buf_append_cstr(&deep, "},\"id\":1}");
    rt_buf_append_byte(&deep, 0);
    expect_frame((const char *)deep.p, "EPROTO");
    rt_buf_cleanup(&deep);
}

static void test_connect_subs(void **state)
{
    expect_frame("{\"connect\":{\"token\":\"t\",\"subs\":{\"#42\":{\"recover\":true,\"offset\":4,"
                 "\"epoch\":\"qWeRtYuI\"},\"news\":{},\"n\\u0065ws2\":null,\"d\":{\"delta\":"
                 "\"fossil\",\"recover\":false}},\"name\":\"js\"},\"id\":1}",
                 "CONNECT id=1 tok=t name=js sub[#42,recover,4,qWeRtYuI,] sub[news,0,,] "
                 "sub[news2,0,,] sub[d,0,,fossil] | END");
    /* duplicate channel: the later entry wins and the channel appears once */
    expect_frame("{\"connect\":{\"subs\":{\"a\":{\"offset\":1},\"b\":{},\"a\":{\"offset\":2}}},"
                 "\"id\":1}",
                 "CONNECT id=1 sub[a,2,,] sub[b,0,,] | END");
    expect_frame("{\"connect\":{\"subs\":{}},\"id\":1}", "CONNECT id=1 | END");
    /* a second connect in the frame gets its own subs */
    expect_frame("{\"connect\":{\"subs\":{\"x\":{}}},\"id\":1}\n"
                 "{\"connect\":{\"subs\":{\"y\":{},\"z\":{}}},\"id\":2}",
                 "CONNECT id=1 sub[x,0,,] | CONNECT id=2 sub[y,0,,] sub[z,0,,] | END");
}

/* Many escaped strings in one command must all stay valid (no scratch reallocation). */
static void test_many_escaped_strings(void **state)
{
    rt_buf_t f = RT_BUF_INIT;
    rt_buf_t want = RT_BUF_INIT;
    rt_buf_append_cstr(&f, "{\"connect\":{\"token\":\"\\u0074\",\"subs\":{");
    rt_buf_append_cstr(&want, "CONNECT id=7 tok=t");
    for (int i = 0; i < 300; i++) {
        rt_buf_printf(&f, "%s\"c\\u0068%d\":{\"epoch\":\"\\u0045%d\",\"recover\":true}",
                      i ? "," : "", i, i);
        rt_buf_printf(&want, " sub[ch%d,recover,0,E%d,]", i, i);
    }
    rt_buf_append_cstr(&f, "}},\"id\":7}");
    rt_buf_append_cstr(&want, " | END");
    rt_buf_append_byte(&f, 0);
    rt_buf_append_byte(&want, 0);
    rt_buf_t got = RT_BUF_INIT;
    read_frame((const char *)f.p, f.len - 1, &got);
    rt_buf_append_byte(&got, 0);
    assert_string_equal((const char *)got.p, (const char *)want.p);
    rt_buf_cleanup(&got);
    rt_buf_cleanup(&f);
    rt_buf_cleanup(&want);
}

/* ------------------------------------------------------------------------------------------
 * Encoder helpers
 */

#define EXPECT_BUF(b, lit)                                                                         \
    do {                                                                                           \
        rt_buf_append_byte((b), 0);                                                                \
        assert_string_equal((const char *)(b)->p, (lit));                                          \
        assert_true(rt_json_valid((const char *)(b)->p, (b)->len - 1));                            \
        rt_buf_reset(b);                                                                           \
    } while (0)

static broker_pub_t make_pub(const char *channel, const char *data, uint64_t offset)
{
    broker_pub_t p;
    memset(&p, 0, sizeof(p));
    p.channel = rt_str_c(channel);
    p.data = rt_str_c(data);
    p.offset = offset;
    return p;
}

static const rt_client_info_t info42 = {.user = RT_STR("42"), .client = RT_STR("c3d1\xe2\x80\xa6")};

/* ------------------------------------------------------------------------------------------
 * Encoder tests: PROTOCOL.md examples, byte-exact
 */

static void test_replies_section3(void **state)
{
    rt_buf_t b = RT_BUF_INIT;

    node_connect_result_t cr = {.client = RT_STR("5b9a3c0e-6f3a-4f2b-9a1e-2d1c7a6b8e11"),
                                .version = RT_STR("6.9.1 OSS"),
                                .expires = true,
                                .ttl = 3597,
                                .ping = 25,
                                .pong = true};
    assert_int_equal(node_json_reply_connect(&b, 1, &cr), 0);
    EXPECT_BUF(&b, "{\"id\":1,\"connect\":{\"client\":\"5b9a3c0e-6f3a-4f2b-9a1e-2d1c7a6b8e11\","
                   "\"version\":\"6.9.1 OSS\",\"expires\":true,\"ttl\":3597,\"ping\":25,"
                   "\"pong\":true}}");

    rt_str_t chans[] = {RT_STR("#42")};
    node_sub_result_t subs[] = {
        {.recoverable = true, .epoch = RT_STR("qWeRtYuI"), .offset = 4, .positioned = true}};
    node_connect_result_t cs = {.client = RT_STR("\xe2\x80\xa6"),
                                .version = RT_STR("\xe2\x80\xa6"),
                                .sub_channels = chans,
                                .subs = subs,
                                .nsubs = 1,
                                .ping = 25,
                                .pong = true};
    assert_int_equal(node_json_reply_connect(&b, 1, &cs), 0);
    EXPECT_BUF(&b,
               "{\"id\":1,\"connect\":{\"client\":\"\xe2\x80\xa6\",\"version\":\"\xe2\x80\xa6\","
               "\"subs\":{\"#42\":{\"recoverable\":true,\"epoch\":\"qWeRtYuI\",\"offset\":4,"
               "\"positioned\":true}},\"ping\":25,\"pong\":true}}");

    node_sub_result_t sr = {
        .recoverable = true, .epoch = RT_STR("qWeRtYuI"), .offset = 17, .positioned = true};
    assert_int_equal(node_json_reply_subscribe(&b, 2, &sr), 0);
    EXPECT_BUF(&b, "{\"id\":2,\"subscribe\":{\"recoverable\":true,\"epoch\":\"qWeRtYuI\","
                   "\"offset\":17,\"positioned\":true}}");
    node_sub_result_t empty = {0};
    assert_int_equal(node_json_reply_subscribe(&b, 3, &empty), 0);
    EXPECT_BUF(&b, "{\"id\":3,\"subscribe\":{}}");
    node_json_reply_error(&b, 4, NODE_ERR_PERMISSION_DENIED, NULL, false);
    EXPECT_BUF(&b, "{\"id\":4,\"error\":{\"code\":103,\"message\":\"permission denied\"}}");

    node_json_reply_empty(&b, 5, "unsubscribe");
    EXPECT_BUF(&b, "{\"id\":5,\"unsubscribe\":{}}");
    node_json_reply_empty(&b, 6, "publish");
    EXPECT_BUF(&b, "{\"id\":6,\"publish\":{}}");

    rt_client_info_t pres[] = {
        {.user = RT_STR("42"),
         .client = RT_STR("c3d1\xe2\x80\xa6"),
         .conn_info = RT_STR("{\"name\":\"Alice\"}"),
         .chan_info = RT_STR("{\"role\":\"admin\"}")},
        {.user = RT_STR(""), .client = RT_STR("9a0f\xe2\x80\xa6")},
    };
    assert_int_equal(node_json_reply_presence(&b, 7, pres, 2), 0);
    EXPECT_BUF(&b, "{\"id\":7,\"presence\":{\"presence\":{\"c3d1\xe2\x80\xa6\":{\"user\":\"42\","
                   "\"client\":\"c3d1\xe2\x80\xa6\",\"conn_info\":{\"name\":\"Alice\"},"
                   "\"chan_info\":{\"role\":\"admin\"}},\"9a0f\xe2\x80\xa6\":{\"user\":\"\","
                   "\"client\":\"9a0f\xe2\x80\xa6\"}}}}");
    assert_int_equal(node_json_reply_presence(&b, 7, NULL, 0), 0);
    EXPECT_BUF(&b, "{\"id\":7,\"presence\":{\"presence\":{}}}");

    node_json_reply_presence_stats(&b, 8, 3, 2);
    EXPECT_BUF(&b, "{\"id\":8,\"presence_stats\":{\"num_clients\":3,\"num_users\":2}}");
    node_json_reply_presence_stats(&b, 8, 0, 0);
    EXPECT_BUF(&b, "{\"id\":8,\"presence_stats\":{\"num_clients\":0,\"num_users\":0}}");

    broker_pub_t h1 = make_pub("chat:index", "{\"text\":\"a\"}", 16);
    broker_pub_t h2 = make_pub("chat:index", "{\"text\":\"b\"}", 17);
    broker_pub_t *hist[] = {&h1, &h2};
    assert_int_equal(node_json_reply_history(&b, 9, hist, 2, RT_STR("qWeRtYuI"), 17), 0);
    EXPECT_BUF(&b, "{\"id\":9,\"history\":{\"publications\":[{\"data\":{\"text\":\"a\"},"
                   "\"offset\":16},{\"data\":{\"text\":\"b\"},\"offset\":17}],\"epoch\":"
                   "\"qWeRtYuI\",\"offset\":17}}");
    assert_int_equal(node_json_reply_history(&b, 9, NULL, 0, RT_STR(""), 0), 0);
    EXPECT_BUF(&b, "{\"id\":9,\"history\":{\"publications\":[],\"epoch\":\"\",\"offset\":0}}");

    assert_int_equal(node_json_reply_rpc(&b, 10, RT_STR("{\"name\":\"x\"}")), 0);
    EXPECT_BUF(&b, "{\"id\":10,\"rpc\":{\"data\":{\"name\":\"x\"}}}");
    assert_int_equal(node_json_reply_rpc(&b, 10, RT_STR_NULL), 0);
    EXPECT_BUF(&b, "{\"id\":10,\"rpc\":{}}");

    node_json_reply_refresh(&b, 11, "refresh", true, 3600);
    EXPECT_BUF(&b, "{\"id\":11,\"refresh\":{\"expires\":true,\"ttl\":3600}}");
    node_json_reply_refresh(&b, 12, "sub_refresh", true, 3600);
    EXPECT_BUF(&b, "{\"id\":12,\"sub_refresh\":{\"expires\":true,\"ttl\":3600}}");
    node_json_reply_refresh(&b, 13, "refresh", false, 3600);
    EXPECT_BUF(&b, "{\"id\":13,\"refresh\":{}}");
    rt_buf_cleanup(&b);
}

static void test_errors(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    node_json_reply_error(&b, 1, NODE_ERR_INTERNAL, NULL, node_error_temporary(NODE_ERR_INTERNAL));
    EXPECT_BUF(&b, "{\"id\":1,\"error\":{\"code\":100,\"message\":\"internal server error\","
                   "\"temporary\":true}}");
    node_json_reply_error(&b, 2, 400, "custom \"x\" <", false);
    EXPECT_BUF(&b, "{\"id\":2,\"error\":{\"code\":400,\"message\":\"custom \\\"x\\\" \\u003c\"}}");
    node_json_reply_error(&b, 3, 499, NULL, true); /* unknown code, no text */
    EXPECT_BUF(&b, "{\"id\":3,\"error\":{\"code\":499,\"temporary\":true}}");
    node_json_reply_error(&b, 4, NODE_ERR_UNRECOVERABLE_POSITION, NULL, false);
    EXPECT_BUF(&b, "{\"id\":4,\"error\":{\"code\":112,\"message\":\"unrecoverable position\"}}");
    rt_buf_cleanup(&b);
}

static void test_pushes_section4(void **state)
{
    rt_buf_t b = RT_BUF_INIT;

    broker_pub_t p1 = make_pub("chat:index", "{\"text\":\"hi\"}", 18);
    p1.has_info = true;
    p1.info = info42;
    p1.info.conn_info = RT_STR("{\"name\":\"Alice\"}");
    p1.epoch = RT_STR("qWeRtYuI");
    p1.time_ms = 1700000000000;
    assert_int_equal(node_json_push_pub(&b, &p1), 0);
    EXPECT_BUF(&b, "{\"push\":{\"channel\":\"chat:index\",\"pub\":{\"data\":{\"text\":\"hi\"},"
                   "\"info\":{\"user\":\"42\",\"client\":\"c3d1\xe2\x80\xa6\",\"conn_info\":"
                   "{\"name\":\"Alice\"}},\"offset\":18}}}");

    broker_tag_t tags[] = {{RT_STR("ticker"), RT_STR("X")}};
    broker_pub_t p2 = make_pub("chat:index", "{\"price\":10}", 0);
    p2.tags = tags;
    p2.ntags = 1;
    assert_int_equal(node_json_push_pub(&b, &p2), 0);
    EXPECT_BUF(&b, "{\"push\":{\"channel\":\"chat:index\",\"pub\":{\"data\":{\"price\":10},"
                   "\"tags\":{\"ticker\":\"X\"}}}}");

    assert_int_equal(node_json_push_join(&b, RT_STR("chat:index"), &info42, false), 0);
    EXPECT_BUF(&b, "{\"push\":{\"channel\":\"chat:index\",\"join\":{\"info\":{\"user\":\"42\","
                   "\"client\":\"c3d1\xe2\x80\xa6\"}}}}");
    assert_int_equal(node_json_push_join(&b, RT_STR("chat:index"), &info42, true), 0);
    EXPECT_BUF(&b, "{\"push\":{\"channel\":\"chat:index\",\"leave\":{\"info\":{\"user\":\"42\","
                   "\"client\":\"c3d1\xe2\x80\xa6\"}}}}");

    node_json_push_unsubscribe(&b, RT_STR("chat:index"), NODE_UNSUB_SERVER, NULL);
    EXPECT_BUF(&b, "{\"push\":{\"channel\":\"chat:index\",\"unsubscribe\":{\"code\":2000,"
                   "\"reason\":\"server unsubscribe\"}}}");

    node_sub_result_t ss = {
        .recoverable = true, .epoch = RT_STR("qWeRtYuI"), .offset = 5, .positioned = true};
    assert_int_equal(node_json_push_subscribe(&b, RT_STR("news"), &ss), 0);
    EXPECT_BUF(&b, "{\"push\":{\"channel\":\"news\",\"subscribe\":{\"recoverable\":true,"
                   "\"epoch\":\"qWeRtYuI\",\"offset\":5,\"positioned\":true}}}");

    assert_int_equal(node_json_push_message(&b, RT_STR("{\"alert\":\"maintenance\"}")), 0);
    EXPECT_BUF(&b, "{\"push\":{\"message\":{\"data\":{\"alert\":\"maintenance\"}}}}");

    node_json_push_disconnect(&b, NODE_DISCONNECT_SHUTDOWN, NULL);
    EXPECT_BUF(&b, "{\"push\":{\"disconnect\":{\"code\":3001,\"reason\":\"shutdown\"}}}");

    node_json_push_refresh(&b, true, 3600);
    EXPECT_BUF(&b, "{\"push\":{\"refresh\":{\"expires\":true,\"ttl\":3600}}}");
    rt_buf_cleanup(&b);
}

static void test_recovery_section83(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    broker_pub_t x = make_pub("chat:index", "{\"t\":\"x\"}", 18);
    broker_pub_t y = make_pub("chat:index", "{\"t\":\"y\"}", 19);
    broker_pub_t *pubs[] = {&x, &y};
    node_sub_result_t ok = {.recoverable = true,
                            .epoch = RT_STR("qWeRtYuI"),
                            .pubs = pubs,
                            .npubs = 2,
                            .recovered = true,
                            .offset = 17,
                            .positioned = true,
                            .was_recovering = true};
    assert_int_equal(node_json_reply_subscribe(&b, 14, &ok), 0);
    EXPECT_BUF(&b, "{\"id\":14,\"subscribe\":{\"recoverable\":true,\"epoch\":\"qWeRtYuI\","
                   "\"publications\":[{\"data\":{\"t\":\"x\"},\"offset\":18},{\"data\":{\"t\":"
                   "\"y\"},\"offset\":19}],\"recovered\":true,\"offset\":17,\"positioned\":true,"
                   "\"was_recovering\":true}}");
    node_sub_result_t lost = {.recoverable = true,
                              .epoch = RT_STR("ZxCvBnMa"),
                              .offset = 3,
                              .positioned = true,
                              .was_recovering = true};
    assert_int_equal(node_json_reply_subscribe(&b, 14, &lost), 0);
    EXPECT_BUF(&b, "{\"id\":14,\"subscribe\":{\"recoverable\":true,\"epoch\":\"ZxCvBnMa\","
                   "\"offset\":3,\"positioned\":true,\"was_recovering\":true}}");
    node_sub_result_t all = {.expires = true,
                             .ttl = 60,
                             .recoverable = true,
                             .epoch = RT_STR("E"),
                             .offset = 1,
                             .positioned = true,
                             .data = RT_STR("{\"a\":1}"),
                             .was_recovering = true};
    assert_int_equal(node_json_reply_subscribe(&b, 1, &all), 0);
    EXPECT_BUF(&b, "{\"id\":1,\"subscribe\":{\"expires\":true,\"ttl\":60,\"recoverable\":true,"
                   "\"epoch\":\"E\",\"offset\":1,\"positioned\":true,\"data\":{\"a\":1},"
                   "\"was_recovering\":true}}");
    rt_buf_cleanup(&b);
}

/* The server side of the §12.7 session, with the lines batched into frames as a server may. */
static void test_session_section127(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    node_connect_result_t cr = {.client = RT_STR("c3d1\xe2\x80\xa6"),
                                .version = RT_STR("6.9.1 OSS"),
                                .expires = true,
                                .ttl = 3600,
                                .ping = 25,
                                .pong = true};
    assert_int_equal(node_json_reply_connect(&b, 1, &cr), 0);
    rt_buf_append_byte(&b, '\n');
    node_sub_result_t sr = {
        .recoverable = true, .epoch = RT_STR("qWeRtYuI"), .offset = 17, .positioned = true};
    assert_int_equal(node_json_reply_subscribe(&b, 2, &sr), 0);
    rt_buf_append_byte(&b, 0);
    assert_string_equal((const char *)b.p,
                        "{\"id\":1,\"connect\":{\"client\":\"c3d1\xe2\x80\xa6\",\"version\":"
                        "\"6.9.1 OSS\",\"expires\":true,\"ttl\":3600,\"ping\":25,\"pong\":true}}\n"
                        "{\"id\":2,\"subscribe\":{\"recoverable\":true,\"epoch\":\"qWeRtYuI\","
                        "\"offset\":17,\"positioned\":true}}");
    rt_buf_reset(&b);

    assert_int_equal(node_json_push_join(&b, RT_STR("chat:index"), &info42, false), 0);
    EXPECT_BUF(&b, "{\"push\":{\"channel\":\"chat:index\",\"join\":{\"info\":{\"user\":\"42\","
                   "\"client\":\"c3d1\xe2\x80\xa6\"}}}}");

    node_json_reply_empty(&b, 3, "publish");
    EXPECT_BUF(&b, "{\"id\":3,\"publish\":{}}");
    broker_pub_t hi = make_pub("chat:index", "{\"text\":\"hi\"}", 18);
    hi.has_info = true;
    hi.info = info42;
    assert_int_equal(node_json_push_pub(&b, &hi), 0);
    EXPECT_BUF(&b, "{\"push\":{\"channel\":\"chat:index\",\"pub\":{\"data\":{\"text\":\"hi\"},"
                   "\"info\":{\"user\":\"42\",\"client\":\"c3d1\xe2\x80\xa6\"},\"offset\":18}}}");

    node_json_ping(&b);
    EXPECT_BUF(&b, "{}");

    broker_pub_t *hist[] = {&hi};
    assert_int_equal(node_json_reply_history(&b, 4, hist, 1, RT_STR("qWeRtYuI"), 18), 0);
    EXPECT_BUF(&b, "{\"id\":4,\"history\":{\"publications\":[{\"data\":{\"text\":\"hi\"},\"info\":"
                   "{\"user\":\"42\",\"client\":\"c3d1\xe2\x80\xa6\"},\"offset\":18}],\"epoch\":"
                   "\"qWeRtYuI\",\"offset\":18}}");

    node_json_reply_refresh(&b, 5, "refresh", true, 3600);
    EXPECT_BUF(&b, "{\"id\":5,\"refresh\":{\"expires\":true,\"ttl\":3600}}");
    rt_buf_cleanup(&b);
}

static void test_pub_payloads(void **state)
{
    rt_buf_t b = RT_BUF_INIT;

    /* raw CR/LF whitespace is dropped, everything else kept byte for byte */
    broker_pub_t p = make_pub("c", "{\r\n \"a\": 1.10,\n\"b\":\"x\\ny\"}", 0);
    assert_int_equal(node_json_write_pub(&b, &p, false), 0);
    EXPECT_BUF(&b, "{\"data\":{ \"a\": 1.10,\"b\":\"x\\ny\"}}");

    /* binary data: JSON clients cannot take it; the server API gets base64 */
    broker_pub_t bin = make_pub("c", "\x01\xff", 3);
    bin.data_binary = true;
    assert_int_equal(node_json_write_pub(&b, &bin, false), RT_EINVAL);
    rt_buf_reset(&b);
    assert_int_equal(node_json_push_pub(&b, &bin), RT_EINVAL);
    rt_buf_reset(&b);
    assert_int_equal(node_json_write_pub(&b, &bin, true), 0);
    EXPECT_BUF(&b, "{\"b64data\":\"Af8=\",\"offset\":3}");

    /* info that is not JSON (b64info) fails in both flavours */
    broker_pub_t bi = make_pub("c", "1", 0);
    bi.has_info = true;
    bi.info = info42;
    bi.info.chan_info = RT_STR("\x01");
    assert_int_equal(node_json_write_pub(&b, &bi, true), RT_EINVAL);
    rt_buf_reset(&b);
    assert_int_equal(node_json_push_join(&b, RT_STR("c"), &bi.info, false), RT_EINVAL);
    rt_buf_reset(&b);
    assert_int_equal(node_json_reply_presence(&b, 1, &bi.info, 1), RT_EINVAL);
    rt_buf_reset(&b);

    /* non-JSON data from sources that do not flag it */
    node_sub_result_t sr = {.data = RT_STR("not json")};
    assert_int_equal(node_json_reply_subscribe(&b, 1, &sr), RT_EINVAL);
    rt_buf_reset(&b);
    assert_int_equal(node_json_push_subscribe(&b, RT_STR("c"), &sr), RT_EINVAL);
    rt_buf_reset(&b);
    assert_int_equal(node_json_push_message(&b, RT_STR("{")), RT_EINVAL);
    rt_buf_reset(&b);
    assert_int_equal(node_json_reply_rpc(&b, 1, RT_STR("\xff")), RT_EINVAL);
    rt_buf_reset(&b);
    node_connect_result_t cr = {.client = RT_STR("c"), .data = RT_STR("x")};
    assert_int_equal(node_json_reply_connect(&b, 1, &cr), RT_EINVAL);
    rt_buf_reset(&b);

    /* strings are escaped (<, >, & like the reference), tags in order */
    broker_tag_t tags[] = {{RT_STR("a<"), RT_STR("&")}, {RT_STR("b"), RT_STR("\"")}};
    broker_pub_t t = make_pub("c", "null", 2);
    t.tags = tags;
    t.ntags = 2;
    assert_int_equal(node_json_write_pub(&b, &t, false), 0);
    EXPECT_BUF(&b,
               "{\"data\":null,\"offset\":2,\"tags\":{\"a\\u003c\":\"\\u0026\",\"b\":\"\\\"\"}}");

    rt_client_info_t ci = {.user = RT_STR_NULL, .client = RT_STR_NULL};
    assert_int_equal(node_json_write_client_info(&b, &ci), 0);
    EXPECT_BUF(&b, "{\"user\":\"\",\"client\":\"\"}");
    rt_buf_cleanup(&b);
}

static void test_uni_pushes(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    rt_str_t chans[] = {RT_STR("#42")};
    node_sub_result_t subs[] = {{.recoverable = true, .epoch = RT_STR("E"), .positioned = true}};
    node_connect_result_t cr = {.client = RT_STR("cid"),
                                .version = RT_STR("v"),
                                .expires = true,
                                .ttl = 10,
                                .data = RT_STR("[1]"),
                                .sub_channels = chans,
                                .subs = subs,
                                .nsubs = 1,
                                .ping = 25,
                                .session = RT_STR("S"),
                                .node = RT_STR("N"),
                                .time_ms = 1700000000000};
    /* Connect push order differs from ConnectResult (data and subs before expires). */
    assert_int_equal(node_json_push_connect(&b, &cr), 0);
    rt_str_t bare = node_json_push_bare(rt_buf_str(&b));
    assert_true(rt_str_eq_c(bare, "{\"connect\":{\"client\":\"cid\",\"version\":\"v\",\"data\":[1],"
                                  "\"subs\":{\"#42\":{\"recoverable\":true,\"epoch\":\"E\","
                                  "\"positioned\":true}},\"expires\":true,\"ttl\":10,\"ping\":25,"
                                  "\"session\":\"S\",\"node\":\"N\",\"time\":1700000000000}}"));
    rt_buf_reset(&b);
    assert_int_equal(node_json_reply_connect(&b, 1, &cr), 0);
    EXPECT_BUF(&b, "{\"id\":1,\"connect\":{\"client\":\"cid\",\"version\":\"v\",\"expires\":true,"
                   "\"ttl\":10,\"data\":[1],\"subs\":{\"#42\":{\"recoverable\":true,\"epoch\":"
                   "\"E\",\"positioned\":true}},\"ping\":25,\"session\":\"S\",\"node\":\"N\","
                   "\"time\":1700000000000}}");

    node_json_push_disconnect(&b, NODE_DISCONNECT_INSUFFICIENT_STATE, NULL);
    bare = node_json_push_bare(rt_buf_str(&b));
    assert_true(
        rt_str_eq_c(bare, "{\"disconnect\":{\"code\":3010,\"reason\":\"insufficient state\"}}"));
    rt_buf_reset(&b);
    node_json_push_unsubscribe(&b, RT_STR("c"), 2600, "custom");
    EXPECT_BUF(&b, "{\"push\":{\"channel\":\"c\",\"unsubscribe\":{\"code\":2600,\"reason\":"
                   "\"custom\"}}}");
    node_json_push_refresh(&b, false, 0);
    EXPECT_BUF(&b, "{\"push\":{\"refresh\":{}}}");
    rt_buf_cleanup(&b);
}

/* Decoded data goes back out unchanged (the forwarding path of publish/rpc/send). */
static void test_round_trip(void **state)
{
    const char *frame =
        "{\"publish\":{\"channel\":\"a\\u0062c\",\"data\":{\"n\":1180591620717411303424,"
        "\"f\":1.10,\"s\":\"\\u2028<\"}},\"id\":3}";
    node_json_reader_t r;
    node_cmd_t cmd;
    node_json_reader_init(&r, (const uint8_t *)frame, strlen(frame));
    assert_int_equal(node_json_reader_next(&r, &cmd), 1);
    broker_pub_t p;
    memset(&p, 0, sizeof(p));
    p.channel = cmd.channel;
    p.data = cmd.data;
    p.offset = 1;
    rt_buf_t b = RT_BUF_INIT;
    assert_int_equal(node_json_push_pub(&b, &p), 0);
    EXPECT_BUF(&b, "{\"push\":{\"channel\":\"abc\",\"pub\":{\"data\":{\"n\":1180591620717411303424,"
                   "\"f\":1.10,\"s\":\"\\u2028<\"},\"offset\":1}}}");
    assert_int_equal(node_json_reader_next(&r, &cmd), 0);
    node_json_reader_cleanup(&r);
    rt_buf_cleanup(&b);
}

int run_proto_json(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_centrifuge_js_first_frame),
        cmocka_unit_test(test_pong),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_every_command),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_bad_types),
        cmocka_unit_test(test_bad_line_after_good),
        cmocka_unit_test(test_empty_and_blank),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_raw_data),
        cmocka_unit_test(test_connect_subs),
        cmocka_unit_test(test_many_escaped_strings),
        cmocka_unit_test(test_replies_section3),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_pushes_section4),
        cmocka_unit_test(test_recovery_section83),
        cmocka_unit_test(test_session_section127),
        cmocka_unit_test(test_pub_payloads),
        cmocka_unit_test(test_uni_pushes),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests_name("proto_json", tests, NULL, NULL);
}
