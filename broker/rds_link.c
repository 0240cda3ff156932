/* One reconnecting hiredis connection: connect (TCP or unix) with a timeout, AUTH, SELECT
 * and PING before reporting up, teardown and reconnect with exponential backoff plus
 * jitter.
 *
 * Lifetime of a hiredis context (0.14 semantics, async.c): once connected, hiredis calls
 * every pending callback with a NULL reply and then the disconnect callback, last, before
 * freeing it; a context that never connected gets at most the connect callback. A
 * redisAsyncFree() from inside a reply callback is deferred until that callback returns.
 * So the per-context record (rds__conn_t) is freed in the disconnect callback when the
 * context had connected, and by us otherwise; the link detaches from it first, after
 * which every late callback finds conn->link == NULL and does nothing. */
#include "broker/rds_internal.h"

#include <stdio.h>

#include <hiredis/adapters/libev.h>

#include "node/base/alloc.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/base/rand.h"

struct rds__conn {
    rds__link_t *link; /* borrowed; NULL once the link stopped caring about this context */
    bool connected;    /* hiredis will call on_disconnect last and we free there */
};

static void link_connect(rds__link_t *l);

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
        RT_LOG_WARN("redis connect failed kind=%s addr=%s reason=\"%s%s%s\"", l->kind,
                    rds_addr_name(&l->addr), why, detail ? ": " : "", detail ? detail : "");
    } else {
        RT_LOG_DEBUG("redis connect failed kind=%s addr=%s reason=\"%s%s%s\"", l->kind,
                     rds_addr_name(&l->addr), why, detail ? ": " : "", detail ? detail : "");
    }
}

/* Forgets the current context. With free_ctx the context is ours to free (we are not
 * inside its teardown); otherwise hiredis is already freeing it. */
static void detach(rds__link_t *l, bool free_ctx)
{
    rds__conn_t *conn = l->conn;
    redisAsyncContext *ac = l->ac;
    l->conn = NULL;
    l->ac = NULL;
    l->up = false;
    l->handshake_left = 0;
    ev_timer_stop(l->loop, &l->setup_timer);
    if (conn == NULL)
        return;
    conn->link = NULL;
    if (free_ctx) {
        bool connected = conn->connected;
        /* With connected set this runs (maybe later) on_disconnect, which frees conn. */
        redisAsyncFree(ac);
        if (!connected)
            rt_free(conn);
    }
}

/* Last statement of every caller: on_down may free the owner and with it l. */
static void teardown(rds__link_t *l, int status, bool free_ctx, const char *why, const char *detail)
{
    bool was_up = l->up;
    if (was_up) {
        RT_LOG_WARN("redis connection lost kind=%s addr=%s reason=\"%s%s%s\"", l->kind,
                    rds_addr_name(&l->addr), why, detail ? ": " : "", detail ? detail : "");
        l->warned = true;
    } else {
        log_failure(l, why, detail);
    }
    detach(l, free_ctx);
    schedule_retry(l);
    if (was_up)
        l->ops->on_down(l, status);
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
    if (--l->handshake_left > 0)
        return;
    l->up = true;
    l->attempts = 0;
    l->warned = false;
    ev_timer_stop(l->loop, &l->setup_timer);
    RT_LOG_INFO("redis connected kind=%s addr=%s db=%d", l->kind, rds_addr_name(&l->addr),
                l->addr.db);
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
        rt_free(conn);
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
    rt_free(conn);
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

static void link_connect(rds__link_t *l)
{
    redisAsyncContext *ac = l->addr.unix_path[0] != '\0'
                                ? redisAsyncConnectUnix(l->addr.unix_path)
                                : redisAsyncConnect(l->addr.host, l->addr.port);
    if (ac == NULL || ac->err || redisLibevAttach(l->loop, ac) != REDIS_OK) {
        log_failure(l, "connect", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_retry(l);
        return;
    }
    rds__conn_t *conn = RT_NEW(rds__conn_t);
    conn->link = l;
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
    link_connect(l);
}

void rds__link_cleanup(rds__link_t *l)
{
    ev_timer_stop(l->loop, &l->retry_timer);
    detach(l, true);
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
