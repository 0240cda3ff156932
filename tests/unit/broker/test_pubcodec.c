#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/pubcodec.h"
#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"

static const rt_client_info_t full_info = {RT_STR("user-1"), RT_STR("client-1"),
                                           RT_STR("{\"a\":1}"), RT_STR("\x00\x01\xff")};
static const broker_tag_t two_tags[] = {{RT_STR("k1"), RT_STR("v1")}, {RT_STR("k2"), RT_STR("")}};

static broker_pub_fields_t full_fields(void)
{
    return (broker_pub_fields_t){.data = RT_STR("\x00payload\xff"),
                                 .data_binary = true,
                                 .info = &full_info,
                                 .tags = two_tags,
                                 .ntags = 2,
                                 .delta = true,
                                 .time_ms = 1700000000123LL};
}

static void assert_str(rt_str_t got, rt_str_t want)
{
    assert_int_equal(got.n, want.n);
    if (want.n > 0)
        assert_memory_equal(got.p, want.p, want.n);
}

static void assert_info(const rt_client_info_t *got, const rt_client_info_t *want)
{
    assert_str(got->user, want->user);
    assert_str(got->client, want->client);
    assert_str(got->conn_info, want->conn_info);
    assert_str(got->chan_info, want->chan_info);
}

static void assert_fields(const broker_pub_fields_t *got, const broker_pub_fields_t *want)
{
    assert_str(got->data, want->data);
    assert_int_equal(got->data_binary, want->data_binary);
    assert_int_equal(got->delta, want->delta);
    assert_int_equal(got->time_ms, want->time_ms);
    assert_int_equal(got->info != NULL, want->info != NULL);
    if (want->info != NULL)
        assert_info(got->info, want->info);
    assert_int_equal(got->ntags, want->ntags);
    for (size_t i = 0; i < want->ntags; i++) {
        assert_str(got->tags[i].key, want->tags[i].key);
        assert_str(got->tags[i].value, want->tags[i].value);
    }
}

/* Every strict prefix of a valid encoding is rejected (truncation), the whole is accepted;
 * the bytes are copied into an exact-size heap buffer so ASan sees any over-read. */
static void check_prefixes_fail_msg(rt_str_t whole)
{
    for (size_t cut = 0; cut < whole.n; cut++) {
        char *copy = rt_malloc(cut + 1);
        memcpy(copy, whole.p, cut);
        broker_pc_msg_t m;
        int rc = broker_pc_decode_msg(rt_str_from(copy, cut), &m);
        if (rc == 0) {
            /* "__j__" + a shorter info can never decode, but a plain publication cut
             * right after a complete map prefix is not a valid prefix either: the outer
             * map count promises more pairs. So every cut must fail. */
            fail_msg("prefix of %zu/%zu bytes decoded", cut, whole.n);
        }
        assert_int_equal(rc, RT_EPROTO);
        assert_int_equal(m.pub.fields.ntags, 0);
        assert_null(m.pub.tags);
        rt_free(copy);
    }
}

static void test_pub_round_trip(void **state)
{
    broker_pub_fields_t f = full_fields();
    rt_buf_t b = RT_BUF_INIT;
    broker_pc_encode_pub(&b, &f);
    /* A map, so the framing prefix "__" can never be confused with a publication. */
    assert_int_equal(b.p[0] & 0xf0, 0x80);
    broker_pc_pub_t p;
    assert_int_equal(broker_pc_decode_pub(rt_buf_str(&b), &p), 0);
    assert_fields(&p.fields, &f);
    assert_ptr_equal(p.fields.info, &p.info);
    broker_pc_pub_cleanup(&p);
    rt_buf_cleanup(&b);
}

