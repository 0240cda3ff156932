/* The broker interface: publish with history, history reads, channel subscriptions of
 * this node, join/leave. Implemented by the memory broker (broker_mem.c) and, later, the
 * Redis broker. Runs on the engine loop only.
 *
 * Callback rules (STYLE.md §3): every callback runs exactly once, on the engine loop,
 * never synchronously inside the initiating call (memory: deferred to the next loop
 * iteration); with RT_ECANCELED when the broker is destroyed first. Callback arguments
 * are borrowed for the duration of the call. */
#ifndef RT_BROKER_BROKER_H
#define RT_BROKER_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/pub.h"
#include "node/base/err.h"
#include "node/base/str.h"

typedef struct broker broker_t;

/* A stream position; epoch is borrowed. */
typedef struct broker_pos {
    uint64_t offset;
    rt_str_t epoch;
} broker_pos_t;

/* Where the broker delivers what arrives for channels (memory: every publish; Redis:
 * channels this node subscribed to). Runs on the engine loop. pub is borrowed: take a
 * reference to keep it. */
typedef struct broker_sink {
    void (*on_publication)(void *ud, broker_pub_t *pub);
    void (*on_join)(void *ud, rt_str_t channel, const rt_client_info_t *info);
    void (*on_leave)(void *ud, rt_str_t channel, const rt_client_info_t *info);
    /* A control message from another node (SERVER.md §3.10); data borrowed. May be NULL. */
    void (*on_control)(void *ud, rt_str_t data);
    /* Channel subscriptions were lost and are back (PUB/SUB reconnect): publications may
     * have been missed, so the node re-checks every positioned subscription at once
     * (SERVER.md §7.5). May be NULL. */
    void (*on_resubscribed)(void *ud);
    void *ud;
} broker_sink_t;

typedef struct broker_publish_opts {
    int64_t history_size;        /* > 0 with history_ttl_ms > 0: keep history */
    int64_t history_ttl_ms;      /* retention of each publication */
    int64_t history_meta_ttl_ms; /* lifetime of the stream meta (epoch, top) without activity */
    rt_str_t idempotency_key;    /* empty = none; window 5 minutes per channel */
    uint64_t version;            /* 0 = none; drop if channel already saw >= version */
    rt_str_t version_epoch;      /* scopes version */
} broker_publish_opts_t;

typedef struct broker_publish_req {
    broker_pub_fields_t fields; /* offset/epoch/time are filled in by the broker */
    broker_publish_opts_t opts;
} broker_publish_req_t;

/* status 0 or RT_E*. pos = position given to the publication (offset 0 and empty epoch
 * for channels without history); for a duplicate idempotency key the original position;
 * for a version-suppressed publish the current top. suppressed tells those two apart. */
typedef void (*broker_publish_cb)(int status, const broker_pos_t *pos, bool suppressed, void *ud);

typedef struct broker_history_req {
    rt_str_t channel;
    bool has_since;              /* since below is set */
    uint64_t since_offset;       /* forward: offsets > since; reverse: offsets < since */
    rt_str_t since_epoch;        /* informational: the broker ignores it; node/ compares epochs */
    int64_t limit;               /* 0: no publications, only the top; < 0: all; > 0: at most */
    bool reverse;                /* newest first */
    int64_t history_meta_ttl_ms; /* used if the read creates the stream meta */
    int64_t history_ttl_ms;      /* retention (memory broker drops expired entries) */
    int64_t history_size;
} broker_history_req_t;

/* pubs: n borrowed publications in the requested order (take references to keep them);
 * top: current stream top. A read of a channel with no stream creates the meta, so top
 * has a fresh epoch and offset 0. */
typedef void (*broker_history_cb)(int status, broker_pub_t *const *pubs, size_t n,
                                  const broker_pos_t *top, void *ud);
typedef void (*broker_done_cb)(int status, void *ud);

typedef struct broker_vtbl {
    int (*subscribe)(broker_t *b, rt_str_t channel);
    int (*unsubscribe)(broker_t *b, rt_str_t channel);
    /* Optional (NULL: publications flow as soon as subscribe returns, as in memory):
     * cb(0) once the subscription of channel made earlier is effective, so a publication
     * made after cb reaches this node. The subscribe flow waits for it before answering the
     * client, as Centrifugo waits for the Redis SUBSCRIBE. */
    int (*subscribed_wait)(broker_t *b, rt_str_t channel, broker_done_cb cb, void *ud);
    int (*publish)(broker_t *b, const broker_publish_req_t *req, broker_publish_cb cb, void *ud);
    int (*publish_join)(broker_t *b, rt_str_t channel, const rt_client_info_t *info);
    int (*publish_leave)(broker_t *b, rt_str_t channel, const rt_client_info_t *info);
    int (*history)(broker_t *b, const broker_history_req_t *req, broker_history_cb cb, void *ud);
    int (*history_remove)(broker_t *b, rt_str_t channel, broker_done_cb cb, void *ud);
    /* Sends data to every other node (target_uid empty) or to one node. Fire and forget:
     * 0 when handed to Redis, RT_ECLOSED while disconnected. The memory broker has no
     * other nodes and accepts and drops it. */
    int (*control_publish)(broker_t *b, rt_str_t target_uid, rt_str_t data);
    /* true while publishes can succeed (Redis reachable and writable). */
    bool (*ready)(broker_t *b, const char **reason);
    void (*destroy)(broker_t *b);
} broker_vtbl_t;

struct broker {
    const broker_vtbl_t *vt;
    broker_sink_t sink;
};

/* Each returns 0 when the request was accepted (the callback will run), or a negative
 * RT_E* without running the callback. */
static inline int broker_subscribe(broker_t *b, rt_str_t channel)
{
    return b->vt->subscribe(b, channel);
}
static inline int broker_unsubscribe(broker_t *b, rt_str_t channel)
{
    return b->vt->unsubscribe(b, channel);
}
/* RT_EUNAVAIL when the broker needs no wait (the caller proceeds at once). */
static inline int broker_subscribed_wait(broker_t *b, rt_str_t channel, broker_done_cb cb, void *ud)
{
    return b->vt->subscribed_wait ? b->vt->subscribed_wait(b, channel, cb, ud) : RT_EUNAVAIL;
}
static inline int broker_publish(broker_t *b, const broker_publish_req_t *req, broker_publish_cb cb,
                                 void *ud)
{
    return b->vt->publish(b, req, cb, ud);
}
static inline int broker_publish_join(broker_t *b, rt_str_t channel, const rt_client_info_t *info)
{
    return b->vt->publish_join(b, channel, info);
}
static inline int broker_publish_leave(broker_t *b, rt_str_t channel, const rt_client_info_t *info)
{
    return b->vt->publish_leave(b, channel, info);
}
static inline int broker_history(broker_t *b, const broker_history_req_t *req, broker_history_cb cb,
                                 void *ud)
{
    return b->vt->history(b, req, cb, ud);
}
static inline int broker_history_remove(broker_t *b, rt_str_t channel, broker_done_cb cb, void *ud)
{
    return b->vt->history_remove(b, channel, cb, ud);
}
static inline int broker_control_publish(broker_t *b, rt_str_t target_uid, rt_str_t data)
{
    return b->vt->control_publish(b, target_uid, data);
}
static inline bool broker_ready(broker_t *b, const char **reason)
{
    return b->vt->ready(b, reason);
}
static inline void broker_destroy(broker_t *b)
{
    if (b)
        b->vt->destroy(b);
}

#endif
