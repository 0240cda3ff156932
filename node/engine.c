/* The engine loop: owns the broker and presence, the channel -> workers interest table,
 * and executes operations posted by workers (node_internal.h). Runs on the main thread. */
#include <fnmatch.h>
#include <string.h>

#include "broker/broker_mem.h"
#include "broker/broker_redis.h"
#include "broker/rds.h"
#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/consumer.h"
#include "node/node_internal.h"
#include "presence/presence_redis.h"

/* Which workers have local subscribers of a channel. */
typedef struct eng_chan {
    char *name; /* owned; the map key points here */
    size_t len;
    uint64_t worker_mask;
    bool subscribed;   /* the broker accepted the subscription (retried while false) */
    double idle_since; /* ev_now when the last worker left; 0 while some worker has subs */
} eng_chan_t;

/* The broker subscription of a channel nobody wants any more is dropped only after this
 * long (SERVER.md §3.9), so unsubscribe + resubscribe does not churn Redis. */
#define UNSUBSCRIBE_DELAY_S 1.0

/* Connections per user on this node (client.user_connection_limit). */
typedef struct eng_user {
    char *name; /* owned; the map key points here */
    size_t len;
    int64_t count;
} eng_user_t;

struct node_survey {
    node_survey_t *next; /* in the engine's list of surveys in progress */
    node_op_t *op;       /* owned until answered */
    int remaining;       /* workers that have not answered yet */
    node_survey_result_t merged;
};

/* Survey mails: engine -> worker (request) and worker -> engine (part). */
typedef struct survey_part_mail {
    rt_mail_t mail;
    node_survey_t *survey; /* engine-owned; only the engine dereferences it */
    int worker;
    node_survey_result_t part; /* owned */
} survey_part_mail_t;

/* ---------------------------------------------------------------------------------------
 * Ops, controls, survey results.
 */

node_op_t *node_op_new(node_op_kind_t kind, node_worker_t *w, node_op_done_fn done)
{
    node_op_t *op = RT_NEW(node_op_t);
    op->kind = kind;
    op->worker = w ? w->index : -1;
    op->done = done;
    return op;
}

rt_str_t node_op_copy(node_op_t *op, rt_str_t s)
{
    if (s.n == 0)
        return (rt_str_t){"", 0};
    node_blob_t *b = rt_malloc(sizeof(*b) + s.n + 1);
    memcpy(b->bytes, s.p, s.n);
    b->bytes[s.n] = '\0';
    b->next = op->blobs;
    op->blobs = b;
    return (rt_str_t){b->bytes, s.n};
}

void node_op_free(node_op_t *op)
{
    if (op == NULL)
        return;
    while (op->blobs) {
        node_blob_t *next = op->blobs->next;
        rt_free(op->blobs);
        op->blobs = next;
    }
    for (size_t i = 0; i < op->npubs; i++)
        broker_pub_unref(op->pubs[i]);
    rt_free(op->pubs);
    rt_free(op->entries);
    rt_free(op->nodes);
    node_control_unref(op->control);
    if (op->survey) {
        node_survey_result_cleanup(op->survey);
        rt_free(op->survey);
    }
    rt_free(op);
}

node_control_t *node_control_new(node_control_kind_t kind)
{
    node_control_t *c = RT_NEW(node_control_t);
    atomic_init(&c->refs, 1);
    c->kind = kind;
    c->user = rt_strdup("");
    c->client = rt_strdup("");
    c->session = rt_strdup("");
    c->channel = rt_strdup("");
    c->reason = rt_strdup("");
    rt_buf_init(&c->info);
    rt_buf_init(&c->data);
    c->override = (node_jwt_override_t){NODE_JWT_UNSET, NODE_JWT_UNSET, NODE_JWT_UNSET,
                                        NODE_JWT_UNSET, NODE_JWT_UNSET};
    return c;
}