static void test_pub_minimal_and_exact_bytes(void **state)
{
    /* Empty fields are omitted: the empty publication is an empty map. */
    broker_pub_fields_t f = {0};
    rt_buf_t b = RT_BUF_INIT;
    broker_pc_encode_pub(&b, &f);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.p[0], 0x80);
    broker_pc_pub_t p;
    assert_int_equal(broker_pc_decode_pub(rt_buf_str(&b), &p), 0);
    assert_fields(&p.fields, &f);
    assert_null(p.fields.info);
    broker_pc_pub_cleanup(&p);

    /* {4: bin "x", 9: 1} with integer keys = Protobuf field numbers. */
    rt_buf_reset(&b);
    f.data = RT_STR("x");
    f.time_ms = 1;
    broker_pc_encode_pub(&b, &f);
    const uint8_t want[] = {0x82, 0x04, 0xc4, 0x01, 'x', 0x09, 0x01};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.p, want, sizeof(want));

    /* Info with only a user; data_binary as key 100. */
    rt_buf_reset(&b);
    rt_client_info_t info = {.user = RT_STR("u")};
    broker_pub_fields_t g = {.info = &info, .data_binary = true};
    broker_pc_encode_pub(&b, &g);
    const uint8_t want2[] = {0x82, 0x05, 0x81, 0x01, 0xa1, 'u', 0x64, 0xc3};
    assert_int_equal(b.len, sizeof(want2));
    assert_memory_equal(b.p, want2, sizeof(want2));
    assert_int_equal(broker_pc_decode_pub(rt_buf_str(&b), &p), 0);
    assert_fields(&p.fields, &g);
    broker_pc_pub_cleanup(&p);
    rt_buf_cleanup(&b);
}

static void test_pub_large_and_negative(void **state)
{
    /* bin32/str16 sizes and map16 tags, negative time. */
    size_t n = 70000;
    char *data = rt_malloc(n);
    memset(data, 'z', n);
    broker_tag_t *tags = rt_calloc(20, sizeof(*tags));
    char names[20][8];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof(names[i]), "t%d", i);
        tags[i].key = rt_str_c(names[i]);
        tags[i].value = rt_str_from(data, 300);
    }
    broker_pub_fields_t f = {
        .data = rt_str_from(data, n), .tags = tags, .ntags = 20, .time_ms = -5};
    rt_buf_t b = RT_BUF_INIT;
    broker_pc_encode_pub(&b, &f);
    broker_pc_pub_t p;
    assert_int_equal(broker_pc_decode_pub(rt_buf_str(&b), &p), 0);
    assert_fields(&p.fields, &f);
    broker_pc_pub_cleanup(&p);
    rt_buf_cleanup(&b);
    rt_free(tags);
    rt_free(data);
}

