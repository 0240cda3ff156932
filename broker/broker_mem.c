/* The memory broker. All state lives on the engine loop:
 *
 *  - chans: channel -> mem_chan_t, present while the channel has a stream (epoch, top,
 *    retained publications) or this node subscribed to it. Channels without either are
 *    freed at once or by the sweep.
 *  - idem: "<channel length>:<channel><key>" -> remembered publish result. Every key has
 *    the same 5-minute window, so the insertion-ordered FIFO is also the expiry order and
 *    expiring is O(expired).
 *  - queue: completions (sink deliveries and user callbacks) in issue order. State changes
 *    happen inside the initiating call; only the delivery is deferred, to a zero timer that
 *    fires on the next loop iteration. One FIFO for everything keeps per-channel order:
 *    publications reach the sink in publish order, and a history read issued after a
 *    publish (even before its callback ran) sees it. */
#include "broker/broker_mem.h"

#include <stdio.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/rand.h"
#include "node/base/table.h"
#include "node/base/time.h"

#define EPOCH_LEN        8
#define IDEM_WINDOW_S    300.0
#define SWEEP_INTERVAL_S 1.0

typedef struct hist_entry {
    broker_pub_t *pub;   /* owned reference */
    ev_tstamp expire_at; /* loop time after which the entry is gone */
} hist_entry_t;

typedef struct mem_chan {
    rt_table_node_t node; /* key: name below */
    bool subscribed;      /* this node called broker_subscribe() */
    bool has_stream;      /* epoch/top/ring are meaningful */
    char epoch[EPOCH_LEN + 1];
    uint64_t top;             /* offset of the newest publication ever appended */
    ev_tstamp meta_expire_at; /* loop time; 0 = never */
    bool has_version;         /* version/version_epoch below were set by a publish */
    uint64_t version;         /* highest accepted version in version_epoch */
    char *version_epoch;      /* owned; NULL for the empty epoch */
    size_t version_epoch_n;   /* bytes at version_epoch */
    hist_entry_t *ring;       /* owned array of cap entries; offsets contiguous */
    size_t cap, head, len;    /* head: index of the oldest of len entries */
    char name[];              /* the channel, NUL-terminated */
} mem_chan_t;

typedef struct idem_entry idem_entry_t;
struct idem_entry {
    rt_table_node_t node; /* key: composite key below */
    idem_entry_t *next;   /* FIFO (expiry order); owned by the broker */
    ev_tstamp expire_at;  /* loop time */
    uint64_t offset;      /* original position; 0/"" without history */
    char epoch[EPOCH_LEN + 1];
    char key[];
};

enum op_kind { OP_PUBLISH, OP_HISTORY, OP_DONE, OP_JOIN, OP_LEAVE };

typedef struct mem_op mem_op_t;
struct mem_op {
    mem_op_t *next;
    enum op_kind kind;
    union {
        broker_publish_cb publish;
        broker_history_cb history;
        broker_done_cb done;
    } cb; /* may be NULL */
    void *ud;
    broker_pub_t *pub; /* OP_PUBLISH: owned reference to deliver; NULL if suppressed */
    bool suppressed;   /* OP_PUBLISH */
    broker_pos_t pos;  /* OP_PUBLISH result, OP_HISTORY top; epoch points at epoch[] */
    char epoch[EPOCH_LEN + 1];
    broker_pub_t **pubs; /* OP_HISTORY: owned array of npubs owned references */
    size_t npubs;
    rt_str_t channel;      /* OP_JOIN/OP_LEAVE: points into bytes[] */
    rt_client_info_t info; /* OP_JOIN/OP_LEAVE: points into bytes[] */
    char bytes[];
};

typedef struct broker_mem {
    broker_t base;
    struct ev_loop *loop; /* borrowed */
    ev_timer defer;       /* zero timer: runs the queue on the next iteration */
    ev_timer sweep;       /* periodic expiry; does not keep the loop alive */
    rt_table_t chans;     /* of mem_chan_t, owned */
    rt_table_t idem;      /* of idem_entry_t, owned through the FIFO */
    idem_entry_t *idem_head, *idem_tail;
    size_t nsubscribed;
    mem_op_t *queue; /* owned FIFO of pending completions */
    mem_op_t **queue_tail;
    mem_op_t *batch; /* owned: rest of the batch being run; destroy cancels it */
    bool *destroyed; /* while running a batch: set by destroy from a callback */
    bool closing;    /* destroy in progress: new requests fail with RT_ECLOSED */
} broker_mem_t;

