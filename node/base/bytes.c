#include "node/base/bytes.h"

#include <string.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"

rt_bytes_t *rt_bytes_new(size_t len)
{
    rt_bytes_t *b = rt_malloc(sizeof(*b) + len);
    b->refs = 1;
    b->len = len;
    b->data = b->storage;
    b->shared = NULL;
    return b;
}

rt_bytes_t *rt_bytes_copy(const void *p, size_t len)
{
    rt_bytes_t *b = rt_bytes_new(len);
    if (len > 0)
        memcpy(b->storage, p, len);
    return b;
}

uint8_t *rt_bytes_mut(rt_bytes_t *b)
{
    RT_ASSERT(b->shared == NULL && b->refs == 1);
    return b->storage;
}

rt_bytes_t *rt_bytes_ref(rt_bytes_t *b)
{
    RT_DASSERT(b->refs > 0);
    b->refs++;
    return b;
}

void rt_bytes_unref(rt_bytes_t *b)
{
    if (b == NULL)
        return;
    RT_DASSERT(b->refs > 0);
    if (--b->refs > 0)
        return;
    rt_shared_unref(b->shared);
    rt_free(b);
}

rt_bytes_t *rt_bytes_view(rt_shared_t *s)
{
    rt_bytes_t *b = rt_malloc(sizeof(*b));
    b->refs = 1;
    b->len = s->len;
    b->data = s->data;
    b->shared = rt_shared_ref(s);
    return b;
}

rt_shared_t *rt_shared_new(size_t len)
{
    rt_shared_t *s = rt_malloc(sizeof(*s) + len);
    atomic_init(&s->refs, 1);
    s->len = len;
    return s;
}

rt_shared_t *rt_shared_copy(const void *p, size_t len)
{
    rt_shared_t *s = rt_shared_new(len);
    if (len > 0)
        memcpy(s->data, p, len);
    return s;
}

rt_shared_t *rt_shared_ref(rt_shared_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void rt_shared_unref(rt_shared_t *s)
{
    if (s == NULL)
        return;
    /* acq_rel: the thread that frees must see every write made before other unrefs. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        rt_free(s);
}
