/* Redis Streams consumers (SERVER.md §4.2): consumer groups, XREADGROUP/XAUTOCLAIM loops and
 * acknowledgements on the engine loop; entries applied on workers through node_api_exec.
 *
 * Per stream: `inflight` entries are on workers; a read or claim asks for at most
 * num_workers - inflight entries, so num_workers bounds the entries in flight per stream
 * (the loop only reads when a worker is free). At-least-once: an entry is acknowledged only
 * after its command ran (or was found unusable); everything else leaves it pending for
 * XAUTOCLAIM by any node after visibility_timeout. */
#include "node/consumer.h"

#include <stdio.h>
#include <string.h>

#include "broker/rds.h"
#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/b64.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "node/base/log.h"
#include "node/base/utf8.h"
#include "node/codes.h"
#include "node/node_internal.h"

#define CONS_BLOCK_MS        5000 /* XREADGROUP BLOCK (SERVER.md §4.2 step 3) */
#define CONS_PAUSE_S         0.2  /* after a failed read/claim/group creation */
#define CONS_RECLAIM_S       5.0  /* XAUTOCLAIM period */
#define CONS_MAX_ENTRY_BYTES (64u << 20)

typedef struct cons cons_t;

typedef struct cons_stream {
    cons_t *c;            /* borrowed back-pointer */
    int index;            /* in c->streams */
    const char *key;      /* borrowed from the config; used verbatim (no prefix) */
    rds_client_t *reader; /* owned; only XREADGROUP BLOCK, which occupies the connection */
    bool group_ready;     /* XGROUP CREATE answered OK or BUSYGROUP since the last NOGROUP */
    bool creating;        /* XGROUP CREATE in flight */
    bool reading;         /* XREADGROUP in flight */
    bool claiming;        /* XAUTOCLAIM in flight */
    bool paused;          /* pause timer running: no read or creation until it fires */
    int64_t inflight;     /* entries on workers, not answered yet; <= num_workers */
    char cursor[64];      /* XAUTOCLAIM start: "-" or the cursor returned last */
    ev_timer pause;
    ev_timer reclaim;
} cons_stream_t;

struct cons {
    node_consumers_t *set;      /* borrowed back-pointer */
    int index;                  /* in set->items */
    const node_consumer_t *cfg; /* borrowed; the loaded config is read-only */
    const char *name;           /* cfg->name */
    rds_client_t *cmd;          /* owned; XGROUP, XAUTOCLAIM, XACK */
    cons_stream_t *streams;     /* owned array of cfg->redis_stream.streams_count */
    size_t nstreams;
    _Atomic uint64_t processed; /* see node_consumers_render_metrics */
    _Atomic uint64_t errors;
};

struct node_consumers {
    node_engine_t *e; /* borrowed */
    cons_t *items;    /* owned array */
    size_t n;
    unsigned rr;   /* round-robin worker choice */
    bool stopping; /* set before the clients are freed: cancelled replies do nothing */
};

/* Engine -> worker: one entry, copied out of the hiredis reply (which dies with its
 * callback). One allocation, so the worker mailbox cleanup (rt_free) releases it. */
typedef struct entry_mail {
    rt_mail_t mail;
    const node_consumer_t *cfg; /* borrowed; read-only config */
    int consumer;               /* indexes, looked up again on the engine */
    int stream;
    rt_str_t id;    /* into the bytes behind kv */
    size_t nfields; /* field/value pairs in kv */
    rt_str_t kv[];  /* 2 * nfields slices, then the bytes */
} entry_mail_t;

/* Worker -> engine: the outcome of one entry. node_op_t comes first so that the engine
 * mailbox cleanup (node_op_free, which ends with rt_free) releases it whole. */
typedef struct entry_result {
    node_op_t op;    /* ref_id = consumer, sub_serial = stream, channel = entry id (a blob),
                        status = 0 or the API error code */
    bool skipped;    /* unusable entry, already logged with the reason by the worker */
    char method[16]; /* for the log line ("" when unknown) */
} entry_result_t;

static void try_read(cons_stream_t *s);
static void create_group(cons_stream_t *s);

static node_engine_t *engine_of(const cons_t *c)
{
    return c->set->e;
}

static bool draining(const cons_t *c)
{
    return atomic_load(&engine_of(c)->node->draining) != 0;
}

