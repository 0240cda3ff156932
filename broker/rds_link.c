/* One reconnecting hiredis connection: connect (TCP or unix) with a timeout, AUTH, SELECT
 * and PING before reporting up, teardown and reconnect with exponential backoff plus
 * jitter.
 *
 * Sentinel mode (SERVER.md §3.15): every attempt first asks the Sentinels, one at a time
 * with the connect and io timeouts and AUTH if configured, SENTINEL get-master-addr-by-name;
 * the first answer names the server that attempt dials, and the handshake also checks
 * ROLE so that a demoted master (Sentinel's view may lag) is never reported up. While up,
 * the Sentinels are asked again every RDS_SENTINEL_RECHECK_MS and the link is dropped when
 * they name another master. A failover is therefore followed on the next attempt after the
 * old master's connection breaks (Sentinel also kills the clients of a demoted master), or
 * within one re-check at the latest.
 *
 * Lifetime of a hiredis context (0.14 semantics, async.c): once connected, hiredis calls
 * every pending callback with a NULL reply and then the disconnect callback, last, before
 * freeing it; a context that never connected gets at most the connect callback. A
 * redisAsyncFree() from inside a reply callback is deferred until that callback returns.
 * So the per-context record (rds__conn_t) is freed in the disconnect callback when the
 * context had connected, and by us otherwise; the link detaches from it first, after
 * which every late callback finds conn->link == NULL and does nothing.
 *
 * TLS (rds_tls.h): a TLS connection dials a relay created for that one connection and
 * owned by its rds__conn_t, so the relay lives exactly as long as hiredis' context and
 * never outlives the fd it serves. When the relay gives up (refused, certificate, timeout)
 * it closes hiredis' side; the failure line then carries the relay's reason. */
#include "broker/rds_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>

#include "broker/rds_tls.h"
#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/base/rand.h"

struct rds__conn {
    rds__link_t *link;      /* borrowed; NULL once the link stopped caring about this context */
    bool connected;         /* hiredis will call on_disconnect last and we free there */
    rds_tls_relay_t *relay; /* owned; the TLS relay hiredis dials, NULL without TLS */
};

static void conn_free(rds__conn_t *conn)
{
    rds_tls_relay_free(conn->relay);
    rt_free(conn);
}

/* The relay's reason for the failure (copied into buf), or detail when it has none. */
static const char *relay_detail(rds__conn_t *conn, const char *detail, char *buf, size_t n)
{
    if (conn != NULL && conn->relay != NULL && rds_tls_relay_take_error(conn->relay, buf, n))
        return buf;
    return detail;
}

static void link_connect(rds__link_t *l);
static void link_connect_master(rds__link_t *l);
static void sq_start(rds__link_t *l, bool recheck);
static void sq_cancel(rds__link_t *l);

static bool is_sentinel(const rds__link_t *l)
{
    return l->addr.mode == RDS_MODE_SENTINEL;
}

static void update_name(rds__link_t *l)
{
    if (!is_sentinel(l) || l->master_host == NULL) {
        snprintf(l->name, sizeof(l->name), "%s", rds_addr_name(&l->addr));
        return;
    }
    const char *host = l->master_host;
    bool v6 = strchr(host, ':') != NULL;
    snprintf(l->name, sizeof(l->name), "%s%s%s:%d (sentinel master %s)", v6 ? "[" : "", host,
             v6 ? "]" : "", l->master_port, l->addr.sentinel_master);
}

static void schedule_retry(rds__link_t *l)
{
    int64_t base = l->backoff_max_ms;
    unsigned shift = l->attempts;
    if (shift < 30 && (l->backoff_min_ms << shift) < l->backoff_max_ms)
        base = l->backoff_min_ms << shift;
    if (base < 1)
        base = 1;
    /* Half fixed, half random: nodes restarted together do not reconnect in lockstep. */
    int64_t delay = base / 2 + (int64_t)(rt_random_u64() % (uint64_t)(base / 2 + 1));
    if (l->attempts < 64)
        l->attempts++;
    ev_timer_stop(l->loop, &l->retry_timer);
    ev_timer_set(&l->retry_timer, (double)delay / 1000.0, 0.0);
    ev_timer_start(l->loop, &l->retry_timer);
}

