/* Presence: who is subscribed to a channel, cluster-wide. Memory and Redis
 * implementations. Engine loop only; callback rules as in broker/broker.h. */
#ifndef RT_PRESENCE_PRESENCE_H
#define RT_PRESENCE_PRESENCE_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/client_info.h"
#include "node/base/str.h"

typedef struct presence presence_t;

typedef void (*presence_done_cb)(int status, void *ud);
/* entries: n borrowed client infos (one per client id). */
typedef void (*presence_get_cb)(int status, const rt_client_info_t *entries, size_t n, void *ud);
typedef void (*presence_stats_cb)(int status, uint32_t num_clients, uint32_t num_users, void *ud);

typedef struct presence_vtbl {
    /* Adds or refreshes the entry of info->client in channel. */
    int (*add)(presence_t *p, rt_str_t channel, const rt_client_info_t *info, presence_done_cb cb,
               void *ud);
    /* user: the user the entry was added with (the Redis user mapping decrements that
     * user's connection count; the memory presence tracks users itself and ignores it). */
    int (*remove)(presence_t *p, rt_str_t channel, rt_str_t client_id, rt_str_t user,
                  presence_done_cb cb, void *ud);
    int (*get)(presence_t *p, rt_str_t channel, presence_get_cb cb, void *ud);
    int (*stats)(presence_t *p, rt_str_t channel, presence_stats_cb cb, void *ud);
    void (*destroy)(presence_t *p);
} presence_vtbl_t;

struct presence {
    const presence_vtbl_t *vt;
};

/* cb may be NULL for add/remove (fire and forget). Each returns 0 when accepted. */
static inline int presence_add(presence_t *p, rt_str_t channel, const rt_client_info_t *info,
                               presence_done_cb cb, void *ud)
{
    return p->vt->add(p, channel, info, cb, ud);
}
static inline int presence_remove(presence_t *p, rt_str_t channel, rt_str_t client_id,
                                  rt_str_t user, presence_done_cb cb, void *ud)
{
    return p->vt->remove(p, channel, client_id, user, cb, ud);
}
static inline int presence_get(presence_t *p, rt_str_t channel, presence_get_cb cb, void *ud)
{
    return p->vt->get(p, channel, cb, ud);
}
static inline int presence_stats(presence_t *p, rt_str_t channel, presence_stats_cb cb, void *ud)
{
    return p->vt->stats(p, channel, cb, ud);
}
static inline void presence_destroy(presence_t *p)
{
    if (p)
        p->vt->destroy(p);
}

/* Memory presence; entries not refreshed within ttl_ms expire (0 = never). */
presence_t *presence_mem_new(struct ev_loop *loop, int64_t ttl_ms);
/* Channels with at least one entry (expired ones linger until the next get/stats or the
 * once-a-second sweep). p must come from presence_mem_new(). Engine loop. */
size_t presence_mem_channel_count(presence_t *p);

#endif
