/* Borrowed byte slices. An rt_str_t never owns its bytes. */
#ifndef RT_BASE_STR_H
#define RT_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct rt_str {
    const char *p; /* borrowed; not NUL-terminated in general */
    size_t n;
} rt_str_t;

#define RT_STR(lit)   ((rt_str_t){(lit), sizeof(lit) - 1})
#define RT_STR_NULL   ((rt_str_t){NULL, 0})
#define RT_STR_FMT    "%.*s"
#define RT_STR_ARG(s) (int)(s).n, (s).p

static inline rt_str_t rt_str_from(const char *p, size_t n)
{
    return (rt_str_t){p, n};
}

static inline rt_str_t rt_str_c(const char *cstr)
{
    return (rt_str_t){cstr, cstr ? strlen(cstr) : 0};
}

static inline bool rt_str_eq(rt_str_t a, rt_str_t b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static inline bool rt_str_eq_c(rt_str_t a, const char *b)
{
    return rt_str_eq(a, rt_str_c(b));
}

static inline bool rt_str_starts_with(rt_str_t s, rt_str_t prefix)
{
    return s.n >= prefix.n && (prefix.n == 0 || memcmp(s.p, prefix.p, prefix.n) == 0);
}

/* ASCII case-insensitive equality. */
bool rt_str_case_eq(rt_str_t a, rt_str_t b);
/* Heap copy with a trailing NUL; free with rt_free(). */
char *rt_str_dup(rt_str_t s);
/* FNV-1a hash, for hash tables. */
unsigned long rt_str_hash(rt_str_t s);

#endif
