#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "node/base/err.h"
#include "node/base/time.h"

static void expect_ms(const char *s, int64_t want)
{
    int64_t got = -12345;
    int rc = rt_parse_duration_ms(s, &got);
    if (rc != 0 || got != want)
        fail_msg("%s: rc %d got %lld want %lld", s, rc, (long long)got, (long long)want);
}

static void test_durations(void **state)
{
    expect_ms("25s", 25000);
    expect_ms("720h", 720LL * 3600 * 1000);
    expect_ms("100ms", 100);
    expect_ms("1m30s", 90000);
    expect_ms("0", 0);
    expect_ms("0s", 0);
    expect_ms("1h1h", 7200000);
    expect_ms("1h2m3s4ms", 3723004);
    expect_ms("1.5h", 5400000);
    expect_ms("0.5s", 500);
    expect_ms("1500us", 1);
    expect_ms("2000000ns", 2);
    expect_ms("10m", 600000);
    expect_ms(".5s", 500);      /* Go accepts a fraction without integer part */
    expect_ms("3\xc2\xb5s", 0); /* micro sign */
}

static void test_invalid_durations(void **state)
{
    const char *bad[] = {
        "",      "s",     "ms",   "1",    "10",   "1x",  "1 s", " 1s",
        "1s ",   "1sec",  "1hh",  "1m30", "h1",   "abc", "1.5", "9999999999999999h",
        "1s-1s", "0x10s", "1e3s", "infs", "nans", "-1s", "+1s", "."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t out = 777;
        if (rt_parse_duration_ms(bad[i], &out) != RT_EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(out, 777); /* untouched on error */
    }
    int64_t out;
    assert_int_equal(rt_parse_duration_ms(NULL, &out), RT_EINVAL);
}

static void test_clocks(void **state)
{
    int64_t ms = rt_time_ms();
    int64_t s = rt_time_s();
    assert_true(ms > 1600000000000LL); /* after 2020 */
    assert_true(s - ms / 1000 >= 0 && s - ms / 1000 <= 1);
    int64_t m1 = rt_mono_ms();
    int64_t m2 = rt_mono_ms();
    assert_true(m2 >= m1);
}

int run_time(void);
int run_time(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_invalid_durations),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests_name("time", tests, NULL, NULL);
}
