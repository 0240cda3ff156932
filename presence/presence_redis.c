/* Presence in Redis (SERVER.md §3.8, index mode). Per channel, on the channel's shard:
 * P.presence.data.C (hash client id -> MessagePack ClientInfo) and P.presence.expire.C
 * (zset client id -> expire-at in Unix seconds). Every operation is one Lua script on the
 * shard's pipelined rds client, so one channel's operations keep their order. Expired
 * entries are dropped by the get script; stats runs the same script and counts distinct
 * users here (the optional user-mapping hashes of §3.8 are not maintained). Hash values
 * use the broker's ClientInfo encoding (broker/pubcodec.h), as §3.4 requires. On a Redis
 * Cluster shard both keys carry the channel as hash tag (P.presence.data.{C}, §3.3) so each
 * script touches one slot; a cluster counts as one shard, as in the broker.
 *
 * Requests hold no pointer to the presence: rds cancels every pending command when its
 * client is freed, so destroy delivers RT_ECANCELED before the presence goes away. */
#include "presence/presence_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_redis.h"
#include "broker/pubcodec.h"
#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "presence_lua.h"

#define DEFAULT_PREFIX "rotor"
#define DEFAULT_TTL_MS 60000

typedef struct presence_redis {
    presence_t base;
    struct ev_loop *loop;  /* borrowed */
    rds_router_t **shards; /* owned array of nshards owned routers */
    size_t nshards;        /* > 0 */
    char *prefix;          /* owned */
    int64_t ttl_ms;        /* entry lifetime without re-add; > 0 */
    int64_t key_ttl_s;     /* EXPIRE of both keys: ttl rounded up to whole seconds, >= 1 */
    rds_script_t add_script;
    rds_script_t remove_script;
    rds_script_t get_script;
    bool closing; /* destroy started: new requests fail with RT_ECLOSED */
} presence_redis_t;

/* One request in flight; owned by the rds callback that frees it. */
typedef struct pr_req {
    union {
        presence_done_cb done;
        presence_get_cb get;
        presence_stats_cb stats;
    } cb;
    void *ud;
} pr_req_t;

static const presence_vtbl_t redis_vtbl;

static presence_redis_t *from_base(presence_t *p)
{
    RT_ASSERT(p->vt == &redis_vtbl);
    return (presence_redis_t *)(void *)p;
}

/* ---- requests ---- */

/* Decodes a get script reply (flat array: client id, ClientInfo, ...) into *out (owned
 * by the caller, rt_free; slices borrowed from reply). Malformed values are skipped, so a
 * foreign or corrupt entry cannot hide the rest of the channel. Returns 0 or RT_EPROTO. */
static int decode_reply(const redisReply *reply, broker_client_info_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0) {
        RT_LOG_WARN("presence get: unexpected reply type=%d", reply->type);
        return RT_EPROTO;
    }
    size_t pairs = reply->elements / 2;
    if (pairs == 0)
        return 0;
    broker_client_info_t *entries = rt_malloc(pairs * sizeof(*entries));
    size_t count = 0;

    for (size_t i = 0; i < pairs; i++) {
        const redisReply *key = reply->element[2 * i];
        const redisReply *val = reply->element[2 * i + 1];
        if (key->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) {
            RT_LOG_WARN("presence get: unexpected element type");
            continue;
        }
        rt_str_t client = rt_str_from(key->str, key->len);
        broker_client_info_t *e = &entries[count];
        if (broker_pc_decode_info(rt_str_from(val->str, val->len), e) != 0) {
            /* Foreign or newer writer on the prefix: not our failure, and repeated on
             * every read of the channel, so not above DEBUG. */
            RT_LOG_DEBUG("presence get: malformed entry client=" RT_STR_FMT, RT_STR_ARG(client));
            continue;
        }
        /* The hash field is what add and remove address: it wins over the value. */
        e->client = client;
        count++;
    }
    if (count == 0) {
        rt_free(entries);
        entries = NULL;
    }
    *out = entries;
    *n = count;
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    const rt_str_t *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = n ? memcmp(x->p, y->p, n) : 0;
    if (c != 0)
        return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* Distinct users among entries; "" (anonymous) counts as one user. */
static uint32_t count_users(const broker_client_info_t *entries, size_t n)
{
    if (n == 0)
        return 0;
    rt_str_t *users = rt_malloc(n * sizeof(*users));
    for (size_t i = 0; i < n; i++)
        users[i] = entries[i].user;
    qsort(users, n, sizeof(*users), str_cmp);
    uint32_t distinct = 1;
    for (size_t i = 1; i < n; i++)
        distinct += !rt_str_eq(users[i - 1], users[i]);
    rt_free(users);
    return distinct;
}