static void count_error(cons_t *c)
{
    atomic_fetch_add_explicit(&c->errors, 1, memory_order_relaxed);
}

static void count_processed(cons_t *c)
{
    atomic_fetch_add_explicit(&c->processed, 1, memory_order_relaxed);
}

/* A failed Redis command: logged, counted, and the stream waits 200 ms. */
static void redis_failed(cons_stream_t *s, const char *what, int status, const redisReply *reply)
{
    count_error(s->c);
    if (status == RT_EREDIS && reply && reply->str)
        RT_LOG_WARN("consumer redis error consumer=%s stream=%s command=%s error=\"%.*s\"",
                    s->c->name, s->key, what, (int)reply->len, reply->str);
    else
        RT_LOG_WARN("consumer redis error consumer=%s stream=%s command=%s error=%s", s->c->name,
                    s->key, what, rt_strerror(status));
}

static void pause_stream(cons_stream_t *s)
{
    if (s->paused)
        return;
    s->paused = true;
    ev_timer_set(&s->pause, CONS_PAUSE_S, 0);
    ev_timer_start(engine_of(s->c)->loop, &s->pause);
}

/* Whatever the stream needs next: its group, then reads. */
static void kick(cons_stream_t *s)
{
    if (s->c->set->stopping || s->paused)
        return;
    if (!s->group_ready)
        create_group(s);
    else
        try_read(s);
}

static void on_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
    cons_stream_t *s = t->data;
    s->paused = false;
    kick(s);
}

static bool reply_is(const redisReply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r && r->type == REDIS_REPLY_ERROR && r->str && r->len >= n &&
           memcmp(r->str, prefix, n) == 0;
}

/* ---------------------------------------------------------------------------------------
 * Group creation.
 */

static void on_group(int status, const redisReply *reply, void *ud)
{
    cons_stream_t *s = ud;
    s->creating = false;
    if (status == RT_ECANCELED)
        return;
    if (status == 0 || reply_is(reply, "BUSYGROUP")) {
        s->group_ready = true;
        kick(s);
        return;
    }
    redis_failed(s, "XGROUP", status, reply);
    pause_stream(s);
}

static void create_group(cons_stream_t *s)
{
    cons_t *c = s->c;
    if (s->creating || s->group_ready || !rds_client_ready(c->cmd))
        return; /* the cmd client's up state calls kick() again */
    const char *group = c->cfg->redis_stream.consumer_group;
    const char *argv[] = {"XGROUP", "CREATE", s->key, group, "$", "MKSTREAM"};
    size_t len[] = {6, 6, strlen(s->key), strlen(group), 1, 8};
    int rc = rds_client_command(c->cmd, on_group, s, 6, argv, len);
    if (rc != 0) {
        redis_failed(s, "XGROUP", rc, NULL);
        pause_stream(s);
        return;
    }
    s->creating = true;
}

/* ---------------------------------------------------------------------------------------
 * Entries: copy out, hand to a worker, acknowledge.
 */

static void on_entry_mail(rt_mail_t *m, void *ctx);

static bool field_ok(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len <= CONS_MAX_ENTRY_BYTES;
}

static void on_ack(int status, const redisReply *reply, void *ud)
{
    cons_stream_t *s = ud;
    if (status == RT_ECANCELED)
        return;
    if (status != 0 || reply->type == REDIS_REPLY_ERROR)
        redis_failed(s, "XACK", status != 0 ? status : RT_EREDIS, reply);
}

/* XACK <stream> <group> <id>. On failure the entry stays pending and is claimed again
 * later (applied twice: the documented at-least-once). */
static void ack(cons_stream_t *s, rt_str_t id)
{
    cons_t *c = s->c;
    const char *group = c->cfg->redis_stream.consumer_group;
    const char *argv[] = {"XACK", s->key, group, id.p};
    size_t len[] = {4, strlen(s->key), strlen(group), id.n};
    int rc = rds_client_command(c->cmd, on_ack, s, 4, argv, len);
    if (rc != 0)
        redis_failed(s, "XACK", rc, NULL);
}

