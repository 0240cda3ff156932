/* Redis Cluster routing (SERVER.md §3.14) and the router that hides whether an address is a
 * cluster.
 *
 *  - Topology: CLUSTER SLOTS (RESP2) asked of any master that is up, or of a seed client
 *    while none is (seeds are tried in turn, each for a connect timeout). The answer
 *    replaces the whole table; nodes it no longer names become zombies, freed from a timer
 *    because the reply that dropped them may be running inside their own client.
 *  - Redirections: a MOVED reply rewrites that slot at once (later commands go straight to
 *    the new owner) and schedules a full refresh, since a MOVED usually means a whole range
 *    moved; ASK is a one-off for one command during a migration (ASKING must precede the
 *    command on the same connection, which pipelining guarantees). Each command is
 *    redirected at most once: a second redirection means the table is changing under us,
 *    and the caller gets the error rather than a loop.
 *  - A redirected command whose target is still connecting waits on that node (up to
 *    io_timeout) instead of failing: the redirect came from the cluster itself, so the node
 *    exists. New commands still fail fast with RT_ECLOSED like rds_client's.
 *  - Callbacks that reach the user may free the cluster; loops that make them use the
 *    guard stack of rds_internal.h. */
#include "broker/rds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/rds_internal.h"
#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/log.h"

#define HOUSEKEEPING_S     0.25
#define REFRESH_INTERVAL_S 10.0
#define REFRESH_MIN_GAP_S  0.1

/* ---- hashing ---- */

