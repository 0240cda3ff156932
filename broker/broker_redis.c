/* The Redis broker. Per shard: one pipelined command client (publish scripts, history
 * reads, control publishes) and one PUB/SUB connection (the channels this node subscribed
 * to that live on the shard, plus the control channels every shard carries).
 *
 *  - subs: the channels this node subscribed to (all shards). It makes subscribe
 *    idempotent as in the memory broker, lets a failed subscribe be undone without
 *    touching an existing subscription, and filters messages that arrive after an
 *    unsubscribe.
 *  - Requests carry a heap context to their rds callback. rds runs every callback exactly
 *    once and never inside the initiating call, so the broker adds no deferral of its own;
 *    freeing the clients on destroy cancels what is pending (RT_ECANCELED).
 *  - Epochs are generated here (8 random letters) and passed to every script that may
 *    create the stream meta; the script keeps the stored one when it exists.
 *  - A Redis Cluster address is one shard (the cluster spreads channels over its slots
 *    itself): commands go through its slot router, every per-channel key and the
 *    channel's PUB/SUB name carry the channel as hash tag (P.stream.{C}, P.client.{C},
 *    SERVER.md §3.3, as Centrifugo >= 6.6) so each script and the PUBLISH inside it stay in
 *    one slot. Classic PUBLISH reaches subscribers on every cluster node, so one PUB/SUB
 *    connection to any node serves the shard; when it stays down it moves to the next
 *    known node and subscribes everything again.
 *  - With sharded_pubsub a cluster shard publishes with SPUBLISH and keeps one sharded
 *    PUB/SUB connection per master (sps_t); each subscribed channel records the one it sits
 *    on. Once a second every channel is checked against the slot table and moved when its
 *    slot changed master (a server-side "sunsubscribe" also forces a table refresh), which
 *    ends in on_resubscribed so sessions re-check their positions. Control channels stay
 *    on the classic connection. */
#include "broker/broker_redis.h"
#include "broker/broker_redis_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/pubcodec.h"
#include "broker/rds_shard.h"
#include "broker_lua.h"
#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/base/rand.h"
#include "node/base/table.h"
#include "node/base/time.h"

#define EPOCH_LEN         8
#define IDEM_TTL_S        "300"
#define PROBE_INTERVAL_MS 1000
#define MAX_ARGS          16
/* Watch ticks a cluster shard's PUB/SUB may stay down before moving to another node. */
#define PS_WATCH_S    1.0
#define PS_DOWN_TICKS 2

typedef struct broker_redis broker_redis_t;
typedef struct shard shard_t;

/* A sharded PUB/SUB connection to one cluster master. */
typedef struct sps {
    struct sps *next; /* owned by the shard's list */
    shard_t *sh;      /* borrowed back pointer */
    char *node;       /* owned: "host:port" of the master */
    rds_pubsub_t *ps; /* owned, sharded mode */
    bool was_up;      /* its next up is a resubscribe (or ends a move onto it) */
    bool touched;     /* a channel moved onto it in the current reroute pass */
} sps_t;

struct shard {
    broker_redis_t *b; /* borrowed back pointer */
    size_t index;      /* position in b->shards */
    rds_router_t *cmd; /* owned */
    rds_pubsub_t *ps;  /* owned */
    bool cluster;      /* Redis Cluster: tagged names, PUB/SUB node failover */
    size_t ps_attempt; /* which cluster node the PUB/SUB connection was sent to */
    int ps_down_ticks; /* consecutive watch ticks with the PUB/SUB down */
    bool ps_was_up;    /* PUB/SUB was up before: its next up is a resubscribe */
    char *reason;      /* owned: "redis <addr> unavailable" for ready() */
    bool read_only;    /* a write got READONLY (a replica, or a demoted master) */
    char *ro_reason;   /* owned: "redis <addr> is read-only" for ready() */
    bool sharded;      /* cluster with sharded_pubsub: SPUBLISH, channels on sps */
    sps_t *sps;        /* owned list, one per master seen (sharded only) */
};

typedef struct sub_chan {
    rt_table_node_t node; /* key: name below */
    sps_t *at;   /* borrowed: the sharded connection holding it; NULL otherwise or when lost */
    char name[]; /* channel, NUL-terminated */
} sub_chan_t;

struct broker_redis {
    broker_t base;
    struct ev_loop *loop; /* borrowed */
    shard_t *shards;      /* owned array of nshards (>= 1) */
    size_t nshards;
    char *prefix;      /* owned */
    char *control_ch;  /* owned: P.control */
    char *node_ch;     /* owned: P.node.<uid> */
    rt_table_t subs;   /* of sub_chan_t, owned */
    size_t control_rr; /* next shard tried for a control publish */
    ev_timer ps_watch; /* repeating PS_WATCH_S while any shard is a cluster */
    rds_script_t publish_stream, publish_idempotent, history_stream;
    bool closing; /* destroy in progress: new requests fail with RT_ECLOSED */
    broker_redis_stats_t stats;
};

static const broker_vtbl_t redis_vtbl;
static const broker_pos_t zero_pos = {0, {"", 0}};

static broker_redis_t *from_base(broker_t *b)
{
    RT_ASSERT(b->vt == &redis_vtbl);
    return (broker_redis_t *)(void *)b;
}

static shard_t *shard_for(broker_redis_t *b, rt_str_t channel)
{
    return &b->shards[rds_shard_of(channel, b->nshards)];
}

/* ---- command arguments ---- */

/* Arguments built in one buffer; pointers are taken only at the end because the buffer
 * moves while it grows. */
typedef struct args {
    rt_buf_t buf;
    size_t off[MAX_ARGS];
    size_t len[MAX_ARGS];
    int n;
    const char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS];
} args_t;

static void args_init(args_t *a)
{
    memset(a, 0, sizeof(*a));
    rt_buf_init(&a->buf);
}

/* Starts a new argument. */
static void arg_new(args_t *a)
{
    RT_ASSERT(a->n < MAX_ARGS);
    a->off[a->n] = a->buf.len;
    a->len[a->n] = 0;
    a->n++;
}

