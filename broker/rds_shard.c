#include "broker/rds_shard.h"

uint64_t rds_shard_fnv1a64(rt_str_t s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < s.n; i++) {
        h ^= (uint8_t)s.p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/* Lamping & Veach, with the floating point of the reference implementations: the spec's
 * vectors depend on it. */
static int64_t jump_hash(uint64_t key, int64_t n)
{
    int64_t b = -1, j = 0;
    while (j < n) {
        b = j;
        key = key * UINT64_C(2862933555777941757) + 1;
        j = (int64_t)((double)(b + 1) * (2147483648.0 / (double)((key >> 33) + 1)));
    }
    return b;
}

size_t rds_shard_of(rt_str_t channel, size_t n)
{
    if (n <= 1)
        return 0;
    return (size_t)jump_hash(rds_shard_fnv1a64(channel), (int64_t)n);
}
