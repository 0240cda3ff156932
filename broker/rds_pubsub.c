/* The PUB/SUB connection: a hash set of wanted channels, SUBSCRIBE/UNSUBSCRIBE batched
 * per loop iteration by an ev_prepare flush, a full resubscribe after every reconnect, and
 * a liveness probe.
 *
 * The probe is a repeated PSUBSCRIBE of a private pattern, not a PING. hiredis 0.14 files a
 * PING sent in subscribed mode under its "invalid" callback list, but routes the ["pong",
 * ""] answer through the pattern table (it takes the leading 'p' for a pattern reply), so
 * the PING callback never runs and the list grows by one entry per probe until the
 * connection closes. Re-subscribing the same pattern is idempotent on the server, always
 * answers, and hiredis keeps one table entry for it. The pattern subscription also keeps
 * the connection in subscribed mode while the channel set is empty. */
#include "broker/rds.h"

#include <string.h>

#include "broker/rds_internal.h"
#include "node/base/alloc.h"
#include "node/base/err.h"
#include "node/base/log.h"

#define BATCH_CHANNELS 1000
#define PROBE_PATTERN  "__rds_probe__"

typedef struct chan {
    struct chan *next;       /* bucket chain, or the pending-unsubscribe list */
    struct chan *dirty_prev; /* dirty list links, valid while dirty */
    struct chan *dirty_next;
    bool dirty;         /* in the set, not yet subscribed on this connection */
    bool sent;          /* SUBSCRIBE issued on the current connection */
    unsigned long hash; /* rt_str_hash of the name */
    size_t n;
    char name[]; /* n bytes (binary safe) + NUL */
} chan_t;

/* A caller waiting until the SUBSCRIBEs issued so far are confirmed (rds_pubsub_barrier). */
typedef struct barrier {
    struct barrier *next;
    uint64_t target; /* sub_confirmed value that completes it */
    void (*cb)(int status, void *ud);
    void *ud;
} barrier_t;

struct rds_pubsub {
    rds__link_t link;       /* first member: ops callbacks cast the link back */
    size_t ndirty;          /* entries on the dirty list */
    uint64_t sub_sent;      /* channels in SUBSCRIBEs sent since the connection synced */
    uint64_t sub_confirmed; /* their confirmations received */
    barrier_t *barriers;    /* owned, in registration order (targets non-decreasing) */
    barrier_t **barriers_tail;
    rds_pubsub_handler_t h;
    int64_t probe_interval_ms;
    chan_t **buckets; /* owned, nbuckets (a power of two) chains of owned entries */
    size_t nbuckets;
    size_t count;
    chan_t *dirty;           /* borrowed from the set: to SUBSCRIBE at the next flush */
    chan_t *unsub;           /* owned, out of the set: to UNSUBSCRIBE at the next flush */
    bool up;                 /* every channel of the set is subscribed on this connection */
    size_t sync_left;        /* confirmations outstanding before up */
    bool probing;            /* a probe is on the wire */
    ev_prepare flush_w;      /* active while dirty or unsub is non-empty */
    ev_timer probe_timer;    /* repeating probe_interval_ms while up */
    ev_timer deadline_timer; /* io_timeout for the resubscribe or the probe in flight */
    bool sharded;            /* rds_pubsub_new_sharded: SSUBSCRIBE alongside SUBSCRIBE */
    void (*on_lost)(void *ud, rt_str_t channel); /* sharded only; may be NULL */
};

static chan_t **slot(rds_pubsub_t *p, rt_str_t name, unsigned long hash)
{
    chan_t **s = &p->buckets[hash & (p->nbuckets - 1)];
    while (*s != NULL && !((*s)->hash == hash && rt_str_eq(rt_str_from((*s)->name, (*s)->n), name)))
        s = &(*s)->next;
    return s;
}

