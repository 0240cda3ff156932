#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/buf.h"

static void test_append_and_grow(void **state)
{
    rt_buf_t b;
    rt_buf_init(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    rt_buf_append(&b, "x", 0); /* no allocation for nothing */
    assert_null(b.p);
    rt_buf_append_cstr(&b, "ab");
    rt_buf_append_byte(&b, 'c');
    rt_buf_append_str(&b, RT_STR("de"));
    rt_buf_append(&b, "fg", 2);
    assert_true(rt_str_eq_c(rt_buf_str(&b), "abcdefg"));
    for (int i = 0; i < 10000; i++)
        rt_buf_append_byte(&b, (uint8_t)('0' + i % 10));
    assert_int_equal(b.len, 10007);
    assert_true(b.cap >= b.len);
    assert_int_equal(b.p[7 + 9999], '9');
    assert_memory_equal(b.p, "abcdefg0123", 11);
    rt_buf_cleanup(&b);
    assert_null(b.p);
    assert_int_equal(b.cap, 0);
}

static void test_reserve(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    rt_buf_reserve(&b, 1000);
    assert_true(b.cap >= 1000);
    uint8_t *p = b.p;
    for (int i = 0; i < 1000; i++)
        rt_buf_append_byte(&b, 'a');
    assert_ptr_equal(b.p, p); /* reserved room is used without moving */
    rt_buf_reserve(&b, 0);
    assert_ptr_equal(b.p, p);
    rt_buf_cleanup(&b);
}

static void test_numbers_and_printf(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    rt_buf_append_u64(&b, 0);
    rt_buf_append_byte(&b, ' ');
    rt_buf_append_u64(&b, UINT64_MAX);
    rt_buf_append_byte(&b, ' ');
    rt_buf_append_i64(&b, INT64_MIN);
    rt_buf_append_byte(&b, ' ');
    rt_buf_append_i64(&b, INT64_MAX);
    rt_buf_append_byte(&b, ' ');
    rt_buf_append_i64(&b, -1);
    assert_true(rt_str_eq_c(rt_buf_str(&b), "0 18446744073709551615 -9223372036854775808 "
                                            "9223372036854775807 -1"));
    rt_buf_reset(&b);
    rt_buf_printf(&b, "%s=%d", "k", 42);
    rt_buf_printf(&b, "%s", ""); /* empty output appends nothing */
    rt_buf_printf(&b, ";%05.1f", 2.25);
    assert_true(rt_str_eq_c(rt_buf_str(&b), "k=42;002.2"));
    char big[300];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rt_buf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, 10 + 301);
    assert_int_equal(b.p[b.len - 1], ']');
    rt_buf_cleanup(&b);
}

static void test_reset_consume(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    rt_buf_append_cstr(&b, "0123456789");
    size_t cap = b.cap;
    rt_buf_consume(&b, 3);
    assert_true(rt_str_eq_c(rt_buf_str(&b), "3456789"));
    rt_buf_consume(&b, 0);
    assert_true(rt_str_eq_c(rt_buf_str(&b), "3456789"));
    rt_buf_consume(&b, 7);
    assert_int_equal(b.len, 0);
    rt_buf_append_cstr(&b, "ab");
    rt_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    rt_buf_append_cstr(&b, "xyz");
    rt_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap); /* keeps the allocation */
    rt_buf_cleanup(&b);
}

static void test_to_bytes(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    rt_buf_append_cstr(&b, "frame");
    rt_bytes_t *bytes = rt_buf_to_bytes(&b);
    assert_int_equal(bytes->len, 5);
    assert_int_equal(bytes->refs, 1);
    assert_memory_equal(bytes->data, "frame", 5);
    b.p[0] = 'F'; /* a copy: the bytes do not change with the buffer */
    assert_int_equal(bytes->data[0], 'f');
    assert_int_equal(b.len, 5);
    rt_bytes_unref(bytes);
    rt_buf_cleanup(&b);

    rt_bytes_t *empty = rt_buf_to_bytes(&b);
    assert_int_equal(empty->len, 0);
    rt_bytes_unref(empty);
}

int run_buf(void);
int run_buf(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_grow),    cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_numbers_and_printf), cmocka_unit_test(test_reset_consume),
        cmocka_unit_test(test_to_bytes),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