/* Appends to the current argument. */
static void arg_cat(args_t *a, rt_str_t s)
{
    if (s.n > 0)
        rt_buf_append(&a->buf, s.p, s.n);
    a->len[a->n - 1] += s.n;
}

static void arg(args_t *a, rt_str_t s)
{
    arg_new(a);
    arg_cat(a, s);
}

static void arg_u64(args_t *a, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    arg(a, rt_str_from(tmp, (size_t)n));
}

/* prefix + infix + channel (+ "." + suffix when suffix is set); the channel in braces on a
 * cluster shard. */
static void arg_key(args_t *a, const broker_redis_t *b, const shard_t *sh, const char *infix,
                    rt_str_t channel, rt_str_t suffix)
{
    arg_new(a);
    arg_cat(a, rt_str_c(b->prefix));
    arg_cat(a, rt_str_c(infix));
    if (sh->cluster)
        arg_cat(a, RT_STR("{"));
    arg_cat(a, channel);
    if (sh->cluster)
        arg_cat(a, RT_STR("}"));
    if (suffix.p != NULL) {
        arg_cat(a, RT_STR("."));
        arg_cat(a, suffix);
    }
}

static void args_finish(args_t *a)
{
    for (int i = 0; i < a->n; i++) {
        a->argv[i] = (const char *)a->buf.p + a->off[i];
        a->argvlen[i] = a->len[i];
    }
}

static void args_cleanup(args_t *a)
{
    rt_buf_cleanup(&a->buf);
}

static uint64_t ms_to_s(int64_t ms)
{
    return ms <= 0 ? 0 : (uint64_t)((ms + 999) / 1000);
}

/* ---- reply helpers ---- */

static bool reply_u64(const redisReply *r, uint64_t *out)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        if (r->integer < 0)
            return false;
        *out = (uint64_t)r->integer;
        return true;
    }
    if (r->type == REDIS_REPLY_NIL) {
        *out = 0;
        return true;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < r->len; i++) {
        char c = r->str[i];
        if (c < '0' || c > '9' || v > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(c - '0');
    }
    *out = v;
    return true;
}

static bool reply_str(const redisReply *r, rt_str_t *out)
{
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)
        return false;
    *out = rt_str_from(r->str, r->len);
    return true;
}

static bool reply_is(const redisReply *r, const char *s)
{
    rt_str_t v;
    return reply_str(r, &v) && rt_str_eq_c(v, s);
}

static int log_reply_status(const char *what, int status, const redisReply *r)
{
    if (status == RT_EREDIS && r != NULL)
        RT_LOG_WARN("redis %s failed: %.*s", what, (int)r->len, r->str);
    else if (status != 0 && status != RT_ECANCELED)
        RT_LOG_DEBUG("redis %s failed: %s", what, rt_strerror(status));
    return status;
}

/* ---- publish ---- */

enum publish_kind { PUBLISH_PLAIN, PUBLISH_IDEMPOTENT, PUBLISH_STREAM };

/* Heap context of one publish, freed by its reply callback. */
typedef struct publish_ctx {
    enum publish_kind kind;
    shard_t *sh;          /* borrowed: the shard written to (outlives every reply) */
    broker_publish_cb cb; /* may be NULL */
    void *ud;             /* borrowed, handed back to cb */
} publish_ctx_t;

int broker_redis__decode_publish(const redisReply *r, broker_pos_t *pos, bool *suppressed)
{
    *pos = zero_pos;
    *suppressed = false;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 4 ||
        !reply_u64(r->element[0], &pos->offset) || !reply_str(r->element[1], &pos->epoch)) {
        *pos = zero_pos;
        return RT_EREDIS;
    }
    *suppressed = reply_is(r->element[2], "1") || reply_is(r->element[3], "1");
    return 0;
}

static void on_publish_reply(int status, const redisReply *r, void *ud)
{
    publish_ctx_t *ctx = ud;
    broker_publish_cb cb = ctx->cb;
    void *cb_ud = ctx->ud;
    enum publish_kind kind = ctx->kind;
    shard_t *sh = ctx->sh;
    rt_free(ctx);
    if (status == RT_EREDIS && r != NULL && r->type == REDIS_REPLY_ERROR && r->len >= 8 &&
        memcmp(r->str, "READONLY", 8) == 0) {
        if (!sh->read_only)
            RT_LOG_WARN("%s: publishes fail until it is writable again", sh->ro_reason);
        sh->read_only = true; /* ready() false until ROLE says master (on_ps_watch) */
    } else if (status == 0) {
        sh->read_only = false;
    }

    broker_pos_t pos = zero_pos;
    bool suppressed = false;
    if (status == 0 && kind == PUBLISH_IDEMPOTENT) {
        if (r->type == REDIS_REPLY_INTEGER)
            suppressed = r->integer == 1;
        else
            status = RT_EREDIS;
    } else if (status == 0 && kind == PUBLISH_STREAM) {
        status = broker_redis__decode_publish(r, &pos, &suppressed);
        if (status != 0)
            RT_LOG_WARN("redis publish: unexpected script reply");
    }
    log_reply_status("publish", status, r);
    if (cb != NULL)
        cb(status, status == 0 ? &pos : &zero_pos, status == 0 && suppressed, cb_ud);
}