uint16_t rds_crc16(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(b[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned rds_key_slot(rt_str_t key)
{
    const char *open = key.n > 0 ? memchr(key.p, '{', key.n) : NULL;
    if (open != NULL) {
        size_t start = (size_t)(open - key.p) + 1;
        const char *close = memchr(key.p + start, '}', key.n - start);
        if (close != NULL && close > key.p + start)
            return rds_crc16(key.p + start, (size_t)(close - key.p) - start) &
                   (RDS_CLUSTER_SLOTS - 1);
    }
    return rds_crc16(key.p, key.n) & (RDS_CLUSTER_SLOTS - 1);
}

/* ---- types ---- */

typedef struct creq creq_t;

typedef struct cnode {
    struct cnode *next; /* owned by the list it is on (nodes or zombies) */
    rds_cluster_t *cl;  /* borrowed back pointer */
    char *host;         /* owned */
    int port;
    rds_client_t *cmd; /* owned */
    bool master;       /* named by the current table (or a MOVED since) */
    size_t inflight;   /* our commands sent on cmd and not answered */
    creq_t *waiting;   /* owned FIFO: redirected here while connecting */
    creq_t *waiting_tail;
} cnode_t;

struct creq {
    creq_t *next;               /* waiting list link */
    rds_cluster_t *cl;          /* borrowed: it cancels us before it goes away */
    cnode_t *at;                /* borrowed: node the command was last sent to or waits on */
    rds_reply_cb cb;            /* the caller's */
    void *ud;                   /* borrowed, the caller's */
    const rds_script_t *script; /* borrowed (static); NULL for plain commands */
    int nkeys;
    char nkeys_s[16];
    bool redirected;    /* one redirection is all a command gets */
    bool asking;        /* send ASKING first */
    ev_tstamp deadline; /* while waiting */
    int argc;           /* the caller's arguments, at argv[3..] */
    const char **argv;  /* argc + 3 slots: room for EVAL src nkeys in front */
    size_t *lens;
    char bytes[];
};

struct rds_cluster {
    struct ev_loop *loop; /* borrowed */
    rds_addr_t base;      /* owned copy: template for the node connections */
    rds_client_opts_t opts;
    char **seed_host;                  /* owned array of nseeds owned strings */
    int *seed_port;                    /* owned */
    size_t nseeds;                     /* >= 1 */
    cnode_t *nodes;                    /* owned list */
    cnode_t *zombies;                  /* owned list, freed by the next timer */
    cnode_t *slots[RDS_CLUSTER_SLOTS]; /* borrowed from nodes; NULL = no master known */
    bool loaded;
    rds_client_t *seed; /* owned, only while no master answers */
    size_t seed_i;
    ev_tstamp seed_since;
    bool need_refresh;
    bool refreshing;
    char *refresh_host; /* owned: host of the node asked, for empty endpoints */
    ev_tstamp last_refresh;
    size_t refresh_rr;
    bool warned;    /* a failed refresh of this streak was logged at WARN */
    ev_timer kick;  /* refresh soon, zombies */
    ev_timer house; /* repeating: waiting deadlines, periodic refresh, seed retirement */
    rds__guard_t *guards;
    bool freeing;
    rds_cluster_stats_t stats;
};

static const char *fmt_node(const char *host, int port)
{
    static _Thread_local char buf[300];
    if (strchr(host, ':') != NULL)
        snprintf(buf, sizeof(buf), "[%s]:%d", host, port);
    else
        snprintf(buf, sizeof(buf), "%s:%d", host, port);
    return buf;
}

/* ---- requests ---- */

static void finish(creq_t *q, int status, const redisReply *r)
{
    rds_reply_cb cb = q->cb;
    void *ud = q->ud;
    rt_free(q);
    cb(status, r, ud);
}

static creq_t *req_new(rds_cluster_t *cl, const rds_script_t *s, int nkeys, int argc,
                       const char **argv, const size_t *argvlen, rds_reply_cb cb, void *ud)
{
    size_t total = 0;
    for (int i = 0; i < argc; i++)
        total += argvlen[i];
    size_t slots = (size_t)argc + 3;
    size_t align = sizeof(void *);
    size_t head = (sizeof(creq_t) + total + align - 1) / align * align;
    creq_t *q = rt_malloc(head + slots * (sizeof(char *) + sizeof(size_t)));
    memset(q, 0, sizeof(*q));
    q->cl = cl;
    q->cb = cb;
    q->ud = ud;
    q->script = s;
    q->nkeys = nkeys;
    snprintf(q->nkeys_s, sizeof(q->nkeys_s), "%d", nkeys);
    q->argc = argc;
    q->argv = (const char **)(void *)((char *)q + head);
    q->lens = (size_t *)(void *)(q->argv + slots);
    char *p = q->bytes;
    for (int i = 0; i < argc; i++) {
        if (argvlen[i] > 0)
            memcpy(p, argv[i], argvlen[i]);
        q->argv[3 + i] = p;
        q->lens[3 + i] = argvlen[i];
        p += argvlen[i];
    }
    return q;
}

static void on_ignored(int status, const redisReply *r, void *ud)
{
    if (status == RT_EREDIS && r != NULL)
        RT_LOG_DEBUG("redis cluster ASKING refused: %s", r->str);
}

static void on_req_reply(int status, const redisReply *r, void *ud);

static void wait_push(cnode_t *n, creq_t *q)
{
    q->next = NULL;
    q->at = n;
    q->deadline = ev_now(n->cl->loop) + (double)n->cl->base.io_timeout_ms / 1000.0;
    if (n->waiting_tail != NULL)
        n->waiting_tail->next = q;
    else
        n->waiting = q;
    n->waiting_tail = q;
}

static creq_t *wait_pop(cnode_t *n)
{
    creq_t *q = n->waiting;
    if (q != NULL) {
        n->waiting = q->next;
        if (n->waiting == NULL)
            n->waiting_tail = NULL;
    }
    return q;
}

/* Puts q on n's connection. Returns 0 or the rds error (q is still the caller's). */
static int send_to(creq_t *q, cnode_t *n)
{
    const char **argv = q->argv + 3;
    size_t *lens = q->lens + 3;
    if (q->asking) {
        int rc = rds_client_command(n->cmd, on_ignored, NULL, 1, (const char *[]){"ASKING"},
                                    (const size_t[]){6});
        if (rc != 0)
            return rc;
        q->asking = false;
        if (q->script == NULL)
            return rds_client_command(n->cmd, on_req_reply, q, q->argc, argv, lens);
        /* EVAL with the source: a NOSCRIPT retry would go out without ASKING. */
        q->argv[0] = "EVAL";
        q->lens[0] = 4;
        q->argv[1] = q->script->src;
        q->lens[1] = strlen(q->script->src);
        q->argv[2] = q->nkeys_s;
        q->lens[2] = strlen(q->nkeys_s);
        return rds_client_command(n->cmd, on_req_reply, q, q->argc + 3, q->argv, q->lens);
    }
    if (q->script != NULL)
        return rds_client_eval(n->cmd, q->script, q->nkeys, q->argc, argv, lens, on_req_reply, q);
    return rds_client_command(n->cmd, on_req_reply, q, q->argc, argv, lens);
}

/* Sends q to n. Returns 0 (on_req_reply will run, or q waits on n) or an rds error (q is
 * still the caller's). */
static int dispatch(creq_t *q, cnode_t *n)
{
    if (!rds_client_ready(n->cmd)) {
        if (!q->redirected)
            return RT_ECLOSED;
        wait_push(n, q);
        return 0;
    }
    int rc = send_to(q, n);
    if (rc == 0) {
        q->at = n;
        n->inflight++;
    }
    return rc;
}

/* ---- nodes ---- */

static void on_node_state(bool up, void *ud);

static void request_refresh(rds_cluster_t *cl)
{
    cl->need_refresh = true;
    if (cl->refreshing || ev_is_active(&cl->kick))
        return;
    ev_tstamp wait = cl->last_refresh + REFRESH_MIN_GAP_S - ev_now(cl->loop);
    ev_timer_set(&cl->kick, wait > 0 ? wait : 0.0, 0.0);
    ev_timer_start(cl->loop, &cl->kick);
}

static rds_client_t *client_to(rds_cluster_t *cl, const char *host, int port, rds_state_cb on_state,
                               void *ud)
{
    rds_addr_t a;
    rds_addr_derive(&a, &cl->base, host, port);
    rds_client_opts_t o = cl->opts;
    o.on_state = on_state;
    o.ud = ud;
    rds_client_t *c = rds_client_new(cl->loop, &a, &o);
    rds_addr_cleanup(&a);
    return c;
}

static cnode_t *node_get(rds_cluster_t *cl, const char *host, int port)
{
    cnode_t **pp = &cl->nodes;
    for (; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->port == port && strcmp((*pp)->host, host) == 0)
            return *pp;
    }
    cnode_t *n = RT_NEW(cnode_t);
    n->cl = cl;
    n->host = rt_strdup(host);
    n->port = port;
    n->cmd = client_to(cl, host, port, on_node_state, n);
    *pp = n;
    RT_LOG_DEBUG("redis cluster node added node=%s", fmt_node(host, port));
    return n;
}

static void node_free(cnode_t *n)
{
    rds_client_free(n->cmd);
    rt_free(n->host);
    rt_free(n);
}

/* Frees the zombies that have nothing in flight (the rest finish first: freeing their
 * client would cancel commands that may still get an answer). Returns false if a callback
 * freed the cluster. */
static bool free_zombies(rds_cluster_t *cl)
{
    rds__guard_t g;
    rds__guard_push(&cl->guards, &g);
    cnode_t **pp = &cl->zombies;
    while (*pp != NULL) {
        cnode_t *n = *pp;
        if (n->waiting != NULL) {
            finish(wait_pop(n), RT_ECLOSED, NULL);
            if (g.dead)
                return false;
            continue;
        }
        if (n->inflight > 0) {
            pp = &n->next;
            continue;
        }
        *pp = n->next;
        node_free(n);
    }
    return rds__guard_pop(&cl->guards, &g);
}

static void on_node_state(bool up, void *ud)
{
    cnode_t *n = ud;
    rds_cluster_t *cl = n->cl;
    if (cl->freeing)
        return;
    if (!up) {
        request_refresh(cl);
        return;
    }
    rds__guard_t g;
    rds__guard_push(&cl->guards, &g);
    creq_t *q;
    while ((q = wait_pop(n)) != NULL) {
        int rc = dispatch(q, n);
        if (rc != 0) {
            finish(q, rc, NULL);
            if (g.dead)
                return;
        }
    }
    rds__guard_pop(&cl->guards, &g);
}

static void on_req_reply(int status, const redisReply *r, void *ud)
{
    creq_t *q = ud;
    rds_cluster_t *cl = q->cl;
    q->at->inflight--;
    if (cl->freeing) {
        finish(q, RT_ECANCELED, NULL);
        return;
    }
    if (status == RT_ECANCELED) {
        /* Only a freed client cancels, and zombies are freed idle: defensive. */
        finish(q, RT_ECLOSED, NULL);
        return;
    }
    if (status == RT_ECLOSED || status == RT_ETIMEOUT)
        request_refresh(cl);
    if (status != RT_EREDIS || r == NULL || r->str == NULL) {
        finish(q, status, r);
        return;
    }
    bool moved = strncmp(r->str, "MOVED ", 6) == 0;
    bool ask = strncmp(r->str, "ASK ", 4) == 0;
    if (strncmp(r->str, "CLUSTERDOWN", 11) == 0 || strncmp(r->str, "TRYAGAIN", 8) == 0)
        request_refresh(cl);
    if (!moved && !ask) {
        finish(q, status, r);
        return;
    }
    /* "MOVED <slot> <host>:<port>"; an empty host means the node that answered. */
    const char *p = r->str + (moved ? 6 : 4);
    char *end;
    long slot = strtol(p, &end, 10);
    const char *ep = *end == ' ' ? end + 1 : NULL;
    const char *colon = ep != NULL ? strrchr(ep, ':') : NULL;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    if (slot < 0 || slot >= RDS_CLUSTER_SLOTS || colon == NULL || port <= 0 || port > 65535 ||
        *end != '\0') {
        RT_LOG_WARN("redis cluster: malformed redirection \"%s\"", r->str);
        request_refresh(cl);
        finish(q, status, r);
        return;
    }
    request_refresh(cl);
    if (q->redirected) {
        RT_LOG_DEBUG("redis cluster: second redirection not followed: %s", r->str);
        finish(q, status, r);
        return;
    }
    char *host;
    if (colon == ep) {
        host = rt_strdup(q->at != NULL ? q->at->host : "");
    } else {
        /* IPv6 endpoints come without brackets. */
        const char *h = ep;
        size_t hn = (size_t)(colon - ep);
        if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']') {
            h++;
            hn -= 2;
        }
        host = rt_str_dup(rt_str_from(h, hn));
    }
    q->redirected = true;
    cnode_t *n = node_get(cl, host, (int)port);
    rt_free(host);
    if (moved) {
        cl->stats.moved++;
        n->master = true;
        cl->slots[slot] = n;
    } else {
        cl->stats.asked++;
        q->asking = true;
    }
    int rc = dispatch(q, n);
    if (rc != 0)
        finish(q, rc, NULL);
}

/* ---- topology ---- */

static bool slots_entry_ok(const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[0]->type != REDIS_REPLY_INTEGER || e->element[1]->type != REDIS_REPLY_INTEGER ||
        e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
        return false;
    long long lo = e->element[0]->integer, hi = e->element[1]->integer;
    const redisReply *m = e->element[2];
    return lo >= 0 && hi >= lo && hi < RDS_CLUSTER_SLOTS &&
           m->element[0]->type == REDIS_REPLY_STRING &&
           m->element[1]->type == REDIS_REPLY_INTEGER && m->element[1]->integer > 0 &&
           m->element[1]->integer <= 65535;
}

/* Replaces the table with r. Returns false (table untouched) when r is not a table. */
static bool load_table(rds_cluster_t *cl, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return false;
    for (size_t i = 0; i < r->elements; i++) {
        if (!slots_entry_ok(r->element[i]))
            return false;
    }
    for (cnode_t *n = cl->nodes; n != NULL; n = n->next)
        n->master = false;
    memset(cl->slots, 0, sizeof(cl->slots));
    size_t covered = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        const redisReply *m = e->element[2];
        const char *host = m->element[0]->str;
        /* Redis 7 announces "" or "?" when it does not know its own endpoint. */
        if (host[0] == '\0' || strcmp(host, "?") == 0)
            host = cl->refresh_host;
        cnode_t *n = node_get(cl, host, (int)m->element[1]->integer);
        n->master = true;
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++) {
            covered += cl->slots[s] == NULL;
            cl->slots[s] = n;
        }
    }
    cnode_t **pp = &cl->nodes;
    while (*pp != NULL) {
        cnode_t *n = *pp;
        if (n->master) {
            pp = &n->next;
            continue;
        }
        *pp = n->next;
        n->next = cl->zombies;
        cl->zombies = n;
        RT_LOG_DEBUG("redis cluster node dropped node=%s", fmt_node(n->host, n->port));
    }
    if (cl->zombies != NULL && !ev_is_active(&cl->kick)) {
        ev_timer_set(&cl->kick, 0.0, 0.0);
        ev_timer_start(cl->loop, &cl->kick);
    }
    if (covered < RDS_CLUSTER_SLOTS)
        RT_LOG_WARN("redis cluster: %zu of %d slots have no master", RDS_CLUSTER_SLOTS - covered,
                    RDS_CLUSTER_SLOTS);
    if (!cl->loaded)
        RT_LOG_INFO("redis cluster slot table loaded seed=%s",
                    fmt_node(cl->seed_host[0], cl->seed_port[0]));
    cl->loaded = true;
    return true;
}