static void test_framing_forms(void **state)
{
    broker_pub_fields_t f = full_fields();
    rt_buf_t b = RT_BUF_INIT;
    broker_pc_msg_t m;

    /* Plain: no position. */
    broker_pc_encode_pub(&b, &f);
    assert_int_equal(broker_pc_decode_msg(rt_buf_str(&b), &m), 0);
    assert_int_equal(m.kind, BROKER_PC_PUBLICATION);
    assert_false(m.positioned);
    assert_int_equal(m.pub.fields.offset, 0);
    assert_int_equal(m.pub.fields.epoch.n, 0);
    assert_fields(&m.pub.fields, &f);
    broker_pc_msg_cleanup(&m);
    check_prefixes_fail_msg(rt_buf_str(&b));

    /* __p1 */
    rt_buf_reset(&b);
    broker_pc_encode_positioned(&b, 18446744073709551615ULL, RT_STR("AbCdEfGh"), &f);
    assert_true(rt_str_starts_with(rt_buf_str(&b), RT_STR("__p1:18446744073709551615:AbCdEfGh__")));
    assert_int_equal(broker_pc_decode_msg(rt_buf_str(&b), &m), 0);
    assert_int_equal(m.kind, BROKER_PC_PUBLICATION);
    assert_true(m.positioned);
    assert_int_equal(m.offset, 18446744073709551615ULL);
    assert_int_equal(m.pub.fields.offset, 18446744073709551615ULL);
    assert_true(rt_str_eq_c(m.pub.fields.epoch, "AbCdEfGh"));
    assert_fields(&m.pub.fields, &f);
    broker_pc_msg_cleanup(&m);
    check_prefixes_fail_msg(rt_buf_str(&b));

    /* __d1 with a previous publication, and with an empty one. */
    rt_buf_t pub = RT_BUF_INIT, prev = RT_BUF_INIT;
    broker_pc_encode_pub(&pub, &f);
    broker_pub_fields_t pf = {.data = RT_STR("old")};
    broker_pc_encode_pub(&prev, &pf);
    for (int with_prev = 0; with_prev < 2; with_prev++) {
        rt_buf_reset(&b);
        rt_buf_printf(&b, "__d1:7:epoch:%zu:", with_prev ? prev.len : 0);
        if (with_prev)
            rt_buf_append(&b, prev.p, prev.len);
        rt_buf_printf(&b, ":%zu:", pub.len);
        rt_buf_append(&b, pub.p, pub.len);
        assert_int_equal(broker_pc_decode_msg(rt_buf_str(&b), &m), 0);
        assert_true(m.positioned);
        assert_int_equal(m.pub.fields.offset, 7);
        assert_true(rt_str_eq_c(m.epoch, "epoch"));
        assert_int_equal(m.prev.n, with_prev ? prev.len : 0);
        assert_fields(&m.pub.fields, &f);
        broker_pc_msg_cleanup(&m);
        check_prefixes_fail_msg(rt_buf_str(&b));
    }

    /* Join and leave. */
    rt_buf_reset(&b);
    broker_pc_encode_join(&b, &full_info);
    assert_true(rt_str_starts_with(rt_buf_str(&b), RT_STR("__j__")));
    assert_int_equal(broker_pc_decode_msg(rt_buf_str(&b), &m), 0);
    assert_int_equal(m.kind, BROKER_PC_JOIN);
    assert_info(&m.info, &full_info);
    broker_pc_msg_cleanup(&m);
    check_prefixes_fail_msg(rt_buf_str(&b));
    rt_buf_reset(&b);
    broker_pc_encode_leave(&b, &full_info);
    assert_true(rt_str_starts_with(rt_buf_str(&b), RT_STR("__l__")));
    assert_int_equal(broker_pc_decode_msg(rt_buf_str(&b), &m), 0);
    assert_int_equal(m.kind, BROKER_PC_LEAVE);
    assert_info(&m.info, &full_info);
    broker_pc_msg_cleanup(&m);
    check_prefixes_fail_msg(rt_buf_str(&b));

    rt_buf_cleanup(&pub);
    rt_buf_cleanup(&prev);
    rt_buf_cleanup(&b);
}

/* Decodes raw bytes as a message; returns the status. */
static int decode_raw(const void *p, size_t n)
{
    char *copy = rt_malloc(n + 1);
    memcpy(copy, p, n);
    broker_pc_msg_t m;
    int rc = broker_pc_decode_msg(rt_str_from(copy, n), &m);
    broker_pc_msg_cleanup(&m);
    rt_free(copy);
    return rc;
}

#define RAW(...) decode_raw((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static int decode_str(const char *s)
{
    return decode_raw(s, strlen(s));
}

static void test_malformed_headers(void **state)
{
    const char *bad[] = {
        "",
        "_",
        "__",
        "__x__\x80",
        "__p1:abc",
        "__p1:abc:e__\x80",
        "__p1::e__\x80",                     /* no offset */
        "__p1:5:__\x80",                     /* empty epoch */
        "__p1:5:ep\x80",                     /* no closing __ */
        "__p1:5:ep__",                       /* no publication */
        "__p1:5:e:p__\x80",                  /* ':' in the epoch */
        "__p1:18446744073709551616:e__\x80", /* offset overflow */
        "__p1:-1:e__\x80",
        "__p2:5:e__\x80",
        "__d1:5:e:0:1:\x80",      /* missing ':' after an empty prev */
        "__d1:5:e:1:\x80:2:\x80", /* len says 2, one byte follows */
        "__d1:5:e:9:\x80:1:\x80", /* prev longer than the message */
        "__d1:5:e:0:",
        "__d1:5:e",
        "__j__",
        "__l__",
        "__j_\x80",
        "__J__\x80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (decode_str(bad[i]) != RT_EPROTO)
            fail_msg("accepted bad[%zu] \"%s\"", i, bad[i]);
    }
    /* The minimal valid forms, for contrast. */
    assert_int_equal(decode_str("__p1:5:e__\x80"), 0);
    assert_int_equal(decode_str("__p1:0:e__\x80"), 0);
    assert_int_equal(decode_str("__d1:5:e:0::1:\x80"), 0);
    assert_int_equal(decode_str("__j__\x80"), 0);
    assert_int_equal(decode_str("\x80"), 0);
}