static int redis_publish(broker_t *base, const broker_publish_req_t *req, broker_publish_cb cb,
                         void *ud)
{
    broker_redis_t *b = from_base(base);
    const broker_publish_opts_t *o = &req->opts;
    rt_str_t channel = req->fields.channel;

    if (b->closing)
        return RT_ECLOSED;
    if (channel.n == 0)
        return RT_EINVAL;
    shard_t *sh = shard_for(b, channel);

    broker_pub_fields_t f = req->fields;
    f.time_ms = rt_time_ms();
    f.offset = 0;
    f.epoch = RT_STR_NULL;
    rt_buf_t pub = RT_BUF_INIT;
    broker_pc_encode_pub(&pub, &f);

    publish_ctx_t *ctx = RT_NEW(publish_ctx_t);
    ctx->cb = cb;
    ctx->ud = ud;
    ctx->sh = sh;
    args_t a;
    args_init(&a);
    int rc;
    bool history = o->history_size > 0 && o->history_ttl_ms > 0;
    if (history) {
        char epoch[EPOCH_LEN + 1];
        rt_random_letters(epoch, EPOCH_LEN);
        ctx->kind = PUBLISH_STREAM;
        arg_key(&a, b, sh, ".stream.", channel, RT_STR_NULL);
        arg_key(&a, b, sh, ".stream.meta.", channel, RT_STR_NULL);
        /* Without a key the script never touches the result key. */
        arg_key(&a, b, sh, ".result.", channel,
                o->idempotency_key.n > 0 ? o->idempotency_key : RT_STR_NULL);
        arg(&a, rt_buf_str(&pub));
        arg_u64(&a, (uint64_t)o->history_size);
        arg_u64(&a, ms_to_s(o->history_ttl_ms));
        arg_key(&a, b, sh, ".client.", channel, RT_STR_NULL);
        arg_u64(&a, ms_to_s(o->history_meta_ttl_ms));
        arg(&a, rt_str_c(epoch));
        arg(&a, sh->sharded ? RT_STR("spublish") : RT_STR("publish"));
        arg(&a, o->idempotency_key.n > 0 ? RT_STR(IDEM_TTL_S) : RT_STR(""));
        /* Delta delivery is not negotiated yet: the flag travels inside the publication
         * (field 8) and the script sends the plain __p1 form. */
        arg(&a, RT_STR(""));
        arg_u64(&a, o->version);
        arg(&a, o->version_epoch);
        args_finish(&a);
        rc = rds_router_eval(sh->cmd, &b->publish_stream, 3, a.n, a.argv, a.argvlen,
                             on_publish_reply, ctx);
    } else if (o->idempotency_key.n > 0) {
        ctx->kind = PUBLISH_IDEMPOTENT;
        arg_key(&a, b, sh, ".result.", channel, o->idempotency_key);
        arg_key(&a, b, sh, ".client.", channel, RT_STR_NULL);
        arg(&a, rt_buf_str(&pub));
        arg(&a, RT_STR(IDEM_TTL_S));
        arg(&a, sh->sharded ? RT_STR("spublish") : RT_STR("publish"));
        args_finish(&a);
        rc = rds_router_eval(sh->cmd, &b->publish_idempotent, 1, a.n, a.argv, a.argvlen,
                             on_publish_reply, ctx);
    } else {
        ctx->kind = PUBLISH_PLAIN;
        arg(&a, sh->sharded ? RT_STR("SPUBLISH") : RT_STR("PUBLISH"));
        arg_key(&a, b, sh, ".client.", channel, RT_STR_NULL);
        arg(&a, rt_buf_str(&pub));
        args_finish(&a);
        rc = rds_router_command(sh->cmd, rt_str_from(a.argv[1], a.argvlen[1]), on_publish_reply,
                                ctx, a.n, a.argv, a.argvlen);
    }
    args_cleanup(&a);
    rt_buf_cleanup(&pub);
    if (rc != 0)
        rt_free(ctx);
    return rc;
}

/* ---- fire-and-forget commands ---- */

static void on_fire_reply(int status, const redisReply *r, void *ud)
{
    log_reply_status(ud, status, r);
}

static int join_leave(broker_t *base, bool join, rt_str_t channel, const rt_client_info_t *info)
{
    broker_redis_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || info == NULL)
        return RT_EINVAL;
    shard_t *sh = shard_for(b, channel);
    rt_buf_t msg = RT_BUF_INIT;
    if (join)
        broker_pc_encode_join(&msg, info);
    else
        broker_pc_encode_leave(&msg, info);
    args_t a;
    args_init(&a);
    arg(&a, sh->sharded ? RT_STR("SPUBLISH") : RT_STR("PUBLISH"));
    arg_key(&a, b, sh, ".client.", channel, RT_STR_NULL);
    arg(&a, rt_buf_str(&msg));
    args_finish(&a);
    int rc = rds_router_command(sh->cmd, rt_str_from(a.argv[1], a.argvlen[1]), on_fire_reply,
                                join ? "join publish" : "leave publish", a.n, a.argv, a.argvlen);
    args_cleanup(&a);
    rt_buf_cleanup(&msg);
    return rc;
}

static int redis_publish_join(broker_t *base, rt_str_t channel, const rt_client_info_t *info)
{
    return join_leave(base, true, channel, info);
}

static int redis_publish_leave(broker_t *base, rt_str_t channel, const rt_client_info_t *info)
{
    return join_leave(base, false, channel, info);
}

static int redis_control_publish(broker_t *base, rt_str_t target_uid, rt_str_t data)
{
    broker_redis_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    args_t a;
    args_init(&a);
    arg(&a, RT_STR("PUBLISH"));
    arg_new(&a);
    arg_cat(&a, rt_str_c(b->prefix));
    if (target_uid.n == 0) {
        arg_cat(&a, RT_STR(".control"));
    } else {
        arg_cat(&a, RT_STR(".node."));
        arg_cat(&a, target_uid);
    }
    arg(&a, data);
    args_finish(&a);
    /* Every node listens on every shard, so any shard that is up will do; rotating spreads
     * the heartbeat and survey load. */
    int rc = RT_ECLOSED;
    for (size_t i = 0; i < b->nshards && rc == RT_ECLOSED; i++) {
        shard_t *sh = &b->shards[b->control_rr++ % b->nshards];
        if (rds_router_ready(sh->cmd))
            rc = rds_router_command(sh->cmd, rt_str_from(a.argv[1], a.argvlen[1]), on_fire_reply,
                                    "control publish", a.n, a.argv, a.argvlen);
    }
    args_cleanup(&a);
    return rc;
}

/* ---- history ---- */

typedef struct history_ctx {
    broker_redis_t *b;    /* borrowed; valid until the callback (destroy cancels first) */
    broker_history_cb cb; /* may be NULL */
    void *ud;             /* borrowed, handed back to cb */
    size_t channel_n;
    char channel[]; /* NUL-terminated copy: the publications name their channel */
} history_ctx_t;