/* A streak of failed attempts logs once at WARN, then at DEBUG until the next success. */
static void log_failure(rds__link_t *l, const char *why, const char *detail)
{
    if (!l->warned) {
        l->warned = true;
        RT_LOG_WARN("redis connect failed kind=%s addr=%s reason=\"%s%s%s\"", l->kind, l->name, why,
                    detail ? ": " : "", detail ? detail : "");
    } else {
        RT_LOG_DEBUG("redis connect failed kind=%s addr=%s reason=\"%s%s%s\"", l->kind, l->name,
                     why, detail ? ": " : "", detail ? detail : "");
    }
}

/* Stops caring about one context. With free_ctx the context is ours to free (we are not
 * inside its teardown); otherwise hiredis is already freeing it. */
static void release_ctx(redisAsyncContext *ac, rds__conn_t *conn, bool free_ctx)
{
    if (conn == NULL)
        return;
    conn->link = NULL;
    if (free_ctx) {
        bool connected = conn->connected;
        /* With connected set this runs (maybe later) on_disconnect, which frees conn. */
        redisAsyncFree(ac);
        if (!connected)
            conn_free(conn);
    }
}

/* Forgets the current context (and a Sentinel re-check of it). */
static void detach(rds__link_t *l, bool free_ctx)
{
    rds__conn_t *conn = l->conn;
    redisAsyncContext *ac = l->ac;
    l->conn = NULL;
    l->ac = NULL;
    l->up = false;
    l->handshake_left = 0;
    ev_timer_stop(l->loop, &l->setup_timer);
    ev_timer_stop(l->loop, &l->recheck_timer);
    if (l->sq_active && l->sq_recheck)
        sq_cancel(l);
    release_ctx(ac, conn, free_ctx);
}

/* Last statement of every caller: on_down may free the owner and with it l. */
static void teardown(rds__link_t *l, int status, bool free_ctx, const char *why, const char *detail)
{
    char tls_why[256];
    detail = relay_detail(l->conn, detail, tls_why, sizeof(tls_why));
    bool was_up = l->up;
    if (was_up) {
        RT_LOG_WARN("redis connection lost kind=%s addr=%s reason=\"%s%s%s\"", l->kind, l->name,
                    why, detail ? ": " : "", detail ? detail : "");
        l->warned = true;
    } else {
        log_failure(l, why, detail);
    }
    detach(l, free_ctx);
    schedule_retry(l);
    if (was_up)
        l->ops->on_down(l, status);
}

static bool reply_is_master(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           (r->element[0]->type == REDIS_REPLY_STRING ||
            r->element[0]->type == REDIS_REPLY_STATUS) &&
           r->element[0]->len == 6 && memcmp(r->element[0]->str, "master", 6) == 0;
}

/* The ROLE reply's first element, for the log. */
static void reply_role(const redisReply *r, char *out, size_t n)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->str != NULL)
        snprintf(out, n, "ROLE %.*s", (int)r->element[0]->len, r->element[0]->str);
    else
        snprintf(out, n, "unexpected ROLE reply type %d", r->type);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    rds__conn_t *conn = privdata;
    rds__link_t *l = conn->link;
    if (l == NULL)
        return;
    if (reply == NULL) {
        teardown(l, RT_ECLOSED, false, "connection closed", ac->errstr);
        return;
    }
    redisReply *r = reply;
    if (l->handshake_left == 0) {
        l->ops->on_reply(l, r);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* The error text (WRONGPASS, NOAUTH, ERR DB index...) carries no secret. */
        teardown(l, RT_EREDIS, true, "handshake refused", r->str);
        return;
    }
    if (l->handshake_left == 1 && is_sentinel(l) && !reply_is_master(r)) {
        char role[64];
        reply_role(r, role, sizeof(role));
        teardown(l, RT_EREDIS, true, "not the master (Sentinel's view lags)", role);
        return;
    }
    if (--l->handshake_left > 0)
        return;
    l->up = true;
    l->attempts = 0;
    l->warned = false;
    ev_timer_stop(l->loop, &l->setup_timer);
    if (is_sentinel(l)) {
        ev_timer_set(&l->recheck_timer, RDS_SENTINEL_RECHECK_MS / 1000.0,
                     RDS_SENTINEL_RECHECK_MS / 1000.0);
        ev_timer_start(l->loop, &l->recheck_timer);
    }
    RT_LOG_INFO("redis connected kind=%s addr=%s db=%d", l->kind, l->name, l->addr.db);
    l->ops->on_up(l);
}