static void on_slots(int status, const redisReply *r, void *ud)
{
    rds_cluster_t *cl = ud;
    if (cl->freeing)
        return;
    cl->refreshing = false;
    cl->last_refresh = ev_now(cl->loop);
    if (status == 0 && load_table(cl, r)) {
        cl->stats.refreshes++;
        cl->warned = false;
        if (cl->need_refresh)
            request_refresh(cl);
        return;
    }
    if (status == 0)
        RT_LOG_WARN("redis cluster: unexpected CLUSTER SLOTS reply type=%d", r->type);
    else if (!cl->warned && status != RT_ECANCELED)
        RT_LOG_WARN("redis cluster: CLUSTER SLOTS failed: %s",
                    status == RT_EREDIS ? r->str : rt_strerror(status));
    cl->warned = true;
    /* The housekeeping timer retries. */
    cl->need_refresh = true;
}

static void on_seed_state(bool up, void *ud)
{
    rds_cluster_t *cl = ud;
    if (up && !cl->freeing)
        request_refresh(cl);
}

/* The seed client when it is up; otherwise (re)starts it, moving to the next seed once the
 * current one had a connect timeout's worth of chances. */
static rds_client_t *seed_client(rds_cluster_t *cl)
{
    ev_tstamp now = ev_now(cl->loop);
    ev_tstamp patience = (double)cl->base.connect_timeout_ms / 1000.0 + 0.5;
    if (cl->seed != NULL && !rds_client_ready(cl->seed) && now - cl->seed_since > patience) {
        rds_client_free(cl->seed);
        cl->seed = NULL;
        cl->seed_i++;
    }
    if (cl->seed == NULL) {
        size_t i = cl->seed_i % cl->nseeds;
        cl->seed = client_to(cl, cl->seed_host[i], cl->seed_port[i], on_seed_state, cl);
        cl->seed_since = now;
    }
    return rds_client_ready(cl->seed) ? cl->seed : NULL;
}