/* One [id, [field, value, ...]] element of an XREADGROUP or XAUTOCLAIM reply. */
static void dispatch(cons_stream_t *s, const redisReply *entry)
{
    cons_t *c = s->c;
    node_engine_t *e = engine_of(c);
    if (entry == NULL || entry->type != REDIS_REPLY_ARRAY || entry->elements < 1 ||
        !field_ok(entry->element[0])) {
        count_error(c);
        RT_LOG_WARN("consumer unexpected entry shape consumer=%s stream=%s", c->name, s->key);
        return;
    }
    const redisReply *idr = entry->element[0];
    rt_str_t id = rt_str_from(idr->str, idr->len);
    const redisReply *fields = entry->elements > 1 ? entry->element[1] : NULL;
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY) {
        /* Deleted from the stream while pending (XTRIM/XDEL): nothing left to apply. */
        RT_LOG_INFO("consumer entry without fields acknowledged consumer=%s stream=%s id=%.*s",
                    c->name, s->key, RT_STR_ARG(id));
        count_processed(c);
        ack(s, id);
        return;
    }
    if (draining(c))
        return; /* left pending: another node (or the next start) claims it */
    size_t npairs = fields->elements / 2, bytes = id.n + 1;
    for (size_t i = 0; i < npairs * 2; i++) {
        if (!field_ok(fields->element[i])) {
            count_error(c);
            count_processed(c);
            RT_LOG_INFO("consumer entry with a non-string field acknowledged consumer=%s "
                        "stream=%s id=%.*s",
                        c->name, s->key, RT_STR_ARG(id));
            ack(s, id);
            return;
        }
        bytes += fields->element[i]->len + 1;
    }
    entry_mail_t *m = rt_malloc(sizeof(*m) + 2 * npairs * sizeof(rt_str_t) + bytes);
    char *cur = (char *)&m->kv[2 * npairs];
    m->mail.fn = on_entry_mail;
    m->cfg = c->cfg;
    m->consumer = c->index;
    m->stream = s->index;
    m->nfields = npairs;
    memcpy(cur, id.p, id.n);
    cur[id.n] = '\0';
    m->id = rt_str_from(cur, id.n);
    cur += id.n + 1;
    for (size_t i = 0; i < npairs * 2; i++) {
        const redisReply *f = fields->element[i];
        if (f->len)
            memcpy(cur, f->str, f->len);
        cur[f->len] = '\0';
        m->kv[i] = rt_str_from(cur, f->len);
        cur += f->len + 1;
    }
    s->inflight++;
    node_t *node = e->node;
    node_worker_t *w = node->workers[c->set->rr++ % (unsigned)node->nworkers];
    rt_mailbox_post(&w->mailbox, &m->mail);
}

/* Engine: the worker's answer (a node_op_t: ref_id = consumer, sub_serial = stream,
 * channel = entry id, status = API code). */
static void on_result(rt_mail_t *mail, void *ctx)
{
    node_engine_t *e = ctx;
    entry_result_t *r = (entry_result_t *)mail;
    node_op_t *op = &r->op;
    node_consumers_t *cs = e->consumers;
    if (cs == NULL || cs->stopping || op->ref_id >= cs->n) {
        node_op_free(op);
        return;
    }
    cons_t *c = &cs->items[op->ref_id];
    if (op->sub_serial >= c->nstreams) {
        node_op_free(op);
        return;
    }
    cons_stream_t *s = &c->streams[op->sub_serial];
    s->inflight--;
    if (op->status != 0)
        count_error(c);
    if (op->status == NODE_ERR_INTERNAL) {
        RT_LOG_WARN("consumer command failed with a retryable error, entry left pending "
                    "consumer=%s stream=%s id=%.*s",
                    c->name, s->key, RT_STR_ARG(op->channel));
    } else {
        if (op->status != 0 && !r->skipped)
            RT_LOG_INFO("consumer command failed, entry acknowledged consumer=%s stream=%s "
                        "id=%.*s method=%s code=%d",
                        c->name, s->key, RT_STR_ARG(op->channel), r->method, op->status);
        count_processed(c);
        ack(s, op->channel);
    }
    node_op_free(op);
    try_read(s);
}

/* ---------------------------------------------------------------------------------------
 * Read loop.
 */

static int64_t free_slots(const cons_stream_t *s)
{
    return s->c->cfg->redis_stream.num_workers - s->inflight;
}