static int send_raw(rds__link_t *l, int argc, const char **argv, const size_t *argvlen)
{
    if (l->ac == NULL)
        return RT_ECLOSED;
    if (redisAsyncCommandArgv(l->ac, on_reply, l->conn, argc, argv, argvlen) != REDIS_OK)
        return RT_ECLOSED;
    return 0;
}

static int send_handshake(rds__link_t *l)
{
    int rc = 0;
    if (l->addr.password[0] != '\0') {
        const char *argv[3] = {"AUTH", l->addr.user, l->addr.password};
        size_t lens[3] = {4, strlen(l->addr.user), strlen(l->addr.password)};
        /* Without a user name: the one-argument form, which Redis < 6 also knows. */
        if (l->addr.user[0] == '\0')
            rc = send_raw(l, 2, (const char *[]){argv[0], argv[2]},
                          (const size_t[]){lens[0], lens[2]});
        else
            rc = send_raw(l, 3, argv, lens);
        l->handshake_left++;
    }
    if (rc == 0 && l->addr.db != 0) {
        char db[16];
        int n = snprintf(db, sizeof(db), "%d", l->addr.db);
        rc = send_raw(l, 2, (const char *[]){"SELECT", db}, (const size_t[]){6, (size_t)n});
        l->handshake_left++;
    }
    if (rc == 0) {
        /* Also with nothing else to send: proves the server answers (not LOADING, not
         * asking for a password we lack) before anyone is told the link is up. */
        rc = send_raw(l, 1, (const char *[]){"PING"}, (const size_t[]){4});
        l->handshake_left++;
    }
    if (rc == 0 && is_sentinel(l)) {
        /* Last, so that on_reply knows which reply it is. */
        rc = send_raw(l, 1, (const char *[]){"ROLE"}, (const size_t[]){4});
        l->handshake_left++;
    }
    return rc;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rds__conn_t *conn = ac->data;
    rds__link_t *l = conn->link;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns and calls nothing else. */
        if (l != NULL)
            teardown(l, RT_ECLOSED, false, "connect", ac->c.errstr);
        conn_free(conn);
        return;
    }
    conn->connected = true;
    if (l == NULL)
        return;
    ev_timer_stop(l->loop, &l->setup_timer);
    ev_timer_set(&l->setup_timer, (double)l->addr.io_timeout_ms / 1000.0, 0.0);
    ev_timer_start(l->loop, &l->setup_timer);
    if (send_handshake(l) != 0)
        teardown(l, RT_ECLOSED, true, "handshake", "cannot queue commands");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rds__conn_t *conn = ac->data;
    rds__link_t *l = conn->link;
    if (l != NULL)
        teardown(l, RT_ECLOSED, false, "connection closed",
                 ac->errstr && ac->errstr[0] ? ac->errstr : "by peer");
    conn_free(conn);
}

static void on_setup_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    rds__link_t *l = w->data;
    bool connected = l->conn != NULL && l->conn->connected;
    teardown(l, RT_ETIMEOUT, true, connected ? "handshake timeout" : "connect timeout", NULL);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    link_connect(w->data);
}

/* hiredis's own object functions (the same table for every reader), wrapped below. */
static redisReplyObjectFunctions *hiredis_fns;
static redisReplyObjectFunctions bounded_fns;
static pthread_once_t bounded_once = PTHREAD_ONCE_INIT;

static void *create_array_bounded(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > RDS_MAX_REPLY_ELEMENTS)
        return NULL; /* hiredis: "Out of memory", the reader fails */
    return hiredis_fns->createArray(task, elements);
}

static void init_bounded_fns(void)
{
    /* Every hiredis context's reader comes from redisReaderCreate(): one throwaway reader
     * shows which table that is. */
    redisReader *probe = redisReaderCreate();
    RT_ASSERT(probe != NULL);
    hiredis_fns = probe->fn;
    redisReaderFree(probe);
    bounded_fns = *hiredis_fns;
    bounded_fns.createArray = create_array_bounded;
}

void rds__reader_bound(redisReader *r)
{
    pthread_once(&bounded_once, init_bounded_fns);
    RT_ASSERT(r->fn == hiredis_fns || r->fn == &bounded_fns);
    r->fn = &bounded_fns;
}

/* Starts a hiredis connection to unix_path when set, else host:port: directly, or through
 * a new TLS relay when tls->enabled (*relay receives it; the caller owns it). Returns the
 * attached context, or NULL with the reason in why. */
