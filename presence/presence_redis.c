/* Presence in Redis (SERVER.md §3.8). Per channel, on the channel's shard:
 * P.presence.data.C (hash client id -> MessagePack ClientInfo) and P.presence.expire.C
 * (zset client id -> expire-at in Unix seconds); with user mapping also
 * P.presence.user.clients.C (hash user id -> number of connections) and
 * P.presence.user.expire.C (zset user id -> expire-at). In hash-field-TTL mode Redis
 * expires the hash fields itself (HEXPIRE) and the zsets are not written. Every operation
 * is one Lua script on the shard's pipelined rds client, so one channel's operations keep
 * their order. Expired entries are dropped by the get and stats scripts; stats counts
 * distinct users here unless user mapping answers from the hash lengths. Hash values use
 * the ClientInfo encoding the broker uses too (broker/rds_info.h), as §3.4 requires, and
 * channels map to shards by the broker's rule (broker/rds_shard.h). On a Redis Cluster
 * shard every key carries the channel as hash tag (P.presence.data.{C}, §3.3) so each
 * script touches one slot; a cluster counts as one shard, as in the broker.
 *
 * Requests hold no pointer to the presence: rds cancels every pending command when its
 * client is freed, so destroy delivers RT_ECANCELED before the presence goes away. The
 * hash-field-TTL probes do point into the presence, which frees them after the routers. */
#include "presence/presence_redis.h"
#include "presence/presence_redis_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/rds_info.h"
#include "broker/rds_shard.h"
#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "presence_lua.h"

#define DEFAULT_PREFIX "rotor"
#define DEFAULT_TTL_MS 60000
/* How often shards not yet probed for HEXPIRE are tried while they are unreachable. */
#define PROBE_INTERVAL_S 0.1

typedef struct presence_redis presence_redis_t;

/* The start-up check of one shard for hash-field TTL support. */
typedef struct hfield_probe {
    presence_redis_t *p; /* borrowed back-pointer; the probe is an element of p->probes */
    size_t shard;
    bool inflight; /* a HEXPIRE is waiting for its reply */
    bool passed;   /* the shard accepted HEXPIRE */
} hfield_probe_t;

struct presence_redis {
    presence_t base;
    struct ev_loop *loop;  /* borrowed */
    rds_router_t **shards; /* owned array of nshards owned routers */
    char **shard_names;    /* owned: rds_addr_name() of each shard, for messages */
    size_t nshards;        /* > 0 */
    char *prefix;          /* owned */
    int64_t ttl_ms;        /* entry lifetime without re-add; > 0 */
    int64_t key_ttl_s;     /* EXPIRE of the keys: ttl rounded up to whole seconds, >= 1 */
    bool user_mapping;
    bool hash_field_ttl;
    presence_redis_fatal_cb on_fatal; /* NULL: log and _exit(1) */
    void *fatal_ud;
    hfield_probe_t *probes; /* owned, nshards entries; NULL unless hash_field_ttl */
    ev_timer probe_timer;   /* runs until every shard passed or one failed */
    bool failed;            /* a probe failed: on_fatal was called */
    rds_script_t add_script;
    rds_script_t remove_script;
    rds_script_t get_script;
    rds_script_t stats_script;
    bool closing; /* destroy started: new requests fail with RT_ECLOSED */
};

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