/* reply: [[stream, [entry, ...]], ...] or nil (BLOCK timed out). */
static void on_read(int status, const redisReply *reply, void *ud)
{
    cons_stream_t *s = ud;
    s->reading = false;
    if (status == RT_ECANCELED)
        return;
    if (status == RT_EREDIS && reply_is(reply, "NOGROUP")) {
        RT_LOG_WARN("consumer group missing, creating it again consumer=%s stream=%s", s->c->name,
                    s->key);
        s->group_ready = false;
        kick(s);
        return;
    }
    if (status != 0) {
        redis_failed(s, "XREADGROUP", status, reply);
        pause_stream(s);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *st = reply->element[i];
            if (st->type != REDIS_REPLY_ARRAY || st->elements < 2 ||
                st->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            for (size_t j = 0; j < st->element[1]->elements; j++)
                dispatch(s, st->element[1]->element[j]);
        }
    }
    try_read(s);
}

static void try_read(cons_stream_t *s)
{
    cons_t *c = s->c;
    if (c->set->stopping || s->reading || s->paused || !s->group_ready || draining(c))
        return;
    int64_t n = free_slots(s);
    if (n <= 0 || !rds_client_ready(s->reader))
        return; /* a result or the reader's up state calls again */
    const node_t *node = engine_of(c)->node;
    const char *group = c->cfg->redis_stream.consumer_group;
    char count[24], block[24];
    snprintf(count, sizeof(count), "%lld", (long long)n);
    snprintf(block, sizeof(block), "%d", CONS_BLOCK_MS);
    const char *argv[] = {"XREADGROUP", "GROUP", group,     node->uid, "COUNT", count,
                          "BLOCK",      block,   "STREAMS", s->key,    ">"};
    size_t len[] = {10,
                    5,
                    strlen(group),
                    strlen(node->uid),
                    5,
                    strlen(count),
                    5,
                    strlen(block),
                    7,
                    strlen(s->key),
                    1};
    int rc = rds_client_command(s->reader, on_read, s, 11, argv, len);
    if (rc != 0) {
        redis_failed(s, "XREADGROUP", rc, NULL);
        pause_stream(s);
        return;
    }
    s->reading = true;
}

/* ---------------------------------------------------------------------------------------
 * Reclaim loop.
 */

static void claim(cons_stream_t *s);

/* reply: [cursor, [entry, ...]] (Redis 7 adds [deleted ids], already out of the PEL). */
static void on_claim(int status, const redisReply *reply, void *ud)
{
    cons_stream_t *s = ud;
    s->claiming = false;
    if (status == RT_ECANCELED)
        return;
    if (status == RT_EREDIS && reply_is(reply, "NOGROUP")) {
        s->group_ready = false;
        kick(s);
        return;
    }
    if (status != 0 || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        !field_ok(reply->element[0]) || reply->element[0]->len >= sizeof(s->cursor) ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        redis_failed(s, "XAUTOCLAIM", status != 0 ? status : RT_EPROTO, reply);
        snprintf(s->cursor, sizeof(s->cursor), "-");
        return;
    }
    const redisReply *entries = reply->element[1];
    for (size_t i = 0; i < entries->elements; i++)
        dispatch(s, entries->element[i]);
    const redisReply *next = reply->element[0];
    bool wrapped = next->len == 3 && memcmp(next->str, "0-0", 3) == 0;
    if (wrapped || entries->elements == 0) {
        snprintf(s->cursor, sizeof(s->cursor), "-");
        return;
    }
    /* More may be pending past the cursor: follow it while workers are free; a later tick
     * resumes from it otherwise. */
    snprintf(s->cursor, sizeof(s->cursor), "%.*s", (int)next->len, next->str);
    claim(s);
}

static void claim(cons_stream_t *s)
{
    cons_t *c = s->c;
    if (c->set->stopping || s->claiming || !s->group_ready || draining(c))
        return;
    int64_t n = free_slots(s);
    if (n <= 0 || !rds_client_ready(c->cmd))
        return;
    const node_t *node = engine_of(c)->node;
    const char *group = c->cfg->redis_stream.consumer_group;
    char idle[24], count[24];
    snprintf(idle, sizeof(idle), "%lld", (long long)c->cfg->redis_stream.visibility_timeout_ms);
    snprintf(count, sizeof(count), "%lld", (long long)n);
    const char *argv[] = {"XAUTOCLAIM", s->key, group, node->uid, idle, s->cursor, "COUNT", count};
    size_t len[] = {
        10, strlen(s->key), strlen(group), strlen(node->uid), strlen(idle), strlen(s->cursor),
        5,  strlen(count)};
    int rc = rds_client_command(c->cmd, on_claim, s, 8, argv, len);
    if (rc != 0) {
        redis_failed(s, "XAUTOCLAIM", rc, NULL);
        return;
    }
    s->claiming = true;
}

