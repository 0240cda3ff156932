/* Protobuf client protocol: Command reader and Reply/Push encoders (PROTOCOL.md §1.3-§1.4,
 * §2-§5). Commands are built with the protobuf-c code generated from node/proto/client.proto
 * (or by hand, for bytes it would never produce) and flattened into the same canonical text
 * as test_proto_json.c, so both codecs are compared on the same commands. Encoded replies and
 * pushes are decoded back with the generated code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/codes.h"
#include "node/proto.h"
#include "node/proto/client.pb-c.h"
#include "node/proto_pb.h"

#define PB(name)      Centrifugal__Centrifuge__Protocol__##name
#define PB_INIT(NAME) CENTRIFUGAL__CENTRIFUGE__PROTOCOL__##NAME##__INIT

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

/* Same text as test_proto_json.c's describe(). */
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

/* Reads frame[0..n) to the end: "CMD1 | CMD2 | END" or "... | EPROTO". Checks that the
 * terminal status is sticky. */
static void read_frame(const uint8_t *frame, size_t n, rt_buf_t *out)
{
    node_pb_reader_t r;
    node_cmd_t cmd;
    node_pb_reader_init(&r, frame, n);
    for (;;) {
        int rc = node_pb_reader_next(&r, &cmd);
        if (rc == 1) {
            describe(out, &cmd);
            rt_buf_append_cstr(out, " | ");
            continue;
        }
        if (rc == 0) {
            rt_buf_append_cstr(out, "END");
            assert_int_equal(node_pb_reader_next(&r, &cmd), 0);
        } else {
            assert_int_equal(rc, RT_EPROTO);
            rt_buf_append_cstr(out, "EPROTO");
            assert_int_equal(node_pb_reader_next(&r, &cmd), RT_EPROTO);
        }
        break;
    }
    node_pb_reader_cleanup(&r);
}

/* Length of the commands part of a read_frame() result (up to the last " | "). */
static size_t commands_len(rt_str_t s)
{
    size_t k = s.n;
    while (k > 0 && s.p[k - 1] != ' ')
        k--;
    return k;
}

/* Offsets where the delimited messages of frame[0..n) start, plus n (for a valid frame). */
static size_t boundaries(const uint8_t *f, size_t n, size_t *at, size_t max)
{
    size_t k = 0, pos = 0;
    at[k++] = 0;
    while (pos < n && k < max) {
        uint64_t len = 0;
        int shift = 0;
        while (pos < n && (f[pos] & 0x80)) {
            len |= (uint64_t)(f[pos++] & 0x7f) << shift;
            shift += 7;
        }
        if (pos == n)
            break;
        len |= (uint64_t)f[pos++] << shift;
        pos += len;
        if (pos > n)
            break;
        at[k++] = pos;
    }
    return k;
}

/* The frame must decode to `want`. Also: every split of the frame at a message boundary into
 * two frames gives the same commands, and every truncation gives a prefix of the same
 * commands followed by END (cut on a boundary) or EPROTO. */
static void expect_frame(const uint8_t *frame, size_t n, const char *want)
{
    rt_buf_t got = RT_BUF_INIT;
    read_frame(frame, n, &got);
    rt_buf_append_byte(&got, 0);
    assert_string_equal((const char *)got.p, want);
    got.len--;
    rt_str_t whole = rt_buf_str(&got);
    size_t cmds = commands_len(whole);
    bool whole_ok = strcmp(want + strlen(want) - 3, "END") == 0;

    size_t at[64];
    size_t nb = whole_ok ? boundaries(frame, n, at, 64) : 0;
    for (size_t i = 1; i + 1 < nb; i++) {
        rt_buf_t a = RT_BUF_INIT, b = RT_BUF_INIT;
        read_frame(frame, at[i], &a);
        read_frame(frame + at[i], n - at[i], &b);
        rt_str_t sa = rt_buf_str(&a), sb = rt_buf_str(&b);
        size_t ka = commands_len(sa), kb = commands_len(sb);
        assert_int_equal(ka + kb, cmds);
        assert_memory_equal(sa.p, whole.p, ka);
        assert_memory_equal(sb.p, whole.p + ka, kb);
        rt_buf_cleanup(&a);
        rt_buf_cleanup(&b);
    }

    for (size_t i = 0; i < n; i++) {
        rt_buf_t part = RT_BUF_INIT;
        read_frame(frame, i, &part);
        rt_str_t s = rt_buf_str(&part);
        size_t k = commands_len(s);
        if (whole_ok) {
            assert_true(k <= cmds);
            assert_memory_equal(s.p, whole.p, k);
            bool on_boundary = false;
            for (size_t j = 1; j < nb; j++)
                on_boundary |= at[j] == i;
            const char *tail = on_boundary ? "END" : "EPROTO";
            assert_true(s.n - k == strlen(tail) && memcmp(s.p + k, tail, s.n - k) == 0);
        }
        rt_buf_cleanup(&part);
    }
    rt_buf_cleanup(&got);
}

static void expect_frame_buf(const rt_buf_t *f, const char *want)
{
    expect_frame(f->p, f->len, want);
}

/* Appends a delimited message built from the raw body bytes. */
static void frame_raw(rt_buf_t *f, const char *body, size_t n)
{
    node_pb_put_varint(f, n);
    rt_buf_append(f, body, n);
}

#define FRAME_RAW(f, lit) frame_raw((f), (lit), sizeof(lit) - 1)

/* Appends a delimited message packed by the generated code. */
static void frame_msg(rt_buf_t *f, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    node_pb_put_varint(f, n);
    rt_buf_reserve(f, n);
    assert_int_equal(protobuf_c_message_pack(m, f->p + f->len), n);
    f->len += n;
}