static void on_done_reply(int status, const redisReply *reply, void *ud)
{
    pr_req_t *req = ud;

    if (status == RT_EREDIS)
        RT_LOG_WARN("presence script failed: %s", reply->str);
    if (req == NULL) {
        if (status != 0 && status != RT_EREDIS && status != RT_ECANCELED)
            RT_LOG_DEBUG("presence update failed: %s", rt_strerror(status));
        return;
    }
    presence_done_cb cb = req->cb.done;
    void *cb_ud = req->ud;
    rt_free(req);
    cb(status, cb_ud);
}

static void on_get_reply(int status, const redisReply *reply, void *ud)
{
    pr_req_t *req = ud;
    presence_get_cb cb = req->cb.get;
    void *cb_ud = req->ud;
    broker_client_info_t *entries = NULL;
    size_t n = 0;

    rt_free(req);
    if (status == RT_EREDIS)
        RT_LOG_WARN("presence get script failed: %s", reply->str);
    if (status == 0)
        status = decode_reply(reply, &entries, &n);
    cb(status, entries, n, cb_ud);
    rt_free(entries);
}

static void on_stats_reply(int status, const redisReply *reply, void *ud)
{
    pr_req_t *req = ud;
    presence_stats_cb cb = req->cb.stats;
    void *cb_ud = req->ud;
    broker_client_info_t *entries = NULL;
    size_t n = 0;
    uint32_t users = 0;

    rt_free(req);
    if (status == RT_EREDIS)
        RT_LOG_WARN("presence stats script failed: %s", reply->str);
    if (status == 0)
        status = decode_reply(reply, &entries, &n);
    if (status == 0)
        users = count_users(entries, n);
    rt_free(entries);
    cb(status, status == 0 ? (uint32_t)n : 0, users, cb_ud);
}

/* Runs script s on channel's shard with keys [expire zset, data hash] and args. Returns
 * rds_router_eval's result: 0 (cb will run) or RT_ECLOSED / RT_ELIMIT (it will not). */
static int eval(presence_redis_t *p, const rds_script_t *s, rt_str_t channel, int nargs,
                const char **args, const size_t *arglens, rds_reply_cb cb, void *ud)
{
    enum { MAX_ARGS = 4 };
    const char *argv[2 + MAX_ARGS];
    size_t argvlen[2 + MAX_ARGS];
    rt_buf_t expire_key = RT_BUF_INIT, data_key = RT_BUF_INIT;
    rds_router_t *r = p->shards[broker_redis_shard_of(channel, p->nshards)];
    bool tag = rds_router_is_cluster(r);

    RT_ASSERT(nargs <= MAX_ARGS);
    rt_buf_printf(&expire_key, "%s.presence.expire.%s", p->prefix, tag ? "{" : "");
    rt_buf_append_str(&expire_key, channel);
    rt_buf_printf(&data_key, "%s.presence.data.%s", p->prefix, tag ? "{" : "");
    rt_buf_append_str(&data_key, channel);
    if (tag) {
        rt_buf_append_byte(&expire_key, '}');
        rt_buf_append_byte(&data_key, '}');
    }
    argv[0] = (const char *)expire_key.p;
    argvlen[0] = expire_key.len;
    argv[1] = (const char *)data_key.p;
    argvlen[1] = data_key.len;
    for (int i = 0; i < nargs; i++) {
        argv[2 + i] = args[i];
        argvlen[2 + i] = arglens[i];
    }
    int rc = rds_router_eval(r, s, 2, 2 + nargs, argv, argvlen, cb, ud);
    rt_buf_cleanup(&expire_key);
    rt_buf_cleanup(&data_key);
    return rc;
}

static pr_req_t *req_new(void *ud)
{
    pr_req_t *req = RT_NEW(pr_req_t);
    req->ud = ud;
    return req;
}

/* Unix seconds with millisecond precision: scores are doubles, and whole seconds would
 * shorten or stretch a 1 s TTL by up to a second. ev_now() is wall-clock time, which is
 * what the other nodes compare these scores against. */
static int fmt_seconds(char *out, size_t n, ev_tstamp t)
{
    return snprintf(out, n, "%.3f", t);
}