int presence_redis__decode_get(const redisReply *reply, rt_client_info_t **out, size_t *n)
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
    rt_client_info_t *entries = rt_malloc(pairs * sizeof(*entries));
    size_t count = 0;

    for (size_t i = 0; i < pairs; i++) {
        const redisReply *key = reply->element[2 * i];
        const redisReply *val = reply->element[2 * i + 1];
        if (key->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) {
            RT_LOG_WARN("presence get: unexpected element type");
            continue;
        }
        rt_str_t client = rt_str_from(key->str, key->len);
        rt_client_info_t *e = &entries[count];
        if (rds_info_decode(rt_str_from(val->str, val->len), e) != 0) {
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

uint32_t presence_redis__count_users(const rt_client_info_t *entries, size_t n)
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
    rt_client_info_t *entries = NULL;
    size_t n = 0;

    rt_free(req);
    if (status == RT_EREDIS)
        RT_LOG_WARN("presence get script failed: %s", reply->str);
    if (status == 0)
        status = presence_redis__decode_get(reply, &entries, &n);
    cb(status, entries, n, cb_ud);
    rt_free(entries);
}

static void on_stats_reply(int status, const redisReply *reply, void *ud)
{
    pr_req_t *req = ud;
    presence_stats_cb cb = req->cb.stats;
    void *cb_ud = req->ud;
    rt_client_info_t *entries = NULL;
    size_t n = 0;
    uint32_t users = 0;

    rt_free(req);
    if (status == RT_EREDIS)
        RT_LOG_WARN("presence stats script failed: %s", reply->str);
    if (status == 0)
        status = presence_redis__decode_get(reply, &entries, &n);
    if (status == 0)
        users = presence_redis__count_users(entries, n);
    rt_free(entries);
    cb(status, status == 0 ? (uint32_t)n : 0, users, cb_ud);
}

/* A hash length from the stats script: a non-negative integer. */
static bool hash_len(const redisReply *r, uint32_t *out)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0)
        return false;
    *out = r->integer > UINT32_MAX ? UINT32_MAX : (uint32_t)r->integer;
    return true;
}

/* The user-mapping stats script answers {HLEN data, HLEN user hash}. */
static void on_user_stats_reply(int status, const redisReply *reply, void *ud)
{
    pr_req_t *req = ud;
    presence_stats_cb cb = req->cb.stats;
    void *cb_ud = req->ud;
    uint32_t clients = 0, users = 0;

    rt_free(req);
    if (status == RT_EREDIS)
        RT_LOG_WARN("presence stats script failed: %s", reply->str);
    if (status == 0 &&
        (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
         !hash_len(reply->element[0], &clients) || !hash_len(reply->element[1], &users))) {
        RT_LOG_WARN("presence stats: unexpected reply type=%d", reply->type);
        status = RT_EPROTO;
        clients = users = 0;
    }
    cb(status, clients, users, cb_ud);
}

/* Appends P.presence.<kind>.C to out, with C as hash tag ({C}) on a cluster (§3.3). */
static void append_key(rt_buf_t *out, const char *prefix, const char *kind, rt_str_t channel,
                       bool tag)
{
    rt_buf_printf(out, "%s.presence.%s.%s", prefix, kind, tag ? "{" : "");
    rt_buf_append_str(out, channel);
    if (tag)
        rt_buf_append_byte(out, '}');
}

enum { KEY_EXPIRE, KEY_DATA, KEY_USER_EXPIRE, KEY_USER_CLIENTS, NKEYS };

/* Runs script s on channel's shard with the first nkeys of [expire zset, data hash, user
 * zset, user hash] and args. Returns rds_router_eval's result: 0 (cb will run) or
 * RT_ECLOSED / RT_ELIMIT (it will not). */