static ProtobufCBinaryData bin(const char *s)
{
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

/* ------------------------------------------------------------------------------------------
 * Decoder tests
 */

/* PROTOCOL.md §1.4: the connect command centrifuge-js 5.8 sends, and its first frame. */
static void test_golden_connect(void **state)
{
    static const uint8_t golden[] = {0x0d, 0x08, 0x01, 0x22, 0x09, 0x0a, 0x03,
                                     0x61, 0x62, 0x63, 0x22, 0x02, 0x6a, 0x73};
    expect_frame(golden, sizeof(golden), "CONNECT id=1 tok=abc name=js | END");

    rt_buf_t f = RT_BUF_INIT;
    rt_buf_append(&f, golden, sizeof(golden));
    PB(SubscribeRequest) sub = PB_INIT(SUBSCRIBE_REQUEST);
    sub.channel = "chat:index";
    sub.flag = 1;
    PB(Command) c = PB_INIT(COMMAND);
    c.id = 2;
    c.subscribe = &sub;
    frame_msg(&f, &c.base);
    sub.channel = "news";
    c.id = 3;
    frame_msg(&f, &c.base);
    expect_frame_buf(&f, "CONNECT id=1 tok=abc name=js | SUBSCRIBE id=2 ch=chat:index flag=1 | "
                         "SUBSCRIBE id=3 ch=news flag=1 | END");
    rt_buf_cleanup(&f);
}

static void test_pong(void **state)
{
    static const uint8_t pong[] = {0x00};
    expect_frame(pong, 1, "PONG | END");
    static const uint8_t two[] = {0x00, 0x00};
    expect_frame(two, 2, "PONG | PONG | END");

    /* id 0 without send is a pong whatever else it has (§1.1). */
    rt_buf_t f = RT_BUF_INIT;
    PB(ConnectRequest) conn = PB_INIT(CONNECT_REQUEST);
    conn.token = "x";
    PB(Command) c = PB_INIT(COMMAND);
    c.connect = &conn;
    frame_msg(&f, &c.base);
    PB(PingRequest) ping = PB_INIT(PING_REQUEST);
    PB(Command) p = PB_INIT(COMMAND);
    p.ping = &ping;
    frame_msg(&f, &p.base);
    /* an explicit id 0 on the wire is still 0 */
    FRAME_RAW(&f, "\x08\x00\x2a\x03\x0a\x01\x61");
    expect_frame_buf(&f, "PONG | PONG | PONG | END");
    rt_buf_cleanup(&f);
}

static void test_unknown(void **state)
{
    rt_buf_t f = RT_BUF_INIT;
    FRAME_RAW(&f, "\x08\x05");                 /* id 5, nothing else */
    FRAME_RAW(&f, "\x08\x03\x5a\x00");         /* id 3, obsolete ping */
    FRAME_RAW(&f, "\x08\xff\xff\xff\xff\x0f"); /* id 4294967295 */
    expect_frame_buf(&f, "UNKNOWN id=5 | UNKNOWN id=3 | UNKNOWN id=4294967295 | END");
    rt_buf_cleanup(&f);
}

static void test_every_command(void **state)
{
    rt_buf_t f = RT_BUF_INIT;
    PB(Command) c;

    PB(UnsubscribeRequest) unsub = PB_INIT(UNSUBSCRIBE_REQUEST);
    unsub.channel = "chat:index";
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 5;
    c.unsubscribe = &unsub;
    frame_msg(&f, &c.base);

    PB(PublishRequest) pub = PB_INIT(PUBLISH_REQUEST);
    pub.channel = "chat:index";
    pub.data = bin("\x01\x02\xff");
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 6;
    c.publish = &pub;
    frame_msg(&f, &c.base);

    PB(PresenceRequest) pres = PB_INIT(PRESENCE_REQUEST);
    pres.channel = "chat:index";
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 7;
    c.presence = &pres;
    frame_msg(&f, &c.base);

    PB(PresenceStatsRequest) stats = PB_INIT(PRESENCE_STATS_REQUEST);
    stats.channel = "chat:index";
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 8;
    c.presence_stats = &stats;
    frame_msg(&f, &c.base);

    PB(RPCRequest) rpc = PB_INIT(RPCREQUEST);
    rpc.method = "getProfile";
    rpc.data = bin("{\"id\":1}");
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 10;
    c.rpc = &rpc;
    frame_msg(&f, &c.base);

    PB(SendRequest) send = PB_INIT(SEND_REQUEST);
    send.data = bin("typing");
    c = (PB(Command))PB_INIT(COMMAND);
    c.send = &send;
    frame_msg(&f, &c.base);

    PB(RefreshRequest) refresh = PB_INIT(REFRESH_REQUEST);
    refresh.token = "eyJ\xe2\x80\xa6";
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 11;
    c.refresh = &refresh;
    frame_msg(&f, &c.base);

    PB(SubRefreshRequest) subref = PB_INIT(SUB_REFRESH_REQUEST);
    subref.channel = "$secret";
    subref.token = "eyJ";
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 12;
    c.sub_refresh = &subref;
    frame_msg(&f, &c.base);

    expect_frame_buf(&f, "UNSUBSCRIBE id=5 ch=chat:index | "
                         "PUBLISH id=6 ch=chat:index data=\x01\x02\xff | "
                         "PRESENCE id=7 ch=chat:index | PRESENCE_STATS id=8 ch=chat:index | "
                         "RPC id=10 data={\"id\":1} method=getProfile | SEND data=typing | "
                         "REFRESH id=11 tok=eyJ\xe2\x80\xa6 | SUB_REFRESH id=12 ch=$secret tok=eyJ "
                         "| END");
    rt_buf_reset(&f);

    /* Reference order picks the first present field; send with id 0 is dispatched too. */
    PB(ConnectRequest) conn = PB_INIT(CONNECT_REQUEST);
    conn.name = "n";
    PB(SubscribeRequest) sub = PB_INIT(SUBSCRIBE_REQUEST);
    sub.channel = "s";
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 1;
    c.subscribe = &sub;
    c.connect = &conn;
    frame_msg(&f, &c.base);
    c = (PB(Command))PB_INIT(COMMAND);
    c.send = &send;
    c.connect = &conn;
    frame_msg(&f, &c.base);
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 2;
    c.sub_refresh = &subref;
    c.refresh = &refresh;
    frame_msg(&f, &c.base);
    /* send may carry an id; rpc method may be empty */
    PB(RPCRequest) rpc0 = PB_INIT(RPCREQUEST);
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 2;
    c.rpc = &rpc0;
    frame_msg(&f, &c.base);
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 3;
    c.send = &send;
    frame_msg(&f, &c.base);
    /* publish extension type is surfaced */
    pub.type = 1;
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 4;
    c.publish = &pub;
    frame_msg(&f, &c.base);
    expect_frame_buf(&f,
                     "CONNECT id=1 name=n | CONNECT name=n | REFRESH id=2 tok=eyJ\xe2\x80\xa6 | "
                     "RPC id=2 | SEND id=3 data=typing | "
                     "PUBLISH id=4 ch=chat:index data=\x01\x02\xff type=1 | END");
    rt_buf_cleanup(&f);
}

/* Unknown fields of every wire type, at the top level and inside a request, are skipped;
 * so are the reserved numbers 2 and 3 of Command. */
static void test_unknown_fields(void **state)
{
    rt_buf_t f = RT_BUF_INIT;
    FRAME_RAW(&f, "\x08\x01"                                 /* id 1 */
                  "\xa0\x01\x05"                             /* #20 varint */
                  "\xa9\x01\x01\x02\x03\x04\x05\x06\x07\x08" /* #21 fixed64 */
                  "\xb2\x01\x02\xaa\xbb"                     /* #22 bytes */
                  "\xbd\x01\x01\x02\x03\x04"                 /* #23 fixed32 */
                  "\x10\x07\x1a\x01\x78"                     /* reserved #2 varint, #3 bytes */
                  "\x2a\x07\x0a\x01\x63\x9a\x06\x01\xff"     /* subscribe{channel c, #99 bytes} */
                  "\xf8\xff\xff\xff\x0f\x01");               /* #536870911 (largest) varint */
    expect_frame_buf(&f, "SUBSCRIBE id=1 ch=c | END");
    rt_buf_reset(&f);

    /* extension fields we do not surface decode and are ignored */
    PB(PublishRequest) pub = PB_INIT(PUBLISH_REQUEST);
    pub.channel = "c";
    pub.key = "k";
    pub.removed = 1;
    PB(ConnectRequest__HeadersEntry) h = PB_INIT(CONNECT_REQUEST__HEADERS_ENTRY);
    h.key = "a";
    h.value = "b";
    PB(ConnectRequest__HeadersEntry) * hs[] = {&h};
    PB(ConnectRequest) conn = PB_INIT(CONNECT_REQUEST);
    conn.headers = hs;
    conn.n_headers = 1;
    conn.version = "1.0";
    conn.data = bin("\"d\"");
    conn.flag = -1;
    conn.dict = "dd";
    conn.profile = "p";
    PB(Command) c = PB_INIT(COMMAND);
    c.id = 1;
    c.connect = &conn;
    c.publish = &pub;
    frame_msg(&f, &c.base);
    expect_frame_buf(&f, "CONNECT id=1 data=\"d\" ver=1.0 flag=-1 | END");
    rt_buf_cleanup(&f);
}

static void test_subscribe_fields(void **state)
{
    rt_buf_t f = RT_BUF_INIT;
    PB(SubscribeRequest) sub = PB_INIT(SUBSCRIBE_REQUEST);
    sub.channel = "c";
    sub.token = "T";
    sub.data = bin("{\"x\":1}");
    sub.positioned = 1;
    sub.recoverable = 1;
    sub.join_leave = 1;
    sub.delta = "fossil";
    sub.flag = 3;
    PB(Command) c = PB_INIT(COMMAND);
    c.id = 9;
    c.subscribe = &sub;
    frame_msg(&f, &c.base);

    PB(SubscribeRequest) rec = PB_INIT(SUBSCRIBE_REQUEST);
    rec.channel = "ch";
    rec.flag = 1;
    rec.recover = 1;
    rec.offset = 6;
    rec.epoch = "E";
    c.id = 4;
    c.subscribe = &rec;
    frame_msg(&f, &c.base);

    /* extensions: type, tags filter (an empty one counts), map-subscription fields */
    PB(FilterNode) tf = PB_INIT(FILTER_NODE);
    PB(SubscribeRequest) ext = PB_INIT(SUBSCRIBE_REQUEST);
    ext.channel = "c";
    ext.type = 4;
    ext.tf = &tf;
    ext.phase = 1;
    ext.cursor = "cur";
    ext.limit = 5;
    ext.asc = 1;
    c.id = 1;
    c.subscribe = &ext;
    frame_msg(&f, &c.base);
    expect_frame_buf(&f, "SUBSCRIBE id=9 ch=c tok=T data={\"x\":1} delta=fossil positioned "
                         "recoverable join_leave flag=3 | "
                         "SUBSCRIBE id=4 ch=ch epoch=E recover offset=6 flag=1 | "
                         "SUBSCRIBE id=1 ch=c type=4 tf | END");
    rt_buf_reset(&f);

    /* A filter nested far deeper than any stack allows is skipped, not recursed into
     * (FilterNode.nodes is undeclared). */
    rt_buf_t deep = RT_BUF_INIT;
    rt_buf_append_cstr(&deep, "\x0a\x03"
                              "and"); /* op */
    for (int i = 0; i < 20000; i++) {
        /* each level: nodes(#6) = { op "or", nodes = <previous> } */
        rt_buf_t lvl = RT_BUF_INIT;
        rt_buf_append_cstr(&lvl, "\x0a\x02"
                                 "or");
        rt_buf_append_byte(&lvl, 0x32);
        node_pb_put_varint(&lvl, deep.len);
        rt_buf_append(&lvl, deep.p, deep.len);
        rt_buf_cleanup(&deep);
        deep = lvl;
        if (deep.len > 60000)
            break;
    }
    rt_buf_t body = RT_BUF_INIT;
    rt_buf_append_cstr(&body, "\x08\x02\x2a"); /* id 2, subscribe */
    rt_buf_t sb = RT_BUF_INIT;
    rt_buf_append_cstr(&sb, "\x0a\x01"
                            "d\x6a"); /* channel d, tf */
    node_pb_put_varint(&sb, deep.len);
    rt_buf_append(&sb, deep.p, deep.len);
    node_pb_put_varint(&body, sb.len);
    rt_buf_append(&body, sb.p, sb.len);
    frame_raw(&f, (const char *)body.p, body.len);
    rt_buf_t got = RT_BUF_INIT;
    read_frame(f.p, f.len, &got);
    rt_buf_append_byte(&got, 0);
    assert_string_equal((const char *)got.p, "SUBSCRIBE id=2 ch=d tf | END");
    rt_buf_cleanup(&got);
    rt_buf_cleanup(&sb);
    rt_buf_cleanup(&body);
    rt_buf_cleanup(&deep);
    rt_buf_cleanup(&f);
}

static void test_history(void **state)
{
    rt_buf_t f = RT_BUF_INIT;
    PB(StreamPosition) since = PB_INIT(STREAM_POSITION);
    since.offset = 15;
    since.epoch = "qWeRtYuI";
    PB(HistoryRequest) h = PB_INIT(HISTORY_REQUEST);
    h.channel = "chat:index";
    h.limit = 2;
    h.since = &since;
    PB(Command) c = PB_INIT(COMMAND);
    c.id = 9;
    c.history = &h;
    frame_msg(&f, &c.base);

    PB(HistoryRequest) rev = PB_INIT(HISTORY_REQUEST);
    rev.channel = "chat:index";
    rev.limit = 1;
    rev.reverse = 1;
    c.id = 4;
    c.history = &rev;
    frame_msg(&f, &c.base);

    /* limit 0 is not on the wire in proto3: same as absent (position only) */
    PB(StreamPosition) empty = PB_INIT(STREAM_POSITION);
    PB(HistoryRequest) zero = PB_INIT(HISTORY_REQUEST);
    zero.channel = "c";
    zero.since = &empty;
    c.id = 5;
    c.history = &zero;
    frame_msg(&f, &c.base);

    PB(HistoryRequest) all = PB_INIT(HISTORY_REQUEST);
    all.channel = "c";
    all.limit = -1;
    c.id = 6;
    c.history = &all;
    frame_msg(&f, &c.base);
    expect_frame_buf(&f,
                     "HISTORY id=9 ch=chat:index offset=15 limit=2 since since_epoch=qWeRtYuI | "
                     "HISTORY id=4 ch=chat:index reverse limit=1 | HISTORY id=5 ch=c since | "
                     "HISTORY id=6 ch=c limit=-1 | END");
    rt_buf_cleanup(&f);
}

static void test_connect_subs(void **state)
{
    rt_buf_t f = RT_BUF_INIT;
    PB(SubscribeRequest) s42 = PB_INIT(SUBSCRIBE_REQUEST);
    s42.recover = 1;
    s42.offset = 4;
    s42.epoch = "qWeRtYuI";
    s42.channel = "ignored";
    PB(SubscribeRequest) news = PB_INIT(SUBSCRIBE_REQUEST);
    PB(SubscribeRequest) d = PB_INIT(SUBSCRIBE_REQUEST);
    d.delta = "fossil";
    PB(ConnectRequest__SubsEntry) e1 = PB_INIT(CONNECT_REQUEST__SUBS_ENTRY);
    e1.key = "#42";
    e1.value = &s42;
    PB(ConnectRequest__SubsEntry) e2 = PB_INIT(CONNECT_REQUEST__SUBS_ENTRY);
    e2.key = "news";
    e2.value = &news;
    PB(ConnectRequest__SubsEntry) e3 = PB_INIT(CONNECT_REQUEST__SUBS_ENTRY);
    e3.key = "news2"; /* no value: an empty SubscribeRequest */
    PB(ConnectRequest__SubsEntry) e4 = PB_INIT(CONNECT_REQUEST__SUBS_ENTRY);
    e4.key = "d";
    e4.value = &d;
    PB(ConnectRequest__SubsEntry) * entries[] = {&e1, &e2, &e3, &e4};
    PB(ConnectRequest) conn = PB_INIT(CONNECT_REQUEST);
    conn.token = "t";
    conn.name = "js";
    conn.subs = entries;
    conn.n_subs = 4;
    PB(Command) c = PB_INIT(COMMAND);
    c.id = 1;
    c.connect = &conn;
    frame_msg(&f, &c.base);

    /* duplicate channel: the later entry wins and the channel appears once */
    PB(SubscribeRequest) o1 = PB_INIT(SUBSCRIBE_REQUEST);
    o1.offset = 1;
    PB(SubscribeRequest) o2 = PB_INIT(SUBSCRIBE_REQUEST);
    o2.offset = 2;
    PB(ConnectRequest__SubsEntry) a1 = PB_INIT(CONNECT_REQUEST__SUBS_ENTRY);
    a1.key = "a";
    a1.value = &o1;
    PB(ConnectRequest__SubsEntry) b = PB_INIT(CONNECT_REQUEST__SUBS_ENTRY);
    b.key = "b";
    b.value = &news;
    PB(ConnectRequest__SubsEntry) a2 = PB_INIT(CONNECT_REQUEST__SUBS_ENTRY);
    a2.key = "a";
    a2.value = &o2;
    PB(ConnectRequest__SubsEntry) * dup[] = {&a1, &b, &a2};
    PB(ConnectRequest) conn2 = PB_INIT(CONNECT_REQUEST);
    conn2.subs = dup;
    conn2.n_subs = 3;
    c.id = 2;
    c.connect = &conn2;
    frame_msg(&f, &c.base);
    /* a later connect in the frame gets its own subs */
    conn2.n_subs = 1;
    c.id = 3;
    frame_msg(&f, &c.base);
    expect_frame_buf(&f, "CONNECT id=1 tok=t name=js sub[#42,recover,4,qWeRtYuI,] sub[news,0,,] "
                         "sub[news2,0,,] sub[d,0,,fossil] | CONNECT id=2 sub[a,2,,] sub[b,0,,] | "
                         "CONNECT id=3 sub[a,1,,] | END");
    rt_buf_cleanup(&f);
}

/* Commands the JSON reader and this reader must fill identically. */
static void test_same_as_json(void **state)
{
    static const char *json =
        "{\"connect\":{\"token\":\"t\",\"data\":\"d\",\"name\":\"js\",\"version\":\"1\","
        "\"flag\":2,\"subs\":{\"x\":{\"recover\":true,\"offset\":3,\"epoch\":\"E\","
        "\"delta\":\"fossil\"}}},\"id\":1}\n"
        "{\"subscribe\":{\"channel\":\"c\",\"token\":\"T\",\"recover\":true,\"epoch\":\"E\","
        "\"offset\":9,\"data\":[1],\"positioned\":true,\"recoverable\":true,\"join_leave\":true,"
        "\"delta\":\"fossil\",\"tf\":{},\"flag\":1,\"type\":2},\"id\":2}\n"
        "{\"history\":{\"channel\":\"h\",\"limit\":3,\"since\":{\"offset\":1,\"epoch\":\"E\"},"
        "\"reverse\":true},\"id\":3}\n"
        "{\"publish\":{\"channel\":\"p\",\"data\":{}},\"id\":4}\n"
        "{}\n{\"id\":5}";

    rt_buf_t f = RT_BUF_INIT;
    PB(SubscribeRequest) x = PB_INIT(SUBSCRIBE_REQUEST);
    x.recover = 1;
    x.offset = 3;
    x.epoch = "E";
    x.delta = "fossil";
    PB(ConnectRequest__SubsEntry) e = PB_INIT(CONNECT_REQUEST__SUBS_ENTRY);
    e.key = "x";
    e.value = &x;
    PB(ConnectRequest__SubsEntry) * entries[] = {&e};
    PB(ConnectRequest) conn = PB_INIT(CONNECT_REQUEST);
    conn.token = "t";
    conn.data = bin("\"d\"");
    conn.name = "js";
    conn.version = "1";
    conn.flag = 2;
    conn.subs = entries;
    conn.n_subs = 1;
    PB(Command) c = PB_INIT(COMMAND);
    c.id = 1;
    c.connect = &conn;
    frame_msg(&f, &c.base);

    PB(FilterNode) tf = PB_INIT(FILTER_NODE);
    PB(SubscribeRequest) s = PB_INIT(SUBSCRIBE_REQUEST);
    s.channel = "c";
    s.token = "T";
    s.recover = 1;
    s.epoch = "E";
    s.offset = 9;
    s.data = bin("[1]");
    s.positioned = s.recoverable = s.join_leave = 1;
    s.delta = "fossil";
    s.tf = &tf;
    s.flag = 1;
    s.type = 2;
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 2;
    c.subscribe = &s;
    frame_msg(&f, &c.base);

    PB(StreamPosition) since = PB_INIT(STREAM_POSITION);
    since.offset = 1;
    since.epoch = "E";
    PB(HistoryRequest) h = PB_INIT(HISTORY_REQUEST);
    h.channel = "h";
    h.limit = 3;
    h.since = &since;
    h.reverse = 1;
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 3;
    c.history = &h;
    frame_msg(&f, &c.base);

    PB(PublishRequest) p = PB_INIT(PUBLISH_REQUEST);
    p.channel = "p";
    p.data = bin("{}");
    c = (PB(Command))PB_INIT(COMMAND);
    c.id = 4;
    c.publish = &p;
    frame_msg(&f, &c.base);
    FRAME_RAW(&f, "");
    FRAME_RAW(&f, "\x08\x05");

    rt_buf_t want = RT_BUF_INIT;
    node_json_reader_t jr;
    node_cmd_t cmd;
    node_json_reader_init(&jr, (const uint8_t *)json, strlen(json));
    while (node_json_reader_next(&jr, &cmd) == 1) {
        describe(&want, &cmd);
        rt_buf_append_cstr(&want, " | ");
    }
    node_json_reader_cleanup(&jr);
    rt_buf_append_cstr(&want, "END");
    rt_buf_append_byte(&want, 0);
    expect_frame_buf(&f, (const char *)want.p);
    rt_buf_cleanup(&want);
    rt_buf_cleanup(&f);
}

static void expect_bad(const char *body, size_t n)
{
    rt_buf_t f = RT_BUF_INIT;
    frame_raw(&f, body, n);
    expect_frame_buf(&f, "EPROTO");
    /* after a good command: that one is returned first */
    rt_buf_t g = RT_BUF_INIT;
    rt_buf_append_byte(&g, 0x00);
    rt_buf_append(&g, f.p, f.len);
    expect_frame_buf(&g, "PONG | EPROTO");
    rt_buf_cleanup(&f);
    rt_buf_cleanup(&g);
}

#define EXPECT_BAD(lit) expect_bad((lit), sizeof(lit) - 1)

static void test_bad_commands(void **state)
{
    EXPECT_BAD("\x0a\x01\x00");                 /* id with wire type LEN */
    EXPECT_BAD("\x08");                         /* id without its varint */
    EXPECT_BAD("\x08\x80");                     /* id varint cut short */
    EXPECT_BAD("\x08\x01\x2a\x05\x0a\x01\x63"); /* subscribe longer than the message */
    EXPECT_BAD("\x08\x01\x2a\x02\x08\x01");     /* subscribe.channel as varint */
    EXPECT_BAD("\x08\x01\x2a\x01\x0a");         /* subscribe.channel tag without length */
    EXPECT_BAD("\x08\x01\x22\x01\x0b");         /* start-group wire type inside connect */
    EXPECT_BAD("\x0b\x0c");                     /* id as a group */
    EXPECT_BAD("\x0e");                         /* wire type 6 */
    EXPECT_BAD("\x00\x01");                     /* field number 0 */
    EXPECT_BAD("\x08\x01\xa9\x01\x01\x02\x03"); /* unknown fixed64 cut short */
    EXPECT_BAD("\x08\x01\xa3\x01\xa4\x01");     /* unknown group: never proto3, refused */
    /* strings must be UTF-8 */
    EXPECT_BAD("\x08\x01\x2a\x03\x0a\x01\xff");
    EXPECT_BAD("\x08\x01\x22\x05\x1a\x03\x0a\x01\xc0"); /* connect.subs key */
    EXPECT_BAD("\x08\x01\x52\x05\x42\x03\x12\x01\x80"); /* history.since.epoch */
    EXPECT_BAD("\x08\x01\x6a\x05\x12\x03\xed\xa0\x80"); /* rpc.method: a surrogate */
}

static void test_bad_framing(void **state)
{
    static const uint8_t empty[1];
    expect_frame(empty, 0, "EPROTO"); /* zero commands */
    static const uint8_t cut_len[] = {0x80};
    expect_frame(cut_len, 1, "EPROTO");
    static const uint8_t huge_len[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect_frame(huge_len, sizeof(huge_len), "EPROTO");
    static const uint8_t overflow[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    expect_frame(overflow, sizeof(overflow), "EPROTO");
    static const uint8_t past[] = {0x05, 0x08, 0x01};
    expect_frame(past, sizeof(past), "EPROTO");
    static const uint8_t after_good[] = {0x02, 0x08, 0x07, 0x03, 0x08, 0x01};
    expect_frame(after_good, sizeof(after_good), "UNKNOWN id=7 | EPROTO");
    static const uint8_t trailing[] = {0x00, 0x01};
    expect_frame(trailing, sizeof(trailing), "PONG | EPROTO");
}

static void test_string_edges(void **state)
{
    rt_buf_t f = RT_BUF_INIT;
    /* UTF-8 kept byte for byte; a string is read up to its first NUL (protobuf-c). */
    FRAME_RAW(&f, "\x08\x01\x2a\x07\x0a\x05\x63\xc3\xa9\xf0\x9f");
    expect_frame_buf(&f, "EPROTO"); /* cut 4-byte sequence */
    rt_buf_reset(&f);
    FRAME_RAW(&f, "\x08\x01\x2a\x05\x0a\x03\x63\xc3\xa9");
    FRAME_RAW(&f, "\x08\x02\x2a\x05\x0a\x03\x61\x00\x62");
    expect_frame_buf(&f, "SUBSCRIBE id=1 ch=c\xc3\xa9 | SUBSCRIBE id=2 ch=a | END");
    rt_buf_cleanup(&f);
}

/* The reader owns everything it unpacks: a long frame of commands is fine, and the reader
 * can be cleaned up halfway. */
static void test_many_commands(void **state)
{
    rt_buf_t f = RT_BUF_INIT;
    PB(PresenceRequest) pres = PB_INIT(PRESENCE_REQUEST);
    pres.channel = "ch";
    PB(Command) c = PB_INIT(COMMAND);
    c.presence = &pres;
    for (uint32_t i = 1; i <= 500; i++) {
        c.id = i;
        frame_msg(&f, &c.base);
    }
    node_pb_reader_t r;
    node_cmd_t cmd;
    node_pb_reader_init(&r, f.p, f.len);
    for (uint32_t i = 1; i <= 500; i++) {
        assert_int_equal(node_pb_reader_next(&r, &cmd), 1);
        assert_int_equal(cmd.id, i);
        assert_int_equal(cmd.type, NODE_CMD_PRESENCE);
        assert_true(rt_str_eq_c(cmd.channel, "ch"));
    }
    assert_int_equal(node_pb_reader_next(&r, &cmd), 0);
    node_pb_reader_cleanup(&r);

    node_pb_reader_init(&r, f.p, f.len);
    assert_int_equal(node_pb_reader_next(&r, &cmd), 1);
    node_pb_reader_cleanup(&r);
    rt_buf_cleanup(&f);
}

static void test_connect_request(void **state)
{
    PB(SubscribeRequest) s = PB_INIT(SUBSCRIBE_REQUEST);
    s.recover = 1;
    s.offset = 12;
    s.epoch = "qWeRtYuI";
    PB(ConnectRequest__SubsEntry) e = PB_INIT(CONNECT_REQUEST__SUBS_ENTRY);
    e.key = "news";
    e.value = &s;
    PB(ConnectRequest__SubsEntry) * entries[] = {&e};
    PB(ConnectRequest) conn = PB_INIT(CONNECT_REQUEST);
    conn.token = "JWT";
    conn.data = bin("\x00\x01");
    conn.data.len = 2;
    conn.name = "go";
    conn.subs = entries;
    conn.n_subs = 1;
    rt_buf_t f = RT_BUF_INIT;
    frame_msg(&f, &conn.base);

    node_pb_reader_t r;
    node_cmd_t cmd;
    node_pb_reader_init(&r, NULL, 0);
    /* skip the length prefix: the request is bare */
    assert_int_equal(node_pb_decode_connect_request(&r, f.p + 1, f.len - 1, &cmd), 0);
    rt_buf_t got = RT_BUF_INIT;
    describe(&got, &cmd);
    assert_int_equal(cmd.data.n, 2);
    assert_memory_equal(cmd.data.p, "\x00\x01", 2);
    rt_buf_append_byte(&got, 0);
    assert_string_equal((const char *)got.p,
                        "CONNECT tok=JWT data= name=go sub[news,recover,12,qWeRtYuI,]");
    rt_buf_reset(&got);
    /* an empty request is an anonymous connect */
    assert_int_equal(node_pb_decode_connect_request(&r, f.p, 0, &cmd), 0);
    describe(&got, &cmd);
    rt_buf_append_byte(&got, 0);
    assert_string_equal((const char *)got.p, "CONNECT");
    /* broken bytes */
    assert_int_equal(node_pb_decode_connect_request(&r, f.p + 1, f.len - 2, &cmd), RT_EPROTO);
    assert_int_equal(cmd.type, NODE_CMD_CONNECT);
    assert_int_equal(cmd.token.n, 0);
    assert_int_equal(node_pb_decode_connect_request(&r, (const uint8_t *)"\x0a\x01\xff", 3, &cmd),
                     RT_EPROTO);
    /* the reader still reads frames afterwards */
    assert_int_equal(node_pb_decode_connect_request(&r, f.p + 1, f.len - 1, &cmd), 0);
    assert_int_equal(cmd.nsubs, 1);
    assert_true(rt_str_eq_c(cmd.subs[0].channel, "news"));
    assert_true(cmd.subs[0].recover);
    assert_int_equal(cmd.subs[0].offset, 12);
    assert_true(rt_str_eq_c(cmd.subs[0].epoch, "qWeRtYuI"));

    /* What protobufjs (the gRPC clients' encoder) makes of node/proto/unistream.proto's
     * ConnectRequest{token:"JWT", subs:{news:{recover:true, offset:12, epoch:"E"}}}. */
    static const uint8_t uni[] = {0x0a, 0x03, 0x4a, 0x57, 0x54, 0x1a, 0x0f, 0x0a, 0x04, 0x6e, 0x65,
                                  0x77, 0x73, 0x12, 0x07, 0x18, 0x01, 0x32, 0x01, 0x45, 0x38, 0x0c};
    assert_int_equal(node_pb_decode_connect_request(&r, uni, sizeof(uni), &cmd), 0);
    rt_buf_reset(&got);
    describe(&got, &cmd);
    rt_buf_append_byte(&got, 0);
    assert_string_equal((const char *)got.p, "CONNECT tok=JWT sub[news,recover,12,E,]");
    node_pb_reader_cleanup(&r);
    rt_buf_cleanup(&got);
    rt_buf_cleanup(&f);
}

static void test_emulation(void **state)
{
    PB(EmulationRequest) e = PB_INIT(EMULATION_REQUEST);
    e.node = "d2e";
    e.session = "8c1";
    e.data = bin("\x00");
    e.data.len = 1;
    rt_buf_t f = RT_BUF_INIT;
    frame_msg(&f, &e.base);
    rt_str_t node, session, data;
    assert_int_equal(node_pb_decode_emulation(f.p + 1, f.len - 1, &node, &session, &data), 0);
    assert_true(rt_str_eq_c(node, "d2e"));
    assert_true(rt_str_eq_c(session, "8c1"));
    assert_int_equal(data.n, 1);
    assert_int_equal(data.p[0], 0);
    /* the slices point into the input */
    assert_true((const uint8_t *)data.p > f.p && (const uint8_t *)data.p < f.p + f.len);

    /* unknown fields skipped, the last of a repeated field wins, absent fields empty */
    static const char skip[] = "\x20\x05\x12\x01x\x21\x01\x02\x03\x04\x05\x06\x07\x08"
                               "\x2d\x01\x02\x03\x04\x12\x02yz\x3a\x00";
    assert_int_equal(
        node_pb_decode_emulation((const uint8_t *)skip, sizeof(skip) - 1, &node, &session, &data),
        0);
    assert_int_equal(node.n, 0);
    assert_true(rt_str_eq_c(session, "yz"));
    assert_int_equal(data.n, 0);
    assert_int_equal(node_pb_decode_emulation(f.p, 0, &node, &session, &data), 0);

    static const char *bad[] = {
        "\x08\x01",             /* node as varint */
        "\x1d\x01\x02\x03\x04", /* data as fixed32 */
        "\x0a\x05xx",           /* node past the end */
        "\x0a",                 /* tag alone */
        "\x0a\x01\xff",         /* node not UTF-8 */
        "\x12\x01\xc3",         /* session not UTF-8 */
        "\x0b",                 /* group */
        "\x80",                 /* broken tag */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(node_pb_decode_emulation((const uint8_t *)bad[i], strlen(bad[i]), &node,
                                                  &session, &data),
                         RT_EPROTO);
        assert_int_equal(node.n + session.n + data.n, 0);
    }
    rt_buf_cleanup(&f);
}

/* ------------------------------------------------------------------------------------------
 * Encoder tests
 */

#define EXPECT_BYTES(b, lit)                                                                       \
    do {                                                                                           \
        assert_int_equal((b)->len, sizeof(lit) - 1);                                               \
        assert_memory_equal((b)->p, (lit), sizeof(lit) - 1);                                       \
        rt_buf_reset(b);                                                                           \
    } while (0)

static PB(Reply) * unpack_reply(const rt_buf_t *b)
{
    PB(Reply) *r = centrifugal__centrifuge__protocol__reply__unpack(NULL, b->len, b->p);
    assert_non_null(r);
    /* nothing unknown: every field we write is in the schema */
    assert_int_equal(r->base.n_unknown_fields, 0);
    return r;
}

static void free_reply(PB(Reply) * r)
{
    centrifugal__centrifuge__protocol__reply__free_unpacked(r, NULL);
}

static bool bin_eq(ProtobufCBinaryData d, const char *s, size_t n)
{
    return d.len == n && (n == 0 || memcmp(d.data, s, n) == 0);
}

#define BIN_EQ(d, lit) bin_eq((d), (lit), sizeof(lit) - 1)

static broker_pub_t make_pub(const char *channel, const char *data, uint64_t offset)
{
    broker_pub_t p;
    memset(&p, 0, sizeof(p));
    p.channel = rt_str_c(channel);
    p.data = rt_str_c(data);
    p.offset = offset;
    return p;
}

static const rt_client_info_t info42 = {.user = RT_STR("42"),
                                        .client = RT_STR("c3d1\xe2\x80\xa6"),
                                        .conn_info = RT_STR("\x01\x02"),
                                        .chan_info = RT_STR("{\"role\":\"admin\"}")};

static void test_golden_replies(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    /* §1.4: Reply{id:2, subscribe:{}}, and its framed form */
    node_pb_reply_empty(&b, 2, "subscribe");
    EXPECT_BYTES(&b, "\x08\x02\x32\x00");
    node_sub_result_t none = {0};
    assert_int_equal(node_pb_reply_subscribe(&b, 2, &none), 0);
    rt_buf_t framed = RT_BUF_INIT;
    node_pb_put_varint(&framed, b.len);
    rt_buf_append(&framed, b.p, b.len);
    EXPECT_BYTES(&framed, "\x04\x08\x02\x32\x00");
    rt_buf_reset(&b);
    rt_buf_cleanup(&framed);

    /* every empty result keeps its tag and zero length */
    node_pb_reply_empty(&b, 5, "unsubscribe");
    EXPECT_BYTES(&b, "\x08\x05\x3a\x00");
    node_pb_reply_empty(&b, 6, "publish");
    EXPECT_BYTES(&b, "\x08\x06\x42\x00");
    node_pb_reply_empty(&b, 7, "sub_refresh");
    EXPECT_BYTES(&b, "\x08\x07\x7a\x00");
    node_pb_reply_empty(&b, 8, "refresh");
    EXPECT_BYTES(&b, "\x08\x08\x72\x00");
    node_pb_reply_refresh(&b, 9, "refresh", false, 100);
    EXPECT_BYTES(&b, "\x08\x09\x72\x00");
    node_pb_reply_refresh(&b, 9, "sub_refresh", true, 3600);
    EXPECT_BYTES(&b, "\x08\x09\x7a\x05\x08\x01\x10\x90\x1c");
    /* RefreshResult: expires #3, ttl #4 (client and version come first) */
    node_pb_reply_refresh(&b, 9, "refresh", true, 3600);
    EXPECT_BYTES(&b, "\x08\x09\x72\x05\x18\x01\x20\x90\x1c");
    assert_int_equal(node_pb_reply_rpc(&b, 10, RT_STR_NULL), 0);
    EXPECT_BYTES(&b, "\x08\x0a\x6a\x00");
    assert_int_equal(node_pb_reply_presence(&b, 1, NULL, 0), 0);
    EXPECT_BYTES(&b, "\x08\x01\x4a\x00");
    node_pb_reply_presence_stats(&b, 1, 0, 0);
    EXPECT_BYTES(&b, "\x08\x01\x52\x00");
    assert_int_equal(node_pb_reply_history(&b, 1, NULL, 0, RT_STR_NULL, 0), 0);
    EXPECT_BYTES(&b, "\x08\x01\x5a\x00");

    /* ping: an empty Reply is zero bytes */
    node_pb_ping(&b);
    assert_int_equal(b.len, 0);

    node_pb_reply_error(&b, 3, NODE_ERR_UNRECOVERABLE_POSITION, NULL, false);
    EXPECT_BYTES(&b, "\x08\x03\x12\x1a\x08\x70\x12\x16unrecoverable position");
    node_pb_push_disconnect(&b, NODE_DISCONNECT_SHUTDOWN, NULL);
    EXPECT_BYTES(&b, "\x22\x0f\x5a\x0d\x08\xb9\x17\x12\x08shutdown");
    rt_buf_cleanup(&b);
}

static void test_varint(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    node_pb_put_varint(&b, 0);
    EXPECT_BYTES(&b, "\x00");
    node_pb_put_varint(&b, 127);
    EXPECT_BYTES(&b, "\x7f");
    node_pb_put_varint(&b, 128);
    EXPECT_BYTES(&b, "\x80\x01");
    node_pb_put_varint(&b, 300);
    EXPECT_BYTES(&b, "\xac\x02");
    node_pb_put_varint(&b, UINT64_MAX);
    EXPECT_BYTES(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
    rt_buf_cleanup(&b);
}

static void check_info(const PB(ClientInfo) * ci, const rt_client_info_t *want)
{
    assert_non_null(ci);
    assert_true(rt_str_eq_c(want->user, ci->user));
    assert_true(rt_str_eq_c(want->client, ci->client));
    assert_true(bin_eq(ci->conn_info, want->conn_info.p, want->conn_info.n));
    assert_true(bin_eq(ci->chan_info, want->chan_info.p, want->chan_info.n));
}

static void test_round_trip_pub(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    broker_tag_t tags[] = {{RT_STR("ticker"), RT_STR("X")}, {RT_STR("empty"), RT_STR("")}};
    broker_pub_t p = make_pub("chat:index", "\x00\xff binary", 18);
    p.data.n = 9;
    p.has_info = true;
    p.info = info42;
    p.tags = tags;
    p.ntags = 2;
    p.epoch = RT_STR("qWeRtYuI");
    p.time_ms = 1700000000000;
    p.data_binary = true;
    assert_int_equal(node_pb_push_pub(&b, &p), 0);

    PB(Reply) *r = unpack_reply(&b);
    assert_int_equal(r->id, 0);
    assert_null(r->error);
    assert_non_null(r->push);
    assert_string_equal(r->push->channel, "chat:index");
    const PB(Publication) *pub = r->push->pub;
    assert_non_null(pub);
    assert_true(BIN_EQ(pub->data, "\x00\xff binary"));
    check_info(pub->info, &info42);
    assert_int_equal(pub->offset, 18);
    assert_int_equal(pub->n_tags, 2);
    assert_string_equal(pub->tags[0]->key, "ticker");
    assert_string_equal(pub->tags[0]->value, "X");
    assert_string_equal(pub->tags[1]->key, "empty");
    assert_string_equal(pub->tags[1]->value, "");
    /* never sent on plain subscriptions (§4) */
    assert_string_equal(pub->epoch, "");
    assert_int_equal(pub->time, 0);
    assert_string_equal(pub->channel, "");
    free_reply(r);

    /* bare Push for unidirectional transports: decodes as a Push */
    rt_str_t bare = node_pb_push_bare(rt_buf_str(&b));
    PB(Push) *push =
        centrifugal__centrifuge__protocol__push__unpack(NULL, bare.n, (const uint8_t *)bare.p);
    assert_non_null(push);
    assert_string_equal(push->channel, "chat:index");
    assert_int_equal(push->pub->offset, 18);
    centrifugal__centrifuge__protocol__push__free_unpacked(push, NULL);
    rt_buf_reset(&b);

    /* minimal publication: empty data is omitted (proto3), no info, no offset */
    broker_pub_t m = make_pub("c", "", 0);
    assert_int_equal(node_pb_push_pub(&b, &m), 0);
    EXPECT_BYTES(&b, "\x22\x05\x12\x01\x63\x22\x00");

    /* big payloads need multi-byte lengths at every level */
    static char big[20000];
    memset(big, 'x', sizeof(big));
    broker_pub_t l = make_pub("c", "", 7);
    l.data = rt_str_from(big, sizeof(big));
    l.has_info = true;
    l.info = info42;
    assert_int_equal(node_pb_push_pub(&b, &l), 0);
    r = unpack_reply(&b);
    assert_true(bin_eq(r->push->pub->data, big, sizeof(big)));
    assert_int_equal(r->push->pub->offset, 7);
    check_info(r->push->pub->info, &info42);
    free_reply(r);
    bare = node_pb_push_bare(rt_buf_str(&b));
    assert_int_equal(bare.n, b.len - 4); /* tag + 3-byte length */
    rt_buf_cleanup(&b);
}

static void test_round_trip_connect(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    broker_pub_t x = make_pub("#42", "{\"t\":\"x\"}", 4);
    broker_pub_t *pubs[] = {&x};
    rt_str_t chans[] = {RT_STR("#42"), RT_STR("news")};
    node_sub_result_t subs[] = {{.recoverable = true,
                                 .epoch = RT_STR("qWeRtYuI"),
                                 .pubs = pubs,
                                 .npubs = 1,
                                 .recovered = true,
                                 .offset = 4,
                                 .positioned = true,
                                 .was_recovering = true},
                                {0}};
    node_connect_result_t cr = {.client = RT_STR("5b9a"),
                                .version = RT_STR("6.9.1 OSS"),
                                .expires = true,
                                .ttl = 3597,
                                .data = RT_STR("\x01"),
                                .sub_channels = chans,
                                .subs = subs,
                                .nsubs = 2,
                                .ping = 25,
                                .pong = true,
                                .session = RT_STR("S"),
                                .node = RT_STR("N"),
                                .time_ms = 1700000000000};
    assert_int_equal(node_pb_reply_connect(&b, 1, &cr), 0);
    PB(Reply) *r = unpack_reply(&b);
    assert_int_equal(r->id, 1);
    const PB(ConnectResult) *c = r->connect;
    assert_non_null(c);
    assert_string_equal(c->client, "5b9a");
    assert_string_equal(c->version, "6.9.1 OSS");
    assert_true(c->expires);
    assert_int_equal(c->ttl, 3597);
    assert_true(BIN_EQ(c->data, "\x01"));
    assert_int_equal(c->n_subs, 2);
    assert_string_equal(c->subs[0]->key, "#42");
    const PB(SubscribeResult) *s = c->subs[0]->value;
    assert_true(s->recoverable && s->recovered && s->positioned && s->was_recovering);
    assert_string_equal(s->epoch, "qWeRtYuI");
    assert_int_equal(s->offset, 4);
    assert_int_equal(s->n_publications, 1);
    assert_true(BIN_EQ(s->publications[0]->data, "{\"t\":\"x\"}"));
    assert_int_equal(s->publications[0]->offset, 4);
    assert_string_equal(c->subs[1]->key, "news");
    assert_non_null(c->subs[1]->value); /* an empty SubscribeResult is still present */
    assert_int_equal(c->ping, 25);
    assert_true(c->pong);
    assert_string_equal(c->session, "S");
    assert_string_equal(c->node, "N");
    assert_int_equal(c->time, 1700000000000);
    assert_int_equal(c->flag, 0);
    assert_null(c->dict);
    free_reply(r);
    rt_buf_reset(&b);

    /* Connect push (unidirectional): the same fields at Connect's numbers */
    assert_int_equal(node_pb_push_connect(&b, &cr), 0);
    r = unpack_reply(&b);
    const PB(Connect) *p = r->push->connect;
    assert_non_null(p);
    assert_string_equal(r->push->channel, "");
    assert_string_equal(p->client, "5b9a");
    assert_string_equal(p->version, "6.9.1 OSS");
    assert_true(BIN_EQ(p->data, "\x01"));
    assert_int_equal(p->n_subs, 2);
    assert_string_equal(p->subs[0]->key, "#42");
    assert_int_equal(p->subs[0]->value->offset, 4);
    assert_true(p->expires);
    assert_int_equal(p->ttl, 3597);
    assert_int_equal(p->ping, 25);
    assert_true(p->pong);
    assert_string_equal(p->session, "S");
    assert_string_equal(p->node, "N");
    assert_int_equal(p->time, 1700000000000);
    free_reply(r);
    rt_buf_reset(&b);

    /* ttl only with expires */
    node_connect_result_t plain = {.client = RT_STR("c"), .ttl = 5};
    assert_int_equal(node_pb_reply_connect(&b, 1, &plain), 0);
    EXPECT_BYTES(&b, "\x08\x01\x2a\x03\x0a\x01\x63");
    rt_buf_cleanup(&b);
}

static void test_round_trip_replies(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    broker_pub_t x = make_pub("c", "a", 16);
    broker_pub_t y = make_pub("c", "b", 17);
    y.has_info = true;
    y.info = info42;
    broker_pub_t *pubs[] = {&x, &y};

    node_sub_result_t sr = {.expires = true,
                            .ttl = 60,
                            .recoverable = true,
                            .epoch = RT_STR("E"),
                            .pubs = pubs,
                            .npubs = 2,
                            .recovered = true,
                            .offset = 17,
                            .positioned = true,
                            .data = RT_STR("\xff"),
                            .was_recovering = true};
    assert_int_equal(node_pb_reply_subscribe(&b, 14, &sr), 0);
    PB(Reply) *r = unpack_reply(&b);
    assert_int_equal(r->id, 14);
    const PB(SubscribeResult) *s = r->subscribe;
    assert_non_null(s);
    assert_true(s->expires);
    assert_int_equal(s->ttl, 60);
    assert_true(s->recoverable && s->recovered && s->positioned && s->was_recovering);
    assert_string_equal(s->epoch, "E");
    assert_int_equal(s->n_publications, 2);
    assert_int_equal(s->publications[1]->offset, 17);
    check_info(s->publications[1]->info, &info42);
    assert_null(s->publications[0]->info);
    assert_int_equal(s->offset, 17);
    assert_true(BIN_EQ(s->data, "\xff"));
    free_reply(r);
    rt_buf_reset(&b);

    assert_int_equal(node_pb_reply_history(&b, 9, pubs, 2, RT_STR("qWeRtYuI"), 17), 0);
    r = unpack_reply(&b);
    assert_int_equal(r->id, 9);
    assert_non_null(r->history);
    assert_int_equal(r->history->n_publications, 2);
    assert_true(BIN_EQ(r->history->publications[0]->data, "a"));
    assert_int_equal(r->history->publications[0]->offset, 16);
    assert_true(BIN_EQ(r->history->publications[1]->data, "b"));
    assert_string_equal(r->history->epoch, "qWeRtYuI");
    assert_int_equal(r->history->offset, 17);
    free_reply(r);
    rt_buf_reset(&b);

    rt_client_info_t anon = {.client = RT_STR("9a0f")};
    rt_client_info_t entries[] = {info42, anon};
    assert_int_equal(node_pb_reply_presence(&b, 7, entries, 2), 0);
    r = unpack_reply(&b);
    assert_int_equal(r->id, 7);
    assert_non_null(r->presence);
    assert_int_equal(r->presence->n_presence, 2);
    assert_string_equal(r->presence->presence[0]->key, "c3d1\xe2\x80\xa6");
    check_info(r->presence->presence[0]->value, &info42);
    assert_string_equal(r->presence->presence[1]->key, "9a0f");
    check_info(r->presence->presence[1]->value, &anon);
    free_reply(r);
    rt_buf_reset(&b);

    node_pb_reply_presence_stats(&b, 8, 3, 2);
    r = unpack_reply(&b);
    assert_int_equal(r->presence_stats->num_clients, 3);
    assert_int_equal(r->presence_stats->num_users, 2);
    free_reply(r);
    rt_buf_reset(&b);

    assert_int_equal(node_pb_reply_rpc(&b, 10, RT_STR("{\"name\":\"x\"}")), 0);
    r = unpack_reply(&b);
    assert_int_equal(r->id, 10);
    assert_true(BIN_EQ(r->rpc->data, "{\"name\":\"x\"}"));
    free_reply(r);
    rt_buf_reset(&b);

    node_pb_reply_refresh(&b, 11, "refresh", true, 3600);
    r = unpack_reply(&b);
    assert_non_null(r->refresh);
    assert_true(r->refresh->expires);
    assert_int_equal(r->refresh->ttl, 3600);
    assert_string_equal(r->refresh->client, "");
    free_reply(r);
    rt_buf_reset(&b);
    node_pb_reply_refresh(&b, 12, "sub_refresh", true, 60);
    r = unpack_reply(&b);
    assert_non_null(r->sub_refresh);
    assert_true(r->sub_refresh->expires);
    assert_int_equal(r->sub_refresh->ttl, 60);
    free_reply(r);
    rt_buf_reset(&b);

    node_pb_reply_error(&b, 4, NODE_ERR_INTERNAL, NULL, true);
    r = unpack_reply(&b);
    assert_int_equal(r->id, 4);
    assert_non_null(r->error);
    assert_int_equal(r->error->code, NODE_ERR_INTERNAL);
    assert_string_equal(r->error->message, node_error_message(NODE_ERR_INTERNAL));
    assert_true(r->error->temporary);
    free_reply(r);
    rt_buf_reset(&b);
    node_pb_reply_error(&b, 5, 499, "custom", false);
    r = unpack_reply(&b);
    assert_int_equal(r->error->code, 499);
    assert_string_equal(r->error->message, "custom");
    assert_false(r->error->temporary);
    free_reply(r);
    rt_buf_cleanup(&b);
}

static void test_round_trip_pushes(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    PB(Reply) * r;

    assert_int_equal(node_pb_push_join(&b, RT_STR("chat:index"), &info42, false), 0);
    r = unpack_reply(&b);
    assert_string_equal(r->push->channel, "chat:index");
    assert_non_null(r->push->join);
    check_info(r->push->join->info, &info42);
    assert_null(r->push->leave);
    free_reply(r);
    rt_buf_reset(&b);

    /* join/leave always carry info, even an empty one */
    rt_client_info_t empty = {0};
    assert_int_equal(node_pb_push_join(&b, RT_STR("c"), &empty, true), 0);
    EXPECT_BYTES(&b, "\x22\x07\x12\x01\x63\x32\x02\x0a\x00");

    node_pb_push_unsubscribe(&b, RT_STR("chat:index"), NODE_UNSUB_SERVER, NULL);
    r = unpack_reply(&b);
    assert_string_equal(r->push->channel, "chat:index");
    assert_int_equal(r->push->unsubscribe->code, 2000);
    assert_string_equal(r->push->unsubscribe->reason, "server unsubscribe");
    free_reply(r);
    rt_buf_reset(&b);

    node_sub_result_t ss = {.recoverable = true,
                            .epoch = RT_STR("qWeRtYuI"),
                            .offset = 5,
                            .positioned = true,
                            .data = RT_STR("d"),
                            .expires = true, /* not part of the Subscribe push */
                            .ttl = 9};
    assert_int_equal(node_pb_push_subscribe(&b, RT_STR("news"), &ss), 0);
    r = unpack_reply(&b);
    assert_string_equal(r->push->channel, "news");
    const PB(Subscribe) *s = r->push->subscribe;
    assert_non_null(s);
    assert_true(s->recoverable && s->positioned);
    assert_string_equal(s->epoch, "qWeRtYuI");
    assert_int_equal(s->offset, 5);
    assert_true(BIN_EQ(s->data, "d"));
    free_reply(r);
    rt_buf_reset(&b);

    assert_int_equal(node_pb_push_message(&b, RT_STR("\x00\x01")), 0);
    r = unpack_reply(&b);
    assert_string_equal(r->push->channel, "");
    assert_int_equal(r->push->message->data.len, 2);
    free_reply(r);
    rt_buf_reset(&b);

    node_pb_push_disconnect(&b, 3010, "custom");
    r = unpack_reply(&b);
    assert_int_equal(r->push->disconnect->code, 3010);
    assert_string_equal(r->push->disconnect->reason, "custom");
    assert_false(r->push->disconnect->reconnect);
    free_reply(r);
    rt_buf_reset(&b);

    node_pb_push_refresh(&b, true, 3600);
    r = unpack_reply(&b);
    assert_true(r->push->refresh->expires);
    assert_int_equal(r->push->refresh->ttl, 3600);
    free_reply(r);
    rt_buf_reset(&b);
    node_pb_push_refresh(&b, false, 3600);
    EXPECT_BYTES(&b, "\x22\x02\x62\x00");

    /* a bare push: what follows the field-4 tag and its length */
    node_pb_push_unsubscribe(&b, RT_STR("c"), 2600, "x");
    rt_str_t bare = node_pb_push_bare(rt_buf_str(&b));
    assert_true(bare.p == (const char *)b.p + 2);
    assert_int_equal(bare.n, b.len - 2);
    rt_buf_cleanup(&b);
}

/* Replies are appended: the buffer may already hold earlier messages. */
static void test_append(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    rt_buf_append_cstr(&b, "prefix");
    static char big[300];
    memset(big, 'y', sizeof(big));
    assert_int_equal(node_pb_push_message(&b, rt_str_from(big, sizeof(big))), 0);
    assert_memory_equal(b.p, "prefix", 6);
    rt_buf_t msg = RT_BUF_INIT;
    rt_buf_append(&msg, b.p + 6, b.len - 6);
    PB(Reply) *r = unpack_reply(&msg);
    assert_true(bin_eq(r->push->message->data, big, sizeof(big)));
    free_reply(r);
    rt_buf_cleanup(&msg);
    rt_buf_cleanup(&b);
}

int run_proto_pb(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_connect),
        cmocka_unit_test(test_pong),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_every_command),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_subscribe_fields),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_connect_subs),
        cmocka_unit_test(test_same_as_json),
        cmocka_unit_test(test_bad_commands),
        cmocka_unit_test(test_bad_framing),
        cmocka_unit_test(test_string_edges),
        cmocka_unit_test(test_many_commands),
        cmocka_unit_test(test_connect_request),
        cmocka_unit_test(test_emulation),
        cmocka_unit_test(test_golden_replies),
        cmocka_unit_test(test_varint),
        cmocka_unit_test(test_round_trip_pub),
        cmocka_unit_test(test_round_trip_connect),
        cmocka_unit_test(test_round_trip_replies),
        cmocka_unit_test(test_round_trip_pushes),
        cmocka_unit_test(test_append),
    };
    return cmocka_run_group_tests_name("proto_pb", tests, NULL, NULL);
}