static redisAsyncContext *dial(rds__link_t *l, const rds_tls_t *tls, const char *host, int port,
                               const char *unix_path, rds_tls_relay_t **relay, char *why,
                               size_t why_n)
{
    *relay = NULL;
    redisAsyncContext *ac;
    if (unix_path[0] != '\0') {
        ac = redisAsyncConnectUnix(unix_path);
    } else if (!tls->enabled) {
        ac = redisAsyncConnect(host, port);
    } else {
        rt_buf_t err = RT_BUF_INIT;
        int rc =
            rds_tls_relay_new(l->loop, tls, host, port, l->addr.connect_timeout_ms, relay, &err);
        if (rc != 0)
            snprintf(why, why_n, "%.*s", (int)err.len, err.p ? (const char *)err.p : "");
        rt_buf_cleanup(&err);
        if (rc != 0)
            return NULL;
        ac = redisAsyncConnectUnix(rds_tls_relay_path(*relay));
    }
    if (ac == NULL || ac->err || redisLibevAttach(l->loop, ac) != REDIS_OK) {
        snprintf(why, why_n, "%s", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        rds_tls_relay_free(*relay);
        *relay = NULL;
        return NULL;
    }
    rds__reader_bound(ac->c.reader);
    return ac;
}

/* ---- Sentinel queries ------------------------------------------------------------------ */

static void sq_release(rds__link_t *l, bool free_ctx)
{
    redisAsyncContext *ac = l->sq_ac;
    rds__conn_t *conn = l->sq_conn;
    l->sq_ac = NULL;
    l->sq_conn = NULL;
    l->sq_left = 0;
    ev_timer_stop(l->loop, &l->sq_timer);
    release_ctx(ac, conn, free_ctx);
}

static void sq_cancel(rds__link_t *l)
{
    sq_release(l, true);
    l->sq_active = false;
}

static void sq_next(rds__link_t *l);

/* The current Sentinel did not answer usefully: the query moves on to the next one. */
static void sq_failed(rds__link_t *l, bool free_ctx, const char *why, const char *detail)
{
    char tls_why[256];
    detail = relay_detail(l->sq_conn, detail, tls_why, sizeof(tls_why));
    const char *seed = l->addr.seeds[l->sentinel_next % l->addr.nseeds];
    /* sq_error is short: a long TLS reason is cut, which is fine for a log line. */
    snprintf(l->sq_error, sizeof(l->sq_error), "sentinel %s: %s%s%.100s", seed, why,
             detail ? ": " : "", detail ? detail : "");
    RT_LOG_DEBUG("redis sentinel query failed kind=%s master=%s %s", l->kind,
                 l->addr.sentinel_master, l->sq_error);
    sq_release(l, free_ctx);
    l->sentinel_next = (l->sentinel_next + 1) % l->addr.nseeds;
    sq_next(l);
}

/* The query found host:port (copied). Last statement of its callers: it may drop the link
 * (a re-check that found another master), and the owner may free l then. */
static void sq_done(rds__link_t *l, const char *host, int port)
{
    sq_release(l, true);
    l->sq_active = false;
    bool moved =
        l->master_host == NULL || strcmp(l->master_host, host) != 0 || l->master_port != port;
    if (moved) {
        rt_free(l->master_host);
        l->master_host = rt_strdup(host);
        l->master_port = port;
    }
    if (!l->sq_recheck) {
        update_name(l);
        link_connect_master(l);
        return;
    }
    if (moved) {
        RT_LOG_WARN("redis sentinel reports a new master kind=%s master=%s addr=%s:%d", l->kind,
                    l->addr.sentinel_master, host, port);
        /* The name keeps the old address for the "lost" line; the next attempt asks again. */
        rds__link_drop(l, RT_ECLOSED);
    }
}

/* Every Sentinel failed. Before a connect attempt that is a failed attempt; for a
 * re-check nothing changes (the link itself still works). */
static void sq_exhausted(rds__link_t *l)
{
    l->sq_active = false;
    if (l->sq_recheck) {
        RT_LOG_DEBUG("redis sentinel re-check failed kind=%s master=%s last=\"%s\"", l->kind,
                     l->addr.sentinel_master, l->sq_error);
        return;
    }
    log_failure(l, "no Sentinel named the master", l->sq_error);
    schedule_retry(l);
}

static void sq_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    rds__conn_t *conn = privdata;
    rds__link_t *l = conn->link;
    if (l == NULL)
        return;
    redisReply *r = reply;
    if (r == NULL) {
        sq_failed(l, false, "connection closed", ac->errstr);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        sq_failed(l, true, "refused", r->str);
        return;
    }
    if (--l->sq_left > 0)
        return; /* the AUTH reply */
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        sq_failed(l, true, "master unknown", r->type == REDIS_REPLY_NIL ? "nil reply" : NULL);
        return;
    }
    char host[256], port_s[16];
    const redisReply *h = r->element[0], *p = r->element[1];
    char *end = NULL;
    long port = 0;
    if (h->len == 0 || h->len >= sizeof(host) || memchr(h->str, '\0', h->len) != NULL ||
        p->len == 0 || p->len >= sizeof(port_s)) {
        sq_failed(l, true, "malformed master address", NULL);
        return;
    }
    memcpy(host, h->str, h->len);
    host[h->len] = '\0';
    memcpy(port_s, p->str, p->len);
    port_s[p->len] = '\0';
    port = strtol(port_s, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535) {
        sq_failed(l, true, "malformed master port", port_s);
        return;
    }
    sq_done(l, host, (int)port);
}

