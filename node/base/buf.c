#include "node/base/buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "node/base/alloc.h"

void rt_buf_init(rt_buf_t *b)
{
    *b = RT_BUF_INIT;
}

void rt_buf_cleanup(rt_buf_t *b)
{
    rt_free(b->p);
    *b = RT_BUF_INIT;
}

void rt_buf_reserve(rt_buf_t *b, size_t n)
{
    if (b->cap - b->len >= n)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < n)
        cap *= 2;
    b->p = rt_realloc(b->p, cap);
    b->cap = cap;
}

void rt_buf_append(rt_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    rt_buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void rt_buf_append_str(rt_buf_t *b, rt_str_t s)
{
    rt_buf_append(b, s.p, s.n);
}

void rt_buf_append_cstr(rt_buf_t *b, const char *s)
{
    rt_buf_append(b, s, strlen(s));
}

void rt_buf_append_byte(rt_buf_t *b, uint8_t c)
{
    rt_buf_reserve(b, 1);
    b->p[b->len++] = c;
}

void rt_buf_append_u64(rt_buf_t *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    rt_buf_append(b, tmp, (size_t)n);
}

void rt_buf_append_i64(rt_buf_t *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    rt_buf_append(b, tmp, (size_t)n);
}

void rt_buf_vprintf(rt_buf_t *b, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n <= 0)
        return;
    rt_buf_reserve(b, (size_t)n + 1);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void rt_buf_printf(rt_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void rt_buf_reset(rt_buf_t *b)
{
    b->len = 0;
}

void rt_buf_consume(rt_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

rt_bytes_t *rt_buf_to_bytes(const rt_buf_t *b)
{
    return rt_bytes_copy(b->p, b->len);
}
