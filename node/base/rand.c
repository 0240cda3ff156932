#include "node/base/rand.h"

#include <stdio.h>
#include <sys/random.h>

#include "node/base/assert.h"

void rt_random_fill(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        RT_ASSERT(got > 0);
        p += got;
        n -= (size_t)got;
    }
}

uint64_t rt_random_u64(void)
{
    uint64_t v;
    rt_random_fill(&v, sizeof(v));
    return v;
}

void rt_uuid4(char out[37])
{
    uint8_t b[16];
    rt_random_fill(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

void rt_random_letters(char *out, size_t n)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    uint8_t raw[64];
    for (size_t i = 0; i < n; i++) {
        if (i % sizeof(raw) == 0)
            rt_random_fill(raw, sizeof(raw));
        out[i] = letters[raw[i % sizeof(raw)] % 52];
    }
    out[n] = '\0';
}
