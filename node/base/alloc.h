/* Allocation wrappers: they log and abort on failure, so callers never check.
 * Each thread counts its allocations so tests can prove a path allocates nothing. */
#ifndef RT_BASE_ALLOC_H
#define RT_BASE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *rt_malloc(size_t n);
void *rt_calloc(size_t count, size_t size);
void *rt_realloc(void *p, size_t n);
void rt_free(void *p);
/* Copies n bytes and appends a NUL. */
char *rt_strndup(const char *s, size_t n);
char *rt_strdup(const char *s);
void *rt_memdup(const void *p, size_t n);

/* Number of rt_malloc/rt_calloc/rt_realloc calls made by the calling thread. */
uint64_t rt_alloc_count(void);

#define RT_NEW(type) ((type *)rt_calloc(1, sizeof(type)))

#endif