/* One stream entry [id, [field, value, ...]] -> offset and the value of field d. */
static bool parse_entry(const redisReply *e, uint64_t *offset, rt_str_t *payload)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    const redisReply *id = e->element[0];
    uint64_t v = 0;
    size_t i = 0;
    for (; i < id->len && id->str[i] != '-'; i++) {
        char c = id->str[i];
        if (c < '0' || c > '9' || v > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(c - '0');
    }
    if (i == 0)
        return false;
    const redisReply *kv = e->element[1];
    for (size_t k = 0; k + 1 < kv->elements; k += 2) {
        if (reply_is(kv->element[k], "d") && kv->element[k + 1]->type == REDIS_REPLY_STRING) {
            *offset = v;
            *payload = rt_str_from(kv->element[k + 1]->str, kv->element[k + 1]->len);
            return true;
        }
    }
    return false;
}

int broker_redis__decode_history(const redisReply *r, rt_str_t channel, broker_pos_t *top,
                                 broker_pub_t ***pubs_out, size_t *n_out, uint64_t *malformed)
{
    broker_pub_t **pubs = NULL;
    size_t n = 0;
    *top = zero_pos;
    *pubs_out = NULL;
    *n_out = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        !reply_u64(r->element[0], &top->offset) || !reply_str(r->element[1], &top->epoch) ||
        (r->elements > 2 && r->element[2]->type != REDIS_REPLY_ARRAY &&
         r->element[2]->type != REDIS_REPLY_NIL)) {
        *top = zero_pos;
        return RT_EREDIS;
    }
    if (r->elements > 2 && r->element[2]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = r->element[2];
        if (entries->elements > 0)
            pubs = rt_malloc(entries->elements * sizeof(*pubs));
        for (size_t i = 0; i < entries->elements; i++) {
            uint64_t offset;
            rt_str_t payload;
            broker_pc_pub_t p;
            if (!parse_entry(entries->element[i], &offset, &payload) ||
                broker_pc_decode_pub(payload, &p) != 0) {
                /* Skipping leaves a hole the node sees as an unrecoverable position. */
                (*malformed)++;
                RT_LOG_DEBUG("redis history: malformed entry dropped channel=" RT_STR_FMT,
                             RT_STR_ARG(channel));
                continue;
            }
            p.fields.channel = channel;
            p.fields.offset = offset;
            p.fields.epoch = top->epoch;
            pubs[n++] = broker_pub_new(&p.fields);
            broker_pc_pub_cleanup(&p);
        }
    }
    *pubs_out = pubs;
    *n_out = n;
    return 0;
}

static void on_history_reply(int status, const redisReply *r, void *ud)
{
    history_ctx_t *ctx = ud;
    broker_pos_t top = zero_pos;
    broker_pub_t **pubs = NULL;
    size_t n = 0;

    if (status == 0) {
        status = broker_redis__decode_history(r, rt_str_from(ctx->channel, ctx->channel_n), &top,
                                              &pubs, &n, &ctx->b->stats.malformed);
        if (status != 0)
            RT_LOG_WARN("redis history: unexpected script reply");
    }
    log_reply_status("history", status, r);
    if (ctx->cb != NULL) {
        if (status == 0)
            ctx->cb(0, pubs, n, &top, ctx->ud);
        else
            ctx->cb(status, NULL, 0, &zero_pos, ctx->ud);
    }
    for (size_t i = 0; i < n; i++)
        broker_pub_unref(pubs[i]);
    rt_free(pubs);
    rt_free(ctx);
}

static int redis_history(broker_t *base, const broker_history_req_t *req, broker_history_cb cb,
                         void *ud)
{
    broker_redis_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    if (req->channel.n == 0)
        return RT_EINVAL;

    /* Node-side mapping of the filter (SERVER.md §3.6). */
    bool include = req->limit != 0;
    uint64_t start = 0; /* reverse: 0 = from the top */
    if (req->has_since && !req->reverse) {
        if (req->since_offset == UINT64_MAX)
            include = false;
        else
            start = req->since_offset + 1;
    } else if (req->has_since && req->reverse) {
        if (req->since_offset <= 1)
            include = false; /* nothing below offset 1 */
        else
            start = req->since_offset - 1;
    }

    char epoch[EPOCH_LEN + 1];
    rt_random_letters(epoch, EPOCH_LEN);
    shard_t *sh = shard_for(b, req->channel);
    args_t a;
    args_init(&a);
    arg_key(&a, b, sh, ".stream.", req->channel, RT_STR_NULL);
    arg_key(&a, b, sh, ".stream.meta.", req->channel, RT_STR_NULL);
    arg(&a, include ? RT_STR("1") : RT_STR("0"));
    arg_u64(&a, start);
    arg_u64(&a, req->limit > 0 ? (uint64_t)req->limit : 0);
    arg(&a, req->reverse ? RT_STR("1") : RT_STR("0"));
    arg_u64(&a, ms_to_s(req->history_meta_ttl_ms));
    arg(&a, rt_str_c(epoch));
    arg_u64(&a, req->history_size > 0 ? (uint64_t)req->history_size : 0);
    args_finish(&a);

    history_ctx_t *ctx = rt_malloc(sizeof(*ctx) + req->channel.n + 1);
    ctx->b = b;
    ctx->cb = cb;
    ctx->ud = ud;
    ctx->channel_n = req->channel.n;
    memcpy(ctx->channel, req->channel.p, req->channel.n);
    ctx->channel[req->channel.n] = '\0';
    int rc = rds_router_eval(sh->cmd, &b->history_stream, 2, a.n, a.argv, a.argvlen,
                             on_history_reply, ctx);
    args_cleanup(&a);
    if (rc != 0)
        rt_free(ctx);
    return rc;
}

typedef struct done_ctx {
    broker_done_cb cb; /* may be NULL */
    void *ud;          /* borrowed, handed back to cb */
} done_ctx_t;

static void on_done_reply(int status, const redisReply *r, void *ud)
{
    done_ctx_t *ctx = ud;
    broker_done_cb cb = ctx->cb;
    void *cb_ud = ctx->ud;
    rt_free(ctx);
    log_reply_status("history remove", status, r);
    if (cb != NULL)
        cb(status, cb_ud);
}