static int sq_send(rds__link_t *l, int argc, const char **argv, const size_t *argvlen)
{
    l->sq_left++;
    if (redisAsyncCommandArgv(l->sq_ac, sq_on_reply, l->sq_conn, argc, argv, argvlen) != REDIS_OK)
        return RT_ECLOSED;
    return 0;
}

static void sq_on_connect(const redisAsyncContext *ac, int status)
{
    rds__conn_t *conn = ac->data;
    rds__link_t *l = conn->link;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns and calls nothing else. */
        if (l != NULL)
            sq_failed(l, false, "connect", ac->c.errstr);
        conn_free(conn);
        return;
    }
    conn->connected = true;
    if (l == NULL)
        return;
    ev_timer_stop(l->loop, &l->sq_timer);
    ev_timer_set(&l->sq_timer, (double)l->addr.io_timeout_ms / 1000.0, 0.0);
    ev_timer_start(l->loop, &l->sq_timer);
    const char *su = l->addr.sentinel_user, *sp = l->addr.sentinel_password;
    int rc = 0;
    if (sp[0] != '\0' && su[0] != '\0')
        rc = sq_send(l, 3, (const char *[]){"AUTH", su, sp},
                     (const size_t[]){4, strlen(su), strlen(sp)});
    else if (sp[0] != '\0')
        rc = sq_send(l, 2, (const char *[]){"AUTH", sp}, (const size_t[]){4, strlen(sp)});
    const char *m = l->addr.sentinel_master;
    if (rc == 0)
        rc = sq_send(l, 3, (const char *[]){"SENTINEL", "get-master-addr-by-name", m},
                     (const size_t[]){8, 23, strlen(m)});
    if (rc != 0)
        sq_failed(l, true, "cannot queue commands", NULL);
}

static void sq_on_disconnect(const redisAsyncContext *ac, int status)
{
    rds__conn_t *conn = ac->data;
    rds__link_t *l = conn->link;
    if (l != NULL)
        sq_failed(l, false, "connection closed",
                  ac->errstr && ac->errstr[0] ? ac->errstr : "by peer");
    conn_free(conn);
}

static void sq_on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    rds__link_t *l = w->data;
    sq_failed(l, true,
              l->sq_conn != NULL && l->sq_conn->connected ? "reply timeout" : "connect timeout",
              NULL);
}

/* Dials the next Sentinel of the query, or ends it when each was tried once. */
static void sq_next(rds__link_t *l)
{
    while (l->sq_tries < l->addr.nseeds) {
        l->sq_tries++;
        const char *seed = l->addr.seeds[l->sentinel_next];
        char *host = NULL;
        int port = 0;
        redisAsyncContext *ac = NULL;
        rds_tls_relay_t *relay = NULL;
        char why[256] = "bad address";
        if (rds_addr_seed_split(seed, &host, &port) == 0)
            ac = dial(l, &l->addr.sentinel_tls, host, port, "", &relay, why, sizeof(why));
        rt_free(host);
        if (ac == NULL) {
            snprintf(l->sq_error, sizeof(l->sq_error), "sentinel %.40s: connect: %.96s", seed, why);
            l->sentinel_next = (l->sentinel_next + 1) % l->addr.nseeds;
            continue;
        }
        rds__conn_t *conn = RT_NEW(rds__conn_t);
        conn->link = l;
        conn->relay = relay;
        ac->data = conn;
        l->sq_ac = ac;
        l->sq_conn = conn;
        redisAsyncSetConnectCallback(ac, sq_on_connect);
        redisAsyncSetDisconnectCallback(ac, sq_on_disconnect);
        ev_now_update(l->loop);
        ev_timer_set(&l->sq_timer, (double)l->addr.connect_timeout_ms / 1000.0, 0.0);
        ev_timer_start(l->loop, &l->sq_timer);
        return;
    }
    sq_exhausted(l);
}

