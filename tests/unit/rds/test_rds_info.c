/* The ClientInfo encoding in Redis (broker/rds_info.h): round trips, exact bytes, and what
 * a decoder must refuse. Publications embedding it are covered by broker's test_pubcodec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/rds_info.h"
#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"

static const rt_client_info_t full = {RT_STR("user-1"), RT_STR("client-1"), RT_STR("{\"a\":1}"),
                                      RT_STR("\x00\x01\xff")};

static bool same(const rt_client_info_t *a, const rt_client_info_t *b)
{
    return rt_str_eq(a->user, b->user) && rt_str_eq(a->client, b->client) &&
           rt_str_eq(a->conn_info, b->conn_info) && rt_str_eq(a->chan_info, b->chan_info);
}

/* Decodes n bytes from an exact-size heap copy, so ASan catches any over-read. */
static int decode_bytes(const void *p, size_t n, rt_client_info_t *out)
{
    char *copy = rt_malloc(n > 0 ? n : 1);
    if (n > 0)
        memcpy(copy, p, n);
    int rc = rds_info_decode(rt_str_from(copy, n), out);
    rt_free(copy);
    return rc;
}

static int decode_raw(const uint8_t *p, size_t n)
{
    rt_client_info_t got;
    return decode_bytes(p, n, &got);
}

#define RAW(...) decode_raw((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static void test_round_trip_and_truncation(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    rds_info_encode(&b, &full);
    rt_client_info_t got;
    assert_int_equal(rds_info_decode(rt_buf_str(&b), &got), 0);
    assert_true(same(&got, &full));
    /* Slices borrow the input. */
    assert_true(got.user.p >= (const char *)b.p && got.user.p < (const char *)b.p + b.len);
    for (size_t cut = 0; cut < b.len; cut++) {
        assert_int_equal(decode_bytes(b.p, cut, &got), RT_EPROTO);
        rt_client_info_t zero = {0};
        assert_memory_equal(&got, &zero, sizeof(got)); /* zeroed on error */
    }
    rt_buf_reset(&b);
    rt_client_info_t empty = {0};
    rds_info_encode(&b, &empty);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.p[0], 0x80);
    assert_int_equal(rds_info_decode(rt_buf_str(&b), &got), 0);
    assert_true(same(&got, &empty));
    rt_buf_cleanup(&b);
}

static void test_exact_bytes(void **state)
{
    /* Empty fields are omitted; user/client are str, conn_info/chan_info bin. */
    rt_client_info_t info = {.user = RT_STR("u"), .chan_info = RT_STR("\x01")};
    static const uint8_t want[] = {0x82, 0x01, 0xa1, 'u', 0x04, 0xc4, 0x01, 0x01};
    rt_buf_t b = RT_BUF_INIT;
    rds_info_encode(&b, &info);
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.p, want, sizeof(want));
    rt_buf_cleanup(&b);
}

static void test_malformed(void **state)
{
    assert_int_equal(decode_bytes("", 0, &(rt_client_info_t){0}), RT_EPROTO);
    assert_int_equal(RAW(0x90), RT_EPROTO);                                     /* array */
    assert_int_equal(RAW(0xa1, 'u'), RT_EPROTO);                                /* str */
    assert_int_equal(RAW(0x80, 0xc0), RT_EPROTO);                               /* trailing byte */
    assert_int_equal(RAW(0x81, 0x01, 0xc4, 0x01, 'u'), RT_EPROTO);              /* user bin */
    assert_int_equal(RAW(0x81, 0x02, 0x01), RT_EPROTO);                         /* client int */
    assert_int_equal(RAW(0x81, 0x03, 0xa1, 'x'), RT_EPROTO);                    /* conn_info str */
    assert_int_equal(RAW(0x81, 0x04, 0xc0), RT_EPROTO);                         /* chan_info nil */
    assert_int_equal(RAW(0x82, 0x01, 0xa0, 0x01, 0xa0), RT_EPROTO);             /* duplicate */
    assert_int_equal(RAW(0x81, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff), RT_EPROTO); /* huge str */
    assert_int_equal(RAW(0xdf, 0xff, 0xff, 0xff, 0xff), RT_EPROTO);             /* huge map */
    /* Unknown keys of any type are skipped, with their values. */
    assert_int_equal(RAW(0x84, 0x00, 0xc0, 0x09, 0x91, 0x80, 0xa1, 'k', 0xc3, 0xff, 0xa0), 0);
    rt_client_info_t got;
    static const uint8_t mixed[] = {0x82, 0xa1, 'x', 0x01, 0x02, 0xa1, 'c'};
    assert_int_equal(rds_info_decode(rt_str_from((const char *)mixed, sizeof(mixed)), &got), 0);
    assert_true(rt_str_eq_c(got.client, "c"));
    assert_int_equal(got.user.n, 0);
}

static void test_read_embedded(void **state)
{
    /* rds_info_read stops right after the map, for decoders of enclosing maps. */
    rt_buf_t b = RT_BUF_INIT;
    rds_info_encode(&b, &full);
    size_t info_len = b.len;
    rt_buf_append(&b, "\xc3", 1);
    rds_mp_reader_t r;
    rds_mp_reader_init(&r, rt_buf_str(&b));
    rt_client_info_t got;
    assert_int_equal(rds_info_read(&r, &got), 0);
    assert_true(same(&got, &full));
    assert_int_equal(rds_mp_left(&r), b.len - info_len);
    bool v = false;
    assert_int_equal(rds_mp_read_bool(&r, &v), 0);
    assert_true(v);
    rt_buf_cleanup(&b);
}

int run_rds_info(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_truncation),
        cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_read_embedded),
    };
    return cmocka_run_group_tests_name("rds_info", tests, NULL, NULL);
}