static int redis_history_remove(broker_t *base, rt_str_t channel, broker_done_cb cb, void *ud)
{
    broker_redis_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    if (channel.n == 0)
        return RT_EINVAL;
    shard_t *sh = shard_for(b, channel);
    args_t a;
    args_init(&a);
    /* The meta stays: epoch and top survive, positioned clients are not disrupted. */
    arg(&a, RT_STR("DEL"));
    arg_key(&a, b, sh, ".stream.", channel, RT_STR_NULL);
    args_finish(&a);
    done_ctx_t *ctx = RT_NEW(done_ctx_t);
    ctx->cb = cb;
    ctx->ud = ud;
    int rc = rds_router_command(sh->cmd, rt_str_from(a.argv[1], a.argvlen[1]), on_done_reply, ctx,
                                a.n, a.argv, a.argvlen);
    args_cleanup(&a);
    if (rc != 0)
        rt_free(ctx);
    return rc;
}

/* ---- subscriptions ---- */

static sub_chan_t *sub_find(broker_redis_t *b, rt_str_t channel)
{
    rt_table_node_t *n = rt_table_find(&b->subs, channel);
    return n ? RT_TABLE_ENTRY(n, sub_chan_t, node) : NULL;
}

static char *pubsub_name(const broker_redis_t *b, const shard_t *sh, rt_str_t channel, size_t *n)
{
    rt_buf_t s = RT_BUF_INIT;
    rt_buf_append_cstr(&s, b->prefix);
    rt_buf_append_cstr(&s, ".client.");
    if (sh->cluster)
        rt_buf_append_byte(&s, '{');
    rt_buf_append_str(&s, channel);
    if (sh->cluster)
        rt_buf_append_byte(&s, '}');
    rt_buf_append_byte(&s, '\0');
    *n = s.len - 1;
    return (char *)s.p;
}

/* The channel inside a PUB/SUB name of sh ("P.client.C", "P.client.{C}" on a cluster).
 * False for other names (control, service channels, probes). */
static bool client_channel(const broker_redis_t *b, const shard_t *sh, rt_str_t ps_channel,
                           rt_str_t *out)
{
    size_t pn = strlen(b->prefix);
    if (ps_channel.n <= pn + 8 || memcmp(ps_channel.p, b->prefix, pn) != 0 ||
        memcmp(ps_channel.p + pn, ".client.", 8) != 0)
        return false;
    rt_str_t channel = rt_str_from(ps_channel.p + pn + 8, ps_channel.n - pn - 8);
    if (sh->cluster) {
        if (channel.n < 3 || channel.p[0] != '{' || channel.p[channel.n - 1] != '}')
            return false;
        channel = rt_str_from(channel.p + 1, channel.n - 2);
    }
    *out = channel;
    return true;
}

/* ---- sharded PUB/SUB connections ---- */

static void on_pubsub_message(void *ud, rt_str_t ps_channel, rt_str_t payload);

static void resubscribed(broker_redis_t *b)
{
    b->stats.resubscribes++;
    if (b->base.sink.on_resubscribed != NULL)
        b->base.sink.on_resubscribed(b->base.sink.ud);
}

static void on_sps_message(void *ud, rt_str_t ps_channel, rt_str_t payload)
{
    sps_t *s = ud;
    on_pubsub_message(s->sh, ps_channel, payload);
}

static void on_sps_state(void *ud, bool up)
{
    sps_t *s = ud;
    broker_redis_t *b = s->sh->b;
    if (b->closing)
        return;
    if (!up) {
        RT_LOG_INFO("redis sharded pubsub down shard=%zu node=%s", s->sh->index, s->node);
        return;
    }
    bool again = s->was_up;
    s->was_up = true;
    if (again) {
        RT_LOG_INFO("redis sharded pubsub resubscribed shard=%zu node=%s", s->sh->index, s->node);
        resubscribed(b);
    }
}

/* The slot moved: the next reroute pass subscribes the channel where the refreshed table
 * says it lives now. */
static void on_sps_lost(void *ud, rt_str_t ps_channel)
{
    sps_t *s = ud;
    shard_t *sh = s->sh;
    broker_redis_t *b = sh->b;
    rt_str_t channel;
    if (b->closing || !client_channel(b, sh, ps_channel, &channel))
        return;
    sub_chan_t *sub = sub_find(b, channel);
    if (sub == NULL || sub->at != s)
        return;
    sub->at = NULL;
    RT_LOG_INFO("redis sharded channel dropped by its node shard=%zu node=%s channel=" RT_STR_FMT,
                sh->index, s->node, RT_STR_ARG(channel));
    rds_router_refresh(sh->cmd);
}

static sps_t *sps_find(shard_t *sh, const char *node)
{
    for (sps_t *s = sh->sps; s != NULL; s = s->next) {
        if (strcmp(s->node, node) == 0)
            return s;
    }
    return NULL;
}

/* The connection to master a, created on first use. */
static sps_t *sps_get(shard_t *sh, const rds_addr_t *a)
{
    sps_t *s = sps_find(sh, rds_addr_name(a));
    if (s != NULL)
        return s;
    s = RT_NEW(sps_t);
    s->sh = sh;
    s->node = rt_strdup(rds_addr_name(a));
    rds_pubsub_handler_t h = {.on_message = on_sps_message, .on_state = on_sps_state, .ud = s};
    s->ps = rds_pubsub_new_sharded(sh->b->loop, a, &h, PROBE_INTERVAL_MS, on_sps_lost);
    s->next = sh->sps;
    sh->sps = s;
    RT_LOG_DEBUG("redis sharded pubsub created shard=%zu node=%s", sh->index, s->node);
    return s;
}

/* The connection for PUB/SUB name ps_name by the current slot table; NULL while the table
 * does not know the slot's master. */
static sps_t *sps_for(shard_t *sh, rt_str_t ps_name)
{
    rds_addr_t a;
    if (rds_router_slot_addr(sh->cmd, ps_name, &a) != 0)
        return NULL;
    sps_t *s = sps_get(sh, &a);
    rds_addr_cleanup(&a);
    return s;
}