static const broker_vtbl_t mem_vtbl;

static broker_mem_t *from_base(broker_t *b)
{
    RT_ASSERT(b->vt == &mem_vtbl);
    return (broker_mem_t *)(void *)b;
}

/* ---- history ring ---- */

static hist_entry_t *ring_at(mem_chan_t *c, size_t i)
{
    return &c->ring[(c->head + i) % c->cap];
}

static void ring_drop_oldest(mem_chan_t *c)
{
    hist_entry_t *e = ring_at(c, 0);
    broker_pub_unref(e->pub);
    e->pub = NULL;
    c->head = (c->head + 1) % c->cap;
    c->len--;
}

static void ring_trim(mem_chan_t *c, size_t limit)
{
    while (c->len > limit)
        ring_drop_oldest(c);
}

static void ring_prune(mem_chan_t *c, ev_tstamp now)
{
    while (c->len > 0 && ring_at(c, 0)->expire_at <= now)
        ring_drop_oldest(c);
}

static void ring_clear(mem_chan_t *c)
{
    ring_trim(c, 0);
    rt_free(c->ring);
    c->ring = NULL;
    c->cap = c->head = c->len = 0;
}

/* Appends (takes ownership of the reference), keeping at most limit entries. The array
 * grows on demand: a large history_size costs nothing until publications arrive. */
static void ring_push(mem_chan_t *c, broker_pub_t *pub, ev_tstamp expire_at, size_t limit)
{
    RT_ASSERT(limit > 0);
    ring_trim(c, limit - 1);
    if (c->len == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 4;
        if (ncap > limit)
            ncap = limit;
        if (ncap <= c->len)
            ncap = c->len + 1;
        hist_entry_t *nr = rt_malloc(ncap * sizeof(*nr));
        for (size_t i = 0; i < c->len; i++)
            nr[i] = *ring_at(c, i);
        rt_free(c->ring);
        c->ring = nr;
        c->cap = ncap;
        c->head = 0;
    }
    hist_entry_t *e = &c->ring[(c->head + c->len) % c->cap];
    e->pub = pub;
    e->expire_at = expire_at;
    c->len++;
}

/* ---- channels ---- */

static mem_chan_t *chan_find(broker_mem_t *b, rt_str_t name)
{
    rt_table_node_t *n = rt_table_find(&b->chans, name);
    return n ? RT_TABLE_ENTRY(n, mem_chan_t, node) : NULL;
}

static mem_chan_t *chan_get(broker_mem_t *b, rt_str_t name)
{
    mem_chan_t *c = chan_find(b, name);
    if (c != NULL)
        return c;
    c = rt_calloc(1, sizeof(*c) + name.n + 1);
    memcpy(c->name, name.p, name.n);
    c->name[name.n] = '\0';
    c->node.key = rt_str_from(c->name, name.n);
    rt_table_insert(&b->chans, &c->node);
    return c;
}

static void stream_reset(mem_chan_t *c)
{
    ring_clear(c);
    c->has_stream = false;
    c->top = 0;
    c->epoch[0] = '\0';
    c->meta_expire_at = 0;
    c->has_version = false;
    c->version = 0;
    rt_free(c->version_epoch);
    c->version_epoch = NULL;
    c->version_epoch_n = 0;
}

static void chan_free(broker_mem_t *b, mem_chan_t *c)
{
    rt_table_remove(&b->chans, &c->node);
    stream_reset(c);
    rt_free(c);
}

static bool meta_expired(const mem_chan_t *c, ev_tstamp now)
{
    return c->has_stream && c->meta_expire_at != 0 && now >= c->meta_expire_at;
}

/* Returns the channel's stream, creating it (fresh epoch, top 0) when absent or when its
 * meta expired, and extends the meta lifetime on every access. */
static mem_chan_t *stream_get(broker_mem_t *b, rt_str_t name, int64_t meta_ttl_ms, ev_tstamp now)
{
    mem_chan_t *c = chan_get(b, name);
    if (meta_expired(c, now))
        stream_reset(c);
    if (!c->has_stream) {
        rt_random_letters(c->epoch, EPOCH_LEN);
        c->has_stream = true;
        c->top = 0;
    }
    /* As Redis EXPIRE only when the TTL is set: a request without one leaves the current
     * lifetime alone (and a meta created without one never expires). */
    if (meta_ttl_ms > 0)
        c->meta_expire_at = now + (ev_tstamp)meta_ttl_ms / 1000.0;
    ring_prune(c, now);
    return c;
}

