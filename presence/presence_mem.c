/* Memory presence. channel -> (client id -> entry, user -> client count), on the engine
 * loop. Requests are queued and applied in issue order on the next loop iteration, each
 * followed by its callback: a get or stats callback therefore borrows the live entries,
 * and nothing can change them until it returns (a remove issued from inside it runs in a
 * later batch). Expired entries are dropped lazily by get/stats and by a periodic sweep. */
#include "presence/presence.h"

#include <string.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/table.h"

#define SWEEP_INTERVAL_S 1.0

typedef struct pres_entry {
    rt_table_node_t node;  /* key: info.client */
    rt_client_info_t info; /* points into bytes[] */
    ev_tstamp expire_at;   /* loop time of expiry; 0 = never */
    char bytes[];
} pres_entry_t;

typedef struct pres_user {
    rt_table_node_t node; /* key: name[] */
    uint32_t nclients;    /* entries of the channel with this user; > 0 */
    char name[];
} pres_user_t;

typedef struct pres_chan {
    rt_table_node_t node; /* key: name[] */
    rt_table_t clients;   /* of pres_entry_t, owned */
    rt_table_t users;     /* of pres_user_t, owned; "" is the anonymous user */
    char name[];
} pres_chan_t;

enum op_kind { OP_ADD, OP_REMOVE, OP_GET, OP_STATS };

typedef struct pres_op pres_op_t;
struct pres_op {
    pres_op_t *next;
    enum op_kind kind;
    union {
        presence_done_cb done;
        presence_get_cb get;
        presence_stats_cb stats;
    } cb; /* may be NULL for add/remove */
    void *ud;
    rt_str_t channel;      /* points into bytes[] */
    rt_client_info_t info; /* OP_ADD: all fields; OP_REMOVE: client only; in bytes[] */
    char bytes[];
};

typedef struct presence_mem {
    presence_t base;
    struct ev_loop *loop; /* borrowed */
    ev_tstamp ttl_s;      /* 0 = entries never expire */
    ev_timer defer;       /* zero timer: runs the queue on the next iteration */
    ev_timer sweep;       /* periodic expiry; does not keep the loop alive */
    rt_table_t chans;     /* of pres_chan_t, owned */
    pres_op_t *queue;     /* owned FIFO */
    pres_op_t **queue_tail;
    pres_op_t *batch; /* owned: rest of the batch being run */
    bool *destroyed;  /* while running a batch: set by destroy from a callback */
    bool closing;
} presence_mem_t;

static const presence_vtbl_t mem_vtbl;

static presence_mem_t *from_base(presence_t *p)
{
    RT_ASSERT(p->vt == &mem_vtbl);
    return (presence_mem_t *)(void *)p;
}

static rt_str_t put(char **cursor, rt_str_t s)
{
    char *dst = *cursor;
    if (s.n)
        memcpy(dst, s.p, s.n);
    *cursor = dst + s.n;
    return rt_str_from(dst, s.n);
}

/* ---- channel state ---- */

static void user_inc(pres_chan_t *c, rt_str_t user)
{
    rt_table_node_t *n = rt_table_find(&c->users, user);
    if (n != NULL) {
        RT_TABLE_ENTRY(n, pres_user_t, node)->nclients++;
        return;
    }
    pres_user_t *u = rt_calloc(1, sizeof(*u) + user.n + 1);
    memcpy(u->name, user.p ? user.p : "", user.n);
    u->node.key = rt_str_from(u->name, user.n);
    u->nclients = 1;
    rt_table_insert(&c->users, &u->node);
}

static void user_dec(pres_chan_t *c, rt_str_t user)
{
    rt_table_node_t *n = rt_table_find(&c->users, user);
    RT_ASSERT(n != NULL);
    pres_user_t *u = RT_TABLE_ENTRY(n, pres_user_t, node);
    if (--u->nclients == 0) {
        rt_table_remove(&c->users, n);
        rt_free(u);
    }
}