node_control_t *node_control_ref(node_control_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void node_control_unref(node_control_t *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    rt_free(c->user);
    rt_free(c->client);
    rt_free(c->session);
    rt_free(c->channel);
    rt_free(c->reason);
    if (c->whitelist) {
        for (char **p = c->whitelist; *p; p++)
            rt_free(*p);
        rt_free(c->whitelist);
    }
    rt_buf_cleanup(&c->info);
    rt_buf_cleanup(&c->data);
    rt_free(c);
}

void node_survey_result_init(node_survey_result_t *r)
{
    memset(r, 0, sizeof(*r));
    node_map_init(&r->users);
    node_map_init(&r->channels);
}

void node_survey_result_cleanup(node_survey_result_t *r)
{
    node_map_cleanup(&r->users);
    node_map_cleanup(&r->channels);
    while (r->keys) {
        node_blob_t *next = r->keys->next;
        rt_free(r->keys);
        r->keys = next;
    }
}

void node_survey_result_add(node_survey_result_t *r, node_map_t *m, rt_str_t key, uintptr_t n)
{
    uintptr_t have = (uintptr_t)node_map_get(m, key);
    if (have) {
        node_map_put(m, key, (void *)(have + n));
        return;
    }
    node_blob_t *b = rt_malloc(sizeof(*b) + key.n + 1);
    /* An empty key from a survey answer may be {NULL, 0}: memcpy must not see NULL. */
    if (key.n > 0)
        memcpy(b->bytes, key.p, key.n);
    b->bytes[key.n] = '\0';
    b->next = r->keys;
    r->keys = b;
    /* Stored values are count + 1 so that a zero count is not mistaken for absence. */
    node_map_put(m, (rt_str_t){b->bytes, key.n}, (void *)(n + 1));
}

/* ---------------------------------------------------------------------------------------
 * Answering ops.
 */

static void op_done_on_worker(rt_mail_t *mail, void *ctx)
{
    node_op_t *op = (node_op_t *)mail;
    op->done((node_worker_t *)ctx, op);
    node_op_free(op);
}

bool node_engine_is_answer(const rt_mail_t *mail)
{
    return mail->fn == op_done_on_worker;
}

void node_engine_answer(node_engine_t *e, node_op_t *op)
{
    if (op->engine_done) {
        op->engine_done(e, op);
        node_op_free(op);
        return;
    }
    if (op->done == NULL || op->worker < 0 || op->worker >= e->node->nworkers) {
        node_op_free(op);
        return;
    }
    op->mail.fn = op_done_on_worker;
    rt_mailbox_post(&e->node->workers[op->worker]->mailbox, &op->mail);
}

static void copy_epoch(char *dst, rt_str_t epoch)
{
    size_t n = epoch.n < NODE_EPOCH_MAX - 1 ? epoch.n : NODE_EPOCH_MAX - 1;
    if (n)
        memcpy(dst, epoch.p, n);
    dst[n] = '\0';
}

/* ---------------------------------------------------------------------------------------
 * Broker sink: what arrives for channels goes to the workers that have subscribers.
 */

static void sink_publication(void *ud, broker_pub_t *pub)
{
    node_engine_t *e = ud;
    eng_chan_t *ch = node_map_get(&e->channels, pub->channel);
    if (ch == NULL)
        return;
    for (int i = 0; i < e->node->nworkers; i++) {
        if (ch->worker_mask & (1ULL << i))
            node_worker_deliver_pub(e->node->workers[i], pub);
    }
}

static void sink_join_leave(node_engine_t *e, rt_str_t channel, const rt_client_info_t *info,
                            bool leave)
{
    eng_chan_t *ch = node_map_get(&e->channels, channel);
    if (ch == NULL)
        return;
    for (int i = 0; i < e->node->nworkers; i++) {
        if (ch->worker_mask & (1ULL << i))
            node_worker_deliver_join(e->node->workers[i], channel, info, leave);
    }
}

static void sink_join(void *ud, rt_str_t channel, const rt_client_info_t *info)
{
    sink_join_leave(ud, channel, info, false);
}

static void sink_leave(void *ud, rt_str_t channel, const rt_client_info_t *info)
{
    sink_join_leave(ud, channel, info, true);
}

/* ---------------------------------------------------------------------------------------
 * Op execution.
 */

/* Subscribes the channel in the broker unless it already is. A failure (broker down) is
 * remembered so the next subscribe flow of the channel tries again instead of trusting a
 * subscription that never happened. */
static bool ensure_subscribed(node_engine_t *e, eng_chan_t *ch)
{
    if (ch->subscribed)
        return true;
    int rc = broker_subscribe(e->broker, (rt_str_t){ch->name, ch->len});
    if (rc != 0) {
        RT_LOG_WARN("broker subscribe failed channel=%.*s err=%s", (int)ch->len, ch->name,
                    rt_strerror(rc));
        return false;
    }
    ch->subscribed = true;
    return true;
}

static void hub_interest(node_engine_t *e, node_op_t *op, bool add)
{
    eng_chan_t *ch = node_map_get(&e->channels, op->channel);
    uint64_t bit = 1ULL << op->worker;
    if (add) {
        if (ch == NULL) {
            ch = RT_NEW(eng_chan_t);
            ch->name = rt_str_dup(op->channel);
            ch->len = op->channel.n;
            node_map_put(&e->channels, (rt_str_t){ch->name, ch->len}, ch);
        }
        if (ch->worker_mask == 0) {
            atomic_fetch_add(&e->num_channels, 1);
            ch->idle_since = 0;
        }
        ensure_subscribed(e, ch);
        ch->worker_mask |= bit;
    } else if (ch != NULL && (ch->worker_mask & bit)) {
        ch->worker_mask &= ~bit;
        if (ch->worker_mask == 0) {
            atomic_fetch_sub(&e->num_channels, 1);
            ch->idle_since = ev_now(e->loop);
            if (!ev_is_active(&e->unsub_timer))
                ev_timer_start(e->loop, &e->unsub_timer);
        }
    }
    node_op_free(op);
}

static void drop_channel(node_engine_t *e, eng_chan_t *ch)
{
    node_map_del(&e->channels, (rt_str_t){ch->name, ch->len});
    if (ch->subscribed) {
        int rc = broker_unsubscribe(e->broker, (rt_str_t){ch->name, ch->len});
        if (rc != 0)
            RT_LOG_WARN("broker unsubscribe failed err=%s", rt_strerror(rc));
    }
    rt_free(ch->name);
    rt_free(ch);
}

/* Drops the broker subscriptions idle for UNSUBSCRIBE_DELAY_S; stops when none is left. */
static void on_unsub_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    node_engine_t *e = t->data;
    double now = ev_now(loop);
    bool waiting = false;
    for (;;) {
        eng_chan_t *due = NULL;
        waiting = false;
        for (node_map_iter_t it = node_map_iter(&e->channels); node_map_next(&it);) {
            eng_chan_t *ch = it.entry->val;
            if (ch->worker_mask != 0)
                continue;
            if (now - ch->idle_since >= UNSUBSCRIBE_DELAY_S) {
                due = ch;
                break;
            }
            waiting = true;
        }
        if (due == NULL)
            break;
        drop_channel(e, due);
    }
    if (!waiting)
        ev_timer_stop(loop, t);
}

