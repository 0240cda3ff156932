/* Clocks. Loops use ev_now(); these are for wall-clock facts (token expiry, publication
 * time) and for code that runs outside a loop. */
#ifndef RT_BASE_TIME_H
#define RT_BASE_TIME_H

#include <stdint.h>

/* Unix time in milliseconds (CLOCK_REALTIME). */
int64_t rt_time_ms(void);
/* Unix time in seconds. */
int64_t rt_time_s(void);
/* Monotonic milliseconds. */
int64_t rt_mono_ms(void);
/* Parses a Go-style duration ("25s", "720h", "100ms", "1m30s", "0"). Returns 0 or RT_EINVAL. */
int rt_parse_duration_ms(const char *s, int64_t *out_ms);

#endif
