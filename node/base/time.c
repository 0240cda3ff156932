#include "node/base/time.h"

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
    int64_t total = 0;
    const char *p = s;
    while (*p) {
        if (*p < '0' || *p > '9')
            return RT_EINVAL;
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            return RT_EINVAL;
        p = end;
        double unit;
        if (strncmp(p, "ms", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (strncmp(p, "us", 2) == 0) {
            unit = 0.001;
            p += 2;
        } else if (strncmp(p, "ns", 2) == 0) {
            unit = 0.000001;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60000;
            p++;
        } else if (*p == 'h') {
            unit = 3600000;
            p++;
        } else {
            return RT_EINVAL;
        }
        double add = v * unit;
        if (add > 9e15)
            return RT_EINVAL;
        total += (int64_t)add;
    }
    *out_ms = total;
    return 0;
}