static void on_reclaim(struct ev_loop *loop, ev_timer *t, int revents)
{
    claim(t->data);
}

/* ---------------------------------------------------------------------------------------
 * Connection states.
 */

static void on_cmd_state(bool up, void *ud)
{
    cons_t *c = ud;
    if (c->set->stopping)
        return;
    if (!up) {
        RT_LOG_WARN("consumer redis connection lost consumer=%s", c->name);
        count_error(c);
        return;
    }
    RT_LOG_INFO("consumer redis connected consumer=%s", c->name);
    for (size_t i = 0; i < c->nstreams; i++)
        kick(&c->streams[i]);
}

static void on_reader_state(bool up, void *ud)
{
    cons_stream_t *s = ud;
    if (up && !s->c->set->stopping)
        kick(s);
}

/* ---------------------------------------------------------------------------------------
 * Lifecycle.
 */

static void cons_init(node_consumers_t *set, cons_t *c, int index, const node_consumer_t *cfg,
                      const rds_addr_t *addr)
{
    struct ev_loop *loop = set->e->loop;
    c->set = set;
    c->index = index;
    c->cfg = cfg;
    c->name = cfg->name;
    atomic_init(&c->processed, 0);
    atomic_init(&c->errors, 0);
    c->nstreams = cfg->redis_stream.streams_count;
    c->streams = rt_calloc(c->nstreams ? c->nstreams : 1, sizeof(*c->streams));

    /* The blocking read holds its connection for up to BLOCK ms: its replies may take that
     * much longer than io_timeout before the connection counts as dead. */
    rds_addr_t raddr = *addr;
    raddr.io_timeout_ms = addr->io_timeout_ms + CONS_BLOCK_MS;
    for (size_t i = 0; i < c->nstreams; i++) {
        cons_stream_t *s = &c->streams[i];
        s->c = c;
        s->index = (int)i;
        s->key = cfg->redis_stream.streams[i];
        snprintf(s->cursor, sizeof(s->cursor), "-");
        ev_timer_init(&s->pause, on_pause, CONS_PAUSE_S, 0);
        s->pause.data = s;
        ev_timer_init(&s->reclaim, on_reclaim, CONS_RECLAIM_S, CONS_RECLAIM_S);
        s->reclaim.data = s;
        ev_timer_start(loop, &s->reclaim);
        rds_client_opts_t o;
        rds_client_opts_default(&o);
        o.on_state = on_reader_state;
        o.ud = s;
        s->reader = rds_client_new(loop, &raddr, &o);
    }
    rds_client_opts_t o;
    rds_client_opts_default(&o);
    o.on_state = on_cmd_state;
    o.ud = c;
    c->cmd = rds_client_new(loop, addr, &o);
}

void node_consumers_start(node_engine_t *e)
{
    const node_config_t *cfg = e->node->cfg;
    e->consumers = NULL;
    size_t n = 0;
    for (size_t i = 0; i < cfg->consumers_count; i++) {
        const node_consumer_t *c = &cfg->consumers[i];
        if (c->enabled && c->type_id == NODE_CONSUMER_REDIS_STREAM)
            n++;
    }
    if (n == 0)
        return;
    node_consumers_t *set = RT_NEW(node_consumers_t);
    set->e = e;
    set->items = rt_calloc(n, sizeof(*set->items));
    for (size_t i = 0; i < cfg->consumers_count; i++) {
        const node_consumer_t *cc = &cfg->consumers[i];
        if (!cc->enabled || cc->type_id != NODE_CONSUMER_REDIS_STREAM)
            continue;
        rds_addr_t addr;
        rt_buf_t err = RT_BUF_INIT;
        /* Validated at load time: a failure here is a bug. */
        int rc = node_consumer_redis_addr(cc, &addr, &err);
        RT_ASSERT(rc == 0);
        rt_buf_cleanup(&err);
        cons_init(set, &set->items[set->n], (int)set->n, cc, &addr);
        RT_LOG_INFO("consumer started consumer=%s type=redis_stream redis=%s group=%s streams=%zu "
                    "num_workers=%lld",
                    cc->name, rds_addr_name(&addr), cc->redis_stream.consumer_group,
                    cc->redis_stream.streams_count, (long long)cc->redis_stream.num_workers);
        rds_addr_cleanup(&addr);
        set->n++;
    }
    e->consumers = set;
}

