/* The pipelined command connection: a FIFO of sent commands mirroring hiredis' callback
 * list, one lazily re-armed timer for the oldest command's deadline (all commands share
 * io_timeout, so the head always expires first), keep-alive PINGs while idle, and Lua
 * scripts through EVALSHA with an EVAL fallback. */
#include "broker/rds.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "broker/rds_internal.h"
#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/log.h"

#define KEEPALIVE_INTERVAL_S 1.0

typedef struct req {
    struct req *next;   /* owned by the queue */
    rds_reply_cb cb;    /* NULL for internal keep-alive PINGs */
    void *ud;           /* borrowed, the caller's */
    ev_tstamp deadline; /* ev_now() at send + io_timeout */
} req_t;

struct rds_client {
    rds__link_t link; /* first member: ops callbacks cast the link back */
    rds_client_opts_t opts;
    req_t *head; /* owned: sent and unanswered, in send order (= hiredis' order) */
    req_t *tail; /* borrowed: last of head's list */
    size_t inflight;
    ev_timer cmd_timer;       /* at or before the head's deadline */
    ev_timer keepalive_timer; /* repeating KEEPALIVE_INTERVAL_S */
    rds__guard_t *guards;     /* innermost dispatch in progress, or NULL */
};

void rds_client_opts_default(rds_client_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->max_inflight = 16384;
    o->reconnect_min_ms = 100;
    o->reconnect_max_ms = 2000;
}

static req_t *pop(rds_client_t *c)
{
    req_t *q = c->head;
    if (q == NULL)
        return NULL;
    c->head = q->next;
    if (c->head == NULL)
        c->tail = NULL;
    if (q->cb != NULL)
        c->inflight--;
    return q;
}

static int enqueue(rds_client_t *c, rds_reply_cb cb, void *ud, int argc, const char **argv,
                   const size_t *argvlen)
{
    int rc = rds__link_send(&c->link, argc, argv, argvlen);
    if (rc != 0)
        return rc;
    req_t *q = rt_malloc(sizeof(*q));
    q->next = NULL;
    q->cb = cb;
    q->ud = ud;
    q->deadline = ev_now(c->link.loop) + (double)c->link.addr.io_timeout_ms / 1000.0;
    if (c->tail != NULL)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    if (cb != NULL)
        c->inflight++;
    if (!ev_is_active(&c->cmd_timer)) {
        ev_timer_set(&c->cmd_timer, (double)c->link.addr.io_timeout_ms / 1000.0, 0.0);
        ev_timer_start(c->link.loop, &c->cmd_timer);
    }
    return 0;
}

static void on_cmd_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    rds_client_t *c = w->data;
    req_t *h = c->head;
    if (h == NULL)
        return;
    ev_tstamp left = h->deadline - ev_now(loop);
    if (left > 0.001) {
        ev_timer_set(w, left, 0.0);
        ev_timer_start(loop, w);
        return;
    }
    RT_LOG_WARN("redis command timed out addr=%s io_timeout_ms=%lld", rds_addr_name(&c->link.addr),
                (long long)c->link.addr.io_timeout_ms);
    rds__link_drop(&c->link, RT_ETIMEOUT);
}

static void on_keepalive(struct ev_loop *loop, ev_timer *w, int revents)
{
    rds_client_t *c = w->data;
    /* Busy connections are watched by their commands' deadlines already. */
    if (c->link.up && c->head == NULL) {
        int rc = enqueue(c, NULL, NULL, 1, (const char *[]){"PING"}, (const size_t[]){4});
        if (rc != 0)
            RT_LOG_DEBUG("redis keep-alive not sent addr=%s err=%s", rds_addr_name(&c->link.addr),
                         rt_strerror(rc));
    }
}

static void client_on_up(rds__link_t *l)
{
    rds_client_t *c = (rds_client_t *)l;
    if (c->opts.on_state != NULL)
        c->opts.on_state(true, c->opts.ud);
}

static void client_on_down(rds__link_t *l, int status)
{
    rds_client_t *c = (rds_client_t *)l;
    ev_timer_stop(l->loop, &c->cmd_timer);
    rds__guard_t g;
    rds__guard_push(&c->guards, &g);
    /* The first command is the one that timed out (or was on the wire when the
     * connection died); the rest merely shared the connection. */
    int st = status;
    req_t *q;
    while ((q = pop(c)) != NULL) {
        rds_reply_cb cb = q->cb;
        void *ud = q->ud;
        rt_free(q);
        if (cb != NULL) {
            cb(st, NULL, ud);
            if (g.dead)
                return;
        }
        st = RT_ECLOSED;
    }
    if (c->opts.on_state != NULL) {
        c->opts.on_state(false, c->opts.ud);
        if (g.dead)
            return;
    }
    rds__guard_pop(&c->guards, &g);
}

static void client_on_reply(rds__link_t *l, redisReply *r)
{
    rds_client_t *c = (rds_client_t *)l;
    req_t *q = pop(c);
    /* Our queue mirrors hiredis' callback list one to one. */
    RT_ASSERT(q != NULL);
    rds_reply_cb cb = q->cb;
    void *ud = q->ud;
    rt_free(q);
    if (cb != NULL)
        cb(r->type == REDIS_REPLY_ERROR ? RT_EREDIS : 0, r, ud);
}

static const rds__link_ops_t client_ops = {
    .on_up = client_on_up,
    .on_down = client_on_down,
    .on_reply = client_on_reply,
};