static void grow(rds_pubsub_t *p)
{
    size_t nb = p->nbuckets * 2;
    chan_t **b = rt_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < p->nbuckets; i++) {
        chan_t *e = p->buckets[i];
        while (e != NULL) {
            chan_t *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    rt_free(p->buckets);
    p->buckets = b;
    p->nbuckets = nb;
}

static void dirty_add(rds_pubsub_t *p, chan_t *e)
{
    p->ndirty++;
    e->dirty = true;
    e->dirty_prev = NULL;
    e->dirty_next = p->dirty;
    if (p->dirty != NULL)
        p->dirty->dirty_prev = e;
    p->dirty = e;
}

static void dirty_remove(rds_pubsub_t *p, chan_t *e)
{
    if (!e->dirty)
        return;
    p->ndirty--;
    if (e->dirty_prev != NULL)
        e->dirty_prev->dirty_next = e->dirty_next;
    else
        p->dirty = e->dirty_next;
    if (e->dirty_next != NULL)
        e->dirty_next->dirty_prev = e->dirty_prev;
    e->dirty = false;
}

static void free_list(chan_t *e)
{
    while (e != NULL) {
        chan_t *next = e->next;
        rt_free(e);
        e = next;
    }
}

/* The connection is new or gone: nothing is subscribed on it. */
static void forget_connection_state(rds_pubsub_t *p)
{
    free_list(p->unsub);
    p->unsub = NULL;
    while (p->dirty != NULL)
        dirty_remove(p, p->dirty);
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (chan_t *e = p->buckets[i]; e != NULL; e = e->next)
            e->sent = false;
    }
    ev_prepare_stop(p->link.loop, &p->flush_w);
}

/* hiredis 0.14 knows no sharded PUB/SUB: sent as a command, SSUBSCRIBE would file a
 * callback under the "invalid" list that its array replies never consume (one leaked entry
 * per batch for the life of the connection). Appended to the output buffer it files none;
 * its replies reach pubsub_on_reply through the channel's entry in hiredis' channel table,
 * which the classic SUBSCRIBE sent right after it creates before any reply is read. Error
 * replies (a slot this master does not serve) find no callback and are dropped. */
static void send_sharded(rds_pubsub_t *p, const char *cmd, const char **argv, size_t *lens,
                         size_t n)
{
    redisAsyncContext *ac = p->link.ac;
    if (ac == NULL)
        return;
    argv[0] = cmd;
    lens[0] = strlen(cmd);
    char *buf = NULL;
    int len = redisFormatCommandArgv(&buf, (int)n + 1, argv, lens);
    if (len < 0)
        return;
    if (redisAppendFormattedCommand(&ac->c, buf, (size_t)len) == REDIS_OK &&
        ac->ev.addWrite != NULL)
        ac->ev.addWrite(ac->ev.data);
    redisFreeCommand(buf);
}

static void send_batch(rds_pubsub_t *p, const char *cmd, chan_t **items, size_t n)
{
    const char *argv[BATCH_CHANNELS + 1];
    size_t lens[BATCH_CHANNELS + 1];
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = items[i]->name;
        lens[i + 1] = items[i]->n;
    }
    if (p->sharded)
        send_sharded(p, cmd[0] == 'U' ? "SUNSUBSCRIBE" : "SSUBSCRIBE", argv, lens, n);
    argv[0] = cmd;
    lens[0] = strlen(cmd);
    int rc = rds__link_send(&p->link, (int)n + 1, argv, lens);
    if (rc != 0)
        RT_LOG_DEBUG("redis %s not sent addr=%s channels=%zu err=%s", cmd,
                     rds_addr_name(&p->link.addr), n, rt_strerror(rc));
}

static int send_probe(rds_pubsub_t *p)
{
    return rds__link_send(&p->link, 2, (const char *[]){"PSUBSCRIBE", PROBE_PATTERN},
                          (const size_t[]){10, sizeof(PROBE_PATTERN) - 1});
}