static void entry_remove(pres_chan_t *c, pres_entry_t *e)
{
    user_dec(c, e->info.user);
    rt_table_remove(&c->clients, &e->node);
    rt_free(e);
}

static pres_chan_t *chan_find(presence_mem_t *p, rt_str_t name)
{
    rt_table_node_t *n = rt_table_find(&p->chans, name);
    return n ? RT_TABLE_ENTRY(n, pres_chan_t, node) : NULL;
}

static void chan_free(presence_mem_t *p, pres_chan_t *c)
{
    rt_table_iter_t it;
    rt_table_iter_init(&it, &c->clients);
    for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;)
        entry_remove(c, RT_TABLE_ENTRY(n, pres_entry_t, node));
    RT_ASSERT(c->users.count == 0);
    rt_table_cleanup(&c->clients);
    rt_table_cleanup(&c->users);
    rt_table_remove(&p->chans, &c->node);
    rt_free(c);
}

static void chan_prune(presence_mem_t *p, pres_chan_t *c, ev_tstamp now)
{
    if (p->ttl_s > 0) {
        rt_table_iter_t it;
        rt_table_iter_init(&it, &c->clients);
        for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;) {
            pres_entry_t *e = RT_TABLE_ENTRY(n, pres_entry_t, node);
            if (e->expire_at <= now)
                entry_remove(c, e);
        }
        rt_table_shrink(&c->clients);
        rt_table_shrink(&c->users);
    }
}

static void apply_add(presence_mem_t *p, const pres_op_t *op, ev_tstamp now)
{
    const rt_client_info_t *info = &op->info;
    pres_chan_t *c = chan_find(p, op->channel);
    if (c == NULL) {
        c = rt_calloc(1, sizeof(*c) + op->channel.n + 1);
        memcpy(c->name, op->channel.p, op->channel.n);
        c->node.key = rt_str_from(c->name, op->channel.n);
        rt_table_init(&c->clients);
        rt_table_init(&c->users);
        rt_table_insert(&p->chans, &c->node);
    }
    /* Upsert: replace the entry, since the infos may have changed with a token refresh. */
    rt_table_node_t *old = rt_table_find(&c->clients, info->client);
    if (old != NULL)
        entry_remove(c, RT_TABLE_ENTRY(old, pres_entry_t, node));
    pres_entry_t *e = rt_malloc(sizeof(*e) + info->user.n + info->client.n + info->conn_info.n +
                                info->chan_info.n);
    char *cursor = e->bytes;
    e->info.user = put(&cursor, info->user);
    e->info.client = put(&cursor, info->client);
    e->info.conn_info = put(&cursor, info->conn_info);
    e->info.chan_info = put(&cursor, info->chan_info);
    e->expire_at = p->ttl_s > 0 ? now + p->ttl_s : 0;
    e->node.key = e->info.client;
    rt_table_insert(&c->clients, &e->node);
    user_inc(c, e->info.user);
}

static void apply_remove(presence_mem_t *p, const pres_op_t *op)
{
    pres_chan_t *c = chan_find(p, op->channel);
    if (c == NULL)
        return;
    rt_table_node_t *n = rt_table_find(&c->clients, op->info.client);
    if (n != NULL)
        entry_remove(c, RT_TABLE_ENTRY(n, pres_entry_t, node));
    if (c->clients.count == 0)
        chan_free(p, c);
    else
        rt_table_shrink(&c->clients);
}

/* Returns the channel after dropping expired entries, or NULL if nothing is left. */
static pres_chan_t *chan_live(presence_mem_t *p, rt_str_t name, ev_tstamp now)
{
    pres_chan_t *c = chan_find(p, name);
    if (c == NULL)
        return NULL;
    chan_prune(p, c, now);
    if (c->clients.count == 0) {
        chan_free(p, c);
        return NULL;
    }
    return c;
}

/* ---- queue ---- */

