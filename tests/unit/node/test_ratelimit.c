/* The connection-rate token bucket (node/ratelimit.h), driven with explicit times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "node/ratelimit.h"

static int take_n(node_ratelimit_t *rl, int n, double now_s)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += node_ratelimit_take(rl, now_s);
    return ok;
}

static void test_unlimited(void **state)
{
    node_ratelimit_t rl;
    node_ratelimit_init(&rl, 0, 100);
    assert_int_equal(take_n(&rl, 100000, 100), 100000);
    node_ratelimit_init(&rl, -5, 100);
    assert_int_equal(take_n(&rl, 1000, 100), 1000);
}

static void test_burst_then_rate(void **state)
{
    node_ratelimit_t rl;
    node_ratelimit_init(&rl, 10, 100);
    /* One second's worth at once, then nothing at the same instant. */
    assert_int_equal(take_n(&rl, 50, 100), 10);
    /* 0.25 s later: 2.5 tokens, so 2. */
    assert_int_equal(take_n(&rl, 50, 100.25), 2);
    /* The half token left carries over: 0.0625 s more (0.625 tokens) makes 1. */
    assert_int_equal(take_n(&rl, 50, 100.3125), 1);
    /* A long pause refills to the burst, never beyond. */
    assert_int_equal(take_n(&rl, 50, 1000), 10);
}

static void test_refused_attempts_take_nothing(void **state)
{
    node_ratelimit_t rl;
    node_ratelimit_init(&rl, 4, 0);
    assert_int_equal(take_n(&rl, 4, 0), 4);
    /* A flood of refused attempts during the next second... */
    for (int i = 1; i < 100; i++)
        (void)node_ratelimit_take(&rl, i / 100.0 * 0.2);
    /* ...does not push the next client out: at t = 1 s the refill is there. */
    assert_true(node_ratelimit_take(&rl, 1.0));
}

static void test_fractional_rate(void **state)
{
    /* rate 1 over 4 workers: 0.25/s each, capacity 1. */
    node_ratelimit_t rl;
    node_ratelimit_init(&rl, 0.25, 0);
    assert_int_equal(take_n(&rl, 5, 0), 1);
    assert_int_equal(take_n(&rl, 5, 3.9), 0);
    assert_int_equal(take_n(&rl, 5, 4.0), 1);
}

static void test_clock_backwards(void **state)
{
    node_ratelimit_t rl;
    node_ratelimit_init(&rl, 2, 50);
    assert_int_equal(take_n(&rl, 2, 50), 2);
    assert_int_equal(take_n(&rl, 5, 40), 0);
    /* Refill counts from the last time seen, not from the earlier one. */
    assert_int_equal(take_n(&rl, 5, 50.5), 1);
}

int run_ratelimit(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_refused_attempts_take_nothing),
        cmocka_unit_test(test_fractional_rate),
        cmocka_unit_test(test_clock_backwards),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