static void start_deadline(rds_pubsub_t *p)
{
    ev_timer_stop(p->link.loop, &p->deadline_timer);
    ev_timer_set(&p->deadline_timer, (double)p->link.addr.io_timeout_ms / 1000.0, 0.0);
    ev_timer_start(p->link.loop, &p->deadline_timer);
}

static void run_barriers(rds_pubsub_t *p, int status);

static void on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    rds_pubsub_t *p = w->data;
    chan_t *items[BATCH_CHANNELS];
    size_t n = 0;
    ev_prepare_stop(loop, w);
    /* Unsubscribes first: a channel dropped and re-added in one iteration ends up
     * subscribed. */
    chan_t *u = p->unsub;
    p->unsub = NULL;
    for (chan_t *e = u; e != NULL; e = e->next) {
        items[n++] = e;
        if (n == BATCH_CHANNELS || e->next == NULL) {
            send_batch(p, "UNSUBSCRIBE", items, n);
            n = 0;
        }
    }
    free_list(u);
    while (p->dirty != NULL) {
        chan_t *e = p->dirty;
        dirty_remove(p, e);
        e->sent = true;
        p->sub_sent++;
        items[n++] = e;
        if (n == BATCH_CHANNELS || p->dirty == NULL) {
            send_batch(p, "SUBSCRIBE", items, n);
            n = 0;
        }
    }
    run_barriers(p, 0);
}

/* Completes the barriers whose SUBSCRIBEs are confirmed; when nothing is outstanding at
 * all (a dirty channel may have been dropped before it was sent) every barrier is done. */
static void run_barriers(rds_pubsub_t *p, int status)
{
    bool idle = p->ndirty == 0 && p->sub_sent == p->sub_confirmed;
    while (p->barriers != NULL &&
           (status != 0 || idle || p->barriers->target <= p->sub_confirmed)) {
        barrier_t *b = p->barriers;
        p->barriers = b->next;
        if (p->barriers == NULL)
            p->barriers_tail = &p->barriers;
        b->cb(status, b->ud);
        rt_free(b);
    }
}

static void schedule_flush(rds_pubsub_t *p)
{
    if (!ev_is_active(&p->flush_w))
        ev_prepare_start(p->link.loop, &p->flush_w);
}

static void on_probe_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    rds_pubsub_t *p = w->data;
    if (!p->up || p->probing)
        return;
    if (send_probe(p) == 0) {
        p->probing = true;
        start_deadline(p);
    }
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    rds_pubsub_t *p = w->data;
    RT_LOG_WARN("redis pubsub %s timed out addr=%s io_timeout_ms=%lld",
                p->up ? "probe" : "resubscribe", rds_addr_name(&p->link.addr),
                (long long)p->link.addr.io_timeout_ms);
    rds__link_drop(&p->link, RT_ETIMEOUT);
}

static void pubsub_on_up(rds__link_t *l)
{
    rds_pubsub_t *p = (rds_pubsub_t *)l;
    forget_connection_state(p);
    p->up = false;
    p->probing = false;
    p->sync_left = 0;
    if (send_probe(p) != 0)
        return;
    p->sync_left = 1;
    chan_t *items[BATCH_CHANNELS];
    size_t n = 0, left = p->count;
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (chan_t *e = p->buckets[i]; e != NULL; e = e->next) {
            e->sent = true;
            items[n++] = e;
            left--;
            if (n == BATCH_CHANNELS || left == 0) {
                send_batch(p, "SUBSCRIBE", items, n);
                p->sync_left += n;
                n = 0;
            }
        }
    }
    RT_LOG_DEBUG("redis pubsub resubscribing addr=%s channels=%zu", rds_addr_name(&l->addr),
                 p->count);
    start_deadline(p);
}