static void enqueue(presence_mem_t *p, pres_op_t *op)
{
    op->next = NULL;
    *p->queue_tail = op;
    p->queue_tail = &op->next;
    if (!ev_is_active(&p->defer)) {
        ev_timer_set(&p->defer, 0., 0.);
        ev_timer_start(p->loop, &p->defer);
    }
}

static void run_get(presence_mem_t *p, pres_op_t *op, ev_tstamp now)
{
    pres_chan_t *c = chan_live(p, op->channel, now);
    size_t n = 0;
    rt_client_info_t *entries = NULL;
    if (c != NULL) {
        entries = rt_malloc(c->clients.count * sizeof(*entries));
        rt_table_iter_t it;
        rt_table_iter_init(&it, &c->clients);
        for (rt_table_node_t *node; (node = rt_table_iter_next(&it)) != NULL;)
            entries[n++] = RT_TABLE_ENTRY(node, pres_entry_t, node)->info;
    }
    op->cb.get(0, entries, n, op->ud);
    rt_free(entries);
}

/* Applies op (status 0 only) and runs its callback. Touches nothing of p after the
 * callback, which may destroy the presence. */
static void op_run(presence_mem_t *p, pres_op_t *op, int status)
{
    ev_tstamp now = ev_now(p->loop);

    switch (op->kind) {
    case OP_ADD:
    case OP_REMOVE:
        if (status == 0) {
            if (op->kind == OP_ADD)
                apply_add(p, op, now);
            else
                apply_remove(p, op);
        }
        if (op->cb.done != NULL)
            op->cb.done(status, op->ud);
        break;
    case OP_GET:
        if (status == 0)
            run_get(p, op, now);
        else
            op->cb.get(status, NULL, 0, op->ud);
        break;
    case OP_STATS: {
        uint32_t clients = 0, users = 0;
        if (status == 0) {
            pres_chan_t *c = chan_live(p, op->channel, now);
            if (c != NULL) {
                clients = (uint32_t)c->clients.count;
                users = (uint32_t)c->users.count;
            }
        }
        op->cb.stats(status, clients, users, op->ud);
        break;
    }
    }
}

static void on_defer(struct ev_loop *loop, ev_timer *w, int revents)
{
    presence_mem_t *p = w->data;
    bool destroyed = false;

    RT_ASSERT(p->batch == NULL);
    p->batch = p->queue;
    p->queue = NULL;
    p->queue_tail = &p->queue;
    p->destroyed = &destroyed;
    while (p->batch != NULL) {
        pres_op_t *op = p->batch;
        p->batch = op->next;
        op_run(p, op, 0);
        rt_free(op);
        if (destroyed)
            return; /* p is gone; destroy cancelled the rest of the batch */
    }
    p->destroyed = NULL;
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    presence_mem_t *p = w->data;
    ev_tstamp now = ev_now(loop);
    rt_table_iter_t it;

    rt_table_iter_init(&it, &p->chans);
    for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;) {
        pres_chan_t *c = RT_TABLE_ENTRY(n, pres_chan_t, node);
        chan_prune(p, c, now);
        if (c->clients.count == 0)
            chan_free(p, c);
    }
    rt_table_shrink(&p->chans);
}

/* ---- vtable ---- */

static pres_op_t *op_new(enum op_kind kind, rt_str_t channel, const rt_client_info_t *info,
                         void *ud)
{
    size_t extra = channel.n;
    if (info != NULL)
        extra += info->user.n + info->client.n + info->conn_info.n + info->chan_info.n;
    pres_op_t *op = rt_calloc(1, sizeof(*op) + extra);
    op->kind = kind;
    op->ud = ud;
    char *cursor = op->bytes;
    op->channel = put(&cursor, channel);
    if (info != NULL) {
        op->info.user = put(&cursor, info->user);
        op->info.client = put(&cursor, info->client);
        op->info.conn_info = put(&cursor, info->conn_info);
        op->info.chan_info = put(&cursor, info->chan_info);
    }
    return op;
}

