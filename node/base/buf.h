/* Growable, heap-owned byte buffer for building messages. */
#ifndef RT_BASE_BUF_H
#define RT_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/bytes.h"
#include "node/base/str.h"

typedef struct rt_buf {
    uint8_t *p; /* owned; NULL until first growth */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} rt_buf_t;

#define RT_BUF_INIT ((rt_buf_t){NULL, 0, 0})

void rt_buf_init(rt_buf_t *b);
void rt_buf_cleanup(rt_buf_t *b);
/* Ensures room for n more bytes. */
void rt_buf_reserve(rt_buf_t *b, size_t n);
void rt_buf_append(rt_buf_t *b, const void *p, size_t n);
void rt_buf_append_str(rt_buf_t *b, rt_str_t s);
void rt_buf_append_cstr(rt_buf_t *b, const char *s);
void rt_buf_append_byte(rt_buf_t *b, uint8_t c);
void rt_buf_append_u64(rt_buf_t *b, uint64_t v);
void rt_buf_append_i64(rt_buf_t *b, int64_t v);
void rt_buf_printf(rt_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_buf_vprintf(rt_buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drops the content, keeps the allocation. */
void rt_buf_reset(rt_buf_t *b);
/* Drops the first n bytes. */
void rt_buf_consume(rt_buf_t *b, size_t n);
/* Copies the content into new rt_bytes_t (one reference). The buffer is unchanged. */
rt_bytes_t *rt_buf_to_bytes(const rt_buf_t *b);
static inline rt_str_t rt_buf_str(const rt_buf_t *b)
{
    return (rt_str_t){(const char *)b->p, b->len};
}

#endif