rds_client_t *rds_client_new(struct ev_loop *loop, const rds_addr_t *addr,
                             const rds_client_opts_t *opts)
{
    rds_client_t *c = RT_NEW(rds_client_t);
    if (opts != NULL)
        c->opts = *opts;
    else
        rds_client_opts_default(&c->opts);
    if (c->opts.max_inflight == 0)
        c->opts.max_inflight = 16384;
    ev_init(&c->cmd_timer, on_cmd_timer);
    c->cmd_timer.data = c;
    ev_timer_init(&c->keepalive_timer, on_keepalive, KEEPALIVE_INTERVAL_S, KEEPALIVE_INTERVAL_S);
    c->keepalive_timer.data = c;
    ev_timer_start(loop, &c->keepalive_timer);
    rds__link_init(&c->link, loop, addr, &client_ops, "command", c->opts.reconnect_min_ms,
                   c->opts.reconnect_max_ms);
    return c;
}

void rds_client_free(rds_client_t *c)
{
    if (c == NULL)
        return;
    rds__guard_kill(c->guards);
    ev_timer_stop(c->link.loop, &c->cmd_timer);
    ev_timer_stop(c->link.loop, &c->keepalive_timer);
    /* Detaches first: hiredis' own NULL-reply callbacks (now or, inside a reply callback,
     * deferred) find nothing to do, and commands issued by the callbacks below fail. */
    rds__link_cleanup(&c->link);
    req_t *q;
    while ((q = pop(c)) != NULL) {
        rds_reply_cb cb = q->cb;
        void *ud = q->ud;
        rt_free(q);
        if (cb != NULL)
            cb(RT_ECANCELED, NULL, ud);
    }
    rt_free(c);
}

bool rds_client_ready(const rds_client_t *c)
{
    return c->link.up;
}

int rds_client_command(rds_client_t *c, rds_reply_cb cb, void *ud, int argc, const char **argv,
                       const size_t *argvlen)
{
    RT_ASSERT(cb != NULL && argc > 0);
    if (!c->link.up)
        return RT_ECLOSED;
    if (c->inflight >= c->opts.max_inflight)
        return RT_ELIMIT;
    return enqueue(c, cb, ud, argc, argv, argvlen);
}

void rds_script_init(rds_script_t *s, const char *name, const char *src)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    s->name = name;
    s->src = src;
    int ok = EVP_Digest(src, strlen(src), md, &n, EVP_sha1(), NULL);
    /* SHA-1 of an in-memory buffer only fails without memory or a broken libcrypto. */
    RT_ASSERT(ok == 1 && n == 20);
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = '\0';
}

/* An EVALSHA in flight, with a copy of its arguments for the EVAL retry. */
typedef struct eval_req {
    rds_client_t *c;       /* borrowed: it cancels us before it goes away */
    const rds_script_t *s; /* borrowed: scripts are static, embedded at build time */
    rds_reply_cb cb;       /* the caller's */
    void *ud;              /* borrowed, the caller's */
    bool retried;          /* EVAL was sent after NOSCRIPT */
    int argc;              /* keys + args */
    char nkeys[16];        /* decimal */
    const char **argv;     /* argc + 3 slots; [3..] point into bytes */
    size_t *lens;          /* argc + 3 slots */
    char bytes[];          /* the argument copies */
} eval_req_t;

static void eval_cb(int status, const redisReply *reply, void *ud);

static int eval_send(eval_req_t *e, bool with_src)
{
    e->argv[0] = with_src ? "EVAL" : "EVALSHA";
    e->lens[0] = with_src ? 4 : 7;
    e->argv[1] = with_src ? e->s->src : e->s->sha;
    e->lens[1] = with_src ? strlen(e->s->src) : 40;
    return rds_client_command(e->c, eval_cb, e, e->argc + 3, e->argv, e->lens);
}

static void eval_cb(int status, const redisReply *reply, void *ud)
{
    eval_req_t *e = ud;
    if (status == RT_EREDIS && !e->retried && reply->str != NULL &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        e->retried = true;
        RT_LOG_DEBUG("redis script not cached, sending source script=%s", e->s->name);
        int rc = eval_send(e, true);
        if (rc == 0)
            return;
        status = rc;
        reply = NULL;
    }
    rds_reply_cb cb = e->cb;
    void *cb_ud = e->ud;
    rt_free(e);
    cb(status, reply, cb_ud);
}

int rds_client_eval(rds_client_t *c, const rds_script_t *s, int nkeys, int argc, const char **argv,
                    const size_t *argvlen, rds_reply_cb cb, void *ud)
{
    RT_ASSERT(cb != NULL && nkeys >= 0 && argc >= nkeys);
    if (!c->link.up)
        return RT_ECLOSED;
    if (c->inflight >= c->opts.max_inflight)
        return RT_ELIMIT;
    size_t total = 0;
    for (int i = 0; i < argc; i++)
        total += argvlen[i];
    size_t slots = (size_t)argc + 3;
    size_t head = sizeof(eval_req_t) + total;
    /* Pointer arrays after the bytes, aligned. */
    size_t align = sizeof(void *);
    head = (head + align - 1) / align * align;
    eval_req_t *e = rt_malloc(head + slots * (sizeof(char *) + sizeof(size_t)));
    e->c = c;
    e->s = s;
    e->cb = cb;
    e->ud = ud;
    e->retried = false;
    e->argc = argc;
    e->argv = (const char **)((char *)e + head);
    e->lens = (size_t *)(e->argv + slots);
    int n = snprintf(e->nkeys, sizeof(e->nkeys), "%d", nkeys);
    e->argv[2] = e->nkeys;
    e->lens[2] = (size_t)n;
    char *p = e->bytes;
    for (int i = 0; i < argc; i++) {
        if (argvlen[i] > 0)
            memcpy(p, argv[i], argvlen[i]);
        e->argv[3 + i] = p;
        e->lens[3 + i] = argvlen[i];
        p += argvlen[i];
    }
    int rc = eval_send(e, false);
    if (rc != 0)
        rt_free(e);
    return rc;
}