static void publish_done(int status, const broker_pos_t *pos, bool suppressed, void *ud)
{
    node_op_t *op = ud;
    op->status = status;
    if (status == 0 && pos) {
        op->offset = pos->offset;
        copy_epoch(op->epoch, pos->epoch);
        op->suppressed = suppressed;
    }
    node_engine_t *eng = op->engine;
    if (status == 0)
        atomic_fetch_add_explicit(&eng->node->metrics.publications, 1, memory_order_relaxed);
    node_engine_answer(eng, op);
}

static void history_done(int status, broker_pub_t *const *pubs, size_t n, const broker_pos_t *top,
                         void *ud)
{
    node_op_t *op = ud;
    node_engine_t *eng = op->engine;
    op->status = status;
    if (status == 0) {
        if (n > 0) {
            op->pubs = rt_malloc(n * sizeof(*op->pubs));
            for (size_t i = 0; i < n; i++)
                op->pubs[i] = broker_pub_ref(pubs[i]);
            op->npubs = n;
        }
        if (top) {
            op->offset = top->offset;
            copy_epoch(op->epoch, top->epoch);
        }
    }
    node_engine_answer(eng, op);
}

static void done_status(int status, void *ud)
{
    node_op_t *op = ud;
    node_engine_t *eng = op->engine;
    op->status = status;
    node_engine_answer(eng, op);
}