static int mem_add(presence_t *base, rt_str_t channel, const rt_client_info_t *info,
                   presence_done_cb cb, void *ud)
{
    presence_mem_t *p = from_base(base);
    if (p->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || info == NULL || info->client.n == 0)
        return RT_EINVAL;
    pres_op_t *op = op_new(OP_ADD, channel, info, ud);
    op->cb.done = cb;
    enqueue(p, op);
    return 0;
}

/* user is ignored: the entry knows its user, and the per-user counts here are exact. */
static int mem_remove(presence_t *base, rt_str_t channel, rt_str_t client_id, rt_str_t user,
                      presence_done_cb cb, void *ud)
{
    presence_mem_t *p = from_base(base);
    if (p->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || client_id.n == 0)
        return RT_EINVAL;
    rt_client_info_t info = {.client = client_id};
    pres_op_t *op = op_new(OP_REMOVE, channel, &info, ud);
    op->cb.done = cb;
    enqueue(p, op);
    return 0;
}

static int mem_get(presence_t *base, rt_str_t channel, presence_get_cb cb, void *ud)
{
    presence_mem_t *p = from_base(base);
    if (p->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || cb == NULL)
        return RT_EINVAL;
    pres_op_t *op = op_new(OP_GET, channel, NULL, ud);
    op->cb.get = cb;
    enqueue(p, op);
    return 0;
}

static int mem_stats(presence_t *base, rt_str_t channel, presence_stats_cb cb, void *ud)
{
    presence_mem_t *p = from_base(base);
    if (p->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || cb == NULL)
        return RT_EINVAL;
    pres_op_t *op = op_new(OP_STATS, channel, NULL, ud);
    op->cb.stats = cb;
    enqueue(p, op);
    return 0;
}

static void cancel_list(presence_mem_t *p, pres_op_t **list)
{
    while (*list != NULL) {
        pres_op_t *op = *list;
        *list = op->next;
        op_run(p, op, RT_ECANCELED);
        rt_free(op);
    }
}

static void mem_destroy(presence_t *base)
{
    presence_mem_t *p = from_base(base);
    if (p->closing)
        return; /* called again from a cancellation callback */
    p->closing = true;
    if (p->destroyed != NULL)
        *p->destroyed = true;

    cancel_list(p, &p->batch);
    cancel_list(p, &p->queue);
    p->queue_tail = &p->queue;

    ev_timer_stop(p->loop, &p->defer);
    ev_ref(p->loop); /* balance the ev_unref of the sweep timer */
    ev_timer_stop(p->loop, &p->sweep);

    rt_table_iter_t it;
    rt_table_iter_init(&it, &p->chans);
    for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;)
        chan_free(p, RT_TABLE_ENTRY(n, pres_chan_t, node));
    rt_table_cleanup(&p->chans);
    rt_free(p);
}

static const presence_vtbl_t mem_vtbl = {
    .add = mem_add,
    .remove = mem_remove,
    .get = mem_get,
    .stats = mem_stats,
    .destroy = mem_destroy,
};

presence_t *presence_mem_new(struct ev_loop *loop, int64_t ttl_ms)
{
    presence_mem_t *p = RT_NEW(presence_mem_t);
    p->base.vt = &mem_vtbl;
    p->loop = loop;
    p->ttl_s = ttl_ms > 0 ? (ev_tstamp)ttl_ms / 1000.0 : 0;
    rt_table_init(&p->chans);
    p->queue_tail = &p->queue;
    ev_timer_init(&p->defer, on_defer, 0., 0.);
    p->defer.data = p;
    ev_timer_init(&p->sweep, on_sweep, SWEEP_INTERVAL_S, SWEEP_INTERVAL_S);
    p->sweep.data = p;
    ev_timer_start(loop, &p->sweep);
    /* Housekeeping alone must not keep ev_run() from returning. */
    ev_unref(loop);
    return &p->base;
}

size_t presence_mem_channel_count(presence_t *base)
{
    return from_base(base)->chans.count;
}