static void chan_maybe_free(broker_mem_t *b, mem_chan_t *c)
{
    if (!c->has_stream && !c->subscribed)
        chan_free(b, c);
}

/* ---- idempotency ---- */

static char *idem_key(rt_str_t channel, rt_str_t key, size_t *out_n)
{
    char prefix[24];
    int pn = snprintf(prefix, sizeof(prefix), "%zu:", channel.n);
    RT_ASSERT(pn > 0 && (size_t)pn < sizeof(prefix));
    size_t n = (size_t)pn + channel.n + key.n;
    char *k = rt_malloc(n + 1);
    memcpy(k, prefix, (size_t)pn);
    memcpy(k + pn, channel.p, channel.n);
    if (key.n)
        memcpy(k + pn + channel.n, key.p, key.n);
    k[n] = '\0';
    *out_n = n;
    return k;
}

static void idem_expire(broker_mem_t *b, ev_tstamp now)
{
    while (b->idem_head != NULL && b->idem_head->expire_at <= now) {
        idem_entry_t *e = b->idem_head;
        b->idem_head = e->next;
        if (b->idem_head == NULL)
            b->idem_tail = NULL;
        rt_table_remove(&b->idem, &e->node);
        rt_free(e);
    }
}

static idem_entry_t *idem_find(broker_mem_t *b, rt_str_t channel, rt_str_t key, ev_tstamp now)
{
    idem_expire(b, now);
    size_t n;
    char *k = idem_key(channel, key, &n);
    rt_table_node_t *node = rt_table_find(&b->idem, rt_str_from(k, n));
    rt_free(k);
    return node ? RT_TABLE_ENTRY(node, idem_entry_t, node) : NULL;
}

static void idem_remember(broker_mem_t *b, rt_str_t channel, rt_str_t key, ev_tstamp now,
                          uint64_t offset, const char *epoch)
{
    size_t n;
    char *k = idem_key(channel, key, &n);
    idem_entry_t *e = rt_calloc(1, sizeof(*e) + n + 1);
    memcpy(e->key, k, n + 1);
    rt_free(k);
    e->node.key = rt_str_from(e->key, n);
    e->expire_at = now + IDEM_WINDOW_S;
    e->offset = offset;
    snprintf(e->epoch, sizeof(e->epoch), "%s", epoch);
    rt_table_insert(&b->idem, &e->node);
    if (b->idem_tail)
        b->idem_tail->next = e;
    else
        b->idem_head = e;
    b->idem_tail = e;
}

/* ---- completion queue ---- */

static mem_op_t *op_new(enum op_kind kind, size_t extra)
{
    mem_op_t *op = rt_calloc(1, sizeof(*op) + extra);
    op->kind = kind;
    op->pos.epoch = rt_str_from(op->epoch, 0);
    return op;
}

static void op_set_pos(mem_op_t *op, uint64_t offset, const char *epoch)
{
    snprintf(op->epoch, sizeof(op->epoch), "%s", epoch);
    op->pos.offset = offset;
    op->pos.epoch = rt_str_c(op->epoch);
}

static void op_free(mem_op_t *op)
{
    broker_pub_unref(op->pub);
    for (size_t i = 0; i < op->npubs; i++)
        broker_pub_unref(op->pubs[i]);
    rt_free(op->pubs);
    rt_free(op);
}

static void enqueue(broker_mem_t *b, mem_op_t *op)
{
    op->next = NULL;
    *b->queue_tail = op;
    b->queue_tail = &op->next;
    if (!ev_is_active(&b->defer)) {
        ev_timer_set(&b->defer, 0., 0.);
        ev_timer_start(b->loop, &b->defer);
    }
}

/* Runs op's sink delivery (status 0 only) and callback. Touches nothing of b after the
 * sink call, which may destroy the broker. */
