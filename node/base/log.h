/* One line per event: "ts level module message key=value ...", one write() per line.
 * The level test happens before the arguments are evaluated. */
#ifndef RT_BASE_LOG_H
#define RT_BASE_LOG_H

#include <stdatomic.h>
#include <stdbool.h>

enum {
    RT_LOG_TRACE = 0,
    RT_LOG_DEBUG = 1,
    RT_LOG_INFO = 2,
    RT_LOG_WARN = 3,
    RT_LOG_ERROR = 4,
    RT_LOG_NONE = 5,
};

#ifndef RT_LOG_MODULE
#define RT_LOG_MODULE "rotor"
#endif

extern _Atomic int rt_log_level_;

void rt_log_set_level(int level);
/* Parses trace|debug|info|warn|error|fatal|none. Returns 0 or RT_EINVAL. */
int rt_log_parse_level(const char *name, int *level);
/* Selects JSON lines (true) or text lines (false). Default: text. */
void rt_log_set_json(bool json);
/* Where lines go [stderr]. */
void rt_log_set_fd(int fd);
void rt_log_write(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline bool rt_log_enabled(int level)
{
    return level >= atomic_load_explicit(&rt_log_level_, memory_order_relaxed);
}

#define RT_LOG_AT(lvl, ...)                                                                        \
    do {                                                                                           \
        if (rt_log_enabled(lvl))                                                                   \
            rt_log_write((lvl), RT_LOG_MODULE, __VA_ARGS__);                                       \
    } while (0)

#define RT_LOG_TRACE(...) RT_LOG_AT(RT_LOG_TRACE, __VA_ARGS__)
#define RT_LOG_DEBUG(...) RT_LOG_AT(RT_LOG_DEBUG, __VA_ARGS__)
#define RT_LOG_INFO(...)  RT_LOG_AT(RT_LOG_INFO, __VA_ARGS__)
#define RT_LOG_WARN(...)  RT_LOG_AT(RT_LOG_WARN, __VA_ARGS__)
#define RT_LOG_ERROR(...) RT_LOG_AT(RT_LOG_ERROR, __VA_ARGS__)

#endif