void node_consumers_stop(node_engine_t *e)
{
    node_consumers_t *set = e->consumers;
    if (set == NULL)
        return;
    set->stopping = true;
    /* Cancelled replies run inside the frees below and only clear flags. */
    for (size_t i = 0; i < set->n; i++) {
        cons_t *c = &set->items[i];
        for (size_t j = 0; j < c->nstreams; j++) {
            cons_stream_t *s = &c->streams[j];
            ev_timer_stop(e->loop, &s->pause);
            ev_timer_stop(e->loop, &s->reclaim);
            rds_client_free(s->reader);
        }
        rds_client_free(c->cmd);
    }
    for (size_t i = 0; i < set->n; i++)
        rt_free(set->items[i].streams);
    rt_free(set->items);
    rt_free(set);
    e->consumers = NULL;
}

void node_consumers_render_metrics(node_consumers_t *cs, rt_buf_t *out)
{
    if (cs == NULL)
        return;
    rt_buf_append_cstr(out, "# HELP centrifugo_consumers_messages_processed_total Number of "
                            "messages processed by consumers.\n"
                            "# TYPE centrifugo_consumers_messages_processed_total counter\n");
    for (size_t i = 0; i < cs->n; i++)
        rt_buf_printf(out,
                      "centrifugo_consumers_messages_processed_total{consumer_name=\"%s\"} %llu\n",
                      cs->items[i].name,
                      (unsigned long long)atomic_load_explicit(&cs->items[i].processed,
                                                               memory_order_relaxed));
    rt_buf_append_cstr(out, "# HELP centrifugo_consumers_errors_total Number of errors in "
                            "consumers.\n"
                            "# TYPE centrifugo_consumers_errors_total counter\n");
    for (size_t i = 0; i < cs->n; i++)
        rt_buf_printf(
            out, "centrifugo_consumers_errors_total{consumer_name=\"%s\"} %llu\n",
            cs->items[i].name,
            (unsigned long long)atomic_load_explicit(&cs->items[i].errors, memory_order_relaxed));
}

/* ---------------------------------------------------------------------------------------
 * Worker side: decode the entry into (method, request JSON) and run it.
 */

static const char *const allowed_methods[] = {
    "publish", "broadcast", "subscribe", "unsubscribe", "disconnect", "history_remove", "refresh"};

static bool method_allowed(rt_str_t m)
{
    for (size_t i = 0; i < sizeof(allowed_methods) / sizeof(allowed_methods[0]); i++) {
        if (rt_str_eq_c(m, allowed_methods[i]))
            return true;
    }
    return false;
}

static const rt_str_t *entry_field(const entry_mail_t *m, const char *name)
{
    for (size_t i = 0; i < m->nfields; i++) {
        if (rt_str_eq_c(m->kv[2 * i], name))
            return &m->kv[2 * i + 1];
    }
    return NULL;
}

