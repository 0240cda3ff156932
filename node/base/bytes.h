/* Immutable, reference-counted byte strings.
 *
 * rt_bytes_t is single-threaded: its counter is plain, so every subscriber of a worker can
 * take a reference without touching a cache line another core writes. rt_shared_t is the
 * cross-thread form with an atomic counter; a worker wraps it in a plain-counted view
 * (rt_bytes_view) once and then hands that view to all of its subscribers. */
#ifndef RT_BASE_BYTES_H
#define RT_BASE_BYTES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_shared {
    _Atomic uint32_t refs;
    size_t len;
    uint8_t data[];
} rt_shared_t;

typedef struct rt_bytes rt_bytes_t;
struct rt_bytes {
    uint32_t refs;       /* plain counter: only the owning thread touches it */
    size_t len;          /* bytes at data */
    const uint8_t *data; /* inline storage below, or the shared buffer of a view */
    rt_shared_t *shared; /* owned atomic reference for a view; NULL otherwise */
    uint8_t storage[];
};

/* New bytes with len uninitialised bytes, one reference. Fill through rt_bytes_mut()
 * before sharing. */
rt_bytes_t *rt_bytes_new(size_t len);
/* New bytes holding a copy of p[0..len). One reference. */
rt_bytes_t *rt_bytes_copy(const void *p, size_t len);
/* Writable pointer to a rt_bytes_new() buffer; only valid before the first ref/share. */
uint8_t *rt_bytes_mut(rt_bytes_t *b);
/* Takes another reference; returns b. */
rt_bytes_t *rt_bytes_ref(rt_bytes_t *b);
/* Drops a reference; frees at zero. NULL is a no-op. */
void rt_bytes_unref(rt_bytes_t *b);
/* A plain-counted view of s; takes its own atomic reference on s. One reference. */
rt_bytes_t *rt_bytes_view(rt_shared_t *s);

/* Cross-thread buffers. */
rt_shared_t *rt_shared_new(size_t len);
rt_shared_t *rt_shared_copy(const void *p, size_t len);
rt_shared_t *rt_shared_ref(rt_shared_t *s);
void rt_shared_unref(rt_shared_t *s); /* NULL is a no-op */

#endif