static void sps_ensure_all(shard_t *sh)
{
    size_t n = rds_router_master_count(sh->cmd);
    for (size_t i = 0; i < n; i++) {
        rds_addr_t a;
        rds_router_master_addr(sh->cmd, i, &a);
        (void)sps_get(sh, &a);
        rds_addr_cleanup(&a);
    }
}

/* Every current master has its connection up. */
static bool sps_ready_all(shard_t *sh)
{
    size_t n = rds_router_master_count(sh->cmd);
    bool ok = n > 0;
    for (size_t i = 0; i < n && ok; i++) {
        rds_addr_t a;
        rds_router_master_addr(sh->cmd, i, &a);
        sps_t *s = sps_find(sh, rds_addr_name(&a));
        ok = s != NULL && rds_pubsub_ready(s->ps);
        rds_addr_cleanup(&a);
    }
    return ok;
}

static void on_reroute_confirmed(int status, void *ud)
{
    broker_redis_t *b = ud;
    if (status == 0 && !b->closing)
        resubscribed(b);
}

/* Moves every subscribed channel of sh whose slot is now owned by another master (or that
 * its node dropped) to that master's connection. */
static void sps_reroute(shard_t *sh)
{
    broker_redis_t *b = sh->b;
    size_t moved = 0;
    rt_table_iter_t it;
    rt_table_iter_init(&it, &b->subs);
    for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;) {
        if (shard_for(b, n->key) != sh)
            continue;
        sub_chan_t *sub = RT_TABLE_ENTRY(n, sub_chan_t, node);
        size_t len;
        char *name = pubsub_name(b, sh, n->key, &len);
        sps_t *to = sps_for(sh, rt_str_from(name, len));
        if (to != NULL && to != sub->at) {
            if (sub->at != NULL)
                (void)rds_pubsub_unsubscribe(sub->at->ps, rt_str_from(name, len));
            int rc = rds_pubsub_subscribe(to->ps, rt_str_from(name, len));
            if (rc != 0 && rc != RT_ECLOSED)
                RT_LOG_ERROR("redis sharded resubscribe failed shard=%zu: %s", sh->index,
                             rt_strerror(rc));
            sub->at = to;
            to->touched = true;
            moved++;
        }
        rt_free(name);
    }
    if (moved == 0)
        return;
    RT_LOG_INFO("redis sharded channels moved to their new masters shard=%zu channels=%zu",
                sh->index, moved);
    for (sps_t *s = sh->sps; s != NULL; s = s->next) {
        if (!s->touched)
            continue;
        s->touched = false;
        /* A connection that is down reports the resubscribe when it comes up. */
        s->was_up = true;
        (void)rds_pubsub_barrier(s->ps, on_reroute_confirmed, b);
    }
}

static void sps_free_all(shard_t *sh)
{
    while (sh->sps != NULL) {
        sps_t *s = sh->sps;
        sh->sps = s->next;
        rds_pubsub_free(s->ps);
        rt_free(s->node);
        rt_free(s);
    }
}

static int subscribe_sharded(broker_redis_t *b, shard_t *sh, rt_str_t channel)
{
    size_t n;
    char *name = pubsub_name(b, sh, channel, &n);
    sps_t *s = sps_for(sh, rt_str_from(name, n));
    int rc = RT_ECLOSED;
    if (s != NULL && rds_pubsub_ready(s->ps)) {
        rc = rds_pubsub_subscribe(s->ps, rt_str_from(name, n));
        if (rc != 0)
            (void)rds_pubsub_unsubscribe(s->ps, rt_str_from(name, n));
    }
    rt_free(name);
    if (rc != 0)
        return rc;
    sub_chan_t *sub = rt_calloc(1, sizeof(*sub) + channel.n + 1);
    memcpy(sub->name, channel.p, channel.n);
    sub->node.key = rt_str_from(sub->name, channel.n);
    sub->at = s;
    rt_table_insert(&b->subs, &sub->node);
    return 0;
}

static int redis_subscribe(broker_t *base, rt_str_t channel)
{
    broker_redis_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    if (channel.n == 0)
        return RT_EINVAL;
    if (sub_find(b, channel) != NULL)
        return 0;
    shard_t *sh = shard_for(b, channel);
    if (sh->sharded)
        return subscribe_sharded(b, sh, channel);
    /* While reconnecting the subscribe fails at once (the client gets 3004 and retries)
     * rather than being remembered: the node must not believe it is subscribed. */
    if (!rds_pubsub_ready(sh->ps))
        return RT_ECLOSED;
    size_t n;
    char *name = pubsub_name(b, sh, channel, &n);
    int rc = rds_pubsub_subscribe(sh->ps, rt_str_from(name, n));
    if (rc != 0)
        (void)rds_pubsub_unsubscribe(sh->ps, rt_str_from(name, n)); /* forget it again */
    rt_free(name);
    if (rc != 0)
        return rc;
    sub_chan_t *s = rt_calloc(1, sizeof(*s) + channel.n + 1);
    memcpy(s->name, channel.p, channel.n);
    s->node.key = rt_str_from(s->name, channel.n);
    rt_table_insert(&b->subs, &s->node);
    return 0;
}

static int redis_subscribed_wait(broker_t *base, rt_str_t channel, broker_done_cb cb, void *ud)
{
    broker_redis_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    shard_t *sh = shard_for(b, channel);
    if (sh->sharded) {
        sub_chan_t *sub = sub_find(b, channel);
        if (sub != NULL && sub->at != NULL)
            return rds_pubsub_barrier(sub->at->ps, cb, ud);
        if (sub != NULL)
            return RT_ECLOSED; /* lost with its slot, not subscribed anywhere yet */
    }
    return rds_pubsub_barrier(sh->ps, cb, ud);
}

