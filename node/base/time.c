#include "node/base/time.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/base/err.h"

int64_t rt_time_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rt_time_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

int64_t rt_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rt_parse_duration_ms(const char *s, int64_t *out_ms)
{
    if (s == NULL || *s == '\0')
        return RT_EINVAL;
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    /* Go's time.ParseDuration grammar without sign: one or more <decimal><unit>, where a
     * decimal is digits with an optional fraction (".5s" and "1.5h" are valid). Parsed by
     * hand: strtod would also take hex, exponents and "inf". */
    static const struct {
        const char *name;
        double ms;
    } units[] = {{"ns", 0.000001}, {"us", 0.001}, {"\xc2\xb5s", 0.001}, {"ms", 1},
                 {"s", 1000},      {"m", 60000},  {"h", 3600000}};
    double total = 0;
    const char *p = s;
    while (*p) {
        double v = 0, scale = 1;
        bool digits = false;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p++ - '0');
            digits = true;
            if (v > 1e15)
                return RT_EINVAL;
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                scale /= 10;
                v += (*p++ - '0') * scale;
                digits = true;
            }
        }
        if (!digits)
            return RT_EINVAL;
        size_t best = 0, best_len = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t n = strlen(units[i].name);
            if (n > best_len && strncmp(p, units[i].name, n) == 0) {
                best = i;
                best_len = n;
            }
        }
        if (best_len == 0)
            return RT_EINVAL;
        p += best_len;
        total += v * units[best].ms;
        if (total > 9e15)
            return RT_EINVAL;
    }
    *out_ms = (int64_t)total;
    return 0;
}