static void presence_get_done(int status, const rt_client_info_t *entries, size_t n, void *ud)
{
    node_op_t *op = ud;
    node_engine_t *eng = op->engine;
    op->status = status;
    if (status == 0 && n > 0) {
        op->entries = rt_calloc(n, sizeof(*op->entries));
        for (size_t i = 0; i < n; i++) {
            op->entries[i].user = node_op_copy(op, entries[i].user);
            op->entries[i].client = node_op_copy(op, entries[i].client);
            op->entries[i].conn_info = node_op_copy(op, entries[i].conn_info);
            op->entries[i].chan_info = node_op_copy(op, entries[i].chan_info);
        }
        op->nentries = n;
    }
    node_engine_answer(eng, op);
}

static void presence_stats_done(int status, uint32_t clients, uint32_t users, void *ud)
{
    node_op_t *op = ud;
    node_engine_t *eng = op->engine;
    op->status = status;
    op->num_clients = clients;
    op->num_users = users;
    node_engine_answer(eng, op);
}

static void fail_now(node_engine_t *e, node_op_t *op, int rc)
{
    op->status = rc;
    node_engine_answer(e, op);
}

static void start_survey(node_engine_t *e, node_op_t *op)
{
    node_survey_t *s = RT_NEW(node_survey_t);
    s->op = op;
    s->remaining = e->node->nworkers;
    node_survey_result_init(&s->merged);
    s->next = e->surveys;
    e->surveys = s;
    for (int i = 0; i < e->node->nworkers; i++)
        node_worker_survey(e->node->workers[i], s, op->want_channels, op->pattern);
}

static void merge_map(node_survey_result_t *into, node_map_t *dst, const node_map_t *src)
{
    for (node_map_iter_t it = node_map_iter(src); node_map_next(&it);) {
        uintptr_t n = (uintptr_t)it.entry->val - 1;
        node_survey_result_add(into, dst, it.entry->key, n);
    }
}