static void op_run(broker_mem_t *b, mem_op_t *op, int status)
{
    static const broker_pos_t zero_pos = {0, {"", 0}};
    const broker_sink_t *sink = &b->base.sink;

    switch (op->kind) {
    case OP_PUBLISH: {
        broker_publish_cb cb = op->cb.publish;
        if (status == 0 && op->pub != NULL && sink->on_publication != NULL)
            sink->on_publication(sink->ud, op->pub);
        if (cb != NULL)
            cb(status, status == 0 ? &op->pos : &zero_pos, status == 0 && op->suppressed, op->ud);
        break;
    }
    case OP_HISTORY:
        if (op->cb.history != NULL) {
            if (status == 0)
                op->cb.history(0, op->pubs, op->npubs, &op->pos, op->ud);
            else
                op->cb.history(status, NULL, 0, &zero_pos, op->ud);
        }
        break;
    case OP_DONE:
        if (op->cb.done != NULL)
            op->cb.done(status, op->ud);
        break;
    case OP_JOIN:
        if (status == 0 && sink->on_join != NULL)
            sink->on_join(sink->ud, op->channel, &op->info);
        break;
    case OP_LEAVE:
        if (status == 0 && sink->on_leave != NULL)
            sink->on_leave(sink->ud, op->channel, &op->info);
        break;
    }
}

static void on_defer(struct ev_loop *loop, ev_timer *w, int revents)
{
    broker_mem_t *b = w->data;
    bool destroyed = false;

    /* Requests made by these callbacks join the next batch, so a callback that keeps
     * publishing cannot starve the loop. */
    RT_ASSERT(b->batch == NULL);
    b->batch = b->queue;
    b->queue = NULL;
    b->queue_tail = &b->queue;
    b->destroyed = &destroyed;
    while (b->batch != NULL) {
        mem_op_t *op = b->batch;
        b->batch = op->next;
        op_run(b, op, 0);
        op_free(op);
        if (destroyed)
            return; /* b is gone; destroy cancelled the rest of the batch */
    }
    b->destroyed = NULL;
}

/* ---- sweep ---- */

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    broker_mem_t *b = w->data;
    ev_tstamp now = ev_now(loop);
    rt_table_iter_t it;

    idem_expire(b, now);
    rt_table_iter_init(&it, &b->chans);
    for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;) {
        mem_chan_t *c = RT_TABLE_ENTRY(n, mem_chan_t, node);
        if (meta_expired(c, now))
            stream_reset(c);
        ring_prune(c, now);
        chan_maybe_free(b, c);
    }
    rt_table_shrink(&b->chans);
    rt_table_shrink(&b->idem);
}

/* ---- vtable ---- */

static int mem_subscribe(broker_t *base, rt_str_t channel)
{
    broker_mem_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    if (channel.n == 0)
        return RT_EINVAL;
    mem_chan_t *c = chan_get(b, channel);
    if (!c->subscribed) {
        c->subscribed = true;
        b->nsubscribed++;
    }
    return 0;
}

static int mem_unsubscribe(broker_t *base, rt_str_t channel)
{
    broker_mem_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    mem_chan_t *c = chan_find(b, channel);
    if (c != NULL && c->subscribed) {
        c->subscribed = false;
        b->nsubscribed--;
        chan_maybe_free(b, c);
    }
    return 0;
}

static bool version_suppressed(const mem_chan_t *c, uint64_t version, rt_str_t version_epoch)
{
    /* As the Redis script: an empty request epoch shares the scope of any stored one. */
    if (!c->has_version)
        return false;
    bool same_scope = version_epoch.n == 0 ||
                      rt_str_eq(version_epoch, rt_str_from(c->version_epoch, c->version_epoch_n));
    return same_scope && c->version >= version;
}

static void version_store(mem_chan_t *c, uint64_t version, rt_str_t version_epoch)
{
    rt_free(c->version_epoch);
    c->version_epoch = version_epoch.n ? rt_str_dup(version_epoch) : NULL;
    c->version_epoch_n = version_epoch.n;
    c->version = version;
    c->has_version = true;
}