static void do_refresh(rds_cluster_t *cl)
{
    if (cl->refreshing || !cl->need_refresh)
        return;
    rds_client_t *via = NULL;
    const char *host = NULL;
    size_t count = 0;
    for (cnode_t *n = cl->nodes; n != NULL; n = n->next)
        count++;
    /* Rotating spreads refreshes and gets past a master that is up but wedged. */
    for (size_t k = 0; k < count && via == NULL; k++) {
        size_t want = (cl->refresh_rr + k) % count, i = 0;
        for (cnode_t *n = cl->nodes; n != NULL; n = n->next, i++) {
            if (i == want && n->master && rds_client_ready(n->cmd)) {
                via = n->cmd;
                host = n->host;
                cl->refresh_rr = want + 1;
            }
        }
    }
    if (via == NULL) {
        via = seed_client(cl);
        host = cl->seed_host[cl->seed_i % cl->nseeds];
    }
    if (via == NULL)
        return;
    rt_free(cl->refresh_host);
    cl->refresh_host = rt_strdup(host);
    int rc = rds_client_command(via, on_slots, cl, 2, (const char *[]){"CLUSTER", "SLOTS"},
                                (const size_t[]){7, 5});
    if (rc == 0) {
        cl->refreshing = true;
        cl->need_refresh = false;
    }
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    rds_cluster_t *cl = w->data;
    if (!free_zombies(cl))
        return;
    do_refresh(cl);
}