void node_engine_survey_part(node_engine_t *e, node_survey_t *s, int worker,
                             node_survey_result_t *part)
{
    (void)worker;
    s->merged.num_clients += part->num_clients;
    s->merged.num_subs += part->num_subs;
    merge_map(&s->merged, &s->merged.users, &part->users);
    merge_map(&s->merged, &s->merged.channels, &part->channels);
    if (--s->remaining > 0)
        return;
    for (node_survey_t **pp = &e->surveys; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    node_op_t *op = s->op;
    op->survey = rt_malloc(sizeof(*op->survey));
    *op->survey = s->merged;
    op->status = 0;
    rt_free(s);
    node_cluster_local_survey_done(e, op);
}

static void user_count(node_engine_t *e, node_op_t *op, bool add)
{
    eng_user_t *u = node_map_get(&e->users, op->channel);
    if (add) {
        int64_t limit = e->node->cfg->user_connection_limit;
        if (u && limit > 0 && u->count >= limit) {
            op->status = RT_ELIMIT;
            node_engine_answer(e, op);
            return;
        }
        if (u == NULL) {
            u = RT_NEW(eng_user_t);
            u->name = rt_str_dup(op->channel);
            u->len = op->channel.n;
            node_map_put(&e->users, (rt_str_t){u->name, u->len}, u);
        }
        u->count++;
        op->status = 0;
        node_engine_answer(e, op);
        return;
    }
    if (u && --u->count <= 0) {
        node_map_del(&e->users, (rt_str_t){u->name, u->len});
        rt_free(u->name);
        rt_free(u);
    }
    node_op_free(op);
}

static void run_op(rt_mail_t *mail, void *ctx)
{
    node_engine_t *e = ctx;
    node_op_t *op = (node_op_t *)mail;
    int rc = 0;
    op->engine = e;
    switch (op->kind) {
    case NODE_OP_HUB_SUB:
        hub_interest(e, op, true);
        return;
    case NODE_OP_HUB_UNSUB:
        hub_interest(e, op, false);
        return;
    case NODE_OP_HUB_WAIT: {
        eng_chan_t *ch = node_map_get(&e->channels, op->channel);
        if (ch == NULL || !ensure_subscribed(e, ch)) {
            fail_now(e, op, RT_ECLOSED);
            return;
        }
        rc = broker_subscribed_wait(e->broker, op->channel, done_status, op);
        if (rc == RT_EUNAVAIL) {
            op->status = 0;
            node_engine_answer(e, op);
            return;
        }
        break;
    }
    case NODE_OP_PUBLISH:
        rc = broker_publish(e->broker, &op->pub, publish_done, op);
        break;
    case NODE_OP_HISTORY:
        rc = broker_history(e->broker, &op->hist, history_done, op);
        break;
    case NODE_OP_HISTORY_REMOVE:
        rc = broker_history_remove(e->broker, op->channel, done_status, op);
        break;
    case NODE_OP_PRESENCE_ADD:
        rc = presence_add(e->presence, op->channel, &op->info, done_status, op);
        break;
    case NODE_OP_PRESENCE_REMOVE:
        rc = presence_remove(e->presence, op->channel, op->info.client, op->info.user, done_status,
                             op);
        break;
    case NODE_OP_PRESENCE_GET:
        rc = presence_get(e->presence, op->channel, presence_get_done, op);
        break;
    case NODE_OP_PRESENCE_STATS:
        rc = presence_stats(e->presence, op->channel, presence_stats_done, op);
        break;
    case NODE_OP_JOIN:
    case NODE_OP_LEAVE:
        rc = op->kind == NODE_OP_JOIN ? broker_publish_join(e->broker, op->channel, &op->info)
                                      : broker_publish_leave(e->broker, op->channel, &op->info);
        op->status = rc;
        node_engine_answer(e, op);
        return;
    case NODE_OP_CONTROL:
        /* Applied here and on every other node (remote failures are not reported). */
        for (int i = 0; i < e->node->nworkers; i++)
            node_worker_deliver_control(e->node->workers[i], op->control);
        node_cluster_publish_command(e, op->control);
        op->status = 0;
        node_engine_answer(e, op);
        return;
    case NODE_OP_SURVEY:
        start_survey(e, op);
        return;
    case NODE_OP_USER_ADD:
        user_count(e, op, true);
        return;
    case NODE_OP_USER_REMOVE:
        user_count(e, op, false);
        return;
    case NODE_OP_EMULATION:
        op->status = node_cluster_emulation(e, op);
        node_engine_answer(e, op);
        return;
    }
    if (rc != 0)
        fail_now(e, op, rc);
}

void node_engine_post(node_engine_t *e, node_op_t *op)
{
    op->mail.fn = run_op;
    rt_mailbox_post(&e->mailbox, &op->mail);
}

node_engine_t *node_engine_new(node_t *node, struct ev_loop *loop)
{
    node_engine_t *e = RT_NEW(node_engine_t);
    e->node = node;
    e->loop = loop;
    rt_mailbox_init(&e->mailbox, loop, e);
    rt_mailbox_start(&e->mailbox);
    node_map_init(&e->channels);
    node_map_init(&e->users);
    ev_timer_init(&e->unsub_timer, on_unsub_timer, UNSUBSCRIBE_DELAY_S / 2,
                  UNSUBSCRIBE_DELAY_S / 2);
    e->unsub_timer.data = e;
    broker_sink_t sink = {
        .on_publication = sink_publication,
        .on_join = sink_join,
        .on_leave = sink_leave,
        .on_control = node_cluster_on_control,
        .on_resubscribed = node_cluster_on_resubscribed,
        .ud = e,
    };
    const node_config_t *cfg = node->cfg;
    if (strcmp(cfg->engine_type, "redis") == 0) {
        rds_addr_t *shards = NULL;
        size_t n = 0;
        rt_buf_t err = RT_BUF_INIT;
        /* Validated at load time: a failure here is a bug. */
        RT_ASSERT(node_config_redis_shards(cfg, &shards, &n, &err) == 0);
        rt_buf_cleanup(&err);
        /* Before the broker and presence exist: they name keys by mode once. */
        for (size_t i = 0; i < n; i++)
            (void)rds_addr_detect_cluster(&shards[i]);
        broker_redis_opts_t opts = {
            .shards = shards,
            .nshards = n,
            .prefix = cfg->redis_prefix,
            .node_uid = node->uid,
            .sharded_pubsub = cfg->redis_sharded_pubsub,
        };
        e->broker = broker_redis_new(loop, &sink, &opts);
        presence_redis_opts_t popts = {
            .prefix = cfg->redis_prefix,
            .ttl_ms = cfg->redis_presence_ttl_ms,
            .user_mapping = cfg->redis_presence_user_mapping,
            .hash_field_ttl = cfg->redis_presence_hash_field_ttl,
            .on_fatal = NULL, /* a Redis without HEXPIRE ends the process (refused start) */
        };
        e->presence = presence_redis_new(loop, shards, n, &popts);
        for (size_t i = 0; i < n; i++)
            rds_addr_cleanup(&shards[i]);
        rt_free(shards);
    } else {
        e->broker = broker_mem_new(loop, &sink);
        /* Entries are refreshed every presence_update_interval; three missed refreshes
         * mean the entry's owner is gone (cannot happen within one process unless a bug
         * leaks it). */
        int64_t ttl = cfg->presence_update_interval_ms * 3;
        e->presence = presence_mem_new(loop, ttl > 60000 ? ttl : 60000);
    }
    node_cluster_start(e);
    node_consumers_start(e);
    return e;
}

/* Mails left in the engine mailbox at exit: ops are freed with their contents; other
 * mails (survey parts, consumer results) only as memory, since nothing runs them now. */
static void free_op_mail(rt_mail_t *m)
{
    if (m->fn == run_op)
        node_op_free((node_op_t *)m);
    else
        rt_free(m);
}

void node_engine_free(node_engine_t *e)
{
    if (e == NULL)
        return;
    node_consumers_stop(e);
    ev_timer_stop(e->loop, &e->unsub_timer);
    node_cluster_stop(e);
    rt_mailbox_stop(&e->mailbox);
    /* Workers are joined by now: callbacks of the broker destroy cannot be answered, so
     * make answer() free them. */
    e->node->nworkers = 0;
    /* Surveys the stopped workers will never answer. */
    while (e->surveys) {
        node_survey_t *sv = e->surveys;
        e->surveys = sv->next;
        node_survey_result_cleanup(&sv->merged);
        node_op_free(sv->op);
        rt_free(sv);
    }
    broker_destroy(e->broker);
    presence_destroy(e->presence);
    rt_mailbox_cleanup(&e->mailbox, free_op_mail);
    for (node_map_iter_t it = node_map_iter(&e->channels); node_map_next(&it);) {
        eng_chan_t *ch = it.entry->val;
        rt_free(ch->name);
        rt_free(ch);
    }
    node_map_cleanup(&e->channels);
    for (node_map_iter_t it = node_map_iter(&e->users); node_map_next(&it);) {
        eng_user_t *u = it.entry->val;
        rt_free(u->name);
        rt_free(u);
    }
    node_map_cleanup(&e->users);
    rt_free(e);
}