static void sq_start(rds__link_t *l, bool recheck)
{
    RT_ASSERT(!l->sq_active);
    l->sq_active = true;
    l->sq_recheck = recheck;
    l->sq_tries = 0;
    l->sq_error[0] = '\0';
    sq_next(l);
}

static void on_recheck(struct ev_loop *loop, ev_timer *w, int revents)
{
    rds__link_t *l = w->data;
    if (l->up && !l->sq_active)
        sq_start(l, true);
}

/* ---- connecting ------------------------------------------------------------------------ */

static void link_connect(rds__link_t *l)
{
    if (is_sentinel(l)) {
        sq_start(l, false);
        return;
    }
    link_connect_master(l);
}

static void link_connect_master(rds__link_t *l)
{
    const char *host = is_sentinel(l) ? l->master_host : l->addr.host;
    int port = is_sentinel(l) ? l->master_port : l->addr.port;
    rds_tls_relay_t *relay = NULL;
    char why[256];
    redisAsyncContext *ac =
        dial(l, &l->addr.tls, host, port, l->addr.unix_path, &relay, why, sizeof(why));
    if (ac == NULL) {
        log_failure(l, "connect", why);
        schedule_retry(l);
        return;
    }
    rds__conn_t *conn = RT_NEW(rds__conn_t);
    conn->link = l;
    conn->relay = relay;
    ac->data = conn;
    l->ac = ac;
    l->conn = conn;
    /* After the attach: setting the connect callback arms the write watcher. */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* The first attempt runs from rds_*_new(), possibly long after the loop last woke:
     * a stale ev_now() would fire the connect timeout before the socket is ever polled. */
    ev_now_update(l->loop);
    ev_timer_set(&l->setup_timer, (double)l->addr.connect_timeout_ms / 1000.0, 0.0);
    ev_timer_start(l->loop, &l->setup_timer);
}

void rds__link_init(rds__link_t *l, struct ev_loop *loop, const rds_addr_t *addr,
                    const rds__link_ops_t *ops, const char *kind, int64_t backoff_min_ms,
                    int64_t backoff_max_ms)
{
    memset(l, 0, sizeof(*l));
    l->loop = loop;
    rds__addr_copy(&l->addr, addr);
    if (l->addr.connect_timeout_ms <= 0)
        l->addr.connect_timeout_ms = 1000;
    if (l->addr.io_timeout_ms <= 0)
        l->addr.io_timeout_ms = 4000;
    l->ops = ops;
    l->kind = kind;
    l->backoff_min_ms = backoff_min_ms > 0 ? backoff_min_ms : 100;
    l->backoff_max_ms = backoff_max_ms >= l->backoff_min_ms ? backoff_max_ms : l->backoff_min_ms;
    ev_init(&l->setup_timer, on_setup_timeout);
    l->setup_timer.data = l;
    ev_init(&l->retry_timer, on_retry);
    l->retry_timer.data = l;
    ev_init(&l->sq_timer, sq_on_timeout);
    l->sq_timer.data = l;
    ev_init(&l->recheck_timer, on_recheck);
    l->recheck_timer.data = l;
    update_name(l);
    link_connect(l);
}

void rds__link_cleanup(rds__link_t *l)
{
    ev_timer_stop(l->loop, &l->retry_timer);
    detach(l, true);
    sq_cancel(l);
    rt_free(l->master_host);
    l->master_host = NULL;
    rds_addr_cleanup(&l->addr);
}

void rds__link_drop(rds__link_t *l, int status)
{
    if (l->ac == NULL)
        return;
    teardown(l, status, true, status == RT_ETIMEOUT ? "timeout" : "dropped", NULL);
}

int rds__link_send(rds__link_t *l, int argc, const char **argv, const size_t *argvlen)
{
    if (!l->up)
        return RT_ECLOSED;
    return send_raw(l, argc, argv, argvlen);
}