/* Go strconv.ParseBool. */
static int parse_bool(rt_str_t s, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (int i = 0; i < 6; i++) {
        if (rt_str_eq_c(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (rt_str_eq_c(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return RT_EINVAL;
}

static int parse_uint(rt_str_t s, uint64_t *out)
{
    uint64_t v = 0;
    if (s.n == 0 || s.n > 20)
        return RT_EINVAL;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return RT_EINVAL;
        uint64_t d = (uint64_t)(s.p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return RT_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* rt_json_write_string needs valid UTF-8; entry fields are arbitrary bytes. */
static bool utf8_json_string_ok(rt_str_t s)
{
    return rt_utf8_valid(s.p, s.n);
}

static void write_str_field(rt_buf_t *b, const char *key, rt_str_t v)
{
    rt_buf_printf(b, ",\"%s\":", key);
    rt_json_write_string(b, v);
}

/* Publication data mode (SERVER.md §4.1): the payload field is the data, the other fields
 * give the channels and options. Builds a publish (one channel) or broadcast request.
 * Returns 0, or NODE_ERR_BAD_REQUEST with *why set. */
static int build_publication(const entry_mail_t *m, rt_str_t data, rt_str_t *method, rt_buf_t *req,
                             const char **why)
{
    const node_redis_stream_consumer_t *rs = &m->cfg->redis_stream;
    const rt_str_t *chans = entry_field(m, rs->channels_value);
    size_t nch = 0;
    if (chans) {
        for (size_t i = 0, start = 0; i <= chans->n; i++) {
            if (i == chans->n || chans->p[i] == ',') {
                nch += i > start;
                start = i + 1;
            }
        }
    }
    if (nch == 0) {
        *why = "no channels field";
        return NODE_ERR_BAD_REQUEST;
    }
    rt_buf_append_byte(req, '{');
    if (nch == 1) {
        *method = RT_STR("publish");
        rt_buf_append_cstr(req, "\"channel\":");
    } else {
        *method = RT_STR("broadcast");
        rt_buf_append_cstr(req, "\"channels\":[");
    }
    bool first = true;
    for (size_t i = 0, start = 0; i <= chans->n; i++) {
        if (i == chans->n || chans->p[i] == ',') {
            rt_str_t ch = rt_str_from(chans->p + start, i - start);
            start = i + 1;
            if (ch.n == 0)
                continue;
            if (!utf8_json_string_ok(ch)) {
                *why = "channel is not valid UTF-8";
                return NODE_ERR_BAD_REQUEST;
            }
            if (!first)
                rt_buf_append_byte(req, ',');
            first = false;
            rt_json_write_string(req, ch);
        }
    }
    if (nch > 1)
        rt_buf_append_byte(req, ']');
    /* JSON data travels as is; anything else as binary (b64data). */
    if (rt_json_valid(data.p, data.n)) {
        rt_buf_append_cstr(req, ",\"data\":");
        rt_buf_append(req, data.p, data.n);
    } else {
        rt_buf_append_cstr(req, ",\"b64data\":\"");
        rt_b64_encode(req, data.p, data.n, false, true);
        rt_buf_append_byte(req, '"');
    }
    const rt_str_t *v;
    if ((v = entry_field(m, rs->idempotency_key_value)) && v->n) {
        if (!utf8_json_string_ok(*v)) {
            *why = "idempotency key is not valid UTF-8";
            return NODE_ERR_BAD_REQUEST;
        }
        write_str_field(req, "idempotency_key", *v);
    }
    if ((v = entry_field(m, rs->delta_value)) && v->n) {
        bool delta;
        if (parse_bool(*v, &delta) != 0) {
            *why = "invalid delta field";
            return NODE_ERR_BAD_REQUEST;
        }
        rt_buf_printf(req, ",\"delta\":%s", delta ? "true" : "false");
    }
    if ((v = entry_field(m, rs->version_value)) && v->n) {
        uint64_t version;
        if (parse_uint(*v, &version) != 0) {
            *why = "invalid version field";
            return NODE_ERR_BAD_REQUEST;
        }
        rt_buf_printf(req, ",\"version\":%llu", (unsigned long long)version);
    }
    if ((v = entry_field(m, rs->version_epoch_value)) && v->n) {
        if (!utf8_json_string_ok(*v)) {
            *why = "version epoch is not valid UTF-8";
            return NODE_ERR_BAD_REQUEST;
        }
        write_str_field(req, "version_epoch", *v);
    }
    rt_str_t prefix = rt_str_c(rs->tags_value_prefix);
    bool tags = false;
    for (size_t i = 0; prefix.n && i < m->nfields; i++) {
        rt_str_t k = m->kv[2 * i], val = m->kv[2 * i + 1];
        if (k.n <= prefix.n || !rt_str_starts_with(k, prefix))
            continue;
        rt_str_t tk = rt_str_from(k.p + prefix.n, k.n - prefix.n);
        if (!utf8_json_string_ok(tk) || !utf8_json_string_ok(val)) {
            *why = "tag is not valid UTF-8";
            return NODE_ERR_BAD_REQUEST;
        }
        rt_buf_append_cstr(req, tags ? "," : ",\"tags\":{");
        tags = true;
        rt_json_write_string(req, tk);
        rt_buf_append_byte(req, ':');
        rt_json_write_string(req, val);
    }
    if (tags)
        rt_buf_append_byte(req, '}');
    rt_buf_append_byte(req, '}');
    return 0;
}

/* Command mode: method from its field, or the {"method","payload"} wrapper (payload an
 * object or a JSON string holding one). *req receives the request bytes when they are not
 * payload itself (*use_payload). Returns 0 or NODE_ERR_BAD_REQUEST with *why. */
static int build_command(const entry_mail_t *m, rt_str_t payload, rt_buf_t *method_buf,
                         rt_buf_t *req, const char **why)
{
    const rt_str_t *method = entry_field(m, m->cfg->redis_stream.method_value);
    if (method && method->n) {
        rt_buf_append_str(method_buf, *method);
        rt_buf_append_str(req, payload);
        return 0;
    }
    rt_json_doc_t doc;
    int rc = NODE_ERR_BAD_REQUEST;
    if (rt_json_parse(&doc, payload.p, payload.n, 0) != 0 || doc.root->type != RT_JSON_OBJECT) {
        *why = "payload is not a JSON object";
        goto out;
    }
    const rt_json_t *mv = rt_json_get(doc.root, "method");
    const rt_json_t *pv = rt_json_get(doc.root, "payload");
    if (mv == NULL || rt_json_get_string(mv, method_buf) != 0 || method_buf->len == 0) {
        *why = "wrapper without a method string";
        goto out;
    }
    if (pv && pv->type == RT_JSON_OBJECT) {
        rt_buf_append_str(req, pv->raw);
    } else if (pv && pv->type == RT_JSON_STRING) {
        /* A string value always unescapes: the parser validated it. */
        RT_ASSERT(rt_json_get_string(pv, req) == 0);
    } else {
        *why = "wrapper payload is neither an object nor a string";
        goto out;
    }
    rc = 0;
out:
    rt_json_doc_cleanup(&doc);
    return rc;
}

static void on_exec_done(void *ud, int code)
{
    entry_result_t *r = ud;
    r->op.status = code;
    r->op.mail.fn = on_result;
    rt_mailbox_post(&r->op.engine->mailbox, &r->op.mail);
}

static void on_entry_mail(rt_mail_t *mail, void *ctx)
{
    node_worker_t *w = ctx;
    entry_mail_t *m = (entry_mail_t *)mail;
    const node_redis_stream_consumer_t *rs = &m->cfg->redis_stream;
    /* Filled as node_op_new() would: no answer to a worker, engine-side handling only. */
    entry_result_t *r = RT_NEW(entry_result_t);
    r->op.kind = NODE_OP_CONTROL;
    r->op.worker = w->index;
    r->op.engine = w->node->engine;
    r->op.ref_id = (uint64_t)m->consumer;
    r->op.sub_serial = (uint64_t)m->stream;
    r->op.channel = node_op_copy(&r->op, m->id);

    rt_buf_t method = RT_BUF_INIT, req = RT_BUF_INIT;
    const char *why = NULL;
    int rc;
    const rt_str_t *payload = entry_field(m, rs->payload_value);
    if (payload == NULL) {
        why = "no payload field";
        rc = NODE_ERR_BAD_REQUEST;
    } else if (rs->publication_data_mode) {
        rt_str_t name = RT_STR("");
        rc = build_publication(m, *payload, &name, &req, &why);
        rt_buf_append_str(&method, name);
    } else {
        rc = build_command(m, *payload, &method, &req, &why);
    }
    if (rc == 0 && !method_allowed(rt_buf_str(&method))) {
        why = "method not supported by consumers";
        rc = NODE_ERR_METHOD_NOT_FOUND;
    }
    if (rc != 0) {
        RT_LOG_INFO("consumer entry skipped consumer=%s stream=%s id=%.*s reason=\"%s\"",
                    m->cfg->name, rs->streams[m->stream], RT_STR_ARG(m->id), why);
        r->skipped = true;
        on_exec_done(r, rc);
    } else {
        /* Allowed methods are short literals: it fits. */
        snprintf(r->method, sizeof(r->method), "%.*s", (int)method.len, (const char *)method.p);
        RT_LOG_DEBUG("consumer entry consumer=%s stream=%s id=%.*s method=%s", m->cfg->name,
                     rs->streams[m->stream], RT_STR_ARG(m->id), r->method);
        node_api_exec(w, rt_buf_str(&method), rt_buf_str(&req), on_exec_done, r);
    }
    rt_buf_cleanup(&method);
    rt_buf_cleanup(&req);
    rt_free(m);
}
