#include "node/base/utf8.h"

#include <stdint.h>
#include <string.h>

/* Eight bytes at a time while the input is ASCII: command payloads are mostly ASCII, so the
 * per-sequence checks below run only for the rare non-ASCII runs. */
#define HIGH_BITS 0x8080808080808080ULL

bool rt_utf8_valid(const void *p, size_t n)
{
    if (n == 0)
        return true; /* p may be NULL */
    const uint8_t *s = p;
    const uint8_t *end = s + n;

    while (s < end) {
        while ((size_t)(end - s) >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            if (w & HIGH_BITS)
                break;
            s += 8;
        }
        if (s == end)
            break;
        uint8_t c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t left = (size_t)(end - s);
        /* The second byte's allowed range depends on the lead byte: this is what rules out
         * overlongs (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and values above
         * U+10FFFF (F4 90..BF). */
        if (c >= 0xc2 && c <= 0xdf) {
            if (left < 2 || (s[1] & 0xc0) != 0x80)
                return false;
            s += 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            uint8_t lo = c == 0xe0 ? 0xa0 : 0x80;
            uint8_t hi = c == 0xed ? 0x9f : 0xbf;
            if (left < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80)
                return false;
            s += 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            uint8_t lo = c == 0xf0 ? 0x90 : 0x80;
            uint8_t hi = c == 0xf4 ? 0x8f : 0xbf;
            if (left < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 ||
                (s[3] & 0xc0) != 0x80)
                return false;
            s += 4;
        } else {
            /* continuation byte without a lead, C0/C1 (always overlong), F5..FF */
            return false;
        }
    }
    return true;
}

bool rt_ascii_only(const void *p, size_t n)
{
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0 || s[i] >= 0x80)
            return false;
    }
    return true;
}