static int mem_publish(broker_t *base, const broker_publish_req_t *req, broker_publish_cb cb,
                       void *ud)
{
    broker_mem_t *b = from_base(base);
    const broker_publish_opts_t *o = &req->opts;
    rt_str_t channel = req->fields.channel;
    ev_tstamp now = ev_now(b->loop);

    if (b->closing)
        return RT_ECLOSED;
    if (channel.n == 0)
        return RT_EINVAL;

    mem_op_t *op = op_new(OP_PUBLISH, 0);
    op->cb.publish = cb;
    op->ud = ud;

    if (o->idempotency_key.n > 0) {
        idem_entry_t *e = idem_find(b, channel, o->idempotency_key, now);
        if (e != NULL) {
            op_set_pos(op, e->offset, e->epoch);
            op->suppressed = true;
            enqueue(b, op);
            return 0;
        }
    }

    broker_pub_fields_t f = req->fields;
    f.time_ms = rt_time_ms();
    f.offset = 0;
    f.epoch = RT_STR_NULL;

    bool history = o->history_size > 0 && o->history_ttl_ms > 0;
    mem_chan_t *c = NULL;
    if (history) {
        c = stream_get(b, channel, o->history_meta_ttl_ms, now);
        if (o->version != 0) {
            if (version_suppressed(c, o->version, o->version_epoch)) {
                op_set_pos(op, c->top, c->epoch);
                op->suppressed = true;
                enqueue(b, op);
                return 0;
            }
            version_store(c, o->version, o->version_epoch);
        }
        c->top++;
        f.offset = c->top;
        f.epoch = rt_str_c(c->epoch);
    }

    broker_pub_t *pub = broker_pub_new(&f);
    if (c != NULL) {
        ring_push(c, broker_pub_ref(pub), now + (ev_tstamp)o->history_ttl_ms / 1000.0,
                  (size_t)o->history_size);
        op_set_pos(op, c->top, c->epoch);
    }
    if (o->idempotency_key.n > 0)
        idem_remember(b, channel, o->idempotency_key, now, op->pos.offset, op->epoch);
    op->pub = pub;
    enqueue(b, op);
    return 0;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static int mem_history(broker_t *base, const broker_history_req_t *req, broker_history_cb cb,
                       void *ud)
{
    broker_mem_t *b = from_base(base);
    ev_tstamp now = ev_now(b->loop);

    if (b->closing)
        return RT_ECLOSED;
    if (req->channel.n == 0)
        return RT_EINVAL;

    mem_chan_t *c = stream_get(b, req->channel, req->history_meta_ttl_ms, now);
    if (req->history_size > 0)
        ring_trim(c, (size_t)req->history_size);

    mem_op_t *op = op_new(OP_HISTORY, 0);
    op->cb.history = cb;
    op->ud = ud;
    op_set_pos(op, c->top, c->epoch);

    if (req->limit != 0 && c->len > 0) {
        /* Offsets in the ring are contiguous (only the oldest are ever dropped), so the
         * since bound maps straight to an index. */
        uint64_t first = ring_at(c, 0)->pub->offset;
        size_t lo = 0, hi = c->len; /* candidate index range [lo, hi) */
        if (req->has_since && !req->reverse && req->since_offset >= first)
            lo = min_size(c->len, (size_t)(req->since_offset - first + 1));
        if (req->has_since && req->reverse)
            hi = req->since_offset <= first ? 0
                                            : min_size(c->len, (size_t)(req->since_offset - first));
        size_t max = hi > lo ? hi - lo : 0;
        if (req->limit > 0)
            max = min_size(max, (size_t)req->limit);
        if (max > 0)
            op->pubs = rt_malloc(max * sizeof(*op->pubs));
        for (size_t k = 0; k < hi - lo && op->npubs < max; k++) {
            hist_entry_t *e = ring_at(c, req->reverse ? hi - 1 - k : lo + k);
            RT_DASSERT(e->pub->offset == first + (req->reverse ? hi - 1 - k : lo + k));
            if (e->expire_at <= now)
                continue;
            op->pubs[op->npubs++] = broker_pub_ref(e->pub);
        }
    }
    enqueue(b, op);
    return 0;
}

static int mem_history_remove(broker_t *base, rt_str_t channel, broker_done_cb cb, void *ud)
{
    broker_mem_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    if (channel.n == 0)
        return RT_EINVAL;
    mem_chan_t *c = chan_find(b, channel);
    if (c != NULL)
        ring_clear(c); /* epoch and top stay: positioned clients are not disrupted */
    mem_op_t *op = op_new(OP_DONE, 0);
    op->cb.done = cb;
    op->ud = ud;
    enqueue(b, op);
    return 0;
}

static rt_str_t put(char **cursor, rt_str_t s)
{
    char *dst = *cursor;
    if (s.n)
        memcpy(dst, s.p, s.n);
    *cursor = dst + s.n;
    return rt_str_from(dst, s.n);
}

static int join_leave(broker_t *base, enum op_kind kind, rt_str_t channel,
                      const rt_client_info_t *info)
{
    broker_mem_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || info == NULL)
        return RT_EINVAL;
    mem_op_t *op = op_new(kind, channel.n + info->user.n + info->client.n + info->conn_info.n +
                                    info->chan_info.n);
    char *cursor = op->bytes;
    op->channel = put(&cursor, channel);
    op->info.user = put(&cursor, info->user);
    op->info.client = put(&cursor, info->client);
    op->info.conn_info = put(&cursor, info->conn_info);
    op->info.chan_info = put(&cursor, info->chan_info);
    enqueue(b, op);
    return 0;
}