static void on_house(struct ev_loop *loop, ev_timer *w, int revents)
{
    rds_cluster_t *cl = w->data;
    ev_tstamp now = ev_now(loop);
    rds__guard_t g;
    rds__guard_push(&cl->guards, &g);
    for (cnode_t *n = cl->nodes; n != NULL; n = n->next) {
        /* Deadlines are in arrival order: only the head can be due. */
        while (n->waiting != NULL && n->waiting->deadline <= now) {
            finish(wait_pop(n), RT_ETIMEOUT, NULL);
            if (g.dead)
                return;
        }
    }
    if (!rds__guard_pop(&cl->guards, &g) || !free_zombies(cl))
        return;
    if (cl->loaded && cl->seed != NULL && !cl->refreshing) {
        rds_client_free(cl->seed);
        cl->seed = NULL;
    }
    if (now - cl->last_refresh >= REFRESH_INTERVAL_S)
        cl->need_refresh = true;
    do_refresh(cl);
}

/* ---- public ---- */

rds_cluster_t *rds_cluster_new(struct ev_loop *loop, const rds_addr_t *addr,
                               const rds_client_opts_t *opts)
{
    rds_cluster_t *cl = RT_NEW(rds_cluster_t);
    cl->loop = loop;
    rds__addr_copy(&cl->base, addr);
    if (opts != NULL)
        cl->opts = *opts;
    else
        rds_client_opts_default(&cl->opts);
    cl->opts.on_state = NULL;
    cl->opts.ud = NULL;
    size_t cap = addr->nseeds > 0 ? addr->nseeds : 1;
    cl->seed_host = rt_calloc(cap, sizeof(*cl->seed_host));
    cl->seed_port = rt_calloc(cap, sizeof(*cl->seed_port));
    for (size_t i = 0; i < addr->nseeds; i++) {
        char *host;
        int port;
        if (rds_addr_seed_split(addr->seeds[i], &host, &port) != 0) {
            RT_LOG_WARN("redis cluster: bad seed \"%s\" ignored", addr->seeds[i]);
            continue;
        }
        cl->seed_host[cl->nseeds] = host;
        cl->seed_port[cl->nseeds++] = port;
    }
    if (cl->nseeds == 0) {
        cl->seed_host[0] = rt_strdup(addr->host != NULL ? addr->host : "");
        cl->seed_port[0] = addr->port;
        cl->nseeds = 1;
    }
    cl->last_refresh = ev_now(loop) - REFRESH_MIN_GAP_S;
    ev_init(&cl->kick, on_kick);
    cl->kick.data = cl;
    ev_timer_init(&cl->house, on_house, HOUSEKEEPING_S, HOUSEKEEPING_S);
    cl->house.data = cl;
    ev_timer_start(loop, &cl->house);
    cl->need_refresh = true;
    /* Starts connecting now; its up event asks for the table. */
    (void)seed_client(cl);
    return cl;
}