static int redis_unsubscribe(broker_t *base, rt_str_t channel)
{
    broker_redis_t *b = from_base(base);
    if (b->closing)
        return RT_ECLOSED;
    sub_chan_t *s = sub_find(b, channel);
    if (s == NULL)
        return 0;
    shard_t *sh = shard_for(b, channel);
    size_t n;
    char *name = pubsub_name(b, sh, channel, &n);
    int rc = 0;
    if (!sh->sharded)
        rc = rds_pubsub_unsubscribe(sh->ps, rt_str_from(name, n));
    else if (s->at != NULL)
        rc = rds_pubsub_unsubscribe(s->at->ps, rt_str_from(name, n));
    rt_free(name);
    /* While down the set forgets the channel, which is all that is needed: it is not
     * resubscribed. Any other failure keeps it so the node's retry reaches Redis. */
    if (rc != 0 && rc != RT_ECLOSED)
        return rc;
    rt_table_remove(&b->subs, &s->node);
    rt_free(s);
    return 0;
}

/* ---- PUB/SUB dispatch ---- */

static void deliver(broker_redis_t *b, rt_str_t channel, rt_str_t payload)
{
    const broker_sink_t *sink = &b->base.sink;
    broker_pc_msg_t m;
    if (broker_pc_decode_msg(payload, &m) != 0) {
        b->stats.malformed++;
        RT_LOG_DEBUG("redis pubsub: malformed message dropped channel=" RT_STR_FMT " bytes=%zu",
                     RT_STR_ARG(channel), payload.n);
        return;
    }
    switch (m.kind) {
    case BROKER_PC_PUBLICATION: {
        m.pub.fields.channel = channel;
        broker_pub_t *pub = broker_pub_new(&m.pub.fields);
        broker_pc_msg_cleanup(&m);
        if (sink->on_publication != NULL)
            sink->on_publication(sink->ud, pub);
        broker_pub_unref(pub);
        return;
    }
    case BROKER_PC_JOIN:
        if (sink->on_join != NULL)
            sink->on_join(sink->ud, channel, &m.info);
        break;
    case BROKER_PC_LEAVE:
        if (sink->on_leave != NULL)
            sink->on_leave(sink->ud, channel, &m.info);
        break;
    }
    broker_pc_msg_cleanup(&m);
}

static void on_pubsub_message(void *ud, rt_str_t ps_channel, rt_str_t payload)
{
    shard_t *sh = ud;
    broker_redis_t *b = sh->b;
    if (b->closing)
        return;
    if (rt_str_eq_c(ps_channel, b->control_ch) || rt_str_eq_c(ps_channel, b->node_ch)) {
        if (b->base.sink.on_control != NULL)
            b->base.sink.on_control(b->base.sink.ud, payload);
        return;
    }
    rt_str_t channel;
    if (!client_channel(b, sh, ps_channel, &channel))
        return; /* service channels, probes, names this broker does not subscribe to */
    if (sub_find(b, channel) == NULL) {
        b->stats.unsubscribed++;
        return; /* arrived after the unsubscribe */
    }
    deliver(b, channel, payload);
}

static void on_pubsub_state(void *ud, bool up)
{
    shard_t *sh = ud;
    broker_redis_t *b = sh->b;
    if (b->closing)
        return;
    if (!up) {
        RT_LOG_INFO("redis pubsub down shard=%zu reason=\"%s\"", sh->index, sh->reason);
        return;
    }
    bool again = sh->ps_was_up;
    sh->ps_was_up = true;
    if (again) {
        RT_LOG_INFO("redis pubsub resubscribed shard=%zu", sh->index);
        resubscribed(b);
    }
}

/* Starts sh's PUB/SUB connection to addr with every channel the shard carries: the
 * control channels, and the subscribed channels after a move to another cluster node. Down
 * at start is the normal case: the set remembers them and subscribes them once up. */
static void ps_start(shard_t *sh, const rds_addr_t *addr)
{
    broker_redis_t *b = sh->b;
    rds_pubsub_handler_t h = {
        .on_message = on_pubsub_message, .on_state = on_pubsub_state, .ud = sh};
    sh->ps = rds_pubsub_new(b->loop, addr, &h, PROBE_INTERVAL_MS);
    int rc = rds_pubsub_subscribe(sh->ps, rt_str_c(b->control_ch));
    if (rc == 0 || rc == RT_ECLOSED)
        rc = rds_pubsub_subscribe(sh->ps, rt_str_c(b->node_ch));
    if (rc != 0 && rc != RT_ECLOSED)
        RT_LOG_ERROR("redis control subscribe failed shard=%zu: %s", sh->index, rt_strerror(rc));
    if (sh->sharded)
        return; /* the channels live on the shard's sharded connections */
    rt_table_iter_t it;
    rt_table_iter_init(&it, &b->subs);
    for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;) {
        if (shard_for(b, n->key) != sh)
            continue;
        size_t len;
        char *name = pubsub_name(b, sh, n->key, &len);
        rc = rds_pubsub_subscribe(sh->ps, rt_str_from(name, len));
        if (rc != 0 && rc != RT_ECLOSED)
            RT_LOG_ERROR("redis resubscribe failed shard=%zu: %s", sh->index, rt_strerror(rc));
        rt_free(name);
    }
}

/* A cluster shard's PUB/SUB connection that stays down moves to the next known node: any
 * node hears every classic PUBLISH, and its own reconnects would keep trying a node that
 * may be gone for good. */
static void on_role_reply(int status, const redisReply *r, void *ud)
{
    shard_t *sh = ud;
    if (status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        reply_is(r->element[0], "master") && sh->read_only) {
        RT_LOG_INFO("redis shard=%zu writable again", sh->index);
        sh->read_only = false;
    }
}

static void on_ps_watch(struct ev_loop *loop, ev_timer *w, int revents)
{
    broker_redis_t *b = w->data;
    for (size_t i = 0; i < b->nshards; i++) {
        shard_t *sh = &b->shards[i];
        if (sh->read_only) {
            /* Writable again once the server says it is a master. */
            const char *argv[] = {"ROLE"};
            const size_t lens[] = {4};
            (void)rds_router_command(sh->cmd, RT_STR_NULL, on_role_reply, sh, 1, argv, lens);
        }
        if (sh->sharded) {
            sps_ensure_all(sh);
            sps_reroute(sh);
        }
        if (!sh->cluster)
            continue;
        if (rds_pubsub_ready(sh->ps)) {
            sh->ps_down_ticks = 0;
            continue;
        }
        if (++sh->ps_down_ticks < PS_DOWN_TICKS)
            continue;
        sh->ps_down_ticks = 0;
        sh->ps_attempt++;
        rds_addr_t a;
        rds_router_pubsub_addr(sh->cmd, sh->ps_attempt, &a);
        RT_LOG_INFO("redis pubsub moving to another cluster node shard=%zu node=%s", sh->index,
                    rds_addr_name(&a));
        rds_pubsub_free(sh->ps);
        ps_start(sh, &a);
        rds_addr_cleanup(&a);
    }
}

