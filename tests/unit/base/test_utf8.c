#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/utf8.h"

static bool valid_s(const char *s)
{
    return rt_utf8_valid(s, strlen(s));
}

static void test_valid(void **state)
{
    const char *ok[] = {
        "",
        "plain ascii",
        "\x7f",
        "\xc2\x80",         /* U+0080 */
        "\xc3\xa9",         /* é */
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800 */
        "\xe2\x82\xac",     /* € */
        "\xed\x9f\xbf",     /* U+D7FF */
        "\xee\x80\x80",     /* U+E000 */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x90\x80\x80", /* U+10000 */
        "\xf0\x9f\x98\x80", /* 😀 */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF */
        "mixed \xc3\xa9 and \xf0\x9f\x98\x80 text longer than eight bytes",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!valid_s(ok[i]))
            fail_msg("rejected valid #%zu", i);
    }
    assert_true(rt_utf8_valid("a\0b", 3)); /* NUL is a valid code point */
    assert_true(rt_utf8_valid(NULL, 0));
}

static void test_invalid(void **state)
{
    const char *bad[] = {
        "\x80", /* lone continuation */
        "\xbf",
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\x80",     /* overlong */
        "\xe0\x9f\xbf",     /* overlong U+07FF */
        "\xed\xa0\x80",     /* U+D800 */
        "\xed\xbf\xbf",     /* U+DFFF */
        "\xf0\x80\x80\x80", /* overlong */
        "\xf0\x8f\xbf\xbf", /* overlong U+FFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80",
        "\xf8\x88\x80\x80\x80",
        "\xfe",
        "\xff",
        "\xc2",         /* truncated */
        "\xe2\x82",     /* truncated */
        "\xf0\x9f\x98", /* truncated */
        "\xc2\x41",     /* bad continuation */
        "\xe2\x28\xa1",
        "\xe2\x82\x28",
        "\xf0\x9f\x28\x80",
        "\xf0\x9f\x98\x28",
        "abcdefgh\xc3", /* truncated after the fast path */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid_s(bad[i]))
            fail_msg("accepted invalid #%zu", i);
    }
}

/* Encodes cp with the shortest form. */
static size_t encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* Every code point, and every truncation of its encoding. */
static void test_every_code_point(void **state)
{
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        uint8_t b[4];
        size_t n = encode(cp, b);
        bool want = cp < 0xd800 || cp > 0xdfff;
        if (rt_utf8_valid(b, n) != want)
            fail_msg("U+%04X", cp);
        for (size_t k = 1; k < n; k++)
            assert_false(rt_utf8_valid(b, k));
    }
}

/* Every 2-byte and 3-byte sequence: valid exactly when it is ASCII pairs/triples or the
 * shortest encoding of a non-surrogate code point (or a mix of those). */
static bool reference_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        uint8_t tmp[4];
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || encode(cp, tmp) != len)
            return false;
        i += len;
    }
    return true;
}

static void test_exhaustive_short(void **state)
{
    for (uint32_t v = 0; v < (1u << 24); v++) {
        uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        if (rt_utf8_valid(b, 3) != reference_valid(b, 3))
            fail_msg("%02x %02x %02x", b[0], b[1], b[2]);
        if ((v & 0xff) == 0 && rt_utf8_valid(b, 2) != reference_valid(b, 2))
            fail_msg("%02x %02x", b[0], b[1]);
    }
}

/* A bad byte at every offset of an ASCII buffer: the 8-byte fast path must not skip it. */
static void test_fast_path_offsets(void **state)
{
    char buf[40];
    for (size_t off = 0; off < sizeof(buf); off++) {
        memset(buf, 'a', sizeof(buf));
        assert_true(rt_utf8_valid(buf, sizeof(buf)));
        buf[off] = (char)0x80;
        assert_false(rt_utf8_valid(buf, sizeof(buf)));
        assert_true(rt_utf8_valid(buf, off));
        if (off + 2 <= sizeof(buf)) {
            buf[off] = (char)0xc3;
            buf[off + 1] = (char)0xa9;
            assert_true(rt_utf8_valid(buf, sizeof(buf)));
        }
    }
}

static void test_ascii_only(void **state)
{
    assert_true(rt_ascii_only("", 0));
    assert_true(rt_ascii_only("chat:index $x", 13));
    assert_true(rt_ascii_only("\x01\x7f", 2));
    assert_false(rt_ascii_only("a\0b", 3));
    assert_false(rt_ascii_only("\x80", 1));
    assert_false(rt_ascii_only("caf\xc3\xa9", 5));
}

int run_utf8(void);
int run_utf8(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_every_code_point),
        cmocka_unit_test(test_exhaustive_short),
        cmocka_unit_test(test_fast_path_offsets),
        cmocka_unit_test(test_ascii_only),
    };
    return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