static void pubsub_on_down(rds__link_t *l, int status)
{
    rds_pubsub_t *p = (rds_pubsub_t *)l;
    bool was_up = p->up;
    p->up = false;
    p->probing = false;
    p->sync_left = 0;
    ev_timer_stop(l->loop, &p->probe_timer);
    ev_timer_stop(l->loop, &p->deadline_timer);
    forget_connection_state(p);
    run_barriers(p, RT_ECLOSED);
    if (was_up && p->h.on_state != NULL)
        p->h.on_state(p->h.ud, false);
}

static void synced(rds_pubsub_t *p)
{
    p->up = true;
    p->sub_sent = p->sub_confirmed = 0;
    ev_timer_stop(p->link.loop, &p->deadline_timer);
    ev_timer_set(&p->probe_timer, (double)p->probe_interval_ms / 1000.0,
                 (double)p->probe_interval_ms / 1000.0);
    ev_timer_start(p->link.loop, &p->probe_timer);
    RT_LOG_INFO("redis pubsub subscribed addr=%s channels=%zu", rds_addr_name(&p->link.addr),
                p->count);
    if (p->h.on_state != NULL)
        p->h.on_state(p->h.ud, true);
}

static rt_str_t elem_str(const redisReply *r, size_t i)
{
    const redisReply *e = r->element[i];
    if (e == NULL || (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS))
        return RT_STR_NULL;
    return rt_str_from(e->str, e->len);
}

static void pubsub_on_reply(rds__link_t *l, redisReply *r)
{
    rds_pubsub_t *p = (rds_pubsub_t *)l;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        RT_LOG_DEBUG("redis pubsub unexpected reply addr=%s type=%d", rds_addr_name(&l->addr),
                     r->type);
        return;
    }
    rt_str_t kind = elem_str(r, 0);
    if (p->sharded && rt_str_eq_c(kind, "sunsubscribe")) {
        /* Our own SUNSUBSCRIBEs left the set before they were sent; a channel still in it
         * was dropped by the server (its slot moved). The classic twin goes too. */
        rt_str_t ch = elem_str(r, 1);
        chan_t *e = *slot(p, ch, rt_str_hash(ch));
        if (e != NULL && e->sent) {
            (void)rds_pubsub_unsubscribe(p, ch);
            if (p->on_lost != NULL)
                p->on_lost(p->h.ud, ch);
        }
    } else if (rt_str_eq_c(kind, "message") || (p->sharded && rt_str_eq_c(kind, "smessage"))) {
        if (r->elements < 3)
            return;
        rt_str_t ch = elem_str(r, 1);
        /* Messages still in flight for a channel we already dropped are not wanted. */
        if (p->h.on_message != NULL && *slot(p, ch, rt_str_hash(ch)) != NULL)
            p->h.on_message(p->h.ud, ch, elem_str(r, 2));
    } else if (rt_str_eq_c(kind, "subscribe") || rt_str_eq_c(kind, "psubscribe") ||
               rt_str_eq_c(kind, "pong")) {
        /* Replies come in order: the resubscribe's confirmations precede anything sent
         * after it, and probes only start once it is complete. */
        if (p->sync_left > 0) {
            if (--p->sync_left == 0)
                synced(p);
        } else if (rt_str_eq_c(kind, "subscribe")) {
            p->sub_confirmed++;
            run_barriers(p, 0);
        } else if (p->probing) {
            p->probing = false;
            ev_timer_stop(l->loop, &p->deadline_timer);
        }
    }
}

static const rds__link_ops_t pubsub_ops = {
    .on_up = pubsub_on_up,
    .on_down = pubsub_on_down,
    .on_reply = pubsub_on_reply,
};

