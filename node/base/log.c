#include "node/base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "node/base/assert.h"
#include "node/base/err.h"

_Atomic int rt_log_level_ = RT_LOG_INFO;
static _Atomic bool log_json;
static _Atomic int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error", "none"};

void rt_log_set_level(int level)
{
    atomic_store(&rt_log_level_, level);
}

void rt_log_set_json(bool json)
{
    atomic_store(&log_json, json);
}

void rt_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

int rt_log_parse_level(const char *name, int *level)
{
    for (int i = 0; i <= RT_LOG_NONE; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = i;
            return 0;
        }
    }
    if (strcmp(name, "fatal") == 0) {
        *level = RT_LOG_ERROR;
        return 0;
    }
    return RT_EINVAL;
}

/* Appends s JSON-escaped. */
static size_t json_escape(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

void rt_log_write(int level, const char *module, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int mlen = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (mlen < 0)
        return;
    if ((size_t)mlen >= sizeof(msg))
        mlen = sizeof(msg) - 1;
    for (int i = 0; i < mlen; i++) {
        if (msg[i] == '\n' || msg[i] == '\r')
            msg[i] = ' ';
    }

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[64];
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(ts.tv_nsec / 1000000) % 1000);
    const char *lname = level_names[level < 0 ? 0 : level > RT_LOG_ERROR ? RT_LOG_ERROR : level];

    char line[4608];
    size_t n;
    if (atomic_load(&log_json)) {
        n = (size_t)snprintf(line, sizeof(line),
                             "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"", stamp,
                             lname, module);
        n += json_escape(line + n, sizeof(line) - n - 4, msg, (size_t)mlen);
        line[n++] = '"';
        line[n++] = '}';
        line[n++] = '\n';
    } else {
        n = (size_t)snprintf(line, sizeof(line), "%s %s %s %s\n", stamp, lname, module, msg);
        if (n >= sizeof(line))
            n = sizeof(line) - 1;
    }
    /* One write per line keeps lines from different threads whole. */
    if (write(atomic_load(&log_fd), line, n) < 0) {
        /* logging must never fail the caller */
    }
}

void rt_assert_fail(const char *expr, const char *file, int line)
{
    rt_log_write(RT_LOG_ERROR, "assert", "assertion failed: %s at %s:%d", expr, file, line);
    abort();
}