static int redis_add(presence_t *base, rt_str_t channel, const broker_client_info_t *info,
                     presence_done_cb cb, void *ud)
{
    presence_redis_t *p = from_base(base);
    if (p->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || info == NULL || info->client.n == 0)
        return RT_EINVAL;

    char ttl[24], expire_at[40];
    int ttl_n = snprintf(ttl, sizeof(ttl), "%lld", (long long)p->key_ttl_s);
    int expire_n =
        fmt_seconds(expire_at, sizeof(expire_at), ev_now(p->loop) + (double)p->ttl_ms / 1000.0);
    rt_buf_t value = RT_BUF_INIT;
    broker_pc_encode_info(&value, info);
    const char *args[4] = {ttl, expire_at, info->client.p, (const char *)value.p};
    size_t lens[4] = {(size_t)ttl_n, (size_t)expire_n, info->client.n, value.len};

    pr_req_t *req = cb ? req_new(ud) : NULL;
    if (req != NULL)
        req->cb.done = cb;
    int rc = eval(p, &p->add_script, channel, 4, args, lens, on_done_reply, req);
    rt_buf_cleanup(&value);
    if (rc != 0)
        rt_free(req);
    return rc;
}

static int redis_remove(presence_t *base, rt_str_t channel, rt_str_t client_id, presence_done_cb cb,
                        void *ud)
{
    presence_redis_t *p = from_base(base);
    if (p->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || client_id.n == 0)
        return RT_EINVAL;

    const char *args[1] = {client_id.p};
    size_t lens[1] = {client_id.n};
    pr_req_t *req = cb ? req_new(ud) : NULL;
    if (req != NULL)
        req->cb.done = cb;
    int rc = eval(p, &p->remove_script, channel, 1, args, lens, on_done_reply, req);
    if (rc != 0)
        rt_free(req);
    return rc;
}

static int read_presence(presence_redis_t *p, rt_str_t channel, rds_reply_cb reply_cb,
                         pr_req_t *req)
{
    char now[40];
    int now_n = fmt_seconds(now, sizeof(now), ev_now(p->loop));
    const char *args[1] = {now};
    size_t lens[1] = {(size_t)now_n};
    int rc = eval(p, &p->get_script, channel, 1, args, lens, reply_cb, req);
    if (rc != 0)
        rt_free(req);
    return rc;
}

static int redis_get(presence_t *base, rt_str_t channel, presence_get_cb cb, void *ud)
{
    presence_redis_t *p = from_base(base);
    if (p->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || cb == NULL)
        return RT_EINVAL;
    pr_req_t *req = req_new(ud);
    req->cb.get = cb;
    return read_presence(p, channel, on_get_reply, req);
}

static int redis_stats(presence_t *base, rt_str_t channel, presence_stats_cb cb, void *ud)
{
    presence_redis_t *p = from_base(base);
    if (p->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || cb == NULL)
        return RT_EINVAL;
    pr_req_t *req = req_new(ud);
    req->cb.stats = cb;
    return read_presence(p, channel, on_stats_reply, req);
}

static void redis_destroy(presence_t *base)
{
    presence_redis_t *p = from_base(base);
    if (p->closing)
        return; /* called again from a cancellation callback */
    p->closing = true;
    /* Each free cancels that client's pending requests (RT_ECANCELED) before returning. */
    for (size_t i = 0; i < p->nshards; i++)
        rds_router_free(p->shards[i]);
    rt_free(p->shards);
    rt_free(p->prefix);
    rt_free(p);
}

static const presence_vtbl_t redis_vtbl = {
    .add = redis_add,
    .remove = redis_remove,
    .get = redis_get,
    .stats = redis_stats,
    .destroy = redis_destroy,
};

presence_t *presence_redis_new(struct ev_loop *loop, const rds_addr_t *shards, size_t nshards,
                               const char *prefix, int64_t ttl_ms)
{
    RT_ASSERT(nshards > 0);
    presence_redis_t *p = RT_NEW(presence_redis_t);
    rds_client_opts_t opts;

    p->base.vt = &redis_vtbl;
    p->loop = loop;
    p->prefix = rt_strdup(prefix != NULL && prefix[0] != '\0' ? prefix : DEFAULT_PREFIX);
    p->ttl_ms = ttl_ms > 0 ? ttl_ms : DEFAULT_TTL_MS;
    p->key_ttl_s = (p->ttl_ms + 999) / 1000;
    rds_script_init(&p->add_script, "presence_add_client", presence_add_client);
    rds_script_init(&p->remove_script, "presence_remove_client", presence_remove_client);
    rds_script_init(&p->get_script, "presence_get_clients", presence_get_clients);
    rds_client_opts_default(&opts);
    p->nshards = nshards;
    p->shards = rt_calloc(nshards, sizeof(*p->shards));
    for (size_t i = 0; i < nshards; i++)
        p->shards[i] = rds_router_new(loop, &shards[i], &opts);
    return &p->base;
}