static void free_list(rds_cluster_t *cl, cnode_t *n)
{
    while (n != NULL) {
        cnode_t *next = n->next;
        creq_t *q;
        while ((q = wait_pop(n)) != NULL)
            finish(q, RT_ECANCELED, NULL);
        node_free(n);
        n = next;
    }
}

void rds_cluster_free(rds_cluster_t *cl)
{
    if (cl == NULL || cl->freeing)
        return;
    cl->freeing = true;
    rds__guard_kill(cl->guards);
    ev_timer_stop(cl->loop, &cl->kick);
    ev_timer_stop(cl->loop, &cl->house);
    /* Callbacks below see freeing: they neither redirect nor reach the lists. */
    rds_client_free(cl->seed);
    free_list(cl, cl->nodes);
    free_list(cl, cl->zombies);
    for (size_t i = 0; i < cl->nseeds; i++)
        rt_free(cl->seed_host[i]);
    rt_free(cl->seed_host);
    rt_free(cl->seed_port);
    rt_free(cl->refresh_host);
    rds_addr_cleanup(&cl->base);
    rt_free(cl);
}

bool rds_cluster_ready(const rds_cluster_t *cl)
{
    if (!cl->loaded || cl->freeing)
        return false;
    for (const cnode_t *n = cl->nodes; n != NULL; n = n->next) {
        if (n->master && !rds_client_ready(n->cmd))
            return false;
    }
    return true;
}

static int route(rds_cluster_t *cl, cnode_t *n, const rds_script_t *s, int nkeys, int argc,
                 const char **argv, const size_t *argvlen, rds_reply_cb cb, void *ud)
{
    if (n == NULL || !rds_client_ready(n->cmd))
        return RT_ECLOSED;
    creq_t *q = req_new(cl, s, nkeys, argc, argv, argvlen, cb, ud);
    int rc = dispatch(q, n);
    if (rc != 0)
        rt_free(q);
    return rc;
}

int rds_cluster_command(rds_cluster_t *cl, rt_str_t key, rds_reply_cb cb, void *ud, int argc,
                        const char **argv, const size_t *argvlen)
{
    RT_ASSERT(cb != NULL && argc > 0);
    if (cl->freeing || !cl->loaded)
        return RT_ECLOSED;
    return route(cl, cl->slots[rds_key_slot(key)], NULL, 0, argc, argv, argvlen, cb, ud);
}