static int eval(presence_redis_t *p, const rds_script_t *s, rt_str_t channel, int nkeys, int nargs,
                const char **args, const size_t *arglens, rds_reply_cb cb, void *ud)
{
    enum { MAX_ARGS = 7 };
    static const char *const kinds[NKEYS] = {"expire", "data", "user.expire", "user.clients"};
    const char *argv[NKEYS + MAX_ARGS];
    size_t argvlen[NKEYS + MAX_ARGS];
    rt_buf_t keys[NKEYS] = {RT_BUF_INIT, RT_BUF_INIT, RT_BUF_INIT, RT_BUF_INIT};
    rds_router_t *r = p->shards[rds_shard_of(channel, p->nshards)];
    bool tag = rds_router_is_cluster(r);

    RT_ASSERT(nkeys <= NKEYS && nargs <= MAX_ARGS);
    for (int i = 0; i < nkeys; i++) {
        append_key(&keys[i], p->prefix, kinds[i], channel, tag);
        argv[i] = (const char *)keys[i].p;
        argvlen[i] = keys[i].len;
    }
    for (int i = 0; i < nargs; i++) {
        argv[nkeys + i] = args[i];
        argvlen[nkeys + i] = arglens[i];
    }
    int rc = rds_router_eval(r, s, nkeys, nkeys + nargs, argv, argvlen, cb, ud);
    for (int i = 0; i < nkeys; i++)
        rt_buf_cleanup(&keys[i]);
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

static const char *flag(bool on)
{
    return on ? "1" : "0";
}

static int redis_add(presence_t *base, rt_str_t channel, const rt_client_info_t *info,
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
    rds_info_encode(&value, info);
    const char *args[7] = {ttl,
                           expire_at,
                           info->client.p,
                           (const char *)value.p,
                           info->user.p != NULL ? info->user.p : "",
                           flag(p->user_mapping),
                           flag(p->hash_field_ttl)};
    size_t lens[7] = {
        (size_t)ttl_n, (size_t)expire_n, info->client.n, value.len, info->user.n, 1, 1};

    pr_req_t *req = cb ? req_new(ud) : NULL;
    if (req != NULL)
        req->cb.done = cb;
    int rc = eval(p, &p->add_script, channel, NKEYS, 7, args, lens, on_done_reply, req);
    rt_buf_cleanup(&value);
    if (rc != 0)
        rt_free(req);
    return rc;
}

static int redis_remove(presence_t *base, rt_str_t channel, rt_str_t client_id, rt_str_t user,
                        presence_done_cb cb, void *ud)
{
    presence_redis_t *p = from_base(base);
    if (p->closing)
        return RT_ECLOSED;
    if (channel.n == 0 || client_id.n == 0)
        return RT_EINVAL;

    const char *args[4] = {client_id.p, user.p != NULL ? user.p : "", flag(p->user_mapping),
                           flag(p->hash_field_ttl)};
    size_t lens[4] = {client_id.n, user.n, 1, 1};
    pr_req_t *req = cb ? req_new(ud) : NULL;
    if (req != NULL)
        req->cb.done = cb;
    int rc = eval(p, &p->remove_script, channel, NKEYS, 4, args, lens, on_done_reply, req);
    if (rc != 0)
        rt_free(req);
    return rc;
}

/* Runs the get script (entries) or, with user mapping and want_counts, the stats script
 * (two hash lengths); takes ownership of req. */
static int read_presence(presence_redis_t *p, rt_str_t channel, bool want_counts,
                         rds_reply_cb reply_cb, pr_req_t *req)
{
    char now[40];
    int now_n = fmt_seconds(now, sizeof(now), ev_now(p->loop));
    const char *args[2] = {now, flag(p->hash_field_ttl)};
    size_t lens[2] = {(size_t)now_n, 1};
    int rc = want_counts ? eval(p, &p->stats_script, channel, NKEYS, 2, args, lens, reply_cb, req)
                         : eval(p, &p->get_script, channel, 2, 2, args, lens, reply_cb, req);
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
    return read_presence(p, channel, false, on_get_reply, req);
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
    if (p->user_mapping)
        return read_presence(p, channel, true, on_user_stats_reply, req);
    return read_presence(p, channel, false, on_stats_reply, req);
}

/* ---- hash-field TTL probe ---- */

static void probe_failed(presence_redis_t *p, size_t shard, const char *answer)
{
    char reason[512];
    snprintf(reason, sizeof(reason),
             "engine.redis.presence_hash_field_ttl needs Redis >= 7.4 (HEXPIRE); Redis at %s "
             "answered: %s. Upgrade Redis or set presence_hash_field_ttl to false",
             p->shard_names[shard], answer);
    p->failed = true;
    ev_timer_stop(p->loop, &p->probe_timer);
    if (p->on_fatal != NULL) {
        p->on_fatal(reason, p->fatal_ud); /* may destroy p */
        return;
    }
    RT_LOG_ERROR("refusing to start: %s", reason);
    /* Workers and their threads are already up; nothing is worth flushing this early. */
    _exit(1);
}

static void on_probe_reply(int status, const redisReply *reply, void *ud)
{
    hfield_probe_t *probe = ud;
    presence_redis_t *p = probe->p;

    if (status == RT_ECANCELED || p->failed)
        return; /* destroy in progress, or the verdict is in */
    probe->inflight = false;
    if (status == RT_EREDIS && strncmp(reply->str, "WRONGTYPE", 9) != 0) {
        probe_failed(p, probe->shard, reply->str);
        return;
    }
    if (status != 0 && status != RT_EREDIS)
        return; /* unreachable for now: the timer tries again */
    /* Any answer but an error (WRONGTYPE: someone else's check key) means Redis knows
     * HEXPIRE. */
    probe->passed = true;
    RT_LOG_DEBUG("presence: %s supports hash-field TTL", p->shard_names[probe->shard]);
    for (size_t i = 0; i < p->nshards; i++) {
        if (!p->probes[i].passed)
            return;
    }
    ev_timer_stop(p->loop, &p->probe_timer);
}

/* One HEXPIRE on a check key per shard that has not answered yet; shards still
 * connecting refuse at once (RT_ECLOSED) and are tried on the next tick. */
static void on_probe_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    presence_redis_t *p = w->data;
    rt_buf_t key = RT_BUF_INIT;

    rt_buf_printf(&key, "%s.__.check.hexpire", p->prefix);
    const char *argv[6] = {"HEXPIRE", (const char *)key.p, "1", "FIELDS", "1", "f"};
    size_t argvlen[6] = {7, key.len, 1, 6, 1, 1};
    for (size_t i = 0; i < p->nshards; i++) {
        hfield_probe_t *probe = &p->probes[i];
        if (probe->passed || probe->inflight)
            continue;
        int rc = rds_router_command(p->shards[i], rt_str_from((const char *)key.p, key.len),
                                    on_probe_reply, probe, 6, argv, argvlen);
        probe->inflight = rc == 0;
    }
    rt_buf_cleanup(&key);
}