/* ---- lifecycle ---- */

static bool redis_ready(broker_t *base, const char **reason)
{
    broker_redis_t *b = from_base(base);
    for (size_t i = 0; i < b->nshards; i++) {
        shard_t *sh = &b->shards[i];
        if (!rds_router_ready(sh->cmd) || !rds_pubsub_ready(sh->ps) ||
            (sh->sharded && !sps_ready_all(sh))) {
            if (reason != NULL)
                *reason = sh->reason;
            return false;
        }
        if (sh->read_only) {
            if (reason != NULL)
                *reason = sh->ro_reason;
            return false;
        }
    }
    if (reason != NULL)
        *reason = NULL;
    return true;
}

static void redis_destroy(broker_t *base)
{
    broker_redis_t *b = from_base(base);
    if (b->closing)
        return; /* called again from a cancellation callback */
    b->closing = true;
    ev_timer_stop(b->loop, &b->ps_watch);
    /* Pending callbacks run with RT_ECANCELED inside these frees and see a broker that
     * refuses new work. */
    for (size_t i = 0; i < b->nshards; i++) {
        sps_free_all(&b->shards[i]);
        rds_pubsub_free(b->shards[i].ps);
        rds_router_free(b->shards[i].cmd);
    }
    for (size_t i = 0; i < b->nshards; i++) {
        rt_free(b->shards[i].reason);
        rt_free(b->shards[i].ro_reason);
    }
    rt_free(b->shards);

    rt_table_iter_t it;
    rt_table_iter_init(&it, &b->subs);
    for (rt_table_node_t *n; (n = rt_table_iter_next(&it)) != NULL;) {
        rt_table_remove(&b->subs, n);
        rt_free(RT_TABLE_ENTRY(n, sub_chan_t, node));
    }
    rt_table_cleanup(&b->subs);
    rt_free(b->prefix);
    rt_free(b->control_ch);
    rt_free(b->node_ch);
    rt_free(b);
}

static const broker_vtbl_t redis_vtbl = {
    .subscribe = redis_subscribe,
    .unsubscribe = redis_unsubscribe,
    .subscribed_wait = redis_subscribed_wait,
    .publish = redis_publish,
    .publish_join = redis_publish_join,
    .publish_leave = redis_publish_leave,
    .history = redis_history,
    .history_remove = redis_history_remove,
    .control_publish = redis_control_publish,
    .ready = redis_ready,
    .destroy = redis_destroy,
};

static char *concat(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = rt_malloc(na + nb + 1);
    memcpy(s, a, na);
    memcpy(s + na, b, nb + 1);
    return s;
}

broker_t *broker_redis_new(struct ev_loop *loop, const broker_sink_t *sink,
                           const broker_redis_opts_t *opts)
{
    RT_ASSERT(opts->nshards > 0 && opts->shards != NULL);
    broker_redis_t *b = RT_NEW(broker_redis_t);
    b->base.vt = &redis_vtbl;
    if (sink != NULL)
        b->base.sink = *sink;
    b->loop = loop;
    b->prefix = rt_strdup(opts->prefix != NULL && opts->prefix[0] ? opts->prefix : "rotor");
    b->control_ch = concat(b->prefix, ".control");
    char *node_prefix = concat(b->prefix, ".node.");
    b->node_ch = concat(node_prefix, opts->node_uid != NULL ? opts->node_uid : "");
    rt_free(node_prefix);
    rt_table_init(&b->subs);
    rds_script_init(&b->publish_stream, "publish_stream", broker_publish_stream);
    rds_script_init(&b->publish_idempotent, "publish_idempotent", broker_publish_idempotent);
    rds_script_init(&b->history_stream, "history_stream", broker_history_stream);

    b->nshards = opts->nshards;
    b->shards = rt_calloc(b->nshards, sizeof(*b->shards));
    for (size_t i = 0; i < b->nshards; i++) {
        shard_t *sh = &b->shards[i];
        sh->b = b;
        sh->index = i;
        rt_buf_t reason = RT_BUF_INIT;
        rt_buf_printf(&reason, "redis %s unavailable", rds_addr_name(&opts->shards[i]));
        rt_buf_append_byte(&reason, '\0');
        sh->reason = (char *)reason.p;
        rt_buf_t ro = RT_BUF_INIT;
        rt_buf_printf(&ro, "redis %s is read-only", rds_addr_name(&opts->shards[i]));
        rt_buf_append_byte(&ro, '\0');
        sh->ro_reason = (char *)ro.p;

        rds_client_opts_t co;
        rds_client_opts_default(&co);
        sh->cmd = rds_router_new(loop, &opts->shards[i], &co);
        sh->cluster = rds_router_is_cluster(sh->cmd);
        sh->sharded = sh->cluster && opts->sharded_pubsub;
        rds_addr_t a;
        rds_router_pubsub_addr(sh->cmd, 0, &a);
        ps_start(sh, &a);
        rds_addr_cleanup(&a);
    }
    ev_timer_init(&b->ps_watch, on_ps_watch, PS_WATCH_S, PS_WATCH_S);
    b->ps_watch.data = b;
    for (size_t i = 0; i < b->nshards; i++) {
        if (!ev_is_active(&b->ps_watch))
            ev_timer_start(loop, &b->ps_watch); /* read-only checks, cluster PUB/SUB moves */
    }
    return &b->base;
}

void broker_redis__stats(broker_t *base, broker_redis_stats_t *out)
{
    *out = from_base(base)->stats;
}