int rds_cluster_eval(rds_cluster_t *cl, const rds_script_t *s, int nkeys, int argc,
                     const char **argv, const size_t *argvlen, rds_reply_cb cb, void *ud)
{
    RT_ASSERT(cb != NULL && nkeys >= 0 && argc >= nkeys);
    if (cl->freeing || !cl->loaded)
        return RT_ECLOSED;
    cnode_t *n = NULL;
    if (nkeys > 0) {
        n = cl->slots[rds_key_slot(rt_str_from(argv[0], argvlen[0]))];
    } else {
        for (cnode_t *m = cl->nodes; m != NULL && n == NULL; m = m->next) {
            if (m->master && rds_client_ready(m->cmd))
                n = m;
        }
    }
    return route(cl, n, s, nkeys, argc, argv, argvlen, cb, ud);
}

size_t rds_cluster_node_count(const rds_cluster_t *cl)
{
    size_t n = cl->nseeds;
    for (const cnode_t *m = cl->nodes; m != NULL; m = m->next)
        n += m->master;
    return n;
}

void rds_cluster_node_addr(const rds_cluster_t *cl, size_t i, rds_addr_t *out)
{
    i %= rds_cluster_node_count(cl);
    for (const cnode_t *m = cl->nodes; m != NULL; m = m->next) {
        if (!m->master)
            continue;
        if (i == 0) {
            rds_addr_derive(out, &cl->base, m->host, m->port);
            return;
        }
        i--;
    }
    rds_addr_derive(out, &cl->base, cl->seed_host[i], cl->seed_port[i]);
}

void rds_cluster_stats(const rds_cluster_t *cl, rds_cluster_stats_t *out)
{
    *out = cl->stats;
}

const char *rds_cluster__slot_node(const rds_cluster_t *cl, unsigned slot)
{
    const cnode_t *n = slot < RDS_CLUSTER_SLOTS ? cl->slots[slot] : NULL;
    return n != NULL ? fmt_node(n->host, n->port) : "";
}

void rds_cluster__set_slot(rds_cluster_t *cl, unsigned slot, const char *host, int port)
{
    RT_ASSERT(slot < RDS_CLUSTER_SLOTS);
    cnode_t *n = node_get(cl, host, port);
    n->master = true;
    cl->slots[slot] = n;
}

/* ---- a cluster behind a plain address ---- */

typedef struct probe {
    struct ev_loop *loop; /* borrowed: the private loop */
    rds_client_t *c;      /* borrowed */
    bool sent;
    bool answered;
    bool cluster;  /* the answer said cluster_enabled:1 */
    char why[160]; /* why there is no answer, for the log */
} probe_t;

static void on_probe_reply(int status, const redisReply *r, void *ud)
{
    probe_t *p = ud;
    if (status == 0 && r->type == REDIS_REPLY_STRING) {
        p->answered = true;
        p->cluster = strstr(r->str, "cluster_enabled:1") != NULL;
    } else {
        snprintf(p->why, sizeof(p->why), "INFO cluster: %s",
                 status == RT_EREDIS ? r->str : rt_strerror(status));
    }
    ev_break(p->loop, EVBREAK_ALL);
}

static void on_probe_state(bool up, void *ud)
{
    probe_t *p = ud;
    if (!up || p->sent)
        return;
    p->sent = rds_client_command(p->c, on_probe_reply, p, 2, (const char *[]){"INFO", "cluster"},
                                 (const size_t[]){4, 7}) == 0;
}

static void on_probe_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    probe_t *p = w->data;
    /* Not connected within the connect timeout: give up. Connected: the command has its
     * own io_timeout, which ends the wait through on_probe_reply. */
    if (!p->sent) {
        snprintf(p->why, sizeof(p->why), "not connected within the connect timeout");
        ev_break(loop, EVBREAK_ALL);
    }
}