rds_pubsub_t *rds_pubsub_new(struct ev_loop *loop, const rds_addr_t *addr,
                             const rds_pubsub_handler_t *h, int64_t probe_interval_ms)
{
    rds_pubsub_t *p = RT_NEW(rds_pubsub_t);
    p->h = *h;
    p->probe_interval_ms = probe_interval_ms > 0 ? probe_interval_ms : 1000;
    p->nbuckets = 64;
    p->buckets = rt_calloc(p->nbuckets, sizeof(*p->buckets));
    ev_prepare_init(&p->flush_w, on_flush);
    p->flush_w.data = p;
    ev_init(&p->probe_timer, on_probe_timer);
    p->probe_timer.data = p;
    ev_init(&p->deadline_timer, on_deadline);
    p->deadline_timer.data = p;
    p->barriers_tail = &p->barriers;
    /* Short backoff cap: while PUB/SUB is down the node cannot take new subscriptions. */
    rds__link_init(&p->link, loop, addr, &pubsub_ops, "pubsub", 100, 1000);
    return p;
}

rds_pubsub_t *rds_pubsub_new_sharded(struct ev_loop *loop, const rds_addr_t *addr,
                                     const rds_pubsub_handler_t *h, int64_t probe_interval_ms,
                                     void (*on_lost)(void *ud, rt_str_t channel))
{
    rds_pubsub_t *p = rds_pubsub_new(loop, addr, h, probe_interval_ms);
    p->sharded = true;
    p->on_lost = on_lost;
    return p;
}

int rds_pubsub_barrier(rds_pubsub_t *p, void (*cb)(int status, void *ud), void *ud)
{
    if (!p->up)
        return RT_ECLOSED;
    barrier_t *b = RT_NEW(barrier_t);
    b->target = p->sub_sent + p->ndirty;
    b->cb = cb;
    b->ud = ud;
    *p->barriers_tail = b;
    p->barriers_tail = &b->next;
    /* Completed from the flush pass at the earliest, never inside this call. */
    schedule_flush(p);
    return 0;
}

void rds_pubsub_free(rds_pubsub_t *p)
{
    if (p == NULL)
        return;
    struct ev_loop *loop = p->link.loop;
    ev_prepare_stop(loop, &p->flush_w);
    ev_timer_stop(loop, &p->probe_timer);
    ev_timer_stop(loop, &p->deadline_timer);
    rds__link_cleanup(&p->link);
    run_barriers(p, RT_ECANCELED);
    free_list(p->unsub);
    for (size_t i = 0; i < p->nbuckets; i++)
        free_list(p->buckets[i]);
    rt_free(p->buckets);
    rt_free(p);
}

bool rds_pubsub_ready(const rds_pubsub_t *p)
{
    return p->up;
}

int rds_pubsub_subscribe(rds_pubsub_t *p, rt_str_t channel)
{
    unsigned long hash = rt_str_hash(channel);
    chan_t **s = slot(p, channel, hash);
    if (*s == NULL) {
        chan_t *e = rt_malloc(sizeof(*e) + channel.n + 1);
        memset(e, 0, sizeof(*e));
        e->hash = hash;
        e->n = channel.n;
        if (channel.n > 0)
            memcpy(e->name, channel.p, channel.n);
        e->name[channel.n] = '\0';
        *s = e;
        p->count++;
        /* While the link is down the set itself is what gets sent after reconnecting. */
        if (p->link.up) {
            dirty_add(p, e);
            schedule_flush(p);
        }
        if (p->count > p->nbuckets)
            grow(p);
    }
    return p->up ? 0 : RT_ECLOSED;
}

int rds_pubsub_unsubscribe(rds_pubsub_t *p, rt_str_t channel)
{
    chan_t **s = slot(p, channel, rt_str_hash(channel));
    chan_t *e = *s;
    if (e == NULL)
        return 0;
    *s = e->next;
    p->count--;
    dirty_remove(p, e);
    if (e->sent && p->link.up) {
        e->next = p->unsub;
        p->unsub = e;
        schedule_flush(p);
    } else {
        rt_free(e);
    }
    return 0;
}

size_t rds_pubsub_count(const rds_pubsub_t *p)
{
    return p->count;
}