static int mem_publish_join(broker_t *base, rt_str_t channel, const rt_client_info_t *info)
{
    return join_leave(base, OP_JOIN, channel, info);
}

static int mem_publish_leave(broker_t *base, rt_str_t channel, const rt_client_info_t *info)
{
    return join_leave(base, OP_LEAVE, channel, info);
}

static bool mem_ready(broker_t *base, const char **reason)
{
    if (reason != NULL)
        *reason = NULL;
    return true;
}

static void cancel_list(broker_mem_t *b, mem_op_t **list)
{
    while (*list != NULL) {
        mem_op_t *op = *list;
        *list = op->next;
        op_run(b, op, RT_ECANCELED);
        op_free(op);
    }
}

static void mem_destroy(broker_t *base)
{
    broker_mem_t *b = from_base(base);
    if (b->closing)
        return; /* called again from a cancellation callback */
    b->closing = true;
    if (b->destroyed != NULL)
        *b->destroyed = true;

    /* Cancellation callbacks see a live broker that refuses new work (RT_ECLOSED). */
    cancel_list(b, &b->batch);
    cancel_list(b, &b->queue);
    b->queue_tail = &b->queue;

    ev_timer_stop(b->loop, &b->defer);
    ev_ref(b->loop); /* balance the ev_unref of the sweep timer */
    ev_timer_stop(b->loop, &b->sweep);

    rt_table_iter_t it;
    rt_table_iter_init(&it, &b->chans);
    for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;)
        chan_free(b, RT_TABLE_ENTRY(n, mem_chan_t, node));
    rt_table_cleanup(&b->chans);
    while (b->idem_head != NULL) {
        idem_entry_t *e = b->idem_head;
        b->idem_head = e->next;
        rt_free(e);
    }
    rt_table_cleanup(&b->idem);
    rt_free(b);
}

/* A single node has nobody to talk to. */
static int mem_control_publish(broker_t *b, rt_str_t target_uid, rt_str_t data)
{
    (void)b;
    (void)target_uid;
    (void)data;
    return 0;
}

static const broker_vtbl_t mem_vtbl = {
    .subscribe = mem_subscribe,
    .unsubscribe = mem_unsubscribe,
    .publish = mem_publish,
    .publish_join = mem_publish_join,
    .publish_leave = mem_publish_leave,
    .history = mem_history,
    .history_remove = mem_history_remove,
    .control_publish = mem_control_publish,
    .ready = mem_ready,
    .destroy = mem_destroy,
};

broker_t *broker_mem_new(struct ev_loop *loop, const broker_sink_t *sink)
{
    broker_mem_t *b = RT_NEW(broker_mem_t);
    b->base.vt = &mem_vtbl;
    if (sink != NULL)
        b->base.sink = *sink;
    b->loop = loop;
    rt_table_init(&b->chans);
    rt_table_init(&b->idem);
    b->queue_tail = &b->queue;
    ev_timer_init(&b->defer, on_defer, 0., 0.);
    b->defer.data = b;
    ev_timer_init(&b->sweep, on_sweep, SWEEP_INTERVAL_S, SWEEP_INTERVAL_S);
    b->sweep.data = b;
    ev_timer_start(loop, &b->sweep);
    /* Housekeeping alone must not keep ev_run() from returning. */
    ev_unref(loop);
    return &b->base;
}

void broker_mem_stats(broker_t *base, broker_mem_stats_t *out)
{
    broker_mem_t *b = from_base(base);
    out->channels = b->chans.count;
    out->subscribed = b->nsubscribed;
    out->idempotency_keys = b->idem.count;
}