static void test_malformed_msgpack(void **state)
{
    /* Not a map at the top. */
    assert_int_equal(RAW(0xa1, 'x'), RT_EPROTO);
    assert_int_equal(RAW(0x91, 0x01), RT_EPROTO);
    assert_int_equal(RAW(0xc0), RT_EPROTO);
    assert_int_equal(RAW(0xc1), RT_EPROTO);
    /* Trailing bytes. */
    assert_int_equal(RAW(0x80, 0x80), RT_EPROTO);
    /* Wrong types for known keys. */
    assert_int_equal(RAW(0x81, 0x04, 0xa1, 'x'), RT_EPROTO);                    /* data as str */
    assert_int_equal(RAW(0x81, 0x05, 0xc4, 0x00), RT_EPROTO);                   /* info as bin */
    assert_int_equal(RAW(0x81, 0x05, 0x81, 0x01, 0xc4, 0x01, 'u'), RT_EPROTO);  /* user bin */
    assert_int_equal(RAW(0x81, 0x05, 0x81, 0x03, 0xa1, 'u'), RT_EPROTO);        /* conn_info str */
    assert_int_equal(RAW(0x81, 0x07, 0x90), RT_EPROTO);                         /* tags as array */
    assert_int_equal(RAW(0x81, 0x07, 0x81, 0x01, 0xa1, 'v'), RT_EPROTO);        /* tag key int */
    assert_int_equal(RAW(0x81, 0x07, 0x81, 0xa1, 'k', 0x01), RT_EPROTO);        /* tag value int */
    assert_int_equal(RAW(0x81, 0x08, 0x01), RT_EPROTO);                         /* delta as int */
    assert_int_equal(RAW(0x81, 0x09, 0xc3), RT_EPROTO);                         /* time as bool */
    assert_int_equal(RAW(0x81, 0x09, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0), RT_EPROTO); /* float */
    assert_int_equal(RAW(0x81, 0x09, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0), RT_EPROTO); /* > int64 */
    assert_int_equal(RAW(0x81, 0x64, 0xa0), RT_EPROTO); /* data_binary as str */
    /* Duplicate known keys (a second tags map must not leak the first). */
    assert_int_equal(RAW(0x82, 0x08, 0xc3, 0x08, 0xc2), RT_EPROTO);
    assert_int_equal(RAW(0x82, 0x07, 0x81, 0xa1, 'k', 0xa0, 0x07, 0x81, 0xa1, 'k', 0xa0),
                     RT_EPROTO);
    assert_int_equal(RAW(0x81, 0x05, 0x82, 0x01, 0xa0, 0x01, 0xa0), RT_EPROTO);
    /* Huge lengths with nothing behind them: rejected before any allocation. */
    assert_int_equal(RAW(0x81, 0x04, 0xc6, 0xff, 0xff, 0xff, 0xff), RT_EPROTO);
    assert_int_equal(RAW(0xdf, 0xff, 0xff, 0xff, 0xff), RT_EPROTO);
    assert_int_equal(RAW(0x81, 0x07, 0xdf, 0xff, 0xff, 0xff, 0xff), RT_EPROTO);
    assert_int_equal(RAW(0x81, 0x50, 0xdd, 0xff, 0xff, 0xff, 0xff), RT_EPROTO);
    assert_int_equal(RAW(0x81, 0x50, 0xdf, 0xff, 0xff, 0xff, 0xff, 0x01), RT_EPROTO);
    assert_int_equal(RAW(0x81, 0x50, 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01), RT_EPROTO);
    assert_int_equal(RAW(0x81, 0x04, 0xdb, 0xff, 0xff, 0xff, 0xff), RT_EPROTO);
    /* Unknown keys of any type and value are skipped, nested containers included. */
    assert_int_equal(RAW(0x83, 0x50, 0x92, 0x81, 0xa1, 'a', 0xc0, 0xd6, 0x01, 1, 2, 3, 4, 0xa1, 'z',
                         0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x04, 0xc4, 0x01, 'x'),
                     0);
    assert_int_equal(RAW(0x81, 0xff, 0xc0), 0);             /* negative key */
    assert_int_equal(RAW(0x81, 0xcd, 0x10, 0x00, 0xc0), 0); /* large key */
    assert_int_equal(RAW(0x81, 0x91, 0x01, 0xc0), 0);       /* array as key */
    assert_int_equal(RAW(0x81, 0x05, 0x81, 0x09, 0x90), 0); /* unknown info key */
}