static void probe_start(presence_redis_t *p)
{
    p->probes = rt_calloc(p->nshards, sizeof(*p->probes));
    for (size_t i = 0; i < p->nshards; i++) {
        p->probes[i].p = p;
        p->probes[i].shard = i;
    }
    ev_timer_init(&p->probe_timer, on_probe_timer, 0., PROBE_INTERVAL_S);
    p->probe_timer.data = p;
    ev_timer_start(p->loop, &p->probe_timer);
}

/* ---- lifecycle ---- */

static void redis_destroy(presence_t *base)
{
    presence_redis_t *p = from_base(base);
    if (p->closing)
        return; /* called again from a cancellation callback */
    p->closing = true;
    if (p->probes != NULL)
        ev_timer_stop(p->loop, &p->probe_timer);
    /* Each free cancels that client's pending requests (RT_ECANCELED) before returning;
     * the probes those carry are freed below, after the last callback. */
    for (size_t i = 0; i < p->nshards; i++) {
        rds_router_free(p->shards[i]);
        rt_free(p->shard_names[i]);
    }
    rt_free(p->shards);
    rt_free(p->shard_names);
    rt_free(p->probes);
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
                               const presence_redis_opts_t *opts)
{
    RT_ASSERT(nshards > 0 && opts != NULL);
    presence_redis_t *p = RT_NEW(presence_redis_t);
    rds_client_opts_t copts;
    const char *prefix = opts->prefix;

    p->base.vt = &redis_vtbl;
    p->loop = loop;
    p->prefix = rt_strdup(prefix != NULL && prefix[0] != '\0' ? prefix : DEFAULT_PREFIX);
    p->ttl_ms = opts->ttl_ms > 0 ? opts->ttl_ms : DEFAULT_TTL_MS;
    p->key_ttl_s = (p->ttl_ms + 999) / 1000;
    p->user_mapping = opts->user_mapping;
    p->hash_field_ttl = opts->hash_field_ttl;
    p->on_fatal = opts->on_fatal;
    p->fatal_ud = opts->fatal_ud;
    rds_script_init(&p->add_script, "presence_add_client", presence_add_client);
    rds_script_init(&p->remove_script, "presence_remove_client", presence_remove_client);
    rds_script_init(&p->get_script, "presence_get_clients", presence_get_clients);
    rds_script_init(&p->stats_script, "presence_stats_users", presence_stats_users);
    rds_client_opts_default(&copts);
    p->nshards = nshards;
    p->shards = rt_calloc(nshards, sizeof(*p->shards));
    p->shard_names = rt_calloc(nshards, sizeof(*p->shard_names));
    for (size_t i = 0; i < nshards; i++) {
        p->shards[i] = rds_router_new(loop, &shards[i], &copts);
        p->shard_names[i] = rt_strdup(rds_addr_name(&shards[i]));
    }
    if (p->hash_field_ttl)
        probe_start(p);
    return &p->base;
}
