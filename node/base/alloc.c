#include "node/base/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Thread_local uint64_t thread_alloc_count;

static void out_of_memory(size_t n)
{
    char msg[96];
    int len = snprintf(msg, sizeof(msg), "fatal: out of memory allocating %zu bytes\n", n);
    if (len > 0 && write(STDERR_FILENO, msg, (size_t)len) < 0) {
        /* nothing more we can do */
    }
    abort();
}

void *rt_malloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL)
        out_of_memory(n);
    thread_alloc_count++;
    return p;
}

void *rt_calloc(size_t count, size_t size)
{
    void *p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
    if (p == NULL)
        out_of_memory(count * size);
    thread_alloc_count++;
    return p;
}

void *rt_realloc(void *p, size_t n)
{
    void *q = realloc(p, n == 0 ? 1 : n);
    if (q == NULL)
        out_of_memory(n);
    thread_alloc_count++;
    return q;
}

void rt_free(void *p)
{
    free(p);
}

char *rt_strndup(const char *s, size_t n)
{
    char *d = rt_malloc(n + 1);
    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *rt_strdup(const char *s)
{
    return rt_strndup(s, strlen(s));
}

void *rt_memdup(const void *p, size_t n)
{
    void *d = rt_malloc(n);
    if (n > 0)
        memcpy(d, p, n);
    return d;
}

uint64_t rt_alloc_count(void)
{
    return thread_alloc_count;
}
