#include "node/base/b64.h"

#include <stdint.h>

#include "node/base/err.h"

static const char std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Reverse tables: 0..63 for alphabet characters, 0xff for everything else ('=' included;
 * padding is handled before the table is consulted). */
static uint8_t std_rev[256];
static uint8_t url_rev[256];

static void build_rev(uint8_t rev[256], const char *alphabet)
{
    for (int i = 0; i < 256; i++)
        rev[i] = 0xff;
    for (int i = 0; i < 64; i++)
        rev[(uint8_t)alphabet[i]] = (uint8_t)i;
}

/* Constructor rather than lazy init: decoding runs on several threads and a racy one-time
 * fill would be a data race even if every thread writes the same values. */
__attribute__((constructor)) static void b64_init_tables(void)
{
    build_rev(std_rev, std_alphabet);
    build_rev(url_rev, url_alphabet);
}

void rt_b64_encode(rt_buf_t *out, const void *p, size_t n, bool url, bool pad)
{
    const uint8_t *s = p;
    const char *a = url ? url_alphabet : std_alphabet;

    if (n == 0)
        return; /* out->p may still be NULL */
    rt_buf_reserve(out, (n + 2) / 3 * 4);
    uint8_t *d = out->p + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *d++ = (uint8_t)a[v >> 18];
        *d++ = (uint8_t)a[(v >> 12) & 63];
        *d++ = (uint8_t)a[(v >> 6) & 63];
        *d++ = (uint8_t)a[v & 63];
    }
    size_t rest = n - i;
    if (rest > 0) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (rest == 2)
            v |= (uint32_t)s[i + 1] << 8;
        *d++ = (uint8_t)a[v >> 18];
        *d++ = (uint8_t)a[(v >> 12) & 63];
        if (rest == 2)
            *d++ = (uint8_t)a[(v >> 6) & 63];
        else if (pad)
            *d++ = '=';
        if (pad)
            *d++ = '=';
    }
    out->len = (size_t)(d - out->p);
}

int rt_b64_decode(rt_buf_t *out, const char *p, size_t n, bool url)
{
    const uint8_t *s = (const uint8_t *)p;
    const uint8_t *rev = url ? url_rev : std_rev;

    if (n == 0)
        return 0;

    /* Padding is all or nothing: padded input is a whole number of quads ending in at most
     * two '='; the standard alphabet requires it, the URL alphabet also takes raw input. */
    size_t padding = 0;
    if (n > 0 && s[n - 1] == '=') {
        padding = n > 1 && s[n - 2] == '=' ? 2 : 1;
        if (n % 4 != 0)
            return RT_EINVAL;
    } else if (!url && n % 4 != 0) {
        return RT_EINVAL;
    }
    size_t len = n - padding;
    size_t tail = len % 4;
    if (tail == 1)
        return RT_EINVAL;

    rt_buf_reserve(out, len / 4 * 3 + 2);
    uint8_t *d = out->p + out->len;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint8_t a = rev[s[i]], b = rev[s[i + 1]], c = rev[s[i + 2]], e = rev[s[i + 3]];
        if ((a | b | c | e) & 0xc0)
            return RT_EINVAL;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | e;
        *d++ = (uint8_t)(v >> 16);
        *d++ = (uint8_t)(v >> 8);
        *d++ = (uint8_t)v;
        out->len += 3;
    }
    if (tail > 0) {
        uint8_t a = rev[s[i]], b = rev[s[i + 1]];
        uint8_t c = tail == 3 ? rev[s[i + 2]] : 0;
        if ((a | b | c) & 0xc0)
            return RT_EINVAL;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        *d++ = (uint8_t)(v >> 16);
        if (tail == 3)
            *d++ = (uint8_t)(v >> 8);
        out->len += tail - 1;
    }
    return 0;
}
