/* MessagePack in Redis (broker/rds_mp.h): the writer picks the shortest forms other
 * implementations expect, and the reader refuses anything that does not fit the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/rds_mp.h"
#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"

static void expect_bytes(const rt_buf_t *b, const uint8_t *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->p, want, n);
}

#define EXPECT(b, ...)                                                                             \
    expect_bytes((b), (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static void test_put_shortest_forms(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    rds_mp_put_uint(&b, 5);
    rds_mp_put_uint(&b, 200);
    rds_mp_put_uint(&b, 70000);
    EXPECT(&b, 0x05, 0xcc, 0xc8, 0xce, 0x00, 0x01, 0x11, 0x70);
    rt_buf_reset(&b);
    rds_mp_put_int(&b, -1);
    rds_mp_put_int(&b, -200);
    rds_mp_put_int(&b, 7);
    EXPECT(&b, 0xff, 0xd1, 0xff, 0x38, 0x07);
    rt_buf_reset(&b);
    rds_mp_put_bool(&b, true);
    rds_mp_put_bool(&b, false);
    rds_mp_put_map(&b, 0);
    rds_mp_put_map(&b, 16);
    rds_mp_put_str(&b, RT_STR("ab"));
    rds_mp_put_bin(&b, RT_STR_NULL);
    EXPECT(&b, 0xc3, 0xc2, 0x80, 0xde, 0x00, 0x10, 0xa2, 'a', 'b', 0xc4, 0x00);
    rt_buf_reset(&b);
    char long_str[40];
    memset(long_str, 'x', sizeof(long_str));
    rds_mp_put_str(&b, rt_str_from(long_str, sizeof(long_str)));
    assert_int_equal(b.len, 2 + sizeof(long_str));
    assert_int_equal(b.p[0], 0xd9);
    assert_int_equal(b.p[1], sizeof(long_str));
    rt_buf_cleanup(&b);
}

/* Runs read over an exact-size heap copy of n bytes; returns its result and the bytes
 * left, so ASan catches any over-read. */
typedef int (*read_fn)(rds_mp_reader_t *r, void *out);

static int run_read(read_fn read, const uint8_t *p, size_t n, void *out, size_t *left)
{
    uint8_t *copy = rt_malloc(n > 0 ? n : 1);
    if (n > 0)
        memcpy(copy, p, n);
    rds_mp_reader_t r;
    rds_mp_reader_init(&r, rt_str_from((const char *)copy, n));
    int rc = read(&r, out);
    *left = rds_mp_left(&r);
    rt_free(copy);
    return rc;
}

static int read_int(rds_mp_reader_t *r, void *out)
{
    return rds_mp_read_int(r, out);
}

static int read_key(rds_mp_reader_t *r, void *out)
{
    return rds_mp_read_key(r, out);
}

static int read_map(rds_mp_reader_t *r, void *out)
{
    return rds_mp_read_map(r, out);
}

static int skip_any(rds_mp_reader_t *r, void *out)
{
    return rds_mp_skip(r);
}

/* The whole input is one value: accepted with nothing left, every strict prefix refused. */
static void check_whole_and_prefixes(read_fn read, const uint8_t *p, size_t n, void *out)
{
    size_t left;
    assert_int_equal(run_read(read, p, n, out, &left), 0);
    assert_int_equal(left, 0);
    for (size_t cut = 0; cut < n; cut++) {
        int64_t scratch[2];
        assert_int_equal(run_read(read, p, cut, scratch, &left), RT_EPROTO);
    }
}

#define WHOLE(fn, out, ...)                                                                        \
    check_whole_and_prefixes((fn), (const uint8_t[]){__VA_ARGS__},                                 \
                             sizeof((const uint8_t[]){__VA_ARGS__}), (out))

static int read_one(read_fn read, const uint8_t *p, size_t n, void *out)
{
    size_t left;
    return run_read(read, p, n, out, &left);
}

#define ONE(fn, out, ...)                                                                          \
    read_one((fn), (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}), (out))

