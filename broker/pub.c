#include "broker/pub.h"

#include <sched.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"

/* Slot states besides a frame: being encoded by some thread, or known not encodable. Two
 * distinct addresses no allocation can have. */
static char slot_marks[2];
#define ENCODING    ((rt_shared_t *)(void *)&slot_marks[0])
#define UNENCODABLE ((rt_shared_t *)(void *)&slot_marks[1])

static bool is_frame(const rt_shared_t *f)
{
    return f != NULL && f != ENCODING && f != UNENCODABLE;
}

/* Appends s plus a NUL at *cursor; returns the copy as a slice into the allocation. */
static rt_str_t put(char **cursor, rt_str_t s)
{
    char *dst = *cursor;
    if (s.n > 0)
        memcpy(dst, s.p, s.n);
    dst[s.n] = '\0';
    *cursor = dst + s.n + 1;
    return rt_str_from(dst, s.n);
}

broker_pub_t *broker_pub_new(const broker_pub_fields_t *f)
{
    size_t strings = f->channel.n + 1 + f->data.n + 1 + f->epoch.n + 1;
    if (f->info != NULL) {
        strings += f->info->user.n + 1 + f->info->client.n + 1 + f->info->conn_info.n + 1 +
                   f->info->chan_info.n + 1;
    }
    for (size_t i = 0; i < f->ntags; i++)
        strings += f->tags[i].key.n + 1 + f->tags[i].value.n + 1;

    /* sizeof(broker_pub_t) is a multiple of its alignment, which is at least a pointer's,
     * so the tag array right behind it is aligned; strings need no alignment. */
    size_t tags_bytes = f->ntags * sizeof(broker_tag_t);
    broker_pub_t *p = rt_malloc(sizeof(*p) + tags_bytes + strings);
    memset(p, 0, sizeof(*p));
    atomic_init(&p->refs, 1);
    for (int i = 0; i < BROKER_PUB_FRAME_SLOTS; i++)
        atomic_init(&p->frames[i], NULL);

    char *cursor = (char *)(p + 1) + tags_bytes;
    p->channel = put(&cursor, f->channel);
    p->data = put(&cursor, f->data);
    p->epoch = put(&cursor, f->epoch);
    p->data_binary = f->data_binary;
    p->delta = f->delta;
    p->offset = f->offset;
    p->time_ms = f->time_ms;
    if (f->info != NULL) {
        p->has_info = true;
        p->info.user = put(&cursor, f->info->user);
        p->info.client = put(&cursor, f->info->client);
        p->info.conn_info = put(&cursor, f->info->conn_info);
        p->info.chan_info = put(&cursor, f->info->chan_info);
    }
    p->ntags = f->ntags;
    p->tags = f->ntags ? (broker_tag_t *)(void *)(p + 1) : NULL;
    for (size_t i = 0; i < f->ntags; i++) {
        p->tags[i].key = put(&cursor, f->tags[i].key);
        p->tags[i].value = put(&cursor, f->tags[i].value);
    }
    RT_ASSERT(cursor == (char *)(p + 1) + tags_bytes + strings);
    return p;
}

broker_pub_t *broker_pub_ref(broker_pub_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void broker_pub_unref(broker_pub_t *p)
{
    if (p == NULL)
        return;
    uint32_t prev = atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel);
    RT_ASSERT(prev > 0);
    if (prev != 1)
        return;
    for (int i = 0; i < BROKER_PUB_FRAME_SLOTS; i++) {
        rt_shared_t *f = atomic_load_explicit(&p->frames[i], memory_order_acquire);
        if (is_frame(f))
            rt_shared_unref(f);
    }
    rt_free(p);
}

rt_shared_t *broker_pub_frame(broker_pub_t *p, int slot)
{
    RT_ASSERT(slot >= 0 && slot < BROKER_PUB_FRAME_SLOTS);
    rt_shared_t *f = atomic_load_explicit(&p->frames[slot], memory_order_acquire);
    return is_frame(f) ? f : NULL;
}

rt_shared_t *broker_pub_frame_get(broker_pub_t *p, int slot, broker_pub_encode_fn encode, void *ud)
{
    RT_ASSERT(slot >= 0 && slot < BROKER_PUB_FRAME_SLOTS);
    _Atomic(rt_shared_t *) *cell = &p->frames[slot];
    rt_shared_t *f = atomic_load_explicit(cell, memory_order_acquire);
    if (f == NULL) {
        rt_shared_t *expected = NULL;
        if (atomic_compare_exchange_strong_explicit(cell, &expected, ENCODING, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            rt_shared_t *made = encode(p, slot, ud);
            atomic_store_explicit(cell, made ? made : UNENCODABLE, memory_order_release);
            return made;
        }
        f = expected;
    }
    /* Another worker is encoding this very frame: its result is microseconds away. */
    for (unsigned spins = 0; f == ENCODING; spins++) {
        if (spins > 64)
            sched_yield();
        f = atomic_load_explicit(cell, memory_order_acquire);
    }
    return is_frame(f) ? f : NULL;
}
