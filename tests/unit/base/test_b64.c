#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/b64.h"
#include "node/base/buf.h"
#include "node/base/err.h"

static void expect_encode(const char *in, bool url, bool pad, const char *want)
{
    rt_buf_t b = RT_BUF_INIT;
    rt_b64_encode(&b, in, strlen(in), url, pad);
    if (!rt_str_eq(rt_buf_str(&b), rt_str_c(want)))
        fail_msg("encode %s: got %.*s want %s", in, (int)b.len, b.p, want);
    rt_buf_cleanup(&b);
}

static int decode(const char *in, bool url, rt_buf_t *out)
{
    rt_buf_reset(out);
    return rt_b64_decode(out, in, strlen(in), url);
}

static void expect_decode(const char *in, bool url, const char *want)
{
    rt_buf_t b = RT_BUF_INIT;
    int rc = decode(in, url, &b);
    if (rc != 0 || !rt_str_eq(rt_buf_str(&b), rt_str_c(want)))
        fail_msg("decode %s (url %d): rc %d", in, url, rc);
    rt_buf_cleanup(&b);
}

static void expect_reject(const char *in, bool url)
{
    rt_buf_t b = RT_BUF_INIT;
    if (decode(in, url, &b) != RT_EINVAL)
        fail_msg("decode %s (url %d) accepted", in, url);
    rt_buf_cleanup(&b);
}

/* RFC 4648 §10 test vectors. */
static void test_rfc_vectors(void **state)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *padded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *raw[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        expect_encode(plain[i], false, true, padded[i]);
        expect_encode(plain[i], true, true, padded[i]);
        expect_encode(plain[i], true, false, raw[i]);
        expect_encode(plain[i], false, false, raw[i]);
        expect_decode(padded[i], false, plain[i]);
        expect_decode(padded[i], true, plain[i]);
        expect_decode(raw[i], true, plain[i]);
        if (strlen(raw[i]) % 4 != 0)
            expect_reject(raw[i], false); /* StdEncoding requires padding */
    }
}

static void test_alphabets(void **state)
{
    const char in[] = "\xfb\xff\xbf";
    rt_buf_t b = RT_BUF_INIT;
    rt_b64_encode(&b, in, 3, false, true);
    assert_true(rt_str_eq_c(rt_buf_str(&b), "+/+/"));
    rt_buf_reset(&b);
    rt_b64_encode(&b, in, 3, true, true);
    assert_true(rt_str_eq_c(rt_buf_str(&b), "-_-_"));
    rt_buf_cleanup(&b);
    expect_decode("+/+/", false, in);
    expect_decode("-_-_", true, in);
    expect_reject("-_-_", false);
    expect_reject("+/+/", true);
}

static void test_rejects(void **state)
{
    const char *both[] = {"Z",        "Zg=",   "Z===",  "====",  "=",       "==",
                          "Zg==Zg==", "=Zg=",  " Zg==", "Zg== ", "Zm9v\n",  "Zm9\nv",
                          "Zm9v====", "Zg===", "Zm9vY", "Zm.v",  "Zm9v\x80"};
    for (size_t i = 0; i < sizeof(both) / sizeof(both[0]); i++) {
        expect_reject(both[i], false);
        expect_reject(both[i], true);
    }
    /* Embedded NUL (strlen above would hide it). */
    rt_buf_t b = RT_BUF_INIT;
    assert_int_equal(rt_b64_decode(&b, "Zm\0v", 4, false), RT_EINVAL);
    assert_int_equal(rt_b64_decode(&b, "Zm\0v", 4, true), RT_EINVAL);
    rt_buf_cleanup(&b);
}

/* Non-zero trailing bits are accepted, as by Go's (non-Strict) StdEncoding. */
static void test_trailing_bits(void **state)
{
    expect_decode("Zh==", false, "f");
    expect_decode("Zm9=", false, "fo");
    expect_decode("Zh", true, "f");
}

static void test_round_trip(void **state)
{
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 37 + 11);
    rt_buf_t enc = RT_BUF_INIT, dec = RT_BUF_INIT;
    for (size_t n = 0; n <= sizeof(data); n++) {
        for (int mode = 0; mode < 4; mode++) {
            bool url = mode & 1, pad = mode & 2;
            if (!url && !pad)
                continue; /* raw std input is not decodable by design */
            rt_buf_reset(&enc);
            rt_buf_reset(&dec);
            rt_b64_encode(&enc, data, n, url, pad);
            assert_int_equal(enc.len, pad ? (n + 2) / 3 * 4 : (n * 4 + 2) / 3);
            rt_buf_append_cstr(&dec, "pre");
            assert_int_equal(rt_b64_decode(&dec, (const char *)enc.p, enc.len, url), 0);
            assert_int_equal(dec.len, n + 3);
            assert_memory_equal(dec.p, "pre", 3); /* appends */
            if (n > 0)
                assert_memory_equal(dec.p + 3, data, n);
        }
    }
    rt_buf_cleanup(&enc);
    rt_buf_cleanup(&dec);
}

/* Every byte outside the alphabet is rejected in every position of a quad. */
static void test_every_byte(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    for (int url = 0; url < 2; url++) {
        const char *alpha =
            url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int c = 0; c < 256; c++) {
            bool in_alpha = c != 0 && strchr(alpha, c) != NULL;
            for (int pos = 0; pos < 4; pos++) {
                char quad[4] = {'Q', 'U', 'F', 'B'};
                quad[pos] = (char)c;
                rt_buf_reset(&b);
                int rc = rt_b64_decode(&b, quad, 4, url);
                bool ok = in_alpha || (c == '=' && pos >= 3);
                if ((rc == 0) != ok)
                    fail_msg("byte 0x%02x at %d (url %d): rc %d", c, pos, url, rc);
            }
        }
    }
    rt_buf_cleanup(&b);
}

int run_b64(void);
int run_b64(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_vectors), cmocka_unit_test(test_alphabets),
        cmocka_unit_test(test_rejects),     cmocka_unit_test(test_trailing_bits),
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_every_byte),
    };
    return cmocka_run_group_tests_name("b64", tests, NULL, NULL);
}