static void test_deep_nesting(void **state)
{
    /* A million nested arrays in an unknown key: skipped without recursion. */
    size_t depth = 1000000;
    uint8_t *p = rt_malloc(depth + 3);
    p[0] = 0x81;
    p[1] = 0x50;
    memset(p + 2, 0x91, depth);
    p[2 + depth] = 0xc0;
    assert_int_equal(decode_raw(p, depth + 3), 0);
    assert_int_equal(decode_raw(p, depth + 2), RT_EPROTO);
    rt_free(p);
}

static void test_every_truncation_of_raw_forms(void **state)
{
    /* Every integer and length width, truncated at each byte. */
    static const uint8_t forms[] = {
        0x8a,                                                       /* map of 10 */
        0x09, 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* time int64 -2 */
        0x04, 0xc5, 0x00, 0x02, 'a',  'b',                          /* data bin16 */
        0x50, 0xd9, 0x01, 'x',                                      /* unknown: str8 */
        0x51, 0xca, 0,    0,    0,    0,                            /* unknown: float32 */
        0x52, 0xc7, 0x01, 0x05, 0xaa,                               /* unknown: ext8 */
        0x53, 0xdc, 0x00, 0x01, 0xd0, 0x80,                         /* unknown: array16 [int8] */
        0x54, 0xde, 0x00, 0x01, 0xd1, 0x00, 0x01, 0xd2, 0,    0,    0, 1, /* unknown: map16 */
        0x07, 0x81, 0xda, 0x00, 0x01, 'k',  0xa1, 'v',                    /* tags with str16 key */
        0x05, 0x82, 0x02, 0xa1, 'c',  0x04, 0xc4, 0x00, /* info client, chan_info */
        0x55, 0xcc, 0xff,                               /* unknown: uint8 */
    };
    rt_str_t whole = rt_str_from((const char *)forms, sizeof(forms));
    broker_pc_pub_t p;
    assert_int_equal(broker_pc_decode_pub(whole, &p), 0);
    assert_int_equal(p.fields.time_ms, -2);
    assert_true(rt_str_eq_c(p.fields.data, "ab"));
    assert_int_equal(p.fields.ntags, 1);
    assert_true(rt_str_eq_c(p.info.client, "c"));
    broker_pc_pub_cleanup(&p);
    check_prefixes_fail_msg(whole);
}

int run_pubcodec(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pub_round_trip),
        cmocka_unit_test(test_pub_minimal_and_exact_bytes),
        cmocka_unit_test(test_pub_large_and_negative),
        cmocka_unit_test(test_framing_forms),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_malformed_msgpack),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_every_truncation_of_raw_forms),
    };
    return cmocka_run_group_tests_name("pubcodec", tests, NULL, NULL);
}