bool rds_addr_detect_cluster(rds_addr_t *a)
{
    if (a->mode != RDS_MODE_STANDALONE || (a->unix_path != NULL && a->unix_path[0] != '\0'))
        return false;
    probe_t p = {.loop = ev_loop_new(EVFLAG_AUTO)};
    rds_client_opts_t o;
    rds_client_opts_default(&o);
    o.on_state = on_probe_state;
    o.ud = &p;
    p.c = rds_client_new(p.loop, a, &o);
    ev_timer deadline;
    ev_timer_init(&deadline, on_probe_deadline, (double)a->connect_timeout_ms / 1000.0, 0.0);
    deadline.data = &p;
    ev_timer_start(p.loop, &deadline);
    ev_run(p.loop, 0);
    ev_timer_stop(p.loop, &deadline);
    rds_client_free(p.c);
    ev_loop_destroy(p.loop);
    const char *name = rds_addr_name(a);
    if (!p.answered) {
        RT_LOG_WARN("redis %s: could not tell whether it is a Redis Cluster node (%s); "
                    "using it as a single server",
                    name, p.why[0] != '\0' ? p.why : "no answer");
        return false;
    }
    if (!p.cluster)
        return false;
    RT_LOG_INFO("redis %s is a Redis Cluster node: cluster mode, seeded from it", name);
    char *seed = rt_strdup(name);
    a->mode = RDS_MODE_CLUSTER;
    a->seeds = rt_realloc(a->seeds, (a->nseeds + 1) * sizeof(*a->seeds));
    a->seeds[a->nseeds++] = seed;
    return true;
}

/* ---- router ---- */

struct rds_router {
    rds_addr_t addr;        /* owned copy, for the PUB/SUB connection */
    rds_client_t *client;   /* owned; NULL for a cluster */
    rds_cluster_t *cluster; /* owned; NULL otherwise */
};

rds_router_t *rds_router_new(struct ev_loop *loop, const rds_addr_t *addr,
                             const rds_client_opts_t *opts)
{
    rds_router_t *r = RT_NEW(rds_router_t);
    rds__addr_copy(&r->addr, addr);
    if (addr->mode == RDS_MODE_CLUSTER)
        r->cluster = rds_cluster_new(loop, addr, opts);
    else
        r->client = rds_client_new(loop, addr, opts);
    return r;
}

void rds_router_free(rds_router_t *r)
{
    if (r == NULL)
        return;
    rds_cluster_free(r->cluster);
    rds_client_free(r->client);
    rds_addr_cleanup(&r->addr);
    rt_free(r);
}

bool rds_router_ready(const rds_router_t *r)
{
    return r->cluster != NULL ? rds_cluster_ready(r->cluster) : rds_client_ready(r->client);
}

bool rds_router_is_cluster(const rds_router_t *r)
{
    return r->cluster != NULL;
}

int rds_router_command(rds_router_t *r, rt_str_t key, rds_reply_cb cb, void *ud, int argc,
                       const char **argv, const size_t *argvlen)
{
    if (r->cluster != NULL)
        return rds_cluster_command(r->cluster, key, cb, ud, argc, argv, argvlen);
    return rds_client_command(r->client, cb, ud, argc, argv, argvlen);
}

int rds_router_eval(rds_router_t *r, const rds_script_t *s, int nkeys, int argc, const char **argv,
                    const size_t *argvlen, rds_reply_cb cb, void *ud)
{
    if (r->cluster != NULL)
        return rds_cluster_eval(r->cluster, s, nkeys, argc, argv, argvlen, cb, ud);
    return rds_client_eval(r->client, s, nkeys, argc, argv, argvlen, cb, ud);
}

void rds_router_pubsub_addr(const rds_router_t *r, size_t attempt, rds_addr_t *out)
{
    if (r->cluster != NULL)
        rds_cluster_node_addr(r->cluster, attempt, out);
    else
        rds__addr_copy(out, &r->addr);
}

int rds_router_slot_addr(const rds_router_t *r, rt_str_t key, rds_addr_t *out)
{
    rds_cluster_t *cl = r->cluster;
    if (cl == NULL || !cl->loaded)
        return RT_ECLOSED;
    const cnode_t *n = cl->slots[rds_key_slot(key)];
    if (n == NULL)
        return RT_ECLOSED;
    rds_addr_derive(out, &cl->base, n->host, n->port);
    return 0;
}

size_t rds_router_master_count(const rds_router_t *r)
{
    size_t n = 0;
    if (r->cluster != NULL) {
        for (const cnode_t *m = r->cluster->nodes; m != NULL; m = m->next)
            n += m->master;
    }
    return n;
}

void rds_router_master_addr(const rds_router_t *r, size_t i, rds_addr_t *out)
{
    RT_ASSERT(i < rds_router_master_count(r));
    for (const cnode_t *m = r->cluster->nodes; m != NULL; m = m->next) {
        if (m->master && i-- == 0) {
            rds_addr_derive(out, &r->cluster->base, m->host, m->port);
            return;
        }
    }
}

void rds_router_refresh(rds_router_t *r)
{
    if (r->cluster != NULL)
        request_refresh(r->cluster);
}