static void test_read_int(void **state)
{
    int64_t v = 0;
    WHOLE(read_int, &v, 0x7f);
    assert_int_equal(v, 127);
    WHOLE(read_int, &v, 0xe0);
    assert_int_equal(v, -32);
    WHOLE(read_int, &v, 0xd1, 0xff, 0x38);
    assert_int_equal(v, -200);
    WHOLE(read_int, &v, 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    assert_int_equal(v, INT64_MAX);
    WHOLE(read_int, &v, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(ONE(read_int, &v, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0), RT_EPROTO); /* > max */
    assert_int_equal(ONE(read_int, &v, 0xca, 0, 0, 0, 0), RT_EPROTO);                /* float */
    assert_int_equal(ONE(read_int, &v, 0xc3), RT_EPROTO);                            /* bool */
    assert_int_equal(ONE(read_int, &v, 0xc1), RT_EPROTO); /* never used */
}

static void test_read_key(void **state)
{
    int64_t key = 0;
    WHOLE(read_key, &key, 0xcd, 0x03, 0xe8);
    assert_int_equal(key, RDS_MP_MAX_KEY);
    WHOLE(read_key, &key, 0xcd, 0x03, 0xe9);
    assert_int_equal(key, -1);
    WHOLE(read_key, &key, 0xa1, 'k');
    assert_int_equal(key, -1);
    WHOLE(read_key, &key, 0x92, 0x81, 0x01, 0x02, 0xc0); /* containers consumed whole */
    assert_int_equal(key, -1);
    WHOLE(read_key, &key, 0xff);
    assert_int_equal(key, -1);
}

static void test_read_map_bounds(void **state)
{
    uint64_t n = 0;
    assert_int_equal(ONE(read_map, &n, 0x81, 0x01, 0x02), 0);
    assert_int_equal(n, 1);
    /* The count must fit the bytes left (two per pair) before anyone sizes an array. */
    assert_int_equal(ONE(read_map, &n, 0x82, 0x01, 0x02), RT_EPROTO);
    assert_int_equal(ONE(read_map, &n, 0xdf, 0xff, 0xff, 0xff, 0xff), RT_EPROTO);
    assert_int_equal(ONE(read_map, &n, 0x90), RT_EPROTO);
}

static void test_skip(void **state)
{
    WHOLE(skip_any, NULL, 0x83, 0x01, 0xa1, 'a', 0xd6, 0x01, 1, 2, 3, 4, 0x92, 0xc0, 0xcb, 0, 0, 0,
          0, 0, 0, 0, 0, 0xc7, 0x02, 0x05, 'x', 'y', 0xc0);
    WHOLE(skip_any, NULL, 0xdd, 0, 0, 0, 1, 0xc4, 0x01, 'z');
    assert_int_equal(ONE(skip_any, NULL, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0), RT_EPROTO);
    assert_int_equal(ONE(skip_any, NULL, 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01), RT_EPROTO);
    /* Deep nesting costs no stack: 100000 one-element arrays around a nil. */
    size_t depth = 100000;
    uint8_t *deep = rt_malloc(depth + 1);
    memset(deep, 0x91, depth);
    deep[depth] = 0xc0;
    size_t left;
    assert_int_equal(run_read(skip_any, deep, depth + 1, NULL, &left), 0);
    assert_int_equal(left, 0);
    assert_int_equal(run_read(skip_any, deep, depth, NULL, &left), RT_EPROTO);
    rt_free(deep);
}

static void test_typed_reads_and_seen(void **state)
{
    rds_mp_reader_t r;
    rds_mp_reader_init(&r, RT_STR("\xa2hi\xc4\x01z\xc2"));
    rt_str_t s, bin;
    bool b = true;
    assert_int_equal(rds_mp_read_str(&r, &s), 0);
    assert_true(rt_str_eq_c(s, "hi"));
    assert_int_equal(rds_mp_read_bin(&r, &bin), 0);
    assert_true(rt_str_eq_c(bin, "z"));
    assert_int_equal(rds_mp_read_bool(&r, &b), 0);
    assert_false(b);
    assert_int_equal(rds_mp_left(&r), 0);
    rds_mp_reader_init(&r, RT_STR("\xc4\x00"));
    assert_int_equal(rds_mp_read_str(&r, &s), RT_EPROTO); /* bin is not str */
    rds_mp_reader_init(&r, RT_STR("\xa0"));
    assert_int_equal(rds_mp_read_bin(&r, &bin), RT_EPROTO);

    uint32_t seen = 0;
    assert_int_equal(rds_mp_seen_once(&seen, 3), 0);
    assert_int_equal(rds_mp_seen_once(&seen, 31), 0);
    assert_int_equal(rds_mp_seen_once(&seen, 3), RT_EPROTO);
}

int run_rds_mp(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_shortest_forms),
        cmocka_unit_test(test_read_int),
        cmocka_unit_test(test_read_key),
        cmocka_unit_test(test_read_map_bounds),
        cmocka_unit_test(test_skip),
        cmocka_unit_test(test_typed_reads_and_seen),
    };
    return cmocka_run_group_tests_name("rds_mp", tests, NULL, NULL);
}
