/* Shard placement (SERVER.md §3.13) against the spec's vectors: the Redis broker and Redis
 * presence both place channels with it, so a change here moves data between shards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "broker/rds_shard.h"

static void test_vectors(void **state)
{
    /* SERVER.md §3.13. */
    static const struct {
        const char *ch;
        uint64_t fnv;
        size_t n2, n3, n4, n8, n128;
    } v[] = {
        {"chat:index", 0x4e648ca6baf3d6b9ULL, 0, 0, 0, 0, 78},
        {"news", 0xe5495bbaa03a6526ULL, 1, 2, 3, 3, 81},
        {"user#42", 0xb99d91a5089d7a45ULL, 1, 2, 2, 2, 69},
        {"a", 0xaf63dc4c8601ec8cULL, 1, 2, 2, 2, 31},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        rt_str_t ch = rt_str_c(v[i].ch);
        assert_int_equal(rds_shard_fnv1a64(ch), v[i].fnv);
        assert_int_equal(rds_shard_of(ch, 1), 0);
        assert_int_equal(rds_shard_of(ch, 2), v[i].n2);
        assert_int_equal(rds_shard_of(ch, 3), v[i].n3);
        assert_int_equal(rds_shard_of(ch, 4), v[i].n4);
        assert_int_equal(rds_shard_of(ch, 8), v[i].n8);
        assert_int_equal(rds_shard_of(ch, 128), v[i].n128);
    }
    assert_int_equal(rds_shard_fnv1a64(RT_STR("")), 14695981039346656037ULL);
    /* Consistency: growing 4 -> 5 shards moves a channel only to the new shard. */
    int moved = 0;
    for (int i = 0; i < 1000; i++) {
        char ch[16];
        snprintf(ch, sizeof(ch), "ch%d", i);
        size_t s4 = rds_shard_of(rt_str_c(ch), 4);
        size_t s5 = rds_shard_of(rt_str_c(ch), 5);
        assert_true(s5 == s4 || s5 == 4);
        moved += s5 != s4;
    }
    assert_true(moved > 120 && moved < 280); /* ~1/5 */
}

int run_rds_shard(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
    };
    return cmocka_run_group_tests_name("rds_shard", tests, NULL, NULL);
}
